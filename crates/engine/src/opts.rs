//! `berth run`/`create` options as the user gives them, and the plain
//! parsers that turn each flag's text into values (no I/O here).

use std::collections::BTreeMap;
use std::path::PathBuf;

use serde::{Deserialize, Serialize};

/// Errors of parsing run options.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum OptsError {
    #[error("invalid {flag} value {value:?}: {why}")]
    Invalid {
        flag: &'static str,
        value: String,
        why: String,
    },
    #[error("{0} is not supported by berth yet")]
    Unsupported(String),
}

fn invalid(flag: &'static str, value: &str, why: impl Into<String>) -> OptsError {
    OptsError::Invalid {
        flag,
        value: value.into(),
        why: why.into(),
    }
}

/// Everything `berth create`/`run` was asked for.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct RunOptions {
    pub name: Option<String>,
    pub image: String,
    pub cmd: Vec<String>,
    pub entrypoint: Option<String>,
    /// `-e K=V` or `-e K` (taken from the caller's environment).
    pub env: Vec<String>,
    pub env_files: Vec<PathBuf>,
    pub workdir: Option<String>,
    pub user: Option<String>,
    pub hostname: Option<String>,
    pub volumes: Vec<String>,
    pub mounts: Vec<String>,
    /// `--volumes-from CONTAINER[:ro|rw]`.
    #[serde(default)]
    pub volumes_from: Vec<String>,
    pub tmpfs: Vec<String>,
    pub read_only: bool,
    pub memory: Option<String>,
    pub cpus: Option<String>,
    pub cpu_shares: Option<u64>,
    pub pids_limit: Option<i64>,
    pub cap_add: Vec<String>,
    pub cap_drop: Vec<String>,
    pub security_opt: Vec<String>,
    pub privileged: bool,
    pub init: bool,
    /// `--init-path`: the init binary on the host (with `--init`).
    #[serde(default)]
    pub init_path: Option<PathBuf>,
    pub restart: Option<String>,
    pub labels: Vec<String>,
    pub network: Option<String>,
    /// `-p/--publish`.
    #[serde(default)]
    pub publish: Vec<String>,
    /// `--ip`: the address asked for on the network.
    #[serde(default)]
    pub ip: Option<String>,
    /// `--network-alias`.
    #[serde(default)]
    pub network_aliases: Vec<String>,
    /// `--dns`, `--dns-search`, `--dns-option`.
    #[serde(default)]
    pub dns: Vec<String>,
    #[serde(default)]
    pub dns_search: Vec<String>,
    #[serde(default)]
    pub dns_option: Vec<String>,
    /// `--add-host NAME:IP`.
    #[serde(default)]
    pub add_host: Vec<String>,
    pub interactive: bool,
    /// Docker's StdinOnce (the API's `docker run -i`): the monitor closes
    /// the container's stdin once an attach client leaves.
    #[serde(default)]
    pub stdin_once: bool,
    pub tty: bool,
    pub rm: bool,
    /// Absolute cgroup parent; the container's cgroup is `<parent>/<id>`.
    pub cgroup_parent: String,
    /// The flags of [`crate::flags`] (ulimits, devices, namespaces, ...).
    #[serde(default)]
    pub extra: crate::flags::ExtraOptions,
    /// `--pod`: the pod's name or ID as given; `create` records the
    /// pod's full ID here.
    #[serde(default)]
    pub pod: Option<String>,
    /// `--userns`, `--uidmap`, `--gidmap`.
    #[serde(default)]
    pub userns: crate::userns::UsernsOptions,
}

/// A restart policy (Docker's `--restart`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum RestartPolicy {
    No,
    /// Restart whatever the exit code. Docker also restarts a container
    /// the user stopped when its daemon starts again; berth has no daemon,
    /// so a user's stop holds until `berth start`, as with `UnlessStopped`.
    Always,
    /// Restart whatever the exit code, unless the user stopped it
    /// (`berth stop`/`kill`): that stop always holds.
    UnlessStopped,
    /// Restart on a non-zero exit, at most `max` times (0 = no limit).
    OnFailure {
        max: u32,
    },
}

