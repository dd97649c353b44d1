//! The BPF program of a filter, generated once in the runtime's parent, and
//! the seccomp(2) flags it is installed with, so the container process only
//! makes the `seccomp(SECCOMP_SET_MODE_FILTER)` call (no libseccomp work
//! between `start` and the container's execve).

use std::io::{Read, Seek, SeekFrom};

use berth_sys::seccomp::{
    SockFilter, FLAG_LOG, FLAG_NEW_LISTENER, FLAG_SPEC_ALLOW, FLAG_TSYNC, FLAG_TSYNC_ESRCH,
    FLAG_WAIT_KILLABLE_RECV,
};
use libseccomp::ScmpFilterContext;

use crate::plan::FilterFlags;

/// Kernel limit on the length of a seccomp program (`BPF_MAXINSNS`).
pub const MAX_INSNS: usize = 4096;

/// Bytes of one `struct sock_filter` as libseccomp exports it.
const INSN_BYTES: usize = 8;

/// Errors from exporting and checking the generated program.
#[derive(Debug, thiserror::Error)]
pub enum ProgramError {
    #[error("create the memfd libseccomp exports the seccomp program into")]
    Memfd {
        #[source]
        source: std::io::Error,
    },
    #[error("generate the seccomp BPF program with libseccomp (seccomp_export_bpf)")]
    Export {
        #[source]
        source: libseccomp::error::SeccompError,
    },
    #[error("read back the exported seccomp BPF program")]
    Read {
        #[source]
        source: std::io::Error,
    },
    #[error(
        "exported seccomp program is {bytes} bytes, not a whole number of 8-byte instructions"
    )]
    Truncated { bytes: usize },
    #[error("exported seccomp program is empty")]
    Empty,
    #[error("seccomp program has {insns} instructions, more than the kernel's limit of {MAX_INSNS}; use fewer rules or architectures in linux.seccomp")]
    TooLong { insns: usize },
}

/// Has libseccomp generate the BPF program of `ctx` (seccomp_export_bpf(3),
/// the same code `seccomp_load` would generate and install) and parses it.
pub fn export(ctx: &ScmpFilterContext) -> Result<Vec<SockFilter>, ProgramError> {
    let fd = rustix::fs::memfd_create("berth-seccomp-bpf", rustix::fs::MemfdFlags::CLOEXEC)
        .map_err(|e| ProgramError::Memfd { source: e.into() })?;
    ctx.export_bpf(&fd)
        .map_err(|source| ProgramError::Export { source })?;
    let mut file = std::fs::File::from(fd);
    let mut bytes = Vec::new();
    file.seek(SeekFrom::Start(0))
        .and_then(|_| file.read_to_end(&mut bytes))
        .map_err(|source| ProgramError::Read { source })?;
    parse(&bytes)
}

/// Parses an exported program: native-endian `struct sock_filter` records
/// (u16 code, u8 jt, u8 jf, u32 k), checked against the kernel's length
/// limits so an oversized filter fails at `create`, not in the container.
pub fn parse(bytes: &[u8]) -> Result<Vec<SockFilter>, ProgramError> {
    if !bytes.len().is_multiple_of(INSN_BYTES) {
        return Err(ProgramError::Truncated { bytes: bytes.len() });
    }
    let program: Vec<SockFilter> = bytes
        .chunks_exact(INSN_BYTES)
        .map(|c| SockFilter {
            code: u16::from_ne_bytes([c[0], c[1]]),
            jt: c[2],
            jf: c[3],
            k: u32::from_ne_bytes([c[4], c[5], c[6], c[7]]),
        })
        .collect();
    match program.len() {
        0 => Err(ProgramError::Empty),
        n if n > MAX_INSNS => Err(ProgramError::TooLong { insns: n }),
        _ => Ok(program),
    }
}

