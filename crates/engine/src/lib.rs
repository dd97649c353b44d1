//! berth's engine: daemonless containers from images (podman/Docker-style).
//!
//! Owns: the engine database (SQLite), container records and names, turning
//! an image plus run options into an OCI bundle, the per-container monitor
//! process (stdio, logs, exit code, restart policy), and the container
//! lifecycle commands.
//! May call: berth-runtime (in-process, or any OCI runtime binary),
//! berth-image, berth-seccomp (hardened defaults), berth-cgroups (stats),
//! berth-network (bridges, veths, nftables, DNS for bridge networks).
//! Must not: make raw syscalls (berth-sys does) or touch host state it did
//! not create.
//!
//! Processes that create or exec containers (foreground `run`, `exec`, the
//! monitor) must be single-threaded, as berth-runtime requires.
#![forbid(unsafe_code)]

pub mod attach;
pub mod binds;
pub mod copy;
pub mod create;
pub mod db;
pub mod devices;
pub mod error;
pub mod events;
pub mod flags;
pub mod generate;
pub mod handoff;
pub mod health;
pub mod init;
pub mod inspect;
pub mod kube;
pub mod lifecycle;
pub mod logs;
pub mod manage;
pub mod monitor;
pub mod names;
pub mod networks;
pub mod ops;
pub mod opts;
pub mod pods;
pub mod resources;
pub mod rootless;
pub mod user;
pub mod userns;
pub mod volume_copy;
pub mod volume_store;
pub mod volumes;

use std::path::{Path, PathBuf};

pub use db::{ContainerRow, Db, Status};
pub use error::{EngineError, Result};
pub use opts::RunOptions;

/// Default `--runroot` (runtime state, tmpfs).
pub const DEFAULT_RUNROOT: &str = "/run/berth";
/// Default cgroup parent of containers.
pub const DEFAULT_CGROUP_PARENT: &str = "/berth";

/// Where the engine keeps things.
#[derive(Debug, Clone)]
pub struct Engine {
    /// `--root`: database, images, container dirs.
    pub root: PathBuf,
    /// `--runroot`: the runtime's state.
    pub runroot: PathBuf,
    /// Absolute cgroup parent for new containers.
    pub cgroup_parent: String,
    /// Database connections this process reuses (shared by clones).
    pub db_pool: std::sync::Arc<db::DbPool>,
}

impl Engine {
    /// An engine over these dirs.
    pub fn new(root: &Path, runroot: &Path, cgroup_parent: &str) -> Engine {
        Engine {
            root: root.to_path_buf(),
            runroot: runroot.to_path_buf(),
            cgroup_parent: cgroup_parent.to_string(),
            db_pool: Default::default(),
        }
    }

    /// The database: a connection this process opened before when one is
    /// free, else a new one (kept for reuse when dropped).
    pub fn db(&self) -> Result<Db> {
        Ok(Db::pooled(&self.root, &self.db_pool)?)
    }

    /// The runtime's state root (`<runroot>/runtime`).
    pub fn state_root(&self) -> berth_runtime::StateRoot {
        berth_runtime::StateRoot::new(self.runroot.join("runtime"))
    }

    /// `<root>/containers/<id>`: upper, work, merged, bundle, logs.
    pub fn dir(&self, id: &str) -> PathBuf {
        self.root.join("containers").join(id)
    }

    /// The container's rootfs mountpoint.
    pub fn rootfs(&self, id: &str) -> PathBuf {
        self.dir(id).join("merged")
    }

    /// The container's bundle dir (config.json).
    pub fn bundle(&self, id: &str) -> PathBuf {
        self.dir(id).join("bundle")
    }

    /// The container's log (JSON lines).
    pub fn log_path(&self, id: &str) -> PathBuf {
        self.dir(id).join("ctr.log")
    }
}

/// Unix time now in milliseconds.
pub fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0)
}

/// RFC 3339 of a unix time in milliseconds.
pub fn rfc3339_ms(ms: i64) -> String {
    berth_runtime::container::format_rfc3339(
        ms.div_euclid(1000),
        (ms.rem_euclid(1000) * 1_000_000) as u32,
    )
}
