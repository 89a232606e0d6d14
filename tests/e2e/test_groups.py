"""Consumer groups as applications see them, with confluent-kafka (librdkafka), kafka-python
and aiokafka: partitions shared and taken over without losing or re-processing committed
records, cooperative incremental rebalances, static members restarting without a
rebalance, committed offsets and group metadata surviving kill -9, the admin view of
groups (list with state filter, describe, lag, delete), the initial rebalance delay, and
how long rebalances take (printed, not asserted).

The request-level protocol (error codes, fencing, batched requests) is in
test_groups_protocol.py; the consumer adapters are in groupclients.py."""

import statistics
import threading
import time

import pytest

from clients import BY_NAME, Delivered, Msg, produce_ok
from groupclients import (FAST_GROUPS_ENV, HEARTBEAT_INTERVAL_MS, SESSION_TIMEOUT_MS, Journal,
                          group_admin, member_of, new_member, wait_balanced, wait_for)
from kgroup import NON_EMPTY_GROUP

PARTITIONS = 6


class Feeder:
    """Produces to every partition in the background until stopped; remembers the offset
    of every acknowledged record."""

    def __init__(self, client, bootstrap: str, topic: str, partitions: int = PARTITIONS,
                 every: float = 0.02):
        self.client, self.bootstrap, self.topic = client, bootstrap, topic
        self.partitions, self.every = partitions, every
        self.acked: dict[int, set[int]] = {p: set() for p in range(partitions)}
        self.failures: list = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self):
        try:
            with self.client.producer(self.bootstrap, linger_ms=5) as p:
                seq = 0
                while not self._stop.is_set():
                    msgs = [Msg(b"k", b"%d" % (seq + i), partition=i)
                            for i in range(self.partitions)]
                    for r in p.send(self.topic, msgs):
                        if isinstance(r, Delivered):
                            self.acked[r.partition].add(r.offset)
                        else:
                            self.failures.append(r)
                    seq += self.partitions
                    time.sleep(self.every)
        except BaseException as e:
            self.failures.append(e)

    def __enter__(self):
        self._thread.start()
        wait_for(lambda: sum(map(len, self.acked.values())) or self.failures, "first records acked")
        return self

    def __exit__(self, *exc):
        self.stop()

    def stop(self) -> dict[int, set[int]]:
        self._stop.set()
        self._thread.join(60)
        assert not self.failures, f"producing failed: {self.failures[:3]}"
        return self.acked


def report(capsys, line: str):
    """Prints to the terminal even without `pytest -s`."""
    with capsys.disabled():
        print(f"\n[groups] {line}")


def fast_broker(make_broker):
    return make_broker(env=FAST_GROUPS_ENV)


def create_topic(client, bootstrap: str, topic: str, partitions: int = PARTITIONS):
    with client.admin(bootstrap) as a:
        a.create_topic(topic, partitions)


def assert_exactly_once_past_commits(journal: Journal, acked: dict[int, set[int]]):
    """Every acknowledged record was processed, and none was processed again after a commit
    past it had completed."""
    seen = journal.offsets_seen()
    missing = {p: sorted(offs - seen.get(p, set()))[:10] for p, offs in acked.items()
               if offs - seen.get(p, set())}
    assert not missing, f"records never processed (partition: first offsets): {missing}"
    assert journal.reprocessed_below_commit() == []


# ---------------------------------------------------------------------------------------

