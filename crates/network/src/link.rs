//! Links, addresses and routes through rtnetlink, as a synchronous API:
//! bridges, veth pairs between a bridge and a container namespace,
//! loopback, and `/proc/sys/net` settings.
//!
//! Every function works in the network namespace of the calling thread,
//! except those that take a namespace path (they enter it with
//! [`crate::netns::run_in`]). Each call opens one netlink socket on a
//! current-thread tokio runtime built for that call and dropped before it
//! returns: no thread outlives a call and nothing is spawned on a pool.

use std::fs::File;
use std::future::Future;
use std::io::Write;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::os::fd::AsRawFd;
use std::path::{Path, PathBuf};

use futures_util::future::{select, Either};
use futures_util::TryStreamExt;
use ipnet::IpNet;
use netlink_packet_route::address::{AddressAttribute, AddressFlags, AddressHeaderFlags};
use netlink_packet_route::link::{
    InfoData, InfoKind, InfoVeth, LinkAttribute, LinkInfo, LinkMessage,
};
use rtnetlink::{
    Handle, LinkBridge, LinkBridgePort, LinkMessageBuilder, LinkUnspec, LinkVeth,
    RouteMessageBuilder,
};

use crate::error::{NetError, Result};
use crate::netns;

/// Longest interface name the kernel accepts (`IFNAMSIZ` - 1).
pub const IFNAME_MAX: usize = 15;

/// A bridge to create on the host side of a network.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BridgeSpec {
    /// Interface name (at most [`IFNAME_MAX`] bytes).
    pub name: String,
    /// Gateway addresses with their prefix, IPv4 and/or IPv6
    /// (e.g. `10.88.0.1/16`).
    pub addrs: Vec<IpNet>,
    /// MTU of the bridge; `None` keeps the kernel's (or the current) value.
    pub mtu: Option<u32>,
}

/// One container's connection to a bridge: a veth pair with one end on the
/// bridge and the other inside the container's network namespace.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Endpoint {
    /// Host-side bridge to attach to (must exist, see [`ensure_bridge`]).
    pub bridge: String,
    /// Host-side veth name (at most [`IFNAME_MAX`] bytes, e.g. `"vb"` + hex).
    pub host_ifname: String,
    /// Container network namespace (a pin file or `/proc/PID/ns/net`).
    pub netns: PathBuf,
    /// Interface name inside the container, e.g. `"eth0"`.
    pub ifname: String,
    /// MAC address of the container interface; `None` lets the kernel pick.
    pub mac: Option<[u8; 6]>,
    /// Container addresses with their prefix.
    pub addrs: Vec<IpNet>,
    /// IPv4 default route; `None` for internal networks.
    pub gateway4: Option<Ipv4Addr>,
    /// IPv6 default route; `None` for internal networks.
    pub gateway6: Option<Ipv6Addr>,
    /// MTU of both ends of the pair; `None` keeps the kernel's default.
    pub mtu: Option<u32>,
}

/// Checks that `name` can be an interface name: 1 to [`IFNAME_MAX`]
/// bytes, no `/`, `:` or whitespace, not `.` or `..` (the kernel's
/// `dev_valid_name` rules, plus `:` which is the alias separator).
pub fn validate_ifname(name: &str) -> Result<()> {
    let bad = |reason| {
        Err(NetError::InvalidIfName {
            name: name.to_string(),
            reason,
        })
    };
    if name.is_empty() {
        return bad("it is empty");
    }
    if name.len() > IFNAME_MAX {
        return bad("it is longer than 15 bytes");
    }
    if name == "." || name == ".." {
        return bad("it is . or ..");
    }
    if name
        .chars()
        .any(|c| c == '/' || c == ':' || c.is_whitespace() || c.is_control())
    {
        return bad("it contains '/', ':', whitespace or a control character");
    }
    Ok(())
}

