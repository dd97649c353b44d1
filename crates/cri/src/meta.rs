//! The CRI metadata berth keeps with its pods and containers: one label
//! each holding the CRI fields berth has no column for (metadata, labels,
//! annotations, log paths), so the service keeps no state of its own.

use std::collections::HashMap;
use std::path::PathBuf;

use berth_engine::Engine;
use k8s_cri::v1::{ContainerMetadata, DnsConfig, ImageSpec, Mount, PodSandboxMetadata};

/// The label marking a berth pod as a CRI sandbox.
pub const SANDBOX: &str = "io.berth.cri.sandbox";
/// The label marking a berth container as a CRI container.
pub const CONTAINER: &str = "io.berth.cri.container";

#[derive(Debug, Clone, Default, serde::Serialize, serde::Deserialize)]
pub struct SandboxMeta {
    pub metadata: Option<PodSandboxMetadata>,
    pub labels: HashMap<String, String>,
    pub annotations: HashMap<String, String>,
    pub log_directory: String,
    pub host_network: bool,
    /// The pod's sysctls, applied to each of its containers.
    #[serde(default)]
    pub sysctls: HashMap<String, String>,
    /// The pod's PID mode is NODE (PodSandboxStatus reports it).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub host_pid: bool,
}

#[derive(Debug, Clone, Default, serde::Serialize, serde::Deserialize)]
pub struct ContainerMeta {
    pub metadata: Option<ContainerMetadata>,
    pub labels: HashMap<String, String>,
    pub annotations: HashMap<String, String>,
    /// The full log path (sandbox log directory + container log path).
    pub log_path: String,
    pub image: Option<ImageSpec>,
    pub pod: String,
    /// The container's mounts as CreateContainer gave them (ContainerStatus
    /// reports them).
    #[serde(default)]
    pub mounts: Vec<Mount>,
}

pub fn sandbox_of(labels: &std::collections::BTreeMap<String, String>) -> Option<SandboxMeta> {
    labels
        .get(SANDBOX)
        .and_then(|v| serde_json::from_str(v).ok())
}

pub fn container_of(labels: &std::collections::BTreeMap<String, String>) -> Option<ContainerMeta> {
    labels
        .get(CONTAINER)
        .and_then(|v| serde_json::from_str(v).ok())
}

/// A berth name from CRI name parts (`k8s_NAME_NS_UID_ATTEMPT`, as the
/// kubelet's dockershim named them), with characters berth does not take
/// in names replaced.
pub fn berth_name(parts: &[&str]) -> String {
    let name: String = parts
        .join("_")
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || matches!(c, '_' | '.' | '-') {
                c
            } else {
                '-'
            }
        })
        .collect();
    // berth names are at most 128 characters: a longer one keeps its
    // start and ends in a hash of the whole (FNV-1a), so it stays unique.
    if name.len() <= 128 {
        return name;
    }
    let h = name.bytes().fold(0xcbf29ce484222325u64, |h, b| {
        (h ^ u64::from(b)).wrapping_mul(0x100000001b3)
    });
    format!("{}-{h:016x}", &name[..111])
}

/// Marks a stopped sandbox (NOTREADY until it is removed); kept under the
/// runroot, next to the engine's other runtime state.
fn stopped_marker(engine: &Engine, pod: &str) -> PathBuf {
    engine.runroot.join("cri").join("stopped").join(pod)
}

pub fn mark_stopped(engine: &Engine, pod: &str) -> std::io::Result<()> {
    let p = stopped_marker(engine, pod);
    if let Some(d) = p.parent() {
        std::fs::create_dir_all(d)?;
    }
    std::fs::write(p, b"")
}

pub fn is_stopped(engine: &Engine, pod: &str) -> bool {
    stopped_marker(engine, pod).exists()
}

pub fn forget_stopped(engine: &Engine, pod: &str) {
    let _ = std::fs::remove_file(stopped_marker(engine, pod));
}

/// The sandbox's own files (its resolv.conf), under the engine's root:
/// they last as long as the sandbox.
fn sandbox_dir(engine: &Engine, pod: &str) -> PathBuf {
    engine.root.join("cri").join("sandboxes").join(pod)
}

/// The resolv.conf of sandbox `pod`, when its config had a DNSConfig.
pub fn resolv_conf(engine: &Engine, pod: &str) -> Option<PathBuf> {
    Some(sandbox_dir(engine, pod).join("resolv.conf")).filter(|p| p.exists())
}

/// Writes the sandbox's resolv.conf from its DNSConfig (search, nameserver
/// and options lines, as containerd writes it); each container of the
/// sandbox gets it as /etc/resolv.conf.
pub fn write_resolv_conf(engine: &Engine, pod: &str, dns: &DnsConfig) -> std::io::Result<()> {
    let mut text = String::new();
    if !dns.searches.is_empty() {
        text.push_str(&format!("search {}\n", dns.searches.join(" ")));
    }
    for s in &dns.servers {
        text.push_str(&format!("nameserver {s}\n"));
    }
    if !dns.options.is_empty() {
        text.push_str(&format!("options {}\n", dns.options.join(" ")));
    }
    let d = sandbox_dir(engine, pod);
    std::fs::create_dir_all(&d)?;
    std::fs::write(d.join("resolv.conf"), text)
}

/// Removes the sandbox's own files.
pub fn forget_sandbox_files(engine: &Engine, pod: &str) {
    let _ = std::fs::remove_dir_all(sandbox_dir(engine, pod));
}

/// Milliseconds to the CRI's nanoseconds.
pub fn ns(ms: i64) -> i64 {
    ms.saturating_mul(1_000_000)
}
