//! CreateTopics: validates names, partition counts, replication factors and configs, then
//! creates (or, with validate_only, only checks) each topic.

use std::collections::BTreeMap;

use kafka_protocol::messages::create_topics_response::{
    CreatableTopicConfigs, CreatableTopicResult,
};
use kafka_protocol::messages::{CreateTopicsRequest, CreateTopicsResponse};

use super::configs::{self, ConfigEntry};
use super::{kstr, INVALID_REPLICA_ASSIGNMENT, INVALID_REQUEST, NO_MANUAL_ASSIGNMENT};
use crate::broker::{Broker, NewTopic};

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
            result.error_code = INVALID_REQUEST;
            result.error_message =
                Some(kstr(format!("topic {name:?} appears twice in the request")));
            response.topics.push(result);
            continue;
        }
        if !topic.assignments.is_empty() {
            result.error_code = INVALID_REPLICA_ASSIGNMENT;
            result.error_message = Some(kstr(NO_MANUAL_ASSIGNMENT));
            response.topics.push(result);
            continue;
        }
        let mut explicit = BTreeMap::new();
        for c in &topic.configs {
            if let Some(v) = &c.value {
                explicit.insert(c.name.to_string(), v.to_string());
            }
        }
        let new = NewTopic {
            name: name.clone(),
            partitions: topic.num_partitions,
            replication_factor: topic.replication_factor,
            configs: explicit.clone(),
        };
        let outcome = if request.validate_only {
            broker
                .validate_new_topic(&new)
                .map(|(p, rf, config)| (p, rf, uuid::Uuid::nil(), config))
        } else {
            broker.create_topic(new).map(|m| {
                let config = broker.topic_log_config(&m.name);
                (m.partitions, m.replication_factor, m.id, config)
            })
        };
        match outcome {
            Ok(_) if version < 5 => {}
            Ok((partitions, rf, id, effective)) => {
                if version >= 7 {
                    result.topic_id = id;
                }
                result.num_partitions = partitions;
                result.replication_factor = rf;
                let entries = configs::topic_entries(broker, &explicit, &effective);
                result.configs = Some(entries.into_iter().map(creatable_config).collect());
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

fn creatable_config(entry: ConfigEntry) -> CreatableTopicConfigs {
    let mut c = CreatableTopicConfigs::default();
    c.name = kstr(entry.name);
    c.value = Some(kstr(entry.value));
    c.read_only = entry.read_only;
    c.config_source = entry.source;
    c.is_sensitive = false;
    c
}
