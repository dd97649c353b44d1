//! Host cgroup layout: which hierarchies are mounted where (from
//! /proc/self/mountinfo) and where the current process sits in each (from
//! /proc/self/cgroup).

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

/// Errors of layout detection.
#[derive(Debug, thiserror::Error)]
pub enum LayoutError {
    #[error("read {path} to detect the cgroup layout")]
    Read {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("no cgroup hierarchy is mounted (looked in /proc/self/mountinfo); mount cgroup2 on /sys/fs/cgroup")]
    NoCgroupMount,
}

/// The v1 controllers berth places a container in, when mounted.
pub const V1_CONTROLLERS: &[&str] = &[
    "cpu",
    "cpuacct",
    "cpuset",
    "memory",
    "devices",
    "freezer",
    "blkio",
    "pids",
    "hugetlb",
    "net_cls",
    "net_prio",
    "perf_event",
    "rdma",
    "misc",
];

/// Which kind of host this is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Mode {
    /// Only cgroup2 (the common case today).
    Unified,
    /// Only v1 hierarchies.
    Legacy,
    /// v1 controllers plus a cgroup2 hierarchy (usually without controllers).
    Hybrid,
}

/// One mounted v1 hierarchy (possibly several co-mounted controllers).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct V1Mount {
    /// Where it is mounted, e.g. /sys/fs/cgroup/memory.
    pub mountpoint: PathBuf,
    /// The cgroup the mount shows as its root (mountinfo field 4), "/" on a host.
    pub root: PathBuf,
    /// Controllers in this hierarchy, e.g. ["cpu", "cpuacct"] or ["name=systemd"].
    pub controllers: Vec<String>,
}

/// The host's cgroup layout.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Layout {
    pub mode: Mode,
    /// The cgroup2 mountpoint, if any (/sys/fs/cgroup or /sys/fs/cgroup/unified).
    pub unified: Option<PathBuf>,
    /// v1 hierarchies by controller name (co-mounted controllers share an entry's value).
    pub v1: BTreeMap<String, V1Mount>,
}

impl Layout {
    /// Reads /proc/self/mountinfo.
    pub fn detect() -> Result<Layout, LayoutError> {
        let path = Path::new("/proc/self/mountinfo");
        let text = std::fs::read_to_string(path).map_err(|source| LayoutError::Read {
            path: path.to_path_buf(),
            source,
        })?;
        parse_mountinfo(&text)
    }

    /// The mount of one v1 controller.
    pub fn v1_mount(&self, controller: &str) -> Option<&V1Mount> {
        self.v1.get(controller)
    }

    /// Distinct v1 mountpoints (what the runtime bind-mounts into a container
    /// without a cgroup namespace), each with its controllers.
    pub fn v1_mounts(&self) -> Vec<&V1Mount> {
        let mut out: Vec<&V1Mount> = Vec::new();
        for m in self.v1.values() {
            if !out.iter().any(|o| o.mountpoint == m.mountpoint) {
                out.push(m);
            }
        }
        out
    }
}

/// Undoes mountinfo's octal escapes (`\040` for a space, ...).
fn unescape(field: &str) -> String {
    let bytes = field.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'\\'
            && i + 4 <= bytes.len()
            && bytes[i + 1..i + 4]
                .iter()
                .all(|b| (b'0'..=b'7').contains(b))
        {
            let v = bytes[i + 1..i + 4]
                .iter()
                .fold(0u32, |acc, b| acc * 8 + u32::from(b - b'0'));
            out.push(v as u8);
            i += 4;
            continue;
        }
        out.push(bytes[i]);
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// Parses /proc/self/mountinfo text into a layout (proc(5): fields, then
/// ` - ` fstype source superopts).
pub fn parse_mountinfo(text: &str) -> Result<Layout, LayoutError> {
    let mut unified = None;
    let mut v1 = BTreeMap::new();
    for line in text.lines() {
        let Some((left, right)) = line.split_once(" - ") else {
            continue;
        };
        let lf: Vec<&str> = left.split(' ').collect();
        let rf: Vec<&str> = right.split(' ').collect();
        if lf.len() < 5 || rf.len() < 3 {
            continue;
        }
        let (root, mountpoint) = (unescape(lf[3]), PathBuf::from(unescape(lf[4])));
        match rf[0] {
            // The first cgroup2 mount, unless one sits at the canonical place.
            "cgroup2" if unified.is_none() || mountpoint == Path::new("/sys/fs/cgroup") => {
                unified = Some(mountpoint);
            }
            "cgroup" => {
                let controllers: Vec<String> = rf[2]
                    .split(',')
                    .filter(|o| V1_CONTROLLERS.contains(o) || o.starts_with("name="))
                    .map(str::to_string)
                    .collect();
                let m = V1Mount {
                    mountpoint,
                    root: PathBuf::from(root),
                    controllers: controllers.clone(),
                };
                for c in controllers {
                    v1.entry(c).or_insert_with(|| m.clone());
                }
            }
            _ => {}
        }
    }
    let mode = match (unified.is_some(), v1.is_empty()) {
        (true, true) => Mode::Unified,
        (true, false) => Mode::Hybrid,
        (false, false) => Mode::Legacy,
        (false, true) => return Err(LayoutError::NoCgroupMount),
    };
    Ok(Layout { mode, unified, v1 })
}

/// Where a process sits: v1 controller name -> path, and the v2 path ("0::").
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ProcCgroups {
    pub v1: BTreeMap<String, PathBuf>,
    pub unified: Option<PathBuf>,
}

impl ProcCgroups {
    /// Reads /proc/self/cgroup.
    pub fn own() -> Result<ProcCgroups, LayoutError> {
        let path = Path::new("/proc/self/cgroup");
        let text = std::fs::read_to_string(path).map_err(|source| LayoutError::Read {
            path: path.to_path_buf(),
            source,
        })?;
        Ok(parse_proc_cgroup(&text))
    }
}

/// Parses /proc/<pid>/cgroup (cgroups(7): `id:controllers:path`).
pub fn parse_proc_cgroup(text: &str) -> ProcCgroups {
    let mut out = ProcCgroups::default();
    for line in text.lines() {
        let mut it = line.splitn(3, ':');
        let (Some(_id), Some(ctrls), Some(path)) = (it.next(), it.next(), it.next()) else {
            continue;
        };
        if ctrls.is_empty() {
            out.unified = Some(PathBuf::from(path));
        } else {
            for c in ctrls.split(',') {
                out.v1.insert(c.to_string(), PathBuf::from(path));
            }
        }
    }
    out
}

/// What the host supports, for `berth-runtime features` (runtime-spec
/// features.md, `linux.cgroup`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Features {
    pub v1: bool,
    pub v2: bool,
    pub systemd: bool,
    #[serde(rename = "systemdUser")]
    pub systemd_user: bool,
    pub rdma: bool,
}

