//! Checks of a [`Ruleset`] before it is rendered.

use std::collections::HashSet;
use std::net::IpAddr;

use crate::error::Result;

use super::{host_addr, invalid, PortRule, Proto, Ruleset, IFNAME_MAX};

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
