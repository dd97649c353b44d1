//! Inspect data of containers' networks and of networks.

use super::*;

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
        "SandboxKey": if eps.is_empty() && helper_of(engine, id).is_none() { String::new() } else { netns_path(engine, id).display().to_string() },
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
