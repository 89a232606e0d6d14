"""One interface over the real Python Kafka clients the end-to-end tests drive.

Each client (confluent-kafka = librdkafka, kafka-python, aiokafka) gets an adapter with the
same small surface, so a test is written once and parametrised over clients:

    with client.producer(bootstrap, acks=-1, compression="zstd") as p:
        results = p.send(topic, [Msg(b"k", b"v")])      # Delivered or KafkaFailure each
    with client.consumer(bootstrap, reset="earliest") as c:
        c.assign(topic, {0: 0})
        records = c.read(10)                             # Rec each; raises KafkaFailure
    with client.admin(bootstrap) as a:
        a.create_topic(topic, 3, {"max.message.bytes": "10000"})

These tests are about produce, fetch, offsets and admin, so consumers assign partitions
explicitly and never join a group or commit, and producers are not idempotent unless a test
asks for it with `producer(..., idempotent=True)` (kafka-python 3 enables idempotence by
default; the adapters turn it off so the other tests do not depend on it). Errors are
reported as `KafkaFailure(code, name, message)`: `code` is the Kafka protocol error code
when the client exposes it (librdkafka's local errors are negative), `name` is the
client's own name for it, so a failing assertion shows exactly what the user would see.
"""

from __future__ import annotations

import asyncio
import re
import threading
import time
import warnings
from contextlib import contextmanager
from dataclasses import dataclass

CODECS = ("gzip", "snappy", "lz4", "zstd")
CREATE_TIME, LOG_APPEND_TIME = "CreateTime", "LogAppendTime"
DEFAULT_TIMEOUT = 30.0


@dataclass(frozen=True)
class Msg:
    """A record to produce. `timestamp` None lets the client stamp it; `partition` None
    lets the client's partitioner choose (by key)."""
    key: bytes | None
    value: bytes | None
    headers: tuple[tuple[str, bytes | None], ...] = ()
    timestamp: int | None = None
    partition: int | None = None


@dataclass(frozen=True)
class Delivered:
    """A producer acknowledgement: where the record went. `timestamp` is what the client
    reports after the ack (the broker's LogAppendTime on such topics)."""
    partition: int
    offset: int
    timestamp: int | None


@dataclass(frozen=True)
class Rec:
    """A consumed record, normalised across clients."""
    partition: int
    offset: int
    key: bytes | None
    value: bytes | None
    headers: tuple[tuple[str, bytes | None], ...]
    timestamp: int
    timestamp_type: str


@dataclass(frozen=True)
class ConfigValue:
    """One entry of DescribeConfigs for a topic."""
    value: str | None
    source: str  # Kafka's ConfigSource name: DEFAULT_CONFIG, DYNAMIC_TOPIC_CONFIG, ...
    read_only: bool


class KafkaFailure(Exception):
    """An error a client reported."""

    def __init__(self, code: int | None, name: str, message: str = ""):
        super().__init__(f"{name} (code {code}): {message}")
        self.code, self.name, self.message = code, name, message


# Kafka protocol error codes the tests check.
OFFSET_OUT_OF_RANGE = 1
UNKNOWN_TOPIC_OR_PARTITION = 3
MESSAGE_TOO_LARGE = 10
INVALID_TIMESTAMP = 32
TOPIC_ALREADY_EXISTS = 36
INVALID_PARTITIONS = 37
INVALID_REPLICATION_FACTOR = 38
INVALID_CONFIG = 40
INVALID_RECORD = 87


def _from_python_exc(e: BaseException) -> KafkaFailure:
    """kafka-python and aiokafka raise one exception class per Kafka error code."""
    if isinstance(e, KafkaFailure):
        return e
    return KafkaFailure(getattr(e, "errno", None), type(e).__name__, str(e))


class _Loop:
    """An asyncio loop on its own thread, so aiokafka can sit behind the same blocking
    interface as the other clients."""

    def __init__(self):
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, daemon=True,
                                       name="aiokafka-loop")
        self.thread.start()

    def run(self, coro, timeout: float = DEFAULT_TIMEOUT * 2):
        return asyncio.run_coroutine_threadsafe(coro, self.loop).result(timeout)

    def close(self):
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(10)
        self.loop.close()


# ----------------------------------------------------------------------------------------
# confluent-kafka (librdkafka)
# ----------------------------------------------------------------------------------------