impl RestartPolicy {
    /// Whether a container that exited with `code` after `restarts`
    /// restarts is started again; `stopped_by_user` says `berth stop` or
    /// `kill` ended it, which no policy overrides while the engine runs.
    pub fn should_restart(self, code: i32, restarts: u32, stopped_by_user: bool) -> bool {
        if stopped_by_user {
            return false;
        }
        match self {
            RestartPolicy::No => false,
            RestartPolicy::Always | RestartPolicy::UnlessStopped => true,
            RestartPolicy::OnFailure { max } => code != 0 && (max == 0 || restarts < max),
        }
    }

    /// Docker's name of the policy (inspect's HostConfig.RestartPolicy).
    pub fn name(self) -> &'static str {
        match self {
            RestartPolicy::No => "no",
            RestartPolicy::Always => "always",
            RestartPolicy::UnlessStopped => "unless-stopped",
            RestartPolicy::OnFailure { .. } => "on-failure",
        }
    }

    /// The retry limit of `on-failure:N` (0 otherwise or without a limit).
    pub fn maximum_retry_count(self) -> u32 {
        match self {
            RestartPolicy::OnFailure { max } => max,
            _ => 0,
        }
    }
}

/// `--restart no|always|unless-stopped|on-failure[:N]`.
pub fn parse_restart(s: &str) -> Result<RestartPolicy, OptsError> {
    match s {
        "" | "no" => Ok(RestartPolicy::No),
        "always" => Ok(RestartPolicy::Always),
        "unless-stopped" => Ok(RestartPolicy::UnlessStopped),
        "on-failure" => Ok(RestartPolicy::OnFailure { max: 0 }),
        other => match other.strip_prefix("on-failure:") {
            Some(n) => n
                .parse()
                .map(|max| RestartPolicy::OnFailure { max })
                .map_err(|_| invalid("--restart", s, "the retry count must be a number")),
            None => Err(invalid(
                "--restart",
                s,
                "use no, always, unless-stopped or on-failure[:N]",
            )),
        },
    }
}

/// `-e K=V` / `-e K`: with no `=`, the value comes from `lookup` (the
/// caller's environment); unset there means the variable is dropped.
pub fn parse_env(s: &str, lookup: impl Fn(&str) -> Option<String>) -> Option<(String, String)> {
    match s.split_once('=') {
        Some((k, v)) => Some((k.to_string(), v.to_string())),
        None => lookup(s).map(|v| (s.to_string(), v)),
    }
}

/// Lines of an `--env-file`: `K=V` or `K`, `#` comments and blank lines
/// skipped.
pub fn env_file_entries(text: &str) -> Vec<String> {
    text.lines()
        .map(str::trim_start)
        .filter(|l| !l.is_empty() && !l.starts_with('#'))
        .map(str::to_string)
        .collect()
}

/// Sets `key=value` in an env list, replacing an earlier value.
pub fn set_env(env: &mut Vec<String>, key: &str, value: &str) {
    let prefix = format!("{key}=");
    env.retain(|e| !e.starts_with(&prefix) && e != key);
    env.push(format!("{key}={value}"));
}

/// Whether `key` is set in an env list.
pub fn has_env(env: &[String], key: &str) -> bool {
    env.iter()
        .any(|e| e.split_once('=').map(|(k, _)| k) == Some(key))
}

/// `--label K=V` (or `K`, an empty value).
pub fn parse_labels(items: &[String]) -> BTreeMap<String, String> {
    items
        .iter()
        .map(|l| match l.split_once('=') {
            Some((k, v)) => (k.to_string(), v.to_string()),
            None => (l.clone(), String::new()),
        })
        .collect()
}

