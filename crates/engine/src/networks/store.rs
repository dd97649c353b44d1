//! Networks, endpoints and published ports in the engine database.
//!
//! `networks`: one row per network (its bridge, subnets, options).
//! `endpoints`: a container's attachment to a network with its addresses,
//! allocated when the container is created or connected and kept across
//! restarts until it is removed or disconnected (UNIQUE (network, ip):
//! two containers can never hold one address, even if racing).
//! `ports`: published ports; `active` while the container runs (the
//! firewall is built from the active ones).

use std::collections::{BTreeMap, BTreeSet};
use std::net::IpAddr;

use ipnet::IpNet;
use rusqlite::{params, Connection, OptionalExtension, TransactionBehavior};
use serde::Serialize;

use super::ipam;
use super::ports::{PortMap, Proto};
use super::NetworkError;

const SCHEMA: &str = "
CREATE TABLE IF NOT EXISTS networks (
    name TEXT PRIMARY KEY NOT NULL,
    id TEXT NOT NULL UNIQUE,
    bridge TEXT NOT NULL UNIQUE,
    subnet TEXT NOT NULL,
    gateway TEXT NOT NULL,
    subnet6 TEXT,
    gateway6 TEXT,
    internal INTEGER NOT NULL,
    dns INTEGER NOT NULL,
    labels TEXT NOT NULL,
    created INTEGER NOT NULL,
    mtu INTEGER
);
CREATE TABLE IF NOT EXISTS endpoints (
    network TEXT NOT NULL,
    container TEXT NOT NULL,
    ip TEXT NOT NULL,
    ip6 TEXT,
    mac TEXT NOT NULL,
    aliases TEXT NOT NULL,
    ifname TEXT NOT NULL,
    PRIMARY KEY (network, container),
    UNIQUE (network, ip)
);
CREATE TABLE IF NOT EXISTS ports (
    container TEXT NOT NULL,
    proto TEXT NOT NULL,
    host_ip TEXT NOT NULL,
    host_port INTEGER NOT NULL,
    container_port INTEGER NOT NULL,
    active INTEGER NOT NULL DEFAULT 0,
    PRIMARY KEY (container, proto, host_ip, host_port)
);";

/// One network.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Network {
    pub name: String,
    pub id: String,
    pub bridge: String,
    pub subnet: IpNet,
    pub gateway: IpAddr,
    pub subnet6: Option<IpNet>,
    pub gateway6: Option<IpAddr>,
    pub internal: bool,
    /// Name resolution between its containers (user-defined networks).
    pub dns: bool,
    pub labels: BTreeMap<String, String>,
    /// Unix time in milliseconds.
    pub created: i64,
    /// MTU of the bridge and the containers' interfaces (kernel default
    /// when unset).
    pub mtu: Option<u32>,
}

/// A container's attachment to a network.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Endpoint {
    pub network: String,
    pub container: String,
    pub ip: IpAddr,
    pub ip6: Option<IpAddr>,
    pub mac: String,
    pub aliases: Vec<String>,
    /// Interface name inside the container (`eth0`, `eth1`, ...).
    pub ifname: String,
}

fn q(op: impl Into<String>) -> impl FnOnce(rusqlite::Error) -> NetworkError {
    let op = op.into();
    move |source| NetworkError::Query { op, source }
}

/// The tables, created on first use.
pub fn conn(db: &mut crate::Db) -> Result<&mut Connection, NetworkError> {
    let c = db.conn_mut();
    c.execute_batch(SCHEMA)
        .map_err(q("create the network tables"))?;
    // Databases made before networks had an MTU.
    let has_mtu = c
        .query_row(
            "SELECT COUNT(*) FROM pragma_table_info('networks') WHERE name = 'mtu'",
            [],
            |r| r.get::<_, i64>(0),
        )
        .map_err(q("read the networks schema"))?
        > 0;
    if !has_mtu {
        c.execute_batch("ALTER TABLE networks ADD COLUMN mtu INTEGER")
            .map_err(q("add the mtu column"))?;
    }
    Ok(c)
}

