//! berth's default seccomp profile (berth_seccomp::defaults) with the
//! default capability set in a real container (issue 4): dangerous syscalls
//! fail, everyday busybox work goes on.
//!
//! Syscalls busybox has no applet for are made by a tiny static C program
//! compiled at test time (skipped, visibly, without gcc).

mod common;
use common::*;
use serde_json::Value;
use std::path::Path;
use std::process::Command;

const PROBE_C: &str = r#"
#define _GNU_SOURCE
#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <sys/syscall.h>
#include <unistd.h>
int main(int argc, char **argv) {
    for (int i = 1; i < argc; i++) {
        const char *n = argv[i];
        long r;
        errno = 0;
        if (!strcmp(n, "keyctl")) r = syscall(SYS_keyctl, 0 /* GET_KEYRING_ID */, -3 /* session */, 0, 0, 0);
        else if (!strcmp(n, "bpf")) r = syscall(SYS_bpf, 0, NULL, 0);
        else if (!strcmp(n, "perf_event_open")) r = syscall(SYS_perf_event_open, NULL, 0, -1, -1, 0);
        else if (!strcmp(n, "kexec_load")) r = syscall(SYS_kexec_load, 0, 0, NULL, 0);
        else if (!strcmp(n, "init_module")) r = syscall(SYS_init_module, NULL, 0, "");
        else { printf("%s=unknown\n", n); continue; }
        if (r < 0) printf("%s=errno%d\n", n, errno); else printf("%s=ok\n", n);
    }
    return 0;
}
"#;

const PROBED: &[&str] = &[
    "keyctl",
    "bpf",
    "perf_event_open",
    "kexec_load",
    "init_module",
];

/// Compile the probe into `rootfs/bin/sysprobe`; None (and why) without gcc.
fn build_probe(rootfs: &Path) -> Result<(), String> {
    let src = rootfs.join("../sysprobe.c");
    std::fs::write(&src, PROBE_C).expect("write probe source");
    let out = Command::new("gcc")
        .args(["-static", "-O1", "-o"])
        .arg(rootfs.join("bin/sysprobe"))
        .arg(&src)
        .output()
        .map_err(|e| format!("gcc not runnable ({e}); apt-get install gcc libc6-dev"))?;
    if !out.status.success() {
        return Err(format!(
            "gcc -static failed: {}",
            String::from_utf8_lossy(&out.stderr)
        ));
    }
    Ok(())
}

/// Does `out` have exactly this line?
fn has_line(out: &str, line: &str) -> bool {
    out.lines().any(|l| l == line)
}

fn default_caps() -> Value {
    serde_json::to_value(berth_seccomp::defaults::DEFAULT_CAPABILITIES).expect("caps serialize")
}

const SCRIPT: &str = "\
unshare -U true; echo unshare-userns=$?; \
mkdir -p /tmp/m; mount -t tmpfs none /tmp/m; echo mount=$?; \
dd if=/dev/zero of=/tmp/swap bs=1k count=64 2>/dev/null; mkswap /tmp/swap >/dev/null 2>&1; \
swapon /tmp/swap; echo swapon=$?; \
date -s '2001-01-01 00:00:00' >/dev/null 2>/tmp/date.err; \
if grep -q \"can't set date\" /tmp/date.err; then echo settime=1; else echo settime=0; fi; \
reboot -f; echo reboot=$?; \
[ -x /bin/sysprobe ] && sysprobe keyctl bpf perf_event_open kexec_load init_module; \
echo hello world | tr a-z A-Z | sed s/WORLD/BERTH/; \
mkdir /tmp/ok && rmdir /tmp/ok && echo dirs-ok; \
ls /bin | grep -c . >/dev/null && echo ls-ok; \
sleep 0.1 && echo sleep-ok; \
ps -o pid,comm | grep -q ps && echo ps-ok; \
grep Seccomp: /proc/self/status";

fn bundle(env: &Env, seccomp: bool) -> (Bundle, bool) {
    let mut b = env.bundle(&["sh", "-c", SCRIPT]);
    let caps = default_caps();
    for set in ["bounding", "effective", "permitted"] {
        b.config["process"]["capabilities"][set] = caps.clone();
    }
    if seccomp {
        b.config["linux"]["seccomp"] =
            serde_json::to_value(berth_seccomp::defaults::default_profile())
                .expect("profile serializes");
    }
    let probe = match build_probe(&b.rootfs()) {
        Ok(()) => true,
        Err(why) => {
            eprintln!("SKIP: syscall probe (keyctl, bpf, perf_event_open, kexec_load, init_module): {why}");
            false
        }
    };
    (b, probe)
}

#[test]
fn default_profile_blocks_dangerous_syscalls_and_busybox_works() {
    require_root!();
    let env = Env::new();
    let (b, probe) = bundle(&env, true);
    let o = env.run(&b, &env.id("default"));
    let out = stdout(&o) + &stderr(&o);
    assert!(o.status.success(), "{out}");
    assert!(out.contains("Seccomp:\t2"), "filter mode: {out}");
    for what in ["unshare-userns", "mount", "swapon", "settime", "reboot"] {
        assert!(
            !has_line(&out, &format!("{what}=0")),
            "{what} must fail: {out}"
        );
        assert!(out.contains(&format!("{what}=")), "{what} ran: {out}");
    }
    if probe {
        for s in PROBED {
            assert!(
                has_line(&out, &format!("{s}=errno{}", libc::EPERM)),
                "{s} fails with EPERM: {out}"
            );
        }
    }
    for okay in ["HELLO BERTH", "dirs-ok", "ls-ok", "sleep-ok", "ps-ok"] {
        assert!(
            out.contains(okay),
            "{okay:?}: busybox works under the profile: {out}"
        );
    }
}

#[test]
fn the_same_container_without_the_profile_is_less_restricted() {
    // The control run: what the profile (not the capabilities) blocks.
    require_root!();
    let env = Env::new();
    let (b, probe) = bundle(&env, false);
    let o = env.run(&b, &env.id("control"));
    let out = stdout(&o) + &stderr(&o);
    assert!(out.contains("Seccomp:\t0"), "no filter: {out}");
    if probe {
        assert!(
            out.contains("keyctl=ok"),
            "keyctl works without the profile: {out}"
        );
        assert!(
            !has_line(&out, &format!("perf_event_open=errno{}", libc::EPERM)),
            "perf_event_open with a NULL attr fails with EFAULT, not EPERM, without the profile: {out}"
        );
    }
    let userns = std::fs::read_to_string("/proc/sys/user/max_user_namespaces").unwrap_or_default();
    if userns.trim() != "0" {
        assert!(
            out.contains("unshare-userns=0"),
            "a user namespace is allowed without the profile: {out}"
        );
    }
    assert!(out.contains("HELLO BERTH"), "{out}");
}

#[test]
fn default_profile_json_round_trips_through_config() {
    // The serialized profile is what a user would put in config.json.
    let v = serde_json::to_value(berth_seccomp::defaults::default_profile()).expect("serialize");
    assert_eq!(
        v["defaultAction"], "SCMP_ACT_ERRNO",
        "{}",
        v["defaultAction"]
    );
    assert!(v["syscalls"].as_array().is_some_and(|a| a.len() > 3));
    let back: oci_spec::runtime::LinuxSeccomp =
        serde_json::from_value(v.clone()).expect("parses back");
    assert_eq!(serde_json::to_value(&back).expect("again"), v);
}
