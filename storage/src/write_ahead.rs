//! Small appends: zeros written ahead so they land in page-cache pages that already exist,
//! and a copy into a shared mapping of those pages instead of a write call per append.
//!
//! Why the zeros: on Linux a buffered write that extends a file allocates its page-cache
//! folios as it goes, and a folio can be no larger than the write and its alignment allow. A
//! 16 KiB batch written at an unaligned end of file gets several small folios, and
//! allocating them costs more than copying the bytes (measured here on ext4: 16,445-byte
//! writes to a fresh file ~1.7 GiB/s; the same writes over a region first written with
//! 128 KiB of zeros ~3.3 GiB/s, zeros included). One write of zeros per 128 KiB step makes
//! one large folio per step.
//!
//! Why the copy: the appends after only copy into those folios, and a `pwritev` per 16 KiB
//! batch costs a good part of the copy again. What is copied into the mapping is in the page
//! cache the moment the copy ends, as after a `write`: readers (`pread`, `sendfile`) see it,
//! a killed process loses nothing of it, and `fdatasync` writes it out. The mapping is a
//! window of [`WINDOW`] bytes that moves along with the appends, so a partition maps at most
//! that much of its file (mapping and unmapping cost per page too: smaller windows lose the
//! gain).
//!
//! Why this cannot fault: the copy only ever touches bytes below the file's length, in pages
//! the zeros were just written to, so the file system has already reserved their blocks
//! (ext4's delayed allocation) and a write fault on them needs no allocation: a full disk is
//! an error from the write of zeros, never a `SIGBUS` in the copy. When that write fails the
//! segment cuts the file back and appends with `pwritev` from then on, without zeros, so they
//! never make an append fail that would have fitted. Large appends (a busy producer's batch
//! is often hundreds of KiB) get large folios from their own write and use `pwritev`.
//!
//! The cost is that the active segment's file can be up to one step longer than its data,
//! with zeros past the data. The log never reads past its published size; sealing and
//! closing cut the file back ([`WriteAhead::cut_back`]); after a crash, recovery finds no
//! batch at the zeros and cuts them as a clean tail.

use std::fs::File;
use std::os::unix::fs::FileExt;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};

use parking_lot::Mutex;

/// Zeros are written ahead up to the next multiple of this many bytes.
pub const WRITE_AHEAD_STEP: u64 = 128 << 10;

/// Appends smaller than this are copied in; larger ones use `pwritev`.
pub const SMALL_APPEND: u64 = 64 << 10;

/// Bytes of the file mapped at a time (plus [`SMALL_APPEND`], so an append that starts in
/// the window always ends in it).
pub const WINDOW: u64 = 4 << 20;

/// One step of zeros to write from (a `static` of zeros sits in the zero-filled data segment
/// and costs nothing until read).
static ZEROS: [u8; WRITE_AHEAD_STEP as usize] = [0; WRITE_AHEAD_STEP as usize];

/// What a segment knows about its file's length beyond its data, and the window small
/// appends are copied into.
#[derive(Debug)]
pub struct WriteAhead {
    /// The file's length as far as this segment made it (at least the data's end).
    file_len: AtomicU64,
    /// Set after a write of zeros failed: the segment appends with `pwritev` from then on.
    off: AtomicBool,
    /// The mapped part of the file. Only the appender uses it (appends to a segment are
    /// serialised by its partition's writer lock), so the lock is never contended.
    window: Mutex<Option<Window>>,
}

/// A shared, writable mapping of `[offset, offset + map.len())` of the segment file.
#[derive(Debug)]
struct Window {
    offset: u64,
    map: memmap2::MmapMut,
}

impl Window {
    /// Maps the window of `file` that holds `position`: from the [`WINDOW`] boundary at or
    /// below it, [`WINDOW`] + [`SMALL_APPEND`] bytes.
    fn map(file: &File, position: u64) -> std::io::Result<Self> {
        let offset = position / WINDOW * WINDOW;
        // SAFETY: a shared mapping of our own segment file, which only this segment writes,
        // cuts or deletes; the mapping is dropped before the file is cut.
        let map = unsafe {
            memmap2::MmapOptions::new()
                .offset(offset)
                .len((WINDOW + SMALL_APPEND) as usize)
                .map_mut(file)?
        };
        Ok(Window { offset, map })
    }

    fn covers(&self, from: u64, to: u64) -> bool {
        from >= self.offset && to <= self.offset + self.map.len() as u64
    }
}

impl WriteAhead {
    /// For a segment file whose length is `file_len` bytes.
    pub fn new(file_len: u64) -> Self {
        WriteAhead {
            file_len: AtomicU64::new(file_len),
            off: AtomicBool::new(false),
            window: Mutex::new(None),
        }
    }

