//! Errors of the log, each mapped to the Kafka error code a broker returns for it.

use std::path::PathBuf;

/// Everything that can go wrong appending to or reading from a partition log.
///
/// Every variant maps to exactly one Kafka error code ([`StorageError::kafka_error_code`]) so
/// the broker can answer a client precisely without knowing storage internals.
#[derive(Debug, thiserror::Error)]
pub enum StorageError {
    /// The bytes are not a well-formed v2 record batch (bad length, magic, CRC, framing).
    #[error("corrupt record batch: {0}")]
    CorruptMessage(String),
    /// The batch is well formed but its records break a rule (offset deltas, count, keys).
    #[error("invalid record: {0}")]
    InvalidRecord(String),
    /// The batch is larger than the topic's `max.message.bytes`.
    #[error("record batch of {size} bytes exceeds max.message.bytes ({limit})")]
    MessageTooLarge {
        /// Size of the offending batch in bytes.
        size: usize,
        /// The configured limit.
        limit: usize,
    },
    /// A record timestamp is outside the bounds the topic accepts.
    #[error("invalid timestamp: {0}")]
    InvalidTimestamp(String),
    /// The compression codec id in the batch attributes is not one Kafka defines.
    #[error("unsupported compression codec id {0}")]
    UnsupportedCompression(u8),
    /// A read asked for an offset outside `[log start, log end]`.
    #[error("offset {offset} is out of range [{log_start}, {log_end}]")]
    OffsetOutOfRange {
        /// The offset that was asked for.
        offset: i64,
        /// First offset still in the log.
        log_start: i64,
        /// Next offset to be assigned.
        log_end: i64,
    },
    /// A configuration value is invalid (unknown key, bad number, out of range).
    #[error("invalid configuration: {0}")]
    InvalidConfig(String),
    /// The disk said no: full, read-only, removed. Data acknowledged earlier is untouched.
    #[error("storage I/O error on {path}: {source}")]
    Io {
        /// The file or directory the operation was on.
        path: PathBuf,
        /// The operating system's error.
        #[source]
        source: std::io::Error,
    },
    /// The log was closed (deleted topic or shutdown) while the operation was under way.
    #[error("the partition log is closed")]
    Closed,
    /// An idempotent producer's batch does not continue its sequence (a gap, a reorder, or
    /// an unknown producer not starting at 0).
    #[error("out of order sequence number: {0}")]
    OutOfOrderSequence(String),
    /// An idempotent producer's epoch is older than one already seen: it has been fenced.
    #[error("invalid producer epoch: {0}")]
    InvalidProducerEpoch(String),
}

impl StorageError {
    /// Wraps an I/O error together with the path it happened on.
    pub fn io(path: impl Into<PathBuf>, source: std::io::Error) -> Self {
        StorageError::Io {
            path: path.into(),
            source,
        }
    }

    /// The Kafka protocol error code a broker sends for this error.
    pub fn kafka_error_code(&self) -> i16 {
        match self {
            StorageError::CorruptMessage(_) => 2,       // CORRUPT_MESSAGE
            StorageError::InvalidRecord(_) => 87,       // INVALID_RECORD
            StorageError::MessageTooLarge { .. } => 10, // MESSAGE_TOO_LARGE
            StorageError::InvalidTimestamp(_) => 32,    // INVALID_TIMESTAMP
            StorageError::UnsupportedCompression(_) => 76, // UNSUPPORTED_COMPRESSION_TYPE
            StorageError::OffsetOutOfRange { .. } => 1, // OFFSET_OUT_OF_RANGE
            StorageError::InvalidConfig(_) => 40,       // INVALID_CONFIG
            StorageError::Io { .. } => 56,              // KAFKA_STORAGE_ERROR
            StorageError::Closed => 56,                 // KAFKA_STORAGE_ERROR
            StorageError::OutOfOrderSequence(_) => 45,  // OUT_OF_ORDER_SEQUENCE_NUMBER
            StorageError::InvalidProducerEpoch(_) => 47, // INVALID_PRODUCER_EPOCH
        }
    }
}

/// Result alias used throughout the storage crate.
pub type Result<T> = std::result::Result<T, StorageError>;
