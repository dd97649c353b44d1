//! Filters loaded for real into a child process (no root needed: the child
//! sets no_new_privs).

mod common;

use std::os::unix::process::ExitStatusExt;

use berth_seccomp::compile;
use common::{child_exit, child_prepare, describe, field, is_child, parse, report, run_child};

fn load(json: &str) {
    let filter = compile(&parse(json)).expect("compile");
    child_prepare();
    let fd = filter.load().expect("load filter");
    assert!(fd.is_none());
}

fn errno_of<T>(r: Result<T, std::io::Error>) -> String {
    match r {
        Ok(_) => "ok".into(),
        Err(e) => e
            .raw_os_error()
            .map_or_else(|| e.to_string(), |n| n.to_string()),
    }
}

#[test]
fn denied_syscall_fails_with_configured_errno() {
    if is_child() {
        load(
            r#"{"defaultAction":"SCMP_ACT_ALLOW","syscalls":[
                {"names":["getcwd"],"action":"SCMP_ACT_ERRNO","errnoRet":18}]}"#,
        );
        report("getcwd", errno_of(std::env::current_dir()));
        report("getpid", nix::unistd::getpid());
        child_exit();
    }
    let out = run_child("denied_syscall_fails_with_configured_errno", &[]);
    assert!(out.status.success(), "{}", describe(&out));
    assert_eq!(
        field(&out, "getcwd").as_deref(),
        Some("18"),
        "{}",
        describe(&out)
    );
    assert!(field(&out, "getpid").is_some(), "{}", describe(&out));
}

#[test]
fn default_errno_applies_to_unlisted_syscalls() {
    if is_child() {
        // An allow-list: only what the harness needs to print and exit.
        load(
            r#"{"defaultAction":"SCMP_ACT_ERRNO","defaultErrnoRet":95,"syscalls":[
                {"names":["write","exit","exit_group","brk","mmap","munmap","futex","rt_sigprocmask","sigaltstack","close"],
                 "action":"SCMP_ACT_ALLOW"}]}"#,
        );
        report("getcwd", errno_of(std::env::current_dir()));
        child_exit();
    }
    let out = run_child("default_errno_applies_to_unlisted_syscalls", &[]);
    assert!(out.status.success(), "{}", describe(&out));
    assert_eq!(
        field(&out, "getcwd").as_deref(),
        Some("95"),
        "{}",
        describe(&out)
    );
}

#[test]
fn argument_filter_allows_one_value_and_denies_another() {
    if is_child() {
        // socket(AF_INET6, ...) is denied with ENOMSG; AF_UNIX passes.
        load(
            r#"{"defaultAction":"SCMP_ACT_ALLOW","syscalls":[
                {"names":["socket"],"action":"SCMP_ACT_ERRNO","errnoRet":42,
                 "args":[{"index":0,"value":10,"op":"SCMP_CMP_EQ"}]},
                {"names":["personality"],"action":"SCMP_ACT_ERRNO","errnoRet":43,
                 "args":[{"index":0,"value":4294967295,"op":"SCMP_CMP_NE"}]}]}"#,
        );
        use nix::sys::socket::{socket, AddressFamily, SockFlag, SockType};
        let unix = socket(
            AddressFamily::Unix,
            SockType::Stream,
            SockFlag::SOCK_CLOEXEC,
            None,
        );
        let inet6 = socket(
            AddressFamily::Inet6,
            SockType::Stream,
            SockFlag::SOCK_CLOEXEC,
            None,
        );
        report("unix", errno_of(unix.map_err(std::io::Error::from)));
        report("inet6", errno_of(inet6.map_err(std::io::Error::from)));
        // personality(0xffffffff) only queries: allowed; any other value: denied.
        let query = nix::sys::personality::get();
        let set = nix::sys::personality::set(nix::sys::personality::Persona::empty());
        report("pers_query", errno_of(query.map_err(std::io::Error::from)));
        report("pers_set", errno_of(set.map_err(std::io::Error::from)));
        child_exit();
    }
    let out = run_child("argument_filter_allows_one_value_and_denies_another", &[]);
    assert!(out.status.success(), "{}", describe(&out));
    assert_eq!(
        field(&out, "unix").as_deref(),
        Some("ok"),
        "{}",
        describe(&out)
    );
    assert_eq!(
        field(&out, "inet6").as_deref(),
        Some("42"),
        "{}",
        describe(&out)
    );
    assert_eq!(
        field(&out, "pers_query").as_deref(),
        Some("ok"),
        "{}",
        describe(&out)
    );
    assert_eq!(
        field(&out, "pers_set").as_deref(),
        Some("43"),
        "{}",
        describe(&out)
    );
}

