//! `berth cp`: files between the host and a container's rootfs. Paths in
//! the container are resolved with openat2(RESOLVE_IN_ROOT), so symlinks
//! in the image can never lead out of the rootfs; below the first
//! directory everything is opened relative to directory fds with
//! O_NOFOLLOW. Regular files, directories and symlinks are copied (mode
//! kept, owner not); other file types are refused.

use std::ffi::{OsStr, OsString};
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};

use rustix::fs::{AtFlags, FileType, Mode, OFlags, ResolveFlags};

use crate::db::Status;
use crate::error::{EngineError, Result};
use crate::{lifecycle, Engine};

/// Errors of `cp`.
#[derive(Debug, thiserror::Error)]
pub enum CopyError {
    #[error("cp {what} {path}")]
    Io {
        what: &'static str,
        path: String,
        #[source]
        source: std::io::Error,
    },
    #[error("cp: {path} is a {kind}; only files, directories and symlinks are copied")]
    FileType { path: String, kind: &'static str },
    #[error("cp: give exactly one side as CONTAINER:PATH (got {0})")]
    Sides(String),
    #[error("cp: {0} is not an existing directory in the container; a tar stream is unpacked into a directory")]
    NotADirectory(String),
    #[error(
        "cp: copying the whole root directory of a container is not supported; name a path below /"
    )]
    WholeRoot,
}

fn e(what: &'static str, path: &str) -> impl FnOnce(rustix::io::Errno) -> EngineError {
    let path = path.to_string();
    move |err| {
        EngineError::Copy(CopyError::Io {
            what,
            path,
            source: err.into(),
        })
    }
}

/// One side of `cp`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Side {
    Host(PathBuf),
    Container { reference: String, path: String },
}

/// Docker's rule: `NAME:PATH` is in a container unless the text before
/// the first `:` contains a `/` (a local path such as `./a:b`).
pub fn parse_side(s: &str) -> Side {
    match s.split_once(':') {
        Some((c, p)) if !c.is_empty() && !c.contains('/') => Side::Container {
            reference: c.into(),
            path: if p.is_empty() { "/".into() } else { p.into() },
        },
        _ => Side::Host(s.into()),
    }
}

/// Splits a path into (parent, last name); `None` name for `/` or `.`.
pub fn split(path: &str) -> (String, Option<OsString>) {
    let p = Path::new(path);
    match (p.parent(), p.file_name()) {
        (Some(parent), Some(name)) => {
            let parent = if parent.as_os_str().is_empty() {
                ".".to_string()
            } else {
                parent.to_string_lossy().into_owned()
            };
            (parent, Some(name.to_os_string()))
        }
        _ => (path.to_string(), None),
    }
}

/// An open directory and a name in it.
struct Place {
    dir: OwnedFd,
    name: Option<OsString>,
    shown: String,
    /// Owner of what is created here: container root's host ids when the
    /// place is in a container with its own user namespace.
    owner: Option<(u32, u32)>,
}

fn open_dir_host(path: &str) -> Result<OwnedFd> {
    rustix::fs::open(
        path,
        OFlags::RDONLY | OFlags::DIRECTORY | OFlags::CLOEXEC,
        Mode::empty(),
    )
    .map_err(e("open directory", path))
}

fn open_dir_in_root(root: BorrowedFd<'_>, path: &str) -> Result<OwnedFd> {
    let rel = path.trim_start_matches('/');
    rustix::fs::openat2(
        root,
        if rel.is_empty() { "." } else { rel },
        OFlags::RDONLY | OFlags::DIRECTORY | OFlags::CLOEXEC,
        Mode::empty(),
        ResolveFlags::IN_ROOT | ResolveFlags::NO_MAGICLINKS,
    )
    .map_err(e("open directory", path))
}

fn place(root: Option<BorrowedFd<'_>>, path: &str) -> Result<Place> {
    let (parent, name) = split(path);
    let dir = match root {
        Some(r) => open_dir_in_root(r, &parent)?,
        None => open_dir_host(&parent)?,
    };
    let (dir, name) = match name {
        Some(n) => (dir, Some(n)),
        None => match root {
            Some(r) => (open_dir_in_root(r, path)?, None),
            None => (open_dir_host(path)?, None),
        },
    };
    Ok(Place {
        dir,
        name,
        shown: path.to_string(),
        owner: None,
    })
}

fn kind_of(ft: FileType) -> &'static str {
    match ft {
        FileType::CharacterDevice => "character device",
        FileType::BlockDevice => "block device",
        FileType::Fifo => "fifo",
        FileType::Socket => "socket",
        _ => "special file",
    }
}

