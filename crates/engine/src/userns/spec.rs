//! A container's config.json in a user namespace: the namespace and its
//! maps, idmapped bind mounts and layers, and what needs adapting there.

use std::path::PathBuf;

use serde_json::{json, Value};

use super::*;
use crate::Engine;

fn oci_maps(maps: &[Map]) -> Value {
    Value::Array(
        maps.iter()
            .map(|m| json!({"containerID": m.container, "hostID": m.host, "size": m.size}))
            .collect(),
    )
}

/// The namespace entry of `kind`: None when the container stays in the
/// host's, Some(None) when it makes its own, Some(Some(path)) when it joins
/// one.
fn namespace<'a>(spec: &'a Value, kind: &str) -> Option<Option<&'a str>> {
    spec["linux"]["namespaces"]
        .as_array()?
        .iter()
        .find(|n| n["type"] == kind)
        .map(|n| n["path"].as_str())
}

fn is_bind(mt: &Value) -> bool {
    mt["type"] == "bind"
        || mt["options"]
            .as_array()
            .is_some_and(|o| o.iter().any(|x| x == "bind" || x == "rbind"))
}

/// The maps of a read-only bind mount: the container's, less container
/// root. Files of host root (uid or gid 0) show as nobody's there, so
/// container root reaches them only through their "other" permission bits:
/// a read-only bind of the host's /etc does not hand it /etc/shadow.
/// (Capabilities over a file need both its owner and group mapped.)
fn without_root(maps: &[Map]) -> Vec<Map> {
    maps.iter()
        .filter_map(|m| {
            if m.container != 0 {
                return Some(*m);
            }
            (m.size > 1).then_some(Map {
                container: 1,
                host: m.host + 1,
                size: m.size - 1,
            })
        })
        .collect()
}

/// The `net.` sysctls of a container in a user namespace with a network
/// namespace the engine made (`own_netns`, owned by the host's user
/// namespace, where the container cannot write them): the engine writes
/// them at start ([`write_net_sysctls`]) instead of the runtime.
pub fn engine_sysctls<'a>(
    m: Option<&Mapping>,
    spec: &Value,
    own_netns: &std::path::Path,
    sysctls: &'a [String],
) -> Vec<(&'a str, &'a str)> {
    if m.is_none() || namespace(spec, "network") != Some(own_netns.to_str()) {
        return Vec::new();
    }
    let mut out: Vec<(&str, &str)> = net_defaults(crate::rootless::is_rootless());
    for (k, v) in sysctls
        .iter()
        .filter_map(|s| s.split_once('='))
        .map(|(k, v)| (k.trim(), v))
        .filter(|(k, _)| k.starts_with("net."))
    {
        out.retain(|(d, _)| *d != k);
        out.push((k, v));
    }
    out
}

/// What container root could do in a network namespace of its own user
/// namespace, and cannot in the one the engine made (owned by the host's):
/// bind ports below 1024 and ping (ICMP sockets). Docker sets the same two
/// in every container; `--sysctl` overrides them.
const NET_DEFAULTS: [(&str, &str); 2] = [
    ("net.ipv4.ip_unprivileged_port_start", "0"),
    ("net.ipv4.ping_group_range", "0 2147483647"),
];

/// [`NET_DEFAULTS`], for a rootless engine with the ping range its own
/// user namespace allows.
pub fn net_defaults(rootless: bool) -> Vec<(&'static str, &'static str)> {
    let mut out = NET_DEFAULTS.to_vec();
    if rootless {
        // The engine's own user namespace maps only 65536 gids: a range
        // beyond them is refused (EINVAL).
        out.retain(|(k, _)| *k != "net.ipv4.ping_group_range");
        out.push(("net.ipv4.ping_group_range", "0 65535"));
    }
    out
}

