//! Starting a created container (mount the rootfs, runtime create + start),
//! cleaning up after it exits, removing it, and reconciling the database
//! with what is really running after a crash.

use std::io::{BufRead, Read};
use std::os::fd::{AsFd, OwnedFd};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use berth_runtime::{CreateOptions, Spawned};

use crate::create::ContainerConfig;
use crate::db::{ContainerRow, Status};
use crate::error::{io, rt, sys, EngineError, Result};
use crate::Engine;

/// Mounts the container's rootfs unless it is mounted already. With a
/// user namespace of its own, returns the user namespace made to idmap the
/// layers, for the runtime's idmapped bind mounts.
pub fn mount_rootfs(
    engine: &Engine,
    id: &str,
    cfg: &ContainerConfig,
) -> Result<Option<berth_runtime::idmap::GivenUserns>> {
    let target = engine.rootfs(id);
    if berth_image::mount::is_mountpoint(&target) {
        return Ok(None);
    }
    let dir = engine.dir(id);
    // overlayfs wants an empty workdir: leftovers of a crash are removed.
    let work = dir.join("work");
    let _ = std::fs::remove_dir_all(&work);
    std::fs::create_dir_all(&work).map_err(io("create overlay workdir", &work))?;
    let mount = |lowers: &[std::path::PathBuf]| {
        berth_image::mount::mount_container_rootfs(lowers, &dir.join("upper"), &work, &target)
            .map_err(|source| EngineError::Mount {
                id: id.into(),
                op: "mount",
                source: Box::new(source),
            })
    };
    match &cfg.idmap {
        None => mount(&cfg.lowers).map(|()| None),
        // Rootless: the layers cannot be idmapped from inside a user
        // namespace; fuse-overlayfs shifts the owners it shows instead.
        Some(m) if crate::rootless::is_rootless() => {
            let text = |maps: &[crate::userns::Map]| {
                maps.iter().map(|m| m.text()).collect::<Vec<_>>().join(":")
            };
            berth_image::mount::mount_container_rootfs_mapped(
                &cfg.lowers,
                &dir.join("upper"),
                &work,
                &target,
                &text(&m.uid),
                &text(&m.gid),
            )
            .map(|()| None)
            .map_err(|source| EngineError::Mount {
                id: id.into(),
                op: "mount",
                source: Box::new(source),
            })
        }
        Some(m) => {
            // Idmapped layers: detached clones of the layer dirs shifted
            // into the container's range, given to overlayfs by their
            // /proc/self/fd paths (kernel >= 5.19 takes idmapped lowers;
            // an overlay mount itself cannot be idmapped, 6.18 included).
            // The upper dir is not idmapped: what the container writes is
            // owned on the host by its range. The detached layer clones,
            // no longer needed once the overlay holds them, are closed by
            // the namespace's helper process (see `Userns::release`).
            let mut userns = m
                .userns_held(id)
                .map_err(rt(id, "make the idmap user namespace"))?;
            let (trees, paths) = crate::userns::idmapped_lowers(&cfg.lowers, userns.as_fd())?;
            mount(&paths)?;
            userns.release(trees);
            Ok(Some(m.given_userns(userns)))
        }
    }
}

/// [`mount_rootfs`] at start, with the container's own user namespace
/// (`userns`, made by the runtime's clone of the container process; see
/// `berth_runtime::create_hooked`): no namespace and no process of its own.
/// Returns the layers' detached idmapped trees, for [`close_later`].
fn mount_rootfs_in(
    engine: &Engine,
    id: &str,
    cfg: &ContainerConfig,
    userns: std::os::fd::BorrowedFd<'_>,
) -> Result<Vec<OwnedFd>> {
    let target = engine.rootfs(id);
    let dir = engine.dir(id);
    let work = dir.join("work");
    let _ = std::fs::remove_dir_all(&work);
    std::fs::create_dir_all(&work).map_err(io("create overlay workdir", &work))?;
    let (trees, paths) = crate::userns::idmapped_lowers(&cfg.lowers, userns)?;
    berth_image::mount::mount_container_rootfs(&paths, &dir.join("upper"), &work, &target)
        .map_err(|source| EngineError::Mount {
            id: id.into(),
            op: "mount",
            source: Box::new(source),
        })?;
    Ok(trees)
}

