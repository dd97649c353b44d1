//! `berth healthcheck run NAME`: podman's command, run by hand or by the
//! container's monitor at each interval.

use std::path::Path;

use anyhow::Result;
use clap::{Args, Subcommand};

use super::run::EngineArgs;

/// `healthcheck` subcommands.
#[derive(Debug, Subcommand)]
pub enum HealthcheckCommand {
    /// Run the check now and record it: exit 0 healthy, 1 unhealthy.
    Run(RunCheckArgs),
}

/// Options of `healthcheck run`.
#[derive(Debug, Args)]
pub struct RunCheckArgs {
    /// Started by the container's monitor (prints nothing).
    #[arg(long, hide = true)]
    pub from_monitor: bool,
    /// Container (name or ID).
    pub container: String,
}

/// Runs `healthcheck` commands.
pub fn healthcheck(root: &Path, e: &EngineArgs, c: &HealthcheckCommand) -> Result<i32> {
    match c {
        HealthcheckCommand::Run(a) => {
            berth_runtime::selfexe::ensure_sealed()?;
            let engine = e.engine(root)?;
            let st = berth_engine::health::run_check(&engine, &a.container)?;
            // podman 4.3: this check's result decides (a failure prints
            // `unhealthy` even before `--health-retries` in a row).
            let passed = st.log.last().is_some_and(|r| r.exit_code == 0);
            if !a.from_monitor && !passed {
                println!("unhealthy");
            }
            Ok(if passed { 0 } else { 1 })
        }
    }
}
