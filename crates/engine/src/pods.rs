//! Pods (podman's `pod`): containers that share network, IPC and UTS
//! namespaces. The shared namespaces are held WITHOUT a pause process:
//! each is a pinned namespace file (a bind mount of nsfs, as
//! `ip netns add` does), so an idle pod costs no process.
//!
//! - network: `<runroot>/netns/<pod id>` (see [`crate::networks`]), with
//!   the pod's endpoint and published ports keyed by the pod's ID;
//! - IPC and UTS: `<runroot>/pods/<pod id>/{ipc,uts}` (the UTS one has the
//!   pod's hostname set);
//! - PID (`--share pid`, not by default): the kernel cannot pin a PID
//!   namespace before it has a PID 1, so the first of the pod's containers
//!   to start gets a new one and is its PID 1, and the others join it
//!   (`/proc/PID/ns/pid`) while it runs;
//! - /etc/hosts, resolv.conf, hostname: `<root>/pods/<pod id>/`.
//!
//! A container of the pod joins them by path (config-linux.md
//! "namespaces": a `path` joins an existing namespace). Pod rows live in
//! the engine database's `pods` table; a container records its pod's ID in
//! its options (`RunOptions::pod`).

use std::collections::BTreeMap;
use std::fs::File;
use std::path::{Path, PathBuf};

use berth_network::netns;
use nix::mount::{mount, MsFlags};
use nix::sched::{unshare, CloneFlags};
use rusqlite::{params, Connection};
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};

use crate::db::short;
use crate::opts::{NetworkMode, RunOptions};
use crate::{ContainerRow, Engine, Result, Status};

/// Errors of pods.
#[derive(Debug, thiserror::Error)]
pub enum PodError {
    #[error("no such pod: {0}")]
    NotFound(String),
    #[error("pod reference {reference:?} is ambiguous: it matches {count} pods")]
    Ambiguous { reference: String, count: usize },
    #[error("the pod name {name:?} is already in use (by pod {holder}); remove that pod or pick another name")]
    NameInUse { name: String, holder: String },
    #[error("{0} is not supported yet")]
    Unsupported(String),
    #[error("invalid {flag} {value:?}: {why}")]
    Invalid {
        flag: &'static str,
        value: String,
        why: String,
    },
    #[error("pod {name} has {count} running container(s); stop them first or use -f")]
    HasRunning { name: String, count: usize },
    #[error("engine database: {op}")]
    Query {
        op: String,
        #[source]
        source: rusqlite::Error,
    },
    #[error("engine database: the stored {field} of pod {id} is unreadable")]
    Corrupt {
        id: String,
        field: &'static str,
        #[source]
        source: serde_json::Error,
    },
    #[error("pod {pod}: {op} {path}")]
    Pin {
        pod: String,
        op: &'static str,
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
}

fn q(op: impl Into<String>) -> impl FnOnce(rusqlite::Error) -> PodError {
    let op = op.into();
    move |source| PodError::Query { op, source }
}

/// The namespaces a pod can share, in `--share` order.
pub const SHAREABLE: [&str; 4] = ["net", "ipc", "uts", "pid"];

/// The default `--share` (podman's, less cgroup).
const DEFAULT_SHARE: [&str; 3] = ["net", "ipc", "uts"];

/// What `pod create` was asked for (kept in the row).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct PodConfig {
    /// Shared namespaces: a subset of [`SHAREABLE`], in that order.
    pub share: Vec<String>,
    /// `--network` (a bridge network name or `none`; default network when absent).
    pub network: Option<String>,
    /// `-p`: the pod's published ports.
    pub publish: Vec<String>,
    /// The pod's hostname (default: its name).
    pub hostname: String,
    /// The pod's own user namespace mapping (a range berth allocated, as
    /// for a container), shared by its containers; none: the host's.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub idmap: Option<crate::userns::Mapping>,
}

/// One pod row.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct PodRow {
    /// 64 hex digits.
    pub id: String,
    pub name: String,
    /// Unix time in milliseconds.
    pub created: i64,
    pub labels: BTreeMap<String, String>,
    pub config: PodConfig,
}

impl PodRow {
    /// Whether the pod shares namespace `kind` (`net`, `ipc`, `uts`).
    pub fn shares(&self, kind: &str) -> bool {
        self.config.share.iter().any(|s| s == kind)
    }
}