/// Creates the bridge if missing (idempotent), sets its MTU, adds the
/// addresses it lacks (addresses it already has, and extra ones, are kept)
/// and brings it up. Fails if a link of that name exists and is not a
/// bridge. IPv6 addresses skip duplicate address detection so the gateway
/// is usable at once.
pub fn ensure_bridge(b: &BridgeSpec) -> Result<()> {
    validate_ifname(&b.name)?;
    with_netlink("set up bridge", &b.name, |h| async move {
        let link = match link_by_name(&h, &b.name).await? {
            Some(link) => link,
            None => {
                // An address of its own from the start (as Docker's
                // bridge driver sets one, `02:42` and random bytes there:
                // docs/cli.md): a bridge without one takes the
                // lowest of its ports' addresses and changes it when a
                // port with a lower one joins, and every container that
                // had the old one for its gateway then sends its routed
                // traffic to a port's address, which the bridge forwards
                // unrouted (out of the network, not NATed).
                let mut msg = LinkBridge::new(&b.name).address(bridge_mac(&b.addrs).to_vec());
                if let Some(mtu) = b.mtu {
                    msg = msg.mtu(mtu);
                }
                match h.link().add(msg.build()).execute().await {
                    Ok(()) => tracing::debug!(bridge = %b.name, "created bridge"),
                    // Created meanwhile by someone else: go on with it.
                    Err(e) if errno(&e) == Some(libc::EEXIST) => {}
                    Err(e) => return Err(nl("create bridge", &b.name, e)),
                }
                link_by_name(&h, &b.name)
                    .await?
                    .ok_or_else(|| NetError::LinkMissing {
                        name: b.name.clone(),
                        hint: "it vanished right after being created; retry",
                    })?
            }
        };
        match link_kind(&link) {
            Some(InfoKind::Bridge) => {}
            kind => {
                return Err(NetError::NotABridge {
                    name: b.name.clone(),
                    kind: kind.map_or_else(|| "device".to_string(), |k| k.to_string()),
                })
            }
        }
        let index = link.header.index;
        if let Some(mtu) = b.mtu {
            if link_mtu(&link) != Some(mtu) {
                h.link()
                    .change(LinkUnspec::new_with_index(index).mtu(mtu).build())
                    .execute()
                    .await
                    .map_err(|e| nl("set the MTU of bridge", &b.name, e))?;
            }
        }
        let have = addresses(&h, index, &b.name).await?;
        for addr in b.addrs.iter().filter(|a| !have.contains(a)) {
            add_address(&h, index, *addr, &b.name).await?;
        }
        set_up(&h, index, &b.name).await
    })
}

/// The address a bridge is created with: `02:42` and its first IPv4
/// gateway address, as containers' addresses are made from theirs (no
/// container has the gateway's), else random; locally administered,
/// unicast.
fn bridge_mac(addrs: &[IpNet]) -> [u8; 6] {
    let mut mac = [0x02, 0x42, 0, 0, 0, 0];
    match addrs.iter().find_map(|a| match a.addr() {
        IpAddr::V4(v4) => Some(v4),
        IpAddr::V6(_) => None,
    }) {
        Some(v4) => mac[2..].copy_from_slice(&v4.octets()),
        None => {
            let mut r = [0u8; 6];
            // /dev/urandom never blocks once the system booted; on a read
            // failure the time's nanoseconds still spread bridges apart.
            if File::open("/dev/urandom")
                .and_then(|mut f| std::io::Read::read_exact(&mut f, &mut r))
                .is_err()
            {
                let n = std::time::SystemTime::now()
                    .duration_since(std::time::UNIX_EPOCH)
                    .map(|d| d.subsec_nanos())
                    .unwrap_or(0);
                r[2..].copy_from_slice(&n.to_be_bytes());
            }
            mac[1..].copy_from_slice(&r[1..]);
        }
    }
    mac
}

/// Deletes a link by name; `Ok` if it does not exist. Deleting one end of
/// a veth pair deletes both.
pub fn delete_link(name: &str) -> Result<()> {
    validate_ifname(name)?;
    with_netlink("delete link", name, |h| async move {
        match link_by_name(&h, name).await? {
            Some(link) => delete_index(&h, link.header.index, name).await,
            None => Ok(()),
        }
    })
}

