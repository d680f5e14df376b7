//! tidemark's own Kafka wire client.
//!
//! - [`codec`]: sans-io framing (request encoding, size-capped frames, response headers);
//! - [`wire`]: bounded, panic-free decoders for every response tidemark reads;
//! - [`conn`]: one broker connection (pipelining, timeouts, ApiVersions negotiation);
//! - [`caps`] and [`budget`]: the largest response a request may get, and the bytes all
//!   responses may hold together;
//! - [`cluster`]: bootstrap, metadata, routing, connection pool, backoff;
//! - [`admin`]: the batched operations (O(brokers) requests per cycle);
//! - [`records`]: the timestamp of the record at an offset, from Fetch bytes;
//! - [`tls`] and [`sasl`]: transport security and authentication of a connection;
//! - [`versions`]: the requests tidemark sends and their versions, tied to the decoders'.

pub mod admin;
pub mod budget;
pub mod caps;
pub mod cluster;
pub mod codec;
pub mod conn;
pub mod error;
pub mod records;
pub mod requests;
pub mod sasl;
pub mod tls;
pub mod versions;
pub mod wire;

pub use admin::{
    FetchStats, GroupDescription, GroupList, GroupListing, GroupOffsets, GroupType,
    MemberDescription, PartitionFetch, TimestampQuery, TimestampResult, Watermarks,
};
pub use budget::{ResponseBudget, DEFAULT_RESPONSE_MEMORY};
pub use cluster::{ClientConfig, Cluster, ClusterConfig, Metadata, TopicPartition};
pub use conn::{ConnectionConfig, Security};
pub use error::{KafkaError, KafkaErrorKind, Result};
