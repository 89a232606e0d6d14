//! The broker's lifecycle: open the storage, accept connections, and on Ctrl-C or SIGTERM
//! stop accepting, let connections finish, then flush and close every log.

use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use tokio::net::TcpListener;
use tokio::sync::watch;
use tokio::task::JoinSet;

use crate::broker::Broker;
use crate::config::BrokerConfig;
use crate::connection::serve_connection;

/// How long connections get to finish after a shutdown signal before they are dropped.
const DRAIN_TIMEOUT: Duration = Duration::from_secs(5);

/// Runs the broker until a shutdown signal.
pub async fn serve(config: BrokerConfig) -> anyhow::Result<()> {
    let opening = config.clone();
    let broker = Arc::new(tokio::task::spawn_blocking(move || Broker::open(opening)).await??);
    let store = broker.store.clone();
    store.start_maintenance(config.maintenance());
    let listener = TcpListener::bind(&config.listen)
        .await
        .with_context(|| format!("cannot listen on {}", config.listen))?;
    tracing::info!(
        listen = %listener.local_addr()?,
        data_dir = %config.data_dir.display(),
        partitions = store.all().len(),
        "sluice is ready"
    );

    let ticker = tokio::spawn(group_ticker(broker.clone()));
    let txn_ticker = tokio::spawn(transaction_ticker(broker.clone()));
    let (stop_tx, stop_rx) = watch::channel(false);
    let mut connections = JoinSet::new();
    let shutdown = shutdown_signal();
    tokio::pin!(shutdown);
    loop {
        tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok((socket, peer)) => {
                    let stop = stop_rx.clone();
                    connections.spawn(serve_connection(broker.clone(), socket, peer, stop));
                }
                Err(e) => tracing::warn!(error = %e, "accept failed"),
            },
            Some(_) = connections.join_next(), if !connections.is_empty() => {}
            signal = &mut shutdown => {
                tracing::info!(signal, "shutting down");
                break;
            }
        }
    }
    drop(listener);
    let _ = stop_tx.send(true);
    let drained = tokio::time::timeout(DRAIN_TIMEOUT, async {
        while connections.join_next().await.is_some() {}
    })
    .await;
    if drained.is_err() {
        tracing::warn!(
            open = connections.len(),
            "closing connections that did not finish"
        );
        connections.shutdown().await;
    }
    ticker.abort();
    txn_ticker.abort();
    drop(broker);
    tokio::task::spawn_blocking(move || store.shutdown())
        .await?
        .context("flushing logs on shutdown failed")?;
    tracing::info!("shutdown complete: logs flushed and closed");
    Ok(())
}

/// Drives the group coordinator's timers: session expiry, rebalance and initial delays,
/// offsets retention.
async fn group_ticker(broker: Arc<Broker>) {
    let mut every = tokio::time::interval(Duration::from_millis(100));
    every.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Skip);
    loop {
        every.tick().await;
        let groups = broker.groups.clone();
        let _ = tokio::task::spawn_blocking(move || groups.tick()).await;
    }
}

/// Drives the transaction coordinator: aborts timed-out transactions, retries markers,
/// expires idle transactional ids.
async fn transaction_ticker(broker: Arc<Broker>) {
    let period = broker
        .config
        .transaction_abort_timed_out_transaction_cleanup_interval_ms;
    let mut every = tokio::time::interval(Duration::from_millis(period));
    every.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Skip);
    loop {
        every.tick().await;
        let broker = broker.clone();
        let _ = tokio::task::spawn_blocking(move || {
            broker.transactions.tick(sluice_storage::now_ms(), &*broker)
        })
        .await;
    }
}

/// Resolves on Ctrl-C (SIGINT) or SIGTERM with the signal's name.
async fn shutdown_signal() -> &'static str {
    let mut term = match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
        Ok(s) => s,
        Err(e) => {
            tracing::error!(error = %e, "cannot listen for SIGTERM; only Ctrl-C will stop sluice");
            let _ = tokio::signal::ctrl_c().await;
            return "SIGINT";
        }
    };
    tokio::select! {
        _ = tokio::signal::ctrl_c() => "SIGINT",
        _ = term.recv() => "SIGTERM",
    }
}
