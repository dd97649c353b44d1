//! Process creation: `clone(2)` used like `fork(2)` with namespace flags,
//! plain `fork(2)`, and `close_range(2)`.

use std::io;

/// What a fork-like call returned in the calling process.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Forked {
    /// We are the parent; the value is the child's pid (in our pid namespace).
    Parent(i32),
    /// We are the child.
    Child,
}

/// `clone(flags | SIGCHLD)` with no new stack: like `fork(2)`, but the child
/// is created in the new namespaces named by `flags` (`CLONE_NEW*`).
///
/// The caller must be single-threaded (berth-runtime is): after a fork in a
/// multi-threaded process only async-signal-safe calls are allowed.
pub fn clone_fork(flags: libc::c_int) -> io::Result<Forked> {
    let flags = (flags as libc::c_ulong) | libc::SIGCHLD as libc::c_ulong;
    // SAFETY: clone with a NULL stack behaves like fork: the child gets a
    // copy-on-write copy of the address space and returns 0 on the same
    // stack. No pointers are passed (parent_tid, child_tid and tls are NULL
    // since no CLONE_*SETTID / CLONE_SETTLS flag is given).
    let ret = unsafe {
        libc::syscall(
            libc::SYS_clone,
            flags,
            std::ptr::null_mut::<libc::c_void>(),
            std::ptr::null_mut::<libc::c_int>(),
            std::ptr::null_mut::<libc::c_int>(),
            0 as libc::c_ulong,
        )
    };
    match ret {
        -1 => Err(io::Error::last_os_error()),
        0 => Ok(Forked::Child),
        pid => Ok(Forked::Parent(pid as i32)),
    }
}

/// clone3(2)'s `CLONE_INTO_CGROUP` (Linux 5.7).
const CLONE_INTO_CGROUP: u64 = 0x2_0000_0000;

/// clone3(2)'s `struct clone_args` up to `cgroup` (CLONE_ARGS_SIZE_VER2).
#[repr(C)]
#[derive(Default)]
struct CloneArgs {
    flags: u64,
    pidfd: u64,
    child_tid: u64,
    parent_tid: u64,
    exit_signal: u64,
    stack: u64,
    stack_size: u64,
    tls: u64,
    set_tid: u64,
    set_tid_size: u64,
    cgroup: u64,
}

/// [`clone_fork`] whose child starts in the cgroup2 directory open as
/// `cgroup` (clone3 with `CLONE_INTO_CGROUP`): no write of its pid to
/// `cgroup.procs` afterwards, which takes the kernel's global threadgroup
/// lock (an RCU grace period). `Ok(None)` when clone3 refuses (a kernel
/// before 5.7, or the cgroup not usable so): the caller forks as before.
pub fn clone_fork_into_cgroup(
    flags: libc::c_int,
    cgroup: std::os::fd::BorrowedFd<'_>,
) -> io::Result<Option<Forked>> {
    use std::os::fd::AsRawFd;
    let args = CloneArgs {
        // The CLONE_NEW* flags are non-negative ints.
        flags: u64::from(flags as u32) | CLONE_INTO_CGROUP,
        exit_signal: libc::SIGCHLD as u64,
        cgroup: cgroup.as_raw_fd() as u64,
        ..CloneArgs::default()
    };
    // SAFETY: clone3 with stack 0 and stack_size 0 behaves like fork (the
    // child returns 0 on a copy-on-write copy of this stack). `args` is a
    // valid clone_args of the size passed and lives across the call; no
    // flag makes the kernel write through a pointer (no CLONE_PIDFD,
    // CLONE_*SETTID or CLONE_SETTLS; set_tid is NULL with size 0).
    let ret = unsafe {
        libc::syscall(
            libc::SYS_clone3,
            &args as *const CloneArgs,
            std::mem::size_of::<CloneArgs>(),
        )
    };
    match ret {
        -1 => {
            let e = io::Error::last_os_error();
            match e.raw_os_error() {
                Some(libc::EAGAIN | libc::ENOMEM | libc::EINTR) => Err(e),
                _ => Ok(None),
            }
        }
        0 => Ok(Some(Forked::Child)),
        pid => Ok(Some(Forked::Parent(pid as i32))),
    }
}

