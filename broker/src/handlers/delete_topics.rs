//! DeleteTopics: removes topics by name (v1-v5) or by name or topic id (v6), with their
//! partition files.

use std::collections::HashSet;

use kafka_protocol::messages::delete_topics_response::DeletableTopicResult;
use kafka_protocol::messages::{DeleteTopicsRequest, DeleteTopicsResponse, TopicName};
use uuid::Uuid;

use super::{kstr, INVALID_REQUEST, UNKNOWN_TOPIC_ID};
use crate::broker::Broker;

/// Deletes each requested topic and reports its result.
pub async fn handle(
    broker: &Broker,
    request: DeleteTopicsRequest,
    version: i16,
) -> DeleteTopicsResponse {
    let targets: Vec<(Option<TopicName>, Uuid)> = if version >= 6 {
        request
            .topics
            .into_iter()
            .map(|t| (t.name, t.topic_id))
            .collect()
    } else {
        request
            .topic_names
            .into_iter()
            .map(|n| (Some(n), Uuid::nil()))
            .collect()
    };
    let mut response = DeleteTopicsResponse::default();
    let mut seen = HashSet::new();
    for (name, id) in targets {
        let mut result = DeletableTopicResult::default();
        result.name = name.clone();
        let outcome = match resolve(broker, name, id) {
            Ok(name) if !seen.insert(name.clone()) => Err((
                INVALID_REQUEST,
                format!("topic {name:?} appears twice in the request"),
            )),
            Ok(name) => broker
                .delete_topic(&name)
                .await
                .map_err(|e| (e.code(), e.to_string())),
            Err(e) => Err(e),
        };
        match outcome {
            Ok(meta) => {
                result.name = Some(TopicName(kstr(meta.name)));
                if version >= 6 {
                    result.topic_id = meta.id;
                }
            }
            Err((code, message)) => {
                result.error_code = code;
                if version >= 5 {
                    result.error_message = Some(kstr(message));
                }
                if version >= 6 {
                    result.topic_id = id;
                }
            }
        }
        response.responses.push(result);
    }
    response
}

/// The name of the topic a request entry means: its name, or the name of its topic id.
fn resolve(broker: &Broker, name: Option<TopicName>, id: Uuid) -> Result<String, (i16, String)> {
    match (name, id.is_nil()) {
        (Some(_), false) => Err((
            INVALID_REQUEST,
            "give a topic name or a topic id, not both".to_string(),
        )),
        (Some(name), true) => Ok(name.to_string()),
        (None, false) => broker
            .topics
            .get_by_id(id)
            .map(|m| m.name)
            .ok_or((UNKNOWN_TOPIC_ID, format!("no topic has id {id}"))),
        (None, true) => Err((
            INVALID_REQUEST,
            "the topic has neither a name nor an id".to_string(),
        )),
    }
}

#[cfg(test)]
mod tests {
    use kafka_protocol::messages::delete_topics_request::DeleteTopicState;
    use kafka_protocol::messages::{ApiKey, ResponseKind};

    use super::*;
    use crate::handlers::test_support::{assert_encodes, create_topic, test_broker, versions};

    #[tokio::test]
    async fn deletes_by_name_and_id_at_every_version() {
        let (dir, broker) = test_broker();
        for v in versions(ApiKey::DeleteTopics) {
            create_topic(&broker, "a", 2);
            create_topic(&broker, "b", 1);
            let b_id = broker.topics.get("b").unwrap().id;
            let mut request = DeleteTopicsRequest::default();
            let names = ["a", "missing", "a"];
            if v >= 6 {
                let by_name = names.iter().map(|n| {
                    let mut t = DeleteTopicState::default();
                    t.name = Some(TopicName(kstr(*n)));
                    t
                });
                let by_id = [b_id, Uuid::new_v4()].into_iter().map(|id| {
                    let mut t = DeleteTopicState::default();
                    t.topic_id = id;
                    t
                });
                request.topics = by_name.chain(by_id).collect();
            } else {
                request.topic_names = names.iter().map(|n| TopicName(kstr(*n))).collect();
                request.topic_names.push(TopicName(kstr("b")));
            }
            let response = handle(&broker, request, v).await;
            let codes: Vec<i16> = response.responses.iter().map(|r| r.error_code).collect();
            let expected: &[i16] = if v >= 6 {
                &[0, 3, 42, 0, 100]
            } else {
                &[0, 3, 42, 0]
            };
            assert_eq!(codes, expected, "v{v}");
            assert_eq!(
                response.responses[3].name.as_ref().map(|n| n.as_str()),
                Some("b")
            );
            assert!(broker.topics.all().iter().all(|t| t.name.starts_with("__")));
            assert!(!dir.path().join("a-0").exists());
            assert_encodes(&ResponseKind::DeleteTopics(response), v);
        }
    }
}