/// Does the start mount the rootfs through the runtime's hook, in the
/// container's own user namespace ([`mount_rootfs_in`])? Root, a mapping,
/// and the rootfs not mounted yet.
fn rootfs_in_own_userns(engine: &Engine, id: &str, cfg: &ContainerConfig) -> bool {
    cfg.idmap.is_some()
        && !crate::rootless::is_rootless()
        && !berth_image::mount::is_mountpoint(&engine.rootfs(id))
}

/// Closes the layers' detached trees off the start's way: closing the last
/// descriptor of a detached mount unmounts it, which waits for an RCU grace
/// period (about 5 ms here). A thread sleeps through it while the container
/// runs; it is started once no more processes are cloned for this start.
fn close_later(trees: Vec<OwnedFd>) {
    if trees.is_empty() {
        return;
    }
    // The thread takes no signal meant for the process (its callers block
    // the forwarded ones first; this holds without them too).
    let saved = nix::sys::signal::SigSet::all()
        .thread_swap_mask(nix::sys::signal::SigmaskHow::SIG_SETMASK)
        .ok();
    let spawned = std::thread::Builder::new()
        .name("close-trees".into())
        .spawn(move || drop(trees));
    if let Some(mask) = saved {
        let _ = mask.thread_set_mask();
    }
    // Without a thread they were closed already, with the closure that
    // held them: that only costs the wait.
    drop(spawned);
}

/// Unmounts the container's rootfs if mounted.
pub fn unmount_rootfs(engine: &Engine, id: &str) -> Result<()> {
    let target = engine.rootfs(id);
    if !berth_image::mount::is_mountpoint(&target) {
        return Ok(());
    }
    berth_image::mount::unmount_container_rootfs(&target).map_err(|source| EngineError::Mount {
        id: id.into(),
        op: "unmount",
        source: Box::new(source),
    })
}

/// This process's pid and start time (recorded as the container's holder).
pub fn me() -> (i32, i64) {
    let pid = std::process::id() as i32;
    (
        pid,
        berth_runtime::state::process_start_time(pid).unwrap_or(0) as i64,
    )
}

/// Runs the container: mounts its rootfs, runtime create and start, and
/// records it as running with this process as its holder. The container
/// inherits this process's stdio (or a pty when `internal_console`).
pub fn launch(engine: &Engine, row: &ContainerRow, internal_console: bool) -> Result<Spawned> {
    let id = row.id.as_str();
    let cfg = ContainerConfig::of(row)?;
    // With a user namespace of its own the rootfs is mounted during the
    // runtime's create, in that namespace (see `create_hooked`).
    let in_own_userns = rootfs_in_own_userns(engine, id, &cfg);
    let idmap_userns = if in_own_userns {
        None
    } else {
        let given = mount_rootfs(engine, id, &cfg)?;
        crate::volume_copy::populate(engine, id, &engine.rootfs(id))?;
        given
    };
    let root = engine.state_root();
    // A leftover runtime state (crash, restart) is removed first.
    let _ = berth_runtime::delete(&root, id, true);
    crate::networks::setup(engine, row, &cfg.options)?;
    let joined = crate::flags::join_namespaces(engine, id, &cfg.options.extra)
        .and_then(|()| crate::userns::start_hook(engine, id, &cfg))
        .and_then(|()| crate::pods::join_pid_at_start(engine, id, &cfg.options))
        .and_then(|()| crate::health::reset(engine, id, &cfg));
    if let Err(e) = joined {
        let _ = crate::networks::teardown(engine, id);
        return Err(e);
    }
    let opts = CreateOptions {
        id: id.into(),
        bundle: engine.bundle(id),
        internal_console,
        start_now: true,
        idmap_userns,
        ..Default::default()
    };
    // The hook's own error (an engine error) is kept to be returned as it
    // is; the runtime only shows its text.
    let mut hook_err: Option<EngineError> = None;
    let mut layer_trees: Vec<OwnedFd> = Vec::new();
    let spawned = if in_own_userns {
        let mut hook = |userns: Option<std::os::fd::BorrowedFd<'_>>| {
            let res = match userns {
                Some(fd) => mount_rootfs_in(engine, id, &cfg, fd).map(|trees| {
                    layer_trees = trees;
                    None
                }),
                // The runtime cannot make the namespace first (joined
                // namespaces): the earlier way, a namespace of its own.
                None => mount_rootfs(engine, id, &cfg),
            }
            .and_then(|given| {
                crate::volume_copy::populate(engine, id, &engine.rootfs(id)).map(|()| given)
            });
            res.map_err(|e| {
                let text = e.to_string();
                hook_err = Some(e);
                text
            })
        };
        berth_runtime::create_hooked(&root, &opts, &mut hook)
    } else {
        berth_runtime::create(&root, &opts)
    };
    let spawned = match (spawned, hook_err) {
        (Err(_), Some(e)) => Err(e),
        (r, _) => r
            .map_err(rt(id, "create"))
            .map_err(|e| crate::userns::hint(id, cfg.idmap.is_some(), e)),
    };
    let mut spawned = match spawned {
        Ok(s) => s,
        Err(e) => {
            let _ = crate::networks::teardown(engine, id);
            return Err(e);
        }
    };
    if let Err(e) = crate::networks::loopback_for_none(&cfg.options, spawned.pid) {
        let _ = berth_runtime::delete(&root, id, true);
        return Err(e);
    }
    if let Err(e) = berth_runtime::start_spawned(&root, id, &mut spawned) {
        let _ = berth_runtime::delete(&root, id, true);
        let _ = crate::networks::teardown(engine, id);
        return Err(rt(id, "start")(e));
    }
    close_later(layer_trees);
    engine
        .db()?
        .set_running(id, spawned.pid, crate::now_ms(), me())?;
    let _ = std::fs::remove_file(engine.dir(id).join(START_ERROR));
    crate::events::container(engine, row, "start", &[]);
    Ok(spawned)
}

