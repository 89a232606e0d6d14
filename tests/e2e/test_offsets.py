"""Offsets as a consumer sees them: lookup by timestamp, out-of-range positions and
auto.offset.reset, and the log start after DeleteRecords."""

import pytest

from clients import (OFFSET_OUT_OF_RANGE, Delivered, KafkaFailure, Msg, consume, produce_ok)
from logfiles import batches

BASE_TS = 1_700_000_000_000
# Deliberately not monotonic (offset 5 is older than offset 4): a lookup must return the
# first offset whose timestamp is >= the target, not the first record after a sorted position.
DELTAS = [0, 10, 20, 20, 30, 25, 40, 50]


def produce_values(client, broker, topic, n: int, prefix: str = "v") -> list[Delivered]:
    return produce_ok(client, broker.bootstrap, topic,
                      [Msg(b"k", f"{prefix}{i}".encode(), partition=0) for i in range(n)])


# (target - BASE_TS, expected offset): the first offset whose timestamp is >= the target.
LOOKUPS = [
    (-1, 0),            # before everything: the first record
    (0, 0),
    (15, 2),            # between 10 and 20: the first 20
    (20, 2),            # equal: the first record with exactly that time
    (21, 4),            # offset 4 (30) comes before offset 5 (25) in the log
    (26, 4),
    (31, 6),
    (50, 7),            # the last record
    (51, None),         # after everything: no offset (clients report None / -1)
]


def test_offsets_for_times_finds_first_record_at_or_after(broker, client, topic):
    produce_ok(client, broker.bootstrap, topic,
               [Msg(b"k", f"at+{d}".encode(), timestamp=BASE_TS + d, partition=0)
                for d in DELTAS])
    with client.consumer(broker.bootstrap) as c:
        found = [c.offsets_for_times(topic, {0: BASE_TS + t})[0] for t, _ in LOOKUPS]
    assert list(zip([t for t, _ in LOOKUPS], found)) == LOOKUPS
    # Consuming from a looked-up offset starts at the first record at or after the target.
    with client.consumer(broker.bootstrap) as c:
        c.assign(topic, {0: found[LOOKUPS.index((21, 4))]})
        first = c.read(1)[0]
    assert (first.offset, first.timestamp, first.value) == (4, BASE_TS + 30, b"at+30")


def test_offsets_for_times_across_batches_and_segments(broker, client, topic):
    """Each record in its own batch, every batch in the time index and a few per segment, so
    the lookup goes through the broker's segment and time indexes rather than one batch."""
    with client.admin(broker.bootstrap) as admin:
        admin.create_topic(topic, 1, {"segment.bytes": "250", "index.interval.bytes": "1"})
    with client.producer(broker.bootstrap, linger_ms=0) as p:
        for d in DELTAS:
            (r,) = p.send(topic, [Msg(b"k", f"at+{d}".encode(), timestamp=BASE_TS + d,
                                      partition=0)])
            assert isinstance(r, Delivered), r
    with client.consumer(broker.bootstrap) as c:
        assert [c.offsets_for_times(topic, {0: BASE_TS + t})[0] for t, _ in LOOKUPS] == \
            [o for _, o in LOOKUPS]
    assert len(list(broker.data_dir.glob(f"{topic}-0/*.log"))) >= 3


def first_record_after_reset_to_latest(client, broker, c, topic) -> tuple:
    """Produces one record at a time until the consumer, reset to the end, sees one.
    Returns (first record seen, {offset: value} of the records produced meanwhile). Records
    produced before the reset happened are skipped by design, so there may be several."""
    produced = {}
    with client.producer(broker.bootstrap, linger_ms=0) as p:
        for i in range(40):
            (d,) = p.send(topic, [Msg(b"k", b"late%d" % i, partition=0)])
            assert isinstance(d, Delivered), d
            produced[d.offset] = b"late%d" % i
            got = c.read(1, timeout=1.0)
            if got:
                return got[0], produced
    raise AssertionError(f"{client.name} consumed nothing after reset to latest")


@pytest.mark.parametrize("reset", ["earliest", "latest"])
def test_out_of_range_offset_follows_auto_offset_reset(broker, client, topic, reset):
    produce_values(client, broker, topic, 5)
    with client.consumer(broker.bootstrap, reset=reset) as c:
        c.assign(topic, {0: 100})  # past the high watermark (5)
        if reset == "earliest":
            records = c.read(5)
            assert [(r.offset, r.value) for r in records] == [(i, b"v%d" % i) for i in range(5)]
        else:
            first, produced = first_record_after_reset_to_latest(client, broker, c, topic)
            # Nothing from before the end (offsets 0-4), and exactly what was produced there.
            assert first.offset in produced, (first, produced)
            assert first.value == produced[first.offset]


def test_out_of_range_offset_without_reset_is_an_error(broker, client, topic):
    produce_values(client, broker, topic, 5)
    with client.consumer(broker.bootstrap, reset="none") as c:
        c.assign(topic, {0: 100})
        with pytest.raises(KafkaFailure) as failure:
            c.read(1)
    assert_offset_out_of_range(client, failure.value)


