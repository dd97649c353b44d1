//! The `run`/`create` flags that shape the process, namespaces, devices
//! and cgroup of a container beyond [`crate::generate`]: `--ulimit`,
//! `--device`, `--device-cgroup-rule`, `--shm-size`, `--sysctl`,
//! `--group-add`, `--stop-signal`, `--stop-timeout`, `--ipc`, `--pid`,
//! `--uts`, `-P`/`--expose`, the cgroup resource flags, `--oom-score-adj`
//! and the host devices of `--privileged`. [`apply`] edits the generated
//! config.json (runtime-spec config.md, config-linux.md).

use std::path::Path;

use serde::{Deserialize, Serialize};
use serde_json::{json, Value};

use crate::generate::Generated;
use crate::opts::{self, OptsError, RunOptions};

/// The flags of this module as the user gave them (kept in the
/// container's config; `#[serde(default)]` reads older records).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct ExtraOptions {
    /// `--ulimit NAME=SOFT[:HARD]`.
    pub ulimits: Vec<String>,
    /// `--device HOST[:CONTAINER][:PERMS]`.
    pub devices: Vec<String>,
    /// `--device-cgroup-rule 'c 1:3 mr'`.
    pub device_cgroup_rules: Vec<String>,
    /// `--shm-size 128m`.
    pub shm_size: Option<String>,
    /// `--sysctl K=V`.
    pub sysctls: Vec<String>,
    /// `--group-add NAME|GID`.
    pub group_add: Vec<String>,
    /// `--stop-signal`.
    pub stop_signal: Option<String>,
    /// `--stop-timeout` seconds (default 10).
    pub stop_timeout: Option<u64>,
    /// `--ipc host|private|shareable|none|container:NAME`.
    pub ipc: Option<String>,
    /// `--pid host|private|container:NAME`.
    pub pid: Option<String>,
    /// `--uts host|private`.
    pub uts: Option<String>,
    /// `-P/--publish-all`.
    pub publish_all: bool,
    /// `--expose PORT[-PORT][/PROTO]`.
    pub expose: Vec<String>,
    pub memory_swap: Option<String>,
    pub memory_reservation: Option<String>,
    pub cpuset_cpus: Option<String>,
    pub cpuset_mems: Option<String>,
    pub cpu_period: Option<u64>,
    pub cpu_quota: Option<i64>,
    pub blkio_weight: Option<u16>,
    pub oom_kill_disable: bool,
    pub oom_score_adj: Option<i32>,
    /// `--log-driver` and `--log-opt K=V` (see [`crate::logs`]).
    pub log_driver: Option<String>,
    pub log_opts: Vec<String>,
    /// The healthcheck flags (see [`crate::health`]).
    pub health: crate::health::HealthFlags,
    /// `--annotation K=V` (podman's; also a Kubernetes object's
    /// `metadata.annotations` at `kube play`): config.md "annotations".
    pub annotations: Vec<String>,
}

/// Docker's default `--stop-timeout`.
pub const DEFAULT_STOP_TIMEOUT: u64 = 10;

fn invalid(flag: &'static str, value: &str, why: impl Into<String>) -> OptsError {
    OptsError::Invalid {
        flag,
        value: value.into(),
        why: why.into(),
    }
}

/// Every capability name berth knows, for `ALL`.
fn every_capability() -> Vec<String> {
    let set = caps::read(None, caps::CapSet::Bounding).unwrap_or_else(|_| caps::all());
    let mut v: Vec<String> = set.iter().map(|c| c.to_string()).collect();
    v.sort();
    v
}

/// `--cap-add`/`--cap-drop` with Docker's `ALL` (any case, with or
/// without `CAP_`): `--cap-add ALL` grants every capability, `--cap-drop
/// ALL` starts from none, so only the `--cap-add`s remain.
pub fn expand_caps(add: &[String], drop: &[String]) -> (Vec<String>, Vec<String>) {
    let is_all = |s: &String| opts::cap_name(s) == "CAP_ALL";
    let add_all = add.iter().any(is_all);
    let drop_all = drop.iter().any(is_all);
    let adds: Vec<String> = if add_all {
        every_capability()
    } else {
        add.iter().map(|c| opts::cap_name(c)).collect()
    };
    let drops: Vec<String> = if drop_all && !add_all {
        every_capability()
            .into_iter()
            .filter(|c| !adds.contains(c))
            .collect()
    } else if add_all {
        // Docker: an explicit drop still wins over `--cap-add ALL`.
        drop.iter()
            .filter(|c| !is_all(c))
            .map(|c| opts::cap_name(c))
            .collect()
    } else {
        drop.iter()
            .map(|c| opts::cap_name(c))
            .filter(|c| !adds.contains(c))
            .collect()
    };
    (adds, drops)
}

