//! Producer-state snapshots and producer expiry: a snapshot written at a roll and at a
//! clean close lets a restart know producers whose batches are gone; a start after an
//! unclean stop replays what came after the snapshot; damaged or too-new snapshots are
//! dropped for an older one or a full walk; idle producers expire unless a transaction of
//! theirs is open.

mod common;

use std::path::Path;

use common::*;
use sluice_storage::producer_snapshot::SNAPSHOT_EXT;
use sluice_storage::{BatchBuilder, LogConfig, PartitionLog, TxnMarker};

const OUT_OF_ORDER_SEQUENCE_NUMBER: i16 = 45;
const NOW: i64 = 1_000_000;

fn batch(pid: i64, seq: i32, n: usize, tag: &str, flags: i16) -> Vec<u8> {
    let mut b = BatchBuilder::new(0);
    b.producer(pid, 0, seq).flags(flags);
    for i in 0..n {
        b.push(Some(format!("{tag}-{i}").as_bytes()), Some(b"v"), &[], NOW);
    }
    b.build()
}

fn config() -> LogConfig {
    small_config(400, 100)
}

fn open_log(dir: &Path, clean: bool) -> PartitionLog {
    PartitionLog::open(dir, tp(), config(), clean, NOW).unwrap()
}

fn snapshots(dir: &Path) -> Vec<String> {
    file_names(dir)
        .into_iter()
        .filter(|n| n.ends_with(SNAPSHOT_EXT))
        .collect()
}

fn is_duplicate(log: &PartitionLog, bytes: &[u8]) -> bool {
    log.append(bytes, NOW).unwrap().duplicate
}

#[test]
fn producers_whose_batches_were_deleted_are_known_after_a_restart() {
    let dir = tempfile::tempdir().unwrap();
    let first = batch(1, 0, 2, "old", 0);
    {
        let log = open_log(dir.path(), true);
        log.append(&first, NOW).unwrap();
        for i in 0..12 {
            log.append(&batch(-1, -1, 3, &format!("p{i}"), 0), NOW)
                .unwrap();
        }
        assert!(log.segment_count() > 2);
        assert!(!snapshots(dir.path()).is_empty(), "rolls write snapshots");
        // Producer 1's only batch goes away with its segment.
        log.delete_records(log.segment_base_offsets()[1]).unwrap();
        log.close().unwrap();
    }
    assert!(snapshots(dir.path()).len() <= 2, "only the newest are kept");
    let log = open_log(dir.path(), true);
    assert!(
        is_duplicate(&log, &first),
        "the retry is still recognised as a duplicate"
    );
    assert_eq!(
        log.append(&batch(1, 3, 1, "gap", 0), NOW)
            .unwrap_err()
            .kafka_error_code(),
        OUT_OF_ORDER_SEQUENCE_NUMBER
    );
    log.append(&batch(1, 2, 1, "next", 0), NOW).unwrap();
}

#[test]
fn an_unclean_start_replays_what_came_after_the_snapshot() {
    let dir = tempfile::tempdir().unwrap();
    let (a, b) = (batch(4, 0, 1, "a", 0x10), batch(4, 1, 1, "b", 0x10));
    {
        let log = open_log(dir.path(), true);
        log.append(&a, NOW).unwrap();
        log.close().unwrap();
    }
    {
        // Written after the snapshot of the clean close, then a crash (no close).
        let log = open_log(dir.path(), true);
        log.append(&b, NOW).unwrap();
        std::mem::forget(log);
    }
    let log = open_log(dir.path(), false);
    assert!(is_duplicate(&log, &a) && is_duplicate(&log, &b));
    assert_eq!(log.open_transactions(), vec![(4, 0)]);
    assert_eq!(log.last_stable_offset(), 0);
    let marker = TxnMarker {
        producer_id: 4,
        producer_epoch: 0,
        coordinator_epoch: 0,
        commit: false,
    };
    log.write_marker(&marker, NOW).unwrap();
    log.close().unwrap();
    let log = open_log(dir.path(), true);
    assert_eq!(log.read_committed(0, 1 << 20).unwrap().aborted.len(), 1);
    assert_eq!(log.last_stable_offset(), 3);
}

