//! Applying one layer tar stream onto an empty snapshot directory, never
//! following a symlink and never leaving the directory: every parent is
//! opened component by component with `O_NOFOLLOW | O_DIRECTORY` from the
//! snapshot's own fd (components are already free of `..`), and every
//! final component is created with an `*at` call relative to its parent.
//! Whiteouts become overlayfs whiteouts (char device 0/0) and opaque markers
//! the `trusted.overlay.opaque=y` xattr, as the snapshots are overlay lowers.
//! Rootless (in a user namespace, see docs/rootless.md): opaque markers are
//! `user.overlay.opaque` (overlayfs' `userxattr`), device nodes are skipped
//! with a note (mknod is not allowed there; podman skips them too), and
//! xattrs the namespace may not set (`trusted.*`) are left out.

use std::ffi::{OsStr, OsString};
use std::fs::File;
use std::io::{self, Read};
use std::os::fd::{AsFd, OwnedFd};
use std::os::unix::ffi::OsStrExt;

use rustix::fs::{
    chmodat, chownat, fchmod, fchown, fsetxattr, futimens, linkat, makedev, mkdirat, mknodat,
    openat, statat, symlinkat, unlinkat, utimensat, AtFlags, FileType, Gid, Mode, OFlags, Timespec,
    Timestamps, Uid, XattrFlags,
};
use tar::EntryType;

use super::path::{EntryKind, EntryPath, PathProblem};

/// Limits against absurd layers.
#[derive(Debug, Clone, Copy)]
pub struct UnpackLimits {
    /// Largest single file.
    pub max_entry_size: u64,
    /// Largest total of file data in one layer.
    pub max_total_size: u64,
    /// Most entries in one layer.
    pub max_entries: u64,
}

impl Default for UnpackLimits {
    fn default() -> Self {
        Self {
            max_entry_size: 64 << 30,
            max_total_size: 256 << 30,
            max_entries: 10_000_000,
        }
    }
}

/// Why applying a layer failed.
#[derive(Debug, thiserror::Error)]
pub enum ApplyError {
    #[error("entry {entry:?} refused: {problem}")]
    Path {
        entry: String,
        #[source]
        problem: PathProblem,
    },
    #[error("entry {entry:?} refused: {reason}")]
    Refused { entry: String, reason: String },
    #[error("entry {entry:?} refused: its path passes through {component:?}, which is a symlink or not a directory; writing through it could leave the rootfs")]
    ThroughNonDir { entry: String, component: String },
    #[error("entry {entry:?}: {op}")]
    Io {
        entry: String,
        op: &'static str,
        #[source]
        source: io::Error,
    },
    #[error("read layer tar stream")]
    Archive(#[source] io::Error),
}

fn io_err<'a>(
    entry: &'a EntryPath,
    op: &'static str,
) -> impl FnOnce(rustix::io::Errno) -> ApplyError + 'a {
    move |e| ApplyError::Io {
        entry: entry.display(),
        op,
        source: e.into(),
    }
}

