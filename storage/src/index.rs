//! Sparse per-segment indexes: `.index` (relative offset -> file position) and `.timeindex`
//! (largest timestamp so far -> relative offset), in Kafka's on-disk entry layouts.
//!
//! Entries live in memory for lookups and are written to their file lazily (on flush, roll
//! and close); recovery rebuilds whatever the file is missing, so a lost tail of an index is
//! never a correctness problem.

use std::fs::{File, OpenOptions};
use std::io::{Read, Write};
use std::path::{Path, PathBuf};

use parking_lot::{Mutex, RwLock};

use crate::error::{Result, StorageError};

/// One kind of index entry and its fixed-size big-endian encoding.
pub trait IndexEntry: Copy + std::fmt::Debug {
    /// Encoded size in bytes.
    const SIZE: usize;
    /// Appends the encoding to `out`.
    fn encode(&self, out: &mut Vec<u8>);
    /// Decodes from exactly `SIZE` bytes.
    fn decode(bytes: &[u8]) -> Self;
    /// The key entries are sorted by, strictly increasing through the file.
    fn key(&self) -> i64;
    /// Relative offset the entry points at.
    fn relative_offset(&self) -> u32;
}

/// `.index` entry: the batch starting at `position` has base offset `base + relative_offset`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct OffsetEntry {
    /// Base offset of the batch, relative to the segment's base offset.
    pub relative_offset: u32,
    /// Byte position of the batch in the `.log` file.
    pub position: u32,
}

impl IndexEntry for OffsetEntry {
    const SIZE: usize = 8;
    fn encode(&self, out: &mut Vec<u8>) {
        out.extend_from_slice(&self.relative_offset.to_be_bytes());
        out.extend_from_slice(&self.position.to_be_bytes());
    }
    fn decode(b: &[u8]) -> Self {
        OffsetEntry {
            relative_offset: u32::from_be_bytes([b[0], b[1], b[2], b[3]]),
            position: u32::from_be_bytes([b[4], b[5], b[6], b[7]]),
        }
    }
    fn key(&self) -> i64 {
        i64::from(self.relative_offset)
    }
    fn relative_offset(&self) -> u32 {
        self.relative_offset
    }
}

/// `.timeindex` entry: every record up to and including the batch at `relative_offset` has a
/// timestamp no larger than `timestamp`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TimeEntry {
    /// Largest timestamp seen in the segment up to this batch.
    pub timestamp: i64,
    /// Base offset of that batch, relative to the segment's base offset.
    pub relative_offset: u32,
}

impl IndexEntry for TimeEntry {
    const SIZE: usize = 12;
    fn encode(&self, out: &mut Vec<u8>) {
        out.extend_from_slice(&self.timestamp.to_be_bytes());
        out.extend_from_slice(&self.relative_offset.to_be_bytes());
    }
    fn decode(b: &[u8]) -> Self {
        TimeEntry {
            timestamp: i64::from_be_bytes(b[0..8].try_into().expect("8 bytes")),
            relative_offset: u32::from_be_bytes([b[8], b[9], b[10], b[11]]),
        }
    }
    fn key(&self) -> i64 {
        self.timestamp
    }
    fn relative_offset(&self) -> u32 {
        self.relative_offset
    }
}

/// A sorted, append-only sparse index backed by a file.
#[derive(Debug)]
pub struct SparseIndex<E: IndexEntry> {
    path: PathBuf,
    entries: RwLock<Vec<E>>,
    /// How many leading entries the file already holds.
    persisted: Mutex<usize>,
}

impl<E: IndexEntry> SparseIndex<E> {
    /// An empty index that will be written to `path` (any existing file is replaced).
    pub fn create(path: &Path) -> Result<Self> {
        File::create(path).map_err(|e| StorageError::io(path, e))?;
        Ok(SparseIndex {
            path: path.to_path_buf(),
            entries: RwLock::new(Vec::new()),
            persisted: Mutex::new(0),
        })
    }

