//! `berth system df` (and `system prune`, in `system_prune`; `system
//! migrate`, in `system_migrate`).

use std::path::Path;

use anyhow::Context;
use berth_image::gc::disk_usage;
use berth_image::Store;
use clap::{Args, Subcommand};

use super::format::{human_size, print_table};
use super::template::Format;

/// `berth system ...`
#[derive(Debug, Subcommand)]
pub enum SystemCommand {
    /// Show disk usage of the image store (example: `berth system df`).
    Df(DfArgs),
    /// Remove stopped containers and unused images
    /// (example: `berth system prune -a -f`).
    Prune(super::system_prune::PruneArgs),
    /// Serve the Docker Engine API on a unix socket
    /// (example: `berth system service --time 0 unix:///run/berth/berth.sock`).
    Service(ServiceArgs),
    /// Stop every running container and, rootless, end the process holding
    /// the user's namespace, so the next command makes a new one (after
    /// changing /etc/subuid or /etc/subgid) (example: `berth system migrate`).
    Migrate(super::system_migrate::MigrateArgs),
}

/// `system service`.
#[derive(Debug, Args)]
pub struct ServiceArgs {
    /// Exit after this many idle seconds (0: never).
    #[arg(short = 't', long, default_value_t = 5)]
    pub time: u64,
    /// `unix:///path` (default: <runroot>/berth.sock) or, explicitly, `tcp://host:port`.
    pub uri: Option<String>,
}

/// Execs `berth-service` (next to this `berth`), which serves the API and
/// runs this `berth` for every change; containers never depend on it.
fn service(root: &Path, e: &super::run::EngineArgs, a: &ServiceArgs) -> anyhow::Result<()> {
    use std::os::unix::process::CommandExt;
    let mut c = service_command(root, e, a.time, a.uri.clone())?;
    let err = c.exec();
    Err(anyhow::anyhow!("run berth-service: {err}"))
}

/// The `berth-service` command line for this engine (also `berth compose`'s).
pub fn service_command(
    root: &Path,
    e: &super::run::EngineArgs,
    time: u64,
    uri: Option<String>,
) -> anyhow::Result<std::process::Command> {
    e.engine(root)?;
    let me = std::env::current_exe().context("find the berth binary")?;
    let exe = me
        .parent()
        .map(|d| d.join("berth-service"))
        .filter(|p| p.is_file())
        .with_context(|| {
            format!(
                "berth-service is not installed next to {} (install it with berth)",
                me.display()
            )
        })?;
    let mut c = std::process::Command::new(&exe);
    c.arg("--root")
        .arg(root)
        .arg("--runroot")
        .arg(&e.runroot)
        .arg("--cgroup-parent")
        .arg(&e.cgroup_parent)
        .arg("--berth")
        .arg(&me)
        .arg("--time")
        .arg(time.to_string());
    if let Some(u) = uri {
        c.arg(u);
    }
    Ok(c)
}

/// `berth cri`.
#[derive(Debug, Args)]
pub struct CriArgs {
    /// Where to serve CRI v1 (`unix:///PATH`).
    #[arg(long, default_value = "unix:///run/berth/cri.sock")]
    pub listen: String,
    /// The streaming server (Exec, Attach, PortForward URLs): HOST:PORT,
    /// port 0 for any free one.
    #[arg(long, default_value = "127.0.0.1:0")]
    pub streaming_listen: String,
    /// Where CNI network configurations are: with one there (the first
    /// `*.conflist`/`*.conf` by name), pods get their network from CNI
    /// plugins; without, from berth's bridge driver.
    #[arg(long, default_value = "/etc/cni/net.d")]
    pub cni_conf_dir: String,
    /// Where CNI plugins are (colon-separated dirs).
    #[arg(long, default_value = "/usr/lib/cni:/opt/cni/bin")]
    pub cni_bin_dir: String,
}

/// Execs `berth-cri` (next to this `berth`), which serves the Container
/// Runtime Interface and runs this `berth` for every change; containers
/// never depend on it.
pub fn cri(root: &Path, e: &super::run::EngineArgs, a: &CriArgs) -> anyhow::Result<()> {
    use std::os::unix::process::CommandExt;
    e.engine(root)?;
    let me = std::env::current_exe().context("find the berth binary")?;
    let exe = me
        .parent()
        .map(|d| d.join("berth-cri"))
        .filter(|p| p.is_file())
        .with_context(|| {
            format!(
                "berth-cri is not installed next to {} (install it with berth)",
                me.display()
            )
        })?;
    let err = std::process::Command::new(&exe)
        .arg("--root")
        .arg(root)
        .arg("--runroot")
        .arg(&e.runroot)
        .arg("--cgroup-parent")
        .arg(&e.cgroup_parent)
        .arg("--berth")
        .arg(&me)
        .arg("--listen")
        .arg(&a.listen)
        .arg("--streaming-listen")
        .arg(&a.streaming_listen)
        .arg("--cni-conf-dir")
        .arg(&a.cni_conf_dir)
        .arg("--cni-bin-dir")
        .arg(&a.cni_bin_dir)
        .exec();
    Err(anyhow::anyhow!("run {}: {err}", exe.display()))
}

#[derive(Debug, Args)]
pub struct DfArgs {
    /// Output: table, json, a Go template over Docker's `.Type`,
    /// `.TotalCount`, `.Active`, `.Size`, `.Reclaimable`, or `table TEMPLATE`.
    #[arg(long, default_value = "table")]
    pub format: String,
}

pub fn system_command(
    root: &Path,
    e: &super::run::EngineArgs,
    c: SystemCommand,
) -> anyhow::Result<()> {
    match c {
        SystemCommand::Df(a) => df(root, &a),
        SystemCommand::Prune(a) => super::system_prune::prune(root, e, &a),
        SystemCommand::Service(a) => service(root, e, &a),
        SystemCommand::Migrate(a) => super::system_migrate::migrate(root, e, &a),
    }
}

fn df(root: &Path, a: &DfArgs) -> anyhow::Result<()> {
    let store =
        Store::open(root).with_context(|| format!("open store under {}", root.display()))?;
    let u = disk_usage(&store)?;
    match Format::parse(&a.format) {
        Format::Json => println!("{}", serde_json::to_string_pretty(&u)?),
        f @ (Format::Template(_) | Format::Table(Some(_))) => {
            // Docker's row fields; berth's store has only images to count.
            let row = serde_json::json!({
                "Type": "Images",
                "TotalCount": u.images.to_string(),
                "Active": "",
                "Size": human_size(u.blob_bytes + u.snapshot_bytes),
                "Reclaimable": human_size(u.reclaimable_bytes),
            });
            print!(
                "{}",
                f.rows(
                    "",
                    &[
                        ("Type", "TYPE"),
                        ("TotalCount", "TOTAL"),
                        ("Active", "ACTIVE"),
                        ("Size", "SIZE"),
                        ("Reclaimable", "RECLAIMABLE"),
                    ],
                    &[row],
                )?
            );
        }
        Format::Table(None) => print_table(
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
