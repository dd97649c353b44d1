//! `build`: an image from a Containerfile (podman/buildah/docker build
//! conventions); the work is berth-build's.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use anyhow::{bail, Context, Result};
use berth_image::Reference;
use clap::Args;
use nix::sys::signal::{SigSet, Signal};
use nix::sys::signalfd::{SfdFlags, SignalFd};

use super::run::EngineArgs;

/// `build` options.
#[derive(Debug, Args)]
pub struct BuildArgs {
    /// Name of the image (repeatable).
    #[arg(short = 't', long = "tag")]
    pub tags: Vec<String>,
    /// The Containerfile (default: Containerfile, then Dockerfile, in the context).
    #[arg(short = 'f', long = "file")]
    pub file: Option<PathBuf>,
    /// A build argument K=V (repeatable).
    #[arg(long = "build-arg")]
    pub build_args: Vec<String>,
    /// Build up to this stage (`FROM ... AS STAGE`); later stages are not built.
    #[arg(long)]
    pub target: Option<String>,
    /// Run every step, using no cached result.
    #[arg(long)]
    pub no_cache: bool,
    /// A label K=V on the image (repeatable).
    #[arg(long = "label")]
    pub labels: Vec<String>,
    /// Print only the image ID (and RUN output).
    #[arg(short = 'q', long)]
    pub quiet: bool,
    /// A secret for `RUN --mount=type=secret`: id=ID,src=FILE (repeatable).
    #[arg(long = "secret")]
    pub secrets: Vec<String>,
    /// The network of RUN steps: none (default: an empty namespace of
    /// their own) or host.
    #[arg(long, default_value = "none")]
    pub network: String,
    /// The platform to build for: this machine's only (no emulation).
    #[arg(long)]
    pub platform: Option<String>,
    /// Write the image ID to this file.
    #[arg(long)]
    pub iidfile: Option<PathBuf>,
    /// When to pull the images FROM names: always (also bare `--pull`,
    /// true, newer), missing (default; also false) or never.
    #[arg(long, num_args = 0..=1, require_equals = true, default_missing_value = "always", default_value = "missing")]
    pub pull: String,
    /// Use and fill the instruction cache (default true); `--layers=false`
    /// runs every step and stores no intermediate result, as buildah.
    #[arg(long, num_args = 0..=1, require_equals = true, default_missing_value = "true", default_value = "true", action = clap::ArgAction::Set)]
    pub layers: bool,
    /// Squash the layers the build added into one, on top of the base
    /// image's layers (podman's --squash).
    #[arg(long)]
    pub squash: bool,
    /// Squash all layers, the base image's too, into one.
    #[arg(long, conflicts_with = "squash")]
    pub squash_all: bool,
    /// Manifest and config format of the image: oci (default) or docker.
    #[arg(long, default_value = "oci")]
    pub format: String,
    /// Reproducible output: write SECONDS (since the epoch) as the mtime
    /// of every file in the new layers and as the created time of the
    /// image and its new history entries (as buildah). Default: the
    /// SOURCE_DATE_EPOCH build arg, else the SOURCE_DATE_EPOCH
    /// environment variable, else now.
    #[arg(long)]
    pub timestamp: Option<i64>,
    /// Import a build cache from a registry before building:
    /// `type=registry,ref=REF` or `REF` (repeatable).
    #[arg(long = "cache-from")]
    pub cache_from: Vec<String>,
    /// Export this build's cache (every step's layers and config) to a
    /// registry: `type=registry,ref=REF[,mode=min|max]` or `REF`
    /// (repeatable); mode=min exports only the steps of the result's
    /// stages.
    #[arg(long = "cache-to")]
    pub cache_to: Vec<String>,
    #[command(flatten)]
    pub registry: super::registry::RegistryArgs,
    /// The build context: a directory, or `-` for a tar of it (or a
    /// Containerfile alone) on stdin.
    pub context: PathBuf,
}

fn kv(s: &str, flag: &str) -> Result<(String, String)> {
    match s.split_once('=') {
        Some((k, v)) if !k.is_empty() => Ok((k.to_string(), v.to_string())),
        // Docker: `--build-arg K` takes K from the environment.
        None if flag == "--build-arg" && !s.is_empty() => {
            Ok((s.to_string(), std::env::var(s).unwrap_or_default()))
        }
        _ => bail!("{flag} {s:?}: expected KEY=VALUE"),
    }
}

/// SIGINT, SIGTERM and SIGHUP, held back while building so that a
/// Ctrl-C ends the build between steps (or fails its RUN, whose runtime
/// forwards it to the container) and the build still removes its mounts
/// and temp dirs; read without blocking from this signalfd.
static SIGNALS: std::sync::OnceLock<Option<SignalFd>> = std::sync::OnceLock::new();

fn hold_signals() {
    SIGNALS.get_or_init(|| {
        let mut set = SigSet::empty();
        for s in [Signal::SIGINT, Signal::SIGTERM, Signal::SIGHUP] {
            set.add(s);
        }
        set.thread_block().ok()?;
        SignalFd::with_flags(&set, SfdFlags::SFD_NONBLOCK | SfdFlags::SFD_CLOEXEC).ok()
    });
}

fn interrupted() -> bool {
    matches!(SIGNALS.get(), Some(Some(fd)) if matches!(fd.read_signal(), Ok(Some(_))))
}

