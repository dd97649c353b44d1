//! `berth inspect`: containers, and as Docker does, images, volumes and
//! networks when no container has the name (`--type` picks one kind);
//! JSON or one `--format` template line per object.

use std::path::Path;

use anyhow::Result;
use berth_engine::{inspect, lifecycle, volume_store, Engine};
use clap::{Args, ValueEnum};
use serde_json::Value;

use super::run::EngineArgs;

/// Kinds of objects `inspect` finds.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Kind {
    Container,
    Image,
    Volume,
    Network,
}

/// `inspect`.
#[derive(Debug, Args)]
pub struct InspectArgs {
    /// A Go template for each object (example: `-f '{{.State.Pid}}'`), or json.
    #[arg(short = 'f', long)]
    pub format: Option<String>,
    /// Only this kind of object.
    #[arg(long = "type", value_enum)]
    pub kind: Option<Kind>,
    /// Add the container's sizes (SizeRw, SizeRootFs).
    #[arg(short = 's', long)]
    pub size: bool,
    #[arg(required = true)]
    pub names: Vec<String>,
}

/// The document of `name` of one kind, `None` when there is none.
fn find(root: &Path, engine: &Engine, kind: Kind, name: &str, size: bool) -> Option<Value> {
    match kind {
        Kind::Container => {
            let row = lifecycle::find(engine, name).ok()?;
            let mut doc = inspect::inspect(engine, &row);
            if size {
                let rw = super::views::dir_size(&engine.dir(&row.id).join("upper"));
                let image = super::images::open(root)
                    .ok()
                    .and_then(|s| berth_image::image::resolve_name(&s, &row.image_id).ok())
                    .map(|i| super::images::image_size(&i))
                    .unwrap_or(0);
                doc["SizeRw"] = rw.into();
                doc["SizeRootFs"] = (rw + image).into();
            }
            Some(doc)
        }
        Kind::Image => {
            let store = super::images::open(root).ok()?;
            let img = berth_image::image::resolve_name(&store, name).ok()?;
            Some(super::images::image_doc(&store, &img))
        }
        Kind::Volume => volume_store::inspect(engine, name)
            .ok()
            .map(|v| super::volumes::volume_json(&v)),
        Kind::Network => berth_engine::networks::find(engine, name)
            .ok()
            .map(|n| berth_engine::networks::inspect_json(engine, &n)),
    }
}

/// `inspect`: every object found is printed; a name that matches nothing
/// is reported and the status is 1, as Docker does.
pub fn inspect_cmd(root: &Path, e: &EngineArgs, a: &InspectArgs) -> Result<i32> {
    run(root, e, a, a.kind)
}

/// `container inspect` and the like: only objects of one kind.
pub fn inspect_kind(root: &Path, e: &EngineArgs, a: &InspectArgs, kind: Kind) -> Result<i32> {
    if a.kind.is_some_and(|k| k != kind) {
        anyhow::bail!("--type cannot change the kind of object this command inspects");
    }
    run(root, e, a, Some(kind))
}

fn run(root: &Path, e: &EngineArgs, a: &InspectArgs, kind: Option<Kind>) -> Result<i32> {
    let engine = e.engine(root)?;
    let kinds = match kind {
        Some(k) => vec![k],
        None => vec![Kind::Container, Kind::Image, Kind::Volume, Kind::Network],
    };
    let mut docs = Vec::new();
    let mut missing = Vec::new();
    for name in &a.names {
        match kinds
            .iter()
            .find_map(|k| find(root, &engine, *k, name, a.size))
        {
            Some(d) => docs.push(d),
            None => missing.push(name),
        }
    }
    let text = match &a.format {
        Some(f) if f != "json" => super::template::render_lines(f, &docs)?,
        _ => serde_json::to_string_pretty(&docs)? + "\n",
    };
    if !(docs.is_empty() && a.format.as_deref().is_some_and(|f| f != "json")) {
        use std::io::Write;
        let _ = std::io::stdout().lock().write_all(text.as_bytes());
    }
    for name in &missing {
        let what = match kind {
            Some(Kind::Container) => "container",
            Some(Kind::Image) => "image",
            Some(Kind::Volume) => "volume",
            Some(Kind::Network) => "network",
            None => "object",
        };
        eprintln!("berth: no such {what}: {name}");
    }
    Ok(i32::from(!missing.is_empty()))
}
