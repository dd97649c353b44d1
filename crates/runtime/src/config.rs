//! config.json (runtime-spec config.md, config-linux.md) validated once into
//! berth's internal [`ContainerConfig`]. The code that touches the kernel only
//! ever sees a checked config: every refusal happens here, before anything is
//! created.

use crate::mount_opts::{self, MountOptions};
use nix::mount::MsFlags;
use oci_spec::runtime::{
    LinuxIdMapping, LinuxNamespaceType, LinuxResources, LinuxSeccomp, Process, Spec,
};
use std::collections::{BTreeMap, HashSet};
use std::path::{Path, PathBuf};

mod process;
pub use process::{oci_cap_to_caps, process_config, rlimit_resource};

/// Why a config.json (or a process.json for exec) was refused.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("cannot read {path}: {source}")]
    Read {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("cannot open bundle {path}: {source}")]
    Bundle {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("invalid {path}: {message}")]
    Parse { path: PathBuf, message: String },
    #[error("unsupported ociVersion {0:?}: berth implements runtime-spec 1.x")]
    Version(String),
    #[error("config.json has no {0} section; it is required on Linux")]
    Missing(&'static str),
    #[error("root.path {path:?} does not exist or is not a directory (resolved to {resolved})")]
    Rootfs { path: PathBuf, resolved: PathBuf },
    #[error("namespace {0} is listed more than once")]
    DuplicateNamespace(String),
    #[error("namespace {kind} path {path:?} must be absolute")]
    NamespacePath { kind: String, path: PathBuf },
    #[error("{0} namespace cannot be joined by path and also given uid/gid mappings")]
    MappingsWithJoinedUserns(&'static str),
    #[error("uid/gid mappings are given but no user namespace is requested")]
    MappingsWithoutUserns,
    #[error("a user namespace needs both uidMappings and gidMappings")]
    UsernsWithoutMappings,
    #[error("mount destination {0:?} must be an absolute path inside the container")]
    MountDestination(PathBuf),
    #[error("mount of type {typ:?} on {dest:?}: {why}")]
    Mount {
        typ: String,
        dest: PathBuf,
        why: String,
    },
    #[error("process.cwd {0:?} must be an absolute path")]
    Cwd(PathBuf),
    #[error("process.args is empty: there is nothing to run")]
    NoArgs,
    #[error("process.env entry {0:?} is not KEY=VALUE")]
    Env(String),
    #[error("unknown rlimit {0:?}")]
    Rlimit(String),
    #[error("rlimit {name}: soft limit {soft} is above hard limit {hard}")]
    RlimitOrder { name: String, soft: u64, hard: u64 },
    #[error("sysctl {key:?}: {why}")]
    Sysctl { key: String, why: String },
    #[error("device {path:?}: {why}")]
    Device { path: PathBuf, why: String },
    #[error("{what} {path:?} must be an absolute path")]
    RelativePath { what: &'static str, path: PathBuf },
    #[error("rootfsPropagation {0:?} is not one of shared, slave, private, unbindable (with optional r prefix)")]
    Propagation(String),
    #[error("hook {path:?} must be an absolute path")]
    Hook { path: PathBuf },
    #[error("hostname is set but the container has no new UTS namespace")]
    HostnameWithoutUts,
    #[error("timeOffsets need a new time namespace")]
    TimeOffsetsWithoutTimens,
    #[error("time offset clock {0:?} is not monotonic or boottime")]
    TimeClock(String),
    /// A setting that is wrong as given; the text names it.
    #[error("{0}")]
    Setting(String),
    #[error("{0} is not supported by berth yet")]
    Unsupported(String),
}

/// The namespaces the container has.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, serde::Serialize, serde::Deserialize,
)]
pub enum NsKind {
    User,
    Pid,
    Mount,
    Network,
    Ipc,
    Uts,
    Cgroup,
    Time,
}

