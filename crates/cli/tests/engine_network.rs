//! Bridge networks end to end: every test runs berth inside a network
//! namespace it created (EngineEnv), so bridges, veths, nftables rules and
//! resolvers land there; traffic stays inside the test's namespaces.

mod common;

use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::Duration;

use common::*;
use serde_json::Value;

fn inspect(env: &EngineEnv, name: &str) -> Value {
    let v: Value = serde_json::from_str(&env.ok(&["inspect", name])).expect("inspect JSON");
    v[0].clone()
}

fn ip_on(env: &EngineEnv, name: &str, net: &str) -> String {
    inspect(env, name)["NetworkSettings"]["Networks"][net]["IPAddress"]
        .as_str()
        .unwrap_or_default()
        .to_string()
}

/// A detached busybox httpd answering `hello from NAME` on port 80.
fn web(env: &EngineEnv, img: &str, name: &str, extra: &[&str]) {
    let script = format!(
        "mkdir -p /www && echo hello from {name} > /www/index.html && exec httpd -f -p 80 -h /www"
    );
    let mut args = vec!["run", "-d", "--name", name];
    args.extend_from_slice(extra);
    args.extend_from_slice(&[img, "sh", "-c", &script]);
    env.ok(&args);
}

/// The shell command fetching /index.html from HOST:PORT with busybox nc
/// (Debian's static busybox wget crashes in getaddrinfo).
fn get_cmd(host: &str, port: u16) -> String {
    format!("printf 'GET /index.html HTTP/1.0\\r\\n\\r\\n' | nc -w 3 {host} {port}")
}

/// An HTTP GET from a throwaway container on `net`; (got a page, output).
fn fetch_from(env: &EngineEnv, img: &str, net: &str, host: &str, port: u16) -> (bool, String) {
    let o = env.berth(&[
        "run",
        "--rm",
        "--network",
        net,
        img,
        "sh",
        "-c",
        &get_cmd(host, port),
    ]);
    let out = stdout(&o);
    (out.contains("hello from"), out)
}

/// An HTTP GET over TCP from the test's namespace (the engine's host side).
fn host_get(env: &EngineEnv, addr: &str) -> std::io::Result<String> {
    let addr = addr.to_string();
    berth_network::netns::run_in(&env.netns, move || {
        let mut s =
            TcpStream::connect_timeout(&addr.parse().expect("addr"), Duration::from_secs(3))?;
        s.set_read_timeout(Some(Duration::from_secs(3)))?;
        s.write_all(b"GET /index.html HTTP/1.0\r\n\r\n")?;
        let mut out = String::new();
        s.read_to_string(&mut out)?;
        Ok(out)
    })
    .expect("enter the test namespace")
}

fn nft_table(env: &EngineEnv) -> String {
    env.nft_berth()
}

fn links(env: &EngineEnv) -> String {
    stdout(
        &env.in_netns("ip")
            .args(["-o", "link"])
            .output()
            .expect("ip link"),
    )
}

