//! Registry commands: `pull`, `push`, `login`, `logout`.

use std::collections::HashMap;
use std::io::BufRead;
use std::path::{Path, PathBuf};
use std::sync::Mutex;

use anyhow::{bail, Context};
use berth_image::manifest::Platform;
use berth_image::registry::{self, Progress, PushOptions, RegistryOptions};
use berth_image::{Digest, Reference};
use clap::Args;
use indicatif::{MultiProgress, ProgressBar, ProgressStyle};

use super::images::open;

/// Options shared by the registry commands.
#[derive(Debug, Clone, Args)]
pub struct RegistryArgs {
    /// Require HTTPS with verified certificates (`--tls-verify=false` allows
    /// HTTP and unverified TLS; default: verify, except for localhost).
    #[arg(long, num_args = 0..=1, require_equals = true, default_missing_value = "true")]
    pub tls_verify: Option<bool>,
    /// Directory of per-registry certificates (`<dir>/<host>/*.crt`).
    #[arg(long, default_value = registry::tls::DEFAULT_CERTS_DIR)]
    pub cert_dir: PathBuf,
    /// Credentials file (default: <root>/auth.json).
    #[arg(long, env = "REGISTRY_AUTH_FILE")]
    pub authfile: Option<PathBuf>,
    /// Credentials as user:password, instead of the credentials file.
    #[arg(long)]
    pub creds: Option<String>,
}

impl RegistryArgs {
    pub fn options(&self, root: &Path) -> anyhow::Result<RegistryOptions> {
        let mut o = RegistryOptions::new(root);
        o.tls_verify = self.tls_verify;
        o.certs_dir = self.cert_dir.clone();
        if let Some(a) = &self.authfile {
            o.auth_file = a.clone();
        }
        if let Some(c) = &self.creds {
            let (u, p) = c.split_once(':').context("--creds must be user:password")?;
            o.creds = Some((u.to_string(), p.to_string()));
        }
        Ok(o)
    }
}

#[derive(Debug, Args)]
pub struct PullArgs {
    /// Image to pull (example: `localhost:5000/busybox:latest`).
    pub image: String,
    /// Platform to pick from multi-platform images (os/arch[/variant]).
    #[arg(long)]
    pub platform: Option<String>,
    /// Parallel layer downloads.
    #[arg(long, default_value_t = 3)]
    pub jobs: usize,
    /// No progress output.
    #[arg(short, long)]
    pub quiet: bool,
    #[command(flatten)]
    pub registry: RegistryArgs,
}

#[derive(Debug, Args)]
pub struct PushArgs {
    /// Stored image to push.
    pub image: String,
    /// Destination (default: the image name).
    pub destination: Option<String>,
    /// Upload blobs in chunks of this many bytes (default: one request).
    #[arg(long)]
    pub chunk_size: Option<u64>,
    /// No progress output.
    #[arg(short, long)]
    pub quiet: bool,
    #[command(flatten)]
    pub registry: RegistryArgs,
}

#[derive(Debug, Args)]
pub struct LoginArgs {
    /// Registry host (example: `localhost:5000`).
    pub host: String,
    #[arg(short, long)]
    pub username: String,
    /// Password (prefer --password-stdin).
    #[arg(short, long)]
    pub password: Option<String>,
    /// Read the password from standard input.
    #[arg(long)]
    pub password_stdin: bool,
    #[command(flatten)]
    pub registry: RegistryArgs,
}

#[derive(Debug, Args)]
pub struct LogoutArgs {
    /// Registry host.
    pub host: String,
    /// Credentials file (default: <root>/auth.json).
    #[arg(long, env = "REGISTRY_AUTH_FILE")]
    pub authfile: Option<PathBuf>,
}

/// One indicatif bar per blob.
struct Bars {
    multi: MultiProgress,
    bars: Mutex<HashMap<Digest, ProgressBar>>,
    quiet: bool,
}

impl Bars {
    fn new(quiet: bool) -> Self {
        Self {
            multi: MultiProgress::new(),
            bars: Mutex::new(HashMap::new()),
            quiet,
        }
    }
}

