//! User-mode networking (`--network slirp4netns[:OPTIONS]`, `--network
//! pasta[:OPTIONS]`): each test runs berth inside a network namespace it
//! made (EngineEnv); that namespace is the "host" the helper process
//! (slirp4netns or pasta) runs in, with only loopback (plus, for pasta, a
//! veth pair the test makes there). The podman differential runs podman
//! 4.3 in such a namespace too.

mod callers_support;
mod common;

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream, UdpSocket};
use std::path::Path;
use std::time::Duration;

use common::podman::Podman;
use common::*;
use serde_json::Value;

fn have(program: &str) -> bool {
    callers_support::find_tool(program, &[&format!("/usr/bin/{program}")]).is_some()
}

/// Container shell script: a TCP echo server on `port` (busybox nc, one
/// connection after another).
fn tcp_echo(port: u16) -> String {
    format!("while :; do nc -l -p {port} -e cat; done")
}

/// Host mounts that let the busybox image run the host's python3 (for a
/// UDP echo server: busybox nc has no UDP).
const PY_MOUNTS: [&str; 6] = [
    "-v",
    "/usr:/usr:ro",
    "-v",
    "/lib:/lib:ro",
    "-v",
    "/lib64:/lib64:ro",
];

fn udp_echo(port: u16) -> String {
    format!(
        "/usr/bin/python3 -c 'import socket\ns=socket.socket(socket.AF_INET,socket.SOCK_DGRAM)\n\
         s.bind((\"0.0.0.0\",{port}))\nwhile True:\n d,a=s.recvfrom(2048)\n s.sendto(d,a)\n' &"
    )
}

/// A free port on the test namespace's loopback (TCP and UDP).
fn free_port(env: &EngineEnv) -> u16 {
    berth_network::netns::run_in(&env.netns, || {
        (20000u16..60000)
            .map(|_| {
                let l = TcpListener::bind("127.0.0.1:0").expect("bind");
                l.local_addr().expect("addr").port()
            })
            .find(|p| UdpSocket::bind(("127.0.0.1", *p)).is_ok())
            .expect("a free port")
    })
    .expect("enter the test namespace")
}

/// Sends `msg` over TCP to `addr` from the test namespace; the echo.
fn tcp_roundtrip(netns: &Path, addr: &str, msg: &str) -> std::io::Result<String> {
    let addr: SocketAddr = addr.parse().expect("addr");
    let msg = msg.to_string();
    berth_network::netns::run_in(netns, move || {
        let mut s = TcpStream::connect_timeout(&addr, Duration::from_secs(3))?;
        s.set_read_timeout(Some(Duration::from_secs(3)))?;
        s.write_all(msg.as_bytes())?;
        let mut buf = vec![0u8; msg.len()];
        s.read_exact(&mut buf)?;
        Ok(String::from_utf8_lossy(&buf).into_owned())
    })
    .expect("enter the test namespace")
}

/// Sends `msg` over UDP to `addr` from the test namespace; the echo.
fn udp_roundtrip(netns: &Path, addr: &str, msg: &str) -> std::io::Result<String> {
    let addr: SocketAddr = addr.parse().expect("addr");
    let msg = msg.to_string();
    berth_network::netns::run_in(netns, move || {
        let s = UdpSocket::bind((addr.ip(), 0))?;
        s.set_read_timeout(Some(Duration::from_millis(500)))?;
        s.send_to(msg.as_bytes(), addr)?;
        let mut buf = [0u8; 2048];
        let (n, _) = s.recv_from(&mut buf)?;
        Ok(String::from_utf8_lossy(&buf[..n]).into_owned())
    })
    .expect("enter the test namespace")
}

/// A TCP server on the test namespace's 127.0.0.1 that greets every
/// client with `hello from the host`; runs until the test ends.
fn host_greeter(env: &EngineEnv) -> u16 {
    let l = berth_network::netns::run_in(&env.netns, || {
        TcpListener::bind("127.0.0.1:0").expect("bind on the namespace's loopback")
    })
    .expect("enter the test namespace");
    let port = l.local_addr().expect("addr").port();
    std::thread::spawn(move || {
        for mut c in l.incoming().flatten() {
            let _ = c.write_all(b"hello from the host\n");
        }
    });
    port
}

