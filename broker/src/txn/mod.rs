//! The transaction coordinator (KIP-98, with KIP-447's group fencing done by the group
//! coordinator): owns every transactional id's producer id, epoch and current transaction,
//! persists each change to `__transaction_state` before acting on it, writes the commit or
//! abort markers to the transaction's partitions, fences zombies by bumping the epoch, and
//! aborts transactions that outlive their timeout.
//!
//! Kafka writes markers asynchronously after answering EndTxn. Here the partitions are
//! local, so EndTxn persists PrepareCommit/PrepareAbort, writes the markers and persists
//! CompleteCommit/CompleteAbort before it answers. If a marker cannot be written (a full
//! disk) the transaction stays in its Prepare state, requests for it get
//! CONCURRENT_TRANSACTIONS, and [`TransactionCoordinator::tick`] retries; a restart does the
//! same from the Prepare state found in the log.

pub mod log;
pub mod state;

use std::collections::{BTreeSet, HashMap};
use std::sync::Arc;

use parking_lot::Mutex;
use sluice_storage::{PartitionLog, StorageError, TxnMarker};

pub use state::{TxnMetadata, TxnState};

/// Kafka error codes of the transaction APIs.
pub mod errors {
    /// INVALID_PRODUCER_EPOCH: the epoch is stale (API versions before PRODUCER_FENCED).
    pub const INVALID_PRODUCER_EPOCH: i16 = 47;
    /// INVALID_TXN_STATE: the request does not fit the transaction's state.
    pub const INVALID_TXN_STATE: i16 = 48;
    /// INVALID_PRODUCER_ID_MAPPING: the producer id does not own the transactional id.
    pub const INVALID_PRODUCER_ID_MAPPING: i16 = 49;
    /// INVALID_TRANSACTION_TIMEOUT: above `transaction.max.timeout.ms` (or not positive).
    pub const INVALID_TRANSACTION_TIMEOUT: i16 = 50;
    /// CONCURRENT_TRANSACTIONS: markers of the previous transaction are being written.
    pub const CONCURRENT_TRANSACTIONS: i16 = 51;
    /// PRODUCER_FENCED: a newer producer with the same transactional id exists (KIP-588).
    pub const PRODUCER_FENCED: i16 = 90;
    /// TRANSACTIONAL_ID_NOT_FOUND (DescribeTransactions).
    pub const TRANSACTIONAL_ID_NOT_FOUND: i16 = 105;
    /// COORDINATOR_NOT_AVAILABLE: `__transaction_state` could not be written; retriable.
    pub const COORDINATOR_NOT_AVAILABLE: i16 = 15;
    /// INVALID_REQUEST.
    pub const INVALID_REQUEST: i16 = 42;
}

/// Where the coordinator writes markers: the broker's partitions (and the group
/// coordinator, for `__consumer_offsets`).
pub trait MarkerWriter: Send + Sync {
    /// Appends `marker` to a partition of the transaction. A partition that no longer
    /// exists (its topic was deleted) is not an error.
    fn write_marker(
        &self,
        topic: &str,
        partition: i32,
        marker: &TxnMarker,
    ) -> Result<(), StorageError>;
}

/// The coordinator's settings (the broker's `transaction.*` configs).
#[derive(Debug, Clone, Copy)]
pub struct TxnSettings {
    /// `transaction.max.timeout.ms`: the largest timeout a producer may ask for.
    pub max_timeout_ms: i32,
    /// `transactional.id.expiration.ms`: an id idle this long (no open transaction) is
    /// forgotten.
    pub id_expiration_ms: i64,
}

/// A transactional producer as a request names it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ProducerRef {
    /// Producer id.
    pub id: i64,
    /// Producer epoch.
    pub epoch: i16,
}

/// The epoch a coordinator stores in its markers; a single broker never changes it.
const COORDINATOR_EPOCH: i32 = 0;

