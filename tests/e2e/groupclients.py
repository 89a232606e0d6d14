"""Consumer-group members and group admin calls over the three Python Kafka clients.

clients.py covers produce/fetch/admin with explicitly assigned partitions; this module adds
what a consumer group needs. A `GroupMember` subscribes in its own thread (its own event
loop for aiokafka), keeps polling so it heartbeats and rebalances like a real application,
and writes down everything a test checks afterwards:

    journal = Journal()
    with member_of(client, bootstrap, "g", topic, journal) as m:
        wait_for(lambda: m.assignment == {0, 1, 2}, "m owns every partition")
    journal.processed  # (time, member, partition, offset) of every record handed to the app
    journal.commits    # every successful commit, stamped when it completed
    m.changes          # assign/revoke/lost callbacks with their partitions and times

Each batch the member polls is "processed" (written to the journal) and then committed
synchronously (next offset per partition), before the next poll: at-least-once with the
smallest window for duplicates, so a duplicate of a record below a completed commit is a
coordinator bug, not a client effect.
"""

from __future__ import annotations

import asyncio
import threading
import time
from contextlib import contextmanager
from dataclasses import dataclass, field

from clients import DEFAULT_TIMEOUT, KafkaFailure, _from_python_exc, _Loop
from kgroup import decode_assignment

# group.initial.rebalance.delay.ms and session bounds most tests start the broker with, so
# clients may use a small session timeout and a group forms in half a second.
FAST_GROUPS_ENV = {"SLUICE_GROUP_INITIAL_REBALANCE_DELAY_MS": "500",
                   "SLUICE_GROUP_MIN_SESSION_TIMEOUT_MS": "1000"}
SESSION_TIMEOUT_MS = 6000
HEARTBEAT_INTERVAL_MS = 500


def wait_for(cond, what: str, timeout: float = DEFAULT_TIMEOUT, every: float = 0.05):
    """Polls `cond` until it returns something truthy (returned); fails naming `what`."""
    deadline = time.time() + timeout
    while True:
        got = cond()
        if got:
            return got
        if time.time() > deadline:
            raise AssertionError(f"timed out after {timeout}s waiting until {what}")
        time.sleep(every)


@dataclass(frozen=True)
class Processed:
    t: float
    member: str
    partition: int
    offset: int


@dataclass(frozen=True)
class Commit:
    t: float  # when the commit call returned successfully
    member: str
    offsets: dict  # partition -> next offset


@dataclass(frozen=True)
class Change:
    t: float
    kind: str  # "assign", "revoke" or "lost"
    partitions: frozenset


class Journal:
    """What every member of one test processed and committed, shared between threads."""

    def __init__(self):
        self.lock = threading.Lock()
        self.processed: list[Processed] = []
        self.commits: list[Commit] = []

    def add_processed(self, member: str, recs: list[tuple[int, int]]):
        now = time.time()
        with self.lock:
            self.processed += [Processed(now, member, p, o) for p, o in recs]

    def add_commit(self, member: str, offsets: dict[int, int]):
        with self.lock:
            self.commits.append(Commit(time.time(), member, dict(offsets)))

    def offsets_seen(self) -> dict[int, set[int]]:
        with self.lock:
            out: dict[int, set[int]] = {}
            for r in self.processed:
                out.setdefault(r.partition, set()).add(r.offset)
            return out

    def summary(self) -> str:
        with self.lock:
            distinct = {(r.partition, r.offset) for r in self.processed}
            return (f"{len(self.processed)} records processed ({len(self.processed) - len(distinct)} "
                    f"more than once), {len(self.commits)} commits")

    def reprocessed_below_commit(self) -> list[str]:
        """Records processed again although a commit past them had already completed: the
        coordinator handed a partition out from an offset older than its committed one."""
        with self.lock:
            processed, commits = list(self.processed), list(self.commits)
        first_seen: set[tuple[int, int]] = set()
        bad = []
        for r in sorted(processed, key=lambda r: r.t):
            key = (r.partition, r.offset)
            if key in first_seen:
                covering = [c for c in commits
                            if c.t < r.t and c.offsets.get(r.partition, -1) > r.offset]
                if covering:
                    c = covering[0]
                    bad.append(f"p{r.partition}@{r.offset} processed again by {r.member} after "
                               f"{c.member} committed {c.offsets[r.partition]}")
            first_seen.add(key)
        return bad


