//! Errors of the network layer.

use std::path::PathBuf;

/// What went wrong, with the object (path, interface, table) it concerns.
#[derive(Debug, thiserror::Error)]
pub enum NetError {
    #[error("network namespace {path}: {op}")]
    Netns {
        op: &'static str,
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
}

/// Result of the network layer.
pub type Result<T, E = NetError> = std::result::Result<T, E>;
