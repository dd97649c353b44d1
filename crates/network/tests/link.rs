//! Integration tests of `berth_network::link` against the real kernel.
//! Need root. Every test builds its own "host" and "container" network
//! namespaces (pinned in a tempdir) and never touches the real host's
//! interfaces; the only host state read is net.ipv4.ip_forward, which is
//! compared before and after.

use std::io::{Read, Write};
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use berth_network::link::{self, BridgeSpec, Endpoint};
use berth_network::{netns, NetError};
use serde_json::Value;

fn root() -> bool {
    if nix::unistd::geteuid().is_root() {
        true
    } else {
        eprintln!("SKIP: needs root to create network namespaces");
        false
    }
}

/// Namespaces pinned in a tempdir, removed on drop (also when a test fails).
struct Lab {
    nss: Vec<PathBuf>,
    dir: tempfile::TempDir,
}

impl Lab {
    fn new() -> Lab {
        Lab {
            nss: Vec::new(),
            dir: tempfile::tempdir().expect("tempdir"),
        }
    }

    fn ns(&mut self, name: &str) -> PathBuf {
        let p = self.dir.path().join(name);
        netns::create(&p).expect("create netns");
        self.nss.push(p.clone());
        p
    }
}

impl Drop for Lab {
    fn drop(&mut self) {
        for p in &self.nss {
            if let Err(e) = netns::remove(p) {
                eprintln!("cleanup: {e}");
            }
        }
    }
}

fn run<T: Send>(ns: &Path, f: impl FnOnce() -> T + Send) -> T {
    netns::run_in(ns, f).expect("run_in")
}

/// `ip -j <args>` inside `ns`; `None` if ip fails (e.g. no such device).
fn ip(ns: &Path, args: &[&str]) -> Option<Value> {
    let out = run(ns, || {
        Command::new("ip")
            .arg("-j")
            .args(args)
            .output()
            .expect("run ip")
    });
    if !out.status.success() {
        return None;
    }
    if out.stdout.iter().all(u8::is_ascii_whitespace) {
        return Some(Value::Null);
    }
    serde_json::from_slice(&out.stdout).ok()
}

/// The single link object `ip -d -j link show dev <name>` reports.
fn link_info(ns: &Path, name: &str) -> Option<Value> {
    ip(ns, &["-d", "link", "show", "dev", name]).map(|v| v[0].clone())
}

fn addrs(ns: &Path, dev: &str) -> Vec<String> {
    let v = ip(ns, &["addr", "show", "dev", dev]).expect("ip addr show");
    v[0]["addr_info"]
        .as_array()
        .expect("addr_info")
        .iter()
        .map(|a| format!("{}/{}", a["local"].as_str().unwrap(), a["prefixlen"]))
        .collect()
}

fn is_up(link: &Value) -> bool {
    link["flags"]
        .as_array()
        .expect("flags")
        .iter()
        .any(|f| f == "UP")
}

fn net(s: &str) -> ipnet::IpNet {
    s.parse().expect("ipnet")
}

fn bridge(name: &str) -> BridgeSpec {
    BridgeSpec {
        name: name.into(),
        addrs: vec![net("10.77.0.1/24"), net("fd77::1/64")],
        mtu: Some(1400),
    }
}

fn endpoint(netns: &Path, host_ifname: &str, last: u8) -> Endpoint {
    Endpoint {
        bridge: "bt0".into(),
        host_ifname: host_ifname.into(),
        netns: netns.to_path_buf(),
        ifname: "eth0".into(),
        mac: Some([0x02, 0x42, 0x0a, 0x4d, 0x00, last]),
        addrs: vec![
            net(&format!("10.77.0.{last}/24")),
            net(&format!("fd77::{last:x}/64")),
        ],
        gateway4: Some(Ipv4Addr::new(10, 77, 0, 1)),
        gateway6: Some("fd77::1".parse().unwrap()),
        mtu: Some(1400),
    }
}

/// Opens a TCP listener inside `server_ns` on `addr`, connects from inside
/// `client_ns` and exchanges a message both ways.
fn tcp_roundtrip(server_ns: &Path, addr: IpAddr, client_ns: &Path) {
    // A socket stays in the namespace it was created in, whatever thread
    // uses it later.
    let listener = run(server_ns, || TcpListener::bind(SocketAddr::new(addr, 0)))
        .unwrap_or_else(|e| panic!("bind {addr}: {e}"));
    let to = listener.local_addr().unwrap();
    let mut client = run(client_ns, || {
        TcpStream::connect_timeout(&to, Duration::from_secs(5))
    })
    .unwrap_or_else(|e| panic!("connect to {to}: {e}"));
    let (mut server, _) = listener.accept().unwrap();
    client.write_all(b"ping").unwrap();
    let mut buf = [0u8; 4];
    server.read_exact(&mut buf).unwrap();
    assert_eq!(&buf, b"ping");
    server.write_all(b"pong").unwrap();
    client.read_exact(&mut buf).unwrap();
    assert_eq!(&buf, b"pong");
}