/// `pod create`'s request.
#[derive(Debug, Clone, Default)]
pub struct PodCreate {
    pub name: Option<String>,
    pub publish: Vec<String>,
    pub network: Option<String>,
    /// `--share` as given (default `net,ipc,uts`).
    pub share: Option<String>,
    pub hostname: Option<String>,
    pub labels: Vec<String>,
    /// `--userns` (`host`, `auto[:size=N]`; default: the engine's default).
    pub userns: Option<String>,
}

// The `pods` table (added to databases made before pods existed: it is
// created when first used, as the volume and network tables are).
const SCHEMA: &str = "
CREATE TABLE IF NOT EXISTS pods (
    id TEXT PRIMARY KEY NOT NULL,
    name TEXT NOT NULL UNIQUE,
    created INTEGER NOT NULL,
    labels TEXT NOT NULL,
    config TEXT NOT NULL
);";

fn conn(db: &mut crate::Db) -> std::result::Result<&mut Connection, PodError> {
    let c = db.conn_mut();
    c.execute_batch(SCHEMA)
        .map_err(q("create the pods table"))?;
    Ok(c)
}

type RawPod = (String, String, i64, String, String);

fn finish(r: RawPod) -> std::result::Result<PodRow, PodError> {
    let (id, name, created, labels, config) = r;
    let labels = serde_json::from_str(&labels).map_err(|source| PodError::Corrupt {
        id: id.clone(),
        field: "labels",
        source,
    })?;
    let config = serde_json::from_str(&config).map_err(|source| PodError::Corrupt {
        id: id.clone(),
        field: "config",
        source,
    })?;
    Ok(PodRow {
        id,
        name,
        created,
        labels,
        config,
    })
}

fn raw(r: &rusqlite::Row<'_>) -> rusqlite::Result<RawPod> {
    Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?, r.get(4)?))
}

/// Every pod, oldest first.
pub fn list(engine: &Engine) -> Result<Vec<PodRow>> {
    let mut db = engine.db()?;
    let c = conn(&mut db)?;
    let mut st = c
        .prepare("SELECT id, name, created, labels, config FROM pods ORDER BY created, id")
        .map_err(q("list pods"))?;
    let rows = st
        .query_map([], raw)
        .map_err(q("list pods"))?
        .collect::<std::result::Result<Vec<_>, _>>()
        .map_err(q("list pods"))?;
    Ok(rows
        .into_iter()
        .map(finish)
        .collect::<std::result::Result<_, _>>()?)
}

/// Resolves a pod name, full ID or unique ID prefix (podman's order).
pub fn find(engine: &Engine, reference: &str) -> Result<PodRow> {
    let pods = list(engine)?;
    if let Some(p) = pods.iter().find(|p| p.name == reference) {
        return Ok(p.clone());
    }
    if reference.is_empty() || !reference.bytes().all(|b| b.is_ascii_hexdigit()) {
        return Err(PodError::NotFound(reference.into()).into());
    }
    let mut hits: Vec<&PodRow> = pods
        .iter()
        .filter(|p| p.id.starts_with(reference))
        .collect();
    match hits.len() {
        0 => Err(PodError::NotFound(reference.into()).into()),
        1 => Ok(hits.pop().expect("one pod").clone()),
        count => Err(PodError::Ambiguous {
            reference: reference.into(),
            count,
        }
        .into()),
    }
}

/// Whether a pod of this name or ID exists (`pod exists`).
pub fn exists(engine: &Engine, reference: &str) -> Result<bool> {
    match find(engine, reference) {
        Ok(_) => Ok(true),
        Err(crate::EngineError::Pod(e)) if matches!(*e, PodError::NotFound(_)) => Ok(false),
        Err(e) => Err(e),
    }
}

