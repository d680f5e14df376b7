//! Requests over a connection: encoding and registration with the reader, the wait for the
//! answer (whole or streamed) within the request timeout, and decoding.

use std::sync::atomic::Ordering;
use std::time::Instant;

use bytes::{Bytes, BytesMut};
use kafka_protocol::messages::ApiKey;
use tokio::sync::{mpsc, oneshot};

use super::{read, ApiRequest, Connection, ResponseStream};
use crate::kafka::caps;
use crate::kafka::codec;
use crate::kafka::error::{KafkaErrorKind, Result};
use crate::kafka::wire;

impl Connection {
    /// Send `req` at the negotiated version and decode the response.
    pub async fn send<R: ApiRequest>(&self, req: &R) -> Result<(R::Response, i16)> {
        let version = self.version_for::<R>()?;
        Ok((self.send_version(req, version).await?, version))
    }

    /// Send `req` at an explicit version and decode the response.
    pub async fn send_version<R: ApiRequest>(&self, req: &R, version: i16) -> Result<R::Response> {
        self.decode::<R>(self.round_trip(version, req).await?, version)
    }

    /// [`Connection::send_version`] that drops `req` as soon as it is encoded: a request
    /// naming tens of thousands of partitions is not held while its answer is awaited.
    pub async fn send_owned<R: ApiRequest>(&self, req: R, version: i16) -> Result<R::Response> {
        let (id, answer) = self.dispatch(version, &req).await?;
        drop(req);
        self.decode::<R>(self.await_body(R::API, version, id, answer).await?, version)
    }

    fn decode<R: ApiRequest>(&self, body: Bytes, version: i16) -> Result<R::Response> {
        R::decode_response(body, version).map_err(|e| {
            self.counters.count_error(R::API);
            KafkaErrorKind::Decode {
                broker: self.shared.broker.to_string(),
                api: R::API,
                version,
                message: e.to_string(),
            }
            .into()
        })
    }

    /// Encode, send, and wait for the response body of one request.
    pub(super) async fn round_trip<R: ApiRequest>(&self, version: i16, body: &R) -> Result<Bytes> {
        let (id, answer) = self.dispatch(version, body).await?;
        self.await_body(R::API, version, id, answer).await
    }

    /// Encode and send one request: its id and where its answer will arrive.
    async fn dispatch<R: ApiRequest>(
        &self,
        version: i16,
        body: &R,
    ) -> Result<(i32, oneshot::Receiver<Result<Bytes>>)> {
        let (tx, rx) = oneshot::channel();
        let id = self
            .send_request(version, body, read::Waiter::Whole(tx))
            .await?;
        Ok((id, rx))
    }

    /// Wait for the response body of request `id`.
    async fn await_body(
        &self,
        api: ApiKey,
        version: i16,
        id: i32,
        rx: oneshot::Receiver<Result<Bytes>>,
    ) -> Result<Bytes> {
        let sent = Instant::now();
        let answer = tokio::time::timeout(self.config.request_timeout, rx).await;
        if let Ok(Ok(Ok(_))) = &answer {
            self.counters.observe_duration(api, sent.elapsed());
        }
        match answer {
            Ok(Ok(Ok(frame))) => codec::response_body(frame, api, version).map_err(|e| {
                self.counters.count_error(api);
                KafkaErrorKind::Decode {
                    broker: self.shared.broker.to_string(),
                    api,
                    version,
                    message: e.to_string(),
                }
                .into()
            }),
            Ok(Ok(Err(refused))) => {
                self.counters.count_error(api);
                Err(refused)
            }
            Ok(Err(_)) => {
                self.counters.count_error(api);
                Err(self.shared.closed_error())
            }
            Err(_) => {
                let waiting_for_budget = self.forget(id);
                self.counters.count_error(api);
                let broker = self.shared.broker.to_string();
                let after = self.config.request_timeout;
                // The response arrived but found no room in the budget before the deadline.
                Err(match waiting_for_budget {
                    Some(size) => KafkaErrorKind::OverMemoryBudget {
                        broker,
                        api,
                        size,
                        budget: self.config.budget.total(),
                        waited: Some(after),
                    }
                    .into(),
                    None => KafkaErrorKind::Timeout { broker, api, after }.into(),
                })
            }
        }
    }

