//! End-to-end tests with the Rust rdkafka client (librdkafka): what a Rust application sees.

use std::collections::BTreeMap;
use std::time::Duration;

use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, TopicReplication};
use rdkafka::client::DefaultClientContext;
use rdkafka::config::ClientConfig;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::error::{KafkaError, RDKafkaErrorCode};
use rdkafka::message::{Header, Headers, Message, OwnedHeaders};
use rdkafka::producer::{FutureProducer, FutureRecord};
use rdkafka::{Offset, TopicPartitionList};
use sluice_e2e::{reader_from_start, Broker};

/// One record as a user checks it.
#[derive(Debug, Clone, PartialEq)]
struct Seen {
    partition: i32,
    offset: i64,
    key: Option<Vec<u8>>,
    value: Option<Vec<u8>>,
    timestamp: Option<i64>,
    headers: Vec<(String, Option<Vec<u8>>)>,
}

fn producer(broker: &Broker, extra: &[(&str, &str)]) -> FutureProducer {
    let mut config = ClientConfig::new();
    config
        .set("bootstrap.servers", broker.bootstrap())
        .set("acks", "all")
        .set("linger.ms", "5");
    for (k, v) in extra {
        config.set(*k, *v);
    }
    config.create().expect("producer")
}

async fn create_topic(broker: &Broker, name: &str, partitions: i32, configs: &[(&str, &str)]) {
    let admin: AdminClient<DefaultClientContext> = ClientConfig::new()
        .set("bootstrap.servers", broker.bootstrap())
        .create()
        .expect("admin");
    let mut topic = NewTopic::new(name, partitions, TopicReplication::Fixed(1));
    for (k, v) in configs {
        topic = topic.set(k, v);
    }
    let results = admin
        .create_topics(&[topic], &AdminOptions::new())
        .await
        .expect("create_topics");
    for r in results {
        r.expect("topic created");
    }
}

/// Reads `count` records from the start of every partition with manual assignment.
fn consume(broker: &Broker, topic: &str, partitions: i32, count: usize) -> Vec<Seen> {
    let consumer = reader_from_start(broker, topic, partitions, &[]);
    let mut seen = Vec::new();
    let deadline = std::time::Instant::now() + Duration::from_secs(60);
    while seen.len() < count && std::time::Instant::now() < deadline {
        if let Some(result) = consumer.poll(Duration::from_millis(200)) {
            let m = result.expect("fetch");
            let headers = m
                .headers()
                .map(|h| {
                    h.iter()
                        .map(|x| (x.key.to_string(), x.value.map(<[u8]>::to_vec)))
                        .collect()
                })
                .unwrap_or_default();
            seen.push(Seen {
                partition: m.partition(),
                offset: m.offset(),
                key: m.key().map(<[u8]>::to_vec),
                value: m.payload().map(<[u8]>::to_vec),
                timestamp: m.timestamp().to_millis(),
                headers,
            });
        }
    }
    seen.sort_by_key(|s| (s.partition, s.offset));
    seen
}