#[test]
fn default_network_addresses_routes_and_etc_files() {
    require_root!();
    let env = EngineEnv::new();
    let img = env.busybox_image();
    let out = env.ok(&[
        "run", "--rm", "--name", "c1", "--add-host", "db:10.1.2.3", "--dns", "9.9.9.9", &img, "sh", "-c",
        "cat /proc/net/route; echo ---; cat /etc/hosts; echo ---; cat /etc/resolv.conf; echo ---; cat /etc/hostname; ip -o addr show eth0",
    ]);
    let parts: Vec<&str> = out.split("---\n").collect();
    assert_eq!(parts.len(), 4, "{out}");
    // A default route through the gateway 10.88.0.1 (hex 0100580A).
    assert!(
        parts[0]
            .lines()
            .any(|l| l.starts_with("eth0\t00000000\t0100580A")),
        "default route via the gateway: {}",
        parts[0]
    );
    assert!(
        parts[1].contains("10.88.0.2\t"),
        "own address in /etc/hosts: {}",
        parts[1]
    );
    assert!(
        parts[1].contains("10.1.2.3\tdb"),
        "--add-host: {}",
        parts[1]
    );
    assert!(
        parts[2].contains("nameserver 9.9.9.9"),
        "--dns: {}",
        parts[2]
    );
    assert!(
        parts[3].contains("10.88.0.2/16"),
        "eth0 address: {}",
        parts[3]
    );
    // The bridge and the table exist in the test's namespace, the
    // container's host veth is gone after --rm.
    let l = links(&env);
    let net: Value = serde_json::from_str(&env.ok(&["network", "inspect", "berth"])).expect("json");
    let bridge = net[0]["NetworkInterface"]
        .as_str()
        .expect("bridge")
        .to_string();
    assert!(l.contains(&format!(": {bridge}:")), "{l}");
    assert!(!l.contains(": vb"), "no veth left: {l}");
    // NAT for the default network while a container is on it (the
    // table goes with the last container).
    env.ok(&["run", "-d", "--name", "keeper", &img, "sleep", "120"]);
    assert!(
        nft_table(&env).contains("masquerade"),
        "NAT for the default network"
    );
    env.ok(&["rm", "-f", "keeper"]);
    assert_eq!(nft_table(&env), "", "no container: no table");
    let n: Value = serde_json::from_str(&env.ok(&["network", "inspect", "berth"])).expect("json");
    assert_eq!(n[0]["IPAM"]["Config"][0]["Subnet"], "10.88.0.0/16");
    assert_eq!(
        n[0]["Containers"].as_object().map(|m| m.len()),
        Some(0),
        "{n}"
    );
}

#[test]
fn same_network_by_ip_and_name_isolated_until_connected() {
    require_root!();
    let env = EngineEnv::new();
    let img = env.busybox_image();
    env.ok(&["network", "create", "front"]);
    env.ok(&["network", "create", "back"]);
    web(
        &env,
        &img,
        "web",
        &["--network", "front", "--network-alias", "www"],
    );
    let ip = ip_on(&env, "web", "front");
    assert!(ip.starts_with("10.89."), "{ip}");
    let got = wait_for("web answers", 10, || {
        let (ok, out) = fetch_from(&env, &img, "front", &ip, 80);
        ok.then_some(out)
    });
    assert!(got.contains("hello from web"), "{got}");
    // Names: the network's resolver answers with the container's address
    // (and for its alias); unknown names fail.
    for name in ["web", "www", "WEB"] {
        let o = env.berth(&["run", "--rm", "--network", "front", &img, "nslookup", name]);
        assert!(
            stdout(&o).contains(&ip),
            "{name} resolves to {ip}: {}",
            stdout(&o)
        );
    }
    let (ok, out) = fetch_from(&env, &img, "front", "web", 80);
    assert!(ok && out.contains("hello from web"), "by name: {out}");
    let o = env.berth(&[
        "run",
        "--rm",
        "--network",
        "front",
        &img,
        "nslookup",
        "nosuchthing",
    ]);
    assert!(!stdout(&o).contains(&ip), "{}", stdout(&o));
    // Another network cannot reach it.
    let (ok, _) = fetch_from(&env, &img, "back", &ip, 80);
    assert!(!ok, "back must not reach front");
    // Until a container on back is connected to front too.
    env.ok(&[
        "run",
        "-d",
        "--name",
        "client",
        "--network",
        "back",
        &img,
        "sleep",
        "300",
    ]);
    let o = env.berth(&["exec", "client", "sh", "-c", &get_cmd(&ip, 80)]);
    assert!(!stdout(&o).contains("hello"), "isolated before connect");
    env.ok(&["network", "connect", "front", "client"]);
    let ifs = env.ok(&["exec", "client", "cat", "/proc/net/dev"]);
    assert!(ifs.contains("eth1"), "{ifs}");
    let o = env.berth(&["exec", "client", "sh", "-c", &get_cmd(&ip, 80)]);
    assert!(
        stdout(&o).contains("hello from web"),
        "after connect: {}",
        stderr(&o)
    );
    env.ok(&["network", "disconnect", "front", "client"]);
    let ifs = env.ok(&["exec", "client", "cat", "/proc/net/dev"]);
    assert!(!ifs.contains("eth1"), "{ifs}");
    // A network in use cannot be removed; the error names the users.
    let o = env.berth(&["network", "rm", "front"]);
    assert!(!o.status.success());
    assert!(stderr(&o).contains("web"), "{}", stderr(&o));
    env.ok(&["rm", "-f", "web", "client"]);
    env.ok(&["network", "rm", "front", "back"]);
    let l = links(&env);
    assert!(
        !l.contains("berth1") && !l.contains("berth2"),
        "bridges removed: {l}"
    );
}

