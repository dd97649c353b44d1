//! Support for the caller smoke tests (callers_*.rs): real podman, dockerd
//! and containerd drive `berth-runtime` the way they drive runc. Everything a
//! test starts lives under its own temp dir and its own parent cgroup, and is
//! stopped, unmounted and removed on drop, even when the test fails.
#![allow(dead_code)]

use std::io::Read;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Output, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

static COUNTER: AtomicUsize = AtomicUsize::new(0);

/// A name unique to this test process and call (lowercase: image and
/// namespace names of the callers must be).
pub fn unique(prefix: &str) -> String {
    format!(
        "{prefix}-{}-{}",
        std::process::id(),
        COUNTER.fetch_add(1, Ordering::SeqCst)
    )
}

/// Path of the cargo-built `berth-runtime` (callers exec it by this path).
pub fn runtime_bin() -> PathBuf {
    PathBuf::from(env!("CARGO_BIN_EXE_berth-runtime"))
}

/// The first of `candidates` that exists, else `name` found on PATH.
pub fn find_tool(name: &str, candidates: &[&str]) -> Option<PathBuf> {
    for c in candidates {
        let p = Path::new(c);
        if p.is_file() {
            return Some(p.to_path_buf());
        }
    }
    std::env::var_os("PATH").and_then(|paths| {
        std::env::split_paths(&paths)
            .map(|d| d.join(name))
            .find(|p| p.is_file())
    })
}

/// Root and busybox, or a visible reason to skip.
pub fn check_root_and_busybox() -> Result<(), String> {
    if !nix::unistd::geteuid().is_root() {
        return Err("needs root".into());
    }
    if !Path::new("/bin/busybox").exists() {
        return Err("/bin/busybox is missing (apt-get install busybox-static)".into());
    }
    Ok(())
}

/// Print the skip line CI counts and return from the test.
#[macro_export]
macro_rules! skip_unless {
    ($e:expr) => {
        match $e {
            Ok(v) => v,
            Err(why) => {
                eprintln!("SKIP: {}: {}", module_path!(), why);
                return;
            }
        }
    };
}

/// Fill `dir` with a busybox-static rootfs: /bin/busybox, its applets,
/// passwd/group and the directories a container expects.
pub fn busybox_rootfs(dir: &Path) {
    for d in [
        "bin", "sbin", "etc", "proc", "sys", "dev", "tmp", "root", "usr/bin", "usr/sbin", "var",
        "run",
    ] {
        std::fs::create_dir_all(dir.join(d)).expect("mkdir rootfs");
    }
    std::fs::copy("/bin/busybox", dir.join("bin/busybox")).expect("copy busybox");
    let list = Command::new("/bin/busybox")
        .arg("--list")
        .output()
        .expect("busybox --list");
    for app in String::from_utf8_lossy(&list.stdout).lines() {
        let link = dir.join("bin").join(app);
        if !link.exists() {
            std::os::unix::fs::symlink("busybox", link).expect("applet link");
        }
    }
    std::fs::write(
        dir.join("etc/passwd"),
        "root:x:0:0:root:/root:/bin/sh\nnobody:x:65534:65534:nobody:/:/bin/sh\n",
    )
    .expect("passwd");
    std::fs::write(dir.join("etc/group"), "root:x:0:\nnobody:x:65534:\n").expect("group");
}

/// `tar -C dir -cf out .` (a rootfs tarball for `podman import` / `docker import`).
pub fn tar_dir(dir: &Path, out: &Path) {
    let o = Command::new("tar")
        .arg("-C")
        .arg(dir)
        .arg("-cf")
        .arg(out)
        .arg(".")
        .output()
        .expect("run tar");
    assert!(
        o.status.success(),
        "tar failed: {}",
        String::from_utf8_lossy(&o.stderr)
    );
}

