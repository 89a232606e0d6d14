//! The group coordinator: classic consumer groups (join, sync, heartbeat, leave, static
//! membership) and committed offsets, persisted in `__consumer_offsets` and rebuilt on start.

pub mod group;
pub mod member;
pub mod offsets_log;
pub mod txn_offsets;

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use kafka_protocol::messages::ConsumerProtocolSubscription;
use kafka_protocol::protocol::Decodable;
use parking_lot::Mutex;
use sluice_storage::{now_ms, PartitionLog, StorageError};

use group::{Group, GroupState, JoinRequest, Joined, Synced, Timing};
use offsets_log::{Entry, Loaded, StoredGroup, StoredMember};

use txn_offsets::PendingTxnOffsets;

/// Kafka error codes the coordinator answers with.
pub mod errors {
    /// No error.
    pub const NONE: i16 = 0;
    /// UNKNOWN_TOPIC_OR_PARTITION.
    pub const UNKNOWN_TOPIC_OR_PARTITION: i16 = 3;
    /// OFFSET_METADATA_TOO_LARGE.
    pub const OFFSET_METADATA_TOO_LARGE: i16 = 12;
    /// COORDINATOR_NOT_AVAILABLE.
    pub const COORDINATOR_NOT_AVAILABLE: i16 = 15;
    /// ILLEGAL_GENERATION.
    pub const ILLEGAL_GENERATION: i16 = 22;
    /// INCONSISTENT_GROUP_PROTOCOL.
    pub const INCONSISTENT_GROUP_PROTOCOL: i16 = 23;
    /// INVALID_GROUP_ID.
    pub const INVALID_GROUP_ID: i16 = 24;
    /// UNKNOWN_MEMBER_ID.
    pub const UNKNOWN_MEMBER_ID: i16 = 25;
    /// INVALID_SESSION_TIMEOUT.
    pub const INVALID_SESSION_TIMEOUT: i16 = 26;
    /// REBALANCE_IN_PROGRESS.
    pub const REBALANCE_IN_PROGRESS: i16 = 27;
    /// KAFKA_STORAGE_ERROR.
    pub const KAFKA_STORAGE_ERROR: i16 = 56;
    /// NON_EMPTY_GROUP.
    pub const NON_EMPTY_GROUP: i16 = 68;
    /// GROUP_ID_NOT_FOUND.
    pub const GROUP_ID_NOT_FOUND: i16 = 69;
    /// MEMBER_ID_REQUIRED.
    pub const MEMBER_ID_REQUIRED: i16 = 79;
    /// FENCED_INSTANCE_ID.
    pub const FENCED_INSTANCE_ID: i16 = 82;
    /// GROUP_SUBSCRIBED_TO_TOPIC.
    pub const GROUP_SUBSCRIBED_TO_TOPIC: i16 = 86;
}

/// A committed offset of one partition.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CommittedOffset {
    /// Next offset to consume.
    pub offset: i64,
    /// Leader epoch of the record before it (-1 unknown).
    pub leader_epoch: i32,
    /// Client metadata string.
    pub metadata: String,
    /// When it was committed (ms).
    pub commit_timestamp: i64,
}

/// Coordinator settings (the broker's `group.*` and `offsets.*` configs).
#[derive(Debug, Clone, Copy)]
pub struct GroupSettings {
    /// `group.initial.rebalance.delay.ms`.
    pub initial_rebalance_delay: Duration,
    /// `group.min.session.timeout.ms`.
    pub min_session_timeout_ms: i32,
    /// `group.max.session.timeout.ms`.
    pub max_session_timeout_ms: i32,
    /// `offsets.retention.minutes`, in ms: offsets of an empty group expire after this.
    pub offsets_retention_ms: i64,
    /// `offset.metadata.max.bytes`.
    pub max_metadata_bytes: usize,
}

/// What [`GroupCoordinator::screen_offsets`] returns: a code per offset, the accepted
/// offsets, and their log entries.
type ScreenedOffsets = (Vec<i16>, Vec<((String, i32), CommittedOffset)>, Vec<Entry>);

/// Longest group id accepted (as for topic names).
pub const MAX_GROUP_ID_LEN: usize = 249;

