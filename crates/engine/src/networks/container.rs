//! A container's networking over its life: what `create` allocates and
//! writes, the namespace and interfaces made at start and removed at
//! exit, and the release at `rm`.

use super::*;

/// What the engine records and mounts for a new container's networking.
pub struct Prepared {
    /// Bind mounts of the generated /etc files (config.json `mounts`).
    pub mounts: Vec<Value>,
}

pub(super) fn write_file(path: &Path, text: &str) -> std::result::Result<(), NetworkError> {
    std::fs::write(path, text).map_err(io_err("write", path))
}

pub(super) fn etc_mount(dest: &str, source: &Path) -> Value {
    json!({
        "destination": dest,
        "type": "bind",
        "source": source,
        "options": ["rbind", "rprivate"],
    })
}

/// The host's resolv.conf text.
pub(super) fn host_resolv() -> String {
    std::fs::read_to_string("/etc/resolv.conf").unwrap_or_default()
}

pub(super) fn resolv_for(
    o: &RunOptions,
    dns_servers: &[IpAddr],
    own_netns: bool,
) -> std::result::Result<String, NetworkError> {
    let host = dns::parse_resolv_conf(&host_resolv());
    let mut servers: Vec<IpAddr> = Vec::new();
    for s in &o.dns {
        servers.push(s.parse().map_err(|_| NetworkError::Invalid {
            what: "--dns",
            value: s.clone(),
            why: "not an IP address".into(),
        })?);
    }
    if servers.is_empty() {
        if !dns_servers.is_empty() {
            servers.extend_from_slice(dns_servers);
        } else {
            servers = host
                .nameservers
                .iter()
                .map(|s| s.ip())
                .filter(|ip| !(own_netns && ip.is_loopback()))
                .collect();
            if servers.is_empty() {
                // Docker's fallback when the host has only local resolvers.
                servers = vec![
                    "8.8.8.8".parse().expect("ip"),
                    "8.8.4.4".parse().expect("ip"),
                ];
            }
        }
    }
    let search = if o.dns_search.is_empty() {
        host.search.clone()
    } else {
        o.dns_search
            .iter()
            .filter(|s| s.as_str() != ".")
            .cloned()
            .collect()
    };
    let options = if o.dns_option.is_empty() {
        host.options.clone()
    } else {
        o.dns_option.clone()
    };
    Ok(dns::render_resolv_conf(&servers, &search, &options))
}

/// An `--ip` value.
pub(super) fn parse_ip(s: &str) -> std::result::Result<IpAddr, NetworkError> {
    s.parse().map_err(|_| NetworkError::Invalid {
        what: "--ip",
        value: s.into(),
        why: "not an IP address".into(),
    })
}

pub(super) fn free_port(
    proto: Proto,
    host_ip: Option<IpAddr>,
    taken: &BTreeSet<(Proto, u16)>,
) -> Option<u16> {
    let ip = host_ip.unwrap_or(IpAddr::from([0, 0, 0, 0]));
    (32768u16..=60999).find(|p| {
        !taken.contains(&(proto, *p))
            && match proto {
                Proto::Tcp => TcpListener::bind(SocketAddr::new(ip, *p)).is_ok(),
                Proto::Udp => UdpSocket::bind(SocketAddr::new(ip, *p)).is_ok(),
            }
    })
}

/// Allocates the host ports of `requests` (a free one where none is
/// given) and records them for container `id`.
fn record_ports(
    c: &mut rusqlite::Connection,
    id: &str,
    requests: &[ports::PortRequest],
) -> std::result::Result<(), NetworkError> {
    let mut taken: BTreeSet<(Proto, u16)> = store::all_ports(c)?
        .into_iter()
        .map(|(_, p)| (p.proto, p.host_port))
        .collect();
    let mut maps = Vec::new();
    for r in requests {
        let host_port = match r.host_port {
            Some(p) => p,
            None => free_port(r.proto, r.host_ip, &taken)
                .ok_or(NetworkError::NoFreePort(r.container_port))?,
        };
        taken.insert((r.proto, host_port));
        maps.push(PortMap {
            proto: r.proto,
            host_ip: r.host_ip,
            host_port,
            container_port: r.container_port,
        });
    }
    maps.sort();
    maps.dedup();
    store::set_ports(c, id, &maps)
}

