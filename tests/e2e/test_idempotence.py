"""Idempotent producers (KIP-98): InitProducerId hands out producer ids, a retried batch is
acknowledged with its original offset and stored once, a sequence gap and a stale epoch are
refused with nothing appended, and real idempotent producers (librdkafka, kafka-python 3)
deliver every record exactly once, in order."""

import struct

import pytest
from kafka.protocol.producer.transaction import InitProducerIdRequest

from clients import BY_NAME, Msg, consume, produce_ok
from kgroup import Raw
from kwire import (Conn, create_topics_v2, create_topics_v2_result, produce_v3,
                   produce_v3_result, record_batch)

NONE = 0
OUT_OF_ORDER_SEQUENCE_NUMBER = 45
INVALID_PRODUCER_EPOCH = 47


def init_producer_id(port: int, version: int, transactional_id: str | None = None,
                     producer_id: int = -1, producer_epoch: int = -1) -> tuple[int, int, int]:
    """(error code, producer id, epoch) of one InitProducerId."""
    raw = Raw(port)
    try:
        fields = {"transactional_id": transactional_id, "transaction_timeout_ms": 60000}
        if version >= 3:
            fields |= {"producer_id": producer_id, "producer_epoch": producer_epoch}
        r = raw.call(InitProducerIdRequest, version, **fields)
        return r.error_code, r.producer_id, r.producer_epoch
    finally:
        raw.close()


def read_all(port: int, topic: str) -> list[tuple[int, bytes, bytes]]:
    """(offset, key, value) of every record of partition 0, read with a real consumer."""
    recs = consume(BY_NAME["confluent"], f"127.0.0.1:{port}", topic, {0: 0}, count=1000,
                   timeout=3)
    return [(r.offset, r.key, r.value) for r in recs]


def test_init_producer_id_at_every_version(broker):
    ids = set()
    for version in range(0, 6):
        error, pid, epoch = init_producer_id(broker.port, version)
        assert (error, epoch) == (NONE, 0), version
        assert pid >= 0 and pid not in ids
        ids.add(pid)
    # KIP-360: the same producer asks for the next epoch.
    assert init_producer_id(broker.port, 4, producer_id=pid, producer_epoch=0) == (NONE, pid, 1)
    # A transactional id gets its own producer id; initialising it again bumps the epoch.
    error, tx_pid, epoch = init_producer_id(broker.port, 4, transactional_id="tx")
    assert (error, epoch) == (NONE, 0) and tx_pid not in ids
    assert init_producer_id(broker.port, 1, transactional_id="tx") == (NONE, tx_pid, 1)


def test_producer_ids_are_not_reused_after_a_restart(make_broker):
    b = make_broker()
    first = {init_producer_id(b.port, 1)[1] for _ in range(3)}
    assert b.stop() == 0
    b = make_broker(data_dir=b.data_dir)
    again = {init_producer_id(b.port, 1)[1] for _ in range(3)}
    assert not first & again, (first, again)


def test_retries_gaps_and_stale_epochs_over_the_wire(broker, topic):
    c = Conn(broker.port)
    c.send(create_topics_v2(topic, 1))
    assert create_topics_v2_result(c.recv_frame())[0] == NONE
    error, pid, epoch = init_producer_id(broker.port, 3)
    assert error == NONE

    def produce(records, seq, ep=epoch):
        c.send(produce_v3(topic, 0, record_batch(records, producer_id=pid, producer_epoch=ep,
                                                   base_sequence=seq)))
        return produce_v3_result(c.recv_frame())

    first = [(b"k0", b"v0"), (b"k1", b"v1")]
    assert produce(first, 0) == (NONE, 0)
    # The identical batch again: acknowledged with the same offset, not stored again.
    assert produce(first, 0) == (NONE, 0)
    assert produce([(b"k2", b"v2")], 2) == (NONE, 2)
    assert produce(first, 0) == (NONE, 0)
    # A gap in the sequence: refused, nothing appended.
    assert produce([(b"gap", b"x")], 7)[0] == OUT_OF_ORDER_SEQUENCE_NUMBER
    # The producer bumps its epoch (KIP-360) and starts again at 0; the old epoch is fenced.
    assert init_producer_id(broker.port, 4, producer_id=pid, producer_epoch=epoch) == \
        (NONE, pid, epoch + 1)
    assert produce([(b"k3", b"v3")], 0, ep=epoch + 1) == (NONE, 3)
    assert produce([(b"stale", b"x")], 3, ep=epoch)[0] == INVALID_PRODUCER_EPOCH
    # Batches without a producer id are not affected.
    c.send(produce_v3(topic, 0, record_batch([(b"plain", b"p")])))
    assert produce_v3_result(c.recv_frame()) == (NONE, 4)
    c.close()
    assert read_all(broker.port, topic) == [
        (0, b"k0", b"v0"), (1, b"k1", b"v1"), (2, b"k2", b"v2"), (3, b"k3", b"v3"),
        (4, b"plain", b"p")]


@pytest.mark.parametrize("name", ["confluent", "kafka-python"])
def test_idempotent_producers_deliver_exactly_once_in_order(broker, topic, name):
    client = BY_NAME[name]
    with client.admin(broker.bootstrap) as admin:
        admin.create_topic(topic, 2)
    msgs = [Msg(f"key-{i % 5}".encode(), f"value-{i}".encode(), partition=i % 2)
            for i in range(300)]
    delivered = produce_ok(client, broker.bootstrap, topic, msgs, idempotent=True, linger_ms=5)
    for p in (0, 1):
        sent = [m for m in msgs if m.partition == p]
        offsets = [d.offset for d, m in zip(delivered, msgs) if m.partition == p]
        assert offsets == list(range(len(sent)))
        got = consume(client, broker.bootstrap, topic, {p: 0}, count=len(sent))
        assert [(r.offset, r.key, r.value) for r in got] == \
            [(i, m.key, m.value) for i, m in enumerate(sent)]
    # The producers really were idempotent: every stored batch carries a producer id and
    # consecutive sequences.
    for p in (0, 1):
        headers = producer_fields(broker.data_dir / f"{topic}-{p}")
        assert headers and all(pid >= 0 for pid, _, _, _ in headers), headers[:3]
        expected = 0
        for _pid, _epoch, seq, count in headers:
            assert seq == expected, headers
            expected += count
        assert expected == len([m for m in msgs if m.partition == p])


def producer_fields(partition_dir) -> list[tuple[int, int, int, int]]:
    """(producer id, epoch, base sequence, record count) of every batch on disk."""
    out = []
    for log in sorted(partition_dir.glob("*.log")):
        data = log.read_bytes()
        pos = 0
        while pos + 61 <= len(data):
            (length,) = struct.unpack_from(">i", data, pos + 8)
            if length == 0:
                break  # zeros written ahead of the active segment's data
            out.append(struct.unpack_from(">qhii", data, pos + 43))
            pos += 12 + length
    return out