/// A group as DescribeGroups reports it.
#[derive(Debug, Clone)]
pub struct GroupDescription {
    /// State name.
    pub state: &'static str,
    /// Protocol type.
    pub protocol_type: String,
    /// Chosen protocol.
    pub protocol: String,
    /// `(member id, instance id, client id, client host, metadata, assignment)`.
    pub members: Vec<(String, Option<String>, String, String, Bytes, Bytes)>,
}

/// The coordinator of every group on this broker.
pub struct GroupCoordinator {
    groups: Mutex<HashMap<String, Group>>,
    /// Offsets committed inside transactions not ended yet (TxnOffsetCommit); taken after
    /// `groups` when both are locked.
    pending: Mutex<PendingTxnOffsets>,
    log: Arc<PartitionLog>,
    settings: GroupSettings,
}

impl std::fmt::Debug for GroupCoordinator {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("GroupCoordinator").finish()
    }
}

fn new_member_id(client_id: &str) -> String {
    format!("{client_id}-{}", uuid::Uuid::new_v4())
}

/// Checks a group id: non-empty and not too long.
pub fn validate_group_id(id: &str) -> Result<(), i16> {
    if id.is_empty() || id.len() > MAX_GROUP_ID_LEN {
        return Err(errors::INVALID_GROUP_ID);
    }
    Ok(())
}

impl GroupCoordinator {
    /// Rebuilds every group from the offsets log.
    pub fn open(log: Arc<PartitionLog>, settings: GroupSettings) -> Result<Self, StorageError> {
        let mut groups: HashMap<String, Group> = HashMap::new();
        let now = Instant::now();
        let now_ms = now_ms();
        let mut pending = PendingTxnOffsets::default();
        for loaded in offsets_log::load(&log)? {
            let entry = match loaded {
                Loaded::Entry(entry) => entry,
                Loaded::Pending(
                    producer,
                    Entry::Offset {
                        group,
                        topic,
                        partition,
                        value: Some(value),
                    },
                ) => {
                    pending.add(producer, &group, (topic, partition), value);
                    continue;
                }
                Loaded::Pending(..) => continue,
                Loaded::Marker { producer, commit } => {
                    let done = pending.take(producer);
                    if commit {
                        for ((group, topic, partition), value) in done {
                            groups
                                .entry(group.clone())
                                .or_insert_with(|| Group::new(&group, now_ms))
                                .offsets
                                .insert((topic, partition), value);
                        }
                    }
                    continue;
                }
            };
            match entry {
                Entry::Offset {
                    group,
                    topic,
                    partition,
                    value,
                } => {
                    let g = groups
                        .entry(group.clone())
                        .or_insert_with(|| Group::new(&group, now_ms));
                    match value {
                        Some(v) => g.offsets.insert((topic, partition), v),
                        None => g.offsets.remove(&(topic, partition)),
                    };
                }
                Entry::Group { group, value: None } => {
                    groups.remove(&group);
                }
                Entry::Group {
                    group,
                    value: Some(stored),
                } => {
                    let g = groups
                        .entry(group.clone())
                        .or_insert_with(|| Group::new(&group, now_ms));
                    restore(g, stored, now);
                }
            }
        }
        tracing::info!(
            groups = groups.len(),
            "loaded consumer groups from __consumer_offsets"
        );
        Ok(GroupCoordinator {
            groups: Mutex::new(groups),
            pending: Mutex::new(pending),
            log,
            settings,
        })
    }

    fn timing(&self) -> Timing {
        Timing {
            initial_rebalance_delay: self.settings.initial_rebalance_delay,
        }
    }

    /// Writes a group's metadata once it settles (Stable or Empty) after a change.
    fn persist(&self, group: &mut Group) {
        if !group.dirty || !matches!(group.state, GroupState::Stable | GroupState::Empty) {
            return;
        }
        group.dirty = false;
        let entry = Entry::Group {
            group: group.id.clone(),
            value: Some(snapshot(group)),
        };
        if let Err(e) = offsets_log::append(&self.log, &[entry], None) {
            tracing::error!(group = %group.id, error = %e, "cannot persist group metadata");
        }
    }

