//! The cgroup v2 subtree delegated to a rootless user (cgroups(7),
//! "Cgroup delegation"): where rootless containers get their cgroup and
//! their `--memory`, `--cpus`, `--cpu-shares` and `--pids-limit`.
//!
//! A delegation is a directory of the unified hierarchy the user may write
//! (the directory itself, its `cgroup.procs` and `cgroup.subtree_control`),
//! an ancestor of the cgroup berth runs in: systemd's `user@UID.service`,
//! or one an administrator `chown`ed to the user. Berth's own cgroup is not
//! one (it holds processes, so it may not pass controllers down: "no
//! internal processes"); its parent and further ancestors are tried, the
//! nearest usable one wins. Containers go into `DELEGATION/ID`.

use std::path::{Path, PathBuf};

/// The unified hierarchy's mount point (cgroup v2 only, not hybrid).
const ROOT: &str = "/sys/fs/cgroup";

/// A cgroup v2 directory delegated to the user.
#[derive(Debug, Clone)]
pub struct Delegation {
    /// Its path in the hierarchy (`/user.slice/...`): the cgroup parent of
    /// rootless containers.
    pub path: String,
    /// Its directory under the mount.
    pub dir: PathBuf,
}

/// May this process write `p` (access(2) with the effective ids: inside
/// the rootless user namespace a file of host root's is not writable).
fn writable(p: &Path) -> bool {
    use nix::unistd::{faccessat, AccessFlags};
    faccessat(
        nix::fcntl::AT_FDCWD,
        p,
        AccessFlags::W_OK,
        nix::fcntl::AtFlags::AT_EACCESS,
    )
    .is_ok()
}

/// The user's delegated cgroup, found once per process: `None` on cgroup
/// v1 or hybrid hosts and where no ancestor of berth's cgroup is the
/// user's.
pub fn delegation() -> Option<Delegation> {
    static D: std::sync::OnceLock<Option<Delegation>> = std::sync::OnceLock::new();
    D.get_or_init(|| {
        let root = Path::new(ROOT);
        // Pure cgroup v2: the mount point is the unified hierarchy's root.
        if !root.join("cgroup.controllers").exists() {
            return None;
        }
        let own = std::fs::read_to_string("/proc/self/cgroup").ok()?;
        let own = own.lines().find_map(|l| l.strip_prefix("0::"))?.trim();
        find(root, own)
    })
    .clone()
}

/// The nearest ancestor of cgroup `own` (a path in the hierarchy under
/// `root`) that this process may write.
fn find(root: &Path, own: &str) -> Option<Delegation> {
    let mut cur = Path::new(own).parent();
    while let Some(rel) = cur {
        if rel == Path::new("/") {
            return None;
        }
        let dir = root.join(rel.strip_prefix("/").unwrap_or(rel));
        if writable(&dir)
            && writable(&dir.join("cgroup.procs"))
            && writable(&dir.join("cgroup.subtree_control"))
        {
            return Some(Delegation {
                path: rel.to_string_lossy().into_owned(),
                dir,
            });
        }
        cur = rel.parent();
    }
    None
}

impl Delegation {
    /// Makes `controller` usable by the delegation's children: already in
    /// its `cgroup.subtree_control`, else enabled there when its parent
    /// passes it down (`cgroup.controllers`). The reason when it cannot be.
    pub fn ensure_controller(&self, controller: &str) -> Result<(), String> {
        let has = |f: &str| {
            std::fs::read_to_string(self.dir.join(f))
                .map(|t| t.split_whitespace().any(|c| c == controller))
                .unwrap_or(false)
        };
        if has("cgroup.subtree_control") {
            return Ok(());
        }
        if !has("cgroup.controllers") {
            return Err(format!(
                "the {controller} controller is not delegated to {} (not in its cgroup.controllers: enable it in the parent's cgroup.subtree_control, e.g. systemd's Delegate=)",
                self.dir.display()
            ));
        }
        std::fs::write(
            self.dir.join("cgroup.subtree_control"),
            format!("+{controller}"),
        )
        .map_err(|e| {
            format!(
                "cannot enable the {controller} controller in {}: {e}",
                self.dir.join("cgroup.subtree_control").display()
            )
        })
    }
}
