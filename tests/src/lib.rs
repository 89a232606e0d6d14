//! Harness for end-to-end tests: starts the real `sluice` binary on a free loopback port
//! with its own data directory, and stops (or kills) it; and a reader that assigns itself
//! every partition of a topic from the start.

use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// Where the `sluice` binary is: `$SLUICE_BIN`, else the debug build in the target dir.
pub fn sluice_bin() -> PathBuf {
    if let Ok(path) = std::env::var("SLUICE_BIN") {
        return PathBuf::from(path);
    }
    let target = std::env::var("CARGO_TARGET_DIR").map_or_else(
        |_| Path::new(env!("CARGO_MANIFEST_DIR")).join("../target"),
        PathBuf::from,
    );
    target.join("debug/sluice")
}

/// A free port on 127.0.0.1 (bound and released; good enough for tests).
pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("no free port on loopback")
}

/// A running broker process.
pub struct Broker {
    child: Option<Child>,
    /// Port it listens on.
    pub port: u16,
    /// Its data directory.
    pub data_dir: PathBuf,
    log: PathBuf,
    env: Vec<(String, String)>,
}

impl Broker {
    /// Starts a broker on a free port with `data_dir` and extra `SLUICE_*` variables.
    pub fn start(data_dir: &Path, env: &[(&str, &str)]) -> Broker {
        let mut broker = Broker {
            child: None,
            port: free_port(),
            data_dir: data_dir.to_path_buf(),
            log: data_dir.with_extension("log"),
            env: env
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
        };
        broker.spawn();
        broker
    }

    fn spawn(&mut self) {
        let bin = sluice_bin();
        assert!(
            bin.exists(),
            "{} not found: build it with `cargo build --bin sluice` (tests/run does)",
            bin.display()
        );
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&self.log)
            .expect("broker log file");
        let child = Command::new(bin)
            .args(["serve", "--listen", &self.bootstrap(), "--data-dir"])
            .arg(&self.data_dir)
            .envs(self.env.iter().map(|(k, v)| (k.as_str(), v.as_str())))
            .stdout(Stdio::from(log.try_clone().expect("log handle")))
            .stderr(Stdio::from(log))
            .spawn()
            .expect("start sluice");
        self.child = Some(child);
        let deadline = Instant::now() + Duration::from_secs(30);
        while TcpStream::connect(("127.0.0.1", self.port)).is_err() {
            if let Some(Ok(Some(status))) = self.child.as_mut().map(|c| c.try_wait()) {
                panic!("sluice exited with {status}:\n{}", self.log());
            }
            assert!(
                Instant::now() < deadline,
                "sluice did not listen:\n{}",
                self.log()
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// `127.0.0.1:<port>`.
    pub fn bootstrap(&self) -> String {
        format!("127.0.0.1:{}", self.port)
    }

    /// The process id (for CPU accounting).
    pub fn pid(&self) -> Option<u32> {
        self.child.as_ref().map(Child::id)
    }

    /// The broker's log so far.
    pub fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// SIGKILL: the process dies without flushing or closing anything.
    pub fn kill9(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// Starts the process again on the same port and data directory.
    pub fn restart(&mut self) {
        self.stop();
        self.spawn();
    }

    /// SIGTERM and wait; returns whether it exited cleanly (status 0).
    pub fn stop(&mut self) -> bool {
        let Some(mut child) = self.child.take() else {
            return true;
        };
        // SAFETY: sending a signal to a child process we own.
        unsafe { libc::kill(child.id() as i32, libc::SIGTERM) };
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            if let Ok(Some(status)) = child.try_wait() {
                return status.success();
            }
            if Instant::now() > deadline {
                let _ = child.kill();
                let _ = child.wait();
                return false;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

impl Drop for Broker {
    fn drop(&mut self) {
        self.stop();
    }
}

/// A consumer that assigns itself every partition of `topic` from the beginning, without a
/// group or commits; `extra` adds librdkafka settings (e.g. `isolation.level`).
pub fn reader_from_start(
    broker: &Broker,
    topic: &str,
    partitions: i32,
    extra: &[(&str, &str)],
) -> rdkafka::consumer::BaseConsumer {
    use rdkafka::consumer::Consumer;
    let mut config = rdkafka::ClientConfig::new();
    config
        .set("bootstrap.servers", broker.bootstrap())
        .set("group.id", "readers-no-commits")
        .set("enable.auto.commit", "false");
    for (k, v) in extra {
        config.set(*k, *v);
    }
    let consumer: rdkafka::consumer::BaseConsumer = config.create().expect("consumer");
    let mut tpl = rdkafka::TopicPartitionList::new();
    for p in 0..partitions {
        tpl.add_partition_offset(topic, p, rdkafka::Offset::Beginning)
            .expect("assign");
    }
    consumer.assign(&tpl).expect("assign");
    consumer
}
