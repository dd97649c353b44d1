//! `berth system migrate` (podman's): stops every running container and,
//! rootless, ends the pause process holding the user's namespace
//! (docs/rootless.md), so that the next command makes a new one: after a
//! change of the user's ranges in /etc/subuid and /etc/subgid, or to end
//! every process berth keeps for the user.

use std::path::Path;

use anyhow::Result;
use berth_engine::db::Status;
use berth_engine::ops;
use clap::Args;

use super::run::EngineArgs;

#[derive(Debug, Args)]
pub struct MigrateArgs {
    /// podman's switch of every container to another OCI runtime: refused
    /// (berth has one runtime, built in).
    #[arg(long, value_name = "RUNTIME")]
    pub new_runtime: Option<String>,
}

/// As libpod's `Runtime.Migrate`: every running container is stopped
/// (its stop signal, SIGKILL after its stop timeout), printed as
/// `stopped ID`; then, rootless, the rootless network namespace's helper
/// and the pause process end.
pub fn migrate(root: &Path, e: &EngineArgs, a: &MigrateArgs) -> Result<()> {
    if let Some(r) = &a.new_runtime {
        anyhow::bail!(
            "system migrate --new-runtime {r}: berth runs every container with its built-in runtime; there is no other runtime to switch to"
        );
    }
    let engine = e.engine(root)?;
    let rows = engine.db()?.list()?;
    let running: Vec<String> = rows
        .into_iter()
        .filter_map(|r| berth_engine::lifecycle::refresh(&engine, r).ok())
        .filter(|r| r.status == Status::Running)
        .map(|r| r.id)
        .collect();
    let results = ops::in_parallel(&running, ops::REMOVAL_WORKERS, |id| {
        let t = berth_engine::flags::stop_timeout(&engine, id, None);
        ops::stop(&engine, id, t)
    });
    for (id, r) in running.iter().zip(results) {
        if let Err(err) = r {
            anyhow::bail!(
                "system migrate: stop container {id}: {}",
                berth_engine::error::error_chain(&err)
            );
        }
        println!("stopped {id}");
    }
    if let Some(uid) = berth_engine::rootless::host_uid() {
        berth_engine::networks::rootless_netns::end(&engine).map_err(|err| {
            anyhow::anyhow!(
                "system migrate: end the rootless network namespace: {}",
                berth_engine::error::error_chain(&err)
            )
        })?;
        berth_engine::rootless::pause::end(uid)?;
    }
    Ok(())
}