class ConfluentClient:
    name = "confluent"
    null_header_values = True

    @staticmethod
    def _failure(err) -> KafkaFailure:
        return KafkaFailure(err.code(), err.name(), err.str())

    def codec_unavailable(self, codec: str) -> str | None:
        import confluent_kafka
        try:
            confluent_kafka.Producer({"compression.type": codec}).flush(0)
        except confluent_kafka.KafkaException as e:
            return f"librdkafka {confluent_kafka.libversion()[0]} lacks {codec}: {e}"
        return None

    @contextmanager
    def producer(self, bootstrap: str, acks: int = -1, compression: str | None = None,
                 linger_ms: int = 20, timeout_ms: int = 30000, idempotent: bool = False,
                 **extra):
        from confluent_kafka import Producer
        conf = {"bootstrap.servers": bootstrap, "acks": str(acks),
                "compression.type": compression or "none", "linger.ms": linger_ms,
                "enable.idempotence": idempotent, "message.timeout.ms": timeout_ms,
                "request.timeout.ms": min(timeout_ms, 30000), **extra}
        p = Producer(conf)
        try:
            yield _ConfluentProducer(p)
        finally:
            p.purge()  # anything still unacknowledged was already reported as failed
            p.close()

    @contextmanager
    def consumer(self, bootstrap: str, reset: str = "earliest", **extra):
        from confluent_kafka import Consumer
        # librdkafka's name for "no reset, report the error" is "error".
        conf = {"bootstrap.servers": bootstrap, "group.id": "sluice-e2e-unused",
                "enable.auto.commit": False, "enable.auto.offset.store": False,
                "auto.offset.reset": "error" if reset == "none" else reset,
                "fetch.wait.max.ms": 100, **extra}
        c = _ConfluentConsumer(Consumer(conf))
        try:
            yield c
        finally:
            c.c.close()

    @contextmanager
    def admin(self, bootstrap: str):
        from confluent_kafka.admin import AdminClient
        yield _ConfluentAdmin(AdminClient({"bootstrap.servers": bootstrap}))


def confluent_produce_kwargs(m: Msg) -> dict:
    """The optional arguments of confluent-kafka's `produce` for a message: partition,
    timestamp and headers only when the message sets them."""
    kwargs = {}
    if m.partition is not None:
        kwargs["partition"] = m.partition
    if m.timestamp is not None:
        kwargs["timestamp"] = m.timestamp
    if m.headers:
        kwargs["headers"] = list(m.headers)
    return kwargs


class _ConfluentProducer:
    def __init__(self, p):
        self.p = p

    def send(self, topic: str, msgs: list[Msg], timeout: float = DEFAULT_TIMEOUT):
        results: list = [None] * len(msgs)

        def on_delivery(i, err, m):
            if err is not None:
                results[i] = ConfluentClient._failure(err)
            else:
                results[i] = Delivered(m.partition(), m.offset(), m.timestamp()[1])

        for i, m in enumerate(msgs):
            kwargs = confluent_produce_kwargs(m)
            while True:
                try:
                    self.p.produce(topic, value=m.value, key=m.key,
                                   on_delivery=lambda err, msg, i=i: on_delivery(i, err, msg),
                                   **kwargs)
                    break
                except BufferError:  # local queue full: serve callbacks, then retry
                    self.p.poll(0.05)
        left = self.p.flush(timeout)
        if left:
            raise KafkaFailure(None, "timeout",
                               f"{left} messages still unacknowledged after {timeout}s")
        return results


class _ConfluentConsumer:
    def __init__(self, c):
        self.c = c

    def assign(self, topic: str, starts: dict[int, int | str]):
        from confluent_kafka import OFFSET_BEGINNING, OFFSET_END, TopicPartition
        special = {"earliest": OFFSET_BEGINNING, "latest": OFFSET_END}
        self.c.assign([TopicPartition(topic, p, special.get(o, o)) for p, o in starts.items()])

    def read(self, count: int, timeout: float = DEFAULT_TIMEOUT) -> list[Rec]:
        from confluent_kafka import TIMESTAMP_LOG_APPEND_TIME
        out: list[Rec] = []
        deadline = time.time() + timeout
        while len(out) < count and time.time() < deadline:
            m = self.c.poll(0.2)
            if m is None:
                continue
            if m.error():
                raise ConfluentClient._failure(m.error())
            ts_type, ts = m.timestamp()
            kind = LOG_APPEND_TIME if ts_type == TIMESTAMP_LOG_APPEND_TIME else CREATE_TIME
            out.append(Rec(m.partition(), m.offset(), m.key(), m.value(),
                           tuple(m.headers() or ()), ts, kind))
        return out

    def offsets_for_times(self, topic: str, times: dict[int, int]) -> dict[int, int | None]:
        from confluent_kafka import TopicPartition
        found = self.c.offsets_for_times([TopicPartition(topic, p, t) for p, t in times.items()],
                                         timeout=DEFAULT_TIMEOUT)
        for tp in found:
            if tp.error:
                raise ConfluentClient._failure(tp.error)
        return {tp.partition: (tp.offset if tp.offset >= 0 else None) for tp in found}

    def watermarks(self, topic: str, partition: int) -> tuple[int, int]:
        from confluent_kafka import TopicPartition
        return self.c.get_watermark_offsets(TopicPartition(topic, partition),
                                            timeout=DEFAULT_TIMEOUT, cached=False)