fn parse<T: std::str::FromStr>(what: &'static str, s: &str) -> Result<T, NetworkError> {
    s.parse().map_err(|_| NetworkError::Corrupt {
        what,
        value: s.into(),
    })
}

const NET_COLS: &str =
    "name, id, bridge, subnet, gateway, subnet6, gateway6, internal, dns, labels, created, mtu";

type RawNet = (
    String,
    String,
    String,
    String,
    String,
    Option<String>,
    Option<String>,
    i64,
    i64,
    String,
    i64,
    Option<i64>,
);

fn raw_net(r: &rusqlite::Row<'_>) -> rusqlite::Result<RawNet> {
    Ok((
        r.get(0)?,
        r.get(1)?,
        r.get(2)?,
        r.get(3)?,
        r.get(4)?,
        r.get(5)?,
        r.get(6)?,
        r.get(7)?,
        r.get(8)?,
        r.get(9)?,
        r.get(10)?,
        r.get(11)?,
    ))
}

fn finish_net(r: RawNet) -> Result<Network, NetworkError> {
    Ok(Network {
        name: r.0,
        id: r.1,
        bridge: r.2,
        subnet: parse("subnet", &r.3)?,
        gateway: parse("gateway", &r.4)?,
        subnet6: r.5.as_deref().map(|s| parse("subnet6", s)).transpose()?,
        gateway6: r.6.as_deref().map(|s| parse("gateway6", s)).transpose()?,
        internal: r.7 != 0,
        dns: r.8 != 0,
        labels: serde_json::from_str(&r.9).map_err(|_| NetworkError::Corrupt {
            what: "labels",
            value: r.9.clone(),
        })?,
        created: r.10,
        mtu: r.11.and_then(|m| u32::try_from(m).ok()),
    })
}

/// All networks, by name.
pub fn list(c: &Connection) -> Result<Vec<Network>, NetworkError> {
    let mut st = c
        .prepare(&format!("SELECT {NET_COLS} FROM networks ORDER BY name"))
        .map_err(q("list networks"))?;
    let raws = st
        .query_map([], raw_net)
        .map_err(q("list networks"))?
        .collect::<rusqlite::Result<Vec<_>>>()
        .map_err(q("list networks"))?;
    raws.into_iter().map(finish_net).collect()
}

/// A network by name, or by a unique prefix of its ID.
pub fn get(c: &Connection, reference: &str) -> Result<Option<Network>, NetworkError> {
    let raw = c
        .query_row(
            &format!("SELECT {NET_COLS} FROM networks WHERE name = ?1"),
            [reference],
            raw_net,
        )
        .optional()
        .map_err(q("look up a network"))?;
    if let Some(r) = raw {
        return finish_net(r).map(Some);
    }
    if reference.len() >= 3 && reference.chars().all(|c| c.is_ascii_hexdigit()) {
        let mut st = c
            .prepare(&format!(
                "SELECT {NET_COLS} FROM networks WHERE id LIKE ?1 || '%'"
            ))
            .map_err(q("look up a network"))?;
        let found = st
            .query_map([reference], raw_net)
            .map_err(q("look up a network"))?
            .collect::<rusqlite::Result<Vec<_>>>()
            .map_err(q("look up a network"))?;
        if found.len() == 1 {
            return finish_net(found.into_iter().next().expect("one")).map(Some);
        }
    }
    Ok(None)
}

/// What a new network needs besides what [`insert`] decides.
pub struct NewNetwork<'a> {
    pub name: &'a str,
    pub id: &'a str,
    pub subnet: Option<IpNet>,
    pub gateway: Option<IpAddr>,
    pub ipv6: bool,
    pub subnet6: Option<IpNet>,
    pub gateway6: Option<IpAddr>,
    pub internal: bool,
    pub dns: bool,
    pub labels: &'a BTreeMap<String, String>,
    /// Subnets routed on the host (to avoid when choosing one).
    pub host_routes: &'a [IpNet],
    /// The default network (gets a /16).
    pub default: bool,
    pub mtu: Option<u32>,
    /// This root's bridge names start with it (see `host_names`).
    pub bridge_prefix: &'a str,
}

