//! A workload for a lag exporter to watch: two topics written in bursts and pauses, a
//! consumer group that keeps up, one that falls behind and catches up in waves, and an
//! idle topic whose time lag only grows. See `tidemark_testkit::demo_workload` (testkit/src/demo_workload.rs) for the rhythm.
//!
//! ```sh
//! cargo run --example workload -- --bootstrap 127.0.0.1:9092            # until Ctrl-C
//! cargo run --example workload -- --bootstrap 127.0.0.1:9092 --seconds 60
//! ```
//!
//! Point tidemark at the same broker (`cargo run --release -- -c examples/local.toml`) and
//! watch `http://127.0.0.1:8000/metrics`. `cargo run --release --example demo` does all of
//! this in one command, broker included.

use tidemark_testkit::demo_workload as workload;

use std::process::ExitCode;
use std::time::{Duration, Instant};

use clap::Parser;

/// Produce and commit against a Kafka broker in bursts, so consumer lag rises and falls.
#[derive(Parser, Debug)]
#[command(name = "workload")]
struct Args {
    /// The broker to talk to, host:port.
    #[arg(long, value_name = "HOST:PORT")]
    bootstrap: String,
    /// Stop after this many seconds (default: run until Ctrl-C).
    #[arg(long, value_name = "N")]
    seconds: Option<u64>,
}

#[tokio::main]
async fn main() -> ExitCode {
    let args = Args::parse();
    let deadline = args
        .seconds
        .map(|s| Instant::now() + Duration::from_secs(s));
    let run = async {
        let mut rhythm = workload::Rhythm::prepare(&args.bootstrap, "workload").await?;
        rhythm.run(deadline).await
    };
    tokio::select! {
        result = run => match result {
            Ok(()) => {
                println!("workload: done");
                ExitCode::SUCCESS
            }
            Err(e) => {
                eprintln!("workload: {e}");
                ExitCode::FAILURE
            }
        },
        _ = tokio::signal::ctrl_c() => {
            println!("workload: stopped");
            ExitCode::SUCCESS
        }
    }
}
