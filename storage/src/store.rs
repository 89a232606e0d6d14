//! The set of partition logs under one data directory: opening them all on start (with
//! recovery after an unclean shutdown), creating and deleting partitions, background
//! maintenance (interval flush, retention, compaction) and a clean shutdown.

use std::collections::HashMap;
use std::fs::File;
use std::os::fd::AsRawFd;
use std::path::{Path, PathBuf};
use std::sync::mpsc::{self, RecvTimeoutError};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use parking_lot::{Mutex, RwLock};

use crate::config::LogConfig;
use crate::error::{Result, StorageError};
use crate::partition::{PartitionLog, TopicPartition};

/// Marker written by a clean shutdown; its absence on start means the tail segments must be
/// verified.
const CLEAN_SHUTDOWN_FILE: &str = ".sluice_clean_shutdown";
/// Lock file that keeps two processes from using one data directory.
const LOCK_FILE: &str = ".lock";
/// Suffix given to a partition directory while it is being deleted.
const DELETING_SUFFIX: &str = ".deleting";

/// Wall-clock milliseconds since the Unix epoch.
pub fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as i64)
}

/// How often the background threads look at the logs.
#[derive(Debug, Clone, Copy)]
pub struct MaintenanceSettings {
    /// `log.retention.check.interval.ms`: how often retention runs.
    pub retention_check_interval: Duration,
    /// `log.cleaner.backoff.ms`: pause between compaction passes.
    pub cleaner_backoff: Duration,
    /// How often partitions with a `flush.ms` are checked for a due fsync.
    pub flush_check_interval: Duration,
    /// `producer.id.expiration.ms`: a producer with no open transaction that wrote nothing
    /// to a partition for this long is forgotten there.
    pub producer_id_expiration_ms: i64,
    /// `producer.id.expiration.check.interval.ms`.
    pub producer_id_expiration_check_interval: Duration,
}

impl Default for MaintenanceSettings {
    fn default() -> Self {
        MaintenanceSettings {
            retention_check_interval: Duration::from_secs(300),
            cleaner_backoff: Duration::from_secs(15),
            flush_check_interval: Duration::from_millis(50),
            producer_id_expiration_ms: 86_400_000,
            producer_id_expiration_check_interval: Duration::from_secs(600),
        }
    }
}

/// All partition logs of one data directory.
pub struct LogStore {
    dir: PathBuf,
    logs: RwLock<HashMap<TopicPartition, Arc<PartitionLog>>>,
    recovered_unclean: bool,
    background: Mutex<Option<Background>>,
    _lock: File,
}

struct Background {
    /// Dropping these wakes and ends the threads.
    stops: Vec<mpsc::Sender<()>>,
    threads: Vec<JoinHandle<()>>,
}

impl std::fmt::Debug for LogStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LogStore").field("dir", &self.dir).finish()
    }
}

fn lock_directory(dir: &Path) -> Result<File> {
    let path = dir.join(LOCK_FILE);
    let file = File::create(&path).map_err(|e| StorageError::io(&path, e))?;
    // SAFETY: flock on a valid, owned file descriptor has no memory-safety preconditions.
    let rc = unsafe { libc::flock(file.as_raw_fd(), libc::LOCK_EX | libc::LOCK_NB) };
    if rc != 0 {
        return Err(StorageError::io(
            &path,
            std::io::Error::other(format!(
                "data directory {} is in use by another sluice process",
                dir.display()
            )),
        ));
    }
    Ok(file)
}

impl LogStore {
    /// Opens every partition under `dir` (created if missing). `config_for` gives the log
    /// config of a topic. After an unclean shutdown the tail of every log is verified.
    pub fn open(dir: &Path, config_for: impl Fn(&str) -> LogConfig) -> Result<Self> {
        std::fs::create_dir_all(dir).map_err(|e| StorageError::io(dir, e))?;
        let lock = lock_directory(dir)?;
        let marker = dir.join(CLEAN_SHUTDOWN_FILE);
        let clean = marker.exists();
        let mut logs = HashMap::new();
        let mut names = Vec::new();
        for entry in std::fs::read_dir(dir).map_err(|e| StorageError::io(dir, e))? {
            let entry = entry.map_err(|e| StorageError::io(dir, e))?;
            if entry.file_type().is_ok_and(|t| t.is_dir()) {
                names.push(entry.file_name().to_string_lossy().into_owned());
            }
        }
        names.sort();
        let now = now_ms();
        for name in names {
            let path = dir.join(&name);
            if name.ends_with(DELETING_SUFFIX) {
                std::fs::remove_dir_all(&path).map_err(|e| StorageError::io(&path, e))?;
                continue;
            }
            let Some(tp) = TopicPartition::parse_dir_name(&name) else {
                tracing::warn!(dir = %path.display(), "ignoring directory that is not <topic>-<partition>");
                continue;
            };
            let log = PartitionLog::open(&path, tp.clone(), config_for(&tp.topic), clean, now)?;
            logs.insert(tp, Arc::new(log));
        }
        if clean {
            std::fs::remove_file(&marker).map_err(|e| StorageError::io(&marker, e))?;
        } else if !logs.is_empty() {
            tracing::warn!(dir = %dir.display(), partitions = logs.len(), "no clean shutdown marker: verified and repaired log tails");
        }
        Ok(LogStore {
            dir: dir.to_path_buf(),
            logs: RwLock::new(logs),
            recovered_unclean: !clean,
            background: Mutex::new(None),
            _lock: lock,
        })
    }

    /// The data directory.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// True when the last shutdown was not clean and logs were verified on open.
    pub fn recovered_unclean(&self) -> bool {
        self.recovered_unclean
    }

