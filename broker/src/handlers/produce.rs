//! Produce: validates and appends each partition's record batch, answering with the base
//! offset (or the precise error) per partition; acks=0 gets no response at all.

use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};
use std::sync::Arc;

use bytes::Bytes;
use kafka_protocol::messages::produce_response::{PartitionProduceResponse, TopicProduceResponse};
use kafka_protocol::messages::{ProduceRequest, ProduceResponse, TopicName};
use sluice_storage::batch::BATCH_HEADER_LEN;
use sluice_storage::transactions::TRANSACTIONAL_FLAG;
use sluice_storage::{now_ms, AppendInfo, PartitionLog, StorageError, TopicCompression};
use uuid::Uuid;

use super::{kstr, UNKNOWN_TOPIC_ID, UNKNOWN_TOPIC_OR_PARTITION};
use crate::broker::Broker;
use crate::txn::ProducerRef;

const INVALID_REQUIRED_ACKS: i16 = 21;
const CORRUPT_MESSAGE: i16 = 2;

/// Why a partition's batches were refused: the Kafka error code and a message.
type Refusal = (i16, String);

fn refusal(e: StorageError) -> Refusal {
    if matches!(e, StorageError::Io { .. }) {
        log_storage_failure(&e);
    }
    (e.kafka_error_code(), e.to_string())
}

/// When a storage failure was last logged (ms since the epoch), and how many went unlogged
/// since: producers retry a refused append every few hundred milliseconds, so a full disk
/// is logged once a second, not once per retry.
static STORAGE_FAILURE_LOGGED_MS: AtomicI64 = AtomicI64::new(0);
static STORAGE_FAILURES_UNLOGGED: AtomicU64 = AtomicU64::new(0);

/// Logs a failed write (a full disk, an I/O error): the producer gets KAFKA_STORAGE_ERROR,
/// and the operator must see it too.
fn log_storage_failure(e: &StorageError) {
    let now = now_ms();
    let last = STORAGE_FAILURE_LOGGED_MS.load(Ordering::Relaxed);
    if now - last < 1000
        || STORAGE_FAILURE_LOGGED_MS
            .compare_exchange(last, now, Ordering::Relaxed, Ordering::Relaxed)
            .is_err()
    {
        STORAGE_FAILURES_UNLOGGED.fetch_add(1, Ordering::Relaxed);
        return;
    }
    let unlogged = STORAGE_FAILURES_UNLOGGED.swap(0, Ordering::Relaxed);
    tracing::error!(error = %e, more_since_last_logged = unlogged, "append refused: the log could not be written");
}

/// Requests whose appends run on the connection's task instead of the blocking pool: at most
/// this many bytes of records in all.
const INLINE_APPEND_BYTES: usize = 1 << 20;

/// One partition's records to append.
struct AppendJob {
    /// Index of the partition in the request's `work`.
    index: usize,
    log: Arc<PartitionLog>,
    records: Bytes,
    /// The transactional producer of the records, if they are transactional.
    producer: Option<ProducerRef>,
}

/// Whether a produce request's appends can run inline: little data, no transactional batch
/// (those wait on the transaction's lock) and only partitions that leave flushing to the OS
/// (no fsync on the request's path) and store batches as sent (no recompression).
fn appends_inline(jobs: &[AppendJob]) -> bool {
    jobs.iter().map(|j| j.records.len()).sum::<usize>() <= INLINE_APPEND_BYTES
        && jobs.iter().all(|j| {
            let config = j.log.config();
            j.producer.is_none()
                && config.flush_messages == i64::MAX
                && config.flush_ms == i64::MAX
                && config.compression_type == TopicCompression::Producer
        })
}

/// The producer of a transactional first batch in `records`, if it is one (the log checks
/// the rest of the batch).
fn transactional_producer(records: &[u8]) -> Option<ProducerRef> {
    let header = records.get(..BATCH_HEADER_LEN)?;
    let attributes = i16::from_be_bytes([header[21], header[22]]);
    (attributes & TRANSACTIONAL_FLAG != 0).then(|| ProducerRef {
        id: i64::from_be_bytes(header[43..51].try_into().expect("8 bytes")),
        epoch: i16::from_be_bytes([header[51], header[52]]),
    })
}

/// One partition's part of the request, resolved to its log.
struct Work {
    topic_index: usize,
    partition: i32,
    target: Result<(Arc<PartitionLog>, Bytes), i16>,
}

