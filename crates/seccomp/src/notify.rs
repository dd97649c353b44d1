//! Hand-off of the seccomp notify fd to the agent at `listenerPath`
//! (runtime-spec config-linux.md, "Seccomp" `listenerPath` and "The Container
//! Process State").

use std::io::IoSlice;
use std::mem::MaybeUninit;
use std::os::fd::{BorrowedFd, OwnedFd};
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};

use oci_spec::runtime::State;
use rustix::net::{SendAncillaryBuffer, SendAncillaryMessage, SendFlags};
use serde::{Deserialize, Serialize};

/// The name of the notify fd in [`ContainerProcessState::fds`].
pub const SECCOMP_FD_NAME: &str = "seccompFd";

/// Errors of the notify hand-off.
#[derive(Debug, thiserror::Error)]
pub enum NotifyError {
    #[error("connect to seccomp listener socket {path}")]
    Connect {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("encode container process state for the seccomp listener")]
    Encode {
        #[source]
        source: serde_json::Error,
    },
    #[error("send container process state and seccomp fd to the seccomp listener")]
    Send {
        #[source]
        source: std::io::Error,
    },
}

/// The container process state sent to the seccomp agent
/// (config-linux.md, "The Container Process State").
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ContainerProcessState {
    #[serde(rename = "ociVersion")]
    pub oci_version: String,
    /// Names of the fds in the SCM_RIGHTS array, in order.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub fds: Vec<String>,
    /// Container process id as seen by the runtime.
    pub pid: i32,
    /// `linux.seccomp.listenerMetadata`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub metadata: Option<String>,
    /// The container's state (runtime.md "State").
    pub state: State,
}

impl ContainerProcessState {
    /// A state carrying one `seccompFd`, for the container process `pid`.
    pub fn new(pid: i32, metadata: Option<String>, state: State) -> Self {
        Self {
            oci_version: oci_spec::runtime::VERSION.to_string(),
            fds: vec![SECCOMP_FD_NAME.to_string()],
            pid,
            metadata,
            state,
        }
    }
}

/// Connects to the agent's AF_UNIX SOCK_STREAM socket at `path` (the runtime
/// does this before pivot_root, where the host path is still reachable).
/// The fd is close-on-exec.
pub fn connect_listener(path: &Path) -> Result<OwnedFd, NotifyError> {
    let stream = UnixStream::connect(path).map_err(|source| NotifyError::Connect {
        path: path.to_path_buf(),
        source,
    })?;
    Ok(OwnedFd::from(stream))
}

/// Serialises `state` to JSON.
pub fn encode_state(state: &ContainerProcessState) -> Result<Vec<u8>, NotifyError> {
    serde_json::to_vec(state).map_err(|source| NotifyError::Encode { source })
}

/// Sends `state` as JSON with `notify_fd` in SCM_RIGHTS on `sock`. The fd
/// goes with the first `sendmsg`; any rest of the payload follows in plain
/// sends, as the spec allows. The caller closes `sock` afterwards: one state
/// per connection.
pub fn send_to_listener(
    sock: BorrowedFd<'_>,
    notify_fd: BorrowedFd<'_>,
    state: &ContainerProcessState,
) -> Result<(), NotifyError> {
    let payload = encode_state(state)?;
    let send_err = |e: rustix::io::Errno| NotifyError::Send { source: e.into() };
    let mut space = [MaybeUninit::uninit(); rustix::cmsg_space!(ScmRights(1))];
    let mut control = SendAncillaryBuffer::new(&mut space);
    let fds = [notify_fd];
    if !control.push(SendAncillaryMessage::ScmRights(&fds)) {
        return Err(NotifyError::Send {
            source: std::io::Error::other("control buffer too small for one fd"),
        });
    }
    let mut sent = loop {
        match rustix::net::sendmsg(
            sock,
            &[IoSlice::new(&payload)],
            &mut control,
            SendFlags::NOSIGNAL,
        ) {
            Err(rustix::io::Errno::INTR) => continue,
            other => break other.map_err(send_err)?,
        }
    };
    while sent < payload.len() {
        match rustix::net::send(sock, &payload[sent..], SendFlags::NOSIGNAL) {
            Err(rustix::io::Errno::INTR) => continue,
            Ok(0) => {
                return Err(NotifyError::Send {
                    source: std::io::ErrorKind::WriteZero.into(),
                })
            }
            other => sent += other.map_err(send_err)?,
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn state_json_matches_spec_shape() {
        let mut st = State::default();
        st.set_id("c1".into());
        st.set_status(oci_spec::runtime::ContainerState::Creating);
        st.set_pid(Some(4422));
        st.set_bundle("/containers/redis".into());
        let s = ContainerProcessState::new(4422, Some("meta".into()), st);
        let v: serde_json::Value =
            serde_json::from_slice(&encode_state(&s).expect("encode")).expect("json");
        assert_eq!(v["fds"], serde_json::json!(["seccompFd"]));
        assert_eq!(v["pid"], 4422);
        assert_eq!(v["metadata"], "meta");
        assert!(v["ociVersion"].as_str().is_some_and(|s| s.starts_with('1')));
        assert_eq!(v["state"]["id"], "c1");
        assert_eq!(v["state"]["status"], "creating");
        assert_eq!(v["state"]["bundle"], "/containers/redis");
        let back: ContainerProcessState = serde_json::from_value(v).expect("roundtrip");
        assert_eq!(back, s);
    }

    #[test]
    fn no_metadata_is_omitted() {
        let s = ContainerProcessState::new(1, None, State::default());
        let v = serde_json::to_value(&s).expect("json");
        assert!(v.get("metadata").is_none());
    }

    #[test]
    fn connect_missing_socket_names_path() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("nope.sock");
        let err = connect_listener(&path).expect_err("must fail");
        assert!(err.to_string().contains("nope.sock"), "{err}");
    }
}
