"""Retention as a user configures it: lowering retention.ms on a topic deletes its old
segments; consumers then start at the new log start."""

import time

from clients import Delivered, Msg, now_ms

DAY_MS = 86_400_000


def test_lowering_retention_ms_deletes_old_segments(make_broker, client, topic):
    b = make_broker(env={"SLUICE_LOG_RETENTION_CHECK_INTERVAL_MS": "200"})
    with client.admin(b.bootstrap) as admin:
        admin.create_topic(topic, 1, {"segment.bytes": "1024"})
    old_ts = now_ms() - 2 * DAY_MS
    with client.producer(b.bootstrap, linger_ms=0) as p:
        for i in range(30):  # one ~100-byte batch each: several small segments
            (d,) = p.send(topic, [Msg(b"k", b"old-%02d" % i + b"." * 30, timestamp=old_ts + i,
                                      partition=0)])
            assert isinstance(d, Delivered), d
        new = p.send(topic, [Msg(b"k", b"new-%d" % i, partition=0) for i in range(5)])
    assert [d.offset for d in new] == list(range(30, 35))
    segments_before = sorted(b.data_dir.glob(f"{topic}-0/*.log"))
    assert len(segments_before) > 3, segments_before

    with client.admin(b.bootstrap) as admin:
        admin.alter_configs(topic, {"segment.bytes": "1024", "retention.ms": str(DAY_MS)})
    with client.consumer(b.bootstrap) as c:
        deadline = time.time() + 30
        while (low := c.watermarks(topic, 0)[0]) == 0 and time.time() < deadline:
            time.sleep(0.2)
        low, high = c.watermarks(topic, 0)
        assert 0 < low <= 30 and high == 35, (low, high)
        c.assign(topic, {0: "earliest"})
        records = c.read(high - low)
    assert [r.offset for r in records] == list(range(low, 35))
    assert [r.value for r in records[-5:]] == [b"new-%d" % i for i in range(5)]
    remaining = sorted(b.data_dir.glob(f"{topic}-0/*.log"))
    assert int(remaining[0].stem) == low, (remaining, low)
