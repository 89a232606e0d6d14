//! End-to-end load benchmark: a real client (librdkafka through rdkafka) produces 1 KiB
//! messages to a 6-partition topic with acks=all, then consumes them all. Prints produce and
//! consume MB/s, produce latency percentiles, and the broker's CPU-seconds per GB (from
//! /proc/<pid>/stat), next to the client process's own CPU per GB.
//!
//! Run: `bench/load` (builds release binaries, starts a broker on a free port with a temp
//! data dir, runs this) or `cargo run --release -p sluice-e2e --bin load -- --help`.

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::{bail, Context};
use clap::Parser;
use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, TopicReplication};
use rdkafka::client::DefaultClientContext;
use rdkafka::config::ClientConfig;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::producer::{BaseRecord, DeliveryResult, Producer, ProducerContext, ThreadedProducer};
use rdkafka::{ClientContext, Offset, TopicPartitionList};
use sluice_e2e::Broker;

#[derive(Debug, Parser)]
#[command(
    about = "Produce then consume N MB through sluice with librdkafka and report throughput, latency and CPU per GB"
)]
struct Args {
    /// Broker to use; by default a release broker is started on a free port.
    #[arg(long)]
    bootstrap: Option<String>,
    /// Broker PID for CPU accounting when --bootstrap is given.
    #[arg(long)]
    broker_pid: Option<u32>,
    /// Megabytes to produce.
    #[arg(long, default_value_t = 1024)]
    mb: u64,
    /// Message size in bytes.
    #[arg(long, default_value_t = 1024)]
    message_bytes: usize,
    /// Partitions of the benchmark topic.
    #[arg(long, default_value_t = 6)]
    partitions: i32,
}

/// Records the latency of every delivered message.
struct LatencyContext {
    latencies_us: Mutex<Vec<u32>>,
    failures: Mutex<u64>,
}

impl ClientContext for LatencyContext {}

impl ProducerContext for LatencyContext {
    type DeliveryOpaque = Box<Instant>;

    fn delivery(&self, result: &DeliveryResult<'_>, sent_at: Box<Instant>) {
        match result {
            Ok(_) => {
                let us = sent_at.elapsed().as_micros().min(u128::from(u32::MAX)) as u32;
                if let Ok(mut l) = self.latencies_us.lock() {
                    l.push(us);
                }
            }
            Err(_) => {
                if let Ok(mut f) = self.failures.lock() {
                    *f += 1;
                }
            }
        }
    }
}

/// CPU seconds (user + system) a process has used, from /proc/<pid>/stat.
fn process_cpu_seconds(pid: u32) -> anyhow::Result<f64> {
    let (user, system) = process_cpu_split(pid)?;
    Ok(user + system)
}

/// `(user, system)` CPU seconds of a process, from /proc/<pid>/stat.
fn process_cpu_split(pid: u32) -> anyhow::Result<(f64, f64)> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat"))?;
    let after_name = stat
        .rsplit_once(')')
        .map(|(_, rest)| rest)
        .context("malformed /proc stat")?;
    let fields: Vec<&str> = after_name.split_whitespace().collect();
    // Fields after the name start at field 3 (state); utime is field 14, stime 15.
    let utime: f64 = fields.get(11).context("utime")?.parse()?;
    let stime: f64 = fields.get(12).context("stime")?.parse()?;
    // SAFETY: sysconf has no preconditions.
    let ticks = unsafe { libc::sysconf(libc::_SC_CLK_TCK) } as f64;
    Ok((utime / ticks, stime / ticks))
}

/// Writes and deletes a file as large as the benchmark's data next to the broker's data.
/// On virtual machines that hand free memory back to the host (balloon / free page
/// reporting), the first writer to touch that memory again pays for it in kernel time, which
/// would be billed to the broker; this moves that cost out of the measured phases.
fn warm_page_cache(dir: &std::path::Path, bytes: u64) -> anyhow::Result<()> {
    use std::io::Write;
    let path = dir.join("warm-up");
    let mut file = std::fs::File::create(&path)?;
    let chunk = vec![0u8; 1 << 20];
    let mut written = 0;
    while written < bytes {
        file.write_all(&chunk)?;
        written += chunk.len() as u64;
    }
    drop(file);
    std::fs::remove_file(&path)?;
    Ok(())
}

fn percentile(sorted: &[u32], p: f64) -> f64 {
    if sorted.is_empty() {
        return 0.0;
    }
    let i = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    f64::from(sorted[i]) / 1000.0
}

