//! `POST /images/load` (a docker-archive body into `berth load`) and
//! `GET /images/{name}/get`, `GET /images/get?names=` (`berth save`'s
//! docker-archive, streamed).

use std::process::Stdio;
use std::sync::Arc;

use http_body_util::BodyExt;
use hyper::Response;
use serde_json::json;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use super::{familiar, line, query_all};
use crate::berth::Ctx;
use crate::reply::{self, ApiError, Body};
use crate::routes::Req;

/// The last line `berth` printed on stderr, as Docker's error.
fn berth_error(stderr: &[u8], what: &str) -> ApiError {
    let msg = String::from_utf8_lossy(stderr);
    let msg = msg
        .lines()
        .rev()
        .find(|l| !l.trim().is_empty())
        .unwrap_or(what)
        .trim_start_matches("berth: ")
        .to_string();
    ApiError::from_message(msg)
}

/// `POST /images/load`: the body (a docker-archive or oci-archive tar)
/// piped into `berth load`; its `Loaded image: NAME` lines as Docker's
/// JSON stream (with `quiet` too: Docker's CLI prints that stream).
pub async fn load(ctx: &Arc<Ctx>, r: &mut Req) -> Result<Response<Body>, ApiError> {
    let mut child = ctx
        .cmd()
        .arg("load")
        .stdin(Stdio::piped())
        .spawn()
        .map_err(|e| ApiError::internal(format!("run berth load: {e}")))?;
    let mut stdin = child.stdin.take().expect("piped");
    let body = r.inner.body_mut();
    let mut sent = 0u64;
    while let Some(f) = body.frame().await {
        match f {
            Ok(f) => {
                if let Some(d) = f.data_ref() {
                    sent += d.len() as u64;
                    if stdin.write_all(d).await.is_err() {
                        break;
                    }
                }
            }
            Err(e) => {
                // The client went away: berth load gets no whole archive
                // and stores nothing.
                let _ = child.start_kill();
                let _ = child.wait().await;
                return Err(ApiError::bad(format!("load: read the request body: {e}")));
            }
        }
    }
    drop(stdin);
    let o = child
        .wait_with_output()
        .await
        .map_err(|e| ApiError::internal(format!("berth load: {e}")))?;
    if sent == 0 {
        return Err(ApiError::bad(
            "load: the request body is empty; send a docker-archive tar (docker save)",
        ));
    }
    if !o.status.success() {
        let e = berth_error(&o.stderr, "berth load failed");
        return Err(ApiError::bad(e.message));
    }
    let mut text = Vec::new();
    for l in String::from_utf8_lossy(&o.stdout).lines() {
        let Some(n) = l.strip_prefix("Loaded image: ") else {
            continue;
        };
        let msg = if !n.contains(':') || n.starts_with("sha256:") {
            format!(
                "Loaded image ID: sha256:{}\n",
                n.trim_start_matches("sha256:")
            )
        } else {
            format!("Loaded image: {}\n", familiar(n))
        };
        text.extend_from_slice(&line(json!({ "stream": msg })));
    }
    let mut resp = Response::new(reply::full(text));
    resp.headers_mut().insert(
        hyper::header::CONTENT_TYPE,
        hyper::header::HeaderValue::from_static("application/json"),
    );
    Ok(resp)
}

/// `GET /images/{name}/get` (`name` given) and `GET /images/get?names=`:
/// `berth save` of the images as one docker-archive, streamed; an image
/// that does not exist is a 404 before any byte is sent.
pub async fn save(ctx: &Arc<Ctx>, r: &Req, name: Option<&str>) -> Result<Response<Body>, ApiError> {
    let names = match name {
        Some(n) => vec![n.to_string()],
        None => query_all(r, "names"),
    };
    if names.is_empty() {
        return Err(ApiError::bad(
            "images/get needs at least one image (names=)",
        ));
    }
    let mut child = ctx
        .cmd()
        .arg("save")
        .arg("--")
        .args(&names)
        .spawn()
        .map_err(|e| ApiError::internal(format!("run berth save: {e}")))?;
    let mut out = child.stdout.take().expect("piped");
    let mut first = vec![0u8; 64 * 1024];
    let n = loop {
        match out.read(&mut first).await {
            Ok(n) => break n,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(ApiError::internal(format!("berth save: {e}"))),
        }
    };
    if n == 0 {
        let o = child
            .wait_with_output()
            .await
            .map_err(|e| ApiError::internal(format!("berth save: {e}")))?;
        let e = berth_error(&o.stderr, "berth save failed");
        return Err(if e.message.contains("not known") {
            ApiError::not_found(format!("No such image: {}", names.join(", ")))
        } else {
            e
        });
    }
    first.truncate(n);
    Ok(reply::child_tar(first, out, child))
}
