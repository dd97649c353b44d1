//! Waiting for a foreground container (`run`, `exec` without `--detach`):
//! signals are forwarded to the process, a terminal is proxied, and the
//! exit status becomes ours (128+N when killed by signal N, as shells do).

use nix::sys::signal::{SigSet, SigmaskHow, Signal};
use nix::sys::signalfd::{SfdFlags, SignalFd};
use nix::sys::wait::{waitpid, WaitPidFlag, WaitStatus};
use nix::unistd::Pid;
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};

/// Errors while waiting.
#[derive(Debug, thiserror::Error)]
pub enum WaitError {
    #[error("cannot {op}: {source}")]
    Sys {
        op: &'static str,
        #[source]
        source: nix::Error,
    },
}

fn sys(op: &'static str) -> impl FnOnce(nix::Error) -> WaitError {
    move |source| WaitError::Sys { op, source }
}

/// The signals forwarded to the container.
fn forwarded() -> SigSet {
    let mut set = SigSet::all();
    for s in [
        Signal::SIGKILL,
        Signal::SIGSTOP,
        Signal::SIGSEGV,
        Signal::SIGBUS,
        Signal::SIGILL,
        Signal::SIGFPE,
    ] {
        set.remove(s);
    }
    set
}

/// Block the forwarded signals in the runtime (call before creating the
/// container, so no signal is lost in between). The container process
/// resets its mask before exec.
pub fn block_signals() -> Result<(), WaitError> {
    nix::sys::signal::sigprocmask(SigmaskHow::SIG_BLOCK, Some(&forwarded()), None)
        .map_err(sys("block signals"))?;
    nix::sys::prctl::set_child_subreaper(true).map_err(sys("become child subreaper"))
}

/// Restores the terminal mode on drop.
struct RawMode<'a> {
    fd: BorrowedFd<'a>,
    saved: nix::sys::termios::Termios,
}

impl Drop for RawMode<'_> {
    fn drop(&mut self) {
        let _ =
            nix::sys::termios::tcsetattr(self.fd, nix::sys::termios::SetArg::TCSANOW, &self.saved);
    }
}

/// Wait for `pid`; proxy `console` (a pty master) to our stdio if given.
pub fn wait(pid: i32, console: Option<OwnedFd>) -> Result<i32, WaitError> {
    wait_tee(pid, console, Vec::new(), &mut |_, _| {})
}

/// The read end of a pipe the container writes its stdout or stderr to:
/// what arrives is copied to `to` (our own stdout or stderr) and handed
/// to the tee under `stream`'s name.
pub struct TeePipe<'a> {
    pub from: OwnedFd,
    pub to: BorrowedFd<'a>,
    pub stream: &'static str,
}

