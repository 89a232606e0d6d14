//! One segment of a partition log: a `.log` file of record batches plus its sparse
//! `.index` and `.timeindex`, named by the segment's base offset.
//!
//! A segment has a single writer (the partition's append path) and any number of readers.
//! The writer publishes the segment's end (next offset and byte size) in one atomic word
//! after the bytes are written, so readers never see a partial batch and never take a lock
//! the writer waits on.

use std::fs::{File, OpenOptions};
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};
use std::sync::Arc;

use crate::batch::{compute_crc, BatchHeader, TimestampType, BATCH_HEADER_LEN};
use crate::error::{Result, StorageError};
use crate::index::{OffsetEntry, SparseIndex, TimeEntry};
use crate::record::RecordIter;
use crate::slice::FileSlice;
use crate::write_ahead::{WriteAhead, WRITE_AHEAD_STEP};

/// File extension of the record data.
pub const LOG_EXT: &str = "log";
/// File extension of the offset index.
pub const INDEX_EXT: &str = "index";
/// File extension of the time index.
pub const TIME_INDEX_EXT: &str = "timeindex";

/// The name Kafka gives a segment file: 20-digit zero-padded base offset plus extension.
pub fn segment_file_name(base_offset: i64, ext: &str) -> String {
    format!("{base_offset:020}.{ext}")
}

/// Where a batch about to be appended goes, as assigned by the partition.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BatchPlacement {
    /// Offset of its first record.
    pub base_offset: i64,
    /// Offset of its last record.
    pub last_offset: i64,
    /// Largest timestamp in it.
    pub max_timestamp: i64,
    /// Its size in bytes.
    pub size: usize,
}

/// Settings a segment needs from the log config.
#[derive(Debug, Clone, Copy)]
pub struct SegmentSettings {
    /// `index.interval.bytes`.
    pub index_interval_bytes: u64,
    /// How much before `segment.ms` this segment rolls: drawn at random below
    /// `segment.jitter.ms` when the segment is created or opened.
    pub roll_jitter_ms: i64,
}

/// One `.log` file and its indexes.
#[derive(Debug)]
pub struct Segment {
    base_offset: i64,
    log_path: PathBuf,
    file: Arc<File>,
    /// `(next offset - base offset) << 32 | byte size`, published after each append.
    end: AtomicU64,
    max_timestamp: AtomicI64,
    /// Time the segment's age for `segment.ms` is counted from.
    roll_base_ms: i64,
    bytes_since_index: AtomicU64,
    settings: SegmentSettings,
    offset_index: SparseIndex<OffsetEntry>,
    time_index: SparseIndex<TimeEntry>,
    /// Zeros written ahead of small appends (see [`crate::write_ahead`]).
    write_ahead: WriteAhead,
}

fn pack(relative_next: u32, size: u32) -> u64 {
    (u64::from(relative_next) << 32) | u64::from(size)
}

fn path_with(dir: &Path, base: i64, ext: &str, suffix: &str) -> PathBuf {
    dir.join(format!("{}{suffix}", segment_file_name(base, ext)))
}

/// Why a scan of segment bytes stopped before the end of the file.
#[derive(Debug)]
struct Damage {
    position: u64,
    reason: String,
}

impl Segment {
    /// Creates a new, empty segment at `base_offset`. `suffix` is empty for live segments and
    /// `.cleaned` for the output of compaction before it is swapped in.
    pub fn create(
        dir: &Path,
        base_offset: i64,
        settings: SegmentSettings,
        now_ms: i64,
        suffix: &str,
    ) -> Result<Self> {
        let log_path = path_with(dir, base_offset, LOG_EXT, suffix);
        let file = OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(true)
            .open(&log_path)
            .map_err(|e| StorageError::io(&log_path, e))?;
        Ok(Segment {
            base_offset,
            file: Arc::new(file),
            end: AtomicU64::new(0),
            max_timestamp: AtomicI64::new(-1),
            roll_base_ms: now_ms,
            bytes_since_index: AtomicU64::new(0),
            settings,
            offset_index: SparseIndex::create(&path_with(dir, base_offset, INDEX_EXT, suffix))?,
            time_index: SparseIndex::create(&path_with(dir, base_offset, TIME_INDEX_EXT, suffix))?,
            log_path,
            write_ahead: WriteAhead::new(0),
        })
    }

