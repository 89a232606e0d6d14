//! Transactions in a partition (KIP-98): transactional batches keep the last stable offset
//! (LSO) at the start of the oldest open transaction; a commit or abort marker moves it on;
//! `read_committed` reads stop at the LSO and name the aborted transactions so readers drop
//! their records; producers cannot write markers; a marker with a bumped epoch fences the
//! producer; all of it is rebuilt from the log on reopen, clean or not; compaction never
//! cleans past the LSO and drops aborted records.

mod common;

use std::path::Path;

use common::*;
use sluice_storage::{
    AbortedTxn, AppendOrigin, BatchBuilder, CleanupPolicy, LogConfig, PartitionLog, TxnMarker,
};

const INVALID_RECORD: i16 = 87;
const INVALID_PRODUCER_EPOCH: i16 = 47;
const NOW: i64 = 1_000_000;

/// A transactional batch of `keys` (value = key + "-v") from `pid` at `epoch`, first
/// sequence `seq`.
fn txn_batch(pid: i64, epoch: i16, seq: i32, keys: &[&str]) -> Vec<u8> {
    let mut b = BatchBuilder::new(0);
    b.producer(pid, epoch, seq).flags(0x10);
    for (i, k) in keys.iter().enumerate() {
        let value = format!("{k}-v");
        b.push(
            Some(k.as_bytes()),
            Some(value.as_bytes()),
            &[],
            NOW + i as i64,
        );
    }
    b.build()
}

fn plain(keys: &[&str]) -> Vec<u8> {
    let msgs: Vec<Msg> = keys
        .iter()
        .map(|k| Msg::kv(k, &format!("{k}-v"), NOW))
        .collect();
    build_batch(&msgs, sluice_storage::Compression::None)
}

fn marker(pid: i64, epoch: i16, commit: bool) -> TxnMarker {
    TxnMarker {
        producer_id: pid,
        producer_epoch: epoch,
        coordinator_epoch: 0,
        commit,
    }
}

fn open_log(dir: &Path, config: LogConfig, clean: bool) -> PartitionLog {
    PartitionLog::open(dir, tp(), config, clean, NOW).unwrap()
}

/// What a `read_committed` consumer ends up with: reads up to the LSO, skipping control
/// batches and the batches of aborted transactions named in each response.
fn committed_keys(log: &PartitionLog) -> Vec<String> {
    let mut cursor = log.log_start_offset();
    let mut out = Vec::new();
    loop {
        let result = log.read_committed(cursor, 256).unwrap();
        let Some(slice) = result.slice else { break };
        for (header, batch) in split_batches(&slice.to_bytes().unwrap()) {
            cursor = header.last_offset() + 1;
            let aborted = result.aborted.iter().any(|t| {
                t.producer_id == header.producer_id
                    && t.first_offset <= header.base_offset
                    && header.base_offset <= t.last_offset
            });
            if header.is_control() || (header.is_transactional() && aborted) {
                continue;
            }
            for r in decode_batch(&header, &batch) {
                out.push(String::from_utf8(r.key.unwrap()).unwrap());
            }
        }
    }
    out
}

fn all_keys(log: &PartitionLog) -> Vec<String> {
    read_all(log)
        .into_iter()
        .filter_map(|r| r.key)
        .map(|k| String::from_utf8(k).unwrap())
        .filter(|k| !k.starts_with('\0'))
        .collect()
}

