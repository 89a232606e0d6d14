//! Per-topic log configuration under Kafka's names and defaults.
//!
//! The broker stores topic configs as Kafka key/value strings; [`LogConfig::apply`] turns
//! them into typed settings and [`LogConfig::describe`] lists every key with its current
//! value, so admin clients can show defaults as Kafka does.

use crate::batch::{TimestampType, ValidationLimits};
use crate::compression::{Compression, CompressionLevels};
use crate::error::{Result, StorageError};

/// `compression.type` of a topic: how the broker stores the batches producers send.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TopicCompression {
    /// `producer`: every batch is stored as the producer compressed it (the default).
    Producer,
    /// `uncompressed`, `gzip`, `snappy`, `lz4` or `zstd`: a batch in another codec is
    /// recompressed with this one when it is appended.
    Codec(Compression),
}

impl TopicCompression {
    fn parse(value: &str) -> Option<Self> {
        Some(match value.trim() {
            "producer" => TopicCompression::Producer,
            "uncompressed" => TopicCompression::Codec(Compression::None),
            "gzip" => TopicCompression::Codec(Compression::Gzip),
            "snappy" => TopicCompression::Codec(Compression::Snappy),
            "lz4" => TopicCompression::Codec(Compression::Lz4),
            "zstd" => TopicCompression::Codec(Compression::Zstd),
            _ => return None,
        })
    }

    fn render(self) -> &'static str {
        match self {
            TopicCompression::Producer => "producer",
            TopicCompression::Codec(Compression::None) => "uncompressed",
            TopicCompression::Codec(Compression::Gzip) => "gzip",
            TopicCompression::Codec(Compression::Snappy) => "snappy",
            TopicCompression::Codec(Compression::Lz4) => "lz4",
            TopicCompression::Codec(Compression::Zstd) => "zstd",
        }
    }
}

/// What happens to old data: deletion by retention, compaction by key, or both.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CleanupPolicy {
    /// Old segments are deleted by `retention.ms` / `retention.bytes`.
    pub delete: bool,
    /// Older records of a key are removed once a newer one exists.
    pub compact: bool,
}

impl CleanupPolicy {
    fn parse(value: &str) -> Option<Self> {
        let mut policy = CleanupPolicy {
            delete: false,
            compact: false,
        };
        for part in value.split(',').map(str::trim) {
            match part {
                "delete" => policy.delete = true,
                "compact" => policy.compact = true,
                _ => return None,
            }
        }
        (policy.delete || policy.compact).then_some(policy)
    }

    fn render(self) -> String {
        match (self.compact, self.delete) {
            (true, true) => "compact,delete".to_string(),
            (true, false) => "compact".to_string(),
            _ => "delete".to_string(),
        }
    }
}

