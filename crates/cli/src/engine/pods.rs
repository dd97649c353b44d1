//! `berth pod create|ps|inspect|exists|start|stop|restart|kill|pause|
//! unpause|rm|prune` (podman's `pod`). The pod commands act on the pod's
//! containers through the container commands' code.

use std::path::Path;

use anyhow::Result;
use berth_engine::pods::{self, PodCreate, PodRow};
use berth_engine::{lifecycle, ops, Engine, Status};
use clap::{Args, Subcommand};
use serde_json::json;

use super::run::EngineArgs;

/// `pod` subcommands.
#[derive(Debug, Subcommand)]
pub enum PodCommand {
    /// Create a pod (example: `berth pod create --name web -p 8080:80`).
    Create(CreateArgs),
    /// List pods.
    #[command(alias = "ls", alias = "list")]
    Ps(PsArgs),
    /// Show pods as JSON.
    Inspect(InspectArgs),
    /// Exit 0 when the pod exists, 1 when not.
    Exists(super::manage_cmds::ExistsArgs),
    /// Start the pod's containers.
    Start(PodsArgs),
    /// Stop the pod's containers.
    Stop(StopArgs),
    /// Stop then start the pod's containers.
    Restart(StopArgs),
    /// Send a signal to the pod's running containers.
    Kill(KillArgs),
    /// Pause the pod's running containers.
    Pause(PodsArgs),
    /// Unpause the pod's paused containers.
    Unpause(PodsArgs),
    /// Remove pods (with -f, their running containers too).
    Rm(RmArgs),
    /// Remove every pod with no running container.
    Prune(PruneArgs),
    /// The processes of a pod's running containers (CONTAINER, PID, COMMAND).
    Top(TopArgs),
    /// Resource use of a pod's running containers (as `berth stats`).
    Stats(StatsArgs),
}

/// `pod create`.
#[derive(Debug, Args)]
pub struct CreateArgs {
    /// Pod name (generated when absent).
    #[arg(long)]
    pub name: Option<String>,
    /// Publish a port of the pod: [IP:]HOST:CONTAINER[/PROTO] (repeatable).
    #[arg(short = 'p', long = "publish")]
    pub publish: Vec<String>,
    /// The pod's network: a bridge network name or none.
    #[arg(long)]
    pub network: Option<String>,
    /// Namespaces the containers share: net, ipc, uts, pid (default
    /// net,ipc,uts; `+pid` adds pid to the default).
    #[arg(long)]
    pub share: Option<String>,
    /// The pod's hostname (default: its name).
    #[arg(long)]
    pub hostname: Option<String>,
    /// Label K=V (repeatable).
    #[arg(long = "label", short = 'l')]
    pub labels: Vec<String>,
    /// Infra container: berth pods have none (their namespaces are pinned
    /// files); only `--infra=false` is accepted.
    #[arg(long)]
    pub infra: Option<bool>,
    /// The pod's user namespace, shared by its containers: host, or
    /// auto[:size=N] (a range of its own; the default for root).
    #[arg(long)]
    pub userns: Option<String>,
}

/// `pod ps`.
#[derive(Debug, Args)]
pub struct PsArgs {
    /// Only IDs.
    #[arg(short = 'q', long)]
    pub quiet: bool,
    /// Output: table, json, a Go template, or `table TEMPLATE`.
    #[arg(long, default_value = "table")]
    pub format: String,
    /// Full IDs.
    #[arg(long)]
    pub no_trunc: bool,
}

/// `pod inspect`.
#[derive(Debug, Args)]
pub struct InspectArgs {
    /// A Go template instead of JSON.
    #[arg(short = 'f', long)]
    pub format: Option<String>,
    #[arg(required = true)]
    pub pods: Vec<String>,
}

/// Commands taking pod names.
#[derive(Debug, Args)]
pub struct PodsArgs {
    #[arg(required = true)]
    pub pods: Vec<String>,
}

