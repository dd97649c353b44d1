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

use super::format::human_size;
use super::template::Format;
use super::views;

/// `berth image ...`
#[derive(Debug, Subcommand)]
pub enum ImageCommand {
    /// List images (same as `berth images`).
    Ls(ListArgs),
    /// Show image details as JSON (example: `berth image inspect busybox`).
    Inspect(InspectArgs),
    /// Add names to an image.
    Tag(TagArgs),
    /// Show an image's layers (same as `berth history`).
    History(super::history::HistoryArgs),
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
    /// Exit 0 when the image exists, 1 when not (example: `berth image exists busybox`).
    Exists(super::manage_cmds::ExistsArgs),
}

#[derive(Debug, Args)]
pub struct ListArgs {
    /// Output: table, json, a Go template, or `table TEMPLATE`
    /// (example: `--format '{{.Repository}}:{{.Tag}}'`).
    #[arg(long, default_value = "table")]
    pub format: String,
    /// Full image IDs.
    #[arg(long)]
    pub no_trunc: bool,
    /// Print image IDs only.
    #[arg(short, long)]
    pub quiet: bool,
}

#[derive(Debug, Args)]
pub struct InspectArgs {
    /// A Go template for each image (example: `--format '{{.Id}} {{.Size}}'`), or json.
    #[arg(short = 'f', long)]
    pub format: Option<String>,
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
        ImageCommand::History(a) => super::history::history(root, &a),
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
        ImageCommand::Exists(a) => {
            let code = super::manage_cmds::image_exists(root, &a)?;
            std::process::exit(code)
        }
    }
}

pub(super) fn image_size(img: &ResolvedImage) -> u64 {
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
    let format = Format::parse(&a.format);
    if format == Format::Json {
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
        return Ok(());
    }
    let now = berth_engine::now_ms();
    let mut rows = Vec::new();
    for img in &images {
        let created = img
            .config
            .created
            .as_deref()
            .and_then(views::parse_rfc3339_ms);
        let size = views::si_size(image_size(img));
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
            rows.push(json!({
                "Repository": repo,
                "Tag": tag,
                "ID": if a.no_trunc { img.record.id.to_string() } else { img.record.id.short().to_string() },
                "Digest": img.record.manifest.digest.to_string(),
                "CreatedSince": created.map(|c| views::since(c, now)).unwrap_or_else(|| "N/A".into()),
                "CreatedAt": created.map(views::docker_time).unwrap_or_default(),
                "Size": size,
                "VirtualSize": size,
                "SharedSize": "N/A",
                "UniqueSize": "N/A",
                "Containers": "N/A",
            }));
        }
    }
    let default = "{{.Repository}}\t{{.Tag}}\t{{.ID}}\t{{.CreatedSince}}\t{{.Size}}";
    print!("{}", format.rows(default, views::IMAGE_HEADERS, &rows)?);
    Ok(())
}

fn inspect(root: &Path, a: &InspectArgs) -> anyhow::Result<()> {
    let store = open(root)?;
    let mut out = Vec::new();
    for name in &a.images {
        let img = berth_image::image::resolve_name(&store, name)?;
        out.push(image_doc(&store, &img));
    }
    match &a.format {
        Some(f) if f != "json" => print!("{}", super::template::render_lines(f, &out)?),
        _ => println!("{}", serde_json::to_string_pretty(&out)?),
    }
    Ok(())
}

/// The `image inspect` document: Docker's fields (`Id`, `RepoTags`,
/// `RepoDigests`, `Created`, `Size`, `Config`, `Architecture`, `Os`,
/// `RootFS`, ...) and berth's own (`Digest`, `Layers`, `LowerDirs`).
pub(super) fn image_doc(store: &Store, img: &ResolvedImage) -> serde_json::Value {
    let digest = img.record.manifest.digest.to_string();
    let repo_digests: Vec<String> = img
        .record
        .names
        .iter()
        .filter_map(|n| Reference::parse(n).ok())
        .map(|r| format!("{}@{digest}", r.repository()))
        .collect::<std::collections::BTreeSet<_>>()
        .into_iter()
        .collect();
    let size = image_size(img);
    json!({
        "Id": img.record.id.hex(),
        "Digest": digest,
        "RepoTags": img.record.names,
        "RepoDigests": repo_digests,
        "Parent": "",
        "Comment": img.config.history.last().and_then(|h| h["comment"].as_str()).unwrap_or_default(),
        "ManifestMediaType": img.record.manifest.media_type,
        "Created": img.config.created,
        "Author": img.config.history.last().and_then(|h| h["author"].as_str()).unwrap_or_default(),
        "Architecture": img.config.architecture,
        "Os": img.config.os,
        "Variant": img.config.variant,
        "Config": img.config.config,
        "RootFS": {"Type": img.config.rootfs.kind, "Layers": img.config.rootfs.diff_ids},
        "Layers": img.manifest.layers,
        "Size": size,
        "VirtualSize": size,
        "GraphDriver": {"Name": "overlay", "Data": {"LowerDir": img.lower_dirs(store).iter().map(|p| p.display().to_string()).collect::<Vec<_>>().join(":")}},
        "LowerDirs": img.lower_dirs(store),
        "Metadata": {"LastTagTime": "0001-01-01T00:00:00Z"},
    })
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
    for n in &names {
        let n = n.to_string();
        berth_engine::events::record(
            root,
            &berth_engine::events::Event::new("image", "tag", &rec.id.to_string(), &[("name", &n)]),
        );
    }
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
                berth_engine::events::record(
                    root,
                    &berth_engine::events::Event::new(
                        "image",
                        "untag",
                        &rec.id.to_string(),
                        &[("name", &n)],
                    ),
                );
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
                    berth_engine::events::record(
                        root,
                        &berth_engine::events::Event::new(
                            "image",
                            "untag",
                            &rec.id.to_string(),
                            &[("name", n)],
                        ),
                    );
                }
                store.remove_image(&lock, &rec.manifest.digest)?;
                println!("Deleted: {}", rec.id.hex());
                let name = rec.names.first().cloned().unwrap_or_default();
                berth_engine::events::record(
                    root,
                    &berth_engine::events::Event::new(
                        "image",
                        "delete",
                        &rec.id.to_string(),
                        &[("name", &name)],
                    ),
                );
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
