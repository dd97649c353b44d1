//! The service's context and the `berth` commands that change state.

use std::path::PathBuf;

use berth_engine::Engine;

use crate::reply::ApiError;
use crate::server::Config;

/// Everything a request needs (no state of the service's own).
pub struct Ctx {
    pub engine: Engine,
    pub berth: PathBuf,
}

impl Ctx {
    pub fn new(c: &Config) -> Ctx {
        Ctx {
            engine: Engine::new(&c.root, &c.runroot, &c.cgroup_parent),
            berth: c.berth.clone(),
        }
    }

    /// A `berth` command over the same root, runroot and cgroup parent.
    pub fn cmd(&self) -> tokio::process::Command {
        berth_svc::berth_command(&self.berth, &self.engine)
    }

    /// Runs `berth ARGS`; its stdout, or its error as Docker's status.
    pub async fn berth(&self, args: &[String]) -> Result<String, ApiError> {
        let out = berth_svc::run_berth(&self.berth, &self.engine, args)
            .await
            .map_err(ApiError::internal)?;
        if out.success() {
            return Ok(String::from_utf8_lossy(&out.stdout).into_owned());
        }
        Err(ApiError::from_message(out.error_line()))
    }

    /// Runs a blocking engine read off the async threads.
    pub async fn read<T: Send + 'static>(
        &self,
        f: impl FnOnce(&Engine) -> Result<T, ApiError> + Send + 'static,
    ) -> Result<T, ApiError> {
        berth_svc::read(&self.engine, f)
            .await
            .map_err(ApiError::internal)?
    }
}
