//! The classic group protocol's state machine for one group: joins, the rebalance barrier,
//! the leader's assignment, heartbeats, leaves and session expiry. Everything here is
//! synchronous and runs under the coordinator's lock; waiting callers hold oneshot
//! receivers that the state machine completes.

use std::collections::{BTreeMap, HashMap};
use std::time::{Duration, Instant};

use bytes::Bytes;
use tokio::sync::oneshot;

use super::member::{select_protocol, JoinOutcome, Member, SyncOutcome};
use super::{errors, CommittedOffset};

/// The states of a classic group, named as Kafka names them in DescribeGroups/ListGroups.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum GroupState {
    /// No members (offsets may remain).
    Empty,
    /// Waiting for members to (re)join.
    PreparingRebalance,
    /// Joined; waiting for the leader's assignment.
    CompletingRebalance,
    /// Everyone has an assignment.
    Stable,
    /// Deleted.
    Dead,
}

impl GroupState {
    /// Kafka's name of the state.
    pub fn name(self) -> &'static str {
        match self {
            GroupState::Empty => "Empty",
            GroupState::PreparingRebalance => "PreparingRebalance",
            GroupState::CompletingRebalance => "CompletingRebalance",
            GroupState::Stable => "Stable",
            GroupState::Dead => "Dead",
        }
    }
}

/// Timing settings every group follows.
#[derive(Debug, Clone, Copy)]
pub struct Timing {
    /// `group.initial.rebalance.delay.ms`.
    pub initial_rebalance_delay: Duration,
}

/// A JoinGroup request, as the state machine needs it.
#[derive(Debug, Clone)]
pub struct JoinRequest {
    /// Member id ("" for a new member).
    pub member_id: String,
    /// Static membership id.
    pub instance_id: Option<String>,
    /// Client id.
    pub client_id: String,
    /// Client address.
    pub client_host: String,
    /// Session timeout.
    pub session_timeout_ms: i32,
    /// Rebalance timeout.
    pub rebalance_timeout_ms: i32,
    /// Protocol type.
    pub protocol_type: String,
    /// Supported protocols in preference order.
    pub protocols: Vec<(String, Bytes)>,
    /// Whether a new dynamic member must first get its id (KIP-394, JoinGroup v4+).
    pub require_known_member_id: bool,
    /// Whether the response can tell a leader to skip the assignment (KIP-814, v9+).
    pub supports_skip_assignment: bool,
}

/// A join is answered now or later.
pub enum Joined {
    /// The answer.
    Now(JoinOutcome),
    /// The answer arrives when the rebalance completes.
    Later(oneshot::Receiver<JoinOutcome>),
}

/// A sync is answered now or when the leader's assignment arrives.
pub enum Synced {
    /// The answer.
    Now(SyncOutcome),
    /// The answer arrives with the leader's SyncGroup.
    Later(oneshot::Receiver<SyncOutcome>),
}

/// One consumer group.
#[derive(Debug)]
pub struct Group {
    /// Group id.
    pub id: String,
    /// Current state.
    pub state: GroupState,
    /// Protocol type of the members ("consumer").
    pub protocol_type: Option<String>,
    /// Chosen protocol of the current generation.
    pub protocol_name: Option<String>,
    /// Generation id.
    pub generation: i32,
    /// Leader member id.
    pub leader: Option<String>,
    /// Members in the order they joined.
    pub members: Vec<Member>,
    /// Member ids handed out by MEMBER_ID_REQUIRED, with when they expire.
    pending: HashMap<String, Instant>,
    /// Committed offsets by (topic, partition).
    pub offsets: BTreeMap<(String, i32), CommittedOffset>,
    rebalance_deadline: Option<Instant>,
    initial_deadline: Option<Instant>,
    sync_deadline: Option<Instant>,
    /// When the group last became empty (ms), for offsets retention.
    pub empty_since_ms: i64,
    /// Set when the group changed in a way that must be persisted.
    pub dirty: bool,
}

fn outcome_error(code: i16, member_id: &str) -> JoinOutcome {
    JoinOutcome {
        error_code: code,
        generation: -1,
        member_id: member_id.to_string(),
        ..JoinOutcome::default()
    }
}

fn sync_error(code: i16) -> SyncOutcome {
    SyncOutcome {
        error_code: code,
        ..SyncOutcome::default()
    }
}

