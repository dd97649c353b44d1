//! Commands on existing containers: stop, kill, rm, wait, rename, prune,
//! exec, top, stats.

use std::time::{Duration, Instant};

use crate::create::ContainerConfig;
use crate::db::{ContainerRow, Status};
use crate::error::{io, rt, sys, EngineError, Result};
use crate::lifecycle::{self, find, refresh};
use crate::Engine;

fn signal_number(id: &str, s: &str) -> Result<i32> {
    berth_runtime::container::parse_signal(s).ok_or_else(|| {
        EngineError::Opts(crate::opts::OptsError::Invalid {
            flag: "signal",
            value: s.into(),
            why: format!("not a signal name or number (container {id})"),
        })
    })
}

fn wait_until(timeout: Duration, mut done: impl FnMut() -> bool) -> bool {
    let end = Instant::now() + timeout;
    loop {
        if done() {
            return true;
        }
        if Instant::now() >= end {
            return false;
        }
        std::thread::sleep(Duration::from_millis(10));
    }
}

/// Waits until the holder recorded the exit (or cleans up itself when the
/// holder is gone). Returns the refreshed row, `None` when removed. Waits
/// on pidfds (the holder's, else the container process's), not in a loop
/// of sleeps.
fn settle(engine: &Engine, id: &str, timeout: Duration) -> Result<Option<ContainerRow>> {
    let end = Instant::now() + timeout;
    loop {
        let Some(row) = engine.db()?.get(id)? else {
            return Ok(None);
        };
        if row.status != Status::Running {
            return Ok(Some(row));
        }
        let row = refresh(engine, row)?;
        if row.status != Status::Running {
            return Ok(Some(row));
        }
        let left = end.saturating_duration_since(Instant::now());
        if left.is_zero() {
            if !lifecycle::process_running(engine, id) {
                // The holder is alive but has not recorded it: do it.
                lifecycle::cleanup_after_exit(engine, id, None)?;
                return Ok(engine.db()?.get(id)?);
            }
            return Ok(Some(row));
        }
        // Wake when the holder exits (it records the exit first), or, with
        // no holder, when the process does (then `refresh` cleans up).
        let gone = if lifecycle::holder_alive(&row) {
            lifecycle::wait_holder_exit(&row, left)
        } else {
            lifecycle::wait_process_exit(engine, id, left)
        };
        if !gone {
            // Timed out: one last look (and clean-up) above.
            continue;
        }
    }
}

/// `stop [-t N]`: the image's StopSignal (SIGTERM by default), SIGKILL to
/// every process of the container after `timeout`.
pub fn stop(engine: &Engine, reference: &str, timeout: Duration) -> Result<ContainerRow> {
    let mut row = find(engine, reference)?;
    if row.status != Status::Running && lifecycle::holder_alive(&row) {
        // Between two runs of a restart policy: tell the monitor to stop
        // and wait until it has let go (or has just restarted it).
        engine.db()?.set_stop_requested(&row.id, true)?;
        let id = row.id.clone();
        wait_until(Duration::from_secs(15), || {
            engine
                .db()
                .and_then(|db| Ok(db.get(&id)?))
                .map_or(true, |r| {
                    r.is_none_or(|r| r.status == Status::Running || !lifecycle::holder_alive(&r))
                })
        });
        row = find(engine, &id)?;
    }
    if row.status != Status::Running {
        return Ok(row);
    }
    let id = row.id.clone();
    let cfg = ContainerConfig::of(&row)?;
    engine.db()?.set_stop_requested(&id, true)?;
    let root = engine.state_root();
    let sig = signal_number(&id, &cfg.generated.stop_signal)?;
    let _ = berth_runtime::kill(&root, &id, sig, false);
    // A paused container gets the signal once thawed (Docker's order).
    crate::manage::thaw_if_paused(engine, &id);
    if !lifecycle::wait_process_exit(engine, &id, timeout) {
        let _ = berth_runtime::kill(&root, &id, libc::SIGKILL, true);
        let _ = berth_runtime::kill(&root, &id, libc::SIGKILL, false);
        lifecycle::wait_process_exit(engine, &id, Duration::from_secs(10));
    }
    crate::events::container(engine, &row, "stop", &[]);
    Ok(settle(engine, &id, Duration::from_secs(10))?.unwrap_or(row))
}

/// `kill [-s SIG]`: one signal to the container's process. The restart
/// policy does not restart a container killed this way.
pub fn kill(engine: &Engine, reference: &str, signal: &str) -> Result<()> {
    let row = find(engine, reference)?;
    if row.status != Status::Running {
        return Err(EngineError::WrongState {
            name: row.name,
            status: row.status.to_string(),
            what: "there is no process to signal".into(),
        });
    }
    let sig = signal_number(&row.id, signal)?;
    engine.db()?.set_stop_requested(&row.id, true)?;
    berth_runtime::kill(&engine.state_root(), &row.id, sig, false).map_err(rt(&row.id, "kill"))?;
    let signal = sig.to_string();
    crate::events::container(engine, &row, "kill", &[("signal", &signal)]);
    Ok(())
}