impl NsKind {
    /// The name under /proc/PID/ns/.
    pub fn proc_name(self) -> &'static str {
        match self {
            NsKind::User => "user",
            NsKind::Pid => "pid",
            NsKind::Mount => "mnt",
            NsKind::Network => "net",
            NsKind::Ipc => "ipc",
            NsKind::Uts => "uts",
            NsKind::Cgroup => "cgroup",
            NsKind::Time => "time",
        }
    }

    /// The CLONE_NEW* flag.
    pub fn clone_flag(self) -> libc::c_int {
        match self {
            NsKind::User => libc::CLONE_NEWUSER,
            NsKind::Pid => libc::CLONE_NEWPID,
            NsKind::Mount => libc::CLONE_NEWNS,
            NsKind::Network => libc::CLONE_NEWNET,
            NsKind::Ipc => libc::CLONE_NEWIPC,
            NsKind::Uts => libc::CLONE_NEWUTS,
            NsKind::Cgroup => libc::CLONE_NEWCGROUP,
            NsKind::Time => libc::CLONE_NEWTIME,
        }
    }

    /// Joining order: the user namespace first (it owns the others), the
    /// mount namespace last (its paths are needed until then).
    pub const JOIN_ORDER: [NsKind; 8] = [
        NsKind::User,
        NsKind::Pid,
        NsKind::Network,
        NsKind::Ipc,
        NsKind::Uts,
        NsKind::Cgroup,
        NsKind::Time,
        NsKind::Mount,
    ];

    fn from_oci(t: LinuxNamespaceType) -> NsKind {
        match t {
            LinuxNamespaceType::User => NsKind::User,
            LinuxNamespaceType::Pid => NsKind::Pid,
            LinuxNamespaceType::Mount => NsKind::Mount,
            LinuxNamespaceType::Network => NsKind::Network,
            LinuxNamespaceType::Ipc => NsKind::Ipc,
            LinuxNamespaceType::Uts => NsKind::Uts,
            LinuxNamespaceType::Cgroup => NsKind::Cgroup,
            LinuxNamespaceType::Time => NsKind::Time,
        }
    }
}

/// Namespaces to create and to join (config-linux.md "Namespaces").
#[derive(Debug, Clone, Default)]
pub struct Namespaces {
    pub new: Vec<NsKind>,
    pub join: Vec<(NsKind, PathBuf)>,
}

impl Namespaces {
    pub fn creates(&self, k: NsKind) -> bool {
        self.new.contains(&k)
    }
    pub fn has(&self, k: NsKind) -> bool {
        self.creates(k) || self.join.iter().any(|(j, _)| *j == k)
    }
    /// CLONE_NEW* flags of the namespaces to create.
    pub fn new_flags(&self) -> libc::c_int {
        self.new.iter().fold(0, |f, k| f | k.clone_flag())
    }
}

/// One uid or gid mapping line.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct IdMap {
    pub container: u32,
    pub host: u32,
    pub size: u32,
}

impl IdMap {
    fn from_oci(m: &LinuxIdMapping) -> IdMap {
        IdMap {
            container: m.container_id(),
            host: m.host_id(),
            size: m.size(),
        }
    }
}

/// The text written to /proc/PID/{uid,gid}_map.
pub fn id_map_text(maps: &[IdMap]) -> String {
    maps.iter()
        .map(|m| format!("{} {} {}\n", m.container, m.host, m.size))
        .collect()
}

/// A mount of the container, validated.
#[derive(Debug, Clone)]
pub struct MountSpec {
    pub destination: PathBuf,
    pub typ: String,
    pub source: Option<PathBuf>,
    pub options: MountOptions,
    pub uid_mappings: Vec<IdMap>,
    pub gid_mappings: Vec<IdMap>,
}

impl MountSpec {
    pub fn is_bind(&self) -> bool {
        self.options.bind || self.typ == "bind"
    }
}

/// A device node to create (config-linux.md "Devices").
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeviceSpec {
    pub path: PathBuf,
    /// 'c', 'b', 'u' or 'p'.
    pub kind: char,
    pub major: i64,
    pub minor: i64,
    pub mode: u32,
    pub uid: u32,
    pub gid: u32,
}

/// Capability sets of a process; `None` in [`ProcessConfig`] leaves the
/// runtime's own capabilities as they are (runc's behaviour).
#[derive(Debug, Clone, Default)]
pub struct CapSets {
    pub bounding: Vec<caps::Capability>,
    pub effective: Vec<caps::Capability>,
    pub inheritable: Vec<caps::Capability>,
    pub permitted: Vec<caps::Capability>,
    pub ambient: Vec<caps::Capability>,
}

/// One rlimit.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Rlimit {
    pub resource: i32,
    pub soft: u64,
    pub hard: u64,
}

