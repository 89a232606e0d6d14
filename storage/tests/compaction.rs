//! Compaction keeps exactly the latest record of every key in sealed segments, at its
//! original offset and in its original codec, drops tombstones only once
//! `delete.retention.ms` has passed, never touches the active segment, runs alongside
//! appends and reads, and an interrupted swap is finished or discarded on start.

mod common;

use std::collections::{HashMap, HashSet};
use std::path::Path;
use std::sync::Arc;

use common::*;
use rand::{Rng, SeedableRng};
use sluice_storage::{now_ms, CleanupPolicy, Compression, LogConfig, PartitionLog};

const DAY_MS: i64 = 24 * 3600 * 1000;

fn config() -> LogConfig {
    LogConfig {
        cleanup_policy: CleanupPolicy {
            delete: false,
            compact: true,
        },
        delete_retention_ms: DAY_MS,
        ..small_config(1_500, 200)
    }
}

/// What compaction must leave: in `[0, sealed_end)` only the last record of each key (and
/// no tombstones when `drop_tombstones`); everything from `sealed_end` on untouched.
fn compacted(recs: &[Rec], sealed_end: i64, drop_tombstones: bool) -> Vec<Rec> {
    let mut latest: HashMap<&[u8], i64> = HashMap::new();
    for r in recs.iter().filter(|r| r.offset < sealed_end) {
        latest.insert(r.key.as_deref().unwrap(), r.offset);
    }
    recs.iter()
        .filter(|r| {
            r.offset >= sealed_end
                || (latest[r.key.as_deref().unwrap()] == r.offset
                    && !(drop_tombstones && r.value.is_none()))
        })
        .cloned()
        .collect()
}

/// A batch as appended: its codec and last offset, by base offset.
type Appended = HashMap<i64, (Compression, i64)>;

/// Keyed records with many overwrites and some tombstones, in batches of mixed codecs.
fn write_keyed(log: &PartitionLog, batches: usize, seed: u64) -> (Vec<Rec>, Appended) {
    let mut rng = rand::rngs::StdRng::seed_from_u64(seed);
    let mut recs = Vec::new();
    let mut appended = HashMap::new();
    for b in 0..batches {
        let count = rng.random_range(1..=4);
        let msgs: Vec<Msg> = (0..count)
            .map(|i| {
                let key = format!("key-{}", rng.random_range(0..12));
                let ts = 1_000 + (b * 4 + i) as i64;
                if rng.random_bool(0.15) {
                    Msg::tombstone(&key, ts)
                } else {
                    Msg {
                        key: Some(key.into_bytes()),
                        value: Some(filler((b * 4 + i) as u64, rng.random_range(10..90))),
                        headers: vec![(b"batch".to_vec(), Some(b.to_string().into_bytes()))],
                        timestamp: ts,
                    }
                }
            })
            .collect();
        let codec = CODECS[b % CODECS.len()];
        let batch = append(log, &msgs, codec);
        appended.insert(batch[0].offset, (codec, batch.last().unwrap().offset));
        recs.extend(batch);
    }
    (recs, appended)
}

/// Every batch of the log keeps the base offset, last offset and codec it was appended with.
fn assert_batches_keep_offsets_and_codecs(log: &PartitionLog, appended: &Appended) {
    let mut offset = log.log_start_offset();
    while let Some(slice) = log.read(offset, 1 << 20).unwrap().slice {
        for (header, _) in split_batches(&slice.to_bytes().unwrap()) {
            let (codec, last) = appended[&header.base_offset];
            assert_eq!(header.compression().unwrap(), codec, "{header:?}");
            assert_eq!(header.last_offset(), last, "{header:?}");
            offset = header.last_offset() + 1;
        }
    }
}

/// The full set of checks on a compacted log against its model.
fn assert_log(log: &PartitionLog, model: &[Rec], appended: &Appended, end: i64) {
    assert_log_sampled(log, model, appended, end, 1);
}

/// [`assert_log`], reading from every `step`th offset only.
fn assert_log_sampled(
    log: &PartitionLog,
    model: &[Rec],
    appended: &Appended,
    end: i64,
    step: usize,
) {
    assert_eq!(log.log_end_offset(), end);
    assert_eq!(read_all(log), model);
    // Reading from any offset, kept or removed, starts at the next kept record.
    for offset in (0..=end).step_by(step) {
        let expected: Vec<Rec> = model
            .iter()
            .filter(|r| r.offset >= offset)
            .cloned()
            .collect();
        assert_eq!(read_from(log, offset, 300), expected, "read from {offset}");
    }
    check_timestamp_lookups(log, model);
    assert_batches_keep_offsets_and_codecs(log, appended);
}

