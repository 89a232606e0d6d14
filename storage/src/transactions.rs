//! Transactions as one partition sees them (KIP-98): which producers have a transaction open
//! here (and from which offset), the control markers that end them, and the aborted
//! transactions a `read_committed` reader must skip.
//!
//! A transaction's records are ordinary batches with the transactional flag; it ends with a
//! control batch (a *marker*) written by the transaction coordinator: one record whose key is
//! `version: int16 = 0, type: int16` (0 abort, 1 commit) and whose value is
//! `version: int16 = 0, coordinator_epoch: int32`. The last stable offset (LSO) is the first
//! offset of the oldest transaction still open, or the high watermark when none is.
//!
//! Like the producer state, this table lives in memory and is rebuilt by
//! [`PartitionLog::open`](crate::PartitionLog::open) from the log itself (transactional
//! batch headers and the markers' records), so there is no `.txnindex` file to keep in step
//! with segments: the log is the only truth.

use std::collections::{BTreeMap, HashMap};

use crate::batch::BatchHeader;
use crate::builder::BatchBuilder;
use crate::error::{Result, StorageError};
use crate::record::RecordIter;

/// Attribute bit of a transactional batch.
pub const TRANSACTIONAL_FLAG: i16 = 0x10;
/// Attribute bit of a control batch.
pub const CONTROL_FLAG: i16 = 0x20;

/// A transaction marker the coordinator writes to end a producer's transaction here.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TxnMarker {
    /// The transactional producer.
    pub producer_id: i64,
    /// Its epoch (the coordinator may have bumped it to fence the producer).
    pub producer_epoch: i16,
    /// The coordinator's epoch, stored in the marker's value.
    pub coordinator_epoch: i32,
    /// Commit (true) or abort (false).
    pub commit: bool,
}

impl TxnMarker {
    /// The marker as a control batch (offset 0; the log assigns the real one).
    pub fn to_batch(&self, timestamp: i64) -> Vec<u8> {
        let mut key = [0u8; 4];
        key[2..].copy_from_slice(&i16::from(self.commit).to_be_bytes());
        let mut value = [0u8; 6];
        value[2..].copy_from_slice(&self.coordinator_epoch.to_be_bytes());
        let mut builder = BatchBuilder::new(0);
        builder
            .producer(self.producer_id, self.producer_epoch, -1)
            .flags(TRANSACTIONAL_FLAG | CONTROL_FLAG)
            .push(Some(&key), Some(&value), &[], timestamp);
        builder.build()
    }
}

/// What a control record says.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ControlType {
    /// The transaction aborted.
    Abort,
    /// The transaction committed.
    Commit,
}

/// What a transaction marker's record says.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MarkerRecord {
    /// Commit or abort.
    pub kind: ControlType,
    /// The epoch of the coordinator that wrote it (-1 if the value does not say).
    pub coordinator_epoch: i32,
}

/// Reads the (first) control record of an uncompressed control batch, `None` when it is not
/// a marker this version understands.
pub fn read_marker(header: &BatchHeader, batch: &[u8]) -> Result<Option<MarkerRecord>> {
    let records = crate::batch::record_area(batch, header, 1 << 20)?;
    let Some(record) = RecordIter::new(&records, 1).next() else {
        return Ok(None);
    };
    let record = record?;
    let key = record.key.unwrap_or_default();
    if key.len() < 4 {
        return Ok(None);
    }
    let kind = match i16::from_be_bytes([key[2], key[3]]) {
        0 => ControlType::Abort,
        1 => ControlType::Commit,
        _ => return Ok(None),
    };
    let coordinator_epoch = match record.value {
        Some(v) if v.len() >= 6 => i32::from_be_bytes([v[2], v[3], v[4], v[5]]),
        _ => -1,
    };
    Ok(Some(MarkerRecord {
        kind,
        coordinator_epoch,
    }))
}

/// A transaction that was aborted: `read_committed` readers drop this producer's records
/// in `[first_offset, last_offset]` (the last being the abort marker).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AbortedTxn {
    /// The producer.
    pub producer_id: i64,
    /// Offset of its first record in this partition.
    pub first_offset: i64,
    /// Offset of the abort marker.
    pub last_offset: i64,
}

/// Open and aborted transactions of one partition. Changed only under the partition's
/// writer lock; read by fetches.
#[derive(Debug, Clone, Default)]
pub struct TransactionTable {
    /// Producer id -> first offset of its open transaction.
    open: HashMap<i64, i64>,
    /// Aborted transactions by the offset of their marker.
    aborted: BTreeMap<i64, AbortedTxn>,
}

impl TransactionTable {
    /// First offset of the oldest open transaction, if any: the last stable offset.
    pub fn first_unstable_offset(&self) -> Option<i64> {
        self.open.values().copied().min()
    }

    /// The first offset of `producer_id`'s open transaction here.
    pub fn open_transaction(&self, producer_id: i64) -> Option<i64> {
        self.open.get(&producer_id).copied()
    }

    /// Every open transaction: `(producer id, first offset)`.
    pub fn open_transactions(&self) -> Vec<(i64, i64)> {
        let mut open: Vec<(i64, i64)> = self.open.iter().map(|(p, o)| (*p, *o)).collect();
        open.sort_by_key(|(_, o)| *o);
        open
    }

