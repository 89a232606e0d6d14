//! The transactional side of a partition log: opening transactions as their first batch is
//! appended, transaction markers, the last stable offset, `read_committed` reads with the
//! aborted transactions they must skip, and rebuilding all of it from the log on open.

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::Arc;

use crate::batch::ValidatedBatch;
use crate::error::Result;
use crate::partition::{AppendOrigin, PartitionLog, ReadResult, WriterState};
use crate::producer_snapshot;
use crate::producer_state::ProducerStateTable;
use crate::segment::{BatchPlacement, Segment};
use crate::transactions::{read_marker, TransactionTable, TxnMarker};

/// One producer's state in a partition (DescribeProducers, KIP-664).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ProducerSummary {
    /// Producer id.
    pub producer_id: i64,
    /// Its current epoch.
    pub producer_epoch: i16,
    /// Sequence of its last record (-1 if none is remembered).
    pub last_sequence: i32,
    /// When it last wrote (ms).
    pub last_timestamp: i64,
    /// Epoch of the coordinator that wrote its last marker (-1 if none).
    pub coordinator_epoch: i32,
    /// First offset of its open transaction here, -1 if none.
    pub current_txn_start_offset: i64,
}

impl PartitionLog {
    /// The last stable offset: the first offset of the oldest transaction still open here,
    /// or the high watermark when none is. `read_committed` readers see records below it.
    pub fn last_stable_offset(&self) -> i64 {
        self.last_stable_offset_below(self.high_watermark())
    }

    pub(crate) fn last_stable_offset_below(&self, high_watermark: i64) -> i64 {
        self.txns
            .read()
            .first_unstable_offset()
            .map_or(high_watermark, |first| first.min(high_watermark))
    }

    /// Reads as a `read_committed` consumer does: only batches below the last stable offset,
    /// with the aborted transactions that have records among them, so the client can drop
    /// those records.
    pub fn read_committed(&self, offset: i64, max_bytes: usize) -> Result<ReadResult> {
        let stable = self.last_stable_offset();
        let mut result = self.read_upto(offset, max_bytes, stable)?;
        if result.slice.is_some() {
            result.aborted = self.txns.read().aborted_between(offset, stable);
        }
        Ok(result)
    }

    /// Every producer known here, as DescribeProducers reports it.
    pub fn producers(&self) -> Vec<ProducerSummary> {
        let writer = self.writer.lock();
        let txns = self.txns.read();
        let mut all: Vec<ProducerSummary> = writer
            .producers
            .entries()
            .map(|(id, e)| ProducerSummary {
                producer_id: id,
                producer_epoch: e.epoch,
                last_sequence: e.batches.back().map_or(-1, |b| b.last_seq),
                last_timestamp: e.last_timestamp,
                coordinator_epoch: e.coordinator_epoch,
                current_txn_start_offset: txns.open_transaction(id).unwrap_or(-1),
            })
            .collect();
        all.sort_by_key(|p| p.producer_id);
        all
    }

    /// The open transactions here: `(producer id, first offset)`, oldest first.
    pub fn open_transactions(&self) -> Vec<(i64, i64)> {
        self.txns.read().open_transactions()
    }

    /// Appends a transaction marker (the coordinator's commit or abort) and ends the
    /// producer's transaction in this partition. A marker whose epoch is older than the
    /// producer's is INVALID_PRODUCER_EPOCH. Returns the marker's offset.
    pub fn write_marker(&self, marker: &TxnMarker, now_ms: i64) -> Result<i64> {
        let batch = marker.to_batch(now_ms);
        Ok(self
            .append_from(&batch, now_ms, AppendOrigin::Coordinator)?
            .base_offset)
    }

    /// Snapshots the producer and transaction state as of `offset` (the log end). Caller
    /// holds the writer lock. A failure is logged: the next start walks more of the log.
    pub(crate) fn snapshot_state(&self, writer: &WriterState, offset: i64) {
        let txns = self.txns.read();
        if let Err(e) = producer_snapshot::write(&self.dir, offset, &writer.producers, &txns) {
            tracing::warn!(partition = %self.topic_partition, error = %e, "cannot write a producer snapshot");
        }
    }

