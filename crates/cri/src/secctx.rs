//! A CRI container's security context and its pod's namespace options and
//! sysctls as `berth create` / `berth pod create` flags (CRI v1
//! api.proto: LinuxContainerSecurityContext, NamespaceOption,
//! LinuxPodSandboxConfig.sysctls).

use std::collections::HashMap;

use k8s_cri::v1::security_profile::ProfileType;
use k8s_cri::v1::{LinuxContainerSecurityContext, NamespaceMode, NamespaceOption, SecurityProfile};
use tonic::Status;

/// Flags for what `create_container` does not map itself: supplemental
/// groups, no_new_privs, host PID/IPC namespaces. A group without a user
/// is refused (the CRI: run_as_group needs run_as_user or
/// run_as_username, as containerd and CRI-O check).
pub fn container_flags(
    sc: &LinuxContainerSecurityContext,
    out: &mut Vec<String>,
) -> Result<(), Status> {
    if sc.run_as_group.is_some() && sc.run_as_user.is_none() && sc.run_as_username.is_empty() {
        return Err(Status::invalid_argument(
            "CreateContainer: run_as_group is set without run_as_user or run_as_username",
        ));
    }
    for g in &sc.supplemental_groups {
        out.push(format!("--group-add={g}"));
    }
    if sc.no_new_privs {
        out.push("--security-opt=no-new-privileges".into());
    }
    if !sc.privileged {
        out.extend(seccomp_flag(sc)?);
        // Lists the kubelet gives replace the runtime's (as containerd's
        // WithMaskedPaths/WithReadonlyPaths); an empty one keeps them.
        if !sc.masked_paths.is_empty() {
            out.push(format!(
                "--security-opt=masked-paths={}",
                sc.masked_paths.join(":")
            ));
        }
        if !sc.readonly_paths.is_empty() {
            out.push(format!(
                "--security-opt=readonly-paths={}",
                sc.readonly_paths.join(":")
            ));
        }
    }
    if let Some(ns) = &sc.namespace_options {
        if ns.pid == NamespaceMode::Node as i32 {
            out.push("--pid=host".into());
        }
        if ns.ipc == NamespaceMode::Node as i32 {
            out.push("--ipc=host".into());
        }
    }
    Ok(())
}

/// The seccomp profile as `--security-opt seccomp=`, as containerd 1.6's
/// CRI plugin chooses it (a privileged container has none, see the
/// caller): the `seccomp` field, else the deprecated
/// `seccomp_profile_path` (`runtime/default`, `docker/default`,
/// `unconfined`, `localhost/<absolute path>`, anything else refused as
/// containerd refuses it); with neither the container
/// runs unconfined, as containerd's default (the kubelet asks for
/// RuntimeDefault when it wants the runtime's profile).
fn seccomp_flag(sc: &LinuxContainerSecurityContext) -> Result<Option<String>, Status> {
    #[allow(deprecated)]
    let path = sc.seccomp_profile_path.as_str();
    let profile = match &sc.seccomp {
        Some(p) => Some(p.clone()),
        None => match path {
            "" => None,
            "runtime/default" | "docker/default" => Some(SecurityProfile {
                profile_type: ProfileType::RuntimeDefault as i32,
                localhost_ref: String::new(),
            }),
            "unconfined" => Some(SecurityProfile {
                profile_type: ProfileType::Unconfined as i32,
                localhost_ref: String::new(),
            }),
            other => match other.strip_prefix("localhost/") {
                Some(path) => Some(SecurityProfile {
                    profile_type: ProfileType::Localhost as i32,
                    localhost_ref: path.into(),
                }),
                None => {
                    return Err(Status::invalid_argument(format!(
                        "CreateContainer: seccomp_profile_path '{other}' is not runtime/default, \
                         docker/default, unconfined or localhost/<absolute path>"
                    )))
                }
            },
        },
    };
    let Some(p) = profile else {
        return Ok(Some("--security-opt=seccomp=unconfined".into()));
    };
    match ProfileType::try_from(p.profile_type) {
        // berth's default profile: no flag.
        Ok(ProfileType::RuntimeDefault) if p.localhost_ref.is_empty() => Ok(None),
        Ok(ProfileType::Unconfined) if p.localhost_ref.is_empty() => {
            Ok(Some("--security-opt=seccomp=unconfined".into()))
        }
        Ok(ProfileType::Localhost) if p.localhost_ref.starts_with('/') => {
            Ok(Some(format!("--security-opt=seccomp={}", p.localhost_ref)))
        }
        Ok(ProfileType::Localhost) => Err(Status::invalid_argument(format!(
            "CreateContainer: seccomp localhost profile '{}' is not an absolute path",
            p.localhost_ref
        ))),
        _ => Err(Status::invalid_argument(format!(
            "CreateContainer: seccomp profile type {} with localhost_ref '{}' is not supported",
            p.profile_type, p.localhost_ref
        ))),
    }
}

