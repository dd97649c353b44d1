//! Resolving the spec's `cgroupsPath` to a directory per hierarchy, as runc's
//! cgroupfs driver does (runtime-spec config-linux.md, "Cgroups Path").
//!
//! - absolute: relative to each hierarchy's mount root;
//! - relative: v2, under the parent of berth's own cgroup; v1, under berth's
//!   own cgroup of each controller (runc: fs2 `_defaultDirPath`, fs `subsysPath`);
//! - absent: the container ID, taken as a relative path (runc's default).
//!
//! Paths are cleaned lexically so that `..` never leaves the hierarchy.

use std::collections::BTreeMap;
use std::path::{Component, Path, PathBuf};

use crate::layout::{Layout, Mode, ProcCgroups, V1_CONTROLLERS};

/// Errors of cgroupsPath resolution.
#[derive(Debug, thiserror::Error)]
pub enum PathError {
    #[error("cgroupsPath {path:?} is in systemd form (slice:prefix:name); the systemd cgroup driver is not supported, use a cgroupfs path such as /berth/{name}")]
    Systemd { path: String, name: String },
    #[error("container id {id:?} cannot name a cgroup (empty, or contains '/' or NUL)")]
    BadId { id: String },
    #[error("cgroupsPath {path:?} resolves to the root cgroup; give the container its own cgroup")]
    Root { path: String },
    #[error("resolve cgroupsPath {path:?}: berth's own {controller} cgroup is unknown (not in /proc/self/cgroup)")]
    OwnUnknown { path: String, controller: String },
}

/// Which driver writes the files.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Driver {
    V1,
    V2,
}

/// Resolved directories of one container's cgroup.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Resolved {
    pub driver: Driver,
    /// v2 directory (None with the v1 driver).
    pub unified: Option<PathBuf>,
    /// v1 controller -> directory.
    pub v1: BTreeMap<String, PathBuf>,
}

/// Lexically cleans `p` as runc's `utils.CleanPath`: `..` cannot climb above
/// the start; keeps it absolute or relative.
pub fn clean(p: &str) -> PathBuf {
    let mut parts: Vec<&str> = Vec::new();
    for c in Path::new(p).components() {
        match c {
            Component::Normal(s) => parts.push(s.to_str().unwrap_or_default()),
            Component::ParentDir => {
                parts.pop();
            }
            Component::CurDir | Component::RootDir | Component::Prefix(_) => {}
        }
    }
    let joined = parts.join("/");
    if p.starts_with('/') {
        PathBuf::from(format!("/{joined}"))
    } else {
        PathBuf::from(joined)
    }
}

/// Strips the mount's root from a cgroup path seen in /proc/self/cgroup
/// (non-"/" inside a container with a bind-mounted sub-hierarchy).
fn under_mount(own: &Path, mount_root: &Path) -> PathBuf {
    own.strip_prefix(mount_root)
        .map(Path::to_path_buf)
        .unwrap_or_else(|_| own.strip_prefix("/").unwrap_or(own).to_path_buf())
}

fn rel(p: &Path) -> &Path {
    p.strip_prefix("/").unwrap_or(p)
}

/// Resolves `cgroups_path` (or the default from `id`) on `layout`, given
/// berth's own cgroups `own`. Pure: touches no file.
pub fn resolve(
    layout: &Layout,
    own: &ProcCgroups,
    cgroups_path: Option<&str>,
    id: &str,
) -> Result<Resolved, PathError> {
    let raw = match cgroups_path {
        Some(p) if !p.is_empty() => p.to_string(),
        _ => {
            if id.is_empty() || id.contains('/') || id.contains('\0') || id == "." || id == ".." {
                return Err(PathError::BadId { id: id.to_string() });
            }
            id.to_string()
        }
    };
    let fields: Vec<&str> = raw.split(':').collect();
    if fields.len() == 3 && !raw.starts_with('/') {
        return Err(PathError::Systemd {
            path: raw.clone(),
            name: fields[2].to_string(),
        });
    }
    let inner = clean(&raw);
    if inner.as_os_str().is_empty() || inner == Path::new("/") {
        return Err(PathError::Root { path: raw });
    }
    let absolute = inner.is_absolute();
    if layout.mode == Mode::Unified {
        let mount = layout
            .unified
            .clone()
            .expect("unified layout has a cgroup2 mount");
        let dir = if absolute {
            mount.join(rel(&inner))
        } else {
            let own_path = own
                .unified
                .as_deref()
                .ok_or_else(|| PathError::OwnUnknown {
                    path: raw.clone(),
                    controller: "unified".into(),
                })?;
            // runc: the parent of our own cgroup, which most likely has
            // processes in it and so could not enable controllers for a child.
            let parent = own_path.parent().unwrap_or(Path::new("/"));
            mount.join(rel(parent)).join(&inner)
        };
        return Ok(Resolved {
            driver: Driver::V2,
            unified: Some(dir),
            v1: BTreeMap::new(),
        });
    }
    let mut v1 = BTreeMap::new();
    for (ctrl, m) in &layout.v1 {
        if ctrl == SYSTEMD {
            // Membership only, as runc: without it the container would see
            // the host's whole name=systemd tree.
            let own_path = own.v1.get(ctrl);
            if let Some(dir) = membership_dir(&m.mountpoint, &m.root, own_path, &inner, absolute) {
                v1.insert(ctrl.clone(), dir);
            }
            continue;
        }
        if !V1_CONTROLLERS.contains(&ctrl.as_str()) {
            continue;
        }
        let dir = if absolute {
            m.mountpoint.join(rel(&inner))
        } else {
            let own_path = own.v1.get(ctrl).ok_or_else(|| PathError::OwnUnknown {
                path: raw.clone(),
                controller: ctrl.clone(),
            })?;
            m.mountpoint
                .join(under_mount(own_path, &m.root))
                .join(&inner)
        };
        v1.insert(ctrl.clone(), dir);
    }
    // Hybrid hosts: join the cgroup2 hierarchy too (membership only; it
    // has no controllers to configure here), as runc does.
    if layout.mode == Mode::Hybrid {
        if let Some(mount) = &layout.unified {
            if let Some(dir) = membership_dir(
                mount,
                Path::new("/"),
                own.unified.as_ref(),
                &inner,
                absolute,
            ) {
                v1.insert(UNIFIED_MEMBERSHIP.to_string(), dir);
            }
        }
    }
    Ok(Resolved {
        driver: Driver::V1,
        unified: None,
        v1,
    })
}

