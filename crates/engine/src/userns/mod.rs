//! User namespaces for containers: `--userns=host|auto[:size=N]`,
//! `--uidmap`/`--gidmap` (podman's syntax). `auto` gives the container its
//! own range of host ids, taken from berth's subordinate range (the `berth`
//! entry of /etc/subuid and /etc/subgid, appended on first use) and recorded
//! in the engine database, so that no two containers share ids. The rootfs
//! layers and the bind mounts are idmapped (no chown copies): files keep
//! their host owners and container root writes host-root-owned files into
//! bind mounts, as it would without a user namespace.
//!
//! OCI runtime spec: config-linux.md "User namespace mappings" and
//! config.md "Mounts" (uidMappings/gidMappings, runc's `idmap` option).

use std::path::PathBuf;

use serde::{Deserialize, Serialize};
use serde_json::{json, Value};

mod pod;
mod ranges;
mod spec;

pub use pod::*;
pub use ranges::*;
pub use spec::*;

/// Default size of an `auto` range (podman's too).
pub const DEFAULT_SIZE: u32 = 65536;
/// Size of the `berth` subordinate range berth appends when missing:
/// 4096 containers of the default size.
const BERTH_RANGE_COUNT: u64 = 65536 * 4096;
/// Where berth's appended range starts at the earliest.
const BERTH_RANGE_MIN_START: u64 = 1 << 20;
/// The subordinate-id entry berth allocates from.
pub const SUBID_USER: &str = "berth";
/// Overrides of /etc/subuid and /etc/subgid (tests, custom setups).
pub const SUBUID_ENV: &str = "BERTH_SUBUID_FILE";
pub const SUBGID_ENV: &str = "BERTH_SUBGID_FILE";
/// The engine setting of the default mode: what a container made without
/// --userns/--uidmap/--gidmap gets (`host` or `auto[:size=N]`).
pub const DEFAULT_ENV: &str = "BERTH_USERNS_DEFAULT";

/// The default `--userns` mode: the engine setting, else `auto` for an
/// engine running as root (every container its own range of ids) and
/// `host` otherwise.
pub fn default_mode() -> String {
    std::env::var(DEFAULT_ENV)
        .ok()
        .filter(|v| !v.is_empty())
        .unwrap_or_else(|| {
            if rustix::process::geteuid().is_root() {
                "auto".into()
            } else {
                "host".into()
            }
        })
}

/// Whether the user asked for a user namespace mode (a flag), rather than
/// getting the default.
pub fn asked(o: &UsernsOptions) -> bool {
    o.userns.as_deref().is_some_and(|v| !v.is_empty())
        || !o.uidmap.is_empty()
        || !o.gidmap.is_empty()
}

/// A container joining pod `pod`, which has a user namespace of its own,
/// shares it: it cannot ask for another one, be privileged, or join the
/// host's IPC namespace (owned by the host's user namespace, which the
/// container could not enter after the pod's).
pub fn check_pod_member(
    pod: &str,
    o: &UsernsOptions,
    privileged: bool,
    x: &crate::flags::ExtraOptions,
) -> Result<()> {
    let why = |flag: &'static str, value: String| UsernsError::Invalid {
        flag,
        value,
        why: format!(
            "the containers of pod {pod} share its user namespace; drop the flag, or \
             create the pod with --userns=host"
        ),
    };
    if asked(o) {
        let v = o
            .userns
            .clone()
            .unwrap_or_else(|| "--uidmap/--gidmap".into());
        return Err(why("--userns", v));
    }
    if privileged {
        return Err(why("--privileged", "true".into()));
    }
    if x.ipc.as_deref().is_some_and(|v| v.starts_with("host")) {
        return Err(why("--ipc", "host".into()));
    }
    Ok(())
}

