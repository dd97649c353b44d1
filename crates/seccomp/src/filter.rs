//! Building the libseccomp filter from a [`FilterPlan`] and generating its
//! BPF program (in the runtime's parent process), and installing that
//! program (in the container process, after fork, just before execve) with
//! the raw seccomp(2) call: the container process does no libseccomp work.

use std::os::fd::OwnedFd;

use berth_sys::seccomp::SockFilter;
use libseccomp::{ScmpAction, ScmpArch, ScmpArgCompare, ScmpFilterContext};
use oci_spec::runtime::LinuxSeccomp;

use crate::plan::{plan, FilterPlan, PlanError};
use crate::program::{self, ProgramError};
use crate::support::{self, ApiSupport};

/// Errors from building or loading a seccomp filter.
#[derive(Debug, thiserror::Error)]
pub enum FilterError {
    #[error("invalid linux.seccomp configuration")]
    Plan(#[from] PlanError),
    #[error("create seccomp filter with default action {action:?}")]
    Init {
        action: ScmpAction,
        #[source]
        source: libseccomp::error::SeccompError,
    },
    #[error("add architecture {arch:?} to the seccomp filter")]
    AddArch {
        arch: ScmpArch,
        #[source]
        source: libseccomp::error::SeccompError,
    },
    #[error("set seccomp filter attribute {attr}")]
    Attr {
        attr: &'static str,
        #[source]
        source: libseccomp::error::SeccompError,
    },
    #[error("seccomp flag {flag} is not supported by libseccomp {libseccomp} (API level {api}); remove it from linux.seccomp.flags")]
    UnsupportedFlag {
        flag: &'static str,
        libseccomp: String,
        api: u32,
    },
    #[error("seccomp action {action} is not supported by libseccomp {libseccomp} (API level {api}) on this kernel")]
    UnsupportedAction {
        action: &'static str,
        libseccomp: String,
        api: u32,
    },
    #[error("add seccomp rule for syscall {name} with action {action:?}")]
    AddRule {
        name: String,
        action: ScmpAction,
        #[source]
        source: libseccomp::error::SeccompError,
    },
    #[error("generate the seccomp BPF program")]
    Program(#[from] ProgramError),
    #[error(
        "load seccomp filter into the kernel with seccomp(2) flags {flags:#x} (the process needs no_new_privs or CAP_SYS_ADMIN)"
    )]
    Load {
        flags: u32,
        #[source]
        source: std::io::Error,
    },
}

/// A seccomp filter built and checked in the parent, to be loaded in the
/// container process with [`Filter::load`].
///
/// Holds the BPF program libseccomp generated in [`compile`] and the
/// seccomp(2) flags to install it with; loading it needs no libseccomp.
#[derive(Debug)]
pub struct Filter {
    program: Vec<SockFilter>,
    flags: u32,
    uses_notify: bool,
}

impl Filter {
    /// A filter from a program generated earlier (the program cache).
    pub(crate) fn from_parts(program: Vec<SockFilter>, flags: u32, uses_notify: bool) -> Filter {
        Filter {
            program,
            flags,
            uses_notify,
        }
    }

    /// Whether loading returns a notify fd (some rule uses SCMP_ACT_NOTIFY).
    pub fn uses_notify(&self) -> bool {
        self.uses_notify
    }

    /// The generated BPF program (`struct sock_filter` records).
    pub fn program(&self) -> &[SockFilter] {
        &self.program
    }

    /// The `SECCOMP_FILTER_FLAG_*` bits [`Filter::load`] passes to seccomp(2).
    pub fn load_flags(&self) -> u32 {
        self.flags
    }

    /// Installs the filter on the calling thread (and on all threads with
    /// `SECCOMP_FILTER_FLAG_TSYNC`), returning the notify fd (close-on-exec)
    /// when a NOTIFY rule exists.
    ///
    /// The caller must already have set no_new_privs (`process.noNewPrivileges`)
    /// or hold CAP_SYS_ADMIN: this crate does not set the bit on its own.
    /// The only syscall made is seccomp(2) itself; nothing runs under the
    /// filter before this returns.
    pub fn load(&self) -> Result<Option<OwnedFd>, FilterError> {
        berth_sys::seccomp::set_mode_filter(&self.program, self.flags).map_err(|source| {
            FilterError::Load {
                flags: self.flags,
                source,
            }
        })
    }
}

/// Validates `seccomp` and builds the libseccomp filter. Call it in the
/// runtime's parent process, so bad input is an error before any container
/// process exists.
///
/// Architectures: the native one is always present; listed ones are added and
/// get the same rules (libseccomp translates each syscall name per
/// architecture). Syscalls of an architecture not in the filter (e.g. i386 via
/// `int 0x80`, or x32 via `__X32_SYSCALL_BIT` on x86_64) hit the bad-arch
/// action, which is KILL_PROCESS (KILL_THREAD where the kernel lacks it).
pub fn compile(seccomp: &LinuxSeccomp) -> Result<Filter, FilterError> {
    let plan = plan(seccomp)?;
    build(plan)
}

