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

use std::io::{Read, Seek, Write};
use std::path::PathBuf;

use rusqlite::{params, Connection, TransactionBehavior};
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};

use crate::Engine;

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

/// Why a container that did not ask for a user namespace stays in the
/// host's although the default is `auto`, if it does: it shares a
/// namespace owned by the host's user namespace in a way a container in a
/// user namespace of its own could not use as it would without one.
/// - a pod's containers join the pod's namespaces (made by the engine);
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
    ) -> std::result::Result<std::os::fd::OwnedFd, berth_runtime::Error> {
        berth_runtime::idmap::userns_fd(
            id,
            &Self::runtime_maps(&self.uid),
            &Self::runtime_maps(&self.gid),
        )
    }
}

impl Mapping {
    /// `userns` (made by [`Mapping::userns_fd`]) for the runtime's idmapped
    /// mounts with this mapping: it then makes no namespace of its own.
    pub fn given_userns(&self, userns: std::os::fd::OwnedFd) -> berth_runtime::idmap::GivenUserns {
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

/// `<name>:<start>:<count>` entries of a subordinate id file.
fn entries(text: &str) -> Vec<(String, u64, u64)> {
    text.lines()
        .filter_map(|l| {
            let l = l.trim();
            if l.starts_with('#') {
                return None;
            }
            let mut it = l.split(':');
            let (n, s, c) = (it.next()?, it.next()?, it.next()?);
            Some((n.to_string(), s.parse().ok()?, c.parse().ok()?))
        })
        .collect()
}

/// The subordinate id files berth reads (and appends to).
pub fn subid_files() -> (PathBuf, PathBuf) {
    let f = |env: &str, def: &str| {
        std::env::var_os(env)
            .filter(|v| !v.is_empty())
            .map(PathBuf::from)
            .unwrap_or_else(|| PathBuf::from(def))
    };
    (f(SUBUID_ENV, "/etc/subuid"), f(SUBGID_ENV, "/etc/subgid"))
}

/// berth's `(start, count)` in the uid and gid files, appending an entry
/// that overlaps no other to a file that lacks one.
fn berth_ranges() -> Result<((u64, u64), (u64, u64))> {
    let (uf, gf) = subid_files();
    let open = |p: &PathBuf| {
        std::fs::OpenOptions::new()
            .read(true)
            .append(true)
            .create(true)
            .open(p)
            .map_err(|source| UsernsError::SubidFile {
                op: "open",
                path: p.clone(),
                source,
            })
    };
    let (mut u, mut g) = (open(&uf)?, open(&gf)?);
    // One lock (on the uid file) orders the appends of racing creates.
    rustix::fs::flock(&u, rustix::fs::FlockOperation::LockExclusive).map_err(|e| {
        UsernsError::SubidFile {
            op: "lock",
            path: uf.clone(),
            source: e.into(),
        }
    })?;
    let read = |f: &mut std::fs::File, p: &PathBuf| {
        let mut s = String::new();
        f.rewind()
            .and_then(|_| f.read_to_string(&mut s))
            .map_err(|source| UsernsError::SubidFile {
                op: "read",
                path: p.clone(),
                source,
            })?;
        Ok::<_, UsernsError>(s)
    };
    let (ut, gt) = (read(&mut u, &uf)?, read(&mut g, &gf)?);
    let (ue, ge) = (entries(&ut), entries(&gt));
    let ours = |e: &[(String, u64, u64)]| {
        e.iter()
            .find(|(n, _, c)| n == SUBID_USER && *c > 0)
            .map(|(_, s, c)| (*s, *c))
    };
    // A new entry starts after every entry of both files (so the uid and
    // gid entries berth makes are equal), on a 64k boundary.
    let end = ue
        .iter()
        .chain(ge.iter())
        .map(|(_, s, c)| s + c)
        .max()
        .unwrap_or(0)
        .max(BERTH_RANGE_MIN_START);
    let fresh = (end.div_ceil(65536) * 65536, BERTH_RANGE_COUNT);
    let ensure = |found: Option<(u64, u64)>,
                  text: &str,
                  f: &mut std::fs::File,
                  p: &PathBuf|
     -> Result<(u64, u64)> {
        if let Some(r) = found {
            return Ok(r);
        }
        if fresh.0 + fresh.1 > u64::from(u32::MAX) {
            return Err(UsernsError::SubidFile {
                op: "add a berth entry to",
                path: p.clone(),
                source: std::io::Error::other("no room left below the last id"),
            });
        }
        let sep = if text.is_empty() || text.ends_with('\n') {
            ""
        } else {
            "\n"
        };
        f.write_all(format!("{sep}{SUBID_USER}:{}:{}\n", fresh.0, fresh.1).as_bytes())
            .map_err(|source| UsernsError::SubidFile {
                op: "append the berth entry to",
                path: p.clone(),
                source,
            })?;
        Ok(fresh)
    };
    let ur = ensure(ours(&ue), &ut, &mut u, &uf)?;
    let gr = ensure(ours(&ge), &gt, &mut g, &gf)?;
    Ok((ur, gr))
}

const SCHEMA: &str = "
CREATE TABLE IF NOT EXISTS userns_ranges (
    container TEXT PRIMARY KEY NOT NULL,
    offset INTEGER NOT NULL UNIQUE,
    size INTEGER NOT NULL
);";

fn conn(db: &mut crate::Db) -> Result<&mut Connection> {
    let c = db.conn_mut();
    c.execute_batch(SCHEMA)
        .map_err(q("create the userns_ranges table"))?;
    Ok(c)
}

/// The first offset in `[0, avail)` where `size` ids fit between the
/// `(offset, size)` ranges taken (sorted by offset).
fn first_fit(taken: &[(u64, u64)], size: u64, avail: u64) -> Option<u64> {
    let mut cursor = 0u64;
    for (o, s) in taken {
        if *o >= cursor + size {
            break;
        }
        cursor = cursor.max(o + s);
    }
    (cursor + size <= avail).then_some(cursor)
}

/// Allocates `size` ids for container `id` (recorded until [`release`]).
/// A killed `create` leaves a record without a container row, which
/// [`unowned`] reports for `create::reap_interrupted`.
pub fn allocate(engine: &Engine, id: &str, size: u32) -> crate::Result<Mapping> {
    let ((us, uc), (gs, gc)) = berth_ranges()?;
    let avail = uc.min(gc);
    let mut db = engine.db()?;
    let c = conn(&mut db)?;
    let tx = c
        .transaction_with_behavior(TransactionBehavior::Immediate)
        .map_err(q("begin allocation"))?;
    let taken = {
        let mut st = tx
            .prepare("SELECT offset, size FROM userns_ranges ORDER BY offset")
            .map_err(q("list ranges"))?;
        let v = st
            .query_map([], |r| {
                Ok((r.get::<_, i64>(0)? as u64, r.get::<_, i64>(1)? as u64))
            })
            .map_err(q("list ranges"))?
            .collect::<rusqlite::Result<Vec<_>>>()
            .map_err(q("list ranges"))?;
        v
    };
    let offset = first_fit(&taken, u64::from(size), avail).ok_or_else(|| {
        let (uid_file, gid_file) = subid_files();
        UsernsError::Exhausted {
            size,
            count: avail,
            uid_file,
            gid_file,
        }
    })?;
    tx.execute(
        "INSERT INTO userns_ranges (container, offset, size) VALUES (?1, ?2, ?3)",
        params![id, offset as i64, i64::from(size)],
    )
    .map_err(q(format!("record the range of {id}")))?;
    tx.commit().map_err(q("commit allocation"))?;
    let map = |start: u64| {
        vec![Map {
            container: 0,
            host: (start + offset) as u32,
            size,
        }]
    };
    Ok(Mapping {
        mode: "auto".into(),
        uid: map(us),
        gid: map(gs),
    })
}

/// Frees the range of container `id` (none: nothing to do).
pub fn release(engine: &Engine, id: &str) -> crate::Result<()> {
    let mut db = engine.db()?;
    let c = conn(&mut db)?;
    c.execute(
        "DELETE FROM userns_ranges WHERE container = ?1",
        params![id],
    )
    .map_err(q(format!("release the range of {id}")))?;
    Ok(())
}

/// Containers with a range but no row (killed `create`s, or being made).
pub fn unowned(engine: &Engine) -> crate::Result<Vec<String>> {
    let mut db = engine.db()?;
    let c = conn(&mut db)?;
    let mut st = c
        .prepare("SELECT container FROM userns_ranges WHERE container NOT IN (SELECT id FROM containers)")
        .map_err(q("list unowned ranges"))?;
    let v = st
        .query_map([], |r| r.get::<_, String>(0))
        .map_err(q("list unowned ranges"))?
        .collect::<rusqlite::Result<Vec<_>>>()
        .map_err(q("list unowned ranges"))?;
    Ok(v)
}

fn oci_maps(maps: &[Map]) -> Value {
    Value::Array(
        maps.iter()
            .map(|m| json!({"containerID": m.container, "hostID": m.host, "size": m.size}))
            .collect(),
    )
}

/// The namespace entry of `kind`: None when the container stays in the
/// host's, Some(None) when it makes its own, Some(Some(path)) when it joins
/// one.
fn namespace<'a>(spec: &'a Value, kind: &str) -> Option<Option<&'a str>> {
    spec["linux"]["namespaces"]
        .as_array()?
        .iter()
        .find(|n| n["type"] == kind)
        .map(|n| n["path"].as_str())
}

