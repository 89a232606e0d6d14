//! Snapshots of a partition's producer and transaction state, so a start does not have to
//! walk every batch of a long log, and producers whose batches retention removed are still
//! known after a restart (as Kafka's `.snapshot` files do).
//!
//! `<offset>.snapshot` (offset zero-padded to 20 digits, as segment names) holds the state
//! as of `offset`: every producer (epoch, last timestamp, recent batches, the first offset
//! of its open transaction) and the aborted transactions. Layout, big-endian:
//! `"SLPS"`, version u16 (1), CRC-32C u32 of everything after it, offset i64, producer
//! count u32, per producer: id i64, epoch i16, last timestamp i64, coordinator epoch i32,
//! open transaction first offset i64 (-1: none), batch count u8, per batch: first seq i32, last seq i32, base
//! offset i64, last offset i64; then aborted count u32, per aborted transaction: producer
//! i64, first offset i64, last offset i64.
//!
//! Written through a temp file and rename when a segment rolls and on a clean close; the
//! two newest are kept. On open the newest snapshot at or below the log end whose checksum
//! holds is used and the batches from its offset on are replayed; a damaged or too new one
//! (the log was cut by recovery) is removed and the next older one (or a full walk) used.

use std::collections::{HashMap, VecDeque};
use std::path::{Path, PathBuf};

use bytes::{Buf, BufMut};

use crate::error::{Result, StorageError};
use crate::producer_state::{BatchMetadata, ProducerEntry, ProducerStateTable};
use crate::segment::segment_file_name;
use crate::transactions::{AbortedTxn, TransactionTable};

/// Extension of snapshot files.
pub const SNAPSHOT_EXT: &str = "snapshot";
const MAGIC: &[u8; 4] = b"SLPS";
const VERSION: u16 = 1;
/// Snapshots kept after writing a new one.
const KEEP: usize = 2;

/// State restored from a snapshot.
#[derive(Debug, Default)]
pub struct Snapshot {
    /// The offset the state is as of: batches from here on are replayed.
    pub offset: i64,
    /// Producer entries.
    pub producers: ProducerStateTable,
    /// Open and aborted transactions.
    pub txns: TransactionTable,
}

fn path_of(dir: &Path, offset: i64) -> PathBuf {
    dir.join(segment_file_name(offset, SNAPSHOT_EXT))
}

/// Offsets of the snapshots in `dir`, oldest first.
fn list(dir: &Path) -> Result<Vec<i64>> {
    let mut offsets = Vec::new();
    for entry in std::fs::read_dir(dir).map_err(|e| StorageError::io(dir, e))? {
        let entry = entry.map_err(|e| StorageError::io(dir, e))?;
        let name = entry.file_name().to_string_lossy().into_owned();
        if let Some(stem) = name.strip_suffix(&format!(".{SNAPSHOT_EXT}")) {
            if let (20, Ok(offset)) = (stem.len(), stem.parse()) {
                offsets.push(offset);
            }
        }
    }
    offsets.sort_unstable();
    Ok(offsets)
}

/// Writes the state as of `offset` and removes all but the newest snapshots.
pub fn write(
    dir: &Path,
    offset: i64,
    producers: &ProducerStateTable,
    txns: &TransactionTable,
) -> Result<()> {
    let open: HashMap<i64, i64> = txns.open_transactions().into_iter().collect();
    let mut body = Vec::new();
    body.put_i64(offset);
    body.put_u32(producers.len() as u32);
    for (id, entry) in producers.entries() {
        body.put_i64(id);
        body.put_i16(entry.epoch);
        body.put_i64(entry.last_timestamp);
        body.put_i32(entry.coordinator_epoch);
        body.put_i64(open.get(&id).copied().unwrap_or(-1));
        body.put_u8(entry.batches.len() as u8);
        for b in &entry.batches {
            body.put_i32(b.first_seq);
            body.put_i32(b.last_seq);
            body.put_i64(b.base_offset);
            body.put_i64(b.last_offset);
        }
    }
    // Open transactions of producers without an entry cannot happen (a transactional batch
    // creates the entry), so they need no list of their own.
    let aborted: Vec<&AbortedTxn> = txns.aborted().collect();
    body.put_u32(aborted.len() as u32);
    for t in aborted {
        body.put_i64(t.producer_id);
        body.put_i64(t.first_offset);
        body.put_i64(t.last_offset);
    }
    let mut file = Vec::with_capacity(body.len() + 10);
    file.put_slice(MAGIC);
    file.put_u16(VERSION);
    file.put_u32(crc_fast::crc32_iscsi(&body));
    file.put_slice(&body);
    crate::checkpoint::write_atomically(&path_of(dir, offset), &file)?;
    let offsets = list(dir)?;
    for old in offsets.iter().rev().skip(KEEP) {
        remove(dir, *old);
    }
    Ok(())
}

