//! `kube play` and `kube down`: making and removing what a [`Plan`] asks
//! for. Everything is checked (names free, images present, host paths of
//! the right type) before anything is made; a failure later removes what
//! this run made (pods, their containers, volumes it created).

use std::collections::BTreeMap;
use std::os::unix::fs::FileTypeExt;
use std::path::Path;
use std::process::Command;

use super::plan::EMPTYDIR_LABEL;
use super::{HostPathCheck, KubeError, Plan};
use crate::{create, lifecycle, ops, pods, volume_store, Engine, Result};

/// What the caller provides: images and the monitor command (the CLI's).
pub trait Host {
    /// Makes `image` present per `policy` (always, missing, never).
    fn pull(&self, image: &str, policy: &str) -> std::result::Result<(), String>;
    /// The command that runs the monitor of container `id`.
    fn monitor(&self, id: &str) -> Command;
}

/// A pod `play` made.
#[derive(Debug, Clone)]
pub struct Played {
    pub pod: String,
    pub name: String,
    /// IDs of its (non-init) containers.
    pub containers: Vec<String>,
}

/// Runs `plan`: pods, init containers to completion, then the containers.
pub fn play(engine: &Engine, plan: &Plan, host: &dyn Host) -> Result<Vec<Played>> {
    for p in &plan.pods {
        if pods::exists(engine, &p.name)? {
            return Err(KubeError::Failed(format!(
                "pod {} already exists: remove it first (`berth kube down FILE` or `berth pod rm -f {}`)",
                p.name, p.name
            ))
            .into());
        }
    }
    let mut pulled: Vec<&str> = Vec::new();
    for p in &plan.pods {
        for (image, policy) in &p.images {
            if !pulled.contains(&image.as_str()) {
                host.pull(image, policy).map_err(KubeError::Failed)?;
                pulled.push(image);
            }
        }
    }
    for p in &plan.pods {
        for h in &p.host_paths {
            check_host_path(h)?;
        }
    }
    let mut made = Made::default();
    match play_all(engine, plan, host, &mut made) {
        Ok(v) => Ok(v),
        Err(e) => {
            made.undo(engine);
            Err(e)
        }
    }
}

#[derive(Default)]
struct Made {
    pods: Vec<String>,
    volumes: Vec<String>,
}

impl Made {
    /// Best effort: the first error is the one reported.
    fn undo(&self, engine: &Engine) {
        for p in self.pods.iter().rev() {
            if let Err(e) = pods::rm(engine, p, true) {
                tracing::warn!("kube play: removing pod {p} after a failure: {e}");
            }
        }
        for v in &self.volumes {
            if let Err(e) = volume_store::remove(engine, v, true) {
                tracing::warn!("kube play: removing volume {v} after a failure: {e}");
            }
        }
    }
}

fn ensure_volume(
    engine: &Engine,
    name: &str,
    labels: &BTreeMap<String, String>,
    made: &mut Made,
) -> Result<()> {
    if volume_store::get(engine, name)?.is_none() {
        volume_store::create(engine, name, labels, &Default::default(), false)?;
        made.volumes.push(name.to_string());
    }
    Ok(())
}

fn play_all(engine: &Engine, plan: &Plan, host: &dyn Host, made: &mut Made) -> Result<Vec<Played>> {
    for c in &plan.claims {
        ensure_volume(engine, c, &BTreeMap::new(), made)?;
    }
    let mut out = Vec::new();
    for p in &plan.pods {
        for c in &p.claims {
            ensure_volume(engine, c, &BTreeMap::new(), made)?;
        }
        for v in &p.empty_dirs {
            if volume_store::get(engine, v)?.is_some() {
                return Err(KubeError::Failed(format!(
                    "volume {v} (for an emptyDir of pod {}) already exists: remove it first",
                    p.name
                ))
                .into());
            }
            let labels = BTreeMap::from([(EMPTYDIR_LABEL.to_string(), p.name.clone())]);
            ensure_volume(engine, v, &labels, made)?;
        }
        for d in &p.sub_dirs {
            std::fs::create_dir_all(d).map_err(|e| {
                KubeError::Failed(format!("make the subPath directory {}: {e}", d.display()))
            })?;
        }
        let row = pods::create(engine, &p.create)?;
        made.pods.push(row.id.clone());
        for o in &p.init {
            let c = create::create(engine, o)?;
            lifecycle::start_detached(engine, &c, host.monitor(&c.id))?;
            let code = ops::wait(engine, &c.id)?;
            if code != 0 {
                let name = o.name.as_deref().unwrap_or(&c.id);
                // Its last lines: the container goes with the pod.
                let log = last_output(engine, &c.id, 5);
                return Err(KubeError::Failed(format!(
                    "init container {name} of pod {} exited with {code}{}",
                    p.name,
                    if log.is_empty() {
                        String::new()
                    } else {
                        format!("; its last output:\n{log}")
                    }
                ))
                .into());
            }
            // podman 4.3's default ("once"): an init container is removed
            // once it has completed.
            ops::rm(engine, &c.id, true)?;
        }
        let mut rows = Vec::new();
        for o in &p.containers {
            rows.push(create::create(engine, o)?);
        }
        for c in &rows {
            lifecycle::start_detached(engine, c, host.monitor(&c.id))?;
        }
        out.push(Played {
            pod: row.id,
            name: p.name.clone(),
            containers: rows.into_iter().map(|r| r.id).collect(),
        });
    }
    Ok(out)
}

