//! overlayfs mounts of images and container rootfs, with the new mount API
//! (fsopen/fsconfig/fsmount/move_mount). Each lower is added with its own
//! `lowerdir+` key (kernel 6.8+), so the one-page limit of the `lowerdir=`
//! option string never caps the number of layers; older kernels fall back
//! to one `lowerdir=` string when it fits.

use std::fs;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};

use rustix::fs::CWD;
use rustix::io::Errno;
use rustix::mount::{
    fsconfig_create, fsconfig_set_string, fsmount, fsopen, move_mount, unmount, FsMountFlags,
    FsOpenFlags, MountAttrFlags, MoveMountFlags, UnmountFlags,
};

use crate::image::{resolve, ImageError};
use crate::store::{Store, StoreError};
use crate::unpack::UnpackLimits;

/// Errors of mounting.
#[derive(Debug, thiserror::Error)]
pub enum MountError {
    #[error("mount overlay at {target}: {step}")]
    Overlay {
        target: PathBuf,
        step: String,
        #[source]
        source: std::io::Error,
    },
    #[error("mount overlay at {target}: the {count} lower dirs do not fit one `lowerdir=` option and this kernel lacks `lowerdir+` (needs Linux 6.8+)")]
    TooManyLowers { target: PathBuf, count: usize },
    #[error("unmount {target}")]
    Unmount {
        target: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("prepare mountpoint {path}")]
    Dir {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error(transparent)]
    Image(#[from] ImageError),
    #[error("image mount")]
    Store(#[from] StoreError),
}

/// How an overlay is assembled.
#[derive(Debug, Clone)]
pub struct OverlaySpec<'a> {
    /// Lower dirs, topmost first.
    pub lowers: &'a [PathBuf],
    /// `(upperdir, workdir)` for a writable mount.
    pub upper: Option<(&'a Path, &'a Path)>,
    /// Mount read-only.
    pub readonly: bool,
}

/// The `lowerdir=` string of the legacy option (`:` separated, with `\`
/// escaping `:` `,` and `\` as overlayfs expects); `None` when longer than
/// a page.
pub fn legacy_lowerdir(lowers: &[PathBuf]) -> Option<String> {
    let parts: Vec<String> = lowers
        .iter()
        .map(|p| {
            let s = p.to_string_lossy();
            let mut o = String::with_capacity(s.len());
            for ch in s.chars() {
                if matches!(ch, ':' | ',' | '\\') {
                    o.push('\\');
                }
                o.push(ch);
            }
            o
        })
        .collect();
    let v = parts.join(":");
    // The whole option string must fit one page (4096) with its NUL.
    (v.len() + "lowerdir=".len() < 4095).then_some(v)
}

/// Whether this process is in a user namespace other than the initial one
/// (rootless berth, docs/rootless.md).
pub fn in_user_namespace() -> bool {
    static IN: std::sync::OnceLock<bool> = std::sync::OnceLock::new();
    *IN.get_or_init(|| {
        fs::read_to_string("/proc/self/uid_map")
            .map(|m| m.split_whitespace().collect::<Vec<_>>() != ["0", "0", "4294967295"])
            .unwrap_or(false)
    })
}

/// The xattr overlayfs reads for `what` (`opaque`): `trusted.overlay.*` as
/// root, `user.overlay.*` in a user namespace (mounted with `userxattr`).
pub fn overlay_xattr(what: &str) -> String {
    if in_user_namespace() {
        format!("user.overlay.{what}")
    } else {
        format!("trusted.overlay.{what}")
    }
}

/// How container rootfs are assembled: the kernel's overlayfs, else
/// fuse-overlayfs (a user namespace where the kernel refuses overlay), else
/// copies ([`crate::vfs`], podman's `vfs`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Driver {
    Overlay,
    FuseOverlayfs,
    Vfs,
}

impl Driver {
    pub fn name(self) -> &'static str {
        match self {
            Driver::Overlay => "overlay",
            Driver::FuseOverlayfs => "fuse-overlayfs",
            Driver::Vfs => "vfs",
        }
    }
}

/// The environment variable forcing a storage driver (`overlay`,
/// `fuse-overlayfs`, `vfs`; the `--storage-driver` flag sets it): tests,
/// and hosts where the probe guesses wrong.
pub const DRIVER_ENV: &str = "BERTH_STORAGE_DRIVER";

/// The storage drivers [`DRIVER_ENV`] takes.
pub const DRIVERS: [&str; 3] = ["overlay", "fuse-overlayfs", "vfs"];