/// At `create`: allocates the container's addresses and host ports in
/// the database and writes its /etc files. Undone by [`release`].
pub fn prepare(
    engine: &Engine,
    id: &str,
    name_hint: &str,
    o: &RunOptions,
    hostname: &str,
) -> Result<Prepared> {
    prepare_in(engine, id, &engine.dir(id), name_hint, o, hostname)
}

/// [`prepare`] with the /etc files written under `dir` (a pod's dir for a
/// pod's network endpoint, keyed by the pod's ID).
pub fn prepare_in(
    engine: &Engine,
    id: &str,
    dir: &Path,
    name_hint: &str,
    o: &RunOptions,
    hostname: &str,
) -> Result<Prepared> {
    let mode = crate::opts::parse_network(o.network.as_deref())?;
    let hosts_p = dir.join("hosts");
    let resolv_p = dir.join("resolv.conf");
    let hostname_p = dir.join("hostname");
    let mut requests = Vec::new();
    for p in &o.publish {
        requests.extend(ports::parse_publish(p)?);
    }
    if !requests.is_empty() && !matches!(mode, NetworkMode::Bridge(_) | NetworkMode::UserMode(_)) {
        return Err(NetworkError::Invalid {
            what: "--publish",
            value: o.publish.join(" "),
            why: "ports can only be published on bridge networks, slirp4netns or pasta".into(),
        }
        .into());
    }
    // slirp4netns' own forwarding (`add_hostfwd`) takes IPv4 host
    // addresses only: refused here, before anything is made (podman 4.3
    // fails at start, 126, and leaves the container created).
    if let NetworkMode::UserMode(berth_network::usermode::Mode::Slirp4netns(s)) = &mode {
        if s.slirp_port_handler {
            if let Some(r) = requests
                .iter()
                .find(|r| r.host_ip.is_some_and(|i| i.is_ipv6()))
            {
                return Err(NetworkError::Invalid {
                    what: "--publish",
                    value: o.publish.join(" "),
                    why: format!(
                        "port_handler=slirp4netns publishes on IPv4 host addresses only, not on {}; drop port_handler=slirp4netns (berth's port proxy publishes on IPv6 addresses too) or publish on an IPv4 address",
                        r.host_ip.expect("an IPv6 address")
                    ),
                }
                .into());
            }
        }
    }
    if (o.ip.is_some() || !o.network_aliases.is_empty()) && !matches!(mode, NetworkMode::Bridge(_))
    {
        return Err(NetworkError::Invalid {
            what: "--ip/--network-alias",
            value: o.ip.clone().unwrap_or_default(),
            why: "needs a bridge network".into(),
        }
        .into());
    }
    // podman: "conflicting options: dns and the network mode: none".
    if mode == NetworkMode::None
        && !(o.dns.is_empty() && o.dns_search.is_empty() && o.dns_option.is_empty())
    {
        return Err(NetworkError::Invalid {
            what: "--dns/--dns-search/--dns-option",
            value: o
                .dns
                .iter()
                .chain(&o.dns_search)
                .chain(&o.dns_option)
                .cloned()
                .collect::<Vec<_>>()
                .join(" "),
            why: "a container with --network none has no DNS to configure".into(),
        }
        .into());
    }
    let mut own: Vec<IpAddr> = Vec::new();
    let mut gateway = None;
    let mut dns_servers = Vec::new();
    match &mode {
        NetworkMode::Bridge(names) => {
            let mut nets = Vec::new();
            for name in names {
                nets.push(get_or_default(engine, name)?);
            }
            let ip = o.ip.as_deref().map(parse_ip).transpose()?;
            let mut db = engine.db()?;
            let c = store::conn(&mut db)?;
            // One endpoint per network, eth0 on the first; `--ip` is the
            // address on the first network.
            for (i, net) in nets.iter().enumerate() {
                let ep = store::attach(
                    c,
                    &store::Attach {
                        network: net,
                        container: id,
                        ip: if i == 0 { ip } else { None },
                        aliases: &o.network_aliases,
                    },
                );
                let ep = match ep {
                    Ok(ep) => ep,
                    Err(e) => {
                        let _ = store::detach(c, id, None);
                        return Err(e.into());
                    }
                };
                own.push(ep.ip);
                own.extend(ep.ip6);
                gateway.get_or_insert(net.gateway);
                if net.dns {
                    dns_servers.push(net.gateway);
                }
            }
            if let Err(e) = record_ports(c, id, &requests) {
                let _ = store::detach(c, id, None);
                return Err(e.into());
            }
        }
        NetworkMode::UserMode(m) => {
            own.extend(m.guest_addr());
            if let berth_network::usermode::Mode::Slirp4netns(o) = m {
                gateway = Some(IpAddr::V4(o.gateway()));
            }
            // podman's resolv.conf: the helper's forwarder first, then the
            // host's servers the namespace can reach.
            if let Some(d) = m.dns_server() {
                dns_servers.push(d);
                let host = dns::parse_resolv_conf(&host_resolv());
                dns_servers.extend(
                    host.nameservers
                        .iter()
                        .map(|s| s.ip())
                        .filter(|ip| !ip.is_loopback()),
                );
            }
            let mut db = engine.db()?;
            let c = store::conn(&mut db)?;
            record_ports(c, id, &requests)?;
        }
        NetworkMode::Container(target) => {
            // Shares the other container's files as well as its network.
            let t = crate::lifecycle::find(engine, target).map_err(|e| NetworkError::Share {
                target: target.clone(),
                why: e.to_string(),
            })?;
            let tdir = engine.dir(&t.id);
            write_file(&hostname_p, &format!("{hostname}\n"))?;
            return Ok(Prepared {
                mounts: vec![
                    etc_mount("/etc/hosts", &tdir.join("hosts")),
                    etc_mount("/etc/resolv.conf", &tdir.join("resolv.conf")),
                    etc_mount("/etc/hostname", &hostname_p),
                ],
            });
        }
        NetworkMode::None | NetworkMode::Host => {}
    }
    let written = (|| -> Result<()> {
        let mut extra = Vec::new();
        for h in &o.add_host {
            extra.push(files::parse_add_host(h, gateway)?);
        }
        let hosts = if mode == NetworkMode::Host {
            let mut t = std::fs::read_to_string("/etc/hosts").unwrap_or_default();
            for (n, ip) in &extra {
                t.push_str(&format!("{ip}\t{n}\n"));
            }
            t
        } else {
            files::hosts(hostname, name_hint, &own, &extra)
        };
        write_file(&hosts_p, &hosts)?;
        let resolv = resolv_for(o, &dns_servers, mode != NetworkMode::Host)?;
        write_file(&resolv_p, &resolv)?;
        write_file(&hostname_p, &format!("{hostname}\n"))?;
        Ok(())
    })();
    if let Err(e) = written {
        let _ = release(engine, id);
        return Err(e);
    }
    Ok(Prepared {
        mounts: vec![
            etc_mount("/etc/hosts", &hosts_p),
            etc_mount("/etc/resolv.conf", &resolv_p),
            etc_mount("/etc/hostname", &hostname_p),
        ],
    })
}

