//! Validation of the OCI `linux.seccomp` object into a [`FilterPlan`]: a
//! checked, kernel-ready description of the filter (runtime-spec
//! config-linux.md, "Seccomp"). Pure logic: no syscalls, no libseccomp
//! context, so every decision here is unit tested without root.

use std::collections::HashSet;

use libseccomp::{ScmpAction, ScmpArch, ScmpCompareOp, ScmpSyscall};
use oci_spec::runtime::{
    Arch, LinuxSeccomp, LinuxSeccompAction, LinuxSeccompArg, LinuxSeccompFilterFlag,
    LinuxSeccompOperator,
};

/// Errno used when `defaultErrnoRet` / `errnoRet` is absent (config-linux.md:
/// "The default is `EPERM`").
const DEFAULT_ERRNO: u32 = libc::EPERM as u32;

/// Highest syscall argument index the kernel exposes (`seccomp_data.args[6]`).
const MAX_ARG_INDEX: u32 = 5;

/// Errors found while checking a `linux.seccomp` object.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum PlanError {
    #[error("invalid seccomp profile json: {message}")]
    Json { message: String },
    #[error("seccomp defaultErrnoRet is set but defaultAction {action} takes no errno; drop defaultErrnoRet or use SCMP_ACT_ERRNO/SCMP_ACT_TRACE")]
    DefaultErrnoWithoutErrnoAction { action: String },
    #[error("seccomp errnoRet is set on syscalls {names:?} but action {action} takes no errno; drop errnoRet or use SCMP_ACT_ERRNO/SCMP_ACT_TRACE")]
    ErrnoWithoutErrnoAction { names: Vec<String>, action: String },
    #[error("seccomp errno value {value} for {what} is out of range")]
    ErrnoOutOfRange { what: String, value: u32 },
    #[error("seccomp defaultAction SCMP_ACT_NOTIFY is not allowed; notify only selected syscalls")]
    NotifyAsDefault,
    #[error("seccomp syscall entry {position} has an empty names list")]
    EmptyNames { position: usize },
    #[error("seccomp argument index {index} for syscalls {names:?} is out of range (0..=5)")]
    ArgIndex { names: Vec<String>, index: u32 },
    #[error("seccomp action SCMP_ACT_NOTIFY is used but linux.seccomp.listenerPath is not set")]
    NotifyWithoutListener,
    #[error("seccomp listenerMetadata is set without listenerPath")]
    MetadataWithoutListener,
}

/// Filter-wide flags (seccomp(2) `SECCOMP_FILTER_FLAG_*`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct FilterFlags {
    pub tsync: bool,
    pub log: bool,
    pub spec_allow: bool,
    pub wait_killable_recv: bool,
}

/// One syscall rule; `conditions` are ANDed (libseccomp semantics).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PlannedRule {
    pub name: String,
    pub syscall: ScmpSyscall,
    pub action: ScmpAction,
    pub conditions: Vec<(u32, ScmpCompareOp, u64)>,
}

/// A validated seccomp configuration, ready for libseccomp.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FilterPlan {
    pub default_action: ScmpAction,
    /// Extra architectures; the native one is always in the filter.
    pub archs: Vec<ScmpArch>,
    pub flags: FilterFlags,
    pub rules: Vec<PlannedRule>,
    /// Syscall names libseccomp does not know, skipped as runc skips them.
    pub skipped_unknown: Vec<String>,
    pub uses_notify: bool,
    /// Every syscall name of the profile, whatever its action: the highest
    /// of their numbers bounds the syscalls the profile knows (see
    /// [`crate::enosys`]).
    pub profile_names: Vec<String>,
}

/// Parses a `linux.seccomp` JSON object. Unknown action, operator,
/// architecture or flag strings are refused here with the serde message.
pub fn parse_json(json: &str) -> Result<LinuxSeccomp, PlanError> {
    serde_json::from_str(json).map_err(|e| PlanError::Json {
        message: e.to_string(),
    })
}

/// Name of an action as written in config.json.
fn action_name(action: LinuxSeccompAction) -> String {
    serde_json::to_value(action)
        .ok()
        .and_then(|v| v.as_str().map(str::to_owned))
        .unwrap_or_else(|| format!("{action:?}"))
}

fn errno_value(what: impl FnOnce() -> String, value: Option<u32>) -> Result<u16, PlanError> {
    let value = value.unwrap_or(DEFAULT_ERRNO);
    // The kernel keeps 16 bits of data (SECCOMP_RET_DATA).
    u16::try_from(value).map_err(|_| PlanError::ErrnoOutOfRange {
        what: what(),
        value,
    })
}