/// The rlimit names Docker's `--ulimit` takes.
const ULIMITS: [&str; 16] = [
    "as",
    "core",
    "cpu",
    "data",
    "fsize",
    "locks",
    "memlock",
    "msgqueue",
    "nice",
    "nofile",
    "nproc",
    "rss",
    "rtprio",
    "rttime",
    "sigpending",
    "stack",
];

/// `--ulimit nofile=1024[:2048]` as an OCI rlimit (config.md "rlimits");
/// `-1` is unlimited.
pub fn parse_ulimit(s: &str) -> Result<Value, OptsError> {
    let (name, vals) = s
        .split_once('=')
        .ok_or_else(|| invalid("--ulimit", s, "use NAME=SOFT[:HARD], e.g. nofile=1024:2048"))?;
    let name = name.trim().to_ascii_lowercase();
    if !ULIMITS.contains(&name.as_str()) {
        return Err(invalid(
            "--ulimit",
            s,
            format!("unknown limit {name:?} (one of {})", ULIMITS.join(", ")),
        ));
    }
    let num = |v: &str| -> Result<u64, OptsError> {
        match v.trim() {
            "-1" | "unlimited" => Ok(u64::MAX),
            t => t
                .parse()
                .map_err(|_| invalid("--ulimit", s, "limits are numbers (-1: unlimited)")),
        }
    };
    let (soft, hard) = match vals.split_once(':') {
        Some((a, b)) => (num(a)?, num(b)?),
        None => (num(vals)?, num(vals)?),
    };
    if soft > hard {
        return Err(invalid(
            "--ulimit",
            s,
            "the soft limit is above the hard limit",
        ));
    }
    Ok(json!({"type": format!("RLIMIT_{}", name.to_ascii_uppercase()), "soft": soft, "hard": hard}))
}

/// How a namespace flag (`--ipc`, `--pid`, `--uts`) was given.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum NsMode {
    /// Its own namespace (the default).
    Private,
    /// The host's.
    Host,
    /// Another container's (joined when it starts).
    Container(String),
    /// `--ipc none`: private, without `/dev/shm`.
    None,
}

/// Parses `--ipc`/`--pid`/`--uts`.
pub fn parse_ns(flag: &'static str, s: Option<&str>) -> Result<NsMode, OptsError> {
    let Some(s) = s else {
        return Ok(NsMode::Private);
    };
    let container_ok = flag != "--uts";
    match s {
        "" | "private" => Ok(NsMode::Private),
        "shareable" if flag == "--ipc" => Ok(NsMode::Private),
        "none" if flag == "--ipc" => Ok(NsMode::None),
        "host" => Ok(NsMode::Host),
        other => match other.split_once(':') {
            Some(("container", t)) if container_ok && !t.is_empty() => {
                Ok(NsMode::Container(t.into()))
            }
            _ => Err(invalid(
                flag,
                s,
                match flag {
                    "--ipc" => "use host, private, shareable, none or container:NAME",
                    "--pid" => "use host, private or container:NAME",
                    _ => "use host or private",
                },
            )),
        },
    }
}

/// The spec's namespace type of a flag.
fn ns_type(flag: &str) -> &'static str {
    match flag {
        "--ipc" => "ipc",
        "--pid" => "pid",
        _ => "uts",
    }
}

/// Host facts [`apply`] needs, gathered by the caller.
pub struct Host<'a> {
    /// The container image's /etc/group text (for `--group-add NAME`).
    pub group: &'a str,
    /// The host's name (for `--uts host`).
    pub host_name: &'a str,
}

