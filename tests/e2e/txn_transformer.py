"""A consume-transform-produce application with exactly-once semantics, run as its own
process by test_transactions.py so a test can SIGKILL it (or the broker) mid-run.

It consumes `--in` as a member of `--group` (read_committed), and for every poll of up to
`--per-txn` records runs one transaction: the transformed records go to the same partition
of `--out` (value b"T:" + value, same key and timestamp, the input's headers plus
("src", b"<partition>:<offset>")), and the next input offsets are committed to the group
in that transaction (send_offsets_to_transaction). It exits 0 once the group's committed
offsets reach `--end` ("partition:offset,..."), 3 on a fatal error (e.g. fenced).

Progress goes to stdout, one line each, flushed: "ready", "txn N produced" (records acked,
not committed yet), "txn N committed", "txn N aborted: <error>", "done", "fatal: <error>".
`--pause-at N --pause-s S` sleeps S seconds after "txn N produced", so a test can kill the
process (or the broker) while that transaction is open.

    python txn_transformer.py --client confluent --bootstrap 127.0.0.1:9092 --group g \
        --txn-id tx --in in --out out --end 0:60,1:60 --per-txn 10
"""

import argparse
import asyncio
import faulthandler
import os
import signal
import sys
import time

SESSION_TIMEOUT_MS = 3000
HEARTBEAT_INTERVAL_MS = 500


def say(line: str):
    print(line, flush=True)


def transformed_headers(headers, partition: int, offset: int):
    return list(headers or []) + [("src", f"{partition}:{offset}".encode())]


def kafka_error(e: BaseException):
    """The KafkaError of a confluent-kafka failure. confluent-kafka 2.16's flush() raises
    KafkaException on a fatal error while still serving delivery callbacks, which then
    fail with SystemError chained to that KafkaException."""
    from confluent_kafka import KafkaException
    cause = e
    while cause is not None and not isinstance(cause, KafkaException):
        cause = cause.__cause__ or cause.__context__
    if cause is None:
        raise e
    return cause.args[0]


def pause(args, n: int):
    if n == args.pause_at:
        time.sleep(args.pause_s)


# ----------------------------------------------------------------------------------------

