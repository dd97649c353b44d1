//! A container's cgroup: resolution, creation, membership, teardown.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use nix::sys::signal::{kill, Signal};
use nix::unistd::Pid;
use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};
use crate::fsio;
use crate::layout::{Layout, ProcCgroups};
use crate::path::{resolve, Driver, Resolved};

/// How long destroy waits for killed processes to leave.
const DESTROY_WAIT: Duration = Duration::from_secs(10);

/// A container's cgroup, opened for its first process to start in it
/// without a pid written to `cgroup.procs` ([`Cgroup::open_self_join`]).
#[derive(Debug)]
pub struct SelfJoin {
    /// v1: every hierarchy's `tasks` file, open for writing.
    tasks: Vec<(PathBuf, std::fs::File)>,
    /// The cgroup2 directory (v2, or a hybrid's unified hierarchy), for
    /// clone3's `CLONE_INTO_CGROUP`.
    unified: Option<(PathBuf, std::fs::File)>,
}

impl SelfJoin {
    /// The cgroup2 directory to clone the process into, if any.
    pub fn unified_dir(&self) -> Option<std::os::fd::BorrowedFd<'_>> {
        use std::os::fd::AsFd;
        self.unified.as_ref().map(|(_, f)| f.as_fd())
    }

    /// Moves the calling thread into every v1 hierarchy: the whole process
    /// when it has one thread (a freshly forked child). On failure, the
    /// `tasks` file and the error.
    pub fn join_v1(&self) -> std::result::Result<(), (PathBuf, std::io::Error)> {
        use std::io::Write;
        for (path, f) in &self.tasks {
            (&*f).write_all(b"0").map_err(|e| (path.clone(), e))?;
        }
        Ok(())
    }

    /// When the process could not be cloned into the cgroup2 directory:
    /// moves `pid` there the usual way (`cgroup.procs`).
    pub fn add_unified(&self, pid: i32) -> Result<()> {
        match &self.unified {
            Some((dir, _)) => fsio::write(dir, "cgroup.procs", &pid.to_string(), ""),
            None => Ok(()),
        }
    }
}

/// One container's cgroup on every hierarchy berth uses. Serializable so the
/// runtime can keep it in its state file and reopen it later.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Cgroup {
    driver: Driver,
    /// v2: the cgroup2 mountpoint (where controller enabling starts).
    #[serde(default)]
    pub(crate) unified_root: Option<PathBuf>,
    /// v2: the container's directory.
    #[serde(default)]
    pub(crate) unified: Option<PathBuf>,
    /// v1: controller -> directory.
    #[serde(default)]
    pub(crate) v1: BTreeMap<String, PathBuf>,
    /// Directories berth created (only these are removed).
    #[serde(default)]
    created: Vec<PathBuf>,
}

impl Cgroup {
    /// Resolves `cgroups_path` (the spec's `linux.cgroupsPath`; `None` for
    /// runc's default, the container ID relative to berth's own cgroup) on
    /// this host. Reads /proc/self/{mountinfo,cgroup}; creates nothing.
    pub fn new(cgroups_path: Option<&str>, container_id: &str) -> Result<Cgroup> {
        let layout = Layout::detect()?;
        let own = ProcCgroups::own()?;
        Cgroup::with_layout(&layout, &own, cgroups_path, container_id)
    }

    /// As [`Cgroup::new`] with a given layout and own cgroups (pure).
    pub fn with_layout(
        layout: &Layout,
        own: &ProcCgroups,
        cgroups_path: Option<&str>,
        id: &str,
    ) -> Result<Cgroup> {
        let Resolved {
            driver,
            unified,
            v1,
        } = resolve(layout, own, cgroups_path, id)?;
        Ok(Cgroup {
            driver,
            unified_root: if driver == Driver::V2 {
                layout.unified.clone()
            } else {
                None
            },
            unified,
            v1,
            created: Vec::new(),
        })
    }

    pub fn driver(&self) -> Driver {
        self.driver
    }

    /// The v2 directory (v2 driver only).
    pub fn unified_path(&self) -> Option<&Path> {
        self.unified.as_deref()
    }

    /// v1 controller -> directory (v1 driver only).
    pub fn v1_paths(&self) -> &BTreeMap<String, PathBuf> {
        &self.v1
    }

    /// Directories this cgroup created.
    pub fn created(&self) -> &[PathBuf] {
        &self.created
    }

    /// Distinct directories (co-mounted v1 controllers share one).
    pub fn dirs(&self) -> Vec<PathBuf> {
        let mut out: Vec<PathBuf> = Vec::new();
        for d in self.unified.iter().chain(self.v1.values()) {
            if !out.contains(d) {
                out.push(d.clone());
            }
        }
        out
    }