class GroupMember:
    """One subscribed consumer running in the background. Subclasses implement `_run`."""

    client_name = ""

    def __init__(self, bootstrap: str, group: str, topic: str, journal: Journal | None = None,
                 name: str = "m", strategy: str = "range", instance_id: str | None = None,
                 session_timeout_ms: int = SESSION_TIMEOUT_MS,
                 heartbeat_interval_ms: int = HEARTBEAT_INTERVAL_MS, commit: bool = True):
        self.bootstrap, self.group, self.topic = bootstrap, group, topic
        self.journal = journal or Journal()
        self.name, self.strategy, self.instance_id = name, strategy, instance_id
        self.session_timeout_ms, self.heartbeat_interval_ms = session_timeout_ms, heartbeat_interval_ms
        self.commit_enabled = commit
        self.changes: list[Change] = []
        self.assignment: set[int] = set()
        self.commit_failures: list[str] = []
        self.subscribed_at: float | None = None
        self.closing_at: float | None = None
        self.error: BaseException | None = None
        self._stop = threading.Event()
        self._started = threading.Event()
        self._lock = threading.Lock()
        self._thread: threading.Thread | None = None

    # -- lifecycle ------------------------------------------------------------------------

    def start(self) -> "GroupMember":
        self._thread = threading.Thread(target=self._main, name=f"{self.client_name}-{self.name}",
                                        daemon=True)
        self._thread.start()
        if not self._started.wait(DEFAULT_TIMEOUT) or self.error:
            raise AssertionError(f"{self.name} could not subscribe: {self.error!r}")
        return self

    def close(self, timeout: float = DEFAULT_TIMEOUT):
        """Stops polling and closes the consumer: a dynamic member leaves the group (a static
        one does not, as in every client)."""
        self._stop.set()
        if self._thread:
            self._thread.join(timeout)
            assert not self._thread.is_alive(), f"{self.name} did not close within {timeout}s"
        if self.error:
            raise AssertionError(f"{self.name} failed: {self.error!r}") from self.error

    def _main(self):
        try:
            self._run()
        except BaseException as e:  # reported by start()/close()/check()
            self.error = e
        finally:
            self._started.set()

    def _subscribing(self):
        self.subscribed_at = time.time()
        self._started.set()

    def check(self):
        if self.error:
            raise AssertionError(f"{self.name} failed: {self.error!r}") from self.error

    # -- what the client reports ----------------------------------------------------------

    def _changed(self, kind: str, partitions):
        parts = frozenset(partitions)
        with self._lock:
            self.changes.append(Change(time.time(), kind, parts))
            if kind == "assign":
                self.assignment |= parts
            else:
                self.assignment -= parts

    def owned(self) -> frozenset:
        with self._lock:
            return frozenset(self.assignment)

    def changes_since(self, t: float) -> list[Change]:
        with self._lock:
            return [c for c in self.changes if c.t >= t]

    def last_change_at(self) -> float:
        with self._lock:
            return self.changes[-1].t if self.changes else 0.0

    def _processed(self, recs: list[tuple[int, int]]) -> dict[int, int]:
        """Writes records to the journal; returns the offsets to commit."""
        self.journal.add_processed(self.name, recs)
        nxt: dict[int, int] = {}
        for p, o in recs:
            nxt[p] = max(nxt.get(p, 0), o + 1)
        return nxt

    def _run(self):
        raise NotImplementedError


class ConfluentMember(GroupMember):
    client_name = "confluent"

    def _run(self):
        from confluent_kafka import Consumer, KafkaException, TopicPartition
        conf = {"bootstrap.servers": self.bootstrap, "group.id": self.group,
                "client.id": f"{self.client_name}-{self.name}",
                "enable.auto.commit": False, "auto.offset.reset": "earliest",
                "session.timeout.ms": self.session_timeout_ms,
                "heartbeat.interval.ms": self.heartbeat_interval_ms,
                "partition.assignment.strategy": self.strategy, "fetch.wait.max.ms": 100}
        if self.instance_id:
            conf["group.instance.id"] = self.instance_id
        c = Consumer(conf)
        try:
            self._subscribing()
            c.subscribe([self.topic],
                        on_assign=lambda _c, ps: self._changed("assign", [p.partition for p in ps]),
                        on_revoke=lambda _c, ps: self._changed("revoke", [p.partition for p in ps]),
                        on_lost=lambda _c, ps: self._changed("lost", [p.partition for p in ps]))
            while not self._stop.is_set():
                msgs = [m for m in c.consume(num_messages=200, timeout=0.1) if not m.error()]
                if not msgs:
                    continue
                nxt = self._processed([(m.partition(), m.offset()) for m in msgs])
                if not self.commit_enabled:
                    continue
                try:
                    done = c.commit(offsets=[TopicPartition(self.topic, p, o) for p, o in nxt.items()],
                                    asynchronous=False)
                    failed = [tp for tp in done if tp.error]
                    if failed:
                        self.commit_failures.append(str(failed))
                    else:
                        self.journal.add_commit(self.name, nxt)
                except KafkaException as e:
                    self.commit_failures.append(str(e))
        finally:
            self.closing_at = time.time()
            c.close()


