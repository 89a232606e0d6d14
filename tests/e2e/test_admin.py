"""The admin APIs through each client's admin client (confluent-kafka AdminClient,
kafka-python KafkaAdminClient, aiokafka AIOKafkaAdminClient): CreateTopics, DeleteTopics,
CreatePartitions, DescribeConfigs, AlterConfigs, IncrementalAlterConfigs, DescribeCluster,
plus DescribeLogDirs and OffsetForLeaderEpoch where only kafka-python reaches them."""

import pytest

import logfiles
from clients import (BY_NAME, CLIENTS, INVALID_CONFIG, INVALID_PARTITIONS,
                     INVALID_REPLICATION_FACTOR, MESSAGE_TOO_LARGE,
                     TOPIC_ALREADY_EXISTS, UNKNOWN_TOPIC_OR_PARTITION, ConfigValue, Delivered,
                     KafkaFailure, Msg, consume, produce_ok)

DEFAULT, TOPIC = "DEFAULT_CONFIG", "DYNAMIC_TOPIC_CONFIG"

# Every topic config sluice knows, with the default a topic gets on a default broker; the
# values are Apache Kafka's defaults.
TOPIC_DEFAULTS = {
    "cleanup.policy": "delete",
    "delete.retention.ms": "86400000",
    "flush.messages": "9223372036854775807",
    "flush.ms": "9223372036854775807",
    "index.interval.bytes": "4096",
    "max.message.bytes": "1048588",
    "message.timestamp.after.max.ms": "9223372036854775807",
    "message.timestamp.before.max.ms": "9223372036854775807",
    "message.timestamp.type": "CreateTime",
    "min.cleanable.dirty.ratio": "0.5",
    "min.compaction.lag.ms": "0",
    "retention.bytes": "-1",
    "retention.ms": "604800000",
    "segment.bytes": "1073741824",
    "segment.index.bytes": "10485760",
    "segment.ms": "604800000",
}


def expected_configs(explicit: dict[str, str]) -> dict[str, ConfigValue]:
    out = {k: ConfigValue(v, DEFAULT, False) for k, v in TOPIC_DEFAULTS.items()}
    out.update({k: ConfigValue(v, TOPIC, False) for k, v in explicit.items()})
    return out


def assert_configs(admin, topic: str, explicit: dict[str, str]):
    got = admin.topic_configs(topic)
    want = expected_configs(explicit)
    assert {k: got.get(k) for k in want} == want


def expect_failure(code: int, fn, *args):
    with pytest.raises(KafkaFailure) as failure:
        fn(*args)
    assert failure.value.code == code, failure.value
    return failure.value


def test_create_describe_delete_topic(broker, client, topic):
    with client.admin(broker.bootstrap) as a:
        a.create_topic(topic, 2, {"retention.ms": "3600000", "cleanup.policy": "compact"})
        assert topic in a.topics()
        assert a.partitions(topic) == 2
        assert_configs(a, topic, {"retention.ms": "3600000", "cleanup.policy": "compact"})
        expect_failure(TOPIC_ALREADY_EXISTS, a.create_topic, topic, 1)
        # validate_only checks without creating; replication factors up to the virtual
        # broker count (max_replication_factor, 3) are accepted, as scripts for a 3-broker
        # MSK cluster ask for them.
        a.create_topic(topic + "-dry", 3, {"retention.ms": "1000"}, validate_only=True)
        expect_failure(INVALID_CONFIG, a.create_topic, topic + "-dry", 3,
                       {"retention.ms": "a week"}, 1, True)
        assert topic + "-dry" not in a.topics()
        a.create_topic(topic + "-rf3", 1, replication_factor=3)
        expect_failure(INVALID_REPLICATION_FACTOR, a.create_topic, topic + "-rf4", 1, None, 4)
        expect_failure(INVALID_CONFIG, a.create_topic, topic + "-bad", 1,
                       {"retention.ms": "a week"})
        assert topic + "-bad" not in a.topics()

        a.delete_topic(topic)
        assert topic not in a.topics()
        assert not (broker.data_dir / f"{topic}-0").exists()
        expect_failure(UNKNOWN_TOPIC_OR_PARTITION, a.delete_topic, topic)
        expect_failure(UNKNOWN_TOPIC_OR_PARTITION, a.topic_configs, topic)

        # The name can be used again: a new, empty topic with default configs.
        a.create_topic(topic, 1)
        assert_configs(a, topic, {})
    records = consume(client, broker.bootstrap, topic, {0: "earliest"}, 1, timeout=1)
    assert records == []


