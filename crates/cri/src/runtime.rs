//! CRI RuntimeService on berth pods (sandboxes) and containers.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use berth_engine::db::Status as RowStatus;
use berth_engine::{lifecycle, pods, ContainerRow};
use k8s_cri::v1::runtime_service_server::RuntimeService;
use k8s_cri::v1::*;
use tonic::{Request, Response, Status};

use crate::meta::{self, ContainerMeta, SandboxMeta};
use crate::{engine_err, Ctx};

pub struct Runtime(pub Arc<Ctx>);

type R<T> = Result<Response<T>, Status>;

fn unimplemented(call: &str) -> Status {
    Status::unimplemented(format!(
        "{call} is not implemented by berth cri (see docs/kubernetes.md)"
    ))
}

fn labels_match(want: &HashMap<String, String>, have: &HashMap<String, String>) -> bool {
    want.iter().all(|(k, v)| have.get(k) == Some(v))
}

fn container_state(row: &ContainerRow) -> ContainerState {
    match row.status {
        RowStatus::Created => ContainerState::ContainerCreated,
        RowStatus::Running => ContainerState::ContainerRunning,
        RowStatus::Exited => ContainerState::ContainerExited,
    }
}

/// The CRI containers berth has (refreshed: exits are recorded).
fn cri_containers(e: &berth_engine::Engine) -> Result<Vec<(ContainerRow, ContainerMeta)>, Status> {
    let rows = e.db().map_err(engine_err)?.list().map_err(engine_err)?;
    let mut out = Vec::new();
    for row in rows {
        if let Some(m) = meta::container_of(&row.labels) {
            let row = lifecycle::refresh(e, row).map_err(engine_err)?;
            out.push((row, m));
        }
    }
    Ok(out)
}

/// One CRI container by ID (or unique prefix).
fn find_container(
    e: &berth_engine::Engine,
    id: &str,
) -> Result<(ContainerRow, ContainerMeta), Status> {
    if id.is_empty() {
        return Err(Status::invalid_argument("container ID is empty"));
    }
    cri_containers(e)?
        .into_iter()
        .find(|(r, _)| r.id.starts_with(id))
        .ok_or_else(|| Status::not_found(format!("container {id} not found")))
}

