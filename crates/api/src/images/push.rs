//! `POST /images/{name}/push?tag=`: berth-image's push (what `berth push`
//! runs), in this process so that its per-blob progress becomes Docker's
//! JSON progress stream; credentials from `X-Registry-Auth`, else the
//! engine's credentials file (`berth login`).

use std::collections::HashSet;
use std::sync::{Arc, Mutex};

use base64::Engine as _;
use berth_image::registry::{self, Progress, PushOptions, RegistryOptions};
use berth_image::{Digest, Reference, Store};
use hyper::Response;
use serde_json::{json, Value};
use tokio::sync::mpsc::Sender;

use super::{familiar, line};
use crate::berth::Ctx;
use crate::reply::{self, ApiError, Body};
use crate::routes::Req;

/// `X-Registry-Auth`: base64url of Docker's AuthConfig JSON; the user and
/// password (from `username`/`password` or `auth`), if any.
pub(crate) fn registry_auth(r: &Req) -> Result<Option<(String, String)>, ApiError> {
    match r.inner.headers().get("X-Registry-Auth") {
        None => Ok(None),
        Some(h) => decode_auth(h.to_str().unwrap_or("")),
    }
}

/// [`registry_auth`] of the header's value.
fn decode_auth(h: &str) -> Result<Option<(String, String)>, ApiError> {
    let h = h.trim();
    if h.is_empty() {
        return Ok(None);
    }
    let bad = || ApiError::bad("X-Registry-Auth: expected base64url-encoded JSON credentials");
    let raw = [
        base64::engine::general_purpose::URL_SAFE,
        base64::engine::general_purpose::URL_SAFE_NO_PAD,
        base64::engine::general_purpose::STANDARD,
        base64::engine::general_purpose::STANDARD_NO_PAD,
    ]
    .iter()
    .find_map(|e| e.decode(h).ok())
    .ok_or_else(bad)?;
    let v: Value = serde_json::from_slice(&raw).map_err(|_| bad())?;
    let s = |k: &str| v[k].as_str().unwrap_or_default().to_string();
    if !s("identitytoken").is_empty() || !s("registrytoken").is_empty() {
        return Err(ApiError::bad(
            "X-Registry-Auth: identity and registry tokens are not supported by berth; log in with a user and password",
        ));
    }
    let (user, pass) = if !s("username").is_empty() {
        (s("username"), s("password"))
    } else if !s("auth").is_empty() {
        let d = base64::engine::general_purpose::STANDARD
            .decode(s("auth"))
            .map_err(|_| bad())?;
        let d = String::from_utf8(d).map_err(|_| bad())?;
        match d.split_once(':') {
            Some((u, p)) => (u.to_string(), p.to_string()),
            None => return Err(bad()),
        }
    } else {
        return Ok(None);
    };
    Ok(Some((user, pass)))
}

/// Per-blob progress as Docker's stream lines (`Pushing`, `Pushed`).
struct Lines {
    tx: Sender<bytes::Bytes>,
    started: Mutex<HashSet<String>>,
}

impl Lines {
    fn send(&self, v: Value) {
        let _ = self.tx.blocking_send(line(v));
    }
}

impl Progress for Lines {
    fn start(&self, d: &Digest, total: u64) {
        self.started
            .lock()
            .expect("lock")
            .insert(d.short().to_string());
        self.send(json!({"status": "Pushing", "progressDetail": {"current": 0, "total": total}, "id": d.short()}));
    }
    fn update(&self, d: &Digest, done: u64) {
        self.send(
            json!({"status": "Pushing", "progressDetail": {"current": done}, "id": d.short()}),
        );
    }
    fn finish(&self, d: &Digest, ok: bool) {
        if ok {
            self.send(json!({"status": "Pushed", "progressDetail": {}, "id": d.short()}));
        }
    }
}