def test_three_consumers_share_six_partitions_and_take_over_when_one_leaves(make_broker, client,
                                                                           topic, capsys):
    b = fast_broker(make_broker)
    create_topic(client, b.bootstrap, topic)
    journal = Journal()
    with Feeder(client, b.bootstrap, topic) as feeder:
        members = [new_member(client, b.bootstrap, "share", topic, journal, name=f"c{i}")
                   for i in range(3)]
        wait_balanced(members, PARTITIONS)
        assert sorted(len(m.owned()) for m in members) == [2, 2, 2]
        # Each has processed some of its own partitions' records before one leaves.
        wait_for(lambda: {r.member for r in journal.processed} >= {m.name for m in members},
                 "every member processed records")
        leaving = members.pop()
        taken_over = leaving.owned()
        leaving.close()
        wait_balanced(members, PARTITIONS)
        assert sorted(len(m.owned()) for m in members) == [3, 3]
        # The survivors process the leaver's partitions from where it committed.
        wait_for(lambda: {r.partition for r in journal.processed
                          if r.member != leaving.name and r.t > leaving.closing_at} >= taken_over,
                 f"survivors consume the partitions {sorted(taken_over)} of {leaving.name}")
        acked = feeder.stop()
    total = sum(map(len, acked.values()))
    wait_for(lambda: sum(map(len, journal.offsets_seen().values())) >= total,
             f"all {total} acknowledged records processed")
    for m in members:
        m.close()
    failed_commits = sum(len(m.commit_failures) for m in members + [leaving])
    report(capsys, f"{client.name}, 3 consumers then 2: {journal.summary()}, "
                   f"{failed_commits} commits refused")
    assert_exactly_once_past_commits(journal, acked)
    # What the group committed last is the end of every partition.
    with group_admin(client, b.bootstrap) as admin:
        committed = admin.committed("share")
    assert {tp[1]: o for tp, (o, _meta) in committed.items()} == \
        {p: max(offs) + 1 for p, offs in acked.items()}


@pytest.mark.parametrize("client_name", ["confluent", "kafka-python"])
def test_cooperative_sticky_moves_only_the_partitions_that_change_owner(make_broker, client_name,
                                                                       topic):
    """Incremental rebalances (KIP-429): a joining member takes one partition from each of
    the others, who keep consuming the rest; when it leaves, only its partitions move.
    Checked through the assign/revoke callbacks the application gets."""
    client = BY_NAME[client_name]
    b = fast_broker(make_broker)
    create_topic(client, b.bootstrap, topic)
    journal = Journal()
    coop = dict(strategy="cooperative-sticky")
    with Feeder(client, b.bootstrap, topic) as feeder:
        a = new_member(client, b.bootstrap, "coop", topic, journal, name="a", **coop)
        c = new_member(client, b.bootstrap, "coop", topic, journal, name="c", **coop)
        wait_balanced([a, c], PARTITIONS)
        before = {m.name: m.owned() for m in (a, c)}
        joined_at = time.time()
        n = new_member(client, b.bootstrap, "coop", topic, journal, name="n", **coop)
        wait_balanced([a, c, n], PARTITIONS)
        for m in (a, c):
            changes = [ch for ch in m.changes_since(joined_at) if ch.partitions]
            revoked = frozenset().union(*[ch.partitions for ch in changes if ch.kind == "revoke"])
            assigned = frozenset().union(*[ch.partitions for ch in changes if ch.kind == "assign"])
            assert len(revoked) == 1 and revoked == before[m.name] - m.owned(), (m.name, changes)
            assert not assigned, f"{m.name} was re-assigned partitions it kept: {changes}"
        assert n.owned() == (before["a"] | before["c"]) - a.owned() - c.owned()
        # A cooperative rebalance takes two rounds (revoke, then assign), and a client may
        # rejoin once more after the second; the group settles Stable within moments.
        with group_admin(client, b.bootstrap) as admin:
            deadline = time.time() + 15
            d = admin.describe("coop")
            while d.state != "Stable" and time.time() < deadline:
                time.sleep(0.2)
                d = admin.describe("coop")
        assert (d.state, d.protocol, len(d.members)) == ("Stable", "cooperative-sticky", 3)
        kept = {m.name: m.owned() for m in (a, c)}
        left_at = time.time()
        orphaned = n.owned()
        n.close()
        wait_balanced([a, c], PARTITIONS)
        for m in (a, c):
            changes = [ch for ch in m.changes_since(left_at) if ch.partitions]
            assert all(ch.kind == "assign" for ch in changes), (m.name, changes)
            assert kept[m.name] <= m.owned() and m.owned() - kept[m.name] <= orphaned
        acked = feeder.stop()
    total = sum(map(len, acked.values()))
    wait_for(lambda: sum(map(len, journal.offsets_seen().values())) >= total,
             f"all {total} acknowledged records processed")
    a.close()
    c.close()
    assert_exactly_once_past_commits(journal, acked)


