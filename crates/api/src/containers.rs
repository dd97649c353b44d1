//! `/containers/...` and `/info`: reads from the engine, changes through
//! `berth` commands.

use std::sync::Arc;
use std::time::Duration;

use berth_engine::{db::Status, inspect, lifecycle, ContainerRow};
use hyper::{Response, StatusCode};
use serde_json::{json, Value};

use crate::berth::Ctx;
use crate::reply::{self, ApiError, Body};
use crate::routes::Req;

/// A container by name or ID, refreshed (404 when none).
pub async fn find(ctx: &Ctx, reference: &str) -> Result<ContainerRow, ApiError> {
    let r = reference.to_string();
    ctx.read(move |e| {
        lifecycle::find(e, &r).map_err(|err| match err.to_string() {
            m if m.contains("no such container") => {
                ApiError::not_found(format!("No such container: {r}"))
            }
            m => ApiError::from_message(m),
        })
    })
    .await
}

fn unix_secs(ms: i64) -> i64 {
    ms.div_euclid(1000)
}

/// Docker's `/containers/json` entry for a row.
fn list_entry(row: &ContainerRow, doc: &Value, now: i64) -> Value {
    let ports: Vec<Value> = doc["NetworkSettings"]["Ports"]
        .as_object()
        .map(|m| {
            let mut v = Vec::new();
            for (k, binds) in m {
                let (port, proto) = k.split_once('/').unwrap_or((k, "tcp"));
                let private: u64 = port.parse().unwrap_or(0);
                match binds.as_array() {
                    Some(bs) if !bs.is_empty() => {
                        for b in bs {
                            v.push(json!({
                                "IP": b["HostIp"].as_str().filter(|s| !s.is_empty()).unwrap_or("0.0.0.0"),
                                "PrivatePort": private,
                                "PublicPort": b["HostPort"].as_str().and_then(|p| p.parse::<u64>().ok()).unwrap_or(0),
                                "Type": proto,
                            }));
                        }
                    }
                    _ => v.push(json!({"PrivatePort": private, "Type": proto})),
                }
            }
            v
        })
        .unwrap_or_default();
    json!({
        "Id": row.id,
        "Names": [format!("/{}", row.name)],
        "Image": row.image,
        "ImageID": row.image_id,
        "Command": inspect::command_text(row),
        "Created": unix_secs(row.created),
        "Ports": ports,
        "Labels": row.labels,
        "State": row.status.as_str(),
        "Status": inspect::status_text(row, now),
        "HostConfig": {"NetworkMode": doc["HostConfig"]["NetworkMode"].as_str().unwrap_or("default")},
        "NetworkSettings": {"Networks": doc["NetworkSettings"]["Networks"].clone()},
        "Mounts": doc["Mounts"].clone(),
    })
}

/// Docker's `filters` query as berth's `k=v` filters.
fn filters(r: &Req) -> Result<Vec<String>, ApiError> {
    Ok(crate::routes::filters(r)?
        .into_iter()
        .map(|(k, v)| format!("{k}={v}"))
        .collect())
}

pub async fn list(ctx: &Arc<Ctx>, r: &Req) -> Result<Response<Body>, ApiError> {
    let all = r.flag("all");
    let limit: Option<usize> = r
        .q("limit")
        .and_then(|l| l.parse::<i64>().ok())
        .and_then(|l| (l > 0).then_some(l as usize));
    let filters = filters(r)?;
    let v = ctx
        .read(move |e| {
            let rows = e
                .db()
                .map_err(ApiError::engine)?
                .list()
                .map_err(ApiError::engine)?;
            let now = berth_engine::now_ms();
            let mut out = Vec::new();
            for row in rows {
                let row = lifecycle::refresh(e, row).map_err(ApiError::engine)?;
                if !all && row.status != Status::Running && filters.is_empty() {
                    continue;
                }
                let mut keep = true;
                for f in &filters {
                    match inspect::matches_filter(&row, f) {
                        Some(m) => keep &= m,
                        None => return Err(ApiError::bad(format!("invalid filter {f:?}"))),
                    }
                }
                if keep {
                    let doc = inspect::inspect(e, &row);
                    out.push((row.created, list_entry(&row, &doc, now)));
                }
            }
            out.sort_by_key(|x| std::cmp::Reverse(x.0));
            let mut v: Vec<Value> = out.into_iter().map(|x| x.1).collect();
            if let Some(l) = limit {
                v.truncate(l);
            }
            Ok(v)
        })
        .await?;
    Ok(reply::json(StatusCode::OK, &Value::Array(v)))
}

