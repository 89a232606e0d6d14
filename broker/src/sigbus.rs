//! Says why the process dies on SIGBUS. Small appends are copied into a shared mapping of the
//! active segment (see `sluice_storage::write_ahead`); a page of it that cannot be read or
//! written (a disk I/O error, a file system shut down, a segment file truncated by another
//! program) raises SIGBUS, which kills the process. Without a word it would look like a
//! random crash; this handler writes one line naming the likely causes first.

/// The line written to standard error.
const MESSAGE: &[u8] = b"sluice: SIGBUS: a page of a memory-mapped segment file could not be \
read or written (a disk I/O error, a file system shut down, or a segment file truncated or \
removed by another program); stopping. Records acknowledged before are in the page cache or \
on disk; start sluice again once the disk is healthy and it recovers the logs.\n";

extern "C" fn on_sigbus(_signal: libc::c_int) {
    // Only async-signal-safe calls: write the line, restore the default action and raise
    // the signal again, so the process still dies of SIGBUS (exit status, core dump policy).
    // SAFETY: `MESSAGE` is a static buffer; write, signal and raise are async-signal-safe.
    unsafe {
        libc::write(2, MESSAGE.as_ptr().cast(), MESSAGE.len());
        libc::signal(libc::SIGBUS, libc::SIG_DFL);
        libc::raise(libc::SIGBUS);
    }
}

/// Installs the handler (once, at start, before any segment is mapped).
pub fn report_on_sigbus() {
    // SAFETY: installs a handler that only makes async-signal-safe calls.
    unsafe {
        libc::signal(libc::SIGBUS, on_sigbus as *const () as libc::sighandler_t);
    }
}
