//! `POST /build`: the classic builder's API over `berth build` (the body,
//! a tar of the context, is its `-` context); its progress as Docker's
//! `{"stream": ...}` lines, ending with `{"aux":{"ID":...}}`,
//! `Successfully built ID` and `Successfully tagged NAME` as the classic
//! builder does (Compose 1.29 and docker-py read the image ID from that
//! line, the docker CLI from `aux`). BuildKit (`version=2`, `/session`)
//! is refused with a message naming DOCKER_BUILDKIT=0.

use std::io::Read;
use std::process::Stdio;
use std::sync::Arc;

use bytes::Bytes;
use http_body_util::BodyExt;
use hyper::Response;
use serde_json::{json, Value};
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::sync::mpsc::Sender;

use super::{line, query_all};
use crate::berth::Ctx;
use crate::reply::{self, ApiError, Body};
use crate::routes::Req;

const BUILDKIT: &str = "BuildKit is not supported by berth's Docker API: set DOCKER_BUILDKIT=0 to build with the classic builder (docker build, docker-compose build)";

/// `POST /session` (BuildKit's session, the docker CLI's first request
/// when BuildKit is on).
pub async fn session() -> Result<Response<Body>, ApiError> {
    Err(ApiError::bad(BUILDKIT))
}

/// A `{"K": "V"}` query parameter (`buildargs`, `labels`) as `K=V`
/// pairs; `null` values (an unset build arg) are left out.
fn pairs(r: &Req, key: &str) -> Result<Vec<String>, ApiError> {
    let Some(raw) = r.q(key).filter(|s| !s.is_empty()) else {
        return Ok(vec![]);
    };
    let v: Value = serde_json::from_str(raw)
        .map_err(|e| ApiError::bad(format!("build: {key} is not a JSON object: {e}")))?;
    let Some(map) = v.as_object() else {
        return Err(ApiError::bad(format!("build: {key} is not a JSON object")));
    };
    let mut out = Vec::new();
    for (k, v) in map {
        match v {
            Value::Null => {}
            Value::String(s) => out.push(format!("{k}={s}")),
            other => out.push(format!("{k}={other}")),
        }
    }
    Ok(out)
}

/// Docker's parameters that berth's builder cannot honour, refused when
/// set to anything but their defaults.
fn refuse_unsupported(r: &Req) -> Result<(), ApiError> {
    if r.q("version") == Some("2") {
        return Err(ApiError::bad(BUILDKIT));
    }
    if r.q("remote").is_some_and(|s| !s.is_empty()) {
        return Err(ApiError::bad(
            "build: a remote context (remote=, a URL or git repository) is not supported by berth; send the context as a tar",
        ));
    }
    for k in [
        "memory",
        "memswap",
        "cpushares",
        "cpuperiod",
        "cpuquota",
        "shmsize",
    ] {
        if r.q(k).is_some_and(|v| !v.is_empty() && v != "0") {
            return Err(ApiError::bad(format!(
                "build: {k} is not supported by berth's builder (its RUN steps have no resource limits)"
            )));
        }
    }
    for k in ["cpusetcpus", "cpusetmems", "outputs", "extrahosts"] {
        if r.q(k)
            .is_some_and(|v| !v.is_empty() && v != "[]" && v != "null")
        {
            return Err(ApiError::bad(format!(
                "build: {k} is not supported by berth's builder"
            )));
        }
    }
    if r.flag("squash") {
        return Err(ApiError::bad("build: squash is not supported by berth"));
    }
    Ok(())
}

