//! berth's container networking: the host side of bridge networks.
//!
//! Owns: network namespace files (a netns kept alive by a bind mount),
//! bridges, veth pairs, addresses and routes (through netlink), berth's own
//! nftables table (NAT, port publishing, isolation), the per-network
//! DNS resolver, and the user-mode helpers (slirp4netns, pasta) of
//! containers without a bridge.
//! May call: the kernel through netlink and nix/rustix, the `nft` binary
//! (JSON input) for its own table.
//! Must not: know about containers, images or the engine database (the
//! engine passes plain descriptions in), or touch any interface, route or
//! nftables table it did not create (bridges and veths carry berth's name
//! prefixes; only the `berth` table is ever replaced or deleted).
#![forbid(unsafe_code)]

pub mod dns;
pub mod error;
pub mod firewall;
pub mod link;
pub mod netns;
pub mod port_proxy;
pub mod slirp_api;
pub mod usermode;

pub use error::{NetError, Result};
