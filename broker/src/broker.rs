//! The broker's shared state: configuration, the topic registry, the log store, append
//! signals for long-polling fetches, and fetch sessions. Handlers get an `&Broker`.

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;

use anyhow::Context;
use parking_lot::Mutex;
use sluice_storage::{LogConfig, LogStore, PartitionLog, TopicPartition};
use tokio::sync::Notify;
use uuid::Uuid;

use crate::config::BrokerConfig;
use crate::fetch_session::FetchSessions;
use crate::topics::{validate_topic_name, TopicError, TopicMeta, TopicRegistry};

/// Everything request handlers share.
pub struct Broker {
    /// The effective configuration.
    pub config: BrokerConfig,
    /// Broker-wide topic defaults (the `[log]` section).
    pub defaults: LogConfig,
    /// Topics, ids and their configs.
    pub topics: TopicRegistry,
    /// Partition logs.
    pub store: Arc<LogStore>,
    /// Wakes fetches waiting for data on a partition.
    pub appends: AppendSignals,
    /// KIP-227 fetch sessions.
    pub fetch_sessions: FetchSessions,
    /// Host advertised in Metadata.
    pub advertised_host: String,
    /// Port advertised in Metadata.
    pub advertised_port: i32,
}

impl std::fmt::Debug for Broker {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Broker").field("node_id", &self.config.node_id).finish()
    }
}

/// What CreateTopics and auto-creation ask for.
#[derive(Debug, Clone)]
pub struct NewTopic {
    /// Topic name.
    pub name: String,
    /// Partitions; -1 for the broker default.
    pub partitions: i32,
    /// Replication factor; -1 for the broker default.
    pub replication_factor: i16,
    /// Explicit configs.
    pub configs: BTreeMap<String, String>,
}

impl Broker {
    /// Opens the registry and the store (recovering logs if needed) and reconciles them.
    pub fn open(config: BrokerConfig) -> anyhow::Result<Self> {
        let defaults = config.topic_defaults()?;
        std::fs::create_dir_all(&config.data_dir)
            .with_context(|| format!("cannot create data directory {}", config.data_dir.display()))?;
        let topics = TopicRegistry::open(&config.data_dir)?;
        let store = LogStore::open(&config.data_dir, |t| topics.log_config(t, &defaults))
            .with_context(|| format!("cannot open data directory {}", config.data_dir.display()))?;
        let (host, port) = config.advertised()?;
        let broker = Broker {
            advertised_host: host,
            advertised_port: i32::from(port),
            defaults,
            topics,
            store: Arc::new(store),
            appends: AppendSignals::default(),
            fetch_sessions: FetchSessions::default(),
            config,
        };
        broker.reconcile()?;
        Ok(broker)
    }

    /// Makes the registry and the partition directories agree: a registered topic gets its
    /// missing partition logs, a partition directory with no registered topic is adopted
    /// (metadata lost) with a warning rather than ignored.
    fn reconcile(&self) -> anyhow::Result<()> {
        for meta in self.topics.all() {
            let config = self.topics.log_config(&meta.name, &self.defaults);
            for p in 0..meta.partitions {
                self.store
                    .get_or_create(&TopicPartition::new(meta.name.clone(), p), config.clone())?;
            }
        }
        let mut orphans: BTreeMap<String, i32> = BTreeMap::new();
        for log in self.store.all() {
            let tp = log.topic_partition();
            if self.topics.get(&tp.topic).is_none() {
                let max = orphans.entry(tp.topic.clone()).or_insert(0);
                *max = (*max).max(tp.partition + 1);
            }
        }
        for (name, partitions) in orphans {
            tracing::warn!(topic = %name, partitions, "adopting partition directories missing from cluster metadata");
            self.topics
                .create(TopicMeta {
                    name: name.clone(),
                    id: Uuid::new_v4(),
                    partitions,
                    replication_factor: 1,
                    configs: BTreeMap::new(),
                })
                .map_err(|e| anyhow::anyhow!("{e}"))?;
            for p in 0..partitions {
                self.store
                    .get_or_create(&TopicPartition::new(name.clone(), p), self.defaults.clone())?;
            }
        }
        Ok(())
    }

    /// The log of a partition, if the topic and partition exist.
    pub fn log(&self, topic: &str, partition: i32) -> Option<Arc<PartitionLog>> {
        self.store.get(&TopicPartition::new(topic, partition))
    }

