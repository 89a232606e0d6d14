"""Transactions (KIP-98, KIP-447) with real clients and over the wire.

What is verified:
- confluent-kafka, kafka-python and aiokafka transactional producers commit and abort
  transactions spanning several partitions; every client's read_committed consumer sees
  exactly the committed records (keys, values, headers, timestamps, offsets, in order),
  read_uncommitted sees the aborted ones too, and each commit/abort marker takes one
  offset in every partition of its transaction;
- aiokafka's `async with producer.transaction()` commits, and aborts on an exception;
- while a transaction is open, read_committed consumers stop at the last stable offset
  (LSO) without skipping past it, ListOffsets(latest, read_committed) is the LSO and
  read_uncommitted the high watermark; after the commit both agree and the waiting
  consumers get the records;
- zombie fencing: a second producer with the same transactional.id fences the first, whose
  open transaction is aborted and whose commit fails fatally;
- transaction.timeout.ms: the broker aborts a transaction open longer than its timeout (and
  only that one), the producer's commit then fails, consumers read past it;
- send_offsets_to_transaction: the group's offsets become visible only on commit (require
  stable OffsetFetch answers UNSTABLE_OFFSET_COMMIT meanwhile), and aborted ones never;
  KIP-447 generation/member checks on TxnOffsetCommit v3;
- consume-transform-produce applications (a separate process, see txn_transformer.py) that
  are SIGKILLed mid-transaction, or whose broker is SIGKILLed, end with every input record
  in the output exactly once, in order, and the group committed at the input's end;
- the coordinator APIs over the wire (hand-encoded in kwire.py): FindCoordinator,
  InitProducerId, AddPartitionsToTxn, AddOffsetsToTxn, TxnOffsetCommit, EndTxn,
  DescribeTransactions, ListTransactions, their error codes, and the read_committed Fetch
  response (LSO, aborted transactions, control batches);
- after a restart (SIGTERM or SIGKILL) committed and aborted transactions over many small
  segments read right, an open one is still open until its producer is fenced or its
  timeout aborts it, pending transactional offsets are still pending, and a commit
  acknowledged just before a kill -9 completes;
- three producers interleaving transactions in one partition: the LSO after every EndTxn,
  read_committed results, and the aborted-transaction list of a Fetch from every offset;
- compressed transactional batches (every codec, several producers);
- compaction of a transactional topic drops aborted records and stops at the LSO;
- once delete.retention.ms has passed it drops the markers of transactions with no record
  left, and the log still reads the same (LSO = high watermark, after a restart too);
- idle transactional ids expire (also across a restart); a transaction survives the
  deletion of one of its topics.

Client quirks met on the way are noted where they are worked around (txnclients.py,
txn_transformer.py): confluent-kafka 2.16's flush() on a fenced producer, librdkafka's
re-bootstrap hang after its only broker restarts, kafka-python's background epoch bump.
"""

from __future__ import annotations

import asyncio
import re
import random
import signal
import subprocess
import sys
import threading
import time
from collections import defaultdict
from contextlib import ExitStack
from dataclasses import dataclass, field
from pathlib import Path

import pytest
from kafka.protocol.consumer.group import OffsetFetchRequest

import kwire
from clients import BY_NAME, CREATE_TIME, Delivered, Msg, Rec, produce_ok
from kgroup import Raw, RawMember
from kwire import (CONTROL_ABORT, CONTROL_COMMIT, READ_COMMITTED, READ_UNCOMMITTED, Conn,
                   create_topics_v2, create_topics_v2_result, produce_v3, produce_v3_result,
                   produce_v3_txn, record_batch, transactional)
from txnclients import (CLIENT_NAMES, TxnFailure, by_partition, consumer, latest_offsets,
                        open_txn_producer, txn_producer, wait_for)

BASE_TS = 1_700_000_000_000

# Kafka error codes.
NONE = 0
UNKNOWN_TOPIC_OR_PARTITION = 3
COORDINATOR_LOAD_IN_PROGRESS = 14
COORDINATOR_NOT_AVAILABLE = 15
ILLEGAL_GENERATION = 22
UNKNOWN_MEMBER_ID = 25
INVALID_PRODUCER_EPOCH = 47
INVALID_TXN_STATE = 48
INVALID_PRODUCER_ID_MAPPING = 49
INVALID_TRANSACTION_TIMEOUT = 50
CONCURRENT_TRANSACTIONS = 51
OPERATION_NOT_ATTEMPTED = 55
UNSTABLE_OFFSET_COMMIT = 88
PRODUCER_FENCED = 90
TRANSACTIONAL_ID_NOT_FOUND = 105
LIBRDKAFKA_FENCED = -144  # RD_KAFKA_RESP_ERR__FENCED
FENCED_CODES = {LIBRDKAFKA_FENCED, PRODUCER_FENCED, INVALID_PRODUCER_EPOCH}


def is_fenced(e: TxnFailure) -> bool:
    """librdkafka's _FENCED or the broker's PRODUCER_FENCED / INVALID_PRODUCER_EPOCH, by code
    or (aiokafka's ProducerFenced has no code; kafka-python wraps it) by name."""
    return e.code in FENCED_CODES or any(
        word in e.name or word in e.message for word in ("ProducerFenced", "ProducerEpoch"))


# The broker aborts timed-out transactions every 500 ms; groups form without delay.
TXN_ENV = {"SLUICE_TRANSACTION_ABORT_TIMED_OUT_TRANSACTION_CLEANUP_INTERVAL_MS": "500",
           "SLUICE_GROUP_INITIAL_REBALANCE_DELAY_MS": "0",
           "SLUICE_GROUP_MIN_SESSION_TIMEOUT_MS": "1000"}


# ----------------------------------------------------------------------------------------
# helpers
# ----------------------------------------------------------------------------------------

def create_topic(bootstrap: str, topic: str, partitions: int):
    with BY_NAME["confluent"].admin(bootstrap) as a:
        a.create_topic(topic, partitions)


def msgs(tag: str, partitions: list[int], per_partition: int, start_ts: int = 0) -> list[Msg]:
    """Records of one transaction: interleaved over `partitions`, each with its own key,
    value, headers and timestamp so any mix-up shows."""
    out = []
    for i in range(per_partition):
        for p in partitions:
            n = len(out)
            out.append(Msg(f"{tag}-k{p}-{i}".encode(), f"{tag}-value-{p}-{i}".encode(),
                           (("txn", tag.encode()), ("seq", str(n).encode())),
                           BASE_TS + start_ts + n, p))
    return out


def layout(txns: list[list[Msg]]) -> tuple[list[list[int]], dict[int, int]]:
    """Where Kafka puts the records of transactions written one after another: each
    transaction's records in order, then one marker in every partition it wrote. Returns
    the offsets of every transaction's records and the resulting high watermarks."""
    nxt: dict[int, int] = defaultdict(int)
    offsets = []
    for records in txns:
        offs = []
        for m in records:
            offs.append(nxt[m.partition])
            nxt[m.partition] += 1
        for p in {m.partition for m in records}:
            nxt[p] += 1
        offsets.append(offs)
    return offsets, dict(nxt)


def expected(records: list[Msg], offsets: list[int]) -> dict[int, list[tuple]]:
    """{partition: [(offset, key, value, headers, timestamp)]} in offset order."""
    out: dict[int, list[tuple]] = defaultdict(list)
    for m, o in zip(records, offsets):
        out[m.partition].append((o, m.key, m.value, m.headers, m.timestamp))
    return {p: sorted(v) for p, v in out.items()}


def seen(recs: list[Rec]) -> dict[int, list[tuple]]:
    """The same shape from consumed records, in the order they were delivered."""
    for r in recs:
        assert r.timestamp_type == CREATE_TIME, r
    return {p: [(r.offset, r.key, r.value, r.headers, r.timestamp) for r in rs]
            for p, rs in by_partition(recs).items()}


def read_exactly(client: str, bootstrap: str, topic: str, partitions: list[int], count: int,
                 committed: bool, extra_wait: float = 1.0) -> list[Rec]:
    """`count` records from offset 0, then checks that no further record arrives within
    `extra_wait` seconds (a record there would be one that should not be visible)."""
    with consumer(client, bootstrap, committed) as c:
        c.assign(topic, {p: 0 for p in partitions})
        recs = c.read(count)
        more = c.read(1, timeout=extra_wait) if len(recs) == count else []
    level = "read_committed" if committed else "read_uncommitted"
    assert len(recs) == count and not more, \
        f"{client} {level} got {len(recs)} records (+{len(more)} more) of {count}: " \
        f"{[(r.partition, r.offset, r.value) for r in recs + more][:40]}"
    return recs


def txn_id(topic: str, n: int = 0) -> str:
    return f"{topic}-tx{n}"


class Wire:
    """A raw connection for the transaction coordinator APIs, with the retries every real
    client does for the transient answers (coordinator loading, a previous transaction's
    markers still being written)."""

    TRANSIENT = {COORDINATOR_LOAD_IN_PROGRESS, COORDINATOR_NOT_AVAILABLE,
                 CONCURRENT_TRANSACTIONS}

    def __init__(self, port: int):
        self.port = port
        self.c = Conn(port, timeout=30)

    def close(self):
        self.c.close()

    def _retry(self, fn, ok=lambda r: r not in Wire.TRANSIENT, timeout: float = 30):
        deadline = time.time() + timeout
        while True:
            r = fn()
            if ok(r) or time.time() > deadline:
                return r
            time.sleep(0.1)

    def init(self, tid: str, timeout_ms: int = 60000, version: int = 4) -> tuple[int, int]:
        err, pid, epoch = self._retry(
            lambda: kwire.init_producer_id(self.c, tid, timeout_ms, version),
            ok=lambda r: r[0] not in Wire.TRANSIENT)
        assert err == NONE, f"InitProducerId({tid}) -> error {err}"
        assert pid >= 0 and epoch >= 0
        return pid, epoch

    def add_partitions(self, tid, pid, epoch, parts: dict[str, list[int]], version: int = 3):
        return self._retry(
            lambda: kwire.add_partitions_to_txn(self.c, tid, pid, epoch, parts, version),
            ok=lambda r: not set(r.values()) & Wire.TRANSIENT)

    def add_offsets(self, tid, pid, epoch, group, version: int = 3) -> int:
        return self._retry(lambda: kwire.add_offsets_to_txn(self.c, tid, pid, epoch, group,
                                                            version))

    def end(self, tid, pid, epoch, commit: bool, version: int = 3) -> int:
        return self._retry(lambda: kwire.end_txn(self.c, tid, pid, epoch, commit, version))

    def produce(self, tid, topic, partition, records, pid, epoch, seq) -> tuple[int, int]:
        batch = transactional(record_batch(records, producer_id=pid, producer_epoch=epoch,
                                           base_sequence=seq))
        self.c.send(produce_v3_txn(tid, topic, partition, batch))
        return produce_v3_result(self.c.recv_frame())

    def describe(self, tid: str) -> kwire.TxnDescription:
        return kwire.describe_transactions(self.c, [tid])[tid]

    def wait_state(self, tid: str, state: str, timeout: float = 30) -> kwire.TxnDescription:
        last = []

        def reached():
            last[:] = [self.describe(tid)]
            return last[0].state == state
        try:
            wait_for(reached, f"{tid} is {state}", timeout)
        except AssertionError as e:
            raise AssertionError(f"{e}; last DescribeTransactions: {last}") from None
        return last[0]


