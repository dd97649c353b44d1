//! `berth create`, `run`, `start`, `restart` and the hidden
//! `container-monitor` (the per-container monitor process).

use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::{Context, Result};
use berth_engine::{handoff, lifecycle, Engine, RunOptions};
use clap::Args;

/// Engine-wide flags (global to every subcommand).
#[derive(Debug, Args)]
pub struct EngineArgs {
    /// Runtime state root (tmpfs); default /run/berth as root,
    /// $XDG_RUNTIME_DIR/berth (else /tmp/berth-UID) rootless.
    #[arg(long, global = true, env = "BERTH_RUNROOT", default_value_os_t = berth_engine::rootless::default_runroot())]
    pub runroot: PathBuf,
    /// Absolute cgroup parent of new containers (their cgroup is PARENT/ID).
    #[arg(long, global = true, env = "BERTH_CGROUP_PARENT", default_value = berth_engine::DEFAULT_CGROUP_PARENT)]
    pub cgroup_parent: String,
}

impl EngineArgs {
    /// The engine over `root` and these flags.
    pub fn engine(&self, root: &Path) -> Result<Engine> {
        if !self.cgroup_parent.starts_with('/') {
            anyhow::bail!(
                "--cgroup-parent {:?} must be an absolute cgroup path (e.g. /berth)",
                self.cgroup_parent
            );
        }
        Ok(Engine::new(root, &self.runroot, &self.cgroup_parent))
    }
}