/// Appends the request's batches; `None` when acks=0.
pub async fn handle(
    broker: &Broker,
    request: ProduceRequest,
    version: i16,
) -> Option<ProduceResponse> {
    let acks = request.acks;
    let mut response = ProduceResponse::default();
    let mut work = Vec::new();
    for (topic_index, topic) in request.topic_data.into_iter().enumerate() {
        let name = if topic.topic_id != Uuid::nil() && topic.name.is_empty() {
            broker.topics.get_by_id(topic.topic_id).map(|m| m.name)
        } else {
            Some(topic.name.to_string())
        };
        let mut t = TopicProduceResponse::default();
        t.name = TopicName(kstr(name.clone().unwrap_or_else(|| topic.name.to_string())));
        t.topic_id = topic.topic_id;
        response.responses.push(t);
        for p in topic.partition_data {
            let target = match (&name, p.records) {
                _ if !matches!(acks, -1..=1) => Err(INVALID_REQUIRED_ACKS),
                (None, _) => Err(UNKNOWN_TOPIC_ID),
                (Some(name), records) => match broker.log(name, p.index) {
                    None => Err(UNKNOWN_TOPIC_OR_PARTITION),
                    Some(log) => match records {
                        Some(bytes) => Ok((log, bytes)),
                        None => Err(CORRUPT_MESSAGE),
                    },
                },
            };
            work.push(Work {
                topic_index,
                partition: p.index,
                target,
            });
        }
    }
    let jobs: Vec<AppendJob> = work
        .iter()
        .enumerate()
        .filter_map(|(index, w)| {
            w.target.as_ref().ok().map(|(log, records)| AppendJob {
                index,
                log: log.clone(),
                records: records.clone(),
                producer: transactional_producer(records),
            })
        })
        .collect();
    let transactions = broker.transactions.clone();
    let inline = appends_inline(&jobs);
    let append_all = move || {
        let now = now_ms();
        jobs.into_iter()
            .map(|job| {
                let tp = job.log.topic_partition().clone();
                let append = || job.log.append(&job.records, now).map_err(refusal);
                let result = match job.producer {
                    // A transactional batch is appended only into an open transaction that
                    // holds the partition, and the transaction cannot end meanwhile.
                    Some(producer) => transactions
                        .while_in_transaction(producer, &tp.topic, tp.partition, append)
                        .and_then(|r| r),
                    None => append(),
                };
                (job.index, tp, result)
            })
            .collect::<Vec<_>>()
    };
    // Small appends under the OS flush policy only copy into the page cache (microseconds):
    // handing them to the blocking pool cost more than the write (a thread wake-up each way;
    // with 16 KiB batches the broker's CPU per GB halved without it). Anything that may
    // fsync, wait on a transaction or copy much goes to the blocking pool.
    let appended = if inline {
        append_all()
    } else {
        tokio::task::spawn_blocking(append_all)
            .await
            .unwrap_or_default()
    };
    let mut results: Vec<Option<Result<AppendInfo, Refusal>>> =
        (0..work.len()).map(|_| None).collect();
    for (i, tp, result) in appended {
        match &result {
            Ok(info) if info.duplicate => {
                tracing::debug!(partition = %tp, base_offset = info.base_offset, "duplicate batch of an idempotent producer acknowledged");
            }
            Ok(_) => broker.appends.notify(&tp),
            Err((_, e)) => tracing::debug!(partition = %tp, error = %e, "produce refused"),
        }
        results[i] = Some(result);
    }
    if acks == 0 {
        return None;
    }
    for (w, result) in work.into_iter().zip(results) {
        let mut p = PartitionProduceResponse::default();
        p.index = w.partition;
        p.base_offset = -1;
        p.log_append_time_ms = -1;
        p.log_start_offset = -1;
        let message = match (w.target, result) {
            (Err(code), _) => {
                p.error_code = code;
                None
            }
            // A retried batch of an idempotent producer that is already in the log is
            // acknowledged with NONE and its original base offset, as Kafka does.
            (Ok(_), Some(Ok(info))) => {
                p.base_offset = info.base_offset;
                p.log_append_time_ms = info.log_append_time;
                if version >= 5 {
                    p.log_start_offset = info.log_start_offset;
                }
                None
            }
            (Ok(_), Some(Err((code, message)))) => {
                p.error_code = code;
                Some(message)
            }
            (Ok(_), None) => {
                p.error_code = StorageError::Closed.kafka_error_code();
                Some("the append did not complete".to_string())
            }
        };
        if version >= 8 {
            p.error_message = message.map(kstr);
        }
        response.responses[w.topic_index]
            .partition_responses
            .push(p);
    }
    Some(response)
}
