//! Real receivers for the push exporters (tests/push.rs):
//!
//! * [`Prometheus`] — Debian's `prometheus` (installed on first use like promtool, see
//!   [`super::promtool`]) with `--web.enable-remote-write-receiver`, on a temp dir and a
//!   free port; [`Prometheus::query`] runs PromQL through its HTTP API.
//! * [`OtlpReceiver`] — `otlp_receiver.py` (grpcio + opentelemetry-proto from PyPI, in a
//!   venv under `target/push-venv` made on first use, serialized across processes by
//!   `flock` on `<repo>/.cache/push-venv.lock`): each Export request it receives is one
//!   JSON line in a file, read back with [`OtlpReceiver::requests`].

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use super::promtool::ensure_debian_tool;
use crate::broker::free_port;
use crate::repo_root;

/// The PyPI packages of the receiver, pinned.
const RECEIVER_PACKAGES: &[&str] = &[
    "grpcio==1.85.3",
    "opentelemetry-proto==1.45.2",
    "protobuf==7.36.2",
];

/// A child process killed (and reaped) on drop.
struct Process(Child);

impl Drop for Process {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn scratch_dir(what: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!(
        "tidemark-{what}-{}-{}",
        std::process::id(),
        free_port().unwrap_or(0)
    ));
    std::fs::create_dir_all(&dir).unwrap_or_else(|e| panic!("{}: {e}", dir.display()));
    dir
}

/// A Prometheus server accepting remote write.
pub struct Prometheus {
    pub port: u16,
    dir: PathBuf,
    _process: Process,
}

impl Prometheus {
    /// Start one and wait until it is ready (panics with its output when it is not).
    pub async fn start() -> Prometheus {
        let binary = ensure_debian_tool(Path::new("/usr/bin/prometheus"), "prometheus")
            .unwrap_or_else(|e| panic!("{e}"));
        let dir = scratch_dir("prometheus");
        let config = dir.join("prometheus.yml");
        // Nothing to scrape: every series arrives by remote write.
        std::fs::write(&config, "global:\n  scrape_interval: 1m\n").expect("prometheus.yml");
        let port = free_port().expect("a free port");
        let log = std::fs::File::create(dir.join("log")).expect("log file");
        let process = Command::new(binary)
            .arg(format!("--config.file={}", config.display()))
            .arg(format!(
                "--storage.tsdb.path={}",
                dir.join("data").display()
            ))
            .arg(format!("--web.listen-address=127.0.0.1:{port}"))
            .arg("--web.enable-remote-write-receiver")
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .unwrap_or_else(|e| panic!("starting prometheus: {e}"));
        let prometheus = Prometheus {
            port,
            dir,
            _process: Process(process),
        };
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            let ready = tokio::net::TcpStream::connect(("127.0.0.1", port))
                .await
                .is_ok()
                && super::exporter::get(prometheus.address(), "/-/ready")
                    .await
                    .status
                    == 200;
            if ready {
                return prometheus;
            }
            assert!(
                Instant::now() < deadline,
                "prometheus not ready after 60 s:\n{}",
                prometheus.log()
            );
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }

    pub fn address(&self) -> std::net::SocketAddr {
        std::net::SocketAddr::from(([127, 0, 0, 1], self.port))
    }

    /// The remote write URL.
    pub fn write_url(&self) -> String {
        format!("http://127.0.0.1:{}/api/v1/write", self.port)
    }

    /// Its log (stderr), for failure messages.
    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.join("log")).unwrap_or_default()
    }

    /// An instant PromQL query: each result's labels (`__name__` included) and value.
    pub async fn query(
        &self,
        promql: &str,
    ) -> Vec<(serde_json::Map<String, serde_json::Value>, f64)> {
        let path = format!("/api/v1/query?query={}", percent_encode(promql));
        let r = super::exporter::get(self.address(), &path).await;
        assert_eq!(r.status, 200, "query {promql}: {}", r.body);
        let json: serde_json::Value = serde_json::from_str(&r.body).expect("JSON");
        let results = json["data"]["result"]
            .as_array()
            .cloned()
            .unwrap_or_default();
        results
            .into_iter()
            .map(|r| {
                let labels = r["metric"].as_object().cloned().unwrap_or_default();
                let value = r["value"][1]
                    .as_str()
                    .and_then(|v| v.parse::<f64>().ok())
                    .unwrap_or(f64::NAN);
                (labels, value)
            })
            .collect()
    }
}