class _ConfluentAdmin:
    def __init__(self, a):
        self.a = a

    @staticmethod
    def _one(futures: dict):
        (f,) = futures.values()
        try:
            return f.result(DEFAULT_TIMEOUT)
        except Exception as e:  # KafkaException wrapping a KafkaError
            err = e.args[0] if e.args else None
            if hasattr(err, "code"):
                raise ConfluentClient._failure(err) from None
            raise

    def create_topic(self, topic: str, partitions: int = 1, configs: dict | None = None,
                     replication_factor: int = 1, validate_only: bool = False):
        from confluent_kafka.admin import NewTopic
        self._one(self.a.create_topics(
            [NewTopic(topic, partitions, replication_factor, config=configs or {})],
            operation_timeout=10, validate_only=validate_only))

    def delete_topic(self, topic: str):
        self._one(self.a.delete_topics([topic], operation_timeout=10))

    def create_partitions(self, topic: str, total: int):
        from confluent_kafka.admin import NewPartitions
        self._one(self.a.create_partitions([NewPartitions(topic, total)]))

    def topic_configs(self, topic: str) -> dict[str, ConfigValue]:
        from confluent_kafka.admin import ConfigResource, ResourceType
        entries = self._one(self.a.describe_configs([ConfigResource(ResourceType.TOPIC, topic)]))
        return {name: ConfigValue(e.value, e.source.name if hasattr(e.source, "name")
                                  else _source_name(e.source), e.is_read_only)
                for name, e in entries.items()}

    def alter_configs(self, topic: str, configs: dict[str, str]):
        """Non-incremental AlterConfigs: every config not given returns to its default."""
        from confluent_kafka.admin import ConfigResource, ResourceType
        with warnings.catch_warnings():  # deprecated in favour of incremental; tested on purpose
            warnings.simplefilter("ignore", DeprecationWarning)
            futures = self.a.alter_configs([ConfigResource(ResourceType.TOPIC, topic,
                                                           set_config=configs)])
        self._one(futures)

    def incremental_alter_configs(self, topic: str, ops: dict[str, tuple[str, str | None]]):
        """ops: {key: (operation, value)}, operation SET, DELETE, APPEND or SUBTRACT."""
        from confluent_kafka.admin import (AlterConfigOpType, ConfigEntry, ConfigResource,
                                           ResourceType)
        entries = [ConfigEntry(k, v, incremental_operation=AlterConfigOpType[op])
                   for k, (op, v) in ops.items()]
        self._one(self.a.incremental_alter_configs(
            [ConfigResource(ResourceType.TOPIC, topic, incremental_configs=entries)]))

    def delete_records(self, topic: str, before: dict[int, int]) -> dict[int, int]:
        from confluent_kafka import TopicPartition
        futures = self.a.delete_records([TopicPartition(topic, p, o) for p, o in before.items()],
                                        operation_timeout=10)
        out = {}
        for tp, f in futures.items():
            out[tp.partition] = self._one({tp: f}).low_watermark
        return out

    def list_offsets(self, topic: str, specs: dict[int, str | int]) -> dict[int, tuple[int, int]]:
        """ListOffsets through the admin API: spec "earliest", "latest", "max_timestamp" or a
        timestamp; returns {partition: (offset, timestamp)}."""
        from confluent_kafka import TopicPartition
        from confluent_kafka.admin import OffsetSpec
        named = {"earliest": OffsetSpec.earliest(), "latest": OffsetSpec.latest(),
                 "max_timestamp": OffsetSpec.max_timestamp()}
        wanted = {TopicPartition(topic, p): named[s] if isinstance(s, str)
                  else OffsetSpec.for_timestamp(s) for p, s in specs.items()}
        futures = self.a.list_offsets(wanted, request_timeout=DEFAULT_TIMEOUT)
        out = {}
        for tp, f in futures.items():
            info = self._one({tp: f})
            out[tp.partition] = (info.offset, info.timestamp)
        return out

    def partitions(self, topic: str) -> int:
        """Partition count from Metadata; raises KafkaFailure for a topic-level error."""
        md = self.a.list_topics(topic=topic, timeout=DEFAULT_TIMEOUT)
        t = md.topics[topic]
        if t.error is not None:
            raise ConfluentClient._failure(t.error)
        return len(t.partitions)

    def topics(self) -> set[str]:
        return set(self.a.list_topics(timeout=DEFAULT_TIMEOUT).topics)

    def describe_cluster(self) -> dict:
        d = self.a.describe_cluster(request_timeout=DEFAULT_TIMEOUT).result(DEFAULT_TIMEOUT)
        return {"cluster_id": d.cluster_id,
                "controller_id": d.controller.id if d.controller else None,
                "nodes": [(n.id, n.host, n.port) for n in d.nodes]}