/// Applies the flags of [`ExtraOptions`] to the generated config.
pub fn apply(
    g: &mut Generated,
    o: &RunOptions,
    x: &ExtraOptions,
    host: &Host<'_>,
) -> Result<(), OptsError> {
    let spec = &mut g.spec;
    // config.md "annotations".
    for a in &x.annotations {
        let Some((k, v)) = a.split_once('=').filter(|(k, _)| !k.is_empty()) else {
            return Err(invalid("--annotation", a, "use KEY=VALUE"));
        };
        if !spec["annotations"].is_object() {
            spec["annotations"] = json!({});
        }
        spec["annotations"][k] = json!(v);
    }
    // config.md "rlimits".
    if !x.ulimits.is_empty() {
        let mut rl: Vec<Value> = Vec::new();
        for u in &x.ulimits {
            let v = parse_ulimit(u)?;
            rl.retain(|r| r["type"] != v["type"]);
            rl.push(v);
        }
        spec["process"]["rlimits"] = json!(rl);
    }
    if let Some(v) = x.oom_score_adj {
        if !(-1000..=1000).contains(&v) {
            return Err(invalid(
                "--oom-score-adj",
                &v.to_string(),
                "must be between -1000 and 1000",
            ));
        }
        spec["process"]["oomScoreAdj"] = json!(v);
    }
    if let Some(sig) = &x.stop_signal {
        if berth_runtime::container::parse_signal(sig).is_none() {
            return Err(invalid("--stop-signal", sig, "not a signal name or number"));
        }
        g.stop_signal = sig.clone();
    }
    if !x.group_add.is_empty() {
        let mut gids: Vec<u64> = spec["process"]["user"]["additionalGids"]
            .as_array()
            .map(|a| a.iter().filter_map(Value::as_u64).collect())
            .unwrap_or_default();
        for grp in &x.group_add {
            let gid = match grp.parse::<u32>() {
                Ok(n) => n,
                Err(_) => host
                    .group
                    .lines()
                    .find_map(|l| {
                        let f: Vec<&str> = l.split(':').collect();
                        (f.len() >= 3 && f[0] == grp).then(|| f[2].parse::<u32>().ok())?
                    })
                    .ok_or_else(|| {
                        invalid(
                            "--group-add",
                            grp,
                            "no such group in the image's /etc/group (give a number instead)",
                        )
                    })?,
            };
            if !gids.contains(&(gid as u64)) {
                gids.push(gid as u64);
            }
        }
        spec["process"]["user"]["additionalGids"] = json!(gids);
        g.identity.additional_gids = gids.iter().map(|&g| g as u32).collect();
    }
    let mounts = spec["mounts"].as_array_mut().expect("spec has mounts");
    if let Some(s) = &x.shm_size {
        let bytes = opts::parse_size("--shm-size", s)?;
        for m in mounts.iter_mut().filter(|m| m["destination"] == "/dev/shm") {
            if let Some(opts) = m["options"].as_array_mut() {
                opts.retain(|o| !o.as_str().is_some_and(|o| o.starts_with("size=")));
                opts.push(json!(format!("size={bytes}")));
            }
        }
    }
    if !x.sysctls.is_empty() {
        let mut map = serde_json::Map::new();
        for s in &x.sysctls {
            let (k, v) = s
                .split_once('=')
                .ok_or_else(|| invalid("--sysctl", s, "use KEY=VALUE"))?;
            map.insert(k.trim().into(), json!(v));
        }
        // The runtime refuses keys outside the container's namespaces.
        spec["linux"]["sysctl"] = Value::Object(map);
    }
    // Namespaces (config-linux.md "namespaces").
    for flag in ["--ipc", "--pid", "--uts"] {
        let given = match flag {
            "--ipc" => x.ipc.as_deref(),
            "--pid" => x.pid.as_deref(),
            _ => x.uts.as_deref(),
        };
        let mode = parse_ns(flag, given)?;
        let t = ns_type(flag);
        let ns = spec["linux"]["namespaces"]
            .as_array_mut()
            .expect("spec has namespaces");
        match mode {
            NsMode::Private | NsMode::Container(_) => {}
            NsMode::Host => ns.retain(|n| n["type"] != t),
            NsMode::None => {}
        }
        let mounts = spec["mounts"].as_array_mut().expect("spec has mounts");
        match (flag, &mode) {
            ("--ipc", NsMode::Host) => {
                // Docker and podman: the host's /dev/shm.
                for m in mounts.iter_mut().filter(|m| m["destination"] == "/dev/shm") {
                    *m = json!({"destination": "/dev/shm", "type": "bind", "source": "/dev/shm",
                                "options": ["rbind", "nosuid", "noexec", "nodev"]});
                }
            }
            ("--ipc", NsMode::None) => mounts.retain(|m| m["destination"] != "/dev/shm"),
            ("--uts", NsMode::Host) => {
                if let Some(h) = &o.hostname {
                    return Err(invalid(
                        "--hostname",
                        h,
                        "conflicts with --uts host (the host's name is used)",
                    ));
                }
                // No UTS namespace: the runtime must not set a hostname.
                if let Some(obj) = spec.as_object_mut() {
                    obj.remove("hostname");
                }
                g.hostname = host.host_name.to_string();
                opts::set_env(&mut g.env, "HOSTNAME", host.host_name);
                if !o
                    .env
                    .iter()
                    .any(|e| e.split('=').next() == Some("HOSTNAME"))
                {
                    spec["process"]["env"] = json!(g.env);
                }
            }
            _ => {}
        }
    }
    // Devices (config-linux.md "devices", "allowed device list").
    let mut nodes: Vec<Value> = Vec::new();
    let mut rules: Vec<Value> = Vec::new();
    if o.privileged {
        // Docker: a privileged container sees the host's devices.
        for d in crate::devices::devices_under(Path::new("/dev")) {
            let dest = d.path.display().to_string();
            nodes.push(crate::devices::device_json(&d, &dest));
        }
    }
    for d in &x.devices {
        let (n, r) = crate::devices::parse_device(d)?;
        for node in n {
            nodes.retain(|e| e["path"] != node["path"]);
            nodes.push(node);
        }
        rules.extend(r);
    }
    for r in &x.device_cgroup_rules {
        rules.push(crate::devices::parse_device_rule(r)?);
    }
    if !nodes.is_empty() {
        let linux = spec["linux"].as_object_mut().expect("linux is an object");
        let list = linux
            .entry("devices")
            .or_insert_with(|| json!([]))
            .as_array_mut()
            .expect("devices is a list");
        list.extend(nodes);
    }
    let res = spec["linux"]
        .as_object_mut()
        .expect("linux is an object")
        .entry("resources")
        .or_insert_with(|| json!({}));
    if !rules.is_empty() && !o.privileged {
        let list = res
            .as_object_mut()
            .expect("resources is an object")
            .entry("devices")
            .or_insert_with(|| json!([]))
            .as_array_mut()
            .expect("devices is a list");
        list.extend(rules);
    }
    crate::resources::apply(res, o, x)?;
    log_config(x)?;
    Ok(())
}

