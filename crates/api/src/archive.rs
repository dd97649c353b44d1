//! `/containers/{id}/archive` (HEAD, GET, PUT) for `docker cp`, through
//! `berth cp` (paths resolved inside the container's root, never out of
//! it). Paths with a `..` component are refused outright.

use std::process::Stdio;
use std::sync::Arc;

use base64::Engine as _;
use http_body_util::BodyExt;
use hyper::{Response, StatusCode};
use serde_json::json;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use crate::berth::Ctx;
use crate::containers::find;
use crate::reply::{self, ApiError, Body};
use crate::routes::Req;

fn checked_path(r: &Req) -> Result<String, ApiError> {
    let Some(p) = r.q("path").filter(|p| !p.is_empty()) else {
        return Err(ApiError::bad("archive: the path (path=) is missing"));
    };
    if p.split('/').any(|c| c == "..") {
        return Err(ApiError::bad(format!(
            "archive: path {p:?} has a '..' component; give the path inside the container without it"
        )));
    }
    if p.contains('\0') {
        return Err(ApiError::bad("archive: the path has a NUL byte"));
    }
    Ok(p.to_string())
}

/// The error `berth cp` printed, in Docker's words and status.
fn cp_error(stderr: &[u8], id: &str, path: &str) -> ApiError {
    let msg = String::from_utf8_lossy(stderr);
    let msg = msg
        .lines()
        .rev()
        .find(|l| !l.trim().is_empty())
        .unwrap_or("berth cp failed")
        .trim_start_matches("berth: ")
        .to_string();
    let l = msg.to_lowercase();
    if l.contains("no such file") || l.contains("not found") || l.contains("enoent") {
        ApiError::not_found(format!("Could not find the file {path} in container {id}"))
    } else if l.contains("not a directory") {
        ApiError::bad(msg)
    } else {
        ApiError::from_message(msg)
    }
}

/// Docker's `X-Docker-Container-Path-Stat` from the archive's first
/// header (the path itself): base64 of {name, size, mode, mtime,
/// linkTarget}, mode in Go's FileMode bits.
fn stat_header(first: &[u8], path: &str) -> Option<String> {
    let h = tar::Header::from_byte_slice(first.get(..512)?);
    let perm = h.mode().ok()? & 0o7777;
    let kind = h.entry_type();
    let mode = perm
        | if kind.is_dir() { 1 << 31 } else { 0 }
        | if kind.is_symlink() { 1 << 27 } else { 0 };
    let name = path
        .trim_end_matches('/')
        .rsplit('/')
        .next()
        .filter(|n| !n.is_empty())
        .unwrap_or("/");
    let mtime = h.mtime().unwrap_or(0) as i64 * 1000;
    let link = h
        .link_name()
        .ok()
        .flatten()
        .map(|l| l.to_string_lossy().into_owned())
        .unwrap_or_default();
    let doc = json!({
        "name": name,
        "size": if kind.is_dir() { 4096 } else { h.size().unwrap_or(0) },
        "mode": mode,
        "mtime": berth_engine::rfc3339_ms(mtime),
        "linkTarget": link,
    });
    Some(base64::engine::general_purpose::STANDARD.encode(doc.to_string()))
}

/// `HEAD` (stat only) and `GET` (the tar stream) of a path.
pub async fn get(
    ctx: &Arc<Ctx>,
    r: &Req,
    id: &str,
    head: bool,
) -> Result<Response<Body>, ApiError> {
    let path = checked_path(r)?;
    let row = find(ctx, id).await?;
    let mut child = ctx
        .cmd()
        .args(["cp", &format!("{}:{path}", row.id), "-"])
        .spawn()
        .map_err(|e| ApiError::internal(format!("run berth cp: {e}")))?;
    let mut out = child.stdout.take().expect("piped");
    let mut first = vec![0u8; 512];
    let mut got = 0;
    while got < 512 {
        match out.read(&mut first[got..]).await {
            Ok(0) | Err(_) => break,
            Ok(n) => got += n,
        }
    }
    if got < 512 {
        let o = child
            .wait_with_output()
            .await
            .map_err(|e| ApiError::internal(format!("berth cp: {e}")))?;
        return Err(cp_error(&o.stderr, id, &path));
    }
    let stat = stat_header(&first, &path)
        .ok_or_else(|| ApiError::internal("berth cp: the archive has no valid first header"))?;
    let mut resp = if head {
        let _ = child.start_kill();
        let _ = child.wait().await;
        reply::empty(StatusCode::OK)
    } else {
        reply::child_tar(first, out, child)
    };
    resp.headers_mut().insert(
        "X-Docker-Container-Path-Stat",
        stat.parse()
            .map_err(|_| ApiError::internal("stat header"))?,
    );
    Ok(resp)
}

/// `PUT`: the body, a tar stream, unpacked into the directory `path`.
pub async fn put(ctx: &Arc<Ctx>, r: &mut Req, id: &str) -> Result<Response<Body>, ApiError> {
    let path = checked_path(r)?;
    if r.flag("copyUIDGID") {
        return Err(ApiError::bad(
            "archive: copyUIDGID (docker cp -a) is not supported by berth: files take the container user's ownership",
        ));
    }
    let row = find(ctx, id).await?;
    let mut child = ctx
        .cmd()
        .args(["cp", "-", &format!("{}:{path}", row.id)])
        .stdin(Stdio::piped())
        .spawn()
        .map_err(|e| ApiError::internal(format!("run berth cp: {e}")))?;
    let mut stdin = child.stdin.take().expect("piped");
    let body = r.inner.body_mut();
    let mut broken = None;
    while let Some(f) = body.frame().await {
        match f {
            Ok(f) => {
                if let Some(d) = f.data_ref() {
                    if stdin.write_all(d).await.is_err() {
                        break;
                    }
                }
            }
            Err(e) => {
                broken = Some(e.to_string());
                break;
            }
        }
    }
    if let Some(e) = broken {
        // The client went away mid-upload: berth cp gets no end of the
        // stream, fails, and leaves nothing half copied in the container's
        // scratch dir.
        let _ = child.start_kill();
        let _ = child.wait().await;
        return Err(ApiError::bad(format!(
            "archive: read the request body: {e}"
        )));
    }
    drop(stdin);
    let o = child
        .wait_with_output()
        .await
        .map_err(|e| ApiError::internal(format!("berth cp: {e}")))?;
    if !o.status.success() {
        return Err(cp_error(&o.stderr, id, &path));
    }
    Ok(reply::empty(StatusCode::OK))
}