/// Maps an OCI action to libseccomp's, with the errno/trace value.
/// `None` for `errno_ret` means "not given"; runc uses EPERM then for both
/// ERRNO and TRACE.
fn to_action(
    action: LinuxSeccompAction,
    errno_ret: Option<u32>,
    what: impl Fn() -> String,
) -> Result<ScmpAction, PlanError> {
    Ok(match action {
        LinuxSeccompAction::ScmpActKill | LinuxSeccompAction::ScmpActKillThread => {
            ScmpAction::KillThread
        }
        LinuxSeccompAction::ScmpActKillProcess => ScmpAction::KillProcess,
        LinuxSeccompAction::ScmpActTrap => ScmpAction::Trap,
        LinuxSeccompAction::ScmpActErrno => {
            ScmpAction::Errno(i32::from(errno_value(&what, errno_ret)?))
        }
        LinuxSeccompAction::ScmpActTrace => ScmpAction::Trace(errno_value(&what, errno_ret)?),
        LinuxSeccompAction::ScmpActLog => ScmpAction::Log,
        LinuxSeccompAction::ScmpActNotify => ScmpAction::Notify,
        LinuxSeccompAction::ScmpActAllow => ScmpAction::Allow,
    })
}

fn takes_errno(action: LinuxSeccompAction) -> bool {
    matches!(
        action,
        LinuxSeccompAction::ScmpActErrno | LinuxSeccompAction::ScmpActTrace
    )
}

/// Maps an OCI architecture to libseccomp's.
pub fn to_arch(arch: Arch) -> ScmpArch {
    match arch {
        Arch::ScmpArchNative => ScmpArch::Native,
        Arch::ScmpArchX86 => ScmpArch::X86,
        Arch::ScmpArchX86_64 => ScmpArch::X8664,
        Arch::ScmpArchX32 => ScmpArch::X32,
        Arch::ScmpArchArm => ScmpArch::Arm,
        Arch::ScmpArchAarch64 => ScmpArch::Aarch64,
        Arch::ScmpArchMips => ScmpArch::Mips,
        Arch::ScmpArchMips64 => ScmpArch::Mips64,
        Arch::ScmpArchMips64n32 => ScmpArch::Mips64N32,
        Arch::ScmpArchMipsel => ScmpArch::Mipsel,
        Arch::ScmpArchMipsel64 => ScmpArch::Mipsel64,
        Arch::ScmpArchMipsel64n32 => ScmpArch::Mipsel64N32,
        Arch::ScmpArchPpc => ScmpArch::Ppc,
        Arch::ScmpArchPpc64 => ScmpArch::Ppc64,
        Arch::ScmpArchPpc64le => ScmpArch::Ppc64Le,
        Arch::ScmpArchS390 => ScmpArch::S390,
        Arch::ScmpArchS390x => ScmpArch::S390X,
        Arch::ScmpArchParisc => ScmpArch::Parisc,
        Arch::ScmpArchParisc64 => ScmpArch::Parisc64,
        Arch::ScmpArchRiscv64 => ScmpArch::Riscv64,
        Arch::ScmpArchLoongarch64 => ScmpArch::Loongarch64,
        Arch::ScmpArchM68k => ScmpArch::M68k,
        Arch::ScmpArchSh => ScmpArch::Sh,
        Arch::ScmpArchSheb => ScmpArch::Sheb,
    }
}

fn to_condition(arg: &LinuxSeccompArg) -> (u32, ScmpCompareOp, u64) {
    let index = u32::try_from(arg.index()).unwrap_or(u32::MAX);
    let value = arg.value();
    let two = arg.value_two().unwrap_or(0);
    match arg.op() {
        LinuxSeccompOperator::ScmpCmpNe => (index, ScmpCompareOp::NotEqual, value),
        LinuxSeccompOperator::ScmpCmpLt => (index, ScmpCompareOp::Less, value),
        LinuxSeccompOperator::ScmpCmpLe => (index, ScmpCompareOp::LessOrEqual, value),
        LinuxSeccompOperator::ScmpCmpEq => (index, ScmpCompareOp::Equal, value),
        LinuxSeccompOperator::ScmpCmpGe => (index, ScmpCompareOp::GreaterEqual, value),
        LinuxSeccompOperator::ScmpCmpGt => (index, ScmpCompareOp::Greater, value),
        // OCI/runc: `value` is the mask, `valueTwo` the expected masked value.
        LinuxSeccompOperator::ScmpCmpMaskedEq => (index, ScmpCompareOp::MaskedEqual(value), two),
    }
}

