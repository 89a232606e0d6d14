"""The classic group protocol request by request, sent by hand (kgroup.py): the exact Kafka
error for every bad input, fencing of stale generations, unknown members and replaced
static instances, the batched and multi-group forms of FindCoordinator, LeaveGroup and
OffsetFetch, and that after each refusal the group carries on as if nothing had happened.

Client-level behaviour (real consumers rebalancing, static restarts, admin clients) is in
test_groups.py."""

import time

import pytest

from groupclients import FAST_GROUPS_ENV, wait_for
from kgroup import (FENCED_INSTANCE_ID, GROUP_ID_NOT_FOUND,
                    GROUP_SUBSCRIBED_TO_TOPIC, ILLEGAL_GENERATION, INCONSISTENT_GROUP_PROTOCOL,
                    INVALID_GROUP_ID, INVALID_SESSION_TIMEOUT, MEMBER_ID_REQUIRED, NON_EMPTY_GROUP,
                    NONE, REBALANCE_IN_PROGRESS, UNKNOWN_MEMBER_ID, Raw, RawMember, assignment,
                    decode_assignment)
from kwire import Conn, create_topics_v2, create_topics_v2_result

TOPIC, OTHER = "t", "other"
INVALID_REQUEST = 42
MAX_SESSION_TIMEOUT_MS = 1_800_000  # group.max.session.timeout.ms default


@pytest.fixture
def b(make_broker):
    """A broker with fast group settings and topics "t" (3 partitions) and "other" (1)."""
    broker = make_broker(env=FAST_GROUPS_ENV)
    c = Conn(broker.port)
    for name, parts in ((TOPIC, 3), (OTHER, 1)):
        c.send(create_topics_v2(name, parts))
        assert create_topics_v2_result(c.recv_frame())[0] == 0
    c.close()
    return broker


def member(b, group, **kw) -> RawMember:
    return RawMember(b.port, group, **kw)


@pytest.fixture
def stable(b):
    """A group "live" with one member owning all of "t", committed at offset 1 everywhere.
    `check()` asserts it is untouched: still Stable with that member, generation and
    assignment, heartbeats and commits accepted."""
    m = member(b, "live")
    assert m.join_and_sync_alone({TOPIC: [0, 1, 2]}) == {TOPIC: [0, 1, 2]}
    assert m.commit({(TOPIC, p): 1 for p in range(3)}) == {(TOPIC, p): NONE for p in range(3)}
    generation = m.generation

    def check():
        assert m.heartbeat() == NONE
        assert m.generation == generation
        assert m.commit({(TOPIC, 0): 2}) == {(TOPIC, 0): NONE}
        d = m.raw.describe(["live"])["live"]
        assert (d.error_code, d.group_state, d.protocol_data) == (NONE, "Stable", "range")
        assert [x.member_id for x in d.members] == [m.member_id]
        assert decode_assignment(d.members[0].member_assignment) == {TOPIC: [0, 1, 2]}

    m.check = check
    yield m
    m.close()


def join_all(members: list[RawMember], version: int = 9):
    """Joins several members at once (JoinGroup blocks until everyone is in); returns the
    responses in order."""
    for m in members:
        if not m.member_id and not m.instance_id:  # static members skip KIP-394
            r = m.join_recv(m.join_send(version))
            assert r.error_code == MEMBER_ID_REQUIRED, r
    pending = [m.join_send(version) for m in members]
    return [m.join_recv(p) for m, p in zip(members, pending)]


def sync_all(members: list[RawMember], plan: dict[str, dict[str, list[int]]] | None = None):
    """Syncs every member; the leader sends `plan` (member id -> partitions), by default
    all of "t" round-robin. Followers' SyncGroups wait for the leader's, so they are sent
    first. Returns {member id: assignment}."""
    leader = next(m for m in members if m.member_id == m.leader)
    followers = [m for m in members if m is not leader]
    if plan is None:
        ids = [m.member_id for m in members]
        plan = {i: {TOPIC: [p for p in range(3) if p % len(ids) == k]} for k, i in enumerate(ids)}
    from kafka.protocol.consumer.group import SyncGroupRequest
    pending = [(f, f.raw.send(SyncGroupRequest, 5, group_id=f.group, generation_id=f.generation,
                              member_id=f.member_id, group_instance_id=f.instance_id,
                              protocol_type="consumer", protocol_name=f.protocol, assignments=[]))
               for f in followers]
    err, got = leader.sync({i: assignment(a) for i, a in plan.items()})
    assert err == NONE
    out = {leader.member_id: got}
    for f, p in pending:
        r = f.raw.recv(p)
        assert r.error_code == NONE
        out[f.member_id] = decode_assignment(r.assignment)
    return out