/// Copies entry `name` of `src` to `dst_name` in `dst`.
fn copy_entry(
    src: BorrowedFd<'_>,
    name: &OsStr,
    dst: BorrowedFd<'_>,
    dst_name: &OsStr,
    shown: &str,
    owner: Option<(u32, u32)>,
) -> Result<()> {
    let chown = |fd: &OwnedFd| match owner {
        Some((u, g)) => std::os::unix::fs::fchown(fd, Some(u), Some(g)).map_err(|source| {
            EngineError::Copy(CopyError::Io {
                what: "chown",
                path: shown.into(),
                source,
            })
        }),
        None => Ok(()),
    };
    let st = rustix::fs::statat(src, name, AtFlags::SYMLINK_NOFOLLOW).map_err(e("stat", shown))?;
    let mode = Mode::from_raw_mode(st.st_mode & 0o7777);
    match FileType::from_raw_mode(st.st_mode) {
        FileType::RegularFile => {
            let from = rustix::fs::openat(
                src,
                name,
                OFlags::RDONLY | OFlags::NOFOLLOW | OFlags::CLOEXEC,
                Mode::empty(),
            )
            .map_err(e("open", shown))?;
            let to = rustix::fs::openat(
                dst,
                dst_name,
                OFlags::WRONLY
                    | OFlags::CREATE
                    | OFlags::TRUNC
                    | OFlags::NOFOLLOW
                    | OFlags::CLOEXEC,
                mode,
            )
            .map_err(e("create", shown))?;
            chown(&to)?;
            let mut from = std::fs::File::from(from);
            let mut to = std::fs::File::from(to);
            std::io::copy(&mut from, &mut to).map_err(|source| {
                EngineError::Copy(CopyError::Io {
                    what: "copy",
                    path: shown.into(),
                    source,
                })
            })?;
            rustix::fs::fchmod(&to, mode).map_err(e("chmod", shown))
        }
        FileType::Directory => {
            let created = match rustix::fs::mkdirat(dst, dst_name, mode) {
                Ok(()) => true,
                Err(rustix::io::Errno::EXIST) => false,
                Err(err) => return Err(e("create directory", shown)(err)),
            };
            let flags = OFlags::RDONLY | OFlags::DIRECTORY | OFlags::NOFOLLOW | OFlags::CLOEXEC;
            let from =
                rustix::fs::openat(src, name, flags, Mode::empty()).map_err(e("open", shown))?;
            let to = rustix::fs::openat(dst, dst_name, flags, Mode::empty())
                .map_err(e("open", shown))?;
            if created {
                chown(&to)?;
            }
            let entries = rustix::fs::Dir::read_from(&from).map_err(e("list", shown))?;
            for ent in entries {
                let ent = ent.map_err(e("list", shown))?;
                let n = OsStr::from_bytes(ent.file_name().to_bytes());
                if n == "." || n == ".." {
                    continue;
                }
                let child = format!("{shown}/{}", n.to_string_lossy());
                copy_entry(from.as_fd(), n, to.as_fd(), n, &child, owner)?;
            }
            rustix::fs::fchmod(&to, mode).map_err(e("chmod", shown))
        }
        FileType::Symlink => {
            let target =
                rustix::fs::readlinkat(src, name, Vec::new()).map_err(e("readlink", shown))?;
            match rustix::fs::symlinkat(target.as_c_str(), dst, dst_name) {
                Ok(()) => Ok(()),
                Err(err) => Err(e("create symlink", shown)(err)),
            }
        }
        other => Err(EngineError::Copy(CopyError::FileType {
            path: shown.into(),
            kind: kind_of(other),
        })),
    }
}

/// Copies `src` to `dst` (Docker's rules: into `dst` when it is an
/// existing directory, else as `dst`).
fn copy_places(src: &Place, dst: &Place) -> Result<()> {
    let Some(name) = &src.name else {
        return Err(EngineError::Copy(CopyError::WholeRoot));
    };
    let (dst_dir, dst_name): (BorrowedFd<'_>, OsString) = match &dst.name {
        None => (dst.dir.as_fd(), name.clone()),
        Some(n) => {
            let is_dir = rustix::fs::statat(&dst.dir, n.as_os_str(), AtFlags::SYMLINK_NOFOLLOW)
                .is_ok_and(|st| FileType::from_raw_mode(st.st_mode) == FileType::Directory);
            if is_dir {
                let d = rustix::fs::openat(
                    &dst.dir,
                    n.as_os_str(),
                    OFlags::RDONLY | OFlags::DIRECTORY | OFlags::NOFOLLOW | OFlags::CLOEXEC,
                    Mode::empty(),
                )
                .map_err(e("open", &dst.shown))?;
                return copy_entry(
                    src.dir.as_fd(),
                    name,
                    d.as_fd(),
                    name,
                    &src.shown,
                    dst.owner,
                );
            }
            (dst.dir.as_fd(), n.clone())
        }
    };
    copy_entry(
        src.dir.as_fd(),
        name,
        dst_dir,
        &dst_name,
        &src.shown,
        dst.owner,
    )
}