/// The log drivers berth has.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LogDriver {
    /// `k8s-file` or `json-file` (the default): berth's JSON-lines file.
    File,
    /// Nothing is kept; `logs` shows nothing.
    None,
    /// The container writes to berth's own stdio (foreground only).
    Passthrough,
}

/// `--log-driver` and `--log-opt max-size=SIZE,max-file=N`.
pub fn log_config(x: &ExtraOptions) -> Result<(LogDriver, crate::logs::LogLimits), OptsError> {
    let driver = match x.log_driver.as_deref() {
        None | Some("" | "k8s-file" | "json-file") => LogDriver::File,
        Some("none") => LogDriver::None,
        Some("passthrough") => LogDriver::Passthrough,
        Some(other) => {
            return Err(OptsError::Unsupported(format!(
                "--log-driver {other} (use k8s-file, json-file, none or passthrough)"
            )))
        }
    };
    let mut limits = crate::logs::LogLimits {
        max_size: 0,
        max_file: 1,
        off: driver == LogDriver::None,
    };
    for o in &x.log_opts {
        let (k, v) = o
            .split_once('=')
            .ok_or_else(|| invalid("--log-opt", o, "use KEY=VALUE"))?;
        match k {
            "max-size" => {
                limits.max_size = if v == "-1" {
                    0
                } else {
                    opts::parse_size("--log-opt", v)? as u64
                }
            }
            "max-file" => {
                limits.max_file = v.parse().ok().filter(|n| *n >= 1).ok_or_else(|| {
                    invalid("--log-opt", o, "max-file is a number of files, at least 1")
                })?
            }
            // The CRI log path (see `cri_log_path`).
            "path" if v.starts_with('/') => {}
            "path" => return Err(invalid("--log-opt", o, "path must be absolute")),
            _ => {
                return Err(OptsError::Unsupported(format!(
                    "--log-opt {k} (berth knows max-size, max-file and path)"
                )))
            }
        }
    }
    if limits.max_file > 1 && limits.max_size == 0 {
        return Err(invalid("--log-opt", "max-file", "needs max-size as well"));
    }
    if driver != LogDriver::File && !x.log_opts.is_empty() {
        return Err(invalid(
            "--log-opt",
            &x.log_opts.join(","),
            "only the k8s-file/json-file driver takes options",
        ));
    }
    Ok((driver, limits))
}

