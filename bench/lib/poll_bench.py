"""The body of bench/poll: broker CPU while consumers poll a caught-up topic (see bench/poll)."""

import argparse
import os
import sys
import tempfile
import threading
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "tests" / "e2e"))
from broker import Broker  # noqa: E402
from confluent_kafka import Consumer, Producer, TopicPartition  # noqa: E402
from confluent_kafka.admin import AdminClient, NewTopic  # noqa: E402

PARTITIONS = 6


def cpu_seconds(pid: int) -> float:
    """User + system CPU seconds the process has used."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def tail(bootstrap: str, group: str, stop: threading.Event, counts: list, i: int) -> None:
    """One consumer reading from the end of every partition until `stop`."""
    consumer = Consumer({"bootstrap.servers": bootstrap, "group.id": group,
                         "enable.auto.commit": False, "fetch.wait.max.ms": 10})
    consumer.assign([TopicPartition("poll", p, -1) for p in range(PARTITIONS)])
    while not stop.is_set():
        message = consumer.poll(0.1)
        if message is not None and not message.error():
            counts[i] += 1
    consumer.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--bin", required=True, help="the sluice binary")
    parser.add_argument("--consumers", type=int, default=8)
    parser.add_argument("--seconds", type=float, default=15.0)
    parser.add_argument("--interval-ms", type=float, default=0.0,
                        help="send a record this often (0: no producer)")
    args = parser.parse_args()
    os.environ["SLUICE_BIN"] = args.bin
    with tempfile.TemporaryDirectory() as work:
        data = Path(work) / "data"
        data.mkdir()
        broker = Broker(data).start()
        try:
            admin = AdminClient({"bootstrap.servers": broker.bootstrap})
            admin.create_topics([NewTopic("poll", PARTITIONS, 1)])["poll"].result()
            stop = threading.Event()
            counts = [0] * args.consumers
            threads = [threading.Thread(target=tail, args=(broker.bootstrap, f"poll-{i}", stop,
                                                           counts, i))
                       for i in range(args.consumers)]
            for t in threads:
                t.start()
            time.sleep(3)  # every consumer assigned and polling
            producer = Producer({"bootstrap.servers": broker.bootstrap, "linger.ms": 0})
            cpu_before, start, sent = cpu_seconds(broker.proc.pid), time.time(), 0
            while time.time() - start < args.seconds:
                if args.interval_ms > 0:
                    producer.produce("poll", b"x" * 100, partition=sent % PARTITIONS)
                    sent += 1
                    producer.poll(0)
                    time.sleep(args.interval_ms / 1000)
                else:
                    time.sleep(0.1)
            producer.flush()
            cpu = cpu_seconds(broker.proc.pid) - cpu_before
            elapsed = time.time() - start
            stop.set()
            for t in threads:
                t.join()
            print(f"{args.consumers} consumers, fetch.wait.max.ms=10, {sent} records sent, "
                  f"{sum(counts)} consumed: broker {cpu / elapsed:.3f} CPU-seconds per second")
        finally:
            broker.stop()


if __name__ == "__main__":
    main()
