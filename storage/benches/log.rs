//! Criterion benchmarks of the partition log's hot paths, to catch regressions in the code
//! itself (the `storage_bench` example compares the log with the raw disk instead):
//!
//! * `append/*`: appending 1 KiB records in 16 KiB batches under each flush policy:
//!   `flush_os` (never fsync), `flush_ms_100` (fsync when 100 ms have passed, called from
//!   the appending thread) and `flush_every_batch` (`flush.messages=1`).
//! * `read/*`: reading a 256 MiB log from page cache in 1 MiB fetches into a reused
//!   buffer, next to a plain `pread` of the same file as the ceiling.
//! * `validate/*`: `batch::validate` alone (CRC-32C, decompression, record walk) on one
//!   batch, uncompressed and lz4/zstd.
//! * `recompress/*`: appends (flush=OS) to topics whose `compression.type` makes the log
//!   recompress each batch (`lz4_to_zstd`, `none_to_lz4`), next to `lz4_as_sent`
//!   (`compression.type=producer`) as the baseline.
//!
//! Throughput is in bytes of uncompressed batches (MiB/s or GiB/s as criterion prints it).
//! Run with `cargo bench -p sluice-storage -j2 --bench log` (or `bench/storage`).

mod common;

use std::cell::OnceCell;
use std::hint::black_box;
use std::os::unix::fs::FileExt;
use std::time::{Duration, Instant};

use criterion::{criterion_group, criterion_main, Criterion, SamplingMode, Throughput};
use sluice_storage::batch::{self, ValidationLimits};
use sluice_storage::{
    now_ms, Compression, LogConfig, PartitionLog, TopicCompression, TopicPartition,
};

use common::{next_offset_after, template_batch, BATCH_BYTES};

/// Bytes asked for per fetch in the read benches, like a consumer's `max.partition.fetch.bytes`.
const FETCH_BYTES: usize = 1024 * 1024;
/// Size of the log the read benches read.
const READ_LOG_BYTES: usize = 256 * 1024 * 1024;
/// The interval of the `flush_ms_100` policy.
const FLUSH_INTERVAL: Duration = Duration::from_millis(100);

/// When appends fsync.
#[derive(Clone, Copy)]
enum Flush {
    /// Never; the OS writes dirty pages back when it likes (`flush.messages`/`flush.ms` unset).
    Os,
    /// Every [`FLUSH_INTERVAL`], checked after each append (`flush.ms=100`).
    Interval,
    /// After every batch (`flush.messages=1`).
    EveryBatch,
}

fn config_for(flush: Flush) -> LogConfig {
    let mut config = LogConfig::default();
    match flush {
        Flush::Os => {}
        Flush::Interval => config.flush_ms = FLUSH_INTERVAL.as_millis() as i64,
        Flush::EveryBatch => config.flush_messages = 1,
    }
    config
}

/// Appends `iters` copies of `template` to a fresh log and returns the time the appends
/// (and, for `Flush::Interval`, the due flushes) took. Creating and deleting the log is not
/// timed.
fn append_batches(template: &[u8], flush: Flush, iters: u64) -> Duration {
    append_batches_with(template, config_for(flush), flush, iters)
}

/// [`append_batches`] to a log with `config` (its flush settings matching `flush`).
fn append_batches_with(template: &[u8], config: LogConfig, flush: Flush, iters: u64) -> Duration {
    let dir = tempfile::tempdir().expect("temp dir");
    let log = PartitionLog::open(
        dir.path(),
        TopicPartition::new("bench", 0),
        config,
        true,
        now_ms(),
    )
    .expect("open log");
    let start = Instant::now();
    let mut last_flush = start;
    for _ in 0..iters {
        log.append(template, now_ms()).expect("append");
        if matches!(flush, Flush::Interval) && last_flush.elapsed() >= FLUSH_INTERVAL {
            log.flush(now_ms()).expect("flush");
            last_flush = Instant::now();
        }
    }
    start.elapsed()
}

fn bench_append(c: &mut Criterion) {
    let template = template_batch(Compression::None, now_ms());
    let mut group = c.benchmark_group("append");
    group.throughput(Throughput::Bytes(template.len() as u64));
    group.sample_size(10);
    group.warm_up_time(Duration::from_secs(1));
    // A sample writes up to about throughput x measurement_time / 5 into a fresh log (over
    // 1 GB with flush_os), deleted before the next sample: keep the window short.
    group.measurement_time(Duration::from_secs(2));
    group.bench_function("flush_os", |b| {
        b.iter_custom(|iters| append_batches(&template, Flush::Os, iters))
    });
    group.bench_function("flush_ms_100", |b| {
        b.iter_custom(|iters| append_batches(&template, Flush::Interval, iters))
    });
    // An fsync per batch costs about a millisecond here; flat sampling keeps the number of
    // batches (and so the run time) bounded by the measurement time.
    group.sampling_mode(SamplingMode::Flat);
    group.measurement_time(Duration::from_secs(4));
    group.bench_function("flush_every_batch", |b| {
        b.iter_custom(|iters| append_batches(&template, Flush::EveryBatch, iters))
    });
    group.finish();
}

