//! Offsets committed inside a transaction (TxnOffsetCommit, KIP-98/KIP-447): written to
//! `__consumer_offsets` as the producer's transactional records, held aside until the
//! transaction coordinator writes the commit marker (then they become the group's committed
//! offsets) or the abort marker (then they are dropped).

use std::collections::{BTreeMap, HashMap};

use super::group::Group;
use super::offsets_log;
use super::{errors, validate_group_id, CommittedOffset, GroupCoordinator};
use crate::internal_log::TxnProducer;
use sluice_storage::now_ms;

/// `(group, topic, partition)`.
type GroupPartition = (String, String, i32);

/// Pending transactional offsets per producer id.
#[derive(Debug, Default)]
pub struct PendingTxnOffsets {
    by_producer: HashMap<i64, BTreeMap<GroupPartition, CommittedOffset>>,
}

impl PendingTxnOffsets {
    /// Holds an offset of `producer`'s open transaction (a later one for the same
    /// partition replaces it).
    pub fn add(&mut self, producer: i64, group: &str, tp: (String, i32), value: CommittedOffset) {
        self.by_producer
            .entry(producer)
            .or_default()
            .insert((group.to_string(), tp.0, tp.1), value);
    }

    /// Takes the offsets of `producer`'s transaction (when it ends).
    pub fn take(&mut self, producer: i64) -> BTreeMap<GroupPartition, CommittedOffset> {
        self.by_producer.remove(&producer).unwrap_or_default()
    }

    /// Whether an open transaction holds an offset for this group's partition.
    pub fn holds(&self, group: &str, topic: &str, partition: i32) -> bool {
        let key = (group.to_string(), topic.to_string(), partition);
        self.by_producer.values().any(|m| m.contains_key(&key))
    }
}

/// Who sends a TxnOffsetCommit (KIP-447: the consumer's group generation and member, so a
/// zombie whose partitions moved to another member is refused).
#[derive(Debug, Clone)]
pub struct TxnCommitter<'a> {
    /// The transactional producer.
    pub producer: TxnProducer,
    /// Group generation, -1 when not given (v0-2).
    pub generation: i32,
    /// Member id, empty when not given.
    pub member_id: &'a str,
    /// Static member instance id.
    pub instance_id: Option<&'a str>,
}

impl GroupCoordinator {
    /// TxnOffsetCommit: checks the committer against the group (KIP-447), writes the offsets
    /// as `producer`'s transactional records and holds them until the transaction ends.
    /// Returns a code per offset, or one code for the whole request.
    pub fn txn_commit(
        &self,
        group_id: &str,
        committer: &TxnCommitter<'_>,
        offsets: Vec<((String, i32), CommittedOffset)>,
    ) -> Result<Vec<i16>, i16> {
        validate_group_id(group_id)?;
        let mut groups = self.groups.lock();
        let group = groups
            .entry(group_id.to_string())
            .or_insert_with(|| Group::new(group_id, now_ms()));
        if !committer.member_id.is_empty() {
            group.check_member(committer.member_id, committer.instance_id)?;
        }
        if committer.generation >= 0 && committer.generation != group.generation {
            return Err(errors::ILLEGAL_GENERATION);
        }
        let (codes, accepted, entries) = self.screen_offsets(group_id, offsets);
        offsets_log::append(&self.log, &entries, Some(committer.producer)).map_err(|e| {
            tracing::warn!(group = group_id, error = %e, "cannot write transactional offsets");
            e.kafka_error_code()
        })?;
        let mut pending = self.pending.lock();
        for (tp, value) in accepted {
            pending.add(committer.producer.id, group_id, tp, value);
        }
        Ok(codes)
    }

    /// The transaction of `producer` ended (its marker is in `__consumer_offsets`): its
    /// offsets become committed, or are dropped.
    pub fn complete_txn(&self, producer: i64, commit: bool) {
        let mut groups = self.groups.lock();
        let done = self.pending.lock().take(producer);
        if !commit {
            return;
        }
        for ((group, topic, partition), value) in done {
            groups
                .entry(group.clone())
                .or_insert_with(|| Group::new(&group, now_ms()))
                .offsets
                .insert((topic, partition), value);
        }
    }

