//! Container commands besides run/start: ps, logs, stop, kill, rm, wait,
//! exec, inspect, top, stats, rename, container prune, version, info.

use std::path::Path;

use anyhow::Result;
use berth_engine::{db, inspect, lifecycle, ops, Status};
use clap::{Args, Subcommand};

use super::run::EngineArgs;
use super::views;

/// `ps`.
#[derive(Debug, Args)]
pub struct PsArgs {
    /// Show all containers (default: running only).
    #[arg(short = 'a', long)]
    pub all: bool,
    /// Only IDs.
    #[arg(short = 'q', long)]
    pub quiet: bool,
    /// Output: table, json, a Go template, or `table TEMPLATE`
    /// (example: `--format '{{.Names}} {{.Status}}'`).
    #[arg(long, default_value = "table")]
    pub format: String,
    /// Docker's filters: id=, name= (a regular expression), label=K[=V],
    /// status=, exited=CODE, ancestor=, network=, volume=, health=,
    /// before=, since= (repeatable)
    #[arg(short = 'f', long)]
    pub filter: Vec<String>,
    /// Full IDs and commands.
    #[arg(long)]
    pub no_trunc: bool,
    /// Only the latest created container (of every state).
    #[arg(short = 'l', long)]
    pub latest: bool,
    /// Only the N last created containers (of every state).
    #[arg(short = 'n', long = "last", value_name = "N")]
    pub last: Option<usize>,
    /// Show sizes: the writable layer's and, as virtual, with the image's.
    #[arg(short = 's', long)]
    pub size: bool,
    /// Add the POD ID and PODNAME columns (podman's `ps --pod`).
    #[arg(short = 'p', long)]
    pub pod: bool,
}

/// `logs`.
#[derive(Debug, Args)]
pub struct LogsArgs {
    /// Keep printing new output while the container runs.
    #[arg(short = 'f', long)]
    pub follow: bool,
    /// Only the last N lines.
    #[arg(long)]
    pub tail: Option<usize>,
    /// Only since a time (RFC 3339, unix seconds, or 10s/5m/2h ago).
    #[arg(long)]
    pub since: Option<String>,
    /// Only until a time (same forms as --since).
    #[arg(long)]
    pub until: Option<String>,
    /// Prefix each line with its time.
    #[arg(short = 't', long)]
    pub timestamps: bool,
    /// With several containers, prefix lines with the name instead of the ID.
    #[arg(short = 'n', long)]
    pub names: bool,
    /// Containers; with several, each line starts with its container.
    #[arg(required = true)]
    pub containers: Vec<String>,
}

/// `stop` (and the timeout of `rm`).
#[derive(Debug, Args)]
pub struct StopArgs {
    /// Seconds to wait after the stop signal before SIGKILL (default:
    /// the container's --stop-timeout, else 10).
    #[arg(short = 't', long)]
    pub time: Option<u64>,
    #[arg(required = true)]
    pub containers: Vec<String>,
}

/// `kill`.
#[derive(Debug, Args)]
pub struct KillArgs {
    /// Signal (name or number).
    #[arg(short = 's', long, default_value = "SIGKILL")]
    pub signal: String,
    #[arg(required = true)]
    pub containers: Vec<String>,
}

/// `rm`.
#[derive(Debug, Args)]
pub struct RmArgs {
    /// Kill a running container first.
    #[arg(short = 'f', long)]
    pub force: bool,
    /// Also remove the container's anonymous volumes.
    #[arg(short = 'v', long)]
    pub volumes: bool,
    #[arg(required = true)]
    pub containers: Vec<String>,
}

/// Commands taking a list of containers.
#[derive(Debug, Args)]
pub struct ContainersArgs {
    #[arg(required = true)]
    pub containers: Vec<String>,
}

