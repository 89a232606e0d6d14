//! Recovery after a crash: a torn or corrupt tail segment is cut at the first bad batch and
//! nothing before it is lost; damaged, missing or stray files around the segments are
//! repaired or ignored.

mod common;

use std::fs::OpenOptions;
use std::path::Path;

use common::*;
use rand::{Rng, SeedableRng};
use sluice_storage::batch::{batch_size_at, BatchHeader};
use sluice_storage::{Compression, LogConfig, LogStore, PartitionLog};

fn config() -> LogConfig {
    small_config(6_000, 300)
}

/// One batch of the tail segment as it lies in the file.
#[derive(Debug, Clone)]
struct TailBatch {
    start: u64,
    end: u64,
    records: Vec<Rec>,
}

/// A log written with flushes and then abandoned without close, as a crash leaves it.
struct Crashed {
    dir: tempfile::TempDir,
    /// Records of the segments before the tail one.
    before_tail: Vec<Rec>,
    tail_base: i64,
    tail: Vec<TailBatch>,
    /// The tail segment file as the crash left it.
    tail_bytes: Vec<u8>,
}

impl Crashed {
    fn new() -> Self {
        let dir = tempfile::tempdir().unwrap();
        let log = open(dir.path(), config(), true);
        let mut rng = rand::rngs::StdRng::seed_from_u64(7);
        let mut ts = 50_000i64;
        let mut all = Vec::new();
        for b in 0..60 {
            // The last two batches are small, so every byte of them can be tried quickly.
            let (count, max_len) = if b >= 58 { (2, 16) } else { (1 + b % 6, 200) };
            let msgs: Vec<Msg> = (0..count)
                .map(|i| {
                    ts += rng.random_range(-40..100i64);
                    Msg {
                        key: (i % 4 != 3).then(|| format!("key-{b}-{i}").into_bytes()),
                        value: (i % 7 != 6).then(|| {
                            filler(b as u64 * 100 + i as u64, rng.random_range(0..max_len))
                        }),
                        headers: if i % 2 == 0 {
                            vec![(b"h".to_vec(), Some(format!("{b}").into_bytes()))]
                        } else {
                            Vec::new()
                        },
                        timestamp: ts,
                    }
                })
                .collect();
            all.extend(append(&log, &msgs, CODECS[b % CODECS.len()]));
            if b % 10 == 9 {
                log.flush(1_000).unwrap();
            }
        }
        log.flush(1_000).unwrap();
        assert_eq!(read_all(&log), all);
        let tail_base = *log.segment_base_offsets().last().unwrap();
        assert!(log.segment_count() >= 3, "the test wants several segments");
        drop(log);

        let bytes = std::fs::read(seg_path(dir.path(), tail_base, "log")).unwrap();
        let mut tail = Vec::new();
        let mut start = 0u64;
        for (header, batch) in split_batches(&bytes) {
            let end = start + batch.len() as u64;
            tail.push(TailBatch {
                start,
                end,
                records: decode_batch(&header, &batch),
            });
            start = end;
        }
        assert!(
            tail.len() >= 6,
            "the tail segment should hold several batches"
        );
        let tail_records: Vec<Rec> = tail.iter().flat_map(|b| b.records.clone()).collect();
        let appended_tail: Vec<Rec> = all
            .iter()
            .filter(|r| r.offset >= tail_base)
            .cloned()
            .collect();
        assert_eq!(tail_records, appended_tail);
        let before_tail = all
            .iter()
            .filter(|r| r.offset < tail_base)
            .cloned()
            .collect();
        Crashed {
            dir,
            before_tail,
            tail_base,
            tail,
            tail_bytes: bytes,
        }
    }

    fn tail_len(&self) -> u64 {
        self.tail.last().unwrap().end
    }

    /// What must survive when the tail keeps only its batches ending at or before `cut`.
    fn expected(&self, cut: u64) -> (Vec<Rec>, u64) {
        let mut recs = self.before_tail.clone();
        let mut len = 0;
        for b in self.tail.iter().take_while(|b| b.end <= cut) {
            recs.extend(b.records.iter().cloned());
            len = b.end;
        }
        (recs, len)
    }