/// A veth pair in the test's namespace with 192.0.2.1/24 and a default
/// route via 192.0.2.254: an address of the "host" that is not loopback
/// (and the interface pasta copies its address from).
fn host_interface(env: &EngineEnv) {
    for args in [
        &[
            "link", "add", "umh0", "type", "veth", "peer", "name", "umh1",
        ][..],
        &["addr", "add", "192.0.2.1/24", "dev", "umh0"],
        &["link", "set", "umh0", "up"],
        &["link", "set", "umh1", "up"],
        &[
            "route",
            "add",
            "default",
            "via",
            "192.0.2.254",
            "dev",
            "umh0",
        ],
    ] {
        let o = env.in_netns("ip").args(args).output().expect("ip");
        assert!(o.status.success(), "ip {args:?}: {}", stderr(&o));
    }
}

/// Whether the process is gone (a zombie waiting for a parent that does
/// not reap counts as gone: it runs nothing and holds no socket).
fn gone(pid: i32) -> bool {
    match std::fs::read_to_string(format!("/proc/{pid}/stat")) {
        Err(_) => true,
        Ok(s) => s
            .rfind(')')
            .and_then(|i| s[i + 1..].split_whitespace().next())
            .is_some_and(|st| st == "Z" || st == "X"),
    }
}

/// The helper berth recorded for container `name`: its pid.
fn helper_pid(env: &EngineEnv, name: &str) -> i32 {
    let id = env.inspect(name)["Id"].as_str().expect("id").to_string();
    let rec = env
        .runroot()
        .join("usermode")
        .join(&id[..12])
        .join("helper.json");
    let v: Value = serde_json::from_str(
        &std::fs::read_to_string(&rec)
            .unwrap_or_else(|e| panic!("helper record {}: {e}", rec.display())),
    )
    .expect("helper JSON");
    v["pid"].as_i64().expect("pid") as i32
}

fn cmdline(pid: i32) -> String {
    std::fs::read(format!("/proc/{pid}/cmdline"))
        .map(|b| String::from_utf8_lossy(&b).replace('\0', " "))
        .unwrap_or_default()
}

/// What a container sees of its network: tap0's addresses, the routes,
/// resolv.conf's nameservers.
const VIEW: &str = "ip -4 -o addr show; echo ROUTES; ip -4 route; echo RESOLV; \
                    grep ^nameserver /etc/resolv.conf; echo MTU; ip -o link show tap0 | grep -o 'mtu [0-9]*'";

/// `VIEW`'s output with the parts that differ by nature (interface
/// indexes, broadcast spelling) normalized.
fn normalize_view(s: &str) -> Vec<String> {
    s.lines()
        .map(|l| {
            let w: Vec<&str> = l.split_whitespace().collect();
            // "2: tap0    inet 10.0.2.100/24 brd ... scope global tap0..."
            if w.len() > 3 && w[0].ends_with(':') && w[2] == "inet" {
                format!("{} inet {}", w[1], w[3])
            } else {
                w.join(" ")
            }
        })
        .filter(|l| !l.is_empty())
        .collect()
}