/// [`clone_fork`] with `CLONE_PIDFD` as well: the parent also gets a pidfd
/// of the child, to wait for it later (`waitid(P_PIDFD)`) without racing
/// other reapers of this process over a pid that may be reused. None where
/// the kernel lacks `CLONE_PIDFD` (before 5.2): then a plain [`clone_fork`].
pub fn clone_fork_pidfd(flags: libc::c_int) -> io::Result<(Forked, Option<std::os::fd::OwnedFd>)> {
    use std::os::fd::FromRawFd;
    let all = (flags as libc::c_ulong)
        | libc::CLONE_PIDFD as libc::c_ulong
        | libc::SIGCHLD as libc::c_ulong;
    let mut pidfd: libc::c_int = -1;
    // SAFETY: as in clone_fork (NULL stack: fork-like). With CLONE_PIDFD
    // the kernel stores the new pidfd through parent_tid, which points to
    // `pidfd`, alive across the call; child_tid and tls stay NULL.
    let ret = unsafe {
        libc::syscall(
            libc::SYS_clone,
            all,
            std::ptr::null_mut::<libc::c_void>(),
            &mut pidfd as *mut libc::c_int,
            std::ptr::null_mut::<libc::c_int>(),
            0 as libc::c_ulong,
        )
    };
    match ret {
        -1 => {
            let e = io::Error::last_os_error();
            if e.raw_os_error() == Some(libc::EINVAL) {
                return clone_fork(flags).map(|f| (f, None));
            }
            Err(e)
        }
        0 => Ok((Forked::Child, None)),
        pid => {
            // SAFETY: the kernel returned a new descriptor we now own.
            let fd = (pidfd >= 0).then(|| unsafe { std::os::fd::OwnedFd::from_raw_fd(pidfd) });
            Ok((Forked::Parent(pid as i32), fd))
        }
    }
}

/// `fork(2)`. The caller must be single-threaded.
pub fn fork() -> io::Result<Forked> {
    // SAFETY: berth-runtime is single-threaded when it forks, so the child
    // may call any function, not only async-signal-safe ones.
    match unsafe { nix::unistd::fork() } {
        Ok(nix::unistd::ForkResult::Parent { child }) => Ok(Forked::Parent(child.as_raw())),
        Ok(nix::unistd::ForkResult::Child) => Ok(Forked::Child),
        Err(e) => Err(io::Error::from(e)),
    }
}

/// `close_range(first, ~0, CLOSE_RANGE_CLOEXEC)`: mark every descriptor from
/// `first` up as close-on-exec, so nothing past it reaches an exec'd program.
pub fn cloexec_from(first: u32) -> io::Result<()> {
    const CLOSE_RANGE_CLOEXEC: libc::c_uint = 1 << 2;
    // SAFETY: close_range only changes flags of this process's descriptors;
    // it takes no pointers.
    let ret = unsafe {
        libc::syscall(
            libc::SYS_close_range,
            first as libc::c_uint,
            libc::c_uint::MAX,
            CLOSE_RANGE_CLOEXEC,
        )
    };
    if ret == -1 {
        let e = io::Error::last_os_error();
        // Kernels before 5.11 lack CLOSE_RANGE_CLOEXEC, and an outer
        // seccomp filter may deny close_range: mark them one by one, as
        // runc does, from the list in /proc/self/fd.
        return match e.raw_os_error() {
            Some(libc::ENOSYS | libc::EINVAL | libc::EPERM) => cloexec_each_from(first),
            _ => Err(e),
        };
    }
    Ok(())
}

/// `fcntl(fd, F_SETFD, FD_CLOEXEC)` on every open descriptor from `first`
/// up, as listed in /proc/self/fd.
fn cloexec_each_from(first: u32) -> io::Result<()> {
    let fds: Vec<i32> = std::fs::read_dir("/proc/self/fd")?
        .filter_map(|e| e.ok()?.file_name().to_str()?.parse().ok())
        .collect();
    for fd in fds {
        if fd < 0 || (fd as u32) < first {
            continue;
        }
        // SAFETY: F_SETFD only changes a flag of descriptor `fd` in our own
        // table; the directory's own (closed by now) descriptor yields EBADF.
        let ret = unsafe { libc::fcntl(fd, libc::F_SETFD, libc::FD_CLOEXEC) };
        if ret == -1 && io::Error::last_os_error().raw_os_error() != Some(libc::EBADF) {
            return Err(io::Error::last_os_error());
        }
    }
    Ok(())
}

/// A program with its arguments and environment, laid out for execve(2)
/// ahead of time: [`PreparedExec::exec`] allocates nothing and makes no
/// syscall but execve, so it can run under a strict seccomp filter.
pub struct PreparedExec {
    path: std::ffi::CString,
    _strings: Vec<std::ffi::CString>,
    argv: Vec<*const libc::c_char>,
    envp: Vec<*const libc::c_char>,
}

