//! Time-based segment rolls: a segment rolls on the first append once `segment.ms` has
//! passed since its first record (counted from that record's timestamp after a reopen, as
//! Kafka does), and `segment.jitter.ms` brings each segment's roll forward by its own random
//! amount so partitions created together do not all roll at once.

mod common;

use std::path::Path;

use common::*;
use sluice_storage::{Compression, LogConfig, PartitionLog};

const NOW: i64 = 1_700_000_000_000;
const SEGMENT_MS: i64 = 1_000;

fn timed(segment_jitter_ms: i64) -> LogConfig {
    LogConfig {
        segment_ms: SEGMENT_MS,
        segment_jitter_ms,
        ..LogConfig::default()
    }
}

fn open_at(dir: &Path, config: LogConfig, clean: bool, now_ms: i64) -> PartitionLog {
    PartitionLog::open(dir, tp(), config, clean, now_ms).expect("open log")
}

/// Appends one record stamped `now_ms` with the broker clock at `now_ms`.
fn append_now(log: &PartitionLog, now_ms: i64) -> Vec<Rec> {
    append_at(
        log,
        &[Msg::kv("k", &format!("at {now_ms}"), now_ms)],
        Compression::None,
        now_ms,
    )
}

#[test]
fn a_segment_rolls_once_segment_ms_has_passed_since_its_first_record() {
    let dir = tempfile::tempdir().unwrap();
    let log = open_at(dir.path(), timed(0), true, NOW);
    let mut written = append_now(&log, NOW);
    written.extend(append_now(&log, NOW + SEGMENT_MS - 1));
    assert_eq!(log.segment_base_offsets(), [0]);
    written.extend(append_now(&log, NOW + SEGMENT_MS));
    assert_eq!(
        log.segment_base_offsets(),
        [0, 2],
        "the third record starts a segment"
    );

    // After a reopen the active segment's age still counts from its first record.
    drop(log);
    let log = open_at(dir.path(), timed(0), true, NOW + SEGMENT_MS + 900);
    written.extend(append_now(&log, NOW + 2 * SEGMENT_MS - 1));
    assert_eq!(log.segment_base_offsets(), [0, 2]);
    written.extend(append_now(&log, NOW + 2 * SEGMENT_MS));
    assert_eq!(log.segment_base_offsets(), [0, 2, 4]);
    assert_eq!(read_all(&log), written);
}

/// The first time after `NOW` (in 25 ms steps) at which an append rolled a fresh log.
fn first_roll(config: LogConfig) -> i64 {
    let dir = tempfile::tempdir().unwrap();
    let log = open_at(dir.path(), config, true, NOW);
    append_now(&log, NOW);
    let mut at = NOW;
    while log.segment_count() == 1 {
        at += 25;
        append_now(&log, at);
    }
    at - NOW
}

#[test]
fn segment_jitter_ms_brings_each_segments_roll_forward_by_its_own_amount() {
    let without: Vec<i64> = (0..5).map(|_| first_roll(timed(0))).collect();
    assert_eq!(
        without, [SEGMENT_MS; 5],
        "without jitter every log rolls at segment.ms"
    );

    let with: Vec<i64> = (0..30).map(|_| first_roll(timed(800))).collect();
    assert!(
        with.iter()
            .all(|d| (SEGMENT_MS - 800..=SEGMENT_MS).contains(d)),
        "rolls within segment.jitter.ms before segment.ms: {with:?}"
    );
    let mut distinct = with.clone();
    distinct.sort_unstable();
    distinct.dedup();
    assert!(distinct.len() >= 5, "30 logs rolled at only {distinct:?}");

    // A jitter larger than segment.ms is bounded by it: a segment still lives a millisecond.
    let capped: Vec<i64> = (0..10)
        .map(|_| first_roll(timed(10 * SEGMENT_MS)))
        .collect();
    assert!(
        capped.iter().all(|d| (25..=SEGMENT_MS).contains(d)),
        "{capped:?}"
    );
}

#[test]
fn segment_jitter_ms_is_a_described_topic_config() {
    let config = LogConfig::from_pairs([("segment.jitter.ms", "250")]).unwrap();
    assert_eq!(config.segment_jitter_ms, 250);
    assert_eq!(config.get("segment.jitter.ms").as_deref(), Some("250"));
    assert_eq!(
        LogConfig::default().get("segment.jitter.ms").as_deref(),
        Some("0")
    );
    let err = LogConfig::from_pairs([("segment.jitter.ms", "-1")]).unwrap_err();
    assert!(err.to_string().contains("segment.jitter.ms"), "{err}");
}

#[test]
fn tiered_and_replication_configs_are_recorded_and_remote_storage_is_refused() {
    let config = LogConfig::from_pairs([
        ("file.delete.delay.ms", "1000"),
        ("local.retention.ms", "-2"),
        ("local.retention.bytes", "1048576"),
        ("remote.storage.enable", "false"),
        ("leader.replication.throttled.replicas", "0:1, 1:1"),
        ("follower.replication.throttled.replicas", "*"),
    ])
    .unwrap();
    let described: std::collections::HashMap<_, _> = config.describe().into_iter().collect();
    assert_eq!(described["file.delete.delay.ms"], "1000");
    assert_eq!(described["local.retention.ms"], "-2");
    assert_eq!(described["local.retention.bytes"], "1048576");
    assert_eq!(described["remote.storage.enable"], "false");
    assert_eq!(
        described["leader.replication.throttled.replicas"],
        "0:1,1:1"
    );
    assert_eq!(described["follower.replication.throttled.replicas"], "*");
    let err = LogConfig::from_pairs([("remote.storage.enable", "true")]).unwrap_err();
    assert!(err.to_string().contains("tiered"), "{err}");
    let err =
        LogConfig::from_pairs([("leader.replication.throttled.replicas", "zero")]).unwrap_err();
    assert!(err.to_string().contains("partition:broker"), "{err}");
}
