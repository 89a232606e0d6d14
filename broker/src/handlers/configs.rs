//! Config resources as the config APIs see them (DescribeConfigs, AlterConfigs,
//! IncrementalAlterConfigs, and CreateTopics' config list): which keys a topic or broker has,
//! their types and one-line documentation, and where each value comes from.
//!
//! A topic config's value is resolved through layers, highest first, exactly as Kafka
//! reports them: set on the topic (DYNAMIC_TOPIC_CONFIG), this broker's dynamic config
//! (DYNAMIC_BROKER_CONFIG), the cluster-wide dynamic default (DYNAMIC_DEFAULT_BROKER_CONFIG),
//! the `[log]` section of sluice.toml when it differs from Kafka's default
//! (STATIC_BROKER_CONFIG), and Kafka's default (DEFAULT_CONFIG). The layers that hold a value
//! are the config's synonyms.

use std::collections::BTreeMap;

use kafka_protocol::protocol::StrBytes;
use sluice_storage::config::LOG_CONFIG_KEYS;
use sluice_storage::LogConfig;

use super::{kstr, INVALID_REQUEST, UNKNOWN_TOPIC_OR_PARTITION};
use crate::broker::{Broker, BrokerConfigScope};
use crate::config::{broker_key_for, topic_key_for, BrokerConfig, TOPIC_CONFIG_SYNONYMS};
use crate::topics::TopicError;

/// Config resource type of a topic.
pub const RESOURCE_TOPIC: i8 = 2;
/// Config resource type of a broker.
pub const RESOURCE_BROKER: i8 = 4;

/// Where a config value comes from (Kafka's `ConfigSource` ids).
pub mod source {
    /// Set on the topic itself.
    pub const DYNAMIC_TOPIC_CONFIG: i8 = 1;
    /// Set dynamically on this broker.
    pub const DYNAMIC_BROKER_CONFIG: i8 = 2;
    /// Set dynamically as the default of every broker.
    pub const DYNAMIC_DEFAULT_BROKER_CONFIG: i8 = 3;
    /// Set in the broker's config file.
    pub const STATIC_BROKER_CONFIG: i8 = 4;
    /// Nobody set it: the built-in default.
    pub const DEFAULT_CONFIG: i8 = 5;
}

/// The data type of a config (Kafka's `ConfigType` ids, KIP-569).
pub mod config_type {
    /// true / false.
    pub const BOOLEAN: i8 = 1;
    /// Free text.
    pub const STRING: i8 = 2;
    /// 32-bit integer.
    pub const INT: i8 = 3;
    /// 16-bit integer.
    pub const SHORT: i8 = 4;
    /// 64-bit integer.
    pub const LONG: i8 = 5;
    /// Floating point.
    pub const DOUBLE: i8 = 6;
    /// Comma-separated list (the only kind IncrementalAlterConfigs can APPEND to).
    pub const LIST: i8 = 7;
}

/// Type and documentation of a topic config key (its broker synonym shares them).
struct KeySpec {
    name: &'static str,
    config_type: i8,
    doc: &'static str,
}