    /// The directory holding `controller`'s files.
    pub fn dir_for(&self, controller: &str, what: &str) -> Result<&Path> {
        if let Some(u) = &self.unified {
            return Ok(u);
        }
        self.v1
            .get(controller)
            .map(PathBuf::as_path)
            .ok_or_else(|| Error::ControllerMissing {
                controller: controller.to_string(),
                what: what.to_string(),
            })
    }

    /// The directory whose cgroup.procs lists the container's processes.
    pub fn main_dir(&self) -> Option<&Path> {
        if let Some(u) = &self.unified {
            return Some(u);
        }
        ["freezer", "pids", "memory", "devices", "cpu"]
            .iter()
            .find_map(|c| self.v1.get(*c))
            .or_else(|| self.v1.values().next())
            .map(PathBuf::as_path)
    }

    /// Creates every directory (mkdir -p), recording which berth made; on v1
    /// fills cpuset.cpus/mems of new cpuset directories from their parent
    /// (empty ones refuse tasks); on v2 enables the available controllers in
    /// each ancestor's cgroup.subtree_control below the mount.
    pub fn create(&mut self) -> Result<()> {
        for dir in self.dirs() {
            // Usually only the leaf is missing: try it first (one mkdir
            // instead of a stat of every level).
            match std::fs::create_dir(&dir) {
                Ok(()) => {
                    self.created.push(dir);
                    continue;
                }
                Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => continue,
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
                Err(source) => return Err(Error::Create { path: dir, source }),
            }
            let mut missing = Vec::new();
            let mut cur = dir.as_path();
            while !cur.exists() {
                missing.push(cur.to_path_buf());
                match cur.parent() {
                    Some(p) => cur = p,
                    None => break,
                }
            }
            for d in missing.into_iter().rev() {
                match std::fs::create_dir(&d) {
                    Ok(()) => self.created.push(d),
                    Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {}
                    Err(source) => return Err(Error::Create { path: d, source }),
                }
            }
        }
        if let Some(cpuset) = self.v1.get("cpuset").cloned() {
            self.init_cpuset(&cpuset)?;
        }
        if let (Some(root), Some(leaf)) = (self.unified_root.clone(), self.unified.clone()) {
            enable_controllers(&root, &leaf)?;
        }
        Ok(())
    }

    /// v1: copies cpuset.cpus and cpuset.mems down into every directory on
    /// the way to `leaf` that has them empty, from the topmost such one
    /// down (runc's cpuset `ensureParent`). Not only the directories this
    /// call created: a parent left empty by an interrupted earlier create
    /// would refuse every later task (ENOSPC).
    fn init_cpuset(&self, leaf: &Path) -> Result<()> {
        let empty = |dir: &Path| {
            ["cpuset.cpus", "cpuset.mems"]
                .iter()
                .any(|f| fsio::read(dir, f).is_ok_and(|v| v.trim().is_empty()))
        };
        let mut chain: Vec<PathBuf> = Vec::new();
        let mut dir = leaf.to_path_buf();
        while empty(&dir) {
            chain.push(dir.clone());
            match dir.parent() {
                Some(p) => dir = p.to_path_buf(),
                None => break,
            }
        }
        for dir in chain.iter().rev() {
            let parent = dir.parent().unwrap_or(Path::new("/"));
            for f in ["cpuset.cpus", "cpuset.mems"] {
                if fsio::read(dir, f)?.trim().is_empty() {
                    let v = fsio::read(parent, f)?;
                    fsio::write(dir, f, v.trim(), "")?;
                }
            }
        }
        Ok(())
    }

    /// Moves `pid` into the cgroup (every hierarchy).
    pub fn add_process(&self, pid: i32) -> Result<()> {
        for d in self.dirs() {
            fsio::write(&d, "cgroup.procs", &pid.to_string(), "")?;
        }
        Ok(())
    }

