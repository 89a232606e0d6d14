"""Produce and fetch with each real client: keyed records over several partitions, the
max.message.bytes limit, LogAppendTime topics, and topics whose compression.type makes the
broker recompress what producers send."""

import threading
import time
from collections import defaultdict

import pytest

from clients import (CREATE_TIME, INVALID_RECORD, INVALID_TIMESTAMP, LOG_APPEND_TIME,
                     MESSAGE_TOO_LARGE, Delivered, KafkaFailure, Msg, Rec, consume, now_ms,
                     produce_ok)
from logfiles import batches, single_record_batch_size


def keyed_messages(client, n: int = 60) -> list[Msg]:
    base = now_ms() - 3_600_000
    odd_headers = (("empty", b""),) + ((("null", None),) if client.null_header_values else ())
    msgs = [Msg(key=f"key-{i % 12}".encode(), value=f"value-{i}".encode(),
                headers=(("seq", str(i).encode()), ("client", client.name.encode()),
                         ("dup", b"first"), ("dup", b"second")),
                timestamp=base + i * 7)
            for i in range(n)]
    # Edge cases a user relies on: empty key, tombstone (null value), no headers, binary
    # value, empty and null header values (kafka-python cannot send a null header value).
    msgs += [Msg(b"", b"empty key", timestamp=base + 1000),
             Msg(b"key-1", None, (("why", b"tombstone"),), timestamp=base + 1001),
             Msg(b"key-2", b"no headers", timestamp=base + 1002),
             Msg(b"key-3", bytes(range(256)), odd_headers, timestamp=base + 1003)]
    return msgs


def test_keyed_records_round_trip_over_partitions(broker, client, topic):
    with client.admin(broker.bootstrap) as admin:
        admin.create_topic(topic, 3)
        assert admin.partitions(topic) == 3
    msgs = keyed_messages(client)
    delivered = produce_ok(client, broker.bootstrap, topic, msgs)

    # The partitioner is the client's: a key always lands on one partition, and 12 keys
    # spread over all three.
    partitions_of_key = defaultdict(set)
    for m, d in zip(msgs, delivered):
        partitions_of_key[m.key].add(d.partition)
    assert all(len(ps) == 1 for ps in partitions_of_key.values()), dict(partitions_of_key)
    assert {d.partition for d in delivered} == {0, 1, 2}

    # Offsets the producer reported: 0, 1, 2... per partition, in send order.
    expected: dict[int, list[Rec]] = defaultdict(list)
    for m, d in zip(msgs, delivered):
        assert d.offset == len(expected[d.partition]), (m, d)
        expected[d.partition].append(Rec(d.partition, d.offset, m.key, m.value, m.headers,
                                         m.timestamp, CREATE_TIME))

    records = consume(client, broker.bootstrap, topic, {0: 0, 1: 0, 2: 0}, len(msgs))
    got: dict[int, list[Rec]] = defaultdict(list)
    for r in records:
        got[r.partition].append(r)
    for p in range(3):
        assert got[p] == expected[p], f"partition {p}"


def test_client_stamped_timestamps_are_kept(broker, client, topic):
    """Records sent without a timestamp carry the client's clock as CreateTime."""
    before = now_ms()
    delivered = produce_ok(client, broker.bootstrap, topic,
                           [Msg(b"k", b"v%d" % i) for i in range(3)])
    after = now_ms()
    records = consume(client, broker.bootstrap, topic, {0: 0}, 3)
    assert [r.offset for r in records] == [d.offset for d in delivered] == [0, 1, 2]
    for r in records:
        assert r.timestamp_type == CREATE_TIME
        assert before <= r.timestamp <= after, (before, r, after)


def test_max_message_bytes_is_enforced_per_batch(broker, client, topic):
    limit = 10_000
    with client.admin(broker.bootstrap) as admin:
        admin.create_topic(topic, 1, {"max.message.bytes": str(limit)})
    fits = next(n for n in range(limit, 0, -1) if single_record_batch_size(n) <= limit)
    assert single_record_batch_size(fits) == limit  # the batch is exactly at the limit
    with client.producer(broker.bootstrap, linger_ms=0) as p:
        (at_limit,) = p.send(topic, [Msg(None, b"a" * fits)])
        (over,) = p.send(topic, [Msg(None, b"b" * (fits + 1))])
        (after,) = p.send(topic, [Msg(None, b"after")])
    assert isinstance(at_limit, Delivered) and at_limit.offset == 0, at_limit
    assert isinstance(over, KafkaFailure), over
    assert over.code == MESSAGE_TOO_LARGE, over
    assert isinstance(after, Delivered) and after.offset == 1, after

    records = consume(client, broker.bootstrap, topic, {0: 0}, 2)
    assert [(r.offset, r.value) for r in records] == [(0, b"a" * fits), (1, b"after")]
    sizes = [b.size for b in batches(broker.data_dir / f"{topic}-0")]
    assert sizes[0] == limit, sizes