#[test]
fn open_transactions_hold_back_read_committed_readers() {
    let dir = tempfile::tempdir().unwrap();
    let log = open_log(dir.path(), small_config(1_000, 100), true);
    log.append(&plain(&["a"]), NOW).unwrap();
    let first = log.append(&txn_batch(7, 0, 0, &["t1", "t2"]), NOW).unwrap();
    log.append(&plain(&["b"]), NOW).unwrap();
    log.append(&txn_batch(7, 0, 2, &["t3"]), NOW).unwrap();
    assert_eq!(first.base_offset, 1);
    assert_eq!(log.last_stable_offset(), 1);
    assert_eq!(log.high_watermark(), 5);
    assert_eq!(log.open_transactions(), vec![(7, 1)]);
    assert_eq!(committed_keys(&log), ["a"]);
    let result = log.read_committed(3, 1 << 20).unwrap();
    assert!(result.slice.is_none(), "nothing past the LSO is readable");
    assert_eq!(result.last_stable_offset, 1);

    let at = log.write_marker(&marker(7, 0, true), NOW).unwrap();
    assert_eq!(at, 5);
    assert_eq!(log.last_stable_offset(), 6);
    assert!(log.open_transactions().is_empty());
    assert_eq!(committed_keys(&log), ["a", "t1", "t2", "b", "t3"]);
    assert!(log.read_committed(0, 1 << 20).unwrap().aborted.is_empty());
}

#[test]
fn aborted_transactions_are_named_to_readers_and_survive_reopen() {
    let dir = tempfile::tempdir().unwrap();
    let config = small_config(300, 100);
    {
        let log = open_log(dir.path(), config.clone(), true);
        log.append(&txn_batch(1, 0, 0, &["x1"]), NOW).unwrap();
        log.append(&txn_batch(2, 0, 0, &["y1"]), NOW).unwrap();
        log.append(&txn_batch(1, 0, 1, &["x2", "x3"]), NOW).unwrap();
        assert_eq!(log.write_marker(&marker(1, 0, false), NOW).unwrap(), 4);
        assert_eq!(log.last_stable_offset(), 1, "producer 2 is still open");
        assert_eq!(log.write_marker(&marker(2, 0, true), NOW).unwrap(), 5);
        // A third transaction stays open across the reopen.
        log.append(&plain(&["p"]), NOW).unwrap();
        log.append(&txn_batch(3, 0, 0, &["z1"]), NOW).unwrap();
        assert_eq!(log.last_stable_offset(), 7);
        let read = log.read_committed(0, 1 << 20).unwrap();
        assert_eq!(
            read.aborted,
            vec![AbortedTxn {
                producer_id: 1,
                first_offset: 0,
                last_offset: 4
            }]
        );
        assert_eq!(committed_keys(&log), ["y1", "p"]);
        assert!(log.segment_count() > 1, "the test should span segments");
    }
    for clean in [true, false] {
        let log = open_log(dir.path(), config.clone(), clean);
        assert_eq!(log.last_stable_offset(), 7, "clean={clean}");
        assert_eq!(log.open_transactions(), vec![(3, 7)]);
        assert_eq!(committed_keys(&log), ["y1", "p"]);
        assert_eq!(log.read_committed(2, 1 << 20).unwrap().aborted.len(), 1);
        assert!(log.read_committed(5, 1 << 20).unwrap().aborted.is_empty());
    }
    // Uncommitted readers see everything, markers included.
    let log = open_log(dir.path(), config, true);
    assert_eq!(all_keys(&log), ["x1", "y1", "x2", "x3", "p", "z1"]);
    log.write_marker(&marker(3, 0, false), NOW).unwrap();
    assert_eq!(log.last_stable_offset(), log.high_watermark());
    assert_eq!(committed_keys(&log), ["y1", "p"]);
}