    /// Opens an existing segment. The part after the last index entry is always re-scanned
    /// (to find the segment's end). With `verify`, or when an index is missing or invalid,
    /// the whole segment is re-scanned, every batch's CRC checked and both indexes rebuilt.
    /// A torn or corrupt tail is truncated at the last complete valid batch. Damage is
    /// logged, never fatal.
    pub fn open(
        dir: &Path,
        base_offset: i64,
        settings: SegmentSettings,
        verify: bool,
        now_ms: i64,
    ) -> Result<Self> {
        let log_path = path_with(dir, base_offset, LOG_EXT, "");
        let file = OpenOptions::new()
            .read(true)
            .write(true)
            .open(&log_path)
            .map_err(|e| StorageError::io(&log_path, e))?;
        let len = file
            .metadata()
            .map_err(|e| StorageError::io(&log_path, e))?
            .len();
        if len > u64::from(u32::MAX) {
            return Err(StorageError::CorruptMessage(format!(
                "{} is {len} bytes, larger than a segment can be",
                log_path.display()
            )));
        }
        let (offset_index, offsets_ok) = SparseIndex::load(
            &path_with(dir, base_offset, INDEX_EXT, ""),
            |e: &OffsetEntry| u64::from(e.position) < len,
        )?;
        let (time_index, times_ok) =
            SparseIndex::load(&path_with(dir, base_offset, TIME_INDEX_EXT, ""), |_| true)?;
        if !offsets_ok || !times_ok {
            tracing::warn!(segment = %log_path.display(), "segment index missing or invalid; rebuilding it");
        }
        let segment = Segment {
            base_offset,
            roll_base_ms: first_batch_timestamp(&file).unwrap_or(now_ms),
            file: Arc::new(file),
            end: AtomicU64::new(0),
            max_timestamp: AtomicI64::new(-1),
            bytes_since_index: AtomicU64::new(0),
            settings,
            offset_index,
            time_index,
            log_path,
            write_ahead: WriteAhead::new(len),
        };
        segment.recover(len, verify || !offsets_ok || !times_ok)?;
        Ok(segment)
    }