pub async fn inspect(ctx: &Arc<Ctx>, id: &str) -> Result<Response<Body>, ApiError> {
    let row = find(ctx, id).await?;
    let doc = ctx.read(move |e| Ok(inspect::inspect(e, &row))).await?;
    Ok(reply::json(StatusCode::OK, &docker_inspect(doc)))
}

/// berth's inspect document with Docker's `/`-prefixed name.
fn docker_inspect(mut doc: Value) -> Value {
    // Docker's HostConfig.Tmpfs is a map of path to options.
    if let Some(list) = doc["HostConfig"]["Tmpfs"].as_array() {
        let map: serde_json::Map<String, Value> = list
            .iter()
            .filter_map(|t| t.as_str())
            .map(|t| {
                let (p, o) = t.split_once(':').unwrap_or((t, ""));
                (p.to_string(), Value::from(o))
            })
            .collect();
        doc["HostConfig"]["Tmpfs"] = Value::Object(map);
    }
    // Docker gives a container its short ID as an alias on each user
    // network (Compose checks it to tell it connected the container).
    let short = doc["Id"].as_str().map(|i| inspect::short_id(i).to_string());
    if let (Some(nets), Some(short)) = (doc["NetworkSettings"]["Networks"].as_object_mut(), short) {
        for (name, n) in nets.iter_mut() {
            if name == berth_engine::networks::DEFAULT_NETWORK {
                continue;
            }
            match n["Aliases"].as_array_mut() {
                Some(a) if !a.iter().any(|x| x == short.as_str()) => a.push(short.clone().into()),
                Some(_) => {}
                None => n["Aliases"] = json!([short]),
            }
        }
    }
    // berth's file log driver is Docker's json-file (the SDKs read logs
    // only from the drivers they know).
    if doc["HostConfig"]["LogConfig"]["Type"] == "k8s-file" {
        doc["HostConfig"]["LogConfig"]["Type"] = "json-file".into();
    }
    // Docker's HostIp of a port published on every address.
    if let Some(ports) = doc["NetworkSettings"]["Ports"].as_object_mut() {
        for b in ports
            .values_mut()
            .filter_map(|v| v.as_array_mut())
            .flatten()
        {
            if b["HostIp"] == "" {
                b["HostIp"] = "0.0.0.0".into();
            }
        }
    }
    if let Some(n) = doc["Name"].as_str() {
        if !n.starts_with('/') {
            doc["Name"] = format!("/{n}").into();
        }
    }
    doc
}

pub async fn create(ctx: &Arc<Ctx>, r: &mut Req) -> Result<Response<Body>, ApiError> {
    let body = r.json().await?;
    if !body.is_object() {
        return Err(ApiError::bad(
            "create: the body must be a JSON object (the container's config)",
        ));
    }
    let mut hosts = Vec::new();
    for (c, alias) in crate::create::links(&body) {
        let row = find(ctx, &c).await.map_err(|_| {
            ApiError::bad(format!(
                "could not get container for {c}: links need an existing container"
            ))
        })?;
        if row.status != Status::Running {
            return Err(ApiError::bad(format!(
                "Cannot link to a non running container: /{} AS {alias}",
                row.name
            )));
        }
        let net = body["HostConfig"]["NetworkMode"]
            .as_str()
            .unwrap_or_default()
            .to_string();
        let ip = ctx
            .read(move |e| {
                let doc = inspect::inspect(e, &row);
                let nets = &doc["NetworkSettings"]["Networks"];
                let ip = nets[net.as_str()]["IPAddress"]
                    .as_str()
                    .or_else(|| nets.as_object()?.values().next()?["IPAddress"].as_str())
                    .unwrap_or_default()
                    .to_string();
                Ok(ip)
            })
            .await?;
        if ip.is_empty() {
            return Err(ApiError::bad(format!(
                "cannot link to {c}: it has no address on a bridge network"
            )));
        }
        hosts.push(format!("{alias}:{ip}"));
    }
    let args = crate::create::create_args(r.q("name"), &body, &hosts)?;
    let image = body["Image"].as_str().unwrap_or_default().to_string();
    let img = image.clone();
    let found = ctx
        .read(move |e| {
            let store = berth_image::Store::open(&e.root).map_err(ApiError::engine)?;
            Ok(berth_image::image::resolve_name(&store, &img).is_ok())
        })
        .await?;
    if !found {
        return Err(ApiError::not_found(format!("No such image: {image}")));
    }
    let id = ctx.create(args).await?;
    Ok(reply::json(
        StatusCode::CREATED,
        &json!({"Id": id, "Warnings": []}),
    ))
}

