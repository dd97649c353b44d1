//! `/images/...`: reads through `berth images`/`inspect` (their JSON),
//! changes through `berth pull`, `tag`, `rmi`.

use std::sync::Arc;

use bytes::Bytes;
use hyper::{Response, StatusCode};
use serde_json::{json, Value};

use crate::berth::Ctx;
use crate::reply::{self, ApiError, Body};
use crate::routes::Req;

fn sha(id: &str) -> String {
    if id.starts_with("sha256:") {
        id.to_string()
    } else {
        format!("sha256:{id}")
    }
}

/// RFC 3339 to unix seconds (0 when unreadable).
fn unix(t: &str) -> i64 {
    berth_engine::events::parse_rfc3339_nanos(t).map_or(0, |n| n.div_euclid(1_000_000_000))
}

pub async fn list(ctx: &Arc<Ctx>) -> Result<Response<Body>, ApiError> {
    let out = ctx
        .berth(&["images".into(), "--format".into(), "json".into()])
        .await?;
    let v: Value = serde_json::from_str(&out)
        .map_err(|e| ApiError::internal(format!("read `berth images` output: {e}")))?;
    let list: Vec<Value> = v
        .as_array()
        .into_iter()
        .flatten()
        .map(|i| {
            let digest = i["Digest"].as_str().unwrap_or_default();
            let tags = i["Names"].clone();
            let digests: Vec<String> = tags
                .as_array()
                .into_iter()
                .flatten()
                .filter_map(|n| n.as_str())
                .map(|n| {
                    let repo = match n.rfind(':') {
                        Some(c) if !n[c..].contains('/') => &n[..c],
                        _ => n,
                    };
                    format!("{repo}@{digest}")
                })
                .collect();
            json!({
                "Id": sha(i["Id"].as_str().unwrap_or_default()),
                "ParentId": "",
                "RepoTags": tags,
                "RepoDigests": digests,
                "Created": unix(i["Created"].as_str().unwrap_or_default()),
                "Size": i["Size"],
                "VirtualSize": i["Size"],
                "SharedSize": -1,
                "Labels": {},
                "Containers": -1,
            })
        })
        .collect();
    Ok(reply::json(StatusCode::OK, &Value::Array(list)))
}

pub async fn inspect(ctx: &Arc<Ctx>, name: &str) -> Result<Response<Body>, ApiError> {
    let out = ctx
        .berth(&[
            "inspect".into(),
            "--type".into(),
            "image".into(),
            name.into(),
        ])
        .await
        .map_err(|_| ApiError::not_found(format!("No such image: {name}")))?;
    let v: Value = serde_json::from_str(&out)
        .map_err(|e| ApiError::internal(format!("read `berth inspect` output: {e}")))?;
    let mut doc = v[0].clone();
    if let Some(id) = doc["Id"].as_str() {
        doc["Id"] = sha(id).into();
    }
    if let Some(c) = doc["Created"].as_str() {
        if c.is_empty() {
            doc["Created"] = "1970-01-01T00:00:00Z".into();
        }
    }
    doc.as_object_mut().map(|o| {
        o.remove("LowerDirs");
        o.remove("Layers");
        o.remove("Digest");
        o.remove("ManifestMediaType")
    });
    Ok(reply::json(StatusCode::OK, &doc))
}

/// `images/create?fromImage=NAME&tag=TAG`: `berth pull`, reported as
/// Docker's JSON progress stream (status lines, `error` on failure).
pub async fn pull(ctx: &Arc<Ctx>, r: &Req) -> Result<Response<Body>, ApiError> {
    if r.q("fromSrc").is_some() {
        return Err(ApiError::new(
            StatusCode::NOT_IMPLEMENTED,
            "berth's Docker API does not implement POST /images/create?fromSrc (import) yet",
        ));
    }
    let Some(from) = r.q("fromImage").filter(|s| !s.is_empty()) else {
        return Err(ApiError::bad("images/create needs fromImage"));
    };
    let tag = r.q("tag").unwrap_or("").to_string();
    let name = if tag.is_empty() {
        from.to_string()
    } else if tag.starts_with("sha256:") {
        format!("{from}@{tag}")
    } else {
        format!("{from}:{tag}")
    };
    let (resp, tx) = reply::stream("application/json");
    let ctx = ctx.clone();
    tokio::spawn(async move {
        let line = |v: Value| Bytes::from(format!("{v}\r\n"));
        let shown = if tag.is_empty() {
            "latest"
        } else {
            tag_of(&name)
        };
        let _ = tx
            .send(line(
                json!({"status": format!("Pulling from {}", repo_of(&name)), "id": shown}),
            ))
            .await;
        match ctx.berth(&["pull".into(), name.clone()]).await {
            Ok(out) => {
                if let Some(id) = out.split_whitespace().last() {
                    let _ = tx
                        .send(line(json!({"status": format!("Digest: {}", sha(id))})))
                        .await;
                }
                let _ = tx
                    .send(line(
                        json!({"status": format!("Status: Downloaded newer image for {name}")}),
                    ))
                    .await;
            }
            Err(e) => {
                let _ = tx
                    .send(line(
                        json!({"errorDetail": {"message": e.message}, "error": e.message}),
                    ))
                    .await;
            }
        }
    });
    Ok(resp)
}

fn repo_of(name: &str) -> &str {
    match name.rfind(':') {
        Some(c) if !name[c..].contains('/') => &name[..c],
        _ => name,
    }
}

fn tag_of(name: &str) -> &str {
    match name.rfind(':') {
        Some(c) if !name[c..].contains('/') => &name[c + 1..],
        _ => "latest",
    }
}

pub async fn tag(ctx: &Arc<Ctx>, r: &Req, name: &str) -> Result<Response<Body>, ApiError> {
    let Some(repo) = r.q("repo").filter(|s| !s.is_empty()) else {
        return Err(ApiError::bad("tag needs repo"));
    };
    let target = match r.q("tag").filter(|s| !s.is_empty()) {
        Some(t) => format!("{repo}:{t}"),
        None => repo.to_string(),
    };
    ctx.berth(&["tag".into(), name.into(), target]).await?;
    Ok(reply::empty(StatusCode::CREATED))
}

pub async fn remove(ctx: &Arc<Ctx>, r: &Req, name: &str) -> Result<Response<Body>, ApiError> {
    let mut args = vec!["rmi".to_string()];
    if r.flag("force") {
        args.push("--force".into());
    }
    args.push(name.into());
    ctx.berth(&args).await.map_err(|e| {
        if e.status == StatusCode::NOT_FOUND {
            ApiError::not_found(format!("No such image: {name}"))
        } else {
            e
        }
    })?;
    Ok(reply::json(StatusCode::OK, &json!([{"Untagged": name}])))
}