def _source_name(code: int) -> str:
    return {0: "UNKNOWN", 1: "DYNAMIC_TOPIC_CONFIG", 2: "DYNAMIC_BROKER_CONFIG",
            3: "DYNAMIC_DEFAULT_BROKER_CONFIG", 4: "STATIC_BROKER_CONFIG", 5: "DEFAULT_CONFIG",
            6: "DYNAMIC_BROKER_LOGGER_CONFIG", 7: "CLIENT_METRICS_CONFIG",
            8: "GROUP_CONFIG"}.get(code, f"source {code}")


# ----------------------------------------------------------------------------------------
# kafka-python
# ----------------------------------------------------------------------------------------

class KafkaPythonClient:
    name = "kafka-python"
    # KafkaProducer.send: "All headers items must be (str, bytes) tuples" (Kafka allows null).
    null_header_values = False

    def codec_unavailable(self, codec: str) -> str | None:
        from kafka import codec as c
        has = {"gzip": c.has_gzip, "snappy": c.has_snappy, "lz4": c.has_lz4, "zstd": c.has_zstd}
        return None if has[codec]() else f"kafka-python has no {codec} codec installed"

    @contextmanager
    def producer(self, bootstrap: str, acks: int = -1, compression: str | None = None,
                 linger_ms: int = 20, timeout_ms: int = 30000, idempotent: bool = False,
                 **extra):
        from kafka import KafkaProducer
        # kafka-python 3 enables idempotence by default (KIP-679); off unless asked for.
        p = KafkaProducer(bootstrap_servers=bootstrap, acks="all" if acks == -1 else acks,
                          compression_type=compression, linger_ms=linger_ms,
                          enable_idempotence=idempotent, delivery_timeout_ms=timeout_ms,
                          request_timeout_ms=max(1000, min(timeout_ms, 30000) - linger_ms - 1),
                          max_block_ms=timeout_ms,
                          **extra)
        try:
            yield _PythonProducer(p)
        finally:
            p.close(timeout=5)

    @contextmanager
    def consumer(self, bootstrap: str, reset: str = "earliest", **extra):
        from kafka import KafkaConsumer
        c = KafkaConsumer(bootstrap_servers=bootstrap, group_id=None, enable_auto_commit=False,
                          auto_offset_reset=reset, fetch_max_wait_ms=100, **extra)
        try:
            yield _PythonConsumer(c)
        finally:
            c.close()

    @contextmanager
    def admin(self, bootstrap: str):
        from kafka.admin import KafkaAdminClient
        a = KafkaAdminClient(bootstrap_servers=bootstrap, request_timeout_ms=30000)
        try:
            yield _PythonAdmin(a)
        finally:
            a.close()


class _PythonProducer:
    def __init__(self, p):
        self.p = p

    def send(self, topic: str, msgs: list[Msg], timeout: float = DEFAULT_TIMEOUT):
        futures = []
        for m in msgs:
            try:
                futures.append(self.p.send(topic, value=m.value, key=m.key,
                                           headers=list(m.headers) or None,
                                           partition=m.partition, timestamp_ms=m.timestamp))
            except Exception as e:
                futures.append(_from_python_exc(e))
        self.p.flush(timeout)
        results = []
        for f in futures:
            if isinstance(f, KafkaFailure):
                results.append(f)
                continue
            try:
                md = f.get(timeout)
                results.append(Delivered(md.partition, md.offset, md.timestamp))
            except Exception as e:
                results.append(_from_python_exc(e))
        return results


