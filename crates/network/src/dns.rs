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

use std::collections::BTreeMap;
use std::io::{ErrorKind, Read, Write};
use std::net::{
    IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr, SocketAddrV6, TcpListener, TcpStream, UdpSocket,
};
use std::os::fd::AsFd;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime};

use hickory_proto::op::{Edns, Message, MessageType, OpCode, ResponseCode};
use hickory_proto::rr::rdata::{A, AAAA, PTR};
use hickory_proto::rr::{DNSClass, Name, RData, Record, RecordType};
use serde::{Deserialize, Serialize};

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

/// The records file of one network, written by the engine, read by the
/// resolver: container names and aliases with their addresses, where to
/// forward other queries, and the network's domain.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Records {
    /// Names (container names, aliases, short ids) and their addresses.
    #[serde(default)]
    pub names: BTreeMap<String, Vec<IpAddr>>,
    /// Upstream resolvers for every other name, tried in order.
    #[serde(default)]
    pub upstreams: Vec<SocketAddr>,
    /// The network's domain (without dots around it): names are also
    /// answered as `<name>.<domain>`, unknown names under it get NXDOMAIN.
    /// Empty: no domain.
    #[serde(default = "default_domain")]
    pub domain: String,
    /// Names only the client with this source address sees, besides
    /// [`Records::names`]: a container on several networks asks the
    /// resolver of its first one, which answers for the others too (as
    /// Podman's aardvark-dns does).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub scoped: BTreeMap<IpAddr, BTreeMap<String, Vec<IpAddr>>>,
}

fn default_domain() -> String {
    DEFAULT_DOMAIN.to_string()
}

impl Default for Records {
    fn default() -> Self {
        Records {
            names: BTreeMap::new(),
            upstreams: Vec::new(),
            domain: default_domain(),
            scoped: BTreeMap::new(),
        }
    }
}

fn records_err<'a>(
    op: &'static str,
    path: &'a Path,
) -> impl FnOnce(std::io::Error) -> NetError + 'a {
    move |source| NetError::DnsRecords {
        op,
        path: path.to_path_buf(),
        source,
    }
}

/// Lowercase, without the trailing dot.
fn normalize(name: &str) -> String {
    name.strip_suffix('.').unwrap_or(name).to_ascii_lowercase()
}

impl Records {
    /// Writes the records to `path` atomically: a temporary file in the
    /// same directory, synced, then renamed over `path`, so the resolver
    /// never reads half a file.
    pub fn write_atomic(&self, path: &Path) -> Result<()> {
        let json = serde_json::to_vec_pretty(self).map_err(|e| NetError::DnsRecordsFormat {
            path: path.to_path_buf(),
            source: e,
        })?;
        let name = path.file_name().ok_or_else(|| {
            records_err("write", path)(std::io::Error::new(
                ErrorKind::InvalidInput,
                "the path has no file name",
            ))
        })?;
        let mut tmp_name = std::ffi::OsString::from(".");
        tmp_name.push(name);
        static SEQ: AtomicUsize = AtomicUsize::new(0);
        let seq = SEQ.fetch_add(1, Ordering::Relaxed);
        tmp_name.push(format!(".tmp.{}.{seq}", std::process::id()));
        let tmp = path.with_file_name(tmp_name);
        let written = (|| -> Result<()> {
            let mut f = std::fs::File::create(&tmp)
                .map_err(records_err("create a temporary file", &tmp))?;
            f.write_all(&json).map_err(records_err("write", &tmp))?;
            f.sync_all().map_err(records_err("sync", &tmp))?;
            std::fs::rename(&tmp, path).map_err(records_err("rename the temporary file over", path))
        })();
        if written.is_err() {
            let _ = std::fs::remove_file(&tmp);
        }
        written
    }

    /// Reads a records file written by [`Records::write_atomic`].
    pub fn read(path: &Path) -> Result<Records> {
        let bytes = std::fs::read(path).map_err(records_err("read", path))?;
        serde_json::from_slice(&bytes).map_err(|source| NetError::DnsRecordsFormat {
            path: path.to_path_buf(),
            source,
        })
    }

