//! Collection cycles against a large synthetic cluster (see `support/synthetic.rs`),
//! measuring tidemark's own CPU time, peak RSS and requests per broker per cycle.
//!
//! ```text
//! cargo bench --bench cycle_synthetic                      # 200 groups × 5,000 partitions, then 2,000 × 50,000
//! cargo bench --bench cycle_synthetic -- --sizes 2000x50000 --churn 10 --cycles 10
//! ```
//!
//! Options: `--sizes GxP[,GxP...]` (groups × partitions; partitions = topics × 50),
//! `--brokers 3`, `--cycles 10`, `--churn PCT` (percent of group partitions whose committed
//! offset moves every cycle; default 0), `--topics-per-group 1`, `--granularity topic|partition`
//! (default topic, the configuration default), `--advance 200` (records appended per
//! partition per cycle), `--fetch-budget 2` (Fetch requests per broker per cycle; the
//! configuration default), `--rss-timeline` (VmRSS sampled every 2 ms in the measured process:
//! the peak of each cycle, when it happened, and the maximum per 50 ms).
//!
//! The synthetic responder runs in this process; the cycles run in a child process (this
//! binary with `--child`), so the reported RSS is the exporter's alone.

mod support;

use support::{spawn_child, summarize, synthetic, Args};

const PARTITIONS_PER_TOPIC: usize = 50;

fn main() {
    let args = Args::parse();
    if args.flag("child") {
        support::run_child(&args);
        return;
    }
    let sizes = args
        .get("sizes")
        .unwrap_or("200x5000,2000x50000")
        .to_string();
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .max_blocking_threads(2)
        .enable_all()
        .build()
        .expect("runtime");
    let mut summaries = Vec::new();
    for (groups, partitions) in support::sizes(&sizes) {
        let topics = partitions.div_ceil(PARTITIONS_PER_TOPIC).max(1);
        let shape = synthetic::Shape {
            brokers: args.num("brokers", 3),
            topics,
            partitions_per_topic: PARTITIONS_PER_TOPIC,
            groups,
            topics_per_group: args.num("topics-per-group", 1),
            members_per_group: 3,
            records_per_batch: args.num("records-per-batch", 128),
            value_bytes: 100,
            advance_per_cycle: args.num("advance", 200),
            churn_pct: args.num("churn", 0),
        };
        let model = runtime.block_on(synthetic::start(shape.clone()));
        eprintln!(
            "synthetic cluster: {} brokers, {} topics × {} partitions = {} partitions, {} groups, {} group partitions, churn {}%",
            shape.brokers,
            shape.topics,
            shape.partitions_per_topic,
            shape.partitions(),
            shape.groups,
            shape.group_partitions(),
            shape.churn_pct
        );
        let mut child_args = vec![
            "--bootstrap".to_string(),
            model.bootstrap(),
            "--cycles".to_string(),
            args.num::<usize>("cycles", 10).to_string(),
            "--granularity".to_string(),
            args.get("granularity").unwrap_or("topic").to_string(),
        ];
        if let Some(b) = args.get("fetch-budget") {
            child_args.extend(["--fetch-budget".to_string(), b.to_string()]);
        }
        if let Some(w) = args.get("workers") {
            child_args.extend(["--workers".to_string(), w.to_string()]);
        }
        if args.flag("rss-timeline") {
            child_args.push("--rss-timeline".to_string());
        }
        let served_before = model
            .served_bytes
            .load(std::sync::atomic::Ordering::Relaxed);
        let report = spawn_child(&child_args, |_| model.advance());
        let served = model
            .served_bytes
            .load(std::sync::atomic::Ordering::Relaxed)
            - served_before;
        let title = format!(
            "synthetic: {} brokers, {} groups × {} partitions ({} group partitions), churn {}%, granularity {}",
            shape.brokers,
            shape.groups,
            shape.partitions(),
            shape.group_partitions(),
            shape.churn_pct,
            args.get("granularity").unwrap_or("topic"),
        );
        let mut s = summarize(&title, &report);
        s.push_str(&format!(
            "responder served {:.1} MiB over {} cycles\n",
            served as f64 / 1048576.0,
            report.cycles.len()
        ));
        eprintln!("{s}");
        summaries.push(s);
    }
    println!();
    for s in summaries {
        println!("{s}");
    }
}
