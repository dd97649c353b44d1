//! `inspect` JSON (podman's shape, the fields berth knows) and `ps` rows.

use serde_json::{json, Value};

use crate::create::ContainerConfig;
use crate::db::{short, ContainerRow, Status};
use crate::Engine;

fn time(ms: Option<i64>) -> String {
    ms.map(crate::rfc3339_ms)
        .unwrap_or_else(|| "0001-01-01T00:00:00Z".into())
}

/// Docker's shape for volume mounts: `Type` "volume" and the volume's `Name`.
fn mark_volumes(engine: &Engine, id: &str, mut mounts: Vec<Value>) -> Vec<Value> {
    let uses = crate::volume_store::uses_of(engine, id).unwrap_or_default();
    for m in &mut mounts {
        if let Some(u) = uses.iter().find(|u| m["Destination"] == u.target.as_str()) {
            m["Type"] = json!("volume");
            m["Name"] = json!(u.volume);
            m["Driver"] = json!("local");
        }
    }
    mounts
}

/// The inspect document of a container.
pub fn inspect(engine: &Engine, row: &ContainerRow) -> Value {
    let cfg = ContainerConfig::of(row).ok();
    let cfg_idmap = cfg.as_ref().and_then(|c| c.idmap.clone());
    let paused = crate::manage::is_paused(engine, row);
    let (o, g) = match &cfg {
        Some(c) => (Some(&c.options), Some(&c.generated)),
        None => (None, None),
    };
    let mounts: Vec<Value> = g
        .and_then(|g| g.spec["mounts"].as_array())
        .map(|ms| {
            ms.iter()
                .filter(|m| m["type"] == "bind" || o.is_some_and(|o| is_user_tmpfs(o, m)))
                // The `--init` binary is the engine's, not a user mount.
                .filter(|m| {
                    !(o.is_some_and(|o| o.init) && m["destination"] == crate::init::INIT_DEST)
                })
                // Nor are /etc/hosts, resolv.conf and hostname, made in the
                // container's dir (Docker does not list them either).
                .filter(|m| {
                    !m["source"]
                        .as_str()
                        .is_some_and(|s| std::path::Path::new(s).starts_with(engine.dir(&row.id)))
                })
                .map(|m| {
                    let opts = m["options"].as_array().cloned().unwrap_or_default();
                    json!({
                        "Type": m["type"],
                        "Source": m["source"],
                        "Destination": m["destination"],
                        "Options": opts,
                        "RW": !opts.iter().any(|x| x == "ro"),
                    })
                })
                .collect()
        })
        .unwrap_or_default();
    let mounts = mark_volumes(engine, &row.id, mounts);
    let command: Vec<String> = g
        .map(|g| g.entrypoint.iter().chain(g.cmd.iter()).cloned().collect())
        .unwrap_or_default();
    // A pod's container has the pod's network (endpoint keyed by the pod).
    let pod = o
        .and_then(|o| o.pod.as_deref())
        .and_then(|p| crate::pods::find(engine, p).ok());
    let net_owner = match &pod {
        Some(p) if p.shares("net") => p.id.as_str(),
        _ => row.id.as_str(),
    };
    let network_settings = crate::networks::settings_json(engine, net_owner);
    let volumes: serde_json::Map<String, Value> = mounts
        .iter()
        .filter(|m| m["Type"] == "volume")
        .filter_map(|m| Some((m["Destination"].as_str()?.to_string(), json!({}))))
        .collect();
    let mut doc = json!({
        "Id": row.id,
        // Docker's leading slash (podman prints the bare name).
        "Name": format!("/{}", row.name),
        "Created": crate::rfc3339_ms(row.created),
        // The user's command (Docker's shape), not the `--init` wrapper.
        "Path": command.first().cloned().unwrap_or_default(),
        "Args": command.get(1..).unwrap_or_default(),
        "Image": row.image_id,
        "ImageName": row.image,
        "State": {
            "Status": if paused { "paused" } else { row.status.as_str() },
            "Running": row.status == Status::Running,
            "Paused": paused,
            "Pid": row.pid.unwrap_or(0),
            "ConmonPid": row.monitor_pid.unwrap_or(0),
            "ExitCode": row.exit_code.unwrap_or(if row.status == Status::Exited { -1 } else { 0 }),
            "StartedAt": time(row.started),
            "FinishedAt": time(row.finished),
            "RestartCount": row.restart_count,
            "OOMKilled": false,
            "Dead": false,
            "Restarting": false,
            "Error": crate::lifecycle::start_error(engine, &row.id),
            "Health": crate::health::inspect_json(engine, row),
        },
        "RestartCount": row.restart_count,
        "Driver": "overlay",
        "Platform": "linux",
        "Config": {
            "Hostname": g.map(|g| g.hostname.clone()),
            "Image": row.image,
            "Cmd": g.map(|g| g.cmd.clone()),
            "Entrypoint": g.map(|g| g.entrypoint.clone()),
            "Env": g.map(|g| g.env.clone()),
            "WorkingDir": g.map(|g| g.workdir.clone()),
            "User": g.map(|g| g.user.clone()),
            "Labels": row.labels,
            "StopSignal": g.map(|g| g.stop_signal.clone()),
            "Tty": o.map(|o| o.tty),
            "OpenStdin": o.map(|o| o.interactive),
            "StdinOnce": o.map(|o| o.stdin_once),
            "AttachStdin": o.map(|o| o.interactive),
            "Domainname": "",
            "Volumes": volumes,
        },
        "HostConfig": {
            "AutoRemove": row.auto_remove,
            "RestartPolicy": restart_policy_json(&row.restart_policy),
            // podman names a user-mode network without its options.
            "NetworkMode": match o.map(|o| crate::opts::parse_network(o.network.as_deref())) {
                Some(Ok(crate::opts::NetworkMode::UserMode(m))) => m.name().to_string(),
                _ => o.and_then(|o| o.network.clone()).unwrap_or_else(|| crate::networks::DEFAULT_NETWORK.into()),
            },
            "Privileged": o.map(|o| o.privileged),
            "UsernsMode": crate::userns::mode_text(cfg_idmap.as_ref()),
            "IDMappings": crate::userns::inspect_json(cfg_idmap.as_ref()),
            "Init": o.map(|o| o.init),
            "ReadonlyRootfs": o.map(|o| o.read_only),
            "CapAdd": o.map(|o| o.cap_add.clone()),
            "CapDrop": o.map(|o| o.cap_drop.clone()),
            "SecurityOpt": o.map(|o| o.security_opt.clone()),
            "Memory": g.map(|g| g.spec["linux"]["resources"]["memory"]["limit"].clone()),
            "PidsLimit": g.map(|g| g.spec["linux"]["resources"]["pids"]["limit"].clone()),
            "CgroupParent": o.map(|o| o.cgroup_parent.clone()),
            "CgroupsPath": g.map(|g| g.cgroups_path.clone()),
            "Binds": o.map(|o| o.volumes.clone()),
            "Tmpfs": o.map(|o| o.tmpfs.clone()),
            "VolumesFrom": o.map(|o| o.volumes_from.clone()),
            "PortBindings": network_settings["Ports"].clone(),
            "Dns": o.map(|o| o.dns.clone()),
            "DnsSearch": o.map(|o| o.dns_search.clone()),
            "DnsOptions": o.map(|o| o.dns_option.clone()),
            "ExtraHosts": o.map(|o| o.add_host.clone()),
            // `update` changes the spec's resources, not the options.
            "CpuShares": g
                .and_then(|g| g.spec["linux"]["resources"]["cpu"]["shares"].as_u64())
                .or(o.and_then(|o| o.cpu_shares))
                .unwrap_or(0),
            "LogConfig": {"Type": "json-file", "Config": {}},
        },
        "Mounts": mounts,
        "NetworkSettings": network_settings,
        "Rootfs": engine.rootfs(&row.id),
        "LogPath": engine.log_path(&row.id),
        "BundlePath": engine.bundle(&row.id),
    });
    if let Some(c) = &cfg {
        crate::flags::add_to_inspect(&mut doc, c);
    }
    if row.status != Status::Running {
        clear_operational(&mut doc["NetworkSettings"]);
    }
    // podman's `Pod`: the pod's ID, "" outside a pod.
    doc["Pod"] = json!(pod.map(|p| p.id).unwrap_or_default());
    doc
}