#[test]
fn producers_cannot_write_markers_and_bumped_markers_fence() {
    let dir = tempfile::tempdir().unwrap();
    let log = open_log(dir.path(), small_config(10_000, 100), true);
    let control = marker(5, 0, true).to_batch(NOW);
    assert_eq!(
        log.append(&control, NOW).unwrap_err().kafka_error_code(),
        INVALID_RECORD
    );
    let mut no_pid = BatchBuilder::new(0);
    no_pid.flags(0x10).push(Some(b"k"), Some(b"v"), &[], NOW);
    assert_eq!(
        log.append(&no_pid.build(), NOW)
            .unwrap_err()
            .kafka_error_code(),
        INVALID_RECORD
    );
    assert_eq!(log.log_end_offset(), 0);

    log.append(&txn_batch(5, 2, 0, &["a"]), NOW).unwrap();
    // A marker older than the producer's epoch is refused.
    assert_eq!(
        log.write_marker(&marker(5, 1, false), NOW)
            .unwrap_err()
            .kafka_error_code(),
        INVALID_PRODUCER_EPOCH
    );
    // The coordinator aborts with a bumped epoch (a timed-out transaction): the producer's
    // old epoch is fenced from then on, and the new epoch starts at sequence 0.
    log.write_marker(&marker(5, 3, false), NOW).unwrap();
    assert_eq!(
        log.append(&txn_batch(5, 2, 1, &["late"]), NOW)
            .unwrap_err()
            .kafka_error_code(),
        INVALID_PRODUCER_EPOCH
    );
    log.append(&txn_batch(5, 4, 0, &["b"]), NOW).unwrap();
    log.write_marker(&marker(5, 4, true), NOW).unwrap();
    assert_eq!(committed_keys(&log), ["b"]);
}

#[test]
fn coordinator_writes_transactional_batches_without_sequences() {
    let dir = tempfile::tempdir().unwrap();
    let log = open_log(dir.path(), small_config(10_000, 100), true);
    let unsequenced = txn_batch(9, 0, -1, &["offset-commit"]);
    assert!(
        log.append(&unsequenced, NOW).is_err(),
        "a client batch needs sequences"
    );
    log.append_from(&unsequenced, NOW, AppendOrigin::Coordinator)
        .unwrap();
    log.append_from(&unsequenced, NOW, AppendOrigin::Coordinator)
        .unwrap();
    assert_eq!(log.last_stable_offset(), 0);
    log.write_marker(&marker(9, 0, true), NOW).unwrap();
    assert_eq!(committed_keys(&log), ["offset-commit", "offset-commit"]);
}

/// A compacted log with segments of a few batches.
fn compacted_config() -> LogConfig {
    LogConfig {
        cleanup_policy: CleanupPolicy {
            delete: false,
            compact: true,
        },
        ..small_config(200, 100)
    }
}

#[test]
fn compaction_stops_at_the_lso_and_drops_aborted_records() {
    let dir = tempfile::tempdir().unwrap();
    let log = open_log(dir.path(), compacted_config(), true);
    log.append(&plain(&["k"]), NOW).unwrap(); // 0: committed value of k
    log.append(&txn_batch(1, 0, 0, &["k"]), NOW).unwrap(); // 1: aborted below
    log.write_marker(&marker(1, 0, false), NOW).unwrap(); // 2
    log.append(&txn_batch(2, 0, 0, &["j"]), NOW).unwrap(); // 3: open
    for i in 0..6 {
        log.append(&plain(&[&format!("f{i}")]), NOW).unwrap();
    }
    log.append(&plain(&["j"]), NOW).unwrap();
    assert!(log.segment_count() > 3);
    let before = read_all(&log);
    log.compact(NOW, true).unwrap();
    // Nothing at or past the open transaction (offset 3) was cleaned, although `j` has a
    // newer value; the aborted write of `k` is gone and the committed one stays.
    let after = read_all(&log);
    let kept: Vec<i64> = after.iter().map(|r| r.offset).collect();
    assert!(kept.contains(&0), "committed k survives: {kept:?}");
    assert!(!kept.contains(&1), "aborted k is dropped: {kept:?}");
    assert!(kept.contains(&3), "open transaction untouched: {kept:?}");
    assert_eq!(
        after.iter().filter(|r| r.offset >= 3).count(),
        before.iter().filter(|r| r.offset >= 3).count()
    );
    log.write_marker(&marker(2, 0, true), NOW).unwrap();
    assert_eq!(committed_keys(&log)[0], "k");
}

/// What read_committed reads in the marker test whatever the markers: `d`, the overwritten
/// `a` and `b`, and the fillers.
const COMMITTED_AFTER_CLEANING: [&str; 7] = ["d", "a", "b", "f0", "f1", "f2", "f3"];

