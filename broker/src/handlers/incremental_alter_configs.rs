//! IncrementalAlterConfigs (KIP-339): SET, DELETE, APPEND and SUBTRACT single keys of a
//! topic's configs or of the broker's dynamic configs, leaving the other keys alone.

use std::collections::{BTreeMap, HashSet};

use kafka_protocol::messages::incremental_alter_configs_request::{
    AlterConfigsResource, AlterableConfig,
};
use kafka_protocol::messages::incremental_alter_configs_response::AlterConfigsResourceResponse;
use kafka_protocol::messages::{IncrementalAlterConfigsRequest, IncrementalAlterConfigsResponse};

use super::configs::{self, ConfigError, ConfigResource};
use super::INVALID_CONFIG;
use crate::broker::Broker;

const SET: i8 = 0;
const DELETE: i8 = 1;
const APPEND: i8 = 2;
const SUBTRACT: i8 = 3;

/// Applies (or with validate_only, only checks) each resource's operations.
pub fn handle(
    broker: &Broker,
    request: IncrementalAlterConfigsRequest,
    _version: i16,
) -> IncrementalAlterConfigsResponse {
    let mut response = IncrementalAlterConfigsResponse::default();
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
    let mut explicit = configs::explicit(broker, &target)?;
    let mut seen = HashSet::new();
    for op in &resource.configs {
        if !seen.insert(op.name.as_str()) {
            return Err(ConfigError::invalid_request(format!(
                "config {} appears more than once in the request",
                op.name.as_str()
            )));
        }
        apply(broker, &target, &mut explicit, op)?;
    }
    configs::replace(broker, &target, explicit, validate_only)
}

/// Applies one operation to the resource's explicit configs.
fn apply(
    broker: &Broker,
    target: &ConfigResource,
    explicit: &mut BTreeMap<String, String>,
    op: &AlterableConfig,
) -> Result<(), ConfigError> {
    let key = op.name.to_string();
    let value = || {
        op.value.as_ref().map(|v| v.to_string()).ok_or_else(|| {
            ConfigError::invalid_request(format!("config {key} needs a value for this operation"))
        })
    };
    match op.config_operation {
        SET => {
            explicit.insert(key.clone(), value()?);
        }
        DELETE => {
            explicit.remove(&key);
        }
        APPEND | SUBTRACT => {
            if !configs::is_list(target, &key) {
                return Err(ConfigError {
                    code: INVALID_CONFIG,
                    message: format!(
                        "config {key} is not a list; APPEND and SUBTRACT apply only to list configs such as cleanup.policy"
                    ),
                });
            }
            let current = match explicit.get(&key) {
                Some(v) => v.clone(),
                None => inherited(broker, target, &key)?,
            };
            let items = edit_list(&current, &value()?, op.config_operation == APPEND);
            explicit.insert(key, items);
        }
        other => {
            return Err(ConfigError::invalid_request(format!(
            "config operation {other} on {key} is unknown (0 SET, 1 DELETE, 2 APPEND, 3 SUBTRACT)"
        )))
        }
    }
    Ok(())
}

/// The value a key has when not set explicitly (what APPEND and SUBTRACT start from).
fn inherited(broker: &Broker, target: &ConfigResource, key: &str) -> Result<String, ConfigError> {
    Ok(configs::describe(broker, target)?
        .into_iter()
        .find(|e| e.name == key)
        .map(|e| e.value)
        .unwrap_or_default())
}

/// `current` (a comma-separated list) with the items of `change` added (absent ones, at the
/// end) or removed.
fn edit_list(current: &str, change: &str, append: bool) -> String {
    let split = |s: &str| -> Vec<String> {
        s.split(',')
            .map(str::trim)
            .filter(|i| !i.is_empty())
            .map(str::to_string)
            .collect()
    };
    let mut items = split(current);
    for item in split(change) {
        if append && !items.contains(&item) {
            items.push(item);
        } else if !append {
            items.retain(|i| *i != item);
        }
    }
    items.join(",")
}

#[cfg(test)]
mod tests {
    use kafka_protocol::messages::{ApiKey, ResponseKind};

    use super::*;
    use crate::handlers::configs::{RESOURCE_BROKER, RESOURCE_TOPIC};
    use crate::handlers::kstr;
    use crate::handlers::test_support::{assert_encodes, create_topic, test_broker, versions};

    fn resource(
        resource_type: i8,
        name: &str,
        ops: &[(&str, i8, Option<&str>)],
    ) -> AlterConfigsResource {
        let mut r = AlterConfigsResource::default();
        r.resource_type = resource_type;
        r.resource_name = kstr(name);
        r.configs = ops
            .iter()
            .map(|(k, op, v)| {
                let mut c = AlterableConfig::default();
                c.name = kstr(*k);
                c.config_operation = *op;
                c.value = v.map(kstr);
                c
            })
            .collect();
        r
    }

    #[test]
    fn edits_lists() {
        assert_eq!(edit_list("delete", "compact", true), "delete,compact");
        assert_eq!(
            edit_list("delete,compact", "compact", true),
            "delete,compact"
        );
        assert_eq!(edit_list("delete,compact", "delete", false), "compact");
    }

    #[test]
    fn operations_change_only_their_keys() {
        let (_dir, broker) = test_broker();
        create_topic(&broker, "t", 1);
        let mut request = IncrementalAlterConfigsRequest::default();
        request.resources = vec![
            resource(RESOURCE_TOPIC, "t", &[("retention.ms", SET, Some("1000"))]),
            resource(
                RESOURCE_TOPIC,
                "t",
                &[("cleanup.policy", APPEND, Some("compact"))],
            ),
            resource(RESOURCE_TOPIC, "t", &[("retention.ms", APPEND, Some("1"))]),
            resource(
                RESOURCE_BROKER,
                "0",
                &[("log.cleanup.policy", SUBTRACT, Some("delete"))],
            ),
            resource(RESOURCE_TOPIC, "t", &[("segment.ms", 9, Some("1"))]),
            resource(RESOURCE_TOPIC, "t", &[("segment.ms", SET, None)]),
        ];
        for v in versions(ApiKey::IncrementalAlterConfigs) {
            let response = handle(&broker, request.clone(), v);
            let codes: Vec<i16> = response.responses.iter().map(|r| r.error_code).collect();
            assert_eq!(codes, [0, 0, 40, 40, 42, 42], "{response:?}");
            assert_encodes(&ResponseKind::IncrementalAlterConfigs(response), v);
        }
        let configs = broker.topics.get("t").unwrap().configs;
        assert_eq!(configs["retention.ms"], "1000");
        assert_eq!(configs["cleanup.policy"], "delete,compact");
        let mut delete = IncrementalAlterConfigsRequest::default();
        delete.resources = vec![resource(
            RESOURCE_TOPIC,
            "t",
            &[("retention.ms", DELETE, None)],
        )];
        assert_eq!(handle(&broker, delete, 1).responses[0].error_code, 0);
        assert!(!broker
            .topics
            .get("t")
            .unwrap()
            .configs
            .contains_key("retention.ms"));
    }
}