impl Progress for Bars {
    fn start(&self, digest: &Digest, total: u64) {
        if self.quiet {
            return;
        }
        let pb = self.multi.add(ProgressBar::new(total));
        pb.set_style(
            ProgressStyle::with_template(
                "{prefix} [{bar:30}] {bytes}/{total_bytes} {bytes_per_sec}",
            )
            .expect("valid template")
            .progress_chars("=> "),
        );
        pb.set_prefix(digest.short().to_string());
        self.bars
            .lock()
            .expect("bars lock")
            .insert(digest.clone(), pb);
    }
    fn update(&self, digest: &Digest, done: u64) {
        if let Some(pb) = self.bars.lock().expect("bars lock").get(digest) {
            pb.set_position(done);
        }
    }
    fn finish(&self, digest: &Digest, ok: bool) {
        if let Some(pb) = self.bars.lock().expect("bars lock").remove(digest) {
            if ok {
                pb.finish();
            } else {
                pb.abandon();
            }
        }
    }
}

pub fn pull(root: &Path, a: &PullArgs) -> anyhow::Result<()> {
    println!("{}", pull_image(root, a)?);
    Ok(())
}

/// Pull `a.image` into the store; returns the image ID.
fn pull_image(root: &Path, a: &PullArgs) -> anyhow::Result<Digest> {
    let store = open(root)?;
    let platform = match &a.platform {
        Some(p) => Platform::parse(p)?,
        None => Platform::host(),
    };
    let mut opts = a.registry.options(root)?;
    opts.jobs = a.jobs.max(1);
    let bars = Bars::new(a.quiet);
    // A short name tries registries.conf's unqualified-search-registries
    // in order (without short-name aliases or prompts).
    let mut candidates = opts.registries.candidates(&a.image)?.into_iter();
    let (reference, img) = loop {
        let reference = candidates.next().expect("at least one candidate name");
        match registry::pull(&store, &reference, &platform, &opts, &bars) {
            Ok(img) => break (reference, img),
            Err(e) if candidates.len() > 0 && !matches!(e, registry::PullError::Conf(_)) => {
                tracing::info!("pull {reference}: {e}; trying the next search registry");
            }
            Err(e) => return Err(e.into()),
        }
    };
    let name = reference.to_string();
    berth_engine::events::record(
        root,
        &berth_engine::events::Event::new(
            "image",
            "pull",
            &img.record.id.to_string(),
            &[("name", &name)],
        ),
    );
    Ok(img.record.id)
}

/// `run`/`create --pull`: make sure `image` is in the store, pulling it
/// by `policy` (always, missing, never; podman's default is missing).
pub fn ensure_image(
    root: &Path,
    image: &str,
    policy: &str,
    platform: Option<&str>,
    registry: &RegistryArgs,
) -> anyhow::Result<()> {
    let present = open(root)?.lookup(image).is_ok();
    match policy {
        "never" if present => return Ok(()),
        "never" => anyhow::bail!(
            "image {image} is not in the store and --pull=never: load or pull it first"
        ),
        "missing" if present => return Ok(()),
        "missing" | "always" => {}
        other => anyhow::bail!("--pull={other}: use always, missing or never"),
    }
    pull_image(
        root,
        &PullArgs {
            image: image.to_string(),
            platform: platform.map(str::to_string),
            jobs: 3,
            quiet: false,
            registry: registry.clone(),
        },
    )
    .map(|_| ())
}

pub fn push(root: &Path, a: &PushArgs) -> anyhow::Result<()> {
    let store = open(root)?;
    let dest = Reference::parse(a.destination.as_deref().unwrap_or(&a.image))?;
    let opts = a.registry.options(root)?;
    let bars = Bars::new(a.quiet);
    let digest = registry::push(
        &store,
        &a.image,
        &dest,
        &opts,
        PushOptions {
            chunk_size: a.chunk_size,
        },
        &bars,
    )?;
    if !a.quiet {
        eprintln!("pushed {dest}@{digest}");
    }
    println!("{digest}");
    Ok(())
}

