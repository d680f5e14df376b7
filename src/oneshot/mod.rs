//! `tidemark lag`: read each cluster once (or every few seconds with `--watch`) with the
//! exporter's own cycle ([`collect::one_cycle`]: same wire client, same exact time lag),
//! and print each group's partitions worst first, as a table or as one JSON document.
//!
//! The pieces are pure where they can be: [`view`] reduces a report to what is shown
//! (filter, sort), [`table`] renders it for people, [`json`] for scripts, [`breaches`]
//! checks it against the thresholds. [`Session`] does the reading, [`run`] the loop.

pub mod table;
pub mod view;

use std::future::Future;
use std::io::{self, Write};
use std::sync::Arc;
use std::time::Duration;

use regex::Regex;

use crate::collect;
use crate::config::{ClusterSettings, ExporterConfig, Granularity};
use crate::kafka::{Cluster, ResponseBudget};
use crate::state::CycleHealth;

pub use view::{ClusterView, Document, GroupView, PartitionView};

/// How the command ended, as its exit status.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Status {
    /// Every cluster was read and nothing shown is over a threshold: 0.
    Ok,
    /// A partition shown is over `--max-lag-seconds` or `--max-lag`: 1.
    Exceeded,
    /// A cluster could not be read at all: 3 (whatever the thresholds say of the others).
    Unreadable,
}

/// Exit status for usage and configuration errors (clap's too).
pub const USAGE_ERROR: u8 = 2;

impl Status {
    pub fn code(self) -> u8 {
        match self {
            Status::Ok => 0,
            Status::Exceeded => 1,
            Status::Unreadable => 3,
        }
    }
}

/// Thresholds: a partition whose value is strictly above one is a breach. A partition
/// whose time lag is unknown never breaches `max_lag_seconds`.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct Limits {
    pub max_lag_seconds: Option<f64>,
    pub max_lag: Option<i64>,
}

/// What to show and how.
#[derive(Clone, Debug, Default)]
pub struct Options {
    /// Only groups whose names match (unanchored, like the config's filters).
    pub group: Option<Regex>,
    pub json: bool,
    pub limits: Limits,
    /// Read again after this long, until stopped.
    pub watch: Option<Duration>,
}

/// One partition over a threshold, described for stderr.
pub fn breaches(doc: &Document, limits: Limits) -> Vec<String> {
    let mut out = Vec::new();
    for c in &doc.clusters {
        for g in &c.groups {
            for p in &g.partitions {
                let over_seconds = limits
                    .max_lag_seconds
                    .zip(p.lag_seconds)
                    .is_some_and(|(max, s)| s > max);
                let over_lag = limits.max_lag.is_some_and(|max| p.lag > max);
                if over_seconds || over_lag {
                    out.push(format!(
                        "cluster {} group {} {}-{}: lag {}, time lag {}",
                        c.name,
                        g.group,
                        p.topic,
                        p.partition,
                        p.lag,
                        table::format_seconds(p.lag_seconds)
                    ));
                }
            }
        }
    }
    out
}

/// The exit status `doc` deserves under `limits`.
pub fn status(doc: &Document, limits: Limits) -> Status {
    if doc.clusters.iter().any(|c| c.error.is_some()) {
        Status::Unreadable
    } else if breaches(doc, limits).is_empty() {
        Status::Ok
    } else {
        Status::Exceeded
    }
}

/// The JSON document: pretty-printed, or on one line (`--watch`: one document per line).
pub fn json(doc: &Document, one_line: bool) -> String {
    let text = if one_line {
        serde_json::to_string(doc)
    } else {
        serde_json::to_string_pretty(doc)
    };
    // Plain structs of strings and numbers (non-finite floats become null): cannot fail,
    // but if it did, the output would still be JSON.
    text.unwrap_or_else(|e| serde_json::json!({ "error": e.to_string() }).to_string())
}

/// The clusters to read, with what survives between reads in `--watch` mode: connections
/// and the timestamp cache, as in the exporter.
pub struct Session {
    exporter: ExporterConfig,
    budget: ResponseBudget,
    timeout: Duration,
    targets: Vec<Target>,
}

struct Target {
    settings: Arc<ClusterSettings>,
    cycle: collect::CycleState,
    cluster: Option<Cluster>,
}