/// Why a container that did not ask for a user namespace stays in the
/// host's although the default is `auto`, if it does: it shares a
/// namespace owned by the host's user namespace in a way a container in a
/// user namespace of its own could not use as it would without one.
/// - a pod's containers join the pod's namespaces (made by the engine in
///   the host's user namespace when the pod has none of its own; when it
///   has, its containers share that one instead, see [`check_pod_member`]);
/// - `--pid host` or `--pid container:NAME`: seeing, signalling and
///   tracing the processes of that namespace is the point of the flag,
///   which a container in its own user namespace could not do;
/// - `--ipc host`: the host's shared memory and message queues belong to
///   host ids the container's range does not include.
///
/// Asked for explicitly (`--userns=auto`), the same flags either work
/// (`--pid host` with the host's /proc bind-mounted, as podman does) or are
/// refused with a clear error.
pub fn host_by_default(in_pod: bool, x: &crate::flags::ExtraOptions) -> Option<&'static str> {
    if in_pod {
        return Some("a pod's containers share the pod's namespaces");
    }
    let is = |v: &Option<String>, p: &str| v.as_deref().is_some_and(|v| v.starts_with(p));
    if is(&x.pid, "host") || is(&x.pid, "container:") {
        return Some("--pid shares another pid namespace");
    }
    if is(&x.ipc, "host") {
        return Some("--ipc host");
    }
    None
}

/// Errors of user namespace options and ranges.
#[derive(Debug, thiserror::Error)]
pub enum UsernsError {
    #[error("invalid {flag} value {value:?}: {why}")]
    Invalid {
        flag: &'static str,
        value: String,
        why: String,
    },
    #[error("--privileged cannot be combined with {0}: a privileged container uses the host's user namespace (as with podman); drop one of them")]
    Privileged(String),
    #[error("{what} cannot work inside a user namespace; run the container with --userns=host")]
    NotInUserns { what: String },
    #[error("{message}; run container {id} with --userns=host")]
    Runtime { id: String, message: String },
    #[error("idmap the image layer {path} (does its filesystem support idmapped mounts? otherwise run the container with --userns=host)")]
    Layer {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("the container's ids cannot reach its rootfs under {root}: {dir} is not searchable by others (mode {mode:o}); chmod o+x {dir}, use another --root, or run the container with --userns=host")]
    Unreachable {
        root: PathBuf,
        dir: PathBuf,
        mode: u32,
    },
    #[error("{op} {path}")]
    SubidFile {
        op: &'static str,
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("no free range of {size} ids left in berth's subordinate ids ({count} ids from the `berth` entries of {uid_file} and {gid_file}): remove containers, use a smaller --userns=auto:size=N, or give the entries a larger count")]
    Exhausted {
        size: u32,
        count: u64,
        uid_file: PathBuf,
        gid_file: PathBuf,
    },
    #[error("pod {pod}: {op}")]
    PodNamespace {
        pod: String,
        op: String,
        #[source]
        source: std::io::Error,
    },
    #[error("user namespace ranges: {op}")]
    Query {
        op: String,
        #[source]
        source: rusqlite::Error,
    },
}

type Result<T> = std::result::Result<T, UsernsError>;

fn q(op: impl Into<String>) -> impl FnOnce(rusqlite::Error) -> UsernsError {
    let op = op.into();
    move |source| UsernsError::Query { op, source }
}

fn invalid(flag: &'static str, value: &str, why: impl Into<String>) -> UsernsError {
    UsernsError::Invalid {
        flag,
        value: value.into(),
        why: why.into(),
    }
}

/// The user namespace flags as given.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct UsernsOptions {
    /// `--userns`.
    #[serde(default)]
    pub userns: Option<String>,
    /// `--uidmap CONTAINER:HOST:SIZE` (repeatable).
    #[serde(default)]
    pub uidmap: Vec<String>,
    /// `--gidmap CONTAINER:HOST:SIZE` (repeatable).
    #[serde(default)]
    pub gidmap: Vec<String>,
}

/// One line of a uid/gid map.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Map {
    pub container: u32,
    pub host: u32,
    pub size: u32,
}

impl Map {
    /// `CONTAINER:HOST:SIZE`, as podman shows and takes it.
    pub fn text(&self) -> String {
        format!("{}:{}:{}", self.container, self.host, self.size)
    }
}