/// `exec`.
#[derive(Debug, Args)]
#[command(trailing_var_arg = true)]
pub struct ExecArgs {
    /// Run in the background.
    #[arg(short = 'd', long)]
    pub detach: bool,
    /// Keep stdin attached.
    #[arg(short = 'i', long)]
    pub interactive: bool,
    /// Allocate a pty.
    #[arg(short = 't', long)]
    pub tty: bool,
    /// User (name or uid, optionally :group).
    #[arg(short = 'u', long)]
    pub user: Option<String>,
    /// Working directory.
    #[arg(short = 'w', long)]
    pub workdir: Option<String>,
    /// Set an environment variable.
    #[arg(short = 'e', long = "env")]
    pub env: Vec<String>,
    pub container: String,
    #[arg(required = true, allow_hyphen_values = true)]
    pub command: Vec<String>,
}

/// `cp`.
#[derive(Debug, Args)]
pub struct CpArgs {
    /// Source: a host path or CONTAINER:PATH.
    pub src: String,
    /// Destination: a host path or CONTAINER:PATH.
    pub dst: String,
}

/// `rename`.
#[derive(Debug, Args)]
pub struct RenameArgs {
    pub container: String,
    pub new_name: String,
}

/// `stats`.
#[derive(Debug, Args)]
pub struct StatsArgs {
    /// Print once instead of refreshing every second.
    #[arg(long)]
    pub no_stream: bool,
    /// Output: table or json (one line per refresh when streaming).
    #[arg(long, default_value = "table")]
    pub format: String,
    /// Containers (name or ID); every running one when absent.
    pub containers: Vec<String>,
}

/// `container ...`.
#[derive(Debug, Subcommand)]
pub enum ContainerCommand {
    /// Remove every stopped container (asks first on a terminal, unless -f).
    Prune(ContainerPruneArgs),
    /// List containers (as `ps`).
    #[command(alias = "list")]
    Ls(PsArgs),
    /// Show containers as JSON or through a template (as `inspect --type container`).
    Inspect(super::inspect_cmd::InspectArgs),
    /// Exit 0 when the container exists, 1 when not (example: `berth container exists web`).
    Exists(super::manage_cmds::ExistsArgs),
}

/// `container prune`.
#[derive(Debug, Args)]
pub struct ContainerPruneArgs {
    /// Do not ask for confirmation.
    #[arg(short = 'f', long)]
    pub force: bool,
}

/// Prints a document; a closed pipe (`| head`) is not an error.
fn emit(text: &str) {
    use std::io::Write;
    let _ = writeln!(std::io::stdout().lock(), "{text}");
}