/// The `berth build` arguments for the query (context `-`).
fn build_args(r: &Req, iid: &std::path::Path) -> Result<Vec<String>, ApiError> {
    let mut a: Vec<String> = vec!["build".into()];
    for t in query_all(r, "t") {
        a.push("--tag".into());
        a.push(t);
    }
    if let Some(f) = r.q("dockerfile").filter(|f| !f.is_empty()) {
        // The Dockerfile is a path inside the context, never the host's.
        if f.starts_with('/') || f.split('/').any(|c| c == "..") {
            return Err(ApiError::bad(format!(
                "build: dockerfile {f:?} must be a path inside the context (relative, without '..')"
            )));
        }
        a.push("--file".into());
        a.push(f.to_string());
    }
    for b in pairs(r, "buildargs")? {
        a.push("--build-arg".into());
        a.push(b);
    }
    for l in pairs(r, "labels")? {
        a.push("--label".into());
        a.push(l);
    }
    if let Some(t) = r.q("target").filter(|t| !t.is_empty()) {
        a.push("--target".into());
        a.push(t.to_string());
    }
    if r.flag("nocache") {
        a.push("--no-cache".into());
    }
    if let Some(p) = r.q("platform").filter(|p| !p.is_empty()) {
        a.push("--platform".into());
        a.push(p.to_string());
    }
    // Docker's default network for RUN is its bridge; berth's builder
    // gives RUN steps an empty network namespace of their own unless
    // asked for the host's (docs/cli.md).
    match r.q("networkmode").unwrap_or("") {
        "" | "default" | "none" => {}
        "host" => {
            a.push("--network".into());
            a.push("host".into());
        }
        n => {
            return Err(ApiError::bad(format!(
                "build: networkmode {n:?} is not supported by berth's builder: use default (none) or host"
            )))
        }
    }
    a.push("--iidfile".into());
    a.push(iid.display().to_string());
    a.push("-".into());
    Ok(a)
}

/// A berth build progress line as the classic builder prints it.
fn docker_line(l: &str) -> Option<String> {
    if l.starts_with("COMMIT ") || l.starts_with("Successfully tagged ") {
        return None;
    }
    // `[2/3] STEP 1/4: FROM x` / `STEP 1/4: FROM x`.
    let (prefix, rest) = match l.strip_prefix('[').and_then(|x| x.split_once("] ")) {
        Some((stage, rest)) if rest.starts_with("STEP ") => (format!("[{stage}] "), rest),
        _ => (String::new(), l),
    };
    if let Some(step) = rest.strip_prefix("STEP ") {
        if let Some((n, text)) = step.split_once(": ") {
            return Some(format!("{prefix}Step {n} : {text}\n"));
        }
    }
    if let Some(id) = l.strip_prefix("--> Using cache ") {
        return Some(format!(
            " ---> Using cache\n ---> {}\n",
            &id[..12.min(id.len())]
        ));
    }
    if let Some(id) = l.strip_prefix("--> ") {
        return Some(format!(" ---> {id}\n"));
    }
    Some(format!("{l}\n"))
}

/// A tag as Docker reports it (`x` is `x:latest`).
fn shown_tag(t: &str) -> String {
    let last = t.rsplit('/').next().unwrap_or(t);
    if last.contains(':') || t.contains('@') {
        t.to_string()
    } else {
        format!("{t}:latest")
    }
}

/// The images the Dockerfile's `FROM` lines name (not earlier stages,
/// `scratch`, or names made of build args), for `pull=1`.
fn from_images(dockerfile: &str) -> Vec<String> {
    let mut stages: Vec<String> = Vec::new();
    let mut out = Vec::new();
    let text = dockerfile.replace("\\\n", " ");
    for l in text.lines() {
        let mut w = l.split_whitespace();
        if !w.next().is_some_and(|k| k.eq_ignore_ascii_case("FROM")) {
            continue;
        }
        let mut w = w.skip_while(|x| x.starts_with("--"));
        let Some(img) = w.next() else { continue };
        let lower = img.to_ascii_lowercase();
        let wanted = lower != "scratch" && !img.contains('$') && !stages.contains(&lower);
        if let (Some(a), Some(name)) = (w.next(), w.next()) {
            if a.eq_ignore_ascii_case("AS") {
                stages.push(name.to_ascii_lowercase());
            }
        }
        if wanted && !out.iter().any(|x| x == img) {
            out.push(img.to_string());
        }
    }
    out
}

