//! A network's bridge keeps the address it was created with while
//! containers join (as Docker's bridge driver gives its bridges one). A
//! Linux bridge without an address of its own takes the lowest of its
//! ports' and changes it when a port with a lower one joins; containers
//! that had the old one for their gateway then sent their routed traffic
//! to a port's address, which the bridge forwarded unrouted: outbound
//! connections hung until the gateway's neighbour entry was renewed (the
//! intermittent outbound failure of rootless bridge networks, whose
//! bridges are made by the same code). Seen from the test's namespace
//! (the bridge's address) and from inside (a connection out of the
//! network after every join).
mod common;

use std::io::Write;
use std::net::TcpListener;

use common::*;

/// The MAC address of link `name` in the test's namespace.
fn mac_of(env: &EngineEnv, name: &str) -> String {
    let out = stdout(
        &env.in_netns("ip")
            .args(["-o", "link", "show", "dev", name])
            .output()
            .expect("ip link show"),
    );
    out.split_whitespace()
        .skip_while(|w| *w != "link/ether")
        .nth(1)
        .unwrap_or_default()
        .to_string()
}

#[test]
fn bridge_address_is_its_own_and_stays_while_containers_join() {
    require_root!();
    let env = EngineEnv::new();
    let img = env.busybox_image();
    // An address outside the network, in the test's namespace: reached
    // through the gateway (routed), as the outside world would be.
    for args in [
        &[
            "link", "add", "out0", "type", "veth", "peer", "name", "out1",
        ][..],
        &["addr", "add", "192.0.2.1/24", "dev", "out0"],
        &["link", "set", "out0", "up"],
        &["link", "set", "out1", "up"],
    ] {
        ok(&env.in_netns("ip").args(args).output().expect("ip"));
    }
    let listener = berth_network::netns::run_in(&env.netns, || TcpListener::bind("192.0.2.1:0"))
        .expect("enter the test's namespace")
        .expect("listen on 192.0.2.1");
    let port = listener.local_addr().expect("local addr").port();
    let server = std::thread::spawn(move || {
        for mut c in listener.incoming().flatten() {
            if c.write_all(b"outside-ok\n").is_err() {
                break;
            }
        }
    });

    env.ok(&["network", "create", "--subnet", "10.231.7.0/24", "brmac"]);
    let bridge = env.ok(&[
        "network",
        "inspect",
        "--format",
        "{{.NetworkInterface}}",
        "brmac",
    ]);
    let bridge = bridge.trim().to_string();
    for i in 0..4 {
        let name = format!("m{i}");
        env.ok(&[
            "run",
            "-d",
            "--name",
            &name,
            "--network",
            "brmac",
            &img,
            "sleep",
            "600",
        ]);
        let mac = mac_of(&env, &bridge);
        // 02:42 and the gateway's address 10.231.7.1, from the start.
        assert_eq!(
            mac, "02:42:0a:e7:07:01",
            "bridge {bridge} after {name} joined"
        );
        // The first container (whose neighbour entry for the gateway is
        // the oldest) still gets out after every join.
        let got = env.ok(&[
            "exec",
            "m0",
            "sh",
            "-c",
            &format!("nc -w 5 192.0.2.1 {port} </dev/null"),
        ]);
        assert_eq!(got.trim(), "outside-ok", "after {name} joined");
    }
    env.ok(&["rm", "-f", "m0", "m1", "m2", "m3"]);
    env.ok(&["network", "rm", "brmac"]);
    // The listener thread ends with the process (it blocks in accept).
    drop(server);
}