def _python_assignor(lib: str, strategy: str):
    import importlib
    mod = importlib.import_module(f"{lib}.coordinator.assignors")
    from_name = {"range": "range.RangePartitionAssignor",
                 "roundrobin": "roundrobin.RoundRobinPartitionAssignor",
                 "sticky": "sticky.sticky_assignor.StickyPartitionAssignor",
                 "cooperative-sticky": "cooperative_sticky.CooperativeStickyAssignor"}
    path, cls = from_name[strategy].rsplit(".", 1)
    return getattr(importlib.import_module(f"{mod.__name__}.{path}"), cls)


class KafkaPythonMember(GroupMember):
    client_name = "kafka-python"

    def _run(self):
        from kafka import KafkaConsumer, TopicPartition
        from kafka.consumer.subscription_state import ConsumerRebalanceListener
        from kafka.structs import OffsetAndMetadata
        me = self

        class Listener(ConsumerRebalanceListener):
            def on_partitions_revoked(self, revoked):
                me._changed("revoke", [tp.partition for tp in revoked])

            def on_partitions_assigned(self, assigned):
                me._changed("assign", [tp.partition for tp in assigned])

            def on_partitions_lost(self, lost):
                me._changed("lost", [tp.partition for tp in lost])

        c = KafkaConsumer(bootstrap_servers=self.bootstrap, group_id=self.group,
                          client_id=f"{self.client_name}-{self.name}",
                          enable_auto_commit=False, auto_offset_reset="earliest",
                          session_timeout_ms=self.session_timeout_ms,
                          heartbeat_interval_ms=self.heartbeat_interval_ms,
                          partition_assignment_strategy=[_python_assignor("kafka", self.strategy)],
                          group_instance_id=self.instance_id, fetch_max_wait_ms=100)
        try:
            self._subscribing()
            c.subscribe([self.topic], listener=Listener())
            while not self._stop.is_set():
                batches = c.poll(timeout_ms=100)
                recs = [(r.partition, r.offset) for rs in batches.values() for r in rs]
                if not recs:
                    continue
                nxt = self._processed(recs)
                if not self.commit_enabled:
                    continue
                try:
                    c.commit({TopicPartition(self.topic, p): OffsetAndMetadata(o, "", -1)
                              for p, o in nxt.items()})
                    self.journal.add_commit(self.name, nxt)
                except Exception as e:  # CommitFailedError, RebalanceInProgressError, ...
                    self.commit_failures.append(repr(e))
        finally:
            self.closing_at = time.time()
            c.close()


class AioKafkaMember(GroupMember):
    client_name = "aiokafka"

    def _run(self):
        asyncio.run(self._arun())

    async def _arun(self):
        from aiokafka import AIOKafkaConsumer, TopicPartition
        from aiokafka.abc import ConsumerRebalanceListener
        me = self

        class Listener(ConsumerRebalanceListener):
            async def on_partitions_revoked(self, revoked):
                me._changed("revoke", [tp.partition for tp in revoked])

            async def on_partitions_assigned(self, assigned):
                me._changed("assign", [tp.partition for tp in assigned])

        c = AIOKafkaConsumer(bootstrap_servers=self.bootstrap, group_id=self.group,
                             client_id=f"{self.client_name}-{self.name}",
                             enable_auto_commit=False, auto_offset_reset="earliest",
                             session_timeout_ms=self.session_timeout_ms,
                             heartbeat_interval_ms=self.heartbeat_interval_ms,
                             partition_assignment_strategy=(_python_assignor("aiokafka", self.strategy),),
                             group_instance_id=self.instance_id, fetch_max_wait_ms=100)
        await c.start()
        try:
            self._subscribing()
            c.subscribe([self.topic], listener=Listener())
            while not self._stop.is_set():
                batches = await c.getmany(timeout_ms=100)
                recs = [(r.partition, r.offset) for rs in batches.values() for r in rs]
                if not recs:
                    continue
                nxt = self._processed(recs)
                if not self.commit_enabled:
                    continue
                try:
                    await c.commit({TopicPartition(self.topic, p): o for p, o in nxt.items()})
                    self.journal.add_commit(self.name, nxt)
                except Exception as e:  # CommitFailedError, IllegalStateError, ...
                    self.commit_failures.append(repr(e))
        finally:
            self.closing_at = time.time()
            await c.stop()