# ---------------------------------------------------------------------------------------
# KIP-394 member ids, protocol selection
# ---------------------------------------------------------------------------------------

def test_first_join_gets_member_id_required_then_joins_with_that_id(b):
    m = member(b, "kip394")
    first = m.join_recv(m.join_send(version=4))
    assert first.error_code == MEMBER_ID_REQUIRED
    assert first.member_id.startswith("raw-") and first.generation_id == -1
    given = first.member_id
    r = m.join_recv(m.join_send(version=4))
    assert (r.error_code, r.member_id, r.leader, r.generation_id) == (NONE, given, given, 1)
    assert [x.member_id for x in r.members] == [given]  # the leader gets the roster
    # A made-up member id is not a member.
    stranger = member(b, "kip394", member_id="raw-made-up")
    assert stranger.join_recv(stranger.join_send()).error_code == UNKNOWN_MEMBER_ID
    # JoinGroup v0-v3 predates KIP-394: a new member joins in one round trip.
    old = member(b, "pre394")
    r = old.join_recv(old.join_send(version=3))
    assert r.error_code == NONE and r.member_id and r.generation_id == 1


def test_group_protocol_is_the_one_most_members_prefer_among_those_all_support(b):
    a = member(b, "vote", protocols=["cooperative-sticky", "range"])
    c = member(b, "vote", protocols=["range", "cooperative-sticky"])
    d = member(b, "vote", protocols=["range", "roundrobin", "cooperative-sticky"])
    responses = join_all([a, c, d])
    assert {r.protocol_name for r in responses} == {"range"}
    assert len({r.generation_id for r in responses}) == 1
    leader = [r for r in responses if r.members]
    assert len(leader) == 1 and len(leader[0].members) == 3
    sync_all([a, c, d])
    # A newcomer that supports none of the group's protocols is refused, and nothing moves.
    e = member(b, "vote", protocols=["sticky"])
    assert e.join().error_code == INCONSISTENT_GROUP_PROTOCOL
    assert [m.heartbeat() for m in (a, c, d)] == [NONE] * 3
    assert a.raw.describe(["vote"])["vote"].protocol_data == "range"


# ---------------------------------------------------------------------------------------
# Bad input: the exact error, and the group is untouched
# ---------------------------------------------------------------------------------------

BAD_JOINS = {
    "empty-protocol-list": (dict(protocols=[]), INCONSISTENT_GROUP_PROTOCOL),
    "empty-group-id": (dict(group_id=""), INVALID_GROUP_ID),
    "group-id-of-250-chars": (dict(group_id="g" * 250), INVALID_GROUP_ID),
    "session-below-min": (dict(session_timeout_ms=999), INVALID_SESSION_TIMEOUT),
    "session-above-max": (dict(session_timeout_ms=MAX_SESSION_TIMEOUT_MS + 1), INVALID_SESSION_TIMEOUT),
}


@pytest.mark.parametrize("case", BAD_JOINS, ids=list(BAD_JOINS))
def test_bad_join_gets_kafkas_error_and_leaves_the_group_alone(b, stable, case):
    override, code = BAD_JOINS[case]
    for member_id in ("", stable.member_id):  # a newcomer, and the member itself
        m = member(b, "live", member_id=member_id)
        r = m.join_recv(m.join_send(**override))
        assert r.error_code == code, (member_id, r)
        assert r.generation_id == -1
        m.close()
    stable.check()


def test_group_id_of_249_chars_is_accepted(b):
    m = member(b, "g" * 249)
    assert m.join_and_sync_alone({TOPIC: [0]}) == {TOPIC: [0]}
    assert m.raw.find_coordinators(["g" * 249, "g" * 250]) == {"g" * 249: NONE,
                                                              "g" * 250: INVALID_GROUP_ID}