/// After the container's process is gone: runtime delete (cgroup, state),
/// unmount, record the exit. Collects errors and goes on.
pub fn cleanup_after_exit(engine: &Engine, id: &str, code: Option<i32>) -> Result<()> {
    let mut first: Option<EngineError> = None;
    if let Ok(Some(row)) = engine.db().and_then(|db| Ok(db.get(id)?)) {
        if row.status == Status::Running {
            let code = code.map_or_else(|| "-1".to_string(), |c| c.to_string());
            crate::events::container(engine, &row, "die", &[("exitCode", &code)]);
        }
    }
    if let Err(e) = berth_runtime::delete(&engine.state_root(), id, true) {
        first.get_or_insert(rt(id, "delete")(e));
    }
    if let Err(e) = unmount_rootfs(engine, id) {
        first.get_or_insert(e);
    }
    if let Err(e) = crate::networks::teardown(engine, id) {
        first.get_or_insert(e);
    }
    if let Err(e) = engine
        .db()
        .and_then(|db| Ok(db.set_exited(id, code, crate::now_ms())?))
    {
        first.get_or_insert(e);
    }
    first.map_or(Ok(()), Err)
}

/// Where the reason of the last failed start is kept (`inspect` shows it
/// as State.Error, as Docker does); removed by the next start.
pub const START_ERROR: &str = "start-error";

/// A start failed before the container's process ran: clean up as after
/// an exit, then the container is `created` again with `err` kept.
pub fn start_failed(engine: &Engine, id: &str, err: &EngineError) {
    let _ = cleanup_after_exit(engine, id, None);
    if let Ok(db) = engine.db() {
        let _ = db.set_start_failed(id);
    }
    let _ = std::fs::write(
        engine.dir(id).join(START_ERROR),
        crate::error::error_chain(err),
    );
}

/// The reason of the container's last failed start ("" when none).
pub fn start_error(engine: &Engine, id: &str) -> String {
    std::fs::read_to_string(engine.dir(id).join(START_ERROR)).unwrap_or_default()
}