    /// The log of a partition, if it exists.
    pub fn get(&self, tp: &TopicPartition) -> Option<Arc<PartitionLog>> {
        self.logs.read().get(tp).cloned()
    }

    /// Every partition log.
    pub fn all(&self) -> Vec<Arc<PartitionLog>> {
        self.logs.read().values().cloned().collect()
    }

    /// Returns the partition's log, creating it with `config` if it does not exist.
    pub fn get_or_create(
        &self,
        tp: &TopicPartition,
        config: LogConfig,
    ) -> Result<Arc<PartitionLog>> {
        if let Some(log) = self.get(tp) {
            return Ok(log);
        }
        let mut logs = self.logs.write();
        if let Some(log) = logs.get(tp) {
            return Ok(log.clone());
        }
        let path = self.dir.join(tp.dir_name());
        let log = Arc::new(PartitionLog::open(
            &path,
            tp.clone(),
            config,
            true,
            now_ms(),
        )?);
        logs.insert(tp.clone(), log.clone());
        Ok(log)
    }

    /// Applies a new config to every partition of `topic`.
    pub fn set_topic_config(&self, topic: &str, config: &LogConfig) {
        for log in self.logs.read().values() {
            if log.topic_partition().topic == topic {
                log.set_config(config.clone());
            }
        }
    }

    /// Removes a partition and its files. The directory is first renamed so a crash midway
    /// leaves nothing that could be mistaken for a live partition.
    pub fn delete(&self, tp: &TopicPartition) -> Result<bool> {
        let Some(log) = self.logs.write().remove(tp) else {
            return Ok(false);
        };
        log.close()?;
        let from = log.dir().to_path_buf();
        let to = self.dir.join(format!("{}{DELETING_SUFFIX}", tp.dir_name()));
        std::fs::rename(&from, &to).map_err(|e| StorageError::io(&from, e))?;
        std::fs::remove_dir_all(&to).map_err(|e| StorageError::io(&to, e))?;
        Ok(true)
    }

    /// Starts the flusher, retention and cleaner threads. They hold only a weak reference,
    /// and stop when [`LogStore::shutdown`] is called or the store is dropped.
    pub fn start_maintenance(self: &Arc<Self>, settings: MaintenanceSettings) {
        type Job = (&'static str, Duration, Box<dyn Fn(&LogStore) + Send>);
        let expiration_ms = settings.producer_id_expiration_ms;
        let jobs: [Job; 4] = [
            (
                "log-flusher",
                settings.flush_check_interval,
                Box::new(LogStore::flush_due),
            ),
            (
                "log-retention",
                settings.retention_check_interval,
                Box::new(LogStore::run_retention),
            ),
            (
                "log-cleaner",
                settings.cleaner_backoff,
                Box::new(LogStore::run_compaction),
            ),
            (
                "producer-expiry",
                settings.producer_id_expiration_check_interval,
                Box::new(move |store: &LogStore| store.expire_producers(expiration_ms)),
            ),
        ];
        let mut background = Background {
            stops: Vec::new(),
            threads: Vec::new(),
        };
        for (name, every, job) in jobs {
            let store = Arc::downgrade(self);
            let (stop, stopped) = mpsc::channel::<()>();
            let spawned = std::thread::Builder::new()
                .name(name.to_string())
                .spawn(move || loop {
                    match stopped.recv_timeout(every) {
                        Err(RecvTimeoutError::Timeout) => {}
                        _ => return,
                    }
                    let Some(store) = store.upgrade() else { return };
                    job(&store);
                });
            match spawned {
                Ok(handle) => {
                    background.stops.push(stop);
                    background.threads.push(handle);
                }
                Err(e) => tracing::error!(error = %e, "could not start the {name} thread"),
            }
        }
        *self.background.lock() = Some(background);
    }

    /// fsyncs every partition whose `flush.ms` has passed since its last flush.
    pub fn flush_due(&self) {
        let now = now_ms();
        for log in self.all() {
            let every = log.config().flush_ms;
            if every != i64::MAX && log.ms_since_flush(now) >= every {
                if let Err(e) = log.flush(now) {
                    tracing::error!(partition = %log.topic_partition(), error = %e, "interval flush failed");
                }
            }
        }
    }

    /// Applies retention to every partition.
    pub fn run_retention(&self) {
        let now = now_ms();
        for log in self.all() {
            if let Err(e) = log.apply_retention(now) {
                tracing::error!(partition = %log.topic_partition(), error = %e, "retention failed");
            }
        }
    }

    /// Forgets, in every partition, producers idle for `expiration_ms`.
    pub fn expire_producers(&self, expiration_ms: i64) {
        let now = now_ms();
        for log in self.all() {
            log.expire_producers(now, expiration_ms);
        }
    }

    /// Runs a compaction pass on every compacted partition that is dirty enough.
    pub fn run_compaction(&self) {
        let now = now_ms();
        for log in self.all() {
            if let Err(e) = log.compact(now, false) {
                tracing::error!(partition = %log.topic_partition(), error = %e, "compaction failed");
            }
        }
    }

    /// Stops background work, flushes and closes every log and writes the clean-shutdown
    /// marker, so the next start skips verification.
    pub fn shutdown(&self) -> Result<()> {
        if let Some(bg) = self.background.lock().take() {
            drop(bg.stops);
            for t in bg.threads {
                let _ = t.join();
            }
        }
        let mut first_error = None;
        for log in self.all() {
            if let Err(e) = log.close() {
                tracing::error!(partition = %log.topic_partition(), error = %e, "flush on shutdown failed");
                first_error.get_or_insert(e);
            }
        }
        if let Some(e) = first_error {
            return Err(e);
        }
        let marker = self.dir.join(CLEAN_SHUTDOWN_FILE);
        crate::checkpoint::write_atomically(&marker, b"")?;
        Ok(())
    }
}