    /// Whether an open transaction holds an offset for the partition (OffsetFetch with
    /// require_stable answers UNSTABLE_OFFSET_COMMIT then).
    pub fn has_pending_offset(&self, group: &str, topic: &str, partition: i32) -> bool {
        self.pending.lock().holds(group, topic, partition)
    }
}

#[cfg(test)]
mod tests {
    use sluice_storage::TxnMarker;

    use super::super::tests::{coordinator, offset};
    use super::*;

    const DAY: i64 = 86_400_000;

    fn committer(id: i64) -> TxnCommitter<'static> {
        TxnCommitter {
            producer: TxnProducer { id, epoch: 0 },
            generation: -1,
            member_id: "",
            instance_id: None,
        }
    }

    fn end(c: &GroupCoordinator, producer: i64, commit: bool) {
        let marker = TxnMarker {
            producer_id: producer,
            producer_epoch: 0,
            coordinator_epoch: 0,
            commit,
        };
        c.log.write_marker(&marker, now_ms()).unwrap();
        c.complete_txn(producer, commit);
    }

    fn committed(c: &GroupCoordinator, group: &str, partition: i32) -> Option<i64> {
        c.committed(group, Some(vec![("t".to_string(), partition)]))[0]
            .1
            .as_ref()
            .map(|o| o.offset)
    }

    #[test]
    fn transactional_offsets_count_only_once_committed_also_after_a_restart() {
        let dir = tempfile::tempdir().unwrap();
        {
            let c = coordinator(dir.path(), DAY);
            c.commit("g", -1, "", None, vec![(("t".into(), 0), offset(5, ""))])
                .unwrap();
            c.txn_commit("g", &committer(1), vec![(("t".into(), 0), offset(10, ""))])
                .unwrap();
            c.txn_commit("g", &committer(2), vec![(("t".into(), 1), offset(20, ""))])
                .unwrap();
            c.txn_commit("g", &committer(3), vec![(("t".into(), 2), offset(30, ""))])
                .unwrap();
            assert_eq!(committed(&c, "g", 0), Some(5), "pending until the marker");
            assert!(c.has_pending_offset("g", "t", 0));
            end(&c, 1, true);
            end(&c, 2, false);
            assert_eq!(committed(&c, "g", 0), Some(10));
            assert_eq!(committed(&c, "g", 1), None, "aborted offsets are dropped");
            assert!(!c.has_pending_offset("g", "t", 0));
            assert!(c.has_pending_offset("g", "t", 2));
        }
        let c = coordinator(dir.path(), DAY);
        assert_eq!(committed(&c, "g", 0), Some(10));
        assert_eq!(committed(&c, "g", 1), None);
        assert_eq!(committed(&c, "g", 2), None);
        assert!(
            c.has_pending_offset("g", "t", 2),
            "an open transaction's offsets stay pending across a restart"
        );
        end(&c, 3, true);
        assert_eq!(committed(&c, "g", 2), Some(30));
    }

    #[test]
    fn zombie_members_are_refused_by_generation_and_member_id() {
        let dir = tempfile::tempdir().unwrap();
        let c = coordinator(dir.path(), DAY);
        let zombie = TxnCommitter {
            member_id: "gone",
            ..committer(1)
        };
        let offsets = || vec![(("t".to_string(), 0), offset(1, ""))];
        assert_eq!(
            c.txn_commit("g", &zombie, offsets()),
            Err(errors::UNKNOWN_MEMBER_ID)
        );
        let old_generation = TxnCommitter {
            generation: 7,
            ..committer(1)
        };
        assert_eq!(
            c.txn_commit("g", &old_generation, offsets()),
            Err(errors::ILLEGAL_GENERATION)
        );
        assert!(!c.has_pending_offset("g", "t", 0));
    }
}
