//! A network's bridge against dockerd's (20.10, libnetwork's bridge
//! driver), on a user-defined network of the same subnet and on the
//! default network, each in a network namespace of the test's own: both
//! give the bridge an address of its own at creation (the kernel records
//! it as set: `addr_assign_type` 3) that stays while containers join, and
//! both make a container's address `02:42` and its IPv4 address. What
//! differs: dockerd's bridge address is `02:42` and 4 random bytes
//! (libnetwork's setupDevice, `GenerateRandomMAC`), berth's `02:42` and
//! the gateway's IPv4 address (docs/cli.md says why).
mod callers_support;
mod common;
#[path = "api_support/dockerd.rs"]
mod dockerd;

use std::path::Path;
use std::process::{Command, Output, Stdio};

use common::*;
use dockerd::PrivateDockerd;

/// `ip -d -o link show dev NAME` in `netns`: its MAC address.
fn mac_in(netns: &Path, name: &str) -> String {
    let o = Command::new("nsenter")
        .arg(format!("--net={}", netns.display()))
        .args(["ip", "-d", "-o", "link", "show", "dev", name])
        .output()
        .expect("ip -d link show");
    let out = ok(&o);
    assert!(out.contains(" bridge "), "{name} is no bridge: {out}");
    out.split_whitespace()
        .skip_while(|w| *w != "link/ether")
        .nth(1)
        .unwrap_or_default()
        .to_string()
}

/// How the kernel got link `name`'s address (sysfs `addr_assign_type`:
/// 0 permanent, 1 random, 2 stolen, 3 set), read through a sysfs mounted
/// in a mount namespace of its own inside `netns`.
fn assign_type_in(netns: &Path, name: &str) -> String {
    let o = Command::new("nsenter")
        .arg(format!("--net={}", netns.display()))
        .args(["unshare", "--mount", "--propagation", "private", "sh", "-c"])
        .arg("mount -t sysfs berth-test-sysfs /sys && cat /sys/class/net/\"$1\"/addr_assign_type")
        .args(["sh", name])
        .output()
        .expect("read addr_assign_type");
    ok(&o).trim().to_string()
}

/// The MAC address `02:42` and the IPv4 address `ip` make.
fn mac_of_ip(ip: &str) -> String {
    let b: Vec<u8> = ip.split('.').map(|x| x.parse().expect("octet")).collect();
    format!("02:42:{:02x}:{:02x}:{:02x}:{:02x}", b[0], b[1], b[2], b[3])
}

/// What a container sees of its eth0 (through netlink: a container in a
/// user namespace has the host's sysfs).
const ETH0: &str = "ip -o link show eth0; ip -4 -o addr show eth0";

/// [`ETH0`]'s output: (MAC, IPv4 address).
fn eth0(out: &str) -> (String, String) {
    let mut lines = out.lines();
    let mac = lines
        .next()
        .unwrap_or_default()
        .split_whitespace()
        .skip_while(|w| *w != "link/ether")
        .nth(1)
        .unwrap_or_default()
        .to_string();
    let ip = lines
        .next()
        .unwrap_or_default()
        .split_whitespace()
        .skip_while(|w| *w != "inet")
        .nth(1)
        .and_then(|a| a.split('/').next())
        .unwrap_or_default()
        .to_string();
    (mac, ip)
}

/// Locally administered (bit 1 of the first byte) and unicast (bit 0
/// clear).
fn local_unicast(mac: &str) -> bool {
    u8::from_str_radix(&mac[..2], 16).is_ok_and(|b| b & 2 == 2 && b & 1 == 0)
}

struct Docker {
    host: String,
    cfg: tempfile::TempDir,
}

impl Docker {
    fn run(&self, args: &[&str]) -> Output {
        let o = Command::new("timeout")
            .arg("120")
            .arg("docker")
            .args(args)
            .env("DOCKER_HOST", &self.host)
            .env("DOCKER_CONFIG", self.cfg.path())
            .stdin(Stdio::null())
            .output()
            .expect("run docker");
        log_output(&format!("docker {args:?}"), &o);
        o
    }

    fn ok(&self, args: &[&str]) -> String {
        ok(&self.run(args)).trim().to_string()
    }
}

/// Runs 3 containers on `network` through `run` (name, network → its
/// eth0 as [`ETH0`] prints it), reading `bridge`'s address in `netns`
/// after each; asserts it never changes, is locally administered unicast
/// and set (not taken from a port), and that every container's address
/// is `02:42` and its IPv4 address. Returns the bridge's address.
fn joins(
    who: &str,
    netns: &Path,
    bridge: &dyn Fn() -> String,
    network: &str,
    run: &dyn Fn(&str, &str) -> String,
) -> String {
    let mut first = String::new();
    for i in 0..3 {
        let name = format!("{network}-c{i}");
        let (mac, ip) = eth0(&run(&name, network));
        assert_eq!(mac, mac_of_ip(&ip), "{who}: {name}'s eth0");
        let bridge = bridge();
        let now = mac_in(netns, &bridge);
        if i == 0 {
            // (berth makes its default network's bridge at the first
            // container.)
            assert!(local_unicast(&now), "{who}: {bridge} has {now}");
            assert_eq!(assign_type_in(netns, &bridge), "3", "{who}: {bridge}");
            first = now;
        } else {
            assert_eq!(now, first, "{who}: {bridge} changed when {name} joined");
        }
        assert_ne!(mac, first, "{who}: {name} has the bridge's address");
    }
    assert_eq!(assign_type_in(netns, &bridge()), "3", "{who}");
    first
}