/// Removes every trace of a stopped container: runtime state, mount, dir,
/// row. Idempotent (a racing monitor may remove it too).
pub fn remove_files(engine: &Engine, id: &str) -> Result<()> {
    let mut first: Option<EngineError> = None;
    // Docker's rule: `--rm` also removes the container's anonymous volumes.
    let row = engine.db().ok().and_then(|db| db.get(id).ok().flatten());
    let auto_remove = row.as_ref().is_some_and(|r| r.auto_remove);
    let volumes = crate::volume_store::uses_of(engine, id).unwrap_or_default();
    if let Err(e) = berth_runtime::delete(&engine.state_root(), id, true) {
        first.get_or_insert(rt(id, "delete")(e));
    }
    if let Err(e) = unmount_rootfs(engine, id) {
        first.get_or_insert(e);
    }
    if let Err(e) = crate::networks::release(engine, id) {
        first.get_or_insert(e);
    }
    // Only `auto` containers hold a range (no extra work for the others).
    let ranged = row.as_ref().is_none_or(|r| {
        ContainerConfig::of(r)
            .map(|c| c.idmap.is_some_and(|m| m.mode == "auto"))
            .unwrap_or(true)
    });
    if ranged {
        if let Err(e) = crate::userns::release(engine, id) {
            first.get_or_insert(e);
        }
    }
    let dir = engine.dir(id);
    match std::fs::remove_dir_all(&dir) {
        Ok(()) => {}
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
        Err(e) => {
            first.get_or_insert(io("remove container dir", &dir)(e));
        }
    }
    match engine.db().and_then(|db| Ok(db.remove(id)?)) {
        Err(e) => {
            first.get_or_insert(e);
        }
        Ok(true) => {
            if let Some(row) = &row {
                crate::events::container(engine, row, "destroy", &[]);
            }
        }
        Ok(false) => {}
    }
    if let Err(e) = crate::volume_store::release(engine, id) {
        first.get_or_insert(e);
    }
    if auto_remove {
        if let Err(e) = crate::volume_store::remove_anonymous(engine, &volumes) {
            first.get_or_insert(e);
        }
    }
    first.map_or(Ok(()), Err)
}

/// Whether the process holding the container (monitor or foreground
/// `berth`) is still alive.
pub fn holder_alive(row: &ContainerRow) -> bool {
    match (row.monitor_pid, row.monitor_start) {
        (Some(pid), Some(start)) if pid > 0 => {
            berth_runtime::state::init_alive(pid, start.max(0) as u64)
        }
        _ => false,
    }
}

/// Waits until process `pid` has exited (or `timeout`): true when it is
/// gone. A pidfd pins the pid while `same` checks that it still is the
/// process meant (pids are reused); then poll on the pidfd wakes at the
/// exit, with no sleeping loop.
fn wait_pid_exit(pid: i32, timeout: Duration, same: impl FnOnce() -> bool) -> bool {
    use rustix::event::{PollFd, PollFlags, Timespec};
    let Some(p) = rustix::process::Pid::from_raw(pid) else {
        return true;
    };
    let fd = match rustix::process::pidfd_open(p, rustix::process::PidfdFlags::empty()) {
        Ok(fd) => fd,
        Err(rustix::io::Errno::SRCH) => return true, // gone (and reaped)
        Err(_) => {
            // No pidfd (fd limit, old kernel): look again a bit later.
            std::thread::sleep(Duration::from_millis(10).min(timeout));
            return !same();
        }
    };
    if !same() {
        return true;
    }
    let end = Instant::now() + timeout;
    loop {
        let left = end.saturating_duration_since(Instant::now());
        let ts = Timespec {
            tv_sec: left.as_secs() as i64,
            tv_nsec: i64::from(left.subsec_nanos()),
        };
        let mut fds = [PollFd::new(&fd, PollFlags::IN)];
        match rustix::event::poll(&mut fds, Some(&ts)) {
            Ok(n) if n > 0 => return true,
            Ok(_) => return false,
            Err(rustix::io::Errno::INTR) if !left.is_zero() => continue,
            Err(_) => return false,
        }
    }
}

/// Waits until the process holding the container (its monitor, or a
/// foreground `berth`) has exited, after it recorded the exit and cleaned
/// up; true when no holder is left.
pub fn wait_holder_exit(row: &ContainerRow, timeout: Duration) -> bool {
    match row.monitor_pid {
        Some(pid) if pid > 0 => wait_pid_exit(pid, timeout, || holder_alive(row)),
        _ => true,
    }
}

/// Waits until the container's process has exited (runtime state); true
/// when it is gone.
pub fn wait_process_exit(engine: &Engine, id: &str, timeout: Duration) -> bool {
    let pid = match berth_runtime::state(&engine.state_root(), id) {
        Ok(s) if !matches!(s.status, berth_runtime::Status::Stopped) => s.pid,
        _ => return true,
    };
    match pid {
        Some(pid) => wait_pid_exit(pid, timeout, || process_running(engine, id)),
        None => !process_running(engine, id),
    }
}

/// Whether the container's process still runs (runtime state).
pub fn process_running(engine: &Engine, id: &str) -> bool {
    match berth_runtime::state(&engine.state_root(), id) {
        Ok(s) => !matches!(s.status, berth_runtime::Status::Stopped),
        Err(_) => false,
    }
}

