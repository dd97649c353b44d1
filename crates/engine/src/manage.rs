//! Commands on a container's processes and filesystem beyond the
//! lifecycle: `pause`/`unpause` (the cgroup freezer, through the
//! runtime), `update` (resources of a live container), `diff` and
//! `export` (its upper dir and rootfs).

use std::path::{Path, PathBuf};

use serde_json::{json, Value};

use crate::create::ContainerConfig;
use crate::db::{ContainerRow, Status};
use crate::error::{io, rt, EngineError, Result};
use crate::lifecycle::find;
use crate::opts::{self, OptsError};
use crate::Engine;

/// Whether the container's processes are frozen (runtime state
/// "paused": the freezer cgroup says FROZEN).
pub fn is_paused(engine: &Engine, row: &ContainerRow) -> bool {
    row.status == Status::Running
        && berth_runtime::state(&engine.state_root(), &row.id)
            .is_ok_and(|s| s.status == berth_runtime::Status::Paused)
}

/// `ps`'s status column: Docker's "Up 5 seconds (Paused)" for a paused
/// container.
pub fn status_text(engine: &Engine, row: &ContainerRow, now_ms: i64) -> String {
    let s = crate::inspect::status_text(row, now_ms);
    let health = crate::health::ps_suffix(engine, row);
    if is_paused(engine, row) {
        format!("{s} (Paused){health}")
    } else {
        format!("{s}{health}")
    }
}

/// A `ps --format json` entry with `State` "paused" when it is.
pub fn mark_paused(engine: &Engine, row: &ContainerRow, mut v: Value) -> Value {
    if is_paused(engine, row) {
        v["State"] = json!("paused");
        v["Status"] = json!(status_text(engine, row, crate::now_ms()));
    }
    v
}

/// `pause`: freezes every process of a running container.
pub fn pause(engine: &Engine, reference: &str) -> Result<ContainerRow> {
    let row = find(engine, reference)?;
    if row.status != Status::Running {
        return Err(EngineError::WrongState {
            name: row.name,
            status: row.status.to_string(),
            what: "only a running container can be paused".into(),
        });
    }
    if is_paused(engine, &row) {
        return Err(EngineError::WrongState {
            name: row.name,
            status: "paused".into(),
            what: "it is already paused".into(),
        });
    }
    berth_runtime::manage::pause(&engine.state_root(), &row.id).map_err(rt(&row.id, "pause"))?;
    crate::events::container(engine, &row, "pause", &[]);
    Ok(row)
}

/// `unpause`: thaws a paused container.
pub fn unpause(engine: &Engine, reference: &str) -> Result<ContainerRow> {
    let row = find(engine, reference)?;
    if !is_paused(engine, &row) {
        return Err(EngineError::WrongState {
            name: row.name,
            status: row.status.to_string(),
            what: "it is not paused".into(),
        });
    }
    berth_runtime::manage::resume(&engine.state_root(), &row.id).map_err(rt(&row.id, "unpause"))?;
    crate::events::container(engine, &row, "unpause", &[]);
    Ok(row)
}

/// Thaws a paused container (signals to frozen processes wait until the
/// thaw): `stop`, `kill` and `rm -f` call it after signalling.
pub fn thaw_if_paused(engine: &Engine, id: &str) {
    if berth_runtime::state(&engine.state_root(), id)
        .is_ok_and(|s| s.status == berth_runtime::Status::Paused)
    {
        let _ = berth_runtime::manage::resume(&engine.state_root(), id);
    }
}

/// The flags of `update` (Docker's names).
#[derive(Debug, Clone, Default)]
pub struct UpdateRequest {
    pub memory: Option<String>,
    pub memory_swap: Option<String>,
    pub memory_reservation: Option<String>,
    pub cpus: Option<String>,
    pub cpu_shares: Option<u64>,
    pub cpu_period: Option<u64>,
    pub cpu_quota: Option<i64>,
    pub cpuset_cpus: Option<String>,
    pub cpuset_mems: Option<String>,
    pub pids_limit: Option<i64>,
    pub blkio_weight: Option<u16>,
    pub restart: Option<String>,
}

/// `-1` (unlimited) or a size.
fn size_or_unlimited(flag: &'static str, s: &str) -> std::result::Result<i64, OptsError> {
    if s == "-1" {
        Ok(-1)
    } else {
        opts::parse_size(flag, s)
    }
}

