//! The records inside a v2 batch: decoding for validation, compaction and timestamp lookups,
//! and encoding for the batches compaction rewrites.

use crate::error::{Result, StorageError};
use crate::varint::{read_varint, read_varlong, write_varint, write_varlong};

/// One record decoded from a batch's (decompressed) record area, borrowing its bytes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Record<'a> {
    /// Offset relative to the batch's base offset.
    pub offset_delta: i32,
    /// Timestamp relative to the batch's base timestamp.
    pub timestamp_delta: i64,
    /// The key, `None` for a null key.
    pub key: Option<&'a [u8]>,
    /// The value, `None` for a null value (a tombstone in a compacted topic).
    pub value: Option<&'a [u8]>,
    /// Headers as (key, value) pairs; a header value may be null.
    pub headers: Vec<(&'a [u8], Option<&'a [u8]>)>,
}

/// Iterates over the records of an uncompressed record area, checking framing as it goes.
pub struct RecordIter<'a> {
    buf: &'a [u8],
    pos: usize,
    remaining: usize,
}

impl<'a> RecordIter<'a> {
    /// Starts iterating `count` records in `buf`.
    pub fn new(buf: &'a [u8], count: usize) -> Self {
        RecordIter {
            buf,
            pos: 0,
            remaining: count,
        }
    }

    /// True when every byte of the record area was consumed by the declared records.
    pub fn fully_consumed(&self) -> bool {
        self.remaining == 0 && self.pos == self.buf.len()
    }
}

impl<'a> Iterator for RecordIter<'a> {
    type Item = Result<Record<'a>>;

    fn next(&mut self) -> Option<Self::Item> {
        if self.remaining == 0 {
            return None;
        }
        self.remaining -= 1;
        if self.pos == self.buf.len() {
            // Not a framing error: every record was whole, the batch declared too many.
            self.remaining = 0;
            return Some(Err(StorageError::InvalidRecord(
                "the batch declares more records than it holds".to_string(),
            )));
        }
        let result = decode_record(self.buf, &mut self.pos);
        if result.is_err() {
            self.remaining = 0;
        }
        Some(result)
    }
}

fn corrupt(what: &str) -> StorageError {
    StorageError::CorruptMessage(format!("record framing: {what}"))
}

fn read_bytes<'a>(buf: &'a [u8], pos: &mut usize, what: &str) -> Result<Option<&'a [u8]>> {
    let len = read_varint(buf, pos).ok_or_else(|| corrupt(what))?;
    if len < 0 {
        return Ok(None);
    }
    let end = pos
        .checked_add(len as usize)
        .filter(|end| *end <= buf.len())
        .ok_or_else(|| corrupt(what))?;
    let bytes = &buf[*pos..end];
    *pos = end;
    Ok(Some(bytes))
}

fn decode_record<'a>(buf: &'a [u8], pos: &mut usize) -> Result<Record<'a>> {
    let length = read_varint(buf, pos).ok_or_else(|| corrupt("length"))?;
    if length < 0 {
        return Err(corrupt("negative record length"));
    }
    let end = pos
        .checked_add(length as usize)
        .filter(|end| *end <= buf.len())
        .ok_or_else(|| corrupt("record length past the end of the batch"))?;
    let body = &buf[..end];
    let mut p = *pos;
    let _attributes = *body.get(p).ok_or_else(|| corrupt("attributes"))?;
    p += 1;
    let timestamp_delta = read_varlong(body, &mut p).ok_or_else(|| corrupt("timestamp delta"))?;
    let offset_delta = read_varint(body, &mut p).ok_or_else(|| corrupt("offset delta"))?;
    let key = read_bytes(body, &mut p, "key")?;
    let value = read_bytes(body, &mut p, "value")?;
    let header_count = read_varint(body, &mut p).ok_or_else(|| corrupt("header count"))?;
    if header_count < 0 {
        return Err(corrupt("negative header count"));
    }
    let mut headers = Vec::with_capacity((header_count as usize).min(64));
    for _ in 0..header_count {
        let key = read_bytes(body, &mut p, "header key")?.ok_or_else(|| {
            StorageError::InvalidRecord("a record header has a null key".to_string())
        })?;
        let value = read_bytes(body, &mut p, "header value")?;
        headers.push((key, value));
    }
    if p != end {
        return Err(corrupt("record length does not match its fields"));
    }
    *pos = end;
    Ok(Record {
        offset_delta,
        timestamp_delta,
        key,
        value,
        headers,
    })
}

/// Appends `record` in the v2 record encoding (length-prefixed) to `out`.
pub fn encode_record(out: &mut Vec<u8>, record: &Record<'_>) {
    let mut body = Vec::with_capacity(
        16 + record.key.map_or(0, <[u8]>::len) + record.value.map_or(0, <[u8]>::len),
    );
    body.push(0u8);
    write_varlong(&mut body, record.timestamp_delta);
    write_varint(&mut body, record.offset_delta);
    write_nullable(&mut body, record.key);
    write_nullable(&mut body, record.value);
    write_varint(&mut body, record.headers.len() as i32);
    for (key, value) in &record.headers {
        write_nullable(&mut body, Some(key));
        write_nullable(&mut body, *value);
    }
    write_varint(out, body.len() as i32);
    out.extend_from_slice(&body);
}

fn write_nullable(out: &mut Vec<u8>, bytes: Option<&[u8]>) {
    match bytes {
        None => write_varint(out, -1),
        Some(b) => {
            write_varint(out, b.len() as i32);
            out.extend_from_slice(b);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn encode_then_decode_gives_the_same_record() {
        let record = Record {
            offset_delta: 3,
            timestamp_delta: -5,
            key: Some(b"k"),
            value: None,
            headers: vec![(b"h1", Some(b"v1")), (b"h2", None)],
        };
        let mut out = Vec::new();
        encode_record(&mut out, &record);
        let mut iter = RecordIter::new(&out, 1);
        assert_eq!(iter.next().unwrap().unwrap(), record);
        assert!(iter.fully_consumed());
    }

    #[test]
    fn garbage_is_an_error_not_a_panic() {
        for garbage in [&[0x7fu8][..], &[0x10, 0, 0], &[0x02, 0x00, 0xff]] {
            let mut iter = RecordIter::new(garbage, 1);
            assert!(iter.next().unwrap().is_err());
        }
    }
}
