//! A partition log: an ordered set of segments with one writer and many readers.
//!
//! Appends validate every batch outside any lock, then, under the writer lock, assign
//! offsets, roll the active segment when needed, write and publish. Readers take a
//! snapshot of the segment list (a brief read lock) and read published byte ranges only.

use std::collections::BTreeMap;
use std::fmt;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicI64, Ordering};
use std::sync::Arc;

use parking_lot::{Mutex, RwLock};

use crate::batch::{self, batch_size_at, TimestampType, ValidatedBatch, BATCH_HEADER_LEN};
use crate::checkpoint;
use crate::config::{LogConfig, TopicCompression};
use crate::error::{Result, StorageError};
use crate::producer_state::{ProducerStateTable, SequenceCheck};
use crate::recovery_point::RecoveryPoint;
use crate::segment::{BatchPlacement, Segment, SegmentSettings};
use crate::slice::FileSlice;
use crate::transactions::{self, TransactionTable};

/// A topic name and partition number: the unit of ordering and of storage.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct TopicPartition {
    /// Topic name.
    pub topic: String,
    /// Partition number.
    pub partition: i32,
}

impl TopicPartition {
    /// Creates a topic-partition.
    pub fn new(topic: impl Into<String>, partition: i32) -> Self {
        TopicPartition {
            topic: topic.into(),
            partition,
        }
    }

    /// The directory name Kafka uses: `<topic>-<partition>`.
    pub fn dir_name(&self) -> String {
        format!("{}-{}", self.topic, self.partition)
    }

    /// Parses a directory name made by [`TopicPartition::dir_name`].
    pub fn parse_dir_name(name: &str) -> Option<Self> {
        let (topic, partition) = name.rsplit_once('-')?;
        let partition: i32 = partition.parse().ok()?;
        (!topic.is_empty() && partition >= 0 && partition.to_string() == name[topic.len() + 1..])
            .then(|| TopicPartition::new(topic, partition))
    }
}

impl fmt::Display for TopicPartition {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}-{}", self.topic, self.partition)
    }
}

/// Who wrote an append: the checks differ.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AppendOrigin {
    /// A producer: control batches are refused and idempotent batches are sequence-checked.
    Client,
    /// The broker's own coordinators: transaction markers, and transactional offset commits
    /// written without sequence numbers (as Kafka's group coordinator writes them); only
    /// their producer epoch is checked.
    Coordinator,
}

/// What an append did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AppendInfo {
    /// Offset given to the first record.
    pub base_offset: i64,
    /// Offset given to the last record.
    pub last_offset: i64,
    /// The broker time stamped on the records for LogAppendTime topics, else -1.
    pub log_append_time: i64,
    /// Log start offset after the append.
    pub log_start_offset: i64,
    /// Records appended.
    pub record_count: i64,
    /// True when every batch was a retry of an idempotent producer's batch already in the
    /// log: nothing was written and the offsets are those of the original append.
    pub duplicate: bool,
}

/// What a read returned, with the offsets a fetch response reports.
#[derive(Debug, Clone)]
pub struct ReadResult {
    /// Whole batches, or `None` when there is nothing at or after the offset yet.
    pub slice: Option<FileSlice>,
    /// Offset after the last record readers may see.
    pub high_watermark: i64,
    /// First offset of the oldest open transaction, or the high watermark.
    pub last_stable_offset: i64,
    /// First offset still in the log.
    pub log_start_offset: i64,
    /// For `read_committed` reads: the aborted transactions with records in the range read.
    pub aborted: Vec<transactions::AbortedTxn>,
}

const LOG_START_FILE: &str = "log-start-offset";

