//! `berth network create|ls|inspect|rm|prune|connect|disconnect`, and the
//! hidden `network-dns` (a network's resolver process).

use std::path::{Path, PathBuf};

use anyhow::Result;
use berth_engine::networks::{self, CreateRequest};
use clap::{Args, Subcommand};
use serde_json::{json, Value};

use super::run::EngineArgs;
use super::template::Format;

/// `network` subcommands.
#[derive(Debug, Subcommand)]
pub enum NetworkCommand {
    /// Create a bridge network (example: `berth network create --subnet 10.90.0.0/24 front`).
    Create(CreateArgs),
    /// List networks.
    #[command(alias = "list")]
    Ls(LsArgs),
    /// Show networks as JSON or through a template.
    Inspect(InspectArgs),
    /// Remove networks (refused while containers are attached).
    #[command(alias = "remove")]
    Rm(NamesArgs),
    /// Remove every network no container uses (never the default one).
    Prune(PruneArgs),
    /// Connect a container to a network (example: `berth network connect back web`).
    Connect(ConnectArgs),
    /// Disconnect a container from a network.
    Disconnect(DisconnectArgs),
    /// Exit 0 when the network exists, 1 when not (example: `berth network exists front`).
    Exists(super::manage_cmds::ExistsArgs),
}

/// `network create`.
#[derive(Debug, Args)]
pub struct CreateArgs {
    /// Subnet in CIDR form (one IPv4 and, with --ipv6, one IPv6).
    #[arg(long)]
    pub subnet: Vec<String>,
    /// Gateway address (default: the subnet's first address).
    #[arg(long)]
    pub gateway: Vec<String>,
    /// No route out of the network (no NAT, no published ports from outside).
    #[arg(long)]
    pub internal: bool,
    /// Give the network an IPv6 subnet too (a unique local /64 unless --subnet gives one).
    #[arg(long)]
    pub ipv6: bool,
    /// Label K=V (repeatable).
    #[arg(long = "label", short = 'l')]
    pub labels: Vec<String>,
    /// Driver (only bridge).
    #[arg(long, short = 'd')]
    pub driver: Option<String>,
    /// Driver option KEY=VALUE: mtu=N (repeatable).
    #[arg(long = "opt", short = 'o')]
    pub opts: Vec<String>,
    /// Network name.
    pub name: String,
}

/// `network ls`.
#[derive(Debug, Args)]
pub struct LsArgs {
    /// Only names.
    #[arg(short = 'q', long)]
    pub quiet: bool,
    /// Output: table, json, a Go template, or `table TEMPLATE`
    /// (example: `--format '{{.Name}} {{.Driver}}'`).
    #[arg(long, default_value = "table")]
    pub format: String,
    /// Full network IDs.
    #[arg(long)]
    pub no_trunc: bool,
}

/// Commands taking network names.
#[derive(Debug, Args)]
pub struct NamesArgs {
    #[arg(required = true)]
    pub names: Vec<String>,
}

/// `network inspect`.
#[derive(Debug, Args)]
pub struct InspectArgs {
    /// A Go template for each network (example: `-f '{{range .IPAM.Config}}{{.Subnet}}{{end}}'`), or json.
    #[arg(short = 'f', long)]
    pub format: Option<String>,
    #[arg(required = true)]
    pub names: Vec<String>,
}

/// `network prune`.
#[derive(Debug, Args)]
pub struct PruneArgs {
    /// Do not ask for confirmation (asked only on a terminal).
    #[arg(short = 'f', long)]
    pub force: bool,
}

/// `network connect`.
#[derive(Debug, Args)]
pub struct ConnectArgs {
    /// The container's address on the network.
    #[arg(long)]
    pub ip: Option<String>,
    /// Another DNS name of the container on this network.
    #[arg(long)]
    pub alias: Vec<String>,
    pub network: String,
    pub container: String,
}

/// `network disconnect`.
#[derive(Debug, Args)]
pub struct DisconnectArgs {
    /// Accepted for compatibility.
    #[arg(short = 'f', long)]
    pub force: bool,
    pub network: String,
    pub container: String,
}

/// `network-dns NAME`.
#[derive(Debug, Args)]
pub struct DnsArgs {
    pub network: String,
}

/// `port-proxy --netns PIN --target IP --publish PROTO,HOST_IP,HOST_PORT,PORT ...`.
#[derive(Debug, Args)]
pub struct PortProxyArgs {
    /// The container's network namespace (its pin).
    #[arg(long)]
    pub netns: PathBuf,
    /// The container's address inside it.
    #[arg(long)]
    pub target: String,
    /// A published port.
    #[arg(long)]
    pub publish: Vec<String>,
}