/// [`wait`], also copying the container's output to `tee` (the engine's
/// log): the pty master's as "stdout", and every pipe's.
pub fn wait_tee(
    pid: i32,
    console: Option<OwnedFd>,
    pipes: Vec<TeePipe<'_>>,
    tee: &mut dyn FnMut(&'static str, &[u8]),
) -> Result<i32, WaitError> {
    let sfd = SignalFd::with_flags(&forwarded(), SfdFlags::SFD_CLOEXEC | SfdFlags::SFD_NONBLOCK)
        .map_err(sys("create signalfd"))?;
    let stdin_handle = std::io::stdin();
    let stdin = stdin_handle.as_fd();
    let _raw = match &console {
        Some(master) if nix::unistd::isatty(stdin).unwrap_or(false) => {
            let saved = nix::sys::termios::tcgetattr(stdin).map_err(sys("read terminal mode"))?;
            let mut raw = saved.clone();
            nix::sys::termios::cfmakeraw(&mut raw);
            nix::sys::termios::tcsetattr(stdin, nix::sys::termios::SetArg::TCSANOW, &raw)
                .map_err(sys("set raw terminal mode"))?;
            copy_winsize(stdin, master.as_fd());
            Some(RawMode { fd: stdin, saved })
        }
        _ => None,
    };
    let mut stdin_open = console.is_some();
    let mut master_open = console.is_some();
    let mut pipe_open = vec![true; pipes.len()];
    let mut buf = vec![0u8; 32 * 1024];
    loop {
        use nix::poll::{PollFd, PollFlags, PollTimeout};
        let mut fds = vec![PollFd::new(sfd.as_fd(), PollFlags::POLLIN)];
        if let Some(m) = &console {
            if master_open {
                fds.push(PollFd::new(m.as_fd(), PollFlags::POLLIN));
            }
            if stdin_open {
                fds.push(PollFd::new(stdin, PollFlags::POLLIN));
            }
        }
        let pipes_at = fds.len();
        let mut polled_pipes = Vec::new();
        for (i, p) in pipes.iter().enumerate() {
            if pipe_open[i] {
                fds.push(PollFd::new(p.from.as_fd(), PollFlags::POLLIN));
                polled_pipes.push(i);
            }
        }
        match nix::poll::poll(&mut fds, PollTimeout::NONE) {
            Ok(_) | Err(nix::Error::EINTR) => {}
            Err(e) => return Err(sys("poll")(e)),
        }
        let ready: Vec<bool> = fds
            .iter()
            .map(|f| f.revents().is_some_and(|r| !r.is_empty()))
            .collect();
        drop(fds);
        let mut idx = 1;
        if let Some(m) = &console {
            if master_open {
                if ready[idx] {
                    match nix::unistd::read(m, &mut buf) {
                        Ok(0) | Err(_) => master_open = false,
                        Ok(n) => {
                            write_all(std::io::stdout().as_fd(), &buf[..n]);
                            tee("stdout", &buf[..n]);
                        }
                    }
                }
                idx += 1;
            }
            if stdin_open && ready.get(idx).copied().unwrap_or(false) {
                match nix::unistd::read(stdin, &mut buf) {
                    Ok(0) | Err(_) => stdin_open = false,
                    Ok(n) => write_all(m.as_fd(), &buf[..n]),
                }
            }
        }
        for (k, &i) in polled_pipes.iter().enumerate() {
            if ready[pipes_at + k] {
                let p = &pipes[i];
                match nix::unistd::read(&p.from, &mut buf) {
                    Ok(0) | Err(_) => pipe_open[i] = false,
                    Ok(n) => {
                        write_all(p.to, &buf[..n]);
                        tee(p.stream, &buf[..n]);
                    }
                }
            }
        }
        if ready[0] {
            while let Ok(Some(info)) = sfd.read_signal() {
                let signo = info.ssi_signo as i32;
                if signo == libc::SIGCHLD {
                    if let Some(code) = reap(pid)? {
                        if let Some(m) = &console {
                            drain(m.as_fd(), None, "stdout", &mut buf, tee);
                        }
                        for (i, p) in pipes.iter().enumerate() {
                            if pipe_open[i] {
                                drain(p.from.as_fd(), Some(p.to), p.stream, &mut buf, tee);
                            }
                        }
                        return Ok(code);
                    }
                } else if signo == libc::SIGWINCH {
                    if let Some(m) = &console {
                        copy_winsize(stdin, m.as_fd());
                    }
                } else if let Ok(sig) = Signal::try_from(signo) {
                    let _ = nix::sys::signal::kill(Pid::from_raw(pid), sig);
                }
            }
        }
    }
}

/// Reap every exited child; return the exit code once `pid` is among them.
fn reap(pid: i32) -> Result<Option<i32>, WaitError> {
    let mut result = None;
    loop {
        match waitpid(None, Some(WaitPidFlag::WNOHANG)) {
            Ok(WaitStatus::Exited(p, code)) if p.as_raw() == pid => result = Some(code),
            Ok(WaitStatus::Signaled(p, sig, _)) if p.as_raw() == pid => {
                result = Some(128 + sig as i32)
            }
            Ok(WaitStatus::StillAlive) | Err(nix::Error::ECHILD) => return Ok(result),
            Ok(_) => {}
            Err(nix::Error::EINTR) => {}
            Err(e) => return Err(sys("waitpid")(e)),
        }
    }
}

/// What is left after the exit: until end of file (EIO on a pty master)
/// or 200ms of quiet (processes left behind may keep a pipe open), at
/// most 5s. Goes to `to` (our stdout when None) and the tee.
fn drain(
    fd: BorrowedFd<'_>,
    to: Option<BorrowedFd<'_>>,
    stream: &'static str,
    buf: &mut [u8],
    tee: &mut dyn FnMut(&'static str, &[u8]),
) {
    use nix::poll::{PollFd, PollFlags, PollTimeout};
    let end = std::time::Instant::now() + std::time::Duration::from_secs(5);
    while std::time::Instant::now() < end {
        let mut pfd = [PollFd::new(fd, PollFlags::POLLIN)];
        match nix::poll::poll(&mut pfd, PollTimeout::from(200u16)) {
            Ok(0) => return,
            Ok(_) => {}
            Err(nix::Error::EINTR) => continue,
            Err(_) => return,
        }
        match nix::unistd::read(fd, buf) {
            Ok(0) | Err(_) => return,
            Ok(n) => {
                match to {
                    Some(t) => write_all(t, &buf[..n]),
                    None => write_all(std::io::stdout().as_fd(), &buf[..n]),
                }
                tee(stream, &buf[..n]);
            }
        }
    }
}

fn write_all(fd: BorrowedFd<'_>, mut data: &[u8]) {
    while !data.is_empty() {
        match nix::unistd::write(fd, data) {
            Ok(n) => data = &data[n..],
            Err(nix::Error::EINTR) => {}
            Err(_) => return,
        }
    }
}

fn copy_winsize(from: BorrowedFd<'_>, to: BorrowedFd<'_>) {
    if let Ok(ws) = rustix::termios::tcgetwinsize(from) {
        let _ = rustix::termios::tcsetwinsize(to, ws);
    }
}