/// The container's (or an exec'd) process, validated.
#[derive(Debug, Clone)]
pub struct ProcessConfig {
    pub args: Vec<String>,
    pub env: Vec<String>,
    pub cwd: PathBuf,
    pub uid: u32,
    pub gid: u32,
    pub additional_gids: Vec<u32>,
    pub umask: Option<u32>,
    pub terminal: bool,
    pub console_size: Option<(u16, u16)>,
    pub caps: Option<CapSets>,
    pub rlimits: Vec<Rlimit>,
    pub no_new_privileges: bool,
    pub oom_score_adj: Option<i32>,
    pub apparmor_profile: Option<String>,
    pub selinux_label: Option<String>,
    /// `process.scheduler`.
    pub scheduler: Option<berth_sys::sched::SchedAttr>,
    /// `process.ioPriority`.
    pub io_priority: Option<crate::sched::IoPriority>,
}

/// One hook (config.md "POSIX-platform Hooks").
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct HookSpec {
    pub path: PathBuf,
    pub args: Vec<String>,
    pub env: Vec<String>,
    pub timeout: Option<u64>,
}

/// All hooks by kind.
#[derive(Debug, Clone, Default)]
pub struct Hooks {
    pub prestart: Vec<HookSpec>,
    pub create_runtime: Vec<HookSpec>,
    pub create_container: Vec<HookSpec>,
    pub start_container: Vec<HookSpec>,
    pub poststart: Vec<HookSpec>,
    pub poststop: Vec<HookSpec>,
}

/// Everything the runtime needs about a container, checked.
#[derive(Debug, Clone)]
pub struct ContainerConfig {
    pub oci_version: String,
    pub bundle: PathBuf,
    pub rootfs: PathBuf,
    pub root_readonly: bool,
    pub hostname: Option<String>,
    pub domainname: Option<String>,
    pub process: ProcessConfig,
    pub mounts: Vec<MountSpec>,
    pub namespaces: Namespaces,
    pub uid_mappings: Vec<IdMap>,
    pub gid_mappings: Vec<IdMap>,
    pub devices: Vec<DeviceSpec>,
    pub masked_paths: Vec<PathBuf>,
    pub readonly_paths: Vec<PathBuf>,
    pub rootfs_propagation: Option<MsFlags>,
    pub sysctl: BTreeMap<String, String>,
    pub personality_linux32: bool,
    pub time_offsets: Vec<(String, i64, u32)>,
    /// `linux.memoryPolicy`.
    pub memory_policy: Option<crate::sched::MemPolicy>,
    pub hooks: Hooks,
    pub cgroups_path: Option<String>,
    pub resources: Option<LinuxResources>,
    pub seccomp: Option<LinuxSeccomp>,
    pub annotations: BTreeMap<String, String>,
    /// The config's `process` as JSON: the default for `exec`.
    pub process_json: serde_json::Value,
}

/// Load `<bundle>/config.json` and validate it.
pub fn load(bundle: &Path) -> Result<ContainerConfig, ConfigError> {
    let path = bundle.join("config.json");
    let text = std::fs::read_to_string(&path).map_err(|source| ConfigError::Read {
        path: path.clone(),
        source,
    })?;
    let spec: Spec = parse_spec(&text).map_err(|e| ConfigError::Parse {
        path: path.clone(),
        message: e.to_string(),
    })?;
    validate(spec, bundle)
}

/// Parse a config.json, accepting the scheduler flag names of config.md.
pub fn parse_spec(text: &str) -> Result<Spec, serde_json::Error> {
    let mut v: serde_json::Value = serde_json::from_str(text)?;
    if let Some(p) = v.get_mut("process") {
        crate::sched::normalize_process_json(p);
    }
    serde_json::from_value(v)
}

/// Parse a process.json (exec --process), as [`parse_spec`] does.
pub fn parse_process(text: &str) -> Result<Process, serde_json::Error> {
    let mut v: serde_json::Value = serde_json::from_str(text)?;
    crate::sched::normalize_process_json(&mut v);
    serde_json::from_value(v)
}

