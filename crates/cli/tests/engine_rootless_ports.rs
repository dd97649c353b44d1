//! Rootless published ports through berth's port proxy (as podman's
//! rootlessport), for an unprivileged user of the test's own
//! (common::rootless), every command inside a network namespace the test
//! made: the port reaches the container from the namespace's loopback,
//! the same bytes come back, the container sees the same source address
//! as under rootless podman, `port` says what podman's says, and after
//! `stop`/`rm` no proxy process and no listening socket are left.
//! Both the default network (slirp4netns) and a user-defined network
//! (bridges in the rootless network namespace) are covered, and UDP; and
//! bulk transfers both ways (with a half-close) and small request/reply
//! exchanges, against podman's rootlessport. IPv6: engine_rootless_ports_v6.rs.
mod common;
mod rootless_ports_support;

use std::io::{Read, Write};
use std::process::Command;
use std::time::Duration;

use common::rootless_engine::Rootless;
use rootless_ports_support::{
    assert_no_berth_processes_left, have_podman, listening, rootless, rootless_with_podman, run_as,
    short_podman_tmpdir,
};

/// A web server whose CGI answers with the client address it sees
/// (`peer=ADDR`) and then the request body.
const ECHO_HTTPD: &str = "mkdir -p /tmp/w/cgi-bin && \
    printf '#!/bin/sh\\necho Content-Type: text/plain\\necho\\necho peer=$REMOTE_ADDR\\nhead -c $CONTENT_LENGTH\\n' > /tmp/w/cgi-bin/echo && \
    chmod 755 /tmp/w/cgi-bin/echo && exec httpd -f -p 80 -h /tmp/w";

/// 16 KiB of printable bytes (the client writes all before it reads).
fn payload() -> Vec<u8> {
    (0..16 * 1024u32)
        .map(|i| b'!' + (i % 251 % 90) as u8)
        .collect()
}

/// POSTs `data` to the echo CGI on `127.0.0.1:port` of the test's
/// namespace: (the peer address the container saw, the body it sent back).
fn post_echo(r: &Rootless, port: u16, data: &[u8]) -> Option<(String, Vec<u8>)> {
    berth_network::netns::run_in(&r.netns.path, || {
        let mut c = std::net::TcpStream::connect(("127.0.0.1", port)).ok()?;
        c.set_read_timeout(Some(Duration::from_secs(10))).ok()?;
        let head = format!(
            "POST /cgi-bin/echo HTTP/1.0\r\nContent-Length: {}\r\nContent-Type: application/octet-stream\r\n\r\n",
            data.len()
        );
        c.write_all(head.as_bytes()).ok()?;
        c.write_all(data).ok()?;
        let mut out = Vec::new();
        c.read_to_end(&mut out).ok()?;
        // The head ends at the first empty line; busybox httpd passes the
        // CGI's own header lines on with bare `\n` ends.
        let at = (0..out.len()).find_map(|i| {
            let rest = &out[i..];
            if rest.starts_with(b"\n\n") {
                Some(i + 2)
            } else if rest.starts_with(b"\n\r\n") {
                Some(i + 3)
            } else {
                None
            }
        })?;
        let body = &out[at..];
        let nl = body.iter().position(|b| *b == b'\n')?;
        let first = String::from_utf8_lossy(&body[..nl]).to_string();
        let peer = first.strip_prefix("peer=")?;
        // busybox httpd listens on IPv6 with IPv4 mapped in.
        let peer = peer.trim().trim_start_matches('[').trim_end_matches(']');
        let peer = peer.trim_start_matches("::ffff:").to_string();
        Some((peer, body[nl + 1..].to_vec()))
    })
    .unwrap()
}

/// Live processes of the user whose command line has `port-proxy`.
fn proxies(r: &Rootless) -> Vec<i32> {
    r.u.processes()
        .into_iter()
        .filter(|p| {
            std::fs::read(format!("/proc/{p}/cmdline"))
                .map(|c| c.split(|b| *b == 0).any(|a| a == b"port-proxy"))
                .unwrap_or(false)
        })
        .collect()
}

