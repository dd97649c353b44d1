//! Pod sandboxes: berth pods carrying the sandbox's CRI metadata.

use berth_engine::db::Status as RowStatus;
use berth_engine::pods;
use k8s_cri::v1::*;
use tonic::Status;

use super::labels_match;
use crate::meta::{self, SandboxMeta};
use crate::{cni, engine_err, Ctx};

pub(crate) fn find_sandbox(
    e: &berth_engine::Engine,
    id: &str,
) -> Result<(pods::PodRow, SandboxMeta), Status> {
    if id.is_empty() {
        return Err(Status::invalid_argument("pod sandbox ID is empty"));
    }
    pods::list(e)
        .map_err(engine_err)?
        .into_iter()
        .filter_map(|p| meta::sandbox_of(&p.labels).map(|m| (p, m)))
        .find(|(p, _)| p.id.starts_with(id))
        .ok_or_else(|| Status::not_found(format!("pod sandbox {id} not found")))
}

fn sandbox_state(e: &berth_engine::Engine, p: &pods::PodRow) -> PodSandboxState {
    if meta::is_stopped(e, &p.id) {
        PodSandboxState::SandboxNotready
    } else {
        PodSandboxState::SandboxReady
    }
}

/// The list entry of a sandbox; its status starts from it.
fn to_sandbox(e: &berth_engine::Engine, p: &pods::PodRow, m: SandboxMeta) -> PodSandbox {
    PodSandbox {
        id: p.id.clone(),
        metadata: m.metadata,
        state: sandbox_state(e, p) as i32,
        created_at: meta::ns(p.created),
        labels: m.labels,
        annotations: m.annotations,
        ..Default::default()
    }
}

/// The pod's address on its network: its endpoint, else from berth's pod
/// inspect document.
fn pod_ip(e: &berth_engine::Engine, p: &pods::PodRow) -> String {
    // The pod's own endpoint (its network namespace is the pod's).
    if let Ok((eps, _)) = berth_engine::networks::of_container(e, &p.id) {
        if let Some(ep) = eps.iter().find(|ep| ep.ip.is_ipv4()).or(eps.first()) {
            return ep.ip.to_string();
        }
    }
    let Ok(doc) = pods::inspect_json(e, p) else {
        return String::new();
    };
    fn find(v: &serde_json::Value) -> Option<String> {
        match v {
            serde_json::Value::Object(m) => {
                for k in ["IPAddress", "IPv4Address", "ip"] {
                    if let Some(s) = m.get(k).and_then(|s| s.as_str()) {
                        if !s.is_empty() {
                            return Some(s.split('/').next().unwrap_or(s).to_string());
                        }
                    }
                }
                m.values().find_map(find)
            }
            serde_json::Value::Array(a) => a.iter().find_map(find),
            _ => None,
        }
    }
    find(&doc).unwrap_or_default()
}

