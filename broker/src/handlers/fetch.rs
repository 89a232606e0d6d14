//! Fetch: reads whole record batches from each partition, honouring min/max bytes,
//! per-partition limits, long polling (woken by appends, not by a timer) and fetch
//! sessions (KIP-227). Records are handed over as stored, never decoded.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use bytes::Bytes;
use kafka_protocol::messages::{FetchRequest, TopicName};
use sluice_storage::{PartitionLog, TopicPartition};
use tokio::sync::futures::Notified;
use tokio::sync::Notify;
use tokio::time::Instant;

use super::{UNKNOWN_TOPIC_ID, UNKNOWN_TOPIC_OR_PARTITION};
use crate::broker::Broker;
use crate::fetch_encode::{FetchOut, PartitionOut, Records, TopicOut};
use crate::fetch_session::{FetchTarget, PartitionView};

/// Read committed (1) or uncommitted (0).
const READ_COMMITTED: i8 = 1;

/// What one partition's read produced.
#[derive(Debug, Clone)]
struct Outcome {
    error_code: i16,
    high_watermark: i64,
    last_stable_offset: i64,
    log_start_offset: i64,
    /// Aborted transactions among the records (read_committed only): (producer, first offset).
    aborted: Vec<(i64, i64)>,
    records: Records,
}

/// Serves a fetch, waiting up to max_wait_ms for min_bytes to arrive. The response refers to
/// record data by file range; `fetch_encode` turns it into a zero-copy frame.
pub async fn handle(broker: &Broker, request: FetchRequest, version: i16) -> FetchOut {
    let mut response = FetchOut::default();
    let uses_ids = version >= 13;
    let resolve = |name: &TopicName, id: uuid::Uuid| -> (String, uuid::Uuid) {
        if uses_ids {
            let name = broker
                .topics
                .get_by_id(id)
                .map(|m| m.name)
                .unwrap_or_default();
            (name, id)
        } else {
            let id = broker
                .topics
                .get(name.as_str())
                .map_or(uuid::Uuid::nil(), |m| m.id);
            (name.to_string(), id)
        }
    };
    let mut requested = Vec::new();
    for topic in &request.topics {
        let (name, id) = resolve(&topic.topic, topic.topic_id);
        for p in &topic.partitions {
            requested.push(FetchTarget {
                topic: name.clone(),
                topic_id: id,
                partition: p.partition,
                fetch_offset: p.fetch_offset,
                max_bytes: p.partition_max_bytes,
            });
        }
    }
    let forgotten: Vec<(String, i32)> = request
        .forgotten_topics_data
        .iter()
        .flat_map(|f| {
            let (name, _) = resolve(&f.topic, f.topic_id);
            f.partitions.iter().map(move |p| (name.clone(), *p))
        })
        .collect();
    let plan = match broker.fetch_sessions.begin(
        request.session_id,
        request.session_epoch,
        requested,
        &forgotten,
    ) {
        Ok(plan) => plan,
        Err(code) => {
            response.error_code = code;
            return response;
        }
    };
    response.session_id = plan.session_id;

    let logs: Vec<Option<Arc<PartitionLog>>> = plan
        .targets
        .iter()
        .map(|t| broker.log(&t.topic, t.partition))
        .collect();
    let signals: Vec<Arc<Notify>> = plan
        .targets
        .iter()
        .map(|t| {
            broker
                .appends
                .signal(&TopicPartition::new(t.topic.clone(), t.partition))
        })
        .collect();
    let max_bytes = if request.max_bytes <= 0 {
        i32::MAX
    } else {
        request.max_bytes
    } as usize;
    let min_bytes = request.min_bytes.max(0) as usize;
    let deadline = Instant::now() + Duration::from_millis(request.max_wait_ms.max(0) as u64);
    let read_committed = request.isolation_level == READ_COMMITTED;
    let outcomes = loop {
        let wakeup = AnyNotified::new(&signals);
        let targets = plan.targets.clone();
        let logs_for_read = logs.clone();
        let read = move || {
            read_all(
                &targets,
                &logs_for_read,
                max_bytes,
                uses_ids,
                read_committed,
            )
        };
        // A caught-up consumer's poll reads nothing (no file is touched at the log end):
        // answering it here saves the blocking-pool hand-off that real reads need.
        let outcomes = if all_caught_up(&plan.targets, &logs) {
            read()
        } else {
            tokio::task::spawn_blocking(read).await.unwrap_or_default()
        };
        let bytes: usize = outcomes.iter().map(|o| o.records.len()).sum();
        let any_error = outcomes.iter().any(|o| o.error_code != 0);
        if bytes >= min_bytes.max(1) || any_error || Instant::now() >= deadline {
            break outcomes;
        }
        // Woken by an append or timed out: read again; past the deadline that read is the
        // answer (possibly empty).
        let _ = tokio::time::timeout_at(deadline, wakeup).await;
    };

    for (target, outcome) in plan.targets.iter().zip(outcomes) {
        let view = PartitionView {
            high_watermark: outcome.high_watermark,
            last_stable_offset: outcome.last_stable_offset,
            log_start_offset: outcome.log_start_offset,
            error_code: outcome.error_code,
        };
        let include = broker.fetch_sessions.note_sent(
            plan.session_id,
            target,
            view,
            !outcome.records.is_empty(),
        );
        if plan.incremental && !include {
            continue;
        }
        let partition = PartitionOut {
            partition: target.partition,
            error_code: outcome.error_code,
            high_watermark: outcome.high_watermark,
            last_stable_offset: outcome.last_stable_offset,
            log_start_offset: outcome.log_start_offset,
            aborted_transactions: read_committed.then_some(outcome.aborted),
            records: outcome.records,
        };
        let same_topic = response
            .topics
            .last()
            .is_some_and(|t| t.name == target.topic && t.id == target.topic_id);
        if !same_topic {
            response.topics.push(TopicOut {
                name: target.topic.clone(),
                id: target.topic_id,
                partitions: Vec::new(),
            });
        }
        if let Some(t) = response.topics.last_mut() {
            t.partitions.push(partition);
        }
    }
    response
}