/// Writes `sysctls` into the network namespace pinned at `netns`, from the
/// host's user namespace (config-linux.md "Sysctl": the runtime would,
/// were the namespace the container's own).
pub fn write_net_sysctls(
    id: &str,
    netns: &std::path::Path,
    sysctls: &[(&str, &str)],
) -> Result<()> {
    if sysctls.is_empty() {
        return Ok(());
    }
    let fail = |k: &str, e: String| UsernsError::Runtime {
        id: id.into(),
        message: format!("set sysctl {k} in the container's network namespace: {e}"),
    };
    berth_network::netns::run_in(netns, || {
        for (k, v) in sysctls {
            if k.is_empty() || k.contains('/') || k.contains("..") {
                return Err(fail(k, "not a sysctl name".into()));
            }
            let path = PathBuf::from("/proc/sys").join(k.replace('.', "/"));
            std::fs::write(&path, v).map_err(|e| fail(k, e.to_string()))?;
        }
        Ok(())
    })
    .map_err(|e| fail("*", e.to_string()))?
}

/// What the engine does for a container in a user namespace before the
/// runtime creates it: the `net.` sysctls of [`engine_sysctls`].
pub fn start_hook(
    engine: &Engine,
    id: &str,
    cfg: &crate::create::ContainerConfig,
) -> crate::Result<()> {
    let own = crate::networks::netns_path(engine, id);
    let sysctls = engine_sysctls(
        cfg.idmap.as_ref(),
        &cfg.generated.spec,
        &own,
        &cfg.options.extra.sysctls,
    );
    write_net_sysctls(id, &own, &sysctls)?;
    Ok(())
}