/// `--share`: the default is `net,ipc,uts`; `+KIND` adds to the default.
pub fn parse_share(s: Option<&str>) -> std::result::Result<Vec<String>, PodError> {
    let text = s.unwrap_or("net,ipc,uts");
    let (mut set, items): (Vec<&str>, &str) = match text.strip_prefix('+') {
        Some(rest) => (DEFAULT_SHARE.to_vec(), rest),
        None => (Vec::new(), text),
    };
    for item in items.split(',').map(str::trim).filter(|i| !i.is_empty()) {
        match item {
            "net" | "ipc" | "uts" | "pid" => set.push(item),
            "cgroup" => {
                return Err(PodError::Unsupported(
                    "--share cgroup (each container of a berth pod has its own cgroup \
                     under the engine's cgroup parent; share net, ipc, uts or pid)"
                        .into(),
                ))
            }
            other => {
                return Err(PodError::Invalid {
                    flag: "--share",
                    value: text.into(),
                    why: format!("unknown namespace {other:?}; use net, ipc, uts or pid"),
                })
            }
        }
    }
    Ok(SHAREABLE
        .iter()
        .filter(|k| set.contains(k))
        .map(|k| k.to_string())
        .collect())
}

/// `<runroot>/pods/<id>`: the pinned IPC and UTS namespaces.
fn run_dir(engine: &Engine, id: &str) -> PathBuf {
    engine.runroot.join("pods").join(id)
}

/// `<root>/pods/<id>`: the pod's /etc files.
fn files_dir(engine: &Engine, id: &str) -> PathBuf {
    engine.root.join("pods").join(id)
}

/// The pinned namespace file of `kind` (`net`, `ipc`, `uts`).
pub fn ns_path(engine: &Engine, id: &str, kind: &str) -> PathBuf {
    match kind {
        "net" => crate::networks::netns_path(engine, id),
        other => run_dir(engine, id).join(other),
    }
}

/// The OCI namespace type of a `--share` kind.
fn oci_type(kind: &str) -> &'static str {
    match kind {
        "net" => "network",
        "ipc" => "ipc",
        "pid" => "pid",
        _ => "uts",
    }
}

fn pin_err(pod: &str, op: &'static str, path: &Path) -> impl FnOnce(std::io::Error) -> PodError {
    let pod = short(pod).to_string();
    let path = path.to_path_buf();
    move |source| PodError::Pin {
        pod,
        op,
        path,
        source,
    }
}

/// Pins new IPC and/or UTS namespaces (the UTS one named `hostname`) on a
/// short-lived thread that unshares them, bind-mounts
/// `/proc/thread-self/ns/KIND` onto the pin files, and ends. Nothing is
/// left behind on failure. (A PID namespace cannot be pinned so: the
/// kernel offers `pid_for_children` only once it has a PID 1.)
fn pin_namespaces(
    engine: &Engine,
    id: &str,
    kinds: &[&str],
    hostname: &str,
) -> std::result::Result<(), PodError> {
    if kinds.is_empty() {
        return Ok(());
    }
    let dir = run_dir(engine, id);
    std::fs::create_dir_all(&dir).map_err(pin_err(id, "create", &dir))?;
    let mut flags = CloneFlags::empty();
    for k in kinds {
        let p = ns_path(engine, id, k);
        let _ = netns::remove(&p);
        File::options()
            .write(true)
            .create_new(true)
            .open(&p)
            .map_err(pin_err(id, "create the pin file", &p))?;
        flags |= if *k == "ipc" {
            CloneFlags::CLONE_NEWIPC
        } else {
            CloneFlags::CLONE_NEWUTS
        };
    }
    let r = std::thread::scope(|s| {
        s.spawn(|| -> std::result::Result<(), PodError> {
            let errno = |op, p: &Path| {
                let f = pin_err(id, op, p);
                move |e: nix::Error| f(std::io::Error::from(e))
            };
            unshare(flags).map_err(errno("unshare the namespaces for", &dir))?;
            if kinds.contains(&"uts") {
                nix::unistd::sethostname(hostname)
                    .map_err(errno("set the hostname of", &ns_path(engine, id, "uts")))?;
            }
            for k in kinds {
                let p = ns_path(engine, id, k);
                mount(
                    Some(format!("/proc/thread-self/ns/{k}").as_str()),
                    &p,
                    None::<&str>,
                    MsFlags::MS_BIND,
                    None::<&str>,
                )
                .map_err(errno("bind-mount the namespace on", &p))?;
            }
            Ok(())
        })
        .join()
        .unwrap_or_else(|_| {
            Err(pin_err(id, "pin namespaces in", &dir)(
                std::io::Error::other("namespace thread panicked"),
            ))
        })
    });
    if r.is_err() {
        for k in kinds {
            let _ = netns::remove(&ns_path(engine, id, k));
        }
    }
    r
}