/// The transaction coordinator of this broker.
pub struct TransactionCoordinator {
    txns: Mutex<HashMap<String, Arc<Mutex<TxnMetadata>>>>,
    /// Producer id -> transactional id, for checks on transactional produce.
    by_producer: Mutex<HashMap<i64, String>>,
    log: Arc<PartitionLog>,
    settings: TxnSettings,
}

impl std::fmt::Debug for TransactionCoordinator {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TransactionCoordinator").finish()
    }
}

fn fenced_or(meta: &TxnMetadata, producer: ProducerRef, fenced: i16) -> Result<(), i16> {
    if producer.id != meta.producer_id {
        return Err(errors::INVALID_PRODUCER_ID_MAPPING);
    }
    if producer.epoch != meta.producer_epoch {
        return Err(fenced);
    }
    Ok(())
}

impl TransactionCoordinator {
    /// Loads every transactional id from `__transaction_state`. Transactions found in a
    /// Prepare state are finished by the first [`TransactionCoordinator::tick`].
    pub fn open(log: Arc<PartitionLog>, settings: TxnSettings) -> Result<Self, StorageError> {
        let states = log::load(&log)?;
        let by_producer = states
            .values()
            .map(|m| (m.producer_id, m.transactional_id.clone()))
            .collect();
        tracing::info!(
            transactional_ids = states.len(),
            open = states
                .values()
                .filter(|m| m.state == TxnState::Ongoing)
                .count(),
            "loaded transactions from __transaction_state"
        );
        Ok(TransactionCoordinator {
            txns: Mutex::new(
                states
                    .into_iter()
                    .map(|(id, m)| (id, Arc::new(Mutex::new(m))))
                    .collect(),
            ),
            by_producer: Mutex::new(by_producer),
            log,
            settings,
        })
    }

    fn entry(&self, transactional_id: &str) -> Option<Arc<Mutex<TxnMetadata>>> {
        self.txns.lock().get(transactional_id).cloned()
    }

    /// Persists `next` then makes it the state (write-ahead).
    fn transition(&self, meta: &mut TxnMetadata, next: TxnMetadata) -> Result<(), i16> {
        log::append(&self.log, &next.transactional_id, Some(&next)).map_err(|e| {
            tracing::warn!(transactional_id = %next.transactional_id, error = %e, "cannot write __transaction_state");
            errors::COORDINATOR_NOT_AVAILABLE
        })?;
        *meta = next;
        Ok(())
    }