/// A mount asked for with `-v`, `--mount` or `--tmpfs`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct MountRequest {
    /// "bind" or "tmpfs".
    pub kind: String,
    pub source: Option<PathBuf>,
    pub target: String,
    /// The OCI mount options (config.md "mounts").
    pub options: Vec<String>,
    /// podman's `:U`: chown the host source, recursively, to the
    /// container's user and group before it starts.
    #[serde(default)]
    pub chown: bool,
    /// `--mount ...,bind-create-src`: a missing host source is created
    /// (otherwise it is an error).
    #[serde(default)]
    pub create_source: bool,
}

fn check_target(flag: &'static str, value: &str, target: &str) -> Result<(), OptsError> {
    if !target.starts_with('/') {
        return Err(invalid(flag, value, "the container path must be absolute"));
    }
    Ok(())
}

/// The bind propagation words Docker and podman take (runtime-spec
/// config-linux.md "rootfsPropagation" values).
const PROPAGATIONS: [&str; 6] = [
    "rprivate", "private", "rshared", "shared", "rslave", "slave",
];

/// `z`/`Z` ask for an SELinux relabel; berth has no SELinux support, so
/// they are accepted and ignored, as Docker does on a host without it.
fn ignore_relabel(flag: &str, opt: &str) {
    tracing::debug!("{flag}: option {opt:?} ignored: SELinux relabelling is not supported");
}

/// Options of a bind mount: `rbind` (or `bind`), the read-only flag and
/// exactly one propagation (Docker's default `rprivate`).
fn bind_options(recursive: bool, readonly: Option<bool>, propagation: Option<&str>) -> Vec<String> {
    let mut options = vec![if recursive { "rbind" } else { "bind" }.to_string()];
    if let Some(ro) = readonly {
        options.push(if ro { "ro" } else { "rw" }.into());
    }
    options.push(propagation.unwrap_or("rprivate").into());
    options
}

/// `-v /host:/ctr[:OPTS]` (host binds; named and anonymous volumes are
/// taken out first by [`crate::volumes::plan`]). OPTS, comma separated:
/// `ro`/`rw`, one propagation (`rprivate` by default, `private`,
/// `rshared`, `shared`, `rslave`, `slave`), `z`/`Z` (ignored: no SELinux),
/// `U` (podman: chown the source to the container's user), `bind`/`rbind`.
pub fn parse_volume(s: &str) -> Result<MountRequest, OptsError> {
    let parts: Vec<&str> = s.split(':').collect();
    let (src, dst, opts) = match parts.as_slice() {
        [src, dst] => (*src, *dst, ""),
        [src, dst, opts] => (*src, *dst, *opts),
        [_] => return Err(OptsError::Unsupported(format!("anonymous volume -v {s}"))),
        _ => return Err(invalid("-v", s, "use /host/path:/container/path[:ro]")),
    };
    if !src.starts_with('/') {
        return Err(OptsError::Unsupported(format!(
            "named volume {src:?} in -v {s} (only /host/path binds)"
        )));
    }
    check_target("-v", s, dst)?;
    let (mut readonly, mut propagation, mut recursive, mut chown) = (None, None, true, false);
    for o in opts.split(',').filter(|o| !o.is_empty()) {
        match o {
            "ro" => readonly = Some(true),
            "rw" => readonly = Some(false),
            p if PROPAGATIONS.contains(&p) => {
                if propagation.is_some_and(|q| q != p) {
                    return Err(invalid("-v", s, "give at most one propagation option"));
                }
                propagation = Some(p);
            }
            "z" | "Z" => ignore_relabel("-v", o),
            "U" => chown = true,
            "bind" => recursive = false,
            "rbind" => recursive = true,
            other => {
                return Err(invalid(
                    "-v",
                    s,
                    format!(
                    "unknown option {other:?} (berth knows ro, rw, z, Z, U, bind, rbind and {})",
                    PROPAGATIONS.join(", ")
                ),
                ))
            }
        }
    }
    Ok(MountRequest {
        kind: "bind".into(),
        source: Some(PathBuf::from(src)),
        target: dst.into(),
        options: bind_options(recursive, readonly, propagation),
        chown,
        create_source: false,
    })
}

