//! `/networks/...`: reads from the engine's network store, changes
//! through `berth network` commands (which record the events).

use std::sync::Arc;

use berth_engine::networks::{self, Network};
use hyper::{Response, StatusCode};
use serde_json::{json, Value};

use crate::berth::Ctx;
use crate::reply::{self, ApiError, Body};
use crate::routes::{bool_filter, filters, label_matches, only_filters, Req};

/// A network by name or ID prefix (404 in Docker's words when none).
async fn find(ctx: &Ctx, reference: &str) -> Result<Network, ApiError> {
    let r = reference.to_string();
    ctx.read(move |e| {
        networks::find(e, &r).map_err(|err| match err.to_string() {
            m if m.contains("no such") || m.contains("not found") => {
                ApiError::not_found(format!("network {r} not found"))
            }
            m => ApiError::from_message(m),
        })
    })
    .await
}

/// berth's network inspect document in Docker's shape: addresses with
/// their prefix length, endpoints named.
fn docker_network(e: &berth_engine::Engine, n: &Network) -> Value {
    let mut doc = networks::inspect_json(e, n);
    let prefix = n.subnet.prefix_len();
    if let Some(cs) = doc["Containers"].as_object_mut() {
        for c in cs.values_mut() {
            if let Some(ip) = c["IPv4Address"].as_str().filter(|s| !s.is_empty()) {
                c["IPv4Address"] = format!("{ip}/{prefix}").into();
            }
            c["EndpointID"] = "".into();
        }
    }
    doc["Attachable"] = true.into();
    doc
}

fn keep(e: &berth_engine::Engine, n: &Network, f: &[(String, String)]) -> Result<bool, ApiError> {
    for (k, v) in f {
        let ok = match k.as_str() {
            "name" => n.name.contains(v.as_str()),
            "id" => n.id.starts_with(v.as_str()),
            "label" => label_matches(&n.labels, v),
            "driver" => v == "bridge",
            "scope" => v == "local",
            "type" => match v.as_str() {
                "custom" => n.name != berth_engine::networks::DEFAULT_NETWORK,
                "builtin" => n.name == berth_engine::networks::DEFAULT_NETWORK,
                _ => return Err(ApiError::bad(format!("invalid filter 'type={v}'"))),
            },
            "dangling" => {
                let used = !networks::endpoints_on(e, &n.name)
                    .map_err(ApiError::engine)?
                    .is_empty();
                bool_filter(k, v)? != used
            }
            _ => return Err(ApiError::bad(format!("invalid filter '{k}'"))),
        };
        if !ok {
            return Ok(false);
        }
    }
    Ok(true)
}

/// `GET /networks`.
pub async fn list(ctx: &Arc<Ctx>, r: &Req) -> Result<Response<Body>, ApiError> {
    let f = filters(r)?;
    let v = ctx
        .read(move |e| {
            let mut out = Vec::new();
            for n in networks::list(e).map_err(ApiError::engine)? {
                if keep(e, &n, &f)? {
                    out.push(docker_network(e, &n));
                }
            }
            Ok(out)
        })
        .await?;
    Ok(reply::json(StatusCode::OK, &Value::Array(v)))
}

/// `GET /networks/{id}`.
pub async fn inspect(ctx: &Arc<Ctx>, id: &str) -> Result<Response<Body>, ApiError> {
    let n = find(ctx, id).await?;
    let v = ctx.read(move |e| Ok(docker_network(e, &n))).await?;
    Ok(reply::json(StatusCode::OK, &v))
}