impl PreparedExec {
    /// Lays out `path`, `argv` and `envp` (NULL-terminated pointer arrays
    /// into the strings this value owns).
    pub fn new(
        path: std::ffi::CString,
        argv: Vec<std::ffi::CString>,
        envp: Vec<std::ffi::CString>,
    ) -> PreparedExec {
        let ptrs = |v: &[std::ffi::CString]| {
            v.iter()
                .map(|s| s.as_ptr())
                .chain(std::iter::once(std::ptr::null()))
                .collect::<Vec<_>>()
        };
        let argv_ptrs = ptrs(&argv);
        let envp_ptrs = ptrs(&envp);
        let mut strings = argv;
        strings.extend(envp);
        PreparedExec {
            path,
            _strings: strings,
            argv: argv_ptrs,
            envp: envp_ptrs,
        }
    }

    /// The program's path.
    pub fn path(&self) -> &std::ffi::CStr {
        &self.path
    }

    /// `execve(2)`: returns only on failure, with its error.
    pub fn exec(&self) -> io::Error {
        // SAFETY: `path` is a NUL-terminated string; `argv` and `envp` are
        // NULL-terminated arrays of pointers to NUL-terminated strings owned
        // by `self._strings` (moving a CString does not move its heap
        // buffer), all alive across the call.
        unsafe { libc::execve(self.path.as_ptr(), self.argv.as_ptr(), self.envp.as_ptr()) };
        io::Error::last_os_error()
    }
}

/// `fcntl(fd, F_SETFD, 0)`: let a preserved descriptor (`--preserve-fds`)
/// survive exec.
pub fn clear_cloexec(fd: i32) -> io::Result<()> {
    // SAFETY: F_SETFD only changes a flag of descriptor `fd` in our own
    // table; an invalid fd yields EBADF.
    let ret = unsafe { libc::fcntl(fd, libc::F_SETFD, 0) };
    if ret == -1 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}

/// `keyctl(KEYCTL_JOIN_SESSION_KEYRING, NULL)`: give the process a new
/// anonymous session keyring, so a container does not share the host's.
pub fn join_session_keyring() -> io::Result<()> {
    const KEYCTL_JOIN_SESSION_KEYRING: libc::c_long = 1;
    // SAFETY: a NULL name asks for a new anonymous keyring; no memory is
    // passed to the kernel.
    let ret = unsafe {
        libc::syscall(
            libc::SYS_keyctl,
            KEYCTL_JOIN_SESSION_KEYRING,
            std::ptr::null::<libc::c_char>(),
        )
    };
    if ret == -1 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}

/// `sigaction(sig, SIG_DFL)`: restore a signal's default disposition.
pub fn reset_signal_to_default(sig: nix::sys::signal::Signal) {
    let dfl = nix::sys::signal::SigAction::new(
        nix::sys::signal::SigHandler::SigDfl,
        nix::sys::signal::SaFlags::empty(),
        nix::sys::signal::SigSet::empty(),
    );
    // SAFETY: SIG_DFL runs no code of ours in signal context.
    let _ = unsafe { nix::sys::signal::sigaction(sig, &dfl) };
}

/// `_exit(2)`: leave a forked child at once, running no destructors or
/// exit handlers that belong to the parent's state.
pub fn exit_now(code: i32) -> ! {
    // SAFETY: _exit never returns and touches no memory of ours.
    unsafe { libc::_exit(code) }
}

/// `setrlimit(2)` for a raw RLIMIT_* number (validated by the caller's
/// config layer).
pub fn set_rlimit(resource: i32, soft: u64, hard: u64) -> io::Result<()> {
    let lim = libc::rlimit {
        rlim_cur: soft as libc::rlim_t,
        rlim_max: hard as libc::rlim_t,
    };
    // SAFETY: `lim` is a valid rlimit struct living across the call; the
    // kernel only reads it. An unknown resource yields EINVAL.
    let ret = unsafe { libc::setrlimit(resource as _, &lim) };
    if ret == -1 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}