async fn produce_keyed(p: &FutureProducer, topic: &str, partitions: i32, n: usize) -> Vec<Seen> {
    let mut sent = Vec::new();
    for i in 0..n {
        let partition = (i % partitions as usize) as i32;
        let key = format!("key-{i}");
        let value = format!("value-{i}-{}", "x".repeat(i % 50));
        let ts = 1_700_000_000_000 + i as i64;
        let headers = OwnedHeaders::new()
            .insert(Header {
                key: "seq",
                value: Some(i.to_string().as_bytes()),
            })
            .insert(Header {
                key: "empty",
                value: None::<&[u8]>,
            });
        let delivery = p
            .send(
                FutureRecord::to(topic)
                    .partition(partition)
                    .key(&key)
                    .payload(&value)
                    .timestamp(ts)
                    .headers(headers),
                Duration::from_secs(30),
            )
            .await
            .map_err(|(e, _)| e)
            .expect("delivered");
        let (part, offset) = (delivery.partition, delivery.offset);
        assert_eq!(part, partition);
        sent.push(Seen {
            partition,
            offset,
            key: Some(key.into_bytes()),
            value: Some(value.into_bytes()),
            timestamp: Some(ts),
            headers: vec![
                ("seq".to_string(), Some(i.to_string().into_bytes())),
                ("empty".to_string(), None),
            ],
        });
    }
    sent.sort_by_key(|s| (s.partition, s.offset));
    sent
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn keyed_records_come_back_in_order_with_headers_and_timestamps() {
    let dir = tempfile::tempdir().unwrap();
    let broker = Broker::start(&dir.path().join("data"), &[]);
    create_topic(&broker, "orders", 3, &[]).await;
    let sent = produce_keyed(&producer(&broker, &[]), "orders", 3, 60).await;
    // Offsets per partition are 0..20, in send order.
    let per_partition: BTreeMap<i32, Vec<i64>> = sent.iter().fold(BTreeMap::new(), |mut m, s| {
        m.entry(s.partition).or_insert_with(Vec::new).push(s.offset);
        m
    });
    for offsets in per_partition.values() {
        assert_eq!(offsets, &(0..20).collect::<Vec<i64>>());
    }
    assert_eq!(consume(&broker, "orders", 3, sent.len()), sent);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_compression_codec_round_trips() {
    let dir = tempfile::tempdir().unwrap();
    let broker = Broker::start(&dir.path().join("data"), &[]);
    for codec in ["none", "gzip", "snappy", "lz4", "zstd"] {
        let topic = format!("codec-{codec}");
        create_topic(&broker, &topic, 2, &[]).await;
        let p = producer(&broker, &[("compression.type", codec)]);
        let sent = produce_keyed(&p, &topic, 2, 40).await;
        assert_eq!(consume(&broker, &topic, 2, sent.len()), sent, "{codec}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn offsets_for_times_finds_the_first_record_at_or_after() {
    let dir = tempfile::tempdir().unwrap();
    let broker = Broker::start(&dir.path().join("data"), &[]);
    create_topic(&broker, "times", 1, &[]).await;
    let p = producer(&broker, &[]);
    for (i, ts) in [1_000i64, 2_000, 3_000, 3_000, 5_000].iter().enumerate() {
        p.send(
            FutureRecord::to("times")
                .partition(0)
                .key("k")
                .payload(&i.to_string())
                .timestamp(*ts),
            Duration::from_secs(10),
        )
        .await
        .map_err(|(e, _)| e)
        .unwrap();
    }
    let consumer: BaseConsumer = ClientConfig::new()
        .set("bootstrap.servers", broker.bootstrap())
        .set("group.id", "unused")
        .create()
        .unwrap();
    for (target, expected) in [
        (0, 0),
        (1_000, 0),
        (2_500, 2),
        (3_000, 2),
        (4_000, 4),
        (6_000, -1),
    ] {
        let mut tpl = TopicPartitionList::new();
        tpl.add_partition_offset("times", 0, Offset::Offset(target))
            .unwrap();
        let found = consumer
            .offsets_for_times(tpl, Duration::from_secs(10))
            .unwrap();
        let offset = found.find_partition("times", 0).unwrap().offset();
        let expected = if expected < 0 {
            Offset::End
        } else {
            Offset::Offset(expected)
        };
        assert_eq!(offset, expected, "timestamp {target}");
    }
    let (low, high) = consumer
        .fetch_watermarks("times", 0, Duration::from_secs(10))
        .unwrap();
    assert_eq!((low, high), (0, 5));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_batch_over_max_message_bytes_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let broker = Broker::start(&dir.path().join("data"), &[]);
    create_topic(&broker, "small", 1, &[("max.message.bytes", "10000")]).await;
    let p = producer(
        &broker,
        &[("linger.ms", "0"), ("message.max.bytes", "100000")],
    );
    let fits = "a".repeat(9_000);
    p.send(
        FutureRecord::to("small")
            .partition(0)
            .key("k")
            .payload(&fits),
        Duration::from_secs(10),
    )
    .await
    .map_err(|(e, _)| e)
    .expect("just under the limit");
    let too_big = "a".repeat(11_000);
    let err = p
        .send(
            FutureRecord::to("small")
                .partition(0)
                .key("k")
                .payload(&too_big),
            Duration::from_secs(10),
        )
        .await
        .map_err(|(e, _)| e)
        .expect_err("over the limit");
    assert_eq!(
        err,
        KafkaError::MessageProduction(RDKafkaErrorCode::MessageSizeTooLarge)
    );
    let seen = consume(&broker, "small", 1, 1);
    assert_eq!(seen.len(), 1);
    assert_eq!(seen[0].value.as_deref(), Some(fits.as_bytes()));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kill_9_mid_produce_keeps_every_acknowledged_record() {
    let dir = tempfile::tempdir().unwrap();
    let mut broker = Broker::start(&dir.path().join("data"), &[]);
    create_topic(&broker, "durable", 2, &[]).await;
    let p = producer(&broker, &[("message.timeout.ms", "5000"), ("retries", "0")]);
    let mut acknowledged = Vec::new();
    // First half: sent and awaited, so certainly acknowledged before the kill. Second half:
    // in flight when the broker dies; whatever of it was acknowledged must survive too.
    for half in [0..1_500, 1_500..3_000] {
        let killing = half.start > 0;
        let mut pending = Vec::new();
        for i in half {
            let value = format!("v{i}");
            let record = FutureRecord::to("durable")
                .partition(i % 2)
                .key("k")
                .payload(&value);
            pending.push((
                i,
                p.send_result(record).map_err(|(e, _)| e).expect("queued"),
            ));
            if killing && i == 2_000 {
                broker.kill9();
            }
        }
        for (i, delivery) in pending {
            if let Ok(Ok(d)) = delivery.await {
                acknowledged.push((d.partition, d.offset, format!("v{i}")));
            }
        }
    }
    assert!(
        !acknowledged.is_empty(),
        "nothing was acknowledged before the kill"
    );
    broker.restart();
    let seen = consume(&broker, "durable", 2, acknowledged.len());
    let stored: BTreeMap<(i32, i64), Vec<u8>> = seen
        .into_iter()
        .map(|s| ((s.partition, s.offset), s.value.unwrap_or_default()))
        .collect();
    for (partition, offset, value) in &acknowledged {
        assert_eq!(
            stored.get(&(*partition, *offset)).map(Vec::as_slice),
            Some(value.as_bytes()),
            "acknowledged record {partition}/{offset} lost or changed"
        );
    }
    assert!(
        broker.log().contains("no clean shutdown marker"),
        "{}",
        broker.log()
    );
}
