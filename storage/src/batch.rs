//! The Kafka v2 record batch: header layout, validation of what a producer sent, and the
//! in-place rewrites the log makes (base offset, LogAppendTime).
//!
//! Layout (big endian):
//! ```text
//!  0 baseOffset i64        8 batchLength i32      12 partitionLeaderEpoch i32
//! 16 magic i8             17 crc u32 (CRC-32C of bytes 21..end)
//! 21 attributes i16       23 lastOffsetDelta i32 27 baseTimestamp i64
//! 35 maxTimestamp i64     43 producerId i64      51 producerEpoch i16
//! 53 baseSequence i32     57 recordCount i32     61 records...
//! ```

use crate::compression::Compression;
use crate::error::{Result, StorageError};
use crate::record::{Record, RecordIter};

/// Bytes before the records of a batch.
pub const BATCH_HEADER_LEN: usize = 61;
/// Bytes of a batch before (and including) the batchLength field.
pub const LOG_OVERHEAD: usize = 12;
/// Offset of the CRC-covered area.
const CRC_START: usize = 21;

const ATTR_COMPRESSION_MASK: i16 = 0x07;
const ATTR_LOG_APPEND_TIME: i16 = 0x08;
const ATTR_TRANSACTIONAL: i16 = 0x10;
const ATTR_CONTROL: i16 = 0x20;

/// How the timestamps of a batch were assigned.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TimestampType {
    /// Set by the producer.
    CreateTime,
    /// Set by the broker when the batch was appended.
    LogAppendTime,
}

/// The fixed-size header of a v2 record batch, decoded.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BatchHeader {
    /// Offset of the first record.
    pub base_offset: i64,
    /// Bytes after the batchLength field (whole batch = 12 + batch_length).
    pub batch_length: i32,
    /// Leader epoch of the partition when appended.
    pub partition_leader_epoch: i32,
    /// Format version; only 2 is accepted.
    pub magic: i8,
    /// Stored CRC-32C.
    pub crc: u32,
    /// Codec, timestamp type, transactional and control flags.
    pub attributes: i16,
    /// Offset of the last record relative to `base_offset`.
    pub last_offset_delta: i32,
    /// Timestamp of the first record.
    pub base_timestamp: i64,
    /// Largest timestamp in the batch (or the append time for LogAppendTime).
    pub max_timestamp: i64,
    /// Idempotent/transactional producer id, -1 if none.
    pub producer_id: i64,
    /// Producer epoch, -1 if none.
    pub producer_epoch: i16,
    /// Sequence number of the first record, -1 if none.
    pub base_sequence: i32,
    /// Number of records the batch declares.
    pub record_count: i32,
}

fn be_i64(b: &[u8], at: usize) -> i64 {
    i64::from_be_bytes(b[at..at + 8].try_into().expect("8 bytes"))
}
fn be_i32(b: &[u8], at: usize) -> i32 {
    i32::from_be_bytes(b[at..at + 4].try_into().expect("4 bytes"))
}
fn be_i16(b: &[u8], at: usize) -> i16 {
    i16::from_be_bytes(b[at..at + 2].try_into().expect("2 bytes"))
}

impl BatchHeader {
    /// Decodes the header from the first [`BATCH_HEADER_LEN`] bytes of `buf`.
    pub fn parse(buf: &[u8]) -> Result<Self> {
        if buf.len() < BATCH_HEADER_LEN {
            return Err(StorageError::CorruptMessage(format!(
                "record batch of {} bytes is shorter than the {BATCH_HEADER_LEN}-byte header",
                buf.len()
            )));
        }
        Ok(BatchHeader {
            base_offset: be_i64(buf, 0),
            batch_length: be_i32(buf, 8),
            partition_leader_epoch: be_i32(buf, 12),
            magic: buf[16] as i8,
            crc: be_i32(buf, 17) as u32,
            attributes: be_i16(buf, 21),
            last_offset_delta: be_i32(buf, 23),
            base_timestamp: be_i64(buf, 27),
            max_timestamp: be_i64(buf, 35),
            producer_id: be_i64(buf, 43),
            producer_epoch: be_i16(buf, 51),
            base_sequence: be_i32(buf, 53),
            record_count: be_i32(buf, 57),
        })
    }

    /// Size of the whole batch in bytes, including the offset and length fields.
    pub fn total_size(&self) -> usize {
        LOG_OVERHEAD + self.batch_length.max(0) as usize
    }

    /// Offset of the last record.
    pub fn last_offset(&self) -> i64 {
        self.base_offset + i64::from(self.last_offset_delta)
    }

    /// Compression codec of the records.
    pub fn compression(&self) -> Result<Compression> {
        Compression::from_id((self.attributes & ATTR_COMPRESSION_MASK) as u8)
    }

