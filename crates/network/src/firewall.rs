//! berth's nftables table, `inet berth`: NAT for bridge networks, published
//! ports (DNAT) and isolation between networks.
//!
//! All of berth's rules live in this one table. It is computed from a plain
//! [`Ruleset`] by [`render`] and replaced as a whole by [`apply`], in one
//! nft transaction (`nft -j -f -`, JSON on stdin): `add table` (so the next
//! command cannot fail), `delete table`, then the table, its chains and
//! rules. No other table is ever read, changed or deleted.
//!
//! Chains:
//! - `prerouting` (nat, dstnat): published ports for traffic arriving from
//!   outside or from containers (`fib daddr type local`, or `ip daddr` of
//!   the port's host address) are DNATed to the container.
//! - `output` (nat, -100): the same DNATs for connections made by the host
//!   itself, including to `127.0.0.1:<host_port>`.
//! - `postrouting` (nat, srcnat): masquerade of non-internal networks
//!   leaving their bridge; masquerade of DNATed traffic into a bridge from
//!   the network's own subnet (hairpin) or from 127.0.0.0/8 (the host's
//!   loopback, which the container could not answer).
//! - `forward` (filter, policy accept): established/related accepted first;
//!   no traffic from one berth bridge to another; internal networks neither
//!   leave nor are entered from outside their bridge (the host itself
//!   still reaches them: its own traffic is not forwarded).
//!
//! Host prerequisites, set by the caller (the engine), not here:
//! - `net.ipv4.ip_forward=1` (and `net.ipv6.conf.all.forwarding=1` for v6
//!   networks) so containers reach out and published ports reach in.
//! - `net.ipv4.conf.<bridge>.route_localnet=1` on every bridge that has
//!   published ports, for `127.0.0.1:<host_port>` to work: after DNAT the
//!   packet still carries source 127.0.0.1 when it is rerouted to the
//!   bridge, and the container's answer is de-NATed back to 127.0.0.1 on
//!   the bridge; without the setting the kernel drops both as martians.
//!   The per-interface setting is enough (`all` is not needed). There is
//!   no IPv6 equivalent: `[::1]:<host_port>` is not forwarded.

mod rules;
#[cfg(test)]
mod tests;
mod validate;

use rules::*;
pub use validate::validate;

use std::io::Write;
use std::net::IpAddr;
use std::process::{Command, Stdio};

use ipnet::IpNet;
use serde_json::{json, Value};

use crate::error::{NetError, Result};

/// The nftables family of berth's table.
pub const TABLE_FAMILY: &str = "inet";
/// The name of berth's table.
pub const TABLE_NAME: &str = "berth";

/// Longest interface name Linux accepts (IFNAMSIZ - 1).
const IFNAME_MAX: usize = 15;

/// Transport protocol of a published port.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Proto {
    /// TCP.
    Tcp,
    /// UDP.
    Udp,
}

impl Proto {
    fn name(self) -> &'static str {
        match self {
            Proto::Tcp => "tcp",
            Proto::Udp => "udp",
        }
    }
}

/// One bridge network as the firewall sees it.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct NetworkRules {
    /// The network's bridge interface; must start with the ruleset's
    /// `bridge_prefix`.
    pub bridge: String,
    /// The network's subnets (v4 and/or v6); host bits are ignored.
    pub subnets: Vec<IpNet>,
    /// An internal network has no traffic in or out of its bridge.
    pub internal: bool,
}

/// One published port: `host_ip:host_port/proto` → `container_ip:container_port`.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct PortRule {
    /// Host address to publish on; `None` (or the unspecified address of
    /// the container's family) means every local address of that family.
    pub host_ip: Option<IpAddr>,
    /// Port on the host (not 0).
    pub host_port: u16,
    /// The container's address on `bridge`; decides the family (ip/ip6).
    pub container_ip: IpAddr,
    /// Port in the container (not 0).
    pub container_port: u16,
    /// TCP or UDP.
    pub proto: Proto,
    /// The bridge (or host-side interface) the container is reached by.
    pub bridge: String,
}

/// Everything in table `inet berth`.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Ruleset {
    /// Bridge networks.
    pub networks: Vec<NetworkRules>,
    /// Published ports.
    pub ports: Vec<PortRule>,
    /// Every berth bridge name starts with this (e.g. `"berth"`); traffic
    /// between two such bridges is dropped.
    pub bridge_prefix: String,
}

impl Ruleset {
    /// Whether the ruleset has nothing to put in the table.
    pub fn is_empty(&self) -> bool {
        self.networks.is_empty() && self.ports.is_empty()
    }
}

fn invalid(object: impl Into<String>, reason: impl Into<String>) -> NetError {
    NetError::FirewallInput {
        object: object.into(),
        reason: reason.into(),
    }
}

