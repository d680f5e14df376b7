//! Shared by the benchmark binaries (`harness = false`): process statistics, the measured
//! exporter process, and the report it prints.
//!
//! Every benchmark that reports memory runs tidemark in a child process (the bench binary
//! re-executes itself with `--child ...`), so the peak RSS it reports is the exporter's
//! alone: the broker, the workload and the synthetic responder live in the parent.
//!
//! The child runs what the collector runs per cycle, through the library:
//! [`CycleState::run`] → [`lag::compute`] → [`ExporterState::publish`] (which renders the
//! exposition in both formats, as the exporter does), and prints one `cycle ...` line of
//! `key=value` pairs per cycle, which the parent parses ([`CycleLine`]).
#![allow(dead_code)]

pub mod external;
pub mod synthetic;

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use kafka_protocol::messages::ApiKey;
use tidemark::collect::{self, CycleState};
use tidemark::config::{ClusterSettings, ExporterConfig, Granularity};
use tidemark::kafka::{Cluster, ResponseBudget};
use tidemark::lag;
use tidemark::state::{CycleOutcome, ExporterState};

/// `--sizes GxP[,GxP...]`: (groups, partitions) pairs; panics on anything else.
pub fn sizes(arg: &str) -> Vec<(usize, usize)> {
    arg.split(',')
        .map(|size| {
            size.split_once('x')
                .and_then(|(g, p)| Some((g.parse::<usize>().ok()?, p.parse::<usize>().ok()?)))
                .unwrap_or_else(|| panic!("--sizes {size}: expected GROUPSxPARTITIONS"))
        })
        .collect()
}

/// The APIs a cycle may send, in the order reports list them.
pub const CYCLE_APIS: [ApiKey; 8] = [
    ApiKey::ListGroups,
    ApiKey::FindCoordinator,
    ApiKey::DescribeGroups,
    ApiKey::OffsetFetch,
    ApiKey::Metadata,
    ApiKey::ListOffsets,
    ApiKey::Fetch,
    ApiKey::DescribeConfigs,
];

// ---------------------------------------------------------------------------------------
// Process statistics
// ---------------------------------------------------------------------------------------

/// CPU time (user + system, all threads) of this process so far.
pub fn cpu_time() -> Duration {
    // SAFETY: getrusage writes into the zeroed struct we own; RUSAGE_SELF is always valid.
    let mut usage: libc::rusage = unsafe { std::mem::zeroed() };
    // SAFETY: as above.
    let rc = unsafe { libc::getrusage(libc::RUSAGE_SELF, &mut usage) };
    if rc != 0 {
        return Duration::ZERO;
    }
    let tv = |t: libc::timeval| {
        Duration::from_secs(t.tv_sec as u64) + Duration::from_micros(t.tv_usec as u64)
    };
    tv(usage.ru_utime) + tv(usage.ru_stime)
}

/// Samples this process's VmRSS every 2 ms from a thread of its own, so a report can say
/// *when* in a cycle the peak happened (the cycle's phases then say what ran then).
pub struct RssSampler {
    samples: Arc<std::sync::Mutex<Vec<(Instant, u64)>>>,
}

impl RssSampler {
    pub fn start() -> Self {
        let samples = Arc::new(std::sync::Mutex::new(Vec::new()));
        let out = samples.clone();
        std::thread::spawn(move || {
            let page_kib = 4;
            loop {
                // statm's second field: resident pages. Cheaper than parsing status.
                let rss = std::fs::read_to_string("/proc/self/statm")
                    .ok()
                    .and_then(|s| s.split_whitespace().nth(1)?.parse::<u64>().ok())
                    .unwrap_or(0)
                    * page_kib;
                if let Ok(mut v) = out.lock() {
                    v.push((Instant::now(), rss));
                }
                std::thread::sleep(Duration::from_millis(2));
            }
        });
        Self { samples }
    }

