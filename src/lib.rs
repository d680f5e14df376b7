//! tidemark: a Kafka consumer-group lag exporter with exact time lag, in pure Rust.
//!
//! Data flows one way: [`config`] → [`collect`] (one task per cluster, using the [`kafka`]
//! wire client) → [`lag`] (pure math) → [`metrics`] (rendered once per cycle into
//! [`state`]) → [`http`], whose handlers never wait on Kafka, and [`export`] (OTLP and
//! remote write pushes of the same exposition). [`exporter`] ties them up; [`oneshot`] is
//! `tidemark lag`, one read printed as a table or JSON. [`model`] holds the values the layers
//! share (topic partitions, watermarks, sampled records) and [`secret`] the redacted secret
//! type, so that no layer imports another for them.

#![forbid(unsafe_code)]

pub mod backoff;
pub mod collect;
pub mod config;
pub mod export;
pub mod exporter;
pub mod ha;
pub mod http;
pub mod kafka;
pub mod lag;
pub mod metrics;
pub mod model;
pub mod oneshot;
pub mod secret;
pub mod state;