/// What one engine shows for a container publishing the echo server:
/// the peer the container saw and `port NAME` output.
fn observe(r: &Rootless, tool: &str, name: &str, network: &str, publish: &str) -> (String, String) {
    let image = "localhost/bb:1";
    common::ok(&run_as(
        r,
        tool,
        &[
            "run",
            "-d",
            "--name",
            name,
            "--network",
            network,
            "-p",
            publish,
            image,
            "sh",
            "-c",
            ECHO_HTTPD,
        ],
    ));
    let parts: Vec<&str> = publish.split(':').collect();
    let port: u16 = parts[parts.len() - 2].parse().unwrap();
    let data = payload();
    let (peer, back) = common::wait_for(&format!("{tool}'s published port {port}"), 30, || {
        post_echo(r, port, &data)
    });
    assert!(
        back == data,
        "{tool}: the bytes sent come back ({} of {})",
        back.len(),
        data.len()
    );
    let ports = common::ok(&run_as(r, tool, &["port", name]));
    (peer, ports.trim().replace(&port.to_string(), "PORT"))
}

/// The default network: berth's proxy and podman's rootlessport give the
/// container the same source address (its own: the connect is made in
/// its namespace), and with `port_handler=slirp4netns` both keep
/// slirp4netns' forwarding (the gateway's address for a loopback
/// client); `-p 127.0.0.1:H:C` listens on 127.0.0.1 only, `port` shows
/// what podman's shows, and after `rm` neither a proxy process nor a
/// listening socket is left.
#[test]
fn rootless_published_port_proxy_matches_podman() {
    require_root!();
    let Some(r) = rootless_with_podman() else {
        return;
    };
    let b = observe(&r, "berth", "pw", "slirp4netns", "127.0.0.1:18180:80");
    let p = observe(&r, "podman", "pw", "slirp4netns", "127.0.0.1:18181:80");
    assert_eq!(b, p, "berth (left) and podman (right): peer and `port`");
    assert_eq!(
        b.0, "10.0.2.100",
        "the container's own address, as podman's"
    );
    // One proxy for berth's container, listening on 127.0.0.1 only.
    let mine = proxies(&r);
    assert_eq!(mine.len(), 1, "one proxy process: {mine:?}");
    assert_eq!(
        listening(&r, 18180, false),
        vec![format!("0100007F:{:04X}", 18180)]
    );
    let kb = common::ok(&run_as(
        &r,
        "berth",
        &[
            "run",
            "-d",
            "--name",
            "pk",
            "--network",
            "slirp4netns:port_handler=slirp4netns",
            "-p",
            "127.0.0.1:18182:80",
            "localhost/bb:1",
            "sh",
            "-c",
            ECHO_HTTPD,
        ],
    ));
    assert!(!kb.trim().is_empty());
    let data = payload();
    let kb = common::wait_for("berth's slirp4netns-forwarded port", 30, || {
        post_echo(&r, 18182, &data)
    });
    common::ok(&run_as(
        &r,
        "podman",
        &[
            "run",
            "-d",
            "--name",
            "pk",
            "--network",
            "slirp4netns:port_handler=slirp4netns",
            "-p",
            "127.0.0.1:18183:80",
            "localhost/bb:1",
            "sh",
            "-c",
            ECHO_HTTPD,
        ],
    ));
    let kp = common::wait_for("podman's slirp4netns-forwarded port", 30, || {
        post_echo(&r, 18183, &data)
    });
    assert!(kb.1 == data && kp.1 == data);
    assert_eq!(
        kb.0, kp.0,
        "port_handler=slirp4netns: the same source address"
    );
    assert_eq!(
        proxies(&r).len(),
        1,
        "no proxy for port_handler=slirp4netns"
    );
    common::ok(&run_as(&r, "berth", &["rm", "-f", "pw", "pk"]));
    common::ok(&run_as(&r, "podman", &["rm", "-f", "-t", "0", "pw", "pk"]));
    let left = common::wait_for("the proxy to end", 10, || {
        let p = proxies(&r);
        p.is_empty().then_some(p)
    });
    assert!(left.is_empty());
    for port in [18180, 18182] {
        assert!(
            listening(&r, port, false).is_empty(),
            "port {port} still listens"
        );
    }
    let _ = r.podman().args(["rmi", "-f", "localhost/bb:1"]).output();
    r.ok(&["rmi", "localhost/bb:1"]);
    assert_no_berth_processes_left(&r);
}