def test_alter_configs_takes_effect_and_persists(make_broker, client, topic):
    b = make_broker()
    with client.admin(b.bootstrap) as a:
        a.create_topic(topic, 1, {"retention.ms": "3600000"})
        a.alter_configs(topic, {"max.message.bytes": "10000"})
        # AlterConfigs replaces the whole set: retention.ms returns to its default. kafka-python
        # resends the other explicit configs itself (it emulates incremental semantics), so
        # there retention.ms stays.
        kept = {"retention.ms": "3600000"} if client.name == "kafka-python" else {}
        assert_configs(a, topic, {"max.message.bytes": "10000", **kept})
        expect_failure(INVALID_CONFIG, a.alter_configs, topic, {"retention.ms": "soon"})
        expect_failure(UNKNOWN_TOPIC_OR_PARTITION, a.alter_configs, topic + "-missing",
                       {"retention.ms": "1000"})
    # The new limit applies to the next produce.
    with client.producer(b.bootstrap, linger_ms=0) as p:
        (big,) = p.send(topic, [Msg(None, b"x" * 12_000)])
        (small,) = p.send(topic, [Msg(None, b"x" * 5_000)])
    assert isinstance(big, KafkaFailure) and big.code == MESSAGE_TOO_LARGE, big
    assert isinstance(small, Delivered) and small.offset == 0, small

    b.stop()
    b = make_broker(data_dir=b.data_dir)
    with client.admin(b.bootstrap) as a:
        assert_configs(a, topic, {"max.message.bytes": "10000", **kept})


def test_incremental_alter_configs(broker, client, topic):
    if client.name == "aiokafka":
        pytest.skip("aiokafka 0.14's AIOKafkaAdminClient has no incremental_alter_configs")
    with client.admin(broker.bootstrap) as a:
        a.create_topic(topic, 1, {"retention.ms": "3600000"})
        a.incremental_alter_configs(topic, {"max.message.bytes": ("SET", "20000"),
                                            "message.timestamp.type": ("SET", "LogAppendTime")})
        assert_configs(a, topic, {"retention.ms": "3600000", "max.message.bytes": "20000",
                                  "message.timestamp.type": "LogAppendTime"})
        a.incremental_alter_configs(topic, {"retention.ms": ("DELETE", None)})
        assert_configs(a, topic, {"max.message.bytes": "20000",
                                  "message.timestamp.type": "LogAppendTime"})
        # cleanup.policy is a list: APPEND adds to the effective value, SUBTRACT removes.
        a.incremental_alter_configs(topic, {"cleanup.policy": ("APPEND", "compact")})
        policy = a.topic_configs(topic)["cleanup.policy"]  # order: see the test below
        assert (sorted(policy.value.split(",")), policy.source) == (["compact", "delete"], TOPIC)
        a.incremental_alter_configs(topic, {"cleanup.policy": ("SUBTRACT", "delete")})
        assert a.topic_configs(topic)["cleanup.policy"] == ConfigValue("compact", TOPIC, False)
        expect_failure(INVALID_CONFIG, a.incremental_alter_configs, topic,
                       {"cleanup.policy": ("SET", "shred")})
        # APPEND on a config that is not a list is refused (INVALID_CONFIG in Kafka).
        expect_failure(INVALID_CONFIG, a.incremental_alter_configs, topic,
                       {"retention.ms": ("APPEND", "5")})
        a.incremental_alter_configs(topic, {"cleanup.policy": ("DELETE", None)})
    # The altered timestamp type applies to new records.
    produce_ok(client, broker.bootstrap, topic, [Msg(b"k", b"v", timestamp=1_000_000_000_000)])
    (r,) = consume(client, broker.bootstrap, topic, {0: 0}, 1)
    assert r.timestamp_type == "LogAppendTime" and r.timestamp > 1_000_000_000_000, r


def test_list_configs_are_described_as_set(broker, topic):
    """Kafka describes a list config in the order it was given (ConfigDef joins the parsed
    list); infrastructure-as-code tools compare the described string with the declared one,
    so a reordered value shows up as a change that never converges."""
    with BY_NAME["confluent"].admin(broker.bootstrap) as a:
        a.create_topic(topic, 1, {"cleanup.policy": "delete,compact"})
        assert a.topic_configs(topic)["cleanup.policy"].value == "delete,compact"


