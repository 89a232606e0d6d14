//! Retention by time and size and DeleteRecords: exactly the expected segments go, the log
//! start moves to the first remaining offset, reads below it are out of range, and all of
//! it survives a reopen.

mod common;

use std::path::Path;

use common::*;
use sluice_storage::{CleanupPolicy, Compression, LogConfig, PartitionLog};

/// Every batch is one uncompressed record of this many value bytes, so four batches fill a
/// segment of `SEGMENT_BYTES` and the fifth rolls.
const VALUE_BYTES: usize = 400;
const SEGMENT_BYTES: u64 = 2_000;

fn config() -> LogConfig {
    LogConfig {
        retention_ms: -1,
        retention_bytes: -1,
        ..small_config(SEGMENT_BYTES, 700)
    }
}

/// Appends `timestamps.len()` one-record batches with these timestamps.
fn fill(log: &PartitionLog, timestamps: &[i64]) -> Vec<Rec> {
    let mut model = Vec::new();
    for (i, ts) in timestamps.iter().enumerate() {
        let msg = Msg {
            key: Some(format!("k{i}").into_bytes()),
            value: Some(filler(i as u64, VALUE_BYTES)),
            headers: Vec::new(),
            timestamp: *ts,
        };
        model.extend(append(log, &[msg], Compression::None));
    }
    model
}

/// Each segment as (base, records), from the log's own segment list.
fn segments_of(log: &PartitionLog, model: &[Rec]) -> Vec<(i64, Vec<Rec>)> {
    let bases = log.segment_base_offsets();
    bases
        .iter()
        .enumerate()
        .map(|(i, base)| {
            let next = bases.get(i + 1).copied().unwrap_or(i64::MAX);
            let recs = model
                .iter()
                .filter(|r| r.offset >= *base && r.offset < next)
                .cloned()
                .collect();
            (*base, recs)
        })
        .collect()
}

fn assert_segment_files(dir: &Path, log: &PartitionLog) {
    assert_eq!(log_file_bases(dir), log.segment_base_offsets());
    for base in log.segment_base_offsets() {
        for ext in ["index", "timeindex"] {
            assert!(seg_path(dir, base, ext).exists(), "{base}.{ext}");
        }
    }
    let names = file_names(dir);
    let index_count = names.iter().filter(|n| n.ends_with(".index")).count();
    assert_eq!(index_count, log.segment_count(), "{names:?}");
}

/// Checks the log holds exactly the records of `model` from `start` on.
fn assert_log_from(log: &PartitionLog, model: &[Rec], start: i64) {
    let expected: Vec<Rec> = model
        .iter()
        .filter(|r| r.offset >= start)
        .cloned()
        .collect();
    assert_eq!(log.log_start_offset(), start);
    assert_eq!(log.read(start, 1).unwrap().log_start_offset, start);
    assert_eq!(read_all(log), expected);
    if start > 0 {
        let err = log.read(start - 1, 1 << 20).unwrap_err();
        assert_eq!(err.kafka_error_code(), 1, "{err}");
        assert_eq!(log.read(0, 1 << 20).unwrap_err().kafka_error_code(), 1);
    }
    check_timestamp_lookups(log, model);
}