/// A container that is not running has no address: Docker clears the
/// operational data of its endpoints (`cleanOperationalData`: address,
/// gateway, MAC, published ports, sandbox) and keeps the networks it is
/// on; podman shows the same. berth keeps the endpoint for the next
/// start, so only the inspect document is cleared.
fn clear_operational(ns: &mut Value) {
    fn clear(v: &mut Value) {
        for (k, empty) in [
            ("IPAddress", json!("")),
            ("IPPrefixLen", json!(0)),
            ("Gateway", json!("")),
            ("GlobalIPv6Address", json!("")),
            ("IPv6Gateway", json!("")),
            ("MacAddress", json!("")),
        ] {
            if v.get(k).is_some() {
                v[k] = empty;
            }
        }
    }
    clear(ns);
    if let Some(nets) = ns.get_mut("Networks").and_then(Value::as_object_mut) {
        nets.values_mut().for_each(clear);
    }
    if ns.get("Ports").is_some() {
        ns["Ports"] = json!({});
    }
    if ns.get("SandboxKey").is_some() {
        ns["SandboxKey"] = json!("");
    }
}

/// Docker's `{"Name", "MaximumRetryCount"}` of a recorded `--restart`.
fn restart_policy_json(recorded: &str) -> Value {
    match crate::opts::parse_restart(recorded) {
        Ok(p) => json!({"Name": p.name(), "MaximumRetryCount": p.maximum_retry_count()}),
        Err(_) => json!({"Name": recorded, "MaximumRetryCount": 0}),
    }
}

