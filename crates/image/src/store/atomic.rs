//! Crash-safe file replacement: write a temp file in the same directory,
//! fsync it, rename it over the target, fsync the directory. A reader sees
//! the old or the new content, never a mix.

use std::fs::{self, File};
use std::io::Write;
use std::path::Path;

use super::StoreError;

/// Atomically replaces `path` with `data`.
pub fn write_atomic(path: &Path, data: &[u8]) -> Result<(), StoreError> {
    let werr = |source| StoreError::Write {
        path: path.to_path_buf(),
        source,
    };
    let dir = path.parent().unwrap_or(Path::new("."));
    let mut tmp = tempfile::Builder::new()
        .prefix(".tmp-")
        .tempfile_in(dir)
        .map_err(werr)?;
    tmp.write_all(data).map_err(werr)?;
    tmp.as_file().sync_all().map_err(werr)?;
    tmp.persist(path).map_err(|e| werr(e.error))?;
    sync_dir(dir).map_err(werr)
}

/// fsyncs a directory so a rename into it is durable.
pub fn sync_dir(dir: &Path) -> std::io::Result<()> {
    File::open(dir)?.sync_all()
}

/// Renames `from` to `to` and makes it durable; `Ok(false)` when `to`
/// already exists (someone else finished first), leaving `from` in place.
pub fn rename_new(from: &Path, to: &Path) -> std::io::Result<bool> {
    if to.exists() {
        return Ok(false);
    }
    match fs::rename(from, to) {
        Ok(()) => {}
        Err(e)
            if e.raw_os_error() == Some(libc::ENOTEMPTY)
                || e.raw_os_error() == Some(libc::EEXIST) =>
        {
            return Ok(false)
        }
        Err(e) => return Err(e),
    }
    sync_dir(to.parent().unwrap_or(Path::new(".")))?;
    Ok(true)
}