pub async fn start(ctx: &Arc<Ctx>, id: &str) -> Result<Response<Body>, ApiError> {
    let row = find(ctx, id).await?;
    if row.status == Status::Running {
        return Ok(reply::empty(StatusCode::NOT_MODIFIED));
    }
    ctx.start(row).await?;
    Ok(reply::empty(StatusCode::NO_CONTENT))
}

pub async fn stop(ctx: &Arc<Ctx>, r: &Req, id: &str) -> Result<Response<Body>, ApiError> {
    let row = find(ctx, id).await?;
    if row.status != Status::Running {
        return Ok(reply::empty(StatusCode::NOT_MODIFIED));
    }
    let mut args = vec!["stop".to_string()];
    if let Some(t) = r.q("t").filter(|t| !t.is_empty()) {
        args.extend(["--time".into(), t.to_string()]);
    }
    args.push(row.id);
    ctx.berth(&args).await?;
    Ok(reply::empty(StatusCode::NO_CONTENT))
}

pub async fn kill(ctx: &Arc<Ctx>, r: &Req, id: &str) -> Result<Response<Body>, ApiError> {
    let row = find(ctx, id).await?;
    if row.status != Status::Running {
        return Err(ApiError::conflict(format!(
            "Container {} is not running",
            row.id
        )));
    }
    let signal = r.q("signal").filter(|s| !s.is_empty());
    let mut args = vec!["kill".to_string()];
    if let Some(s) = signal {
        args.extend(["--signal".into(), s.to_string()]);
    }
    args.push(row.id.clone());
    ctx.berth(&args).await?;
    // As dockerd's ContainerKill: SIGKILL (the default) answers once the
    // container is no longer running, so a `docker rm` right after a
    // `docker kill` finds it stopped.
    let sigkill = signal.is_none_or(|s| {
        let s = s.to_ascii_uppercase();
        matches!(s.trim_start_matches("SIG"), "KILL" | "9")
    });
    if sigkill {
        let deadline = std::time::Instant::now() + Duration::from_secs(10);
        loop {
            let seen = ctx.changes.count();
            match find(ctx, &row.id).await {
                Ok(now) if now.status == Status::Running => {}
                _ => break,
            }
            if std::time::Instant::now() >= deadline {
                break;
            }
            ctx.changes.wait(seen, Duration::from_millis(250)).await;
        }
    }
    Ok(reply::empty(StatusCode::NO_CONTENT))
}

pub async fn remove(ctx: &Arc<Ctx>, r: &Req, id: &str) -> Result<Response<Body>, ApiError> {
    let row = find(ctx, id).await?;
    if row.status == Status::Running && !r.flag("force") {
        return Err(ApiError::conflict(format!(
            "You cannot remove a running container {}. Stop the container before attempting removal or force remove",
            row.id
        )));
    }
    let mut args = vec!["rm".to_string()];
    if r.flag("force") {
        args.push("--force".into());
    }
    if r.flag("v") {
        args.push("--volumes".into());
    }
    args.push(row.id);
    ctx.berth(&args).await?;
    Ok(reply::empty(StatusCode::NO_CONTENT))
}

/// The exit code of `id`'s last `die` event (a `--rm` container gone
/// before its row could be read).
fn exit_from_events(root: &std::path::Path, id: &str) -> Option<i64> {
    let text = std::fs::read_to_string(berth_engine::events::log_path(root)).ok()?;
    text.lines()
        .rev()
        .filter(|l| l.contains(id) && l.contains("\"die\""))
        .filter_map(|l| serde_json::from_str::<Value>(l).ok())
        .find(|v| v["Actor"]["ID"] == id)
        .and_then(|v| v["Actor"]["Attributes"]["exitCode"].as_str()?.parse().ok())
}

/// How long a wait sleeps without a change before it looks again (a
/// monitor killed without a word changes nothing on disk; the read's
/// refresh notices it).
const LOOK_AGAIN: std::time::Duration = std::time::Duration::from_secs(1);

/// `wait?condition=not-running|next-exit|removed`: woken by the engine's
/// changes (see `berth_svc::changes`), not by polling.
pub async fn wait(ctx: &Arc<Ctx>, r: &Req, id: &str) -> Result<Response<Body>, ApiError> {
    let cond = r.q("condition").unwrap_or("not-running").to_string();
    if !matches!(cond.as_str(), "" | "not-running" | "next-exit" | "removed") {
        return Err(ApiError::bad(format!("invalid condition: {cond:?}")));
    }
    let row = find(ctx, id).await?;
    // Docker sends the headers at once (the CLI starts the container only
    // once it has them), the status when the condition holds.
    let (resp, tx) = reply::stream("application/json");
    let ctx = ctx.clone();
    tokio::spawn(async move {
        let v = match wait_for(&ctx, &cond, row).await {
            Ok(v) => v,
            Err(e) => json!({"StatusCode": -1, "Error": {"Message": e.message}}),
        };
        let _ = tx.send(bytes::Bytes::from(format!("{v}\n"))).await;
    });
    Ok(resp)
}