def test_log_append_time_topic_stamps_broker_time(broker, client, topic):
    with client.admin(broker.bootstrap) as admin:
        admin.create_topic(topic, 1, {"message.timestamp.type": "LogAppendTime"})
    producer_ts = 1_500_000_000_000  # 2017: far from now, so it cannot be mistaken
    before = now_ms()
    delivered = produce_ok(client, broker.bootstrap, topic,
                           [Msg(b"k", b"v%d" % i, timestamp=producer_ts) for i in range(5)])
    after = now_ms()
    records = consume(client, broker.bootstrap, topic, {0: 0}, 5)
    assert [r.value for r in records] == [b"v%d" % i for i in range(5)]
    for r, d in zip(records, delivered):
        assert r.timestamp_type == LOG_APPEND_TIME, r
        assert before <= r.timestamp <= after, (before, r, after)
        # The acknowledgement reports the broker's append time too.
        assert d.timestamp == r.timestamp, (d, r)
    on_disk = batches(broker.data_dir / f"{topic}-0")
    assert {b.timestamp_type for b in on_disk} == {1}, on_disk

    # Lookups by time use the append times, not the producer's timestamps.
    time.sleep(0.02)  # so the next batch gets a later append time
    (later,) = produce_ok(client, broker.bootstrap, topic,
                          [Msg(b"k", b"later", timestamp=producer_ts)])
    with client.consumer(broker.bootstrap) as c:
        assert c.offsets_for_times(topic, {0: producer_ts}) == {0: 0}
        assert c.offsets_for_times(topic, {0: records[-1].timestamp + 1}) == {0: later.offset}
        assert c.offsets_for_times(topic, {0: now_ms() + 3_600_000}) == {0: None}


@pytest.mark.parametrize("acks", [0, 1, -1], ids=["acks0", "acks1", "acksall"])
def test_every_acks_setting_stores_the_records(broker, client, topic, acks):
    msgs = [Msg(b"k%d" % i, b"v%d" % i, partition=0) for i in range(10)]
    delivered = produce_ok(client, broker.bootstrap, topic, msgs, acks=acks)
    records = consume(client, broker.bootstrap, topic, {0: 0}, 10)
    assert [(r.offset, r.key, r.value) for r in records] == [
        (i, b"k%d" % i, b"v%d" % i) for i in range(10)]
    if acks != 0:  # with acks=0 the broker sends no response, so no offsets are known
        assert [d.offset for d in delivered] == list(range(10))


def test_broker_refuses_invalid_records_with_kafka_errors(broker, client, topic):
    """A keyless record on a compacted topic is INVALID_RECORD; a timestamp older than
    message.timestamp.before.max.ms is INVALID_TIMESTAMP. Nothing refused is stored."""
    with client.admin(broker.bootstrap) as admin:
        admin.create_topic(topic + ".compact", 1, {"cleanup.policy": "compact"})
        admin.create_topic(topic + ".recent", 1, {"message.timestamp.before.max.ms": "3600000"})
    with client.producer(broker.bootstrap, linger_ms=0) as p:
        (keyless,) = p.send(topic + ".compact", [Msg(None, b"no key")])
        (keyed,) = p.send(topic + ".compact", [Msg(b"k", b"keyed")])
        (old,) = p.send(topic + ".recent", [Msg(b"k", b"old", timestamp=now_ms() - 7_200_000)])
        (recent,) = p.send(topic + ".recent", [Msg(b"k", b"recent")])
    assert isinstance(keyless, KafkaFailure), keyless
    if client.name == "aiokafka":
        # aiokafka 0.14 has no exception class for code 87 and reports UnknownError (-1).
        assert keyless.name == "UnknownError", keyless
    else:
        assert keyless.code == INVALID_RECORD, keyless
    assert isinstance(old, KafkaFailure) and old.code == INVALID_TIMESTAMP, old
    assert (keyed.offset, recent.offset) == (0, 0), (keyed, recent)