/// The pod's network as container options (for the network module).
fn net_options(p: &PodRow) -> RunOptions {
    RunOptions {
        network: p.config.network.clone(),
        publish: p.config.publish.clone(),
        hostname: Some(p.config.hostname.clone()),
        ..Default::default()
    }
}

fn net_is_none(p: &PodRow) -> std::result::Result<bool, crate::opts::OptsError> {
    Ok(crate::opts::parse_network(p.config.network.as_deref())? == NetworkMode::None)
}

/// Makes the pod's namespaces that are missing (all of them at create;
/// after a reboot emptied the runroot, again at the next start).
pub fn ensure(engine: &Engine, p: &PodRow) -> Result<()> {
    // The user namespace first: the others are made inside it.
    let userns = userns_pin(engine, p);
    if let (Some(m), Some(user)) = (&p.config.idmap, &userns) {
        if !netns::is_pinned(user) {
            let dir = run_dir(engine, &p.id);
            std::fs::create_dir_all(&dir).map_err(pin_err(&p.id, "create", &dir))?;
            crate::userns::pin_pod_userns(&p.id, m, user)?;
        }
    }
    let net = ns_path(engine, &p.id, "net");
    if p.shares("net") && !netns::is_pinned(&net) {
        crate::networks::setup_pod(engine, &p.id, net_is_none(p)?, userns.as_deref())?;
        if p.config.idmap.is_some() {
            // As for a container of its own user namespace (see
            // `userns::engine_sysctls`): low ports and ping for every id.
            let defaults = crate::userns::net_defaults(false);
            crate::userns::write_net_sysctls(&p.id, &net, &defaults)?;
        }
    }
    let missing: Vec<&str> = ["ipc", "uts"]
        .into_iter()
        .filter(|k| p.shares(k) && !netns::is_pinned(&ns_path(engine, &p.id, k)))
        .collect();
    match &userns {
        Some(user) => {
            let kinds: Vec<(&str, PathBuf)> = missing
                .iter()
                .map(|k| (*k, ns_path(engine, &p.id, k)))
                .collect();
            crate::userns::pin_in_userns(&p.id, user, &kinds, Some(&p.config.hostname))?;
        }
        None => pin_namespaces(engine, &p.id, &missing, &p.config.hostname)?,
    }
    Ok(())
}

/// The pinned user namespace of pod `p`, if it has one of its own.
pub fn userns_pin(engine: &Engine, p: &PodRow) -> Option<PathBuf> {
    p.config
        .idmap
        .as_ref()
        .map(|_| ns_path(engine, &p.id, "user"))
}

/// The pinned user namespace of the pod a container joins (`o.pod`), if
/// that pod has one of its own.
pub fn userns_pin_for(engine: &Engine, o: &RunOptions) -> Result<Option<PathBuf>> {
    let Some(pod) = &o.pod else {
        return Ok(None);
    };
    Ok(userns_pin(engine, &find(engine, pod)?))
}

/// Removes every trace of the pod but its row and containers: network
/// namespace, endpoint, ports and rules, IPC/UTS pins, its dirs.
/// Idempotent.
fn remove_resources(engine: &Engine, id: &str) -> Result<()> {
    let mut first: Option<crate::EngineError> = None;
    if let Err(e) = crate::networks::release(engine, id) {
        first.get_or_insert(e);
    }
    for k in ["ipc", "uts", "user"] {
        let p = ns_path(engine, id, k);
        if let Err(e) = netns::remove(&p) {
            first.get_or_insert(crate::EngineError::Io {
                op: "remove the namespace pin",
                path: p,
                source: std::io::Error::other(e.to_string()),
            });
        }
    }
    if let Err(e) = crate::userns::release(engine, id) {
        first.get_or_insert(e);
    }
    for d in [run_dir(engine, id), files_dir(engine, id)] {
        match std::fs::remove_dir_all(&d) {
            Ok(()) => {}
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => {
                first.get_or_insert(crate::EngineError::Io {
                    op: "remove",
                    path: d,
                    source: e,
                });
            }
        }
    }
    first.map_or(Ok(()), Err)
}