def test_create_partitions(broker, client, topic):
    with client.admin(broker.bootstrap) as a:
        a.create_topic(topic, 1)
        a.create_partitions(topic, 3)
        assert a.partitions(topic) == 3
        expect_failure(INVALID_PARTITIONS, a.create_partitions, topic, 2)
        expect_failure(UNKNOWN_TOPIC_OR_PARTITION, a.create_partitions, topic + "-missing", 2)
    delivered = produce_ok(client, broker.bootstrap, topic,
                           [Msg(b"k", b"p%d" % p, partition=p) for p in range(3)])
    assert [(d.partition, d.offset) for d in delivered] == [(0, 0), (1, 0), (2, 0)]
    records = consume(client, broker.bootstrap, topic, {2: 0}, 1)
    assert [(r.partition, r.value) for r in records] == [(2, b"p2")]


def test_describe_cluster(make_broker, client):
    b = make_broker()
    with client.admin(b.bootstrap) as a:
        first = a.describe_cluster()
    assert first["nodes"] == [(0, "127.0.0.1", b.port)]
    assert first["controller_id"] == 0
    assert len(first["cluster_id"]) == 22, first  # Kafka-style base64 UUID
    # Every client sees the same id, and it survives a restart.
    b.stop()
    b = make_broker(data_dir=b.data_dir)
    for other in CLIENTS:
        with other.admin(b.bootstrap) as a:
            assert a.describe_cluster()["cluster_id"] == first["cluster_id"], other.name


def test_describe_log_dirs(broker, topic):
    """kafka-python is the one Python client with describe_log_dirs."""
    client = BY_NAME["kafka-python"]
    with client.admin(broker.bootstrap) as a:
        a.create_topic(topic, 2)
        produce_ok(client, broker.bootstrap, topic,
                   [Msg(b"k", b"x" * 100, partition=0) for _ in range(20)])
        (result,) = a.a.describe_log_dirs()
    assert result["broker"] == 0
    (log_dir,) = result["log_dirs"]
    assert log_dir["error_code"] == 0, log_dir
    assert log_dir["log_dir"] == str(broker.data_dir.resolve())
    (t,) = [t for t in log_dir["topics"] if t["name"] == topic]
    sizes = {p["partition_index"]: p["partition_size"] for p in t["partitions"]}
    on_disk = {p: logfiles.data_bytes(broker.data_dir / f"{topic}-{p}") for p in range(2)}
    assert sizes == on_disk and on_disk[0] > 2000 and on_disk[1] == 0, (sizes, on_disk)


def test_offset_for_leader_epoch(broker, topic):
    """OffsetForLeaderEpoch (KIP-320), sent through kafka-python's protocol layer: sluice has
    one leader epoch (0) per partition, so its end offset is the log end offset."""
    from kafka.protocol.consumer import OffsetForLeaderEpochRequest

    client = BY_NAME["kafka-python"]
    part = OffsetForLeaderEpochRequest.OffsetForLeaderTopic.OffsetForLeaderPartition
    with client.admin(broker.bootstrap) as admin:
        admin.create_topic(topic, 2)
        produce_ok(client, broker.bootstrap, topic, [Msg(b"k", b"v", partition=0)] * 7)
        a = admin.a

        def ask(name, partition, leader_epoch, current_leader_epoch=-1):
            request = OffsetForLeaderEpochRequest(replica_id=-1, topics=[
                (name, [part(partition=partition, current_leader_epoch=current_leader_epoch,
                             leader_epoch=leader_epoch)])])
            response = a._manager.run(a._manager.send, request)
            (t,) = response.topics
            (p,) = t.partitions
            return p.error_code, p.leader_epoch, p.end_offset

        assert ask(topic, 0, 0) == (0, 0, 7)
        assert ask(topic, 0, 0, current_leader_epoch=0) == (0, 0, 7)
        assert ask(topic, 1, 0) == (0, 0, 0)  # empty partition
        # An epoch newer than any the broker has: UNDEFINED_EPOCH / UNDEFINED_EPOCH_OFFSET.
        assert ask(topic, 0, 3) == (0, -1, -1)
        # The client claims a newer leader epoch than the broker's: UNKNOWN_LEADER_EPOCH (75).
        assert ask(topic, 0, 0, current_leader_epoch=1)[0] == 75
        assert ask(topic + "-missing", 0, 0)[0] == UNKNOWN_TOPIC_OR_PARTITION


def test_broker_defaults_show_through_topic_configs(make_broker, client, topic):
    """A broker-wide default set in the config (here via SLUICE_* env) is what a topic without
    its own value reports, with source STATIC_BROKER_CONFIG; the broker's num_partitions
    applies to auto-created topics."""
    b = make_broker(env={"SLUICE_LOG_RETENTION_MS": "3600000", "SLUICE_NUM_PARTITIONS": "2"})
    produce_ok(client, b.bootstrap, topic, [Msg(b"k", b"v")])  # auto-creates the topic
    with client.admin(b.bootstrap) as a:
        assert a.partitions(topic) == 2
        configs = a.topic_configs(topic)
    assert configs["retention.ms"] == ConfigValue("3600000", "STATIC_BROKER_CONFIG", False)
    assert configs["segment.ms"] == ConfigValue("604800000", DEFAULT, False)


