//! Container output: `logs` and `attach` (output only), in Docker's
//! multiplexed stream format when the container has no TTY (an 8-byte
//! header per frame: stream 1 stdout / 2 stderr, 3 zero bytes, length
//! big-endian u32), raw otherwise.

use std::io::Write;
use std::sync::Arc;
use std::time::Duration;

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
    let changes = ctx.changes.clone();
    tokio::task::spawn_blocking(move || {
        // Following: woken by the engine's changes (the exit is one), or
        // after 100ms for more of the log.
        let mut seen = changes.count();
        let mut pause = move || seen = changes.wait_blocking(seen, Duration::from_millis(100));
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
        let _ = logs::show_waiting(&path, &p.opts, &mut running, &mut pause, &mut out, &mut err);
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
/// connection; with `stdin=1`, what the client sends goes to the
/// container's stdin through its monitor's attach socket once it runs
/// (discarded, as Docker does, when the container has no open stdin).
pub async fn attach(ctx: &Arc<Ctx>, r: &mut Req, id: &str) -> Result<Response<Body>, ApiError> {
    let mut p = plan(ctx, r, id).await?;
    p.opts.follow = r.flag("stream");
    if !r.flag("logs") {
        p.opts.tail = Some(0);
    }
    p.until_exit = true;
    let tty = p.tty;
    let upgrade = r.inner.headers().get(hyper::header::UPGRADE).is_some();
    if r.flag("stdin") && !upgrade {
        return Err(ApiError::bad(
            "attach with stdin=1 needs the hijacked connection (Upgrade: tcp)",
        ));
    }
    let stdin = if r.flag("stdin") {
        let row = find(ctx, id).await?;
        let open = ctx
            .read(move |e| Ok(inspect::inspect(e, &row)["Config"]["OpenStdin"] == true))
            .await?;
        Some((ctx.clone(), p.id.clone(), open))
    } else {
        None
    };
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
        let (rd, mut wr) = tokio::io::split(hyper_util::rt::TokioIo::new(up));
        feed(&ctx2, p, tx);
        let input = stdin.map(|(ctx, id, open)| tokio::spawn(forward_stdin(ctx, id, open, rd)));
        while let Some(b) = rx.recv().await {
            if wr.write_all(&b).await.is_err() {
                break;
            }
            let _ = wr.flush().await;
        }
        let _ = wr.shutdown().await;
        if let Some(i) = input {
            i.abort();
        }
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

/// The client's bytes to the container's stdin: held until the
/// container runs (its monitor's attach socket appears), then written
/// there; the client's half-close ends the container's input. The socket
/// is looked for again when the engine's state changes (the monitor binds
/// it before it records the container running).
async fn forward_stdin(
    ctx: Arc<Ctx>,
    id: String,
    open: bool,
    mut rd: impl tokio::io::AsyncRead + Unpin,
) {
    use tokio::io::AsyncReadExt;
    let sock = berth_engine::attach::socket_path(&ctx.engine, &id);
    let mut held: Vec<u8> = Vec::new();
    let mut conn: Option<tokio::net::UnixStream> = None;
    let mut buf = vec![0u8; 32 * 1024];
    loop {
        let seen = ctx.changes.count();
        if open && conn.is_none() {
            if let Ok(c) = tokio::net::UnixStream::connect(&sock).await {
                conn = Some(c);
            }
        }
        if let Some(c) = conn.as_mut() {
            if !held.is_empty() {
                if c.write_all(&held).await.is_err() {
                    return;
                }
                held.clear();
            }
        }
        let n = tokio::select! {
            n = rd.read(&mut buf) => n,
            _ = ctx.changes.wait(seen, LOOK_AGAIN), if open && conn.is_none() => continue,
        };
        match n {
            Ok(0) | Err(_) => break,
            Ok(n) if open => held.extend_from_slice(&buf[..n]),
            Ok(_) => {}
        }
        if held.len() > MAX_HELD {
            held.drain(..held.len() - MAX_HELD);
        }
    }
    // The client closed its side: the rest, then end the input.
    if !open {
        return;
    }
    let end = tokio::time::Instant::now() + Duration::from_secs(30);
    while conn.is_none() && tokio::time::Instant::now() < end {
        let seen = ctx.changes.count();
        match tokio::net::UnixStream::connect(&sock).await {
            Ok(c) => conn = Some(c),
            Err(_) => {
                ctx.changes.wait(seen, LOOK_AGAIN).await;
            }
        }
    }
    if let Some(mut c) = conn {
        let _ = c.write_all(&held).await;
        let _ = c.shutdown().await;
    }
}

/// How long to wait for the attach socket without a change before
/// looking again.
const LOOK_AGAIN: Duration = Duration::from_millis(250);

/// Input held for a container not started yet, at most.
const MAX_HELD: usize = 1 << 20;
