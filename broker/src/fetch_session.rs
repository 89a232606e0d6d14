//! Incremental fetch sessions (KIP-227). A consumer's first fetch with epoch 0 creates a
//! session holding its partitions and fetch positions; later fetches send only what changed
//! (and what to forget), and the response carries only partitions with news: records, an
//! error, or a changed high watermark / last stable offset / log start offset.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use parking_lot::Mutex;
use uuid::Uuid;

/// `max.incremental.fetch.session.cache.slots`.
const MAX_SESSIONS: usize = 1000;
/// Sessions idle longer than this are dropped.
const IDLE_TIMEOUT: Duration = Duration::from_secs(120);

/// FETCH_SESSION_ID_NOT_FOUND.
pub const SESSION_NOT_FOUND: i16 = 70;
/// INVALID_FETCH_SESSION_EPOCH.
pub const INVALID_EPOCH: i16 = 71;

/// One partition a fetch reads.
#[derive(Debug, Clone, PartialEq)]
pub struct FetchTarget {
    /// Topic name ("" if the id is unknown).
    pub topic: String,
    /// Topic id (nil before Fetch v13).
    pub topic_id: Uuid,
    /// Partition.
    pub partition: i32,
    /// Offset to read from.
    pub fetch_offset: i64,
    /// Per-partition byte limit.
    pub max_bytes: i32,
}

/// What a partition looked like in the last response of its session.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PartitionView {
    /// High watermark sent.
    pub high_watermark: i64,
    /// Last stable offset sent.
    pub last_stable_offset: i64,
    /// Log start offset sent.
    pub log_start_offset: i64,
    /// Error code sent.
    pub error_code: i16,
}

#[derive(Debug)]
struct Session {
    next_epoch: i32,
    targets: Vec<FetchTarget>,
    last_sent: HashMap<(String, i32), PartitionView>,
    last_used: Instant,
}

/// The fetch this request really is, after its session is applied.
#[derive(Debug)]
pub struct FetchPlan {
    /// Session id to put in the response (0: no session).
    pub session_id: i32,
    /// True when only partitions with news go in the response.
    pub incremental: bool,
    /// Every partition to read.
    pub targets: Vec<FetchTarget>,
}

/// The session cache.
#[derive(Debug, Default)]
pub struct FetchSessions {
    inner: Mutex<Inner>,
}

#[derive(Debug, Default)]
struct Inner {
    sessions: HashMap<i32, Session>,
    next_id: i32,
}

fn key(t: &FetchTarget) -> (String, i32) {
    (t.topic.clone(), t.partition)
}

impl FetchSessions {
    /// Applies the request's session fields. `Err` is a top-level error code.
    pub fn begin(
        &self,
        session_id: i32,
        epoch: i32,
        requested: Vec<FetchTarget>,
        forgotten: &[(String, i32)],
    ) -> Result<FetchPlan, i16> {
        let mut inner = self.inner.lock();
        let now = Instant::now();
        inner
            .sessions
            .retain(|_, s| now.duration_since(s.last_used) < IDLE_TIMEOUT);
        match (session_id, epoch) {
            (0, -1) => Ok(FetchPlan {
                session_id: 0,
                incremental: false,
                targets: requested,
            }),
            (0, 0) => {
                if inner.sessions.len() >= MAX_SESSIONS {
                    let oldest = inner
                        .sessions
                        .iter()
                        .min_by_key(|(_, s)| s.last_used)
                        .map(|(id, _)| *id);
                    if let Some(id) = oldest {
                        inner.sessions.remove(&id);
                    }
                }
                let id = inner.allocate_id();
                inner.sessions.insert(
                    id,
                    Session {
                        next_epoch: 1,
                        targets: requested.clone(),
                        last_sent: HashMap::new(),
                        last_used: now,
                    },
                );
                Ok(FetchPlan {
                    session_id: id,
                    incremental: false,
                    targets: requested,
                })
            }
            (0, _) => Err(INVALID_EPOCH),
            (id, -1) => {
                inner.sessions.remove(&id);
                Ok(FetchPlan {
                    session_id: 0,
                    incremental: false,
                    targets: requested,
                })
            }
            (id, epoch) => {
                let session = inner.sessions.get_mut(&id).ok_or(SESSION_NOT_FOUND)?;
                if epoch != session.next_epoch {
                    return Err(INVALID_EPOCH);
                }
                session.next_epoch = if epoch == i32::MAX { 1 } else { epoch + 1 };
                session.last_used = now;
                for f in forgotten {
                    session.targets.retain(|t| &key(t) != f);
                    session.last_sent.remove(f);
                }
                for r in requested {
                    match session.targets.iter_mut().find(|t| key(t) == key(&r)) {
                        Some(existing) => *existing = r,
                        None => session.targets.push(r),
                    }
                }
                Ok(FetchPlan {
                    session_id: id,
                    incremental: true,
                    targets: session.targets.clone(),
                })
            }
        }
    }

