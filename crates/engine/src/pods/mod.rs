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
//!   namespace before it has a PID 1, so a tiny holder process is the
//!   pod's PID 1 (as podman's infra container), and the containers join
//!   it (`/proc/PID/ns/pid`) at each start (see `pidns`);
//! - /etc/hosts, resolv.conf, hostname: `<root>/pods/<pod id>/`.
//!
//! A container of the pod joins them by path (config-linux.md
//! "namespaces": a `path` joins an existing namespace). Pod rows live in
//! the engine database's `pods` table; a container records its pod's ID in
//! its options (`RunOptions::pod`).
//!
//! Here: pod rows and the `pod` commands; `ns` pins and removes the
//! shared namespaces; `join` puts a container of the pod in them.

use std::collections::BTreeMap;
use std::path::PathBuf;

use rusqlite::{params, Connection};
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};

use crate::db::short;
use crate::opts::NetworkMode;
use crate::{ContainerRow, Engine, Result, Status};

mod join;
mod ns;
mod pidns;

pub use join::{etc_mounts, join, join_pid_at_start, join_spec, provides_network};
pub use ns::{ensure, ns_path, userns_pin, userns_pin_for};
use ns::{net_options, remove_resources};
pub use pidns::{ensure_holder, holder, holder_main, kill_holder, stop_holder, HOLDER_ARG};

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

/// `<root>/pods/<id>`: the pod's /etc files.
pub(super) fn files_dir(engine: &Engine, id: &str) -> PathBuf {
    engine.root.join("pods").join(id)
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

/// The namespaces the pod's containers share, as podman lists them: the
/// `--share` kinds, and `user` when the pod has a user namespace of its own.
pub fn shared_namespaces(p: &PodRow) -> Vec<String> {
    let mut out = p.config.share.clone();
    if p.config.idmap.is_some() {
        out.push("user".into());
    }
    out
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
        "SharedNamespaces": shared_namespaces(p),
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
