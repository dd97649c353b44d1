//! The per-container monitor (the role conmon plays for podman): a small
//! process, detached in its own session, that is the parent of the
//! container's process. It holds the container's stdio (pipes, or the pty
//! master with `-t`), writes them to the log, records the exit in the
//! database, applies the restart policy and removes `--rm` containers,
//! then exits with the container. No daemon outlives its container.

use std::io::Write;
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::time::Duration;

use nix::sys::signal::{SigSet, Signal};
use nix::sys::signalfd::{SfdFlags, SignalFd};
use nix::sys::wait::{waitpid, WaitPidFlag, WaitStatus};

use crate::attach::{self, Hub, HubFds, Request};
use crate::create::ContainerConfig;
use crate::error::{io, sys, EngineError, Result};
use crate::handoff;
use crate::lifecycle;
use crate::logs::LogWriter;
use crate::opts;
use crate::Engine;

/// The monitor's entry: `ready` is where it reports `ok` (or `error: ...`)
/// once the container runs (`None` when resumed after a hand-off).
/// Returns the container's last exit code.
/// Must run in a fresh single-threaded process (it changes its own stdio).
pub fn run(engine: &Engine, id: &str, ready: Option<OwnedFd>, opts: Options) -> Result<i32> {
    let _ = nix::unistd::setsid();
    let _ = std::env::set_current_dir("/");
    let mut ready = ready.map(std::fs::File::from);
    match supervise(engine, id, &mut ready, opts) {
        Ok(code) => Ok(code),
        Err(e) => {
            if let Some(mut r) = ready.take() {
                let _ = writeln!(r, "error: {}", chain(&e));
            }
            Err(e)
        }
    }
}

fn chain(e: &dyn std::error::Error) -> String {
    crate::error::error_chain(e)
}

/// Pipes that become the container's stdio.
struct Stdio {
    out: (OwnedFd, OwnedFd),
    err: (OwnedFd, OwnedFd),
    /// `-i`: a stdin pipe whose write end the monitor keeps open.
    input: Option<(OwnedFd, OwnedFd)>,
    null: std::fs::File,
    /// Our stderr as we were started (the monitor's log): where our own
    /// messages go between launches, and the small monitor's too.
    own_err: Option<OwnedFd>,
}

fn pipe(id: &str) -> Result<(OwnedFd, OwnedFd)> {
    rustix::pipe::pipe_with(rustix::pipe::PipeFlags::CLOEXEC).map_err(sys(id, "create pipe"))
}

impl Stdio {
    fn new(id: &str, interactive: bool) -> Result<Stdio> {
        Ok(Stdio {
            out: pipe(id)?,
            err: pipe(id)?,
            input: if interactive { Some(pipe(id)?) } else { None },
            null: std::fs::OpenOptions::new()
                .read(true)
                .write(true)
                .open("/dev/null")
                .map_err(io("open", "/dev/null"))?,
            own_err: rustix::io::fcntl_dupfd_cloexec(std::io::stderr(), 3).ok(),
        })
    }

    /// Our fds 0-2 become the container's ends (inherited by create).
    fn lend(&self, id: &str) -> Result<()> {
        let stdin: BorrowedFd<'_> = match &self.input {
            Some((r, _)) => r.as_fd(),
            None => self.null.as_fd(),
        };
        rustix::stdio::dup2_stdin(stdin).map_err(sys(id, "redirect stdin"))?;
        rustix::stdio::dup2_stdout(&self.out.1).map_err(sys(id, "redirect stdout"))?;
        rustix::stdio::dup2_stderr(&self.err.1).map_err(sys(id, "redirect stderr"))
    }

    /// Our fds 0-1 back to /dev/null, 2 to our own stderr.
    fn take_back(&self, id: &str) -> Result<()> {
        rustix::stdio::dup2_stdin(&self.null).map_err(sys(id, "reset stdin"))?;
        rustix::stdio::dup2_stdout(&self.null).map_err(sys(id, "reset stdout"))?;
        let err = match &self.own_err {
            Some(e) => e.as_fd(),
            None => self.null.as_fd(),
        };
        rustix::stdio::dup2_stderr(err).map_err(sys(id, "reset stderr"))
    }
}