    /// Finds the last index entry that really points at a batch, re-scans everything after
    /// it, truncates damage and restores the in-memory end, indexes and max timestamp. With
    /// `rebuild` the indexes are dropped first, so the whole segment is scanned, and every
    /// batch's CRC is checked.
    fn recover(&self, len: u64, rebuild: bool) -> Result<()> {
        let verify = rebuild;
        if rebuild {
            self.offset_index.truncate_from(|_| false)?;
            self.time_index.truncate_from(|_| false)?;
        }
        let start = loop {
            let Some(entry) = self.offset_index.last() else {
                break OffsetEntry {
                    relative_offset: 0,
                    position: 0,
                };
            };
            let points_at_batch = self.header_at(u64::from(entry.position)).is_ok_and(|h| {
                h.base_offset == self.base_offset + i64::from(entry.relative_offset)
            });
            if points_at_batch {
                break entry;
            }
            tracing::warn!(segment = %self.log_path.display(), position = entry.position, "index entry does not point at a batch; dropping it");
            self.offset_index
                .truncate_from(|e| e.position < entry.position)?;
        };
        // Time entries at or after `start` are kept for now: the last one (written when the
        // segment was sealed) also covers the batches between the previous index entry and
        // `start`, which the scan below does not see. Entries past the end go after the scan.
        self.max_timestamp.store(
            self.time_index
                .last_where(|t| t.relative_offset < start.relative_offset)
                .map_or(-1, |t| t.timestamp),
            Ordering::Release,
        );
        let mut next = self.base_offset + i64::from(start.relative_offset);
        let mut position = u64::from(start.position);
        if start.position > 0 {
            // The batch at the entry is re-indexed by the scan below; keep the entry itself.
            self.end.store(
                pack(start.relative_offset, start.position),
                Ordering::Release,
            );
        }
        let mut last_scanned = None;
        let damage = loop {
            if position == len {
                break None;
            }
            match self.check_batch_at(position, len, next, verify) {
                Ok(header) => {
                    last_scanned = Some(header.base_offset);
                    self.index_batch(
                        &BatchPlacement {
                            base_offset: header.base_offset,
                            last_offset: header.last_offset(),
                            max_timestamp: header.max_timestamp,
                            size: header.total_size(),
                        },
                        position,
                    );
                    position += header.total_size() as u64;
                    next = header.last_offset() + 1;
                    self.publish(next, position);
                }
                Err(reason) => break Some(Damage { position, reason }),
            }
        };
        self.publish(next, position);
        let end_relative = next - self.base_offset;
        self.time_index
            .truncate_from(|t| i64::from(t.relative_offset) < end_relative)?;
        if let Some(t) = self.time_index.last() {
            self.max_timestamp.fetch_max(t.timestamp, Ordering::AcqRel);
        }
        // As `seal` does, record the max timestamp at the last batch: the next open only
        // re-scans after the last offset index entry and learns the rest from this entry.
        let max_ts = self.max_timestamp();
        if let Some(last_base) = last_scanned {
            if max_ts >= 0 && max_ts > self.time_index.last().map_or(-1, |t| t.timestamp) {
                self.time_index.append(TimeEntry {
                    timestamp: max_ts,
                    relative_offset: (last_base - self.base_offset) as u32,
                });
            }
        }
        if let Some(damage) = damage {
            if self.only_zeros_written_ahead(damage.position, len) {
                tracing::info!(
                    segment = %self.log_path.display(),
                    position = damage.position,
                    dropped_bytes = len - damage.position,
                    "cutting the zeros written ahead of the data"
                );
            } else {
                tracing::warn!(
                    segment = %self.log_path.display(),
                    position = damage.position,
                    dropped_bytes = len - damage.position,
                    reason = %damage.reason,
                    "truncating torn or corrupt segment tail"
                );
            }
            self.write_ahead
                .cut_back(&self.file, damage.position)
                .map_err(|e| StorageError::io(&self.log_path, e))?;
        }
        // Keep what was rebuilt, so a sealed segment is not re-scanned on every start. Indexes
        // are derived data: failing to write them (a full disk) must not keep the log closed.
        for result in [
            self.offset_index.persist(false),
            self.time_index.persist(false),
        ] {
            if let Err(e) = result {
                tracing::warn!(segment = %self.log_path.display(), error = %e, "could not write a rebuilt index");
            }
        }
        Ok(())
    }

    /// Whether the bytes from `position` to `len` are zeros no longer than what
    /// [`WriteAhead`] leaves past the data: a clean tail, not damage.
    fn only_zeros_written_ahead(&self, position: u64, len: u64) -> bool {
        if len - position > 2 * WRITE_AHEAD_STEP {
            return false;
        }
        let mut tail = vec![0u8; (len - position) as usize];
        self.file.read_exact_at(&mut tail, position).is_ok() && tail.iter().all(|b| *b == 0)
    }