    /// JoinGroup.
    pub fn join(&self, group_id: &str, req: JoinRequest) -> Joined {
        let fail = |code: i16, member: &str| {
            Joined::Now(member::JoinOutcome {
                error_code: code,
                generation: -1,
                member_id: member.to_string(),
                ..Default::default()
            })
        };
        if let Err(code) = validate_group_id(group_id) {
            return fail(code, &req.member_id);
        }
        if req.session_timeout_ms < self.settings.min_session_timeout_ms
            || req.session_timeout_ms > self.settings.max_session_timeout_ms
        {
            return fail(errors::INVALID_SESSION_TIMEOUT, &req.member_id);
        }
        let mut groups = self.groups.lock();
        let group = groups
            .entry(group_id.to_string())
            .or_insert_with(|| Group::new(group_id, now_ms()));
        if group.state == GroupState::Dead {
            *group = Group::new(group_id, now_ms());
        }
        let id = new_member_id(&req.client_id);
        let joined = group.join(req, id, self.timing(), Instant::now());
        self.persist(group);
        joined
    }

    /// SyncGroup.
    pub fn sync(
        &self,
        group_id: &str,
        member_id: &str,
        instance_id: Option<&str>,
        generation: i32,
        protocol: (Option<&str>, Option<&str>),
        assignments: Vec<(String, Bytes)>,
    ) -> Synced {
        let mut groups = self.groups.lock();
        let Some(group) = groups.get_mut(group_id) else {
            return Synced::Now(member::SyncOutcome {
                error_code: errors::UNKNOWN_MEMBER_ID,
                ..Default::default()
            });
        };
        let synced = group.sync(
            member_id,
            instance_id,
            generation,
            protocol,
            assignments,
            Instant::now(),
        );
        self.persist(group);
        synced
    }

    /// Heartbeat.
    pub fn heartbeat(
        &self,
        group_id: &str,
        member_id: &str,
        instance_id: Option<&str>,
        generation: i32,
    ) -> i16 {
        let mut groups = self.groups.lock();
        match groups.get_mut(group_id) {
            None => errors::UNKNOWN_MEMBER_ID,
            Some(g) => g.heartbeat(member_id, instance_id, generation, Instant::now()),
        }
    }

    /// LeaveGroup: per-member codes, or a group-level error.
    pub fn leave(
        &self,
        group_id: &str,
        members: &[(String, Option<String>)],
    ) -> Result<Vec<i16>, i16> {
        validate_group_id(group_id)?;
        let mut groups = self.groups.lock();
        let Some(group) = groups.get_mut(group_id) else {
            return Ok(vec![errors::UNKNOWN_MEMBER_ID; members.len()]);
        };
        let codes = group.leave(members, self.timing(), Instant::now());
        self.persist(group);
        Ok(codes)
    }

    /// OffsetCommit: validates the committer, writes the offsets to `__consumer_offsets`,
    /// then makes them visible. A generation below 0 is a commit from a consumer that
    /// manages its partitions itself, allowed while the group has no members.
    pub fn commit(
        &self,
        group_id: &str,
        generation: i32,
        member_id: &str,
        instance_id: Option<&str>,
        offsets: Vec<((String, i32), CommittedOffset)>,
    ) -> Result<Vec<i16>, i16> {
        validate_group_id(group_id)?;
        let mut groups = self.groups.lock();
        let standalone = generation < 0 && member_id.is_empty();
        if !standalone && !groups.contains_key(group_id) {
            // A member commit to a group that does not exist creates nothing (as in Kafka).
            return Err(errors::ILLEGAL_GENERATION);
        }
        let group = groups
            .entry(group_id.to_string())
            .or_insert_with(|| Group::new(group_id, now_ms()));
        if standalone {
            if !group.members.is_empty() {
                return Err(errors::UNKNOWN_MEMBER_ID);
            }
        } else {
            group.check_member(member_id, instance_id)?;
            if generation != group.generation {
                return Err(errors::ILLEGAL_GENERATION);
            }
            match group.state {
                // As in Kafka, a member of the current generation may commit while the group
                // prepares a rebalance: an eager consumer commits what it processed in
                // onPartitionsRevoked, after the rebalance started and before it rejoins.
                // A commit also counts as a sign of life, like a heartbeat.
                GroupState::Stable | GroupState::PreparingRebalance => {
                    group.touch(member_id, Instant::now())
                }
                GroupState::CompletingRebalance => return Err(errors::REBALANCE_IN_PROGRESS),
                GroupState::Empty | GroupState::Dead => return Err(errors::UNKNOWN_MEMBER_ID),
            }
        }
        let (codes, accepted, entries) = self.screen_offsets(group_id, offsets);
        offsets_log::append(&self.log, &entries, None).map_err(|e| {
            tracing::error!(group = group_id, error = %e, "cannot write offsets");
            errors::KAFKA_STORAGE_ERROR
        })?;
        group.offsets.extend(accepted);
        Ok(codes)
    }