    /// Whether timestamps are the producer's or the broker's.
    pub fn timestamp_type(&self) -> TimestampType {
        if self.attributes & ATTR_LOG_APPEND_TIME != 0 {
            TimestampType::LogAppendTime
        } else {
            TimestampType::CreateTime
        }
    }

    /// True for batches written inside a transaction.
    pub fn is_transactional(&self) -> bool {
        self.attributes & ATTR_TRANSACTIONAL != 0
    }

    /// True for transaction markers (commit/abort), which carry no user data.
    pub fn is_control(&self) -> bool {
        self.attributes & ATTR_CONTROL != 0
    }
}

/// Reads the total size of the batch starting at `buf[0]` from its length field, if the
/// field is there. Used to split a buffer into batches before validating each.
pub fn batch_size_at(buf: &[u8]) -> Option<usize> {
    if buf.len() < LOG_OVERHEAD {
        return None;
    }
    let len = be_i32(buf, 8);
    (len >= 0).then(|| LOG_OVERHEAD + len as usize)
}

/// Computes the CRC-32C a batch should carry.
pub fn compute_crc(batch: &[u8]) -> u32 {
    crc_fast::crc32_iscsi(&batch[CRC_START..])
}

/// Bounds applied to each batch a producer appends.
#[derive(Debug, Clone, Copy)]
pub struct ValidationLimits {
    /// Largest batch accepted (`max.message.bytes`).
    pub max_batch_bytes: usize,
    /// Largest decompressed record area accepted (guards against compression bombs).
    pub max_decompressed_bytes: usize,
    /// How far in the past a CreateTime timestamp may be (`message.timestamp.before.max.ms`).
    pub timestamp_before_max_ms: i64,
    /// How far in the future a CreateTime timestamp may be (`message.timestamp.after.max.ms`).
    pub timestamp_after_max_ms: i64,
    /// Whether every record must have a key (compacted topics).
    pub require_keys: bool,
}

impl Default for ValidationLimits {
    fn default() -> Self {
        ValidationLimits {
            max_batch_bytes: 1_048_588,
            max_decompressed_bytes: 256 * 1024 * 1024,
            timestamp_before_max_ms: i64::MAX,
            timestamp_after_max_ms: i64::MAX,
            require_keys: false,
        }
    }
}

/// What validation learned about a batch; the log uses it to assign offsets and index.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ValidatedBatch {
    /// The header as the producer sent it.
    pub header: BatchHeader,
    /// Largest record timestamp actually found in the records.
    pub max_record_timestamp: i64,
}

/// Validates one producer batch occupying all of `batch`: length, magic, CRC-32C, codec,
/// record framing and count, consecutive offset deltas, timestamps and (if required) keys.
/// `now_ms` is the broker's clock for timestamp bounds.
pub fn validate(batch: &[u8], limits: &ValidationLimits, now_ms: i64) -> Result<ValidatedBatch> {
    if batch.len() > limits.max_batch_bytes {
        return Err(StorageError::MessageTooLarge {
            size: batch.len(),
            limit: limits.max_batch_bytes,
        });
    }
    let header = BatchHeader::parse(batch)?;
    if header.magic != 2 {
        return Err(StorageError::CorruptMessage(format!(
            "unsupported record batch magic {} (only v2 is accepted)",
            header.magic
        )));
    }
    if header.batch_length < 0 || header.total_size() != batch.len() {
        return Err(StorageError::CorruptMessage(format!(
            "batch length field says {} bytes but {} bytes were sent",
            LOG_OVERHEAD as i64 + i64::from(header.batch_length),
            batch.len()
        )));
    }
    let crc = compute_crc(batch);
    if crc != header.crc {
        return Err(StorageError::CorruptMessage(format!(
            "CRC-32C mismatch: batch says {:#010x}, bytes give {crc:#010x}",
            header.crc
        )));
    }
    if header.record_count <= 0 {
        return Err(StorageError::InvalidRecord(format!(
            "a batch must hold at least one record, this one declares {}",
            header.record_count
        )));
    }
    if header.last_offset_delta != header.record_count - 1 {
        return Err(StorageError::InvalidRecord(format!(
            "lastOffsetDelta {} does not match {} records",
            header.last_offset_delta, header.record_count
        )));
    }
    let compression = header.compression()?;
    let area = &batch[BATCH_HEADER_LEN..];
    let decompressed;
    let records = if compression == Compression::None {
        area
    } else {
        decompressed = compression.decompress(area, limits.max_decompressed_bytes)?;
        &decompressed[..]
    };
    let max_record_timestamp = check_records(&header, records, limits, now_ms)?;
    Ok(ValidatedBatch {
        header,
        max_record_timestamp,
    })
}