#[tokio::main(flavor = "current_thread")]
async fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    let data = tempfile::tempdir()?;
    let (started, bootstrap, pid) = match &args.bootstrap {
        Some(b) => (None, b.clone(), args.broker_pid),
        None => {
            let broker = Broker::start(&data.path().join("data"), &[]);
            let (b, p) = (broker.bootstrap(), broker.pid());
            (Some(broker), b, p)
        }
    };
    let topic = format!("load-{}", std::process::id());
    let admin: AdminClient<DefaultClientContext> = ClientConfig::new()
        .set("bootstrap.servers", &bootstrap)
        .create()?;
    for r in admin
        .create_topics(
            &[NewTopic::new(
                &topic,
                args.partitions,
                TopicReplication::Fixed(1),
            )],
            &AdminOptions::new(),
        )
        .await?
    {
        r.map_err(|(t, e)| anyhow::anyhow!("creating {t}: {e}"))?;
    }

    let count = args.mb * 1024 * 1024 / args.message_bytes as u64;
    let total_bytes = count * args.message_bytes as u64;
    let payload = vec![b'x'; args.message_bytes];
    let context = LatencyContext {
        latencies_us: Mutex::new(Vec::with_capacity(count as usize)),
        failures: Mutex::new(0),
    };
    let producer: ThreadedProducer<LatencyContext> = ClientConfig::new()
        .set("bootstrap.servers", &bootstrap)
        .set("acks", "all")
        .set("linger.ms", "5")
        .set("batch.size", "1000000")
        .set("queue.buffering.max.kbytes", "1048576")
        .set("queue.buffering.max.messages", "1000000")
        .create_with_context(context)?;
    let producer = Arc::new(producer);

    warm_page_cache(data.path(), total_bytes)?;
    let broker_split_0 = pid.map(process_cpu_split).transpose()?;
    let broker_cpu_0 = pid.map(process_cpu_seconds).transpose()?;
    let client_cpu_0 = process_cpu_seconds(std::process::id())?;
    let start = Instant::now();
    for i in 0..count {
        let partition = (i % args.partitions as u64) as i32;
        let mut record: BaseRecord<'_, [u8], [u8], Box<Instant>> =
            BaseRecord::with_opaque_to(&topic, Box::new(Instant::now()))
                .partition(partition)
                .payload(&payload);
        loop {
            match producer.send(record) {
                Ok(()) => break,
                Err((_, r)) => {
                    record = r;
                    std::thread::sleep(Duration::from_micros(200));
                }
            }
        }
    }
    producer.flush(Duration::from_secs(300))?;
    let produce_secs = start.elapsed().as_secs_f64();
    let broker_cpu_1 = pid.map(process_cpu_seconds).transpose()?;
    let client_cpu_1 = process_cpu_seconds(std::process::id())?;
    let failures = *producer
        .context()
        .failures
        .lock()
        .map_err(|_| anyhow::anyhow!("lock"))?;
    if failures > 0 {
        bail!("{failures} messages failed to deliver");
    }
    let mut latencies = producer
        .context()
        .latencies_us
        .lock()
        .map_err(|_| anyhow::anyhow!("lock"))?
        .clone();
    latencies.sort_unstable();

    let consumer: BaseConsumer = ClientConfig::new()
        .set("bootstrap.servers", &bootstrap)
        .set("group.id", "load-no-commits")
        .set("enable.auto.commit", "false")
        .set("fetch.max.bytes", "52428800")
        .set("max.partition.fetch.bytes", "10485760")
        .set("queued.max.messages.kbytes", "1048576")
        .create()?;
    let mut tpl = TopicPartitionList::new();
    for p in 0..args.partitions {
        tpl.add_partition_offset(&topic, p, Offset::Beginning)?;
    }
    consumer.assign(&tpl)?;
    let start = Instant::now();
    let mut consumed = 0u64;
    let mut consumed_bytes = 0u64;
    while consumed < count {
        if let Some(m) = consumer.poll(Duration::from_secs(10)) {
            consumed_bytes += m?.payload_len() as u64;
            consumed += 1;
        } else if start.elapsed() > Duration::from_secs(600) {
            bail!("consumed only {consumed} of {count} messages");
        }
    }
    let consume_secs = start.elapsed().as_secs_f64();
    let broker_cpu_2 = pid.map(process_cpu_seconds).transpose()?;
    let broker_split_2 = pid.map(process_cpu_split).transpose()?;
    let client_cpu_2 = process_cpu_seconds(std::process::id())?;

    let gb = total_bytes as f64 / 1e9;
    let mb = total_bytes as f64 / 1e6;
    println!("sluice load benchmark: {count} messages of {} B ({mb:.0} MB) to {} partitions, acks=all, librdkafka {}", args.message_bytes, args.partitions, rdkafka::util::get_rdkafka_version().1);
    println!(
        "{:<10} {:>10} {:>14} {:>14}",
        "phase", "MB/s", "broker CPU-s/GB", "client CPU-s/GB"
    );
    let per_gb = |a: Option<f64>, b: Option<f64>| match (a, b) {
        (Some(a), Some(b)) => format!("{:.3}", (b - a) / gb),
        _ => "n/a".to_string(),
    };
    println!(
        "{:<10} {:>10.1} {:>14} {:>14.3}",
        "produce",
        mb / produce_secs,
        per_gb(broker_cpu_0, broker_cpu_1),
        (client_cpu_1 - client_cpu_0) / gb
    );
    println!(
        "{:<10} {:>10.1} {:>14} {:>14.3}",
        "consume",
        consumed_bytes as f64 / 1e6 / consume_secs,
        per_gb(broker_cpu_1, broker_cpu_2),
        (client_cpu_2 - client_cpu_1) / gb
    );
    println!(
        "produce latency ms: p50 {:.2}  p99 {:.2}  max {:.2}",
        percentile(&latencies, 0.50),
        percentile(&latencies, 0.99),
        percentile(&latencies, 1.0)
    );
    println!(
        "broker CPU-s per GB produced+consumed: {}",
        per_gb(broker_cpu_0, broker_cpu_2)
    );
    if let (Some((u0, s0)), Some((u2, s2))) = (broker_split_0, broker_split_2) {
        println!(
            "broker CPU split over both phases: user {:.3} s/GB, system (kernel) {:.3} s/GB",
            (u2 - u0) / gb,
            (s2 - s0) / gb
        );
    }
    drop(started);
    Ok(())
}
