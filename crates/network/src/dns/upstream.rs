//! Forwarding a query to the upstream resolvers over UDP or TCP.

use std::io::{Read, Write};
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr, TcpStream, UdpSocket};
use std::time::Instant;

use hickory_proto::op::ResponseCode;

use super::UPSTREAM_TIMEOUT;

/// Whether `b` is a response with id `id`.
fn is_response_to(b: &[u8], id: u16) -> bool {
    b.len() >= 12 && u16::from_be_bytes([b[0], b[1]]) == id && b[2] & 0x80 != 0
}

/// An upstream answer that says the upstream could not help, so the next
/// one is worth asking.
fn is_failure(b: &[u8]) -> bool {
    b.get(3).is_some_and(|flags| {
        let rcode = ResponseCode::from_low(flags & 0x0f);
        rcode == ResponseCode::ServFail || rcode == ResponseCode::Refused
    })
}

fn unspecified_for(up: &SocketAddr) -> SocketAddr {
    match up {
        SocketAddr::V4(_) => SocketAddr::new(IpAddr::V4(Ipv4Addr::UNSPECIFIED), 0),
        SocketAddr::V6(_) => SocketAddr::new(IpAddr::V6(Ipv6Addr::UNSPECIFIED), 0),
    }
}

/// One query to one upstream over UDP; the answer if one came in time.
fn exchange_udp(query: &[u8], id: u16, up: SocketAddr) -> Option<Vec<u8>> {
    let sock = UdpSocket::bind(unspecified_for(&up)).ok()?;
    sock.connect(up).ok()?;
    sock.send(query).ok()?;
    let deadline = Instant::now() + UPSTREAM_TIMEOUT;
    let mut buf = vec![0u8; 65535];
    loop {
        let left = deadline.checked_duration_since(Instant::now())?;
        if left.is_zero() {
            return None;
        }
        sock.set_read_timeout(Some(left)).ok()?;
        let n = sock.recv(&mut buf).ok()?;
        let reply = buf.get(..n)?;
        if is_response_to(reply, id) {
            return Some(reply.to_vec());
        }
    }
}

/// Reads one length-prefixed DNS message from a TCP stream.
pub(super) fn read_tcp_message(stream: &mut TcpStream) -> Option<Vec<u8>> {
    let mut len = [0u8; 2];
    stream.read_exact(&mut len).ok()?;
    let mut msg = vec![0u8; usize::from(u16::from_be_bytes(len))];
    stream.read_exact(&mut msg).ok()?;
    Some(msg)
}

/// Writes one length-prefixed DNS message to a TCP stream.
pub(super) fn write_tcp_message(stream: &mut TcpStream, msg: &[u8]) -> Option<()> {
    let len = u16::try_from(msg.len()).ok()?;
    let mut out = Vec::with_capacity(msg.len() + 2);
    out.extend_from_slice(&len.to_be_bytes());
    out.extend_from_slice(msg);
    stream.write_all(&out).ok()
}

/// One query to one upstream over TCP.
fn exchange_tcp(query: &[u8], id: u16, up: SocketAddr) -> Option<Vec<u8>> {
    let mut stream = TcpStream::connect_timeout(&up, UPSTREAM_TIMEOUT).ok()?;
    stream.set_read_timeout(Some(UPSTREAM_TIMEOUT)).ok()?;
    stream.set_write_timeout(Some(UPSTREAM_TIMEOUT)).ok()?;
    write_tcp_message(&mut stream, query)?;
    let reply = read_tcp_message(&mut stream)?;
    is_response_to(&reply, id).then_some(reply)
}

/// Sends `query` to each upstream in turn (skipping the resolver's own
/// address) until one answers with something other than SERVFAIL or
/// REFUSED; such an answer is relayed only if no upstream does better.
pub(super) fn forward(
    query: &[u8],
    id: u16,
    upstreams: &[SocketAddr],
    own: &[SocketAddr],
    tcp: bool,
) -> Option<Vec<u8>> {
    let mut fallback = None;
    for up in upstreams {
        if own.contains(up) {
            continue;
        }
        let reply = if tcp {
            exchange_tcp(query, id, *up)
        } else {
            exchange_udp(query, id, *up)
        };
        match reply {
            Some(r) if is_failure(&r) => fallback = Some(r),
            Some(r) => return Some(r),
            None => tracing::debug!("dns upstream {up} did not answer"),
        }
    }
    fallback
}