    /// Records a data batch at `base_offset`: a transactional one opens its producer's
    /// transaction if it is not open yet.
    pub fn on_batch(&mut self, header: &BatchHeader, base_offset: i64) {
        if header.is_transactional() && !header.is_control() && header.producer_id >= 0 {
            self.open.entry(header.producer_id).or_insert(base_offset);
        }
    }

    /// Records a marker at `offset`: the producer's transaction is over; an aborted one is
    /// remembered for `read_committed` readers. A marker with no open transaction (a retry
    /// of the coordinator, or a transaction with nothing written here) changes nothing else.
    pub fn on_marker(&mut self, producer_id: i64, kind: ControlType, offset: i64) {
        if let Some(first_offset) = self.open.remove(&producer_id) {
            if kind == ControlType::Abort {
                self.aborted.insert(
                    offset,
                    AbortedTxn {
                        producer_id,
                        first_offset,
                        last_offset: offset,
                    },
                );
            }
        }
    }

    /// Forgets the open transaction of `producer_id` whose first batch could not be
    /// written after all.
    pub fn abandon(&mut self, producer_id: i64) {
        self.open.remove(&producer_id);
    }

    /// Every aborted transaction remembered, oldest first (for snapshots).
    pub fn aborted(&self) -> impl Iterator<Item = &AbortedTxn> {
        self.aborted.values()
    }

    /// Puts back state read from a snapshot.
    pub fn restore(&mut self, open: &[(i64, i64)], aborted: &[AbortedTxn]) {
        self.open.extend(open.iter().copied());
        for t in aborted {
            self.aborted.insert(t.last_offset, *t);
        }
    }

    /// Aborted transactions with records in `[from, to)`, oldest first.
    pub fn aborted_between(&self, from: i64, to: i64) -> Vec<AbortedTxn> {
        self.aborted
            .range(from..)
            .map(|(_, t)| *t)
            .filter(|t| t.first_offset < to)
            .collect()
    }

    /// Whether the record of `producer_id` at `offset` belongs to an aborted transaction.
    pub fn is_aborted(&self, producer_id: i64, offset: i64) -> bool {
        self.aborted
            .range(offset..)
            .any(|(_, t)| t.producer_id == producer_id && t.first_offset <= offset)
    }

    /// Forgets the aborted transactions whose markers (at `marker_offsets`) compaction
    /// removed: none of their records is left either.
    pub fn forget_markers(&mut self, marker_offsets: &[i64]) {
        for offset in marker_offsets {
            self.aborted.remove(offset);
        }
    }

    /// Forgets aborted transactions wholly below the log start (their records are gone).
    pub fn forget_below(&mut self, log_start: i64) {
        self.aborted = self.aborted.split_off(&log_start);
    }
}

/// Checks the control flag is only on batches the coordinator writes.
pub fn refuse_client_control(header: &BatchHeader) -> Result<()> {
    if header.is_control() {
        return Err(StorageError::InvalidRecord(
            "control batches (transaction markers) are written by the transaction \
             coordinator, not by producers"
                .to_string(),
        ));
    }
    if header.is_transactional() && header.producer_id < 0 {
        return Err(StorageError::InvalidRecord(
            "a transactional batch needs a producer id".to_string(),
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn marker_batches_carry_type_and_coordinator_epoch() {
        let marker = TxnMarker {
            producer_id: 9,
            producer_epoch: 3,
            coordinator_epoch: 7,
            commit: true,
        };
        let batch = marker.to_batch(1234);
        let header = BatchHeader::parse(&batch).unwrap();
        assert!(header.is_control() && header.is_transactional());
        assert_eq!(
            (
                header.producer_id,
                header.producer_epoch,
                header.base_sequence
            ),
            (9, 3, -1)
        );
        assert_eq!(
            read_marker(&header, &batch).unwrap(),
            Some(MarkerRecord {
                kind: ControlType::Commit,
                coordinator_epoch: 7
            })
        );
        let abort = TxnMarker {
            commit: false,
            ..marker
        }
        .to_batch(1);
        let header = BatchHeader::parse(&abort).unwrap();
        assert_eq!(
            read_marker(&header, &abort).unwrap().map(|m| m.kind),
            Some(ControlType::Abort)
        );
    }

    #[test]
    fn aborted_ranges_are_found_by_overlap() {
        let mut table = TransactionTable::default();
        table.open.insert(1, 10);
        table.open.insert(2, 12);
        assert_eq!(table.first_unstable_offset(), Some(10));
        table.on_marker(1, ControlType::Abort, 20);
        assert_eq!(table.first_unstable_offset(), Some(12));
        table.on_marker(2, ControlType::Commit, 21);
        assert_eq!(table.first_unstable_offset(), None);
        let aborted = AbortedTxn {
            producer_id: 1,
            first_offset: 10,
            last_offset: 20,
        };
        assert_eq!(table.aborted_between(0, 11), vec![aborted]);
        assert_eq!(table.aborted_between(20, 30), vec![aborted]);
        assert!(table.aborted_between(21, 30).is_empty());
        assert!(table.aborted_between(0, 10).is_empty());
        assert!(table.is_aborted(1, 15));
        assert!(!table.is_aborted(2, 15));
        assert!(!table.is_aborted(1, 21));
        table.forget_below(21);
        assert!(table.aborted_between(0, 100).is_empty());
    }
}
