//! Shared support for berth's end-to-end tests: busybox bundles, a private
//! state root per test, unique container IDs and cgroups under a parent
//! cgroup that the test owns, and cleanup even when a test fails.
#![allow(dead_code)]

pub mod cri;
pub mod differential;
pub mod podman;
pub mod registry;
pub mod rootless;
pub mod rootless_engine;
pub mod userns;

// Not every test file uses them.
#[allow(unused_imports)]
pub use registry::{archive_top_layer, Registry};

use serde_json::{json, Value};
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};

static COUNTER: AtomicUsize = AtomicUsize::new(0);

/// Path of the built `berth-runtime`.
pub fn runtime_bin() -> PathBuf {
    PathBuf::from(env!("CARGO_BIN_EXE_berth-runtime"))
}

/// A name unique to this test process and call.
pub fn unique(prefix: &str) -> String {
    format!(
        "{prefix}-{}-{}",
        std::process::id(),
        COUNTER.fetch_add(1, Ordering::SeqCst)
    )
}

/// Is this test running as root (integration tests need it)?
pub fn is_root() -> bool {
    nix::unistd::geteuid().is_root()
}

/// Skip (with a visible reason) unless root and busybox are there.
#[macro_export]
macro_rules! require_root {
    () => {
        if !common::is_root() {
            eprintln!("SKIP: {} needs root", module_path!());
            return;
        }
        if !std::path::Path::new("/bin/busybox").exists() {
            panic!("/bin/busybox is missing: apt-get install busybox-static");
        }
    };
}

/// One test's private world: a state root and a cgroup parent.
pub struct Env {
    pub state: tempfile::TempDir,
    /// Absolute cgroupsPath prefix owned by this test, e.g. /berth-test-12-3.
    pub cgroup_parent: String,
    ids: std::cell::RefCell<Vec<String>>,
}

impl Env {
    pub fn new() -> Env {
        Env {
            state: tempfile::Builder::new()
                .prefix("berth-state-")
                .tempdir()
                .expect("temp state root"),
            cgroup_parent: format!("/{}", unique("berth-test")),
            ids: Default::default(),
        }
    }

    /// A fresh container ID, deleted (forcefully) when the Env drops.
    pub fn id(&self, name: &str) -> String {
        let id = unique(name);
        self.ids.borrow_mut().push(id.clone());
        id
    }

    /// `berth-runtime --root <state> ARGS...`
    pub fn rt(&self) -> Command {
        let mut c = Command::new(runtime_bin());
        c.arg("--root").arg(self.state.path());
        c.stdin(Stdio::null());
        c
    }

    /// Run `berth-runtime ARGS` and return its output.
    pub fn rt_out(&self, args: &[&str]) -> Output {
        self.rt().args(args).output().expect("run berth-runtime")
    }

    /// A busybox bundle whose container cgroup lives under this Env.
    pub fn bundle(&self, args: &[&str]) -> Bundle {
        Bundle::busybox(args, &format!("{}/{}", self.cgroup_parent, unique("c")))
    }

    /// `run` a bundle in the foreground; returns the output.
    pub fn run(&self, b: &Bundle, id: &str) -> Output {
        b.write();
        self.rt()
            .args(["run", "--bundle"])
            .arg(b.path())
            .arg(id)
            .output()
            .expect("run berth-runtime run")
    }

    /// `create` a bundle. The container inherits stdio, so it goes to files
    /// (a pipe would keep `output()` waiting until the container exits).
    pub fn create(&self, b: &Bundle, id: &str, extra: &[&str]) -> std::process::ExitStatus {
        b.write();
        let log = std::fs::File::create(b.path().join("create.log")).expect("log file");
        self.rt()
            .args(["create", "--bundle"])
            .arg(b.path())
            .args(extra)
            .arg(id)
            .stdout(log.try_clone().expect("dup"))
            .stderr(log)
            .status()
            .expect("run berth-runtime create")
    }

    /// JSON `state` of a container.
    pub fn state(&self, id: &str) -> Value {
        let o = self.rt_out(&["state", id]);
        assert!(
            o.status.success(),
            "state {id} failed: {}",
            String::from_utf8_lossy(&o.stderr)
        );
        serde_json::from_slice(&o.stdout).expect("state is JSON")
    }
}

