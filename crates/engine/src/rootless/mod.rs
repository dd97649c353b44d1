//! Rootless mode: berth run by an unprivileged user (docs/rootless.md).
//!
//! Every berth command of a user runs inside ONE user namespace and mount
//! namespace of that user, held by a pause process ([`pause`]): container
//! root is the user's uid, container ids 1..N the user's subordinate range
//! (/etc/subuid, /etc/subgid, mapped by `newuidmap`/`newgidmap`). Inside it
//! berth works as it does as root, with the user's own directories for
//! storage and run state, cgroups only in a cgroup v2 subtree delegated to
//! the user ([`cgroup`]), and bridge networks in a network namespace of its
//! own (`networks::rootless_netns`).

pub mod cgroup;
pub mod pause;

use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};

/// The environment variable carrying the user's host uid into the
/// commands berth starts inside the rootless namespace (monitors, `exec`
/// helpers): inside, every id reads as container ids.
pub const UID_ENV: &str = "_BERTH_ROOTLESS_UID";

/// The network a rootless container gets without `--network`: THE single
/// place deciding it. User-mode networking, as podman: slirp4netns when
/// installed, else pasta, else `none` (bridge networks, in the rootless
/// network namespace, only when asked for).
pub fn default_network() -> &'static str {
    match crate::networks::rootless_default() {
        Some(berth_network::usermode::Mode::Slirp4netns(_)) => "slirp4netns",
        Some(berth_network::usermode::Mode::Pasta(_)) => "pasta",
        None => "none",
    }
}

/// Errors of rootless setup.
#[derive(Debug, thiserror::Error)]
pub enum RootlessError {
    #[error("user {user} (uid {uid}) has no subordinate {kind} range in {file}: rootless containers need one (container ids 1..65535 map to it); as root run `usermod --add-subuids 100000-165535 --add-subgids 100000-165535 {user}` (adds the range to /etc/subuid and /etc/subgid), then run berth again")]
    NoSubids {
        user: String,
        uid: u32,
        kind: &'static str,
        file: PathBuf,
    },
    #[error("run state directory {path} belongs to uid {owner}, not to uid {uid}: remove it, or set XDG_RUNTIME_DIR or --runroot to a directory of your own")]
    ForeignDir { path: PathBuf, owner: u32, uid: u32 },
    #[error("{op} {path}")]
    Io {
        op: &'static str,
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("{0}")]
    Namespace(String),
    #[error("{flag} needs a cgroup, but rootless berth has none on this host (no cgroup v2 subtree delegated to the user: cgroup v1, or no ancestor of berth's cgroup is writable by the user): drop {flag}, delegate a cgroup v2 subtree to the user (systemd's user@.service with Delegate=), or run the container as root")]
    NoCgroup { flag: &'static str },
    #[error("{flag}: {why}")]
    Controller { flag: &'static str, why: String },
    #[error("{0} is not supported rootless (berth supports --userns=host, the default: container root is the user; --userns=keep-id; and --uidmap/--gidmap with ids of the rootless namespace)")]
    Userns(String),
    #[error("--userns=keep-id: id {id} is not below the {size} ids of the rootless namespace")]
    KeepId { id: u32, size: u32 },
}

/// Whether this process is in a user namespace other than the initial one.
pub fn in_child_userns() -> bool {
    static IN: std::sync::OnceLock<bool> = std::sync::OnceLock::new();
    *IN.get_or_init(|| {
        std::fs::read_to_string("/proc/self/uid_map")
            .map(|m| {
                let f: Vec<&str> = m.split_whitespace().collect();
                f != ["0", "0", "4294967295"]
            })
            .unwrap_or(false)
    })
}

/// The user's host uid when berth runs rootless: the euid before joining
/// the rootless namespace, [`UID_ENV`] inside it; `None` for root.
pub fn host_uid() -> Option<u32> {
    let euid = nix::unistd::geteuid().as_raw();
    if euid != 0 {
        return Some(euid);
    }
    if !in_child_userns() {
        return None;
    }
    std::env::var(UID_ENV).ok()?.parse().ok()
}

/// Whether berth runs rootless.
pub fn is_rootless() -> bool {
    host_uid().is_some()
}

fn env_dir(var: &str) -> Option<PathBuf> {
    std::env::var_os(var)
        .filter(|v| !v.is_empty())
        .map(PathBuf::from)
        .filter(|p| p.is_absolute())
}

fn home(uid: u32) -> PathBuf {
    env_dir("HOME")
        .or_else(|| {
            nix::unistd::User::from_uid(nix::unistd::Uid::from_raw(uid))
                .ok()
                .flatten()
                .map(|u| u.dir)
        })
        .unwrap_or_else(|| PathBuf::from(format!("/tmp/berth-{uid}-home")))
}

/// Default `--root`: `/var/lib/berth` as root, `$XDG_DATA_HOME/berth`
/// (default `~/.local/share/berth`) rootless.
pub fn default_root() -> PathBuf {
    match host_uid() {
        None => PathBuf::from(berth_image::store::DEFAULT_ROOT),
        Some(uid) => env_dir("XDG_DATA_HOME")
            .unwrap_or_else(|| home(uid).join(".local/share"))
            .join("berth"),
    }
}

/// The user's private run dir: `$XDG_RUNTIME_DIR/berth`, else
/// `/tmp/berth-UID` (no XDG_RUNTIME_DIR). Not created.
pub fn run_base(uid: u32) -> PathBuf {
    match env_dir("XDG_RUNTIME_DIR") {
        Some(d) => d.join("berth"),
        None => PathBuf::from(format!("/tmp/berth-{uid}")),
    }
}

/// Default `--runroot`: `/run/berth` as root, [`run_base`] rootless.
pub fn default_runroot() -> PathBuf {
    match host_uid() {
        None => PathBuf::from(crate::DEFAULT_RUNROOT),
        Some(uid) => run_base(uid),
    }
}

/// Creates the run dir `dir` (mode 0700) for host uid `uid`, called
/// before joining the namespace. An existing one must be the user's own:
/// a dir another user made in /tmp beforehand is refused.
pub fn ensure_private_dir(dir: &Path, uid: u32) -> Result<(), RootlessError> {
    let io = |op, source| RootlessError::Io {
        op,
        path: dir.to_path_buf(),
        source,
    };
    match std::fs::symlink_metadata(dir) {
        Ok(md) => {
            if md.uid() != uid || !md.is_dir() {
                return Err(RootlessError::ForeignDir {
                    path: dir.to_path_buf(),
                    owner: md.uid(),
                    uid,
                });
            }
            if md.mode() & 0o077 != 0 {
                std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o700))
                    .map_err(|e| io("chmod 0700", e))?;
            }
            Ok(())
        }
        Err(_) => {
            if let Some(p) = dir.parent() {
                std::fs::create_dir_all(p).map_err(|e| io("create the parent of", e))?;
            }
            match std::fs::create_dir(dir) {
                Ok(()) => {}
                Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {
                    return ensure_private_dir(dir, uid)
                }
                Err(e) => return Err(io("create", e)),
            }
            std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o700))
                .map_err(|e| io("chmod 0700", e))
        }
    }
}