/// Whether a link of that name exists.
pub fn link_exists(name: &str) -> Result<bool> {
    validate_ifname(name)?;
    with_netlink("look up link", name, |h| async move {
        Ok(link_by_name(&h, name).await?.is_some())
    })
}

/// Names of the links whose name starts with `prefix` (for crash
/// reconciliation: finding berth's bridges and veths left behind). An empty
/// prefix lists every link.
pub fn links_with_prefix(prefix: &str) -> Result<Vec<String>> {
    with_netlink("list links with prefix", prefix, |h| async move {
        let mut links = h.link().get().execute();
        let mut names = Vec::new();
        while let Some(link) = links
            .try_next()
            .await
            .map_err(|e| nl("list links with prefix", prefix, e))?
        {
            if let Some(name) = link_name(&link) {
                if name.starts_with(prefix) {
                    names.push(name.to_string());
                }
            }
        }
        Ok(names)
    })
}

/// Connects a container to a bridge.
///
/// Creates the veth pair with its peer born directly inside `ep.netns`
/// under its final name `ep.ifname`, with the MAC and MTU set (this is
/// what "move the peer and rename it" does, in one atomic step: no
/// temporary name in the host namespace can clash). The host end is
/// attached to the bridge, gets hairpin mode (so a container reaches its
/// own published port through the host) and is brought up. Inside the
/// namespace the addresses are added (IPv6 without duplicate address
/// detection), the interface and `lo` are brought up and default routes
/// via the gateways are added.
///
/// On any failure the host veth is deleted if this call created it (its
/// peer goes with it) and the error is returned.
pub fn attach(ep: &Endpoint) -> Result<()> {
    validate_ifname(&ep.bridge)?;
    validate_ifname(&ep.host_ifname)?;
    validate_ifname(&ep.ifname)?;
    let ns = File::open(&ep.netns).map_err(|source| NetError::Netns {
        op: "open",
        path: ep.netns.clone(),
        source,
    })?;
    with_netlink("attach veth", &ep.host_ifname, |h| async move {
        attach_host_side(&h, ep, &ns).await
    })?;
    let inside = netns::run_in(&ep.netns, || configure_container_side(ep)).and_then(|inner| inner);
    if let Err(e) = inside {
        if let Err(cleanup) = delete_link(&ep.host_ifname) {
            tracing::warn!(
                veth = %ep.host_ifname,
                error = %cleanup,
                "could not remove the veth of a failed attach"
            );
        }
        return Err(e);
    }
    tracing::debug!(veth = %ep.host_ifname, bridge = %ep.bridge, netns = %ep.netns.display(), "attached");
    Ok(())
}

/// Deletes interface `ifname` inside the namespace at `netns` (its host
/// peer goes with it). `Ok` if the interface does not exist; an error if
/// the namespace cannot be entered.
pub fn detach(netns: &Path, ifname: &str) -> Result<()> {
    netns::run_in(netns, || delete_link(ifname))?
}

/// Brings `lo` up inside the namespace at `netns` (for containers with no
/// network but a fresh namespace).
pub fn loopback_up(netns: &Path) -> Result<()> {
    netns::run_in(netns, || {
        with_netlink("bring up", "lo", |h| async move {
            let lo = require_link(&h, "lo").await?;
            set_up(&h, lo.header.index, "lo").await
        })
    })?
}

