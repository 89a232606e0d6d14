//! `__consumer_offsets`: where committed offsets and group metadata are kept, as Kafka keeps
//! them (the record key and value layouts of Kafka's OffsetCommitKey/Value v1/v3 and
//! GroupMetadataKey/Value v2/v3), in a compacted topic written through the storage engine
//! and read back on start.

use std::sync::Arc;

use bytes::{BufMut, Bytes, BytesMut};
use sluice_storage::{PartitionLog, StorageError};

use crate::internal_log::{self, put_bytes, put_nullable, put_string, Cursor, Item, TxnProducer};

use super::CommittedOffset;

/// Name of the internal topic.
pub const TOPIC: &str = "__consumer_offsets";

const OFFSET_KEY_VERSION: i16 = 1;
const GROUP_KEY_VERSION: i16 = 2;
const OFFSET_VALUE_VERSION: i16 = 3;
const GROUP_VALUE_VERSION: i16 = 3;

/// A member as persisted in group metadata.
#[derive(Debug, Clone, PartialEq)]
pub struct StoredMember {
    /// Member id.
    pub member_id: String,
    /// Static instance id.
    pub instance_id: Option<String>,
    /// Client id.
    pub client_id: String,
    /// Client host.
    pub client_host: String,
    /// Rebalance timeout.
    pub rebalance_timeout_ms: i32,
    /// Session timeout.
    pub session_timeout_ms: i32,
    /// Subscription (metadata of the chosen protocol).
    pub subscription: Bytes,
    /// Assignment.
    pub assignment: Bytes,
}

/// A group's metadata as persisted.
#[derive(Debug, Clone, PartialEq)]
pub struct StoredGroup {
    /// Protocol type.
    pub protocol_type: String,
    /// Generation.
    pub generation: i32,
    /// Chosen protocol.
    pub protocol: Option<String>,
    /// Leader.
    pub leader: Option<String>,
    /// When this was written.
    pub state_timestamp: i64,
    /// Members with assignments.
    pub members: Vec<StoredMember>,
}

/// One record of the offsets topic, decoded.
#[derive(Debug, Clone, PartialEq)]
pub enum Entry {
    /// A committed offset, or its deletion (`None`).
    Offset {
        /// Group id.
        group: String,
        /// Topic.
        topic: String,
        /// Partition.
        partition: i32,
        /// The commit, or None for a tombstone.
        value: Option<CommittedOffset>,
    },
    /// Group metadata, or the group's deletion (`None`).
    Group {
        /// Group id.
        group: String,
        /// The metadata, or None for a tombstone.
        value: Option<StoredGroup>,
    },
}

/// Key and value bytes of an entry.
pub fn encode(entry: &Entry) -> (Bytes, Option<Bytes>) {
    let mut key = BytesMut::new();
    match entry {
        Entry::Offset {
            group,
            topic,
            partition,
            value,
        } => {
            key.put_i16(OFFSET_KEY_VERSION);
            put_string(&mut key, group);
            put_string(&mut key, topic);
            key.put_i32(*partition);
            let value = value.as_ref().map(|v| {
                let mut b = BytesMut::new();
                b.put_i16(OFFSET_VALUE_VERSION);
                b.put_i64(v.offset);
                b.put_i32(v.leader_epoch);
                put_string(&mut b, &v.metadata);
                b.put_i64(v.commit_timestamp);
                b.freeze()
            });
            (key.freeze(), value)
        }
        Entry::Group { group, value } => {
            key.put_i16(GROUP_KEY_VERSION);
            put_string(&mut key, group);
            let value = value.as_ref().map(|g| {
                let mut b = BytesMut::new();
                b.put_i16(GROUP_VALUE_VERSION);
                put_string(&mut b, &g.protocol_type);
                b.put_i32(g.generation);
                put_nullable(&mut b, g.protocol.as_deref());
                put_nullable(&mut b, g.leader.as_deref());
                b.put_i64(g.state_timestamp);
                b.put_i32(g.members.len() as i32);
                for m in &g.members {
                    put_string(&mut b, &m.member_id);
                    put_nullable(&mut b, m.instance_id.as_deref());
                    put_string(&mut b, &m.client_id);
                    put_string(&mut b, &m.client_host);
                    b.put_i32(m.rebalance_timeout_ms);
                    b.put_i32(m.session_timeout_ms);
                    put_bytes(&mut b, &m.subscription);
                    put_bytes(&mut b, &m.assignment);
                }
                b.freeze()
            });
            (key.freeze(), value)
        }
    }
}