/// A user-defined network (bridges in the rootless network namespace):
/// the published port reaches the container from the namespace's
/// loopback through the proxy, the container sees its own address as the
/// source (as under podman, whose rootlessport connects inside the
/// container's namespace too), `stop` ends the proxy and frees the port,
/// `start` brings both back, and `rm` leaves nothing.
#[test]
fn rootless_bridge_published_port_through_the_proxy() {
    require_root!();
    let Some(r) = rootless() else {
        return;
    };
    short_podman_tmpdir(&r);
    let podman = have_podman() && r.podman_import("localhost/bb:1");
    r.import();
    for tool in ["berth", "podman"] {
        if tool == "podman" && !podman {
            continue;
        }
        let net = format!("{tool}pnet");
        common::ok(&run_as(&r, tool, &["network", "create", &net]));
        let port = if tool == "berth" { 18190 } else { 18191 };
        let (peer, _) = observe(&r, tool, "bw", &net, &format!("{port}:80"));
        let own = common::ok(&run_as(
            &r,
            tool,
            &[
                "exec",
                "bw",
                "sh",
                "-c",
                "ip -4 -o addr show eth0 | awk '{print $4}' | cut -d/ -f1",
            ],
        ));
        assert_eq!(
            peer,
            own.trim(),
            "{tool}: the container's own address is the source"
        );
        // Every address of the namespace, both families: one dual-stack
        // `[::]` socket, as podman's rootlessport.
        assert_eq!(
            listening(&r, port, false),
            vec![format!("{}:{port:04X}", "0".repeat(32))],
            "{tool}"
        );
        if tool == "berth" {
            assert_eq!(proxies(&r).len(), 1);
            common::ok(&run_as(&r, tool, &["stop", "-t", "1", "bw"]));
            assert!(proxies(&r).is_empty(), "stop ends the proxy");
            assert!(listening(&r, port, false).is_empty(), "stop frees the port");
            common::ok(&run_as(&r, tool, &["start", "bw"]));
            let data = payload();
            let again = common::wait_for("the port after a restart", 30, || {
                post_echo(&r, port, &data)
            });
            assert!(again.1 == data);
            assert_eq!(proxies(&r).len(), 1);
        }
        common::ok(&run_as(&r, tool, &["rm", "-f", "bw"]));
        common::ok(&run_as(&r, tool, &["network", "rm", &net]));
        assert!(listening(&r, port, false).is_empty());
    }
    assert!(proxies(&r).is_empty());
    if podman {
        let _ = r.podman().args(["rmi", "-f", "localhost/bb:1"]).output();
    }
    r.ok(&["rmi", "localhost/bb:1"]);
    assert_no_berth_processes_left(&r);
}

const UDP_ECHO: &str = r#"ln -s usr/lib /lib; ln -s usr/lib64 /lib64; exec /usr/bin/python3 -c "
import socket
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
s.bind(('0.0.0.0', 5353))
while True:
    d, a = s.recvfrom(2048)
    s.sendto(b'pong ' + a[0].encode(), a)
""#;

