//! A `cgroup` mount inside the container (config.md "Mounts", type cgroup):
//! on cgroup v2 one cgroup2 filesystem; on v1 and hybrid hosts a tmpfs with
//! one directory per hierarchy, as runc lays it out. With a cgroup namespace
//! the kernel shows only the container's own subtree; without one berth
//! bind-mounts the container's own cgroup directories.

use crate::config::{ContainerConfig, MountSpec, NsKind};
use crate::mounts::{remount_bind, unescape_mountinfo, MountError};
use crate::rootfs_path::{self, fd_path};
use nix::mount::{mount, MsFlags};
use rustix::fs::OFlags;
use std::os::fd::{AsFd, BorrowedFd};
use std::path::{Path, PathBuf};

/// One cgroup hierarchy mounted on the host.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Hierarchy {
    pub mount_point: PathBuf,
    /// "cgroup" or "cgroup2".
    pub fstype: String,
    /// v1 controllers from the super options (`cpu`, `name=systemd`, ...).
    pub controllers: Vec<String>,
}

/// Parse the cgroup hierarchies out of /proc/self/mountinfo text.
pub fn hierarchies(mountinfo: &str) -> Vec<Hierarchy> {
    let mut out = Vec::new();
    for line in mountinfo.lines() {
        let Some((pre, post)) = line.split_once(" - ") else {
            continue;
        };
        let pre: Vec<&str> = pre.split(' ').collect();
        let post: Vec<&str> = post.split(' ').collect();
        if pre.len() < 5 || post.len() < 3 {
            continue;
        }
        let fstype = post[0];
        if fstype != "cgroup" && fstype != "cgroup2" {
            continue;
        }
        let controllers = if fstype == "cgroup" {
            post[2]
                .split(',')
                .filter(|o| {
                    !matches!(*o, "rw" | "ro" | "nosuid" | "nodev" | "noexec" | "relatime")
                        && !o.starts_with("release_agent")
                        && *o != "clone_children"
                        && *o != "noprefix"
                        && *o != "xattr"
                        && *o != "cpuset_v2_mode"
                })
                .map(str::to_string)
                .collect()
        } else {
            vec![]
        };
        let h = Hierarchy {
            mount_point: PathBuf::from(unescape_mountinfo(pre[4])),
            fstype: fstype.to_string(),
            controllers,
        };
        if !out
            .iter()
            .any(|o: &Hierarchy| o.mount_point == h.mount_point)
        {
            out.push(h);
        }
    }
    out
}

/// Our own cgroup path in a hierarchy, from /proc/self/cgroup text.
pub fn own_path(proc_cgroup: &str, h: &Hierarchy) -> Option<String> {
    for line in proc_cgroup.lines() {
        let mut parts = line.splitn(3, ':');
        let (_, ctrl, path) = (parts.next()?, parts.next()?, parts.next()?);
        let matches = if h.fstype == "cgroup2" {
            ctrl.is_empty()
        } else {
            let mut a: Vec<&str> = ctrl.split(',').collect();
            let mut b: Vec<&str> = h.controllers.iter().map(String::as_str).collect();
            a.sort_unstable();
            b.sort_unstable();
            a == b
        };
        if matches {
            return Some(path.to_string());
        }
    }
    None
}

/// /proc/self/cgroup as read before the container's cgroup namespace was
/// created (paths from the hierarchies' roots), for the bind fallback.
static OWN_BEFORE_CGROUPNS: std::sync::OnceLock<String> = std::sync::OnceLock::new();

/// Remember our cgroups; call before unsharing the cgroup namespace.
pub fn remember_own_cgroups() {
    if let Ok(text) = std::fs::read_to_string("/proc/self/cgroup") {
        let _ = OWN_BEFORE_CGROUPNS.set(text);
    }
}

fn io<'a>(op: &'static str, path: &'a Path) -> impl FnOnce(std::io::Error) -> MountError + 'a {
    move |source| MountError::Io {
        op,
        path: path.to_path_buf(),
        source,
    }
}

