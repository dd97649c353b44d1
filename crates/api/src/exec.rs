//! `/containers/{id}/exec` and `/exec/{id}/...`: an exec is a record in
//! the engine's runroot (`<runroot>/api-exec/<id>.json`, so a restarted
//! service still knows it), started as a `berth exec` child whose stdin,
//! stdout and stderr are tied to the hijacked connection (multiplexed
//! frames without a TTY, raw with one).

use std::path::PathBuf;
use std::process::Stdio;
use std::sync::Arc;

use berth_engine::db::Status;
use bytes::Bytes;
use hyper::{Response, StatusCode};
use serde_json::{json, Value};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWriteExt};
use tokio::sync::mpsc;

use crate::berth::Ctx;
use crate::containers::find;
use crate::reply::{self, ApiError, Body};
use crate::routes::Req;

fn dir(ctx: &Ctx) -> PathBuf {
    ctx.engine.runroot.join("api-exec")
}

fn path(ctx: &Ctx, id: &str) -> Result<PathBuf, ApiError> {
    if id.is_empty() || !id.chars().all(|c| c.is_ascii_hexdigit()) {
        return Err(ApiError::not_found(format!("No such exec instance: {id}")));
    }
    Ok(dir(ctx).join(format!("{id}.json")))
}

pub fn load(ctx: &Ctx, id: &str) -> Result<Value, ApiError> {
    let p = path(ctx, id)?;
    let text = std::fs::read_to_string(&p)
        .map_err(|_| ApiError::not_found(format!("No such exec instance: {id}")))?;
    serde_json::from_str(&text)
        .map_err(|e| ApiError::internal(format!("exec record {}: {e}", p.display())))
}

/// Writes the record whole (a temp file renamed over it).
fn store(ctx: &Ctx, id: &str, v: &Value) -> Result<(), ApiError> {
    let p = path(ctx, id)?;
    let tmp = p.with_extension("tmp");
    std::fs::create_dir_all(dir(ctx))
        .and_then(|_| std::fs::write(&tmp, v.to_string()))
        .and_then(|_| std::fs::rename(&tmp, &p))
        .map_err(|e| ApiError::internal(format!("write exec record {}: {e}", p.display())))
}

/// Drops the records of containers that are gone.
fn sweep(ctx: &Ctx) {
    let Ok(rd) = std::fs::read_dir(dir(ctx)) else {
        return;
    };
    let Ok(db) = ctx.engine.db() else { return };
    for e in rd.flatten() {
        let keep = std::fs::read_to_string(e.path())
            .ok()
            .and_then(|t| serde_json::from_str::<Value>(&t).ok())
            .and_then(|v| v["ContainerID"].as_str().map(String::from))
            .is_some_and(|c| db.get(&c).ok().flatten().is_some());
        if !keep {
            let _ = std::fs::remove_file(e.path());
        }
    }
}

/// `POST /containers/{id}/exec`.
pub async fn create(ctx: &Arc<Ctx>, r: &mut Req, id: &str) -> Result<Response<Body>, ApiError> {
    let body = r.json().await?;
    if !body.is_object() {
        return Err(ApiError::bad("exec create: the body must be a JSON object"));
    }
    let cmd: Vec<String> = body["Cmd"]
        .as_array()
        .map(|a| {
            a.iter()
                .filter_map(|x| x.as_str().map(String::from))
                .collect()
        })
        .unwrap_or_default();
    if cmd.is_empty() {
        return Err(ApiError::bad("exec create: no command specified (Cmd)"));
    }
    if body["Privileged"].as_bool() == Some(true) {
        return Err(ApiError::bad(
            "exec create: Privileged is not supported by berth's exec",
        ));
    }
    let row = find(ctx, id).await?;
    if row.status != Status::Running {
        return Err(ApiError::conflict(format!(
            "Container {} is not running",
            row.id
        )));
    }
    let exec_id = berth_engine::names::new_id().map_err(ApiError::engine)?;
    let rec = json!({
        "ID": exec_id,
        "ContainerID": row.id,
        "Config": body,
        "Running": false,
        "Started": false,
        "ExitCode": null,
        "Pid": 0,
    });
    let c2 = ctx.clone();
    let id2 = exec_id.clone();
    ctx.read(move |_| {
        sweep(&c2);
        store(&c2, &id2, &rec)
    })
    .await?;
    Ok(reply::json(StatusCode::CREATED, &json!({"Id": exec_id})))
}

