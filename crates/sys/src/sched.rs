//! Scheduling of the calling process: `sched_setattr(2)`, `ioprio_set(2)`
//! and `set_mempolicy(2)` (no safe wrapper in nix or rustix).

use std::io;

/// `struct sched_attr` (SCHED_ATTR_SIZE_VER0, 48 bytes), as the kernel
/// reads it.
#[repr(C)]
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct SchedAttr {
    pub size: u32,
    pub sched_policy: u32,
    pub sched_flags: u64,
    pub sched_nice: i32,
    pub sched_priority: u32,
    pub sched_runtime: u64,
    pub sched_deadline: u64,
    pub sched_period: u64,
}

/// `sched_setattr(0, attr, 0)`: the calling thread's policy and parameters.
pub fn sched_setattr(attr: &SchedAttr) -> io::Result<()> {
    let mut a = *attr;
    a.size = std::mem::size_of::<SchedAttr>() as u32;
    // SAFETY: `a` is a valid, initialised sched_attr whose `size` field
    // says how much of it the kernel may read; the kernel only reads it.
    let ret = unsafe {
        libc::syscall(
            libc::SYS_sched_setattr,
            0 as libc::pid_t,
            &a as *const SchedAttr,
            0 as libc::c_uint,
        )
    };
    if ret == -1 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}

/// `ioprio_set(IOPRIO_WHO_PROCESS, 0, class << 13 | level)`: the calling
/// process's I/O priority.
pub fn ioprio_set_self(class: u32, level: u32) -> io::Result<()> {
    const IOPRIO_WHO_PROCESS: libc::c_int = 1;
    const IOPRIO_CLASS_SHIFT: u32 = 13;
    let prio = (class << IOPRIO_CLASS_SHIFT) | (level & ((1 << IOPRIO_CLASS_SHIFT) - 1));
    // SAFETY: plain integer arguments; no memory is passed.
    let ret = unsafe {
        libc::syscall(
            libc::SYS_ioprio_set,
            IOPRIO_WHO_PROCESS,
            0 as libc::c_int,
            prio as libc::c_int,
        )
    };
    if ret == -1 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}

/// `set_mempolicy(mode | flags, nodemask, bits)`: the calling thread's NUMA
/// memory policy. `nodemask` holds one bit per node (bit n of word n/64).
pub fn set_mempolicy(mode_and_flags: i32, nodemask: &[u64]) -> io::Result<()> {
    let (ptr, maxnode) = if nodemask.is_empty() {
        (std::ptr::null::<u64>(), 0 as libc::c_ulong)
    } else {
        // The kernel reads maxnode - 1 bits (set_mempolicy(2) NOTES).
        (
            nodemask.as_ptr(),
            (nodemask.len() * 64 + 1) as libc::c_ulong,
        )
    };
    // SAFETY: `ptr` is NULL with maxnode 0, or points to `nodemask`, which
    // holds at least maxnode - 1 bits; the kernel only reads it.
    let ret = unsafe { libc::syscall(libc::SYS_set_mempolicy, mode_and_flags, ptr, maxnode) };
    if ret == -1 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}
