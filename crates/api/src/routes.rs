//! Routing: `/vX.Y/` prefixes, the endpoints served, 501 for the rest.

use std::collections::HashMap;
use std::sync::Arc;

use bytes::Bytes;
use http_body_util::BodyExt;
use hyper::body::Incoming;
use hyper::{Method, Request, Response, StatusCode};
use serde_json::{json, Value};

use crate::berth::Ctx;
use crate::reply::{self, ApiError, Body};
use crate::{
    archive, containers, exec, images, manage, networks, resize, stats, system, volumes,
    API_VERSION, MIN_API_VERSION,
};

/// Request bodies larger than this are refused (413).
const MAX_BODY: usize = 4 << 20;

/// One parsed request.
pub struct Req {
    pub method: Method,
    pub path: String,
    pub query: HashMap<String, String>,
    pub inner: Request<Incoming>,
}

impl Req {
    pub fn q(&self, k: &str) -> Option<&str> {
        self.query.get(k).map(String::as_str)
    }
    /// Every value of a repeated query parameter (`changes=A&changes=B`).
    pub fn q_all(&self, k: &str) -> Vec<String> {
        self.inner
            .uri()
            .query()
            .unwrap_or("")
            .split('&')
            .filter_map(|p| p.split_once('='))
            .filter(|(key, _)| decode(key) == k)
            .map(|(_, v)| decode(v))
            .collect()
    }
    /// A boolean query parameter (`1`, `true`).
    pub fn flag(&self, k: &str) -> bool {
        matches!(self.q(k), Some("1" | "true" | "True"))
    }
    /// The JSON body (400 with a message when malformed).
    pub async fn json(&mut self) -> Result<Value, ApiError> {
        let body = self.inner.body_mut();
        let mut buf = Vec::new();
        while let Some(f) = body.frame().await {
            let f = f.map_err(|e| ApiError::bad(format!("read the request body: {e}")))?;
            if let Some(d) = f.data_ref() {
                buf.extend_from_slice(d);
                if buf.len() > MAX_BODY {
                    return Err(ApiError::new(
                        StatusCode::PAYLOAD_TOO_LARGE,
                        format!("request body over {MAX_BODY} bytes"),
                    ));
                }
            }
        }
        if buf.iter().all(u8::is_ascii_whitespace) {
            return Ok(Value::Null);
        }
        serde_json::from_slice(&buf)
            .map_err(|e| ApiError::bad(format!("malformed JSON in the request body: {e}")))
    }
}

/// Docker's `filters` query: `{"name":["x"],"label":["k=v"]}` (or the
/// old `{"name":{"x":true}}`), as (key, value) pairs.
pub fn filters(r: &Req) -> Result<Vec<(String, String)>, ApiError> {
    let Some(f) = r.q("filters").filter(|s| !s.is_empty()) else {
        return Ok(vec![]);
    };
    let v: Value = serde_json::from_str(f)
        .map_err(|e| ApiError::bad(format!("invalid filters {f:?}: {e}")))?;
    let Some(map) = v.as_object() else {
        return Err(ApiError::bad(format!(
            "invalid filters {f:?}: expected a JSON object"
        )));
    };
    let mut out = Vec::new();
    for (k, vals) in map {
        let list: Vec<String> = match vals {
            Value::Array(a) => a
                .iter()
                .filter_map(|x| x.as_str().map(String::from))
                .collect(),
            Value::Object(o) => o.keys().cloned().collect(),
            Value::String(s) => vec![s.clone()],
            _ => vec![],
        };
        for x in list {
            out.push((k.clone(), x));
        }
    }
    Ok(out)
}

/// A boolean filter's value (`dangling=true|1|false|0`).
pub fn bool_filter(k: &str, v: &str) -> Result<bool, ApiError> {
    match v {
        "true" | "1" => Ok(true),
        "false" | "0" => Ok(false),
        _ => Err(ApiError::bad(format!("invalid filter '{k}={v}'"))),
    }
}