/// A container's user namespace mapping.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Mapping {
    /// `auto` (a range berth allocated) or `private` (`--uidmap`/`--gidmap`).
    pub mode: String,
    pub uid: Vec<Map>,
    pub gid: Vec<Map>,
}

impl Mapping {
    /// The host ids container root maps to (uid, gid), if mapped.
    pub fn root(&self) -> Option<(u32, u32)> {
        let find = |maps: &[Map]| maps.iter().find(|m| m.container == 0).map(|m| m.host);
        Some((find(&self.uid)?, find(&self.gid)?))
    }

    fn runtime_maps(maps: &[Map]) -> Vec<berth_runtime::config::IdMap> {
        maps.iter()
            .map(|m| berth_runtime::config::IdMap {
                container: m.container,
                host: m.host,
                size: m.size,
            })
            .collect()
    }

    /// A user namespace with this mapping, held by a descriptor (for
    /// idmapping the rootfs layers).
    pub fn userns_fd(
        &self,
        id: &str,
    ) -> std::result::Result<berth_runtime::idmap::Userns, berth_runtime::Error> {
        berth_runtime::idmap::userns_fd(
            id,
            &Self::runtime_maps(&self.uid),
            &Self::runtime_maps(&self.gid),
        )
    }

    /// [`Mapping::userns_fd`] whose helper process waits for
    /// `Userns::release` (to close the layers' detached mounts).
    pub fn userns_held(
        &self,
        id: &str,
    ) -> std::result::Result<berth_runtime::idmap::Userns, berth_runtime::Error> {
        berth_runtime::idmap::userns_held(
            id,
            &Self::runtime_maps(&self.uid),
            &Self::runtime_maps(&self.gid),
        )
    }
}

impl Mapping {
    /// `userns` (made by [`Mapping::userns_fd`]) for the runtime's idmapped
    /// mounts with this mapping: it then makes no namespace of its own.
    pub fn given_userns(
        &self,
        userns: berth_runtime::idmap::Userns,
    ) -> berth_runtime::idmap::GivenUserns {
        berth_runtime::idmap::GivenUserns {
            fd: std::sync::Arc::new(userns),
            uid: Self::runtime_maps(&self.uid),
            gid: Self::runtime_maps(&self.gid),
        }
    }
}

/// What the flags ask for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Request {
    /// The host's user namespace (no flag, `--userns=host`).
    Host,
    /// A range of `size` ids from berth's subordinate range.
    Auto { size: u32 },
    /// The given maps.
    Explicit(Mapping),
}

fn parse_map(flag: &'static str, v: &str) -> Result<Map> {
    let parts: Vec<&str> = v.split(':').collect();
    if parts.len() != 3 {
        return Err(invalid(flag, v, "expected CONTAINER:HOST:SIZE"));
    }
    let num = |s: &str| {
        s.parse::<u32>()
            .map_err(|_| invalid(flag, v, format!("{s:?} is not an id (0..4294967295)")))
    };
    let m = Map {
        container: num(parts[0])?,
        host: num(parts[1])?,
        size: num(parts[2])?,
    };
    if m.size == 0 {
        return Err(invalid(flag, v, "the size must be at least 1"));
    }
    if u64::from(m.container) + u64::from(m.size) > u64::from(u32::MAX)
        || u64::from(m.host) + u64::from(m.size) > u64::from(u32::MAX)
    {
        return Err(invalid(flag, v, "the range runs past the last id"));
    }
    Ok(m)
}

fn check_disjoint(flag: &'static str, maps: &[Map]) -> Result<()> {
    for (i, a) in maps.iter().enumerate() {
        for b in &maps[i + 1..] {
            let over = |x: u32, y: u32| {
                u64::from(x) < u64::from(y) + u64::from(b.size)
                    && u64::from(y) < u64::from(x) + u64::from(a.size)
            };
            if over(a.container, b.container) || over(a.host, b.host) {
                return Err(invalid(flag, &b.text(), format!("overlaps {}", a.text())));
            }
        }
    }
    Ok(())
}

