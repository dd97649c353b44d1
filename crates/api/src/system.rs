//! `GET /system/df` (what the images, containers, volumes and build
//! cache take, as `docker system df` reads it) and `POST /auth` (checks
//! credentials against a registry, storing nothing, as dockerd does).

use std::collections::HashMap;
use std::sync::Arc;

use berth_engine::{lifecycle, volume_store};
use hyper::{Response, StatusCode};
use serde_json::{json, Value};

use crate::berth::Ctx;
use crate::manage::dir_size;
use crate::reply::{self, ApiError, Body};
use crate::routes::Req;

fn sha(id: &str) -> String {
    if id.starts_with("sha256:") || id.is_empty() {
        id.to_string()
    } else {
        format!("sha256:{id}")
    }
}

/// `GET /system/df`.
pub async fn df(ctx: &Arc<Ctx>) -> Result<Response<Body>, ApiError> {
    let out = ctx
        .berth(&["images".into(), "--format".into(), "json".into()])
        .await?;
    let images: Value = serde_json::from_str(&out)
        .map_err(|e| ApiError::internal(format!("read `berth images` output: {e}")))?;
    let images = images.as_array().cloned().unwrap_or_default();
    let (layers, containers, volumes) = ctx
        .read(|e| {
            let layers = berth_image::Store::open(&e.root)
                .ok()
                .and_then(|s| berth_image::gc::disk_usage(&s).ok())
                .map_or(0, |u| u.blob_bytes + u.snapshot_bytes);
            let mut cs = Vec::new();
            for row in e
                .db()
                .map_err(ApiError::engine)?
                .list()
                .map_err(ApiError::engine)?
            {
                let row = lifecycle::refresh(e, row).map_err(ApiError::engine)?;
                let rw = dir_size(&berth_engine::manage::upper_dir(e, &row.id));
                cs.push((row, rw));
            }
            let mut vs = Vec::new();
            for v in volume_store::list(e).map_err(ApiError::engine)? {
                let refs = volume_store::users(e, &v.name)
                    .map_err(ApiError::engine)?
                    .len();
                let size = dir_size(&v.mountpoint);
                vs.push((v, refs, size));
            }
            Ok((layers, cs, vs))
        })
        .await?;
    let mut used: HashMap<String, i64> = HashMap::new();
    for (row, _) in &containers {
        *used.entry(sha(&row.image_id)).or_default() += 1;
    }
    let image_size: HashMap<String, i64> = images
        .iter()
        .map(|i| {
            (
                sha(i["Id"].as_str().unwrap_or_default()),
                i["Size"].as_i64().unwrap_or(0),
            )
        })
        .collect();
    let image_docs: Vec<Value> = images
        .iter()
        .map(|i| {
            let id = sha(i["Id"].as_str().unwrap_or_default());
            json!({
                "Id": id,
                "ParentId": "",
                "RepoTags": i["Names"],
                "RepoDigests": [],
                "Created": berth_engine::events::parse_rfc3339_nanos(i["Created"].as_str().unwrap_or_default())
                    .map_or(0, |n| n.div_euclid(1_000_000_000)),
                "Size": i["Size"],
                "VirtualSize": i["Size"],
                "SharedSize": 0,
                "Labels": {},
                "Containers": used.get(&id).copied().unwrap_or(0),
            })
        })
        .collect();
    let container_docs: Vec<Value> = containers
        .iter()
        .map(|(row, rw)| {
            let base = image_size.get(&sha(&row.image_id)).copied().unwrap_or(0);
            json!({
                "Id": row.id,
                "Names": [format!("/{}", row.name)],
                "Image": row.image,
                "ImageID": sha(&row.image_id),
                "Command": berth_engine::inspect::command_text(row),
                "Created": row.created.div_euclid(1000),
                "Ports": [],
                "SizeRw": rw,
                "SizeRootFs": *rw as i64 + base,
                "Labels": row.labels,
                "State": row.status.as_str(),
                "Status": berth_engine::inspect::status_text(row, berth_engine::now_ms()),
                "HostConfig": {"NetworkMode": "default"},
                "NetworkSettings": {"Networks": {}},
                "Mounts": [],
            })
        })
        .collect();
    let volume_docs: Vec<Value> = volumes
        .iter()
        .map(|(v, refs, size)| {
            let mut d = crate::volumes::doc(v);
            d["UsageData"] = json!({"Size": size, "RefCount": refs});
            d
        })
        .collect();
    Ok(reply::json(
        StatusCode::OK,
        &json!({
            "LayersSize": layers,
            "Images": image_docs,
            "Containers": container_docs,
            "Volumes": volume_docs,
            // berth keeps no build cache of its own.
            "BuildCache": [],
            "BuilderSize": 0,
        }),
    ))
}

/// A registry host from Docker's `serveraddress` (a host, or a URL such
/// as `https://index.docker.io/v1/`).
fn registry_host(addr: &str) -> String {
    let a = addr.trim();
    let a = a
        .strip_prefix("https://")
        .or_else(|| a.strip_prefix("http://"))
        .unwrap_or(a);
    let host = a.split('/').next().unwrap_or_default();
    match host {
        "" | "index.docker.io" | "registry-1.docker.io" => "docker.io".into(),
        h => h.to_string(),
    }
}

/// `POST /auth`: `{"username","password","serveraddress"}` checked with
/// the registry's `/v2/` (the registries configuration decides HTTP or
/// TLS, as for pulls); nothing is stored.
pub async fn auth(ctx: &Arc<Ctx>, r: &mut Req) -> Result<Response<Body>, ApiError> {
    let body = r.json().await?;
    if !body.is_object() {
        return Err(ApiError::bad("auth: the body must be a JSON object"));
    }
    let user = body["username"].as_str().unwrap_or_default().to_string();
    let pass = body["password"].as_str().unwrap_or_default().to_string();
    if user.is_empty() {
        return Err(ApiError::bad("auth: the username is missing"));
    }
    let host = registry_host(body["serveraddress"].as_str().unwrap_or_default());
    let h = host.clone();
    ctx.read(move |e| {
        let mut opts = berth_image::registry::RegistryOptions::new(&e.root);
        opts.creds = Some((user.clone(), pass));
        match berth_image::registry::Client::connect(&h, &opts).and_then(|c| c.check_login()) {
            Ok(()) => Ok(()),
            Err(berth_image::registry::RegistryError::Unauthorized { .. }) => Err(ApiError::new(
                StatusCode::UNAUTHORIZED,
                format!("login to {h} as {user}: unauthorized: incorrect username or password"),
            )),
            Err(err) => Err(ApiError::internal(format!("login to {h}: {err}"))),
        }
    })
    .await?;
    Ok(reply::json(
        StatusCode::OK,
        &json!({"Status": "Login Succeeded", "IdentityToken": ""}),
    ))
}
