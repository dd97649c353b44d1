//! eBPF program loading and cgroup attachment (bpf(2)), for the cgroup v2
//! device controller.
//!
//! Thin wrappers over `bpf(2)` (man 2 bpf): `BPF_PROG_LOAD` of a
//! `BPF_PROG_TYPE_CGROUP_DEVICE` program, and `BPF_PROG_ATTACH`,
//! `BPF_PROG_QUERY`, `BPF_PROG_DETACH`, `BPF_PROG_GET_FD_BY_ID` on a cgroup
//! directory fd. Policy (which rules, when to replace a program) lives in
//! berth-cgroups.

use std::io;
use std::os::fd::{AsRawFd, BorrowedFd, FromRawFd, OwnedFd};

/// `BPF_PROG_LOAD` command number (include/uapi/linux/bpf.h).
const BPF_PROG_LOAD: libc::c_long = 5;
/// `BPF_PROG_ATTACH` command number.
const BPF_PROG_ATTACH: libc::c_long = 8;
/// `BPF_PROG_DETACH` command number.
const BPF_PROG_DETACH: libc::c_long = 9;
/// `BPF_PROG_GET_FD_BY_ID` command number.
const BPF_PROG_GET_FD_BY_ID: libc::c_long = 13;
/// `BPF_PROG_QUERY` command number.
const BPF_PROG_QUERY: libc::c_long = 16;
/// `BPF_PROG_TYPE_CGROUP_DEVICE` program type.
const BPF_PROG_TYPE_CGROUP_DEVICE: u32 = 15;
/// `BPF_CGROUP_DEVICE` attach type.
const BPF_CGROUP_DEVICE: u32 = 6;
/// `BPF_F_ALLOW_MULTI` attach flag: several programs on one cgroup.
pub const BPF_F_ALLOW_MULTI: u32 = 2;

/// One eBPF instruction, laid out as the kernel's `struct bpf_insn`.
#[repr(C)]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BpfInsn {
    /// Opcode (class | size/op | source).
    pub code: u8,
    /// Destination register in the low nibble, source register in the high.
    pub regs: u8,
    /// Signed offset (jumps: instructions to skip; memory: byte offset).
    pub off: i16,
    /// Signed immediate.
    pub imm: i32,
}

/// `bpf_attr` for `BPF_PROG_LOAD` (the leading fields we use).
#[repr(C)]
#[derive(Default)]
struct ProgLoadAttr {
    prog_type: u32,
    insn_cnt: u32,
    insns: u64,
    license: u64,
    log_level: u32,
    log_size: u32,
    log_buf: u64,
    kern_version: u32,
    prog_flags: u32,
}

/// `bpf_attr` for `BPF_PROG_ATTACH` / `BPF_PROG_DETACH`.
#[repr(C)]
#[derive(Default)]
struct AttachAttr {
    target_fd: u32,
    attach_bpf_fd: u32,
    attach_type: u32,
    attach_flags: u32,
}

/// `bpf_attr` for `BPF_PROG_QUERY`.
#[repr(C)]
#[derive(Default)]
struct QueryAttr {
    target_fd: u32,
    attach_type: u32,
    query_flags: u32,
    attach_flags: u32,
    prog_ids: u64,
    prog_cnt: u32,
    _pad: u32,
}

/// `bpf_attr` for `BPF_PROG_GET_FD_BY_ID`.
#[repr(C)]
#[derive(Default)]
struct GetFdAttr {
    prog_id: u32,
    next_id: u32,
    open_flags: u32,
}

/// Calls `bpf(cmd, attr, sizeof(attr))`.
fn sys_bpf<T>(cmd: libc::c_long, attr: &mut T) -> io::Result<libc::c_long> {
    // SAFETY: `attr` is a valid, initialised #[repr(C)] prefix of `union
    // bpf_attr` that lives for the duration of the call, and its exact size is
    // passed; the kernel reads (and for QUERY writes) only within that size.
    let rc = unsafe {
        libc::syscall(
            libc::SYS_bpf,
            cmd,
            attr as *mut T as *mut libc::c_void,
            std::mem::size_of::<T>() as libc::c_uint,
        )
    };
    if rc < 0 {
        Err(io::Error::last_os_error())
    } else {
        Ok(rc)
    }
}

fn owned_fd(rc: libc::c_long) -> io::Result<OwnedFd> {
    let fd = i32::try_from(rc).map_err(|_| io::Error::other("bpf returned an fd out of range"))?;
    // SAFETY: the kernel just returned `fd` as a new file descriptor owned by
    // nobody else in this process.
    Ok(unsafe { OwnedFd::from_raw_fd(fd) })
}

