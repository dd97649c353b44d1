//! The runtime's side of seccomp: compiling the container's filter, and
//! handing the notify descriptor of a filter with SCMP_ACT_NOTIFY rules to
//! the agent at `linux.seccomp.listenerPath` (config-linux.md "Seccomp",
//! "The Container Process State").
//!
//! The container process only announces the descriptor number it is about
//! to get ([`Msg::SeccompReady`](crate::sync::Msg)) and loads its filter;
//! the runtime takes a copy with pidfd_getfd(2) (as runc does) and sends it
//! to the agent. The child only reads the parent's go-ahead under its filter
//! (sent once the copy is taken, so the agent can answer that read too): a
//! NOTIFY rule on any syscall (`write`, `sendmsg`, `read`...) cannot block
//! the hand-off.

use crate::error::{Error, Result};
use crate::init::chain;
use crate::sync::{Channel, Msg};
use oci_spec::runtime::LinuxSeccomp;
use std::os::fd::{AsFd, AsRawFd, OwnedFd};
use std::time::{Duration, Instant};

/// How long the container process may take between announcing its
/// descriptor and loading the filter (it makes no other syscall between).
const LOAD_TIMEOUT: Duration = Duration::from_secs(10);

fn seccomp_err(id: &str, message: String) -> Error {
    Error::Seccomp {
        id: id.into(),
        message,
    }
}

/// Compile `s` (through the program cache in `cache`).
pub(crate) fn compile(
    id: &str,
    s: &LinuxSeccomp,
    cache: &std::path::Path,
) -> Result<berth_seccomp::Filter> {
    berth_seccomp::compile_cached(s, cache).map_err(|e| seccomp_err(id, chain(&e)))
}

/// For a filter with NOTIFY rules: connect to the agent now, so a missing
/// agent fails before any container process exists.
pub(crate) fn connect(
    id: &str,
    filter: Option<&berth_seccomp::Filter>,
    s: Option<&LinuxSeccomp>,
) -> Result<Option<OwnedFd>> {
    let (Some(f), Some(s)) = (filter, s) else {
        return Ok(None);
    };
    if !f.uses_notify() {
        return Ok(None);
    }
    let Some(path) = s.listener_path() else {
        return Err(seccomp_err(
            id,
            "SCMP_ACT_NOTIFY needs linux.seccomp.listenerPath, the socket of the seccomp agent"
                .into(),
        ));
    };
    berth_seccomp::connect_listener(path)
        .map(Some)
        .map_err(|e| {
            let cause = std::error::Error::source(&e)
                .map(|c| c.to_string())
                .unwrap_or_default();
            seccomp_err(
                id,
                format!(
                    "cannot reach the seccomp agent at linux.seccomp.listenerPath {}: {cause}; \
                 start the agent first (the profile has SCMP_ACT_NOTIFY rules)",
                    path.display()
                ),
            )
        })
}

/// The container process `pid` announced that its listener will be
/// descriptor `n`: wait until the filter is loaded and take a copy. An
/// error message from the process (its load failed) ends the wait.
pub(crate) fn fetch(id: &str, pid: i32, n: i32, chan: &mut Channel) -> Result<OwnedFd> {
    let fail = |what: &str, e: std::io::Error| {
        seccomp_err(
            id,
            format!("cannot copy the seccomp notify descriptor of process {pid} ({what}): {e}"),
        )
    };
    let target = rustix::process::Pid::from_raw(pid)
        .ok_or_else(|| seccomp_err(id, format!("bad container process id {pid}")))?;
    let pidfd = rustix::process::pidfd_open(target, rustix::process::PidfdFlags::empty())
        .map_err(|e| fail("pidfd_open", e.into()))?;
    let end = Instant::now() + LOAD_TIMEOUT;
    loop {
        match rustix::process::pidfd_getfd(&pidfd, n, rustix::process::PidfdGetfdFlags::empty()) {
            Ok(fd) if is_notify_fd(&fd) => return Ok(fd),
            Ok(_) => {
                return Err(seccomp_err(
                    id,
                    format!("descriptor {n} of process {pid} is not a seccomp notify descriptor"),
                ))
            }
            Err(rustix::io::Errno::BADF) => {}
            Err(e) => return Err(fail("pidfd_getfd", e.into())),
        }
        let setup = |message: String| Error::Setup {
            id: id.into(),
            message,
        };
        if chan.readable(1).map_err(|e| setup(e.to_string()))? {
            return Err(match chan.recv() {
                Ok(Msg::Error(message)) => setup(message),
                Ok(m) => setup(format!("unexpected setup message {m:?}")),
                Err(e) => setup(e.to_string()),
            });
        }
        if Instant::now() > end {
            return Err(seccomp_err(
                id,
                format!(
                    "process {pid} did not load its seccomp filter within {}s",
                    LOAD_TIMEOUT.as_secs()
                ),
            ));
        }
    }
}

fn is_notify_fd(fd: &OwnedFd) -> bool {
    std::fs::read_link(format!("/proc/self/fd/{}", fd.as_raw_fd()))
        .map(|l| l.to_string_lossy() == "anon_inode:seccomp notify")
        .unwrap_or(false)
}

/// Send the container process state (`state_json`: the container's state)
/// and the notify descriptor to the agent on `sock`.
pub(crate) fn hand_over(
    id: &str,
    sock: &OwnedFd,
    notify_fd: &OwnedFd,
    pid: i32,
    metadata: Option<String>,
    state_json: &[u8],
) -> Result<()> {
    let state: oci_spec::runtime::State = serde_json::from_slice(state_json)
        .map_err(|e| seccomp_err(id, format!("container state for the seccomp agent: {e}")))?;
    let state = berth_seccomp::ContainerProcessState::new(pid, metadata, state);
    berth_seccomp::send_to_listener(sock.as_fd(), notify_fd.as_fd(), &state)
        .map_err(|e| seccomp_err(id, chain(&e)))
}
