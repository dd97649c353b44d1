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
    #[error("nftables table inet berth: invalid {object}: {reason}")]
    FirewallInput { object: String, reason: String },
    #[error("nftables table inet berth: could not run `nft -j -f -` to {op}; is nftables (with JSON support) installed?")]
    NftRun {
        op: &'static str,
        #[source]
        source: std::io::Error,
    },
    #[error("nftables table inet berth: nft failed to {op} ({status}): {stderr}")]
    NftFailed {
        op: &'static str,
        status: String,
        stderr: String,
    },
}

/// Result of the network layer.
pub type Result<T, E = NetError> = std::result::Result<T, E>;