fn check_records(
    header: &BatchHeader,
    records: &[u8],
    limits: &ValidationLimits,
    now_ms: i64,
) -> Result<i64> {
    let mut iter = RecordIter::new(records, header.record_count as usize);
    let mut max_ts = i64::MIN;
    for (expected_delta, record) in (0i32..).zip(iter.by_ref()) {
        let record: Record<'_> = record?;
        if record.offset_delta != expected_delta {
            return Err(StorageError::InvalidRecord(format!(
                "record offset delta {} where {expected_delta} was expected",
                record.offset_delta
            )));
        }
        if limits.require_keys && record.key.is_none() && !header.is_control() {
            return Err(StorageError::InvalidRecord(
                "a compacted topic needs a key on every record".to_string(),
            ));
        }
        let ts = header.base_timestamp.saturating_add(record.timestamp_delta);
        if header.timestamp_type() == TimestampType::CreateTime {
            check_timestamp(ts, limits, now_ms)?;
        }
        max_ts = max_ts.max(ts);
    }
    if !iter.fully_consumed() {
        return Err(StorageError::InvalidRecord(format!(
            "batch declares {} records but its bytes hold a different amount",
            header.record_count
        )));
    }
    Ok(max_ts)
}

fn check_timestamp(ts: i64, limits: &ValidationLimits, now_ms: i64) -> Result<()> {
    if ts < -1 {
        return Err(StorageError::InvalidTimestamp(format!(
            "record timestamp {ts} is negative"
        )));
    }
    if ts == -1 {
        return Ok(());
    }
    if now_ms.saturating_sub(ts) > limits.timestamp_before_max_ms {
        return Err(StorageError::InvalidTimestamp(format!(
            "record timestamp {ts} is more than message.timestamp.before.max.ms ({}) before now ({now_ms})",
            limits.timestamp_before_max_ms
        )));
    }
    if ts.saturating_sub(now_ms) > limits.timestamp_after_max_ms {
        return Err(StorageError::InvalidTimestamp(format!(
            "record timestamp {ts} is more than message.timestamp.after.max.ms ({}) after now ({now_ms})",
            limits.timestamp_after_max_ms
        )));
    }
    Ok(())
}

/// The record area of a stored batch, decompressed when the batch is compressed (borrowed
/// as it is otherwise). `limit` bounds the decompressed size.
pub fn record_area<'a>(
    batch: &'a [u8],
    header: &BatchHeader,
    limit: usize,
) -> Result<std::borrow::Cow<'a, [u8]>> {
    let area = batch
        .get(BATCH_HEADER_LEN..)
        .ok_or_else(|| StorageError::CorruptMessage("batch shorter than its header".into()))?;
    match header.compression()? {
        Compression::None => Ok(std::borrow::Cow::Borrowed(area)),
        codec => Ok(std::borrow::Cow::Owned(codec.decompress(area, limit)?)),
    }
}

/// Sets the base offset of the batch at `batch[0..]` (outside the CRC).
pub fn set_base_offset(batch: &mut [u8], base_offset: i64) {
    batch[0..8].copy_from_slice(&base_offset.to_be_bytes());
}

/// Sets the partition leader epoch (outside the CRC).
pub fn set_partition_leader_epoch(batch: &mut [u8], epoch: i32) {
    batch[12..16].copy_from_slice(&epoch.to_be_bytes());
}

/// Rewrites the timestamp type and max timestamp of a batch and recomputes its CRC, as the
/// broker must for LogAppendTime topics or when a producer's maxTimestamp disagrees with
/// its records.
pub fn set_max_timestamp(batch: &mut [u8], timestamp_type: TimestampType, max_timestamp: i64) {
    let (header, records) = batch.split_at_mut(BATCH_HEADER_LEN);
    set_header_max_timestamp(header, records, timestamp_type, max_timestamp);
}

/// [`set_max_timestamp`] on a batch held as a copy of its header plus its (unchanged)
/// records, as the append path holds it so the records are never copied.
pub fn set_header_max_timestamp(
    header: &mut [u8],
    records: &[u8],
    timestamp_type: TimestampType,
    max_timestamp: i64,
) {
    let mut attributes = be_i16(header, 21);
    match timestamp_type {
        TimestampType::LogAppendTime => attributes |= ATTR_LOG_APPEND_TIME,
        TimestampType::CreateTime => attributes &= !ATTR_LOG_APPEND_TIME,
    }
    header[21..23].copy_from_slice(&attributes.to_be_bytes());
    header[35..43].copy_from_slice(&max_timestamp.to_be_bytes());
    let mut digest = crc_fast::Digest::new(crc_fast::CrcAlgorithm::Crc32Iscsi);
    digest.update(&header[CRC_START..BATCH_HEADER_LEN]);
    digest.update(records);
    let crc = digest.finalize() as u32;
    header[17..21].copy_from_slice(&crc.to_be_bytes());
}