    /// Start of the batch holding byte `pos` of the tail.
    fn batch_start_of(&self, pos: u64) -> u64 {
        self.tail
            .iter()
            .find(|b| b.start <= pos && pos < b.end)
            .unwrap()
            .start
    }
}

#[derive(Debug, Clone, Copy)]
enum Damage {
    Truncate(u64),
    Flip(u64),
}

/// Applies `damage` to a copy of the crashed log, recovers it and checks the result.
fn trial(crashed: &Crashed, damage: Damage, full_checks: bool) {
    let scratch = tempfile::tempdir().unwrap();
    let dir = scratch.path().join("t-0");
    copy_dir(crashed.dir.path(), &dir);
    let tail_path = seg_path(&dir, crashed.tail_base, "log");
    let cut = match damage {
        Damage::Truncate(pos) => {
            let f = OpenOptions::new().write(true).open(&tail_path).unwrap();
            f.set_len(pos).unwrap();
            pos
        }
        Damage::Flip(pos) => {
            let mut bytes = std::fs::read(&tail_path).unwrap();
            bytes[pos as usize] ^= 0x5a;
            std::fs::write(&tail_path, bytes).unwrap();
            crashed.batch_start_of(pos)
        }
    };
    let (mut expected, expected_len) = crashed.expected(cut);
    let expected_end = expected
        .last()
        .map_or(crashed.tail_base, |r| r.offset + 1)
        .max(crashed.tail_base);

    // Every trial compares the tail segment byte for byte (cheap); full ones also decode
    // the whole log and check timestamp lookups.
    let surviving = &crashed.tail_bytes[..expected_len as usize];
    let log = open(&dir, config(), false);
    assert_eq!(log.log_end_offset(), expected_end, "{damage:?}");
    assert_eq!(
        std::fs::metadata(&tail_path).unwrap().len(),
        expected_len,
        "{damage:?}: the tail is cut at the last whole valid batch"
    );
    assert!(raw_from(&log, crashed.tail_base) == surviving, "{damage:?}");
    if full_checks {
        assert_eq!(read_all(&log), expected, "{damage:?}");
        check_timestamp_lookups(&log, &expected);
    }

    // Appends continue right after what survived and are readable.
    let msgs = vec![
        Msg::kv("after", "crash", 10),
        Msg::kv("after", "again", 99_999_999),
    ];
    expected.extend(append(&log, &msgs, Compression::Lz4));
    assert_eq!(
        read_from(&log, expected_end, 1),
        &expected[expected.len() - 2..]
    );
    drop(log);

    // A second crash and recovery sees the same log, and so does a clean restart.
    let log = open(&dir, config(), false);
    assert_eq!(log.log_end_offset(), expected_end + 2);
    let raw = raw_from(&log, crashed.tail_base);
    assert!(
        raw.starts_with(surviving),
        "{damage:?} after a second recovery"
    );
    assert_eq!(
        decode_batches(&raw[surviving.len()..]),
        &expected[expected.len() - 2..]
    );
    if full_checks {
        assert_eq!(
            read_all(&log),
            expected,
            "{damage:?} after a second recovery"
        );
        check_timestamp_lookups(&log, &expected);
        log.close().unwrap();
        drop(log);
        let log = open(&dir, config(), true);
        assert_eq!(read_all(&log), expected, "{damage:?} after a clean restart");
        assert_eq!(log.log_end_offset(), expected_end + 2);
    }
}

/// The raw bytes of every batch from `offset` on, as reads return them.
fn raw_from(log: &PartitionLog, offset: i64) -> Vec<u8> {
    let mut out = Vec::new();
    let mut cursor = offset;
    while let Some(slice) = log.read(cursor, 1 << 20).unwrap().slice {
        let bytes = slice.to_bytes().unwrap();
        cursor = split_batches(&bytes).last().unwrap().0.last_offset() + 1;
        out.extend_from_slice(&bytes);
    }
    out
}

/// Bytes 0..8 (base offset) and 12..16 (partition leader epoch) of a batch are outside its
/// CRC in the v2 format, so no reader can tell a flip there from a real value.
fn covered_by_checks(crashed: &Crashed, pos: u64) -> bool {
    let within = pos - crashed.batch_start_of(pos);
    !(within < 8 || (12..16).contains(&within))
}

