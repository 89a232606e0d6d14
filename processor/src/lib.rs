//! sluice-processor: YAML-configured stream jobs (filters, maps, keyed windows, RocksDB
//! state, exactly-once through Kafka transactions) and the Parquet sink.
//!
//! Nothing is implemented yet. The crate exists so the workspace has its final shape; the
//! broker reports jobs as unsupported rather than pretending to run them.

/// Why a job cannot run yet: the processor is not built. Returned to anyone asking to run
/// one, so the gap is stated rather than hidden.
pub const NOT_IMPLEMENTED: &str =
    "the stream processor is not implemented yet in this version of sluice";