/// One partition's log on disk.
pub struct PartitionLog {
    pub(crate) topic_partition: TopicPartition,
    pub(crate) dir: PathBuf,
    config: RwLock<Arc<LogConfig>>,
    pub(crate) segments: RwLock<BTreeMap<i64, Arc<Segment>>>,
    /// Serialises appends; holds messages written since the last fsync and the
    /// idempotent-producer state.
    pub(crate) writer: Mutex<WriterState>,
    /// Open and aborted transactions; changed only while the writer lock is held.
    pub(crate) txns: RwLock<TransactionTable>,
    /// Offset below which the data is known to be fsynced.
    recovery_point: RecoveryPoint,
    /// Background fsyncs of rolled segments still running; joined on close and drop.
    segment_syncs: Mutex<Vec<std::thread::JoinHandle<()>>>,
    /// Serialises retention, compaction and DeleteRecords, which remove segments.
    pub(crate) maintenance: Mutex<()>,
    log_start: AtomicI64,
    last_flush_ms: AtomicI64,
    closed: AtomicBool,
}

/// What the writer lock guards.
#[derive(Debug, Default)]
pub(crate) struct WriterState {
    /// Messages written since the last fsync.
    unflushed: i64,
    /// Idempotent producers' epochs and recent batches (rebuilt from the log on open).
    pub(crate) producers: ProducerStateTable,
}

impl fmt::Debug for PartitionLog {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PartitionLog")
            .field("partition", &self.topic_partition)
            .field("dir", &self.dir)
            .finish()
    }
}

pub(crate) fn settings_of(config: &LogConfig) -> SegmentSettings {
    SegmentSettings {
        index_interval_bytes: config.index_interval_bytes,
        roll_jitter_ms: random_roll_jitter(config),
    }
}

/// A segment's `segment.jitter.ms` draw, below both the jitter and `segment.ms` (as Kafka
/// draws it), so a segment never rolls on time before it is a millisecond old.
fn random_roll_jitter(config: &LogConfig) -> i64 {
    let bound = config.segment_jitter_ms.min(config.segment_ms);
    if bound <= 0 {
        return 0;
    }
    rand::random_range(0..bound)
}

impl PartitionLog {
    /// Opens (or creates) the partition directory `dir`. After an unclean shutdown
    /// (`clean == false`) the tail segment is verified batch by batch and repaired.
    pub fn open(
        dir: &Path,
        topic_partition: TopicPartition,
        config: LogConfig,
        clean: bool,
        now_ms: i64,
    ) -> Result<Self> {
        std::fs::create_dir_all(dir).map_err(|e| StorageError::io(dir, e))?;
        let bases = crate::recovery::prepare_directory(dir)?;
        let settings = settings_of(&config);
        let recovery_point = RecoveryPoint::load(dir)?;
        let mut segments = BTreeMap::new();
        for (i, base) in bases.iter().enumerate() {
            // A segment's end is the next one's base; the tail's is unknown until opened.
            let verify = !clean
                && bases
                    .get(i + 1)
                    .is_none_or(|next| recovery_point.must_verify(*next));
            let segment = Segment::open(dir, *base, settings, verify, now_ms)?;
            segments.insert(*base, Arc::new(segment));
        }
        let persisted_start = checkpoint::read_i64(&dir.join(LOG_START_FILE))?;
        if segments.is_empty() {
            let base = persisted_start.unwrap_or(0).max(0);
            segments.insert(
                base,
                Arc::new(Segment::create(dir, base, settings, now_ms, "")?),
            );
        }
        let first_base = *segments.keys().next().expect("at least one segment");
        let log_end = segments.values().next_back().map_or(0, |s| s.next_offset());
        let log_start = persisted_start
            .unwrap_or(first_base)
            .max(first_base)
            .min(log_end);
        // Producer and transaction state are not snapshotted: they are rebuilt from the
        // batches of every segment, after the tail segment was recovered.
        let (producers, txns) = crate::partition_txn::rebuild_state(dir, &segments, log_start)?;
        Ok(PartitionLog {
            topic_partition,
            dir: dir.to_path_buf(),
            config: RwLock::new(Arc::new(config)),
            segments: RwLock::new(segments),
            writer: Mutex::new(WriterState {
                unflushed: 0,
                producers,
            }),
            txns: RwLock::new(txns),
            recovery_point,
            segment_syncs: Mutex::new(Vec::new()),
            maintenance: Mutex::new(()),
            log_start: AtomicI64::new(log_start),
            last_flush_ms: AtomicI64::new(now_ms),
            closed: AtomicBool::new(false),
        })
    }

