//! `RUN --mount=type=bind|cache|tmpfs|secret,...` (BuildKit's
//! "RUN --mount" reference) and `--secret id=..,src=..`: what a RUN sees
//! besides its image, none of it in the layer. Cache mounts live in the
//! store (`<store>/build-cache-mounts/`) across builds; secrets are
//! read-only copies for one step, and only their ids are in the cache key.

use std::collections::BTreeMap;
use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

use berth_image::Store;
use rustix::fs::{flock, FlockOperation};
use serde_json::{json, Value};
use sha2::{Digest as _, Sha256};

use crate::copy::{self, View};
use crate::stage::{pulled_image, Pulled, Stage};

/// One `--mount=...` of a RUN.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct MountOpt {
    pub kind: String,
    pub target: String,
    pub opts: BTreeMap<String, String>,
}

const KEYS: &[(&str, &[&str])] = &[
    ("bind", &["target", "source", "from", "readonly", "rw"]),
    (
        "cache",
        &[
            "target", "id", "sharing", "readonly", "rw", "mode", "uid", "gid",
        ],
    ),
    ("tmpfs", &["target", "size"]),
    (
        "secret",
        &["target", "id", "required", "mode", "uid", "gid"],
    ),
];

/// Parses one `--mount` value.
pub(crate) fn parse(v: &str) -> Result<MountOpt, String> {
    let mut opts = BTreeMap::new();
    for part in v.split(',').filter(|p| !p.is_empty()) {
        let (k, val) = part.split_once('=').unwrap_or((part, ""));
        let k = match k {
            "dst" | "destination" => "target",
            "src" => "source",
            "ro" => "readonly",
            "readwrite" => "rw",
            k => k,
        };
        opts.insert(k.to_string(), val.to_string());
    }
    let kind = opts.remove("type").unwrap_or_else(|| "bind".into());
    let Some((_, allowed)) = KEYS.iter().find(|(k, _)| *k == kind) else {
        return Err(format!(
            "--mount={v}: type {kind} is not one of bind, cache, tmpfs, secret"
        ));
    };
    for k in opts.keys() {
        if !allowed.contains(&k.as_str()) {
            return Err(format!(
                "--mount={v}: option {k} is not supported for type={kind} (supported: {})",
                allowed.join(", ")
            ));
        }
    }
    let target = match (opts.get("target"), kind.as_str()) {
        (Some(t), _) if t.starts_with('/') => t.clone(),
        (Some(t), _) => return Err(format!("--mount={v}: target {t} is not absolute")),
        (None, "secret") => format!(
            "/run/secrets/{}",
            opts.get("id")
                .ok_or_else(|| format!("--mount={v}: a secret needs id= or target="))?
        ),
        (None, _) => return Err(format!("--mount={v}: needs target=")),
    };
    Ok(MountOpt { kind, target, opts })
}

fn bool_opt(m: &MountOpt, k: &str) -> bool {
    m.opts
        .get(k)
        .is_some_and(|v| v.is_empty() || v == "true" || v == "1")
}

fn num(m: &MountOpt, k: &str, default: u32, radix: u32) -> Result<u32, String> {
    match m.opts.get(k) {
        Some(v) => u32::from_str_radix(v, radix).map_err(|_| format!("{k}={v}: not a number")),
        None => Ok(default),
    }
}

/// Parses `--secret id=ID,src=PATH` (or `env=VAR`): the id and a file
/// holding the secret.
pub fn parse_secret(v: &str) -> Result<(String, PathBuf), String> {
    let mut id = None;
    let mut src = None;
    let mut env = None;
    for part in v.split(',') {
        match part.split_once('=') {
            Some(("id", x)) => id = Some(x.to_string()),
            Some(("src" | "source", x)) => src = Some(PathBuf::from(x)),
            Some(("env", x)) => env = Some(x.to_string()),
            Some(("type", "file" | "env")) => {}
            _ => {
                return Err(format!(
                    "--secret {v}: expected id=ID,src=PATH or id=ID,env=VAR"
                ))
            }
        }
    }
    let id = id.ok_or_else(|| format!("--secret {v}: needs id="))?;
    match (src, env) {
        (Some(p), None) => {
            if !p.is_file() {
                return Err(format!("--secret {v}: {} is not a file", p.display()));
            }
            Ok((id, p))
        }
        (None, Some(e)) => Err(format!(
            "--secret {v}: env= is not supported (write ${e} to a file and use src=)"
        )),
        _ => Err(format!("--secret {v}: needs src=PATH")),
    }
}