#[test]
fn torn_or_corrupt_tail_is_cut_at_the_first_bad_batch() {
    let crashed = Crashed::new();
    let len = crashed.tail_len();
    // The undamaged log recovers completely.
    trial(&crashed, Damage::Truncate(len), true);

    // Every byte of the last two batches.
    let last_two = crashed.tail[crashed.tail.len() - 2].start;
    for (i, pos) in (last_two..len).enumerate() {
        trial(&crashed, Damage::Truncate(pos), i % 100 == 0);
        if covered_by_checks(&crashed, pos) {
            trial(&crashed, Damage::Flip(pos), i % 100 == 50);
        }
    }

    // Random positions anywhere in the tail segment, including before its index entries.
    let mut rng = rand::rngs::StdRng::seed_from_u64(42);
    for i in 0..80 {
        let pos = rng.random_range(0..len);
        trial(&crashed, Damage::Truncate(pos), i % 20 == 0);
        if covered_by_checks(&crashed, pos) {
            trial(&crashed, Damage::Flip(pos), i % 20 == 10);
        }
    }
    // Every batch boundary, including an empty tail.
    for (i, b) in crashed.tail.iter().enumerate() {
        trial(&crashed, Damage::Truncate(b.start), i % 4 == 0);
    }
}

/// A log with several sealed segments, closed cleanly; returns its records.
fn written_log(dir: &Path) -> Vec<Rec> {
    let log = open(dir, config(), true);
    let mut model = Vec::new();
    for b in 0..40i64 {
        // Timestamps go up and down so the time index matters.
        let msgs: Vec<Msg> = (0..4)
            .map(|i| {
                let ts = 10_000 + b * 50 + if i % 2 == 0 { 200 } else { -200 } + i * 3;
                Msg {
                    key: Some(format!("k{b}-{i}").into_bytes()),
                    value: Some(filler((b * 4 + i) as u64, 40 + (b * 7 % 90) as usize)),
                    headers: vec![(b"n".to_vec(), Some(i.to_string().into_bytes()))],
                    timestamp: ts,
                }
            })
            .collect();
        model.extend(append(&log, &msgs, CODECS[b as usize % CODECS.len()]));
    }
    assert!(log.segment_count() >= 3);
    log.close().unwrap();
    model
}

fn check_reopened(dir: &Path, model: &[Rec], clean: bool) -> PartitionLog {
    let log = open(dir, config(), clean);
    assert_eq!(log.log_end_offset(), model.len() as i64);
    assert_eq!(read_all(&log), model);
    for start in [0, 1, 17, 63, 100, model.len() as i64 - 1] {
        assert_eq!(read_from(&log, start, 1), &model[start as usize..]);
    }
    check_timestamp_lookups(&log, model);
    log
}

#[test]
fn unknown_files_are_ignored_and_kept() {
    let dir = tempfile::tempdir().unwrap();
    let model = written_log(dir.path());
    std::fs::write(dir.path().join("garbage.bin"), filler(1, 777)).unwrap();
    std::fs::write(dir.path().join("README"), b"not a segment").unwrap();
    std::fs::write(
        dir.path().join("00000000000000000000.log.bak"),
        filler(2, 99),
    )
    .unwrap();
    std::fs::write(dir.path().join("12345.log"), filler(3, 99)).unwrap();
    std::fs::create_dir(dir.path().join("subdir")).unwrap();
    for clean in [false, true] {
        let log = check_reopened(dir.path(), &model, clean);
        log.close().unwrap();
    }
    let names = file_names(dir.path());
    for stray in [
        "garbage.bin",
        "README",
        "00000000000000000000.log.bak",
        "12345.log",
        "subdir",
    ] {
        assert!(names.contains(&stray.to_string()), "{stray} was removed");
    }
}

fn remove_all_with_ext(dir: &Path, ext: &str) -> usize {
    let mut removed = 0;
    for name in file_names(dir) {
        if name.ends_with(&format!(".{ext}")) {
            std::fs::remove_file(dir.join(name)).unwrap();
            removed += 1;
        }
    }
    removed
}