#[test]
fn published_port_from_host_localhost_and_other_containers() {
    require_root!();
    let env = EngineEnv::new();
    let img = env.busybox_image();
    web(&env, &img, "pub", &["-p", "18080:80", "-p", "80"]);
    let ports = env.ok(&["port", "pub"]);
    assert!(ports.contains("80/tcp -> 0.0.0.0:18080"), "{ports}");
    let random: u16 = ports
        .lines()
        .find(|l| !l.contains("18080"))
        .and_then(|l| l.rsplit(':').next())
        .and_then(|p| p.trim().parse().ok())
        .expect("a chosen port");
    assert!(random >= 32768, "{ports}");
    let got = wait_for("published port answers on localhost", 10, || {
        host_get(&env, "127.0.0.1:18080").ok()
    });
    assert!(got.contains("hello from pub"), "{got}");
    assert!(host_get(&env, &format!("127.0.0.1:{random}"))
        .unwrap()
        .contains("hello from pub"));
    // Through the gateway address from the host side, and from another
    // container (hairpin through the host).
    assert!(host_get(&env, "10.88.0.1:18080")
        .unwrap()
        .contains("hello from pub"));
    let (ok, out) = fetch_from(&env, &img, "berth", "10.88.0.1", 18080);
    assert!(ok && out.contains("hello from pub"), "hairpin: {out}");
    // A second container cannot take the same host port while it runs.
    let o = env.berth(&["run", "-d", "-p", "18080:80", &img, "sleep", "30"]);
    assert!(!o.status.success());
    assert!(stderr(&o).contains("18080"), "{}", stderr(&o));
    // Stopping the container removes its rules.
    env.ok(&["stop", "-t", "1", "pub"]);
    assert!(!nft_table(&env).contains("18080"), "{}", nft_table(&env));
    assert!(host_get(&env, "127.0.0.1:18080").is_err());
    env.ok(&["start", "pub"]);
    let got = wait_for("published again after start", 10, || {
        host_get(&env, "127.0.0.1:18080").ok()
    });
    assert!(got.contains("hello from pub"));
}

#[test]
fn concurrent_runs_get_distinct_addresses_released_on_rm() {
    require_root!();
    let env = EngineEnv::new();
    let img = env.busybox_image();
    env.ok(&["network", "create", "--subnet", "10.77.0.0/24", "many"]);
    let n = 100;
    let ids: Vec<String> = std::thread::scope(|s| {
        let hs: Vec<_> = (0..10)
            .map(|t| {
                let env = &env;
                let img = img.as_str();
                s.spawn(move || {
                    (0..n / 10)
                        .map(|i| {
                            let name = format!("m{t}-{i}");
                            env.ok(&[
                                "run",
                                "-d",
                                "--name",
                                &name,
                                "--network",
                                "many",
                                img,
                                "sleep",
                                "300",
                            ]);
                            name
                        })
                        .collect::<Vec<_>>()
                })
            })
            .collect();
        hs.into_iter()
            .flat_map(|h| h.join().expect("thread"))
            .collect()
    });
    let net: Value = serde_json::from_str(&env.ok(&["network", "inspect", "many"])).expect("json");
    let addrs: std::collections::BTreeSet<String> = net[0]["Containers"]
        .as_object()
        .expect("containers")
        .values()
        .map(|c| c["IPv4Address"].as_str().unwrap_or_default().to_string())
        .collect();
    assert_eq!(addrs.len(), n, "{n} distinct addresses: {addrs:?}");
    // Each container really has its address.
    let inside = env.ok(&["exec", &ids[17], "ip", "-o", "-4", "addr", "show", "eth0"]);
    let ip = ip_on(&env, &ids[17], "many");
    assert!(inside.contains(&format!("{ip}/24")), "{inside}");
    // --ip of a taken address is refused clearly; rm frees it for reuse.
    let o = env.berth(&["create", "--network", "many", "--ip", &ip, &img, "true"]);
    assert!(!o.status.success());
    assert!(stderr(&o).contains("already taken"), "{}", stderr(&o));
    env.ok(&["rm", "-f", &ids[17]]);
    env.ok(&[
        "run",
        "-d",
        "--name",
        "again",
        "--network",
        "many",
        "--ip",
        &ip,
        &img,
        "sleep",
        "300",
    ]);
    assert_eq!(ip_on(&env, "again", "many"), ip);
    let mut all = ids.clone();
    all.remove(17);
    all.push("again".into());
    let mut args = vec!["rm", "-f"];
    args.extend(all.iter().map(String::as_str));
    env.ok(&args);
    let net: Value = serde_json::from_str(&env.ok(&["network", "inspect", "many"])).expect("json");
    assert_eq!(net[0]["Containers"].as_object().map(|m| m.len()), Some(0));
    let l = links(&env);
    assert!(!l.contains(": vb"), "no veth left: {l}");
}

