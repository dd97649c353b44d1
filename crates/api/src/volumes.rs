//! `/volumes/...`: reads from the engine's volume store, changes through
//! `berth volume` commands (which record the events).

use std::sync::Arc;

use berth_engine::volume_store::{self, Volume};
use hyper::{Response, StatusCode};
use serde_json::{json, Value};

use crate::berth::Ctx;
use crate::reply::{self, ApiError, Body};
use crate::routes::{bool_filter, filters, label_matches, only_filters, Req};

/// Docker's volume document (the Engine API leaves no options as null
/// and has no `Anonymous`).
pub fn doc(v: &Volume) -> Value {
    let mut d = v.docker_json();
    if d["Options"].as_object().is_some_and(|o| o.is_empty()) {
        d["Options"] = Value::Null;
    }
    if let Some(o) = d.as_object_mut() {
        o.remove("Anonymous");
    }
    d
}

async fn get(ctx: &Ctx, name: &str) -> Result<Volume, ApiError> {
    let n = name.to_string();
    ctx.read(move |e| {
        volume_store::get(e, &n)
            .map_err(ApiError::engine)?
            .ok_or_else(|| ApiError::not_found(format!("get {n}: no such volume")))
    })
    .await
}

fn keep(e: &berth_engine::Engine, v: &Volume, f: &[(String, String)]) -> Result<bool, ApiError> {
    for (k, val) in f {
        let ok = match k.as_str() {
            "name" => v.name.contains(val.as_str()),
            "label" => label_matches(&v.labels, val),
            "driver" => v.driver == *val,
            "dangling" => {
                let used = !volume_store::users(e, &v.name)
                    .map_err(ApiError::engine)?
                    .is_empty();
                bool_filter(k, val)? != used
            }
            _ => return Err(ApiError::bad(format!("invalid filter '{k}'"))),
        };
        if !ok {
            return Ok(false);
        }
    }
    Ok(true)
}

async fn matching(ctx: &Ctx, f: Vec<(String, String)>) -> Result<Vec<Volume>, ApiError> {
    ctx.read(move |e| {
        let mut out = Vec::new();
        for v in volume_store::list(e).map_err(ApiError::engine)? {
            if keep(e, &v, &f)? {
                out.push(v);
            }
        }
        Ok(out)
    })
    .await
}

/// `GET /volumes`.
pub async fn list(ctx: &Arc<Ctx>, r: &Req) -> Result<Response<Body>, ApiError> {
    let vs = matching(ctx, filters(r)?).await?;
    Ok(reply::json(
        StatusCode::OK,
        &json!({"Volumes": vs.iter().map(doc).collect::<Vec<_>>(), "Warnings": []}),
    ))
}

/// `GET /volumes/{name}`.
pub async fn inspect(ctx: &Arc<Ctx>, name: &str) -> Result<Response<Body>, ApiError> {
    Ok(reply::json(StatusCode::OK, &doc(&get(ctx, name).await?)))
}

/// `POST /volumes/create`: an existing volume of that name is answered
/// as is (as Docker's local driver does).
pub async fn create(ctx: &Arc<Ctx>, r: &mut Req) -> Result<Response<Body>, ApiError> {
    let body = r.json().await?;
    if !body.is_object() && !body.is_null() {
        return Err(ApiError::bad(
            "volume create: the body must be a JSON object",
        ));
    }
    let name = body["Name"].as_str().unwrap_or_default().to_string();
    if !name.is_empty() {
        if let Ok(v) = get(ctx, &name).await {
            return Ok(reply::json(StatusCode::CREATED, &doc(&v)));
        }
    }
    let mut a: Vec<String> = vec!["volume".into(), "create".into()];
    if let Some(d) = body["Driver"].as_str().filter(|s| !s.is_empty()) {
        a.extend(["--driver".into(), d.into()]);
    }
    for (k, v) in body["DriverOpts"].as_object().into_iter().flatten() {
        a.extend([
            "--opt".into(),
            format!("{k}={}", v.as_str().unwrap_or_default()),
        ]);
    }
    for (k, v) in body["Labels"].as_object().into_iter().flatten() {
        a.extend([
            "--label".into(),
            format!("{k}={}", v.as_str().unwrap_or_default()),
        ]);
    }
    if !name.is_empty() {
        a.push(name.clone());
    }
    let out = ctx.berth(&a).await?;
    let made = out.lines().last().unwrap_or_default().trim().to_string();
    let v = get(ctx, if name.is_empty() { &made } else { &name }).await?;
    Ok(reply::json(StatusCode::CREATED, &doc(&v)))
}

/// `DELETE /volumes/{name}`: 409 while a container uses it.
pub async fn remove(ctx: &Arc<Ctx>, r: &Req, name: &str) -> Result<Response<Body>, ApiError> {
    let v = get(ctx, name).await?;
    let mut a: Vec<String> = vec!["volume".into(), "rm".into()];
    if r.flag("force") {
        a.push("--force".into());
    }
    a.push(v.name);
    ctx.berth(&a).await?;
    Ok(reply::empty(StatusCode::NO_CONTENT))
}

/// `POST /volumes/prune`: the unused volumes matching the filters.
pub async fn prune(ctx: &Arc<Ctx>, r: &Req) -> Result<Response<Body>, ApiError> {
    let mut f = filters(r)?;
    only_filters(&f, &["label"], "volume prune")?;
    f.push(("dangling".into(), "true".into()));
    let mut deleted = Vec::new();
    for v in matching(ctx, f).await? {
        // One taken by a container meanwhile stays.
        if ctx
            .berth(&["volume".into(), "rm".into(), v.name.clone()])
            .await
            .is_ok()
        {
            deleted.push(v.name);
        }
    }
    Ok(reply::json(
        StatusCode::OK,
        &json!({"VolumesDeleted": deleted, "SpaceReclaimed": 0}),
    ))
}