    /// Splits offsets to commit into a code per offset (OFFSET_METADATA_TOO_LARGE or NONE),
    /// the accepted ones, and their `__consumer_offsets` entries.
    fn screen_offsets(
        &self,
        group_id: &str,
        offsets: Vec<((String, i32), CommittedOffset)>,
    ) -> ScreenedOffsets {
        let codes: Vec<i16> = offsets
            .iter()
            .map(|(_, o)| {
                if o.metadata.len() > self.settings.max_metadata_bytes {
                    errors::OFFSET_METADATA_TOO_LARGE
                } else {
                    errors::NONE
                }
            })
            .collect();
        let accepted: Vec<((String, i32), CommittedOffset)> = offsets
            .into_iter()
            .zip(&codes)
            .filter(|(_, c)| **c == errors::NONE)
            .map(|(o, _)| o)
            .collect();
        let entries: Vec<Entry> = accepted
            .iter()
            .map(|((topic, partition), value)| Entry::Offset {
                group: group_id.to_string(),
                topic: topic.clone(),
                partition: *partition,
                value: Some(value.clone()),
            })
            .collect();
        (codes, accepted, entries)
    }

    /// Committed offsets of `partitions` (all committed ones when `None`).
    pub fn committed(
        &self,
        group_id: &str,
        partitions: Option<Vec<(String, i32)>>,
    ) -> Vec<((String, i32), Option<CommittedOffset>)> {
        let groups = self.groups.lock();
        let group = groups.get(group_id);
        match partitions {
            Some(list) => list
                .into_iter()
                .map(|tp| {
                    let found = group.and_then(|g| g.offsets.get(&tp).cloned());
                    (tp, found)
                })
                .collect(),
            None => group
                .map(|g| {
                    g.offsets
                        .iter()
                        .map(|(k, v)| (k.clone(), Some(v.clone())))
                        .collect()
                })
                .unwrap_or_default(),
        }
    }

    /// DescribeGroups of one group; `None` if unknown.
    pub fn describe(&self, group_id: &str) -> Option<GroupDescription> {
        let groups = self.groups.lock();
        let g = groups.get(group_id)?;
        let protocol = g.protocol_name.clone().unwrap_or_default();
        let stable = matches!(g.state, GroupState::Stable);
        Some(GroupDescription {
            state: g.state.name(),
            protocol_type: g.protocol_type.clone().unwrap_or_default(),
            protocol: if stable {
                protocol.clone()
            } else {
                String::new()
            },
            members: g
                .members
                .iter()
                .map(|m| {
                    (
                        m.id.clone(),
                        m.instance_id.clone(),
                        m.client_id.clone(),
                        m.client_host.clone(),
                        m.metadata_for(&protocol),
                        if stable {
                            m.assignment.clone()
                        } else {
                            Bytes::new()
                        },
                    )
                })
                .collect(),
        })
    }

    /// Every group: `(id, protocol type, state name)`.
    pub fn list(&self) -> Vec<(String, String, &'static str)> {
        let groups = self.groups.lock();
        let mut all: Vec<_> = groups
            .values()
            .filter(|g| g.state != GroupState::Dead)
            .map(|g| {
                (
                    g.id.clone(),
                    g.protocol_type.clone().unwrap_or_default(),
                    g.state.name(),
                )
            })
            .collect();
        all.sort();
        all
    }

    /// DeleteGroups of one group.
    pub fn delete(&self, group_id: &str) -> i16 {
        if validate_group_id(group_id).is_err() {
            return errors::INVALID_GROUP_ID;
        }
        let mut groups = self.groups.lock();
        let Some(group) = groups.get(group_id) else {
            return errors::GROUP_ID_NOT_FOUND;
        };
        if !group.members.is_empty() {
            return errors::NON_EMPTY_GROUP;
        }
        if let Err(e) = offsets_log::append(&self.log, &tombstones(group), None) {
            tracing::error!(group = group_id, error = %e, "cannot delete group");
            return errors::KAFKA_STORAGE_ERROR;
        }
        groups.remove(group_id);
        errors::NONE
    }