/// UDP through the proxy: a datagram to the published port reaches the
/// container's port and its answer comes back from the published port.
#[test]
fn rootless_published_udp_port() {
    require_root!();
    let Some(r) = rootless() else {
        return;
    };
    if !std::path::Path::new("/usr/bin/python3").exists() {
        eprintln!(
            "SKIP: the UDP echo server is the host's python3 (busybox here has no UDP server)"
        );
        return;
    }
    let image = r.import();
    // busybox has no UDP server: the host's python3, its /usr mounted.
    r.ok(&[
        "run",
        "-d",
        "--name",
        "u",
        "-v",
        "/usr:/usr:ro",
        "-p",
        "127.0.0.1:18195:5353/udp",
        image,
        // Not `sh`: PATH would find the host's /usr/bin/sh, whose loader
        // the container has not got before the script's links.
        "/bin/sh",
        "-c",
        UDP_ECHO,
    ]);
    let got = common::wait_for("a UDP answer through the published port", 30, || {
        berth_network::netns::run_in(&r.netns.path, || {
            let u = std::net::UdpSocket::bind("127.0.0.1:0").ok()?;
            u.set_read_timeout(Some(Duration::from_millis(500))).ok()?;
            u.send_to(b"ping\n", "127.0.0.1:18195").ok()?;
            let mut b = [0u8; 64];
            let (n, from) = u.recv_from(&mut b).ok()?;
            Some((String::from_utf8_lossy(&b[..n]).to_string(), from.port()))
        })
        .unwrap()
    });
    assert_eq!(
        got.0.trim(),
        "pong 10.0.2.100",
        "from the container's own address"
    );
    assert_eq!(got.1, 18195, "the answer comes from the published port");
    assert_eq!(
        listening(&r, 18195, true),
        vec![format!("0100007F:{:04X}", 18195)]
    );
    r.ok(&["rm", "-f", "u"]);
    assert!(listening(&r, 18195, true).is_empty());
    r.ok(&["rmi", image]);
    r.assert_no_processes_left();
}

/// sha256 of `data` in hex, by the host's `sha256sum` (coreutils).
fn sha256_hex(data: &[u8]) -> String {
    let mut c = Command::new("sha256sum")
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let mut stdin = c.stdin.take().unwrap();
    let d = data.to_vec();
    let w = std::thread::spawn(move || stdin.write_all(&d));
    let o = c.wait_with_output().unwrap();
    w.join().unwrap().unwrap();
    common::stdout(&o)
        .split_whitespace()
        .next()
        .unwrap()
        .to_string()
}

/// Three servers on a busybox container: 5001 answers the sha256 of
/// what it read once the client half-closed, 5002 sends an 8 MiB random
/// file, 5003 echoes (`cat`).
const BULK_SERVERS: &str = "dd if=/dev/urandom of=/tmp/blob bs=1048576 count=8 2>/dev/null; \
    (while :; do nc -l -p 5001 -e sha256sum; done) & \
    (while :; do nc -l -p 5002 -e cat /tmp/blob; done) & \
    while :; do nc -l -p 5003 -e cat; done";

/// Sends `data` to `port`, half-closes, and reads the answer to its end
/// (None: not connected yet, or no answer).
fn send_half_closed(r: &Rootless, port: u16, data: &[u8]) -> Option<String> {
    berth_network::netns::run_in(&r.netns.path, || {
        let mut c = std::net::TcpStream::connect(("127.0.0.1", port)).ok()?;
        c.set_read_timeout(Some(Duration::from_secs(60))).ok()?;
        c.write_all(data).ok()?;
        c.shutdown(std::net::Shutdown::Write).ok()?;
        let mut out = String::new();
        c.read_to_string(&mut out).ok()?;
        out.split_whitespace().next().map(str::to_string)
    })
    .unwrap()
}

/// Everything `port` sends until its end.
fn fetch(r: &Rootless, port: u16) -> Vec<u8> {
    berth_network::netns::run_in(&r.netns.path, || {
        let mut out = Vec::new();
        if let Ok(mut c) = std::net::TcpStream::connect(("127.0.0.1", port)) {
            let _ = c.set_read_timeout(Some(Duration::from_secs(60)));
            let _ = c.read_to_end(&mut out);
        }
        out
    })
    .unwrap()
}