    /// The samples since `since` as `t_ms:max_rss_mib` per `bucket_ms`, and the peak
    /// (time after `since` in ms, KiB). Clears the samples.
    pub fn timeline(&self, since: Instant, bucket_ms: u64) -> (String, f64, u64) {
        let Ok(mut v) = self.samples.lock() else {
            return (String::new(), 0.0, 0);
        };
        let mut buckets: BTreeMap<u64, u64> = BTreeMap::new();
        let (mut peak_t, mut peak) = (0.0, 0);
        for (t, rss) in v.iter().filter(|(t, _)| *t >= since) {
            let ms_after = t.duration_since(since).as_secs_f64() * 1000.0;
            let b = buckets
                .entry(ms_after as u64 / bucket_ms * bucket_ms)
                .or_insert(0);
            *b = (*b).max(*rss);
            if *rss > peak {
                peak = *rss;
                peak_t = ms_after;
            }
        }
        v.clear();
        let mut line = String::new();
        for (t, kib) in buckets {
            let _ = write!(
                line,
                "{}{t}:{:.1}",
                if line.is_empty() { "" } else { "," },
                kib as f64 / 1024.0
            );
        }
        (line, peak_t, peak)
    }
}

/// (VmRSS, VmHWM) of this process in KiB, from /proc/self/status.
pub fn rss_kib() -> (u64, u64) {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    let field = |name: &str| {
        status
            .lines()
            .find_map(|l| l.strip_prefix(name))
            .and_then(|rest| rest.trim().trim_end_matches("kB").trim().parse().ok())
            .unwrap_or(0)
    };
    (field("VmRSS:"), field("VmHWM:"))
}

pub fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}

pub fn median(values: &[f64]) -> f64 {
    percentile(values, 50.0)
}

/// Nearest-rank percentile (`p` in 0..=100) of `values`; 0 when empty.
pub fn percentile(values: &[f64], p: f64) -> f64 {
    if values.is_empty() {
        return 0.0;
    }
    let mut v = values.to_vec();
    v.sort_by(f64::total_cmp);
    let rank = ((p / 100.0) * v.len() as f64).ceil() as usize;
    v[rank.clamp(1, v.len()) - 1]
}

/// The median of `values` where each value counts `weight` times.
pub fn weighted_median(values: &[(f64, u64)]) -> f64 {
    let mut v: Vec<(f64, u64)> = values.iter().copied().filter(|(_, w)| *w > 0).collect();
    v.sort_by(|a, b| a.0.total_cmp(&b.0));
    let total: u64 = v.iter().map(|(_, w)| w).sum();
    let mut seen = 0;
    for (value, w) in v {
        seen += w;
        if seen * 2 >= total {
            return value;
        }
    }
    0.0
}

// ---------------------------------------------------------------------------------------
// Command line
// ---------------------------------------------------------------------------------------

/// `--key value` arguments (cargo's own `--bench` flag is ignored).
#[derive(Clone, Debug, Default)]
pub struct Args {
    values: BTreeMap<String, String>,
}

impl Args {
    pub fn parse() -> Args {
        Self::from(std::env::args().skip(1))
    }

    pub fn from(args: impl IntoIterator<Item = String>) -> Args {
        let mut values = BTreeMap::new();
        let mut it = args.into_iter().peekable();
        while let Some(a) = it.next() {
            let Some(key) = a.strip_prefix("--") else {
                continue;
            };
            if key == "bench" {
                continue;
            }
            let value = match it.peek() {
                Some(v) if !v.starts_with("--") => it.next().unwrap_or_default(),
                _ => "true".to_string(),
            };
            values.insert(key.to_string(), value);
        }
        Args { values }
    }

    pub fn get(&self, key: &str) -> Option<&str> {
        self.values.get(key).map(String::as_str)
    }

    pub fn flag(&self, key: &str) -> bool {
        self.values.contains_key(key)
    }

    pub fn num<T: std::str::FromStr>(&self, key: &str, default: T) -> T {
        match self.get(key) {
            Some(v) => v
                .replace('_', "")
                .parse()
                .unwrap_or_else(|_| panic!("--{key} {v}: not a number")),
            None => default,
        }
    }

    pub fn granularity(&self) -> Granularity {
        match self.get("granularity") {
            None | Some("topic") => Granularity::Topic,
            Some("partition") => Granularity::Partition,
            Some(other) => panic!("--granularity {other}: expected topic or partition"),
        }
    }
}

