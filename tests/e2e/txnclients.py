"""Transactional producers and isolation-level reads over the three Python Kafka clients.

clients.py covers plain produce and fetch; this adds what transaction tests need, with the
same shapes (Msg in, Delivered and Rec out, KafkaFailure for errors):

    with txn_producer("confluent", bootstrap, "tx-1") as p:   # init_transactions() done
        p.begin()
        p.send(topic, [Msg(b"k", b"v", partition=0)])          # acked or TxnFailure
        p.commit()                                              # or p.abort()
    recs = read("kafka-python", bootstrap, topic, {0: 0}, 10, committed=True)

A `TxnFailure` says whether the client considers the error fatal (the producer must be
closed, e.g. when it was fenced) or abortable (abort and carry on), as librdkafka's
KafkaError does; kafka-python and aiokafka only give an exception class, recorded in `name`.
"""

from __future__ import annotations

import asyncio
import time
import warnings
from contextlib import contextmanager

from clients import (BY_NAME, DEFAULT_TIMEOUT, Delivered, KafkaFailure, Msg, Rec, _Loop,
                     confluent_produce_kwargs)
from groupclients import wait_for  # noqa: F401 (re-exported for the tests)

CLIENT_NAMES = ("confluent", "kafka-python", "aiokafka")


class TxnFailure(KafkaFailure):
    def __init__(self, code, name: str, message: str = "", fatal: bool = False,
                 abortable: bool = False):
        super().__init__(code, name, message)
        self.fatal, self.abortable = fatal, abortable

    def __repr__(self):
        return f"TxnFailure({self.name}, code={self.code}, fatal={self.fatal}, " \
               f"abortable={self.abortable}: {self.message})"


def _confluent_failure(err) -> TxnFailure:
    return TxnFailure(err.code(), err.name(), err.str(), fatal=err.fatal(),
                      abortable=err.txn_requires_abort())


def _python_failure(e: BaseException) -> TxnFailure:
    if isinstance(e, TxnFailure):
        return e
    name = type(e).__name__
    # kafka-python reports later calls on a fenced producer as a plain KafkaError "Cannot
    # execute transactional method because we are in an error state: [Error 90]
    # ProducerFencedError", so the message counts too.
    return TxnFailure(getattr(e, "errno", None), name, str(e),
                      fatal="Fenced" in name or "Epoch" in name or "ProducerFenced" in str(e))


class _ConfluentTxn:
    name = "confluent"

    def __init__(self, bootstrap: str, transactional_id: str, timeout_ms: int | None, extra):
        from confluent_kafka import Producer
        conf = {"bootstrap.servers": bootstrap, "transactional.id": transactional_id,
                "linger.ms": 5}
        if timeout_ms is not None:
            conf["transaction.timeout.ms"] = timeout_ms
        self.p = Producer({**conf, **extra})

    def _do(self, fn, *args):
        from confluent_kafka import KafkaException
        try:
            return fn(*args)
        except KafkaException as e:
            raise _confluent_failure(e.args[0]) from None
        except SystemError as e:
            # confluent-kafka 2.16: once the producer has a fatal error (e.g. fenced),
            # flush() raises KafkaException while it is still serving delivery callbacks,
            # and the next callback's KafkaError.code() then fails with SystemError
            # ("returned a result with an exception set"); the KafkaException is its cause.
            cause = e.__cause__ or e.__context__
            if isinstance(cause, KafkaException):
                raise _confluent_failure(cause.args[0]) from None
            raise

    def init(self, timeout: float = DEFAULT_TIMEOUT):
        self._do(self.p.init_transactions, timeout)

    def begin(self):
        self._do(self.p.begin_transaction)

    def send(self, topic: str, msgs: list[Msg], timeout: float = DEFAULT_TIMEOUT):
        results: list = [None] * len(msgs)

        def on_delivery(i, err, m):
            results[i] = _confluent_failure(err) if err is not None else \
                Delivered(m.partition(), m.offset(), m.timestamp()[1])

        for i, m in enumerate(msgs):
            kwargs = confluent_produce_kwargs(m)
            self._do(lambda: self.p.produce(
                topic, value=m.value, key=m.key,
                on_delivery=lambda err, msg, i=i: on_delivery(i, err, msg), **kwargs))
        left = self._do(self.p.flush, timeout)
        return _checked(results, left)

    def send_offsets(self, offsets: dict[tuple[str, int], int], group_metadata,
                     timeout: float = DEFAULT_TIMEOUT):
        from confluent_kafka import TopicPartition
        self._do(self.p.send_offsets_to_transaction,
                 [TopicPartition(t, p, o) for (t, p), o in offsets.items()], group_metadata,
                 timeout)

    def commit(self, timeout: float = DEFAULT_TIMEOUT):
        self._do(self.p.commit_transaction, timeout)

    def abort(self, timeout: float = DEFAULT_TIMEOUT):
        self._do(self.p.abort_transaction, timeout)

    def close(self):
        # confluent-kafka's Producer.close() aborts an open transaction first, and raises
        # (or warns) when that fails, as it does for a fenced producer: nothing to report.
        from confluent_kafka import KafkaException
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", RuntimeWarning)
                self.p.close()
        except KafkaException:
            pass


