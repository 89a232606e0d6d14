//! Helpers shared by the storage integration tests: building batches, decoding what a read
//! returns into plain records, a brute-force model of the log, and directory utilities.
//!
//! Every test file uses a different subset, hence the `dead_code` allowance.
#![allow(dead_code)]

use std::path::{Path, PathBuf};

use sluice_storage::batch::{batch_size_at, BatchHeader, BATCH_HEADER_LEN};
use sluice_storage::record::RecordIter;
use sluice_storage::{
    BatchBuilder, Compression, LogConfig, PartitionLog, TimestampType, TopicPartition,
};

/// The five codecs of the record format.
pub const CODECS: [Compression; 5] = [
    Compression::None,
    Compression::Gzip,
    Compression::Snappy,
    Compression::Lz4,
    Compression::Zstd,
];

/// A header of a record: key and nullable value.
pub type Header = (Vec<u8>, Option<Vec<u8>>);

/// A record as a producer sends it (no offset yet).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Msg {
    pub key: Option<Vec<u8>>,
    pub value: Option<Vec<u8>>,
    pub headers: Vec<Header>,
    pub timestamp: i64,
}

impl Msg {
    /// A keyed record with a value and no headers.
    pub fn kv(key: &str, value: &str, timestamp: i64) -> Self {
        Msg {
            key: Some(key.as_bytes().to_vec()),
            value: Some(value.as_bytes().to_vec()),
            headers: Vec::new(),
            timestamp,
        }
    }

    /// A tombstone (null value) for `key`.
    pub fn tombstone(key: &str, timestamp: i64) -> Self {
        Msg {
            key: Some(key.as_bytes().to_vec()),
            value: None,
            headers: Vec::new(),
            timestamp,
        }
    }

    /// The record this message becomes at `offset`.
    pub fn at(&self, offset: i64) -> Rec {
        Rec {
            offset,
            key: self.key.clone(),
            value: self.value.clone(),
            headers: self.headers.clone(),
            timestamp: self.timestamp,
        }
    }
}

/// A record read back from the log.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rec {
    pub offset: i64,
    pub key: Option<Vec<u8>>,
    pub value: Option<Vec<u8>>,
    pub headers: Vec<Header>,
    pub timestamp: i64,
}

/// Encodes `msgs` as one v2 batch with `codec` (base offset 0; the log assigns offsets).
pub fn build_batch(msgs: &[Msg], codec: Compression) -> Vec<u8> {
    let mut b = BatchBuilder::new(0);
    b.compression(codec);
    for m in msgs {
        let headers: Vec<(&[u8], Option<&[u8]>)> = m
            .headers
            .iter()
            .map(|(k, v)| (k.as_slice(), v.as_deref()))
            .collect();
        b.push(m.key.as_deref(), m.value.as_deref(), &headers, m.timestamp);
    }
    b.build()
}

/// Splits bytes made of whole batches into `(header, batch bytes)`, asserting the framing is
/// exact (no partial batch at the end).
pub fn split_batches(bytes: &[u8]) -> Vec<(BatchHeader, Vec<u8>)> {
    let mut out = Vec::new();
    let mut pos = 0;
    while pos < bytes.len() {
        let size = batch_size_at(&bytes[pos..]).expect("a batch length field");
        assert!(
            pos + size <= bytes.len(),
            "partial batch in a read: {size} bytes at {pos} of {}",
            bytes.len()
        );
        let batch = &bytes[pos..pos + size];
        let header = BatchHeader::parse(batch).expect("a batch header");
        assert_eq!(header.magic, 2);
        assert_eq!(
            sluice_storage::batch::compute_crc(batch),
            header.crc,
            "a batch read back has a bad CRC"
        );
        out.push((header, batch.to_vec()));
        pos += size;
    }
    out
}

/// The records of one batch (header already parsed).
pub fn decode_batch(header: &BatchHeader, batch: &[u8]) -> Vec<Rec> {
    let codec = header.compression().expect("a known codec");
    let area = &batch[BATCH_HEADER_LEN..];
    let records = if codec == Compression::None {
        area.to_vec()
    } else {
        codec.decompress(area, 1 << 30).expect("decompressible")
    };
    let mut iter = RecordIter::new(&records, header.record_count as usize);
    let mut out = Vec::new();
    for r in iter.by_ref() {
        let r = r.expect("a well-formed record");
        let timestamp = match header.timestamp_type() {
            TimestampType::LogAppendTime => header.max_timestamp,
            TimestampType::CreateTime => header.base_timestamp.saturating_add(r.timestamp_delta),
        };
        out.push(Rec {
            offset: header.base_offset + i64::from(r.offset_delta),
            key: r.key.map(<[u8]>::to_vec),
            value: r.value.map(<[u8]>::to_vec),
            headers: r
                .headers
                .iter()
                .map(|(k, v)| (k.to_vec(), v.map(<[u8]>::to_vec)))
                .collect(),
            timestamp,
        });
    }
    assert!(iter.fully_consumed(), "record area not fully consumed");
    out
}

/// Every record in bytes made of whole batches.
pub fn decode_batches(bytes: &[u8]) -> Vec<Rec> {
    split_batches(bytes)
        .iter()
        .flat_map(|(h, b)| decode_batch(h, b))
        .collect()
}