/// The row with the truth applied: a "running" container whose process
/// and holder are both gone (killed monitor, crash) is cleaned up and
/// recorded as exited with an unknown code.
pub fn refresh(engine: &Engine, row: ContainerRow) -> Result<ContainerRow> {
    if row.status != Status::Running || holder_alive(&row) || process_running(engine, &row.id) {
        return Ok(row);
    }
    // `row` may be stale: the holder can have recorded the exit (with its
    // code) and gone since it was read. Decide on a fresh read, or a
    // known exit code would be overwritten with "unknown".
    let Some(fresh) = engine.db()?.get(&row.id)? else {
        return Ok(row);
    };
    if fresh.status != Status::Running || holder_alive(&fresh) {
        return Ok(fresh);
    }
    cleanup_after_exit(engine, &row.id, None)?;
    let db = engine.db()?;
    Ok(db.get(&row.id)?.unwrap_or(row))
}

/// Looks a container up by name or ID and refreshes it.
pub fn find(engine: &Engine, reference: &str) -> Result<ContainerRow> {
    let row = engine.db()?.lookup(reference)?;
    refresh(engine, row)
}

/// Runs a created or exited container in the foreground: this process
/// holds it, its exit status is returned. Signals are forwarded; with
/// `tty` the pty is proxied to our terminal; without `stdin` (`run -i`,
/// `start -i`) the container's stdin is /dev/null. The caller must be
/// single-threaded.
pub fn run_foreground(engine: &Engine, row: &ContainerRow, stdin: bool) -> Result<i32> {
    let cfg = ContainerConfig::of(row)?;
    let id = row.id.as_str();
    check_startable(row)?;
    engine.db()?.set_stop_requested(id, false)?;
    berth_runtime::foreground::block_signals().map_err(|source| EngineError::Wait {
        id: id.into(),
        source,
    })?;
    // Docker's rule: `run -i` and `start -i` forward stdin; `start -a`
    // alone does not, even for a container created with -i.
    if !stdin {
        let null = std::fs::File::open("/dev/null").map_err(io("open", "/dev/null"))?;
        rustix::stdio::dup2_stdin(&null).map_err(sys(id, "redirect stdin"))?;
    }
    // The log is kept however the container runs (as with Docker): its
    // output comes through pipes (or the pty) and goes to ours and to it.
    let mut log = crate::logs::LogWriter::open(&engine.log_path(id))?;
    let lent = if cfg.options.tty {
        None
    } else {
        Some(LentStdio::lend(id)?)
    };
    let launched = launch(engine, row, cfg.options.tty);
    let ours = lent.map(|l| l.take_back(id)).transpose();
    let spawned = match (launched, ours) {
        (Ok(s), Ok(ours)) => (s, ours),
        (Err(e), _) | (Ok(_), Err(e)) => {
            start_failed(engine, id, &e);
            if row.auto_remove {
                let _ = remove_files(engine, id);
            }
            return Err(e);
        }
    };
    let (spawned, ours) = spawned;
    let (stdout, stderr) = (std::io::stdout(), std::io::stderr());
    let pipes = match ours {
        Some((out, err)) => vec![
            berth_runtime::foreground::TeePipe {
                from: out,
                to: stdout.as_fd(),
                stream: "stdout",
            },
            berth_runtime::foreground::TeePipe {
                from: err,
                to: stderr.as_fd(),
                stream: "stderr",
            },
        ],
        None => Vec::new(),
    };
    let waited =
        berth_runtime::foreground::wait_tee(spawned.pid, spawned.console, pipes, &mut |s, b| {
            // A log that cannot be written must not stop the container.
            let _ = log.write(s, b);
        });
    let _ = log.flush_partial();
    let code = waited.as_ref().ok().copied();
    let cleaned = cleanup_after_exit(engine, id, code);
    if row.auto_remove {
        remove_files(engine, id)?;
    }
    let code = waited.map_err(|source| EngineError::Wait {
        id: id.into(),
        source,
    })?;
    cleaned?;
    Ok(code)
}

/// A foreground container's stdout and stderr pipes (without `-t`): our
/// fds 1 and 2 are its write ends while the runtime creates it (it
/// inherits them); ours are kept aside and put back after.
struct LentStdio {
    out: (OwnedFd, OwnedFd),
    err: (OwnedFd, OwnedFd),
    saved_out: OwnedFd,
    saved_err: OwnedFd,
}