class _PythonTxn:
    name = "kafka-python"

    def __init__(self, bootstrap: str, transactional_id: str, timeout_ms: int | None, extra):
        from kafka import KafkaProducer
        kw = dict(bootstrap_servers=bootstrap, transactional_id=transactional_id, linger_ms=5,
                  max_block_ms=int(DEFAULT_TIMEOUT * 1000))
        if timeout_ms is not None:
            kw["transaction_timeout_ms"] = timeout_ms
        self.p = KafkaProducer(**{**kw, **extra})

    def _do(self, fn, *args):
        try:
            return fn(*args)
        except Exception as e:
            raise _python_failure(e) from e

    def init(self, timeout: float = DEFAULT_TIMEOUT):
        self._do(self.p.init_transactions)

    def begin(self):
        self._do(self.p.begin_transaction)

    def send(self, topic: str, msgs: list[Msg], timeout: float = DEFAULT_TIMEOUT):
        futures = [self._do(self.p.send, topic, m.value, m.key, list(m.headers) or None,
                            m.partition, m.timestamp) for m in msgs]
        self.p.flush(timeout)
        results = []
        for f in futures:
            try:
                md = f.get(timeout)
                results.append(Delivered(md.partition, md.offset, md.timestamp))
            except Exception as e:
                results.append(_python_failure(e))
        return _checked(results, 0)

    def send_offsets(self, offsets: dict[tuple[str, int], int], group_metadata,
                     timeout: float = DEFAULT_TIMEOUT):
        from kafka import OffsetAndMetadata, TopicPartition
        self._do(self.p.send_offsets_to_transaction,
                 {TopicPartition(t, p): OffsetAndMetadata(o, "", -1)
                  for (t, p), o in offsets.items()}, group_metadata)

    def commit(self, timeout: float = DEFAULT_TIMEOUT):
        self._do(self.p.commit_transaction)

    def abort(self, timeout: float = DEFAULT_TIMEOUT):
        self._do(self.p.abort_transaction)

    def close(self):
        try:
            self.p.close(timeout=5)
        except Exception:  # a fenced producer may complain on close
            pass


class _AioTxn:
    name = "aiokafka"

    def __init__(self, bootstrap: str, transactional_id: str, timeout_ms: int | None, extra):
        from aiokafka import AIOKafkaProducer
        self.loop = _Loop()
        kw = dict(bootstrap_servers=bootstrap, transactional_id=transactional_id, linger_ms=5)
        if timeout_ms is not None:
            kw["transaction_timeout_ms"] = timeout_ms

        async def create():
            return AIOKafkaProducer(**{**kw, **extra})
        self.p = self.loop.run(create())

    def _do(self, coro):
        try:
            return self.loop.run(coro)
        except Exception as e:
            raise _python_failure(e) from e

    def init(self, timeout: float = DEFAULT_TIMEOUT):
        # AIOKafkaProducer.start() bootstraps; InitProducerId is sent by the sender task and
        # awaited by begin_transaction (txn_manager.wait_for_pid).
        self._do(self.p.start())
        self._do(self.p._txn_manager.wait_for_pid())

    def begin(self):
        self._do(self.p.begin_transaction())

    def send(self, topic: str, msgs: list[Msg], timeout: float = DEFAULT_TIMEOUT):
        async def go():
            futures = [await self.p.send(topic, value=m.value, key=m.key, partition=m.partition,
                                         timestamp_ms=m.timestamp,
                                         headers=list(m.headers) or None) for m in msgs]
            results = []
            for f in futures:
                try:
                    md = await asyncio.wait_for(f, timeout)
                    results.append(Delivered(md.partition, md.offset, md.timestamp))
                except Exception as e:
                    results.append(_python_failure(e))
            return results
        return _checked(self._do(go()), 0)

    def send_offsets(self, offsets: dict[tuple[str, int], int], group_id: str,
                     timeout: float = DEFAULT_TIMEOUT):
        from aiokafka import TopicPartition
        self._do(self.p.send_offsets_to_transaction(
            {TopicPartition(t, p): o for (t, p), o in offsets.items()}, group_id))

    def commit(self, timeout: float = DEFAULT_TIMEOUT):
        self._do(self.p.commit_transaction())

    def abort(self, timeout: float = DEFAULT_TIMEOUT):
        self._do(self.p.abort_transaction())

    def close(self):
        try:
            self.loop.run(self.p.stop())
        except Exception:  # a fenced producer may complain on close
            pass
        finally:
            self.loop.close()


