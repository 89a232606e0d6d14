//! Idempotent-producer state of a partition (KIP-98): for each producer id, its current
//! epoch and the last few batches it appended, so a retried batch is recognised as a
//! duplicate and answered with its original offsets, and a gap in the sequence is refused.
//!
//! The state lives in memory and is snapshotted (see [`crate::producer_snapshot`]) when a
//! segment rolls and on a clean close; [`PartitionLog::open`](crate::PartitionLog::open)
//! loads the newest usable snapshot and replays the batch headers after it (or every header
//! when there is none), so a producer whose batches retention removed is still known after a
//! restart. A producer with no open transaction and no batch for
//! `producer.id.expiration.ms` is forgotten ([`ProducerStateTable::expire`]). An unknown
//! producer whose first batch does not start at sequence 0 gets
//! OUT_OF_ORDER_SEQUENCE_NUMBER (45).

use std::collections::{HashMap, VecDeque};

use crate::batch::BatchHeader;
use crate::error::{Result, StorageError};

/// How many of a producer's most recent batches are kept for duplicate detection; the
/// Java producer has at most 5 requests in flight per connection with idempotence.
pub const CACHED_BATCHES: usize = 5;

/// The offsets and sequences of one appended batch.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BatchMetadata {
    /// Sequence number of the first record.
    pub first_seq: i32,
    /// Sequence number of the last record.
    pub last_seq: i32,
    /// Offset of the first record.
    pub base_offset: i64,
    /// Offset of the last record.
    pub last_offset: i64,
}

/// One producer's state.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProducerEntry {
    /// The producer's current epoch.
    pub epoch: i16,
    /// Its most recent batches, oldest first (at most [`CACHED_BATCHES`]).
    pub batches: VecDeque<BatchMetadata>,
    /// When it last wrote (ms): the broker's clock for live appends, the batch's max
    /// timestamp when rebuilt from the log. Expiry counts from it.
    pub last_timestamp: i64,
    /// Epoch of the coordinator that wrote its last transaction marker (-1 if none).
    pub coordinator_epoch: i32,
}

impl ProducerEntry {
    fn new(epoch: i16, last_timestamp: i64) -> Self {
        ProducerEntry {
            epoch,
            batches: VecDeque::new(),
            last_timestamp,
            coordinator_epoch: -1,
        }
    }
}

impl ProducerEntry {
    fn push(&mut self, batch: BatchMetadata) {
        if self.batches.len() == CACHED_BATCHES {
            self.batches.pop_front();
        }
        self.batches.push_back(batch);
    }
}

/// What the sequence check decided for a batch.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SequenceCheck {
    /// No producer id, or the next batch in sequence: write it.
    Append,
    /// A retry of a batch already in the log, at these offsets: write nothing.
    Duplicate(BatchMetadata),
}

/// The sequence number of the last record of a batch: sequences wrap from `i32::MAX` to 0.
pub fn last_sequence(header: &BatchHeader) -> i32 {
    let delta = header.last_offset_delta.max(0);
    if header.base_sequence > i32::MAX - delta {
        delta - (i32::MAX - header.base_sequence) - 1
    } else {
        header.base_sequence + delta
    }
}

fn next_sequence(last: i32) -> i32 {
    if last == i32::MAX {
        0
    } else {
        last + 1
    }
}

fn tracked(header: &BatchHeader) -> bool {
    header.producer_id >= 0 && !header.is_control()
}

/// The producer state of one partition.
#[derive(Debug, Clone, Default)]
pub struct ProducerStateTable {
    producers: HashMap<i64, ProducerEntry>,
}

impl ProducerStateTable {
    /// The state of `producer_id`, if it appended anything.
    pub fn get(&self, producer_id: i64) -> Option<&ProducerEntry> {
        self.producers.get(&producer_id)
    }

    /// Number of producers known.
    pub fn len(&self) -> usize {
        self.producers.len()
    }

    /// True when no producer is known.
    pub fn is_empty(&self) -> bool {
        self.producers.is_empty()
    }

    /// Records a batch read back from the log (rebuild on open): no checks, a higher epoch
    /// replaces the cached batches.
    pub fn load(&mut self, header: &BatchHeader) {
        if !tracked(header) {
            return;
        }
        let batch = BatchMetadata {
            first_seq: header.base_sequence,
            last_seq: last_sequence(header),
            base_offset: header.base_offset,
            last_offset: header.last_offset(),
        };
        let entry = self
            .producers
            .entry(header.producer_id)
            .or_insert_with(|| ProducerEntry::new(header.producer_epoch, header.max_timestamp));
        if header.producer_epoch != entry.epoch {
            entry.epoch = header.producer_epoch;
            entry.batches.clear();
        }
        entry.last_timestamp = entry.last_timestamp.max(header.max_timestamp);
        entry.push(batch);
    }