/// Settings of one partition log. Field names follow the Kafka topic config keys.
#[derive(Debug, Clone, PartialEq)]
pub struct LogConfig {
    /// `segment.bytes`: roll the active segment when it would grow past this size.
    pub segment_bytes: u64,
    /// `segment.ms`: roll the active segment when it is older than this.
    pub segment_ms: i64,
    /// `segment.index.bytes`: roll when the offset index reaches this size.
    pub segment_index_bytes: u64,
    /// `index.interval.bytes`: bytes of log between two index entries.
    pub index_interval_bytes: u64,
    /// `retention.ms`: delete segments whose newest record is older (-1: keep forever).
    pub retention_ms: i64,
    /// `retention.bytes`: delete oldest segments while the log is larger (-1: no limit).
    pub retention_bytes: i64,
    /// `cleanup.policy`.
    pub cleanup_policy: CleanupPolicy,
    /// `cleanup.policy` as it was given (Kafka reports a list in the order it was set, and
    /// tools compare that string with what they declared).
    pub cleanup_policy_text: Option<String>,
    /// `delete.retention.ms`: how long tombstones survive compaction.
    pub delete_retention_ms: i64,
    /// `min.compaction.lag.ms`: records younger than this are never compacted.
    pub min_compaction_lag_ms: i64,
    /// `min.cleanable.dirty.ratio`: compact once this share of the log is uncompacted.
    pub min_cleanable_dirty_ratio: f64,
    /// `max.message.bytes`: largest record batch accepted.
    pub max_message_bytes: usize,
    /// `message.timestamp.type`: CreateTime or LogAppendTime.
    pub message_timestamp_type: TimestampType,
    /// `message.timestamp.before.max.ms`.
    pub message_timestamp_before_max_ms: i64,
    /// `message.timestamp.after.max.ms`.
    pub message_timestamp_after_max_ms: i64,
    /// `flush.messages`: fsync after this many messages (1: every batch; i64::MAX: never).
    pub flush_messages: i64,
    /// `flush.ms`: fsync at least this often (i64::MAX: leave it to the OS).
    pub flush_ms: i64,
    /// `max.compaction.lag.ms`: a record may stay uncompacted at most this long, whatever
    /// the dirty ratio.
    pub max_compaction_lag_ms: i64,
    /// `compression.type`: `producer` (stored as sent) or a codec batches are
    /// recompressed with.
    pub compression_type: TopicCompression,
    /// `compression.gzip.level`, `compression.lz4.level`, `compression.zstd.level`: the
    /// levels batches are recompressed at.
    pub compression_levels: CompressionLevels,
    /// `min.insync.replicas`: recorded and reported; sluice keeps one copy, so acks=all is
    /// satisfied by the local write.
    pub min_insync_replicas: i32,
    /// `unclean.leader.election.enable`: recorded and reported; there is one replica.
    pub unclean_leader_election_enable: bool,
    /// `preallocate`: recorded and reported; segment files grow as written.
    pub preallocate: bool,
    /// `message.downconversion.enable`: recorded and reported; sluice serves no fetch
    /// version old enough to need down-conversion.
    pub message_downconversion_enable: bool,
    /// `segment.jitter.ms`: the most a segment's time-based roll is brought forward, a
    /// random amount per segment, so partitions created together do not all roll at once.
    pub segment_jitter_ms: i64,
    /// `file.delete.delay.ms`: recorded and reported; deleted segment files are unlinked at
    /// once, since readers holding one keep reading it (Kafka waits for them instead).
    pub file_delete_delay_ms: i64,
    /// `local.retention.ms`: recorded and reported; it bounds the local part of a tiered
    /// topic, and sluice has no remote tier (-2: same as `retention.ms`).
    pub local_retention_ms: i64,
    /// `local.retention.bytes`: as `local.retention.ms`, for `retention.bytes`.
    pub local_retention_bytes: i64,
    /// `leader.replication.throttled.replicas`: recorded and reported; one replica.
    pub leader_replication_throttled_replicas: String,
    /// `follower.replication.throttled.replicas`: recorded and reported; one replica.
    pub follower_replication_throttled_replicas: String,
}

impl Default for LogConfig {
    fn default() -> Self {
        LogConfig {
            segment_bytes: 1024 * 1024 * 1024,
            segment_ms: 7 * 24 * 3600 * 1000,
            segment_index_bytes: 10 * 1024 * 1024,
            index_interval_bytes: 4096,
            retention_ms: 7 * 24 * 3600 * 1000,
            retention_bytes: -1,
            cleanup_policy: CleanupPolicy {
                delete: true,
                compact: false,
            },
            cleanup_policy_text: None,
            delete_retention_ms: 24 * 3600 * 1000,
            min_compaction_lag_ms: 0,
            min_cleanable_dirty_ratio: 0.5,
            max_message_bytes: 1_048_588,
            message_timestamp_type: TimestampType::CreateTime,
            message_timestamp_before_max_ms: i64::MAX,
            message_timestamp_after_max_ms: i64::MAX,
            flush_messages: i64::MAX,
            flush_ms: i64::MAX,
            max_compaction_lag_ms: i64::MAX,
            compression_type: TopicCompression::Producer,
            compression_levels: CompressionLevels::default(),
            min_insync_replicas: 1,
            unclean_leader_election_enable: false,
            preallocate: false,
            message_downconversion_enable: true,
            segment_jitter_ms: 0,
            file_delete_delay_ms: 60_000,
            local_retention_ms: -2,
            local_retention_bytes: -2,
            leader_replication_throttled_replicas: String::new(),
            follower_replication_throttled_replicas: String::new(),
        }
    }
}

/// Every key [`LogConfig`] understands, in the order `describe` lists them.
pub const LOG_CONFIG_KEYS: &[&str] = &[
    "cleanup.policy",
    "compression.gzip.level",
    "compression.lz4.level",
    "compression.type",
    "compression.zstd.level",
    "delete.retention.ms",
    "file.delete.delay.ms",
    "flush.messages",
    "flush.ms",
    "follower.replication.throttled.replicas",
    "index.interval.bytes",
    "leader.replication.throttled.replicas",
    "local.retention.bytes",
    "local.retention.ms",
    "max.compaction.lag.ms",
    "max.message.bytes",
    "message.timestamp.after.max.ms",
    "message.timestamp.before.max.ms",
    "message.downconversion.enable",
    "message.timestamp.type",
    "min.cleanable.dirty.ratio",
    "min.compaction.lag.ms",
    "min.insync.replicas",
    "preallocate",
    "remote.storage.enable",
    "retention.bytes",
    "retention.ms",
    "segment.bytes",
    "segment.index.bytes",
    "segment.jitter.ms",
    "segment.ms",
    "unclean.leader.election.enable",
];