/// `--tmpfs /path[:opts]`.
pub fn parse_tmpfs(s: &str) -> Result<MountRequest, OptsError> {
    let (dst, opts) = s.split_once(':').unwrap_or((s, ""));
    check_target("--tmpfs", s, dst)?;
    let mut options: Vec<String> = vec!["nosuid".into(), "nodev".into()];
    options.extend(
        opts.split(',')
            .filter(|o| !o.is_empty())
            .map(str::to_string),
    );
    Ok(MountRequest {
        kind: "tmpfs".into(),
        source: None,
        target: dst.into(),
        options,
        chown: false,
        create_source: false,
    })
}

/// A boolean `--mount` value: empty (the key alone), true/false, 1/0.
fn mount_bool(s: &str, key: &str, v: &str) -> Result<bool, OptsError> {
    match v {
        "" | "true" | "1" => Ok(true),
        "false" | "0" => Ok(false),
        _ => Err(invalid("--mount", s, format!("{key}= takes true or false"))),
    }
}

/// `--mount type=bind,source=/a,target=/b[,readonly][,bind-propagation=P]
/// [,bind-nonrecursive][,bind-recursive=enabled|disabled][,bind-create-src]
/// [,U|chown][,relabel=shared|private]` or
/// `--mount type=tmpfs,target=/t[,tmpfs-size=N][,tmpfs-mode=O]`.
pub fn parse_mount(s: &str) -> Result<MountRequest, OptsError> {
    let mut kind = None;
    let mut source = None;
    let mut target = None;
    let mut readonly = None;
    let mut propagation = None;
    let mut recursive = true;
    let mut chown = false;
    let mut create_source = false;
    let mut tmpfs_options = Vec::new();
    let mut bind_only = Vec::new();
    for kv in s.split(',') {
        let (k, v) = kv.split_once('=').unwrap_or((kv, ""));
        match k {
            "type" => kind = Some(v.to_string()),
            "source" | "src" => source = Some(PathBuf::from(v)),
            "target" | "destination" | "dst" => target = Some(v.to_string()),
            "readonly" | "ro" => readonly = Some(mount_bool(s, k, v)?),
            "tmpfs-size" => tmpfs_options.push(format!("size={v}")),
            "tmpfs-mode" => tmpfs_options.push(format!("mode={v}")),
            "bind-propagation" => {
                if !PROPAGATIONS.contains(&v) {
                    return Err(invalid(
                        "--mount",
                        s,
                        format!(
                            "bind-propagation must be one of {}",
                            PROPAGATIONS.join(", ")
                        ),
                    ));
                }
                propagation = Some(v);
                bind_only.push(k);
            }
            "bind-nonrecursive" => {
                recursive = !mount_bool(s, k, v)?;
                bind_only.push(k);
            }
            "bind-recursive" => {
                recursive = match v {
                    "enabled" => true,
                    "disabled" => false,
                    "writable" | "readonly" => {
                        return Err(OptsError::Unsupported(format!(
                            "--mount bind-recursive={v} (use enabled or disabled)"
                        )))
                    }
                    _ => {
                        return Err(invalid(
                            "--mount",
                            s,
                            "bind-recursive takes enabled or disabled",
                        ))
                    }
                };
                bind_only.push(k);
            }
            "bind-create-src" => {
                create_source = mount_bool(s, k, v)?;
                bind_only.push(k);
            }
            "U" | "chown" => {
                chown = mount_bool(s, k, v)?;
                bind_only.push(k);
            }
            "z" | "Z" => ignore_relabel("--mount", k),
            "relabel" if matches!(v, "shared" | "private") => ignore_relabel("--mount", kv),
            "consistency" => {}
            other => return Err(invalid("--mount", s, format!("unknown key {other:?}"))),
        }
    }
    let target = target.ok_or_else(|| invalid("--mount", s, "target= is required"))?;
    check_target("--mount", s, &target)?;
    match kind.as_deref() {
        Some("bind") => {
            let src = source.ok_or_else(|| invalid("--mount", s, "source= is required"))?;
            if !src.is_absolute() {
                return Err(invalid(
                    "--mount",
                    s,
                    "source must be an absolute host path",
                ));
            }
            if !tmpfs_options.is_empty() {
                return Err(invalid("--mount", s, "tmpfs-* keys need type=tmpfs"));
            }
            Ok(MountRequest {
                kind: "bind".into(),
                source: Some(src),
                target,
                options: bind_options(recursive, readonly.filter(|ro| *ro), propagation),
                chown,
                create_source,
            })
        }
        Some("tmpfs") => {
            if let Some(k) = bind_only.first() {
                return Err(invalid("--mount", s, format!("{k} needs type=bind")));
            }
            let mut options: Vec<String> = vec!["nosuid".into(), "nodev".into()];
            options.extend(tmpfs_options);
            if readonly == Some(true) {
                options.push("ro".into());
            }
            Ok(MountRequest {
                kind: "tmpfs".into(),
                source: None,
                target,
                options,
                chown: false,
                create_source: false,
            })
        }
        Some(other) => Err(OptsError::Unsupported(format!("--mount type={other}"))),
        None => Err(invalid("--mount", s, "type= is required (bind or tmpfs)")),
    }
}