/// `GET /exec/{id}/json`.
pub async fn inspect(ctx: &Arc<Ctx>, id: &str) -> Result<Response<Body>, ApiError> {
    let rec = load(ctx, id)?;
    let c = &rec["Config"];
    let cmd = c["Cmd"].as_array().cloned().unwrap_or_default();
    Ok(reply::json(
        StatusCode::OK,
        &json!({
            "ID": rec["ID"],
            "ContainerID": rec["ContainerID"],
            "Running": rec["Running"],
            "ExitCode": rec["ExitCode"],
            "Pid": rec["Pid"],
            "OpenStdin": c["AttachStdin"].as_bool().unwrap_or(false),
            "OpenStdout": c["AttachStdout"].as_bool().unwrap_or(false),
            "OpenStderr": c["AttachStderr"].as_bool().unwrap_or(false),
            "CanRemove": false,
            "DetachKeys": "",
            "ProcessConfig": {
                "entrypoint": cmd.first().cloned().unwrap_or_default(),
                "arguments": cmd.get(1..).unwrap_or_default(),
                "tty": c["Tty"].as_bool().unwrap_or(false),
                "user": c["User"].as_str().unwrap_or_default(),
                "privileged": false,
            },
        }),
    ))
}

fn exec_args(rec: &Value, detach: bool) -> Vec<String> {
    let c = &rec["Config"];
    let mut a = vec!["exec".to_string()];
    if detach {
        a.push("--detach".into());
    } else if c["AttachStdin"].as_bool() == Some(true) {
        a.push("--interactive".into());
    }
    if c["Tty"].as_bool() == Some(true) {
        a.push("--tty".into());
    }
    if let Some(u) = c["User"].as_str().filter(|s| !s.is_empty()) {
        a.extend(["--user".into(), u.into()]);
    }
    if let Some(w) = c["WorkingDir"].as_str().filter(|s| !s.is_empty()) {
        a.extend(["--workdir".into(), w.into()]);
    }
    for e in c["Env"].as_array().into_iter().flatten() {
        if let Some(e) = e.as_str() {
            a.extend(["--env".into(), e.into()]);
        }
    }
    a.push(rec["ContainerID"].as_str().unwrap_or_default().into());
    for x in c["Cmd"].as_array().into_iter().flatten() {
        a.push(x.as_str().unwrap_or_default().into());
    }
    a
}

/// Frames of one output stream (1 stdout, 2 stderr) into `tx`.
async fn pump(mut from: impl AsyncRead + Unpin, stream: u8, tty: bool, tx: mpsc::Sender<Bytes>) {
    let mut buf = vec![0u8; 32 * 1024];
    loop {
        let n = match from.read(&mut buf).await {
            Ok(0) | Err(_) => return,
            Ok(n) => n,
        };
        let mut f = Vec::with_capacity(n + 8);
        if !tty {
            f.extend_from_slice(&[stream, 0, 0, 0]);
            f.extend_from_slice(&(n as u32).to_be_bytes());
        }
        f.extend_from_slice(&buf[..n]);
        if tx.send(Bytes::from(f)).await.is_err() {
            return;
        }
    }
}

