//! A pod's shared namespaces, pinned as files (no pause process): the
//! user namespace first (when the pod has one of its own), then network,
//! IPC and UTS made inside it; and their removal.

use std::fs::File;
use std::path::{Path, PathBuf};

use berth_network::netns;
use nix::mount::{mount, MsFlags};
use nix::sched::{unshare, CloneFlags};

use super::{files_dir, find, PodError, PodRow};
use crate::db::short;
use crate::opts::{NetworkMode, RunOptions};
use crate::{Engine, Result};

/// `<runroot>/pods/<id>`: the pinned IPC and UTS namespaces.
pub(super) fn run_dir(engine: &Engine, id: &str) -> PathBuf {
    engine.runroot.join("pods").join(id)
}

/// The pinned namespace file of `kind` (`net`, `ipc`, `uts`).
pub fn ns_path(engine: &Engine, id: &str, kind: &str) -> PathBuf {
    match kind {
        "net" => crate::networks::netns_path(engine, id),
        other => run_dir(engine, id).join(other),
    }
}

/// The OCI namespace type of a `--share` kind.
pub(super) fn oci_type(kind: &str) -> &'static str {
    match kind {
        "net" => "network",
        "ipc" => "ipc",
        "pid" => "pid",
        _ => "uts",
    }
}

fn pin_err(pod: &str, op: &'static str, path: &Path) -> impl FnOnce(std::io::Error) -> PodError {
    let pod = short(pod).to_string();
    let path = path.to_path_buf();
    move |source| PodError::Pin {
        pod,
        op,
        path,
        source,
    }
}

/// Pins new IPC and/or UTS namespaces (the UTS one named `hostname`) on a
/// short-lived thread that unshares them, bind-mounts
/// `/proc/thread-self/ns/KIND` onto the pin files, and ends. Nothing is
/// left behind on failure. (A PID namespace cannot be pinned so: the
/// kernel offers `pid_for_children` only once it has a PID 1.)
fn pin_namespaces(
    engine: &Engine,
    id: &str,
    kinds: &[&str],
    hostname: &str,
) -> std::result::Result<(), PodError> {
    if kinds.is_empty() {
        return Ok(());
    }
    let dir = run_dir(engine, id);
    std::fs::create_dir_all(&dir).map_err(pin_err(id, "create", &dir))?;
    let mut flags = CloneFlags::empty();
    for k in kinds {
        let p = ns_path(engine, id, k);
        let _ = netns::remove(&p);
        File::options()
            .write(true)
            .create_new(true)
            .open(&p)
            .map_err(pin_err(id, "create the pin file", &p))?;
        flags |= if *k == "ipc" {
            CloneFlags::CLONE_NEWIPC
        } else {
            CloneFlags::CLONE_NEWUTS
        };
    }
    let r = std::thread::scope(|s| {
        s.spawn(|| -> std::result::Result<(), PodError> {
            let errno = |op, p: &Path| {
                let f = pin_err(id, op, p);
                move |e: nix::Error| f(std::io::Error::from(e))
            };
            unshare(flags).map_err(errno("unshare the namespaces for", &dir))?;
            if kinds.contains(&"uts") {
                nix::unistd::sethostname(hostname)
                    .map_err(errno("set the hostname of", &ns_path(engine, id, "uts")))?;
            }
            for k in kinds {
                let p = ns_path(engine, id, k);
                mount(
                    Some(format!("/proc/thread-self/ns/{k}").as_str()),
                    &p,
                    None::<&str>,
                    MsFlags::MS_BIND,
                    None::<&str>,
                )
                .map_err(errno("bind-mount the namespace on", &p))?;
            }
            Ok(())
        })
        .join()
        .unwrap_or_else(|_| {
            Err(pin_err(id, "pin namespaces in", &dir)(
                std::io::Error::other("namespace thread panicked"),
            ))
        })
    });
    if r.is_err() {
        for k in kinds {
            let _ = netns::remove(&ns_path(engine, id, k));
        }
    }
    r
}