/// `rm [-f]`: removes a stopped container (`force` kills a running one).
pub fn rm(engine: &Engine, reference: &str, force: bool) -> Result<String> {
    let mut row = find(engine, reference)?;
    if row.status != Status::Running && lifecycle::holder_alive(&row) {
        // A monitor between two runs of a restart policy: make it let go.
        row = stop(engine, &row.id, Duration::from_secs(10))?;
    }
    if row.status == Status::Running {
        if !force {
            return Err(EngineError::WrongState {
                name: row.name,
                status: row.status.to_string(),
                what: "stop it first or use rm -f".into(),
            });
        }
        engine.db()?.set_stop_requested(&row.id, true)?;
        let root = engine.state_root();
        let _ = berth_runtime::kill(&root, &row.id, libc::SIGKILL, true);
        let _ = berth_runtime::kill(&root, &row.id, libc::SIGKILL, false);
        crate::manage::thaw_if_paused(engine, &row.id);
        lifecycle::wait_process_exit(engine, &row.id, Duration::from_secs(10));
        settle(engine, &row.id, Duration::from_secs(10))?;
    }
    lifecycle::remove_files(engine, &row.id)?;
    Ok(row.id)
}

/// How many containers `rm` of several removes at once. The work is
/// mostly waiting for the kernel (the RCU grace periods of unmount and
/// cgroup removal, exits), not CPU, so more workers than cores pay.
pub const REMOVAL_WORKERS: usize = 16;

/// Runs `f` on every item on up to `workers` threads; the results in the
/// items' order. Not for code that creates or execs containers (that
/// needs a single-threaded process).
pub fn in_parallel<T: Sync, R: Send>(
    items: &[T],
    workers: usize,
    f: impl Fn(&T) -> R + Sync,
) -> Vec<R> {
    let workers = workers.clamp(1, items.len().max(1));
    if workers == 1 {
        return items.iter().map(f).collect();
    }
    let next = std::sync::atomic::AtomicUsize::new(0);
    let mut done: Vec<(usize, R)> = std::thread::scope(|s| {
        let handles: Vec<_> = (0..workers)
            .map(|_| {
                s.spawn(|| {
                    let mut mine = Vec::new();
                    loop {
                        let i = next.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                        let Some(item) = items.get(i) else {
                            return mine;
                        };
                        mine.push((i, f(item)));
                    }
                })
            })
            .collect();
        handles
            .into_iter()
            .flat_map(|h| h.join().unwrap_or_else(|p| std::panic::resume_unwind(p)))
            .collect()
    });
    done.sort_by_key(|(i, _)| *i);
    done.into_iter().map(|(_, r)| r).collect()
}

/// `rm [-f] [-v]` of several containers, side by side on
/// [`REMOVAL_WORKERS`] threads. With `force`, every running one is first
/// marked "do not restart" (one transaction) and SIGKILLed, so that their
/// monitors record the exits and clean up in parallel; then each is
/// removed as [`rm_with_volumes`] does. One result per reference, in
/// order: a failure names its container and does not stop the others.
/// The same container named twice is removed once.
pub fn rm_all(engine: &Engine, refs: &[String], force: bool, volumes: bool) -> Vec<Result<String>> {
    let found = in_parallel(refs, REMOVAL_WORKERS, |r| find(engine, r));
    if force {
        let live: Vec<&ContainerRow> = found
            .iter()
            .flatten()
            .filter(|r| r.status == Status::Running || lifecycle::holder_alive(r))
            .collect();
        let ids: Vec<&str> = live.iter().map(|r| r.id.as_str()).collect();
        // Not fatal here: `rm` marks each one again and reports the error.
        let marked = engine
            .db()
            .and_then(|mut db| Ok(db.set_stop_requested_all(&ids)?))
            .is_ok();
        if marked {
            let root = engine.state_root();
            in_parallel(&live, REMOVAL_WORKERS, |r| {
                if r.status == Status::Running {
                    let _ = berth_runtime::kill(&root, &r.id, libc::SIGKILL, true);
                    let _ = berth_runtime::kill(&root, &r.id, libc::SIGKILL, false);
                    crate::manage::thaw_if_paused(engine, &r.id);
                }
            });
        }
    }
    let mut seen = std::collections::HashSet::new();
    let jobs: Vec<(usize, String, bool)> = found
        .iter()
        .enumerate()
        .filter_map(|(i, r)| r.as_ref().ok().map(|r| (i, r.id.clone())))
        .map(|(i, id)| {
            let first = seen.insert(id.clone());
            (i, id, first)
        })
        .collect();
    let removed = in_parallel(&jobs, REMOVAL_WORKERS, |(_, id, first)| {
        if *first {
            rm_with_volumes(engine, id, force, volumes)
        } else {
            Ok(id.clone())
        }
    });
    let mut out: Vec<Result<String>> = found.into_iter().map(|r| r.map(|r| r.id)).collect();
    for ((i, _, _), r) in jobs.into_iter().zip(removed) {
        out[i] = r;
    }
    out
}

