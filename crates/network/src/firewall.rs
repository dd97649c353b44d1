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

use std::collections::HashSet;
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

fn check_ifname(what: &str, name: &str) -> Result<()> {
    let ok_chars = name
        .chars()
        .all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '.' | '-'));
    if name.is_empty() || name.len() > IFNAME_MAX || !ok_chars || name == "." || name == ".." {
        return Err(invalid(
            format!("{what} {name:?}"),
            "an interface name is 1-15 characters of A-Z a-z 0-9 _ . -",
        ));
    }
    Ok(())
}

/// Checks a ruleset before it is rendered: interface names, the bridge
/// prefix, address families of each port rule, duplicate networks and
/// ports published twice. [`apply`] calls it.
pub fn validate(r: &Ruleset) -> Result<()> {
    if !r.networks.is_empty() {
        if r.bridge_prefix.is_empty() {
            return Err(invalid(
                "bridge prefix",
                "it is empty, so isolation would match every interface; give the prefix of berth's bridge names",
            ));
        }
        check_ifname("bridge prefix", &r.bridge_prefix)?;
    }
    let mut bridges = HashSet::new();
    for n in &r.networks {
        check_ifname("network bridge", &n.bridge)?;
        if !n.bridge.starts_with(&r.bridge_prefix) {
            return Err(invalid(
                format!("network bridge {:?}", n.bridge),
                format!(
                    "it does not start with the bridge prefix {:?}, so isolation would miss it",
                    r.bridge_prefix
                ),
            ));
        }
        if !bridges.insert(n.bridge.as_str()) {
            return Err(invalid(
                format!("network bridge {:?}", n.bridge),
                "two networks use it; give each network its own bridge",
            ));
        }
    }
    // (family is v6, proto, host_port, host address or None for "all")
    let mut published: HashSet<(bool, Proto, u16, Option<IpAddr>)> = HashSet::new();
    for p in &r.ports {
        let object = || format!("published port {}", describe(p));
        check_ifname("port bridge", &p.bridge)?;
        if p.host_port == 0 || p.container_port == 0 {
            return Err(invalid(object(), "port 0 cannot be published or targeted"));
        }
        let c = p.container_ip;
        if c.is_unspecified() || c.is_multicast() || c.is_loopback() {
            return Err(invalid(
                object(),
                "the container address must be a unicast address on the bridge",
            ));
        }
        if let Some(h) = p.host_ip {
            if h.is_ipv6() != c.is_ipv6() {
                return Err(invalid(
                    object(),
                    "host and container addresses are of different families (IPv4 vs IPv6); publish each family with its own rule",
                ));
            }
        }
        let v6 = c.is_ipv6();
        let host = host_addr(p);
        let clash = published.contains(&(v6, p.proto, p.host_port, host))
            || (host.is_none()
                && published
                    .iter()
                    .any(|&(f, pr, port, _)| (f, pr, port) == (v6, p.proto, p.host_port)))
            || published.contains(&(v6, p.proto, p.host_port, None));
        if clash {
            return Err(invalid(
                object(),
                "this host port is already published for this protocol and address; choose another host port",
            ));
        }
        published.insert((v6, p.proto, p.host_port, host));
    }
    Ok(())
}

fn describe(p: &PortRule) -> String {
    let host = match p.host_ip {
        Some(IpAddr::V6(a)) => format!("[{a}]:"),
        Some(a) => format!("{a}:"),
        None => String::new(),
    };
    let ctr = match p.container_ip {
        IpAddr::V6(a) => format!("[{a}]"),
        a => a.to_string(),
    };
    format!(
        "{host}{}/{} -> {ctr}:{} on {}",
        p.host_port,
        p.proto.name(),
        p.container_port,
        p.bridge
    )
}

/// The host address a rule is restricted to; the unspecified address
/// means "every local address", like no address.
fn host_addr(p: &PortRule) -> Option<IpAddr> {
    p.host_ip.filter(|a| !a.is_unspecified())
}

// ---- JSON building blocks (nft's JSON schema, libnftables-json(5)) ----

fn table() -> Value {
    json!({"table": {"family": TABLE_FAMILY, "name": TABLE_NAME}})
}

fn chain(name: &str, kind: &str, hook: &str, prio: i32) -> Value {
    json!({"add": {"chain": {
        "family": TABLE_FAMILY, "table": TABLE_NAME, "name": name,
        "type": kind, "hook": hook, "prio": prio, "policy": "accept",
    }}})
}

fn rule(chain: &str, expr: Vec<Value>) -> Value {
    json!({"add": {"rule": {
        "family": TABLE_FAMILY, "table": TABLE_NAME, "chain": chain, "expr": expr,
    }}})
}

