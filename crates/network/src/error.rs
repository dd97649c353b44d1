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
    #[error("dns records file {path}: {op}")]
    DnsRecords {
        op: &'static str,
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("dns records file {path}: not valid records JSON; let the engine rewrite it (reconnect a container) or remove it")]
    DnsRecordsFormat {
        path: PathBuf,
        #[source]
        source: serde_json::Error,
    },
    #[error("dns resolver on {addr}: {op}")]
    DnsSocket {
        op: &'static str,
        addr: String,
        #[source]
        source: std::io::Error,
    },
}

/// Result of the network layer.
pub type Result<T, E = NetError> = std::result::Result<T, E>;