/// The log the read benches read, written once and only if one of them runs.
struct ReadFixture {
    /// Keeps the log's directory until the benches are done.
    dir: tempfile::TempDir,
    log: PartitionLog,
    bytes: u64,
    end: i64,
}

impl ReadFixture {
    fn new() -> Self {
        let template = template_batch(Compression::None, now_ms());
        let dir = tempfile::tempdir().expect("temp dir");
        let log = PartitionLog::open(
            dir.path(),
            TopicPartition::new("bench", 0),
            LogConfig::default(),
            true,
            now_ms(),
        )
        .expect("open log");
        for _ in 0..READ_LOG_BYTES / template.len() {
            log.append(&template, now_ms()).expect("append");
        }
        log.flush(now_ms()).expect("flush");
        ReadFixture {
            bytes: log.size_bytes(),
            end: log.high_watermark(),
            dir,
            log,
        }
    }
}

fn bench_read(c: &mut Criterion) {
    let fixture = OnceCell::new();
    let log_bytes = (READ_LOG_BYTES / BATCH_BYTES * BATCH_BYTES) as u64;
    let mut group = c.benchmark_group("read");
    group.throughput(Throughput::Bytes(log_bytes));
    group.sample_size(10);
    group.sampling_mode(SamplingMode::Flat);
    group.warm_up_time(Duration::from_secs(1));
    group.measurement_time(Duration::from_secs(3));
    let mut out = Vec::with_capacity(2 * FETCH_BYTES);
    group.bench_function("log_1mib_fetches", |b| {
        let f: &ReadFixture = fixture.get_or_init(ReadFixture::new);
        assert_eq!(f.bytes, log_bytes);
        b.iter(|| {
            let mut offset = 0;
            let mut read = 0;
            while offset < f.end {
                let result = f.log.read(offset, FETCH_BYTES).expect("read");
                let slice = result.slice.expect("data below the high watermark");
                out.clear();
                slice.read_into(&mut out).expect("read_into");
                read += out.len() as u64;
                offset = next_offset_after(&out).expect("whole batches");
            }
            assert_eq!(read, f.bytes);
            black_box(&out);
        })
    });
    // The ceiling for the above: the same bytes with plain 1 MiB preads of the segment file
    // into a buffer that is already sized, no index lookups and no zero-filling.
    let mut chunk = vec![0u8; FETCH_BYTES];
    group.bench_function("pread_1mib_baseline", |b| {
        let f: &ReadFixture = fixture.get_or_init(ReadFixture::new);
        let segment = f.dir.path().join(format!("{:020}.log", 0));
        let file = std::fs::File::open(&segment).expect("segment file");
        b.iter(|| {
            let mut position = 0;
            while position < f.bytes {
                let n = (f.bytes - position).min(FETCH_BYTES as u64) as usize;
                file.read_exact_at(&mut chunk[..n], position)
                    .expect("pread");
                position += n as u64;
            }
            black_box(&chunk);
        })
    });
    group.finish();
}

fn bench_validate(c: &mut Criterion) {
    let now = now_ms();
    let limits = ValidationLimits::default();
    let mut group = c.benchmark_group("validate");
    // Bytes of the uncompressed batch, whatever the codec: what the producer's data is.
    group.throughput(Throughput::Bytes(BATCH_BYTES as u64));
    group.sample_size(10);
    group.warm_up_time(Duration::from_secs(1));
    group.measurement_time(Duration::from_secs(2));
    for (name, codec) in [
        ("none", Compression::None),
        ("lz4", Compression::Lz4),
        ("zstd", Compression::Zstd),
    ] {
        let batch = template_batch(codec, now);
        eprintln!(
            "validate/{name}: {} bytes of records sent as a {}-byte batch",
            BATCH_BYTES,
            batch.len()
        );
        group.bench_function(name, |b| {
            b.iter(|| batch::validate(black_box(&batch), &limits, now).expect("valid batch"))
        });
    }
    group.finish();
}

fn bench_recompress(c: &mut Criterion) {
    let mut group = c.benchmark_group("recompress");
    // Bytes of the uncompressed batch, whatever the codecs.
    group.throughput(Throughput::Bytes(BATCH_BYTES as u64));
    group.sample_size(10);
    group.warm_up_time(Duration::from_secs(1));
    group.measurement_time(Duration::from_secs(2));
    for (name, sent, topic) in [
        ("lz4_as_sent", Compression::Lz4, TopicCompression::Producer),
        (
            "lz4_to_zstd",
            Compression::Lz4,
            TopicCompression::Codec(Compression::Zstd),
        ),
        (
            "none_to_lz4",
            Compression::None,
            TopicCompression::Codec(Compression::Lz4),
        ),
    ] {
        let template = template_batch(sent, now_ms());
        let config = LogConfig {
            compression_type: topic,
            ..config_for(Flush::Os)
        };
        group.bench_function(name, |b| {
            b.iter_custom(|iters| append_batches_with(&template, config.clone(), Flush::Os, iters))
        });
    }
    group.finish();
}

criterion_group!(
    benches,
    bench_append,
    bench_read,
    bench_validate,
    bench_recompress
);
criterion_main!(benches);