fn matches(op: &str, left: Value, right: Value) -> Value {
    json!({"match": {"op": op, "left": left, "right": right}})
}

fn meta(key: &str) -> Value {
    json!({"meta": {"key": key}})
}

fn payload(protocol: &str, field: &str) -> Value {
    json!({"payload": {"protocol": protocol, "field": field}})
}

/// nft's name of an address family as a payload protocol / nat family.
fn ip_proto(v6: bool) -> &'static str {
    if v6 {
        "ip6"
    } else {
        "ip"
    }
}

fn nfproto(v6: bool) -> Value {
    matches(
        "==",
        meta("nfproto"),
        json!(if v6 { "ipv6" } else { "ipv4" }),
    )
}

fn prefix(net: &IpNet) -> Value {
    let net = net.trunc();
    json!({"prefix": {"addr": net.addr().to_string(), "len": net.prefix_len()}})
}

fn saddr_in(net: &IpNet) -> Value {
    matches(
        "==",
        payload(ip_proto(net.addr().is_ipv6()), "saddr"),
        prefix(net),
    )
}

fn ifname(key: &str, op: &str, name: &str) -> Value {
    matches(op, meta(key), json!(name))
}

fn verdict(v: &str) -> Value {
    json!({ v: null })
}

fn masquerade() -> Value {
    json!({"masquerade": null})
}

fn ct_status_dnat() -> Value {
    matches("in", json!({"ct": {"key": "status"}}), json!("dnat"))
}

/// `meta nfproto ipvX (fib daddr type local | ipX daddr H) <proto> dport P
/// dnat ipX to C:Q`
fn dnat_rule(chain_name: &str, p: &PortRule) -> Value {
    let v6 = p.container_ip.is_ipv6();
    let dest = match host_addr(p) {
        Some(h) => matches("==", payload(ip_proto(v6), "daddr"), json!(h.to_string())),
        None => matches(
            "==",
            json!({"fib": {"result": "type", "flags": ["daddr"]}}),
            json!("local"),
        ),
    };
    rule(
        chain_name,
        vec![
            nfproto(v6),
            dest,
            matches("==", payload(p.proto.name(), "dport"), json!(p.host_port)),
            json!({"dnat": {
                "family": ip_proto(v6),
                "addr": p.container_ip.to_string(),
                "port": p.container_port,
            }}),
        ],
    )
}

fn postrouting_rules(r: &Ruleset) -> Vec<Value> {
    let mut out = Vec::new();
    // Containers of non-internal networks going out through another
    // interface look like the host.
    for n in r.networks.iter().filter(|n| !n.internal) {
        for s in &n.subnets {
            out.push(rule(
                "postrouting",
                vec![
                    nfproto(s.addr().is_ipv6()),
                    saddr_in(s),
                    ifname("oifname", "!=", &n.bridge),
                    masquerade(),
                ],
            ));
        }
    }
    // DNATed traffic entering a bridge from the host's loopback (output
    // path, needs route_localnet) or from the bridge's own subnet (hairpin:
    // a container reaching a published port of its own network) is
    // masqueraded so that the answer comes back through the host.
    let mut bridges: Vec<&str> = Vec::new();
    for b in r
        .networks
        .iter()
        .map(|n| n.bridge.as_str())
        .chain(r.ports.iter().map(|p| p.bridge.as_str()))
    {
        if !bridges.contains(&b) {
            bridges.push(b);
        }
    }
    let loopback: IpNet = "127.0.0.0/8".parse().expect("a valid literal prefix");
    for b in bridges {
        let subnets = r
            .networks
            .iter()
            .filter(|n| n.bridge == b)
            .flat_map(|n| n.subnets.iter());
        for s in std::iter::once(&loopback).chain(subnets) {
            out.push(rule(
                "postrouting",
                vec![
                    nfproto(s.addr().is_ipv6()),
                    ct_status_dnat(),
                    ifname("oifname", "==", b),
                    saddr_in(s),
                    masquerade(),
                ],
            ));
        }
    }
    out
}

