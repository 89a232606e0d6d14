//! The topic registry: names, ids, partition counts, per-topic config overrides and the
//! dynamic broker configs set with AlterConfigs.
//!
//! It is the broker's cluster metadata, kept in `<data_dir>/cluster-metadata.json` and
//! rewritten atomically on every change, so topics and configs survive restarts.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

use parking_lot::RwLock;
use serde::{Deserialize, Serialize};
use sluice_storage::{checkpoint, LogConfig};
use uuid::Uuid;

/// One topic's metadata.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TopicMeta {
    /// Topic name.
    pub name: String,
    /// Topic id (KIP-516), stable for the topic's life.
    pub id: Uuid,
    /// Number of partitions.
    pub partitions: i32,
    /// Replication factor the creator asked for (accepted up to the virtual broker count).
    pub replication_factor: i16,
    /// Configs set explicitly on the topic; everything else is the broker default.
    pub configs: BTreeMap<String, String>,
}

/// Dynamic broker configs by scope (`<default>` for the cluster-wide default, else a node id),
/// each a map of broker config key to value, as Kafka keeps them under `/config/brokers`.
pub type BrokerConfigLayers = BTreeMap<String, BTreeMap<String, String>>;

/// What `cluster-metadata.json` holds. Fields added later carry `#[serde(default)]` so a file
/// written by an older sluice still loads.
#[derive(Debug, Default, Serialize, Deserialize)]
struct Snapshot {
    cluster_id: String,
    topics: BTreeMap<String, TopicMeta>,
    #[serde(default)]
    broker_configs: BrokerConfigLayers,
    /// First producer id not yet reserved (InitProducerId reserves them in blocks).
    #[serde(default)]
    next_producer_id: i64,
    /// Topics removed whose partition directories may still exist (deleted on start).
    #[serde(default)]
    deleting: BTreeSet<String>,
}

/// Why a topic operation was refused; maps to a Kafka error code.
#[derive(Debug, thiserror::Error)]
pub enum TopicError {
    /// TOPIC_ALREADY_EXISTS.
    #[error("topic {0:?} already exists")]
    AlreadyExists(String),
    /// UNKNOWN_TOPIC_OR_PARTITION.
    #[error("topic {0:?} does not exist")]
    Unknown(String),
    /// INVALID_TOPIC_EXCEPTION.
    #[error("{0}")]
    InvalidName(String),
    /// INVALID_PARTITIONS.
    #[error("{0}")]
    InvalidPartitions(String),
    /// TOPIC_ALREADY_EXISTS: the name belongs to a topic whose files are still being deleted.
    #[error("topic {0:?} is still being deleted; create it again in a moment")]
    BeingDeleted(String),
    /// INVALID_REPLICATION_FACTOR.
    #[error("{0}")]
    InvalidReplicationFactor(String),
    /// INVALID_CONFIG.
    #[error("{0}")]
    InvalidConfig(String),
    /// KAFKA_STORAGE_ERROR: the metadata file could not be written.
    #[error("cannot persist cluster metadata: {0}")]
    Storage(String),
}

impl TopicError {
    /// The Kafka error code for this refusal.
    pub fn code(&self) -> i16 {
        match self {
            TopicError::AlreadyExists(_) | TopicError::BeingDeleted(_) => 36,
            TopicError::Unknown(_) => 3,
            TopicError::InvalidName(_) => 17,
            TopicError::InvalidPartitions(_) => 37,
            TopicError::InvalidReplicationFactor(_) => 38,
            TopicError::InvalidConfig(_) => 40,
            TopicError::Storage(_) => 56,
        }
    }
}

/// Longest topic name Kafka accepts.
pub const MAX_TOPIC_NAME_LEN: usize = 249;