fn is_bind(mt: &Value) -> bool {
    mt["type"] == "bind"
        || mt["options"]
            .as_array()
            .is_some_and(|o| o.iter().any(|x| x == "bind" || x == "rbind"))
}

/// The maps of a read-only bind mount: the container's, less container
/// root. Files of host root (uid or gid 0) show as nobody's there, so
/// container root reaches them only through their "other" permission bits:
/// a read-only bind of the host's /etc does not hand it /etc/shadow.
/// (Capabilities over a file need both its owner and group mapped.)
fn without_root(maps: &[Map]) -> Vec<Map> {
    maps.iter()
        .filter_map(|m| {
            if m.container != 0 {
                return Some(*m);
            }
            (m.size > 1).then_some(Map {
                container: 1,
                host: m.host + 1,
                size: m.size - 1,
            })
        })
        .collect()
}

/// The `net.` sysctls of a container in a user namespace with a network
/// namespace the engine made (`own_netns`, owned by the host's user
/// namespace, where the container cannot write them): the engine writes
/// them at start ([`write_net_sysctls`]) instead of the runtime.
pub fn engine_sysctls<'a>(
    m: Option<&Mapping>,
    spec: &Value,
    own_netns: &std::path::Path,
    sysctls: &'a [String],
) -> Vec<(&'a str, &'a str)> {
    if m.is_none() || namespace(spec, "network") != Some(own_netns.to_str()) {
        return Vec::new();
    }
    let mut out: Vec<(&str, &str)> = NET_DEFAULTS.to_vec();
    if crate::rootless::is_rootless() {
        // The engine's own user namespace maps only 65536 gids: a range
        // beyond them is refused (EINVAL).
        out.retain(|(k, _)| *k != "net.ipv4.ping_group_range");
        out.push(("net.ipv4.ping_group_range", "0 65535"));
    }
    for (k, v) in sysctls
        .iter()
        .filter_map(|s| s.split_once('='))
        .map(|(k, v)| (k.trim(), v))
        .filter(|(k, _)| k.starts_with("net."))
    {
        out.retain(|(d, _)| *d != k);
        out.push((k, v));
    }
    out
}

