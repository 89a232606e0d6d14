//! DescribeProducers (KIP-664): the producers a partition knows, with their epoch, last
//! sequence and the start of their open transaction, so `kafka-transactions.sh
//! describe-producers` / `find-hanging` can spot a transaction that never ended.

use kafka_protocol::messages::describe_producers_response::{
    PartitionResponse, ProducerState, TopicResponse,
};
use kafka_protocol::messages::{DescribeProducersRequest, DescribeProducersResponse, ProducerId};

use super::{kstr, UNKNOWN_TOPIC_OR_PARTITION};
use crate::broker::Broker;

/// DescribeProducers v0.
pub fn handle(
    broker: &Broker,
    request: DescribeProducersRequest,
    _version: i16,
) -> DescribeProducersResponse {
    let mut response = DescribeProducersResponse::default();
    for topic in request.topics {
        let mut t = TopicResponse::default();
        t.name = topic.name.clone();
        for partition in topic.partition_indexes {
            let mut p = PartitionResponse::default();
            p.partition_index = partition;
            match broker.log(topic.name.as_str(), partition) {
                None => {
                    p.error_code = UNKNOWN_TOPIC_OR_PARTITION;
                    p.error_message = Some(kstr(format!(
                        "{}-{partition} does not exist",
                        topic.name.as_str()
                    )));
                }
                Some(log) => {
                    p.active_producers = log
                        .producers()
                        .into_iter()
                        .map(|s| {
                            let mut state = ProducerState::default();
                            state.producer_id = ProducerId(s.producer_id);
                            state.producer_epoch = i32::from(s.producer_epoch);
                            state.last_sequence = s.last_sequence;
                            state.last_timestamp = s.last_timestamp;
                            state.coordinator_epoch = s.coordinator_epoch;
                            state.current_txn_start_offset = s.current_txn_start_offset;
                            state
                        })
                        .collect();
                }
            }
            t.partitions.push(p);
        }
        response.topics.push(t);
    }
    response
}
