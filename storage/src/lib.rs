//! sluice-storage: the partition log.
//!
//! A partition is a directory of segments named by base offset. Each `.log` file holds Kafka
//! v2 record batches exactly as producers sent them, with only the base offset (and, for
//! LogAppendTime, the max timestamp and CRC) rewritten. Sparse `.index` and `.timeindex`
//! files make reads by offset and by time cheap. This crate knows nothing of sockets or
//! Kafka requests: the broker turns requests into calls on [`LogStore`] and
//! [`PartitionLog`], and errors back into Kafka codes with
//! [`StorageError::kafka_error_code`].

#![warn(missing_docs)]

pub mod batch;
pub mod builder;
pub mod checkpoint;
pub mod compaction;
pub mod compression;
pub mod config;
pub mod error;
pub mod index;
pub mod partition;
mod partition_txn;
pub mod producer_snapshot;
pub mod producer_state;
mod recompress;
pub mod record;
pub mod recovery;
pub mod recovery_point;
pub mod retention;
pub mod segment;
pub mod slice;
pub mod store;
pub mod transactions;
pub mod varint;
pub mod write_ahead;

pub use batch::{BatchHeader, TimestampType, ValidationLimits};
pub use builder::BatchBuilder;
pub use compaction::CompactionStats;
pub use compression::{Compression, CompressionLevels};
pub use config::{CleanupPolicy, LogConfig, TopicCompression};
pub use error::{Result, StorageError};
pub use partition::{AppendInfo, AppendOrigin, PartitionLog, ReadResult, TopicPartition};
pub use partition_txn::ProducerSummary;
pub use slice::FileSlice;
pub use store::{now_ms, LogStore, MaintenanceSettings};
pub use transactions::{AbortedTxn, ControlType, TxnMarker};
