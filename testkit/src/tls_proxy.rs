//! A real TLS terminator in front of a plaintext listener: HAProxy (Debian's `haproxy`) in
//! TCP mode, run as a local process. When `haproxy` is missing it is installed with
//! `apt-get` once per process (idempotent; needs root, as on the test machines).
//!
//! The broker behind it must advertise the terminator's address
//! ([`super::Broker::start_advertising`]) so every connection goes through TLS.

use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use super::pki::Pki;

/// Client certificates the terminator asks for.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ClientAuth {
    /// No client certificate requested.
    None,
    /// A client certificate signed by the test CA is required (`verify required`).
    Required,
}

/// A running HAProxy. Dropping it kills the process.
pub struct TlsTerminator {
    pub port: u16,
    child: Child,
    config: PathBuf,
}

impl Drop for TlsTerminator {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        let _ = std::fs::remove_file(&self.config);
    }
}

/// `haproxy`'s path, installing the Debian package when needed. Panics with the apt
/// output when it cannot.
pub fn haproxy() -> &'static str {
    static PATH: OnceLock<String> = OnceLock::new();
    PATH.get_or_init(|| {
        if let Some(p) = which("haproxy") {
            return p;
        }
        eprintln!("haproxy is missing: installing the Debian package (apt-get)");
        let update = Command::new("apt-get")
            .args(["update", "-qq"])
            .output()
            .expect("run apt-get update");
        let install = Command::new("apt-get")
            .args(["install", "-y", "-qq", "--no-install-recommends", "haproxy"])
            .env("DEBIAN_FRONTEND", "noninteractive")
            .output()
            .expect("run apt-get install haproxy");
        match which("haproxy") {
            Some(p) => p,
            None => panic!(
                "cannot install haproxy: apt-get update: {}{}\napt-get install: {}{}",
                String::from_utf8_lossy(&update.stdout),
                String::from_utf8_lossy(&update.stderr),
                String::from_utf8_lossy(&install.stdout),
                String::from_utf8_lossy(&install.stderr)
            ),
        }
    })
}

fn which(program: &str) -> Option<String> {
    for dir in [
        "/usr/sbin",
        "/usr/bin",
        "/usr/local/sbin",
        "/usr/local/bin",
        "/sbin",
    ] {
        let p = PathBuf::from(dir).join(program);
        if p.is_file() {
            return Some(p.display().to_string());
        }
    }
    None
}

impl TlsTerminator {
    /// TLS on 127.0.0.1:`port` with `pki`'s server certificate, relaying plaintext to
    /// `backend` ("host:port"). Waits until the port accepts connections.
    pub async fn start(
        port: u16,
        backend: &str,
        pki: &Pki,
        client_auth: ClientAuth,
    ) -> TlsTerminator {
        let haproxy = haproxy();
        let verify = match client_auth {
            ClientAuth::None => String::new(),
            ClientAuth::Required => format!(" ca-file {} verify required", pki.path("ca.pem")),
        };
        let config = pki.dir.join(format!("haproxy-{port}.cfg"));
        let text = format!(
            "global\n    maxconn 512\n\n\
             defaults\n    mode tcp\n    timeout connect 5s\n    timeout client 120s\n    timeout server 120s\n\n\
             frontend tls\n    bind 127.0.0.1:{port} ssl crt {crt}{verify}\n    default_backend broker\n\n\
             backend broker\n    server b1 {backend}\n",
            crt = pki.path("server.pem"),
        );
        std::fs::write(&config, text).expect("write the haproxy config");
        let child = Command::new(haproxy)
            .arg("-db")
            .arg("-f")
            .arg(&config)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::inherit())
            .spawn()
            .unwrap_or_else(|e| panic!("start {haproxy}: {e}"));
        let mut proxy = TlsTerminator {
            port,
            child,
            config,
        };
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            if let Ok(Some(status)) = proxy.child.try_wait() {
                panic!(
                    "haproxy exited at start ({status}); config:\n{}",
                    std::fs::read_to_string(&proxy.config).unwrap_or_default()
                );
            }
            if tokio::net::TcpStream::connect(("127.0.0.1", port))
                .await
                .is_ok()
            {
                // Something listens; make sure it is haproxy and not another process that
                // took the port (haproxy then exits at once, unable to bind).
                tokio::time::sleep(Duration::from_millis(200)).await;
                if let Ok(Some(status)) = proxy.child.try_wait() {
                    panic!(
                        "haproxy exited at start ({status}): port {port} taken by another process?"
                    );
                }
                return proxy;
            }
            assert!(
                Instant::now() < deadline,
                "haproxy did not listen on port {port} within 10 s"
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    pub fn address(&self) -> String {
        format!("127.0.0.1:{}", self.port)
    }
}