/// The user namespace a new pod gets: `--userns` as given, else the
/// engine's default (`auto` for root: a range of its own, shared by its
/// containers). Rootless, the pod stays in the user's namespace.
fn pod_userns_request(engine: &Engine, r: &PodCreate) -> Result<crate::userns::Request> {
    let o = crate::userns::UsernsOptions {
        userns: r.userns.clone(),
        ..Default::default()
    };
    let req = crate::userns::request(&o, false)?;
    match req {
        crate::userns::Request::Host => Ok(req),
        crate::userns::Request::Auto { .. } => {
            if crate::rootless::is_rootless() {
                return Err(PodError::Unsupported(
                    "a rootless pod with --userns=auto (its containers share the user's namespace)"
                        .into(),
                )
                .into());
            }
            crate::userns::check_reachable(&engine.root)?;
            Ok(req)
        }
        crate::userns::Request::Explicit(_) => Err(PodError::Unsupported(format!(
            "pod create --userns={}",
            r.userns.clone().unwrap_or_default()
        ))
        .into()),
    }
}

/// `pod create`: the row, the pinned namespaces and the network endpoint
/// (with the pod's published ports). Nothing is left behind on failure.
pub fn create(engine: &Engine, r: &PodCreate) -> Result<PodRow> {
    let share = parse_share(r.share.as_deref())?;
    let net = share.iter().any(|s| s == "net");
    if !net && (r.network.is_some() || !r.publish.is_empty()) {
        return Err(PodError::Invalid {
            flag: "--network/-p",
            value: r.network.clone().unwrap_or_else(|| r.publish.join(" ")),
            why: "the pod does not share its network namespace (add net to --share)".into(),
        }
        .into());
    }
    match crate::opts::parse_network(r.network.as_deref())? {
        NetworkMode::Host => {
            return Err(PodError::Unsupported("pod create --network host".into()).into())
        }
        NetworkMode::Container(_) => {
            return Err(PodError::Unsupported("pod create --network container:NAME".into()).into())
        }
        NetworkMode::UserMode(m) => {
            return Err(PodError::Unsupported(format!("pod create --network {}", m.name())).into())
        }
        NetworkMode::Bridge(_) | NetworkMode::None => {}
    }
    let explicit = r
        .name
        .as_deref()
        .map(crate::names::check_name)
        .transpose()?;
    let taken: Vec<String> = list(engine)?.into_iter().map(|p| p.name).collect();
    let name = match explicit {
        Some(n) => {
            if let Some(holder) = list(engine)?.into_iter().find(|p| p.name == n) {
                return Err(PodError::NameInUse {
                    name: n,
                    holder: short(&holder.id).into(),
                }
                .into());
            }
            n
        }
        None => {
            let mut attempt = 0;
            loop {
                let n = crate::names::generated_name(attempt)?;
                if !taken.contains(&n) || attempt >= 20 {
                    break n;
                }
                attempt += 1;
            }
        }
    };
    let hostname = r.hostname.clone().unwrap_or_else(|| name.clone());
    let userns = pod_userns_request(engine, r)?;
    let mut row = PodRow {
        id: crate::names::new_id()?,
        name,
        created: crate::now_ms(),
        labels: crate::opts::parse_labels(&r.labels),
        config: PodConfig {
            share,
            network: r.network.clone(),
            publish: r.publish.clone(),
            hostname,
            idmap: None,
        },
    };
    // The row first: from then on the endpoint and ports below have an
    // owner (`create::reap_interrupted` releases those of no container
    // or pod).
    {
        let mut db = engine.db()?;
        let c = conn(&mut db)?;
        let res = c.execute(
            "INSERT INTO pods (id, name, created, labels, config) VALUES (?1, ?2, ?3, ?4, ?5)",
            params![
                row.id,
                row.name,
                row.created,
                serde_json::to_string(&row.labels).expect("labels serialize"),
                serde_json::to_string(&row.config).expect("config serializes"),
            ],
        );
        match res {
            Ok(_) => {}
            Err(rusqlite::Error::SqliteFailure(e, _))
                if e.code == rusqlite::ErrorCode::ConstraintViolation =>
            {
                return Err(PodError::NameInUse {
                    name: row.name.clone(),
                    holder: "another pod".into(),
                }
                .into())
            }
            Err(e) => return Err(q(format!("insert pod {}", row.name))(e).into()),
        }
    }
    let made = (|| -> Result<()> {
        if let crate::userns::Request::Auto { size } = userns {
            // Recorded under the pod's ID (its row exists, so no reaping
            // of interrupted creates takes it), released at `pod rm`.
            row.config.idmap = Some(crate::userns::allocate(engine, &row.id, size)?);
            let mut db = engine.db()?;
            conn(&mut db)?
                .execute(
                    "UPDATE pods SET config = ?1 WHERE id = ?2",
                    params![
                        serde_json::to_string(&row.config).expect("config serializes"),
                        row.id
                    ],
                )
                .map_err(q(format!("record the user namespace of pod {}", row.name)))?;
        }
        if row.shares("net") {
            let dir = files_dir(engine, &row.id);
            std::fs::create_dir_all(&dir).map_err(crate::error::io("create", &dir))?;
            crate::networks::prepare_in(
                engine,
                &row.id,
                &dir,
                &row.name,
                &net_options(&row),
                &row.config.hostname,
            )?;
        }
        ensure(engine, &row)
    })();
    if let Err(e) = made {
        let _ = remove_resources(engine, &row.id);
        let _ = delete_row(engine, &row);
        return Err(e);
    }
    Ok(row)
}