#[rustfmt::skip]
const TOPIC_KEYS: &[KeySpec] = &[
    KeySpec { name: "cleanup.policy", config_type: config_type::LIST, doc: "What happens to old segments: delete (retention), compact (keep the latest record per key) or both." },
    KeySpec { name: "delete.retention.ms", config_type: config_type::LONG, doc: "How long tombstones are kept on a compacted topic." },
    KeySpec { name: "flush.messages", config_type: config_type::LONG, doc: "fsync the log after this many messages (1: every batch)." },
    KeySpec { name: "flush.ms", config_type: config_type::LONG, doc: "fsync the log at least this often, in milliseconds." },
    KeySpec { name: "index.interval.bytes", config_type: config_type::INT, doc: "Bytes of log between two entries of the sparse offset index." },
    KeySpec { name: "max.message.bytes", config_type: config_type::INT, doc: "The largest record batch the topic accepts, in bytes." },
    KeySpec { name: "message.timestamp.after.max.ms", config_type: config_type::LONG, doc: "How far in the future a record's timestamp may be." },
    KeySpec { name: "message.timestamp.before.max.ms", config_type: config_type::LONG, doc: "How far in the past a record's timestamp may be." },
    KeySpec { name: "message.timestamp.type", config_type: config_type::STRING, doc: "CreateTime (the producer's timestamp) or LogAppendTime (the broker's)." },
    KeySpec { name: "min.cleanable.dirty.ratio", config_type: config_type::DOUBLE, doc: "Compact once this share of the log is not yet compacted." },
    KeySpec { name: "min.compaction.lag.ms", config_type: config_type::LONG, doc: "Records younger than this are never compacted." },
    KeySpec { name: "retention.bytes", config_type: config_type::LONG, doc: "Delete the oldest segments while a partition is larger than this (-1: no limit)." },
    KeySpec { name: "retention.ms", config_type: config_type::LONG, doc: "Delete segments whose newest record is older than this (-1: keep forever)." },
    KeySpec { name: "segment.bytes", config_type: config_type::INT, doc: "Roll to a new segment file when the active one would grow past this size." },
    KeySpec { name: "segment.index.bytes", config_type: config_type::INT, doc: "Roll to a new segment when its offset index reaches this size." },
    KeySpec { name: "segment.ms", config_type: config_type::LONG, doc: "Roll to a new segment when the active one is older than this." },
    KeySpec { name: "compression.type", config_type: config_type::STRING, doc: "producer stores batches as the producer compressed them; uncompressed, gzip, snappy, lz4 or zstd recompresses batches in another codec on append." },
    KeySpec { name: "max.compaction.lag.ms", config_type: config_type::LONG, doc: "Compact a record no later than this after it was written, whatever the dirty ratio." },
    KeySpec { name: "message.downconversion.enable", config_type: config_type::BOOLEAN, doc: "Accepted for compatibility; no served fetch version needs down-conversion." },
    KeySpec { name: "min.insync.replicas", config_type: config_type::INT, doc: "Accepted for compatibility; sluice keeps one copy, so acks=all means the local write." },
    KeySpec { name: "preallocate", config_type: config_type::BOOLEAN, doc: "Accepted for compatibility; segment files grow as they are written." },
    KeySpec { name: "unclean.leader.election.enable", config_type: config_type::BOOLEAN, doc: "Accepted for compatibility; there is one replica." },
    KeySpec { name: "compression.gzip.level", config_type: config_type::INT, doc: "The gzip level batches are recompressed at when compression.type is gzip (1-9, -1: zlib's default)." },
    KeySpec { name: "compression.lz4.level", config_type: config_type::INT, doc: "Recorded only: sluice's LZ4 encoder has a single level (LZ4's fast mode)." },
    KeySpec { name: "compression.zstd.level", config_type: config_type::INT, doc: "The zstd level batches are recompressed at when compression.type is zstd." },
    KeySpec { name: "segment.jitter.ms", config_type: config_type::LONG, doc: "Each segment rolls on time up to this much (a random amount) before segment.ms, so partitions do not all roll at once." },
    KeySpec { name: "file.delete.delay.ms", config_type: config_type::LONG, doc: "Accepted for compatibility; deleted segment files are unlinked at once and readers holding one keep reading it." },
    KeySpec { name: "local.retention.ms", config_type: config_type::LONG, doc: "Accepted for compatibility; tiered storage's local retention, and sluice has no remote tier." },
    KeySpec { name: "local.retention.bytes", config_type: config_type::LONG, doc: "Accepted for compatibility; tiered storage's local retention, and sluice has no remote tier." },
    KeySpec { name: "remote.storage.enable", config_type: config_type::BOOLEAN, doc: "Only false: sluice has no remote (tiered) storage." },
    KeySpec { name: "leader.replication.throttled.replicas", config_type: config_type::LIST, doc: "Accepted for compatibility; there is one replica, so nothing to throttle." },
    KeySpec { name: "follower.replication.throttled.replicas", config_type: config_type::LIST, doc: "Accepted for compatibility; there is one replica, so nothing to throttle." },
];

/// Type and documentation of a topic key; a key without a spec is reported as a string.
fn topic_key_spec(name: &str) -> (i8, &'static str) {
    TOPIC_KEYS
        .iter()
        .find(|s| s.name == name)
        .map_or((config_type::STRING, ""), |s| (s.config_type, s.doc))
}

/// A broker config fixed for the life of the process (sluice.toml, or not configurable).
struct StaticBrokerKey {
    name: &'static str,
    config_type: i8,
    doc: &'static str,
    value: fn(&BrokerConfig) -> String,
}

