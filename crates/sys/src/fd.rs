//! Taking ownership of raw descriptors the kernel hands us.

use std::os::fd::{FromRawFd, OwnedFd, RawFd};

/// Own a descriptor just received with SCM_RIGHTS (recvmsg(2)): the kernel
/// installed it in our table for this process alone.
pub fn owned_from_scm_rights(fd: RawFd) -> OwnedFd {
    // SAFETY: `fd` was just created by the kernel in recvmsg for us; no other
    // owner exists, so taking ownership cannot double-close.
    unsafe { OwnedFd::from_raw_fd(fd) }
}

/// Own descriptor `fd`, inherited across exec from the process that
/// exec'd us and named on our command line (the monitor's hand-off).
/// Refuses the standard streams and descriptors that are not open.
/// Each number must be taken at most once (the caller checks).
pub fn owned_from_inherited(fd: RawFd) -> std::io::Result<OwnedFd> {
    if fd < 3 {
        return Err(std::io::Error::new(
            std::io::ErrorKind::InvalidInput,
            format!("descriptor {fd} is a standard stream, not a hand-off"),
        ));
    }
    // SAFETY: F_GETFD only reads a flag of descriptor `fd` in our own
    // table; an fd that is not open yields EBADF.
    if unsafe { libc::fcntl(fd, libc::F_GETFD) } == -1 {
        return Err(std::io::Error::last_os_error());
    }
    // SAFETY: `fd` is open (checked above) and was inherited across exec:
    // nothing in this process holds it yet, and the caller takes each
    // number once, so no other owner can close it.
    Ok(unsafe { OwnedFd::from_raw_fd(fd) })
}
