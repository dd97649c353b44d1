//! Bridge networks for containers (the engine's side): network records
//! and address allocation in the database, the per-container network
//! namespace (pinned at `<runroot>/netns/<id>` while the container runs),
//! veth endpoints on the network's bridge, berth's nftables table rebuilt
//! from the database after every change, published ports, the
//! per-network DNS resolver process, and the generated `/etc/hosts`,
//! `/etc/resolv.conf` and `/etc/hostname`.
//!
//! Host changes go through berth-network; every one is made under one
//! lock (`<runroot>/networks/lock`) and derived from the database, so a
//! crash leaves nothing the next command cannot put right.

pub mod files;
pub mod ipam;
pub mod ports;
pub mod store;

use std::collections::{BTreeMap, BTreeSet};
use std::fs::File;
use std::net::{IpAddr, SocketAddr, TcpListener, UdpSocket};
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use berth_network::{dns, firewall, link, netns};
use ipnet::IpNet;
use serde_json::{json, Value};

use crate::db::{ContainerRow, Status};
use crate::error::Result;
use crate::opts::{NetworkMode, RunOptions};
use crate::Engine;

pub use ports::{PortMap, Proto};
pub use store::{Endpoint, Network};

/// The network containers join when `--network` is not given.
pub const DEFAULT_NETWORK: &str = "berth";
/// Every bridge berth makes is named `berth<N>`.
pub const BRIDGE_PREFIX: &str = "berth";
/// The hidden subcommand of the `berth` binary that runs a network's DNS
/// resolver (`berth --root R --runroot RR network-dns NAME`).
pub const RESOLVER_SUBCOMMAND: &str = "network-dns";
/// The search domain of names served by a network's resolver.
pub const DNS_DOMAIN: &str = "dns.berth";

/// Errors of networks.
#[derive(Debug, thiserror::Error)]
pub enum NetworkError {
    #[error("invalid {what} value {value:?}: {why}")]
    Invalid {
        what: &'static str,
        value: String,
        why: String,
    },
    #[error("network {0} already exists; pick another name or remove it first")]
    Exists(String),
    #[error("no such network: {0} (see `berth network ls`)")]
    NotFound(String),
    #[error("network {name} is in use by container(s) {}; remove them or `berth network disconnect` them first", containers.join(", "))]
    InUse {
        name: String,
        containers: Vec<String>,
    },
    #[error("subnet {subnet} overlaps network {other}")]
    Overlap { subnet: String, other: String },
    #[error("no free private subnet is left for a new network; give one with --subnet")]
    NoSubnet,
    #[error("address {ip} on network {network} is already taken by container {holder}")]
    AddressInUse {
        ip: IpAddr,
        network: String,
        holder: String,
    },
    #[error("network {network} ({subnet}) has no free address left")]
    Exhausted { network: String, subnet: String },
    #[error("container {container} is already connected to network {network}")]
    AlreadyConnected { network: String, container: String },
    #[error("container {container} is not connected to network {network}")]
    NotConnected { network: String, container: String },
    #[error(
        "container {container} uses --network {mode}: it cannot be connected to bridge networks"
    )]
    WrongMode { container: String, mode: String },
    #[error("host port {port}/{proto} is already published by container {holder}")]
    PortTaken {
        port: u16,
        proto: &'static str,
        holder: String,
    },
    #[error("host port {port}/{proto}{} is in use by another program", host_ip.map(|i| format!(" on {i}")).unwrap_or_default())]
    PortBusy {
        port: u16,
        proto: &'static str,
        host_ip: Option<IpAddr>,
        #[source]
        source: std::io::Error,
    },
    #[error("no free host port is left to publish container port {0}")]
    NoFreePort(u16),
    #[error("the default network {0} cannot be removed")]
    Default(String),
    #[error("--network container:{target}: {why}")]
    Share { target: String, why: String },
    #[error(transparent)]
    Db(#[from] crate::db::DbError),
    #[error("engine database: {op}")]
    Query {
        op: String,
        #[source]
        source: rusqlite::Error,
    },
    #[error("engine database: stored network {what} {value:?} is unreadable")]
    Corrupt { what: &'static str, value: String },
    #[error("network {network}: {op}")]
    Host {
        network: String,
        op: String,
        #[source]
        source: Box<berth_network::NetError>,
    },
    #[error("network DNS resolver of {network}: {why}")]
    Resolver { network: String, why: String },
    #[error("{op} {path}")]
    Io {
        op: &'static str,
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
}

fn host_err(
    network: &str,
    op: impl Into<String>,
) -> impl FnOnce(berth_network::NetError) -> NetworkError {
    let network = network.to_string();
    let op = op.into();
    move |source| NetworkError::Host {
        network,
        op,
        source: Box::new(source),
    }
}

fn io_err<'a>(
    op: &'static str,
    path: &'a Path,
) -> impl FnOnce(std::io::Error) -> NetworkError + 'a {
    move |source| NetworkError::Io {
        op,
        path: path.to_path_buf(),
        source,
    }
}

/// The engine database, for functions whose errors are [`NetworkError`]s.
fn db(engine: &Engine) -> std::result::Result<crate::Db, NetworkError> {
    Ok(crate::Db::pooled(&engine.root, &engine.db_pool)?)
}

/// `<runroot>/networks`.
fn state_dir(engine: &Engine) -> PathBuf {
    engine.runroot.join("networks")
}

/// The pinned network namespace of a container while it runs.
pub fn netns_path(engine: &Engine, id: &str) -> PathBuf {
    engine.runroot.join("netns").join(id)
}

fn records_path(engine: &Engine, network: &str) -> PathBuf {
    state_dir(engine).join(network).join("records.json")
}

