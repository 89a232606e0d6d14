//! The recovery point: the offset below which a partition's data is known to be on disk
//! (fsynced). After an unclean shutdown, every segment holding data at or above it is
//! verified batch by batch, not only the tail: with the default flush policy (leave it to the
//! OS) a power loss can tear a segment that was rolled moments before.

use std::path::PathBuf;
use std::sync::Arc;

use parking_lot::Mutex;

use crate::checkpoint;
use crate::error::Result;

/// Name of the checkpoint file in the partition directory.
pub const RECOVERY_POINT_FILE: &str = "recovery-point-offset";

/// A partition's recovery point, persisted whenever it advances.
#[derive(Debug, Clone)]
pub struct RecoveryPoint {
    path: PathBuf,
    /// `None` until known (logs written before recovery points existed).
    value: Arc<Mutex<Option<i64>>>,
}

impl RecoveryPoint {
    /// Loads the recovery point of the partition in `dir`.
    pub fn load(dir: &std::path::Path) -> Result<Self> {
        let path = dir.join(RECOVERY_POINT_FILE);
        let value = checkpoint::read_i64(&path)?;
        Ok(RecoveryPoint {
            path,
            value: Arc::new(Mutex::new(value)),
        })
    }

    /// The offset below which data is known to be durable, if known.
    pub fn get(&self) -> Option<i64> {
        *self.value.lock()
    }

    /// Records that everything below `offset` is durable (never moves backwards).
    pub fn advance(&self, offset: i64) -> Result<()> {
        let mut value = self.value.lock();
        if value.is_some_and(|v| v >= offset) {
            return Ok(());
        }
        checkpoint::write_i64(&self.path, offset)?;
        *value = Some(offset);
        Ok(())
    }

    /// Whether a segment ending at `end` (exclusive) must be verified after an unclean
    /// shutdown. Without a known recovery point only the tail is (the older behaviour).
    pub fn must_verify(&self, end: i64) -> bool {
        self.get().is_some_and(|rp| end > rp)
    }
}