/// `pod stop`/`restart`.
#[derive(Debug, Args)]
pub struct StopArgs {
    /// Seconds to wait before SIGKILL (default: each container's stop timeout).
    #[arg(short = 't', long)]
    pub time: Option<u64>,
    #[arg(required = true)]
    pub pods: Vec<String>,
}

/// `pod kill`.
#[derive(Debug, Args)]
pub struct KillArgs {
    /// Signal (name or number).
    #[arg(short = 's', long, default_value = "KILL")]
    pub signal: String,
    #[arg(required = true)]
    pub pods: Vec<String>,
}

/// `pod top`.
#[derive(Debug, Args)]
pub struct TopArgs {
    pub pod: String,
    /// ps(1) options (berth top's); not supported for pods yet.
    #[arg(trailing_var_arg = true, allow_hyphen_values = true)]
    pub ps_options: Vec<String>,
}

/// `pod stats`.
#[derive(Debug, Args)]
pub struct StatsArgs {
    /// Print once instead of refreshing every second.
    #[arg(long)]
    pub no_stream: bool,
    /// Output: table or json.
    #[arg(long, default_value = "table")]
    pub format: String,
    #[arg(required = true)]
    pub pods: Vec<String>,
}

/// `pod rm`.
#[derive(Debug, Args)]
pub struct RmArgs {
    /// Stop and remove running containers too.
    #[arg(short = 'f', long)]
    pub force: bool,
    #[arg(required = true)]
    pub pods: Vec<String>,
}

/// `pod prune`.
#[derive(Debug, Args)]
pub struct PruneArgs {
    /// Do not ask (berth never asks).
    #[arg(short = 'f', long)]
    pub force: bool,
}