fn resolver_pid_path(engine: &Engine, network: &str) -> PathBuf {
    state_dir(engine).join(network).join("dns.pid")
}

/// The host-side veth of a container's interface: `vb` + 10 hex digits
/// of the ID + the interface number (at most 15 bytes).
pub fn host_veth(id: &str, ifname: &str) -> String {
    format!(
        "vb{}{}",
        &id[..10.min(id.len())],
        ifname.trim_start_matches("eth")
    )
}

/// The exclusive lock over host network changes.
struct Lock(#[allow(dead_code)] File);

fn lock(engine: &Engine) -> std::result::Result<Lock, NetworkError> {
    let dir = state_dir(engine);
    std::fs::create_dir_all(&dir).map_err(io_err("create", &dir))?;
    let p = dir.join("lock");
    let f = File::options()
        .create(true)
        .truncate(false)
        .write(true)
        .open(&p)
        .map_err(io_err("open", &p))?;
    rustix::fs::flock(&f, rustix::fs::FlockOperation::LockExclusive)
        .map_err(|e| io_err("lock", &p)(e.into()))?;
    Ok(Lock(f))
}

fn host_routes() -> Vec<IpNet> {
    std::fs::read_to_string("/proc/net/route")
        .map(|t| ipam::routes_v4(&t).into_iter().map(IpNet::V4).collect())
        .unwrap_or_default()
}

/// What `berth network create` asks for.
#[derive(Debug, Clone, Default)]
pub struct CreateRequest {
    pub name: String,
    /// Up to one v4 and one v6 subnet.
    pub subnets: Vec<String>,
    pub gateways: Vec<String>,
    pub ipv6: bool,
    pub internal: bool,
    pub labels: Vec<String>,
    /// `-d/--driver`: only `bridge`.
    pub driver: Option<String>,
    /// `-o/--opt KEY=VALUE`: `mtu` (also Docker's
    /// `com.docker.network.driver.mtu`).
    pub opts: Vec<String>,
}

/// The `--opt` values of a network: its MTU.
fn parse_opts(opts: &[String]) -> std::result::Result<Option<u32>, NetworkError> {
    let mut mtu = None;
    for o in opts {
        let (k, v) = o.split_once('=').unwrap_or((o, ""));
        match k {
            "mtu" | "com.docker.network.driver.mtu" => {
                let m: u32 = v
                    .parse()
                    .ok()
                    .filter(|m| (68..=65535).contains(m))
                    .ok_or_else(|| NetworkError::Invalid {
                        what: "--opt",
                        value: o.clone(),
                        why: "the MTU must be a number from 68 to 65535".into(),
                    })?;
                mtu = Some(m);
            }
            _ => {
                return Err(NetworkError::Invalid {
                    what: "--opt",
                    value: o.clone(),
                    why: "unknown network option (berth knows mtu=N)".into(),
                })
            }
        }
    }
    Ok(mtu)
}

fn check_network_name(name: &str) -> std::result::Result<(), NetworkError> {
    let ok = !name.is_empty()
        && name.len() <= 128
        && name
            .chars()
            .next()
            .is_some_and(|c| c.is_ascii_alphanumeric())
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "_.-".contains(c));
    if !ok || matches!(name, "none" | "host" | "bridge") {
        return Err(NetworkError::Invalid {
            what: "network name",
            value: name.into(),
            why: "use letters, digits, '_', '.', '-' (starting with a letter or digit); none, host and bridge are reserved".into(),
        });
    }
    Ok(())
}

/// `berth network create`.
pub fn create(engine: &Engine, r: &CreateRequest) -> Result<Network> {
    if let Some(d) = r.driver.as_deref().filter(|d| *d != "bridge") {
        return Err(crate::opts::OptsError::Unsupported(format!(
            "network driver {d} (only bridge)"
        ))
        .into());
    }
    check_network_name(&r.name)?;
    let net = insert_network(engine, &r.name, r, false)?;
    let _l = lock(engine)?;
    let up = realize(&net).and_then(|_| sync_firewall(engine));
    if let Err(e) = up {
        let _ = link::delete_link(&net.bridge);
        let mut db = engine.db()?;
        let _ = store::delete(store::conn(&mut db)?, &net.name);
        let _ = sync_firewall(engine);
        return Err(e.into());
    }
    Ok(net)
}

fn insert_network(
    engine: &Engine,
    name: &str,
    r: &CreateRequest,
    default: bool,
) -> std::result::Result<Network, NetworkError> {
    let mut v4 = None;
    let mut v6 = None;
    for s in &r.subnets {
        let n = ipam::parse_subnet(s)?;
        let slot = match n {
            IpNet::V4(_) => &mut v4,
            IpNet::V6(_) => &mut v6,
        };
        if slot.replace(n).is_some() {
            return Err(NetworkError::Invalid {
                what: "--subnet",
                value: s.clone(),
                why: "at most one IPv4 and one IPv6 subnet".into(),
            });
        }
    }
    if v6.is_some() && !r.ipv6 {
        return Err(NetworkError::Invalid {
            what: "--subnet",
            value: v6.map(|n| n.to_string()).unwrap_or_default(),
            why: "an IPv6 subnet needs --ipv6".into(),
        });
    }
    let mut g4 = None;
    let mut g6 = None;
    for g in &r.gateways {
        let ip: IpAddr = g.parse().map_err(|_| NetworkError::Invalid {
            what: "--gateway",
            value: g.clone(),
            why: "not an IP address".into(),
        })?;
        match ip {
            IpAddr::V4(_) if r.subnets.is_empty() || v4.is_none() => {
                return Err(NetworkError::Invalid {
                    what: "--gateway",
                    value: g.clone(),
                    why: "a gateway needs its --subnet".into(),
                })
            }
            IpAddr::V4(_) => g4 = Some(ip),
            IpAddr::V6(_) => g6 = Some(ip),
        }
    }
    let id = crate::names::new_id().map_err(|e| NetworkError::Invalid {
        what: "network id",
        value: String::new(),
        why: e.to_string(),
    })?;
    let labels = crate::opts::parse_labels(&r.labels);
    let mtu = parse_opts(&r.opts)?;
    let routes = host_routes();
    let mut db = db(engine)?;
    let (bridge_prefix, _) = host_names(engine, &store::list(store::conn(&mut db)?)?);
    store::insert(
        store::conn(&mut db)?,
        &store::NewNetwork {
            name,
            id: &id,
            subnet: v4,
            gateway: g4,
            ipv6: r.ipv6,
            subnet6: v6,
            gateway6: g6,
            internal: r.internal,
            dns: !default,
            labels: &labels,
            host_routes: &routes,
            default,
            mtu,
            bridge_prefix: &bridge_prefix,
        },
    )
}