impl Drop for Env {
    fn drop(&mut self) {
        for id in self.ids.borrow().iter() {
            let _ = self.rt().args(["delete", "--force", id]).output();
        }
        // Remove the test's parent cgroup in every hierarchy (children were
        // removed by delete; only berth-test-* directories are touched).
        let name = self.cgroup_parent.trim_start_matches('/');
        if name.starts_with("berth-test-") {
            if let Ok(rd) = std::fs::read_dir("/sys/fs/cgroup") {
                for e in rd.flatten() {
                    let _ = std::fs::remove_dir(e.path().join(name));
                }
            }
            let _ = std::fs::remove_dir(Path::new("/sys/fs/cgroup").join(name));
        }
    }
}

/// An OCI bundle with a busybox-static rootfs.
pub struct Bundle {
    pub dir: tempfile::TempDir,
    pub config: Value,
}

impl Bundle {
    /// Rootfs with /bin/busybox and its applet links; config.json from
    /// `berth-runtime spec`, not a terminal, writable root, running `args`.
    pub fn busybox(args: &[&str], cgroups_path: &str) -> Bundle {
        let dir = tempfile::Builder::new()
            .prefix("berth-bundle-")
            .tempdir()
            .expect("bundle dir");
        let rootfs = dir.path().join("rootfs");
        for d in [
            "bin", "sbin", "etc", "proc", "sys", "dev", "tmp", "root", "usr/bin", "usr/sbin", "var",
        ] {
            std::fs::create_dir_all(rootfs.join(d)).expect("mkdir rootfs");
        }
        std::fs::copy("/bin/busybox", rootfs.join("bin/busybox")).expect("copy busybox");
        let list = Command::new("/bin/busybox")
            .arg("--list")
            .output()
            .expect("busybox --list");
        for app in String::from_utf8_lossy(&list.stdout).lines() {
            let link = rootfs.join("bin").join(app);
            if !link.exists() {
                std::os::unix::fs::symlink("busybox", link).expect("applet link");
            }
        }
        std::fs::write(
            rootfs.join("etc/passwd"),
            "root:x:0:0:root:/root:/bin/sh\nnobody:x:65534:65534:nobody:/:/bin/sh\n",
        )
        .expect("passwd");
        std::fs::write(rootfs.join("etc/group"), "root:x:0:\nnobody:x:65534:\n").expect("group");
        let o = Command::new(runtime_bin())
            .args(["spec", "--bundle"])
            .arg(dir.path())
            .output()
            .expect("berth-runtime spec");
        assert!(
            o.status.success(),
            "spec failed: {}",
            String::from_utf8_lossy(&o.stderr)
        );
        let text = std::fs::read_to_string(dir.path().join("config.json")).expect("config");
        let mut config: Value = serde_json::from_str(&text).expect("config JSON");
        config["process"]["terminal"] = json!(false);
        config["process"]["args"] = json!(args);
        config["root"]["readonly"] = json!(false);
        config["linux"]["cgroupsPath"] = json!(cgroups_path);
        let b = Bundle { dir, config };
        b.write();
        b
    }

    pub fn path(&self) -> &Path {
        self.dir.path()
    }

    pub fn rootfs(&self) -> PathBuf {
        self.dir.path().join("rootfs")
    }

    /// Write config.json from `self.config`.
    pub fn write(&self) {
        std::fs::write(
            self.dir.path().join("config.json"),
            serde_json::to_vec_pretty(&self.config).expect("serialize"),
        )
        .expect("write config.json");
    }
}

/// stdout as a String.
/// Prints what a command (`what`) gave: its status, stdout and stderr.
pub fn log_output(what: &str, o: &Output) {
    eprintln!(
        "{what} -> {}\nstdout: {}\nstderr: {}",
        o.status,
        stdout(o),
        stderr(o)
    );
}