#[rustfmt::skip]
const STATIC_BROKER_KEYS: &[StaticBrokerKey] = &[
    StaticBrokerKey { name: "advertised.listeners", config_type: config_type::STRING, doc: "The address clients are told to connect to (advertised_listener).", value: |c| format!("PLAINTEXT://{}", advertised(c)) },
    StaticBrokerKey { name: "auto.create.topics.enable", config_type: config_type::BOOLEAN, doc: "Create an unknown topic when a client asks Metadata for it (auto_create_topics).", value: |c| c.auto_create_topics.to_string() },
    StaticBrokerKey { name: "broker.id", config_type: config_type::INT, doc: "This broker's node id (node_id).", value: |c| c.node_id.to_string() },
    StaticBrokerKey { name: "default.replication.factor", config_type: config_type::INT, doc: "Replication factor of topics created without one (default_replication_factor).", value: |c| c.default_replication_factor.to_string() },
    StaticBrokerKey { name: "group.initial.rebalance.delay.ms", config_type: config_type::INT, doc: "How long a new consumer group waits for more members before its first assignment.", value: |c| c.group_initial_rebalance_delay_ms.to_string() },
    StaticBrokerKey { name: "listeners", config_type: config_type::STRING, doc: "The address the broker listens on (listen).", value: |c| format!("PLAINTEXT://{}", c.listen) },
    StaticBrokerKey { name: "log.cleaner.backoff.ms", config_type: config_type::LONG, doc: "Pause between compaction passes ([log] cleaner_backoff_ms).", value: |c| c.log.cleaner_backoff_ms.to_string() },
    StaticBrokerKey { name: "log.dirs", config_type: config_type::STRING, doc: "The directory holding partition logs and cluster metadata (data_dir).", value: |c| c.data_dir_absolute().display().to_string() },
    StaticBrokerKey { name: "log.retention.check.interval.ms", config_type: config_type::LONG, doc: "How often retention runs ([log] retention_check_interval_ms).", value: |c| c.log.retention_check_interval_ms.to_string() },
    StaticBrokerKey { name: "num.partitions", config_type: config_type::INT, doc: "Partitions of topics created without a count (num_partitions).", value: |c| c.num_partitions.to_string() },
    StaticBrokerKey { name: "offsets.topic.replication.factor", config_type: config_type::SHORT, doc: "Replication factor of __consumer_offsets; sluice keeps one copy.", value: |_| "1".to_string() },
    StaticBrokerKey { name: "socket.request.max.bytes", config_type: config_type::INT, doc: "The largest request accepted (socket_request_max_bytes).", value: |c| c.socket_request_max_bytes.to_string() },
    StaticBrokerKey { name: "transaction.state.log.replication.factor", config_type: config_type::SHORT, doc: "Replication factor of __transaction_state; sluice keeps one copy.", value: |_| "1".to_string() },
];

fn advertised(config: &BrokerConfig) -> String {
    config
        .advertised()
        .map_or_else(|_| config.listen.clone(), |(h, p)| format!("{h}:{p}"))
}

/// One layer that holds a value for a config (Kafka's synonym).
#[derive(Debug, Clone, PartialEq)]
pub struct ConfigSynonym {
    /// The key under which the layer holds it (e.g. `log.retention.ms` for `retention.ms`).
    pub name: String,
    /// The value in that layer.
    pub value: String,
    /// The layer (a [`source`] id).
    pub source: i8,
}

/// One config of a resource as DescribeConfigs and CreateTopics report it.
#[derive(Debug, Clone, PartialEq)]
pub struct ConfigEntry {
    /// Config key.
    pub name: String,
    /// Effective value.
    pub value: String,
    /// Where the value comes from (a [`source`] id).
    pub source: i8,
    /// True when AlterConfigs cannot change it.
    pub read_only: bool,
    /// A [`config_type`] id.
    pub config_type: i8,
    /// One line saying what it does.
    pub documentation: &'static str,
    /// Every layer holding a value, highest precedence first (the first one is `source`).
    pub synonyms: Vec<ConfigSynonym>,
}

/// Why a config request failed: a Kafka error code and a message for the user.
#[derive(Debug, Clone, PartialEq)]
pub struct ConfigError {
    /// Kafka error code.
    pub code: i16,
    /// What was wrong.
    pub message: String,
}

impl ConfigError {
    /// An INVALID_REQUEST refusal.
    pub fn invalid_request(message: impl Into<String>) -> Self {
        ConfigError {
            code: INVALID_REQUEST,
            message: message.into(),
        }
    }
}

