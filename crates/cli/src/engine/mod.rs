//! The `berth` engine command line (podman-style). One file per command
//! group: `images` (list, inspect, tag, rmi, prune, mount), `archive` (load,
//! save, import), `registry` (pull, push, login, logout), `system` (df). Later groups (run, ps, ...) add a variant
//! to [`Command`] and a file here.

mod archive;
mod attach;
mod build;
mod commit;
mod compose;
mod container_cmds;
mod containers;
pub mod exit;
mod format;
mod health;
mod history;
mod images;
mod inspect_cmd;
mod kube;
mod logs_prefix;
mod manage_cmds;
mod networks;
mod pods;
mod ps_filter;
mod registry;
mod run;
mod run_flags;
mod stats;
mod system;
mod system_migrate;
mod system_prune;
pub mod template;
mod views;
mod volumes;

use std::path::PathBuf;

use clap::{Parser, Subcommand};

/// berth: a daemonless container engine.
#[derive(Debug, Parser)]
#[command(name = "berth", version, about, long_about = None)]
pub struct Cli {
    /// Storage root (images under <root>/images); default /var/lib/berth
    /// as root, $XDG_DATA_HOME/berth (~/.local/share/berth) rootless.
    #[arg(long, global = true, env = "BERTH_ROOT", default_value_os_t = berth_engine::rootless::default_root())]
    pub root: PathBuf,
    /// Engine flags: --runroot, --cgroup-parent.
    #[command(flatten)]
    pub engine: run::EngineArgs,
    /// containers-registries.conf(5) file for every pull (default:
    /// /etc/containers/registries.conf).
    #[arg(long, global = true, env = "CONTAINERS_REGISTRIES_CONF")]
    pub registries_conf: Option<PathBuf>,
    /// Storage driver of container filesystems: overlay, fuse-overlayfs or
    /// vfs (copies; podman's --storage-driver). Default: overlay as root;
    /// rootless the first that works of overlay, fuse-overlayfs, vfs.
    #[arg(long, global = true, env = berth_image::mount::DRIVER_ENV,
          value_parser = clap::builder::PossibleValuesParser::new(berth_image::mount::DRIVERS))]
    pub storage_driver: Option<String>,
    #[command(subcommand)]
    pub command: Command,
}

/// Top-level commands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// List images (example: `berth images --format json`).
    Images(images::ListArgs),
    /// Manage images.
    #[command(subcommand)]
    Image(images::ImageCommand),
    /// Build an image from a Containerfile (example: `berth build -t localhost/app .`).
    Build(build::BuildArgs),
    /// Show an image's layers (example: `berth history busybox`).
    History(history::HistoryArgs),
    /// Add names to an image (example: `berth tag busybox localhost/bb:1`).
    Tag(images::TagArgs),
    /// Remove images (example: `berth rmi busybox`).
    Rmi(images::RmiArgs),
    /// Load images from a docker-archive, oci-archive or OCI layout dir
    /// (example: `berth load -i busybox.tar`).
    Load(archive::LoadArgs),
    /// Save images to an archive (example: `berth save -o bb.tar busybox`).
    Save(archive::SaveArgs),
    /// Create a one-layer image from a rootfs tarball
    /// (example: `berth import rootfs.tar localhost/mine:1`).
    Import(archive::ImportArgs),
    /// Pull an image from a registry
    /// (example: `berth pull localhost:5000/busybox:latest`).
    Pull(registry::PullArgs),
    /// Push an image to a registry
    /// (example: `berth push busybox localhost:5000/busybox:1`).
    Push(registry::PushArgs),
    /// Store registry credentials (example: `berth login -u me --password-stdin reg:5000`).
    Login(registry::LoginArgs),
    /// Remove stored registry credentials.
    Logout(registry::LogoutArgs),
    /// System information.
    #[command(subcommand)]
    System(system::SystemCommand),
    /// Manage volumes (example: `berth volume create data`).
    #[command(subcommand)]
    Volume(volumes::VolumeCommand),
    /// Manage bridge networks (example: `berth network create --subnet 10.90.0.0/24 front`).
    #[command(subcommand)]
    Network(networks::NetworkCommand),
    /// Manage pods: containers sharing network, IPC and UTS namespaces
    /// (example: `berth pod create --name web -p 8080:80`).
    #[command(subcommand)]
    Pod(pods::PodCommand),
    /// Kubernetes YAML: run it (`kube play FILE`), remove what it made
    /// (`kube down FILE`).
    #[command(subcommand)]
    Kube(kube::KubeCommand),
    /// Generate files from containers and pods (`generate kube POD`).
    #[command(subcommand)]
    Generate(kube::GenerateCommand),
    /// Run Docker Compose against berth's Docker API, starting the API
    /// service for the duration when none runs (example: `berth compose up -d`).
    Compose(compose::ComposeArgs),
    /// Serve the Kubernetes Container Runtime Interface (CRI v1) on a unix
    /// socket (example: `berth cri --listen unix:///run/berth/cri.sock`).
    Cri(system::CriArgs),
    /// The DNS resolver of a network (started by berth itself).
    #[command(name = "network-dns", hide = true)]
    NetworkDns(networks::DnsArgs),
    /// The published-port proxy of a container (started by berth itself).
    #[command(name = "port-proxy", hide = true)]
    PortProxy(networks::PortProxyArgs),
    /// Container commands (run, ps, logs, stop, rm, exec, ...).
    #[command(flatten)]
    Containers(container_cmds::ContainerCmd),
}