#[test]
fn bridge_is_created_idempotently_with_addresses_mtu_and_up() {
    if !root() {
        return;
    }
    let mut lab = Lab::new();
    let host = lab.ns("host");
    let spec = bridge("bt0");
    run(&host, || link::ensure_bridge(&spec)).unwrap();
    run(&host, || link::ensure_bridge(&spec)).unwrap();

    let l = link_info(&host, "bt0").expect("bridge exists");
    assert_eq!(l["linkinfo"]["info_kind"], "bridge");
    assert_eq!(l["mtu"], 1400);
    assert!(is_up(&l), "bridge is up: {l}");
    let mut a = addrs(&host, "bt0");
    a.retain(|a| !a.starts_with("fe80"));
    a.sort();
    assert_eq!(a, ["10.77.0.1/24", "fd77::1/64"], "each address once");

    // A later spec with another address and MTU adds, keeps the old ones.
    let mut more = spec.clone();
    more.addrs.push(net("10.78.0.1/24"));
    more.mtu = Some(1300);
    run(&host, || link::ensure_bridge(&more)).unwrap();
    let mut a = addrs(&host, "bt0");
    a.retain(|a| !a.starts_with("fe80"));
    assert_eq!(a.len(), 3, "{a:?}");
    assert!(a.contains(&"10.78.0.1/24".to_string()));
    assert_eq!(link_info(&host, "bt0").unwrap()["mtu"], 1300);

    // A non-bridge link of that name is refused, not reused.
    assert!(ip(
        &host,
        &["link", "add", "dm0", "type", "veth", "peer", "name", "dm1"]
    )
    .is_some());
    let err = run(&host, || link::ensure_bridge(&bridge("dm0"))).unwrap_err();
    assert!(matches!(err, NetError::NotABridge { .. }), "{err}");
    assert!(link::validate_ifname("bt0123456789abcdef").is_err());
    assert!(run(&host, || link::ensure_bridge(&bridge("bt0123456789abcdef"))).is_err());
}

#[test]
fn attach_configures_the_container_and_traffic_flows() {
    if !root() {
        return;
    }
    let mut lab = Lab::new();
    let host = lab.ns("host");
    let c1 = lab.ns("c1");
    let c2 = lab.ns("c2");
    run(&host, || link::ensure_bridge(&bridge("bt0"))).unwrap();
    let ep1 = endpoint(&c1, "vbt1", 2);
    let ep2 = endpoint(&c2, "vbt2", 3);
    run(&host, || link::attach(&ep1)).unwrap();
    run(&host, || link::attach(&ep2)).unwrap();

    // Inside the container: eth0 with address, MAC, MTU, up; lo up.
    let eth0 = link_info(&c1, "eth0").expect("eth0 in the container");
    assert_eq!(eth0["address"], "02:42:0a:4d:00:02");
    assert_eq!(eth0["mtu"], 1400);
    assert!(is_up(&eth0), "{eth0}");
    let mut a = addrs(&c1, "eth0");
    a.retain(|a| !a.starts_with("fe80"));
    a.sort();
    assert_eq!(a, ["10.77.0.2/24", "fd77::2/64"]);
    assert!(is_up(&link_info(&c1, "lo").unwrap()), "lo is up");
    let r4 = ip(&c1, &["route", "show", "default"]).unwrap();
    assert_eq!(r4[0]["gateway"], "10.77.0.1", "{r4}");
    assert_eq!(r4[0]["dev"], "eth0");
    let r6 = ip(&c1, &["-6", "route", "show", "default"]).unwrap();
    assert_eq!(r6[0]["gateway"], "fd77::1", "{r6}");
    // The peer was born in the container: no trace of it on the host.
    assert!(link_info(&host, "eth0").is_none());

    // Host side: on the bridge, hairpin on, up, same MTU.
    let v = link_info(&host, "vbt1").expect("host veth");
    assert_eq!(v["master"], "bt0");
    assert_eq!(v["mtu"], 1400);
    assert!(is_up(&v), "{v}");
    assert_eq!(v["linkinfo"]["info_kind"], "veth");
    assert_eq!(v["linkinfo"]["info_slave_kind"], "bridge");
    assert_eq!(v["linkinfo"]["info_slave_data"]["hairpin"], true, "{v}");

    // Traffic: container -> gateway (v4 and v6), container -> container.
    tcp_roundtrip(&host, IpAddr::V4(Ipv4Addr::new(10, 77, 0, 1)), &c1);
    tcp_roundtrip(&host, "fd77::1".parse::<Ipv6Addr>().unwrap().into(), &c1);
    tcp_roundtrip(&c2, IpAddr::V4(Ipv4Addr::new(10, 77, 0, 3)), &c1);
    tcp_roundtrip(&c1, "fd77::2".parse::<Ipv6Addr>().unwrap().into(), &c2);

    // Detach removes both ends, and is idempotent.
    link::detach(&c1, "eth0").unwrap();
    assert!(link_info(&c1, "eth0").is_none());
    assert!(link_info(&host, "vbt1").is_none());
    link::detach(&c1, "eth0").unwrap();
    // The other container is untouched.
    assert!(link_info(&host, "vbt2").is_some());
    tcp_roundtrip(&host, IpAddr::V4(Ipv4Addr::new(10, 77, 0, 1)), &c2);
}

