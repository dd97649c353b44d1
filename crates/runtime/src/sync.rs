//! The parent/child handshake during create and exec: one JSON message per
//! line over a socketpair.

use serde::{Deserialize, Serialize};
use std::io::{BufRead, BufReader, Write};
use std::os::unix::net::UnixStream;

/// Messages between the runtime and the process it is turning into the
/// container.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub enum Msg {
    /// child -> parent: the pid (in the runtime's pid namespace) of the
    /// process that will exec, when an intermediate process forked it.
    Pid(i32),
    /// child -> parent: the intermediate process created a user namespace;
    /// write its id maps, then answer with `Go`.
    MapsNeeded,
    /// parent -> child: cgroup joined, id maps written; carries the state
    /// JSON the child may need (seccomp listener, hooks).
    Go(String),
    /// child -> parent: mounts are ready, run prestart/createRuntime hooks.
    Hooks,
    /// parent -> child: hooks done.
    HooksDone,
    /// child -> parent: everything is set up; only the exec remains.
    Ready,
    /// child -> parent: as `Ready`, and the child now loads a seccomp filter
    /// with a notify listener, which will get this descriptor number: the
    /// parent takes a copy (pidfd_getfd(2)) for the seccomp agent, so the
    /// child sends nothing under its filter (it only reads `SeccompDone`).
    SeccompReady(i32),
    /// parent -> child: the parent has its copy of the notify descriptor;
    /// the child may go on (an exec closes its own copy).
    SeccompDone,
    /// child -> parent: setup failed; the message says why.
    Error(String),
    /// parent -> child: `run` (create and start in one call) releases the
    /// container over the channel instead of the exec fifo.
    Start,
}

/// Errors of the handshake.
#[derive(Debug, thiserror::Error)]
pub enum SyncError {
    #[error("container process closed the setup channel unexpectedly")]
    Closed,
    #[error("setup channel: {0}")]
    Io(#[from] std::io::Error),
    #[error("setup channel carried a bad message: {0}")]
    Bad(String),
}

/// One end of the handshake.
#[derive(Debug)]
pub struct Channel {
    reader: BufReader<UnixStream>,
}

impl std::os::fd::AsFd for Channel {
    fn as_fd(&self) -> std::os::fd::BorrowedFd<'_> {
        self.reader.get_ref().as_fd()
    }
}

impl Channel {
    pub fn pair() -> std::io::Result<(Channel, Channel)> {
        let (a, b) = UnixStream::pair()?;
        Ok((Channel::new(a), Channel::new(b)))
    }

    pub fn new(s: UnixStream) -> Channel {
        Channel {
            reader: BufReader::new(s),
        }
    }

    pub fn send(&mut self, m: &Msg) -> Result<(), SyncError> {
        let mut line = serde_json::to_vec(m).expect("messages always serialize");
        line.push(b'\n');
        self.reader.get_mut().write_all(&line)?;
        Ok(())
    }

    /// Whether a message (or end of file) is waiting, within `timeout_ms`.
    pub fn readable(&self, timeout_ms: u16) -> Result<bool, SyncError> {
        use nix::poll::{poll, PollFd, PollFlags, PollTimeout};
        use std::os::fd::AsFd;
        if !self.reader.buffer().is_empty() {
            return Ok(true);
        }
        let mut pfd = [PollFd::new(
            self.reader.get_ref().as_fd(),
            PollFlags::POLLIN,
        )];
        match poll(&mut pfd, PollTimeout::from(timeout_ms)) {
            Ok(n) => Ok(n > 0),
            Err(nix::Error::EINTR) => Ok(false),
            Err(e) => Err(SyncError::Io(e.into())),
        }
    }

    pub fn recv(&mut self) -> Result<Msg, SyncError> {
        let mut line = String::new();
        if self.reader.read_line(&mut line)? == 0 {
            return Err(SyncError::Closed);
        }
        serde_json::from_str(&line).map_err(|e| SyncError::Bad(e.to_string()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip() {
        let (mut a, mut b) = Channel::pair().expect("pair");
        a.send(&Msg::Go("{}".into())).expect("send");
        a.send(&Msg::Error("x\ny".into())).expect("send");
        assert_eq!(b.recv().expect("recv"), Msg::Go("{}".into()));
        assert_eq!(b.recv().expect("recv"), Msg::Error("x\ny".into()));
        drop(a);
        assert!(matches!(b.recv(), Err(SyncError::Closed)));
    }
}
