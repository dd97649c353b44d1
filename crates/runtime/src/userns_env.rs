//! Running inside a user namespace other than the host's (rootless berth
//! joins its user's namespace before creating containers): mknod is not
//! allowed (devices are bind-mounted) and there may be no cgroup to use.

use crate::config::ContainerConfig;

/// Whether this process is in a user namespace other than the initial one.
pub fn in_child_userns() -> bool {
    static IN: std::sync::OnceLock<bool> = std::sync::OnceLock::new();
    *IN.get_or_init(|| {
        std::fs::read_to_string("/proc/self/uid_map")
            .map(|m| m.split_whitespace().collect::<Vec<_>>() != ["0", "0", "4294967295"])
            .unwrap_or(false)
    })
}

/// A container made without a cgroup: in a user namespace, when the
/// config names no cgroupsPath and limits nothing (device rules aside:
/// rootless, devices are bind mounts of the host's nodes with their own
/// permissions), as rootless berth's configs are on a host that delegates
/// no cgroup to the user.
pub fn without_cgroup(cfg: &ContainerConfig) -> bool {
    let limits = cfg.resources.as_ref().is_some_and(|r| {
        r.memory().is_some()
            || r.cpu().is_some()
            || r.pids().is_some()
            || r.block_io().is_some()
            || r.hugepage_limits().as_ref().is_some_and(|h| !h.is_empty())
            || r.network().is_some()
            || r.rdma().is_some()
            || r.unified().as_ref().is_some_and(|u| !u.is_empty())
    });
    cfg.cgroups_path.is_none() && !limits && in_child_userns()
}