/// What keeps a RUN's mounts alive until it ends.
#[derive(Default)]
pub(crate) struct Held {
    _views: Vec<View>,
    _tmps: Vec<tempfile::TempDir>,
    _locks: Vec<fs::File>,
}

/// Where a RUN's mounts come from.
pub(crate) struct Sources<'a> {
    pub store: &'a Store,
    pub context: &'a Path,
    pub stages: &'a [Option<Stage>],
    pub secrets: &'a BTreeMap<String, PathBuf>,
    /// `--pull` and the images pulled so far, for `from=IMAGE`.
    pub o: &'a crate::build::BuildOptions,
    pub pulled: &'a Pulled,
}

impl Sources<'_> {
    /// The stage or image `from=` names (an image pulled as `--pull`
    /// says).
    fn named(&self, f: &str) -> Result<crate::image::Img, String> {
        let stage = self.stages.iter().enumerate().find_map(|(i, s)| {
            let s = s.as_ref()?;
            (s.name.as_deref() == Some(&f.to_ascii_lowercase()) || *f == i.to_string()).then_some(s)
        });
        Ok(match stage {
            Some(s) => s.img.clone(),
            None => {
                pulled_image(self.store, f, self.o, self.pulled, "")
                    .map_err(|e| format!("from={f}: no earlier stage has that name, and {e}"))?
                    .0
            }
        })
    }

    /// The root a bind mount's `from=` names (the context when none),
    /// mounted while `held` lives.
    fn root_of(&self, m: &MountOpt, held: &mut Held) -> Result<PathBuf, String> {
        let Some(f) = m.opts.get("from") else {
            return Ok(self.context.to_path_buf());
        };
        let img = self.named(f)?;
        let lowers = img.lowers(self.store).map_err(|e| e.to_string())?;
        let v = View::mount(self.store, &lowers).map_err(|e| e.to_string())?;
        let p = v.path.clone();
        held._views.push(v);
        Ok(p)
    }

    /// The part of a RUN's cache key its mounts add: the content of bind
    /// sources (a stage's or image's layers, or the context files' digest). Secrets and
    /// caches add nothing but their options, which the instruction text
    /// already has.
    pub fn key(&self, mounts: &[MountOpt]) -> Result<String, String> {
        let mut h = Sha256::new();
        for m in mounts.iter().filter(|m| m.kind == "bind") {
            h.update(m.target.as_bytes());
            if let Some(f) = m.opts.get("from") {
                // The stage's or image's layers fix what the mount shows.
                for l in &self.named(f)?.layers {
                    h.update(l.digest.to_string().as_bytes());
                    h.update(b"\n");
                }
            } else {
                let src = bind_source(self.context, m)?;
                h.update(
                    copy::content_digest(&[src], &|_| false)
                        .map_err(|e| e.to_string())?
                        .as_bytes(),
                );
            }
        }
        Ok(hex::encode(h.finalize()))
    }

    /// The OCI mounts (runtime-spec config.md "Mounts") of `mounts`.
    pub fn prepare(&self, mounts: &[MountOpt], held: &mut Held) -> Result<Vec<Value>, String> {
        let mut out = Vec::new();
        for m in mounts {
            let t = &m.target;
            match m.kind.as_str() {
                "bind" => {
                    let root = self.root_of(m, held)?;
                    let mut src = bind_source(&root, m)?;
                    let rw = bool_opt(m, "rw");
                    if rw {
                        // Writes are discarded (BuildKit): to a copy.
                        let tmp = self
                            .store
                            .temp_dir("build-bind-")
                            .map_err(|e| e.to_string())?;
                        let dst = tmp.path().join("src");
                        let st = std::process::Command::new("cp")
                            .arg("-a")
                            .arg(&src)
                            .arg(&dst)
                            .status()
                            .map_err(|e| format!("cp: {e}"))?;
                        if !st.success() {
                            return Err(format!(
                                "copy {} for a rw bind mount failed",
                                src.display()
                            ));
                        }
                        src = dst;
                        held._tmps.push(tmp);
                    }
                    let mut o = vec!["rbind"];
                    if !rw {
                        o.push("ro");
                    }
                    out.push(
                        json!({"destination": t, "type": "bind", "source": src, "options": o}),
                    );
                }
                "tmpfs" => {
                    let mut o = vec!["nosuid".to_string(), "nodev".to_string()];
                    if let Some(s) = m.opts.get("size") {
                        o.push(format!("size={s}"));
                    }
                    out.push(
                        json!({"destination": t, "type": "tmpfs", "source": "tmpfs", "options": o}),
                    );
                }
                "cache" => {
                    let id = m.opts.get("id").cloned().unwrap_or_else(|| t.clone());
                    let base = self.store.dir().join("build-cache-mounts");
                    let dir = base.join(hex::encode(Sha256::digest(id.as_bytes())));
                    let fresh = !dir.exists();
                    fs::create_dir_all(&dir).map_err(|e| format!("{}: {e}", dir.display()))?;
                    if fresh {
                        let mode = num(m, "mode", 0o755, 8)?;
                        let (uid, gid) = (num(m, "uid", 0, 10)?, num(m, "gid", 0, 10)?);
                        fs::set_permissions(&dir, fs::Permissions::from_mode(mode))
                            .and_then(|()| std::os::unix::fs::chown(&dir, Some(uid), Some(gid)))
                            .map_err(|e| format!("{}: {e}", dir.display()))?;
                    }
                    let mut src = dir.clone();
                    let sharing = m.opts.get("sharing").map_or("shared", String::as_str);
                    match sharing {
                        "shared" => {}
                        "locked" | "private" => {
                            let lock = dir.with_extension("lock");
                            let f = fs::OpenOptions::new()
                                .create(true)
                                .truncate(false)
                                .write(true)
                                .open(&lock)
                                .map_err(|e| format!("{}: {e}", lock.display()))?;
                            if sharing == "locked" {
                                flock(&f, FlockOperation::LockExclusive)
                                    .map_err(|e| format!("{}: {e}", lock.display()))?;
                                held._locks.push(f);
                            } else if flock(&f, FlockOperation::NonBlockingLockExclusive).is_ok() {
                                held._locks.push(f);
                            } else {
                                // In use: a fresh private cache for this step.
                                let tmp = self
                                    .store
                                    .temp_dir("build-cache-private-")
                                    .map_err(|e| e.to_string())?;
                                src = tmp.path().to_path_buf();
                                held._tmps.push(tmp);
                            }
                        }
                        other => {
                            return Err(format!(
                                "sharing={other}: expected shared, private or locked"
                            ))
                        }
                    }
                    let mut o = vec!["rbind"];
                    if bool_opt(m, "readonly") {
                        o.push("ro");
                    }
                    out.push(
                        json!({"destination": t, "type": "bind", "source": src, "options": o}),
                    );
                }
                "secret" => {
                    let id = m.opts.get("id").cloned().unwrap_or_else(|| {
                        Path::new(t)
                            .file_name()
                            .map(|n| n.to_string_lossy().into_owned())
                            .unwrap_or_default()
                    });
                    let Some(path) = self.secrets.get(&id) else {
                        if bool_opt(m, "required") {
                            return Err(format!(
                                "secret {id} is required: pass it with --secret id={id},src=FILE"
                            ));
                        }
                        continue;
                    };
                    let tmp = self
                        .store
                        .temp_dir("build-secret-")
                        .map_err(|e| e.to_string())?;
                    let p = tmp.path().join("secret");
                    let (mode, uid, gid) = (
                        num(m, "mode", 0o400, 8)?,
                        num(m, "uid", 0, 10)?,
                        num(m, "gid", 0, 10)?,
                    );
                    fs::copy(path, &p)
                        .and_then(|_| fs::set_permissions(&p, fs::Permissions::from_mode(mode)))
                        .and_then(|()| std::os::unix::fs::chown(&p, Some(uid), Some(gid)))
                        .map_err(|e| format!("secret {id} from {}: {e}", path.display()))?;
                    out.push(json!({"destination": t, "type": "bind", "source": p,
                        "options": ["rbind", "ro"]}));
                    held._tmps.push(tmp);
                }
                other => return Err(format!("type={other}: not a mount type")),
            }
        }
        Ok(out)
    }
}

/// `source=` of a bind mount inside `root` (the whole root when unset);
/// never outside it.
fn bind_source(root: &Path, m: &MountOpt) -> Result<PathBuf, String> {
    let s = m.opts.get("source").map_or("/", String::as_str);
    let rel = Path::new(s.trim_start_matches('/'));
    if rel
        .components()
        .any(|c| matches!(c, std::path::Component::ParentDir))
    {
        return Err(format!("source={s} is outside the build context"));
    }
    let p = root.join(rel);
    if !p.exists() {
        return Err(format!("source={s} does not exist"));
    }
    Ok(p)
}