/// The driver in use: forced by [`DRIVER_ENV`], else overlay as root; in a
/// user namespace overlay when a probe mount under `probe_dir` works, else
/// fuse-overlayfs when installed and a probe mount works, else vfs.
pub fn driver(probe_dir: &Path) -> Driver {
    static D: std::sync::OnceLock<Driver> = std::sync::OnceLock::new();
    *D.get_or_init(|| match std::env::var(DRIVER_ENV).as_deref() {
        Ok("fuse-overlayfs") => Driver::FuseOverlayfs,
        Ok("overlay") => Driver::Overlay,
        Ok("vfs") => Driver::Vfs,
        _ if !in_user_namespace() => Driver::Overlay,
        _ => probed(probe_dir),
    })
}

/// Where [`driver`] keeps its probe's verdict between commands, when set
/// ([`set_driver_cache`]).
static DRIVER_CACHE: std::sync::OnceLock<PathBuf> = std::sync::OnceLock::new();

/// Keeps the verdict of the storage driver probe in `path` (rootless: a
/// file in the user's run dir): the probe mounts and unmounts an overlay,
/// which every container start would otherwise pay (tens of ms on a busy
/// host). containers/storage keeps its overlay feature checks in its run
/// root the same way. The verdict holds for the kernel release and the
/// filesystem (device) it was found on; deleting the file probes again.
pub fn set_driver_cache(path: PathBuf) {
    let _ = DRIVER_CACHE.set(path);
}

/// The driver a probe under `probe_dir` finds (through the cache).
fn probed(probe_dir: &Path) -> Driver {
    let key = {
        let uname = rustix::system::uname();
        let dev = fs::metadata(probe_dir).map(|m| m.dev()).unwrap_or(0);
        format!("{} {dev}", uname.release().to_string_lossy())
    };
    let cache = DRIVER_CACHE.get();
    if let Some(text) = cache.and_then(|c| fs::read_to_string(c).ok()) {
        let cached = text
            .strip_prefix(&key)
            .and_then(|rest| rest.strip_prefix(' '))
            .map(str::trim);
        let d = match cached {
            Some("overlay") => Some(Driver::Overlay),
            // Still installed?
            Some("fuse-overlayfs") if fuse_overlayfs_binary().is_some() => {
                Some(Driver::FuseOverlayfs)
            }
            Some("vfs") => Some(Driver::Vfs),
            _ => None,
        };
        if let Some(d) = d {
            return d;
        }
    }
    let d = if probe(probe_dir, mount_native) {
        Driver::Overlay
    } else if fuse_overlayfs_binary().is_some() && probe(probe_dir, mount_fuse) {
        Driver::FuseOverlayfs
    } else {
        Driver::Vfs
    };
    if let Some(c) = cache {
        // Best effort: without it the next command probes again.
        let tmp = c.with_extension(format!("tmp{}", std::process::id()));
        if fs::write(&tmp, format!("{key} {}\n", d.name())).is_ok() {
            let _ = fs::rename(&tmp, c);
        }
    }
    d
}

fn fuse_overlayfs_binary() -> Option<PathBuf> {
    ["/usr/bin/fuse-overlayfs", "/usr/local/bin/fuse-overlayfs"]
        .iter()
        .map(PathBuf::from)
        .find(|p| p.exists())
}