fn is_user_tmpfs(o: &crate::opts::RunOptions, m: &Value) -> bool {
    m["type"] == "tmpfs"
        && m["destination"].as_str().is_some_and(|d| {
            o.tmpfs.iter().any(|t| t.split(':').next() == Some(d))
                || o.mounts.iter().any(|x| x.contains(d))
        })
}

/// "Up 5 seconds", "Exited (0) 2 minutes ago", "Created".
pub fn status_text(row: &ContainerRow, now_ms: i64) -> String {
    match row.status {
        Status::Created => "Created".into(),
        Status::Running => format!("Up {}", ago(now_ms - row.started.unwrap_or(now_ms))),
        Status::Exited => {
            let code = row
                .exit_code
                .map(|c| c.to_string())
                .unwrap_or_else(|| "unknown".into());
            format!(
                "Exited ({code}) {} ago",
                ago(now_ms - row.finished.unwrap_or(now_ms))
            )
        }
    }
}

/// Docker's `units.HumanDuration` (docker/go-units, as Docker 20.10
/// prints `Up Less than a second`, `Exited (0) About a minute ago`).
pub fn ago(ms: i64) -> String {
    let ms = ms.max(0);
    let s = ms / 1000;
    let m = s / 60;
    // Go: `hours := int(d.Hours() + 0.5)`.
    let h = (ms as f64 / 3_600_000.0 + 0.5) as i64;
    if s < 1 {
        "Less than a second".into()
    } else if s == 1 {
        "1 second".into()
    } else if s < 60 {
        format!("{s} seconds")
    } else if m == 1 {
        "About a minute".into()
    } else if m < 60 {
        format!("{m} minutes")
    } else if h == 1 {
        "About an hour".into()
    } else if h < 48 {
        format!("{h} hours")
    } else if h < 24 * 7 * 2 {
        format!("{} days", h / 24)
    } else if h < 24 * 30 * 2 {
        format!("{} weeks", h / 24 / 7)
    } else if h < 24 * 365 * 2 {
        format!("{} months", h / 24 / 30)
    } else {
        format!("{} years", ms / 3_600_000 / 24 / 365)
    }
}

/// The command column of `ps`.
pub fn command_text(row: &ContainerRow) -> String {
    ContainerConfig::of(row)
        .map(|c| {
            c.generated
                .entrypoint
                .iter()
                .chain(c.generated.cmd.iter())
                .cloned()
                .collect::<Vec<_>>()
                .join(" ")
        })
        .unwrap_or_default()
}