/// Options of `create` and `run`.
#[derive(Debug, Args)]
#[command(trailing_var_arg = true)]
pub struct RunArgs {
    /// Run in the background and print the container ID (run only).
    #[arg(short = 'd', long)]
    pub detach: bool,
    /// Keep stdin open (attached to the container in the foreground).
    #[arg(short = 'i', long)]
    pub interactive: bool,
    /// Give the container a terminal (pty).
    #[arg(short = 't', long)]
    pub tty: bool,
    /// With -i: close the container's stdin once the first attached
    /// client leaves (Docker's StdinOnce, set by the Docker API service).
    #[arg(long, hide = true)]
    pub stdin_once: bool,
    /// Remove the container when it exits.
    #[arg(long)]
    pub rm: bool,
    /// Container name (generated when absent).
    #[arg(long)]
    pub name: Option<String>,
    /// Run in this pod (name or ID): share its network, IPC and UTS
    /// namespaces (example: `berth run --pod web busybox`).
    #[arg(long)]
    pub pod: Option<String>,
    /// Set an environment variable (K=V, or K to copy ours).
    #[arg(short = 'e', long = "env")]
    pub env: Vec<String>,
    /// Read environment variables from a file.
    #[arg(long)]
    pub env_file: Vec<PathBuf>,
    /// Working directory inside the container.
    #[arg(short = 'w', long)]
    pub workdir: Option<String>,
    /// User (name or uid, optionally :group).
    #[arg(short = 'u', long)]
    pub user: Option<String>,
    /// Override the image's entrypoint ("" clears it).
    #[arg(long)]
    pub entrypoint: Option<String>,
    /// Container host name.
    #[arg(long)]
    pub hostname: Option<String>,
    /// Bind mount /host:/container[:OPTS], named volume NAME:/container[:ro],
    /// or anonymous volume /container. Bind OPTS: ro|rw, rprivate (default)|private|
    /// rshared|shared|rslave|slave, U (chown the host path to the container user),
    /// z|Z (ignored: no SELinux). The host path must exist.
    /// Example: -v /srv/data:/data:ro,rslave
    #[arg(short = 'v', long = "volume")]
    pub volume: Vec<String>,
    /// Mount: type=bind,source=..,target=..[,readonly][,bind-propagation=P][,bind-nonrecursive]
    /// [,bind-create-src][,U], type=volume,source=NAME,target=.. or type=tmpfs,target=..
    #[arg(long)]
    pub mount: Vec<String>,
    /// Mount the volumes of another container (CONTAINER[:ro|rw]).
    #[arg(long)]
    pub volumes_from: Vec<String>,
    /// Mount a tmpfs at this path (/path[:opts]).
    #[arg(long)]
    pub tmpfs: Vec<String>,
    /// Mount the rootfs read-only.
    #[arg(long)]
    pub read_only: bool,
    /// Memory limit (e.g. 512m).
    #[arg(short = 'm', long)]
    pub memory: Option<String>,
    /// CPU limit (e.g. 1.5).
    #[arg(long)]
    pub cpus: Option<String>,
    /// CPU shares (relative weight).
    #[arg(long)]
    pub cpu_shares: Option<u64>,
    /// Maximum number of processes.
    #[arg(long)]
    pub pids_limit: Option<i64>,
    /// Add a capability (e.g. NET_ADMIN).
    #[arg(long)]
    pub cap_add: Vec<String>,
    /// Drop a capability.
    #[arg(long)]
    pub cap_drop: Vec<String>,
    /// no-new-privileges, seccomp=unconfined, seccomp=FILE, masked-paths=P1:P2 or
    /// readonly-paths=P1:P2 (replace the default lists).
    #[arg(long)]
    pub security_opt: Vec<String>,
    /// User namespace: host (the default), auto or auto:size=N (a range
    /// of N ids, default 65536, of berth's own, from the `berth` entry of
    /// /etc/subuid and /etc/subgid, appended when missing).
    #[arg(long, value_name = "MODE")]
    pub userns: Option<String>,
    /// Run in a user namespace with this uid map line,
    /// CONTAINER:HOST:SIZE (repeatable; the gid map too unless --gidmap).
    #[arg(long, value_name = "CONTAINER:HOST:SIZE")]
    pub uidmap: Vec<String>,
    /// A gid map line, CONTAINER:HOST:SIZE (repeatable).
    #[arg(long, value_name = "CONTAINER:HOST:SIZE")]
    pub gidmap: Vec<String>,
    /// All capabilities, no seccomp, no masked paths.
    #[arg(long)]
    pub privileged: bool,
    /// Run a static init (catatonit or tini from the host) as PID 1: it
    /// reaps orphaned processes and forwards signals to the command
    /// (example: `berth run --init IMAGE sh -c 'exit 7'`).
    #[arg(long)]
    pub init: bool,
    /// The host's static init binary for --init (default: $BERTH_INIT_PATH,
    /// else /usr/libexec/podman/catatonit, /usr/bin/catatonit,
    /// /usr/bin/tini-static, /usr/bin/docker-init, /usr/bin/tini).
    #[arg(long, value_name = "PATH", requires = "init")]
    pub init_path: Option<PathBuf>,
    /// Restart policy: no, always, unless-stopped, on-failure[:N].
    #[arg(long)]
    pub restart: Option<String>,
    /// Set a label (K=V).
    #[arg(short = 'l', long)]
    pub label: Vec<String>,
    /// Network: a bridge network's name (default: the `berth` network;
    /// `bridge` is its alias), none, host, or container:NAME. Repeat it
    /// (or give `a,b`) to join several bridge networks: eth0, eth1, ... in
    /// that order, the default route and published ports on the first.
    #[arg(long, alias = "net")]
    pub network: Vec<String>,
    /// Publish a port: [hostIP:][hostPort:]containerPort[/tcp|udp]
    /// (ranges allowed; no hostPort = a free one is chosen).
    #[arg(short = 'p', long)]
    pub publish: Vec<String>,
    /// The container's address on its network (on the first one with
    /// several --network).
    #[arg(long)]
    pub ip: Option<String>,
    /// Another name the container answers to on its networks' DNS.
    #[arg(long = "network-alias", alias = "net-alias")]
    pub network_alias: Vec<String>,
    /// DNS server for /etc/resolv.conf.
    #[arg(long)]
    pub dns: Vec<String>,
    /// DNS search domain.
    #[arg(long = "dns-search")]
    pub dns_search: Vec<String>,
    /// DNS option (resolv.conf `options`).
    #[arg(long = "dns-option", alias = "dns-opt")]
    pub dns_option: Vec<String>,
    /// Add a line to /etc/hosts: NAME:IP (IP may be host-gateway).
    #[arg(long = "add-host")]
    pub add_host: Vec<String>,
    /// Pull the image: always, missing (default) or never.
    #[arg(long, default_value = "missing")]
    pub pull: String,
    /// Platform to pull for multi-platform images (os/arch[/variant]).
    #[arg(long)]
    pub platform: Option<String>,
    #[command(flatten)]
    pub registry: super::registry::RegistryArgs,
    #[command(flatten)]
    pub flags: super::run_flags::FlagArgs,
    /// Image name or ID.
    pub image: String,
    /// Command and arguments (replace the image's Cmd).
    #[arg(allow_hyphen_values = true)]
    pub command: Vec<String>,
}