/// Before the runtime creates the container: its network namespace with
/// an interface per endpoint, active published ports, DNS records. For
/// `container:NAME`, points the bundle at that container's namespace.
pub fn setup(engine: &Engine, row: &ContainerRow, o: &RunOptions) -> Result<()> {
    // A pod's container joins the namespace the pod pinned and plumbed.
    if crate::pods::provides_network(engine, o)? {
        return Ok(());
    }
    match crate::opts::parse_network(o.network.as_deref())? {
        NetworkMode::Bridge(_) => {}
        NetworkMode::Container(target) => return share_netns(engine, row, &target),
        NetworkMode::UserMode(m) => return usermode::setup(engine, &row.id, &m),
        NetworkMode::None | NetworkMode::Host => return Ok(()),
    }
    let id = row.id.as_str();
    let userns = crate::pods::userns_pin_for(engine, o)?;
    {
        let _l = bridge_lock(engine)?;
        let r = plumb(engine, id, userns.as_deref());
        if r.is_err() {
            let _ = unplumb(engine, id);
        }
        r?;
    }
    proxy_after_plumb(engine, id)
}

/// Rootless: the published ports of a plumbed bridge namespace go
/// through the port proxy (the bridges are in the rootless network
/// namespace, out of the host addresses' reach); the proxy listens in
/// berth's own namespace (see `rootless_netns::spawn_at_home`). Undone on
/// failure.
fn proxy_after_plumb(engine: &Engine, id: &str) -> Result<()> {
    if !crate::rootless::is_rootless() {
        return Ok(());
    }
    let r = port_proxy::start_for_bridge(engine, id);
    if r.is_err() {
        let _l = bridge_lock(engine)?;
        let _ = unplumb(engine, id);
    }
    r
}