impl LentStdio {
    fn lend(id: &str) -> Result<LentStdio> {
        let pipe = || {
            rustix::pipe::pipe_with(rustix::pipe::PipeFlags::CLOEXEC)
                .map_err(sys(id, "create output pipe"))
        };
        let dup = |fd| rustix::io::fcntl_dupfd_cloexec(fd, 3).map_err(sys(id, "keep our stdio"));
        let l = LentStdio {
            out: pipe()?,
            err: pipe()?,
            saved_out: dup(std::io::stdout().as_fd())?,
            saved_err: dup(std::io::stderr().as_fd())?,
        };
        let lent = rustix::stdio::dup2_stdout(&l.out.1)
            .and_then(|()| rustix::stdio::dup2_stderr(&l.err.1));
        if let Err(e) = lent {
            let _ = l.take_back(id);
            return Err(sys(id, "redirect stdout")(e));
        }
        Ok(l)
    }

    /// Ours back on fds 1 and 2; the read ends of the pipes.
    fn take_back(self, id: &str) -> Result<(OwnedFd, OwnedFd)> {
        rustix::stdio::dup2_stdout(&self.saved_out).map_err(sys(id, "restore stdout"))?;
        rustix::stdio::dup2_stderr(&self.saved_err).map_err(sys(id, "restore stderr"))?;
        Ok((self.out.0, self.err.0))
    }
}

fn check_startable(row: &ContainerRow) -> Result<()> {
    if row.status == Status::Running {
        return Err(EngineError::WrongState {
            name: row.name.clone(),
            status: row.status.to_string(),
            what: "it is already running".into(),
        });
    }
    if holder_alive(row) {
        return Err(EngineError::WrongState {
            name: row.name.clone(),
            status: row.status.to_string(),
            what: "its monitor is restarting it (restart policy); stop it first".into(),
        });
    }
    Ok(())
}

/// Starts a container detached: spawns `monitor` (a command that runs
/// [`crate::monitor::run`] for this container, e.g. `berth
/// container-monitor ID`) and waits until it reports the container
/// running (or why not).
pub fn start_detached(engine: &Engine, row: &ContainerRow, monitor: Command) -> Result<()> {
    start_detached_child(engine, row, monitor).map(drop)
}

/// [`start_detached`], handing back the monitor's process handle once it
/// reports the container running: a long-lived caller (the CRI service)
/// must reap it when it exits (else a zombie would still look like the
/// container's holder); a short-lived one drops it, leaving it to init.
pub fn start_detached_child(
    engine: &Engine,
    row: &ContainerRow,
    mut monitor: Command,
) -> Result<std::process::Child> {
    let id = row.id.as_str();
    check_startable(row)?;
    engine.db()?.set_stop_requested(id, false)?;
    let (r, w) = std::io::pipe().map_err(sys(id, "create monitor pipe"))?;
    let log = engine.dir(id).join("monitor.log");
    let err = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(&log)
        .map_err(io("open monitor log", &log))?;
    monitor
        .stdin(Stdio::null())
        .stdout(Stdio::from(OwnedFd::from(w)))
        .stderr(Stdio::from(err));
    let mut child = monitor.spawn().map_err(sys(id, "spawn the monitor"))?;
    drop(monitor);
    // The answer's first line: `ok PID` once the container runs. Read up
    // to it only, not to EOF: the monitor closes its end right after the
    // line, but a busy machine can preempt it in between (5 ms seen under
    // strace), which a start need not wait for. An error is read to EOF.
    let mut answer = String::new();
    let mut r = std::io::BufReader::new(r);
    let read = r.read_line(&mut answer).and_then(|_| {
        if answer.starts_with("ok") {
            Ok(0)
        } else {
            r.read_to_string(&mut answer)
        }
    });
    if answer.starts_with("ok") {
        // The monitor lives on, detached (setsid); the caller reaps it or
        // leaves it to init.
        return Ok(child);
    }
    let status = child.wait().ok();
    let message = match (read, answer.trim()) {
        (Err(e), _) => format!("reading its answer failed: {e}"),
        (Ok(_), "") => format!(
            "it exited ({}) without an answer; see {}",
            status.map(|s| s.to_string()).unwrap_or_default(),
            log.display()
        ),
        (Ok(_), m) => m.strip_prefix("error: ").unwrap_or(m).to_string(),
    };
    Err(EngineError::Monitor {
        id: id.into(),
        message,
    })
}
