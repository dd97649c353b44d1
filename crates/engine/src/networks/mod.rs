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

mod connect;
mod container;
pub mod files;
mod inspect;
pub mod ipam;
pub mod port_proxy;
pub mod ports;
mod resolver;
pub mod rootless_netns;
pub mod store;
mod usermode;

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

pub use connect::*;
pub use container::*;
pub use inspect::*;
pub use ports::{PortMap, Proto};
pub use resolver::*;
pub use store::{Endpoint, Network};
pub use usermode::{helper_dir, helper_of, rootless_default};

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
    #[error("container {container}: user-mode network")]
    UserMode {
        container: String,
        #[source]
        source: Box<berth_network::usermode::UsermodeError>,
    },
    #[error("{why}")]
    Rootless {
        why: String,
        #[source]
        source: Box<berth_network::usermode::UsermodeError>,
    },
    #[error("container {container}: published ports: the port proxy {why}")]
    PortProxy { container: String, why: String },
    #[error(transparent)]
    Proxy(#[from] berth_network::port_proxy::ProxyError),
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

/// [`lock`] for changes to bridges, veths, the table and the resolvers,
/// with the calling thread in the namespace they live in: the host's as
/// root; rootless, the engine's rootless network namespace
/// ([`rootless_netns`], made on first need, torn down on drop when
/// nothing needs it any more).
pub(super) struct BridgeLock<'a> {
    engine: &'a Engine,
    entered: Option<rootless_netns::Entered>,
    _lock: Lock,
}

impl Drop for BridgeLock<'_> {
    fn drop(&mut self) {
        if let Some(e) = self.entered.take() {
            drop(e);
            rootless_netns::teardown_if_unused(self.engine);
        }
    }
}

fn bridge_lock(engine: &Engine) -> std::result::Result<BridgeLock<'_>, NetworkError> {
    let l = lock(engine)?;
    let entered = if crate::rootless::is_rootless() {
        let e = rootless_netns::enter(engine);
        if e.is_err() {
            rootless_netns::teardown_if_unused(engine);
        }
        Some(e?)
    } else {
        None
    };
    Ok(BridgeLock {
        engine,
        entered,
        _lock: l,
    })
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
    let _l = match bridge_lock(engine) {
        Ok(l) => l,
        Err(e) => {
            let mut db = engine.db()?;
            let _ = store::delete(store::conn(&mut db)?, &net.name);
            return Err(e.into());
        }
    };
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
    let mut routes = host_routes();
    if crate::rootless::is_rootless() {
        // The rootless namespace's own range (slirp4netns' tap0).
        let own = IpNet::V4(rootless_netns::range());
        if let Some(s) = v4.filter(|s| s.contains(&own.network()) || own.contains(&s.network())) {
            return Err(NetworkError::Invalid {
                what: "--subnet",
                value: s.to_string(),
                why: format!("{own} is the rootless network namespace's own range"),
            });
        }
        routes.push(own);
    }
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
    let _l = bridge_lock(engine)?;
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
    if crate::rootless::is_rootless() {
        // Published ports go through each container's port proxy
        // (`port_proxy`), straight to its address: nothing to DNAT.
        rules.clear();
    }
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
