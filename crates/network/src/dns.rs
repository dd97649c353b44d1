//! The per-network DNS resolver: answers A/AAAA (and PTR) queries for the
//! containers of one bridge network from a records file the engine keeps,
//! forwards every other query to the host's upstream resolvers, and the
//! resolv.conf helpers that go with it.
//!
//! The resolver runs in its own process (the engine spawns it and calls
//! [`serve`] with sockets bound on the network's gateway). It is plain
//! blocking std networking: one poll loop for the sockets plus a few short
//! threads for forwarded queries and TCP clients, all joined before
//! [`serve`] returns.
//!
//! Behaviour, per query (class IN):
//! - a name in the records (case-insensitive, trailing dot ignored, also as
//!   `<name>.<domain>`): authoritative answer with its addresses of the
//!   asked type, TTL 0; no address of that type: NOERROR with no answer;
//! - an unknown single-label name, or an unknown name under the network's
//!   domain: NXDOMAIN, never forwarded;
//! - a reverse (PTR) query for a container address: its names;
//! - anything else: the raw query (client id kept) goes to each upstream in
//!   turn with a 2 s timeout; the first answer is relayed, SERVFAIL if none.
//!
//! Malformed packets and responses are ignored.

mod answer;
mod records;
mod resolv;
mod upstream;

use answer::{decide, encode, servfail, udp_limit, Action};
pub use records::Records;
pub use resolv::{parse_resolv_conf, render_resolv_conf, upstreams_from_host, ResolvConf};
use upstream::{forward, read_tcp_message, write_tcp_message};

use std::io::ErrorKind;
use std::net::{SocketAddr, TcpListener, TcpStream, UdpSocket};
use std::os::fd::AsFd;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime};

use hickory_proto::op::Message;

use crate::error::{NetError, Result};

/// The DNS domain of container names on a berth network, as Podman's
/// `dns.podman`: `web` is also `web.dns.berth`.
pub const DEFAULT_DOMAIN: &str = "dns.berth";

/// How long one upstream gets to answer a forwarded query.
pub const UPSTREAM_TIMEOUT: Duration = Duration::from_secs(2);

/// How often (at most) the records file is checked for changes.
const RELOAD_INTERVAL: Duration = Duration::from_millis(100);
/// Idle time after which a TCP client is dropped.
const TCP_IDLE: Duration = Duration::from_secs(2);
/// Forwarded queries in flight at once; more are dropped (clients retry).
const MAX_FORWARDS: usize = 64;
/// TCP clients served at once; more are closed.
const MAX_TCP_CLIENTS: usize = 16;
/// UDP datagrams handled per poll round before the loop looks at `stop`
/// and the records file again.
const UDP_BATCH: usize = 64;
/// Largest UDP answer sent to a client that announced EDNS.
const MAX_UDP_PAYLOAD: u16 = 1232;

/// Identity of the records file, to notice a rewrite.
#[derive(PartialEq, Eq, Clone, Copy)]
struct FileId {
    dev: u64,
    ino: u64,
    len: u64,
    mtime: Option<SystemTime>,
}

enum Watch {
    Same,
    Changed(Records),
    Gone,
}

struct RecordsFile {
    path: PathBuf,
    id: Option<FileId>,
}

impl RecordsFile {
    fn stat(&self) -> std::io::Result<FileId> {
        let m = std::fs::metadata(&self.path)?;
        Ok(FileId {
            dev: m.dev(),
            ino: m.ino(),
            len: m.len(),
            mtime: m.modified().ok(),
        })
    }

    /// Looks at the file; reads it again if it changed. A file that does
    /// not parse keeps the records already loaded.
    fn check(&mut self) -> Watch {
        let id = match self.stat() {
            Ok(id) => id,
            Err(e) if e.kind() == ErrorKind::NotFound => return Watch::Gone,
            Err(e) => {
                tracing::warn!("dns records file {}: stat: {e}", self.path.display());
                return Watch::Same;
            }
        };
        if self.id == Some(id) {
            return Watch::Same;
        }
        match Records::read(&self.path) {
            Ok(r) => {
                self.id = Some(id);
                Watch::Changed(r)
            }
            Err(NetError::DnsRecords { source, .. }) if source.kind() == ErrorKind::NotFound => {
                Watch::Gone
            }
            Err(e) => {
                tracing::warn!("{e}; keeping the records already loaded");
                Watch::Same
            }
        }
    }
}

