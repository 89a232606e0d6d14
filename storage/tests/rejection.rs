//! Malformed or forbidden produce payloads are refused with the exact Kafka error code, and
//! nothing of them is written: the log end, the files and every earlier record stay as they
//! were, and the next valid append gets the next offset.

mod common;

use std::path::Path;

use common::*;
use sluice_storage::batch::compute_crc;
use sluice_storage::{BatchBuilder, CleanupPolicy, Compression, LogConfig, PartitionLog};

const CORRUPT_MESSAGE: i16 = 2;
const MESSAGE_TOO_LARGE: i16 = 10;
const INVALID_TIMESTAMP: i16 = 32;
const UNSUPPORTED_COMPRESSION_TYPE: i16 = 76;
const INVALID_RECORD: i16 = 87;

const NOW: i64 = 1_000_000;

fn config() -> LogConfig {
    LogConfig {
        max_message_bytes: 10_000,
        message_timestamp_before_max_ms: 100_000,
        message_timestamp_after_max_ms: 100_000,
        ..small_config(4_096, 256)
    }
}

/// A log holding a few batches of every codec.
fn seeded(dir: &Path, config: LogConfig) -> (PartitionLog, Vec<Rec>) {
    let log = PartitionLog::open(dir, tp(), config, true, NOW).unwrap();
    let mut model = Vec::new();
    for (i, codec) in CODECS.iter().enumerate() {
        let msgs: Vec<Msg> = (0..3)
            .map(|j| Msg {
                key: Some(format!("k{i}{j}").into_bytes()),
                value: Some(filler(i as u64 * 10 + j as u64, 300)),
                headers: vec![(b"h".to_vec(), None)],
                timestamp: NOW + j,
            })
            .collect();
        let batch = build_batch(&msgs, *codec);
        let info = log.append(&batch, NOW).unwrap();
        model.extend(
            msgs.iter()
                .enumerate()
                .map(|(j, m)| m.at(info.base_offset + j as i64)),
        );
    }
    assert!(log.segment_count() > 1);
    (log, model)
}

/// Sizes of the files in `dir`.
fn file_sizes(dir: &Path) -> Vec<(String, u64)> {
    file_names(dir)
        .into_iter()
        .map(|n| {
            let len = std::fs::metadata(dir.join(&n)).unwrap().len();
            (n, len)
        })
        .collect()
}

fn assert_rejected(log: &PartitionLog, dir: &Path, payload: Vec<u8>, code: i16, what: &str) {
    let end = log.log_end_offset();
    let size = log.size_bytes();
    let segments = log.segment_base_offsets();
    let before = read_all(log);
    log.flush(NOW).unwrap();
    let files = file_sizes(dir);
    let err = log.append(&payload, NOW).unwrap_err();
    assert_eq!(err.kafka_error_code(), code, "{what}: {err}");
    assert_eq!(log.log_end_offset(), end, "{what}");
    assert_eq!(log.size_bytes(), size, "{what}");
    assert_eq!(log.segment_base_offsets(), segments, "{what}");
    assert_eq!(read_all(log), before, "{what}");
    log.flush(NOW).unwrap();
    assert_eq!(file_sizes(dir), files, "{what}");
}

/// A valid uncompressed batch of `n` records.
fn good_batch(n: usize) -> Vec<u8> {
    let msgs: Vec<Msg> = (0..n)
        .map(|i| Msg::kv(&format!("key{i}"), &format!("value{i}"), NOW + i as i64))
        .collect();
    build_batch(&msgs, Compression::None)
}

/// Recomputes the CRC after editing fields it covers.
fn fix_crc(batch: &mut [u8]) {
    let crc = compute_crc(batch);
    batch[17..21].copy_from_slice(&crc.to_be_bytes());
}

fn set_i32(batch: &mut [u8], at: usize, v: i32) {
    batch[at..at + 4].copy_from_slice(&v.to_be_bytes());
}

