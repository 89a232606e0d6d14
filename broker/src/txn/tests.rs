//! The coordinator's state machine against a recording marker writer: commits and aborts
//! write one marker per partition; fencing, timeouts and retries behave as in Kafka; and
//! everything survives a reload from `__transaction_state`.

use std::collections::BTreeSet;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use parking_lot::Mutex;
use sluice_storage::{LogConfig, PartitionLog, StorageError, TopicPartition, TxnMarker};

use super::*;

#[derive(Default)]
struct Recorder {
    markers: Mutex<Vec<(String, i32, TxnMarker)>>,
    failing: AtomicBool,
}

impl MarkerWriter for Recorder {
    fn write_marker(
        &self,
        topic: &str,
        partition: i32,
        marker: &TxnMarker,
    ) -> Result<(), StorageError> {
        if self.failing.load(Ordering::SeqCst) {
            return Err(StorageError::io(
                "/full",
                std::io::Error::other("disk full"),
            ));
        }
        self.markers
            .lock()
            .push((topic.to_string(), partition, *marker));
        Ok(())
    }
}

fn txn_log(dir: &std::path::Path) -> Arc<PartitionLog> {
    Arc::new(
        PartitionLog::open(
            &dir.join("__transaction_state-0"),
            TopicPartition::new(log::TOPIC, 0),
            LogConfig::default(),
            true,
            sluice_storage::now_ms(),
        )
        .unwrap(),
    )
}

fn coordinator(dir: &std::path::Path) -> TransactionCoordinator {
    TransactionCoordinator::open(
        txn_log(dir),
        TxnSettings {
            max_timeout_ms: 60_000,
            id_expiration_ms: 3_600_000,
        },
    )
    .unwrap()
}

fn ids() -> impl Fn() -> Result<i64, i16> {
    let next = Mutex::new(1000);
    move || {
        let mut n = next.lock();
        *n += 1;
        Ok(*n)
    }
}

fn parts(list: &[(&str, i32)]) -> Vec<(String, i32)> {
    list.iter().map(|(t, p)| (t.to_string(), *p)).collect()
}

const FENCED: i16 = errors::PRODUCER_FENCED;

#[test]
fn a_commit_writes_one_marker_per_partition_and_survives_a_reload() {
    let dir = tempfile::tempdir().unwrap();
    let markers = Recorder::default();
    let new_id = ids();
    let producer = {
        let c = coordinator(dir.path());
        let p = c
            .init_producer("tx", 10_000, None, FENCED, &new_id, &markers)
            .unwrap();
        assert_eq!(p.epoch, 0);
        assert_eq!(
            c.end_txn("tx", p, true, FENCED, &markers),
            Err(errors::INVALID_TXN_STATE),
            "nothing is open yet"
        );
        c.add_partitions("tx", p, &parts(&[("a", 0), ("a", 1)]), FENCED)
            .unwrap();
        c.add_partitions("tx", p, &parts(&[("b", 0)]), FENCED)
            .unwrap();
        let open = c.describe("tx").unwrap();
        assert_eq!(open.state, TxnState::Ongoing);
        assert!(open.start_ms > 0);
        assert_eq!(open.partitions.len(), 3);
        assert_eq!(c.while_in_transaction(p, "a", 1, || 7), Ok(7));
        assert_eq!(
            c.while_in_transaction(p, "c", 0, || 7).unwrap_err().0,
            errors::INVALID_TXN_STATE
        );
        c.end_txn("tx", p, true, FENCED, &markers).unwrap();
        // A retry of the same end succeeds; the other end does not.
        c.end_txn("tx", p, true, FENCED, &markers).unwrap();
        assert_eq!(
            c.end_txn("tx", p, false, FENCED, &markers),
            Err(errors::INVALID_TXN_STATE)
        );
        p
    };
    let written = markers.markers.lock().clone();
    let tps: BTreeSet<(String, i32)> = written.iter().map(|(t, p, _)| (t.clone(), *p)).collect();
    assert_eq!(
        tps,
        parts(&[("a", 0), ("a", 1), ("b", 0)]).into_iter().collect()
    );
    assert!(written
        .iter()
        .all(|(_, _, m)| m.commit && m.producer_id == producer.id && m.producer_epoch == 0));

    let c = coordinator(dir.path());
    let reloaded = c.describe("tx").unwrap();
    assert_eq!(reloaded.state, TxnState::CompleteCommit);
    assert!(reloaded.partitions.is_empty());
    assert_eq!(
        (reloaded.producer_id, reloaded.producer_epoch),
        (producer.id, 0)
    );
}

