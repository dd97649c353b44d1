//! Docker's copy-up: the first time a plain, empty volume is mounted over a
//! non-empty image path, that path's content (owners, modes, xattrs,
//! symlinks as symlinks) is copied into the volume, once.
//!
//! The image path is resolved inside the container rootfs with openat2
//! `RESOLVE_IN_ROOT`, so a symlink in the image cannot point the copy at a
//! host path; `cp -a` then reads through the `/proc/<pid>/fd/<n>` link of
//! that resolved dir.

use std::os::fd::AsRawFd;
use std::path::Path;

use rustix::fs::{Mode, OFlags, ResolveFlags};

use crate::error::Result;
use crate::volume_store::{self, Volume};
use crate::volumes::VolumeError;
use crate::Engine;

fn copy_err(v: &Volume, target: &str, why: impl Into<String>) -> VolumeError {
    VolumeError::CopyUp {
        name: v.name.clone(),
        target: target.into(),
        why: why.into(),
    }
}

fn is_empty_dir(p: &Path) -> bool {
    std::fs::read_dir(p).is_ok_and(|mut d| d.next().is_none())
}

/// Copies image content into the container's never-populated volumes.
/// Needs the rootfs mounted.
pub fn populate(engine: &Engine, id: &str, rootfs: &Path) -> Result<()> {
    for u in volume_store::uses_of(engine, id)? {
        let Some(v) = volume_store::get(engine, &u.volume)? else {
            continue;
        };
        if v.populated || !v.options.kind.is_empty() {
            continue;
        }
        // Two containers starting at once: one copies, the other then sees
        // the volume populated.
        let dir = volume_store::volume_dir(engine, &v.name);
        let lock = rustix::fs::open(
            &dir,
            OFlags::RDONLY | OFlags::DIRECTORY | OFlags::CLOEXEC,
            Mode::empty(),
        )
        .map_err(|e| copy_err(&v, &u.target, format!("open {}: {e}", dir.display())))?;
        rustix::fs::flock(&lock, rustix::fs::FlockOperation::LockExclusive)
            .map_err(|e| copy_err(&v, &u.target, format!("lock {}: {e}", dir.display())))?;
        if volume_store::get(engine, &v.name)?.is_some_and(|v| v.populated) {
            continue;
        }
        if is_empty_dir(&v.mountpoint) {
            copy_into(&v, rootfs, &u.target)?;
            // A container in a user namespace sees its rootfs owned by its
            // range; the volume keeps the container's own ids (it is
            // idmapped when mounted, as bind mounts are).
            let idmap = engine
                .db()?
                .get(id)?
                .and_then(|r| crate::create::ContainerConfig::of(&r).ok())
                .and_then(|c| c.idmap);
            if let Some(m) = idmap {
                unshift_tree(&v.mountpoint, &m).map_err(|e| {
                    copy_err(&v, &u.target, format!("chown to the container's ids: {e}"))
                })?;
            }
        }
        volume_store::set_populated(engine, &v.name)?;
        drop(lock);
    }
    Ok(())
}

/// Gives every entry under `dir` owned by a host id of `m` the container id
/// it stands for.
fn unshift_tree(dir: &Path, m: &crate::userns::Mapping) -> std::io::Result<()> {
    use std::os::unix::fs::MetadataExt;
    let back = |maps: &[crate::userns::Map], id: u32| {
        maps.iter()
            .find(|x| id >= x.host && u64::from(id) < u64::from(x.host) + u64::from(x.size))
            .map(|x| x.container + (id - x.host))
    };
    let mut stack = vec![dir.to_path_buf()];
    while let Some(p) = stack.pop() {
        let md = std::fs::symlink_metadata(&p)?;
        let (u, g) = (back(&m.uid, md.uid()), back(&m.gid, md.gid()));
        if u.is_some() || g.is_some() {
            std::os::unix::fs::lchown(&p, u, g)?;
            if md.is_file() && md.mode() & 0o6000 != 0 {
                // chown clears set-id bits: put them back.
                std::fs::set_permissions(
                    &p,
                    std::os::unix::fs::PermissionsExt::from_mode(md.mode() & 0o7777),
                )?;
            }
        }
        if md.is_dir() {
            for e in std::fs::read_dir(&p)? {
                stack.push(e?.path());
            }
        }
    }
    Ok(())
}

fn copy_into(v: &Volume, rootfs: &Path, target: &str) -> Result<()> {
    let root = rustix::fs::open(
        rootfs,
        OFlags::RDONLY | OFlags::DIRECTORY | OFlags::CLOEXEC,
        Mode::empty(),
    )
    .map_err(|e| {
        copy_err(
            v,
            target,
            format!("open the rootfs {}: {e}", rootfs.display()),
        )
    })?;
    let rel = target.trim_start_matches('/');
    if rel.is_empty() {
        return Ok(());
    }
    let dir = match rustix::fs::openat2(
        &root,
        rel,
        OFlags::RDONLY | OFlags::DIRECTORY | OFlags::CLOEXEC,
        Mode::empty(),
        ResolveFlags::IN_ROOT | ResolveFlags::NO_MAGICLINKS,
    ) {
        Ok(fd) => fd,
        // Nothing (or no dir) at the target in the image: nothing to copy.
        Err(rustix::io::Errno::NOENT) | Err(rustix::io::Errno::NOTDIR) => return Ok(()),
        Err(e) => return Err(copy_err(v, target, format!("resolve in the rootfs: {e}")).into()),
    };
    let src = format!("/proc/{}/fd/{}/.", std::process::id(), dir.as_raw_fd());
    let out = std::process::Command::new("cp")
        .arg("-a")
        .arg("--")
        .arg(&src)
        .arg(&v.mountpoint)
        .stdin(std::process::Stdio::null())
        .output()
        .map_err(|e| copy_err(v, target, format!("run cp: {e}")))?;
    drop(dir);
    if !out.status.success() {
        return Err(copy_err(
            v,
            target,
            format!("cp -a: {}", String::from_utf8_lossy(&out.stderr).trim()),
        )
        .into());
    }
    Ok(())
}