/// The containers of pod `id`, oldest first.
pub fn containers_of(engine: &Engine, id: &str) -> Result<Vec<ContainerRow>> {
    Ok(engine
        .db()?
        .list()?
        .into_iter()
        .filter(|c| c.config["options"]["pod"].as_str() == Some(id))
        .collect())
}

/// podman's pod status from its containers' (libpod `createPodStatusResults`):
/// Created (none, or all created), Running (all running), Degraded (some
/// running), Paused, Exited (all exited), Stopped (some exited, none running).
pub fn status(engine: &Engine, containers: &[ContainerRow]) -> &'static str {
    if containers.is_empty() {
        return "Created";
    }
    let n = containers.len();
    let (mut running, mut paused, mut exited) = (0, 0, 0);
    for c in containers {
        match c.status {
            Status::Running if crate::manage::is_paused(engine, c) => paused += 1,
            Status::Running => running += 1,
            Status::Exited => exited += 1,
            Status::Created => {}
        }
    }
    if running > 0 {
        if running == n {
            "Running"
        } else {
            "Degraded"
        }
    } else if paused == n {
        "Paused"
    } else if exited == n {
        "Exited"
    } else if exited > 0 {
        "Stopped"
    } else {
        "Created"
    }
}

/// `pod rm`: refused while a container of the pod runs unless `force`;
/// removes the pod's containers (stopping them with `force`), then its
/// namespaces, network endpoint, dirs and row. Returns the pod's ID.
pub fn rm(engine: &Engine, reference: &str, force: bool) -> Result<String> {
    let p = find(engine, reference)?;
    let ctrs = containers_of(engine, &p.id)?;
    let ctrs: Vec<ContainerRow> = ctrs
        .into_iter()
        .map(|c| crate::lifecycle::refresh(engine, c))
        .collect::<Result<_>>()?;
    let running = ctrs.iter().filter(|c| c.status == Status::Running).count();
    if running > 0 && !force {
        return Err(PodError::HasRunning {
            name: p.name,
            count: running,
        }
        .into());
    }
    for c in &ctrs {
        crate::ops::rm(engine, &c.id, true)?;
    }
    remove_resources(engine, &p.id)?;
    delete_row(engine, &p)?;
    Ok(p.id)
}

fn delete_row(engine: &Engine, p: &PodRow) -> Result<()> {
    let mut db = engine.db()?;
    conn(&mut db)?
        .execute("DELETE FROM pods WHERE id = ?1", params![p.id])
        .map_err(q(format!("remove pod {}", p.name)))?;
    Ok(())
}

