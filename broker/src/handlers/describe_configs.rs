//! DescribeConfigs: every config of a topic or of the broker, with its value, source,
//! flags and (on request) synonyms and documentation. Stream libraries read e.g.
//! `retention.ms` of their input topics from here, so a topic lists every key it has.

use kafka_protocol::messages::describe_configs_request::DescribeConfigsResource;
use kafka_protocol::messages::describe_configs_response::{
    DescribeConfigsResourceResult, DescribeConfigsResult, DescribeConfigsSynonym,
};
use kafka_protocol::messages::{DescribeConfigsRequest, DescribeConfigsResponse};

use super::configs::{self, ConfigEntry};
use super::kstr;
use crate::broker::Broker;

/// What the request asks to include with each config.
#[derive(Debug, Clone, Copy)]
struct Detail {
    synonyms: bool,
    documentation: bool,
    version: i16,
}

/// Describes each requested resource.
pub fn handle(
    broker: &Broker,
    request: DescribeConfigsRequest,
    version: i16,
) -> DescribeConfigsResponse {
    let detail = Detail {
        synonyms: request.include_synonyms,
        documentation: request.include_documentation,
        version,
    };
    let mut response = DescribeConfigsResponse::default();
    response.results = request
        .resources
        .iter()
        .map(|r| describe_resource(broker, r, detail))
        .collect();
    response
}

fn describe_resource(
    broker: &Broker,
    resource: &DescribeConfigsResource,
    detail: Detail,
) -> DescribeConfigsResult {
    let mut result = DescribeConfigsResult::default();
    result.resource_type = resource.resource_type;
    result.resource_name = resource.resource_name.clone();
    result.error_message = None;
    let described = configs::resolve(broker, resource.resource_type, &resource.resource_name)
        .and_then(|r| configs::describe(broker, &r));
    match described {
        Ok(entries) => {
            let wanted = |e: &ConfigEntry| match &resource.configuration_keys {
                None => true,
                Some(keys) => keys.iter().any(|k| k.as_str() == e.name),
            };
            result.configs = entries
                .into_iter()
                .filter(wanted)
                .map(|e| wire_entry(e, detail))
                .collect();
        }
        Err(e) => {
            result.error_code = e.code;
            result.error_message = Some(kstr(e.message));
        }
    }
    result
}

fn wire_entry(entry: ConfigEntry, detail: Detail) -> DescribeConfigsResourceResult {
    let mut c = DescribeConfigsResourceResult::default();
    c.name = kstr(entry.name);
    c.value = Some(kstr(entry.value));
    c.read_only = entry.read_only;
    c.config_source = entry.source;
    c.is_sensitive = false;
    if detail.synonyms {
        c.synonyms = entry
            .synonyms
            .into_iter()
            .map(|s| {
                let mut w = DescribeConfigsSynonym::default();
                w.name = kstr(s.name);
                w.value = Some(kstr(s.value));
                w.source = s.source;
                w
            })
            .collect();
    }
    if detail.version >= 3 {
        c.config_type = entry.config_type;
        c.documentation = detail.documentation.then(|| kstr(entry.documentation));
    }
    c
}

#[cfg(test)]
mod tests {
    use kafka_protocol::messages::{ApiKey, ResponseKind};

    use super::*;
    use crate::handlers::configs::{source, RESOURCE_BROKER, RESOURCE_TOPIC};
    use crate::handlers::test_support::{assert_encodes, create_topic, test_broker, versions};

    fn resource(resource_type: i8, name: &str, keys: Option<&[&str]>) -> DescribeConfigsResource {
        let mut r = DescribeConfigsResource::default();
        r.resource_type = resource_type;
        r.resource_name = kstr(name);
        r.configuration_keys = keys.map(|k| k.iter().map(|s| kstr(*s)).collect());
        r
    }

    #[test]
    fn every_version_encodes_topics_brokers_and_errors() {
        let (_dir, broker) = test_broker();
        create_topic(&broker, "t", 1);
        let mut request = DescribeConfigsRequest::default();
        request.include_synonyms = true;
        request.include_documentation = true;
        request.resources = vec![
            resource(RESOURCE_TOPIC, "t", None),
            resource(RESOURCE_TOPIC, "missing", None),
            resource(RESOURCE_BROKER, "0", None),
            resource(RESOURCE_BROKER, "", Some(&["log.retention.ms"])),
            resource(RESOURCE_BROKER, "9", None),
            resource(8, "x", None),
        ];
        for v in versions(ApiKey::DescribeConfigs) {
            let response = handle(&broker, request.clone(), v);
            let codes: Vec<i16> = response.results.iter().map(|r| r.error_code).collect();
            assert_eq!(codes, [0, 3, 0, 0, 42, 42]);
            let topic = &response.results[0].configs;
            assert_eq!(topic.len(), sluice_storage::config::LOG_CONFIG_KEYS.len());
            let retention = topic
                .iter()
                .find(|c| c.name.as_str() == "retention.ms")
                .unwrap();
            assert_eq!(retention.value.as_deref(), Some("604800000"));
            assert_eq!(retention.config_source, source::DEFAULT_CONFIG);
            assert_eq!(response.results[3].configs.len(), 1);
            if v >= 3 {
                assert_eq!(retention.config_type, configs::config_type::LONG);
            }
            assert_encodes(&ResponseKind::DescribeConfigs(response), v);
        }
    }
}