pub fn stdout(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

/// stderr as a String.
pub fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

/// Assert success, showing stderr otherwise.
pub fn ok(o: &Output) -> String {
    assert!(
        o.status.success(),
        "command failed ({}): {}{}",
        o.status,
        stderr(o),
        stdout(o)
    );
    stdout(o)
}

// ---- Helpers added for the runtime end-to-end suites (runtime_*.rs) ----

/// Build a busybox bundle running `args`, let `edit` change its config,
/// `run` it in the foreground and return the output.
pub fn run_with(env: &Env, args: &[&str], edit: impl FnOnce(&mut Bundle)) -> Output {
    let mut b = env.bundle(args);
    edit(&mut b);
    env.run(&b, &env.id("t"))
}

/// Like `run_with`, asserting success and returning stdout.
pub fn run_ok(env: &Env, args: &[&str], edit: impl FnOnce(&mut Bundle)) -> String {
    ok(&run_with(env, args, edit))
}

/// The host's mount table (this process's view) as lines.
pub fn host_mounts() -> Vec<String> {
    std::fs::read_to_string("/proc/self/mountinfo")
        .expect("read mountinfo")
        .lines()
        .map(str::to_owned)
        .collect()
}

/// Host mount lines that mention `needle` (a path of a test's temp dir).
pub fn host_mounts_under(needle: &Path) -> Vec<String> {
    let n = needle.to_string_lossy().into_owned();
    host_mounts()
        .into_iter()
        .filter(|l| l.contains(&n))
        .collect()
}

impl Env {
    /// Poll `state` until the container reaches `status` (generous timeout).
    pub fn wait_status(&self, id: &str, status: &str) -> bool {
        for _ in 0..1000 {
            let o = self.rt_out(&["state", id]);
            if o.status.success() {
                let v: Value = serde_json::from_slice(&o.stdout).unwrap_or(Value::Null);
                if v["status"] == status {
                    return true;
                }
            }
            std::thread::sleep(std::time::Duration::from_millis(20));
        }
        false
    }

    /// `create` with `--pid-file`, asserting success; returns the init pid.
    pub fn create_pid(&self, b: &Bundle, id: &str) -> i32 {
        let pidfile = b.path().join("init.pid");
        let st = self.create(
            b,
            id,
            &["--pid-file", pidfile.to_str().expect("utf-8 path")],
        );
        let log = std::fs::read_to_string(b.path().join("create.log")).unwrap_or_default();
        assert!(st.success(), "create {id} failed: {log}");
        std::fs::read_to_string(&pidfile)
            .expect("pid file")
            .trim()
            .parse()
            .expect("pid file holds a number")
    }

    /// Cgroup directories named after this Env's parent that still exist in
    /// any hierarchy (for checks that nothing is left behind).
    pub fn cgroup_leftovers(&self, leaf: &str) -> Vec<PathBuf> {
        let rel = leaf.trim_start_matches('/');
        let mut found = Vec::new();
        if let Ok(rd) = std::fs::read_dir("/sys/fs/cgroup") {
            for e in rd.flatten() {
                let p = e.path().join(rel);
                if p.exists() {
                    found.push(p);
                }
            }
        }
        found
    }
}

impl Bundle {
    /// The config's cgroupsPath.
    pub fn cgroups_path(&self) -> String {
        self.config["linux"]["cgroupsPath"]
            .as_str()
            .expect("cgroupsPath")
            .to_owned()
    }
}

/// Read a text file, or "" when it does not exist.
pub fn read_or_empty(p: impl AsRef<Path>) -> String {
    std::fs::read_to_string(p).unwrap_or_default()
}

// ---- Helpers added for the resource-control and seccomp suites
// (cgroups_*.rs, seccomp_*.rs) ----

/// Is this host's cgroup layout v1 or hybrid (controllers mounted one per
/// directory under /sys/fs/cgroup, e.g. /sys/fs/cgroup/memory)?
pub fn cgroup_v1_host() -> bool {
    Path::new("/sys/fs/cgroup/memory/memory.limit_in_bytes").exists()
}

/// Skip (with a visible reason) unless root, busybox and cgroup v1
/// controllers are there (the v2 variants run in scripts/cgv2-runtime-test.sh).
#[macro_export]
macro_rules! require_root_v1 {
    () => {
        require_root!();
        if !common::cgroup_v1_host() {
            eprintln!(
                "SKIP: {} checks cgroup v1 files; this host has no v1 memory controller (v2 is covered by cgroups_v2_qemu)",
                module_path!()
            );
            return;
        }
    };
}

/// The host directory of a bundle's cgroup for a v1 controller.
pub fn host_cgroup_dir(b: &Bundle, controller: &str) -> PathBuf {
    Path::new("/sys/fs/cgroup")
        .join(controller)
        .join(b.cgroups_path().trim_start_matches('/'))
}

/// A cgroup file of a bundle's container on the host, trimmed.
pub fn host_cgroup_read(b: &Bundle, controller: &str, file: &str) -> String {
    let p = host_cgroup_dir(b, controller).join(file);
    std::fs::read_to_string(&p)
        .unwrap_or_else(|e| panic!("read {}: {e}", p.display()))
        .trim()
        .to_owned()
}

/// Poll `f` (every 50 ms) until it returns Some, or panic naming `what`
/// after `secs` seconds (generous: the CI machine is small and loaded).
pub fn wait_for<T>(what: &str, secs: u64, mut f: impl FnMut() -> Option<T>) -> T {
    let end = std::time::Instant::now() + std::time::Duration::from_secs(secs);
    loop {
        if let Some(v) = f() {
            return v;
        }
        assert!(
            std::time::Instant::now() < end,
            "timed out after {secs}s waiting for {what}"
        );
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
}

impl Env {
    /// `create` (pid file, asserting success) then `start`; returns the
    /// init pid. The container's stdout/stderr go to `create.log`.
    pub fn create_and_start(&self, b: &Bundle, id: &str) -> i32 {
        let pid = self.create_pid(b, id);
        ok(&self.rt_out(&["start", id]));
        pid
    }
}

impl Bundle {
    /// What the container wrote to stdout/stderr so far (after `create`).
    pub fn log(&self) -> String {
        read_or_empty(self.path().join("create.log"))
    }

    /// Wait until the container's output contains `marker`; returns it all.
    pub fn wait_log(&self, marker: &str, secs: u64) -> String {
        wait_for(&format!("{marker:?} in the container output"), secs, || {
            let l = self.log();
            l.contains(marker).then_some(l)
        })
    }
}

// ---- engine (`berth`) test support -------------------------------------

/// Path of the built `berth`.
pub fn berth_bin() -> PathBuf {
    PathBuf::from(env!("CARGO_BIN_EXE_berth"))
}

/// One engine test's private world: `--root`, `--runroot` and a cgroup
/// parent of its own; on drop every container is removed (`rm -f`), stray
/// mounts under the temp dir are detached and the cgroup parent removed.
pub struct EngineEnv {
    pub dir: tempfile::TempDir,
    pub cgroup_parent: String,
    /// A network namespace made for this test: every `berth` command runs
    /// in it, so bridges, veths and nftables rules never touch the host.
    pub netns: PathBuf,
    /// Holds the namespace pin, apart from the engine's dirs (whose
    /// mounts tests check).
    _netns_dir: tempfile::TempDir,
}

impl EngineEnv {
    pub fn new() -> EngineEnv {
        let dir = tempfile::Builder::new()
            .prefix("berth-engine-")
            .tempdir()
            .expect("temp dir");
        let netns_dir = tempfile::Builder::new()
            .prefix("berth-testns-")
            .tempdir()
            .expect("temp dir");
        let netns = netns_dir.path().join("netns");
        berth_network::netns::create(&netns).expect("create the test's network namespace");
        // Like a host's: loopback up (127.0.0.1 reaches published ports).
        let lo = Command::new("nsenter")
            .arg(format!("--net={}", netns.display()))
            .args(["ip", "link", "set", "lo", "up"])
            .status()
            .expect("ip link set lo up");
        assert!(lo.success(), "bring up lo in the test namespace");
        EngineEnv {
            dir,
            cgroup_parent: format!("/{}", unique("berth-test")),
            netns,
            _netns_dir: netns_dir,
        }
    }

    /// Runs `program` inside the test's network namespace.
    pub fn in_netns(&self, program: impl AsRef<std::ffi::OsStr>) -> Command {
        let mut c = Command::new("nsenter");
        c.arg(format!("--net={}", self.netns.display()))
            .arg("--")
            .arg(program);
        // Subordinate id files of the test's own: a container in a user
        // namespace (the default for root) never touches /etc/subuid.
        c.env("BERTH_SUBUID_FILE", self.dir.path().join("subuid"))
            .env("BERTH_SUBGID_FILE", self.dir.path().join("subgid"));
        c
    }

    pub fn root(&self) -> PathBuf {
        self.dir.path().join("root")
    }

    pub fn runroot(&self) -> PathBuf {
        self.dir.path().join("run")
    }

    /// A `berth` command with this env's dirs and cgroup parent.
    pub fn cmd(&self) -> Command {
        self.cmd_under::<&str>(&[])
    }

    /// [`EngineEnv::cmd`] run by `wrapper`, a program and its arguments
    /// (strace's, say): `WRAPPER... berth --root ...` in the namespace.
    pub fn cmd_under<S: AsRef<std::ffi::OsStr>>(&self, wrapper: &[S]) -> Command {
        let mut c = match wrapper.split_first() {
            Some((prog, rest)) => {
                let mut c = self.in_netns(prog);
                c.args(rest).arg(berth_bin());
                c
            }
            None => self.in_netns(berth_bin()),
        };
        c.arg("--root")
            .arg(self.root())
            .arg("--runroot")
            .arg(self.runroot())
            .arg("--cgroup-parent")
            .arg(&self.cgroup_parent)
            .stdin(Stdio::null());
        c
    }

    /// Runs `berth ARGS`, logging what happened.
    pub fn berth(&self, args: &[&str]) -> Output {
        let o = self.cmd().args(args).output().expect("run berth");
        log_output(&format!("berth {args:?}"), &o);
        o
    }

    /// `berth ARGS`, asserting success; stdout.
    pub fn ok(&self, args: &[&str]) -> String {
        ok(&self.berth(args))
    }

    /// Imports a busybox image as `localhost/bb:1` (no network) with
    /// `--cmd ["/bin/sh"]`; returns its name.
    pub fn busybox_image(&self) -> String {
        let src = self.dir.path().join("rootfs-src");
        for d in ["bin", "etc", "proc", "sys", "dev", "tmp", "root", "var"] {
            std::fs::create_dir_all(src.join(d)).expect("mkdir rootfs");
        }
        std::fs::copy("/bin/busybox", src.join("bin/busybox")).expect("copy busybox");
        let list = Command::new("/bin/busybox")
            .arg("--list")
            .output()
            .expect("busybox --list");
        for app in String::from_utf8_lossy(&list.stdout).lines() {
            let link = src.join("bin").join(app);
            if !link.exists() {
                std::os::unix::fs::symlink("busybox", link).expect("applet link");
            }
        }
        std::fs::write(
            src.join("etc/passwd"),
            "root:x:0:0:root:/root:/bin/sh\nnobody:x:65534:65534:nobody:/home/nobody:/bin/sh\n",
        )
        .expect("passwd");
        std::fs::write(src.join("etc/group"), "root:x:0:\nnobody:x:65534:\n").expect("group");
        let tar = self.dir.path().join("rootfs.tar");
        let name = "localhost/bb:1";
        self.import_tree(&src, &tar, name, &["--cmd", r#"["/bin/sh"]"#]);
        name.to_string()
    }

    /// `berth import` of the tree `src` as `name` (with `extra` flags),
    /// through the archive `tar` (numeric owners) made of it.
    pub fn import_tree(&self, src: &Path, tar: &Path, name: &str, extra: &[&str]) {
        let st = Command::new("tar")
            .arg("--numeric-owner")
            .arg("-C")
            .arg(src)
            .arg("-cf")
            .arg(tar)
            .arg(".")
            .status()
            .expect("tar");
        assert!(st.success(), "tar failed");
        let mut args = vec!["import", tar.to_str().expect("utf-8"), name];
        args.extend_from_slice(extra);
        self.ok(&args);
    }

    /// The engine's view of a container (`inspect`), or Null.
    pub fn inspect(&self, name: &str) -> Value {
        let o = self
            .cmd()
            .args(["inspect", name])
            .output()
            .expect("inspect");
        if !o.status.success() {
            return Value::Null;
        }
        serde_json::from_slice::<Value>(&o.stdout).map_or(Value::Null, |v| v[0].clone())
    }

    /// Polls `inspect` until `f` holds (generous timeout for loaded CI).
    pub fn wait_inspect(&self, name: &str, what: &str, f: impl Fn(&Value) -> bool) -> Value {
        wait_for(what, 60, || {
            let v = self.inspect(name);
            f(&v).then_some(v)
        })
    }

    /// The rules of this env's nftables table(s) (`inet berth`, or
    /// `inet berth_<hash>` for a root other than the default one), "" when
    /// there is none.
    pub fn nft_berth(&self) -> String {
        let tables = self
            .in_netns("nft")
            .args(["list", "tables"])
            .output()
            .expect("nft list tables");
        let mut out = String::new();
        for l in String::from_utf8_lossy(&tables.stdout).lines() {
            let Some(name) = l.strip_prefix("table inet ") else {
                continue;
            };
            if name == "berth" || name.starts_with("berth_") {
                let t = self
                    .in_netns("nft")
                    .args(["list", "table", "inet", name])
                    .output()
                    .expect("nft list table");
                out.push_str(&String::from_utf8_lossy(&t.stdout));
            }
        }
        out
    }

    /// Mount lines under this env's dir.
    pub fn mounts(&self) -> Vec<String> {
        host_mounts_under(self.dir.path())
    }

    /// Cgroup dirs of this env's parent still present.
    pub fn cgroup_dirs(&self) -> Vec<PathBuf> {
        let rel = self.cgroup_parent.trim_start_matches('/');
        let mut v = Vec::new();
        if let Ok(rd) = std::fs::read_dir("/sys/fs/cgroup") {
            for e in rd.flatten() {
                let p = e.path().join(rel);
                if p.exists() {
                    v.push(p);
                }
            }
        }
        let p = Path::new("/sys/fs/cgroup").join(rel);
        if p.exists() {
            v.push(p);
        }
        v
    }
}

impl Drop for EngineEnv {
    fn drop(&mut self) {
        if let Ok(o) = self.cmd().args(["ps", "-aq", "--no-trunc"]).output() {
            for id in String::from_utf8_lossy(&o.stdout).split_whitespace() {
                let _ = self.cmd().args(["rm", "-f", id]).output();
            }
        }
        let _ = self.cmd().args(["network", "prune", "-f"]).output();
        // Resolvers this test's berth started (they exit once their
        // network has no running container; make sure).
        if let Ok(rd) = std::fs::read_dir(self.runroot().join("networks")) {
            for e in rd.flatten() {
                let pid = std::fs::read_to_string(e.path().join("dns.pid")).unwrap_or_default();
                if let Some(pid) = pid
                    .split_whitespace()
                    .next()
                    .and_then(|p| p.parse::<i32>().ok())
                {
                    let _ = nix::sys::signal::kill(
                        nix::unistd::Pid::from_raw(pid),
                        nix::sys::signal::Signal::SIGKILL,
                    );
                }
            }
        }
        let mut lines = self.mounts();
        lines.reverse();
        for l in lines {
            if let Some(mp) = l.split_whitespace().nth(4) {
                let _ = nix::mount::umount2(mp, nix::mount::MntFlags::MNT_DETACH);
            }
        }
        let name = self.cgroup_parent.trim_start_matches('/');
        if name.starts_with("berth-test-") {
            for p in self.cgroup_dirs() {
                // Leaf cgroups left by a failed test first, then the parent.
                if let Ok(rd) = std::fs::read_dir(&p) {
                    for e in rd.flatten() {
                        if e.path().is_dir() {
                            let _ = std::fs::remove_dir(e.path());
                        }
                    }
                }
                let _ = std::fs::remove_dir(&p);
            }
        }
        let _ = berth_network::netns::remove(&self.netns);
    }
}

/// Removes the cgroup `/NAME` (a parent a test made) with everything below
/// it, in every v1 hierarchy and the unified one, deepest first; retries
/// for up to 3 s while a process that is ending (a peer's conmon, say)
/// still holds a directory.
pub fn remove_cgroup_tree(name: &str) {
    fn rm_tree(p: &Path) -> bool {
        if let Ok(rd) = std::fs::read_dir(p) {
            for e in rd.flatten() {
                if e.file_type().is_ok_and(|t| t.is_dir()) {
                    rm_tree(&e.path());
                }
            }
        }
        std::fs::remove_dir(p).is_ok() || !p.exists()
    }
    let name = name.trim_start_matches('/');
    if name.is_empty() {
        return;
    }
    let end = std::time::Instant::now() + std::time::Duration::from_secs(3);
    loop {
        let mut left = false;
        if let Ok(rd) = std::fs::read_dir("/sys/fs/cgroup") {
            for e in rd.flatten() {
                let p = e.path().join(name);
                if p.exists() && !rm_tree(&p) {
                    left = true;
                }
            }
        }
        if !left || std::time::Instant::now() > end {
            return;
        }
        std::thread::sleep(std::time::Duration::from_millis(100));
    }
}

/// Whether strace runs here (else a SKIP line naming the package).
pub fn have_strace() -> bool {
    let ok = Command::new("strace")
        .arg("-V")
        .output()
        .is_ok_and(|o| o.status.success());
    if !ok {
        eprintln!("SKIP: counting system calls needs strace (apt-get install strace)");
    }
    ok
}