def wire_describe(port: int, tid: str) -> kwire.TxnDescription:
    w = Wire(port)
    try:
        return w.describe(tid)
    finally:
        w.close()


def committed_offsets(port: int, group: str, topic: str, partitions: list[int],
                      require_stable: bool) -> dict[int, tuple[int, int]]:
    """OffsetFetch v8: {partition: (committed offset, error)}."""
    raw = Raw(port)
    try:
        g_cls = OffsetFetchRequest.OffsetFetchRequestGroup
        r = raw.call(OffsetFetchRequest, 8, require_stable=require_stable, groups=[
            g_cls(group_id=group, topics=[g_cls.OffsetFetchRequestTopics(
                name=topic, partition_indexes=partitions)])])
    finally:
        raw.close()
    (g,) = r.groups
    assert g.error_code == NONE, g
    return {p.partition_index: (p.committed_offset, p.error_code)
            for t in g.topics for p in t.partitions}


def lso_and_hw(bootstrap: str, topic: str, partitions: list[int]):
    return (latest_offsets(bootstrap, topic, partitions, committed=True),
            latest_offsets(bootstrap, topic, partitions, committed=False))


# ----------------------------------------------------------------------------------------
# 1-3. committed and aborted transactions, every producer read by every consumer
# ----------------------------------------------------------------------------------------

@pytest.mark.parametrize("producer", CLIENT_NAMES)
def test_read_committed_sees_only_committed_transactions(broker, topic, producer):
    """One producer commits a transaction over three partitions, aborts one over two of
    them, and commits another; each client's read_committed consumer gets the committed
    records only, read_uncommitted gets all, and the markers leave one-offset gaps."""
    create_topic(broker.bootstrap, topic, 3)
    a = msgs("A", [0, 1, 2], 3)
    b = msgs("B", [0, 1], 3, start_ts=100)
    c = msgs("C", [0, 1, 2], 2, start_ts=200)
    (offs_a, offs_b, offs_c), hw = layout([a, b, c])
    with txn_producer(producer, broker.bootstrap, txn_id(topic)) as p:
        acked = []
        for records, commit in ((a, True), (b, False), (c, True)):
            p.begin()
            acked.append(p.send(topic, records))
            p.commit() if commit else p.abort()
    for records, offs, delivered in zip((a, b, c), (offs_a, offs_b, offs_c), acked):
        assert [(d.partition, d.offset) for d in delivered] == \
            [(m.partition, o) for m, o in zip(records, offs)], \
            f"{producer} acknowledged offsets other than expected"
    assert hw == {0: 11, 1: 11, 2: 7}  # A 0-2, marker 3, B 4-6, marker 7, C 8-9, marker 10

    assert lso_and_hw(broker.bootstrap, topic, [0, 1, 2]) == (hw, hw), \
        "with no open transaction the LSO is the high watermark"
    want_committed = expected(a + c, offs_a + offs_c)
    want_all = expected(a + b + c, offs_a + offs_b + offs_c)
    for reader in CLIENT_NAMES:
        got = read_exactly(reader, broker.bootstrap, topic, [0, 1, 2], len(a) + len(c), True)
        assert seen(got) == want_committed, f"{reader} read_committed of {producer}'s txns"
        got = read_exactly(reader, broker.bootstrap, topic, [0, 1, 2],
                           len(a) + len(b) + len(c), False, extra_wait=0.3)
        assert seen(got) == want_all, f"{reader} read_uncommitted of {producer}'s txns"
        # Starting inside the aborted transaction: the next record is the next committed one.
        with consumer(reader, broker.bootstrap, committed=True) as cons:
            cons.assign(topic, {0: offs_b[2]})
            got = cons.read(1)[:1]  # kafka-python and aiokafka hand over whole batches
        assert seen(got) == {0: want_committed[0][3:4]}, \
            f"{reader} read_committed from offset {offs_b[2]}, inside the aborted transaction"


@pytest.mark.parametrize("codec,producer", [("zstd", "confluent"), ("gzip", "kafka-python"),
                                            ("snappy", "aiokafka"), ("lz4", "kafka-python")])
def test_compressed_transactions(broker, topic, codec, producer):
    """Transactions whose batches are compressed: read_committed consumers of every client
    get the committed records only, and the batches on disk really are compressed."""
    from logfiles import CODEC_IDS, batches
    create_topic(broker.bootstrap, topic, 1)
    a = msgs("A", [0], 20)
    b = msgs("B", [0], 20, start_ts=100)
    c = msgs("C", [0], 20, start_ts=200)
    (offs_a, _offs_b, offs_c), _hw = layout([a, b, c])
    option = {"compression.type": codec} if producer == "confluent" \
        else {"compression_type": codec}
    with txn_producer(producer, broker.bootstrap, txn_id(topic), **option) as p:
        for records, commit in ((a, True), (b, False), (c, True)):
            p.begin()
            p.send(topic, records)
            p.commit() if commit else p.abort()
    stored = {x.codec for x in batches(broker.data_dir / f"{topic}-0")}
    assert CODEC_IDS[codec] in stored, f"no {codec} batch on disk: codecs {stored}"
    for reader in CLIENT_NAMES:
        got = read_exactly(reader, broker.bootstrap, topic, [0], len(a) + len(c), True,
                           extra_wait=0.3)
        assert seen(got) == expected(a + c, offs_a + offs_c), f"{reader} read_committed"


def test_aiokafka_transaction_context_commits_and_aborts_on_exception(broker, topic):
    """aiokafka's `async with producer.transaction()`: the block's records are committed
    when it ends normally and aborted when it raises; aiokafka's read_committed consumer
    and end_offsets agree."""
    from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition
    create_topic(broker.bootstrap, topic, 2)
    first, failed, last = msgs("A", [0, 1], 4), msgs("B", [0, 1], 2, 100), msgs("C", [1], 3, 200)
    (offs_first, offs_failed, offs_last), hw = layout([first, failed, last])

    class Boom(Exception):
        pass

    async def send_all(p, records):
        futures = [await p.send(topic, key=m.key, value=m.value, partition=m.partition,
                                timestamp_ms=m.timestamp, headers=list(m.headers))
                   for m in records]
        return [await f for f in futures]

    async def go():
        p = AIOKafkaProducer(bootstrap_servers=broker.bootstrap, transactional_id=txn_id(topic),
                             linger_ms=5)
        await p.start()
        try:
            async with p.transaction():
                await send_all(p, first)
            with pytest.raises(Boom):
                async with p.transaction():
                    acked = await send_all(p, failed)
                    assert [md.offset for md in acked] == offs_failed
                    raise Boom()
            async with p.transaction():
                await send_all(p, last)
        finally:
            await p.stop()

        tps = [TopicPartition(topic, 0), TopicPartition(topic, 1)]
        out = {}
        for level in ("read_committed", "read_uncommitted"):
            c = AIOKafkaConsumer(bootstrap_servers=broker.bootstrap, isolation_level=level,
                                 enable_auto_commit=False, auto_offset_reset="earliest",
                                 fetch_max_wait_ms=100)
            await c.start()
            try:
                c.assign(tps)
                await c.seek_to_beginning(*tps)
                ends = await c.end_offsets(tps)
                want = len(first) + len(last) + (len(failed) if level == "read_uncommitted" else 0)
                recs = []
                deadline = time.time() + 30
                while len(recs) < want and time.time() < deadline:
                    for rs in (await c.getmany(timeout_ms=200)).values():
                        recs += rs
                out[level] = ({tp.partition: o for tp, o in ends.items()},
                              [Rec(r.partition, r.offset, r.key, r.value,
                                   tuple(tuple(h) for h in r.headers), r.timestamp,
                                   CREATE_TIME) for r in recs])
            finally:
                await c.stop()
        return out

    out = asyncio.run(go())
    ends, recs = out["read_committed"]
    assert ends == hw, "end_offsets at read_committed (the LSO) with no open transaction"
    assert seen(recs) == expected(first + last, offs_first + offs_last)
    ends, recs = out["read_uncommitted"]
    assert ends == hw
    assert seen(recs) == expected(first + failed + last, offs_first + offs_failed + offs_last)


# ----------------------------------------------------------------------------------------
# 4. the last stable offset
# ----------------------------------------------------------------------------------------

def test_open_transaction_holds_the_last_stable_offset(broker, topic):
    """Plain records, then an open transaction, then more plain records: read_committed
    consumers (all three clients) stop before the open transaction, ListOffsets latest is
    the LSO at read_committed and the high watermark at read_uncommitted; after the commit
    the same consumers carry on with the transaction's records and the later ones."""
    create_topic(broker.bootstrap, topic, 1)
    before = msgs("plain1", [0], 2)
    txn = msgs("T", [0], 3, start_ts=100)
    after = msgs("plain2", [0], 1, start_ts=200)
    produce_ok(BY_NAME["confluent"], broker.bootstrap, topic, before)
    with txn_producer("confluent", broker.bootstrap, txn_id(topic)) as p, ExitStack() as stack:
        p.begin()
        assert [d.offset for d in p.send(topic, txn)] == [2, 3, 4]
        produce_ok(BY_NAME["confluent"], broker.bootstrap, topic, after)  # offset 5
        assert lso_and_hw(broker.bootstrap, topic, [0]) == ({0: 2}, {0: 6}), \
            "(LSO, high watermark) while the transaction is open"
        # Lookups by timestamp only find offsets below the LSO at read_committed.
        for committed, want in ((True, {0: 1}), (False, {0: 1})):
            with consumer("confluent", broker.bootstrap, committed) as c:
                assert c.offsets_for_times(topic, {0: before[1].timestamp}) == want
        for committed, want in ((True, {0: None}), (False, {0: 3})):
            with consumer("confluent", broker.bootstrap, committed) as c:
                assert c.offsets_for_times(topic, {0: txn[1].timestamp}) == want, \
                    f"offsets_for_times of a record in the open transaction, " \
                    f"{'read_committed' if committed else 'read_uncommitted'}"
        consumers = {}
        for name in CLIENT_NAMES:
            c = consumers[name] = stack.enter_context(consumer(name, broker.bootstrap, True))
            c.assign(topic, {0: 0})
            got = c.read(3, timeout=2)
            assert [(r.offset, r.value) for r in got] == \
                [(0, before[0].value), (1, before[1].value)], \
                f"{name} read_committed while the transaction is open"
        p.commit()
        assert lso_and_hw(broker.bootstrap, topic, [0]) == ({0: 7}, {0: 7}), \
            "(LSO, high watermark) after the commit (its marker is offset 6)"
        for name, c in consumers.items():
            got = c.read(4)
            assert [(r.offset, r.key, r.value) for r in got] == \
                [(2 + i, m.key, m.value) for i, m in enumerate(txn + after)], \
                f"{name} read_committed after the commit (it must not have skipped ahead)"


