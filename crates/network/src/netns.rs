//! Network namespace files: a new namespace kept alive by a bind mount on
//! a file (as `ip netns add` does, but under a directory berth owns), and
//! running code inside one on a scoped thread (the netns is per thread;
//! the thread is joined before returning, so callers stay single-threaded).

use std::fs::File;
use std::os::fd::AsFd;
use std::path::Path;

use nix::mount::{mount, umount2, MntFlags, MsFlags};
use nix::sched::{setns, unshare, CloneFlags};

use crate::error::{NetError, Result};

fn err<'a>(op: &'static str, path: &'a Path) -> impl FnOnce(std::io::Error) -> NetError + 'a {
    move |source| NetError::Netns {
        op,
        path: path.to_path_buf(),
        source,
    }
}

fn errno<'a>(op: &'static str, path: &'a Path) -> impl FnOnce(nix::Error) -> NetError + 'a {
    move |e| err(op, path)(std::io::Error::from(e))
}

/// Creates a new network namespace and pins it at `path` (a file is
/// created; its parent must exist). Nothing is left behind on failure.
pub fn create(path: &Path) -> Result<()> {
    File::options()
        .write(true)
        .create_new(true)
        .open(path)
        .map_err(err("create the pin file", path))?;
    let pinned = std::thread::scope(|s| {
        s.spawn(|| -> Result<()> {
            unshare(CloneFlags::CLONE_NEWNET).map_err(errno("unshare", path))?;
            mount(
                Some("/proc/thread-self/ns/net"),
                path,
                None::<&str>,
                MsFlags::MS_BIND,
                None::<&str>,
            )
            .map_err(errno("bind-mount the namespace", path))
        })
        .join()
        .unwrap_or_else(|_| {
            Err(err("create", path)(std::io::Error::other(
                "namespace thread panicked",
            )))
        })
    });
    if pinned.is_err() {
        let _ = std::fs::remove_file(path);
    }
    pinned
}

/// Unpins and removes a namespace file made by [`create`]. Idempotent.
/// The namespace itself goes when its last process and interface holder
/// is gone.
pub fn remove(path: &Path) -> Result<()> {
    match umount2(path, MntFlags::MNT_DETACH) {
        Ok(()) | Err(nix::Error::EINVAL) | Err(nix::Error::ENOENT) => {}
        Err(e) => return Err(errno("unmount", path)(e)),
    }
    match std::fs::remove_file(path) {
        Ok(()) => Ok(()),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
        Err(e) => Err(err("remove", path)(e)),
    }
}

/// Whether `path` is a pinned namespace (a mount of nsfs) rather than a
/// plain file left by a crash.
pub fn is_pinned(path: &Path) -> bool {
    rustix::fs::statfs(path).is_ok_and(|s| s.f_type == libc::NSFS_MAGIC)
}

/// Runs `f` on a scoped thread that has joined the network namespace at
/// `path` (a pin file or `/proc/PID/ns/net`). Processes that `f` spawns
/// inherit that namespace.
pub fn run_in<T: Send>(path: &Path, f: impl FnOnce() -> T + Send) -> Result<T> {
    let ns = File::open(path).map_err(err("open", path))?;
    std::thread::scope(|s| {
        s.spawn(|| -> Result<T> {
            setns(ns.as_fd(), CloneFlags::CLONE_NEWNET).map_err(errno("join", path))?;
            Ok(f())
        })
        .join()
        .unwrap_or_else(|_| {
            Err(err("run in", path)(std::io::Error::other(
                "thread panicked",
            )))
        })
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn root() -> bool {
        nix::unistd::geteuid().is_root()
    }

    #[test]
    fn create_run_in_remove() {
        if !root() {
            eprintln!("SKIP: needs root to create network namespaces");
            return;
        }
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("ns");
        create(&p).unwrap();
        assert!(is_pinned(&p));
        let mine = std::fs::read_link("/proc/thread-self/ns/net").unwrap();
        let inside = run_in(&p, || {
            std::fs::read_link("/proc/thread-self/ns/net").unwrap()
        })
        .unwrap();
        assert_ne!(mine, inside, "run_in must enter another namespace");
        // The pin keeps the same namespace.
        let again = run_in(&p, || {
            std::fs::read_link("/proc/thread-self/ns/net").unwrap()
        })
        .unwrap();
        assert_eq!(inside, again);
        assert!(create(&p).is_err(), "an existing pin is refused");
        remove(&p).unwrap();
        assert!(!p.exists());
        remove(&p).unwrap();
    }
}
