//! seccomp filters from config.json in real busybox containers (issue 4,
//! config-linux.md "Seccomp"): errno actions, argument filters,
//! SCMP_ACT_KILL_PROCESS, and a filter loaded without no_new_privs by a
//! process that then drops its capabilities.

mod common;
use common::*;
use serde_json::{json, Value};

/// An allow-by-default profile with `syscalls` rules.
fn profile(syscalls: Value) -> Value {
    json!({
        "defaultAction": "SCMP_ACT_ALLOW",
        "architectures": ["SCMP_ARCH_X86_64", "SCMP_ARCH_X86", "SCMP_ARCH_X32"],
        "syscalls": syscalls
    })
}

fn mkdir_denied(errno: i32) -> Value {
    profile(json!([{
        "names": ["mkdir", "mkdirat"],
        "action": "SCMP_ACT_ERRNO",
        "errnoRet": errno
    }]))
}

fn out_of(o: &std::process::Output) -> String {
    stdout(o) + &stderr(o)
}

#[test]
fn denied_syscall_fails_with_the_configured_errno() {
    require_root!();
    let env = Env::new();
    let mut b = env.bundle(&[
        "sh",
        "-c",
        "mkdir /tmp/x; echo mkdir-status=$?; [ -d /tmp/x ] || echo absent; \
         touch /tmp/f; rm /tmp/f; echo rm-status=$?; grep Seccomp: /proc/self/status",
    ]);
    let mut p = mkdir_denied(libc::EACCES);
    // unlink with the default errno (EPERM when errnoRet is absent).
    p["syscalls"]
        .as_array_mut()
        .expect("rules")
        .push(json!({"names": ["unlink", "unlinkat"], "action": "SCMP_ACT_ERRNO"}));
    b.config["linux"]["seccomp"] = p;
    let o = env.run(&b, &env.id("errno"));
    let out = out_of(&o);
    assert!(
        out.contains("mkdir-status=1") && out.contains("absent"),
        "{out}"
    );
    assert!(
        out.contains("Permission denied"),
        "mkdir fails with EACCES: {out}"
    );
    assert!(out.contains("rm-status=1"), "unlink fails: {out}");
    assert!(
        out.contains("Operation not permitted"),
        "unlink fails with EPERM: {out}"
    );
    assert!(
        out.contains("Seccomp:\t2"),
        "the process runs in filter mode: {out}"
    );
}

#[test]
fn argument_filter_allows_one_value_and_denies_another() {
    require_root!();
    let env = Env::new();
    let mut b = env.bundle(&[
        "sh",
        "-c",
        "touch /tmp/f; chmod 777 /tmp/f; echo chmod777-status=$?; \
         chmod 750 /tmp/f; echo chmod750-status=$?; stat -c mode=%a /tmp/f",
    ]);
    // Deny mode 0777 whichever chmod syscall busybox uses.
    let rule = |name: &str, index: u32| {
        json!({
            "names": [name],
            "action": "SCMP_ACT_ERRNO",
            "errnoRet": libc::EPERM,
            "args": [{"index": index, "value": 0o777, "op": "SCMP_CMP_EQ"}]
        })
    };
    b.config["linux"]["seccomp"] = profile(json!([
        rule("chmod", 1),
        rule("fchmodat", 2),
        rule("fchmodat2", 2),
        rule("fchmod", 1)
    ]));
    let o = env.run(&b, &env.id("args"));
    let out = out_of(&o);
    assert!(
        out.contains("chmod777-status=1"),
        "mode 0777 is denied: {out}"
    );
    assert!(
        out.contains("chmod750-status=0"),
        "mode 0750 is allowed: {out}"
    );
    assert!(out.contains("mode=750"), "{out}");
}

#[test]
fn kill_process_ends_the_container_with_sigsys() {
    require_root!();
    let env = Env::new();
    let mut b = env.bundle(&["uname", "-a"]);
    b.config["linux"]["seccomp"] =
        profile(json!([{"names": ["uname"], "action": "SCMP_ACT_KILL_PROCESS"}]));
    let o = env.run(&b, &env.id("kill"));
    assert_eq!(
        o.status.code(),
        Some(128 + libc::SIGSYS),
        "run exits 128+SIGSYS: {}",
        out_of(&o)
    );
    assert!(
        !stdout(&o).contains("Linux"),
        "uname printed nothing: {}",
        stdout(&o)
    );
}

#[test]
fn filter_loads_without_no_new_privs_before_caps_are_dropped() {
    require_root!();
    let env = Env::new();
    let script = "mkdir /tmp/x; echo mkdir-status=$?; grep -E '^(NoNewPrivs|Seccomp|CapEff):' /proc/self/status";
    for (user, label) in [((0, 0), "root"), ((65534, 65534), "nobody")] {
        let mut b = env.bundle(&["sh", "-c", script]);
        b.config["process"]["noNewPrivileges"] = json!(false);
        b.config["process"]["user"] = json!({"uid": user.0, "gid": user.1});
        // The default set: no CAP_SYS_ADMIN, so the filter must be loaded
        // while the runtime's child still holds it.
        let caps = b.config["process"]["capabilities"]["bounding"].clone();
        assert!(!caps.to_string().contains("SYS_ADMIN"), "{caps}");
        // ENOSPC: an answer no permission check would give.
        b.config["linux"]["seccomp"] = mkdir_denied(libc::ENOSPC);
        let o = env.run(&b, &env.id(label));
        let out = out_of(&o);
        assert!(o.status.success(), "{label}: {out}");
        assert!(
            out.contains("NoNewPrivs:\t0"),
            "{label}: no_new_privs is not set: {out}"
        );
        assert!(
            out.contains("Seccomp:\t2"),
            "{label}: the filter is loaded: {out}"
        );
        assert!(
            out.contains("mkdir-status=1") && out.contains("No space left on device"),
            "{label}: the filter applies: {out}"
        );
        if label == "nobody" {
            assert!(
                out.contains("CapEff:\t0000000000000000"),
                "{label}: caps dropped: {out}"
            );
        }
    }
}

#[test]
fn invalid_profile_is_refused_before_the_container_starts() {
    require_root!();
    let env = Env::new();
    let mut b = env.bundle(&["true"]);
    b.config["linux"]["seccomp"] =
        profile(json!([{"names": ["no_such_syscall_xyz"], "action": "SCMP_ACT_BOGUS"}]));
    let id = env.id("bad");
    let o = env.run(&b, &id);
    assert!(!o.status.success(), "an invalid action must be refused");
    assert!(
        !env.rt_out(&["state", &id]).status.success(),
        "no container is left behind"
    );
    assert!(
        env.cgroup_leftovers(&b.cgroups_path()).is_empty(),
        "no cgroup is left behind"
    );
}