/// Inserts a network in one write transaction: picks a free bridge name
/// (`berth0`, `berth1`, ...) and, unless given, a subnet that overlaps no
/// other network's nor a host route. A given subnet overlapping another
/// network's is refused.
pub fn insert(c: &mut Connection, n: &NewNetwork<'_>) -> Result<Network, NetworkError> {
    let tx = c
        .transaction_with_behavior(TransactionBehavior::Immediate)
        .map_err(q("begin network create"))?;
    let existing = list(&tx)?;
    if existing.iter().any(|e| e.name == n.name) {
        return Err(NetworkError::Exists(n.name.into()));
    }
    let mut taken: Vec<IpNet> = existing
        .iter()
        .flat_map(|e| std::iter::once(e.subnet).chain(e.subnet6))
        .collect();
    let subnet = match n.subnet {
        Some(s) => {
            if let Some(other) = existing
                .iter()
                .find(|e| e.subnet.contains(&s.network()) || s.contains(&e.subnet.network()))
            {
                return Err(NetworkError::Overlap {
                    subnet: s.to_string(),
                    other: other.name.clone(),
                });
            }
            s
        }
        None => {
            taken.extend_from_slice(n.host_routes);
            ipam::pick_subnet(n.default, &taken).ok_or(NetworkError::NoSubnet)?
        }
    };
    let gateway = match n.gateway {
        Some(g) if !ipam::is_host_of(subnet, g) => {
            return Err(NetworkError::Invalid {
                what: "--gateway",
                value: g.to_string(),
                why: format!("not a host address of {subnet}"),
            })
        }
        Some(g) => g,
        None => ipam::first_host(subnet),
    };
    let subnet6 = match (n.ipv6, n.subnet6) {
        (_, Some(s)) => Some(s),
        (true, None) => Some(ipam::ula_subnet(n.id)),
        (false, None) => None,
    };
    let gateway6 = match (subnet6, n.gateway6) {
        (Some(s), Some(g)) if !ipam::is_host_of(s, g) => {
            return Err(NetworkError::Invalid {
                what: "--gateway",
                value: g.to_string(),
                why: format!("not a host address of {s}"),
            })
        }
        (Some(_), Some(g)) => Some(g),
        (Some(s), None) => Some(ipam::first_host(s)),
        (None, _) => None,
    };
    let bridges: BTreeSet<String> = existing.iter().map(|e| e.bridge.clone()).collect();
    let bridge = (0u32..)
        .map(|i| format!("{}{i}", n.bridge_prefix))
        .find(|b| !bridges.contains(b))
        .expect("a free bridge name");
    let net = Network {
        name: n.name.into(),
        id: n.id.into(),
        bridge,
        subnet,
        gateway,
        subnet6,
        gateway6,
        internal: n.internal,
        dns: n.dns,
        labels: n.labels.clone(),
        created: crate::now_ms(),
        mtu: n.mtu,
    };
    tx.execute(
        &format!(
            "INSERT INTO networks ({NET_COLS}) VALUES (?1,?2,?3,?4,?5,?6,?7,?8,?9,?10,?11,?12)"
        ),
        params![
            net.name,
            net.id,
            net.bridge,
            net.subnet.to_string(),
            net.gateway.to_string(),
            net.subnet6.map(|s| s.to_string()),
            net.gateway6.map(|g| g.to_string()),
            net.internal as i64,
            net.dns as i64,
            serde_json::to_string(&net.labels).expect("labels serialize"),
            net.created,
            net.mtu,
        ],
    )
    .map_err(q("insert network"))?;
    tx.commit().map_err(q("commit network create"))?;
    Ok(net)
}

