//! Container output: `logs` and `attach` (output only), in Docker's
//! multiplexed stream format when the container has no TTY (an 8-byte
//! header per frame: stream 1 stdout / 2 stderr, 3 zero bytes, length
//! big-endian u32), raw otherwise.

use std::io::Write;
use std::sync::Arc;

use berth_engine::{db::Status, inspect, lifecycle, logs};
use bytes::Bytes;
use hyper::{Response, StatusCode};
use tokio::io::AsyncWriteExt;
use tokio::sync::mpsc;

use crate::berth::Ctx;
use crate::containers::find;
use crate::reply::{self, ApiError, Body};
use crate::routes::Req;

/// One of the container's streams, written as frames to a channel.
struct Sink {
    tx: mpsc::Sender<Bytes>,
    stream: u8,
    tty: bool,
    wanted: bool,
}

impl Write for Sink {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        if !self.wanted || buf.is_empty() {
            return Ok(buf.len());
        }
        let mut frame = Vec::with_capacity(buf.len() + 8);
        if !self.tty {
            frame.extend_from_slice(&[self.stream, 0, 0, 0]);
            frame.extend_from_slice(&(buf.len() as u32).to_be_bytes());
        }
        frame.extend_from_slice(buf);
        self.tx
            .blocking_send(Bytes::from(frame))
            .map_err(|_| std::io::Error::new(std::io::ErrorKind::BrokenPipe, "client gone"))?;
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

struct Plan {
    id: String,
    tty: bool,
    opts: logs::LogOptions,
    stdout: bool,
    stderr: bool,
    /// Follow while the container is created (not yet started) too.
    until_exit: bool,
}

/// Runs `logs::show` off the async threads, feeding `tx`.
fn feed(ctx: &Arc<Ctx>, p: Plan, tx: mpsc::Sender<Bytes>) {
    let engine = ctx.engine.clone();
    tokio::task::spawn_blocking(move || {
        let path = engine.log_path(&p.id);
        let closed = tx.clone();
        let id = p.id.clone();
        let e2 = engine.clone();
        let mut running = move || {
            !closed.is_closed()
                && lifecycle::find(&e2, &id).is_ok_and(|r| {
                    r.status == Status::Running || (p.until_exit && r.status == Status::Created)
                })
        };
        let mut out = Sink {
            tx: tx.clone(),
            stream: 1,
            tty: p.tty,
            wanted: p.stdout,
        };
        let mut err = Sink {
            tx,
            stream: 2,
            tty: p.tty,
            wanted: p.stderr,
        };
        let _ = logs::show(&path, &p.opts, &mut running, &mut out, &mut err);
    });
}

async fn plan(ctx: &Arc<Ctx>, r: &Req, id: &str) -> Result<Plan, ApiError> {
    let row = find(ctx, id).await?;
    let row2 = row.clone();
    let tty = ctx
        .read(move |e| Ok(inspect::inspect(e, &row2)["Config"]["Tty"].as_bool() == Some(true)))
        .await?;
    let tail = match r.q("tail") {
        None | Some("" | "all") => None,
        Some(n) => Some(
            n.parse::<usize>()
                .map_err(|_| ApiError::bad(format!("invalid tail {n:?}: a number or \"all\"")))?,
        ),
    };
    let now = berth_engine::now_ms();
    let bound = |k: &str| -> Result<Option<String>, ApiError> {
        match r.q(k).filter(|s| !s.is_empty() && *s != "0") {
            None => Ok(None),
            Some(s) => logs::parse_since(s, now)
                .map(Some)
                .ok_or_else(|| ApiError::bad(format!("invalid {k} {s:?}"))),
        }
    };
    Ok(Plan {
        id: row.id,
        tty,
        opts: logs::LogOptions {
            follow: r.flag("follow"),
            tail,
            since: bound("since")?,
            until: bound("until")?,
            timestamps: r.flag("timestamps"),
        },
        stdout: r.flag("stdout"),
        stderr: r.flag("stderr"),
        until_exit: false,
    })
}

fn content_type(tty: bool) -> &'static str {
    if tty {
        "application/vnd.docker.raw-stream"
    } else {
        "application/vnd.docker.multiplexed-stream"
    }
}

/// `GET /containers/{id}/logs`.
pub async fn logs(ctx: &Arc<Ctx>, r: &Req, id: &str) -> Result<Response<Body>, ApiError> {
    let p = plan(ctx, r, id).await?;
    if !p.stdout && !p.stderr {
        return Err(ApiError::bad(
            "You must choose at least one stream (stdout=1 or stderr=1)",
        ));
    }
    let (resp, tx) = reply::stream(content_type(p.tty));
    feed(ctx, p, tx);
    Ok(resp)
}

/// `POST /containers/{id}/attach`: the container's output from now on
/// (with `logs=1`, its log first) until it exits, on the hijacked
/// connection. Input (`stdin=1`) is not served yet.
pub async fn attach(ctx: &Arc<Ctx>, r: &mut Req, id: &str) -> Result<Response<Body>, ApiError> {
    if r.flag("stdin") {
        return Err(ApiError::new(
            StatusCode::NOT_IMPLEMENTED,
            "berth's Docker API does not implement attaching stdin (POST /containers/{id}/attach?stdin=1) yet; use `docker run -d` and `docker logs -f`",
        ));
    }
    let mut p = plan(ctx, r, id).await?;
    p.opts.follow = r.flag("stream");
    if !r.flag("logs") {
        p.opts.tail = Some(0);
    }
    p.until_exit = true;
    let tty = p.tty;
    let upgrade = r.inner.headers().get(hyper::header::UPGRADE).is_some();
    let (tx, mut rx) = mpsc::channel::<Bytes>(64);
    if !upgrade {
        let (resp, stx) = reply::stream(content_type(tty));
        tokio::spawn(async move {
            while let Some(b) = rx.recv().await {
                if stx.send(b).await.is_err() {
                    break;
                }
            }
        });
        feed(ctx, p, tx);
        return Ok(resp);
    }
    let on = hyper::upgrade::on(&mut r.inner);
    let ctx2 = ctx.clone();
    tokio::spawn(async move {
        let Ok(up) = on.await else { return };
        let mut io = hyper_util::rt::TokioIo::new(up);
        feed(&ctx2, p, tx);
        while let Some(b) = rx.recv().await {
            if io.write_all(&b).await.is_err() {
                return;
            }
            let _ = io.flush().await;
        }
        let _ = io.shutdown().await;
    });
    let mut resp = reply::empty(StatusCode::SWITCHING_PROTOCOLS);
    let h = resp.headers_mut();
    h.insert(hyper::header::CONNECTION, "Upgrade".parse().expect("h"));
    h.insert(hyper::header::UPGRADE, "tcp".parse().expect("h"));
    h.insert(
        hyper::header::CONTENT_TYPE,
        content_type(tty).parse().expect("h"),
    );
    Ok(resp)
}