    /// InitProducerId with a transactional id: a new id starts at epoch 0; a known one gets
    /// the next epoch, which fences every older producer of the id, after an open
    /// transaction of theirs is aborted. `expected` is the id and epoch a v3+ producer
    /// names (KIP-360); `fenced` is the code for a stale one in this API version.
    pub fn init_producer(
        &self,
        transactional_id: &str,
        timeout_ms: i32,
        expected: Option<ProducerRef>,
        fenced: i16,
        new_producer_id: &dyn Fn() -> Result<i64, i16>,
        markers: &dyn MarkerWriter,
    ) -> Result<ProducerRef, i16> {
        if transactional_id.is_empty() {
            return Err(errors::INVALID_REQUEST);
        }
        if timeout_ms <= 0 || timeout_ms > self.settings.max_timeout_ms {
            return Err(errors::INVALID_TRANSACTION_TIMEOUT);
        }
        let now = sluice_storage::now_ms();
        let existing = {
            let mut txns = self.txns.lock();
            match txns.get(transactional_id) {
                Some(entry) => entry.clone(),
                None => {
                    if expected.is_some() {
                        return Err(errors::INVALID_PRODUCER_ID_MAPPING);
                    }
                    let mut meta = TxnMetadata {
                        transactional_id: transactional_id.to_string(),
                        producer_id: new_producer_id()?,
                        producer_epoch: 0,
                        timeout_ms,
                        state: TxnState::Empty,
                        partitions: BTreeSet::new(),
                        start_ms: -1,
                        last_update_ms: now,
                    };
                    let first = meta.clone();
                    self.transition(&mut meta, first)?;
                    let producer = ProducerRef {
                        id: meta.producer_id,
                        epoch: 0,
                    };
                    self.by_producer
                        .lock()
                        .insert(producer.id, transactional_id.to_string());
                    txns.insert(transactional_id.to_string(), Arc::new(Mutex::new(meta)));
                    return Ok(producer);
                }
            }
        };
        let mut meta = existing.lock();
        if meta.state.is_preparing() {
            return Err(errors::CONCURRENT_TRANSACTIONS);
        }
        if let Some(expected) = expected {
            fenced_or(&meta, expected, fenced)?;
        }
        if meta.state == TxnState::Ongoing {
            // Fence the previous producer: abort its transaction with a bumped epoch.
            self.abort_with_bumped_epoch(&mut meta, markers)?;
            if meta.state.is_preparing() {
                return Err(errors::CONCURRENT_TRANSACTIONS);
            }
        }
        let mut next = meta.clone();
        let old_id = next.producer_id;
        if next.producer_epoch >= i16::MAX - 1 {
            next.producer_id = new_producer_id()?;
            next.producer_epoch = 0;
        } else {
            next.producer_epoch += 1;
        }
        next.timeout_ms = timeout_ms;
        next.state = TxnState::Empty;
        next.partitions.clear();
        next.start_ms = -1;
        next.last_update_ms = now;
        self.transition(&mut meta, next)?;
        if meta.producer_id != old_id {
            let mut by_producer = self.by_producer.lock();
            by_producer.remove(&old_id);
            by_producer.insert(meta.producer_id, transactional_id.to_string());
        }
        Ok(ProducerRef {
            id: meta.producer_id,
            epoch: meta.producer_epoch,
        })
    }

    /// Aborts an open transaction with the epoch bumped, so the producer that opened it is
    /// fenced (timeouts and InitProducerId of a newer producer).
    fn abort_with_bumped_epoch(
        &self,
        meta: &mut TxnMetadata,
        markers: &dyn MarkerWriter,
    ) -> Result<(), i16> {
        let mut next = meta.clone();
        if next.producer_epoch < i16::MAX - 1 {
            next.producer_epoch += 1;
        }
        next.state = TxnState::PrepareAbort;
        next.last_update_ms = sluice_storage::now_ms();
        self.transition(meta, next)?;
        self.complete(meta, markers);
        Ok(())
    }

    /// Writes the markers of a transaction in a Prepare state, then persists its Complete
    /// state. A marker that cannot be written leaves the Prepare state for a later retry.
    fn complete(&self, meta: &mut TxnMetadata, markers: &dyn MarkerWriter) {
        let commit = meta.state == TxnState::PrepareCommit;
        let marker = TxnMarker {
            producer_id: meta.producer_id,
            producer_epoch: meta.producer_epoch,
            coordinator_epoch: COORDINATOR_EPOCH,
            commit,
        };
        for (topic, partition) in &meta.partitions {
            if let Err(e) = markers.write_marker(topic, *partition, &marker) {
                tracing::warn!(transactional_id = %meta.transactional_id, topic, partition, error = %e, "cannot write a transaction marker; will retry");
                return;
            }
        }
        let mut next = meta.clone();
        next.state = if commit {
            TxnState::CompleteCommit
        } else {
            TxnState::CompleteAbort
        };
        next.partitions.clear();
        next.last_update_ms = sluice_storage::now_ms();
        if self.transition(meta, next).is_err() {
            return;
        }
        tracing::debug!(transactional_id = %meta.transactional_id, commit, "transaction completed");
    }

    /// Locks the state of `transactional_id` owned by `producer`, for a change.
    fn owned(
        &self,
        transactional_id: &str,
        producer: ProducerRef,
        fenced: i16,
    ) -> Result<Arc<Mutex<TxnMetadata>>, i16> {
        let entry = self
            .entry(transactional_id)
            .ok_or(errors::INVALID_PRODUCER_ID_MAPPING)?;
        {
            let meta = entry.lock();
            fenced_or(&meta, producer, fenced)?;
            if meta.state.is_preparing() {
                return Err(errors::CONCURRENT_TRANSACTIONS);
            }
        }
        Ok(entry)
    }

