//! `/containers/{id}/update`, `/containers/prune`,
//! `/containers/{id}/changes`, `/containers/{id}/export` and `/commit`:
//! through `berth update`, `rm`, `diff`, `export` and `commit`.

use std::process::Stdio;
use std::sync::Arc;

use berth_engine::{db::Status, lifecycle};
use bytes::Bytes;
use hyper::{Response, StatusCode};
use serde_json::{json, Value};
use tokio::io::AsyncReadExt;

use crate::berth::Ctx;
use crate::containers::find;
use crate::reply::{self, ApiError, Body};
use crate::routes::{filters, label_matches, only_filters, Req};

/// Whether a JSON field is unset as Docker's clients send it (absent,
/// null, 0, "", [] or {}).
fn unset(v: &Value) -> bool {
    match v {
        Value::Null => true,
        Value::Bool(b) => !b,
        Value::Number(n) => n.as_f64() == Some(0.0),
        Value::String(s) => s.is_empty(),
        Value::Array(a) => a.is_empty(),
        Value::Object(o) => o.is_empty(),
    }
}

/// The `Resources` fields `update` applies, as `berth update` flags.
const UPDATE_FLAGS: &[(&str, &str)] = &[
    ("Memory", "--memory"),
    ("MemorySwap", "--memory-swap"),
    ("MemoryReservation", "--memory-reservation"),
    ("CpuShares", "--cpu-shares"),
    ("CpuPeriod", "--cpu-period"),
    ("CpuQuota", "--cpu-quota"),
    ("CpusetCpus", "--cpuset-cpus"),
    ("CpusetMems", "--cpuset-mems"),
    ("BlkioWeight", "--blkio-weight"),
];

/// Docker's update fields berth does not apply.
const UNSUPPORTED_UPDATE: &[&str] = &[
    "BlkioWeightDevice",
    "BlkioDeviceReadBps",
    "BlkioDeviceWriteBps",
    "BlkioDeviceReadIOps",
    "BlkioDeviceWriteIOps",
    "CpuRealtimePeriod",
    "CpuRealtimeRuntime",
    "CpuCount",
    "CpuPercent",
    "Devices",
    "DeviceCgroupRules",
    "DeviceRequests",
    "KernelMemory",
    "KernelMemoryTCP",
    "MemorySwappiness",
    "OomKillDisable",
    "Ulimits",
    "IOMaximumIOps",
    "IOMaximumBandwidth",
    "CgroupParent",
];

/// `berth update` arguments for Docker's update body.
fn update_args(body: &Value) -> Result<Vec<String>, ApiError> {
    let Some(obj) = body.as_object() else {
        return Err(ApiError::bad("update: the body must be a JSON object"));
    };
    let mut a = vec!["update".to_string()];
    // Resources Docker can update and berth cannot are refused by name;
    // fields of no meaning here are ignored, as Docker's decoder does.
    for k in UNSUPPORTED_UPDATE {
        if obj.get(*k).is_some_and(|v| !unset(v)) {
            return Err(ApiError::bad(format!(
                "update: {k} is not supported by berth (supported: Memory, MemorySwap, MemoryReservation, NanoCpus, CpuShares, CpuPeriod, CpuQuota, CpusetCpus, CpusetMems, PidsLimit, BlkioWeight, RestartPolicy)"
            )));
        }
    }
    for (field, flag) in UPDATE_FLAGS {
        let v = &body[*field];
        if unset(v) {
            continue;
        }
        let text = match v {
            Value::String(s) => s.clone(),
            Value::Number(n) => n.to_string(),
            _ => return Err(ApiError::bad(format!("update: invalid {field} {v}"))),
        };
        a.extend([flag.to_string(), text]);
    }
    if let Some(n) = body["NanoCpus"].as_i64().filter(|n| *n != 0) {
        if n < 0 {
            return Err(ApiError::bad(format!("update: invalid NanoCpus {n}")));
        }
        a.extend(["--cpus".into(), format!("{}", n as f64 / 1e9)]);
    }
    // PidsLimit: null keeps it; 0 and -1 mean unlimited.
    if let Some(p) = body["PidsLimit"].as_i64() {
        a.extend(["--pids-limit".into(), p.to_string()]);
    }
    let rp = &body["RestartPolicy"];
    if let Some(name) = rp["Name"].as_str().filter(|s| !s.is_empty()) {
        let n = rp["MaximumRetryCount"].as_u64().unwrap_or(0);
        let policy = if name == "on-failure" && n > 0 {
            format!("on-failure:{n}")
        } else {
            name.to_string()
        };
        a.extend(["--restart".into(), policy]);
    }
    Ok(a)
}

/// `POST /containers/{id}/update`.
pub async fn update(ctx: &Arc<Ctx>, r: &mut Req, id: &str) -> Result<Response<Body>, ApiError> {
    let body = r.json().await?;
    let mut args = update_args(&body)?;
    let row = find(ctx, id).await?;
    if args.len() > 1 {
        args.push(row.id);
        ctx.berth(&args).await?;
    }
    Ok(reply::json(StatusCode::OK, &json!({"Warnings": []})))
}

