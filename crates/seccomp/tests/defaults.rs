//! The secure defaults (no root needed).

use berth_seccomp::compile;
use berth_seccomp::defaults::{
    capability_set, default_profile, harden, masked_paths, profile_for_capabilities,
    readonly_paths, HardenOptions, DEFAULT_CAPABILITIES,
};
use berth_seccomp::plan::plan;
use libseccomp::ScmpAction;
use oci_spec::runtime::{Capability, Spec};

/// The action the profile gives `name` when it is called without argument
/// conditions mattering (first plain rule wins; None = default action).
fn plain_action(profile: &oci_spec::runtime::LinuxSeccomp, name: &str) -> Option<ScmpAction> {
    let p = plan(profile).expect("plan");
    p.rules
        .iter()
        .find(|r| r.name == name && r.conditions.is_empty())
        .map(|r| r.action)
}

#[test]
fn default_profile_parses_and_compiles() {
    let profile = default_profile();
    let p = plan(&profile).expect("plan");
    assert_eq!(p.default_action, ScmpAction::Errno(libc::ENOSYS));
    assert!(p.rules.len() > 300, "{} rules", p.rules.len());
    compile(&profile).expect("default profile compiles with this libseccomp");
}

#[test]
fn default_profile_denies_dangerous_syscalls() {
    let profile = default_profile();
    for name in [
        "keyctl",
        "add_key",
        "request_key",
        "bpf",
        "perf_event_open",
        "kexec_load",
        "init_module",
        "finit_module",
        "reboot",
        "swapon",
        "settimeofday",
        "clock_settime",
        "open_by_handle_at",
        "userfaultfd",
    ] {
        assert_eq!(
            plain_action(&profile, name),
            Some(ScmpAction::Errno(libc::EPERM)),
            "{name}"
        );
    }
    let p = plan(&profile).expect("plan");
    assert!(
        !p.rules.iter().any(|r| r.name == "clone3"),
        "clone3 takes the ENOSYS default so glibc falls back to clone"
    );
    let unshare: Vec<_> = p.rules.iter().filter(|r| r.name == "unshare").collect();
    assert_eq!(
        unshare.len(),
        2,
        "allow without CLONE_NEWUSER, EPERM with it"
    );
}

#[test]
fn default_profile_allows_common_syscalls() {
    let profile = default_profile();
    for name in [
        "read", "write", "execve", "mount", "chroot", "socket", "setns",
    ] {
        assert_eq!(
            plain_action(&profile, name),
            Some(ScmpAction::Allow),
            "{name}"
        );
    }
    if cfg!(target_arch = "x86_64") {
        assert_eq!(
            plain_action(&profile, "arch_prctl"),
            Some(ScmpAction::Allow)
        );
        let archs = profile.architectures().clone().expect("archs");
        assert_eq!(archs.len(), 3, "x86_64 + x86 + x32: {archs:?}");
    }
}

#[test]
fn granted_capabilities_reopen_their_syscalls() {
    let mut caps = DEFAULT_CAPABILITIES.to_vec();
    caps.push(Capability::SysTime);
    caps.push(Capability::SysAdmin);
    caps.retain(|c| *c != Capability::SysChroot);
    let profile = profile_for_capabilities(&caps);
    assert_eq!(
        plain_action(&profile, "settimeofday"),
        Some(ScmpAction::Allow)
    );
    assert_eq!(plain_action(&profile, "bpf"), Some(ScmpAction::Allow));
    assert_eq!(plain_action(&profile, "unshare"), Some(ScmpAction::Allow));
    assert_eq!(plain_action(&profile, "clone3"), Some(ScmpAction::Allow));
    assert_eq!(
        plain_action(&profile, "chroot"),
        Some(ScmpAction::Errno(libc::EPERM))
    );
    assert_eq!(
        plain_action(&profile, "init_module"),
        Some(ScmpAction::Errno(libc::EPERM))
    );
    compile(&profile).expect("compiles");
}

#[test]
fn capability_set_applies_add_then_drop() {
    let opts = HardenOptions {
        cap_add: vec![Capability::SysAdmin, Capability::Chown],
        cap_drop: vec![Capability::NetRaw],
        ..Default::default()
    };
    let caps = capability_set(&opts);
    assert!(caps.contains(&Capability::SysAdmin));
    assert!(!caps.contains(&Capability::NetRaw));
    assert_eq!(caps.len(), DEFAULT_CAPABILITIES.len());
}

#[test]
fn harden_writes_defaults_into_spec() {
    let mut spec = Spec::default();
    harden(
        &mut spec,
        &HardenOptions {
            no_new_privileges: true,
            ..Default::default()
        },
    );
    let process = spec.process().as_ref().expect("process");
    assert_eq!(process.no_new_privileges(), Some(true));
    let caps = process.capabilities().as_ref().expect("caps");
    let bounding = caps.bounding().as_ref().expect("bounding");
    assert_eq!(bounding.len(), 14);
    assert!(bounding.contains(&Capability::AuditWrite));
    assert!(!bounding.contains(&Capability::SysAdmin));
    assert_eq!(caps.effective(), caps.bounding());
    assert_eq!(caps.permitted(), caps.bounding());
    assert!(caps.ambient().as_ref().is_some_and(|a| a.is_empty()));
    let linux = spec.linux().as_ref().expect("linux");
    assert_eq!(linux.seccomp().as_ref(), Some(&default_profile()));
    assert_eq!(linux.masked_paths().as_ref(), Some(&masked_paths()));
    assert_eq!(linux.readonly_paths().as_ref(), Some(&readonly_paths()));
    assert!(masked_paths().contains(&"/proc/kcore".to_string()));
    assert!(readonly_paths().contains(&"/proc/sysrq-trigger".to_string()));

    // The hardened spec survives a config.json round trip.
    let json = serde_json::to_string(&spec).expect("serialize");
    let back: Spec = serde_json::from_str(&json).expect("parse");
    assert_eq!(
        back.linux().as_ref().and_then(|l| l.seccomp().clone()),
        Some(default_profile())
    );
}

#[test]
fn harden_unconfined_leaves_seccomp_unset() {
    let mut spec = Spec::default();
    harden(
        &mut spec,
        &HardenOptions {
            seccomp_unconfined: true,
            ..Default::default()
        },
    );
    let linux = spec.linux().as_ref().expect("linux");
    assert!(linux.seccomp().is_none());
    assert!(linux.masked_paths().is_some());
    // no_new_privileges untouched when not asked: Spec::default() has true.
    let nnp = spec.process().as_ref().and_then(|p| p.no_new_privileges());
    assert_eq!(
        nnp,
        Spec::default()
            .process()
            .as_ref()
            .and_then(|p| p.no_new_privileges())
    );
}
