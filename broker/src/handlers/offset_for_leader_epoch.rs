//! OffsetForLeaderEpoch: the end offset of a leader epoch, which consumers use to detect log
//! truncation (KIP-320). A sluice partition has one leader for its whole life, so its only
//! epoch is 0 and it ends at the log end offset.

use kafka_protocol::messages::offset_for_leader_epoch_request::OffsetForLeaderPartition;
use kafka_protocol::messages::offset_for_leader_epoch_response::{
    EpochEndOffset, OffsetForLeaderTopicResult,
};
use kafka_protocol::messages::{OffsetForLeaderEpochRequest, OffsetForLeaderEpochResponse};
use kafka_protocol::ResponseError;

use super::UNKNOWN_TOPIC_OR_PARTITION;
use crate::broker::Broker;

/// The leader epoch of every partition (Metadata reports the same).
const LEADER_EPOCH: i32 = 0;
/// "No epoch given": the current-epoch check is skipped.
const NO_EPOCH: i32 = -1;

/// Answers each partition's epoch query.
pub fn handle(
    broker: &Broker,
    request: OffsetForLeaderEpochRequest,
    _version: i16,
) -> OffsetForLeaderEpochResponse {
    let mut response = OffsetForLeaderEpochResponse::default();
    response.topics = request
        .topics
        .into_iter()
        .map(|topic| {
            let mut t = OffsetForLeaderTopicResult::default();
            t.partitions = topic
                .partitions
                .iter()
                .map(|p| end_offset(broker, topic.topic.as_str(), p))
                .collect();
            t.topic = topic.topic;
            t
        })
        .collect();
    response
}

/// Kafka's rules: a current epoch older than ours is FENCED_LEADER_EPOCH, newer is
/// UNKNOWN_LEADER_EPOCH; the current epoch ends at the log end offset; an epoch we never had
/// (later or negative) has no end offset (-1/-1).
fn end_offset(broker: &Broker, topic: &str, p: &OffsetForLeaderPartition) -> EpochEndOffset {
    let mut r = EpochEndOffset::default();
    r.partition = p.partition;
    let Some(log) = broker.log(topic, p.partition) else {
        r.error_code = UNKNOWN_TOPIC_OR_PARTITION;
        return r;
    };
    if p.current_leader_epoch != NO_EPOCH && p.current_leader_epoch < LEADER_EPOCH {
        r.error_code = ResponseError::FencedLeaderEpoch.code();
    } else if p.current_leader_epoch > LEADER_EPOCH {
        r.error_code = ResponseError::UnknownLeaderEpoch.code();
    } else if p.leader_epoch == LEADER_EPOCH {
        r.leader_epoch = LEADER_EPOCH;
        r.end_offset = log.log_end_offset();
    }
    r
}

#[cfg(test)]
mod tests {
    use kafka_protocol::messages::offset_for_leader_epoch_request::OffsetForLeaderTopic;
    use kafka_protocol::messages::{ApiKey, ResponseKind, TopicName};

    use super::*;
    use crate::handlers::kstr;
    use crate::handlers::test_support::{assert_encodes, create_topic, test_broker, versions};

    #[test]
    fn epoch_zero_ends_at_the_log_end() {
        let (_dir, broker) = test_broker();
        create_topic(&broker, "t", 1);
        let cases = [
            (0, -1, 0),
            (1, -1, 0),
            (0, 0, 3),
            (0, 0, -5),
            (0, 1, 0),
            (0, -2, 0),
            (9, -1, 0),
        ];
        let mut topic = OffsetForLeaderTopic::default();
        topic.topic = TopicName(kstr("t"));
        topic.partitions = cases
            .iter()
            .map(|(partition, current, epoch)| {
                let mut p = OffsetForLeaderPartition::default();
                p.partition = *partition;
                p.current_leader_epoch = *current;
                p.leader_epoch = *epoch;
                p
            })
            .collect();
        let mut request = OffsetForLeaderEpochRequest::default();
        request.topics = vec![topic];
        for v in versions(ApiKey::OffsetForLeaderEpoch) {
            let response = handle(&broker, request.clone(), v);
            let got: Vec<(i16, i32, i64)> = response.topics[0]
                .partitions
                .iter()
                .map(|p| (p.error_code, p.leader_epoch, p.end_offset))
                .collect();
            let expected = [
                (0, 0, 0),
                (3, -1, -1),
                (0, -1, -1),
                (0, -1, -1),
                (75, -1, -1),
                (74, -1, -1),
                (3, -1, -1),
            ];
            assert_eq!(got, expected);
            assert_encodes(&ResponseKind::OffsetForLeaderEpoch(response), v);
        }
    }
}