/// Reads the flags. `--privileged` with any mode but `host` is refused;
/// without any flag, the default mode applies (always `host` for a
/// privileged container, as podman).
pub fn request(o: &UsernsOptions, privileged: bool) -> Result<Request> {
    request_with_default(o, privileged, default_mode())
}

fn request_with_default(o: &UsernsOptions, privileged: bool, d: String) -> Result<Request> {
    if o.userns.is_none() && o.uidmap.is_empty() && o.gidmap.is_empty() {
        if privileged {
            return Ok(Request::Host);
        }
        if d != "host" {
            return request_of(
                &UsernsOptions {
                    userns: Some(d),
                    ..Default::default()
                },
                false,
            );
        }
        return Ok(Request::Host);
    }
    request_of(o, privileged)
}

fn request_of(o: &UsernsOptions, privileged: bool) -> Result<Request> {
    let uid = o
        .uidmap
        .iter()
        .map(|v| parse_map("--uidmap", v))
        .collect::<Result<Vec<_>>>()?;
    let gid = o
        .gidmap
        .iter()
        .map(|v| parse_map("--gidmap", v))
        .collect::<Result<Vec<_>>>()?;
    check_disjoint("--uidmap", &uid)?;
    check_disjoint("--gidmap", &gid)?;
    let maps_given = !uid.is_empty() || !gid.is_empty();
    let req = match o.userns.as_deref() {
        None | Some("") | Some("private") if maps_given => {
            // podman: a missing map is the other one.
            let (uid, gid) = match (uid.is_empty(), gid.is_empty()) {
                (true, _) => (gid.clone(), gid),
                (_, true) => (uid.clone(), uid),
                _ => (uid, gid),
            };
            Request::Explicit(Mapping {
                mode: "private".into(),
                uid,
                gid,
            })
        }
        None | Some("") | Some("host") if !maps_given => Request::Host,
        Some(v) if maps_given => {
            return Err(invalid(
                "--userns",
                v,
                "conflicts with --uidmap/--gidmap (they make a private user namespace)",
            ))
        }
        Some(v) if v == "auto" || v.starts_with("auto:") => {
            let mut size = DEFAULT_SIZE;
            for opt in v.strip_prefix("auto:").unwrap_or("").split(',') {
                if opt.is_empty() {
                    continue;
                }
                match opt.split_once('=') {
                    Some(("size", n)) => {
                        size = n.parse::<u32>().ok().filter(|n| *n > 0).ok_or_else(|| {
                            invalid(
                                "--userns",
                                v,
                                format!("size {n:?} is not a positive number of ids"),
                            )
                        })?;
                    }
                    _ => {
                        return Err(invalid(
                            "--userns",
                            v,
                            format!("unknown auto option {opt:?} (berth knows size=N)"),
                        ))
                    }
                }
            }
            Request::Auto { size }
        }
        Some(v) => {
            return Err(invalid(
                "--userns",
                v,
                "berth supports host, auto and auto:size=N (and --uidmap/--gidmap)",
            ))
        }
        None => Request::Host,
    };
    if privileged && req != Request::Host {
        let flag = match &o.userns {
            Some(v) if !v.is_empty() => format!("--userns={v}"),
            _ => "--uidmap/--gidmap".into(),
        };
        return Err(UsernsError::Privileged(flag));
    }
    Ok(req)
}

/// A runtime error of a container in a user namespace, with the way out
/// when it is about something a user namespace cannot have (an idmapped
/// mount of a filesystem without idmap support, a device, a sysctl).
pub fn hint(id: &str, in_userns: bool, e: crate::EngineError) -> crate::EngineError {
    if !in_userns {
        return e;
    }
    let chain = crate::error::error_chain(&e);
    let about = [
        "idmap",
        "Operation not permitted",
        "Permission denied",
        "sysctl",
        "host device",
    ];
    if about.iter().any(|a| chain.contains(a)) {
        return UsernsError::Runtime {
            id: id.into(),
            message: chain,
        }
        .into();
    }
    e
}