impl Session {
    /// Read `clusters` with `exporter`'s settings (timeouts, sampling, memory budget),
    /// giving each read of a cluster at most `timeout`. Rows are always kept
    /// (partition granularity), whatever the file says.
    pub fn new(
        clusters: Vec<ClusterSettings>,
        exporter: &ExporterConfig,
        timeout: Duration,
    ) -> Self {
        let exporter = ExporterConfig {
            granularity: Granularity::Partition,
            ..exporter.clone()
        };
        let budget = ResponseBudget::new(
            usize::try_from(exporter.max_response_memory).unwrap_or(usize::MAX),
        );
        let targets = clusters
            .into_iter()
            .map(|settings| {
                let settings = Arc::new(settings);
                Target {
                    cycle: collect::cycle_state(settings.clone(), &exporter),
                    settings,
                    cluster: None,
                }
            })
            .collect();
        Session {
            exporter,
            budget,
            timeout,
            targets,
        }
    }

    /// One read of every cluster, at the same time, each shown as [`ClusterView`].
    pub async fn read(&mut self, group: Option<&Regex>) -> Document {
        let (exporter, budget, timeout) = (&self.exporter, &self.budget, self.timeout);
        let reads = self
            .targets
            .iter_mut()
            .map(|t| read_cluster(t, exporter, budget, timeout, group));
        Document {
            clusters: futures_util::future::join_all(reads).await,
        }
    }
}

async fn read_cluster(
    t: &mut Target,
    exporter: &ExporterConfig,
    budget: &ResponseBudget,
    timeout: Duration,
    group: Option<&Regex>,
) -> ClusterView {
    let name = t.settings.name.clone();
    let cycle = collect::one_cycle(&mut t.cluster, &mut t.cycle, &t.settings, exporter, budget);
    let result = match tokio::time::timeout(timeout, cycle).await {
        Ok(Ok((report, _, health))) => Ok((report, health)),
        Ok(Err(e)) => Err(e.to_string()),
        Err(_) => Err(format!("no complete answer within {timeout:?} (--timeout)")),
    };
    match result {
        Ok((report, health)) => {
            warn_incomplete(&name, &health);
            ClusterView::from_report(&name, &report, health.complete, group)
        }
        Err(error) => {
            tracing::warn!(cluster = %name, %error, "the cluster could not be read");
            ClusterView::failed(&name, error)
        }
    }
}

/// What a partial read missed, on stderr (the table only says that it is partial).
fn warn_incomplete(cluster: &str, health: &CycleHealth) {
    if health.complete {
        return;
    }
    for (node, error) in &health.brokers {
        if let Some(error) = error {
            tracing::warn!(%cluster, broker = node, %error, "a broker failed: what it holds is missing");
        }
    }
    for error in &health.errors {
        tracing::warn!(%cluster, %error, "not read");
    }
}

/// Read, print to `out`, and with `--watch` repeat until `stop` completes; returns the
/// last read and its status. `terminal`: `out` is a terminal, so each `--watch` read
/// replaces the screen instead of following the last one.
pub async fn run<W: Write>(
    session: &mut Session,
    options: &Options,
    out: &mut W,
    terminal: bool,
    stop: impl Future<Output = ()>,
) -> io::Result<(Document, Status)> {
    tokio::pin!(stop);
    // Stopped before anything was read: nothing can be vouched for.
    let mut last = (Document::default(), Status::Unreadable);
    loop {
        // A stop that has come wins over a read that is done.
        let doc = tokio::select! {
            biased;
            () = &mut stop => return Ok(last),
            doc = session.read(options.group.as_ref()) => doc,
        };
        let status = status(&doc, options.limits);
        let text = if options.json {
            json(&doc, options.watch.is_some()) + "\n"
        } else {
            table::render(&doc)
        };
        let Some(every) = options.watch else {
            out.write_all(text.as_bytes())?;
            out.flush()?;
            return Ok((doc, status));
        };
        if terminal {
            // Cursor home, clear the screen.
            out.write_all(b"\x1b[H\x1b[2J")?;
        } else if !options.json {
            out.write_all(b"\n")?;
        }
        out.write_all(text.as_bytes())?;
        out.flush()?;
        last = (doc, status);
        tokio::select! {
            biased;
            () = &mut stop => return Ok(last),
            () = tokio::time::sleep(every) => {}
        }
    }
}

#[cfg(test)]
mod tests;