def test_static_members_restart_within_session_timeout_without_a_rebalance(make_broker, client,
                                                                           topic):
    """KIP-345: a static member (group.instance.id) that closes and comes back within its
    session timeout gets its old assignment back, and nobody else notices: no callbacks on
    the other members, the same assignment per instance, the group Stable throughout. Each
    of the three restarts in turn, so the group leader is one of them."""
    b = fast_broker(make_broker)
    create_topic(client, b.bootstrap, topic)
    journal = Journal()
    members = [new_member(client, b.bootstrap, "static", topic, journal, name=f"s{i}",
                          instance_id=f"instance-{i}") for i in range(3)]
    wait_balanced(members, PARTITIONS)
    # aiokafka's admin client sends DescribeGroups v3, which predates group.instance.id.
    viewer = BY_NAME["kafka-python"] if client.name == "aiokafka" else client
    with group_admin(viewer, b.bootstrap) as admin:
        first = wait_for(lambda: (d := admin.describe("static")).state == "Stable" and d,
                         "the group is Stable")
        assert {m.instance_id for m in first.members} == {f"instance-{i}" for i in range(3)}
        for i in range(3):
            before = admin.describe("static")
            old = members[i]
            owned = old.owned()
            restarted_at = time.time()
            old.close()  # a static member does not leave the group when it closes
            members[i] = new_member(client, b.bootstrap, "static", topic, journal,
                                    name=f"s{i}-again", instance_id=f"instance-{i}")
            wait_for(lambda: members[i].owned(), f"restarted instance-{i} gets its assignment")
            assert members[i].owned() == owned
            assert [ch.kind for ch in members[i].changes if ch.partitions] == ["assign"]
            assert members[i].last_change_at() - restarted_at < SESSION_TIMEOUT_MS / 1000
            time.sleep(3 * HEARTBEAT_INTERVAL_MS / 1000)  # time for a rebalance to show, if any
            others = [m for j, m in enumerate(members) if j != i]
            for m in others:
                assert m.changes_since(restarted_at) == [], f"{m.name} saw a rebalance"
            after = admin.describe("static")
            assert after.state == "Stable"
            assert after.by_instance() == before.by_instance() == first.by_instance()
            ids_before = {m.instance_id: m.member_id for m in before.members}
            ids_after = {m.instance_id: m.member_id for m in after.members}
            me = f"instance-{i}"
            assert ids_after[me] != ids_before[me]  # a new incarnation, nobody else changed
            assert {k: v for k, v in ids_after.items() if k != me} == \
                {k: v for k, v in ids_before.items() if k != me}
    for m in members:
        m.close()


def test_committed_offsets_and_group_survive_kill9(make_broker, client, topic):
    b = fast_broker(make_broker)
    create_topic(client, b.bootstrap, topic, 3)
    produce_ok(client, b.bootstrap, topic, [Msg(b"k", b"%d" % i, partition=i % 3) for i in range(30)])
    journal = Journal()
    with member_of(client, b.bootstrap, "durable", topic, journal, name="m") as m:
        with group_admin(client, b.bootstrap) as admin:
            wait_for(lambda: admin.committed("durable") == {(topic, p): (10, admin_meta(client))
                                                            for p in range(3)},
                     "10 records committed in each partition")
            (before,) = admin.describe("durable").members
        b.kill9()
        b = make_broker(env=FAST_GROUPS_ENV, data_dir=b.data_dir, port=b.port)
        with group_admin(client, b.bootstrap) as admin:
            assert admin.committed("durable") == {(topic, p): (10, admin_meta(client))
                                                  for p in range(3)}
            # The group came back from __consumer_offsets with its member, which carries on
            # under the same member id once it has reconnected.
            after = wait_for(lambda: (d := admin.describe("durable")).state == "Stable" and d,
                             "the group is Stable after the restart")
            assert [(x.member_id, x.partitions) for x in after.members] == \
                [(before.member_id, before.partitions)]
        produce_ok(client, b.bootstrap, topic, [Msg(b"k", b"%d" % i, partition=i % 3)
                                                for i in range(30, 60)])
        wait_for(lambda: sum(map(len, journal.offsets_seen().values())) >= 60,
                 "the member consumes the records produced after the restart")
        m.check()
    assert_exactly_once_past_commits(journal, {p: set(range(20)) for p in range(3)})
    assert sorted(r.offset for r in journal.processed if r.partition == 0) == list(range(20))


