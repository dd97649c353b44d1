//! Building the libseccomp filter from a [`FilterPlan`] (in the runtime's
//! parent process) and loading it (in the container process, after fork,
//! just before execve).

use std::io::{IoSlice, IoSliceMut};
use std::mem::MaybeUninit;
use std::os::fd::{AsRawFd, OwnedFd};

use libseccomp::{ScmpAction, ScmpArch, ScmpArgCompare, ScmpFilterContext};
use oci_spec::runtime::LinuxSeccomp;
use rustix::net::{RecvAncillaryBuffer, RecvAncillaryMessage, RecvFlags, SocketFlags, SocketType};

use crate::plan::{plan, FilterPlan, PlanError};
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
    #[error(
        "load seccomp filter into the kernel (the process needs no_new_privs or CAP_SYS_ADMIN)"
    )]
    Load {
        #[source]
        source: libseccomp::error::SeccompError,
    },
    #[error("get seccomp notify fd after loading the filter")]
    NotifyFd {
        #[source]
        source: libseccomp::error::SeccompError,
    },
    #[error("create the socket pair used to take ownership of the seccomp notify fd")]
    NotifyPair {
        #[source]
        source: std::io::Error,
    },
    #[error("take ownership of seccomp notify fd {fd}")]
    NotifyFdOwn {
        fd: i32,
        #[source]
        source: std::io::Error,
    },
}

/// A seccomp filter built and checked in the parent, to be loaded in the
/// container process with [`Filter::load`].
///
/// The libseccomp context lives in process memory, so a forked child can
/// load it; libseccomp's kernel probing was already done in [`compile`].
#[derive(Debug)]
pub struct Filter {
    ctx: ScmpFilterContext,
    plan: FilterPlan,
}

impl Filter {
    /// Whether loading returns a notify fd (some rule uses SCMP_ACT_NOTIFY).
    pub fn uses_notify(&self) -> bool {
        self.plan.uses_notify
    }

    /// The validated plan this filter was built from.
    pub fn plan(&self) -> &FilterPlan {
        &self.plan
    }

    /// Installs the filter on the calling thread (and on all threads with
    /// `SECCOMP_FILTER_FLAG_TSYNC`), returning the notify fd (close-on-exec)
    /// when a NOTIFY rule exists.
    ///
    /// The caller must already have set no_new_privs (`process.noNewPrivileges`)
    /// or hold CAP_SYS_ADMIN: this crate does not set the bit on its own.
    /// Syscalls made after the kernel has the filter: `recvmsg`, `sendmsg`
    /// and `close` (only with NOTIFY, to take ownership of the notify fd).
    pub fn load(&self) -> Result<Option<OwnedFd>, FilterError> {
        // Made before the filter is in place, so a profile denying
        // socketpair cannot break the notify hand-off.
        let pair = if self.plan.uses_notify {
            Some(
                rustix::net::socketpair(
                    rustix::net::AddressFamily::UNIX,
                    SocketType::STREAM,
                    SocketFlags::CLOEXEC,
                    None,
                )
                .map_err(|e| FilterError::NotifyPair { source: e.into() })?,
            )
        } else {
            None
        };
        self.ctx
            .load()
            .map_err(|source| FilterError::Load { source })?;
        let Some((a, b)) = pair else {
            return Ok(None);
        };
        let raw = self
            .ctx
            .get_notify_fd()
            .map_err(|source| FilterError::NotifyFd { source })?;
        own_raw_fd(raw, &a, &b).map(Some)
    }
}

/// Turns libseccomp's raw notify fd into an [`OwnedFd`] without `unsafe`:
/// the number goes through SCM_RIGHTS (nix takes raw fds) and comes back as a
/// new descriptor owned by us (rustix hands out `OwnedFd`).
fn own_raw_fd(raw: i32, a: &OwnedFd, b: &OwnedFd) -> Result<OwnedFd, FilterError> {
    let err = |source: std::io::Error| FilterError::NotifyFdOwn { fd: raw, source };
    let fds = [raw];
    let cmsg = [nix::sys::socket::ControlMessage::ScmRights(&fds)];
    nix::sys::socket::sendmsg::<()>(
        a.as_raw_fd(),
        &[IoSlice::new(b"f")],
        &cmsg,
        nix::sys::socket::MsgFlags::empty(),
        None,
    )
    .map_err(|e| err(e.into()))?;
    let mut space = [MaybeUninit::uninit(); rustix::cmsg_space!(ScmRights(1))];
    let mut control = RecvAncillaryBuffer::new(&mut space);
    let mut byte = [0u8; 1];
    rustix::net::recvmsg(
        b,
        &mut [IoSliceMut::new(&mut byte)],
        &mut control,
        RecvFlags::CMSG_CLOEXEC,
    )
    .map_err(|e| err(e.into()))?;
    for message in control.drain() {
        if let RecvAncillaryMessage::ScmRights(mut fds) = message {
            if let Some(fd) = fds.next() {
                return Ok(fd);
            }
        }
    }
    Err(err(std::io::Error::other(
        "no descriptor came back over the socket pair",
    )))
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

/// Builds the libseccomp context for a checked plan.
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
    Ok(Filter { ctx, plan })
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
