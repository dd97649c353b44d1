//! `seccomp(2)` with `SECCOMP_SET_MODE_FILTER`: installing a classic-BPF
//! program that was generated earlier (by libseccomp, in the runtime's
//! parent), so the container process does no filter generation of its own.

use std::io;
use std::os::fd::{FromRawFd, OwnedFd};

/// `SECCOMP_FILTER_FLAG_TSYNC`: apply the filter to every thread of the
/// process (seccomp(2)).
pub const FLAG_TSYNC: u32 = libc::SECCOMP_FILTER_FLAG_TSYNC as u32;
/// `SECCOMP_FILTER_FLAG_LOG`: log every action but `SECCOMP_RET_ALLOW`.
pub const FLAG_LOG: u32 = libc::SECCOMP_FILTER_FLAG_LOG as u32;
/// `SECCOMP_FILTER_FLAG_SPEC_ALLOW`: keep speculative store bypass mitigation off.
pub const FLAG_SPEC_ALLOW: u32 = libc::SECCOMP_FILTER_FLAG_SPEC_ALLOW as u32;
/// `SECCOMP_FILTER_FLAG_NEW_LISTENER`: return a user-notification fd.
pub const FLAG_NEW_LISTENER: u32 = libc::SECCOMP_FILTER_FLAG_NEW_LISTENER as u32;
/// `SECCOMP_FILTER_FLAG_TSYNC_ESRCH`: a TSYNC failure is `ESRCH`, not a
/// thread id (needed to combine TSYNC with NEW_LISTENER).
pub const FLAG_TSYNC_ESRCH: u32 = libc::SECCOMP_FILTER_FLAG_TSYNC_ESRCH as u32;
/// `SECCOMP_FILTER_FLAG_WAIT_KILLABLE_RECV`: a notified task waits killably.
pub const FLAG_WAIT_KILLABLE_RECV: u32 = libc::SECCOMP_FILTER_FLAG_WAIT_KILLABLE_RECV as u32;

/// One classic-BPF instruction, laid out as the kernel's `struct sock_filter`
/// (linux/filter.h).
#[repr(C)]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SockFilter {
    pub code: u16,
    pub jt: u8,
    pub jf: u8,
    pub k: u32,
}

// The kernel reads our instructions as `struct sock_filter`: same layout.
const _: () = assert!(
    std::mem::size_of::<SockFilter>() == std::mem::size_of::<libc::sock_filter>()
        && std::mem::align_of::<SockFilter>() == std::mem::align_of::<libc::sock_filter>()
);

/// `seccomp(SECCOMP_SET_MODE_FILTER, flags, &sock_fprog)` with `program`.
///
/// Returns the listener fd (close-on-exec, made by the kernel) when `flags`
/// holds [`FLAG_NEW_LISTENER`], else `None`. With [`FLAG_TSYNC`] but not
/// [`FLAG_TSYNC_ESRCH`], a thread that could not be synchronised is reported
/// as `ESRCH`. The caller needs no_new_privs or CAP_SYS_ADMIN.
pub fn set_mode_filter(program: &[SockFilter], flags: u32) -> io::Result<Option<OwnedFd>> {
    let len = u16::try_from(program.len()).map_err(|_| {
        io::Error::new(
            io::ErrorKind::InvalidInput,
            format!(
                "seccomp program of {} instructions is too long",
                program.len()
            ),
        )
    })?;
    let prog = libc::sock_fprog {
        len,
        // The kernel only reads through this pointer (it copies the program).
        filter: program.as_ptr().cast::<libc::sock_filter>().cast_mut(),
    };
    // SAFETY: `prog` points at `len` instructions of `program`, which
    // outlives the call and has the layout of `struct sock_filter` (checked
    // above); seccomp(2) copies the program and does not keep the pointer.
    let ret = unsafe {
        libc::syscall(
            libc::SYS_seccomp,
            libc::SECCOMP_SET_MODE_FILTER as libc::c_ulong,
            libc::c_ulong::from(flags),
            std::ptr::from_ref(&prog),
        )
    };
    if ret < 0 {
        return Err(io::Error::last_os_error());
    }
    if flags & FLAG_NEW_LISTENER != 0 {
        let fd = i32::try_from(ret).map_err(|_| io::Error::other("listener fd out of range"))?;
        if fd <= 0 {
            return Err(io::Error::other("seccomp returned no listener fd"));
        }
        // SAFETY: with NEW_LISTENER a non-negative return is a new
        // descriptor the kernel just installed for us (O_CLOEXEC); nothing
        // else owns it.
        return Ok(Some(unsafe { OwnedFd::from_raw_fd(fd) }));
    }
    if ret > 0 {
        // TSYNC without TSYNC_ESRCH: `ret` is the thread that failed to sync.
        return Err(io::Error::from_raw_os_error(libc::ESRCH));
    }
    Ok(None)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn flags_match_the_kernel_abi() {
        assert_eq!(
            [
                FLAG_TSYNC,
                FLAG_LOG,
                FLAG_SPEC_ALLOW,
                FLAG_NEW_LISTENER,
                FLAG_TSYNC_ESRCH,
                FLAG_WAIT_KILLABLE_RECV
            ],
            [1, 2, 4, 8, 16, 32]
        );
    }

    #[test]
    fn an_empty_program_is_refused_by_the_kernel() {
        // An empty program is EINVAL (the kernel checks the length before
        // privileges; EACCES would mean it changed that order): never
        // installed, so this test process stays unfiltered.
        let err = set_mode_filter(&[], 0).expect_err("empty program");
        let code = err.raw_os_error();
        assert!(
            code == Some(libc::EINVAL) || code == Some(libc::EACCES),
            "{err}"
        );
    }
}
