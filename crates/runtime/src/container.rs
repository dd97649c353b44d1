//! The container lifecycle seen from the runtime process (runtime.md
//! "Operations": create, start, state, kill, delete; runc's list).

mod create;
mod kill;

use create::child_error;
pub use create::{create, create_hooked, write_pid_file, UsernsHook};
pub(crate) use create::{receive_console, terminal_sockets};
pub use kill::{delete, kill, parse_signal};

use crate::config::ContainerConfig;
use crate::error::{sys, Error, Result};
use crate::hooks;
use crate::state::{self, OciState, Record, StateRoot, Status};
use crate::sync::{Channel, Msg};
use berth_cgroups::Cgroup;
use std::os::fd::{AsFd, OwnedFd};
use std::path::{Path, PathBuf};

/// Options of `create` (and of `run`).
#[derive(Debug, Clone, Default)]
pub struct CreateOptions {
    pub id: String,
    pub bundle: PathBuf,
    pub pid_file: Option<PathBuf>,
    pub console_socket: Option<PathBuf>,
    pub no_pivot: bool,
    pub no_new_keyring: bool,
    pub preserve_fds: u32,
    /// `run` in the foreground with a terminal and no console socket: the
    /// runtime keeps the pty master itself.
    pub internal_console: bool,
    /// Created to be started at once by the same caller (`run`, the
    /// engine): no exec fifo; [`start_spawned`] releases the process over
    /// the setup channel (one file less to create and remove per container,
    /// and a creator that dies before starting takes the process with it).
    pub start_now: bool,
    /// runc's `--rootless`: cgroups are best effort (see
    /// [`crate::rootless`]); `None` detects it (`auto`).
    pub rootless: Option<bool>,
    /// A user namespace the caller made for idmapped mounts (the engine's,
    /// with the container's maps): used for the mounts with its maps.
    pub idmap_userns: Option<crate::idmap::GivenUserns>,
}

/// A container (or exec'd process) that has been set up.
#[derive(Debug)]
pub struct Spawned {
    /// Host pid of the process.
    pub pid: i32,
    /// The pty master, when the runtime kept it (`internal_console`).
    pub console: Option<OwnedFd>,
    /// `start_now`: the setup channel the process waits on for its start.
    pub release: Option<Channel>,
}

/// State JSON of a container for hooks and the seccomp listener.
pub fn oci_state(cfg: &ContainerConfig, id: &str, status: &str, pid: i32) -> Vec<u8> {
    let st = serde_json::json!({
        "ociVersion": cfg.oci_version,
        "id": id,
        "status": status,
        "pid": pid,
        "bundle": cfg.bundle,
        "annotations": cfg.annotations,
    });
    serde_json::to_vec(&st).expect("state always serializes")
}

/// The same state JSON with another status.
pub fn with_status(state_json: &str, status: &str) -> Vec<u8> {
    match serde_json::from_str::<serde_json::Value>(state_json) {
        Ok(mut v) => {
            v["status"] = serde_json::Value::String(status.into());
            serde_json::to_vec(&v).expect("state always serializes")
        }
        Err(_) => state_json.as_bytes().to_vec(),
    }
}

pub(crate) fn record_state(r: &Record, status: Status) -> Vec<u8> {
    serde_json::to_vec(&OciState {
        oci_version: r.oci_version.clone(),
        id: r.id.clone(),
        status,
        pid: (r.pid > 0).then_some(r.pid),
        bundle: r.bundle.clone(),
        annotations: r.annotations.clone(),
    })
    .expect("state always serializes")
}

fn now_rfc3339() -> String {
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap_or_default();
    format_rfc3339(now.as_secs() as i64, now.subsec_nanos())
}

/// Format a UNIX time as RFC 3339 UTC.
pub fn format_rfc3339(secs: i64, nanos: u32) -> String {
    let days = secs.div_euclid(86_400);
    let rem = secs.rem_euclid(86_400);
    // Civil from days (Howard Hinnant's algorithm).
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let y = yoe + era * 400;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = if m <= 2 { y + 1 } else { y };
    format!(
        "{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}.{nanos:09}Z",
        rem / 3600,
        (rem % 3600) / 60,
        rem % 60
    )
}