/// The `(error_code, error_message)` a response reports for the outcome of a change.
pub fn error_fields(outcome: Result<(), ConfigError>) -> (i16, Option<StrBytes>) {
    match outcome {
        Ok(()) => (0, None),
        Err(e) => (e.code, Some(kstr(e.message))),
    }
}

impl From<TopicError> for ConfigError {
    fn from(e: TopicError) -> Self {
        ConfigError {
            code: e.code(),
            message: e.to_string(),
        }
    }
}

/// A config resource the config APIs can address.
#[derive(Debug, Clone, PartialEq)]
pub enum ConfigResource {
    /// A topic, by name (it may not exist).
    Topic(String),
    /// The broker or the cluster-wide broker default.
    Broker(BrokerConfigScope),
}

/// Resolves a request's resource type and name; other resource types (groups, client
/// metrics, broker loggers) are refused with INVALID_REQUEST.
pub fn resolve(
    broker: &Broker,
    resource_type: i8,
    name: &str,
) -> Result<ConfigResource, ConfigError> {
    match resource_type {
        RESOURCE_TOPIC => Ok(ConfigResource::Topic(name.to_string())),
        RESOURCE_BROKER => broker
            .broker_config_scope(name)
            .map(ConfigResource::Broker)
            .map_err(ConfigError::invalid_request),
        other => Err(ConfigError::invalid_request(format!(
            "config resource type {other} is not supported by sluice; use 2 (topic) or 4 (broker)"
        ))),
    }
}

/// Every config of a resource with its value, source and synonyms.
pub fn describe(
    broker: &Broker,
    resource: &ConfigResource,
) -> Result<Vec<ConfigEntry>, ConfigError> {
    match resource {
        ConfigResource::Topic(name) => {
            let meta = broker.topics.get(name).ok_or_else(|| unknown_topic(name))?;
            Ok(topic_entries(
                broker,
                &meta.configs,
                &broker.topic_log_config(name),
            ))
        }
        ConfigResource::Broker(scope) => Ok(broker_entries(broker, *scope)),
    }
}

/// The configs set explicitly on a resource: a topic's own configs, or the dynamic broker
/// configs of a scope. This is what AlterConfigs replaces.
pub fn explicit(
    broker: &Broker,
    resource: &ConfigResource,
) -> Result<BTreeMap<String, String>, ConfigError> {
    match resource {
        ConfigResource::Topic(name) => broker
            .topics
            .get(name)
            .map(|m| m.configs)
            .ok_or_else(|| unknown_topic(name)),
        ConfigResource::Broker(scope) => Ok(broker.dynamic_broker_configs(*scope)),
    }
}

/// Replaces the explicit configs of a resource (keys not given revert to the layer below).
pub fn replace(
    broker: &Broker,
    resource: &ConfigResource,
    configs: BTreeMap<String, String>,
    validate_only: bool,
) -> Result<(), ConfigError> {
    match resource {
        ConfigResource::Topic(name) => broker.set_topic_configs(name, configs, validate_only),
        ConfigResource::Broker(scope) => broker.set_broker_configs(*scope, configs, validate_only),
    }
    .map_err(ConfigError::from)
}

/// True when `key` of this resource holds a comma-separated list.
pub fn is_list(resource: &ConfigResource, key: &str) -> bool {
    let topic_key = match resource {
        ConfigResource::Topic(_) => Some(key),
        ConfigResource::Broker(_) => topic_key_for(key),
    };
    topic_key.is_some_and(|k| topic_key_spec(k).0 == config_type::LIST)
}

fn unknown_topic(name: &str) -> ConfigError {
    ConfigError {
        code: UNKNOWN_TOPIC_OR_PARTITION,
        message: format!("topic {name:?} does not exist"),
    }
}

/// Every config of a topic whose explicit configs are `explicit` and whose effective log
/// config is `effective`: each key sluice's storage knows, plus any other explicit key.
pub fn topic_entries(
    broker: &Broker,
    explicit: &BTreeMap<String, String>,
    effective: &LogConfig,
) -> Vec<ConfigEntry> {
    let layers = BrokerLayers::capture(broker, BrokerConfigScope::ThisBroker);
    let mut entries: Vec<ConfigEntry> = LOG_CONFIG_KEYS
        .iter()
        .map(|key| {
            let mut synonyms = Vec::new();
            if let Some(v) = explicit.get(*key) {
                synonyms.push(synonym(key, v, source::DYNAMIC_TOPIC_CONFIG));
            }
            synonyms.extend(layers.synonyms(key));
            let value = effective.get(key).unwrap_or_default();
            entry(key, value, false, topic_key_spec(key), synonyms)
        })
        .collect();
    for (key, value) in explicit {
        if !LOG_CONFIG_KEYS.contains(&key.as_str()) {
            let own = vec![synonym(key, value, source::DYNAMIC_TOPIC_CONFIG)];
            entries.push(entry(key, value.clone(), false, topic_key_spec(key), own));
        }
    }
    entries
}

