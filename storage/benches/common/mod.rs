//! The workload shared by the `log` criterion bench and the `storage_bench` example, so both
//! measure the same thing: 1 KiB records, 16 to a batch (16 KiB of records per batch).
//!
//! Included by `benches/log.rs` as `mod common;` and by `examples/storage_bench.rs` through
//! `#[path]`. Cargo does not treat `benches/common/mod.rs` as a bench target of its own.

use sluice_storage::batch::{batch_size_at, BatchHeader, BATCH_HEADER_LEN};
use sluice_storage::{BatchBuilder, Compression};

/// Size of one record as encoded in the batch (length prefix, fields, key and value).
pub const RECORD_BYTES: usize = 1024;
/// Records per batch: 16 x 1 KiB = 16 KiB of records, a typical producer `batch.size`.
pub const RECORDS_PER_BATCH: usize = 16;
/// Key length; keys are `key-0000`, `key-0001`, ...
const KEY_BYTES: usize = 8;
/// Encoding overhead of a record with an 8-byte key, no headers and a timestamp delta of 0,
/// apart from its offset delta: length(2) + attributes(1) + timestamp delta(1)
/// + key length(1) + value length(2) + header count(1).
const RECORD_OVERHEAD: usize = 8;

/// Value length that makes record `i` of a batch encode to exactly [`RECORD_BYTES`]: the
/// zig-zag varint of its offset delta takes 1 byte below 64, 2 bytes below 8192.
fn value_bytes(i: usize) -> usize {
    let delta_len = if i < 64 { 1 } else { 2 };
    RECORD_BYTES - RECORD_OVERHEAD - delta_len - KEY_BYTES
}

/// Size of an uncompressed batch of the workload: 61-byte header + 16 KiB of records.
pub const BATCH_BYTES: usize = BATCH_HEADER_LEN + RECORD_BYTES * RECORDS_PER_BATCH;

/// Largest number of 1 KiB records a batch may hold under the default `max.message.bytes`.
pub const MAX_RECORDS_PER_BATCH: usize = 1023;

/// Words the record values are made of: values look like log lines or JSON text and
/// compress about 2:1 with lz4 and 3:1 with zstd, as real payloads do. Uncompressed
/// batches do not care what the bytes are.
const WORDS: &[&str] = &[
    "order",
    "user",
    "id",
    "status",
    "created",
    "amount",
    "EUR",
    "shipped",
    "pending",
    "\"sku\":",
    "\"qty\":",
    "warehouse",
    "berlin",
    "paris",
    "lisbon",
    "retry",
    "ok",
    "error",
    "session",
    "click",
    "view",
    "cart",
    "payment",
    "refund",
    "{",
    "}",
    ",",
    ":",
    "true",
    "false",
    "null",
    "2024-05-01T12:00:00Z",
];

/// A small xorshift generator: deterministic values without another dev-dependency.
struct XorShift(u64);

impl XorShift {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
}

/// A text-like value of exactly `len` bytes: words and numbers picked by `seed`.
fn value(seed: u64, len: usize) -> Vec<u8> {
    let mut rng = XorShift(seed.wrapping_mul(0x9e37_79b9_7f4a_7c15) | 1);
    let mut out = Vec::with_capacity(len + 32);
    while out.len() < len {
        let r = rng.next();
        if r % 4 == 0 {
            out.extend_from_slice(((r >> 8) % 100_000).to_string().as_bytes());
        } else {
            out.extend_from_slice(WORDS[(r >> 8) as usize % WORDS.len()].as_bytes());
        }
        out.push(b' ');
    }
    out.truncate(len);
    out
}

/// One batch of the workload (16 records of 1 KiB) compressed with `codec`, all records
/// stamped `timestamp`. The same batch is appended over and over: `PartitionLog::append`
/// assigns offsets in a copy of the header and leaves its input as it is.
pub fn template_batch(codec: Compression, timestamp: i64) -> Vec<u8> {
    template_batch_of(RECORDS_PER_BATCH, codec, timestamp)
}

/// Like [`template_batch`] with `records` records of 1 KiB (at most
/// [`MAX_RECORDS_PER_BATCH`]), to see how the batch size changes the figures.
pub fn template_batch_of(records: usize, codec: Compression, timestamp: i64) -> Vec<u8> {
    assert!((1..=MAX_RECORDS_PER_BATCH).contains(&records));
    let values: Vec<Vec<u8>> = (0..records)
        .map(|i| value(i as u64 + 1, value_bytes(i)))
        .collect();
    let keys: Vec<String> = (0..records).map(|i| format!("key-{i:04}")).collect();
    let mut builder = BatchBuilder::new(0);
    builder.compression(codec);
    for (key, value) in keys.iter().zip(&values) {
        builder.push(Some(key.as_bytes()), Some(value), &[], timestamp);
    }
    let batch = builder.build();
    if codec == Compression::None {
        let expected = BATCH_HEADER_LEN + RECORD_BYTES * records;
        assert_eq!(batch.len(), expected, "records must encode to 1 KiB each");
    }
    batch
}

/// The offset after the last batch in `bytes` (whole batches, as a fetch returns them):
/// what a consumer asks for next. `None` if `bytes` holds no complete batch header.
pub fn next_offset_after(bytes: &[u8]) -> Option<i64> {
    let mut position = 0;
    let mut last = None;
    while let Some(size) = batch_size_at(&bytes[position..]) {
        if size < BATCH_HEADER_LEN || position + size > bytes.len() {
            break;
        }
        last = Some(position);
        position += size;
    }
    let header = BatchHeader::parse(&bytes[last?..]).ok()?;
    Some(header.last_offset() + 1)
}
