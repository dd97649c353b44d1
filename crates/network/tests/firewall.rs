//! berth's nftables table against the real kernel, each test in network
//! namespaces of its own (the host's ruleset is never touched).

use std::io::{Read, Write};
use std::net::{IpAddr, SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use berth_network::firewall::{self, NetworkRules, PortRule, Proto, Ruleset};
use berth_network::netns;
use serde_json::Value;

fn root() -> bool {
    nix::unistd::geteuid().is_root()
}

fn have_nft() -> bool {
    Command::new("nft").arg("--version").output().is_ok()
}

/// Skips (with the reason printed) unless root and nft are there.
fn skip() -> bool {
    if !root() {
        eprintln!("SKIP: needs root for network namespaces and nftables");
        return true;
    }
    if !have_nft() {
        eprintln!("SKIP: the nft binary is not installed");
        return true;
    }
    false
}

/// Test network namespaces, removed on drop even when the test fails.
struct Namespaces {
    dir: tempfile::TempDir,
    pins: Vec<PathBuf>,
}

impl Namespaces {
    fn new() -> Self {
        Namespaces {
            dir: tempfile::tempdir().unwrap(),
            pins: Vec::new(),
        }
    }

    fn add(&mut self, name: &str) -> PathBuf {
        let p = self.dir.path().join(name);
        netns::create(&p).unwrap();
        self.pins.push(p.clone());
        p
    }
}

impl Drop for Namespaces {
    fn drop(&mut self) {
        for p in &self.pins {
            if let Err(e) = netns::remove(p) {
                eprintln!("cleanup: {e}");
            }
        }
    }
}

/// Runs a command inside `ns`; returns (success, stdout, stderr).
fn run(ns: &Path, args: &[&str]) -> (bool, String, String) {
    let out = netns::run_in(ns, || Command::new(args[0]).args(&args[1..]).output())
        .unwrap()
        .unwrap_or_else(|e| panic!("spawn {args:?}: {e}"));
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

fn must(ns: &Path, args: &[&str]) -> String {
    let (ok, out, err) = run(ns, args);
    assert!(ok, "{args:?} failed: {err}");
    out
}

/// Applies / removes inside `ns`.
fn apply_in(ns: &Path, r: &Ruleset) -> berth_network::Result<()> {
    netns::run_in(ns, || firewall::apply(r)).unwrap()
}

fn remove_in(ns: &Path) -> berth_network::Result<()> {
    netns::run_in(ns, firewall::remove).unwrap()
}

/// `nft -j list table inet berth` in `ns`: None when there is no table.
fn berth_table(ns: &Path) -> Option<Value> {
    let (ok, out, _) = run(ns, &["nft", "-j", "list", "table", "inet", "berth"]);
    ok.then(|| serde_json::from_str(&out).unwrap())
}

/// (chain name, hook) of each chain, as nft lists them.
type Chains = Vec<(String, String)>;
/// (chain name, expressions) of each rule, as nft lists them.
type Rules = Vec<(String, Value)>;

fn chains_and_rules(v: &Value) -> (Chains, Rules) {
    let mut chains = Vec::new();
    let mut rules = Vec::new();
    for item in v["nftables"].as_array().unwrap() {
        if let Some(c) = item.get("chain") {
            chains.push((
                c["name"].as_str().unwrap().to_string(),
                c["hook"].as_str().unwrap().to_string(),
            ));
        }
        if let Some(r) = item.get("rule") {
            rules.push((r["chain"].as_str().unwrap().to_string(), r["expr"].clone()));
        }
    }
    (chains, rules)
}

fn count(rules: &[(String, Value)], chain: &str) -> usize {
    rules.iter().filter(|(c, _)| c == chain).count()
}

/// Writes a sysctl of the namespace `ns` (never the host's: refuses to
/// write from the initial network namespace).
fn sysctl_in(ns: &Path, key: &str, value: &str) {
    netns::run_in(ns, || {
        let here = std::fs::read_link("/proc/thread-self/ns/net").unwrap();
        // The main thread never leaves the namespace the tests started in.
        let init = std::fs::read_link("/proc/self/ns/net").unwrap();
        assert_ne!(here, init, "refusing to write a host sysctl");
        let path = format!("/proc/sys/{}", key.replace('.', "/"));
        std::fs::write(&path, value).unwrap_or_else(|e| panic!("write {path}: {e}"));
    })
    .unwrap();
}

fn host_tables() -> String {
    let out = Command::new("nft")
        .args(["list", "tables"])
        .output()
        .unwrap();
    assert!(out.status.success());
    String::from_utf8_lossy(&out.stdout).into_owned()
}

fn port(host: Option<&str>, hp: u16, ctr: &str, cp: u16, proto: Proto, br: &str) -> PortRule {
    PortRule {
        host_ip: host.map(|h| h.parse().unwrap()),
        host_port: hp,
        container_ip: ctr.parse().unwrap(),
        container_port: cp,
        proto,
        bridge: br.into(),
    }
}

fn sample() -> Ruleset {
    Ruleset {
        networks: vec![
            NetworkRules {
                bridge: "berth0".into(),
                subnets: vec![
                    "10.88.0.0/16".parse().unwrap(),
                    "fd00:88::/64".parse().unwrap(),
                ],
                internal: false,
            },
            NetworkRules {
                bridge: "berth1".into(),
                subnets: vec!["10.89.0.0/24".parse().unwrap()],
                internal: true,
            },
        ],
        ports: vec![
            port(None, 8080, "10.88.0.2", 80, Proto::Tcp, "berth0"),
            port(
                Some("192.0.2.1"),
                5353,
                "10.88.0.3",
                53,
                Proto::Udp,
                "berth0",
            ),
            port(
                Some("2001:db8::1"),
                8443,
                "fd00:88::2",
                443,
                Proto::Tcp,
                "berth0",
            ),
        ],
        bridge_prefix: "berth".into(),
    }
}

const OTHER_TABLE: &str = "table inet other {
    chain input { type filter hook input priority 0; policy accept; tcp dport 22 accept; }
}";

#[test]
fn apply_replace_delete_and_leave_other_tables() {
    if skip() {
        return;
    }
    let host_before = host_tables();
    let mut nss = Namespaces::new();
    let ns = nss.add("fw");

    // A table that is not berth's.
    netns::run_in(&ns, || {
        let mut child = Command::new("nft")
            .args(["-f", "-"])
            .stdin(std::process::Stdio::piped())
            .spawn()
            .unwrap();
        child
            .stdin
            .take()
            .unwrap()
            .write_all(OTHER_TABLE.as_bytes())
            .unwrap();
        assert!(child.wait().unwrap().success());
    })
    .unwrap();
    let other = || must(&ns, &["nft", "list", "table", "inet", "other"]);
    let other_before = other();
    assert!(other_before.contains("tcp dport 22 accept"));

    assert!(berth_table(&ns).is_none());
    apply_in(&ns, &sample()).unwrap();
    let (chains, rules) = chains_and_rules(&berth_table(&ns).expect("table inet berth"));
    let names: Vec<_> = chains
        .iter()
        .map(|(n, h)| (n.as_str(), h.as_str()))
        .collect();
    assert_eq!(
        names,
        [
            ("prerouting", "prerouting"),
            ("output", "output"),
            ("postrouting", "postrouting"),
            ("forward", "forward"),
            ("raw", "prerouting")
        ]
    );
    // One notrack rule per subnet (container-to-container traffic).
    assert_eq!(count(&rules, "raw"), 3);
    assert_eq!(count(&rules, "prerouting"), 3);
    assert_eq!(count(&rules, "output"), 3);
    // 2 outgoing + berth0: loopback, 2 subnets + berth1: loopback, subnet.
    assert_eq!(count(&rules, "postrouting"), 7);
    assert_eq!(count(&rules, "forward"), 5);
    let text = must(&ns, &["nft", "list", "table", "inet", "berth"]);
    for want in [
        "fib daddr type local tcp dport 8080 dnat ip to 10.88.0.2:80",
        "ip daddr 192.0.2.1 udp dport 5353 dnat ip to 10.88.0.3:53",
        "ip6 daddr 2001:db8::1 tcp dport 8443 dnat ip6 to [fd00:88::2]:443",
        "ip saddr 10.88.0.0/16 oifname != \"berth0\" masquerade",
        "ip6 saddr fd00:88::/64 oifname != \"berth0\" masquerade",
        "ct status dnat oifname \"berth0\" ip saddr 127.0.0.0/8 masquerade",
        "ct state established,related accept",
        "iifname \"berth0\" oifname \"berth*\" oifname != \"berth0\" drop",
        "iifname \"berth1\" oifname != \"berth1\" drop",
        "oifname \"berth1\" iifname != \"berth1\" drop",
    ] {
        assert!(text.contains(want), "missing {want:?} in:\n{text}");
    }

    // Applying again replaces: no duplicates.
    apply_in(&ns, &sample()).unwrap();
    let (_, again) = chains_and_rules(&berth_table(&ns).unwrap());
    assert_eq!(again.len(), rules.len());
    assert_eq!(again, rules);

    // A smaller ruleset replaces the bigger one.
    let mut small = sample();
    small.networks.truncate(1);
    small.ports.truncate(1);
    apply_in(&ns, &small).unwrap();
    let (_, fewer) = chains_and_rules(&berth_table(&ns).unwrap());
    assert_eq!(count(&fewer, "prerouting"), 1);
    assert_eq!(count(&fewer, "forward"), 2);

    // An invalid ruleset is refused before nft runs: the table stays.
    let mut bad = sample();
    bad.ports[0].host_ip = Some("::".parse().unwrap());
    let e = apply_in(&ns, &bad).unwrap_err();
    assert!(e.to_string().contains("different families"), "{e}");
    assert_eq!(chains_and_rules(&berth_table(&ns).unwrap()).1, fewer);

    // The empty ruleset deletes the table; remove is idempotent.
    apply_in(&ns, &Ruleset::default()).unwrap();
    assert!(berth_table(&ns).is_none());
    remove_in(&ns).unwrap();
    apply_in(&ns, &sample()).unwrap();
    assert!(berth_table(&ns).is_some());
    remove_in(&ns).unwrap();
    assert!(berth_table(&ns).is_none());
    remove_in(&ns).unwrap();
    apply_in(&ns, &Ruleset::default()).unwrap();

    // Never another table, never the host.
    assert_eq!(other(), other_before);
    drop(nss);
    assert_eq!(host_tables(), host_before, "the host's tables changed");
}

#[test]
fn network_without_subnets_or_ports() {
    if skip() {
        return;
    }
    let mut nss = Namespaces::new();
    let ns = nss.add("fw");
    let r = Ruleset {
        networks: vec![NetworkRules {
            bridge: "berth0".into(),
            subnets: vec![],
            internal: false,
        }],
        ports: vec![],
        bridge_prefix: "berth".into(),
    };
    apply_in(&ns, &r).unwrap();
    let (chains, rules) = chains_and_rules(&berth_table(&ns).unwrap());
    assert_eq!(chains.len(), 5);
    assert_eq!(count(&rules, "raw"), 0, "no subnet, no notrack rule");
    // established + isolation; the loopback rule for the bridge.
    assert_eq!(count(&rules, "forward"), 2);
    assert_eq!(count(&rules, "postrouting"), 1);
    assert_eq!(count(&rules, "prerouting"), 0);
}

/// Serves `hello <peer address>` on `listener` until `stop` or 60 s.
fn serve(listener: TcpListener, stop: Arc<AtomicBool>) -> std::thread::JoinHandle<usize> {
    listener.set_nonblocking(true).unwrap();
    std::thread::spawn(move || {
        let deadline = Instant::now() + Duration::from_secs(60);
        let mut served = 0;
        while !stop.load(Ordering::Relaxed) && Instant::now() < deadline {
            match listener.accept() {
                Ok((mut s, peer)) => {
                    let _ = s.set_nonblocking(false);
                    let _ = writeln!(s, "hello {}", peer.ip());
                    served += 1;
                }
                Err(_) => std::thread::sleep(Duration::from_millis(20)),
            }
        }
        served
    })
}

/// Connects from `ns` to `to` and reads the answer.
fn fetch(ns: &Path, to: &str) -> std::io::Result<String> {
    let to: SocketAddr = to.parse().unwrap();
    netns::run_in(ns, || {
        let mut s = TcpStream::connect_timeout(&to, Duration::from_secs(3))?;
        s.set_read_timeout(Some(Duration::from_secs(3)))?;
        let mut answer = String::new();
        s.read_to_string(&mut answer)?;
        Ok(answer)
    })
    .unwrap()
}

/// A veth pair: `host_if` (address `host_addr`) stays in `host`, `eth0`
/// (address `peer_addr`, default route via `host_addr`) goes to `peer`.
fn wire(host: &Path, host_if: &str, host_addr: &str, peer: &Path, peer_addr: &str) {
    let peer_s = peer.to_str().unwrap();
    must(
        host,
        &[
            "ip", "link", "add", host_if, "type", "veth", "peer", "name", "eth0", "netns", peer_s,
        ],
    );
    must(
        host,
        &[
            "ip",
            "addr",
            "add",
            &format!("{host_addr}/24"),
            "dev",
            host_if,
        ],
    );
    must(host, &["ip", "link", "set", host_if, "up"]);
    must(
        peer,
        &[
            "ip",
            "addr",
            "add",
            &format!("{peer_addr}/24"),
            "dev",
            "eth0",
        ],
    );
    must(peer, &["ip", "link", "set", "eth0", "up"]);
    must(peer, &["ip", "link", "set", "lo", "up"]);
    must(peer, &["ip", "route", "add", "default", "via", host_addr]);
}

/// A published port end to end, without bridges: "host" has a veth to a
/// "container" and one to a "client" namespace.
#[test]
fn published_port_reaches_container() {
    if skip() {
        return;
    }
    let host_before = host_tables();
    let mut nss = Namespaces::new();
    let host = nss.add("host");
    let ctr = nss.add("ctr");
    let client = nss.add("client");
    must(&host, &["ip", "link", "set", "lo", "up"]);
    wire(&host, "bfw0", "10.203.0.1", &ctr, "10.203.0.2");
    // Named with the prefix on purpose: answers from the container to the
    // client cross two "berth" interfaces and must pass as established.
    wire(&host, "bfwc0", "10.204.0.1", &client, "10.204.0.2");
    // What the engine does on the host: forwarding, and route_localnet on
    // the bridge for 127.0.0.1:<port> (the interface alone is enough).
    sysctl_in(&host, "net.ipv4.ip_forward", "1");
    sysctl_in(&host, "net.ipv4.conf.bfw0.route_localnet", "1");

    let listener = netns::run_in(&ctr, || TcpListener::bind("0.0.0.0:8080"))
        .unwrap()
        .unwrap();
    let stop = Arc::new(AtomicBool::new(false));
    let server = serve(listener, stop.clone());
    struct Stop(Arc<AtomicBool>);
    impl Drop for Stop {
        fn drop(&mut self) {
            self.0.store(true, Ordering::Relaxed);
        }
    }
    let _stop = Stop(stop.clone());

    // The container answers directly; nothing is published yet.
    assert_eq!(
        fetch(&host, "10.203.0.2:8080").unwrap(),
        "hello 10.203.0.1\n"
    );
    assert!(fetch(&host, "127.0.0.1:18080").is_err());
    assert!(fetch(&client, "10.204.0.1:18080").is_err());

    let rules = Ruleset {
        networks: vec![NetworkRules {
            bridge: "bfw0".into(),
            subnets: vec!["10.203.0.0/24".parse().unwrap()],
            internal: false,
        }],
        ports: vec![
            PortRule {
                host_ip: None,
                host_port: 18080,
                container_ip: "10.203.0.2".parse::<IpAddr>().unwrap(),
                container_port: 8080,
                proto: Proto::Tcp,
                bridge: "bfw0".into(),
            },
            // Published on one host address only.
            port(
                Some("10.204.0.1"),
                18090,
                "10.203.0.2",
                8080,
                Proto::Tcp,
                "bfw0",
            ),
        ],
        bridge_prefix: "bfw".into(),
    };
    apply_in(&host, &rules).unwrap();

    // From the host itself: loopback (output DNAT + masquerade, so the
    // container sees the bridge address) and the host's own address.
    assert_eq!(
        fetch(&host, "127.0.0.1:18080").unwrap(),
        "hello 10.203.0.1\n"
    );
    assert_eq!(
        fetch(&host, "10.204.0.1:18080").unwrap(),
        "hello 10.204.0.1\n"
    );
    // From another machine through the host (prerouting DNAT): the
    // container sees the client's own address.
    assert_eq!(
        fetch(&client, "10.204.0.1:18080").unwrap(),
        "hello 10.204.0.2\n"
    );
    assert_eq!(
        fetch(&client, "10.204.0.1:18090").unwrap(),
        "hello 10.204.0.2\n"
    );
    assert!(fetch(&host, "127.0.0.1:18090").is_err());
    // Only the published port.
    assert!(fetch(&client, "10.204.0.1:18081").is_err());

    // Gone with the table.
    remove_in(&host).unwrap();
    assert!(fetch(&host, "127.0.0.1:18080").is_err());
    assert!(fetch(&client, "10.204.0.1:18080").is_err());

    stop.store(true, Ordering::Relaxed);
    assert_eq!(server.join().unwrap(), 5);
    drop(nss);
    assert_eq!(host_tables(), host_before, "the host's tables changed");
}