// ---------------------------------------------------------------------------------------
// The measured process
// ---------------------------------------------------------------------------------------

/// Run `cycles` collection cycles against `bootstrap` in this process, printing one
/// `cycle` line each (see the module docs). Used by the `--child` mode of the benches.
///
/// Before each cycle after the first, `before_cycle(n)` is awaited (the synthetic bench uses
/// it to move offsets); it is not part of the measured time.
pub fn run_child(args: &Args) {
    let bootstrap = args.get("bootstrap").expect("--bootstrap").to_string();
    let cycles: usize = args.num("cycles", 10);
    let granularity = args.granularity();
    let workers: usize = args.num("workers", 2);
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(workers)
        .enable_all()
        .build()
        .expect("tokio runtime");
    runtime.block_on(async move {
        let (rss0, _) = rss_kib();
        println!("start rss_kib={rss0}");
        let sampler = args.flag("rss-timeline").then(RssSampler::start);
        let settings = Arc::new(ClusterSettings::new("bench", vec![bootstrap]));
        let exporter = ExporterConfig::default();
        let budget = ResponseBudget::default();
        let cluster = Cluster::connect(collect::client_config(&settings, &exporter, &budget))
            .await
            .expect("connect to the cluster");
        let mut cycle = CycleState::new(
            settings.clone(),
            true,
            exporter.performance.offset_fetch_timeout,
        );
        cycle.fetch_requests_per_broker = args.num(
            "fetch-budget",
            exporter.timestamp_sampling.fetch_requests_per_broker,
        );
        let state = ExporterState::new(&[("bench".to_string(), Vec::new())], granularity);
        for n in 1..=cycles {
            if n > 1 {
                // Let the parent change the cluster between cycles (it waits for this line).
                println!("ready {n}");
                let mut line = String::new();
                std::io::stdin().read_line(&mut line).expect("stdin");
            }
            let counters_before = request_counts(&cluster);
            let cpu0 = cpu_time();
            let t0 = Instant::now();
            let (snapshot, issues) = cycle.run(&cluster).await.expect("cycle");
            let t_kafka = t0.elapsed();
            let cpu_kafka = cpu_time() - cpu0;
            let group_partitions: usize = snapshot.groups.iter().map(|g| g.partitions.len()).sum();
            let sampled = snapshot
                .groups
                .iter()
                .flat_map(|g| &g.partitions)
                .filter(|p| matches!(p.sample, lag::Sample::At { .. }))
                .count();
            let poll_time = snapshot.poll_time;
            let t1 = Instant::now();
            let report = lag::compute_for(
                snapshot,
                collect::now_ms(),
                granularity == Granularity::Partition,
                None,
            );
            let t_lag = t1.elapsed();
            let with_time_lag = report
                .group_partitions
                .iter()
                .filter(|r| r.lag_seconds().is_some())
                .count();
            let cycle_time = t0.elapsed();
            let t2 = Instant::now();
            let outcome = CycleOutcome::Success {
                report: Arc::new(report),
                poll_time,
                health: tidemark::state::CycleHealth::complete([]),
            };
            let publish_state = state.clone();
            tokio::task::spawn_blocking(move || {
                publish_state.publish("bench", outcome, cycle_time)
            })
            .await
            .expect("publish");
            let t_render = t2.elapsed();
            let cpu_total = cpu_time() - cpu0;
            let wall = t0.elapsed();
            let rendered = state.rendered();
            let (rss, hwm) = rss_kib();
            let after = request_counts(&cluster);
            let fetch = cycle.last_fetch();

            let mut line = String::new();
            let _ = write!(
                line,
                "cycle n={n} wall_ms={:.2} kafka_ms={:.2} lag_ms={:.2} render_ms={:.2} \
                 cpu_ms={:.2} cpu_kafka_ms={:.2} rss_kib={rss} hwm_kib={hwm} \
                 group_partitions={group_partitions} sampled={sampled} with_time_lag={with_time_lag} \
                 cache_entries={} timestamps_failed={} metrics_bytes={} metrics_gzip_bytes={} series={} \
                 fetch_requests={} fetch_partitions={} fetch_samples={} fetch_record_bytes={} \
                 deferred={}",
                ms(wall),
                ms(t_kafka),
                ms(t_lag),
                ms(t_render),
                ms(cpu_total),
                ms(cpu_kafka),
                cycle.timestamps.len(),
                issues.timestamps_failed,
                rendered.prometheus_len(),
                rendered.gzip_len(tidemark::metrics::Format::Prometheus),
                rendered.series(),
                fetch.requests,
                fetch.partitions.len(),
                fetch.samples(),
                fetch.record_bytes(),
                cycle.deferred(),
            );
            // Requests per node and API sent during this cycle (ApiVersions excluded: it is
            // connection setup, not cycle work).
            line.push_str(" requests=");
            let mut first = true;
            for (node, apis) in &after {
                let total: u64 = apis
                    .iter()
                    .map(|(api, n)| n - counters_before.get(node).and_then(|b| b.get(api)).unwrap_or(&0))
                    .sum();
                let _ = write!(line, "{}{node}:{total}", if first { "" } else { "," });
                first = false;
            }
            line.push_str(" by_api=");
            let mut first = true;
            for (node, apis) in &after {
                for (api, n) in apis {
                    let d = n - counters_before.get(node).and_then(|b| b.get(api)).unwrap_or(&0);
                    if d > 0 {
                        let _ = write!(
                            line,
                            "{}{node}/{}:{d}",
                            if first { "" } else { "," },
                            api_name(*api)
                        );
                        first = false;
                    }
                }
            }
            // Wall time of each phase of `CycleState::run` (see `CyclePhases`).
            line.push_str(" phases=");
            for (i, (name, d)) in cycle.last_phases().named().iter().enumerate() {
                let _ = write!(line, "{}{name}:{:.2}", if i == 0 { "" } else { "," }, ms(*d));
            }
            // Bytes per time-lag sample: each fetched partition's record bytes (over all
            // rounds) divided by the samples it resolved, weighted by those samples.
            line.push_str(" per_sample=");
            let mut first = true;
            for p in &fetch.partitions {
                let _ = write!(
                    line,
                    "{}{}x{}",
                    if first { "" } else { "," },
                    p.record_bytes,
                    p.samples
                );
                first = false;
            }
            println!("{line}");
            if let Some(sampler) = &sampler {
                // Phase ends after the cycle start: offsets/describe/assemble/watermarks
                // /timestamps run in that order (describe alongside), then lag, publish.
                let (timeline, peak_ms, peak_kib) = sampler.timeline(t0, 50);
                println!(
                    "rss n={n} peak_ms={peak_ms:.0} peak_mib={:.1} kafka_end_ms={:.0} lag_end_ms={:.0} timeline={timeline}",
                    peak_kib as f64 / 1024.0,
                    ms(t_kafka),
                    ms(t_kafka + t_lag),
                );
            }
        }
        let (rss, hwm) = rss_kib();
        print_request_durations(&cluster);
        println!("done rss_kib={rss} hwm_kib={hwm}");
    });
}