/// The Dockerfile `name` inside the context tar at `tar`.
fn dockerfile_in(tar: &std::path::Path, name: &str) -> Option<String> {
    let f = std::fs::File::open(tar).ok()?;
    let mut a = tar::Archive::new(f);
    let want = name.trim_start_matches("./");
    for e in a.entries().ok()? {
        let mut e = e.ok()?;
        let p = e
            .path()
            .ok()?
            .to_string_lossy()
            .trim_start_matches("./")
            .to_string();
        if p == want {
            let mut s = String::new();
            e.read_to_string(&mut s).ok()?;
            return Some(s);
        }
    }
    None
}

async fn send(tx: &Sender<Bytes>, v: Value) -> bool {
    tx.send(line(v)).await.is_ok()
}

fn stream(s: &str) -> Value {
    json!({ "stream": s })
}

fn error(m: &str) -> Value {
    json!({"errorDetail": {"message": m}, "error": m})
}

pub async fn build(ctx: &Arc<Ctx>, r: &mut Req) -> Result<Response<Body>, ApiError> {
    refuse_unsupported(r)?;
    let dir = tempfile::Builder::new()
        .prefix("berth-api-build-")
        .tempdir_in(&ctx.engine.root)
        .map_err(|e| {
            ApiError::internal(format!(
                "build: a temp dir under {}: {e}",
                ctx.engine.root.display()
            ))
        })?;
    let iid = dir.path().join("iid");
    let args = build_args(r, &iid)?;
    let quiet = r.flag("q");
    let pull = r.flag("pull");
    let dockerfile = r
        .q("dockerfile")
        .filter(|f| !f.is_empty())
        .unwrap_or("Dockerfile")
        .to_string();
    let tags: Vec<String> = query_all(r, "t").iter().map(|t| shown_tag(t)).collect();
    // The context is spooled first: `pull` reads its Dockerfile, and a
    // client that goes away mid-upload starts no build.
    let ctx_tar = dir.path().join("context.tar");
    let cwd = dir.path().join("cwd");
    std::fs::create_dir(&cwd).map_err(|e| ApiError::internal(format!("build: {e}")))?;
    {
        let mut f = tokio::fs::File::create(&ctx_tar)
            .await
            .map_err(|e| ApiError::internal(format!("build: spool the context: {e}")))?;
        let body = r.inner.body_mut();
        while let Some(fr) = body.frame().await {
            let fr = fr.map_err(|e| {
                ApiError::bad(format!("build: read the context (request body): {e}"))
            })?;
            if let Some(d) = fr.data_ref() {
                f.write_all(d)
                    .await
                    .map_err(|e| ApiError::internal(format!("build: spool the context: {e}")))?;
            }
        }
        f.flush()
            .await
            .map_err(|e| ApiError::internal(format!("build: {e}")))?;
    }
    let (resp, tx) = reply::stream("application/json");
    let ctx = ctx.clone();
    tokio::spawn(async move {
        let _dir = dir;
        if pull {
            let df = {
                let p = ctx_tar.clone();
                let n = dockerfile.clone();
                tokio::task::spawn_blocking(move || dockerfile_in(&p, &n))
                    .await
                    .ok()
                    .flatten()
            };
            for img in from_images(&df.unwrap_or_default()) {
                if !quiet && !send(&tx, stream(&format!("Pulling {img}\n"))).await {
                    return;
                }
                if let Err(e) = ctx
                    .berth(&["pull".into(), "--quiet".into(), img.clone()])
                    .await
                {
                    let _ = send(&tx, error(&format!("pull {img}: {}", e.message))).await;
                    return;
                }
            }
        }
        let stdin = match std::fs::File::open(&ctx_tar) {
            Ok(f) => f,
            Err(e) => {
                let _ = send(&tx, error(&format!("build: read the spooled context: {e}"))).await;
                return;
            }
        };
        let mut child = match ctx
            .cmd()
            .args(&args)
            .current_dir(&cwd)
            .stdin(Stdio::from(stdin))
            .spawn()
        {
            Ok(c) => c,
            Err(e) => {
                let _ = send(&tx, error(&format!("run berth build: {e}"))).await;
                return;
            }
        };
        let pid = child.id();
        let mut out = BufReader::new(child.stdout.take().expect("piped")).lines();
        let mut err = BufReader::new(child.stderr.take().expect("piped")).lines();
        let (mut out_done, mut err_done) = (false, false);
        // The last stderr line is held back: when the build fails, it is
        // berth's error.
        let mut last_err: Option<String> = None;
        let mut last_out: Option<String> = None;
        let mut gone = false;
        while !(out_done && err_done) {
            let text = tokio::select! {
                l = out.next_line(), if !out_done => match l {
                    // berth build's last line is the image ID: held back.
                    Ok(Some(l)) => last_out.replace(l).and_then(|p| docker_line(&p)),
                    _ => { out_done = true; None }
                },
                l = err.next_line(), if !err_done => match l {
                    Ok(Some(l)) => last_err.replace(l).map(|p| format!("{p}\n")),
                    _ => { err_done = true; None }
                },
            };
            if let Some(t) = text {
                if !quiet && !gone && !send(&tx, stream(&t)).await {
                    // The client went away: end the build as Ctrl-C does
                    // (between steps, its mounts and temp dirs removed).
                    gone = true;
                    if let Some(pid) = pid.and_then(|p| rustix::process::Pid::from_raw(p as i32)) {
                        let _ = rustix::process::kill_process(pid, rustix::process::Signal::TERM);
                    }
                }
            }
        }
        let status = child.wait().await;
        if gone {
            return;
        }
        let id = std::fs::read_to_string(&iid).unwrap_or_default();
        let id = id.trim().trim_start_matches("sha256:").to_string();
        if let Some(l) = last_out
            .filter(|l| !quiet && l.trim() != id)
            .and_then(|l| docker_line(&l))
        {
            let _ = send(&tx, stream(&l)).await;
        }
        if !status.is_ok_and(|s| s.success()) || id.len() < 12 {
            let m = last_err
                .unwrap_or_else(|| "berth build failed".into())
                .trim_start_matches("berth: ")
                .to_string();
            let _ = send(&tx, error(&m)).await;
            return;
        }
        if let Some(l) = last_err.filter(|_| !quiet) {
            let _ = send(&tx, stream(&format!("{l}\n"))).await;
        }
        let _ = send(&tx, json!({"aux": {"ID": format!("sha256:{id}")}})).await;
        if quiet {
            let _ = send(&tx, stream(&format!("sha256:{id}\n"))).await;
            return;
        }
        let _ = send(&tx, stream(&format!("Successfully built {}\n", &id[..12]))).await;
        for t in &tags {
            let _ = send(&tx, stream(&format!("Successfully tagged {t}\n"))).await;
        }
    });
    Ok(resp)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn from_lines_name_images_not_stages() {
        let df = "FROM busybox AS base\nRUN x\nfrom --platform=linux/amd64 base AS two\nFROM scratch\nFROM ${X}\nFROM localhost:5000/a:1\n";
        assert_eq!(from_images(df), vec!["busybox", "localhost:5000/a:1"]);
    }

    #[test]
    fn progress_lines_read_as_the_classic_builder() {
        assert_eq!(
            docker_line("STEP 1/2: FROM x").unwrap(),
            "Step 1/2 : FROM x\n"
        );
        assert_eq!(
            docker_line("[1/2] STEP 2/3: RUN y").unwrap(),
            "[1/2] Step 2/3 : RUN y\n"
        );
        assert_eq!(
            docker_line("--> 0123456789abcdef").unwrap(),
            " ---> 0123456789abcdef\n"
        );
        assert_eq!(docker_line("COMMIT x"), None);
        assert_eq!(shown_tag("localhost:5000/a"), "localhost:5000/a:latest");
        assert_eq!(shown_tag("a:1"), "a:1");
    }
}