    /// Every producer's entry (for snapshots).
    pub fn entries(&self) -> impl Iterator<Item = (i64, &ProducerEntry)> {
        self.producers.iter().map(|(id, e)| (*id, e))
    }

    /// Puts back an entry read from a snapshot.
    pub fn restore(&mut self, producer_id: i64, entry: ProducerEntry) {
        self.producers.insert(producer_id, entry);
    }

    /// Forgets producers that last wrote before `horizon_ms` and for which `keep` (an open
    /// transaction) does not hold; returns how many were forgotten.
    pub fn expire(&mut self, horizon_ms: i64, keep: impl Fn(i64) -> bool) -> usize {
        let before = self.producers.len();
        self.producers
            .retain(|id, e| e.last_timestamp >= horizon_ms || keep(*id));
        before - self.producers.len()
    }

    /// Records a transaction marker read back from the log or just written: the marker's
    /// epoch becomes the producer's (the coordinator bumps it to fence a producer whose
    /// transaction timed out), and a new epoch forgets the cached batches.
    pub fn on_marker(&mut self, producer_id: i64, epoch: i16, coordinator_epoch: i32) {
        let entry = self
            .producers
            .entry(producer_id)
            .or_insert_with(|| ProducerEntry::new(epoch, -1));
        if epoch > entry.epoch {
            entry.epoch = epoch;
            entry.batches.clear();
        }
        entry.coordinator_epoch = coordinator_epoch;
    }

    /// Starts checking the batches of one append; [`PendingAppend::commit`] applies them
    /// once they are written.
    pub fn begin(&self) -> PendingAppend<'_> {
        PendingAppend {
            table: self,
            overlay: HashMap::new(),
        }
    }

    fn commit(&mut self, overlay: HashMap<i64, ProducerEntry>) {
        self.producers.extend(overlay);
    }
}

/// The checks of one append, each against the state as the earlier batches of the same
/// append leave it; nothing reaches the table until [`PendingAppend::commit`].
#[derive(Debug)]
pub struct PendingAppend<'a> {
    table: &'a ProducerStateTable,
    overlay: HashMap<i64, ProducerEntry>,
}

impl PendingAppend<'_> {
    fn entry(&self, producer_id: i64) -> Option<&ProducerEntry> {
        self.overlay
            .get(&producer_id)
            .or_else(|| self.table.producers.get(&producer_id))
    }

    /// Checks a batch (whose base offset is not assigned yet) against the producer's state.
    pub fn check(&self, header: &BatchHeader) -> Result<SequenceCheck> {
        if !tracked(header) {
            return Ok(SequenceCheck::Append);
        }
        let (pid, epoch, first) = (
            header.producer_id,
            header.producer_epoch,
            header.base_sequence,
        );
        let last = last_sequence(header);
        let Some(entry) = self.entry(pid) else {
            if first != 0 {
                return Err(StorageError::OutOfOrderSequence(format!(
                    "producer {pid} (epoch {epoch}) is unknown to this partition, so its \
                     first batch must start at sequence 0, not {first}"
                )));
            }
            return Ok(SequenceCheck::Append);
        };
        if epoch < entry.epoch {
            return Err(StorageError::InvalidProducerEpoch(format!(
                "producer {pid} sent epoch {epoch}, but epoch {} has been seen; another \
                 producer with this id has taken over (fenced)",
                entry.epoch
            )));
        }
        if epoch > entry.epoch {
            if first != 0 {
                return Err(StorageError::OutOfOrderSequence(format!(
                    "producer {pid} bumped its epoch to {epoch}, so its first batch must \
                     start at sequence 0, not {first}"
                )));
            }
            return Ok(SequenceCheck::Append);
        }
        if let Some(original) = entry
            .batches
            .iter()
            .find(|b| b.first_seq == first && b.last_seq == last)
        {
            return Ok(SequenceCheck::Duplicate(*original));
        }
        match entry.batches.back() {
            Some(previous) if first != next_sequence(previous.last_seq) => {
                Err(StorageError::OutOfOrderSequence(format!(
                    "producer {pid} (epoch {epoch}) sent sequence {first} but {} was expected \
                     after its last batch",
                    next_sequence(previous.last_seq)
                )))
            }
            None if first != 0 => Err(StorageError::OutOfOrderSequence(format!(
                "producer {pid} (epoch {epoch}) has no batch in this partition, so it must \
                 start at sequence 0, not {first}"
            ))),
            _ => Ok(SequenceCheck::Append),
        }
    }

    /// Checks only the epoch of a batch without sequence numbers (a transaction marker or a
    /// transactional offset commit the broker writes): an older epoch than the producer's
    /// is INVALID_PRODUCER_EPOCH.
    pub fn check_epoch(&self, header: &BatchHeader) -> Result<()> {
        match self.entry(header.producer_id) {
            Some(entry) if header.producer_id >= 0 && header.producer_epoch < entry.epoch => {
                Err(StorageError::InvalidProducerEpoch(format!(
                    "producer {} wrote with epoch {}, but epoch {} has been seen (fenced)",
                    header.producer_id, header.producer_epoch, entry.epoch
                )))
            }
            _ => Ok(()),
        }
    }

    /// Records a checked batch (not a duplicate) at the offsets it was given, written at
    /// `now_ms`.
    pub fn record(
        &mut self,
        header: &BatchHeader,
        base_offset: i64,
        last_offset: i64,
        now_ms: i64,
    ) {
        if !tracked(header) {
            return;
        }
        let batch = BatchMetadata {
            first_seq: header.base_sequence,
            last_seq: last_sequence(header),
            base_offset,
            last_offset,
        };
        let mut entry = self
            .entry(header.producer_id)
            .cloned()
            .unwrap_or_else(|| ProducerEntry::new(header.producer_epoch, now_ms));
        if header.producer_epoch != entry.epoch {
            entry.epoch = header.producer_epoch;
            entry.batches.clear();
        }
        entry.last_timestamp = now_ms;
        entry.push(batch);
        self.overlay.insert(header.producer_id, entry);
    }

    /// The changes to apply to the table once the batches are written.
    pub fn into_changes(self) -> ProducerChanges {
        ProducerChanges(self.overlay)
    }
}