/// One `duration` line per node and API with the requests of every cycle, from the
/// client's own histograms (`tidemark_kafka_request_duration_seconds`): count, mean, and
/// the bucket bounds the median and the 99th percentile fall under.
fn print_request_durations(cluster: &Cluster) {
    use tidemark::kafka::conn::REQUEST_DURATION_BUCKETS;
    for (node, c) in cluster.counters() {
        for api in CYCLE_APIS {
            let d = c.durations(api);
            let count = d.count();
            if count == 0 {
                continue;
            }
            // The bound of the bucket holding the request of rank `q` × count.
            let under = |q: f64| {
                let rank = ((q * count as f64).ceil() as u64).max(1);
                let mut seen = 0;
                for (i, n) in d.counts.iter().enumerate() {
                    seen += n;
                    if seen >= rank {
                        return REQUEST_DURATION_BUCKETS
                            .get(i)
                            .map_or("+Inf".to_string(), |b| format!("{b}s"));
                    }
                }
                "+Inf".to_string()
            };
            println!(
                "duration {node}/{} count={count} mean_ms={:.1} p50_under={} p99_under={}",
                api_name(api as i16),
                d.sum_seconds() * 1000.0 / count as f64,
                under(0.5),
                under(0.99)
            );
        }
    }
}

/// Requests sent so far per node and API (nodes as `Cluster::counters` numbers them).
fn request_counts(cluster: &Cluster) -> BTreeMap<i32, BTreeMap<i16, u64>> {
    cluster
        .counters()
        .into_iter()
        .map(|(node, c)| {
            let apis = CYCLE_APIS
                .iter()
                .map(|api| (*api as i16, c.requests(*api)))
                .collect();
            (node, apis)
        })
        .collect()
}