#[test]
fn slirp4netns_interface_routes_dns_ports_and_cleanup() {
    require_root!();
    if !have("slirp4netns") {
        eprintln!("SKIP: slirp4netns_interface_routes_dns_ports_and_cleanup: slirp4netns is not installed");
        return;
    }
    let env = EngineEnv::new();
    let img = env.busybox_image();
    host_interface(&env);
    let (tport, uport) = (free_port(&env), free_port(&env));
    let script = format!("{} {}", udp_echo(9090), tcp_echo(8080));
    let tpub = format!("{tport}:8080");
    let upub = format!("{uport}:9090/udp");
    let mut args = vec![
        "run",
        "-d",
        "--name",
        "s4",
        "--network",
        "slirp4netns",
        "-p",
        &tpub,
        "-p",
        &upub,
    ];
    args.extend_from_slice(&PY_MOUNTS);
    args.extend_from_slice(&[&img, "sh", "-c", &script]);
    env.ok(&args);

    // What the container sees: tap0 10.0.2.100/24, default via 10.0.2.2,
    // slirp4netns' DNS forwarder first, MTU 65520 (podman's).
    let view = env.ok(&["exec", "s4", "sh", "-c", VIEW]);
    assert!(
        view.contains("tap0") && view.contains("inet 10.0.2.100/24"),
        "{view}"
    );
    assert!(view.contains("default via 10.0.2.2 dev tap0"), "{view}");
    let resolv = env.ok(&["exec", "s4", "cat", "/etc/resolv.conf"]);
    assert_eq!(
        resolv.lines().find(|l| l.starts_with("nameserver")),
        Some("nameserver 10.0.2.3"),
        "{resolv}"
    );
    assert!(view.trim_end().ends_with("mtu 65520"), "{view}");
    let hosts = env.ok(&["exec", "s4", "cat", "/etc/hosts"]);
    assert!(hosts.contains("10.0.2.100\t"), "{hosts}");

    // The helper: slirp4netns for this container's pinned namespace.
    let pid = helper_pid(&env, "s4");
    let cl = cmdline(pid);
    assert!(
        cl.contains("slirp4netns") && cl.contains("--disable-host-loopback"),
        "{cl}"
    );
    assert!(
        cl.contains(&env.runroot().join("netns").display().to_string()),
        "{cl}"
    );

    // Published TCP from the namespace's 127.0.0.1 and from its address;
    // UDP from its address (slirp4netns drops UDP replies to its alias of
    // the host's loopback unless allow_host_loopback=true; see
    // docs/networking.md).
    let got = wait_for(
        "the TCP echo answers through the published port",
        20,
        || tcp_roundtrip(&env.netns, &format!("127.0.0.1:{tport}"), "ping tcp").ok(),
    );
    assert_eq!(got, "ping tcp");
    // (The echo server restarts nc between connections: retried.)
    let got = wait_for(
        "the TCP echo answers on the namespace's address",
        20,
        || tcp_roundtrip(&env.netns, &format!("192.0.2.1:{tport}"), "ping 2").ok(),
    );
    assert_eq!(got, "ping 2");
    let got = wait_for(
        "the UDP echo answers through the published port",
        20,
        || udp_roundtrip(&env.netns, &format!("192.0.2.1:{uport}"), "ping udp").ok(),
    );
    assert_eq!(got, "ping udp");

    // The host's loopback is not reachable by default.
    let hp = host_greeter(&env);
    let o = env.berth(&[
        "exec",
        "s4",
        "sh",
        "-c",
        &format!("nc -w 3 10.0.2.2 {hp} </dev/null"),
    ]);
    assert!(
        !stdout(&o).contains("hello from the host"),
        "{}",
        stdout(&o)
    );

    // inspect: the mode (as podman names it) and the ports.
    let v = env.inspect("s4");
    assert_eq!(v["HostConfig"]["NetworkMode"], "slirp4netns");
    let ports = &v["NetworkSettings"]["Ports"];
    assert_eq!(
        ports["8080/tcp"][0]["HostPort"],
        tport.to_string(),
        "{ports}"
    );
    assert_eq!(
        ports["9090/udp"][0]["HostPort"],
        uport.to_string(),
        "{ports}"
    );
    let port_out = env.ok(&["port", "s4"]);
    assert!(
        port_out.contains(&format!("8080/tcp -> 0.0.0.0:{tport}")),
        "{port_out}"
    );

    // stop: the helper goes, the port is closed; start brings both back.
    env.ok(&["stop", "-t", "1", "s4"]);
    wait_for("slirp4netns gone after stop", 10, || {
        gone(pid).then_some(())
    });
    assert!(tcp_roundtrip(&env.netns, &format!("127.0.0.1:{tport}"), "x").is_err());
    assert!(!env
        .runroot()
        .join("usermode")
        .join(&v["Id"].as_str().unwrap()[..12])
        .exists());
    env.ok(&["start", "s4"]);
    let pid2 = helper_pid(&env, "s4");
    assert_ne!(pid, pid2);
    let got = wait_for("published again after start", 20, || {
        tcp_roundtrip(&env.netns, &format!("127.0.0.1:{tport}"), "again").ok()
    });
    assert_eq!(got, "again");

    // kill -9 of the container's process: the monitor cleans up.
    let cpid = env.inspect("s4")["State"]["Pid"].as_i64().expect("pid") as i32;
    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(cpid),
        nix::sys::signal::Signal::SIGKILL,
    )
    .expect("kill -9 the container");
    wait_for("slirp4netns gone after kill -9", 20, || {
        gone(pid2).then_some(())
    });
    env.wait_inspect("s4", "exited", |v| v["State"]["Status"] == "exited");
    assert!(!env
        .runroot()
        .join("netns")
        .join(v["Id"].as_str().unwrap())
        .exists());

    // rm of a running one.
    env.ok(&["start", "s4"]);
    let pid3 = helper_pid(&env, "s4");
    env.ok(&["rm", "-f", "s4"]);
    wait_for("slirp4netns gone after rm -f", 10, || {
        gone(pid3).then_some(())
    });
    assert!(tcp_roundtrip(&env.netns, &format!("127.0.0.1:{tport}"), "x").is_err());
    let left: Vec<_> = std::fs::read_dir(env.runroot().join("usermode"))
        .map(|d| d.flatten().map(|e| e.path()).collect())
        .unwrap_or_default();
    assert!(left.is_empty(), "{left:?}");
}