impl Group {
    /// A new, empty group.
    pub fn new(id: &str, now_ms: i64) -> Self {
        Group {
            id: id.to_string(),
            state: GroupState::Empty,
            protocol_type: None,
            protocol_name: None,
            generation: 0,
            leader: None,
            members: Vec::new(),
            pending: HashMap::new(),
            offsets: BTreeMap::new(),
            rebalance_deadline: None,
            initial_deadline: None,
            sync_deadline: None,
            empty_since_ms: now_ms,
            dirty: false,
        }
    }

    /// The member with `id`.
    pub fn member(&self, id: &str) -> Option<&Member> {
        self.members.iter().find(|m| m.id == id)
    }

    fn member_mut(&mut self, id: &str) -> Option<&mut Member> {
        self.members.iter_mut().find(|m| m.id == id)
    }

    /// Records a sign of life from a member (it stays in the group for another session).
    pub fn touch(&mut self, id: &str, now: Instant) {
        if let Some(m) = self.member_mut(id) {
            m.last_seen = now;
        }
    }

    fn member_by_instance(&self, instance: &str) -> Option<&Member> {
        self.members
            .iter()
            .find(|m| m.instance_id.as_deref() == Some(instance))
    }

    /// Checks a request's member id against the group: UNKNOWN_MEMBER_ID if absent,
    /// FENCED_INSTANCE_ID if a static instance id now belongs to another member id.
    pub fn check_member(&self, member_id: &str, instance_id: Option<&str>) -> Result<(), i16> {
        if let Some(instance) = instance_id {
            if let Some(m) = self.member_by_instance(instance) {
                if m.id != member_id {
                    return Err(errors::FENCED_INSTANCE_ID);
                }
            }
        }
        if self.member(member_id).is_none() {
            return Err(errors::UNKNOWN_MEMBER_ID);
        }
        Ok(())
    }

    /// Every member with its metadata for the chosen protocol, as the leader gets it.
    fn roster(&self) -> Vec<(String, Option<String>, Bytes)> {
        let protocol = self.protocol_name.clone().unwrap_or_default();
        self.members
            .iter()
            .map(|m| {
                (
                    m.id.clone(),
                    m.instance_id.clone(),
                    m.metadata_for(&protocol),
                )
            })
            .collect()
    }

    /// Handles a JoinGroup.
    pub fn join(
        &mut self,
        req: JoinRequest,
        new_member_id: String,
        timing: Timing,
        now: Instant,
    ) -> Joined {
        if self.state == GroupState::Dead {
            return Joined::Now(outcome_error(
                errors::COORDINATOR_NOT_AVAILABLE,
                &req.member_id,
            ));
        }
        if req.protocols.is_empty()
            || (!self.members.is_empty()
                && (self.protocol_type.as_deref() != Some(req.protocol_type.as_str())
                    || !req
                        .protocols
                        .iter()
                        .any(|(name, _)| self.members.iter().all(|m| m.supports(name)))))
        {
            return Joined::Now(outcome_error(
                errors::INCONSISTENT_GROUP_PROTOCOL,
                &req.member_id,
            ));
        }
        if req.member_id.is_empty() {
            if let Some(instance) = req.instance_id.clone() {
                return self.join_static_without_id(req, &instance, new_member_id, timing, now);
            }
            if req.require_known_member_id {
                self.pending.insert(
                    new_member_id.clone(),
                    now + Duration::from_millis(req.session_timeout_ms.max(0) as u64),
                );
                return Joined::Now(JoinOutcome {
                    error_code: errors::MEMBER_ID_REQUIRED,
                    generation: -1,
                    member_id: new_member_id,
                    ..JoinOutcome::default()
                });
            }
            return self.add_member_and_wait(req, new_member_id, timing, now);
        }
        // A static instance id now held by another member id: this caller is a stale or
        // duplicate incarnation, told to shut down (Kafka checks this before the member id).
        if let Some(instance) = req.instance_id.as_deref() {
            if self
                .member_by_instance(instance)
                .is_some_and(|m| m.id != req.member_id)
            {
                return Joined::Now(outcome_error(errors::FENCED_INSTANCE_ID, &req.member_id));
            }
        }
        if self.member(&req.member_id).is_some() {
            if let Err(code) = self.check_member(&req.member_id, req.instance_id.as_deref()) {
                return Joined::Now(outcome_error(code, &req.member_id));
            }
            return self.rejoin(req, timing, now);
        }
        if self.pending.remove(&req.member_id).is_some() {
            let id = req.member_id.clone();
            return self.add_member_and_wait(req, id, timing, now);
        }
        Joined::Now(outcome_error(errors::UNKNOWN_MEMBER_ID, &req.member_id))
    }