#[test]
fn kill_9_of_monitor_and_container_is_reconciled() {
    require_root!();
    let env = EngineEnv::new();
    let img = env.busybox_image();
    web(&env, &img, "victim", &["-p", "18081:80"]);
    let row = inspect(&env, "victim");
    let pid = row["State"]["Pid"].as_i64().expect("pid") as i32;
    let monitor = row["State"]["ConmonPid"]
        .as_i64()
        .filter(|p| *p > 0)
        .map(|p| p as i32);
    assert!(links(&env).contains(": vb"), "veth while running");
    let ip = ip_on(&env, "victim", "berth");
    if let Some(m) = monitor {
        let _ = nix::sys::signal::kill(
            nix::unistd::Pid::from_raw(m),
            nix::sys::signal::Signal::SIGKILL,
        );
    }
    let _ = nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(pid),
        nix::sys::signal::Signal::SIGKILL,
    );
    wait_for("container process gone", 10, || {
        (!std::path::Path::new(&format!("/proc/{pid}")).exists()).then_some(())
    });
    let ps = env.ok(&["ps", "-a", "--format", "json"]);
    assert!(ps.contains("exited"), "{ps}");
    assert!(
        !links(&env).contains(": vb"),
        "veth removed: {}",
        links(&env)
    );
    assert!(!nft_table(&env).contains("18081"), "rules removed");
    assert!(!env
        .runroot()
        .join("netns")
        .join(row["Id"].as_str().unwrap())
        .exists());
    // No address while it is not running (Docker clears it); it can
    // start again with the same one.
    assert_eq!(ip_on(&env, "victim", "berth"), "");
    env.ok(&["start", "victim"]);
    assert_eq!(ip_on(&env, "victim", "berth"), ip);
    let got = wait_for("published again", 10, || {
        host_get(&env, "127.0.0.1:18081").ok()
    });
    assert!(got.contains("hello from victim"));
}

