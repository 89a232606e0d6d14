//! Idempotent producers (KIP-98): a retried batch is stored once and answered with its
//! original offsets; sequence gaps and stale epochs are refused with nothing written; the
//! producer state survives a reopen, clean or not, because it is rebuilt from the log.

mod common;

use std::path::Path;

use common::*;
use sluice_storage::{AppendInfo, BatchBuilder, Compression, LogConfig, PartitionLog};

const OUT_OF_ORDER_SEQUENCE_NUMBER: i16 = 45;
const INVALID_PRODUCER_EPOCH: i16 = 47;
const NOW: i64 = 1_000_000;

/// A batch of `n` records from producer `pid` at `epoch`, first sequence `seq`.
fn batch(pid: i64, epoch: i16, seq: i32, n: usize, tag: &str) -> Vec<u8> {
    let mut b = BatchBuilder::new(0);
    b.producer(pid, epoch, seq);
    for i in 0..n {
        b.push(
            Some(format!("{tag}-{i}").as_bytes()),
            Some(b"value"),
            &[],
            NOW + i as i64,
        );
    }
    b.build()
}

fn config() -> LogConfig {
    small_config(1_024, 128)
}

fn open_log(dir: &Path, clean: bool) -> PartitionLog {
    PartitionLog::open(dir, tp(), config(), clean, NOW).unwrap()
}

fn append(log: &PartitionLog, bytes: &[u8]) -> AppendInfo {
    log.append(bytes, NOW).unwrap()
}

fn refused(log: &PartitionLog, bytes: &[u8]) -> i16 {
    let end = log.log_end_offset();
    let code = log.append(bytes, NOW).unwrap_err().kafka_error_code();
    assert_eq!(
        log.log_end_offset(),
        end,
        "a refused batch moved the log end"
    );
    code
}

fn keys(log: &PartitionLog) -> Vec<String> {
    read_all(log)
        .into_iter()
        .map(|r| String::from_utf8(r.key.unwrap()).unwrap())
        .collect()
}

#[test]
fn a_retried_batch_is_stored_once_and_gets_its_original_offsets() {
    let dir = tempfile::tempdir().unwrap();
    let log = open_log(dir.path(), true);
    let first = append(&log, &batch(1, 0, 0, 3, "a"));
    assert_eq!((first.base_offset, first.last_offset), (0, 2));
    assert!(!first.duplicate);
    let second = append(&log, &batch(1, 0, 3, 2, "b"));
    assert_eq!(second.base_offset, 3);
    // Both retried, even out of order and after other producers wrote.
    append(&log, &batch(2, 0, 0, 1, "other"));
    append(&log, &batch(-1, -1, -1, 1, "plain"));
    let again = append(&log, &batch(1, 0, 0, 3, "a"));
    assert!(again.duplicate);
    assert_eq!((again.base_offset, again.last_offset), (0, 2));
    assert_eq!(again.record_count, 0);
    let again = append(&log, &batch(1, 0, 3, 2, "b"));
    assert!(again.duplicate);
    assert_eq!((again.base_offset, again.last_offset), (3, 4));
    assert_eq!(log.log_end_offset(), 7);
    assert_eq!(
        keys(&log),
        ["a-0", "a-1", "a-2", "b-0", "b-1", "other-0", "plain-0"]
    );
    // The sequence goes on after the retries.
    assert_eq!(append(&log, &batch(1, 0, 5, 1, "c")).base_offset, 7);
}

#[test]
fn sequence_gaps_and_unknown_producers_not_at_zero_are_out_of_order() {
    let dir = tempfile::tempdir().unwrap();
    let log = open_log(dir.path(), true);
    assert_eq!(
        refused(&log, &batch(1, 0, 5, 1, "x")),
        OUT_OF_ORDER_SEQUENCE_NUMBER
    );
    append(&log, &batch(1, 0, 0, 2, "a"));
    assert_eq!(
        refused(&log, &batch(1, 0, 3, 1, "gap")),
        OUT_OF_ORDER_SEQUENCE_NUMBER
    );
    assert_eq!(
        refused(&log, &batch(1, 0, 1, 1, "overlap")),
        OUT_OF_ORDER_SEQUENCE_NUMBER
    );
    // Same first sequence, different length: not the same batch.
    assert_eq!(
        refused(&log, &batch(1, 0, 0, 3, "a")),
        OUT_OF_ORDER_SEQUENCE_NUMBER
    );
    assert_eq!(append(&log, &batch(1, 0, 2, 1, "next")).base_offset, 2);
    // Producers without an id are not checked at all.
    append(&log, &batch(-1, -1, -1, 1, "p"));
    append(&log, &batch(-1, -1, -1, 1, "p"));
    assert_eq!(keys(&log), ["a-0", "a-1", "next-0", "p-0", "p-0"]);
}