    /// OffsetDelete: removes committed offsets of partitions the group does not consume.
    pub fn delete_offsets(
        &self,
        group_id: &str,
        partitions: &[(String, i32)],
    ) -> Result<Vec<i16>, i16> {
        validate_group_id(group_id)?;
        let mut groups = self.groups.lock();
        let group = groups.get_mut(group_id).ok_or(errors::GROUP_ID_NOT_FOUND)?;
        let subscribed = subscribed_topics(group);
        let codes: Vec<i16> = partitions
            .iter()
            .map(|(topic, _)| {
                if subscribed.contains(topic) {
                    errors::GROUP_SUBSCRIBED_TO_TOPIC
                } else {
                    errors::NONE
                }
            })
            .collect();
        let doomed: Vec<(String, i32)> = partitions
            .iter()
            .zip(&codes)
            .filter(|(tp, c)| **c == errors::NONE && group.offsets.contains_key(*tp))
            .map(|(tp, _)| tp.clone())
            .collect();
        let entries: Vec<Entry> = doomed
            .iter()
            .map(|(topic, partition)| Entry::Offset {
                group: group_id.to_string(),
                topic: topic.clone(),
                partition: *partition,
                value: None,
            })
            .collect();
        offsets_log::append(&self.log, &entries, None).map_err(|_| errors::KAFKA_STORAGE_ERROR)?;
        for tp in doomed {
            group.offsets.remove(&tp);
        }
        Ok(codes)
    }

    /// Expires sessions and rebalance phases, and the offsets of long-empty groups.
    pub fn tick(&self) {
        let now = Instant::now();
        let now_ms = now_ms();
        let mut groups = self.groups.lock();
        let mut expired_groups = Vec::new();
        for group in groups.values_mut() {
            group.tick(self.timing(), now);
            self.persist(group);
            if group.state == GroupState::Empty
                && now_ms.saturating_sub(group.empty_since_ms) > self.settings.offsets_retention_ms
            {
                expired_groups.push(group.id.clone());
            }
        }
        for id in expired_groups {
            if let Some(group) = groups.get(&id) {
                if offsets_log::append(&self.log, &tombstones(group), None).is_ok() {
                    tracing::info!(group = %id, "expired empty group and its offsets");
                    groups.remove(&id);
                }
            }
        }
    }
}

/// Records deleting a group: a tombstone for each committed offset, then for its metadata.
fn tombstones(group: &Group) -> Vec<Entry> {
    let mut entries: Vec<Entry> = group
        .offsets
        .keys()
        .map(|(topic, partition)| Entry::Offset {
            group: group.id.clone(),
            topic: topic.clone(),
            partition: *partition,
            value: None,
        })
        .collect();
    entries.push(Entry::Group {
        group: group.id.clone(),
        value: None,
    });
    entries
}

/// Topics the members of a consumer group subscribe to (from their subscription metadata).
fn subscribed_topics(group: &Group) -> Vec<String> {
    if group.protocol_type.as_deref() != Some("consumer") {
        return Vec::new();
    }
    let protocol = group.protocol_name.clone().unwrap_or_default();
    let mut topics = Vec::new();
    for m in &group.members {
        let mut meta = m.metadata_for(&protocol);
        if meta.len() < 2 {
            continue;
        }
        let version = i16::from_be_bytes([meta[0], meta[1]]);
        let _ = bytes::Buf::get_i16(&mut meta);
        if let Ok(sub) = ConsumerProtocolSubscription::decode(&mut meta, version) {
            topics.extend(sub.topics.iter().map(|t| t.to_string()));
        }
    }
    topics
}

fn snapshot(group: &Group) -> StoredGroup {
    let protocol = group.protocol_name.clone().unwrap_or_default();
    StoredGroup {
        protocol_type: group.protocol_type.clone().unwrap_or_default(),
        generation: group.generation,
        protocol: group.protocol_name.clone(),
        leader: group.leader.clone(),
        state_timestamp: now_ms(),
        members: group
            .members
            .iter()
            .map(|m| StoredMember {
                member_id: m.id.clone(),
                instance_id: m.instance_id.clone(),
                client_id: m.client_id.clone(),
                client_host: m.client_host.clone(),
                rebalance_timeout_ms: m.rebalance_timeout_ms,
                session_timeout_ms: m.session_timeout_ms,
                subscription: m.metadata_for(&protocol),
                assignment: m.assignment.clone(),
            })
            .collect(),
    }
}