# ----------------------------------------------------------------------------------------
# 5-6. fencing and timeouts
# ----------------------------------------------------------------------------------------

@pytest.mark.parametrize("client", CLIENT_NAMES)
def test_second_producer_fences_the_first_and_aborts_its_transaction(broker, topic, client):
    """Zombie fencing: a second producer with the same transactional.id (InitProducerId)
    bumps the epoch and aborts the first one's open transaction; the first one's further
    records are refused and its commit fails with a fencing error."""
    create_topic(broker.bootstrap, topic, 2)
    tid = txn_id(topic)
    zombie_records = msgs("zombie", [0, 1], 2)
    late_records = msgs("late", [0], 1, start_ts=50)
    new_records = msgs("new", [0, 1], 2, start_ts=100)
    (offs_zombie, offs_new), hw = layout([zombie_records, new_records])
    zombie = open_txn_producer(client, broker.bootstrap, tid)
    try:
        zombie.begin()
        zombie.send(topic, zombie_records)
        d = wire_describe(broker.port, tid)
        assert (d.state, d.partitions) == ("Ongoing", {(topic, 0), (topic, 1)}), d
        with txn_producer(client, broker.bootstrap, tid) as p:
            fenced = wire_describe(broker.port, tid)
            assert fenced.producer_id == d.producer_id and \
                fenced.producer_epoch > d.producer_epoch, (d, fenced)
            assert fenced.state == "Empty", f"after the new producer's InitProducerId: {fenced}"
            # The zombie carries on: its records are refused, its commit fails fatally.
            failures = []
            try:
                zombie.send(topic, late_records, timeout=15)
            except TxnFailure as e:
                failures.append(e)
            if client == "kafka-python":
                # kafka-python answers the refused record (INVALID_PRODUCER_EPOCH) with a
                # KIP-360 epoch bump, InitProducerId(producer id, old epoch), in the
                # background; until the broker's answer (PRODUCER_FENCED) arrives, commit
                # fails locally with "Invalid transition attempted from state
                # BUMPING_PRODUCER_EPOCH". Wait for the answer.
                tm = zombie.p._transaction_manager
                wait_for(lambda: not tm.is_bumping_epoch(), "kafka-python's epoch bump ends")
            with pytest.raises(TxnFailure) as commit_failure:
                zombie.commit()
            failures.append(commit_failure.value)
            assert failures[-1].fatal and is_fenced(failures[-1]), \
                f"the fenced producer's commit should fail with a fencing error: {failures}"
            p.begin()
            assert [dd.offset for dd in p.send(topic, new_records)] == offs_new
            p.commit()
    finally:
        zombie.close()
    got = read_exactly("confluent", broker.bootstrap, topic, [0, 1], len(new_records), True)
    assert seen(got) == expected(new_records, offs_new)
    got = read_exactly("confluent", broker.bootstrap, topic, [0, 1],
                       len(zombie_records) + len(new_records), False, extra_wait=0.5)
    assert seen(got) == expected(zombie_records + new_records, offs_zombie + offs_new), \
        "the zombie's records stay in the log (aborted) and its late record was refused"
    assert lso_and_hw(broker.bootstrap, topic, [0, 1]) == (hw, hw)


def test_broker_aborts_a_transaction_past_its_timeout(make_broker, topic):
    b = make_broker(env=TXN_ENV)
    create_topic(b.bootstrap, topic, 1)
    short, long_ = txn_id(topic, 1), txn_id(topic, 2)
    timed_out = msgs("slow", [0], 3)
    kept = msgs("patient", [0], 2, start_ts=100)
    plain = msgs("plain", [0], 1, start_ts=200)
    slow = open_txn_producer("confluent", b.bootstrap, short, timeout_ms=2000)
    patient = open_txn_producer("confluent", b.bootstrap, long_, timeout_ms=60000)
    try:
        slow.begin()
        assert [d.offset for d in slow.send(topic, timed_out)] == [0, 1, 2]
        before = wire_describe(b.port, short)
        assert before.timeout_ms == 2000, before
        patient.begin()
        assert [d.offset for d in patient.send(topic, kept)] == [3, 4]
        # The broker aborts `slow` (marker at 5) within timeout + cleanup interval.
        w = Wire(b.port)
        try:
            after = w.wait_state(short, "CompleteAbort", timeout=30)
            assert after.producer_epoch > before.producer_epoch, \
                f"a timed-out transaction is aborted with a bumped epoch: {before} -> {after}"
            assert w.describe(long_).state == "Ongoing", \
                "a transaction within its timeout is left alone"
        finally:
            w.close()
        with pytest.raises(TxnFailure) as failure:
            slow.commit()
        assert failure.value.fatal and is_fenced(failure.value), failure.value
        # The LSO is now held by `patient` only.
        produce_ok(BY_NAME["confluent"], b.bootstrap, topic, plain)  # offset 6
        assert lso_and_hw(b.bootstrap, topic, [0]) == ({0: 3}, {0: 7})
        patient.commit()
    finally:
        slow.close()
        patient.close()
    got = read_exactly("confluent", b.bootstrap, topic, [0], 3, True)
    assert [(r.offset, r.value) for r in got] == \
        [(3, kept[0].value), (4, kept[1].value), (6, plain[0].value)]
    got = read_exactly("kafka-python", b.bootstrap, topic, [0], 3, True, extra_wait=0.3)
    assert [r.offset for r in got] == [3, 4, 6]
    # The transactional id is usable again by a new producer.
    again = msgs("again", [0], 1, start_ts=300)
    with txn_producer("confluent", b.bootstrap, short, timeout_ms=2000) as p:
        p.begin()
        assert [d.offset for d in p.send(topic, again)] == [8]
        p.commit()
    got = read_exactly("confluent", b.bootstrap, topic, [0], 4, True, extra_wait=0.3)
    assert got[-1].value == again[0].value


# ----------------------------------------------------------------------------------------
# 7. offsets in transactions; consume-transform-produce
# ----------------------------------------------------------------------------------------

def test_offsets_sent_to_a_transaction_are_committed_with_it(make_broker, topic):
    """send_offsets_to_transaction: OffsetFetch(require_stable) answers
    UNSTABLE_OFFSET_COMMIT while the transaction is open and the plain fetch still shows
    the old offsets; after the commit the group has them (a new member starts there);
    an aborted transaction's offsets are dropped."""
    from confluent_kafka import Consumer
    b = make_broker(env=TXN_ENV)
    src, out = f"{topic}-in", f"{topic}-out"
    create_topic(b.bootstrap, src, 2)
    create_topic(b.bootstrap, out, 1)
    produce_ok(BY_NAME["confluent"], b.bootstrap, src,
               [Msg(b"k", b"%d-%d" % (p, i), partition=p) for p in (0, 1) for i in range(10)])
    group = f"{topic}-group"
    meta_consumer = Consumer({"bootstrap.servers": b.bootstrap, "group.id": group})
    try:
        gm = meta_consumer.consumer_group_metadata()
        with txn_producer("confluent", b.bootstrap, txn_id(topic)) as p:
            p.begin()
            p.send(out, msgs("o", [0], 1))
            p.send_offsets({(src, 0): 5, (src, 1): 7}, gm)
            assert committed_offsets(b.port, group, src, [0, 1], require_stable=True) == \
                {0: (-1, UNSTABLE_OFFSET_COMMIT), 1: (-1, UNSTABLE_OFFSET_COMMIT)}
            assert committed_offsets(b.port, group, src, [0, 1], require_stable=False) == \
                {0: (-1, NONE), 1: (-1, NONE)}, "pending offsets are not visible yet"
            p.commit()
            wait_for(lambda: committed_offsets(b.port, group, src, [0, 1], True) ==
                     {0: (5, NONE), 1: (7, NONE)}, "the committed offsets are visible")
            p.begin()
            p.send(out, msgs("x", [0], 1, start_ts=10))
            p.send_offsets({(src, 0): 9}, gm)
            assert committed_offsets(b.port, group, src, [0, 1], require_stable=True) == \
                {0: (-1, UNSTABLE_OFFSET_COMMIT), 1: (7, NONE)}, \
                "only the partition with a pending offset is unstable"
            assert committed_offsets(b.port, group, src, [0, 1], require_stable=False) == \
                {0: (5, NONE), 1: (7, NONE)}, "the committed offset, not the pending one"
            d = wire_describe(b.port, txn_id(topic))
            assert {t for t, _p in d.partitions} == {out, "__consumer_offsets"}, d
            p.abort()
            wait_for(lambda: committed_offsets(b.port, group, src, [0, 1], True) ==
                     {0: (5, NONE), 1: (7, NONE)}, "the aborted offsets are dropped", 10)
    finally:
        meta_consumer.close()
    # A member of the group starts at the committed offsets.
    c = Consumer({"bootstrap.servers": b.bootstrap, "group.id": group,
                  "enable.auto.commit": False, "auto.offset.reset": "earliest",
                  "isolation.level": "read_committed", "session.timeout.ms": 6000})
    try:
        c.subscribe([src])
        first: dict[int, int] = {}
        deadline = time.time() + 30
        while len(first) < 2 and time.time() < deadline:
            m = c.poll(0.2)
            if m is not None and not m.error():
                first.setdefault(m.partition(), m.offset())
        assert first == {0: 5, 1: 7}
    finally:
        c.close()