    /// Checks that a whole, well-formed batch (CRC too with `verify`) starts at `position`.
    fn check_batch_at(
        &self,
        position: u64,
        len: u64,
        expected_min_offset: i64,
        verify: bool,
    ) -> std::result::Result<BatchHeader, String> {
        if len - position < BATCH_HEADER_LEN as u64 {
            return Err(format!(
                "{} trailing bytes are not a whole batch header",
                len - position
            ));
        }
        let header = self.header_at(position).map_err(|e| e.to_string())?;
        if header.magic != 2 {
            return Err(format!("magic byte {} is not 2", header.magic));
        }
        let size = header.total_size() as u64;
        if size < BATCH_HEADER_LEN as u64 || size > len - position {
            return Err(format!("batch length {size} does not fit the file"));
        }
        if header.base_offset < expected_min_offset || header.last_offset_delta < 0 {
            return Err(format!(
                "batch offsets {}..={} go backwards (expected at least {expected_min_offset})",
                header.base_offset,
                header.last_offset()
            ));
        }
        if header.last_offset() - self.base_offset > i64::from(u32::MAX) - 1 {
            return Err("batch offset does not fit the segment".to_string());
        }
        if verify {
            let mut batch = vec![0u8; size as usize];
            self.file
                .read_exact_at(&mut batch, position)
                .map_err(|e| e.to_string())?;
            let crc = compute_crc(&batch);
            if crc != header.crc {
                return Err(format!(
                    "CRC-32C mismatch ({:#010x} != {crc:#010x})",
                    header.crc
                ));
            }
        }
        Ok(header)
    }

    fn header_at(&self, position: u64) -> Result<BatchHeader> {
        let mut buf = [0u8; BATCH_HEADER_LEN];
        self.file
            .read_exact_at(&mut buf, position)
            .map_err(|e| StorageError::io(&self.log_path, e))?;
        BatchHeader::parse(&buf)
    }

    fn publish(&self, next_offset: i64, size: u64) {
        let relative = (next_offset - self.base_offset) as u32;
        self.end
            .store(pack(relative, size as u32), Ordering::Release);
    }

    /// Adds index entries for a batch written at `position`, as the index interval asks.
    fn index_batch(&self, batch: &BatchPlacement, position: u64) {
        let relative = (batch.base_offset - self.base_offset) as u32;
        let since = self.bytes_since_index.load(Ordering::Relaxed);
        let previous_max = self.max_timestamp.load(Ordering::Relaxed);
        let max_ts = previous_max.max(batch.max_timestamp);
        if since >= self.settings.index_interval_bytes || position == 0 {
            if position > 0 {
                self.offset_index.append(OffsetEntry {
                    relative_offset: relative,
                    position: position as u32,
                });
            }
            if max_ts > self.time_index.last().map_or(-1, |t| t.timestamp) && max_ts >= 0 {
                self.time_index.append(TimeEntry {
                    timestamp: max_ts,
                    relative_offset: relative,
                });
            }
            self.bytes_since_index
                .store(batch.size as u64, Ordering::Relaxed);
        } else {
            self.bytes_since_index
                .store(since + batch.size as u64, Ordering::Relaxed);
        }
        self.max_timestamp.store(max_ts, Ordering::Release);
    }

    /// Writes batches whose offsets the partition has already assigned (given as byte slices
    /// written back to back, so rewritten headers and untouched record bytes need not be
    /// joined in memory: copied into the mapped window when small, see
    /// [`crate::write_ahead`], else with one `pwritev`), indexes them, and only then makes
    /// them visible to readers. On an I/O error (a full disk) the file is cut back so nothing
    /// partial remains, and the error returned.
    pub fn append(&self, parts: &[&[u8]], placements: &[BatchPlacement]) -> Result<()> {
        let (_, size) = self.end_state();
        let len: u64 = parts.iter().map(|p| p.len() as u64).sum();
        if !self.write_ahead.copy_small(&self.file, parts, size, len) {
            if let Err(e) = write_all_vectored_at(&self.file, parts, size) {
                let _ = self.write_ahead.truncate(&self.file, size);
                return Err(StorageError::io(&self.log_path, e));
            }
            self.write_ahead.wrote_to(size + len);
        }
        let mut position = size;
        for placement in placements {
            self.index_batch(placement, position);
            position += placement.size as u64;
        }
        if let Some(last) = placements.last() {
            self.publish(last.last_offset + 1, position);
        }
        Ok(())
    }