impl RunArgs {
    fn options(&self, engine: &Engine) -> Result<RunOptions> {
        Ok(RunOptions {
            name: self.name.clone(),
            image: self.image.clone(),
            cmd: self.command.clone(),
            entrypoint: self.entrypoint.clone(),
            env: self.env.clone(),
            env_files: self.env_file.clone(),
            workdir: self.workdir.clone(),
            user: self.user.clone(),
            hostname: self.hostname.clone(),
            volumes: self
                .volume
                .iter()
                .map(|v| super::run_flags::absolute_volume(v))
                .collect::<Result<_>>()?,
            mounts: self.mount.clone(),
            volumes_from: self.volumes_from.clone(),
            tmpfs: self.tmpfs.clone(),
            read_only: self.read_only,
            memory: self.memory.clone(),
            cpus: self.cpus.clone(),
            cpu_shares: self.cpu_shares,
            pids_limit: self.pids_limit,
            cap_add: self.cap_add.clone(),
            cap_drop: self.cap_drop.clone(),
            security_opt: self.security_opt.clone(),
            privileged: self.privileged,
            init: self.init,
            init_path: self.init_path.clone(),
            restart: self.restart.clone(),
            labels: self.label.clone(),
            // Repeated flags are stored as one comma list.
            network: (!self.network.is_empty()).then(|| self.network.join(",")),
            publish: self.publish.clone(),
            ip: self.ip.clone(),
            network_aliases: self.network_alias.clone(),
            dns: self.dns.clone(),
            dns_search: self.dns_search.clone(),
            dns_option: self.dns_option.clone(),
            add_host: self.add_host.clone(),
            interactive: self.interactive,
            stdin_once: self.stdin_once && self.interactive,
            tty: self.tty,
            rm: self.rm,
            cgroup_parent: engine.cgroup_parent.clone(),
            extra: self.flags.extra(),
            pod: self.pod.clone(),
            userns: berth_engine::userns::UsernsOptions {
                userns: self.userns.clone(),
                uidmap: self.uidmap.clone(),
                gidmap: self.gidmap.clone(),
            },
        })
    }

    /// Creates the container (`--cidfile` claimed first, written after).
    fn create_container(&self, engine: &Engine) -> Result<berth_engine::ContainerRow> {
        let cid = self.flags.claim_cidfile()?;
        let created = self
            .options(engine)
            .and_then(|o| Ok(berth_engine::create::create(engine, &o)?));
        match created {
            Ok(row) => {
                super::run_flags::write_cidfile(cid, &row.id, self.flags.cidfile.as_deref())?;
                Ok(row)
            }
            Err(e) => {
                if cid.is_some() {
                    self.flags.release_cidfile();
                }
                Err(e)
            }
        }
    }
}

/// Options of `start`.
#[derive(Debug, Args)]
pub struct StartArgs {
    /// Attach: run in the foreground and return the container's status
    /// (a `-t` container's pty follows our terminal's size).
    #[arg(short = 'a', long)]
    pub attach: bool,
    /// Attach our stdin too (implies --attach; example: `berth create -it
    /// --name box IMAGE sh` then `berth start -ai box`).
    #[arg(short = 'i', long)]
    pub interactive: bool,
    /// Containers (name or ID).
    #[arg(required = true)]
    pub containers: Vec<String>,
}

/// Options of `restart`.
#[derive(Debug, Args)]
pub struct RestartArgs {
    /// Seconds to wait for the stop signal before SIGKILL (default: the
    /// container's --stop-timeout, else 10).
    #[arg(short = 't', long)]
    pub time: Option<u64>,
    #[arg(required = true)]
    pub containers: Vec<String>,
}

/// The hidden monitor command.
#[derive(Debug, Args)]
pub struct MonitorArgs {
    /// Container ID.
    pub id: String,
    /// Resume after the small monitor saw the container exit with this
    /// status (set by `berth-monitor` only).
    #[arg(long, hide = true, allow_negative_numbers = true)]
    pub exited: Option<i32>,
    /// Restarts done so far (with --exited).
    #[arg(long, hide = true, default_value_t = 0)]
    pub restarts: u32,
    /// The attach socket's descriptor, inherited (with --exited).
    #[arg(long, hide = true)]
    pub listener: Option<i32>,
    /// Attached clients' descriptors, inherited (with --exited).
    #[arg(long, hide = true)]
    pub client: Vec<i32>,
    /// The control socket's descriptor, inherited (with --exited).
    #[arg(long, hide = true)]
    pub ctl_listener: Option<i32>,
    /// Control clients' descriptors, inherited (with --exited).
    #[arg(long, hide = true)]
    pub ctl_client: Vec<i32>,
}