fn assert_no_leftovers(dir: &Path, log: &PartitionLog) {
    let names = file_names(dir);
    for name in &names {
        assert!(
            name.ends_with(".log")
                || name.ends_with(".index")
                || name.ends_with(".timeindex")
                || name.ends_with(".snapshot")
                || name == "cleaner-offset-checkpoint"
                || name == "log-start-offset"
                || name == "recovery-point-offset",
            "unexpected file {name} in {names:?}"
        );
    }
    assert_eq!(log_file_bases(dir), log.segment_base_offsets());
}

#[test]
fn compaction_keeps_the_latest_record_of_each_key_in_sealed_segments() {
    let dir = tempfile::tempdir().unwrap();
    let log = open(dir.path(), config(), true);
    let (recs, appended) = write_keyed(&log, 80, 1);
    let end = log.log_end_offset();
    let sealed_end = *log.segment_base_offsets().last().unwrap();
    assert!(log.segment_count() >= 5, "{:?}", log.segment_base_offsets());
    let size_before = log.size_bytes();
    let active_before = read_from(&log, sealed_end, 1 << 20);

    let now = now_ms();
    let stats = log.compact(now, true).unwrap().unwrap();
    let model = compacted(&recs, sealed_end, false);
    assert!(model
        .iter()
        .any(|r| r.value.is_none() && r.offset < sealed_end));
    assert_eq!(stats.records_removed as usize, recs.len() - model.len());
    assert!(stats.segments_rewritten >= stats.segments_written);
    assert!(stats.bytes_after < stats.bytes_before);
    assert!(log.size_bytes() < size_before);
    assert_eq!(*log.segment_base_offsets().last().unwrap(), sealed_end);
    assert_eq!(read_from(&log, sealed_end, 1 << 20), active_before);
    assert_log(&log, &model, &appended, end);
    assert_no_leftovers(dir.path(), &log);
    // Nothing is dirty any more; a forced pass changes nothing.
    assert_eq!(log.compact(now, false).unwrap(), None);
    let again = log.compact(now, true).unwrap().unwrap();
    assert_eq!(again.records_removed, 0);
    assert_log(&log, &model, &appended, end);

    // Reopening, after a clean close or a crash, gives the same log.
    log.close().unwrap();
    drop(log);
    for clean in [true, false] {
        let log = open(dir.path(), config(), clean);
        assert_log(&log, &model, &appended, end);
        assert_no_leftovers(dir.path(), &log);
    }

    // Appends after compaction continue at the log end and are readable.
    let log = open(dir.path(), config(), true);
    let more = append(
        &log,
        &[Msg::kv("key-0", "newest", 9_999)],
        Compression::Zstd,
    );
    assert_eq!(more[0].offset, end);
    let mut model = model;
    model.extend(more);
    assert_eq!(read_all(&log), model);
}

#[test]
fn tombstones_survive_until_delete_retention_ms_has_passed() {
    let dir = tempfile::tempdir().unwrap();
    let log = open(dir.path(), config(), true);
    let (recs, appended) = write_keyed(&log, 80, 2);
    let end = log.log_end_offset();
    let sealed_end = *log.segment_base_offsets().last().unwrap();

    log.compact(now_ms(), true).unwrap().unwrap();
    let kept = compacted(&recs, sealed_end, false);
    assert_log(&log, &kept, &appended, end);
    let tombstones: Vec<i64> = kept
        .iter()
        .filter(|r| r.value.is_none() && r.offset < sealed_end)
        .map(|r| r.offset)
        .collect();
    assert!(!tombstones.is_empty());

    // Once delete.retention.ms has passed, the tombstones go and their keys disappear.
    log.set_config(LogConfig {
        delete_retention_ms: 0,
        ..config()
    });
    let stats = log.compact(now_ms() + 60_000, true).unwrap().unwrap();
    let dropped = compacted(&recs, sealed_end, true);
    assert_eq!(stats.records_removed as usize, tombstones.len());
    assert_log(&log, &dropped, &appended, end);
    assert!(dropped
        .iter()
        .all(|r| r.value.is_some() || r.offset >= sealed_end));
    // Tombstones in the active segment are never touched.
    assert_eq!(
        read_from(&log, sealed_end, 1 << 20),
        recs.iter()
            .filter(|r| r.offset >= sealed_end)
            .cloned()
            .collect::<Vec<_>>()
    );
    drop(log);
    let log = open(dir.path(), config(), false);
    assert_log(&log, &dropped, &appended, end);
}