/// Applies a tar stream onto `root` (an empty directory). Returns after the
/// tar end marker; the caller drains the rest of the stream.
pub fn apply_tar<R: Read>(root: &File, reader: R, limits: UnpackLimits) -> Result<R, ApplyError> {
    let mut archive = tar::Archive::new(reader);
    let mut dir_times: Vec<(EntryPath, i64)> = Vec::new();
    let mut dirs = DirStack::default();
    let mut total: u64 = 0;
    let mut count: u64 = 0;
    let entries = archive.entries().map_err(ApplyError::Archive)?;
    for entry in entries {
        let mut entry = entry.map_err(ApplyError::Archive)?;
        count += 1;
        if count > limits.max_entries {
            return Err(ApplyError::Refused {
                entry: String::from_utf8_lossy(&entry.path_bytes()).into_owned(),
                reason: format!("layer has more than {} entries", limits.max_entries),
            });
        }
        let raw = entry.path_bytes().into_owned();
        let path = EntryPath::parse(&raw).map_err(|problem| ApplyError::Path {
            entry: String::from_utf8_lossy(&raw).into_owned(),
            problem,
        })?;
        let etype = entry.header().entry_type();
        if matches!(
            etype,
            EntryType::XGlobalHeader
                | EntryType::XHeader
                | EntryType::GNULongName
                | EntryType::GNULongLink
        ) {
            continue;
        }
        let size = entry.header().size().map_err(ApplyError::Archive)?;
        if size > limits.max_entry_size {
            return Err(ApplyError::Refused {
                entry: path.display(),
                reason: format!(
                    "size {size} exceeds the per-file limit of {} bytes",
                    limits.max_entry_size
                ),
            });
        }
        total = total.saturating_add(size);
        if total > limits.max_total_size {
            return Err(ApplyError::Refused {
                entry: path.display(),
                reason: format!(
                    "layer data exceeds the limit of {} bytes",
                    limits.max_total_size
                ),
            });
        }
        let kind = path.kind().map_err(|problem| ApplyError::Path {
            entry: path.display(),
            problem,
        })?;
        match kind {
            EntryKind::Ignored => continue,
            EntryKind::Opaque => {
                let (parents, _) = path.split_last().expect("opaque marker has a name");
                let dir = dirs.open(root, parents, true, &path)?;
                let name = crate::mount::overlay_xattr("opaque");
                fsetxattr(&dir, name.as_str(), b"y", XattrFlags::empty()).map_err(io_err(
                    &path,
                    "set the overlay opaque xattr on its directory",
                ))?;
            }
            EntryKind::Whiteout(target) => {
                let (parents, _) = path.split_last().expect("whiteout has a name");
                let dir = match dirs.open(root, parents, true, &path) {
                    Ok(d) => d,
                    // This layer made a parent a file or a symlink (umoci
                    // writes such layers when a directory became a file):
                    // what the whiteout names cannot exist under it, so it
                    // is done already, as podman and Docker take it. The
                    // symlink is never followed.
                    Err(ApplyError::ThroughNonDir { .. }) => continue,
                    Err(e) => return Err(e),
                };
                // layer.md: a whiteout applies only to lower layers; a file
                // of the same layer with that name wins.
                if statat(&dir, target.as_os_str(), AtFlags::SYMLINK_NOFOLLOW).is_err() {
                    mknodat(
                        &dir,
                        target.as_os_str(),
                        FileType::CharacterDevice,
                        Mode::empty(),
                        makedev(0, 0),
                    )
                    .map_err(io_err(&path, "create overlay whiteout (char 0/0)"))?;
                }
            }
            EntryKind::Plain => {
                let xattrs = read_xattrs(&mut entry, &path)?;
                let meta = Meta {
                    uid: entry.header().uid().map_err(ApplyError::Archive)? as u32,
                    gid: entry.header().gid().map_err(ApplyError::Archive)? as u32,
                    mode: entry.header().mode().map_err(ApplyError::Archive)? & 0o7777,
                    mtime: entry.header().mtime().map_err(ApplyError::Archive)? as i64,
                    xattrs,
                };
                if etype == EntryType::Directory {
                    apply_dir(root, &mut dirs, &path, &meta)?;
                    dir_times.push((path, meta.mtime));
                } else {
                    apply_non_dir(root, &mut dirs, &path, etype, &mut entry, &meta, limits)?;
                }
            }
        }
    }
    // Directory mtimes last, deepest first: creating children changed them.
    for (path, mtime) in dir_times.iter().rev() {
        let ts = times(*mtime);
        match path.split_last() {
            None => futimens(root, &ts).map_err(io_err(path, "set mtime"))?,
            Some((parents, name)) => {
                let dir = dirs.open(root, parents, false, path)?;
                utimensat(&dir, name.as_os_str(), &ts, AtFlags::SYMLINK_NOFOLLOW)
                    .map_err(io_err(path, "set mtime"))?;
            }
        }
    }
    Ok(archive.into_inner())
}