    /// `(next offset, byte size)` as last published.
    pub fn end_state(&self) -> (i64, u64) {
        let packed = self.end.load(Ordering::Acquire);
        (
            self.base_offset + (packed >> 32) as i64,
            packed & 0xffff_ffff,
        )
    }

    /// First offset this segment may hold.
    pub fn base_offset(&self) -> i64 {
        self.base_offset
    }

    /// Offset after the last batch in the segment (the base offset if it is empty).
    pub fn next_offset(&self) -> i64 {
        self.end_state().0
    }

    /// Bytes of batches in the segment.
    pub fn size(&self) -> u64 {
        self.end_state().1
    }

    /// Largest timestamp of any record in the segment, -1 if none.
    pub fn max_timestamp(&self) -> i64 {
        self.max_timestamp.load(Ordering::Acquire)
    }

    /// How much before `segment.ms` this segment rolls (`segment.jitter.ms`).
    pub fn roll_jitter_ms(&self) -> i64 {
        self.settings.roll_jitter_ms
    }

    /// Milliseconds the segment has been open for appends, as `segment.ms` counts them.
    pub fn age_ms(&self, now_ms: i64) -> i64 {
        now_ms.saturating_sub(self.roll_base_ms)
    }

    /// When the `.log` file was last modified (ms since the epoch; 0 if unknown). Retention
    /// falls back on it for records without timestamps; compaction times tombstones with it.
    pub fn modified_ms(&self) -> i64 {
        std::fs::metadata(&self.log_path)
            .and_then(|m| m.modified())
            .ok()
            .and_then(|t| t.duration_since(std::time::UNIX_EPOCH).ok())
            .map_or(0, |d| d.as_millis() as i64)
    }

    /// Number of entries in the offset index.
    pub fn index_entries(&self) -> usize {
        self.offset_index.len()
    }

    /// Path of the `.log` file.
    pub fn log_path(&self) -> &Path {
        &self.log_path
    }

    /// Position of the first batch whose last offset is at least `offset`, with its header.
    fn locate(&self, offset: i64, size: u64) -> Result<Option<(u64, BatchHeader)>> {
        let relative = (offset - self.base_offset).max(0);
        let start = self
            .offset_index
            .floor(relative)
            .map_or(0, |e| u64::from(e.position));
        let mut cursor = HeaderCursor::new(self, start, size);
        while let Some((position, header)) = cursor.next()? {
            if header.last_offset() >= offset {
                return Ok(Some((position, header)));
            }
        }
        Ok(None)
    }

    /// Whole batches starting with the one that holds `offset`, up to `max_bytes` (but at
    /// least that first batch, as Kafka's fetch does), and only batches that end before
    /// `end_offset` (the last stable offset for `read_committed` readers; it is always a
    /// batch boundary). `None` if nothing at or after `offset` qualifies.
    pub fn read(
        &self,
        offset: i64,
        max_bytes: usize,
        end_offset: i64,
    ) -> Result<Option<FileSlice>> {
        let (next, mut size) = self.end_state();
        if offset >= next.min(end_offset) {
            return Ok(None);
        }
        if end_offset < next {
            // Cut at the first batch that reaches the bound.
            if let Some((position, _)) = self.locate(end_offset, size)? {
                size = position;
            }
        }
        let Some((start, first)) = self.locate(offset, size)? else {
            return Ok(None);
        };
        let first_end = start + first.total_size() as u64;
        let limit = start
            .saturating_add(max_bytes as u64)
            .max(first_end)
            .min(size);
        let end = if limit == size {
            size
        } else {
            let from = self
                .offset_index
                .last_where(|e| u64::from(e.position) <= limit)
                .map_or(0, |e| u64::from(e.position))
                .max(first_end);
            let mut end = from;
            let mut cursor = HeaderCursor::new(self, from, size);
            while let Some((position, header)) = cursor.next()? {
                let batch_end = position + header.total_size() as u64;
                if batch_end > limit {
                    break;
                }
                end = batch_end;
            }
            end
        };
        Ok(Some(FileSlice::new(self.file.clone(), start, end - start)))
    }