#[test]
fn malformed_batches_are_refused_with_the_right_code_and_nothing_is_written() {
    let dir = tempfile::tempdir().unwrap();
    let (log, mut model) = seeded(dir.path(), config());
    let good = good_batch(5);
    let rejected = |payload: Vec<u8>, code: i16, what: &str| {
        assert_rejected(&log, dir.path(), payload, code, what);
    };

    // CRC: a flipped record byte, a flipped CRC byte, a flipped attribute byte.
    for at in [good.len() - 1, 70, 17, 22] {
        let mut bad = good.clone();
        bad[at] ^= 0x01;
        rejected(bad, CORRUPT_MESSAGE, &format!("flipped byte {at}"));
    }
    // Magic other than 2 (outside the CRC, so only the magic check can catch it).
    for magic in [0u8, 1, 3, 0xff] {
        let mut bad = good.clone();
        bad[16] = magic;
        rejected(bad, CORRUPT_MESSAGE, &format!("magic {magic}"));
    }
    // Truncated anywhere: inside the records, inside the header, inside the length field.
    for keep in [good.len() - 1, good.len() - 3, 80, 61, 60, 30, 12, 11, 5, 1] {
        rejected(
            good[..keep].to_vec(),
            CORRUPT_MESSAGE,
            &format!("truncated to {keep}"),
        );
    }
    // Length field: larger than what was sent, smaller, negative, zero.
    for (len, code) in [
        (good.len() as i32 - 12 + 1, CORRUPT_MESSAGE),
        (good.len() as i32 - 12 + 5_000, CORRUPT_MESSAGE),
        (good.len() as i32 - 12 - 1, CORRUPT_MESSAGE),
        (-1, CORRUPT_MESSAGE),
        (0, CORRUPT_MESSAGE),
        // Claiming more than max.message.bytes is refused as too large.
        (i32::MAX, MESSAGE_TOO_LARGE),
    ] {
        let mut bad = good.clone();
        set_i32(&mut bad, 8, len);
        rejected(bad, code, &format!("length field {len}"));
    }
    // Record count disagreeing with the records (consistent lastOffsetDelta, valid CRC).
    for count in [4, 6, 1, 100] {
        let mut bad = good.clone();
        set_i32(&mut bad, 57, count);
        set_i32(&mut bad, 23, count - 1);
        fix_crc(&mut bad);
        rejected(bad, INVALID_RECORD, &format!("record count {count}"));
    }
    // Record count alone, or lastOffsetDelta alone, changed; no records at all.
    for (count, delta) in [(6, 4), (5, 5), (5, 3), (0, -1), (0, 4), (-1, 4)] {
        let mut bad = good.clone();
        set_i32(&mut bad, 57, count);
        set_i32(&mut bad, 23, delta);
        fix_crc(&mut bad);
        rejected(
            bad,
            INVALID_RECORD,
            &format!("count {count}, lastOffsetDelta {delta}"),
        );
    }
    // Offset deltas that are not 0, 1, 2, ...
    let mut b = BatchBuilder::new(0);
    b.push_at(0, NOW, Some(b"a"), Some(b"1"), &[]);
    b.push_at(2, NOW, Some(b"b"), Some(b"2"), &[]);
    b.push_at(1, NOW, Some(b"c"), Some(b"3"), &[]);
    rejected(b.build(), INVALID_RECORD, "offset deltas 0, 2, 1");
    // Empty input and a tail too short to be a batch after a valid one.
    rejected(Vec::new(), INVALID_RECORD, "empty payload");
    let mut trailing = good.clone();
    trailing.extend_from_slice(&[0; 7]);
    rejected(trailing, CORRUPT_MESSAGE, "7 trailing bytes");
    // A valid batch followed by an invalid one: neither is written.
    let mut second_bad = good.clone();
    let mut bad = good.clone();
    bad[good.len() - 2] ^= 0x10;
    second_bad.extend_from_slice(&bad);
    rejected(second_bad, CORRUPT_MESSAGE, "second batch corrupt");

    // After all that, a valid append gets the next offset and everything reads back.
    let end = log.log_end_offset();
    model.extend(append_at(
        &log,
        &[Msg::kv("after", "rejections", NOW)],
        Compression::Gzip,
        NOW,
    ));
    assert_eq!(model.last().unwrap().offset, end);
    assert_eq!(read_all(&log), model);
    drop(log);
    let log = PartitionLog::open(dir.path(), tp(), config(), false, NOW).unwrap();
    assert_eq!(read_all(&log), model);
}