/// A pod's network namespace (keyed by the pod's ID): pinned, with its
/// endpoints and published ports (bridge), or only `lo` up (`none`).
/// Nothing is left behind on failure.
/// With `userns` (the pod's pinned user namespace), the network namespace
/// is made inside it.
pub fn setup_pod(engine: &Engine, id: &str, none: bool, userns: Option<&Path>) -> Result<()> {
    if none {
        let _l = lock(engine)?;
        let r = plumb_none(engine, id, userns);
        if r.is_err() {
            let _ = unplumb(engine, id);
        }
        return r;
    }
    {
        let _l = bridge_lock(engine)?;
        let r = plumb(engine, id, userns);
        if r.is_err() {
            let _ = unplumb(engine, id);
        }
        r?;
    }
    proxy_after_plumb(engine, id)
}

/// A new network namespace pinned at `pin`; inside the user namespace
/// pinned at `userns` when given (a pod's), so that it belongs to it.
fn make_netns(id: &str, pin: &Path, userns: Option<&Path>) -> Result<()> {
    if let Some(user) = userns {
        crate::userns::pin_in_userns(id, user, &[("net", pin.to_path_buf())], None)?;
        return Ok(());
    }
    netns::create(pin).map_err(host_err(
        "*",
        format!("create the network namespace of {}", crate::db::short(id)),
    ))?;
    Ok(())
}

pub(super) fn plumb_none(engine: &Engine, id: &str, userns: Option<&Path>) -> Result<()> {
    let pin = netns_path(engine, id);
    let nsdir = pin.parent().expect("netns dir");
    std::fs::create_dir_all(nsdir)
        .map_err(io_err("create", nsdir))
        .map_err(crate::EngineError::from)?;
    netns::remove(&pin).map_err(host_err("*", "remove a stale namespace pin"))?;
    make_netns(id, &pin, userns)?;
    link::loopback_up(&pin).map_err(host_err("none", "bring up lo"))?;
    Ok(())
}

pub(super) fn plumb(engine: &Engine, id: &str, userns: Option<&Path>) -> Result<()> {
    let pin = netns_path(engine, id);
    let nsdir = pin.parent().expect("netns dir");
    std::fs::create_dir_all(nsdir)
        .map_err(io_err("create", nsdir))
        .map_err(crate::EngineError::from)?;
    netns::remove(&pin).map_err(host_err("*", "remove a stale namespace pin"))?;
    make_netns(id, &pin, userns)?;
    let (eps, ports, nets) = {
        let mut db = engine.db()?;
        let c = store::conn(&mut db)?;
        (
            store::endpoints_of(c, id)?,
            store::ports_of(c, id)?,
            store::list(c)?,
        )
    };
    link::loopback_up(&pin).map_err(host_err("*", "bring up lo"))?;
    for (i, ep) in eps.iter().enumerate() {
        let net = nets
            .iter()
            .find(|n| n.name == ep.network)
            .ok_or_else(|| NetworkError::NotFound(ep.network.clone()))?;
        realize(net)?;
        // The first interface carries the default route (Docker's rule).
        attach_endpoint(id, net, ep, &pin, i == 0)?;
    }
    check_ports(engine, id, &ports)?;
    {
        let db = engine.db()?;
        let mut db = db;
        store::set_ports_active(store::conn(&mut db)?, id, true)?;
    }
    sync_firewall_if(engine, false)?;
    refresh_linked(
        engine,
        eps.iter().map(|e| e.network.clone()).collect(),
        None,
    )?;
    Ok(())
}