/// Run `cmd` with stdout/stderr captured in files (a detached container
/// or monitor inheriting a pipe would keep a pipe reader waiting), killing
/// it after `timeout`. Prints the command, its output and exit code.
pub fn run(label: &str, cmd: &mut Command, timeout: Duration) -> Output {
    let dir = tempfile::Builder::new()
        .prefix("berth-callers-out-")
        .tempdir()
        .expect("out dir");
    let out_path = dir.path().join("out");
    let err_path = dir.path().join("err");
    let out = std::fs::File::create(&out_path).expect("stdout file");
    let err = std::fs::File::create(&err_path).expect("stderr file");
    let start = Instant::now();
    let mut child = cmd
        .stdin(Stdio::null())
        .stdout(out)
        .stderr(err)
        .spawn()
        .unwrap_or_else(|e| panic!("{label}: cannot spawn {cmd:?}: {e}"));
    let status = wait_timeout(&mut child, timeout);
    let read = |p: &Path| {
        let mut v = Vec::new();
        if let Ok(mut f) = std::fs::File::open(p) {
            let _ = f.read_to_end(&mut v);
        }
        v
    };
    let o = Output {
        status: status.unwrap_or_else(|| {
            let _ = child.kill();
            let s = child.wait().expect("wait after kill");
            eprintln!("{label}: TIMEOUT after {timeout:?}: {cmd:?}");
            s
        }),
        stdout: read(&out_path),
        stderr: read(&err_path),
    };
    // The whole command line (long: isolation flags) only when it failed.
    let shown = if o.status.success() {
        String::new()
    } else {
        format!("\n    $ {cmd:?}")
    };
    eprintln!(
        "--- {label} ({:.1}s) exit={:?}{shown}\n    stdout: {}\n    stderr: {}",
        start.elapsed().as_secs_f64(),
        o.status.code(),
        String::from_utf8_lossy(&o.stdout).trim_end(),
        String::from_utf8_lossy(&o.stderr).trim_end()
    );
    o
}