#[test]
fn masked_eq_matches_flag_bits() {
    if is_child() {
        // openat with O_CREAT set in flags (arg 2) is denied, whatever else is set.
        let json = format!(
            r#"{{"defaultAction":"SCMP_ACT_ALLOW","syscalls":[
                {{"names":["openat","open"],"action":"SCMP_ACT_ERRNO","errnoRet":42,
                 "args":[{{"index":2,"value":{c},"valueTwo":{c},"op":"SCMP_CMP_MASKED_EQ"}}]}}]}}"#,
            c = libc::O_CREAT
        );
        load(&json);
        let plain = std::fs::File::open("/dev/null");
        let create = std::fs::OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(false)
            .open("/dev/null");
        report("open", errno_of(plain));
        report("create", errno_of(create));
        child_exit();
    }
    let out = run_child("masked_eq_matches_flag_bits", &[]);
    assert!(out.status.success(), "{}", describe(&out));
    assert_eq!(
        field(&out, "open").as_deref(),
        Some("ok"),
        "{}",
        describe(&out)
    );
    assert_eq!(
        field(&out, "create").as_deref(),
        Some("42"),
        "{}",
        describe(&out)
    );
}

#[test]
fn kill_process_ends_the_process_with_sigsys() {
    if is_child() {
        load(
            r#"{"defaultAction":"SCMP_ACT_ALLOW","syscalls":[
                {"names":["getcwd"],"action":"SCMP_ACT_KILL_PROCESS"}]}"#,
        );
        report("loaded", 1);
        let _ = std::env::current_dir();
        report("survived", 1);
        child_exit();
    }
    let out = run_child("kill_process_ends_the_process_with_sigsys", &[]);
    assert_eq!(
        field(&out, "loaded").as_deref(),
        Some("1"),
        "{}",
        describe(&out)
    );
    assert_eq!(field(&out, "survived"), None, "{}", describe(&out));
    assert_eq!(
        out.status.signal(),
        Some(libc::SIGSYS),
        "{}",
        describe(&out)
    );
}

#[test]
fn trap_sends_sigsys() {
    if is_child() {
        load(
            r#"{"defaultAction":"SCMP_ACT_ALLOW","syscalls":[
                {"names":["getcwd"],"action":"SCMP_ACT_TRAP"}]}"#,
        );
        report("loaded", 1);
        let _ = std::env::current_dir();
        report("survived", 1);
        child_exit();
    }
    let out = run_child("trap_sends_sigsys", &[]);
    assert_eq!(
        field(&out, "loaded").as_deref(),
        Some("1"),
        "{}",
        describe(&out)
    );
    assert_eq!(
        out.status.signal(),
        Some(libc::SIGSYS),
        "{}",
        describe(&out)
    );
}

#[test]
fn filter_is_inherited_across_exec() {
    if is_child() {
        load(
            r#"{"defaultAction":"SCMP_ACT_ALLOW","syscalls":[
                {"names":["getcwd"],"action":"SCMP_ACT_ERRNO","errnoRet":18}]}"#,
        );
        let out = std::process::Command::new("/bin/busybox")
            .args(["sh", "-c", "busybox pwd; echo rc=$?"])
            .output();
        match out {
            Ok(o) => {
                report(
                    "stdout",
                    String::from_utf8_lossy(&o.stdout).replace('\n', "|"),
                );
                report(
                    "stderr",
                    String::from_utf8_lossy(&o.stderr).replace('\n', "|"),
                );
            }
            Err(e) => report("spawn", e),
        }
        child_exit();
    }
    if !std::path::Path::new("/bin/busybox").exists() {
        eprintln!("SKIP: filter_is_inherited_across_exec: /bin/busybox missing (busybox-static)");
        return;
    }
    let out = run_child("filter_is_inherited_across_exec", &[]);
    assert!(out.status.success(), "{}", describe(&out));
    let stderr = field(&out, "stderr").unwrap_or_default();
    assert!(
        stderr.contains("Invalid cross-device link") || stderr.contains("getcwd"),
        "busybox pwd must fail with EXDEV: {}",
        describe(&out)
    );
}