fn api_name(key: i16) -> String {
    ApiKey::try_from(key).map_or_else(|_| key.to_string(), |k| format!("{k:?}"))
}

// ---------------------------------------------------------------------------------------
// The parent side
// ---------------------------------------------------------------------------------------

/// One `cycle` line of the child, parsed.
#[derive(Clone, Debug, Default)]
pub struct CycleLine {
    pub fields: BTreeMap<String, String>,
}

impl CycleLine {
    pub fn parse(line: &str) -> CycleLine {
        let fields = line
            .split_whitespace()
            .skip(1)
            .filter_map(|kv| kv.split_once('='))
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        CycleLine { fields }
    }

    pub fn f(&self, key: &str) -> f64 {
        self.fields
            .get(key)
            .and_then(|v| v.parse().ok())
            .unwrap_or(0.0)
    }

    pub fn u(&self, key: &str) -> u64 {
        self.f(key) as u64
    }

    /// Requests per node id of this cycle (the bootstrap pseudo-node excluded).
    pub fn requests_per_node(&self) -> BTreeMap<i32, u64> {
        self.fields
            .get("requests")
            .map(|v| {
                v.split(',')
                    .filter_map(|e| e.split_once(':'))
                    .filter_map(|(n, c)| Some((n.parse().ok()?, c.parse().ok()?)))
                    .filter(|(n, _)| *n >= 0)
                    .collect()
            })
            .unwrap_or_default()
    }

    /// (phase, milliseconds) of this cycle, in the order the child printed them.
    pub fn phases(&self) -> Vec<(String, f64)> {
        self.fields
            .get("phases")
            .map(|v| {
                v.split(',')
                    .filter_map(|e| e.split_once(':'))
                    .filter_map(|(n, ms)| Some((n.to_string(), ms.parse().ok()?)))
                    .collect()
            })
            .unwrap_or_default()
    }

    pub fn by_api(&self) -> &str {
        self.fields.get("by_api").map_or("", String::as_str)
    }

    /// (record bytes, samples) of each fetched partition.
    pub fn per_sample(&self) -> Vec<(u64, u64)> {
        self.fields
            .get("per_sample")
            .map(|v| {
                v.split(',')
                    .filter_map(|e| e.split_once('x'))
                    .filter_map(|(b, s)| Some((b.parse().ok()?, s.parse().ok()?)))
                    .collect()
            })
            .unwrap_or_default()
    }
}

/// What the child reported.
#[derive(Debug, Default)]
pub struct ChildReport {
    pub start_rss_kib: u64,
    pub cycles: Vec<CycleLine>,
    pub final_rss_kib: u64,
    pub final_hwm_kib: u64,
    /// `duration` lines: request durations per node and API over every cycle.
    pub durations: Vec<String>,
}

