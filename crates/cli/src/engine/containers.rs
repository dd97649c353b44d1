//! Container commands besides run/start: ps, logs, stop, kill, rm, wait,
//! exec, inspect, top, stats, rename, container prune, version, info.

use std::path::Path;

use anyhow::Result;
use berth_engine::{db, inspect, lifecycle, ops, Status};
use clap::{Args, Subcommand};

use super::format::print_table;
use super::run::EngineArgs;

/// `ps`.
#[derive(Debug, Args)]
pub struct PsArgs {
    /// Show all containers (default: running only).
    #[arg(short = 'a', long)]
    pub all: bool,
    /// Only IDs.
    #[arg(short = 'q', long)]
    pub quiet: bool,
    /// Output: table or json.
    #[arg(long, default_value = "table")]
    pub format: String,
    /// name=, id=, status=, label=K[=V], ancestor=
    #[arg(short = 'f', long)]
    pub filter: Vec<String>,
    /// Full IDs.
    #[arg(long)]
    pub no_trunc: bool,
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
    /// Prefix each line with its time.
    #[arg(short = 't', long)]
    pub timestamps: bool,
    pub container: String,
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
    /// Remove every stopped container.
    Prune,
    /// List containers (as `ps`).
    #[command(alias = "list")]
    Ls(PsArgs),
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
    for r in engine.db()?.list()? {
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
        let mut keep = a.all || r.status == Status::Running;
        for f in &a.filter {
            match inspect::matches_filter(&r, f) {
                Some(m) => keep &= m,
                None => anyhow::bail!(
                    "unsupported filter {f:?} (use name=, id=, status=, label=, ancestor=)"
                ),
            }
        }
        if keep {
            rows.push(r);
        }
    }
    if a.quiet {
        for r in &rows {
            println!("{}", if a.no_trunc { &r.id } else { db::short(&r.id) });
        }
        return Ok(0);
    }
    match a.format.as_str() {
        "json" => {
            let v: Vec<_> = rows
                .iter()
                .map(|r| {
                    let mut v = inspect::ps_json(r, now);
                    let h = berth_engine::health::ps_suffix(&engine, r);
                    if !h.is_empty() {
                        v["Status"] = format!("{}{h}", inspect::status_text(r, now)).into();
                    }
                    v
                })
                .collect();
            emit(&serde_json::to_string_pretty(&v)?);
        }
        "table" => {
            let table: Vec<Vec<String>> = rows
                .iter()
                .map(|r| {
                    vec![
                        if a.no_trunc {
                            r.id.clone()
                        } else {
                            db::short(&r.id).to_string()
                        },
                        r.image.clone(),
                        inspect::command_text(r),
                        format!("{} ago", inspect::ago(now - r.created)),
                        format!(
                            "{}{}",
                            inspect::status_text(r, now),
                            berth_engine::health::ps_suffix(&engine, r)
                        ),
                        r.name.clone(),
                    ]
                })
                .collect();
            print_table(
                &[
                    "CONTAINER ID",
                    "IMAGE",
                    "COMMAND",
                    "CREATED",
                    "STATUS",
                    "NAMES",
                ],
                &table,
            );
        }
        other => anyhow::bail!("unknown --format {other:?} (use table or json)"),
    }
    Ok(0)
}

/// `logs`.
pub fn logs(root: &Path, e: &EngineArgs, a: &LogsArgs) -> Result<i32> {
    let engine = e.engine(root)?;
    let row = lifecycle::find(&engine, &a.container)?;
    berth_engine::flags::check_logs_readable(&row)?;
    let since = match &a.since {
        Some(s) => Some(
            berth_engine::logs::parse_since(s, berth_engine::now_ms()).ok_or_else(|| {
                anyhow::anyhow!("invalid --since {s:?} (RFC 3339, unix seconds, or 10s/5m/2h)")
            })?,
        ),
        None => None,
    };
    let o = berth_engine::logs::LogOptions {
        follow: a.follow,
        tail: a.tail,
        since,
        timestamps: a.timestamps,
    };
    let id = row.id.clone();
    let mut running = || {
        engine
            .db()
            .ok()
            .and_then(|db| db.get(&id).ok().flatten())
            .and_then(|r| lifecycle::refresh(&engine, r).ok())
            .is_some_and(|r| r.status == Status::Running)
    };
    berth_engine::logs::show(
        &engine.log_path(&row.id),
        &o,
        &mut running,
        &mut std::io::stdout().lock(),
        &mut std::io::stderr().lock(),
    )?;
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
    Ok(ops::exec(&engine, &a.container, &req)?)
}

