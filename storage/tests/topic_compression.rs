//! Topic `compression.type` other than `producer`: batches in another codec are stored
//! recompressed with the topic's, with the same records, offsets, producer fields and
//! timestamps; batches already in it are stored byte for byte; the recompressed size must
//! still fit `max.message.bytes`; a retried idempotent batch is still recognised.

mod common;

use common::*;
use sluice_storage::{
    BatchBuilder, Compression, LogConfig, StorageError, TimestampType, TopicCompression,
};

const NOW: i64 = 1_700_000_000_000;

fn msgs(tag: &str, n: usize, ts: i64) -> Vec<Msg> {
    (0..n)
        .map(|i| Msg {
            key: Some(format!("{tag}-k{i}").into_bytes()),
            value: Some(format!("{tag}-value-{i}-").repeat(20).into_bytes()),
            headers: vec![(b"tag".to_vec(), Some(tag.as_bytes().to_vec()))],
            timestamp: ts + i as i64,
        })
        .collect()
}

fn with_codec(codec: Compression) -> LogConfig {
    LogConfig {
        compression_type: TopicCompression::Codec(codec),
        ..small_config(64 * 1024, 4096)
    }
}

/// Every byte of the log's batches, as a fetch from offset 0 returns them.
fn stored_bytes(log: &sluice_storage::PartitionLog) -> bytes::Bytes {
    let slice = log.read(0, 1 << 24).unwrap().slice.unwrap();
    slice.to_bytes().unwrap()
}

/// The codec of every stored batch, in order.
fn stored_codecs(log: &sluice_storage::PartitionLog) -> Vec<Compression> {
    split_batches(&stored_bytes(log))
        .iter()
        .map(|(h, _)| h.compression().unwrap())
        .collect()
}

#[test]
fn every_codec_is_stored_as_the_topics_and_reads_back_the_same() {
    for target in CODECS {
        let dir = tempfile::tempdir().unwrap();
        let log = open(dir.path(), with_codec(target), true);
        let mut expected = Vec::new();
        for (i, codec) in CODECS.iter().enumerate() {
            let sent = msgs(&format!("{codec:?}"), 5, NOW + 100 * i as i64);
            expected.extend(append(&log, &sent, *codec));
        }
        assert_eq!(
            stored_codecs(&log),
            vec![target; CODECS.len()],
            "{target:?}"
        );
        assert_eq!(read_all(&log), expected, "{target:?}");
        check_timestamp_lookups(&log, &expected);
        drop(log);
        let log = open(dir.path(), with_codec(target), false);
        assert_eq!(
            read_all(&log),
            expected,
            "{target:?} after an unclean reopen"
        );
    }
}

#[test]
fn a_batch_already_in_the_codec_is_stored_byte_for_byte() {
    let dir = tempfile::tempdir().unwrap();
    let log = open(dir.path(), with_codec(Compression::Lz4), true);
    let batch = build_batch(&msgs("same", 4, NOW), Compression::Lz4);
    log.append(&batch, NOW).unwrap();
    let stored = stored_bytes(&log);
    // Only the offset and leader epoch fields (outside the CRC) may differ.
    assert_eq!(stored[16..], batch[16..]);
}

#[test]
fn producer_fields_and_log_append_time_survive_recompression_and_retries_are_recognised() {
    let dir = tempfile::tempdir().unwrap();
    let config = LogConfig {
        message_timestamp_type: TimestampType::LogAppendTime,
        ..with_codec(Compression::Zstd)
    };
    let log = open(dir.path(), config, true);
    let mut b = BatchBuilder::new(0);
    b.compression(Compression::Gzip).producer(42, 3, 0);
    for m in msgs("idem", 3, NOW) {
        b.push(m.key.as_deref(), m.value.as_deref(), &[], m.timestamp);
    }
    let batch = b.build();
    let first = log.append(&batch, NOW + 5).unwrap();
    let retry = log.append(&batch, NOW + 9).unwrap();
    assert!(retry.duplicate);
    assert_eq!(
        (retry.base_offset, retry.last_offset),
        (first.base_offset, first.last_offset)
    );
    let batches = split_batches(&stored_bytes(&log));
    assert_eq!(batches.len(), 1);
    let (h, stored) = &batches[0];
    assert_eq!(h.compression().unwrap(), Compression::Zstd);
    assert_eq!(
        (h.producer_id, h.producer_epoch, h.base_sequence),
        (42, 3, 0)
    );
    assert_eq!(h.timestamp_type(), TimestampType::LogAppendTime);
    let recs = decode_batch(h, stored);
    assert!(recs.iter().all(|r| r.timestamp == NOW + 5));
    assert_eq!(recs.len(), 3);
}