/// What container root could do in a network namespace of its own user
/// namespace, and cannot in the one the engine made (owned by the host's):
/// bind ports below 1024 and ping (ICMP sockets). Docker sets the same two
/// in every container; `--sysctl` overrides them.
const NET_DEFAULTS: [(&str, &str); 2] = [
    ("net.ipv4.ip_unprivileged_port_start", "0"),
    ("net.ipv4.ping_group_range", "0 2147483647"),
];

/// Writes `sysctls` into the network namespace pinned at `netns`, from the
/// host's user namespace (config-linux.md "Sysctl": the runtime would,
/// were the namespace the container's own).
pub fn write_net_sysctls(
    id: &str,
    netns: &std::path::Path,
    sysctls: &[(&str, &str)],
) -> Result<()> {
    if sysctls.is_empty() {
        return Ok(());
    }
    let fail = |k: &str, e: String| UsernsError::Runtime {
        id: id.into(),
        message: format!("set sysctl {k} in the container's network namespace: {e}"),
    };
    berth_network::netns::run_in(netns, || {
        for (k, v) in sysctls {
            if k.is_empty() || k.contains('/') || k.contains("..") {
                return Err(fail(k, "not a sysctl name".into()));
            }
            let path = PathBuf::from("/proc/sys").join(k.replace('.', "/"));
            std::fs::write(&path, v).map_err(|e| fail(k, e.to_string()))?;
        }
        Ok(())
    })
    .map_err(|e| fail("*", e.to_string()))?
}