/// Runs a `network` subcommand.
pub fn network_command(root: &Path, e: &EngineArgs, c: NetworkCommand) -> Result<()> {
    let engine = e.engine(root)?;
    if !matches!(c, NetworkCommand::Create(_)) {
        // Addresses held by killed `create`s are released first.
        berth_engine::create::reap_interrupted(&engine)?;
    }
    match c {
        NetworkCommand::Create(a) => {
            let n = networks::create(
                &engine,
                &CreateRequest {
                    name: a.name,
                    subnets: a.subnet,
                    gateways: a.gateway,
                    ipv6: a.ipv6,
                    internal: a.internal,
                    labels: a.labels,
                    driver: a.driver,
                    opts: a.opts,
                },
            )?;
            println!("{}", n.name);
            berth_engine::events::record(
                &engine.root,
                &berth_engine::events::Event::new(
                    "network",
                    "create",
                    &n.id,
                    &[("name", &n.name), ("type", "bridge")],
                ),
            );
        }
        NetworkCommand::Ls(a) => {
            let nets = networks::list(&engine)?;
            if a.quiet {
                for n in &nets {
                    println!("{}", n.name);
                }
            } else {
                let format = Format::parse(&a.format);
                let docs: Vec<Value> = nets
                    .iter()
                    .map(|n| networks::inspect_json(&engine, n))
                    .collect();
                if format == Format::Json {
                    println!("{}", serde_json::to_string_pretty(&docs)?);
                } else {
                    let rows: Vec<Value> = nets.iter().map(|n| ls_row(n, a.no_trunc)).collect();
                    let default = "{{.ID}}\t{{.Name}}\t{{.Driver}}\t{{.Subnets}}\t{{.Options}}";
                    print!(
                        "{}",
                        format.rows(default, super::views::NETWORK_HEADERS, &rows)?
                    );
                }
            }
        }
        NetworkCommand::Inspect(a) => {
            let mut out = Vec::new();
            for name in &a.names {
                let n = networks::find(&engine, name)?;
                out.push(networks::inspect_json(&engine, &n));
            }
            match &a.format {
                Some(f) if f != "json" => print!("{}", super::template::render_lines(f, &out)?),
                _ => println!("{}", serde_json::to_string_pretty(&json!(out))?),
            }
        }
        NetworkCommand::Rm(a) => {
            let mut failed = false;
            for name in &a.names {
                match networks::remove(&engine, name) {
                    Ok(n) => {
                        println!("{n}");
                        berth_engine::events::record(
                            &engine.root,
                            &berth_engine::events::Event::new(
                                "network",
                                "remove",
                                &n,
                                &[("name", &n)],
                            ),
                        );
                    }
                    Err(err) => {
                        eprintln!("berth: {err}");
                        failed = true;
                    }
                }
            }
            // Each error was printed once, above.
            if failed {
                std::process::exit(1);
            }
        }
        NetworkCommand::Prune(a) => {
            if !a.force
                && !super::system_prune::ask_on_terminal(
                    "network prune",
                    "WARNING! This will remove all networks not used by at least one container.",
                )?
            {
                return Ok(());
            }
            for n in networks::prune(&engine)? {
                println!("{n}");
            }
        }
        NetworkCommand::Connect(a) => {
            networks::connect(&engine, &a.network, &a.container, a.ip.as_deref(), &a.alias)?;
            berth_engine::events::record(
                &engine.root,
                &berth_engine::events::Event::new(
                    "network",
                    "connect",
                    &a.network,
                    &[("name", &a.network), ("container", &a.container)],
                ),
            );
        }
        NetworkCommand::Disconnect(a) => {
            networks::disconnect(&engine, &a.network, &a.container)?;
            berth_engine::events::record(
                &engine.root,
                &berth_engine::events::Event::new(
                    "network",
                    "disconnect",
                    &a.network,
                    &[("name", &a.network), ("container", &a.container)],
                ),
            );
        }
        NetworkCommand::Exists(a) => match networks::find(&engine, &a.name) {
            Ok(_) => {}
            Err(berth_engine::EngineError::Network(n))
                if matches!(*n, networks::NetworkError::NotFound(_)) =>
            {
                std::process::exit(1)
            }
            Err(e) => return Err(e.into()),
        },
    }
    Ok(())
}

/// A `network ls` row for templates (Docker's fields, and berth's
/// `Subnets` and `Options` columns).
fn ls_row(n: &networks::Network, no_trunc: bool) -> Value {
    let mut subnets = n.subnet.to_string();
    if let Some(s6) = n.subnet6 {
        subnets.push_str(&format!(",{s6}"));
    }
    let labels: Vec<String> = n.labels.iter().map(|(k, v)| format!("{k}={v}")).collect();
    json!({
        "ID": if no_trunc { &n.id[..] } else { &n.id[..12.min(n.id.len())] },
        "Name": n.name,
        "Driver": "bridge",
        "Scope": "local",
        "IPv6": n.subnet6.is_some(),
        "Internal": n.internal,
        "Labels": labels.join(","),
        "CreatedAt": super::views::docker_time(n.created),
        "Subnets": subnets,
        "Options": if n.internal { "internal" } else { "" },
    })
}

/// The resolver process of one network.
pub fn dns(root: &Path, e: &EngineArgs, a: &DnsArgs) -> Result<()> {
    let engine = e.engine(root)?;
    networks::resolver_main(&engine, &a.network)?;
    Ok(())
}

/// `port-proxy`: serves until ended (see `berth_engine::networks::port_proxy`).
pub fn port_proxy(a: &PortProxyArgs) -> Result<()> {
    networks::port_proxy::proxy_main(&a.netns, &a.target, &a.publish)?;
    Ok(())
}
