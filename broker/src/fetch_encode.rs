//! Zero-copy Fetch responses. The response is encoded by hand (the layout of every served
//! Fetch version, v4-v16) into a list of chunks in which record data stays a byte range of
//! its segment file; the connection sends those ranges with `sendfile(2)`, so records go
//! from page cache to socket without being copied through user space. A unit test checks
//! the encoding against the kafka-protocol crate's, byte for byte, for every version.

use bytes::{BufMut, Bytes, BytesMut};
use sluice_storage::FileSlice;
use uuid::Uuid;

/// Record data of one partition in a response.
#[derive(Debug, Clone)]
pub enum Records {
    /// Bytes in memory.
    Memory(Bytes),
    /// A range of a segment file, sent with sendfile.
    File(FileSlice),
}

impl Records {
    /// Length in bytes.
    pub fn len(&self) -> usize {
        match self {
            Records::Memory(b) => b.len(),
            Records::File(f) => f.len() as usize,
        }
    }

    /// True when empty.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// One partition of a Fetch response.
#[derive(Debug, Clone)]
pub struct PartitionOut {
    /// Partition index.
    pub partition: i32,
    /// Error code.
    pub error_code: i16,
    /// High watermark.
    pub high_watermark: i64,
    /// Last stable offset.
    pub last_stable_offset: i64,
    /// Log start offset (v5+).
    pub log_start_offset: i64,
    /// Aborted transactions `(producer id, first offset)`; `None` encodes as null.
    pub aborted_transactions: Option<Vec<(i64, i64)>>,
    /// Record batches.
    pub records: Records,
}

/// One topic of a Fetch response.
#[derive(Debug, Clone)]
pub struct TopicOut {
    /// Topic name (v4-v12).
    pub name: String,
    /// Topic id (v13+).
    pub id: Uuid,
    /// Its partitions.
    pub partitions: Vec<PartitionOut>,
}

/// A whole Fetch response.
#[derive(Debug, Clone, Default)]
pub struct FetchOut {
    /// Top-level error code (v7+).
    pub error_code: i16,
    /// Fetch session id (v7+).
    pub session_id: i32,
    /// Topics.
    pub topics: Vec<TopicOut>,
}

/// A piece of an outgoing frame.
#[derive(Debug, Clone)]
pub enum Chunk {
    /// Bytes to write.
    Bytes(Bytes),
    /// A file range to sendfile.
    File(FileSlice),
}

struct Encoder {
    flexible: bool,
    chunks: Vec<Chunk>,
    buf: BytesMut,
    len: usize,
}

impl Encoder {
    fn uvarint(&mut self, mut v: u64) {
        while v >= 0x80 {
            self.buf.put_u8((v as u8) | 0x80);
            v >>= 7;
        }
        self.buf.put_u8(v as u8);
    }

    /// An array/bytes length: i32 in classic versions, unsigned varint of len+1 in flexible
    /// ones; `None` is null.
    fn length(&mut self, len: Option<usize>) {
        match (self.flexible, len) {
            (true, None) => self.uvarint(0),
            (true, Some(n)) => self.uvarint(n as u64 + 1),
            (false, None) => self.buf.put_i32(-1),
            (false, Some(n)) => self.buf.put_i32(n as i32),
        }
    }

    fn string(&mut self, s: &str) {
        if self.flexible {
            self.uvarint(s.len() as u64 + 1);
        } else {
            self.buf.put_i16(s.len() as i16);
        }
        self.buf.put_slice(s.as_bytes());
    }

    fn no_tagged_fields(&mut self) {
        if self.flexible {
            self.buf.put_u8(0);
        }
    }

    fn records(&mut self, records: &Records) {
        self.length(Some(records.len()));
        match records {
            Records::Memory(b) => self.buf.put_slice(b),
            Records::File(f) if f.is_empty() => {}
            Records::File(f) => {
                self.flush_buf();
                self.len += f.len() as usize;
                self.chunks.push(Chunk::File(f.clone()));
            }
        }
    }