#[test]
fn failed_attach_leaves_nothing_behind() {
    if !root() {
        return;
    }
    let mut lab = Lab::new();
    let host = lab.ns("host");
    let c1 = lab.ns("c1");

    // No bridge yet.
    let ep = endpoint(&c1, "vbt1", 2);
    let err = run(&host, || link::attach(&ep)).unwrap_err();
    assert!(
        matches!(&err, NetError::LinkMissing { name, .. } if name == "bt0"),
        "{err}"
    );
    assert!(!run(&host, || link::link_exists("vbt1")).unwrap());
    assert!(link_info(&c1, "eth0").is_none());

    // Failure after the pair exists: a gateway outside every subnet makes
    // the route fail inside the container; the pair must be gone.
    run(&host, || link::ensure_bridge(&bridge("bt0"))).unwrap();
    let mut bad = endpoint(&c1, "vbt1", 2);
    bad.gateway4 = Some(Ipv4Addr::new(192, 0, 2, 1));
    let err = run(&host, || link::attach(&bad)).unwrap_err();
    assert!(matches!(err, NetError::Netlink { .. }), "{err}");
    assert!(!run(&host, || link::link_exists("vbt1")).unwrap());
    assert!(link_info(&c1, "eth0").is_none());

    // The container already has an interface of that name: nothing is
    // created on the host, the existing one is left alone.
    assert!(ip(
        &c1,
        &["link", "add", "eth0", "type", "veth", "peer", "name", "eth0p"]
    )
    .is_some());
    let err = run(&host, || link::attach(&endpoint(&c1, "vbt1", 2))).unwrap_err();
    assert!(matches!(err, NetError::Netlink { .. }), "{err}");
    assert!(!run(&host, || link::link_exists("vbt1")).unwrap());
    assert!(
        link_info(&c1, "eth0p").is_some(),
        "the existing eth0 is kept"
    );

    // A host veth name already taken by someone else is not deleted.
    assert!(ip(
        &host,
        &["link", "add", "vbt9", "type", "veth", "peer", "name", "vbt9p"]
    )
    .is_some());
    assert!(ip(&c1, &["link", "del", "eth0"]).is_some());
    let err = run(&host, || link::attach(&endpoint(&c1, "vbt9", 2))).unwrap_err();
    assert!(matches!(err, NetError::Netlink { .. }), "{err}");
    assert!(
        link_info(&host, "vbt9p").is_some(),
        "the existing vbt9 is kept"
    );
    assert!(link_info(&host, "vbt9").unwrap()["master"].is_null());
    assert!(link_info(&c1, "eth0").is_none());

    // And a correct attach still works afterwards.
    run(&host, || link::attach(&endpoint(&c1, "vbt1", 2))).unwrap();
    tcp_roundtrip(&host, IpAddr::V4(Ipv4Addr::new(10, 77, 0, 1)), &c1);
}