#[test]
fn a_new_producer_fences_the_old_one_and_aborts_its_transaction() {
    let dir = tempfile::tempdir().unwrap();
    let markers = Recorder::default();
    let new_id = ids();
    let c = coordinator(dir.path());
    let old = c
        .init_producer("tx", 10_000, None, FENCED, &new_id, &markers)
        .unwrap();
    c.add_partitions("tx", old, &parts(&[("a", 0)]), FENCED)
        .unwrap();
    let new = c
        .init_producer("tx", 10_000, None, FENCED, &new_id, &markers)
        .unwrap();
    assert_eq!(
        (new.id, new.epoch),
        (old.id, 2),
        "one bump to abort, one for the new producer"
    );
    let written = markers.markers.lock().clone();
    assert_eq!(written.len(), 1);
    assert!(!written[0].2.commit);
    assert_eq!(
        written[0].2.producer_epoch, 1,
        "the abort carries the bumped epoch"
    );
    assert_eq!(c.end_txn("tx", old, true, FENCED, &markers), Err(FENCED));
    assert_eq!(
        c.add_partitions(
            "tx",
            old,
            &parts(&[("a", 0)]),
            errors::INVALID_PRODUCER_EPOCH
        ),
        Err(errors::INVALID_PRODUCER_EPOCH)
    );
    assert_eq!(
        c.while_in_transaction(old, "a", 0, || ()).unwrap_err().0,
        errors::INVALID_PRODUCER_EPOCH
    );
    let stranger = ProducerRef { id: 1, epoch: 0 };
    assert_eq!(
        c.end_txn("tx", stranger, true, FENCED, &markers),
        Err(errors::INVALID_PRODUCER_ID_MAPPING)
    );
    assert_eq!(
        c.end_txn("nope", new, true, FENCED, &markers),
        Err(errors::INVALID_PRODUCER_ID_MAPPING)
    );
}

#[test]
fn timed_out_transactions_are_aborted_with_a_bumped_epoch() {
    let dir = tempfile::tempdir().unwrap();
    let markers = Recorder::default();
    let new_id = ids();
    let c = coordinator(dir.path());
    let p = c
        .init_producer("slow", 1_000, None, FENCED, &new_id, &markers)
        .unwrap();
    c.add_partitions("slow", p, &parts(&[("a", 3)]), FENCED)
        .unwrap();
    let started = c.describe("slow").unwrap().start_ms;
    c.tick(started + 999, &markers);
    assert_eq!(c.describe("slow").unwrap().state, TxnState::Ongoing);
    c.tick(started + 1_001, &markers);
    let after = c.describe("slow").unwrap();
    assert_eq!(after.state, TxnState::CompleteAbort);
    assert_eq!(after.producer_epoch, 1);
    assert_eq!(markers.markers.lock()[0].2.producer_epoch, 1);
    assert_eq!(c.end_txn("slow", p, true, FENCED, &markers), Err(FENCED));
}