    /// A static member rejoining without its member id (a restart): it takes over its old
    /// membership under a new id; a stable group keeps its assignment, with no rebalance.
    fn join_static_without_id(
        &mut self,
        req: JoinRequest,
        instance: &str,
        new_id: String,
        timing: Timing,
        now: Instant,
    ) -> Joined {
        let Some(old_id) = self.member_by_instance(instance).map(|m| m.id.clone()) else {
            return self.add_member_and_wait(req, new_id, timing, now);
        };
        let protocols_kept = self
            .protocol_name
            .as_deref()
            .is_some_and(|p| req.protocols.iter().any(|(name, _)| name == p));
        let was_leader = self.leader.as_deref() == Some(old_id.as_str());
        let old_leader = self.leader.clone().unwrap_or_default();
        if let Some(m) = self.member_mut(&old_id) {
            // The old incarnation's pending calls are fenced.
            if let Some(w) = m.join_waiter.take() {
                let _ = w.send(outcome_error(errors::FENCED_INSTANCE_ID, &old_id));
            }
            if let Some(w) = m.sync_waiter.take() {
                let _ = w.send(sync_error(errors::FENCED_INSTANCE_ID));
            }
            m.id = new_id.clone();
            m.protocols = req.protocols.clone();
            m.session_timeout_ms = req.session_timeout_ms;
            m.rebalance_timeout_ms = req.rebalance_timeout_ms;
            m.client_id = req.client_id.clone();
            m.client_host = req.client_host.clone();
            m.last_seen = now;
        }
        if was_leader {
            self.leader = Some(new_id.clone());
        }
        self.dirty = true;
        if self.state == GroupState::Stable && protocols_kept {
            // As Kafka answers a restarted static member of a stable group: from JoinGroup v9
            // a restarted leader learns it leads (with the roster, to keep watching metadata)
            // but is told to skip the assignment (KIP-814). Older clients cannot be told that,
            // so they get the previous leader id: a restarted leader then does not recognise
            // itself and syncs as a follower instead of assigning over an empty roster (which
            // makes kafka-python's leader see a changed subscription and force a rebalance).
            let (leader, members) = if req.supports_skip_assignment {
                let roster = if was_leader {
                    self.roster()
                } else {
                    Vec::new()
                };
                (self.leader.clone().unwrap_or_default(), roster)
            } else {
                (old_leader, Vec::new())
            };
            return Joined::Now(JoinOutcome {
                error_code: 0,
                generation: self.generation,
                protocol_type: self.protocol_type.clone(),
                protocol_name: self.protocol_name.clone(),
                leader,
                member_id: new_id,
                members,
                skip_assignment: was_leader && req.supports_skip_assignment,
            });
        }
        let (tx, rx) = oneshot::channel();
        if let Some(m) = self.member_mut(&new_id) {
            m.join_waiter = Some(tx);
        }
        if self.state != GroupState::PreparingRebalance {
            self.prepare_rebalance(timing, now);
        }
        self.maybe_complete_join(now);
        Joined::Later(rx)
    }

    fn rejoin(&mut self, req: JoinRequest, timing: Timing, now: Instant) -> Joined {
        let is_leader = self.leader.as_deref() == Some(req.member_id.as_str());
        let changed = self
            .member(&req.member_id)
            .is_some_and(|m| m.protocols != req.protocols);
        let (tx, rx) = oneshot::channel();
        if let Some(m) = self.member_mut(&req.member_id) {
            m.protocols = req.protocols;
            m.session_timeout_ms = req.session_timeout_ms;
            m.rebalance_timeout_ms = req.rebalance_timeout_ms;
            m.last_seen = now;
            m.join_waiter = Some(tx);
        }
        match self.state {
            GroupState::PreparingRebalance => {}
            GroupState::Stable | GroupState::CompletingRebalance if !is_leader && !changed => {
                // A follower rejoining without changes gets the current generation back.
                let outcome = JoinOutcome {
                    error_code: 0,
                    generation: self.generation,
                    protocol_type: self.protocol_type.clone(),
                    protocol_name: self.protocol_name.clone(),
                    leader: self.leader.clone().unwrap_or_default(),
                    member_id: req.member_id.clone(),
                    members: Vec::new(),
                    skip_assignment: false,
                };
                if let Some(m) = self.member_mut(&req.member_id) {
                    m.join_waiter = None;
                }
                return Joined::Now(outcome);
            }
            _ => self.prepare_rebalance(timing, now),
        }
        self.maybe_complete_join(now);
        Joined::Later(rx)
    }

