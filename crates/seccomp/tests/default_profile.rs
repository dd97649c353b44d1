//! The default profile loaded for real, in a child that keeps only the
//! default capability set (when run as root; without root it has none).

mod common;

use berth_seccomp::compile;
use berth_seccomp::defaults::default_profile;
use common::{
    child_exit, child_prepare, describe, drop_to_default_caps, field, is_child, report, run_child,
};

const EPERM: &str = "1";
const ENOSYS: &str = "38";

/// (name, syscall number, args, expected result) for the python helper.
/// Arguments are chosen so that nothing can happen even if a call got
/// through: the dangerous ones also fail the kernel's own checks.
fn calls(
    mount_target: &str,
) -> Vec<(
    &'static str,
    libc::c_long,
    Vec<serde_json::Value>,
    &'static str,
)> {
    use serde_json::json;
    vec![
        (
            "unshare_newuser",
            libc::SYS_unshare,
            vec![json!(libc::CLONE_NEWUSER)],
            EPERM,
        ),
        ("unshare_none", libc::SYS_unshare, vec![json!(0)], "ok"),
        (
            "mount",
            libc::SYS_mount,
            vec![
                json!("none"),
                json!(mount_target),
                json!("tmpfs"),
                json!(0),
                json!(0),
            ],
            EPERM,
        ),
        // KEYCTL_GET_KEYRING_ID of the session keyring: would succeed unfiltered.
        (
            "keyctl",
            libc::SYS_keyctl,
            vec![json!(0), json!(-3), json!(0)],
            EPERM,
        ),
        (
            "bpf",
            libc::SYS_bpf,
            vec![json!(0), json!(0), json!(0)],
            EPERM,
        ),
        (
            "perf_event_open",
            libc::SYS_perf_event_open,
            vec![json!(0), json!(0), json!(-1), json!(-1), json!(0)],
            EPERM,
        ),
        (
            "kexec_load",
            libc::SYS_kexec_load,
            vec![json!(0), json!(0), json!(0), json!(0)],
            EPERM,
        ),
        (
            "init_module",
            libc::SYS_init_module,
            vec![json!(0), json!(0), json!(0)],
            EPERM,
        ),
        // Bad magic: EINVAL even with CAP_SYS_BOOT.
        (
            "reboot",
            libc::SYS_reboot,
            vec![json!(0), json!(0), json!(0), json!(0)],
            EPERM,
        ),
        ("swapon", libc::SYS_swapon, vec![json!(0), json!(0)], EPERM),
        // NULL, NULL: a no-op that succeeds unfiltered.
        (
            "settimeofday",
            libc::SYS_settimeofday,
            vec![json!(0), json!(0)],
            EPERM,
        ),
        ("clone3", libc::SYS_clone3, vec![json!(0), json!(0)], ENOSYS),
        ("getpid", libc::SYS_getpid, vec![], "ok"),
    ]
}

const SCRIPT: &str = r#"
import ctypes, json, os
l = ctypes.CDLL(None, use_errno=True)
l.syscall.restype = ctypes.c_long
for name, nr, args in json.loads(os.environ["CALLS"]):
    cargs = [ctypes.c_char_p(a.encode()) if isinstance(a, str) else ctypes.c_long(a) for a in args]
    ctypes.set_errno(0)
    r = l.syscall(ctypes.c_long(nr), *cargs)
    print("%s=%s" % (name, "ok" if r >= 0 else ctypes.get_errno()), flush=True)
"#;

fn load_default_profile_with_default_caps() {
    let filter = compile(&default_profile()).expect("compile default profile");
    let privileged = drop_to_default_caps();
    report("privileged", privileged);
    child_prepare();
    assert!(filter.load().expect("load default profile").is_none());
}

/// Unmounts the test's mount target if a broken filter let the mount through.
struct UnmountGuard(std::path::PathBuf);
impl Drop for UnmountGuard {
    fn drop(&mut self) {
        let _ = nix::mount::umount2(&self.0, nix::mount::MntFlags::MNT_DETACH);
    }
}

#[test]
fn default_profile_denies_dangerous_syscalls() {
    if is_child() {
        load_default_profile_with_default_caps();
        let py = std::env::var("PY").expect("PY");
        match std::process::Command::new(py).args(["-c", SCRIPT]).output() {
            Ok(o) => {
                for line in String::from_utf8_lossy(&o.stdout).lines() {
                    if let Some((k, v)) = line.split_once('=') {
                        report(k, v);
                    }
                }
                report("py_status", format!("{:?}", o.status));
                report(
                    "py_stderr",
                    String::from_utf8_lossy(&o.stderr).replace('\n', "|"),
                );
            }
            Err(e) => report("spawn", e),
        }
        child_exit();
    }
    if !cfg!(target_arch = "x86_64") && !cfg!(target_arch = "aarch64") {
        eprintln!("SKIP: default_profile_denies_dangerous_syscalls: x86_64/aarch64 only");
        return;
    }
    let Some(py) = common::python3() else {
        eprintln!("SKIP: default_profile_denies_dangerous_syscalls: no python3 with ctypes");
        return;
    };
    let dir = tempfile::tempdir().expect("tempdir");
    let target = dir.path().join("mnt");
    std::fs::create_dir(&target).expect("mkdir");
    let _guard = UnmountGuard(target.clone());
    let target_str = target.to_str().expect("utf-8 path");
    let list: Vec<_> = calls(target_str)
        .into_iter()
        .map(|(n, nr, a, _)| serde_json::json!([n, nr, a]))
        .collect();
    let calls_json = serde_json::to_string(&list).expect("json");
    let out = run_child(
        "default_profile_denies_dangerous_syscalls",
        &[("PY", &py.to_string_lossy()), ("CALLS", &calls_json)],
    );
    assert!(out.status.success(), "{}", describe(&out));
    if field(&out, "privileged").as_deref() != Some("true") {
        eprintln!("note: not root; calls were made without any capability");
    }
    for (name, _, _, want) in calls(target_str) {
        assert_eq!(
            field(&out, name).as_deref(),
            Some(want),
            "{name}: {}",
            describe(&out)
        );
    }
}

#[test]
fn default_profile_runs_busybox_pipeline() {
    if is_child() {
        load_default_profile_with_default_caps();
        match std::process::Command::new("/bin/busybox")
            .args([
                "sh",
                "-c",
                "echo a | busybox wc -c; busybox ls / >/dev/null && echo ls-ok",
            ])
            .output()
        {
            Ok(o) => {
                report("out", String::from_utf8_lossy(&o.stdout).replace('\n', "|"));
                report("err", String::from_utf8_lossy(&o.stderr).replace('\n', "|"));
                report("ok", o.status.success());
            }
            Err(e) => report("spawn", e),
        }
        child_exit();
    }
    if !std::path::Path::new("/bin/busybox").exists() {
        eprintln!("SKIP: default_profile_runs_busybox_pipeline: /bin/busybox missing");
        return;
    }
    let out = run_child("default_profile_runs_busybox_pipeline", &[]);
    assert!(out.status.success(), "{}", describe(&out));
    assert_eq!(
        field(&out, "ok").as_deref(),
        Some("true"),
        "{}",
        describe(&out)
    );
    let stdout = field(&out, "out").unwrap_or_default();
    assert!(stdout.trim_start().starts_with("2|"), "{}", describe(&out));
    assert!(stdout.contains("ls-ok"), "{}", describe(&out));
}