/// `ps`.
pub fn ps(root: &Path, e: &EngineArgs, a: &PsArgs) -> Result<i32> {
    let engine = e.engine(root)?;
    // What killed `create`s left (dir, addresses, no row).
    berth_engine::create::reap_interrupted(&engine)?;
    let now = berth_engine::now_ms();
    let mut rows = Vec::new();
    let list = engine.db()?.list()?;
    let filter = super::ps_filter::PsFilter::parse(&engine, &a.filter, &list)?;
    for (pos, r) in list.into_iter().enumerate() {
        let r = lifecycle::refresh(&engine, r)?;
        // A removal killed half-way (its dir is gone, the row is left; the
        // dir is made before the row exists): finish it.
        if r.status != Status::Running
            && !lifecycle::holder_alive(&r)
            && !engine.dir(&r.id).exists()
        {
            lifecycle::remove_files(&engine, &r.id)?;
            continue;
        }
        let limited = a.latest || a.last.is_some();
        let keep = (a.all || limited || filter.implies_all() || r.status == Status::Running)
            && filter.matches(&engine, &r, pos);
        if keep {
            rows.push(r);
        }
    }
    // Newest first, as Docker lists them.
    rows.reverse();
    if let Some(n) = if a.latest { Some(1) } else { a.last } {
        rows.truncate(n);
    }
    if a.quiet {
        super::format::print_ids(rows.iter().map(|r| r.id.as_str()), a.no_trunc);
        return Ok(0);
    }
    let sizes: Vec<Option<(u64, u64)>> = rows
        .iter()
        .map(|r| a.size.then(|| container_size(root, &engine, r)))
        .collect();
    let json = || {
        Ok(rows
            .iter()
            .zip(&sizes)
            .map(|(r, size)| {
                let mut doc =
                    berth_engine::manage::mark_paused(&engine, r, inspect::ps_json(r, now));
                doc["Status"] = berth_engine::manage::status_text(&engine, r, now).into();
                let ports = berth_engine::networks::of_container(&engine, &r.id)
                    .map(|(_, p)| p)
                    .unwrap_or_default();
                doc["Ports"] = serde_json::json!(ports
                    .iter()
                    .map(|p| serde_json::json!({
                        "host_ip": p.host_ip.map(|i| i.to_string()).unwrap_or_default(),
                        "container_port": p.container_port,
                        "host_port": p.host_port,
                        "range": 1,
                        "protocol": p.proto.as_str(),
                    }))
                    .collect::<Vec<_>>());
                if let Some((rw, image)) = size {
                    doc["Size"] = serde_json::json!({"rwSize": rw, "rootFsSize": rw + image});
                }
                doc
            })
            .collect())
    };
    let with_mounts = views::wants_mounts(&a.format);
    let docs = || {
        Ok(rows
            .iter()
            .zip(&sizes)
            .map(|(r, size)| views::ps_row(&engine, r, now, a.no_trunc, *size, with_mounts))
            .collect())
    };
    let mut default = if a.size {
        "{{.ID}}\t{{.Image}}\t{{.Command}}\t{{.RunningFor}}\t{{.Status}}\t{{.Ports}}\t{{.Names}}\t{{.Size}}"
    } else {
        "{{.ID}}\t{{.Image}}\t{{.Command}}\t{{.RunningFor}}\t{{.Status}}\t{{.Ports}}\t{{.Names}}"
    }
    .to_string();
    if a.pod {
        default.push_str("\t{{.Pod}}\t{{.PodName}}");
    }
    super::format::print_listing(&a.format, json, &default, views::PS_HEADERS, docs)?;
    Ok(0)
}

/// A container's writable layer's bytes and its image's (`ps -s`).
fn container_size(root: &Path, engine: &berth_engine::Engine, r: &db::ContainerRow) -> (u64, u64) {
    let rw = views::dir_size(&engine.dir(&r.id).join("upper"));
    let image = super::images::open(root)
        .ok()
        .and_then(|store| berth_image::image::resolve_name(&store, &r.image_id).ok())
        .map(|img| super::images::image_size(&img))
        .unwrap_or(0);
    (rw, image)
}

/// `logs`: one container's output, or several (podman's way: each line
/// prefixed with its container's short ID, or name with `--names`;
/// followed side by side with `-f`).
pub fn logs(root: &Path, e: &EngineArgs, a: &LogsArgs) -> Result<i32> {
    let engine = e.engine(root)?;
    let rows = a
        .containers
        .iter()
        .map(|c| lifecycle::find(&engine, c))
        .collect::<std::result::Result<Vec<_>, _>>()?;
    for row in &rows {
        berth_engine::flags::check_logs_readable(row)?;
    }
    let now = berth_engine::now_ms();
    let time = |flag: &str, v: &Option<String>| -> Result<Option<String>> {
        v.as_deref()
            .map(|s| {
                berth_engine::logs::parse_since(s, now).ok_or_else(|| {
                    anyhow::anyhow!("invalid {flag} {s:?} (RFC 3339, unix seconds, or 10s/5m/2h)")
                })
            })
            .transpose()
    };
    let o = berth_engine::logs::LogOptions {
        follow: a.follow,
        tail: a.tail,
        since: time("--since", &a.since)?,
        until: time("--until", &a.until)?,
        timestamps: a.timestamps,
    };
    let show = |row: &db::ContainerRow, prefix: Option<String>| -> Result<()> {
        let id = row.id.clone();
        let mut running = || {
            engine
                .db()
                .ok()
                .and_then(|db| db.get(&id).ok().flatten())
                .and_then(|r| lifecycle::refresh(&engine, r).ok())
                .is_some_and(|r| r.status == Status::Running)
        };
        let mut out = super::logs_prefix::Prefixed::new(std::io::stdout(), prefix.clone());
        let mut err = super::logs_prefix::Prefixed::new(std::io::stderr(), prefix);
        berth_engine::logs::show(
            &engine.log_path(&row.id),
            &o,
            &mut running,
            &mut out,
            &mut err,
        )?;
        Ok(())
    };
    if rows.len() == 1 {
        show(&rows[0], None)?;
        return Ok(0);
    }
    let prefix = |r: &db::ContainerRow| {
        Some(if a.names {
            r.name.clone()
        } else {
            db::short(&r.id).to_string()
        })
    };
    if !a.follow {
        for r in &rows {
            show(r, prefix(r))?;
        }
        return Ok(0);
    }
    std::thread::scope(|s| -> Result<()> {
        let handles: Vec<_> = rows
            .iter()
            .map(|r| s.spawn(move || show(r, prefix(r))))
            .collect();
        for h in handles {
            h.join()
                .map_err(|_| anyhow::anyhow!("logs: a follower panicked"))??;
        }
        Ok(())
    })?;
    Ok(0)
}