/// Decodes a record of the offsets topic; `None` for a record it does not understand.
pub fn decode(key: &[u8], value: Option<&[u8]>) -> Option<Entry> {
    let mut k = Cursor(key);
    match k.i16()? {
        0 | 1 => {
            let group = k.string()?;
            let topic = k.string()?;
            let partition = k.i32()?;
            let value = match value {
                None => None,
                Some(v) => {
                    let mut v = Cursor(v);
                    let version = v.i16()?;
                    let offset = v.i64()?;
                    let leader_epoch = if version >= 3 { v.i32()? } else { -1 };
                    let metadata = v.string()?;
                    let commit_timestamp = v.i64()?;
                    Some(CommittedOffset {
                        offset,
                        leader_epoch,
                        metadata,
                        commit_timestamp,
                    })
                }
            };
            Some(Entry::Offset {
                group,
                topic,
                partition,
                value,
            })
        }
        2 => {
            let group = k.string()?;
            let value = match value {
                None => None,
                Some(v) => Some(decode_group(v)?),
            };
            Some(Entry::Group { group, value })
        }
        _ => None,
    }
}

fn decode_group(v: &[u8]) -> Option<StoredGroup> {
    let mut v = Cursor(v);
    let version = v.i16()?;
    let protocol_type = v.string()?;
    let generation = v.i32()?;
    let protocol = v.nullable()?;
    let leader = v.nullable()?;
    let state_timestamp = if version >= 2 { v.i64()? } else { -1 };
    let count = v.i32()?.max(0) as usize;
    let mut members = Vec::with_capacity(count.min(1024));
    for _ in 0..count {
        let member_id = v.string()?;
        let instance_id = if version >= 3 { v.nullable()? } else { None };
        let client_id = v.string()?;
        let client_host = v.string()?;
        let rebalance_timeout_ms = if version >= 1 { v.i32()? } else { -1 };
        let session_timeout_ms = v.i32()?;
        let subscription = v.bytes()?;
        let assignment = v.bytes()?;
        members.push(StoredMember {
            member_id,
            instance_id,
            client_id,
            client_host,
            rebalance_timeout_ms,
            session_timeout_ms,
            subscription,
            assignment,
        });
    }
    Some(StoredGroup {
        protocol_type,
        generation,
        protocol,
        leader,
        state_timestamp,
        members,
    })
}

/// Appends entries to the offsets log as one batch (a transactional one for a
/// TxnOffsetCommit); returns once written.
pub fn append(
    log: &PartitionLog,
    entries: &[Entry],
    producer: Option<TxnProducer>,
) -> Result<(), StorageError> {
    let records: Vec<(Bytes, Option<Bytes>)> = entries.iter().map(encode).collect();
    internal_log::append(log, &records, producer)
}

/// What a start-up read of the offsets log yields, in log order.
#[derive(Debug)]
pub enum Loaded {
    /// An entry in effect from here on.
    Entry(Entry),
    /// An offset commit of a transaction, in effect only if its producer commits.
    Pending(i64, Entry),
    /// The end of a producer's transaction.
    Marker {
        /// The producer.
        producer: i64,
        /// Commit (true) or abort.
        commit: bool,
    },
}

/// Reads every entry of the offsets log, oldest first.
pub fn load(log: &Arc<PartitionLog>) -> Result<Vec<Loaded>, StorageError> {
    let mut loaded = Vec::new();
    internal_log::scan(log, |item| match item {
        Item::Record {
            producer,
            key,
            value,
        } => {
            if let Some(entry) = decode(key, value) {
                loaded.push(match producer {
                    Some(p) => Loaded::Pending(p, entry),
                    None => Loaded::Entry(entry),
                });
            }
        }
        Item::Marker { producer, commit } => loaded.push(Loaded::Marker { producer, commit }),
    })?;
    Ok(loaded)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn entries_round_trip_in_kafkas_layout() {
        let offset = Entry::Offset {
            group: "g".into(),
            topic: "t".into(),
            partition: 3,
            value: Some(CommittedOffset {
                offset: 42,
                leader_epoch: 0,
                metadata: "m".into(),
                commit_timestamp: 7,
            }),
        };
        let (k, v) = encode(&offset);
        assert_eq!(&k[..2], &[0, 1]);
        assert_eq!(decode(&k, v.as_deref()), Some(offset));
        let group = Entry::Group {
            group: "g".into(),
            value: Some(StoredGroup {
                protocol_type: "consumer".into(),
                generation: 5,
                protocol: Some("range".into()),
                leader: Some("m1".into()),
                state_timestamp: 9,
                members: vec![StoredMember {
                    member_id: "m1".into(),
                    instance_id: Some("i1".into()),
                    client_id: "c".into(),
                    client_host: "/127.0.0.1".into(),
                    rebalance_timeout_ms: 1,
                    session_timeout_ms: 2,
                    subscription: Bytes::from_static(b"s"),
                    assignment: Bytes::from_static(b"a"),
                }],
            }),
        };
        let (k, v) = encode(&group);
        assert_eq!(decode(&k, v.as_deref()), Some(group));
        let tombstone = Entry::Group {
            group: "g".into(),
            value: None,
        };
        let (k, v) = encode(&tombstone);
        assert_eq!(decode(&k, v.as_deref()), Some(tombstone));
        assert_eq!(decode(&[0, 9, 0], None), None);
        assert_eq!(decode(&[0, 1, 0, 5, b'a'], None), None);
    }
}
