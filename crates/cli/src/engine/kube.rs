//! `berth kube play|down FILE` and `berth generate kube` (podman's): the
//! work is in berth_engine::kube; here are the flags, image pulls and the
//! monitor command.

use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::{Context, Result};
use berth_engine::kube::{self, play};
use berth_engine::Engine;
use clap::{Args, Subcommand};

use super::run::EngineArgs;

/// `kube` subcommands.
#[derive(Debug, Subcommand)]
pub enum KubeCommand {
    /// Run the Pods and Deployments of Kubernetes YAML (`-` reads stdin;
    /// example: `berth kube play web.yaml`).
    Play(PlayArgs),
    /// Remove the pods (and their containers) a YAML file made; named
    /// volumes are kept.
    Down(DownArgs),
}

/// `generate` subcommands.
#[derive(Debug, Subcommand)]
pub enum GenerateCommand {
    /// Kubernetes YAML for a pod or containers (example: `berth generate kube web > web.yaml`).
    Kube(GenerateArgs),
}

/// `kube play`.
#[derive(Debug, Args)]
pub struct PlayArgs {
    /// The pods' network: a bridge network name or none (default: berth's).
    #[arg(long, alias = "net")]
    pub network: Option<String>,
    #[command(flatten)]
    pub registry: super::registry::RegistryArgs,
    /// YAML file, or `-` for stdin.
    pub file: PathBuf,
}

/// `kube down`.
#[derive(Debug, Args)]
pub struct DownArgs {
    /// YAML file, or `-` for stdin.
    pub file: PathBuf,
}

/// `generate kube`.
#[derive(Debug, Args)]
pub struct GenerateArgs {
    /// Write to this file instead of stdout.
    #[arg(short = 'f', long)]
    pub filename: Option<PathBuf>,
    /// A pod, or containers not in a pod.
    #[arg(required = true)]
    pub names: Vec<String>,
}

fn load(engine: &Engine, file: &Path, network: Option<String>) -> Result<kube::Plan> {
    let text = play::read_input(file).with_context(|| format!("read {}", file.display()))?;
    let objects = kube::parse(&text).with_context(|| format!("{}", file.display()))?;
    let plan = kube::plan(engine, objects, &kube::PlanOptions { network })
        .with_context(|| format!("{}", file.display()))?;
    Ok(plan)
}

struct CliHost<'a> {
    root: &'a Path,
    engine: &'a Engine,
    registry: &'a super::registry::RegistryArgs,
}

impl play::Host for CliHost<'_> {
    fn pull(&self, image: &str, policy: &str) -> std::result::Result<(), String> {
        super::registry::ensure_platform_image(self.root, image, policy, None, self.registry)
            .map_err(|e| format!("image {image}: {e:#}"))
    }

    fn monitor(&self, id: &str) -> Command {
        super::run::monitor_command(self.root, self.engine, id)
    }
}

/// Runs a `kube` subcommand.
pub fn kube_command(root: &Path, e: &EngineArgs, c: KubeCommand) -> Result<()> {
    let engine = e.engine(root)?;
    match c {
        KubeCommand::Play(a) => {
            super::run::protect_binary()?;
            let plan = load(&engine, &a.file, a.network.clone())?;
            let host = CliHost {
                root,
                engine: &engine,
                registry: &a.registry,
            };
            let played = play::play(&engine, &plan, &host)
                .with_context(|| format!("kube play {}", a.file.display()))?;
            // podman's report.
            for p in played {
                println!("Pod:\n{}", p.pod);
                println!(
                    "{}:",
                    if p.containers.len() == 1 {
                        "Container"
                    } else {
                        "Containers"
                    }
                );
                for c in p.containers {
                    println!("{c}");
                }
                println!();
            }
        }
        KubeCommand::Down(a) => {
            let plan = load(&engine, &a.file, None)?;
            let d = play::down(&engine, &plan)
                .with_context(|| format!("kube down {}", a.file.display()))?;
            if !d.removed.is_empty() {
                println!("Pods stopped:");
                for id in &d.removed {
                    println!("{id}");
                }
                println!("Pods removed:");
                for id in &d.removed {
                    println!("{id}");
                }
            }
            if !d.missing.is_empty() {
                anyhow::bail!(
                    "kube down {}: no pod named {}",
                    a.file.display(),
                    d.missing.join(", ")
                );
            }
        }
    }
    Ok(())
}

/// Runs a `generate` subcommand.
pub fn generate_command(root: &Path, e: &EngineArgs, c: GenerateCommand) -> Result<()> {
    let engine = e.engine(root)?;
    match c {
        GenerateCommand::Kube(a) => {
            let yaml = kube::generate::generate(&engine, &a.names)?;
            match &a.filename {
                Some(f) => {
                    std::fs::write(f, yaml).with_context(|| format!("write {}", f.display()))?
                }
                None => print!("{yaml}"),
            }
        }
    }
    Ok(())
}