/// Mount the cgroup filesystem(s) at `m.destination`.
pub fn mount_cgroup(
    cfg: &ContainerConfig,
    root: BorrowedFd<'_>,
    m: &MountSpec,
) -> Result<(), MountError> {
    let info = std::fs::read_to_string("/proc/self/mountinfo")
        .map_err(io("read", Path::new("/proc/self/mountinfo")))?;
    let own = std::fs::read_to_string("/proc/self/cgroup")
        .map_err(io("read", Path::new("/proc/self/cgroup")))?;
    let mut hs = hierarchies(&info);
    // Only the host's hierarchies: not those of a /sys bound into the
    // rootfs earlier (those are covered by this mount).
    hs.retain(|h| !h.mount_point.starts_with(&cfg.rootfs));
    let cgroupns = cfg.namespaces.has(NsKind::Cgroup);
    let flags = (m.options.flags | MsFlags::MS_NOSUID | MsFlags::MS_NODEV | MsFlags::MS_NOEXEC)
        & !(MsFlags::MS_BIND | MsFlags::MS_REC | MsFlags::MS_REMOUNT);
    let dest = &m.destination;
    let dest_fd = rootfs_path::mkdir_all(root, dest, 0o755)?;
    let pure_v2 = hs.iter().all(|h| h.fstype == "cgroup2")
        && hs
            .iter()
            .any(|h| h.mount_point == Path::new("/sys/fs/cgroup"));
    if pure_v2 || m.typ == "cgroup2" {
        let h = hs.iter().find(|h| h.fstype == "cgroup2").ok_or_else(|| {
            MountError::Unsupported("a cgroup2 mount on a host without cgroup2".into())
        })?;
        return mount_hierarchy(
            root,
            &fd_path(dest_fd.as_fd()),
            dest,
            h,
            &own,
            cgroupns,
            flags,
        );
    }
    // v1 / hybrid: a tmpfs holding one directory per hierarchy.
    mount(
        Some("tmpfs"),
        &fd_path(dest_fd.as_fd()),
        Some("tmpfs"),
        MsFlags::MS_NOSUID | MsFlags::MS_NODEV | MsFlags::MS_NOEXEC,
        Some("mode=755"),
    )
    .map_err(|source| MountError::Mount {
        what: "cgroup tmpfs".into(),
        dest: dest.clone(),
        source,
    })?;
    for h in &hs {
        let Some(name) = h.mount_point.file_name() else {
            continue;
        };
        let sub = dest.join(name);
        let fd = rootfs_path::mkdir_all(root, &sub, 0o755)?;
        mount_hierarchy(root, &fd_path(fd.as_fd()), &sub, h, &own, cgroupns, flags)?;
    }
    if flags.contains(MsFlags::MS_RDONLY) {
        let fd = rootfs_path::open_in_root(root, dest, OFlags::PATH)?;
        mount(
            None::<&str>,
            &fd_path(fd.as_fd()),
            None::<&str>,
            MsFlags::MS_REMOUNT
                | MsFlags::MS_RDONLY
                | MsFlags::MS_NOSUID
                | MsFlags::MS_NODEV
                | MsFlags::MS_NOEXEC,
            Some("mode=755"),
        )
        .map_err(|source| MountError::Mount {
            what: "cgroup tmpfs read-only remount".into(),
            dest: dest.clone(),
            source,
        })?;
    }
    Ok(())
}

fn mount_hierarchy(
    root: BorrowedFd<'_>,
    target: &Path,
    dest: &Path,
    h: &Hierarchy,
    own: &str,
    cgroupns: bool,
    flags: MsFlags,
) -> Result<(), MountError> {
    let merr = |what: String| {
        let dest = dest.to_path_buf();
        move |source| MountError::Mount { what, dest, source }
    };
    let mut own = own;
    if cgroupns {
        let data = h.controllers.join(",");
        match mount(
            Some(h.fstype.as_str()),
            target,
            Some(h.fstype.as_str()),
            flags,
            (!data.is_empty()).then_some(data.as_str()),
        ) {
            Ok(()) => return Ok(()),
            // A v1 hierarchy's superblock belongs to the host's user
            // namespace: a cgroup namespace owned by the container's user
            // namespace cannot mount it (EBUSY). Bind our own directory of
            // the host's mount instead, found from before the cgroup
            // namespace existed.
            Err(nix::Error::EBUSY | nix::Error::EPERM)
                if h.fstype == "cgroup" && OWN_BEFORE_CGROUPNS.get().is_some() =>
            {
                own = OWN_BEFORE_CGROUPNS.get().map(String::as_str).unwrap_or(own);
            }
            Err(e) => return Err(merr(format!("{} ({})", h.fstype, data))(e)),
        }
    }
    let rel = own_path(own, h).unwrap_or_else(|| "/".into());
    let src = h.mount_point.join(rel.trim_start_matches('/'));
    mount(
        Some(&src),
        target,
        None::<&str>,
        MsFlags::MS_BIND,
        None::<&str>,
    )
    .map_err(merr(format!("bind of {}", src.display())))?;
    let fd = rootfs_path::open_in_root(root, dest, OFlags::PATH)?;
    remount_bind(fd.as_fd(), flags, dest)
}

#[cfg(test)]
mod tests {
    use super::*;

    const INFO: &str = "\
30 25 0:26 / /sys/fs/cgroup rw,relatime - tmpfs tmpfs rw,mode=755
31 30 0:27 / /sys/fs/cgroup/cpu rw,relatime - cgroup cgroup rw,cpu
32 30 0:28 / /sys/fs/cgroup/systemd rw,relatime - cgroup cgroup rw,xattr,name=systemd
33 30 0:29 / /sys/fs/cgroup/unified rw,relatime - cgroup2 cgroup2 rw
";

    #[test]
    fn parses_hierarchies() {
        let hs = hierarchies(INFO);
        assert_eq!(hs.len(), 3);
        assert_eq!(hs[0].controllers, vec!["cpu"]);
        assert_eq!(hs[1].controllers, vec!["name=systemd"]);
        assert_eq!(hs[2].fstype, "cgroup2");
    }

    #[test]
    fn finds_own_path() {
        let hs = hierarchies(INFO);
        let own = "5:cpu:/a/b\n1:name=systemd:/s\n0::/u\n";
        assert_eq!(own_path(own, &hs[0]).as_deref(), Some("/a/b"));
        assert_eq!(own_path(own, &hs[1]).as_deref(), Some("/s"));
        assert_eq!(own_path(own, &hs[2]).as_deref(), Some("/u"));
    }
}
