//! Image commands: `images`, `image inspect|ls|rm|prune|tag|mount|unmount`,
//! `tag`, `rmi`.

use std::path::Path;

use anyhow::{bail, Context};
use berth_image::gc::collect_garbage;
use berth_image::image::{resolve, ResolvedImage};
use berth_image::mount::{detach_image_view, image_mounted, mount_image, unmount_image};
use berth_image::{Reference, Store};
use clap::{Args, Subcommand};
use serde_json::json;

use super::format::{human_size, print_table, OutputFormat};

/// `berth image ...`
#[derive(Debug, Subcommand)]
pub enum ImageCommand {
    /// List images (same as `berth images`).
    Ls(ListArgs),
    /// Show image details as JSON (example: `berth image inspect busybox`).
    Inspect(InspectArgs),
    /// Add names to an image.
    Tag(TagArgs),
    /// Remove images (same as `berth rmi`).
    Rm(RmiArgs),
    /// Remove unnamed images, or with --all every image, and unused data
    /// (example: `berth image prune -a`).
    Prune(PruneArgs),
    /// Mount a read-only view of an image's rootfs and print its path
    /// (example: `ls $(berth image mount busybox)/bin`).
    Mount(NameArgs),
    /// Unmount a view made by `image mount`.
    Unmount(NameArgs),
}

#[derive(Debug, Args)]
pub struct ListArgs {
    /// Output format.
    #[arg(long, value_enum, default_value = "table")]
    pub format: OutputFormat,
    /// Print image IDs only.
    #[arg(short, long)]
    pub quiet: bool,
}

#[derive(Debug, Args)]
pub struct InspectArgs {
    #[arg(required = true)]
    pub images: Vec<String>,
}

#[derive(Debug, Args)]
pub struct TagArgs {
    /// Image to name.
    pub image: String,
    /// New names.
    #[arg(required = true)]
    pub names: Vec<String>,
}

#[derive(Debug, Args)]
pub struct RmiArgs {
    #[arg(required = true)]
    pub images: Vec<String>,
    /// Remove the image even when it has several names or a mounted view.
    #[arg(short, long)]
    pub force: bool,
}

#[derive(Debug, Args)]
pub struct PruneArgs {
    /// Remove all images, not only unnamed ones.
    #[arg(short, long)]
    pub all: bool,
    /// Do not ask for confirmation (asked only on a terminal).
    #[arg(short = 'f', long)]
    pub force: bool,
}

#[derive(Debug, Args)]
pub struct NameArgs {
    pub image: String,
}

pub fn open(root: &Path) -> anyhow::Result<Store> {
    Store::open(root).with_context(|| format!("open image store under {}", root.display()))
}

pub fn image_command(root: &Path, c: ImageCommand) -> anyhow::Result<()> {
    match c {
        ImageCommand::Ls(a) => list(root, &a),
        ImageCommand::Inspect(a) => inspect(root, &a),
        ImageCommand::Tag(a) => tag(root, &a),
        ImageCommand::Rm(a) => rmi(root, &a),
        ImageCommand::Prune(a) => prune(root, &a),
        ImageCommand::Mount(a) => {
            let store = open(root)?;
            println!("{}", mount_image(&store, &a.image)?.display());
            Ok(())
        }
        ImageCommand::Unmount(a) => {
            let store = open(root)?;
            if !unmount_image(&store, &a.image)? {
                eprintln!("berth: image {} was not mounted", a.image);
            }
            Ok(())
        }
    }
}

fn image_size(img: &ResolvedImage) -> u64 {
    img.manifest.config.size + img.manifest.layers.iter().map(|l| l.size).sum::<u64>()
}

fn load_all(store: &Store) -> anyhow::Result<Vec<ResolvedImage>> {
    let _lock = store.lock_shared()?;
    let mut out = Vec::new();
    for rec in store.images()? {
        // One damaged image must not hide the others.
        match resolve(store, &rec) {
            Ok(img) => out.push(img),
            Err(e) => eprintln!("berth: warning: skipping image {}: {e:#}", rec.id.short()),
        }
    }
    Ok(out)
}

pub fn list(root: &Path, a: &ListArgs) -> anyhow::Result<()> {
    let store = open(root)?;
    let images = load_all(&store)?;
    if a.quiet {
        for img in &images {
            println!("{}", img.record.id.short());
        }
        return Ok(());
    }
    match a.format {
        OutputFormat::Json => {
            let v: Vec<_> = images
                .iter()
                .map(|img| {
                    json!({
                        "Id": img.record.id.hex(),
                        "Digest": img.record.manifest.digest.to_string(),
                        "Names": img.record.names,
                        "Created": img.config.created,
                        "Size": image_size(img),
                    })
                })
                .collect();
            println!("{}", serde_json::to_string_pretty(&v)?);
        }
        OutputFormat::Table => {
            let mut rows = Vec::new();
            for img in &images {
                let created = img.config.created.clone().unwrap_or_default();
                let size = human_size(image_size(img));
                let names: Vec<(String, String)> = if img.record.names.is_empty() {
                    vec![("<none>".into(), "<none>".into())]
                } else {
                    img.record
                        .names
                        .iter()
                        .map(|n| match Reference::parse(n) {
                            Ok(r) => (r.repository(), r.tag.unwrap_or_else(|| "<none>".into())),
                            Err(_) => (n.clone(), "<none>".into()),
                        })
                        .collect()
                };
                for (repo, tag) in names {
                    rows.push(vec![
                        repo,
                        tag,
                        img.record.id.short().to_string(),
                        created.clone(),
                        size.clone(),
                    ]);
                }
            }
            print_table(&["REPOSITORY", "TAG", "IMAGE ID", "CREATED", "SIZE"], &rows);
        }
    }
    Ok(())
}