def test_txn_offset_commit_checks_generation_and_member(make_broker, topic):
    """KIP-447: TxnOffsetCommit v3 carries the consumer's generation and member id and is
    refused (ILLEGAL_GENERATION, UNKNOWN_MEMBER_ID) when they are not the group's; without
    them (v0) it is accepted; the commit publishes the last accepted offset."""
    b = make_broker(env=TXN_ENV)
    create_topic(b.bootstrap, topic, 1)
    group, tid = f"{topic}-group", txn_id(topic)
    member = RawMember(b.port, group, topics=[topic])
    w = Wire(b.port)
    try:
        member.join_and_sync_alone({topic: [0]})
        pid, epoch = w.init(tid)
        assert w.add_offsets(tid, pid, epoch, group) == NONE
        tp = (topic, 0)
        commit = lambda o, **kw: kwire.txn_offset_commit(w.c, tid, group, pid, epoch, {tp: o},
                                                         **kw)
        assert commit(3, generation=member.generation, member_id=member.member_id) == {tp: NONE}
        assert commit(4, generation=member.generation + 1, member_id=member.member_id) == \
            {tp: ILLEGAL_GENERATION}
        assert commit(5, generation=member.generation, member_id="not-a-member") == \
            {tp: UNKNOWN_MEMBER_ID}
        assert commit(6, version=0) == {tp: NONE}, "v0 has no member fields and is accepted"
        assert committed_offsets(b.port, group, topic, [0], True) == \
            {0: (-1, UNSTABLE_OFFSET_COMMIT)}
        assert w.end(tid, pid, epoch, commit=True) == NONE
        wait_for(lambda: committed_offsets(b.port, group, topic, [0], True) == {0: (6, NONE)},
                 "the transaction's last offset is committed")
        assert member.heartbeat() == NONE, "the member is unaffected"
    finally:
        w.close()
        member.close()


TRANSFORMER = Path(__file__).parent / "txn_transformer.py"


class Transformer:
    """One txn_transformer.py process; a thread collects its stdout lines."""

    def __init__(self, log_dir: Path, name: str, args: list[str]):
        self.name = name
        self.stderr_path = log_dir / f"{name}.stderr"
        self.lines: list[str] = []
        self.cond = threading.Condition()
        with open(self.stderr_path, "wb") as err:
            self.proc = subprocess.Popen([sys.executable, str(TRANSFORMER), *args],
                                         stdout=subprocess.PIPE, stderr=err, text=True,
                                         cwd=Path(__file__).parent)
        self.thread = threading.Thread(target=self._pump, daemon=True)
        self.thread.start()

    def _pump(self):
        for line in self.proc.stdout:
            with self.cond:
                self.lines.append(line.rstrip("\n"))
                self.cond.notify_all()
        with self.cond:
            self.cond.notify_all()

    def describe(self) -> str:
        with self.cond:
            out = "\n".join(self.lines[-15:])
        err = self.stderr_path.read_text(errors="replace")[-3000:]
        return f"{self.name} (exit {self.proc.poll()}):\n{out}\nstderr:\n{err}"

    def wait_line(self, line: str, timeout: float = 60) -> None:
        deadline = time.time() + timeout
        with self.cond:
            while line not in self.lines:
                left = deadline - time.time()
                if left <= 0 or (self.proc.poll() is not None and not self.thread.is_alive()):
                    raise AssertionError(f"no line {line!r} from {self.describe()}")
                self.cond.wait(min(left, 0.5))

    def wait(self, timeout: float = 120) -> int:
        try:
            rc = self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            raise AssertionError(f"still running after {timeout}s: {self.describe()}") from None
        self.thread.join(5)
        return rc

    def kill(self):
        self.proc.send_signal(signal.SIGKILL)
        self.proc.wait(30)
        self.thread.join(5)

    def count(self, prefix: str, suffix: str = "") -> int:
        with self.cond:
            return sum(1 for ln in self.lines if ln.startswith(prefix) and ln.endswith(suffix))


@pytest.fixture
def spawn(tmp_path):
    """Starts transformer processes; any still running at teardown is killed (by its own
    Popen handle)."""
    started: list[Transformer] = []

    def start(name: str, args: list[str]) -> Transformer:
        t = Transformer(tmp_path, name, args)
        started.append(t)
        return t

    yield start
    for t in started:
        if t.proc.poll() is None:
            t.proc.kill()
            t.proc.wait(30)


IN_PARTITIONS, IN_PER_PARTITION, PER_TXN = 2, 60, 10


class Pipeline:
    """An input topic filled with IN_PARTITIONS x IN_PER_PARTITION plain records, an empty
    output topic, and the arguments a transformer needs."""

    def __init__(self, bootstrap: str, topic: str, client: str):
        self.bootstrap, self.client = bootstrap, client
        self.src, self.dst, self.group = f"{topic}-in", f"{topic}-out", f"{topic}-group"
        self.tid = txn_id(topic)
        create_topic(bootstrap, self.src, IN_PARTITIONS)
        create_topic(bootstrap, self.dst, IN_PARTITIONS)
        self.inputs = [Msg(f"key-{p}-{i % 7}".encode(), f"value-{p}-{i}".encode(),
                           (("origin", b"input"),), BASE_TS + i, p)
                       for p in range(IN_PARTITIONS) for i in range(IN_PER_PARTITION)]
        produce_ok(BY_NAME["confluent"], bootstrap, self.src, self.inputs)
        self.end = {p: IN_PER_PARTITION for p in range(IN_PARTITIONS)}

    def args(self, bootstrap: str | None = None, pause_at: int = -1,
             pause_s: float = 0) -> list[str]:
        return ["--client", self.client, "--bootstrap", bootstrap or self.bootstrap,
                "--group", self.group, "--txn-id", self.tid, "--in", self.src,
                "--out", self.dst, "--per-txn", str(PER_TXN),
                "--end", ",".join(f"{p}:{o}" for p, o in self.end.items()),
                "--pause-at", str(pause_at), "--pause-s", str(pause_s)]

    def assert_exactly_once(self, bootstrap: str, port: int):
        total = len(self.inputs)
        got = read_exactly("confluent", bootstrap, self.dst, list(range(IN_PARTITIONS)), total,
                           True, extra_wait=1.5)
        want: dict[int, list] = defaultdict(list)
        for i, m in enumerate(self.inputs):
            offset = i % IN_PER_PARTITION
            want[m.partition].append((m.key, b"T:" + m.value,
                                      m.headers + (("src", f"{m.partition}:{offset}".encode()),),
                                      m.timestamp))
        have = {p: [(r.key, r.value, r.headers, r.timestamp) for r in rs]
                for p, rs in by_partition(got).items()}
        for p in range(IN_PARTITIONS):
            assert have.get(p) == want[p], \
                f"output partition {p} is not the transformed input exactly once, in order " \
                f"(first difference at {_first_diff(have.get(p, []), want[p])})"
        assert committed_offsets(port, self.group, self.src, list(range(IN_PARTITIONS)),
                                 require_stable=True) == \
            {p: (o, NONE) for p, o in self.end.items()}, "the group's committed offsets"


def _first_diff(a: list, b: list):
    for i, (x, y) in enumerate(zip(a, b)):
        if x != y:
            return i, x, y
    return min(len(a), len(b)), f"lengths {len(a)} vs {len(b)}"


@pytest.mark.parametrize("client", CLIENT_NAMES)
def test_transformer_killed_mid_transaction_restarts_exactly_once(make_broker, topic, spawn,
                                                                  client):
    """A transformer is SIGKILLed while its fourth transaction is open (records written,
    offsets not committed); a new one with the same transactional.id and group fences it
    (aborting that transaction) and finishes the input: the read_committed output is
    every input record exactly once, in order, and the group is committed at the end."""
    b = make_broker(env=TXN_ENV)
    pipe = Pipeline(b.bootstrap, topic, client)
    first = spawn("first", pipe.args(pause_at=4, pause_s=60))
    first.wait_line("txn 4 produced")
    assert first.count("txn ", " committed") == 3, first.describe()
    first.kill()
    hw = latest_offsets(b.bootstrap, pipe.dst, [0, 1], committed=False)
    lso = latest_offsets(b.bootstrap, pipe.dst, [0, 1], committed=True)
    assert lso != hw, f"the killed transformer's transaction is open: LSO {lso}, HW {hw}"
    second = spawn("second", pipe.args())
    assert second.wait() == 0, second.describe()
    assert second.count("fatal") == 0
    pipe.assert_exactly_once(b.bootstrap, b.port)
    # The killed transaction's records are in the log, aborted.
    uncommitted = sum(latest_offsets(b.bootstrap, pipe.dst, [0, 1], committed=False).values())
    assert uncommitted > len(pipe.inputs), "expected the aborted records and markers in the log"


def test_transformer_killed_several_times_mid_stream_exactly_once(make_broker, topic, spawn):
    """The transformer is SIGKILLed again and again, at different points: with a transaction
    open, just after a commit, and at seeded random moments after it started (wherever it
    is then: consuming, producing, committing). Each restart takes over the same
    transactional.id and group; once a run is let finish, the read_committed output is
    every input exactly once, in order, and the group is committed at the end."""
    b = make_broker(env=TXN_ENV)
    pipe = Pipeline(b.bootstrap, topic, "confluent")
    runs = 0

    def start(**kw) -> Transformer:
        nonlocal runs
        runs += 1
        return spawn(f"run{runs}", pipe.args(**kw))

    t = start(pause_at=2, pause_s=60)
    t.wait_line("txn 2 produced")
    t.kill()
    t = start(pause_at=2, pause_s=60)
    t.wait_line("txn 1 committed")
    t.kill()
    rng = random.Random(447)
    for _ in range(4):
        t = start()
        t.wait_line("ready")
        time.sleep(rng.uniform(0.05, 1.0))
        t.kill()
    last = start()
    assert last.wait() == 0, last.describe()
    assert last.count("fatal") == 0, last.describe()
    pipe.assert_exactly_once(b.bootstrap, b.port)


def test_transformer_survives_a_broker_kill9_exactly_once(make_broker, topic, spawn):
    """The broker is SIGKILLed while a transformer's transaction is open and restarted on
    the same data and port; the transformer (restarted if it gave up) finishes, and the
    output is still every input exactly once, in order."""
    b = make_broker(env=TXN_ENV)
    pipe = Pipeline(b.bootstrap, topic, "confluent")
    t = spawn("first", pipe.args(pause_at=3, pause_s=3))
    t.wait_line("txn 3 produced")
    hw = latest_offsets(b.bootstrap, pipe.dst, [0, 1], committed=False)
    lso = latest_offsets(b.bootstrap, pipe.dst, [0, 1], committed=True)
    b.stop(signal.SIGKILL)
    assert lso != hw, f"the transformer's transaction was open at the kill: LSO {lso}, HW {hw}"
    b = make_broker(env=TXN_ENV, data_dir=b.data_dir, port=b.port)
    runs = [t]
    for attempt in range(3):
        rc = runs[-1].wait(180)
        if rc == 0:
            break
        runs.append(spawn(f"restart{attempt}", pipe.args()))
    assert rc == 0, "\n\n".join(r.describe() for r in runs)
    pipe.assert_exactly_once(b.bootstrap, b.port)