fn find_sandbox(e: &berth_engine::Engine, id: &str) -> Result<(pods::PodRow, SandboxMeta), Status> {
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

fn to_container(row: &ContainerRow, m: &ContainerMeta) -> Container {
    Container {
        id: row.id.clone(),
        pod_sandbox_id: m.pod.clone(),
        metadata: m.metadata.clone(),
        image: m.image.clone(),
        image_ref: row.image_id.clone(),
        state: container_state(row) as i32,
        created_at: meta::ns(row.created),
        labels: m.labels.clone(),
        annotations: m.annotations.clone(),
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

/// Reads a number from a cgroup v1 (or v2) file of the container.
fn cgroup_u64(e: &berth_engine::Engine, id: &str, files: &[(&str, &str)]) -> Option<u64> {
    let parent = e.cgroup_parent.trim_start_matches('/');
    for (ctrl, file) in files {
        let p = std::path::Path::new("/sys/fs/cgroup")
            .join(ctrl)
            .join(parent)
            .join(id)
            .join(file);
        if let Ok(s) = std::fs::read_to_string(&p) {
            if let Ok(v) = s.trim().parse() {
                return Some(v);
            }
        }
    }
    None
}

fn stats_of(e: &berth_engine::Engine, row: &ContainerRow, m: &ContainerMeta) -> ContainerStats {
    let now = berth_engine::now_ms() * 1_000_000;
    let cpu = cgroup_u64(
        e,
        &row.id,
        &[("cpuacct", "cpuacct.usage"), ("cpu", "cpuacct.usage")],
    );
    let mem = cgroup_u64(e, &row.id, &[("memory", "memory.usage_in_bytes")]);
    ContainerStats {
        attributes: Some(ContainerAttributes {
            id: row.id.clone(),
            metadata: m.metadata.clone(),
            labels: m.labels.clone(),
            annotations: m.annotations.clone(),
        }),
        cpu: Some(CpuUsage {
            timestamp: now,
            usage_core_nano_seconds: cpu.map(|value| UInt64Value { value }),
            ..Default::default()
        }),
        memory: Some(MemoryUsage {
            timestamp: now,
            working_set_bytes: mem.map(|value| UInt64Value { value }),
            usage_bytes: mem.map(|value| UInt64Value { value }),
            ..Default::default()
        }),
        ..Default::default()
    }
}

/// `berth update`/`create` flags for CRI Linux resources.
fn resource_flags(r: &LinuxContainerResources, out: &mut Vec<String>) {
    if r.memory_limit_in_bytes > 0 {
        out.push(format!("--memory={}", r.memory_limit_in_bytes));
    }
    if r.cpu_shares > 0 {
        out.push(format!("--cpu-shares={}", r.cpu_shares));
    }
    if r.cpu_period > 0 {
        out.push(format!("--cpu-period={}", r.cpu_period));
    }
    if r.cpu_quota > 0 {
        out.push(format!("--cpu-quota={}", r.cpu_quota));
    }
    if !r.cpuset_cpus.is_empty() {
        out.push(format!("--cpuset-cpus={}", r.cpuset_cpus));
    }
    if !r.cpuset_mems.is_empty() {
        out.push(format!("--cpuset-mems={}", r.cpuset_mems));
    }
}

#[tonic::async_trait]
impl RuntimeService for Runtime {
    async fn version(&self, _: Request<VersionRequest>) -> R<VersionResponse> {
        Ok(Response::new(VersionResponse {
            version: "0.1.0".into(),
            runtime_name: "berth".into(),
            runtime_version: env!("CARGO_PKG_VERSION").into(),
            runtime_api_version: "v1".into(),
        }))
    }

    async fn run_pod_sandbox(&self, r: Request<RunPodSandboxRequest>) -> R<RunPodSandboxResponse> {
        let r = r.into_inner();
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
        };
        let name = meta::berth_name(&[
            "k8s_POD",
            &md.name,
            &md.namespace,
            &md.uid,
            &md.attempt.to_string(),
        ]);
        let mut args: Vec<String> = vec!["pod".into(), "create".into(), "--name".into(), name];
        // The kubelet always names the host; without one the pod's name
        // serves (cut to the kernel's 64 bytes), not berth's pod name,
        // which can be longer.
        let hostname = if cfg.hostname.is_empty() {
            md.name.chars().take(63).collect()
        } else {
            cfg.hostname.clone()
        };
        args.push(format!("--hostname={hostname}"));
        if host_network {
            args.push("--network=host".into());
        }
        let ns = cfg
            .linux
            .as_ref()
            .and_then(|l| l.security_context.as_ref())
            .and_then(|s| s.namespace_options.as_ref());
        args.extend(crate::secctx::pod_share(ns));
        for p in &cfg.port_mappings {
            if p.host_port > 0 {
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
        let id = self.0.berth(&args).await?;
        let id = id.lines().last().unwrap_or_default().to_string();
        Ok(Response::new(RunPodSandboxResponse { pod_sandbox_id: id }))
    }

    async fn stop_pod_sandbox(
        &self,
        r: Request<StopPodSandboxRequest>,
    ) -> R<StopPodSandboxResponse> {
        let id = r.into_inner().pod_sandbox_id;
        let found = self
            .0
            .read(move |e| match find_sandbox(e, &id) {
                Ok((p, _)) => Ok(Some(p.id)),
                Err(s) if s.code() == tonic::Code::NotFound => Ok(None),
                Err(s) => Err(s),
            })
            .await?;
        // CRI: stopping a sandbox that is gone is not an error.
        let Some(pod) = found else {
            return Ok(Response::new(StopPodSandboxResponse {}));
        };
        let running = {
            let pod = pod.clone();
            self.0
                .read(move |e| {
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
            self.0.berth(&args).await?;
        }
        let e = self.0.engine.clone();
        meta::mark_stopped(&e, &pod)
            .map_err(|err| Status::internal(format!("mark pod sandbox {pod} stopped: {err}")))?;
        Ok(Response::new(StopPodSandboxResponse {}))
    }

    async fn remove_pod_sandbox(
        &self,
        r: Request<RemovePodSandboxRequest>,
    ) -> R<RemovePodSandboxResponse> {
        let id = r.into_inner().pod_sandbox_id;
        let found = self
            .0
            .read(move |e| match find_sandbox(e, &id) {
                Ok((p, _)) => Ok(Some(p.id)),
                Err(s) if s.code() == tonic::Code::NotFound => Ok(None),
                Err(s) => Err(s),
            })
            .await?;
        if let Some(pod) = found {
            self.0
                .berth(&["pod".into(), "rm".into(), "-f".into(), pod.clone()])
                .await?;
            meta::forget_stopped(&self.0.engine, &pod);
        }
        Ok(Response::new(RemovePodSandboxResponse {}))
    }

    async fn pod_sandbox_status(
        &self,
        r: Request<PodSandboxStatusRequest>,
    ) -> R<PodSandboxStatusResponse> {
        let id = r.into_inner().pod_sandbox_id;
        let status = self
            .0
            .read(move |e| {
                let (p, m) = find_sandbox(e, &id)?;
                let ip = if m.host_network {
                    String::new()
                } else {
                    pod_ip(e, &p)
                };
                Ok(PodSandboxStatus {
                    id: p.id.clone(),
                    metadata: m.metadata.clone(),
                    state: sandbox_state(e, &p) as i32,
                    created_at: meta::ns(p.created),
                    network: Some(PodSandboxNetworkStatus {
                        ip,
                        ..Default::default()
                    }),
                    linux: Some(LinuxPodSandboxStatus {
                        namespaces: Some(Namespace {
                            options: Some(NamespaceOption {
                                network: if m.host_network {
                                    NamespaceMode::Node as i32
                                } else {
                                    NamespaceMode::Pod as i32
                                },
                                pid: NamespaceMode::Container as i32,
                                ipc: NamespaceMode::Pod as i32,
                                ..Default::default()
                            }),
                        }),
                    }),
                    labels: m.labels,
                    annotations: m.annotations,
                    ..Default::default()
                })
            })
            .await?;
        Ok(Response::new(PodSandboxStatusResponse {
            status: Some(status),
            ..Default::default()
        }))
    }

    async fn list_pod_sandbox(
        &self,
        r: Request<ListPodSandboxRequest>,
    ) -> R<ListPodSandboxResponse> {
        let f = r.into_inner().filter;
        let items = self
            .0
            .read(move |e| {
                let mut out = Vec::new();
                for p in pods::list(e).map_err(engine_err)? {
                    let Some(m) = meta::sandbox_of(&p.labels) else {
                        continue;
                    };
                    let state = sandbox_state(e, &p) as i32;
                    if let Some(f) = &f {
                        if !p.id.starts_with(&f.id)
                            || f.state.as_ref().is_some_and(|s| s.state != state)
                            || !labels_match(&f.label_selector, &m.labels)
                        {
                            continue;
                        }
                    }
                    out.push(PodSandbox {
                        id: p.id.clone(),
                        metadata: m.metadata,
                        state,
                        created_at: meta::ns(p.created),
                        labels: m.labels,
                        annotations: m.annotations,
                        ..Default::default()
                    });
                }
                Ok(out)
            })
            .await?;
        Ok(Response::new(ListPodSandboxResponse { items }))
    }

    async fn create_container(
        &self,
        r: Request<CreateContainerRequest>,
    ) -> R<CreateContainerResponse> {
        let r = r.into_inner();
        let cfg = r
            .config
            .ok_or_else(|| Status::invalid_argument("CreateContainer: config is missing"))?;
        let pod_id = r.pod_sandbox_id.clone();
        let (pod, sm) = self.0.read(move |e| find_sandbox(e, &pod_id)).await?;
        let md = cfg.metadata.clone().unwrap_or_default();
        if md.name.is_empty() {
            return Err(Status::invalid_argument(
                "CreateContainer: metadata.name is empty",
            ));
        }
        let image = cfg
            .image
            .as_ref()
            .map(|i| i.image.clone())
            .filter(|i| !i.is_empty())
            .ok_or_else(|| Status::invalid_argument("CreateContainer: image is empty"))?;
        let log_path = if sm.log_directory.is_empty() || cfg.log_path.is_empty() {
            String::new()
        } else {
            std::path::Path::new(&sm.log_directory)
                .join(&cfg.log_path)
                .display()
                .to_string()
        };
        if let Some(d) = std::path::Path::new(&log_path).parent() {
            if !log_path.is_empty() {
                std::fs::create_dir_all(d).map_err(|e| {
                    Status::internal(format!("create log directory {}: {e}", d.display()))
                })?;
            }
        }
        let pmd = sm.metadata.clone().unwrap_or_default();
        let m = ContainerMeta {
            metadata: Some(md.clone()),
            labels: cfg.labels.clone(),
            annotations: cfg.annotations.clone(),
            log_path: log_path.clone(),
            image: cfg.image.clone(),
            pod: pod.id.clone(),
        };
        let name = meta::berth_name(&[
            "k8s",
            &md.name,
            &pmd.name,
            &pmd.namespace,
            &pmd.uid,
            &md.attempt.to_string(),
        ]);
        let mut args: Vec<String> = vec![
            "create".into(),
            "--pull=never".into(),
            "--name".into(),
            name,
            "--pod".into(),
            pod.id.clone(),
            // A pod's namespaces belong to the host's user namespace (the
            // CRI's user namespaces for pods are a later step), whatever
            // the engine's default.
            "--userns=host".into(),
            format!(
                "--label={}={}",
                meta::CONTAINER,
                serde_json::to_string(&m).map_err(|e| Status::internal(e.to_string()))?
            ),
        ];
        if !log_path.is_empty() {
            args.push(format!("--log-opt=path={log_path}"));
        }
        for kv in &cfg.envs {
            args.push(format!("--env={}={}", kv.key, kv.value));
        }
        if !cfg.working_dir.is_empty() {
            args.push(format!("--workdir={}", cfg.working_dir));
        }
        for mnt in &cfg.mounts {
            let ro = if mnt.readonly { ":ro" } else { "" };
            args.push(format!(
                "--volume={}:{}{ro}",
                mnt.host_path, mnt.container_path
            ));
        }
        if cfg.tty {
            args.push("--tty".into());
        }
        if cfg.stdin {
            args.push("--interactive".into());
        }
        if let Some(l) = &cfg.linux {
            if let Some(res) = &l.resources {
                resource_flags(res, &mut args);
            }
            if let Some(sc) = &l.security_context {
                if sc.privileged {
                    args.push("--privileged".into());
                }
                if sc.readonly_rootfs {
                    args.push("--read-only".into());
                }
                if let Some(u) = &sc.run_as_user {
                    let g = sc.run_as_group.as_ref().map(|g| format!(":{}", g.value));
                    args.push(format!("--user={}{}", u.value, g.unwrap_or_default()));
                } else if !sc.run_as_username.is_empty() {
                    args.push(format!("--user={}", sc.run_as_username));
                }
                crate::secctx::container_flags(sc, &mut args)?;
                if let Some(c) = &sc.capabilities {
                    for a in &c.add_capabilities {
                        args.push(format!("--cap-add={a}"));
                    }
                    for d in &c.drop_capabilities {
                        args.push(format!("--cap-drop={d}"));
                    }
                }
            }
        }
        crate::secctx::sysctl_flags(&sm.sysctls, &mut args);
        // CRI: `command` replaces the image's entrypoint, `args` its cmd.
        let mut rest = Vec::new();
        if let Some((first, more)) = cfg.command.split_first() {
            args.push(format!("--entrypoint={first}"));
            rest.extend(more.iter().cloned());
        }
        rest.extend(cfg.args.iter().cloned());
        args.push(image);
        args.extend(rest);
        let id = self.0.berth(&args).await?;
        let id = id.lines().last().unwrap_or_default().to_string();
        Ok(Response::new(CreateContainerResponse { container_id: id }))
    }

    async fn start_container(
        &self,
        r: Request<StartContainerRequest>,
    ) -> R<StartContainerResponse> {
        let id = r.into_inner().container_id;
        let (row, _) = self.0.read(move |e| find_container(e, &id)).await?;
        self.0.berth(&["start".into(), row.id]).await?;
        Ok(Response::new(StartContainerResponse {}))
    }

    async fn stop_container(&self, r: Request<StopContainerRequest>) -> R<StopContainerResponse> {
        let r = r.into_inner();
        let id = r.container_id;
        let found = self
            .0
            .read(move |e| match find_container(e, &id) {
                Ok((row, _)) => Ok(Some(row)),
                Err(s) if s.code() == tonic::Code::NotFound => Ok(None),
                Err(s) => Err(s),
            })
            .await?;
        if let Some(row) = found.filter(|row| row.status == RowStatus::Running) {
            self.0
                .berth(&[
                    "stop".into(),
                    "-t".into(),
                    r.timeout.max(0).to_string(),
                    row.id,
                ])
                .await?;
        }
        Ok(Response::new(StopContainerResponse {}))
    }

    async fn remove_container(
        &self,
        r: Request<RemoveContainerRequest>,
    ) -> R<RemoveContainerResponse> {
        let id = r.into_inner().container_id;
        let found = self
            .0
            .read(move |e| match find_container(e, &id) {
                Ok((row, _)) => Ok(Some(row)),
                Err(s) if s.code() == tonic::Code::NotFound => Ok(None),
                Err(s) => Err(s),
            })
            .await?;
        if let Some(row) = found {
            self.0.berth(&["rm".into(), "-f".into(), row.id]).await?;
        }
        Ok(Response::new(RemoveContainerResponse {}))
    }

    async fn list_containers(
        &self,
        r: Request<ListContainersRequest>,
    ) -> R<ListContainersResponse> {
        let f = r.into_inner().filter;
        let containers = self
            .0
            .read(move |e| {
                let mut out = Vec::new();
                for (row, m) in cri_containers(e)? {
                    let c = to_container(&row, &m);
                    if let Some(f) = &f {
                        if !c.id.starts_with(&f.id)
                            || !c.pod_sandbox_id.starts_with(&f.pod_sandbox_id)
                            || f.state.as_ref().is_some_and(|s| s.state != c.state)
                            || !labels_match(&f.label_selector, &c.labels)
                        {
                            continue;
                        }
                    }
                    out.push(c);
                }
                Ok(out)
            })
            .await?;
        Ok(Response::new(ListContainersResponse { containers }))
    }

    async fn container_status(
        &self,
        r: Request<ContainerStatusRequest>,
    ) -> R<ContainerStatusResponse> {
        let id = r.into_inner().container_id;
        let status = self
            .0
            .read(move |e| {
                let (row, m) = find_container(e, &id)?;
                let state = container_state(&row);
                let (reason, exit_code) = match state {
                    ContainerState::ContainerExited => {
                        let code = row.exit_code.unwrap_or(-1);
                        (if code == 0 { "Completed" } else { "Error" }, code)
                    }
                    _ => ("", 0),
                };
                Ok(ContainerStatus {
                    id: row.id.clone(),
                    metadata: m.metadata.clone(),
                    state: state as i32,
                    created_at: meta::ns(row.created),
                    started_at: row.started.map(meta::ns).unwrap_or(0),
                    finished_at: row.finished.map(meta::ns).unwrap_or(0),
                    exit_code,
                    image: m.image.clone(),
                    image_ref: row.image_id.clone(),
                    reason: reason.into(),
                    labels: m.labels.clone(),
                    annotations: m.annotations.clone(),
                    log_path: m.log_path.clone(),
                    ..Default::default()
                })
            })
            .await?;
        Ok(Response::new(ContainerStatusResponse {
            status: Some(status),
            ..Default::default()
        }))
    }

    async fn update_container_resources(
        &self,
        r: Request<UpdateContainerResourcesRequest>,
    ) -> R<UpdateContainerResourcesResponse> {
        let r = r.into_inner();
        let id = r.container_id;
        let (row, _) = self.0.read(move |e| find_container(e, &id)).await?;
        let mut args = vec!["update".to_string()];
        if let Some(l) = &r.linux {
            resource_flags(l, &mut args);
        }
        if args.len() > 1 {
            args.push(row.id);
            self.0.berth(&args).await?;
        }
        Ok(Response::new(UpdateContainerResourcesResponse {}))
    }

    /// berth's monitor opens the CRI log file for every entry it writes,
    /// so a log the kubelet rotated away is recreated with the next line:
    /// there is nothing to reopen. The call still checks the container is
    /// running, as the CRI asks.
    async fn reopen_container_log(
        &self,
        r: Request<ReopenContainerLogRequest>,
    ) -> R<ReopenContainerLogResponse> {
        let id = r.into_inner().container_id;
        let (row, _) = self.0.read(move |e| find_container(e, &id)).await?;
        if row.status != RowStatus::Running {
            return Err(Status::failed_precondition(format!(
                "container {} is not running",
                row.id
            )));
        }
        Ok(Response::new(ReopenContainerLogResponse {}))
    }

    async fn exec_sync(&self, r: Request<ExecSyncRequest>) -> R<ExecSyncResponse> {
        let r = r.into_inner();
        if r.cmd.is_empty() {
            return Err(Status::invalid_argument("ExecSync: cmd is empty"));
        }
        let id = r.container_id.clone();
        let (row, _) = self.0.read(move |e| find_container(e, &id)).await?;
        if row.status != RowStatus::Running {
            return Err(Status::failed_precondition(format!(
                "container {} is not running",
                row.id
            )));
        }
        let mut args = vec!["exec".to_string(), row.id];
        args.extend(r.cmd);
        let run = self.0.run(&args);
        let o = if r.timeout > 0 {
            match tokio::time::timeout(Duration::from_secs(r.timeout as u64), run).await {
                Ok(o) => o?,
                Err(_) => {
                    return Err(Status::deadline_exceeded(format!(
                        "ExecSync: command timed out after {}s",
                        r.timeout
                    )))
                }
            }
        } else {
            run.await?
        };
        Ok(Response::new(ExecSyncResponse {
            stdout: o.stdout,
            stderr: o.stderr,
            exit_code: o.code,
        }))
    }

    async fn exec(&self, _: Request<ExecRequest>) -> R<ExecResponse> {
        Err(unimplemented("Exec (streaming)"))
    }

    async fn attach(&self, _: Request<AttachRequest>) -> R<AttachResponse> {
        Err(unimplemented("Attach (streaming)"))
    }

    async fn port_forward(&self, _: Request<PortForwardRequest>) -> R<PortForwardResponse> {
        Err(unimplemented("PortForward (streaming)"))
    }

    async fn container_stats(
        &self,
        r: Request<ContainerStatsRequest>,
    ) -> R<ContainerStatsResponse> {
        let id = r.into_inner().container_id;
        let stats = self
            .0
            .read(move |e| {
                let (row, m) = find_container(e, &id)?;
                Ok(stats_of(e, &row, &m))
            })
            .await?;
        Ok(Response::new(ContainerStatsResponse { stats: Some(stats) }))
    }

    async fn list_container_stats(
        &self,
        r: Request<ListContainerStatsRequest>,
    ) -> R<ListContainerStatsResponse> {
        let f = r.into_inner().filter;
        let stats = self
            .0
            .read(move |e| {
                let mut out = Vec::new();
                for (row, m) in cri_containers(e)? {
                    if let Some(f) = &f {
                        if !row.id.starts_with(&f.id)
                            || !m.pod.starts_with(&f.pod_sandbox_id)
                            || !labels_match(&f.label_selector, &m.labels)
                        {
                            continue;
                        }
                    }
                    if row.status == RowStatus::Running {
                        out.push(stats_of(e, &row, &m));
                    }
                }
                Ok(out)
            })
            .await?;
        Ok(Response::new(ListContainerStatsResponse { stats }))
    }

    async fn pod_sandbox_stats(
        &self,
        _: Request<PodSandboxStatsRequest>,
    ) -> R<PodSandboxStatsResponse> {
        Err(unimplemented("PodSandboxStats"))
    }

    async fn list_pod_sandbox_stats(
        &self,
        _: Request<ListPodSandboxStatsRequest>,
    ) -> R<ListPodSandboxStatsResponse> {
        Err(unimplemented("ListPodSandboxStats"))
    }

    async fn update_runtime_config(
        &self,
        _: Request<UpdateRuntimeConfigRequest>,
    ) -> R<UpdateRuntimeConfigResponse> {
        // The pod CIDR the kubelet hands out: berth's bridge driver picks
        // its own subnet, so there is nothing to apply.
        Ok(Response::new(UpdateRuntimeConfigResponse {}))
    }

    async fn status(&self, _: Request<StatusRequest>) -> R<StatusResponse> {
        let cond = |t: &str| RuntimeCondition {
            r#type: t.into(),
            status: true,
            ..Default::default()
        };
        Ok(Response::new(StatusResponse {
            status: Some(RuntimeStatus {
                conditions: vec![cond("RuntimeReady"), cond("NetworkReady")],
            }),
            ..Default::default()
        }))
    }

    async fn checkpoint_container(
        &self,
        _: Request<CheckpointContainerRequest>,
    ) -> R<CheckpointContainerResponse> {
        Err(unimplemented("CheckpointContainer"))
    }

    type GetContainerEventsStream = tokio_stream::Empty<Result<ContainerEventResponse, Status>>;

    async fn get_container_events(
        &self,
        _: Request<GetEventsRequest>,
    ) -> R<Self::GetContainerEventsStream> {
        Err(unimplemented("GetContainerEvents"))
    }

    async fn list_metric_descriptors(
        &self,
        _: Request<ListMetricDescriptorsRequest>,
    ) -> R<ListMetricDescriptorsResponse> {
        Err(unimplemented("ListMetricDescriptors"))
    }

    async fn list_pod_sandbox_metrics(
        &self,
        _: Request<ListPodSandboxMetricsRequest>,
    ) -> R<ListPodSandboxMetricsResponse> {
        Err(unimplemented("ListPodSandboxMetrics"))
    }

    async fn runtime_config(&self, _: Request<RuntimeConfigRequest>) -> R<RuntimeConfigResponse> {
        Err(unimplemented("RuntimeConfig"))
    }
}