/// The producer entries an append changes; apply with [`ProducerChanges::apply`].
#[derive(Debug, Default)]
pub struct ProducerChanges(HashMap<i64, ProducerEntry>);

impl ProducerChanges {
    /// Applies the changes to `table`.
    pub fn apply(self, table: &mut ProducerStateTable) {
        table.commit(self.0);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn header(pid: i64, epoch: i16, seq: i32, records: i32) -> BatchHeader {
        BatchHeader {
            base_offset: 0,
            batch_length: 0,
            partition_leader_epoch: 0,
            magic: 2,
            crc: 0,
            attributes: 0,
            last_offset_delta: records - 1,
            base_timestamp: 0,
            max_timestamp: 0,
            producer_id: pid,
            producer_epoch: epoch,
            base_sequence: seq,
            record_count: records,
        }
    }

    #[test]
    fn sequences_wrap_at_i32_max() {
        assert_eq!(last_sequence(&header(1, 0, 0, 3)), 2);
        assert_eq!(last_sequence(&header(1, 0, i32::MAX, 1)), i32::MAX);
        assert_eq!(last_sequence(&header(1, 0, i32::MAX, 2)), 0);
        assert_eq!(last_sequence(&header(1, 0, i32::MAX - 1, 4)), 1);
        assert_eq!(next_sequence(i32::MAX), 0);
    }

    #[test]
    fn wrapped_sequence_continues_at_zero() {
        let mut table = ProducerStateTable::default();
        let mut h = header(7, 0, i32::MAX - 1, 2);
        h.base_offset = 10;
        table.load(&h);
        let pending = table.begin();
        assert_eq!(
            pending.check(&header(7, 0, 0, 1)).unwrap(),
            SequenceCheck::Append
        );
        assert_eq!(
            pending
                .check(&header(7, 0, 1, 1))
                .unwrap_err()
                .kafka_error_code(),
            45
        );
    }

    #[test]
    fn batches_of_one_append_see_each_other() {
        let table = ProducerStateTable::default();
        let mut pending = table.begin();
        let a = header(3, 0, 0, 2);
        assert_eq!(pending.check(&a).unwrap(), SequenceCheck::Append);
        pending.record(&a, 0, 1, 0);
        let b = header(3, 0, 2, 2);
        assert_eq!(pending.check(&b).unwrap(), SequenceCheck::Append);
        assert!(matches!(
            pending.check(&a).unwrap(),
            SequenceCheck::Duplicate(m) if m.base_offset == 0
        ));
        assert_eq!(
            pending
                .check(&header(3, 0, 5, 1))
                .unwrap_err()
                .kafka_error_code(),
            45
        );
        assert!(table.is_empty());
    }

    #[test]
    fn only_the_last_five_batches_are_remembered() {
        let mut table = ProducerStateTable::default();
        for i in 0..7 {
            let mut h = header(1, 0, i, 1);
            h.base_offset = i64::from(i);
            table.load(&h);
        }
        assert_eq!(table.get(1).unwrap().batches.len(), CACHED_BATCHES);
        let pending = table.begin();
        assert!(matches!(
            pending.check(&header(1, 0, 2, 1)).unwrap(),
            SequenceCheck::Duplicate(_)
        ));
        assert_eq!(
            pending
                .check(&header(1, 0, 1, 1))
                .unwrap_err()
                .kafka_error_code(),
            45
        );
    }
}
