//! `--network slirp4netns[:OPTIONS]` and `--network pasta[:OPTIONS]`:
//! the container's pinned namespace connected by a helper process
//! (berth-network's `usermode`), started at start, its pid recorded under
//! `<runroot>/usermode/<short id>/helper.json`, ended at stop, rm and
//! crash cleanup. No bridge, no nftables: nothing here needs root beyond
//! owning the namespace, so an engine without root can make it its
//! default ([`rootless_default`]).

use super::*;
use berth_network::usermode::{self as um, Forward, Helper, Mode};

/// The user-mode network an engine without root uses when `--network` is
/// not given: slirp4netns if installed, else pasta (`None`: neither).
/// The `--network` spelling of it is [`Mode::name`].
pub fn rootless_default() -> Option<Mode> {
    um::default_mode()
}

/// `<runroot>/usermode/<short id>`: the helper's record, API socket and
/// log (short, so the socket path stays within `sun_path`).
pub fn helper_dir(engine: &Engine, id: &str) -> PathBuf {
    engine.runroot.join("usermode").join(crate::db::short(id))
}

fn record_path(engine: &Engine, id: &str) -> PathBuf {
    helper_dir(engine, id).join("helper.json")
}

/// The recorded helper of container `id`, if one was started.
pub fn helper_of(engine: &Engine, id: &str) -> Option<Helper> {
    let text = std::fs::read_to_string(record_path(engine, id)).ok()?;
    serde_json::from_str(&text).ok()
}

fn usermode_err(id: &str) -> impl FnOnce(um::UsermodeError) -> NetworkError + '_ {
    move |e| NetworkError::UserMode {
        container: crate::db::short(id).to_string(),
        source: Box::new(e),
    }
}

/// At start: the pinned namespace with `lo` up, the helper for it with
/// the container's published ports, the ports marked active. Nothing is
/// left behind on failure.
pub fn setup(engine: &Engine, id: &str, mode: &Mode) -> Result<()> {
    let _l = lock(engine)?;
    // A restart (or a crash) may have left the previous one.
    super::port_proxy::stop(engine, id);
    stop(engine, id);
    let r = start(engine, id, mode);
    if r.is_err() {
        let _ = unplumb(engine, id);
    }
    r
}

fn start(engine: &Engine, id: &str, mode: &Mode) -> Result<()> {
    let dir = helper_dir(engine, id);
    // The dir first: its presence tells teardown this is ours.
    std::fs::create_dir_all(&dir)
        .map_err(io_err("create", &dir))
        .map_err(crate::EngineError::from)?;
    let pin = netns_path(engine, id);
    let nsdir = pin.parent().expect("netns dir");
    std::fs::create_dir_all(nsdir)
        .map_err(io_err("create", nsdir))
        .map_err(crate::EngineError::from)?;
    netns::remove(&pin).map_err(host_err("*", "remove a stale namespace pin"))?;
    netns::create(&pin).map_err(host_err(
        "*",
        format!("create the network namespace of {}", crate::db::short(id)),
    ))?;
    link::loopback_up(&pin).map_err(host_err(mode.name(), "bring up lo"))?;
    let ports = {
        let mut db = engine.db()?;
        store::ports_of(store::conn(&mut db)?, id)?
    };
    check_ports(engine, id, &ports)?;
    // slirp4netns: berth's port proxy unless `port_handler=slirp4netns`
    // (podman's default, rootlessport); pasta forwards them itself.
    let proxy_to = match mode {
        Mode::Slirp4netns(o) if !o.slirp_port_handler => Some(IpAddr::V4(o.guest())),
        _ => None,
    };
    let forwards: Vec<Forward> = if proxy_to.is_some() {
        Vec::new()
    } else {
        super::port_proxy::forwards(&ports)
    };
    let helper = um::start(&um::Spec {
        mode,
        netns: &pin,
        userns: None,
        dir: &dir,
        ports: &forwards,
    })
    .map_err(usermode_err(id))?;
    let rec = record_path(engine, id);
    let tmp = rec.with_extension("tmp");
    let text = serde_json::to_string(&helper).expect("helper serializes");
    let written = std::fs::write(&tmp, text).and_then(|()| std::fs::rename(&tmp, &rec));
    if let Err(e) = written {
        helper.stop();
        return Err(crate::EngineError::from(io_err("write", &rec)(e)));
    }
    if let Some(target) = proxy_to {
        // Recorded above: a failure here is undone by `unplumb`.
        super::port_proxy::start(engine, id, &pin, target, &ports)?;
    }
    let mut db = engine.db()?;
    store::set_ports_active(store::conn(&mut db)?, id, true)?;
    Ok(())
}

/// Ends the recorded helper, if any.
fn stop(engine: &Engine, id: &str) {
    if let Some(h) = helper_of(engine, id) {
        h.stop();
    }
    let _ = std::fs::remove_file(record_path(engine, id));
}

/// After the container's process is gone (or a failed start): the
/// helper ended, ports inactive, the pin and the helper's dir removed.
/// `false` when the container has no user-mode network plumbed.
pub fn teardown(engine: &Engine, id: &str) -> Result<bool> {
    if !helper_dir(engine, id).exists() {
        return Ok(false);
    }
    let _l = lock(engine)?;
    unplumb(engine, id)?;
    Ok(true)
}

fn unplumb(engine: &Engine, id: &str) -> Result<()> {
    super::port_proxy::stop(engine, id);
    stop(engine, id);
    let mut first: Option<crate::EngineError> = None;
    match engine.db() {
        Ok(mut db) => {
            if let Err(e) = store::conn(&mut db).and_then(|c| store::set_ports_active(c, id, false))
            {
                first.get_or_insert(e.into());
            }
        }
        Err(e) => {
            first.get_or_insert(e);
        }
    }
    if let Err(e) = netns::remove(&netns_path(engine, id)) {
        first.get_or_insert(host_err("*", "remove the namespace pin")(e).into());
    }
    let dir = helper_dir(engine, id);
    if let Err(e) = std::fs::remove_dir_all(&dir) {
        if e.kind() != std::io::ErrorKind::NotFound {
            first.get_or_insert(io_err("remove", &dir)(e).into());
        }
    }
    first.map_or(Ok(()), Err)
}