/// Where [`run`] starts: a fresh monitor, or one that the small monitor
/// exec'd back into once the container exited (see [`crate::handoff`]).
#[derive(Debug, Default)]
pub struct Resume {
    /// The container's exit status.
    pub code: i32,
    /// Restarts done so far (restart policy).
    pub restarts: u32,
    /// The attach and control sockets and their clients, kept across the
    /// round trip.
    pub hub: HubFds,
}

/// How the monitor runs.
#[derive(Debug, Default)]
pub struct Options {
    /// `Some`: this process exec'd back from the small monitor.
    pub resume: Option<Resume>,
    /// `Some`: once the container runs, exec this small monitor to wait
    /// for it (see [`crate::handoff`]); `None`: wait in this process.
    pub small: Option<handoff::Small>,
    /// `berth ... healthcheck run ID`, spawned every interval of a
    /// container with a healthcheck (see [`crate::health`]).
    pub health_command: Option<Vec<std::ffi::OsString>>,
}

/// What to do once the container's process exited.
enum Next {
    Exit,
    Restart,
}

fn supervise(
    engine: &Engine,
    id: &str,
    ready: &mut Option<std::fs::File>,
    opts: Options,
) -> Result<i32> {
    berth_runtime::foreground::block_signals().map_err(|source| EngineError::Wait {
        id: id.into(),
        source,
    })?;
    let mut restarts: u32 = 0;
    let resumed = opts.resume.map(|r| {
        restarts = r.restarts;
        (r.code, Hub::from_fds(r.hub, Some((engine, id))))
    });
    let (row, resumed) = match (resumed, engine.db()?.get(id)?) {
        (resumed, Some(row)) => (row, resumed),
        (Some((code, mut hub)), None) => {
            // Removed while running (rm -f): clean what is ours and go.
            let _ = berth_runtime::delete(&engine.state_root(), id, true);
            let _ = lifecycle::unmount_rootfs(engine, id);
            hub.exited(code);
            return Ok(code);
        }
        // Its error names the container.
        (None, None) => (engine.db()?.lookup(id)?, None),
    };
    let cfg = ContainerConfig::of(&row)?;
    let policy = opts::parse_restart(&row.restart_policy)?;
    let mut hub = match resumed {
        Some((code, mut hub)) => match after_exit(engine, &row, &policy, code, &mut restarts) {
            Ok(Next::Restart) => hub,
            done => {
                hub.exited(code);
                return done.map(|_| code);
            }
        },
        // `berth attach` clients connect here (kept across restarts).
        // Without it (e.g. a runroot too long for a socket path) the
        // container still runs; only attaching is off.
        None => Hub::bind(engine, id).unwrap_or_else(|e| {
            eprintln!("berth monitor: container {id}: attach is disabled: {e}");
            Hub::disabled()
        }),
    };
    let tty = cfg.options.tty;
    let health_interval = cfg
        .health
        .as_ref()
        .filter(|h| h.interval > 0)
        .map(|h| Duration::from_nanos(h.interval));
    let (driver, limits) = crate::flags::log_config(&cfg.options.extra)?;
    if driver == crate::flags::LogDriver::Passthrough {
        return Err(EngineError::WrongState {
            name: row.name.clone(),
            status: row.status.to_string(),
            what: "--log-driver passthrough gives the container the caller's stdio: \
                   run it in the foreground (no -d; `start -a`)"
                .into(),
        });
    }
    let cri_log = crate::flags::cri_log_path(&cfg.options.extra);
    let stdio = Stdio::new(id, cfg.options.interactive)?;
    let stdin_once = cfg.options.stdin_once;
    drop(cfg);
    let mut log =
        LogWriter::open_with(&engine.log_path(id), limits)?.with_cri_path(cri_log.clone());
    loop {
        stdio.lend(id)?;
        let launched = lifecycle::launch(engine, &row, tty);
        stdio.take_back(id)?;
        let spawned = match launched {
            Ok(s) => s,
            Err(e) => {
                lifecycle::start_failed(engine, id, &e);
                if row.auto_remove {
                    let _ = lifecycle::remove_files(engine, id);
                }
                return Err(e);
            }
        };
        if let Some(mut r) = ready.take() {
            let _ = writeln!(r, "ok {}", spawned.pid);
        }
        let streams = Streams::of(spawned.console.as_ref(), &stdio, stdin_once);
        if let Some(small) = &opts.small {
            // Returns only when the exec failed: wait here instead.
            let e = handoff::exec_small(
                engine,
                small,
                id,
                spawned.pid,
                &streams,
                &hub,
                restarts,
                health_interval,
                limits,
                cri_log.as_deref(),
            );
            eprintln!("berth monitor: container {id}: {e}; waiting in this process");
        }
        let mut schedule = match (health_interval, &opts.health_command) {
            (Some(i), Some(cmd)) => Some(crate::health::Schedule::new(cmd.clone(), i)),
            _ => None,
        };
        let code = pump(
            id,
            spawned.pid,
            &streams,
            &mut log,
            &mut hub,
            schedule.as_mut(),
        )?;
        drop(streams);
        match after_exit(engine, &row, &policy, code, &mut restarts) {
            Ok(Next::Restart) => continue,
            // Attached clients learn the status before the sockets close
            // (with --rm the database forgot it already).
            done => {
                hub.exited(code);
                return done.map(|_| code);
            }
        }
    }
}