/// The pod's network as container options (for the network module).
pub(super) fn net_options(p: &PodRow) -> RunOptions {
    RunOptions {
        network: p.config.network.clone(),
        publish: p.config.publish.clone(),
        hostname: Some(p.config.hostname.clone()),
        ..Default::default()
    }
}

fn net_is_none(p: &PodRow) -> std::result::Result<bool, crate::opts::OptsError> {
    Ok(crate::opts::parse_network(p.config.network.as_deref())? == NetworkMode::None)
}

/// Makes the pod's namespaces that are missing (all of them at create;
/// after a reboot emptied the runroot, again at the next start).
pub fn ensure(engine: &Engine, p: &PodRow) -> Result<()> {
    // The user namespace first: the others are made inside it.
    let userns = userns_pin(engine, p);
    if let (Some(m), Some(user)) = (&p.config.idmap, &userns) {
        if !netns::is_pinned(user) {
            let dir = run_dir(engine, &p.id);
            std::fs::create_dir_all(&dir).map_err(pin_err(&p.id, "create", &dir))?;
            crate::userns::pin_pod_userns(&p.id, m, user)?;
        }
    }
    let net = ns_path(engine, &p.id, "net");
    if p.shares("net") && !netns::is_pinned(&net) {
        crate::networks::setup_pod(engine, &p.id, net_is_none(p)?, userns.as_deref())?;
        if p.config.idmap.is_some() {
            // As for a container of its own user namespace (see
            // `userns::engine_sysctls`): low ports and ping for every id.
            let defaults = crate::userns::net_defaults(false);
            crate::userns::write_net_sysctls(&p.id, &net, &defaults)?;
        }
    }
    let missing: Vec<&str> = ["ipc", "uts"]
        .into_iter()
        .filter(|k| p.shares(k) && !netns::is_pinned(&ns_path(engine, &p.id, k)))
        .collect();
    match &userns {
        Some(user) => {
            let kinds: Vec<(&str, PathBuf)> = missing
                .iter()
                .map(|k| (*k, ns_path(engine, &p.id, k)))
                .collect();
            crate::userns::pin_in_userns(&p.id, user, &kinds, Some(&p.config.hostname))?;
        }
        None => pin_namespaces(engine, &p.id, &missing, &p.config.hostname)?,
    }
    super::pidns::ensure_holder(engine, p)?;
    Ok(())
}

/// The pinned user namespace of pod `p`, if it has one of its own.
pub fn userns_pin(engine: &Engine, p: &PodRow) -> Option<PathBuf> {
    p.config
        .idmap
        .as_ref()
        .map(|_| ns_path(engine, &p.id, "user"))
}

/// The pinned user namespace of the pod a container joins (`o.pod`), if
/// that pod has one of its own.
pub fn userns_pin_for(engine: &Engine, o: &RunOptions) -> Result<Option<PathBuf>> {
    let Some(pod) = &o.pod else {
        return Ok(None);
    };
    Ok(userns_pin(engine, &find(engine, pod)?))
}

/// Removes every trace of the pod but its row and containers: network
/// namespace, endpoint, ports and rules, IPC/UTS pins, its dirs.
/// Idempotent.
pub(super) fn remove_resources(engine: &Engine, id: &str) -> Result<()> {
    let mut first: Option<crate::EngineError> = None;
    super::pidns::stop_holder(engine, id);
    if let Err(e) = crate::networks::release(engine, id) {
        first.get_or_insert(e);
    }
    for k in ["ipc", "uts", "user"] {
        let p = ns_path(engine, id, k);
        if let Err(e) = netns::remove(&p) {
            first.get_or_insert(crate::EngineError::Io {
                op: "remove the namespace pin",
                path: p,
                source: std::io::Error::other(e.to_string()),
            });
        }
    }
    if let Err(e) = crate::userns::release(engine, id) {
        first.get_or_insert(e);
    }
    for d in [run_dir(engine, id), files_dir(engine, id)] {
        match std::fs::remove_dir_all(&d) {
            Ok(()) => {}
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => {
                first.get_or_insert(crate::EngineError::Io {
                    op: "remove",
                    path: d,
                    source: e,
                });
            }
        }
    }
    first.map_or(Ok(()), Err)
}