    /// The partition this log stores.
    pub fn topic_partition(&self) -> &TopicPartition {
        &self.topic_partition
    }

    /// The partition's directory.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// The current configuration.
    pub fn config(&self) -> Arc<LogConfig> {
        self.config.read().clone()
    }

    /// Replaces the configuration; it applies to the next append, roll and maintenance run.
    pub fn set_config(&self, config: LogConfig) {
        *self.config.write() = Arc::new(config);
    }

    /// First offset still readable.
    pub fn log_start_offset(&self) -> i64 {
        self.log_start.load(Ordering::Acquire)
    }

    /// Offset the next record will get.
    pub fn log_end_offset(&self) -> i64 {
        self.active_segment().next_offset()
    }

    /// Offset after the last record readers may see. With a single replica every appended
    /// record is committed, so this equals the log end offset.
    pub fn high_watermark(&self) -> i64 {
        self.log_end_offset()
    }

    /// Bytes of record batches in all segments.
    pub fn size_bytes(&self) -> u64 {
        self.segments.read().values().map(|s| s.size()).sum()
    }

    /// Number of segments.
    pub fn segment_count(&self) -> usize {
        self.segments.read().len()
    }

    /// Base offsets of the segments, oldest first.
    pub fn segment_base_offsets(&self) -> Vec<i64> {
        self.segments.read().keys().copied().collect()
    }

    pub(crate) fn active_segment(&self) -> Arc<Segment> {
        self.segments
            .read()
            .values()
            .next_back()
            .cloned()
            .expect("a partition log always has an active segment")
    }

    pub(crate) fn segment_snapshot(&self) -> Vec<Arc<Segment>> {
        self.segments.read().values().cloned().collect()
    }

    /// Validates and appends one or more record batches from a producer. Offsets are
    /// assigned by rewriting each batch's baseOffset in a copy of its 61-byte header (and,
    /// for LogAppendTime topics, its timestamps and CRC); the record bytes are written from
    /// `records` as they are, never copied. Nothing is written unless every batch is valid.
    ///
    /// Batches of idempotent producers (producerId >= 0) are checked, under the writer lock
    /// and in order, against the partition's producer state (see [`crate::producer_state`]):
    /// a retry of a recently appended batch writes nothing and returns the original offsets
    /// with `duplicate` set; a stale epoch is INVALID_PRODUCER_EPOCH, a sequence gap
    /// OUT_OF_ORDER_SEQUENCE_NUMBER. An append mixing retries with new batches is refused.
    pub fn append(&self, records: &[u8], now_ms: i64) -> Result<AppendInfo> {
        self.append_from(records, now_ms, AppendOrigin::Client)
    }