def test_commits_from_stale_generations_and_unknown_members_are_refused(b, stable):
    t0 = {(TOPIC, 0): 50}
    assert stable.commit(t0, generation=stable.generation - 1) == {(TOPIC, 0): ILLEGAL_GENERATION}
    assert stable.commit(t0, generation=stable.generation + 1) == {(TOPIC, 0): ILLEGAL_GENERATION}
    assert stable.commit(t0, member_id="raw-unknown") == {(TOPIC, 0): UNKNOWN_MEMBER_ID}
    # A "simple" commit (generation -1, no member id) is only for groups without members.
    assert stable.commit(t0, generation=-1, member_id="") == {(TOPIC, 0): UNKNOWN_MEMBER_ID}
    assert stable.raw.commit_offsets("", t0) == {(TOPIC, 0): INVALID_GROUP_ID}
    assert stable.raw.commit_offsets("g" * 250, t0) == {(TOPIC, 0): INVALID_GROUP_ID}
    # Nothing refused was stored.
    (err, offsets), = stable.raw.fetch_offsets({"live": {TOPIC: [0, 1]}}).values()
    assert err == NONE
    assert {k: v[0] for k, v in offsets.items()} == {(TOPIC, 0): 1, (TOPIC, 1): 1}
    stable.check()
    # Heartbeat and SyncGroup are fenced the same way.
    assert stable.heartbeat(generation_id=stable.generation - 1) == ILLEGAL_GENERATION
    assert stable.heartbeat(member_id="raw-unknown") == UNKNOWN_MEMBER_ID
    assert stable.sync(generation_id=stable.generation - 1)[0] == ILLEGAL_GENERATION
    assert stable.sync(member_id="raw-unknown")[0] == UNKNOWN_MEMBER_ID
    stable.check()


def test_commit_to_a_partition_that_does_not_exist_is_refused_alone(b, stable):
    got = stable.commit({(TOPIC, 0): 3, (TOPIC, 7): 3, ("no-such-topic", 0): 3})
    assert got == {(TOPIC, 0): NONE, (TOPIC, 7): 3, ("no-such-topic", 0): 3}  # 3: UNKNOWN_TOPIC_OR_PARTITION
    stable.check()


def test_static_member_with_a_wrong_member_id_is_fenced(b):
    s = member(b, "static", instance_id="inst-1")
    assert s.join_and_sync_alone({TOPIC: [0, 1, 2]})
    impostor = member(b, "static", instance_id="inst-1", member_id="raw-not-the-real-one")
    impostor.generation = s.generation
    assert impostor.heartbeat() == FENCED_INSTANCE_ID
    assert impostor.commit({(TOPIC, 0): 9}) == {(TOPIC, 0): FENCED_INSTANCE_ID}
    assert impostor.sync()[0] == FENCED_INSTANCE_ID
    assert impostor.join().error_code == FENCED_INSTANCE_ID
    assert impostor.leave() == FENCED_INSTANCE_ID
    # The real member is unaffected.
    assert s.heartbeat() == NONE
    assert s.commit({(TOPIC, 0): 4}) == {(TOPIC, 0): NONE}
    d = s.raw.describe(["static"])["static"]
    assert (d.group_state, [(x.member_id, x.group_instance_id) for x in d.members]) == \
        ("Stable", [(s.member_id, "inst-1")])


def test_static_member_rejoining_without_its_id_keeps_generation_and_assignment(b):
    """KIP-345: a restarted static member (new connection, empty member id, same instance
    id) gets a new member id but the same generation, and nobody else rebalances."""
    s = member(b, "restart", instance_id="inst-s")
    d = member(b, "restart")
    join_all([s, d])
    plan = sync_all([s, d])
    generation = s.generation
    restarted = member(b, "restart", instance_id="inst-s")
    r = restarted.join()
    assert r.error_code == NONE
    assert r.generation_id == generation
    assert r.member_id != s.member_id
    err, got = restarted.sync()
    assert (err, got) == (NONE, plan[s.member_id])
    # No rebalance: the other member's heartbeat and commit at the same generation are fine.
    assert d.heartbeat() == NONE
    assert d.commit({(TOPIC, 0): 1}) == {(TOPIC, 0): NONE}
    # The old incarnation is fenced.
    assert s.heartbeat() == FENCED_INSTANCE_ID
    desc = d.raw.describe(["restart"])["restart"]
    assert desc.group_state == "Stable"
    assert {x.group_instance_id: x.member_id for x in desc.members} == \
        {"inst-s": restarted.member_id, None: d.member_id}


