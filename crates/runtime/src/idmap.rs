//! Idmapped bind mounts (config.md "Mounts": uidMappings/gidMappings, runc's
//! `idmap`/`ridmap` options): the mount shows files with their owners
//! shifted through a user namespace made for the purpose.

use crate::config::{id_map_text, ContainerConfig, IdMap, MountSpec, NsKind};
use crate::error::{sys, Error, Result};
use berth_sys::process::{clone_fork_pidfd, Forked};
use std::io::Read;
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, OwnedFd, RawFd};
use std::sync::Arc;

/// A user namespace the caller made already, with the maps it was given:
/// idmapped mounts with the same maps use it instead of a new one (the
/// engine made it to idmap the image layers).
#[derive(Debug, Clone)]
pub struct GivenUserns {
    pub fd: Arc<Userns>,
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

/// A user namespace made by [`userns_fd`] or [`userns_held`], held by a
/// descriptor. The short-lived process that made it is reaped when this is
/// dropped: it exits on its own once let go, and nobody waits for that on
/// the way to the container's start (on a loaded machine, waiting for it to
/// be scheduled cost more than the rest of the namespace).
#[derive(Debug)]
pub struct Userns {
    fd: OwnedFd,
    helper: Helper,
}

impl AsFd for Userns {
    fn as_fd(&self) -> BorrowedFd<'_> {
        self.fd.as_fd()
    }
}

impl AsRawFd for Userns {
    fn as_raw_fd(&self) -> RawFd {
        self.fd.as_raw_fd()
    }
}

impl Userns {
    /// Lets the helper process of a [`userns_held`] go, handing it `fds`
    /// to close as it exits. Closing the last descriptor of a detached
    /// mount tree (open_tree) unmounts it, which waits for an RCU grace
    /// period (about 5 ms here under load): the helper pays it, off the
    /// container's way.
    pub fn release(&mut self, fds: Vec<OwnedFd>) {
        self.helper.release(&fds);
    }
}

/// The helper process, waited for by its pidfd (other reapers of this
/// process, such as a foreground container's `waitpid(-1)` loop, may have
/// reaped it first: then there is nothing to wait for, and no pid that
/// could have been reused is waited for), and the socket it waits on.
#[derive(Debug)]
struct Helper {
    pidfd: Option<OwnedFd>,
    sock: Option<std::os::unix::net::UnixStream>,
}

impl Helper {
    /// One byte (with `fds` attached) lets it go: it reads the byte and
    /// exits, the descriptors closed with it (a read without room for them
    /// closes them).
    fn release(&mut self, fds: &[OwnedFd]) {
        let Some(mut sock) = self.sock.take() else {
            return;
        };
        if !fds.is_empty() {
            use nix::sys::socket::{sendmsg, ControlMessage, MsgFlags};
            let raw: Vec<RawFd> = fds.iter().map(|f| f.as_raw_fd()).collect();
            let sent = sendmsg::<()>(
                sock.as_raw_fd(),
                &[std::io::IoSlice::new(b"x")],
                &[ControlMessage::ScmRights(&raw)],
                MsgFlags::empty(),
                None,
            );
            if sent.is_ok() {
                return;
            }
        }
        let _ = std::io::Write::write_all(&mut sock, b"x");
    }
}

impl Drop for Helper {
    fn drop(&mut self) {
        use nix::sys::wait::{waitid, Id, WaitPidFlag};
        self.release(&[]);
        if let Some(pidfd) = &self.pidfd {
            while let Err(nix::Error::EINTR) =
                waitid(Id::PIDFd(pidfd.as_fd()), WaitPidFlag::WEXITED)
            {}
        }
    }
}

/// A user namespace with the given maps, held by a descriptor: a short-lived
/// child unshares it, the parent writes the maps and opens the namespace,
/// then lets the child go (reaped when the [`Userns`] is dropped).
pub fn userns_fd(id: &str, uid: &[IdMap], gid: &[IdMap]) -> Result<Userns> {
    let mut u = userns_held(id, uid, gid)?;
    u.release(Vec::new());
    Ok(u)
}