pub async fn run_pod_sandbox(
    ctx: &Ctx,
    r: RunPodSandboxRequest,
) -> Result<RunPodSandboxResponse, Status> {
    let cfg = r
        .config
        .ok_or_else(|| Status::invalid_argument("RunPodSandbox: config is missing"))?;
    let md = cfg.metadata.clone().unwrap_or_default();
    if md.name.is_empty() {
        return Err(Status::invalid_argument(
            "RunPodSandbox: metadata.name is empty",
        ));
    }
    let host_network = cfg
        .linux
        .as_ref()
        .and_then(|l| l.security_context.as_ref())
        .and_then(|s| s.namespace_options.as_ref())
        .is_some_and(|n| n.network == NamespaceMode::Node as i32);
    let host_pid = cfg
        .linux
        .as_ref()
        .and_then(|l| l.security_context.as_ref())
        .and_then(|s| s.namespace_options.as_ref())
        .is_some_and(|n| n.pid == NamespaceMode::Node as i32);
    let m = SandboxMeta {
        metadata: Some(md.clone()),
        labels: cfg.labels.clone(),
        annotations: cfg.annotations.clone(),
        log_directory: cfg.log_directory.clone(),
        host_network,
        sysctls: cfg
            .linux
            .as_ref()
            .map(|l| l.sysctls.clone())
            .unwrap_or_default(),
        host_pid,
    };
    let name = meta::berth_name(&[
        "k8s_POD",
        &md.name,
        &md.namespace,
        &md.uid,
        &md.attempt.to_string(),
    ]);
    // Kubernetes pods use the host's user namespace unless they ask
    // (hostUsers: false, a later step), whatever the engine's default.
    let mut args: Vec<String> = vec![
        "pod".into(),
        "create".into(),
        "--userns=host".into(),
        "--name".into(),
        name,
    ];
    // The kubelet always names the host; without one the pod's name
    // serves (cut to the kernel's 64 bytes), not berth's pod name,
    // which can be longer.
    let hostname = if cfg.hostname.is_empty() {
        md.name.chars().take(63).collect()
    } else {
        cfg.hostname.clone()
    };
    args.push(format!("--hostname={hostname}"));
    // The network: the caller's own (NODE), CNI plugins on an empty
    // namespace (a CNI configuration exists), or berth's bridge driver.
    let cni = if host_network {
        None
    } else {
        let dirs = ctx.cni.clone();
        tokio::task::spawn_blocking(move || cni::config(&dirs))
            .await
            .map_err(|e| Status::internal(e.to_string()))?
            .map_err(Status::failed_precondition)?
    };
    let ns = cfg
        .linux
        .as_ref()
        .and_then(|l| l.security_context.as_ref())
        .and_then(|s| s.namespace_options.as_ref());
    // No network namespace of the pod's own with NODE networking: its
    // containers run with `--network host` (see CreateContainer); with the
    // host's IPC, its containers join that themselves (`--ipc=host`).
    if let Some(share) = crate::secctx::pod_share(host_network, ns) {
        args.push(share);
    }
    if !host_network && cni.is_some() {
        args.push("--network=none".into());
    }
    for p in &cfg.port_mappings {
        if p.host_port > 0 && !host_network && cni.is_none() {
            let proto = if p.protocol == Protocol::Udp as i32 {
                "/udp"
            } else {
                ""
            };
            let ip = if p.host_ip.is_empty() {
                String::new()
            } else {
                format!("{}:", p.host_ip)
            };
            args.push(format!(
                "--publish={ip}{}:{}{proto}",
                p.host_port, p.container_port
            ));
        }
    }
    args.push(format!(
        "--label={}={}",
        meta::SANDBOX,
        serde_json::to_string(&m).map_err(|e| Status::internal(e.to_string()))?
    ));
    if !cfg.log_directory.is_empty() {
        std::fs::create_dir_all(&cfg.log_directory).map_err(|e| {
            Status::internal(format!("create log directory {}: {e}", cfg.log_directory))
        })?;
    }
    let id = crate::inproc::pod_create(ctx, &args).await?;
    let id = id.lines().last().unwrap_or_default().to_string();
    if let Some(dns) = cfg
        .dns_config
        .as_ref()
        .filter(|d| !(d.servers.is_empty() && d.searches.is_empty() && d.options.is_empty()))
    {
        if let Err(err) = meta::write_resolv_conf(&ctx.engine, &id, dns) {
            let _ = ctx
                .berth(&["pod".into(), "rm".into(), "-f".into(), id.clone()])
                .await;
            meta::forget_sandbox_files(&ctx.engine, &id);
            return Err(Status::internal(format!(
                "RunPodSandbox {}: write the pod's resolv.conf: {err}",
                md_name(&cfg)
            )));
        }
    }
    if let Some((_, list)) = cni {
        let ports: Vec<cni::PortMapping> = cfg
            .port_mappings
            .iter()
            .filter(|p| p.host_port > 0)
            .map(|p| cni::PortMapping {
                host_port: p.host_port,
                container_port: p.container_port,
                protocol: if p.protocol == Protocol::Udp as i32 {
                    "udp"
                } else {
                    "tcp"
                },
                host_ip: p.host_ip.clone(),
            })
            .collect();
        let (e, dirs, pid) = (ctx.engine.clone(), ctx.cni.clone(), id.clone());
        let added = tokio::task::spawn_blocking(move || {
            let pod = cni::PodRef {
                id: &pid,
                name: &md.name,
                namespace: &md.namespace,
                uid: &md.uid,
            };
            let netns = pods::ns_path(&e, &pid, "net");
            cni::add(&e, &dirs, &list, &pod, &netns, &ports)
        })
        .await
        .map_err(|e| Status::internal(e.to_string()))?;
        if let Err(err) = added {
            // Nothing is left of a sandbox whose network failed.
            let _ = ctx
                .berth(&["pod".into(), "rm".into(), "-f".into(), id.clone()])
                .await;
            meta::forget_sandbox_files(&ctx.engine, &id);
            return Err(Status::unknown(format!(
                "RunPodSandbox {}: set up the pod network: {err}",
                md_name(&cfg)
            )));
        }
    }
    Ok(RunPodSandboxResponse { pod_sandbox_id: id })
}

fn md_name(cfg: &PodSandboxConfig) -> String {
    cfg.metadata
        .as_ref()
        .map(|m| format!("{}/{}", m.namespace, m.name))
        .unwrap_or_default()
}

/// CNI DEL for a pod on a CNI network (nothing otherwise).
async fn cni_del(ctx: &Ctx, pod: &str, m: &SandboxMeta) -> Result<(), Status> {
    let (e, dirs, pid) = (ctx.engine.clone(), ctx.cni.clone(), pod.to_string());
    let md = m.metadata.clone().unwrap_or_default();
    tokio::task::spawn_blocking(move || {
        let r = cni::PodRef {
            id: &pid,
            name: &md.name,
            namespace: &md.namespace,
            uid: &md.uid,
        };
        let netns = pods::ns_path(&e, &pid, "net");
        cni::del(&e, &dirs, &r, &netns)
    })
    .await
    .map_err(|e| Status::internal(e.to_string()))?
    .map_err(|err| Status::unknown(format!("tear down the network of pod sandbox {pod}: {err}")))
}

