//! DescribeConfigs response body, versions 1..=4 (flexible from 4).

use bytes::Bytes;

use super::reader::Reader;
use super::{check_version, DecodeError};

const API: &str = "DescribeConfigs";

#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct DescribeConfigsResponse {
    pub results: Vec<ConfigResourceResult>,
}

#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct ConfigResourceResult {
    pub error_code: i16,
    pub error_message: Option<String>,
    pub resource_type: i8,
    pub resource_name: String,
    pub configs: Vec<ConfigEntry>,
}

#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct ConfigEntry {
    pub name: String,
    /// `None` for sensitive or unset values.
    pub value: Option<String>,
}

impl DescribeConfigsResponse {
    pub const MIN_VERSION: i16 = 1;
    pub const MAX_VERSION: i16 = 4;

    /// Decodes the body of a DescribeConfigs response of `version`.
    pub fn decode(buf: Bytes, version: i16) -> Result<Self, DecodeError> {
        check_version(API, version, Self::MIN_VERSION, Self::MAX_VERSION)?;
        let flex = version >= 4;
        let mut r = Reader::for_api(buf, API, version);
        r.i32("throttle_time_ms")?;
        let results = r.array("results", flex, |r| {
            let error_code = r.i16("error_code")?;
            let error_message = r.nullable_string_v("error_message", flex)?;
            let resource_type = r.i8("resource_type")?;
            let resource_name = r.string_v("resource_name", flex)?;
            let configs = r.array("configs", flex, |r| decode_entry(r, version))?;
            r.tagged_fields(flex)?;
            Ok(ConfigResourceResult {
                error_code,
                error_message,
                resource_type,
                resource_name,
                configs,
            })
        })?;
        r.tagged_fields(flex)?;
        Ok(Self { results })
    }
}

fn decode_entry(r: &mut Reader, version: i16) -> Result<ConfigEntry, DecodeError> {
    let flex = version >= 4;
    let name = r.string_v("name", flex)?;
    let value = r.nullable_string_v("value", flex)?;
    r.bool("read_only")?;
    r.i8("config_source")?;
    r.bool("is_sensitive")?;
    // Vec<()> never allocates.
    r.array("synonyms", flex, |r| {
        r.string_v("name", flex)?;
        r.nullable_string_v("value", flex)?;
        r.i8("source")?;
        r.tagged_fields(flex)
    })?;
    if version >= 3 {
        r.i8("config_type")?;
        r.nullable_string_v("documentation", flex)?;
    }
    r.tagged_fields(flex)?;
    Ok(ConfigEntry { name, value })
}

#[cfg(test)]
mod tests {
    use bytes::Bytes;
    use kafka_protocol::messages::describe_configs_response as kp;

    use super::super::test_util::{
        assert_bad_version, assert_count_err, decode_all, enc, s, unknown_tags,
    };
    use super::*;

    fn case(_v: i16) -> (kp::DescribeConfigsResponse, DescribeConfigsResponse) {
        let entry = |i: usize| ConfigEntry {
            name: ["retention.ms", "cleanup.policy", "sasl.jaas.config"][i].into(),
            value: (i != 2).then(|| ["604800000", "compact"][i].to_owned()),
        };
        let results: Vec<_> = (0..2)
            .map(|r| ConfigResourceResult {
                error_code: r as i16,
                error_message: (r == 1).then(|| "denied".to_owned()),
                resource_type: 2,
                resource_name: format!("topic-{r}"),
                configs: (0..3).map(entry).collect(),
            })
            .collect();
        let kresults = results.iter().map(|r| {
            let kconfigs = r.configs.iter().map(|c| {
                let synonym = kp::DescribeConfigsSynonym::default()
                    .with_name(s(&c.name))
                    .with_value(Some(s("x")))
                    .with_source(4)
                    .with_unknown_tagged_fields(unknown_tags());
                kp::DescribeConfigsResourceResult::default()
                    .with_name(s(&c.name))
                    .with_value(c.value.as_deref().map(s))
                    .with_read_only(true)
                    .with_config_source(5)
                    .with_is_sensitive(c.value.is_none())
                    .with_synonyms(vec![synonym.clone(), synonym.with_value(None)])
                    .with_config_type(3)
                    .with_documentation(Some(s("docs")))
                    .with_unknown_tagged_fields(unknown_tags())
            });
            kp::DescribeConfigsResult::default()
                .with_error_code(r.error_code)
                .with_error_message(r.error_message.as_deref().map(s))
                .with_resource_type(r.resource_type)
                .with_resource_name(s(&r.resource_name))
                .with_configs(kconfigs.collect())
                .with_unknown_tagged_fields(unknown_tags())
        });
        let km = kp::DescribeConfigsResponse::default()
            .with_throttle_time_ms(1)
            .with_results(kresults.collect())
            .with_unknown_tagged_fields(unknown_tags());
        (km, DescribeConfigsResponse { results })
    }

    #[test]
    fn every_version_round_trips() {
        for v in 1..=4 {
            let (km, want) = case(v);
            let got = decode_all(&enc(&km, v), |b| DescribeConfigsResponse::decode(b, v));
            assert_eq!(got, want, "v{v}");
        }
    }

    #[test]
    fn hostile_counts_and_versions() {
        let b = Bytes::from_static(&[0, 0, 0, 0, 0x7f, 0xff, 0xff, 0xff, 1]);
        assert_count_err(DescribeConfigsResponse::decode(b, 1), "results");
        let b = Bytes::from_static(&[0, 0, 0, 0, 0xff, 0xff, 0xff, 0xff, 0x0f, 0]);
        assert_count_err(DescribeConfigsResponse::decode(b, 4), "results");
        assert_bad_version(DescribeConfigsResponse::decode, 0, "1..=4");
        assert_bad_version(DescribeConfigsResponse::decode, 5, "1..=4");
    }
}