/// After the container's process exited with `code`: runtime delete,
/// then either a restart (policy, after Docker's back-off) or the
/// cleanup (exit recorded, `--rm` removal).
fn after_exit(
    engine: &Engine,
    row: &crate::db::ContainerRow,
    policy: &opts::RestartPolicy,
    code: i32,
    restarts: &mut u32,
) -> Result<Next> {
    let id = row.id.as_str();
    let _ = berth_runtime::delete(&engine.state_root(), id, true);
    let current = engine.db()?.get(id)?;
    let Some(current) = current else {
        // Removed while running (rm -f): clean what is ours and go.
        let _ = lifecycle::unmount_rootfs(engine, id);
        return Ok(Next::Exit);
    };
    if policy.should_restart(code, *restarts, current.stop_requested) {
        let db = engine.db()?;
        let exit_code = code.to_string();
        crate::events::container(engine, &current, "die", &[("exitCode", &exit_code)]);
        db.set_restarting(id, code, crate::now_ms())?;
        drop(db);
        *restarts += 1;
        // Docker's back-off: doubling from 100ms, capped.
        let delay = 100u64.saturating_mul(1 << (*restarts).min(6));
        std::thread::sleep(Duration::from_millis(delay.min(5000)));
        if engine.db()?.get(id)?.is_some_and(|r| !r.stop_requested) {
            return Ok(Next::Restart);
        }
    }
    lifecycle::cleanup_after_exit(engine, id, Some(code))?;
    if row.auto_remove {
        lifecycle::remove_files(engine, id)?;
    }
    Ok(Next::Exit)
}

/// The container's output streams and where clients' input goes.
pub struct Streams<'a> {
    /// Read ends of the output: the pty master (as "stdout"), or the
    /// stdout and stderr pipes.
    pub sources: Vec<(BorrowedFd<'a>, &'static str)>,
    /// The pty master, or the write end of the `-i` stdin pipe.
    pub input: Option<BorrowedFd<'a>>,
    /// The pty master (`-t`): control clients resize it.
    pub console: Option<BorrowedFd<'a>>,
    /// Docker's StdinOnce: once an attach client leaves, the container's
    /// stdin pipe is closed (its process reads EOF, as `echo hi | docker
    /// run -i IMAGE cat` needs).
    pub stdin_once: bool,
}

impl<'a> Streams<'a> {
    fn of(console: Option<&'a OwnedFd>, stdio: &'a Stdio, stdin_once: bool) -> Streams<'a> {
        match console {
            Some(m) => Streams {
                sources: vec![(m.as_fd(), "stdout")],
                input: Some(m.as_fd()),
                console: Some(m.as_fd()),
                stdin_once: false,
            },
            None => Streams {
                sources: vec![
                    (stdio.out.0.as_fd(), "stdout"),
                    (stdio.err.0.as_fd(), "stderr"),
                ],
                input: stdio.input.as_ref().map(|(_, w)| w.as_fd()),
                console: None,
                stdin_once,
            },
        }
    }
}