def run_confluent(args, end: dict[int, int]) -> int:
    from confluent_kafka import (OFFSET_BEGINNING, Consumer, KafkaException, Producer,
                                 TopicPartition)
    debug = {"debug": os.environ["TXN_TRANSFORMER_DEBUG"]} \
        if os.environ.get("TXN_TRANSFORMER_DEBUG") else {}
    # librdkafka 2.16.0: when its only broker goes down, the default
    # metadata.recovery.strategy=rebootstrap decommissions the broker handle; the old handle
    # then spins in "Handle is terminating in state TRY_CONNECT" and, once the broker is
    # back, send_offsets_to_transaction() never returns (its timeout ignored). Without
    # re-bootstrap the producer reconnects to the restarted broker normally.
    p = Producer({"bootstrap.servers": args.bootstrap, "transactional.id": args.txn_id,
                  "linger.ms": 5, "transaction.timeout.ms": args.txn_timeout_ms,
                  "metadata.recovery.strategy": "none", **debug})
    c = Consumer({"bootstrap.servers": args.bootstrap, "group.id": args.group,
                  "enable.auto.commit": False, "auto.offset.reset": "earliest",
                  "isolation.level": "read_committed", "fetch.wait.max.ms": 100,
                  "session.timeout.ms": SESSION_TIMEOUT_MS,
                  "heartbeat.interval.ms": HEARTBEAT_INTERVAL_MS})

    def fatal(e) -> int:
        say(f"fatal: {e}")
        return 3

    def retrying(fn, *a):
        """Retries a transactional call while librdkafka says the error is retriable (e.g.
        a timeout while the broker restarts); raises anything else."""
        for _ in range(6):
            try:
                return fn(*a)
            except KafkaException as e:
                if not e.args[0].retriable():
                    raise
                say(f"retrying {fn.__name__}: {e.args[0]}")
                time.sleep(0.5)
        return fn(*a)

    def done() -> bool:
        try:
            got = c.committed([TopicPartition(args.in_topic, q) for q in end], timeout=10)
        except KafkaException:
            return False
        return all(tp.offset >= end[tp.partition] for tp in got)

    def rewind():
        """After an abort: back to the group's committed offsets."""
        for _ in range(20):
            try:
                parts = c.assignment()
                for tp in c.committed(parts, timeout=10):
                    c.seek(TopicPartition(tp.topic, tp.partition,
                                          tp.offset if tp.offset >= 0 else OFFSET_BEGINNING))
                return
            except KafkaException:
                time.sleep(0.5)

    try:
        retrying(p.init_transactions, 30)
    except KafkaException as e:
        return fatal(e.args[0])
    c.subscribe([args.in_topic])
    say("ready")
    n = 0
    while True:
        msgs = [m for m in c.consume(args.per_txn, timeout=0.5) if not m.error()]
        if not msgs:
            if done():
                say("done")
                c.close()
                return 0
            continue
        n += 1
        try:
            p.begin_transaction()
            for m in msgs:
                while True:
                    try:
                        p.produce(args.out_topic, key=m.key(), value=b"T:" + m.value(),
                                  headers=transformed_headers(m.headers(), m.partition(),
                                                              m.offset()),
                                  partition=m.partition(), timestamp=m.timestamp()[1])
                        break
                    except BufferError:
                        p.poll(0.05)
            if p.flush(30) == 0:
                say(f"txn {n} produced")
            pause(args, n)
            nxt: dict[int, int] = {}
            for m in msgs:
                nxt[m.partition()] = max(nxt.get(m.partition(), 0), m.offset() + 1)
            retrying(p.send_offsets_to_transaction,
                     [TopicPartition(args.in_topic, q, o) for q, o in nxt.items()],
                     c.consumer_group_metadata(), 10)
            retrying(p.commit_transaction, 10)
            say(f"txn {n} committed")
        except (KafkaException, SystemError) as e:
            err = kafka_error(e)
            if err.fatal():
                return fatal(err)
            say(f"txn {n} aborted: {err}")
            try:
                retrying(p.abort_transaction, 30)
            except KafkaException as e2:
                return fatal(e2.args[0])
            rewind()


# ----------------------------------------------------------------------------------------

def run_kafka_python(args, end: dict[int, int]) -> int:
    import kafka.errors as Errors
    from kafka import KafkaConsumer, KafkaProducer, OffsetAndMetadata, TopicPartition
    p = KafkaProducer(bootstrap_servers=args.bootstrap, transactional_id=args.txn_id,
                      transaction_timeout_ms=args.txn_timeout_ms, linger_ms=5)
    try:
        p.init_transactions()
    except Errors.KafkaError as e:
        say(f"fatal: {e!r}")
        return 3
    c = KafkaConsumer(args.in_topic, bootstrap_servers=args.bootstrap, group_id=args.group,
                      enable_auto_commit=False, auto_offset_reset="earliest",
                      isolation_level="read_committed", fetch_max_wait_ms=100,
                      session_timeout_ms=SESSION_TIMEOUT_MS,
                      heartbeat_interval_ms=HEARTBEAT_INTERVAL_MS)
    say("ready")
    tps = [TopicPartition(args.in_topic, q) for q in end]

    def done() -> bool:
        return all((c.committed(tp) or -1) >= end[tp.partition] for tp in tps)

    n = 0
    while True:
        batches = c.poll(timeout_ms=500, max_records=args.per_txn)
        if not any(batches.values()):
            if done():
                say("done")
                c.close()
                return 0
            continue
        n += 1
        try:
            p.begin_transaction()
            futures = [p.send(args.out_topic, key=r.key, value=b"T:" + r.value,
                              headers=transformed_headers(r.headers, r.partition, r.offset),
                              partition=r.partition, timestamp_ms=r.timestamp)
                       for recs in batches.values() for r in recs]
            p.flush()
            for f in futures:
                f.get(30)
            say(f"txn {n} produced")
            pause(args, n)
            p.send_offsets_to_transaction(
                {tp: OffsetAndMetadata(recs[-1].offset + 1, "", -1)
                 for tp, recs in batches.items() if recs}, c.group_metadata())
            p.commit_transaction()
            say(f"txn {n} committed")
        except (Errors.ProducerFencedError, Errors.InvalidProducerEpochError) as e:
            say(f"fatal: {e!r}")
            return 3
        except Errors.KafkaError as e:
            say(f"txn {n} aborted: {e!r}")
            p.abort_transaction()
            for tp in c.assignment():
                committed = c.committed(tp)
                if committed is None:
                    c.seek_to_beginning(tp)
                else:
                    c.seek(tp, committed)