def admin_meta(client) -> str | None:
    """Commit metadata as each admin client reports an empty string: librdkafka says None."""
    return None if client.name == "confluent" else ""


def test_admin_lists_describes_and_sees_lag(make_broker, client, topic):
    b = fast_broker(make_broker)
    create_topic(client, b.bootstrap, topic)
    produce_ok(client, b.bootstrap, topic, [Msg(b"k", b"%d" % i, partition=i % PARTITIONS)
                                            for i in range(60)])
    journal = Journal()
    # "idle" consumes everything there is, commits and leaves: Empty, with offsets.
    with member_of(client, b.bootstrap, "idle", topic, name="i") as idle:
        wait_for(lambda: sum(map(len, idle.journal.offsets_seen().values())) >= 60, "idle read all")
    active = [new_member(client, b.bootstrap, "active", topic, journal, name=f"a{i}")
              for i in range(2)]
    wait_balanced(active, PARTITIONS)
    produce_ok(client, b.bootstrap, topic, [Msg(b"k", b"%d" % i, partition=i % PARTITIONS)
                                            for i in range(60, 90)])
    with group_admin(client, b.bootstrap) as admin:
        listed = admin.list_groups()
        assert {"idle", "active"} <= set(listed)
        if client.name != "aiokafka":  # its list_consumer_groups has no state (ListGroups v0)
            assert (listed["idle"], listed["active"]) == ("Empty", "Stable")
            assert set(admin.list_groups(["Stable"])) == {"active"}
            assert set(admin.list_groups(["Empty"])) == {"idle"}
        d = admin.describe("active")
        assert (d.state, d.protocol) == ("Stable", "range")
        assert sorted(m.client_id for m in d.members) == [f"{client.name}-a0", f"{client.name}-a1"]
        assert all(m.host.endswith("127.0.0.1") and m.member_id for m in d.members)
        assert sorted(p for m in d.members for _t, p in m.partitions) == list(range(PARTITIONS))
        assert sorted(len(m.partitions) for m in d.members) == [3, 3]
        idle_view = admin.describe("idle")
        assert (idle_view.state, idle_view.members) == ("Empty", [])
        # Lag = high watermark - committed offset.
        with client.consumer(b.bootstrap) as c:
            high = {p: c.watermarks(topic, p)[1] for p in range(PARTITIONS)}
        assert high == {p: 15 for p in range(PARTITIONS)}

        def lag(group):
            committed = admin.committed(group)
            return {p: high[p] - committed.get((topic, p), (0, None))[0] for p in range(PARTITIONS)}
        assert lag("idle") == {p: 5 for p in range(PARTITIONS)}
        wait_for(lambda: lag("active") == {p: 0 for p in range(PARTITIONS)},
                 "the active group catches up (lag 0)")
        if client.name != "aiokafka":  # no DeleteGroups in aiokafka's admin client
            assert admin.delete("active") == NON_EMPTY_GROUP
            assert admin.delete("idle") == 0
            assert "idle" not in admin.list_groups()
            assert admin.committed("idle") == {}
    for m in active:
        m.close()
    with group_admin(client, b.bootstrap) as admin:
        if client.name != "aiokafka":
            assert admin.list_groups(["Empty"]).keys() == {"active"}


