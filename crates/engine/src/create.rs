//! `berth create` (and the first half of `run`): resolve the image, make the
//! container's dirs and config.json, and record it. Nothing runs yet and
//! nothing is mounted: `start` mounts the rootfs and runs the runtime.

use std::path::PathBuf;

use serde::{Deserialize, Serialize};

use crate::db::{ContainerRow, DbError, Status};
use crate::error::{io, EngineError, Result};
use crate::generate::{self, Generated, Inputs};
use crate::opts::{self, RunOptions};
use crate::volume_store::{self, VolumeUse};
use crate::volumes::{self, VolumeRef};
use crate::{names, user, Engine};

/// What the engine keeps about a container (the `config` column).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ContainerConfig {
    pub options: RunOptions,
    pub generated: Generated,
    /// The image's snapshot dirs, topmost first.
    pub lowers: Vec<PathBuf>,
    /// The healthcheck (flags over the image's), if any.
    #[serde(default)]
    pub health: Option<crate::health::HealthConfig>,
    /// The user namespace mapping; None: the host's user namespace.
    #[serde(default)]
    pub idmap: Option<crate::userns::Mapping>,
}

impl ContainerConfig {
    /// Reads the `config` column of a row.
    pub fn of(row: &ContainerRow) -> Result<ContainerConfig> {
        serde_json::from_value(row.config.clone()).map_err(|source| {
            EngineError::Db(DbError::Corrupt {
                id: row.id.clone(),
                field: "config",
                source,
            })
        })
    }
}

const CREATE_LOCK: &str = "create.lock";

fn lock_creation(dir: &std::path::Path) -> Result<std::fs::File> {
    std::fs::create_dir_all(dir).map_err(io("create container dir", dir))?;
    // Locked before it gets its name: `reap_interrupted` must never find
    // the lock file of a live create unlocked (it would take the dir).
    let tmp = dir.join(format!("{CREATE_LOCK}.{}", std::process::id()));
    let f = std::fs::File::create(&tmp).map_err(io("create", &tmp))?;
    rustix::fs::flock(&f, rustix::fs::FlockOperation::LockExclusive)
        .map_err(|e| io("lock", &tmp)(e.into()))?;
    let p = dir.join(CREATE_LOCK);
    std::fs::rename(&tmp, &p).map_err(io("rename", &p))?;
    Ok(f)
}

/// Finishes what killed `create`s left: a container dir, addresses and
/// ports without a container row, whose creator is gone (its lock is
/// free). Returns the IDs cleaned.
pub fn reap_interrupted(engine: &Engine) -> Result<Vec<String>> {
    let mut rows: std::collections::BTreeSet<String> =
        engine.db()?.list()?.into_iter().map(|r| r.id).collect();
    // A pod's endpoint and ports are keyed by the pod's ID (its row is
    // written before them).
    rows.extend(crate::pods::list(engine)?.into_iter().map(|p| p.id));
    let mut candidates: std::collections::BTreeSet<String> =
        crate::networks::unowned(engine)?.into_iter().collect();
    candidates.extend(crate::userns::unowned(engine)?);
    if let Ok(rd) = std::fs::read_dir(engine.root.join("containers")) {
        for e in rd.flatten() {
            if let Some(name) = e.file_name().to_str() {
                if name.len() == 64 && name.bytes().all(|b| b.is_ascii_hexdigit()) {
                    candidates.insert(name.to_string());
                }
            }
        }
    }
    let mut cleaned = Vec::new();
    for id in candidates {
        if rows.contains(&id) {
            continue;
        }
        let dir = engine.dir(&id);
        let lock = dir.join(CREATE_LOCK);
        if let Ok(f) = std::fs::File::open(&lock) {
            if rustix::fs::flock(&f, rustix::fs::FlockOperation::NonBlockingLockExclusive).is_err()
            {
                continue; // being created right now
            }
        } else if dir.exists() {
            // A dir without a lock file: not ours to judge (made before
            // the lock existed, or not a container dir).
            continue;
        }
        // The row may have appeared since the list was read.
        if engine.db()?.get(&id)?.is_some() {
            continue;
        }
        crate::networks::release(engine, &id)?;
        crate::volume_store::release(engine, &id)?;
        crate::userns::release(engine, &id)?;
        match std::fs::remove_dir_all(&dir) {
            Ok(()) => {}
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => return Err(io("remove container dir", &dir)(e)),
        }
        cleaned.push(id);
    }
    Ok(cleaned)
}

/// Removes a half-made container dir unless disarmed.
struct DirGuard(Option<PathBuf>);

impl Drop for DirGuard {
    fn drop(&mut self) {
        if let Some(d) = self.0.take() {
            let _ = std::fs::remove_dir_all(d);
        }
    }
}