/// Entry point of the `berth` binary; returns the process exit code.
pub fn main() -> i32 {
    if let Some(code) = rootless_start() {
        return code;
    }
    let cli = match Cli::try_parse() {
        Ok(c) => c,
        Err(e) => {
            // Docker and podman: a bad flag is berth's failure (125).
            let code = if e.use_stderr() {
                exit::ENGINE_FAILED
            } else {
                0
            };
            let _ = e.print();
            return code;
        }
    };
    if let Some(p) = &cli.registries_conf {
        // Every pull reads it from there, also in the berth processes this
        // one starts (build, the API and CRI services).
        std::env::set_var(berth_image::registry::conf::ENV, p);
    }
    if let Some(d) = &cli.storage_driver {
        // Read by every mount, also in the processes this one starts.
        std::env::set_var(berth_image::mount::DRIVER_ENV, d);
    }
    // Container commands exit as Docker's do (125/126/127, see `exit`),
    // pod commands as podman's (125); image commands keep 1 for their
    // errors, as `docker image` does.
    let container_cmd = matches!(cli.command, Command::Containers(_) | Command::Pod(_));
    match run(cli) {
        Ok(()) => 0,
        Err(e) => {
            eprintln!("berth: {e:#}");
            if container_cmd {
                exit::code_for(&e)
            } else {
                1
            }
        }
    }
}

/// `berth create ARGS` in this process, for the Docker API service
/// (`berth-service` links this crate): parsed as `berth create` parses
/// them and made as it makes them; the new container's ID, or the error as
/// `berth create` prints it (without the `berth: ` prefix). The caller may
/// be multi-threaded: create runs no container.
pub fn create_in_process(engine: &berth_engine::Engine, args: &[String]) -> Result<String, String> {
    let line = ["berth", "create"]
        .into_iter()
        .map(String::from)
        .chain(args.iter().cloned());
    let cli = Cli::try_parse_from(line).map_err(|e| {
        // clap's first line says what is wrong; the rest is usage.
        let text = e.to_string();
        let first = text.lines().next().unwrap_or("invalid create arguments");
        first.trim_start_matches("error: ").to_string()
    })?;
    let Command::Containers(container_cmds::ContainerCmd::Create(a)) = cli.command else {
        return Err("create: the arguments do not make a create command".into());
    };
    run::create_row(engine, &a)
        .map(|row| row.id)
        .map_err(|e| format!("{e:#}"))
}

/// Rootless: the pause process (`berth PAUSE_ARG RUNDIR`) runs here and
/// ends with its code; any other command of an unprivileged user joins
/// the user's rootless namespace first (while still single-threaded).
fn rootless_start() -> Option<i32> {
    use berth_engine::rootless::pause;
    let args: Vec<std::ffi::OsString> = std::env::args_os().skip(1).collect();
    if args.first().is_some_and(|a| a == pause::PAUSE_ARG) {
        let base = args.get(1).map(PathBuf::from).unwrap_or_default();
        return Some(pause::pause_main(&base));
    }
    if nix::unistd::geteuid().is_root() {
        // Re-executed inside the rootless namespace (every id reads as 0
        // there): the same kept storage driver verdict.
        if let Some(uid) = berth_engine::rootless::host_uid() {
            berth_image::mount::set_driver_cache(
                berth_engine::rootless::run_base(uid).join("storage-driver"),
            );
        }
        return None;
    }
    // Help and version need no namespace (nor a subordinate range).
    let informational = args.is_empty()
        || args
            .iter()
            .any(|a| ["-h", "--help", "-V", "--version"].iter().any(|f| a == f))
        || args.first().is_some_and(|a| a == "help");
    if informational {
        return None;
    }
    // The user's host uid (inside the namespace every id reads as 0).
    let uid = nix::unistd::geteuid().as_raw();
    // `system migrate` joins the namespace only to end it: without a pause
    // process no container of the user runs, and none is made.
    let joined = if is_plain_migrate(&args) {
        pause::enter_existing()
    } else {
        pause::enter().map(|()| true)
    };
    match joined {
        Ok(true) => {}
        Ok(false) => return Some(0),
        Err(e) => {
            eprintln!("berth: rootless: {e}");
            return Some(exit::ENGINE_FAILED);
        }
    }
    // The storage driver probe's verdict, kept for the user's next commands.
    berth_image::mount::set_driver_cache(
        berth_engine::rootless::run_base(uid).join("storage-driver"),
    );
    None
}