/// The `berth network create` command line for Docker's create body.
pub fn create_args(body: &Value) -> Result<Vec<String>, ApiError> {
    let Some(name) = body["Name"].as_str().filter(|s| !s.is_empty()) else {
        return Err(ApiError::bad("network create: the body has no Name"));
    };
    let mut a: Vec<String> = vec!["network".into(), "create".into()];
    if let Some(d) = body["Driver"].as_str().filter(|s| !s.is_empty()) {
        a.extend(["--driver".into(), d.into()]);
    }
    if body["Internal"].as_bool() == Some(true) {
        a.push("--internal".into());
    }
    if body["EnableIPv6"].as_bool() == Some(true) {
        a.push("--ipv6".into());
    }
    let ipam = &body["IPAM"];
    if let Some(d) = ipam["Driver"]
        .as_str()
        .filter(|d| !d.is_empty() && *d != "default")
    {
        return Err(ApiError::bad(format!(
            "network create {name}: IPAM driver {d} is not supported (only default)"
        )));
    }
    for c in ipam["Config"].as_array().into_iter().flatten() {
        if let Some(s) = c["Subnet"].as_str().filter(|s| !s.is_empty()) {
            a.extend(["--subnet".into(), s.into()]);
        }
        if let Some(g) = c["Gateway"].as_str().filter(|s| !s.is_empty()) {
            a.extend(["--gateway".into(), g.into()]);
        }
        for k in ["IPRange", "AuxiliaryAddresses"] {
            if !c[k].is_null() && c[k] != "" && c[k] != json!({}) {
                return Err(ApiError::bad(format!(
                    "network create {name}: IPAM {k} is not supported by berth"
                )));
            }
        }
    }
    for (k, v) in body["Options"].as_object().into_iter().flatten() {
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
    a.push(name.into());
    Ok(a)
}

/// `POST /networks/create`.
pub async fn create(ctx: &Arc<Ctx>, r: &mut Req) -> Result<Response<Body>, ApiError> {
    let body = r.json().await?;
    if !body.is_object() {
        return Err(ApiError::bad(
            "network create: the body must be a JSON object",
        ));
    }
    let args = create_args(&body)?;
    let name = body["Name"].as_str().unwrap_or_default().to_string();
    let n2 = name.clone();
    let exists = ctx
        .read(move |e| Ok(networks::find(e, &n2).is_ok_and(|n| n.name == n2)))
        .await?;
    if exists {
        return Err(ApiError::conflict(format!(
            "network with name {name} already exists"
        )));
    }
    ctx.berth(&args).await?;
    let n = find(ctx, &name).await?;
    Ok(reply::json(
        StatusCode::CREATED,
        &json!({"Id": n.id, "Warning": ""}),
    ))
}

/// `DELETE /networks/{id}`.
pub async fn remove(ctx: &Arc<Ctx>, id: &str) -> Result<Response<Body>, ApiError> {
    let n = find(ctx, id).await?;
    if n.name == berth_engine::networks::DEFAULT_NETWORK {
        return Err(ApiError::new(
            StatusCode::FORBIDDEN,
            format!("{} is a pre-defined network and cannot be removed", n.name),
        ));
    }
    ctx.berth(&["network".into(), "rm".into(), n.name]).await?;
    Ok(reply::empty(StatusCode::NO_CONTENT))
}

/// `POST /networks/{id}/connect` and `/disconnect`.
pub async fn connect(
    ctx: &Arc<Ctx>,
    r: &mut Req,
    id: &str,
    on: bool,
) -> Result<Response<Body>, ApiError> {
    let body = r.json().await?;
    let Some(container) = body["Container"].as_str().filter(|s| !s.is_empty()) else {
        return Err(ApiError::bad("the body has no Container"));
    };
    let n = find(ctx, id).await?;
    let row = crate::containers::find(ctx, container).await?;
    let mut args: Vec<String> = vec!["network".into()];
    if on {
        args.push("connect".into());
        let ep = &body["EndpointConfig"];
        for a in ep["Aliases"].as_array().into_iter().flatten() {
            if let Some(a) = a.as_str().filter(|a| !a.is_empty()) {
                args.extend(["--alias".into(), a.into()]);
            }
        }
        if let Some(ip) = ep["IPAMConfig"]["IPv4Address"]
            .as_str()
            .filter(|s| !s.is_empty())
        {
            args.extend(["--ip".into(), ip.into()]);
        }
    } else {
        args.push("disconnect".into());
    }
    args.extend([n.name, row.id]);
    ctx.berth(&args).await?;
    Ok(reply::empty(StatusCode::OK))
}

/// `POST /networks/prune`: every custom network no container uses (with
/// `label` filters: only those).
pub async fn prune(ctx: &Arc<Ctx>, r: &Req) -> Result<Response<Body>, ApiError> {
    let mut f = filters(r)?;
    only_filters(&f, &["label"], "network prune")?;
    f.push(("type".into(), "custom".into()));
    f.push(("dangling".into(), "true".into()));
    let names = ctx
        .read(move |e| {
            let mut out = Vec::new();
            for n in networks::list(e).map_err(ApiError::engine)? {
                if keep(e, &n, &f)? {
                    out.push(n.name);
                }
            }
            Ok(out)
        })
        .await?;
    let mut deleted = Vec::new();
    for n in names {
        // One in use by now stays (as Docker's prune).
        if ctx
            .berth(&["network".into(), "rm".into(), n.clone()])
            .await
            .is_ok()
        {
            deleted.push(n);
        }
    }
    Ok(reply::json(
        StatusCode::OK,
        &json!({ "NetworksDeleted": deleted }),
    ))
}