/// At container create: resolves `--pod`, refuses the flags the pod
/// decides (podman's rule: a container joining a pod's network cannot set
/// its own), records the pod's ID and hostname in `o`.
pub fn join(engine: &Engine, o: &mut RunOptions) -> Result<Option<PodRow>> {
    let Some(reference) = o.pod.clone() else {
        return Ok(None);
    };
    let p = find(engine, &reference)?;
    let refuse = |flag: &'static str, given: bool, kind: &str| -> Result<()> {
        if given && p.shares(kind) {
            return Err(PodError::Invalid {
                flag,
                value: reference.clone(),
                why: format!(
                    "the container joins the {kind} namespace of pod {}; set it on the pod \
                     (published ports must be given to `pod create`)",
                    p.name
                ),
            }
            .into());
        }
        Ok(())
    };
    refuse("-p/--publish", !o.publish.is_empty(), "net")?;
    refuse("-P/--publish-all", o.extra.publish_all, "net")?;
    refuse("--network", o.network.is_some(), "net")?;
    refuse("--ip", o.ip.is_some(), "net")?;
    refuse("--network-alias", !o.network_aliases.is_empty(), "net")?;
    refuse(
        "--dns/--dns-search/--dns-option",
        !(o.dns.is_empty() && o.dns_search.is_empty() && o.dns_option.is_empty()),
        "net",
    )?;
    refuse("--add-host", !o.add_host.is_empty(), "net")?;
    refuse("--ipc", o.extra.ipc.is_some(), "ipc")?;
    refuse("--uts", o.extra.uts.is_some(), "uts")?;
    refuse("--pid", o.extra.pid.is_some(), "pid")?;
    refuse("--hostname", o.hostname.is_some(), "uts")?;
    o.pod = Some(p.id.clone());
    if p.shares("uts") {
        o.hostname = Some(p.config.hostname.clone());
    }
    Ok(Some(p))
}

/// Points a pod container's config.json at the pod's pinned namespaces.
/// With a shared UTS namespace the hostname is the pod's (already set in
/// the pinned namespace): the runtime must not set one (config.md
/// "hostname" needs a new UTS namespace).
pub fn join_spec(engine: &Engine, p: &PodRow, spec: &mut Value) {
    if let Some(ns) = spec["linux"]["namespaces"].as_array_mut() {
        // PID is joined at each start (see `join_pid_at_start`).
        for kind in p.config.share.iter().filter(|k| *k != "pid") {
            let t = oci_type(kind);
            ns.retain(|n| n["type"] != t);
            // config-linux.md "namespaces": a path joins an existing one.
            ns.push(json!({"type": t, "path": ns_path(engine, &p.id, kind)}));
        }
    }
    if p.shares("uts") {
        if let Some(o) = spec.as_object_mut() {
            o.remove("hostname");
        }
    }
}

/// Before the runtime creates container `id` of a pod sharing its PID
/// namespace: joins the PID namespace of a running container of the pod
/// (config-linux.md "namespaces": a path joins an existing one), or gets
/// a new one (it becomes the pod's PID 1) when none runs.
pub fn join_pid_at_start(engine: &Engine, id: &str, o: &RunOptions) -> Result<()> {
    let Some(pod) = &o.pod else {
        return Ok(());
    };
    let p = find(engine, pod)?;
    if !p.shares("pid") {
        return Ok(());
    }
    let mut holder = None;
    for c in containers_of(engine, &p.id)? {
        if c.id == id {
            continue;
        }
        let c = crate::lifecycle::refresh(engine, c)?;
        if let (Status::Running, Some(pid)) = (c.status, c.pid) {
            holder = Some(pid);
            break;
        }
    }
    let path = engine.bundle(id).join("config.json");
    let text = std::fs::read_to_string(&path).map_err(crate::error::io("read", &path))?;
    let mut spec: Value = serde_json::from_str(&text).map_err(|e| crate::EngineError::Io {
        op: "parse",
        path: path.clone(),
        source: std::io::Error::other(e),
    })?;
    if let Some(ns) = spec["linux"]["namespaces"].as_array_mut() {
        ns.retain(|n| n["type"] != "pid");
        ns.push(match holder {
            Some(pid) => json!({"type": "pid", "path": format!("/proc/{pid}/ns/pid")}),
            None => json!({"type": "pid"}),
        });
    }
    let out = serde_json::to_vec_pretty(&spec).expect("spec serializes");
    std::fs::write(&path, out).map_err(crate::error::io("write", &path))?;
    Ok(())
}

/// The pod's /etc files, bind-mounted into a container joining its network.
pub fn etc_mounts(engine: &Engine, p: &PodRow) -> Vec<Value> {
    let dir = files_dir(engine, &p.id);
    ["hosts", "resolv.conf", "hostname"]
        .iter()
        .map(|f| {
            json!({
                "destination": format!("/etc/{f}"),
                "type": "bind",
                "source": dir.join(f),
                "options": ["rbind", "rprivate"],
            })
        })
        .collect()
}

