//! The rules of each chain, as nft JSON (libnftables-json(5)).

use ipnet::IpNet;
use serde_json::{json, Value};

use super::{host_addr, PortRule, Ruleset, TABLE_FAMILY, TABLE_NAME};

// ---- JSON building blocks (nft's JSON schema, libnftables-json(5)) ----

pub(super) fn table() -> Value {
    json!({"table": {"family": TABLE_FAMILY, "name": TABLE_NAME}})
}

pub(super) fn chain(name: &str, kind: &str, hook: &str, prio: i32) -> Value {
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

pub(super) fn matches(op: &str, left: Value, right: Value) -> Value {
    json!({"match": {"op": op, "left": left, "right": right}})
}

pub(super) fn meta(key: &str) -> Value {
    json!({"meta": {"key": key}})
}

pub(super) fn payload(protocol: &str, field: &str) -> Value {
    json!({"payload": {"protocol": protocol, "field": field}})
}

/// nft's name of an address family as a payload protocol / nat family.
pub(super) fn ip_proto(v6: bool) -> &'static str {
    if v6 {
        "ip6"
    } else {
        "ip"
    }
}

pub(super) fn nfproto(v6: bool) -> Value {
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
pub(super) fn dnat_rule(chain_name: &str, p: &PortRule) -> Value {
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

pub(super) fn postrouting_rules(r: &Ruleset) -> Vec<Value> {
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

pub(super) fn forward_rules(r: &Ruleset) -> Vec<Value> {
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
pub(super) fn raw_rules(r: &Ruleset) -> Vec<Value> {
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