def _checked(results: list, left: int) -> list[Delivered]:
    if left:
        raise TxnFailure(None, "timeout", f"{left} records still unacknowledged")
    failed = [r for r in results if not isinstance(r, Delivered)]
    if failed:
        raise failed[0]
    return results


_IMPLS = {"confluent": _ConfluentTxn, "kafka-python": _PythonTxn, "aiokafka": _AioTxn}


@contextmanager
def txn_producer(client: str, bootstrap: str, transactional_id: str,
                 timeout_ms: int | None = None, init: bool = True, **extra):
    """A transactional producer, initialised (InitProducerId) unless `init` is False;
    closed on exit. `timeout_ms` is its transaction.timeout.ms."""
    p = _IMPLS[client](bootstrap, transactional_id, timeout_ms, extra)
    try:
        if init:
            p.init()
        yield p
    finally:
        p.close()


def open_txn_producer(client: str, bootstrap: str, transactional_id: str,
                      timeout_ms: int | None = None, **extra):
    """A transactional producer the caller closes (or leaves behind as a zombie)."""
    p = _IMPLS[client](bootstrap, transactional_id, timeout_ms, extra)
    p.init()
    return p


def isolation(client: str, committed: bool) -> dict:
    """Consumer settings for read_committed / read_uncommitted in each client's spelling.
    (librdkafka defaults to read_committed, kafka-python and aiokafka to read_uncommitted,
    so it is always given explicitly.)"""
    level = "read_committed" if committed else "read_uncommitted"
    return {"isolation.level": level} if client == "confluent" else {"isolation_level": level}


@contextmanager
def consumer(client: str, bootstrap: str, committed: bool):
    with BY_NAME[client].consumer(bootstrap, **isolation(client, committed)) as c:
        yield c


def read(client: str, bootstrap: str, topic: str, starts: dict[int, int | str], count: int,
         committed: bool, timeout: float = DEFAULT_TIMEOUT) -> list[Rec]:
    """Up to `count` records from the given start offsets with a fresh consumer."""
    with consumer(client, bootstrap, committed) as c:
        c.assign(topic, starts)
        return c.read(count, timeout)


def by_partition(recs: list[Rec]) -> dict[int, list[Rec]]:
    out: dict[int, list[Rec]] = {}
    for r in recs:
        out.setdefault(r.partition, []).append(r)
    return out


def latest_offsets(bootstrap: str, topic: str, partitions: list[int],
                   committed: bool) -> dict[int, int]:
    """ListOffsets "latest" through confluent's AdminClient at an isolation level: the
    last stable offset for read_committed, the high watermark for read_uncommitted."""
    from confluent_kafka import IsolationLevel, TopicPartition
    from confluent_kafka.admin import AdminClient, OffsetSpec
    a = AdminClient({"bootstrap.servers": bootstrap})
    level = IsolationLevel.READ_COMMITTED if committed else IsolationLevel.READ_UNCOMMITTED
    futures = a.list_offsets({TopicPartition(topic, p): OffsetSpec.latest() for p in partitions},
                             isolation_level=level, request_timeout=DEFAULT_TIMEOUT)
    return {tp.partition: f.result(DEFAULT_TIMEOUT).offset for tp, f in futures.items()}