    /// [`PartitionLog::append`] for a given origin: the broker's coordinators append with
    /// [`AppendOrigin::Coordinator`].
    pub fn append_from(
        &self,
        records: &[u8],
        now_ms: i64,
        origin: AppendOrigin,
    ) -> Result<AppendInfo> {
        if self.closed.load(Ordering::Acquire) {
            return Err(StorageError::Closed);
        }
        let config = self.config();
        let validated = split_and_validate(records, &config, now_ms)?;
        let recompressed;
        let (records, validated) = match recompress_for_topic(records, &validated, &config)? {
            Some((rebuilt, revalidated)) => {
                recompressed = rebuilt;
                (&recompressed[..], revalidated)
            }
            None => (records, validated),
        };
        let log_append = config.message_timestamp_type == TimestampType::LogAppendTime;

        let mut writer = self.writer.lock();
        if self.closed.load(Ordering::Acquire) {
            return Err(StorageError::Closed);
        }
        let writer = &mut *writer;
        let base_offset = self.log_end_offset();
        // Each batch is checked against the state the earlier ones leave, at the offsets
        // they will get if none is a duplicate (otherwise nothing is written).
        let mut pending = writer.producers.begin();
        let mut duplicates = Vec::new();
        let mut next = base_offset;
        for v in &validated {
            let last_offset = next + i64::from(v.header.last_offset_delta);
            let unsequenced = origin == AppendOrigin::Coordinator
                && (v.header.is_control() || v.header.base_sequence < 0);
            if origin == AppendOrigin::Client {
                transactions::refuse_client_control(&v.header)?;
            }
            if unsequenced {
                pending.check_epoch(&v.header)?;
            } else {
                match pending.check(&v.header)? {
                    SequenceCheck::Duplicate(original) => duplicates.push(original),
                    SequenceCheck::Append => pending.record(&v.header, next, last_offset, now_ms),
                }
            }
            next = last_offset + 1;
        }
        let changes = pending.into_changes();
        if let (Some(first), Some(last)) = (duplicates.first(), duplicates.last()) {
            if duplicates.len() != validated.len() {
                return Err(StorageError::OutOfOrderSequence(format!(
                    "{} of the {} batches are retries of batches already appended and the \
                     others are not; send retried batches on their own",
                    duplicates.len(),
                    validated.len()
                )));
            }
            return Ok(AppendInfo {
                base_offset: first.base_offset,
                last_offset: last.last_offset,
                log_append_time: -1,
                log_start_offset: self.log_start_offset(),
                record_count: 0,
                duplicate: true,
            });
        }
        let mut next = base_offset;
        let mut placements = Vec::with_capacity(validated.len());
        let mut headers: Vec<[u8; BATCH_HEADER_LEN]> = Vec::with_capacity(validated.len());
        let mut position = 0;
        for v in &validated {
            let size = v.header.total_size();
            let mut header = [0u8; BATCH_HEADER_LEN];
            header.copy_from_slice(&records[position..position + BATCH_HEADER_LEN]);
            let body = &records[position + BATCH_HEADER_LEN..position + size];
            batch::set_base_offset(&mut header, next);
            batch::set_partition_leader_epoch(&mut header, 0);
            let max_timestamp = if log_append {
                batch::set_header_max_timestamp(
                    &mut header,
                    body,
                    TimestampType::LogAppendTime,
                    now_ms,
                );
                now_ms
            } else {
                if v.header.max_timestamp != v.max_record_timestamp
                    || v.header.timestamp_type() != TimestampType::CreateTime
                {
                    batch::set_header_max_timestamp(
                        &mut header,
                        body,
                        TimestampType::CreateTime,
                        v.max_record_timestamp,
                    );
                }
                v.max_record_timestamp
            };
            let last_offset = next + i64::from(v.header.last_offset_delta);
            placements.push(BatchPlacement {
                base_offset: next,
                last_offset,
                max_timestamp,
                size,
            });
            headers.push(header);
            next = last_offset + 1;
            position += size;
        }
        let mut parts: Vec<&[u8]> = Vec::with_capacity(2 * headers.len());
        let mut at = 0;
        for (header, placement) in headers.iter().zip(&placements) {
            parts.push(header);
            parts.push(&records[at + BATCH_HEADER_LEN..at + placement.size]);
            at += placement.size;
        }
        let mut active = self.active_segment();
        if self.should_roll(&active, position as u64, next - 1, now_ms, &config) {
            active = self.roll(&active, now_ms, &config)?;
            self.snapshot_state(writer, base_offset);
        }
        // Transactions open before the batches are published, so no reader ever sees their
        // records below the last stable offset.
        let opened = self.open_transactions_of(&validated, &placements);
        if let Err(e) = active.append(&parts, &placements) {
            self.forget_opened(&opened);
            return Err(e);
        }
        changes.apply(&mut writer.producers);
        self.apply_markers(writer, &validated, &placements, records);
        writer.unflushed += next - base_offset;
        if writer.unflushed >= config.flush_messages {
            active.flush()?;
            writer.unflushed = 0;
            self.last_flush_ms.store(now_ms, Ordering::Release);
            self.recovery_point.advance(next)?;
        }
        Ok(AppendInfo {
            base_offset,
            last_offset: next - 1,
            log_append_time: if log_append { now_ms } else { -1 },
            log_start_offset: self.log_start_offset(),
            record_count: next - base_offset,
            duplicate: false,
        })
    }

