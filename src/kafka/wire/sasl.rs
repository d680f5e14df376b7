//! SaslHandshake (versions 0..=1) and SaslAuthenticate (versions 0..=2, flexible from 2)
//! response bodies.

use bytes::Bytes;

use super::reader::Reader;
use super::{check_version, DecodeError};

#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct SaslHandshakeResponse {
    pub error_code: i16,
    /// Mechanisms the broker has enabled.
    pub mechanisms: Vec<String>,
}

/// `auth_bytes` is the server's challenge (SCRAM server-first/final messages): no client
/// secret, but do not log it anyway.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct SaslAuthenticateResponse {
    pub error_code: i16,
    pub error_message: Option<String>,
    pub auth_bytes: Bytes,
    /// 0 below v1 (and when the broker does not re-authenticate).
    pub session_lifetime_ms: i64,
}

impl SaslHandshakeResponse {
    pub const MIN_VERSION: i16 = 0;
    pub const MAX_VERSION: i16 = 1;

    /// Decodes the body of a SaslHandshake response of `version` (never flexible).
    pub fn decode(buf: Bytes, version: i16) -> Result<Self, DecodeError> {
        const API: &str = "SaslHandshake";
        check_version(API, version, Self::MIN_VERSION, Self::MAX_VERSION)?;
        let mut r = Reader::for_api(buf, API, version);
        let error_code = r.i16("error_code")?;
        let mechanisms = r.array("mechanisms", false, |r| r.string("mechanism"))?;
        Ok(Self {
            error_code,
            mechanisms,
        })
    }
}

impl SaslAuthenticateResponse {
    pub const MIN_VERSION: i16 = 0;
    pub const MAX_VERSION: i16 = 2;

    /// Decodes the body of a SaslAuthenticate response of `version`.
    pub fn decode(buf: Bytes, version: i16) -> Result<Self, DecodeError> {
        const API: &str = "SaslAuthenticate";
        check_version(API, version, Self::MIN_VERSION, Self::MAX_VERSION)?;
        let flex = version >= 2;
        let mut r = Reader::for_api(buf, API, version);
        let error_code = r.i16("error_code")?;
        let error_message = r.nullable_string_v("error_message", flex)?;
        let auth_bytes = r.bytes_v("auth_bytes", flex)?;
        let session_lifetime_ms = if version >= 1 {
            r.i64("session_lifetime_ms")?
        } else {
            0
        };
        r.tagged_fields(flex)?;
        Ok(Self {
            error_code,
            error_message,
            auth_bytes,
            session_lifetime_ms,
        })
    }
}

#[cfg(test)]
mod tests {
    use bytes::Bytes;
    use kafka_protocol::messages::{
        sasl_authenticate_response as ka, sasl_handshake_response as kh,
    };

    use super::super::test_util::{
        assert_bad_version, assert_count_err, decode_all, enc, s, unknown_tags,
    };
    use super::*;

    #[test]
    fn handshake_every_version_round_trips() {
        let mechanisms = vec![
            "PLAIN".to_owned(),
            "SCRAM-SHA-512".to_owned(),
            "OAUTHBEARER".to_owned(),
        ];
        let km = kh::SaslHandshakeResponse::default()
            .with_error_code(33)
            .with_mechanisms(mechanisms.iter().map(|m| s(m)).collect());
        for v in 0..=1 {
            let got = decode_all(&enc(&km, v), |b| SaslHandshakeResponse::decode(b, v));
            assert_eq!(
                got,
                SaslHandshakeResponse {
                    error_code: 33,
                    mechanisms: mechanisms.clone()
                },
                "v{v}"
            );
        }
    }

    #[test]
    fn authenticate_every_version_round_trips() {
        for v in 0..=2 {
            for (msg, auth) in [
                (Some("bad credentials"), &b""[..]),
                (None, &b"r=nonce,s=salt,i=4096"[..]),
            ] {
                let km = ka::SaslAuthenticateResponse::default()
                    .with_error_code(if msg.is_some() { 58 } else { 0 })
                    .with_error_message(msg.map(s))
                    .with_auth_bytes(Bytes::copy_from_slice(auth))
                    .with_session_lifetime_ms(3_600_000)
                    .with_unknown_tagged_fields(unknown_tags());
                let want = SaslAuthenticateResponse {
                    error_code: if msg.is_some() { 58 } else { 0 },
                    error_message: msg.map(str::to_owned),
                    auth_bytes: Bytes::copy_from_slice(auth),
                    session_lifetime_ms: if v >= 1 { 3_600_000 } else { 0 },
                };
                let got = decode_all(&enc(&km, v), |b| SaslAuthenticateResponse::decode(b, v));
                assert_eq!(got, want, "v{v}");
            }
        }
    }

    #[test]
    fn hostile_counts_and_versions() {
        let b = Bytes::from_static(&[0, 0, 0x7f, 0xff, 0xff, 0xff, 0, 1]);
        assert_count_err(SaslHandshakeResponse::decode(b, 1), "mechanisms");
        // Compact auth_bytes of 0xFFFFFFFE bytes: a plain truncation error, nothing allocated.
        let b = Bytes::from_static(&[0, 0, 0, 0xff, 0xff, 0xff, 0xff, 0x0f, 0]);
        let err = SaslAuthenticateResponse::decode(b, 2).expect_err("huge bytes");
        assert_eq!(
            err.to_string(),
            "SaslAuthenticate v2: field auth_bytes at byte 3: need 4294967294 bytes, 1 left"
        );
        assert_bad_version(SaslHandshakeResponse::decode, 2, "0..=1");
        assert_bad_version(SaslAuthenticateResponse::decode, 3, "0..=2");
        assert_bad_version(SaslAuthenticateResponse::decode, -1, "0..=2");
    }
}
