//! AlterConfigs (the original, non-incremental API): replaces every explicit config of a
//! topic or of the broker's dynamic configs with the given set; keys not listed revert to
//! their defaults, as in Kafka.

use std::collections::BTreeMap;

use kafka_protocol::messages::alter_configs_request::AlterConfigsResource;
use kafka_protocol::messages::alter_configs_response::AlterConfigsResourceResponse;
use kafka_protocol::messages::{AlterConfigsRequest, AlterConfigsResponse};

use super::configs::{self, ConfigError};
use crate::broker::Broker;

/// Replaces (or with validate_only, only checks) the configs of each resource.
pub fn handle(
    broker: &Broker,
    request: AlterConfigsRequest,
    _version: i16,
) -> AlterConfigsResponse {
    let mut response = AlterConfigsResponse::default();
    response.responses = request
        .resources
        .iter()
        .map(|r| {
            let mut out = AlterConfigsResourceResponse::default();
            (out.error_code, out.error_message) =
                configs::error_fields(alter(broker, r, request.validate_only));
            out.resource_type = r.resource_type;
            out.resource_name = r.resource_name.clone();
            out
        })
        .collect();
    response
}

fn alter(
    broker: &Broker,
    resource: &AlterConfigsResource,
    validate_only: bool,
) -> Result<(), ConfigError> {
    let target = configs::resolve(broker, resource.resource_type, &resource.resource_name)?;
    // A null value means "not set", as in Kafka.
    let wanted: BTreeMap<String, String> = resource
        .configs
        .iter()
        .filter_map(|c| Some((c.name.to_string(), c.value.as_ref()?.to_string())))
        .collect();
    configs::replace(broker, &target, wanted, validate_only)
}

#[cfg(test)]
mod tests {
    use kafka_protocol::messages::alter_configs_request::AlterableConfig;
    use kafka_protocol::messages::{ApiKey, ResponseKind};

    use super::*;
    use crate::handlers::configs::{RESOURCE_BROKER, RESOURCE_TOPIC};
    use crate::handlers::kstr;
    use crate::handlers::test_support::{assert_encodes, create_topic, test_broker, versions};

    fn resource(resource_type: i8, name: &str, pairs: &[(&str, &str)]) -> AlterConfigsResource {
        let mut r = AlterConfigsResource::default();
        r.resource_type = resource_type;
        r.resource_name = kstr(name);
        r.configs = pairs
            .iter()
            .map(|(k, v)| {
                let mut c = AlterableConfig::default();
                c.name = kstr(*k);
                c.value = Some(kstr(*v));
                c
            })
            .collect();
        r
    }

    #[test]
    fn replaces_topic_and_broker_configs_and_names_bad_ones() {
        let (_dir, broker) = test_broker();
        create_topic(&broker, "t", 1);
        let mut request = AlterConfigsRequest::default();
        request.resources = vec![
            resource(RESOURCE_TOPIC, "t", &[("retention.ms", "1000")]),
            resource(RESOURCE_TOPIC, "t2", &[("retention.ms", "1000")]),
            resource(RESOURCE_BROKER, "", &[("log.segment.bytes", "2000000")]),
            resource(RESOURCE_BROKER, "0", &[("listeners", "x")]),
            resource(RESOURCE_TOPIC, "t", &[("retention.ms", "soon")]),
        ];
        for v in versions(ApiKey::AlterConfigs) {
            let response = handle(&broker, request.clone(), v);
            let codes: Vec<i16> = response.responses.iter().map(|r| r.error_code).collect();
            assert_eq!(codes, [0, 3, 0, 40, 40]);
            let message = response.responses[3].error_message.as_deref().unwrap_or("");
            assert!(message.contains("listeners"), "{message}");
            assert_encodes(&ResponseKind::AlterConfigs(response), v);
        }
        let log = broker.log("t", 0).unwrap();
        assert_eq!(log.config().retention_ms, 1000);
        assert_eq!(log.config().segment_bytes, 2_000_000);
        assert_eq!(broker.topics.get("t").unwrap().configs.len(), 1);
    }
}