#[test]
fn retention_ms_deletes_the_oldest_expired_segments_by_record_time() {
    let dir = tempfile::tempdir().unwrap();
    let log = open(dir.path(), config(), true);
    // Batch i has timestamp 10_000 + 100 * i, so segment k (4 batches) ends at batch 4k+3.
    let timestamps: Vec<i64> = (0..22).map(|i| 10_000 + 100 * i).collect();
    let model = fill(&log, &timestamps);
    let segments = segments_of(&log, &model);
    assert_eq!(
        log.segment_base_offsets(),
        vec![0, 4, 8, 12, 16, 20],
        "four batches per segment"
    );
    let newest = |k: usize| segments[k].1.iter().map(|r| r.timestamp).max().unwrap();

    let config = LogConfig {
        retention_ms: 1_000,
        ..config()
    };
    log.set_config(config.clone());
    // Exactly at the limit the segment is kept; one millisecond later it goes.
    assert_eq!(log.apply_retention(newest(1) + 1_000).unwrap(), 1);
    assert_eq!(log.segment_base_offsets(), vec![4, 8, 12, 16, 20]);
    assert_log_from(&log, &model, 4);
    assert_eq!(log.apply_retention(newest(2) + 1_001).unwrap(), 2);
    assert_eq!(log.segment_base_offsets(), vec![12, 16, 20]);
    assert_segment_files(dir.path(), &log);
    assert_log_from(&log, &model, 12);
    // Nothing more is due at the same time.
    assert_eq!(log.apply_retention(newest(2) + 1_001).unwrap(), 0);

    log.close().unwrap();
    drop(log);
    for clean in [true, false] {
        let log = open(dir.path(), config.clone(), clean);
        assert_eq!(log.segment_base_offsets(), vec![12, 16, 20]);
        assert_log_from(&log, &model, 12);
        assert_eq!(log.log_end_offset(), 22);
    }
}

#[test]
fn retention_ms_stops_at_the_first_segment_still_retained() {
    let dir = tempfile::tempdir().unwrap();
    let log = open(dir.path(), config(), true);
    // Segment 1 (offsets 4..8) holds one record from much later: it and everything after
    // it stay, even the expired segment 2.
    let mut timestamps: Vec<i64> = (0..16).map(|i| 10_000 + 100 * i).collect();
    timestamps[5] = 90_000;
    let model = fill(&log, &timestamps);
    assert_eq!(log.segment_base_offsets(), vec![0, 4, 8, 12]);
    log.set_config(LogConfig {
        retention_ms: 1_000,
        ..config()
    });
    assert_eq!(log.apply_retention(50_000).unwrap(), 1);
    assert_eq!(log.segment_base_offsets(), vec![4, 8, 12]);
    assert_log_from(&log, &model, 4);
    assert_eq!(log.apply_retention(91_001).unwrap(), 3);
    assert_eq!(log.log_start_offset(), 16);
    assert_eq!(log.log_end_offset(), 16);
    assert_eq!(log.segment_base_offsets(), vec![16]);
}

#[test]
fn retention_after_reopen_knows_the_newest_record_of_each_segment() {
    // The newest record of each sealed segment sits between two index entries; a reopen
    // must still see it, or retention would delete a segment that must be kept.
    let dir = tempfile::tempdir().unwrap();
    let log = open(dir.path(), config(), true);
    let mut timestamps: Vec<i64> = (0..16).map(|i| 10_000 + 100 * i).collect();
    for seg in 0..3 {
        timestamps[seg * 4 + 1] = 80_000 + seg as i64;
    }
    let model = fill(&log, &timestamps);
    assert_eq!(log.segment_base_offsets(), vec![0, 4, 8, 12]);
    log.close().unwrap();
    drop(log);
    let config = LogConfig {
        retention_ms: 1_000,
        ..config()
    };
    for clean in [true, false] {
        let log = open(dir.path(), config.clone(), clean);
        assert_eq!(log.apply_retention(80_500).unwrap(), 0);
        assert_eq!(log.segment_base_offsets(), vec![0, 4, 8, 12]);
        assert_log_from(&log, &model, 0);
    }
    let log = open(dir.path(), config, true);
    assert_eq!(log.apply_retention(81_001).unwrap(), 1);
    assert_log_from(&log, &model, 4);
}

