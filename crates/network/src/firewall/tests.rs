//! Unit tests of the firewall: rendered JSON and validation.

use super::*;

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

fn net(br: &str, subnets: &[&str], internal: bool) -> NetworkRules {
    NetworkRules {
        bridge: br.into(),
        subnets: subnets.iter().map(|s| s.parse().unwrap()).collect(),
        internal,
    }
}

fn sample() -> Ruleset {
    Ruleset {
        networks: vec![
            net("berth0", &["10.88.0.0/16", "fd00:88::/64"], false),
            net("berth1", &["10.89.0.0/24"], true),
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

fn commands(v: &Value) -> &Vec<Value> {
    v["nftables"].as_array().unwrap()
}

/// The rules of `chain`, each as its list of expressions.
fn rules<'a>(v: &'a Value, chain: &str) -> Vec<&'a Vec<Value>> {
    commands(v)
        .iter()
        .filter_map(|c| c["add"]["rule"].as_object())
        .filter(|r| r["chain"] == chain)
        .map(|r| r["expr"].as_array().unwrap())
        .collect()
}

fn m(op: &str, left: Value, right: Value) -> Value {
    matches(op, left, right)
}

#[test]
fn render_in_names_only_its_own_table() {
    let v = render_in(&sample(), "berth_1a2b3c");
    let c = commands(&v);
    assert!(c.len() > 4);
    for cmd in &c[1..] {
        let obj = cmd.as_object().unwrap().values().next().unwrap();
        let inner = obj.as_object().unwrap().values().next().unwrap();
        let name = inner.get("table").unwrap_or(&inner["name"]);
        assert_eq!(name, "berth_1a2b3c", "{cmd}");
    }
    assert_eq!(render_in(&sample(), TABLE_NAME), render(&sample()));
    assert!(apply_in(&sample(), "bad-name").is_err());
}

#[test]
fn transaction_starts_with_add_delete_add_table() {
    let v = render(&sample());
    let c = commands(&v);
    let t = json!({"table": {"family": "inet", "name": "berth"}});
    assert_eq!(c[1], json!({"add": t}));
    assert_eq!(c[2], json!({"delete": t}));
    assert_eq!(c[3], json!({"add": t}));
    // Nothing outside table inet berth is ever named.
    for cmd in &c[1..] {
        let obj = cmd.as_object().unwrap().values().next().unwrap();
        let inner = obj.as_object().unwrap().values().next().unwrap();
        assert_eq!(inner["family"], "inet", "{cmd}");
        let name = inner.get("table").unwrap_or(&inner["name"]);
        assert_eq!(name, "berth", "{cmd}");
    }
    let chains: Vec<_> = c
        .iter()
        .filter_map(|c| c["add"]["chain"].as_object())
        .map(|c| {
            (
                c["name"].as_str().unwrap(),
                c["type"].as_str().unwrap(),
                c["hook"].as_str().unwrap(),
                c["prio"].as_i64().unwrap(),
            )
        })
        .collect();
    assert_eq!(
        chains,
        [
            ("prerouting", "nat", "prerouting", -100),
            ("output", "nat", "output", -100),
            ("postrouting", "nat", "postrouting", 100),
            ("forward", "filter", "forward", 0),
            ("raw", "filter", "prerouting", -300),
        ]
    );
}

#[test]
fn empty_ruleset_only_deletes() {
    let v = render(&Ruleset::default());
    let c = commands(&v);
    assert_eq!(c.len(), 3);
    assert!(c[2]["delete"]["table"].is_object());
}

#[test]
fn dnat_rules_in_prerouting_and_output() {
    let v = render(&sample());
    for chain in ["prerouting", "output"] {
        let r = rules(&v, chain);
        assert_eq!(r.len(), 3, "{chain}");
        // Any local address, v4, tcp.
        assert_eq!(r[0][0], nfproto(false));
        assert_eq!(
            r[0][1],
            m(
                "==",
                json!({"fib": {"result": "type", "flags": ["daddr"]}}),
                json!("local")
            )
        );
        assert_eq!(r[0][2], m("==", payload("tcp", "dport"), json!(8080)));
        assert_eq!(
            r[0][3],
            json!({"dnat": {"family": "ip", "addr": "10.88.0.2", "port": 80}})
        );
        // One host address, udp.
        assert_eq!(r[1][1], m("==", payload("ip", "daddr"), json!("192.0.2.1")));
        assert_eq!(r[1][2], m("==", payload("udp", "dport"), json!(5353)));
        // IPv6.
        assert_eq!(r[2][0], nfproto(true));
        assert_eq!(
            r[2][1],
            m("==", payload("ip6", "daddr"), json!("2001:db8::1"))
        );
        assert_eq!(
            r[2][3],
            json!({"dnat": {"family": "ip6", "addr": "fd00:88::2", "port": 443}})
        );
    }
}

#[test]
fn unspecified_host_ip_means_every_local_address() {
    let mut r = sample();
    r.ports = vec![port(
        Some("0.0.0.0"),
        80,
        "10.88.0.2",
        80,
        Proto::Tcp,
        "berth0",
    )];
    let v = render(&r);
    let pre = rules(&v, "prerouting");
    assert_eq!(pre[0][1]["match"]["left"]["fib"]["result"], "type");
}

#[test]
fn postrouting_masquerades_outgoing_hairpin_and_loopback() {
    let v = render(&sample());
    let r = rules(&v, "postrouting");
    let pfx = |a: &str, l: u8| json!({"prefix": {"addr": a, "len": l}});
    let out = |a: &str, l: u8, v6: bool, br: &str| {
        vec![
            nfproto(v6),
            m("==", payload(ip_proto(v6), "saddr"), pfx(a, l)),
            m("!=", meta("oifname"), json!(br)),
            json!({"masquerade": null}),
        ]
    };
    let dnat_in = |a: &str, l: u8, v6: bool, br: &str| {
        vec![
            nfproto(v6),
            m("in", json!({"ct": {"key": "status"}}), json!("dnat")),
            m("==", meta("oifname"), json!(br)),
            m("==", payload(ip_proto(v6), "saddr"), pfx(a, l)),
            json!({"masquerade": null}),
        ]
    };
    let want = vec![
        // Outgoing: non-internal network only (berth1 is internal).
        out("10.88.0.0", 16, false, "berth0"),
        out("fd00:88::", 64, true, "berth0"),
        // Loopback and hairpin, per bridge.
        dnat_in("127.0.0.0", 8, false, "berth0"),
        dnat_in("10.88.0.0", 16, false, "berth0"),
        dnat_in("fd00:88::", 64, true, "berth0"),
        dnat_in("127.0.0.0", 8, false, "berth1"),
        dnat_in("10.89.0.0", 24, false, "berth1"),
    ];
    let got: Vec<Vec<Value>> = r.into_iter().cloned().collect();
    assert_eq!(got, want);
}

#[test]
fn subnet_host_bits_are_cleared() {
    let mut r = sample();
    r.networks = vec![net("berth0", &["10.88.3.7/16"], false)];
    let v = render(&r);
    let first = rules(&v, "postrouting")[0];
    assert_eq!(first[1]["match"]["right"]["prefix"]["addr"], "10.88.0.0");
}

#[test]
fn forward_isolates_networks_and_internal() {
    let v = render(&sample());
    let r = rules(&v, "forward");
    assert_eq!(
        *r[0],
        vec![
            m(
                "in",
                json!({"ct": {"key": "state"}}),
                json!(["established", "related"])
            ),
            json!({"accept": null}),
        ]
    );
    let iso = |br: &str| {
        vec![
            m("==", meta("iifname"), json!(br)),
            m("==", meta("oifname"), json!("berth*")),
            m("!=", meta("oifname"), json!(br)),
            json!({"drop": null}),
        ]
    };
    assert_eq!(*r[1], iso("berth0"));
    assert_eq!(*r[2], iso("berth1"));
    assert_eq!(
        *r[3],
        vec![
            m("==", meta("iifname"), json!("berth1")),
            m("!=", meta("oifname"), json!("berth1")),
            json!({"drop": null}),
        ]
    );
    assert_eq!(
        *r[4],
        vec![
            m("==", meta("oifname"), json!("berth1")),
            m("!=", meta("iifname"), json!("berth1")),
            json!({"drop": null}),
        ]
    );
    assert_eq!(r.len(), 5);
}

fn rejected(r: &Ruleset, needle: &str) {
    let e = validate(r).expect_err("must be rejected").to_string();
    assert!(e.contains(needle), "{e:?} should mention {needle:?}");
}

#[test]
fn validation() {
    validate(&sample()).unwrap();
    validate(&Ruleset::default()).unwrap();

    let mut r = sample();
    r.networks[0].bridge = "berth-with-a-long-name".into();
    rejected(&r, "berth-with-a-long-name");
    r.networks[0].bridge = "berth\"; drop".into();
    rejected(&r, "1-15 characters");
    r.networks[0].bridge = "docker0".into();
    rejected(&r, "does not start with the bridge prefix");
    r.networks[0].bridge = "berth1".into();
    rejected(&r, "two networks use it");

    let mut r = sample();
    r.bridge_prefix = String::new();
    rejected(&r, "bridge prefix");
    r.bridge_prefix = "b*".into();
    rejected(&r, "bridge prefix");

    let mut r = sample();
    r.ports[0].host_ip = Some("::1".parse().unwrap());
    rejected(&r, "different families");
    let mut r = sample();
    r.ports[0].bridge = "".into();
    rejected(&r, "port bridge");
    let mut r = sample();
    r.ports[0].host_port = 0;
    rejected(&r, "port 0");
    let mut r = sample();
    r.ports[0].container_ip = "0.0.0.0".parse().unwrap();
    rejected(&r, "unicast");

    // The same port twice, or once for all addresses and once for one.
    let mut r = sample();
    r.ports
        .push(port(None, 8080, "10.88.0.9", 81, Proto::Tcp, "berth0"));
    rejected(&r, "8080/tcp");
    let mut r = sample();
    r.ports.push(port(
        Some("192.0.2.7"),
        8080,
        "10.88.0.9",
        81,
        Proto::Tcp,
        "berth0",
    ));
    rejected(&r, "already published");
    let mut r = sample();
    r.ports
        .push(port(None, 5353, "10.88.0.9", 53, Proto::Udp, "berth0"));
    rejected(&r, "already published");
    // Other protocol, other family or other host address: fine.
    let mut r = sample();
    r.ports
        .push(port(None, 8080, "10.88.0.9", 81, Proto::Udp, "berth0"));
    r.ports
        .push(port(None, 8080, "fd00:88::9", 81, Proto::Tcp, "berth0"));
    r.ports.push(port(
        Some("192.0.2.2"),
        5353,
        "10.88.0.9",
        53,
        Proto::Udp,
        "berth0",
    ));
    validate(&r).unwrap();

    // Ports alone need no prefix (no isolation rules are made).
    let r = Ruleset {
        ports: vec![port(None, 1, "10.0.0.2", 1, Proto::Tcp, "veth0")],
        ..Ruleset::default()
    };
    validate(&r).unwrap();
}