/// Validate a parsed spec whose bundle directory is `bundle`.
pub fn validate(spec: Spec, bundle: &Path) -> Result<ContainerConfig, ConfigError> {
    check_version(spec.version())?;
    let root = spec.root().as_ref().ok_or(ConfigError::Missing("root"))?;
    let rootfs_rel = root.path();
    let rootfs = if rootfs_rel.is_absolute() {
        rootfs_rel.clone()
    } else {
        bundle.join(rootfs_rel)
    };
    let rootfs = match std::fs::canonicalize(&rootfs) {
        Ok(p) if p.is_dir() => p,
        Ok(p) => {
            return Err(ConfigError::Rootfs {
                path: rootfs_rel.clone(),
                resolved: p,
            })
        }
        Err(_) => {
            return Err(ConfigError::Rootfs {
                path: rootfs_rel.clone(),
                resolved: rootfs,
            })
        }
    };
    let process = spec
        .process()
        .as_ref()
        .ok_or(ConfigError::Missing("process"))?;
    let process_json = serde_json::to_value(process).unwrap_or_default();
    let process = process_config(process)?;
    let linux = spec.linux().as_ref().ok_or(ConfigError::Missing("linux"))?;

    let namespaces = namespaces(linux.namespaces().as_deref().unwrap_or(&[]))?;
    let uid_mappings: Vec<IdMap> = linux
        .uid_mappings()
        .iter()
        .flatten()
        .map(IdMap::from_oci)
        .collect();
    let gid_mappings: Vec<IdMap> = linux
        .gid_mappings()
        .iter()
        .flatten()
        .map(IdMap::from_oci)
        .collect();
    let has_maps = !uid_mappings.is_empty() || !gid_mappings.is_empty();
    if namespaces.creates(NsKind::User) {
        if uid_mappings.is_empty() || gid_mappings.is_empty() {
            return Err(ConfigError::UsernsWithoutMappings);
        }
    } else if namespaces.has(NsKind::User) {
        if has_maps {
            return Err(ConfigError::MappingsWithJoinedUserns("user"));
        }
    } else if has_maps {
        return Err(ConfigError::MappingsWithoutUserns);
    }

    let hostname = spec.hostname().clone().filter(|h| !h.is_empty());
    if hostname.is_some() && !namespaces.creates(NsKind::Uts) {
        return Err(ConfigError::HostnameWithoutUts);
    }
    let domainname = spec.domainname().clone().filter(|h| !h.is_empty());
    if domainname.is_some() && !namespaces.creates(NsKind::Uts) {
        return Err(ConfigError::HostnameWithoutUts);
    }

    let mut mounts = Vec::new();
    for m in spec.mounts().iter().flatten() {
        mounts.push(mount_spec(m, bundle)?);
    }
    // Without a mount namespace the mounts apply in the caller's namespace
    // and the container is entered by chroot, as runc does.

    let mut devices = Vec::new();
    for d in linux.devices().iter().flatten() {
        devices.push(device_spec(d)?);
    }

    let masked_paths = abs_paths(linux.masked_paths().as_deref());
    let readonly_paths = abs_paths(linux.readonly_paths().as_deref());
    let restricts = !masked_paths.is_empty() || !readonly_paths.is_empty();
    if restricts && !namespaces.has(NsKind::Mount) {
        // runc's rule: these would be mounted in the caller's namespace.
        return Err(ConfigError::Setting(
            "maskedPaths and readonlyPaths need a mount namespace: add one, or leave them empty"
                .into(),
        ));
    }

    let rootfs_propagation = match linux.rootfs_propagation().as_deref() {
        None | Some("") => None,
        Some(p) => Some(
            mount_opts::propagation_option(p).ok_or_else(|| ConfigError::Propagation(p.into()))?,
        ),
    };

    let mut sysctl = BTreeMap::new();
    for (k, v) in linux.sysctl().iter().flatten() {
        check_sysctl(k, &namespaces)?;
        sysctl.insert(k.clone(), v.clone());
    }

    let personality_linux32 = match linux.personality() {
        None => false,
        Some(p) => {
            use oci_spec::runtime::LinuxPersonalityDomain as D;
            if p.flags().as_ref().is_some_and(|f| !f.is_empty()) {
                return Err(ConfigError::Unsupported("personality flags".into()));
            }
            matches!(p.domain(), D::PerLinux32)
        }
    };

    let mut time_offsets = Vec::new();
    if let Some(offsets) = linux.time_offsets() {
        if !offsets.is_empty() && !namespaces.creates(NsKind::Time) {
            return Err(ConfigError::TimeOffsetsWithoutTimens);
        }
        for (clock, off) in offsets {
            if clock != "monotonic" && clock != "boottime" {
                return Err(ConfigError::TimeClock(clock.clone()));
            }
            time_offsets.push((
                clock.clone(),
                off.secs().unwrap_or(0),
                off.nanosecs().unwrap_or(0),
            ));
        }
    }

    if linux.intel_rdt().is_some() {
        return Err(ConfigError::Unsupported("linux.intelRdt".into()));
    }
    let memory_policy = linux
        .memory_policy()
        .as_ref()
        .map(crate::sched::memory_policy)
        .transpose()?;
    if linux.net_devices().as_ref().is_some_and(|d| !d.is_empty()) {
        return Err(ConfigError::Unsupported("linux.netDevices".into()));
    }

    let hooks = match spec.hooks() {
        None => Hooks::default(),
        Some(h) => Hooks {
            prestart: hook_list(h.prestart().as_deref())?,
            create_runtime: hook_list(h.create_runtime().as_deref())?,
            create_container: hook_list(h.create_container().as_deref())?,
            start_container: hook_list(h.start_container().as_deref())?,
            poststart: hook_list(h.poststart().as_deref())?,
            poststop: hook_list(h.poststop().as_deref())?,
        },
    };

    Ok(ContainerConfig {
        oci_version: spec.version().clone(),
        bundle: bundle.to_path_buf(),
        rootfs,
        root_readonly: root.readonly().unwrap_or(false),
        hostname,
        domainname,
        process,
        mounts,
        namespaces,
        uid_mappings,
        gid_mappings,
        devices,
        masked_paths,
        readonly_paths,
        rootfs_propagation,
        sysctl,
        personality_linux32,
        time_offsets,
        memory_policy,
        hooks,
        cgroups_path: linux
            .cgroups_path()
            .as_ref()
            .map(|p| p.to_string_lossy().into_owned()),
        resources: zero_weights_unset(linux.resources().clone()),
        seccomp: linux.seccomp().clone(),
        annotations: spec
            .annotations()
            .clone()
            .unwrap_or_default()
            .into_iter()
            .collect(),
        process_json,
    })
}

