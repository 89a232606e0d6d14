//! ListOffsets: earliest (-2, and -4 earliest-local), latest (-1), max timestamp (-3), or
//! the first offset whose timestamp is at or after a given time. A `read_committed` client
//! (v2+) sees the log as far as the last stable offset: latest is the LSO, and a record
//! at or past it is not found by time.

use kafka_protocol::messages::list_offsets_response::{
    ListOffsetsPartitionResponse, ListOffsetsTopicResponse,
};
use kafka_protocol::messages::{ListOffsetsRequest, ListOffsetsResponse};
use sluice_storage::PartitionLog;

use super::UNKNOWN_TOPIC_OR_PARTITION;
use crate::broker::Broker;

const LATEST: i64 = -1;
const EARLIEST: i64 = -2;
const MAX_TIMESTAMP: i64 = -3;
const EARLIEST_LOCAL: i64 = -4;

/// Answers each partition's offset query.
pub async fn handle(
    broker: &Broker,
    request: ListOffsetsRequest,
    version: i16,
) -> ListOffsetsResponse {
    let mut response = ListOffsetsResponse::default();
    let read_committed = version >= 2 && request.isolation_level == 1;
    for topic in request.topics {
        let mut t = ListOffsetsTopicResponse::default();
        t.name = topic.name.clone();
        for p in topic.partitions {
            let mut r = ListOffsetsPartitionResponse::default();
            r.partition_index = p.partition_index;
            r.timestamp = -1;
            r.offset = -1;
            if version >= 4 {
                r.leader_epoch = 0;
            }
            match broker.log(topic.name.as_str(), p.partition_index) {
                None => r.error_code = UNKNOWN_TOPIC_OR_PARTITION,
                Some(log) => {
                    let target = p.timestamp;
                    let found =
                        tokio::task::spawn_blocking(move || lookup(&log, target, read_committed))
                            .await
                            .unwrap_or(Err(-1));
                    match found {
                        Ok((offset, timestamp)) => {
                            r.offset = offset;
                            r.timestamp = timestamp;
                        }
                        Err(code) => r.error_code = code,
                    }
                }
            }
            t.partitions.push(r);
        }
        response.topics.push(t);
    }
    response
}

/// `(offset, timestamp)` for a ListOffsets target, or the Kafka error code.
fn lookup(log: &PartitionLog, target: i64, read_committed: bool) -> Result<(i64, i64), i16> {
    let end = if read_committed {
        log.last_stable_offset()
    } else {
        log.high_watermark()
    };
    let visible = |found: Option<(i64, i64)>| match found {
        Some((offset, timestamp)) if offset < end => (offset, timestamp),
        _ => (-1, -1),
    };
    match target {
        LATEST => Ok((end, -1)),
        EARLIEST | EARLIEST_LOCAL => Ok((log.log_start_offset(), -1)),
        MAX_TIMESTAMP => Ok(visible(
            log.max_timestamp_offset()
                .map_err(|e| e.kafka_error_code())?,
        )),
        t if t >= 0 => Ok(visible(
            log.offset_for_timestamp(t)
                .map_err(|e| e.kafka_error_code())?,
        )),
        // Unknown special timestamps (e.g. -5, latest tiered) are not supported.
        _ => Err(42), // INVALID_REQUEST
    }
}
