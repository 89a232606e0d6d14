"""kill -9 in the middle of an acks=all produce loop: after a restart on the same data dir,
every acknowledged record is there exactly once, in order, at the offset it was acked with,
and the recovered indexes still answer lookups by offset and by timestamp; the zeros the
broker writes past the data of small appends are on disk after the kill and cut by the
restart; a data dir damaged after a crash (torn tail, lost or bad indexes, stray files) is
repaired on start."""

import threading
import time

import logfiles
from clients import BY_NAME, Delivered, KafkaFailure, Msg

BATCH = 20
ACKED_BEFORE_KILL = 400
BASE_TS = 1_700_000_000_000


def test_acknowledged_records_survive_kill9(make_broker, client, topic):
    b = make_broker()
    with client.admin(b.bootstrap) as admin:
        # Small segments: the log spans dozens of them, so recovery crosses rolls and indexes.
        admin.create_topic(topic, 1, {"segment.bytes": "2048"})

    acked: list[tuple[int, bytes]] = []  # (offset, value) of every acknowledged record
    failures: list[KafkaFailure] = []
    errors: list[BaseException] = []
    stop = threading.Event()

    def produce_until_stopped():
        try:
            with client.producer(b.bootstrap, acks=-1, linger_ms=2, timeout_ms=2500) as p:
                seq = 0
                # Runs until the dead broker makes a send fail (or the test gives up).
                while not failures and not stop.is_set():
                    msgs = [Msg(None, b"%08d" % (seq + i), timestamp=BASE_TS + seq + i,
                                partition=0) for i in range(BATCH)]
                    for m, r in zip(msgs, p.send(topic, msgs)):
                        if isinstance(r, Delivered):
                            acked.append((r.offset, m.value))
                        else:
                            failures.append(r)
                    seq += BATCH
        except BaseException as e:  # surfaced in the main thread below
            errors.append(e)

    producer = threading.Thread(target=produce_until_stopped, name="acks-all-loop")
    producer.start()
    deadline = time.time() + 60
    while len(acked) < ACKED_BEFORE_KILL and time.time() < deadline and producer.is_alive():
        time.sleep(0.01)
    assert len(acked) >= ACKED_BEFORE_KILL, (len(acked), failures[:3], errors)
    b.kill9()  # the producer is still sending
    producer.join(90)
    stop.set()
    assert not producer.is_alive(), "the producer did not give up after the broker died"
    assert not errors, errors

    b2 = make_broker(data_dir=b.data_dir, port=b.port)
    assert "no clean shutdown marker" in b2.log()  # the restart recovered the logs
    with client.consumer(b2.bootstrap) as c:
        low, high = c.watermarks(topic, 0)
        c.assign(topic, {0: 0})
        records = c.read(high)
    assert low == 0 and len(records) == high >= len(acked), (low, high, len(acked))
    assert [r.offset for r in records] == list(range(high))
    values = [r.value for r in records]
    # Exactly once and in order: the log is a strictly increasing run of sequence numbers
    # (records sent but never acknowledged may or may not be there).
    assert all(a < b for a, b in zip(values, values[1:])), "duplicated or reordered records"
    stored = dict(zip(range(high), values))
    missing = [(o, v) for o, v in acked if stored.get(o) != v]
    assert not missing, f"{len(missing)} acknowledged records lost or moved: {missing[:5]}"

    assert len(list(b.data_dir.glob(f"{topic}-0/*.log"))) > 3, "expected many segments"
    # The time index was recovered too: record N carries timestamp BASE_TS + N.
    samples = [acked[0], acked[len(acked) // 3], acked[len(acked) // 2], acked[-1]]
    with client.consumer(b2.bootstrap) as c:
        for offset, value in samples:
            assert c.offsets_for_times(topic, {0: BASE_TS + int(value)}) == {0: offset}
        c.assign(topic, {0: samples[2][0]})
        assert c.read(1)[0].value == samples[2][1]


def test_zeros_written_ahead_of_small_batches_are_cut_after_kill9(make_broker, topic):
    """Small batches make the broker write zeros past the data of the active segment (so
    later appends copy into large page-cache pages). A kill -9 leaves them on disk; the
    restart cuts them; another client reads every record back and appends after them."""
    confluent, kafka_python = BY_NAME["confluent"], BY_NAME["kafka-python"]
    b = make_broker()
    with confluent.admin(b.bootstrap) as admin:
        admin.create_topic(topic, 1)
    sent = [Msg(b"k%d" % i, b"v%05d" % i, headers=(("n", b"%d" % i),), timestamp=BASE_TS + i,
                partition=0) for i in range(50)]
    with confluent.producer(b.bootstrap, acks=-1) as p:
        for m in sent:  # one small batch per record
            (r,) = p.send(topic, [m])
            assert isinstance(r, Delivered), r
    b.kill9()

    (segment,) = (b.data_dir / f"{topic}-0").glob("*.log")
    data = logfiles.data_bytes(segment.parent)
    on_disk = segment.read_bytes()
    assert len(on_disk) > data and len(on_disk) % (128 * 1024) == 0, (len(on_disk), data)
    assert not any(on_disk[data:]), "bytes other than zeros past the data"

    b2 = make_broker(data_dir=b.data_dir, port=b.port)
    assert segment.stat().st_size == data, "the zeros were not cut on restart"
    with kafka_python.consumer(b2.bootstrap) as c:
        c.assign(topic, {0: 0})
        got = c.read(len(sent))
    assert [(r.offset, r.key, r.value, r.headers, r.timestamp) for r in got] == [
        (i, m.key, m.value, m.headers, m.timestamp) for i, m in enumerate(sent)]

    more = [Msg(b"k-more", b"after the restart", timestamp=BASE_TS + 1000, partition=0)]
    with kafka_python.producer(b2.bootstrap, acks=-1) as p:
        (r,) = p.send(topic, more)
    assert isinstance(r, Delivered) and r.offset == len(sent), r
    with confluent.consumer(b2.bootstrap) as c:
        c.assign(topic, {0: len(sent)})
        (rec,) = c.read(1)
    assert (rec.offset, rec.key, rec.value, rec.timestamp) == (
        len(sent), b"k-more", b"after the restart", BASE_TS + 1000)


def test_a_damaged_data_dir_is_repaired_on_start(make_broker, topic):
    """What an operator may find after a crash, all in one partition: a torn and garbled
    last batch, a segment whose indexes are gone, an index pointing past its segment's end,
    and files that are not segments. The restart logs each repair and starts; every record
    before the torn batch reads back (kafka-python and confluent-kafka) with key, value,
    headers and timestamp, lookups by timestamp land on the right offsets, and appends go on
    at the offset after the last whole batch."""
    import os
    import struct

    confluent, kafka_python = BY_NAME["confluent"], BY_NAME["kafka-python"]
    b = make_broker()
    with confluent.admin(b.bootstrap) as admin:
        admin.create_topic(topic, 1, {"segment.bytes": "4096", "index.interval.bytes": "256"})
    sent = [Msg(b"k%d" % i, b"value %05d " % i + b"." * 80, headers=(("n", b"%d" % i),),
                timestamp=BASE_TS + 10 * i, partition=0) for i in range(300)]
    with confluent.producer(b.bootstrap, acks=-1, linger_ms=0) as p:
        for i in range(0, len(sent), 10):
            assert all(isinstance(r, Delivered) for r in p.send(topic, sent[i:i + 10]))
    b.kill9()

    part = b.data_dir / f"{topic}-0"
    logs = sorted(part.glob("*.log"))
    assert len(logs) >= 5, "expected several segments"
    last_batch = logfiles.batches(part)[-1]
    kept = last_batch.base_offset  # records from here on are in the torn batch
    # A torn, garbled tail: the last batch cut short, then garbage after it.
    tail = logs[-1].read_bytes()[:logfiles.data_bytes(part) - sum(
        len(x.read_bytes()) for x in logs[:-1])]
    logs[-1].write_bytes(tail[:-7] + os.urandom(50))
    # A segment without indexes, and one whose index points far past its end.
    logs[1].with_suffix(".index").unlink()
    logs[1].with_suffix(".timeindex").unlink()
    logs[2].with_suffix(".index").write_bytes(struct.pack(">II", 1, 10**9) * 4)
    # Files that are not segments.
    (part / "notes.txt").write_text("moved the old data elsewhere\n")
    (part / "123.log").write_bytes(os.urandom(64))

    b2 = make_broker(data_dir=b.data_dir, port=b.port)
    log = b2.log()
    assert "truncating torn or corrupt segment tail" in log, log[-3000:]
    assert "ignoring unexpected file in partition directory" in log
    assert log.count("segment index missing or invalid; rebuilding it") >= 2, log[-3000:]
    assert (part / "notes.txt").exists(), "an operator's file is left alone"

    want = [(i, m.key, m.value, m.headers, m.timestamp) for i, m in enumerate(sent[:kept])]
    with kafka_python.consumer(b2.bootstrap) as c:
        c.assign(topic, {0: 0})
        got = c.read(kept)
    assert [(r.offset, r.key, r.value, r.headers, r.timestamp) for r in got] == want
    with confluent.consumer(b2.bootstrap) as c:
        assert c.watermarks(topic, 0) == (0, kept)
        # Lookups by timestamp in the segment that lost its time index, the one with the
        # bad offset index, and the last one.
        for offset in (0, int(logs[1].stem), int(logs[2].stem), kept - 1):
            assert c.offsets_for_times(topic, {0: BASE_TS + 10 * offset}) == {0: offset}
        c.assign(topic, {0: int(logs[2].stem) + 1})
        (rec,) = c.read(1)
        assert (rec.offset, rec.value) == (int(logs[2].stem) + 1, sent[rec.offset].value)

    more = Msg(b"k-more", b"after the repair", timestamp=BASE_TS + 10_000, partition=0)
    with kafka_python.producer(b2.bootstrap, acks=-1) as p:
        (r,) = p.send(topic, [more])
    assert isinstance(r, Delivered) and r.offset == kept, r
    with confluent.consumer(b2.bootstrap) as c:
        c.assign(topic, {0: kept - 1})
        got = c.read(2)
    assert [(g.offset, g.value) for g in got] == [(kept - 1, sent[kept - 1].value),
                                                  (kept, b"after the repair")]


def test_a_segment_truncated_under_the_broker_stops_it_with_a_clear_message(make_broker,
                                                                           topic, request):
    """Small appends are copied into a shared mapping of the active segment. If another
    program truncates that file under the running broker, the next copy touches a page past
    the file's end and the kernel raises SIGBUS: the broker says why in one line and dies of
    SIGBUS (it cannot go on writing a file it no longer has). Restarted, it repairs the
    partition and takes appends again."""
    import os
    import signal

    confluent, kafka_python = BY_NAME["confluent"], BY_NAME["kafka-python"]
    b = make_broker()
    with confluent.admin(b.bootstrap) as admin:
        admin.create_topic(topic, 1)
    with confluent.producer(b.bootstrap, acks=-1, linger_ms=0) as p:
        for i in range(20):
            (r,) = p.send(topic, [Msg(b"k", b"v%d" % i, timestamp=BASE_TS + i, partition=0)])
            assert isinstance(r, Delivered), r
    (segment,) = (b.data_dir / f"{topic}-0").glob("*.log")
    os.truncate(segment, 0)  # another program's doing
    with kafka_python.producer(b.bootstrap, acks=-1, linger_ms=0, timeout_ms=5000,
                               retries=0) as p:
        (r,) = p.send(topic, [Msg(b"k", b"after the truncation", partition=0)])
    assert not isinstance(r, Delivered), r
    assert b.proc.wait(timeout=10) == -signal.SIGBUS
    request.node.sluice_brokers.remove(b)  # its exit is checked here, not at teardown
    assert "sluice: SIGBUS: a page of a memory-mapped segment file could not be read" in b.log()

    b2 = make_broker(data_dir=b.data_dir, port=b.port)
    with confluent.producer(b2.bootstrap, acks=-1, linger_ms=0) as p:
        (r,) = p.send(topic, [Msg(b"k", b"after the restart", partition=0)])
    assert isinstance(r, Delivered), r
    with kafka_python.consumer(b2.bootstrap) as c:
        c.assign(topic, {0: r.offset})
        (rec,) = c.read(1)
    assert (rec.offset, rec.value) == (r.offset, b"after the restart")
