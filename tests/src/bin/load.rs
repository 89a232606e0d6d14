//! End-to-end load benchmark: a real client (librdkafka through rdkafka) produces 1 KiB
//! messages to a 6-partition topic with acks=all, then consumes them all. Prints produce and
//! consume MB/s, produce latency percentiles, and the broker's CPU-seconds per GB (from
//! /proc/<pid>/stat), next to the client process's own CPU per GB.
//!
//! With `--txn-commit-ms N` the same messages are then produced by a transactional producer
//! (a commit every N ms) twice, read back with read_committed, and by a plain one once more,
//! each into a topic of its own; the transactional/plain throughput ratio of this one run
//! (means of two turns each) is printed.
//!
//! Run: `bench/load` (builds release binaries, starts a broker on a free port with a temp
//! data dir, runs this) or `cargo run --release -p sluice-e2e --bin load -- --help`.

use std::sync::Mutex;
use std::time::{Duration, Instant};

use anyhow::{bail, Context};
use clap::Parser;
use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, TopicReplication};
use rdkafka::client::DefaultClientContext;
use rdkafka::config::ClientConfig;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::producer::{BaseProducer, BaseRecord, DeliveryResult, Producer, ProducerContext};
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
    /// The producer's batch.size: the default lets librdkafka fill large batches; 16384
    /// (the Java client's default) makes the broker append many small batches.
    #[arg(long, default_value_t = 1_000_000)]
    batch_bytes: u64,
    /// Also produce the same data in transactions committed every this many milliseconds,
    /// read it back read_committed, and compare with the plain phases.
    #[arg(long)]
    txn_commit_ms: Option<u64>,
}

/// What one produce or consume phase measured.
struct Phase {
    name: &'static str,
    mb_per_s: f64,
    broker_cpu_s: Option<f64>,
    client_cpu_s: f64,
    latencies_ms: Option<(f64, f64, f64)>,
    /// Transactions committed (transactional produce only).
    commits: u64,
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
    create_topic(&admin, &topic, args.partitions).await?;

    let count = args.mb * 1024 * 1024 / args.message_bytes as u64;
    let total_bytes = count * args.message_bytes as u64;
    // With transactions the data is written four times, into memory of its own each time.
    let phases_writing = if args.txn_commit_ms.is_some() { 4 } else { 1 };
    warm_page_cache(data.path(), total_bytes * phases_writing)?;
    let broker_split_0 = pid.map(process_cpu_split).transpose()?;
    let run = Run {
        bootstrap: bootstrap.clone(),
        pid,
        count,
        message_bytes: args.message_bytes,
        partitions: args.partitions,
        batch_bytes: args.batch_bytes,
    };
    let mut phases = vec![
        run.produce(&topic, None)?,
        run.consume(&topic, "read_uncommitted")?,
    ];
    let broker_split_2 = pid.map(process_cpu_split).transpose()?;
    if let Some(commit_ms) = args.txn_commit_ms {
        // Plain, transactional, then transactional, plain again: the page cache grows over
        // the run and writing into new memory costs more as it does on these machines, so
        // each mode gets one early and one late turn and the ratio compares their means.
        for (name, transactional) in [("txn", true), ("txn2", true), ("plain2", false)] {
            let t = format!("{topic}-{name}");
            create_topic(&admin, &t, args.partitions).await?;
            if transactional {
                phases.push(run.produce(&t, Some(commit_ms))?);
                phases.push(run.consume(&t, "read_committed")?);
            } else {
                phases.push(run.produce(&t, None)?);
                phases.push(run.consume(&t, "read_uncommitted")?);
            }
        }
    }