/// `until` of a prune filter: a time (RFC 3339, unix seconds) or a
/// duration ago, as unix milliseconds.
fn until_ms(v: &str, now: i64) -> Result<i64, ApiError> {
    berth_engine::events::parse_time(v, now)
        .map(|ns| ns.div_euclid(1_000_000))
        .ok_or_else(|| ApiError::bad(format!("invalid filter 'until={v}': a time or a duration")))
}

/// `POST /containers/prune?filters=`: removes the containers that are
/// not running (filters `until`, `label`, `label!`).
pub async fn prune(ctx: &Arc<Ctx>, r: &Req) -> Result<Response<Body>, ApiError> {
    let f = filters(r)?;
    let now = berth_engine::now_ms();
    only_filters(&f, &["until", "label", "label!"], "container prune")?;
    let mut until = None;
    for (k, v) in &f {
        if k == "until" {
            until = Some(until_ms(v, now)?);
        }
    }
    let victims = ctx
        .read(move |e| {
            let mut out = Vec::new();
            for row in e
                .db()
                .map_err(ApiError::engine)?
                .list()
                .map_err(ApiError::engine)?
            {
                let row = lifecycle::refresh(e, row).map_err(ApiError::engine)?;
                if row.status == Status::Running {
                    continue;
                }
                if until.is_some_and(|u| row.created >= u) {
                    continue;
                }
                let keep = f.iter().all(|(k, v)| match k.as_str() {
                    "label" => label_matches(&row.labels, v),
                    "label!" => !label_matches(&row.labels, v),
                    _ => true,
                });
                if keep {
                    let size = dir_size(&berth_engine::manage::upper_dir(e, &row.id));
                    out.push((row.id, size));
                }
            }
            Ok(out)
        })
        .await?;
    let mut deleted = Vec::new();
    let mut space = 0u64;
    for (id, size) in victims {
        // One started meanwhile stays.
        if ctx.berth(&["rm".into(), id.clone()]).await.is_ok() {
            deleted.push(id);
            space += size;
        }
    }
    Ok(reply::json(
        StatusCode::OK,
        &json!({"ContainersDeleted": deleted, "SpaceReclaimed": space}),
    ))
}

/// The bytes of the files under `p` (symlinks not followed).
pub fn dir_size(p: &std::path::Path) -> u64 {
    let Ok(md) = std::fs::symlink_metadata(p) else {
        return 0;
    };
    if !md.is_dir() {
        return md.len();
    }
    std::fs::read_dir(p)
        .map(|rd| rd.flatten().map(|e| dir_size(&e.path())).sum())
        .unwrap_or(0)
}

/// `GET /containers/{id}/changes`: `[{"Path", "Kind"}]` with Docker's
/// kinds (0 modified, 1 added, 2 deleted).
pub async fn changes(ctx: &Arc<Ctx>, id: &str) -> Result<Response<Body>, ApiError> {
    let row = find(ctx, id).await?;
    let out = ctx
        .berth(&[
            "diff".into(),
            "--format".into(),
            "{{.Kind}} {{.Path}}".into(),
            row.id,
        ])
        .await?;
    let list: Vec<Value> = out
        .lines()
        .filter_map(|l| l.split_once(' '))
        .map(|(k, p)| {
            let kind = match k {
                "A" => 1,
                "D" => 2,
                _ => 0,
            };
            json!({"Path": p, "Kind": kind})
        })
        .collect();
    // Docker answers null for no changes.
    let v = if list.is_empty() {
        Value::Null
    } else {
        Value::Array(list)
    };
    Ok(reply::json(StatusCode::OK, &v))
}

/// `GET /containers/{id}/export`: `berth export`'s tar stream; a failure
/// before the first byte is an error answer, a client that goes away
/// ends the export.
pub async fn export(ctx: &Arc<Ctx>, id: &str) -> Result<Response<Body>, ApiError> {
    let row = find(ctx, id).await?;
    let mut child = ctx
        .cmd()
        .args(["export", &row.id])
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .map_err(|e| ApiError::internal(format!("run {} export: {e}", ctx.berth.display())))?;
    let mut out = child.stdout.take().expect("piped");
    let mut buf = vec![0u8; 64 * 1024];
    let n = out
        .read(&mut buf)
        .await
        .map_err(|e| ApiError::internal(format!("export {}: read: {e}", row.id)))?;
    if n == 0 {
        let o = child
            .wait_with_output()
            .await
            .map_err(|e| ApiError::internal(format!("export {}: {e}", row.id)))?;
        if !o.status.success() {
            let err = String::from_utf8_lossy(&o.stderr);
            let msg = err.lines().rev().find(|l| !l.trim().is_empty());
            return Err(ApiError::from_message(
                msg.unwrap_or("berth export failed")
                    .trim_start_matches("berth: ")
                    .to_string(),
            ));
        }
        let mut resp = reply::empty(StatusCode::OK);
        resp.headers_mut().insert(
            hyper::header::CONTENT_TYPE,
            hyper::header::HeaderValue::from_static("application/x-tar"),
        );
        return Ok(resp);
    }
    let (mut resp, tx) = reply::stream("application/x-tar");
    *resp.status_mut() = StatusCode::OK;
    buf.truncate(n);
    tokio::spawn(async move {
        let mut chunk = buf;
        loop {
            if chunk.is_empty() {
                break;
            }
            if tx.send(Bytes::from(chunk)).await.is_err() {
                // The client went: the child is killed on drop.
                return;
            }
            let mut b = vec![0u8; 64 * 1024];
            match out.read(&mut b).await {
                Ok(0) | Err(_) => break,
                Ok(n) => {
                    b.truncate(n);
                    chunk = b;
                }
            }
        }
        let _ = child.wait().await;
    });
    Ok(resp)
}