impl UpdateRequest {
    /// The runtime-spec `linux.resources` (config-linux.md "Control
    /// groups") these flags set; only the given ones appear.
    pub fn resources(&self) -> std::result::Result<Value, OptsError> {
        let mut r = json!({});
        if let Some(m) = &self.memory {
            r["memory"]["limit"] = json!(size_or_unlimited("--memory", m)?);
        }
        if let Some(m) = &self.memory_swap {
            r["memory"]["swap"] = json!(size_or_unlimited("--memory-swap", m)?);
        }
        if let Some(m) = &self.memory_reservation {
            r["memory"]["reservation"] = json!(size_or_unlimited("--memory-reservation", m)?);
        }
        if let Some(c) = &self.cpus {
            if self.cpu_quota.is_some() || self.cpu_period.is_some() {
                return Err(OptsError::Invalid {
                    flag: "--cpus",
                    value: c.clone(),
                    why: "conflicts with --cpu-period and --cpu-quota".into(),
                });
            }
            let (quota, period) = opts::parse_cpus(c)?;
            r["cpu"]["quota"] = json!(quota);
            r["cpu"]["period"] = json!(period);
        }
        if let Some(s) = self.cpu_shares {
            r["cpu"]["shares"] = json!(s);
        }
        if let Some(p) = self.cpu_period {
            r["cpu"]["period"] = json!(p);
        }
        if let Some(q) = self.cpu_quota {
            r["cpu"]["quota"] = json!(q);
        }
        if let Some(c) = &self.cpuset_cpus {
            r["cpu"]["cpus"] = json!(c);
        }
        if let Some(m) = &self.cpuset_mems {
            r["cpu"]["mems"] = json!(m);
        }
        if let Some(p) = self.pids_limit {
            // Docker: 0 or -1 mean unlimited.
            r["pids"]["limit"] = json!(if p <= 0 { -1 } else { p });
        }
        if let Some(w) = self.blkio_weight {
            if w != 0 && !(10..=1000).contains(&w) {
                return Err(OptsError::Invalid {
                    flag: "--blkio-weight",
                    value: w.to_string(),
                    why: "must be 0 (unset) or between 10 and 1000".into(),
                });
            }
            r["blockIO"]["weight"] = json!(w);
        }
        Ok(r)
    }
}

/// Merges `patch` into `base` (objects key by key).
fn merge(base: &mut Value, patch: &Value) {
    match (base, patch) {
        (Value::Object(b), Value::Object(p)) => {
            for (k, v) in p {
                merge(b.entry(k.clone()).or_insert(Value::Null), v);
            }
        }
        (b, p) => *b = p.clone(),
    }
}

/// `update`: applies new resources to a created, running or paused
/// container (through the runtime, for a live one) and records them (the
/// container's config and bundle), so `inspect` shows them and the next
/// start uses them; `--restart` changes the restart policy.
pub fn update(engine: &Engine, reference: &str, req: &UpdateRequest) -> Result<ContainerRow> {
    let row = find(engine, reference)?;
    let patch = req.resources()?;
    let restart = match &req.restart {
        Some(r) => {
            let p = opts::parse_restart(r)?;
            if row.auto_remove && p != opts::RestartPolicy::No {
                return Err(OptsError::Invalid {
                    flag: "--restart",
                    value: r.clone(),
                    why: format!("container {} was made with --rm", row.name),
                }
                .into());
            }
            r.clone()
        }
        None => row.restart_policy.clone(),
    };
    let has_resources = patch.as_object().is_some_and(|o| !o.is_empty());
    if has_resources && row.status == Status::Running {
        let res: oci_spec::runtime::LinuxResources = serde_json::from_value(patch.clone())
            .map_err(|e| OptsError::Invalid {
                flag: "update",
                value: patch.to_string(),
                why: e.to_string(),
            })?;
        berth_runtime::manage::update(&engine.state_root(), &row.id, &res)
            .map_err(rt(&row.id, "update"))?;
    }
    let mut config = row.config.clone();
    let mut resources = config["generated"]["spec"]["linux"]["resources"].clone();
    if resources.is_null() {
        resources = json!({});
    }
    merge(&mut resources, &patch);
    config["generated"]["spec"]["linux"]["resources"] = resources.clone();
    // The bundle's config.json: the next start uses the new values.
    let path = engine.bundle(&row.id).join("config.json");
    if let Ok(text) = std::fs::read(&path) {
        if let Ok(mut spec) = serde_json::from_slice::<Value>(&text) {
            spec["linux"]["resources"] = resources;
            let data = serde_json::to_vec_pretty(&spec).expect("spec serialises");
            std::fs::write(&path, data).map_err(io("write config.json", &path))?;
        }
    }
    engine.db()?.set_config(&row.id, &config, &restart)?;
    crate::events::container(engine, &row, "update", &[]);
    find(engine, &row.id)
}

