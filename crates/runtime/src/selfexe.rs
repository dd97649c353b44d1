//! Defence against CVE-2019-5736 (overwriting the runtime binary through
//! /proc/self/exe from inside a container): the runtime re-executes itself
//! from a sealed memfd copy before it touches any container, so the file a
//! container could reach is an immutable anonymous copy, never the binary
//! on disk.

use rustix::fs::{MemfdFlags, SealFlags};
use std::ffi::CString;
use std::os::unix::ffi::OsStrExt;

/// Errors of the re-exec.
#[derive(Debug, thiserror::Error)]
#[error("cannot {op} (protection of the runtime binary): {source}")]
pub struct SelfExeError {
    op: &'static str,
    #[source]
    source: std::io::Error,
}

fn e(op: &'static str) -> impl FnOnce(rustix::io::Errno) -> SelfExeError {
    move |err| SelfExeError {
        op,
        source: err.into(),
    }
}

const SEALS: SealFlags = SealFlags::SEAL
    .union(SealFlags::SHRINK)
    .union(SealFlags::GROW)
    .union(SealFlags::WRITE);

/// Is this process running from a sealed memfd already?
pub fn running_sealed() -> bool {
    let Ok(f) = std::fs::File::open("/proc/self/exe") else {
        return false;
    };
    rustix::fs::fcntl_get_seals(&f).is_ok_and(|s| s.contains(SEALS))
}

/// Re-exec from a sealed memfd copy unless already running from one.
/// Returns only when no re-exec was needed.
pub fn ensure_sealed() -> Result<(), SelfExeError> {
    let exe = std::fs::File::open("/proc/self/exe").map_err(|source| SelfExeError {
        op: "open /proc/self/exe",
        source,
    })?;
    if rustix::fs::fcntl_get_seals(&exe).is_ok_and(|s| s.contains(SEALS)) {
        return Ok(());
    }
    let memfd = rustix::fs::memfd_create(
        "berth-runtime",
        MemfdFlags::CLOEXEC | MemfdFlags::ALLOW_SEALING,
    )
    .map_err(e("create memfd"))?;
    let len = exe
        .metadata()
        .map_err(|source| SelfExeError {
            op: "stat /proc/self/exe",
            source,
        })?
        .len();
    let mut copied = 0u64;
    while copied < len {
        let n = rustix::fs::sendfile(&memfd, &exe, None, (len - copied) as usize)
            .map_err(e("copy the runtime binary"))?;
        if n == 0 {
            break;
        }
        copied += n as u64;
    }
    rustix::fs::fcntl_add_seals(&memfd, SEALS).map_err(e("seal memfd"))?;
    let args: Vec<CString> = std::env::args_os()
        .map(|a| CString::new(a.as_bytes()).unwrap_or_default())
        .collect();
    let env: Vec<CString> = std::env::vars_os()
        .map(|(k, v)| {
            let mut kv = k.as_bytes().to_vec();
            kv.push(b'=');
            kv.extend_from_slice(v.as_bytes());
            CString::new(kv).unwrap_or_default()
        })
        .collect();
    let err = nix::unistd::fexecve(&memfd, &args, &env);
    Err(SelfExeError {
        op: "re-exec from memfd",
        source: match err {
            Err(errno) => errno.into(),
            Ok(never) => match never {},
        },
    })
}
