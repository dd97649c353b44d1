//! Resolving paths inside the container's root filesystem without ever
//! leaving it: every lookup goes through openat2(2) with RESOLVE_IN_ROOT, so
//! `..`, absolute symlinks and symlinks pointing outside are clamped to the
//! rootfs. Nothing is ever mounted on a host path (runtime-spec config.md
//! "Mounts": destinations are inside the container).

use rustix::fs::{Mode, OFlags, ResolveFlags};
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, OwnedFd};
use std::os::unix::ffi::OsStrExt;
use std::path::{Component, Path, PathBuf};

/// Errors resolving a path inside the rootfs.
#[derive(Debug, thiserror::Error)]
pub enum PathError {
    #[error("cannot {op} {path:?} inside the container rootfs: {source}")]
    Io {
        op: &'static str,
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("{path:?} inside the container rootfs is not a directory")]
    NotDir { path: PathBuf },
}

fn io_err(op: &'static str, path: &Path, e: rustix::io::Errno) -> PathError {
    PathError::Io {
        op,
        path: path.to_path_buf(),
        source: e.into(),
    }
}

const RESOLVE: ResolveFlags = ResolveFlags::IN_ROOT.union(ResolveFlags::NO_MAGICLINKS);

/// The path relative to the root, without leading `/`.
fn rel(path: &Path) -> PathBuf {
    path.components()
        .filter(|c| !matches!(c, Component::RootDir | Component::Prefix(_)))
        .collect()
}

/// Open `path` inside `root` (O_PATH unless `flags` say otherwise).
pub fn open_in_root(
    root: BorrowedFd<'_>,
    path: &Path,
    flags: OFlags,
) -> Result<OwnedFd, PathError> {
    let r = rel(path);
    let r = if r.as_os_str().is_empty() {
        PathBuf::from(".")
    } else {
        r
    };
    rustix::fs::openat2(root, &r, flags | OFlags::CLOEXEC, Mode::empty(), RESOLVE)
        .map_err(|e| io_err("open", path, e))
}

/// Resolve `path` inside `root` component by component, following
/// symlinks by hand with `root` as "/" (like runc's SecureJoin), and
/// creating missing directories (and, when `file` is set, a missing last
/// component as an empty file). A dangling symlink is thus followed to its
/// target inside the rootfs, which is created there; nothing outside the
/// rootfs is ever reached. Returns an O_PATH fd of the result.
fn resolve_create(
    root: BorrowedFd<'_>,
    path: &Path,
    mode: u32,
    file: bool,
) -> Result<OwnedFd, PathError> {
    use std::collections::VecDeque;
    use std::ffi::OsString;
    let dup_root = || {
        rustix::fs::openat(
            root,
            ".",
            OFlags::PATH | OFlags::DIRECTORY | OFlags::CLOEXEC,
            Mode::empty(),
        )
        .map_err(|e| io_err("open", Path::new("/"), e))
    };
    let mut stack: Vec<OwnedFd> = vec![dup_root()?];
    let mut shown = PathBuf::from("/");
    let mut todo: VecDeque<OsString> = rel(path).iter().map(OsString::from).collect();
    let mut links = 0;
    while let Some(name) = todo.pop_front() {
        if name == ".." {
            if stack.len() > 1 {
                stack.pop();
                shown.pop();
            }
            continue;
        }
        if name == "." || name.is_empty() {
            continue;
        }
        let last = todo.is_empty();
        let dir = stack.last().expect("the root stays on the stack");
        shown.push(&name);
        match rustix::fs::readlinkat(dir, name.as_os_str(), Vec::new()) {
            Ok(target) => {
                links += 1;
                if links > 40 {
                    return Err(io_err("resolve", &shown, rustix::io::Errno::LOOP));
                }
                shown.pop();
                let target = PathBuf::from(std::ffi::OsStr::from_bytes(target.as_bytes()));
                let mut comps: Vec<OsString> = Vec::new();
                if target.is_absolute() {
                    stack.truncate(1);
                    shown = PathBuf::from("/");
                }
                comps.extend(rel(&target).iter().map(OsString::from));
                for c in comps.into_iter().rev() {
                    todo.push_front(c);
                }
                continue;
            }
            Err(rustix::io::Errno::NOENT) => {
                if last && file {
                    let d = rustix::fs::openat(
                        dir,
                        ".",
                        OFlags::DIRECTORY | OFlags::RDONLY | OFlags::CLOEXEC,
                        Mode::empty(),
                    )
                    .map_err(|e| io_err("open", &shown, e))?;
                    match rustix::fs::openat(
                        &d,
                        name.as_os_str(),
                        OFlags::CREATE
                            | OFlags::EXCL
                            | OFlags::WRONLY
                            | OFlags::NOFOLLOW
                            | OFlags::CLOEXEC,
                        Mode::from_raw_mode(0o644),
                    ) {
                        Ok(_) | Err(rustix::io::Errno::EXIST) => {}
                        Err(e) => return Err(io_err("create file", &shown, e)),
                    }
                } else {
                    match rustix::fs::mkdirat(dir, name.as_os_str(), Mode::from_raw_mode(mode)) {
                        Ok(()) | Err(rustix::io::Errno::EXIST) => {}
                        Err(e) => return Err(io_err("create directory", &shown, e)),
                    }
                }
            }
            // EINVAL: not a symlink; go on below.
            Err(rustix::io::Errno::INVAL) => {}
            Err(e) => return Err(io_err("read link", &shown, e)),
        }
        // One plain component, no symlinks allowed: it was checked above,
        // and RESOLVE_NO_SYMLINKS refuses one swapped in meanwhile.
        let flags = if last && file {
            OFlags::PATH
        } else {
            OFlags::PATH | OFlags::DIRECTORY
        };
        let next = rustix::fs::openat2(
            dir,
            name.as_os_str(),
            flags | OFlags::CLOEXEC,
            Mode::empty(),
            ResolveFlags::NO_SYMLINKS | ResolveFlags::BENEATH,
        )
        .map_err(|e| match e {
            rustix::io::Errno::NOTDIR => PathError::NotDir {
                path: shown.clone(),
            },
            e => io_err("open", &shown, e),
        })?;
        stack.push(next);
    }
    Ok(stack.pop().expect("the root stays on the stack"))
}

