//! Broker configuration: defaults, then `config/sluice.toml` (or `--config FILE`), then
//! `SLUICE_*` environment variables, then command-line flags, each overriding the last.

use std::path::{Path, PathBuf};

use anyhow::{bail, Context};
use serde::{Deserialize, Serialize};
use sluice_storage::{LogConfig, MaintenanceSettings};

/// Everything `sluice serve` can be configured with. See config/sluice.toml for the
/// annotated reference.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct BrokerConfig {
    /// Address the Kafka listener binds to.
    pub listen: String,
    /// Directory holding partition logs and broker metadata.
    pub data_dir: PathBuf,
    /// `tracing` filter, e.g. `info` or `sluice_storage=debug,info`.
    pub log_level: String,
    /// Host:port clients are told to connect to (Metadata); empty means `listen`.
    pub advertised_listener: String,
    /// This broker's node id in Metadata responses.
    pub node_id: i32,
    /// `auto.create.topics.enable`: create unknown topics a client asks metadata for.
    pub auto_create_topics: bool,
    /// `num.partitions`: partitions of auto-created topics and of CreateTopics with -1.
    pub num_partitions: i32,
    /// `default.replication.factor`: replication factor reported for auto-created topics.
    pub default_replication_factor: i16,
    /// Largest replication factor CreateTopics accepts (data is stored once; the factor is
    /// recorded so tools written for a multi-broker MSK cluster keep working).
    pub max_replication_factor: i16,
    /// `socket.request.max.bytes`: the largest request frame accepted.
    pub socket_request_max_bytes: usize,
    /// `group.initial.rebalance.delay.ms`: a new group waits this long for more members
    /// before its first assignment.
    pub group_initial_rebalance_delay_ms: u64,
    /// `group.min.session.timeout.ms`.
    pub group_min_session_timeout_ms: i32,
    /// `group.max.session.timeout.ms`.
    pub group_max_session_timeout_ms: i32,
    /// `offsets.retention.minutes`: offsets of a group empty this long are deleted.
    pub offsets_retention_minutes: i64,
    /// `transaction.max.timeout.ms`: the largest `transaction.timeout.ms` a transactional
    /// producer may ask for (InitProducerId answers INVALID_TRANSACTION_TIMEOUT above it).
    pub transaction_max_timeout_ms: i32,
    /// `transaction.abort.timed.out.transaction.cleanup.interval.ms`: how often
    /// transactions open longer than their timeout are looked for and aborted.
    pub transaction_abort_timed_out_transaction_cleanup_interval_ms: u64,
    /// `transactional.id.expiration.ms`: a transactional id with no open transaction and no
    /// change for this long is forgotten.
    pub transactional_id_expiration_ms: i64,
    /// `producer.id.expiration.ms`: a producer id with no open transaction that wrote nothing
    /// to a partition for this long is forgotten there (checked every 10 minutes).
    pub producer_id_expiration_ms: i64,
    /// Broker-wide defaults of topic log settings and the maintenance intervals.
    pub log: LogSection,
}

/// The `[log]` section: Kafka's `log.*` broker settings, defaults for every topic.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct LogSection {
    /// `log.segment.bytes`.
    pub segment_bytes: u64,
    /// `log.roll.ms`.
    pub segment_ms: i64,
    /// `log.retention.ms` (-1: forever).
    pub retention_ms: i64,
    /// `log.retention.bytes` (-1: unlimited).
    pub retention_bytes: i64,
    /// `log.cleanup.policy`: delete, compact or "compact,delete".
    pub cleanup_policy: String,
    /// `log.flush.interval.messages`: fsync after this many messages (1: every batch).
    pub flush_messages: i64,
    /// `log.flush.interval.ms`: fsync at least this often.
    pub flush_ms: i64,
    /// `message.max.bytes`: largest record batch accepted.
    pub max_message_bytes: usize,
    /// `log.index.interval.bytes`.
    pub index_interval_bytes: u64,
    /// `log.retention.check.interval.ms`.
    pub retention_check_interval_ms: u64,
    /// `log.cleaner.backoff.ms`.
    pub cleaner_backoff_ms: u64,
}

