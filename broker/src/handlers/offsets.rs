//! OffsetCommit, OffsetFetch and OffsetDelete: committed consumer positions.

use kafka_protocol::messages::offset_commit_response::{
    OffsetCommitResponsePartition, OffsetCommitResponseTopic,
};
use kafka_protocol::messages::offset_delete_response::{
    OffsetDeleteResponsePartition, OffsetDeleteResponseTopic,
};
use kafka_protocol::messages::offset_fetch_response::{
    OffsetFetchResponseGroup, OffsetFetchResponsePartition, OffsetFetchResponsePartitions,
    OffsetFetchResponseTopic, OffsetFetchResponseTopics,
};
use kafka_protocol::messages::{
    OffsetCommitRequest, OffsetCommitResponse, OffsetDeleteRequest, OffsetDeleteResponse,
    OffsetFetchRequest, OffsetFetchResponse, TopicName,
};
use sluice_storage::now_ms;

use super::kstr;
use crate::broker::Broker;
use crate::groups::{errors, validate_group_id, CommittedOffset};

/// OffsetCommit: all partitions share the group-level outcome unless one is refused alone
/// (unknown partition, metadata too large).
pub async fn offset_commit(
    broker: &Broker,
    request: OffsetCommitRequest,
    version: i16,
) -> OffsetCommitResponse {
    let now = now_ms();
    let mut known = Vec::new();
    let mut offsets = Vec::new();
    for topic in &request.topics {
        for p in &topic.partitions {
            let exists = broker.log(topic.name.as_str(), p.partition_index).is_some();
            known.push(exists);
            if exists {
                offsets.push((
                    (topic.name.to_string(), p.partition_index),
                    CommittedOffset {
                        offset: p.committed_offset,
                        leader_epoch: if version >= 6 {
                            p.committed_leader_epoch
                        } else {
                            -1
                        },
                        metadata: p
                            .committed_metadata
                            .as_ref()
                            .map_or_else(String::new, |m| m.to_string()),
                        commit_timestamp: now,
                    },
                ));
            }
        }
    }
    let group = request.group_id.to_string();
    let member = request.member_id.to_string();
    let instance = if version >= 7 {
        request.group_instance_id.as_ref().map(|s| s.to_string())
    } else {
        None
    };
    let generation = request.generation_id_or_member_epoch;
    let result = broker
        .groups
        .commit(&group, generation, &member, instance.as_deref(), offsets);
    let mut codes = match &result {
        Ok(codes) => codes.clone().into_iter(),
        Err(_) => Vec::new().into_iter(),
    };
    let mut response = OffsetCommitResponse::default();
    let mut k = known.into_iter();
    for topic in request.topics {
        let mut t = OffsetCommitResponseTopic::default();
        t.name = topic.name;
        for p in topic.partitions {
            let mut rp = OffsetCommitResponsePartition::default();
            rp.partition_index = p.partition_index;
            rp.error_code = if !k.next().unwrap_or(false) {
                errors::UNKNOWN_TOPIC_OR_PARTITION
            } else {
                match &result {
                    Err(code) => *code,
                    Ok(_) => codes.next().unwrap_or(errors::NONE),
                }
            };
            t.partitions.push(rp);
        }
        response.topics.push(t);
    }
    response
}

/// One group's committed offsets as
/// `(topic, [(partition, offset, epoch, metadata, error code)])`.
type GroupOffsets = Vec<(String, Vec<(i32, i64, i32, String, i16)>)>;

/// UNSTABLE_OFFSET_COMMIT: an open transaction holds an offset for the partition.
const UNSTABLE_OFFSET_COMMIT: i16 = 88;

/// The committed offsets of a group. With `require_stable` (v7+, KIP-447) a partition whose
/// offset an open transaction may still change answers UNSTABLE_OFFSET_COMMIT, so the
/// consumer retries instead of starting from an offset about to move.
fn fetch_group(
    broker: &Broker,
    group: &str,
    wanted: Option<Vec<(String, Vec<i32>)>>,
    require_stable: bool,
) -> Result<GroupOffsets, i16> {
    validate_group_id(group)?;
    let partitions = wanted.map(|topics| {
        topics
            .into_iter()
            .flat_map(|(t, ps)| ps.into_iter().map(move |p| (t.clone(), p)))
            .collect::<Vec<_>>()
    });
    let mut out: GroupOffsets = Vec::new();
    for ((topic, partition), committed) in broker.groups.committed(group, partitions) {
        let unstable = require_stable && broker.groups.has_pending_offset(group, &topic, partition);
        let (offset, epoch, metadata) = match committed {
            Some(c) if !unstable => (c.offset, c.leader_epoch, c.metadata),
            _ => (-1, -1, String::new()),
        };
        let code = if unstable { UNSTABLE_OFFSET_COMMIT } else { 0 };
        let entry = (partition, offset, epoch, metadata, code);
        match out.last_mut() {
            Some((t, list)) if *t == topic => list.push(entry),
            _ => out.push((topic, vec![entry])),
        }
    }
    Ok(out)
}