def test_first_assignment_arrives_within_the_default_initial_rebalance_delay(make_broker, topic,
                                                                            capsys):
    """group.initial.rebalance.delay.ms is 3000 by default: a new group waits that long for
    more members before its first assignment (not half a session timeout). A lone consumer
    gets its partitions about 3 s after subscribing; two consumers starting a second apart
    land in the same first generation."""
    client = BY_NAME["confluent"]
    b = make_broker(env={"SLUICE_GROUP_MIN_SESSION_TIMEOUT_MS": "1000"})  # default delay
    create_topic(client, b.bootstrap, topic)
    solo = new_member(client, b.bootstrap, "solo", topic, name="solo")
    first = new_member(client, b.bootstrap, "pair", topic, name="first")
    time.sleep(1.0)
    second = new_member(client, b.bootstrap, "pair", topic, name="second")
    wait_for(lambda: solo.owned() and first.owned() and second.owned(),
             "every member gets partitions", 15)
    alone = solo.changes[0].t - solo.subscribed_at
    paired = first.changes[0].t - first.subscribed_at
    report(capsys, f"first assignment of a new group (group.initial.rebalance.delay.ms=3000): "
                   f"lone consumer {alone:.2f} s after subscribe; with a second member joining "
                   f"1 s later {paired:.2f} s")
    assert alone < 3.0 + 2.0  # the delay + slack
    assert paired < 3.0 + 1.0 + 3.0  # the delay, extended once by the second member, + slack
    assert solo.owned() == set(range(PARTITIONS))
    # Both were in the first generation: neither was ever given all six partitions.
    assert [len(ch.partitions) for ch in first.changes if ch.kind == "assign"][0] == 3
    assert [ch.kind for ch in second.changes if ch.partitions] == ["assign"]
    for m in (solo, first, second):
        m.close()


# ---------------------------------------------------------------------------------------
# Rebalance timing: measured and printed, never asserted
# ---------------------------------------------------------------------------------------

RUNS = 5


def settled(members, since: float) -> float:
    """Seconds from `since` until the last member got its new assignment."""
    times = []
    for m in members:
        assigns = [ch.t for ch in m.changes_since(since) if ch.kind == "assign" and ch.partitions]
        assert assigns, f"{m.name} got no new assignment"
        times.append(assigns[-1])
    return max(times) - since


def test_rebalance_timing(make_broker, client, topic, capsys):
    """Time from a third consumer's subscribe, and from one of three closing, until every
    member has its new assignment: median of five runs each, printed with the settings."""
    b = fast_broker(make_broker)
    create_topic(client, b.bootstrap, topic)
    base = [new_member(client, b.bootstrap, "timing", topic, name=f"b{i}") for i in range(2)]
    wait_balanced(base, PARTITIONS)
    joins, leaves = [], []
    for i in range(RUNS):
        extra = new_member(client, b.bootstrap, "timing", topic, name=f"x{i}")
        wait_balanced(base + [extra], PARTITIONS)
        joins.append(settled(base + [extra], extra.subscribed_at))
        extra.close()
        wait_balanced(base, PARTITIONS)
        leaves.append(settled(base, extra.closing_at))
    for m in base:
        m.close()
    fmt = ", ".join
    report(capsys, f"rebalance timing, {client.name}, 3 members / {PARTITIONS} partitions, eager 'range' "
           f"(group.initial.rebalance.delay.ms={FAST_GROUPS_ENV['SLUICE_GROUP_INITIAL_REBALANCE_DELAY_MS']}"
           f", session.timeout.ms={SESSION_TIMEOUT_MS}, heartbeat.interval.ms={HEARTBEAT_INTERVAL_MS}): "
           f"third joins: median {statistics.median(joins):.3f} s "
           f"[{fmt(f'{t:.3f}' for t in joins)}]; one leaves: median {statistics.median(leaves):.3f} s "
           f"[{fmt(f'{t:.3f}' for t in leaves)}]")