    fn add_member_and_wait(
        &mut self,
        req: JoinRequest,
        id: String,
        timing: Timing,
        now: Instant,
    ) -> Joined {
        let (tx, rx) = oneshot::channel();
        if self.members.is_empty() {
            self.protocol_type = Some(req.protocol_type.clone());
        }
        self.members.push(Member {
            id,
            instance_id: req.instance_id,
            client_id: req.client_id,
            client_host: req.client_host,
            session_timeout_ms: req.session_timeout_ms,
            rebalance_timeout_ms: req.rebalance_timeout_ms,
            protocols: req.protocols,
            assignment: Bytes::new(),
            last_seen: now,
            join_waiter: Some(tx),
            sync_waiter: None,
        });
        if self.state == GroupState::PreparingRebalance {
            // A member arriving during the initial delay extends it (up to the rebalance
            // timeout), so a burst of starting consumers lands in one generation.
            if self.initial_deadline.is_some() {
                let extended = now + timing.initial_rebalance_delay;
                self.initial_deadline = Some(
                    self.rebalance_deadline
                        .map_or(extended, |d| extended.min(d)),
                );
            }
        } else {
            self.prepare_rebalance(timing, now);
        }
        self.maybe_complete_join(now);
        Joined::Later(rx)
    }

    /// The longest rebalance timeout any member asked for: how long a rebalance phase waits.
    fn rebalance_timeout(&self) -> Duration {
        let ms = self
            .members
            .iter()
            .map(|m| m.rebalance_timeout_ms)
            .max()
            .unwrap_or(0);
        Duration::from_millis(ms.max(0) as u64)
    }

    /// Starts a rebalance: members must rejoin before the rebalance timeout.
    pub fn prepare_rebalance(&mut self, timing: Timing, now: Instant) {
        let initial = self.state == GroupState::Empty;
        for m in &mut self.members {
            if let Some(w) = m.sync_waiter.take() {
                let _ = w.send(sync_error(errors::REBALANCE_IN_PROGRESS));
            }
        }
        self.state = GroupState::PreparingRebalance;
        self.sync_deadline = None;
        let deadline = now + self.rebalance_timeout();
        self.rebalance_deadline = Some(deadline);
        self.initial_deadline =
            initial.then(|| (now + timing.initial_rebalance_delay).min(deadline));
    }

    /// Completes the join phase once every member has rejoined (and any initial delay has
    /// passed), or the rebalance timeout has.
    pub fn maybe_complete_join(&mut self, now: Instant) {
        if self.state != GroupState::PreparingRebalance {
            return;
        }
        let timed_out = self.rebalance_deadline.is_some_and(|d| now >= d);
        if !timed_out {
            if self.initial_deadline.is_some_and(|d| now < d) {
                return;
            }
            let all_joined =
                self.members.iter().all(Member::is_awaiting_join) && self.pending.is_empty();
            if !all_joined {
                return;
            }
        }
        self.complete_join(now);
    }