    /// Largest timestamp of the records whose offset is at least `min_offset` (-1 if none).
    /// For a segment starting at or after `min_offset` that is [`Segment::max_timestamp`];
    /// otherwise (the log start moved into the segment) the batches from `min_offset` on are
    /// read, skipping transaction markers as [`Segment::find_timestamp`] does.
    pub fn max_timestamp_from(&self, min_offset: i64) -> Result<i64> {
        if min_offset <= self.base_offset {
            return Ok(self.max_timestamp());
        }
        let (_, size) = self.end_state();
        let Some((start, _)) = self.locate(min_offset, size)? else {
            return Ok(-1);
        };
        let mut max = -1;
        let mut cursor = HeaderCursor::new(self, start, size);
        while let Some((position, header)) = cursor.next()? {
            if header.is_control() {
                continue;
            }
            if header.base_offset >= min_offset
                || header.timestamp_type() == TimestampType::LogAppendTime
            {
                max = max.max(header.max_timestamp);
            } else {
                let batch = self.read_batch(position, &header)?;
                max = max.max(max_record_timestamp_from(&batch, &header, min_offset)?);
            }
        }
        Ok(max)
    }

    /// The first record at or after `timestamp` whose offset is at least `min_offset`:
    /// `(offset, its timestamp)`.
    pub fn find_timestamp(&self, timestamp: i64, min_offset: i64) -> Result<Option<(i64, i64)>> {
        if self.max_timestamp() < timestamp {
            return Ok(None);
        }
        let (_, size) = self.end_state();
        let from_offset = self.base_offset
            + self
                .time_index
                .lower(timestamp)
                .map_or(0, |t| i64::from(t.relative_offset));
        let start = self
            .offset_index
            .floor(from_offset - self.base_offset)
            .map_or(0, |e| u64::from(e.position));
        let mut cursor = HeaderCursor::new(self, start, size);
        while let Some((position, header)) = cursor.next()? {
            if header.max_timestamp < timestamp
                || header.is_control()
                || header.last_offset() < min_offset
            {
                continue;
            }
            if header.timestamp_type() == TimestampType::LogAppendTime {
                return Ok(Some((
                    header.base_offset.max(min_offset),
                    header.max_timestamp,
                )));
            }
            let batch = self.read_batch(position, &header)?;
            if let Some(found) = first_record_at_or_after(&batch, &header, timestamp, min_offset)? {
                return Ok(Some(found));
            }
        }
        Ok(None)
    }

    /// Reads the whole batch at `position` whose header is `header`.
    pub fn read_batch(&self, position: u64, header: &BatchHeader) -> Result<Vec<u8>> {
        let mut batch = vec![0u8; header.total_size()];
        self.file
            .read_exact_at(&mut batch, position)
            .map_err(|e| StorageError::io(&self.log_path, e))?;
        Ok(batch)
    }

    /// Every batch in the segment as `(position, header)`, in order.
    pub fn batch_headers(&self) -> Result<Vec<(u64, BatchHeader)>> {
        let (_, size) = self.end_state();
        let mut cursor = HeaderCursor::new(self, 0, size);
        let mut out = Vec::new();
        while let Some(item) = cursor.next()? {
            out.push(item);
        }
        Ok(out)
    }

    /// Makes the record data durable (fdatasync of the `.log` only). Indexes are derived
    /// data that recovery rebuilds from the log, so they are written and synced only when
    /// the segment is sealed; syncing them on every flush would triple its cost.
    pub fn flush(&self) -> Result<()> {
        self.file
            .sync_data()
            .map_err(|e| StorageError::io(&self.log_path, e))
    }

