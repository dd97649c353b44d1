//! Defence against CVE-2019-5736 (overwriting the runtime binary through
//! /proc/self/exe from inside a container): the runtime re-executes itself
//! from a copy that cannot be written before it touches any container, so
//! the file a container could reach is never a writable view of the binary
//! on disk.
//!
//! Two ways to get such a copy, tried in this order:
//!
//! 1. A read-only bind mount of the binary, detached (crun's trick and runc
//!    1.2's overlayfs idea, done with the new mount API): `open_tree(
//!    /proc/self/exe, OPEN_TREE_CLONE)` clones a mount of just the file,
//!    `mount_setattr(MOUNT_ATTR_RDONLY)` makes it read-only, and we exec it
//!    with `execveat(AT_EMPTY_PATH)`. The mount is never attached anywhere
//!    (no temporary file, nothing in any mount table), lives only as long
//!    as the process, and every write through it, including a re-open of
//!    /proc/PID/exe for writing, fails with EROFS. It costs a few syscalls
//!    and shares the page cache of the binary: no copy, no extra memory.
//!    Needs Linux 5.12 and CAP_SYS_ADMIN.
//! 2. Otherwise a sealed memfd copy (runc 1.1's approach): always works, but
//!    copies the whole binary (about 5 MB, a few ms) on every call.
//!
//! A binary that already runs from either (a sealed memfd, or a file on a
//! read-only mount, as crun checks) is not re-executed. Trade-off: a binary
//! installed on a read-only mount is trusted to stay read-only; only the
//! host's root can remount it, and such a root needs no container escape.

use rustix::fs::{MemfdFlags, SealFlags, StatVfsMountFlags};
use std::ffi::CString;
use std::fs::File;
use std::os::fd::{AsFd, OwnedFd};
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

/// Can `exe` not be written: a fully sealed memfd, or a file on a
/// read-only mount (or read-only filesystem)?
fn is_protected(exe: &File) -> bool {
    if rustix::fs::fcntl_get_seals(exe).is_ok_and(|s| s.contains(SEALS)) {
        return true;
    }
    rustix::fs::fstatvfs(exe).is_ok_and(|s| s.f_flag.contains(StatVfsMountFlags::RDONLY))
}

/// Is this process running from a protected copy already (a sealed memfd
/// or a read-only mount, see the module documentation)?
pub fn running_sealed() -> bool {
    File::open("/proc/self/exe").is_ok_and(|f| is_protected(&f))
}

/// A detached read-only bind mount of `exe`, opened as an `O_PATH`
/// descriptor of the file (way 1 of the module documentation).
fn readonly_bind(exe: &File) -> std::io::Result<OwnedFd> {
    use rustix::mount::OpenTreeFlags;
    let tree = rustix::mount::open_tree(
        exe,
        "",
        OpenTreeFlags::OPEN_TREE_CLONE
            | OpenTreeFlags::OPEN_TREE_CLOEXEC
            | OpenTreeFlags::AT_EMPTY_PATH,
    )?;
    use berth_sys::mount_attr as ma;
    ma::mount_setattr(
        tree.as_fd(),
        false,
        ma::MOUNT_ATTR_RDONLY | ma::MOUNT_ATTR_NOSUID | ma::MOUNT_ATTR_NODEV,
        0,
        None,
    )?;
    Ok(tree)
}

/// [`readonly_bind`] of `exe` opened again by its path, when that path
/// names the same file: `open_tree` clones only mounts of the caller's
/// mount namespace (EINVAL otherwise), and a rootless berth command runs
/// from a binary of the host's mount namespace after joining the user's
/// (docs/rootless.md). Saves copying the binary into a memfd per start.
fn reopened_bind(exe: &File) -> Option<OwnedFd> {
    use std::os::fd::AsRawFd;
    use std::os::unix::fs::MetadataExt;
    let path = std::fs::read_link(format!("/proc/self/fd/{}", exe.as_raw_fd())).ok()?;
    let again = File::open(&path).ok()?;
    let (a, b) = (exe.metadata().ok()?, again.metadata().ok()?);
    if (a.dev(), a.ino()) != (b.dev(), b.ino()) {
        return None;
    }
    readonly_bind(&again).ok()
}

/// A sealed memfd copy of `exe` (way 2 of the module documentation).
fn sealed_copy(exe: &File) -> Result<OwnedFd, SelfExeError> {
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
        let n = rustix::fs::sendfile(&memfd, exe, None, (len - copied) as usize)
            .map_err(e("copy the runtime binary"))?;
        if n == 0 {
            break;
        }
        copied += n as u64;
    }
    rustix::fs::fcntl_add_seals(&memfd, SEALS).map_err(e("seal memfd"))?;
    Ok(memfd)
}