/// Deletes a network row (after its bridge is gone). Refused while any
/// container has an endpoint on it.
pub fn delete(c: &mut Connection, name: &str) -> Result<(), NetworkError> {
    let tx = c
        .transaction_with_behavior(TransactionBehavior::Immediate)
        .map_err(q("begin network rm"))?;
    let users = users_of(&tx, name)?;
    if !users.is_empty() {
        return Err(NetworkError::InUse {
            name: name.into(),
            containers: users,
        });
    }
    tx.execute("DELETE FROM networks WHERE name = ?1", [name])
        .map_err(q("delete network"))?;
    tx.commit().map_err(q("commit network rm"))
}

/// Names (or IDs when the row is gone) of the containers attached.
pub fn users_of(c: &Connection, network: &str) -> Result<Vec<String>, NetworkError> {
    let mut st = c
        .prepare(
            "SELECT COALESCE(c.name, e.container) FROM endpoints e \
             LEFT JOIN containers c ON c.id = e.container WHERE e.network = ?1 ORDER BY 1",
        )
        .map_err(q("list network users"))?;
    let v = st
        .query_map([network], |r| r.get::<_, String>(0))
        .map_err(q("list network users"))?
        .collect::<rusqlite::Result<Vec<_>>>()
        .map_err(q("list network users"))?;
    Ok(v)
}

const EP_COLS: &str = "network, container, ip, ip6, mac, aliases, ifname";

type RawEp = (
    String,
    String,
    String,
    Option<String>,
    String,
    String,
    String,
);

fn raw_ep(r: &rusqlite::Row<'_>) -> rusqlite::Result<RawEp> {
    Ok((
        r.get(0)?,
        r.get(1)?,
        r.get(2)?,
        r.get(3)?,
        r.get(4)?,
        r.get(5)?,
        r.get(6)?,
    ))
}

fn finish_ep(r: RawEp) -> Result<Endpoint, NetworkError> {
    Ok(Endpoint {
        network: r.0,
        container: r.1,
        ip: parse("endpoint ip", &r.2)?,
        ip6: r
            .3
            .as_deref()
            .map(|s| parse("endpoint ip6", s))
            .transpose()?,
        mac: r.4,
        aliases: serde_json::from_str(&r.5).map_err(|_| NetworkError::Corrupt {
            what: "aliases",
            value: r.5.clone(),
        })?,
        ifname: r.6,
    })
}

fn endpoints_where(c: &Connection, cond: &str, arg: &str) -> Result<Vec<Endpoint>, NetworkError> {
    let mut st = c
        .prepare(&format!(
            "SELECT {EP_COLS} FROM endpoints WHERE {cond} ORDER BY ifname, network, container"
        ))
        .map_err(q("list endpoints"))?;
    let raws = st
        .query_map([arg], raw_ep)
        .map_err(q("list endpoints"))?
        .collect::<rusqlite::Result<Vec<_>>>()
        .map_err(q("list endpoints"))?;
    raws.into_iter().map(finish_ep).collect()
}

/// A container's endpoints, in interface order.
pub fn endpoints_of(c: &Connection, container: &str) -> Result<Vec<Endpoint>, NetworkError> {
    endpoints_where(c, "container = ?1", container)
}

/// Every endpoint of every container.
pub fn all_endpoints(c: &Connection) -> Result<Vec<Endpoint>, NetworkError> {
    endpoints_where(c, "?1 = ?1", "")
}

/// A network's endpoints.
pub fn endpoints_on(c: &Connection, network: &str) -> Result<Vec<Endpoint>, NetworkError> {
    endpoints_where(c, "network = ?1", network)
}

/// What to attach: a network, an address asked for, aliases.
pub struct Attach<'a> {
    pub network: &'a Network,
    pub container: &'a str,
    pub ip: Option<IpAddr>,
    pub aliases: &'a [String],
}