/// Start this bench binary again as the measured process, with `args` after `--child`.
/// `between(n)` runs in the parent before cycle `n` (n ≥ 2) is allowed to start.
pub fn spawn_child(args: &[String], mut between: impl FnMut(usize)) -> ChildReport {
    let exe = std::env::current_exe().expect("current exe");
    // TIDEMARK_BENCH_WRAP="heaptrack -o /tmp/ht" runs the measured process under a tool.
    let wrap = std::env::var("TIDEMARK_BENCH_WRAP").unwrap_or_default();
    let mut words = wrap.split_whitespace();
    let mut command = match words.next() {
        Some(tool) => {
            let mut c = Command::new(tool);
            c.args(words).arg(&exe);
            c
        }
        None => Command::new(&exe),
    };
    let mut child = command
        .arg("--child")
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .expect("spawn the measured process");
    let mut stdin = child.stdin.take().expect("child stdin");
    let stdout = BufReader::new(child.stdout.take().expect("child stdout"));
    let mut report = ChildReport::default();
    for line in stdout.lines() {
        let line = line.expect("child output");
        let kv = CycleLine::parse(&line);
        if line.starts_with("start ") {
            report.start_rss_kib = kv.u("rss_kib");
        } else if let Some(n) = line.strip_prefix("ready ") {
            let n: usize = n.trim().parse().unwrap_or(0);
            between(n);
            use std::io::Write;
            writeln!(stdin, "go").expect("child stdin");
            stdin.flush().expect("child stdin");
        } else if line.starts_with("cycle ") {
            let c = kv;
            eprintln!(
                "  cycle {:>2}: wall {:>8.1} ms  cpu {:>8.1} ms  rss {:>6.1} MiB  requests/broker {:?}  fetched {} samples, deferred {}",
                c.u("n"),
                c.f("wall_ms"),
                c.f("cpu_ms"),
                c.f("rss_kib") / 1024.0,
                c.requests_per_node(),
                c.u("fetch_samples"),
                c.u("deferred"),
            );
            report.cycles.push(c);
        } else if let Some(d) = line.strip_prefix("duration ") {
            report.durations.push(d.to_string());
        } else if line.starts_with("rss ") || line.starts_with("phases ") {
            eprintln!("  {line}");
        } else if line.starts_with("done ") {
            report.final_rss_kib = kv.u("rss_kib");
            report.final_hwm_kib = kv.u("hwm_kib");
        }
    }
    let status = child.wait().expect("child exit");
    assert!(status.success(), "the measured process failed: {status}");
    report
}