/// The protected executable to re-exec: a read-only bind mount when the
/// kernel and our privileges allow it, else a sealed memfd copy. The
/// engine execs its small monitor binary through it too.
pub fn protected_exe(exe: &File) -> Result<OwnedFd, SelfExeError> {
    match readonly_bind(exe).or_else(|err| reopened_bind(exe).ok_or(err)) {
        Ok(fd) => Ok(fd),
        Err(err) => {
            tracing::debug!(
                "read-only bind of the runtime binary failed ({err}); copying it to a sealed memfd"
            );
            sealed_copy(exe)
        }
    }
}

/// Re-exec from a protected copy unless already running from one.
/// Returns only when no re-exec was needed.
pub fn ensure_sealed() -> Result<(), SelfExeError> {
    let exe = File::open("/proc/self/exe").map_err(|source| SelfExeError {
        op: "open /proc/self/exe",
        source,
    })?;
    if is_protected(&exe) {
        return Ok(());
    }
    let target = protected_exe(&exe)?;
    drop(exe);
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
    let err = nix::unistd::fexecve(&target, &args, &env);
    Err(SelfExeError {
        op: "re-exec from the protected copy",
        source: match err {
            Err(errno) => errno.into(),
            Ok(never) => match never {},
        },
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Read;

    fn skip_unless_root() -> bool {
        if !nix::unistd::geteuid().is_root() {
            eprintln!("SKIP: selfexe tests need root (mount API, CAP_SYS_ADMIN)");
            return true;
        }
        false
    }

    /// Re-open a descriptor through /proc/self/fd, as the CVE's attacker
    /// re-opens /proc/PID/exe.
    fn reopen(fd: &OwnedFd, write: bool) -> std::io::Result<File> {
        use std::os::fd::AsRawFd;
        std::fs::OpenOptions::new()
            .read(!write)
            .write(write)
            .open(format!("/proc/self/fd/{}", fd.as_raw_fd()))
    }

    #[test]
    fn the_running_test_binary_is_not_protected() {
        // cargo builds test binaries on a writable filesystem.
        assert!(!running_sealed());
    }

    #[test]
    fn readonly_bind_is_the_same_file_and_refuses_writes() {
        if skip_unless_root() {
            return;
        }
        // A file nobody executes: on the running binary a write fails
        // earlier with ETXTBSY, which the attacker waits out (the CVE
        // re-opens /proc/PID/exe once the runtime has exited).
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("berth-runtime");
        std::fs::write(&path, b"#!/bin/true\n").expect("write");
        let file = File::open(&path).expect("open");
        let fd = readonly_bind(&file).expect("read-only bind");
        let err = reopen(&fd, true).expect_err("writing through the bind must fail");
        assert_eq!(err.raw_os_error(), Some(libc::EROFS), "{err}");
        let mut via_bind = Vec::new();
        reopen(&fd, false)
            .expect("read through the bind")
            .read_to_end(&mut via_bind)
            .expect("read");
        assert_eq!(via_bind, b"#!/bin/true\n");
        assert!(is_protected(&reopen(&fd, false).expect("reopen")));
        assert!(!is_protected(&file), "the original stays writable");
        // The mount is detached: no mount table shows it.
        let mounts = std::fs::read_to_string("/proc/self/mountinfo").expect("mountinfo");
        assert!(!mounts.contains(&path.display().to_string()), "{mounts}");
        // The running binary itself can be bound too.
        let exe = File::open("/proc/self/exe").expect("open /proc/self/exe");
        assert!(is_protected(
            &reopen(&readonly_bind(&exe).expect("bind exe"), false).expect("reopen")
        ));
    }

    #[test]
    fn sealed_copy_is_identical_and_refuses_writes() {
        let exe = File::open("/proc/self/exe").expect("open /proc/self/exe");
        let fd = sealed_copy(&exe).expect("sealed copy");
        let mut copy = Vec::new();
        reopen(&fd, false)
            .expect("read the copy")
            .read_to_end(&mut copy)
            .expect("read");
        assert!(copy == std::fs::read("/proc/self/exe").expect("read the binary"));
        let f = reopen(&fd, false).expect("reopen");
        assert!(is_protected(&f));
        // F_SEAL_WRITE: a writable re-open succeeds on a memfd, but no
        // write gets through.
        if let Ok(mut w) = reopen(&fd, true) {
            use std::io::Write;
            assert!(
                w.write_all(b"x").is_err(),
                "a sealed memfd accepted a write"
            );
        }
    }
}