/// The live status of a recorded container.
pub fn live_status(r: &Record, dir_path: &Path) -> Status {
    if r.status == Status::Creating {
        // Interrupted create: the creator died before finishing.
        return if state::init_alive(r.creator.0, r.creator.1) {
            Status::Creating
        } else {
            Status::Stopped
        };
    }
    if !state::init_alive(r.pid, r.start_time) {
        return Status::Stopped;
    }
    if dir_path.join(state::FIFO).exists() {
        return Status::Created;
    }
    if let Some(cg) = cgroup_of(r) {
        if matches!(cg.freezer_state(), Ok(berth_cgroups::FreezerState::Frozen)) {
            return Status::Paused;
        }
    }
    Status::Running
}

/// The container's cgroup, from its record.
pub fn cgroup_of(r: &Record) -> Option<Cgroup> {
    r.cgroup
        .clone()
        .and_then(|v| serde_json::from_value(v).ok())
}

/// runtime.md "state".
pub fn state(root: &StateRoot, id: &str) -> Result<OciState> {
    // Read without the lock, as `list` does: `create` holds the lock while
    // it runs (hooks included), and `state` must answer "creating" then
    // instead of waiting (runtime.md "State"). The record is written
    // atomically, so an unlocked read sees a whole one.
    state::validate_id(id)?;
    let path = root.path.join(id);
    let file = path.join(state::STATE_FILE);
    let text = match std::fs::read(&file) {
        Ok(t) => t,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            return Err(state::StateError::NotFound(id.into()).into())
        }
        Err(source) => {
            return Err(state::StateError::Io {
                op: "read state",
                path: file,
                source,
            }
            .into())
        }
    };
    let r: Record = serde_json::from_slice(&text).map_err(|e| state::StateError::Corrupt {
        id: id.into(),
        path: file.clone(),
        message: e.to_string(),
    })?;
    let status = live_status(&r, &path);
    Ok(OciState {
        oci_version: r.oci_version,
        id: r.id,
        status,
        pid: (status != Status::Stopped && r.pid > 0).then_some(r.pid),
        bundle: r.bundle,
        annotations: r.annotations,
    })
}

/// runtime.md "start": release the process blocked in create.
pub fn start(root: &StateRoot, id: &str) -> Result<()> {
    let dir = root.open(id)?;
    let r = dir.load()?;
    let status = live_status(&r, &dir.path);
    if status != Status::Created {
        return Err(Error::WrongStatus {
            id: id.into(),
            status,
            what: "only a created container can be started".into(),
        });
    }
    let fifo = dir.fifo_path();
    let f = std::fs::OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_NONBLOCK | libc::O_CLOEXEC)
        .open(&fifo)
        .map_err(sys(id, "open exec fifo"))?;
    // The container opens its end once ours exists; wait for its byte.
    let mut buf = [0u8; 1];
    loop {
        match nix::unistd::read(&f, &mut buf) {
            Ok(1) => break,
            Ok(_) | Err(nix::Error::EAGAIN) => {
                // A short-lived program may have written its byte and
                // exited between our read and this check: read once more.
                if !state::init_alive(r.pid, r.start_time) {
                    if matches!(nix::unistd::read(&f, &mut buf), Ok(1)) {
                        break;
                    }
                    return Err(Error::Setup {
                        id: id.into(),
                        message: "the container process died before it could start".into(),
                    });
                }
                let mut pfd = [nix::poll::PollFd::new(
                    f.as_fd(),
                    nix::poll::PollFlags::POLLIN,
                )];
                let _ = nix::poll::poll(&mut pfd, nix::poll::PollTimeout::from(50u16));
            }
            Err(e) => return Err(sys(id, "read exec fifo")(e.into())),
        }
    }
    // Released: record it as running while it runs its startContainer
    // hooks and executes the program.
    let r = save_running(&dir, r)?;
    // The process keeps its end open until it executes the program (or
    // exits): end of file means the startContainer hooks are done.
    loop {
        match nix::unistd::read(&f, &mut buf) {
            Ok(0) => break,
            Ok(_) | Err(nix::Error::EINTR) => {}
            Err(nix::Error::EAGAIN) => {
                let mut pfd = [nix::poll::PollFd::new(
                    f.as_fd(),
                    nix::poll::PollFlags::POLLIN,
                )];
                let _ = nix::poll::poll(&mut pfd, nix::poll::PollTimeout::NONE);
            }
            Err(e) => return Err(sys(id, "read exec fifo")(e.into())),
        }
    }
    let _ = std::fs::remove_file(&fifo);
    drop(dir);
    poststart(root, id, &r)
}