/// Reads everything from `offset` to the log end, `max_bytes` per read, and returns the
/// records at or after `offset`. Checks that each read starts with the batch holding (or
/// first following) the cursor and that reads make progress.
pub fn read_from(log: &PartitionLog, offset: i64, max_bytes: usize) -> Vec<Rec> {
    let mut cursor = offset;
    let mut out: Vec<Rec> = Vec::new();
    loop {
        let result = log.read(cursor, max_bytes).expect("read");
        let Some(slice) = result.slice else { break };
        let bytes = slice.to_bytes().expect("slice bytes");
        assert!(!bytes.is_empty(), "a read returned an empty slice");
        let batches = split_batches(&bytes);
        let first = &batches[0].0;
        assert!(
            first.last_offset() >= cursor,
            "read at {cursor} returned a batch ending at {}",
            first.last_offset()
        );
        let last = batches.last().expect("a batch").0.last_offset();
        for (h, b) in &batches {
            out.extend(
                decode_batch(h, b)
                    .into_iter()
                    .filter(|r| r.offset >= offset),
            );
        }
        cursor = last + 1;
    }
    for w in out.windows(2) {
        assert!(w[0].offset < w[1].offset, "offsets not increasing: {w:?}");
    }
    out
}

/// Every record from the log start on.
pub fn read_all(log: &PartitionLog) -> Vec<Rec> {
    read_from(log, log.log_start_offset(), 1 << 20)
}

/// First record (by offset) at or after `log_start` whose timestamp is at least `ts`.
pub fn model_offset_for_timestamp(recs: &[Rec], log_start: i64, ts: i64) -> Option<(i64, i64)> {
    recs.iter()
        .filter(|r| r.offset >= log_start)
        .find(|r| r.timestamp >= ts)
        .map(|r| (r.offset, r.timestamp))
}

/// Checks `offset_for_timestamp` for every timestamp in `recs`, its neighbours and the
/// extremes, and `max_timestamp_offset`, against the model.
pub fn check_timestamp_lookups(log: &PartitionLog, recs: &[Rec]) {
    let start = log.log_start_offset();
    let mut targets: Vec<i64> = recs
        .iter()
        .flat_map(|r| {
            [
                r.timestamp.saturating_sub(1),
                r.timestamp,
                r.timestamp.saturating_add(1),
            ]
        })
        .collect();
    targets.extend([-1, 0, i64::MAX]);
    targets.sort_unstable();
    targets.dedup();
    for ts in targets {
        assert_eq!(
            log.offset_for_timestamp(ts).expect("offset_for_timestamp"),
            model_offset_for_timestamp(recs, start, ts),
            "offset_for_timestamp({ts})"
        );
    }
    let live: Vec<&Rec> = recs.iter().filter(|r| r.offset >= start).collect();
    let expected_max = live
        .iter()
        .map(|r| r.timestamp)
        .max()
        .and_then(|max| live.iter().find(|r| r.timestamp == max))
        .map(|r| (r.offset, r.timestamp));
    assert_eq!(
        log.max_timestamp_offset().expect("max_timestamp_offset"),
        expected_max,
        "max_timestamp_offset"
    );
}

/// The partition every test uses.
pub fn tp() -> TopicPartition {
    TopicPartition::new("t", 0)
}

/// A delete-policy config with small segments and a dense index.
pub fn small_config(segment_bytes: u64, index_interval_bytes: u64) -> LogConfig {
    LogConfig {
        segment_bytes,
        index_interval_bytes,
        ..LogConfig::default()
    }
}

/// Opens the log in `dir` at a fixed clock.
pub fn open(dir: &Path, config: LogConfig, clean: bool) -> PartitionLog {
    PartitionLog::open(dir, tp(), config, clean, 1_000).expect("open log")
}

/// Appends `msgs` as one batch and checks the offsets it was given.
pub fn append(log: &PartitionLog, msgs: &[Msg], codec: Compression) -> Vec<Rec> {
    append_at(log, msgs, codec, 1_000)
}

/// [`append`] with the broker clock at `now_ms`.
pub fn append_at(log: &PartitionLog, msgs: &[Msg], codec: Compression, now_ms: i64) -> Vec<Rec> {
    let batch = build_batch(msgs, codec);
    let expected = log.log_end_offset();
    let info = log.append(&batch, now_ms).expect("append");
    assert_eq!(info.base_offset, expected);
    assert_eq!(info.last_offset, expected + msgs.len() as i64 - 1);
    msgs.iter()
        .enumerate()
        .map(|(i, m)| m.at(expected + i as i64))
        .collect()
}

/// Copies the files of `from` (not recursive) into a new directory `to`.
pub fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).expect("create dir");
    for entry in std::fs::read_dir(from).expect("read dir") {
        let entry = entry.expect("dir entry");
        if entry.file_type().expect("file type").is_file() {
            std::fs::copy(entry.path(), to.join(entry.file_name())).expect("copy file");
        }
    }
}

/// Names of the files in `dir`, sorted.
pub fn file_names(dir: &Path) -> Vec<String> {
    let mut names: Vec<String> = std::fs::read_dir(dir)
        .expect("read dir")
        .map(|e| e.expect("entry").file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    names
}

/// Base offsets of the `.log` files in `dir`, sorted.
pub fn log_file_bases(dir: &Path) -> Vec<i64> {
    file_names(dir)
        .iter()
        .filter_map(|n| n.strip_suffix(".log"))
        .filter_map(|s| s.parse().ok())
        .collect()
}

/// Path of a segment file: `<20-digit base>.<ext>`.
pub fn seg_path(dir: &Path, base: i64, ext: &str) -> PathBuf {
    dir.join(format!("{base:020}.{ext}"))
}

/// A deterministic filler value of `len` bytes that depends on `seed`.
pub fn filler(seed: u64, len: usize) -> Vec<u8> {
    let mut x = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
    (0..len)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x as u8
        })
        .collect()
}