/// A `ps --format json` entry.
pub fn ps_json(row: &ContainerRow, now_ms: i64) -> Value {
    json!({
        "Id": row.id,
        "Names": [row.name],
        "Image": row.image,
        "ImageID": row.image_id,
        "Command": command_text(row),
        "Created": crate::rfc3339_ms(row.created),
        "State": row.status.as_str(),
        "Status": status_text(row, now_ms),
        "ExitCode": row.exit_code,
        "Pid": row.pid.unwrap_or(0),
        "Labels": row.labels,
        "AutoRemove": row.auto_remove,
    })
}

/// A `ps --filter` condition: `name=`, `status=`, `label=k[=v]`, `id=`.
pub fn matches_filter(row: &ContainerRow, filter: &str) -> Option<bool> {
    let (k, v) = filter.split_once('=')?;
    Some(match k {
        "name" => row.name.contains(v),
        "id" => row.id.starts_with(v),
        "status" => row.status.as_str() == v,
        "label" => match v.split_once('=') {
            Some((lk, lv)) => row.labels.get(lk).is_some_and(|x| x == lv),
            None => row.labels.contains_key(v),
        },
        "ancestor" => row.image == v || row.image_id.contains(v),
        _ => return None,
    })
}

/// The short form of an ID (12 digits).
pub fn short_id(id: &str) -> &str {
    short(id)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::BTreeMap;

    fn row() -> ContainerRow {
        ContainerRow {
            id: "ab".repeat(32),
            name: "web".into(),
            image: "busybox".into(),
            image_id: "sha256:11".into(),
            config: json!(null),
            status: Status::Exited,
            created: 0,
            started: Some(0),
            finished: Some(1000),
            exit_code: Some(3),
            pid: None,
            monitor_pid: None,
            monitor_start: None,
            restart_policy: "no".into(),
            restart_count: 0,
            stop_requested: false,
            labels: BTreeMap::from([("tier".to_string(), "db".to_string())]),
            auto_remove: false,
        }
    }

    #[test]
    fn status_and_ago() {
        let r = row();
        assert_eq!(status_text(&r, 121_000), "Exited (3) 2 minutes ago");
        let mut run = r.clone();
        run.status = Status::Running;
        assert_eq!(status_text(&run, 5_000), "Up 5 seconds");
        assert_eq!(ago(3_600_000 * 3), "3 hours");
        assert_eq!(ago(400), "Less than a second");
        assert_eq!(ago(61_000), "About a minute");
        assert_eq!(ago(119_000), "About a minute");
        assert_eq!(ago(3_599_000), "59 minutes");
        // Hours are rounded, as Go's `int(d.Hours() + 0.5)`.
        assert_eq!(ago(5_400_000), "2 hours");
        assert_eq!(ago(3_700_000), "About an hour");
        assert_eq!(ago(86_400_000 * 20), "2 weeks");
        assert_eq!(ago(86_400_000 * 90), "3 months");
        assert_eq!(ago(86_400_000 * 800), "2 years");
        run.started = Some(4_500);
        assert_eq!(status_text(&run, 5_000), "Up Less than a second");
    }

    #[test]
    fn filters() {
        let r = row();
        assert_eq!(matches_filter(&r, "name=we"), Some(true));
        assert_eq!(matches_filter(&r, "status=running"), Some(false));
        assert_eq!(matches_filter(&r, "status=exited"), Some(true));
        assert_eq!(matches_filter(&r, "label=tier"), Some(true));
        assert_eq!(matches_filter(&r, "label=tier=web"), Some(false));
        assert_eq!(matches_filter(&r, "bogus=1"), None);
        assert_eq!(matches_filter(&r, "nokey"), None);
    }

    #[test]
    fn inspect_shape_without_config() {
        let e = Engine::new("/r".as_ref(), "/run/x".as_ref(), "/berth");
        let v = inspect(&e, &row());
        assert_eq!(v["State"]["ExitCode"], 3);
        assert_eq!(v["State"]["Running"], false);
        assert_eq!(v["Config"]["Labels"]["tier"], "db");
        assert_eq!(v["Name"], "/web");
    }
}