/// Re-executes from a read-only view of our binary before touching a
/// container (CVE-2019-5736), as berth-runtime does.
/// Before that, notes where the small monitor binary is (next to ours),
/// as the protected copy's path says nothing about it.
pub(super) fn protect_binary() -> Result<()> {
    if std::env::var_os(handoff::ENV).is_none() {
        let dir = std::fs::read_link("/proc/self/exe")
            .ok()
            .and_then(|p| p.parent().map(Path::to_path_buf));
        if let Some(small) = handoff::find_small(None, dir.as_deref()) {
            // Single-threaded here (nothing has started a thread yet).
            std::env::set_var(handoff::ENV, small);
        } else {
            std::env::set_var(handoff::ENV, "");
        }
    }
    berth_runtime::selfexe::ensure_sealed()?;
    Ok(())
}

/// The command that runs the monitor of `id`: this binary, re-executed.
pub(super) fn monitor_command(root: &Path, engine: &Engine, id: &str) -> Command {
    let mut c = Command::new("/proc/self/exe");
    c.arg("--root")
        .arg(root)
        .arg("--runroot")
        .arg(&engine.runroot)
        .arg("--cgroup-parent")
        .arg(&engine.cgroup_parent)
        .arg("container-monitor")
        .arg(id);
    c
}

/// `berth create`: prints the new container's ID.
pub fn create(root: &Path, e: &EngineArgs, a: &RunArgs) -> Result<i32> {
    let engine = e.engine(root)?;
    let row = create_row(&engine, a)?;
    println!("{}", row.id);
    Ok(0)
}

/// What `berth create` does (also in the Docker API service's process,
/// see [`super::create_in_process`]): the new container.
pub(super) fn create_row(engine: &Engine, a: &RunArgs) -> Result<berth_engine::ContainerRow> {
    let root = engine.root.as_path();
    if a.detach {
        anyhow::bail!("create has no --detach (containers are started with `berth start`)");
    }
    if !a.flags.attach.is_empty() {
        anyhow::bail!(
            "-a/--attach goes with `berth run`; attach a created container with `berth start -a`"
        );
    }
    super::registry::ensure_platform_image(
        root,
        &a.image,
        &a.pull,
        a.platform.as_deref(),
        &a.registry,
    )?;
    a.create_container(engine)
}

/// `berth run`: the container's exit status in the foreground, 0 after
/// printing its ID with `-d`.
pub fn run(root: &Path, e: &EngineArgs, a: &RunArgs) -> Result<i32> {
    protect_binary()?;
    let engine = e.engine(root)?;
    if a.detach && a.rm && a.restart.as_deref().is_some_and(|r| r != "no") {
        anyhow::bail!("--rm conflicts with --restart");
    }
    // Pull threads are joined before the runtime forks: the process is
    // single-threaded again by then.
    if a.detach && a.flags.log_driver.as_deref() == Some("passthrough") {
        anyhow::bail!(
            "--log-driver passthrough gives the container berth's own stdio: it needs a foreground run (no -d)"
        );
    }
    if a.detach && !a.flags.attach.is_empty() {
        anyhow::bail!("-a/--attach conflicts with -d/--detach");
    }
    let streams = a.flags.attached()?;
    super::registry::ensure_platform_image(
        root,
        &a.image,
        &a.pull,
        a.platform.as_deref(),
        &a.registry,
    )?;
    let row = a.create_container(&engine)?;
    if a.detach {
        let cmd = monitor_command(root, &engine, &row.id);
        lifecycle::start_detached(&engine, &row, cmd)?;
        println!("{}", row.id);
        return Ok(0);
    }
    streams.detach_others()?;
    Ok(lifecycle::run_foreground(
        &engine,
        &row,
        a.interactive && streams.stdin,
    )?)
}

