//! A prefix for the generated program that answers syscalls newer than the
//! profile with ENOSYS instead of the profile's default action, as runc does
//! (libcontainer/seccomp/patchbpf): a program that tries a new syscall
//! (glibc's clone3, close_range, openat2, ...) under a profile written before
//! that syscall existed must see "not implemented" to fall back to the old
//! one; EPERM from a default action makes it fail instead.
//!
//! "Newer than the profile" is "a number above the highest syscall number the
//! profile names", per architecture, for any action. Only profiles whose
//! default action denies get the prefix (with ALLOW, LOG or TRACE as default
//! unknown syscalls run already).

use berth_sys::seccomp::SockFilter;
use libseccomp::{ScmpAction, ScmpArch, ScmpSyscall};

const LD_W_ABS: u16 = 0x20; // BPF_LD | BPF_W | BPF_ABS
const JEQ_K: u16 = 0x15; // BPF_JMP | BPF_JEQ | BPF_K
const JGT_K: u16 = 0x25; // BPF_JMP | BPF_JGT | BPF_K
const JSET_K: u16 = 0x45; // BPF_JMP | BPF_JSET | BPF_K
const JA: u16 = 0x05; // BPF_JMP | BPF_JA
const RET_K: u16 = 0x06; // BPF_RET | BPF_K
/// `SECCOMP_RET_ERRNO | ENOSYS`.
const RET_ENOSYS: u32 = 0x0005_0000 | libc::ENOSYS as u32;
/// Offsets in `struct seccomp_data`.
const OFF_NR: u32 = 0;
const OFF_ARCH: u32 = 4;
/// x32 syscalls run as AUDIT_ARCH_X86_64 with this bit in their number.
const X32_BIT: u32 = 0x4000_0000;
const AUDIT_ARCH_X86_64: u32 = 0xC000_003E;

/// The `AUDIT_ARCH_*` value the kernel reports for a libseccomp
/// architecture (linux/audit.h); x32 shares x86_64's.
pub fn audit_arch(arch: ScmpArch) -> Option<u32> {
    const LE: u32 = 0x4000_0000;
    const B64: u32 = 0x8000_0000;
    const N32: u32 = 0x2000_0000;
    Some(match arch {
        ScmpArch::Native => return audit_arch(ScmpArch::native()),
        ScmpArch::X86 => 3 | LE,
        ScmpArch::X8664 | ScmpArch::X32 => AUDIT_ARCH_X86_64,
        ScmpArch::Arm => 40 | LE,
        ScmpArch::Aarch64 => 183 | B64 | LE,
        ScmpArch::Mips => 8,
        ScmpArch::Mips64 => 8 | B64,
        ScmpArch::Mips64N32 => 8 | B64 | N32,
        ScmpArch::Mipsel => 8 | LE,
        ScmpArch::Mipsel64 => 8 | B64 | LE,
        ScmpArch::Mipsel64N32 => 8 | B64 | LE | N32,
        ScmpArch::Ppc => 20,
        ScmpArch::Ppc64 => 21 | B64,
        ScmpArch::Ppc64Le => 21 | B64 | LE,
        ScmpArch::Riscv64 => 243 | B64 | LE,
        ScmpArch::Loongarch64 => 258 | B64 | LE,
        ScmpArch::Parisc => 15,
        ScmpArch::Parisc64 => 15 | B64,
        ScmpArch::M68k => 4,
        // s390 multiplexes large syscall numbers through syscall 0; leave
        // those architectures (and any other) to the profile as it is.
        _ => return None,
    })
}

/// Whether a profile with this default action gets the prefix.
pub fn wanted(default_action: ScmpAction) -> bool {
    !matches!(
        default_action,
        ScmpAction::Allow | ScmpAction::Log | ScmpAction::Trace(_)
    ) && default_action != ScmpAction::Errno(libc::ENOSYS)
}