/// State shared by the poll loop and its helper threads.
struct Shared<'a> {
    udp: &'a UdpSocket,
    records: Mutex<Arc<Records>>,
    own: Vec<SocketAddr>,
    stop: &'a AtomicBool,
    forwards: AtomicUsize,
    tcp_clients: AtomicUsize,
}

impl Shared<'_> {
    fn records(&self) -> Arc<Records> {
        Arc::clone(&self.records.lock().unwrap_or_else(|e| e.into_inner()))
    }
}

/// Decrements a counter when dropped.
struct Slot<'a>(&'a AtomicUsize);

impl<'a> Slot<'a> {
    fn take(counter: &'a AtomicUsize, max: usize) -> Option<Slot<'a>> {
        if counter.fetch_add(1, Ordering::SeqCst) >= max {
            counter.fetch_sub(1, Ordering::SeqCst);
            return None;
        }
        Some(Slot(counter))
    }
}

impl Drop for Slot<'_> {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::SeqCst);
    }
}

fn handle_udp<'s, 'e>(
    scope: &'s std::thread::Scope<'s, 'e>,
    shared: &'e Shared<'e>,
    packet: &[u8],
    peer: SocketAddr,
) {
    let Ok(req) = Message::from_vec(packet) else {
        return;
    };
    let records = shared.records();
    let action = decide(&req, &records.view_for(peer.ip()));
    match action {
        Action::Ignore => {}
        Action::Reply(m) => {
            if let Some(bytes) = encode(&m, udp_limit(&req)) {
                let _ = shared.udp.send_to(&bytes, peer);
            }
        }
        Action::Forward => {
            let Some(slot) = Slot::take(&shared.forwards, MAX_FORWARDS) else {
                tracing::debug!("dns: too many forwarded queries in flight; dropping one");
                return;
            };
            let query = packet.to_vec();
            let spawned = std::thread::Builder::new()
                .name("dns-forward".into())
                .spawn_scoped(scope, move || {
                    let _slot = slot;
                    let answer = forward(
                        &query,
                        req.metadata.id,
                        &records.upstreams,
                        &shared.own,
                        false,
                    )
                    .or_else(|| servfail(&req));
                    if let Some(bytes) = answer {
                        let _ = shared.udp.send_to(&bytes, peer);
                    }
                });
            if let Err(e) = spawned {
                tracing::warn!("dns: cannot start a forwarding thread: {e}");
            }
        }
    }
}

/// Serves one TCP client: length-prefixed queries until it closes, goes
/// idle or the resolver stops.
fn serve_tcp_client(shared: &Shared<'_>, mut stream: TcpStream) {
    if stream.set_nonblocking(false).is_err()
        || stream.set_read_timeout(Some(TCP_IDLE)).is_err()
        || stream.set_write_timeout(Some(TCP_IDLE)).is_err()
    {
        return;
    }
    while !shared.stop.load(Ordering::SeqCst) {
        let Some(packet) = read_tcp_message(&mut stream) else {
            return;
        };
        let Ok(req) = Message::from_vec(&packet) else {
            return;
        };
        let records = shared.records();
        let action = match stream.peer_addr() {
            Ok(peer) => decide(&req, &records.view_for(peer.ip())),
            Err(_) => decide(&req, &records),
        };
        let answer = match action {
            Action::Ignore => return,
            Action::Reply(m) => encode(&m, usize::from(u16::MAX)),
            Action::Forward => forward(
                &packet,
                req.metadata.id,
                &records.upstreams,
                &shared.own,
                true,
            )
            .or_else(|| servfail(&req)),
        };
        let Some(answer) = answer else {
            return;
        };
        if write_tcp_message(&mut stream, &answer).is_none() {
            return;
        }
    }
}

fn accept_tcp<'s, 'e>(
    scope: &'s std::thread::Scope<'s, 'e>,
    shared: &'e Shared<'e>,
    listener: &TcpListener,
) {
    loop {
        let stream = match listener.accept() {
            Ok((stream, _)) => stream,
            Err(e) if e.kind() == ErrorKind::WouldBlock => return,
            Err(e) if e.kind() == ErrorKind::Interrupted => continue,
            Err(e) => {
                tracing::debug!("dns: accept: {e}");
                return;
            }
        };
        let Some(slot) = Slot::take(&shared.tcp_clients, MAX_TCP_CLIENTS) else {
            continue; // dropping `stream` closes it
        };
        let spawned = std::thread::Builder::new()
            .name("dns-tcp".into())
            .spawn_scoped(scope, move || {
                let _slot = slot;
                serve_tcp_client(shared, stream);
            });
        if let Err(e) = spawned {
            tracing::warn!("dns: cannot start a TCP client thread: {e}");
        }
    }
}