/// Runs a `pod` subcommand; returns the exit code.
pub fn pod_command(root: &Path, e: &EngineArgs, c: PodCommand) -> Result<i32> {
    let engine = e.engine(root)?;
    match c {
        PodCommand::Create(a) => {
            if a.infra == Some(true) {
                anyhow::bail!(
                    "--infra=true is not supported: berth pods hold their namespaces as pinned \
                     files, without an infra container (leave --infra out)"
                );
            }
            let p = pods::create(
                &engine,
                &PodCreate {
                    name: a.name,
                    publish: a.publish,
                    network: a.network,
                    share: a.share,
                    hostname: a.hostname,
                    labels: a.labels,
                    userns: a.userns,
                },
            )?;
            println!("{}", p.id);
        }
        PodCommand::Ps(a) => ps(&engine, &a)?,
        PodCommand::Inspect(a) => {
            let mut out = Vec::new();
            for r in &a.pods {
                out.push(pods::inspect_json(&engine, &pods::find(&engine, r)?)?);
            }
            match &a.format {
                Some(f) if f != "json" => print!("{}", super::template::render_lines(f, &out)?),
                // podman prints one object for one pod.
                _ if out.len() == 1 => println!("{}", serde_json::to_string_pretty(&out[0])?),
                _ => println!("{}", serde_json::to_string_pretty(&json!(out))?),
            }
        }
        PodCommand::Exists(a) => {
            return Ok(if pods::exists(&engine, &a.name)? {
                0
            } else {
                1
            })
        }
        PodCommand::Start(a) => {
            for r in &a.pods {
                let p = pods::find(&engine, r)?;
                pods::ensure(&engine, &p)?;
                for c in pods::containers_of(&engine, &p.id)? {
                    let c = lifecycle::refresh(&engine, c)?;
                    if c.status != Status::Running {
                        let cmd = super::run::monitor_command(root, &engine, &c.id);
                        lifecycle::start_detached(&engine, &c, cmd)?;
                    }
                }
                println!("{}", p.id);
            }
        }
        PodCommand::Stop(a) => {
            for r in &a.pods {
                let p = stop(&engine, r, a.time)?;
                println!("{}", p.id);
            }
        }
        PodCommand::Restart(a) => {
            for r in &a.pods {
                let p = stop(&engine, r, a.time)?;
                for c in pods::containers_of(&engine, &p.id)? {
                    let cmd = super::run::monitor_command(root, &engine, &c.id);
                    lifecycle::start_detached(&engine, &c, cmd)?;
                }
                println!("{}", p.id);
            }
        }
        PodCommand::Kill(a) => {
            // Checked first, as podman: also a pod with nothing running
            // refuses a bad signal.
            if berth_runtime::container::parse_signal(&a.signal).is_none() {
                anyhow::bail!(
                    "invalid signal {:?}: not a signal name or number (e.g. TERM, SIGKILL, 9)",
                    a.signal
                );
            }
            let sig = berth_runtime::container::parse_signal(&a.signal)
                .and_then(|n| nix::sys::signal::Signal::try_from(n).ok());
            for r in &a.pods {
                let p = pods::find(&engine, r)?;
                // The pod's PID 1 first, as podman signals its infra
                // container first: when it ends, the kernel kills the
                // containers in its PID namespace (137), and those are
                // no longer signalled (podman's own attempt fails with
                // "container not running" and changes nothing).
                let ended = sig.is_some_and(|s| pods::kill_holder(&engine, &p.id, s));
                for c in running(&engine, &p)? {
                    match ops::kill(&engine, &c.id, &a.signal) {
                        Err(_) if ended && !lifecycle::process_running(&engine, &c.id) => {}
                        r => r?,
                    }
                }
                println!("{}", p.id);
            }
        }
        PodCommand::Pause(a) => {
            for r in &a.pods {
                let p = pods::find(&engine, r)?;
                for c in running(&engine, &p)? {
                    if !berth_engine::manage::is_paused(&engine, &c) {
                        berth_engine::manage::pause(&engine, &c.id)?;
                    }
                }
                println!("{}", p.id);
            }
        }
        PodCommand::Unpause(a) => {
            for r in &a.pods {
                let p = pods::find(&engine, r)?;
                for c in running(&engine, &p)? {
                    if berth_engine::manage::is_paused(&engine, &c) {
                        berth_engine::manage::unpause(&engine, &c.id)?;
                    }
                }
                println!("{}", p.id);
            }
        }
        PodCommand::Rm(a) => {
            // podman's codes: 1 when a pod does not exist (with -f, a
            // missing pod is no error), 125 for any other failure.
            let mut code = 0;
            for r in &a.pods {
                match pods::rm(&engine, r, a.force) {
                    Ok(id) => println!("{id}"),
                    Err(err) => {
                        let missing = matches!(&err, berth_engine::EngineError::Pod(e)
                            if matches!(**e, pods::PodError::NotFound(_)));
                        if missing && a.force {
                            continue;
                        }
                        eprintln!("berth: {}", berth_engine::error::error_chain(&err));
                        if !missing {
                            code = super::exit::ENGINE_FAILED;
                        } else if code == 0 {
                            code = 1;
                        }
                    }
                }
            }
            return Ok(code);
        }
        PodCommand::Prune(_) => {
            for id in pods::prune(&engine)? {
                println!("{id}");
            }
        }
        PodCommand::Top(a) => {
            if !a.ps_options.is_empty() {
                anyhow::bail!(
                    "pod top with ps options ({}) is not supported yet: run \
                     `berth top CONTAINER {}` on the pod's containers",
                    a.ps_options.join(" "),
                    a.ps_options.join(" ")
                );
            }
            let p = pods::find(&engine, &a.pod)?;
            let mut rows = Vec::new();
            for c in running(&engine, &p)? {
                for (pid, cmd) in ops::top(&engine, &c.id)? {
                    rows.push(vec![c.name.clone(), pid.to_string(), cmd]);
                }
            }
            super::format::print_table(&["CONTAINER", "PID", "COMMAND"], &rows);
        }
        PodCommand::Stats(a) => {
            let mut names = Vec::new();
            for r in &a.pods {
                let p = pods::find(&engine, r)?;
                names.extend(running(&engine, &p)?.into_iter().map(|c| c.id));
            }
            if names.is_empty() {
                // `berth stats` with no names means every container.
                anyhow::bail!("pod stats: no container of {} runs", a.pods.join(", "));
            }
            return super::stats::stats(
                &engine,
                &super::containers::StatsArgs {
                    no_stream: a.no_stream,
                    format: a.format,
                    containers: names,
                },
            );
        }
    }
    Ok(0)
}