struct Meta {
    uid: u32,
    gid: u32,
    mode: u32,
    mtime: i64,
    xattrs: Vec<(OsString, Vec<u8>)>,
}

fn times(mtime: i64) -> Timestamps {
    let t = Timespec {
        tv_sec: mtime,
        tv_nsec: 0,
    };
    Timestamps {
        last_access: t,
        last_modification: t,
    }
}

/// xattrs from PAX `SCHILY.xattr.*` records. `trusted.overlay.*` is refused:
/// a layer must not forge overlayfs metadata (opaque, redirect, metacopy).
fn read_xattrs<R: Read>(
    entry: &mut tar::Entry<'_, R>,
    path: &EntryPath,
) -> Result<Vec<(OsString, Vec<u8>)>, ApplyError> {
    let mut out = Vec::new();
    let Some(exts) = entry.pax_extensions().map_err(ApplyError::Archive)? else {
        return Ok(out);
    };
    for ext in exts {
        let ext = ext.map_err(ApplyError::Archive)?;
        if let Some(name) = ext.key_bytes().strip_prefix(b"SCHILY.xattr.") {
            if name.starts_with(b"trusted.overlay.") || name.starts_with(b"user.overlay.") {
                return Err(ApplyError::Refused {
                    entry: path.display(),
                    reason: format!(
                        "xattr {} forges overlayfs metadata",
                        String::from_utf8_lossy(name)
                    ),
                });
            }
            out.push((
                OsStr::from_bytes(name).to_os_string(),
                ext.value_bytes().to_vec(),
            ));
        }
    }
    Ok(out)
}

/// The directories leading to the last entry, kept open: tar streams list
/// siblings together, so most entries reuse their parent's fd instead of
/// walking from the root again.
#[derive(Default)]
struct DirStack {
    comps: Vec<OsString>,
    fds: Vec<OwnedFd>,
}

impl DirStack {
    /// Opens (a dup of) the directory at `parents` under `root` without
    /// following any symlink; with `create`, missing directories are made
    /// (0755, like tar).
    fn open(
        &mut self,
        root: &File,
        parents: &[OsString],
        create: bool,
        entry: &EntryPath,
    ) -> Result<OwnedFd, ApplyError> {
        let common = self
            .comps
            .iter()
            .zip(parents)
            .take_while(|(a, b)| a == b)
            .count();
        self.truncate(common);
        let flags = OFlags::RDONLY | OFlags::DIRECTORY | OFlags::NOFOLLOW | OFlags::CLOEXEC;
        for c in &parents[common..] {
            let next = {
                let cur: &dyn AsFd = match self.fds.last() {
                    Some(fd) => fd,
                    None => root,
                };
                let cur = cur.as_fd();
                match openat(cur, c.as_os_str(), flags, Mode::empty()) {
                    Ok(fd) => fd,
                    Err(rustix::io::Errno::NOENT) if create => {
                        mkdirat(cur, c.as_os_str(), Mode::from_raw_mode(0o755))
                            .map_err(io_err(entry, "create parent directory"))?;
                        openat(cur, c.as_os_str(), flags, Mode::empty())
                            .map_err(io_err(entry, "open parent directory"))?
                    }
                    Err(rustix::io::Errno::LOOP) | Err(rustix::io::Errno::NOTDIR) => {
                        return Err(ApplyError::ThroughNonDir {
                            entry: entry.display(),
                            component: c.to_string_lossy().into_owned(),
                        })
                    }
                    Err(e) => return Err(io_err(entry, "open parent directory")(e)),
                }
            };
            self.comps.push(c.clone());
            self.fds.push(next);
        }
        let top: &dyn AsFd = match self.fds.last() {
            Some(fd) => fd,
            None => root,
        };
        top.as_fd()
            .try_clone_to_owned()
            .map_err(|source| ApplyError::Io {
                entry: entry.display(),
                op: "duplicate directory fd",
                source,
            })
    }