    /// AddPartitionsToTxn / AddOffsetsToTxn: the partitions join the transaction, which
    /// opens if it was not open. The caller checked that the partitions exist.
    pub fn add_partitions(
        &self,
        transactional_id: &str,
        producer: ProducerRef,
        partitions: &[(String, i32)],
        fenced: i16,
    ) -> Result<(), i16> {
        let entry = self.owned(transactional_id, producer, fenced)?;
        let mut meta = entry.lock();
        // Checked again under the lock: a fence may have happened in between.
        fenced_or(&meta, producer, fenced)?;
        if meta.state.is_preparing() {
            return Err(errors::CONCURRENT_TRANSACTIONS);
        }
        let opening = meta.state != TxnState::Ongoing;
        if !opening && partitions.iter().all(|p| meta.partitions.contains(p)) {
            return Ok(());
        }
        let now = sluice_storage::now_ms();
        let mut next = meta.clone();
        if opening {
            next.partitions.clear();
            next.start_ms = now;
        }
        next.state = TxnState::Ongoing;
        next.partitions.extend(partitions.iter().cloned());
        next.last_update_ms = now;
        self.transition(&mut meta, next)
    }

    /// EndTxn: commits or aborts the open transaction (markers written before answering).
    /// A retry of the end that just happened succeeds again; anything else that is not an
    /// open transaction is INVALID_TXN_STATE.
    pub fn end_txn(
        &self,
        transactional_id: &str,
        producer: ProducerRef,
        commit: bool,
        fenced: i16,
        markers: &dyn MarkerWriter,
    ) -> Result<(), i16> {
        let entry = self.owned(transactional_id, producer, fenced)?;
        let mut meta = entry.lock();
        fenced_or(&meta, producer, fenced)?;
        match (meta.state, commit) {
            (TxnState::Ongoing, _) => {}
            (TxnState::CompleteCommit, true) | (TxnState::CompleteAbort, false) => return Ok(()),
            (state, _) if state.is_preparing() => return Err(errors::CONCURRENT_TRANSACTIONS),
            _ => return Err(errors::INVALID_TXN_STATE),
        }
        let mut next = meta.clone();
        next.state = if commit {
            TxnState::PrepareCommit
        } else {
            TxnState::PrepareAbort
        };
        next.last_update_ms = sluice_storage::now_ms();
        self.transition(&mut meta, next)?;
        self.complete(&mut meta, markers);
        Ok(())
    }

    /// Runs `append` for a transactional produce of `producer` to a partition, if the
    /// partition is part of the producer's open transaction; the transaction cannot end
    /// while the append runs, so no record lands after its marker.
    pub fn while_in_transaction<T>(
        &self,
        producer: ProducerRef,
        topic: &str,
        partition: i32,
        append: impl FnOnce() -> T,
    ) -> Result<T, (i16, String)> {
        let transactional_id = self.by_producer.lock().get(&producer.id).cloned();
        let entry = transactional_id
            .as_deref()
            .and_then(|id| self.entry(id))
            .ok_or_else(|| {
                (
                    errors::INVALID_TXN_STATE,
                    format!(
                        "producer {} has no transactional id on this coordinator",
                        producer.id
                    ),
                )
            })?;
        let meta = entry.lock();
        if producer.epoch != meta.producer_epoch {
            return Err((
                errors::INVALID_PRODUCER_EPOCH,
                format!(
                    "producer epoch {} is not current: transactional id {} is at epoch {}",
                    producer.epoch, meta.transactional_id, meta.producer_epoch
                ),
            ));
        }
        let tp = (topic.to_string(), partition);
        if meta.producer_id != producer.id
            || meta.state != TxnState::Ongoing
            || !meta.partitions.contains(&tp)
        {
            return Err((
                errors::INVALID_TXN_STATE,
                format!(
                    "{topic}-{partition} is not part of an open transaction of {} \
                     (state {}): add it with AddPartitionsToTxn first",
                    meta.transactional_id,
                    meta.state.name()
                ),
            ));
        }
        Ok(append())
    }