    /// Finishes a segment that will receive no more appends: records its max timestamp in
    /// the time index and writes the indexes; with `sync` fsyncs everything.
    pub fn seal(&self, sync: bool) -> Result<()> {
        self.cut_back_to_data()?;
        let max_ts = self.max_timestamp();
        if max_ts >= 0 && max_ts > self.time_index.last().map_or(-1, |t| t.timestamp) {
            if let Some((_, header)) = self.batch_headers()?.last() {
                self.time_index.append(TimeEntry {
                    timestamp: max_ts,
                    relative_offset: (header.base_offset - self.base_offset) as u32,
                });
            }
        }
        if sync {
            self.flush()?;
        }
        self.offset_index.persist(sync)?;
        self.time_index.persist(sync)
    }

    /// Cuts the `.log` file back to its data (removing zeros written ahead of appends).
    fn cut_back_to_data(&self) -> Result<()> {
        self.write_ahead
            .cut_back(&self.file, self.size())
            .map_err(|e| StorageError::io(&self.log_path, e))
    }

    /// Renames the segment's three files by changing their suffix (compaction's swap).
    pub fn rename_suffix(&mut self, dir: &Path, suffix: &str) -> Result<()> {
        let log_path = path_with(dir, self.base_offset, LOG_EXT, suffix);
        std::fs::rename(&self.log_path, &log_path)
            .map_err(|e| StorageError::io(&self.log_path, e))?;
        self.log_path = log_path;
        self.offset_index
            .rename(&path_with(dir, self.base_offset, INDEX_EXT, suffix))?;
        self.time_index
            .rename(&path_with(dir, self.base_offset, TIME_INDEX_EXT, suffix))
    }

    /// Removes the three files of the segment at `base` with `suffix`, ignoring any that are
    /// missing (used to discard unneeded compaction output).
    pub fn delete_files_of(dir: &Path, base: i64, suffix: &str) {
        for ext in [LOG_EXT, INDEX_EXT, TIME_INDEX_EXT] {
            let _ = std::fs::remove_file(path_with(dir, base, ext, suffix));
        }
    }

    /// Removes the segment's files. Readers holding a [`FileSlice`] keep reading the data.
    pub fn delete_files(&self) -> Result<()> {
        for path in [
            self.log_path.as_path(),
            self.offset_index.path(),
            self.time_index.path(),
        ] {
            match std::fs::remove_file(path) {
                Ok(()) => {}
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
                Err(e) => return Err(StorageError::io(path, e)),
            }
        }
        Ok(())
    }
}

/// The max timestamp of a segment file's first batch: its age for `segment.ms` counts from
/// it, as in Kafka.
fn first_batch_timestamp(file: &File) -> Option<i64> {
    let mut buf = [0u8; BATCH_HEADER_LEN];
    file.read_exact_at(&mut buf, 0).ok()?;
    let header = BatchHeader::parse(&buf).ok()?;
    (header.max_timestamp >= 0).then_some(header.max_timestamp)
}

impl Drop for Segment {
    fn drop(&mut self) {
        // A segment dropped without being sealed (a log dropped without close) leaves its
        // file at the data's length too.
        if let Err(e) = self.cut_back_to_data() {
            tracing::warn!(error = %e, "cannot cut a segment file back to its data");
        }
    }
}

/// `pwritev` of all `parts` at `position`, continuing after partial writes.
fn write_all_vectored_at(file: &File, parts: &[&[u8]], position: u64) -> std::io::Result<()> {
    use std::os::fd::AsRawFd;
    let mut iovecs: Vec<libc::iovec> = parts
        .iter()
        .filter(|p| !p.is_empty())
        .map(|p| libc::iovec {
            iov_base: p.as_ptr() as *mut libc::c_void,
            iov_len: p.len(),
        })
        .collect();
    let mut first = 0;
    let mut position = position;
    while first < iovecs.len() {
        let count = (iovecs.len() - first).min(1024) as libc::c_int;
        // SAFETY: the iovecs point into `parts`, which outlives the call; the fd is open.
        let written = unsafe {
            libc::pwritev(
                file.as_raw_fd(),
                iovecs[first..].as_ptr(),
                count,
                position as libc::off_t,
            )
        };
        if written < 0 {
            let err = std::io::Error::last_os_error();
            if err.kind() == std::io::ErrorKind::Interrupted {
                continue;
            }
            return Err(err);
        }
        if written == 0 {
            return Err(std::io::Error::new(
                std::io::ErrorKind::WriteZero,
                "pwritev wrote nothing",
            ));
        }
        position += written as u64;
        let mut left = written as usize;
        while left > 0 && first < iovecs.len() {
            let iov = &mut iovecs[first];
            if left >= iov.iov_len {
                left -= iov.iov_len;
                first += 1;
            } else {
                // SAFETY: advancing within the same slice by less than its length.
                iov.iov_base = unsafe { (iov.iov_base as *mut u8).add(left) } as *mut libc::c_void;
                iov.iov_len -= left;
                left = 0;
            }
        }
    }
    Ok(())
}

