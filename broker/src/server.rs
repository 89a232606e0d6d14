//! The broker's lifecycle: open the storage, accept connections, and on Ctrl-C or SIGTERM
//! stop accepting, let connections finish, then flush and close every log.

use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use sluice_storage::LogStore;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;
use tokio::task::JoinSet;

use crate::config::BrokerConfig;

/// How long connections get to finish after a shutdown signal before they are dropped.
const DRAIN_TIMEOUT: Duration = Duration::from_secs(5);

/// Runs the broker until a shutdown signal.
pub async fn serve(config: BrokerConfig) -> anyhow::Result<()> {
    let defaults = config.topic_defaults()?;
    let dir = config.data_dir.clone();
    let store = tokio::task::spawn_blocking(move || LogStore::open(&dir, |_| defaults.clone()))
        .await?
        .with_context(|| format!("cannot open data directory {}", config.data_dir.display()))?;
    let store = Arc::new(store);
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

    let (stop_tx, stop_rx) = watch::channel(false);
    let mut connections = JoinSet::new();
    let shutdown = shutdown_signal();
    tokio::pin!(shutdown);
    loop {
        tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok((socket, peer)) => {
                    let stop = stop_rx.clone();
                    connections.spawn(async move { handle_connection(socket, peer, stop).await });
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
        tracing::warn!(open = connections.len(), "closing connections that did not finish");
        connections.shutdown().await;
    }
    tokio::task::spawn_blocking(move || store.shutdown())
        .await?
        .context("flushing logs on shutdown failed")?;
    tracing::info!("shutdown complete: logs flushed and closed");
    Ok(())
}

async fn handle_connection(
    socket: TcpStream,
    peer: std::net::SocketAddr,
    _stop: watch::Receiver<bool>,
) {
    tracing::warn!(%peer, "the Kafka wire protocol is not implemented yet; closing the connection");
    drop(socket);
}

/// Resolves on Ctrl-C (SIGINT) or SIGTERM with the signal's name.
async fn shutdown_signal() -> &'static str {
    let mut term = match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
    {
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