/// Every config of the broker seen from `scope`, sorted by name: the dynamic topic defaults
/// (writable), the static settings (read-only) and `log.retention.hours`.
pub fn broker_entries(broker: &Broker, scope: BrokerConfigScope) -> Vec<ConfigEntry> {
    let layers = BrokerLayers::capture(broker, scope);
    let effective = broker.topic_defaults_at(scope);
    let mut entries: Vec<ConfigEntry> = TOPIC_CONFIG_SYNONYMS
        .iter()
        .map(|(topic_key, broker_key)| {
            let value = effective.get(topic_key).unwrap_or_default();
            let spec = topic_key_spec(topic_key);
            entry(broker_key, value, false, spec, layers.synonyms(topic_key))
        })
        .collect();
    let builtin = BrokerConfig::default();
    entries.extend(STATIC_BROKER_KEYS.iter().map(|k| {
        let value = (k.value)(&broker.config);
        let source = if value == (k.value)(&builtin) {
            source::DEFAULT_CONFIG
        } else {
            source::STATIC_BROKER_CONFIG
        };
        let own = vec![synonym(k.name, &value, source)];
        entry(k.name, value, true, (k.config_type, k.doc), own)
    }));
    if let Some(hours) = retention_hours(&entries) {
        entries.push(hours);
    }
    entries.sort_by(|a, b| a.name.cmp(&b.name));
    entries
}

/// `log.retention.hours`, read-only, derived from the effective `log.retention.ms`.
fn retention_hours(entries: &[ConfigEntry]) -> Option<ConfigEntry> {
    const NAME: &str = "log.retention.hours";
    let ms = entries.iter().find(|e| e.name == "log.retention.ms")?;
    let hours = ms.value.parse::<i64>().ok()?;
    let value = if hours < 0 { -1 } else { hours / 3_600_000 }.to_string();
    let own = vec![synonym(NAME, &value, ms.source)];
    let doc = "log.retention.ms in hours (read-only here; change log.retention.ms).";
    Some(entry(NAME, value, true, (config_type::INT, doc), own))
}

fn synonym(name: &str, value: &str, source: i8) -> ConfigSynonym {
    ConfigSynonym {
        name: name.to_string(),
        value: value.to_string(),
        source,
    }
}

