//! TTY resize: `POST /containers/{id}/resize?h=&w=` (a `resize` request
//! on the container monitor's control socket, which sets its pty's
//! window size) and `POST /exec/{id}/resize?h=&w=` (the window size of
//! the pty the exec'd process has as its stdin, found from the `berth
//! exec` child the service started). The kernel sends SIGWINCH to the
//! pty's foreground process group either way.

use std::os::unix::fs::OpenOptionsExt;
use std::path::PathBuf;
use std::sync::Arc;

use berth_engine::{attach, db::Status, inspect};
use hyper::{Response, StatusCode};
use tokio::io::AsyncWriteExt;

use crate::berth::Ctx;
use crate::containers::find;
use crate::reply::{self, ApiError, Body};
use crate::routes::Req;

fn size(r: &Req) -> Result<(u16, u16), ApiError> {
    let dim = |k: &str| -> Result<u16, ApiError> {
        let v = r.q(k).unwrap_or_default();
        v.parse::<u16>().map_err(|_| {
            ApiError::bad(format!(
                "resize: invalid {k} {v:?}: a number of {}",
                if k == "h" { "rows" } else { "columns" }
            ))
        })
    };
    Ok((dim("h")?, dim("w")?))
}

/// `POST /containers/{id}/resize`.
pub async fn container(ctx: &Arc<Ctx>, r: &Req, id: &str) -> Result<Response<Body>, ApiError> {
    let (rows, cols) = size(r)?;
    let row = find(ctx, id).await?;
    if row.status != Status::Running {
        return Err(ApiError::conflict(format!(
            "Container {} is not running",
            row.id
        )));
    }
    let row2 = row.clone();
    let tty = ctx
        .read(move |e| Ok(inspect::inspect(e, &row2)["Config"]["Tty"] == true))
        .await?;
    if !tty {
        // As dockerd: a container without a TTY has nothing to resize.
        return Err(ApiError::internal(format!(
            "cannot resize container {}: it has no TTY",
            row.id
        )));
    }
    let ctl = attach::control_path(&ctx.engine, &row.id);
    let line = attach::Request::Resize { rows, cols }.line();
    let sent = async {
        let mut s = if ctl.as_os_str().len() < 100 {
            tokio::net::UnixStream::connect(&ctl).await?
        } else {
            let std =
                attach::with_socket_path(&ctl, |p| std::os::unix::net::UnixStream::connect(p))?;
            std.set_nonblocking(true)?;
            tokio::net::UnixStream::from_std(std)?
        };
        s.write_all(line.as_bytes()).await?;
        s.shutdown().await
    }
    .await;
    sent.map_err(|e| {
        ApiError::internal(format!(
            "resize container {}: its monitor's control socket {}: {e}",
            row.id,
            ctl.display()
        ))
    })?;
    Ok(reply::empty(StatusCode::OK))
}

/// The pty the exec'd process (a child of the `berth exec` process
/// `pid`) has as its stdin.
fn exec_pty(pid: u32) -> Option<PathBuf> {
    let kids = std::fs::read_to_string(format!("/proc/{pid}/task/{pid}/children")).ok()?;
    kids.split_whitespace().find_map(|k| {
        let fd = PathBuf::from(format!("/proc/{k}/fd/0"));
        let target = std::fs::read_link(&fd).ok()?;
        target.starts_with("/dev/pts/").then_some(fd)
    })
}

/// `POST /exec/{id}/resize`.
pub async fn exec(ctx: &Arc<Ctx>, r: &Req, id: &str) -> Result<Response<Body>, ApiError> {
    let (rows, cols) = size(r)?;
    let rec = crate::exec::load(ctx, id)?;
    if rec["Config"]["Tty"] != true {
        return Err(ApiError::internal(format!(
            "cannot resize exec {id}: it has no TTY"
        )));
    }
    if rec["Running"] != true {
        return Err(ApiError::conflict(format!("exec {id} is not running")));
    }
    let pid = rec["Pid"].as_u64().unwrap_or(0) as u32;
    let id = id.to_string();
    ctx.read(move |_| {
        // The process may not be there yet right after the start.
        for _ in 0..100 {
            if let Some(pty) = exec_pty(pid) {
                let f = std::fs::OpenOptions::new()
                    .read(true)
                    .write(true)
                    .custom_flags(libc::O_NOCTTY)
                    .open(&pty)
                    .map_err(|e| {
                        ApiError::internal(format!("resize exec {id}: open its pty: {e}"))
                    })?;
                let ws = rustix::termios::Winsize {
                    ws_row: rows,
                    ws_col: cols,
                    ws_xpixel: 0,
                    ws_ypixel: 0,
                };
                return rustix::termios::tcsetwinsize(&f, ws).map_err(|e| {
                    ApiError::internal(format!("resize exec {id}: set the window size: {e}"))
                });
            }
            std::thread::sleep(std::time::Duration::from_millis(20));
        }
        Err(ApiError::conflict(format!(
            "resize exec {id}: its process has no TTY (it has exited?)"
        )))
    })
    .await?;
    Ok(reply::empty(StatusCode::OK))
}