    /// Writes an append of `parts` (`len` bytes in all) at `position`, the data's end, if it
    /// is small: zeros up to the next step boundary first when it passes the file's length,
    /// then a copy into the mapped window. Returns false, having written nothing of the
    /// data, when the append is large, the segment no longer writes ahead, or the zeros or
    /// the mapping failed (the caller then writes it with `pwritev`).
    pub fn copy_small(&self, file: &File, parts: &[&[u8]], position: u64, len: u64) -> bool {
        if len >= SMALL_APPEND || self.off.load(Ordering::Acquire) {
            return false;
        }
        let end = position + len;
        let file_len = self.file_len.load(Ordering::Acquire).max(position);
        if end > file_len {
            let to = end.div_ceil(WRITE_AHEAD_STEP) * WRITE_AHEAD_STEP;
            if write_zeros(file, file_len, to).is_err() {
                // Maybe only the zeros do not fit (a nearly full disk): never fail an append
                // for them. Cut them off and stop writing ahead in this segment.
                self.turn_off();
                let _ = self.truncate(file, position);
                return false;
            }
            self.wrote_to(to);
        }
        let mut window = self.window.lock();
        let w = match window.take() {
            Some(w) if w.covers(position, end) => window.insert(w),
            stale => {
                drop(stale); // unmapped before the next window is mapped
                match Window::map(file, position) {
                    Ok(w) => window.insert(w),
                    Err(e) => {
                        drop(window);
                        tracing::warn!(error = %e, "cannot map a segment file; appending with pwritev");
                        self.turn_off();
                        return false;
                    }
                }
            }
        };
        // Every byte copied is below the file's length, in pages the zeros were written to.
        debug_assert!(end <= self.file_len.load(Ordering::Acquire));
        let mut at = (position - w.offset) as usize;
        for part in parts {
            w.map[at..at + part.len()].copy_from_slice(part);
            at += part.len();
        }
        true
    }

    /// Records that the file now reaches at least `end`.
    pub fn wrote_to(&self, end: u64) {
        self.file_len.fetch_max(end, Ordering::AcqRel);
    }

    /// Stops writing zeros ahead and copying for this segment.
    pub fn turn_off(&self) {
        self.off.store(true, Ordering::Release);
        *self.window.lock() = None;
    }

    /// Cuts the file back to the data's `size` if zeros were written past it, and unmaps the
    /// window (the segment is being sealed or dropped).
    pub fn cut_back(&self, file: &File, size: u64) -> std::io::Result<()> {
        *self.window.lock() = None;
        if self.file_len.load(Ordering::Acquire) > size {
            self.truncate(file, size)?;
        }
        Ok(())
    }

    /// Cuts the file to `size` whatever its recorded length: after a failed write, which may
    /// have written part of its bytes.
    pub fn truncate(&self, file: &File, size: u64) -> std::io::Result<()> {
        *self.window.lock() = None;
        file.set_len(size)?;
        self.file_len.store(size, Ordering::Release);
        Ok(())
    }
}

/// Writes zeros over `[from, to)` of `file`, a step at a time.
fn write_zeros(file: &File, from: u64, to: u64) -> std::io::Result<()> {
    let mut at = from;
    while at < to {
        let n = (to - at).min(WRITE_AHEAD_STEP);
        file.write_all_at(&ZEROS[..n as usize], at)?;
        at += n;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn len_of(file: &File) -> u64 {
        file.metadata().unwrap().len()
    }

    fn new_file(dir: &tempfile::TempDir) -> File {
        File::options()
            .read(true)
            .write(true)
            .create(true)
            .truncate(true)
            .open(dir.path().join("f"))
            .unwrap()
    }

    #[test]
    fn small_appends_are_copied_after_zeros_to_the_next_step_and_cut_back_restores_the_data_length()
    {
        let dir = tempfile::tempdir().unwrap();
        let file = new_file(&dir);
        let ahead = WriteAhead::new(0);
        let mut end = 0u64;
        let appends = (2 * WINDOW / 16_445 + 3) as u32; // the window moves twice
        for i in 0..appends {
            let data = vec![(i % 250 + 1) as u8; 16_445];
            assert!(ahead.copy_small(&file, &[&data[..100], &data[100..]], end, 16_445));
            end += 16_445;
            assert_eq!(
                len_of(&file),
                end.div_ceil(WRITE_AHEAD_STEP) * WRITE_AHEAD_STEP
            );
            // A reader of the file sees the copy at once.
            let mut back = vec![0u8; 16_445];
            file.read_exact_at(&mut back, end - 16_445).unwrap();
            assert_eq!(back, data);
        }
        let bytes = std::fs::read(dir.path().join("f")).unwrap();
        for (i, chunk) in bytes[..end as usize].chunks(16_445).enumerate() {
            assert!(
                chunk.iter().all(|b| *b == (i % 250 + 1) as u8),
                "append {i}"
            );
        }
        assert!(bytes[end as usize..].iter().all(|b| *b == 0));
        ahead.cut_back(&file, end).unwrap();
        assert_eq!(len_of(&file), end);
        // Appends go on after a cut back.
        assert!(ahead.copy_small(&file, &[b"more"], end, 4));
        file.read_exact_at(&mut [0u8; 4], end).unwrap();
    }

    #[test]
    fn a_file_that_cannot_be_mapped_turns_copying_off() {
        let dir = tempfile::tempdir().unwrap();
        // A shared writable mapping needs a file opened for reading too.
        let file = File::options()
            .write(true)
            .create(true)
            .truncate(true)
            .open(dir.path().join("f"))
            .unwrap();
        let ahead = WriteAhead::new(0);
        assert!(!ahead.copy_small(&file, &[b"x"], 0, 1));
        assert!(
            ahead.off.load(Ordering::Acquire),
            "copying is off after the failure"
        );
        assert!(!ahead.copy_small(&file, &[b"y"], 0, 1));
    }

    #[test]
    fn large_appends_and_a_turned_off_segment_are_not_copied() {
        let dir = tempfile::tempdir().unwrap();
        let file = new_file(&dir);
        let ahead = WriteAhead::new(0);
        let big = vec![1u8; SMALL_APPEND as usize];
        assert!(!ahead.copy_small(&file, &[&big], 0, SMALL_APPEND));
        assert_eq!(len_of(&file), 0, "nothing written for a large append");
        ahead.turn_off();
        assert!(!ahead.copy_small(&file, &[b"x"], 0, 1));
        assert_eq!(len_of(&file), 0);
    }
}
