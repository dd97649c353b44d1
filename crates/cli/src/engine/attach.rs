//! `berth attach CONTAINER`: connects to the attach socket its monitor
//! holds (`berth_engine::attach`), copies the container's output to our
//! stdout and (for `-i` containers) our stdin to the container. Detaches
//! on end of our stdin or on the detach keys (ctrl-p ctrl-q unless
//! `--detach-keys` says otherwise; exit 0, the container keeps
//! running); when the container exits, returns its exit status. On the
//! control socket beside it, sends our terminal's size to a `-t`
//! container's pty (at attach and on SIGWINCH) and receives the exit
//! status (which `--rm` removes from the database). Single-threaded (poll).

use std::io::{Read, Write};
use std::os::fd::AsFd;
use std::os::unix::net::UnixStream;
use std::path::Path;

use anyhow::{bail, Context, Result};
use berth_engine::{attach, lifecycle, ops, Status};
use clap::Args;

use super::run::EngineArgs;

#[derive(Debug, Args)]
pub struct AttachArgs {
    /// Do not forward our stdin (only watch the output).
    #[arg(long)]
    pub no_stdin: bool,
    /// The keys that detach, comma-separated: single characters or
    /// ctrl-X; empty for none (example: --detach-keys ctrl-a,x).
    #[arg(long, default_value = "ctrl-p,ctrl-q")]
    pub detach_keys: String,
    /// Container (name or ID).
    pub container: String,
}

/// How copying ended.
#[derive(Debug, PartialEq, Eq)]
pub enum Next {
    /// Our stdin ended: detach, the container keeps running.
    Detach,
    /// The monitor closed the socket: the container exited.
    Exited,
}

/// `attach`.
pub fn attach(root: &Path, e: &EngineArgs, a: &AttachArgs) -> Result<i32> {
    let keys = DetachKeys::parse(&a.detach_keys).map_err(|e| anyhow::anyhow!("attach: {e}"))?;
    let engine = e.engine(root)?;
    let row = lifecycle::find(&engine, &a.container)?;
    if row.status != Status::Running {
        bail!(
            "attach {}: the container is {}, not running (start it with `berth start -a`)",
            a.container,
            row.status
        );
    }
    let cfg = berth_engine::create::ContainerConfig::of(&row)?;
    let path = attach::socket_path(&engine, &row.id);
    let sock = attach::with_socket_path(&path, |p| UnixStream::connect(p)).with_context(|| {
        format!(
            "attach {}: connect to the monitor's socket {} (a container started by an older berth has none)",
            a.container,
            path.display()
        )
    })?;
    // Resize requests out, the exit status in; a monitor of an older
    // berth has no control socket (then: no resize, status from the db).
    let ctl = attach::with_socket_path(&attach::control_path(&engine, &row.id), |p| {
        UnixStream::connect(p)
    })
    .ok();
    let forward = !a.no_stdin && (cfg.options.interactive || cfg.options.tty);
    // A pty container: our terminal goes raw (the container's pty does
    // the echo and line editing); restored on drop.
    let _raw = if forward && cfg.options.tty {
        RawMode::enter()
    } else {
        None
    };
    let resizer = match (&ctl, cfg.options.tty) {
        (Some(c), true) => Resizer::new(c),
        _ => None,
    };
    let input = forward.then_some(keys);
    match copy(&sock, input, resizer.as_ref())? {
        Next::Detach => Ok(0),
        Next::Exited => match ctl.and_then(read_exit) {
            Some(code) => Ok(code),
            None => wait_status(&engine, &row.id, &a.container),
        },
    }
}

/// What the monitor sent on the control socket once the container exited
/// (it closes the socket right after).
fn read_exit(mut ctl: UnixStream) -> Option<i32> {
    let _ = ctl.set_read_timeout(Some(std::time::Duration::from_secs(5)));
    let mut got = Vec::new();
    let mut buf = [0u8; 64];
    loop {
        if let Some(code) = attach::parse_exit(&got) {
            if got.ends_with(b"\n") {
                return Some(code);
            }
        }
        match ctl.read(&mut buf) {
            Ok(0) | Err(_) => return attach::parse_exit(&got),
            Ok(n) => got.extend_from_slice(&buf[..n]),
        }
    }
}

/// The exit status from the database (a monitor without control socket).
fn wait_status(engine: &berth_engine::Engine, id: &str, name: &str) -> Result<i32> {
    match ops::wait(engine, id) {
        Ok(code) => Ok(code),
        // --rm: the monitor removed it before we could read its status.
        Err(e) => {
            eprintln!("berth: attach {name}: exit status unknown: {e}");
            Ok(0)
        }
    }
}

/// Sends our terminal's window size to the container's pty: once at
/// attach, then on every SIGWINCH.
struct Resizer<'a> {
    ctl: &'a UnixStream,
    /// Our terminal is stdin (else stdout).
    term_in: bool,
    winch: nix::sys::signalfd::SignalFd,
}

