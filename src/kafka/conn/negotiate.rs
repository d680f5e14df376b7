//! ApiVersions negotiation: the highest version of each API both sides speak.

use kafka_protocol::messages::{ApiKey, ApiVersionsRequest};

use super::{ApiRequest, Connection};
use crate::kafka::error::{KafkaErrorKind, Result};
use crate::kafka::{requests, wire};

impl Connection {
    /// ApiVersions: try v3; a broker that does not speak it answers with a v0 body that
    /// lists its own range, and we retry at the best common version.
    pub(super) async fn negotiate_versions(&mut self) -> Result<()> {
        let req = requests::api_versions();
        let ours = (
            ApiVersionsRequest::MIN_VERSION,
            ApiVersionsRequest::MAX_VERSION,
        );
        let body = self.round_trip(ours.1, &req).await?;
        let response = match wire::api_versions::ApiVersionsResponse::decode(body.clone(), ours.1) {
            Ok(r) if r.error_code == 0 => r,
            _ => {
                let v0 = wire::api_versions::ApiVersionsResponse::decode(body, 0).map_err(|e| {
                    KafkaErrorKind::Decode {
                        broker: self.shared.broker.to_string(),
                        api: ApiKey::ApiVersions,
                        version: 0,
                        message: e.to_string(),
                    }
                })?;
                let theirs = v0
                    .api_keys
                    .iter()
                    .find(|k| k.api_key == ApiKey::ApiVersions as i16)
                    .map(|k| (k.min_version, k.max_version));
                let version = negotiate(&self.shared.broker, ApiKey::ApiVersions, ours, theirs)?;
                let r = self.send_version(&req, version).await?;
                if r.error_code != 0 {
                    return Err(KafkaErrorKind::Broker {
                        broker: self.shared.broker.to_string(),
                        api: ApiKey::ApiVersions,
                        code: r.error_code,
                        context: format!("ApiVersions v{version}"),
                        message: None,
                    }
                    .into());
                }
                r
            }
        };
        self.versions = response
            .api_keys
            .iter()
            .map(|k| (k.api_key, (k.min_version, k.max_version)))
            .collect();
        Ok(())
    }
}

/// The highest version in both ranges, or an error naming both.
pub fn negotiate(
    broker: &str,
    api: ApiKey,
    ours: (i16, i16),
    theirs: Option<(i16, i16)>,
) -> Result<i16> {
    match theirs {
        Some((min, max)) if min <= ours.1 && ours.0 <= max => Ok(ours.1.min(max)),
        _ => Err(KafkaErrorKind::NoCommonVersion {
            broker: broker.to_string(),
            api,
            ours_min: ours.0,
            ours_max: ours.1,
            theirs,
        }
        .into()),
    }
}