/// What the engine does for a container in a user namespace before the
/// runtime creates it: the `net.` sysctls of [`engine_sysctls`].
pub fn start_hook(
    engine: &Engine,
    id: &str,
    cfg: &crate::create::ContainerConfig,
) -> crate::Result<()> {
    let own = crate::networks::netns_path(engine, id);
    let sysctls = engine_sysctls(
        cfg.idmap.as_ref(),
        &cfg.generated.spec,
        &own,
        &cfg.options.extra.sysctls,
    );
    write_net_sysctls(id, &own, &sysctls)?;
    Ok(())
}

/// Puts the container in a new user namespace with `m`, idmaps its bind
/// mounts (volumes too) to the same mapping, and adapts or refuses what
/// cannot work there as it is:
/// - the host's pid namespace: the host's /proc bind-mounted (a procfs
///   mount needs a pid namespace the container's user namespace owns);
/// - `net.` sysctls of the network namespace the engine made (`own_netns`):
///   written by the engine at start, see [`engine_sysctls`];
/// - `--device` nodes: bind mounts of the
///   host's nodes (mknod is not allowed in a user namespace);
/// - read-only binds: idmapped without container root, see [`without_root`].
pub fn apply(
    spec: &mut Value,
    m: &Mapping,
    own_netns: &std::path::Path,
    x: &crate::flags::ExtraOptions,
) -> Result<()> {
    // `--pid container:NAME` is joined at start (no path in the spec yet).
    let joins_pid = x
        .pid
        .as_deref()
        .is_some_and(|p| p.starts_with("container:"));
    let host_pid = match namespace(spec, "pid") {
        None => true,
        Some(None) if !joins_pid => false,
        _ => {
            return Err(UsernsError::NotInUserns {
                what: "sharing another container's pid namespace".into(),
            })
        }
    };
    let netns = namespace(spec, "network").map(|p| p.map(String::from));
    if let Some(sysctl) = spec["linux"]["sysctl"].as_object_mut() {
        match netns {
            // The runtime makes it, in the container's user namespace.
            Some(None) => {}
            Some(Some(p)) if Some(p.as_str()) == own_netns.to_str() => {
                sysctl.retain(|k, _| !k.starts_with("net."));
            }
            _ => {
                if let Some(k) = sysctl.keys().find(|k| k.starts_with("net.")) {
                    return Err(UsernsError::NotInUserns {
                        what: format!(
                            "--sysctl {k} (of a network namespace the container does not own)"
                        ),
                    });
                }
            }
        }
    }
    let mut device_binds = Vec::new();
    for d in &x.devices {
        let (found, _) = crate::devices::host_devices(d).map_err(|e| UsernsError::Invalid {
            flag: "--device",
            value: d.clone(),
            why: e.to_string(),
        })?;
        for (dev, dest) in found {
            device_binds.push(json!({
                "destination": dest, "type": "bind",
                "source": dev.path.display().to_string(),
                "options": ["bind", "nosuid", "noexec"],
            }));
        }
    }
    let linux = spec["linux"]
        .as_object_mut()
        .expect("generated spec has linux");
    if let Some(list) = linux.get_mut("devices").and_then(|d| d.as_array_mut()) {
        list.retain(|n| !device_binds.iter().any(|b| b["destination"] == n["path"]));
    }
    let ns = linux
        .entry("namespaces")
        .or_insert_with(|| json!([]))
        .as_array_mut()
        .expect("namespaces is an array");
    if !ns.iter().any(|n| n["type"] == "user") {
        ns.push(json!({"type": "user"}));
    }
    linux.insert("uidMappings".into(), oci_maps(&m.uid));
    linux.insert("gidMappings".into(), oci_maps(&m.gid));
    let (ro_uid, ro_gid) = (without_root(&m.uid), without_root(&m.gid));
    if let Some(mounts) = spec["mounts"].as_array_mut() {
        if host_pid {
            // podman's way: the host's /proc, recursively.
            for mt in mounts.iter_mut().filter(|mt| mt["type"] == "proc") {
                *mt = json!({
                    "destination": mt["destination"], "type": "bind", "source": "/proc",
                    "options": ["rbind", "nosuid", "noexec", "nodev"],
                });
            }
        }
        // Before the init's mount, which stays last.
        let at = mounts
            .iter()
            .position(|mt| mt["destination"] == crate::init::INIT_DEST && mt["type"] == "bind")
            .unwrap_or(mounts.len());
        for (i, b) in device_binds.into_iter().enumerate() {
            mounts.insert(at + i, b);
        }
        for mt in mounts {
            if !is_bind(mt) {
                continue;
            }
            // Device nodes live on devtmpfs, procfs has no idmapped mounts
            // either; owners do not matter for access through a device node
            // container root opens with its capabilities.
            let src = mt["source"].as_str().unwrap_or("");
            if src == "/proc"
                || std::fs::metadata(src).is_ok_and(|md| {
                    use std::os::unix::fs::FileTypeExt;
                    md.file_type().is_char_device() || md.file_type().is_block_device()
                })
            {
                continue;
            }
            let ro = mt["options"]
                .as_array()
                .is_some_and(|o| o.iter().any(|x| x == "ro"));
            let obj = mt.as_object_mut().expect("mount is an object");
            if ro && !ro_uid.is_empty() && !ro_gid.is_empty() {
                obj.insert("uidMappings".into(), oci_maps(&ro_uid));
                obj.insert("gidMappings".into(), oci_maps(&ro_gid));
            }
            let opts = obj.entry("options").or_insert_with(|| json!([]));
            if let Some(o) = opts.as_array_mut() {
                if !o.iter().any(|x| x == "idmap" || x == "ridmap") {
                    o.push(json!("idmap"));
                }
            }
        }
    }
    Ok(())
}

