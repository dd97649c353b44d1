//! `berth volume create|ls|inspect|rm|prune`.

use std::path::Path;

use anyhow::Result;
use berth_engine::volume_store::{self, Volume};
use berth_engine::volumes;
use clap::{Args, Subcommand};
use serde_json::Value;

use super::run::EngineArgs;
use super::template::Format;

/// `volume` subcommands.
#[derive(Debug, Subcommand)]
pub enum VolumeCommand {
    /// Create a volume (example: `berth volume create --label app=web data`).
    Create(CreateArgs),
    /// List volumes.
    #[command(alias = "list")]
    Ls(LsArgs),
    /// Show volumes as JSON or through a template.
    Inspect(InspectArgs),
    /// Remove volumes (refused while a container uses one).
    #[command(alias = "remove")]
    Rm(RmArgs),
    /// Remove every volume no container uses.
    Prune(PruneArgs),
    /// Exit 0 when the volume exists, 1 when not (example: `berth volume exists data`).
    Exists(super::manage_cmds::ExistsArgs),
}

/// `volume create`.
#[derive(Debug, Args)]
pub struct CreateArgs {
    /// Label K=V (repeatable).
    #[arg(long = "label", short = 'l')]
    pub labels: Vec<String>,
    /// Driver option: type=tmpfs|bind, o=OPTIONS, device=PATH (repeatable).
    #[arg(long = "opt", short = 'o')]
    pub opts: Vec<String>,
    /// Driver (only "local").
    #[arg(long, short = 'd', default_value = "local")]
    pub driver: String,
    /// Volume name (default: a random ID).
    pub name: Option<String>,
}

/// `volume ls`.
#[derive(Debug, Args)]
pub struct LsArgs {
    /// Only names.
    #[arg(short = 'q', long)]
    pub quiet: bool,
    /// Output: table, json, a Go template, or `table TEMPLATE`
    /// (example: `--format '{{.Name}} {{.Mountpoint}}'`).
    #[arg(long, default_value = "table")]
    pub format: String,
}

/// Commands taking volume names.
#[derive(Debug, Args)]
pub struct NamesArgs {
    #[arg(required = true)]
    pub names: Vec<String>,
}

/// `volume inspect`.
#[derive(Debug, Args)]
pub struct InspectArgs {
    /// A Go template for each volume (example: `-f '{{.Mountpoint}}'`), or json.
    #[arg(short = 'f', long)]
    pub format: Option<String>,
    #[arg(required = true)]
    pub names: Vec<String>,
}

/// `volume rm`.
#[derive(Debug, Args)]
pub struct RmArgs {
    /// Do not fail on a missing volume; remove the containers using the
    /// volume first (podman's rule).
    #[arg(short = 'f', long)]
    pub force: bool,
    #[arg(required = true)]
    pub names: Vec<String>,
}

/// `volume prune`.
#[derive(Debug, Args)]
pub struct PruneArgs {
    /// Do not ask for confirmation (asked only on a terminal).
    #[arg(short = 'f', long)]
    pub force: bool,
}

/// Docker's `volume inspect` shape.
pub fn volume_json(v: &Volume) -> Value {
    v.docker_json()
}

/// A `volume ls` row for templates: the inspect fields, `Labels` as
/// Docker's `k=v,k=v` text.
fn ls_row(mut v: Value) -> Value {
    let labels = v["Labels"]
        .as_object()
        .map(|m| {
            m.iter()
                .map(|(k, x)| format!("{k}={}", x.as_str().unwrap_or_default()))
                .collect::<Vec<_>>()
                .join(",")
        })
        .unwrap_or_default();
    v["Labels"] = Value::String(labels);
    v
}

fn print_json(v: &Value) {
    println!(
        "{}",
        serde_json::to_string_pretty(v).expect("JSON serializes")
    );
}

/// Runs a `volume` subcommand.
pub fn volume_command(root: &Path, e: &EngineArgs, c: &VolumeCommand) -> Result<i32> {
    let engine = e.engine(root)?;
    match c {
        VolumeCommand::Create(a) => {
            if a.driver != "local" {
                anyhow::bail!(
                    "volume driver {:?} is not supported: berth has only the local driver",
                    a.driver
                );
            }
            let opts = volumes::parse_opts(&a.opts)?;
            let name = match &a.name {
                Some(n) => n.clone(),
                None => berth_engine::names::new_id()?,
            };
            let v =
                volume_store::create(&engine, &name, &volumes::labels(&a.labels), &opts, false)?;
            println!("{}", v.name);
            berth_engine::events::record(
                &engine.root,
                &berth_engine::events::Event::new(
                    "volume",
                    "create",
                    &v.name,
                    &[("driver", "local")],
                ),
            );
            Ok(0)
        }
        VolumeCommand::Ls(a) => {
            let all = volume_store::list(&engine)?;
            if a.quiet {
                all.iter().for_each(|v| println!("{}", v.name));
            } else {
                let format = Format::parse(&a.format);
                let docs: Vec<Value> = all.iter().map(volume_json).collect();
                if format == Format::Json {
                    print_json(&Value::Array(docs));
                } else {
                    let rows: Vec<Value> = docs.into_iter().map(ls_row).collect();
                    print!(
                        "{}",
                        format.rows(
                            "{{.Driver}}\t{{.Name}}",
                            super::views::VOLUME_HEADERS,
                            &rows
                        )?
                    );
                }
            }
            Ok(0)
        }
        VolumeCommand::Inspect(a) => {
            let mut out = Vec::new();
            let mut failed = false;
            for n in &a.names {
                match volume_store::inspect(&engine, n) {
                    Ok(v) => out.push(volume_json(&v)),
                    Err(err) => {
                        eprintln!("berth: {err}");
                        failed = true;
                    }
                }
            }
            match &a.format {
                Some(f) if f != "json" => print!("{}", super::template::render_lines(f, &out)?),
                _ => print_json(&Value::Array(out)),
            }
            Ok(i32::from(failed))
        }
        VolumeCommand::Rm(a) => {
            let mut failed = false;
            for n in &a.names {
                if a.force {
                    // podman: `volume rm -f` removes the containers using it.
                    let users = volume_store::users(&engine, n)?;
                    let mut users_gone = true;
                    for r in berth_engine::ops::rm_all(&engine, &users, true, false) {
                        if let Err(err) = r {
                            eprintln!("berth: {}", berth_engine::error::error_chain(&err));
                            users_gone = false;
                        }
                    }
                    if !users_gone {
                        failed = true;
                        continue;
                    }
                }
                match volume_store::remove(&engine, n, a.force) {
                    Ok(true) => {
                        println!("{n}");
                        berth_engine::events::record(
                            &engine.root,
                            &berth_engine::events::Event::new("volume", "destroy", n, &[]),
                        );
                    }
                    Ok(false) => {}
                    Err(err) => {
                        eprintln!("berth: {err}");
                        failed = true;
                    }
                }
            }
            Ok(i32::from(failed))
        }
        VolumeCommand::Prune(a) => {
            if !a.force
                && !super::system_prune::ask_on_terminal(
                    "volume prune",
                    "WARNING! This will remove all volumes not used by at least one container.",
                )?
            {
                return Ok(0);
            }
            for n in volume_store::prune(&engine)? {
                println!("{n}");
            }
            Ok(0)
        }
        VolumeCommand::Exists(a) => Ok(i32::from(volume_store::get(&engine, &a.name)?.is_none())),
    }
}