/// Checks a topic name against Kafka's rules: 1-249 characters of `[a-zA-Z0-9._-]`, not
/// `.` or `..`.
pub fn validate_topic_name(name: &str) -> Result<(), TopicError> {
    let bad_char = name
        .chars()
        .find(|c| !(c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-')));
    let reason = if name.is_empty() {
        Some("the topic name is empty".to_string())
    } else if name == "." || name == ".." {
        Some(format!("topic name {name:?} is not allowed"))
    } else if name.len() > MAX_TOPIC_NAME_LEN {
        Some(format!(
            "topic name is {} characters, longer than the maximum {MAX_TOPIC_NAME_LEN}",
            name.len()
        ))
    } else {
        bad_char.map(|c| {
            format!(
                "topic name {name:?} contains {c:?}; only ASCII letters, digits, '.', '_' and '-' are allowed"
            )
        })
    };
    reason.map_or(Ok(()), |r| Err(TopicError::InvalidName(r)))
}

/// The registry of topics and dynamic broker configs, persisted on every change.
#[derive(Debug)]
pub struct TopicRegistry {
    path: PathBuf,
    cluster_id: String,
    state: RwLock<State>,
}

/// The mutable part of the registry; one lock so a persisted snapshot is always consistent.
#[derive(Debug, Clone, Default)]
struct State {
    topics: BTreeMap<String, TopicMeta>,
    broker_configs: BrokerConfigLayers,
    next_producer_id: i64,
    deleting: BTreeSet<String>,
}

const FILE_NAME: &str = "cluster-metadata.json";

impl TopicRegistry {
    /// Loads the registry from `data_dir`, creating a new cluster id on first start.
    pub fn open(data_dir: &Path) -> anyhow::Result<Self> {
        let path = data_dir.join(FILE_NAME);
        let snapshot: Snapshot = match std::fs::read(&path) {
            Ok(bytes) => serde_json::from_slice(&bytes).map_err(|e| {
                anyhow::anyhow!(
                    "{} is damaged ({e}); restore it or move it away",
                    path.display()
                )
            })?,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Snapshot::default(),
            Err(e) => return Err(anyhow::anyhow!("cannot read {}: {e}", path.display())),
        };
        // Written back only when new: a start on a full disk must not fail for a file
        // that already says everything.
        let first_start = snapshot.cluster_id.is_empty();
        let cluster_id = if first_start {
            new_cluster_id()
        } else {
            snapshot.cluster_id
        };
        let registry = TopicRegistry {
            path,
            cluster_id,
            state: RwLock::new(State {
                topics: snapshot.topics,
                broker_configs: snapshot.broker_configs,
                next_producer_id: snapshot.next_producer_id.max(0),
                deleting: snapshot.deleting,
            }),
        };
        if first_start {
            registry.persist(&registry.state.read())?;
        }
        Ok(registry)
    }

    /// The cluster id clients see in Metadata responses.
    pub fn cluster_id(&self) -> &str {
        &self.cluster_id
    }

    /// A topic by name.
    pub fn get(&self, name: &str) -> Option<TopicMeta> {
        self.state.read().topics.get(name).cloned()
    }

    /// A topic by id.
    pub fn get_by_id(&self, id: Uuid) -> Option<TopicMeta> {
        self.state
            .read()
            .topics
            .values()
            .find(|t| t.id == id)
            .cloned()
    }

    /// Every topic, by name.
    pub fn all(&self) -> Vec<TopicMeta> {
        self.state.read().topics.values().cloned().collect()
    }

    /// The log config of `topic`: broker defaults overridden by the topic's own configs.
    pub fn log_config(&self, topic: &str, defaults: &LogConfig) -> LogConfig {
        let mut config = defaults.clone();
        if let Some(meta) = self.state.read().topics.get(topic) {
            for (k, v) in &meta.configs {
                if let Err(e) = config.apply(k, v) {
                    tracing::warn!(topic, key = %k, error = %e, "ignoring stored topic config");
                }
            }
        }
        config
    }

    /// Adds a topic. The caller validated name, partitions and configs.
    pub fn create(&self, meta: TopicMeta) -> Result<TopicMeta, TopicError> {
        self.mutate(|state| {
            if state.topics.contains_key(&meta.name) {
                return Err(TopicError::AlreadyExists(meta.name.clone()));
            }
            state.topics.insert(meta.name.clone(), meta.clone());
            Ok(meta)
        })
    }

    /// Applies `change` to a topic and persists the result.
    pub fn update(
        &self,
        name: &str,
        change: impl FnOnce(&mut TopicMeta) -> Result<(), TopicError>,
    ) -> Result<TopicMeta, TopicError> {
        self.mutate(|state| {
            let meta = state
                .topics
                .get_mut(name)
                .ok_or_else(|| TopicError::Unknown(name.to_string()))?;
            change(meta)?;
            Ok(meta.clone())
        })
    }

    /// Removes a topic.
    /// Removes a topic and records, in the same write, that its partition directories are
    /// being deleted: a crash before they are gone cannot bring the topic back, because the
    /// next start deletes them instead of adopting them. [`Self::finish_deletion`] clears it.
    pub fn remove(&self, name: &str) -> Result<TopicMeta, TopicError> {
        self.mutate(|state| {
            let meta = state
                .topics
                .remove(name)
                .ok_or_else(|| TopicError::Unknown(name.to_string()))?;
            state.deleting.insert(name.to_string());
            Ok(meta)
        })
    }

    /// Topics whose partition directories were being deleted when the broker last stopped.
    pub fn pending_deletions(&self) -> Vec<String> {
        self.state.read().deleting.iter().cloned().collect()
    }

    /// Records that a removed topic's directories are gone.
    pub fn finish_deletion(&self, name: &str) -> Result<(), TopicError> {
        self.mutate(|state| {
            state.deleting.remove(name);
            Ok(())
        })
    }

    /// The dynamic broker configs of `scope` (`<default>` or a node id); empty if none.
    pub fn broker_configs(&self, scope: &str) -> BTreeMap<String, String> {
        self.state
            .read()
            .broker_configs
            .get(scope)
            .cloned()
            .unwrap_or_default()
    }

    /// Replaces the dynamic broker configs of `scope`. The caller validated them.
    pub fn set_broker_configs(
        &self,
        scope: &str,
        configs: BTreeMap<String, String>,
    ) -> Result<(), TopicError> {
        self.mutate(|state| {
            if configs.is_empty() {
                state.broker_configs.remove(scope);
            } else {
                state.broker_configs.insert(scope.to_string(), configs);
            }
            Ok(())
        })
    }

    /// Reserves `count` producer ids and persists the new high mark before returning the
    /// first, so no id is handed out twice, even across restarts.
    pub fn reserve_producer_ids(&self, count: i64) -> Result<i64, TopicError> {
        self.mutate(|state| {
            let first = state.next_producer_id;
            state.next_producer_id = first
                .checked_add(count)
                .ok_or_else(|| TopicError::Storage("producer ids are exhausted".to_string()))?;
            Ok(first)
        })
    }

    /// Runs `change` on the state under the write lock and persists the result; if `change`
    /// fails or the file cannot be written, the state is left as it was.
    fn mutate<T>(
        &self,
        change: impl FnOnce(&mut State) -> Result<T, TopicError>,
    ) -> Result<T, TopicError> {
        let mut state = self.state.write();
        let mut next = state.clone();
        let out = change(&mut next)?;
        self.persist(&next)
            .map_err(|e| TopicError::Storage(e.to_string()))?;
        *state = next;
        Ok(out)
    }

    fn persist(&self, state: &State) -> anyhow::Result<()> {
        #[derive(Serialize)]
        struct SnapshotRef<'a> {
            cluster_id: &'a str,
            topics: &'a BTreeMap<String, TopicMeta>,
            broker_configs: &'a BrokerConfigLayers,
            next_producer_id: i64,
            deleting: &'a BTreeSet<String>,
        }
        let bytes = serde_json::to_vec_pretty(&SnapshotRef {
            cluster_id: &self.cluster_id,
            topics: &state.topics,
            broker_configs: &state.broker_configs,
            next_producer_id: state.next_producer_id,
            deleting: &state.deleting,
        })?;
        checkpoint::write_atomically(&self.path, &bytes)?;
        Ok(())
    }
}

/// A Kafka-style cluster id: 16 random bytes, URL-safe base64 without padding (22 chars).
fn new_cluster_id() -> String {
    const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
    let bytes = Uuid::new_v4().into_bytes();
    let mut out = String::with_capacity(22);
    let mut acc: u32 = 0;
    let mut bits = 0;
    for b in bytes {
        acc = (acc << 8) | u32::from(b);
        bits += 8;
        while bits >= 6 {
            bits -= 6;
            out.push(ALPHABET[((acc >> bits) & 63) as usize] as char);
        }
    }
    if bits > 0 {
        out.push(ALPHABET[((acc << (6 - bits)) & 63) as usize] as char);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_follow_kafka_rules() {
        assert!(validate_topic_name("orders.v1_x-2").is_ok());
        for bad in ["", ".", "..", "a b", "ünï", &"x".repeat(250)] {
            assert_eq!(validate_topic_name(bad).unwrap_err().code(), 17, "{bad:?}");
        }
    }

    #[test]
    fn topics_survive_reopen() {
        let dir = tempfile::tempdir().unwrap();
        let reg = TopicRegistry::open(dir.path()).unwrap();
        let id = Uuid::new_v4();
        reg.create(TopicMeta {
            name: "t".into(),
            id,
            partitions: 3,
            replication_factor: 1,
            configs: [("retention.ms".to_string(), "5".to_string())].into(),
        })
        .unwrap();
        assert_eq!(reg.create(reg.get("t").unwrap()).unwrap_err().code(), 36);
        let cluster = reg.cluster_id().to_string();
        assert_eq!(cluster.len(), 22);
        drop(reg);
        let reg = TopicRegistry::open(dir.path()).unwrap();
        assert_eq!(reg.cluster_id(), cluster);
        assert_eq!(reg.get_by_id(id).unwrap().partitions, 3);
        assert_eq!(reg.log_config("t", &LogConfig::default()).retention_ms, 5);
    }

    #[test]
    fn broker_configs_survive_reopen_and_old_files_load() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(
            dir.path().join(FILE_NAME),
            r#"{"cluster_id": "abc", "topics": {}}"#,
        )
        .unwrap();
        let reg = TopicRegistry::open(dir.path()).unwrap();
        assert_eq!(reg.cluster_id(), "abc");
        assert!(reg.broker_configs("<default>").is_empty());
        let layer: BTreeMap<String, String> =
            [("log.retention.ms".to_string(), "60000".to_string())].into();
        reg.set_broker_configs("<default>", layer.clone()).unwrap();
        drop(reg);
        let reg = TopicRegistry::open(dir.path()).unwrap();
        assert_eq!(reg.broker_configs("<default>"), layer);
        reg.set_broker_configs("<default>", BTreeMap::new())
            .unwrap();
        assert!(reg.broker_configs("<default>").is_empty());
    }

    #[test]
    fn a_removed_topic_stays_pending_until_its_deletion_finishes() {
        let dir = tempfile::tempdir().unwrap();
        let reg = TopicRegistry::open(dir.path()).unwrap();
        reg.create(TopicMeta {
            name: "gone".into(),
            id: Uuid::new_v4(),
            partitions: 1,
            replication_factor: 1,
            configs: BTreeMap::new(),
        })
        .unwrap();
        reg.remove("gone").unwrap();
        drop(reg);
        // A crash here: the next start sees the deletion still pending.
        let reg = TopicRegistry::open(dir.path()).unwrap();
        assert!(reg.get("gone").is_none());
        assert_eq!(reg.pending_deletions(), vec!["gone".to_string()]);
        reg.finish_deletion("gone").unwrap();
        drop(reg);
        assert!(TopicRegistry::open(dir.path())
            .unwrap()
            .pending_deletions()
            .is_empty());
    }
}
