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

/// Makes descriptor `fd` refer to `with` instead (dup2(2) onto a number
/// we keep owning): the file `fd` referred to loses this reference (the
/// write end of a pipe closed this way gives its reader EOF once no other
/// writer is left), while `fd`'s owner keeps a valid descriptor.
pub fn replace_with(
    fd: std::os::fd::BorrowedFd<'_>,
    with: std::os::fd::BorrowedFd<'_>,
) -> std::io::Result<()> {
    use std::os::fd::AsRawFd;
    // SAFETY: both descriptors are open and borrowed for the call; dup2
    // atomically closes what `fd` referred to and makes the same number
    // refer to `with`'s file, so `fd`'s owner still owns an open
    // descriptor (its close later is not a double close).
    let r = unsafe { libc::dup2(with.as_raw_fd(), fd.as_raw_fd()) };
    if r == -1 {
        return Err(std::io::Error::last_os_error());
    }
    Ok(())
}