/// A detached clone of the mount at `dir`, idmapped through `userns`
/// (`open_tree(OPEN_TREE_CLONE)` + `mount_setattr(MOUNT_ATTR_IDMAP)`).
pub fn idmapped_tree(
    dir: &std::path::Path,
    userns: std::os::fd::BorrowedFd<'_>,
) -> std::io::Result<std::os::fd::OwnedFd> {
    use rustix::mount::OpenTreeFlags;
    use std::os::fd::AsFd;
    let tree = rustix::mount::open_tree(
        rustix::fs::CWD,
        dir,
        OpenTreeFlags::OPEN_TREE_CLONE | OpenTreeFlags::OPEN_TREE_CLOEXEC,
    )?;
    berth_sys::mount_attr::mount_setattr(
        tree.as_fd(),
        false,
        berth_sys::mount_attr::MOUNT_ATTR_IDMAP,
        0,
        Some(userns),
    )?;
    Ok(tree)
}

/// Idmapped views of the image layers `lowers` (topmost first): the
/// detached trees (kept until the overlay is mounted) and each layer's path
/// through them. The layers of an image store share one parent dir on one
/// mount: one clone of that dir serves them all (one `open_tree` +
/// `mount_setattr` per container instead of one per layer); layers on
/// different mounts get a clone each.
pub fn idmapped_lowers(
    lowers: &[PathBuf],
    userns: std::os::fd::BorrowedFd<'_>,
) -> crate::Result<(Vec<std::os::fd::OwnedFd>, Vec<PathBuf>)> {
    let layer_err = |path: &std::path::Path| {
        let path = path.to_path_buf();
        move |source| -> crate::EngineError { UsernsError::Layer { path, source }.into() }
    };
    if let Some(parent) = shared_mount_parent(lowers) {
        let tree = idmapped_tree(&parent, userns).map_err(layer_err(&parent))?;
        let base = PathBuf::from(format!(
            "/proc/self/fd/{}",
            std::os::fd::AsRawFd::as_raw_fd(&tree)
        ));
        let paths = lowers
            .iter()
            .map(|l| base.join(l.strip_prefix(&parent).expect("a parent of every lower")))
            .collect();
        return Ok((vec![tree], paths));
    }
    let trees = lowers
        .iter()
        .map(|l| idmapped_tree(l, userns).map_err(layer_err(l)))
        .collect::<crate::Result<Vec<_>>>()?;
    let paths = trees
        .iter()
        .map(|t| format!("/proc/self/fd/{}", std::os::fd::AsRawFd::as_raw_fd(t)).into())
        .collect();
    Ok((trees, paths))
}