/// Appends to `out` the batch whose header is `header` (its first [`BATCH_HEADER_LEN`]
/// bytes) with `body` as its record area compressed with `codec`: the length, the codec bits
/// of the attributes and the CRC are rewritten, every other field is kept.
pub fn push_with_record_area(out: &mut Vec<u8>, header: &[u8], codec: Compression, body: &[u8]) {
    let start = out.len();
    out.extend_from_slice(&header[..BATCH_HEADER_LEN]);
    out.extend_from_slice(body);
    let batch = &mut out[start..];
    let length = (batch.len() - 12) as i32;
    batch[8..12].copy_from_slice(&length.to_be_bytes());
    let attributes = (be_i16(batch, 21) & !0x07) | i16::from(codec.id());
    batch[21..23].copy_from_slice(&attributes.to_be_bytes());
    let crc = compute_crc(batch);
    batch[17..21].copy_from_slice(&crc.to_be_bytes());
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::builder::BatchBuilder;

    fn sample(codec: Compression) -> Vec<u8> {
        let mut b = BatchBuilder::new(1_000);
        b.compression(codec);
        for i in 0..10 {
            b.push(
                Some(format!("k{i}").as_bytes()),
                Some(b"value"),
                &[(b"h", Some(b"v"))],
                1_000 + i,
            );
        }
        b.build()
    }

    #[test]
    fn accepts_well_formed_batches_of_every_codec() {
        for codec in [
            Compression::None,
            Compression::Gzip,
            Compression::Snappy,
            Compression::Lz4,
            Compression::Zstd,
        ] {
            let batch = sample(codec);
            let v = validate(&batch, &ValidationLimits::default(), 0).unwrap();
            assert_eq!(v.header.record_count, 10);
            assert_eq!(v.max_record_timestamp, 1_009);
        }
    }

    #[test]
    fn every_flipped_byte_inside_the_crc_is_caught() {
        let batch = sample(Compression::None);
        for i in CRC_START..batch.len() {
            let mut bad = batch.clone();
            bad[i] ^= 0x40;
            let err = validate(&bad, &ValidationLimits::default(), 0).unwrap_err();
            assert_eq!(err.kafka_error_code(), 2, "byte {i}: {err}");
        }
    }

    #[test]
    fn wrong_magic_length_and_size_are_refused() {
        let batch = sample(Compression::None);
        let mut bad = batch.clone();
        bad[16] = 1;
        assert_eq!(
            validate(&bad, &ValidationLimits::default(), 0)
                .unwrap_err()
                .kafka_error_code(),
            2
        );
        assert_eq!(
            validate(&batch[..batch.len() - 1], &ValidationLimits::default(), 0)
                .unwrap_err()
                .kafka_error_code(),
            2
        );
        assert_eq!(
            validate(&batch[..30], &ValidationLimits::default(), 0)
                .unwrap_err()
                .kafka_error_code(),
            2
        );
        let small = ValidationLimits {
            max_batch_bytes: 100,
            ..Default::default()
        };
        assert_eq!(
            validate(&batch, &small, 0).unwrap_err().kafka_error_code(),
            10
        );
    }

    #[test]
    fn timestamp_bounds_and_keys_are_enforced() {
        let batch = sample(Compression::None);
        let limits = ValidationLimits {
            timestamp_before_max_ms: 10,
            ..Default::default()
        };
        assert_eq!(
            validate(&batch, &limits, 5_000)
                .unwrap_err()
                .kafka_error_code(),
            32
        );
        let limits = ValidationLimits {
            timestamp_after_max_ms: 10,
            ..Default::default()
        };
        assert_eq!(
            validate(&batch, &limits, 0).unwrap_err().kafka_error_code(),
            32
        );
        let mut b = BatchBuilder::new(0);
        b.push(None, Some(b"v"), &[], 0);
        let keyless = b.build();
        let limits = ValidationLimits {
            require_keys: true,
            ..Default::default()
        };
        assert_eq!(
            validate(&keyless, &limits, 0)
                .unwrap_err()
                .kafka_error_code(),
            87
        );
    }

    #[test]
    fn log_append_time_rewrite_keeps_crc_valid() {
        let mut batch = sample(Compression::None);
        set_max_timestamp(&mut batch, TimestampType::LogAppendTime, 42);
        set_base_offset(&mut batch, 7);
        let v = validate(&batch, &ValidationLimits::default(), 0).unwrap();
        assert_eq!(v.header.timestamp_type(), TimestampType::LogAppendTime);
        assert_eq!(v.header.max_timestamp, 42);
        assert_eq!(v.header.base_offset, 7);
    }
}