#[test]
fn an_expired_active_segment_is_rolled_and_deleted() {
    let dir = tempfile::tempdir().unwrap();
    let log = open(dir.path(), config(), true);
    let model = fill(&log, &[100, 200, 150]);
    assert_eq!(log.segment_count(), 1);
    log.set_config(LogConfig {
        retention_ms: 1_000,
        ..config()
    });
    assert_eq!(log.apply_retention(1_200).unwrap(), 0);
    assert_eq!(log.apply_retention(1_201).unwrap(), 1);
    assert_eq!(log.segment_base_offsets(), vec![3]);
    assert_eq!(log_file_bases(dir.path()), vec![3]);
    assert_segment_files(dir.path(), &log);
    assert_eq!(log.log_start_offset(), 3);
    assert_eq!(log.log_end_offset(), 3);
    assert_eq!(log.size_bytes(), 0);
    assert!(log.read(3, 100).unwrap().slice.is_none());
    assert_eq!(log.read(2, 100).unwrap_err().kafka_error_code(), 1);
    assert_eq!(log.offset_for_timestamp(0).unwrap(), None);
    assert_log_from(&log, &model, 3);

    let mut model = model;
    model.extend(fill(&log, &[5_000]));
    assert_eq!(model.last().unwrap().offset, 3);
    assert_log_from(&log, &model, 3);
    drop(log);
    let log = open(dir.path(), config(), false);
    assert_log_from(&log, &model, 3);
    assert_eq!(log.log_end_offset(), 4);
}

#[test]
fn retention_bytes_deletes_oldest_segments_while_the_rest_still_fits() {
    let dir = tempfile::tempdir().unwrap();
    let log = open(dir.path(), config(), true);
    let timestamps: Vec<i64> = (0..22).map(|i| 10_000 + i).collect();
    let model = fill(&log, &timestamps);
    let bases = log.segment_base_offsets();
    // Sealed segment files hold exactly their batches; the active one may hold zeros written
    // ahead of its data while it takes appends, so its size is what the log reports beyond.
    let (_, sealed) = bases.split_last().unwrap();
    let mut sizes: Vec<u64> = sealed
        .iter()
        .map(|b| {
            std::fs::metadata(seg_path(dir.path(), *b, "log"))
                .unwrap()
                .len()
        })
        .collect();
    sizes.push(log.size_bytes() - sizes.iter().sum::<u64>());
    assert!(sizes.iter().all(|s| *s > 0));

    // Room for the newest 2.5 segments: the three oldest of six go (the rest is 2 full
    // segments plus the active one holding two batches).
    let limit = sizes[3] + sizes[4] + sizes[5] - 1;
    log.set_config(LogConfig {
        retention_bytes: limit as i64,
        ..config()
    });
    assert_eq!(log.apply_retention(0).unwrap(), 3);
    assert_eq!(log.segment_base_offsets(), bases[3..].to_vec());
    assert_eq!(log.size_bytes(), sizes[3] + sizes[4] + sizes[5]);
    assert_segment_files(dir.path(), &log);
    assert_log_from(&log, &model, bases[3]);
    // What remains is over the limit, but not by a whole segment: it stays.
    assert_eq!(log.apply_retention(0).unwrap(), 0);

    // With an exact fit the remaining sealed segment goes too.
    log.set_config(LogConfig {
        retention_bytes: (sizes[4] + sizes[5]) as i64,
        ..config()
    });
    assert_eq!(log.apply_retention(0).unwrap(), 1);
    assert_log_from(&log, &model, bases[4]);
    drop(log);
    let log = open(dir.path(), config(), false);
    assert_eq!(log.segment_base_offsets(), bases[4..].to_vec());
    assert_log_from(&log, &model, bases[4]);
}

#[test]
fn compact_only_topics_keep_expired_segments() {
    let dir = tempfile::tempdir().unwrap();
    let log = open(dir.path(), config(), true);
    let model = fill(&log, &(0..12).collect::<Vec<i64>>());
    log.set_config(LogConfig {
        retention_ms: 1,
        retention_bytes: 1,
        cleanup_policy: CleanupPolicy {
            delete: false,
            compact: true,
        },
        ..config()
    });
    assert_eq!(log.apply_retention(1_000_000).unwrap(), 0);
    assert_log_from(&log, &model, 0);
}