/// A size such as `512m`, `1g`, `1048576` (Docker's binary units).
pub fn parse_size(flag: &'static str, s: &str) -> Result<i64, OptsError> {
    let t = s.trim().to_ascii_lowercase();
    let t = t.strip_suffix('b').unwrap_or(&t);
    let (num, mult) = match t.chars().last() {
        Some('k') => (&t[..t.len() - 1], 1i64 << 10),
        Some('m') => (&t[..t.len() - 1], 1 << 20),
        Some('g') => (&t[..t.len() - 1], 1 << 30),
        Some('t') => (&t[..t.len() - 1], 1 << 40),
        _ => (t, 1),
    };
    let n: f64 = num
        .parse()
        .map_err(|_| invalid(flag, s, "use a number with an optional k, m, g suffix"))?;
    if n.is_nan() || n <= 0.0 {
        return Err(invalid(flag, s, "must be positive"));
    }
    Ok((n * mult as f64) as i64)
}

/// `--cpus 1.5` as a CFS (quota, period) pair with Docker's 100ms period.
pub fn parse_cpus(s: &str) -> Result<(i64, u64), OptsError> {
    let n: f64 = s
        .parse()
        .map_err(|_| invalid("--cpus", s, "use a decimal number of CPUs"))?;
    if n.is_nan() || n <= 0.0 {
        return Err(invalid("--cpus", s, "must be positive"));
    }
    let period = 100_000u64;
    Ok(((n * period as f64).round() as i64, period))
}

/// What `--security-opt` asked for.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SecurityOpts {
    pub no_new_privileges: bool,
    pub seccomp_unconfined: bool,
    pub seccomp_file: Option<PathBuf>,
    /// `masked-paths=P1:P2` (berth's own): replaces the default masked
    /// paths (the CRI's LinuxContainerSecurityContext.masked_paths).
    pub masked_paths: Option<Vec<String>>,
    /// `readonly-paths=P1:P2` (berth's own): replaces the default
    /// read-only paths (the CRI's readonly_paths).
    pub readonly_paths: Option<Vec<String>>,
}

