//! The container commands of `berth`, flattened into the top-level
//! command list (`berth run`, `berth ps`, ...), and their dispatch.

use std::path::Path;

use clap::Subcommand;

use super::containers::{self as c, ContainerCommand};
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
    /// Show containers as JSON (example: `berth inspect web`).
    Inspect(c::ContainersArgs),
    /// List the processes of a container (example: `berth top web`).
    Top(c::ContainersArgs),
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
    /// Print berth's version.
    Version,
    /// Show what the host offers: cgroups, overlay, user namespaces, seccomp.
    Info,
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
        ContainerCmd::Inspect(a) => c::inspect_cmd(root, e, a),
        ContainerCmd::Top(a) => c::top(root, e, a),
        ContainerCmd::Stats(a) => c::stats(root, e, a),
        ContainerCmd::Cp(a) => c::cp(root, e, a),
        ContainerCmd::Rename(a) => c::rename(root, e, a),
        ContainerCmd::Container(sub) => c::container_command(root, e, sub),
        ContainerCmd::Port(a) => c::port(root, e, a),
        ContainerCmd::Version => c::version(),
        ContainerCmd::Info => c::info(root, e),
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
