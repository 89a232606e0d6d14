"""Group-protocol requests sent by hand, for tests that must do what a consumer library
would not: join with an empty protocol list, commit with a stale generation, impersonate a
static member, or stop heartbeating on purpose.

Requests and responses are kafka-python's schema classes (generated from Kafka's own JSON
message definitions, flexible versions included), framed onto a raw socket (kwire.Conn),
so every field and version is under the test's control.

    m = RawMember(broker.port, "g", topics=["t"])
    m.join()                     # MEMBER_ID_REQUIRED round trip, then the real join
    m.sync({m.member_id: assignment({"t": [0, 1]})})
    assert m.commit({("t", 0): 5}) == {("t", 0): 0}
"""

from __future__ import annotations

import sys
from dataclasses import dataclass, field

from kafka.protocol.admin.groups import (DeleteGroupsRequest, DescribeGroupsRequest,
                                         ListGroupsRequest)
from kafka.protocol.consumer.group import (HeartbeatRequest, JoinGroupRequest,
                                           LeaveGroupRequest, OffsetCommitRequest,
                                           OffsetDeleteRequest, OffsetFetchRequest,
                                           SyncGroupRequest)
from kafka.protocol.consumer.metadata import (ConsumerProtocolAssignment,
                                              ConsumerProtocolSubscription)
from kafka.protocol.metadata.find_coordinator import FindCoordinatorRequest

from kwire import Conn

# Kafka error codes of the group APIs.
NONE = 0
UNKNOWN_TOPIC_OR_PARTITION = 3
COORDINATOR_NOT_AVAILABLE = 15
ILLEGAL_GENERATION = 22
INCONSISTENT_GROUP_PROTOCOL = 23
INVALID_GROUP_ID = 24
UNKNOWN_MEMBER_ID = 25
INVALID_SESSION_TIMEOUT = 26
REBALANCE_IN_PROGRESS = 27
NON_EMPTY_GROUP = 68
GROUP_ID_NOT_FOUND = 69
MEMBER_ID_REQUIRED = 79
FENCED_INSTANCE_ID = 82
GROUP_SUBSCRIBED_TO_TOPIC = 86

# Versions used unless a test asks for another: the newest sluice advertises.
JOIN_V, SYNC_V, HEARTBEAT_V, LEAVE_V = 9, 5, 4, 5
COMMIT_V, FETCH_V, DESCRIBE_V, LIST_V, DELETE_V, FIND_V = 8, 8, 5, 5, 2, 4


def subscription(topics: list[str]) -> bytes:
    """ConsumerProtocolSubscription v0 bytes, as a consumer puts in JoinGroup metadata."""
    return bytes(ConsumerProtocolSubscription(version=0, topics=list(topics),
                                              user_data=None).encode())


def assignment(parts: dict[str, list[int]]) -> bytes:
    """ConsumerProtocolAssignment v0 bytes, as a leader sends in SyncGroup."""
    tp = ConsumerProtocolAssignment.TopicPartition
    return bytes(ConsumerProtocolAssignment(
        version=0, assigned_partitions=[tp(topic=t, partitions=ps) for t, ps in parts.items()],
        user_data=None).encode())


def decode_assignment(data: bytes) -> dict[str, list[int]]:
    if not data:
        return {}
    a = ConsumerProtocolAssignment.decode(bytes(data))
    return {t.topic: sorted(t.partitions) for t in a.assigned_partitions}


def _response_class(request_cls):
    module = sys.modules[request_cls.__module__]
    return getattr(module, request_cls.__name__.replace("Request", "Response"))