/// Checks a key for [`set_net_sysctl`]: relative to `/proc/sys/net`,
/// components separated by `/`, only `[A-Za-z0-9_./-]`, no empty, `.` or
/// `..` component. `.` is allowed inside a component because interface
/// names (`conf/<ifname>/...`) may contain it.
pub fn validate_sysctl_key(key: &str) -> Result<()> {
    let bad = |reason| {
        Err(NetError::InvalidSysctl {
            key: key.to_string(),
            reason,
        })
    };
    if key.is_empty() {
        return bad("it is empty");
    }
    if !key
        .chars()
        .all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '.' | '/' | '-'))
    {
        return bad("only letters, digits, '_', '.', '/' and '-' are allowed");
    }
    if key
        .split('/')
        .any(|c| c.is_empty() || c == "." || c == "..")
    {
        return bad("a path component is empty, '.' or '..'");
    }
    Ok(())
}

/// Writes `value` to `/proc/sys/net/<key>` (e.g. `"ipv4/ip_forward"` =
/// `"1"`, `"ipv4/conf/<bridge>/route_localnet"` = `"1"`) in the network
/// namespace of the calling thread.
///
/// `/proc/sys/net` resolves against the namespace of the task that opens
/// the file (the thread, not the thread-group leader, unlike the
/// `/proc/net` symlink), so writing from inside [`netns::run_in`] changes
/// only that namespace; the integration tests check this.
pub fn set_net_sysctl(key: &str, value: &str) -> Result<()> {
    validate_sysctl_key(key)?;
    let path = Path::new("/proc/sys/net").join(key);
    File::options()
        .write(true)
        .open(&path)
        .and_then(|mut f| f.write_all(value.as_bytes()))
        .map_err(|source| NetError::Sysctl {
            key: key.to_string(),
            value: value.to_string(),
            source,
        })
}

// ---- netlink plumbing ----