@pytest.mark.parametrize("version", [5, 9])
def test_restarted_static_leader_does_not_reassign_a_stable_group(b, version):
    """Kafka's answer to a restarted static leader: JoinGroup v9+ says "you lead, here is
    the roster, skip the assignment" (KIP-814); older versions name the previous leader
    id, so the restarted member syncs as a follower instead of assigning over nothing."""
    ms = [member(b, "static-leader", instance_id=f"i{k}") for k in range(2)]
    join_all(ms)
    plan = sync_all(ms)
    leader = next(m for m in ms if m.member_id == m.leader)
    follower = next(m for m in ms if m is not leader)
    restarted = member(b, "static-leader", instance_id=leader.instance_id)
    r = restarted.join(version)
    assert (r.error_code, r.generation_id) == (NONE, leader.generation)
    if version >= 9:
        assert r.leader == r.member_id and r.skip_assignment
        assert sorted(x.member_id for x in r.members) == sorted([r.member_id, follower.member_id])
    else:
        assert (r.leader, r.members) == (leader.member_id, [])
    assert restarted.sync() == (NONE, plan[leader.member_id])
    assert follower.heartbeat() == NONE
    assert restarted.heartbeat() == NONE
    assert restarted.raw.describe(["static-leader"])["static-leader"].group_state == "Stable"


# ---------------------------------------------------------------------------------------
# Rebalances and generation fencing
# ---------------------------------------------------------------------------------------

def test_rebalance_phases_fence_heartbeats_and_commits_as_kafka_does(b):
    a, c = member(b, "phases"), member(b, "phases")
    join_all([a, c])
    sync_all([a, c])
    old_generation = a.generation
    leader, follower = (a, c) if a.member_id == a.leader else (c, a)
    # A follower rejoining with unchanged metadata just gets the current generation back.
    r = follower.join()
    assert (r.error_code, r.generation_id, r.members) == (NONE, old_generation, [])
    # The leader rejoins: the group prepares a rebalance, waiting for the follower.
    pending = leader.join_send()
    time.sleep(0.3)
    assert follower.heartbeat() == REBALANCE_IN_PROGRESS
    # Kafka still accepts commits of the current generation while it prepares a rebalance:
    # that is how an eager consumer commits what it processed before it gives partitions up.
    assert follower.commit({(TOPIC, 0): 7}) == {(TOPIC, 0): NONE}
    r_follower = follower.join()
    r_leader = leader.join_recv(pending)
    assert r_leader.generation_id == r_follower.generation_id == old_generation + 1
    # Joined but not synced (CompletingRebalance): commits wait for the assignment.
    assert follower.commit({(TOPIC, 0): 8}) == {(TOPIC, 0): REBALANCE_IN_PROGRESS}
    sync_all([a, c])
    # The previous generation is fenced everywhere now.
    assert leader.heartbeat(generation_id=old_generation) == ILLEGAL_GENERATION
    assert leader.commit({(TOPIC, 0): 9}, generation=old_generation) == {(TOPIC, 0): ILLEGAL_GENERATION}
    assert [m.heartbeat() for m in (a, c)] == [NONE, NONE]
    (err, offsets), = a.raw.fetch_offsets({"phases": {TOPIC: [0]}}).values()
    assert offsets[(TOPIC, 0)][0] == 7


