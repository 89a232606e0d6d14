//! Writes to the active segment through a shared memory mapping instead of one `pwritev` per
//! append. The kernel charges a fixed cost per write call (about as much as copying 30 KiB
//! into the page cache), which capped appends of 16 KiB batches at about a third of what
//! the same bytes written 1 MiB at a time reach. Copying into a mapping of the file costs
//! only the copy: the file is first extended with `fallocate` (in steps doubling from 1 MiB,
//! so a full disk is an error here, not a SIGBUS later), and the pages ahead are faulted in with
//! `MADV_POPULATE_WRITE` 256 KiB at a time.
//!
//! What is copied is in the page cache the moment the copy ends, exactly as after a
//! `write`: readers (`pread`, `sendfile`) of the same file see it, a killed process loses
//! nothing of it, and `fdatasync` writes it out. The file is longer than the data while the
//! segment is active; [`MappedAppender::finish`] (on seal, close and drop) unmaps and cuts it
//! back to the data, and after a crash recovery cuts the zero tail as a torn one.

use std::fs::File;
use std::os::fd::AsRawFd;

/// Address space reserved per active segment: positions are `u32`, so a segment never
/// grows past this. Only what is allocated and touched costs memory.
const MAP_LEN: usize = 1 << 32;
/// The first allocation step.
const FIRST_STEP: u64 = 1 << 20;
/// Bytes faulted in ahead of the write position at a time.
const POPULATE_STEP: u64 = 1 << 20;
/// `MADV_POPULATE_WRITE` (Linux 5.14); older kernels answer EINVAL and pages fault lazily.
const MADV_POPULATE_WRITE: libc::c_int = 23;

/// A writable shared mapping of a segment file, with the file allocated up to some length.
#[derive(Debug)]
pub struct MappedAppender {
    base: *mut u8,
    /// The file is allocated (and sized) up to here.
    allocated: u64,
    /// Pages below this were faulted in.
    populated: u64,
    /// How much the next allocation adds: it starts small and doubles up to `max_step`, so a
    /// quiet partition holds little disk space ahead of its data and a busy one few calls.
    step: u64,
    /// The largest step.
    max_step: u64,
    populate: bool,
}

// SAFETY: the mapping is owned by the appender and only written through `&mut self`.
unsafe impl Send for MappedAppender {}
// SAFETY: shared references give no access to the mapping.
unsafe impl Sync for MappedAppender {}

impl MappedAppender {
    /// Maps `file`, whose current length is `len`; the file grows by steps doubling from
    /// 1 MiB up to `max_step`.
    pub fn new(file: &File, len: u64, max_step: u64) -> std::io::Result<Self> {
        // SAFETY: a fresh shared mapping of an open file descriptor; no existing memory is
        // affected, and the result is checked.
        let base = unsafe {
            libc::mmap(
                std::ptr::null_mut(),
                MAP_LEN,
                libc::PROT_READ | libc::PROT_WRITE,
                libc::MAP_SHARED,
                file.as_raw_fd(),
                0,
            )
        };
        if base == libc::MAP_FAILED {
            return Err(std::io::Error::last_os_error());
        }
        Ok(MappedAppender {
            base: base.cast(),
            allocated: len,
            populated: 0,
            step: FIRST_STEP.min(max_step).max(4096),
            max_step: max_step.max(4096),
            populate: true,
        })
    }

    /// Copies `parts` back to back to the file at `position`. Fails (writing nothing) when
    /// the file cannot be allocated that far (a full disk).
    pub fn write(&mut self, file: &File, parts: &[&[u8]], position: u64) -> std::io::Result<()> {
        let total: u64 = parts.iter().map(|p| p.len() as u64).sum();
        let end = position + total;
        if end > MAP_LEN as u64 {
            return Err(std::io::Error::other("segment would exceed 4 GiB"));
        }
        if end > self.allocated {
            self.allocate(file, end)?;
        }
        if self.populate && end > self.populated {
            let from = self.populated.max(position) & !4095;
            let to = (end + POPULATE_STEP).min(self.allocated);
            // SAFETY: [from, to) lies inside the mapping and inside the allocated file.
            let rc = unsafe {
                libc::madvise(
                    self.base.add(from as usize).cast(),
                    (to - from) as usize,
                    MADV_POPULATE_WRITE,
                )
            };
            if rc == 0 {
                self.populated = to;
            } else {
                self.populate = false;
            }
        }
        let mut at = position as usize;
        for part in parts {
            // SAFETY: [at, at + len) lies inside the mapping and the allocated file (checked
            // above), and nothing else writes this range.
            unsafe {
                std::ptr::copy_nonoverlapping(part.as_ptr(), self.base.add(at), part.len());
            }
            at += part.len();
        }
        Ok(())
    }

    /// Extends the allocation to cover `end`: a whole step if the disk has room, else just
    /// what is needed.
    fn allocate(&mut self, file: &File, end: u64) -> std::io::Result<()> {
        let wanted = end.max(self.allocated + self.step).min(MAP_LEN as u64);
        let fallocate = |to: u64| {
            // SAFETY: plain syscall on an open descriptor.
            let rc = unsafe {
                libc::fallocate(
                    file.as_raw_fd(),
                    0,
                    self.allocated as libc::off_t,
                    (to - self.allocated) as libc::off_t,
                )
            };
            if rc == 0 {
                Ok(())
            } else {
                Err(std::io::Error::last_os_error())
            }
        };
        match fallocate(wanted) {
            Ok(()) => {
                self.allocated = wanted;
                self.step = (self.step * 2).min(self.max_step);
            }
            Err(_) if wanted > end => {
                fallocate(end)?;
                self.allocated = end;
            }
            Err(e) => return Err(e),
        }
        Ok(())
    }

    /// Unmaps and cuts the file back to `len`, the end of the data.
    pub fn finish(self, file: &File, len: u64) -> std::io::Result<()> {
        drop(self);
        file.set_len(len)
    }
}

impl Drop for MappedAppender {
    fn drop(&mut self) {
        // SAFETY: `base` came from mmap with MAP_LEN and is unmapped once, here.
        unsafe {
            libc::munmap(self.base.cast(), MAP_LEN);
        }
    }
}

#[cfg(test)]
mod tests {
    use std::os::unix::fs::FileExt;

    use super::*;

    #[test]
    fn copies_are_visible_to_readers_at_once_and_finish_cuts_the_file_back() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("seg.log");
        let file = std::fs::OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(true)
            .open(&path)
            .unwrap();
        let mut appender = MappedAppender::new(&file, 0, 8192).unwrap();
        let mut expected = Vec::new();
        let mut position = 0u64;
        for i in 0..40u8 {
            let head = [i; 61];
            let body = vec![i.wrapping_mul(7); 300 + usize::from(i) * 13];
            appender.write(&file, &[&head, &body], position).unwrap();
            expected.extend_from_slice(&head);
            expected.extend_from_slice(&body);
            position += (head.len() + body.len()) as u64;
            // Another descriptor's pread sees the bytes without any flush.
            let mut back = vec![0u8; expected.len()];
            std::fs::File::open(&path)
                .unwrap()
                .read_exact_at(&mut back, 0)
                .unwrap();
            assert_eq!(back, expected);
        }
        let len = file.metadata().unwrap().len();
        assert!(len > position, "the file is allocated ahead of the data");
        assert_eq!(len % 8192, 0, "in steps");
        appender.finish(&file, position).unwrap();
        assert_eq!(std::fs::read(&path).unwrap(), expected);
    }
}