#[test]
fn damaged_and_too_new_snapshots_are_dropped() {
    let dir = tempfile::tempdir().unwrap();
    let a = batch(7, 0, 1, "a", 0);
    {
        let log = open_log(dir.path(), true);
        log.append(&a, NOW).unwrap();
        log.close().unwrap();
    }
    let names = snapshots(dir.path());
    assert_eq!(names.len(), 1);
    let path = dir.path().join(&names[0]);
    let mut bytes = std::fs::read(&path).unwrap();
    let last = bytes.len() - 1;
    bytes[last] ^= 0xff;
    std::fs::write(&path, &bytes).unwrap();
    // One past the log end, as if the log had been cut after it was written.
    std::fs::write(
        dir.path().join(format!("{:020}.{SNAPSHOT_EXT}", 99)),
        b"SLPS",
    )
    .unwrap();
    let log = open_log(dir.path(), true);
    assert!(is_duplicate(&log, &a), "state rebuilt by walking the log");
    assert!(snapshots(dir.path()).is_empty());
}

#[test]
fn idle_producers_expire_unless_a_transaction_is_open() {
    let dir = tempfile::tempdir().unwrap();
    let log = open_log(dir.path(), true);
    let idle = batch(1, 0, 1, "idle", 0);
    log.append(&idle, NOW).unwrap();
    log.append(&batch(2, 0, 1, "open", 0x10), NOW).unwrap();
    assert_eq!(log.expire_producers(NOW + 999, 1_000), 0);
    assert_eq!(log.expire_producers(NOW + 1_001, 1_000), 1);
    // Forgotten: its retry is no longer a duplicate but an unknown producer out of order...
    assert_eq!(
        log.append(&batch(1, 1, 1, "more", 0), NOW)
            .unwrap_err()
            .kafka_error_code(),
        OUT_OF_ORDER_SEQUENCE_NUMBER
    );
    // ...while the producer with an open transaction is still known.
    assert!(is_duplicate(&log, &batch(2, 0, 1, "open", 0x10)));
}

#[test]
fn producers_are_described_with_their_open_transaction_and_marker_epoch() {
    let dir = tempfile::tempdir().unwrap();
    {
        let log = open_log(dir.path(), true);
        log.append(&batch(3, 0, 2, "t", 0x10), NOW).unwrap();
        log.append(&batch(5, 0, 1, "p", 0), NOW).unwrap();
        let described = log.producers();
        assert_eq!(described.len(), 2);
        let t = described[0];
        assert_eq!(
            (
                t.producer_id,
                t.producer_epoch,
                t.last_sequence,
                t.coordinator_epoch,
                t.current_txn_start_offset
            ),
            (3, 0, 1, -1, 0)
        );
        assert_eq!(described[1].current_txn_start_offset, -1);
        let marker = TxnMarker {
            producer_id: 3,
            producer_epoch: 0,
            coordinator_epoch: 4,
            commit: true,
        };
        log.write_marker(&marker, NOW).unwrap();
        log.close().unwrap();
    }
    // The coordinator epoch comes back from the snapshot, and from the marker itself when
    // the snapshot is gone.
    for keep_snapshots in [true, false] {
        if !keep_snapshots {
            for name in snapshots(dir.path()) {
                std::fs::remove_file(dir.path().join(name)).unwrap();
            }
        }
        let log = open_log(dir.path(), true);
        let t = log.producers()[0];
        assert_eq!(
            (t.coordinator_epoch, t.current_txn_start_offset),
            (4, -1),
            "keep_snapshots={keep_snapshots}"
        );
        log.close().unwrap();
    }
}
