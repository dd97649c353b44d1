//! A container joining a pod: the flags the pod decides, the pod's
//! namespaces and /etc files in the container's config.json, and the
//! pod's PID namespace at each start.

use serde_json::{json, Value};

use super::ns::{ensure, ns_path, oci_type};
use super::{files_dir, find, PodError, PodRow};
use crate::opts::RunOptions;
use crate::{Engine, Result};

/// At container create: resolves `--pod`, refuses the flags the pod
/// decides (podman's rule: a container joining a pod's network cannot set
/// its own), records the pod's ID and hostname in `o`.
pub fn join(engine: &Engine, o: &mut RunOptions) -> Result<Option<PodRow>> {
    let Some(reference) = o.pod.clone() else {
        return Ok(None);
    };
    let p = find(engine, &reference)?;
    let refuse = |flag: &'static str, given: bool, kind: &str| -> Result<()> {
        if given && p.shares(kind) {
            return Err(PodError::Invalid {
                flag,
                value: reference.clone(),
                why: format!(
                    "the container joins the {kind} namespace of pod {}; set it on the pod \
                     (published ports must be given to `pod create`)",
                    p.name
                ),
            }
            .into());
        }
        Ok(())
    };
    refuse("-p/--publish", !o.publish.is_empty(), "net")?;
    refuse("-P/--publish-all", o.extra.publish_all, "net")?;
    refuse("--network", o.network.is_some(), "net")?;
    refuse("--ip", o.ip.is_some(), "net")?;
    refuse("--network-alias", !o.network_aliases.is_empty(), "net")?;
    refuse(
        "--dns/--dns-search/--dns-option",
        !(o.dns.is_empty() && o.dns_search.is_empty() && o.dns_option.is_empty()),
        "net",
    )?;
    refuse("--add-host", !o.add_host.is_empty(), "net")?;
    refuse("--ipc", o.extra.ipc.is_some(), "ipc")?;
    refuse("--uts", o.extra.uts.is_some(), "uts")?;
    refuse("--pid", o.extra.pid.is_some(), "pid")?;
    refuse("--hostname", o.hostname.is_some(), "uts")?;
    o.pod = Some(p.id.clone());
    if p.shares("uts") {
        o.hostname = Some(p.config.hostname.clone());
    }
    Ok(Some(p))
}

/// Points a pod container's config.json at the pod's pinned namespaces.
/// With a shared UTS namespace the hostname is the pod's (already set in
/// the pinned namespace): the runtime must not set one (config.md
/// "hostname" needs a new UTS namespace).
pub fn join_spec(engine: &Engine, p: &PodRow, spec: &mut Value) {
    if let Some(ns) = spec["linux"]["namespaces"].as_array_mut() {
        // PID is joined at each start (see `join_pid_at_start`).
        for kind in p.config.share.iter().filter(|k| *k != "pid") {
            let t = oci_type(kind);
            ns.retain(|n| n["type"] != t);
            // config-linux.md "namespaces": a path joins an existing one.
            ns.push(json!({"type": t, "path": ns_path(engine, &p.id, kind)}));
        }
    }
    if p.shares("uts") {
        if let Some(o) = spec.as_object_mut() {
            o.remove("hostname");
        }
    }
}

/// Before the runtime creates container `id` of a pod sharing its PID
/// namespace: joins the namespace of the pod's holder (config-linux.md
/// "namespaces": a path joins an existing one), started first when none
/// runs.
pub fn join_pid_at_start(engine: &Engine, id: &str, o: &RunOptions) -> Result<()> {
    let Some(pod) = &o.pod else {
        return Ok(());
    };
    let p = find(engine, pod)?;
    let Some(holder) = super::ensure_holder(engine, &p)? else {
        return Ok(());
    };
    crate::flags::join_bundle_namespaces(engine, id, &[("pid", format!("/proc/{holder}/ns/pid"))])
}

/// The pod's /etc files, bind-mounted into a container joining its network.
pub fn etc_mounts(engine: &Engine, p: &PodRow) -> Vec<Value> {
    let dir = files_dir(engine, &p.id);
    ["hosts", "resolv.conf", "hostname"]
        .iter()
        .map(|f| {
            json!({
                "destination": format!("/etc/{f}"),
                "type": "bind",
                "source": dir.join(f),
                "options": ["rbind", "rprivate"],
            })
        })
        .collect()
}

/// At each start of a container: true when it is in a pod that shares
/// its network (the pod's namespaces are made again if a reboot took them).
pub fn provides_network(engine: &Engine, o: &RunOptions) -> Result<bool> {
    let Some(id) = &o.pod else {
        return Ok(false);
    };
    let p = find(engine, id)?;
    ensure(engine, &p)?;
    Ok(p.shares("net"))
}
