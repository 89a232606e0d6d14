//! Log compaction (`cleanup.policy=compact`): keeps the latest record of every key, drops
//! tombstones once `delete.retention.ms` has passed, drops the records of aborted
//! transactions, drops a transaction's marker once none of its records is left and
//! `delete.retention.ms` has passed (as Kafka's cleaner does: a marker with records still
//! behind it must stay, or a reader rebuilding the log would see those records as an open
//! transaction), and swaps cleaned segments in without blocking appends (only sealed
//! segments are touched; the active one never is).
//!
//! Crash safety: each group of input segments becomes one output segment, written as
//! `.cleaned` files, committed by renaming its `.log` to `.log.swap` (with a sidecar naming
//! the end offset it replaces), then the inputs are deleted and the output renamed to its
//! final name. Start-up recovery discards uncommitted output and completes committed swaps.

use std::collections::{HashMap, HashSet};
use std::fs::FileTimes;
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use crate::batch::BatchHeader;
use crate::builder::BatchBuilder;
use crate::checkpoint;
use crate::error::{Result, StorageError};
use crate::partition::{settings_of, PartitionLog};
use crate::record::{Record, RecordIter};
use crate::recovery::{CLEANED_SUFFIX, REPLACES_EXT, SWAP_SUFFIX};
use crate::segment::{segment_file_name, BatchPlacement, Segment};
use crate::transactions::TransactionTable;

const CLEANER_CHECKPOINT: &str = "cleaner-offset-checkpoint";

/// What one compaction pass did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct CompactionStats {
    /// Sealed segments that were rewritten.
    pub segments_rewritten: usize,
    /// Segments that replaced them.
    pub segments_written: usize,
    /// Records removed (superseded values, expired tombstones, aborted records and the
    /// markers of transactions with no records left).
    pub records_removed: u64,
    /// Bytes of the rewritten segments before.
    pub bytes_before: u64,
    /// Bytes of their replacements.
    pub bytes_after: u64,
}

fn decoded_records<'a>(
    header: &BatchHeader,
    batch: &'a [u8],
) -> Result<std::borrow::Cow<'a, [u8]>> {
    crate::batch::record_area(batch, header, usize::MAX >> 1)
}

impl PartitionLog {
    /// Runs one compaction pass if the log is compacted and enough of it is dirty (or
    /// `force`). Returns `None` when there was nothing to do.
    pub fn compact(&self, now_ms: i64, force: bool) -> Result<Option<CompactionStats>> {
        let config = self.config();
        if !config.cleanup_policy.compact {
            return Ok(None);
        }
        let _maintenance = self.maintenance.lock();
        let segments = self.segment_snapshot();
        let sealed = &segments[..segments.len() - 1];
        let lag_horizon = now_ms.saturating_sub(config.min_compaction_lag_ms);
        // Records of open transactions may still be aborted: cleaning stops before them.
        let stable = self.last_stable_offset();
        let cleanable: Vec<Arc<Segment>> = sealed
            .iter()
            .take_while(|s| config.min_compaction_lag_ms == 0 || s.max_timestamp() <= lag_horizon)
            .take_while(|s| s.next_offset() <= stable)
            .cloned()
            .collect();
        if cleanable.is_empty() {
            return Ok(None);
        }
        let checkpoint_path = self.dir.join(CLEANER_CHECKPOINT);
        let first_dirty = checkpoint::read_i64(&checkpoint_path)?.unwrap_or(0);
        let total: u64 = cleanable.iter().map(|s| s.size()).sum();
        let dirty: u64 = cleanable
            .iter()
            .filter(|s| s.next_offset() > first_dirty)
            .map(|s| s.size())
            .sum();
        let ratio = if total == 0 {
            0.0
        } else {
            dirty as f64 / total as f64
        };
        let overdue = config.max_compaction_lag_ms != i64::MAX
            && cleanable.iter().any(|s| {
                s.next_offset() > first_dirty
                    && s.max_timestamp() >= 0
                    && now_ms.saturating_sub(s.max_timestamp()) > config.max_compaction_lag_ms
            });
        if !force && !overdue && (dirty == 0 || ratio < config.min_cleanable_dirty_ratio) {
            return Ok(None);
        }

        let txns = self.txns.read().clone();
        let latest = latest_offsets(&cleanable, &txns)?;
        let tombstone_horizon = now_ms.saturating_sub(config.delete_retention_ms);
        let mut stats = CompactionStats::default();
        let survival = Survival {
            latest: &latest,
            txns: &txns,
            tombstone_horizon,
        };
        let mut with_records = TransactionsWithRecords::default();
        for group in group_segments(&cleanable, config.segment_bytes, config.max_index_entries()) {
            self.clean_group(&group, &survival, &mut with_records, now_ms, &mut stats)?;
        }
        let clean_end = cleanable.last().map_or(first_dirty, |s| s.next_offset());
        checkpoint::write_i64(&checkpoint_path, clean_end)?;
        tracing::info!(partition = %self.topic_partition, ?stats, "compacted");
        Ok(Some(stats))
    }

