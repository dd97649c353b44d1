//! Applying the container's mounts inside its mount namespace, before
//! pivot_root (runtime-spec config.md "Mounts", config-linux.md "Masked
//! Paths", "Readonly Paths", "rootfsPropagation").

use crate::config::{ContainerConfig, MountSpec};
use crate::rootfs_path::{self, fd_path, PathError};
use nix::mount::{mount, umount2, MntFlags, MsFlags};
use rustix::fs::OFlags;
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::path::{Path, PathBuf};

/// Errors while setting up the container's filesystem.
#[derive(Debug, thiserror::Error)]
pub enum MountError {
    #[error(transparent)]
    Path(#[from] PathError),
    #[error("cannot mount {what} on {dest:?}: {source}")]
    Mount {
        what: String,
        dest: PathBuf,
        #[source]
        source: nix::Error,
    },
    #[error("cannot {op} {path:?}: {source}")]
    Io {
        op: &'static str,
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("{0} is not supported by berth yet")]
    Unsupported(String),
    #[error("filesystem {typ:?} must be mounted on an ordinary directory, but {dest:?} in the rootfs is a symlink or not a directory (or has a symlink on its way): replace it with a directory")]
    NotOrdinaryDir { typ: String, dest: PathBuf },
}

fn merr(what: impl Into<String>, dest: &Path) -> impl FnOnce(nix::Error) -> MountError {
    let what = what.into();
    let dest = dest.to_path_buf();
    move |source| MountError::Mount { what, dest, source }
}

/// Step 1: make our copy of the host's mounts stop propagating back to the
/// host, then bind the rootfs onto itself so it is a mount point for
/// pivot_root. Returns an O_PATH fd of the rootfs.
pub fn prepare_rootfs(cfg: &ContainerConfig) -> Result<OwnedFd, MountError> {
    let root = Path::new("/");
    // An unbindable root could not be bound onto itself below: it becomes
    // unbindable only after pivot_root (finish_root).
    let prop = cfg
        .rootfs_propagation
        .filter(|p| !p.contains(MsFlags::MS_UNBINDABLE))
        .unwrap_or(MsFlags::MS_SLAVE | MsFlags::MS_REC);
    // runc: the whole tree becomes rslave (or the configured propagation),
    // so nothing the container mounts leaks to the host.
    mount(None::<&str>, root, None::<&str>, prop, None::<&str>)
        .map_err(merr("root propagation", root))?;
    // After a recursive slave or private, no mount is shared any more: the
    // rootfs' parent needs no fix (and mountinfo no reading).
    let none_shared =
        prop.contains(MsFlags::MS_REC) && prop.intersects(MsFlags::MS_SLAVE | MsFlags::MS_PRIVATE);
    if !none_shared {
        make_parent_mount_private(&cfg.rootfs)?;
    }
    mount(
        Some(&cfg.rootfs),
        &cfg.rootfs,
        None::<&str>,
        MsFlags::MS_BIND | MsFlags::MS_REC,
        None::<&str>,
    )
    .map_err(merr("rootfs bind", &cfg.rootfs))?;
    rustix::fs::open(
        &cfg.rootfs,
        OFlags::PATH | OFlags::DIRECTORY | OFlags::CLOEXEC,
        rustix::fs::Mode::empty(),
    )
    .map_err(|e| MountError::Io {
        op: "open rootfs",
        path: cfg.rootfs.clone(),
        source: e.into(),
    })
}

fn read_mountinfo() -> Result<String, MountError> {
    std::fs::read_to_string("/proc/self/mountinfo").map_err(|source| MountError::Io {
        op: "read",
        path: "/proc/self/mountinfo".into(),
        source,
    })
}

/// pivot_root fails when the rootfs' parent mount is shared; make it
/// private (runc's rootfsParentMountPrivate).
fn make_parent_mount_private(rootfs: &Path) -> Result<(), MountError> {
    let info = read_mountinfo()?;
    let mut best: Option<(PathBuf, bool)> = None;
    for line in info.lines() {
        let f: Vec<&str> = line.split(' ').collect();
        if f.len() < 7 {
            continue;
        }
        let mp = PathBuf::from(unescape_mountinfo(f[4]));
        if !rootfs.starts_with(&mp) {
            continue;
        }
        let shared = f[6..]
            .iter()
            .take_while(|x| **x != "-")
            .any(|x| x.starts_with("shared:"));
        if best
            .as_ref()
            .is_none_or(|(b, _)| mp.as_os_str().len() >= b.as_os_str().len())
        {
            best = Some((mp, shared));
        }
    }
    if let Some((mp, true)) = best {
        mount(
            None::<&str>,
            &mp,
            None::<&str>,
            MsFlags::MS_PRIVATE,
            None::<&str>,
        )
        .map_err(merr("private propagation", &mp))?;
    }
    Ok(())
}

/// Undo mountinfo's octal escapes (`\040` for space and so on).
pub fn unescape_mountinfo(s: &str) -> String {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'\\' && i + 4 <= b.len() {
            let oct = &b[i + 1..i + 4];
            if oct.iter().all(|c| (b'0'..=b'7').contains(c)) {
                let v = oct.iter().fold(0u32, |a, c| a * 8 + u32::from(c - b'0'));
                if let Ok(v) = u8::try_from(v) {
                    out.push(v);
                    i += 4;
                    continue;
                }
            }
        }
        out.push(b[i]);
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// Step 2: every mount of the config, in order. `idmaps` holds, per
/// mount, the prepared tree of an idmapped mount.
pub fn mount_all(
    cfg: &ContainerConfig,
    root: BorrowedFd<'_>,
    idmaps: &[Option<OwnedFd>],
) -> Result<(), MountError> {
    // Refuse before anything is mounted (CVE-2019-16884, CVE-2019-19921).
    for m in &cfg.mounts {
        check_ordinary_dir(root, m)?;
    }
    for (i, m) in cfg.mounts.iter().enumerate() {
        match idmaps.get(i).and_then(Option::as_ref) {
            Some(tree) => idmapped_bind(root, m, tree.as_fd())?,
            None => mount_one(cfg, root, m)?,
        }
    }
    Ok(())
}

/// An idmapped bind mount: the runtime prepared the detached, idmapped
/// tree (see idmap.rs); move it onto the destination.
fn idmapped_bind(
    root: BorrowedFd<'_>,
    m: &MountSpec,
    tree: BorrowedFd<'_>,
) -> Result<(), MountError> {
    use rustix::mount::MoveMountFlags;
    let dest_fd = if rootfs_path::is_dir(tree) {
        rootfs_path::mkdir_all(root, &m.destination, 0o755)?
    } else {
        rootfs_path::ensure_file(root, &m.destination)?
    };
    rustix::mount::move_mount(
        tree,
        "",
        &dest_fd,
        "",
        MoveMountFlags::MOVE_MOUNT_F_EMPTY_PATH | MoveMountFlags::MOVE_MOUNT_T_EMPTY_PATH,
    )
    .map_err(|e| MountError::Io {
        op: "move the idmapped mount onto",
        path: m.destination.clone(),
        source: e.into(),
    })?;
    let fd = rootfs_path::open_in_root(root, &m.destination, OFlags::PATH)?;
    let extra = m.options.flags & !(MsFlags::MS_BIND | MsFlags::MS_REC | MsFlags::MS_REMOUNT);
    if !extra.is_empty() {
        remount_bind(fd.as_fd(), extra, &m.destination)?;
    }
    finish_mount(fd.as_fd(), m)
}

/// procfs and sysfs go on an ordinary directory only: a symlink at (or on
/// the way to) their destination is refused, even one that stays inside
/// the rootfs, as runc and youki do (CVE-2019-16884, CVE-2019-19921). A
/// missing destination is fine: it is created as a directory.
fn check_ordinary_dir(root: BorrowedFd<'_>, m: &MountSpec) -> Result<(), MountError> {
    if m.is_bind() || !matches!(m.typ.as_str(), "proc" | "sysfs") {
        return Ok(());
    }
    let refuse = || MountError::NotOrdinaryDir {
        typ: m.typ.clone(),
        dest: m.destination.clone(),
    };
    let rel: PathBuf = m
        .destination
        .components()
        .filter(|c| matches!(c, std::path::Component::Normal(_)))
        .collect();
    if rel.as_os_str().is_empty() {
        return Err(refuse());
    }
    match rustix::fs::openat2(
        root,
        &rel,
        OFlags::PATH | OFlags::NOFOLLOW | OFlags::CLOEXEC,
        rustix::fs::Mode::empty(),
        rustix::fs::ResolveFlags::NO_SYMLINKS | rustix::fs::ResolveFlags::BENEATH,
    ) {
        Ok(fd) if rootfs_path::is_dir(&fd) => Ok(()),
        Ok(_) | Err(rustix::io::Errno::LOOP) | Err(rustix::io::Errno::NOTDIR) => Err(refuse()),
        Err(rustix::io::Errno::NOENT) => Ok(()),
        Err(e) => Err(MountError::Io {
            op: "check the mount point",
            path: m.destination.clone(),
            source: e.into(),
        }),
    }
}

/// The mount on `/dev`, if any (runc: the flags of "/dev" exactly).
fn dev_mount(cfg: &ContainerConfig) -> Option<&MountSpec> {
    cfg.mounts.iter().rev().find(|m| {
        m.destination
            .components()
            .eq(Path::new("/dev").components())
    })
}

/// A read-only `/dev` is mounted read-write first, so that `/dev/pts`,
/// `/dev/shm`, `/dev/mqueue` and the default devices can be made in it,
/// and remounted read-only once they are (runc's finalizeRootfs).
pub fn remount_dev_readonly(cfg: &ContainerConfig, root: BorrowedFd<'_>) -> Result<(), MountError> {
    let Some(m) = dev_mount(cfg) else {
        return Ok(());
    };
    if !m.options.flags.contains(MsFlags::MS_RDONLY) {
        return Ok(());
    }
    let fd = rootfs_path::open_in_root(root, &m.destination, OFlags::PATH)?;
    let keep = m.options.flags
        & (MsFlags::MS_NOSUID | MsFlags::MS_NODEV | MsFlags::MS_NOEXEC | MsFlags::MS_NOATIME);
    remount_bind(fd.as_fd(), MsFlags::MS_RDONLY | keep, &m.destination)
}

/// The flags to mount `m` with now: without MS_RDONLY for `/dev` (see
/// [`remount_dev_readonly`]).
fn first_flags(m: &MountSpec) -> MsFlags {
    let mut f = m.options.flags;
    if m.destination
        .components()
        .eq(Path::new("/dev").components())
    {
        f.remove(MsFlags::MS_RDONLY);
    }
    f
}

fn mount_one(cfg: &ContainerConfig, root: BorrowedFd<'_>, m: &MountSpec) -> Result<(), MountError> {
    if m.is_bind() {
        return bind_mount(root, m);
    }
    match m.typ.as_str() {
        "cgroup" | "cgroup2" => return crate::cgroup_mount::mount_cgroup(cfg, root, m),
        _ => {}
    }
    check_ordinary_dir(root, m)?;
    let dest_fd = rootfs_path::mkdir_all(root, &m.destination, 0o755)?;
    let target = fd_path(dest_fd.as_fd());
    let source = m
        .source
        .clone()
        .unwrap_or_else(|| PathBuf::from(m.typ.clone()));
    let data = (!m.options.data.is_empty()).then_some(m.options.data.as_str());
    let flags = first_flags(m) & !MsFlags::MS_REMOUNT;
    let res = mount(Some(&source), &target, Some(m.typ.as_str()), flags, data);
    match res {
        Ok(()) => {}
        // sysfs cannot be mounted in a user namespace without its own
        // network namespace: bind the host's, read-only (runc does too).
        Err(nix::Error::EPERM) if m.typ == "sysfs" => {
            mount(
                Some("/sys"),
                &target,
                None::<&str>,
                MsFlags::MS_BIND | MsFlags::MS_REC,
                None::<&str>,
            )
            .map_err(merr("/sys bind", &m.destination))?;
            let fd = rootfs_path::open_in_root(root, &m.destination, OFlags::PATH)?;
            remount_bind(fd.as_fd(), flags | MsFlags::MS_RDONLY, &m.destination)?;
        }
        Err(e) => {
            return Err(merr(
                format!("{} ({})", m.typ, source.display()),
                &m.destination,
            )(e))
        }
    }
    let fd = rootfs_path::open_in_root(root, &m.destination, OFlags::PATH)?;
    if m.options.tmpcopyup {
        copy_up(dest_fd.as_fd(), fd.as_fd(), &m.destination)?;
    }
    finish_mount(fd.as_fd(), m)
}

fn bind_mount(root: BorrowedFd<'_>, m: &MountSpec) -> Result<(), MountError> {
    let source = m
        .source
        .as_ref()
        .expect("validated: bind mounts have a source");
    let src_fd = rustix::fs::open(
        source,
        OFlags::PATH | OFlags::CLOEXEC,
        rustix::fs::Mode::empty(),
    )
    .map_err(|e| MountError::Io {
        op: "open bind source",
        path: source.clone(),
        source: e.into(),
    })?;
    let dest_fd = if rootfs_path::is_dir(&src_fd) {
        rootfs_path::mkdir_all(root, &m.destination, 0o755)?
    } else {
        rootfs_path::ensure_file(root, &m.destination)?
    };
    let mut flags = MsFlags::MS_BIND;
    if m.options.recursive_bind {
        flags |= MsFlags::MS_REC;
    }
    mount(
        Some(&fd_path(src_fd.as_fd())),
        &fd_path(dest_fd.as_fd()),
        None::<&str>,
        flags,
        None::<&str>,
    )
    .map_err(merr(
        format!("bind of {}", source.display()),
        &m.destination,
    ))?;
    let fd = rootfs_path::open_in_root(root, &m.destination, OFlags::PATH)?;
    let extra = first_flags(m) & !(MsFlags::MS_BIND | MsFlags::MS_REC | MsFlags::MS_REMOUNT);
    if !extra.is_empty() {
        remount_bind(fd.as_fd(), extra, &m.destination)?;
    }
    finish_mount(fd.as_fd(), m)
}

/// Propagation and recursive attributes, after the mount exists.
fn finish_mount(fd: BorrowedFd<'_>, m: &MountSpec) -> Result<(), MountError> {
    for p in &m.options.propagation {
        mount(None::<&str>, &fd_path(fd), None::<&str>, *p, None::<&str>)
            .map_err(merr("propagation", &m.destination))?;
    }
    if m.options.rec_set != 0 || m.options.rec_clear != 0 {
        berth_sys::mount_attr::mount_setattr(
            fd,
            true,
            m.options.rec_set,
            m.options.rec_clear,
            None,
        )
        .map_err(|source| MountError::Io {
            op: "set recursive mount attributes on",
            path: m.destination.clone(),
            source,
        })?;
    }
    Ok(())
}

/// Remount a bind mount with `flags`, keeping the flags the kernel locked on
/// it (a remount that drops nosuid/nodev/noexec fails in a user namespace).
pub fn remount_bind(fd: BorrowedFd<'_>, flags: MsFlags, dest: &Path) -> Result<(), MountError> {
    let mut keep = MsFlags::empty();
    if let Ok(st) = nix::sys::statvfs::fstatvfs(fd) {
        use nix::sys::statvfs::FsFlags;
        let f = st.flags();
        for (fs, ms) in [
            (FsFlags::ST_NOSUID, MsFlags::MS_NOSUID),
            (FsFlags::ST_NODEV, MsFlags::MS_NODEV),
            (FsFlags::ST_NOEXEC, MsFlags::MS_NOEXEC),
            (FsFlags::ST_NOATIME, MsFlags::MS_NOATIME),
            (FsFlags::ST_NODIRATIME, MsFlags::MS_NODIRATIME),
            (FsFlags::ST_RELATIME, MsFlags::MS_RELATIME),
        ] {
            if f.contains(fs) {
                keep |= ms;
            }
        }
    }
    mount(
        None::<&str>,
        &fd_path(fd),
        None::<&str>,
        MsFlags::MS_BIND | MsFlags::MS_REMOUNT | flags | keep,
        None::<&str>,
    )
    .map_err(merr("read-only/flags remount", dest))
}

/// runc's `tmpcopyup`: copy what was under the tmpfs into it.
fn copy_up(under: BorrowedFd<'_>, over: BorrowedFd<'_>, dest: &Path) -> Result<(), MountError> {
    // cp is another process: /proc/self/fd/N would name cp's own (closed)
    // descriptors. The covered directory has no path any more, so cp starts
    // in it (the chdir happens in the forked child, where the descriptor is
    // still open); the tmpfs on top is reached by its resolved path.
    let from = fd_path(under);
    let to = std::fs::read_link(fd_path(over)).map_err(|source| MountError::Io {
        op: "resolve the tmpfs for tmpcopyup on",
        path: dest.to_path_buf(),
        source,
    })?;
    let status = std::process::Command::new("/bin/cp")
        .arg("-a")
        .arg(".")
        .arg(&to)
        .current_dir(&from)
        .status()
        .map_err(|source| MountError::Io {
            op: "run cp for tmpcopyup on",
            path: dest.to_path_buf(),
            source,
        })?;
    if !status.success() {
        return Err(MountError::Io {
            op: "tmpcopyup",
            path: dest.to_path_buf(),
            source: std::io::Error::other(format!("cp exited with {status}")),
        });
    }
    Ok(())
}

/// Open the current "/" (close-on-exec) with `flags`.
fn open_slash(flags: OFlags) -> Result<OwnedFd, MountError> {
    rustix::fs::open("/", flags | OFlags::CLOEXEC, rustix::fs::Mode::empty()).map_err(|e| {
        MountError::Io {
            op: "open",
            path: "/".into(),
            source: e.into(),
        }
    })
}

/// After pivot_root: mask paths (bind /dev/null over files, an empty
/// read-only tmpfs over directories) and make paths read-only.
pub fn mask_and_protect(cfg: &ContainerConfig) -> Result<(), MountError> {
    let root = open_slash(OFlags::PATH | OFlags::DIRECTORY)?;
    for p in &cfg.readonly_paths {
        let fd = match rootfs_path::open_in_root(root.as_fd(), p, OFlags::PATH) {
            Ok(fd) => fd,
            Err(PathError::Io { source, .. }) if source.raw_os_error() == Some(libc::ENOENT) => {
                continue
            }
            Err(e) => return Err(e.into()),
        };
        mount(
            Some(&fd_path(fd.as_fd())),
            &fd_path(fd.as_fd()),
            None::<&str>,
            MsFlags::MS_BIND | MsFlags::MS_REC,
            None::<&str>,
        )
        .map_err(merr("readonly path bind", p))?;
        let fd = rootfs_path::open_in_root(root.as_fd(), p, OFlags::PATH)?;
        remount_bind(fd.as_fd(), MsFlags::MS_RDONLY | MsFlags::MS_REC, p)?;
    }
    for p in &cfg.masked_paths {
        let fd = match rootfs_path::open_in_root(root.as_fd(), p, OFlags::PATH) {
            Ok(fd) => fd,
            Err(PathError::Io { source, .. }) if source.raw_os_error() == Some(libc::ENOENT) => {
                continue
            }
            Err(e) => return Err(e.into()),
        };
        if rootfs_path::is_dir(&fd) {
            mount(
                Some("tmpfs"),
                &fd_path(fd.as_fd()),
                Some("tmpfs"),
                MsFlags::MS_RDONLY,
                Some("size=0k"),
            )
            .map_err(merr("masking tmpfs", p))?;
        } else {
            mount(
                Some("/dev/null"),
                &fd_path(fd.as_fd()),
                None::<&str>,
                MsFlags::MS_BIND,
                None::<&str>,
            )
            .map_err(merr("/dev/null mask", p))?;
        }
    }
    Ok(())
}

/// pivot_root into the rootfs and detach the old root (runc's technique:
/// pivot_root(".", ".") then unmount the old root stacked underneath).
pub fn pivot_root(rootfs: &Path) -> Result<(), MountError> {
    let oldroot = open_slash(OFlags::DIRECTORY | OFlags::RDONLY)?;
    nix::unistd::chdir(rootfs).map_err(merr("chdir", rootfs))?;
    nix::unistd::pivot_root(".", ".").map_err(merr("pivot_root", rootfs))?;
    rustix::process::fchdir(&oldroot).map_err(|e| MountError::Io {
        op: "fchdir to old root",
        path: "/".into(),
        source: e.into(),
    })?;
    mount(
        None::<&str>,
        ".",
        None::<&str>,
        MsFlags::MS_SLAVE | MsFlags::MS_REC,
        None::<&str>,
    )
    .map_err(merr("old root propagation", Path::new("/")))?;
    umount2(".", MntFlags::MNT_DETACH).map_err(merr("detach old root", Path::new("/")))?;
    nix::unistd::chdir("/").map_err(merr("chdir", Path::new("/")))?;
    Ok(())
}

/// `--no-pivot`: move the rootfs over / and chroot into it.
pub fn move_root(rootfs: &Path) -> Result<(), MountError> {
    hide_host_proc_sys(rootfs)?;
    nix::unistd::chdir(rootfs).map_err(merr("chdir", rootfs))?;
    mount(
        Some(rootfs),
        "/",
        None::<&str>,
        MsFlags::MS_MOVE,
        None::<&str>,
    )
    .map_err(merr("move rootfs", rootfs))?;
    nix::unistd::chroot(".").map_err(merr("chroot", rootfs))?;
    nix::unistd::chdir("/").map_err(merr("chdir", Path::new("/")))?;
    Ok(())
}

/// A container without a mount namespace: chroot into the rootfs (the
/// mounts were made in the caller's namespace).
pub fn chroot_root(rootfs: &Path) -> Result<(), MountError> {
    nix::unistd::chdir(rootfs).map_err(merr("chdir", rootfs))?;
    nix::unistd::chroot(".").map_err(merr("chroot", rootfs))?;
    nix::unistd::chdir("/").map_err(merr("chdir", Path::new("/")))?;
    Ok(())
}

/// Before `--no-pivot` moves the rootfs over `/`, take away every full
/// procfs and sysfs of the host's tree that stays in the mount namespace
/// (runc's msMoveRoot): the container could otherwise mount a fresh procfs
/// in a user namespace of its own (the kernel allows that only where a full
/// one is visible) and see what maskedPaths hide. Unmounted lazily, or
/// covered with an empty tmpfs where that is not allowed.
fn hide_host_proc_sys(rootfs: &Path) -> Result<(), MountError> {
    let info = read_mountinfo()?;
    let mut targets = Vec::new();
    for line in info.lines() {
        let Some((pre, post)) = line.split_once(" - ") else {
            continue;
        };
        let f: Vec<&str> = pre.split(' ').collect();
        let fstype = post.split(' ').next().unwrap_or("");
        if f.len() < 5 || f[3] != "/" || !matches!(fstype, "proc" | "sysfs") {
            continue;
        }
        let mp = PathBuf::from(unescape_mountinfo(f[4]));
        if mp.starts_with(rootfs) {
            continue;
        }
        targets.push(mp);
    }
    for mp in targets {
        // Our tree is already a slave of the host's: nothing propagates
        // back; make sure of it for this mount as well.
        match mount(
            None::<&str>,
            &mp,
            None::<&str>,
            MsFlags::MS_SLAVE | MsFlags::MS_REC,
            None::<&str>,
        ) {
            Ok(()) => {}
            // A parent of it went away already.
            Err(nix::Error::ENOENT) => continue,
            Err(e) => return Err(merr("slave propagation", &mp)(e)),
        }
        match umount2(&mp, MntFlags::MNT_DETACH) {
            Ok(()) => {}
            Err(nix::Error::EINVAL | nix::Error::EPERM) => {
                mount(
                    Some("tmpfs"),
                    &mp,
                    Some("tmpfs"),
                    MsFlags::empty(),
                    None::<&str>,
                )
                .map_err(merr("tmpfs cover", &mp))?;
            }
            Err(e) => return Err(merr("detach host filesystem", &mp)(e)),
        }
    }
    Ok(())
}

/// After pivot_root: the configured propagation of `/` and a read-only root.
pub fn finish_root(cfg: &ContainerConfig) -> Result<(), MountError> {
    if let Some(p) = cfg.rootfs_propagation {
        mount(None::<&str>, "/", None::<&str>, p, None::<&str>)
            .map_err(merr("rootfs propagation", Path::new("/")))?;
    }
    if cfg.root_readonly {
        let fd = open_slash(OFlags::PATH | OFlags::DIRECTORY)?;
        remount_bind(fd.as_fd(), MsFlags::MS_RDONLY, Path::new("/"))?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mountinfo_escapes() {
        assert_eq!(unescape_mountinfo("/a\\040b"), "/a b");
        assert_eq!(unescape_mountinfo("/plain"), "/plain");
        assert_eq!(unescape_mountinfo("/x\\"), "/x\\");
    }
}
