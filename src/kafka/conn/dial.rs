//! Dialling a broker: TCP, TLS, ApiVersions and SASL within the connect timeout, with the
//! step that was under way named when it runs out.

use std::sync::Arc;
use std::time::Instant;

use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::TcpStream;

use super::{ApiCounters, Connection, ConnectionConfig};
use crate::kafka::error::{KafkaError, KafkaErrorKind, Result};
use crate::kafka::sasl;

/// A session of this lifetime is redialled after this fraction of it (Kafka's Java client
/// re-authenticates between 85% and 95%).
const REDIAL_AT_FRACTION: f64 = 0.85;

/// The steps of [`Connection::connect`], as errors name them.
const CONNECT_PHASES: [&str; 4] = ["TCP connect", "TLS handshake", "ApiVersions", "SASL"];

/// Why a plaintext connection closed before answering ApiVersions, with what that usually
/// means (a hint already given by the reader, e.g. a TLS record seen, is kept as it is).
fn closed_before_first_answer(reason: Option<String>) -> String {
    const HINT: &str = "the broker closed the connection before answering its first request \
        (ApiVersions): a TLS listener does that to a plaintext client (set security.protocol \
        to SSL or SASL_SSL), or the port is not a Kafka listener";
    match reason {
        Some(r) if r.contains("TLS record") || r.contains("HTTP") => r,
        Some(r) => format!("{r}; {HINT}"),
        None => HINT.to_string(),
    }
}

/// Object-safe alias used for the boxed stream.
trait TransportBox: AsyncRead + AsyncWrite + Send + Unpin {}
impl<T: AsyncRead + AsyncWrite + Send + Unpin> TransportBox for T {}

impl Connection {
    /// Dial `broker` ("host:port"), negotiate API versions, authenticate when configured.
    pub async fn connect(
        broker: &str,
        config: Arc<ConnectionConfig>,
        counters: Arc<ApiCounters>,
    ) -> Result<Connection> {
        let after = config.connect_timeout;
        // Which step the dial is in, read when it times out: "timed out" alone sends an
        // operator to the network when the broker answered TCP and then went silent.
        let phase = std::sync::atomic::AtomicUsize::new(0);
        let step = |i: usize| phase.store(i, std::sync::atomic::Ordering::Relaxed);
        let dial = async {
            let tcp =
                TcpStream::connect(broker)
                    .await
                    .map_err(|source| KafkaErrorKind::Connect {
                        broker: broker.to_string(),
                        phase: CONNECT_PHASES[0],
                        source: Arc::new(source),
                    })?;
            // Best effort: latency matters more than packet count for small requests.
            let _ = tcp.set_nodelay(true);
            step(1);
            let stream: Box<dyn TransportBox> = match config.security.tls() {
                Some(tls) => Box::new(tls.connect(broker, tcp).await?),
                None => Box::new(tcp),
            };
            step(2);
            let mut conn = Connection::start(broker, stream, config.clone(), counters);
            conn.negotiate_versions().await?;
            if let Some(sasl) = config.security.sasl() {
                step(3);
                let lifetime = sasl::authenticate(&conn, sasl).await?;
                conn.redial_at = lifetime.map(|l| Instant::now() + l.mul_f64(REDIAL_AT_FRACTION));
            }
            Ok::<_, KafkaError>(conn)
        };
        let timed_out = || {
            KafkaErrorKind::ConnectTimeout {
                broker: broker.to_string(),
                after,
                phase: CONNECT_PHASES
                    .get(phase.load(std::sync::atomic::Ordering::Relaxed))
                    .copied()
                    .unwrap_or("connect"),
            }
            .into()
        };
        let tls = config.security.tls().is_some();
        match tokio::time::timeout(after, dial).await {
            // The first requests' own timeout may fire before the dial's: the same failure.
            Ok(Err(e)) if matches!(e.kind(), KafkaErrorKind::Timeout { .. }) => Err(timed_out()),
            Err(_) => Err(timed_out()),
            Ok(Err(mut e)) if !tls && phase.load(std::sync::atomic::Ordering::Relaxed) == 2 => {
                if let KafkaErrorKind::ConnectionClosed { reason, .. } = e.kind_mut() {
                    *reason = Some(closed_before_first_answer(reason.take()));
                }
                Err(e)
            }
            Ok(result) => result,
        }
    }
}