/// Serves DNS on already-bound sockets until `stop` becomes true or the
/// records file disappears (the engine removes it when the network has no
/// running container); both end with `Ok(())`, as does a records file
/// that is missing at the start. A records file that cannot be read or
/// parsed at the start, or a failing poll, is an error. The file is read again when its inode,
/// size or mtime changes (checked every 100 ms); a rewrite that does not
/// parse keeps the previous records. Threads still forwarding are joined
/// before returning (at most 2 s per upstream).
pub fn serve(
    udp: UdpSocket,
    tcp: Option<TcpListener>,
    records_path: &Path,
    stop: &AtomicBool,
) -> Result<()> {
    let addr = udp
        .local_addr()
        .map(|a| a.to_string())
        .unwrap_or_else(|_| "an unbound socket".to_string());
    let sock_err = |op: &'static str| {
        let addr = addr.clone();
        move |source| NetError::DnsSocket { op, addr, source }
    };
    udp.set_nonblocking(true)
        .map_err(sock_err("make the UDP socket non-blocking"))?;
    if let Some(l) = &tcp {
        l.set_nonblocking(true)
            .map_err(sock_err("make the TCP listener non-blocking"))?;
    }
    let mut file = RecordsFile {
        path: records_path.to_path_buf(),
        id: None,
    };
    let first = match file.stat() {
        Err(e) if e.kind() == ErrorKind::NotFound => return Ok(()),
        _ => Records::read(records_path),
    };
    let first = match first {
        Ok(r) => r,
        Err(NetError::DnsRecords { source, .. }) if source.kind() == ErrorKind::NotFound => {
            return Ok(())
        }
        Err(e) => return Err(e),
    };
    file.id = file.stat().ok();
    let own = [
        udp.local_addr().ok(),
        tcp.as_ref().and_then(|l| l.local_addr().ok()),
    ]
    .into_iter()
    .flatten()
    .collect();
    let shared = Shared {
        udp: &udp,
        records: Mutex::new(Arc::new(first)),
        own,
        stop,
        forwards: AtomicUsize::new(0),
        tcp_clients: AtomicUsize::new(0),
    };
    let shared = &shared;
    std::thread::scope(|scope| -> Result<()> {
        let mut last_check = Instant::now();
        let mut buf = vec![0u8; 4096];
        loop {
            if stop.load(Ordering::SeqCst) {
                return Ok(());
            }
            if last_check.elapsed() >= RELOAD_INTERVAL {
                last_check = Instant::now();
                match file.check() {
                    Watch::Same => {}
                    Watch::Gone => return Ok(()),
                    Watch::Changed(r) => {
                        *shared.records.lock().unwrap_or_else(|e| e.into_inner()) = Arc::new(r);
                    }
                }
            }
            let mut fds = vec![nix::poll::PollFd::new(
                udp.as_fd(),
                nix::poll::PollFlags::POLLIN,
            )];
            if let Some(l) = &tcp {
                fds.push(nix::poll::PollFd::new(
                    l.as_fd(),
                    nix::poll::PollFlags::POLLIN,
                ));
            }
            match nix::poll::poll(&mut fds, 100u16) {
                Ok(_) | Err(nix::Error::EINTR) => {}
                Err(e) => return Err(sock_err("poll")(std::io::Error::from(e))),
            }
            drop(fds);
            for _ in 0..UDP_BATCH {
                match udp.recv_from(&mut buf) {
                    Ok((n, peer)) => {
                        if let Some(packet) = buf.get(..n) {
                            handle_udp(scope, shared, packet, peer);
                        }
                    }
                    Err(e) if e.kind() == ErrorKind::WouldBlock => break,
                    Err(e) if e.kind() == ErrorKind::Interrupted => continue,
                    // ICMP errors from earlier sends surface here; keep going.
                    Err(e) => {
                        tracing::debug!("dns: receive: {e}");
                        break;
                    }
                }
            }
            if let Some(l) = &tcp {
                accept_tcp(scope, shared, l);
            }
        }
    })
}