/// Removes anonymous volumes made for a container whose creation failed.
struct AnonGuard<'a>(&'a Engine, Vec<String>);

impl Drop for AnonGuard<'_> {
    fn drop(&mut self) {
        for name in &self.1 {
            let _ = volume_store::remove(self.0, name, true);
        }
    }
}

/// Releases the addresses and ports of a container whose creation failed.
struct NetGuard<'a>(&'a Engine, Option<String>);

impl Drop for NetGuard<'_> {
    fn drop(&mut self) {
        if let Some(id) = self.1.take() {
            let _ = crate::networks::release(self.0, &id);
        }
    }
}

/// Releases the user namespace range of a container whose creation failed.
struct RangeGuard<'a>(&'a Engine, Option<String>);

impl Drop for RangeGuard<'_> {
    fn drop(&mut self) {
        if let Some(id) = self.1.take() {
            let _ = crate::userns::release(self.0, &id);
        }
    }
}

/// Finds or makes each volume; their OCI mounts, use records, and the
/// names of the anonymous volumes made.
fn attach_volumes(
    engine: &Engine,
    refs: &[VolumeRef],
) -> Result<(Vec<serde_json::Value>, Vec<VolumeUse>, Vec<String>)> {
    let (mut mounts, mut uses, mut anonymous) = (Vec::new(), Vec::new(), Vec::new());
    for r in refs {
        let v = match &r.name {
            Some(n) => volume_store::ensure(engine, n)?,
            None => {
                let name = names::new_id()?;
                let v = volume_store::create(
                    engine,
                    &name,
                    &Default::default(),
                    &Default::default(),
                    true,
                );
                match v {
                    Ok(v) => {
                        anonymous.push(name);
                        v
                    }
                    Err(e) => {
                        AnonGuard(engine, anonymous);
                        return Err(e);
                    }
                }
            }
        };
        mounts.push(volume_store::mount_json(&v, &r.target, r.readonly));
        uses.push(VolumeUse {
            volume: v.name,
            target: r.target.clone(),
            readonly: r.readonly,
        });
    }
    Ok((mounts, uses, anonymous))
}

/// The volumes of the `--volumes-from` containers.
fn volumes_from(engine: &Engine, items: &[String]) -> Result<Vec<VolumeRef>> {
    let mut out = Vec::new();
    for item in items {
        let (reference, ro) = volumes::parse_volumes_from(item)?;
        let source = crate::lifecycle::find(engine, &reference)?;
        for u in volume_store::uses_of(engine, &source.id)? {
            out.push(VolumeRef {
                name: Some(u.volume),
                target: u.target,
                readonly: ro.unwrap_or(u.readonly),
            });
        }
    }
    Ok(out)
}

fn host_name() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .map(|s| s.trim().to_string())
        .unwrap_or_else(|_| "localhost".into())
}

/// How often `create` starts over when a volume it attached was removed
/// before the container row committed.
const VANISHED_RETRIES: usize = 3;

/// Creates a container from `o`; returns its row.
pub fn create(engine: &Engine, o: &RunOptions) -> Result<ContainerRow> {
    let mut tries = 0;
    loop {
        match create_once(engine, o) {
            Err(EngineError::Volume(volumes::VolumeError::Vanished { name, .. }))
                if tries < VANISHED_RETRIES =>
            {
                tracing::debug!("volume {name} was removed during create; starting over");
                tries += 1;
            }
            other => return other,
        }
    }
}