def test_concurrent_producers_share_one_partition(broker, topic):
    """All three clients append to one partition at once: every record gets exactly one
    offset, offsets are dense, and each producer's records keep their order."""
    from clients import CLIENTS
    results: dict[str, list] = {}

    def run(c):
        with c.producer(broker.bootstrap, linger_ms=1) as p:
            out = []
            for rnd in range(10):
                msgs = [Msg(c.name.encode(), b"%s-%04d" % (c.name.encode(), rnd * 20 + i),
                            partition=0) for i in range(20)]
                out += list(zip(msgs, p.send(topic, msgs)))
            results[c.name] = out

    produce_ok(CLIENTS[0], broker.bootstrap, topic, [Msg(b"first", b"first")])
    threads = [threading.Thread(target=run, args=(c,)) for c in CLIENTS]
    for t in threads:
        t.start()
    for t in threads:
        t.join(120)
    assert sorted(results) == sorted(c.name for c in CLIENTS)
    by_offset = {0: b"first"}
    for name, pairs in results.items():
        offsets = [d.offset for _, d in pairs]
        assert all(isinstance(d, Delivered) for _, d in pairs), name
        assert offsets == sorted(offsets), f"{name}'s records were reordered"
        for m, d in pairs:
            assert d.offset not in by_offset, f"offset {d.offset} given twice"
            by_offset[d.offset] = m.value
    assert sorted(by_offset) == list(range(len(by_offset)))
    records = consume(CLIENTS[1], broker.bootstrap, topic, {0: 0}, len(by_offset))
    assert {r.offset: r.value for r in records} == by_offset


def test_topic_compression_type_recompresses_what_producers_send(broker, topic):
    """compression.type=zstd on a topic: confluent-kafka sends lz4 batches and kafka-python
    gzip ones; every batch on disk is zstd, and both clients read every record back with its
    offset, key, value, headers and timestamp. Set to uncompressed through
    IncrementalAlterConfigs, later batches are stored uncompressed (earlier ones stay zstd)
    and DescribeConfigs reports it; a codec Kafka does not know is INVALID_CONFIG."""
    from clients import BY_NAME
    from logfiles import CODEC_IDS
    confluent, kpy = BY_NAME["confluent"], BY_NAME["kafka-python"]
    with confluent.admin(broker.bootstrap) as a:
        a.create_topic(topic, 1, {"compression.type": "zstd"})
    base = now_ms() - 60_000

    def round_of(tag: str, n: int, ts: int) -> list[Msg]:
        return [Msg(f"{tag}-{i}".encode(), (f"{tag} value {i} ".encode() * 30),
                    (("from", tag.encode()),), ts + i, 0) for i in range(n)]

    sent = round_of("confluent", 40, base)
    delivered = produce_ok(confluent, broker.bootstrap, topic, sent, compression="lz4")
    more = round_of("kafka-python", 40, base + 100)
    delivered += produce_ok(kpy, broker.bootstrap, topic, more, compression="gzip")
    sent += more
    assert [d.offset for d in delivered] == list(range(80))
    on_disk = batches(broker.data_dir / f"{topic}-0")
    assert on_disk and {b.codec for b in on_disk} == {CODEC_IDS["zstd"]}, on_disk

    want = [Rec(0, d.offset, m.key, m.value, m.headers, m.timestamp, CREATE_TIME)
            for m, d in zip(sent, delivered)]
    for reader in (confluent, kpy):
        assert consume(reader, broker.bootstrap, topic, {0: 0}, len(want)) == want, reader.name

    with kpy.admin(broker.bootstrap) as a:
        a.incremental_alter_configs(topic, {"compression.type": ("SET", "uncompressed")})
        assert a.topic_configs(topic)["compression.type"].value == "uncompressed"
        assert a.topic_configs(topic)["compression.type"].source == "DYNAMIC_TOPIC_CONFIG"
    last = round_of("after", 5, base + 200)
    delivered += produce_ok(confluent, broker.bootstrap, topic, last, compression="zstd")
    sent += last
    codecs = [b.codec for b in batches(broker.data_dir / f"{topic}-0")]
    assert codecs[:len(on_disk)] == [CODEC_IDS["zstd"]] * len(on_disk)
    assert codecs[len(on_disk):] and set(codecs[len(on_disk):]) == {CODEC_IDS["none"]}, codecs
    want = [Rec(0, d.offset, m.key, m.value, m.headers, m.timestamp, CREATE_TIME)
            for m, d in zip(sent, delivered)]
    assert consume(kpy, broker.bootstrap, topic, {0: 0}, len(want)) == want

    with confluent.admin(broker.bootstrap) as a:
        with pytest.raises(KafkaFailure) as refused:
            a.create_topic(topic + ".brotli", 1, {"compression.type": "brotli"})
    assert refused.value.name == "INVALID_CONFIG" and "brotli" in str(refused.value)