    /// Forgets cached directories deeper than `depth` (after an entry at
    /// that depth was removed or replaced).
    fn truncate(&mut self, depth: usize) {
        self.comps.truncate(depth);
        self.fds.truncate(depth);
    }
}

/// Removes whatever is at `name` unless `keep_dir` and it is a directory.
/// Returns whether a directory was kept.
fn clear_slot(
    dir: &OwnedFd,
    name: &OsStr,
    keep_dir: bool,
    entry: &EntryPath,
    depth: usize,
    dirs: &mut DirStack,
) -> Result<bool, ApplyError> {
    let st = match statat(dir, name, AtFlags::SYMLINK_NOFOLLOW) {
        Ok(st) => st,
        Err(rustix::io::Errno::NOENT) => return Ok(false),
        Err(e) => return Err(io_err(entry, "stat existing entry")(e)),
    };
    let is_dir = FileType::from_raw_mode(st.st_mode) == FileType::Directory;
    if is_dir && keep_dir {
        return Ok(true);
    }
    let flags = if is_dir {
        AtFlags::REMOVEDIR
    } else {
        AtFlags::empty()
    };
    dirs.truncate(depth);
    if is_dir {
        // A directory of this layer replaced by a non-directory goes with
        // what it holds (Docker's applyLayer removes it all too), e.g.
        // whiteouts written under it before.
        empty_dir(dir, name, entry)?;
    }
    unlinkat(dir, name, flags)
        .map_err(io_err(entry, "replace existing entry of the same layer"))?;
    Ok(false)
}

/// Removes everything inside the directory `name` of `dir`, opening each
/// level with `O_NOFOLLOW` (nothing outside the snapshot is touched).
fn empty_dir(dir: &OwnedFd, name: &OsStr, entry: &EntryPath) -> Result<(), ApplyError> {
    let fd = openat(
        dir,
        name,
        OFlags::RDONLY | OFlags::DIRECTORY | OFlags::NOFOLLOW | OFlags::CLOEXEC,
        Mode::empty(),
    )
    .map_err(io_err(entry, "open the directory it replaces"))?;
    let mut children = Vec::new();
    for ent in
        rustix::fs::Dir::read_from(&fd).map_err(io_err(entry, "list the directory it replaces"))?
    {
        let ent = ent.map_err(io_err(entry, "list the directory it replaces"))?;
        let n = OsStr::from_bytes(ent.file_name().to_bytes()).to_os_string();
        if n != "." && n != ".." {
            let ft = match ent.file_type() {
                FileType::Unknown => statat(&fd, n.as_os_str(), AtFlags::SYMLINK_NOFOLLOW)
                    .map(|st| FileType::from_raw_mode(st.st_mode))
                    .map_err(io_err(entry, "stat inside the directory it replaces"))?,
                ft => ft,
            };
            children.push((n, ft == FileType::Directory));
        }
    }
    for (n, is_dir) in children {
        let flags = if is_dir {
            empty_dir(&fd, &n, entry)?;
            AtFlags::REMOVEDIR
        } else {
            AtFlags::empty()
        };
        unlinkat(&fd, n.as_os_str(), flags)
            .map_err(io_err(entry, "remove inside the directory it replaces"))?;
    }
    Ok(())
}

fn apply_dir(
    root: &File,
    dirs: &mut DirStack,
    path: &EntryPath,
    meta: &Meta,
) -> Result<(), ApplyError> {
    let fd = match path.split_last() {
        None => openat(
            root,
            ".",
            OFlags::RDONLY | OFlags::DIRECTORY | OFlags::CLOEXEC,
            Mode::empty(),
        )
        .map_err(io_err(path, "open snapshot root"))?,
        Some((parents, name)) => {
            let dir = dirs.open(root, parents, true, path)?;
            if !clear_slot(&dir, name, true, path, parents.len(), dirs)? {
                mkdirat(&dir, name.as_os_str(), Mode::from_raw_mode(0o700))
                    .map_err(io_err(path, "create directory"))?;
            }
            openat(
                &dir,
                name.as_os_str(),
                OFlags::RDONLY | OFlags::DIRECTORY | OFlags::NOFOLLOW | OFlags::CLOEXEC,
                Mode::empty(),
            )
            .map_err(io_err(path, "open directory"))?
        }
    };
    set_fd_meta(&fd, path, meta)
}