/// Print the summary of a child's cycles (the first cycle, with a cold timestamp cache,
/// separately from the median of the others).
pub fn summarize(title: &str, r: &ChildReport) -> String {
    let mut out = String::new();
    let _ = writeln!(out, "== {title}");
    let Some(first) = r.cycles.first() else {
        let _ = writeln!(out, "no cycles");
        return out;
    };
    let rest: Vec<&CycleLine> = r.cycles.iter().skip(1).collect();
    let med = |key: &str| median(&rest.iter().map(|c| c.f(key)).collect::<Vec<_>>());
    let max_req = |c: &CycleLine| c.requests_per_node().values().copied().max().unwrap_or(0);
    let _ = writeln!(
        out,
        "group partitions {}  with time lag {}  series {}  /metrics {:.1} MiB ({:.2} MiB gzip)",
        first.u("group_partitions"),
        r.cycles.last().map_or(0, |c| c.u("with_time_lag")),
        first.u("series"),
        first.f("metrics_bytes") / 1048576.0,
        first.f("metrics_gzip_bytes") / 1048576.0
    );
    let _ = writeln!(
        out,
        "{:<28} {:>10} {:>10} {:>10} {:>10} {:>10} {:>10}",
        "", "wall ms", "kafka ms", "lag ms", "render ms", "cpu ms", "req/broker"
    );
    let _ = writeln!(
        out,
        "{:<28} {:>10.1} {:>10.1} {:>10.1} {:>10.1} {:>10.1} {:>10}",
        "cycle 1 (cold cache)",
        first.f("wall_ms"),
        first.f("kafka_ms"),
        first.f("lag_ms"),
        first.f("render_ms"),
        first.f("cpu_ms"),
        max_req(first)
    );
    if !rest.is_empty() {
        let _ = writeln!(
            out,
            "{:<28} {:>10.1} {:>10.1} {:>10.1} {:>10.1} {:>10.1} {:>10}",
            format!("median of cycles 2..{}", r.cycles.len()),
            med("wall_ms"),
            med("kafka_ms"),
            med("lag_ms"),
            med("render_ms"),
            med("cpu_ms"),
            rest.iter().map(|c| max_req(c)).max().unwrap_or(0)
        );
    }
    if !rest.is_empty() {
        let walls: Vec<f64> = rest.iter().map(|c| c.f("wall_ms")).collect();
        let _ = writeln!(
            out,
            "cycle wall over cycles 2..{}: p50 {:.1} ms, p99 {:.1} ms",
            r.cycles.len(),
            percentile(&walls, 50.0),
            percentile(&walls, 99.0)
        );
    }
    let _ = write!(out, "{}", phase_table(first, &rest));
    let _ = writeln!(
        out,
        "requests by broker and API, cycle 1: {}",
        first.by_api()
    );
    if let Some(last) = rest.last() {
        let _ = writeln!(
            out,
            "requests by broker and API, cycle {}: {}",
            last.u("n"),
            last.by_api()
        );
    }
    for c in r.cycles.iter().filter(|c| c.u("fetch_samples") > 0).take(2) {
        let per = c.per_sample();
        let weighted: Vec<(f64, u64)> = per
            .iter()
            .map(|(b, s)| (*b as f64 / (*s).max(1) as f64, *s))
            .collect();
        let per_partition: Vec<f64> = per.iter().map(|(b, _)| *b as f64).collect();
        let samples: u64 = per.iter().map(|(_, s)| s).sum();
        let bytes: u64 = per.iter().map(|(b, _)| b).sum();
        let _ = writeln!(
            out,
            "cycle {}: {} samples fetched from {} partitions in {} Fetch requests, {:.1} MiB of records; \
             bytes per sample: median {:.0} B, mean {:.0} B; bytes per fetched partition: median {:.0} B, max {:.0} B",
            c.u("n"),
            samples,
            per.len(),
            c.u("fetch_requests"),
            bytes as f64 / 1048576.0,
            weighted_median(&weighted),
            bytes as f64 / samples.max(1) as f64,
            median(&per_partition),
            percentile(&per_partition, 100.0),
        );
    }
    if !r.durations.is_empty() {
        let _ = writeln!(
            out,
            "request durations over all cycles (node/api, tidemark_kafka_request_duration_seconds):"
        );
        for d in &r.durations {
            let _ = writeln!(out, "  {d}");
        }
    }
    let _ = writeln!(
        out,
        "RSS: {:.1} MiB at start, {:.1} MiB after {} cycles, peak (VmHWM) {:.1} MiB",
        r.start_rss_kib as f64 / 1024.0,
        r.final_rss_kib as f64 / 1024.0,
        r.cycles.len(),
        r.final_hwm_kib as f64 / 1024.0
    );
    let deferred: Vec<String> = r
        .cycles
        .iter()
        .take_while(|c| c.u("deferred") > 0)
        .map(|c| format!("cycle {}: {}", c.u("n"), c.u("deferred")))
        .collect();
    if !deferred.is_empty() {
        let _ = writeln!(
            out,
            "samples deferred by the Fetch budget: {}; none from cycle {} on",
            deferred.join(", "),
            deferred.len() + 1
        );
    }
    let failed: u64 = r.cycles.iter().map(|c| c.u("timestamps_failed")).sum();
    if failed > 0 {
        let _ = writeln!(out, "timestamps failed (all cycles): {failed}");
    }
    out
}

/// Wall time per phase of `CycleState::run` (ms): cycle 1, then p50 and p99 over the rest.
fn phase_table(first: &CycleLine, rest: &[&CycleLine]) -> String {
    let mut out = String::new();
    let names: Vec<String> = first.phases().into_iter().map(|(n, _)| n).collect();
    if names.is_empty() {
        return out;
    }
    let of = |c: &CycleLine, name: &str| {
        c.phases()
            .into_iter()
            .find(|(n, _)| n == name)
            .map_or(0.0, |(_, ms)| ms)
    };
    let _ = writeln!(
        out,
        "{:<14} {:>12} {:>12} {:>12}",
        "phase (ms)", "cycle 1", "p50 2..N", "p99 2..N"
    );
    for name in &names {
        let values: Vec<f64> = rest.iter().map(|c| of(c, name)).collect();
        let _ = writeln!(
            out,
            "{:<14} {:>12.1} {:>12.1} {:>12.1}",
            name,
            of(first, name),
            percentile(&values, 50.0),
            percentile(&values, 99.0)
        );
    }
    out
}
