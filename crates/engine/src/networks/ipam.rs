//! Address management as plain functions: subnets chosen so they do not
//! clash with the host's routes or other networks, the lowest free address
//! of a subnet, MACs derived from addresses. The engine calls these inside
//! one SQLite write transaction, so concurrent allocations never collide.

use std::collections::BTreeSet;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use ipnet::{IpNet, Ipv4Net, Ipv6Net};

use super::NetworkError;

/// Parses a `--subnet` value: a network address with its prefix length
/// (`10.90.0.0/24`), leaving room for a gateway and one container.
pub fn parse_subnet(s: &str) -> Result<IpNet, NetworkError> {
    let bad = |why: &str| NetworkError::Invalid {
        what: "--subnet",
        value: s.into(),
        why: why.into(),
    };
    let net: IpNet = s
        .parse()
        .map_err(|_| bad("expected an address with a prefix length, e.g. 10.90.0.0/24"))?;
    if net.trunc() != net {
        return Err(bad(&format!(
            "host bits are set; did you mean {}?",
            net.trunc()
        )));
    }
    let max = match net {
        IpNet::V4(_) => 30,
        IpNet::V6(_) => 126,
    };
    if net.prefix_len() > max {
        return Err(bad(&format!(
            "the prefix must be /{max} or shorter to hold a gateway and containers"
        )));
    }
    Ok(net)
}

/// The first host address (Docker's default gateway).
pub fn first_host(net: IpNet) -> IpAddr {
    match net {
        IpNet::V4(n) => IpAddr::V4(Ipv4Addr::from(u32::from(n.network()) + 1)),
        IpNet::V6(n) => IpAddr::V6(Ipv6Addr::from(u128::from(n.network()) + 1)),
    }
}

/// Whether `ip` is a usable host address of `net` (not the network or
/// broadcast address).
pub fn is_host_of(net: IpNet, ip: IpAddr) -> bool {
    if !net.contains(&ip) {
        return false;
    }
    match (net, ip) {
        (IpNet::V4(n), IpAddr::V4(a)) => {
            n.prefix_len() >= 31 || (a != n.network() && a != n.broadcast())
        }
        (IpNet::V6(n), IpAddr::V6(a)) => a != n.network(),
        _ => false,
    }
}

/// The lowest free host address of `net`: not the gateway, not in `used`.
pub fn next_free(net: IpNet, gateway: IpAddr, used: &BTreeSet<IpAddr>) -> Option<IpAddr> {
    let free = |a: &IpAddr| *a != gateway && !used.contains(a);
    match net {
        IpNet::V4(n) => n.hosts().map(IpAddr::V4).find(free),
        // A v6 subnet is huge: look at a bounded window above the
        // network address (enough for any host's containers).
        IpNet::V6(n) => {
            let base = u128::from(n.network());
            let size = if n.prefix_len() == 0 {
                u128::MAX
            } else {
                (1u128 << (128 - n.prefix_len())) - 1
            };
            (1..size.min(1 << 24))
                .map(|i| IpAddr::V6(Ipv6Addr::from(base + i)))
                .find(free)
        }
    }
}

/// Docker's MAC scheme: 02:42 and the four bytes of the IPv4 address
/// (locally administered, unique within a network).
pub fn mac_for(ip: Ipv4Addr) -> [u8; 6] {
    let o = ip.octets();
    [0x02, 0x42, o[0], o[1], o[2], o[3]]
}

/// `aa:bb:...` text of a MAC.
pub fn mac_text(mac: [u8; 6]) -> String {
    mac.iter()
        .map(|b| format!("{b:02x}"))
        .collect::<Vec<_>>()
        .join(":")
}

/// The IPv4 routes of `/proc/net/route` (destination/mask), without the
/// default route.
pub fn routes_v4(text: &str) -> Vec<Ipv4Net> {
    let hex = |s: &str| {
        u32::from_str_radix(s, 16)
            .ok()
            .map(|v| Ipv4Addr::from(v.to_be()))
    };
    text.lines()
        .skip(1)
        .filter_map(|l| {
            let f: Vec<&str> = l.split_whitespace().collect();
            let dest = hex(f.get(1)?)?;
            let mask = hex(f.get(7)?)?;
            let prefix = u32::from(mask).leading_ones() as u8;
            (prefix > 0)
                .then(|| Ipv4Net::new(dest, prefix).ok())
                .flatten()
        })
        .collect()
}