    let gb = total_bytes as f64 / 1e9;
    let mb = total_bytes as f64 / 1e6;
    println!("sluice load benchmark: {count} messages of {} B ({mb:.0} MB) to {} partitions, acks=all, batch.size {}, librdkafka {}", args.message_bytes, args.partitions, args.batch_bytes, rdkafka::util::get_rdkafka_version().1);
    println!(
        "{:<14} {:>10} {:>16} {:>16}",
        "phase", "MB/s", "broker CPU-s/GB", "client CPU-s/GB"
    );
    for phase in &phases {
        println!(
            "{:<14} {:>10.1} {:>16} {:>16.3}",
            phase.name,
            phase.mb_per_s,
            phase
                .broker_cpu_s
                .map_or("n/a".to_string(), |c| format!("{:.3}", c / gb)),
            phase.client_cpu_s / gb
        );
    }
    for phase in &phases {
        if let Some((p50, p99, max)) = phase.latencies_ms {
            println!(
                "{} latency ms: p50 {p50:.2}  p99 {p99:.2}  max {max:.2}",
                phase.name
            );
        }
    }
    let plain: Option<f64> = phases[..2].iter().map(|p| p.broker_cpu_s).sum();
    println!(
        "broker CPU-s per GB produced+consumed: {}",
        plain.map_or("n/a".to_string(), |c| format!("{:.3}", c / gb))
    );
    if let (Some((u0, s0)), Some((u2, s2))) = (broker_split_0, broker_split_2) {
        println!(
            "broker CPU split over both phases: user {:.3} s/GB, system (kernel) {:.3} s/GB",
            (u2 - u0) / gb,
            (s2 - s0) / gb
        );
    }
    if phases.len() == 8 {
        let mean = |a: usize, b: usize| (phases[a].mb_per_s + phases[b].mb_per_s) / 2.0;
        println!(
            "transactions committed: {} and {} (every {} ms)",
            phases[2].commits,
            phases[4].commits,
            args.txn_commit_ms.unwrap_or_default()
        );
        println!(
            "transactional / plain (means of two turns each): produce {:.2}, consume {:.2}",
            mean(2, 4) / mean(0, 6),
            mean(3, 5) / mean(1, 7)
        );
    }
    drop(started);
    Ok(())
}

async fn create_topic(
    admin: &AdminClient<DefaultClientContext>,
    topic: &str,
    partitions: i32,
) -> anyhow::Result<()> {
    for r in admin
        .create_topics(
            &[NewTopic::new(topic, partitions, TopicReplication::Fixed(1))],
            &AdminOptions::new(),
        )
        .await?
    {
        r.map_err(|(t, e)| anyhow::anyhow!("creating {t}: {e}"))?;
    }
    Ok(())
}

/// The parameters every phase shares.
struct Run {
    bootstrap: String,
    pid: Option<u32>,
    count: u64,
    message_bytes: usize,
    partitions: i32,
    /// The producer's batch.size.
    batch_bytes: u64,
}