MEMBERS = {cls.client_name: cls for cls in (ConfluentMember, KafkaPythonMember, AioKafkaMember)}


def new_member(client, bootstrap: str, group: str, topic: str, journal: Journal | None = None,
               **kw) -> GroupMember:
    """A started member of `group` using `client` (a clients.py client or its name)."""
    name = client if isinstance(client, str) else client.name
    return MEMBERS[name](bootstrap, group, topic, journal, **kw).start()


@contextmanager
def member_of(client, bootstrap: str, group: str, topic: str, journal: Journal | None = None, **kw):
    m = new_member(client, bootstrap, group, topic, journal, **kw)
    try:
        yield m
    finally:
        m.close()


def balanced(members: list[GroupMember], partitions: int) -> bool:
    """Every partition owned by exactly one member, each member with its fair share."""
    owned = [m.owned() for m in members]
    share = partitions // len(members)
    return (sorted(p for o in owned for p in o) == list(range(partitions))
            and all(share <= len(o) <= share + (1 if partitions % len(members) else 0)
                    for o in owned))


def wait_balanced(members: list[GroupMember], partitions: int, timeout: float = DEFAULT_TIMEOUT):
    def ok():
        for m in members:
            m.check()
        return balanced(members, partitions)
    wait_for(ok, f"{[m.name for m in members]} share {partitions} partitions "
                 f"(now {[sorted(m.owned()) for m in members]})", timeout)


# ----------------------------------------------------------------------------------------
# Group admin, per client
# ----------------------------------------------------------------------------------------

@dataclass
class MemberView:
    member_id: str
    instance_id: str | None
    client_id: str
    host: str
    partitions: frozenset  # of (topic, partition)


@dataclass
class GroupView:
    state: str  # Kafka's state name: "Stable", "Empty", ...
    protocol: str  # the chosen assignor
    members: list[MemberView] = field(default_factory=list)

    def by_instance(self) -> dict[str | None, frozenset]:
        return {m.instance_id: m.partitions for m in self.members}


_CONFLUENT_STATES = {"STABLE": "Stable", "EMPTY": "Empty", "DEAD": "Dead",
                     "PREPARING_REBALANCING": "PreparingRebalance",
                     "COMPLETING_REBALANCING": "CompletingRebalance"}


class _ConfluentGroupAdmin:
    def __init__(self, bootstrap):
        from confluent_kafka.admin import AdminClient
        self.a = AdminClient({"bootstrap.servers": bootstrap})

    @staticmethod
    def _result(f):
        try:
            return f.result(DEFAULT_TIMEOUT)
        except Exception as e:
            err = e.args[0] if e.args else None
            if hasattr(err, "code"):
                raise KafkaFailure(err.code(), err.name(), err.str()) from None
            raise

    def list_groups(self, states: list[str] | None = None) -> dict[str, str]:
        from confluent_kafka import ConsumerGroupState
        kw = {}
        if states:
            by_name = {v: k for k, v in _CONFLUENT_STATES.items()}
            kw["states"] = {ConsumerGroupState[by_name[s]] for s in states}
        res = self._result(self.a.list_consumer_groups(request_timeout=DEFAULT_TIMEOUT, **kw))
        assert not res.errors, res.errors
        return {g.group_id: _CONFLUENT_STATES.get(g.state.name, g.state.name) for g in res.valid}

    def describe(self, group: str) -> GroupView:
        (f,) = self.a.describe_consumer_groups([group], request_timeout=DEFAULT_TIMEOUT).values()
        d = self._result(f)
        return GroupView(_CONFLUENT_STATES.get(d.state.name, d.state.name), d.partition_assignor, [
            MemberView(m.member_id, m.group_instance_id, m.client_id, m.host,
                       frozenset((tp.topic, tp.partition) for tp in m.assignment.topic_partitions))
            for m in d.members])

    def committed(self, group: str) -> dict[tuple[str, int], tuple[int, str | None]]:
        from confluent_kafka import ConsumerGroupTopicPartitions
        (f,) = self.a.list_consumer_group_offsets([ConsumerGroupTopicPartitions(group)]).values()
        res = self._result(f)
        return {(tp.topic, tp.partition): (tp.offset, tp.metadata) for tp in res.topic_partitions
                if tp.offset >= 0}

    def delete(self, group: str) -> int:
        (f,) = self.a.delete_consumer_groups([group], request_timeout=DEFAULT_TIMEOUT).values()
        try:
            self._result(f)
        except KafkaFailure as e:
            return e.code
        return 0


