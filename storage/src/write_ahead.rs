//! Zeros written ahead of small appends, so later appends land in page-cache pages that
//! already exist.
//!
//! Why: on Linux a buffered write that extends a file allocates its page-cache folios as it
//! goes, and a folio can be no larger than the write and its alignment allow. A 16 KiB batch
//! written at an unaligned end of file gets several small folios, and allocating them costs
//! more than copying the bytes (measured here on ext4: 16,445-byte writes to a fresh file
//! ~1.7 GiB/s; the same writes when each one that crosses a 128 KiB boundary also writes
//! zeros up to the next boundary ~3.3 GiB/s, zeros included). The zeros make one large folio
//! per step; the appends after only copy into it. Large appends (a busy producer's batch is
//! often hundreds of KiB) already get large folios and are left alone.
//!
//! The zeros go out in the same `pwritev` as the append that crosses into a new step. The
//! cost is that the active segment's file can be up to one step longer than its data, with
//! zeros past the data. The log never reads past its published size; sealing and closing cut
//! the file back ([`WriteAhead::cut_back`]); after a crash, recovery finds no batch at the
//! zeros and cuts them as a clean tail. If an append with zeros fails (a nearly full disk),
//! the segment retries it without them and stops writing ahead: the zeros never make an
//! append fail that would have fitted.

use std::fs::File;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};

/// Zeros are written ahead up to the next multiple of this many bytes.
pub const WRITE_AHEAD_STEP: u64 = 128 << 10;

/// Appends smaller than this get zeros written after them.
pub const SMALL_APPEND: u64 = 64 << 10;

/// One step of zeros to write from (a `static` of zeros sits in the zero-filled data segment
/// and costs nothing until read).
static ZEROS: [u8; WRITE_AHEAD_STEP as usize] = [0; WRITE_AHEAD_STEP as usize];

/// What a segment knows about its file's length beyond its data.
#[derive(Debug)]
pub struct WriteAhead {
    /// The file's length as far as this segment made it (at least the data's end).
    file_len: AtomicU64,
    /// Set after an append with zeros failed: the segment appends without them from then on.
    off: AtomicBool,
}

impl WriteAhead {
    /// For a segment file whose length is `file_len` bytes.
    pub fn new(file_len: u64) -> Self {
        WriteAhead {
            file_len: AtomicU64::new(file_len),
            off: AtomicBool::new(false),
        }
    }

    /// The zeros to write right after an append of `len` bytes at `position` (the data's
    /// end), in the same write: up to the next step boundary when the append is small and
    /// extends the file; empty otherwise.
    pub fn zeros_after(&self, position: u64, len: u64) -> &'static [u8] {
        let end = position + len;
        if len >= SMALL_APPEND
            || end <= self.file_len.load(Ordering::Acquire)
            || self.off.load(Ordering::Acquire)
        {
            return &[];
        }
        let to = end.div_ceil(WRITE_AHEAD_STEP) * WRITE_AHEAD_STEP;
        &ZEROS[..(to - end) as usize]
    }

    /// Records that the file now reaches at least `end`.
    pub fn wrote_to(&self, end: u64) {
        self.file_len.fetch_max(end, Ordering::AcqRel);
    }

    /// Stops writing zeros ahead for this segment (an append with them failed).
    pub fn turn_off(&self) {
        self.off.store(true, Ordering::Release);
    }

    /// Cuts the file back to the data's `size` if zeros were written past it.
    pub fn cut_back(&self, file: &File, size: u64) -> std::io::Result<()> {
        if self.file_len.load(Ordering::Acquire) > size {
            self.truncate(file, size)?;
        }
        Ok(())
    }

    /// Cuts the file to `size` whatever its recorded length: after a failed write, which may
    /// have written part of its bytes.
    pub fn truncate(&self, file: &File, size: u64) -> std::io::Result<()> {
        file.set_len(size)?;
        self.file_len.store(size, Ordering::Release);
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::FileExt;

    fn len_of(file: &File) -> u64 {
        file.metadata().unwrap().len()
    }

    #[test]
    fn small_appends_carry_zeros_to_the_next_step_and_cut_back_restores_the_data_length() {
        let dir = tempfile::tempdir().unwrap();
        let file = File::options()
            .read(true)
            .write(true)
            .create(true)
            .truncate(true)
            .open(dir.path().join("f"))
            .unwrap();
        let ahead = WriteAhead::new(0);
        let data = vec![7u8; 16_445];
        let mut end = 0;
        let mut zero_writes = 0;
        for _ in 0..10 {
            let zeros = ahead.zeros_after(end, data.len() as u64);
            file.write_all_at(&data, end).unwrap();
            end += data.len() as u64;
            file.write_all_at(zeros, end).unwrap();
            ahead.wrote_to(end + zeros.len() as u64);
            zero_writes += usize::from(!zeros.is_empty());
            assert_eq!(
                len_of(&file),
                end.div_ceil(WRITE_AHEAD_STEP) * WRITE_AHEAD_STEP
            );
        }
        // 10 appends of ~16 KiB cross into two 128 KiB steps.
        assert_eq!(zero_writes, 2);
        let bytes = std::fs::read(dir.path().join("f")).unwrap();
        assert!(bytes[..end as usize].iter().all(|b| *b == 7));
        assert!(bytes[end as usize..].iter().all(|b| *b == 0));
        ahead.cut_back(&file, end).unwrap();
        assert_eq!(len_of(&file), end);
    }

    #[test]
    fn large_appends_and_a_turned_off_segment_get_no_zeros() {
        let ahead = WriteAhead::new(0);
        assert!(ahead.zeros_after(0, SMALL_APPEND).is_empty());
        assert_eq!(
            ahead.zeros_after(0, 100).len() as u64,
            WRITE_AHEAD_STEP - 100
        );
        ahead.turn_off();
        assert!(ahead.zeros_after(0, 100).is_empty());
    }
}