/// The `name=systemd` v1 hierarchy (joined for membership only).
pub const SYSTEMD: &str = "name=systemd";
/// Key of the cgroup2 directory a container joins on a hybrid host.
pub const UNIFIED_MEMBERSHIP: &str = "unified";

/// The directory of a hierarchy that is joined only for membership; None
/// when berth's own place in it is unknown for a relative path.
fn membership_dir(
    mountpoint: &Path,
    root: &Path,
    own: Option<&PathBuf>,
    inner: &Path,
    absolute: bool,
) -> Option<PathBuf> {
    if absolute {
        return Some(mountpoint.join(rel(inner)));
    }
    let own = own?;
    Some(mountpoint.join(under_mount(own, root)).join(inner))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::layout::{parse_mountinfo, parse_proc_cgroup};

    fn hybrid() -> Layout {
        parse_mountinfo(
            "32 31 0:29 / /sys/fs/cgroup/cpu,cpuacct rw - cgroup cgroup rw,cpu,cpuacct\n\
             35 31 0:32 / /sys/fs/cgroup/memory rw - cgroup cgroup rw,memory\n\
             40 31 0:37 / /sys/fs/cgroup/systemd rw - cgroup cgroup rw,name=systemd\n\
             41 31 0:38 / /sys/fs/cgroup/unified rw - cgroup2 cgroup2 rw\n",
        )
        .expect("parse")
    }

    fn unified() -> Layout {
        parse_mountinfo("30 23 0:26 / /sys/fs/cgroup rw - cgroup2 cgroup2 rw\n").expect("parse")
    }

    #[test]
    fn clean_never_escapes() {
        assert_eq!(clean("/a/../../b"), Path::new("/b"));
        assert_eq!(clean("../../x/./y"), Path::new("x/y"));
        assert_eq!(clean("/a//b/"), Path::new("/a/b"));
        assert_eq!(clean(".."), Path::new(""));
    }

    #[test]
    fn v2_absolute_relative_default() {
        let own = parse_proc_cgroup("0::/user.slice/session-1.scope\n");
        let r = resolve(&unified(), &own, Some("/berth/c1"), "c1").expect("abs");
        assert_eq!(r.driver, Driver::V2);
        assert_eq!(
            r.unified.as_deref(),
            Some(Path::new("/sys/fs/cgroup/berth/c1"))
        );
        let r = resolve(&unified(), &own, Some("berth/c1"), "c1").expect("rel");
        assert_eq!(
            r.unified.as_deref(),
            Some(Path::new("/sys/fs/cgroup/user.slice/berth/c1"))
        );
        let r = resolve(&unified(), &own, None, "c1").expect("default");
        assert_eq!(
            r.unified.as_deref(),
            Some(Path::new("/sys/fs/cgroup/user.slice/c1"))
        );
        let r = resolve(&unified(), &parse_proc_cgroup("0::/\n"), None, "c1").expect("root");
        assert_eq!(r.unified.as_deref(), Some(Path::new("/sys/fs/cgroup/c1")));
    }

    #[test]
    fn v1_per_controller() {
        let own = parse_proc_cgroup("4:memory:/sandbox\n2:cpu,cpuacct:/\n9:name=systemd:/x\n");
        let r = resolve(&hybrid(), &own, Some("/a/../b"), "c1").expect("abs");
        assert_eq!(r.driver, Driver::V1);
        assert_eq!(r.v1["memory"], Path::new("/sys/fs/cgroup/memory/b"));
        assert_eq!(r.v1["cpu"], Path::new("/sys/fs/cgroup/cpu,cpuacct/b"));
        assert_eq!(r.v1["name=systemd"], Path::new("/sys/fs/cgroup/systemd/b"));
        assert_eq!(r.v1["unified"], Path::new("/sys/fs/cgroup/unified/b"));
        let r = resolve(&hybrid(), &own, None, "c1").expect("default");
        assert_eq!(
            r.v1["memory"],
            Path::new("/sys/fs/cgroup/memory/sandbox/c1")
        );
        assert_eq!(r.v1["cpuacct"], Path::new("/sys/fs/cgroup/cpu,cpuacct/c1"));
    }

    #[test]
    fn rejected_paths() {
        let own = parse_proc_cgroup("0::/\n");
        assert!(matches!(
            resolve(&unified(), &own, Some("system.slice:berth:c1"), "c1"),
            Err(PathError::Systemd { .. })
        ));
        assert!(matches!(
            resolve(&unified(), &own, Some("/.."), "c1"),
            Err(PathError::Root { .. })
        ));
        assert!(matches!(
            resolve(&unified(), &own, None, "a/b"),
            Err(PathError::BadId { .. })
        ));
        assert!(matches!(
            resolve(&hybrid(), &own, Some("rel"), "c1"),
            Err(PathError::OwnUnknown { .. })
        ));
    }
}