/// The container's overlayfs upper dir (its changes).
pub fn upper_dir(engine: &Engine, id: &str) -> PathBuf {
    engine.dir(id).join("upper")
}

/// Whether the container's upper dir is a vfs copy (a full copy of its
/// image, [`berth_image::vfs`]) rather than overlay changes: `diff` and
/// `commit` compare it with the image ([`berth_image::vfs_diff`]).
pub fn is_vfs_copy(engine: &Engine, id: &str) -> bool {
    berth_image::vfs::marker(&upper_dir(engine, id)).exists()
}

/// Paths berth itself puts in every container's upper dir (mountpoints
/// for the files it bind-mounts), not the user's changes: left out of
/// `diff` and `commit` as Docker's init layer keeps them out.
pub fn is_engine_path(rel: &Path) -> bool {
    matches!(
        rel.to_str(),
        Some(
            "etc/hosts"
                | "etc/hostname"
                | "etc/resolv.conf"
                | ".containerenv"
                | "run/.containerenv"
        )
    )
}

/// `diff`: the changes of the container's filesystem against its image.
pub fn diff(engine: &Engine, reference: &str) -> Result<Vec<berth_image::layer_diff::Change>> {
    let row = find(engine, reference)?;
    let cfg = ContainerConfig::of(&row)?;
    let upper = upper_dir(engine, &row.id);
    let changes = if is_vfs_copy(engine, &row.id) {
        let shift = crate::userns::id_shift(cfg.idmap.as_ref());
        berth_image::layer_diff::with_id_shift(shift, || {
            berth_image::vfs_diff::copy_changes(&upper, &cfg.lowers)
        })
    } else {
        berth_image::layer_diff::upper_changes(&upper, &cfg.lowers)
    }
    .map_err(io("read the container's changes", &upper))?;
    let engine_path = |p: &str| is_engine_path(Path::new(p.trim_start_matches('/')));
    // The dirs holding berth's own files (/etc for /etc/hosts) are
    // changed by them alone unless something else changed below them.
    let parents: Vec<String> = changes
        .iter()
        .filter(|c| engine_path(&c.path))
        .filter_map(|c| Some(Path::new(&c.path).parent()?.to_string_lossy().into_owned()))
        .collect();
    let kept: Vec<_> = changes
        .into_iter()
        .filter(|c| !engine_path(&c.path))
        .collect();
    let touched_below = |dir: &str| {
        kept.iter()
            .any(|o| o.path.strip_prefix(dir).is_some_and(|r| r.starts_with('/')))
    };
    let drop: Vec<String> = kept
        .iter()
        .filter(|c| c.kind == berth_image::layer_diff::ChangeKind::Changed)
        .filter(|c| parents.contains(&c.path) && !touched_below(&c.path))
        .map(|c| c.path.clone())
        .collect();
    Ok(kept
        .into_iter()
        .filter(|c| !drop.contains(&c.path))
        .collect())
}

/// `export`: the container's whole filesystem as a tar stream on `w`.
/// A container that is not running has its rootfs mounted for the time
/// of the export.
pub fn export(engine: &Engine, reference: &str, w: &mut dyn std::io::Write) -> Result<()> {
    let row = find(engine, reference)?;
    let cfg = ContainerConfig::of(&row)?;
    let rootfs = engine.rootfs(&row.id);
    let was_mounted = berth_image::mount::is_mountpoint(&rootfs);
    if !was_mounted {
        crate::lifecycle::mount_rootfs(engine, &row.id, &cfg)?;
    }
    let shift = crate::userns::id_shift(cfg.idmap.as_ref());
    let r = berth_image::layer_diff::with_id_shift(shift, || {
        berth_image::layer_diff::write_tree(
            &rootfs,
            berth_image::layer_diff::TreeKind::Plain,
            &|_| false,
            w,
        )
    })
    .map_err(io("export the container's filesystem", &rootfs));
    if !was_mounted {
        // A start in the meantime uses the mount: leave it then.
        let now = find(engine, &row.id)?;
        if now.status != Status::Running {
            crate::lifecycle::unmount_rootfs(engine, &row.id)?;
        }
    }
    r
}

/// Whether a container of that name or ID exists (`container exists`).
pub fn exists(engine: &Engine, reference: &str) -> Result<bool> {
    match engine.db()?.lookup(reference) {
        Ok(_) => Ok(true),
        Err(crate::db::DbError::NotFound(_)) => Ok(false),
        Err(e) => Err(e.into()),
    }
}
