//! Rootless published ports through berth's port proxy (as podman's
//! rootlessport), for an unprivileged user of the test's own
//! (common::rootless), every command inside a network namespace the test
//! made: the port reaches the container from the namespace's loopback,
//! the same bytes come back, the container sees the same source address
//! as under rootless podman, `port` says what podman's says, and after
//! `stop`/`rm` no proxy process and no listening socket are left.
//! Both the default network (slirp4netns) and a user-defined network
//! (bridges in the rootless network namespace) are covered, and UDP.
mod common;

use std::io::{Read, Write};
use std::path::Path;
use std::process::{Command, Output};
use std::time::Duration;

use common::rootless_engine::Rootless;

fn rootless() -> Option<Rootless> {
    Rootless::with_slirp4netns("rootless published ports")
}

/// Rootless podman's slirp4netns API socket lives in its tmp dir, by
/// default `$XDG_RUNTIME_DIR/libpod/tmp`: under the test user's long
/// runtime dir its path passes the 108 bytes of a socket address. The
/// user's containers.conf gives podman a shorter one (before podman's
/// first command, which records it in its database).
fn short_podman_tmpdir(r: &Rootless) {
    let t = r.u.base.join("t");
    std::fs::create_dir_all(&t).unwrap();
    r.chown_to_user(&t);
    let conf = r.u.home.join(".config/containers");
    std::fs::create_dir_all(&conf).unwrap();
    std::fs::write(
        conf.join("containers.conf"),
        format!("[engine]\ntmp_dir = \"{}\"\n", t.display()),
    )
    .unwrap();
    for d in [
        r.u.home.join(".config"),
        conf.clone(),
        conf.join("containers.conf"),
    ] {
        r.chown_to_user(&d);
    }
}

/// No process of the user is left but rootless podman's pause process
/// (`catatonit -P`, which podman keeps by design; the user's drop ends it)
/// once `berth system migrate` has ended berth's.
fn assert_no_berth_processes_left(r: &Rootless) {
    r.assert_nothing_left_but(common::rootless_engine::is_podman_pause);
}

fn have_podman() -> bool {
    let ok = Command::new("podman")
        .arg("--version")
        .output()
        .is_ok_and(|o| o.status.success());
    if !ok {
        eprintln!("SKIP: the comparison with rootless podman needs podman");
    }
    ok
}

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

