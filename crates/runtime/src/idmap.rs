//! Idmapped bind mounts (config.md "Mounts": uidMappings/gidMappings, runc's
//! `idmap`/`ridmap` options): the mount shows files with their owners
//! shifted through a user namespace made for the purpose.

use crate::config::{id_map_text, ContainerConfig, IdMap, MountSpec, NsKind};
use crate::error::{sys, Error, Result};
use berth_sys::process::{clone_fork, Forked};
use std::io::Read;
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::sync::Arc;

/// A user namespace the caller made already, with the maps it was given:
/// idmapped mounts with the same maps use it instead of a new one (the
/// engine made it to idmap the image layers).
#[derive(Debug, Clone)]
pub struct GivenUserns {
    pub fd: Arc<OwnedFd>,
    pub uid: Vec<IdMap>,
    pub gid: Vec<IdMap>,
}

/// The id maps a mount uses: its own, else the container's.
pub fn mount_maps<'a>(
    cfg: &'a ContainerConfig,
    m: &'a MountSpec,
) -> Option<(&'a [IdMap], &'a [IdMap])> {
    if !m.uid_mappings.is_empty() {
        return Some((&m.uid_mappings, &m.gid_mappings));
    }
    if m.options.idmap.is_some() && cfg.namespaces.creates(NsKind::User) {
        return Some((&cfg.uid_mappings, &cfg.gid_mappings));
    }
    None
}

/// Does any mount need an idmapping?
pub fn wanted(m: &MountSpec) -> bool {
    m.options.idmap.is_some() || !m.uid_mappings.is_empty()
}

/// A user namespace with the given maps, held by a descriptor: a short-lived
/// child unshares it, the parent writes the maps and opens the namespace.
pub fn userns_fd(id: &str, uid: &[IdMap], gid: &[IdMap]) -> Result<OwnedFd> {
    let (mut r, w) =
        std::os::unix::net::UnixStream::pair().map_err(sys(id, "socketpair for idmap userns"))?;
    match clone_fork(libc::CLONE_NEWUSER)
        .map_err(sys(id, "create a user namespace for an idmapped mount"))?
    {
        Forked::Child => {
            drop(r);
            let mut w = w;
            let mut b = [0u8; 1];
            // Wait until the parent has opened our namespace (or died).
            let _ = w.read(&mut b);
            berth_sys::process::exit_now(0)
        }
        Forked::Parent(pid) => {
            drop(w);
            let res = (|| {
                std::fs::write(format!("/proc/{pid}/uid_map"), id_map_text(uid))
                    .map_err(sys(id, "write idmap uid_map"))?;
                std::fs::write(format!("/proc/{pid}/gid_map"), id_map_text(gid))
                    .map_err(sys(id, "write idmap gid_map"))?;
                std::fs::File::open(format!("/proc/{pid}/ns/user"))
                    .map(OwnedFd::from)
                    .map_err(sys(id, "open idmap user namespace"))
            })();
            let _ = std::io::Write::write_all(&mut r, b"x");
            drop(r);
            let _ = nix::sys::wait::waitpid(nix::unistd::Pid::from_raw(pid), None);
            res
        }
    }
}

/// One detached, idmapped mount tree per idmapped mount of the config
/// (None for the others). Made here, in the runtime's namespaces: attaching
/// an idmapping needs CAP_SYS_ADMIN over the filesystem, which the
/// container's own user namespace lacks. The container process only moves
/// the tree into place.
///
/// Making a user namespace takes a short-lived process, so mounts with the
/// same maps share one (the container's /etc files and bind mounts all use
/// the container's maps), and `given` (made by the caller) serves the mounts
/// with its maps without any.
pub fn prepare(
    id: &str,
    cfg: &ContainerConfig,
    given: Option<&GivenUserns>,
) -> Result<Vec<Option<OwnedFd>>> {
    let mut made: Vec<(&[IdMap], &[IdMap], OwnedFd)> = Vec::new();
    let mut trees = Vec::with_capacity(cfg.mounts.len());
    for m in &cfg.mounts {
        if !wanted(m) {
            trees.push(None);
            continue;
        }
        let (u, g) = mount_maps(cfg, m).ok_or_else(|| Error::Invalid {
            id: id.into(),
            message: format!(
                "mount on {:?}: the idmap option without uidMappings/gidMappings needs a new user namespace",
                m.destination
            ),
        })?;
        let userns: BorrowedFd<'_> = match given {
            Some(gv) if gv.uid == u && gv.gid == g => gv.fd.as_fd(),
            _ => {
                let at = match made.iter().position(|(mu, mg, _)| *mu == u && *mg == g) {
                    Some(i) => i,
                    None => {
                        made.push((u, g, userns_fd(id, u, g)?));
                        made.len() - 1
                    }
                };
                made[at].2.as_fd()
            }
        };
        trees.push(Some(idmapped_tree(id, m, userns)?));
    }
    Ok(trees)
}

fn idmapped_tree(id: &str, m: &MountSpec, userns: BorrowedFd<'_>) -> Result<OwnedFd> {
    use rustix::mount::OpenTreeFlags;
    let source = m
        .source
        .as_ref()
        .expect("validated: bind mounts have a source");
    let mut flags = OpenTreeFlags::OPEN_TREE_CLONE | OpenTreeFlags::OPEN_TREE_CLOEXEC;
    if m.options.recursive_bind {
        flags |= OpenTreeFlags::AT_RECURSIVE;
    }
    let tree = rustix::mount::open_tree(rustix::fs::CWD, source, flags)
        .map_err(|e| sys(id, format!("clone mount source {}", source.display()))(e.into()))?;
    let recursive = m.options.idmap == Some(true) || m.options.recursive_bind;
    berth_sys::mount_attr::mount_setattr(
        tree.as_fd(),
        recursive,
        berth_sys::mount_attr::MOUNT_ATTR_IDMAP,
        0,
        Some(userns),
    )
    .map_err(sys(
        id,
        format!(
            "idmap the mount of {} (does its filesystem support idmapped mounts?)",
            source.display()
        ),
    ))?;
    Ok(tree)
}