fn parse_num<T: std::str::FromStr>(key: &str, value: &str) -> Result<T> {
    value
        .trim()
        .parse()
        .map_err(|_| StorageError::InvalidConfig(format!("{key}={value:?} is not a valid number")))
}

fn parse_bool(key: &str, value: &str) -> Result<bool> {
    match value.trim() {
        "true" => Ok(true),
        "false" => Ok(false),
        _ => Err(StorageError::InvalidConfig(format!(
            "{key}={value:?}: expected true or false"
        ))),
    }
}

/// A throttled-replicas list as Kafka accepts it: empty, `*`, or `partition:broker` pairs
/// separated by commas (kept with the spaces removed).
fn throttled_replicas(key: &str, value: &str) -> Result<String> {
    let value: String = value.chars().filter(|c| !c.is_whitespace()).collect();
    let pair = |p: &str| {
        p.split_once(':').is_some_and(|(partition, broker)| {
            partition.parse::<u32>().is_ok() && broker.parse::<u32>().is_ok()
        })
    };
    if value.is_empty() || value == "*" || value.split(',').all(pair) {
        return Ok(value);
    }
    Err(StorageError::InvalidConfig(format!(
        "{key}={value:?}: expected *, or partition:broker pairs separated by commas"
    )))
}

fn in_range(key: &str, v: i32, min: i32, max: i32) -> Result<i32> {
    if !(min..=max).contains(&v) {
        return Err(StorageError::InvalidConfig(format!(
            "{key}={v} is outside {min} to {max}"
        )));
    }
    Ok(v)
}

fn at_least<T: PartialOrd + std::fmt::Display + Copy>(key: &str, v: T, min: T) -> Result<T> {
    if v < min {
        return Err(StorageError::InvalidConfig(format!(
            "{key}={v} is below the minimum {min}"
        )));
    }
    Ok(v)
}

