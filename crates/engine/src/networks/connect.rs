//! `berth network connect` and `disconnect` of a container.

use super::*;

/// `berth network connect`: records the endpoint and, if the container
/// runs, plugs it in now.
pub fn connect(
    engine: &Engine,
    network: &str,
    container: &str,
    ip: Option<&str>,
    aliases: &[String],
) -> Result<Endpoint> {
    let (ep, id) = connect_locked(engine, network, container, ip, aliases)?;
    port_proxy::follow_first_network(engine, &id)?;
    Ok(ep)
}

fn connect_locked(
    engine: &Engine,
    network: &str,
    container: &str,
    ip: Option<&str>,
    aliases: &[String],
) -> Result<(Endpoint, String)> {
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
    let _l = bridge_lock(engine)?;
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
    Ok((ep, row.id))
}

/// `berth network disconnect`.
pub fn disconnect(engine: &Engine, network: &str, container: &str) -> Result<()> {
    let id = disconnect_locked(engine, network, container)?;
    port_proxy::follow_first_network(engine, &id)
}

fn disconnect_locked(engine: &Engine, network: &str, container: &str) -> Result<String> {
    let row = crate::lifecycle::find(engine, container)?;
    let net = find(engine, network)?;
    let _l = bridge_lock(engine)?;
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
    Ok(row.id)
}

/// The networks of container `id` and `net`: whose DNS records change
/// when the container joins or leaves `net`.
pub(super) fn networks_of(
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
