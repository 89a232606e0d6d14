//! A full disk: the append that does not fit fails with KAFKA_STORAGE_ERROR, everything
//! acknowledged before stays readable (also after a crash and recovery on the full disk),
//! and appends work again once space is freed. Needs root to mount a small tmpfs.

mod common;

use std::path::{Path, PathBuf};
use std::process::Command;

use common::*;
use rand::{Rng, SeedableRng};
use sluice_storage::{LogConfig, PartitionLog};

const KAFKA_STORAGE_ERROR: i16 = 56;

/// A mounted tmpfs, unmounted when dropped (also when the test fails).
struct Tmpfs {
    path: PathBuf,
}

impl Tmpfs {
    fn mount(path: &Path, size: &str) -> Option<Self> {
        let status = Command::new("mount")
            .args(["-t", "tmpfs", "-o", &format!("size={size}"), "tmpfs"])
            .arg(path)
            .stderr(std::process::Stdio::null())
            .status()
            .ok()?;
        status.success().then(|| Tmpfs {
            path: path.to_path_buf(),
        })
    }
}

impl Drop for Tmpfs {
    fn drop(&mut self) {
        let unmounted = Command::new("umount")
            .arg(&self.path)
            .status()
            .is_ok_and(|s| s.success());
        if !unmounted {
            let _ = Command::new("umount").arg("-l").arg(&self.path).status();
        }
    }
}

fn config() -> LogConfig {
    small_config(32 * 1024, 512)
}

fn batch_of(rng: &mut rand::rngs::StdRng, n: usize, value_len: usize) -> (Vec<Msg>, usize) {
    let msgs = (0..n)
        .map(|i| Msg {
            key: Some(format!("key-{i}").into_bytes()),
            value: Some(filler(rng.random(), value_len)),
            headers: vec![(b"i".to_vec(), Some(i.to_string().into_bytes()))],
            timestamp: 1_000 + rng.random_range(0..1_000),
        })
        .collect();
    (msgs, rng.random_range(0..CODECS.len()))
}

/// Appends; returns the records on success and the error code on failure.
fn try_append(log: &PartitionLog, msgs: &[Msg], codec: usize) -> Result<Vec<Rec>, i16> {
    let batch = build_batch(msgs, CODECS[codec]);
    match log.append(&batch, 1_000) {
        Ok(info) => Ok(msgs
            .iter()
            .enumerate()
            .map(|(i, m)| m.at(info.base_offset + i as i64))
            .collect()),
        Err(e) => Err(e.kafka_error_code()),
    }
}

/// Checks that no partial batch was left behind in any segment file: sealed files hold
/// exactly their batches, and the active one (which may hold zeros written ahead of small
/// appends) holds only zeros past its data.
fn assert_no_partial_batch(dir: &Path, log: &PartitionLog) {
    let bases = log_file_bases(dir);
    let (active, sealed) = bases.split_last().expect("an active segment");
    let sealed_bytes: u64 = sealed
        .iter()
        .map(|b| std::fs::metadata(seg_path(dir, *b, "log")).unwrap().len())
        .sum();
    let active_data = log.size_bytes() - sealed_bytes;
    let active_file = std::fs::read(seg_path(dir, *active, "log")).unwrap();
    assert!(active_file.len() as u64 >= active_data);
    assert!(
        active_file[active_data as usize..].iter().all(|b| *b == 0),
        "bytes past the data of the active segment"
    );
}

fn assert_intact(log: &PartitionLog, dir: &Path, model: &[Rec]) {
    assert_eq!(log.log_end_offset(), model.len() as i64);
    assert_eq!(read_all(log), model);
    check_timestamp_lookups(log, model);
    assert_no_partial_batch(dir, log);
}

#[test]
fn a_full_disk_fails_appends_cleanly_and_recovers_when_space_is_freed() {
    let mount_point = tempfile::tempdir().unwrap();
    let Some(_tmpfs) = Tmpfs::mount(mount_point.path(), "256k") else {
        println!("skipped: needs root for tmpfs (mount -t tmpfs failed)");
        return;
    };
    let root = mount_point.path();
    // Ballast takes half of the space, to be freed later.
    let ballast = root.join("ballast");
    std::fs::write(&ballast, vec![0xabu8; 128 * 1024]).unwrap();
    let dir = root.join("t-0");
    let log = open(&dir, config(), true);
    let mut rng = rand::rngs::StdRng::seed_from_u64(11);
    let mut model: Vec<Rec> = Vec::new();

    let mut failures = 0;
    let mut refused_len = 0;
    for _ in 0..1_000 {
        let (msgs, codec) = batch_of(&mut rng, 3, 1_000);
        match try_append(&log, &msgs, codec) {
            Ok(recs) => model.extend(recs),
            Err(code) => {
                assert_eq!(code, KAFKA_STORAGE_ERROR);
                failures += 1;
                refused_len = build_batch(&msgs, CODECS[codec]).len() as u64;
                break;
            }
        }
    }
    assert_eq!(failures, 1, "the disk never filled up");
    assert!(model.len() > 30, "only {} records fit", model.len());
    // The append failed because the disk was really full: what the partition's files take
    // (in tmpfs pages) plus the refused batch is more than the free space. Zeros written
    // ahead of small appends never cost an append that would have fitted.
    let used: u64 = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().metadata().unwrap().len().div_ceil(4096) * 4096)
        .sum();
    assert!(
        used + refused_len > 128 * 1024,
        "an append of {refused_len} bytes was refused with {used} of 131072 bytes used"
    );
    assert_intact(&log, &dir, &model);

    // More attempts, large and small: each either fails with 56 or is acknowledged.
    for value_len in [2_000, 500, 100, 10, 1] {
        for _ in 0..3 {
            let (msgs, codec) = batch_of(&mut rng, 1, value_len);
            match try_append(&log, &msgs, codec) {
                Ok(recs) => model.extend(recs),
                Err(code) => assert_eq!(code, KAFKA_STORAGE_ERROR),
            }
            assert_intact(&log, &dir, &model);
        }
    }
    // Flushing on a full disk may fail, but must not lose anything either.
    if let Err(e) = log.flush(1_000) {
        assert_eq!(e.kafka_error_code(), KAFKA_STORAGE_ERROR);
    }
    assert_intact(&log, &dir, &model);

    // A crash while the disk is full: recovery finds every acknowledged record.
    drop(log);
    let log = open(&dir, config(), false);
    assert_intact(&log, &dir, &model);
    drop(log);

    // Free the space: appends work again, right after the last acknowledged offset.
    std::fs::remove_file(&ballast).unwrap();
    let log = open(&dir, config(), false);
    assert_intact(&log, &dir, &model);
    for _ in 0..20 {
        let (msgs, codec) = batch_of(&mut rng, 3, 1_000);
        let expected = log.log_end_offset();
        let recs = try_append(&log, &msgs, codec).expect("append after freeing space");
        assert_eq!(recs[0].offset, expected);
        model.extend(recs);
    }
    assert_intact(&log, &dir, &model);
    log.close().unwrap();
    drop(log);
    let log = open(&dir, config(), true);
    assert_intact(&log, &dir, &model);
}
