//! The cgroup v2 device controller: compiles an emulated device state
//! (`devices::emulate`) into a `BPF_PROG_TYPE_CGROUP_DEVICE` program, the
//! same shape as runc's devicefilter.
//!
//! The program reads `struct bpf_cgroup_dev_ctx { u32 access_type; u32 major;
//! u32 minor; }` (access_type: device type in the low 16 bits, access in the
//! high 16) and returns 1 (allow) or 0 (deny, the opener gets EPERM).

use berth_sys::bpf::BpfInsn;

use crate::devices::{DevType, DeviceState, MKNOD, READ, RWM, WRITE};

// Opcodes (include/uapi/linux/bpf.h, bpf_common.h).
const LDX_MEM_W: u8 = 0x61; // BPF_LDX | BPF_MEM | BPF_W
const ALU32_AND_K: u8 = 0x54; // BPF_ALU | BPF_AND | BPF_K
const ALU32_RSH_K: u8 = 0x74; // BPF_ALU | BPF_RSH | BPF_K
const ALU32_MOV_X: u8 = 0xbc; // BPF_ALU | BPF_MOV | BPF_X
const ALU64_MOV_K: u8 = 0xb7; // BPF_ALU64 | BPF_MOV | BPF_K
const JNE_K: u8 = 0x55; // BPF_JMP | BPF_JNE | BPF_K
const JNE_X: u8 = 0x5d; // BPF_JMP | BPF_JNE | BPF_X
const EXIT: u8 = 0x95; // BPF_JMP | BPF_EXIT

// BPF_DEVCG_* values.
const DEV_BLOCK: i32 = 1;
const DEV_CHAR: i32 = 2;
const ACC_MKNOD: i32 = 1;
const ACC_READ: i32 = 2;
const ACC_WRITE: i32 = 4;

fn insn(code: u8, dst: u8, src: u8, off: i16, imm: i32) -> BpfInsn {
    BpfInsn {
        code,
        regs: (src << 4) | (dst & 0x0f),
        off,
        imm,
    }
}

/// BPF_DEVCG_ACC_* bits of rwm bits.
fn bpf_access(a: u8) -> i32 {
    let mut v = 0;
    if a & READ != 0 {
        v |= ACC_READ;
    }
    if a & WRITE != 0 {
        v |= ACC_WRITE;
    }
    if a & MKNOD != 0 {
        v |= ACC_MKNOD;
    }
    v
}