    /// Runs `commit` (a TxnOffsetCommit's write) if it comes from the producer of an open
    /// transaction that added the group's offsets (AddOffsetsToTxn); the transaction cannot
    /// end meanwhile, so the offsets never land after its marker.
    pub fn while_offsets_in_transaction<T>(
        &self,
        transactional_id: &str,
        producer: ProducerRef,
        offsets_partition: (&str, i32),
        commit: impl FnOnce() -> Result<T, i16>,
    ) -> Result<T, i16> {
        let entry = self
            .entry(transactional_id)
            .ok_or(errors::INVALID_PRODUCER_ID_MAPPING)?;
        let meta = entry.lock();
        fenced_or(&meta, producer, errors::INVALID_PRODUCER_EPOCH)?;
        let tp = (offsets_partition.0.to_string(), offsets_partition.1);
        if meta.state != TxnState::Ongoing || !meta.partitions.contains(&tp) {
            return Err(errors::INVALID_TXN_STATE);
        }
        commit()
    }

    /// The state of one transactional id (DescribeTransactions).
    pub fn describe(&self, transactional_id: &str) -> Option<TxnMetadata> {
        self.entry(transactional_id).map(|e| e.lock().clone())
    }

    /// Every transactional id's state (ListTransactions).
    pub fn list(&self) -> Vec<TxnMetadata> {
        let entries: Vec<_> = self.txns.lock().values().cloned().collect();
        let mut all: Vec<TxnMetadata> = entries.iter().map(|e| e.lock().clone()).collect();
        all.sort_by(|a, b| a.transactional_id.cmp(&b.transactional_id));
        all
    }

    /// Periodic work: finishes transactions stuck in a Prepare state, aborts transactions
    /// open longer than their timeout (bumping the epoch, so their producer is fenced), and
    /// forgets ids idle for `transactional.id.expiration.ms`.
    pub fn tick(&self, now_ms: i64, markers: &dyn MarkerWriter) {
        let entries: Vec<_> = self.txns.lock().values().cloned().collect();
        for entry in entries {
            let mut meta = entry.lock();
            if meta.state.is_preparing() {
                if meta.state == TxnState::PrepareEpochFence {
                    meta.state = TxnState::PrepareAbort;
                }
                self.complete(&mut meta, markers);
            } else if meta.state == TxnState::Ongoing
                && now_ms.saturating_sub(meta.start_ms) > i64::from(meta.timeout_ms)
            {
                tracing::info!(transactional_id = %meta.transactional_id, timeout_ms = meta.timeout_ms, "aborting a transaction that timed out");
                let _ = self.abort_with_bumped_epoch(&mut meta, markers);
            } else if !matches!(meta.state, TxnState::Ongoing)
                && now_ms.saturating_sub(meta.last_update_ms) > self.settings.id_expiration_ms
            {
                self.expire(&mut meta);
            }
        }
    }

    /// Forgets an idle transactional id (a tombstone in `__transaction_state`).
    fn expire(&self, meta: &mut TxnMetadata) {
        if let Err(e) = log::append(&self.log, &meta.transactional_id, None) {
            tracing::warn!(transactional_id = %meta.transactional_id, error = %e, "cannot expire a transactional id");
            return;
        }
        meta.state = TxnState::Dead;
        self.txns.lock().remove(&meta.transactional_id);
        self.by_producer.lock().remove(&meta.producer_id);
        tracing::info!(transactional_id = %meta.transactional_id, "transactional id expired");
    }
}

#[cfg(test)]
mod tests;
