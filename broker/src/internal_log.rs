//! What the broker's internal topics (`__consumer_offsets`, `__transaction_state`) share:
//! Kafka's big-endian key/value field codec, appending records as one batch, and reading
//! a whole internal log back on start, transaction markers included.

use bytes::{Buf, BufMut, Bytes, BytesMut};
use sluice_storage::batch::{batch_size_at, record_area, BatchHeader};
use sluice_storage::record::RecordIter;
use sluice_storage::transactions::{read_marker, ControlType};
use sluice_storage::{now_ms, AppendOrigin, BatchBuilder, PartitionLog, StorageError};

/// Writes a Kafka STRING (int16 length).
pub fn put_string(buf: &mut BytesMut, s: &str) {
    buf.put_i16(s.len() as i16);
    buf.put_slice(s.as_bytes());
}

/// Writes a Kafka NULLABLE_STRING.
pub fn put_nullable(buf: &mut BytesMut, s: Option<&str>) {
    match s {
        Some(s) => put_string(buf, s),
        None => buf.put_i16(-1),
    }
}

/// Writes Kafka BYTES (int32 length).
pub fn put_bytes(buf: &mut BytesMut, b: &[u8]) {
    buf.put_i32(b.len() as i32);
    buf.put_slice(b);
}

/// A reader of Kafka fields that fails (`None`) instead of panicking when bytes run out.
pub struct Cursor<'a>(pub &'a [u8]);

impl Cursor<'_> {
    fn need(&self, n: usize) -> Option<()> {
        (self.0.remaining() >= n).then_some(())
    }
    /// An INT8.
    pub fn i8(&mut self) -> Option<i8> {
        self.need(1)?;
        Some(self.0.get_i8())
    }
    /// An INT16.
    pub fn i16(&mut self) -> Option<i16> {
        self.need(2)?;
        Some(self.0.get_i16())
    }
    /// An INT32.
    pub fn i32(&mut self) -> Option<i32> {
        self.need(4)?;
        Some(self.0.get_i32())
    }
    /// An INT64.
    pub fn i64(&mut self) -> Option<i64> {
        self.need(8)?;
        Some(self.0.get_i64())
    }
    /// A NULLABLE_STRING.
    pub fn nullable(&mut self) -> Option<Option<String>> {
        let len = self.i16()?;
        if len < 0 {
            return Some(None);
        }
        self.need(len as usize)?;
        let s = String::from_utf8_lossy(&self.0[..len as usize]).into_owned();
        self.0.advance(len as usize);
        Some(Some(s))
    }
    /// A STRING (null is refused).
    pub fn string(&mut self) -> Option<String> {
        self.nullable()?
    }
    /// BYTES (null reads as empty).
    pub fn bytes(&mut self) -> Option<Bytes> {
        let len = self.i32()?;
        if len < 0 {
            return Some(Bytes::new());
        }
        self.need(len as usize)?;
        let b = Bytes::copy_from_slice(&self.0[..len as usize]);
        self.0.advance(len as usize);
        Some(b)
    }
}

/// A transactional producer writing through a coordinator (TxnOffsetCommit).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TxnProducer {
    /// Producer id.
    pub id: i64,
    /// Producer epoch.
    pub epoch: i16,
}

/// Appends key/value records as one batch; transactional (no sequence numbers, as Kafka's
/// coordinators write them) when `producer` is given. Returns once written.
pub fn append(
    log: &PartitionLog,
    records: &[(Bytes, Option<Bytes>)],
    producer: Option<TxnProducer>,
) -> Result<(), StorageError> {
    if records.is_empty() {
        return Ok(());
    }
    let now = now_ms();
    let mut builder = BatchBuilder::new(0);
    if let Some(p) = producer {
        builder
            .producer(p.id, p.epoch, -1)
            .flags(sluice_storage::transactions::TRANSACTIONAL_FLAG);
    }
    for (key, value) in records {
        builder.push(Some(key), value.as_deref(), &[], now);
    }
    log.append_from(&builder.build(), now, AppendOrigin::Coordinator)
        .map(|_| ())
}

/// One thing read back from an internal log.
#[derive(Debug)]
pub enum Item<'a> {
    /// A record; `producer` is set for a record of a transaction (its fate comes later).
    Record {
        /// The transactional producer, if any.
        producer: Option<i64>,
        /// Record key.
        key: &'a [u8],
        /// Record value (`None` = tombstone).
        value: Option<&'a [u8]>,
    },
    /// A transaction marker: the producer's pending records commit or are dropped.
    Marker {
        /// The producer.
        producer: i64,
        /// Commit (true) or abort.
        commit: bool,
    },
}

/// Reads every record and marker of an internal log from its start, oldest first.
pub fn scan(log: &PartitionLog, mut visit: impl FnMut(Item<'_>)) -> Result<(), StorageError> {
    let mut offset = log.log_start_offset();
    let end = log.log_end_offset();
    while offset < end {
        let read = log.read(offset, 1 << 20)?;
        let Some(slice) = read.slice else { break };
        let bytes = slice
            .to_bytes()
            .map_err(|e| StorageError::io(log.dir(), e))?;
        let mut pos = 0;
        while let Some(size) = batch_size_at(&bytes[pos..]) {
            if pos + size > bytes.len() {
                break;
            }
            let batch = &bytes[pos..pos + size];
            let header = BatchHeader::parse(batch)?;
            offset = header.last_offset() + 1;
            pos += size;
            if header.is_control() {
                if let Some(marker) = read_marker(&header, batch)? {
                    visit(Item::Marker {
                        producer: header.producer_id,
                        commit: marker.kind == ControlType::Commit,
                    });
                }
                continue;
            }
            let producer = header.is_transactional().then_some(header.producer_id);
            let records = record_area(batch, &header, 256 << 20)?;
            for record in RecordIter::new(&records, header.record_count.max(0) as usize) {
                let record = record?;
                if let Some(key) = record.key {
                    visit(Item::Record {
                        producer,
                        key,
                        value: record.value,
                    });
                }
            }
        }
    }
    Ok(())
}