/// Offsets of everything in the log, markers included.
fn all_offsets(log: &PartitionLog) -> Vec<i64> {
    read_all(log).iter().map(|r| r.offset).collect()
}

#[test]
fn compaction_drops_a_marker_once_its_transaction_has_no_records_left() {
    let dir = tempfile::tempdir().unwrap();
    let config = compacted_config();
    let log = open_log(dir.path(), config.clone(), true);
    log.append(&txn_batch(1, 0, 0, &["a", "b"]), NOW).unwrap(); // 0-1: superseded at 7-8
    log.write_marker(&marker(1, 0, true), NOW).unwrap(); // 2
    log.append(&txn_batch(2, 0, 0, &["c"]), NOW).unwrap(); // 3: aborted
    log.write_marker(&marker(2, 0, false), NOW).unwrap(); // 4
    log.append(&txn_batch(3, 0, 0, &["d"]), NOW).unwrap(); // 5: the latest d
    log.write_marker(&marker(3, 0, true), NOW).unwrap(); // 6
    log.append(&plain(&["a", "b"]), NOW).unwrap(); // 7-8
    log.write_marker(&marker(4, 0, false), NOW).unwrap(); // 9: a transaction with no records
    for i in 0..4 {
        log.append(&plain(&[&format!("f{i}")]), NOW).unwrap(); // 10-13
    }
    let sealed_end = *log.segment_base_offsets().last().unwrap();
    assert!(sealed_end > 9, "all markers are in sealed segments");
    let end = log.log_end_offset();

    // Within delete.retention.ms (one day by default) every marker stays; only the
    // superseded and the aborted records go.
    log.compact(NOW, true).unwrap().unwrap();
    let mut expected: Vec<i64> = vec![2, 4, 5, 6];
    expected.extend(7..end);
    assert_eq!(all_offsets(&log), expected);
    assert_eq!(committed_keys(&log), COMMITTED_AFTER_CLEANING);

    // Once it has passed, the markers of transactions with nothing left go (the commit at
    // 2, the abort at 4, the empty one at 9); the commit at 6 stays while `d` is behind it.
    log.set_config(LogConfig {
        delete_retention_ms: 0,
        ..config.clone()
    });
    let later = sluice_storage::now_ms() + 60_000;
    let stats = log.compact(later, true).unwrap().unwrap();
    assert_eq!(stats.records_removed, 3);
    let mut expected: Vec<i64> = vec![5, 6, 7, 8];
    expected.extend(10..end);
    assert_eq!(all_offsets(&log), expected);
    assert_eq!(committed_keys(&log), COMMITTED_AFTER_CLEANING);
    assert_eq!(log.last_stable_offset(), end);
    assert!(log.read_committed(0, 1 << 20).unwrap().aborted.is_empty());

    // Reopened, clean or not, `d` is still a committed record, not an open transaction.
    drop(log);
    for clean in [false, true] {
        let log = open_log(dir.path(), config.clone(), clean);
        assert_eq!(all_offsets(&log), expected, "clean={clean}");
        assert_eq!(log.last_stable_offset(), end, "clean={clean}");
        assert_eq!(committed_keys(&log), COMMITTED_AFTER_CLEANING);
    }

    // When `d` is superseded, its marker goes on the next pass.
    let log = open_log(dir.path(), config.clone(), true);
    log.append(&plain(&["d"]), NOW).unwrap(); // `end`
    for i in 4..8 {
        log.append(&plain(&[&format!("f{i}")]), NOW).unwrap();
    }
    log.set_config(LogConfig {
        delete_retention_ms: 0,
        ..config
    });
    log.compact(later, true).unwrap().unwrap();
    let offsets = all_offsets(&log);
    assert!(
        !offsets.contains(&5) && !offsets.contains(&6),
        "{offsets:?}"
    );
    assert_eq!(offsets[..6], [7, 8, 10, 11, 12, 13]);
    assert_eq!(offsets[6], end);
    assert_eq!(log.last_stable_offset(), log.log_end_offset());
}
