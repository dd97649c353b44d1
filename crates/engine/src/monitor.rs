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

use crate::attach::{self, Hub};
use crate::create::ContainerConfig;
use crate::error::{io, sys, EngineError, Result};
use crate::lifecycle;
use crate::logs::LogWriter;
use crate::opts;
use crate::Engine;

/// The monitor's entry: `ready` is where it reports `ok` (or `error: ...`)
/// once the container runs. Returns the container's last exit code.
/// Must run in a fresh single-threaded process (it changes its own stdio).
pub fn run(engine: &Engine, id: &str, ready: OwnedFd) -> Result<i32> {
    let _ = nix::unistd::setsid();
    let _ = std::env::set_current_dir("/");
    let mut ready = Some(std::fs::File::from(ready));
    match supervise(engine, id, &mut ready) {
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
    let mut s = e.to_string();
    let mut cur = e.source();
    while let Some(c) = cur {
        s.push_str(": ");
        s.push_str(&c.to_string());
        cur = c.source();
    }
    s
}

/// Pipes that become the container's stdio.
struct Stdio {
    out: (OwnedFd, OwnedFd),
    err: (OwnedFd, OwnedFd),
    /// `-i`: a stdin pipe whose write end the monitor keeps open.
    input: Option<(OwnedFd, OwnedFd)>,
    null: std::fs::File,
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

    /// Our fds 0-2 back to /dev/null.
    fn take_back(&self, id: &str) -> Result<()> {
        rustix::stdio::dup2_stdin(&self.null).map_err(sys(id, "reset stdin"))?;
        rustix::stdio::dup2_stdout(&self.null).map_err(sys(id, "reset stdout"))?;
        rustix::stdio::dup2_stderr(&self.null).map_err(sys(id, "reset stderr"))
    }
}

fn supervise(engine: &Engine, id: &str, ready: &mut Option<std::fs::File>) -> Result<i32> {
    berth_runtime::foreground::block_signals().map_err(|source| EngineError::Wait {
        id: id.into(),
        source,
    })?;
    let row = engine.db()?.lookup(id)?;
    let cfg = ContainerConfig::of(&row)?;
    let policy = opts::parse_restart(&row.restart_policy)?;
    let stdio = Stdio::new(id, cfg.options.interactive)?;
    let mut log = LogWriter::open(&engine.log_path(id))?;
    // `berth attach` clients connect here (kept across restarts).
    // Without it (e.g. a runroot too long for a socket path) the
    // container still runs; only attaching is off.
    let mut hub = Hub::bind(engine, id).unwrap_or_else(|e| {
        eprintln!("berth monitor: container {id}: attach is disabled: {e}");
        Hub::disabled()
    });
    let mut restarts: u32 = 0;
    loop {
        stdio.lend(id)?;
        let launched = lifecycle::launch(engine, &row, cfg.options.tty);
        stdio.take_back(id)?;
        let spawned = match launched {
            Ok(s) => s,
            Err(e) => {
                let _ = lifecycle::cleanup_after_exit(engine, id, None);
                if row.auto_remove {
                    let _ = lifecycle::remove_files(engine, id);
                }
                return Err(e);
            }
        };
        if let Some(mut r) = ready.take() {
            let _ = writeln!(r, "ok {}", spawned.pid);
        }
        let code = pump(id, spawned.pid, spawned.console, &stdio, &mut log, &mut hub)?;
        let _ = berth_runtime::delete(&engine.state_root(), id, true);
        let current = engine.db()?.get(id)?;
        let Some(current) = current else {
            // Removed while running (rm -f): clean what is ours and go.
            let _ = lifecycle::unmount_rootfs(engine, id);
            return Ok(code);
        };
        if policy.should_restart(code, restarts, current.stop_requested) {
            let db = engine.db()?;
            db.set_restarting(id, code, crate::now_ms())?;
            restarts += 1;
            // Docker's back-off: doubling from 100ms, capped.
            let delay = 100u64.saturating_mul(1 << restarts.min(6));
            std::thread::sleep(Duration::from_millis(delay.min(5000)));
            if engine.db()?.get(id)?.is_some_and(|r| !r.stop_requested) {
                continue;
            }
        }
        lifecycle::cleanup_after_exit(engine, id, Some(code))?;
        if row.auto_remove {
            lifecycle::remove_files(engine, id)?;
        }
        return Ok(code);
    }
}

/// Copies the container's output to the log and to attached clients, and
/// clients' input to the container's stdin (`-i`), until its process
/// exits; returns its exit status (128+N when killed by signal N).
fn pump(
    id: &str,
    pid: i32,
    console: Option<OwnedFd>,
    stdio: &Stdio,
    log: &mut LogWriter,
    hub: &mut Hub,
) -> Result<i32> {
    let mut set = SigSet::empty();
    set.add(Signal::SIGCHLD);
    let sfd = SignalFd::with_flags(&set, SfdFlags::SFD_CLOEXEC | SfdFlags::SFD_NONBLOCK)
        .map_err(sys(id, "create signalfd"))?;
    let mut buf = vec![0u8; 16 * 1024];
    let sources: Vec<(BorrowedFd<'_>, &'static str)> = match &console {
        Some(m) => vec![(m.as_fd(), "stdout")],
        None => vec![
            (stdio.out.0.as_fd(), "stdout"),
            (stdio.err.0.as_fd(), "stderr"),
        ],
    };
    let mut open = vec![true; sources.len()];
    // Where clients' input goes: the pty, or the `-i` stdin pipe.
    let input: Option<BorrowedFd<'_>> = match (&console, &stdio.input) {
        (Some(m), _) => Some(m.as_fd()),
        (None, Some((_, w))) => Some(w.as_fd()),
        (None, None) => None,
    };
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
        let clients_at = fds.len();
        let client_fds = hub.client_fds();
        for c in &client_fds {
            fds.push(PollFd::new(*c, PollFlags::POLLIN));
        }
        match nix::poll::poll(&mut fds, PollTimeout::NONE) {
            Ok(_) | Err(nix::Error::EINTR) => {}
            Err(e) => return Err(sys(id, "poll")(e)),
        }
        let ready: Vec<bool> = fds
            .iter()
            .map(|f| f.revents().is_some_and(|r| !r.is_empty()))
            .collect();
        drop(fds);
        drop(client_fds);
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
        let accept = listening.is_some_and(|i| ready[i]);
        serve_clients(hub, accept, &ready[clients_at..], input, &mut buf);
        if ready[0] {
            while let Ok(Some(_)) = sfd.read_signal() {}
            if let Some(code) = reap(pid) {
                for (i, (fd, stream)) in sources.iter().enumerate() {
                    if open[i] {
                        drain(*fd, stream, &mut buf, log, hub)?;
                    }
                }
                log.flush_partial()?;
                return Ok(code);
            }
        }
    }
}

/// Accepts new attach clients and forwards what clients sent to the
/// container's stdin (dropped when it has none). `ready` says which of
/// the clients polled have something.
fn serve_clients(
    hub: &mut Hub,
    accept: bool,
    ready: &[bool],
    input: Option<BorrowedFd<'_>>,
    buf: &mut [u8],
) {
    let mut gone = Vec::new();
    for (i, r) in ready.iter().enumerate() {
        if !r {
            continue;
        }
        match hub.read_client(i, buf) {
            None => gone.push(i),
            Some(0) => {}
            Some(n) => {
                if let Some(fd) = input {
                    let _ = attach::write_fd(fd, &buf[..n]);
                }
            }
        }
    }
    hub.forget(&gone);
    if accept {
        hub.accept();
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