#[test]
fn missing_indexes_are_rebuilt() {
    for exts in [&["index"][..], &["timeindex"], &["index", "timeindex"]] {
        for clean in [true, false] {
            let dir = tempfile::tempdir().unwrap();
            let model = written_log(dir.path());
            let bases = log_file_bases(dir.path());
            let with_indexes = file_names(dir.path());
            for ext in exts {
                assert_eq!(remove_all_with_ext(dir.path(), ext), bases.len());
            }
            let log = check_reopened(dir.path(), &model, clean);
            assert_eq!(log.segment_base_offsets(), bases);
            log.close().unwrap();
            drop(log);
            assert_eq!(file_names(dir.path()), with_indexes, "{exts:?} recreated");
            for base in &bases {
                let len = std::fs::metadata(seg_path(dir.path(), *base, "index"))
                    .unwrap()
                    .len();
                assert!(len > 0, "index of segment {base} was rebuilt with entries");
            }
            check_reopened(dir.path(), &model, true);
        }
    }
}

/// Reads a `.index` file as (relative offset, position) pairs.
fn offset_entries(path: &Path) -> Vec<(u32, u32)> {
    std::fs::read(path)
        .unwrap()
        .chunks_exact(8)
        .map(|c| {
            (
                u32::from_be_bytes(c[0..4].try_into().unwrap()),
                u32::from_be_bytes(c[4..8].try_into().unwrap()),
            )
        })
        .collect()
}

#[test]
fn index_entries_pointing_past_the_log_are_repaired() {
    for clean in [true, false] {
        let dir = tempfile::tempdir().unwrap();
        let model = written_log(dir.path());
        let bases = log_file_bases(dir.path());
        for base in &bases {
            let log_len = std::fs::metadata(seg_path(dir.path(), *base, "log"))
                .unwrap()
                .len() as u32;
            let mut index = OpenOptions::new()
                .append(true)
                .open(seg_path(dir.path(), *base, "index"))
                .unwrap();
            let mut bogus = Vec::new();
            bogus.extend_from_slice(&100_000u32.to_be_bytes());
            bogus.extend_from_slice(&(log_len + 500).to_be_bytes());
            std::io::Write::write_all(&mut index, &bogus).unwrap();
            // A time index entry claiming a huge timestamp at an offset the segment lacks.
            let mut timeindex = OpenOptions::new()
                .append(true)
                .open(seg_path(dir.path(), *base, "timeindex"))
                .unwrap();
            let mut bogus = Vec::new();
            bogus.extend_from_slice(&(i64::MAX / 2).to_be_bytes());
            bogus.extend_from_slice(&100_000u32.to_be_bytes());
            std::io::Write::write_all(&mut timeindex, &bogus).unwrap();
        }
        let log = check_reopened(dir.path(), &model, clean);
        log.close().unwrap();
        drop(log);
        for base in &bases {
            let log_len = std::fs::metadata(seg_path(dir.path(), *base, "log"))
                .unwrap()
                .len();
            let entries = offset_entries(&seg_path(dir.path(), *base, "index"));
            assert!(!entries.is_empty());
            assert!(
                entries.iter().all(|(_, pos)| u64::from(*pos) < log_len),
                "segment {base}: {entries:?}"
            );
        }
        check_reopened(dir.path(), &model, true);
    }
}

