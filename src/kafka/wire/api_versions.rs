//! ApiVersions response body, versions 0..=3 (flexible from 3).
//!
//! The response *header* of ApiVersions is always v0 (no tagged fields), whatever the version
//! of the body; stripping it is the caller's job. A broker that does not support the requested
//! version answers UNSUPPORTED_VERSION (35) in a **v0 body** listing what it supports (KIP-511);
//! [`ApiVersionsResponse::decode`] falls back to v0 for that case, as the Java client does.

use bytes::Bytes;

use super::reader::Reader;
use super::{check_version, DecodeError};

const API: &str = "ApiVersions";

#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct ApiVersionsResponse {
    pub error_code: i16,
    pub api_keys: Vec<ApiVersionRange>,
}

#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct ApiVersionRange {
    pub api_key: i16,
    pub min_version: i16,
    pub max_version: i16,
}

impl ApiVersionsResponse {
    pub const MIN_VERSION: i16 = 0;
    pub const MAX_VERSION: i16 = 3;

    /// The error code of a broker that does not support the requested version.
    pub const UNSUPPORTED_VERSION: i16 = 35;

    /// Decodes the body of an ApiVersions response of `version`. If that fails and the body
    /// reads as a v0 body with error UNSUPPORTED_VERSION, returns that (check `error_code`,
    /// then retry with a version from `api_keys`); otherwise returns the original error.
    pub fn decode(buf: Bytes, version: i16) -> Result<Self, DecodeError> {
        check_version(API, version, Self::MIN_VERSION, Self::MAX_VERSION)?;
        match Self::decode_exact(buf.clone(), version) {
            Err(e) if version > 0 => match Self::decode_exact(buf, 0) {
                Ok(v0) if v0.error_code == Self::UNSUPPORTED_VERSION => Ok(v0),
                _ => Err(e),
            },
            res => res,
        }
    }

    fn decode_exact(buf: Bytes, version: i16) -> Result<Self, DecodeError> {
        let flex = version >= 3;
        let mut r = Reader::for_api(buf, API, version);
        let error_code = r.i16("error_code")?;
        let api_keys = r.array("api_keys", flex, |r| {
            let key = ApiVersionRange {
                api_key: r.i16("api_key")?,
                min_version: r.i16("min_version")?,
                max_version: r.i16("max_version")?,
            };
            r.tagged_fields(flex)?;
            Ok(key)
        })?;
        if version >= 1 {
            r.i32("throttle_time_ms")?;
        }
        // v3+: supported_features (tag 0), finalized_features_epoch (1), finalized_features (2),
        // zk_migration_ready (3) are all tagged: skipped here.
        r.tagged_fields(flex)?;
        Ok(Self {
            error_code,
            api_keys,
        })
    }
}

#[cfg(test)]
mod tests {
    use bytes::Bytes;
    use kafka_protocol::messages::api_versions_response as kp;

    use super::super::test_util::{
        assert_bad_version, assert_count_err, decode_all, enc, s, unknown_tags,
    };
    use super::*;

    fn case(v: i16) -> (kp::ApiVersionsResponse, ApiVersionsResponse) {
        let keys: Vec<_> = (0..3)
            .map(|i| ApiVersionRange {
                api_key: i * 3,
                min_version: i,
                max_version: 4 + i,
            })
            .collect();
        let kkeys = keys.iter().map(|k| {
            kp::ApiVersion::default()
                .with_api_key(k.api_key)
                .with_min_version(k.min_version)
                .with_max_version(k.max_version)
                .with_unknown_tagged_fields(unknown_tags())
        });
        let mut km = kp::ApiVersionsResponse::default()
            .with_error_code(41)
            .with_api_keys(kkeys.collect())
            .with_throttle_time_ms(5)
            .with_unknown_tagged_fields(unknown_tags());
        if v >= 3 {
            // Known tagged fields of v3 (0..=3): unknown to us, skipped.
            let feature = kp::SupportedFeatureKey::default()
                .with_name(s("metadata.version"))
                .with_max_version(20);
            km = km
                .with_supported_features(vec![feature.clone(), feature])
                .with_finalized_features_epoch(9)
                .with_zk_migration_ready(true);
        }
        (
            km,
            ApiVersionsResponse {
                error_code: 41,
                api_keys: keys,
            },
        )
    }

    #[test]
    fn every_version_round_trips() {
        for v in 0..=3 {
            let (km, want) = case(v);
            let got = decode_all(&enc(&km, v), |b| ApiVersionsResponse::decode(b, v));
            assert_eq!(got, want, "v{v}");
        }
    }

    #[test]
    fn unsupported_version_falls_back_to_a_v0_body() {
        let (km, mut want) = case(0);
        want.error_code = ApiVersionsResponse::UNSUPPORTED_VERSION;
        let body = enc(&km.with_error_code(want.error_code), 0);
        for v in 0..=3 {
            assert_eq!(
                ApiVersionsResponse::decode(body.clone(), v).as_ref(),
                Ok(&want),
                "v{v}"
            );
        }
        // Any other error code in a v0-shaped body keeps the original error.
        let (km, _) = case(0);
        let err = ApiVersionsResponse::decode(enc(&km, 0), 3).expect_err("v0 body read as v3");
        assert!(
            err.to_string()
                .starts_with("ApiVersions v3: field api_keys at byte 2"),
            "{err}"
        );
    }

    #[test]
    fn hostile_counts_and_versions() {
        let b = Bytes::from_static(&[0, 0, 0x7f, 0xff, 0xff, 0xff, 0, 1]);
        assert_count_err(ApiVersionsResponse::decode(b, 0), "api_keys");
        let b = Bytes::from_static(&[0, 0, 0xff, 0xff, 0xff, 0xff, 0x0f, 0]);
        assert_count_err(ApiVersionsResponse::decode(b, 3), "api_keys");
        assert_bad_version(ApiVersionsResponse::decode, -1, "0..=3");
        assert_bad_version(ApiVersionsResponse::decode, 4, "0..=3");
    }
}
