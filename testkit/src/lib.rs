//! tidemark's test kit: the harness shared by its integration tests, benches and examples
//! (a workspace member, `tidemark-testkit`, a dev-dependency of tidemark). Each test binary
//! imports it as `use tidemark_testkit as common;`, so `common::X` names its items.
//!
//! * [`Broker`] — a real Kafka-protocol broker (Tansu 0.6.0) in a locally built
//!   `FROM scratch` image, one container per test, on its own host port.
//! * [`Workload`] — a small Kafka client that is independent of tidemark's own
//!   client: it creates topics, produces record batches with chosen CreateTime
//!   timestamps and codecs, and commits consumer-group offsets. It keeps a
//!   [`Ledger`] of everything it wrote, the truth tests compare tidemark against.
//!   Its plain methods (`create_topic`, `produce`, `commit`, ...) panic with the full
//!   error; the `try_` forms return [`HarnessError`] for tests of failures. It also
//!   writes transactions (`init_transactions`, `produce_txn`, `end_txn`): the markers
//!   the broker writes are read back and kept in the ledger.
//! * [`Connection`] — the raw request/response connection the workload is built on,
//!   public so tests can send any request (`kafka_protocol::messages::*`) themselves.
//! * [`codec`] — pure-Rust batch compression (and decompression, to read back).
//! * [`truth`] — the series an exporter must serve for a ledger (contract of issue 16).
//! * [`corrupt_proxy`] — a TCP proxy flipping timestamp bits in Fetch responses.
//! * [`StubCluster`] — a scripted in-process Kafka cluster (several node ids, one port
//!   each) answering from a model of topics and groups, with injected error codes, a
//!   handler for anything else, and a log of every request: for routing, retry and
//!   version-negotiation tests that a real broker cannot stage.
//! * [`venv`] — pinned PyPI packages in a venv under `target/`, made once (flock-serialized).
//! * [`demo_workload`] — the demo's workload rhythm (`examples/demo.rs`, `examples/workload.rs`).
//!
//! Everything is `async` and safe to use from many
//! `#[tokio::test(flavor = "multi_thread")]` tests running in parallel in one binary.
//!
//! Environment:
//! * `TIDEMARK_REPO_ROOT` — where `docker/tansu/Dockerfile` and `.cache/tansu/` live
//!   (default: the repository this kit is in, see [`repo_root`]).
//! * `TIDEMARK_TANSU_BINARY` — use this tansu binary instead of downloading one.
pub mod broker;
pub mod codec;
pub mod corrupt_proxy;
pub mod demo_workload;
pub mod exporter;
pub mod ledger;
pub mod members;
pub mod pki;
pub mod promtool;
pub mod receivers;
pub mod sasl_front;
pub mod scram;
pub mod sigv4;
pub mod snapshot;
pub mod stub;
pub mod tls_proxy;
pub mod token_endpoint;
pub mod truth;
pub mod venv;
pub mod wire;
pub mod workload;

pub use broker::Broker;
pub use codec::Codec;
pub use exporter::{Metrics, RunningExporter};
pub use ledger::{Ledger, ProducedRecord};
pub use members::GroupMember;
pub use stub::{Stub, StubCluster};
pub use wire::Connection;
pub use workload::Workload;

use std::fmt;
use std::path::PathBuf;

/// The repository root: `$TIDEMARK_REPO_ROOT`, else the parent of this kit's directory
/// (`testkit/`). Repository files the kit reads (`docker/tansu/Dockerfile`, its own Python
/// helpers under `testkit/src/`) and writes (`.cache/`, venvs under `target/`) are found from it.
pub fn repo_root() -> PathBuf {
    std::env::var_os("TIDEMARK_REPO_ROOT")
        .map(PathBuf::from)
        .unwrap_or_else(|| {
            let kit = std::path::Path::new(env!("CARGO_MANIFEST_DIR"));
            kit.parent().unwrap_or(kit).to_path_buf()
        })
}

/// Everything the harness can fail with. `Display` says what was being done.
#[derive(Debug)]
pub enum HarnessError {
    /// Socket-level failure (connect, read, write) with what was being attempted.
    Io {
        context: String,
        source: std::io::Error,
    },
    /// A request got no complete answer in time.
    Timeout { context: String },
    /// Bytes from the broker could not be decoded, or a request could not be encoded.
    Protocol { context: String },
    /// The broker answered with a Kafka error code.
    Kafka {
        context: String,
        code: i16,
        message: Option<String>,
    },
    /// Preparing or running the broker container failed (pip, docker, tansu).
    Setup { context: String },
}

impl HarnessError {
    pub fn io(context: impl Into<String>, source: std::io::Error) -> Self {
        HarnessError::Io {
            context: context.into(),
            source,
        }
    }

    pub fn protocol(context: impl Into<String>) -> Self {
        HarnessError::Protocol {
            context: context.into(),
        }
    }

    pub fn setup(context: impl Into<String>) -> Self {
        HarnessError::Setup {
            context: context.into(),
        }
    }

    /// Turns a non-zero Kafka error code into an error.
    pub fn check(code: i16, context: impl FnOnce() -> String) -> Result<(), Self> {
        Self::check_msg(code, None, context)
    }

    pub fn check_msg(
        code: i16,
        message: Option<&kafka_protocol::protocol::StrBytes>,
        context: impl FnOnce() -> String,
    ) -> Result<(), Self> {
        if code == 0 {
            Ok(())
        } else {
            Err(HarnessError::Kafka {
                context: context(),
                code,
                message: message.map(|m| m.as_str().to_owned()),
            })
        }
    }

    /// The Kafka error code, when the broker answered with one.
    pub fn kafka_code(&self) -> Option<i16> {
        match self {
            HarnessError::Kafka { code, .. } => Some(*code),
            _ => None,
        }
    }
}

impl fmt::Display for HarnessError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            HarnessError::Io { context, source } => write!(f, "{context}: {source}"),
            HarnessError::Timeout { context } => write!(f, "{context}: timed out"),
            HarnessError::Protocol { context } => write!(f, "{context}"),
            HarnessError::Kafka {
                context,
                code,
                message,
            } => {
                write!(f, "{context}: Kafka error code {code}")?;
                if let Some(e) = kafka_protocol::ResponseError::try_from_code(*code) {
                    write!(f, " {e:?}")?;
                }
                if let Some(m) = message {
                    write!(f, " ({m})")?;
                }
                Ok(())
            }
            HarnessError::Setup { context } => write!(f, "test broker setup: {context}"),
        }
    }
}

impl std::error::Error for HarnessError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            HarnessError::Io { source, .. } => Some(source),
            _ => None,
        }
    }
}

pub type Result<T, E = HarnessError> = std::result::Result<T, E>;

/// A name unique within this process and across processes started at the same
/// time: `<prefix>-<pid>-<counter>-<nanos>`. Use it for topics and groups so tests
/// sharing a broker (or re-running) never collide.
pub fn unique_name(prefix: &str) -> String {
    use std::sync::atomic::{AtomicU64, Ordering};
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let n = COUNTER.fetch_add(1, Ordering::Relaxed);
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.subsec_nanos())
        .unwrap_or(0);
    format!("{prefix}-{}-{n}-{nanos:x}", std::process::id())
}
