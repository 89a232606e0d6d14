//! DeleteRecords: moves partitions' log start offsets forward (records below become
//! unreadable and whole segments below are deleted); -1 means the high watermark.

use kafka_protocol::messages::delete_records_request::DeleteRecordsPartition;
use kafka_protocol::messages::delete_records_response::{
    DeleteRecordsPartitionResult, DeleteRecordsTopicResult,
};
use kafka_protocol::messages::{DeleteRecordsRequest, DeleteRecordsResponse};

use super::{UNKNOWN_SERVER_ERROR, UNKNOWN_TOPIC_OR_PARTITION};
use crate::broker::Broker;

/// Deletes records below each requested offset and reports the new low watermarks.
pub async fn handle(
    broker: &Broker,
    request: DeleteRecordsRequest,
    _version: i16,
) -> DeleteRecordsResponse {
    let mut response = DeleteRecordsResponse::default();
    for topic in request.topics {
        let mut t = DeleteRecordsTopicResult::default();
        for p in &topic.partitions {
            t.partitions
                .push(delete_partition(broker, topic.name.as_str(), p).await);
        }
        t.name = topic.name;
        response.topics.push(t);
    }
    response
}

async fn delete_partition(
    broker: &Broker,
    topic: &str,
    partition: &DeleteRecordsPartition,
) -> DeleteRecordsPartitionResult {
    let mut r = DeleteRecordsPartitionResult::default();
    r.partition_index = partition.partition_index;
    r.low_watermark = -1;
    let Some(log) = broker.log(topic, partition.partition_index) else {
        r.error_code = UNKNOWN_TOPIC_OR_PARTITION;
        return r;
    };
    let offset = partition.offset;
    let deleted = tokio::task::spawn_blocking(move || log.delete_records(offset)).await;
    match deleted {
        Ok(Ok(low_watermark)) => r.low_watermark = low_watermark,
        Ok(Err(e)) => {
            tracing::debug!(topic, partition = partition.partition_index, error = %e, "DeleteRecords refused");
            r.error_code = e.kafka_error_code();
        }
        Err(e) => {
            tracing::error!(topic, partition = partition.partition_index, error = %e, "DeleteRecords task failed");
            r.error_code = UNKNOWN_SERVER_ERROR;
        }
    }
    r
}

#[cfg(test)]
mod tests {
    use kafka_protocol::messages::delete_records_request::DeleteRecordsTopic;
    use kafka_protocol::messages::{ApiKey, ResponseKind, TopicName};
    use sluice_storage::BatchBuilder;

    use super::*;
    use crate::handlers::kstr;
    use crate::handlers::test_support::{assert_encodes, create_topic, test_broker, versions};

    fn request(topic: &str, parts: &[(i32, i64)]) -> DeleteRecordsRequest {
        let mut t = DeleteRecordsTopic::default();
        t.name = TopicName(kstr(topic));
        t.partitions = parts
            .iter()
            .map(|(p, o)| {
                let mut dp = DeleteRecordsPartition::default();
                dp.partition_index = *p;
                dp.offset = *o;
                dp
            })
            .collect();
        let mut r = DeleteRecordsRequest::default();
        r.topics = vec![t];
        r
    }

    #[tokio::test]
    async fn moves_the_low_watermark() {
        let (_dir, broker) = test_broker();
        create_topic(&broker, "t", 1);
        let log = broker.log("t", 0).unwrap();
        for _ in 0..5 {
            let batch = BatchBuilder::new(0).push(None, Some(b"v"), &[], 1).build();
            log.append(&batch, sluice_storage::now_ms()).unwrap();
        }
        for v in versions(ApiKey::DeleteRecords) {
            let offset = i64::from(v) + 1;
            let req = request("t", &[(0, offset), (1, 0), (0, 99)]);
            let response = handle(&broker, req, v).await;
            let parts = &response.topics[0].partitions;
            let got: Vec<(i16, i64)> = parts
                .iter()
                .map(|p| (p.error_code, p.low_watermark))
                .collect();
            assert_eq!(got, [(0, offset), (3, -1), (1, -1)]);
            assert_encodes(&ResponseKind::DeleteRecords(response), v);
        }
        let response = handle(&broker, request("t", &[(0, -1)]), 2).await;
        assert_eq!(response.topics[0].partitions[0].low_watermark, 5);
    }
}
