"""Fetch as consumers drive it: following a live producer over several partitions (long
polls and incremental fetch sessions), starting inside a compressed batch, and batches
larger than the consumer's fetch limits."""

from collections import defaultdict

from clients import Delivered, Msg, consume, produce_ok
from logfiles import batches

# Per-client settings for a consumer whose fetch limits are far below one record batch.
TINY_FETCH = {
    "confluent": {"fetch.max.bytes": 1024, "max.partition.fetch.bytes": 1024,
                  "message.max.bytes": 1024},  # librdkafka: fetch.max.bytes >= message.max.bytes
    "kafka-python": {"fetch_max_bytes": 1024, "max_partition_fetch_bytes": 1024},
    "aiokafka": {"fetch_max_bytes": 1024, "max_partition_fetch_bytes": 1024},
}


def test_consumer_follows_a_live_producer_over_partitions(broker, client, topic):
    with client.admin(broker.bootstrap) as admin:
        admin.create_topic(topic, 3)
    sent: dict[int, list] = defaultdict(list)
    got: dict[int, list] = defaultdict(list)
    with client.consumer(broker.bootstrap) as c, \
            client.producer(broker.bootstrap, linger_ms=0) as p:
        c.assign(topic, {0: 0, 1: 0, 2: 0})
        assert c.read(1, timeout=1.0) == []  # nothing yet: the fetch waits and returns empty
        # Rounds that touch different partitions, so a fetch session sees partitions go
        # from idle to busy and back.
        for rnd, parts in enumerate([(0,), (1, 2), (2,), (0, 1, 2), (1,)]):
            msgs = [Msg(b"k", b"round%d-%d" % (rnd, i), partition=parts[i % len(parts)])
                    for i in range(12)]
            for m, d in zip(msgs, p.send(topic, msgs)):
                assert isinstance(d, Delivered), d
                sent[d.partition].append((d.offset, m.value))
            for r in c.read(len(msgs)):
                got[r.partition].append((r.offset, r.value))
    assert dict(got) == dict(sent)


def test_fetch_from_inside_a_compressed_batch(broker, client, topic):
    """A fetch from an offset in the middle of a compressed batch gets the whole batch and
    the client drops the records before its offset. How the client batches the 100 records
    depends on timing, so the start is taken inside the largest batch on disk."""
    msgs = [Msg(b"k", b"record %03d " % i + b"z" * 50, partition=0) for i in range(100)]
    produce_ok(client, broker.bootstrap, topic, msgs, compression="gzip", linger_ms=100)
    on_disk = batches(broker.data_dir / f"{topic}-0")
    largest = max(on_disk, key=lambda b: b.last_offset_delta)
    assert largest.codec == 1 and largest.last_offset_delta >= 4, on_disk  # gzip, 5+ records
    start = largest.base_offset + largest.last_offset_delta // 2
    records = consume(client, broker.bootstrap, topic, {0: start}, 100 - start)
    assert [(r.offset, r.value) for r in records] == [
        (i, msgs[i].value) for i in range(start, 100)]


def test_batches_larger_than_the_fetch_limits_still_arrive(broker, client, topic):
    msgs = [Msg(b"k", bytes([65 + i]) * 20_000, partition=0) for i in range(5)]
    with client.producer(broker.bootstrap, linger_ms=0) as p:
        for m in msgs:  # one batch each, every one 20x the consumer's limits
            (d,) = p.send(topic, [m])
            assert isinstance(d, Delivered), d
    with client.consumer(broker.bootstrap, **TINY_FETCH[client.name]) as c:
        c.assign(topic, {0: 0})
        records = c.read(5)
    assert [(r.offset, r.value) for r in records] == [(i, m.value) for i, m in enumerate(msgs)]


def test_changing_the_assignment_mid_stream(broker, client, topic):
    """Dropping and adding partitions between fetches (an incremental fetch session's
    forgotten and added partitions): only the assigned partitions' records arrive."""
    with client.admin(broker.bootstrap) as admin:
        admin.create_topic(topic, 3)

    def produce_round(tag: bytes):
        return produce_ok(client, broker.bootstrap, topic,
                          [Msg(b"k", tag + b"-%d" % p, partition=p) for p in range(3)])

    produce_round(b"a")
    with client.consumer(broker.bootstrap) as c:
        c.assign(topic, {0: 0})
        assert [(r.partition, r.value) for r in c.read(1)] == [(0, b"a-0")]
        c.assign(topic, {1: 0, 2: 1})
        got = c.read(1)  # "a-1"; partition 2 starts after "a-2", so it has nothing yet
        produce_round(b"b")
        got += c.read(2)
        assert sorted((r.partition, r.offset, r.value) for r in got) == [
            (1, 0, b"a-1"), (1, 1, b"b-1"), (2, 1, b"b-2")]
        assert c.read(1, timeout=1.0) == []  # nothing from partition 0 leaks in
        c.assign(topic, {0: 1})
        assert [(r.partition, r.offset, r.value) for r in c.read(1)] == [(0, 1, b"b-0")]