/// `--log-opt path=FILE`: where the container's output also goes in the
/// CRI log format (the path the kubelet gives; conmon's `--log-path`).
pub fn cri_log_path(x: &ExtraOptions) -> Option<std::path::PathBuf> {
    x.log_opts
        .iter()
        .filter_map(|o| o.strip_prefix("path="))
        .next_back()
        .map(std::path::PathBuf::from)
}

/// `logs` of a container whose driver keeps none is an error (Docker's
/// and podman's), not an empty answer.
pub fn check_logs_readable(row: &crate::ContainerRow) -> crate::Result<()> {
    let Ok(cfg) = crate::create::ContainerConfig::of(row) else {
        return Ok(());
    };
    match log_config(&cfg.options.extra) {
        Ok((LogDriver::File, _)) | Err(_) => Ok(()),
        Ok((driver, _)) => Err(crate::EngineError::WrongState {
            name: row.name.clone(),
            status: row.status.to_string(),
            what: format!(
                "it uses --log-driver {}: there are no logs to read",
                if driver == LogDriver::None {
                    "none"
                } else {
                    "passthrough"
                }
            ),
        }),
    }
}

/// `--expose`/the image's ExposedPorts as `-p` values publishing each on a
/// free host port (`-P`): `80/tcp`, ranges expanded by the publisher.
pub fn publish_all(x: &ExtraOptions, image_ports: &[String]) -> Result<Vec<String>, OptsError> {
    let mut out: Vec<String> = Vec::new();
    for p in image_ports.iter().chain(&x.expose) {
        let (port, proto) = p.split_once('/').unwrap_or((p.as_str(), "tcp"));
        if !matches!(proto, "tcp" | "udp" | "sctp") {
            return Err(invalid("--expose", p, "the protocol is tcp, udp or sctp"));
        }
        let ok = |n: &str| n.parse::<u16>().is_ok_and(|n| n > 0);
        let valid = match port.split_once('-') {
            Some((a, b)) => ok(a) && ok(b),
            None => ok(port),
        };
        if !valid {
            return Err(invalid("--expose", p, "use PORT[-PORT][/PROTO]"));
        }
        let v = format!("{port}/{proto}");
        if !out.contains(&v) {
            out.push(v);
        }
    }
    Ok(out)
}

/// Checks the `--expose` values alone (without `-P` they are metadata).
pub fn check_expose(x: &ExtraOptions) -> Result<(), OptsError> {
    publish_all(x, &[]).map(|_| ())
}

/// The process of `container:NAME` for a namespace flag, when it runs.
fn running_pid(engine: &crate::Engine, flag: &str, target: &str) -> crate::Result<i32> {
    let t = crate::lifecycle::find(engine, target)?;
    match (t.status, t.pid) {
        (crate::Status::Running, Some(pid)) => Ok(pid),
        _ => Err(crate::EngineError::WrongState {
            name: t.name,
            status: t.status.to_string(),
            what: format!("{flag} container:{target} joins its namespace; start it first"),
        }),
    }
}

/// Before the runtime creates the container: points `--ipc`/`--pid
/// container:NAME` at that container's namespaces (its pid changes on
/// every start, so this is done at each start).
pub fn join_namespaces(engine: &crate::Engine, id: &str, x: &ExtraOptions) -> crate::Result<()> {
    let mut joins = Vec::new();
    for (flag, v) in [("--ipc", &x.ipc), ("--pid", &x.pid)] {
        if let NsMode::Container(t) = parse_ns(flag, v.as_deref())? {
            let pid = running_pid(engine, flag, &t)?;
            joins.push((ns_type(flag), format!("/proc/{pid}/ns/{}", ns_type(flag))));
        }
    }
    join_bundle_namespaces(engine, id, &joins)
}

