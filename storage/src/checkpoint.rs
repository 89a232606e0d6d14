//! Small checkpoint files (a single number) written atomically: temp file, fsync, rename.

use std::io::Write;
use std::path::Path;

use crate::error::{Result, StorageError};

/// Reads a checkpoint; `None` if the file does not exist. A file that does not hold a
/// number is reported and treated as missing, so a damaged checkpoint never blocks start-up.
pub fn read_i64(path: &Path) -> Result<Option<i64>> {
    match std::fs::read_to_string(path) {
        Ok(text) => match text.trim().parse() {
            Ok(v) => Ok(Some(v)),
            Err(_) => {
                tracing::warn!(file = %path.display(), "ignoring unreadable checkpoint");
                Ok(None)
            }
        },
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(StorageError::io(path, e)),
    }
}

/// Replaces the checkpoint with `value`, durably.
pub fn write_i64(path: &Path, value: i64) -> Result<()> {
    write_atomically(path, format!("{value}\n").as_bytes())
}

/// Writes `bytes` to `path` through a temp file and rename, so a crash leaves either the
/// old or the new content, never a mix.
pub fn write_atomically(path: &Path, bytes: &[u8]) -> Result<()> {
    let tmp = path.with_extension("tmp");
    let mut file = std::fs::File::create(&tmp).map_err(|e| StorageError::io(&tmp, e))?;
    file.write_all(bytes)
        .map_err(|e| StorageError::io(&tmp, e))?;
    file.sync_data().map_err(|e| StorageError::io(&tmp, e))?;
    std::fs::rename(&tmp, path).map_err(|e| StorageError::io(path, e))?;
    if let Some(dir) = path.parent() {
        if let Ok(d) = std::fs::File::open(dir) {
            let _ = d.sync_all();
        }
    }
    Ok(())
}