/// Copies the container's output to the log and to attached clients,
/// clients' input to the container's stdin (`-i`) and their window sizes
/// to its pty (`-t`), until its process exits; returns its exit status
/// (128+N when killed by signal N).
pub fn pump(
    id: &str,
    pid: i32,
    streams: &Streams<'_>,
    log: &mut LogWriter,
    hub: &mut Hub,
    mut health: Option<&mut crate::health::Schedule>,
) -> Result<i32> {
    let mut set = SigSet::empty();
    set.add(Signal::SIGCHLD);
    let sfd = SignalFd::with_flags(&set, SfdFlags::SFD_CLOEXEC | SfdFlags::SFD_NONBLOCK)
        .map_err(sys(id, "create signalfd"))?;
    // The exit may have come before the signalfd existed (a hand-off
    // exec in between): its SIGCHLD stays pending, but look once anyway.
    if let Some(code) = reap(pid) {
        return finish(streams, log, hub, code);
    }
    // 4 KiB: what a pipe or pty hands over per read in practice; the
    // monitor idles with as little memory as it can.
    let mut buf = vec![0u8; 4 * 1024];
    let sources = &streams.sources;
    let mut open = vec![true; sources.len()];
    loop {
        use nix::poll::{PollFd, PollFlags, PollTimeout};
        let mut fds = vec![PollFd::new(sfd.as_fd(), PollFlags::POLLIN)];
        let mut which = Vec::new();
        for (i, (fd, _)) in sources.iter().enumerate() {
            if open[i] {
                fds.push(PollFd::new(*fd, PollFlags::POLLIN));
                which.push(i);
            }
        }
        let listening = hub.listener_fd().map(|l| {
            fds.push(PollFd::new(l, PollFlags::POLLIN));
            fds.len() - 1
        });
        let ctl_listening = hub.ctl_listener_fd().map(|l| {
            fds.push(PollFd::new(l, PollFlags::POLLIN));
            fds.len() - 1
        });
        let clients_at = fds.len();
        let client_fds = hub.client_fds();
        for c in &client_fds {
            fds.push(PollFd::new(*c, PollFlags::POLLIN));
        }
        let ctl_at = fds.len();
        let ctl_fds = hub.ctl_client_fds();
        for c in &ctl_fds {
            fds.push(PollFd::new(*c, PollFlags::POLLIN));
        }
        // With a healthcheck, poll wakes when the next check is due.
        let timeout = match &health {
            Some(h) => PollTimeout::try_from(h.wait_ms().min(60_000) as i32 + 1)
                .unwrap_or(PollTimeout::NONE),
            None => PollTimeout::NONE,
        };
        match nix::poll::poll(&mut fds, timeout) {
            Ok(_) | Err(nix::Error::EINTR) => {}
            Err(e) => return Err(sys(id, "poll")(e)),
        }
        let ready: Vec<bool> = fds
            .iter()
            .map(|f| f.revents().is_some_and(|r| !r.is_empty()))
            .collect();
        drop(fds);
        if let Some(h) = health.as_deref_mut() {
            h.tick();
        }
        drop(client_fds);
        drop(ctl_fds);
        for (k, &i) in which.iter().enumerate() {
            if ready[k + 1] {
                match nix::unistd::read(sources[i].0, &mut buf) {
                    Ok(0) | Err(_) => open[i] = false,
                    Ok(n) => {
                        log.write(sources[i].1, &buf[..n])?;
                        hub.broadcast(&buf[..n]);
                    }
                }
            }
        }
        let accept = listening.is_some_and(|i| ready[i]) || ctl_listening.is_some_and(|i| ready[i]);
        let polled = Polled {
            clients: &ready[clients_at..ctl_at],
            ctl: &ready[ctl_at..],
        };
        serve_clients(hub, &polled, streams, &mut buf);
        if accept {
            hub.accept();
        }
        if ready[0] {
            while let Ok(Some(_)) = sfd.read_signal() {}
            if let Some(code) = reap(pid) {
                let sources: Vec<_> = sources
                    .iter()
                    .zip(&open)
                    .filter(|(_, o)| **o)
                    .map(|(s, _)| *s)
                    .collect();
                let rest = Streams {
                    sources,
                    input: None,
                    console: None,
                    stdin_once: false,
                };
                return finish(&rest, log, hub, code);
            }
        }
    }
}

/// Drains the streams after the exit and flushes the log.
fn finish(streams: &Streams<'_>, log: &mut LogWriter, hub: &mut Hub, code: i32) -> Result<i32> {
    let mut buf = vec![0u8; 4 * 1024];
    for (fd, stream) in &streams.sources {
        drain(*fd, stream, &mut buf, log, hub)?;
    }
    log.flush_partial()?;
    Ok(code)
}

