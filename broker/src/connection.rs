//! One client connection: requests are read, handled and answered strictly in order (Kafka
//! clients rely on it); a long-polling fetch waits only on its own connection's task.

use std::net::SocketAddr;

use std::os::fd::AsRawFd;

use bytes::BytesMut;
use sluice_storage::FileSlice;
use tokio::io::{AsyncWriteExt, Interest};
use tokio::net::tcp::OwnedWriteHalf;
use tokio::net::TcpStream;
use tokio::sync::watch;

use crate::broker::Broker;
use crate::dispatch::{dispatch, Reply};
use crate::fetch_encode::Chunk;
use crate::frame::read_frame;

/// Bytes a connection reads ahead of the request it is parsing.
const READ_BUFFER_BYTES: usize = 8 * 1024;

/// Serves `socket` until the client disconnects, sends something we must refuse, or the
/// broker shuts down (checked between requests).
pub async fn serve_connection(
    broker: std::sync::Arc<Broker>,
    socket: TcpStream,
    peer: SocketAddr,
    mut stop: watch::Receiver<bool>,
) {
    let _ = socket.set_nodelay(true);
    let (reader, mut writer) = socket.into_split();
    // Small requests (fetches, heartbeats, metadata, produce requests of a few records) come
    // in with their length prefix in one read instead of two; reads of more than the buffer
    // bypass it, so large produce bodies are still copied once.
    let mut reader = tokio::io::BufReader::with_capacity(READ_BUFFER_BYTES, reader);
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
        match dispatch(&broker, frame, Some(peer)).await {
            Reply::Send(bytes) => {
                if let Err(e) = writer.write_all(&bytes).await {
                    tracing::debug!(%peer, error = %e, "client went away");
                    break;
                }
            }
            Reply::Chunks(chunks) => {
                if let Err(e) = write_chunks(&mut writer, chunks).await {
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

/// Writes a chunked frame: byte chunks are coalesced into as few writes as possible, file
/// ranges go from page cache to the socket with sendfile.
async fn write_chunks(writer: &mut OwnedWriteHalf, chunks: Vec<Chunk>) -> std::io::Result<()> {
    let mut pending = BytesMut::new();
    for chunk in chunks {
        match chunk {
            Chunk::Bytes(bytes) => pending.extend_from_slice(&bytes),
            Chunk::File(slice) => {
                if !pending.is_empty() {
                    writer.write_all(&pending.split()).await?;
                }
                sendfile_all(writer, &slice).await?;
            }
        }
    }
    if !pending.is_empty() {
        writer.write_all(&pending).await?;
    }
    Ok(())
}

/// Sends a whole file range to the socket with sendfile(2), waiting for writability when
/// the socket buffer is full.
async fn sendfile_all(writer: &OwnedWriteHalf, slice: &FileSlice) -> std::io::Result<()> {
    let socket: &TcpStream = writer.as_ref();
    let file_fd = slice.file().as_raw_fd();
    let mut offset = slice.position() as libc::off_t;
    let end = offset + slice.len() as libc::off_t;
    while offset < end {
        socket.writable().await?;
        let sent = socket.try_io(Interest::WRITABLE, || {
            let count = (end - offset) as usize;
            // SAFETY: both descriptors are open for the duration of the call (the socket is
            // borrowed, the file is kept open by `slice`); `offset` is a valid pointer.
            let n = unsafe { libc::sendfile(socket.as_raw_fd(), file_fd, &mut offset, count) };
            if n < 0 {
                Err(std::io::Error::last_os_error())
            } else {
                Ok(n as usize)
            }
        });
        match sent {
            Ok(0) => {
                return Err(std::io::Error::new(
                    std::io::ErrorKind::UnexpectedEof,
                    "segment file ended before the range being sent",
                ))
            }
            Ok(_) => {}
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {}
            Err(e) => return Err(e),
        }
    }
    Ok(())
}