/// `stop`.
pub fn stop(root: &Path, e: &EngineArgs, a: &StopArgs) -> Result<i32> {
    let engine = e.engine(root)?;
    for c in &a.containers {
        let t = berth_engine::flags::stop_timeout(&engine, c, a.time);
        ops::stop(&engine, c, t)?;
        println!("{c}");
    }
    Ok(0)
}

/// `kill`.
pub fn kill(root: &Path, e: &EngineArgs, a: &KillArgs) -> Result<i32> {
    let engine = e.engine(root)?;
    for c in &a.containers {
        ops::kill(&engine, c, &a.signal)?;
        println!("{c}");
    }
    Ok(0)
}

/// `rm`: several containers are removed side by side; each failure is
/// reported (naming its container) and the others go on; the status is 1
/// if any failed.
pub fn rm(root: &Path, e: &EngineArgs, a: &RmArgs) -> Result<i32> {
    let engine = e.engine(root)?;
    let mut failed = false;
    let results = ops::rm_all(&engine, &a.containers, a.force, a.volumes);
    for (c, r) in a.containers.iter().zip(results) {
        match r {
            Ok(_) => println!("{c}"),
            Err(err) => {
                eprintln!("berth: {}", chain(&err));
                failed = true;
            }
        }
    }
    Ok(if failed { 1 } else { 0 })
}

fn chain(e: &dyn std::error::Error) -> String {
    berth_engine::error::error_chain(e)
}

/// `wait`: prints each container's exit code.
pub fn wait(root: &Path, e: &EngineArgs, a: &ContainersArgs) -> Result<i32> {
    let engine = e.engine(root)?;
    for c in &a.containers {
        println!("{}", ops::wait(&engine, c)?);
    }
    Ok(0)
}

/// `exec`: the process's exit status.
pub fn exec(root: &Path, e: &EngineArgs, a: &ExecArgs) -> Result<i32> {
    berth_runtime::selfexe::ensure_sealed()?;
    let engine = e.engine(root)?;
    let req = ops::ExecRequest {
        cmd: a.command.clone(),
        tty: a.tty,
        interactive: a.interactive,
        user: a.user.clone(),
        workdir: a.workdir.clone(),
        env: a.env.clone(),
        detach: a.detach,
    };
    let code = ops::exec(&engine, &a.container, &req)?;
    if a.detach {
        // podman prints the exec session's ID. berth keeps no exec
        // sessions, so the ID names this exec only.
        println!("{}", berth_engine::names::new_id()?);
    }
    Ok(code)
}

/// `stats` (see `super::stats`).
pub fn stats(root: &Path, e: &EngineArgs, a: &StatsArgs) -> Result<i32> {
    let engine = e.engine(root)?;
    super::stats::stats(&engine, a)
}