fn first_record_at_or_after(
    batch: &[u8],
    header: &BatchHeader,
    timestamp: i64,
    min_offset: i64,
) -> Result<Option<(i64, i64)>> {
    let records = crate::batch::record_area(batch, header, usize::MAX >> 1)?;
    for record in RecordIter::new(&records, header.record_count.max(0) as usize) {
        let record = record?;
        let ts = header.base_timestamp.saturating_add(record.timestamp_delta);
        let offset = header.base_offset + i64::from(record.offset_delta);
        if ts >= timestamp && offset >= min_offset {
            return Ok(Some((offset, ts)));
        }
    }
    Ok(None)
}

/// Largest timestamp of the records of a CreateTime batch whose offset is at least
/// `min_offset`, -1 if none.
fn max_record_timestamp_from(batch: &[u8], header: &BatchHeader, min_offset: i64) -> Result<i64> {
    let records = crate::batch::record_area(batch, header, usize::MAX >> 1)?;
    let mut max = -1;
    for record in RecordIter::new(&records, header.record_count.max(0) as usize) {
        let record = record?;
        if header.base_offset + i64::from(record.offset_delta) >= min_offset {
            max = max.max(header.base_timestamp.saturating_add(record.timestamp_delta));
        }
    }
    Ok(max)
}

/// Walks batch headers through a segment file, reading in chunks so that stepping over
/// many small batches costs few system calls.
struct HeaderCursor<'a> {
    segment: &'a Segment,
    position: u64,
    end: u64,
    buf: Vec<u8>,
    buf_start: u64,
}

const CURSOR_CHUNK: u64 = 16 * 1024;

impl<'a> HeaderCursor<'a> {
    fn new(segment: &'a Segment, position: u64, end: u64) -> Self {
        HeaderCursor {
            segment,
            position,
            end,
            buf: Vec::new(),
            buf_start: 0,
        }
    }

    fn next(&mut self) -> Result<Option<(u64, BatchHeader)>> {
        if self.position + BATCH_HEADER_LEN as u64 > self.end {
            return Ok(None);
        }
        let buf_end = self.buf_start + self.buf.len() as u64;
        if self.position < self.buf_start || self.position + BATCH_HEADER_LEN as u64 > buf_end {
            let len = CURSOR_CHUNK
                .max(BATCH_HEADER_LEN as u64)
                .min(self.end - self.position);
            self.buf.resize(len as usize, 0);
            self.segment
                .file
                .read_exact_at(&mut self.buf, self.position)
                .map_err(|e| StorageError::io(&self.segment.log_path, e))?;
            self.buf_start = self.position;
        }
        let at = (self.position - self.buf_start) as usize;
        let header = BatchHeader::parse(&self.buf[at..])?;
        let size = header.total_size() as u64;
        if size < BATCH_HEADER_LEN as u64 || self.position + size > self.end {
            return Err(StorageError::CorruptMessage(format!(
                "{}: batch at {} has impossible length {size}",
                self.segment.log_path.display(),
                self.position
            )));
        }
        let position = self.position;
        self.position += size;
        Ok(Some((position, header)))
    }
}