    fn flush_buf(&mut self) {
        if !self.buf.is_empty() {
            let bytes = self.buf.split().freeze();
            self.len += bytes.len();
            self.chunks.push(Chunk::Bytes(bytes));
        }
    }
}

/// Encodes a Fetch response of `version` as a frame (length prefix, header, body).
pub fn encode(correlation_id: i32, version: i16, response: &FetchOut) -> Vec<Chunk> {
    let mut e = Encoder {
        flexible: version >= 12,
        chunks: Vec::new(),
        buf: BytesMut::with_capacity(512),
        len: 0,
    };
    e.buf.put_i32(correlation_id);
    e.no_tagged_fields(); // response header v1 for flexible versions
    e.buf.put_i32(0); // throttle_time_ms
    if version >= 7 {
        e.buf.put_i16(response.error_code);
        e.buf.put_i32(response.session_id);
    }
    e.length(Some(response.topics.len()));
    for topic in &response.topics {
        if version >= 13 {
            e.buf.put_slice(topic.id.as_bytes());
        } else {
            e.string(&topic.name);
        }
        e.length(Some(topic.partitions.len()));
        for p in &topic.partitions {
            e.buf.put_i32(p.partition);
            e.buf.put_i16(p.error_code);
            e.buf.put_i64(p.high_watermark);
            e.buf.put_i64(p.last_stable_offset);
            if version >= 5 {
                e.buf.put_i64(p.log_start_offset);
            }
            e.length(p.aborted_transactions.as_ref().map(Vec::len));
            for (producer_id, first_offset) in p.aborted_transactions.iter().flatten() {
                e.buf.put_i64(*producer_id);
                e.buf.put_i64(*first_offset);
                e.no_tagged_fields();
            }
            if version >= 11 {
                e.buf.put_i32(-1); // preferred_read_replica
            }
            e.records(&p.records);
            e.no_tagged_fields();
        }
        e.no_tagged_fields();
    }
    e.no_tagged_fields();
    e.flush_buf();
    let mut frame = Vec::with_capacity(e.chunks.len() + 1);
    frame.push(Chunk::Bytes(Bytes::copy_from_slice(
        &(e.len as i32).to_be_bytes(),
    )));
    frame.extend(e.chunks);
    frame
}

#[cfg(test)]
mod tests {
    use super::*;
    use kafka_protocol::messages::fetch_response::{
        AbortedTransaction, FetchableTopicResponse, PartitionData,
    };
    use kafka_protocol::messages::{
        ApiKey, BrokerId, FetchResponse, ProducerId, ResponseHeader, TopicName,
    };
    use kafka_protocol::protocol::{Encodable, StrBytes};

    fn sample() -> FetchOut {
        FetchOut {
            error_code: 0,
            session_id: 7,
            topics: vec![TopicOut {
                name: "orders".into(),
                id: Uuid::from_u128(0x1234),
                partitions: vec![
                    PartitionOut {
                        partition: 0,
                        error_code: 0,
                        high_watermark: 10,
                        last_stable_offset: 10,
                        log_start_offset: 2,
                        aborted_transactions: Some(vec![(5, 3)]),
                        records: Records::Memory(Bytes::from_static(b"batch-bytes")),
                    },
                    PartitionOut {
                        partition: 1,
                        error_code: 1,
                        high_watermark: -1,
                        last_stable_offset: -1,
                        log_start_offset: -1,
                        aborted_transactions: None,
                        records: Records::Memory(Bytes::new()),
                    },
                ],
            }],
        }
    }

    fn with_crate(out: &FetchOut, version: i16) -> Vec<u8> {
        let mut r = FetchResponse::default();
        if version >= 7 {
            r.error_code = out.error_code;
            r.session_id = out.session_id;
        }
        for t in &out.topics {
            let mut topic = FetchableTopicResponse::default();
            if version >= 13 {
                topic.topic_id = t.id;
            } else {
                topic.topic = TopicName(StrBytes::from_string(t.name.clone()));
            }
            for p in &t.partitions {
                let mut d = PartitionData::default();
                d.partition_index = p.partition;
                d.error_code = p.error_code;
                d.high_watermark = p.high_watermark;
                d.last_stable_offset = p.last_stable_offset;
                if version >= 5 {
                    d.log_start_offset = p.log_start_offset;
                }
                d.aborted_transactions = p.aborted_transactions.as_ref().map(|v| {
                    v.iter()
                        .map(|(pid, first)| {
                            let mut a = AbortedTransaction::default();
                            a.producer_id = ProducerId(*pid);
                            a.first_offset = *first;
                            a
                        })
                        .collect()
                });
                d.preferred_read_replica = BrokerId(-1);
                d.records = Some(match &p.records {
                    Records::Memory(b) => b.clone(),
                    Records::File(_) => unreachable!(),
                });
                topic.partitions.push(d);
            }
            r.responses.push(topic);
        }
        let mut buf = BytesMut::new();
        let mut header = ResponseHeader::default();
        header.correlation_id = 99;
        header
            .encode(&mut buf, ApiKey::Fetch.response_header_version(version))
            .unwrap();
        r.encode(&mut buf, version).unwrap();
        let mut framed = (buf.len() as i32).to_be_bytes().to_vec();
        framed.extend_from_slice(&buf);
        framed
    }

    #[test]
    fn matches_the_crate_encoding_for_every_served_version() {
        let out = sample();
        for version in 4..=16 {
            let mut ours = Vec::new();
            for chunk in encode(99, version, &out) {
                match chunk {
                    Chunk::Bytes(b) => ours.extend_from_slice(&b),
                    Chunk::File(_) => unreachable!(),
                }
            }
            assert_eq!(ours, with_crate(&out, version), "Fetch v{version}");
        }
    }
}