    fn should_roll(
        &self,
        active: &Segment,
        incoming: u64,
        last_offset: i64,
        now_ms: i64,
        config: &LogConfig,
    ) -> bool {
        let size = active.size();
        if size == 0 {
            return false;
        }
        size + incoming > config.segment_bytes
            || active.age_ms(now_ms) >= (config.segment_ms - active.roll_jitter_ms()).max(1)
            || active.index_entries() >= config.max_index_entries()
            || last_offset - active.base_offset() >= i64::from(u32::MAX) - 1
    }

    /// Seals the active segment and starts a new one at the log end. Caller holds the
    /// writer lock.
    fn roll(&self, active: &Arc<Segment>, now_ms: i64, config: &LogConfig) -> Result<Arc<Segment>> {
        let sync = config.flush_messages != i64::MAX || config.flush_ms != i64::MAX;
        active.seal(sync)?;
        let base = active.next_offset();
        if sync {
            self.recovery_point.advance(base)?;
        } else {
            // With the OS flush policy the sealed segment is fsynced in the background, and
            // the recovery point moves past it once that is done.
            let sealed = active.clone();
            let recovery_point = self.recovery_point.clone();
            let spawned = std::thread::Builder::new()
                .name("segment-sync".into())
                .spawn(move || {
                    // Only the data file, through the open descriptor: safe even if the
                    // segment is deleted or compacted meanwhile. Its indexes were written by
                    // the seal and are rebuilt by recovery if they are behind.
                    let synced = sealed.flush().and_then(|_| recovery_point.advance(base));
                    if let Err(e) = synced {
                        tracing::warn!(segment = %sealed.log_path().display(), error = %e, "background fsync of a rolled segment failed");
                    }
                });
            match spawned {
                Ok(handle) => {
                    let mut syncs = self.segment_syncs.lock();
                    syncs.retain(|h| !h.is_finished());
                    syncs.push(handle);
                }
                Err(e) => {
                    tracing::warn!(error = %e, "could not start the fsync of a rolled segment")
                }
            }
        }
        let segment = Arc::new(Segment::create(
            &self.dir,
            base,
            settings_of(config),
            now_ms,
            "",
        )?);
        self.segments.write().insert(base, segment.clone());
        tracing::debug!(partition = %self.topic_partition, base, "rolled segment");
        Ok(segment)
    }

    /// Forces a roll of a non-empty active segment (retention of an expired active segment).
    pub(crate) fn roll_if_not_empty(&self, now_ms: i64) -> Result<()> {
        let writer = self.writer.lock();
        let active = self.active_segment();
        if active.size() > 0 {
            let rolled = self.roll(&active, now_ms, &self.config())?;
            self.snapshot_state(&writer, rolled.base_offset());
        }
        Ok(())
    }

    /// Reads whole batches from `offset` on, about `max_bytes` of them (at least one batch).
    /// An offset outside `[log start, log end]` is OFFSET_OUT_OF_RANGE.
    pub fn read(&self, offset: i64, max_bytes: usize) -> Result<ReadResult> {
        self.read_upto(offset, max_bytes, i64::MAX)
    }

    /// [`PartitionLog::read`] of the batches that end before `end_offset`.
    pub(crate) fn read_upto(
        &self,
        offset: i64,
        max_bytes: usize,
        end_offset: i64,
    ) -> Result<ReadResult> {
        let log_start = self.log_start_offset();
        let log_end = self.log_end_offset();
        if offset < log_start || offset > log_end {
            return Err(StorageError::OffsetOutOfRange {
                offset,
                log_start,
                log_end,
            });
        }
        let mut cursor = offset;
        let mut slice = None;
        while cursor < log_end {
            let segment = {
                let segments = self.segments.read();
                segments
                    .range(..=cursor)
                    .next_back()
                    .filter(|(_, s)| s.next_offset() > cursor)
                    .or_else(|| segments.range(cursor + 1..).next())
                    .map(|(_, s)| s.clone())
            };
            let Some(segment) = segment else { break };
            let from = cursor.max(segment.base_offset());
            if from >= end_offset {
                break;
            }
            match segment.read(from, max_bytes, end_offset)? {
                Some(found) => {
                    slice = Some(found);
                    break;
                }
                None => cursor = segment.next_offset().max(from + 1),
            }
        }
        let high_watermark = self.high_watermark();
        Ok(ReadResult {
            slice,
            high_watermark,
            last_stable_offset: self.last_stable_offset_below(high_watermark),
            log_start_offset: self.log_start_offset(),
            aborted: Vec::new(),
        })
    }