/// Points namespaces of container `id`'s bundle config at existing ones
/// (`(type, path)` pairs; config-linux.md "namespaces": a path joins an
/// existing one), replacing what the config had for those types. Nothing
/// is written when `joins` is empty.
pub(crate) fn join_bundle_namespaces(
    engine: &crate::Engine,
    id: &str,
    joins: &[(&str, String)],
) -> crate::Result<()> {
    if joins.is_empty() {
        return Ok(());
    }
    let path = engine.bundle(id).join("config.json");
    let text = std::fs::read_to_string(&path).map_err(crate::error::io("read", &path))?;
    let mut spec: Value = serde_json::from_str(&text).map_err(|e| crate::EngineError::Io {
        op: "parse",
        path: path.clone(),
        source: std::io::Error::other(e),
    })?;
    if let Some(ns) = spec["linux"]["namespaces"].as_array_mut() {
        for (t, p) in joins {
            ns.retain(|n| n["type"] != *t);
            ns.push(json!({"type": t, "path": p}));
        }
    }
    let out = serde_json::to_vec_pretty(&spec).expect("spec serializes");
    std::fs::write(&path, out).map_err(crate::error::io("write", &path))?;
    Ok(())
}

/// `stop`'s wait before SIGKILL: `-t` when given, else the container's
/// `--stop-timeout` (Docker's 10 s by default).
pub fn stop_timeout(
    engine: &crate::Engine,
    reference: &str,
    given: Option<u64>,
) -> std::time::Duration {
    let secs = given.unwrap_or_else(|| {
        crate::lifecycle::find(engine, reference)
            .ok()
            .and_then(|r| crate::create::ContainerConfig::of(&r).ok())
            .and_then(|c| c.options.extra.stop_timeout)
            .unwrap_or(DEFAULT_STOP_TIMEOUT)
    });
    std::time::Duration::from_secs(secs)
}