/// Candidate subnets in order: the default network gets a /16 from
/// 10.88.0.0 upwards, user networks /24s from 10.89.0.0 upwards.
fn candidates(default: bool) -> Box<dyn Iterator<Item = Ipv4Net>> {
    if default {
        Box::new((88u8..=127).map(|b| Ipv4Net::new(Ipv4Addr::new(10, b, 0, 0), 16).expect("valid")))
    } else {
        Box::new((89u8..=127).flat_map(|b| {
            (0u8..=255).map(move |c| Ipv4Net::new(Ipv4Addr::new(10, b, c, 0), 24).expect("valid"))
        }))
    }
}

fn overlaps(a: IpNet, b: IpNet) -> bool {
    a.contains(&b.network()) || b.contains(&a.network())
}

/// The first candidate subnet that overlaps none of `taken` (the host's
/// routes and the other networks' subnets).
pub fn pick_subnet(default: bool, taken: &[IpNet]) -> Option<IpNet> {
    candidates(default)
        .map(IpNet::V4)
        .find(|c| !taken.iter().any(|t| overlaps(*c, *t)))
}

/// A v6 network made from a unique-local prefix derived from the
/// network's ID (fd00::/8 + 40 bits), /64.
pub fn ula_subnet(id: &str) -> IpNet {
    let hex: String = id
        .chars()
        .filter(|c| c.is_ascii_hexdigit())
        .take(10)
        .collect();
    let g = u64::from_str_radix(&format!("{hex:0<10}"), 16).unwrap_or(0);
    let base: u128 = (0xfdu128 << 120) | ((g as u128) << 80);
    IpNet::V6(Ipv6Net::new(Ipv6Addr::from(base), 64).expect("valid prefix"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn subnets_parse_strictly() {
        assert_eq!(
            parse_subnet("10.90.0.0/24").unwrap().to_string(),
            "10.90.0.0/24"
        );
        assert!(parse_subnet("10.90.0.1/24")
            .unwrap_err()
            .to_string()
            .contains("10.90.0.0/24"));
        assert!(parse_subnet("10.90.0.0/31").is_err());
        assert!(parse_subnet("nonsense").is_err());
        assert!(parse_subnet("fd00:1::/64").is_ok());
    }

    #[test]
    fn allocation_skips_gateway_used_and_broadcast() {
        let net = parse_subnet("10.90.0.0/30").unwrap();
        let gw = first_host(net);
        assert_eq!(gw.to_string(), "10.90.0.1");
        let mut used = BTreeSet::new();
        let a = next_free(net, gw, &used).unwrap();
        assert_eq!(a.to_string(), "10.90.0.2");
        used.insert(a);
        assert_eq!(next_free(net, gw, &used), None, ".3 is the broadcast");
        assert!(!is_host_of(net, "10.90.0.3".parse().unwrap()));
        assert!(!is_host_of(net, "10.90.0.0".parse().unwrap()));
        assert!(is_host_of(net, "10.90.0.2".parse().unwrap()));
        let v6 = parse_subnet("fd00:1::/64").unwrap();
        let gw6 = first_host(v6);
        assert_eq!(
            next_free(v6, gw6, &BTreeSet::new()).unwrap().to_string(),
            "fd00:1::2"
        );
    }

    #[test]
    fn subnets_avoid_routes_and_networks() {
        let routes =
            "Iface\tDestination\tGateway \tFlags\tRefCnt\tUse\tMetric\tMask\t\tMTU\tWindow\tIRTT\n\
eth0\t00000000\t0101A8C0\t0003\t0\t0\t0\t00000000\t0\t0\t0\n\
eth0\t0000580A\t00000000\t0001\t0\t0\t0\t0000FFFF\t0\t0\t0\n";
        let r = routes_v4(routes);
        assert_eq!(r, vec!["10.88.0.0/16".parse::<Ipv4Net>().unwrap()]);
        let taken: Vec<IpNet> = r.into_iter().map(IpNet::V4).collect();
        assert_eq!(
            pick_subnet(true, &taken).unwrap().to_string(),
            "10.89.0.0/16"
        );
        let mut taken2 = taken.clone();
        taken2.push("10.89.0.0/24".parse().unwrap());
        assert_eq!(
            pick_subnet(false, &taken2).unwrap().to_string(),
            "10.89.1.0/24"
        );
    }

    #[test]
    fn macs_and_ula() {
        assert_eq!(
            mac_text(mac_for(Ipv4Addr::new(10, 88, 0, 2))),
            "02:42:0a:58:00:02"
        );
        let u = ula_subnet("abcdef0123456789");
        assert_eq!(u.to_string(), "fdab:cdef:123::/64");
    }
}
