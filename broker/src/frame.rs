//! Kafka framing: every request and response is a 4-byte big-endian length then that many
//! bytes. The length is checked against `socket.request.max.bytes` before anything is
//! allocated for it, and the buffer grows only as bytes actually arrive.

use bytes::{Bytes, BytesMut};
use tokio::io::{AsyncRead, AsyncReadExt};

/// Why a frame could not be read; each closes the connection.
#[derive(Debug, thiserror::Error)]
pub enum FrameError {
    /// The length prefix is negative or above the limit.
    #[error("request length {length} is outside 0..={limit} (socket.request.max.bytes)")]
    BadLength {
        /// The length the client sent.
        length: i32,
        /// The configured limit.
        limit: usize,
    },
    /// The peer closed the connection in the middle of a frame.
    #[error("connection closed after {got} of {want} bytes of a request")]
    Truncated {
        /// Bytes received.
        got: usize,
        /// Bytes announced.
        want: usize,
    },
    /// A socket error.
    #[error("socket error: {0}")]
    Io(#[from] std::io::Error),
}

/// Largest buffer allocated for a frame before its bytes arrive.
const INITIAL_BUFFER: usize = 4 * 1024 * 1024;

/// Reads one frame. `Ok(None)` when the peer closed the connection between frames.
pub async fn read_frame<R: AsyncRead + Unpin>(
    reader: &mut R,
    limit: usize,
) -> Result<Option<Bytes>, FrameError> {
    let mut len = [0u8; 4];
    match reader.read_exact(&mut len).await {
        Ok(_) => {}
        Err(e) if e.kind() == std::io::ErrorKind::UnexpectedEof => return Ok(None),
        Err(e) => return Err(e.into()),
    }
    let length = i32::from_be_bytes(len);
    if length < 0 || length as usize > limit {
        return Err(FrameError::BadLength { length, limit });
    }
    let want = length as usize;
    // Typical requests (up to a few MiB) get their whole buffer at once, so the bytes are
    // copied exactly once; a larger claim grows only as its bytes arrive.
    let mut buf = BytesMut::with_capacity(want.min(INITIAL_BUFFER));
    while buf.len() < want {
        if buf.capacity() == buf.len() {
            buf.reserve((want - buf.len()).min(buf.len().max(INITIAL_BUFFER)));
        }
        let room = (want - buf.len()).min(buf.capacity() - buf.len());
        let n = (&mut *reader).take(room as u64).read_buf(&mut buf).await?;
        if n == 0 {
            return Err(FrameError::Truncated {
                got: buf.len(),
                want,
            });
        }
    }
    Ok(Some(buf.freeze()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn reads_frames_and_refuses_bad_lengths() {
        let mut input: &[u8] = &[0, 0, 0, 3, 1, 2, 3, 0, 0, 0, 0];
        assert_eq!(
            read_frame(&mut input, 10).await.unwrap().unwrap().as_ref(),
            &[1, 2, 3]
        );
        assert_eq!(read_frame(&mut input, 10).await.unwrap().unwrap().len(), 0);
        assert!(read_frame(&mut input, 10).await.unwrap().is_none());
        let mut huge: &[u8] = &[0x7f, 0xff, 0xff, 0xff];
        assert!(matches!(
            read_frame(&mut huge, 10).await,
            Err(FrameError::BadLength { .. })
        ));
        let mut negative: &[u8] = &[0xff, 0xff, 0xff, 0xff];
        assert!(matches!(
            read_frame(&mut negative, 10).await,
            Err(FrameError::BadLength { .. })
        ));
        let mut short: &[u8] = &[0, 0, 0, 9, 1];
        assert!(matches!(
            read_frame(&mut short, 10).await,
            Err(FrameError::Truncated { got: 1, want: 9 })
        ));
    }
}
