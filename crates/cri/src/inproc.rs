//! Engine changes done in this process instead of by a `berth` command,
//! where that is safe: `pod create` (the namespaces are made and pinned on
//! short-lived threads; the engine's locks are `flock`s on files opened per
//! call, so concurrent calls exclude each other as processes do), `create`
//! (`berth create`'s own code, handed in by the `berth-cri` binary: it
//! writes the container's record and bundle and runs nothing) and
//! `start` (the container's monitor is spawned from here, detached as
//! `berth start` spawns it: its own session, from a read-only view of the
//! `berth` binary made once, CVE-2019-5736). A `berth` command costs a
//! process, a re-exec from the protected binary and an engine open per
//! call; the CRI's start path made three of them per pod.
//!
//! Containers stay independent of the service: a monitor started here is
//! reaped by it while it runs (berth-svc's `monitors`, as the API service)
//! and adopted by init when it goes.

use std::path::Path;
use std::sync::Arc;
use std::time::Instant;

use berth_engine::pods::PodCreate;
use berth_engine::ContainerRow;
use berth_svc::monitors::Monitors;
use tonic::Status;

use crate::{CreateFn, Ctx};

/// What is static for the service's life: the monitors it spawns
/// (berth-svc's, shared with the API service), whether pods are made
/// here, and how containers are.
pub struct Fast {
    /// Spawns and reaps the containers' monitors; None when starts go
    /// through `berth start` (BERTH_CRI_INPROC=0, rootless, or no
    /// read-only view of the binary could be made).
    monitors: Option<Arc<Monitors>>,
    /// Pods are created in this process.
    pods: bool,
    /// `berth create`'s code, run in this process; None when creates go
    /// through `berth create` (BERTH_CRI_INPROC=0, rootless, or a binary
    /// that did not hand it in).
    create: Option<Arc<CreateFn>>,
}

impl Fast {
    pub fn new(berth: &Path, create: Option<Arc<CreateFn>>) -> Fast {
        // BERTH_CRI_INPROC=0: every change by a `berth` command, as
        // before (bench/cri.sh compares both with one build).
        // Not rootless either: a rootless `berth` joins the user's
        // namespaces first (docs/rootless.md), which this process has not.
        let on = std::env::var_os("BERTH_CRI_INPROC").is_none_or(|v| v != "0")
            && nix::unistd::geteuid().is_root();
        let monitors = on
            .then(|| Arc::new(Monitors::new(berth)))
            .filter(|m| m.available());
        Fast {
            monitors,
            pods: on,
            create: create.filter(|_| on),
        }
    }
}

/// Prints how long `what` took when `BERTH_CRI_TRACE` is set (a profile
/// of the calls on the service's stderr).
pub fn trace(what: &str, t0: Instant) {
    static ON: std::sync::OnceLock<bool> = std::sync::OnceLock::new();
    if *ON.get_or_init(|| std::env::var_os("BERTH_CRI_TRACE").is_some_and(|v| !v.is_empty())) {
        eprintln!(
            "berth-cri: trace: {what}: {:.1} ms",
            t0.elapsed().as_secs_f64() * 1000.0
        );
    }
}

/// The error of an engine call, as `berth` would print it (with its
/// causes), as a status.
fn status(e: &(dyn std::error::Error + 'static)) -> Status {
    let mut msg = e.to_string();
    let mut src = e.source();
    while let Some(s) = src {
        let m = s.to_string();
        if !msg.contains(&m) {
            msg.push_str(": ");
            msg.push_str(&m);
        }
        src = s.source();
    }
    status_of(msg)
}

/// An engine error message as a status: not found when it says so.
fn status_of(msg: String) -> Status {
    if msg.contains("no such") || msg.contains("not found") {
        Status::not_found(msg)
    } else {
        Status::unknown(msg)
    }
}

/// `pod create FLAGS` (as `berth pod create` parses them) when every flag
/// is one this knows and the pod uses the host's user namespace; None
/// otherwise (the command then runs).
fn pod_create_of(args: &[String]) -> Option<PodCreate> {
    let mut it = args.iter();
    if it.next()? != "pod" || it.next()? != "create" {
        return None;
    }
    let mut c = PodCreate {
        name: None,
        publish: vec![],
        network: None,
        share: None,
        hostname: None,
        labels: vec![],
        userns: None,
    };
    while let Some(a) = it.next() {
        let (flag, inline) = match a.split_once('=') {
            Some((f, v)) => (f, Some(v.to_string())),
            None => (a.as_str(), None),
        };
        let mut val = || inline.clone().or_else(|| it.next().cloned());
        match flag {
            "--name" => c.name = Some(val()?),
            "--publish" => c.publish.push(val()?),
            "--network" => c.network = Some(val()?),
            "--share" => c.share = Some(val()?),
            "--hostname" => c.hostname = Some(val()?),
            "--label" => c.labels.push(val()?),
            "--userns" => c.userns = Some(val()?),
            _ => return None,
        }
    }
    // A pod of its own user namespace is made by forked helpers, which a
    // multi-threaded process must not fork: only the host's here (what
    // the CRI asks for).
    (c.userns.as_deref() == Some("host")).then_some(c)
}

/// `berth pod create ARGS`, in this process when it can be: the new
/// pod's ID.
pub async fn pod_create(ctx: &Ctx, args: &[String]) -> Result<String, Status> {
    let t0 = Instant::now();
    let Some(c) = pod_create_of(args).filter(|_| ctx.fast.pods) else {
        return ctx.berth(args).await;
    };
    let e = ctx.engine.clone();
    let row = tokio::task::spawn_blocking(move || berth_engine::pods::create(&e, &c))
        .await
        .map_err(|e| Status::internal(format!("pod create: {e}")))?
        .map_err(|e| status(&e))?;
    trace("pod create (in process)", t0);
    Ok(row.id)
}

/// `berth create ARGS` (`args` starts with `create`), in this process
/// when the binary handed in `berth create`'s code: the new container's
/// ID. Creating runs no container (the monitor started later does), so
/// this multi-threaded process may do it.
pub async fn create(ctx: &Ctx, args: Vec<String>) -> Result<String, Status> {
    let t0 = Instant::now();
    let Some(create) = ctx.fast.create.clone() else {
        let out = ctx.berth(&args).await?;
        return Ok(out.lines().last().unwrap_or_default().to_string());
    };
    let e = ctx.engine.clone();
    let id = tokio::task::spawn_blocking(move || create(&e, &args[1..]))
        .await
        .map_err(|e| Status::internal(format!("create: {e}")))?
        .map_err(status_of)?;
    trace("create (in process)", t0);
    Ok(id)
}

/// `berth start ID`, in this process when the monitors can be spawned
/// here: spawns the container's monitor and waits for its report.
pub async fn start(ctx: &Ctx, row: ContainerRow) -> Result<(), Status> {
    let t0 = Instant::now();
    let Some(monitors) = ctx.fast.monitors.as_ref() else {
        ctx.berth(&["start".into(), row.id]).await?;
        trace("start (berth command)", t0);
        return Ok(());
    };
    if row.status == berth_engine::Status::Running {
        return Ok(());
    }
    berth_svc::monitors::start_detached(monitors, &ctx.engine, row)
        .await
        .map_err(status_of)?;
    trace("start (in process)", t0);
    Ok(())
}