    fn clean_group(
        &self,
        group: &[Arc<Segment>],
        survival: &Survival<'_>,
        with_records: &mut TransactionsWithRecords,
        now_ms: i64,
        stats: &mut CompactionStats,
    ) -> Result<()> {
        let base = group[0].base_offset();
        let settings = settings_of(&self.config());
        let mut output = Segment::create(&self.dir, base, settings, now_ms, CLEANED_SUFFIX)?;
        let mut removed = 0u64;
        let mut removed_markers = Vec::new();
        let mut newest_mtime = 0;
        for segment in group {
            let past_delete_retention = segment.modified_ms() < survival.tombstone_horizon;
            newest_mtime = newest_mtime.max(segment.modified_ms());
            for (position, header) in segment.batch_headers()? {
                let batch = segment.read_batch(position, &header)?;
                let kept = if header.is_control() {
                    let records_left = with_records.end(header.producer_id);
                    if records_left || !past_delete_retention {
                        Some(batch)
                    } else {
                        removed += header.record_count.max(0) as u64;
                        removed_markers.push(header.base_offset);
                        None
                    }
                } else if is_aborted(&header, survival.txns) {
                    removed += header.record_count.max(0) as u64;
                    None
                } else {
                    let kept = retain_records(
                        &header,
                        &batch,
                        survival.latest,
                        past_delete_retention,
                        &mut removed,
                    )?;
                    if kept.is_some() && header.is_transactional() {
                        with_records.kept(header.producer_id);
                    }
                    kept
                };
                if let Some(bytes) = kept {
                    let kept_header = BatchHeader::parse(&bytes)?;
                    output.append(
                        &[&bytes],
                        &[BatchPlacement {
                            base_offset: kept_header.base_offset,
                            last_offset: kept_header.last_offset(),
                            max_timestamp: kept_header.max_timestamp,
                            size: bytes.len(),
                        }],
                    )?;
                }
            }
        }
        if removed == 0 {
            drop(output);
            Segment::delete_files_of(&self.dir, base, CLEANED_SUFFIX);
            return Ok(());
        }
        output.seal(true)?;
        let modified = UNIX_EPOCH + Duration::from_millis(newest_mtime.max(0) as u64);
        set_mtime(output.log_path(), modified)?;

        // Commit: sidecar first, then the .log rename is the point of no return.
        let end = group.last().map_or(base, |s| s.next_offset());
        let sidecar = self.dir.join(format!(
            "{}{SWAP_SUFFIX}",
            segment_file_name(base, REPLACES_EXT)
        ));
        checkpoint::write_i64(&sidecar, end)?;
        output.rename_suffix(&self.dir, SWAP_SUFFIX)?;
        for old in group {
            old.delete_files()?;
        }
        output.rename_suffix(&self.dir, "")?;
        std::fs::remove_file(&sidecar).map_err(|e| StorageError::io(&sidecar, e))?;
        {
            let mut segments = self.segments.write();
            for old in group {
                segments.remove(&old.base_offset());
            }
            stats.bytes_after += output.size();
            segments.insert(base, Arc::new(output));
        }
        self.txns.write().forget_markers(&removed_markers);
        stats.segments_rewritten += group.len();
        stats.segments_written += 1;
        stats.records_removed += removed;
        stats.bytes_before += group.iter().map(|s| s.size()).sum::<u64>();
        Ok(())
    }
}

fn set_mtime(path: &std::path::Path, modified: SystemTime) -> Result<()> {
    let file = std::fs::File::options()
        .write(true)
        .open(path)
        .map_err(|e| StorageError::io(path, e))?;
    file.set_times(FileTimes::new().set_modified(modified))
        .map_err(|e| StorageError::io(path, e))
}

