//! The per-network resolver over real sockets: `serve` runs on a thread,
//! bound to 127.0.0.1 inside a test network namespace (as root; without
//! root, on the host's loopback, which is all these tests touch), and is
//! queried with hickory-built packets.

use std::io::{Read, Write};
use std::net::{IpAddr, SocketAddr, TcpListener, TcpStream, UdpSocket};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use berth_network::dns::{serve, Records};
use berth_network::netns;
use hickory_proto::op::{Message, MessageType, Query, ResponseCode};
use hickory_proto::rr::rdata::A;
use hickory_proto::rr::{Name, RData, Record, RecordType};

/// Removes the namespace pin even when the test fails.
struct NsGuard(PathBuf);

impl Drop for NsGuard {
    fn drop(&mut self) {
        let _ = netns::remove(&self.0);
    }
}

/// Runs `f` where only a private loopback is reachable: a fresh netns
/// with `lo` up when root, else the host's loopback.
fn with_net(f: impl FnOnce() + Send) {
    if !nix::unistd::geteuid().is_root() {
        eprintln!("note: not root; the test runs on the host's loopback");
        f();
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("ns");
    netns::create(&path).unwrap();
    let _guard = NsGuard(path.clone());
    netns::run_in(&path, || {
        let up = std::process::Command::new("ip")
            .args(["link", "set", "lo", "up"])
            .status();
        assert!(
            up.is_ok_and(|s| s.success()),
            "`ip link set lo up` failed in the test namespace"
        );
        f()
    })
    .expect("the test body failed inside the namespace");
}

struct Server {
    addr: SocketAddr,
    path: PathBuf,
    stop: Arc<AtomicBool>,
    handle: Option<JoinHandle<berth_network::Result<()>>>,
    _dir: tempfile::TempDir,
}

impl Server {
    fn start(records: &Records) -> Server {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("records.json");
        records.write_atomic(&path).unwrap();
        let udp = UdpSocket::bind("127.0.0.1:0").unwrap();
        let addr = udp.local_addr().unwrap();
        let tcp = TcpListener::bind(addr).ok();
        let stop = Arc::new(AtomicBool::new(false));
        let (p, s) = (path.clone(), Arc::clone(&stop));
        let handle = std::thread::spawn(move || serve(udp, tcp, &p, &s));
        Server {
            addr,
            path,
            stop,
            handle: Some(handle),
            _dir: dir,
        }
    }

    /// Waits up to `limit` for `serve` to return.
    fn wait(&mut self, limit: Duration) -> Option<berth_network::Result<()>> {
        let start = Instant::now();
        while start.elapsed() < limit {
            if self.handle.as_ref().is_some_and(|h| h.is_finished()) {
                return self.handle.take().map(|h| h.join().unwrap());
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        None
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        if let Some(h) = self.handle.take() {
            let _ = h.join();
        }
    }
}

fn ip(s: &str) -> IpAddr {
    s.parse().unwrap()
}

fn records(upstreams: Vec<SocketAddr>) -> Records {
    let mut r = Records {
        upstreams,
        ..Records::default()
    };
    r.names
        .insert("web".into(), vec![ip("10.89.0.2"), ip("fd89::2")]);
    r.names
        .insert("frontend".into(), vec![ip("10.89.0.2"), ip("fd89::2")]);
    r.names.insert("db".into(), vec![ip("10.89.0.3")]);
    r
}

fn query_bytes(name: &str, t: RecordType) -> (u16, Vec<u8>) {
    let mut m = Message::query();
    m.metadata.recursion_desired = true;
    m.add_query(Query::query(Name::from_ascii(name).unwrap(), t));
    (m.metadata.id, m.to_vec().unwrap())
}

fn ask_with_timeout(server: SocketAddr, name: &str, t: RecordType, timeout: Duration) -> Message {
    let (id, bytes) = query_bytes(name, t);
    let sock = UdpSocket::bind("127.0.0.1:0").unwrap();
    sock.set_read_timeout(Some(timeout)).unwrap();
    sock.send_to(&bytes, server).unwrap();
    let mut buf = [0u8; 4096];
    let (n, from) = sock
        .recv_from(&mut buf)
        .expect("no answer from the resolver");
    assert_eq!(from, server);
    let m = Message::from_vec(&buf[..n]).unwrap();
    assert_eq!(m.metadata.id, id, "the answer keeps the query id");
    assert_eq!(m.metadata.message_type, MessageType::Response);
    m
}

fn ask(server: SocketAddr, name: &str, t: RecordType) -> Message {
    ask_with_timeout(server, name, t, Duration::from_secs(3))
}

fn addrs(m: &Message) -> Vec<IpAddr> {
    m.answers
        .iter()
        .filter_map(|r| match &r.data {
            RData::A(a) => Some(IpAddr::V4(a.0)),
            RData::AAAA(a) => Some(IpAddr::V6(a.0)),
            _ => None,
        })
        .collect()
}

#[test]
fn answers_names_aliases_and_nxdomain() {
    with_net(|| {
        let s = Server::start(&records(vec![]));
        let m = ask(s.addr, "web.", RecordType::A);
        assert_eq!(m.metadata.response_code, ResponseCode::NoError);
        assert!(m.metadata.authoritative);
        assert_eq!(addrs(&m), vec![ip("10.89.0.2")]);
        assert_eq!(m.answers[0].name, Name::from_ascii("web.").unwrap());

        let m = ask(s.addr, "frontend.", RecordType::A);
        assert_eq!(addrs(&m), vec![ip("10.89.0.2")], "alias");
        let m = ask(s.addr, "WeB.Dns.Berth.", RecordType::A);
        assert_eq!(
            addrs(&m),
            vec![ip("10.89.0.2")],
            "case-insensitive, with domain"
        );
        let m = ask(s.addr, "web.", RecordType::AAAA);
        assert_eq!(addrs(&m), vec![ip("fd89::2")]);

        let m = ask(s.addr, "db.", RecordType::AAAA);
        assert_eq!(m.metadata.response_code, ResponseCode::NoError);
        assert!(m.answers.is_empty(), "known name without v6: empty NOERROR");

        let m = ask(s.addr, "nothere.", RecordType::A);
        assert_eq!(m.metadata.response_code, ResponseCode::NXDomain);
        let m = ask(s.addr, "nothere.dns.berth.", RecordType::A);
        assert_eq!(m.metadata.response_code, ResponseCode::NXDomain);

        let m = ask(s.addr, "3.0.89.10.in-addr.arpa.", RecordType::PTR);
        let names: Vec<String> = m
            .answers
            .iter()
            .filter_map(|r| match &r.data {
                RData::PTR(p) => Some(p.0.to_ascii()),
                _ => None,
            })
            .collect();
        assert_eq!(names, vec!["db.dns.berth."]);
    });
}

#[test]
fn answers_over_tcp() {
    with_net(|| {
        let s = Server::start(&records(vec![]));
        let mut c = TcpStream::connect(s.addr).unwrap();
        c.set_read_timeout(Some(Duration::from_secs(3))).unwrap();
        for name in ["web.", "db."] {
            let (id, q) = query_bytes(name, RecordType::A);
            let mut framed = (q.len() as u16).to_be_bytes().to_vec();
            framed.extend_from_slice(&q);
            c.write_all(&framed).unwrap();
            let mut len = [0u8; 2];
            c.read_exact(&mut len).unwrap();
            let mut body = vec![0u8; u16::from_be_bytes(len).into()];
            c.read_exact(&mut body).unwrap();
            let m = Message::from_vec(&body).unwrap();
            assert_eq!(m.metadata.id, id);
            assert_eq!(addrs(&m).len(), 1, "{name}");
        }
    });
}

/// A fake upstream: answers every query with `93.184.216.34` and reports
/// the raw queries it got.
fn fake_upstream() -> (SocketAddr, std::sync::mpsc::Receiver<Vec<u8>>) {
    let sock = UdpSocket::bind("127.0.0.1:0").unwrap();
    let addr = sock.local_addr().unwrap();
    let (tx, rx) = std::sync::mpsc::channel();
    sock.set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    std::thread::spawn(move || {
        let mut buf = [0u8; 4096];
        while let Ok((n, peer)) = sock.recv_from(&mut buf) {
            let Ok(q) = Message::from_vec(&buf[..n]) else {
                continue;
            };
            let _ = tx.send(buf[..n].to_vec());
            let mut r = Message::response(q.metadata.id, q.metadata.op_code);
            r.metadata.recursion_available = true;
            r.queries = q.queries.clone();
            r.add_answer(Record::from_rdata(
                q.queries[0].name().clone(),
                300,
                RData::A(A("93.184.216.34".parse().unwrap())),
            ));
            let _ = sock.send_to(&r.to_vec().unwrap(), peer);
        }
    });
    (addr, rx)
}

#[test]
fn forwards_other_names_and_keeps_the_query_id() {
    with_net(|| {
        let (up, seen) = fake_upstream();
        let s = Server::start(&records(vec![up]));
        let (id, q) = query_bytes("example.com.", RecordType::A);
        let c = UdpSocket::bind("127.0.0.1:0").unwrap();
        c.set_read_timeout(Some(Duration::from_secs(3))).unwrap();
        c.send_to(&q, s.addr).unwrap();
        let mut buf = [0u8; 4096];
        let n = c.recv(&mut buf).expect("a relayed answer");
        let m = Message::from_vec(&buf[..n]).unwrap();
        assert_eq!(m.metadata.id, id);
        assert_eq!(addrs(&m), vec![ip("93.184.216.34")]);
        assert_eq!(
            m.answers[0].ttl, 300,
            "the upstream's answer is relayed as is"
        );
        assert_eq!(
            seen.recv_timeout(Duration::from_secs(1)).unwrap(),
            q,
            "raw query forwarded"
        );
        // Single-label names are never forwarded.
        let m = ask(s.addr, "printer.", RecordType::A);
        assert_eq!(m.metadata.response_code, ResponseCode::NXDomain);
        assert!(seen.recv_timeout(Duration::from_millis(300)).is_err());
    });
}

#[test]
fn silent_upstream_gives_servfail_and_the_next_upstream_is_tried() {
    with_net(|| {
        let silent = UdpSocket::bind("127.0.0.1:0").unwrap();
        let silent_addr = silent.local_addr().unwrap();
        let (good, _seen) = fake_upstream();

        let s = Server::start(&records(vec![silent_addr]));
        let start = Instant::now();
        let m = ask_with_timeout(
            s.addr,
            "example.org.",
            RecordType::A,
            Duration::from_secs(5),
        );
        assert_eq!(m.metadata.response_code, ResponseCode::ServFail);
        assert!(
            start.elapsed() >= Duration::from_millis(1900),
            "waited for the upstream"
        );

        let s2 = Server::start(&records(vec![silent_addr, good]));
        let m = ask_with_timeout(
            s2.addr,
            "example.org.",
            RecordType::A,
            Duration::from_secs(5),
        );
        assert_eq!(addrs(&m), vec![ip("93.184.216.34")]);
        drop(silent);
    });
}

#[test]
fn local_names_are_answered_while_a_forward_waits() {
    with_net(|| {
        let silent = UdpSocket::bind("127.0.0.1:0").unwrap();
        let s = Server::start(&records(vec![silent.local_addr().unwrap()]));
        let (_, q) = query_bytes("slow.example.", RecordType::A);
        let c = UdpSocket::bind("127.0.0.1:0").unwrap();
        c.send_to(&q, s.addr).unwrap();
        let start = Instant::now();
        let m = ask(s.addr, "web.", RecordType::A);
        assert_eq!(addrs(&m), vec![ip("10.89.0.2")]);
        assert!(
            start.elapsed() < Duration::from_secs(1),
            "not blocked by the forward"
        );
    });
}

#[test]
fn reloads_rewritten_records() {
    with_net(|| {
        let s = Server::start(&records(vec![]));
        assert_eq!(
            addrs(&ask(s.addr, "db.", RecordType::A)),
            vec![ip("10.89.0.3")]
        );
        let mut r = records(vec![]);
        r.names.remove("db");
        r.names.insert("cache".into(), vec![ip("10.89.0.7")]);
        r.names.insert("web".into(), vec![ip("10.89.0.9")]);
        r.write_atomic(&s.path).unwrap();
        std::thread::sleep(Duration::from_millis(400));
        assert_eq!(
            addrs(&ask(s.addr, "cache.", RecordType::A)),
            vec![ip("10.89.0.7")]
        );
        assert_eq!(
            addrs(&ask(s.addr, "web.", RecordType::A)),
            vec![ip("10.89.0.9")]
        );
        assert_eq!(
            ask(s.addr, "db.", RecordType::A).metadata.response_code,
            ResponseCode::NXDomain
        );
        // A broken rewrite keeps the last good records.
        std::fs::write(&s.path, "{broken").unwrap();
        std::thread::sleep(Duration::from_millis(400));
        assert_eq!(
            addrs(&ask(s.addr, "cache.", RecordType::A)),
            vec![ip("10.89.0.7")]
        );
    });
}

#[test]
fn exits_when_the_records_file_is_removed_or_stop_is_set() {
    with_net(|| {
        let mut s = Server::start(&records(vec![]));
        assert_eq!(addrs(&ask(s.addr, "web.", RecordType::A)).len(), 1);
        assert!(
            s.wait(Duration::from_millis(300)).is_none(),
            "still serving"
        );
        std::fs::remove_file(&s.path).unwrap();
        let done = s
            .wait(Duration::from_secs(2))
            .expect("serve returns once the file is gone");
        assert!(done.is_ok(), "{done:?}");

        let mut s = Server::start(&records(vec![]));
        s.stop.store(true, Ordering::SeqCst);
        let done = s
            .wait(Duration::from_secs(2))
            .expect("serve returns on stop");
        assert!(done.is_ok());

        // Missing from the start: nothing to serve.
        let udp = UdpSocket::bind("127.0.0.1:0").unwrap();
        let stop = AtomicBool::new(false);
        assert!(serve(
            udp,
            None,
            Path::new("/nonexistent/berth-records.json"),
            &stop
        )
        .is_ok());
    });
}

#[test]
fn garbage_is_ignored_and_serving_goes_on() {
    with_net(|| {
        let mut s = Server::start(&records(vec![]));
        let c = UdpSocket::bind("127.0.0.1:0").unwrap();
        c.set_read_timeout(Some(Duration::from_millis(300)))
            .unwrap();
        let (_, good) = query_bytes("web.", RecordType::A);
        let mut junk: Vec<Vec<u8>> = vec![
            vec![],
            vec![0],
            vec![0xff; 11],
            vec![0xff; 12],
            vec![0xff; 4000],
            // A header claiming 65535 questions.
            vec![0, 1, 1, 0, 0xff, 0xff, 0, 0, 0, 0, 0, 0],
            // A compression pointer to itself.
            [&good[..12], &[0xc0, 0x0c, 0, 1, 0, 1][..]].concat(),
        ];
        for cut in 1..good.len() {
            junk.push(good[..cut].to_vec());
        }
        // A response must not be answered (no reflection loops).
        let mut resp = good.clone();
        resp[2] |= 0x80;
        junk.push(resp);
        let mut seed = 0x2545_f491_4f6c_dd1du64;
        for _ in 0..200 {
            let len = (seed % 300) as usize;
            let mut p = Vec::with_capacity(len);
            for _ in 0..len {
                seed ^= seed << 13;
                seed ^= seed >> 7;
                seed ^= seed << 17;
                p.push(seed as u8);
            }
            // Keep QR clear so these look like queries.
            if p.len() > 2 {
                p[2] &= 0x7f;
            }
            junk.push(p);
        }
        let mut answered = 0;
        let mut buf = [0u8; 4096];
        for p in &junk[..junk.len() - 200] {
            c.send_to(p, s.addr).unwrap();
            if c.recv(&mut buf).is_ok() {
                answered += 1;
            }
        }
        assert_eq!(answered, 0, "malformed packets get no answer");
        for p in &junk[junk.len() - 200..] {
            c.send_to(p, s.addr).unwrap();
        }
        std::thread::sleep(Duration::from_millis(200));
        assert!(s.wait(Duration::from_millis(10)).is_none(), "still running");
        assert_eq!(
            addrs(&ask(s.addr, "web.", RecordType::A)),
            vec![ip("10.89.0.2")]
        );
    });
}