/// The sandbox `id` (None when it is gone: stopping or removing it is
/// then no error, as the CRI asks).
async fn sandbox_if_any(ctx: &Ctx, id: String) -> Result<Option<(String, SandboxMeta)>, Status> {
    ctx.read(move |e| match find_sandbox(e, &id) {
        Ok((p, m)) => Ok(Some((p.id, m))),
        Err(s) if s.code() == tonic::Code::NotFound => Ok(None),
        Err(s) => Err(s),
    })
    .await
}

pub async fn stop_pod_sandbox(
    ctx: &Ctx,
    r: StopPodSandboxRequest,
) -> Result<StopPodSandboxResponse, Status> {
    let Some((pod, m)) = sandbox_if_any(ctx, r.pod_sandbox_id).await? else {
        return Ok(StopPodSandboxResponse {});
    };
    let running = {
        let pod = pod.clone();
        ctx.read(move |e| {
            Ok(pods::containers_of(e, &pod)
                .map_err(engine_err)?
                .into_iter()
                .filter(|c| c.status == RowStatus::Running)
                .map(|c| c.id)
                .collect::<Vec<_>>())
        })
        .await?
    };
    if !running.is_empty() {
        // As containerd's StopPodSandbox: the kubelet has stopped the
        // containers with their grace periods already; what still
        // runs is killed at once (a timeout of 0).
        let mut args = vec!["stop".to_string(), "-t".into(), "0".into()];
        args.extend(running);
        ctx.berth(&args).await?;
    }
    // The pod's PID 1 (when it shares its PID namespace), as containerd
    // stops the pause container; a later RemovePodSandbox finds none.
    {
        let pod = pod.clone();
        ctx.read(move |e| {
            pods::stop_holder(e, &pod);
            Ok(())
        })
        .await?;
    }
    cni_del(ctx, &pod, &m).await?;
    let e = ctx.engine.clone();
    meta::mark_stopped(&e, &pod)
        .map_err(|err| Status::internal(format!("mark pod sandbox {pod} stopped: {err}")))?;
    Ok(StopPodSandboxResponse {})
}

pub async fn remove_pod_sandbox(
    ctx: &Ctx,
    r: RemovePodSandboxRequest,
) -> Result<RemovePodSandboxResponse, Status> {
    if let Some((pod, m)) = sandbox_if_any(ctx, r.pod_sandbox_id).await? {
        cni_del(ctx, &pod, &m).await?;
        ctx.berth(&["pod".into(), "rm".into(), "-f".into(), pod.clone()])
            .await?;
        meta::forget_stopped(&ctx.engine, &pod);
        meta::forget_sandbox_files(&ctx.engine, &pod);
    }
    Ok(RemovePodSandboxResponse {})
}

pub async fn pod_sandbox_status(
    ctx: &Ctx,
    r: PodSandboxStatusRequest,
) -> Result<PodSandboxStatusResponse, Status> {
    let id = r.pod_sandbox_id;
    let status = ctx
        .read(move |e| {
            let (p, m) = find_sandbox(e, &id)?;
            // CNI's result when the pod is on a CNI network, else the
            // bridge driver's address; none of its own on the host's.
            let mut ips = match cni::kept(e, &p.id) {
                Some(k) => cni::ips(&k["result"]),
                None if m.host_network => vec![],
                None => vec![pod_ip(e, &p)],
            };
            ips.retain(|ip| !ip.is_empty());
            let options =
                crate::secctx::sandbox_namespaces(|k| p.shares(k), m.host_network, m.host_pid);
            let s = to_sandbox(e, &p, m);
            Ok(PodSandboxStatus {
                id: s.id,
                metadata: s.metadata,
                state: s.state,
                created_at: s.created_at,
                labels: s.labels,
                annotations: s.annotations,
                network: Some(PodSandboxNetworkStatus {
                    ip: ips.first().cloned().unwrap_or_default(),
                    additional_ips: ips
                        .iter()
                        .skip(1)
                        .map(|ip| PodIp { ip: ip.clone() })
                        .collect(),
                }),
                linux: Some(LinuxPodSandboxStatus {
                    namespaces: Some(Namespace {
                        options: Some(options),
                    }),
                }),
                ..Default::default()
            })
        })
        .await?;
    Ok(PodSandboxStatusResponse {
        status: Some(status),
        ..Default::default()
    })
}

pub async fn list_pod_sandbox(
    ctx: &Ctx,
    r: ListPodSandboxRequest,
) -> Result<ListPodSandboxResponse, Status> {
    let f = r.filter;
    let items = ctx
        .read(move |e| {
            let mut out = Vec::new();
            for p in pods::list(e).map_err(engine_err)? {
                let Some(m) = meta::sandbox_of(&p.labels) else {
                    continue;
                };
                if let Some(f) = &f {
                    let state = sandbox_state(e, &p) as i32;
                    if !p.id.starts_with(&f.id)
                        || f.state.as_ref().is_some_and(|s| s.state != state)
                        || !labels_match(&f.label_selector, &m.labels)
                    {
                        continue;
                    }
                }
                out.push(to_sandbox(e, &p, m));
            }
            Ok(out)
        })
        .await?;
    Ok(ListPodSandboxResponse { items })
}
