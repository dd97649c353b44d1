//! A dockerd of the test's own, for the API tests that hold berth's
//! service to what a real dockerd does (included with `#[path]` by the
//! test files that need it, beside `mod callers_support`).

#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::process::Command;

use crate::callers_support;

/// A dockerd of the test's own: data, exec root, pidfile and socket in a
/// temp dir, its own network and mount namespaces (an empty tmpfs on
/// /etc/docker, where dockerd 20.10 writes its key), no iptables, a
/// cgroup parent of the test's; stopped by pid on drop.
pub struct PrivateDockerd {
    dir: tempfile::TempDir,
    daemon: Option<callers_support::Daemon>,
    _cgroup: callers_support::CgroupParent,
}

impl PrivateDockerd {
    pub fn start() -> Result<PrivateDockerd, String> {
        PrivateDockerd::start_with_bridge("--bridge=none")
    }

    /// [`PrivateDockerd::start`] with `bridge` for its default network:
    /// `--bridge=none` (none), or `--bip=ADDR/LEN` (a docker0 in its own
    /// network namespace).
    pub fn start_with_bridge(bridge: &str) -> Result<PrivateDockerd, String> {
        let dockerd =
            callers_support::find_tool("dockerd", &["/usr/sbin/dockerd", "/usr/bin/dockerd"])
                .ok_or("dockerd is not installed (apt-get install docker.io)")?;
        if std::os::unix::net::UnixStream::connect("/run/containerd/containerd.sock").is_ok() {
            return Err("a system containerd listens on /run/containerd/containerd.sock; dockerd would use it instead of a private one".into());
        }
        if !Path::new("/etc/docker").is_dir() {
            return Err(
                "/etc/docker is missing: dockerd would create /etc/docker/key.json on the host"
                    .into(),
            );
        }
        let dir = tempfile::Builder::new()
            .prefix("berth-api-dockerd-")
            .tempdir()
            .map_err(|e| format!("temp dir: {e}"))?;
        let d = dir.path().display().to_string();
        std::fs::write(dir.path().join("daemon.json"), "{}\n").map_err(|e| e.to_string())?;
        let cgroup = callers_support::CgroupParent::new();
        let mut cmd = Command::new("unshare");
        cmd.args(["--net", "--mount", "--propagation", "private", "--", "sh", "-c"])
            .arg("ip link set lo up && mount -t tmpfs -o size=1m,mode=0755 berth-test-etc-docker /etc/docker && exec \"$@\"")
            .arg("sh")
            .arg(dockerd)
            .args([
                format!("--config-file={d}/daemon.json"),
                format!("--data-root={d}/data"),
                format!("--exec-root={d}/exec"),
                format!("--pidfile={d}/docker.pid"),
                format!("--host=unix://{d}/docker.sock"),
                bridge.into(),
                "--iptables=false".into(),
                "--ip6tables=false".into(),
                "--storage-driver=vfs".into(),
                "--exec-opt=native.cgroupdriver=cgroupfs".into(),
                format!("--cgroup-parent={}", cgroup.path),
            ]);
        let log = dir.path().join("dockerd.log");
        let daemon = callers_support::Daemon::start("dockerd", &mut cmd, &log, dir.path())
            .map_err(|e| format!("start dockerd: {e}"))?;
        let mut me = PrivateDockerd {
            dir,
            daemon: Some(daemon),
            _cgroup: cgroup,
        };
        let sock = me.sock();
        me.daemon
            .as_mut()
            .expect("set")
            .wait_socket(&sock, std::time::Duration::from_secs(90))?;
        Ok(me)
    }

    /// [`PrivateDockerd::start`], or a SKIP line (`what` says which part
    /// of the test is skipped) and `None`.
    pub fn start_or_skip(what: &str) -> Option<PrivateDockerd> {
        match PrivateDockerd::start() {
            Ok(d) => Some(d),
            Err(e) => {
                eprintln!("SKIP: {what}a private dockerd cannot run here: {e}");
                None
            }
        }
    }

    pub fn sock(&self) -> PathBuf {
        self.dir.path().join("docker.sock")
    }

    /// dockerd's network namespace (the unshare'd sh exec'd dockerd).
    pub fn netns(&self) -> PathBuf {
        let pid = self.daemon.as_ref().expect("running").child.id();
        PathBuf::from(format!("/proc/{pid}/ns/net"))
    }
}

impl Drop for PrivateDockerd {
    fn drop(&mut self) {
        if let Some(mut d) = self.daemon.take() {
            d.stop();
        }
        let left = callers_support::unmount_under(self.dir.path());
        if !left.is_empty() {
            eprintln!("cleanup: still mounted: {left:?}");
        }
    }
}