/// Runs `f` with a netlink handle opened in the calling thread's network
/// namespace, on a current-thread runtime that lives only for this call.
/// The connection is driven on this thread alongside `f` (no spawn).
fn with_netlink<T, F, Fut>(op: &'static str, object: &str, f: F) -> Result<T>
where
    F: FnOnce(Handle) -> Fut,
    Fut: Future<Output = Result<T>>,
{
    let socket_err = |source| NetError::NetlinkSocket {
        op,
        object: object.to_string(),
        source,
    };
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_io()
        .build()
        .map_err(socket_err)?;
    rt.block_on(async {
        let (conn, handle, _) = rtnetlink::new_connection().map_err(socket_err)?;
        let work = std::pin::pin!(f(handle));
        match select(work, conn).await {
            Either::Left((result, _)) => result,
            Either::Right(((), _)) => Err(socket_err(std::io::Error::other(
                "the netlink connection closed before the request finished",
            ))),
        }
    })
}

fn nl(op: &'static str, object: &str, source: rtnetlink::Error) -> NetError {
    NetError::Netlink {
        op,
        object: object.to_string(),
        source,
    }
}

/// The errno of a netlink error reply, if it is one.
fn errno(e: &rtnetlink::Error) -> Option<i32> {
    match e {
        rtnetlink::Error::NetlinkError(m) => m.code.map(|c| c.get().abs()),
        _ => None,
    }
}

async fn link_by_name(h: &Handle, name: &str) -> Result<Option<LinkMessage>> {
    let mut reply = h.link().get().match_name(name).execute();
    match reply.try_next().await {
        Ok(link) => Ok(link),
        Err(e) if errno(&e) == Some(libc::ENODEV) => Ok(None),
        Err(e) => Err(nl("look up link", name, e)),
    }
}

async fn require_link(h: &Handle, name: &str) -> Result<LinkMessage> {
    link_by_name(h, name)
        .await?
        .ok_or_else(|| NetError::LinkMissing {
            name: name.to_string(),
            hint: "it should exist at this point; was it removed concurrently?",
        })
}

fn link_name(link: &LinkMessage) -> Option<&str> {
    link.attributes.iter().find_map(|a| match a {
        LinkAttribute::IfName(n) => Some(n.as_str()),
        _ => None,
    })
}

fn link_mtu(link: &LinkMessage) -> Option<u32> {
    link.attributes.iter().find_map(|a| match a {
        LinkAttribute::Mtu(m) => Some(*m),
        _ => None,
    })
}

fn link_kind(link: &LinkMessage) -> Option<&InfoKind> {
    link.attributes.iter().find_map(|a| match a {
        LinkAttribute::LinkInfo(infos) => infos.iter().find_map(|i| match i {
            LinkInfo::Kind(k) => Some(k),
            _ => None,
        }),
        _ => None,
    })
}

async fn delete_index(h: &Handle, index: u32, name: &str) -> Result<()> {
    match h.link().del(index).execute().await {
        Ok(()) => Ok(()),
        // Gone meanwhile (e.g. its veth peer was deleted): that is the goal.
        Err(e) if errno(&e) == Some(libc::ENODEV) => Ok(()),
        Err(e) => Err(nl("delete link", name, e)),
    }
}

async fn set_up(h: &Handle, index: u32, name: &str) -> Result<()> {
    h.link()
        .change(LinkUnspec::new_with_index(index).up().build())
        .execute()
        .await
        .map_err(|e| nl("bring up link", name, e))
}

/// The addresses on link `index`, with their prefix.
async fn addresses(h: &Handle, index: u32, name: &str) -> Result<Vec<IpNet>> {
    let mut reply = h.address().get().set_link_index_filter(index).execute();
    let mut out = Vec::new();
    while let Some(msg) = reply
        .try_next()
        .await
        .map_err(|e| nl("list the addresses of", name, e))?
    {
        if msg.header.index != index {
            continue;
        }
        // IFA_LOCAL is the address itself on IPv4 (IFA_ADDRESS is the peer
        // on point-to-point links); IPv6 only sends IFA_ADDRESS.
        let local = msg.attributes.iter().find_map(|a| match a {
            AddressAttribute::Local(ip) => Some(*ip),
            _ => None,
        });
        let address = msg.attributes.iter().find_map(|a| match a {
            AddressAttribute::Address(ip) => Some(*ip),
            _ => None,
        });
        if let Some(ip) = local.or(address) {
            if let Ok(net) = IpNet::new(ip, msg.header.prefix_len) {
                out.push(net);
            }
        }
    }
    Ok(out)
}

async fn add_address(h: &Handle, index: u32, addr: IpNet, name: &str) -> Result<()> {
    let mut req = h.address().add(index, addr.addr(), addr.prefix_len());
    if addr.addr().is_ipv6() {
        let msg = req.message_mut();
        msg.header.flags |= AddressHeaderFlags::Nodad;
        msg.attributes
            .push(AddressAttribute::Flags(AddressFlags::Nodad));
    }
    match req.execute().await {
        Ok(()) => Ok(()),
        Err(e) if errno(&e) == Some(libc::EEXIST) => Ok(()),
        Err(e) => Err(NetError::Netlink {
            op: "add an address to",
            object: format!("{name} ({addr})"),
            source: e,
        }),
    }
}

/// Host half of [`attach`]: creates the pair (peer inside `ns`), enslaves
/// the host end to the bridge with hairpin on, brings it up. Deletes the
/// pair again if a step after its creation fails.
async fn attach_host_side(h: &Handle, ep: &Endpoint, ns: &File) -> Result<()> {
    let bridge = link_by_name(h, &ep.bridge)
        .await?
        .ok_or_else(|| NetError::LinkMissing {
            name: ep.bridge.clone(),
            hint: "create the network's bridge before attaching containers to it",
        })?;
    if link_kind(&bridge) != Some(&InfoKind::Bridge) {
        return Err(NetError::NotABridge {
            name: ep.bridge.clone(),
            kind: link_kind(&bridge).map_or_else(|| "device".to_string(), |k| k.to_string()),
        });
    }
    let mut peer = LinkMessageBuilder::<LinkUnspec>::new()
        .name(ep.ifname.clone())
        .setns_by_fd(ns.as_raw_fd());
    let mut host = LinkVeth::new(&ep.host_ifname, &ep.ifname).controller(bridge.header.index);
    if let Some(mtu) = ep.mtu {
        peer = peer.mtu(mtu);
        host = host.mtu(mtu);
    }
    if let Some(mac) = ep.mac {
        peer = peer.address(mac.to_vec());
    }
    let host = host.set_info_data(InfoData::Veth(InfoVeth::Peer(peer.build())));
    h.link()
        .add(host.build())
        .execute()
        .await
        .map_err(|e| NetError::Netlink {
            op: "create veth pair",
            object: format!(
                "{} (peer {} in {})",
                ep.host_ifname,
                ep.ifname,
                ep.netns.display()
            ),
            source: e,
        })?;
    let veth = require_link(h, &ep.host_ifname).await?;
    let index = veth.header.index;
    let finish = async {
        h.link()
            .set_port(LinkBridgePort::new(index).hairpin(true).build())
            .execute()
            .await
            .map_err(|e| nl("turn on hairpin mode on", &ep.host_ifname, e))?;
        set_up(h, index, &ep.host_ifname).await
    };
    if let Err(e) = finish.await {
        if let Err(cleanup) = delete_index(h, index, &ep.host_ifname).await {
            tracing::warn!(veth = %ep.host_ifname, error = %cleanup, "could not remove the veth of a failed attach");
        }
        return Err(e);
    }
    Ok(())
}

/// Container half of [`attach`], run inside the container's namespace.
fn configure_container_side(ep: &Endpoint) -> Result<()> {
    with_netlink(
        "configure container interface",
        &ep.ifname,
        |h| async move {
            let index = require_link(&h, &ep.ifname).await?.header.index;
            for addr in &ep.addrs {
                add_address(&h, index, *addr, &ep.ifname).await?;
            }
            set_up(&h, index, &ep.ifname).await?;
            let lo = require_link(&h, "lo").await?;
            set_up(&h, lo.header.index, "lo").await?;
            if let Some(gw) = ep.gateway4 {
                let route = RouteMessageBuilder::<Ipv4Addr>::new()
                    .gateway(gw)
                    .output_interface(index)
                    .build();
                add_default_route(&h, route, IpAddr::V4(gw), &ep.ifname).await?;
            }
            if let Some(gw) = ep.gateway6 {
                let route = RouteMessageBuilder::<Ipv6Addr>::new()
                    .gateway(gw)
                    .output_interface(index)
                    .build();
                add_default_route(&h, route, IpAddr::V6(gw), &ep.ifname).await?;
            }
            Ok(())
        },
    )
}

async fn add_default_route(
    h: &Handle,
    route: netlink_packet_route::route::RouteMessage,
    gateway: IpAddr,
    ifname: &str,
) -> Result<()> {
    h.route()
        .add(route)
        .execute()
        .await
        .map_err(|e| NetError::Netlink {
            op: "add default route",
            object: format!("via {gateway} dev {ifname}"),
            source: e,
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ifnames() {
        for ok in ["eth0", "vb0123456789abc", "br-a.b_c", "lo"] {
            assert!(validate_ifname(ok).is_ok(), "{ok}");
        }
        for bad in [
            "",
            "vb0123456789abcd",
            ".",
            "..",
            "a/b",
            "a b",
            "a:1",
            "a\n",
        ] {
            assert!(validate_ifname(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn sysctl_keys() {
        for ok in [
            "ipv4/ip_forward",
            "ipv4/conf/br-1.2/route_localnet",
            "ipv6/conf/all/disable_ipv6",
        ] {
            assert!(validate_sysctl_key(ok).is_ok(), "{ok}");
        }
        for bad in [
            "",
            "../kernel/core_pattern",
            "ipv4/../../kernel/x",
            "/ipv4/ip_forward",
            "ipv4//ip_forward",
            "ipv4/./ip_forward",
            "ipv4/ip_forward/",
            "ipv4/ip forward",
            "ipv4/ip_forward\n",
            "ipv4/conf/*/x",
        ] {
            assert!(validate_sysctl_key(bad).is_err(), "{bad:?}");
        }
    }
}
