//! `berth system df`.

use std::path::Path;

use anyhow::Context;
use berth_image::gc::disk_usage;
use berth_image::Store;
use clap::{Args, Subcommand};

use super::format::{human_size, print_table, OutputFormat};

/// `berth system ...`
#[derive(Debug, Subcommand)]
pub enum SystemCommand {
    /// Show disk usage of the image store (example: `berth system df`).
    Df(DfArgs),
}

#[derive(Debug, Args)]
pub struct DfArgs {
    #[arg(long, value_enum, default_value = "table")]
    pub format: OutputFormat,
}

pub fn system_command(root: &Path, c: SystemCommand) -> anyhow::Result<()> {
    match c {
        SystemCommand::Df(a) => df(root, &a),
    }
}

fn df(root: &Path, a: &DfArgs) -> anyhow::Result<()> {
    let store =
        Store::open(root).with_context(|| format!("open store under {}", root.display()))?;
    let u = disk_usage(&store)?;
    match a.format {
        OutputFormat::Json => println!("{}", serde_json::to_string_pretty(&u)?),
        OutputFormat::Table => print_table(
            &["TYPE", "TOTAL", "SIZE", "RECLAIMABLE"],
            &[
                vec![
                    "Images".into(),
                    u.images.to_string(),
                    human_size(u.blob_bytes + u.snapshot_bytes),
                    human_size(u.reclaimable_bytes),
                ],
                vec![
                    "  Blobs".into(),
                    u.blobs.to_string(),
                    human_size(u.blob_bytes),
                    String::new(),
                ],
                vec![
                    "  Snapshots".into(),
                    u.snapshots.to_string(),
                    human_size(u.snapshot_bytes),
                    String::new(),
                ],
            ],
        ),
    }
    Ok(())
}