#[test]
fn tail_cut_on_a_batch_boundary_after_a_clean_close_drops_stale_index_entries() {
    let dir = tempfile::tempdir().unwrap();
    let model = written_log(dir.path());
    let tail_base = *log_file_bases(dir.path()).last().unwrap();
    let tail_path = seg_path(dir.path(), tail_base, "log");
    let bytes = std::fs::read(&tail_path).unwrap();
    let batches = split_batches(&bytes);
    assert!(batches.len() >= 4);
    let keep = batches.len() / 2;
    let cut: usize = batches[..keep].iter().map(|(_, b)| b.len()).sum();
    let end = batches[keep - 1].0.last_offset() + 1;
    std::fs::write(&tail_path, &bytes[..cut]).unwrap();
    let mut expected: Vec<Rec> = model.iter().filter(|r| r.offset < end).cloned().collect();

    let log = open(dir.path(), config(), true);
    assert_eq!(log.log_end_offset(), end);
    assert_eq!(read_all(&log), expected);
    check_timestamp_lookups(&log, &expected);
    expected.extend(append(
        &log,
        &[Msg::kv("new", "value", 5)],
        Compression::None,
    ));
    assert_eq!(read_all(&log), expected);
    check_timestamp_lookups(&log, &expected);
    log.close().unwrap();
    drop(log);
    let entries = offset_entries(&seg_path(dir.path(), tail_base, "index"));
    let len = std::fs::metadata(&tail_path).unwrap().len();
    assert!(entries.iter().all(|(_, pos)| u64::from(*pos) < len));
    let log = open(dir.path(), config(), true);
    assert_eq!(read_all(&log), expected);
    check_timestamp_lookups(&log, &expected);
}

#[test]
fn zero_length_segments_open_as_empty() {
    // A partition holding only an empty segment file: the log starts at its base offset.
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(seg_path(dir.path(), 42, "log"), b"").unwrap();
    for clean in [true, false] {
        let log = open(dir.path(), config(), clean);
        assert_eq!(log.log_start_offset(), 42);
        assert_eq!(log.log_end_offset(), 42);
        assert!(log.read(42, 100).unwrap().slice.is_none());
        assert_eq!(log.read(41, 100).unwrap_err().kafka_error_code(), 1);
        assert_eq!(log.offset_for_timestamp(0).unwrap(), None);
    }
    let log = open(dir.path(), config(), true);
    let recs = append(&log, &[Msg::kv("a", "b", 7)], Compression::Gzip);
    assert_eq!(recs[0].offset, 42);
    assert_eq!(read_all(&log), recs);
    drop(log);

    // A log whose tail segment file lost all its bytes (its indexes still point into it).
    let dir = tempfile::tempdir().unwrap();
    let model = written_log(dir.path());
    let tail_base = *log_file_bases(dir.path()).last().unwrap();
    std::fs::write(seg_path(dir.path(), tail_base, "log"), b"").unwrap();
    let mut expected: Vec<Rec> = model
        .iter()
        .filter(|r| r.offset < tail_base)
        .cloned()
        .collect();
    for clean in [true, false] {
        let log = open(dir.path(), config(), clean);
        assert_eq!(log.log_end_offset(), tail_base);
        assert_eq!(read_all(&log), expected);
        check_timestamp_lookups(&log, &expected);
    }
    let log = open(dir.path(), config(), false);
    expected.extend(append(&log, &[Msg::kv("x", "y", 1)], Compression::Snappy));
    assert_eq!(read_all(&log), expected);
    check_timestamp_lookups(&log, &expected);
}

#[test]
fn leftover_compaction_and_deletion_files_are_removed() {
    let dir = tempfile::tempdir().unwrap();
    let model = written_log(dir.path());
    let before = file_names(dir.path());
    let base = log_file_bases(dir.path())[1];
    let leftovers = [
        format!("{base:020}.log.cleaned"),
        format!("{base:020}.index.cleaned"),
        format!("{base:020}.timeindex.cleaned"),
        "00000000000000000000.log.cleaned".to_string(),
        format!("{base:020}.log.deleted"),
        "log-start-offset.tmp".to_string(),
    ];
    for name in &leftovers {
        std::fs::write(dir.path().join(name), filler(9, 300)).unwrap();
    }
    for clean in [true, false] {
        let log = check_reopened(dir.path(), &model, clean);
        log.close().unwrap();
        drop(log);
        assert_eq!(file_names(dir.path()), before);
    }
}