/// Loads a `BPF_PROG_TYPE_CGROUP_DEVICE` program (`bpf(BPF_PROG_LOAD)`).
///
/// Loads without a verifier log first (a log buffer that is too small makes
/// even a good program fail with ENOSPC on newer kernels); on failure loads
/// again with the log and appends it to the error message.
pub fn load_cgroup_device_prog(insns: &[BpfInsn], license: &str) -> io::Result<OwnedFd> {
    let license = std::ffi::CString::new(license)
        .map_err(|_| io::Error::new(io::ErrorKind::InvalidInput, "license has a NUL byte"))?;
    let insn_cnt = u32::try_from(insns.len())
        .map_err(|_| io::Error::new(io::ErrorKind::InvalidInput, "too many instructions"))?;
    let mut attr = ProgLoadAttr {
        prog_type: BPF_PROG_TYPE_CGROUP_DEVICE,
        insn_cnt,
        insns: insns.as_ptr() as u64,
        license: license.as_ptr() as u64,
        ..Default::default()
    };
    let err = match sys_bpf(BPF_PROG_LOAD, &mut attr) {
        Ok(rc) => return owned_fd(rc),
        Err(e) => e,
    };
    let mut log = vec![0u8; 256 * 1024];
    attr.log_level = 1;
    attr.log_size = log.len() as u32;
    attr.log_buf = log.as_mut_ptr() as u64;
    if let Ok(rc) = sys_bpf(BPF_PROG_LOAD, &mut attr) {
        return owned_fd(rc);
    }
    let end = log.iter().position(|&b| b == 0).unwrap_or(log.len());
    let text = String::from_utf8_lossy(&log[..end]);
    if text.trim().is_empty() {
        Err(err)
    } else {
        Err(io::Error::new(
            err.kind(),
            format!("{err}; verifier log: {}", text.trim()),
        ))
    }
}

/// Attaches a loaded device program to a cgroup (`bpf(BPF_PROG_ATTACH)`,
/// attach type `BPF_CGROUP_DEVICE`).
pub fn attach_cgroup_device(
    cgroup: BorrowedFd<'_>,
    prog: BorrowedFd<'_>,
    flags: u32,
) -> io::Result<()> {
    let mut attr = AttachAttr {
        target_fd: cgroup.as_raw_fd() as u32,
        attach_bpf_fd: prog.as_raw_fd() as u32,
        attach_type: BPF_CGROUP_DEVICE,
        attach_flags: flags,
    };
    sys_bpf(BPF_PROG_ATTACH, &mut attr).map(|_| ())
}

/// Detaches a device program from a cgroup (`bpf(BPF_PROG_DETACH)`).
pub fn detach_cgroup_device(cgroup: BorrowedFd<'_>, prog: BorrowedFd<'_>) -> io::Result<()> {
    let mut attr = AttachAttr {
        target_fd: cgroup.as_raw_fd() as u32,
        attach_bpf_fd: prog.as_raw_fd() as u32,
        attach_type: BPF_CGROUP_DEVICE,
        attach_flags: 0,
    };
    sys_bpf(BPF_PROG_DETACH, &mut attr).map(|_| ())
}

/// IDs of the device programs attached directly to a cgroup
/// (`bpf(BPF_PROG_QUERY)`, at most 64).
pub fn query_cgroup_device(cgroup: BorrowedFd<'_>) -> io::Result<Vec<u32>> {
    let mut ids = vec![0u32; 64];
    let mut attr = QueryAttr {
        target_fd: cgroup.as_raw_fd() as u32,
        attach_type: BPF_CGROUP_DEVICE,
        prog_ids: ids.as_mut_ptr() as u64,
        prog_cnt: ids.len() as u32,
        ..Default::default()
    };
    sys_bpf(BPF_PROG_QUERY, &mut attr)?;
    ids.truncate(attr.prog_cnt.min(64) as usize);
    Ok(ids)
}

/// Opens a loaded program by ID (`bpf(BPF_PROG_GET_FD_BY_ID)`).
pub fn prog_fd_by_id(id: u32) -> io::Result<OwnedFd> {
    let mut attr = GetFdAttr {
        prog_id: id,
        ..Default::default()
    };
    sys_bpf(BPF_PROG_GET_FD_BY_ID, &mut attr).and_then(owned_fd)
}