/// Unmounts a rootfs that `cp` mounted itself.
struct TempMount<'a> {
    engine: &'a Engine,
    id: Option<String>,
}

impl Drop for TempMount<'_> {
    fn drop(&mut self) {
        if let Some(id) = self.id.take() {
            let _ = lifecycle::unmount_rootfs(self.engine, &id);
        }
    }
}

/// `cp SRC DST`: exactly one side is `CONTAINER:PATH`.
pub fn copy(engine: &Engine, src: &str, dst: &str) -> Result<()> {
    let (s, d) = (parse_side(src), parse_side(dst));
    let reference = match (&s, &d) {
        (Side::Container { reference, .. }, Side::Host(_))
        | (Side::Host(_), Side::Container { reference, .. }) => reference.clone(),
        _ => return Err(EngineError::Copy(CopyError::Sides(format!("{src} {dst}")))),
    };
    in_rootfs(engine, &reference, |root, owner| {
        let open = |side: &Side| match side {
            Side::Host(p) => place(None, &p.to_string_lossy()),
            Side::Container { path, .. } => place(Some(root), path).map(|mut p| {
                p.owner = owner;
                p
            }),
        };
        let (sp, dp) = (open(&s)?, open(&d)?);
        copy_places(&sp, &dp)
    })
}