/// `--security-opt no-new-privileges[=true]|seccomp=unconfined|seccomp=FILE|
/// masked-paths=P1:P2|readonly-paths=P1:P2`.
pub fn parse_security_opts(items: &[String]) -> Result<SecurityOpts, OptsError> {
    let mut o = SecurityOpts::default();
    for s in items {
        let (k, v) = s.split_once(['=', ':']).unwrap_or((s, ""));
        match (k, v) {
            ("no-new-privileges", "" | "true") => o.no_new_privileges = true,
            ("no-new-privileges", "false") => o.no_new_privileges = false,
            ("seccomp", "unconfined") => o.seccomp_unconfined = true,
            ("seccomp", f) if !f.is_empty() => o.seccomp_file = Some(PathBuf::from(f)),
            ("masked-paths" | "readonly-paths", list) => {
                let paths: Vec<String> = list
                    .split(':')
                    .filter(|p| !p.is_empty())
                    .map(String::from)
                    .collect();
                if let Some(bad) = paths.iter().find(|p| !p.starts_with('/')) {
                    return Err(invalid(
                        "--security-opt",
                        s,
                        format!("{bad} is not an absolute path"),
                    ));
                }
                if k == "masked-paths" {
                    o.masked_paths = Some(paths);
                } else {
                    o.readonly_paths = Some(paths);
                }
            }
            _ => {
                return Err(OptsError::Unsupported(format!("--security-opt {s}")));
            }
        }
    }
    Ok(o)
}

/// `--cap-add NET_ADMIN` / `CAP_NET_ADMIN` as the spec's `CAP_` name.
pub fn cap_name(s: &str) -> String {
    let up = s.to_ascii_uppercase();
    if up.starts_with("CAP_") {
        up
    } else {
        format!("CAP_{up}")
    }
}

/// How a container is networked (`--network`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum NetworkMode {
    /// Its own namespace with only loopback.
    None,
    /// The host's namespace.
    Host,
    /// Its own namespace on these bridge networks (at least one; the
    /// first one gets `eth0`, the default route and the published ports).
    Bridge(Vec<String>),
    /// The namespace of another container (name or ID).
    Container(String),
    /// Its own namespace connected by a user-mode helper of the engine's
    /// (`slirp4netns[:OPTIONS]` or `pasta[:OPTIONS]`): no bridge, no
    /// nftables, nothing that needs root.
    UserMode(berth_network::usermode::Mode),
}

impl NetworkMode {
    /// The bridge networks, first one first (empty for other modes).
    pub fn bridges(&self) -> &[String] {
        match self {
            NetworkMode::Bridge(n) => n,
            _ => &[],
        }
    }
}

/// `--network`: a network name (default: the default bridge network;
/// `bridge` is its Docker alias), `none`, `host`, `container:NAME`, or
/// several bridge networks as a comma list (`a,b`: the CLI joins repeated
/// `--network` flags so).
pub fn parse_network(s: Option<&str>) -> Result<NetworkMode, OptsError> {
    let text = s.unwrap_or("");
    // `slirp4netns:a=b,c=d`: the commas separate its options.
    if let Some(m) = berth_network::usermode::Mode::parse(text.trim()) {
        return m
            .map(NetworkMode::UserMode)
            .map_err(|e| invalid("--network", text, e.to_string()));
    }
    let items: Vec<&str> = text.split(',').map(str::trim).collect();
    if items.len() > 1 {
        let mut names: Vec<String> = Vec::new();
        for item in &items {
            if item.is_empty() {
                return Err(invalid(
                    "--network",
                    text,
                    "an empty network name in the list",
                ));
            }
            let alone = match parse_one_network(item)? {
                NetworkMode::Bridge(mut n) => {
                    let n = n.pop().expect("one network");
                    if names.contains(&n) {
                        return Err(invalid(
                            "--network",
                            text,
                            format!("network {n} is given twice; name each network once"),
                        ));
                    }
                    names.push(n);
                    continue;
                }
                _ => item,
            };
            let others: Vec<&str> = items.iter().copied().filter(|i| i != item).collect();
            return Err(invalid(
                "--network",
                text,
                format!(
                    "--network {alone} cannot be used together with --network {}: \
                     {alone} stands alone, only bridge networks combine",
                    others.join(" --network ")
                ),
            ));
        }
        return Ok(NetworkMode::Bridge(names));
    }
    parse_one_network(text)
}