def assert_offset_out_of_range(client, f: KafkaFailure):
    if client.name == "confluent":
        # librdkafka wraps the broker's OFFSET_OUT_OF_RANGE in its reset error when
        # auto.offset.reset=error.
        assert f.name == "_AUTO_OFFSET_RESET" and "Offset out of range" in f.message, f
    else:
        assert f.code == OFFSET_OUT_OF_RANGE or f.name in (
            "OffsetOutOfRangeError", "NoOffsetForPartitionError"), f


def test_delete_records_moves_the_log_start(broker, client, topic):
    with client.admin(broker.bootstrap) as admin:
        admin.create_topic(topic, 2)
        produce_values(client, broker, topic, 10)
        assert admin.delete_records(topic, {0: 4}) == {0: 4}
        # Deleting below the current start changes nothing; -1 means "up to the high
        # watermark" and an empty partition stays at 0.
        assert admin.delete_records(topic, {0: 2}) == {0: 4}
        assert admin.delete_records(topic, {1: -1}) == {1: 0}

    with client.consumer(broker.bootstrap) as c:
        assert c.watermarks(topic, 0) == (4, 10)
        c.assign(topic, {0: "earliest"})
        records = c.read(6)
    assert [(r.offset, r.value) for r in records] == [(i, b"v%d" % i) for i in range(4, 10)]

    # Below the log start: earliest resets to the new start, latest to the end, and no
    # reset policy reports OFFSET_OUT_OF_RANGE.
    records = consume(client, broker.bootstrap, topic, {0: 1}, 6, reset="earliest")
    assert [r.offset for r in records] == list(range(4, 10))
    with client.consumer(broker.bootstrap, reset="latest") as c:
        c.assign(topic, {0: 1})
        first, produced = first_record_after_reset_to_latest(client, broker, c, topic)
        assert first.offset >= 10 and first.value == produced[first.offset], (first, produced)
    with client.consumer(broker.bootstrap, reset="none") as c:
        c.assign(topic, {0: 3})
        with pytest.raises(KafkaFailure) as failure:
            c.read(1)
    assert_offset_out_of_range(client, failure.value)

    # Deleting everything leaves an empty partition that keeps its offsets.
    with client.consumer(broker.bootstrap) as c:
        _, end = c.watermarks(topic, 0)
    with client.admin(broker.bootstrap) as admin:
        assert admin.delete_records(topic, {0: -1}) == {0: end}
    produce_values(client, broker, topic, 1, prefix="new")
    records = consume(client, broker.bootstrap, topic, {0: "earliest"}, 1)
    assert [(r.offset, r.value) for r in records] == [(end, b"new0")]


def test_delete_records_survives_restart(make_broker, client, topic):
    b = make_broker()
    produce_values(client, b, topic, 10)
    with client.admin(b.bootstrap) as admin:
        assert admin.delete_records(topic, {0: 7}) == {0: 7}
    b.stop()
    b = make_broker(data_dir=b.data_dir)
    records = consume(client, b.bootstrap, topic, {0: "earliest"}, 3)
    assert [r.offset for r in records] == [7, 8, 9]


def test_list_offsets_through_the_admin_api(broker, client, topic):
    """ListOffsets earliest / latest / max timestamp (KIP-734) / by timestamp, with the
    timestamps the broker reports."""
    if client.name == "aiokafka":
        pytest.skip("aiokafka 0.14's AIOKafkaAdminClient has no list_offsets")
    deltas = [0, 10, 60, 20, 30]  # the newest record (60) sits in the middle
    with client.admin(broker.bootstrap) as admin:
        admin.create_topic(topic, 2)
        produce_ok(client, broker.bootstrap, topic,
                   [Msg(b"k", b"v", timestamp=BASE_TS + d, partition=0) for d in deltas])
        assert admin.list_offsets(topic, {0: "earliest", 1: "earliest"}) == {0: (0, -1), 1: (0, -1)}
        assert admin.list_offsets(topic, {0: "latest", 1: "latest"}) == {0: (5, -1), 1: (0, -1)}
        assert admin.list_offsets(topic, {0: "max_timestamp"}) == {0: (2, BASE_TS + 60)}
        assert admin.list_offsets(topic, {0: BASE_TS + 15}) == {0: (2, BASE_TS + 60)}
        assert admin.list_offsets(topic, {0: BASE_TS + 25}) == {0: (2, BASE_TS + 60)}
        assert admin.list_offsets(topic, {0: BASE_TS + 61}) == {0: (-1, -1)}
        assert admin.delete_records(topic, {0: 3}) == {0: 3}
        assert admin.list_offsets(topic, {0: "earliest"}) == {0: (3, -1)}
        assert admin.list_offsets(topic, {0: BASE_TS}) == {0: (3, BASE_TS + 20)}


def test_delete_records_inside_a_compressed_batch(broker, client, topic):
    """The new log start falls inside a batch: the broker still serves that batch and the
    client drops the records before the start."""
    msgs = [Msg(b"k", b"r%02d" % i + b"." * 40, partition=0) for i in range(20)]
    produce_ok(client, broker.bootstrap, topic, msgs, compression="gzip", linger_ms=100)
    assert len(batches(broker.data_dir / f"{topic}-0")) == 1
    with client.admin(broker.bootstrap) as admin:
        assert admin.delete_records(topic, {0: 7}) == {0: 7}
    records = consume(client, broker.bootstrap, topic, {0: "earliest"}, 13)
    assert [(r.offset, r.value) for r in records] == [(i, msgs[i].value) for i in range(7, 20)]