/// runc treats a zero `blockIO.weight` or `blockIO.leafWeight` (optional
/// per config-linux.md "Block IO") as unset
/// (it writes them only when non-zero); Docker sends `"blockIO":
/// {"weight": 0}` for every container, so berth does the same.
pub fn zero_weights_unset(res: Option<LinuxResources>) -> Option<LinuxResources> {
    let mut res = res?;
    if let Some(mut b) = res.block_io().clone() {
        if b.weight() == Some(0) {
            b.set_weight(None);
        }
        if b.leaf_weight() == Some(0) {
            b.set_leaf_weight(None);
        }
        res.set_block_io(Some(b));
    }
    Some(res)
}

fn check_version(v: &str) -> Result<(), ConfigError> {
    let major = v.split('.').next().unwrap_or("");
    if major != "1" {
        return Err(ConfigError::Version(v.to_string()));
    }
    Ok(())
}

fn namespaces(list: &[oci_spec::runtime::LinuxNamespace]) -> Result<Namespaces, ConfigError> {
    let mut seen = HashSet::new();
    let mut ns = Namespaces::default();
    for n in list {
        let kind = NsKind::from_oci(n.typ());
        if !seen.insert(kind) {
            return Err(ConfigError::DuplicateNamespace(kind.proc_name().into()));
        }
        match n.path() {
            Some(p) if !p.as_os_str().is_empty() => {
                if !p.is_absolute() {
                    return Err(ConfigError::NamespacePath {
                        kind: kind.proc_name().into(),
                        path: p.clone(),
                    });
                }
                ns.join.push((kind, p.clone()));
            }
            _ => ns.new.push(kind),
        }
    }
    ns.join
        .sort_by_key(|(k, _)| NsKind::JOIN_ORDER.iter().position(|o| o == k));
    Ok(ns)
}

fn mount_spec(m: &oci_spec::runtime::Mount, bundle: &Path) -> Result<MountSpec, ConfigError> {
    let dest = m.destination().clone();
    if !dest.is_absolute() {
        return Err(ConfigError::MountDestination(dest));
    }
    let options = mount_opts::parse(m.options().as_deref().unwrap_or(&[]));
    let typ = m.typ().clone().unwrap_or_default();
    let typ = if typ.is_empty() && options.bind {
        "bind".to_string()
    } else {
        typ
    };
    let err = |why: &str| ConfigError::Mount {
        typ: typ.clone(),
        dest: dest.clone(),
        why: why.to_string(),
    };
    if typ.is_empty() {
        return Err(err("a mount needs a type (or a bind/rbind option)"));
    }
    let is_bind = options.bind || typ == "bind";
    let mut source = m.source().clone();
    if is_bind {
        match &source {
            Some(s) if s.is_absolute() => {}
            // config.md "Mounts": a bind mount's source is absolute or
            // relative to the bundle (runc resolves it so too).
            Some(s) => source = Some(bundle.join(s)),
            None => return Err(err("a bind mount needs a source")),
        }
    }
    if options.tmpcopyup && typ != "tmpfs" {
        return Err(err("tmpcopyup applies only to tmpfs mounts"));
    }
    let uid_mappings: Vec<IdMap> = m
        .uid_mappings()
        .iter()
        .flatten()
        .map(IdMap::from_oci)
        .collect();
    let gid_mappings: Vec<IdMap> = m
        .gid_mappings()
        .iter()
        .flatten()
        .map(IdMap::from_oci)
        .collect();
    if (options.idmap.is_some() || !uid_mappings.is_empty() || !gid_mappings.is_empty()) && !is_bind
    {
        return Err(err("idmapped mounts are supported for bind mounts only"));
    }
    if uid_mappings.is_empty() != gid_mappings.is_empty() {
        return Err(err(
            "an idmapped mount needs both uidMappings and gidMappings",
        ));
    }
    Ok(MountSpec {
        destination: dest,
        typ,
        source,
        options,
        uid_mappings,
        gid_mappings,
    })
}