pub(super) fn attach_endpoint(
    id: &str,
    net: &Network,
    ep: &Endpoint,
    pin: &Path,
    default_route: bool,
) -> std::result::Result<(), NetworkError> {
    let mut addrs = vec![IpNet::new(ep.ip, net.subnet.prefix_len()).expect("valid prefix")];
    if let (Some(ip6), Some(s6)) = (ep.ip6, net.subnet6) {
        addrs.push(IpNet::new(ip6, s6.prefix_len()).expect("valid prefix"));
    }
    let mac = parse_mac(&ep.mac);
    let (gw4, gw6) = if net.internal || !default_route {
        (None, None)
    } else {
        (
            match net.gateway {
                IpAddr::V4(g) => Some(g),
                IpAddr::V6(_) => None,
            },
            match net.gateway6 {
                Some(IpAddr::V6(g)) => Some(g),
                _ => None,
            },
        )
    };
    // A crash can leave the host end of an earlier run.
    let veth = host_veth(id, &ep.ifname);
    let _ = link::delete_link(&veth);
    link::attach(&link::Endpoint {
        bridge: net.bridge.clone(),
        host_ifname: veth,
        netns: pin.to_path_buf(),
        ifname: ep.ifname.clone(),
        mac,
        addrs,
        gateway4: gw4,
        gateway6: gw6,
        mtu: net.mtu,
    })
    .map_err(host_err(
        &net.name,
        format!("attach container {}", crate::db::short(id)),
    ))
}

pub(super) fn parse_mac(s: &str) -> Option<[u8; 6]> {
    let v: Vec<u8> = s
        .split(':')
        .filter_map(|h| u8::from_str_radix(h, 16).ok())
        .collect();
    v.try_into().ok()
}

/// Refuses a port another running container publishes, or a program on
/// the host listens on.
pub(super) fn check_ports(engine: &Engine, id: &str, ports: &[PortMap]) -> Result<()> {
    if ports.is_empty() {
        return Ok(());
    }
    let active = {
        let mut db = engine.db()?;
        store::active_ports(store::conn(&mut db)?)?
    };
    for p in ports {
        if let Some((holder, _)) = active.iter().find(|(c, a)| {
            c != id
                && a.proto == p.proto
                && a.host_port == p.host_port
                && (a.host_ip.is_none() || p.host_ip.is_none() || a.host_ip == p.host_ip)
        }) {
            let holder = engine
                .db()?
                .get(holder)?
                .map(|r| r.name)
                .unwrap_or_else(|| holder.clone());
            return Err(NetworkError::PortTaken {
                port: p.host_port,
                proto: p.proto.as_str(),
                holder,
            }
            .into());
        }
        let ip = p.host_ip.unwrap_or(IpAddr::from([0, 0, 0, 0]));
        let bound = match p.proto {
            Proto::Tcp => TcpListener::bind(SocketAddr::new(ip, p.host_port)).map(drop),
            Proto::Udp => UdpSocket::bind(SocketAddr::new(ip, p.host_port)).map(drop),
        };
        if let Err(source) = bound {
            if source.kind() == std::io::ErrorKind::AddrInUse {
                return Err(NetworkError::PortBusy {
                    port: p.host_port,
                    proto: p.proto.as_str(),
                    host_ip: p.host_ip,
                    source,
                }
                .into());
            }
        }
    }
    Ok(())
}