#[test]
fn log_store_verifies_tails_only_after_an_unclean_shutdown() {
    let data = tempfile::tempdir().unwrap();
    let tp = tp();
    let mut model = Vec::new();
    {
        let store = LogStore::open(data.path(), |_| config()).unwrap();
        assert!(!store.recovered_unclean() || store.all().is_empty());
        let log = store.get_or_create(&tp, config()).unwrap();
        for i in 0..30 {
            model.extend(append(
                &log,
                &[Msg::kv(&format!("k{i}"), &"v".repeat(300), i)],
                Compression::None,
            ));
        }
        store.shutdown().unwrap();
    }
    {
        let store = LogStore::open(data.path(), |_| config()).unwrap();
        assert!(!store.recovered_unclean());
        let log = store.get(&tp).unwrap();
        assert_eq!(read_all(&log), model);
        model.extend(append(&log, &[Msg::kv("torn", "x", 99)], Compression::None));
        // Dropped without shutdown: a crash. Tear the last batch in half.
    }
    let dir = data.path().join(tp.dir_name());
    let tail_base = *log_file_bases(&dir).last().unwrap();
    let tail_path = seg_path(&dir, tail_base, "log");
    let len = std::fs::metadata(&tail_path).unwrap().len();
    OpenOptions::new()
        .write(true)
        .open(&tail_path)
        .unwrap()
        .set_len(len - 10)
        .unwrap();
    model.pop();
    {
        let store = LogStore::open(data.path(), |_| config()).unwrap();
        assert!(store.recovered_unclean());
        let log = store.get(&tp).unwrap();
        assert_eq!(log.log_end_offset(), model.len() as i64);
        assert_eq!(read_all(&log), model);
        store.shutdown().unwrap();
    }
    let store = LogStore::open(data.path(), |_| config()).unwrap();
    assert!(!store.recovered_unclean());
    assert_eq!(read_all(&store.get(&tp).unwrap()), model);
}

/// Flips one byte in the middle of the last batch of the segment at `base`; returns the
/// offset of that batch's first record.
fn corrupt_last_batch_of(dir: &Path, base: i64) -> i64 {
    let path = seg_path(dir, base, "log");
    let mut bytes = std::fs::read(&path).unwrap();
    let batches = split_batches(&bytes);
    let (header, batch) = batches.last().unwrap();
    let start = bytes.len() - batch.len();
    bytes[start + batch.len() / 2 + 30] ^= 0x5a;
    std::fs::write(&path, bytes).unwrap();
    header.base_offset
}

#[test]
fn segments_past_the_recovery_point_are_verified_not_only_the_tail() {
    let dir = tempfile::tempdir().unwrap();
    let model = written_log(dir.path());
    let bases = log_file_bases(dir.path());
    assert!(bases.len() >= 3);
    // As if a power loss hit right after rolls whose background fsyncs had not finished:
    // the recovery point is still inside the first segment.
    std::fs::write(dir.path().join("recovery-point-offset"), "1\n").unwrap();
    let second = bases[1];
    let torn = corrupt_last_batch_of(dir.path(), second);
    let log = open(dir.path(), config(), false);
    // The damaged batch and whatever followed it in that segment are gone; earlier data and
    // the later segments are intact and readable, offsets unchanged.
    let survivors: Vec<Rec> = model
        .iter()
        .filter(|r| r.offset < torn || r.offset >= bases[2])
        .cloned()
        .collect();
    assert_eq!(read_all(&log), survivors);
    assert_eq!(log.log_end_offset(), model.len() as i64);
    // Appends go on after the last offset.
    let more = append(
        &log,
        &[Msg::kv("after", "repair", 20_000)],
        Compression::None,
    );
    assert_eq!(more[0].offset, model.len() as i64);
}

#[test]
fn segments_below_the_recovery_point_are_trusted_and_the_point_advances() {
    let dir = tempfile::tempdir().unwrap();
    let model = written_log(dir.path());
    // The clean close recorded everything as durable.
    let point = std::fs::read_to_string(dir.path().join("recovery-point-offset")).unwrap();
    assert_eq!(point.trim(), model.len().to_string());
    // Without a recovery point (a log written before they existed) only the tail is
    // verified, as before, and the next close writes one.
    std::fs::remove_file(dir.path().join("recovery-point-offset")).unwrap();
    let log = check_reopened(dir.path(), &model, false);
    log.close().unwrap();
    assert!(dir.path().join("recovery-point-offset").exists());
}