/// OffsetFetch: one group (v0-7) or several (v8+); all committed partitions when the topic
/// list is null.
pub fn offset_fetch(
    broker: &Broker,
    request: OffsetFetchRequest,
    version: i16,
) -> OffsetFetchResponse {
    let mut response = OffsetFetchResponse::default();
    if version >= 8 {
        for g in request.groups {
            let wanted = g.topics.map(|ts| {
                ts.into_iter()
                    .map(|t| (t.name.to_string(), t.partition_indexes))
                    .collect()
            });
            let mut rg = OffsetFetchResponseGroup::default();
            rg.group_id = g.group_id.clone();
            match fetch_group(broker, g.group_id.as_str(), wanted, request.require_stable) {
                Err(code) => rg.error_code = code,
                Ok(topics) => {
                    rg.topics = topics
                        .into_iter()
                        .map(|(name, parts)| {
                            let mut t = OffsetFetchResponseTopics::default();
                            t.name = TopicName(kstr(name));
                            t.partitions = parts
                                .into_iter()
                                .map(|(p, offset, epoch, metadata, code)| {
                                    let mut rp = OffsetFetchResponsePartitions::default();
                                    rp.partition_index = p;
                                    rp.error_code = code;
                                    rp.committed_offset = offset;
                                    rp.committed_leader_epoch = epoch;
                                    rp.metadata = Some(kstr(metadata));
                                    rp
                                })
                                .collect();
                            t
                        })
                        .collect();
                }
            }
            response.groups.push(rg);
        }
        return response;
    }
    let wanted = request.topics.map(|ts| {
        ts.into_iter()
            .map(|t| (t.name.to_string(), t.partition_indexes))
            .collect()
    });
    let require_stable = version >= 7 && request.require_stable;
    match fetch_group(broker, request.group_id.as_str(), wanted, require_stable) {
        Err(code) if version >= 2 => response.error_code = code,
        Err(_) => {}
        Ok(topics) => {
            response.topics = topics
                .into_iter()
                .map(|(name, parts)| {
                    let mut t = OffsetFetchResponseTopic::default();
                    t.name = TopicName(kstr(name));
                    t.partitions = parts
                        .into_iter()
                        .map(|(p, offset, epoch, metadata, code)| {
                            let mut rp = OffsetFetchResponsePartition::default();
                            rp.partition_index = p;
                            rp.error_code = code;
                            rp.committed_offset = offset;
                            if version >= 5 {
                                rp.committed_leader_epoch = epoch;
                            }
                            rp.metadata = Some(kstr(metadata));
                            rp
                        })
                        .collect();
                    t
                })
                .collect();
        }
    }
    response
}

/// OffsetDelete: refuses partitions of topics the group still consumes.
pub fn offset_delete(
    broker: &Broker,
    request: OffsetDeleteRequest,
    _version: i16,
) -> OffsetDeleteResponse {
    let partitions: Vec<(String, i32)> = request
        .topics
        .iter()
        .flat_map(|t| {
            t.partitions
                .iter()
                .map(move |p| (t.name.to_string(), p.partition_index))
        })
        .collect();
    let mut response = OffsetDeleteResponse::default();
    let codes = match broker
        .groups
        .delete_offsets(request.group_id.as_str(), &partitions)
    {
        Ok(codes) => codes,
        Err(code) => {
            response.error_code = code;
            return response;
        }
    };
    let mut codes = codes.into_iter();
    for topic in request.topics {
        let mut t = OffsetDeleteResponseTopic::default();
        t.name = topic.name;
        for p in topic.partitions {
            let mut rp = OffsetDeleteResponsePartition::default();
            rp.partition_index = p.partition_index;
            rp.error_code = codes.next().unwrap_or(errors::NONE);
            t.partitions.push(rp);
        }
        response.topics.push(t);
    }
    response
}
