//! The per-network DNS resolver: its records and its process.

use super::*;

/// Rewrites a DNS network's records from its running endpoints (name,
/// aliases, short ID) and starts its resolver; with none running the
/// records file goes and the resolver exits. Leaves out container `gone`
/// (being torn down). Caller holds the lock.
/// A container on several DNS networks asks its first network's
/// resolver, so each network's records also carry, scoped to the
/// addresses of such containers, the names of their other networks.
pub(super) fn refresh_records_without(
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
        upstreams: dns::upstreams_from_host(&if crate::rootless::is_rootless() {
            rootless_netns::upstream_resolv()
        } else {
            host_resolv()
        }),
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
pub(super) fn linked_dns_networks(
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
pub(super) fn refresh_linked(
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

pub(super) fn resolver_alive(engine: &Engine, network: &str) -> Option<i32> {
    let text = std::fs::read_to_string(resolver_pid_path(engine, network)).ok()?;
    let mut it = text.split_whitespace();
    let pid: i32 = it.next()?.parse().ok()?;
    let start: u64 = it.next()?.parse().ok()?;
    berth_runtime::state::init_alive(pid, start).then_some(pid)
}

/// Starts the network's resolver unless it runs; waits until it serves.
pub(super) fn ensure_resolver(
    engine: &Engine,
    net: &Network,
) -> std::result::Result<(), NetworkError> {
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
pub(super) fn stop_resolver(engine: &Engine, network: &str) {
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