# ----------------------------------------------------------------------------------------
# 8. the coordinator APIs over the wire
# ----------------------------------------------------------------------------------------

def raw_create(port: int, topic: str, partitions: int):
    c = Conn(port)
    try:
        c.send(create_topics_v2(topic, partitions))
        assert create_topics_v2_result(c.recv_frame())[0] == NONE
    finally:
        c.close()


def test_coordinator_apis_over_the_wire(broker, topic):
    """A transaction by hand: FindCoordinator(transaction) names this broker,
    InitProducerId gives epoch 0, AddPartitionsToTxn v3, transactional Produce,
    DescribeTransactions (Ongoing with its partitions, then CompleteCommit),
    ListTransactions with and without state filters, EndTxn v3 (retry of the same commit
    succeeds; an abort after it is INVALID_TXN_STATE); read_committed then reads it."""
    raw_create(broker.port, topic, 2)
    tid = txn_id(topic)
    w = Wire(broker.port)
    try:
        err, node, host, port = kwire.find_coordinator(w.c, tid, key_type=1)
        assert (err, host, port) == (NONE, "127.0.0.1", broker.port), (err, node, host, port)
        started = int(time.time() * 1000)
        pid, epoch = w.init(tid, timeout_ms=45000)
        assert epoch == 0, "a new transactional id starts at epoch 0"
        d = w.describe(tid)
        assert (d.error, d.state, d.producer_id, d.producer_epoch, d.timeout_ms, d.partitions) \
            == (NONE, "Empty", pid, 0, 45000, frozenset()), d
        assert w.add_partitions(tid, pid, epoch, {topic: [0, 1]}) == \
            {(topic, 0): NONE, (topic, 1): NONE}
        assert w.produce(tid, topic, 0, [(b"k0", b"v0"), (b"k1", b"v1")], pid, epoch, 0) == \
            (NONE, 0)
        assert w.produce(tid, topic, 1, [(b"k2", b"v2")], pid, epoch, 0) == (NONE, 0)
        d = w.describe(tid)
        assert (d.state, d.partitions) == ("Ongoing", {(topic, 0), (topic, 1)}), d
        assert started - 1000 <= d.start_time_ms <= int(time.time() * 1000) + 1000, d
        err, unknown, listed = kwire.list_transactions(w.c)
        assert (err, unknown, listed) == (NONE, [], {tid: (pid, "Ongoing")})
        assert kwire.list_transactions(w.c, ["Ongoing"])[2] == {tid: (pid, "Ongoing")}
        assert kwire.list_transactions(w.c, ["CompleteCommit"])[2] == {}
        assert kwire.list_transactions(w.c, producer_ids=[pid + 1])[2] == {}
        err, unknown, _ = kwire.list_transactions(w.c, ["Ongoing", "NoSuchState"])
        assert (err, unknown) == (NONE, ["NoSuchState"])
        assert kwire.list_transactions(w.c, duration_ms=3_600_000, version=1)[2] == {}, \
            "nothing has been running for an hour"
        assert w.end(tid, pid, epoch, commit=True) == NONE
        d = w.wait_state(tid, "CompleteCommit")
        assert (d.producer_id, d.producer_epoch, d.partitions) == (pid, epoch, frozenset()), d
        assert kwire.list_transactions(w.c, ["CompleteCommit"])[2] == {tid: (pid, "CompleteCommit")}
        assert w.end(tid, pid, epoch, commit=True) == NONE, "a retried commit succeeds"
        assert w.end(tid, pid, epoch, commit=False) == INVALID_TXN_STATE, \
            "aborting a transaction that committed"
        unknown_id = kwire.describe_transactions(w.c, ["no-such-txn"])["no-such-txn"]
        assert unknown_id.error == TRANSACTIONAL_ID_NOT_FOUND, unknown_id
    finally:
        w.close()
    got = read_exactly("confluent", broker.bootstrap, topic, [0, 1], 3, True)
    assert sorted((r.partition, r.offset, r.key, r.value) for r in got) == \
        [(0, 0, b"k0", b"v0"), (0, 1, b"k1", b"v1"), (1, 0, b"k2", b"v2")]
    assert lso_and_hw(broker.bootstrap, topic, [0, 1]) == ({0: 3, 1: 2}, {0: 3, 1: 2})
    # The same through kafka-python's admin client.
    from kafka.admin import KafkaAdminClient
    admin = KafkaAdminClient(bootstrap_servers=broker.bootstrap)
    try:
        listed = admin.list_transactions()
        assert [(t.transactional_id, t.producer_id, str(t.state.value))
                for ts in listed.values() for t in ts] == [(tid, pid, "CompleteCommit")]
        desc = admin.describe_transactions([tid])[tid]
        assert (desc.producer_id, desc.producer_epoch, str(desc.state.value)) == \
            (pid, epoch, "CompleteCommit")
    finally:
        admin.close()


def test_describe_producers_shows_open_transactions(broker, topic):
    """DescribeProducers (KIP-664) through kafka-python's admin client, for a transaction
    made over the wire: while it is open the partition names its producer, epoch, last
    sequence and the transaction's first offset; after the commit no transaction is open and
    the marker's coordinator epoch is recorded; a partition never written lists no producer;
    an unknown partition is an error."""
    from kafka import TopicPartition
    from kafka.admin import KafkaAdminClient
    from kafka.errors import UnknownTopicOrPartitionError
    raw_create(broker.port, topic, 2)
    tid = txn_id(topic)
    w = Wire(broker.port)
    admin = KafkaAdminClient(bootstrap_servers=broker.bootstrap)
    p0, p1 = TopicPartition(topic, 0), TopicPartition(topic, 1)
    try:
        pid, epoch = w.init(tid, timeout_ms=60000)
        assert w.add_partitions(tid, pid, epoch, {topic: [0]}) == {(topic, 0): NONE}
        before = int(time.time() * 1000)
        assert w.produce(tid, topic, 0, [(b"k0", b"v0"), (b"k1", b"v1")], pid, epoch, 0) == \
            (NONE, 0)
        described = admin.describe_producers([p0, p1])
        (state,) = described[p0].active_producers
        assert (state.producer_id, state.producer_epoch, state.last_sequence,
                state.coordinator_epoch, state.current_transaction_start_offset) == \
            (pid, epoch, 1, -1, 0), state
        assert before - 1000 <= state.last_timestamp <= int(time.time() * 1000) + 1000, state
        assert described[p1].active_producers == []
        assert w.end(tid, pid, epoch, commit=True) == NONE
        (state,) = admin.describe_producers([p0])[p0].active_producers
        assert (state.producer_id, state.coordinator_epoch,
                state.current_transaction_start_offset) == (pid, 0, -1), state
        with pytest.raises(UnknownTopicOrPartitionError):
            admin.describe_producers([TopicPartition(topic, 7)], broker_id=0)
    finally:
        admin.close()
        w.close()


def test_coordinator_error_codes_over_the_wire(make_broker, topic):
    b = make_broker(env={"SLUICE_TRANSACTION_MAX_TIMEOUT_MS": "10000"})
    raw_create(b.port, topic, 2)
    tid = txn_id(topic)
    w = Wire(b.port)
    try:
        for timeout in (10001, 0):
            err, _pid, _ = w._retry(lambda: kwire.init_producer_id(w.c, tid, timeout),
                                    ok=lambda r: r[0] not in Wire.TRANSIENT)
            assert err == INVALID_TRANSACTION_TIMEOUT, (timeout, err)
        pid, e0 = w.init(tid, timeout_ms=10000)
        # Unknown transactional ids.
        assert w.end("no-such-txn", pid, e0, commit=True) == INVALID_PRODUCER_ID_MAPPING
        assert w.add_partitions("no-such-txn", pid, e0, {topic: [0]}) == \
            {(topic, 0): INVALID_PRODUCER_ID_MAPPING}
        # Another producer id for this transactional id.
        assert w.add_partitions(tid, pid + 1000, e0, {topic: [0]}) == \
            {(topic, 0): INVALID_PRODUCER_ID_MAPPING}
        # No transaction open yet.
        assert w.end(tid, pid, e0, commit=True) == INVALID_TXN_STATE
        assert w.end(tid, pid, e0, commit=False) == INVALID_TXN_STATE
        # A transactional record for a partition not in the transaction: refused, not stored.
        assert w.add_partitions(tid, pid, e0, {topic: [0]}) == {(topic, 0): NONE}
        err, _ = w.produce(tid, topic, 1, [(b"k", b"not-added")], pid, e0, 0)
        assert err == INVALID_TXN_STATE
        c = Conn(b.port)
        try:
            assert kwire.list_offsets_v2(c, topic, 1, -1, READ_UNCOMMITTED) == (NONE, 0)
        finally:
            c.close()
        assert w.produce(tid, topic, 0, [(b"k", b"v")], pid, e0, 0) == (NONE, 0)
        # A new InitProducerId fences epoch e0 (and aborts its transaction).
        _, e1 = w.init(tid, timeout_ms=10000)
        assert e1 > e0
        for version, code in ((3, PRODUCER_FENCED), (2, PRODUCER_FENCED),
                              (1, INVALID_PRODUCER_EPOCH), (0, INVALID_PRODUCER_EPOCH)):
            assert w.add_partitions(tid, pid, e0, {topic: [1]}, version) == {(topic, 1): code}, \
                f"AddPartitionsToTxn v{version} with a fenced epoch"
            assert w.add_offsets(tid, pid, e0, "g", version) == code, \
                f"AddOffsetsToTxn v{version} with a fenced epoch"
            assert w.end(tid, pid, e0, True, version) == code, \
                f"EndTxn v{version} with a fenced epoch"
        # The broker keeps serving: a full transaction under the new epoch commits.
        assert w.add_partitions(tid, pid, e1, {topic: [0, 1]}) == \
            {(topic, 0): NONE, (topic, 1): NONE}
        assert w.produce(tid, topic, 0, [(b"ok0", b"committed0")], pid, e1, 0)[0] == NONE
        assert w.produce(tid, topic, 1, [(b"ok1", b"committed1")], pid, e1, 0)[0] == NONE
        assert w.end(tid, pid, e1, commit=True) == NONE
        w.wait_state(tid, "CompleteCommit")
    finally:
        w.close()
    got = read_exactly("confluent", b.bootstrap, topic, [0, 1], 2, True)
    assert sorted((r.partition, r.value) for r in got) == [(0, b"committed0"), (1, b"committed1")]