/// Compiles `state` into instructions. Exceptions all have the opposite
/// verdict of the default, so their order does not matter.
pub fn compile(state: &DeviceState) -> Vec<BpfInsn> {
    let mut p = vec![
        insn(LDX_MEM_W, 2, 1, 0, 0),        // r2 = ctx->access_type
        insn(ALU32_AND_K, 2, 0, 0, 0xffff), // w2 &= 0xffff (type)
        insn(LDX_MEM_W, 3, 1, 0, 0),        // r3 = ctx->access_type
        insn(ALU32_RSH_K, 3, 0, 0, 16),     // w3 >>= 16 (access)
        insn(LDX_MEM_W, 4, 1, 4, 0),        // r4 = ctx->major
        insn(LDX_MEM_W, 5, 1, 8, 0),        // r5 = ctx->minor
    ];
    for r in &state.exceptions {
        // Conditions, each "jump to the next block if it does not match".
        let mut conds: Vec<Vec<BpfInsn>> = Vec::new();
        match r.typ {
            DevType::Block => conds.push(vec![insn(JNE_K, 2, 0, 0, DEV_BLOCK)]),
            DevType::Char => conds.push(vec![insn(JNE_K, 2, 0, 0, DEV_CHAR)]),
            DevType::All => {}
        }
        if r.access & RWM != RWM {
            // Requested access must be a subset of the rule's.
            conds.push(vec![
                insn(ALU32_MOV_X, 1, 3, 0, 0),
                insn(ALU32_AND_K, 1, 0, 0, bpf_access(r.access)),
                insn(JNE_X, 1, 3, 0, 0),
            ]);
        }
        if let Some(m) = r.major {
            conds.push(vec![insn(JNE_K, 4, 0, 0, m as i32)]);
        }
        if let Some(m) = r.minor {
            conds.push(vec![insn(JNE_K, 5, 0, 0, m as i32)]);
        }
        let verdict = [
            insn(ALU64_MOV_K, 0, 0, 0, i32::from(r.allow)),
            insn(EXIT, 0, 0, 0, 0),
        ];
        let mut block: Vec<BpfInsn> = conds.into_iter().flatten().collect();
        let len = block.len();
        for (i, ins) in block.iter_mut().enumerate() {
            if ins.code == JNE_K || ins.code == JNE_X {
                // Skip the rest of the conditions and the verdict.
                ins.off = (len - i - 1 + verdict.len()) as i16;
            }
        }
        p.extend(block);
        p.extend(verdict);
    }
    p.push(insn(ALU64_MOV_K, 0, 0, 0, i32::from(state.default_allow)));
    p.push(insn(EXIT, 0, 0, 0, 0));
    p
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use crate::devices::{emulate, rules_from_spec};

    /// A tiny interpreter of the opcodes `compile` emits, to check verdicts.
    pub(crate) fn run(prog: &[BpfInsn], typ: i32, access: i32, major: u32, minor: u32) -> u64 {
        let ctx = [(typ as u32) | ((access as u32) << 16), major, minor];
        let mut r = [0u64; 11];
        let mut pc = 0usize;
        loop {
            let i = prog[pc];
            let (dst, src) = ((i.regs & 0x0f) as usize, (i.regs >> 4) as usize);
            pc += 1;
            match i.code {
                LDX_MEM_W => {
                    assert_eq!(src, 1, "loads only from ctx");
                    r[dst] = u64::from(ctx[(i.off / 4) as usize]);
                }
                ALU32_AND_K => r[dst] = u64::from((r[dst] as u32) & (i.imm as u32)),
                ALU32_RSH_K => r[dst] = u64::from((r[dst] as u32) >> i.imm),
                ALU32_MOV_X => r[dst] = u64::from(r[src] as u32),
                ALU64_MOV_K => r[dst] = i.imm as i64 as u64,
                JNE_K => {
                    if r[dst] != i.imm as i64 as u64 {
                        pc += i.off as usize;
                    }
                }
                JNE_X => {
                    if r[dst] != r[src] {
                        pc += i.off as usize;
                    }
                }
                EXIT => return r[0],
                c => panic!("unexpected opcode {c:#x}"),
            }
        }
    }

    fn prog(json: &str) -> Vec<BpfInsn> {
        let l: Vec<oci_spec::runtime::LinuxDeviceCgroup> =
            serde_json::from_str(json).expect("json");
        compile(&emulate(&rules_from_spec(&l).expect("rules")))
    }

    #[test]
    fn deny_all_with_allowed_devices() {
        let p = prog(
            r#"[{"allow": false, "access": "rwm"},
                {"allow": true, "type": "c", "major": 1, "minor": 3, "access": "rw"},
                {"allow": true, "type": "c", "major": 136, "access": "rwm"},
                {"allow": true, "type": "b", "major": 8, "minor": 0, "access": "r"}]"#,
        );
        // /dev/null read, write: allowed; mknod: denied.
        assert_eq!(run(&p, DEV_CHAR, ACC_READ, 1, 3), 1);
        assert_eq!(run(&p, DEV_CHAR, ACC_READ | ACC_WRITE, 1, 3), 1);
        assert_eq!(run(&p, DEV_CHAR, ACC_MKNOD, 1, 3), 0);
        // any pty (136:*)
        assert_eq!(run(&p, DEV_CHAR, ACC_WRITE, 136, 7), 1);
        // block 8:0 read only; char 8:0 is another device
        assert_eq!(run(&p, DEV_BLOCK, ACC_READ, 8, 0), 1);
        assert_eq!(run(&p, DEV_BLOCK, ACC_WRITE, 8, 0), 0);
        assert_eq!(run(&p, DEV_CHAR, ACC_READ, 8, 0), 0);
        // /dev/zero (1:5) not listed
        assert_eq!(run(&p, DEV_CHAR, ACC_READ, 1, 5), 0);
    }

    #[test]
    fn allow_all_with_a_hole() {
        let p = prog(
            r#"[{"allow": true}, {"allow": false, "type": "c", "major": 1, "minor": 3, "access": "w"}]"#,
        );
        assert_eq!(run(&p, DEV_CHAR, ACC_WRITE, 1, 3), 0);
        assert_eq!(run(&p, DEV_CHAR, ACC_READ, 1, 3), 1);
        assert_eq!(run(&p, DEV_BLOCK, ACC_WRITE, 1, 3), 1);
    }

    #[test]
    fn instruction_shape() {
        let p = prog(r#"[{"allow": true, "type": "c", "major": 1, "minor": 3, "access": "rwm"}]"#);
        // prologue 6, type 1, major 1, minor 1, verdict 2, default 2
        assert_eq!(p.len(), 13);
        assert_eq!(p[6], insn(JNE_K, 2, 0, 4, DEV_CHAR));
        assert_eq!(p[7], insn(JNE_K, 4, 0, 3, 1));
        assert_eq!(p[8], insn(JNE_K, 5, 0, 2, 3));
        assert_eq!(p[9], insn(ALU64_MOV_K, 0, 0, 0, 1));
        assert_eq!(p[10].code, EXIT);
        assert_eq!(p[11], insn(ALU64_MOV_K, 0, 0, 0, 0));
        // Empty list: deny everything.
        let p = prog("[]");
        assert_eq!(p.len(), 8);
        assert_eq!(run(&p, DEV_CHAR, ACC_READ, 1, 3), 0);
    }
}