pub async fn push(ctx: &Arc<Ctx>, r: &Req, name: &str) -> Result<Response<Body>, ApiError> {
    let creds = registry_auth(r)?;
    let tag = r.q("tag").filter(|t| !t.is_empty());
    let full = match tag {
        Some(t) if t.starts_with("sha256:") => {
            return Err(ApiError::bad(format!(
                "push {name}: give a tag to push, not a digest ({t})"
            )))
        }
        Some(t) => format!("{name}:{t}"),
        None => name.to_string(),
    };
    let dest = Reference::parse(&full)
        .map_err(|e| ApiError::bad(format!("push {full}: not an image name: {e}")))?;
    let root = ctx.engine.root.clone();
    // The image must exist before the stream starts (404 as Docker).
    let (store, image) = {
        let full = full.clone();
        ctx.read(move |_| {
            let store = Store::open(&root).map_err(ApiError::engine)?;
            store.lookup(&full).map_err(|_| {
                ApiError::not_found(format!(
                    "An image does not exist locally with the tag: {}",
                    familiar(&full)
                ))
            })?;
            let img = berth_image::image::resolve_name(&store, &full).map_err(ApiError::engine)?;
            Ok((store, img))
        })
        .await?
    };
    let (resp, tx) = reply::stream("application/json");
    let root = ctx.engine.root.clone();
    tokio::task::spawn_blocking(move || {
        let lines = Lines {
            tx,
            started: Mutex::new(HashSet::new()),
        };
        let repo = familiar(&full)
            .rsplit_once(':')
            .filter(|(_, t)| !t.contains('/'))
            .map_or(familiar(&full), |(r, _)| r)
            .to_string();
        lines.send(json!({"status": format!("The push refers to repository [{repo}]")}));
        let layers: Vec<String> = image
            .manifest
            .layers
            .iter()
            .rev()
            .map(|l| l.digest.short().to_string())
            .collect();
        for l in &layers {
            lines.send(json!({"status": "Preparing", "progressDetail": {}, "id": l}));
        }
        let mut opts = RegistryOptions::new(&root);
        opts.creds = creds;
        let res = registry::push(&store, &full, &dest, &opts, PushOptions::default(), &lines);
        match res {
            Ok(digest) => {
                let started = lines.started.lock().expect("lock").clone();
                for l in layers.iter().filter(|l| !started.contains(*l)) {
                    lines.send(
                        json!({"status": "Layer already exists", "progressDetail": {}, "id": l}),
                    );
                }
                let t = dest.tag.clone().unwrap_or_else(|| "latest".into());
                let size = image.record.manifest.size;
                lines.send(json!({"status": format!("{t}: digest: {digest} size: {size}")}));
                lines.send(json!({"progressDetail": {}, "aux": {"Tag": t, "Digest": digest.to_string(), "Size": size}}));
            }
            Err(e) => {
                let mut msg = e.to_string();
                let mut src = std::error::Error::source(&e);
                while let Some(s) = src {
                    msg.push_str(": ");
                    msg.push_str(&s.to_string());
                    src = s.source();
                }
                lines.send(json!({"errorDetail": {"message": msg}, "error": msg}));
            }
        }
    });
    Ok(resp)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn enc(s: &str) -> String {
        base64::engine::general_purpose::URL_SAFE.encode(s)
    }

    #[test]
    fn x_registry_auth_is_read_as_docker_sends_it() {
        assert_eq!(decode_auth(&enc("{}")).unwrap(), None);
        assert_eq!(
            decode_auth(&enc(
                r#"{"username":"u","password":"p?>","serveraddress":"h"}"#
            ))
            .unwrap(),
            Some(("u".into(), "p?>".into()))
        );
        let auth = base64::engine::general_purpose::STANDARD.encode("a:b:c");
        assert_eq!(
            decode_auth(&enc(&format!(r#"{{"auth":"{auth}"}}"#))).unwrap(),
            Some(("a".into(), "b:c".into()))
        );
        assert!(decode_auth("%%%").is_err());
        assert!(decode_auth(&enc(r#"{"identitytoken":"t"}"#))
            .unwrap_err()
            .message
            .contains("not supported"));
    }
}