#[test]
fn internal_network_container_mode_and_bad_input() {
    require_root!();
    let env = EngineEnv::new();
    let img = env.busybox_image();
    env.ok(&[
        "network",
        "create",
        "--internal",
        "--subnet",
        "10.66.0.0/24",
        "--gateway",
        "10.66.0.1",
        "sealed",
    ]);
    let routes = env.ok(&[
        "run",
        "--rm",
        "--network",
        "sealed",
        &img,
        "cat",
        "/proc/net/route",
    ]);
    assert!(
        !routes
            .lines()
            .any(|l| l.split_whitespace().nth(1) == Some("00000000")),
        "no default route: {routes}"
    );
    let n: Value = serde_json::from_str(&env.ok(&["network", "inspect", "sealed"])).expect("json");
    let bridge = n[0]["NetworkInterface"]
        .as_str()
        .expect("bridge")
        .to_string();
    assert!(n[0]["Internal"].as_bool().unwrap_or(false));
    // container:NAME shares the other container's interfaces.
    env.ok(&[
        "run",
        "-d",
        "--name",
        "owner",
        "--network",
        "sealed",
        &img,
        "sleep",
        "300",
    ]);
    // The rules exist while a container is on the network.
    let table = nft_table(&env);
    assert!(
        table.contains(&format!(
            "iifname \"{bridge}\" oifname != \"{bridge}\" drop"
        )),
        "internal: nothing leaves {bridge}: {table}"
    );
    assert!(
        !table.contains("ip saddr 10.66.0.0/24 oifname"),
        "no masquerade: {table}"
    );
    let a = env.ok(&["exec", "owner", "ip", "-o", "-4", "addr"]);
    let b = env.ok(&[
        "run",
        "--rm",
        "--network",
        "container:owner",
        &img,
        "ip",
        "-o",
        "-4",
        "addr",
    ]);
    assert_eq!(a, b);
    // Clear errors, nothing left behind.
    for (args, want) in [
        (
            vec!["network", "create", "--subnet", "10.66.0.0/25", "overlap"],
            "overlaps",
        ),
        (
            vec!["network", "create", "--subnet", "10.0.0.1/24", "hostbits"],
            "host bits",
        ),
        (vec!["network", "create", "none"], "reserved"),
        (vec!["network", "create", "sealed"], "already exists"),
        (vec!["network", "rm", "berth"], "cannot be removed"),
        (
            vec!["run", "--rm", "--network", "nosuch", &img, "true"],
            "no such network",
        ),
        (
            vec!["run", "--rm", "-p", "70000:80", &img, "true"],
            "not a port",
        ),
        (
            vec!["run", "--rm", "--network", "none", "-p", "80", &img, "true"],
            "bridge networks",
        ),
        (
            vec![
                "run",
                "--rm",
                "--network",
                "sealed",
                "--ip",
                "10.99.0.5",
                &img,
                "true",
            ],
            "not a free host address",
        ),
    ] {
        let o = env.berth(&args);
        assert!(!o.status.success(), "{args:?}");
        assert!(stderr(&o).contains(want), "{args:?}: {}", stderr(&o));
    }
    let names = env.ok(&["network", "ls", "-q"]);
    for gone in ["overlap", "hostbits", "none"] {
        assert!(
            !names.lines().any(|l| l == gone),
            "{gone} must not exist: {names}"
        );
    }
    assert!(names.lines().any(|l| l == "sealed"), "{names}");
    assert_eq!(env.ok(&["ps", "-aq"]).lines().count(), 1, "only owner");
    env.ok(&["rm", "-f", "owner"]);
    assert_eq!(env.ok(&["network", "prune"]).trim(), "sealed");
}

#[test]
fn ipv6_network_gives_v6_addresses_that_carry_traffic() {
    require_root!();
    let env = EngineEnv::new();
    let img = env.busybox_image();
    env.ok(&["network", "create", "--ipv6", "-o", "mtu=1400", "dual"]);
    web(&env, &img, "web6", &["--network", "dual"]);
    let s = inspect(&env, "web6");
    let v6 = s["NetworkSettings"]["Networks"]["dual"]["GlobalIPv6Address"]
        .as_str()
        .unwrap_or_default()
        .to_string();
    assert!(v6.starts_with("fd"), "a unique local address: {s}");
    let inside = env.ok(&["exec", "web6", "ip", "-o", "-6", "addr", "show", "eth0"]);
    assert!(inside.contains(&format!("{v6}/64")), "{inside}");
    let mtu = env.ok(&["exec", "web6", "cat", "/sys/class/net/eth0/mtu"]);
    assert_eq!(
        mtu.trim(),
        "1400",
        "-o mtu reaches the container's interface"
    );
    let o = env.berth(&["network", "create", "-o", "mtu=12", "tiny"]);
    assert!(stderr(&o).contains("MTU"), "{}", stderr(&o));
    let got = wait_for("web6 answers over IPv6", 10, || {
        let (ok, out) = fetch_from(&env, &img, "dual", &v6, 80);
        ok.then_some(out)
    });
    assert!(got.contains("hello from web6"), "{got}");
}