fn inspect(root: &Path, a: &InspectArgs) -> anyhow::Result<()> {
    let store = open(root)?;
    let mut out = Vec::new();
    for name in &a.images {
        let img = berth_image::image::resolve_name(&store, name)?;
        out.push(json!({
            "Id": img.record.id.hex(),
            "Digest": img.record.manifest.digest.to_string(),
            "RepoTags": img.record.names,
            "ManifestMediaType": img.record.manifest.media_type,
            "Created": img.config.created,
            "Architecture": img.config.architecture,
            "Os": img.config.os,
            "Variant": img.config.variant,
            "Config": img.config.config,
            "RootFS": img.config.rootfs,
            "Layers": img.manifest.layers,
            "Size": image_size(&img),
            "LowerDirs": img.lower_dirs(&store),
        }));
    }
    println!("{}", serde_json::to_string_pretty(&out)?);
    Ok(())
}

pub fn tag(root: &Path, a: &TagArgs) -> anyhow::Result<()> {
    let store = open(root)?;
    let lock = store.lock()?;
    let rec = store.lookup(&a.image)?;
    let names = a
        .names
        .iter()
        .map(|n| Reference::parse(n))
        .collect::<Result<Vec<_>, _>>()?;
    if let Some(n) = names.iter().find(|n| n.digest.is_some()) {
        bail!("tag {n}: a new name cannot contain a digest");
    }
    store.put_image(&lock, &rec.id, &rec.manifest, &names)?;
    Ok(())
}

/// Names of the containers (in the engine database under `root`) made from
/// image `id`: an image in use keeps its blobs and snapshots.
fn containers_using(root: &Path, id: &berth_image::Digest) -> anyhow::Result<Vec<String>> {
    if !root.join("engine.db").exists() {
        return Ok(Vec::new());
    }
    let db = berth_engine::db::Db::open(root)?;
    let id = id.to_string();
    Ok(db
        .list()?
        .into_iter()
        .filter(|c| c.image_id == id)
        .map(|c| c.name)
        .collect())
}

pub fn rmi(root: &Path, a: &RmiArgs) -> anyhow::Result<()> {
    let store = open(root)?;
    let lock = store.lock()?;
    for spec in &a.images {
        let rec = store.lookup(spec)?;
        let by_name = Reference::parse(spec)
            .ok()
            .map(|r| r.to_string())
            .filter(|n| rec.names.contains(n));
        match by_name {
            // Removing one of several names only untags (as podman does).
            Some(n) if rec.names.len() > 1 && !a.force => {
                store.remove_name(&lock, &Reference::parse(&n)?)?;
                println!("Untagged: {n}");
            }
            _ => {
                let users = containers_using(root, &rec.id)?;
                if !users.is_empty() {
                    bail!(
                        "remove image {spec}: containers use it: {}; remove them first (berth rm)",
                        users.join(", ")
                    );
                }
                if image_mounted(&store, &rec.id) {
                    if !a.force {
                        bail!(
                            "remove image {spec}: its rootfs is mounted at {}; run `berth image unmount {spec}` or use --force",
                            store.mount_path(&rec.id).display()
                        );
                    }
                    detach_image_view(&store, &lock, &rec.id)?;
                }
                for n in &rec.names {
                    println!("Untagged: {n}");
                }
                store.remove_image(&lock, &rec.manifest.digest)?;
                println!("Deleted: {}", rec.id.hex());
            }
        }
    }
    collect_garbage(&store, &lock)?;
    Ok(())
}

fn prune(root: &Path, a: &PruneArgs) -> anyhow::Result<()> {
    let question = if a.all {
        "WARNING! This command removes all images without at least one container associated with them."
    } else {
        "WARNING! This command removes all dangling images."
    };
    if !a.force && !super::system_prune::ask_on_terminal("image prune", question)? {
        return Ok(());
    }
    let (removed, report) = prune_images(root, a.all)?;
    for id in removed {
        println!("{id}");
    }
    eprintln!(
        "removed {} blobs and {} snapshots, {} freed",
        report.blobs_removed,
        report.snapshots_removed,
        human_size(report.bytes_freed)
    );
    Ok(())
}

/// Removes unnamed images (every image with `all`) that no container
/// uses and that are not mounted, then collects garbage. Returns the IDs
/// removed and what the collection freed.
pub(super) fn prune_images(
    root: &Path,
    all: bool,
) -> anyhow::Result<(Vec<String>, berth_image::gc::GcReport)> {
    let store = open(root)?;
    let lock = store.lock()?;
    let mut removed = Vec::new();
    for rec in store.images()? {
        if (all || rec.names.is_empty())
            && !image_mounted(&store, &rec.id)
            && containers_using(root, &rec.id)?.is_empty()
        {
            store.remove_image(&lock, &rec.manifest.digest)?;
            removed.push(rec.id.hex().to_string());
        }
    }
    let report = collect_garbage(&store, &lock)?;
    Ok((removed, report))
}
