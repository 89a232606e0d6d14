"""kcat (Debian's build on librdkafka 2.0.x): metadata listing, produce/consume round trip
with keys and headers, and offsets for times."""

import json
import shutil
import subprocess

import pytest

from clients import BY_NAME, Msg, consume, produce_ok
from logfiles import CODEC_IDS, batches

pytestmark = pytest.mark.skipif(shutil.which("kcat") is None, reason="kcat is not installed "
                                "(tests/run installs it with apt)")


def kcat(broker, *args: str, input: bytes | None = None) -> str:
    out = subprocess.run(["kcat", "-b", broker.bootstrap, *args], input=input,
                         capture_output=True, timeout=60)
    assert out.returncode == 0, f"kcat {' '.join(args)} exited {out.returncode}:\n" \
                                f"{out.stderr.decode(errors='replace')}"
    return out.stdout.decode()


def test_metadata_listing(broker, topic):
    with BY_NAME["confluent"].admin(broker.bootstrap) as admin:
        admin.create_topic(topic, 3)
    md = json.loads(kcat(broker, "-L", "-J"))
    assert md["brokers"] == [{"id": 0, "name": broker.bootstrap}]
    assert md["controllerid"] == 0
    (t,) = [t for t in md["topics"] if t["topic"] == topic]
    assert t["partitions"] == [{"partition": p, "leader": 0, "replicas": [{"id": 0}],
                                "isrs": [{"id": 0}]} for p in range(3)]
    assert "error" not in t


def test_produce_consume_round_trip_with_keys_and_headers(broker, topic):
    # Values long and repetitive enough that even a one-record batch shrinks: librdkafka
    # sends a batch uncompressed when compressing would make it bigger.
    values = [f"value {i} " + "with spaces " * 20 for i in range(20)]
    lines = "".join(f"key-{i}\t{v}\n" for i, v in enumerate(values)).encode()
    kcat(broker, "-P", "-t", topic, "-p", "0", "-K", "\t", "-z", "zstd",
         "-H", "source=kcat", "-H", "trace=abc-123", input=lines)
    out = kcat(broker, "-C", "-t", topic, "-p", "0", "-o", "beginning", "-e", "-J")
    records = [json.loads(line) for line in out.splitlines() if line.strip()]
    assert {b.codec for b in batches(broker.data_dir / f"{topic}-0")} == {CODEC_IDS["zstd"]}
    assert [(r["offset"], r["key"], r["payload"], r["headers"], r["tstype"]) for r in records] == [
        (i, f"key-{i}", values[i], ["source", "kcat", "trace", "abc-123"], "create")
        for i in range(20)]

    # A Python client reads exactly what kcat wrote.
    got = consume(BY_NAME["kafka-python"], broker.bootstrap, topic, {0: 0}, 20)
    assert [(r.key, r.value, r.headers, r.timestamp) for r in got] == [
        (b"key-%d" % i, values[i].encode(), (("source", b"kcat"), ("trace", b"abc-123")),
         records[i]["ts"]) for i in range(20)]


def test_consume_what_a_python_client_produced(broker, topic):
    msgs = [Msg(b"k%d" % i, b"v%d" % i, (("n", b"%d" % i),), timestamp=1_700_000_000_000 + i,
                partition=0) for i in range(5)]
    produce_ok(BY_NAME["aiokafka"], broker.bootstrap, topic, msgs, compression="gzip")
    out = kcat(broker, "-C", "-t", topic, "-p", "0", "-o", "2", "-e", "-f", "%o|%k|%s|%h|%T\n")
    assert out.splitlines() == [f"{i}|k{i}|v{i}|n={i}|{1_700_000_000_000 + i}" for i in range(2, 5)]


def test_offsets_for_times(broker, topic):
    base = 1_700_000_000_000
    deltas = [0, 10, 20, 20, 30, 25, 40, 50]  # offset 5 is older than offset 4
    produce_ok(BY_NAME["confluent"], broker.bootstrap, topic,
               [Msg(b"k", b"v", timestamp=base + d, partition=0) for d in deltas])
    for target, expected in [(-1, 0), (15, 2), (21, 4), (50, 7), (51, -1)]:
        out = kcat(broker, "-Q", "-t", f"{topic}:0:{base + target}")
        assert out.split() == [topic, "[0]", "offset", str(expected)], (target, out)