class _PythonConsumer:
    def __init__(self, c):
        self.c = c

    def assign(self, topic: str, starts: dict[int, int | str]):
        from kafka import TopicPartition
        tps = {p: TopicPartition(topic, p) for p in starts}
        self.c.assign(list(tps.values()))
        for p, o in starts.items():
            if o == "earliest":
                self.c.seek_to_beginning(tps[p])
            elif o == "latest":
                self.c.seek_to_end(tps[p])
            else:
                self.c.seek(tps[p], o)

    def read(self, count: int, timeout: float = DEFAULT_TIMEOUT) -> list[Rec]:
        out: list[Rec] = []
        deadline = time.time() + timeout
        while len(out) < count and time.time() < deadline:
            try:
                batches = self.c.poll(timeout_ms=200)
            except Exception as e:
                raise _from_python_exc(e) from e
            for records in batches.values():
                out += [_python_rec(r) for r in records]
        return out

    def offsets_for_times(self, topic: str, times: dict[int, int]) -> dict[int, int | None]:
        from kafka import TopicPartition
        found = self.c.offsets_for_times({TopicPartition(topic, p): t for p, t in times.items()})
        return {tp.partition: (v.offset if v is not None else None) for tp, v in found.items()}

    def watermarks(self, topic: str, partition: int) -> tuple[int, int]:
        from kafka import TopicPartition
        tp = TopicPartition(topic, partition)
        return self.c.beginning_offsets([tp])[tp], self.c.end_offsets([tp])[tp]


def _python_rec(r) -> Rec:
    """kafka-python and aiokafka share the ConsumerRecord shape."""
    return Rec(r.partition, r.offset, r.key, r.value, tuple(tuple(h) for h in r.headers or ()),
               r.timestamp, LOG_APPEND_TIME if r.timestamp_type == 1 else CREATE_TIME)


class _PythonAdmin:
    def __init__(self, a):
        self.a = a

    def _call(self, fn, *args, **kwargs):
        try:
            return fn(*args, **kwargs)
        except Exception as e:
            raise _from_python_exc(e) from e

    def create_topic(self, topic: str, partitions: int = 1, configs: dict | None = None,
                     replication_factor: int = 1, validate_only: bool = False):
        self._call(self.a.create_topics, {topic: {"num_partitions": partitions,
                                                  "replication_factor": replication_factor,
                                                  "configs": configs or {}}},
                   validate_only=validate_only)

    def delete_topic(self, topic: str):
        self._call(self.a.delete_topics, [topic])

    def create_partitions(self, topic: str, total: int):
        self._call(self.a.create_partitions, {topic: total})

    def topic_configs(self, topic: str) -> dict[str, ConfigValue]:
        import kafka.errors as Errors
        from kafka.admin import ConfigResource, ConfigResourceType
        # KafkaAdminClient.describe_configs drops each resource's error code (a missing topic
        # comes back as {}), so send the request through its connection manager and check.
        resources = [ConfigResource(ConfigResourceType.TOPIC, topic)]
        request = self.a._describe_configs_request(resources)
        response = self._call(self.a._manager.run, self.a._manager.send, request)
        for result in response.results:
            if result.error_code:
                err = Errors.for_code(result.error_code)
                raise KafkaFailure(result.error_code, err.__name__, result.error_message or "")
        res = self.a._describe_configs_process_responses([response], config_filter="all")
        return {name: ConfigValue(c["value"], c["config_source"], c["read_only"])
                for name, c in res["topic"][topic].items()}

    def _alter(self, topic: str, configs: dict, incremental: bool):
        from kafka.admin import ConfigResource, ConfigResourceType
        res = self._call(self.a.alter_configs,
                         [ConfigResource(ConfigResourceType.TOPIC, topic, configs=configs)],
                         incremental=incremental, raise_on_unknown=False)  # the broker judges
        outcome = str(res["topic"][topic])  # "OK" or "[Error 40] InvalidConfigurationError: ..."
        if outcome != "OK":
            m = re.match(r"\[Error (-?\d+)\] (\w+)", outcome)
            raise KafkaFailure(int(m.group(1)) if m else None, m.group(2) if m else "?", outcome)

    def alter_configs(self, topic: str, configs: dict[str, str]):
        self._alter(topic, configs, incremental=False)

    def incremental_alter_configs(self, topic: str, ops: dict[str, tuple[str, str | None]]):
        from kafka.admin import AlterConfigOp
        self._alter(topic, {k: (AlterConfigOp[op], v) for k, (op, v) in ops.items()},
                    incremental=True)

    def delete_records(self, topic: str, before: dict[int, int]) -> dict[int, int]:
        from kafka import TopicPartition
        res = self._call(self.a.delete_records,
                         {TopicPartition(topic, p): o for p, o in before.items()})
        out = {}
        for tp, md in res.items():
            if md.get("error_code", 0):
                raise KafkaFailure(md["error_code"], "delete_records", str(md))
            out[tp.partition] = md["low_watermark"]
        return out

    def list_offsets(self, topic: str, specs: dict[int, str | int]) -> dict[int, tuple[int, int]]:
        from kafka import TopicPartition
        from kafka.admin import OffsetSpec
        named = {"earliest": OffsetSpec.EARLIEST, "latest": OffsetSpec.LATEST,
                 "max_timestamp": OffsetSpec.MAX_TIMESTAMP}
        res = self._call(self.a.list_partition_offsets,
                         {TopicPartition(topic, p): named[s] if isinstance(s, str) else s
                          for p, s in specs.items()})
        return {tp.partition: (v.offset, v.timestamp) for tp, v in res.items()}

    def partitions(self, topic: str) -> int:
        import kafka.errors as Errors
        (t,) = self._call(self.a.describe_topics, [topic])
        if t["error_code"]:
            err = Errors.for_code(t["error_code"])
            raise KafkaFailure(t["error_code"], err.__name__, str(t))
        return len(t["partitions"])

    def topics(self) -> set[str]:
        return set(self._call(self.a.list_topics))

    def describe_cluster(self) -> dict:
        d = self._call(self.a.describe_cluster)
        return {"cluster_id": d["cluster_id"], "controller_id": d["controller_id"],
                "nodes": [(b["broker_id"], b["host"], b["port"]) for b in d["brokers"]]}