/// Puts the container in a new user namespace with `m`, idmaps its bind
/// mounts (volumes too) to the same mapping, and adapts or refuses what
/// cannot work there as it is:
/// - the host's pid namespace: the host's /proc bind-mounted (a procfs
///   mount needs a pid namespace the container's user namespace owns);
/// - `net.` sysctls of the network namespace the engine made (`own_netns`):
///   written by the engine at start, see [`engine_sysctls`];
/// - `--device` nodes: bind mounts of the
///   host's nodes (mknod is not allowed in a user namespace);
/// - read-only binds: idmapped without container root, see [`without_root`].
///
/// `join`: the pinned user namespace of the container's pod, which has
/// mapping `m`: the container joins it (by path, without maps of its own,
/// config-linux.md "User namespace mappings") and every idmapped bind
/// mount carries the maps itself.
pub fn apply(
    spec: &mut Value,
    m: &Mapping,
    own_netns: &std::path::Path,
    x: &crate::flags::ExtraOptions,
    join: Option<&std::path::Path>,
) -> Result<()> {
    // `--pid container:NAME` is joined at start (no path in the spec yet).
    let joins_pid = x
        .pid
        .as_deref()
        .is_some_and(|p| p.starts_with("container:"));
    let host_pid = match namespace(spec, "pid") {
        None => true,
        Some(None) if !joins_pid => false,
        _ => {
            return Err(UsernsError::NotInUserns {
                what: "sharing another container's pid namespace".into(),
            })
        }
    };
    let netns = namespace(spec, "network").map(|p| p.map(String::from));
    if let Some(sysctl) = spec["linux"]["sysctl"].as_object_mut() {
        match netns {
            // The runtime makes it, in the container's user namespace.
            Some(None) => {}
            Some(Some(p)) if Some(p.as_str()) == own_netns.to_str() => {
                sysctl.retain(|k, _| !k.starts_with("net."));
            }
            // The pod's, made in the pod's user namespace: the runtime
            // writes them from inside, as into a namespace of its own.
            Some(Some(_)) if join.is_some() => {}
            _ => {
                if let Some(k) = sysctl.keys().find(|k| k.starts_with("net.")) {
                    return Err(UsernsError::NotInUserns {
                        what: format!(
                            "--sysctl {k} (of a network namespace the container does not own)"
                        ),
                    });
                }
            }
        }
    }
    let mut device_binds = Vec::new();
    for d in &x.devices {
        let (found, _) = crate::devices::host_devices(d).map_err(|e| UsernsError::Invalid {
            flag: "--device",
            value: d.clone(),
            why: e.to_string(),
        })?;
        for (dev, dest) in found {
            device_binds.push(json!({
                "destination": dest, "type": "bind",
                "source": dev.path.display().to_string(),
                "options": ["bind", "nosuid", "noexec"],
            }));
        }
    }
    let linux = spec["linux"]
        .as_object_mut()
        .expect("generated spec has linux");
    if let Some(list) = linux.get_mut("devices").and_then(|d| d.as_array_mut()) {
        list.retain(|n| !device_binds.iter().any(|b| b["destination"] == n["path"]));
    }
    let ns = linux
        .entry("namespaces")
        .or_insert_with(|| json!([]))
        .as_array_mut()
        .expect("namespaces is an array");
    match join {
        Some(path) => {
            ns.retain(|n| n["type"] != "user");
            ns.push(json!({"type": "user", "path": path.display().to_string()}));
        }
        None => {
            if !ns.iter().any(|n| n["type"] == "user") {
                ns.push(json!({"type": "user"}));
            }
            linux.insert("uidMappings".into(), oci_maps(&m.uid));
            linux.insert("gidMappings".into(), oci_maps(&m.gid));
        }
    }
    let (ro_uid, ro_gid) = (without_root(&m.uid), without_root(&m.gid));
    if let Some(mounts) = spec["mounts"].as_array_mut() {
        if host_pid {
            // podman's way: the host's /proc, recursively.
            for mt in mounts.iter_mut().filter(|mt| mt["type"] == "proc") {
                *mt = json!({
                    "destination": mt["destination"], "type": "bind", "source": "/proc",
                    "options": ["rbind", "nosuid", "noexec", "nodev"],
                });
            }
        }
        // Before the init's mount, which stays last.
        let at = mounts
            .iter()
            .position(|mt| mt["destination"] == crate::init::INIT_DEST && mt["type"] == "bind")
            .unwrap_or(mounts.len());
        for (i, b) in device_binds.into_iter().enumerate() {
            mounts.insert(at + i, b);
        }
        for mt in mounts {
            if !is_bind(mt) {
                continue;
            }
            // Device nodes live on devtmpfs, procfs has no idmapped mounts
            // either; owners do not matter for access through a device node
            // container root opens with its capabilities.
            let src = mt["source"].as_str().unwrap_or("");
            if src == "/proc"
                || std::fs::metadata(src).is_ok_and(|md| {
                    use std::os::unix::fs::FileTypeExt;
                    md.file_type().is_char_device() || md.file_type().is_block_device()
                })
            {
                continue;
            }
            let ro = mt["options"]
                .as_array()
                .is_some_and(|o| o.iter().any(|x| x == "ro"));
            let obj = mt.as_object_mut().expect("mount is an object");
            if ro && !ro_uid.is_empty() && !ro_gid.is_empty() {
                obj.insert("uidMappings".into(), oci_maps(&ro_uid));
                obj.insert("gidMappings".into(), oci_maps(&ro_gid));
            } else if join.is_some() {
                obj.insert("uidMappings".into(), oci_maps(&m.uid));
                obj.insert("gidMappings".into(), oci_maps(&m.gid));
            }
            let opts = obj.entry("options").or_insert_with(|| json!([]));
            if let Some(o) = opts.as_array_mut() {
                if !o.iter().any(|x| x == "idmap" || x == "ridmap") {
                    o.push(json!("idmap"));
                }
            }
        }
    }
    Ok(())
}

