//! DescribeTransactions and ListTransactions (KIP-664): what the transaction coordinator
//! knows of transactional ids, for `kafka-transactions.sh` and admin clients.

use kafka_protocol::messages::describe_transactions_response::{TopicData, TransactionState};
use kafka_protocol::messages::list_transactions_response::TransactionState as ListedState;
use kafka_protocol::messages::{
    DescribeTransactionsRequest, DescribeTransactionsResponse, ListTransactionsRequest,
    ListTransactionsResponse, ProducerId, TopicName,
};
use sluice_storage::now_ms;

use super::kstr;
use crate::broker::Broker;
use crate::txn::{errors, TxnMetadata, TxnState};

/// Every state name ListTransactions may filter on.
const STATES: [TxnState; 8] = [
    TxnState::Empty,
    TxnState::Ongoing,
    TxnState::PrepareCommit,
    TxnState::PrepareAbort,
    TxnState::CompleteCommit,
    TxnState::CompleteAbort,
    TxnState::Dead,
    TxnState::PrepareEpochFence,
];

/// DescribeTransactions v0.
pub fn describe_transactions(
    broker: &Broker,
    request: DescribeTransactionsRequest,
    _version: i16,
) -> DescribeTransactionsResponse {
    let mut response = DescribeTransactionsResponse::default();
    for id in request.transactional_ids {
        let mut state = TransactionState::default();
        state.transactional_id = id.clone();
        match broker.transactions.describe(id.as_str()) {
            None => {
                state.error_code = errors::TRANSACTIONAL_ID_NOT_FOUND;
                state.producer_id = ProducerId(-1);
                state.producer_epoch = -1;
                state.transaction_start_time_ms = -1;
            }
            Some(meta) => {
                state.transaction_state = kstr(meta.state.name());
                state.transaction_timeout_ms = meta.timeout_ms;
                state.transaction_start_time_ms = meta.start_ms;
                state.producer_id = ProducerId(meta.producer_id);
                state.producer_epoch = meta.producer_epoch;
                let by_topic = meta.partitions_by_topic();
                for (topic, partitions) in by_topic {
                    let mut t = TopicData::default();
                    t.topic = TopicName(kstr(topic));
                    t.partitions = partitions;
                    state.topics.push(t);
                }
            }
        }
        response.transaction_states.push(state);
    }
    response
}

/// ListTransactions v0-1: filtered by state names, producer ids and (v1, KIP-994) how long
/// the transaction has been open.
pub fn list_transactions(
    broker: &Broker,
    request: ListTransactionsRequest,
    version: i16,
) -> ListTransactionsResponse {
    let mut response = ListTransactionsResponse::default();
    let mut states = Vec::new();
    for name in &request.state_filters {
        match STATES.iter().find(|s| s.name() == name.as_str()) {
            Some(s) => states.push(*s),
            None => response.unknown_state_filters.push(name.clone()),
        }
    }
    let producers: Vec<i64> = request.producer_id_filters.iter().map(|p| p.0).collect();
    let min_duration = if version >= 1 {
        request.duration_filter
    } else {
        -1
    };
    let now = now_ms();
    let wanted = |m: &TxnMetadata| {
        (request.state_filters.is_empty() || states.contains(&m.state))
            && (producers.is_empty() || producers.contains(&m.producer_id))
            && (min_duration < 0
                || (m.state == TxnState::Ongoing && now - m.start_ms >= min_duration))
    };
    for meta in broker.transactions.list().into_iter().filter(wanted) {
        let mut s = ListedState::default();
        s.transactional_id = kstr(meta.transactional_id).into();
        s.producer_id = ProducerId(meta.producer_id);
        s.transaction_state = kstr(meta.state.name());
        response.transaction_states.push(s);
    }
    response
}
