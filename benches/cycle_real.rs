//! Collection cycles against the real test broker (Tansu in Docker, the test kit `tidemark-testkit`):
//! N groups × M partitions, every group lagging on every partition.
//!
//! ```text
//! cargo bench --bench cycle_real                            # 20 × 200, then 200 × 2,000
//! cargo bench --bench cycle_real -- --sizes 200x2000 --cycles 10 --records 100
//! ```
//!
//! Options: `--sizes GxP[,GxP...]` (groups × partitions, over `--topics 10` topics),
//! `--records 100` (records per partition, produced as one batch, then one single-record
//! batch: the test broker's ListOffsets LATEST is only right after those), `--value-bytes
//! 100`, `--cycles 10`, `--granularity topic|partition` (default topic), `--fetch-budget 2`
//! (Fetch requests per broker per cycle; the configuration default).
//!
//! `--exporter-bin PATH` runs that binary (e.g. the static musl build) instead, as a user
//! would, for `--seconds 60` with `--poll 10` (seconds): its peak RSS and CPU time from
//! /proc, and every group partition's lag checked against what the setup wrote. The
//! issue-17 case, 200 groups × 2 topics × 100 partitions = 40,000 group partitions:
//! `cargo bench --bench cycle_real -- --sizes 200x200 --topics 2 --exporter-bin
//! target/x86_64-unknown-linux-musl/release/tidemark`.
//!
//! Setup (topics, one produce per batch, one OffsetCommit per group with all its partitions)
//! runs in this process with the test workload and is timed; the cycles run in a child
//! process (this binary with `--child`), so the reported RSS is the exporter's alone.

use tidemark_testkit as common;
mod support;

use std::time::{Instant, SystemTime, UNIX_EPOCH};

use common::{Broker, Codec, Workload};
use support::{spawn_child, summarize, Args};

fn main() {
    let args = Args::parse();
    if args.flag("child") {
        support::run_child(&args);
        return;
    }
    let sizes = args.get("sizes").unwrap_or("20x200,200x2000").to_string();
    let topics: usize = args.num("topics", 10);
    let records: usize = args.num("records", 100);
    let value_bytes: usize = args.num("value-bytes", 100);
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("runtime");
    let mut summaries = Vec::new();
    for (groups, partitions) in support::sizes(&sizes) {
        let topics = topics.min(partitions).max(1);
        let per_topic = partitions / topics;
        eprintln!(
            "real broker: {groups} groups × {} partitions ({topics} topics × {per_topic}), {records} records of {value_bytes} bytes per partition",
            topics * per_topic
        );
        let (broker, (setup, first_ts_ms)) = runtime.block_on(async {
            let broker = Broker::start().await;
            let setup = setup(
                &broker.bootstrap,
                groups,
                topics,
                per_topic,
                records,
                value_bytes,
            )
            .await;
            (broker, setup)
        });
        eprintln!("  setup: {setup}");
        if let Some(bin) = args.get("exporter-bin") {
            let truth = support::external::Truth {
                topics: (0..topics)
                    .map(|t| format!("bench-events-{t:02}"))
                    .collect(),
                per_topic,
                groups,
                records,
                first_ts_ms,
            };
            let seconds = args.num::<u64>("seconds", 60);
            let poll = args.num::<u64>("poll", 10);
            let s = runtime.block_on(support::external::run(
                std::path::Path::new(bin),
                &broker.bootstrap,
                &truth,
                seconds,
                poll,
            ));
            let s = format!(
                "real broker: {groups} groups × {} partitions\n{s}\nsetup: {setup}\n",
                topics * per_topic
            );
            eprintln!("{s}");
            summaries.push(s);
            runtime.block_on(async move { drop(broker) });
            continue;
        }
        let mut child_args = vec![
            "--bootstrap".to_string(),
            broker.bootstrap.clone(),
            "--cycles".to_string(),
            args.num::<usize>("cycles", 10).to_string(),
            "--granularity".to_string(),
            args.get("granularity").unwrap_or("topic").to_string(),
        ];
        if let Some(b) = args.get("fetch-budget") {
            child_args.extend(["--fetch-budget".to_string(), b.to_string()]);
        }
        let report = spawn_child(&child_args, |_| {});
        let title = format!(
            "real broker (Tansu 0.6.0): {groups} groups × {} partitions, every group lagging on every partition, {records} records × {value_bytes} B per partition",
            topics * per_topic
        );
        let mut s = summarize(&title, &report);
        s.push_str(&format!("setup: {setup}\n"));
        eprintln!("{s}");
        summaries.push(s);
        runtime.block_on(async move { drop(broker) });
    }
    println!();
    for s in summaries {
        println!("{s}");
    }
}

/// Create the topics, produce, commit; return what it took.
async fn setup(
    bootstrap: &str,
    groups: usize,
    topics: usize,
    per_topic: usize,
    records: usize,
    value_bytes: usize,
) -> (String, i64) {
    let started = Instant::now();
    let names: Vec<String> = (0..topics)
        .map(|t| format!("bench-events-{t:02}"))
        .collect();
    let mut w = Workload::connect(bootstrap).await;
    for name in &names {
        w.create_topic(name, per_topic as i32).await;
    }
    let created = started.elapsed();
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as i64);
    // One batch of `records` records a second apart, an hour ago, then the last record.
    let value = vec![b'v'; value_bytes];
    let batch: Vec<(i64, Vec<u8>)> = (0..records)
        .map(|i| (now - 3_600_000 + i as i64 * 1_000, value.clone()))
        .collect();
    // Four workloads (connections) produce concurrently, one topic slice each.
    let produce_started = Instant::now();
    let lanes = 4.min(topics);
    let mut tasks = Vec::new();
    for lane in 0..lanes {
        let lane_topics: Vec<String> = names.iter().skip(lane).step_by(lanes).cloned().collect();
        let batch = batch.clone();
        let bootstrap = bootstrap.to_string();
        tasks.push(tokio::spawn(async move {
            let mut w = Workload::connect(&bootstrap).await;
            for t in &lane_topics {
                for p in 0..per_topic as i32 {
                    w.produce(t, p, Codec::None, &batch).await;
                    w.produce(t, p, Codec::None, &[(now - 60_000, b"last".to_vec())])
                        .await;
                }
            }
        }));
    }
    for t in tasks {
        t.await.expect("producer");
    }
    let produced = produce_started.elapsed();
    // Every group commits every partition, at offsets spread over the batch (never at its
    // end): one OffsetCommit per group.
    let commit_started = Instant::now();
    for g in 0..groups {
        let group = format!("bench-consumer-{g:03}");
        let offsets: Vec<(&str, i32, i64)> = names
            .iter()
            .flat_map(|t| (0..per_topic as i32).map(move |p| (t.as_str(), p)))
            .map(|(t, p)| (t, p, ((g * 7 + p as usize * 3) % records) as i64))
            .collect();
        w.commit_offsets(&group, &offsets).await;
    }
    let committed = commit_started.elapsed();
    let summary = format!(
        "{:.1} s in all (topics {:.1} s; produce {} batches {:.1} s; commit {} offsets in {} requests {:.1} s)",
        started.elapsed().as_secs_f64(),
        created.as_secs_f64(),
        2 * topics * per_topic,
        produced.as_secs_f64(),
        groups * topics * per_topic,
        groups,
        committed.as_secs_f64()
    );
    (summary, now - 3_600_000)
}