# ----------------------------------------------------------------------------------------
# aiokafka
# ----------------------------------------------------------------------------------------

class AioKafkaClient:
    name = "aiokafka"
    null_header_values = True

    def codec_unavailable(self, codec: str) -> str | None:
        from aiokafka import codec as c
        has = {"gzip": c.has_gzip, "snappy": c.has_snappy, "lz4": c.has_lz4, "zstd": c.has_zstd}
        return None if has[codec]() else f"aiokafka has no {codec} codec (needs cramjam)"

    @contextmanager
    def producer(self, bootstrap: str, acks: int = -1, compression: str | None = None,
                 linger_ms: int = 20, timeout_ms: int = 30000, idempotent: bool = False,
                 **extra):
        from aiokafka import AIOKafkaProducer
        loop = _Loop()

        async def start():
            p = AIOKafkaProducer(bootstrap_servers=bootstrap, acks="all" if acks == -1 else acks,
                                 compression_type=compression, linger_ms=linger_ms,
                                 enable_idempotence=idempotent,
                                 request_timeout_ms=min(timeout_ms, 30000), **extra)
            await p.start()
            return p

        p = loop.run(start())
        try:
            yield _AioProducer(p, loop)
        finally:
            loop.run(p.stop())
            loop.close()

    @contextmanager
    def consumer(self, bootstrap: str, reset: str = "earliest", **extra):
        from aiokafka import AIOKafkaConsumer
        loop = _Loop()

        async def start():
            c = AIOKafkaConsumer(bootstrap_servers=bootstrap, group_id=None,
                                 enable_auto_commit=False, auto_offset_reset=reset,
                                 fetch_max_wait_ms=100, **extra)
            await c.start()
            return c

        c = loop.run(start())
        try:
            yield _AioConsumer(c, loop)
        finally:
            loop.run(c.stop())
            loop.close()

    @contextmanager
    def admin(self, bootstrap: str):
        from aiokafka.admin import AIOKafkaAdminClient
        loop = _Loop()

        async def start():
            a = AIOKafkaAdminClient(bootstrap_servers=bootstrap, request_timeout_ms=30000)
            await a.start()
            return a

        a = loop.run(start())
        try:
            yield _AioAdmin(a, loop)
        finally:
            loop.run(a.close())
            loop.close()