/// Splits an entry's args into the condition sets to add as separate rules.
/// Like runc: when two comparisons name the same argument index (which
/// libseccomp refuses within one rule), each comparison becomes its own rule
/// (OR); otherwise all comparisons form one rule (AND).
fn condition_sets(args: &[LinuxSeccompArg]) -> Vec<Vec<(u32, ScmpCompareOp, u64)>> {
    let conds: Vec<_> = args.iter().map(to_condition).collect();
    let mut seen = HashSet::new();
    let repeated = conds.iter().any(|(i, _, _)| !seen.insert(*i));
    if repeated {
        conds.into_iter().map(|c| vec![c]).collect()
    } else {
        vec![conds]
    }
}

/// Looks a syscall name up for the native architecture. libseccomp returns a
/// pseudo number for syscalls that exist only on other architectures (e.g.
/// `_llseek` on x86_64) and translates it per architecture in the filter.
pub fn resolve_syscall(name: &str) -> Option<ScmpSyscall> {
    ScmpSyscall::from_name(name).ok()
}

/// Checks `seccomp` and turns it into a [`FilterPlan`].
pub fn plan(seccomp: &LinuxSeccomp) -> Result<FilterPlan, PlanError> {
    let default = seccomp.default_action();
    if seccomp.default_errno_ret().is_some() && !takes_errno(default) {
        return Err(PlanError::DefaultErrnoWithoutErrnoAction {
            action: action_name(default),
        });
    }
    if default == LinuxSeccompAction::ScmpActNotify {
        return Err(PlanError::NotifyAsDefault);
    }
    let default_action = to_action(default, seccomp.default_errno_ret(), || {
        "defaultErrnoRet".to_string()
    })?;

    if seccomp.listener_metadata().is_some() && seccomp.listener_path().is_none() {
        return Err(PlanError::MetadataWithoutListener);
    }

    let mut archs = Vec::new();
    for arch in seccomp.architectures().iter().flatten() {
        let a = to_arch(*arch);
        if a != ScmpArch::Native && !archs.contains(&a) {
            archs.push(a);
        }
    }

    let mut flags = FilterFlags::default();
    for flag in seccomp.flags().iter().flatten() {
        match flag {
            LinuxSeccompFilterFlag::SeccompFilterFlagTsync => flags.tsync = true,
            LinuxSeccompFilterFlag::SeccompFilterFlagLog => flags.log = true,
            LinuxSeccompFilterFlag::SeccompFilterFlagSpecAllow => flags.spec_allow = true,
            LinuxSeccompFilterFlag::SeccompFilterFlagWaitKillableRecv => {
                flags.wait_killable_recv = true
            }
        }
    }

    let mut rules = Vec::new();
    let mut skipped_unknown = Vec::new();
    let mut uses_notify = false;
    let mut profile_names = Vec::new();
    for (position, entry) in seccomp.syscalls().iter().flatten().enumerate() {
        let names = entry.names();
        if names.is_empty() {
            return Err(PlanError::EmptyNames { position });
        }
        if entry.errno_ret().is_some() && !takes_errno(entry.action()) {
            return Err(PlanError::ErrnoWithoutErrnoAction {
                names: names.clone(),
                action: action_name(entry.action()),
            });
        }
        let action = to_action(entry.action(), entry.errno_ret(), || {
            format!("errnoRet of syscalls {names:?}")
        })?;
        profile_names.extend(names.iter().cloned());
        let args = entry.args().as_deref().unwrap_or_default();
        if let Some(bad) = args.iter().find(|a| a.index() > MAX_ARG_INDEX as usize) {
            return Err(PlanError::ArgIndex {
                names: names.clone(),
                index: u32::try_from(bad.index()).unwrap_or(u32::MAX),
            });
        }
        // runc skips rules whose action is the default one: libseccomp
        // refuses them and they change nothing.
        if action == default_action {
            continue;
        }
        uses_notify |= action == ScmpAction::Notify;
        for name in names {
            let Some(syscall) = resolve_syscall(name) else {
                tracing::debug!(syscall = %name, "seccomp: skipping syscall unknown to libseccomp");
                skipped_unknown.push(name.clone());
                continue;
            };
            for conditions in condition_sets(args) {
                rules.push(PlannedRule {
                    name: name.clone(),
                    syscall,
                    action,
                    conditions,
                });
            }
        }
    }
    if uses_notify && seccomp.listener_path().is_none() {
        return Err(PlanError::NotifyWithoutListener);
    }

    Ok(FilterPlan {
        default_action,
        archs,
        flags,
        rules,
        skipped_unknown,
        uses_notify,
        profile_names,
    })
}