class Raw:
    """One connection; requests are answered in order. `send` + `recv` let a test hold
    several pending JoinGroups (on several connections) at once."""

    def __init__(self, port: int, client_id: str = "kgroup", timeout: float = 30.0):
        self.conn = Conn(port, timeout=timeout)
        self.client_id = client_id
        self.correlation = 0

    def send(self, request_cls, version: int, **fields):
        self.correlation += 1
        req = request_cls[version](**fields)
        req.with_header(correlation_id=self.correlation, client_id=self.client_id)
        self.conn.send(bytes(req.encode(header=True, framed=True)))
        return (_response_class(request_cls), version, self.correlation)

    def recv(self, pending):
        response_cls, version, correlation = pending
        body = self.conn.recv_frame()
        assert body is not None, "the broker closed the connection"
        resp = response_cls.decode(body, version=version, header=True)
        assert resp.header.correlation_id == correlation
        return resp

    def call(self, request_cls, version: int, **fields):
        return self.recv(self.send(request_cls, version, **fields))

    def close(self):
        self.conn.close()

    # -- group-independent calls --------------------------------------------------------

    def find_coordinators(self, keys: list[str], version: int = FIND_V) -> dict[str, int]:
        """{key: error code} from one batched FindCoordinator (v4+) or one call per key."""
        if version >= 4:
            r = self.call(FindCoordinatorRequest, version, key_type=0, coordinator_keys=keys)
            return {c.key: c.error_code for c in r.coordinators}
        return {k: self.call(FindCoordinatorRequest, version, key=k, key_type=0).error_code
                for k in keys}

    def describe(self, groups: list[str], version: int = DESCRIBE_V) -> dict:
        """{group: described group} (members' assignments decoded into dicts)."""
        r = self.call(DescribeGroupsRequest, version, groups=groups,
                      include_authorized_operations=False)
        return {g.group_id: g for g in r.groups}

    def list_groups(self, states: list[str] | None = None, version: int = LIST_V) -> dict[str, str]:
        """{group: state}."""
        r = self.call(ListGroupsRequest, version, states_filter=states or [], types_filter=[])
        assert r.error_code == 0
        return {g.group_id: g.group_state for g in r.groups}

    def delete_groups(self, groups: list[str], version: int = DELETE_V) -> dict[str, int]:
        r = self.call(DeleteGroupsRequest, version, groups_names=groups)
        return {g.group_id: g.error_code for g in r.results}

    def fetch_offsets(self, groups: dict[str, dict[str, list[int]] | None],
                      version: int = FETCH_V) -> dict[str, tuple[int, dict]]:
        """Committed offsets of several groups in one OffsetFetch v8+:
        {group: (group error, {(topic, partition): (offset, leader epoch, metadata, error)})}."""
        g_cls = OffsetFetchRequest.OffsetFetchRequestGroup
        t_cls = g_cls.OffsetFetchRequestTopics
        r = self.call(OffsetFetchRequest, version, require_stable=False, groups=[
            g_cls(group_id=g, topics=None if ts is None else
                  [t_cls(name=t, partition_indexes=ps) for t, ps in ts.items()])
            for g, ts in groups.items()])
        out = {}
        for g in r.groups:
            out[g.group_id] = (g.error_code, {
                (t.name, p.partition_index): (p.committed_offset, p.committed_leader_epoch,
                                              p.metadata, p.error_code)
                for t in g.topics for p in t.partitions})
        return out

    def commit_offsets(self, group: str, offsets: dict[tuple[str, int], int], generation: int = -1,
                       member_id: str = "", instance_id: str | None = None,
                       metadata: str | None = "", leader_epoch: int = -1,
                       version: int = COMMIT_V) -> dict[tuple[str, int], int]:
        """OffsetCommit; returns {(topic, partition): error code}."""
        t_cls = OffsetCommitRequest.OffsetCommitRequestTopic
        p_cls = t_cls.OffsetCommitRequestPartition
        by_topic: dict[str, list] = {}
        for (t, p), o in offsets.items():
            by_topic.setdefault(t, []).append(p_cls(
                partition_index=p, committed_offset=o, committed_leader_epoch=leader_epoch,
                committed_metadata=metadata))
        r = self.call(OffsetCommitRequest, version, group_id=group,
                      generation_id_or_member_epoch=generation, member_id=member_id,
                      group_instance_id=instance_id, retention_time_ms=-1,
                      topics=[t_cls(name=t, partitions=ps) for t, ps in by_topic.items()])
        return {(t.name, p.partition_index): p.error_code for t in r.topics for p in t.partitions}

    def delete_offsets(self, group: str, parts: dict[str, list[int]]) -> tuple[int, dict]:
        t_cls = OffsetDeleteRequest.OffsetDeleteRequestTopic
        p_cls = t_cls.OffsetDeleteRequestPartition
        r = self.call(OffsetDeleteRequest, 0, group_id=group, topics=[
            t_cls(name=t, partitions=[p_cls(partition_index=p) for p in ps])
            for t, ps in parts.items()])
        return r.error_code, {(t.name, p.partition_index): p.error_code
                              for t in r.topics for p in t.partitions}

    def leave(self, group: str, members: list[tuple[str, str | None]],
              version: int = LEAVE_V) -> tuple[int, list[int]]:
        """LeaveGroup of several members at once (v3+): (group error, [member errors])."""
        m_cls = LeaveGroupRequest.MemberIdentity
        r = self.call(LeaveGroupRequest, version, group_id=group, members=[
            m_cls(member_id=m, group_instance_id=i, reason=None) for m, i in members])
        return r.error_code, [m.error_code for m in r.members]