    /// The records as `client` sees them: its [`Records::scoped`] names
    /// added (the network's own names first).
    pub fn view_for(&self, client: IpAddr) -> std::borrow::Cow<'_, Records> {
        let Some(extra) = self.scoped.get(&client) else {
            return std::borrow::Cow::Borrowed(self);
        };
        let mut view = self.clone();
        view.scoped.clear();
        for (name, addrs) in extra {
            let e = view.names.entry(name.clone()).or_default();
            for a in addrs {
                if !e.contains(a) {
                    e.push(*a);
                }
            }
        }
        std::borrow::Cow::Owned(view)
    }

    /// The addresses of `qname`: case-insensitive, trailing dot ignored,
    /// `<name>.<domain>` also matches `<name>`. Empty if unknown.
    pub fn lookup(&self, qname: &str) -> Vec<IpAddr> {
        self.find(qname).unwrap_or_default()
    }

    /// Whether `qname` is one of the network's names (it may have no
    /// address), with the same matching as [`Records::lookup`].
    pub fn contains(&self, qname: &str) -> bool {
        self.find(qname).is_some()
    }

    /// The fully qualified names (no trailing dot, lowercase) that have
    /// `addr`, for reverse lookups: short names get the domain appended.
    pub fn names_for(&self, addr: IpAddr) -> Vec<String> {
        let mut out: Vec<String> = Vec::new();
        for (name, addrs) in &self.names {
            if !addrs.contains(&addr) {
                continue;
            }
            let name = normalize(name);
            if name.is_empty() {
                continue;
            }
            let fqdn = if self.domain.is_empty() || name.contains('.') {
                name
            } else {
                format!("{name}.{}", normalize(&self.domain))
            };
            if !out.contains(&fqdn) {
                out.push(fqdn);
            }
        }
        out
    }

    /// Whether `qname` lies under the network's domain (or is it).
    fn in_domain(&self, qname: &str) -> bool {
        let domain = normalize(&self.domain);
        if domain.is_empty() {
            return false;
        }
        let q = normalize(qname);
        q == domain
            || q.strip_suffix(&domain)
                .is_some_and(|rest| rest.ends_with('.'))
    }

    fn get(&self, name: &str) -> Option<&Vec<IpAddr>> {
        self.names.get(name).or_else(|| {
            self.names
                .iter()
                .find(|(k, _)| normalize(k) == name)
                .map(|(_, v)| v)
        })
    }

    fn find(&self, qname: &str) -> Option<Vec<IpAddr>> {
        let q = normalize(qname);
        if q.is_empty() {
            return None;
        }
        let exact = self.get(&q);
        let domain = normalize(&self.domain);
        let short = if domain.is_empty() {
            None
        } else {
            q.strip_suffix(&domain)
                .and_then(|rest| rest.strip_suffix('.'))
                .filter(|rest| !rest.is_empty())
                .and_then(|rest| self.get(rest))
        };
        if exact.is_none() && short.is_none() {
            return None;
        }
        let mut out: Vec<IpAddr> = Vec::new();
        for a in exact.into_iter().chain(short).flatten() {
            if !out.contains(a) {
                out.push(*a);
            }
        }
        Some(out)
    }
}

/// What a resolv.conf says (the parts berth uses).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ResolvConf {
    /// `nameserver` lines, port 53. IPv6 link-local servers with an
    /// interface name as zone (`fe80::1%eth0`) are left out.
    pub nameservers: Vec<SocketAddr>,
    /// The search list (`search`, or `domain` when it comes last).
    pub search: Vec<String>,
    /// `options` words, in order (`ndots:2`, `edns0`, ...).
    pub options: Vec<String>,
}

fn parse_nameserver(word: &str) -> Option<SocketAddr> {
    if let Ok(ip) = word.parse::<IpAddr>() {
        return Some(SocketAddr::new(ip, 53));
    }
    let (ip, zone) = word.split_once('%')?;
    let ip: Ipv6Addr = ip.parse().ok()?;
    let scope: u32 = zone.parse().ok()?;
    Some(SocketAddr::V6(SocketAddrV6::new(ip, 53, 0, scope)))
}

