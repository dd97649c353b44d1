//! Reading and writing cgroup files, with errors naming the path and value.

use std::io::{ErrorKind, Write};
use std::path::Path;

use crate::error::{Error, Result};

/// Writes `value` to an existing cgroup file (never creates it): a missing
/// file means the kernel lacks the interface, reported as `Unsupported`.
pub fn write(dir: &Path, file: &str, value: &str, hint: &'static str) -> Result<()> {
    let path = dir.join(file);
    let res = std::fs::OpenOptions::new()
        .write(true)
        .open(&path)
        .and_then(|mut f| f.write_all(value.as_bytes()));
    match res {
        Ok(()) => Ok(()),
        Err(e) if e.kind() == ErrorKind::NotFound && dir.is_dir() => Err(Error::Unsupported {
            path,
            value: value.to_string(),
            hint,
        }),
        Err(source) => Err(Error::Write {
            path,
            value: value.to_string(),
            source,
        }),
    }
}

/// Reads a cgroup file.
pub fn read(dir: &Path, file: &str) -> Result<String> {
    let path = dir.join(file);
    std::fs::read_to_string(&path).map_err(|source| Error::Read { path, source })
}

/// Reads a cgroup file, `None` when it does not exist.
pub fn read_opt(dir: &Path, file: &str) -> Result<Option<String>> {
    match std::fs::read_to_string(dir.join(file)) {
        Ok(s) => Ok(Some(s)),
        Err(e) if e.kind() == ErrorKind::NotFound => Ok(None),
        Err(source) => Err(Error::Read {
            path: dir.join(file),
            source,
        }),
    }
}

/// Parses a single number, "max" as `u64::MAX`.
pub fn parse_u64(s: &str) -> Option<u64> {
    let s = s.trim();
    if s == "max" {
        return Some(u64::MAX);
    }
    s.parse().ok()
}

/// Reads a single-number file, `None` when missing or unparsable.
pub fn read_u64(dir: &Path, file: &str) -> Option<u64> {
    std::fs::read_to_string(dir.join(file))
        .ok()
        .as_deref()
        .and_then(parse_u64)
}
