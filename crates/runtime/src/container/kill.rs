//! `kill` and `delete` (runtime.md "kill", "delete"; runc's `--all`).

use super::{cgroup_of, live_status, record_state};
use crate::error::{sys, Error, Result};
use crate::hooks;
use crate::state::{self, Record, StateRoot, Status};
use std::time::{Duration, Instant};

/// Parse a signal given as a name (`KILL`, `SIGKILL`) or a number.
pub fn parse_signal(s: &str) -> Option<i32> {
    if let Ok(n) = s.parse::<i32>() {
        return (1..=64).contains(&n).then_some(n);
    }
    let up = s.to_ascii_uppercase();
    let name = if up.starts_with("SIG") {
        up
    } else {
        format!("SIG{up}")
    };
    if let Some(rest) = name.strip_prefix("SIGRTMIN") {
        let base = libc::SIGRTMIN();
        return match rest {
            "" => Some(base),
            r => r
                .strip_prefix('+')
                .and_then(|n| n.parse::<i32>().ok())
                .map(|n| base + n),
        };
    }
    if let Some(rest) = name.strip_prefix("SIGRTMAX") {
        let base = libc::SIGRTMAX();
        return match rest {
            "" => Some(base),
            r => r
                .strip_prefix('-')
                .and_then(|n| n.parse::<i32>().ok())
                .map(|n| base - n),
        };
    }
    name.parse::<nix::sys::signal::Signal>()
        .ok()
        .map(|s| s as i32)
}

fn send_signal(id: &str, r: &Record, sig: i32) -> Result<()> {
    let pidfd = rustix::process::pidfd_open(
        rustix::process::Pid::from_raw(r.pid).ok_or_else(|| Error::Invalid {
            id: id.into(),
            message: "no process recorded".into(),
        })?,
        rustix::process::PidfdFlags::empty(),
    )
    .map_err(|e| sys(id, "open the container process")(e.into()))?;
    // The pidfd pins the process: check it is still the container's init.
    if !state::init_alive(r.pid, r.start_time) {
        return Err(Error::WrongStatus {
            id: id.into(),
            status: Status::Stopped,
            // runc's wording, which containerd's shim (checkKillError)
            // maps to "process already finished" instead of a failure.
            what: "container not running: there is no process to signal".into(),
        });
    }
    if sig == 0 {
        // Signal 0 only checks that the process exists (kill(2)); the
        // pinned, still-alive init is that check.
        return Ok(());
    }
    let signal = rustix::process::Signal::from_named_raw(sig).ok_or_else(|| Error::Invalid {
        id: id.into(),
        message: format!("invalid signal {sig}"),
    })?;
    rustix::process::pidfd_send_signal(&pidfd, signal)
        .map_err(|e| sys(id, format!("send signal {sig}"))(e.into()))
}

/// runtime.md "kill" (and runc's `--all`); signal 0 only checks that the
/// container has a live process, as kill(2) and runc do.
pub fn kill(root: &StateRoot, id: &str, sig: i32, all: bool) -> Result<()> {
    let dir = root.open(id)?;
    let r = dir.load()?;
    let status = live_status(&r, &dir.path);
    if matches!(status, Status::Stopped | Status::Creating) {
        return Err(Error::WrongStatus {
            id: id.into(),
            status,
            // runc's wording, which containerd's shim (checkKillError)
            // maps to "process already finished" instead of a failure.
            what: "container not running: there is no process to signal".into(),
        });
    }
    if all {
        let cg = cgroup_of(&r).ok_or_else(|| Error::Invalid {
            id: id.into(),
            message: "no cgroup recorded; cannot signal all processes".into(),
        })?;
        if sig == 0 {
            // Existence check only (runc signals every process with 0).
            return Ok(());
        }
        let signal = nix::sys::signal::Signal::try_from(sig)
            .map_err(|e| sys(id, "parse signal")(e.into()))?;
        if cg.is_empty() {
            // Rootless without a cgroup: the processes found otherwise.
            for pid in crate::rootless::processes_without_cgroup(r.pid) {
                let _ = nix::sys::signal::kill(nix::unistd::Pid::from_raw(pid), signal);
            }
            return Ok(());
        }
        return cg.kill_all(signal).map_err(|source| Error::Cgroup {
            id: id.into(),
            source,
        });
    }
    send_signal(id, &r, sig)
}

