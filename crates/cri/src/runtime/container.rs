//! Containers of pod sandboxes: create, start, stop, remove, list,
//! status, resources, logs, ExecSync and stats.

use std::time::Duration;

use berth_engine::db::Status as RowStatus;
use berth_engine::{lifecycle, ContainerRow};
use k8s_cri::v1::*;
use tonic::Status;

use super::{find_sandbox, labels_match};
use crate::meta::{self, ContainerMeta};
use crate::{engine_err, Ctx};

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

/// `row` if its container runs, else the CRI's failed precondition.
pub(crate) fn running(row: ContainerRow) -> Result<ContainerRow, Status> {
    if row.status != RowStatus::Running {
        return Err(Status::failed_precondition(format!(
            "container {} is not running",
            row.id
        )));
    }
    Ok(row)
}

/// One CRI container by ID (or unique prefix).
pub(crate) fn find_container(
    e: &berth_engine::Engine,
    id: &str,
) -> Result<(ContainerRow, ContainerMeta), Status> {
    if id.is_empty() {
        return Err(Status::invalid_argument("container ID is empty"));
    }
    // Only the container asked for is refreshed (on the start path of
    // every pod; a node has many containers).
    let rows = e.db().map_err(engine_err)?.list().map_err(engine_err)?;
    let (row, m) = rows
        .into_iter()
        .filter(|r| r.id.starts_with(id))
        .find_map(|r| meta::container_of(&r.labels).map(|m| (r, m)))
        .ok_or_else(|| Status::not_found(format!("container {id} not found")))?;
    let row = lifecycle::refresh(e, row).map_err(engine_err)?;
    Ok((row, m))
}