/// The error of a failed chown: in a user namespace, EINVAL means the
/// owner is not mapped (rootless: ids past the user's subordinate range).
fn owner_err(path: &EntryPath, meta: &Meta, e: rustix::io::Errno) -> ApplyError {
    if e == rustix::io::Errno::INVAL && crate::mount::in_user_namespace() {
        return ApplyError::Refused {
            entry: path.display(),
            reason: format!(
                "owner {}:{} is not mapped in the rootless user namespace (container ids above 0 come from the user's range in /etc/subuid and /etc/subgid); give the user a larger range (usermod --add-subuids/--add-subgids) and remove the rootless namespace's pause process",
                meta.uid, meta.gid
            ),
        };
    }
    io_err(path, "set owner")(e)
}

/// Owner, then mode (chown clears setuid/setgid), then xattrs and mtime.
fn set_fd_meta(fd: &OwnedFd, path: &EntryPath, meta: &Meta) -> Result<(), ApplyError> {
    fchown(
        fd,
        Some(Uid::from_raw(meta.uid)),
        Some(Gid::from_raw(meta.gid)),
    )
    .map_err(|e| owner_err(path, meta, e))?;
    fchmod(fd, Mode::from_raw_mode(meta.mode)).map_err(io_err(path, "set mode"))?;
    for (name, value) in &meta.xattrs {
        match fsetxattr(fd, name.as_os_str(), value, XattrFlags::empty()) {
            Ok(()) => {}
            // A user namespace may not set trusted.* (nor security.* but
            // capabilities): left out, as podman does rootless.
            Err(rustix::io::Errno::PERM) if crate::mount::in_user_namespace() => {
                tracing::debug!(
                    "{}: xattr {} not set in the user namespace",
                    path.display(),
                    name.to_string_lossy()
                );
            }
            Err(e) => return Err(io_err(path, "set xattr")(e)),
        }
    }
    futimens(fd, &times(meta.mtime)).map_err(io_err(path, "set mtime"))
}