def test_add_partitions_for_an_unknown_topic_fails_the_whole_request(broker, topic):
    """Kafka answers UNKNOWN_TOPIC_OR_PARTITION for the partitions of a missing topic and
    OPERATION_NOT_ATTEMPTED for the rest, and adds none of them."""
    raw_create(broker.port, topic, 1)
    tid = txn_id(topic)
    w = Wire(broker.port)
    try:
        pid, epoch = w.init(tid)
        missing = f"{topic}-missing"
        assert w.add_partitions(tid, pid, epoch, {topic: [0], missing: [0]}) == \
            {(topic, 0): OPERATION_NOT_ATTEMPTED, (missing, 0): UNKNOWN_TOPIC_OR_PARTITION}
        d = w.describe(tid)
        assert (d.state, d.partitions) == ("Empty", frozenset()), d
    finally:
        w.close()


def test_read_committed_fetch_reports_lso_and_aborted_transactions(broker, topic):
    """Fetch v4 at read_committed: data only below the LSO, the aborted transactions of
    the fetched range, control batches for the markers; ListOffsets v2 latest is the LSO
    at read_committed and the high watermark at read_uncommitted."""
    raw_create(broker.port, topic, 1)
    tid = txn_id(topic)
    w = Wire(broker.port)
    c = Conn(broker.port)
    try:
        pid, epoch = w.init(tid)
        seq = 0
        for commit in (True, False, None):  # committed 0-1 (marker 2), aborted 3-4 (5), open 6-7
            assert w.add_partitions(tid, pid, epoch, {topic: [0]}) == {(topic, 0): NONE}
            err, base = w.produce(tid, topic, 0, [(b"k", b"%d" % seq), (b"k", b"%d" % (seq + 1))],
                                  pid, epoch, seq)
            assert err == NONE and base == seq // 2 * 3, (err, base)
            seq += 2
            if commit is not None:
                assert w.end(tid, pid, epoch, commit) == NONE
                w.wait_state(tid, "CompleteCommit" if commit else "CompleteAbort")
        c.send(produce_v3(topic, 0, record_batch([(b"plain", b"p")])))
        assert produce_v3_result(c.recv_frame()) == (NONE, 8)

        rc = kwire.fetch_v4(c, topic, 0, 0, READ_COMMITTED)
        batches = kwire.parse_batches(rc.records)
        assert (rc.error, rc.high_watermark, rc.last_stable_offset) == (NONE, 9, 6), rc
        assert rc.aborted == [(pid, 3)], f"aborted transactions: {rc.aborted}"
        assert [(x.base_offset, x.last_offset, x.transactional, x.control, x.control_type)
                for x in batches] == [(0, 1, True, False, None), (2, 2, True, True, CONTROL_COMMIT),
                                      (3, 4, True, False, None), (5, 5, True, True, CONTROL_ABORT)]
        assert all(x.producer_id == pid for x in batches), batches
        ru = kwire.fetch_v4(c, topic, 0, 0, READ_UNCOMMITTED)
        assert (ru.high_watermark, ru.last_stable_offset) == (9, 6), ru
        assert [x.base_offset for x in kwire.parse_batches(ru.records)] == [0, 2, 3, 5, 6, 8]
        at_lso = kwire.fetch_v4(c, topic, 0, 6, READ_COMMITTED)
        assert (at_lso.error, kwire.parse_batches(at_lso.records)) == (NONE, []), at_lso
        assert kwire.list_offsets_v2(c, topic, 0, -1, READ_COMMITTED) == (NONE, 6)
        assert kwire.list_offsets_v2(c, topic, 0, -1, READ_UNCOMMITTED) == (NONE, 9)

        assert w.end(tid, pid, epoch, commit=True) == NONE
        w.wait_state(tid, "CompleteCommit")
        rc = kwire.fetch_v4(c, topic, 0, 6, READ_COMMITTED)
        assert (rc.high_watermark, rc.last_stable_offset) == (10, 10), rc
        assert not rc.aborted, rc.aborted
        assert [(x.base_offset, x.control_type) for x in kwire.parse_batches(rc.records)] == \
            [(6, None), (8, None), (9, CONTROL_COMMIT)]
        assert kwire.list_offsets_v2(c, topic, 0, -1, READ_COMMITTED) == (NONE, 10)
    finally:
        c.close()
        w.close()


@dataclass
class _Txn:
    producer: str
    first: int = -1
    data: list = field(default_factory=list)  # (offset, value)
    marker: int = -1
    commit: bool | None = None


def test_interleaved_transactions_of_several_producers(make_broker, topic):
    """Three transactional producers interleave batches in one partition (small segments),
    committing and aborting in a seeded random order, one left open at the end: after
    every EndTxn the LSO is the first offset of the oldest open transaction (or the high
    watermark); every client's read_committed consumer sees exactly the committed records
    below the LSO; a read_committed Fetch from every offset lists each aborted transaction
    whose records it returns and none that ended before the fetch offset (an aborted
    transaction listed after its marker would make clients drop later committed records);
    and the same holds after a kill -9 and restart."""
    import random
    rng = random.Random(447)
    b = make_broker(env=TXN_ENV)
    with BY_NAME["confluent"].admin(b.bootstrap) as a:
        a.create_topic(topic, 1, {"segment.bytes": "500"})
    w = Wire(b.port)
    c = Conn(b.port)
    names = ["A", "B", "C"]
    ids = {n: w.init(f"{topic}-{n}") for n in names}
    by_pid = {pid: n for n, (pid, _e) in ids.items()}
    seq = defaultdict(int)
    txns: list[_Txn] = []
    open_: dict[str, _Txn] = {}
    nxt = 0

    def lso_now() -> int:
        return min((t.first for t in open_.values()), default=nxt)

    def check_offsets(where: str):
        want = (NONE, lso_now())
        assert kwire.list_offsets_v2(c, topic, 0, -1, READ_COMMITTED) == want, where
        assert kwire.list_offsets_v2(c, topic, 0, -1, READ_UNCOMMITTED) == (NONE, nxt), where

    try:
        for step in range(70):
            n = rng.choice(names)
            pid, epoch = ids[n]
            t = open_.get(n)
            if t is not None and len(t.data) >= 2 and rng.random() < 0.35:
                commit = rng.random() < 0.5
                assert w.end(f"{topic}-{n}", pid, epoch, commit) == NONE
                t.marker, t.commit = nxt, commit
                nxt += 1
                del open_[n]
                check_offsets(f"step {step}: {n} {'commit' if commit else 'abort'}")
                continue
            if t is None:
                assert w.add_partitions(f"{topic}-{n}", pid, epoch, {topic: [0]}) == \
                    {(topic, 0): NONE}
                t = open_[n] = _Txn(n)
                txns.append(t)
            values = [b"%s%d-%d-%d" % (n.encode(), len(txns), step, i)
                      for i in range(rng.randint(1, 3))]
            err, base = w.produce(f"{topic}-{n}", topic, 0, [(b"k", v) for v in values], pid,
                                  epoch, seq[n])
            assert (err, base) == (NONE, nxt), f"step {step}: {n} produce"
            seq[n] += len(values)
            if t.first < 0:
                t.first = nxt
            t.data += [(nxt + i, v) for i, v in enumerate(values)]
            nxt += len(values)
        # End all but the oldest open transaction, which holds the LSO mid-log.
        holder = min(open_.values(), key=lambda t: t.first) if open_ else None
        for t in sorted(open_.values(), key=lambda t: t.first):
            if t is not holder:
                pid, epoch = ids[t.producer]
                assert w.end(f"{topic}-{t.producer}", pid, epoch, True) == NONE
                t.marker, t.commit = nxt, True
                nxt += 1
                del open_[t.producer]
        check_offsets("at the end")
    finally:
        w.close()
        c.close()
    aborted = [t for t in txns if t.commit is False]
    assert holder is not None and aborted and any(t.commit for t in txns), \
        "the seeded schedule should leave an open transaction and have commits and aborts"
    assert len(list(b.data_dir.glob(f"{topic}-0/*.log"))) > 3, "expected several segments"
    lso = holder.first

    def committed_below(limit: int) -> list[tuple[int, bytes]]:
        return sorted((o, v) for t in txns if t.commit for o, v in t.data if o < limit)

    def check_reads(where: str, limit: int):
        want = committed_below(limit)
        for reader in CLIENT_NAMES:
            got = read_exactly(reader, b.bootstrap, topic, [0], len(want), True, extra_wait=0.5)
            assert [(r.offset, r.value) for r in got] == want, f"{where}: {reader} read_committed"
        conn = Conn(b.port)
        try:
            for start in range(limit):
                f = kwire.fetch_v4(conn, topic, 0, start, READ_COMMITTED)
                batches = [x for x in kwire.parse_batches(f.records) if x.last_offset >= start]
                listed = {(pid, first) for pid, first in (f.aborted or [])}
                returned = {(x.producer_id, x.base_offset) for x in batches if not x.control}
                needed = {(ids[t.producer][0], t.first) for t in aborted
                          if any((ids[t.producer][0], o) in returned for o, _v in t.data)}
                stale = {(ids[t.producer][0], t.first) for t in aborted if t.marker < start}
                assert needed <= listed, \
                    f"{where}: fetch from {start} lacks aborted transactions {needed - listed}"
                assert not listed & stale, \
                    f"{where}: fetch from {start} lists aborted transactions that ended " \
                    f"before it: {sorted(listed & stale)} (of {sorted(listed)})"
                assert all(x.last_offset < f.last_stable_offset for x in batches), \
                    f"{where}: fetch from {start} returned data at or past the LSO"
        finally:
            conn.close()

    check_reads("before the restart", lso)
    b.stop(signal.SIGKILL)
    b = make_broker(env=TXN_ENV, data_dir=b.data_dir, port=b.port)
    check_reads("after kill -9", lso)
    w = Wire(b.port)
    try:
        pid, epoch = ids[holder.producer]
        assert w.end(f"{topic}-{holder.producer}", pid, epoch, True) == NONE
        holder.commit = True
    finally:
        w.close()
    check_reads("after the last commit", nxt + 1)