#[test]
fn a_batch_that_grows_past_max_message_bytes_when_recompressed_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let config = LogConfig {
        max_message_bytes: 4096,
        ..with_codec(Compression::None)
    };
    let log = open(dir.path(), config, true);
    // 20 KB of one repeated byte: a few hundred bytes gzipped, 20 KB uncompressed.
    let big = Msg {
        key: Some(b"k".to_vec()),
        value: Some(vec![b'z'; 20_000]),
        headers: Vec::new(),
        timestamp: NOW,
    };
    let batch = build_batch(std::slice::from_ref(&big), Compression::Gzip);
    assert!(batch.len() < 4096);
    let err = log.append(&batch, NOW).unwrap_err();
    assert!(
        matches!(err, StorageError::MessageTooLarge { .. }),
        "{err:?}"
    );
    assert_eq!(err.kafka_error_code(), 10, "MESSAGE_TOO_LARGE");
    assert_eq!(log.log_end_offset(), 0, "nothing written");
    // A small one still goes in, recompressed.
    let small = build_batch(&msgs("ok", 2, NOW), Compression::Gzip);
    log.append(&small, NOW).unwrap();
    assert_eq!(stored_codecs(&log), [Compression::None]);
}

#[test]
fn compression_type_values_are_parsed_and_described_as_kafka_names_them() {
    for (value, expected) in [
        ("producer", TopicCompression::Producer),
        ("uncompressed", TopicCompression::Codec(Compression::None)),
        ("gzip", TopicCompression::Codec(Compression::Gzip)),
        ("snappy", TopicCompression::Codec(Compression::Snappy)),
        ("lz4", TopicCompression::Codec(Compression::Lz4)),
        ("zstd", TopicCompression::Codec(Compression::Zstd)),
    ] {
        let config = LogConfig::from_pairs([("compression.type", value)]).unwrap();
        assert_eq!(config.compression_type, expected);
        assert_eq!(config.get("compression.type").as_deref(), Some(value));
    }
    let err = LogConfig::from_pairs([("compression.type", "brotli")]).unwrap_err();
    assert!(err.to_string().contains("brotli"), "{err}");
}

/// Records of words drawn from a small vocabulary: compressible, but not trivially.
fn wordy(n: usize) -> Vec<Msg> {
    const WORDS: [&str; 16] = [
        "alpha", "bravo", "charlie", "delta", "echo", "foxtrot", "golf", "hotel", "india",
        "juliet", "kilo", "lima", "mike", "november", "oscar", "papa",
    ];
    let mut state = 0x2545_f491_4f6c_dd1du64;
    (0..n)
        .map(|i| {
            let value: Vec<&str> = (0..200)
                .map(|_| {
                    state ^= state << 13;
                    state ^= state >> 7;
                    state ^= state << 17;
                    WORDS[(state % 16) as usize]
                })
                .collect();
            Msg::kv(&format!("k{i}"), &value.join(" "), NOW + i as i64)
        })
        .collect()
}

#[test]
fn compression_levels_are_used_when_recompressing() {
    let records = build_batch(&wordy(40), Compression::None);
    for (codec, key, low, high) in [
        (Compression::Zstd, "compression.zstd.level", "1", "19"),
        (Compression::Gzip, "compression.gzip.level", "1", "9"),
    ] {
        let stored_size = |level: &str| {
            let dir = tempfile::tempdir().unwrap();
            let mut config = with_codec(codec);
            config.apply(key, level).unwrap();
            let log = open(dir.path(), config, true);
            log.append(&records, NOW).unwrap();
            let stored = stored_bytes(&log);
            let recs = decode_batches(&stored);
            assert_eq!(recs.len(), 40);
            stored.len()
        };
        let (small, large) = (stored_size(high), stored_size(low));
        assert!(
            small < large,
            "{key}: {high} gave {small} bytes, {low} gave {large}"
        );
    }
}

#[test]
fn compression_levels_are_described_with_kafkas_defaults_and_bounded() {
    let defaults = LogConfig::default();
    assert_eq!(
        defaults.get("compression.gzip.level").as_deref(),
        Some("-1")
    );
    assert_eq!(defaults.get("compression.lz4.level").as_deref(), Some("9"));
    assert_eq!(defaults.get("compression.zstd.level").as_deref(), Some("3"));
    for (key, ok, bad) in [
        ("compression.gzip.level", ["-1", "1", "9"], ["0", "10"]),
        ("compression.lz4.level", ["1", "9", "17"], ["0", "18"]),
        (
            "compression.zstd.level",
            ["-131072", "0", "22"],
            ["-131073", "23"],
        ),
    ] {
        for v in ok {
            let config = LogConfig::from_pairs([(key, v)]).unwrap();
            assert_eq!(config.get(key).as_deref(), Some(v));
        }
        for v in bad {
            let err = LogConfig::from_pairs([(key, v)]).unwrap_err();
            assert!(err.to_string().contains(key), "{err}");
        }
    }
}
