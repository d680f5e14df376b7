//! A TCP proxy between a Kafka client and one broker that, while its switch is on, flips
//! one bit of the baseTimestamp of every v2 record batch in Fetch responses — the CRC
//! is left as it was, as a faulty NIC, disk or middlebox would leave it.
//!
//! It reads frames in both directions: request headers give (api key, version) per
//! correlation id of each connection; a response whose correlation id was a Fetch
//! (api key 1) is decoded with kafka-protocol, its record bytes patched, and re-encoded
//! (same version, same length). Everything else is relayed unchanged.
//!
//! The broker must advertise the proxy's address ([`super::Broker::start_advertising`]
//! with [`CorruptProxy::port`]) so every connection of the client goes through it.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use bytes::{Bytes, BytesMut};
use kafka_protocol::messages::{ApiKey, FetchResponse, ResponseHeader};
use kafka_protocol::protocol::{Decodable, Encodable};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::task::JoinHandle;

use super::wire::MAX_FRAME;

/// The bit flipped in a batch's baseTimestamp: 2^20 ms ≈ 17.5 min. A plausible
/// timestamp, wrong by far more than any tolerance, that only the CRC can reveal.
pub const FLIPPED_BIT: u32 = 20;
/// Offset of baseTimestamp (i64, big-endian) in a v2 batch.
const BASE_TIMESTAMP_AT: usize = 27;
const MAGIC_AT: usize = 16;
const BATCH_HEADER_LEN: usize = 61;

#[derive(Default)]
struct Shared {
    corrupt: AtomicBool,
    corrupted_batches: AtomicU64,
    corrupted_responses: AtomicU64,
    fetch_responses: AtomicU64,
}

/// A running proxy. Dropping it stops accepting and closes every relayed connection.
pub struct CorruptProxy {
    pub port: u16,
    shared: Arc<Shared>,
    accept: JoinHandle<()>,
    conns: Arc<Mutex<Vec<JoinHandle<()>>>>,
}

impl Drop for CorruptProxy {
    fn drop(&mut self) {
        self.accept.abort();
        for c in self.conns.lock().expect("proxy lock").drain(..) {
            c.abort();
        }
    }
}

impl CorruptProxy {
    /// Binds 127.0.0.1:0 now (so the port is known before the broker that must advertise
    /// it starts) and relays every connection to `backend` once [`CorruptProxy::start`]
    /// is called.
    pub async fn bind() -> (TcpListener, u16) {
        let listener = TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind the corrupting proxy");
        let port = listener.local_addr().expect("proxy address").port();
        (listener, port)
    }

    /// Starts relaying `listener`'s connections to `backend` ("host:port"); corruption off.
    pub fn start(listener: TcpListener, backend: &str) -> CorruptProxy {
        let port = listener.local_addr().expect("proxy address").port();
        let shared = Arc::new(Shared::default());
        let conns: Arc<Mutex<Vec<JoinHandle<()>>>> = Arc::default();
        let backend = backend.to_owned();
        let accept = {
            let shared = shared.clone();
            let conns = conns.clone();
            tokio::spawn(async move {
                while let Ok((client, _)) = listener.accept().await {
                    let shared = shared.clone();
                    let backend = backend.clone();
                    let task = tokio::spawn(async move {
                        if let Ok(server) = TcpStream::connect(&backend).await {
                            relay(client, server, shared).await;
                        }
                    });
                    conns.lock().expect("proxy lock").push(task);
                }
            })
        };
        CorruptProxy {
            port,
            shared,
            accept,
            conns,
        }
    }

    pub fn address(&self) -> String {
        format!("127.0.0.1:{}", self.port)
    }

    /// Switches corruption on or off (takes effect with the next Fetch response).
    pub fn set_corrupt(&self, on: bool) {
        self.shared.corrupt.store(on, Ordering::SeqCst);
    }

    /// Record batches corrupted so far.
    pub fn corrupted_batches(&self) -> u64 {
        self.shared.corrupted_batches.load(Ordering::SeqCst)
    }

    /// Fetch responses in which at least one batch was corrupted.
    pub fn corrupted_responses(&self) -> u64 {
        self.shared.corrupted_responses.load(Ordering::SeqCst)
    }

    /// Fetch responses relayed so far (corrupted or not).
    pub fn fetch_responses(&self) -> u64 {
        self.shared.fetch_responses.load(Ordering::SeqCst)
    }
}