def test_idle_transactional_ids_expire(make_broker, topic):
    """transactional.id.expiration.ms: an id with no open transaction is forgotten (a
    tombstone in __transaction_state, so also after a restart); its next InitProducerId
    starts over at epoch 0, and the old producer is refused. An id with an open
    transaction does not expire."""
    env = {**TXN_ENV, "SLUICE_TRANSACTIONAL_ID_EXPIRATION_MS": "1000"}
    b = make_broker(env=env)
    raw_create(b.port, topic, 1)
    idle, busy = txn_id(topic, 1), txn_id(topic, 2)
    w = Wire(b.port)
    try:
        pid, epoch = w.init(idle)
        assert w.add_partitions(idle, pid, epoch, {topic: [0]}) == {(topic, 0): NONE}
        assert w.end(idle, pid, epoch, commit=True) == NONE
        busy_pid, busy_epoch = w.init(busy, timeout_ms=300000)
        assert w.add_partitions(busy, busy_pid, busy_epoch, {topic: [0]}) == {(topic, 0): NONE}
        wait_for(lambda: w.describe(idle).error == TRANSACTIONAL_ID_NOT_FOUND,
                 f"{idle} expires", 30)
        assert w.describe(busy).state == "Ongoing", "an open transaction does not expire"
        assert set(kwire.list_transactions(w.c)[2]) == {busy}
        assert w.end(idle, pid, epoch, commit=True) == INVALID_PRODUCER_ID_MAPPING
    finally:
        w.close()
    b.stop()
    b = make_broker(env=env, data_dir=b.data_dir, port=b.port)
    w = Wire(b.port)
    try:
        assert w.describe(idle).error == TRANSACTIONAL_ID_NOT_FOUND, "expired after a restart"
        assert w.describe(busy).state == "Ongoing"
        _pid, again = w.init(idle)
        assert again == 0, "an expired transactional id starts over"
    finally:
        w.close()


def test_commit_after_a_topic_of_the_transaction_was_deleted(broker, topic):
    """A topic of an open transaction is deleted; the transaction still commits, its other
    topic's records become visible and nothing is left holding an LSO."""
    gone, kept = f"{topic}-gone", f"{topic}-kept"
    create_topic(broker.bootstrap, gone, 1)
    create_topic(broker.bootstrap, kept, 1)
    records = msgs("kept", [0], 2)
    with txn_producer("confluent", broker.bootstrap, txn_id(topic)) as p:
        p.begin()
        p.send(gone, msgs("gone", [0], 2))
        p.send(kept, records)
        with BY_NAME["confluent"].admin(broker.bootstrap) as a:
            a.delete_topic(gone)
        p.commit()
        d = wire_describe(broker.port, txn_id(topic))
        assert d.state == "CompleteCommit", d
        p.begin()
        p.send(kept, msgs("again", [0], 1, start_ts=10))
        p.commit()
    got = read_exactly("confluent", broker.bootstrap, kept, [0], 3, True)
    assert [(r.offset, r.value) for r in got][:2] == [(0, records[0].value), (1, records[1].value)]
    assert lso_and_hw(broker.bootstrap, kept, [0]) == ({0: 5}, {0: 5})


# ----------------------------------------------------------------------------------------
# 9. restarts
# ----------------------------------------------------------------------------------------

def test_commit_acknowledged_just_before_kill9_completes_after_restart(make_broker, topic):
    """EndTxn(commit) is acknowledged and the broker is SIGKILLed at once, before it may
    have written every marker (Kafka writes them after answering, from PrepareCommit).
    After the restart the transaction completes: every partition's records and the
    transaction's group offsets are visible, and the LSO equals the high watermark."""
    partitions = list(range(8))
    b = make_broker(env=TXN_ENV)
    raw_create(b.port, topic, len(partitions))
    raw_create(b.port, f"{topic}-in", 1)
    tid, group = txn_id(topic), f"{topic}-group"
    w = Wire(b.port)
    try:
        pid, epoch = w.init(tid)
        assert w.add_partitions(tid, pid, epoch, {topic: partitions}) == \
            {(topic, p): NONE for p in partitions}
        for p in partitions:
            assert w.produce(tid, topic, p, [(b"k%d" % p, b"v%d" % p)], pid, epoch, 0) == (NONE, 0)
        assert w.add_offsets(tid, pid, epoch, group) == NONE
        assert kwire.txn_offset_commit(w.c, tid, group, pid, epoch, {(f"{topic}-in", 0): 42}) == \
            {(f"{topic}-in", 0): NONE}
        assert kwire.end_txn(w.c, tid, pid, epoch, True) == NONE
    finally:
        w.close()
    b.stop(signal.SIGKILL)
    b = make_broker(env=TXN_ENV, data_dir=b.data_dir, port=b.port)
    w = Wire(b.port)
    try:
        d = w.wait_state(tid, "CompleteCommit")
        assert (d.producer_id, d.producer_epoch) == (pid, epoch), d
    finally:
        w.close()
    hw = {p: 2 for p in partitions}  # the record and its commit marker
    wait_for(lambda: lso_and_hw(b.bootstrap, topic, partitions) == (hw, hw),
             "every partition has its commit marker")
    got = read_exactly("confluent", b.bootstrap, topic, partitions, len(partitions), True)
    assert sorted((r.partition, r.offset, r.value) for r in got) == \
        [(p, 0, b"v%d" % p) for p in partitions]
    wait_for(lambda: committed_offsets(b.port, group, f"{topic}-in", [0], True) == {0: (42, NONE)},
             "the transaction's offset is committed")


# ----------------------------------------------------------------------------------------
# ----------------------------------------------------------------------------------------

@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGKILL], ids=["sigterm", "sigkill"])
def test_pending_transactional_offsets_survive_a_restart(make_broker, topic, sig):
    """Offsets sent to two open transactions (two groups), then a restart: both are still
    pending (require_stable: UNSTABLE_OFFSET_COMMIT; plain fetch: the old offsets); the
    one whose producer commits after the restart becomes the group's offset, the one whose
    transaction is fenced by a new producer is dropped."""
    b = make_broker(env=TXN_ENV)
    raw_create(b.port, topic, 1)
    tp = (topic, 0)
    w = Wire(b.port)
    txns = {}
    try:
        for name, offset in (("commits", 11), ("fenced", 22)):
            tid, group = txn_id(topic, offset), f"{topic}-{name}"
            pid, epoch = w.init(tid)
            assert w.add_offsets(tid, pid, epoch, group) == NONE
            assert kwire.txn_offset_commit(w.c, tid, group, pid, epoch, {tp: offset}) == {tp: NONE}
            txns[name] = (tid, group, pid, epoch, offset)
    finally:
        w.close()
    for _tid, group, *_ in txns.values():
        assert committed_offsets(b.port, group, topic, [0], True) == \
            {0: (-1, UNSTABLE_OFFSET_COMMIT)}
    b.stop(sig)
    b = make_broker(env=TXN_ENV, data_dir=b.data_dir, port=b.port)
    for _tid, group, *_ in txns.values():
        assert committed_offsets(b.port, group, topic, [0], True) == \
            {0: (-1, UNSTABLE_OFFSET_COMMIT)}, f"{group}: still pending after the restart"
        assert committed_offsets(b.port, group, topic, [0], False) == {0: (-1, NONE)}
    w = Wire(b.port)
    try:
        tid, group, pid, epoch, offset = txns["commits"]
        assert w.end(tid, pid, epoch, commit=True) == NONE
        tid, group_f, _pid, _epoch, _offset = txns["fenced"]
        w.init(tid)  # a new producer fences the old one, aborting its transaction
    finally:
        w.close()
    wait_for(lambda: committed_offsets(b.port, group, topic, [0], True) == {0: (offset, NONE)},
             "the offset of the transaction committed after the restart is the group's")
    wait_for(lambda: committed_offsets(b.port, group_f, topic, [0], True) == {0: (-1, NONE)},
             "the offset of the fenced transaction is dropped")


@pytest.mark.parametrize("sig,resolution", [(signal.SIGTERM, "fence"), (signal.SIGKILL, "fence"),
                                            (signal.SIGKILL, "timeout")],
                         ids=["sigterm-fence", "sigkill-fence", "sigkill-timeout"])
def test_transactions_across_a_restart(make_broker, topic, sig, resolution):
    """Committed and aborted transactions over several small segments, and one left open,
    then a restart: read_committed sees exactly the committed records (also when it starts
    inside an aborted transaction), and the open transaction is still open (Ongoing, LSO
    held) until a new producer with its transactional.id fences it, or its timeout aborts
    it; the old producer's commit then fails and its records are never visible."""
    b = make_broker(env=TXN_ENV)
    with BY_NAME["confluent"].admin(b.bootstrap) as a:
        a.create_topic(topic, 2, {"segment.bytes": "600"})  # a roll every few transactions
    tid = txn_id(topic)
    timeout_ms = 60000 if resolution == "fence" else 10000
    rounds = [msgs(f"r{i}", [0, 1], 2, start_ts=10 * i) for i in range(8)]
    commits = [i % 2 == 0 for i in range(len(rounds))]  # r1, r3, ... are aborted
    pending = msgs("pending", [0, 1], 2, start_ts=100)
    later = msgs("later", [0, 1], 1, start_ts=200)
    *offs_rounds, offs_pending, offs_later = layout(rounds + [pending, later])[0]
    committed = [m for r, c in zip(rounds, commits) if c for m in r]
    offs_committed = [o for offs, c in zip(offs_rounds, commits) if c for o in offs]
    aborted = [m for r, c in zip(rounds, commits) if not c for m in r]
    offs_aborted = [o for offs, c in zip(offs_rounds, commits) if not c for o in offs]
    lso = {p: min(o for m, o in zip(pending, offs_pending) if m.partition == p) for p in (0, 1)}
    hw = {p: lso[p] + 2 for p in (0, 1)}
    old = open_txn_producer("confluent", b.bootstrap, tid, timeout_ms=timeout_ms)
    try:
        for records, commit in zip(rounds, commits):
            old.begin()
            old.send(topic, records)
            old.commit() if commit else old.abort()
        old.begin()
        opened = time.time()
        assert [d.offset for d in old.send(topic, pending)] == offs_pending
        before = wire_describe(b.port, tid)
        assert (before.state, before.partitions) == ("Ongoing", {(topic, 0), (topic, 1)})
        assert len(list(b.data_dir.glob(f"{topic}-0/*.log"))) > 2, "expected several segments"
        code = b.stop(sig)
        assert code == (0 if sig == signal.SIGTERM else -signal.SIGKILL), code
        b = make_broker(env=TXN_ENV, data_dir=b.data_dir, port=b.port)

        got = read_exactly("confluent", b.bootstrap, topic, [0, 1], len(committed), True)
        assert seen(got) == expected(committed, offs_committed), "committed before the restart"
        inside = offs_rounds[3][0]  # r3 (aborted) starts here in partition 0
        with consumer("kafka-python", b.bootstrap, committed=True) as c:
            c.assign(topic, {0: inside})
            got = c.read(1)[:1]
        assert seen(got) == {0: [expected(rounds[4], offs_rounds[4])[0][0]]}, \
            "read_committed from inside an aborted transaction, after the restart"
        if resolution == "fence" or time.time() - opened < timeout_ms / 1000 - 3:
            assert lso_and_hw(b.bootstrap, topic, [0, 1]) == (lso, hw), \
                "the open transaction holds the LSO after the restart"
            after = wire_describe(b.port, tid)
            assert (after.state, after.producer_id, after.producer_epoch, after.partitions,
                    after.timeout_ms) == ("Ongoing", before.producer_id, before.producer_epoch,
                                          before.partitions, timeout_ms), after
        if resolution == "timeout":
            aborted_end = {p: hw[p] + 1 for p in (0, 1)}  # its abort marker
            wait_for(lambda: lso_and_hw(b.bootstrap, topic, [0, 1]) == (aborted_end,) * 2,
                     "the broker aborts the timed-out transaction", timeout=60)
        # (with "fence", the new producer's InitProducerId aborts it)
        with txn_producer("confluent", b.bootstrap, tid) as new:
            new.begin()
            assert [d.offset for d in new.send(topic, later)] == offs_later
            new.commit()
        with pytest.raises(TxnFailure) as failure:
            old.commit()
        assert failure.value.fatal and is_fenced(failure.value), failure.value
    finally:
        old.close()
    got = read_exactly("confluent", b.bootstrap, topic, [0, 1], len(committed) + len(later), True)
    assert seen(got) == expected(committed + later, offs_committed + offs_later)
    everything = committed + aborted + pending + later
    got = read_exactly("aiokafka", b.bootstrap, topic, [0, 1], len(everything), False,
                       extra_wait=0.3)
    assert seen(got) == expected(everything,
                                 offs_committed + offs_aborted + offs_pending + offs_later)