/// Whether the command line is `system migrate` (without
/// `--new-runtime`, which is refused in the namespace as everywhere).
fn is_plain_migrate(args: &[std::ffi::OsString]) -> bool {
    if !args.iter().any(|a| a == "migrate") {
        return false;
    }
    let line = std::iter::once(std::ffi::OsString::from("berth")).chain(args.iter().cloned());
    Cli::try_parse_from(line).is_ok_and(|c| {
        matches!(
            c.command,
            Command::System(system::SystemCommand::Migrate(
                system_migrate::MigrateArgs { new_runtime: None }
            ))
        )
    })
}

/// Commands that only print (to a terminal or a pipe): as other Unix
/// tools, they end quietly by SIGPIPE when the reader goes away
/// (`berth ps | head`) instead of failing on EPIPE. Everything else keeps
/// Rust's default (SIGPIPE ignored): monitors, `run`, `exec`, `attach` and
/// the resolver write to sockets and pipes whose peers may go first.
fn only_prints(c: &Command) -> bool {
    use container_cmds::ContainerCmd as C;
    match c {
        Command::Images(_) | Command::History(_) => true,
        Command::Image(i) => matches!(
            i,
            images::ImageCommand::Ls(_)
                | images::ImageCommand::Inspect(_)
                | images::ImageCommand::History(_)
        ),
        Command::Containers(c) => matches!(
            c,
            C::Ps(_)
                | C::Logs(_)
                | C::Inspect(_)
                | C::Top(_)
                | C::Stats(_)
                | C::Port(_)
                | C::Diff(_)
                | C::Export(_)
                | C::Events(_)
        ),
        _ => false,
    }
}

fn run(cli: Cli) -> anyhow::Result<()> {
    if only_prints(&cli.command) {
        berth_sys::process::reset_signal_to_default(nix::sys::signal::Signal::SIGPIPE);
    }
    match cli.command {
        Command::Images(a) => images::list(&cli.root, &a),
        Command::Cri(a) => system::cri(&cli.root, &cli.engine, &a),
        Command::Image(c) => images::image_command(&cli.root, c),
        Command::Build(a) => build::build(&cli.root, &cli.engine, &a),
        Command::History(a) => history::history(&cli.root, &a),
        Command::Tag(a) => images::tag(&cli.root, &a),
        Command::Rmi(a) => images::rmi(&cli.root, &a),
        Command::Load(a) => archive::load(&cli.root, &a),
        Command::Save(a) => archive::save(&cli.root, &a),
        Command::Import(a) => archive::import(&cli.root, &a),
        Command::Pull(a) => registry::pull(&cli.root, &a),
        Command::Push(a) => registry::push(&cli.root, &a),
        Command::Login(a) => registry::login(&cli.root, &a),
        Command::Logout(a) => registry::logout(&cli.root, &a),
        Command::System(c) => system::system_command(&cli.root, &cli.engine, c),
        Command::Volume(c) => {
            let code = volumes::volume_command(&cli.root, &cli.engine, &c)?;
            if code != 0 {
                std::process::exit(code);
            }
            Ok(())
        }
        Command::Network(c) => networks::network_command(&cli.root, &cli.engine, c),
        Command::Compose(a) => {
            let code = compose::compose(&cli.root, &cli.engine, &a)?;
            if code != 0 {
                std::process::exit(code);
            }
            Ok(())
        }
        Command::Pod(c) => {
            let code = pods::pod_command(&cli.root, &cli.engine, c)?;
            if code != 0 {
                std::process::exit(code);
            }
            Ok(())
        }
        Command::Kube(c) => kube::kube_command(&cli.root, &cli.engine, c),
        Command::Generate(c) => kube::generate_command(&cli.root, &cli.engine, c),
        Command::NetworkDns(a) => networks::dns(&cli.root, &cli.engine, &a),
        Command::PortProxy(a) => networks::port_proxy(&a),
        Command::Containers(c) => container_cmds::dispatch(&cli.root, &cli.engine, c),
    }
}
