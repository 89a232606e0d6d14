//! The broker's shared state: configuration, the topic registry, the log store, append
//! signals for long-polling fetches, and fetch sessions. Handlers get an `&Broker`.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::Arc;

use anyhow::Context;
use parking_lot::{Mutex, RwLock};
use sluice_storage::{LogConfig, LogStore, PartitionLog, TopicPartition};
use tokio::sync::Notify;
use uuid::Uuid;

use crate::config::{topic_key_for, BrokerConfig};
use crate::fetch_session::FetchSessions;
use crate::groups::{offsets_log, GroupCoordinator};
use crate::topics::{validate_topic_name, TopicError, TopicMeta, TopicRegistry};
use crate::txn::{MarkerWriter, TransactionCoordinator};

/// Everything request handlers share.
pub struct Broker {
    /// The effective configuration.
    pub config: BrokerConfig,
    /// Topic defaults from the static `[log]` section alone (what DescribeConfigs reports as
    /// STATIC_BROKER_CONFIG); dynamic broker configs are layered on top of it.
    pub static_defaults: LogConfig,
    /// Effective topic defaults: `static_defaults` overlaid with the dynamic broker configs.
    /// Changes when AlterConfigs sets broker configs; read it with [`Broker::topic_defaults`].
    defaults: RwLock<LogConfig>,
    /// Serialises every change that decides which config a log runs with (topic and broker
    /// config changes, topic and partition creation, topic deletion), so two concurrent admin
    /// requests cannot leave a log on a stale config or resurrect a deleted partition.
    config_changes: Mutex<()>,
    /// Topics whose partition files are being deleted; their names are not reusable until the
    /// files are gone (shared with the blocking task that deletes them).
    deleting: Arc<Mutex<HashSet<String>>>,
    /// Topics, ids, their configs and the dynamic broker configs.
    pub topics: TopicRegistry,
    /// Partition logs.
    pub store: Arc<LogStore>,
    /// Wakes fetches waiting for data on a partition.
    pub appends: AppendSignals,
    /// KIP-227 fetch sessions.
    pub fetch_sessions: FetchSessions,
    /// Consumer groups and committed offsets.
    pub groups: Arc<GroupCoordinator>,
    /// Transactional ids, their transactions and markers.
    pub transactions: Arc<TransactionCoordinator>,
    /// Producer ids for InitProducerId.
    pub producer_ids: crate::handlers::init_producer_id::ProducerIds,
    /// Host advertised in Metadata.
    pub advertised_host: String,
    /// Port advertised in Metadata.
    pub advertised_port: i32,
}

impl std::fmt::Debug for Broker {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Broker")
            .field("node_id", &self.config.node_id)
            .finish()
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

/// Which layer of dynamic broker configs a BROKER config resource names, as in Kafka: the
/// empty name is the cluster-wide default, a node id is that broker's own override.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BrokerConfigScope {
    /// Resource name "": defaults for every broker (DYNAMIC_DEFAULT_BROKER_CONFIG).
    ClusterDefault,
    /// Resource name = this broker's node id (DYNAMIC_BROKER_CONFIG); overrides the default.
    ThisBroker,
}

/// Registry key of the cluster-wide dynamic broker configs (Kafka's `<default>` entity).
const CLUSTER_DEFAULT_SCOPE: &str = "<default>";

impl Broker {
    /// Opens the registry and the store (recovering logs if needed) and reconciles them.
    pub fn open(config: BrokerConfig) -> anyhow::Result<Self> {
        let static_defaults = config.topic_defaults()?;
        std::fs::create_dir_all(&config.data_dir).with_context(|| {
            format!("cannot create data directory {}", config.data_dir.display())
        })?;
        let topics = TopicRegistry::open(&config.data_dir)?;
        let layers = [
            topics.broker_configs(CLUSTER_DEFAULT_SCOPE),
            topics.broker_configs(&config.node_id.to_string()),
        ];
        let defaults = overlay_broker_configs(&static_defaults, &layers).unwrap_or_else(|e| {
            tracing::error!(error = %e, "ignoring the stored dynamic broker configs; fix them with AlterConfigs");
            static_defaults.clone()
        });
        let store = LogStore::open(&config.data_dir, |t| topics.log_config(t, &defaults))
            .with_context(|| format!("cannot open data directory {}", config.data_dir.display()))?;
        let offsets_log = ensure_internal_topic(&topics, &store, offsets_log::TOPIC)?;
        let groups = Arc::new(
            GroupCoordinator::open(offsets_log, config.group_settings())
                .context("cannot load consumer groups from __consumer_offsets")?,
        );
        let txn_log = ensure_internal_topic(&topics, &store, crate::txn::log::TOPIC)?;
        let transactions = Arc::new(
            TransactionCoordinator::open(txn_log, config.txn_settings())
                .context("cannot load transactions from __transaction_state")?,
        );
        let (host, port) = config.advertised()?;
        let broker = Broker {
            groups,
            transactions,
            advertised_host: host,
            advertised_port: i32::from(port),
            static_defaults,
            defaults: RwLock::new(defaults),
            config_changes: Mutex::new(()),
            deleting: Arc::default(),
            topics,
            store: Arc::new(store),
            appends: AppendSignals::default(),
            fetch_sessions: FetchSessions::default(),
            producer_ids: Default::default(),
            config,
        };
        broker.reconcile()?;
        // Transactions a stop left half-ended get their markers now.
        broker.transactions.tick(sluice_storage::now_ms(), &broker);
        Ok(broker)
    }