# ----------------------------------------------------------------------------------------
# compaction
# ----------------------------------------------------------------------------------------

def plain_log(b) -> str:
    return re.sub(r"\x1b\[[0-9;]*m", "", b.log())  # the broker colours its log lines


def read_to_end(bootstrap: str, topic: str, partition: int, committed: bool) -> list[Rec]:
    """Every record from offset 0 up to the end (the LSO at read_committed, the high
    watermark at read_uncommitted), with librdkafka's end-of-partition event as the stop."""
    from confluent_kafka import Consumer, KafkaError, TopicPartition
    c = Consumer({"bootstrap.servers": bootstrap, "group.id": "sluice-e2e-unused",
                  "enable.auto.commit": False, "enable.partition.eof": True,
                  "isolation.level": "read_committed" if committed else "read_uncommitted",
                  "fetch.wait.max.ms": 100})
    out: list[Rec] = []
    try:
        c.assign([TopicPartition(topic, partition, 0)])
        deadline = time.time() + 30
        while time.time() < deadline:
            m = c.poll(0.2)
            if m is None:
                continue
            if m.error():
                if m.error().code() == KafkaError._PARTITION_EOF:
                    return out
                raise AssertionError(f"reading {topic}-{partition}: {m.error()}")
            out.append(Rec(m.partition(), m.offset(), m.key(), m.value(),
                           tuple(m.headers() or ()), m.timestamp()[1], CREATE_TIME))
    finally:
        c.close()
    raise AssertionError(f"no end of {topic}-{partition} within 30s ({len(out)} records read)")


def test_compaction_drops_aborted_records_and_keeps_open_transactions(make_broker, topic):
    """A compacted topic written by transactions, some aborted, the last one open: once the
    cleaner has run, read_committed still sees only committed values and the newest
    committed value of every key, the open transaction's records are untouched (cleaning
    stops at the LSO), read_uncommitted no longer sees the aborted records it cleaned, and
    all of that holds again after a restart and after the open transaction commits."""
    b = make_broker(env={**TXN_ENV, "SLUICE_LOG_CLEANER_BACKOFF_MS": "100"})
    with BY_NAME["confluent"].admin(b.bootstrap) as a:
        a.create_topic(topic, 1, {"cleanup.policy": "compact", "segment.bytes": "1024",
                                  "min.cleanable.dirty.ratio": "0.01",
                                  "min.compaction.lag.ms": "0"})
    keys = [b"k%d" % i for i in range(4)]

    def round_msgs(tag: str, ks) -> list[Msg]:
        return [Msg(k, (tag.encode() + b":" + k).ljust(120, b"."), (("round", tag.encode()),),
                    BASE_TS + i, 0) for i, k in enumerate(ks)]

    rounds = [(f"r{i}", i % 3 != 1) for i in range(12)]  # r1, r4, r7, r10 aborted
    written = 0
    tid = txn_id(topic)
    p = open_txn_producer("confluent", b.bootstrap, tid)
    try:
        for tag, commit in rounds:
            p.begin()
            p.send(topic, round_msgs(tag, keys))
            p.commit() if commit else p.abort()
            written += len(keys)
        p.begin()
        open_offsets = [d.offset for d in p.send(topic, round_msgs("open", keys[:2]))]
        wait_for(lambda: f"compacted partition={topic}-0" in plain_log(b), "the cleaner ran", 30)

        aborted_tags = {tag.encode() for tag, commit in rounds if not commit}

        def check(where: str, open_visible: bool):
            rc = read_to_end(b.bootstrap, topic, 0, committed=True)
            tags = [dict(r.headers)["round"] for r in rc]
            assert not aborted_tags & set(tags), f"{where}: aborted records read_committed: {tags}"
            newest = {r.key: r.value.split(b":")[0] for r in rc}
            want = b"open" if open_visible else b"r11"
            assert newest == {k: (want if k in keys[:2] else b"r11") for k in keys}, \
                f"{where}: newest values {newest}"
            assert [r.offset for r in rc] == sorted(r.offset for r in rc)
            ru = read_to_end(b.bootstrap, topic, 0, committed=False)
            assert [r.offset for r in ru][-2:] == open_offsets, \
                f"{where}: the open transaction's records are kept"
            return rc, ru

        _rc, ru = check("after compaction", open_visible=False)
        assert len(ru) < written + 2, "the cleaner removed records"
        assert lso_and_hw(b.bootstrap, topic, [0])[0] == {0: open_offsets[0]}
        b.stop()
        b = make_broker(env={**TXN_ENV, "SLUICE_LOG_CLEANER_BACKOFF_MS": "100"},
                        data_dir=b.data_dir, port=b.port)
        check("after a restart", open_visible=False)
        p.commit()
        check("after the commit", open_visible=True)
    finally:
        p.close()


def disk_batches(partition_dir: Path):
    """The batches on disk, or None while the cleaner is swapping a file under the reader."""
    from logfiles import batches
    try:
        return batches(partition_dir)
    except FileNotFoundError:
        return None


def test_compaction_drops_markers_of_transactions_with_nothing_left(make_broker, topic):
    """As Kafka's cleaner does, a marker goes once none of its transaction's records is left
    and delete.retention.ms has passed. A compacted topic with delete.retention.ms=0:
    confluent-kafka commits and aborts transactions over four keys, then kafka-python
    overwrites every key without one. Once the cleaner has run, no marker and no
    transactional batch is left on disk; read_committed (confluent) and read_uncommitted
    (kafka-python) read the same records, with keys, values, headers and timestamps; the LSO
    equals the high watermark, also after a restart, and a new transaction commits and is
    read after them."""
    env = {**TXN_ENV, "SLUICE_LOG_CLEANER_BACKOFF_MS": "100"}
    b = make_broker(env=env)
    with BY_NAME["confluent"].admin(b.bootstrap) as a:
        a.create_topic(topic, 1, {"cleanup.policy": "compact", "segment.bytes": "1024",
                                  "min.cleanable.dirty.ratio": "0.01",
                                  "min.compaction.lag.ms": "0", "delete.retention.ms": "0"})
    keys = [b"k%d" % i for i in range(4)]

    def round_msgs(tag: str, ks, ts: int) -> list[Msg]:
        return [Msg(k, (tag.encode() + b":" + k).ljust(120, b"."), (("round", tag.encode()),),
                    ts + i, 0) for i, k in enumerate(ks)]

    tid = txn_id(topic)
    with txn_producer("confluent", b.bootstrap, tid) as p:
        for i in range(6):
            p.begin()
            p.send(topic, round_msgs(f"t{i}", keys, BASE_TS + 10 * i))
            p.commit() if i % 2 == 0 else p.abort()
    plain = round_msgs("plain", keys, BASE_TS + 100)
    fillers = [Msg(b"f%d" % i, b"filler".ljust(200, b"."), (), BASE_TS + 200 + i, 0)
               for i in range(12)]
    with BY_NAME["kafka-python"].producer(b.bootstrap, linger_ms=0) as kp:
        assert all(isinstance(d, Delivered) for d in kp.send(topic, plain))
        for m in fillers:  # one batch each: the ones above end up in sealed segments
            assert all(isinstance(d, Delivered) for d in kp.send(topic, [m]))
    partition_dir = b.data_dir / f"{topic}-0"
    on_disk = wait_for(
        lambda: (lambda bs: bs if bs is not None and not any(
            h.control or h.transactional for h in bs) else None)(disk_batches(partition_dir)),
        "the cleaner dropped the transactions' records and markers", 30)
    assert on_disk, "the plain records are still on disk"

    want = [(m.key, m.value, m.headers, m.timestamp) for m in plain + fillers]

    def check(where: str):
        rc = read_to_end(b.bootstrap, topic, 0, committed=True)
        assert [(r.key, r.value, r.headers, r.timestamp) for r in rc] == want, where
        offsets = [r.offset for r in rc]
        assert offsets == sorted(offsets) and len(set(offsets)) == len(offsets), where
        with BY_NAME["kafka-python"].consumer(b.bootstrap) as c:
            c.assign(topic, {0: 0})
            ru = c.read(len(want))
        assert [(r.offset, r.key, r.value, r.headers, r.timestamp) for r in ru] == \
            [(r.offset, r.key, r.value, r.headers, r.timestamp) for r in rc], where
        lso, hw = lso_and_hw(b.bootstrap, topic, [0])
        assert lso == hw == {0: offsets[-1] + 1}, f"{where}: LSO {lso}, HW {hw}"
        return offsets

    offsets = check("after compaction")
    b.stop()
    b = make_broker(env=env, data_dir=b.data_dir, port=b.port)
    assert check("after a restart") == offsets
    with txn_producer("confluent", b.bootstrap, tid) as p:
        p.begin()
        delivered = p.send(topic, round_msgs("after", keys[:1], BASE_TS + 300))
        p.commit()
    rc = read_to_end(b.bootstrap, topic, 0, committed=True)
    assert [(r.offset, r.value.split(b":")[0]) for r in rc][-1] == (delivered[0].offset, b"after")
