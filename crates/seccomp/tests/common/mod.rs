//! Child-process machinery for behaviour tests: a test re-executes the test
//! binary running only itself, with `CHILD_ENV` set; in that child the same
//! test function loads a filter, makes syscalls and prints what happened,
//! and the parent asserts on the output and the exit status / signal.
#![allow(dead_code)]

use std::os::unix::process::ExitStatusExt;
use std::path::PathBuf;
use std::process::{Command, Output, Stdio};
use std::sync::mpsc;
use std::time::Duration;

pub const CHILD_ENV: &str = "BERTH_SECCOMP_TEST_CHILD";

/// True in the re-executed child.
pub fn is_child() -> bool {
    std::env::var_os(CHILD_ENV).is_some()
}

/// Upper bound for one child: generous for a loaded 2-core machine; only
/// there so a broken notify hand-off fails the test instead of hanging it.
const CHILD_TIMEOUT: Duration = Duration::from_secs(180);

/// Re-runs `test_name` (the full libtest path) in a child process; kills it
/// (by its pid) if it outlives `CHILD_TIMEOUT`.
pub fn run_child(test_name: &str, extra_env: &[(&str, &str)]) -> Output {
    let exe = std::env::current_exe().expect("current test binary");
    let mut cmd = Command::new(exe);
    cmd.args([test_name, "--exact", "--nocapture", "--test-threads=1"])
        .env(CHILD_ENV, "1")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    for (k, v) in extra_env {
        cmd.env(k, v);
    }
    let child = cmd.spawn().expect("spawn test child");
    let pid = nix::unistd::Pid::from_raw(i32::try_from(child.id()).expect("pid fits i32"));
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        let _ = tx.send(child.wait_with_output());
    });
    match rx.recv_timeout(CHILD_TIMEOUT) {
        Ok(out) => out.expect("wait for test child"),
        Err(_) => {
            let _ = nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGKILL);
            let out = rx.recv().expect("child output after kill").expect("wait");
            panic!(
                "test child {test_name} timed out and was killed: {}",
                describe(&out)
            );
        }
    }
}

/// Describes the child's end for assertion messages.
pub fn describe(out: &Output) -> String {
    format!(
        "status={:?} signal={:?}\nstdout:\n{}\nstderr:\n{}",
        out.status.code(),
        out.status.signal(),
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

/// Value of `key=` in the child's stdout (lines `key=value`).
pub fn field(out: &Output, key: &str) -> Option<String> {
    let prefix = format!("{key}=");
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .find_map(|l| l.strip_prefix(&prefix).map(str::to_owned))
}

/// In the child: no core files from SIGSYS kills, then no_new_privs so an
/// unprivileged process may load a filter.
pub fn child_prepare() {
    nix::sys::resource::setrlimit(nix::sys::resource::Resource::RLIMIT_CORE, 0, 0)
        .expect("RLIMIT_CORE 0");
    nix::sys::prctl::set_no_new_privs().expect("PR_SET_NO_NEW_PRIVS");
}

/// Prints a result line and flushes (the child may be killed next).
pub fn report(key: &str, value: impl std::fmt::Display) {
    use std::io::Write;
    let mut out = std::io::stdout().lock();
    // Leading newline: libtest has printed "test name ... " without one.
    let _ = writeln!(out, "\n{key}={value}");
    let _ = out.flush();
}

/// Ends the child without returning into the test harness.
pub fn child_exit() -> ! {
    std::process::exit(0)
}

/// A python3 able to run `ctypes`, for raw syscalls without `unsafe` here.
pub fn python3() -> Option<PathBuf> {
    let candidates = ["/usr/bin/python3", "/usr/local/bin/python3"];
    let found = candidates.iter().map(PathBuf::from).find(|p| p.exists())?;
    let ok = Command::new(&found)
        .args(["-c", "import ctypes"])
        .output()
        .map(|o| o.status.success())
        .unwrap_or(false);
    ok.then_some(found)
}

pub fn parse(json: &str) -> oci_spec::runtime::LinuxSeccomp {
    berth_seccomp::parse_json(json).unwrap_or_else(|e| panic!("{e}: {json}"))
}

/// In the child, as root: keep only the default capability set in every set
/// (bounding first, while CAP_SETPCAP is still effective). Panics unless the
/// dangerous capabilities are really gone, before any test syscall is made.
/// Returns false when the process had no capabilities to begin with.
pub fn drop_to_default_caps() -> bool {
    use caps::{CapSet, Capability as C};
    use std::collections::HashSet;
    let keep: HashSet<C> = berth_seccomp::defaults::DEFAULT_CAPABILITIES
        .iter()
        .map(|c| {
            let name = serde_json::to_value(c).expect("capability name");
            name.as_str()
                .and_then(|n| n.parse::<C>().ok())
                .expect("known capability name")
        })
        .collect();
    let had = caps::read(None, CapSet::Effective).expect("read caps");
    if had.is_empty() {
        return false;
    }
    for cap in caps::read(None, CapSet::Bounding).expect("read bounding") {
        if !keep.contains(&cap) {
            caps::drop(None, CapSet::Bounding, cap).expect("drop from bounding");
        }
    }
    let _ = caps::clear(None, CapSet::Ambient);
    let inheritable: HashSet<C> = HashSet::new();
    caps::set(None, CapSet::Inheritable, &inheritable).expect("set inheritable");
    let eff: HashSet<C> = had.intersection(&keep).copied().collect();
    caps::set(None, CapSet::Effective, &eff).expect("set effective");
    caps::set(None, CapSet::Permitted, &eff).expect("set permitted");
    for danger in [
        C::CAP_SYS_ADMIN,
        C::CAP_SYS_BOOT,
        C::CAP_SYS_TIME,
        C::CAP_SYS_MODULE,
    ] {
        for set in [CapSet::Effective, CapSet::Permitted, CapSet::Bounding] {
            assert!(
                !caps::has_cap(None, set, danger).expect("has_cap"),
                "{danger} still in {set:?}; refusing to go on"
            );
        }
    }
    true
}