/// Builds the libseccomp context for a checked plan and has libseccomp
/// generate its BPF program (what `seccomp_load` would install).
pub fn build(plan: FilterPlan) -> Result<Filter, FilterError> {
    let api = support::api_support();
    check_support(&plan, &api)?;

    let mut ctx =
        ScmpFilterContext::new(plan.default_action).map_err(|source| FilterError::Init {
            action: plan.default_action,
            source,
        })?;
    let attr = |attr: &'static str| move |source| FilterError::Attr { attr, source };
    // runtime-spec: no_new_privs follows process.noNewPrivileges, not seccomp.
    ctx.set_ctl_nnp(false).map_err(attr("no_new_privs"))?;
    let bad_arch = if api.kill_process {
        ScmpAction::KillProcess
    } else {
        ScmpAction::KillThread
    };
    ctx.set_act_badarch(bad_arch)
        .map_err(attr("bad_arch_action"))?;
    if plan.flags.tsync {
        ctx.set_ctl_tsync(true).map_err(attr("tsync"))?;
    }
    if plan.flags.log {
        ctx.set_ctl_log(true).map_err(attr("log"))?;
    }
    if plan.flags.spec_allow {
        ctx.set_ctl_ssb(true).map_err(attr("spec_allow"))?;
    }
    if plan.flags.wait_killable_recv {
        ctx.set_ctl_waitkill(true)
            .map_err(attr("wait_killable_recv"))?;
    }
    for arch in &plan.archs {
        ctx.add_arch(*arch).map_err(|source| FilterError::AddArch {
            arch: *arch,
            source,
        })?;
    }
    for rule in &plan.rules {
        let conditions: Vec<ScmpArgCompare> = rule
            .conditions
            .iter()
            .map(|(index, op, value)| ScmpArgCompare::new(*index, *op, *value))
            .collect();
        let added = if conditions.is_empty() {
            ctx.add_rule(rule.action, rule.syscall)
        } else {
            ctx.add_rule_conditional(rule.action, rule.syscall, &conditions)
        };
        added.map_err(|source| FilterError::AddRule {
            name: rule.name.clone(),
            action: rule.action,
            source,
        })?;
    }
    // runc's -ENOSYS prefix: syscalls newer than the profile are "not
    // implemented", so programs fall back to older ones.
    let mut program = crate::enosys::stub(plan.default_action, &plan.archs, &plan.profile_names);
    program.extend(program::export(&ctx)?);
    if program.len() > program::MAX_INSNS {
        return Err(ProgramError::TooLong {
            insns: program.len(),
        }
        .into());
    }
    let flags = program::load_flags(&plan.flags, plan.uses_notify);
    Ok(Filter {
        program,
        flags,
        uses_notify: plan.uses_notify,
    })
}

/// Refuses flags and actions the installed libseccomp/kernel cannot apply,
/// instead of failing later in the container process.
fn check_support(plan: &FilterPlan, api: &ApiSupport) -> Result<(), FilterError> {
    let flag_err = |flag: &'static str| FilterError::UnsupportedFlag {
        flag,
        libseccomp: api.version.clone(),
        api: api.level,
    };
    let f = &plan.flags;
    if f.tsync && !api.tsync {
        return Err(flag_err("SECCOMP_FILTER_FLAG_TSYNC"));
    }
    // TSYNC together with NOTIFY needs SECCOMP_FILTER_FLAG_TSYNC_ESRCH (API 6).
    if f.tsync && plan.uses_notify && api.level < 6 {
        return Err(flag_err("SECCOMP_FILTER_FLAG_TSYNC"));
    }
    if f.log && !api.log {
        return Err(flag_err("SECCOMP_FILTER_FLAG_LOG"));
    }
    if f.spec_allow && !api.spec_allow {
        return Err(flag_err("SECCOMP_FILTER_FLAG_SPEC_ALLOW"));
    }
    if f.wait_killable_recv && !api.wait_killable_recv {
        return Err(flag_err("SECCOMP_FILTER_FLAG_WAIT_KILLABLE_RECV"));
    }
    let action_err = |action: &'static str| FilterError::UnsupportedAction {
        action,
        libseccomp: api.version.clone(),
        api: api.level,
    };
    let actions = std::iter::once(plan.default_action).chain(plan.rules.iter().map(|r| r.action));
    for action in actions {
        match action {
            ScmpAction::KillProcess if !api.kill_process => {
                return Err(action_err("SCMP_ACT_KILL_PROCESS"))
            }
            ScmpAction::Log if !api.log_action => return Err(action_err("SCMP_ACT_LOG")),
            ScmpAction::Notify if !api.notify => return Err(action_err("SCMP_ACT_NOTIFY")),
            _ => {}
        }
    }
    Ok(())
}