/// The names of this root's objects on the host: the bridge prefix and
/// the nftables table. The default root keeps `berth` (`berth0`, ...,
/// table `inet berth`); another root gets names of its own from a hash
/// of its path (`bh1a2b3c0`, ..., table `inet berth_1a2b3c`), so that two
/// roots on one host never share a bridge or replace each other's table.
/// A root whose networks were made before (bridges `berth*`) keeps those.
fn host_names(engine: &Engine, nets: &[Network]) -> (String, String) {
    let canon = |p: &Path| std::fs::canonicalize(p).unwrap_or_else(|_| p.to_path_buf());
    let root = canon(&engine.root);
    let legacy = nets.iter().any(|n| n.bridge.starts_with(BRIDGE_PREFIX));
    if legacy || root == canon(Path::new(berth_image::store::DEFAULT_ROOT)) {
        return (BRIDGE_PREFIX.into(), firewall::TABLE_NAME.into());
    }
    let hash = berth_image::Digest::of_bytes(root.as_os_str().as_encoded_bytes());
    let short = &hash.hex()[..6];
    (
        format!("bh{short}"),
        format!("{}_{short}", firewall::TABLE_NAME),
    )
}

/// The network `name`, creating the default one on first use.
pub fn get_or_default(engine: &Engine, name: &str) -> Result<Network> {
    let mut db = engine.db()?;
    if let Some(n) = store::get(store::conn(&mut db)?, name)? {
        return Ok(n);
    }
    if name != DEFAULT_NETWORK {
        return Err(NetworkError::NotFound(name.into()).into());
    }
    match insert_network(engine, name, &CreateRequest::default(), true) {
        Ok(n) => Ok(n),
        // A racing command made it first.
        Err(NetworkError::Exists(_)) => {
            let mut db = engine.db()?;
            Ok(store::get(store::conn(&mut db)?, name)?
                .ok_or_else(|| NetworkError::NotFound(name.into()))?)
        }
        Err(e) => Err(e.into()),
    }
}

/// A network by name or ID prefix.
pub fn find(engine: &Engine, reference: &str) -> Result<Network> {
    let mut db = engine.db()?;
    Ok(store::get(store::conn(&mut db)?, reference)?
        .ok_or_else(|| NetworkError::NotFound(reference.into()))?)
}

/// All networks.
pub fn list(engine: &Engine) -> Result<Vec<Network>> {
    let mut db = engine.db()?;
    Ok(store::list(store::conn(&mut db)?)?)
}

/// Containers attached to a network, with their endpoints.
pub fn endpoints_on(engine: &Engine, network: &str) -> Result<Vec<Endpoint>> {
    let mut db = engine.db()?;
    Ok(store::endpoints_on(store::conn(&mut db)?, network)?)
}

/// Containers holding addresses or ports that have no container row (a
/// killed `create`); see [`crate::create::reap_interrupted`].
pub fn unowned(engine: &Engine) -> Result<Vec<String>> {
    let mut db = engine.db()?;
    let c = store::conn(&mut db)?;
    Ok(store::unowned(c)?)
}

/// A container's endpoints and published ports.
pub fn of_container(engine: &Engine, id: &str) -> Result<(Vec<Endpoint>, Vec<PortMap>)> {
    let mut db = engine.db()?;
    let c = store::conn(&mut db)?;
    Ok((store::endpoints_of(c, id)?, store::ports_of(c, id)?))
}

/// `berth network rm`: refused while containers are attached; removes the
/// bridge, the resolver and the rules, then the record.
pub fn remove(engine: &Engine, reference: &str) -> Result<String> {
    if reference == DEFAULT_NETWORK {
        return Err(NetworkError::Default(reference.into()).into());
    }
    let net = find(engine, reference)?;
    if net.name == DEFAULT_NETWORK {
        return Err(NetworkError::Default(net.name).into());
    }
    let _l = lock(engine)?;
    let users = {
        let mut db = engine.db()?;
        store::users_of(store::conn(&mut db)?, &net.name)?
    };
    if !users.is_empty() {
        return Err(NetworkError::InUse {
            name: net.name,
            containers: users,
        }
        .into());
    }
    stop_resolver(engine, &net.name);
    link::delete_link(&net.bridge)
        .map_err(host_err(&net.name, format!("delete bridge {}", net.bridge)))?;
    {
        let mut db = engine.db()?;
        store::delete(store::conn(&mut db)?, &net.name)?;
    }
    let _ = std::fs::remove_dir_all(state_dir(engine).join(&net.name));
    sync_firewall(engine)?;
    Ok(net.name)
}

