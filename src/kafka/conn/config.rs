//! How a connection reaches its broker ([`Security`]) and the settings every connection of
//! a cluster shares ([`ConnectionConfig`]).

use std::time::Duration;

use crate::kafka::budget::ResponseBudget;
use crate::kafka::codec::DEFAULT_MAX_FRAME_BYTES;
use crate::kafka::sasl::Sasl;
use crate::kafka::tls::Tls;

/// How a connection reaches its broker: Kafka's `security.protocol`, with what each needs.
#[derive(Clone, Debug, Default)]
pub enum Security {
    /// Plain TCP.
    #[default]
    Plaintext,
    /// TLS.
    Ssl(Tls),
    /// SASL over plain TCP.
    SaslPlaintext(Sasl),
    /// SASL over TLS.
    SaslSsl(Tls, Sasl),
}

impl Security {
    /// The TLS settings, when connections use TLS.
    pub fn tls(&self) -> Option<&Tls> {
        match self {
            Self::Ssl(tls) | Self::SaslSsl(tls, _) => Some(tls),
            _ => None,
        }
    }

    /// The SASL settings, when connections authenticate.
    pub fn sasl(&self) -> Option<&Sasl> {
        match self {
            Self::SaslPlaintext(sasl) | Self::SaslSsl(_, sasl) => Some(sasl),
            _ => None,
        }
    }

    /// Kafka's name: PLAINTEXT, SSL, SASL_PLAINTEXT or SASL_SSL.
    pub fn protocol_name(&self) -> &'static str {
        match self {
            Self::Plaintext => "PLAINTEXT",
            Self::Ssl(_) => "SSL",
            Self::SaslPlaintext(_) => "SASL_PLAINTEXT",
            Self::SaslSsl(..) => "SASL_SSL",
        }
    }
}

/// Settings shared by every connection of a cluster.
#[derive(Clone, Debug)]
pub struct ConnectionConfig {
    /// Sent as `client_id` in every request header.
    pub client_id: String,
    /// TCP connect + ApiVersions (+ authentication) must finish within this.
    pub connect_timeout: Duration,
    /// Every request must be answered within this.
    pub request_timeout: Duration,
    /// Response frames larger than this are refused (the connection is closed).
    pub max_frame_bytes: usize,
    /// Response bytes held in memory, shared with every other connection given a clone.
    pub budget: ResponseBudget,
    /// Transport security.
    pub security: Security,
}

impl Default for ConnectionConfig {
    fn default() -> Self {
        Self {
            client_id: "tidemark".to_string(),
            connect_timeout: Duration::from_secs(10),
            request_timeout: Duration::from_secs(30),
            max_frame_bytes: DEFAULT_MAX_FRAME_BYTES,
            budget: ResponseBudget::default(),
            security: Security::Plaintext,
        }
    }
}