/// The last `n` lines a container printed (its json log), for errors.
fn last_output(engine: &Engine, id: &str, n: usize) -> String {
    let text = std::fs::read_to_string(engine.log_path(id)).unwrap_or_default();
    let entries = crate::logs::parse(&text);
    let skip = entries.len().saturating_sub(n);
    entries[skip..].iter().map(|e| e.log.as_str()).collect()
}

/// Kubernetes' `hostPath.type` checks; the `...OrCreate` types make the
/// path (a directory 0755, an empty file 0644).
fn check_host_path(h: &HostPathCheck) -> Result<()> {
    let p = &h.path;
    let meta = std::fs::metadata(p).ok();
    let fail = |what: &str| -> Result<()> {
        Err(KubeError::Failed(format!("{}: {} {what}", h.at, p.display())).into())
    };
    match (h.kind.as_str(), &meta) {
        ("", _) => {}
        ("DirectoryOrCreate", None) => {
            std::fs::create_dir_all(p).map_err(|e| {
                KubeError::Failed(format!("{}: make directory {}: {e}", h.at, p.display()))
            })?;
        }
        ("FileOrCreate", None) => {
            if let Some(parent) = p.parent() {
                let _ = std::fs::create_dir_all(parent);
            }
            std::fs::File::create(p).map_err(|e| {
                KubeError::Failed(format!("{}: make file {}: {e}", h.at, p.display()))
            })?;
        }
        ("Directory" | "DirectoryOrCreate", Some(m)) if !m.is_dir() => {
            return fail("is not a directory")
        }
        ("File" | "FileOrCreate", Some(m)) if !m.is_file() => return fail("is not a regular file"),
        ("Socket", Some(m)) if !m.file_type().is_socket() => return fail("is not a socket"),
        ("CharDevice", Some(m)) if !m.file_type().is_char_device() => {
            return fail("is not a character device")
        }
        ("BlockDevice", Some(m)) if !m.file_type().is_block_device() => {
            return fail("is not a block device")
        }
        (_, None) => return fail("does not exist"),
        _ => {}
    }
    Ok(())
}

/// What `down` did.
#[derive(Debug, Default)]
pub struct Down {
    /// IDs of the removed pods.
    pub removed: Vec<String>,
    /// Names of the file's pods that did not exist.
    pub missing: Vec<String>,
}

/// `kube down`: removes the file's pods with their containers (stopped
/// first) and the volumes made for their `emptyDir`s; named volumes
/// (`persistentVolumeClaim`) are kept, as podman keeps them.
pub fn down(engine: &Engine, plan: &Plan) -> Result<Down> {
    let mut d = Down::default();
    for p in &plan.pods {
        if !pods::exists(engine, &p.name)? {
            d.missing.push(p.name.clone());
            continue;
        }
        d.removed.push(pods::rm(engine, &p.name, true)?);
        for v in &p.empty_dirs {
            let ours = volume_store::get(engine, v)?
                .is_some_and(|vol| vol.labels.get(EMPTYDIR_LABEL) == Some(&p.name));
            if ours {
                volume_store::remove(engine, v, true)?;
            }
        }
    }
    Ok(d)
}

/// Reads a file, or stdin for `-`.
pub fn read_input(path: &Path) -> std::io::Result<String> {
    if path == Path::new("-") {
        let mut s = String::new();
        std::io::Read::read_to_string(&mut std::io::stdin(), &mut s)?;
        Ok(s)
    } else {
        std::fs::read_to_string(path)
    }
}