/// Refuses the filters not in `allowed` (the prune endpoints take few).
pub fn only_filters(f: &[(String, String)], allowed: &[&str], what: &str) -> Result<(), ApiError> {
    match f.iter().find(|(k, _)| !allowed.contains(&k.as_str())) {
        Some((k, _)) => Err(ApiError::bad(format!(
            "invalid filter '{k}' ({what} takes {})",
            allowed.join(", ")
        ))),
        None => Ok(()),
    }
}

/// A `label` filter value (`key` or `key=value`) against labels.
pub fn label_matches(labels: &std::collections::BTreeMap<String, String>, f: &str) -> bool {
    match f.split_once('=') {
        Some((k, v)) => labels.get(k).is_some_and(|x| x == v),
        None => labels.contains_key(f),
    }
}

pub(crate) fn decode(s: &str) -> String {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        match b[i] {
            b'+' => out.push(b' '),
            b'%' if i + 2 < b.len() && s.is_char_boundary(i + 3) => {
                match u8::from_str_radix(&s[i + 1..i + 3], 16) {
                    Ok(v) => {
                        out.push(v);
                        i += 2;
                    }
                    Err(_) => out.push(b'%'),
                }
            }
            c => out.push(c),
        }
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

fn parse_query(q: Option<&str>) -> HashMap<String, String> {
    q.unwrap_or("")
        .split('&')
        .filter(|p| !p.is_empty())
        .map(|p| match p.split_once('=') {
            Some((k, v)) => (decode(k), decode(v)),
            None => (decode(p), String::new()),
        })
        .collect()
}

/// `/v1.41/containers/json` -> (`Some("1.41")`, `/containers/json`).
fn strip_version(path: &str) -> (Option<&str>, &str) {
    if let Some(rest) = path.strip_prefix("/v") {
        if let Some((v, _)) = rest.split_once('/') {
            if !v.is_empty() && v.chars().all(|c| c.is_ascii_digit() || c == '.') {
                return (Some(v), &path[v.len() + 2..]);
            }
        }
    }
    (None, path)
}

fn version_num(v: &str) -> (u32, u32) {
    let (a, b) = v.split_once('.').unwrap_or((v, "0"));
    (a.parse().unwrap_or(0), b.parse().unwrap_or(0))
}

/// Answers one request; never fails (errors become Docker's JSON).
pub async fn handle(ctx: Arc<Ctx>, req: Request<Incoming>) -> Response<Body> {
    let method = req.method().clone();
    let full_path = req.uri().path().to_string();
    let query = parse_query(req.uri().query());
    let (version, path) = strip_version(&full_path);
    if let Some(v) = version {
        if version_num(v) > version_num(API_VERSION) {
            return with_headers(reply::error(&ApiError::bad(format!(
                "client version {v} is too new. Maximum supported API version is {API_VERSION}"
            ))));
        }
        if version_num(v) < version_num(MIN_API_VERSION) {
            return with_headers(reply::error(&ApiError::bad(format!(
                "client version {v} is too old. Minimum supported API version is {MIN_API_VERSION}, please upgrade your client to a newer version"
            ))));
        }
    }
    let mut r = Req {
        method,
        path: path.to_string(),
        query,
        inner: req,
    };
    let res = route(&ctx, &mut r).await;
    with_headers(match res {
        Ok(resp) => resp,
        Err(e) => reply::error(&e),
    })
}

fn with_headers(mut r: Response<Body>) -> Response<Body> {
    let h = r.headers_mut();
    h.insert("Api-Version", API_VERSION.parse().expect("header"));
    h.insert("Docker-Experimental", "false".parse().expect("header"));
    h.insert("Ostype", "linux".parse().expect("header"));
    h.insert(
        "Server",
        concat!("berth/", env!("CARGO_PKG_VERSION"), " (linux)")
            .parse()
            .expect("header"),
    );
    r
}

async fn route(ctx: &Arc<Ctx>, r: &mut Req) -> Result<Response<Body>, ApiError> {
    let path = r.path.clone();
    let seg: Vec<&str> = path.trim_matches('/').split('/').collect();
    let m = r.method.clone();
    match (&m, seg.as_slice()) {
        (&Method::GET | &Method::HEAD, ["_ping"]) => {
            let mut resp = reply::empty(StatusCode::OK);
            if m == Method::GET {
                *resp.body_mut() = reply::full(Bytes::from_static(b"OK"));
            }
            resp.headers_mut().insert(
                "Cache-Control",
                "no-cache, no-store, must-revalidate".parse().expect("h"),
            );
            resp.headers_mut().insert(
                hyper::header::CONTENT_TYPE,
                "text/plain; charset=utf-8".parse().expect("h"),
            );
            Ok(resp)
        }
        (&Method::GET, ["version"]) => Ok(reply::json(StatusCode::OK, &version_doc())),
        (&Method::GET, ["info"]) => containers::info(ctx).await,
        (&Method::GET, ["containers", "json"]) => containers::list(ctx, r).await,
        (&Method::POST, ["containers", "create"]) => containers::create(ctx, r).await,
        (&Method::GET, ["containers", id, "json"]) => containers::inspect(ctx, id).await,
        // `docker inspect NAME` asks for a container first: an image name
        // with a slash is no container (404, then the CLI asks for images).
        (&Method::GET, ["containers", name @ .., "json"]) if name.len() > 1 => Err(
            ApiError::not_found(format!("No such container: {}", name.join("/"))),
        ),
        (&Method::POST, ["containers", id, "start"]) => containers::start(ctx, id).await,
        (&Method::POST, ["containers", id, "stop"]) => containers::stop(ctx, r, id).await,
        (&Method::POST, ["containers", id, "kill"]) => containers::kill(ctx, r, id).await,
        (&Method::POST, ["containers", id, "wait"]) => containers::wait(ctx, r, id).await,
        (&Method::DELETE, ["containers", id]) => containers::remove(ctx, r, id).await,
        (&Method::GET, ["containers", id, "logs"]) => crate::stream::logs(ctx, r, id).await,
        (&Method::POST, ["containers", id, "attach"]) => crate::stream::attach(ctx, r, id).await,
        (&Method::POST, ["containers", id, v @ ("restart" | "pause" | "unpause")]) => {
            containers::verb(ctx, r, id, v).await
        }
        (&Method::POST, ["containers", id, "rename"]) => containers::rename(ctx, r, id).await,
        (&Method::GET, ["containers", id, "top"]) => containers::top(ctx, r, id).await,
        (&Method::GET, ["containers", id, "stats"]) => stats::stats(ctx, r, id).await,
        (&Method::POST, ["containers", "prune"]) => manage::prune(ctx, r).await,
        (&Method::POST, ["containers", id, "update"]) => manage::update(ctx, r, id).await,
        (&Method::GET, ["containers", id, "changes"]) => manage::changes(ctx, id).await,
        (&Method::GET, ["containers", id, "export"]) => manage::export(ctx, id).await,
        (&Method::POST, ["commit"]) => manage::commit(ctx, r).await,
        (&Method::POST, ["containers", id, "resize"]) => resize::container(ctx, r, id).await,
        (&Method::POST, ["exec", id, "resize"]) => resize::exec(ctx, r, id).await,
        (&Method::GET, ["system", "df"]) => system::df(ctx).await,
        (&Method::POST, ["auth"]) => system::auth(ctx, r).await,
        (&Method::POST, ["containers", id, "exec"]) => exec::create(ctx, r, id).await,
        (&Method::POST, ["exec", id, "start"]) => exec::start(ctx, r, id).await,
        (&Method::GET, ["exec", id, "json"]) => exec::inspect(ctx, id).await,
        (&Method::HEAD, ["containers", id, "archive"]) => archive::get(ctx, r, id, true).await,
        (&Method::GET, ["containers", id, "archive"]) => archive::get(ctx, r, id, false).await,
        (&Method::PUT, ["containers", id, "archive"]) => archive::put(ctx, r, id).await,
        (&Method::GET, ["events"]) => crate::events::events(ctx, r).await,
        (&Method::GET, ["networks"]) => networks::list(ctx, r).await,
        (&Method::POST, ["networks", "create"]) => networks::create(ctx, r).await,
        (&Method::POST, ["networks", "prune"]) => networks::prune(ctx, r).await,
        (&Method::GET, ["networks", id]) => networks::inspect(ctx, id).await,
        (&Method::DELETE, ["networks", id]) => networks::remove(ctx, id).await,
        (&Method::POST, ["networks", id, "connect"]) => networks::connect(ctx, r, id, true).await,
        (&Method::POST, ["networks", id, "disconnect"]) => {
            networks::connect(ctx, r, id, false).await
        }
        (&Method::GET, ["volumes"]) => volumes::list(ctx, r).await,
        (&Method::POST, ["volumes", "create"]) => volumes::create(ctx, r).await,
        (&Method::POST, ["volumes", "prune"]) => volumes::prune(ctx, r).await,
        (&Method::GET, ["volumes", name]) => volumes::inspect(ctx, name).await,
        (&Method::DELETE, ["volumes", name]) => volumes::remove(ctx, r, name).await,
        (&Method::GET, ["images", "json"]) => images::list(ctx).await,
        (&Method::POST, ["images", "create"]) => images::pull(ctx, r).await,
        (&Method::POST, ["images", "load"]) => images::load(ctx, r).await,
        (&Method::POST, ["images", "prune"]) => images::prune(ctx, r).await,
        (&Method::GET, ["images", "search"]) => images::search(ctx, r).await,
        (&Method::GET, ["images", "get"]) => images::save(ctx, r, None).await,
        (&Method::GET, ["images", name @ .., "get"]) if !name.is_empty() => {
            images::save(ctx, r, Some(&name.join("/"))).await
        }
        (&Method::GET, ["images", name @ .., "history"]) if !name.is_empty() => {
            images::history(ctx, &name.join("/")).await
        }
        (&Method::POST, ["images", name @ .., "push"]) if !name.is_empty() => {
            images::push(ctx, r, &name.join("/")).await
        }
        // `docker inspect localhost:5000/x:1` asks for a container first.
        (&Method::GET, ["containers", .., "json"]) => Err(ApiError::not_found(format!(
            "No such container: {}",
            path.trim_start_matches("/containers/")
                .trim_end_matches("/json")
        ))),
        (&Method::POST, ["build"]) => images::build(ctx, r).await,
        (&Method::POST, ["session"]) => images::session().await,
        (&Method::GET, ["images", name @ .., "json"]) if !name.is_empty() => {
            images::inspect(ctx, &name.join("/")).await
        }
        (&Method::POST, ["images", name @ .., "tag"]) if !name.is_empty() => {
            images::tag(ctx, r, &name.join("/")).await
        }
        (&Method::DELETE, ["images", name @ ..]) if !name.is_empty() => {
            images::remove(ctx, r, &name.join("/")).await
        }
        _ => Err(ApiError::new(
            StatusCode::NOT_IMPLEMENTED,
            format!("berth's Docker API does not implement {m} {path} yet"),
        )),
    }
}

fn version_doc() -> Value {
    let os = std::fs::read_to_string("/proc/sys/kernel/osrelease").unwrap_or_default();
    let arch = match std::env::consts::ARCH {
        "x86_64" => "amd64",
        "aarch64" => "arm64",
        a => a,
    };
    json!({
        "Platform": {"Name": "berth"},
        "Components": [{
            "Name": "Engine",
            "Version": env!("CARGO_PKG_VERSION"),
            "Details": {"ApiVersion": API_VERSION, "MinAPIVersion": MIN_API_VERSION, "Os": "linux", "Arch": arch}
        }],
        "Version": env!("CARGO_PKG_VERSION"),
        "ApiVersion": API_VERSION,
        "MinAPIVersion": MIN_API_VERSION,
        "GitCommit": "",
        "GoVersion": "",
        "Os": "linux",
        "Arch": arch,
        "KernelVersion": os.trim(),
        "BuildTime": "",
    })
}