/// Docker's inspect fields of these flags: `HostConfig` (Ulimits,
/// Devices, ShmSize, Sysctls, GroupAdd, IpcMode, PidMode, UTSMode,
/// PublishAllPorts, the cgroup values, LogConfig) and `Config`
/// (StopTimeout, Healthcheck, ExposedPorts).
pub fn add_to_inspect(doc: &mut Value, cfg: &crate::create::ContainerConfig) {
    let x = &cfg.options.extra;
    let spec = &cfg.generated.spec;
    let res = &spec["linux"]["resources"];
    let ulimits: Vec<Value> = x
        .ulimits
        .iter()
        .filter_map(|u| parse_ulimit(u).ok())
        .map(|r| {
            let name = r["type"]
                .as_str()
                .unwrap_or_default()
                .trim_start_matches("RLIMIT_")
                .to_ascii_lowercase();
            let n = |v: &Value| match v.as_u64() {
                Some(u64::MAX) => json!(-1),
                _ => v.clone(),
            };
            json!({"Name": name, "Soft": n(&r["soft"]), "Hard": n(&r["hard"])})
        })
        .collect();
    let devices: Vec<Value> = x
        .devices
        .iter()
        .map(|d| {
            let parts: Vec<&str> = d.split(':').collect();
            let (src, dst, perms) = match parts.as_slice() {
                [a] => (*a, *a, "rwm"),
                [a, b] if b.starts_with('/') => (*a, *b, "rwm"),
                [a, b] => (*a, *a, *b),
                [a, b, c, ..] => (*a, *b, *c),
                [] => ("", "", ""),
            };
            json!({"PathOnHost": src, "PathInContainer": dst, "CgroupPermissions": perms})
        })
        .collect();
    let shm = spec["mounts"]
        .as_array()
        .and_then(|ms| ms.iter().find(|m| m["destination"] == "/dev/shm"))
        .and_then(|m| m["options"].as_array())
        .and_then(|o| {
            o.iter()
                .filter_map(Value::as_str)
                .find_map(|o| o.strip_prefix("size="))
                .and_then(|v| opts::parse_size("--shm-size", v).ok())
        });
    let sysctls: serde_json::Map<String, Value> = x
        .sysctls
        .iter()
        .filter_map(|s| s.split_once('='))
        .map(|(k, v)| (k.to_string(), json!(v)))
        .collect();
    let mode = |v: &Option<String>, default: &str| v.clone().unwrap_or_else(|| default.into());
    let (driver, _) = log_config(x).unwrap_or((
        LogDriver::File,
        crate::logs::LogLimits {
            max_size: 0,
            max_file: 1,
            off: false,
        },
    ));
    let mut log_opts = serde_json::Map::new();
    for o in &x.log_opts {
        if let Some((k, v)) = o.split_once('=') {
            log_opts.insert(k.into(), json!(v));
        }
    }
    let host = &mut doc["HostConfig"];
    host["Ulimits"] = json!(ulimits);
    host["Devices"] = json!(devices);
    host["DeviceCgroupRules"] = json!(x.device_cgroup_rules);
    host["ShmSize"] = json!(shm);
    host["Sysctls"] = Value::Object(sysctls);
    host["GroupAdd"] = json!(x.group_add);
    host["IpcMode"] = json!(mode(&x.ipc, "private"));
    host["PidMode"] = json!(mode(&x.pid, ""));
    host["UTSMode"] = json!(mode(&x.uts, ""));
    host["PublishAllPorts"] = json!(x.publish_all);
    host["MemorySwap"] = res["memory"]["swap"].clone();
    host["MemoryReservation"] = res["memory"]["reservation"].clone();
    host["OomKillDisable"] = json!(x.oom_kill_disable);
    host["OomScoreAdj"] = json!(x.oom_score_adj.unwrap_or(0));
    host["CpusetCpus"] = json!(x.cpuset_cpus.clone().unwrap_or_default());
    host["CpusetMems"] = json!(x.cpuset_mems.clone().unwrap_or_default());
    host["CpuPeriod"] = json!(res["cpu"]["period"].as_u64().unwrap_or(0));
    host["CpuQuota"] = json!(res["cpu"]["quota"].as_i64().unwrap_or(0));
    host["BlkioWeight"] = json!(x.blkio_weight.unwrap_or(0));
    host["LogConfig"] = json!({
        "Type": match driver {
            LogDriver::File => x.log_driver.clone().unwrap_or_else(|| "k8s-file".into()),
            LogDriver::None => "none".into(),
            LogDriver::Passthrough => "passthrough".into(),
        },
        "Config": log_opts,
    });
    let c = &mut doc["Config"];
    c["StopTimeout"] = json!(x.stop_timeout.unwrap_or(DEFAULT_STOP_TIMEOUT));
    c["Healthcheck"] = cfg
        .health
        .as_ref()
        .and_then(|h| serde_json::to_value(h).ok())
        .unwrap_or(Value::Null);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn caps_all() {
        let (a, d) = expand_caps(&[], &["all".into()]);
        assert!(a.is_empty() && d.contains(&"CAP_CHOWN".to_string()));
        let (a, d) = expand_caps(&["net_admin".into()], &["CAP_ALL".into()]);
        assert_eq!(a, vec!["CAP_NET_ADMIN".to_string()]);
        assert!(!d.contains(&"CAP_NET_ADMIN".to_string()));
        let (a, d) = expand_caps(&["ALL".into()], &["kill".into()]);
        assert!(a.contains(&"CAP_SYS_ADMIN".to_string()));
        assert_eq!(d, vec!["CAP_KILL".to_string()]);
    }

    #[test]
    fn ulimits_rules_ns() {
        assert_eq!(
            parse_ulimit("nofile=100:200").unwrap(),
            json!({"type": "RLIMIT_NOFILE", "soft": 100, "hard": 200})
        );
        assert_eq!(parse_ulimit("nproc=-1").unwrap()["hard"], json!(u64::MAX));
        assert!(parse_ulimit("bogus=1").is_err());
        assert!(parse_ulimit("nofile=2:1").is_err());
        assert_eq!(
            crate::devices::parse_device_rule("c 1:* rm").unwrap(),
            json!({"allow": true, "type": "c", "major": 1, "access": "rm"})
        );
        assert!(crate::devices::parse_device_rule("x 1:3 r").is_err());
        assert!(crate::devices::parse_device_rule("c 1:3 q").is_err());
        assert_eq!(parse_ns("--ipc", Some("shareable")), Ok(NsMode::Private));
        assert_eq!(
            parse_ns("--pid", Some("container:a")),
            Ok(NsMode::Container("a".into()))
        );
        assert!(parse_ns("--uts", Some("container:a")).is_err());
        let x = ExtraOptions {
            expose: vec!["81-82/udp".into(), "80".into()],
            ..Default::default()
        };
        assert_eq!(
            publish_all(&x, &["80/tcp".into()]).unwrap(),
            vec!["80/tcp", "81-82/udp"]
        );
        let bad = ExtraOptions {
            expose: vec!["x".into()],
            ..Default::default()
        };
        assert!(check_expose(&bad).is_err());
    }
}