#[test]
fn compression_problems_are_refused() {
    let dir = tempfile::tempdir().unwrap();
    let (log, model) = seeded(dir.path(), config());
    let good = good_batch(3);
    // Garbage where compressed records should be, with a valid CRC.
    for codec in &CODECS[1..] {
        let mut bad = good.clone();
        bad[22] |= codec.id();
        for b in bad[61..].iter_mut() {
            *b = b.wrapping_mul(31).wrapping_add(7);
        }
        fix_crc(&mut bad);
        assert_rejected(
            &log,
            dir.path(),
            bad,
            CORRUPT_MESSAGE,
            &format!("garbage {codec:?}"),
        );
    }
    // A compressed batch whose decompressed records are cut short.
    for codec in &CODECS[1..] {
        let mut b = BatchBuilder::new(0);
        b.compression(*codec);
        for i in 0..3 {
            b.push(Some(b"k"), Some(format!("value {i}").as_bytes()), &[], NOW);
        }
        let whole = b.build();
        let records = codec.decompress(&whole[61..], 1 << 20).unwrap();
        let cut = codec.compress(&records[..records.len() - 2]);
        let mut bad = whole[..61].to_vec();
        bad.extend_from_slice(&cut);
        let len = bad.len() as i32 - 12;
        set_i32(&mut bad, 8, len);
        fix_crc(&mut bad);
        assert_rejected(
            &log,
            dir.path(),
            bad,
            CORRUPT_MESSAGE,
            &format!("short {codec:?} records"),
        );
    }
    // Codec ids 5 to 7 do not exist.
    for id in 5u8..=7 {
        let mut bad = good.clone();
        bad[22] = (bad[22] & !0x07) | id;
        fix_crc(&mut bad);
        assert_rejected(
            &log,
            dir.path(),
            bad,
            UNSUPPORTED_COMPRESSION_TYPE,
            &format!("codec id {id}"),
        );
    }
    assert_eq!(read_all(&log), model);
}

#[test]
fn oversized_batches_are_message_too_large() {
    let dir = tempfile::tempdir().unwrap();
    let (log, model) = seeded(dir.path(), config());
    let big = build_batch(&[Msg::kv("k", &"x".repeat(10_000), NOW)], Compression::None);
    assert_rejected(&log, dir.path(), big, MESSAGE_TOO_LARGE, "10 kB value");
    // The limit is on the batch as sent: compressed well under it, it is accepted.
    let squeezed = build_batch(&[Msg::kv("k", &"x".repeat(10_000), NOW)], Compression::Zstd);
    assert!(squeezed.len() < 10_000);
    let mut model = model;
    let payload = squeezed;
    let info = log.append(&payload, NOW).unwrap();
    model.push(Msg::kv("k", &"x".repeat(10_000), NOW).at(info.base_offset));
    assert_eq!(read_all(&log), model);
    // Exactly at the limit is fine, one byte over is not.
    let at_limit = |limit: usize| {
        let mut value_len = 9_900;
        loop {
            let b = build_batch(
                &[Msg::kv("k", &"y".repeat(value_len), NOW)],
                Compression::None,
            );
            if b.len() >= limit {
                return b;
            }
            value_len += 1;
        }
    };
    let exact = at_limit(10_000);
    assert_eq!(exact.len(), 10_000);
    let over = at_limit(10_001);
    assert_eq!(over.len(), 10_001);
    assert_rejected(&log, dir.path(), over, MESSAGE_TOO_LARGE, "one byte over");
    log.append(&exact, NOW).unwrap();
}

#[test]
fn timestamps_out_of_bounds_are_invalid_timestamp() {
    let dir = tempfile::tempdir().unwrap();
    let (log, model) = seeded(dir.path(), config());
    for ts in [NOW - 100_001, NOW + 100_001, -2, -1_000] {
        let bad = build_batch(
            &[Msg::kv("a", "ok", NOW), Msg::kv("b", "late", ts)],
            Compression::Lz4,
        );
        assert_rejected(
            &log,
            dir.path(),
            bad,
            INVALID_TIMESTAMP,
            &format!("timestamp {ts}"),
        );
    }
    // At the bounds (and -1, "no timestamp") they are accepted.
    let mut model = model;
    for ts in [NOW - 100_000, NOW + 100_000, -1] {
        model.extend(append_at(
            &log,
            &[Msg::kv("edge", "ts", ts)],
            Compression::None,
            NOW,
        ));
    }
    assert_eq!(read_all(&log), model);
}

#[test]
fn compacted_topics_refuse_records_without_a_key() {
    let dir = tempfile::tempdir().unwrap();
    let config = LogConfig {
        cleanup_policy: CleanupPolicy {
            delete: false,
            compact: true,
        },
        ..config()
    };
    let (log, mut model) = seeded(dir.path(), config);
    for codec in CODECS {
        let keyless = build_batch(
            &[
                Msg::kv("a", "keyed", NOW),
                Msg {
                    key: None,
                    value: Some(b"no key".to_vec()),
                    headers: Vec::new(),
                    timestamp: NOW,
                },
            ],
            codec,
        );
        assert_rejected(
            &log,
            dir.path(),
            keyless,
            INVALID_RECORD,
            &format!("keyless {codec:?}"),
        );
    }
    // An empty key is a key.
    model.extend(append_at(
        &log,
        &[Msg::kv("", "empty key", NOW)],
        Compression::None,
        NOW,
    ));
    assert_eq!(read_all(&log), model);
}