impl Default for BrokerConfig {
    fn default() -> Self {
        BrokerConfig {
            listen: "127.0.0.1:9092".to_string(),
            data_dir: PathBuf::from("./data"),
            log_level: "info".to_string(),
            advertised_listener: String::new(),
            node_id: 0,
            auto_create_topics: true,
            num_partitions: 1,
            default_replication_factor: 1,
            max_replication_factor: 3,
            socket_request_max_bytes: 104_857_600,
            group_initial_rebalance_delay_ms: 3000,
            group_min_session_timeout_ms: 6000,
            group_max_session_timeout_ms: 1_800_000,
            offsets_retention_minutes: 10080,
            transaction_max_timeout_ms: 900_000,
            transaction_abort_timed_out_transaction_cleanup_interval_ms: 10_000,
            transactional_id_expiration_ms: 604_800_000,
            producer_id_expiration_ms: 86_400_000,
            log: LogSection::default(),
        }
    }
}

impl Default for LogSection {
    fn default() -> Self {
        let d = LogConfig::default();
        let m = MaintenanceSettings::default();
        LogSection {
            segment_bytes: d.segment_bytes,
            segment_ms: d.segment_ms,
            retention_ms: d.retention_ms,
            retention_bytes: d.retention_bytes,
            cleanup_policy: "delete".to_string(),
            flush_messages: d.flush_messages,
            flush_ms: d.flush_ms,
            max_message_bytes: d.max_message_bytes,
            index_interval_bytes: d.index_interval_bytes,
            retention_check_interval_ms: m.retention_check_interval.as_millis() as u64,
            cleaner_backoff_ms: m.cleaner_backoff.as_millis() as u64,
        }
    }
}

/// Kafka's broker-level name of every topic config key: `log.retention.ms` is the broker-wide
/// default of a topic's `retention.ms`. DescribeConfigs reports these as synonyms, and they are
/// the broker configs AlterConfigs may change while the broker runs (dynamic defaults).
pub const TOPIC_CONFIG_SYNONYMS: &[(&str, &str)] = &[
    ("cleanup.policy", "log.cleanup.policy"),
    ("delete.retention.ms", "log.cleaner.delete.retention.ms"),
    ("flush.messages", "log.flush.interval.messages"),
    ("flush.ms", "log.flush.interval.ms"),
    ("index.interval.bytes", "log.index.interval.bytes"),
    ("max.message.bytes", "message.max.bytes"),
    (
        "message.timestamp.after.max.ms",
        "log.message.timestamp.after.max.ms",
    ),
    (
        "message.timestamp.before.max.ms",
        "log.message.timestamp.before.max.ms",
    ),
    ("message.timestamp.type", "log.message.timestamp.type"),
    (
        "min.cleanable.dirty.ratio",
        "log.cleaner.min.cleanable.ratio",
    ),
    ("min.compaction.lag.ms", "log.cleaner.min.compaction.lag.ms"),
    ("retention.bytes", "log.retention.bytes"),
    ("retention.ms", "log.retention.ms"),
    ("segment.bytes", "log.segment.bytes"),
    ("segment.index.bytes", "log.index.size.max.bytes"),
    ("segment.ms", "log.roll.ms"),
    ("segment.jitter.ms", "log.roll.jitter.ms"),
    ("file.delete.delay.ms", "log.segment.delete.delay.ms"),
    ("local.retention.ms", "log.local.retention.ms"),
    ("local.retention.bytes", "log.local.retention.bytes"),
    ("compression.type", "compression.type"),
    ("compression.gzip.level", "compression.gzip.level"),
    ("compression.lz4.level", "compression.lz4.level"),
    ("compression.zstd.level", "compression.zstd.level"),
    ("max.compaction.lag.ms", "log.cleaner.max.compaction.lag.ms"),
    (
        "message.downconversion.enable",
        "log.message.downconversion.enable",
    ),
    ("min.insync.replicas", "min.insync.replicas"),
    ("preallocate", "log.preallocate"),
    (
        "unclean.leader.election.enable",
        "unclean.leader.election.enable",
    ),
];

