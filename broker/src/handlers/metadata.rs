//! Metadata: brokers, cluster id, and topics with their partitions (this broker leads all
//! of them). Unknown topics are auto-created when the broker and the request allow it.

use kafka_protocol::messages::metadata_response::{
    MetadataResponseBroker, MetadataResponsePartition, MetadataResponseTopic,
};
use kafka_protocol::messages::{BrokerId, MetadataRequest, MetadataResponse, TopicName};
use uuid::Uuid;

use super::{kstr, UNKNOWN_TOPIC_ID, UNKNOWN_TOPIC_OR_PARTITION};
use crate::broker::{Broker, NewTopic};
use crate::topics::{validate_topic_name, TopicMeta};

/// Authorized-operations value meaning "not requested".
const OPS_NOT_REQUESTED: i32 = i32::MIN;

/// Answers a Metadata request.
pub fn handle(broker: &Broker, request: MetadataRequest, version: i16) -> MetadataResponse {
    let mut response = MetadataResponse::default();
    let mut b = MetadataResponseBroker::default();
    b.node_id = BrokerId(broker.config.node_id);
    b.host = kstr(broker.advertised_host.clone());
    b.port = broker.advertised_port;
    response.brokers = vec![b];
    if version >= 2 {
        response.cluster_id = Some(kstr(broker.topics.cluster_id()));
    }
    if version >= 1 {
        response.controller_id = BrokerId(broker.config.node_id);
    }
    response.cluster_authorized_operations = OPS_NOT_REQUESTED;

    let all_topics = match &request.topics {
        None => true,
        Some(list) => version == 0 && list.is_empty(),
    };
    if all_topics {
        response.topics = broker
            .topics
            .all()
            .iter()
            .map(|meta| topic_response(broker, meta, version))
            .collect();
        return response;
    }
    let auto_create =
        broker.config.auto_create_topics && (version < 4 || request.allow_auto_topic_creation);
    for wanted in request.topics.unwrap_or_default() {
        let topic = match &wanted.name {
            Some(name) => lookup_or_create(broker, name.as_str(), auto_create),
            None if wanted.topic_id != Uuid::nil() => broker
                .topics
                .get_by_id(wanted.topic_id)
                .ok_or(UNKNOWN_TOPIC_ID),
            None => Err(UNKNOWN_TOPIC_OR_PARTITION),
        };
        response.topics.push(match topic {
            Ok(meta) => topic_response(broker, &meta, version),
            Err(code) => {
                let mut t = MetadataResponseTopic::default();
                t.error_code = code;
                t.name = wanted.name.clone();
                if version >= 10 {
                    t.topic_id = wanted.topic_id;
                }
                t.topic_authorized_operations = OPS_NOT_REQUESTED;
                t
            }
        });
    }
    response
}

fn lookup_or_create(broker: &Broker, name: &str, auto_create: bool) -> Result<TopicMeta, i16> {
    if let Some(meta) = broker.topics.get(name) {
        return Ok(meta);
    }
    if let Err(e) = validate_topic_name(name) {
        return Err(e.code());
    }
    if !auto_create {
        return Err(UNKNOWN_TOPIC_OR_PARTITION);
    }
    match broker.create_topic(NewTopic {
        name: name.to_string(),
        partitions: -1,
        replication_factor: -1,
        configs: Default::default(),
    }) {
        Ok(meta) => Ok(meta),
        // Another connection created it at the same moment.
        Err(e) if e.code() == 36 => broker.topics.get(name).ok_or(UNKNOWN_TOPIC_OR_PARTITION),
        Err(e) => {
            tracing::warn!(topic = name, error = %e, "auto-creating topic failed");
            Err(e.code())
        }
    }
}

fn topic_response(broker: &Broker, meta: &TopicMeta, version: i16) -> MetadataResponseTopic {
    let node = BrokerId(broker.config.node_id);
    let mut t = MetadataResponseTopic::default();
    t.name = Some(TopicName(kstr(meta.name.clone())));
    if version >= 10 {
        t.topic_id = meta.id;
    }
    if version >= 1 {
        t.is_internal = meta.name.starts_with("__");
    }
    t.topic_authorized_operations = OPS_NOT_REQUESTED;
    t.partitions = (0..meta.partitions)
        .map(|p| {
            let mut part = MetadataResponsePartition::default();
            part.partition_index = p;
            part.leader_id = node;
            if version >= 7 {
                part.leader_epoch = 0;
            }
            part.replica_nodes = vec![node];
            part.isr_nodes = vec![node];
            part
        })
        .collect();
    t
}