#[test]
fn min_compaction_lag_keeps_recent_segments_out_and_other_policies_do_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let log = open(dir.path(), config(), true);
    let (recs, appended) = write_keyed(&log, 60, 3);
    let end = log.log_end_offset();
    // Records have timestamps 1_000..1_240: with a lag of 100 ms at time 1_200 only the
    // sealed segments whose newest record is at most 1_100 may be cleaned.
    log.set_config(LogConfig {
        min_compaction_lag_ms: 100,
        ..config()
    });
    let bases = log.segment_base_offsets();
    let cleanable_end = bases
        .iter()
        .zip(bases.iter().skip(1))
        .take_while(|(b, next)| {
            recs.iter()
                .filter(|r| r.offset >= **b && r.offset < **next)
                .all(|r| r.timestamp <= 1_100)
        })
        .map(|(_, next)| *next)
        .last()
        .unwrap();
    assert!(cleanable_end < *bases.last().unwrap());
    log.compact(1_200, true).unwrap().unwrap();
    let model = compacted(&recs, cleanable_end, false);
    assert_log(&log, &model, &appended, end);

    // A delete-only topic is never compacted.
    log.set_config(LogConfig {
        cleanup_policy: CleanupPolicy {
            delete: true,
            compact: false,
        },
        ..config()
    });
    assert_eq!(log.compact(now_ms(), true).unwrap(), None);
    assert_log(&log, &model, &appended, end);
}

#[test]
fn appends_and_reads_run_while_compacting() {
    let dir = tempfile::tempdir().unwrap();
    let log = Arc::new(open(dir.path(), config(), true));
    let (first, mut appended) = write_keyed(&log, 40, 4);

    // What the appender will write, known in advance so readers can check any offset.
    let start = log.log_end_offset();
    let mut rng = rand::rngs::StdRng::seed_from_u64(5);
    let later: Vec<Vec<Msg>> = (0..150)
        .map(|b| {
            (0..rng.random_range(1..=3))
                .map(|i| {
                    let key = format!("key-{}", rng.random_range(0..12));
                    let value = format!("late-{b}-{i}-{}", "x".repeat(rng.random_range(0..80)));
                    Msg::kv(&key, &value, 5_000 + b)
                })
                .collect()
        })
        .collect();
    let mut all = first.clone();
    let mut offset = start;
    for (b, msgs) in later.iter().enumerate() {
        let codec = CODECS[b % CODECS.len()];
        appended.insert(offset, (codec, offset + msgs.len() as i64 - 1));
        for m in msgs {
            all.push(m.at(offset));
            offset += 1;
        }
    }
    let end = offset;
    let by_offset: Arc<HashMap<i64, Rec>> =
        Arc::new(all.iter().map(|r| (r.offset, r.clone())).collect());

    let appender = {
        let log = log.clone();
        let later = later.clone();
        std::thread::spawn(move || {
            for (b, msgs) in later.iter().enumerate() {
                let expected = log.log_end_offset();
                let batch = build_batch(msgs, CODECS[b % CODECS.len()]);
                let info = log.append(&batch, 1_000).unwrap();
                assert_eq!(info.base_offset, expected);
            }
        })
    };
    let reader = {
        let log = log.clone();
        let by_offset = by_offset.clone();
        std::thread::spawn(move || {
            let mut rng = rand::rngs::StdRng::seed_from_u64(6);
            for _ in 0..300 {
                let hw = log.high_watermark();
                let offset = rng.random_range(0..=hw);
                let result = log.read(offset, rng.random_range(0..4_000)).unwrap();
                assert!(result.high_watermark >= hw);
                let Some(slice) = result.slice else {
                    assert_eq!(offset, hw);
                    continue;
                };
                let batches = split_batches(&slice.to_bytes().unwrap());
                // The first batch holds the offset (compaction may have removed the record
                // itself, never the batch's offset range).
                assert!(batches[0].0.last_offset() >= offset);
                for (header, batch) in &batches {
                    for r in decode_batch(header, batch) {
                        assert_eq!(&r, &by_offset[&r.offset]);
                    }
                }
            }
        })
    };
    let mut passes = 0;
    while !appender.is_finished() || passes < 3 {
        log.compact(now_ms(), true).unwrap();
        passes += 1;
    }
    appender.join().unwrap();
    reader.join().unwrap();

    // Whatever the passes removed, the newest record of every key is still there.
    assert_eq!(log.log_end_offset(), end);
    let now = read_all(&log);
    let present: HashSet<i64> = now.iter().map(|r| r.offset).collect();
    let mut newest: HashMap<&[u8], i64> = HashMap::new();
    for r in &all {
        newest.insert(r.key.as_deref().unwrap(), r.offset);
    }
    for offset in newest.values() {
        assert!(
            present.contains(offset),
            "newest record at {offset} was removed"
        );
    }
    for r in &now {
        assert_eq!(r, &by_offset[&r.offset]);
    }

    // A final pass leaves exactly what a single compaction of everything sealed would.
    log.compact(now_ms(), true).unwrap();
    let sealed_end = *log.segment_base_offsets().last().unwrap();
    let model = compacted(&all, sealed_end, false);
    assert_log(&log, &model, &appended, end);
    assert_no_leftovers(dir.path(), &log);
}