# Topic configs every Apache Kafka (and MSK) broker knows, with their defaults, beyond the
# ones sluice's storage acts on: tools and IaC modules set them routinely
# (min.insync.replicas=2 is the MSK recommendation), so CreateTopics must accept them and
# DescribeConfigs must list them.
KAFKA_COMPAT_TOPIC_CONFIGS = {
    "compression.gzip.level": "-1",
    "compression.lz4.level": "9",
    "compression.type": "producer",
    "compression.zstd.level": "3",
    "file.delete.delay.ms": "60000",
    "follower.replication.throttled.replicas": "",
    "leader.replication.throttled.replicas": "",
    "local.retention.bytes": "-2",
    "local.retention.ms": "-2",
    "max.compaction.lag.ms": "9223372036854775807",
    "min.insync.replicas": "1",
    "preallocate": "false",
    "remote.storage.enable": "false",
    "segment.jitter.ms": "0",
    "unclean.leader.election.enable": "false",
}


@pytest.mark.parametrize("client_name", ["confluent", "kafka-python"])
def test_standard_kafka_topic_configs_are_accepted_and_described(broker, topic, client_name):
    """What IaC modules and tools set on MSK topics is accepted and described back, with the
    defaults Kafka reports for the rest; remote (tiered) storage is refused by name."""
    client = BY_NAME[client_name]
    explicit = {"min.insync.replicas": "2", "compression.type": "producer",
                "unclean.leader.election.enable": "false", "segment.jitter.ms": "60000",
                "file.delete.delay.ms": "1000", "local.retention.ms": "-2",
                "remote.storage.enable": "false",
                "leader.replication.throttled.replicas": "0:1,1:1",
                "compression.zstd.level": "10"}
    with client.admin(broker.bootstrap) as a:
        a.create_topic(topic, 1, explicit)
        got = a.topic_configs(topic)
        refused = expect_failure(INVALID_CONFIG, a.create_topic, topic + ".tiered", 1,
                                 {"remote.storage.enable": "true"})
        for bad in ({"compression.zstd.level": "23"}, {"compression.gzip.level": "0"},
                    {"segment.jitter.ms": "-1"},
                    {"leader.replication.throttled.replicas": "all of them"}):
            expect_failure(INVALID_CONFIG, a.create_topic, topic + ".bad", 1, bad)
        assert not {topic + ".tiered", topic + ".bad"} & a.topics()
    if client_name == "confluent":  # kafka-python does not pass the broker's message on
        assert "tiered" in str(refused), refused
    want = {k: ConfigValue(v, DEFAULT, False) for k, v in KAFKA_COMPAT_TOPIC_CONFIGS.items()}
    want.update({k: ConfigValue(v, TOPIC, False) for k, v in explicit.items()})
    assert {k: got.get(k) for k in want} == want


def test_topic_ids_in_metadata_and_delete_topics(broker, topic):
    """KIP-516 topic ids through kafka-python: Metadata v12 describes a topic by id, and
    DeleteTopics v6 deletes by id; an unknown id is UNKNOWN_TOPIC_ID."""
    import uuid

    client = BY_NAME["kafka-python"]
    with client.admin(broker.bootstrap) as admin:
        a = admin.a
        created = a.create_topics({topic: {"num_partitions": 2, "replication_factor": 1}})
        (t,) = created["topics"]
        topic_id = uuid.UUID(str(t["topic_id"]))
        assert topic_id != uuid.UUID(int=0)
        (by_id,) = a.describe_topics([topic_id])
        assert (by_id["name"], len(by_id["partitions"])) == (topic, 2)
        (by_name,) = a.describe_topics([topic])
        assert uuid.UUID(str(by_name["topic_id"])) == topic_id

        result = a.delete_topics([topic_id])
        assert [(uuid.UUID(str(r["topic_id"])), r["error_code"]) for r in result["topics"]] == [
            (topic_id, 0)]
        assert topic not in a.list_topics()
        result = a.delete_topics([topic_id], raise_errors=False)
        assert [r["error_code"] for r in result["topics"]] == [100]  # UNKNOWN_TOPIC_ID
        # Recreating the name gives a new id.
        created = a.create_topics({topic: {"num_partitions": 1, "replication_factor": 1}})
        assert uuid.UUID(str(created["topics"][0]["topic_id"])) != topic_id