#[test]
fn markers_that_cannot_be_written_are_retried_and_finished_after_a_restart() {
    let dir = tempfile::tempdir().unwrap();
    let markers = Recorder::default();
    let new_id = ids();
    let p = {
        let c = coordinator(dir.path());
        let p = c
            .init_producer("tx", 10_000, None, FENCED, &new_id, &markers)
            .unwrap();
        c.add_partitions("tx", p, &parts(&[("a", 0)]), FENCED)
            .unwrap();
        markers.failing.store(true, Ordering::SeqCst);
        // The end is accepted (PrepareCommit is durable) but cannot complete yet.
        c.end_txn("tx", p, true, FENCED, &markers).unwrap();
        assert_eq!(c.describe("tx").unwrap().state, TxnState::PrepareCommit);
        assert_eq!(
            c.add_partitions("tx", p, &parts(&[("a", 0)]), FENCED),
            Err(errors::CONCURRENT_TRANSACTIONS)
        );
        assert_eq!(
            c.init_producer("tx", 10_000, None, FENCED, &new_id, &markers),
            Err(errors::CONCURRENT_TRANSACTIONS)
        );
        p
    };
    markers.failing.store(false, Ordering::SeqCst);
    let c = coordinator(dir.path());
    assert_eq!(c.describe("tx").unwrap().state, TxnState::PrepareCommit);
    c.tick(sluice_storage::now_ms(), &markers);
    assert_eq!(c.describe("tx").unwrap().state, TxnState::CompleteCommit);
    let written = markers.markers.lock().clone();
    assert_eq!(written.len(), 1);
    assert!(written[0].2.commit && written[0].2.producer_id == p.id);
}

#[test]
fn idle_transactional_ids_expire() {
    let dir = tempfile::tempdir().unwrap();
    let markers = Recorder::default();
    let new_id = ids();
    {
        let c = coordinator(dir.path());
        c.init_producer("idle", 10_000, None, FENCED, &new_id, &markers)
            .unwrap();
        let busy = c
            .init_producer("busy", 10_000, None, FENCED, &new_id, &markers)
            .unwrap();
        c.add_partitions("busy", busy, &parts(&[("a", 0)]), FENCED)
            .unwrap();
        let later = sluice_storage::now_ms() + 3_600_001;
        // "busy" is open: it times out and is aborted rather than expired.
        c.tick(later, &markers);
        assert!(c.describe("idle").is_none());
        assert_eq!(c.list().len(), 1);
    }
    let c = coordinator(dir.path());
    assert!(c.describe("idle").is_none(), "the tombstone is durable");
    assert!(c.describe("busy").is_some());
}

#[test]
fn offsets_are_written_only_inside_an_open_transaction_that_added_them() {
    let dir = tempfile::tempdir().unwrap();
    let markers = Recorder::default();
    let new_id = ids();
    let c = coordinator(dir.path());
    let p = c
        .init_producer("tx", 10_000, None, FENCED, &new_id, &markers)
        .unwrap();
    let offsets = ("__consumer_offsets", 0);
    let write = || Ok::<_, i16>("written");
    c.add_partitions("tx", p, &parts(&[("a", 0)]), FENCED)
        .unwrap();
    assert_eq!(
        c.while_offsets_in_transaction("tx", p, offsets, write),
        Err(errors::INVALID_TXN_STATE),
        "AddOffsetsToTxn first"
    );
    c.add_partitions("tx", p, &parts(&[offsets]), FENCED)
        .unwrap();
    assert_eq!(
        c.while_offsets_in_transaction("tx", p, offsets, write),
        Ok("written")
    );
    let stale = ProducerRef {
        epoch: p.epoch + 1,
        ..p
    };
    assert_eq!(
        c.while_offsets_in_transaction("tx", stale, offsets, write),
        Err(errors::INVALID_PRODUCER_EPOCH)
    );
    c.end_txn("tx", p, true, FENCED, &markers).unwrap();
    assert_eq!(
        c.while_offsets_in_transaction("tx", p, offsets, write),
        Err(errors::INVALID_TXN_STATE),
        "the transaction is over"
    );
}