fn wait_gone(r: &Record, timeout: Duration) -> bool {
    let end = Instant::now() + timeout;
    while Instant::now() < end {
        if !state::init_alive(r.pid, r.start_time) {
            return true;
        }
        std::thread::sleep(Duration::from_millis(2));
    }
    !state::init_alive(r.pid, r.start_time)
}

/// runtime.md "delete".
pub fn delete(root: &StateRoot, id: &str, force: bool) -> Result<()> {
    let dir = match root.open(id) {
        Ok(d) => d,
        Err(crate::state::StateError::NotFound(_)) if force => return Ok(()),
        Err(e) => return Err(e.into()),
    };
    let r = match dir.load() {
        Ok(r) => r,
        Err(_) if force => return dir.remove().map_err(Into::into),
        Err(e) => return Err(e.into()),
    };
    let status = live_status(&r, &dir.path);
    match status {
        Status::Stopped => {}
        Status::Created | Status::Creating => {
            let _ = send_signal(id, &r, libc::SIGKILL);
        }
        Status::Running | Status::Paused if force => {
            if let Some(cg) = cgroup_of(&r) {
                if cg.is_empty() {
                    for pid in crate::rootless::processes_without_cgroup(r.pid) {
                        let _ = nix::sys::signal::kill(
                            nix::unistd::Pid::from_raw(pid),
                            nix::sys::signal::SIGKILL,
                        );
                    }
                }
                let _ = cg.kill_all(nix::sys::signal::SIGKILL);
                let _ = cg.thaw();
            }
            let _ = send_signal(id, &r, libc::SIGKILL);
        }
        Status::Running | Status::Paused => {
            return Err(Error::WrongStatus {
                id: id.into(),
                status,
                what: "stop it first or use delete --force".into(),
            })
        }
    }
    if status != Status::Stopped && !wait_gone(&r, Duration::from_secs(10)) {
        return Err(Error::Invalid {
            id: id.into(),
            message: "the container process did not die after SIGKILL".into(),
        });
    }
    let mut errors = Vec::new();
    if let Some(cg) = cgroup_of(&r) {
        if let Err(e) = cg.destroy() {
            errors.push(format!("cgroup: {e}"));
        }
        if r.status == Status::Creating {
            // Interrupted create: the record may predate cg.create(), so
            // `created` can miss the container's own (empty) leaf dirs.
            for d in cg.dirs() {
                let _ = std::fs::remove_dir(&d);
            }
        }
    }
    // runtime.md "Lifecycle" step 13: every poststop hook runs and a
    // failure does not stop the lifecycle: the state is removed all the
    // same. `delete` then reports the first failure (exit non-zero), as runc
    // does since it fixed opencontainers/runc#2905 (runc 1.1 exited 0), so
    // callers learn that a cleanup hook failed.
    let mut hook_failure = None;
    for h in &r.poststop {
        let one = std::slice::from_ref(h);
        if let Err(e) = hooks::run_hooks("poststop", one, &record_state(&r, Status::Stopped)) {
            hook_failure.get_or_insert(e);
        }
    }
    if let Err(e) = dir.remove() {
        errors.push(e.to_string());
    }
    if !errors.is_empty() {
        return Err(Error::Invalid {
            id: id.into(),
            message: format!("delete left things behind: {}", errors.join("; ")),
        });
    }
    match hook_failure {
        Some(source) => Err(Error::Hook {
            id: id.into(),
            source,
        }),
        None => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn signals_parse() {
        assert_eq!(parse_signal("KILL"), Some(9));
        assert_eq!(parse_signal("SIGTERM"), Some(15));
        assert_eq!(parse_signal("term"), Some(15));
        assert_eq!(parse_signal("9"), Some(9));
        assert_eq!(parse_signal("0"), None);
        assert_eq!(parse_signal("BOGUS"), None);
        assert_eq!(parse_signal("SIGRTMIN+1"), Some(libc::SIGRTMIN() + 1));
    }
}
