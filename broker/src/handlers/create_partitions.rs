//! CreatePartitions: grows topics to a larger partition count (or, with validate_only,
//! checks that it could). Manual replica assignment is refused: there is one broker.

use std::collections::HashSet;

use kafka_protocol::messages::create_partitions_request::CreatePartitionsTopic;
use kafka_protocol::messages::create_partitions_response::CreatePartitionsTopicResult;
use kafka_protocol::messages::{CreatePartitionsRequest, CreatePartitionsResponse};

use super::{kstr, INVALID_REPLICA_ASSIGNMENT, INVALID_REQUEST, NO_MANUAL_ASSIGNMENT};
use crate::broker::Broker;

/// Grows each requested topic and reports its result.
pub fn handle(
    broker: &Broker,
    request: CreatePartitionsRequest,
    _version: i16,
) -> CreatePartitionsResponse {
    let mut response = CreatePartitionsResponse::default();
    let mut seen = HashSet::new();
    for topic in &request.topics {
        let mut result = CreatePartitionsTopicResult::default();
        result.name = topic.name.clone();
        let outcome = if seen.insert(topic.name.as_str()) {
            grow(broker, topic, request.validate_only)
        } else {
            let name = topic.name.as_str();
            Err((
                INVALID_REQUEST,
                format!("topic {name:?} appears twice in the request"),
            ))
        };
        if let Err((code, message)) = outcome {
            result.error_code = code;
            result.error_message = Some(kstr(message));
        }
        response.results.push(result);
    }
    response
}

fn grow(
    broker: &Broker,
    topic: &CreatePartitionsTopic,
    validate_only: bool,
) -> Result<(), (i16, String)> {
    if topic.assignments.as_ref().is_some_and(|a| !a.is_empty()) {
        return Err((INVALID_REPLICA_ASSIGNMENT, NO_MANUAL_ASSIGNMENT.to_string()));
    }
    broker
        .create_partitions(topic.name.as_str(), topic.count, validate_only)
        .map(|_| ())
        .map_err(|e| (e.code(), e.to_string()))
}

#[cfg(test)]
mod tests {
    use kafka_protocol::messages::create_partitions_request::CreatePartitionsAssignment;
    use kafka_protocol::messages::{ApiKey, BrokerId, ResponseKind, TopicName};

    use super::*;
    use crate::handlers::test_support::{assert_encodes, create_topic, test_broker, versions};

    fn topic(name: &str, count: i32, assigned: bool) -> CreatePartitionsTopic {
        let mut t = CreatePartitionsTopic::default();
        t.name = TopicName(kstr(name));
        t.count = count;
        if assigned {
            let mut a = CreatePartitionsAssignment::default();
            a.broker_ids = vec![BrokerId(0)];
            t.assignments = Some(vec![a]);
        }
        t
    }

    #[test]
    fn grows_topics_and_refuses_what_it_cannot_do() {
        let (_dir, broker) = test_broker();
        create_topic(&broker, "t", 1);
        create_topic(&broker, "u", 1);
        let mut check = CreatePartitionsRequest::default();
        check.validate_only = true;
        check.topics = vec![topic("t", 3, false)];
        assert_eq!(handle(&broker, check, 0).results[0].error_code, 0);
        assert_eq!(broker.topics.get("t").unwrap().partitions, 1);
        for v in versions(ApiKey::CreatePartitions) {
            let mut request = CreatePartitionsRequest::default();
            let count = 2 + i32::from(v);
            request.topics = vec![
                topic("t", count, false),
                topic("t", count, false),
                topic("u", 1, false),
                topic("missing", 2, false),
                topic("w", 5, true),
            ];
            let response = handle(&broker, request, v);
            let codes: Vec<i16> = response.results.iter().map(|r| r.error_code).collect();
            assert_eq!(codes, [0, 42, 37, 3, 39]);
            assert!(broker.log("t", count - 1).is_some());
            assert_encodes(&ResponseKind::CreatePartitions(response), v);
        }
    }
}
