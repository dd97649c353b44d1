//! slirp4netns' API socket (slirp4netns(1) "API SOCKET"): published
//! ports added to, listed in and removed from a running helper. Used for
//! a container's own helper ([`crate::usermode`]) and for the helper of
//! a rootless engine's network namespace, whose forwards change while it
//! runs (containers on its bridges come and go).

use std::io::{Read, Write};
use std::net::{IpAddr, Ipv4Addr};
use std::os::unix::net::UnixStream;
use std::path::Path;
use std::time::Duration;

use serde::Deserialize;

use crate::usermode::{Forward, Proto, UsermodeError};

const M: &str = "slirp4netns";

#[derive(Deserialize)]
struct ApiReply {
    #[serde(rename = "return")]
    ret: Option<serde_json::Value>,
    error: Option<serde_json::Value>,
    /// `list_hostfwd` (slirp4netns 1.2) answers `{"entries": [...]}`
    /// without a `return` wrapper.
    entries: Option<serde_json::Value>,
}

/// One request per connection, the reply read to end of file.
fn api_call(sock: &Path, req: &serde_json::Value) -> std::io::Result<ApiReply> {
    let mut s = UnixStream::connect(sock)?;
    s.set_read_timeout(Some(Duration::from_secs(5)))?;
    s.write_all(req.to_string().as_bytes())?;
    s.shutdown(std::net::Shutdown::Write)?;
    let mut out = String::new();
    s.read_to_string(&mut out)?;
    serde_json::from_str(&out).map_err(|e| std::io::Error::new(std::io::ErrorKind::InvalidData, e))
}

/// The reply's `return` value, or the error it carries.
fn call(
    sock: &Path,
    what: &str,
    req: &serde_json::Value,
) -> Result<serde_json::Value, UsermodeError> {
    let publish = |why: String| UsermodeError::Publish {
        mode: M,
        what: what.to_string(),
        why,
    };
    let reply =
        api_call(sock, req).map_err(|e| publish(format!("API socket {}: {e}", sock.display())))?;
    let ret = reply
        .ret
        .or_else(|| reply.entries.map(|e| serde_json::json!({ "entries": e })));
    match (ret, reply.error) {
        (Some(r), None) => Ok(r),
        (_, Some(e)) => Err(publish(
            e["desc"]
                .as_str()
                .map(String::from)
                .unwrap_or_else(|| e.to_string()),
        )),
        (None, None) => Err(publish("an empty reply".into())),
    }
}

/// Publishes `f`: slirp4netns listens on `f.host_ip:f.host_port` (every
/// IPv4 address when `None`) and forwards to `guest:f.container_port`.
pub fn add_hostfwd(sock: &Path, guest: Ipv4Addr, f: &Forward) -> Result<(), UsermodeError> {
    let host = f
        .host_ip
        .map(|i| i.to_string())
        .unwrap_or_else(|| "0.0.0.0".into());
    let what = format!("{host}:{}/{}", f.host_port, f.proto.as_str());
    let req = serde_json::json!({
        "execute": "add_hostfwd",
        "arguments": {
            "proto": f.proto.as_str(),
            "host_addr": host,
            "host_port": f.host_port,
            "guest_addr": guest.to_string(),
            "guest_port": f.container_port,
        }
    });
    call(sock, &what, &req).map(drop)
}

/// A forward the helper has: its API id and what it forwards.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HostFwd {
    pub id: u64,
    pub forward: Forward,
}

/// The helper's forwards (`list_hostfwd`).
pub fn list_hostfwd(sock: &Path) -> Result<Vec<HostFwd>, UsermodeError> {
    let r = call(
        sock,
        "(list)",
        &serde_json::json!({"execute": "list_hostfwd"}),
    )?;
    Ok(parse_entries(&r))
}

fn parse_entries(r: &serde_json::Value) -> Vec<HostFwd> {
    let Some(entries) = r["entries"].as_array() else {
        return Vec::new();
    };
    entries
        .iter()
        .filter_map(|e| {
            let proto = match e["proto"].as_str()? {
                "tcp" => Proto::Tcp,
                "udp" => Proto::Udp,
                _ => return None,
            };
            let host_ip: IpAddr = e["host_addr"].as_str()?.parse().ok()?;
            Some(HostFwd {
                id: e["id"].as_u64()?,
                forward: Forward {
                    proto,
                    host_ip: (!host_ip.is_unspecified()).then_some(host_ip),
                    host_port: u16::try_from(e["host_port"].as_u64()?).ok()?,
                    container_port: u16::try_from(e["guest_port"].as_u64()?).ok()?,
                },
            })
        })
        .collect()
}

/// Ends forward `id` (`remove_hostfwd`).
pub fn remove_hostfwd(sock: &Path, id: u64) -> Result<(), UsermodeError> {
    call(
        sock,
        &format!("(remove forward {id})"),
        &serde_json::json!({"execute": "remove_hostfwd", "arguments": {"id": id}}),
    )
    .map(drop)
}

/// Makes the helper's forwards exactly `want` (each to `guest`): the
/// ones no longer wanted go first (their host ports may be reused), then
/// the missing ones are added. Stops at the first error.
pub fn sync_hostfwd(sock: &Path, guest: Ipv4Addr, want: &[Forward]) -> Result<(), UsermodeError> {
    let have = list_hostfwd(sock)?;
    for h in &have {
        if !want.contains(&h.forward) {
            remove_hostfwd(sock, h.id)?;
        }
    }
    for f in want {
        if !have.iter().any(|h| h.forward == *f) {
            add_hostfwd(sock, guest, f)?;
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn list_entries_parse() {
        let r = serde_json::json!({"entries": [
            {"id": 1, "proto": "tcp", "host_addr": "0.0.0.0", "host_port": 8080,
             "guest_addr": "10.0.2.100", "guest_port": 8080},
            {"id": 2, "proto": "udp", "host_addr": "127.0.0.1", "host_port": 53,
             "guest_addr": "10.0.2.100", "guest_port": 5353},
            {"id": 3, "proto": "sctp", "host_addr": "0.0.0.0", "host_port": 1,
             "guest_addr": "10.0.2.100", "guest_port": 1}
        ]});
        let e = parse_entries(&r);
        assert_eq!(e.len(), 2);
        assert_eq!(
            e[0],
            HostFwd {
                id: 1,
                forward: Forward {
                    proto: Proto::Tcp,
                    host_ip: None,
                    host_port: 8080,
                    container_port: 8080
                }
            }
        );
        assert_eq!(e[1].forward.host_ip, Some("127.0.0.1".parse().unwrap()));
        assert_eq!(e[1].forward.container_port, 5353);
    }
}