    /// Checks a topic request and returns the effective partition count, replication factor
    /// and log config; nothing is created.
    pub fn validate_new_topic(
        &self,
        topic: &NewTopic,
    ) -> Result<(i32, i16, LogConfig), TopicError> {
        validate_topic_name(&topic.name)?;
        if self.topics.get(&topic.name).is_some() {
            return Err(TopicError::AlreadyExists(topic.name.clone()));
        }
        let partitions = match topic.partitions {
            -1 => self.config.num_partitions,
            p if p >= 1 => p,
            p => {
                return Err(TopicError::InvalidPartitions(format!(
                    "number of partitions must be at least 1, got {p}"
                )))
            }
        };
        if partitions > 100_000 {
            return Err(TopicError::InvalidPartitions(format!(
                "{partitions} partitions is more than this broker supports (100000)"
            )));
        }
        let rf = match topic.replication_factor {
            -1 => self.config.default_replication_factor,
            rf => rf,
        };
        if rf < 1 || rf > self.config.max_replication_factor {
            return Err(TopicError::InvalidReplicationFactor(format!(
                "replication factor {rf} is outside 1..={} (max_replication_factor)",
                self.config.max_replication_factor
            )));
        }
        let mut config = self.defaults.clone();
        for (k, v) in &topic.configs {
            config
                .apply(k, v)
                .map_err(|e| TopicError::InvalidConfig(e.to_string()))?;
        }
        Ok((partitions, rf, config))
    }

    /// Creates a topic and its partition logs.
    pub fn create_topic(&self, topic: NewTopic) -> Result<TopicMeta, TopicError> {
        let (partitions, replication_factor, config) = self.validate_new_topic(&topic)?;
        let meta = self.topics.create(TopicMeta {
            name: topic.name.clone(),
            id: Uuid::new_v4(),
            partitions,
            replication_factor,
            configs: topic.configs,
        })?;
        for p in 0..partitions {
            self.store
                .get_or_create(&TopicPartition::new(topic.name.clone(), p), config.clone())
                .map_err(|e| TopicError::Storage(e.to_string()))?;
        }
        tracing::info!(topic = %meta.name, partitions, "created topic");
        Ok(meta)
    }

    /// Deletes a topic and its logs.
    pub fn delete_topic(&self, name: &str) -> Result<TopicMeta, TopicError> {
        let meta = self.topics.remove(name)?;
        for p in 0..meta.partitions {
            let tp = TopicPartition::new(name, p);
            if let Err(e) = self.store.delete(&tp) {
                tracing::error!(partition = %tp, error = %e, "could not delete partition files");
            }
            self.appends.forget(&tp);
        }
        tracing::info!(topic = %name, "deleted topic");
        Ok(meta)
    }

    /// Grows a topic to `total` partitions.
    pub fn create_partitions(
        &self,
        name: &str,
        total: i32,
        validate_only: bool,
    ) -> Result<TopicMeta, TopicError> {
        let meta = self
            .topics
            .get(name)
            .ok_or_else(|| TopicError::Unknown(name.to_string()))?;
        if total <= meta.partitions {
            return Err(TopicError::InvalidPartitions(format!(
                "topic {name:?} has {} partitions; the new count {total} must be larger",
                meta.partitions
            )));
        }
        if total > 100_000 {
            return Err(TopicError::InvalidPartitions(format!(
                "{total} partitions is more than this broker supports (100000)"
            )));
        }
        if validate_only {
            return Ok(meta);
        }
        let config = self.topics.log_config(name, &self.defaults);
        for p in meta.partitions..total {
            self.store
                .get_or_create(&TopicPartition::new(name, p), config.clone())
                .map_err(|e| TopicError::Storage(e.to_string()))?;
        }
        self.topics.update(name, |m| {
            m.partitions = total;
            Ok(())
        })
    }

    /// Replaces a topic's explicit configs (after validating them) and applies them to its
    /// logs.
    pub fn set_topic_configs(
        &self,
        name: &str,
        configs: BTreeMap<String, String>,
        validate_only: bool,
    ) -> Result<(), TopicError> {
        let mut config = self.defaults.clone();
        for (k, v) in &configs {
            config
                .apply(k, v)
                .map_err(|e| TopicError::InvalidConfig(e.to_string()))?;
        }
        if self.topics.get(name).is_none() {
            return Err(TopicError::Unknown(name.to_string()));
        }
        if validate_only {
            return Ok(());
        }
        self.topics.update(name, |m| {
            m.configs = configs;
            Ok(())
        })?;
        self.store.set_topic_config(name, &config);
        Ok(())
    }
}

/// One `Notify` per partition, so a long-polling fetch wakes as soon as data arrives on a
/// partition it reads, without polling.
#[derive(Debug, Default)]
pub struct AppendSignals {
    signals: Mutex<HashMap<TopicPartition, Arc<Notify>>>,
}

impl AppendSignals {
    /// The signal of a partition (created on first use).
    pub fn signal(&self, tp: &TopicPartition) -> Arc<Notify> {
        self.signals.lock().entry(tp.clone()).or_default().clone()
    }

    /// Wakes every fetch waiting on `tp`.
    pub fn notify(&self, tp: &TopicPartition) {
        if let Some(n) = self.signals.lock().get(tp) {
            n.notify_waiters();
        }
    }

    /// Drops the signal of a deleted partition.
    pub fn forget(&self, tp: &TopicPartition) {
        if let Some(n) = self.signals.lock().remove(tp) {
            n.notify_waiters();
        }
    }
}