#[test]
fn a_rolled_segment_is_fsynced_in_the_background_and_the_point_moves_past_it() {
    let dir = tempfile::tempdir().unwrap();
    let log = open(dir.path(), config(), true);
    let mut written = 0;
    while log.segment_count() < 3 {
        written += append(
            &log,
            &[Msg::kv("k", &"v".repeat(500), 5_000)],
            Compression::None,
        )
        .len();
    }
    let second_base = log.segment_base_offsets()[1];
    let path = dir.path().join("recovery-point-offset");
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    let point = loop {
        let point: i64 = std::fs::read_to_string(&path)
            .ok()
            .and_then(|s| s.trim().parse().ok())
            .unwrap_or(-1);
        if point >= second_base || std::time::Instant::now() > deadline {
            break point;
        }
        std::thread::sleep(std::time::Duration::from_millis(20));
    };
    assert!(
        point >= second_base,
        "recovery point {point} never passed {second_base}"
    );
    assert!(point <= written as i64);
}

/// Appends `batches` small batches of four records each (every codec in turn) to `log`.
fn append_small_batches(log: &PartitionLog, first: i64, batches: i64) -> Vec<Rec> {
    let mut model = Vec::new();
    for b in first..first + batches {
        let msgs: Vec<Msg> = (0..4)
            .map(|i| Msg {
                key: Some(format!("k{b}-{i}").into_bytes()),
                value: Some(filler((b * 4 + i) as u64, 300)),
                headers: vec![(b"b".to_vec(), Some(b.to_string().into_bytes()))],
                timestamp: 20_000 + b * 10 + i,
            })
            .collect();
        model.extend(append(log, &msgs, CODECS[b as usize % CODECS.len()]));
    }
    model
}

/// The tail segment file of `dir` and its batches, read up to the first zero length field
/// (where the data ends and any zeros written ahead begin).
fn tail_file_and_batches(dir: &Path) -> (Vec<u8>, Vec<(BatchHeader, Vec<u8>)>) {
    let tail_base = *log_file_bases(dir).last().unwrap();
    let bytes = std::fs::read(seg_path(dir, tail_base, "log")).unwrap();
    let mut data = 0;
    while let Some(size) = batch_size_at(&bytes[data..]).filter(|s| *s > 12) {
        data += size;
    }
    let batches = split_batches(&bytes[..data]);
    (bytes, batches)
}

/// Bytes of data in `batches`.
fn data_len(batches: &[(BatchHeader, Vec<u8>)]) -> u64 {
    batches.iter().map(|(_, b)| b.len() as u64).sum()
}

#[test]
fn zeros_written_ahead_of_small_appends_are_cut_after_a_crash() {
    let dir = tempfile::tempdir().unwrap();
    let log = open(dir.path(), small_config(1 << 20, 4096), true);
    let mut model = append_small_batches(&log, 0, 30);
    // A crash: no close, no drop (so nothing cuts the file back).
    std::mem::forget(log);
    let (bytes, batches) = tail_file_and_batches(dir.path());
    let data = data_len(&batches);
    assert!(
        bytes.len() as u64 > data,
        "zeros were written ahead of the data"
    );
    assert_eq!(bytes.len() % (128 << 10), 0);
    assert!(bytes[data as usize..].iter().all(|b| *b == 0));

    // Reopened after the crash: every record is there, the zeros are gone, appends go on.
    let log = check_reopened(dir.path(), &model, false);
    let (bytes, batches) = tail_file_and_batches(dir.path());
    assert_eq!(bytes.len() as u64, data_len(&batches));
    model.extend(append_small_batches(&log, 30, 10));
    assert_eq!(read_all(&log), model);
    check_timestamp_lookups(&log, &model);

    // A crash in the middle of writing a batch: its last bytes never reached the file, the
    // zeros after it did. The batch is cut with the zeros; everything before it stays.
    std::mem::forget(log);
    let tail_base = *log_file_bases(dir.path()).last().unwrap();
    let path = seg_path(dir.path(), tail_base, "log");
    let (bytes, mut batches) = tail_file_and_batches(dir.path());
    let data = data_len(&batches);
    assert!(
        bytes.len() as u64 > data,
        "zeros were written ahead of the data"
    );
    let (last_header, last_batch) = batches.pop().unwrap();
    let torn_from = data - last_batch.len() as u64 / 2;
    let file = OpenOptions::new().write(true).open(&path).unwrap();
    std::os::unix::fs::FileExt::write_all_at(
        &file,
        &vec![0u8; (data - torn_from) as usize],
        torn_from,
    )
    .unwrap();
    drop(file);
    let lost = last_header.last_offset() - last_header.base_offset + 1;
    model.truncate(model.len() - lost as usize);
    let log = check_reopened(dir.path(), &model, false);
    assert_eq!(
        std::fs::metadata(&path).unwrap().len(),
        data - last_batch.len() as u64
    );
    model.extend(append_small_batches(&log, 40, 3));
    log.close().unwrap();
    drop(log);
    let log = check_reopened(dir.path(), &model, true);
    let (bytes, batches) = tail_file_and_batches(dir.path());
    assert_eq!(
        bytes.len() as u64,
        data_len(&batches),
        "a clean close leaves no zeros"
    );
    drop(log);
}