    /// The first record whose timestamp is at least `timestamp`: `(offset, timestamp)`, or
    /// `None` when every record is older (ListOffsets then answers with the log end).
    pub fn offset_for_timestamp(&self, timestamp: i64) -> Result<Option<(i64, i64)>> {
        let log_start = self.log_start_offset();
        for segment in self.segment_snapshot() {
            if segment.next_offset() <= log_start || segment.max_timestamp() < timestamp {
                continue;
            }
            if let Some(found) = segment.find_timestamp(timestamp, log_start)? {
                return Ok(Some(found));
            }
        }
        Ok(None)
    }

    /// The record with the largest timestamp (the first of them on a tie):
    /// `(offset, timestamp)`, as ListOffsets' MAX_TIMESTAMP asks.
    pub fn max_timestamp_offset(&self) -> Result<Option<(i64, i64)>> {
        let log_start = self.log_start_offset();
        let mut max = -1;
        for segment in self.segment_snapshot() {
            if segment.next_offset() > log_start {
                // Records below the log start do not count, even in its segment.
                max = max.max(segment.max_timestamp_from(log_start)?);
            }
        }
        if max < 0 {
            return Ok(None);
        }
        self.offset_for_timestamp(max)
    }

    /// Moves the log start offset to `offset` (DeleteRecords); `-1` means the high
    /// watermark. Segments wholly below it are removed. Returns the new log start offset.
    pub fn delete_records(&self, offset: i64) -> Result<i64> {
        let _maintenance = self.maintenance.lock();
        let high_watermark = self.high_watermark();
        let target = if offset == -1 { high_watermark } else { offset };
        if target < 0 || target > high_watermark {
            return Err(StorageError::OffsetOutOfRange {
                offset,
                log_start: self.log_start_offset(),
                log_end: high_watermark,
            });
        }
        if target > self.log_start_offset() {
            self.set_log_start(target)?;
            self.remove_segments_below_log_start()?;
        }
        Ok(self.log_start_offset())
    }

    pub(crate) fn set_log_start(&self, offset: i64) -> Result<()> {
        checkpoint::write_i64(&self.dir.join(LOG_START_FILE), offset)?;
        self.log_start.store(offset, Ordering::Release);
        self.txns.write().forget_below(offset);
        Ok(())
    }

    /// Removes non-active segments whose records are all below the log start offset.
    pub(crate) fn remove_segments_below_log_start(&self) -> Result<usize> {
        let log_start = self.log_start_offset();
        let doomed: Vec<Arc<Segment>> = {
            let segments = self.segment_snapshot();
            let active = segments.len().saturating_sub(1);
            segments
                .into_iter()
                .take(active)
                .filter(|s| s.next_offset() <= log_start)
                .collect()
        };
        self.remove_segments(&doomed)
    }

    /// Takes segments out of the log, then deletes their files. Caller holds `maintenance`.
    pub(crate) fn remove_segments(&self, doomed: &[Arc<Segment>]) -> Result<usize> {
        if doomed.is_empty() {
            return Ok(0);
        }
        {
            let mut segments = self.segments.write();
            for s in doomed {
                segments.remove(&s.base_offset());
            }
        }
        for s in doomed {
            s.delete_files()?;
        }
        let first = *self
            .segments
            .read()
            .keys()
            .next()
            .expect("the active segment is never removed");
        if first > self.log_start_offset() {
            self.set_log_start(first)?;
        }
        tracing::info!(partition = %self.topic_partition, segments = doomed.len(), log_start = self.log_start_offset(), "deleted segments");
        Ok(doomed.len())
    }