/// Topic configs with no broker-wide default in Kafka either: they are set per topic only.
pub const TOPIC_ONLY_CONFIGS: &[&str] = &[
    "follower.replication.throttled.replicas",
    "leader.replication.throttled.replicas",
    "remote.storage.enable",
];

/// The broker config that sets the default of topic config `topic_key`.
pub fn broker_key_for(topic_key: &str) -> Option<&'static str> {
    TOPIC_CONFIG_SYNONYMS
        .iter()
        .find(|(t, _)| *t == topic_key)
        .map(|(_, b)| *b)
}

/// The topic config whose default broker config `broker_key` sets, if it is one.
pub fn topic_key_for(broker_key: &str) -> Option<&'static str> {
    TOPIC_CONFIG_SYNONYMS
        .iter()
        .find(|(_, b)| *b == broker_key)
        .map(|(t, _)| *t)
}

/// Prefix of environment variables that override config keys: `SLUICE_LISTEN`,
/// `SLUICE_LOG_RETENTION_MS`, ...
pub const ENV_PREFIX: &str = "SLUICE_";

impl BrokerConfig {
    /// Loads the config: `path` if given (it must exist), else `config/sluice.toml` when
    /// present, else defaults; then applies `SLUICE_*` variables from `env`.
    pub fn load(
        path: Option<&Path>,
        env: impl IntoIterator<Item = (String, String)>,
    ) -> anyhow::Result<Self> {
        let mut table = match path {
            Some(p) => read_table(p)?,
            None => {
                let default_path = Path::new("config/sluice.toml");
                if default_path.exists() {
                    read_table(default_path)?
                } else {
                    toml::Table::new()
                }
            }
        };
        apply_env(&mut table, env)?;
        let config: BrokerConfig = table
            .try_into()
            .context("invalid configuration (see config/sluice.toml for every key)")?;
        config.validate()?;
        Ok(config)
    }

    /// Checks values that parse but make no sense, naming the key.
    pub fn validate(&self) -> anyhow::Result<()> {
        self.listen
            .parse::<std::net::SocketAddr>()
            .with_context(|| format!("listen = {:?} is not an IP:port address", self.listen))?;
        let (host, port) = self.advertised()?;
        if host.is_empty() || port == 0 {
            bail!(
                "advertised_listener = {:?} needs a host and a non-zero port",
                self.advertised_listener
            );
        }
        if self.num_partitions < 1 {
            bail!(
                "num_partitions = {} must be at least 1",
                self.num_partitions
            );
        }
        if self.default_replication_factor < 1
            || self.default_replication_factor > self.max_replication_factor
        {
            bail!(
                "default_replication_factor = {} must be between 1 and max_replication_factor ({})",
                self.default_replication_factor,
                self.max_replication_factor
            );
        }
        if self.group_min_session_timeout_ms < 1
            || self.group_min_session_timeout_ms > self.group_max_session_timeout_ms
        {
            bail!(
                "group_min_session_timeout_ms = {} must be positive and at most group_max_session_timeout_ms ({})",
                self.group_min_session_timeout_ms,
                self.group_max_session_timeout_ms
            );
        }
        if self.offsets_retention_minutes < 1 {
            bail!(
                "offsets_retention_minutes = {} must be at least 1",
                self.offsets_retention_minutes
            );
        }
        if self.transaction_max_timeout_ms < 1
            || self.transaction_abort_timed_out_transaction_cleanup_interval_ms == 0
            || self.transactional_id_expiration_ms < 1
            || self.producer_id_expiration_ms < 1
        {
            bail!(
                "transaction_max_timeout_ms, transaction_abort_timed_out_transaction_cleanup_interval_ms, \
                 transactional_id_expiration_ms and producer_id_expiration_ms must be positive"
            );
        }
        if self.socket_request_max_bytes < 1024 {
            bail!(
                "socket_request_max_bytes = {} is too small",
                self.socket_request_max_bytes
            );
        }
        self.topic_defaults()?;
        if self.log.retention_check_interval_ms == 0 || self.log.cleaner_backoff_ms == 0 {
            bail!("log.retention_check_interval_ms and log.cleaner_backoff_ms must be positive");
        }
        Ok(())
    }