class _AioProducer:
    def __init__(self, p, loop: _Loop):
        self.p, self.loop = p, loop

    def send(self, topic: str, msgs: list[Msg], timeout: float = DEFAULT_TIMEOUT):
        async def go():
            futures = []
            for m in msgs:
                try:
                    futures.append(await self.p.send(
                        topic, value=m.value, key=m.key, partition=m.partition,
                        timestamp_ms=m.timestamp, headers=list(m.headers) or None))
                except Exception as e:
                    futures.append(_from_python_exc(e))
            results = []
            for f in futures:
                if isinstance(f, KafkaFailure):
                    results.append(f)
                    continue
                try:
                    md = await asyncio.wait_for(f, timeout)
                    # acks=0: aiokafka resolves the future with None (no response, no offset).
                    results.append(Delivered(md.partition, md.offset, md.timestamp) if md
                                   else Delivered(-1, -1, None))
                except Exception as e:
                    results.append(_from_python_exc(e))
            return results
        return self.loop.run(go(), timeout * 2)


class _AioConsumer:
    def __init__(self, c, loop: _Loop):
        self.c, self.loop = c, loop

    def assign(self, topic: str, starts: dict[int, int | str]):
        from aiokafka import TopicPartition
        tps = {p: TopicPartition(topic, p) for p in starts}

        async def seek():
            self.c.assign(list(tps.values()))
            for p, o in starts.items():
                if o == "earliest":
                    await self.c.seek_to_beginning(tps[p])
                elif o == "latest":
                    await self.c.seek_to_end(tps[p])
                else:
                    self.c.seek(tps[p], o)
        self.loop.run(seek())

    def read(self, count: int, timeout: float = DEFAULT_TIMEOUT) -> list[Rec]:
        async def go():
            out: list[Rec] = []
            deadline = time.time() + timeout
            while len(out) < count and time.time() < deadline:
                try:
                    batches = await self.c.getmany(timeout_ms=200)
                except Exception as e:
                    raise _from_python_exc(e) from e
                for records in batches.values():
                    out += [_python_rec(r) for r in records]
            return out
        return self.loop.run(go(), timeout * 2)

    def offsets_for_times(self, topic: str, times: dict[int, int]) -> dict[int, int | None]:
        from aiokafka import TopicPartition
        found = self.loop.run(self.c.offsets_for_times(
            {TopicPartition(topic, p): t for p, t in times.items()}))
        return {tp.partition: (v.offset if v is not None else None) for tp, v in found.items()}

    def watermarks(self, topic: str, partition: int) -> tuple[int, int]:
        from aiokafka import TopicPartition
        tp = TopicPartition(topic, partition)
        low = self.loop.run(self.c.beginning_offsets([tp]))[tp]
        high = self.loop.run(self.c.end_offsets([tp]))[tp]
        return low, high


