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
