//! `berth network create|ls|inspect|rm|prune|connect|disconnect`, and the
//! hidden `network-dns` (a network's resolver process).

use std::path::Path;

use anyhow::Result;
use berth_engine::networks::{self, CreateRequest};
use clap::{Args, Subcommand};
use serde_json::{json, Value};

use super::format::print_table;
use super::run::EngineArgs;

/// `network` subcommands.
#[derive(Debug, Subcommand)]
pub enum NetworkCommand {
    /// Create a bridge network (example: `berth network create --subnet 10.90.0.0/24 front`).
    Create(CreateArgs),
    /// List networks.
    #[command(alias = "list")]
    Ls(LsArgs),
    /// Show networks as JSON.
    Inspect(NamesArgs),
    /// Remove networks (refused while containers are attached).
    #[command(alias = "remove")]
    Rm(NamesArgs),
    /// Remove every network no container uses (never the default one).
    Prune(PruneArgs),
    /// Connect a container to a network (example: `berth network connect back web`).
    Connect(ConnectArgs),
    /// Disconnect a container from a network.
    Disconnect(DisconnectArgs),
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
    /// Output: table or json.
    #[arg(long, default_value = "table")]
    pub format: String,
}

/// Commands taking network names.
#[derive(Debug, Args)]
pub struct NamesArgs {
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
        }
        NetworkCommand::Ls(a) => {
            let nets = networks::list(&engine)?;
            if a.quiet {
                for n in &nets {
                    println!("{}", n.name);
                }
            } else if a.format == "json" {
                let v: Vec<Value> = nets
                    .iter()
                    .map(|n| networks::inspect_json(&engine, n))
                    .collect();
                println!("{}", serde_json::to_string_pretty(&v)?);
            } else if a.format == "table" {
                let rows: Vec<Vec<String>> = nets
                    .iter()
                    .map(|n| {
                        let mut subnets = n.subnet.to_string();
                        if let Some(s6) = n.subnet6 {
                            subnets.push_str(&format!(",{s6}"));
                        }
                        vec![
                            n.id[..12].to_string(),
                            n.name.clone(),
                            "bridge".into(),
                            subnets,
                            if n.internal { "internal" } else { "" }.into(),
                        ]
                    })
                    .collect();
                print_table(
                    &["NETWORK ID", "NAME", "DRIVER", "SUBNETS", "OPTIONS"],
                    &rows,
                );
            } else {
                anyhow::bail!(
                    "--format {:?} is not supported: use table or json",
                    a.format
                );
            }
        }
        NetworkCommand::Inspect(a) => {
            let mut out = Vec::new();
            for name in &a.names {
                let n = networks::find(&engine, name)?;
                out.push(networks::inspect_json(&engine, &n));
            }
            println!("{}", serde_json::to_string_pretty(&json!(out))?);
        }
        NetworkCommand::Rm(a) => {
            let mut failed = false;
            for name in &a.names {
                match networks::remove(&engine, name) {
                    Ok(n) => println!("{n}"),
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
        }
        NetworkCommand::Disconnect(a) => {
            networks::disconnect(&engine, &a.network, &a.container)?;
        }
    }
    Ok(())
}

/// The resolver process of one network.
pub fn dns(root: &Path, e: &EngineArgs, a: &DnsArgs) -> Result<()> {
    let engine = e.engine(root)?;
    networks::resolver_main(&engine, &a.network)?;
    Ok(())
}