/// `rm [-f] [-v]`: [`rm`], and with `volumes` also the container's
/// anonymous volumes (named ones are kept, as Docker does).
pub fn rm_with_volumes(
    engine: &Engine,
    reference: &str,
    force: bool,
    volumes: bool,
) -> Result<String> {
    let uses = if volumes {
        crate::volume_store::uses_of(engine, &find(engine, reference)?.id)?
    } else {
        Vec::new()
    };
    let id = rm(engine, reference, force)?;
    crate::volume_store::remove_anonymous(engine, &uses)?;
    Ok(id)
}

/// `wait`: blocks until the container exits; its exit code (-1 unknown).
pub fn wait(engine: &Engine, reference: &str) -> Result<i32> {
    let row = find(engine, reference)?;
    let id = row.id.clone();
    let mut last = row;
    loop {
        match engine.db()?.get(&id)? {
            None => return Ok(last.exit_code.unwrap_or(-1)),
            Some(r) => {
                let r = refresh(engine, r)?;
                if r.status == Status::Exited && !restarting(&r) {
                    return Ok(r.exit_code.unwrap_or(-1));
                }
                last = r;
            }
        }
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// An exited container whose live monitor is about to start it again.
fn restarting(r: &ContainerRow) -> bool {
    r.restart_policy != "no" && !r.stop_requested && lifecycle::holder_alive(r)
}

/// `rename OLD NEW`.
pub fn rename(engine: &Engine, reference: &str, new_name: &str) -> Result<()> {
    let row = find(engine, reference)?;
    let name = crate::names::check_name(new_name)?;
    engine.db()?.rename(&row.id, &name)?;
    Ok(())
}

/// `container prune`: removes every stopped container, side by side on
/// [`REMOVAL_WORKERS`] threads; their IDs. The first error is returned
/// once the others are done.
pub fn prune(engine: &Engine) -> Result<Vec<String>> {
    let mut removed = crate::create::reap_interrupted(engine)?;
    let rows = engine.db()?.list()?;
    let results = in_parallel(&rows, REMOVAL_WORKERS, |row| -> Result<Option<String>> {
        let row = refresh(engine, row.clone())?;
        if row.status == Status::Running {
            return Ok(None);
        }
        lifecycle::remove_files(engine, &row.id)?;
        Ok(Some(row.id))
    });
    for r in results {
        if let Some(id) = r? {
            removed.push(id);
        }
    }
    Ok(removed)
}

/// What `exec` runs.
#[derive(Debug, Clone, Default)]
pub struct ExecRequest {
    pub cmd: Vec<String>,
    pub tty: bool,
    pub interactive: bool,
    pub user: Option<String>,
    pub workdir: Option<String>,
    pub env: Vec<String>,
    pub detach: bool,
}

fn running(engine: &Engine, reference: &str) -> Result<ContainerRow> {
    let row = find(engine, reference)?;
    if row.status != Status::Running {
        return Err(EngineError::WrongState {
            name: row.name,
            status: row.status.to_string(),
            what: "it must be running".into(),
        });
    }
    Ok(row)
}

/// `exec`: runs a process in a running container, in the foreground
/// unless `detach`; returns its exit status. Single-threaded callers only.
pub fn exec(engine: &Engine, reference: &str, req: &ExecRequest) -> Result<i32> {
    let row = running(engine, reference)?;
    if crate::manage::is_paused(engine, &row) {
        return Err(EngineError::WrongState {
            name: row.name,
            status: "paused".into(),
            what: "its processes are frozen; unpause it first".into(),
        });
    }
    let id = row.id.as_str();
    let root = engine.state_root();
    let mut p = berth_runtime::exec::base_process(&root, id).map_err(rt(id, "exec"))?;
    p.set_args(Some(req.cmd.clone()));
    p.set_terminal(Some(req.tty));
    let mut env = p.env().clone().unwrap_or_default();
    for e in &req.env {
        if let Some((k, v)) = crate::opts::parse_env(e, |k| std::env::var(k).ok()) {
            crate::opts::set_env(&mut env, &k, &v);
        }
    }
    if req.tty && !crate::opts::has_env(&env, "TERM") {
        crate::opts::set_env(&mut env, "TERM", "xterm");
    }
    p.set_env(Some(env));
    if let Some(w) = &req.workdir {
        p.set_cwd(w.into());
    }
    if let Some(u) = &req.user {
        let layers = [engine.rootfs(id)];
        let ident = crate::user::resolve(
            u,
            &crate::user::read_from_layers(&layers, "etc/passwd"),
            &crate::user::read_from_layers(&layers, "etc/group"),
        )?;
        let mut user = oci_spec::runtime::User::default();
        user.set_uid(ident.uid);
        user.set_gid(ident.gid);
        user.set_additional_gids(Some(ident.additional_gids));
        p.set_user(user);
    }
    let pc = berth_runtime::config::process_config(&p)
        .map_err(|e| rt(id, "exec")(berth_runtime::Error::Config(e)))?;
    if !req.detach {
        berth_runtime::foreground::block_signals().map_err(|source| EngineError::Wait {
            id: id.into(),
            source,
        })?;
    }
    let null = std::fs::File::open("/dev/null").map_err(io("open", "/dev/null"))?;
    if !req.interactive || req.detach {
        rustix::stdio::dup2_stdin(&null).map_err(sys(id, "redirect stdin"))?;
    }
    // A detached process must not hold the caller's stdout and stderr (as
    // `podman exec -d`): a pipe reading them would stay open until the
    // process ends. It gets /dev/null; ours are restored after the spawn.
    let saved = if req.detach {
        let keep = |fd: std::os::fd::BorrowedFd<'_>| {
            rustix::io::fcntl_dupfd_cloexec(fd, 3).map_err(sys(id, "keep our stdio"))
        };
        let saved = (
            keep(std::os::fd::AsFd::as_fd(&std::io::stdout()))?,
            keep(std::os::fd::AsFd::as_fd(&std::io::stderr()))?,
        );
        rustix::stdio::dup2_stdout(&null).map_err(sys(id, "redirect stdout"))?;
        rustix::stdio::dup2_stderr(&null).map_err(sys(id, "redirect stderr"))?;
        Some(saved)
    } else {
        None
    };
    let spawned = berth_runtime::exec(
        &root,
        &berth_runtime::ExecOptions {
            id: id.into(),
            internal_console: req.tty && !req.detach,
            ..Default::default()
        },
        &pc,
    );
    if let Some((out, err)) = &saved {
        rustix::stdio::dup2_stdout(out).map_err(sys(id, "restore stdout"))?;
        rustix::stdio::dup2_stderr(err).map_err(sys(id, "restore stderr"))?;
    }
    let spawned = spawned.map_err(rt(id, "exec"))?;
    if req.detach {
        return Ok(0);
    }
    berth_runtime::foreground::wait(spawned.pid, spawned.console).map_err(|source| {
        EngineError::Wait {
            id: id.into(),
            source,
        }
    })
}

/// `top`: (pid, command line) of each process of a running container.
pub fn top(engine: &Engine, reference: &str) -> Result<Vec<(i32, String)>> {
    let row = running(engine, reference)?;
    let pids = berth_runtime::manage::pids(&engine.state_root(), &row.id)
        .map_err(rt(&row.id, "list processes"))?;
    Ok(pids
        .into_iter()
        .map(|pid| {
            let cmd = std::fs::read(format!("/proc/{pid}/cmdline"))
                .map(|b| {
                    b.split(|&c| c == 0)
                        .filter(|s| !s.is_empty())
                        .map(|s| String::from_utf8_lossy(s).into_owned())
                        .collect::<Vec<_>>()
                        .join(" ")
                })
                .unwrap_or_default();
            (pid, cmd)
        })
        .collect())
}

/// `stats --no-stream`: the cgroup statistics of a running container.
pub fn stats(engine: &Engine, reference: &str) -> Result<(ContainerRow, berth_cgroups::Stats)> {
    let row = running(engine, reference)?;
    let s = berth_runtime::manage::stats(&engine.state_root(), &row.id)
        .map_err(rt(&row.id, "read stats"))?;
    Ok((row, s))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn in_parallel_runs_every_item_once_and_keeps_the_order() {
        let items: Vec<u32> = (0..100).collect();
        let calls = std::sync::atomic::AtomicUsize::new(0);
        let out = in_parallel(&items, 7, |i| {
            calls.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            i * 2
        });
        assert_eq!(calls.into_inner(), 100);
        assert_eq!(out, items.iter().map(|i| i * 2).collect::<Vec<_>>());
        assert!(in_parallel(&Vec::<u32>::new(), 4, |i| *i).is_empty());
        assert_eq!(in_parallel(&[5u32], 16, |i| *i + 1), vec![6]);
    }
}
