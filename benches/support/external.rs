//! `cycle_real --exporter-bin PATH`: the shipped binary (e.g. the static musl build) run as
//! a user runs it, against the workload the bench set up: its peak RSS and CPU time from
//! /proc, the /metrics size, and every group partition's lag checked against the ground
//! truth the setup wrote.

use std::net::SocketAddr;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use tidemark_testkit::exporter::{get, Metrics};

/// What the setup wrote: topics × partitions, groups, and each committed offset.
pub struct Truth {
    pub topics: Vec<String>,
    pub per_topic: usize,
    pub groups: usize,
    pub records: usize,
    /// Timestamp of the record at offset 0 (record i is 1 s later per offset).
    pub first_ts_ms: i64,
}

impl Truth {
    fn committed(&self, g: usize, p: usize) -> i64 {
        ((g * 7 + p * 3) % self.records) as i64
    }
}

fn proc_field(pid: u32, name: &str) -> u64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .unwrap_or_default()
        .lines()
        .find_map(|l| l.strip_prefix(name))
        .and_then(|rest| rest.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap_or(0)
}

/// utime + stime of `pid` (clock ticks of 10 ms).
fn cpu(pid: u32) -> Duration {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    let after = stat.rsplit_once(')').map_or("", |(_, rest)| rest);
    let fields: Vec<u64> = after
        .split_whitespace()
        .map(|f| f.parse().unwrap_or(0))
        .collect();
    // Fields 14 and 15 of stat, counted after the command name: indexes 11 and 12.
    let ticks = fields.get(11).copied().unwrap_or(0) + fields.get(12).copied().unwrap_or(0);
    Duration::from_millis(ticks * 10)
}

struct Running(Child);

impl Drop for Running {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Run `bin` for `seconds` with a `poll`-second poll interval, scraping /metrics every
/// `poll` seconds as Prometheus would; print what it cost and whether every series is exact.
pub async fn run(bin: &Path, bootstrap: &str, truth: &Truth, seconds: u64, poll: u64) -> String {
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("a free port");
    let dir = std::env::temp_dir().join(format!("tidemark-bench-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("temp dir");
    let config = dir.join("bench.toml");
    std::fs::write(
        &config,
        format!(
            "[exporter]\npoll_interval = \"{poll}s\"\nhttp_host = \"127.0.0.1\"\nhttp_port = {port}\n\
             granularity = \"partition\"\n\n[[clusters]]\nname = \"bench\"\nbootstrap_servers = \"{bootstrap}\"\n"
        ),
    )
    .expect("write config");
    let log = std::fs::File::create(dir.join("tidemark.log")).expect("log file");
    let child = Command::new(bin)
        .arg("-c")
        .arg(&config)
        .stdout(Stdio::null())
        .stderr(log)
        .spawn()
        .unwrap_or_else(|e| panic!("running {}: {e}", bin.display()));
    let pid = child.id();
    let _running = Running(child);
    let address: SocketAddr = format!("127.0.0.1:{port}").parse().expect("address");
    let started = Instant::now();
    let mut last = None;
    let mut scrapes = Vec::new();
    while started.elapsed() < Duration::from_secs(seconds) {
        tokio::time::sleep(Duration::from_secs(poll)).await;
        if let Ok(r) = tokio::time::timeout(Duration::from_secs(30), get(address, "/metrics")).await
        {
            scrapes.push((r.latency, r.body.len()));
            last = Some(r.body);
        }
    }
    let (hwm, rss, cpu) = (
        proc_field(pid, "VmHWM:"),
        proc_field(pid, "VmRSS:"),
        cpu(pid),
    );
    let body = last.expect("at least one scrape");
    let size = body.len();
    let (exact, wrong, time_ok, time_off) = check(&Metrics::parse(&body), truth, poll);
    let expected = truth.groups * truth.topics.len() * truth.per_topic;
    let scrape_ms: Vec<f64> = scrapes.iter().map(|(l, _)| l.as_secs_f64() * 1e3).collect();
    format!(
        "exporter binary {} ({} bytes), {seconds} s, poll {poll} s:\n  \
         peak RSS (VmHWM) {:.1} MiB, RSS at the end {:.1} MiB, CPU {:.2} s\n  \
         /metrics {:.1} MiB (Prometheus text), scrape {:.1} ms median over {} scrapes\n  \
         group partitions: {exact} of {expected} with the exact offset lag ({wrong} wrong or missing); \
         {time_ok} with lag_seconds within {poll} s + 5 s of the record's age ({time_off} outside or missing)",
        bin.display(),
        std::fs::metadata(bin).map_or(0, |m| m.len()),
        hwm as f64 / 1024.0,
        rss as f64 / 1024.0,
        cpu.as_secs_f64(),
        size as f64 / (1024.0 * 1024.0),
        super::median(&scrape_ms),
        scrapes.len(),
    )
}

/// (exact lag, wrong lag, lag_seconds in tolerance, out of tolerance) over every group
/// partition the setup committed.
fn check(m: &Metrics, t: &Truth, poll: u64) -> (usize, usize, usize, usize) {
    let now_ms = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as i64);
    let high = t.records as i64 + 1;
    let (mut exact, mut wrong, mut time_ok, mut time_off) = (0, 0, 0, 0);
    for g in 0..t.groups {
        let group = format!("bench-consumer-{g:03}");
        for topic in &t.topics {
            for p in 0..t.per_topic {
                let ps = p.to_string();
                let labels = [
                    ("cluster_name", "bench"),
                    ("group", group.as_str()),
                    ("topic", topic.as_str()),
                    ("partition", ps.as_str()),
                ];
                let c = t.committed(g, p);
                if m.value("kafka_consumergroup_group_lag", &labels) == Some((high - c) as f64) {
                    exact += 1;
                } else {
                    wrong += 1;
                }
                let age = (now_ms - (t.first_ts_ms + c * 1000)) as f64 / 1000.0;
                match m.value("kafka_consumergroup_group_lag_seconds", &labels) {
                    Some(s) if s <= age && age - s <= (poll + 5) as f64 => time_ok += 1,
                    _ => time_off += 1,
                }
            }
        }
    }
    (exact, wrong, time_ok, time_off)
}