    fn complete_join(&mut self, now: Instant) {
        // Dynamic members that did not rejoin in time are out. Static members keep their
        // place until their session expires (KIP-345): a static consumer restarting during a
        // rebalance finds its partitions waiting for it.
        self.members
            .retain(|m| m.is_awaiting_join() || m.instance_id.is_some());
        self.pending.clear();
        self.initial_deadline = None;
        self.rebalance_deadline = None;
        self.generation += 1;
        self.dirty = true;
        if self.members.is_empty() {
            self.become_empty(now);
            return;
        }
        self.protocol_name = select_protocol(self.members.iter());
        // The leader must be a member that is here to receive the roster.
        if !self.leader.as_ref().is_some_and(|l| {
            self.members
                .iter()
                .any(|m| &m.id == l && m.is_awaiting_join())
        }) {
            self.leader = self
                .members
                .iter()
                .find(|m| m.is_awaiting_join())
                .or(self.members.first())
                .map(|m| m.id.clone());
        }
        let leader = self.leader.clone().unwrap_or_default();
        let roster = self.roster();
        self.state = GroupState::CompletingRebalance;
        self.sync_deadline = Some(now + self.rebalance_timeout());
        for m in &mut self.members {
            m.last_seen = now;
            m.assignment = Bytes::new();
            if let Some(w) = m.join_waiter.take() {
                let _ = w.send(JoinOutcome {
                    error_code: 0,
                    generation: self.generation,
                    protocol_type: self.protocol_type.clone(),
                    protocol_name: self.protocol_name.clone(),
                    leader: leader.clone(),
                    member_id: m.id.clone(),
                    members: if m.id == leader {
                        roster.clone()
                    } else {
                        Vec::new()
                    },
                    skip_assignment: false,
                });
            }
        }
    }

    fn become_empty(&mut self, _now: Instant) {
        self.state = GroupState::Empty;
        self.protocol_name = None;
        self.leader = None;
        self.sync_deadline = None;
        self.empty_since_ms = sluice_storage::now_ms();
        self.dirty = true;
    }

    /// Handles a SyncGroup.
    pub fn sync(
        &mut self,
        member_id: &str,
        instance_id: Option<&str>,
        generation: i32,
        protocol: (Option<&str>, Option<&str>),
        assignments: Vec<(String, Bytes)>,
        now: Instant,
    ) -> Synced {
        if let Err(code) = self.check_member(member_id, instance_id) {
            return Synced::Now(sync_error(code));
        }
        if generation != self.generation {
            return Synced::Now(sync_error(errors::ILLEGAL_GENERATION));
        }
        let (ptype, pname) = protocol;
        if ptype.is_some_and(|t| Some(t) != self.protocol_type.as_deref())
            || pname.is_some_and(|n| Some(n) != self.protocol_name.as_deref())
        {
            return Synced::Now(sync_error(errors::INCONSISTENT_GROUP_PROTOCOL));
        }
        let ok = |assignment: Bytes, g: &Group| SyncOutcome {
            error_code: 0,
            protocol_type: g.protocol_type.clone(),
            protocol_name: g.protocol_name.clone(),
            assignment,
        };
        match self.state {
            GroupState::Empty | GroupState::Dead => {
                Synced::Now(sync_error(errors::UNKNOWN_MEMBER_ID))
            }
            GroupState::PreparingRebalance => {
                Synced::Now(sync_error(errors::REBALANCE_IN_PROGRESS))
            }
            GroupState::Stable => {
                let assignment = self
                    .member(member_id)
                    .map(|m| m.assignment.clone())
                    .unwrap_or_default();
                Synced::Now(ok(assignment, self))
            }
            GroupState::CompletingRebalance => {
                if self.leader.as_deref() == Some(member_id) {
                    let mut by_member: HashMap<String, Bytes> = assignments.into_iter().collect();
                    self.state = GroupState::Stable;
                    self.sync_deadline = None;
                    self.dirty = true;
                    let (ptype, pname) = (self.protocol_type.clone(), self.protocol_name.clone());
                    for m in &mut self.members {
                        m.assignment = by_member.remove(&m.id).unwrap_or_default();
                        m.last_seen = now;
                        if let Some(w) = m.sync_waiter.take() {
                            let _ = w.send(SyncOutcome {
                                error_code: 0,
                                protocol_type: ptype.clone(),
                                protocol_name: pname.clone(),
                                assignment: m.assignment.clone(),
                            });
                        }
                    }
                    let assignment = self
                        .member(member_id)
                        .map(|m| m.assignment.clone())
                        .unwrap_or_default();
                    Synced::Now(ok(assignment, self))
                } else {
                    let (tx, rx) = oneshot::channel();
                    if let Some(m) = self.member_mut(member_id) {
                        m.last_seen = now;
                        m.sync_waiter = Some(tx);
                    }
                    Synced::Later(rx)
                }
            }
        }
    }