    /// Records what was sent for a partition of a session; returns whether an incremental
    /// response must include it (it has records, or its view changed since last sent).
    pub fn note_sent(
        &self,
        session_id: i32,
        target: &FetchTarget,
        view: PartitionView,
        has_records: bool,
    ) -> bool {
        if session_id == 0 {
            return true;
        }
        let mut inner = self.inner.lock();
        let Some(session) = inner.sessions.get_mut(&session_id) else {
            return true;
        };
        let previous = session.last_sent.insert(key(target), view);
        has_records || view.error_code != 0 || previous != Some(view)
    }

    /// Number of live sessions.
    pub fn len(&self) -> usize {
        self.inner.lock().sessions.len()
    }

    /// True when there is no session.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

impl Inner {
    fn allocate_id(&mut self) -> i32 {
        loop {
            self.next_id = if self.next_id == i32::MAX {
                1
            } else {
                self.next_id + 1
            };
            if !self.sessions.contains_key(&self.next_id) {
                return self.next_id;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn t(p: i32, offset: i64) -> FetchTarget {
        FetchTarget {
            topic: "t".into(),
            topic_id: Uuid::nil(),
            partition: p,
            fetch_offset: offset,
            max_bytes: 100,
        }
    }

    #[test]
    fn incremental_sessions_follow_kip_227() {
        let s = FetchSessions::default();
        let plan = s.begin(0, 0, vec![t(0, 0), t(1, 0)], &[]).unwrap();
        assert!(plan.session_id > 0 && !plan.incremental);
        let id = plan.session_id;
        let plan = s.begin(id, 1, vec![t(1, 5)], &[]).unwrap();
        assert!(plan.incremental);
        assert_eq!(plan.targets, vec![t(0, 0), t(1, 5)]);
        let plan = s.begin(id, 2, vec![], &[("t".into(), 0)]).unwrap();
        assert_eq!(plan.targets, vec![t(1, 5)]);
        assert_eq!(s.begin(id, 2, vec![], &[]).unwrap_err(), INVALID_EPOCH);
        assert_eq!(
            s.begin(id + 7, 1, vec![], &[]).unwrap_err(),
            SESSION_NOT_FOUND
        );
        assert_eq!(s.begin(0, 3, vec![], &[]).unwrap_err(), INVALID_EPOCH);
        let plan = s.begin(id, -1, vec![t(0, 1)], &[]).unwrap();
        assert_eq!(plan.session_id, 0);
        assert!(s.is_empty());
    }

    #[test]
    fn only_changed_partitions_are_resent() {
        let s = FetchSessions::default();
        let id = s.begin(0, 0, vec![t(0, 0)], &[]).unwrap().session_id;
        let view = PartitionView {
            high_watermark: 5,
            last_stable_offset: 5,
            log_start_offset: 0,
            error_code: 0,
        };
        assert!(s.note_sent(id, &t(0, 0), view, false));
        assert!(!s.note_sent(id, &t(0, 0), view, false));
        assert!(s.note_sent(id, &t(0, 0), view, true));
        let moved = PartitionView {
            high_watermark: 6,
            ..view
        };
        assert!(s.note_sent(id, &t(0, 0), moved, false));
    }
}
