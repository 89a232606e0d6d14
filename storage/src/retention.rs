//! Time- and size-based retention (`cleanup.policy=delete`): whole segments are removed,
//! oldest first, and the log start offset moves up to the first remaining segment.

use std::sync::Arc;

use crate::error::Result;
use crate::partition::PartitionLog;
use crate::segment::Segment;

/// Newest record time of a segment: its max timestamp, or its file's mtime when no record
/// carries a timestamp.
fn newest_ms(segment: &Segment) -> i64 {
    let ts = segment.max_timestamp();
    if ts >= 0 {
        return ts;
    }
    segment.modified_ms()
}

impl PartitionLog {
    /// Deletes segments that `retention.ms` or `retention.bytes` no longer keep, and any
    /// below the log start offset. An expired active segment is rolled first, as Kafka does.
    /// Returns how many segments were deleted.
    pub fn apply_retention(&self, now_ms: i64) -> Result<usize> {
        let config = self.config();
        let _maintenance = self.maintenance.lock();
        let mut deleted = self.remove_segments_below_log_start()?;
        if !config.cleanup_policy.delete {
            return Ok(deleted);
        }
        let segments = self.segment_snapshot();
        // Candidates, oldest first: every segment but an empty active one. (Sealed segments
        // may be empty too, when compaction removed all their records.)
        let candidates = match segments.split_last() {
            Some((active, sealed)) if active.size() == 0 => sealed,
            _ => &segments[..],
        };
        let mut doomed: Vec<Arc<Segment>> = Vec::new();
        if config.retention_ms >= 0 {
            for s in candidates {
                if now_ms - newest_ms(s) > config.retention_ms {
                    doomed.push(s.clone());
                } else {
                    break;
                }
            }
        }
        if config.retention_bytes >= 0 {
            let mut total: u64 = segments.iter().skip(doomed.len()).map(|s| s.size()).sum();
            let limit = config.retention_bytes as u64;
            for s in candidates.iter().skip(doomed.len()) {
                if total > limit && total - s.size() >= limit {
                    total -= s.size();
                    doomed.push(s.clone());
                } else {
                    break;
                }
            }
        }
        let active_base = segments.last().map(|s| s.base_offset());
        if doomed.last().map(|s| s.base_offset()) == active_base {
            self.roll_if_not_empty(now_ms)?;
        }
        deleted += self.remove_segments(&doomed)?;
        Ok(deleted)
    }
}