/// A detached clone of the mount at `dir`, idmapped through `userns`
/// (`open_tree(OPEN_TREE_CLONE)` + `mount_setattr(MOUNT_ATTR_IDMAP)`).
pub fn idmapped_tree(
    dir: &std::path::Path,
    userns: std::os::fd::BorrowedFd<'_>,
) -> std::io::Result<std::os::fd::OwnedFd> {
    use rustix::mount::OpenTreeFlags;
    use std::os::fd::AsFd;
    let tree = rustix::mount::open_tree(
        rustix::fs::CWD,
        dir,
        OpenTreeFlags::OPEN_TREE_CLONE | OpenTreeFlags::OPEN_TREE_CLOEXEC,
    )?;
    berth_sys::mount_attr::mount_setattr(
        tree.as_fd(),
        false,
        berth_sys::mount_attr::MOUNT_ATTR_IDMAP,
        0,
        Some(userns),
    )?;
    Ok(tree)
}

/// Idmapped views of the image layers `lowers` (topmost first): the
/// detached trees (kept until the overlay is mounted) and each layer's path
/// through them. The layers of an image store share one parent dir on one
/// mount: one clone of that dir serves them all (one `open_tree` +
/// `mount_setattr` per container instead of one per layer); layers on
/// different mounts get a clone each.
pub fn idmapped_lowers(
    lowers: &[PathBuf],
    userns: std::os::fd::BorrowedFd<'_>,
) -> crate::Result<(Vec<std::os::fd::OwnedFd>, Vec<PathBuf>)> {
    let layer_err = |path: &std::path::Path| {
        let path = path.to_path_buf();
        move |source| -> crate::EngineError { UsernsError::Layer { path, source }.into() }
    };
    if let Some(parent) = shared_mount_parent(lowers) {
        let tree = idmapped_tree(&parent, userns).map_err(layer_err(&parent))?;
        let base = PathBuf::from(format!(
            "/proc/self/fd/{}",
            std::os::fd::AsRawFd::as_raw_fd(&tree)
        ));
        let paths = lowers
            .iter()
            .map(|l| base.join(l.strip_prefix(&parent).expect("a parent of every lower")))
            .collect();
        return Ok((vec![tree], paths));
    }
    let trees = lowers
        .iter()
        .map(|l| idmapped_tree(l, userns).map_err(layer_err(l)))
        .collect::<crate::Result<Vec<_>>>()?;
    let paths = trees
        .iter()
        .map(|t| format!("/proc/self/fd/{}", std::os::fd::AsRawFd::as_raw_fd(t)).into())
        .collect();
    Ok((trees, paths))
}

/// The deepest dir holding every one of `lowers` (absolute paths), when it
/// and they are on one mount (a clone of it, not recursive, shows them all).
fn shared_mount_parent(lowers: &[PathBuf]) -> Option<PathBuf> {
    let first = lowers.first()?;
    if lowers.len() == 1 || !first.is_absolute() {
        return None;
    }
    let mut parent = first.parent()?.to_path_buf();
    while !lowers.iter().all(|l| l.starts_with(&parent)) {
        parent = parent.parent()?.to_path_buf();
    }
    // Each layer is reached below the clone by its plain relative path
    // (the store's `<hex>` dirs): nothing that could step out of it.
    let plain = |l: &PathBuf| {
        l.strip_prefix(&parent).is_ok_and(|r| {
            r.components()
                .all(|c| matches!(c, std::path::Component::Normal(_)))
        })
    };
    if !lowers.iter().all(plain) {
        return None;
    }
    let mnt_id = |p: &std::path::Path| {
        rustix::fs::statx(
            rustix::fs::CWD,
            p,
            rustix::fs::AtFlags::empty(),
            rustix::fs::StatxFlags::MNT_ID,
        )
        .ok()
        .filter(|s| s.stx_mask & rustix::fs::StatxFlags::MNT_ID.bits() != 0)
        .map(|s| s.stx_mnt_id)
    };
    let id = mnt_id(&parent)?;
    lowers
        .iter()
        .all(|l| mnt_id(l) == Some(id))
        .then_some(parent)
}
