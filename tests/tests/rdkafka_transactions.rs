//! Transactions with the Rust rdkafka client (librdkafka 2.12): committed and aborted
//! transactions as read_committed and read_uncommitted consumers see them, and a
//! consume-transform-produce loop whose input offsets commit with its output
//! (send_offsets_to_transaction), through an aborted attempt and a restart.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, TopicReplication};
use rdkafka::client::DefaultClientContext;
use rdkafka::config::ClientConfig;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::message::{Header, Headers, Message, OwnedHeaders};
use rdkafka::producer::{BaseProducer, BaseRecord, Producer};
use rdkafka::{Offset, TopicPartitionList};
use sluice_e2e::{reader_from_start, Broker};

const TIMEOUT: Duration = Duration::from_secs(30);
const FAST_GROUPS: &[(&str, &str)] = &[
    ("SLUICE_GROUP_INITIAL_REBALANCE_DELAY_MS", "0"),
    ("SLUICE_GROUP_MIN_SESSION_TIMEOUT_MS", "1000"),
];

/// One record as a user checks it.
#[derive(Debug, Clone, PartialEq)]
struct Seen {
    partition: i32,
    offset: i64,
    key: String,
    value: String,
    timestamp: Option<i64>,
    header: Option<String>,
}

async fn create_topic(broker: &Broker, name: &str, partitions: i32) {
    let admin: AdminClient<DefaultClientContext> = ClientConfig::new()
        .set("bootstrap.servers", broker.bootstrap())
        .create()
        .expect("admin");
    let topic = NewTopic::new(name, partitions, TopicReplication::Fixed(1));
    for r in admin
        .create_topics(&[topic], &AdminOptions::new())
        .await
        .expect("create_topics")
    {
        r.expect("topic created");
    }
}

fn transactional_producer(broker: &Broker, id: &str) -> BaseProducer {
    let producer: BaseProducer = ClientConfig::new()
        .set("bootstrap.servers", broker.bootstrap())
        .set("transactional.id", id)
        .set("linger.ms", "5")
        .create()
        .expect("producer");
    producer
        .init_transactions(TIMEOUT)
        .expect("init_transactions");
    producer
}

fn send(producer: &BaseProducer, topic: &str, partition: i32, key: &str, value: &str, ts: i64) {
    let headers = OwnedHeaders::new().insert(Header {
        key: "origin",
        value: Some(key.as_bytes()),
    });
    producer
        .send(
            BaseRecord::to(topic)
                .partition(partition)
                .key(key)
                .payload(value)
                .timestamp(ts)
                .headers(headers),
        )
        .expect("enqueued");
}

/// Reads `topic` from the start of every partition until `count` records came (or 20 s
/// passed), with the given isolation level.
fn read(broker: &Broker, topic: &str, partitions: i32, isolation: &str, count: usize) -> Vec<Seen> {
    let consumer = reader_from_start(broker, topic, partitions, &[("isolation.level", isolation)]);
    let mut seen = Vec::new();
    let deadline = Instant::now() + Duration::from_secs(20);
    while seen.len() < count && Instant::now() < deadline {
        if let Some(result) = consumer.poll(Duration::from_millis(100)) {
            let m = result.expect("fetch");
            let text =
                |b: Option<&[u8]>| String::from_utf8(b.unwrap_or_default().to_vec()).unwrap();
            seen.push(Seen {
                partition: m.partition(),
                offset: m.offset(),
                key: text(m.key()),
                value: text(m.payload()),
                timestamp: m.timestamp().to_millis(),
                header: m
                    .headers()
                    .and_then(|h| h.iter().next().and_then(|x| x.value.map(<[u8]>::to_vec)))
                    .map(|v| String::from_utf8(v).unwrap()),
            });
        }
    }
    // Whatever else arrives within a short grace period would be a record too many.
    let grace = Instant::now() + Duration::from_millis(500);
    while Instant::now() < grace {
        if let Some(Ok(m)) = consumer.poll(Duration::from_millis(100)) {
            panic!(
                "unexpected extra record at offset {} of {topic}",
                m.offset()
            );
        }
    }
    seen.sort_by_key(|s| (s.partition, s.offset));
    seen
}