#[test]
fn x32_syscalls_hit_bad_arch_unless_listed() {
    if !cfg!(target_arch = "x86_64") {
        eprintln!("SKIP: x32_syscalls_hit_bad_arch_unless_listed: only on x86_64");
        return;
    }
    if is_child() {
        let with_x32 = std::env::var("WITH_X32").is_ok_and(|v| v == "1");
        let archs = if with_x32 {
            r#"["SCMP_ARCH_X86_64","SCMP_ARCH_X32"]"#
        } else {
            r#"["SCMP_ARCH_X86_64"]"#
        };
        load(&format!(
            r#"{{"defaultAction":"SCMP_ACT_ALLOW","architectures":{archs}}}"#
        ));
        let py = std::env::var("PY").expect("PY");
        // x32 getpid: __X32_SYSCALL_BIT | 39.
        let script = "import ctypes\nl=ctypes.CDLL(None,use_errno=True)\nr=l.syscall(0x40000000+39)\nprint('x32=%d/%d'%(r,ctypes.get_errno()),flush=True)";
        let out = std::process::Command::new(py).args(["-c", script]).output();
        match out {
            Ok(o) => {
                report("py_stdout", String::from_utf8_lossy(&o.stdout).trim());
                report("py_signal", format!("{:?}", o.status.signal()));
            }
            Err(e) => report("spawn", e),
        }
        child_exit();
    }
    let Some(py) = common::python3() else {
        eprintln!("SKIP: x32_syscalls_hit_bad_arch_unless_listed: no python3 with ctypes");
        return;
    };
    let py = py.to_string_lossy().to_string();
    let out = run_child(
        "x32_syscalls_hit_bad_arch_unless_listed",
        &[("PY", &py), ("WITH_X32", "0")],
    );
    assert!(out.status.success(), "{}", describe(&out));
    assert_eq!(
        field(&out, "py_signal").as_deref(),
        Some("Some(31)"),
        "x32 syscall without SCMP_ARCH_X32 must be killed: {}",
        describe(&out)
    );
    let out = run_child(
        "x32_syscalls_hit_bad_arch_unless_listed",
        &[("PY", &py), ("WITH_X32", "1")],
    );
    assert!(out.status.success(), "{}", describe(&out));
    assert_eq!(
        field(&out, "py_signal").as_deref(),
        Some("None"),
        "{}",
        describe(&out)
    );
    assert!(
        field(&out, "py_stdout").is_some_and(|s| s.starts_with("x32=")),
        "{}",
        describe(&out)
    );
}

#[test]
fn tsync_flag_applies_the_filter_to_other_threads() {
    if is_child() {
        let (go_tx, go_rx) = std::sync::mpsc::channel::<()>();
        let other = std::thread::spawn(move || {
            go_rx.recv().expect("go");
            errno_of(std::env::current_dir())
        });
        load(
            r#"{"defaultAction":"SCMP_ACT_ALLOW","flags":["SECCOMP_FILTER_FLAG_TSYNC","SECCOMP_FILTER_FLAG_LOG"],
                "syscalls":[{"names":["getcwd"],"action":"SCMP_ACT_ERRNO","errnoRet":18}]}"#,
        );
        go_tx.send(()).expect("send go");
        report("other_thread", other.join().expect("join"));
        child_exit();
    }
    let out = run_child("tsync_flag_applies_the_filter_to_other_threads", &[]);
    assert!(out.status.success(), "{}", describe(&out));
    assert_eq!(
        field(&out, "other_thread").as_deref(),
        Some("18"),
        "{}",
        describe(&out)
    );
}

#[test]
fn syscalls_newer_than_the_profile_get_enosys() {
    // dockerd 20.10's default profile, as dockerd wrote it (profiles/).
    const DOCKER: &str = include_str!("profiles/docker-20.10.json");
    if is_child() {
        let permissive = std::env::var("PERMISSIVE").is_ok_and(|v| v == "1");
        if permissive {
            // Allow by default: nothing is rewritten.
            load(
                r#"{"defaultAction":"SCMP_ACT_ALLOW","syscalls":[{"names":["acct"],"action":"SCMP_ACT_ERRNO","errnoRet":1}]}"#,
            );
        } else {
            load(DOCKER);
        }
        let py = std::env::var("PY").expect("PY");
        // 1000: newer than any profile; acct (163): named by the profile,
        // not allowed: its default errno.
        let script = "import ctypes\nl=ctypes.CDLL(None,use_errno=True)\nfor n in (1000,163):\n    r=l.syscall(n,0)\n    print('nr%d=%d/%d'%(n,r,ctypes.get_errno()),flush=True)";
        match std::process::Command::new(py).args(["-c", script]).output() {
            Ok(o) => report(
                "py_stdout",
                String::from_utf8_lossy(&o.stdout).replace('\n', " "),
            ),
            Err(e) => report("spawn", e),
        }
        child_exit();
    }
    let Some(py) = common::python3() else {
        eprintln!("SKIP: syscalls_newer_than_the_profile_get_enosys: no python3 with ctypes");
        return;
    };
    let py = py.to_string_lossy().to_string();
    let out = run_child(
        "syscalls_newer_than_the_profile_get_enosys",
        &[("PY", &py), ("PERMISSIVE", "0")],
    );
    assert!(out.status.success(), "{}", describe(&out));
    let got = field(&out, "py_stdout").unwrap_or_default();
    assert!(
        got.contains(&format!("nr1000=-1/{}", libc::ENOSYS)),
        "{}",
        describe(&out)
    );
    assert!(
        got.contains(&format!("nr163=-1/{}", libc::EPERM)),
        "{}",
        describe(&out)
    );
    let out = run_child(
        "syscalls_newer_than_the_profile_get_enosys",
        &[("PY", &py), ("PERMISSIVE", "1")],
    );
    let got = field(&out, "py_stdout").unwrap_or_default();
    assert!(
        got.contains(&format!("nr1000=-1/{}", libc::ENOSYS)) && got.contains("nr163=-1/1"),
        "the kernel's own ENOSYS under an allowing profile: {}",
        describe(&out)
    );
}