/// Relays one connection until either side closes.
async fn relay(client: TcpStream, server: TcpStream, shared: Arc<Shared>) {
    let _ = client.set_nodelay(true);
    let _ = server.set_nodelay(true);
    let (mut client_r, mut client_w) = client.into_split();
    let (mut server_r, mut server_w) = server.into_split();
    // correlation id → (api key, version) of the requests in flight on this connection.
    let in_flight: Arc<Mutex<HashMap<i32, (i16, i16)>>> = Arc::default();
    let requests = {
        let in_flight = in_flight.clone();
        async move {
            while let Some(frame) = read_frame(&mut client_r).await {
                if frame.len() >= 8 {
                    let key = i16::from_be_bytes([frame[0], frame[1]]);
                    let version = i16::from_be_bytes([frame[2], frame[3]]);
                    let id = i32::from_be_bytes([frame[4], frame[5], frame[6], frame[7]]);
                    in_flight
                        .lock()
                        .expect("proxy lock")
                        .insert(id, (key, version));
                }
                if write_frame(&mut server_w, &frame).await.is_err() {
                    break;
                }
            }
            let _ = server_w.shutdown().await;
        }
    };
    let responses = async move {
        while let Some(frame) = read_frame(&mut server_r).await {
            let id = (frame.len() >= 4)
                .then(|| i32::from_be_bytes([frame[0], frame[1], frame[2], frame[3]]));
            let request = id.and_then(|id| in_flight.lock().expect("proxy lock").remove(&id));
            let frame = match request {
                Some((key, version)) if key == ApiKey::Fetch as i16 => {
                    shared.fetch_responses.fetch_add(1, Ordering::SeqCst);
                    if shared.corrupt.load(Ordering::SeqCst) {
                        corrupt_fetch(&frame, version, &shared).unwrap_or(frame)
                    } else {
                        frame
                    }
                }
                _ => frame,
            };
            if write_frame(&mut client_w, &frame).await.is_err() {
                break;
            }
        }
        let _ = client_w.shutdown().await;
    };
    tokio::join!(requests, responses);
}

async fn read_frame(r: &mut (impl AsyncReadExt + Unpin)) -> Option<Vec<u8>> {
    let len = r.read_i32().await.ok()?;
    let len = usize::try_from(len).ok().filter(|l| *l <= MAX_FRAME)?;
    let mut body = vec![0u8; len];
    r.read_exact(&mut body).await.ok()?;
    Some(body)
}

async fn write_frame(w: &mut (impl AsyncWriteExt + Unpin), body: &[u8]) -> std::io::Result<()> {
    let len = i32::try_from(body.len()).expect("frame fits i32");
    let mut out = Vec::with_capacity(body.len() + 4);
    out.extend_from_slice(&len.to_be_bytes());
    out.extend_from_slice(body);
    w.write_all(&out).await?;
    w.flush().await
}

/// The Fetch response `frame` (header + body, no length prefix) with one bit of every
/// complete v2 batch's baseTimestamp flipped; `None` when it cannot be decoded (relayed
/// unchanged then).
fn corrupt_fetch(frame: &[u8], version: i16, shared: &Shared) -> Option<Vec<u8>> {
    let header_version = ApiKey::Fetch.response_header_version(version);
    let mut buf = Bytes::copy_from_slice(frame);
    let header = ResponseHeader::decode(&mut buf, header_version).ok()?;
    let mut resp = FetchResponse::decode(&mut buf, version).ok()?;
    let mut flipped = 0u64;
    for topic in &mut resp.responses {
        for part in &mut topic.partitions {
            let Some(records) = part.records.as_ref() else {
                continue;
            };
            let mut bytes = records.to_vec();
            flipped += flip_base_timestamps(&mut bytes);
            part.records = Some(Bytes::from(bytes));
        }
    }
    if flipped == 0 {
        return None;
    }
    let mut out = BytesMut::with_capacity(frame.len());
    header.encode(&mut out, header_version).ok()?;
    resp.encode(&mut out, version).ok()?;
    shared
        .corrupted_batches
        .fetch_add(flipped, Ordering::SeqCst);
    shared.corrupted_responses.fetch_add(1, Ordering::SeqCst);
    Some(out.to_vec())
}

/// Flips [`FLIPPED_BIT`] of the baseTimestamp of every complete v2 batch in `bytes`;
/// returns how many it changed. A cut trailing batch is left alone.
pub fn flip_base_timestamps(bytes: &mut [u8]) -> u64 {
    let mut at = 0usize;
    let mut n = 0;
    while bytes.len() - at >= BATCH_HEADER_LEN {
        let len =
            i32::from_be_bytes([bytes[at + 8], bytes[at + 9], bytes[at + 10], bytes[at + 11]]);
        let Ok(len) = usize::try_from(len) else {
            break;
        };
        let total = 12 + len;
        if total < BATCH_HEADER_LEN || bytes.len() - at < total {
            break;
        }
        if bytes[at + MAGIC_AT] == 2 {
            // baseTimestamp is big-endian: bit k lives in byte 7 − k/8 of the field.
            let byte = at + BASE_TIMESTAMP_AT + 7 - (FLIPPED_BIT / 8) as usize;
            bytes[byte] ^= 1 << (FLIPPED_BIT % 8);
            n += 1;
        }
        at += total;
    }
    n
}