def test_member_that_stops_heartbeating_is_removed_after_its_session_timeout(b):
    keep = member(b, "expiry", session_timeout_ms=6000)
    gone = member(b, "expiry", session_timeout_ms=1000)
    join_all([keep, gone])
    sync_all([keep, gone])
    start = time.time()
    # Only `keep` heartbeats; it is told to rejoin once `gone` has expired.
    wait_for(lambda: keep.heartbeat() == REBALANCE_IN_PROGRESS, "the group rebalances", 10)
    assert time.time() - start < 5
    r = keep.join()
    assert r.error_code == NONE and [x.member_id for x in r.members] == [keep.member_id]
    assert gone.heartbeat() == UNKNOWN_MEMBER_ID
    keep.sync({keep.member_id: assignment({TOPIC: [0, 1, 2]})})
    d = keep.raw.describe(["expiry"])["expiry"]
    assert (d.group_state, len(d.members)) == ("Stable", 1)


def test_member_that_does_not_rejoin_within_the_rebalance_timeout_is_dropped(b):
    """A member that keeps heartbeating but never rejoins holds a rebalance up only until
    the rebalance timeout; then the generation completes without it."""
    a = member(b, "slow", rebalance_timeout_ms=1500)
    c = member(b, "slow", rebalance_timeout_ms=1500)
    join_all([a, c])
    sync_all([a, c])
    leader = a if a.member_id == a.leader else c
    laggard = c if leader is a else a
    pending = leader.join_send()  # the leader rejoins: a rebalance starts
    start = time.time()
    # The join travels on another connection; the first heartbeat may overtake it.
    while laggard.heartbeat() != REBALANCE_IN_PROGRESS:
        assert time.time() - start < 1.0, "the rebalance did not start"
        time.sleep(0.02)
    while time.time() - start < 1.0:  # the laggard heartbeats, but does not rejoin
        assert laggard.heartbeat() == REBALANCE_IN_PROGRESS
        time.sleep(0.2)
    r = leader.join_recv(pending)
    took = time.time() - start
    assert r.error_code == NONE and [x.member_id for x in r.members] == [leader.member_id]
    assert 1.0 <= took < 5.0
    assert laggard.heartbeat() == UNKNOWN_MEMBER_ID


# ---------------------------------------------------------------------------------------
# Batched and multi-group requests, admin operations
# ---------------------------------------------------------------------------------------

def test_find_coordinator_batched_keys_and_single_key_versions(b):
    raw = Raw(b.port)
    assert raw.find_coordinators(["a", "b", "", "x" * 250], version=4) == \
        {"a": NONE, "b": NONE, "": INVALID_GROUP_ID, "x" * 250: INVALID_GROUP_ID}
    for v in (0, 1, 2, 3):
        assert raw.find_coordinators(["a", ""], version=v) == {"a": NONE, "": INVALID_GROUP_ID}
    from kafka.protocol.metadata.find_coordinator import FindCoordinatorRequest
    r = raw.call(FindCoordinatorRequest, 4, key_type=0, coordinator_keys=["a"])
    (c,) = r.coordinators
    assert (c.node_id, c.host, c.port) == (0, "127.0.0.1", b.port)
    # This broker coordinates transactional ids too; an empty one or an unknown key type is
    # INVALID_REQUEST.
    r = raw.call(FindCoordinatorRequest, 4, key_type=1, coordinator_keys=["tx", ""])
    tx, empty = r.coordinators
    assert (tx.error_code, tx.node_id, tx.host, tx.port) == (NONE, 0, "127.0.0.1", b.port)
    assert empty.error_code == INVALID_REQUEST
    r = raw.call(FindCoordinatorRequest, 4, key_type=7, coordinator_keys=["a"])
    assert r.coordinators[0].error_code == INVALID_REQUEST


def test_leave_group_batch_removes_several_members_and_reports_each(b):
    ms = [member(b, "batch-leave") for _ in range(3)]
    join_all(ms)
    sync_all(ms)
    err, codes = ms[0].raw.leave("batch-leave", [(ms[1].member_id, None), (ms[2].member_id, None),
                                                 ("raw-unknown", None)])
    assert (err, codes) == (NONE, [NONE, NONE, UNKNOWN_MEMBER_ID])
    assert ms[0].heartbeat() == REBALANCE_IN_PROGRESS
    r = ms[0].join()
    assert r.generation_id == 2 and [x.member_id for x in r.members] == [ms[0].member_id]
    assert ms[1].heartbeat() == UNKNOWN_MEMBER_ID
    # LeaveGroup v0 (one member, group-level error).
    from kafka.protocol.consumer.group import LeaveGroupRequest
    r = ms[0].raw.call(LeaveGroupRequest, 0, group_id="batch-leave", member_id="raw-unknown")
    assert r.error_code == UNKNOWN_MEMBER_ID
    assert ms[0].raw.leave("", [("x", None)])[0] == INVALID_GROUP_ID


