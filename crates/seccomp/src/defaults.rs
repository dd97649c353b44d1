//! Secure defaults the engine and `berth-runtime spec` apply: the default
//! seccomp profile, the default capability set and the masked / read-only
//! paths, and [`harden`] which writes them into a spec.
//!
//! `--privileged`-style containers: do not call [`harden`] at all (or set
//! [`HardenOptions::seccomp_unconfined`] to keep the other defaults); the
//! spec is then run exactly as written.
//!
//! # The default profile (`profiles/default.json`)
//!
//! Derived from containers-common's `seccomp.json` (the profile podman ships;
//! Debian package `golang-github-containers-common-dev` 0.50.1), written as an
//! OCI `linux.seccomp` object with the conditional parts resolved:
//!
//! - default action ERRNO(ENOSYS) as in podman, so unknown new syscalls fail
//!   the way an older kernel would and libcs fall back;
//! - capability-conditional groups are resolved for [`DEFAULT_CAPABILITIES`]:
//!   `chroot` and `socket` (CAP_SYS_CHROOT, CAP_AUDIT_WRITE) are allowed; the
//!   groups of capabilities outside the set (CAP_SYS_ADMIN, CAP_SYS_MODULE,
//!   CAP_SYS_TIME, CAP_SYS_PTRACE, CAP_SYS_RAWIO, CAP_SYS_PACCT,
//!   CAP_SYS_TTY_CONFIG, CAP_DAC_READ_SEARCH) are ERRNO(EPERM);
//!   [`profile_for_capabilities`] re-opens a group when its capability is
//!   granted;
//! - architecture-conditional syscalls are added in code for the build's
//!   architecture (x86_64: `arch_prctl`, `modify_ldt`; aarch64: the 32-bit arm
//!   ones), and `architectures` is the native one plus its 32-bit
//!   companions (x86_64: X86 + X32; aarch64: ARM), as podman's `archMap` does.
//!
//! Stricter than podman, as Docker's default profile is:
//! - `keyctl`, `add_key`, `request_key` are EPERM (the kernel keyring is not
//!   namespaced) and `reboot` is EPERM without CAP_SYS_BOOT;
//! - `clone` and `unshare` are allowed only without CLONE_NEWUSER (EPERM with
//!   it): creating a user namespace needs no capability and would hand the
//!   container a full capability set over a fresh namespace; the other
//!   namespace flags stay allowed because the kernel already requires
//!   CAP_SYS_ADMIN for them;
//! - `clone3` is not listed, so it gets the ERRNO(ENOSYS) default (its flags
//!   live in memory seccomp cannot read; glibc then falls back to `clone`),
//!   unless CAP_SYS_ADMIN is granted.
//!
//! Not carried over: podman's `socket` argument rules used when
//! CAP_AUDIT_WRITE is dropped (the kernel checks that capability itself).

use std::collections::BTreeSet;

use oci_spec::runtime::{
    Arch, Capabilities, Capability, LinuxCapabilities, LinuxSeccomp, LinuxSyscall, Spec,
};

/// The embedded default profile, before arch and capability resolution.
const DEFAULT_PROFILE_JSON: &str = include_str!("../profiles/default.json");

/// Podman's / Docker's default capability set.
pub const DEFAULT_CAPABILITIES: &[Capability] = &[
    Capability::Chown,
    Capability::DacOverride,
    Capability::Fsetid,
    Capability::Fowner,
    Capability::Mknod,
    Capability::NetRaw,
    Capability::Setgid,
    Capability::Setuid,
    Capability::Setfcap,
    Capability::Setpcap,
    Capability::NetBindService,
    Capability::SysChroot,
    Capability::Kill,
    Capability::AuditWrite,
];

/// Podman's default masked paths (containers-common `DefaultMaskedPaths`).
pub fn masked_paths() -> Vec<String> {
    [
        "/proc/acpi",
        "/proc/kcore",
        "/proc/keys",
        "/proc/latency_stats",
        "/proc/sched_debug",
        "/proc/scsi",
        "/proc/timer_list",
        "/proc/timer_stats",
        "/sys/dev/block",
        "/sys/devices/virtual/powercap",
        "/sys/firmware",
        "/sys/fs/selinux",
    ]
    .iter()
    .map(|s| (*s).to_owned())
    .collect()
}