    /// fsyncs the active segment and its indexes if anything was written since the last
    /// flush. Called by the interval flusher and on shutdown.
    /// The fsync runs outside the writer lock, so appends go on meanwhile.
    pub fn flush(&self, now_ms: i64) -> Result<()> {
        let (pending, active) = {
            let mut writer = self.writer.lock();
            (std::mem::take(&mut writer.unflushed), self.active_segment())
        };
        self.last_flush_ms.store(now_ms, Ordering::Release);
        if pending == 0 {
            return Ok(());
        }
        let durable_end = active.next_offset();
        active.flush().inspect_err(|_| {
            self.writer.lock().unflushed += pending;
        })?;
        self.recovery_point.advance(durable_end)
    }

    /// Milliseconds since the last fsync.
    pub fn ms_since_flush(&self, now_ms: i64) -> i64 {
        now_ms - self.last_flush_ms.load(Ordering::Acquire)
    }

    /// Flushes everything and refuses further appends.
    pub fn close(&self) -> Result<()> {
        let writer = self.writer.lock();
        self.closed.store(true, Ordering::Release);
        self.join_segment_syncs();
        // Rolled segments whose background fsync may not have finished are synced here, so
        // the recovery point written below is true.
        let durable = self.recovery_point.get().unwrap_or(i64::MIN);
        let segments = self.segment_snapshot();
        let (active, sealed) = segments.split_last().expect("an active segment");
        for segment in sealed.iter().filter(|s| s.next_offset() > durable) {
            segment.flush()?;
        }
        active.seal(true)?;
        self.snapshot_state(&writer, active.next_offset());
        self.recovery_point.advance(active.next_offset())
    }

    /// Closes the log and removes its directory (topic deletion).
    pub fn delete(&self) -> Result<()> {
        self.close()?;
        let _maintenance = self.maintenance.lock();
        std::fs::remove_dir_all(&self.dir).map_err(|e| StorageError::io(&self.dir, e))
    }
}

impl PartitionLog {
    /// Waits for the background fsyncs of rolled segments.
    fn join_segment_syncs(&self) {
        let syncs = std::mem::take(&mut *self.segment_syncs.lock());
        for handle in syncs {
            let _ = handle.join();
        }
    }
}

impl Drop for PartitionLog {
    fn drop(&mut self) {
        self.join_segment_syncs();
    }
}

/// `records` recompressed with the topic's `compression.type` codec, with their validation,
/// or `None` when the topic stores batches as sent or they already use it.
fn recompress_for_topic(
    records: &[u8],
    validated: &[ValidatedBatch],
    config: &LogConfig,
) -> Result<Option<(Vec<u8>, Vec<ValidatedBatch>)>> {
    let TopicCompression::Codec(target) = config.compression_type else {
        return Ok(None);
    };
    crate::recompress::to_codec(
        records,
        validated,
        target,
        &config.compression_levels,
        &config.validation_limits(),
    )
}

fn split_and_validate(
    records: &[u8],
    config: &LogConfig,
    now_ms: i64,
) -> Result<Vec<ValidatedBatch>> {
    let limits = config.validation_limits();
    let mut validated = Vec::with_capacity(1);
    let mut position = 0;
    while position < records.len() {
        let rest = &records[position..];
        let size = batch_size_at(rest).ok_or_else(|| {
            StorageError::CorruptMessage(format!(
                "{} bytes after the last batch are not a batch header",
                rest.len()
            ))
        })?;
        if size > rest.len() {
            if size > limits.max_batch_bytes {
                return Err(StorageError::MessageTooLarge {
                    size,
                    limit: limits.max_batch_bytes,
                });
            }
            return Err(StorageError::CorruptMessage(format!(
                "batch length says {size} bytes but only {} were sent",
                rest.len()
            )));
        }
        validated.push(batch::validate(&rest[..size], &limits, now_ms)?);
        position += size;
    }
    if validated.is_empty() {
        return Err(StorageError::InvalidRecord(
            "the produce carried no record batch".to_string(),
        ));
    }
    Ok(validated)
}