    /// Send `req` at `version` and return its response body as a [`ResponseStream`], to be
    /// decoded while it arrives: the reader task forwards it in chunks through a small
    /// bounded channel, so the memory it costs does not depend on its size. The request
    /// timeout covers the whole body.
    pub async fn start_stream<R: ApiRequest>(
        &self,
        req: &R,
        version: i16,
    ) -> Result<ResponseStream> {
        let deadline = tokio::time::Instant::now() + self.config.request_timeout;
        let (len_tx, len_rx) = oneshot::channel();
        let (chunks_tx, chunks_rx) = mpsc::channel(read::STREAM_CHUNKS);
        let waiter = read::Waiter::Stream {
            len: len_tx,
            chunks: chunks_tx,
        };
        let id = self.send_request(version, req, waiter).await?;
        let sent = tokio::time::Instant::now();
        let registration = read::Registration {
            shared: self.shared.clone(),
            id,
        };
        let len = match tokio::time::timeout_at(deadline, len_rx).await {
            Ok(Ok(Ok(len))) => len,
            Ok(Ok(Err(refused))) => {
                self.counters.count_error(R::API);
                return Err(refused);
            }
            Ok(Err(_)) => {
                self.counters.count_error(R::API);
                return Err(self.shared.closed_error());
            }
            Err(_) => {
                self.counters.count_error(R::API);
                return Err(KafkaErrorKind::Timeout {
                    broker: self.shared.broker.to_string(),
                    api: R::API,
                    after: self.config.request_timeout,
                }
                .into());
            }
        };
        let reader =
            wire::stream::StreamReader::from_channel(chunks_rx, len, deadline, R::NAME, version);
        let mut stream = ResponseStream {
            reader,
            registration,
            api: R::API,
            version,
            counters: self.counters.clone(),
            timeout: self.config.request_timeout,
            sent,
        };
        let header_tags = R::API.response_header_version(version) >= 1;
        if let Err(e) = stream.reader.tagged_fields(header_tags).await {
            return Err(stream.failure(e));
        }
        stream.reader.restart_position();
        Ok(stream)
    }

    /// Encode `body`, register `waiter` for its response (with the largest response it may
    /// get, and its deadline) and queue the frame; returns the correlation id.
    async fn send_request<R: ApiRequest>(
        &self,
        version: i16,
        body: &R,
        waiter: read::Waiter,
    ) -> Result<i32> {
        let api = R::API;
        let pending = read::Pending {
            waiter,
            api,
            cap: caps::response_cap(api, &body.asked()).min(self.config.max_frame_bytes),
            deadline: tokio::time::Instant::now() + self.config.request_timeout,
        };
        let id = self.shared.next_id.fetch_add(1, Ordering::Relaxed);
        let mut frame = BytesMut::new();
        codec::encode_request(&mut frame, api, version, id, &self.config.client_id, body).map_err(
            |message| KafkaErrorKind::Encode {
                api,
                version,
                message,
            },
        )?;
        {
            let mut state = self.shared.state.lock().unwrap_or_else(|p| p.into_inner());
            if state.closed.is_some() {
                drop(state);
                return Err(self.shared.closed_error());
            }
            state.waiting.insert(id, pending);
        }
        self.counters.count_request(api);
        if self.outbound.send(frame.freeze()).await.is_err() {
            self.forget(id);
            self.counters.count_error(api);
            return Err(self.shared.closed_error());
        }
        Ok(id)
    }

    /// Unregisters request `id`; returns the size of its response when the reader is
    /// waiting for budget room for it.
    fn forget(&self, id: i32) -> Option<usize> {
        let mut state = self.shared.state.lock().unwrap_or_else(|p| p.into_inner());
        state.waiting.remove(&id);
        state
            .budget_wait
            .and_then(|(waiting, size)| (waiting == id).then_some(size))
    }
}