async fn wait_for(ctx: &Arc<Ctx>, cond: &str, row: ContainerRow) -> Result<Value, ApiError> {
    let full = row.id.clone();
    let started0 = row.started;
    let mut last = row;
    // Noted before each read: a change after it wakes the wait below.
    let mut seen = ctx.changes.count();
    loop {
        let f = full.clone();
        let cur = ctx
            .read(move |e| {
                match e
                    .db()
                    .map_err(ApiError::engine)?
                    .get(&f)
                    .map_err(ApiError::engine)?
                {
                    None => Ok(None),
                    Some(r) => lifecycle::refresh(e, r).map(Some).map_err(ApiError::engine),
                }
            })
            .await?;
        match cur {
            None => {
                let code = match last.status {
                    Status::Exited => last.exit_code.map(i64::from),
                    _ => None,
                };
                let root = ctx.engine.root.clone();
                let f = full.clone();
                let code = match code {
                    Some(c) => c,
                    None => ctx
                        .read(move |_| Ok(exit_from_events(&root, &f)))
                        .await?
                        .unwrap_or(-1),
                };
                return Ok(json!({"StatusCode": code, "Error": null}));
            }
            Some(c) => {
                let done = match cond {
                    "removed" => false,
                    "next-exit" => {
                        c.status == Status::Exited && c.started.is_some() && c.started != started0
                            || c.status == Status::Exited
                                && started0.is_some()
                                && last.status == Status::Running
                    }
                    _ => c.status != Status::Running,
                };
                if done {
                    let code = c.exit_code.map(i64::from).unwrap_or(-1);
                    return Ok(json!({"StatusCode": code, "Error": null}));
                }
                last = c;
            }
        }
        seen = ctx.changes.wait(seen, LOOK_AGAIN).await;
    }
}

pub async fn info(ctx: &Arc<Ctx>) -> Result<Response<Body>, ApiError> {
    let (rows, images) = ctx
        .read(|e| {
            let rows = e
                .db()
                .map_err(ApiError::engine)?
                .list()
                .map_err(ApiError::engine)?;
            let rows: Vec<ContainerRow> = rows
                .into_iter()
                .map(|r| lifecycle::refresh(e, r))
                .collect::<Result<_, _>>()
                .map_err(ApiError::engine)?;
            let images = berth_image::Store::open(&e.root)
                .ok()
                .and_then(|s| s.images().ok())
                .map_or(0, |l| l.len());
            Ok((rows, images))
        })
        .await?;
    let count = |s: Status| rows.iter().filter(|r| r.status == s).count();
    let os = std::fs::read_to_string("/proc/sys/kernel/osrelease").unwrap_or_default();
    let host = std::fs::read_to_string("/proc/sys/kernel/hostname").unwrap_or_default();
    let ncpu = std::thread::available_parallelism().map_or(1, |n| n.get());
    let mem: u64 = std::fs::read_to_string("/proc/meminfo")
        .ok()
        .and_then(|m| {
            m.lines()
                .find(|l| l.starts_with("MemTotal:"))
                .and_then(|l| l.split_whitespace().nth(1)?.parse::<u64>().ok())
        })
        .unwrap_or(0)
        * 1024;
    let cgv = if std::path::Path::new("/sys/fs/cgroup/cgroup.controllers").exists() {
        "2"
    } else {
        "1"
    };
    Ok(reply::json(
        StatusCode::OK,
        &json!({
            "ID": "berth",
            "Containers": rows.len(),
            "ContainersRunning": count(Status::Running),
            "ContainersPaused": 0,
            "ContainersStopped": rows.len() - count(Status::Running),
            "Images": images,
            "Driver": "overlay",
            "DriverStatus": [],
            "Plugins": {"Volume": ["local"], "Network": ["bridge", "host", "none"], "Log": ["json-file", "k8s-file", "none"]},
            "MemoryLimit": true,
            "SwapLimit": true,
            "CpuCfsPeriod": true,
            "CpuCfsQuota": true,
            "IPv4Forwarding": true,
            "Debug": false,
            "NFd": 0,
            "NGoroutines": 0,
            "SystemTime": berth_engine::rfc3339_ms(berth_engine::now_ms()),
            "LoggingDriver": "json-file",
            "CgroupDriver": "cgroupfs",
            "CgroupVersion": cgv,
            "KernelVersion": os.trim(),
            "OperatingSystem": "berth",
            "OSType": "linux",
            "Architecture": std::env::consts::ARCH,
            "NCPU": ncpu,
            "MemTotal": mem,
            "IndexServerAddress": "https://index.docker.io/v1/",
            "RegistryConfig": {"IndexConfigs": {}, "InsecureRegistryCIDRs": [], "Mirrors": []},
            "DockerRootDir": ctx.engine.root,
            "Name": host.trim(),
            "Labels": [],
            "ExperimentalBuild": false,
            "ServerVersion": env!("CARGO_PKG_VERSION"),
            "Runtimes": {"berth-runtime": {"path": "berth-runtime"}},
            "DefaultRuntime": "berth-runtime",
            "Swarm": {"LocalNodeState": "inactive", "NodeID": "", "NodeAddr": "", "ControlAvailable": false, "Error": "", "RemoteManagers": null},
            "LiveRestoreEnabled": true,
            "Isolation": "",
            "InitBinary": "",
            "ContainerdCommit": {"ID": "", "Expected": ""},
            "RuncCommit": {"ID": "", "Expected": ""},
            "InitCommit": {"ID": "", "Expected": ""},
            "SecurityOptions": ["name=seccomp,profile=default"],
            "Warnings": [],
        }),
    ))
}