    /// Opens the cgroup for the container's first process to start in it
    /// ([`SelfJoin`]) instead of the parent writing its pid to each
    /// `cgroup.procs`: moving another process (or a whole thread group)
    /// takes the kernel's global threadgroup lock, whose write side waits
    /// for an RCU grace period (3-16 ms here, at every container start).
    /// The child is cloned into the cgroup2 directory (`CLONE_INTO_CGROUP`)
    /// and, single-threaded, moves itself into each v1 hierarchy through
    /// `tasks`; neither takes that lock. Opened here by the caller, so the
    /// kernel checks the opener's credentials (the child may already be in
    /// a new user namespace). `None` when not root (rootless cgroups keep
    /// the usual way).
    pub fn open_self_join(&self) -> Result<Option<SelfJoin>> {
        if !nix::unistd::geteuid().is_root() || self.dirs().is_empty() {
            return Ok(None);
        }
        let open = |path: PathBuf, dir: bool| {
            let mut o = std::fs::OpenOptions::new();
            if dir {
                o.read(true);
            } else {
                o.write(true);
            }
            match o.open(&path) {
                Ok(f) => Ok((path, f)),
                Err(source) => Err(Error::Open { path, source }),
            }
        };
        let mut tasks = Vec::new();
        let mut unified = self.unified.clone();
        for d in self.v1.values() {
            let t = d.join("tasks");
            if tasks.iter().any(|(p, _)| *p == t) {
                continue;
            }
            match open(t, false) {
                Ok(f) => tasks.push(f),
                // A controller of a hybrid host's cgroup2 (hugetlb in the
                // unified hierarchy here): no `tasks`; cloned into it.
                Err(Error::Open { source, .. })
                    if source.kind() == std::io::ErrorKind::NotFound
                        && d.join("cgroup.procs").exists() =>
                {
                    match &unified {
                        None => unified = Some(d.clone()),
                        Some(u) if u == d => {}
                        // Two cgroup2 directories: only one can be cloned
                        // into; the usual way for all.
                        Some(_) => return Ok(None),
                    }
                }
                Err(e) => return Err(e),
            }
        }
        let unified = match unified {
            Some(d) => Some(open(d, true)?),
            None => None,
        };
        Ok(Some(SelfJoin { tasks, unified }))
    }

    /// Every process in the cgroup and its descendants.
    pub fn pids(&self) -> Result<Vec<i32>> {
        let mut out = Vec::new();
        if let Some(d) = self.main_dir() {
            collect_pids(d, &mut out)?;
        }
        out.sort_unstable();
        out.dedup();
        Ok(out)
    }

    /// Sends `signal` to every process (the container's init first is the
    /// runtime's business; this is for teardown).
    pub fn kill_all(&self, signal: Signal) -> Result<()> {
        let dir = self.main_dir().map(Path::to_path_buf).unwrap_or_default();
        for pid in self.pids()? {
            match kill(Pid::from_raw(pid), signal) {
                Ok(()) | Err(nix::errno::Errno::ESRCH) => {}
                Err(source) => {
                    return Err(Error::Kill {
                        pid,
                        path: dir.clone(),
                        source,
                    })
                }
            }
        }
        Ok(())
    }

    /// Kills what is left (v2 cgroup.kill, else freeze, SIGKILL, thaw),
    /// waits for the processes to leave, then removes only the directories
    /// berth created, deepest first. Goes on after errors and returns them
    /// all.
    pub fn destroy(&self) -> Result<()> {
        let mut errs = Vec::new();
        if self.main_dir().is_some_and(Path::exists) {
            if let Err(e) = self.kill_everything() {
                errs.push(e);
            }
        }
        let mut dirs = self.created.clone();
        dirs.sort_by_key(|p| std::cmp::Reverse(p.components().count()));
        let own = self.dirs();
        for d in dirs {
            if own.contains(&d) {
                if let Err(e) = remove_dir(&d) {
                    errs.push(e);
                }
            } else {
                // A parent berth created for this container may be shared
                // by a sibling by now: try once, and leave it when busy.
                match std::fs::remove_dir(&d) {
                    Ok(()) => {}
                    Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
                    Err(e) if is_busy(&e) => {}
                    Err(source) => errs.push(Error::Remove { path: d, source }),
                }
            }
        }
        if errs.is_empty() {
            Ok(())
        } else {
            Err(Error::Destroy(errs))
        }
    }

    fn kill_everything(&self) -> Result<()> {
        if self.pids()?.is_empty() {
            return Ok(());
        }
        let used_kill_file = match &self.unified {
            Some(u) if u.join("cgroup.kill").exists() => {
                fsio::write(u, "cgroup.kill", "1", "")?;
                true
            }
            _ => false,
        };
        if !used_kill_file {
            // Frozen processes cannot fork away from the SIGKILL sweep.
            let frozen = self.freeze().is_ok();
            let killed = self.kill_all(Signal::SIGKILL);
            if frozen {
                self.thaw()?;
            }
            killed?;
        }
        let start = Instant::now();
        let mut pause = Duration::from_millis(1);
        loop {
            let left = self.pids()?;
            if left.is_empty() {
                return Ok(());
            }
            if start.elapsed() > DESTROY_WAIT {
                return Err(Error::Timeout {
                    op: "kill",
                    path: self.main_dir().map(Path::to_path_buf).unwrap_or_default(),
                    secs: DESTROY_WAIT.as_secs(),
                    state: format!("processes left: {left:?}"),
                });
            }
            // Processes forked between listing and killing: sweep again.
            if !used_kill_file {
                self.kill_all(Signal::SIGKILL)?;
            }
            std::thread::sleep(pause);
            pause = (pause * 2).min(Duration::from_millis(50));
        }
    }
}