impl LogConfig {
    /// Sets one Kafka topic config key from its string value.
    pub fn apply(&mut self, key: &str, value: &str) -> Result<()> {
        match key {
            "cleanup.policy" => {
                self.cleanup_policy = CleanupPolicy::parse(value).ok_or_else(|| {
                    StorageError::InvalidConfig(format!(
                        "cleanup.policy={value:?}: expected delete, compact or compact,delete"
                    ))
                })?;
                let listed: Vec<&str> = value.split(',').map(str::trim).collect();
                self.cleanup_policy_text = Some(listed.join(","));
            }
            "delete.retention.ms" => {
                self.delete_retention_ms = at_least(key, parse_num(key, value)?, 0)?
            }
            "flush.messages" => self.flush_messages = at_least(key, parse_num(key, value)?, 1)?,
            "flush.ms" => self.flush_ms = at_least(key, parse_num(key, value)?, 0)?,
            "index.interval.bytes" => {
                self.index_interval_bytes = at_least(key, parse_num(key, value)?, 0)?
            }
            "max.message.bytes" => {
                self.max_message_bytes = at_least(key, parse_num(key, value)?, 0)?
            }
            "message.timestamp.after.max.ms" => {
                self.message_timestamp_after_max_ms = at_least(key, parse_num(key, value)?, 0)?
            }
            "message.timestamp.before.max.ms" | "message.timestamp.difference.max.ms" => {
                self.message_timestamp_before_max_ms = at_least(key, parse_num(key, value)?, 0)?
            }
            "message.timestamp.type" => {
                self.message_timestamp_type = match value.trim() {
                    "CreateTime" => TimestampType::CreateTime,
                    "LogAppendTime" => TimestampType::LogAppendTime,
                    _ => {
                        return Err(StorageError::InvalidConfig(format!(
                            "message.timestamp.type={value:?}: expected CreateTime or LogAppendTime"
                        )))
                    }
                }
            }
            "min.cleanable.dirty.ratio" => {
                let v: f64 = parse_num(key, value)?;
                if !(0.0..=1.0).contains(&v) {
                    return Err(StorageError::InvalidConfig(format!(
                        "min.cleanable.dirty.ratio={v} must be between 0 and 1"
                    )));
                }
                self.min_cleanable_dirty_ratio = v;
            }
            "min.compaction.lag.ms" => {
                self.min_compaction_lag_ms = at_least(key, parse_num(key, value)?, 0)?
            }
            "retention.bytes" => self.retention_bytes = at_least(key, parse_num(key, value)?, -1)?,
            "retention.ms" => self.retention_ms = at_least(key, parse_num(key, value)?, -1)?,
            "segment.bytes" => {
                let v: u64 = at_least(key, parse_num(key, value)?, 14)?;
                if v > i32::MAX as u64 {
                    return Err(StorageError::InvalidConfig(format!(
                        "segment.bytes={v} is above the maximum {}",
                        i32::MAX
                    )));
                }
                self.segment_bytes = v;
            }
            "segment.index.bytes" => {
                self.segment_index_bytes = at_least(key, parse_num(key, value)?, 8)?
            }
            "segment.ms" => self.segment_ms = at_least(key, parse_num(key, value)?, 1)?,
            "max.compaction.lag.ms" => {
                self.max_compaction_lag_ms = at_least(key, parse_num(key, value)?, 1)?
            }
            "compression.type" => {
                self.compression_type = TopicCompression::parse(value).ok_or_else(|| {
                    StorageError::InvalidConfig(format!(
                        "compression.type={value:?}: expected producer, uncompressed, gzip, snappy, lz4 or zstd"
                    ))
                })?
            }
            "min.insync.replicas" => {
                self.min_insync_replicas = at_least(key, parse_num(key, value)?, 1)?
            }
            "unclean.leader.election.enable" => {
                self.unclean_leader_election_enable = parse_bool(key, value)?
            }
            "preallocate" => self.preallocate = parse_bool(key, value)?,
            "message.downconversion.enable" => {
                self.message_downconversion_enable = parse_bool(key, value)?
            }
            "segment.jitter.ms" => {
                self.segment_jitter_ms = at_least(key, parse_num(key, value)?, 0)?
            }
            "compression.gzip.level" => {
                let level: i32 = parse_num(key, value)?;
                if level != -1 && !(1..=9).contains(&level) {
                    return Err(StorageError::InvalidConfig(format!(
                        "compression.gzip.level={level}: expected 1 to 9, or -1 for the default"
                    )));
                }
                self.compression_levels.gzip = level;
            }
            "compression.lz4.level" => {
                self.compression_levels.lz4 = in_range(key, parse_num(key, value)?, 1, 17)?
            }
            "compression.zstd.level" => {
                self.compression_levels.zstd = in_range(key, parse_num(key, value)?, -131_072, 22)?
            }
            "file.delete.delay.ms" => {
                self.file_delete_delay_ms = at_least(key, parse_num(key, value)?, 0)?
            }
            "local.retention.ms" => {
                self.local_retention_ms = at_least(key, parse_num(key, value)?, -2)?
            }
            "local.retention.bytes" => {
                self.local_retention_bytes = at_least(key, parse_num(key, value)?, -2)?
            }
            "remote.storage.enable" => {
                if parse_bool(key, value)? {
                    return Err(StorageError::InvalidConfig(
                        "remote.storage.enable=true: sluice has no remote (tiered) storage; \
                         every segment stays on the local disk"
                            .to_string(),
                    ));
                }
            }
            "leader.replication.throttled.replicas" => {
                self.leader_replication_throttled_replicas = throttled_replicas(key, value)?
            }
            "follower.replication.throttled.replicas" => {
                self.follower_replication_throttled_replicas = throttled_replicas(key, value)?
            }
            other => {
                return Err(StorageError::InvalidConfig(format!(
                    "unknown topic config {other:?}"
                )))
            }
        }
        Ok(())
    }