/// Allocates addresses and records the endpoint in one write transaction
/// (the lowest free address, or the one asked for if free). The next
/// free interface name `ethN` of the container is used.
pub fn attach(c: &mut Connection, a: &Attach<'_>) -> Result<Endpoint, NetworkError> {
    let tx = c
        .transaction_with_behavior(TransactionBehavior::Immediate)
        .map_err(q("begin address allocation"))?;
    let net = a.network;
    let exists: Option<String> = tx
        .query_row(
            "SELECT container FROM endpoints WHERE network = ?1 AND container = ?2",
            [&net.name, a.container],
            |r| r.get(0),
        )
        .optional()
        .map_err(q("check endpoint"))?;
    if exists.is_some() {
        return Err(NetworkError::AlreadyConnected {
            network: net.name.clone(),
            container: a.container.into(),
        });
    }
    let on_net = endpoints_where(&tx, "network = ?1", &net.name)?;
    let used: BTreeSet<IpAddr> = on_net
        .iter()
        .flat_map(|e| std::iter::once(e.ip).chain(e.ip6))
        .collect();
    let ip = match a.ip {
        Some(ip) => {
            if !ipam::is_host_of(net.subnet, ip) || ip == net.gateway {
                return Err(NetworkError::Invalid {
                    what: "--ip",
                    value: ip.to_string(),
                    why: format!(
                        "not a free host address of network {} ({}, gateway {})",
                        net.name, net.subnet, net.gateway
                    ),
                });
            }
            if let Some(holder) = on_net.iter().find(|e| e.ip == ip) {
                return Err(NetworkError::AddressInUse {
                    ip,
                    network: net.name.clone(),
                    holder: holder.container.clone(),
                });
            }
            ip
        }
        None => ipam::next_free(net.subnet, net.gateway, &used).ok_or_else(|| {
            NetworkError::Exhausted {
                network: net.name.clone(),
                subnet: net.subnet.to_string(),
            }
        })?,
    };
    let ip6 = match (net.subnet6, net.gateway6) {
        (Some(s), Some(g)) => {
            Some(
                ipam::next_free(s, g, &used).ok_or_else(|| NetworkError::Exhausted {
                    network: net.name.clone(),
                    subnet: s.to_string(),
                })?,
            )
        }
        _ => None,
    };
    let mine = endpoints_where(&tx, "container = ?1", a.container)?;
    let names: BTreeSet<&str> = mine.iter().map(|e| e.ifname.as_str()).collect();
    let ifname = (0u32..)
        .map(|i| format!("eth{i}"))
        .find(|n| !names.contains(n.as_str()))
        .expect("a free interface name");
    let mac = match ip {
        IpAddr::V4(v4) => ipam::mac_text(ipam::mac_for(v4)),
        IpAddr::V6(_) => ipam::mac_text(ipam::mac_for(std::net::Ipv4Addr::from(rand_u32(
            a.container,
        )))),
    };
    let ep = Endpoint {
        network: net.name.clone(),
        container: a.container.into(),
        ip,
        ip6,
        mac,
        aliases: a.aliases.to_vec(),
        ifname,
    };
    tx.execute(
        &format!("INSERT INTO endpoints ({EP_COLS}) VALUES (?1,?2,?3,?4,?5,?6,?7)"),
        params![
            ep.network,
            ep.container,
            ep.ip.to_string(),
            ep.ip6.map(|i| i.to_string()),
            ep.mac,
            serde_json::to_string(&ep.aliases).expect("aliases serialize"),
            ep.ifname,
        ],
    )
    .map_err(q("record endpoint"))?;
    tx.commit().map_err(q("commit address allocation"))?;
    Ok(ep)
}

fn rand_u32(seed: &str) -> u32 {
    u32::from_str_radix(&seed.chars().take(8).collect::<String>(), 16).unwrap_or(0x0a000002)
}

/// Containers with endpoints or ports but no container row.
pub fn unowned(c: &Connection) -> Result<Vec<String>, NetworkError> {
    let mut st = c
        .prepare(
            "SELECT container FROM endpoints WHERE container NOT IN (SELECT id FROM containers) \
             UNION SELECT container FROM ports WHERE container NOT IN (SELECT id FROM containers)",
        )
        .map_err(q("list unowned endpoints"))?;
    let v = st
        .query_map([], |r| r.get::<_, String>(0))
        .map_err(q("list unowned endpoints"))?
        .collect::<rusqlite::Result<Vec<_>>>()
        .map_err(q("list unowned endpoints"))?;
    Ok(v)
}