/// The seccomp(2) flags for a filter with `flags` (and a NOTIFY rule when
/// `uses_notify`), as libseccomp's `seccomp_load` chooses them: TSYNC gets
/// TSYNC_ESRCH when a listener is requested (the kernel refuses TSYNC with
/// NEW_LISTENER otherwise), WAIT_KILLABLE_RECV goes with the listener.
pub fn load_flags(flags: &FilterFlags, uses_notify: bool) -> u32 {
    let mut out = 0;
    if flags.tsync {
        out |= FLAG_TSYNC;
        if uses_notify {
            out |= FLAG_TSYNC_ESRCH;
        }
    }
    if uses_notify {
        out |= FLAG_NEW_LISTENER;
        if flags.wait_killable_recv {
            out |= FLAG_WAIT_KILLABLE_RECV;
        }
    }
    if flags.log {
        out |= FLAG_LOG;
    }
    if flags.spec_allow {
        out |= FLAG_SPEC_ALLOW;
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn insn(code: u16, jt: u8, jf: u8, k: u32) -> Vec<u8> {
        let mut v = code.to_ne_bytes().to_vec();
        v.extend([jt, jf]);
        v.extend(k.to_ne_bytes());
        v
    }

    #[test]
    fn parses_native_endian_instructions() {
        let mut bytes = insn(0x20, 0, 0, 4);
        bytes.extend(insn(0x15, 1, 2, 0xc000_003e));
        let p = parse(&bytes).expect("two instructions");
        assert_eq!(
            p,
            vec![
                SockFilter {
                    code: 0x20,
                    jt: 0,
                    jf: 0,
                    k: 4
                },
                SockFilter {
                    code: 0x15,
                    jt: 1,
                    jf: 2,
                    k: 0xc000_003e
                },
            ]
        );
    }

    #[test]
    fn refuses_partial_empty_and_oversized_programs() {
        assert!(matches!(
            parse(&[0; 12]),
            Err(ProgramError::Truncated { bytes: 12 })
        ));
        assert!(matches!(parse(&[]), Err(ProgramError::Empty)));
        let big = vec![0u8; (MAX_INSNS + 1) * INSN_BYTES];
        assert!(matches!(
            parse(&big),
            Err(ProgramError::TooLong { insns }) if insns == MAX_INSNS + 1
        ));
        assert_eq!(
            parse(&vec![0u8; MAX_INSNS * INSN_BYTES])
                .map(|p| p.len())
                .ok(),
            Some(MAX_INSNS)
        );
    }

    #[test]
    fn flags_follow_libseccomp_load() {
        let none = FilterFlags::default();
        assert_eq!(load_flags(&none, false), 0);
        assert_eq!(load_flags(&none, true), FLAG_NEW_LISTENER);
        let tsync = FilterFlags {
            tsync: true,
            ..none
        };
        assert_eq!(load_flags(&tsync, false), FLAG_TSYNC);
        assert_eq!(
            load_flags(&tsync, true),
            FLAG_TSYNC | FLAG_TSYNC_ESRCH | FLAG_NEW_LISTENER
        );
        let all = FilterFlags {
            tsync: false,
            log: true,
            spec_allow: true,
            wait_killable_recv: true,
        };
        assert_eq!(load_flags(&all, false), FLAG_LOG | FLAG_SPEC_ALLOW);
        assert_eq!(
            load_flags(&all, true),
            FLAG_LOG | FLAG_SPEC_ALLOW | FLAG_NEW_LISTENER | FLAG_WAIT_KILLABLE_RECV
        );
    }

    #[test]
    fn exports_a_program_for_a_simple_filter() {
        let mut ctx =
            ScmpFilterContext::new(libseccomp::ScmpAction::Allow).expect("libseccomp context");
        ctx.add_rule(
            libseccomp::ScmpAction::Errno(1),
            libseccomp::ScmpSyscall::from_name("mkdir").expect("mkdir"),
        )
        .expect("rule");
        let p = export(&ctx).expect("export");
        // Loads the arch, compares it, ... ends in a return.
        assert!(p.len() >= 4, "{} instructions", p.len());
        const BPF_RET: u16 = 0x06;
        assert_eq!(p.last().map(|i| i.code & 0x07), Some(BPF_RET));
    }
}