    /// Settings of the group coordinator.
    pub fn group_settings(&self) -> crate::groups::GroupSettings {
        crate::groups::GroupSettings {
            initial_rebalance_delay: std::time::Duration::from_millis(
                self.group_initial_rebalance_delay_ms,
            ),
            min_session_timeout_ms: self.group_min_session_timeout_ms,
            max_session_timeout_ms: self.group_max_session_timeout_ms,
            offsets_retention_ms: self.offsets_retention_minutes.saturating_mul(60_000),
            max_metadata_bytes: 4096,
        }
    }

    /// The transaction coordinator's settings.
    pub fn txn_settings(&self) -> crate::txn::TxnSettings {
        crate::txn::TxnSettings {
            max_timeout_ms: self.transaction_max_timeout_ms,
            id_expiration_ms: self.transactional_id_expiration_ms,
        }
    }

    /// The host and port advertised to clients.
    pub fn advertised(&self) -> anyhow::Result<(String, u16)> {
        let addr = if self.advertised_listener.is_empty() {
            &self.listen
        } else {
            &self.advertised_listener
        };
        let (host, port) = addr
            .rsplit_once(':')
            .with_context(|| format!("{addr:?} is not host:port"))?;
        let port: u16 = port
            .parse()
            .with_context(|| format!("{addr:?} has no valid port"))?;
        Ok((host.trim_matches(['[', ']']).to_string(), port))
    }

    /// The data directory as an absolute path (what `log.dirs` and DescribeLogDirs report).
    pub fn data_dir_absolute(&self) -> PathBuf {
        std::path::absolute(&self.data_dir).unwrap_or_else(|_| self.data_dir.clone())
    }

    /// The log config every new topic starts from.
    pub fn topic_defaults(&self) -> anyhow::Result<LogConfig> {
        let l = &self.log;
        let pairs = [
            ("segment.bytes", l.segment_bytes.to_string()),
            ("segment.ms", l.segment_ms.to_string()),
            ("retention.ms", l.retention_ms.to_string()),
            ("retention.bytes", l.retention_bytes.to_string()),
            ("cleanup.policy", l.cleanup_policy.clone()),
            ("flush.messages", l.flush_messages.to_string()),
            ("flush.ms", l.flush_ms.to_string()),
            ("max.message.bytes", l.max_message_bytes.to_string()),
            ("index.interval.bytes", l.index_interval_bytes.to_string()),
        ];
        let mut config = LogConfig::default();
        for (key, value) in pairs {
            config
                .apply(key, &value)
                .with_context(|| format!("[log] setting for {key}"))?;
        }
        Ok(config)
    }

    /// Intervals of the background flusher, retention and cleaner.
    pub fn maintenance(&self) -> MaintenanceSettings {
        MaintenanceSettings {
            retention_check_interval: std::time::Duration::from_millis(
                self.log.retention_check_interval_ms,
            ),
            cleaner_backoff: std::time::Duration::from_millis(self.log.cleaner_backoff_ms),
            producer_id_expiration_ms: self.producer_id_expiration_ms,
            ..MaintenanceSettings::default()
        }
    }

    /// The effective configuration as TOML (what `sluice config` prints).
    pub fn to_toml(&self) -> String {
        toml::to_string_pretty(self).unwrap_or_default()
    }
}

fn read_table(path: &Path) -> anyhow::Result<toml::Table> {
    let text = std::fs::read_to_string(path)
        .with_context(|| format!("cannot read config file {}", path.display()))?;
    text.parse::<toml::Table>()
        .with_context(|| format!("{} is not valid TOML", path.display()))
}

