//! Start-up housekeeping of a partition directory: finishes or discards what an interrupted
//! compaction left, removes orphans, and reports files it does not know without touching
//! them.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

use crate::error::{Result, StorageError};
use crate::segment::{segment_file_name, INDEX_EXT, LOG_EXT, TIME_INDEX_EXT};

/// Suffix of compaction output not yet committed: discarded on start.
pub const CLEANED_SUFFIX: &str = ".cleaned";
/// Suffix of compaction output committed but not yet renamed: completed on start.
pub const SWAP_SUFFIX: &str = ".swap";
/// Suffix of segments being removed: deleted on start.
pub const DELETED_SUFFIX: &str = ".deleted";

/// Extension of the sidecar that records which offsets a swapped-in segment replaces.
pub const REPLACES_EXT: &str = "replaces";

/// Files a partition directory may hold besides segments.
const KNOWN_FILES: &[&str] = &[
    "log-start-offset",
    "cleaner-offset-checkpoint",
    crate::recovery_point::RECOVERY_POINT_FILE,
];

/// Cleans up `dir` and returns the base offsets of its segments, oldest first.
pub fn prepare_directory(dir: &Path) -> Result<Vec<i64>> {
    let read = |d: &Path| -> Result<Vec<String>> {
        let mut names = Vec::new();
        for entry in std::fs::read_dir(d).map_err(|e| StorageError::io(d, e))? {
            let entry = entry.map_err(|e| StorageError::io(d, e))?;
            names.push(entry.file_name().to_string_lossy().into_owned());
        }
        names.sort();
        Ok(names)
    };
    let remove = |name: &str| -> Result<()> {
        let path = dir.join(name);
        match std::fs::remove_file(&path) {
            Ok(()) => Ok(()),
            // Gone already (another writer renamed its temp file meanwhile): nothing to do.
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
            Err(e) => Err(StorageError::io(&path, e)),
        }
    };

    // Pass 1: drop uncommitted compaction output and half-deleted segments.
    for name in read(dir)? {
        if name.ends_with(CLEANED_SUFFIX)
            || name.ends_with(DELETED_SUFFIX)
            || name.ends_with(".tmp")
        {
            tracing::info!(dir = %dir.display(), file = %name, "removing leftover file");
            remove(&name)?;
        }
    }
    // A swap's sidecar without its committed `.log.swap` belongs to an uncommitted swap (or
    // one whose `.log` already has its final name); so do `.index.swap`/`.timeindex.swap`
    // left by a crash while renaming to final names (the index is rebuilt from the `.log`).
    let names = read(dir)?;
    for name in &names {
        for ext in [REPLACES_EXT, INDEX_EXT, TIME_INDEX_EXT] {
            if let Some(stem) = name.strip_suffix(&format!(".{ext}{SWAP_SUFFIX}")) {
                if !names.contains(&format!("{stem}.{LOG_EXT}{SWAP_SUFFIX}")) {
                    tracing::info!(dir = %dir.display(), file = %name, "removing leftover file");
                    remove(name)?;
                }
            }
        }
    }
    // Pass 2: finish committed swaps: the swapped segment replaces every older segment whose
    // base offset falls inside its range (those were the swap's inputs).
    let names = read(dir)?;
    let swaps: Vec<i64> = names
        .iter()
        .filter_map(|n| n.strip_suffix(&format!(".{LOG_EXT}{SWAP_SUFFIX}")))
        .filter_map(|stem| stem.parse().ok())
        .collect();
    for (i, base) in swaps.iter().enumerate() {
        let upper = swaps.get(i + 1).copied().unwrap_or(i64::MAX);
        let replaced_upper = swap_upper_bound(dir, *base)?.unwrap_or(upper).min(upper);
        for old in segment_bases(&names) {
            if old >= *base && old < replaced_upper {
                for ext in [LOG_EXT, INDEX_EXT, TIME_INDEX_EXT] {
                    let _ = std::fs::remove_file(dir.join(segment_file_name(old, ext)));
                }
            }
        }
        for ext in [LOG_EXT, INDEX_EXT, TIME_INDEX_EXT] {
            let from = dir.join(format!("{}{SWAP_SUFFIX}", segment_file_name(*base, ext)));
            let to = dir.join(segment_file_name(*base, ext));
            if from.exists() {
                std::fs::rename(&from, &to).map_err(|e| StorageError::io(&from, e))?;
            }
        }
        // Only now: until the swap is complete, a crash must find the sidecar again.
        let sidecar = sidecar_path(dir, *base);
        if sidecar.exists() {
            std::fs::remove_file(&sidecar).map_err(|e| StorageError::io(&sidecar, e))?;
        }
        tracing::info!(dir = %dir.display(), base, "completed an interrupted compaction swap");
    }
    // Pass 3: collect segments, remove orphan indexes, report the unknown.
    let names = read(dir)?;
    let bases: BTreeSet<i64> = segment_bases(&names).into_iter().collect();
    for name in &names {
        let (stem, ext) = name.split_once('.').unwrap_or((name, ""));
        let base: Option<i64> = (stem.len() == 20).then(|| stem.parse().ok()).flatten();
        match (base, ext) {
            (Some(_), e) if e == LOG_EXT => {}
            (Some(b), e) if (e == INDEX_EXT || e == TIME_INDEX_EXT) && !bases.contains(&b) => {
                tracing::warn!(dir = %dir.display(), file = %name, "removing index without a segment");
                remove(name)?;
            }
            (Some(_), e) if e == INDEX_EXT || e == TIME_INDEX_EXT => {}
            (Some(_), e) if e == crate::producer_snapshot::SNAPSHOT_EXT => {}
            _ if KNOWN_FILES.contains(&name.as_str()) => {}
            _ => {
                tracing::warn!(dir = %dir.display(), file = %name, "ignoring unexpected file in partition directory");
            }
        }
    }
    Ok(bases.into_iter().collect())
}

/// Base offsets of the `.log` files among `names`.
fn segment_bases(names: &[String]) -> Vec<i64> {
    names
        .iter()
        .filter_map(|n| n.strip_suffix(&format!(".{LOG_EXT}")))
        .filter(|stem| stem.len() == 20)
        .filter_map(|stem| stem.parse().ok())
        .collect()
}

fn sidecar_path(dir: &Path, base: i64) -> PathBuf {
    dir.join(format!(
        "{}{SWAP_SUFFIX}",
        segment_file_name(base, REPLACES_EXT)
    ))
}

/// The swap file records, in a sidecar, the end offset of the segments it replaces. The
/// sidecar is removed only once the swap is complete.
fn swap_upper_bound(dir: &Path, base: i64) -> Result<Option<i64>> {
    crate::checkpoint::read_i64(&sidecar_path(dir, base))
}
