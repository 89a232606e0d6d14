//! rdkafka (librdkafka) admin and edge-case consumption: topic create/describe/alter/delete,
//! DeleteRecords, out-of-range offsets with auto.offset.reset, unknown topics with
//! auto-creation off.

use std::time::{Duration, Instant};

use rdkafka::admin::{
    AdminClient, AdminOptions, AlterConfig, ConfigSource, NewTopic, ResourceSpecifier,
    TopicReplication,
};
use rdkafka::client::DefaultClientContext;
use rdkafka::config::ClientConfig;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::error::{KafkaError, RDKafkaErrorCode};
use rdkafka::message::Message;
use rdkafka::producer::{FutureProducer, FutureRecord};
use rdkafka::{Offset, TopicPartitionList};
use sluice_e2e::Broker;

fn admin(broker: &Broker) -> AdminClient<DefaultClientContext> {
    ClientConfig::new()
        .set("bootstrap.servers", broker.bootstrap())
        .create()
        .unwrap()
}

async fn produce(broker: &Broker, topic: &str, values: std::ops::Range<usize>) {
    let producer: FutureProducer = ClientConfig::new()
        .set("bootstrap.servers", broker.bootstrap())
        .create()
        .unwrap();
    for i in values {
        producer
            .send(
                FutureRecord::to(topic)
                    .partition(0)
                    .key("k")
                    .payload(&format!("v{i}")),
                Duration::from_secs(10),
            )
            .await
            .map_err(|(e, _)| e)
            .unwrap();
    }
}

/// Every config entry of a topic, as DescribeConfigs reports them.
async fn describe_topic(
    admin: &AdminClient<DefaultClientContext>,
    topic: &str,
) -> rdkafka::admin::ConfigResource {
    let mut described = admin
        .describe_configs(&[ResourceSpecifier::Topic(topic)], &AdminOptions::new())
        .await
        .unwrap();
    described.remove(0).unwrap()
}