/// The highest syscall number of `names` on `arch` (names the architecture
/// lacks, and libseccomp's pseudo numbers, do not count).
fn highest(names: &[String], arch: ScmpArch) -> Option<u32> {
    names
        .iter()
        .filter_map(|n| ScmpSyscall::from_name_by_arch(n, arch).ok())
        .filter_map(|s| u32::try_from(i32::from(s)).ok())
        .map(|nr| {
            if arch == ScmpArch::X32 {
                nr | X32_BIT
            } else {
                nr
            }
        })
        .max()
}

/// The highest known syscall per audit architecture: (its own ABI, x32 on
/// x86_64), for the native architecture and `archs`.
fn limits(archs: &[ScmpArch], names: &[String]) -> Vec<(u32, Option<u32>, Option<u32>)> {
    let mut out: Vec<(u32, Option<u32>, Option<u32>)> = Vec::new();
    let native = ScmpArch::native();
    let all = std::iter::once(native).chain(archs.iter().copied());
    for arch in all {
        let Some(audit) = audit_arch(arch) else {
            continue;
        };
        let i = match out.iter().position(|l| l.0 == audit) {
            Some(i) => i,
            None => {
                out.push((audit, None, None));
                out.len() - 1
            }
        };
        let max = highest(names, arch);
        if arch == ScmpArch::X32 {
            out[i].2 = max;
        } else {
            out[i].1 = max;
        }
    }
    out.retain(|l| l.1.is_some() || l.2.is_some());
    out
}

fn insn(code: u16, jt: u8, jf: u8, k: u32) -> SockFilter {
    SockFilter { code, jt, jf, k }
}

/// The checks of one architecture, from loading the syscall number to its
/// own `ret ENOSYS`; falling through its end means "not newer".
fn section(audit: u32, own: Option<u32>, x32: Option<u32>) -> Vec<SockFilter> {
    let ld = insn(LD_W_ABS, 0, 0, OFF_NR);
    let ret = insn(RET_K, 0, 0, RET_ENOSYS);
    // Each section ends with `ret ENOSYS`; its last jumps skip that (1) to
    // reach the instruction after it.
    match (audit == AUDIT_ARCH_X86_64, own, x32) {
        (true, Some(m), Some(x)) => vec![
            ld,
            insn(JSET_K, 1, 0, X32_BIT),
            insn(JGT_K, 1, 2, m),
            insn(JGT_K, 0, 1, x),
            ret,
        ],
        // x86_64 only: x32 calls go on to the profile (its bad-arch action).
        (true, Some(m), None) => vec![ld, insn(JSET_K, 2, 0, X32_BIT), insn(JGT_K, 0, 1, m), ret],
        (true, None, Some(x)) => vec![ld, insn(JSET_K, 0, 2, X32_BIT), insn(JGT_K, 0, 1, x), ret],
        (_, Some(m), _) => vec![ld, insn(JGT_K, 0, 1, m), ret],
        _ => Vec::new(),
    }
}

