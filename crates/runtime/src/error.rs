//! The runtime's top-level error: what failed, on which container.

use crate::config::ConfigError;
use crate::state::{StateError, Status};

/// Errors of runtime operations.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error(transparent)]
    Config(#[from] ConfigError),
    #[error(transparent)]
    State(#[from] StateError),
    #[error("container {id:?}: setup failed: {message}")]
    Setup { id: String, message: String },
    #[error("container {id:?}: {source}")]
    Hook {
        id: String,
        #[source]
        source: crate::hooks::HookError,
    },
    #[error("container {id:?}: cgroup: {source}")]
    Cgroup {
        id: String,
        #[source]
        source: berth_cgroups::Error,
    },
    #[error("container {id:?}: seccomp: {message}")]
    Seccomp { id: String, message: String },
    #[error("container {id:?} is {status}; {what}")]
    WrongStatus {
        id: String,
        status: Status,
        what: String,
    },
    #[error("container {id:?}: cannot {op}: {source}")]
    Sys {
        id: String,
        op: String,
        #[source]
        source: std::io::Error,
    },
    #[error("container {id:?}: {message}")]
    Invalid { id: String, message: String },
}

/// Shorthand for a syscall-level failure on container `id`.
pub fn sys(id: &str, op: impl Into<String>) -> impl FnOnce(std::io::Error) -> Error {
    let id = id.to_string();
    let op = op.into();
    move |source| Error::Sys { id, op, source }
}

pub type Result<T> = std::result::Result<T, Error>;