/// Runs `f` with the container's rootfs open (mounted for the time of
/// `f` when the container is not running).
fn in_rootfs<T>(
    engine: &Engine,
    reference: &str,
    f: impl FnOnce(BorrowedFd<'_>, Option<(u32, u32)>) -> Result<T>,
) -> Result<T> {
    let row = lifecycle::find(engine, reference)?;
    // In its own user namespace, container root is these host ids.
    let owner = crate::create::ContainerConfig::of(&row)
        .ok()
        .and_then(|c| c.idmap.and_then(|m| m.root()));
    let mut guard = TempMount { engine, id: None };
    if row.status != Status::Running {
        let cfg = crate::create::ContainerConfig::of(&row)?;
        if !berth_image::mount::is_mountpoint(&engine.rootfs(&row.id)) {
            lifecycle::mount_rootfs(engine, &row.id, &cfg)?;
            guard.id = Some(row.id.clone());
        }
    }
    let rootfs = engine.rootfs(&row.id);
    let root = rustix::fs::open(
        &rootfs,
        OFlags::PATH | OFlags::DIRECTORY | OFlags::CLOEXEC,
        Mode::empty(),
    )
    .map_err(e("open rootfs", &rootfs.to_string_lossy()))?;
    f(root.as_fd(), owner)
}

/// A scratch directory of the engine for a `cp` stream, removed on drop.
struct Scratch(PathBuf);

impl Scratch {
    fn new(engine: &Engine) -> Result<Scratch> {
        let dir = engine.dir("").join(format!(
            ".cp-{}",
            crate::names::new_id().map_err(ioe("name scratch dir", ""))?
        ));
        std::fs::create_dir_all(&dir).map_err(|source| {
            EngineError::Copy(CopyError::Io {
                what: "create",
                path: dir.display().to_string(),
                source,
            })
        })?;
        Ok(Scratch(dir))
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

fn ioe<E: std::fmt::Display>(what: &'static str, path: &str) -> impl FnOnce(E) -> EngineError {
    let path = path.to_string();
    move |err| {
        EngineError::Copy(CopyError::Io {
            what,
            path,
            source: std::io::Error::other(err.to_string()),
        })
    }
}

/// `cp CONTAINER:PATH -`: a tar stream of PATH (named by its last
/// component, as Docker's) written to `out`. The tree is copied out with
/// the same in-root resolution as [`copy`] first, then archived.
pub fn copy_to_tar(engine: &Engine, src: &str, out: impl std::io::Write) -> Result<()> {
    let Side::Container { reference, path } = parse_side(src) else {
        return Err(EngineError::Copy(CopyError::Sides(format!("{src} -"))));
    };
    let scratch = Scratch::new(engine)?;
    let shown = scratch.0.to_string_lossy().into_owned();
    let name = in_rootfs(engine, &reference, |root, _| {
        let sp = place(Some(root), &path)?;
        let name = sp
            .name
            .clone()
            .ok_or(EngineError::Copy(CopyError::WholeRoot))?;
        copy_places(&sp, &place(None, &shown)?)?;
        Ok(name)
    })?;
    let local = scratch.0.join(&name);
    let mut b = tar::Builder::new(out);
    b.follow_symlinks(false);
    let shown = format!("{src} (as a tar stream)");
    let r = if local.symlink_metadata().is_ok_and(|m| m.is_dir()) {
        b.append_dir_all(&name, &local)
    } else {
        b.append_path_with_name(&local, &name)
    };
    r.and_then(|()| b.into_inner().map(drop)).map_err(|source| {
        EngineError::Copy(CopyError::Io {
            what: "write",
            path: shown,
            source,
        })
    })
}

/// `cp - CONTAINER:DIR`: unpacks the tar stream `input` into DIR, an
/// existing directory in the container (Docker's rule). The stream is
/// unpacked into a scratch directory of the engine first (the tar
/// crate refuses entries leaving it), then copied in as [`copy`] does.
pub fn copy_from_tar(engine: &Engine, input: impl std::io::Read, dst: &str) -> Result<()> {
    let Side::Container { reference, path } = parse_side(dst) else {
        return Err(EngineError::Copy(CopyError::Sides(format!("- {dst}"))));
    };
    let scratch = Scratch::new(engine)?;
    tar::Archive::new(input)
        .unpack(&scratch.0)
        .map_err(|source| {
            EngineError::Copy(CopyError::Io {
                what: "read the tar stream for",
                path: dst.into(),
                source,
            })
        })?;
    let names: Vec<PathBuf> = std::fs::read_dir(&scratch.0)
        .map_err(|source| {
            EngineError::Copy(CopyError::Io {
                what: "list",
                path: scratch.0.display().to_string(),
                source,
            })
        })?
        .flatten()
        .map(|e| e.path())
        .collect();
    in_rootfs(engine, &reference, |root, owner| {
        let mut dp = place(Some(root), &path)?;
        dp.owner = owner;
        let is_dir = match &dp.name {
            None => true,
            Some(n) => rustix::fs::statat(&dp.dir, n.as_os_str(), AtFlags::SYMLINK_NOFOLLOW)
                .is_ok_and(|st| FileType::from_raw_mode(st.st_mode) == FileType::Directory),
        };
        if !is_dir {
            return Err(EngineError::Copy(CopyError::NotADirectory(dst.into())));
        }
        for n in &names {
            copy_places(&place(None, &n.to_string_lossy())?, &dp)?;
        }
        Ok(())
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sides_and_split() {
        assert_eq!(
            parse_side("web:/etc/hosts"),
            Side::Container {
                reference: "web".into(),
                path: "/etc/hosts".into()
            }
        );
        assert_eq!(parse_side("./a:b"), Side::Host("./a:b".into()));
        assert_eq!(parse_side("/tmp/x"), Side::Host("/tmp/x".into()));
        assert_eq!(
            parse_side("web:"),
            Side::Container {
                reference: "web".into(),
                path: "/".into()
            }
        );
        assert_eq!(split("/a/b"), ("/a".into(), Some("b".into())));
        assert_eq!(split("b"), (".".into(), Some("b".into())));
        assert_eq!(split("/"), ("/".into(), None));
    }

    #[test]
    fn copies_trees_and_stays_in_root() {
        let d = tempfile::tempdir().expect("tempdir");
        let root = d.path().join("root");
        std::fs::create_dir_all(root.join("etc")).expect("mkdir");
        // A symlink pointing out of the root resolves inside it.
        std::os::unix::fs::symlink("/", root.join("escape")).expect("symlink");
        let src = d.path().join("src");
        std::fs::create_dir_all(src.join("sub")).expect("mkdir");
        std::fs::write(src.join("sub/f"), "data").expect("write");
        std::os::unix::fs::symlink("f", src.join("sub/link")).expect("symlink");
        let rootfd = rustix::fs::open(&root, OFlags::PATH | OFlags::DIRECTORY, Mode::empty())
            .expect("open root");
        let sp = place(None, &src.to_string_lossy()).expect("src");
        let dp = place(Some(rootfd.as_fd()), "/escape/etc").expect("dst");
        copy_places(&sp, &dp).expect("copy in");
        assert_eq!(
            std::fs::read_to_string(root.join("etc/src/sub/f")).expect("copied"),
            "data"
        );
        assert_eq!(
            std::fs::read_link(root.join("etc/src/sub/link")).expect("link"),
            Path::new("f")
        );
        // Out again, to a new name.
        let out = d.path().join("out");
        let sp = place(Some(rootfd.as_fd()), "/etc/src").expect("src");
        let dp = place(None, &out.to_string_lossy()).expect("dst");
        copy_places(&sp, &dp).expect("copy out");
        assert_eq!(
            std::fs::read_to_string(out.join("sub/f")).expect("out"),
            "data"
        );
        let sp = place(Some(rootfd.as_fd()), "/").expect("root");
        assert!(copy_places(&sp, &dp).is_err());
    }
}