/// What decides which records of a cleaned segment survive.
struct Survival<'a> {
    /// Offset of the newest record of every key.
    latest: &'a HashMap<Vec<u8>, i64>,
    /// Aborted transactions, whose records never survive.
    txns: &'a TransactionTable,
    /// Tombstones, and the markers of transactions with no records left, in segments last
    /// written before this time (ms) are dropped.
    tombstone_horizon: i64,
}

/// The producers whose current transaction still has records in the cleaned log, tracked
/// while a pass walks it in offset order: a transaction's records all come before its
/// marker, so at the marker this says whether any survived.
#[derive(Default)]
struct TransactionsWithRecords(HashSet<i64>);

impl TransactionsWithRecords {
    /// A record of `producer_id`'s open transaction was kept.
    fn kept(&mut self, producer_id: i64) {
        self.0.insert(producer_id);
    }

    /// `producer_id`'s transaction ends at its marker: whether any of its records was kept.
    fn end(&mut self, producer_id: i64) -> bool {
        self.0.remove(&producer_id)
    }
}

/// Whether a batch belongs to an aborted transaction (its records are dropped: they were
/// never committed, and must not shadow the committed value of their key).
fn is_aborted(header: &BatchHeader, txns: &TransactionTable) -> bool {
    header.is_transactional() && txns.is_aborted(header.producer_id, header.base_offset)
}

/// The offset of the newest committed record of every key in `segments`.
fn latest_offsets(
    segments: &[Arc<Segment>],
    txns: &TransactionTable,
) -> Result<HashMap<Vec<u8>, i64>> {
    let mut latest = HashMap::new();
    for segment in segments {
        for (position, header) in segment.batch_headers()? {
            if header.is_control() || is_aborted(&header, txns) {
                continue;
            }
            let batch = segment.read_batch(position, &header)?;
            let records = decoded_records(&header, &batch)?;
            for record in RecordIter::new(&records, header.record_count.max(0) as usize) {
                let record = record?;
                if let Some(key) = record.key {
                    let offset = header.base_offset + i64::from(record.offset_delta);
                    latest.insert(key.to_vec(), offset);
                }
            }
        }
    }
    Ok(latest)
}

/// The batch with only its surviving records: unchanged bytes when all survive, a rebuilt
/// batch (same offsets range, producer fields and codec) when some do, `None` when none do.
fn retain_records(
    header: &BatchHeader,
    batch: &[u8],
    latest: &HashMap<Vec<u8>, i64>,
    expire_tombstones: bool,
    removed: &mut u64,
) -> Result<Option<Vec<u8>>> {
    let records = decoded_records(header, batch)?;
    let all: Vec<Record<'_>> =
        RecordIter::new(&records, header.record_count.max(0) as usize).collect::<Result<_>>()?;
    let keep = |r: &Record<'_>| {
        let offset = header.base_offset + i64::from(r.offset_delta);
        let Some(key) = r.key else { return true };
        let is_latest = latest.get(key).is_none_or(|newest| *newest <= offset);
        is_latest && !(r.value.is_none() && expire_tombstones)
    };
    let kept: Vec<&Record<'_>> = all.iter().filter(|r| keep(r)).collect();
    *removed += (all.len() - kept.len()) as u64;
    if kept.len() == all.len() {
        return Ok(Some(batch.to_vec()));
    }
    if kept.is_empty() {
        return Ok(None);
    }
    let mut builder = BatchBuilder::like(header);
    for r in kept {
        builder.push_at(
            r.offset_delta,
            header.base_timestamp.saturating_add(r.timestamp_delta),
            r.key,
            r.value,
            &r.headers,
        );
    }
    Ok(Some(builder.build()))
}

/// Splits consecutive segments into groups that fit one output segment.
fn group_segments(
    segments: &[Arc<Segment>],
    max_bytes: u64,
    max_index_entries: usize,
) -> Vec<Vec<Arc<Segment>>> {
    let mut groups: Vec<Vec<Arc<Segment>>> = Vec::new();
    let mut size = 0u64;
    let mut entries = 0usize;
    for segment in segments {
        let fits = groups.last().is_some_and(|g| {
            size + segment.size() <= max_bytes
                && entries + segment.index_entries() <= max_index_entries
                && segment.next_offset() - g[0].base_offset() < i64::from(u32::MAX) - 1
        });
        if fits {
            groups.last_mut().expect("checked").push(segment.clone());
            size += segment.size();
            entries += segment.index_entries();
        } else {
            groups.push(vec![segment.clone()]);
            size = segment.size();
            entries = segment.index_entries();
        }
    }
    groups
}