/// Features of a layout: which driver berth uses on it (hybrid hosts use v1,
/// as runc does); no systemd driver and no rdma.
pub fn features(layout: &Layout) -> Features {
    Features {
        v1: layout.mode != Mode::Unified,
        v2: layout.mode == Mode::Unified,
        systemd: false,
        systemd_user: false,
        rdma: false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const HYBRID: &str = "\
31 23 0:28 / /sys/fs/cgroup rw,relatime - tmpfs tmpfs rw,mode=755
32 31 0:29 / /sys/fs/cgroup/cpu,cpuacct rw,relatime - cgroup cgroup rw,cpu,cpuacct
34 31 0:31 / /sys/fs/cgroup/cpuset rw,relatime - cgroup cgroup rw,cpuset,clone_children
35 31 0:32 / /sys/fs/cgroup/memory rw,relatime - cgroup cgroup rw,memory
40 31 0:37 / /sys/fs/cgroup/systemd rw,relatime - cgroup cgroup rw,xattr,name=systemd
41 31 0:38 / /sys/fs/cgroup/unified rw,relatime - cgroup2 cgroup2 rw,nsdelegate
";

    #[test]
    fn hybrid_layout_parsed() {
        let l = parse_mountinfo(HYBRID).expect("parse");
        assert_eq!(l.mode, Mode::Hybrid);
        assert_eq!(
            l.unified.as_deref(),
            Some(Path::new("/sys/fs/cgroup/unified"))
        );
        let cpu = l.v1_mount("cpuacct").expect("cpuacct");
        assert_eq!(cpu.mountpoint, Path::new("/sys/fs/cgroup/cpu,cpuacct"));
        assert_eq!(cpu.controllers, vec!["cpu", "cpuacct"]);
        assert!(l.v1_mount("name=systemd").is_some());
        assert!(l.v1_mount("clone_children").is_none());
        assert_eq!(l.v1_mounts().len(), 4);
        let f = features(&l);
        assert!(f.v1 && !f.v2 && !f.systemd);
    }

    #[test]
    fn unified_and_missing_layouts() {
        let l = parse_mountinfo("30 23 0:26 / /sys/fs/cgroup rw - cgroup2 cgroup2 rw,nsdelegate\n")
            .expect("parse");
        assert_eq!(l.mode, Mode::Unified);
        assert!(features(&l).v2);
        assert!(matches!(
            parse_mountinfo("1 0 0:1 / / rw - ext4 /dev/sda rw\n"),
            Err(LayoutError::NoCgroupMount)
        ));
    }

    #[test]
    fn escaped_mountpoint() {
        let l = parse_mountinfo("30 23 0:26 / /mnt/my\\040cg rw - cgroup2 cgroup2 rw\n")
            .expect("parse");
        assert_eq!(l.unified.as_deref(), Some(Path::new("/mnt/my cg")));
    }

    #[test]
    fn proc_cgroup_parsed() {
        let p = parse_proc_cgroup("4:memory:/a/b\n2:cpu,cpuacct:/\n0::/user.slice/x\n");
        assert_eq!(p.v1["memory"], Path::new("/a/b"));
        assert_eq!(p.v1["cpuacct"], Path::new("/"));
        assert_eq!(p.unified.as_deref(), Some(Path::new("/user.slice/x")));
    }
}
