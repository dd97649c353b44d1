//! `GET /events`: `berth events --format json` streamed as Docker's
//! event documents (with the old `status`/`id`/`from` fields of
//! container events, which Compose 1.29 reads). `label` filters are
//! matched here, against the container's labels.

use std::process::Stdio;
use std::sync::Arc;

use bytes::Bytes;
use hyper::{Response, StatusCode};
use serde_json::Value;
use tokio::io::AsyncBufReadExt;

use crate::berth::Ctx;
use crate::reply::{self, ApiError, Body};
use crate::routes::{filters, label_matches, Req};

/// Filters `berth events` takes as they are.
const PASSED: &[&str] = &["type", "event", "container", "image", "network", "volume"];

fn docker_event(mut ev: Value) -> Value {
    if ev["Type"] == "container" {
        ev["status"] = ev["Action"].clone();
        ev["id"] = ev["Actor"]["ID"].clone();
        ev["from"] = ev["Actor"]["Attributes"]["image"].clone();
    }
    ev
}

/// Does a container event match every `label` filter? The event's own
/// attributes first, else the container's current labels.
fn labels_match(ctx: &Ctx, ev: &Value, labels: &[String]) -> bool {
    if labels.is_empty() {
        return true;
    }
    let attrs: std::collections::BTreeMap<String, String> = ev["Actor"]["Attributes"]
        .as_object()
        .map(|m| {
            m.iter()
                .map(|(k, v)| (k.clone(), v.as_str().unwrap_or_default().to_string()))
                .collect()
        })
        .unwrap_or_default();
    if labels.iter().all(|l| label_matches(&attrs, l)) {
        return true;
    }
    let Some(id) = ev["Actor"]["ID"].as_str() else {
        return false;
    };
    let row = ctx
        .engine
        .db()
        .ok()
        .and_then(|db| db.get(id).ok().flatten());
    row.is_some_and(|r| labels.iter().all(|l| label_matches(&r.labels, l)))
}

pub async fn events(ctx: &Arc<Ctx>, r: &Req) -> Result<Response<Body>, ApiError> {
    let mut args: Vec<String> = vec!["events".into(), "--format".into(), "json".into()];
    for k in ["since", "until"] {
        if let Some(v) = r.q(k).filter(|s| !s.is_empty()) {
            args.extend([format!("--{k}"), v.to_string()]);
        }
    }
    let mut labels = Vec::new();
    for (k, v) in filters(r)? {
        if k == "label" {
            labels.push(v);
        } else if PASSED.contains(&k.as_str()) {
            args.extend(["--filter".into(), format!("{k}={v}")]);
        } else {
            return Err(ApiError::bad(format!("invalid filter '{k}'")));
        }
    }
    let mut child = ctx
        .cmd()
        .args(&args)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|e| ApiError::internal(format!("run berth events: {e}")))?;
    let stdout = child.stdout.take().expect("piped");
    let mut lines = tokio::io::BufReader::new(stdout).lines();
    let (resp, tx) = reply::stream("application/json");
    let ctx = ctx.clone();
    tokio::spawn(async move {
        loop {
            tokio::select! {
                l = lines.next_line() => {
                    let Ok(Some(l)) = l else { break };
                    let Ok(ev) = serde_json::from_str::<Value>(&l) else { continue };
                    let ev = docker_event(ev);
                    let c2 = ctx.clone();
                    let (keep, ev) = match tokio::task::spawn_blocking(move || (labels_match(&c2, &ev, &labels), ev, labels)).await {
                        Ok((k, ev, l)) => { labels = l; (k, ev) }
                        Err(_) => break,
                    };
                    if keep && tx.send(Bytes::from(format!("{ev}\n"))).await.is_err() {
                        break;
                    }
                }
                // The client went away while no event came.
                _ = tx.closed() => break,
            }
        }
        // kill_on_drop ends a following `berth events`.
        let _ = child.start_kill();
        let _ = child.wait().await;
    });
    let mut resp = resp;
    *resp.status_mut() = StatusCode::OK;
    Ok(resp)
}
