//! The service's context and the `berth` commands that change state.

use std::path::PathBuf;
use std::process::Stdio;

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
        let mut c = tokio::process::Command::new(&self.berth);
        c.arg("--root")
            .arg(&self.engine.root)
            .arg("--runroot")
            .arg(&self.engine.runroot)
            .arg("--cgroup-parent")
            .arg(&self.engine.cgroup_parent)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .kill_on_drop(true);
        c
    }

    /// Runs `berth ARGS`; its stdout, or its error as Docker's status.
    pub async fn berth(&self, args: &[String]) -> Result<String, ApiError> {
        let out = self
            .cmd()
            .args(args)
            .output()
            .await
            .map_err(|e| ApiError::internal(format!("run {}: {e}", self.berth.display())))?;
        if out.status.success() {
            return Ok(String::from_utf8_lossy(&out.stdout).into_owned());
        }
        let err = String::from_utf8_lossy(&out.stderr);
        let msg = err
            .lines()
            .rev()
            .find(|l| !l.trim().is_empty())
            .unwrap_or("berth failed")
            .trim_start_matches("berth: ")
            .to_string();
        Err(ApiError::from_message(msg))
    }

    /// Runs a blocking engine read off the async threads.
    pub async fn read<T: Send + 'static>(
        &self,
        f: impl FnOnce(&Engine) -> Result<T, ApiError> + Send + 'static,
    ) -> Result<T, ApiError> {
        let engine = self.engine.clone();
        tokio::task::spawn_blocking(move || f(&engine))
            .await
            .map_err(|e| ApiError::internal(format!("engine read failed: {e}")))?
    }
}