/// The tar owner shift of a container's files (None: host namespace).
pub fn id_shift(m: Option<&Mapping>) -> Option<berth_image::layer_diff::IdShift> {
    let t = |maps: &[Map]| maps.iter().map(|x| (x.container, x.host, x.size)).collect();
    m.map(|m| berth_image::layer_diff::IdShift {
        uid: t(&m.uid),
        gid: t(&m.gid),
    })
}

/// The runtime enters the user namespace before it mounts the rootfs, so
/// every dir above it must be searchable by the container's (unprivileged)
/// ids: refused up front otherwise, naming the dir.
pub fn check_reachable(root: &std::path::Path) -> Result<()> {
    use std::os::unix::fs::MetadataExt;
    let mut dir = Some(root);
    while let Some(d) = dir {
        if let Ok(md) = std::fs::metadata(d) {
            if md.mode() & 0o001 == 0 {
                return Err(UsernsError::Unreachable {
                    root: root.to_path_buf(),
                    dir: d.to_path_buf(),
                    mode: md.mode() & 0o7777,
                });
            }
        }
        dir = d.parent();
    }
    Ok(())
}

/// `inspect`'s HostConfig.UsernsMode (Docker: "" for the host's).
pub fn mode_text(m: Option<&Mapping>) -> String {
    m.map(|m| m.mode.clone()).unwrap_or_default()
}

/// `inspect`'s HostConfig.IDMappings (podman's shape), null for the host's.
pub fn inspect_json(m: Option<&Mapping>) -> Value {
    match m {
        None => Value::Null,
        Some(m) => json!({
            "UidMap": m.uid.iter().map(Map::text).collect::<Vec<_>>(),
            "GidMap": m.gid.iter().map(Map::text).collect::<Vec<_>>(),
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn o(userns: Option<&str>, u: &[&str], g: &[&str]) -> UsernsOptions {
        UsernsOptions {
            userns: userns.map(String::from),
            uidmap: u.iter().map(|s| s.to_string()).collect(),
            gidmap: g.iter().map(|s| s.to_string()).collect(),
        }
    }

    #[test]
    fn requests() {
        let with =
            |d: &str, privileged| request_with_default(&o(None, &[], &[]), privileged, d.into());
        assert_eq!(with("host", false).unwrap(), Request::Host);
        assert_eq!(with("auto", false).unwrap(), Request::Auto { size: 65536 });
        assert_eq!(
            with("auto:size=10", false).unwrap(),
            Request::Auto { size: 10 }
        );
        assert_eq!(with("auto", true).unwrap(), Request::Host);
        assert!(with("bogus", false).is_err());
        assert_eq!(
            request(&o(Some("host"), &[], &[]), true).unwrap(),
            Request::Host
        );
        assert_eq!(
            request(&o(Some("auto"), &[], &[]), false).unwrap(),
            Request::Auto { size: 65536 }
        );
        assert_eq!(
            request(&o(Some("auto:size=1000"), &[], &[]), false).unwrap(),
            Request::Auto { size: 1000 }
        );
        let Request::Explicit(m) = request(&o(None, &["0:100000:1000"], &[]), false).unwrap()
        else {
            panic!("explicit")
        };
        assert_eq!(m.gid, m.uid);
        assert!(request(&o(Some("auto"), &[], &[]), true).is_err());
        assert!(request(&o(None, &["0:1:1"], &[]), true).is_err());
        assert!(request(&o(Some("auto:size=0"), &[], &[]), false).is_err());
        assert!(request(&o(Some("auto:foo=1"), &[], &[]), false).is_err());
        assert!(request(&o(Some("keep-id"), &[], &[]), false).is_err());
        assert!(request(&o(Some("host"), &["0:1:1"], &[]), false).is_err());
        assert!(request(&o(None, &["0:1"], &[]), false).is_err());
        assert!(request(&o(None, &["0:1:0"], &[]), false).is_err());
        assert!(request(&o(None, &["0:100:10", "5:200:10"], &[]), false).is_err());
    }
}
