//! The service's context, the `berth` commands that change state, and
//! what it does in-process instead (create, start).

use std::path::PathBuf;
use std::sync::Arc;

use berth_engine::Engine;
use berth_svc::changes::Changes;
use berth_svc::monitors::Monitors;

use crate::reply::ApiError;
use crate::server::Config;

pub use berth_svc::CreateFn;

/// Everything a request needs (no state of the service's own: the
/// change count and the read-only view of the binary are not state).
pub struct Ctx {
    pub engine: Engine,
    pub berth: PathBuf,
    /// Wakes waiters when the engine's state changes.
    pub changes: Arc<Changes>,
    /// Starts containers' monitors from here.
    pub monitors: Arc<Monitors>,
    /// Creates containers in this process (else: `berth create`).
    pub create: Option<Arc<CreateFn>>,
}

impl Ctx {
    pub fn new(c: &Config, create: Option<Arc<CreateFn>>) -> Ctx {
        Ctx {
            engine: Engine::new(&c.root, &c.runroot, &c.cgroup_parent),
            berth: c.berth.clone(),
            changes: Changes::watch(&c.root),
            monitors: Arc::new(Monitors::new(&c.berth)),
            create,
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

impl Ctx {
    /// `berth create ...` (`line` starts with `create`): in this process
    /// when the binary gave the means, else as a command; the new
    /// container's ID.
    pub async fn create(&self, line: Vec<String>) -> Result<String, ApiError> {
        let Some(create) = self.create.clone() else {
            let out = self.berth(&line).await?;
            return Ok(out
                .split_whitespace()
                .last()
                .unwrap_or_default()
                .to_string());
        };
        self.read(move |e| create(e, &line[1..]).map_err(ApiError::from_message))
            .await
    }

    /// `berth start ID` for a container not running: its monitor is
    /// spawned from here when possible (no `berth start` process).
    pub async fn start(&self, row: berth_engine::ContainerRow) -> Result<(), ApiError> {
        if !self.monitors.available() {
            self.berth(&["start".into(), row.id]).await?;
            return Ok(());
        }
        berth_svc::monitors::start_detached(&self.monitors, &self.engine, row)
            .await
            .map_err(ApiError::from_message)
    }
}
