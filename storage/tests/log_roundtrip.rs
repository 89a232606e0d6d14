//! Everything appended is read back identically, by any start offset and any read size,
//! timestamp lookups agree with a brute-force model, and all of it survives reopening the
//! log cleanly and after a crash.

mod common;

use common::*;
use proptest::prelude::*;
use sluice_storage::{Compression, LogConfig, PartitionLog, TimestampType};

/// A record as generated: the timestamp is a step from the previous record's, so most
/// records are in order and some go back in time.
#[derive(Debug, Clone)]
struct Spec {
    key: Option<Vec<u8>>,
    value: Option<Vec<u8>>,
    headers: Vec<Header>,
    ts_step: i64,
}

fn spec() -> impl Strategy<Value = Spec> {
    (
        proptest::option::weighted(0.8, proptest::collection::vec(any::<u8>(), 0..24)),
        proptest::option::weighted(0.9, proptest::collection::vec(any::<u8>(), 0..400)),
        proptest::collection::vec(
            (
                proptest::collection::vec(any::<u8>(), 1..6),
                proptest::option::of(proptest::collection::vec(any::<u8>(), 0..6)),
            ),
            0..3,
        ),
        prop_oneof![8 => 0..100i64, 2 => -300..0i64],
    )
        .prop_map(|(key, value, headers, ts_step)| Spec {
            key,
            value,
            headers,
            ts_step,
        })
}

fn batches() -> impl Strategy<Value = Vec<(usize, Vec<Spec>)>> {
    proptest::collection::vec(
        (0..CODECS.len(), proptest::collection::vec(spec(), 1..12)),
        1..30,
    )
}

/// Turns specs into messages, carrying the running timestamp.
fn to_msgs(specs: &[Spec], ts: &mut i64) -> Vec<Msg> {
    specs
        .iter()
        .map(|s| {
            *ts = (*ts + s.ts_step).max(0);
            Msg {
                key: s.key.clone(),
                value: s.value.clone(),
                headers: s.headers.clone(),
                timestamp: *ts,
            }
        })
        .collect()
}

/// Reads the whole log with each read size and from each start offset, and checks every
/// timestamp lookup, against `model` (whose record `i` has offset `i`).
fn check_log(
    log: &PartitionLog,
    model: &[Rec],
    starts: &[proptest::sample::Index],
    sizes: &[usize],
) {
    assert_eq!(log.log_start_offset(), 0);
    assert_eq!(log.log_end_offset(), model.len() as i64);
    assert_eq!(log.high_watermark(), model.len() as i64);
    for &max_bytes in sizes {
        assert_eq!(read_from(log, 0, max_bytes), model, "max_bytes {max_bytes}");
    }
    for (i, start) in starts.iter().enumerate() {
        let offset = start.index(model.len() + 1);
        let max_bytes = sizes[i % sizes.len()];
        assert_eq!(
            read_from(log, offset as i64, max_bytes),
            &model[offset..],
            "read from {offset} with max_bytes {max_bytes}"
        );
    }
    let beyond = log.read(model.len() as i64 + 1, 1024).unwrap_err();
    assert_eq!(beyond.kafka_error_code(), 1);
    let at_end = log.read(model.len() as i64, 1024).unwrap();
    assert!(at_end.slice.is_none());
    check_timestamp_lookups(log, model);
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(32))]

    #[test]
    fn appended_records_read_back_identically_across_reopens(
        batches in batches(),
        segment_bytes in 4096u64..16384,
        index_interval_bytes in prop_oneof![Just(0u64), 32u64..1024],
        starts in proptest::collection::vec(any::<proptest::sample::Index>(), 8),
        sizes in proptest::collection::vec(prop_oneof![Just(0usize), 1usize..20_000], 1..4),
        extra in batches(),
    ) {
        let dir = tempfile::tempdir().unwrap();
        let config = small_config(segment_bytes, index_interval_bytes);
        let log = open(dir.path(), config.clone(), true);
        let mut ts = 1_000_000;
        let mut model = Vec::new();
        for (codec, specs) in &batches {
            model.extend(append(&log, &to_msgs(specs, &mut ts), CODECS[*codec]));
        }
        check_log(&log, &model, &starts, &sizes);
        assert_eq!(log_file_bases(dir.path()), log.segment_base_offsets());
        let bases = log.segment_base_offsets();

        // A crash: the log is dropped without close, indexes partly unwritten.
        drop(log);
        let log = open(dir.path(), config.clone(), false);
        assert_eq!(log.segment_base_offsets(), bases);
        check_log(&log, &model, &starts, &sizes);
        let (codec, specs) = &extra[0];
        model.extend(append(&log, &to_msgs(specs, &mut ts), CODECS[*codec]));
        check_log(&log, &model, &starts, &sizes);

        // A clean shutdown and reopen.
        log.close().unwrap();
        drop(log);
        let log = open(dir.path(), config.clone(), true);
        check_log(&log, &model, &starts, &sizes);
        for (codec, specs) in &extra[1..] {
            model.extend(append(&log, &to_msgs(specs, &mut ts), CODECS[*codec]));
        }
        check_log(&log, &model, &starts, &sizes);
        assert_eq!(log_file_bases(dir.path()), log.segment_base_offsets());

        // And once more, cleanly, without writing in between.
        log.close().unwrap();
        drop(log);
        let log = open(dir.path(), config.clone(), true);
        check_log(&log, &model, &starts, &sizes);

        // DeleteRecords anywhere: reads and lookups see only what is left, also reopened.
        let cut = starts[0].index(model.len() + 1) as i64;
        assert_eq!(log.delete_records(cut).unwrap(), cut);
        let check_cut = |log: &PartitionLog| {
            assert_eq!(log.log_start_offset(), cut);
            assert_eq!(read_from(log, cut, sizes[0]), &model[cut as usize..]);
            if cut > 0 {
                assert_eq!(log.read(cut - 1, 100).unwrap_err().kafka_error_code(), 1);
            }
            check_timestamp_lookups(log, &model);
        };
        check_cut(&log);
        drop(log);
        check_cut(&open(dir.path(), config, false));
    }
}