impl<'a> Resizer<'a> {
    /// `None` when neither stdin nor stdout is a terminal.
    fn new(ctl: &'a UnixStream) -> Option<Resizer<'a>> {
        use nix::sys::signal::{SigSet, SigmaskHow, Signal};
        use nix::sys::signalfd::{SfdFlags, SignalFd};
        let term_in = if rustix::termios::isatty(std::io::stdin()) {
            true
        } else if rustix::termios::isatty(std::io::stdout()) {
            false
        } else {
            return None;
        };
        let mut set = SigSet::empty();
        set.add(Signal::SIGWINCH);
        // Blocked before the first size is read: no change is missed.
        nix::sys::signal::sigprocmask(SigmaskHow::SIG_BLOCK, Some(&set), None).ok()?;
        let winch =
            SignalFd::with_flags(&set, SfdFlags::SFD_CLOEXEC | SfdFlags::SFD_NONBLOCK).ok()?;
        let r = Resizer {
            ctl,
            term_in,
            winch,
        };
        r.send();
        Some(r)
    }

    /// Sends the current size (nothing when the terminal has none).
    fn send(&self) {
        let size = if self.term_in {
            rustix::termios::tcgetwinsize(std::io::stdin())
        } else {
            rustix::termios::tcgetwinsize(std::io::stdout())
        };
        let Ok(ws) = size else {
            return;
        };
        if ws.ws_row == 0 && ws.ws_col == 0 {
            return;
        }
        let line = attach::Request::Resize {
            rows: ws.ws_row,
            cols: ws.ws_col,
        }
        .line();
        let mut ctl = self.ctl;
        let _ = ctl.write_all(line.as_bytes());
    }

    /// After the signalfd polled ready: reads the signals, sends the size.
    fn changed(&self) {
        while let Ok(Some(_)) = self.winch.read_signal() {}
        self.send();
    }
}

/// Our terminal in raw mode while attached to a pty container.
struct RawMode(nix::sys::termios::Termios);

impl RawMode {
    /// `None` when stdin is not a terminal.
    fn enter() -> Option<RawMode> {
        use nix::sys::termios::{cfmakeraw, tcgetattr, tcsetattr, SetArg};
        let stdin = std::io::stdin();
        let saved = tcgetattr(stdin.as_fd()).ok()?;
        let mut raw = saved.clone();
        cfmakeraw(&mut raw);
        tcsetattr(stdin.as_fd(), SetArg::TCSANOW, &raw).ok()?;
        Some(RawMode(saved))
    }
}

impl Drop for RawMode {
    fn drop(&mut self) {
        use nix::sys::termios::{tcsetattr, SetArg};
        let _ = tcsetattr(std::io::stdin().as_fd(), SetArg::TCSANOW, &self.0);
    }
}

/// The key sequence that detaches (docker's and podman's
/// `--detach-keys`): typed on our stdin, it is not forwarded.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DetachKeys {
    keys: Vec<u8>,
    /// How many bytes of `keys` the input ended with (held back until
    /// the next bytes decide).
    matched: usize,
}

impl DetachKeys {
    /// Parses docker's format: comma-separated keys, each a single
    /// character or `ctrl-X` with X one of `a-z @ [ \ ] ^ _`; empty: no
    /// detach keys (only the end of our stdin detaches).
    pub fn parse(spec: &str) -> std::result::Result<DetachKeys, String> {
        let mut keys = Vec::new();
        if !spec.is_empty() {
            for key in spec.split(',') {
                keys.push(Self::key(key).ok_or_else(|| {
                    format!(
                        "--detach-keys {spec:?}: {key:?} is not a key (a single character, or ctrl- followed by one of a-z @ [ \\ ] ^ _; example: ctrl-p,ctrl-q)"
                    )
                })?);
            }
        }
        Ok(DetachKeys { keys, matched: 0 })
    }

    fn key(key: &str) -> Option<u8> {
        match key.strip_prefix("ctrl-") {
            Some(c) if c.len() == 1 => {
                let b = c.as_bytes()[0].to_ascii_lowercase();
                match b {
                    b'a'..=b'z' => Some(b - b'a' + 1),
                    b'@' | b'[' | b'\\' | b']' | b'^' | b'_' => Some(b & 0x1f),
                    _ => None,
                }
            }
            _ if key.len() == 1 => Some(key.as_bytes()[0]),
            _ => None,
        }
    }

    /// Returns what to forward of `data` and whether the sequence was
    /// typed (what followed it in `data` is dropped).
    pub fn feed(&mut self, data: &[u8]) -> (Vec<u8>, bool) {
        if self.keys.is_empty() {
            return (data.to_vec(), false);
        }
        let mut out = Vec::with_capacity(data.len() + self.keys.len());
        for &b in data {
            if b == self.keys[self.matched] {
                self.matched += 1;
                if self.matched == self.keys.len() {
                    self.matched = 0;
                    return (out, true);
                }
                continue;
            }
            // Not the sequence after all: what was held goes through,
            // and this byte may start the sequence anew.
            out.extend_from_slice(&self.keys[..self.matched]);
            self.matched = 0;
            if b == self.keys[0] {
                self.matched = 1;
                if self.keys.len() == 1 {
                    self.matched = 0;
                    return (out, true);
                }
            } else {
                out.push(b);
            }
        }
        (out, false)
    }
}