class _AioAdmin:
    def __init__(self, a, loop: _Loop):
        self.a, self.loop = a, loop

    def _call(self, coro):
        try:
            return self.loop.run(coro)
        except Exception as e:
            raise _from_python_exc(e) from e

    @staticmethod
    def _check(code: int, what: str):
        if code:
            from aiokafka.errors import for_code
            raise KafkaFailure(code, for_code(code).__name__, what)

    def create_topic(self, topic: str, partitions: int = 1, configs: dict | None = None,
                     replication_factor: int = 1, validate_only: bool = False):
        from aiokafka.admin import NewTopic
        resp = self._call(self.a.create_topics(
            [NewTopic(topic, partitions, replication_factor, topic_configs=configs or {})],
            validate_only=validate_only))
        for t in resp.topic_errors:
            self._check(t[1], f"create {t[0]}: {t[2] if len(t) > 2 else ''}")

    def delete_topic(self, topic: str):
        resp = self._call(self.a.delete_topics([topic]))
        for name, code, *_ in resp.topic_error_codes:
            self._check(code, f"delete {name}")

    def create_partitions(self, topic: str, total: int):
        from aiokafka.admin import NewPartitions
        self._call(self.a.create_partitions({topic: NewPartitions(total)}))

    def topic_configs(self, topic: str) -> dict[str, ConfigValue]:
        from aiokafka.admin.config_resource import ConfigResource, ConfigResourceType
        (resp,) = self._call(self.a.describe_configs(
            [ConfigResource(ConfigResourceType.TOPIC, topic)]))
        obj = resp.to_object()
        (res,) = obj["resources"]
        self._check(res["error_code"], f"describe configs {topic}: {res['error_message']}")
        out = {}
        for c in res["config_entries"]:
            if "config_source" in c:
                source = _source_name(c["config_source"])
            else:  # DescribeConfigs v0 has is_default instead of a source
                source = "DEFAULT_CONFIG" if c["is_default"] else "DYNAMIC_TOPIC_CONFIG"
            out[c["config_names"]] = ConfigValue(c["config_value"], source, c["read_only"])
        return out

    def alter_configs(self, topic: str, configs: dict[str, str]):
        from aiokafka.admin.config_resource import ConfigResource, ConfigResourceType
        responses = self._call(self.a.alter_configs(
            [ConfigResource(ConfigResourceType.TOPIC, topic, configs=configs)]))
        for resp in responses:
            for code, msg, _type, name in resp.resources:
                self._check(code, f"alter configs {name}: {msg}")

    def incremental_alter_configs(self, topic: str, ops: dict[str, tuple[str, str | None]]):
        raise NotImplementedError("aiokafka's admin client has no IncrementalAlterConfigs")

    def delete_records(self, topic: str, before: dict[int, int]) -> dict[int, int]:
        from aiokafka import TopicPartition
        from aiokafka.admin import RecordsToDelete
        res = self._call(self.a.delete_records(
            {TopicPartition(topic, p): RecordsToDelete(o) for p, o in before.items()}))
        return {tp.partition: low for tp, low in res.items()}

    def list_offsets(self, topic: str, specs: dict[int, str | int]):
        raise NotImplementedError("aiokafka's AIOKafkaAdminClient has no list_offsets")

    def partitions(self, topic: str) -> int:
        (t,) = self._call(self.a.describe_topics([topic]))
        self._check(t["error_code"], f"metadata {topic}")
        return len(t["partitions"])

    def topics(self) -> set[str]:
        return set(self._call(self.a.list_topics()))

    def describe_cluster(self) -> dict:
        d = self._call(self.a.describe_cluster())
        return {"cluster_id": d.get("cluster_id"), "controller_id": d.get("controller_id"),
                "nodes": [(b["node_id"], b["host"], b["port"]) for b in d["brokers"]]}


CLIENTS = [ConfluentClient(), KafkaPythonClient(), AioKafkaClient()]
BY_NAME = {c.name: c for c in CLIENTS}


def produce_ok(client, bootstrap: str, topic: str, msgs: list[Msg], **kw) -> list[Delivered]:
    """Produces and asserts every record was acknowledged."""
    with client.producer(bootstrap, **kw) as p:
        results = p.send(topic, msgs)
    failed = [(i, r) for i, r in enumerate(results) if not isinstance(r, Delivered)]
    assert not failed, f"{client.name} could not produce to {topic}: {failed[:5]}"
    return results


def consume(client, bootstrap: str, topic: str, starts: dict[int, int | str], count: int,
            reset: str = "earliest", timeout: float = DEFAULT_TIMEOUT) -> list[Rec]:
    """Reads `count` records from the given start offsets with a fresh consumer."""
    with client.consumer(bootstrap, reset=reset) as c:
        c.assign(topic, starts)
        return c.read(count, timeout)


def now_ms() -> int:
    return int(time.time() * 1000)


FIND_COORDINATOR = 10


def broker_api_versions(port: int) -> dict[int, tuple[int, int]]:
    """What the broker advertises in ApiVersions v0: {api_key: (min, max)}."""
    from kwire import Conn, Reader, request
    c = Conn(port)
    try:
        c.send(request(18, 0, b""))
        r = Reader(c.recv_frame())
    finally:
        c.close()
    r.take(">i")  # correlation id
    assert r.take(">h") == 0
    return {key: (lo, hi) for key, lo, hi in (r.take(">hhh") for _ in range(r.take(">i")))}


def librdkafka_compresses_lz4(port: int) -> bool:
    """librdkafka enables its LZ4 feature only when the broker advertises FindCoordinator
    v0 (rdkafka_feature.c: LZ4 "depends" on FindCoordinator 0..0, a 0.8.2-era proxy);
    otherwise it logs "Broker does not support compression type lz4: not compressing
    batch" and sends the batch uncompressed."""
    lo, _hi = broker_api_versions(port).get(FIND_COORDINATOR, (1, 0))
    return lo == 0
