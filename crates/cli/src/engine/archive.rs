//! Archive commands: `load`, `save`, `import`.

use std::io::Write;
use std::path::{Path, PathBuf};

use anyhow::{bail, Context};
use berth_image::archive::{import_rootfs, load as load_archive, save as save_archive, SaveFormat};
use berth_image::image::resolve_name;
use berth_image::manifest::{Platform, RuntimeConfig};
use berth_image::Reference;
use clap::{Args, ValueEnum};

use super::images::open;

#[derive(Debug, Args)]
pub struct LoadArgs {
    /// Archive file or OCI layout directory (default: standard input).
    #[arg(short, long)]
    pub input: Option<PathBuf>,
    /// Platform to pick from multi-platform indexes (os/arch[/variant]).
    #[arg(long)]
    pub platform: Option<String>,
}

#[derive(Debug, Clone, Copy, ValueEnum)]
pub enum ArchiveFormat {
    DockerArchive,
    OciArchive,
}

#[derive(Debug, Args)]
pub struct SaveArgs {
    /// Output file (default: standard output, unless it is a terminal).
    #[arg(short, long)]
    pub output: Option<PathBuf>,
    /// Archive format.
    #[arg(long, value_enum, default_value = "docker-archive")]
    pub format: ArchiveFormat,
    /// Images to save.
    #[arg(required = true)]
    pub images: Vec<String>,
}

#[derive(Debug, Args)]
pub struct ImportArgs {
    /// Rootfs tarball (tar, tar.gz or tar.zst).
    pub file: PathBuf,
    /// Name for the new image.
    pub name: Option<String>,
    /// Default command of the image, as a JSON array (e.g. '["/bin/sh"]').
    #[arg(long)]
    pub cmd: Option<String>,
}

pub fn load(root: &Path, a: &LoadArgs) -> anyhow::Result<()> {
    let store = open(root)?;
    let platform = match &a.platform {
        Some(p) => Platform::parse(p)?,
        None => Platform::host(),
    };
    // Standard input is spooled into the store's temp dir first: archives
    // are read by path.
    let spool;
    let path = match &a.input {
        Some(p) => p.clone(),
        None => {
            spool = store.temp_dir("stdin-")?;
            let p = spool.path().join("archive.tar");
            let mut f = std::fs::File::create(&p).context("spool standard input")?;
            std::io::copy(&mut std::io::stdin().lock(), &mut f)
                .context("read archive from standard input")?;
            f.flush()?;
            p
        }
    };
    let images = load_archive(&store, &path, &platform)?;
    if images.is_empty() {
        bail!("load {}: the archive holds no images", path.display());
    }
    for img in images {
        if img.record.names.is_empty() {
            println!("Loaded image: {}", img.record.id);
        }
        for n in &img.record.names {
            println!("Loaded image: {n}");
        }
    }
    Ok(())
}

pub fn save(root: &Path, a: &SaveArgs) -> anyhow::Result<()> {
    let store = open(root)?;
    let mut images = Vec::new();
    let mut names = Vec::new();
    for spec in &a.images {
        let img = resolve_name(&store, spec)?;
        // Saved by name: that name; by ID: all of the image's names.
        let n = match Reference::parse(spec).map(|r| r.to_string()) {
            Ok(full) if img.record.names.contains(&full) => vec![full],
            _ => img.record.names.clone(),
        };
        names.push(n);
        images.push(img);
    }
    let format = match a.format {
        ArchiveFormat::DockerArchive => SaveFormat::DockerArchive,
        ArchiveFormat::OciArchive => SaveFormat::OciArchive,
    };
    match &a.output {
        Some(p) => save_archive(&store, &images, &names, p, format)?,
        None => {
            // Refused before any work when stdout is a terminal (Docker's
            // rule); else written to a temp file in the store, then copied.
            let mut out = super::manage_cmds::binary_output(None, "save")?;
            let tmp = store.temp_dir("save-")?;
            let p = tmp.path().join("archive.tar");
            save_archive(&store, &images, &names, &p, format)?;
            let mut f = std::fs::File::open(&p).context("save: read the archive back")?;
            match std::io::copy(&mut f, &mut out).and_then(|_| out.flush()) {
                Ok(()) => {}
                Err(e) if e.kind() == std::io::ErrorKind::BrokenPipe => {}
                Err(e) => {
                    return Err(anyhow::Error::new(e).context("save: write to standard output"))
                }
            }
        }
    }
    Ok(())
}

pub fn import(root: &Path, a: &ImportArgs) -> anyhow::Result<()> {
    let store = open(root)?;
    let name = a.name.as_deref().map(Reference::parse).transpose()?;
    let mut config = RuntimeConfig {
        env: Some(vec![
            "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin".into(),
        ]),
        ..Default::default()
    };
    if let Some(c) = &a.cmd {
        config.cmd = Some(
            serde_json::from_str(c)
                .with_context(|| format!("parse --cmd {c:?}: expected a JSON array of strings"))?,
        );
    }
    let img = import_rootfs(&store, &a.file, name.as_ref(), config)?;
    println!("{}", img.record.id);
    Ok(())
}