/// Records a released container as running.
fn save_running(dir: &state::StateDir, mut r: Record) -> Result<Record> {
    r.status = Status::Running;
    dir.save(&r)?;
    Ok(r)
}

/// Runs the poststart hooks of a started container, after the program
/// started. runtime.md "Lifecycle" step 9: a failing hook is an error, the
/// container is stopped and destroyed (steps 12-13, poststop hooks
/// included), as runc does; `start` then fails with the hook's message.
fn poststart(root: &StateRoot, id: &str, r: &Record) -> Result<()> {
    let state = record_state(r, Status::Running);
    let Err(source) = hooks::run_hooks("poststart", &r.poststart, &state) else {
        return Ok(());
    };
    if let Err(e) = delete(root, id, true) {
        tracing::error!("{e}");
    }
    Err(Error::Hook {
        id: id.into(),
        source,
    })
}

/// runtime.md "start" for a container created with `start_now` by this
/// same caller: release the process over its setup channel. A container
/// created without `start_now` is started through its fifo ([`start`]).
pub fn start_spawned(root: &StateRoot, id: &str, spawned: &mut Spawned) -> Result<()> {
    let Some(mut chan) = spawned.release.take() else {
        return start(root, id);
    };
    let dir = root.open(id)?;
    let r = dir.load()?;
    chan.send(&Msg::Start)
        .map_err(|e| child_error(id, spawned.pid, e))?;
    let r = save_running(&dir, r)?;
    // As in [`start`]: the channel closes when the program is executing;
    // a failed startContainer hook reports here.
    match chan.recv() {
        Ok(Msg::Error(message)) => {
            return Err(Error::Setup {
                id: id.into(),
                message,
            })
        }
        Ok(m) => {
            return Err(Error::Setup {
                id: id.into(),
                message: format!("unexpected setup message {m:?} after start"),
            })
        }
        Err(_) => {}
    }
    drop(dir);
    poststart(root, id, &r)
}

use std::os::unix::fs::OpenOptionsExt;

/// One row of `list`.
#[derive(Debug, Clone, serde::Serialize)]
pub struct ListEntry {
    #[serde(rename = "ociVersion")]
    pub oci_version: String,
    pub id: String,
    pub pid: i32,
    pub status: Status,
    pub bundle: PathBuf,
    pub rootfs: PathBuf,
    pub created: String,
    pub owner: String,
    #[serde(skip_serializing_if = "std::collections::BTreeMap::is_empty")]
    pub annotations: std::collections::BTreeMap<String, String>,
}

/// runc's `list`: every container under the root (read without locking,
/// so a container being created does not block the listing).
pub fn list(root: &StateRoot) -> Result<Vec<ListEntry>> {
    let mut out = Vec::new();
    for id in root.list()? {
        let dir = root.path.join(&id);
        let Ok(text) = std::fs::read(dir.join(state::STATE_FILE)) else {
            continue;
        };
        let Ok(r) = serde_json::from_slice::<Record>(&text) else {
            continue;
        };
        let status = live_status(&r, &dir);
        out.push(ListEntry {
            oci_version: r.oci_version,
            id: r.id,
            pid: if status == Status::Stopped { 0 } else { r.pid },
            status,
            bundle: r.bundle,
            rootfs: r.rootfs,
            created: r.created,
            owner: r.owner,
            annotations: r.annotations,
        });
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rfc3339() {
        assert_eq!(format_rfc3339(0, 0), "1970-01-01T00:00:00.000000000Z");
        assert_eq!(
            format_rfc3339(1_700_000_000, 5),
            "2023-11-14T22:13:20.000000005Z"
        );
    }
}
