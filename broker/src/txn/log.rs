//! `__transaction_state`: every change of a transactional id's state, as Kafka stores it
//! (TransactionLogKey v0 and TransactionLogValue v0), in a compacted topic written through
//! the storage engine and read back on start. A tombstone removes an expired id.

use std::collections::{BTreeMap, BTreeSet};

use bytes::{BufMut, Bytes, BytesMut};
use sluice_storage::{PartitionLog, StorageError};

use super::state::{TxnMetadata, TxnState};
use crate::internal_log::{self, put_string, Cursor, Item};

/// Name of the internal topic.
pub const TOPIC: &str = "__transaction_state";

const KEY_VERSION: i16 = 0;
const VALUE_VERSION: i16 = 0;

/// Key and value bytes of a transactional id's state (`None`: a tombstone).
pub fn encode(transactional_id: &str, meta: Option<&TxnMetadata>) -> (Bytes, Option<Bytes>) {
    let mut key = BytesMut::new();
    key.put_i16(KEY_VERSION);
    put_string(&mut key, transactional_id);
    let value = meta.map(|m| {
        let mut v = BytesMut::new();
        v.put_i16(VALUE_VERSION);
        v.put_i64(m.producer_id);
        v.put_i16(m.producer_epoch);
        v.put_i32(m.timeout_ms);
        v.put_i8(m.state.code());
        let by_topic = m.partitions_by_topic();
        v.put_i32(by_topic.len() as i32);
        for (topic, partitions) in by_topic {
            put_string(&mut v, topic);
            v.put_i32(partitions.len() as i32);
            for p in partitions {
                v.put_i32(p);
            }
        }
        v.put_i64(m.last_update_ms);
        v.put_i64(m.start_ms);
        v.freeze()
    });
    (key.freeze(), value)
}

/// Decodes a record: `(transactional id, state or None for a tombstone)`; `None` for a
/// record this version does not understand.
pub fn decode(key: &[u8], value: Option<&[u8]>) -> Option<(String, Option<TxnMetadata>)> {
    let mut k = Cursor(key);
    if k.i16()? != KEY_VERSION {
        return None;
    }
    let id = k.string()?;
    let Some(value) = value else {
        return Some((id, None));
    };
    let mut v = Cursor(value);
    v.i16()?;
    let producer_id = v.i64()?;
    let producer_epoch = v.i16()?;
    let timeout_ms = v.i32()?;
    let state = TxnState::from_code(v.i8()?)?;
    let mut partitions = BTreeSet::new();
    for _ in 0..v.i32()?.max(0) {
        let topic = v.string()?;
        for _ in 0..v.i32()?.max(0) {
            partitions.insert((topic.clone(), v.i32()?));
        }
    }
    let last_update_ms = v.i64()?;
    let start_ms = v.i64()?;
    Some((
        id.clone(),
        Some(TxnMetadata {
            transactional_id: id,
            producer_id,
            producer_epoch,
            timeout_ms,
            state,
            partitions,
            start_ms,
            last_update_ms,
        }),
    ))
}

/// Writes a transactional id's state (or its tombstone); returns once written.
pub fn append(
    log: &PartitionLog,
    transactional_id: &str,
    meta: Option<&TxnMetadata>,
) -> Result<(), StorageError> {
    internal_log::append(log, &[encode(transactional_id, meta)], None)
}

/// The latest state of every transactional id in the log.
pub fn load(log: &PartitionLog) -> Result<BTreeMap<String, TxnMetadata>, StorageError> {
    let mut states = BTreeMap::new();
    internal_log::scan(log, |item| {
        if let Item::Record { key, value, .. } = item {
            match decode(key, value) {
                Some((id, Some(meta))) => {
                    states.insert(id, meta);
                }
                Some((id, None)) => {
                    states.remove(&id);
                }
                None => tracing::warn!("skipping an unreadable __transaction_state record"),
            }
        }
    })?;
    Ok(states)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn states_round_trip_in_kafkas_layout() {
        let meta = TxnMetadata {
            transactional_id: "tx".into(),
            producer_id: 4000,
            producer_epoch: 3,
            timeout_ms: 60_000,
            state: TxnState::Ongoing,
            partitions: [
                ("a".to_string(), 0),
                ("a".to_string(), 2),
                ("b".to_string(), 1),
            ]
            .into_iter()
            .collect(),
            start_ms: 10,
            last_update_ms: 11,
        };
        let (key, value) = encode("tx", Some(&meta));
        assert_eq!(&key[..], &[0, 0, 0, 2, b't', b'x']);
        let value = value.unwrap();
        // version, producer id, epoch, timeout, state, 2 topics.
        assert_eq!(&value[..2], &[0, 0]);
        assert_eq!(value[16], 1);
        assert_eq!(&value[17..21], &[0, 0, 0, 2]);
        assert_eq!(decode(&key, Some(&value)), Some(("tx".into(), Some(meta))));
        assert_eq!(decode(&key, None), Some(("tx".into(), None)));
        assert_eq!(decode(&key, Some(&value[..20])), None);
        assert_eq!(decode(&[0, 1, 0, 0], None), None);
    }
}
