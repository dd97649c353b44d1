//! Resolving paths inside the container's root filesystem without ever
//! leaving it: every lookup goes through openat2(2) with RESOLVE_IN_ROOT, so
//! `..`, absolute symlinks and symlinks pointing outside are clamped to the
//! rootfs. Nothing is ever mounted on a host path (runtime-spec config.md
//! "Mounts": destinations are inside the container).

use rustix::fs::{Mode, OFlags, ResolveFlags};
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, OwnedFd};
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

/// `mkdir -p` of `path` inside `root`; returns an O_PATH fd of the directory.
pub fn mkdir_all(root: BorrowedFd<'_>, path: &Path, mode: u32) -> Result<OwnedFd, PathError> {
    let mut cur = PathBuf::from("/");
    let mut fd = open_in_root(root, &cur, OFlags::PATH | OFlags::DIRECTORY)?;
    for c in rel(path).components() {
        let name = match c {
            Component::Normal(n) => n,
            Component::ParentDir => {
                cur.pop();
                fd = open_in_root(root, &cur, OFlags::PATH | OFlags::DIRECTORY)?;
                continue;
            }
            _ => continue,
        };
        cur.push(name);
        match open_in_root(root, &cur, OFlags::PATH | OFlags::DIRECTORY) {
            Ok(next) => {
                fd = next;
                continue;
            }
            Err(PathError::Io { source, .. }) if source.raw_os_error() == Some(libc::ENOTDIR) => {
                return Err(PathError::NotDir { path: cur });
            }
            Err(PathError::Io { source, .. }) if source.raw_os_error() == Some(libc::ENOENT) => {}
            Err(e) => return Err(e),
        }
        // The parent fd was resolved inside the root, and `name` is one plain
        // component: mkdirat cannot follow anything.
        match rustix::fs::mkdirat(&fd, name, Mode::from_raw_mode(mode)) {
            Ok(()) | Err(rustix::io::Errno::EXIST) => {}
            Err(e) => return Err(io_err("create directory", &cur, e)),
        }
        fd = open_in_root(root, &cur, OFlags::PATH | OFlags::DIRECTORY)?;
    }
    Ok(fd)
}

/// Make sure a regular file exists at `path` inside `root` (for bind mounts
/// of files and masked paths); returns an O_PATH fd of it.
pub fn ensure_file(root: BorrowedFd<'_>, path: &Path) -> Result<OwnedFd, PathError> {
    if let Ok(fd) = open_in_root(root, path, OFlags::PATH) {
        return Ok(fd);
    }
    let parent = path.parent().unwrap_or(Path::new("/"));
    let dir = mkdir_all(root, parent, 0o755)?;
    let name = path.file_name().ok_or_else(|| PathError::NotDir {
        path: path.to_path_buf(),
    })?;
    // Reopen the parent as a real directory fd for openat.
    let dir = rustix::fs::openat(
        &dir,
        ".",
        OFlags::DIRECTORY | OFlags::RDONLY | OFlags::CLOEXEC,
        Mode::empty(),
    )
    .map_err(|e| io_err("open", parent, e))?;
    match rustix::fs::openat(
        &dir,
        name,
        OFlags::CREATE | OFlags::EXCL | OFlags::WRONLY | OFlags::NOFOLLOW | OFlags::CLOEXEC,
        Mode::from_raw_mode(0o644),
    ) {
        Ok(_) | Err(rustix::io::Errno::EXIST) => {}
        Err(e) => return Err(io_err("create file", path, e)),
    }
    open_in_root(root, path, OFlags::PATH)
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