/// Reads every target in order within the response byte budget. The first batch found is
/// returned even when it alone exceeds the limits (KIP-74); later ones only if they fit.
/// `read_committed` readers get only what is below the last stable offset, with the
/// aborted transactions among it.
fn read_all(
    targets: &[FetchTarget],
    logs: &[Option<Arc<PartitionLog>>],
    max_bytes: usize,
    uses_ids: bool,
    read_committed: bool,
) -> Vec<Outcome> {
    let mut remaining = max_bytes;
    let mut returned_any = false;
    targets
        .iter()
        .zip(logs)
        .map(|(target, log)| {
            let Some(log) = log else {
                let code = if uses_ids && target.topic.is_empty() {
                    UNKNOWN_TOPIC_ID
                } else {
                    UNKNOWN_TOPIC_OR_PARTITION
                };
                return Outcome {
                    error_code: code,
                    high_watermark: -1,
                    last_stable_offset: -1,
                    log_start_offset: -1,
                    aborted: Vec::new(),
                    records: Records::Memory(Bytes::new()),
                };
            };
            let mut outcome = Outcome {
                error_code: 0,
                high_watermark: log.high_watermark(),
                last_stable_offset: log.last_stable_offset(),
                log_start_offset: log.log_start_offset(),
                aborted: Vec::new(),
                records: Records::Memory(Bytes::new()),
            };
            if remaining == 0 {
                return outcome;
            }
            let limit = (target.max_bytes.max(0) as usize).min(remaining);
            let read = if read_committed {
                log.read_committed(target.fetch_offset, limit)
            } else {
                log.read(target.fetch_offset, limit)
            };
            match read {
                Ok(read) => {
                    outcome.high_watermark = read.high_watermark;
                    outcome.last_stable_offset = read.last_stable_offset;
                    outcome.log_start_offset = read.log_start_offset;
                    if let Some(slice) = read.slice {
                        let len = slice.len() as usize;
                        if len <= remaining || !returned_any {
                            remaining = remaining.saturating_sub(len);
                            returned_any = true;
                            outcome.records = Records::File(slice);
                            outcome.aborted = read
                                .aborted
                                .iter()
                                .map(|t| (t.producer_id, t.first_offset))
                                .collect();
                        }
                    }
                }
                Err(e) => outcome.error_code = e.kafka_error_code(),
            }
            outcome
        })
        .collect()
}

/// Whether every target asks for the offset at (or past) its log's end, so reading touches no
/// file. Unknown partitions count as caught up: their answer is an error code.
fn all_caught_up(targets: &[FetchTarget], logs: &[Option<Arc<PartitionLog>>]) -> bool {
    targets.iter().zip(logs).all(|(target, log)| {
        log.as_ref()
            .is_none_or(|log| target.fetch_offset >= log.log_end_offset())
    })
}

/// Resolves when any of the partitions' signals fires. Created before reading, so an append
/// that lands between the read and the wait is not missed.
struct AnyNotified<'a> {
    waits: Vec<Pin<Box<Notified<'a>>>>,
}

impl<'a> AnyNotified<'a> {
    fn new(signals: &'a [Arc<Notify>]) -> Self {
        let mut waits: Vec<Pin<Box<Notified<'a>>>> =
            signals.iter().map(|n| Box::pin(n.notified())).collect();
        for w in &mut waits {
            w.as_mut().enable();
        }
        AnyNotified { waits }
    }
}

impl Future for AnyNotified<'_> {
    type Output = ();

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
        for w in &mut self.waits {
            if w.as_mut().poll(cx).is_ready() {
                return Poll::Ready(());
            }
        }
        Poll::Pending
    }
}