fn parse_one_network(s: &str) -> Result<NetworkMode, OptsError> {
    match s {
        "" | "bridge" | "default" => Ok(NetworkMode::Bridge(vec![
            crate::networks::DEFAULT_NETWORK.into(),
        ])),
        "none" => Ok(NetworkMode::None),
        "host" => Ok(NetworkMode::Host),
        other => match other.split_once(':') {
            Some(("container", t)) if !t.is_empty() => Ok(NetworkMode::Container(t.into())),
            Some((kind, _)) => Err(OptsError::Unsupported(format!(
                "--network {kind}:... (use a network name, none, host or container:NAME)"
            ))),
            None => Ok(NetworkMode::Bridge(vec![other.into()])),
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn restart_policies() {
        assert_eq!(parse_restart("no"), Ok(RestartPolicy::No));
        assert_eq!(parse_restart("always"), Ok(RestartPolicy::Always));
        assert_eq!(
            parse_restart("on-failure:3"),
            Ok(RestartPolicy::OnFailure { max: 3 })
        );
        assert_eq!(
            parse_restart("unless-stopped"),
            Ok(RestartPolicy::UnlessStopped)
        );
        assert!(parse_restart("on-failure:x").is_err());
        assert!(parse_restart("sometimes").is_err());
        let p = RestartPolicy::OnFailure { max: 2 };
        assert!(p.should_restart(1, 0, false) && p.should_restart(1, 1, false));
        assert!(!p.should_restart(1, 2, false) && !p.should_restart(0, 0, false));
        assert!(!p.should_restart(1, 0, true));
        assert!(RestartPolicy::Always.should_restart(0, 100, false));
        let u = RestartPolicy::UnlessStopped;
        assert!(u.should_restart(0, 100, false) && u.should_restart(1, 0, false));
        assert!(!u.should_restart(1, 0, true), "a user's stop holds");
        assert!(!RestartPolicy::No.should_restart(1, 0, false));
        assert_eq!(u.name(), "unless-stopped");
        assert_eq!(p.name(), "on-failure");
        assert_eq!(p.maximum_retry_count(), 2);
    }

    #[test]
    fn env_parsing() {
        let look = |k: &str| (k == "HOME").then(|| "/root".to_string());
        assert_eq!(parse_env("A=b=c", look), Some(("A".into(), "b=c".into())));
        assert_eq!(
            parse_env("HOME", look),
            Some(("HOME".into(), "/root".into()))
        );
        assert_eq!(parse_env("NOPE", look), None);
        assert_eq!(
            env_file_entries("# c\n\nA=1\n  B=2\n"),
            vec!["A=1".to_string(), "B=2".to_string()]
        );
        let mut env = vec!["PATH=/bin".to_string(), "A=1".to_string()];
        set_env(&mut env, "A", "2");
        assert_eq!(env, vec!["PATH=/bin".to_string(), "A=2".to_string()]);
        assert!(has_env(&env, "PATH") && !has_env(&env, "PAT"));
    }

    #[test]
    fn volumes_and_mounts() {
        let v = parse_volume("/h:/c:ro").expect("volume");
        assert_eq!(v.kind, "bind");
        assert_eq!(v.options, vec!["rbind", "ro", "rprivate"]);
        assert!(!v.chown && !v.create_source);
        let v = parse_volume("/h:/c:rshared,U,z").expect("volume");
        assert_eq!(v.options, vec!["rbind", "rshared"]);
        assert!(v.chown);
        let v = parse_volume("/h:/c:rw,slave,bind").expect("volume");
        assert_eq!(v.options, vec!["bind", "rw", "slave"]);
        assert!(parse_volume("/h:/c:shared,rslave").is_err());
        let e = parse_volume("/h:/c:bogus").unwrap_err().to_string();
        assert!(e.contains("\"bogus\"") && e.contains("rshared"), "{e}");
        assert!(matches!(
            parse_volume("data:/c"),
            Err(OptsError::Unsupported(_))
        ));
        assert!(parse_volume("/h:rel").is_err());
        let m = parse_mount("type=bind,source=/a,target=/b,readonly").expect("mount");
        assert_eq!(
            (m.target.as_str(), m.options.clone()),
            ("/b", vec!["rbind".into(), "ro".into(), "rprivate".into()])
        );
        let m = parse_mount(
            "type=bind,src=/a,dst=/b,bind-propagation=rslave,bind-nonrecursive,U,bind-create-src",
        )
        .expect("mount");
        assert_eq!(m.options, vec!["bind", "rslave"]);
        assert!(m.chown && m.create_source);
        let m = parse_mount("type=bind,src=/a,dst=/b,readonly=false,bind-recursive=disabled")
            .expect("mount");
        assert_eq!(m.options, vec!["bind", "rprivate"]);
        assert!(parse_mount("type=bind,src=/a,dst=/b,bind-propagation=weird").is_err());
        assert!(parse_mount("type=bind,src=/a,dst=/b,tmpfs-size=1m").is_err());
        assert!(parse_mount("type=tmpfs,dst=/b,bind-propagation=shared").is_err());
        assert!(matches!(
            parse_mount("type=bind,src=/a,dst=/b,bind-recursive=readonly"),
            Err(OptsError::Unsupported(_))
        ));
        let t = parse_mount("type=tmpfs,target=/t,tmpfs-size=1m").expect("tmpfs");
        assert_eq!(t.options, vec!["nosuid", "nodev", "size=1m"]);
        assert!(parse_mount("type=volume,target=/x").is_err());
        assert!(parse_mount("type=bind,target=/x").is_err());
        let t = parse_tmpfs("/run:size=64k").expect("tmpfs");
        assert_eq!(t.options, vec!["nosuid", "nodev", "size=64k"]);
    }

    #[test]
    fn sizes_cpus_security_network() {
        assert_eq!(parse_size("--memory", "512m"), Ok(512 << 20));
        assert_eq!(parse_size("--memory", "1g"), Ok(1 << 30));
        assert_eq!(parse_size("--memory", "4096"), Ok(4096));
        assert!(parse_size("--memory", "lots").is_err());
        assert!(parse_size("--memory", "0").is_err());
        assert_eq!(parse_cpus("1.5"), Ok((150_000, 100_000)));
        assert!(parse_cpus("-1").is_err());
        let s = parse_security_opts(&["no-new-privileges".into(), "seccomp=unconfined".into()])
            .expect("opts");
        assert!(s.no_new_privileges && s.seccomp_unconfined);
        assert!(parse_security_opts(&["apparmor=x".into()]).is_err());
        assert_eq!(cap_name("net_admin"), "CAP_NET_ADMIN");
        assert_eq!(cap_name("CAP_KILL"), "CAP_KILL");
        let bridge = |n: &[&str]| NetworkMode::Bridge(n.iter().map(|s| s.to_string()).collect());
        assert_eq!(parse_network(None), Ok(bridge(&["berth"])));
        assert_eq!(parse_network(Some("bridge")), Ok(bridge(&["berth"])));
        assert_eq!(parse_network(Some("none")), Ok(NetworkMode::None));
        assert_eq!(parse_network(Some("host")), Ok(NetworkMode::Host));
        assert_eq!(parse_network(Some("front")), Ok(bridge(&["front"])));
        assert_eq!(
            parse_network(Some("container:web")),
            Ok(NetworkMode::Container("web".into()))
        );
        assert!(parse_network(Some("ns:/x")).is_err());
        assert_eq!(parse_network(Some("a,b")), Ok(bridge(&["a", "b"])));
        assert_eq!(parse_network(Some("a,bridge")), Ok(bridge(&["a", "berth"])));
        assert!(parse_network(Some("a,a")).is_err());
        assert!(parse_network(Some("a,")).is_err());
        for mixed in ["none,a", "a,host", "a,container:web", "none,host"] {
            let e = parse_network(Some(mixed)).expect_err(mixed).to_string();
            assert!(e.contains("cannot be used together with"), "{mixed}: {e}");
        }
        assert_eq!(
            parse_labels(&["a=1".into(), "b".into()]),
            BTreeMap::from([("a".into(), "1".into()), ("b".into(), String::new())])
        );
    }
}