#[test]
fn several_batches_in_one_append_get_consecutive_offsets() {
    let dir = tempfile::tempdir().unwrap();
    let log = open(dir.path(), small_config(4096, 128), true);
    let first = append(&log, &[Msg::kv("a", "1", 10)], Compression::None);
    let msgs: Vec<Vec<Msg>> = (0..5)
        .map(|b| {
            (0..3)
                .map(|i| Msg::kv(&format!("k{b}{i}"), &format!("v{b}{i}"), 100 + b * 10 + i))
                .collect()
        })
        .collect();
    let mut wire = Vec::new();
    for (i, m) in msgs.iter().enumerate() {
        wire.extend(build_batch(m, CODECS[i % CODECS.len()]));
    }
    let info = log.append(&wire, 1_000).unwrap();
    assert_eq!((info.base_offset, info.last_offset), (1, 15));
    assert_eq!(info.record_count, 15);
    let mut model = first;
    for (i, m) in msgs.iter().flatten().enumerate() {
        model.push(m.at(1 + i as i64));
    }
    assert_eq!(read_all(&log), model);
    check_timestamp_lookups(&log, &model);
}

#[test]
fn log_append_time_stamps_the_broker_clock_on_every_record() {
    let dir = tempfile::tempdir().unwrap();
    let config = LogConfig {
        message_timestamp_type: TimestampType::LogAppendTime,
        ..small_config(1024, 0)
    };
    let log = PartitionLog::open(dir.path(), tp(), config.clone(), true, 0).unwrap();
    let mut expected = Vec::new();
    for i in 0..20i64 {
        let msgs: Vec<Msg> = (0..3).map(|j| Msg::kv("k", &"x".repeat(100), j)).collect();
        let batch = build_batch(&msgs, CODECS[i as usize % CODECS.len()]);
        let now = 5_000 + i * 10;
        let info = log.append(&batch, now).unwrap();
        assert_eq!(info.log_append_time, now);
        for (j, m) in msgs.iter().enumerate() {
            let mut r = m.at(info.base_offset + j as i64);
            r.timestamp = now;
            expected.push(r);
        }
    }
    assert!(log.segment_count() > 3);
    assert_eq!(read_all(&log), expected);
    check_timestamp_lookups(&log, &expected);
    log.close().unwrap();
    drop(log);
    let log = PartitionLog::open(dir.path(), tp(), config, true, 0).unwrap();
    assert_eq!(read_all(&log), expected);
    check_timestamp_lookups(&log, &expected);
}

