//! `/images/...`: reads through `berth images`/`inspect`/`history` (their
//! JSON), changes through `berth pull`, `tag`, `rmi`, `image prune`,
//! `load`, `build`; `save` streams `berth save`; `push` runs berth-image's
//! push in this process (it changes nothing local) for its progress.

mod archive;
mod build;
mod push;

pub use archive::{load, save};
pub use build::{build, session};
pub use push::push;

use std::sync::Arc;

use bytes::Bytes;
use hyper::{Response, StatusCode};
use serde_json::{json, Value};

use crate::berth::Ctx;
use crate::reply::{self, ApiError, Body};
use crate::routes::Req;

/// Every value of a repeated query parameter (`t=a&t=b`, `names=...`).
pub(crate) fn query_all(r: &Req, key: &str) -> Vec<String> {
    r.inner
        .uri()
        .query()
        .unwrap_or("")
        .split('&')
        .filter_map(|p| {
            let (k, v) = p.split_once('=').unwrap_or((p, ""));
            (crate::routes::decode(k) == key).then(|| crate::routes::decode(v))
        })
        .filter(|v| !v.is_empty())
        .collect()
}

/// A stored name as Docker shows it: `docker.io/library/x:t` is `x:t`,
/// `docker.io/u/x:t` is `u/x:t`.
pub(crate) fn familiar(name: &str) -> &str {
    name.strip_prefix("docker.io/library/")
        .or_else(|| name.strip_prefix("docker.io/"))
        .unwrap_or(name)
}

/// One line of Docker's JSON progress streams.
pub(crate) fn line(v: Value) -> Bytes {
    Bytes::from(format!("{v}\r\n"))
}

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

/// `GET /images/{name}/history`: `berth history --format json`, newest
/// first, in Docker's fields (the image itself has its ID and tags, the
/// older entries are `<missing>`, as Docker shows layers it has no image
/// for).
pub async fn history(ctx: &Arc<Ctx>, name: &str) -> Result<Response<Body>, ApiError> {
    let not_found = |e: ApiError| {
        if e.status == StatusCode::NOT_FOUND || e.message.contains("not known") {
            ApiError::not_found(format!("No such image: {name}"))
        } else {
            e
        }
    };
    let out = ctx
        .berth(&[
            "history".into(),
            "--format".into(),
            "json".into(),
            "--no-trunc".into(),
            name.into(),
        ])
        .await
        .map_err(not_found)?;
    let v: Value = serde_json::from_str(&out)
        .map_err(|e| ApiError::internal(format!("read `berth history` output: {e}")))?;
    let insp = ctx
        .berth(&[
            "inspect".into(),
            "--type".into(),
            "image".into(),
            name.into(),
        ])
        .await
        .map_err(not_found)?;
    let insp: Value = serde_json::from_str(&insp)
        .map_err(|e| ApiError::internal(format!("read `berth inspect` output: {e}")))?;
    let tags: Vec<Value> = insp[0]["RepoTags"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|t| t.as_str())
        .map(|t| Value::from(familiar(t)))
        .collect();
    let list: Vec<Value> = v
        .as_array()
        .into_iter()
        .flatten()
        .enumerate()
        .map(|(i, e)| {
            let id = e["id"].as_str().unwrap_or("<missing>");
            json!({
                "Id": if id == "<missing>" { id.to_string() } else { sha(id) },
                "Created": unix(e["created"].as_str().unwrap_or_default()),
                "CreatedBy": e["createdBy"],
                "Tags": if i == 0 && !tags.is_empty() { Value::from(tags.clone()) } else { Value::Null },
                "Size": e["size"],
                "Comment": e["comment"],
            })
        })
        .collect();
    Ok(reply::json(StatusCode::OK, &Value::Array(list)))
}

/// `POST /images/prune`: `berth image prune` (`dangling=false`: every
/// image no container uses, as `-a`); `ImagesDeleted` lists the names
/// untagged and the IDs deleted, `SpaceReclaimed` their sizes.
pub async fn prune(ctx: &Arc<Ctx>, r: &Req) -> Result<Response<Body>, ApiError> {
    let mut all = false;
    for (k, v) in crate::routes::filters(r)? {
        match (k.as_str(), v.as_str()) {
            ("dangling", "true" | "1") => all = false,
            ("dangling", "false" | "0") => all = true,
            ("dangling", v) => {
                return Err(ApiError::bad(format!(
                    "invalid filter 'dangling={v}': use true or false"
                )))
            }
            (k, _) => {
                return Err(ApiError::bad(format!(
                    "image prune: the filter {k:?} is not supported by berth (only dangling)"
                )))
            }
        }
    }
    let before = ctx
        .berth(&["images".into(), "--format".into(), "json".into()])
        .await?;
    let before: Value = serde_json::from_str(&before)
        .map_err(|e| ApiError::internal(format!("read `berth images` output: {e}")))?;
    let mut args: Vec<String> = vec!["image".into(), "prune".into(), "--force".into()];
    if all {
        args.push("--all".into());
    }
    let out = ctx.berth(&args).await?;
    let mut deleted = Vec::new();
    let mut reclaimed = 0u64;
    for id in out.split_whitespace() {
        let img = before.as_array().into_iter().flatten().find(|i| {
            i["Id"]
                .as_str()
                .is_some_and(|x| x.trim_start_matches("sha256:") == id)
        });
        if let Some(img) = img {
            for n in img["Names"].as_array().into_iter().flatten() {
                if let Some(n) = n.as_str() {
                    deleted.push(json!({ "Untagged": familiar(n) }));
                }
            }
            reclaimed += img["Size"].as_u64().unwrap_or(0);
        }
        deleted.push(json!({ "Deleted": sha(id) }));
    }
    Ok(reply::json(
        StatusCode::OK,
        &json!({
            "ImagesDeleted": if deleted.is_empty() { Value::Null } else { Value::from(deleted) },
            "SpaceReclaimed": reclaimed,
        }),
    ))
}

/// `GET /images/search?term=&limit=`: `berth search` (the registry's
/// `/v1/search`); a registry without it is an error saying so.
pub async fn search(ctx: &Arc<Ctx>, r: &Req) -> Result<Response<Body>, ApiError> {
    let Some(term) = r.q("term").filter(|t| !t.is_empty()) else {
        return Err(ApiError::bad("images/search needs a term (term=)"));
    };
    if !crate::routes::filters(r)?.is_empty() {
        return Err(ApiError::bad(
            "image search: filters are not supported by berth",
        ));
    }
    let limit = match r.q("limit").filter(|l| !l.is_empty()) {
        Some(l) => l
            .parse::<usize>()
            .ok()
            .filter(|n| (1..=100).contains(n))
            .ok_or_else(|| ApiError::bad(format!("invalid limit {l:?}: use 1 to 100")))?,
        None => 25,
    };
    let out = ctx
        .berth(&[
            "search".into(),
            "--format".into(),
            "json".into(),
            "--limit".into(),
            limit.to_string(),
            term.into(),
        ])
        .await?;
    let v: Value = serde_json::from_str(&out)
        .map_err(|e| ApiError::internal(format!("read `berth search` output: {e}")))?;
    Ok(reply::json(StatusCode::OK, &v))
}