/// Parses resolv.conf text: nameservers as socket addresses (port 53),
/// search domains, options. Comments (`#`, `;`) and unknown lines are
/// skipped.
pub fn parse_resolv_conf(text: &str) -> ResolvConf {
    let mut conf = ResolvConf::default();
    for line in text.lines() {
        let line = line.split(['#', ';']).next().unwrap_or_default();
        let mut words = line.split_whitespace();
        match words.next() {
            Some("nameserver") => {
                if let Some(ns) = words.next().and_then(parse_nameserver) {
                    conf.nameservers.push(ns);
                }
            }
            Some("search") => conf.search = words.map(str::to_string).collect(),
            Some("domain") => conf.search = words.take(1).map(str::to_string).collect(),
            Some("options") => conf.options.extend(words.map(str::to_string)),
            _ => {}
        }
    }
    conf
}

/// The text of a container's /etc/resolv.conf: the given nameservers
/// (the network's gateway, or `--dns` values), search list and options;
/// lines with nothing to say are left out.
pub fn render_resolv_conf(nameservers: &[IpAddr], search: &[String], options: &[String]) -> String {
    let mut out = String::from("# Generated by berth\n");
    if !search.is_empty() {
        out.push_str(&format!("search {}\n", search.join(" ")));
    }
    for ns in nameservers {
        out.push_str(&format!("nameserver {ns}\n"));
    }
    if !options.is_empty() {
        out.push_str(&format!("options {}\n", options.join(" ")));
    }
    out
}

/// The upstreams for a network's resolver from the host's resolv.conf
/// text: the host's nameservers as they are (the resolver runs in the
/// host's namespace, so a local stub such as 127.0.0.53 works); with none,
/// 8.8.8.8 and 8.8.4.4, as Docker does.
pub fn upstreams_from_host(text: &str) -> Vec<SocketAddr> {
    let ns = parse_resolv_conf(text).nameservers;
    if !ns.is_empty() {
        return ns;
    }
    vec![
        SocketAddr::new(IpAddr::V4(Ipv4Addr::new(8, 8, 8, 8)), 53),
        SocketAddr::new(IpAddr::V4(Ipv4Addr::new(8, 8, 4, 4)), 53),
    ]
}

/// What to do with one query.
#[derive(Debug)]
enum Action {
    /// Answer locally with this message.
    Reply(Box<Message>),
    /// Send the raw query to the upstreams.
    Forward,
    /// Drop it (a response, not a query).
    Ignore,
}

/// A response to `req` with its question, id and flags.
fn response(req: &Message, rcode: ResponseCode, authoritative: bool) -> Message {
    let mut m = Message::response(req.metadata.id, req.metadata.op_code);
    m.metadata.recursion_desired = req.metadata.recursion_desired;
    m.metadata.checking_disabled = req.metadata.checking_disabled;
    m.metadata.recursion_available = true;
    m.metadata.authoritative = authoritative;
    m.metadata.response_code = rcode;
    m.queries = req.queries.clone();
    if req.edns.is_some() {
        let mut edns = Edns::new();
        edns.set_max_payload(MAX_UDP_PAYLOAD);
        m.edns = Some(edns);
    }
    m
}

/// The address a full reverse name (`4.3.2.1.in-addr.arpa.`) stands for.
fn arpa_addr(name: &Name) -> Option<IpAddr> {
    let net = name.parse_arpa_name().ok()?;
    (net.prefix_len() == net.max_prefix_len()).then(|| net.addr())
}

/// Decides how to answer `req` from `records`.
fn decide(req: &Message, records: &Records) -> Action {
    if req.metadata.message_type != MessageType::Query {
        return Action::Ignore;
    }
    if req.metadata.op_code != OpCode::Query {
        return Action::Reply(Box::new(response(req, ResponseCode::NotImp, false)));
    }
    let [q] = req.queries.as_slice() else {
        return Action::Reply(Box::new(response(req, ResponseCode::FormErr, false)));
    };
    if q.query_class() != DNSClass::IN {
        return Action::Forward;
    }
    let qtype = q.query_type();
    if qtype == RecordType::PTR {
        let names = arpa_addr(q.name())
            .map(|a| records.names_for(a))
            .unwrap_or_default();
        let answers: Vec<Record> = names
            .iter()
            .filter_map(|n| Name::from_ascii(format!("{n}.")).ok())
            .map(|n| Record::from_rdata(q.name().clone(), 0, RData::PTR(PTR(n))))
            .collect();
        if answers.is_empty() {
            return Action::Forward;
        }
        let mut m = response(req, ResponseCode::NoError, true);
        m.answers = answers;
        return Action::Reply(Box::new(m));
    }
    let qname = q.name().to_ascii();
    if let Some(addrs) = records.find(&qname) {
        let mut m = response(req, ResponseCode::NoError, true);
        for a in addrs {
            let data = match (a, qtype) {
                (IpAddr::V4(v4), RecordType::A | RecordType::ANY) => RData::A(A(v4)),
                (IpAddr::V6(v6), RecordType::AAAA | RecordType::ANY) => RData::AAAA(AAAA(v6)),
                _ => continue,
            };
            m.answers
                .push(Record::from_rdata(q.name().clone(), 0, data));
        }
        return Action::Reply(Box::new(m));
    }
    let plain = normalize(&qname);
    if (!plain.is_empty() && !plain.contains('.')) || records.in_domain(&plain) {
        return Action::Reply(Box::new(response(req, ResponseCode::NXDomain, true)));
    }
    Action::Forward
}