fn device_spec(d: &oci_spec::runtime::LinuxDevice) -> Result<DeviceSpec, ConfigError> {
    use oci_spec::runtime::LinuxDeviceType as T;
    let path = d.path().clone();
    if !path.is_absolute() || !path.starts_with("/dev") {
        return Err(ConfigError::Device {
            path,
            why: "a device path must be absolute and under /dev".into(),
        });
    }
    let kind = match d.typ() {
        T::C | T::U => 'c',
        T::B => 'b',
        T::P => 'p',
        T::A => {
            return Err(ConfigError::Device {
                path,
                why: "type 'a' is only valid in cgroup device rules".into(),
            })
        }
    };
    Ok(DeviceSpec {
        path,
        kind,
        major: d.major(),
        minor: d.minor(),
        mode: d.file_mode().unwrap_or(0o666) & 0o7777,
        uid: d.uid().unwrap_or(0),
        gid: d.gid().unwrap_or(0),
    })
}

/// maskedPaths/readonlyPaths: a relative path is taken relative to the
/// rootfs, as runc does (it joins every path onto the rootfs).
fn abs_paths(list: Option<&[String]>) -> Vec<PathBuf> {
    list.unwrap_or(&[])
        .iter()
        .map(|p| Path::new("/").join(p))
        .collect()
}

fn hook_list(hooks: Option<&[oci_spec::runtime::Hook]>) -> Result<Vec<HookSpec>, ConfigError> {
    hooks
        .unwrap_or(&[])
        .iter()
        .map(|h| {
            if !h.path().is_absolute() {
                return Err(ConfigError::Hook {
                    path: h.path().clone(),
                });
            }
            Ok(HookSpec {
                path: h.path().clone(),
                args: h.args().clone().unwrap_or_default(),
                env: h.env().clone().unwrap_or_default(),
                timeout: h.timeout().filter(|t| *t > 0).map(|t| t as u64),
            })
        })
        .collect()
}

/// Which namespace a sysctl needs (runc's rules): IPC sysctls need an IPC
/// namespace, `net.*` a network namespace, hostname/domainname a UTS one;
/// anything else would change the host and is refused.
pub fn check_sysctl(key: &str, ns: &Namespaces) -> Result<(), ConfigError> {
    let err = |why: &str| ConfigError::Sysctl {
        key: key.to_string(),
        why: why.to_string(),
    };
    if key.contains("..") || key.contains('\0') || key.starts_with('/') {
        return Err(err("not a sysctl name"));
    }
    const IPC: [&str; 7] = [
        "kernel.msgmax",
        "kernel.msgmnb",
        "kernel.msgmni",
        "kernel.sem",
        "kernel.shmall",
        "kernel.shmmax",
        "kernel.shmmni",
    ];
    if IPC.contains(&key) || key == "kernel.shm_rmid_forced" || key.starts_with("fs.mqueue.") {
        if !ns.has(NsKind::Ipc) {
            return Err(err("needs an IPC namespace"));
        }
        return Ok(());
    }
    if key.starts_with("net.") {
        if !ns.has(NsKind::Network) {
            return Err(err("needs a network namespace"));
        }
        return Ok(());
    }
    if key == "kernel.hostname" || key == "kernel.domainname" {
        if !ns.has(NsKind::Uts) {
            return Err(err("needs a UTS namespace"));
        }
        return Ok(());
    }
    Err(err("is not namespaced: it would change the host"))
}

#[cfg(test)]
mod tests;