/// `(partition, offset, key)` of each record.
fn positions(seen: &[Seen]) -> Vec<(i32, i64, &str)> {
    seen.iter()
        .map(|s| (s.partition, s.offset, s.key.as_str()))
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn read_committed_consumers_see_committed_transactions_only() {
    let dir = tempfile::tempdir().unwrap();
    let broker = Broker::start(&dir.path().join("data"), &[]);
    create_topic(&broker, "payments", 2).await;
    let producer = transactional_producer(&broker, "payments-tx");
    let ts = 1_700_000_000_000;

    producer.begin_transaction().unwrap();
    for i in 0..4 {
        send(
            &producer,
            "payments",
            i % 2,
            &format!("c{i}"),
            &format!("committed {i}"),
            ts + i as i64,
        );
    }
    producer.commit_transaction(TIMEOUT).expect("commit");
    producer.begin_transaction().unwrap();
    for i in 0..3 {
        send(
            &producer,
            "payments",
            i % 2,
            &format!("a{i}"),
            "aborted",
            ts + 10,
        );
    }
    producer.flush(TIMEOUT).unwrap();
    producer.abort_transaction(TIMEOUT).expect("abort");
    producer.begin_transaction().unwrap();
    send(&producer, "payments", 1, "c4", "committed 4", ts + 20);
    producer.commit_transaction(TIMEOUT).expect("commit");

    let committed = read(&broker, "payments", 2, "read_committed", 5);
    // Each transaction ends with a marker taking one offset in each of its partitions.
    assert_eq!(
        positions(&committed),
        [
            (0, 0, "c0"),
            (0, 1, "c2"),
            (1, 0, "c1"),
            (1, 1, "c3"),
            (1, 5, "c4")
        ]
    );
    for s in &committed {
        assert_eq!(s.header.as_deref(), Some(s.key.as_str()));
        let i: i64 = s.key[1..].parse().unwrap();
        assert_eq!(s.value, format!("committed {i}"));
        let expected_ts = if i == 4 { ts + 20 } else { ts + i };
        assert_eq!(s.timestamp, Some(expected_ts));
    }
    let everything = read(&broker, "payments", 2, "read_uncommitted", 8);
    assert_eq!(
        positions(&everything),
        [
            (0, 0, "c0"),
            (0, 1, "c2"),
            (0, 3, "a0"),
            (0, 4, "a2"),
            (1, 0, "c1"),
            (1, 1, "c3"),
            (1, 3, "a1"),
            (1, 5, "c4")
        ]
    );
}

/// Leaves the group: librdkafka lets go of its partitions from its poll loop, so the
/// consumer is polled until it has (dropping it unpolled would block).
fn leave(consumer: &BaseConsumer) {
    consumer.unsubscribe();
    let left = Instant::now() + Duration::from_secs(10);
    while consumer.assignment().map(|a| a.count()).unwrap_or(0) > 0 && Instant::now() < left {
        let _ = consumer.poll(Duration::from_millis(50));
    }
}

/// Processes `in` into `out` (values upper-cased) in transactions of up to `per_txn`
/// records, committing the input offsets with the output; when `abort_first` the first
/// transaction is aborted and the transformer stops, as a crashed one would.
fn transform(broker: &Broker, per_txn: usize, abort_first: bool, total: usize) -> usize {
    let consumer: BaseConsumer = ClientConfig::new()
        .set("bootstrap.servers", broker.bootstrap())
        .set("group.id", "transformer")
        .set("enable.auto.commit", "false")
        .set("auto.offset.reset", "earliest")
        .set("isolation.level", "read_committed")
        .set("session.timeout.ms", "6000")
        .create()
        .expect("consumer");
    consumer.subscribe(&["in"]).unwrap();
    let producer = transactional_producer(broker, "transformer-tx");
    let mut done = 0;
    let deadline = Instant::now() + Duration::from_secs(60);
    while done < total && Instant::now() < deadline {
        let mut batch = Vec::new();
        while batch.len() < per_txn {
            match consumer.poll(Duration::from_millis(200)) {
                Some(Ok(m)) => batch.push((
                    m.partition(),
                    m.offset(),
                    m.key().unwrap().to_vec(),
                    m.payload().unwrap().to_ascii_uppercase(),
                )),
                Some(Err(e)) => panic!("consume: {e}"),
                None => break,
            }
        }
        if batch.is_empty() {
            continue;
        }
        producer.begin_transaction().unwrap();
        let mut next: BTreeMap<i32, i64> = BTreeMap::new();
        for (partition, offset, key, value) in &batch {
            producer
                .send(
                    BaseRecord::to("out")
                        .partition(*partition)
                        .key(key)
                        .payload(value),
                )
                .expect("enqueued");
            next.insert(*partition, offset + 1);
        }
        let mut offsets = TopicPartitionList::new();
        for (p, o) in &next {
            offsets
                .add_partition_offset("in", *p, Offset::Offset(*o))
                .unwrap();
        }
        producer
            .send_offsets_to_transaction(
                &offsets,
                &consumer.group_metadata().expect("group metadata"),
                TIMEOUT,
            )
            .expect("send_offsets_to_transaction");
        if abort_first {
            producer.flush(TIMEOUT).unwrap();
            producer.abort_transaction(TIMEOUT).expect("abort");
            break;
        }
        producer.commit_transaction(TIMEOUT).expect("commit");
        done += batch.len();
    }
    leave(&consumer);
    done
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn consume_transform_produce_commits_offsets_with_the_output() {
    let dir = tempfile::tempdir().unwrap();
    let broker = Broker::start(&dir.path().join("data"), FAST_GROUPS);
    create_topic(&broker, "in", 2).await;
    create_topic(&broker, "out", 2).await;
    let plain: BaseProducer = ClientConfig::new()
        .set("bootstrap.servers", broker.bootstrap())
        .create()
        .unwrap();
    let total = 30;
    for i in 0..total {
        send(
            &plain,
            "in",
            (i % 2) as i32,
            &format!("k{i:02}"),
            &format!("v{i:02}"),
            1,
        );
    }
    plain.flush(TIMEOUT).unwrap();

    // A first transformer aborts its first transaction (as if it crashed before the
    // commit): neither its output nor its offsets count.
    assert_eq!(transform(&broker, 7, true, total), 0);
    assert!(read(&broker, "out", 2, "read_committed", 1).is_empty());
    // A second one processes everything from the committed offsets (none yet).
    assert_eq!(transform(&broker, 7, false, total), total);

    let out = read(&broker, "out", 2, "read_committed", total);
    for p in 0..2 {
        let values: Vec<String> = out
            .iter()
            .filter(|s| s.partition == p)
            .map(|s| s.value.clone())
            .collect();
        let expected: Vec<String> = (0..total)
            .filter(|i| (i % 2) as i32 == p)
            .map(|i| format!("V{i:02}"))
            .collect();
        assert_eq!(
            values, expected,
            "partition {p}: every input exactly once, in order"
        );
    }

    // The group's committed offsets are the input ends: a new member of the group starts
    // right after them and gets only what is produced now.
    send(&plain, "in", 1, "late", "late", 2);
    plain.flush(TIMEOUT).unwrap();
    let consumer: BaseConsumer = ClientConfig::new()
        .set("bootstrap.servers", broker.bootstrap())
        .set("group.id", "transformer")
        .set("enable.auto.commit", "false")
        .set("auto.offset.reset", "earliest")
        .create()
        .unwrap();
    consumer.subscribe(&["in"]).unwrap();
    let deadline = Instant::now() + Duration::from_secs(30);
    let mut first = None;
    while first.is_none() && Instant::now() < deadline {
        if let Some(Ok(m)) = consumer.poll(Duration::from_millis(100)) {
            first = Some((m.partition(), m.offset(), m.key().unwrap().to_vec()));
        }
    }
    assert_eq!(first, Some((1, (total / 2) as i64, b"late".to_vec())));
    leave(&consumer);
}