/// `run -d --name NAME --network NETWORK IMG sleep 600` through `ok`
/// (berth's or docker's CLI), then its eth0 ([`ETH0`]) read by `exec`.
fn run_sleep(ok: impl Fn(&[&str]) -> String, img: &str, name: &str, network: &str) -> String {
    ok(&[
        "run",
        "-d",
        "--name",
        name,
        "--network",
        network,
        img,
        "sleep",
        "600",
    ]);
    ok(&["exec", name, "sh", "-c", ETH0])
}

#[test]
fn bridge_addresses_against_dockerd() {
    require_root!();
    if Command::new("docker").arg("--version").output().is_err() {
        eprintln!("SKIP: the docker CLI (docker.io) is not installed");
        return;
    }
    let env = EngineEnv::new();
    let img = env.busybox_image();

    // berth: a user-defined network and the default one.
    let berth_run = |name: &str, network: &str| run_sleep(|a| env.ok(a), &img, name, network);
    env.ok(&["network", "create", "--subnet", "10.231.8.0/24", "brd"]);
    let bridge = |net: &str| {
        env.ok(&[
            "network",
            "inspect",
            "--format",
            "{{.NetworkInterface}}",
            net,
        ])
        .trim()
        .to_string()
    };
    let ours = joins("berth", &env.netns, &|| bridge("brd"), "brd", &berth_run);
    assert_eq!(ours, mac_of_ip("10.231.8.1"), "berth's bridge address");
    // The default network (`bridge`, berth's `berth`), made at its
    // first container.
    let default = joins(
        "berth",
        &env.netns,
        &|| bridge("berth"),
        "bridge",
        &berth_run,
    );
    let n: serde_json::Value =
        serde_json::from_str(&env.ok(&["network", "inspect", "berth"])).expect("network JSON");
    let gw = n[0]["IPAM"]["Config"][0]["Gateway"]
        .as_str()
        .unwrap_or_default();
    assert_eq!(default, mac_of_ip(gw.trim()), "berth's default bridge");

    // dockerd: the same, its default network a docker0 of 10.231.9.0/24.
    let d = match PrivateDockerd::start_with_bridge("--bip=10.231.9.1/24") {
        Ok(d) => d,
        Err(e) => {
            eprintln!("SKIP: (the dockerd half) a private dockerd cannot run here: {e}");
            return;
        }
    };
    let docker = Docker {
        host: format!("unix://{}", d.sock().display()),
        cfg: tempfile::tempdir().expect("tempdir"),
    };
    let tar = env.dir.path().join("bb.tar");
    env.ok(&["save", "-o", tar.to_str().expect("utf-8"), &img]);
    docker.ok(&["load", "-i", tar.to_str().expect("utf-8")]);
    docker.ok(&["network", "create", "--subnet", "10.231.8.0/24", "brd"]);
    let id = docker.ok(&["network", "inspect", "--format", "{{.Id}}", "brd"]);
    let docker_run = |name: &str, network: &str| run_sleep(|a| docker.ok(a), &img, name, network);
    let theirs = joins(
        "dockerd",
        &d.netns(),
        &|| format!("br-{}", &id[..12]),
        "brd",
        &docker_run,
    );
    let docker0 = joins(
        "dockerd",
        &d.netns(),
        &|| "docker0".to_string(),
        "bridge",
        &docker_run,
    );
    // libnetwork's is `02:42` and 4 random bytes (genMAC without an
    // address): the prefix berth's has, but not the gateway's bytes (1 in
    // 2^32 to be equal by chance).
    for mac in [&theirs, &docker0] {
        assert!(mac.starts_with("02:42:"), "dockerd's bridge address {mac}");
    }
    assert_ne!(theirs, mac_of_ip("10.231.8.1"), "dockerd's bridge address");
    assert_ne!(docker0, mac_of_ip("10.231.9.1"), "dockerd's docker0");
    eprintln!(
        "bridge addresses: berth {ours} (default {default}), dockerd {theirs} (docker0 {docker0})"
    );
    for net in ["brd", "bridge"] {
        for i in 0..3 {
            docker.run(&["rm", "-f", &format!("{net}-c{i}")]);
        }
    }
    for net in ["brd", "bridge"] {
        for i in 0..3 {
            env.ok(&["rm", "-f", &format!("{net}-c{i}")]);
        }
    }
    env.ok(&["network", "rm", "brd"]);
}