/// `berth start [-a]`.
pub fn start(root: &Path, e: &EngineArgs, a: &StartArgs) -> Result<i32> {
    protect_binary()?;
    let engine = e.engine(root)?;
    if a.attach || a.interactive {
        if a.containers.len() != 1 {
            anyhow::bail!("start --attach/--interactive takes exactly one container");
        }
        let row = lifecycle::find(&engine, &a.containers[0])?;
        return Ok(lifecycle::run_foreground(&engine, &row, a.interactive)?);
    }
    for c in &a.containers {
        let row = lifecycle::find(&engine, c)?;
        if row.status != berth_engine::Status::Running {
            lifecycle::start_detached(&engine, &row, monitor_command(root, &engine, &row.id))?;
        }
        println!("{c}");
    }
    Ok(0)
}

/// `berth restart`: stop (with a timeout) then start detached.
pub fn restart(root: &Path, e: &EngineArgs, a: &RestartArgs) -> Result<i32> {
    protect_binary()?;
    let engine = e.engine(root)?;
    for c in &a.containers {
        let t = berth_engine::flags::stop_timeout(&engine, c, a.time);
        let row = berth_engine::ops::stop(&engine, c, t)?;
        let row = lifecycle::find(&engine, &row.id)?;
        lifecycle::start_detached(&engine, &row, monitor_command(root, &engine, &row.id))?;
        println!("{c}");
    }
    Ok(0)
}

/// The monitor process: reports on its stdout, then holds the container.
/// Without --exited it was started by `berth run -d`/`start`; with it,
/// the small monitor (`berth-monitor`) exec'd it back after the exit.
pub fn monitor(root: &Path, e: &EngineArgs, a: &MonitorArgs) -> Result<i32> {
    let engine = e.engine(root)?;
    let small = handoff::find_small(std::env::var_os(handoff::ENV), None).map(|exe| {
        let back = monitor_command(root, &engine, &a.id);
        handoff::Small {
            exe,
            back: std::iter::once(back.get_program().to_os_string())
                .chain(back.get_args().map(|a| a.to_os_string()))
                .collect(),
        }
    });
    let (ready, resume) = match a.exited {
        None => {
            if a.listener.is_some()
                || !a.client.is_empty()
                || a.ctl_listener.is_some()
                || !a.ctl_client.is_empty()
            {
                anyhow::bail!(
                    "container-monitor: --listener, --client, --ctl-listener and --ctl-client go with --exited"
                );
            }
            let ready = rustix::io::fcntl_dupfd_cloexec(std::io::stdout(), 3)?;
            (Some(ready), None)
        }
        Some(code) => {
            let mut fds = a
                .listener
                .iter()
                .chain(&a.client)
                .chain(&a.ctl_listener)
                .chain(&a.ctl_client)
                .copied()
                .collect::<Vec<_>>();
            fds.sort_unstable();
            if fds.windows(2).any(|w| w[0] == w[1]) {
                anyhow::bail!("container-monitor: a descriptor is handed over twice");
            }
            let take = |fd: i32| -> Result<std::os::fd::OwnedFd> {
                let owned = berth_sys::fd::owned_from_inherited(fd).with_context(|| {
                    format!("container-monitor {}: inherited descriptor {fd}", a.id)
                })?;
                rustix::io::fcntl_setfd(&owned, rustix::io::FdFlags::CLOEXEC)?;
                Ok(owned)
            };
            let resume = berth_engine::monitor::Resume {
                code,
                restarts: a.restarts,
                hub: berth_engine::attach::HubFds {
                    listener: a.listener.map(take).transpose()?,
                    clients: a.client.iter().map(|&fd| take(fd)).collect::<Result<_>>()?,
                    ctl_listener: a.ctl_listener.map(take).transpose()?,
                    ctl_clients: a
                        .ctl_client
                        .iter()
                        .map(|&fd| take(fd))
                        .collect::<Result<_>>()?,
                },
            };
            (None, Some(resume))
        }
    };
    let health_command = {
        let c = monitor_command(root, &engine, &a.id);
        let line: Vec<std::ffi::OsString> = std::iter::once(c.get_program().to_os_string())
            .chain(c.get_args().map(|a| a.to_os_string()))
            .collect();
        berth_engine::health::command_from_monitor(line[0].clone(), &line)
    };
    let opts = berth_engine::monitor::Options {
        resume,
        small,
        health_command,
    };
    let code = berth_engine::monitor::run(&engine, &a.id, ready, opts)?;
    Ok(code)
}