/// `build`.
pub fn build(root: &Path, e: &EngineArgs, a: &BuildArgs) -> Result<()> {
    let engine = e.engine(root)?;
    let tags = a
        .tags
        .iter()
        .map(|t| {
            let r = Reference::parse(t)
                .with_context(|| format!("build -t {t:?}: not an image name"))?;
            if r.digest.is_some() {
                bail!("build -t {t}: a name cannot contain a digest");
            }
            Ok(r)
        })
        .collect::<Result<Vec<_>>>()?;
    let mut build_args = BTreeMap::new();
    for b in &a.build_args {
        let (k, v) = kv(b, "--build-arg")?;
        build_args.insert(k, v);
    }
    let labels = a
        .labels
        .iter()
        .map(|l| kv(l, "--label"))
        .collect::<Result<Vec<_>>>()?;
    if let Some(p) = &a.platform {
        berth_build::stage::check_platform(p)
            .map_err(|e| anyhow::anyhow!("build --platform {e}"))?;
    }
    let mut secrets = BTreeMap::new();
    for v in &a.secrets {
        let (id, p) =
            berth_build::mounts::parse_secret(v).map_err(|e| anyhow::anyhow!("build: {e}"))?;
        secrets.insert(id, p);
    }
    // BuildKit's spelling: SOURCE_DATE_EPOCH as a build arg or in the
    // environment.
    let timestamp = match a.timestamp {
        Some(t) => Some(t),
        None => match build_args
            .get("SOURCE_DATE_EPOCH")
            .cloned()
            .or_else(|| std::env::var("SOURCE_DATE_EPOCH").ok())
            .filter(|v| !v.is_empty())
        {
            Some(v) => Some(v.parse::<i64>().map_err(|_| {
                anyhow::anyhow!("build: SOURCE_DATE_EPOCH={v:?} is not a number of seconds")
            })?),
            None => None,
        },
    };
    if timestamp.is_some_and(|t| t < 0) {
        bail!("build --timestamp: seconds since the epoch cannot be negative");
    }
    let cache_ref = |v: &String, flag| {
        berth_build::remote_cache::parse_ref(v, flag).map_err(|e| anyhow::anyhow!("build {e}"))
    };
    let cache_from = a
        .cache_from
        .iter()
        .map(|v| cache_ref(v, "--cache-from"))
        .collect::<Result<Vec<_>>>()?;
    let cache_to = a
        .cache_to
        .iter()
        .map(|v| {
            berth_build::remote_cache::parse_cache_to(v).map_err(|e| anyhow::anyhow!("build {e}"))
        })
        .collect::<Result<Vec<_>>>()?;
    let registry = Some(a.registry.options(root)?);
    let pull = berth_build::PullPolicy::parse(&a.pull).with_context(|| {
        format!(
            "build --pull={}: use always, missing or never (or true, false, newer)",
            a.pull
        )
    })?;
    let docker_format = match a.format.as_str() {
        "oci" => false,
        "docker" => true,
        f => bail!("build --format {f}: use oci or docker"),
    };
    if !a.layers && !cache_to.is_empty() {
        bail!("build --cache-to needs the steps' results: it cannot go with --layers=false");
    }
    let host_network = match a.network.as_str() {
        "none" => false,
        "host" => true,
        n => bail!("build --network {n}: expected none or host"),
    };
    let runtime = std::env::current_exe()
        .context("find the berth binary")?
        .with_file_name("berth-runtime");
    if !runtime.is_file() {
        bail!(
            "build: berth-runtime is not next to berth ({}); install both together",
            runtime.display()
        );
    }
    let store = super::images::open(root)?;
    // `-`: the context (a tar) or a Containerfile alone, on stdin.
    let stdin_ctx = if a.context.as_os_str() == "-" {
        let mut data = Vec::new();
        std::io::Read::read_to_end(&mut std::io::stdin(), &mut data)
            .context("build: read the context from stdin")?;
        let dir = store
            .temp_dir("build-context-")
            .context("build: a temp dir for the context")?;
        berth_build::stdin::context_from(&data, dir.path())
            .map_err(|e| anyhow::anyhow!("build: {e}"))?;
        Some(dir)
    } else {
        None
    };
    let context = stdin_ctx
        .as_ref()
        .map_or_else(|| a.context.clone(), |d| d.path().to_path_buf());
    hold_signals();
    let opts = berth_build::BuildOptions {
        context,
        file: a.file.clone(),
        tags,
        build_args,
        labels,
        target: a.target.clone(),
        no_cache: a.no_cache,
        quiet: a.quiet,
        runner: berth_build::Runner {
            runtime,
            runroot: engine.runroot.clone(),
            cgroup_parent: engine.cgroup_parent.clone(),
        },
        interrupted,
        secrets,
        host_network,
        cache_from,
        cache_to,
        registry,
        timestamp,
        pull,
        layers: a.layers,
        docker_format,
        squash: a.squash,
        squash_all: a.squash_all,
    };
    let img = berth_build::build(&store, &opts).map_err(|e| anyhow::anyhow!("build: {e}"))?;
    let id = img.record.id.hex().to_string();
    if let Some(f) = &a.iidfile {
        std::fs::write(f, img.record.id.to_string())
            .with_context(|| format!("build: write --iidfile {}", f.display()))?;
    }
    println!("{id}");
    Ok(())
}
