//! Helpers for the root integration tests: skip reasons, unique cgroup
//! names, a Drop guard that kills the children and destroys the cgroup.

#![allow(dead_code)]

use std::io::Write;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};

use berth_cgroups::{Cgroup, Layout, Mode};
use oci_spec::runtime::LinuxResources;

pub const BUSYBOX: &str = "/bin/busybox";

/// Why this machine cannot run the live tests, if it cannot.
pub fn skip_reason() -> Option<String> {
    if !nix::unistd::geteuid().is_root() {
        return Some("needs root".into());
    }
    if !Path::new(BUSYBOX).exists() {
        return Some(format!(
            "{BUSYBOX} missing (apt-get install busybox-static)"
        ));
    }
    match Layout::detect() {
        Err(e) => Some(format!("no cgroup layout: {e}")),
        Ok(l) if l.mode != Mode::Unified => {
            for c in ["memory", "pids", "cpu", "freezer", "devices", "cpuset"] {
                if l.v1_mount(c).is_none() {
                    return Some(format!("cgroup v1 controller {c} not mounted"));
                }
            }
            None
        }
        Ok(_) => {
            let ctrls = std::fs::read_to_string("/sys/fs/cgroup/cgroup.subtree_control")
                .unwrap_or_default();
            for c in ["memory", "pids", "cpu"] {
                if !ctrls.split_whitespace().any(|x| x == c) {
                    return Some(format!("cgroup v2 controller {c} not enabled at the root"));
                }
            }
            None
        }
    }
}

/// Prints `SKIP: <test>: <why>` and returns true when the test must skip.
/// With BERTH_CGROUPS_REQUIRE_LIVE=1 (set by scripts/cgv2-test.sh in the
/// qemu guest) a skip is a failure, so a broken guest cannot pass silently.
pub fn skip(test: &str) -> bool {
    if let Some(why) = skip_reason() {
        if std::env::var_os("BERTH_CGROUPS_REQUIRE_LIVE").is_some() {
            panic!("{test}: cannot run but BERTH_CGROUPS_REQUIRE_LIVE is set: {why}");
        }
        eprintln!("SKIP: {test}: {why}");
        return true;
    }
    false
}

pub fn is_v2() -> bool {
    Layout::detect()
        .map(|l| l.mode == Mode::Unified)
        .unwrap_or(false)
}

static N: AtomicU32 = AtomicU32::new(0);

/// A unique absolute cgroupsPath under a test parent `berth-test-<unique>`.
pub fn unique_path(test: &str) -> String {
    let n = N.fetch_add(1, Ordering::SeqCst);
    format!("/berth-test-{}-{n}-{test}/ctr", std::process::id())
}

pub fn resources(json: &str) -> LinuxResources {
    serde_json::from_str(json).expect("resources json")
}

/// A created cgroup plus the children started in it; Drop kills and
/// destroys whatever the test left.
pub struct Guard {
    pub cg: Cgroup,
    pub children: Vec<Child>,
}

impl Guard {
    pub fn new(test: &str) -> Guard {
        let path = unique_path(test);
        let mut cg = Cgroup::new(Some(&path), test).expect("resolve cgroup");
        let res = cg.create();
        // Built before checking: on failure, the unwinding drop removes
        // whatever part create made.
        let g = Guard {
            cg,
            children: Vec::new(),
        };
        if let Err(e) = res {
            panic!("create cgroup {path}: {e}");
        }
        g
    }

    /// Starts `busybox sh -c script` that first waits for a line on stdin,
    /// puts it in the cgroup, then lets it go. Returns the child's index.
    pub fn spawn_in(&mut self, script: &str) -> usize {
        let full = format!("read go; {script}");
        let mut child = Command::new(BUSYBOX)
            .args(["sh", "-c", &full])
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("spawn busybox");
        self.cg.add_process(child.id() as i32).expect("add_process");
        child
            .stdin
            .as_mut()
            .expect("stdin")
            .write_all(b"go\n")
            .expect("release child");
        self.children.push(child);
        self.children.len() - 1
    }

    pub fn pid(&self, i: usize) -> i32 {
        self.children[i].id() as i32
    }

    /// Waits for child `i`; returns (signal, exit code, stdout, stderr).
    pub fn wait(&mut self, i: usize) -> (Option<i32>, Option<i32>, String, String) {
        use std::os::unix::process::ExitStatusExt;
        let child = self.children.remove(i);
        let out = child.wait_with_output().expect("wait child");
        (
            out.status.signal(),
            out.status.code(),
            String::from_utf8_lossy(&out.stdout).into_owned(),
            String::from_utf8_lossy(&out.stderr).into_owned(),
        )
    }
}

impl Drop for Guard {
    fn drop(&mut self) {
        for c in &mut self.children {
            let _ = c.kill();
            let _ = c.wait();
        }
        let _ = self.cg.thaw();
        if let Err(e) = self.cg.destroy() {
            eprintln!("cleanup: {e}");
        }
    }
}

/// Polls `f` up to `secs` seconds (generous: loaded 2-core machines).
pub fn eventually(secs: u64, mut f: impl FnMut() -> bool) -> bool {
    let end = std::time::Instant::now() + std::time::Duration::from_secs(secs);
    while std::time::Instant::now() < end {
        if f() {
            return true;
        }
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
    f()
}

/// Directory of `controller` (v1) or the v2 directory.
pub fn dir(cg: &Cgroup, controller: &str) -> std::path::PathBuf {
    cg.dir_for(controller, "test").expect("dir").to_path_buf()
}

pub fn read(cg: &Cgroup, controller: &str, file: &str) -> String {
    let p = dir(cg, controller).join(file);
    std::fs::read_to_string(&p).unwrap_or_else(|e| panic!("read {}: {e}", p.display()))
}

/// `State:` line of /proc/<pid>/status.
pub fn proc_state(pid: i32) -> String {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .unwrap_or_default()
        .lines()
        .find(|l| l.starts_with("State:"))
        .unwrap_or("")
        .to_string()
}
