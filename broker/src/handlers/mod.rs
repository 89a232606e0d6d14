//! One module per Kafka API (or family); [`handle`] routes a decoded request to it.

use kafka_protocol::messages::{RequestKind, ResponseKind};
use kafka_protocol::protocol::StrBytes;
use kafka_protocol::ResponseError;

use crate::broker::Broker;

pub mod alter_configs;
pub mod configs;
pub mod create_partitions;
pub mod create_topics;
pub mod delete_records;
pub mod delete_topics;
pub mod describe_cluster;
pub mod describe_configs;
pub mod describe_log_dirs;
pub mod describe_producers;
pub mod describe_transactions;
pub mod fetch;
pub mod groups;
pub mod incremental_alter_configs;
pub mod init_producer_id;
pub mod list_offsets;
pub mod metadata;
pub mod offset_for_leader_epoch;
pub mod offsets;
pub mod produce;
#[cfg(test)]
pub mod test_support;
pub mod transactions;

/// Who sent a request: JoinGroup records it for DescribeGroups.
#[derive(Debug, Clone, Default)]
pub struct ClientInfo {
    /// `client.id` from the request header.
    pub client_id: String,
    /// The peer's IP address.
    pub host: String,
}

/// Runs the handler of `request`; `None` means no response is sent (acks=0 produce).
/// Only APIs listed in `api_versions::SUPPORTED` reach this point, except Fetch, which
/// `dispatch` answers itself so record data can go out with sendfile (`fetch_encode`).
pub async fn handle(
    broker: &Broker,
    client: &ClientInfo,
    request: RequestKind,
    version: i16,
) -> Option<ResponseKind> {
    Some(match request {
        RequestKind::FindCoordinator(r) => {
            ResponseKind::FindCoordinator(groups::find_coordinator(broker, r, version))
        }
        RequestKind::JoinGroup(r) => {
            ResponseKind::JoinGroup(groups::join_group(broker, client, r, version).await)
        }
        RequestKind::SyncGroup(r) => {
            ResponseKind::SyncGroup(groups::sync_group(broker, r, version).await)
        }
        RequestKind::Heartbeat(r) => ResponseKind::Heartbeat(groups::heartbeat(broker, r, version)),
        RequestKind::LeaveGroup(r) => {
            ResponseKind::LeaveGroup(groups::leave_group(broker, r, version))
        }
        RequestKind::DescribeGroups(r) => {
            ResponseKind::DescribeGroups(groups::describe_groups(broker, r, version))
        }
        RequestKind::ListGroups(r) => {
            ResponseKind::ListGroups(groups::list_groups(broker, r, version))
        }
        RequestKind::DeleteGroups(r) => {
            ResponseKind::DeleteGroups(groups::delete_groups(broker, r, version))
        }
        RequestKind::OffsetCommit(r) => {
            ResponseKind::OffsetCommit(offsets::offset_commit(broker, r, version).await)
        }
        RequestKind::OffsetFetch(r) => {
            ResponseKind::OffsetFetch(offsets::offset_fetch(broker, r, version))
        }
        RequestKind::OffsetDelete(r) => {
            ResponseKind::OffsetDelete(offsets::offset_delete(broker, r, version))
        }
        RequestKind::ApiVersions(r) => {
            ResponseKind::ApiVersions(crate::api_versions::response(&r, 0))
        }
        RequestKind::Metadata(r) => ResponseKind::Metadata(metadata::handle(broker, r, version)),
        RequestKind::Produce(r) => {
            ResponseKind::Produce(produce::handle(broker, r, version).await?)
        }
        // Fetch never reaches here: dispatch serves it zero-copy (fetch::handle + fetch_encode).
        RequestKind::ListOffsets(r) => {
            ResponseKind::ListOffsets(list_offsets::handle(broker, r, version).await)
        }
        RequestKind::CreateTopics(r) => {
            ResponseKind::CreateTopics(create_topics::handle(broker, r, version))
        }
        RequestKind::DeleteTopics(r) => {
            ResponseKind::DeleteTopics(delete_topics::handle(broker, r, version).await)
        }
        RequestKind::CreatePartitions(r) => {
            ResponseKind::CreatePartitions(create_partitions::handle(broker, r, version))
        }
        RequestKind::DescribeConfigs(r) => {
            ResponseKind::DescribeConfigs(describe_configs::handle(broker, r, version))
        }
        RequestKind::AlterConfigs(r) => {
            ResponseKind::AlterConfigs(alter_configs::handle(broker, r, version))
        }
        RequestKind::IncrementalAlterConfigs(r) => ResponseKind::IncrementalAlterConfigs(
            incremental_alter_configs::handle(broker, r, version),
        ),
        RequestKind::DeleteRecords(r) => {
            ResponseKind::DeleteRecords(delete_records::handle(broker, r, version).await)
        }
        RequestKind::DescribeCluster(r) => {
            ResponseKind::DescribeCluster(describe_cluster::handle(broker, r, version))
        }
        RequestKind::DescribeLogDirs(r) => {
            ResponseKind::DescribeLogDirs(describe_log_dirs::handle(broker, r, version))
        }
        RequestKind::InitProducerId(r) => {
            ResponseKind::InitProducerId(init_producer_id::handle(broker, r, version))
        }
        RequestKind::AddPartitionsToTxn(r) => ResponseKind::AddPartitionsToTxn(
            transactions::add_partitions_to_txn(broker, r, version),
        ),
        RequestKind::AddOffsetsToTxn(r) => {
            ResponseKind::AddOffsetsToTxn(transactions::add_offsets_to_txn(broker, r, version))
        }
        RequestKind::EndTxn(r) => ResponseKind::EndTxn(transactions::end_txn(broker, r, version)),
        RequestKind::TxnOffsetCommit(r) => {
            ResponseKind::TxnOffsetCommit(transactions::txn_offset_commit(broker, r, version))
        }
        RequestKind::DescribeTransactions(r) => ResponseKind::DescribeTransactions(
            describe_transactions::describe_transactions(broker, r, version),
        ),
        RequestKind::ListTransactions(r) => ResponseKind::ListTransactions(
            describe_transactions::list_transactions(broker, r, version),
        ),
        RequestKind::DescribeProducers(r) => {
            ResponseKind::DescribeProducers(describe_producers::handle(broker, r, version))
        }
        RequestKind::OffsetForLeaderEpoch(r) => {
            ResponseKind::OffsetForLeaderEpoch(offset_for_leader_epoch::handle(broker, r, version))
        }
        other => {
            // Unreachable while SUPPORTED and this match agree; a unit test checks they do.
            tracing::error!(api = ?std::mem::discriminant(&other), "no handler for an advertised API");
            return None;
        }
    })
}