/// `berth network prune`: removes every network (but the default) no
/// container uses; returns their names.
pub fn prune(engine: &Engine) -> Result<Vec<String>> {
    let mut gone = Vec::new();
    for n in list(engine)? {
        if n.name == DEFAULT_NETWORK {
            continue;
        }
        match remove(engine, &n.name) {
            Ok(name) => gone.push(name),
            Err(crate::EngineError::Network(e)) if matches!(*e, NetworkError::InUse { .. }) => {}
            Err(e) => return Err(e),
        }
    }
    Ok(gone)
}

/// Creates the network's bridge (idempotent) with its gateway addresses;
/// turns on forwarding for networks with a way out, and `route_localnet`
/// so published ports answer on 127.0.0.1.
fn realize(net: &Network) -> std::result::Result<(), NetworkError> {
    let mut addrs = vec![IpNet::new(net.gateway, net.subnet.prefix_len()).expect("valid prefix")];
    if let (Some(s), Some(g)) = (net.subnet6, net.gateway6) {
        addrs.push(IpNet::new(g, s.prefix_len()).expect("valid prefix"));
    }
    link::ensure_bridge(&link::BridgeSpec {
        name: net.bridge.clone(),
        addrs,
        mtu: net.mtu,
    })
    .map_err(host_err(&net.name, format!("create bridge {}", net.bridge)))?;
    let set = |k: String, v: &str| {
        link::set_net_sysctl(&k, v).map_err(host_err(&net.name, format!("set net.{k}")))
    };
    set(format!("ipv4/conf/{}/route_localnet", net.bridge), "1")?;
    if !net.internal {
        set("ipv4/ip_forward".into(), "1")?;
        if net.subnet6.is_some() {
            set("ipv6/conf/all/forwarding".into(), "1")?;
        }
    }
    Ok(())
}

/// Rebuilds berth's nftables table from the database (networks and the
/// ports of running containers). Caller holds the lock.
fn sync_firewall(engine: &Engine) -> std::result::Result<(), NetworkError> {
    sync_firewall_if(engine, true)
}

/// The last ruleset applied (`<runroot>/networks/firewall.json`, on the
/// same tmpfs as the table's lifetime): container starts and stops that
/// leave the rules unchanged skip `nft`.
fn applied_path(engine: &Engine) -> PathBuf {
    state_dir(engine).join("firewall.json")
}

/// Rebuilds the table; unless `force`, only when the rules differ from
/// the last ones applied. Caller holds the lock.
fn sync_firewall_if(engine: &Engine, force: bool) -> std::result::Result<(), NetworkError> {
    let mut db = db(engine)?;
    let c = store::conn(&mut db)?;
    let nets = store::list(c)?;
    let by_name: BTreeMap<&str, &Network> = nets.iter().map(|n| (n.name.as_str(), n)).collect();
    let mut rules = Vec::new();
    for (container, p) in store::active_ports(c)? {
        // Published on the container's first network's address.
        let eps = store::endpoints_of(c, &container)?;
        let Some(ep) = eps.first() else { continue };
        let Some(net) = by_name.get(ep.network.as_str()) else {
            continue;
        };
        let container_ip = match p.host_ip {
            Some(IpAddr::V6(_)) => match ep.ip6 {
                Some(ip) => ip,
                None => continue,
            },
            _ => ep.ip,
        };
        rules.push(firewall::PortRule {
            host_ip: p.host_ip,
            host_port: p.host_port,
            container_ip,
            container_port: p.container_port,
            proto: match p.proto {
                Proto::Tcp => firewall::Proto::Tcp,
                Proto::Udp => firewall::Proto::Udp,
            },
            bridge: net.bridge.clone(),
        });
    }
    // Only networks some container is on: with the last one gone, the
    // table goes too (nothing is left on the host that no container needs).
    let mut used = Vec::new();
    for n in &nets {
        if !store::endpoints_on(c, &n.name)?.is_empty() {
            used.push(n);
        }
    }
    let (bridge_prefix, table) = host_names(engine, &nets);
    let ruleset = firewall::Ruleset {
        networks: used
            .iter()
            .map(|n| firewall::NetworkRules {
                bridge: n.bridge.clone(),
                subnets: std::iter::once(n.subnet).chain(n.subnet6).collect(),
                internal: n.internal,
            })
            .collect(),
        ports: rules,
        bridge_prefix,
    };
    let rendered = firewall::render_in(&ruleset, &table).to_string();
    let last = applied_path(engine);
    if !force && std::fs::read_to_string(&last).is_ok_and(|t| t == rendered) {
        return Ok(());
    }
    // Forget the old state first: a failure below must not be skipped next time.
    let _ = std::fs::remove_file(&last);
    firewall::apply_in(&ruleset, &table).map_err(host_err(
        "*",
        format!("apply berth's nftables table {table}"),
    ))?;
    let tmp = last.with_extension("tmp");
    if std::fs::write(&tmp, &rendered).is_ok() {
        let _ = std::fs::rename(&tmp, &last);
    }
    Ok(())
}

/// What the engine records and mounts for a new container's networking.
pub struct Prepared {
    /// Bind mounts of the generated /etc files (config.json `mounts`).
    pub mounts: Vec<Value>,
}

fn write_file(path: &Path, text: &str) -> std::result::Result<(), NetworkError> {
    std::fs::write(path, text).map_err(io_err("write", path))
}

fn etc_mount(dest: &str, source: &Path) -> Value {
    json!({
        "destination": dest,
        "type": "bind",
        "source": source,
        "options": ["rbind", "rprivate"],
    })
}

/// The host's resolv.conf text.
fn host_resolv() -> String {
    std::fs::read_to_string("/etc/resolv.conf").unwrap_or_default()
}