    /// Handles a Heartbeat.
    pub fn heartbeat(
        &mut self,
        member_id: &str,
        instance_id: Option<&str>,
        generation: i32,
        now: Instant,
    ) -> i16 {
        if let Err(code) = self.check_member(member_id, instance_id) {
            return code;
        }
        match self.state {
            GroupState::Empty | GroupState::Dead => errors::UNKNOWN_MEMBER_ID,
            GroupState::PreparingRebalance => {
                if let Some(m) = self.member_mut(member_id) {
                    m.last_seen = now;
                }
                errors::REBALANCE_IN_PROGRESS
            }
            GroupState::CompletingRebalance | GroupState::Stable => {
                if generation != self.generation {
                    return errors::ILLEGAL_GENERATION;
                }
                if let Some(m) = self.member_mut(member_id) {
                    m.last_seen = now;
                }
                errors::NONE
            }
        }
    }

    /// Removes members (LeaveGroup); returns each one's error code, in order.
    pub fn leave(
        &mut self,
        leaving: &[(String, Option<String>)],
        timing: Timing,
        now: Instant,
    ) -> Vec<i16> {
        let mut codes = Vec::with_capacity(leaving.len());
        let mut removed_any = false;
        for (member_id, instance_id) in leaving {
            let target = if member_id.is_empty() {
                instance_id
                    .as_deref()
                    .and_then(|i| self.member_by_instance(i))
                    .map(|m| m.id.clone())
                    .ok_or(errors::UNKNOWN_MEMBER_ID)
            } else if self.pending.remove(member_id).is_some() {
                codes.push(errors::NONE);
                continue;
            } else {
                self.check_member(member_id, instance_id.as_deref())
                    .map(|_| member_id.clone())
            };
            match target {
                Ok(id) => {
                    self.remove_member(&id);
                    removed_any = true;
                    codes.push(errors::NONE);
                }
                Err(code) => codes.push(code),
            }
        }
        if removed_any {
            self.after_removal(timing, now);
        }
        codes
    }

    fn remove_member(&mut self, id: &str) {
        if let Some(pos) = self.members.iter().position(|m| m.id == id) {
            let m = self.members.remove(pos);
            if let Some(w) = m.join_waiter {
                let _ = w.send(outcome_error(errors::UNKNOWN_MEMBER_ID, id));
            }
            if let Some(w) = m.sync_waiter {
                let _ = w.send(sync_error(errors::UNKNOWN_MEMBER_ID));
            }
        }
        if self.leader.as_deref() == Some(id) {
            self.leader = None;
        }
        self.dirty = true;
    }

    fn after_removal(&mut self, timing: Timing, now: Instant) {
        match self.state {
            GroupState::Stable | GroupState::CompletingRebalance => {
                if self.members.is_empty() {
                    self.generation += 1;
                    self.become_empty(now);
                } else {
                    self.prepare_rebalance(timing, now);
                }
            }
            GroupState::PreparingRebalance => {
                if self.members.is_empty() {
                    self.complete_join(now);
                } else {
                    self.maybe_complete_join(now);
                }
            }
            GroupState::Empty | GroupState::Dead => {}
        }
    }

    /// Expires members whose session timed out, pending member ids, and overdue rebalance
    /// phases. Called periodically.
    pub fn tick(&mut self, timing: Timing, now: Instant) {
        self.pending.retain(|_, expires| *expires > now);
        let expired: Vec<String> = self
            .members
            .iter()
            .filter(|m| {
                !m.is_awaiting_join()
                    && m.sync_waiter.is_none()
                    && now.duration_since(m.last_seen)
                        > Duration::from_millis(m.session_timeout_ms.max(0) as u64)
            })
            .map(|m| m.id.clone())
            .collect();
        if !expired.is_empty() {
            for id in &expired {
                tracing::info!(group = %self.id, member = %id, "member session expired");
                self.remove_member(id);
            }
            self.after_removal(timing, now);
        }
        if self.state == GroupState::CompletingRebalance
            && self.sync_deadline.is_some_and(|d| now >= d)
        {
            // The leader never sent its assignment: start over with who is still there.
            tracing::info!(group = %self.id, "no assignment from the leader in time; rebalancing");
            self.prepare_rebalance(timing, now);
        }
        self.maybe_complete_join(now);
    }
}