pub(super) fn share_netns(engine: &Engine, row: &ContainerRow, target: &str) -> Result<()> {
    let t = crate::lifecycle::find(engine, target).map_err(|e| NetworkError::Share {
        target: target.into(),
        why: e.to_string(),
    })?;
    let pid = match (t.status, t.pid) {
        (Status::Running, Some(pid)) => pid,
        _ => {
            return Err(NetworkError::Share {
                target: target.into(),
                why: format!("container {} is not running; start it first", t.name),
            }
            .into())
        }
    };
    let path = engine.bundle(&row.id).join("config.json");
    let text = std::fs::read_to_string(&path)
        .map_err(io_err("read", &path))
        .map_err(crate::EngineError::from)?;
    let mut spec: Value = serde_json::from_str(&text).map_err(|e| NetworkError::Share {
        target: target.into(),
        why: format!("config.json unreadable: {e}"),
    })?;
    if let Some(ns) = spec["linux"]["namespaces"].as_array_mut() {
        ns.retain(|n| n["type"] != "network");
        // config-linux.md "namespaces": a path joins an existing one.
        ns.push(json!({"type": "network", "path": format!("/proc/{pid}/ns/net")}));
    }
    let out = serde_json::to_vec_pretty(&spec).expect("spec serializes");
    std::fs::write(&path, out)
        .map_err(io_err("write", &path))
        .map_err(crate::EngineError::from)?;
    Ok(())
}

/// `--network none`: the runtime gave the container a fresh namespace
/// whose `lo` is down; it goes up (as podman and Docker do) so 127.0.0.1
/// works inside. `pid` is the created, not yet started, process.
pub fn loopback_for_none(o: &RunOptions, pid: i32) -> Result<()> {
    if crate::opts::parse_network(o.network.as_deref())? != NetworkMode::None {
        return Ok(());
    }
    link::loopback_up(Path::new(&format!("/proc/{pid}/ns/net")))
        .map_err(host_err("none", "bring up lo"))?;
    Ok(())
}

/// After the container's process is gone: ports off, interfaces and the
/// namespace pin removed, DNS records updated. Idempotent and cheap for
/// containers without bridge networks.
pub fn teardown(engine: &Engine, id: &str) -> Result<()> {
    if usermode::teardown(engine, id)? {
        return Ok(());
    }
    port_proxy::stop(engine, id);
    if !netns_path(engine, id).exists() && !ports_active(engine, id)? {
        // Nothing plumbed, or torn down already: the pin goes last, the
        // ports are switched off first.
        return Ok(());
    }
    let _l = bridge_lock(engine)?;
    unplumb(engine, id)
}

/// Order matters for crash safety: ports off and the rules rebuilt, DNS
/// records without the container, veths deleted, and the namespace pin
/// last, so a missing pin means everything before it was done.
pub(super) fn unplumb(engine: &Engine, id: &str) -> Result<()> {
    port_proxy::stop(engine, id);
    let pin = netns_path(engine, id);
    let eps = {
        let mut db = engine.db()?;
        let c = store::conn(&mut db)?;
        store::set_ports_active(c, id, false)?;
        store::endpoints_of(c, id)?
    };
    let mut first: Option<crate::EngineError> = None;
    if let Err(e) = sync_firewall_if(engine, false) {
        first.get_or_insert(e.into());
    }
    let changed = eps.iter().map(|e| e.network.clone()).collect();
    if let Err(e) = refresh_linked(engine, changed, Some(id)) {
        first.get_or_insert(e.into());
    }
    for ep in &eps {
        if let Err(e) = link::delete_link(&host_veth(id, &ep.ifname)) {
            first.get_or_insert(host_err(&ep.network, "delete a container veth")(e).into());
        }
    }
    if let Err(e) = netns::remove(&pin) {
        first.get_or_insert(host_err("*", "remove the namespace pin")(e).into());
    }
    first.map_or(Ok(()), Err)
}

pub(super) fn ports_active(engine: &Engine, id: &str) -> Result<bool> {
    let mut db = engine.db()?;
    let c = store::conn(&mut db)?;
    Ok(store::active_ports(c)?.iter().any(|(cid, _)| cid == id))
}

/// When the container is removed: teardown, then its addresses and ports
/// are released.
pub fn release(engine: &Engine, id: &str) -> Result<()> {
    teardown(engine, id)?;
    let had_endpoints = {
        let mut db = engine.db()?;
        let c = store::conn(&mut db)?;
        let had = !store::endpoints_of(c, id)?.is_empty();
        store::detach(c, id, None)?;
        store::drop_ports(c, id)?;
        had
    };
    if had_endpoints {
        // The rules of a network no container is on any more go.
        let _l = bridge_lock(engine)?;
        sync_firewall_if(engine, false)?;
    }
    Ok(())
}