/// The state of an interrupted compaction, reconstructed from a finished one.
struct SwapFixture {
    /// The log before compaction (the swap's inputs still in place).
    before: tempfile::TempDir,
    /// Files of the compacted first group, by extension ("log", "index", "timeindex").
    output: HashMap<&'static str, Vec<u8>>,
    /// First offset of the group and the end offset its sidecar records.
    base: i64,
    end: i64,
    /// Records before and after compaction, and how batches were appended.
    recs: Vec<Rec>,
    compacted: Vec<Rec>,
    appended: Appended,
    log_end: i64,
}

impl SwapFixture {
    fn new() -> Self {
        let before = tempfile::tempdir().unwrap();
        let log = open(before.path(), config(), true);
        let (recs, appended) = write_keyed(&log, 80, 7);
        let log_end = log.log_end_offset();
        log.close().unwrap();
        drop(log);
        let after = tempfile::tempdir().unwrap();
        copy_dir(before.path(), after.path());
        let log = open(after.path(), config(), true);
        let bases_before = log.segment_base_offsets();
        // Larger output segments, so the first output replaces several inputs.
        log.set_config(LogConfig {
            segment_bytes: 5_000,
            ..config()
        });
        log.compact(now_ms(), true).unwrap().unwrap();
        let bases_after = log.segment_base_offsets();
        let compacted = read_all(&log);
        assert_eq!(
            compacted,
            self::compacted(&recs, *bases_before.last().unwrap(), false)
        );
        log.close().unwrap();
        // The first output segment replaced every input segment below the next output.
        let (base, end) = (bases_after[0], bases_after[1]);
        let inputs = bases_before.iter().filter(|b| **b < end).count();
        assert!(inputs >= 2, "the first group should merge segments");
        let output = ["log", "index", "timeindex"]
            .into_iter()
            .map(|ext| {
                (
                    ext,
                    std::fs::read(seg_path(after.path(), base, ext)).unwrap(),
                )
            })
            .collect();
        SwapFixture {
            before,
            output,
            base,
            end,
            recs,
            compacted,
            appended,
            log_end,
        }
    }