/// A Kafka string from a Rust string.
pub fn kstr(s: impl Into<String>) -> StrBytes {
    StrBytes::from_string(s.into())
}

/// Error code for "topic or partition unknown".
pub const UNKNOWN_TOPIC_OR_PARTITION: i16 = 3;
/// Error code for "topic id unknown" (KIP-516).
pub const UNKNOWN_TOPIC_ID: i16 = 100;
/// UNKNOWN_SERVER_ERROR: the broker failed in a way the request did not cause.
pub const UNKNOWN_SERVER_ERROR: i16 = ResponseError::UnknownServerError.code();
/// INVALID_REQUEST: the request is well formed but asks for something contradictory.
pub const INVALID_REQUEST: i16 = ResponseError::InvalidRequest.code();
/// INVALID_CONFIG: a config key or value is refused.
pub const INVALID_CONFIG: i16 = ResponseError::InvalidConfig.code();
/// INVALID_REPLICA_ASSIGNMENT: a manual replica assignment cannot be honoured.
pub const INVALID_REPLICA_ASSIGNMENT: i16 = ResponseError::InvalidReplicaAssignment.code();

/// Why CreateTopics and CreatePartitions refuse a manual replica assignment.
pub const NO_MANUAL_ASSIGNMENT: &str =
    "manual replica assignment is not supported by a single-node sluice; omit it and the \
     broker places every replica on itself";