/// At each start of a container: true when it is in a pod that shares
/// its network (the pod's namespaces are made again if a reboot took them).
pub fn provides_network(engine: &Engine, o: &RunOptions) -> Result<bool> {
    let Some(id) = &o.pod else {
        return Ok(false);
    };
    let p = find(engine, id)?;
    ensure(engine, &p)?;
    Ok(p.shares("net"))
}

/// Removes pods none of whose containers run (`pod prune`); their IDs.
pub fn prune(engine: &Engine) -> Result<Vec<String>> {
    let mut gone = Vec::new();
    for p in list(engine)? {
        let ctrs = containers_of(engine, &p.id)?;
        let any_running = ctrs
            .into_iter()
            .map(|c| crate::lifecycle::refresh(engine, c))
            .collect::<Result<Vec<_>>>()?
            .iter()
            .any(|c| c.status == Status::Running);
        if !any_running {
            gone.push(rm(engine, &p.id, false)?);
        }
    }
    Ok(gone)
}

/// The bridge networks of the pod (none for `--network none` or when it
/// does not share its network namespace), as podman lists them.
pub fn networks(p: &PodRow) -> Vec<String> {
    if !p.shares("net") {
        return vec![];
    }
    match crate::opts::parse_network(p.config.network.as_deref()) {
        Ok(m) => m.bridges().to_vec(),
        Err(_) => vec![],
    }
}

/// `pod inspect`'s document (podman's field names where berth has the value).
pub fn inspect_json(engine: &Engine, p: &PodRow) -> Result<Value> {
    let ctrs = containers_of(engine, &p.id)?;
    let ctrs: Vec<ContainerRow> = ctrs
        .into_iter()
        .map(|c| crate::lifecycle::refresh(engine, c))
        .collect::<Result<_>>()?;
    let ports = crate::networks::of_container(engine, &p.id)
        .map(|(_, ports)| ports)
        .unwrap_or_default();
    let bindings: serde_json::Map<String, Value> = ports
        .iter()
        .map(|m| {
            (
                format!("{}/{}", m.container_port, m.proto.as_str()),
                json!([{
                    "HostIp": m.host_ip.map(|i| i.to_string()).unwrap_or_default(),
                    "HostPort": m.host_port.to_string(),
                }]),
            )
        })
        .collect();
    Ok(json!({
        "Id": p.id,
        "Name": p.name,
        "Created": crate::rfc3339_ms(p.created),
        "State": status(engine, &ctrs),
        "Hostname": p.config.hostname,
        "Labels": p.labels,
        "CreateInfra": false,
        "SharedNamespaces": p.config.share,
        // podman's pod inspect has no such field; named as a container's
        // HostConfig.UsernsMode and IDMappings.
        "UsernsMode": crate::userns::mode_text(p.config.idmap.as_ref()),
        "IDMappings": crate::userns::inspect_json(p.config.idmap.as_ref()),
        "NumContainers": ctrs.len(),
        "InfraConfig": {
            "PortBindings": bindings,
            "HostNetwork": false,
            "Networks": networks(p),
        },
        "Containers": ctrs.iter().map(|c| json!({
            "Id": c.id,
            "Name": c.name,
            "State": c.status.as_str(),
        })).collect::<Vec<_>>(),
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn share_parsing() {
        assert_eq!(parse_share(None).unwrap(), vec!["net", "ipc", "uts"]);
        assert_eq!(parse_share(Some("uts,net")).unwrap(), vec!["net", "uts"]);
        assert_eq!(parse_share(Some("")).unwrap(), Vec::<String>::new());
        assert_eq!(
            parse_share(Some("+ipc")).unwrap(),
            vec!["net", "ipc", "uts"]
        );
        assert_eq!(
            parse_share(Some("+pid")).unwrap(),
            vec!["net", "ipc", "uts", "pid"]
        );
        assert_eq!(parse_share(Some("pid,net")).unwrap(), vec!["net", "pid"]);
        assert!(parse_share(Some("cgroup")).is_err());
        assert!(parse_share(Some("mnt"))
            .unwrap_err()
            .to_string()
            .contains("mnt"));
    }
}