def test_static_member_can_be_removed_by_instance_id_alone(b):
    """What admin tools do (kafka-consumer-groups --delete / remove_members, KIP-345):
    LeaveGroup with the instance id and no member id."""
    s = member(b, "remove-static", instance_id="inst-r")
    d = member(b, "remove-static")
    join_all([s, d])
    sync_all([s, d])
    err, codes = d.raw.leave("remove-static", [("", "inst-r"), ("", "inst-unknown")])
    assert (err, codes) == (NONE, [NONE, UNKNOWN_MEMBER_ID])
    assert s.heartbeat() == UNKNOWN_MEMBER_ID
    assert d.heartbeat() == REBALANCE_IN_PROGRESS


def test_offset_fetch_for_several_groups_in_one_request(b):
    raw = Raw(b.port)
    assert raw.commit_offsets("fa", {(TOPIC, 0): 5, (TOPIC, 1): 6}, metadata="m-a", leader_epoch=0) == \
        {(TOPIC, 0): NONE, (TOPIC, 1): NONE}
    assert raw.commit_offsets("fb", {(OTHER, 0): 9}, metadata=None) == {(OTHER, 0): NONE}
    got = raw.fetch_offsets({"fa": None, "fb": {OTHER: [0], TOPIC: [2]}, "unknown": {TOPIC: [0]},
                             "": None})
    assert got["fa"] == (NONE, {(TOPIC, 0): (5, 0, "m-a", NONE), (TOPIC, 1): (6, 0, "m-a", NONE)})
    assert got["fb"] == (NONE, {(OTHER, 0): (9, -1, "", NONE), (TOPIC, 2): (-1, -1, "", NONE)})
    assert got["unknown"] == (NONE, {(TOPIC, 0): (-1, -1, "", NONE)})
    assert got[""][0] == INVALID_GROUP_ID


def test_list_groups_filters_by_state_and_describe_reports_every_group(b, stable):
    raw = Raw(b.port)
    raw.commit_offsets("idle", {(TOPIC, 0): 1})  # a group with offsets but no members
    assert raw.list_groups() == {"live": "Stable", "idle": "Empty"}
    assert raw.list_groups(["Stable"]) == {"live": "Stable"}
    assert raw.list_groups(["empty"]) == {"idle": "Empty"}  # case-insensitive, as in Kafka
    assert raw.list_groups(["Dead"]) == {}
    d = raw.describe(["live", "idle", "never-seen", ""])
    assert (d["live"].group_state, d["live"].protocol_type, d["live"].protocol_data) == \
        ("Stable", "consumer", "range")
    (m,) = d["live"].members
    assert (m.member_id, m.client_id, m.client_host) == (stable.member_id, "raw", "/127.0.0.1")
    assert decode_assignment(m.member_assignment) == {TOPIC: [0, 1, 2]}
    assert m.member_metadata  # the subscription, as the member sent it
    assert (d["idle"].error_code, d["idle"].group_state, d["idle"].members) == (NONE, "Empty", [])
    assert (d["never-seen"].error_code, d["never-seen"].group_state) == (NONE, "Dead")
    assert d[""].error_code == INVALID_GROUP_ID


def test_delete_groups_refuses_groups_with_members(b, stable):
    raw = Raw(b.port)
    raw.commit_offsets("idle", {(TOPIC, 0): 1})
    assert raw.delete_groups(["live", "idle", "never-seen", ""]) == \
        {"live": NON_EMPTY_GROUP, "idle": NONE, "never-seen": GROUP_ID_NOT_FOUND,
         "": INVALID_GROUP_ID}
    stable.check()
    assert "idle" not in raw.list_groups()
    assert raw.fetch_offsets({"idle": {TOPIC: [0]}})["idle"][1][(TOPIC, 0)][0] == -1
    # Once its last member has left, the group can go, offsets included.
    assert stable.leave() == NONE
    assert raw.list_groups() == {"live": "Empty"}
    assert raw.delete_groups(["live"]) == {"live": NONE}
    assert raw.list_groups() == {}
    assert raw.fetch_offsets({"live": None})["live"] == (NONE, {})


