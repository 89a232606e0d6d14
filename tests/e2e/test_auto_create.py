"""Topic auto-creation (auto_create_topics): on by default, as in Apache Kafka; off (as on
Amazon MSK) an unknown topic is UNKNOWN_TOPIC_OR_PARTITION for metadata and produce."""

import pytest

from clients import UNKNOWN_TOPIC_OR_PARTITION, KafkaFailure, Msg, consume, produce_ok
from kwire import Conn, metadata_v1, produce_v3, produce_v3_result, record_batch, Reader

NO_AUTO_CREATE = {"SLUICE_AUTO_CREATE_TOPICS": "false"}


def test_producing_to_a_new_topic_creates_it(broker, client, topic):
    delivered = produce_ok(client, broker.bootstrap, topic, [Msg(b"k", b"v")])
    assert [(d.partition, d.offset) for d in delivered] == [(0, 0)]
    with client.admin(broker.bootstrap) as admin:
        assert topic in admin.topics()
        assert admin.partitions(topic) == 1  # num_partitions default
    assert [r.value for r in consume(client, broker.bootstrap, topic, {0: 0}, 1)] == [b"v"]


def test_unknown_topic_without_auto_create(make_broker, client, topic):
    b = make_broker(env=NO_AUTO_CREATE)
    with client.admin(b.bootstrap) as admin:
        with pytest.raises(KafkaFailure) as failure:
            admin.partitions(topic)
        assert failure.value.code == UNKNOWN_TOPIC_OR_PARTITION, failure.value

    # librdkafka marks the topic missing only after topic.metadata.propagation.max.ms
    # (30 s by default): shortened here.
    extra = {"topic.metadata.propagation.max.ms": 500} if client.name == "confluent" else {}
    with client.producer(b.bootstrap, timeout_ms=3000, **extra) as p:
        (result,) = p.send(topic, [Msg(b"k", b"v")])
    assert isinstance(result, KafkaFailure), result
    if client.name == "kafka-python":
        # kafka-python waits max_block_ms for the topic to appear, then gives up (as the
        # Java client does); it never sends the Produce request.
        assert result.name == "KafkaTimeoutError" and "metadata" in result.message, result
    else:
        assert result.code == UNKNOWN_TOPIC_OR_PARTITION, result

    with client.admin(b.bootstrap) as admin:
        assert topic not in admin.topics()
        admin.create_topic(topic, 1)  # explicit creation still works
    assert [d.offset for d in produce_ok(client, b.bootstrap, topic, [Msg(b"k", b"v")])] == [0]


def test_wire_level_errors_without_auto_create(make_broker):
    """What the clients above interpret: the codes on the wire."""
    b = make_broker(env=NO_AUTO_CREATE)
    c = Conn(b.port)
    c.send(metadata_v1(["missing"]))
    r = Reader(c.recv_frame())
    r.take(">i")  # correlation id
    for _ in range(r.take(">i")):  # brokers: node id, host, port, rack
        r.take(">i"), r.string(), r.take(">i"), r.string()
    r.take(">i")  # controller id
    assert r.take(">i") == 1
    assert (r.take(">h"), r.string()) == (UNKNOWN_TOPIC_OR_PARTITION, "missing")
    c.send(produce_v3("missing", 0, record_batch([(b"k", b"v")])))
    assert produce_v3_result(c.recv_frame()) == (UNKNOWN_TOPIC_OR_PARTITION, -1)
    c.close()
    assert not (b.data_dir / "missing-0").exists()