# ----------------------------------------------------------------------------------------

def run_aiokafka(args, end: dict[int, int]) -> int:
    async def go() -> int:
        from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition
        from aiokafka.errors import InvalidProducerEpoch, KafkaError, ProducerFenced
        p = AIOKafkaProducer(bootstrap_servers=args.bootstrap, transactional_id=args.txn_id,
                             transaction_timeout_ms=args.txn_timeout_ms, linger_ms=5)
        await p.start()
        c = AIOKafkaConsumer(args.in_topic, bootstrap_servers=args.bootstrap,
                             group_id=args.group, enable_auto_commit=False,
                             auto_offset_reset="earliest", isolation_level="read_committed",
                             fetch_max_wait_ms=100, session_timeout_ms=SESSION_TIMEOUT_MS,
                             heartbeat_interval_ms=HEARTBEAT_INTERVAL_MS)
        await c.start()
        say("ready")
        tps = [TopicPartition(args.in_topic, q) for q in end]

        async def done() -> bool:
            for tp in tps:
                if (await c.committed(tp) or -1) < end[tp.partition]:
                    return False
            return True

        n = 0
        try:
            while True:
                batches = await c.getmany(timeout_ms=500, max_records=args.per_txn)
                if not any(batches.values()):
                    if await done():
                        say("done")
                        return 0
                    continue
                n += 1
                try:
                    async with p.transaction():
                        futures = [await p.send(
                            args.out_topic, key=r.key, value=b"T:" + r.value,
                            headers=transformed_headers(r.headers, r.partition, r.offset),
                            partition=r.partition, timestamp_ms=r.timestamp)
                            for recs in batches.values() for r in recs]
                        for f in futures:
                            await f
                        say(f"txn {n} produced")
                        if n == args.pause_at:
                            await asyncio.sleep(args.pause_s)
                        await p.send_offsets_to_transaction(
                            {tp: recs[-1].offset + 1 for tp, recs in batches.items() if recs},
                            args.group)
                    say(f"txn {n} committed")
                except (ProducerFenced, InvalidProducerEpoch) as e:
                    say(f"fatal: {e!r}")
                    return 3
                except KafkaError as e:
                    say(f"txn {n} aborted: {e!r}")
                    for tp in c.assignment():
                        committed = await c.committed(tp)
                        if committed is None:
                            await c.seek_to_beginning(tp)
                        else:
                            c.seek(tp, committed)
        finally:
            await c.stop()
            await p.stop()

    return asyncio.run(go())


def main() -> int:
    faulthandler.register(signal.SIGUSR1)  # `kill -USR1` prints where it is to stderr
    ap = argparse.ArgumentParser()
    ap.add_argument("--client", choices=["confluent", "kafka-python", "aiokafka"],
                    default="confluent")
    ap.add_argument("--bootstrap", required=True)
    ap.add_argument("--group", required=True)
    ap.add_argument("--txn-id", required=True)
    ap.add_argument("--in", dest="in_topic", required=True)
    ap.add_argument("--out", dest="out_topic", required=True)
    ap.add_argument("--end", required=True, help="partition:offset,... of the input's end")
    ap.add_argument("--per-txn", type=int, default=10)
    ap.add_argument("--txn-timeout-ms", type=int, default=60000)
    ap.add_argument("--pause-at", type=int, default=-1)
    ap.add_argument("--pause-s", type=float, default=0.0)
    args = ap.parse_args()
    end = {int(p): int(o) for p, o in (kv.split(":") for kv in args.end.split(","))}
    run = {"confluent": run_confluent, "kafka-python": run_kafka_python,
           "aiokafka": run_aiokafka}[args.client]
    return run(args, end)


if __name__ == "__main__":
    sys.exit(main())