    /// Loads the index at `path`, keeping the longest prefix of entries that is sorted and
    /// accepted by `valid`. Returns the index and whether the whole file was usable
    /// (false when it was missing, had a torn entry or an invalid entry).
    pub fn load(path: &Path, valid: impl Fn(&E) -> bool) -> Result<(Self, bool)> {
        let mut bytes = Vec::new();
        let intact = match File::open(path) {
            Ok(mut f) => {
                f.read_to_end(&mut bytes)
                    .map_err(|e| StorageError::io(path, e))?;
                bytes.len() % E::SIZE == 0
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => false,
            Err(e) => return Err(StorageError::io(path, e)),
        };
        let mut entries: Vec<E> = Vec::with_capacity(bytes.len() / E::SIZE);
        let mut all_valid = intact;
        for chunk in bytes.chunks_exact(E::SIZE) {
            let entry = E::decode(chunk);
            let sorted = entries.last().is_none_or(|last| entry.key() > last.key());
            if !sorted || !valid(&entry) {
                all_valid = false;
                break;
            }
            entries.push(entry);
        }
        let index = SparseIndex {
            path: path.to_path_buf(),
            persisted: Mutex::new(if all_valid { entries.len() } else { 0 }),
            entries: RwLock::new(entries),
        };
        if !all_valid {
            index.rewrite()?;
        }
        Ok((index, all_valid))
    }

    /// Adds an entry; ignored unless its key is larger than the last entry's.
    pub fn append(&self, entry: E) {
        let mut entries = self.entries.write();
        if entries.last().is_none_or(|last| entry.key() > last.key()) {
            entries.push(entry);
        }
    }

    /// The last entry whose key is at most `key`.
    pub fn floor(&self, key: i64) -> Option<E> {
        let entries = self.entries.read();
        let idx = entries.partition_point(|e| e.key() <= key);
        idx.checked_sub(1).map(|i| entries[i])
    }

    /// The last entry whose key is strictly below `key`.
    pub fn lower(&self, key: i64) -> Option<E> {
        self.floor(key.saturating_sub(1))
    }

    /// The last entry satisfying a predicate that holds for a prefix of the entries.
    pub fn last_where(&self, pred: impl Fn(&E) -> bool) -> Option<E> {
        let entries = self.entries.read();
        let idx = entries.partition_point(pred);
        idx.checked_sub(1).map(|i| entries[i])
    }

    /// The newest entry.
    pub fn last(&self) -> Option<E> {
        self.entries.read().last().copied()
    }

    /// Number of entries.
    pub fn len(&self) -> usize {
        self.entries.read().len()
    }

    /// True when there is no entry.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Drops every entry for which `keep` is false from the first such entry on, and
    /// rewrites the file.
    pub fn truncate_from(&self, keep: impl Fn(&E) -> bool) -> Result<()> {
        {
            let mut entries = self.entries.write();
            let idx = entries
                .iter()
                .position(|e| !keep(e))
                .unwrap_or(entries.len());
            if idx == entries.len() {
                return Ok(());
            }
            entries.truncate(idx);
        }
        self.rewrite()
    }

    /// Writes entries the file does not hold yet; with `sync`, also fsyncs the file.
    pub fn persist(&self, sync: bool) -> Result<()> {
        let mut persisted = self.persisted.lock();
        let mut buf = Vec::new();
        let total = {
            let entries = self.entries.read();
            for e in &entries[*persisted..] {
                e.encode(&mut buf);
            }
            entries.len()
        };
        if buf.is_empty() && !sync {
            return Ok(());
        }
        let mut file = OpenOptions::new()
            .append(true)
            .create(true)
            .open(&self.path)
            .map_err(|e| StorageError::io(&self.path, e))?;
        if let Err(e) = file.write_all(&buf) {
            // A short write (full disk) would leave a torn entry that later appends misalign:
            // cut the file back to the whole entries it held.
            let _ = file.set_len((*persisted * E::SIZE) as u64);
            return Err(StorageError::io(&self.path, e));
        }
        if sync {
            file.sync_data()
                .map_err(|e| StorageError::io(&self.path, e))?;
        }
        *persisted = total;
        Ok(())
    }

    /// Replaces the file with exactly the in-memory entries.
    fn rewrite(&self) -> Result<()> {
        let mut persisted = self.persisted.lock();
        let mut buf = Vec::new();
        let entries = self.entries.read();
        for e in entries.iter() {
            e.encode(&mut buf);
        }
        if let Err(e) = std::fs::write(&self.path, &buf) {
            // The file may hold part of the entries: empty it, so the next `persist` writes
            // them all from the start.
            let _ = OpenOptions::new()
                .write(true)
                .open(&self.path)
                .and_then(|f| f.set_len(0));
            *persisted = 0;
            return Err(StorageError::io(&self.path, e));
        }
        *persisted = entries.len();
        Ok(())
    }

    /// Renames the file (the segment moves from `.cleaned`/`.swap` to its final name).
    pub fn rename(&mut self, to: &Path) -> Result<()> {
        std::fs::rename(&self.path, to).map_err(|e| StorageError::io(&self.path, e))?;
        self.path = to.to_path_buf();
        Ok(())
    }

    /// Path of the index file.
    pub fn path(&self) -> &Path {
        &self.path
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn floor_and_persist_round_trip() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("x.index");
        let idx = SparseIndex::<OffsetEntry>::create(&path).unwrap();
        for i in 0..10u32 {
            idx.append(OffsetEntry {
                relative_offset: i * 10,
                position: i * 100,
            });
        }
        assert_eq!(idx.floor(35).unwrap().position, 300);
        assert_eq!(idx.floor(-1), None);
        assert_eq!(idx.lower(30).unwrap().relative_offset, 20);
        idx.persist(true).unwrap();
        let (loaded, ok) = SparseIndex::<OffsetEntry>::load(&path, |_| true).unwrap();
        assert!(ok);
        assert_eq!(loaded.len(), 10);
    }

    #[test]
    fn invalid_entries_and_torn_tails_are_cut_off() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("x.index");
        let idx = SparseIndex::<OffsetEntry>::create(&path).unwrap();
        for i in 0..10u32 {
            idx.append(OffsetEntry {
                relative_offset: i,
                position: i * 100,
            });
        }
        idx.persist(false).unwrap();
        let (loaded, ok) = SparseIndex::<OffsetEntry>::load(&path, |e| e.position < 450).unwrap();
        assert!(!ok);
        assert_eq!(loaded.len(), 5);
        // The file was rewritten to the valid prefix.
        assert_eq!(std::fs::metadata(&path).unwrap().len(), 40);
        let mut bytes = std::fs::read(&path).unwrap();
        bytes.extend_from_slice(&[1, 2, 3]);
        std::fs::write(&path, bytes).unwrap();
        let (loaded, ok) = SparseIndex::<OffsetEntry>::load(&path, |_| true).unwrap();
        assert!(!ok);
        assert_eq!(loaded.len(), 5);
    }
}