/// `cp`.
pub fn cp(root: &Path, e: &EngineArgs, a: &CpArgs) -> Result<i32> {
    let engine = e.engine(root)?;
    // `-` is a tar stream on stdin or stdout, as with Docker.
    match (a.src.as_str(), a.dst.as_str()) {
        ("-", "-") => anyhow::bail!("cp: only one side can be - (a tar stream)"),
        (src, "-") => berth_engine::copy::copy_to_tar(&engine, src, std::io::stdout().lock())?,
        ("-", dst) => berth_engine::copy::copy_from_tar(&engine, std::io::stdin().lock(), dst)?,
        (src, dst) => berth_engine::copy::copy(&engine, src, dst)?,
    }
    Ok(0)
}

/// `rename`.
pub fn rename(root: &Path, e: &EngineArgs, a: &RenameArgs) -> Result<i32> {
    let engine = e.engine(root)?;
    ops::rename(&engine, &a.container, &a.new_name)?;
    Ok(0)
}

/// `container ...`.
pub fn container_command(root: &Path, e: &EngineArgs, c: &ContainerCommand) -> Result<i32> {
    match c {
        ContainerCommand::Prune(a) => {
            if !a.force
                && !super::system_prune::ask_on_terminal(
                    "container prune",
                    "WARNING! This will remove all non running containers.",
                )?
            {
                return Ok(0);
            }
            let engine = e.engine(root)?;
            for id in ops::prune(&engine)? {
                println!("{id}");
            }
            Ok(0)
        }
        ContainerCommand::Ls(a) => ps(root, e, a),
        ContainerCommand::Inspect(a) => {
            super::inspect_cmd::inspect_kind(root, e, a, super::inspect_cmd::Kind::Container)
        }
        ContainerCommand::Exists(a) => super::manage_cmds::container_exists(root, e, a),
    }
}

/// `port CONTAINER [PRIVATE_PORT[/PROTO]]`: its published ports.
pub fn port(root: &Path, e: &EngineArgs, a: &ContainersArgs) -> Result<i32> {
    let engine = e.engine(root)?;
    let Some(reference) = a.containers.first() else {
        anyhow::bail!("port: name a container");
    };
    let filter = a.containers.get(1);
    let row = berth_engine::lifecycle::find(&engine, reference)?;
    let (_, ports) = berth_engine::networks::of_container(&engine, &row.id)?;
    let mut shown = 0;
    for p in &ports {
        let key = format!("{}/{}", p.container_port, p.proto.as_str());
        if let Some(f) = filter {
            if *f != key && *f != p.container_port.to_string() {
                continue;
            }
        }
        println!("{}", p.line());
        shown += 1;
    }
    if shown == 0 && filter.is_some() {
        anyhow::bail!(
            "container {} does not publish port {}",
            row.name,
            filter.map(String::as_str).unwrap_or_default()
        );
    }
    Ok(0)
}

/// `version` and `info`.
#[derive(Debug, Args)]
pub struct FormatArgs {
    /// json or a Go template (example: `--format '{{.Client.Version}}'`).
    #[arg(short = 'f', long)]
    pub format: Option<String>,
}

/// Go's name of this machine's architecture (`amd64`, `arm64`).
fn go_arch() -> &'static str {
    match std::env::consts::ARCH {
        "x86_64" => "amd64",
        "aarch64" => "arm64",
        "x86" => "386",
        "powerpc64" => "ppc64le",
        other => other,
    }
}

/// Prints `doc` as JSON (no format or `json`) or through the template.
fn emit_doc(doc: &serde_json::Value, format: Option<&str>) -> Result<()> {
    match format {
        Some(f) if f != "json" => {
            print!(
                "{}",
                super::template::render_lines(f, std::slice::from_ref(doc))?
            )
        }
        _ => emit(&serde_json::to_string_pretty(doc)?),
    }
    Ok(())
}