/// The host address a rule is restricted to; the unspecified address
/// means "every local address", like no address.
fn host_addr(p: &PortRule) -> Option<IpAddr> {
    p.host_ip.filter(|a| !a.is_unspecified())
}

/// The nft JSON of the whole transaction that [`apply`] runs: for an
/// empty ruleset the deletion of the table (what [`remove`] runs), else
/// `add table`, `delete table`, then the new table, chains and rules.
/// It does not validate; see [`validate`].
pub fn render(r: &Ruleset) -> Value {
    let mut cmds = vec![
        json!({"metainfo": {"json_schema_version": 1}}),
        json!({"add": table()}),
        json!({"delete": table()}),
    ];
    if !r.is_empty() {
        cmds.push(json!({"add": table()}));
        // Priorities: dstnat = -100, srcnat = 100, filter = 0.
        cmds.push(chain("prerouting", "nat", "prerouting", -100));
        cmds.push(chain("output", "nat", "output", -100));
        cmds.push(chain("postrouting", "nat", "postrouting", 100));
        cmds.push(chain("forward", "filter", "forward", 0));
        cmds.push(chain("raw", "filter", "prerouting", -300));
        cmds.extend(r.ports.iter().map(|p| dnat_rule("prerouting", p)));
        cmds.extend(r.ports.iter().map(|p| dnat_rule("output", p)));
        cmds.extend(postrouting_rules(r));
        cmds.extend(forward_rules(r));
        cmds.extend(raw_rules(r));
    }
    json!({ "nftables": cmds })
}

/// Replaces table `inet berth` with `r` in one transaction, in the calling
/// thread's network namespace. If `r` has no networks and no ports, the
/// table is deleted instead. See the module docs for the sysctls the
/// caller must set.
pub fn apply(r: &Ruleset) -> Result<()> {
    apply_in(r, TABLE_NAME)
}

/// [`apply`] to table `inet <table>` (one per engine root: see the
/// engine's networks module); `table` is letters, digits and `_`.
pub fn apply_in(r: &Ruleset, table: &str) -> Result<()> {
    validate(r)?;
    if table.is_empty()
        || !table
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'_')
    {
        return Err(invalid(
            "table name",
            format!("{table:?} is not letters, digits and _"),
        ));
    }
    let op = if r.is_empty() {
        "delete the table"
    } else {
        "replace the table"
    };
    run_nft(op, &render_in(r, table))
}

/// [`render`] for table `inet <table>`: every command names that table.
pub fn render_in(r: &Ruleset, table: &str) -> Value {
    let mut v = render(r);
    if table == TABLE_NAME {
        return v;
    }
    for cmd in v["nftables"].as_array_mut().into_iter().flatten() {
        for (_, inner) in cmd.as_object_mut().into_iter().flatten() {
            if let Some(t) = inner.get_mut("table") {
                t["name"] = json!(table);
            }
            for kind in ["chain", "rule"] {
                if let Some(o) = inner.get_mut(kind) {
                    o["table"] = json!(table);
                }
            }
        }
    }
    v
}

/// Deletes table `inet berth` if it exists (in the calling thread's
/// network namespace). Idempotent.
pub fn remove() -> Result<()> {
    run_nft("delete the table", &render(&Ruleset::default()))
}

/// Where `nft` lives when it is not on PATH (as for a non-root PATH).
const NFT_FALLBACKS: [&str; 2] = ["/usr/sbin/nft", "/sbin/nft"];

fn spawn_nft() -> std::io::Result<std::process::Child> {
    let spawn = |prog: &str| {
        Command::new(prog)
            .args(["-j", "-f", "-"])
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
    };
    match spawn("nft") {
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            for p in NFT_FALLBACKS {
                if std::path::Path::new(p).exists() {
                    return spawn(p);
                }
            }
            Err(e)
        }
        other => other,
    }
}

/// Runs one nft transaction (`nft -j -f -`) with `doc` on stdin.
fn run_nft(op: &'static str, doc: &Value) -> Result<()> {
    let run_err = |source| NetError::NftRun { op, source };
    let input = serde_json::to_vec(doc).expect("a JSON value always serializes");
    tracing::debug!(op, input = %doc, "nft -j -f -");
    let mut child = spawn_nft().map_err(run_err)?;
    let written = child
        .stdin
        .take()
        .map(|mut stdin| stdin.write_all(&input))
        .unwrap_or(Ok(()));
    let out = child.wait_with_output().map_err(run_err)?;
    if !out.status.success() {
        return Err(NetError::NftFailed {
            op,
            status: out.status.to_string(),
            stderr: String::from_utf8_lossy(&out.stderr).trim().to_string(),
        });
    }
    written.map_err(run_err)
}
