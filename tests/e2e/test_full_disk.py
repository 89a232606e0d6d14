"""A full disk under a running broker, with real clients: the produce that does not fit is
refused with KAFKA_STORAGE_ERROR (kafka-python and confluent-kafka both see it), every
record acknowledged before reads back (offsets, keys, values, headers, timestamps), also
after a kill -9 and a restart on the still-full disk, and once space is freed appends go
on at the next offset. The data dir is a small tmpfs (mounting it needs root, as CI has)."""

import subprocess

import pytest

from clients import BY_NAME, CREATE_TIME, Delivered, KafkaFailure, Msg, Rec, consume, now_ms

KAFKA_STORAGE_ERROR = 56
FREE_BYTES = 192 * 1024  # left on the disk for the records


@pytest.fixture
def small_disk(tmp_path):
    """A 16 MiB tmpfs to be the broker's data dir (its log file goes beside it, on the real
    disk), unmounted after the test (request it before make_broker, so the broker on it is
    stopped first)."""
    mount_point = tmp_path / "disk" / "data"
    mount_point.mkdir(parents=True)
    mounted = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=16m", "tmpfs",
                              str(mount_point)], capture_output=True, text=True)
    if mounted.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs (needs root): {mounted.stderr.strip()}")
    yield mount_point
    if subprocess.run(["umount", str(mount_point)]).returncode != 0:
        subprocess.run(["umount", "-l", str(mount_point)])


def fill(disk, leave: int):
    """Writes a ballast file until the disk is full, then gives back `leave` bytes."""
    ballast = disk / "ballast"
    chunk = b"\xff" * 65536
    with open(ballast, "wb", buffering=0) as f:  # unbuffered: nothing left to flush
        try:
            while True:
                f.write(chunk)
        except OSError:
            pass
    size = ballast.stat().st_size
    with open(ballast, "r+b") as f:
        f.truncate(max(0, size - leave))
    return ballast


def record(i: int) -> Msg:
    return Msg(f"key-{i}".encode(), (f"value {i} ".encode() * 100)[:1000],
               (("i", str(i).encode()),), BASE_TS + i, 0)


BASE_TS = now_ms() - 60_000


def test_full_disk_refuses_appends_and_keeps_what_was_acknowledged(small_disk, make_broker,
                                                                   topic, request):
    b = make_broker(data_dir=small_disk)
    kpy, confluent = BY_NAME["kafka-python"], BY_NAME["confluent"]
    with kpy.admin(b.bootstrap) as a:
        a.create_topic(topic, 1)
    ballast = fill(small_disk, FREE_BYTES)

    # kafka-python, one record per request, no retries: acknowledged until the disk is full.
    acked: list[tuple[Msg, Delivered]] = []
    refusal = None
    with kpy.producer(b.bootstrap, linger_ms=0, retries=0) as p:
        for i in range(2 * FREE_BYTES // 1000):
            (result,) = p.send(topic, [record(i)])
            if not isinstance(result, Delivered):
                refusal = result
                break
            acked.append((record(i), result))
    assert refusal is not None, f"{len(acked)} records of 1 KB fit in {FREE_BYTES} bytes"
    assert isinstance(refusal, KafkaFailure) and refusal.code == KAFKA_STORAGE_ERROR, refusal
    assert len(acked) >= FREE_BYTES // 1200, f"only {len(acked)} records fitted"
    assert [d.offset for _, d in acked] == list(range(len(acked)))

    # confluent-kafka is refused the same way.
    with confluent.producer(b.bootstrap, linger_ms=0,
                            **{"message.send.max.retries": 0}) as p:
        (result,) = p.send(topic, [record(len(acked))])
    assert isinstance(result, KafkaFailure) and result.code == KAFKA_STORAGE_ERROR, result
    assert "append refused: the log could not be written" in b.log()
    assert "No space left on device" in b.log(), "the broker logs why"

    want = [Rec(0, d.offset, m.key, m.value, m.headers, m.timestamp, CREATE_TIME)
            for m, d in acked]
    assert consume(confluent, b.bootstrap, topic, {0: 0}, len(want)) == want

    # A stop on the full disk, and a kill -9 after a restart on it, lose nothing
    # acknowledged; the broker starts on the still-full disk both times.
    # SIGTERM: the broker stops, but cannot write its indexes and checkpoints, says so and
    # exits with 1 (the next start recovers as after a crash).
    code = b.stop()
    assert code == 1, f"SIGTERM on a full disk: exit code {code}\n{b.log()[-3000:]}"
    assert "flushing logs on shutdown failed" in b.log()
    request.node.sluice_brokers.remove(b)  # its exit code is checked here, not at teardown
    b = make_broker(data_dir=small_disk, port=b.port)
    assert consume(kpy, b.bootstrap, topic, {0: 0}, len(want)) == want
    b.kill9()
    b = make_broker(data_dir=small_disk, port=b.port)
    assert consume(confluent, b.bootstrap, topic, {0: 0}, len(want)) == want

    # Space freed: appends go on at the next offset, and both clients read it all.
    ballast.unlink()
    more = [record(len(acked) + j) for j in range(5)]
    with confluent.producer(b.bootstrap, linger_ms=0) as p:
        delivered = p.send(topic, more)
    assert [d.offset for d in delivered] == list(range(len(acked), len(acked) + 5)), delivered
    want += [Rec(0, d.offset, m.key, m.value, m.headers, m.timestamp, CREATE_TIME)
             for m, d in zip(more, delivered)]
    for reader in (kpy, confluent):
        assert consume(reader, b.bootstrap, topic, {0: 0}, len(want)) == want, reader.name