/// The deepest dir holding every one of `lowers` (absolute paths), when it
/// and they are on one mount (a clone of it, not recursive, shows them all).
fn shared_mount_parent(lowers: &[PathBuf]) -> Option<PathBuf> {
    let first = lowers.first()?;
    if lowers.len() == 1 || !first.is_absolute() {
        return None;
    }
    let mut parent = first.parent()?.to_path_buf();
    while !lowers.iter().all(|l| l.starts_with(&parent)) {
        parent = parent.parent()?.to_path_buf();
    }
    // Each layer is reached below the clone by its plain relative path
    // (the store's `<hex>` dirs): nothing that could step out of it.
    let plain = |l: &PathBuf| {
        l.strip_prefix(&parent).is_ok_and(|r| {
            r.components()
                .all(|c| matches!(c, std::path::Component::Normal(_)))
        })
    };
    if !lowers.iter().all(plain) {
        return None;
    }
    let mnt_id = |p: &std::path::Path| {
        rustix::fs::statx(
            rustix::fs::CWD,
            p,
            rustix::fs::AtFlags::empty(),
            rustix::fs::StatxFlags::MNT_ID,
        )
        .ok()
        .filter(|s| s.stx_mask & rustix::fs::StatxFlags::MNT_ID.bits() != 0)
        .map(|s| s.stx_mnt_id)
    };
    let id = mnt_id(&parent)?;
    lowers
        .iter()
        .all(|l| mnt_id(l) == Some(id))
        .then_some(parent)
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

    #[test]
    fn fits() {
        assert_eq!(first_fit(&[], 10, 100), Some(0));
        assert_eq!(first_fit(&[(0, 10)], 10, 100), Some(10));
        assert_eq!(first_fit(&[(0, 10), (30, 10)], 10, 100), Some(10));
        assert_eq!(first_fit(&[(0, 10), (15, 10)], 10, 100), Some(25));
        assert_eq!(first_fit(&[(0, 95)], 10, 100), None);
    }

    #[test]
    fn subid_entries() {
        let e = entries("# c\nalice:100000:65536\nberth:1048576:268435456\nbad\n");
        assert_eq!(e.len(), 2);
        assert_eq!(e[1], ("berth".into(), 1048576, 268435456));
    }
}