/// Releases a container's endpoint on one network (or all with `None`).
pub fn detach(c: &Connection, container: &str, network: Option<&str>) -> Result<(), NetworkError> {
    match network {
        Some(n) => c.execute(
            "DELETE FROM endpoints WHERE container = ?1 AND network = ?2",
            [container, n],
        ),
        None => c.execute("DELETE FROM endpoints WHERE container = ?1", [container]),
    }
    .map_err(q("release endpoint"))?;
    Ok(())
}

/// Records a container's published ports (inactive).
pub fn set_ports(
    c: &mut Connection,
    container: &str,
    ports: &[PortMap],
) -> Result<(), NetworkError> {
    let tx = c.transaction().map_err(q("begin record ports"))?;
    tx.execute("DELETE FROM ports WHERE container = ?1", [container])
        .map_err(q("record ports"))?;
    for p in ports {
        tx.execute(
            "INSERT OR REPLACE INTO ports (container, proto, host_ip, host_port, container_port, active) \
             VALUES (?1, ?2, ?3, ?4, ?5, 0)",
            params![
                container,
                p.proto.as_str(),
                p.host_ip.map(|i| i.to_string()).unwrap_or_default(),
                p.host_port,
                p.container_port
            ],
        )
        .map_err(q("record ports"))?;
    }
    tx.commit().map_err(q("commit record ports"))
}

fn ports_where(
    c: &Connection,
    cond: &str,
    args: &[&str],
) -> Result<Vec<(String, PortMap)>, NetworkError> {
    let mut st = c
        .prepare(&format!(
            "SELECT container, proto, host_ip, host_port, container_port FROM ports WHERE {cond} \
             ORDER BY container, container_port, proto, host_port"
        ))
        .map_err(q("list ports"))?;
    let raws = st
        .query_map(rusqlite::params_from_iter(args), |r| {
            Ok((
                r.get::<_, String>(0)?,
                r.get::<_, String>(1)?,
                r.get::<_, String>(2)?,
                r.get::<_, i64>(3)?,
                r.get::<_, i64>(4)?,
            ))
        })
        .map_err(q("list ports"))?
        .collect::<rusqlite::Result<Vec<_>>>()
        .map_err(q("list ports"))?;
    raws.into_iter()
        .map(|(c, proto, hip, hp, cp)| {
            Ok((
                c,
                PortMap {
                    proto: if proto == "udp" {
                        Proto::Udp
                    } else {
                        Proto::Tcp
                    },
                    host_ip: if hip.is_empty() {
                        None
                    } else {
                        Some(parse("port host ip", &hip)?)
                    },
                    host_port: hp as u16,
                    container_port: cp as u16,
                },
            ))
        })
        .collect()
}

/// A container's published ports.
pub fn ports_of(c: &Connection, container: &str) -> Result<Vec<PortMap>, NetworkError> {
    Ok(ports_where(c, "container = ?1", &[container])?
        .into_iter()
        .map(|(_, p)| p)
        .collect())
}

/// Every active published port, with its container.
pub fn active_ports(c: &Connection) -> Result<Vec<(String, PortMap)>, NetworkError> {
    ports_where(c, "active = 1", &[])
}

/// Every port any container has published (to choose free ones).
pub fn all_ports(c: &Connection) -> Result<Vec<(String, PortMap)>, NetworkError> {
    ports_where(c, "1", &[])
}

/// Turns a container's published ports on or off.
pub fn set_ports_active(c: &Connection, container: &str, on: bool) -> Result<(), NetworkError> {
    c.execute(
        "UPDATE ports SET active = ?2 WHERE container = ?1",
        params![container, on as i64],
    )
    .map_err(q("switch ports"))?;
    Ok(())
}

/// Forgets a container's ports.
pub fn drop_ports(c: &Connection, container: &str) -> Result<(), NetworkError> {
    c.execute("DELETE FROM ports WHERE container = ?1", [container])
        .map_err(q("forget ports"))?;
    Ok(())
}