/// `mkdir -p` of `path` inside `root`; returns an O_PATH fd of the directory.
pub fn mkdir_all(root: BorrowedFd<'_>, path: &Path, mode: u32) -> Result<OwnedFd, PathError> {
    let fd = resolve_create(root, path, mode, false)?;
    if !is_dir(&fd) {
        return Err(PathError::NotDir {
            path: path.to_path_buf(),
        });
    }
    Ok(fd)
}

/// Make sure a file exists at `path` inside `root` (for bind mounts of
/// files and masked paths); returns an O_PATH fd of it.
pub fn ensure_file(root: BorrowedFd<'_>, path: &Path) -> Result<OwnedFd, PathError> {
    resolve_create(root, path, 0o755, true)
}

/// The `/proc/self/fd/N` path of a descriptor: mount(2) follows this magic
/// link to the very inode the descriptor holds.
pub fn fd_path(fd: BorrowedFd<'_>) -> PathBuf {
    PathBuf::from(format!("/proc/self/fd/{}", fd.as_raw_fd()))
}

/// Open the parent directory of `path` inside `root` (created if missing)
/// as a directory fd, with the last component's name.
pub fn parent_dir(
    root: BorrowedFd<'_>,
    path: &Path,
) -> Result<(OwnedFd, std::ffi::OsString), PathError> {
    let parent = path.parent().unwrap_or(Path::new("/"));
    let dir = mkdir_all(root, parent, 0o755)?;
    let dir = rustix::fs::openat(
        &dir,
        ".",
        OFlags::DIRECTORY | OFlags::RDONLY | OFlags::CLOEXEC,
        Mode::empty(),
    )
    .map_err(|e| io_err("open", parent, e))?;
    let name = path
        .file_name()
        .ok_or_else(|| PathError::NotDir {
            path: path.to_path_buf(),
        })?
        .to_os_string();
    Ok((dir, name))
}

/// Is the fd a directory?
pub fn is_dir(fd: impl AsFd) -> bool {
    rustix::fs::fstat(fd)
        .map(|s| rustix::fs::FileType::from_raw_mode(s.st_mode) == rustix::fs::FileType::Directory)
        .unwrap_or(false)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::symlink;

    fn root() -> (tempfile::TempDir, OwnedFd) {
        let d = tempfile::tempdir().expect("tempdir");
        let fd = rustix::fs::open(d.path(), OFlags::PATH | OFlags::DIRECTORY, Mode::empty())
            .expect("open root");
        (d, fd)
    }

    #[test]
    fn absolute_symlink_is_clamped_to_root() {
        let (d, fd) = root();
        let outside = tempfile::tempdir().expect("outside");
        symlink(outside.path(), d.path().join("escape")).expect("symlink");
        mkdir_all(fd.as_fd(), Path::new("/escape/sub"), 0o755).expect("mkdir");
        // The directory was made inside the root, following the link as if
        // the root were "/".
        assert!(!outside.path().join("sub").exists());
        let inside = d
            .path()
            .join(outside.path().strip_prefix("/").expect("abs"))
            .join("sub");
        assert!(inside.is_dir(), "expected {inside:?}");
    }

    #[test]
    fn dotdot_is_clamped_to_root() {
        let (d, fd) = root();
        mkdir_all(fd.as_fd(), Path::new("/../../x"), 0o755).expect("mkdir");
        assert!(d.path().join("x").is_dir());
    }

    #[test]
    fn relative_symlink_out_is_clamped() {
        let (d, fd) = root();
        symlink("../../../../../../tmp", d.path().join("up")).expect("symlink");
        let f = ensure_file(fd.as_fd(), Path::new("/up/file")).expect("file");
        drop(f);
        assert!(d.path().join("tmp/file").exists());
    }

    #[test]
    fn file_in_the_way_is_not_a_dir() {
        let (d, fd) = root();
        std::fs::write(d.path().join("f"), b"").expect("write");
        assert!(matches!(
            mkdir_all(fd.as_fd(), Path::new("/f/sub"), 0o755),
            Err(PathError::NotDir { .. })
        ));
    }
}