fn restore(group: &mut Group, stored: StoredGroup, now: Instant) {
    group.protocol_type = (!stored.protocol_type.is_empty()).then_some(stored.protocol_type);
    group.generation = stored.generation;
    group.protocol_name = stored.protocol.clone();
    group.leader = stored.leader;
    let protocol = stored.protocol.unwrap_or_default();
    group.members = stored
        .members
        .into_iter()
        .map(|m| member::Member {
            id: m.member_id,
            instance_id: m.instance_id,
            client_id: m.client_id,
            client_host: m.client_host,
            session_timeout_ms: m.session_timeout_ms,
            rebalance_timeout_ms: m.rebalance_timeout_ms,
            protocols: vec![(protocol.clone(), m.subscription)],
            assignment: m.assignment,
            last_seen: now,
            join_waiter: None,
            sync_waiter: None,
        })
        .collect();
    group.state = if group.members.is_empty() {
        GroupState::Empty
    } else {
        GroupState::Stable
    };
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use sluice_storage::{LogConfig, TopicPartition};

    pub(super) fn coordinator(dir: &std::path::Path, retention_ms: i64) -> GroupCoordinator {
        let log = PartitionLog::open(
            &dir.join("__consumer_offsets-0"),
            TopicPartition::new(offsets_log::TOPIC, 0),
            LogConfig::default(),
            true,
            now_ms(),
        )
        .unwrap();
        GroupCoordinator::open(
            Arc::new(log),
            GroupSettings {
                initial_rebalance_delay: Duration::from_millis(0),
                min_session_timeout_ms: 1,
                max_session_timeout_ms: 60_000,
                offsets_retention_ms: retention_ms,
                max_metadata_bytes: 10,
            },
        )
        .unwrap()
    }

    pub(super) fn offset(o: i64, metadata: &str) -> CommittedOffset {
        CommittedOffset {
            offset: o,
            leader_epoch: 0,
            metadata: metadata.to_string(),
            commit_timestamp: now_ms(),
        }
    }

    #[test]
    fn standalone_commits_persist_and_reload() {
        let dir = tempfile::tempdir().unwrap();
        let c = coordinator(dir.path(), 60_000);
        let codes = c
            .commit(
                "g",
                -1,
                "",
                None,
                vec![
                    (("t".into(), 0), offset(5, "m")),
                    (("t".into(), 1), offset(7, "far too long metadata")),
                ],
            )
            .unwrap();
        assert_eq!(codes, vec![errors::NONE, errors::OFFSET_METADATA_TOO_LARGE]);
        drop(c);
        let c = coordinator(dir.path(), 60_000);
        let got = c.committed("g", Some(vec![("t".into(), 0), ("t".into(), 1)]));
        assert_eq!(
            got[0].1.as_ref().map(|o| (o.offset, o.metadata.as_str())),
            Some((5, "m"))
        );
        assert_eq!(got[1].1, None);
        assert_eq!(c.list(), vec![("g".to_string(), String::new(), "Empty")]);
    }

    #[test]
    fn member_commits_to_unknown_groups_create_nothing() {
        let dir = tempfile::tempdir().unwrap();
        let c = coordinator(dir.path(), 60_000);
        let err = c.commit(
            "ghost",
            3,
            "m-1",
            None,
            vec![(("t".into(), 0), offset(1, ""))],
        );
        assert_eq!(err, Err(errors::ILLEGAL_GENERATION));
        assert!(c.list().is_empty());
    }

    #[test]
    fn empty_groups_expire_with_their_offsets_after_retention() {
        let dir = tempfile::tempdir().unwrap();
        let c = coordinator(dir.path(), 20);
        c.commit("old", -1, "", None, vec![(("t".into(), 0), offset(9, ""))])
            .unwrap();
        assert_eq!(c.list().len(), 1);
        std::thread::sleep(Duration::from_millis(50));
        c.tick();
        assert!(c.list().is_empty(), "the expired group is still listed");
        assert_eq!(c.committed("old", Some(vec![("t".into(), 0)]))[0].1, None);
        drop(c);
        // The expiry was written: a restart does not bring the offsets back.
        let c = coordinator(dir.path(), 60_000);
        assert!(c.list().is_empty());
        assert_eq!(c.committed("old", None), vec![]);
    }
}
