//! Managing a running container's resources: runc's `pause`, `resume`,
//! `update`, `ps` and `events` (config-linux.md "Control groups").

use crate::container::{cgroup_of, live_status};
use crate::error::{Error, Result};
use crate::state::{StateRoot, Status};
use berth_cgroups::{Cgroup, OomEvent, Stats};
use oci_spec::runtime::LinuxResources;
use std::time::{Duration, Instant};

fn cgroup(root: &StateRoot, id: &str) -> Result<(Cgroup, Status)> {
    let dir = root.open(id)?;
    let r = dir.load()?;
    let status = live_status(&r, &dir.path);
    let cg = cgroup_of(&r).ok_or_else(|| Error::Invalid {
        id: id.into(),
        message: "no cgroup recorded for this container".into(),
    })?;
    Ok((cg, status))
}

/// The container's cgroup for `op`; a rootless container may have none
/// (see `container::create`), which is an error naming the reason.
fn cgroup_for(root: &StateRoot, id: &str, op: &str) -> Result<(Cgroup, Status)> {
    let (cg, status) = cgroup(root, id)?;
    if cg.is_empty() {
        return Err(Error::Invalid {
            id: id.into(),
            message: format!(
                "cannot {op}: the container has no cgroup (it runs rootless and the user may write no cgroup here; a cgroup v2 subtree delegated to the user gives it one)"
            ),
        });
    }
    Ok((cg, status))
}

fn cg_err(id: &str) -> impl FnOnce(berth_cgroups::Error) -> Error + '_ {
    move |source| Error::Cgroup {
        id: id.into(),
        source,
    }
}

/// Freeze every process of the container.
pub fn pause(root: &StateRoot, id: &str) -> Result<()> {
    let (cg, status) = cgroup_for(root, id, "pause")?;
    if status != Status::Running {
        return Err(Error::WrongStatus {
            id: id.into(),
            status,
            what: "only a running container can be paused".into(),
        });
    }
    cg.freeze().map_err(cg_err(id))
}

/// Thaw a paused container.
pub fn resume(root: &StateRoot, id: &str) -> Result<()> {
    let (cg, status) = cgroup_for(root, id, "resume")?;
    if status != Status::Paused {
        return Err(Error::WrongStatus {
            id: id.into(),
            status,
            what: "only a paused container can be resumed".into(),
        });
    }
    cg.thaw().map_err(cg_err(id))
}

/// Change resources of a created, running or paused container.
pub fn update(root: &StateRoot, id: &str, res: &LinuxResources) -> Result<()> {
    let (cg, status) = cgroup_for(root, id, "update")?;
    if status == Status::Stopped {
        return Err(Error::WrongStatus {
            id: id.into(),
            status,
            what: "a stopped container cannot be updated".into(),
        });
    }
    // Docker's `update` sends blockIO.weight 0 as runc's "unset".
    let res = crate::config::zero_weights_unset(Some(res.clone())).unwrap_or_default();
    cg.update(&res).map_err(cg_err(id))
}

/// Host pids of every process of the container.
pub fn pids(root: &StateRoot, id: &str) -> Result<Vec<i32>> {
    let (cg, status) = cgroup(root, id)?;
    if cg.is_empty() {
        let dir = root.open(id)?;
        let r = dir.load()?;
        let init = if status == Status::Stopped { 0 } else { r.pid };
        return Ok(crate::rootless::processes_without_cgroup(init));
    }
    cg.pids().map_err(cg_err(id))
}

/// Current resource statistics.
pub fn stats(root: &StateRoot, id: &str) -> Result<Stats> {
    let (cg, status) = cgroup(root, id)?;
    if status == Status::Stopped {
        return Err(Error::WrongStatus {
            id: id.into(),
            status,
            what: "a stopped container has no statistics".into(),
        });
    }
    cg.stats().map_err(cg_err(id))
}

/// One event of `events`.
#[derive(Debug, Clone, serde::Serialize)]
pub struct Event {
    #[serde(rename = "type")]
    pub kind: &'static str,
    pub id: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub data: Option<Stats>,
}

/// runc's streaming `events`: statistics every `interval` and an `oom`
/// event on each OOM kill, until the container stops.
pub fn events(
    root: &StateRoot,
    id: &str,
    interval: Duration,
    mut emit: impl FnMut(&Event),
) -> Result<()> {
    let (cg, _) = cgroup(root, id)?;
    let mut watcher = cg.oom_watcher().ok();
    let mut next = Instant::now();
    loop {
        let status = crate::container::state(root, id)
            .map(|s| s.status)
            .unwrap_or(Status::Stopped);
        if status == Status::Stopped {
            return Ok(());
        }
        if Instant::now() >= next {
            if let Ok(s) = cg.stats() {
                emit(&Event {
                    kind: "stats",
                    id: id.into(),
                    data: Some(s),
                });
            }
            next = Instant::now() + interval;
        }
        let wait = next
            .saturating_duration_since(Instant::now())
            .min(Duration::from_millis(500));
        match watcher.as_mut().map(|w| w.wait(Some(wait))) {
            Some(Ok(OomEvent::Oom(_))) => emit(&Event {
                kind: "oom",
                id: id.into(),
                data: None,
            }),
            Some(Ok(OomEvent::Gone)) => return Ok(()),
            Some(Ok(OomEvent::Timeout)) => {}
            Some(Err(_)) | None => std::thread::sleep(wait),
        }
    }
}