#[test]
fn slirp4netns_host_loopback_options_and_bad_input() {
    require_root!();
    if !have("slirp4netns") {
        eprintln!(
            "SKIP: slirp4netns_host_loopback_options_and_bad_input: slirp4netns is not installed"
        );
        return;
    }
    let env = EngineEnv::new();
    let img = env.busybox_image();
    let hp = host_greeter(&env);
    // allow_host_loopback=true: 10.0.2.2 is the host's 127.0.0.1.
    let o = env.berth(&[
        "run",
        "--rm",
        "--network",
        "slirp4netns:allow_host_loopback=true,mtu=1500,enable_ipv6=false",
        &img,
        "sh",
        "-c",
        &format!("nc -w 3 10.0.2.2 {hp} </dev/null; ip -o link show tap0 | grep -o 'mtu [0-9]*'"),
    ]);
    assert!(o.status.success(), "{}", stderr(&o));
    assert!(stdout(&o).contains("hello from the host"), "{}", stdout(&o));
    assert!(stdout(&o).contains("mtu 1500"), "{}", stdout(&o));
    // cidr: the container's address and DNS forwarder follow the range.
    let o = env.berth(&[
        "run",
        "--rm",
        "--network",
        "slirp4netns:cidr=10.9.0.0/24,port_handler=slirp4netns",
        &img,
        "sh",
        "-c",
        "ip -4 -o addr show tap0; ip route; grep ^nameserver /etc/resolv.conf",
    ]);
    let out = stdout(&o);
    assert!(out.contains("10.9.0.100/24"), "{out}");
    assert!(out.contains("default via 10.9.0.2"), "{out}");
    assert!(out.contains("nameserver 10.9.0.3"), "{out}");
    // Nothing of those --rm runs is left.
    let left: Vec<_> = std::fs::read_dir(env.runroot().join("usermode"))
        .map(|d| d.flatten().map(|e| e.path()).collect())
        .unwrap_or_default();
    assert!(left.is_empty(), "{left:?}");

    // Bad options: a clear error naming the option; nothing created.
    for (net, needle) in [
        ("slirp4netns:nope=1", "nope=1"),
        ("slirp4netns:mtu=5", "mtu=5"),
        // `rootlesskit` names the default (the port proxy), as podman's.
        ("slirp4netns:port_handler=socat", "socat"),
        (
            "slirp4netns:allow_host_loopback=maybe",
            "allow_host_loopback",
        ),
    ] {
        let o = env.berth(&[
            "run",
            "--rm",
            "--name",
            "bad",
            "--network",
            net,
            &img,
            "true",
        ]);
        assert!(!o.status.success(), "{net}");
        let e = stderr(&o);
        assert!(
            e.contains(needle) && e.contains("slirp4netns"),
            "{net}: {e}"
        );
        assert!(!e.contains("Some(") && !e.contains("{ "), "{e}");
        assert!(env.inspect("bad").is_null(), "{net}: nothing is left");
    }
    // A user-mode network does not combine with bridge-only flags.
    let o = env.berth(&[
        "run",
        "--rm",
        "--network",
        "slirp4netns",
        "--ip",
        "10.0.2.50",
        &img,
        "true",
    ]);
    assert!(!o.status.success());
    assert!(stderr(&o).contains("--ip"), "{}", stderr(&o));
}