@dataclass
class RawMember:
    """A group member driven by hand, on its own connection."""
    port: int
    group: str
    topics: list[str] = field(default_factory=lambda: ["t"])
    protocols: list[str] = field(default_factory=lambda: ["range"])
    session_timeout_ms: int = 6000
    rebalance_timeout_ms: int = 6000
    instance_id: str | None = None
    client_id: str = "raw"
    member_id: str = ""
    generation: int = -1
    leader: str = ""
    protocol: str | None = None
    roster: list = field(default_factory=list)

    def __post_init__(self):
        self.raw = Raw(self.port, self.client_id)

    def join_request(self, version: int = JOIN_V, **override) -> dict:
        p_cls = JoinGroupRequest.JoinGroupRequestProtocol
        fields = dict(group_id=self.group, session_timeout_ms=self.session_timeout_ms,
                      rebalance_timeout_ms=self.rebalance_timeout_ms, member_id=self.member_id,
                      group_instance_id=self.instance_id, protocol_type="consumer",
                      protocols=[p_cls(name=p, metadata=subscription(self.topics))
                                 for p in self.protocols], reason=None)
        fields.update(override)
        return fields

    def join_send(self, version: int = JOIN_V, **override):
        return self.raw.send(JoinGroupRequest, version, **self.join_request(version, **override))

    def join_recv(self, pending):
        r = self.raw.recv(pending)
        if r.error_code in (NONE, MEMBER_ID_REQUIRED):
            self.member_id = r.member_id
        if r.error_code == NONE:
            self.generation, self.leader = r.generation_id, r.leader
            self.protocol, self.roster = r.protocol_name, list(r.members)
        return r

    def join(self, version: int = JOIN_V, **override):
        """JoinGroup; a new dynamic member first gets MEMBER_ID_REQUIRED and its id (KIP-394),
        then joins with it. Returns the final response."""
        r = self.join_recv(self.join_send(version, **override))
        if r.error_code == MEMBER_ID_REQUIRED:
            r = self.join_recv(self.join_send(version, **override))
        return r

    def sync(self, assignments: dict[str, bytes] | None = None, version: int = SYNC_V, **override):
        """SyncGroup; the leader passes every member's assignment. Returns (error, decoded)."""
        a_cls = SyncGroupRequest.SyncGroupRequestAssignment
        fields = dict(group_id=self.group, generation_id=self.generation, member_id=self.member_id,
                      group_instance_id=self.instance_id, protocol_type="consumer",
                      protocol_name=self.protocol,
                      assignments=[a_cls(member_id=m, assignment=a)
                                   for m, a in (assignments or {}).items()])
        fields.update(override)
        r = self.raw.call(SyncGroupRequest, version, **fields)
        return r.error_code, decode_assignment(r.assignment)

    def join_and_sync_alone(self, parts: dict[str, list[int]]) -> dict[str, list[int]]:
        """Join as the only member, assign `parts` to itself; returns the synced assignment."""
        r = self.join()
        assert r.error_code == NONE, r
        assert r.leader == self.member_id
        err, got = self.sync({self.member_id: assignment(parts)})
        assert err == NONE
        return got

    def heartbeat(self, version: int = HEARTBEAT_V, **override) -> int:
        fields = dict(group_id=self.group, generation_id=self.generation, member_id=self.member_id,
                      group_instance_id=self.instance_id)
        fields.update(override)
        return self.raw.call(HeartbeatRequest, version, **fields).error_code

    def commit(self, offsets: dict[tuple[str, int], int], **override) -> dict[tuple[str, int], int]:
        kw = dict(generation=self.generation, member_id=self.member_id,
                  instance_id=self.instance_id)
        kw.update(override)
        return self.raw.commit_offsets(self.group, offsets, **kw)

    def leave(self) -> int:
        err, members = self.raw.leave(self.group, [(self.member_id, self.instance_id)])
        return err or members[0]

    def close(self):
        self.raw.close()