/// The prefix for a profile with `default_action`, extra `archs` and the
/// syscall `names` it mentions; empty when none is wanted. The generated
/// program follows it unchanged (its jumps are relative).
pub fn stub(default_action: ScmpAction, archs: &[ScmpArch], names: &[String]) -> Vec<SockFilter> {
    if !wanted(default_action) {
        return Vec::new();
    }
    let limits = limits(archs, names);
    if limits.is_empty() {
        return Vec::new();
    }
    let sections: Vec<Vec<SockFilter>> = limits
        .iter()
        .map(|&(audit, own, x32)| section(audit, own, x32))
        .collect();
    // ld arch; one jeq per architecture; ja past the sections; then each
    // section followed by a `ja` to the profile.
    let head = 1 + limits.len() + 1;
    let body: usize = sections.iter().map(|s| s.len() + 1).sum();
    let total = head + body;
    let mut out = Vec::with_capacity(total);
    out.push(insn(LD_W_ABS, 0, 0, OFF_ARCH));
    let mut start = head;
    for (i, (audit, _, _)) in limits.iter().enumerate() {
        let pc = 1 + i;
        let Ok(jt) = u8::try_from(start - pc - 1) else {
            // Too far for a conditional jump: leave the profile as it is.
            return Vec::new();
        };
        out.push(insn(JEQ_K, jt, 0, *audit));
        start += sections[i].len() + 1;
    }
    let ja = |pc: usize| insn(JA, 0, 0, (total - pc - 1) as u32);
    out.push(ja(out.len()));
    for s in sections {
        out.extend(s);
        out.push(ja(out.len()));
    }
    debug_assert_eq!(out.len(), total);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Runs a classic-BPF program on (arch, nr): enough of an interpreter
    /// for the instructions above and libseccomp's.
    fn run(prog: &[SockFilter], arch: u32, nr: u32) -> u32 {
        let mut acc = 0u32;
        let mut pc = 0usize;
        loop {
            let i = prog[pc];
            pc += 1;
            match i.code {
                LD_W_ABS => acc = if i.k == OFF_ARCH { arch } else { nr },
                JEQ_K => pc += usize::from(if acc == i.k { i.jt } else { i.jf }),
                JGT_K => pc += usize::from(if acc > i.k { i.jt } else { i.jf }),
                JSET_K => pc += usize::from(if acc & i.k != 0 { i.jt } else { i.jf }),
                JA => pc += i.k as usize,
                RET_K => return i.k,
                c => panic!("instruction {c:#x} not modelled"),
            }
        }
    }

    const PROFILE: u32 = 0x7fff_0000; // stands for "the profile decides"

    fn with_tail(stub: Vec<SockFilter>) -> Vec<SockFilter> {
        let mut p = stub;
        p.push(insn(RET_K, 0, 0, PROFILE));
        p
    }

    #[test]
    fn newer_syscalls_get_enosys_per_architecture() {
        let names: Vec<String> = ["read", "write", "clone3"].map(String::from).to_vec();
        let p = with_tail(stub(
            ScmpAction::Errno(libc::EPERM),
            &[ScmpArch::X86, ScmpArch::X32],
            &names,
        ));
        let clone3 = 435;
        assert_eq!(run(&p, AUDIT_ARCH_X86_64, 1000), RET_ENOSYS);
        assert_eq!(run(&p, AUDIT_ARCH_X86_64, clone3 + 1), RET_ENOSYS);
        assert_eq!(run(&p, AUDIT_ARCH_X86_64, clone3), PROFILE);
        assert_eq!(run(&p, AUDIT_ARCH_X86_64, 0), PROFILE);
        // x32: the same rule on its own numbering.
        assert_eq!(run(&p, AUDIT_ARCH_X86_64, X32_BIT | 1000), RET_ENOSYS);
        assert_eq!(run(&p, AUDIT_ARCH_X86_64, X32_BIT | 1), PROFILE);
        // i386.
        let i386 = 3 | 0x4000_0000;
        assert_eq!(run(&p, i386, 1000), RET_ENOSYS);
        assert_eq!(run(&p, i386, 3), PROFILE);
        // An architecture not in the filter: the profile (bad arch).
        assert_eq!(run(&p, 183 | 0xC000_0000, 1000), PROFILE);
    }

    #[test]
    fn x32_calls_go_to_the_profile_when_x32_is_not_listed() {
        let names: Vec<String> = ["read", "clone3"].map(String::from).to_vec();
        let p = with_tail(stub(ScmpAction::KillProcess, &[], &names));
        assert_eq!(run(&p, AUDIT_ARCH_X86_64, 1000), RET_ENOSYS);
        assert_eq!(run(&p, AUDIT_ARCH_X86_64, X32_BIT | 1000), PROFILE);
    }

    #[test]
    fn permissive_defaults_get_no_prefix() {
        let names = vec!["read".to_string()];
        for a in [
            ScmpAction::Allow,
            ScmpAction::Log,
            ScmpAction::Trace(1),
            ScmpAction::Errno(libc::ENOSYS),
        ] {
            assert!(stub(a, &[], &names).is_empty(), "{a:?}");
        }
        assert!(stub(ScmpAction::Errno(1), &[], &[]).is_empty(), "no names");
    }
}