fn apply_non_dir<R: Read>(
    root: &File,
    dirs: &mut DirStack,
    path: &EntryPath,
    etype: EntryType,
    entry: &mut tar::Entry<'_, R>,
    meta: &Meta,
    limits: UnpackLimits,
) -> Result<(), ApplyError> {
    let Some((parents, name)) = path.split_last() else {
        return Err(ApplyError::Refused {
            entry: path.display(),
            reason: "the rootfs itself can only be a directory".to_string(),
        });
    };
    let dir = dirs.open(root, parents, true, path)?;
    clear_slot(&dir, name, false, path, parents.len(), dirs)?;
    let name = name.as_os_str();
    match etype {
        EntryType::Regular | EntryType::Continuous | EntryType::GNUSparse => {
            let fd = openat(
                &dir,
                name,
                OFlags::WRONLY | OFlags::CREATE | OFlags::EXCL | OFlags::NOFOLLOW | OFlags::CLOEXEC,
                Mode::from_raw_mode(0o600),
            )
            .map_err(io_err(path, "create file"))?;
            let mut file = File::from(fd);
            let written = io::copy(&mut entry.take(limits.max_entry_size + 1), &mut file).map_err(
                |source| ApplyError::Io {
                    entry: path.display(),
                    op: "write file data",
                    source,
                },
            )?;
            if written > limits.max_entry_size {
                return Err(ApplyError::Refused {
                    entry: path.display(),
                    reason: format!(
                        "file data exceeds the per-file limit of {} bytes",
                        limits.max_entry_size
                    ),
                });
            }
            set_fd_meta(&OwnedFd::from(file), path, meta)
        }
        EntryType::Symlink => {
            let target = entry
                .link_name_bytes()
                .ok_or_else(|| ApplyError::Refused {
                    entry: path.display(),
                    reason: "symlink without target".to_string(),
                })?
                .into_owned();
            // The target is stored as-is: it is resolved later inside the
            // container's root, and nothing here ever follows it.
            symlinkat(OsStr::from_bytes(&target), &dir, name)
                .map_err(io_err(path, "create symlink"))?;
            chownat(
                &dir,
                name,
                Some(Uid::from_raw(meta.uid)),
                Some(Gid::from_raw(meta.gid)),
                AtFlags::SYMLINK_NOFOLLOW,
            )
            .map_err(|e| owner_err(path, meta, e))?;
            utimensat(&dir, name, &times(meta.mtime), AtFlags::SYMLINK_NOFOLLOW)
                .map_err(io_err(path, "set symlink mtime"))
        }
        EntryType::Link => {
            let raw = entry
                .link_name_bytes()
                .ok_or_else(|| ApplyError::Refused {
                    entry: path.display(),
                    reason: "hard link without target".to_string(),
                })?
                .into_owned();
            let target = EntryPath::parse(&raw).map_err(|problem| ApplyError::Refused {
                entry: path.display(),
                reason: format!(
                    "hard link target {:?}: {problem}",
                    String::from_utf8_lossy(&raw)
                ),
            })?;
            let Some((tparents, tname)) = target.split_last() else {
                return Err(ApplyError::Refused {
                    entry: path.display(),
                    reason: "hard link to the rootfs directory".to_string(),
                });
            };
            let tdir = dirs.open(root, tparents, false, path)?;
            linkat(&tdir, tname.as_os_str(), &dir, name, AtFlags::empty()).map_err(|e| ApplyError::Refused {
                entry: path.display(),
                reason: format!(
                    "hard link to {:?} failed ({e}); the target must be a non-directory earlier in the same layer",
                    target.display()
                ),
            })
        }
        EntryType::Char | EntryType::Block if crate::mount::in_user_namespace() => {
            // mknod of devices needs root on the host; a container gets
            // its devices from the runtime anyway.
            eprintln!(
                "berth: note: layer device node /{} skipped (device nodes cannot be created rootless)",
                path.display()
            );
            Ok(())
        }
        EntryType::Char | EntryType::Block | EntryType::Fifo => {
            let (ft, dev) = match etype {
                EntryType::Fifo => (FileType::Fifo, makedev(0, 0)),
                _ => {
                    let major = entry
                        .header()
                        .device_major()
                        .map_err(ApplyError::Archive)?
                        .unwrap_or(0);
                    let minor = entry
                        .header()
                        .device_minor()
                        .map_err(ApplyError::Archive)?
                        .unwrap_or(0);
                    let ft = if etype == EntryType::Char {
                        FileType::CharacterDevice
                    } else {
                        FileType::BlockDevice
                    };
                    (ft, makedev(major, minor))
                }
            };
            mknodat(&dir, name, ft, Mode::from_raw_mode(0o600), dev)
                .map_err(io_err(path, "create device node or fifo"))?;
            chownat(
                &dir,
                name,
                Some(Uid::from_raw(meta.uid)),
                Some(Gid::from_raw(meta.gid)),
                AtFlags::SYMLINK_NOFOLLOW,
            )
            .map_err(|e| owner_err(path, meta, e))?;
            chmodat(&dir, name, Mode::from_raw_mode(meta.mode), AtFlags::empty())
                .map_err(io_err(path, "set mode"))?;
            utimensat(&dir, name, &times(meta.mtime), AtFlags::SYMLINK_NOFOLLOW)
                .map_err(io_err(path, "set mtime"))
        }
        other => Err(ApplyError::Refused {
            entry: path.display(),
            reason: format!("unsupported tar entry type {other:?}"),
        }),
    }
}