/// Podman's default read-only paths (containers-common `DefaultReadOnlyPaths`).
pub fn readonly_paths() -> Vec<String> {
    [
        "/proc/asound",
        "/proc/bus",
        "/proc/fs",
        "/proc/irq",
        "/proc/sys",
        "/proc/sysrq-trigger",
    ]
    .iter()
    .map(|s| (*s).to_owned())
    .collect()
}

/// Syscalls denied (EPERM) unless the capability is granted; from podman's
/// `excludes.caps` groups, plus `reboot` for CAP_SYS_BOOT as Docker does.
const CAP_GATED: &[(Capability, &[&str])] = &[
    (Capability::DacReadSearch, &["open_by_handle_at"]),
    (
        Capability::SysAdmin,
        &[
            "bpf",
            "fanotify_init",
            "lookup_dcookie",
            "perf_event_open",
            "quotactl",
            "setdomainname",
            "sethostname",
        ],
    ),
    (
        Capability::SysModule,
        &[
            "delete_module",
            "finit_module",
            "init_module",
            "query_module",
        ],
    ),
    (Capability::SysPacct, &["acct"]),
    (Capability::SysPtrace, &["kcmp", "process_madvise"]),
    (Capability::SysRawio, &["ioperm", "iopl"]),
    (
        Capability::SysTime,
        &["clock_settime", "clock_settime64", "settimeofday", "stime"],
    ),
    (Capability::SysTtyConfig, &["vhangup"]),
    (Capability::SysBoot, &["reboot"]),
];

/// Allowed only while the capability is held (podman `includes.caps`).
const CAP_REQUIRED: &[(Capability, &[&str])] = &[(Capability::SysChroot, &["chroot"])];

/// Syscalls that only exist on, or are only needed for, the build's
/// architecture family (podman `includes.arches`).
fn arch_syscalls() -> &'static [&'static str] {
    if cfg!(target_arch = "aarch64") {
        &[
            "arm_fadvise64_64",
            "arm_sync_file_range",
            "breakpoint",
            "cacheflush",
            "set_tls",
            "sync_file_range2",
        ]
    } else if cfg!(target_arch = "x86_64") {
        &["arch_prctl", "modify_ldt"]
    } else {
        &[]
    }
}

/// Native architecture plus the 32-bit ones the same kernel runs (podman
/// `archMap`), so 32-bit syscall tables get the same rules instead of being a
/// way around them.
fn arch_list() -> Vec<Arch> {
    if cfg!(target_arch = "aarch64") {
        vec![Arch::ScmpArchAarch64, Arch::ScmpArchArm]
    } else if cfg!(target_arch = "x86_64") {
        vec![Arch::ScmpArchX86_64, Arch::ScmpArchX86, Arch::ScmpArchX32]
    } else {
        vec![Arch::ScmpArchNative]
    }
}

fn embedded_profile() -> LinuxSeccomp {
    serde_json::from_str(DEFAULT_PROFILE_JSON)
        .expect("profiles/default.json is valid (checked by the default_profile_parses test)")
}

/// The default profile for [`DEFAULT_CAPABILITIES`].
pub fn default_profile() -> LinuxSeccomp {
    profile_for_capabilities(DEFAULT_CAPABILITIES)
}

fn is_plain(entry: &LinuxSyscall, action: oci_spec::runtime::LinuxSeccompAction) -> bool {
    entry.action() == action && entry.args().as_ref().is_none_or(|a| a.is_empty())
}