#[test]
fn a_stale_epoch_is_fenced_and_a_new_epoch_starts_at_zero() {
    let dir = tempfile::tempdir().unwrap();
    let log = open_log(dir.path(), true);
    append(&log, &batch(9, 3, 0, 2, "e3"));
    assert_eq!(
        refused(&log, &batch(9, 2, 2, 1, "old")),
        INVALID_PRODUCER_EPOCH
    );
    assert_eq!(
        refused(&log, &batch(9, 2, 0, 2, "e3")),
        INVALID_PRODUCER_EPOCH
    );
    assert_eq!(
        refused(&log, &batch(9, 4, 2, 1, "bump")),
        OUT_OF_ORDER_SEQUENCE_NUMBER
    );
    assert_eq!(append(&log, &batch(9, 4, 0, 1, "e4")).base_offset, 2);
    // After the bump the old epoch is fenced, and its retries are no longer duplicates.
    assert_eq!(
        refused(&log, &batch(9, 3, 0, 2, "e3")),
        INVALID_PRODUCER_EPOCH
    );
    assert!(append(&log, &batch(9, 4, 0, 1, "e4")).duplicate);
    assert_eq!(append(&log, &batch(9, 4, 1, 1, "e4b")).base_offset, 3);
}

#[test]
fn batches_of_one_append_are_checked_in_order() {
    let dir = tempfile::tempdir().unwrap();
    let log = open_log(dir.path(), true);
    let two = [batch(4, 0, 0, 2, "a"), batch(4, 0, 2, 1, "b")].concat();
    let info = append(&log, &two);
    assert_eq!((info.base_offset, info.last_offset), (0, 2));
    // The whole pair again is a duplicate of both.
    let info = append(&log, &two);
    assert!(info.duplicate);
    assert_eq!((info.base_offset, info.last_offset), (0, 2));
    // A gap between the batches refuses both.
    let gap = [batch(4, 0, 3, 1, "c"), batch(4, 0, 5, 1, "d")].concat();
    assert_eq!(refused(&log, &gap), OUT_OF_ORDER_SEQUENCE_NUMBER);
    // A retry mixed with a new batch is refused as a whole.
    let mixed = [batch(4, 0, 2, 1, "b"), batch(4, 0, 3, 1, "c")].concat();
    assert_eq!(refused(&log, &mixed), OUT_OF_ORDER_SEQUENCE_NUMBER);
    assert_eq!(keys(&log), ["a-0", "a-1", "b-0"]);
}

#[test]
fn only_the_last_five_batches_are_recognised_as_retries() {
    let dir = tempfile::tempdir().unwrap();
    let log = open_log(dir.path(), true);
    for seq in 0..7 {
        append(&log, &batch(1, 0, seq, 1, &format!("s{seq}")));
    }
    assert!(append(&log, &batch(1, 0, 2, 1, "s2")).duplicate);
    assert_eq!(
        refused(&log, &batch(1, 0, 1, 1, "s1")),
        OUT_OF_ORDER_SEQUENCE_NUMBER
    );
}

/// Several producers across several segments, some compressed.
fn written(dir: &Path) -> Vec<(Vec<u8>, AppendInfo)> {
    let log = open_log(dir, true);
    let mut sent = Vec::new();
    for round in 0..12 {
        for pid in [1i64, 2] {
            let mut b = BatchBuilder::new(0);
            b.producer(pid, 0, round * 4);
            if round % 2 == 1 {
                b.compression(Compression::Zstd);
            }
            for i in 0..4 {
                b.push(
                    Some(format!("p{pid}-{round}-{i}").as_bytes()),
                    Some(&filler(round as u64, 60)),
                    &[],
                    NOW,
                );
            }
            let bytes = b.build();
            let info = append(&log, &bytes);
            sent.push((bytes, info));
        }
    }
    assert!(log.segment_count() > 2, "the test wants several segments");
    sent
}

fn check_state_after_reopen(log: &PartitionLog, sent: &[(Vec<u8>, AppendInfo)]) {
    let end = log.log_end_offset();
    // The last five batches of each producer are still recognised, with their offsets.
    for (bytes, info) in &sent[sent.len() - 10..] {
        let again = append(log, bytes);
        assert!(again.duplicate);
        assert_eq!(
            (again.base_offset, again.last_offset),
            (info.base_offset, info.last_offset)
        );
    }
    assert_eq!(log.log_end_offset(), end);
    assert_eq!(
        refused(log, &batch(1, 0, 100, 1, "gap")),
        OUT_OF_ORDER_SEQUENCE_NUMBER
    );
    assert_eq!(
        refused(log, &batch(2, -1, 48, 1, "old")),
        INVALID_PRODUCER_EPOCH
    );
    assert_eq!(append(log, &batch(1, 0, 48, 1, "next")).base_offset, end);
}

#[test]
fn producer_state_is_rebuilt_after_a_clean_reopen() {
    let dir = tempfile::tempdir().unwrap();
    let sent = written(dir.path());
    let log = open_log(dir.path(), true);
    check_state_after_reopen(&log, &sent);
}

#[test]
fn producer_state_is_rebuilt_after_an_unclean_reopen_with_a_torn_tail() {
    let dir = tempfile::tempdir().unwrap();
    let sent = written(dir.path());
    // A crash in the middle of writing one more batch of producer 1: the torn batch is cut
    // off by recovery, so its sequence is not taken and a retry of it is a new append.
    let torn = batch(1, 0, 48, 1, "torn");
    let tail = *log_file_bases(dir.path()).last().unwrap();
    let path = seg_path(dir.path(), tail, "log");
    let mut bytes = std::fs::read(&path).unwrap();
    bytes.extend_from_slice(&torn[..torn.len() - 5]);
    std::fs::write(&path, bytes).unwrap();
    let log = open_log(dir.path(), false);
    check_state_after_reopen(&log, &sent);
}