pub fn login(root: &Path, a: &LoginArgs) -> anyhow::Result<()> {
    let password = match (&a.password, a.password_stdin) {
        (Some(p), false) => p.clone(),
        (None, true) => {
            let mut line = String::new();
            std::io::stdin()
                .lock()
                .read_line(&mut line)
                .context("read password from standard input")?;
            line.trim_end_matches(['\n', '\r']).to_string()
        }
        _ => bail!(
            "log in to {}: give exactly one of --password or --password-stdin",
            a.host
        ),
    };
    let opts = a.registry.options(root)?;
    registry::login(&a.host, &a.username, &password, &opts)?;
    println!("Login Succeeded!");
    Ok(())
}

pub fn logout(root: &Path, a: &LogoutArgs) -> anyhow::Result<()> {
    let mut opts = RegistryOptions::new(root);
    if let Some(f) = &a.authfile {
        opts.auth_file = f.clone();
    }
    if registry::logout(&a.host, &opts)? {
        println!("Removed login credentials for {}", a.host);
    } else {
        bail!("log out of {}: not logged in", a.host);
    }
    Ok(())
}

/// [`ensure_image`], then `--platform`: an image present for another
/// platform is pulled again for the one asked (as Docker and podman do;
/// refused with `--pull never`), rather than running, say, amd64 content
/// for an arm64 request; a platform the host cannot run (no binfmt_misc
/// handler for its architecture) is refused.
pub fn ensure_platform_image(
    root: &Path,
    image: &str,
    policy: &str,
    platform: Option<&str>,
    registry: &RegistryArgs,
) -> anyhow::Result<()> {
    ensure_image(root, image, policy, platform, registry)?;
    let Some(p) = platform else {
        return Ok(());
    };
    let want = Platform::parse(p)?;
    if let Some(got) = platform_mismatch(root, image, &want)? {
        if policy == "never" {
            bail!(
                "image {image} is for {got}, not the requested --platform {}, and --pull=never: \
                 pull that platform with `berth pull --platform {p} {image}`",
                show_platform(&want)
            );
        }
        pull_image(
            root,
            &PullArgs {
                image: image.to_string(),
                platform: Some(p.to_string()),
                jobs: 3,
                quiet: false,
                registry: registry.clone(),
            },
        )?;
        if let Some(got) = platform_mismatch(root, image, &want)? {
            bail!(
                "image {image} is for {got}, not the requested --platform {}",
                show_platform(&want)
            );
        }
    }
    let host = Platform::host();
    if !host.matches(&want) && !emulated(&want.architecture) {
        bail!(
            "--platform {}: this {} host cannot run it (no binfmt_misc emulator for {} is registered)",
            show_platform(&want),
            show_platform(&host),
            want.architecture
        );
    }
    Ok(())
}

fn show_platform(p: &Platform) -> String {
    match &p.variant {
        Some(v) => format!("{}/{}/{v}", p.os, p.architecture),
        None => format!("{}/{}", p.os, p.architecture),
    }
}

/// The platform of the stored `image` when it is not `want`'s.
fn platform_mismatch(root: &Path, image: &str, want: &Platform) -> anyhow::Result<Option<String>> {
    let img = berth_image::image::resolve_name(&open(root)?, image)?;
    let got = Platform {
        os: img.config.os.clone(),
        architecture: img.config.architecture.clone(),
        variant: img.config.variant.clone(),
    };
    Ok((!got.architecture.is_empty() && !want.matches(&got)).then(|| show_platform(&got)))
}

/// Whether binfmt_misc has an enabled handler for a foreign architecture
/// (e.g. qemu-aarch64 for arm64).
fn emulated(arch: &str) -> bool {
    let names: &[&str] = match arch {
        "arm64" => &["qemu-aarch64"],
        "amd64" => &["qemu-x86_64"],
        "arm" => &["qemu-arm"],
        "386" => &["qemu-i386"],
        "ppc64le" => &["qemu-ppc64le"],
        "s390x" => &["qemu-s390x"],
        "riscv64" => &["qemu-riscv64"],
        _ => &[],
    };
    names.iter().any(|n| {
        std::fs::read_to_string(format!("/proc/sys/fs/binfmt_misc/{n}"))
            .is_ok_and(|t| t.starts_with("enabled"))
    })
}