fn entry(
    name: &str,
    value: String,
    read_only: bool,
    (config_type, documentation): (i8, &'static str),
    synonyms: Vec<ConfigSynonym>,
) -> ConfigEntry {
    ConfigEntry {
        name: name.to_string(),
        value,
        source: synonyms
            .first()
            .map_or(source::DEFAULT_CONFIG, |s| s.source),
        read_only,
        config_type,
        documentation,
        synonyms,
    }
}

/// The broker-level layers of topic defaults, captured once per request.
struct BrokerLayers {
    this_broker: BTreeMap<String, String>,
    cluster_default: BTreeMap<String, String>,
    static_defaults: LogConfig,
    builtin: LogConfig,
}

impl BrokerLayers {
    /// The layers visible from `scope` (the cluster default does not see this broker's own).
    fn capture(broker: &Broker, scope: BrokerConfigScope) -> Self {
        let this_broker = match scope {
            BrokerConfigScope::ThisBroker => broker.dynamic_broker_configs(scope),
            BrokerConfigScope::ClusterDefault => BTreeMap::new(),
        };
        BrokerLayers {
            this_broker,
            cluster_default: broker.dynamic_broker_configs(BrokerConfigScope::ClusterDefault),
            static_defaults: broker.static_defaults.clone(),
            builtin: LogConfig::default(),
        }
    }

    /// The broker layers holding a value for topic key `key`, highest precedence first; the
    /// built-in default is always there.
    fn synonyms(&self, key: &str) -> Vec<ConfigSynonym> {
        let broker_key = broker_key_for(key).unwrap_or(key);
        let mut out = Vec::new();
        if let Some(v) = self.this_broker.get(broker_key) {
            out.push(synonym(broker_key, v, source::DYNAMIC_BROKER_CONFIG));
        }
        if let Some(v) = self.cluster_default.get(broker_key) {
            out.push(synonym(
                broker_key,
                v,
                source::DYNAMIC_DEFAULT_BROKER_CONFIG,
            ));
        }
        let builtin = self.builtin.get(key).unwrap_or_default();
        match self.static_defaults.get(key) {
            Some(v) if v != builtin => {
                out.push(synonym(broker_key, &v, source::STATIC_BROKER_CONFIG))
            }
            _ => {}
        }
        out.push(synonym(broker_key, &builtin, source::DEFAULT_CONFIG));
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::handlers::test_support::test_broker;

    fn find<'a>(entries: &'a [ConfigEntry], name: &str) -> &'a ConfigEntry {
        entries
            .iter()
            .find(|e| e.name == name)
            .unwrap_or_else(|| panic!("{name} missing"))
    }

    #[test]
    fn every_storage_key_has_a_spec() {
        for key in LOG_CONFIG_KEYS {
            assert!(
                TOPIC_KEYS.iter().any(|s| s.name == *key),
                "{key} has no KeySpec"
            );
        }
    }

    #[test]
    fn sources_follow_the_layers() {
        let (_dir, broker) = test_broker();
        let topic = ConfigResource::Topic("t".into());
        broker
            .create_topic(crate::broker::NewTopic {
                name: "t".into(),
                partitions: 1,
                replication_factor: 1,
                configs: [("retention.ms".to_string(), "1000".to_string())].into(),
            })
            .unwrap();
        let cluster = ConfigResource::Broker(BrokerConfigScope::ClusterDefault);
        let layer = [("log.retention.bytes".to_string(), "5000".to_string())].into();
        replace(&broker, &cluster, layer, false).unwrap();

        let entries = describe(&broker, &topic).unwrap();
        assert_eq!(entries.len(), LOG_CONFIG_KEYS.len());
        let retention = find(&entries, "retention.ms");
        assert_eq!(
            (retention.value.as_str(), retention.source),
            ("1000", source::DYNAMIC_TOPIC_CONFIG)
        );
        assert_eq!(retention.synonyms[1].name, "log.retention.ms");
        let bytes = find(&entries, "retention.bytes");
        assert_eq!(
            (bytes.value.as_str(), bytes.source),
            ("5000", source::DYNAMIC_DEFAULT_BROKER_CONFIG)
        );
        assert_eq!(find(&entries, "segment.ms").source, source::DEFAULT_CONFIG);
        assert_eq!(broker.log("t", 0).unwrap().config().retention_bytes, 5000);

        let this = ConfigResource::Broker(BrokerConfigScope::ThisBroker);
        let layer = [("log.retention.bytes".to_string(), "7000".to_string())].into();
        replace(&broker, &this, layer, false).unwrap();
        let entries = describe(&broker, &this).unwrap();
        let bytes = find(&entries, "log.retention.bytes");
        assert_eq!(
            (bytes.value.as_str(), bytes.source),
            ("7000", source::DYNAMIC_BROKER_CONFIG)
        );
        assert_eq!(bytes.synonyms.len(), 3);
        let at_default = describe(&broker, &cluster).unwrap();
        assert_eq!(find(&at_default, "log.retention.bytes").value, "5000");
        assert_eq!(broker.log("t", 0).unwrap().config().retention_bytes, 7000);
        assert!(find(&entries, "broker.id").read_only);
        assert_eq!(find(&entries, "log.retention.hours").value, "168");
    }

    #[test]
    fn static_keys_are_refused_with_their_name() {
        let (_dir, broker) = test_broker();
        let this = ConfigResource::Broker(BrokerConfigScope::ThisBroker);
        let layer = [("num.partitions".to_string(), "3".to_string())].into();
        let err = replace(&broker, &this, layer, false).unwrap_err();
        assert_eq!(err.code, 40);
        assert!(err.message.contains("num.partitions"), "{}", err.message);
        assert!(resolve(&broker, RESOURCE_BROKER, "7").is_err());
        assert!(resolve(&broker, 8, "x").is_err());
        assert!(is_list(&this, "log.cleanup.policy"));
        assert!(!is_list(&this, "log.retention.ms"));
    }
}