fn collect_pids(dir: &Path, out: &mut Vec<i32>) -> Result<()> {
    let Some(text) = fsio::read_opt(dir, "cgroup.procs")? else {
        return Ok(());
    };
    out.extend(text.lines().filter_map(|l| l.trim().parse::<i32>().ok()));
    let entries = match std::fs::read_dir(dir) {
        Ok(e) => e,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(()),
        Err(source) => {
            return Err(Error::Read {
                path: dir.to_path_buf(),
                source,
            })
        }
    };
    for e in entries.flatten() {
        if e.file_type().is_ok_and(|t| t.is_dir()) {
            collect_pids(&e.path(), out)?;
        }
    }
    Ok(())
}

/// rmdir with a few retries while the kernel finishes releasing the last
/// processes (EBUSY); a directory already gone is fine.
fn remove_dir(d: &Path) -> Result<()> {
    let start = Instant::now();
    loop {
        match std::fs::remove_dir(d) {
            Ok(()) => return Ok(()),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(()),
            Err(e)
                if e.raw_os_error() == Some(libc_ebusy())
                    && start.elapsed() < Duration::from_secs(5) =>
            {
                std::thread::sleep(Duration::from_millis(20));
            }
            Err(source) => {
                return Err(Error::Remove {
                    path: d.to_path_buf(),
                    source,
                })
            }
        }
    }
}

/// EBUSY or ENOTEMPTY: the cgroup still has children or processes.
fn is_busy(e: &std::io::Error) -> bool {
    let code = e.raw_os_error();
    code == Some(nix::errno::Errno::EBUSY as i32)
        || code == Some(nix::errno::Errno::ENOTEMPTY as i32)
}

fn libc_ebusy() -> i32 {
    nix::errno::Errno::EBUSY as i32
}

/// Enables, in each ancestor of `leaf` from `root` down, the controllers
/// that ancestor has but does not yet pass down (cgroup.subtree_control).
/// Controllers the kernel refuses are left off; writes needing them then
/// fail naming their file.
fn enable_controllers(root: &Path, leaf: &Path) -> Result<()> {
    let Ok(rel) = leaf.strip_prefix(root) else {
        return Ok(());
    };
    let mut cur = root.to_path_buf();
    for c in rel.components() {
        // `cur` is an ancestor of the leaf here.
        let available = fsio::read(&cur, "cgroup.controllers")?;
        let enabled = fsio::read(&cur, "cgroup.subtree_control")?;
        for ctrl in available.split_whitespace() {
            if !enabled.split_whitespace().any(|e| e == ctrl) {
                // Refusal (e.g. a threaded subtree) is not fatal here.
                let _ = fsio::write(&cur, "cgroup.subtree_control", &format!("+{ctrl}"), "");
            }
        }
        cur.push(c);
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::layout::{parse_mountinfo, parse_proc_cgroup};

    #[test]
    fn serde_round_trip_and_dirs() {
        let layout = parse_mountinfo(
            "32 31 0:29 / /sys/fs/cgroup/cpu,cpuacct rw - cgroup cgroup rw,cpu,cpuacct\n\
             35 31 0:32 / /sys/fs/cgroup/memory rw - cgroup cgroup rw,memory\n",
        )
        .expect("layout");
        let cg =
            Cgroup::with_layout(&layout, &parse_proc_cgroup(""), Some("/b/c1"), "c1").expect("cg");
        assert_eq!(cg.dirs().len(), 2);
        assert_eq!(
            cg.dir_for("cpuacct", "x").expect("cpuacct"),
            Path::new("/sys/fs/cgroup/cpu,cpuacct/b/c1")
        );
        assert!(matches!(
            cg.dir_for("pids", "pids.max"),
            Err(Error::ControllerMissing { .. })
        ));
        assert_eq!(cg.main_dir(), Some(Path::new("/sys/fs/cgroup/memory/b/c1")));
        let json = serde_json::to_string(&cg).expect("ser");
        let back: Cgroup = serde_json::from_str(&json).expect("de");
        assert_eq!(back, cg);
    }
}
