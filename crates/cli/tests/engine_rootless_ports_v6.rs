//! Rootless published ports over IPv6 (`-p [::1]:H:C`, and `-p H:C`
//! answering on `[::]` too, as podman's rootlessport), for an unprivileged
//! user of the test's own, on the default network, a bridge network and
//! through pasta, compared with rootless podman.
mod common;
mod rootless_ports_support;

use std::io::{Read, Write};
use std::path::Path;
use std::process::Command;
use std::time::Duration;

use common::rootless_engine::Rootless;
use rootless_ports_support::{
    assert_no_berth_processes_left, have_podman, listening, rootless, run_as, short_podman_tmpdir,
};

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
