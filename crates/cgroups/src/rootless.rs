//! Cgroups of a rootless container (runc's fs manager with `Rootless`):
//! best effort. The hierarchies the caller cannot create its cgroup in or
//! write to are left out instead of failing the container.

use std::path::Path;

use crate::cgroup::Cgroup;

/// May this process make `dir` (or use it when it exists): is its
/// `cgroup.procs` writable, else the nearest existing ancestor?
fn usable(dir: &Path) -> bool {
    use nix::unistd::{faccessat, AccessFlags};
    let writable = |p: &Path| {
        faccessat(
            nix::fcntl::AT_FDCWD,
            p,
            AccessFlags::W_OK,
            nix::fcntl::AtFlags::AT_EACCESS,
        )
        .is_ok()
    };
    if dir.exists() {
        return writable(&dir.join("cgroup.procs"));
    }
    let mut cur = dir.parent();
    while let Some(p) = cur {
        if p.exists() {
            return writable(p);
        }
        cur = p.parent();
    }
    false
}

impl Cgroup {
    /// Leaves out every hierarchy (v1 controller, or the v2 directory)
    /// where this process can neither create the container's directory nor
    /// add a process to an existing one; returns what was left out (v1
    /// controller names, `"unified"` for v2), none when everything is
    /// usable. Call before [`Cgroup::create`].
    pub fn drop_unusable(&mut self) -> Vec<String> {
        let mut dropped = Vec::new();
        if self.unified.as_deref().is_some_and(|d| !usable(d)) {
            self.unified = None;
            self.unified_root = None;
            dropped.push("unified".to_string());
        }
        let bad: Vec<String> = self
            .v1
            .iter()
            .filter(|(_, d)| !usable(d))
            .map(|(c, _)| c.clone())
            .collect();
        for c in bad {
            self.v1.remove(&c);
            dropped.push(c);
        }
        dropped
    }

    /// Is there no directory left (every hierarchy dropped)?
    pub fn is_empty(&self) -> bool {
        self.unified.is_none() && self.v1.is_empty()
    }
}