#[test]
fn several_networks_at_once_interfaces_routes_names_release() {
    require_root!();
    let env = EngineEnv::new();
    let img = env.busybox_image();
    env.ok(&["network", "create", "--subnet", "10.61.0.0/24", "neta"]);
    env.ok(&["network", "create", "--subnet", "10.62.0.0/24", "netb"]);
    web(&env, &img, "wa", &["--network", "neta"]);
    web(&env, &img, "wb", &["--network", "netb"]);
    let (ip_wa, ip_wb) = (ip_on(&env, "wa", "neta"), ip_on(&env, "wb", "netb"));
    // Repeated flags; `-p` rides along (published on the first network).
    env.ok(&[
        "run",
        "-d",
        "--name",
        "both",
        "--network",
        "neta",
        "--network",
        "netb",
        "--network-alias",
        "twin",
        &img,
        "sleep",
        "300",
    ]);
    let (ip_a, ip_b) = (ip_on(&env, "both", "neta"), ip_on(&env, "both", "netb"));
    assert!(
        ip_a.starts_with("10.61.0.") && ip_b.starts_with("10.62.0."),
        "{ip_a} {ip_b}"
    );
    // From inside: eth0 on the first network, eth1 on the second.
    let addrs = env.ok(&["exec", "both", "ip", "-o", "-4", "addr"]);
    let line = |dev: &str| {
        addrs
            .lines()
            .find(|l| l.split_whitespace().nth(1) == Some(dev))
            .unwrap_or_default()
            .to_string()
    };
    assert!(
        line("eth0").contains(&format!("{ip_a}/24")),
        "eth0: {addrs}"
    );
    assert!(
        line("eth1").contains(&format!("{ip_b}/24")),
        "eth1: {addrs}"
    );
    // The default route goes through the first network's gateway
    // (10.61.0.1 is 01003D0A in /proc/net/route), none through eth1.
    let routes = env.ok(&["exec", "both", "cat", "/proc/net/route"]);
    assert!(
        routes
            .lines()
            .any(|l| l.starts_with("eth0\t00000000\t01003D0A")),
        "default via 10.61.0.1: {routes}"
    );
    assert!(
        !routes.lines().any(|l| l.starts_with("eth1\t00000000")),
        "no default route on eth1: {routes}"
    );
    // Names on both networks resolve, and both web servers answer by name.
    for (name, ip) in [("wa", &ip_wa), ("wb", &ip_wb)] {
        let got = wait_for(&format!("{name} resolves from both"), 10, || {
            let o = env.berth(&["exec", "both", "nslookup", name]);
            stdout(&o).contains(ip.as_str()).then(|| stdout(&o))
        });
        assert!(got.contains(ip.as_str()), "{got}");
        let o = env.berth(&["exec", "both", "sh", "-c", &get_cmd(name, 80)]);
        assert!(
            stdout(&o).contains(&format!("hello from {name}")),
            "{name} by name from both: {} {}",
            stdout(&o),
            stderr(&o)
        );
    }
    // The container is known on each network under its name and alias,
    // with that network's address; a container on netb alone still
    // does not see neta's names.
    for (net, ip) in [("neta", &ip_a), ("netb", &ip_b)] {
        for name in ["both", "twin"] {
            let o = env.berth(&["run", "--rm", "--network", net, &img, "nslookup", name]);
            assert!(
                stdout(&o).contains(ip.as_str()),
                "{name} on {net}: {}",
                stdout(&o)
            );
        }
    }
    let o = env.berth(&["run", "--rm", "--network", "netb", &img, "nslookup", "wa"]);
    assert!(
        !stdout(&o).contains(&ip_wa),
        "netb alone sees wa: {}",
        stdout(&o)
    );
    // /etc/hosts carries both addresses; inspect shows both networks.
    let hosts = env.ok(&["exec", "both", "cat", "/etc/hosts"]);
    assert!(hosts.contains(&ip_a) && hosts.contains(&ip_b), "{hosts}");
    let nets = inspect(&env, "both")["NetworkSettings"]["Networks"].clone();
    assert_eq!(nets["neta"]["InterfaceName"], "eth0", "{nets}");
    assert_eq!(nets["netb"]["InterfaceName"], "eth1", "{nets}");
    // A crash (kill -9 of monitor and container) is reconciled on every
    // network: both veths gone, the name gone from netb's resolver; a
    // start brings both interfaces back with the same addresses.
    let row = inspect(&env, "both");
    let id = row["Id"].as_str().unwrap_or_default().to_string();
    let veth = |n: u8| format!("vb{}{n}", &id[..10]);
    let l = links(&env);
    assert!(
        l.contains(&veth(0)) && l.contains(&veth(1)),
        "veths while running: {l}"
    );
    let pid = row["State"]["Pid"].as_i64().expect("pid") as i32;
    for p in row["State"]["ConmonPid"]
        .as_i64()
        .filter(|p| *p > 0)
        .into_iter()
        .chain([i64::from(pid)])
    {
        let _ = nix::sys::signal::kill(
            nix::unistd::Pid::from_raw(p as i32),
            nix::sys::signal::Signal::SIGKILL,
        );
    }
    wait_for("container process gone", 10, || {
        (!std::path::Path::new(&format!("/proc/{pid}")).exists()).then_some(())
    });
    let ps = env.ok(&["ps", "-a", "--format", "json"]);
    assert!(ps.contains("exited"), "{ps}");
    let l = links(&env);
    assert!(
        !l.contains(&veth(0)) && !l.contains(&veth(1)),
        "veths left after the crash: {l}"
    );
    let o = env.berth(&["run", "--rm", "--network", "netb", &img, "nslookup", "both"]);
    assert!(
        !stdout(&o).contains(&ip_b),
        "stale name on netb: {}",
        stdout(&o)
    );
    env.ok(&["start", "both"]);
    let addrs = env.ok(&["exec", "both", "ip", "-o", "-4", "addr"]);
    assert!(
        addrs.contains(&format!("{ip_a}/24")) && addrs.contains(&format!("{ip_b}/24")),
        "{addrs}"
    );
    // rm frees both addresses: --ip of each is accepted again.
    let id = inspect(&env, "both")["Id"]
        .as_str()
        .unwrap_or_default()
        .to_string();
    env.ok(&["rm", "-f", "both"]);
    let l = links(&env);
    assert!(!l.contains(&format!("vb{}", &id[..10])), "veths left: {l}");
    env.ok(&[
        "create",
        "--name",
        "ra",
        "--network",
        "neta",
        "--ip",
        &ip_a,
        &img,
        "true",
    ]);
    env.ok(&[
        "create",
        "--name",
        "rb",
        "--network",
        "netb",
        "--ip",
        &ip_b,
        &img,
        "true",
    ]);
    // A comma list works too (recorded, shown by inspect).
    env.ok(&[
        "create",
        "--name",
        "comma",
        "--network",
        "neta,netb",
        &img,
        "true",
    ]);
    let nets = inspect(&env, "comma")["NetworkSettings"]["Networks"].clone();
    assert!(
        nets["neta"].is_object() && nets["netb"].is_object(),
        "{nets}"
    );
    // none/host/container: stand alone.
    for mixed in [["none", "neta"], ["neta", "host"]] {
        let o = env.berth(&[
            "create",
            "--network",
            mixed[0],
            "--network",
            mixed[1],
            &img,
            "true",
        ]);
        assert!(!o.status.success(), "{mixed:?} accepted");
        let e = stderr(&o);
        assert!(
            e.contains(&format!("--network {}", mixed[0]))
                && e.contains(&format!("--network {}", mixed[1])),
            "{mixed:?}: {e}"
        );
    }
    env.ok(&["rm", "-f", "wa", "wb", "ra", "rb", "comma"]);
    env.ok(&["network", "rm", "neta", "netb"]);
}