/// Every `(section, key)` the config has, from the serialized defaults.
fn known_keys() -> Vec<(Option<String>, String)> {
    let defaults = toml::Table::try_from(BrokerConfig::default()).unwrap_or_default();
    let mut keys = Vec::new();
    for (k, v) in defaults {
        match v {
            toml::Value::Table(section) => {
                keys.extend(section.keys().map(|sk| (Some(k.clone()), sk.clone())))
            }
            _ => keys.push((None, k)),
        }
    }
    keys
}

fn env_name(section: Option<&str>, key: &str) -> String {
    let path = match section {
        Some(s) => format!("{s}_{key}"),
        None => key.to_string(),
    };
    format!("{ENV_PREFIX}{}", path.to_uppercase())
}

fn apply_env(
    table: &mut toml::Table,
    env: impl IntoIterator<Item = (String, String)>,
) -> anyhow::Result<()> {
    let keys = known_keys();
    for (name, value) in env {
        if !name.starts_with(ENV_PREFIX) {
            continue;
        }
        let Some((section, key)) = keys.iter().find(|(s, k)| env_name(s.as_deref(), k) == name)
        else {
            // SLUICE_* variables that are not config keys (e.g. test knobs) are left alone.
            continue;
        };
        let parsed = value
            .parse::<i64>()
            .map(toml::Value::Integer)
            .or_else(|_| value.parse::<bool>().map(toml::Value::Boolean))
            .unwrap_or_else(|_| toml::Value::String(value.clone()));
        let target = match section {
            Some(s) => table
                .entry(s.clone())
                .or_insert_with(|| toml::Value::Table(toml::Table::new()))
                .as_table_mut()
                .with_context(|| format!("config key {s} must be a table"))?,
            None => &mut *table,
        };
        target.insert(key.clone(), parsed);
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn defaults_match_the_documented_ones() {
        let c = BrokerConfig::load(Some(Path::new("../config/sluice.toml")), env(&[])).unwrap();
        assert_eq!(
            c,
            BrokerConfig::default(),
            "config/sluice.toml must show the defaults"
        );
        assert_eq!(c.listen, "127.0.0.1:9092");
        assert_eq!(c.data_dir, PathBuf::from("./data"));
    }

    #[test]
    fn every_topic_config_has_a_broker_synonym_unless_kafka_has_none() {
        for key in sluice_storage::config::LOG_CONFIG_KEYS {
            if TOPIC_ONLY_CONFIGS.contains(key) {
                assert_eq!(broker_key_for(key), None, "{key}");
                continue;
            }
            let broker_key = broker_key_for(key).unwrap_or_else(|| panic!("no synonym for {key}"));
            assert_eq!(topic_key_for(broker_key), Some(*key));
        }
        assert_eq!(
            TOPIC_CONFIG_SYNONYMS.len() + TOPIC_ONLY_CONFIGS.len(),
            sluice_storage::config::LOG_CONFIG_KEYS.len()
        );
    }

    #[test]
    fn env_overrides_file_and_names_bad_values() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("s.toml");
        std::fs::write(&file, "listen = \"127.0.0.1:1\"\n[log]\nretention_ms = 5\n").unwrap();
        let c = BrokerConfig::load(
            Some(&file),
            env(&[
                ("SLUICE_LISTEN", "127.0.0.1:2"),
                ("SLUICE_LOG_FLUSH_MESSAGES", "1"),
            ]),
        )
        .unwrap();
        assert_eq!(c.listen, "127.0.0.1:2");
        assert_eq!(c.log.retention_ms, 5);
        assert_eq!(c.log.flush_messages, 1);
        let err =
            BrokerConfig::load(Some(&file), env(&[("SLUICE_LISTEN", "nowhere")])).unwrap_err();
        assert!(format!("{err:#}").contains("listen"), "{err:#}");
        std::fs::write(&file, "lisen = \"x\"\n").unwrap();
        let err = BrokerConfig::load(Some(&file), env(&[])).unwrap_err();
        assert!(format!("{err:#}").contains("lisen"), "{err:#}");
        let err = BrokerConfig::load(Some(&dir.path().join("missing.toml")), env(&[])).unwrap_err();
        assert!(format!("{err:#}").contains("missing.toml"), "{err:#}");
    }
}