/// Wait for `child` up to `timeout`; None when it is still running.
pub fn wait_timeout(child: &mut Child, timeout: Duration) -> Option<ExitStatus> {
    let end = Instant::now() + timeout;
    loop {
        if let Ok(Some(s)) = child.try_wait() {
            return Some(s);
        }
        if Instant::now() >= end {
            return None;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// Assert success, showing the output otherwise; returns stdout.
pub fn ok(label: &str, o: &Output) -> String {
    assert!(
        o.status.success(),
        "{label} failed ({}): {}{}",
        o.status,
        String::from_utf8_lossy(&o.stderr),
        String::from_utf8_lossy(&o.stdout)
    );
    String::from_utf8_lossy(&o.stdout).into_owned()
}

/// A daemon (dockerd, containerd) started by the test: its output goes to
/// a log file; on drop it gets SIGTERM, then SIGKILL after a grace period,
/// and helper processes it left (shims) that name `marker` on their
/// command line are killed by pid.
pub struct Daemon {
    pub name: String,
    pub child: Child,
    pub log: PathBuf,
    pub marker: PathBuf,
}

impl Daemon {
    pub fn start(
        name: &str,
        cmd: &mut Command,
        log: &Path,
        marker: &Path,
    ) -> std::io::Result<Daemon> {
        let f = std::fs::File::create(log)?;
        let child = cmd
            .stdin(Stdio::null())
            .stdout(f.try_clone()?)
            .stderr(f)
            // Own process group: a terminal's ^C goes to the test, not here.
            .process_group(0)
            .spawn()?;
        Ok(Daemon {
            name: name.into(),
            child,
            log: log.to_path_buf(),
            marker: marker.to_path_buf(),
        })
    }

    /// The daemon's log so far (for failure messages).
    pub fn log_text(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// Wait until `sock` accepts connections; Err with the log otherwise.
    pub fn wait_socket(&mut self, sock: &Path, timeout: Duration) -> Result<(), String> {
        let end = Instant::now() + timeout;
        loop {
            if std::os::unix::net::UnixStream::connect(sock).is_ok() {
                return Ok(());
            }
            if let Ok(Some(s)) = self.child.try_wait() {
                return Err(format!(
                    "{} exited ({s}) before listening; log:\n{}",
                    self.name,
                    self.log_text()
                ));
            }
            if Instant::now() >= end {
                return Err(format!(
                    "{} did not listen on {} within {timeout:?}; log:\n{}",
                    self.name,
                    sock.display(),
                    self.log_text()
                ));
            }
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    /// SIGTERM, wait, SIGKILL; then kill leftover helpers by pid.
    pub fn stop(&mut self) {
        use nix::sys::signal::{kill, Signal};
        use nix::unistd::Pid;
        let pid = Pid::from_raw(self.child.id() as i32);
        if let Ok(None) = self.child.try_wait() {
            let _ = kill(pid, Signal::SIGTERM);
            if wait_timeout(&mut self.child, Duration::from_secs(20)).is_none() {
                eprintln!(
                    "{}: still running 20s after SIGTERM, sending SIGKILL",
                    self.name
                );
                let _ = self.child.kill();
                let _ = self.child.wait();
            }
        }
        for p in pids_mentioning(&self.marker) {
            eprintln!("{}: killing leftover helper pid {p}", self.name);
            let _ = kill(Pid::from_raw(p), Signal::SIGKILL);
        }
    }
}

impl Drop for Daemon {
    fn drop(&mut self) {
        self.stop();
    }
}

/// Pids (other than ours) whose command line contains `marker`, a path
/// unique to one test (its temp dir).
pub fn pids_mentioning(marker: &Path) -> Vec<i32> {
    let needle = marker.to_string_lossy().into_owned();
    let me = std::process::id() as i32;
    let mut out = Vec::new();
    let Ok(rd) = std::fs::read_dir("/proc") else {
        return out;
    };
    for e in rd.flatten() {
        let Some(pid) = e.file_name().to_str().and_then(|s| s.parse::<i32>().ok()) else {
            continue;
        };
        if pid == me {
            continue;
        }
        if let Ok(cmdline) = std::fs::read(e.path().join("cmdline")) {
            if String::from_utf8_lossy(&cmdline)
                .replace('\0', " ")
                .contains(&needle)
            {
                out.push(pid);
            }
        }
    }
    out
}

/// Mount points at or under `prefix`, deepest (latest) first, from
/// /proc/self/mountinfo (field 5 is the mount point, octal-escaped).
pub fn mounts_under(prefix: &Path, mountinfo: &str) -> Vec<PathBuf> {
    let mut out: Vec<PathBuf> = mountinfo
        .lines()
        .filter_map(|l| l.split(' ').nth(4))
        .map(|m| PathBuf::from(unescape_mountinfo(m)))
        .filter(|m| m.starts_with(prefix))
        .collect();
    out.reverse();
    out
}

fn unescape_mountinfo(s: &str) -> String {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'\\'
            && i + 3 < b.len()
            && b[i + 1..i + 4].iter().all(|c| (b'0'..=b'7').contains(c))
        {
            let v = (b[i + 1] - b'0') * 64 + (b[i + 2] - b'0') * 8 + (b[i + 3] - b'0');
            out.push(v);
            i += 4;
        } else {
            out.push(b[i]);
            i += 1;
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// Lazily unmount everything at or under `prefix` (only the test's own
/// temp dirs are ever passed here). Returns what was left mounted.
pub fn unmount_under(prefix: &Path) -> Vec<PathBuf> {
    for _ in 0..3 {
        let info = std::fs::read_to_string("/proc/self/mountinfo").unwrap_or_default();
        let ms = mounts_under(prefix, &info);
        if ms.is_empty() {
            return ms;
        }
        for m in ms {
            if let Err(e) = nix::mount::umount2(&m, nix::mount::MntFlags::MNT_DETACH) {
                eprintln!("cleanup: umount {} failed: {e}", m.display());
            }
        }
    }
    let info = std::fs::read_to_string("/proc/self/mountinfo").unwrap_or_default();
    mounts_under(prefix, &info)
}

/// A parent cgroup owned by one test, e.g. `/berth-test-callers-12-3`;
/// removed depth-first in every hierarchy on drop.
pub struct CgroupParent {
    pub path: String,
}

impl CgroupParent {
    pub fn new() -> CgroupParent {
        CgroupParent {
            path: format!("/{}", unique("berth-test-callers")),
        }
    }

    /// Directories of this cgroup in every mounted hierarchy.
    pub fn dirs(&self) -> Vec<PathBuf> {
        let name = self.path.trim_start_matches('/');
        let mut out = vec![];
        let root = Path::new("/sys/fs/cgroup");
        if root.join("cgroup.controllers").exists() {
            out.push(root.join(name));
        } else if let Ok(rd) = std::fs::read_dir(root) {
            for e in rd.flatten() {
                let d = e.path().join(name);
                if d.is_dir() {
                    out.push(d);
                }
            }
        }
        out.retain(|d| d.is_dir());
        out
    }

    /// A file of child cgroup `child`: `v1_file` in the `v1_ctl` hierarchy,
    /// or `v2_file` on a unified (v2-only) mount; trimmed.
    pub fn read(&self, child: &str, v1_ctl: &str, v1_file: &str, v2_file: &str) -> Option<String> {
        let name = self.path.trim_start_matches('/');
        let root = Path::new("/sys/fs/cgroup");
        let p = if root.join("cgroup.controllers").exists() {
            root.join(name).join(child).join(v2_file)
        } else {
            root.join(v1_ctl).join(name).join(child).join(v1_file)
        };
        std::fs::read_to_string(p)
            .ok()
            .map(|s| s.trim().to_string())
    }

    /// Does any process still live in this cgroup tree?
    pub fn procs(&self) -> Vec<String> {
        let mut out = vec![];
        for d in self.dirs() {
            collect_procs(&d, &mut out);
        }
        out
    }
}

fn collect_procs(d: &Path, out: &mut Vec<String>) {
    if let Ok(t) = std::fs::read_to_string(d.join("cgroup.procs")) {
        for p in t.split_whitespace() {
            out.push(format!("{}:{p}", d.display()));
        }
    }
    if let Ok(rd) = std::fs::read_dir(d) {
        for e in rd.flatten() {
            if e.file_type().map(|t| t.is_dir()).unwrap_or(false) {
                collect_procs(&e.path(), out);
            }
        }
    }
}

fn remove_tree(d: &Path) {
    if let Ok(rd) = std::fs::read_dir(d) {
        for e in rd.flatten() {
            if e.file_type().map(|t| t.is_dir()).unwrap_or(false) {
                remove_tree(&e.path());
            }
        }
    }
    if let Err(e) = std::fs::remove_dir(d) {
        eprintln!("cleanup: rmdir {} failed: {e}", d.display());
    }
}

impl Drop for CgroupParent {
    fn drop(&mut self) {
        if !self.path.starts_with("/berth-test-") {
            return;
        }
        for d in self.dirs() {
            remove_tree(&d);
        }
    }
}

/// podman with everything it keeps under `dir` (configs, store on vfs,
/// runroot, tmp, network configs), cgroupfs and file events: a podman that
/// touches nothing of the host's. The caller adds `--runtime`.
pub fn isolated_podman(bin: &Path, dir: &Path) -> Command {
    let mut c = Command::new(bin);
    c.env("CONTAINERS_CONF", dir.join("containers.conf"))
        .env("CONTAINERS_STORAGE_CONF", dir.join("storage.conf"))
        .env("CONTAINERS_REGISTRIES_CONF", dir.join("registries.conf"))
        .arg("--root")
        .arg(dir.join("root"))
        .arg("--runroot")
        .arg(dir.join("runroot"))
        .arg("--tmpdir")
        .arg(dir.join("tmp"))
        .arg("--network-config-dir")
        .arg(dir.join("net"))
        .args([
            "--storage-driver",
            "vfs",
            "--cgroup-manager",
            "cgroupfs",
            "--events-backend",
            "file",
        ]);
    c
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mountinfo_is_filtered_and_unescaped() {
        let info = "36 35 98:0 / /mnt rw - ext4 /dev/x rw\n\
                    37 36 0:5 / /tmp/t\\040x/a rw - tmpfs t rw\n\
                    38 37 0:6 / /tmp/t\\040x/a/b rw - tmpfs t rw\n\
                    39 35 0:7 / /tmp/t\\040xy rw - tmpfs t rw\n";
        let m = mounts_under(Path::new("/tmp/t x"), info);
        assert_eq!(
            m,
            vec![PathBuf::from("/tmp/t x/a/b"), PathBuf::from("/tmp/t x/a")]
        );
    }
}
