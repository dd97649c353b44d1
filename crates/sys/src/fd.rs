//! Taking ownership of raw descriptors the kernel hands us.

use std::os::fd::{FromRawFd, OwnedFd, RawFd};

/// Own a descriptor just received with SCM_RIGHTS (recvmsg(2)): the kernel
/// installed it in our table for this process alone.
pub fn owned_from_scm_rights(fd: RawFd) -> OwnedFd {
    // SAFETY: `fd` was just created by the kernel in recvmsg for us; no other
    // owner exists, so taking ownership cannot double-close.
    unsafe { OwnedFd::from_raw_fd(fd) }
}