    /// Forgets producers with no open transaction here that wrote nothing for
    /// `expiration_ms` (Kafka's `producer.id.expiration.ms`); returns how many.
    pub fn expire_producers(&self, now_ms: i64, expiration_ms: i64) -> usize {
        let mut writer = self.writer.lock();
        let txns = self.txns.read();
        let expired = writer
            .producers
            .expire(now_ms.saturating_sub(expiration_ms), |id| {
                txns.open_transaction(id).is_some()
            });
        if expired > 0 {
            tracing::debug!(partition = %self.topic_partition, expired, "expired idle producer ids");
        }
        expired
    }

    /// Opens the transactions whose first batch this append carries; returns their
    /// producers so a failed write can take them back. Caller holds the writer lock.
    pub(crate) fn open_transactions_of(
        &self,
        validated: &[ValidatedBatch],
        placements: &[BatchPlacement],
    ) -> Vec<i64> {
        let starts = |v: &ValidatedBatch| v.header.is_transactional() && !v.header.is_control();
        if !validated.iter().any(starts) {
            return Vec::new();
        }
        let mut txns = self.txns.write();
        let mut opened = Vec::new();
        for (v, placement) in validated.iter().zip(placements) {
            let pid = v.header.producer_id;
            if starts(v) && txns.open_transaction(pid).is_none() {
                txns.on_batch(&v.header, placement.base_offset);
                opened.push(pid);
            }
        }
        opened
    }

    /// Takes back transactions opened by an append that failed.
    pub(crate) fn forget_opened(&self, opened: &[i64]) {
        if opened.is_empty() {
            return;
        }
        let mut txns = self.txns.write();
        for pid in opened {
            txns.abandon(*pid);
        }
    }

    /// Applies the markers of a written append to the producer and transaction state.
    /// Caller holds the writer lock.
    pub(crate) fn apply_markers(
        &self,
        writer: &mut WriterState,
        validated: &[ValidatedBatch],
        placements: &[BatchPlacement],
        records: &[u8],
    ) {
        if !validated.iter().any(|v| v.header.is_control()) {
            return;
        }
        let mut position = 0;
        for (v, placement) in validated.iter().zip(placements) {
            let batch = &records[position..position + placement.size];
            position += placement.size;
            if !v.header.is_control() {
                continue;
            }
            if let Ok(Some(marker)) = read_marker(&v.header, batch) {
                writer.producers.on_marker(
                    v.header.producer_id,
                    v.header.producer_epoch,
                    marker.coordinator_epoch,
                );
                self.txns.write().on_marker(
                    v.header.producer_id,
                    marker.kind,
                    placement.base_offset,
                );
            }
        }
    }
}

/// Rebuilds the producer state and the transaction table: from the newest usable snapshot
/// in `dir`, then every batch after it in `segments` (headers, plus the record of each
/// transaction marker); from every batch when there is no snapshot.
pub(crate) fn rebuild_state(
    dir: &Path,
    segments: &BTreeMap<i64, Arc<Segment>>,
    log_start: i64,
) -> Result<(ProducerStateTable, TransactionTable)> {
    let log_end = segments.values().next_back().map_or(0, |s| s.next_offset());
    let snapshot = producer_snapshot::load(dir, log_end)?.unwrap_or_default();
    let (from, mut producers, mut txns) = (snapshot.offset, snapshot.producers, snapshot.txns);
    for segment in segments.values() {
        if segment.next_offset() <= from {
            continue;
        }
        for (position, header) in segment.batch_headers()? {
            if header.base_offset < from {
                continue;
            }
            if !header.is_control() {
                producers.load(&header);
                txns.on_batch(&header, header.base_offset);
                continue;
            }
            let batch = segment.read_batch(position, &header)?;
            match read_marker(&header, &batch) {
                Ok(Some(marker)) => {
                    producers.on_marker(
                        header.producer_id,
                        header.producer_epoch,
                        marker.coordinator_epoch,
                    );
                    txns.on_marker(header.producer_id, marker.kind, header.base_offset);
                }
                Ok(None) => {}
                Err(e) => tracing::warn!(
                    segment = %segment.log_path().display(),
                    offset = header.base_offset,
                    error = %e,
                    "skipping an unreadable control batch"
                ),
            }
        }
    }
    txns.forget_below(log_start);
    Ok((producers, txns))
}