/// Debian's passt 2023-03: pasta copies the host's addresses and routes
/// from the interface with the default route, so the test gives its
/// namespace one (a veth pair, 192.0.2.1/24, default via 192.0.2.254).
#[test]
fn pasta_interface_ports_and_cleanup() {
    require_root!();
    if !have("pasta") {
        eprintln!("SKIP: pasta_interface_ports_and_cleanup: pasta is not installed (apt-get install passt)");
        return;
    }
    let env = EngineEnv::new();
    let img = env.busybox_image();
    host_interface(&env);
    // UDP on the same port on both sides, and on another port (the 2023-03
    // pasta loses the replies of a remapped UDP port: checked below).
    let (tport, uport, rport) = (free_port(&env), free_port(&env), free_port(&env));
    let script = format!("{} {} {}", udp_echo(uport), udp_echo(9090), tcp_echo(8080));
    let tpub = format!("{tport}:8080");
    let upub = format!("{uport}:{uport}/udp");
    let rpub = format!("{rport}:9090/udp");
    let mut args = vec![
        "run",
        "-d",
        "--name",
        "pa",
        "--network",
        "pasta",
        "-p",
        &tpub,
        "-p",
        &upub,
        "-p",
        &rpub,
    ];
    args.extend_from_slice(&PY_MOUNTS);
    args.extend_from_slice(&[&img, "sh", "-c", &script]);
    let o = env.berth(&args);
    if !o.status.success() {
        panic!("pasta run: {}", stderr(&o));
    }
    // The namespace's interface is a copy of the host's (pasta's way).
    let view = env.ok(&["exec", "pa", "sh", "-c", "ip -4 -o addr show; ip -4 route"]);
    assert!(
        view.contains("umh0") && view.contains("192.0.2.1/24"),
        "{view}"
    );
    assert!(view.contains("default via 192.0.2.254"), "{view}");
    let pid = helper_pid(&env, "pa");
    assert!(cmdline(pid).contains("pasta"), "{}", cmdline(pid));
    let got = wait_for("TCP through pasta's -t", 20, || {
        tcp_roundtrip(&env.netns, &format!("127.0.0.1:{tport}"), "ping tcp").ok()
    });
    assert_eq!(got, "ping tcp");
    let got = wait_for("UDP through pasta's -u", 20, || {
        udp_roundtrip(&env.netns, &format!("127.0.0.1:{uport}"), "ping udp").ok()
    });
    assert_eq!(got, "ping udp");
    if udp_roundtrip(&env.netns, &format!("127.0.0.1:{rport}"), "remapped").is_err() {
        eprintln!(
            "SKIP: pasta_interface_ports_and_cleanup: a UDP port published on another \
             container port ({rport}:9090/udp) gets no reply through this pasta \
             (Debian's passt 2023-03); the same port on both sides works"
        );
    }
    let v = env.inspect("pa");
    assert_eq!(v["HostConfig"]["NetworkMode"], "pasta");
    env.ok(&["stop", "-t", "1", "pa"]);
    wait_for("pasta gone after stop", 10, || gone(pid).then_some(()));
    assert!(tcp_roundtrip(&env.netns, &format!("127.0.0.1:{tport}"), "x").is_err());
    env.ok(&["start", "pa"]);
    let pid2 = helper_pid(&env, "pa");
    env.ok(&["rm", "-f", "pa"]);
    wait_for("pasta gone after rm -f", 10, || gone(pid2).then_some(()));

    // Outbound to the host: the 2023-03 pasta maps the gateway address
    // to the host's loopback unless --no-map-gw (berth's default, as
    // podman's); `pasta:--map-gw` asks for it. That pasta never shows nc
    // the host closing the connection, and busybox `timeout` once left nc
    // running for good under load: the shell ends it after 4 s itself.
    let hp = host_greeter(&env);
    let o = env.berth(&[
        "run",
        "--rm",
        "--network",
        "pasta:--map-gw",
        &img,
        "sh",
        "-c",
        &format!(
            "nc -w 3 192.0.2.254 {hp} </dev/null & p=$!; sleep 4; kill -9 $p 2>/dev/null; true"
        ),
    ]);
    assert!(stdout(&o).contains("hello from the host"), "{}", stderr(&o));
    let o = env.berth(&[
        "run",
        "--rm",
        "--network",
        "pasta",
        &img,
        "sh",
        "-c",
        &format!(
            "nc -w 3 192.0.2.254 {hp} </dev/null & p=$!; sleep 4; kill -9 $p 2>/dev/null; true"
        ),
    ]);
    assert!(
        !stdout(&o).contains("hello from the host"),
        "{}",
        stdout(&o)
    );
}