/// `POST /containers/{id}/restart|pause|unpause`.
pub async fn verb(
    ctx: &Arc<Ctx>,
    r: &Req,
    id: &str,
    verb: &str,
) -> Result<Response<Body>, ApiError> {
    let row = find(ctx, id).await?;
    let mut args = vec![verb.to_string()];
    match verb {
        "restart" => {
            if let Some(t) = r.q("t").filter(|t| !t.is_empty()) {
                args.extend(["--time".into(), t.to_string()]);
            }
        }
        "pause" | "unpause" if row.status != Status::Running => {
            return Err(ApiError::conflict(format!(
                "Container {} is not running",
                row.id
            )));
        }
        _ => {}
    }
    args.push(row.id);
    ctx.berth(&args).await?;
    Ok(reply::empty(StatusCode::NO_CONTENT))
}

/// `POST /containers/{id}/rename?name=NEW`.
pub async fn rename(ctx: &Arc<Ctx>, r: &Req, id: &str) -> Result<Response<Body>, ApiError> {
    let Some(name) = r.q("name").filter(|n| !n.is_empty()) else {
        return Err(ApiError::bad("rename: the new name (name=) is missing"));
    };
    let name = name.trim_start_matches('/').to_string();
    let row = find(ctx, id).await?;
    if find(ctx, &name).await.is_ok_and(|o| o.name == name) {
        return Err(ApiError::conflict(format!(
            "Conflict. The container name \"/{name}\" is already in use"
        )));
    }
    ctx.berth(&["rename".into(), row.id, name]).await?;
    Ok(reply::empty(StatusCode::NO_CONTENT))
}

/// `GET /containers/{id}/top?ps_args=...`: `berth top`'s table as
/// Docker's Titles and Processes (the last column keeps its spaces).
pub async fn top(ctx: &Arc<Ctx>, r: &Req, id: &str) -> Result<Response<Body>, ApiError> {
    let row = find(ctx, id).await?;
    if row.status != Status::Running {
        return Err(ApiError::conflict(format!(
            "Container {} is not running",
            row.id
        )));
    }
    let mut args = vec!["top".to_string(), row.id];
    if let Some(p) = r.q("ps_args").filter(|p| !p.is_empty()) {
        args.push("--".into());
        args.extend(p.split_whitespace().map(String::from));
    }
    let out = ctx.berth(&args).await?;
    let mut lines = out.lines().filter(|l| !l.trim().is_empty());
    let titles: Vec<String> = lines
        .next()
        .unwrap_or_default()
        .split_whitespace()
        .map(String::from)
        .collect();
    let n = titles.len().max(1);
    let procs: Vec<Vec<String>> = lines
        .map(|l| {
            let mut cols: Vec<String> = Vec::new();
            let mut rest = l.trim_start();
            while cols.len() + 1 < n {
                let Some((c, r)) = rest.split_once(char::is_whitespace) else {
                    break;
                };
                cols.push(c.to_string());
                rest = r.trim_start();
            }
            cols.push(rest.to_string());
            cols
        })
        .collect();
    Ok(reply::json(
        StatusCode::OK,
        &json!({"Titles": titles, "Processes": procs}),
    ))
}