    /// A copy of the uncompacted log with the swap's files as `files` says:
    /// (extension, suffix) pairs of output files, plus the sidecar if `sidecar`, minus the
    /// input segments `deleted_inputs` (in order, from the first).
    fn crashed(
        &self,
        files: &[(&'static str, &str)],
        sidecar: bool,
        deleted_inputs: usize,
    ) -> tempfile::TempDir {
        let dir = tempfile::tempdir().unwrap();
        copy_dir(self.before.path(), dir.path());
        let inputs: Vec<i64> = log_file_bases(dir.path())
            .into_iter()
            .filter(|b| *b < self.end)
            .collect();
        for base in inputs.iter().take(deleted_inputs) {
            for ext in ["log", "index", "timeindex"] {
                std::fs::remove_file(seg_path(dir.path(), *base, ext)).unwrap();
            }
        }
        for (ext, suffix) in files {
            let name = format!("{:020}.{ext}{suffix}", self.base);
            std::fs::write(dir.path().join(name), &self.output[ext]).unwrap();
        }
        if sidecar {
            let name = format!("{:020}.replaces.swap", self.base);
            std::fs::write(dir.path().join(name), format!("{}\n", self.end)).unwrap();
        }
        dir
    }

    /// The log with only the first group compacted.
    fn first_group_compacted(&self) -> Vec<Rec> {
        self.compacted
            .iter()
            .filter(|r| r.offset < self.end)
            .chain(self.recs.iter().filter(|r| r.offset >= self.end))
            .cloned()
            .collect()
    }

    fn check(&self, dir: &Path, expected: &[Rec]) {
        for clean in [false, true] {
            let log = open(dir, config(), clean);
            assert_log_sampled(&log, expected, &self.appended, self.log_end, 7);
            assert_no_leftovers(dir, &log);
            log.close().unwrap();
        }
    }
}

#[test]
fn an_uncommitted_swap_is_discarded_on_open() {
    let fx = SwapFixture::new();
    let cleaned = [
        ("log", ".cleaned"),
        ("index", ".cleaned"),
        ("timeindex", ".cleaned"),
    ];
    // Output being written, before and after its sidecar was written.
    for sidecar in [false, true] {
        let dir = fx.crashed(&cleaned, sidecar, 0);
        fx.check(dir.path(), &fx.recs);
    }
    // Partly written output.
    let dir = fx.crashed(&[("log", ".cleaned")], true, 0);
    fx.check(dir.path(), &fx.recs);
}

#[test]
fn a_committed_swap_is_completed_on_open() {
    let fx = SwapFixture::new();
    let expected = fx.first_group_compacted();
    let inputs = fx.recs.iter().filter(|r| r.offset < fx.end).count();
    assert!(expected.len() < fx.recs.len() && inputs > 0);
    let states: Vec<(Vec<(&'static str, &str)>, usize)> = vec![
        // The .log renamed to .swap (the commit), its indexes not yet.
        (
            vec![
                ("log", ".swap"),
                ("index", ".cleaned"),
                ("timeindex", ".cleaned"),
            ],
            0,
        ),
        (
            vec![
                ("log", ".swap"),
                ("index", ".swap"),
                ("timeindex", ".cleaned"),
            ],
            0,
        ),
        // All renamed, inputs intact, some deleted, all deleted.
        (
            vec![("log", ".swap"), ("index", ".swap"), ("timeindex", ".swap")],
            0,
        ),
        (
            vec![("log", ".swap"), ("index", ".swap"), ("timeindex", ".swap")],
            1,
        ),
        (
            vec![("log", ".swap"), ("index", ".swap"), ("timeindex", ".swap")],
            99,
        ),
    ];
    for (files, deleted) in &states {
        let dir = fx.crashed(files, true, *deleted);
        fx.check(dir.path(), &expected);
    }
}

#[test]
fn a_swap_interrupted_while_renaming_to_final_names_is_completed_on_open() {
    let fx = SwapFixture::new();
    let expected = fx.first_group_compacted();
    // Inputs gone, the output's .log already has its final name, its indexes do not; the
    // sidecar is still there or already removed.
    for sidecar in [true, false] {
        for files in [
            vec![("log", ""), ("index", ".swap"), ("timeindex", ".swap")],
            vec![("log", ""), ("index", ""), ("timeindex", ".swap")],
            vec![("log", ""), ("index", ""), ("timeindex", "")],
        ] {
            let dir = fx.crashed(&files, sidecar, 99);
            fx.check(dir.path(), &expected);
        }
    }
}

#[test]
fn retention_deletes_past_segments_that_compaction_emptied() {
    // compact,delete: the first segments hold only keys overwritten later, so compaction
    // leaves them empty; time retention must still reach the expired segments after them.
    let dir = tempfile::tempdir().unwrap();
    let config = LogConfig {
        cleanup_policy: CleanupPolicy {
            delete: true,
            compact: true,
        },
        retention_ms: 1_000,
        ..config()
    };
    let log = open(dir.path(), config, true);
    let mut recs = Vec::new();
    for i in 0..30i64 {
        let key = if i < 20 {
            format!("hot-{}", i % 2)
        } else {
            format!("cold-{i}")
        };
        let msg = Msg {
            key: Some(key.into_bytes()),
            value: Some(filler(i as u64, 300)),
            headers: Vec::new(),
            timestamp: 1_000 + i,
        };
        recs.extend(append(&log, &[msg], Compression::None));
    }
    // The last two "hot" records (offsets 18 and 19) supersede the first 18.
    recs.extend(append(
        &log,
        &[Msg::kv("hot-0", "last", 2_000)],
        Compression::None,
    ));
    recs.extend(append(
        &log,
        &[Msg::kv("hot-1", "last", 2_001)],
        Compression::None,
    ));
    let bases = log.segment_base_offsets();
    assert!(bases.len() >= 5, "{bases:?}");
    let sealed_end = *bases.last().unwrap();
    log.compact(now_ms(), true).unwrap().unwrap();
    let model = compacted(&recs, sealed_end, false);
    assert_eq!(read_all(&log), model);
    assert!(log.size_bytes() > 0);

    // Every sealed segment is long expired at this time; only the active one stays.
    let now = now_ms() + 10 * DAY_MS;
    assert!(log.apply_retention(now).unwrap() >= 1);
    assert_eq!(log.segment_base_offsets(), vec![log.log_end_offset()]);
    assert_eq!(log.log_start_offset(), log.log_end_offset());
    assert_eq!(read_all(&log), Vec::<Rec>::new());
}

#[test]
fn partly_kept_batches_are_re_encoded_with_their_codec_and_offsets() {
    let dir = tempfile::tempdir().unwrap();
    let log = open(dir.path(), config(), true);
    let mut recs = Vec::new();
    let mut appended = Appended::new();
    for (i, codec) in CODECS.iter().enumerate() {
        // Of this batch only the middle record survives: "x{i}" and "z{i}" are rewritten.
        let msgs = [
            Msg::kv(&format!("x{i}"), "old", 10),
            Msg::kv(&format!("y{i}"), "kept", 11),
            Msg::kv(&format!("z{i}"), "old", 12),
        ];
        let batch = append(&log, &msgs, *codec);
        appended.insert(batch[0].offset, (*codec, batch[2].offset));
        recs.extend(batch);
    }
    for i in 0..CODECS.len() {
        for key in ["x", "z"] {
            let msg = Msg {
                key: Some(format!("{key}{i}").into_bytes()),
                value: Some(filler(i as u64, 400)),
                headers: Vec::new(),
                timestamp: 20,
            };
            let batch = append(&log, &[msg], Compression::None);
            appended.insert(batch[0].offset, (Compression::None, batch[0].offset));
            recs.extend(batch);
        }
    }
    let overwritten_end = log.log_end_offset();
    // Unique keys after them, so the overwrites are sealed (compaction ignores the active
    // segment).
    for j in 0..8 {
        let msg = Msg {
            key: Some(format!("pad{j}").into_bytes()),
            value: Some(filler(100 + j, 400)),
            headers: Vec::new(),
            timestamp: 30,
        };
        let batch = append(&log, &[msg], Compression::None);
        appended.insert(batch[0].offset, (Compression::None, batch[0].offset));
        recs.extend(batch);
    }
    let end = log.log_end_offset();
    let sealed_end = *log.segment_base_offsets().last().unwrap();
    assert!(sealed_end >= overwritten_end);
    log.compact(now_ms(), true).unwrap().unwrap();
    let model = compacted(&recs, sealed_end, false);
    for i in 0..CODECS.len() as i64 {
        assert!(!model
            .iter()
            .any(|r| r.offset == 3 * i || r.offset == 3 * i + 2));
        assert!(model.iter().any(|r| r.offset == 3 * i + 1));
    }
    // Each of these batches now holds one record, keeps offsets base..base+2 and its codec.
    assert_log(&log, &model, &appended, end);
    for i in 0..CODECS.len() as i64 {
        let slice = log.read(3 * i, 0).unwrap().slice.unwrap();
        let batches = split_batches(&slice.to_bytes().unwrap());
        assert_eq!(batches[0].0.base_offset, 3 * i);
        assert_eq!(batches[0].0.record_count, 1);
    }
}
