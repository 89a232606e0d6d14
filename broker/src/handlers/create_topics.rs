//! CreateTopics: validates names, partition counts, replication factors and configs, then
//! creates (or, with validate_only, only checks) each topic.

use std::collections::BTreeMap;

use kafka_protocol::messages::create_topics_response::{
    CreatableTopicConfigs, CreatableTopicResult,
};
use kafka_protocol::messages::{CreateTopicsRequest, CreateTopicsResponse};

use super::kstr;
use crate::broker::{Broker, NewTopic};

/// Config source: set explicitly on the topic.
pub const SOURCE_TOPIC: i8 = 1;
/// Config source: the broker's default.
pub const SOURCE_DEFAULT: i8 = 5;

/// Creates each requested topic and reports its result.
pub fn handle(broker: &Broker, request: CreateTopicsRequest, version: i16) -> CreateTopicsResponse {
    let mut response = CreateTopicsResponse::default();
    let mut seen = std::collections::HashSet::new();
    for topic in request.topics {
        let name = topic.name.to_string();
        let mut result = CreatableTopicResult::default();
        result.name = topic.name.clone();
        result.num_partitions = -1;
        result.replication_factor = -1;
        if !seen.insert(name.clone()) {
            result.error_code = 42; // INVALID_REQUEST
            result.error_message = Some(kstr(format!("topic {name:?} appears twice in the request")));
            response.topics.push(result);
            continue;
        }
        if !topic.assignments.is_empty() {
            result.error_code = 39; // INVALID_REPLICA_ASSIGNMENT
            result.error_message = Some(kstr("manual replica assignment is not supported by a single-node sluice"));
            response.topics.push(result);
            continue;
        }
        let mut configs = BTreeMap::new();
        for c in &topic.configs {
            if let Some(v) = &c.value {
                configs.insert(c.name.to_string(), v.to_string());
            }
        }
        let new = NewTopic {
            name: name.clone(),
            partitions: topic.num_partitions,
            replication_factor: topic.replication_factor,
            configs: configs.clone(),
        };
        let outcome = if request.validate_only {
            broker
                .validate_new_topic(&new)
                .map(|(p, rf, _)| (p, rf, uuid::Uuid::nil()))
        } else {
            broker
                .create_topic(new)
                .map(|m| (m.partitions, m.replication_factor, m.id))
        };
        match outcome {
            Ok(_) if version < 5 => {}
            Ok((partitions, rf, id)) => {
                if version >= 7 {
                    result.topic_id = id;
                }
                result.num_partitions = partitions;
                result.replication_factor = rf;
                let effective = broker.topics.log_config(&name, &broker.defaults);
                let effective = if request.validate_only {
                    let mut c = broker.defaults.clone();
                    for (k, v) in &configs {
                        let _ = c.apply(k, v);
                    }
                    c
                } else {
                    effective
                };
                result.configs = Some(
                    effective
                        .describe()
                        .into_iter()
                        .map(|(k, v)| {
                            let mut c = CreatableTopicConfigs::default();
                            c.name = kstr(k);
                            c.value = Some(kstr(v));
                            c.config_source = if configs.contains_key(k) {
                                SOURCE_TOPIC
                            } else {
                                SOURCE_DEFAULT
                            };
                            c
                        })
                        .collect(),
                );
            }
            Err(e) => {
                result.error_code = e.code();
                result.error_message = Some(kstr(e.to_string()));
            }
        }
        response.topics.push(result);
    }
    response
}