/// The first `n` (offset, value) pairs read from partition 0, starting at `start`.
fn read(broker: &Broker, topic: &str, start: Offset, reset: &str, n: usize) -> Vec<(i64, String)> {
    let consumer: BaseConsumer = ClientConfig::new()
        .set("bootstrap.servers", broker.bootstrap())
        .set("group.id", "unused-no-commits")
        .set("enable.auto.commit", "false")
        .set("auto.offset.reset", reset)
        .create()
        .unwrap();
    let mut tpl = TopicPartitionList::new();
    tpl.add_partition_offset(topic, 0, start).unwrap();
    consumer.assign(&tpl).unwrap();
    let mut out = Vec::new();
    let deadline = Instant::now() + Duration::from_secs(30);
    while out.len() < n && Instant::now() < deadline {
        if let Some(Ok(m)) = consumer.poll(Duration::from_millis(100)) {
            let value = String::from_utf8_lossy(m.payload().unwrap_or_default()).into_owned();
            out.push((m.offset(), value));
        }
    }
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn topics_are_created_described_altered_and_deleted() {
    let dir = tempfile::tempdir().unwrap();
    let broker = Broker::start(&dir.path().join("data"), &[]);
    let admin = admin(&broker);
    let opts = AdminOptions::new();
    let topic =
        NewTopic::new("managed", 3, TopicReplication::Fixed(1)).set("cleanup.policy", "compact");
    for r in admin.create_topics(&[topic], &opts).await.unwrap() {
        r.unwrap();
    }
    let config = describe_topic(&admin, "managed").await;
    let retention = config.get("retention.ms").unwrap();
    assert_eq!(retention.value.as_deref(), Some("604800000"));
    assert_eq!(retention.source, ConfigSource::Default);
    let policy = config.get("cleanup.policy").unwrap();
    assert_eq!(policy.value.as_deref(), Some("compact"));
    assert_eq!(policy.source, ConfigSource::DynamicTopic);

    let alter =
        AlterConfig::new(ResourceSpecifier::Topic("managed")).set("retention.ms", "3600000");
    for r in admin.alter_configs(&[alter], &opts).await.unwrap() {
        r.unwrap();
    }
    let config = describe_topic(&admin, "managed").await;
    assert_eq!(
        config.get("retention.ms").unwrap().value.as_deref(),
        Some("3600000")
    );
    // AlterConfigs replaces the topic's configs: cleanup.policy is back to its default.
    assert_eq!(
        config.get("cleanup.policy").unwrap().value.as_deref(),
        Some("delete")
    );

    // A bad value changes nothing. (The broker answers INVALID_CONFIG, as confluent-kafka
    // shows with the same librdkafka; the rdkafka crate's AlterConfigs result does not carry
    // per-resource errors, so the check here is on the effect.)
    let bad = AlterConfig::new(ResourceSpecifier::Topic("managed")).set("retention.ms", "soon");
    let _ = admin.alter_configs(&[bad], &opts).await.unwrap();
    let config = describe_topic(&admin, "managed").await;
    assert_eq!(
        config.get("retention.ms").unwrap().value.as_deref(),
        Some("3600000")
    );

    for r in admin.delete_topics(&["managed"], &opts).await.unwrap() {
        r.unwrap();
    }
    let consumer: BaseConsumer = ClientConfig::new()
        .set("bootstrap.servers", broker.bootstrap())
        .set("allow.auto.create.topics", "false")
        .create()
        .unwrap();
    let metadata = consumer
        .fetch_metadata(None, Duration::from_secs(10))
        .unwrap();
    assert!(metadata.topics().iter().all(|t| t.name() != "managed"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn consumption_after_delete_records_starts_at_the_new_low_watermark() {
    let dir = tempfile::tempdir().unwrap();
    let broker = Broker::start(&dir.path().join("data"), &[]);
    let admin = admin(&broker);
    for r in admin
        .create_topics(
            &[NewTopic::new("trimmed", 1, TopicReplication::Fixed(1))],
            &AdminOptions::new(),
        )
        .await
        .unwrap()
    {
        r.unwrap();
    }
    produce(&broker, "trimmed", 0..10).await;
    let mut before = TopicPartitionList::new();
    before
        .add_partition_offset("trimmed", 0, Offset::Offset(6))
        .unwrap();
    let result = admin
        .delete_records(&before, &AdminOptions::new())
        .await
        .unwrap();
    assert_eq!(
        result.find_partition("trimmed", 0).unwrap().offset(),
        Offset::Offset(6)
    );
    let got = read(&broker, "trimmed", Offset::Beginning, "earliest", 4);
    assert_eq!(
        got,
        (6..10).map(|i| (i, format!("v{i}"))).collect::<Vec<_>>()
    );
    // Asking for an offset below the low watermark resets (auto.offset.reset=earliest).
    let got = read(&broker, "trimmed", Offset::Offset(2), "earliest", 1);
    assert_eq!(got, vec![(6, "v6".to_string())]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_offset_past_the_end_honours_auto_offset_reset() {
    let dir = tempfile::tempdir().unwrap();
    let broker = Broker::start(&dir.path().join("data"), &[]);
    produce(&broker, "resets", 0..5).await;
    let earliest = read(&broker, "resets", Offset::Offset(1000), "earliest", 1);
    assert_eq!(earliest, vec![(0, "v0".to_string())]);
    // With latest, nothing old is delivered; a record produced later is.
    let consumer: BaseConsumer = ClientConfig::new()
        .set("bootstrap.servers", broker.bootstrap())
        .set("group.id", "unused-no-commits")
        .set("enable.auto.commit", "false")
        .set("auto.offset.reset", "latest")
        .create()
        .unwrap();
    let mut tpl = TopicPartitionList::new();
    tpl.add_partition_offset("resets", 0, Offset::Offset(1000))
        .unwrap();
    consumer.assign(&tpl).unwrap();
    let deadline = Instant::now() + Duration::from_secs(3);
    while Instant::now() < deadline {
        if let Some(Ok(m)) = consumer.poll(Duration::from_millis(100)) {
            panic!(
                "latest reset delivered an old record at offset {}",
                m.offset()
            );
        }
    }
    produce(&broker, "resets", 5..6).await;
    let deadline = Instant::now() + Duration::from_secs(30);
    let mut got = None;
    while got.is_none() && Instant::now() < deadline {
        if let Some(Ok(m)) = consumer.poll(Duration::from_millis(100)) {
            got = Some(m.offset());
        }
    }
    assert_eq!(got, Some(5));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unknown_topics_are_refused_when_auto_creation_is_off() {
    let dir = tempfile::tempdir().unwrap();
    let broker = Broker::start(
        &dir.path().join("data"),
        &[("SLUICE_AUTO_CREATE_TOPICS", "false")],
    );
    let producer: FutureProducer = ClientConfig::new()
        .set("bootstrap.servers", broker.bootstrap())
        .set("message.timeout.ms", "20000")
        .set("topic.metadata.propagation.max.ms", "1000")
        .create()
        .unwrap();
    let err = producer
        .send(
            FutureRecord::to("nowhere").key("k").payload("v"),
            Duration::from_secs(10),
        )
        .await
        .map_err(|(e, _)| e)
        .expect_err("the topic does not exist");
    assert!(
        matches!(
            err,
            KafkaError::MessageProduction(
                RDKafkaErrorCode::UnknownTopicOrPartition | RDKafkaErrorCode::UnknownTopic
            )
        ),
        "{err:?}"
    );
    let consumer: BaseConsumer = ClientConfig::new()
        .set("bootstrap.servers", broker.bootstrap())
        .create()
        .unwrap();
    let metadata = consumer
        .fetch_metadata(None, Duration::from_secs(10))
        .unwrap();
    assert!(metadata.topics().iter().all(|t| t.name() != "nowhere"));
}