#[test]
fn delete_records_moves_the_log_start_and_drops_whole_segments_below_it() {
    let dir = tempfile::tempdir().unwrap();
    let log = open(dir.path(), config(), true);
    // Two records per batch, so the new start can fall inside a batch.
    let mut model = Vec::new();
    for b in 0..12i64 {
        let msgs: Vec<Msg> = (0..2)
            .map(|i| Msg {
                key: Some(format!("k{b}.{i}").into_bytes()),
                value: Some(filler((b * 2 + i) as u64, 200)),
                headers: vec![(b"b".to_vec(), None)],
                timestamp: 1_000 + (b * 2 + i) * 10,
            })
            .collect();
        model.extend(append(&log, &msgs, CODECS[b as usize % CODECS.len()]));
    }
    let bases = log.segment_base_offsets();
    assert!(bases.len() >= 4, "{bases:?}");

    // Inside the third segment, in the middle of a batch.
    let target = bases[2] + 3;
    assert_eq!(log.delete_records(target).unwrap(), target);
    assert_eq!(log.segment_base_offsets(), bases[2..].to_vec());
    assert_segment_files(dir.path(), &log);
    assert_log_from(&log, &model, target);
    let first = log.read(target, 0).unwrap().slice.unwrap();
    let first = split_batches(&first.to_bytes().unwrap());
    assert_eq!(first.len(), 1);
    assert!(first[0].0.base_offset < target && first[0].0.last_offset() >= target);
    assert_eq!(
        log.offset_for_timestamp(0).unwrap(),
        Some((target, model[target as usize].timestamp))
    );
    assert_eq!(log.max_timestamp_offset().unwrap().unwrap().0, 23);

    // Moving it back is a no-op; past the high watermark is out of range.
    assert_eq!(log.delete_records(target - 2).unwrap(), target);
    assert_eq!(log.delete_records(25).unwrap_err().kafka_error_code(), 1);
    assert_eq!(log.delete_records(-5).unwrap_err().kafka_error_code(), 1);
    assert_eq!(log.log_start_offset(), target);

    // Survives reopening, cleanly or not; retention keeps it.
    drop(log);
    for clean in [false, true] {
        let log = open(dir.path(), config(), clean);
        assert_log_from(&log, &model, target);
        assert_eq!(log.segment_base_offsets(), bases[2..].to_vec());
        assert_eq!(log.apply_retention(1_000_000).unwrap(), 0);
        assert_log_from(&log, &model, target);
    }

    // Exactly at a segment boundary.
    let log = open(dir.path(), config(), true);
    assert_eq!(log.delete_records(bases[3]).unwrap(), bases[3]);
    assert_eq!(log.segment_base_offsets(), bases[3..].to_vec());
    assert_log_from(&log, &model, bases[3]);

    // -1 means the high watermark: everything goes but the active segment.
    assert_eq!(log.delete_records(-1).unwrap(), 24);
    assert_eq!(log.segment_count(), 1);
    assert_segment_files(dir.path(), &log);
    assert_log_from(&log, &model, 24);
    assert!(log.read(24, 100).unwrap().slice.is_none());
    let more = append(
        &log,
        &[Msg::kv("after", "delete", 5_000)],
        Compression::None,
    );
    assert_eq!(more[0].offset, 24);
    model.extend(more);
    assert_log_from(&log, &model, 24);
    drop(log);
    let log = open(dir.path(), config(), false);
    assert_log_from(&log, &model, 24);
    assert_eq!(log.log_end_offset(), 25);
}

#[test]
fn max_timestamp_offset_only_considers_records_at_or_after_the_log_start() {
    let dir = tempfile::tempdir().unwrap();
    let log = open(dir.path(), config(), true);
    // The newest timestamp sits at offset 1; after DeleteRecords(2) the newest live record
    // is offset 3.
    let model = fill(&log, &[100, 900, 200, 500, 300, 400]);
    assert_eq!(log.max_timestamp_offset().unwrap(), Some((1, 900)));
    log.delete_records(2).unwrap();
    assert_eq!(log.max_timestamp_offset().unwrap(), Some((3, 500)));
    assert_log_from(&log, &model, 2);
    log.delete_records(4).unwrap();
    assert_eq!(log.max_timestamp_offset().unwrap(), Some((5, 400)));
    assert_log_from(&log, &model, 4);
    drop(log);
    let log = open(dir.path(), config(), false);
    assert_eq!(log.max_timestamp_offset().unwrap(), Some((5, 400)));
    log.delete_records(-1).unwrap();
    assert_eq!(log.max_timestamp_offset().unwrap(), None);
}