    /// Makes the registry and the partition directories agree: a registered topic gets its
    /// missing partition logs, a partition directory with no registered topic is adopted
    /// (metadata lost) with a warning rather than ignored.
    fn reconcile(&self) -> anyhow::Result<()> {
        for name in self.topics.pending_deletions() {
            for log in self.store.all() {
                if log.topic_partition().topic == name {
                    self.store.delete(log.topic_partition())?;
                }
            }
            self.topics
                .finish_deletion(&name)
                .map_err(|e| anyhow::anyhow!("{e}"))?;
            tracing::info!(topic = %name, "finished deleting a topic interrupted by a stop");
        }
        for meta in self.topics.all() {
            let config = self.topic_log_config(&meta.name);
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
                    .get_or_create(&TopicPartition::new(name.clone(), p), self.topic_defaults())?;
            }
        }
        Ok(())
    }

    /// The log of a partition, if the topic and partition exist.
    pub fn log(&self, topic: &str, partition: i32) -> Option<Arc<PartitionLog>> {
        self.store.get(&TopicPartition::new(topic, partition))
    }

    /// The topic defaults in force now: the `[log]` section overlaid with the dynamic broker
    /// configs.
    pub fn topic_defaults(&self) -> LogConfig {
        self.defaults.read().clone()
    }

    /// The log config `topic` runs with: the topic defaults overridden by its own configs.
    pub fn topic_log_config(&self, topic: &str) -> LogConfig {
        let defaults = self.topic_defaults();
        self.topics.log_config(topic, &defaults)
    }

    /// The log config a topic with these explicit configs would run with; refuses a bad key
    /// or value with the storage layer's explanation.
    pub fn preview_topic_config(
        &self,
        configs: &BTreeMap<String, String>,
    ) -> Result<LogConfig, TopicError> {
        let mut config = self.topic_defaults();
        for (k, v) in configs {
            config
                .apply(k, v)
                .map_err(|e| TopicError::InvalidConfig(e.to_string()))?;
        }
        Ok(config)
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
        if self.deleting.lock().contains(&topic.name) {
            return Err(TopicError::BeingDeleted(topic.name.clone()));
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
        check_partition_limit(partitions)?;
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
        let config = self.preview_topic_config(&topic.configs)?;
        Ok((partitions, rf, config))
    }

    /// Creates a topic and its partition logs.
    pub fn create_topic(&self, topic: NewTopic) -> Result<TopicMeta, TopicError> {
        let _changing = self.config_changes.lock();
        let (partitions, replication_factor, config) = self.validate_new_topic(&topic)?;
        let meta = self.topics.create(TopicMeta {
            name: topic.name.clone(),
            id: Uuid::new_v4(),
            partitions,
            replication_factor,
            configs: topic.configs,
        })?;
        self.create_partition_logs(&meta.name, 0..partitions, &config)?;
        tracing::info!(topic = %meta.name, partitions, "created topic");
        Ok(meta)
    }

    /// Deletes a topic: it leaves the registry at once (Metadata stops listing it), then its
    /// partition files are removed on a blocking thread. The name can be reused once the
    /// files are gone, even if the caller stops waiting.
    pub async fn delete_topic(&self, name: &str) -> Result<TopicMeta, TopicError> {
        let meta = {
            let _changing = self.config_changes.lock();
            let meta = self.topics.remove(name)?;
            self.deleting.lock().insert(name.to_string());
            meta
        };
        let store = self.store.clone();
        let deleting = self.deleting.clone();
        let topic = meta.name.clone();
        let partitions = meta.partitions;
        let removal = tokio::task::spawn_blocking(move || {
            for p in 0..partitions {
                let tp = TopicPartition::new(topic.clone(), p);
                if let Err(e) = store.delete(&tp) {
                    tracing::error!(partition = %tp, error = %e, "could not delete partition files");
                }
            }
            deleting.lock().remove(&topic);
        });
        match removal.await {
            Ok(()) => {
                if let Err(e) = self.topics.finish_deletion(name) {
                    tracing::error!(topic = %name, error = %e, "could not record the finished deletion");
                }
            }
            Err(e) => tracing::error!(topic = %name, error = %e, "deleting partition files failed"),
        }
        for p in 0..partitions {
            self.appends.forget(&TopicPartition::new(name, p));
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
        let _changing = self.config_changes.lock();
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
        check_partition_limit(total)?;
        if validate_only {
            return Ok(meta);
        }
        let config = self.topic_log_config(name);
        self.create_partition_logs(name, meta.partitions..total, &config)?;
        let meta = self.topics.update(name, |m| {
            m.partitions = total;
            Ok(())
        })?;
        tracing::info!(topic = %name, partitions = total, "added partitions");
        Ok(meta)
    }

    fn create_partition_logs(
        &self,
        topic: &str,
        partitions: std::ops::Range<i32>,
        config: &LogConfig,
    ) -> Result<(), TopicError> {
        for p in partitions {
            self.store
                .get_or_create(&TopicPartition::new(topic, p), config.clone())
                .map_err(|e| TopicError::Storage(e.to_string()))?;
        }
        Ok(())
    }

    /// Replaces a topic's explicit configs (after validating them) and applies them to its
    /// logs. Keys not listed fall back to the broker defaults, as with Kafka's AlterConfigs.
    pub fn set_topic_configs(
        &self,
        name: &str,
        configs: BTreeMap<String, String>,
        validate_only: bool,
    ) -> Result<(), TopicError> {
        let _changing = self.config_changes.lock();
        if self.topics.get(name).is_none() {
            return Err(TopicError::Unknown(name.to_string()));
        }
        let config = self.preview_topic_config(&configs)?;
        if validate_only {
            return Ok(());
        }
        self.topics.update(name, |m| {
            m.configs = configs;
            Ok(())
        })?;
        self.store.set_topic_config(name, &config);
        tracing::info!(topic = %name, "changed topic configs");
        Ok(())
    }

    /// Resolves the name of a BROKER config resource: "" is the cluster-wide default, this
    /// broker's node id is this broker; anything else is refused with the reason.
    pub fn broker_config_scope(&self, resource_name: &str) -> Result<BrokerConfigScope, String> {
        let node_id = self.config.node_id;
        match resource_name {
            "" => Ok(BrokerConfigScope::ClusterDefault),
            name if name.trim().parse::<i32>() == Ok(node_id) => Ok(BrokerConfigScope::ThisBroker),
            name => Err(format!(
                "broker {name:?} is not in this cluster: its only broker has node id {node_id} \
                 (use \"{node_id}\", or \"\" for the cluster-wide default)"
            )),
        }
    }

    fn scope_key(&self, scope: BrokerConfigScope) -> String {
        match scope {
            BrokerConfigScope::ClusterDefault => CLUSTER_DEFAULT_SCOPE.to_string(),
            BrokerConfigScope::ThisBroker => self.config.node_id.to_string(),
        }
    }

    /// The dynamic broker configs set at `scope` (broker config key to value).
    pub fn dynamic_broker_configs(&self, scope: BrokerConfigScope) -> BTreeMap<String, String> {
        self.topics.broker_configs(&self.scope_key(scope))
    }

    /// The topic defaults as seen from `scope`: at the cluster-default scope this broker's own
    /// overrides are left out.
    pub fn topic_defaults_at(&self, scope: BrokerConfigScope) -> LogConfig {
        match scope {
            BrokerConfigScope::ThisBroker => self.topic_defaults(),
            BrokerConfigScope::ClusterDefault => {
                let layers = [self.dynamic_broker_configs(BrokerConfigScope::ClusterDefault)];
                overlay_broker_configs(&self.static_defaults, &layers)
                    .unwrap_or_else(|_| self.static_defaults.clone())
            }
        }
    }

    /// Replaces the dynamic broker configs of `scope` (keys not listed revert to the layer
    /// below), then applies the new topic defaults to every log without its own override.
    /// Only the broker-level names of topic configs (`config::TOPIC_CONFIG_SYNONYMS`) are
    /// dynamic.
    pub fn set_broker_configs(
        &self,
        scope: BrokerConfigScope,
        configs: BTreeMap<String, String>,
        validate_only: bool,
    ) -> Result<(), TopicError> {
        let _changing = self.config_changes.lock();
        let other = match scope {
            BrokerConfigScope::ClusterDefault => BrokerConfigScope::ThisBroker,
            BrokerConfigScope::ThisBroker => BrokerConfigScope::ClusterDefault,
        };
        let mut layers = [configs.clone(), self.dynamic_broker_configs(other)];
        if scope == BrokerConfigScope::ThisBroker {
            layers.reverse();
        }
        let defaults = overlay_broker_configs(&self.static_defaults, &layers)
            .map_err(TopicError::InvalidConfig)?;
        if validate_only {
            return Ok(());
        }
        self.topics
            .set_broker_configs(&self.scope_key(scope), configs)?;
        *self.defaults.write() = defaults.clone();
        self.reapply_log_configs(&defaults);
        tracing::info!(?scope, "changed dynamic broker configs");
        Ok(())
    }

    /// Gives every open log the config of its topic under new topic defaults.
    fn reapply_log_configs(&self, defaults: &LogConfig) {
        let mut per_topic: HashMap<String, LogConfig> = HashMap::new();
        for log in self.store.all() {
            let topic = &log.topic_partition().topic;
            let config = per_topic
                .entry(topic.clone())
                .or_insert_with(|| self.topics.log_config(topic, defaults));
            log.set_config(config.clone());
        }
    }
}

fn check_partition_limit(partitions: i32) -> Result<(), TopicError> {
    if partitions > 100_000 {
        return Err(TopicError::InvalidPartitions(format!(
            "{partitions} partitions is more than this broker supports (100000)"
        )));
    }
    Ok(())
}

/// `base` overlaid with dynamic broker config layers, lowest precedence first. A key that is
/// not a dynamic broker config, or a bad value, is refused with the key named.
fn overlay_broker_configs(
    base: &LogConfig,
    layers: &[BTreeMap<String, String>],
) -> Result<LogConfig, String> {
    let mut config = base.clone();
    for (key, value) in layers.iter().flatten() {
        let Some(topic_key) = topic_key_for(key) else {
            return Err(format!(
                "broker config {key:?} cannot be changed while sluice runs: only the \
                 broker-level topic defaults (log.retention.ms, log.segment.bytes, \
                 log.cleanup.policy, message.max.bytes and the other log.* synonyms of topic \
                 configs) are dynamic; set it in sluice.toml and restart"
            ));
        };
        config
            .apply(topic_key, value)
            .map_err(|e| format!("{key}: {e}"))?;
    }
    Ok(config)
}

/// Creates an internal topic (`__consumer_offsets`, `__transaction_state`: one compacted
/// partition) if it does not exist yet and returns its log.
fn ensure_internal_topic(
    topics: &TopicRegistry,
    store: &LogStore,
    name: &str,
) -> anyhow::Result<Arc<PartitionLog>> {
    let configs: std::collections::BTreeMap<String, String> = [
        ("cleanup.policy", "compact"),
        ("segment.bytes", "104857600"),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_string(), v.to_string()))
    .collect();
    if topics.get(name).is_none() {
        topics
            .create(TopicMeta {
                name: name.to_string(),
                id: Uuid::new_v4(),
                partitions: 1,
                replication_factor: 1,
                configs: configs.clone(),
            })
            .map_err(|e| anyhow::anyhow!("cannot create {name}: {e}"))?;
    }
    let config = LogConfig::from_pairs(configs.iter().map(|(k, v)| (k.as_str(), v.as_str())))?;
    Ok(store.get_or_create(&TopicPartition::new(name, 0), config)?)
}

impl MarkerWriter for Broker {
    fn write_marker(
        &self,
        topic: &str,
        partition: i32,
        marker: &sluice_storage::TxnMarker,
    ) -> Result<(), sluice_storage::StorageError> {
        let Some(log) = self.log(topic, partition) else {
            tracing::debug!(
                topic,
                partition,
                "no marker for a partition that no longer exists"
            );
            return Ok(());
        };
        match log.write_marker(marker, sluice_storage::now_ms()) {
            Err(sluice_storage::StorageError::InvalidProducerEpoch(why)) => {
                // The partition saw a newer epoch than the coordinator's: nothing of this
                // transaction can be there, so there is nothing to end.
                tracing::warn!(topic, partition, why, "transaction marker refused as stale");
                return Ok(());
            }
            other => other?,
        };
        if topic == offsets_log::TOPIC {
            self.groups.complete_txn(marker.producer_id, marker.commit);
        }
        self.appends.notify(log.topic_partition());
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