impl Run {
    /// Produces `count` messages round-robin over the partitions with acks=all; in
    /// transactions committed every `commit_ms` milliseconds when given. The producer is
    /// polled by this thread (the usual librdkafka loop) so a commit's flush is not held up
    /// by a separate poller.
    fn produce(&self, topic: &str, commit_ms: Option<u64>) -> anyhow::Result<Phase> {
        let per_txn = commit_ms.map(Duration::from_millis);
        let payload = vec![b'x'; self.message_bytes];
        let context = LatencyContext {
            latencies_us: Mutex::new(Vec::with_capacity(self.count as usize)),
            failures: Mutex::new(0),
        };
        let mut config = ClientConfig::new();
        config
            .set("bootstrap.servers", &self.bootstrap)
            .set("acks", "all")
            .set("linger.ms", "5")
            .set("batch.size", self.batch_bytes.to_string())
            .set("queue.buffering.max.kbytes", "1048576")
            .set("queue.buffering.max.messages", "1000000");
        if per_txn.is_some() {
            config.set("transactional.id", format!("{topic}-producer"));
        }
        let producer: BaseProducer<LatencyContext> = config.create_with_context(context)?;
        if per_txn.is_some() {
            producer.init_transactions(Duration::from_secs(30))?;
        }
        let broker_cpu_0 = self.pid.map(process_cpu_seconds).transpose()?;
        let client_cpu_0 = process_cpu_seconds(std::process::id())?;
        let start = Instant::now();
        let mut txn_started = None;
        let mut commits = 0u64;
        for i in 0..self.count {
            if let Some(interval) = per_txn {
                if txn_started.is_some_and(|t: Instant| t.elapsed() >= interval) {
                    producer.commit_transaction(Duration::from_secs(60))?;
                    commits += 1;
                    txn_started = None;
                }
                if txn_started.is_none() {
                    producer.begin_transaction()?;
                    txn_started = Some(Instant::now());
                }
            }
            let partition = (i % self.partitions as u64) as i32;
            let mut record: BaseRecord<'_, [u8], [u8], Box<Instant>> =
                BaseRecord::with_opaque_to(topic, Box::new(Instant::now()))
                    .partition(partition)
                    .payload(&payload);
            loop {
                match producer.send(record) {
                    Ok(()) => break,
                    Err((_, r)) => {
                        record = r;
                        producer.poll(Duration::from_millis(1));
                    }
                }
            }
            producer.poll(Duration::ZERO);
        }
        if txn_started.is_some() {
            producer.commit_transaction(Duration::from_secs(60))?;
            commits += 1;
        }
        producer.flush(Duration::from_secs(300))?;
        let secs = start.elapsed().as_secs_f64();
        let broker_cpu_1 = self.pid.map(process_cpu_seconds).transpose()?;
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
        Ok(Phase {
            name: if per_txn.is_some() {
                "produce-txn"
            } else {
                "produce"
            },
            commits,
            mb_per_s: (self.count * self.message_bytes as u64) as f64 / 1e6 / secs,
            broker_cpu_s: broker_cpu_0.zip(broker_cpu_1).map(|(a, b)| b - a),
            client_cpu_s: client_cpu_1 - client_cpu_0,
            latencies_ms: Some((
                percentile(&latencies, 0.50),
                percentile(&latencies, 0.99),
                percentile(&latencies, 1.0),
            )),
        })
    }

    /// Reads every message back from the start with the given isolation level.
    fn consume(&self, topic: &str, isolation: &str) -> anyhow::Result<Phase> {
        let consumer: BaseConsumer = ClientConfig::new()
            .set("bootstrap.servers", &self.bootstrap)
            .set("group.id", "load-no-commits")
            .set("enable.auto.commit", "false")
            .set("isolation.level", isolation)
            .set("fetch.max.bytes", "52428800")
            .set("max.partition.fetch.bytes", "10485760")
            .set("queued.max.messages.kbytes", "1048576")
            .create()?;
        let mut tpl = TopicPartitionList::new();
        for p in 0..self.partitions {
            tpl.add_partition_offset(topic, p, Offset::Beginning)?;
        }
        consumer.assign(&tpl)?;
        let broker_cpu_0 = self.pid.map(process_cpu_seconds).transpose()?;
        let client_cpu_0 = process_cpu_seconds(std::process::id())?;
        let start = Instant::now();
        let mut consumed = 0u64;
        let mut consumed_bytes = 0u64;
        while consumed < self.count {
            if let Some(m) = consumer.poll(Duration::from_secs(10)) {
                consumed_bytes += m?.payload_len() as u64;
                consumed += 1;
            } else if start.elapsed() > Duration::from_secs(600) {
                bail!("consumed only {consumed} of {} messages", self.count);
            }
        }
        let secs = start.elapsed().as_secs_f64();
        let broker_cpu_1 = self.pid.map(process_cpu_seconds).transpose()?;
        let client_cpu_1 = process_cpu_seconds(std::process::id())?;
        Ok(Phase {
            name: if isolation == "read_committed" {
                "consume-txn"
            } else {
                "consume"
            },
            mb_per_s: consumed_bytes as f64 / 1e6 / secs,
            broker_cpu_s: broker_cpu_0.zip(broker_cpu_1).map(|(a, b)| b - a),
            client_cpu_s: client_cpu_1 - client_cpu_0,
            latencies_ms: None,
            commits: 0,
        })
    }
}