/// The median time of 15 four-byte request/reply exchanges with the
/// echo server on `port` (None: no answer yet).
fn exchange_median(r: &Rootless, port: u16) -> Option<Duration> {
    berth_network::netns::run_in(&r.netns.path, || {
        let mut c = std::net::TcpStream::connect(("127.0.0.1", port)).ok()?;
        c.set_nodelay(true).ok()?;
        c.set_read_timeout(Some(Duration::from_secs(10))).ok()?;
        let mut took = Vec::new();
        for i in 0..15u8 {
            let t0 = std::time::Instant::now();
            c.write_all(&[b'a' + i; 4]).ok()?;
            let mut b = [0u8; 4];
            c.read_exact(&mut b).ok()?;
            if b != [b'a' + i; 4] {
                return None;
            }
            took.push(t0.elapsed());
        }
        took.sort();
        Some(took[7])
    })
    .unwrap()
}

/// Bulk both ways and small exchanges through the published port of the
/// default network, berth's proxy against podman's rootlessport: 8 MiB
/// into the container, half-closed, whose sha256 comes back over the
/// same connection (the half-close reaches the container, the other
/// direction goes on); an 8 MiB file out of the container, read to its
/// end, with the file's sha256; and request/reply exchanges that are
/// answered at once (the proxy once held each one's last segment back
/// ~200 ms per direction).
#[test]
fn rootless_published_port_bulk_both_ways_and_small_exchanges() {
    require_root!();
    let Some(r) = rootless_with_podman() else {
        return;
    };
    let data: Vec<u8> = (0..8u32 << 20)
        .map(|i| (i.wrapping_mul(2_654_435_761) >> 13) as u8)
        .collect();
    let want = sha256_hex(&data);
    for (tool, base) in [("berth", 18200u16), ("podman", 18210)] {
        let publish: Vec<String> = (0..3)
            .map(|i| format!("127.0.0.1:{}:{}", base + i, 5001 + i))
            .collect();
        let mut args = vec!["run", "-d", "--name", "bulk", "--network", "slirp4netns"];
        for p in &publish {
            args.extend(["-p", p]);
        }
        args.extend(["localhost/bb:1", "sh", "-c", BULK_SERVERS]);
        common::ok(&run_as(&r, tool, &args));
        let got = common::wait_for(&format!("{tool}: 8 MiB out of the container"), 60, || {
            let b = fetch(&r, base + 1);
            (b.len() == 8 << 20).then_some(b)
        });
        let file = common::ok(&run_as(
            &r,
            tool,
            &["exec", "bulk", "sha256sum", "/tmp/blob"],
        ));
        assert_eq!(
            sha256_hex(&got),
            file.split_whitespace().next().unwrap(),
            "{tool}: the file's bytes, in order"
        );
        let answer = common::wait_for(&format!("{tool}: the digest of 8 MiB sent"), 60, || {
            send_half_closed(&r, base, &data)
        });
        assert_eq!(answer, want, "{tool}: the container read the 8 MiB sent");
        let median = common::wait_for(&format!("{tool}: echo exchanges"), 30, || {
            exchange_median(&r, base + 2)
        });
        assert!(
            median < Duration::from_millis(100),
            "{tool}: a 4-byte request and its reply took {median:?} (median of 15)"
        );
        let rm: &[&str] = if tool == "berth" {
            &["rm", "-f", "bulk"]
        } else {
            &["rm", "-f", "-t", "0", "bulk"]
        };
        common::ok(&run_as(&r, tool, rm));
    }
    let _ = r.podman().args(["rmi", "-f", "localhost/bb:1"]).output();
    r.ok(&["rmi", "localhost/bb:1"]);
    assert_no_berth_processes_left(&r);
}