fn forward_rules(r: &Ruleset) -> Vec<Value> {
    let mut out = vec![rule(
        "forward",
        vec![
            matches(
                "in",
                json!({"ct": {"key": "state"}}),
                json!(["established", "related"]),
            ),
            verdict("accept"),
        ],
    )];
    let any_berth = format!("{}*", r.bridge_prefix);
    for n in &r.networks {
        out.push(rule(
            "forward",
            vec![
                ifname("iifname", "==", &n.bridge),
                ifname("oifname", "==", &any_berth),
                ifname("oifname", "!=", &n.bridge),
                verdict("drop"),
            ],
        ));
        if n.internal {
            out.push(rule(
                "forward",
                vec![
                    ifname("iifname", "==", &n.bridge),
                    ifname("oifname", "!=", &n.bridge),
                    verdict("drop"),
                ],
            ));
            out.push(rule(
                "forward",
                vec![
                    ifname("oifname", "==", &n.bridge),
                    ifname("iifname", "!=", &n.bridge),
                    verdict("drop"),
                ],
            ));
        }
    }
    out
}

/// `raw` prerouting: traffic between two containers of one network is
/// bridged and needs no connection tracking (no NAT applies to it), but
/// with br_netfilter (`bridge-nf-call-iptables=1`, the default) it would
/// still be tracked: `notrack` it. Traffic to a local address (the
/// gateway: DNS, published ports, hairpin) stays tracked.
fn raw_rules(r: &Ruleset) -> Vec<Value> {
    let mut out = Vec::new();
    for n in &r.networks {
        for net in &n.subnets {
            let v6 = net.addr().is_ipv6();
            out.push(rule(
                "raw",
                vec![
                    saddr_in(net),
                    matches("==", payload(ip_proto(v6), "daddr"), prefix(net)),
                    matches(
                        "!=",
                        json!({"fib": {"result": "type", "flags": ["daddr"]}}),
                        json!("local"),
                    ),
                    json!({"notrack": null}),
                ],
            ));
        }
    }
    out
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

#[cfg(test)]
mod tests {
    use super::*;

    fn port(host: Option<&str>, hp: u16, ctr: &str, cp: u16, proto: Proto, br: &str) -> PortRule {
        PortRule {
            host_ip: host.map(|h| h.parse().unwrap()),
            host_port: hp,
            container_ip: ctr.parse().unwrap(),
            container_port: cp,
            proto,
            bridge: br.into(),
        }
    }

    fn net(br: &str, subnets: &[&str], internal: bool) -> NetworkRules {
        NetworkRules {
            bridge: br.into(),
            subnets: subnets.iter().map(|s| s.parse().unwrap()).collect(),
            internal,
        }
    }

    fn sample() -> Ruleset {
        Ruleset {
            networks: vec![
                net("berth0", &["10.88.0.0/16", "fd00:88::/64"], false),
                net("berth1", &["10.89.0.0/24"], true),
            ],
            ports: vec![
                port(None, 8080, "10.88.0.2", 80, Proto::Tcp, "berth0"),
                port(
                    Some("192.0.2.1"),
                    5353,
                    "10.88.0.3",
                    53,
                    Proto::Udp,
                    "berth0",
                ),
                port(
                    Some("2001:db8::1"),
                    8443,
                    "fd00:88::2",
                    443,
                    Proto::Tcp,
                    "berth0",
                ),
            ],
            bridge_prefix: "berth".into(),
        }
    }

    fn commands(v: &Value) -> &Vec<Value> {
        v["nftables"].as_array().unwrap()
    }

    /// The rules of `chain`, each as its list of expressions.
    fn rules<'a>(v: &'a Value, chain: &str) -> Vec<&'a Vec<Value>> {
        commands(v)
            .iter()
            .filter_map(|c| c["add"]["rule"].as_object())
            .filter(|r| r["chain"] == chain)
            .map(|r| r["expr"].as_array().unwrap())
            .collect()
    }

    fn m(op: &str, left: Value, right: Value) -> Value {
        matches(op, left, right)
    }

    #[test]
    fn render_in_names_only_its_own_table() {
        let v = render_in(&sample(), "berth_1a2b3c");
        let c = commands(&v);
        assert!(c.len() > 4);
        for cmd in &c[1..] {
            let obj = cmd.as_object().unwrap().values().next().unwrap();
            let inner = obj.as_object().unwrap().values().next().unwrap();
            let name = inner.get("table").unwrap_or(&inner["name"]);
            assert_eq!(name, "berth_1a2b3c", "{cmd}");
        }
        assert_eq!(render_in(&sample(), TABLE_NAME), render(&sample()));
        assert!(apply_in(&sample(), "bad-name").is_err());
    }

    #[test]
    fn transaction_starts_with_add_delete_add_table() {
        let v = render(&sample());
        let c = commands(&v);
        let t = json!({"table": {"family": "inet", "name": "berth"}});
        assert_eq!(c[1], json!({"add": t}));
        assert_eq!(c[2], json!({"delete": t}));
        assert_eq!(c[3], json!({"add": t}));
        // Nothing outside table inet berth is ever named.
        for cmd in &c[1..] {
            let obj = cmd.as_object().unwrap().values().next().unwrap();
            let inner = obj.as_object().unwrap().values().next().unwrap();
            assert_eq!(inner["family"], "inet", "{cmd}");
            let name = inner.get("table").unwrap_or(&inner["name"]);
            assert_eq!(name, "berth", "{cmd}");
        }
        let chains: Vec<_> = c
            .iter()
            .filter_map(|c| c["add"]["chain"].as_object())
            .map(|c| {
                (
                    c["name"].as_str().unwrap(),
                    c["type"].as_str().unwrap(),
                    c["hook"].as_str().unwrap(),
                    c["prio"].as_i64().unwrap(),
                )
            })
            .collect();
        assert_eq!(
            chains,
            [
                ("prerouting", "nat", "prerouting", -100),
                ("output", "nat", "output", -100),
                ("postrouting", "nat", "postrouting", 100),
                ("forward", "filter", "forward", 0),
                ("raw", "filter", "prerouting", -300),
            ]
        );
    }

    #[test]
    fn empty_ruleset_only_deletes() {
        let v = render(&Ruleset::default());
        let c = commands(&v);
        assert_eq!(c.len(), 3);
        assert!(c[2]["delete"]["table"].is_object());
    }

    #[test]
    fn dnat_rules_in_prerouting_and_output() {
        let v = render(&sample());
        for chain in ["prerouting", "output"] {
            let r = rules(&v, chain);
            assert_eq!(r.len(), 3, "{chain}");
            // Any local address, v4, tcp.
            assert_eq!(r[0][0], nfproto(false));
            assert_eq!(
                r[0][1],
                m(
                    "==",
                    json!({"fib": {"result": "type", "flags": ["daddr"]}}),
                    json!("local")
                )
            );
            assert_eq!(r[0][2], m("==", payload("tcp", "dport"), json!(8080)));
            assert_eq!(
                r[0][3],
                json!({"dnat": {"family": "ip", "addr": "10.88.0.2", "port": 80}})
            );
            // One host address, udp.
            assert_eq!(r[1][1], m("==", payload("ip", "daddr"), json!("192.0.2.1")));
            assert_eq!(r[1][2], m("==", payload("udp", "dport"), json!(5353)));
            // IPv6.
            assert_eq!(r[2][0], nfproto(true));
            assert_eq!(
                r[2][1],
                m("==", payload("ip6", "daddr"), json!("2001:db8::1"))
            );
            assert_eq!(
                r[2][3],
                json!({"dnat": {"family": "ip6", "addr": "fd00:88::2", "port": 443}})
            );
        }
    }

    #[test]
    fn unspecified_host_ip_means_every_local_address() {
        let mut r = sample();
        r.ports = vec![port(
            Some("0.0.0.0"),
            80,
            "10.88.0.2",
            80,
            Proto::Tcp,
            "berth0",
        )];
        let v = render(&r);
        let pre = rules(&v, "prerouting");
        assert_eq!(pre[0][1]["match"]["left"]["fib"]["result"], "type");
    }

    #[test]
    fn postrouting_masquerades_outgoing_hairpin_and_loopback() {
        let v = render(&sample());
        let r = rules(&v, "postrouting");
        let pfx = |a: &str, l: u8| json!({"prefix": {"addr": a, "len": l}});
        let out = |a: &str, l: u8, v6: bool, br: &str| {
            vec![
                nfproto(v6),
                m("==", payload(ip_proto(v6), "saddr"), pfx(a, l)),
                m("!=", meta("oifname"), json!(br)),
                json!({"masquerade": null}),
            ]
        };
        let dnat_in = |a: &str, l: u8, v6: bool, br: &str| {
            vec![
                nfproto(v6),
                m("in", json!({"ct": {"key": "status"}}), json!("dnat")),
                m("==", meta("oifname"), json!(br)),
                m("==", payload(ip_proto(v6), "saddr"), pfx(a, l)),
                json!({"masquerade": null}),
            ]
        };
        let want = vec![
            // Outgoing: non-internal network only (berth1 is internal).
            out("10.88.0.0", 16, false, "berth0"),
            out("fd00:88::", 64, true, "berth0"),
            // Loopback and hairpin, per bridge.
            dnat_in("127.0.0.0", 8, false, "berth0"),
            dnat_in("10.88.0.0", 16, false, "berth0"),
            dnat_in("fd00:88::", 64, true, "berth0"),
            dnat_in("127.0.0.0", 8, false, "berth1"),
            dnat_in("10.89.0.0", 24, false, "berth1"),
        ];
        let got: Vec<Vec<Value>> = r.into_iter().cloned().collect();
        assert_eq!(got, want);
    }

    #[test]
    fn subnet_host_bits_are_cleared() {
        let mut r = sample();
        r.networks = vec![net("berth0", &["10.88.3.7/16"], false)];
        let v = render(&r);
        let first = rules(&v, "postrouting")[0];
        assert_eq!(first[1]["match"]["right"]["prefix"]["addr"], "10.88.0.0");
    }

    #[test]
    fn forward_isolates_networks_and_internal() {
        let v = render(&sample());
        let r = rules(&v, "forward");
        assert_eq!(
            *r[0],
            vec![
                m(
                    "in",
                    json!({"ct": {"key": "state"}}),
                    json!(["established", "related"])
                ),
                json!({"accept": null}),
            ]
        );
        let iso = |br: &str| {
            vec![
                m("==", meta("iifname"), json!(br)),
                m("==", meta("oifname"), json!("berth*")),
                m("!=", meta("oifname"), json!(br)),
                json!({"drop": null}),
            ]
        };
        assert_eq!(*r[1], iso("berth0"));
        assert_eq!(*r[2], iso("berth1"));
        assert_eq!(
            *r[3],
            vec![
                m("==", meta("iifname"), json!("berth1")),
                m("!=", meta("oifname"), json!("berth1")),
                json!({"drop": null}),
            ]
        );
        assert_eq!(
            *r[4],
            vec![
                m("==", meta("oifname"), json!("berth1")),
                m("!=", meta("iifname"), json!("berth1")),
                json!({"drop": null}),
            ]
        );
        assert_eq!(r.len(), 5);
    }

    fn rejected(r: &Ruleset, needle: &str) {
        let e = validate(r).expect_err("must be rejected").to_string();
        assert!(e.contains(needle), "{e:?} should mention {needle:?}");
    }

    #[test]
    fn validation() {
        validate(&sample()).unwrap();
        validate(&Ruleset::default()).unwrap();

        let mut r = sample();
        r.networks[0].bridge = "berth-with-a-long-name".into();
        rejected(&r, "berth-with-a-long-name");
        r.networks[0].bridge = "berth\"; drop".into();
        rejected(&r, "1-15 characters");
        r.networks[0].bridge = "docker0".into();
        rejected(&r, "does not start with the bridge prefix");
        r.networks[0].bridge = "berth1".into();
        rejected(&r, "two networks use it");

        let mut r = sample();
        r.bridge_prefix = String::new();
        rejected(&r, "bridge prefix");
        r.bridge_prefix = "b*".into();
        rejected(&r, "bridge prefix");

        let mut r = sample();
        r.ports[0].host_ip = Some("::1".parse().unwrap());
        rejected(&r, "different families");
        let mut r = sample();
        r.ports[0].bridge = "".into();
        rejected(&r, "port bridge");
        let mut r = sample();
        r.ports[0].host_port = 0;
        rejected(&r, "port 0");
        let mut r = sample();
        r.ports[0].container_ip = "0.0.0.0".parse().unwrap();
        rejected(&r, "unicast");

        // The same port twice, or once for all addresses and once for one.
        let mut r = sample();
        r.ports
            .push(port(None, 8080, "10.88.0.9", 81, Proto::Tcp, "berth0"));
        rejected(&r, "8080/tcp");
        let mut r = sample();
        r.ports.push(port(
            Some("192.0.2.7"),
            8080,
            "10.88.0.9",
            81,
            Proto::Tcp,
            "berth0",
        ));
        rejected(&r, "already published");
        let mut r = sample();
        r.ports
            .push(port(None, 5353, "10.88.0.9", 53, Proto::Udp, "berth0"));
        rejected(&r, "already published");
        // Other protocol, other family or other host address: fine.
        let mut r = sample();
        r.ports
            .push(port(None, 8080, "10.88.0.9", 81, Proto::Udp, "berth0"));
        r.ports
            .push(port(None, 8080, "fd00:88::9", 81, Proto::Tcp, "berth0"));
        r.ports.push(port(
            Some("192.0.2.2"),
            5353,
            "10.88.0.9",
            53,
            Proto::Udp,
            "berth0",
        ));
        validate(&r).unwrap();

        // Ports alone need no prefix (no isolation rules are made).
        let r = Ruleset {
            ports: vec![port(None, 1, "10.0.0.2", 1, Proto::Tcp, "veth0")],
            ..Ruleset::default()
        };
        validate(&r).unwrap();
    }
}
