//! The container commands of `berth`, flattened into the top-level
//! command list (`berth run`, `berth ps`, ...), and their dispatch.

use std::path::Path;

use clap::Subcommand;

use super::containers::{self as c, ContainerCommand};
use super::manage_cmds as m;
use super::run::{self as r, EngineArgs};

/// Container lifecycle commands.
#[derive(Debug, Subcommand)]
pub enum ContainerCmd {
    /// Create and run a container (example: `berth run --rm busybox echo hi`).
    Run(Box<r::RunArgs>),
    /// Create a container without starting it (example: `berth create --name web busybox httpd -f`).
    Create(Box<r::RunArgs>),
    /// Start containers (example: `berth start -a web`).
    Start(r::StartArgs),
    /// Stop then start containers (example: `berth restart web`).
    Restart(r::RestartArgs),
    /// List containers (example: `berth ps -a --format json`).
    Ps(c::PsArgs),
    /// Print a container's output (example: `berth logs -f --tail 10 web`).
    Logs(c::LogsArgs),
    /// Stop containers: stop signal, SIGKILL after -t seconds (example: `berth stop -t 2 web`).
    Stop(c::StopArgs),
    /// Send a signal to containers (example: `berth kill -s HUP web`).
    Kill(c::KillArgs),
    /// Remove containers (example: `berth rm -f web`).
    Rm(c::RmArgs),
    /// Wait for containers to exit and print their exit codes (example: `berth wait web`).
    Wait(c::ContainersArgs),
    /// Run a command in a running container (example: `berth exec -it web sh`).
    Exec(c::ExecArgs),
    /// Attach to a detached container's output (and stdin with -i)
    /// (example: `berth attach web`).
    Attach(super::attach::AttachArgs),
    /// Show containers (or images, volumes, networks) as JSON or through a
    /// template (example: `berth inspect -f '{{.State.Pid}}' web`).
    Inspect(super::inspect_cmd::InspectArgs),
    /// List the processes of a container, optionally through ps options
    /// (example: `berth top web -eo pid,comm`).
    Top(m::TopArgs),
    /// Resource usage of containers (example: `berth stats --no-stream web`).
    Stats(c::StatsArgs),
    /// Copy files between the host and a container (example: `berth cp ./conf web:/etc/app`).
    Cp(c::CpArgs),
    /// Rename a container (example: `berth rename web web2`).
    Rename(c::RenameArgs),
    /// Manage containers (example: `berth container prune`).
    #[command(subcommand)]
    Container(ContainerCommand),
    /// List a container's published ports (example: `berth port web 80/tcp`).
    Port(c::ContainersArgs),
    /// Freeze every process of containers (example: `berth pause web`).
    Pause(m::PauseArgs),
    /// Thaw paused containers (example: `berth unpause web`).
    Unpause(m::PauseArgs),
    /// Change the resources of containers (example: `berth update --memory 64m web`).
    Update(m::UpdateArgs),
    /// The changes of a container's filesystem (example: `berth diff web`).
    Diff(m::DiffArgs),
    /// A container's filesystem as a tar archive (example: `berth export -o web.tar web`).
    Export(m::ExportArgs),
    /// Make an image from a container's changes (example: `berth commit -c 'CMD ["sh"]' web localhost/web:1`).
    Commit(m::CommitArgs),
    /// Show what berth did: container, image, network and volume events
    /// (example: `berth events --since 10m --until 0s`).
    Events(m::EventsArgs),
    /// Search a registry for images (example: `berth search quay.io/busybox`).
    Search(m::SearchArgs),
    /// Print berth's version (example: `berth version --format '{{.Client.Version}}'`).
    Version(c::FormatArgs),
    /// Show what the host offers: cgroups, overlay, user namespaces, seccomp
    /// (example: `berth info --format '{{.Host.Kernel}}'`).
    Info(c::FormatArgs),
    /// Run a container's healthcheck now (example: `berth healthcheck run web`;
    /// exit 0 healthy, 1 unhealthy).
    #[command(subcommand)]
    Healthcheck(super::health::HealthcheckCommand),
    /// Internal: the per-container monitor.
    #[command(hide = true)]
    ContainerMonitor(r::MonitorArgs),
}

/// Runs a container command; a non-zero status (e.g. the container's
/// exit code) ends the process with that status.
pub fn dispatch(root: &Path, e: &EngineArgs, cmd: ContainerCmd) -> anyhow::Result<()> {
    let code = match &cmd {
        ContainerCmd::Run(a) => r::run(root, e, a),
        ContainerCmd::Create(a) => r::create(root, e, a),
        ContainerCmd::Start(a) => r::start(root, e, a),
        ContainerCmd::Restart(a) => r::restart(root, e, a),
        ContainerCmd::Ps(a) => c::ps(root, e, a),
        ContainerCmd::Logs(a) => c::logs(root, e, a),
        ContainerCmd::Stop(a) => c::stop(root, e, a),
        ContainerCmd::Kill(a) => c::kill(root, e, a),
        ContainerCmd::Rm(a) => c::rm(root, e, a),
        ContainerCmd::Wait(a) => c::wait(root, e, a),
        ContainerCmd::Exec(a) => c::exec(root, e, a),
        ContainerCmd::Attach(a) => super::attach::attach(root, e, a),
        ContainerCmd::Inspect(a) => super::inspect_cmd::inspect_cmd(root, e, a),
        ContainerCmd::Top(a) => m::top(root, e, a),
        ContainerCmd::Pause(a) => m::pause(root, e, a),
        ContainerCmd::Unpause(a) => m::unpause(root, e, a),
        ContainerCmd::Update(a) => m::update(root, e, a),
        ContainerCmd::Diff(a) => m::diff(root, e, a),
        ContainerCmd::Export(a) => m::export(root, e, a),
        ContainerCmd::Commit(a) => super::commit::commit(root, e, a),
        ContainerCmd::Events(a) => m::events(root, a),
        ContainerCmd::Search(a) => m::search(root, a),
        ContainerCmd::Stats(a) => c::stats(root, e, a),
        ContainerCmd::Cp(a) => c::cp(root, e, a),
        ContainerCmd::Rename(a) => c::rename(root, e, a),
        ContainerCmd::Container(sub) => c::container_command(root, e, sub),
        ContainerCmd::Port(a) => c::port(root, e, a),
        ContainerCmd::Version(a) => c::version(a),
        ContainerCmd::Info(a) => c::info(root, e, a),
        ContainerCmd::Healthcheck(sub) => super::health::healthcheck(root, e, sub),
        ContainerCmd::ContainerMonitor(a) => r::monitor(root, e, a),
    }?;
    if code != 0 {
        use std::io::Write;
        let _ = std::io::stdout().flush();
        std::process::exit(code);
    }
    Ok(())
}