/// `version`: two lines, or Docker's `{"Client": ..., "Server": ...}`
/// through `--format`.
pub fn version(a: &FormatArgs) -> Result<i32> {
    let Some(format) = &a.format else {
        println!("berth version {}", env!("CARGO_PKG_VERSION"));
        println!("OCI runtime: berth-runtime (in-process), runtime-spec 1.2.0");
        return Ok(0);
    };
    let side = serde_json::json!({
        "Version": env!("CARGO_PKG_VERSION"),
        "APIVersion": env!("CARGO_PKG_VERSION"),
        "Os": std::env::consts::OS,
        "Arch": go_arch(),
        "OsArch": format!("{}/{}", std::env::consts::OS, go_arch()),
        "GoVersion": "",
        "GitCommit": "",
        "BuiltTime": "",
        "Built": 0,
        "KernelVersion": read_trim("/proc/sys/kernel/osrelease"),
        "OCIRuntime": "berth-runtime",
        "OCIRuntimeSpec": "1.2.0",
    });
    emit_doc(
        &serde_json::json!({"Client": side, "Server": side}),
        Some(format),
    )?;
    Ok(0)
}

fn read_trim(p: &str) -> String {
    std::fs::read_to_string(p)
        .map(|s| s.trim().to_string())
        .unwrap_or_default()
}

/// A `/proc/meminfo` value in bytes.
fn meminfo(key: &str) -> u64 {
    read_trim("/proc/meminfo")
        .lines()
        .find_map(|l| l.strip_prefix(key)?.strip_prefix(':'))
        .and_then(|v| v.split_whitespace().next()?.parse::<u64>().ok())
        .map_or(0, |kb| kb * 1024)
}

fn os_name() -> String {
    read_trim("/etc/os-release")
        .lines()
        .find_map(|l| l.strip_prefix("PRETTY_NAME="))
        .map(|v| v.trim_matches('"').to_string())
        .unwrap_or_else(|| "linux".into())
}