/// `pod create --share` when it differs from the default (net,ipc,uts):
/// a pod on the host's network (`host_network`) has no network namespace
/// of its own, and one whose IPC is the host's shares no IPC namespace (its
/// containers then join the host's themselves: `--network=host`,
/// `--ipc=host`). A pod whose PID mode is POD shares its PID namespace
/// (its PID 1 is then berth's holder, as containerd's pause process); POD
/// is the proto's 0, so a sandbox without namespace options has it too,
/// as with containerd. The kubelet asks for CONTAINER unless the pod sets
/// shareProcessNamespace.
pub fn pod_share(host_network: bool, ns: Option<&NamespaceOption>) -> Option<String> {
    let host_ipc = ns.is_some_and(|n| n.ipc == NamespaceMode::Node as i32);
    let pod_pid = ns.is_none_or(|n| n.pid == NamespaceMode::Pod as i32);
    if !host_network && !host_ipc && !pod_pid {
        return None;
    }
    let mut share = Vec::new();
    if !host_network {
        share.push("net");
    }
    if !host_ipc {
        share.push("ipc");
    }
    share.push("uts");
    if pod_pid {
        share.push("pid");
    }
    Some(format!("--share={}", share.join(",")))
}

/// The sandbox's namespace options as PodSandboxStatus reports them, from
/// what its berth pod shares: network NODE (the host's) or POD; PID POD
/// (shared), NODE (`host_pid`) or CONTAINER; IPC POD or NODE.
pub fn sandbox_namespaces(
    shares: impl Fn(&str) -> bool,
    host_network: bool,
    host_pid: bool,
) -> NamespaceOption {
    let mode = |m: NamespaceMode| m as i32;
    NamespaceOption {
        network: mode(if host_network {
            NamespaceMode::Node
        } else {
            NamespaceMode::Pod
        }),
        pid: mode(if shares("pid") {
            NamespaceMode::Pod
        } else if host_pid {
            NamespaceMode::Node
        } else {
            NamespaceMode::Container
        }),
        ipc: mode(if shares("ipc") {
            NamespaceMode::Pod
        } else {
            NamespaceMode::Node
        }),
        ..Default::default()
    }
}

/// The pod's sysctls, given to each of its containers (berth writes them
/// into the namespaces the container shares with its pod).
pub fn sysctl_flags(sysctls: &HashMap<String, String>, out: &mut Vec<String>) {
    let mut keys: Vec<_> = sysctls.keys().collect();
    keys.sort();
    for k in keys {
        out.push(format!("--sysctl={k}={}", sysctls[k]));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ns(network: NamespaceMode, pid: NamespaceMode, ipc: NamespaceMode) -> NamespaceOption {
        NamespaceOption {
            network: network as i32,
            pid: pid as i32,
            ipc: ipc as i32,
            ..Default::default()
        }
    }

    #[test]
    fn pid_mode_pod_shares_the_pid_namespace_and_is_the_default() {
        use NamespaceMode::*;
        assert_eq!(
            pod_share(false, None).as_deref(),
            Some("--share=net,ipc,uts,pid")
        );
        let own = ns(Pod, Container, Pod);
        assert_eq!(pod_share(false, Some(&own)), None);
        let host = ns(Node, Node, Node);
        assert_eq!(pod_share(true, Some(&host)).as_deref(), Some("--share=uts"));
        let shared = ns(Node, Pod, Pod);
        assert_eq!(
            pod_share(true, Some(&shared)).as_deref(),
            Some("--share=ipc,uts,pid")
        );
    }

    #[test]
    fn sandbox_status_reports_what_the_pod_shares() {
        use NamespaceMode::*;
        let all = |k: &str| ["net", "ipc", "uts", "pid"].contains(&k);
        assert_eq!(sandbox_namespaces(all, false, false), ns(Pod, Pod, Pod));
        let default = |k: &str| ["net", "ipc", "uts"].contains(&k);
        assert_eq!(
            sandbox_namespaces(default, false, false),
            ns(Pod, Container, Pod)
        );
        let uts = |k: &str| k == "uts";
        assert_eq!(sandbox_namespaces(uts, true, true), ns(Node, Node, Node));
    }
}
