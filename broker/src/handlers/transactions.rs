//! The transactional producer's APIs: AddPartitionsToTxn, AddOffsetsToTxn, EndTxn (to the
//! transaction coordinator) and TxnOffsetCommit (to the group coordinator, checked against
//! the transaction), translated to and from [`crate::txn::TransactionCoordinator`].

use kafka_protocol::messages::add_partitions_to_txn_response::{
    AddPartitionsToTxnPartitionResult, AddPartitionsToTxnTopicResult,
};
use kafka_protocol::messages::txn_offset_commit_response::{
    TxnOffsetCommitResponsePartition, TxnOffsetCommitResponseTopic,
};
use kafka_protocol::messages::{
    AddOffsetsToTxnRequest, AddOffsetsToTxnResponse, AddPartitionsToTxnRequest,
    AddPartitionsToTxnResponse, EndTxnRequest, EndTxnResponse, TxnOffsetCommitRequest,
    TxnOffsetCommitResponse,
};
use sluice_storage::now_ms;

use super::UNKNOWN_TOPIC_OR_PARTITION;
use crate::broker::Broker;
use crate::groups::offsets_log;
use crate::groups::txn_offsets::TxnCommitter;
use crate::groups::{validate_group_id, CommittedOffset};
use crate::internal_log::TxnProducer;
use crate::txn::{errors, ProducerRef};

/// OPERATION_NOT_ATTEMPTED: the partition was fine, another one in the request was not.
const OPERATION_NOT_ATTEMPTED: i16 = 55;

/// The error for a stale epoch: PRODUCER_FENCED from the version that knows it (KIP-588).
fn fenced_code(version: i16, first_version_with_fenced: i16) -> i16 {
    if version >= first_version_with_fenced {
        errors::PRODUCER_FENCED
    } else {
        errors::INVALID_PRODUCER_EPOCH
    }
}

/// AddPartitionsToTxn v0-3: every partition must exist, or none is added.
pub fn add_partitions_to_txn(
    broker: &Broker,
    request: AddPartitionsToTxnRequest,
    version: i16,
) -> AddPartitionsToTxnResponse {
    let mut wanted = Vec::new();
    let mut unknown = false;
    for topic in &request.v3_and_below_topics {
        for p in &topic.partitions {
            let exists = broker.log(topic.name.as_str(), *p).is_some();
            unknown |= !exists;
            wanted.push((topic.name.to_string(), *p, exists));
        }
    }
    let outcome = if unknown {
        None
    } else {
        let partitions: Vec<(String, i32)> =
            wanted.iter().map(|(t, p, _)| (t.clone(), *p)).collect();
        Some(broker.transactions.add_partitions(
            request.v3_and_below_transactional_id.as_str(),
            ProducerRef {
                id: request.v3_and_below_producer_id.0,
                epoch: request.v3_and_below_producer_epoch,
            },
            &partitions,
            fenced_code(version, 2),
        ))
    };
    let mut response = AddPartitionsToTxnResponse::default();
    let mut existence = wanted.iter().map(|(_, _, exists)| *exists);
    for topic in request.v3_and_below_topics {
        let mut result = AddPartitionsToTxnTopicResult::default();
        result.name = topic.name.clone();
        for p in topic.partitions {
            let mut r = AddPartitionsToTxnPartitionResult::default();
            r.partition_index = p;
            let exists = existence.next().unwrap_or(false);
            r.partition_error_code = match &outcome {
                Some(Ok(())) => 0,
                Some(Err(code)) => *code,
                None if exists => OPERATION_NOT_ATTEMPTED,
                None => UNKNOWN_TOPIC_OR_PARTITION,
            };
            result.results_by_partition.push(r);
        }
        response.results_by_topic_v3_and_below.push(result);
    }
    response
}

/// AddOffsetsToTxn: the group's `__consumer_offsets` partition joins the transaction.
pub fn add_offsets_to_txn(
    broker: &Broker,
    request: AddOffsetsToTxnRequest,
    version: i16,
) -> AddOffsetsToTxnResponse {
    let mut response = AddOffsetsToTxnResponse::default();
    if let Err(code) = validate_group_id(request.group_id.as_str()) {
        response.error_code = code;
        return response;
    }
    let result = broker.transactions.add_partitions(
        request.transactional_id.as_str(),
        ProducerRef {
            id: request.producer_id.0,
            epoch: request.producer_epoch,
        },
        &[(offsets_log::TOPIC.to_string(), 0)],
        fenced_code(version, 2),
    );
    response.error_code = result.err().unwrap_or(0);
    response
}

/// EndTxn: commit or abort; markers are written before the answer.
pub fn end_txn(broker: &Broker, request: EndTxnRequest, version: i16) -> EndTxnResponse {
    let result = broker.transactions.end_txn(
        request.transactional_id.as_str(),
        ProducerRef {
            id: request.producer_id.0,
            epoch: request.producer_epoch,
        },
        request.committed,
        fenced_code(version, 2),
        broker,
    );
    let mut response = EndTxnResponse::default();
    response.error_code = result.err().unwrap_or(0);
    response
}

/// TxnOffsetCommit: offsets consumed in a transaction, committed with it.
pub fn txn_offset_commit(
    broker: &Broker,
    request: TxnOffsetCommitRequest,
    _version: i16,
) -> TxnOffsetCommitResponse {
    let producer = ProducerRef {
        id: request.producer_id.0,
        epoch: request.producer_epoch,
    };
    let group = request.group_id.as_str();
    let now = now_ms();
    let offsets: Vec<((String, i32), CommittedOffset)> = request
        .topics
        .iter()
        .flat_map(|t| {
            t.partitions.iter().map(move |p| {
                (
                    (t.name.to_string(), p.partition_index),
                    CommittedOffset {
                        offset: p.committed_offset,
                        leader_epoch: p.committed_leader_epoch,
                        metadata: p
                            .committed_metadata
                            .as_ref()
                            .map(|m| m.to_string())
                            .unwrap_or_default(),
                        commit_timestamp: now,
                    },
                )
            })
        })
        .collect();
    let count = offsets.len();
    let committer = TxnCommitter {
        producer: TxnProducer {
            id: producer.id,
            epoch: producer.epoch,
        },
        generation: request.generation_id,
        member_id: request.member_id.as_str(),
        instance_id: request.group_instance_id.as_ref().map(|s| s.as_str()),
    };
    let codes = validate_group_id(group).and_then(|()| {
        broker.transactions.while_offsets_in_transaction(
            request.transactional_id.as_str(),
            producer,
            (offsets_log::TOPIC, 0),
            || broker.groups.txn_commit(group, &committer, offsets),
        )
    });
    let codes = match codes {
        Ok(codes) => codes,
        Err(code) => vec![code; count],
    };
    let mut response = TxnOffsetCommitResponse::default();
    let mut codes = codes.into_iter();
    for topic in request.topics {
        let mut t = TxnOffsetCommitResponseTopic::default();
        t.name = topic.name;
        for p in topic.partitions {
            let mut r = TxnOffsetCommitResponsePartition::default();
            r.partition_index = p.partition_index;
            r.error_code = codes.next().unwrap_or(0);
            t.partitions.push(r);
        }
        response.topics.push(t);
    }
    response
}
