//! FindCoordinator response body, versions 0..=5 (flexible from 3, batched from 4).

use bytes::Bytes;

use super::reader::Reader;
use super::{check_version, DecodeError};

const API: &str = "FindCoordinator";

#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct FindCoordinatorResponse {
    /// From v4 the batched `coordinators` array; below v4 exactly one entry with key `""`
    /// built from the top-level fields.
    pub coordinators: Vec<Coordinator>,
}

#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Coordinator {
    pub key: String,
    pub node_id: i32,
    pub host: String,
    pub port: i32,
    pub error_code: i16,
    /// Always `None` in v0 (the field exists from v1).
    pub error_message: Option<String>,
}

impl FindCoordinatorResponse {
    pub const MIN_VERSION: i16 = 0;
    pub const MAX_VERSION: i16 = 5;

    /// Decodes the body of a FindCoordinator response of `version`.
    pub fn decode(buf: Bytes, version: i16) -> Result<Self, DecodeError> {
        check_version(API, version, Self::MIN_VERSION, Self::MAX_VERSION)?;
        let flex = version >= 3;
        let mut r = Reader::for_api(buf, API, version);
        if version >= 1 {
            r.i32("throttle_time_ms")?;
        }
        let coordinators = if version <= 3 {
            let error_code = r.i16("error_code")?;
            let error_message = if version >= 1 {
                r.nullable_string_v("error_message", flex)?
            } else {
                None
            };
            let node_id = r.i32("node_id")?;
            let host = r.string_v("host", flex)?;
            let port = r.i32("port")?;
            let key = String::new();
            vec![Coordinator {
                key,
                node_id,
                host,
                port,
                error_code,
                error_message,
            }]
        } else {
            r.array("coordinators", flex, |r| {
                let c = Coordinator {
                    key: r.string_v("key", flex)?,
                    node_id: r.i32("node_id")?,
                    host: r.string_v("host", flex)?,
                    port: r.i32("port")?,
                    error_code: r.i16("error_code")?,
                    error_message: r.nullable_string_v("error_message", flex)?,
                };
                r.tagged_fields(flex)?;
                Ok(c)
            })?
        };
        r.tagged_fields(flex)?;
        Ok(Self { coordinators })
    }
}

#[cfg(test)]
mod tests {
    use bytes::Bytes;
    use kafka_protocol::messages::find_coordinator_response as kp;
    use kafka_protocol::messages::BrokerId;

    use super::super::test_util::{
        assert_bad_version, assert_count_err, decode_all, enc, s, unknown_tags,
    };
    use super::*;

    fn case(v: i16) -> (kp::FindCoordinatorResponse, FindCoordinatorResponse) {
        let msg = |i: i32| (v >= 1 && i != 1).then(|| format!("not yet {i}"));
        let mut km = kp::FindCoordinatorResponse::default()
            .with_throttle_time_ms(4)
            .with_unknown_tagged_fields(unknown_tags());
        let coordinators: Vec<_> = if v <= 3 {
            km = km
                .with_error_code(15)
                .with_error_message(msg(0).map(|m| s(&m)))
                .with_node_id(BrokerId(3))
                .with_host(s("coord.example"))
                .with_port(9093);
            let (host, error_message) = ("coord.example".to_owned(), msg(0));
            vec![Coordinator {
                key: String::new(),
                node_id: 3,
                host,
                port: 9093,
                error_code: 15,
                error_message,
            }]
        } else {
            (0..3)
                .map(|i| Coordinator {
                    key: format!("group-{i}"),
                    node_id: i + 1,
                    host: format!("b{i}.example"),
                    port: 9092 + i,
                    error_code: i16::try_from(i).unwrap_or_default(),
                    error_message: msg(i),
                })
                .collect()
        };
        if v >= 4 {
            let kc = coordinators.iter().map(|c| {
                kp::Coordinator::default()
                    .with_key(s(&c.key))
                    .with_node_id(BrokerId(c.node_id))
                    .with_host(s(&c.host))
                    .with_port(c.port)
                    .with_error_code(c.error_code)
                    .with_error_message(c.error_message.as_deref().map(s))
                    .with_unknown_tagged_fields(unknown_tags())
            });
            km = km.with_coordinators(kc.collect());
        }
        (km, FindCoordinatorResponse { coordinators })
    }

    #[test]
    fn every_version_round_trips() {
        for v in 0..=5 {
            let (km, want) = case(v);
            let got = decode_all(&enc(&km, v), |b| FindCoordinatorResponse::decode(b, v));
            assert_eq!(got, want, "v{v}");
        }
    }

    #[test]
    fn hostile_counts_and_versions() {
        let b = Bytes::from_static(&[0, 0, 0, 0, 0xff, 0xff, 0xff, 0xff, 0x0f, 0]);
        assert_count_err(FindCoordinatorResponse::decode(b, 4), "coordinators");
        assert_bad_version(FindCoordinatorResponse::decode, -1, "0..=5");
        assert_bad_version(FindCoordinatorResponse::decode, 6, "0..=5");
    }
}