fn resolv_for(
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
fn parse_ip(s: &str) -> std::result::Result<IpAddr, NetworkError> {
    s.parse().map_err(|_| NetworkError::Invalid {
        what: "--ip",
        value: s.into(),
        why: "not an IP address".into(),
    })
}

fn free_port(proto: Proto, host_ip: Option<IpAddr>, taken: &BTreeSet<(Proto, u16)>) -> Option<u16> {
    let ip = host_ip.unwrap_or(IpAddr::from([0, 0, 0, 0]));
    (32768u16..=60999).find(|p| {
        !taken.contains(&(proto, *p))
            && match proto {
                Proto::Tcp => TcpListener::bind(SocketAddr::new(ip, *p)).is_ok(),
                Proto::Udp => UdpSocket::bind(SocketAddr::new(ip, *p)).is_ok(),
            }
    })
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
    if !requests.is_empty() && !matches!(mode, NetworkMode::Bridge(_)) {
        return Err(NetworkError::Invalid {
            what: "--publish",
            value: o.publish.join(" "),
            why: "ports can only be published on bridge networks".into(),
        }
        .into());
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
            let mut taken: BTreeSet<(Proto, u16)> = match store::all_ports(c) {
                Ok(p) => p.into_iter().map(|(_, p)| (p.proto, p.host_port)).collect(),
                Err(e) => {
                    let _ = store::detach(c, id, None);
                    return Err(e.into());
                }
            };
            let mut maps = Vec::new();
            for r in &requests {
                let host_port = match r.host_port {
                    Some(p) => p,
                    None => match free_port(r.proto, r.host_ip, &taken) {
                        Some(p) => p,
                        None => {
                            let _ = store::detach(c, id, None);
                            return Err(NetworkError::NoFreePort(r.container_port).into());
                        }
                    },
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
            if let Err(e) = store::set_ports(c, id, &maps) {
                let _ = store::detach(c, id, None);
                return Err(e.into());
            }
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
        NetworkMode::None | NetworkMode::Host => return Ok(()),
    }
    let id = row.id.as_str();
    let _l = lock(engine)?;
    let r = plumb(engine, id);
    if r.is_err() {
        let _ = unplumb(engine, id);
    }
    r
}

/// A pod's network namespace (keyed by the pod's ID): pinned, with its
/// endpoints and published ports (bridge), or only `lo` up (`none`).
/// Nothing is left behind on failure.
pub fn setup_pod(engine: &Engine, id: &str, none: bool) -> Result<()> {
    let _l = lock(engine)?;
    let r = if none {
        plumb_none(engine, id)
    } else {
        plumb(engine, id)
    };
    if r.is_err() {
        let _ = unplumb(engine, id);
    }
    r
}

fn plumb_none(engine: &Engine, id: &str) -> Result<()> {
    let pin = netns_path(engine, id);
    let nsdir = pin.parent().expect("netns dir");
    std::fs::create_dir_all(nsdir)
        .map_err(io_err("create", nsdir))
        .map_err(crate::EngineError::from)?;
    netns::remove(&pin).map_err(host_err("*", "remove a stale namespace pin"))?;
    netns::create(&pin).map_err(host_err(
        "*",
        format!(
            "create the network namespace of pod {}",
            crate::db::short(id)
        ),
    ))?;
    link::loopback_up(&pin).map_err(host_err("none", "bring up lo"))?;
    Ok(())
}

fn plumb(engine: &Engine, id: &str) -> Result<()> {
    let pin = netns_path(engine, id);
    let nsdir = pin.parent().expect("netns dir");
    std::fs::create_dir_all(nsdir)
        .map_err(io_err("create", nsdir))
        .map_err(crate::EngineError::from)?;
    netns::remove(&pin).map_err(host_err("*", "remove a stale namespace pin"))?;
    netns::create(&pin).map_err(host_err(
        "*",
        format!("create the network namespace of {id}"),
    ))?;
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

fn attach_endpoint(
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

fn parse_mac(s: &str) -> Option<[u8; 6]> {
    let v: Vec<u8> = s
        .split(':')
        .filter_map(|h| u8::from_str_radix(h, 16).ok())
        .collect();
    v.try_into().ok()
}

/// Refuses a port another running container publishes, or a program on
/// the host listens on.
fn check_ports(engine: &Engine, id: &str, ports: &[PortMap]) -> Result<()> {
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

fn share_netns(engine: &Engine, row: &ContainerRow, target: &str) -> Result<()> {
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
    if !netns_path(engine, id).exists() && !ports_active(engine, id)? {
        // Nothing plumbed, or torn down already: the pin goes last, the
        // ports are switched off first.
        return Ok(());
    }
    let _l = lock(engine)?;
    unplumb(engine, id)
}

/// Order matters for crash safety: ports off and the rules rebuilt, DNS
/// records without the container, veths deleted, and the namespace pin
/// last, so a missing pin means everything before it was done.
fn unplumb(engine: &Engine, id: &str) -> Result<()> {
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

fn ports_active(engine: &Engine, id: &str) -> Result<bool> {
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
        let _l = lock(engine)?;
        sync_firewall_if(engine, false)?;
    }
    Ok(())
}

/// `berth network connect`: records the endpoint and, if the container
/// runs, plugs it in now.
pub fn connect(
    engine: &Engine,
    network: &str,
    container: &str,
    ip: Option<&str>,
    aliases: &[String],
) -> Result<Endpoint> {
    let row = crate::lifecycle::find(engine, container)?;
    let cfg = crate::create::ContainerConfig::of(&row)?;
    let mode = crate::opts::parse_network(cfg.options.network.as_deref())?;
    if !matches!(mode, NetworkMode::Bridge(_)) {
        return Err(NetworkError::WrongMode {
            container: row.name,
            mode: cfg.options.network.unwrap_or_default(),
        }
        .into());
    }
    let net = find(engine, network)?;
    let ip = ip.map(parse_ip).transpose()?;
    let _l = lock(engine)?;
    let ep = {
        let mut db = engine.db()?;
        store::attach(
            store::conn(&mut db)?,
            &store::Attach {
                network: &net,
                container: &row.id,
                ip,
                aliases,
            },
        )?
    };
    let pin = netns_path(engine, &row.id);
    if row.status == Status::Running && netns::is_pinned(&pin) {
        let plugged = realize(&net)
            .and_then(|_| attach_endpoint(&row.id, &net, &ep, &pin, ep.ifname == "eth0"))
            .and_then(|_| sync_firewall(engine))
            .and_then(|_| refresh_linked(engine, networks_of(engine, &row.id, &net)?, None));
        if let Err(e) = plugged {
            let _ = link::delete_link(&host_veth(&row.id, &ep.ifname));
            let mut db = engine.db()?;
            let _ = store::detach(store::conn(&mut db)?, &row.id, Some(&net.name));
            return Err(e.into());
        }
    }
    Ok(ep)
}

/// `berth network disconnect`.
pub fn disconnect(engine: &Engine, network: &str, container: &str) -> Result<()> {
    let row = crate::lifecycle::find(engine, container)?;
    let net = find(engine, network)?;
    let _l = lock(engine)?;
    let ep = {
        let mut db = engine.db()?;
        store::endpoints_of(store::conn(&mut db)?, &row.id)?
            .into_iter()
            .find(|e| e.network == net.name)
            .ok_or_else(|| NetworkError::NotConnected {
                network: net.name.clone(),
                container: row.name.clone(),
            })?
    };
    let pin = netns_path(engine, &row.id);
    if netns::is_pinned(&pin) {
        link::detach(&pin, &ep.ifname)
            .map_err(host_err(&net.name, "remove the container's interface"))?;
    }
    let _ = link::delete_link(&host_veth(&row.id, &ep.ifname));
    {
        let mut db = engine.db()?;
        store::detach(store::conn(&mut db)?, &row.id, Some(&net.name))?;
    }
    sync_firewall(engine)?;
    refresh_linked(engine, networks_of(engine, &row.id, &net)?, None)?;
    Ok(())
}

/// The networks of container `id` and `net`: whose DNS records change
/// when the container joins or leaves `net`.
fn networks_of(
    engine: &Engine,
    id: &str,
    net: &Network,
) -> std::result::Result<BTreeSet<String>, NetworkError> {
    let mut db = db(engine)?;
    let eps = store::endpoints_of(store::conn(&mut db)?, id)?;
    Ok(eps
        .into_iter()
        .map(|e| e.network)
        .chain([net.name.clone()])
        .collect())
}

/// Rewrites a DNS network's records from its running endpoints (name,
/// aliases, short ID) and starts its resolver; with none running the
/// records file goes and the resolver exits. Leaves out container `gone`
/// (being torn down). Caller holds the lock.
/// A container on several DNS networks asks its first network's
/// resolver, so each network's records also carry, scoped to the
/// addresses of such containers, the names of their other networks.
fn refresh_records_without(
    engine: &Engine,
    net: &Network,
    gone: Option<&str>,
) -> std::result::Result<(), NetworkError> {
    let path = records_path(engine, &net.name);
    let mut db = db(engine)?;
    let (all, nets) = {
        let c = store::conn(&mut db)?;
        (store::all_endpoints(c)?, store::list(c)?)
    };
    let running: BTreeSet<&str> = all
        .iter()
        .map(|e| e.container.as_str())
        .filter(|c| Some(*c) != gone && netns::is_pinned(&netns_path(engine, c)))
        .collect();
    let mut container_names: BTreeMap<&str, String> = BTreeMap::new();
    for c in &running {
        let name = db.get(c).ok().flatten().map(|r| r.name).unwrap_or_default();
        container_names.insert(c, name);
    }
    let names_on = |network: &str| {
        let mut names: BTreeMap<String, Vec<IpAddr>> = BTreeMap::new();
        for ep in all
            .iter()
            .filter(|e| e.network == network && running.contains(e.container.as_str()))
        {
            let ips: Vec<IpAddr> = std::iter::once(ep.ip).chain(ep.ip6).collect();
            let name = container_names
                .get(ep.container.as_str())
                .cloned()
                .unwrap_or_default();
            let short = crate::db::short(&ep.container).to_string();
            for n in std::iter::once(name)
                .chain(ep.aliases.iter().cloned())
                .chain([short])
            {
                if n.is_empty() {
                    continue;
                }
                let e = names.entry(n.to_ascii_lowercase()).or_default();
                e.extend(ips.iter().copied());
            }
        }
        names
    };
    let names = names_on(&net.name);
    if names.is_empty() {
        stop_resolver(engine, &net.name);
        return Ok(());
    }
    let mut scoped: BTreeMap<IpAddr, BTreeMap<String, Vec<IpAddr>>> = BTreeMap::new();
    for ep in all
        .iter()
        .filter(|e| e.network == net.name && running.contains(e.container.as_str()))
    {
        let others = all.iter().filter(|o| {
            o.container == ep.container
                && o.network != net.name
                && nets.iter().any(|n| n.name == o.network && n.dns)
        });
        let mut extra: BTreeMap<String, Vec<IpAddr>> = BTreeMap::new();
        for o in others {
            for (n, ips) in names_on(&o.network) {
                let e = extra.entry(n).or_default();
                e.extend(
                    ips.into_iter()
                        .filter(|i| !e.contains(i))
                        .collect::<Vec<_>>(),
                );
            }
        }
        if !extra.is_empty() {
            for ip in std::iter::once(ep.ip).chain(ep.ip6) {
                scoped.insert(ip, extra.clone());
            }
        }
    }
    let dir = path.parent().expect("records dir");
    std::fs::create_dir_all(dir).map_err(io_err("create", dir))?;
    let records = dns::Records {
        names,
        upstreams: dns::upstreams_from_host(&host_resolv()),
        domain: DNS_DOMAIN.into(),
        scoped,
    };
    records
        .write_atomic(&path)
        .map_err(host_err(&net.name, "write the DNS records"))?;
    ensure_resolver(engine, net)
}

/// The DNS networks whose records change when containers on the
/// `changed` networks come or go: those, and every network that shares a
/// container with one of them (its scoped names change).
fn linked_dns_networks(
    engine: &Engine,
    changed: &BTreeSet<String>,
) -> std::result::Result<Vec<Network>, NetworkError> {
    let mut db = db(engine)?;
    let c = store::conn(&mut db)?;
    let (all, nets) = (store::all_endpoints(c)?, store::list(c)?);
    let sharing: BTreeSet<&str> = all
        .iter()
        .filter(|e| changed.contains(&e.network))
        .map(|e| e.container.as_str())
        .collect();
    let wanted: BTreeSet<&str> = all
        .iter()
        .filter(|e| sharing.contains(e.container.as_str()))
        .map(|e| e.network.as_str())
        .chain(changed.iter().map(String::as_str))
        .collect();
    Ok(nets
        .into_iter()
        .filter(|n| n.dns && wanted.contains(n.name.as_str()))
        .collect())
}

/// [`refresh_records_without`] for every network [`linked_dns_networks`]
/// names; goes on after an error and returns the first.
fn refresh_linked(
    engine: &Engine,
    changed: BTreeSet<String>,
    gone: Option<&str>,
) -> std::result::Result<(), NetworkError> {
    let mut first = None;
    for net in linked_dns_networks(engine, &changed)? {
        if let Err(e) = refresh_records_without(engine, &net, gone) {
            first.get_or_insert(e);
        }
    }
    first.map_or(Ok(()), Err)
}

fn resolver_alive(engine: &Engine, network: &str) -> Option<i32> {
    let text = std::fs::read_to_string(resolver_pid_path(engine, network)).ok()?;
    let mut it = text.split_whitespace();
    let pid: i32 = it.next()?.parse().ok()?;
    let start: u64 = it.next()?.parse().ok()?;
    berth_runtime::state::init_alive(pid, start).then_some(pid)
}

/// Starts the network's resolver unless it runs; waits until it serves.
fn ensure_resolver(engine: &Engine, net: &Network) -> std::result::Result<(), NetworkError> {
    if resolver_alive(engine, &net.name).is_some() {
        return Ok(());
    }
    let pidfile = resolver_pid_path(engine, &net.name);
    let _ = std::fs::remove_file(&pidfile);
    let log = state_dir(engine).join(&net.name).join("dns.log");
    let err = File::options()
        .create(true)
        .append(true)
        .open(&log)
        .map_err(io_err("open", &log))?;
    let mut cmd = Command::new("/proc/self/exe");
    cmd.arg("--root")
        .arg(&engine.root)
        .arg("--runroot")
        .arg(&engine.runroot)
        .arg(RESOLVER_SUBCOMMAND)
        .arg(&net.name)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::from(err))
        .process_group(0);
    let mut child = cmd.spawn().map_err(|e| NetworkError::Resolver {
        network: net.name.clone(),
        why: format!("spawn: {e}"),
    })?;
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        if resolver_alive(engine, &net.name).is_some() {
            // It lives on detached; init reaps it.
            drop(child);
            return Ok(());
        }
        if let Ok(Some(status)) = child.try_wait() {
            let tail = std::fs::read_to_string(&log).unwrap_or_default();
            let last = tail.lines().last().unwrap_or("").to_string();
            return Err(NetworkError::Resolver {
                network: net.name.clone(),
                why: format!("it exited ({status}): {last}; see {}", log.display()),
            });
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            return Err(NetworkError::Resolver {
                network: net.name.clone(),
                why: format!("it did not start within 5 s; see {}", log.display()),
            });
        }
        std::thread::sleep(Duration::from_millis(10));
    }
}

/// Removes the records (the resolver exits by itself) and ends the
/// resolver we started if it lingers.
fn stop_resolver(engine: &Engine, network: &str) {
    let _ = std::fs::remove_file(records_path(engine, network));
    if let Some(pid) = resolver_alive(engine, network) {
        let deadline = Instant::now() + Duration::from_secs(1);
        while Instant::now() < deadline && resolver_alive(engine, network).is_some() {
            std::thread::sleep(Duration::from_millis(10));
        }
        if resolver_alive(engine, network).is_some() {
            let _ = nix::sys::signal::kill(
                nix::unistd::Pid::from_raw(pid),
                nix::sys::signal::Signal::SIGKILL,
            );
        }
    }
    let _ = std::fs::remove_file(resolver_pid_path(engine, network));
}

/// The resolver process (`berth network-dns NAME`): binds the network's
/// gateway port 53 (UDP and TCP), records its pid, serves until the
/// records file is removed.
pub fn resolver_main(engine: &Engine, network: &str) -> Result<()> {
    let net = find(engine, network)?;
    let addr = SocketAddr::new(net.gateway, 53);
    let udp = UdpSocket::bind(addr).map_err(|e| NetworkError::Resolver {
        network: network.into(),
        why: format!("bind {addr}/udp: {e}"),
    })?;
    let tcp = TcpListener::bind(addr).ok();
    let pidfile = resolver_pid_path(engine, network);
    let me = std::process::id() as i32;
    let start = berth_runtime::state::process_start_time(me).unwrap_or(0);
    let tmp = pidfile.with_extension("tmp");
    std::fs::write(&tmp, format!("{me} {start}\n"))
        .map_err(io_err("write", &tmp))
        .map_err(crate::EngineError::from)?;
    std::fs::rename(&tmp, &pidfile)
        .map_err(io_err("rename", &pidfile))
        .map_err(crate::EngineError::from)?;
    let stop = std::sync::atomic::AtomicBool::new(false);
    dns::serve(udp, tcp, &records_path(engine, network), &stop)
        .map_err(host_err(network, "serve DNS"))?;
    Ok(())
}

/// Inspect data of a container's networks (podman's `NetworkSettings`).
pub fn settings_json(engine: &Engine, id: &str) -> Value {
    let Ok((eps, ports)) = of_container(engine, id) else {
        return json!({});
    };
    let nets = list(engine).unwrap_or_default();
    let mut networks = serde_json::Map::new();
    for ep in &eps {
        let net = nets.iter().find(|n| n.name == ep.network);
        networks.insert(
            ep.network.clone(),
            json!({
                "NetworkID": net.map(|n| n.id.clone()).unwrap_or_default(),
                "IPAddress": ep.ip.to_string(),
                "IPPrefixLen": net.map(|n| n.subnet.prefix_len()).unwrap_or(0),
                "Gateway": net.map(|n| n.gateway.to_string()).unwrap_or_default(),
                "GlobalIPv6Address": ep.ip6.map(|i| i.to_string()).unwrap_or_default(),
                "IPv6Gateway": net.and_then(|n| n.gateway6).map(|g| g.to_string()).unwrap_or_default(),
                "MacAddress": ep.mac,
                "Aliases": ep.aliases,
                "InterfaceName": ep.ifname,
            }),
        );
    }
    let mut port_map = serde_json::Map::new();
    for p in &ports {
        let key = format!("{}/{}", p.container_port, p.proto.as_str());
        let entry = port_map.entry(key).or_insert_with(|| json!([]));
        if let Some(a) = entry.as_array_mut() {
            a.push(json!({
                "HostIp": p.host_ip.map(|i| i.to_string()).unwrap_or_default(),
                "HostPort": p.host_port.to_string(),
            }));
        }
    }
    let first = eps.first();
    let first_net = first.and_then(|e| nets.iter().find(|n| n.name == e.network));
    json!({
        "IPAddress": first.map(|e| e.ip.to_string()).unwrap_or_default(),
        "IPPrefixLen": first_net.map(|n| n.subnet.prefix_len()).unwrap_or(0),
        "GlobalIPv6Address": first.and_then(|e| e.ip6).map(|i| i.to_string()).unwrap_or_default(),
        "MacAddress": first.map(|e| e.mac.clone()).unwrap_or_default(),
        "Gateway": first.and_then(|e| nets.iter().find(|n| n.name == e.network)).map(|n| n.gateway.to_string()).unwrap_or_default(),
        "Networks": networks,
        "Ports": port_map,
        "SandboxKey": if eps.is_empty() { String::new() } else { netns_path(engine, id).display().to_string() },
    })
}

/// Network inspect JSON (podman/Docker-like).
pub fn inspect_json(engine: &Engine, net: &Network) -> Value {
    let eps = endpoints_on(engine, &net.name).unwrap_or_default();
    let db = engine.db().ok();
    let mut containers = serde_json::Map::new();
    for ep in eps {
        let name = db
            .as_ref()
            .and_then(|d| d.get(&ep.container).ok().flatten())
            .map(|r| r.name)
            .unwrap_or_default();
        containers.insert(
            ep.container.clone(),
            json!({"Name": name, "IPv4Address": ep.ip.to_string(), "IPv6Address": ep.ip6.map(|i| i.to_string()).unwrap_or_default(), "MacAddress": ep.mac}),
        );
    }
    let mut config =
        vec![json!({"Subnet": net.subnet.to_string(), "Gateway": net.gateway.to_string()})];
    if let (Some(s), Some(g)) = (net.subnet6, net.gateway6) {
        config.push(json!({"Subnet": s.to_string(), "Gateway": g.to_string()}));
    }
    json!({
        "Name": net.name,
        "Id": net.id,
        "Created": crate::rfc3339_ms(net.created),
        "Driver": "bridge",
        "Scope": "local",
        "Attachable": false,
        "Ingress": false,
        "ConfigOnly": false,
        "NetworkInterface": net.bridge,
        "EnableIPv6": net.subnet6.is_some(),
        "Internal": net.internal,
        "DNSEnabled": net.dns,
        "Options": net.mtu.map(|m| json!({"mtu": m.to_string()})).unwrap_or_else(|| json!({})),
        "IPAM": {"Driver": "default", "Options": {}, "Config": config},
        "Labels": net.labels,
        "Containers": containers,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn host_names_are_per_root_and_the_default_root_keeps_berth() {
        let default = Engine::new(
            Path::new(berth_image::store::DEFAULT_ROOT),
            Path::new("/run/berth"),
            "/berth",
        );
        assert_eq!(host_names(&default, &[]), ("berth".into(), "berth".into()));
        let a = Engine::new(Path::new("/nonexistent/a"), Path::new("/run/a"), "/berth");
        let b = Engine::new(Path::new("/nonexistent/b"), Path::new("/run/b"), "/berth");
        let (pa, ta) = host_names(&a, &[]);
        let (pb, tb) = host_names(&b, &[]);
        assert_ne!(pa, pb);
        assert_ne!(ta, tb);
        assert!(pa.starts_with("bh") && pa.len() == 8, "{pa}");
        // Room for the bridge number in an interface name (15 bytes).
        assert!(pa.len() + 7 <= 15);
        assert!(ta.starts_with("berth_"), "{ta}");
        assert_eq!(host_names(&a, &[]), (pa, ta), "stable");
    }
}