/// Whether `mount` (native overlay with `userxattr`, fuse-overlayfs)
/// mounts a writable overlay under `dir`.
fn probe(dir: &Path, mount: fn(&OverlaySpec<'_>, &Path) -> Result<(), MountError>) -> bool {
    let Ok(t) = tempfile::Builder::new().prefix("probe").tempdir_in(dir) else {
        return false;
    };
    let p = t.path();
    for d in ["l1", "l2", "u", "w", "m"] {
        if fs::create_dir(p.join(d)).is_err() {
            return false;
        }
    }
    let lowers = [p.join("l1"), p.join("l2")];
    let ok = mount(
        &OverlaySpec {
            lowers: &lowers,
            upper: Some((&p.join("u"), &p.join("w"))),
            readonly: false,
        },
        &p.join("m"),
    )
    .is_ok();
    if ok {
        let _ = unmount(p.join("m"), UnmountFlags::DETACH);
    }
    ok
}

/// Mounts a container rootfs with fuse-overlayfs presenting every owner
/// shifted by `uidmapping`/`gidmapping` (`CONTAINER:HOST:SIZE[:...]`, what
/// is stored as CONTAINER shows as HOST; writes are shifted back): the
/// rootfs of a rootless container in a nested user namespace
/// (`--userns=keep-id`, `--uidmap`), as podman does.
pub fn mount_container_rootfs_mapped(
    lowers: &[PathBuf],
    upper: &Path,
    work: &Path,
    target: &Path,
    uidmapping: &str,
    gidmapping: &str,
) -> Result<(), MountError> {
    mount_fuse_with(
        &OverlaySpec {
            lowers,
            upper: Some((upper, work)),
            readonly: false,
        },
        target,
        &format!(",uidmapping={uidmapping},gidmapping={gidmapping}"),
    )
}

fn mount_fuse(spec: &OverlaySpec<'_>, target: &Path) -> Result<(), MountError> {
    mount_fuse_with(spec, target, "")
}

fn mount_fuse_with(spec: &OverlaySpec<'_>, target: &Path, extra: &str) -> Result<(), MountError> {
    let err = |step: String, source: std::io::Error| MountError::Overlay {
        target: target.to_path_buf(),
        step,
        source,
    };
    let bin = fuse_overlayfs_binary().ok_or_else(|| {
        err(
            "find fuse-overlayfs (apt-get install fuse-overlayfs)".into(),
            std::io::ErrorKind::NotFound.into(),
        )
    })?;
    let lower = legacy_lowerdir(spec.lowers).ok_or_else(|| MountError::TooManyLowers {
        target: target.to_path_buf(),
        count: spec.lowers.len(),
    })?;
    let mut opts = format!("lowerdir={lower}");
    if let Some((u, w)) = spec.upper {
        opts.push_str(&format!(
            ",upperdir={},workdir={}",
            u.display(),
            w.display()
        ));
    }
    if spec.readonly {
        opts.push_str(",ro");
    }
    opts.push_str(extra);
    let out = std::process::Command::new(&bin)
        .arg("-o")
        .arg(&opts)
        .arg(target)
        .stdin(std::process::Stdio::null())
        .output()
        .map_err(|e| err(format!("run {}", bin.display()), e))?;
    if !out.status.success() {
        return Err(err(
            format!(
                "fuse-overlayfs: {}",
                String::from_utf8_lossy(&out.stderr).trim()
            ),
            std::io::Error::other("fuse-overlayfs failed"),
        ));
    }
    Ok(())
}

/// Mounts an overlay at `target` with the [`driver`] in use.
pub fn mount_overlay(spec: &OverlaySpec<'_>, target: &Path) -> Result<(), MountError> {
    let probe = target.parent().unwrap_or(Path::new("/tmp"));
    match driver(probe) {
        Driver::Overlay => mount_native(spec, target),
        Driver::FuseOverlayfs => mount_fuse(spec, target),
        Driver::Vfs => mount_vfs(spec, target),
    }
}

/// The vfs driver's "overlay": the lowers merged into a copy, bind-mounted
/// at `target`. With an upper dir the copy is the upper dir, made once
/// (its [`crate::vfs::marker`] says so) and kept: the container's changes
/// live there. Without one (read-only views) it is `TARGET.vfs`, made
/// anew, removed by [`remove_vfs_copy`] after unmounting.
fn mount_vfs(spec: &OverlaySpec<'_>, target: &Path) -> Result<(), MountError> {
    let err = |step: String| {
        move |source: std::io::Error| MountError::Overlay {
            target: target.to_path_buf(),
            step,
            source,
        }
    };
    let copy = match spec.upper {
        Some((upper, _)) => {
            let marker = crate::vfs::marker(upper);
            if !marker.exists() {
                crate::vfs::populate(spec.lowers, upper)
                    .map_err(err(format!("vfs: copy the image into {}", upper.display())))?;
                fs::write(&marker, b"").map_err(err(format!("write {}", marker.display())))?;
            }
            upper.to_path_buf()
        }
        None => {
            let copy = crate::vfs::marker(target);
            let _ = fs::remove_dir_all(&copy);
            fs::create_dir(&copy).map_err(err(format!("create {}", copy.display())))?;
            crate::vfs::populate(spec.lowers, &copy)
                .map_err(err(format!("vfs: copy the image into {}", copy.display())))?;
            copy
        }
    };
    let e = |step: &str| err(format!("vfs: {step} {}", copy.display()));
    let tree = rustix::mount::open_tree(
        CWD,
        &copy,
        rustix::mount::OpenTreeFlags::OPEN_TREE_CLONE
            | rustix::mount::OpenTreeFlags::OPEN_TREE_CLOEXEC,
    )
    .map_err(|x| e("bind")(x.into()))?;
    move_mount(
        &tree,
        "",
        CWD,
        target,
        MoveMountFlags::MOVE_MOUNT_F_EMPTY_PATH,
    )
    .map_err(|x| e("move_mount the bind of")(x.into()))?;
    if spec.readonly {
        rustix::mount::mount_remount(
            target,
            rustix::mount::MountFlags::BIND | rustix::mount::MountFlags::RDONLY,
            "",
        )
        .map_err(|x| e("make read-only the bind of")(x.into()))?;
    }
    Ok(())
}

/// Removes the copy a read-only vfs view at `target` was made of (none for
/// the other drivers).
pub fn remove_vfs_copy(target: &Path) {
    let copy = crate::vfs::marker(target);
    if copy.is_dir() {
        let _ = fs::remove_dir_all(&copy);
    }
}

/// Mounts a kernel overlay at `target` (`userxattr` in a user namespace).
fn mount_native(spec: &OverlaySpec<'_>, target: &Path) -> Result<(), MountError> {
    let err = |step: String| {
        move |e: Errno| MountError::Overlay {
            target: target.to_path_buf(),
            step,
            source: e.into(),
        }
    };
    let fs_fd =
        fsopen("overlay", FsOpenFlags::FSOPEN_CLOEXEC).map_err(err("fsopen(overlay)".into()))?;
    let mut plus_ok = true;
    for (i, l) in spec.lowers.iter().enumerate() {
        match fsconfig_set_string(&fs_fd, "lowerdir+", l.as_path()) {
            Ok(()) => {}
            Err(Errno::INVAL) if i == 0 => {
                plus_ok = false;
                break;
            }
            Err(e) => return Err(err(format!("add lower {}", l.display()))(e)),
        }
    }
    if !plus_ok {
        let v = legacy_lowerdir(spec.lowers).ok_or_else(|| MountError::TooManyLowers {
            target: target.to_path_buf(),
            count: spec.lowers.len(),
        })?;
        fsconfig_set_string(&fs_fd, "lowerdir", v.as_str()).map_err(err("set lowerdir".into()))?;
    }
    if in_user_namespace() {
        // Whiteouts and opaque dirs as user.overlay.* xattrs (Linux 5.11+).
        rustix::mount::fsconfig_set_flag(&fs_fd, "userxattr")
            .map_err(err("set userxattr (needs Linux 5.11+)".into()))?;
    }
    if let Some((upper, work)) = spec.upper {
        fsconfig_set_string(&fs_fd, "upperdir", upper)
            .map_err(err(format!("set upperdir {}", upper.display())))?;
        fsconfig_set_string(&fs_fd, "workdir", work)
            .map_err(err(format!("set workdir {}", work.display())))?;
    }
    fsconfig_create(&fs_fd).map_err(err(
        "create superblock (see dmesg for overlayfs' reason)".into()
    ))?;
    let attrs = if spec.readonly {
        MountAttrFlags::MOUNT_ATTR_RDONLY | MountAttrFlags::MOUNT_ATTR_NODEV
    } else {
        MountAttrFlags::MOUNT_ATTR_NODEV
    };
    let mnt =
        fsmount(&fs_fd, FsMountFlags::FSMOUNT_CLOEXEC, attrs).map_err(err("fsmount".into()))?;
    move_mount(
        &mnt,
        "",
        CWD,
        target,
        MoveMountFlags::MOVE_MOUNT_F_EMPTY_PATH,
    )
    .map_err(err("move_mount onto target".into()))
}

/// Whether `path` is a mountpoint: statx's `STATX_ATTR_MOUNT_ROOT` (Linux
/// 5.8+; also sees a bind mount from the same filesystem, as the vfs
/// driver makes), else its device differs from its parent's.
pub fn is_mountpoint(path: &Path) -> bool {
    use rustix::fs::{AtFlags, StatxAttributes, StatxFlags};
    if let Ok(r) = rustix::fs::statx(CWD, path, AtFlags::NO_AUTOMOUNT, StatxFlags::empty()) {
        if r.stx_attributes_mask.contains(StatxAttributes::MOUNT_ROOT) {
            return r.stx_attributes.contains(StatxAttributes::MOUNT_ROOT);
        }
    }
    let (Ok(m), Some(Ok(p))) = (fs::metadata(path), path.parent().map(fs::metadata)) else {
        return false;
    };
    m.dev() != p.dev() || m.ino() == p.ino()
}

/// Mounts a container rootfs: the image lowers (topmost first) under the
/// container's own `upper` and `work` dirs (same filesystem, `work` empty).
pub fn mount_container_rootfs(
    lowers: &[PathBuf],
    upper: &Path,
    work: &Path,
    target: &Path,
) -> Result<(), MountError> {
    let spec = OverlaySpec {
        lowers,
        upper: Some((upper, work)),
        readonly: false,
    };
    // A container made with vfs keeps it (its upper dir is a full copy).
    if crate::vfs::marker(upper).exists() {
        return mount_vfs(&spec, target);
    }
    mount_overlay(&spec, target)
}

/// Unmounts a container rootfs mounted by [`mount_container_rootfs`].
pub fn unmount_container_rootfs(target: &Path) -> Result<(), MountError> {
    unmount(target, UnmountFlags::empty()).map_err(|e| MountError::Unmount {
        target: target.to_path_buf(),
        source: e.into(),
    })
}

/// Lower dirs for a read-only view: overlayfs wants two lowers when there
/// is no upper, so short lists are padded with the store's empty dirs.
fn padded_lowers(store: &Store, mut lowers: Vec<PathBuf>) -> Result<Vec<PathBuf>, MountError> {
    let mut i = 0;
    while lowers.len() < 2 {
        let p = store.dir().join(format!("empty{i}"));
        fs::create_dir_all(&p).map_err(|source| MountError::Dir {
            path: p.clone(),
            source,
        })?;
        lowers.push(p);
        i += 1;
    }
    Ok(lowers)
}

/// `image mount`: mounts a read-only view of the image's rootfs at
/// `<root>/images/mounts/<id>` (idempotent) and returns the path.
pub fn mount_image(store: &Store, name: &str) -> Result<PathBuf, MountError> {
    let lock = store.lock()?;
    let rec = store.lookup(name).map_err(ImageError::from)?;
    let img = resolve(store, &rec)?;
    let target = store.mount_path(&img.record.id);
    if is_mountpoint(&target) {
        return Ok(target);
    }
    let lowers = padded_lowers(
        store,
        img.ensure_unpacked(store, &lock, UnpackLimits::default())?,
    )?;
    fs::create_dir_all(&target).map_err(|source| MountError::Dir {
        path: target.clone(),
        source,
    })?;
    mount_overlay(
        &OverlaySpec {
            lowers: &lowers,
            upper: None,
            readonly: true,
        },
        &target,
    )?;
    Ok(target)
}

/// `image unmount`: unmounts the view and removes its mountpoint. Returns
/// whether it was mounted.
pub fn unmount_image(store: &Store, name: &str) -> Result<bool, MountError> {
    let _lock = store.lock()?;
    let rec = store.lookup(name).map_err(ImageError::from)?;
    let target = store.mount_path(&rec.id);
    let was = is_mountpoint(&target);
    if was {
        unmount(&target, UnmountFlags::empty()).map_err(|e| MountError::Unmount {
            target: target.clone(),
            source: e.into(),
        })?;
    }
    remove_vfs_copy(&target);
    match fs::remove_dir(&target) {
        Ok(()) => {}
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
        Err(source) => {
            return Err(MountError::Dir {
                path: target,
                source,
            })
        }
    }
    Ok(was)
}

/// Detaches an image's view (lazy unmount) and removes its mountpoint,
/// for `rmi --force`; the caller holds the store lock.
pub fn detach_image_view(
    store: &Store,
    _lock: &crate::store::StoreLock,
    id: &crate::Digest,
) -> Result<(), MountError> {
    let target = store.mount_path(id);
    if is_mountpoint(&target) {
        unmount(&target, UnmountFlags::DETACH).map_err(|e| MountError::Unmount {
            target: target.clone(),
            source: e.into(),
        })?;
    }
    remove_vfs_copy(&target);
    match fs::remove_dir(&target) {
        Ok(()) => Ok(()),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
        Err(source) => Err(MountError::Dir {
            path: target,
            source,
        }),
    }
}

/// Whether an image's view is mounted (so `rmi` can refuse).
pub fn image_mounted(store: &Store, id: &crate::Digest) -> bool {
    is_mountpoint(&store.mount_path(id))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn legacy_lowerdir_escapes_and_caps() {
        let l = vec![PathBuf::from("/a:b"), PathBuf::from("/c,d")];
        assert_eq!(legacy_lowerdir(&l).unwrap(), "/a\\:b:/c\\,d");
        let many: Vec<PathBuf> = (0..60)
            .map(|i| PathBuf::from(format!("/var/lib/berth/images/snapshots/{:064}", i)))
            .collect();
        assert!(legacy_lowerdir(&many).is_none());
    }
}
