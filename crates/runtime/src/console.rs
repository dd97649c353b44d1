//! The container's terminal (config.md "terminal", runc's
//! `--console-socket`): the pty is made inside the container's devpts and
//! its master is sent over a unix socket with SCM_RIGHTS, as conmon and
//! containerd expect.

use nix::sys::socket::{recvmsg, sendmsg, ControlMessage, ControlMessageOwned, MsgFlags};
use std::io::{IoSlice, IoSliceMut};
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, OwnedFd};

/// Errors around the console.
#[derive(Debug, thiserror::Error)]
pub enum ConsoleError {
    #[error("cannot {op}: {source}")]
    Sys {
        op: &'static str,
        #[source]
        source: std::io::Error,
    },
    #[error("console socket sent no terminal descriptor")]
    NoFd,
}

fn sys(op: &'static str) -> impl FnOnce(rustix::io::Errno) -> ConsoleError {
    move |e| ConsoleError::Sys {
        op,
        source: e.into(),
    }
}

/// In the container, after pivot_root: make a pty, send its master over
/// `socket`, and make the slave the controlling terminal and stdio.
pub fn setup_terminal(
    socket: BorrowedFd<'_>,
    size: Option<(u16, u16)>,
    uid: u32,
) -> Result<(), ConsoleError> {
    use rustix::pty::{ioctl_tiocgptpeer, openpt, ptsname, unlockpt, OpenptFlags};
    let master = openpt(OpenptFlags::RDWR | OpenptFlags::NOCTTY | OpenptFlags::CLOEXEC)
        .map_err(sys("open /dev/ptmx in the container"))?;
    unlockpt(&master).map_err(sys("unlock the pty"))?;
    let slave = ioctl_tiocgptpeer(&master, OpenptFlags::RDWR | OpenptFlags::NOCTTY)
        .map_err(sys("open the pty's peer"))?;
    if let Some((rows, cols)) = size {
        let ws = rustix::termios::Winsize {
            ws_row: rows,
            ws_col: cols,
            ws_xpixel: 0,
            ws_ypixel: 0,
        };
        rustix::termios::tcsetwinsize(&slave, ws).map_err(sys("set the terminal size"))?;
    }
    // The process's own terminal belongs to its user, its group stays
    // devpts' (tty) as runc's fixStdioPermissions leaves it, so the process
    // can reopen /dev/pts/N or /proc/self/fd/0.
    rustix::fs::fchown(&slave, Some(rustix::fs::Uid::from_raw(uid)), None)
        .map_err(sys("chown the pty to the process's user"))?;
    let name = ptsname(&master, Vec::new())
        .map(|n| n.into_bytes())
        .unwrap_or_default();
    send_fd(socket, master.as_fd(), &name)?;
    drop(master);
    rustix::process::setsid().map_err(sys("setsid"))?;
    rustix::process::ioctl_tiocsctty(&slave)
        .map_err(sys("make the pty the controlling terminal"))?;
    rustix::stdio::dup2_stdin(&slave).map_err(sys("dup2 the pty to stdin"))?;
    rustix::stdio::dup2_stdout(&slave).map_err(sys("dup2 the pty to stdout"))?;
    rustix::stdio::dup2_stderr(&slave).map_err(sys("dup2 the pty to stderr"))?;
    Ok(())
}

/// Send `fd` with `payload` as SCM_RIGHTS over the unix socket `socket`.
pub fn send_fd(
    socket: BorrowedFd<'_>,
    fd: BorrowedFd<'_>,
    payload: &[u8],
) -> Result<(), ConsoleError> {
    let fds = [fd.as_raw_fd()];
    let cmsg = [ControlMessage::ScmRights(&fds)];
    let payload = if payload.is_empty() {
        b"pty" as &[u8]
    } else {
        payload
    };
    let iov = [IoSlice::new(payload)];
    sendmsg::<()>(socket.as_raw_fd(), &iov, &cmsg, MsgFlags::empty(), None).map_err(|e| {
        ConsoleError::Sys {
            op: "send the pty master over the console socket",
            source: e.into(),
        }
    })?;
    Ok(())
}

/// Receive one descriptor sent with SCM_RIGHTS.
pub fn recv_fd(socket: BorrowedFd<'_>) -> Result<OwnedFd, ConsoleError> {
    let mut buf = [0u8; 4096];
    let mut iov = [IoSliceMut::new(&mut buf)];
    let mut space = nix::cmsg_space!([std::os::fd::RawFd; 1]);
    let msg = recvmsg::<()>(
        socket.as_raw_fd(),
        &mut iov,
        Some(&mut space),
        MsgFlags::MSG_CMSG_CLOEXEC,
    )
    .map_err(|e| ConsoleError::Sys {
        op: "receive the pty master",
        source: e.into(),
    })?;
    for c in msg.cmsgs().map_err(|e| ConsoleError::Sys {
        op: "read control message",
        source: e.into(),
    })? {
        if let ControlMessageOwned::ScmRights(fds) = c {
            if let Some(fd) = fds.first() {
                // The kernel just installed this descriptor in our table
                // for us; we are its only owner.
                return Ok(owned(*fd));
            }
        }
    }
    Err(ConsoleError::NoFd)
}

fn owned(fd: std::os::fd::RawFd) -> OwnedFd {
    berth_sys::fd::owned_from_scm_rights(fd)
}