    /// Builds a config from defaults overridden by the given Kafka key/value pairs.
    pub fn from_pairs<'a>(pairs: impl IntoIterator<Item = (&'a str, &'a str)>) -> Result<Self> {
        let mut config = LogConfig::default();
        for (k, v) in pairs {
            config.apply(k, v)?;
        }
        Ok(config)
    }

    /// The current value of a key, rendered as Kafka renders it.
    pub fn get(&self, key: &str) -> Option<String> {
        Some(match key {
            "cleanup.policy" => match &self.cleanup_policy_text {
                Some(text) if CleanupPolicy::parse(text) == Some(self.cleanup_policy) => {
                    text.clone()
                }
                _ => self.cleanup_policy.render(),
            },
            "delete.retention.ms" => self.delete_retention_ms.to_string(),
            "flush.messages" => self.flush_messages.to_string(),
            "flush.ms" => self.flush_ms.to_string(),
            "index.interval.bytes" => self.index_interval_bytes.to_string(),
            "max.message.bytes" => self.max_message_bytes.to_string(),
            "message.timestamp.after.max.ms" => self.message_timestamp_after_max_ms.to_string(),
            "message.timestamp.before.max.ms" => self.message_timestamp_before_max_ms.to_string(),
            "message.timestamp.type" => match self.message_timestamp_type {
                TimestampType::CreateTime => "CreateTime".to_string(),
                TimestampType::LogAppendTime => "LogAppendTime".to_string(),
            },
            "min.cleanable.dirty.ratio" => self.min_cleanable_dirty_ratio.to_string(),
            "min.compaction.lag.ms" => self.min_compaction_lag_ms.to_string(),
            "retention.bytes" => self.retention_bytes.to_string(),
            "retention.ms" => self.retention_ms.to_string(),
            "segment.bytes" => self.segment_bytes.to_string(),
            "segment.index.bytes" => self.segment_index_bytes.to_string(),
            "segment.ms" => self.segment_ms.to_string(),
            "max.compaction.lag.ms" => self.max_compaction_lag_ms.to_string(),
            "compression.type" => self.compression_type.render().to_string(),
            "min.insync.replicas" => self.min_insync_replicas.to_string(),
            "unclean.leader.election.enable" => self.unclean_leader_election_enable.to_string(),
            "preallocate" => self.preallocate.to_string(),
            "message.downconversion.enable" => self.message_downconversion_enable.to_string(),
            "segment.jitter.ms" => self.segment_jitter_ms.to_string(),
            "compression.gzip.level" => self.compression_levels.gzip.to_string(),
            "compression.lz4.level" => self.compression_levels.lz4.to_string(),
            "compression.zstd.level" => self.compression_levels.zstd.to_string(),
            "file.delete.delay.ms" => self.file_delete_delay_ms.to_string(),
            "local.retention.ms" => self.local_retention_ms.to_string(),
            "local.retention.bytes" => self.local_retention_bytes.to_string(),
            "remote.storage.enable" => "false".to_string(),
            "leader.replication.throttled.replicas" => {
                self.leader_replication_throttled_replicas.clone()
            }
            "follower.replication.throttled.replicas" => {
                self.follower_replication_throttled_replicas.clone()
            }
            _ => return None,
        })
    }

    /// Every key with its current value.
    pub fn describe(&self) -> Vec<(&'static str, String)> {
        LOG_CONFIG_KEYS
            .iter()
            .filter_map(|k| self.get(k).map(|v| (*k, v)))
            .collect()
    }

    /// The validation bounds producers' batches are checked against.
    pub fn validation_limits(&self) -> ValidationLimits {
        ValidationLimits {
            max_batch_bytes: self.max_message_bytes,
            max_decompressed_bytes: ValidationLimits::default().max_decompressed_bytes,
            timestamp_before_max_ms: self.message_timestamp_before_max_ms,
            timestamp_after_max_ms: self.message_timestamp_after_max_ms,
            require_keys: self.cleanup_policy.compact,
        }
    }

    /// Largest number of offset index entries a segment may hold before it rolls.
    pub fn max_index_entries(&self) -> usize {
        (self.segment_index_bytes / 8).max(1) as usize
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_key_round_trips_through_get_and_apply() {
        let defaults = LogConfig::default();
        let mut copy = LogConfig::default();
        for (k, v) in defaults.describe() {
            copy.apply(k, &v).unwrap();
        }
        assert_eq!(copy.describe(), defaults.describe());
        assert_eq!(defaults.describe().len(), LOG_CONFIG_KEYS.len());
        let mut listed = LogConfig::default();
        listed.apply("cleanup.policy", "delete, compact").unwrap();
        assert_eq!(
            listed.get("cleanup.policy").as_deref(),
            Some("delete,compact")
        );
    }

    #[test]
    fn bad_values_name_the_problem() {
        let mut c = LogConfig::default();
        let err = c.apply("retention.ms", "soon").unwrap_err().to_string();
        assert!(err.contains("retention.ms"), "{err}");
        assert!(c.apply("cleanup.policy", "shred").is_err());
        assert!(c.apply("segment.bytes", "10").is_err());
        assert!(c.apply("no.such.key", "1").is_err());
        c.apply("cleanup.policy", "compact,delete").unwrap();
        assert!(c.cleanup_policy.compact && c.cleanup_policy.delete);
    }
}