/// The default profile adjusted for a capability set: a granted capability
/// re-opens the syscalls it guards (as podman's `includes.caps` do);
/// CAP_SYS_ADMIN also lifts the CLONE_NEWUSER and `clone3` restrictions.
pub fn profile_for_capabilities(caps: &[Capability]) -> LinuxSeccomp {
    use oci_spec::runtime::LinuxSeccompAction as A;
    let has = |c: Capability| caps.contains(&c);
    let mut profile = embedded_profile();
    let mut to_allow: BTreeSet<String> = arch_syscalls().iter().map(|s| (*s).to_owned()).collect();
    let mut to_deny: BTreeSet<String> = BTreeSet::new();
    for (cap, names) in CAP_GATED {
        if has(*cap) {
            to_allow.extend(names.iter().map(|s| (*s).to_owned()));
        }
    }
    for (cap, names) in CAP_REQUIRED {
        if !has(*cap) {
            to_deny.extend(names.iter().map(|s| (*s).to_owned()));
        }
    }
    let sys_admin = has(Capability::SysAdmin);
    if sys_admin {
        to_allow.extend(["clone", "unshare", "clone3"].map(str::to_owned));
    }

    let mut syscalls = profile.syscalls().clone().unwrap_or_default();
    // With CAP_SYS_ADMIN the argument rules on clone/unshare go; the names
    // (and clone3) join the plain allow list below.
    if sys_admin {
        syscalls.retain(|s| {
            !s.names()
                .iter()
                .any(|n| n == "clone" || n == "unshare" || n == "clone3")
        });
    }
    for entry in &mut syscalls {
        let mut names = entry.names().clone();
        if is_plain(entry, A::ScmpActErrno) && entry.errno_ret() == Some(libc::EPERM as u32) {
            names.retain(|n| !to_allow.contains(n));
            names.extend(to_deny.iter().cloned());
        } else if is_plain(entry, A::ScmpActAllow) {
            names.retain(|n| !to_deny.contains(n));
            names.extend(to_allow.iter().cloned());
        }
        let set: BTreeSet<String> = names.into_iter().collect();
        entry.set_names(set.into_iter().collect());
    }
    syscalls.retain(|s| !s.names().is_empty());
    profile.set_syscalls(Some(syscalls));
    profile.set_architectures(Some(arch_list()));
    profile
}

/// What [`harden`] applies beyond the fixed defaults.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct HardenOptions {
    /// Set `process.noNewPrivileges` to true.
    pub no_new_privileges: bool,
    /// Capabilities added to [`DEFAULT_CAPABILITIES`] (`--cap-add`).
    pub cap_add: Vec<Capability>,
    /// Capabilities removed from the set (`--cap-drop`), applied after adds.
    pub cap_drop: Vec<Capability>,
    /// Leave `linux.seccomp` unset (`--security-opt seccomp=unconfined`).
    pub seccomp_unconfined: bool,
}

/// The capability set [`harden`] grants for `opts`, in a stable order.
pub fn capability_set(opts: &HardenOptions) -> Vec<Capability> {
    let mut caps: Vec<Capability> = DEFAULT_CAPABILITIES.to_vec();
    for c in &opts.cap_add {
        if !caps.contains(c) {
            caps.push(*c);
        }
    }
    caps.retain(|c| !opts.cap_drop.contains(c));
    caps
}

/// Writes the secure defaults into `spec`: capabilities (bounding, effective,
/// permitted; inheritable and ambient emptied), the seccomp profile matching
/// those capabilities, podman's masked and read-only paths, and
/// `noNewPrivileges` when asked. Values already in the spec for these fields
/// are replaced; everything else is left alone.
pub fn harden(spec: &mut Spec, opts: &HardenOptions) {
    let caps = capability_set(opts);
    let set: Capabilities = caps.iter().copied().collect();

    let mut process = spec.process().clone().unwrap_or_default();
    let mut linux_caps = LinuxCapabilities::default();
    linux_caps.set_bounding(Some(set.clone()));
    linux_caps.set_effective(Some(set.clone()));
    linux_caps.set_permitted(Some(set));
    linux_caps.set_inheritable(Some(Capabilities::new()));
    linux_caps.set_ambient(Some(Capabilities::new()));
    process.set_capabilities(Some(linux_caps));
    if opts.no_new_privileges {
        process.set_no_new_privileges(Some(true));
    }
    spec.set_process(Some(process));

    let mut linux = spec.linux().clone().unwrap_or_default();
    linux.set_seccomp(if opts.seccomp_unconfined {
        None
    } else {
        Some(profile_for_capabilities(&caps))
    });
    linux.set_masked_paths(Some(masked_paths()));
    linux.set_readonly_paths(Some(readonly_paths()));
    spec.set_linux(Some(linux));
}