#[test]
fn delete_exists_and_prefix_listing() {
    if !root() {
        return;
    }
    let mut lab = Lab::new();
    let host = lab.ns("host");
    let c1 = lab.ns("c1");
    run(&host, || {
        for name in ["bt-a", "bt-b", "other"] {
            link::ensure_bridge(&BridgeSpec {
                name: name.into(),
                addrs: vec![],
                mtu: None,
            })
            .unwrap();
        }
    });
    let mut names = run(&host, || link::links_with_prefix("bt-")).unwrap();
    names.sort();
    assert_eq!(names, ["bt-a", "bt-b"]);
    let all = run(&host, || link::links_with_prefix("")).unwrap();
    assert!(all.contains(&"lo".to_string()) && all.contains(&"other".to_string()));

    assert!(run(&host, || link::link_exists("bt-a")).unwrap());
    run(&host, || link::delete_link("bt-a")).unwrap();
    assert!(!run(&host, || link::link_exists("bt-a")).unwrap());
    run(&host, || link::delete_link("bt-a")).unwrap();
    assert_eq!(
        run(&host, || link::links_with_prefix("bt-")).unwrap(),
        ["bt-b"]
    );

    // A fresh namespace has lo down until loopback_up.
    assert!(!is_up(&link_info(&c1, "lo").unwrap()));
    link::loopback_up(&c1).unwrap();
    assert!(is_up(&link_info(&c1, "lo").unwrap()));
    tcp_roundtrip(&c1, IpAddr::V4(Ipv4Addr::LOCALHOST), &c1);
}

fn read_sysctl(key: &str) -> String {
    std::fs::read_to_string(Path::new("/proc/sys/net").join(key))
        .unwrap()
        .trim()
        .to_string()
}

#[test]
fn net_sysctls_change_only_the_calling_threads_namespace() {
    if !root() {
        return;
    }
    let mut lab = Lab::new();
    let a = lab.ns("a");
    let b = lab.ns("b");

    // Read-only check first: from a thread inside a fresh namespace,
    // /proc/sys/net/ipv4/conf lists that namespace's links (all, default,
    // lo), not the host's. Only then is anything written.
    let conf = run(&a, || {
        let mut v: Vec<String> = std::fs::read_dir("/proc/sys/net/ipv4/conf")
            .unwrap()
            .map(|e| e.unwrap().file_name().into_string().unwrap())
            .collect();
        v.sort();
        v
    });
    assert_eq!(
        conf,
        ["all", "default", "lo"],
        "/proc/sys/net follows the thread"
    );

    let host_before = read_sysctl("ipv4/ip_forward");
    let b_before = run(&b, || read_sysctl("ipv4/ip_forward"));
    let want = if host_before == "1" { "0" } else { "1" };
    run(&a, || link::set_net_sysctl("ipv4/ip_forward", want)).unwrap();
    assert_eq!(run(&a, || read_sysctl("ipv4/ip_forward")), want);
    assert_eq!(run(&b, || read_sysctl("ipv4/ip_forward")), b_before);
    assert_eq!(
        read_sysctl("ipv4/ip_forward"),
        host_before,
        "host unchanged"
    );

    // Per-interface keys of a link that exists only in that namespace.
    run(&a, || {
        link::ensure_bridge(&BridgeSpec {
            name: "bt-s.1".into(),
            addrs: vec![],
            mtu: None,
        })
        .unwrap();
        link::set_net_sysctl("ipv4/conf/bt-s.1/route_localnet", "1").unwrap();
        assert_eq!(read_sysctl("ipv4/conf/bt-s.1/route_localnet"), "1");
    });
    assert!(!Path::new("/proc/sys/net/ipv4/conf/bt-s.1").exists());

    for bad in [
        "../kernel/hostname",
        "ipv4/../../kernel/x",
        "/ipv4/ip_forward",
        "ipv4/*",
    ] {
        let err = run(&a, || link::set_net_sysctl(bad, "1")).unwrap_err();
        assert!(
            matches!(err, NetError::InvalidSysctl { .. }),
            "{bad}: {err}"
        );
    }
    let err = run(&a, || link::set_net_sysctl("ipv4/no_such_key", "1")).unwrap_err();
    assert!(matches!(err, NetError::Sysctl { .. }), "{err}");
}

#[test]
fn no_runtime_thread_outlives_a_call() {
    if !root() {
        return;
    }
    let mut lab = Lab::new();
    let host = lab.ns("host");
    let c1 = lab.ns("c1");
    run(&host, || {
        link::ensure_bridge(&bridge("bt0")).unwrap();
        link::attach(&endpoint(&c1, "vbt1", 2)).unwrap();
        link::links_with_prefix("bt").unwrap();
        link::detach(&c1, "eth0").unwrap();
    });
    // Other tests run in parallel threads of this process, so count no
    // threads: look for any thread tokio would have started (its worker
    // and blocking threads are named "tokio-runtime-worker").
    let tokio_threads: Vec<String> = std::fs::read_dir("/proc/self/task")
        .unwrap()
        .filter_map(|t| std::fs::read_to_string(t.ok()?.path().join("comm")).ok())
        .filter(|comm| comm.starts_with("tokio"))
        .collect();
    assert!(tokio_threads.is_empty(), "{tokio_threads:?}");
}