/// Appends one batch holding a single record whose value is `len` bytes.
fn append_value_of(log: &PartitionLog, i: usize, len: usize) -> Vec<Rec> {
    let msg = Msg {
        key: Some(format!("k{i}").into_bytes()),
        value: Some(filler(i as u64, len)),
        headers: vec![(b"len".to_vec(), Some(len.to_string().into_bytes()))],
        timestamp: 30_000 + i as i64,
    };
    append(log, &[msg], CODECS[i % CODECS.len()])
}

/// Bytes of all `.log` files of `dir`, and whether every byte past the data of each is zero.
fn log_files_and_zero_tails(dir: &Path) -> (u64, bool) {
    let mut total = 0;
    let mut only_zeros_past_data = true;
    for base in log_file_bases(dir) {
        let bytes = std::fs::read(seg_path(dir, base, "log")).unwrap();
        let mut data = 0;
        while let Some(size) = batch_size_at(&bytes[data..]).filter(|s| *s > 12) {
            data += size;
        }
        only_zeros_past_data &= bytes[data..].iter().all(|b| *b == 0);
        total += bytes.len() as u64;
    }
    (total, only_zeros_past_data)
}

proptest::proptest! {
    #![proptest_config(proptest::prelude::ProptestConfig::with_cases(24))]

    /// Appends below and above the write-ahead threshold, in any order and across segment
    /// rolls: zeros are only ever written past the data, a crash leaves nothing but zeros
    /// after it, and recovery gives back every record and files exactly as long as the data.
    #[test]
    fn small_and_large_appends_survive_a_crash_with_zeros_written_ahead(
        sizes in proptest::collection::vec(
            proptest::prop_oneof![
                6 => 1usize..3_000,
                2 => 20_000usize..70_000,
                1 => 60_000usize..200_000,
            ],
            1..40,
        ),
        segment_kib in 64u64..1024,
    ) {
        let dir = tempfile::tempdir().unwrap();
        let config = small_config(segment_kib << 10, 4096);
        let log = open(dir.path(), config.clone(), true);
        let mut model = Vec::new();
        for (i, len) in sizes.iter().enumerate() {
            model.extend(append_value_of(&log, i, *len));
        }
        assert_eq!(read_all(&log), model);
        let data = log.size_bytes();
        // A crash: no close and no drop, so nothing cuts the files back.
        std::mem::forget(log);
        let (on_disk, zero_tails) = log_files_and_zero_tails(dir.path());
        assert!(zero_tails, "bytes other than zeros past the data");
        assert!(on_disk >= data);

        let log = open(dir.path(), config.clone(), false);
        assert_eq!(read_all(&log), model);
        check_timestamp_lookups(&log, &model);
        assert_eq!(log_files_and_zero_tails(dir.path()).0, log.size_bytes());
        for (i, len) in [(1000, 100), (1001, 90_000), (1002, 10)] {
            model.extend(append_value_of(&log, i, len));
        }
        log.close().unwrap();
        drop(log);
        let log = open(dir.path(), config, true);
        assert_eq!(read_all(&log), model);
        assert_eq!(log_files_and_zero_tails(dir.path()).0, log.size_bytes());
    }
}