def test_offset_delete_refuses_topics_the_group_consumes(b, stable):
    assert stable.raw.commit_offsets("live", {(OTHER, 0): 3}, generation=stable.generation,
                                      member_id=stable.member_id) == {(OTHER, 0): NONE}
    err, codes = stable.raw.delete_offsets("live", {TOPIC: [0], OTHER: [0]})
    assert (err, codes) == (NONE, {(TOPIC, 0): GROUP_SUBSCRIBED_TO_TOPIC, (OTHER, 0): NONE})
    (_, offsets), = stable.raw.fetch_offsets({"live": None}).values()
    assert set(offsets) == {(TOPIC, 0), (TOPIC, 1), (TOPIC, 2)}
    assert stable.raw.delete_offsets("never-seen", {TOPIC: [0]})[0] == GROUP_ID_NOT_FOUND
    stable.check()


# ---------------------------------------------------------------------------------------
# Persistence in __consumer_offsets
# ---------------------------------------------------------------------------------------

def test_offsets_with_metadata_and_epoch_and_group_metadata_survive_kill9(make_broker):
    b = make_broker(env=FAST_GROUPS_ENV)
    c = Conn(b.port)
    c.send(create_topics_v2(TOPIC, 3))
    assert create_topics_v2_result(c.recv_frame())[0] == 0
    c.close()
    s = member(b, "durable", instance_id="inst-d", session_timeout_ms=30000)
    assert s.join_and_sync_alone({TOPIC: [0, 1, 2]})
    assert s.commit({(TOPIC, 0): 11, (TOPIC, 1): 12}, metadata="checkpoint-7", leader_epoch=4) == \
        {(TOPIC, 0): NONE, (TOPIC, 1): NONE}
    raw = Raw(b.port)
    assert raw.commit_offsets("simple", {(TOPIC, 2): 5}) == {(TOPIC, 2): NONE}
    assert raw.commit_offsets("deleted", {(TOPIC, 2): 6}) == {(TOPIC, 2): NONE}
    assert raw.delete_groups(["deleted"]) == {"deleted": NONE}
    # Later commits replace earlier ones.
    assert s.commit({(TOPIC, 1): 13}, metadata="checkpoint-8", leader_epoch=5) == {(TOPIC, 1): NONE}
    s.close()
    raw.close()
    b.kill9()
    b2 = make_broker(env=FAST_GROUPS_ENV, data_dir=b.data_dir, port=b.port)
    raw = Raw(b2.port)
    got = raw.fetch_offsets({"durable": None, "simple": None, "deleted": None})
    assert got["durable"] == (NONE, {(TOPIC, 0): (11, 4, "checkpoint-7", NONE),
                                     (TOPIC, 1): (13, 5, "checkpoint-8", NONE)})
    assert got["simple"] == (NONE, {(TOPIC, 2): (5, -1, "", NONE)})
    assert got["deleted"] == (NONE, {})
    assert raw.list_groups() == {"durable": "Stable", "simple": "Empty"}
    # The group's metadata came back too: its static member, generation and assignment.
    d = raw.describe(["durable"])["durable"]
    assert (d.group_state, d.protocol_data) == ("Stable", "range")
    (m,) = d.members
    assert (m.member_id, m.group_instance_id) == (s.member_id, "inst-d")
    assert decode_assignment(m.member_assignment) == {TOPIC: [0, 1, 2]}
    # The static member restarts after the broker did: same generation, same assignment.
    again = member(b2, "durable", instance_id="inst-d", session_timeout_ms=30000)
    r = again.join()
    assert (r.error_code, r.generation_id) == (NONE, s.generation)
    assert again.sync() == (NONE, {TOPIC: [0, 1, 2]})