/// Encodes `m`, truncated (TC set, no records) if longer than `limit`.
fn encode(m: &Message, limit: usize) -> Option<Vec<u8>> {
    let bytes = m.to_vec().ok()?;
    if bytes.len() <= limit {
        return Some(bytes);
    }
    m.truncate().to_vec().ok()
}

/// The largest UDP answer `req`'s sender takes.
fn udp_limit(req: &Message) -> usize {
    match &req.edns {
        Some(e) => usize::from(e.max_payload().clamp(512, MAX_UDP_PAYLOAD)),
        None => 512,
    }
}

/// SERVFAIL for `req`, encoded.
fn servfail(req: &Message) -> Option<Vec<u8>> {
    response(req, ResponseCode::ServFail, false).to_vec().ok()
}

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
fn read_tcp_message(stream: &mut TcpStream) -> Option<Vec<u8>> {
    let mut len = [0u8; 2];
    stream.read_exact(&mut len).ok()?;
    let mut msg = vec![0u8; usize::from(u16::from_be_bytes(len))];
    stream.read_exact(&mut msg).ok()?;
    Some(msg)
}

/// Writes one length-prefixed DNS message to a TCP stream.
fn write_tcp_message(stream: &mut TcpStream, msg: &[u8]) -> Option<()> {
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
fn forward(
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

#[cfg(test)]
mod tests {
    use super::*;
    use hickory_proto::op::Query;

    fn recs() -> Records {
        let mut r = Records::default();
        r.names.insert(
            "web".into(),
            vec!["10.89.0.2".parse().unwrap(), "fd00::2".parse().unwrap()],
        );
        r.names
            .insert("Cache".into(), vec!["10.89.0.3".parse().unwrap()]);
        r.names
            .insert("db.internal".into(), vec!["10.89.0.4".parse().unwrap()]);
        r.names.insert("empty".into(), vec![]);
        r
    }

    #[test]
    fn scoped_names_only_for_their_client() {
        let mut r = recs();
        let client: IpAddr = "10.89.0.7".parse().unwrap();
        r.scoped.insert(
            client,
            BTreeMap::from([("other".to_string(), vec!["10.90.0.2".parse().unwrap()])]),
        );
        assert!(r
            .view_for("10.89.0.8".parse().unwrap())
            .lookup("other")
            .is_empty());
        let v = r.view_for(client);
        assert_eq!(
            v.lookup("other"),
            vec!["10.90.0.2".parse::<IpAddr>().unwrap()]
        );
        assert_eq!(v.lookup("web"), r.lookup("web"));
        let m = reply(decide(&query("other.", RecordType::A), &v));
        assert_eq!(m.answers.len(), 1);
        let m = reply(decide(&query("other.", RecordType::A), &r));
        assert_eq!(m.metadata.response_code, ResponseCode::NXDomain);
    }

    #[test]
    fn lookup_matches_names_case_and_domain() {
        let r = recs();
        let web: Vec<IpAddr> = vec!["10.89.0.2".parse().unwrap(), "fd00::2".parse().unwrap()];
        assert_eq!(r.lookup("web"), web);
        assert_eq!(r.lookup("WEB."), web);
        assert_eq!(r.lookup("web.dns.berth"), web);
        assert_eq!(r.lookup("Web.DNS.Berth."), web);
        assert_eq!(
            r.lookup("cache"),
            vec!["10.89.0.3".parse::<IpAddr>().unwrap()]
        );
        assert_eq!(r.lookup("db.internal.dns.berth").len(), 1);
        assert!(r.lookup("web.example.com").is_empty());
        assert!(r.lookup("dns.berth").is_empty());
        assert!(r.lookup(".dns.berth").is_empty());
        assert!(r.lookup("").is_empty());
        assert!(r.lookup(".").is_empty());
        assert!(r.contains("empty") && r.lookup("empty").is_empty());
        assert!(!r.contains("nothere"));
    }

    #[test]
    fn lookup_merges_short_and_qualified_entries_without_duplicates() {
        let mut r = recs();
        r.names.insert(
            "web.dns.berth".into(),
            vec!["10.89.0.2".parse().unwrap(), "10.89.0.9".parse().unwrap()],
        );
        let got = r.lookup("web.dns.berth");
        assert_eq!(got.len(), 3, "{got:?}");
    }

    #[test]
    fn names_for_gives_fqdns() {
        let r = recs();
        assert_eq!(
            r.names_for("10.89.0.2".parse().unwrap()),
            vec!["web.dns.berth"]
        );
        assert_eq!(
            r.names_for("10.89.0.3".parse().unwrap()),
            vec!["cache.dns.berth"]
        );
        assert_eq!(
            r.names_for("10.89.0.4".parse().unwrap()),
            vec!["db.internal"]
        );
        assert!(r.names_for("10.89.0.99".parse().unwrap()).is_empty());
    }

    #[test]
    fn records_json_roundtrip_and_defaults() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("records.json");
        let mut r = recs();
        r.upstreams = vec!["192.168.1.1:53".parse().unwrap()];
        r.write_atomic(&p).unwrap();
        assert_eq!(Records::read(&p).unwrap(), r);
        // No temporary file is left behind.
        assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 1);
        std::fs::write(&p, r#"{"names": {"a": ["10.0.0.1"]}}"#).unwrap();
        let r = Records::read(&p).unwrap();
        assert_eq!(r.domain, DEFAULT_DOMAIN);
        assert!(r.upstreams.is_empty());
        std::fs::write(&p, "{not json").unwrap();
        assert!(matches!(
            Records::read(&p),
            Err(NetError::DnsRecordsFormat { .. })
        ));
        assert!(matches!(
            Records::read(&dir.path().join("missing")),
            Err(NetError::DnsRecords { .. })
        ));
    }

    #[test]
    fn parse_resolv_conf_reads_servers_search_options() {
        let text = "# comment\n\
            nameserver 127.0.0.53\n\
            nameserver 2001:db8::1 # trailing\n\
            nameserver fe80::1%2\n\
            nameserver fe80::1%eth0\n\
            nameserver bogus\n\
            ; other comment\n\
            domain first.example\n\
            search a.example b.example\n\
            options ndots:2 edns0\n\
            options timeout:1\n\
            sortlist 10.0.0.0\n";
        let c = parse_resolv_conf(text);
        assert_eq!(
            c.nameservers,
            vec![
                "127.0.0.53:53".parse().unwrap(),
                "[2001:db8::1]:53".parse().unwrap(),
                SocketAddr::V6(SocketAddrV6::new("fe80::1".parse().unwrap(), 53, 0, 2)),
            ]
        );
        assert_eq!(c.search, vec!["a.example", "b.example"]);
        assert_eq!(c.options, vec!["ndots:2", "edns0", "timeout:1"]);
        // `domain` after `search` wins, as in glibc.
        assert_eq!(
            parse_resolv_conf("search a b\ndomain c\n").search,
            vec!["c"]
        );
        assert_eq!(parse_resolv_conf(""), ResolvConf::default());
    }

    #[test]
    fn render_then_parse_roundtrips() {
        let ns: Vec<IpAddr> = vec!["10.89.0.1".parse().unwrap(), "fd00::1".parse().unwrap()];
        let text = render_resolv_conf(&ns, &["dns.berth".into()], &["ndots:0".into()]);
        assert_eq!(
            text,
            "# Generated by berth\nsearch dns.berth\nnameserver 10.89.0.1\nnameserver fd00::1\noptions ndots:0\n"
        );
        let c = parse_resolv_conf(&text);
        assert_eq!(c.nameservers.iter().map(|s| s.ip()).collect::<Vec<_>>(), ns);
        assert_eq!(c.search, vec!["dns.berth"]);
        assert_eq!(render_resolv_conf(&[], &[], &[]), "# Generated by berth\n");
    }

    #[test]
    fn upstreams_default_to_google() {
        assert_eq!(
            upstreams_from_host("nameserver 127.0.0.53\n"),
            vec!["127.0.0.53:53".parse::<SocketAddr>().unwrap()]
        );
        assert_eq!(
            upstreams_from_host("# nothing\n"),
            vec![
                "8.8.8.8:53".parse::<SocketAddr>().unwrap(),
                "8.8.4.4:53".parse().unwrap()
            ]
        );
    }

    fn query(name: &str, t: RecordType) -> Message {
        let mut m = Message::query();
        m.add_query(Query::query(Name::from_ascii(name).unwrap(), t));
        m
    }

    fn reply(a: Action) -> Message {
        match a {
            Action::Reply(m) => *m,
            other => panic!("expected a reply, got {other:?}"),
        }
    }

    #[test]
    fn decide_answers_forwards_and_refuses() {
        let r = recs();
        let m = reply(decide(&query("web.", RecordType::A), &r));
        assert_eq!(m.metadata.response_code, ResponseCode::NoError);
        assert!(m.metadata.authoritative);
        assert_eq!(m.answers.len(), 1);
        let m = reply(decide(&query("web.", RecordType::ANY), &r));
        assert_eq!(m.answers.len(), 2);
        let m = reply(decide(&query("cache.", RecordType::AAAA), &r));
        assert_eq!(m.metadata.response_code, ResponseCode::NoError);
        assert!(m.answers.is_empty());
        let m = reply(decide(&query("web.", RecordType::MX), &r));
        assert!(m.answers.is_empty());
        let m = reply(decide(&query("nope.", RecordType::A), &r));
        assert_eq!(m.metadata.response_code, ResponseCode::NXDomain);
        let m = reply(decide(&query("nope.dns.berth.", RecordType::A), &r));
        assert_eq!(m.metadata.response_code, ResponseCode::NXDomain);
        assert!(matches!(
            decide(&query("example.com.", RecordType::A), &r),
            Action::Forward
        ));
        assert!(matches!(
            decide(&query(".", RecordType::NS), &r),
            Action::Forward
        ));
        let m = reply(decide(
            &query("2.0.89.10.in-addr.arpa.", RecordType::PTR),
            &r,
        ));
        assert_eq!(m.answers.len(), 1);
        assert!(matches!(
            decide(&query("9.9.89.10.in-addr.arpa.", RecordType::PTR), &r),
            Action::Forward
        ));
        let mut resp = query("web.", RecordType::A);
        resp.metadata.message_type = MessageType::Response;
        assert!(matches!(decide(&resp, &r), Action::Ignore));
        let mut two = query("web.", RecordType::A);
        two.add_query(Query::query(
            Name::from_ascii("cache.").unwrap(),
            RecordType::A,
        ));
        assert_eq!(
            reply(decide(&two, &r)).metadata.response_code,
            ResponseCode::FormErr
        );
        let mut upd = query("web.", RecordType::A);
        upd.metadata.op_code = OpCode::Update;
        assert_eq!(
            reply(decide(&upd, &r)).metadata.response_code,
            ResponseCode::NotImp
        );
    }

    #[test]
    fn big_answers_are_truncated_for_udp() {
        let mut r = Records::default();
        r.names.insert(
            "many".into(),
            (0..200u8)
                .map(|i| IpAddr::V4(Ipv4Addr::new(10, 0, 0, i)))
                .collect(),
        );
        let q = query("many.", RecordType::A);
        let m = reply(decide(&q, &r));
        let bytes = encode(&m, udp_limit(&q)).unwrap();
        assert!(bytes.len() <= 512);
        let back = Message::from_vec(&bytes).unwrap();
        assert!(back.metadata.truncation);
        let full = encode(&m, usize::from(u16::MAX)).unwrap();
        assert_eq!(Message::from_vec(&full).unwrap().answers.len(), 200);
    }
}
