//! Exec, Attach and PortForward: each checks its target and answers with
//! a URL of the streaming server (crate::streaming), where the client
//! then connects.

use k8s_cri::v1::*;
use tonic::Status;

use super::{find_container, find_sandbox, running};
use crate::streaming::{Options, Request};
use crate::Ctx;

fn server(ctx: &Ctx) -> Result<&crate::streaming::Server, Status> {
    ctx.streaming
        .get()
        .map(|s| s.as_ref())
        .ok_or_else(|| Status::unavailable("the streaming server is not started"))
}

pub async fn exec(ctx: &Ctx, r: ExecRequest) -> Result<ExecResponse, Status> {
    if r.cmd.is_empty() {
        return Err(Status::invalid_argument("Exec: cmd is empty"));
    }
    if !(r.stdin || r.stdout || r.stderr) {
        return Err(Status::invalid_argument(
            "Exec: one of stdin, stdout and stderr must be set",
        ));
    }
    if r.tty && r.stderr {
        return Err(Status::invalid_argument(
            "Exec: tty and stderr cannot both be true (a tty merges stderr into stdout)",
        ));
    }
    let id = r.container_id.clone();
    let row = ctx
        .read(move |e| running(find_container(e, &id)?.0))
        .await?;
    let url = server(ctx)?.url(Request::Exec(Options {
        container: row.id,
        cmd: r.cmd,
        tty: r.tty,
        stdin: r.stdin,
        stdout: r.stdout,
        stderr: r.stderr,
    }))?;
    Ok(ExecResponse { url })
}

pub async fn attach(ctx: &Ctx, r: AttachRequest) -> Result<AttachResponse, Status> {
    if !(r.stdin || r.stdout || r.stderr) {
        return Err(Status::invalid_argument(
            "Attach: one of stdin, stdout and stderr must be set",
        ));
    }
    let id = r.container_id.clone();
    let (row, tty) = ctx
        .read(move |e| {
            let row = running(find_container(e, &id)?.0)?;
            let cfg = berth_engine::create::ContainerConfig::of(&row).map_err(crate::engine_err)?;
            Ok((row, cfg.options.tty))
        })
        .await?;
    // The container's own tty decides how its output comes (as the
    // kubelet: a tty container's stderr is its stdout).
    let url = server(ctx)?.url(Request::Attach(Options {
        container: row.id,
        cmd: vec![],
        tty: r.tty && tty,
        stdin: r.stdin,
        stdout: r.stdout,
        stderr: r.stderr && !(r.tty && tty),
    }))?;
    Ok(AttachResponse { url })
}

pub async fn port_forward(ctx: &Ctx, r: PortForwardRequest) -> Result<PortForwardResponse, Status> {
    let id = r.pod_sandbox_id.clone();
    let netns = ctx
        .read(move |e| {
            let (p, m) = find_sandbox(e, &id)?;
            if crate::meta::is_stopped(e, &p.id) {
                return Err(Status::failed_precondition(format!(
                    "pod sandbox {} is not ready",
                    p.id
                )));
            }
            Ok(if m.host_network {
                None
            } else {
                Some(berth_engine::pods::ns_path(e, &p.id, "net"))
            })
        })
        .await?;
    let url = server(ctx)?.url(Request::PortForward { netns })?;
    Ok(PortForwardResponse { url })
}
