//! One client connection: requests are read, handled and answered strictly in order (Kafka
//! clients rely on it); a long-polling fetch waits only on its own connection's task.

use std::net::SocketAddr;

use tokio::io::AsyncWriteExt;
use tokio::net::TcpStream;
use tokio::sync::watch;

use crate::broker::Broker;
use crate::dispatch::{dispatch, Reply};
use crate::frame::read_frame;

/// Serves `socket` until the client disconnects, sends something we must refuse, or the
/// broker shuts down (checked between requests).
pub async fn serve_connection(
    broker: std::sync::Arc<Broker>,
    socket: TcpStream,
    peer: SocketAddr,
    mut stop: watch::Receiver<bool>,
) {
    let _ = socket.set_nodelay(true);
    let (mut reader, mut writer) = socket.into_split();
    let limit = broker.config.socket_request_max_bytes;
    loop {
        let frame = tokio::select! {
            frame = read_frame(&mut reader, limit) => frame,
            _ = stop.changed() => break,
        };
        let frame = match frame {
            Ok(Some(frame)) => frame,
            Ok(None) => break,
            Err(e) => {
                tracing::warn!(%peer, error = %e, "closing connection");
                break;
            }
        };
        match dispatch(&broker, frame).await {
            Reply::Send(bytes) => {
                if let Err(e) = writer.write_all(&bytes).await {
                    tracing::debug!(%peer, error = %e, "client went away");
                    break;
                }
            }
            Reply::Silent => {}
            Reply::Close(reason) => {
                tracing::warn!(%peer, %reason, "closing connection");
                break;
            }
        }
    }
}