// ---- the podman differential ------------------------------------------------

/// The same `--network slirp4netns -p ...` containers through podman 4.3
/// (runc) and berth, in the same kind of private namespace: what the
/// container sees (addresses, routes, nameservers, MTU) and whether the
/// published TCP port and the host's loopback are reachable.
#[test]
fn slirp4netns_matches_podman() {
    require_root!();
    if !have("slirp4netns") {
        eprintln!("SKIP: slirp4netns_matches_podman: slirp4netns is not installed");
        return;
    }
    let env = EngineEnv::new();
    let Some(p) = Podman::in_netns(&env.netns) else {
        return;
    };
    let img = env.busybox_image();
    let tar = env.dir.path().join("rootfs.tar");
    let o = p.run(&[
        "import",
        "--change",
        "CMD [\"/bin/sh\"]",
        &tar.to_string_lossy(),
        &img,
    ]);
    assert!(o.status.success(), "podman import: {}", stderr(&o));
    let cg = p.cgroup_parent.clone();

    // What the container sees, default options and allow_host_loopback.
    let hp = host_greeter(&env);
    for net in [
        "slirp4netns",
        "slirp4netns:allow_host_loopback=true,enable_ipv6=false",
    ] {
        let script = format!("{VIEW}; echo HOST; nc -w 3 10.0.2.2 {hp} </dev/null");
        let po = p.run(&[
            "run",
            "--rm",
            "--network",
            net,
            "--cgroup-parent",
            &cg,
            &img,
            "sh",
            "-c",
            &script,
        ]);
        let bo = env.berth(&["run", "--rm", "--network", net, &img, "sh", "-c", &script]);
        assert_eq!(po.status.code(), bo.status.code(), "{net}: exit codes");
        assert_eq!(
            normalize_view(&stdout(&bo)),
            normalize_view(&stdout(&po)),
            "{net}: what the container sees (berth left, podman right)"
        );
    }

    // Published port reachability from the namespace's 127.0.0.1.
    let (pp, bp) = (free_port(&env), free_port(&env));
    let script = tcp_echo(8080);
    let ppub = format!("{pp}:8080");
    let po = p.run(&[
        "run",
        "-d",
        "--name",
        "pweb",
        "--network",
        "slirp4netns",
        "--cgroup-parent",
        &cg,
        "-p",
        &ppub,
        &img,
        "sh",
        "-c",
        &script,
    ]);
    assert!(po.status.success(), "podman run: {}", stderr(&po));
    let bpub = format!("{bp}:8080");
    env.ok(&[
        "run",
        "-d",
        "--name",
        "bweb",
        "--network",
        "slirp4netns",
        "-p",
        &bpub,
        &img,
        "sh",
        "-c",
        &script,
    ]);
    let pgot = wait_for("podman's published port", 30, || {
        tcp_roundtrip(&env.netns, &format!("127.0.0.1:{pp}"), "hi").ok()
    });
    let bgot = wait_for("berth's published port", 30, || {
        tcp_roundtrip(&env.netns, &format!("127.0.0.1:{bp}"), "hi").ok()
    });
    assert_eq!(pgot, bgot);
    let pi: Value =
        serde_json::from_str(&stdout(&p.run(&["inspect", "pweb"]))).expect("podman inspect");
    let bi = env.inspect("bweb");
    assert_eq!(
        bi["HostConfig"]["NetworkMode"],
        pi[0]["HostConfig"]["NetworkMode"]
    );
    assert_eq!(
        bi["NetworkSettings"]["Ports"]["8080/tcp"][0]["HostIp"],
        pi[0]["NetworkSettings"]["Ports"]["8080/tcp"][0]["HostIp"]
    );
    // Both stop serving once the containers are removed.
    let _ = p.run(&["rm", "-f", "-t", "0", "pweb"]);
    env.ok(&["rm", "-f", "bweb"]);
    assert!(tcp_roundtrip(&env.netns, &format!("127.0.0.1:{pp}"), "x").is_err());
    assert!(tcp_roundtrip(&env.netns, &format!("127.0.0.1:{bp}"), "x").is_err());
}