/// A subordinate id range: `(start, count)`.
pub type Range = (u64, u64);

/// The first range of `user` (by name or uid) in a subordinate id file.
pub fn range_in(text: &str, user: &str, uid: u32) -> Option<Range> {
    text.lines().find_map(|l| {
        let l = l.trim();
        if l.starts_with('#') {
            return None;
        }
        let mut it = l.split(':');
        let (n, s, c) = (it.next()?, it.next()?, it.next()?);
        let (s, c) = (s.parse::<u64>().ok()?, c.parse::<u64>().ok()?);
        ((n == user || n == uid.to_string()) && c > 0).then_some((s, c))
    })
}

/// The user's uid and gid subordinate ranges, or the error naming the fix.
pub fn user_ranges(user: &str, uid: u32) -> Result<(Range, Range), RootlessError> {
    let (uf, gf) = crate::userns::subid_files();
    let one = |file: &PathBuf, kind| {
        let text = std::fs::read_to_string(file).unwrap_or_default();
        range_in(&text, user, uid).ok_or_else(|| RootlessError::NoSubids {
            user: user.into(),
            uid,
            kind,
            file: file.clone(),
        })
    };
    Ok((one(&uf, "uid")?, one(&gf, "gid")?))
}

/// The resource flags of a rootless container: applied in the user's
/// delegated cgroup v2 subtree (its controllers enabled there as needed),
/// refused where there is none (cgroup v1, nothing delegated), so that a
/// limit is never silently missing. Sets the container's cgroup parent to
/// the delegation when none was given.
pub fn check_resources(o: &mut crate::RunOptions) -> Result<(), RootlessError> {
    let flags: [(&'static str, &str, bool); 4] = [
        ("--memory", "memory", o.memory.is_some()),
        ("--cpus", "cpu", o.cpus.is_some()),
        ("--cpu-shares", "cpu", o.cpu_shares.is_some()),
        ("--pids-limit", "pids", o.pids_limit.is_some()),
    ];
    let Some(d) = cgroup::delegation() else {
        return match flags.iter().find(|(_, _, set)| *set) {
            Some((flag, _, _)) => Err(RootlessError::NoCgroup { flag }),
            None => Ok(()),
        };
    };
    for (flag, controller, _) in flags.iter().filter(|(_, _, set)| *set) {
        d.ensure_controller(controller)
            .map_err(|why| RootlessError::Controller { flag, why })?;
    }
    if o.cgroup_parent.is_empty() || o.cgroup_parent == crate::DEFAULT_CGROUP_PARENT {
        o.cgroup_parent = d.path.clone();
    }
    Ok(())
}

/// A rootless container's options: the rootless default network, and
/// refusals of what needs root on the host (resource limits). Bridge
/// networks live in the engine's rootless network namespace
/// (`networks::rootless_netns`).
pub fn adjust(o: &mut crate::RunOptions) -> Result<(), RootlessError> {
    check_resources(o)?;
    // The rootless namespace is the container's (`--userns=host`, also
    // the default whatever BERTH_USERNS_DEFAULT says).
    let u = &mut o.userns;
    let maps_given = !u.uidmap.is_empty() || !u.gidmap.is_empty();
    match u.userns.as_deref() {
        None | Some("") | Some("host") if !maps_given => {
            u.userns = Some("host".into());
        }
        // Host ids of --uidmap/--gidmap are ids of the rootless namespace
        // (0 the user, 1.. the subordinate range), as with podman.
        None | Some("") | Some("private") if maps_given => {}
        Some("keep-id") if !maps_given => {
            let uid = host_uid().unwrap_or(0);
            let gid = host_gid();
            let (nu, ng) = ns_size();
            u.userns = None;
            u.uidmap = keep_id_maps(uid, nu).ok_or(RootlessError::KeepId { id: uid, size: nu })?;
            u.gidmap = keep_id_maps(gid, ng).ok_or(RootlessError::KeepId { id: gid, size: ng })?;
            if o.user.is_none() {
                o.user = Some(format!("{uid}:{gid}"));
            }
        }
        other => {
            let flag = match other {
                Some(v) if !v.is_empty() => format!("--userns={v}"),
                _ => "--uidmap/--gidmap".into(),
            };
            return Err(RootlessError::Userns(flag));
        }
    }
    if o.network.as_deref().is_none_or(str::is_empty) && o.pod.is_none() {
        o.network = Some(default_network().to_string());
    }
    Ok(())
}

/// podman's keep-id maps for host id `id` in a namespace of `size` ids:
/// the container's `id` is the user (namespace id 0), container ids below
/// it are namespace ids 1..=id, those above stay as they are.
pub fn keep_id_maps(id: u32, size: u32) -> Option<Vec<String>> {
    if id == 0 || id >= size {
        return None;
    }
    let mut v = vec![format!("0:1:{id}"), format!("{id}:0:1")];
    if size > id + 1 {
        v.push(format!("{}:{}:{}", id + 1, id + 1, size - id - 1));
    }
    Some(v)
}

/// The number of uids and gids of the rootless namespace (its maps).
fn ns_size() -> (u32, u32) {
    let (u, g) = id_maps();
    let total = |t: &str| {
        t.lines()
            .filter_map(|l| l.split_whitespace().nth(2)?.parse::<u32>().ok())
            .sum()
    };
    (total(&u), total(&g))
}

/// The user's host gid (the namespace's gid 0).
fn host_gid() -> u32 {
    let (_, g) = id_maps();
    g.lines()
        .find_map(|l| {
            let f: Vec<&str> = l.split_whitespace().collect();
            (f.first() == Some(&"0")).then(|| f.get(1)?.parse().ok())?
        })
        .unwrap_or_else(|| nix::unistd::getegid().as_raw())
}

/// Rootless containers in a nested user namespace keep their bind mounts
/// as they are (a user namespace cannot idmap the host's filesystems):
/// the user's files show as the user's id, as with podman's keep-id.
pub fn unidmap_binds(spec: &mut serde_json::Value) {
    if let Some(mounts) = spec["mounts"].as_array_mut() {
        for m in mounts {
            if let Some(o) = m["options"].as_array_mut() {
                o.retain(|x| x != "idmap" && x != "ridmap");
            }
        }
    }
}

/// The uid and gid maps of the rootless namespace, as `/proc/self/*_map`
/// shows them (`berth info`).
pub fn id_maps() -> (String, String) {
    let r = |f: &str| std::fs::read_to_string(f).unwrap_or_default();
    (r("/proc/self/uid_map"), r("/proc/self/gid_map"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ranges() {
        let t = "# x\nalice:100000:65536\n1001:200000:1000\nbob:1:0\n";
        assert_eq!(range_in(t, "alice", 1000), Some((100000, 65536)));
        assert_eq!(range_in(t, "carol", 1001), Some((200000, 1000)));
        assert_eq!(range_in(t, "bob", 7), None);
    }

    #[test]
    fn keep_id() {
        assert_eq!(
            keep_id_maps(1000, 65537).unwrap(),
            ["0:1:1000", "1000:0:1", "1001:1001:64536"]
        );
        assert!(keep_id_maps(70000, 65537).is_none());
    }
}