/// The pod's containers that run now.
fn running(engine: &Engine, p: &PodRow) -> Result<Vec<berth_engine::ContainerRow>> {
    let mut out = Vec::new();
    for c in pods::containers_of(engine, &p.id)? {
        let c = lifecycle::refresh(engine, c)?;
        if c.status == Status::Running {
            out.push(c);
        }
    }
    Ok(out)
}

/// Stops the pod's running containers (newest first, as podman does).
fn stop(engine: &Engine, reference: &str, time: Option<u64>) -> Result<PodRow> {
    let p = pods::find(engine, reference)?;
    let mut ctrs = running(engine, &p)?;
    ctrs.reverse();
    for c in ctrs {
        let t = berth_engine::flags::stop_timeout(engine, &c.id, time);
        ops::stop(engine, &c.id, t)?;
    }
    // As podman stops the infra container last: the PID 1 of a pod
    // sharing its PID namespace (started again at the next start).
    pods::stop_holder(engine, &p.id);
    Ok(p)
}

/// `pod ps`: podman's columns and JSON fields (`InfraId` is empty: berth
/// pods have no infra container).
fn ps(engine: &Engine, a: &PsArgs) -> Result<()> {
    let pods = pods::list(engine)?;
    if a.quiet {
        super::format::print_ids(pods.iter().map(|p| p.id.as_str()), a.no_trunc);
        return Ok(());
    }
    let mut docs = Vec::new();
    let mut rows = Vec::new();
    let now = berth_engine::now_ms();
    for p in pods {
        let ctrs: Vec<_> = pods::containers_of(engine, &p.id)?
            .into_iter()
            .map(|c| lifecycle::refresh(engine, c))
            .collect::<std::result::Result<_, _>>()?;
        let status = pods::status(engine, &ctrs);
        let networks = pods::networks(&p);
        docs.push(json!({
            "Cgroup": engine.cgroup_parent,
            "Containers": ctrs.iter().map(|c| json!({
                "Id": c.id,
                "Names": c.name,
                "Status": c.status.as_str(),
            })).collect::<Vec<_>>(),
            "Created": berth_engine::rfc3339_ms(p.created),
            "Id": p.id,
            "InfraId": "",
            "Name": p.name,
            "Namespace": "",
            "Networks": networks,
            "Status": status,
            "Labels": p.labels,
        }));
        rows.push(json!({
            "Id": if a.no_trunc { &p.id[..] } else { &p.id[..12] },
            "Name": p.name,
            "Status": status,
            "Created": super::views::since(p.created, now),
            "InfraId": "",
            "NumberOfContainers": ctrs.len(),
            "Labels": p.labels,
            "Networks": networks.join(","),
        }));
    }
    let default =
        "{{.Id}}\t{{.Name}}\t{{.Status}}\t{{.Created}}\t{{.InfraId}}\t{{.NumberOfContainers}}";
    super::format::print_listing(&a.format, || Ok(docs), default, POD_HEADERS, || Ok(rows))
}

/// podman's `pod ps` column names.
const POD_HEADERS: &[(&str, &str)] = &[
    ("Id", "POD ID"),
    ("Name", "NAME"),
    ("Status", "STATUS"),
    ("Created", "CREATED"),
    ("InfraId", "INFRA ID"),
    ("NumberOfContainers", "# OF CONTAINERS"),
    ("Labels", "LABELS"),
    ("Networks", "NETWORKS"),
];