impl Drop for Prometheus {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

fn percent_encode(s: &str) -> String {
    s.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                (b as char).to_string()
            }
            _ => format!("%{b:02X}"),
        })
        .collect()
}

/// The venv's python with the receiver's packages, made once.
fn receiver_python() -> PathBuf {
    super::venv::python("push-venv", RECEIVER_PACKAGES)
}

/// An OTLP/gRPC receiver writing what it receives to a file.
pub struct OtlpReceiver {
    pub port: u16,
    pub out: PathBuf,
    _process: Process,
}

/// One received data point (see otlp_receiver.py).
#[derive(Clone, Debug, PartialEq)]
pub struct Point {
    pub name: String,
    /// `gauge` or `sum`.
    pub kind: String,
    pub attributes: Vec<(String, String)>,
    pub value: f64,
    pub time_unix_nano: u64,
    pub start_time_unix_nano: u64,
    pub monotonic: bool,
    pub temporality: i64,
    pub service_name: String,
    pub scope: String,
    pub description: String,
}

impl OtlpReceiver {
    /// Start one on `port` (a free one when None), appending to `out` (a new file when
    /// None); waits until it listens.
    pub fn start(port: Option<u16>, out: Option<PathBuf>) -> OtlpReceiver {
        let python = receiver_python();
        let port = port.unwrap_or_else(|| free_port().expect("a free port"));
        let out = out.unwrap_or_else(|| scratch_dir("otlp").join("received.jsonl"));
        let script = repo_root().join("testkit/src/otlp_receiver.py");
        let mut child = Command::new(python)
            .arg(script)
            .arg(port.to_string())
            .arg(&out)
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .unwrap_or_else(|e| panic!("starting the OTLP receiver: {e}"));
        let mut line = String::new();
        if let Some(stdout) = child.stdout.take() {
            use std::io::BufRead;
            let _ = std::io::BufReader::new(stdout).read_line(&mut line);
        }
        assert_eq!(line.trim(), "ready", "the OTLP receiver did not start");
        OtlpReceiver {
            port,
            out,
            _process: Process(child),
        }
    }

    pub fn endpoint(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    /// Every request received so far, each as its points.
    pub fn requests(&self) -> Vec<Vec<Point>> {
        read_requests(&self.out)
    }
}

/// The requests recorded in `out`.
pub fn read_requests(out: &Path) -> Vec<Vec<Point>> {
    let text = std::fs::read_to_string(out).unwrap_or_default();
    text.lines()
        .filter(|l| l.ends_with('}'))
        .map(|line| {
            let json: serde_json::Value = serde_json::from_str(line).expect("a JSON line");
            json["points"]
                .as_array()
                .map(|points| points.iter().map(point).collect())
                .unwrap_or_default()
        })
        .collect()
}

fn point(p: &serde_json::Value) -> Point {
    let s = |v: &serde_json::Value| v.as_str().unwrap_or_default().to_owned();
    let value = s(&p[3]);
    Point {
        name: s(&p[0]),
        kind: s(&p[1]),
        attributes: p[2]
            .as_array()
            .map(|a| a.iter().map(|kv| (s(&kv[0]), s(&kv[1]))).collect())
            .unwrap_or_default(),
        value: match value.as_str() {
            "nan" => f64::NAN,
            "inf" => f64::INFINITY,
            "-inf" => f64::NEG_INFINITY,
            v => v.parse().unwrap_or_else(|_| panic!("value {v:?}")),
        },
        time_unix_nano: p[4].as_u64().unwrap_or_default(),
        start_time_unix_nano: p[5].as_u64().unwrap_or_default(),
        monotonic: p[6].as_bool().unwrap_or_default(),
        temporality: p[7].as_i64().unwrap_or_default(),
        service_name: p[8]["service.name"].as_str().unwrap_or_default().to_owned(),
        scope: s(&p[9]),
        description: s(&p[10]),
    }
}