/// Copies the output until the container exits, and (with `input`) our
/// stdin until it ends or the detach keys are typed; passes window size
/// changes on to `resizer`.
fn copy(
    sock: &UnixStream,
    mut input: Option<DetachKeys>,
    resizer: Option<&Resizer<'_>>,
) -> Result<Next> {
    use nix::poll::{PollFd, PollFlags, PollTimeout};
    let stdin = std::io::stdin();
    let mut out = std::io::stdout();
    let mut buf = vec![0u8; 16 * 1024];
    let mut reader = sock;
    let mut writer = sock;
    let forward = input.is_some();
    loop {
        let (sock_ready, in_ready, winch_ready) = {
            let mut fds = vec![PollFd::new(sock.as_fd(), PollFlags::POLLIN)];
            if let Some(r) = resizer {
                fds.push(PollFd::new(r.winch.as_fd(), PollFlags::POLLIN));
            }
            if forward {
                fds.push(PollFd::new(stdin.as_fd(), PollFlags::POLLIN));
            }
            match nix::poll::poll(&mut fds, PollTimeout::NONE) {
                Ok(_) | Err(nix::Error::EINTR) => {}
                Err(e) => return Err(std::io::Error::from(e)).context("attach: poll"),
            }
            let r = |f: &PollFd<'_>| f.revents().is_some_and(|r| !r.is_empty());
            let w = usize::from(resizer.is_some());
            (r(&fds[0]), forward && r(&fds[1 + w]), w == 1 && r(&fds[1]))
        };
        if winch_ready {
            if let Some(r) = resizer {
                r.changed();
            }
        }
        if sock_ready {
            match reader.read(&mut buf) {
                Ok(0) | Err(_) => {
                    let _ = out.flush();
                    return Ok(Next::Exited);
                }
                Ok(n) => {
                    // A closed stdout (`| head`) detaches.
                    if out.write_all(&buf[..n]).and_then(|()| out.flush()).is_err() {
                        return Ok(Next::Detach);
                    }
                }
            }
        }
        if let (true, Some(keys)) = (in_ready, input.as_mut()) {
            // Unbuffered: poll must see whatever we have not read.
            let n = rustix::io::read(stdin.as_fd(), &mut buf).unwrap_or(0);
            if n == 0 {
                return Ok(Next::Detach);
            }
            let (send, detach) = keys.feed(&buf[..n]);
            if writer.write_all(&send).is_err() {
                return Ok(Next::Exited);
            }
            if detach {
                return Ok(Next::Detach);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::DetachKeys;

    fn default() -> DetachKeys {
        DetachKeys::parse("ctrl-p,ctrl-q").expect("docker's default")
    }

    #[test]
    fn plain_input_passes() {
        assert_eq!(default().feed(b"ls\n"), (b"ls\n".to_vec(), false));
    }

    #[test]
    fn ctrl_p_ctrl_q_detaches() {
        assert_eq!(default().feed(b"a\x10\x11b"), (b"a".to_vec(), true));
    }

    #[test]
    fn split_sequence_across_reads() {
        let mut k = default();
        assert_eq!(k.feed(b"a\x10"), (b"a".to_vec(), false));
        assert_eq!(k.feed(b"\x11"), (Vec::new(), true));
    }

    #[test]
    fn lone_ctrl_p_is_forwarded() {
        let mut k = default();
        assert_eq!(k.feed(b"\x10x"), (b"\x10x".to_vec(), false));
        assert_eq!(k.feed(b"\x10\x10\x11"), (b"\x10".to_vec(), true));
    }

    #[test]
    fn detach_keys_are_parsed_as_docker_does() {
        assert_eq!(
            DetachKeys::parse("ctrl-a,x").expect("ok").keys,
            vec![1, b'x']
        );
        assert_eq!(
            DetachKeys::parse("ctrl-[,ctrl-@").expect("ok").keys,
            vec![0x1b, 0]
        );
        assert_eq!(DetachKeys::parse("ctrl-Z").expect("ok").keys, vec![26]);
        assert!(DetachKeys::parse("ctrl-1").is_err());
        assert!(DetachKeys::parse("ctrl-p,").is_err());
        assert!(DetachKeys::parse("pq").is_err());
        let mut none = DetachKeys::parse("").expect("empty: none");
        assert_eq!(none.feed(b"\x10\x11"), (b"\x10\x11".to_vec(), false));
        let mut one = DetachKeys::parse("ctrl-x").expect("ok");
        assert_eq!(one.feed(b"ab\x18cd"), (b"ab".to_vec(), true));
    }
}