fn remove(dir: &Path, offset: i64) {
    let path = path_of(dir, offset);
    if let Err(e) = std::fs::remove_file(&path) {
        if e.kind() != std::io::ErrorKind::NotFound {
            tracing::warn!(file = %path.display(), error = %e, "cannot remove a snapshot");
        }
    }
}

/// The newest usable snapshot at or below `log_end`, removing those past it or damaged.
pub fn load(dir: &Path, log_end: i64) -> Result<Option<Snapshot>> {
    for offset in list(dir)?.into_iter().rev() {
        if offset > log_end {
            tracing::info!(dir = %dir.display(), offset, log_end, "removing a snapshot past the log end");
            remove(dir, offset);
            continue;
        }
        let path = path_of(dir, offset);
        let bytes = std::fs::read(&path).map_err(|e| StorageError::io(&path, e))?;
        match decode(&bytes) {
            Some(snapshot) if snapshot.offset == offset => return Ok(Some(snapshot)),
            _ => {
                tracing::warn!(file = %path.display(), "removing a damaged producer snapshot");
                remove(dir, offset);
            }
        }
    }
    Ok(None)
}

fn decode(bytes: &[u8]) -> Option<Snapshot> {
    let mut b = bytes;
    if b.remaining() < 10 || &b[..4] != MAGIC {
        return None;
    }
    b.advance(4);
    if b.get_u16() != VERSION {
        return None;
    }
    let crc = b.get_u32();
    if crc_fast::crc32_iscsi(b) != crc {
        return None;
    }
    let need = |b: &&[u8], n: usize| (b.remaining() >= n).then_some(());
    need(&b, 12)?;
    let offset = b.get_i64();
    let producers = b.get_u32();
    let mut snapshot = Snapshot {
        offset,
        ..Default::default()
    };
    let mut open = Vec::new();
    for _ in 0..producers {
        need(&b, 8 + 2 + 8 + 4 + 8 + 1)?;
        let id = b.get_i64();
        let epoch = b.get_i16();
        let last_timestamp = b.get_i64();
        let coordinator_epoch = b.get_i32();
        let open_first = b.get_i64();
        let count = b.get_u8();
        let mut batches = VecDeque::new();
        for _ in 0..count {
            need(&b, 24)?;
            batches.push_back(BatchMetadata {
                first_seq: b.get_i32(),
                last_seq: b.get_i32(),
                base_offset: b.get_i64(),
                last_offset: b.get_i64(),
            });
        }
        if open_first >= 0 {
            open.push((id, open_first));
        }
        snapshot.producers.restore(
            id,
            ProducerEntry {
                epoch,
                batches,
                last_timestamp,
                coordinator_epoch,
            },
        );
    }
    need(&b, 4)?;
    let count = b.get_u32();
    let mut aborted = Vec::new();
    for _ in 0..count {
        need(&b, 24)?;
        aborted.push(AbortedTxn {
            producer_id: b.get_i64(),
            first_offset: b.get_i64(),
            last_offset: b.get_i64(),
        });
    }
    snapshot.txns.restore(&open, &aborted);
    Some(snapshot)
}