/// Dockerfile instructions for the fields of a `/commit` body (the
/// container config to apply).
fn config_changes(body: &Value) -> Result<Vec<String>, ApiError> {
    let mut c = Vec::new();
    if body.is_null() {
        return Ok(c);
    }
    let Some(obj) = body.as_object() else {
        return Err(ApiError::bad("commit: the body must be a JSON object"));
    };
    for (k, v) in obj {
        if unset(v) {
            continue;
        }
        match k.as_str() {
            "Cmd" => c.push(format!("CMD {v}")),
            "Entrypoint" => c.push(format!("ENTRYPOINT {v}")),
            "User" => c.push(format!("USER {}", v.as_str().unwrap_or_default())),
            "WorkingDir" => c.push(format!("WORKDIR {}", v.as_str().unwrap_or_default())),
            "StopSignal" => c.push(format!("STOPSIGNAL {}", v.as_str().unwrap_or_default())),
            "Env" => {
                for e in v
                    .as_array()
                    .into_iter()
                    .flatten()
                    .filter_map(|e| e.as_str())
                {
                    let (k, val) = e.split_once('=').unwrap_or((e, ""));
                    c.push(format!("ENV {k}={}", Value::from(val)));
                }
            }
            "Labels" => {
                for (lk, lv) in v.as_object().into_iter().flatten() {
                    c.push(format!(
                        "LABEL {}={}",
                        Value::from(lk.as_str()),
                        Value::from(lv.as_str().unwrap_or_default())
                    ));
                }
            }
            "ExposedPorts" => {
                for p in v.as_object().into_iter().flatten().map(|x| x.0) {
                    c.push(format!("EXPOSE {p}"));
                }
            }
            "Volumes" => {
                for p in v.as_object().into_iter().flatten().map(|x| x.0) {
                    c.push(format!("VOLUME {p}"));
                }
            }
            // What the client fills in from the container itself.
            "Hostname" | "Domainname" | "AttachStdin" | "AttachStdout" | "AttachStderr" | "Tty"
            | "OpenStdin" | "StdinOnce" | "Image" => {}
            _ => {
                return Err(ApiError::bad(format!(
                    "commit: the config field {k} is not supported by berth"
                )))
            }
        }
    }
    Ok(c)
}

/// `POST /commit?container=&repo=&tag=&comment=&author=&pause=&changes=`.
pub async fn commit(ctx: &Arc<Ctx>, r: &mut Req) -> Result<Response<Body>, ApiError> {
    let body = r.json().await?;
    let Some(c) = r.q("container").filter(|c| !c.is_empty()) else {
        return Err(ApiError::bad(
            "commit: the container (container=) is missing",
        ));
    };
    let row = find(ctx, c).await?;
    let mut args = vec!["commit".to_string(), "--quiet".into()];
    if let Some(a) = r.q("author").filter(|s| !s.is_empty()) {
        args.extend(["--author".into(), a.into()]);
    }
    if let Some(m) = r.q("comment").filter(|s| !s.is_empty()) {
        args.extend(["--message".into(), m.into()]);
    }
    let pause = match r.q("pause") {
        None | Some("") => true,
        Some(_) => r.flag("pause"),
    };
    args.push(format!("--pause={pause}"));
    let mut changes: Vec<String> = r.q_all("changes");
    changes.extend(config_changes(&body)?);
    for ch in changes.into_iter().filter(|c| !c.trim().is_empty()) {
        args.extend(["--change".into(), ch]);
    }
    args.push(row.id);
    if let Some(repo) = r.q("repo").filter(|s| !s.is_empty()) {
        match r.q("tag").filter(|s| !s.is_empty()) {
            Some(t) => args.push(format!("{repo}:{t}")),
            None => args.push(repo.to_string()),
        }
    }
    let out = ctx.berth(&args).await?;
    let id = out.split_whitespace().last().unwrap_or_default();
    let id = if id.starts_with("sha256:") {
        id.to_string()
    } else {
        format!("sha256:{id}")
    };
    Ok(reply::json(StatusCode::CREATED, &json!({"Id": id})))
}