/// [`userns_fd`] whose helper process waits until [`Userns::release`] (or
/// the drop), to take descriptors along.
pub fn userns_held(id: &str, uid: &[IdMap], gid: &[IdMap]) -> Result<Userns> {
    let (r, w) =
        std::os::unix::net::UnixStream::pair().map_err(sys(id, "socketpair for idmap userns"))?;
    match clone_fork_pidfd(libc::CLONE_NEWUSER)
        .map_err(sys(id, "create a user namespace for an idmapped mount"))?
    {
        (Forked::Child, _) => {
            drop(r);
            let mut w = w;
            let mut b = [0u8; 1];
            // Wait until the parent lets us go (or died).
            let _ = w.read(&mut b);
            berth_sys::process::exit_now(0)
        }
        (Forked::Parent(pid), pidfd) => {
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
            let mut helper = Helper {
                pidfd,
                sock: Some(r),
            };
            // Without a pidfd (kernel before 5.2) the child is let go and
            // waited for here, by its pid, as nothing else knows it.
            if helper.pidfd.is_none() {
                helper.release(&[]);
                let _ = nix::sys::wait::waitpid(nix::unistd::Pid::from_raw(pid), None);
            }
            res.map(|fd| Userns { fd, helper })
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
    prepare_with(
        id,
        cfg,
        given.map(|g| (g.fd.as_fd(), g.uid.as_slice(), g.gid.as_slice())),
    )
}

/// [`prepare`] with a user namespace given by its descriptor and maps (the
/// container's own, when `create` made it before the mounts).
pub fn prepare_with(
    id: &str,
    cfg: &ContainerConfig,
    given: Option<(BorrowedFd<'_>, &[IdMap], &[IdMap])>,
) -> Result<Vec<Option<OwnedFd>>> {
    let mut made: Vec<(&[IdMap], &[IdMap], Userns)> = Vec::new();
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
            Some((fd, gu, gg)) if gu == u && gg == g => fd,
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

/// Hands the idmapped trees of [`prepare_with`] to the container process
/// over the setup channel (SCM_RIGHTS, at most [`FDS_PER_MSG`] a message;
/// one byte without descriptors when there are none), in mount order.
pub fn send_trees(id: &str, sock: BorrowedFd<'_>, trees: &[Option<OwnedFd>]) -> Result<()> {
    use nix::sys::socket::{sendmsg, ControlMessage, MsgFlags};
    let raw: Vec<RawFd> = trees.iter().flatten().map(|f| f.as_raw_fd()).collect();
    let mut chunks: Vec<&[RawFd]> = raw.chunks(FDS_PER_MSG).collect();
    if chunks.is_empty() {
        chunks.push(&[]);
    }
    for chunk in chunks {
        let cmsg = [ControlMessage::ScmRights(chunk)];
        let cmsgs: &[ControlMessage<'_>] = if chunk.is_empty() { &[] } else { &cmsg };
        sendmsg::<()>(
            sock.as_raw_fd(),
            &[std::io::IoSlice::new(b"m")],
            cmsgs,
            MsgFlags::empty(),
            None,
        )
        .map_err(|e| sys(id, "send the idmapped mounts to the container process")(e.into()))?;
    }
    Ok(())
}

/// Descriptors per message of [`send_trees`] (the kernel takes 253).
pub const FDS_PER_MSG: usize = 200;

/// The container process's side of [`send_trees`]: the trees of the
/// mounts of `cfg` that [`wanted`] one, None for the others.
pub fn recv_trees(
    cfg: &ContainerConfig,
    sock: BorrowedFd<'_>,
) -> std::result::Result<Vec<Option<OwnedFd>>, String> {
    use nix::sys::socket::{recvmsg, ControlMessageOwned, MsgFlags};
    let expected = cfg.mounts.iter().filter(|m| wanted(m)).count();
    let mut got: Vec<OwnedFd> = Vec::with_capacity(expected);
    loop {
        let mut byte = [0u8; 1];
        let mut iov = [std::io::IoSliceMut::new(&mut byte)];
        let mut space = nix::cmsg_space!([RawFd; FDS_PER_MSG]);
        let msg = recvmsg::<()>(
            sock.as_raw_fd(),
            &mut iov,
            Some(&mut space),
            MsgFlags::MSG_CMSG_CLOEXEC,
        )
        .map_err(|e| format!("receive the idmapped mounts: {e}"))?;
        if msg.bytes == 0 {
            return Err("receive the idmapped mounts: the runtime closed the channel".into());
        }
        for c in msg
            .cmsgs()
            .map_err(|e| format!("receive the idmapped mounts: {e}"))?
        {
            if let ControlMessageOwned::ScmRights(fds) = c {
                // The kernel just installed these in our table for us.
                got.extend(fds.into_iter().map(berth_sys::fd::owned_from_scm_rights));
            }
        }
        if got.len() >= expected {
            break;
        }
    }
    if got.len() != expected {
        return Err(format!(
            "receive the idmapped mounts: {} descriptors for {expected} mounts",
            got.len()
        ));
    }
    let mut it = got.into_iter();
    Ok(cfg
        .mounts
        .iter()
        .map(|m| if wanted(m) { it.next() } else { None })
        .collect())
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
