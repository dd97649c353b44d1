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
    #[error("netlink: could not open or drive a netlink socket to {op} {object}")]
    NetlinkSocket {
        op: &'static str,
        object: String,
        #[source]
        source: std::io::Error,
    },
    #[error("netlink: {op} {object} failed")]
    Netlink {
        op: &'static str,
        object: String,
        #[source]
        source: rtnetlink::Error,
    },
    #[error(
        "link {name} exists but is a {kind}, not a bridge: remove it or choose another bridge name"
    )]
    NotABridge { name: String, kind: String },
    #[error("link {name} does not exist: {hint}")]
    LinkMissing { name: String, hint: &'static str },
    #[error("invalid interface name {name:?}: {reason}")]
    InvalidIfName { name: String, reason: &'static str },
    #[error("invalid sysctl key net.{key}: {reason}")]
    InvalidSysctl { key: String, reason: &'static str },
    #[error(
        "write sysctl net.{key} = {value}: check that the key exists in this kernel and namespace"
    )]
    Sysctl {
        key: String,
        value: String,
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
