//! Builds v2 record batches: what compaction writes back, and what tests and benchmarks
//! append. Producers' batches never pass through here; they are stored as sent.

use crate::batch::{compute_crc, BatchHeader, BATCH_HEADER_LEN};
use crate::compression::Compression;
use crate::record::{encode_record, Record};

/// Accumulates records and encodes them as one v2 record batch.
#[derive(Debug, Clone)]
pub struct BatchBuilder {
    base_offset: i64,
    compression: Compression,
    attributes_extra: i16,
    producer_id: i64,
    producer_epoch: i16,
    base_sequence: i32,
    partition_leader_epoch: i32,
    base_timestamp: Option<i64>,
    max_timestamp: i64,
    last_offset_delta: Option<i32>,
    next_delta: i32,
    count: i32,
    records: Vec<u8>,
}

impl BatchBuilder {
    /// Starts an empty, uncompressed, non-transactional batch at `base_offset`.
    pub fn new(base_offset: i64) -> Self {
        BatchBuilder {
            base_offset,
            compression: Compression::None,
            attributes_extra: 0,
            producer_id: -1,
            producer_epoch: -1,
            base_sequence: -1,
            partition_leader_epoch: -1,
            base_timestamp: None,
            max_timestamp: -1,
            last_offset_delta: None,
            next_delta: 0,
            count: 0,
            records: Vec::new(),
        }
    }

    /// Starts a batch that keeps everything of `header` but its records: compaction uses it
    /// so a cleaned batch keeps its offsets range, producer fields and flags.
    pub fn like(header: &BatchHeader) -> Self {
        let mut b = BatchBuilder::new(header.base_offset);
        b.compression = header.compression().unwrap_or(Compression::None);
        b.attributes_extra = header.attributes & !0x07;
        b.producer_id = header.producer_id;
        b.producer_epoch = header.producer_epoch;
        b.base_sequence = header.base_sequence;
        b.partition_leader_epoch = header.partition_leader_epoch;
        b.base_timestamp = Some(header.base_timestamp);
        if header.timestamp_type() == crate::batch::TimestampType::LogAppendTime {
            b.max_timestamp = header.max_timestamp;
        }
        b.last_offset_delta = Some(header.last_offset_delta);
        b
    }

    /// Sets the codec the records are compressed with.
    pub fn compression(&mut self, codec: Compression) -> &mut Self {
        self.compression = codec;
        self
    }

    /// Marks the batch as written by an idempotent producer.
    pub fn producer(&mut self, id: i64, epoch: i16, base_sequence: i32) -> &mut Self {
        self.producer_id = id;
        self.producer_epoch = epoch;
        self.base_sequence = base_sequence;
        self
    }

    /// Sets attribute flags besides the codec (transactional 0x10, control 0x20).
    pub fn flags(&mut self, flags: i16) -> &mut Self {
        self.attributes_extra = flags & !0x07;
        self
    }

    /// Appends a record at the next offset with an absolute timestamp.
    pub fn push(
        &mut self,
        key: Option<&[u8]>,
        value: Option<&[u8]>,
        headers: &[(&[u8], Option<&[u8]>)],
        timestamp: i64,
    ) -> &mut Self {
        let delta = self.next_delta;
        self.push_at(delta, timestamp, key, value, headers)
    }

    /// Appends a record at an explicit offset delta (compaction keeps original offsets).
    pub fn push_at(
        &mut self,
        offset_delta: i32,
        timestamp: i64,
        key: Option<&[u8]>,
        value: Option<&[u8]>,
        headers: &[(&[u8], Option<&[u8]>)],
    ) -> &mut Self {
        let base_ts = *self.base_timestamp.get_or_insert(timestamp);
        let record = Record {
            offset_delta,
            timestamp_delta: timestamp - base_ts,
            key,
            value,
            headers: headers.to_vec(),
        };
        encode_record(&mut self.records, &record);
        self.max_timestamp = self.max_timestamp.max(timestamp);
        self.next_delta = offset_delta + 1;
        self.count += 1;
        self
    }

    /// Number of records pushed so far.
    pub fn len(&self) -> usize {
        self.count as usize
    }

    /// True when no record was pushed.
    pub fn is_empty(&self) -> bool {
        self.count == 0
    }

    /// Encodes the batch with a valid CRC.
    pub fn build(&self) -> Vec<u8> {
        let body = self.compression.compress(&self.records);
        let mut out = Vec::with_capacity(BATCH_HEADER_LEN + body.len());
        let last_delta = self
            .last_offset_delta
            .unwrap_or((self.next_delta - 1).max(0));
        let attributes = self.attributes_extra | i16::from(self.compression.id());
        out.extend_from_slice(&self.base_offset.to_be_bytes());
        out.extend_from_slice(&((BATCH_HEADER_LEN - 12 + body.len()) as i32).to_be_bytes());
        out.extend_from_slice(&self.partition_leader_epoch.to_be_bytes());
        out.push(2);
        out.extend_from_slice(&0u32.to_be_bytes());
        out.extend_from_slice(&attributes.to_be_bytes());
        out.extend_from_slice(&last_delta.to_be_bytes());
        out.extend_from_slice(&self.base_timestamp.unwrap_or(-1).to_be_bytes());
        out.extend_from_slice(&self.max_timestamp.to_be_bytes());
        out.extend_from_slice(&self.producer_id.to_be_bytes());
        out.extend_from_slice(&self.producer_epoch.to_be_bytes());
        out.extend_from_slice(&self.base_sequence.to_be_bytes());
        out.extend_from_slice(&self.count.to_be_bytes());
        out.extend_from_slice(&body);
        let crc = compute_crc(&out);
        out[17..21].copy_from_slice(&crc.to_be_bytes());
        out
    }
}