/// The container `id`, or none when it is gone (Stop and Remove of a
/// removed container succeed, CRI v1 api.proto).
async fn container_if_any(ctx: &Ctx, id: String) -> Result<Option<ContainerRow>, Status> {
    ctx.read(move |e| match find_container(e, &id) {
        Ok((row, _)) => Ok(Some(row)),
        Err(s) if s.code() == tonic::Code::NotFound => Ok(None),
        Err(s) => Err(s),
    })
    .await
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

/// The ID of the container whose PID namespace a container of PID mode
/// TARGET joins: as containerd 1.6's `validateTargetContainer`, it must
/// exist, belong to the same pod sandbox and run.
fn pid_target(e: &berth_engine::Engine, pod: &str, target: &str) -> Result<String, Status> {
    if target.is_empty() {
        return Err(Status::invalid_argument(
            "CreateContainer: PID mode TARGET needs namespace_options.target_id",
        ));
    }
    let (row, m) = find_container(e, target).map_err(|s| {
        Status::not_found(format!(
            "CreateContainer: PID mode TARGET: target container {target} not found: {}",
            s.message()
        ))
    })?;
    if m.pod != pod {
        return Err(Status::invalid_argument(format!(
            "CreateContainer: PID mode TARGET: target container {target} belongs to pod sandbox \
             {}, not {pod}",
            m.pod
        )));
    }
    running(row).map(|r| r.id).map_err(|s| {
        Status::failed_precondition(format!(
            "CreateContainer: PID mode TARGET: {} (start the target first)",
            s.message()
        ))
    })
}

pub async fn create_container(
    ctx: &Ctx,
    r: CreateContainerRequest,
) -> Result<CreateContainerResponse, Status> {
    let cfg = r
        .config
        .ok_or_else(|| Status::invalid_argument("CreateContainer: config is missing"))?;
    let pod_id = r.pod_sandbox_id.clone();
    let (pod, sm) = ctx.read(move |e| find_sandbox(e, &pod_id)).await?;
    let md = cfg.metadata.clone().unwrap_or_default();
    if md.name.is_empty() {
        return Err(Status::invalid_argument(
            "CreateContainer: metadata.name is empty",
        ));
    }
    // PID mode TARGET (`kubectl debug --target`): the target container's
    // PID namespace, checked as containerd checks it at create.
    let pid_target = match cfg
        .linux
        .as_ref()
        .and_then(|l| l.security_context.as_ref())
        .and_then(|s| s.namespace_options.as_ref())
        .filter(|n| n.pid == NamespaceMode::Target as i32)
    {
        Some(n) => {
            let (pod_id, target) = (pod.id.clone(), n.target_id.clone());
            Some(ctx.read(move |e| pid_target(e, &pod_id, &target)).await?)
        }
        None => None,
    };
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
            // The log exists from the start, as containerd's (a reader
            // may open it before the container wrote anything; berth's
            // monitor appends to it).
            std::fs::OpenOptions::new()
                .create(true)
                .append(true)
                .open(&log_path)
                .map_err(|e| Status::internal(format!("create log file {log_path}: {e}")))?;
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
        mounts: cfg.mounts.clone(),
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
    if sm.host_network {
        // NamespaceOption.network NODE: the caller's network namespace.
        args.push("--network=host".into());
    }
    if let Some(t) = pid_target {
        args.push(format!("--pid=container:{t}"));
    }
    if !log_path.is_empty() {
        args.push(format!("--log-opt=path={log_path}"));
    }
    // The sandbox's DNSConfig (RunPodSandbox wrote it).
    if let Some(rc) = meta::resolv_conf(&ctx.engine, &pod.id) {
        args.push(format!("--volume={}:/etc/resolv.conf", rc.display()));
    }
    for kv in &cfg.envs {
        args.push(format!("--env={}={}", kv.key, kv.value));
    }
    if !cfg.working_dir.is_empty() {
        args.push(format!("--workdir={}", cfg.working_dir));
    }
    for mnt in &cfg.mounts {
        // CRI v1 MountPropagation: private, rslave, rshared (as containerd).
        let mut opts = vec![match MountPropagation::try_from(mnt.propagation) {
            Ok(MountPropagation::PropagationHostToContainer) => "rslave",
            Ok(MountPropagation::PropagationBidirectional) => "rshared",
            _ => "rprivate",
        }];
        if mnt.readonly {
            opts.push("ro");
        }
        args.push(format!(
            "--volume={}:{}:{}",
            mnt.host_path,
            mnt.container_path,
            opts.join(",")
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
    if cfg
        .linux
        .as_ref()
        .and_then(|l| l.security_context.as_ref())
        .is_none()
    {
        // No security context: no seccomp profile (see secctx::container_flags).
        args.push("--security-opt=seccomp=unconfined".into());
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
    let id = crate::inproc::create(ctx, args).await?;
    Ok(CreateContainerResponse { container_id: id })
}

pub async fn start_container(
    ctx: &Ctx,
    r: StartContainerRequest,
) -> Result<StartContainerResponse, Status> {
    let id = r.container_id;
    let (row, _) = ctx.read(move |e| find_container(e, &id)).await?;
    crate::inproc::start(ctx, row).await?;
    Ok(StartContainerResponse {})
}

pub async fn stop_container(
    ctx: &Ctx,
    r: StopContainerRequest,
) -> Result<StopContainerResponse, Status> {
    let found = container_if_any(ctx, r.container_id).await?;
    if let Some(row) = found.filter(|row| row.status == RowStatus::Running) {
        ctx.berth(&[
            "stop".into(),
            "-t".into(),
            r.timeout.max(0).to_string(),
            row.id,
        ])
        .await?;
    }
    Ok(StopContainerResponse {})
}

pub async fn remove_container(
    ctx: &Ctx,
    r: RemoveContainerRequest,
) -> Result<RemoveContainerResponse, Status> {
    let found = container_if_any(ctx, r.container_id).await?;
    if let Some(row) = found {
        ctx.berth(&["rm".into(), "-f".into(), row.id]).await?;
    }
    Ok(RemoveContainerResponse {})
}

pub async fn list_containers(
    ctx: &Ctx,
    r: ListContainersRequest,
) -> Result<ListContainersResponse, Status> {
    let f = r.filter;
    let containers = ctx
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
    Ok(ListContainersResponse { containers })
}

pub async fn container_status(
    ctx: &Ctx,
    r: ContainerStatusRequest,
) -> Result<ContainerStatusResponse, Status> {
    let id = r.container_id;
    let status = ctx
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
            // The list entry's fields, then what only the status has.
            let c = to_container(&row, &m);
            Ok(ContainerStatus {
                id: c.id,
                metadata: c.metadata,
                state: c.state,
                created_at: c.created_at,
                image: c.image,
                image_ref: c.image_ref,
                labels: c.labels,
                annotations: c.annotations,
                started_at: row.started.map(meta::ns).unwrap_or(0),
                finished_at: row.finished.map(meta::ns).unwrap_or(0),
                exit_code,
                reason: reason.into(),
                log_path: m.log_path.clone(),
                mounts: m.mounts.clone(),
                ..Default::default()
            })
        })
        .await?;
    Ok(ContainerStatusResponse {
        status: Some(status),
        ..Default::default()
    })
}

pub async fn update_container_resources(
    ctx: &Ctx,
    r: UpdateContainerResourcesRequest,
) -> Result<UpdateContainerResourcesResponse, Status> {
    let id = r.container_id;
    let (row, _) = ctx.read(move |e| find_container(e, &id)).await?;
    let mut args = vec!["update".to_string()];
    if let Some(l) = &r.linux {
        resource_flags(l, &mut args);
    }
    if args.len() > 1 {
        args.push(row.id);
        ctx.berth(&args).await?;
    }
    Ok(UpdateContainerResourcesResponse {})
}

/// berth's monitor opens the CRI log file for every entry it writes,
/// so a log the kubelet rotated away is recreated with the next line;
/// the call checks the container is running, as the CRI asks, and
/// creates the new file at once, as containerd's reopen does.
pub async fn reopen_container_log(
    ctx: &Ctx,
    r: ReopenContainerLogRequest,
) -> Result<ReopenContainerLogResponse, Status> {
    let id = r.container_id;
    let (row, m) = ctx.read(move |e| find_container(e, &id)).await?;
    if row.status != RowStatus::Running {
        return Err(Status::failed_precondition(format!(
            "container {} is not running",
            row.id
        )));
    }
    if !m.log_path.is_empty() {
        std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&m.log_path)
            .map_err(|e| {
                Status::internal(format!(
                    "reopen log file {} of container {}: {e}",
                    m.log_path, row.id
                ))
            })?;
    }
    Ok(ReopenContainerLogResponse {})
}

pub async fn exec_sync(ctx: &Ctx, r: ExecSyncRequest) -> Result<ExecSyncResponse, Status> {
    if r.cmd.is_empty() {
        return Err(Status::invalid_argument("ExecSync: cmd is empty"));
    }
    let id = r.container_id.clone();
    let (row, _) = ctx.read(move |e| find_container(e, &id)).await?;
    if row.status != RowStatus::Running {
        return Err(Status::failed_precondition(format!(
            "container {} is not running",
            row.id
        )));
    }
    let mut args = vec!["exec".to_string(), row.id];
    args.extend(r.cmd);
    let child = ctx
        .cmd()
        .args(&args)
        .spawn()
        .map_err(|e| Status::internal(format!("ExecSync: run berth exec: {e}")))?;
    let pid = child.id();
    let run = child.wait_with_output();
    tokio::pin!(run);
    let o = if r.timeout > 0 {
        tokio::select! {
            o = &mut run => o,
            _ = tokio::time::sleep(Duration::from_secs(r.timeout as u64)) => {
                // As containerd: the timed-out process is killed, not
                // left running in the container (`berth exec` itself
                // is killed when dropped; its signal forwarding
                // cannot pass on SIGKILL).
                if let Some(pid) = pid {
                    kill_descendants(pid as i32);
                    // `berth exec` reaps it and ends; killed before that,
                    // the process would stay a zombie of the container's
                    // PID 1.
                    let _ = tokio::time::timeout(Duration::from_secs(5), &mut run).await;
                }
                return Err(Status::deadline_exceeded(format!(
                    "ExecSync: command timed out after {}s",
                    r.timeout
                )));
            }
        }
    } else {
        run.await
    }
    .map_err(|e| Status::internal(format!("ExecSync: berth exec: {e}")))?;
    Ok(ExecSyncResponse {
        stdout: o.stdout,
        stderr: o.stderr,
        exit_code: o.status.code().unwrap_or(128),
    })
}

/// SIGKILL to every descendant of `pid` (from /proc/PID/task/*/children),
/// the deepest first.
fn kill_descendants(pid: i32) {
    let children = |p: i32| -> Vec<i32> {
        let Ok(tasks) = std::fs::read_dir(format!("/proc/{p}/task")) else {
            return Vec::new();
        };
        tasks
            .flatten()
            .filter_map(|t| std::fs::read_to_string(t.path().join("children")).ok())
            .flat_map(|s| {
                s.split_whitespace()
                    .filter_map(|c| c.parse().ok())
                    .collect::<Vec<i32>>()
            })
            .collect()
    };
    let mut order = Vec::new();
    let mut todo = children(pid);
    while let Some(c) = todo.pop() {
        todo.extend(children(c));
        order.push(c);
    }
    for c in order.into_iter().rev() {
        let _ = nix::sys::signal::kill(
            nix::unistd::Pid::from_raw(c),
            nix::sys::signal::Signal::SIGKILL,
        );
    }
}

pub async fn container_stats(
    ctx: &Ctx,
    r: ContainerStatsRequest,
) -> Result<ContainerStatsResponse, Status> {
    let id = r.container_id;
    let stats = ctx
        .read(move |e| {
            let (row, m) = find_container(e, &id)?;
            Ok(stats_of(e, &row, &m))
        })
        .await?;
    Ok(ContainerStatsResponse { stats: Some(stats) })
}

pub async fn list_container_stats(
    ctx: &Ctx,
    r: ListContainerStatsRequest,
) -> Result<ListContainerStatsResponse, Status> {
    let f = r.filter;
    let stats = ctx
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
    Ok(ListContainerStatsResponse { stats })
}