/// Which of the clients polled have something: attach clients, then
/// control clients (by index).
struct Polled<'a> {
    clients: &'a [bool],
    ctl: &'a [bool],
}

/// Forwards what attach clients sent to the container's stdin (dropped
/// when it has none) and applies control clients' requests.
fn serve_clients(hub: &mut Hub, ready: &Polled<'_>, streams: &Streams<'_>, buf: &mut [u8]) {
    let mut gone = Vec::new();
    for (i, r) in ready.clients.iter().enumerate() {
        if !r {
            continue;
        }
        match hub.read_client(i, buf) {
            None => gone.push(i),
            Some(0) => {}
            Some(n) => {
                if let Some(fd) = streams.input {
                    let _ = attach::write_fd(fd, &buf[..n]);
                }
            }
        }
    }
    if !gone.is_empty() && streams.stdin_once && streams.console.is_none() {
        if let Some(fd) = streams.input {
            close_input(fd);
        }
    }
    hub.forget(&gone);
    let mut gone = Vec::new();
    for (i, r) in ready.ctl.iter().enumerate() {
        if !r {
            continue;
        }
        match hub.read_requests(i, buf) {
            None => gone.push(i),
            Some(requests) => {
                for Request::Resize { rows, cols } in requests {
                    // Without a pty there is nothing to resize.
                    if let Some(pty) = streams.console {
                        let ws = rustix::termios::Winsize {
                            ws_row: rows,
                            ws_col: cols,
                            ws_xpixel: 0,
                            ws_ypixel: 0,
                        };
                        let _ = rustix::termios::tcsetwinsize(pty, ws);
                    }
                }
            }
        }
    }
    hub.forget_ctl(&gone);
}

/// Closes the container's stdin pipe (StdinOnce): our write end becomes
/// /dev/null, so the descriptor stays valid for its owner and what later
/// clients send is dropped.
fn close_input(fd: BorrowedFd<'_>) {
    match std::fs::File::open("/dev/null") {
        Ok(null) => {
            if let Err(e) = berth_sys::fd::replace_with(fd, null.as_fd()) {
                eprintln!("berth monitor: close the container's stdin: {e}");
            }
        }
        Err(e) => eprintln!("berth monitor: close the container's stdin: open /dev/null: {e}"),
    }
}

/// Reaps exited children; the exit code once `pid` is among them.
fn reap(pid: i32) -> Option<i32> {
    let mut result = None;
    loop {
        match waitpid(None, Some(WaitPidFlag::WNOHANG)) {
            Ok(WaitStatus::Exited(p, code)) if p.as_raw() == pid => result = Some(code),
            Ok(WaitStatus::Signaled(p, sig, _)) if p.as_raw() == pid => {
                result = Some(128 + sig as i32)
            }
            Ok(WaitStatus::StillAlive) | Err(_) => return result,
            Ok(_) => {}
        }
    }
}

/// Reads what is left after the container's process exited: until end of
/// file (or EIO on a pty master), or until the fd stays quiet for 200ms,
/// since processes the container left behind may keep it open. A pty
/// passes output through the line discipline asynchronously, so the last
/// bytes can arrive just after the exit.
fn drain(
    fd: BorrowedFd<'_>,
    stream: &'static str,
    buf: &mut [u8],
    log: &mut LogWriter,
    hub: &mut Hub,
) -> Result<()> {
    use nix::poll::{PollFd, PollFlags, PollTimeout};
    // Bounded, should something keep writing (a leftover process).
    let end = std::time::Instant::now() + Duration::from_secs(5);
    while std::time::Instant::now() < end {
        let mut pfd = [PollFd::new(fd, PollFlags::POLLIN)];
        match nix::poll::poll(&mut pfd, PollTimeout::from(200u16)) {
            Ok(0) => return Ok(()),
            Ok(_) => {}
            Err(nix::Error::EINTR) => continue,
            Err(_) => return Ok(()),
        }
        match nix::unistd::read(fd, buf) {
            Ok(0) | Err(_) => return Ok(()),
            Ok(n) => {
                log.write(stream, &buf[..n])?;
                hub.broadcast(&buf[..n]);
            }
        }
    }
    Ok(())
}