class _PythonGroupAdmin:
    def __init__(self, bootstrap):
        from kafka.admin import KafkaAdminClient
        self.a = KafkaAdminClient(bootstrap_servers=bootstrap, request_timeout_ms=30000)

    def list_groups(self, states: list[str] | None = None) -> dict[str, str]:
        return {g["group_id"]: g.get("group_state")
                for g in self.a.list_groups(states_filter=states or None)}

    def describe(self, group: str) -> GroupView:
        d = self.a.describe_groups([group])[group]
        assert not d.get("error"), d
        members = []
        for m in d["members"]:
            a = m["member_assignment"]
            parts = frozenset((t["topic"], p) for t in (a or {}).get("assigned_partitions", [])
                              for p in t["partitions"]) if isinstance(a, dict) else frozenset(
                (t, p) for t, ps in decode_assignment(a or b"").items() for p in ps)
            members.append(MemberView(m["member_id"], m.get("group_instance_id"), m["client_id"],
                                      m["client_host"], parts))
        return GroupView(d["group_state"], d["protocol_data"], members)

    def committed(self, group: str) -> dict[tuple[str, int], tuple[int, str | None]]:
        res = self.a.list_group_offsets({group: None})[group]
        return {(tp.topic, tp.partition): (o.offset, o.metadata) for tp, o in res.items()
                if o.offset >= 0}

    def delete(self, group: str) -> int:
        import kafka.errors as Errors
        res = self.a.delete_groups([group])[group]
        if res == "OK":
            return 0
        return getattr(Errors, res).errno

    def close(self):
        self.a.close()


class _AioGroupAdmin:
    def __init__(self, bootstrap):
        from aiokafka.admin import AIOKafkaAdminClient
        self.loop = _Loop()

        async def start():
            a = AIOKafkaAdminClient(bootstrap_servers=bootstrap, request_timeout_ms=30000)
            await a.start()
            return a
        self.a = self.loop.run(start())

    def _call(self, coro):
        try:
            return self.loop.run(coro)
        except Exception as e:
            raise _from_python_exc(e) from e

    def list_groups(self, states: list[str] | None = None) -> dict[str, str]:
        if states:
            raise NotImplementedError("aiokafka's list_consumer_groups has no state filter")
        return {g[0]: None for g in self._call(self.a.list_consumer_groups())}

    def describe(self, group: str) -> GroupView:
        (resp,) = self._call(self.a.describe_consumer_groups([group]))
        (g,) = resp.groups
        error, _gid, state, _ptype, protocol, members = g[:6]
        assert error == 0, g
        out = []
        for m in members:
            member_id, *rest = m
            if len(rest) == 5:  # v4+: group_instance_id after member_id
                instance, client_id, host, _meta, assignment = rest
            else:
                instance, (client_id, host, _meta, assignment) = None, rest
            out.append(MemberView(member_id, instance, client_id, host, frozenset(
                (t, p) for t, ps in decode_assignment(assignment).items() for p in ps)))
        return GroupView(state, protocol, out)

    def committed(self, group: str) -> dict[tuple[str, int], tuple[int, str | None]]:
        res = self._call(self.a.list_consumer_group_offsets(group))
        return {(tp.topic, tp.partition): (o.offset, o.metadata) for tp, o in res.items()
                if o.offset >= 0}

    def delete(self, group: str) -> int:
        raise NotImplementedError("aiokafka's admin client has no DeleteGroups")

    def close(self):
        self.loop.run(self.a.close())
        self.loop.close()


_ADMINS = {"confluent": _ConfluentGroupAdmin, "kafka-python": _PythonGroupAdmin,
           "aiokafka": _AioGroupAdmin}


@contextmanager
def group_admin(client, bootstrap: str):
    name = client if isinstance(client, str) else client.name
    a = _ADMINS[name](bootstrap)
    try:
        yield a
    finally:
        if hasattr(a, "close"):
            a.close()