/// `inspect`: a JSON array, one document per container.
pub fn inspect_cmd(root: &Path, e: &EngineArgs, a: &ContainersArgs) -> Result<i32> {
    let engine = e.engine(root)?;
    let mut docs = Vec::new();
    for c in &a.containers {
        let row = lifecycle::find(&engine, c)?;
        docs.push(inspect::inspect(&engine, &row));
    }
    emit(&serde_json::to_string_pretty(&docs)?);
    Ok(0)
}

/// `top`.
pub fn top(root: &Path, e: &EngineArgs, a: &ContainersArgs) -> Result<i32> {
    let engine = e.engine(root)?;
    for c in &a.containers {
        let rows: Vec<Vec<String>> = ops::top(&engine, c)?
            .into_iter()
            .map(|(pid, cmd)| vec![pid.to_string(), cmd])
            .collect();
        print_table(&["PID", "COMMAND"], &rows);
    }
    Ok(0)
}

/// `stats` (see `super::stats`).
pub fn stats(root: &Path, e: &EngineArgs, a: &StatsArgs) -> Result<i32> {
    let engine = e.engine(root)?;
    super::stats::stats(&engine, a)
}

/// `cp`.
pub fn cp(root: &Path, e: &EngineArgs, a: &CpArgs) -> Result<i32> {
    let engine = e.engine(root)?;
    berth_engine::copy::copy(&engine, &a.src, &a.dst)?;
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
        ContainerCommand::Prune => {
            let engine = e.engine(root)?;
            for id in ops::prune(&engine)? {
                println!("{id}");
            }
            Ok(0)
        }
        ContainerCommand::Ls(a) => ps(root, e, a),
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

/// `version`.
pub fn version() -> Result<i32> {
    println!("berth version {}", env!("CARGO_PKG_VERSION"));
    println!("OCI runtime: berth-runtime (in-process), runtime-spec 1.2.0");
    Ok(0)
}

/// `info`: what the host offers the engine.
pub fn info(root: &Path, e: &EngineArgs) -> Result<i32> {
    let engine = e.engine(root)?;
    let layout = berth_cgroups::Layout::detect().ok();
    let filesystems = std::fs::read_to_string("/proc/filesystems").unwrap_or_default();
    let userns = std::fs::read_to_string("/proc/sys/user/max_user_namespaces")
        .map(|s| s.trim() != "0")
        .unwrap_or(false);
    let seccomp = std::fs::read_to_string("/proc/self/status")
        .map(|s| s.contains("Seccomp:"))
        .unwrap_or(false);
    let count = engine.db()?.list()?.len();
    let nft = ["/usr/sbin/nft", "/sbin/nft"]
        .iter()
        .any(|p| std::path::Path::new(p).exists());
    let v = serde_json::json!({
        "host": {
            "kernel": std::fs::read_to_string("/proc/sys/kernel/osrelease").unwrap_or_default().trim(),
            "cgroupManager": "cgroupfs",
            "cgroupVersion": layout.as_ref().map(|l| match l.mode {
                berth_cgroups::Mode::Unified => "v2",
                berth_cgroups::Mode::Legacy => "v1",
                berth_cgroups::Mode::Hybrid => "hybrid",
            }),
            "cgroupParent": engine.cgroup_parent,
            "overlay": filesystems.contains("overlay"),
            "userNamespaces": userns,
            "seccomp": seccomp,
            "networkBackend": "netlink+nftables",
            "nftables": nft,
            "defaultNetwork": berth_engine::networks::DEFAULT_NETWORK,
        },
        "store": {
            "root": engine.root,
            "runRoot": engine.runroot,
            "containers": count,
        },
        "version": env!("CARGO_PKG_VERSION"),
    });
    emit(&serde_json::to_string_pretty(&v)?);
    Ok(0)
}
