//! `-p/--publish` as plain values: Docker's
//! `[hostIP:][hostPort:]containerPort[/proto]` with port ranges, and the
//! `berth port` lines.

use std::net::IpAddr;

use serde::{Deserialize, Serialize};

use super::NetworkError;

/// A transport protocol of a published port.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
pub enum Proto {
    Tcp,
    Udp,
}

impl Proto {
    /// `tcp` / `udp`.
    pub fn as_str(self) -> &'static str {
        match self {
            Proto::Tcp => "tcp",
            Proto::Udp => "udp",
        }
    }
}

/// A published port as asked: `host_port` None = choose a free one.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PortRequest {
    pub proto: Proto,
    pub host_ip: Option<IpAddr>,
    pub host_port: Option<u16>,
    pub container_port: u16,
}

/// A published port as decided.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
pub struct PortMap {
    pub proto: Proto,
    pub host_ip: Option<IpAddr>,
    pub host_port: u16,
    pub container_port: u16,
}

impl PortMap {
    /// `80/tcp -> 0.0.0.0:8080` (the `port` command's line).
    pub fn line(&self) -> String {
        let host = match self.host_ip {
            Some(IpAddr::V6(a)) => format!("[{a}]"),
            Some(a) => a.to_string(),
            None => "0.0.0.0".into(),
        };
        format!(
            "{}/{} -> {host}:{}",
            self.container_port,
            self.proto.as_str(),
            self.host_port
        )
    }
}

fn bad(value: &str, why: impl Into<String>) -> NetworkError {
    NetworkError::Invalid {
        what: "--publish",
        value: value.into(),
        why: why.into(),
    }
}

fn range(value: &str, s: &str) -> Result<(u16, u16), NetworkError> {
    let one = |p: &str| -> Result<u16, NetworkError> {
        match p.parse::<u16>() {
            Ok(n) if n > 0 => Ok(n),
            _ => Err(bad(value, format!("{p:?} is not a port (1-65535)"))),
        }
    };
    match s.split_once('-') {
        Some((a, b)) => {
            let (a, b) = (one(a)?, one(b)?);
            if b < a {
                return Err(bad(value, format!("the range {s} is backwards")));
            }
            Ok((a, b))
        }
        None => {
            let p = one(s)?;
            Ok((p, p))
        }
    }
}

/// Parses one `-p` value into one request per port.
pub fn parse_publish(value: &str) -> Result<Vec<PortRequest>, NetworkError> {
    let (spec, proto) = match value.rsplit_once('/') {
        Some((s, "tcp")) => (s, Proto::Tcp),
        Some((s, "udp")) => (s, Proto::Udp),
        Some((_, p)) => return Err(bad(value, format!("unknown protocol {p:?} (tcp or udp)"))),
        None => (value, Proto::Tcp),
    };
    // An IPv6 host address is written in brackets: [::1]:8080:80.
    let (host_ip, rest) = if let Some(r) = spec.strip_prefix('[') {
        let (ip, rest) = r
            .split_once("]:")
            .ok_or_else(|| bad(value, "an IPv6 host address is written [addr]:port:port"))?;
        let ip: IpAddr = ip
            .parse()
            .map_err(|_| bad(value, format!("{ip:?} is not an IP address")))?;
        (Some(ip), rest)
    } else {
        let parts: Vec<&str> = spec.split(':').collect();
        match parts.len() {
            1 | 2 => (None, spec),
            3 => {
                let ip =
                    if parts[0].is_empty() {
                        None
                    } else {
                        Some(parts[0].parse::<IpAddr>().map_err(|_| {
                            bad(value, format!("{:?} is not an IP address", parts[0]))
                        })?)
                    };
                (ip, spec.split_once(':').expect("three parts").1)
            }
            _ => {
                return Err(bad(
                    value,
                    "expected [hostIP:][hostPort:]containerPort[/proto]",
                ))
            }
        }
    };
    let (host, container) = match rest.split_once(':') {
        Some((h, c)) => (if h.is_empty() { None } else { Some(h) }, c),
        None => (None, rest),
    };
    let (c0, c1) = range(value, container)?;
    let hosts = host.map(|h| range(value, h)).transpose()?;
    if let Some((h0, h1)) = hosts {
        if h1 - h0 != c1 - c0 && h0 != h1 {
            return Err(bad(value, "the host and container ranges differ in length"));
        }
    }
    Ok((c0..=c1)
        .enumerate()
        .map(|(i, cp)| PortRequest {
            proto,
            host_ip,
            host_port: hosts.map(|(h0, h1)| if h0 == h1 { h0 } else { h0 + i as u16 }),
            container_port: cp,
        })
        .collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn one(s: &str) -> PortRequest {
        let v = parse_publish(s).unwrap();
        assert_eq!(v.len(), 1, "{s}");
        v[0]
    }

    #[test]
    fn forms() {
        assert_eq!(
            one("80"),
            PortRequest {
                proto: Proto::Tcp,
                host_ip: None,
                host_port: None,
                container_port: 80
            }
        );
        assert_eq!(one("8080:80").host_port, Some(8080));
        assert_eq!(one("8080:80/udp").proto, Proto::Udp);
        let p = one("127.0.0.1:8080:80");
        assert_eq!(p.host_ip, Some("127.0.0.1".parse().unwrap()));
        assert_eq!(p.host_port, Some(8080));
        let p = one("127.0.0.1::80");
        assert_eq!((p.host_port, p.container_port), (None, 80));
        let p = one("[::1]:8080:80");
        assert_eq!(p.host_ip, Some("::1".parse().unwrap()));
        let r = parse_publish("8000-8002:80-82").unwrap();
        assert_eq!(r.len(), 3);
        assert_eq!((r[2].host_port, r[2].container_port), (Some(8002), 82));
    }

    #[test]
    fn errors_name_the_problem() {
        for (s, why) in [
            ("0", "not a port"),
            ("70000", "not a port"),
            ("80/sctp", "unknown protocol"),
            ("x.y:1:2", "not an IP"),
            ("1:2:3:4", "expected"),
            ("9-8", "backwards"),
            ("8000-8001:80-85", "differ"),
        ] {
            let e = parse_publish(s).unwrap_err().to_string();
            assert!(e.contains(why), "{s}: {e}");
        }
    }

    #[test]
    fn lines() {
        let p = PortMap {
            proto: Proto::Tcp,
            host_ip: None,
            host_port: 8080,
            container_port: 80,
        };
        assert_eq!(p.line(), "80/tcp -> 0.0.0.0:8080");
    }
}