/// Ignore SIGPIPE, as Rust's runtime does for a normal `main`: a write to
/// a closed pipe or socket fails with EPIPE instead of killing us.
fn ignore_sigpipe() -> io::Result<()> {
    // SAFETY: installing SIG_IGN runs no handler code of ours.
    let r = unsafe { libc::signal(libc::SIGPIPE, libc::SIG_IGN) };
    if r == libc::SIG_ERR {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}

/// Opens /dev/null on each of descriptors 0, 1 and 2 that is closed, as
/// Rust's runtime start-up does for a normal `main`: otherwise the next
/// file opened would become a standard stream (and, in a runtime, the
/// container's). The descriptors opened are inheritable, like the streams
/// they stand for.
fn ensure_stdio_open() -> io::Result<()> {
    for fd in 0..3 {
        // SAFETY: F_GETFD only queries the descriptor table.
        let closed = unsafe { libc::fcntl(fd, libc::F_GETFD) } == -1
            && io::Error::last_os_error().raw_os_error() == Some(libc::EBADF);
        if closed {
            // The lowest free descriptor is `fd`: those below it are open.
            let null = rustix::fs::open(
                "/dev/null",
                rustix::fs::OFlags::RDWR,
                rustix::fs::Mode::empty(),
            )?;
            if std::os::fd::AsRawFd::as_raw_fd(&null) != fd {
                return Err(io::Error::other(format!(
                    "/dev/null opened on descriptor {} instead of {fd}",
                    std::os::fd::AsRawFd::as_raw_fd(&null)
                )));
            }
            let _ = std::os::fd::IntoRawFd::into_raw_fd(null);
        }
    }
    Ok(())
}

/// What [`c_main!`](crate::c_main) does before the binary's function: the
/// parts of Rust's runtime start-up a program relies on (SIGPIPE ignored,
/// closed standard streams opened on /dev/null). Not for direct use.
#[doc(hidden)]
pub fn c_main_start() -> io::Result<()> {
    ignore_sigpipe().map_err(|e| io::Error::other(format!("cannot ignore SIGPIPE: {e}")))?;
    ensure_stdio_open().map_err(|e| {
        io::Error::other(format!(
            "cannot open /dev/null for a closed standard stream: {e}"
        ))
    })
}

/// Defines the C `main` of a binary crate marked `#![no_main]`, calling
/// `$f: fn() -> i32` for the exit status. It skips Rust's runtime start-up
/// (`std::rt::lang_start`: the main thread's stack guard lookup, which
/// parses /proc/self/maps with the C library's scanf, and the
/// stack-overflow handler), which for a small or short-lived process is
/// much of the code it touches; what of it programs rely on is done here
/// ([`c_main_start`]: SIGPIPE ignored, closed standard streams opened on
/// /dev/null), and the exit goes through `std::process::exit`, which
/// flushes Rust's buffered stdout. `std::env::args` still works (the
/// standard library captures argv from `.init_array` on glibc).
#[macro_export]
macro_rules! c_main {
    ($f:path) => {
        // SAFETY: the only `main` symbol of the binary (`#![no_main]`); the C
        // runtime calls it once with argc/argv, which are not used here.
        #[unsafe(no_mangle)]
        pub extern "C" fn main(
            _argc: ::std::os::raw::c_int,
            _argv: *const *const ::std::os::raw::c_char,
        ) -> ::std::os::raw::c_int {
            if let Err(e) = $crate::process::c_main_start() {
                let exe = ::std::env::args().next().unwrap_or_default();
                ::std::eprintln!("{exe}: {e}");
                ::std::process::exit(1);
            }
            ::std::process::exit($f())
        }
    };
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::fd::AsRawFd;

    fn cloexec_set(fd: i32) -> bool {
        rustix::io::fcntl_getfd(borrowed(fd))
            .map(|f| f.contains(rustix::io::FdFlags::CLOEXEC))
            .unwrap_or(false)
    }

    fn borrowed(fd: i32) -> std::os::fd::BorrowedFd<'static> {
        // SAFETY: the descriptor is held open by the test for the whole
        // time the borrow is used.
        unsafe { std::os::fd::BorrowedFd::borrow_raw(fd) }
    }

    #[test]
    fn the_fallback_marks_every_descriptor_from_first_close_on_exec() {
        let open = || {
            rustix::fs::open(
                "/dev/null",
                rustix::fs::OFlags::RDONLY,
                rustix::fs::Mode::empty(),
            )
            .expect("open /dev/null")
        };
        let (a, b) = (open(), open());
        let (low, high) = if a.as_raw_fd() < b.as_raw_fd() {
            (a, b)
        } else {
            (b, a)
        };
        assert!(!cloexec_set(low.as_raw_fd()) && !cloexec_set(high.as_raw_fd()));
        cloexec_each_from(high.as_raw_fd() as u32).expect("fallback");
        assert!(cloexec_set(high.as_raw_fd()), "from `first` up: marked");
        assert!(!cloexec_set(low.as_raw_fd()), "below `first`: untouched");
    }
}