#[test]
fn record_timestamps_past_i64_max_saturate_everywhere() {
    // A producer may send a base timestamp near i64::MAX with a positive delta. Validation
    // saturates such a timestamp to i64::MAX; lookups and compaction must agree, not
    // overflow.
    let config = LogConfig {
        cleanup_policy: sluice_storage::CleanupPolicy {
            delete: false,
            compact: true,
        },
        ..small_config(512, 0)
    };
    let dir = tempfile::tempdir().unwrap();
    let log = PartitionLog::open(dir.path(), tp(), config, true, 0).unwrap();
    let mut b = sluice_storage::BatchBuilder::new(0);
    b.push(Some(b"a"), Some(b"first"), &[], 0);
    b.push(Some(b"b"), Some(b"second"), &[], 100);
    let mut batch = b.build();
    batch[27..35].copy_from_slice(&(i64::MAX - 50).to_be_bytes());
    let crc = sluice_storage::batch::compute_crc(&batch);
    batch[17..21].copy_from_slice(&crc.to_be_bytes());
    let info = log.append(&batch, 0).unwrap();
    assert_eq!(info.base_offset, 0);
    let mut model = vec![
        Msg::kv("a", "first", i64::MAX - 50).at(0),
        Msg::kv("b", "second", i64::MAX).at(1),
    ];
    // Later records overwrite key "a" and seal the first segment.
    for i in 0..6 {
        model.extend(append(
            &log,
            &[Msg::kv("a", &"z".repeat(200), i)],
            Compression::None,
        ));
    }
    assert!(log.segment_count() > 2);
    assert_eq!(read_all(&log), model);
    check_timestamp_lookups(&log, &model);
    assert_eq!(
        log.offset_for_timestamp(i64::MAX).unwrap(),
        Some((1, i64::MAX))
    );

    log.compact(sluice_storage::now_ms(), true)
        .unwrap()
        .unwrap();
    let sealed_end = *log.segment_base_offsets().last().unwrap();
    model.retain(|r| {
        r.offset != 0 && (r.offset >= sealed_end - 1 || r.key.as_deref() != Some(b"a"))
    });
    assert_eq!(read_all(&log), model);
    check_timestamp_lookups(&log, &model);
}

#[test]
fn unbounded_max_bytes_reads_to_the_end_of_the_segment() {
    let dir = tempfile::tempdir().unwrap();
    let log = open(dir.path(), small_config(1 << 20, 64), true);
    let mut model = Vec::new();
    for i in 0..10 {
        model.extend(append(
            &log,
            &[Msg::kv("k", &format!("v{i}"), i)],
            CODECS[i as usize % 5],
        ));
    }
    for start in 0..10 {
        let slice = log.read(start, usize::MAX).unwrap().slice.unwrap();
        let recs = decode_batches(&slice.to_bytes().unwrap());
        assert_eq!(recs, &model[start as usize..]);
    }
}

/// Small appends are copied into a mapping window of the active segment that moves every
/// few MiB (`write_ahead::WINDOW`); large ones are written with `pwritev` in between. 24 MiB
/// of mixed appends in one segment cross several windows; everything reads back, after a
/// clean reopen and after a crash (no drop) too.
#[test]
fn mixed_appends_across_many_mapping_windows_read_back_identically() {
    let dir = tempfile::tempdir().unwrap();
    let config = small_config(64 << 20, 4096);
    let log = open(dir.path(), config.clone(), true);
    let mut model = Vec::new();
    let mut written = 0usize;
    let mut i = 0u64;
    while written < 24 << 20 {
        // Mostly ~16 KiB batches, every 7th a ~200 KiB one, every 11th a tiny one.
        let (records, len) = match i % 11 {
            0 => (1, 40),
            _ if i % 7 == 0 => (4, 50_000),
            _ => (16, 1_000),
        };
        let msgs: Vec<Msg> = (0..records)
            .map(|r| Msg {
                key: Some(format!("k{i}-{r}").into_bytes()),
                value: Some(filler(i * 31 + r, len)),
                headers: vec![(b"i".to_vec(), Some(i.to_string().into_bytes()))],
                timestamp: 1_000 + i as i64,
            })
            .collect();
        written += msgs
            .iter()
            .map(|m| len + m.key.as_ref().unwrap().len())
            .sum::<usize>();
        model.extend(append(&log, &msgs, Compression::None));
        i += 1;
    }
    assert_eq!(log.segment_count(), 1);
    assert_eq!(read_all(&log), model);
    drop(log);
    let log = open(dir.path(), config.clone(), true);
    assert_eq!(read_all(&log), model);
    check_timestamp_lookups(&log, &model);
    // A crash: the log is leaked, not dropped, so nothing is cut back or sealed.
    let crashed = dir.path().join("crashed");
    {
        let more = append(&log, &[Msg::kv("last", "one", 99_999)], Compression::None);
        model.extend(more);
        copy_dir(dir.path(), &crashed);
    }
    let log = open(&crashed, config, false);
    assert_eq!(read_all(&log), model);
}