/// `POST /exec/{id}/start`: with `Detach`, runs it in the background;
/// else the hijacked connection (or a plain streamed body) carries its
/// stdin and output until it exits.
pub async fn start(ctx: &Arc<Ctx>, r: &mut Req, id: &str) -> Result<Response<Body>, ApiError> {
    let body = r.json().await?;
    let mut rec = load(ctx, id)?;
    if rec["Started"].as_bool() == Some(true) {
        return Err(ApiError::conflict(format!(
            "exec {id} has already been started"
        )));
    }
    let cid = rec["ContainerID"].as_str().unwrap_or_default().to_string();
    let row = find(ctx, &cid).await?;
    if row.status != Status::Running {
        return Err(ApiError::conflict(format!(
            "Container {cid} is not running"
        )));
    }
    let detach = body["Detach"].as_bool() == Some(true);
    let tty = rec["Config"]["Tty"].as_bool() == Some(true);
    let stdin = rec["Config"]["AttachStdin"].as_bool() == Some(true) && !detach;
    rec["Started"] = true.into();
    rec["Running"] = true.into();
    store(ctx, id, &rec)?;
    let mut cmd = ctx.cmd();
    cmd.args(exec_args(&rec, detach));
    if stdin {
        cmd.stdin(Stdio::piped());
    }
    let mut child = match cmd.spawn() {
        Ok(c) => c,
        Err(e) => {
            rec["Running"] = false.into();
            rec["ExitCode"] = 126.into();
            store(ctx, id, &rec)?;
            return Err(ApiError::internal(format!("run berth exec: {e}")));
        }
    };
    rec["Pid"] = child.id().unwrap_or(0).into();
    store(ctx, id, &rec)?;
    if detach {
        let out = child.wait_with_output().await;
        let code = out.as_ref().map_or(126, |o| o.status.code().unwrap_or(126));
        rec["Running"] = false.into();
        rec["ExitCode"] = code.into();
        store(ctx, id, &rec)?;
        if code != 0 {
            let err = out
                .map(|o| String::from_utf8_lossy(&o.stderr).trim().to_string())
                .unwrap_or_default();
            return Err(ApiError::from_message(err));
        }
        return Ok(reply::empty(StatusCode::OK));
    }
    let (tx, mut rx) = mpsc::channel::<Bytes>(64);
    let out = child.stdout.take();
    let err = child.stderr.take();
    let mut child_in = child.stdin.take();
    if let Some(o) = out {
        tokio::spawn(pump(o, 1, tty, tx.clone()));
    }
    if let Some(e) = err {
        tokio::spawn(pump(e, 2, tty, tx.clone()));
    }
    drop(tx);
    let ctx2 = ctx.clone();
    let id2 = id.to_string();
    // The exit code is recorded once the child is gone, whatever the
    // client does meanwhile (a client that goes away ends the exec: the
    // child is killed when dropped).
    let finish = move |mut child: tokio::process::Child, mut rec: Value| async move {
        let code = child
            .wait()
            .await
            .ok()
            .and_then(|s| s.code())
            .unwrap_or(137);
        rec["Running"] = false.into();
        rec["ExitCode"] = code.into();
        let _ = store(&ctx2, &id2, &rec);
    };
    let ct = if tty {
        "application/vnd.docker.raw-stream"
    } else {
        "application/vnd.docker.multiplexed-stream"
    };
    if r.inner.headers().get(hyper::header::UPGRADE).is_none() {
        let (resp, stx) = reply::stream(ct);
        drop(child_in.take());
        tokio::spawn(async move {
            while let Some(b) = rx.recv().await {
                if stx.send(b).await.is_err() {
                    let _ = child.start_kill();
                    break;
                }
            }
            finish(child, rec).await;
        });
        return Ok(resp);
    }
    let on = hyper::upgrade::on(&mut r.inner);
    tokio::spawn(async move {
        let Ok(up) = on.await else {
            let _ = child.start_kill();
            finish(child, rec).await;
            return;
        };
        let (mut rd, mut wr) = tokio::io::split(hyper_util::rt::TokioIo::new(up));
        // Stdin: until the client half-closes (then the child sees EOF).
        let input = tokio::spawn(async move {
            let mut buf = vec![0u8; 32 * 1024];
            loop {
                match rd.read(&mut buf).await {
                    Ok(0) | Err(_) => break,
                    Ok(n) => {
                        if let Some(i) = child_in.as_mut() {
                            if i.write_all(&buf[..n]).await.is_err() {
                                child_in = None;
                            }
                        }
                    }
                }
            }
            drop(child_in);
        });
        let mut gone = false;
        while let Some(b) = rx.recv().await {
            if wr.write_all(&b).await.is_err() || wr.flush().await.is_err() {
                gone = true;
                break;
            }
        }
        if gone {
            let _ = child.start_kill();
        }
        finish(child, rec).await;
        let _ = wr.shutdown().await;
        input.abort();
    });
    let mut resp = reply::empty(StatusCode::SWITCHING_PROTOCOLS);
    let h = resp.headers_mut();
    h.insert(hyper::header::CONNECTION, "Upgrade".parse().expect("h"));
    h.insert(hyper::header::UPGRADE, "tcp".parse().expect("h"));
    h.insert(hyper::header::CONTENT_TYPE, ct.parse().expect("h"));
    Ok(resp)
}
