//! A byte range of a segment file, handed to readers instead of decoded records so a fetch
//! can be served by `pread` or `sendfile` without touching the records.

use std::fs::File;
use std::os::unix::fs::FileExt;
use std::sync::Arc;

use bytes::Bytes;

/// A range of whole record batches in one segment file. Holding it keeps the file open, so
/// it stays readable even if retention or compaction removes the segment meanwhile.
#[derive(Debug, Clone)]
pub struct FileSlice {
    file: Arc<File>,
    position: u64,
    len: u64,
}

impl FileSlice {
    pub(crate) fn new(file: Arc<File>, position: u64, len: u64) -> Self {
        FileSlice {
            file,
            position,
            len,
        }
    }

    /// The open segment file (for zero-copy senders such as `sendfile`).
    pub fn file(&self) -> &File {
        &self.file
    }

    /// Byte position of the range in the file.
    pub fn position(&self) -> u64 {
        self.position
    }

    /// Length of the range in bytes.
    pub fn len(&self) -> u64 {
        self.len
    }

    /// True for an empty range.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Appends the bytes of the range to `out` with positional reads.
    pub fn read_into(&self, out: &mut Vec<u8>) -> std::io::Result<()> {
        let start = out.len();
        out.resize(start + self.len as usize, 0);
        self.file.read_exact_at(&mut out[start..], self.position)
    }

    /// Copies the range into memory.
    pub fn to_bytes(&self) -> std::io::Result<Bytes> {
        let mut out = Vec::with_capacity(self.len as usize);
        self.read_into(&mut out)?;
        Ok(Bytes::from(out))
    }
}
