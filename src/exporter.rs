//! The running exporter: HTTP server, one collector task per cluster, and the push
//! exporters that are enabled.
//!
//! `main` starts one from the configuration file; integration tests start one in-process
//! on an ephemeral port.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::watch;
use tokio::task::JoinHandle;

use crate::config::Config;
use crate::kafka::ResponseBudget;
use crate::state::ExporterState;
use crate::{collect, export, ha, http};

/// A running exporter.
pub struct Exporter {
    address: SocketAddr,
    state: Arc<ExporterState>,
    stop: watch::Sender<bool>,
    tasks: Vec<JoinHandle<()>>,
}

impl Exporter {
    /// Bind `exporter.http_host:http_port` and start serving and collecting.
    pub async fn start(config: Config) -> std::io::Result<Exporter> {
        let exporter = Arc::new(config.exporter.clone());
        let listener = bind(&exporter.http_host, exporter.http_port).await?;
        let address = listener.local_addr()?;
        let clusters: Vec<(String, Vec<(String, String)>)> = config
            .clusters
            .iter()
            .map(|c| {
                let labels = c
                    .labels
                    .iter()
                    .map(|(k, v)| (k.clone(), v.clone()))
                    .collect();
                (c.name.clone(), labels)
            })
            .collect();
        let state = ExporterState::new(&clusters, exporter.granularity);
        state.set_staleness(exporter.staleness());
        // One budget for the whole process: every connection of every cluster shares it.
        let budget = ResponseBudget::new(
            usize::try_from(exporter.max_response_memory).unwrap_or(usize::MAX),
        );
        let (stop, stopped) = watch::channel(false);
        let mut tasks = vec![http::spawn_dedicated(
            listener,
            state.clone(),
            stopped.clone(),
            http::ServerLimits::default(),
        )?];
        let leadership = &exporter.leadership;
        let identity = leadership
            .enabled
            .then(|| ha::identity(leadership.identity.as_deref()));
        if let Some(identity) = &identity {
            state.set_identity(identity);
            tracing::info!(%identity, group = %leadership.lease_name, session_timeout = ?leadership.lease_duration, "high availability: joining the coordination group of every cluster");
        }
        tasks.extend(export::spawn(&exporter, &state, &stopped));
        for cluster in config.clusters {
            let settings = Arc::new(cluster);
            let coordinated = identity.as_ref().map(|identity| {
                let (ownership, owned) = watch::channel(Arc::new(ha::Ownership::default()));
                let (groups_seen, seen) = watch::channel(0u32);
                tasks.push(tokio::spawn(ha::run(
                    ha::MemberTask {
                        settings: settings.clone(),
                        exporter: exporter.clone(),
                        budget: budget.clone(),
                        identity: identity.clone(),
                        state: state.clone(),
                        ownership,
                        groups_seen: seen,
                    },
                    stopped.clone(),
                )));
                collect::Coordinated {
                    ownership: owned,
                    groups_seen,
                }
            });
            tasks.push(tokio::spawn(collect::run_cluster(
                settings,
                exporter.clone(),
                budget.clone(),
                state.clone(),
                coordinated,
                stopped.clone(),
            )));
        }
        tracing::info!(%address, clusters = clusters.len(), poll_interval = ?exporter.poll_interval, "tidemark {} started", env!("CARGO_PKG_VERSION"));
        Ok(Exporter {
            address,
            state,
            stop,
            tasks,
        })
    }

    /// The address the HTTP server listens on.
    pub fn address(&self) -> SocketAddr {
        self.address
    }

    /// What the collectors published so far.
    pub fn state(&self) -> &Arc<ExporterState> {
        &self.state
    }

    /// Stop accepting and collecting; wait up to `grace` for tasks to finish, then abandon
    /// them (a cycle stuck on an unreachable broker is dropped, not awaited).
    pub async fn shutdown(self, grace: Duration) {
        let _ = self.stop.send(true);
        let aborts: Vec<_> = self.tasks.iter().map(JoinHandle::abort_handle).collect();
        let all = futures_util::future::join_all(self.tasks);
        if tokio::time::timeout(grace, all).await.is_err() {
            tracing::warn!("work still running after {grace:?} is abandoned");
            for task in aborts {
                task.abort();
            }
        }
    }
}

/// Listen on `host:port`: an IP address as it is (brackets allowed around IPv6), a host name
/// through the system resolver (the config accepts nothing else).
async fn bind(host: &str, port: u16) -> std::io::Result<tokio::net::TcpListener> {
    let unbracketed = host
        .strip_prefix('[')
        .and_then(|h| h.strip_suffix(']'))
        .unwrap_or(host);
    let bound = match unbracketed.parse::<std::net::IpAddr>() {
        Ok(ip) => tokio::net::TcpListener::bind(SocketAddr::new(ip, port)).await,
        Err(_) => tokio::net::TcpListener::bind((host, port)).await,
    };
    bound.map_err(|e| {
        std::io::Error::new(
            e.kind(),
            format!(
                "cannot listen on {host} port {port} (exporter.http_host / exporter.http_port): {e}"
            ),
        )
    })
}
