//! A global allocator that makes huge, never-touched allocations harmless.
//!
//! The kafka-protocol crate's decoders call `Vec::with_capacity(n)` with an array length `n`
//! read off the wire before decoding a single element (an open upstream issue). A 10-byte
//! request can claim two billion elements; the system allocator refuses a multi-hundred-GB
//! request and Rust aborts the process, which a panic handler cannot catch. This allocator
//! serves requests above [`HUGE`] with `mmap(MAP_NORESERVE)`, which reserves address space
//! without committing memory: the decoder then fails on the missing bytes after touching at
//! most a page, the vector is dropped and unmapped, and the connection gets an error instead
//! of the broker dying. Everything smaller goes to the system allocator unchanged.

use std::alloc::{GlobalAlloc, Layout, System};

/// Allocations at least this large are served by `mmap`.
const HUGE: usize = 1 << 30;

/// The broker binary's global allocator (see the module documentation).
pub struct GuardedAllocator;

// SAFETY: every method forwards to `System` or to mmap/munmap with the same size, keeping
// GlobalAlloc's contract: returned memory is valid for `layout`, freed with the same layout.
unsafe impl GlobalAlloc for GuardedAllocator {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        if layout.size() >= HUGE && layout.align() <= 4096 {
            // SAFETY: anonymous private mapping; no file descriptor, no aliasing.
            let ptr = unsafe {
                libc::mmap(
                    std::ptr::null_mut(),
                    layout.size(),
                    libc::PROT_READ | libc::PROT_WRITE,
                    libc::MAP_PRIVATE | libc::MAP_ANONYMOUS | libc::MAP_NORESERVE,
                    -1,
                    0,
                )
            };
            return if ptr == libc::MAP_FAILED {
                std::ptr::null_mut()
            } else {
                ptr.cast()
            };
        }
        // SAFETY: forwarded with the caller's layout.
        unsafe { System.alloc(layout) }
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        if layout.size() >= HUGE && layout.align() <= 4096 {
            // SAFETY: `ptr` came from the mmap above with this exact size.
            unsafe { libc::munmap(ptr.cast(), layout.size()) };
            return;
        }
        // SAFETY: `ptr` came from System.alloc with this layout.
        unsafe { System.dealloc(ptr, layout) }
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        let huge = |size: usize| size >= HUGE && layout.align() <= 4096;
        if !huge(layout.size()) && !huge(new_size) {
            // SAFETY: both sizes are System's; forwarded unchanged.
            return unsafe { System.realloc(ptr, layout, new_size) };
        }
        // SAFETY: new layout has the caller's alignment and a non-zero size.
        let new_layout = unsafe { Layout::from_size_align_unchecked(new_size, layout.align()) };
        // SAFETY: allocate, copy the overlapping prefix, free the old block.
        unsafe {
            let new_ptr = self.alloc(new_layout);
            if !new_ptr.is_null() {
                std::ptr::copy_nonoverlapping(ptr, new_ptr, layout.size().min(new_size));
                self.dealloc(ptr, layout);
            }
            new_ptr
        }
    }
}