/// The TCP (or UDP) sockets listening on `port` in the test's namespace,
/// as `ADDR:PORT` in /proc/net/{tcp,tcp6,udp,udp6} hex form.
fn listening(r: &Rootless, port: u16, udp: bool) -> Vec<String> {
    let files: &[&str] = if udp {
        &["udp", "udp6"]
    } else {
        &["tcp", "tcp6"]
    };
    berth_network::netns::run_in(&r.netns.path, || {
        let mut out = Vec::new();
        for f in files {
            let t =
                std::fs::read_to_string(format!("/proc/thread-self/net/{f}")).unwrap_or_default();
            for l in t.lines().skip(1) {
                let v: Vec<&str> = l.split_whitespace().collect();
                // TCP: state 0A is LISTEN; UDP: 07 is an unconnected socket.
                let want = if udp { "07" } else { "0A" };
                if v.len() > 3 && v[3] == want && v[1].ends_with(&format!(":{port:04X}")) {
                    out.push(v[1].to_string());
                }
            }
        }
        out
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

fn run_as(r: &Rootless, tool: &str, args: &[&str]) -> Output {
    let mut c = if tool == "berth" {
        r.in_netns(common::berth_bin())
    } else {
        r.podman()
    };
    let o = c.args(args).output().unwrap();
    eprintln!(
        "{tool} {args:?} -> {}\n{}{}",
        o.status,
        common::stdout(&o),
        common::stderr(&o)
    );
    o
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
    if !have_podman() {
        return;
    }
    let Some(r) = rootless() else {
        return;
    };
    short_podman_tmpdir(&r);
    if !r.podman_import("localhost/bb:1") {
        return;
    }
    r.import();
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

/// `GET /i` on `addr` from the test's namespace: the body, or None.
fn get_at(r: &Rootless, addr: &str) -> Option<String> {
    let addr: std::net::SocketAddr = addr.parse().unwrap();
    berth_network::netns::run_in(&r.netns.path, || {
        let mut c = std::net::TcpStream::connect_timeout(&addr, Duration::from_secs(3)).ok()?;
        c.set_read_timeout(Some(Duration::from_secs(5))).ok()?;
        c.write_all(b"GET /i HTTP/1.0\r\n\r\n").ok()?;
        let mut out = String::new();
        c.read_to_string(&mut out).ok()?;
        let body = out.split_once("\r\n\r\n")?.1.trim().to_string();
        (!body.is_empty()).then_some(body)
    })
    .unwrap()
}

/// A veth pair in the test's namespace with IPv4 and IPv6 addresses and
/// default routes: the outside interface pasta copies its addresses from.
fn outside_interface(r: &Rootless) {
    for args in [
        &[
            "link", "add", "v6o0", "type", "veth", "peer", "name", "v6o1",
        ][..],
        &["addr", "add", "192.0.2.1/24", "dev", "v6o0"],
        &[
            "-6",
            "addr",
            "add",
            "2001:db8::1/64",
            "dev",
            "v6o0",
            "nodad",
        ],
        &["link", "set", "v6o0", "up"],
        &["link", "set", "v6o1", "up"],
        &[
            "route",
            "add",
            "default",
            "via",
            "192.0.2.254",
            "dev",
            "v6o0",
        ],
        &[
            "-6",
            "route",
            "add",
            "default",
            "via",
            "2001:db8::fe",
            "dev",
            "v6o0",
        ],
    ] {
        let st = Command::new("nsenter")
            .arg(format!("--net={}", r.netns.path.display()))
            .arg("ip")
            .args(args)
            .status()
            .unwrap();
        assert!(st.success(), "ip {args:?}");
    }
}

const V6_HTTPD: &str = "mkdir -p /w && echo hi-v6 > /w/i && exec httpd -f -p 80 -h /w";

/// What one engine does with IPv6 published ports, rootless.
#[derive(Debug, PartialEq)]
struct V6Seen {
    /// `-p [::1]:P:80` on the default network, from [::1]:P.
    default_v6: Option<String>,
    /// ... and from 127.0.0.1:P (not published there).
    default_v4_same_port: Option<String>,
    /// `-p P:80` (no host address), from [::1]:P and 127.0.0.1:P.
    unspecified: (Option<String>, Option<String>),
    /// `-p [::1]:P:80` on a user-defined network, from [::1]:P.
    bridge_v6: Option<String>,
    /// `port_handler=slirp4netns` with `-p [::1]:P:80` fails.
    slirp_handler_refused: bool,
}

fn v6_scenario(r: &Rootless, tool: &str, base: u16) -> (V6Seen, String, bool) {
    let image = "localhost/bb:1";
    let p = |n: u16| (base + n).to_string();
    let v6 = format!("[::1]:{}:80", p(0));
    let any = format!("{}:80", p(1));
    common::ok(&run_as(
        r,
        tool,
        &[
            "run", "-d", "--name", "v6d", "-p", &v6, "-p", &any, image, "sh", "-c", V6_HTTPD,
        ],
    ));
    let default_v6 = Some(common::wait_for("the IPv6 published port", 30, || {
        get_at(r, &format!("[::1]:{}", p(0)))
    }));
    let default_v4_same_port = get_at(r, &format!("127.0.0.1:{}", p(0)));
    let unspecified = (
        get_at(r, &format!("[::1]:{}", p(1))),
        get_at(r, &format!("127.0.0.1:{}", p(1))),
    );
    let ports = common::ok(&run_as(r, tool, &["port", "v6d"]));
    let net = format!("v6n{tool}");
    common::ok(&run_as(r, tool, &["network", "create", &net]));
    let v6b = format!("[::1]:{}:80", p(2));
    common::ok(&run_as(
        r,
        tool,
        &[
            "run",
            "-d",
            "--name",
            "v6b",
            "--network",
            &net,
            "-p",
            &v6b,
            image,
            "sh",
            "-c",
            V6_HTTPD,
        ],
    ));
    let bridge_v6 = Some(common::wait_for("the IPv6 port on a network", 30, || {
        get_at(r, &format!("[::1]:{}", p(2)))
    }));
    let v6s = format!("[::1]:{}:80", p(3));
    let o = run_as(
        r,
        tool,
        &[
            "run",
            "-d",
            "--name",
            "v6s",
            "--network",
            "slirp4netns:port_handler=slirp4netns",
            "-p",
            &v6s,
            image,
            "true",
        ],
    );
    let slirp_handler_refused = !o.status.success();
    let err = common::stderr(&o);
    let names = common::ok(&run_as(r, tool, &["ps", "-a", "--format", "{{.Names}}"]));
    let left = names.lines().any(|l| l == "v6s");
    let mut rm = vec!["rm", "-f"];
    if tool == "podman" {
        rm.extend(["-t", "0"]);
    }
    rm.extend(["v6d", "v6b"]);
    if left {
        rm.push("v6s");
    }
    common::ok(&run_as(r, tool, &rm));
    common::ok(&run_as(r, tool, &["network", "rm", &net]));
    for n in 0..4 {
        assert!(
            listening(r, base + n, false).is_empty(),
            "{tool}: port {} listens",
            base + n
        );
    }
    let seen = V6Seen {
        default_v6,
        default_v4_same_port,
        unspecified,
        bridge_v6,
        slirp_handler_refused,
    };
    (seen, format!("{ports}{err}"), left)
}

/// IPv6 published ports rootless (`-p [::1]:P:80`), as rootless podman
/// 4.3's (slirp4netns with rootlessport): served on [::1] (and not on
/// 127.0.0.1) through the port proxy on the default network and on a
/// user-defined one, `-p P:80` on both families; `port_handler=slirp4netns`
/// (slirp4netns' own forwarding takes IPv4 only) fails with both, berth
/// at create with an error naming the option and leaving no container
/// (podman fails at start and leaves it created). pasta's own
/// forwarding (berth only: podman 4.3 has no pasta) serves [::1] too.
#[test]
fn rootless_ipv6_published_ports_match_podman() {
    require_root!();
    let Some(r) = rootless() else {
        return;
    };
    let podman = have_podman();
    if podman {
        short_podman_tmpdir(&r);
    }
    r.import();
    let podman = podman && r.podman_import("localhost/bb:1");
    let (b, b_out, b_left) = v6_scenario(&r, "berth", 18400);
    let hi = Some("hi-v6".to_string());
    assert_eq!(
        b,
        V6Seen {
            default_v6: hi.clone(),
            default_v4_same_port: None,
            unspecified: (hi.clone(), hi.clone()),
            bridge_v6: hi.clone(),
            slirp_handler_refused: true,
        },
        "berth"
    );
    assert!(b_out.contains("80/tcp -> [::1]:18400"), "{b_out}");
    assert!(
        b_out.contains("port_handler=slirp4netns publishes on IPv4 host addresses only"),
        "{b_out}"
    );
    assert!(!b_left, "berth left the refused container");
    if podman {
        let (p, p_out, _) = v6_scenario(&r, "podman", 18410);
        assert_eq!(b, p, "berth (left) and rootless podman (right)");
        // podman 4.3 prints `::1:PORT`; berth brackets the address (docs/cli.md).
        assert!(p_out.contains("80/tcp -> ::1:18410"), "{p_out}");
    }
    if Path::new("/usr/bin/pasta").exists() {
        outside_interface(&r);
        common::ok(&run_as(
            &r,
            "berth",
            &[
                "run",
                "-d",
                "--name",
                "v6p",
                "--network",
                "pasta",
                "-p",
                "[::1]:18420:80",
                "localhost/bb:1",
                "sh",
                "-c",
                V6_HTTPD,
            ],
        ));
        let got = common::wait_for("the IPv6 port through pasta", 30, || {
            get_at(&r, "[::1]:18420")
        });
        assert_eq!(got, "hi-v6");
        common::ok(&run_as(&r, "berth", &["rm", "-f", "v6p"]));
    } else {
        eprintln!("SKIP: the pasta part needs pasta (apt-get install passt)");
    }
    if podman {
        let _ = r.podman().args(["rmi", "-f", "localhost/bb:1"]).output();
    }
    r.ok(&["rmi", "localhost/bb:1"]);
    assert_no_berth_processes_left(&r);
}