/// `info`: what the host offers the engine.
pub fn info(root: &Path, e: &EngineArgs, a: &FormatArgs) -> Result<i32> {
    let engine = e.engine(root)?;
    let layout = berth_cgroups::Layout::detect().ok();
    let filesystems = std::fs::read_to_string("/proc/filesystems").unwrap_or_default();
    let userns = std::fs::read_to_string("/proc/sys/user/max_user_namespaces")
        .map(|s| s.trim() != "0")
        .unwrap_or(false);
    let seccomp = std::fs::read_to_string("/proc/self/status")
        .map(|s| s.contains("Seccomp:"))
        .unwrap_or(false);
    let rows = engine.db()?.list()?;
    let count = rows.len();
    let running = rows.iter().filter(|r| r.status == Status::Running).count();
    let images = super::images::open(root)
        .and_then(|s| Ok(s.images()?.len()))
        .unwrap_or(0);
    let nft = ["/usr/sbin/nft", "/sbin/nft"]
        .iter()
        .any(|p| std::path::Path::new(p).exists());
    let rootless = berth_engine::rootless::is_rootless();
    let v = serde_json::json!({
        "host": {
            "rootless": rootless,
            "idMappings": rootless_id_mappings(rootless),
            "networkDriver": if rootless { berth_engine::rootless::default_network() } else { "bridge" },
            "kernel": std::fs::read_to_string("/proc/sys/kernel/osrelease").unwrap_or_default().trim(),
            "cgroupManager": "cgroupfs",
            "cgroupVersion": layout.as_ref().map(|l| match l.mode {
                berth_cgroups::Mode::Unified => "v2",
                berth_cgroups::Mode::Legacy => "v1",
                berth_cgroups::Mode::Hybrid => "hybrid",
            }),
            // Rootless: the delegated cgroup v2 subtree, none without one.
            "cgroupParent": if rootless {
                berth_engine::rootless::cgroup::delegation().map(|d| d.path)
            } else {
                Some(engine.cgroup_parent.clone())
            },
            "overlay": filesystems.contains("overlay"),
            "userNamespaces": userns,
            // The user namespace of containers made without --userns/--uidmap.
            "defaultUsernsMode": berth_engine::userns::default_mode(),
            "seccomp": seccomp,
            "networkBackend": "netlink+nftables",
            "nftables": nft,
            "defaultNetwork": if rootless { berth_engine::rootless::default_network() } else { berth_engine::networks::DEFAULT_NETWORK },
        },
        "store": {
            "graphDriverName": berth_image::mount::driver(&engine.root).name(),
            "root": engine.root,
            "runRoot": engine.runroot,
            "containers": count,
        },
        "version": env!("CARGO_PKG_VERSION"),
    });
    let Some(format) = a.format.as_deref().filter(|f| *f != "json") else {
        emit(&serde_json::to_string_pretty(&v)?);
        return Ok(0);
    };
    // Templates also see podman's (`.Host.Kernel`, `.Store.GraphRoot`)
    // and Docker's (`.KernelVersion`, `.Containers`) field names.
    let kernel = read_trim("/proc/sys/kernel/osrelease");
    let cgroup_version = match v["host"]["cgroupVersion"].as_str() {
        Some("v2") => "2",
        _ => "1",
    };
    let ncpu = std::thread::available_parallelism().map_or(1, |n| n.get());
    let hostname = read_trim("/proc/sys/kernel/hostname");
    let mut doc = v.clone();
    let extra = serde_json::json!({
        "Host": {
            "Kernel": kernel,
            "Arch": go_arch(),
            "Os": std::env::consts::OS,
            "OS": std::env::consts::OS,
            "Hostname": hostname,
            "CPUs": ncpu,
            "MemTotal": meminfo("MemTotal"),
            "MemFree": meminfo("MemFree"),
            "CgroupManager": "cgroupfs",
            "CgroupsVersion": v["host"]["cgroupVersion"],
            "Security": {"Rootless": rootless},
            "Distribution": {"Distribution": os_name()},
        },
        "Store": {
            "GraphRoot": engine.root,
            "RunRoot": engine.runroot,
            "GraphDriverName": "overlay",
            "ContainerStore": {"Number": count, "Running": running, "Stopped": count - running, "Paused": 0},
            "ImageStore": {"Number": images},
        },
        "Version": {
            "Version": env!("CARGO_PKG_VERSION"),
            "APIVersion": env!("CARGO_PKG_VERSION"),
            "OsArch": format!("{}/{}", std::env::consts::OS, go_arch()),
        },
        "ID": "",
        "Name": hostname,
        "ServerVersion": env!("CARGO_PKG_VERSION"),
        "Containers": count,
        "ContainersRunning": running,
        "ContainersPaused": 0,
        "ContainersStopped": count - running,
        "Images": images,
        "Driver": "overlay",
        "CgroupDriver": "cgroupfs",
        "CgroupVersion": cgroup_version,
        "KernelVersion": kernel,
        "OperatingSystem": os_name(),
        "OSType": std::env::consts::OS,
        "Architecture": std::env::consts::ARCH,
        "NCPU": ncpu,
        "MemTotal": meminfo("MemTotal"),
        "DockerRootDir": engine.root,
        "DefaultRuntime": "berth-runtime",
        "Runtimes": {"berth-runtime": {"path": "berth-runtime"}},
    });
    if let (Some(d), serde_json::Value::Object(x)) = (doc.as_object_mut(), extra) {
        d.extend(x);
    }
    emit_doc(&doc, Some(format))?;
    Ok(0)
}

/// `info`'s host.idMappings rootless (podman's shape): the lines of the
/// rootless namespace's uid and gid maps; null as root.
fn rootless_id_mappings(rootless: bool) -> serde_json::Value {
    if !rootless {
        return serde_json::Value::Null;
    }
    let lines = |text: &str| {
        text.lines()
            .filter_map(|l| {
                let f: Vec<u64> = l
                    .split_whitespace()
                    .filter_map(|x| x.parse().ok())
                    .collect();
                (f.len() == 3).then(
                    || serde_json::json!({"container_id": f[0], "host_id": f[1], "size": f[2]}),
                )
            })
            .collect::<Vec<_>>()
    };
    let (u, g) = berth_engine::rootless::id_maps();
    serde_json::json!({"uidmap": lines(&u), "gidmap": lines(&g)})
}