fn create_once(engine: &Engine, o: &RunOptions) -> Result<ContainerRow> {
    let mut o = o.clone();
    if o.cgroup_parent.is_empty() {
        o.cgroup_parent = engine.cgroup_parent.clone();
    }
    if crate::rootless::is_rootless() {
        crate::rootless::adjust(&mut o)?;
    }
    let restart = opts::parse_restart(o.restart.as_deref().unwrap_or("no"))?;
    if o.rm && restart != opts::RestartPolicy::No {
        return Err(opts::OptsError::Invalid {
            flag: "--restart",
            value: o.restart.clone().unwrap_or_default(),
            why: "conflicts with --rm".into(),
        }
        .into());
    }
    let explicit_name = o.name.as_deref().map(names::check_name).transpose()?;
    // `--pod`: the pod's ID and hostname go into the options.
    let pod = crate::pods::join(engine, &mut o)?;
    // A pod with a user namespace of its own: its containers share it.
    let pod_userns = match &pod {
        Some(p) => crate::pods::userns_pin(engine, p).zip(p.config.idmap.clone()),
        None => None,
    };
    if let (Some(p), Some(_)) = (&pod, &pod_userns) {
        crate::userns::check_pod_member(&p.name, &o.userns, o.privileged, &o.extra)?;
    }
    let mut userns_req = crate::userns::request(&o.userns, o.privileged)?;
    if !crate::userns::asked(&o.userns) {
        if let Some(why) = crate::userns::host_by_default(pod.is_some(), &o.extra) {
            tracing::debug!("the host's user namespace: {why}");
            userns_req = crate::userns::Request::Host;
        }
    }
    if pod.is_some() && pod_userns.is_none() && userns_req != crate::userns::Request::Host {
        return Err(opts::OptsError::Invalid {
            flag: "--userns",
            value: o.userns.userns.clone().unwrap_or_else(|| "auto".into()),
            why: "a container in a pod joins the pod's namespaces, which belong to the \
                  host's user namespace; use --userns=host, or create the pod with \
                  --userns=auto"
                .into(),
        }
        .into());
    }
    let rootless = crate::rootless::is_rootless();
    if (userns_req != crate::userns::Request::Host || pod_userns.is_some()) && !rootless {
        crate::userns::check_reachable(&engine.root)?;
    }
    // The init is found and checked before anything else is set up.
    let init_binary = if o.init {
        let env = std::env::var_os(crate::init::INIT_PATH_ENV).map(PathBuf::from);
        Some(crate::init::resolve(
            &crate::init::Host,
            o.init_path.as_deref(),
            env.as_deref(),
        )?)
    } else {
        None
    };
    let store = berth_image::Store::open(&engine.root).map_err(|source| EngineError::Store {
        root: engine.root.clone(),
        source: Box::new(source),
    })?;
    let img = berth_image::image::container_image(&store, &o.image).map_err(|source| {
        EngineError::Image {
            image: o.image.clone(),
            source: Box::new(source),
        }
    })?;
    let id = names::new_id()?;
    let dir = engine.dir(&id);
    let guard = DirGuard(Some(dir.clone()));
    // Held until the row exists: tells a half-made container of a killed
    // `create` (no row, lock free) from one being made now.
    let _creating = lock_creation(&dir)?;
    for sub in ["upper", "work", "merged", "bundle"] {
        let p = dir.join(sub);
        std::fs::create_dir_all(&p).map_err(io("create container dir", &p))?;
    }
    // A range allocated now is released by the guard on failure, or by
    // `reap_interrupted` after a killed create (no row).
    let mut range_guard = RangeGuard(engine, None);
    let idmap = match userns_req {
        // The pod's range: released with the pod, not the container.
        _ if pod_userns.is_some() => pod_userns.as_ref().map(|(_, m)| m.clone()),
        crate::userns::Request::Host => None,
        crate::userns::Request::Explicit(m) => Some(m),
        crate::userns::Request::Auto { size } => {
            range_guard.1 = Some(id.clone());
            Some(crate::userns::allocate(engine, &id, size)?)
        }
    };
    // Rootless, fuse-overlayfs shifts the upper dir's owner too: it stays
    // the user's (container root).
    if let Some((uid, gid)) = idmap.as_ref().and_then(|m| m.root()).filter(|_| !rootless) {
        // The overlay's root takes the upper dir's owner: container root.
        let upper = dir.join("upper");
        std::os::unix::fs::chown(&upper, Some(uid), Some(gid))
            .map_err(io("chown the upper dir", &upper))?;
    }
    let mut env_file_lines = Vec::new();
    for f in &o.env_files {
        let text = std::fs::read_to_string(f).map_err(io("read --env-file", f))?;
        env_file_lines.extend(opts::env_file_entries(&text));
    }
    let security = opts::parse_security_opts(&o.security_opt)?;
    let seccomp_profile = match &security.seccomp_file {
        Some(f) => Some(std::fs::read_to_string(f).map_err(io("read seccomp profile", f))?),
        None => None,
    };
    let host_env = |k: &str| std::env::var(k).ok();
    let rootfs = engine.rootfs(&id);
    let image_volumes: Vec<String> = img
        .config
        .volumes
        .iter()
        .flat_map(|m| m.keys().cloned())
        .collect();
    let (mut volume_refs, gen_opts) = volumes::plan(&o, &image_volumes)?;
    volumes::merge_from(
        &mut volume_refs,
        &image_volumes,
        volumes_from(engine, &o.volumes_from)?,
    );
    let group_text = user::read_from_layers(&img.lowers, "etc/group");
    let mut generated = generate::generate(
        &gen_opts,
        &Inputs {
            id: &id,
            image: &img.config,
            passwd: &user::read_from_layers(&img.lowers, "etc/passwd"),
            group: &group_text,
            env_file_lines,
            host_env: &host_env,
            rootfs: &rootfs,
            seccomp_profile,
            host_name: host_name(),
            netns_path: Some(crate::networks::netns_path(engine, &id)),
            init_binary: init_binary.as_deref(),
        },
    )?;
    let host = host_name();
    crate::flags::apply(
        &mut generated,
        &gen_opts,
        &o.extra,
        &crate::flags::Host {
            group: &group_text,
            host_name: &host,
        },
    )?;
    if let Some(p) = &pod {
        crate::pods::join_spec(engine, p, &mut generated.spec);
    }
    let health = crate::health::resolve(&o.extra.health, img.config.healthcheck.as_ref())?;
    crate::flags::check_expose(&o.extra)?;
    crate::binds::prepare(&crate::binds::requests(&gen_opts)?, &generated.identity)?;
    let (volume_mounts, uses, anonymous) = attach_volumes(engine, &volume_refs)?;
    let mut anon_guard = AnonGuard(engine, anonymous);
    generated.spec["mounts"]
        .as_array_mut()
        .expect("generated spec has mounts")
        .extend(volume_mounts);
    // `-P`: every exposed port (the image's and `--expose`) on a free
    // host port, as `-p PORT/PROTO` would.
    let mut net_o = o.clone();
    if o.extra.publish_all {
        let image_ports: Vec<String> = img
            .config
            .exposed_ports
            .iter()
            .flat_map(|m| m.keys().cloned())
            .collect();
        net_o
            .publish
            .extend(crate::flags::publish_all(&o.extra, &image_ports)?);
    }
    // Addresses and ports are allocated now (kept until `rm`), the /etc
    // files written; a failure below releases them.
    let prepared = match &pod {
        // The pod's endpoint, ports and /etc files are the container's.
        Some(p) if p.shares("net") => crate::networks::Prepared {
            mounts: crate::pods::etc_mounts(engine, p),
        },
        _ => crate::networks::prepare(
            engine,
            &id,
            explicit_name.as_deref().unwrap_or(""),
            &net_o,
            &generated.hostname,
        )?,
    };
    let mut net_guard = NetGuard(engine, Some(id.clone()));
    {
        let mounts = generated.spec["mounts"]
            .as_array_mut()
            .expect("generated spec has mounts");
        // The user's own mounts of these files win.
        for m in prepared.mounts {
            if !mounts.iter().any(|u| u["destination"] == m["destination"]) {
                mounts.push(m);
            }
        }
    }
    generate::keep_init_mount_last(&mut generated.spec);
    if let Some(m) = &idmap {
        crate::userns::apply(
            &mut generated.spec,
            m,
            &crate::networks::netns_path(engine, &id),
            &o.extra,
            pod_userns.as_ref().map(|(pin, _)| pin.as_path()),
        )?;
        if rootless {
            crate::rootless::unidmap_binds(&mut generated.spec);
        }
    }
    let config_path = engine.bundle(&id).join("config.json");
    let text = serde_json::to_vec_pretty(&generated.spec).expect("spec serializes");
    std::fs::write(&config_path, text).map_err(io("write config.json", &config_path))?;
    let labels = opts::parse_labels(&o.labels);
    let restart_policy = o.restart.clone().unwrap_or_else(|| "no".into());
    let auto_remove = o.rm;
    let image = o.image.clone();
    let config = ContainerConfig {
        options: o,
        generated,
        lowers: img.lowers.clone(),
        health,
        idmap,
    };
    let mut row = ContainerRow {
        id: id.clone(),
        name: String::new(),
        image,
        image_id: img.id.to_string(),
        config: serde_json::to_value(&config).expect("config serializes"),
        status: Status::Created,
        created: crate::now_ms(),
        started: None,
        finished: None,
        exit_code: None,
        pid: None,
        monitor_pid: None,
        monitor_start: None,
        restart_policy,
        restart_count: 0,
        stop_requested: false,
        labels,
        auto_remove,
    };
    let mut db = engine.db()?;
    let mut attempt = 0;
    loop {
        row.name = match &explicit_name {
            Some(n) => n.clone(),
            None => names::generated_name(attempt)?,
        };
        // The row and its volume uses commit together, and only while
        // every volume still exists (a racing `volume rm` loses or wins
        // as a whole).
        match volume_store::insert_container(&mut db, &row, &uses) {
            Ok(()) => break,
            Err(EngineError::Db(DbError::NameInUse { .. }))
                if explicit_name.is_none() && attempt < 20 =>
            {
                attempt += 1
            }
            Err(e) => return Err(e),
        }
    }
    anon_guard.1.clear();
    net_guard.1 = None;
    range_guard.1 = None;
    let mut guard = guard;
    guard.0 = None;
    crate::events::container(engine, &row, "create", &[]);
    Ok(row)
}
