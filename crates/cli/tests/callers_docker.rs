//! Docker's dockerd drives berth-runtime (`--add-runtime berth=<path>`,
//! also the default runtime) through its own managed containerd and the
//! runc shim. The daemon is private to the test: data-root, exec-root,
//! pidfile and API socket in a temp dir, no bridge, no iptables, cgroupfs
//! driver with a parent cgroup of the test's, and a private mount
//! namespace with an empty tmpfs on /etc/docker (dockerd 20.10 writes
//! /etc/docker/key.json), so its mounts vanish with it.

mod callers_support;
use callers_support::*;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

const T: Duration = Duration::from_secs(60);

/// dockerd's flags for a daemon that lives in `dir` and touches neither
/// the host network nor the machine's docker state.
fn dockerd_args(dir: &Path, runtime: &Path, cgroup_parent: &str) -> Vec<String> {
    let d = dir.display();
    vec![
        format!("--config-file={d}/daemon.json"),
        format!("--data-root={d}/data"),
        format!("--exec-root={d}/exec"),
        format!("--pidfile={d}/docker.pid"),
        format!("--host=unix://{d}/docker.sock"),
        "--bridge=none".into(),
        "--iptables=false".into(),
        "--ip6tables=false".into(),
        "--ip-masq=false".into(),
        "--userland-proxy=false".into(),
        "--storage-driver=vfs".into(),
        "--exec-opt=native.cgroupdriver=cgroupfs".into(),
        format!("--cgroup-parent={cgroup_parent}"),
        format!("--add-runtime=berth={}", runtime.display()),
        "--default-runtime=berth".into(),
    ]
}

struct Docker {
    client: PathBuf,
    dir: tempfile::TempDir,
    daemon: Option<Daemon>,
    cgroup: CgroupParent,
}

impl Docker {
    fn cmd(&self) -> Command {
        let mut c = Command::new(&self.client);
        c.env("DOCKER_CONFIG", self.dir.path().join("client"))
            .arg("--host")
            .arg(format!("unix://{}/docker.sock", self.dir.path().display()));
        c
    }

    fn run(&self, label: &str, args: &[&str]) -> std::process::Output {
        run(label, self.cmd().args(args), T)
    }

    fn berth_roots(&self) -> Vec<PathBuf> {
        let mut out = vec![];
        if let Ok(rd) = std::fs::read_dir(self.dir.path().join("exec")) {
            for e in rd.flatten() {
                if e.file_name().to_string_lossy().starts_with("runtime-") {
                    out.push(e.path().join("moby"));
                }
            }
        }
        out
    }
}

impl Drop for Docker {
    fn drop(&mut self) {
        if self.daemon.is_some() {
            let ids = self.run("cleanup: ps", &["ps", "-aq"]);
            let ids: Vec<String> = String::from_utf8_lossy(&ids.stdout)
                .split_whitespace()
                .map(String::from)
                .collect();
            if !ids.is_empty() {
                let mut args = vec!["rm", "-f"];
                args.extend(ids.iter().map(String::as_str));
                let _ = self.run("cleanup: rm -f", &args);
            }
        }
        if let Some(mut d) = self.daemon.take() {
            d.stop();
        }
        // berth state the shim left (only if something went wrong).
        for root in self.berth_roots() {
            if let Ok(rd) = std::fs::read_dir(&root) {
                for e in rd.flatten() {
                    let _ = Command::new(runtime_bin())
                        .arg("--root")
                        .arg(&root)
                        .args(["delete", "--force"])
                        .arg(e.file_name())
                        .output();
                }
            }
        }
        let left = unmount_under(self.dir.path());
        if !left.is_empty() {
            eprintln!("cleanup: still mounted: {left:?}");
        }
    }
}

fn setup() -> Result<Docker, String> {
    check_root_and_busybox()?;
    let dockerd = find_tool("dockerd", &["/usr/sbin/dockerd", "/usr/bin/dockerd"])
        .ok_or("dockerd is not installed (apt-get install docker.io)")?;
    // The client of the same package first (a newer one also works).
    let client =
        find_tool("docker", &["/usr/bin/docker"]).ok_or("docker client is not installed")?;
    find_tool("containerd", &["/usr/bin/containerd"])
        .ok_or("containerd is not installed (docker.io needs it)")?;
    let unshare =
        find_tool("unshare", &["/usr/bin/unshare"]).ok_or("unshare (util-linux) is missing")?;
    // dockerd 20.10 uses a containerd already listening on the default
    // socket instead of starting its own: that would not be isolated.
    if std::os::unix::net::UnixStream::connect("/run/containerd/containerd.sock").is_ok() {
        return Err(
            "a system containerd listens on /run/containerd/containerd.sock; dockerd would use it"
                .into(),
        );
    }
    if !Path::new("/etc/docker").is_dir() {
        return Err(
            "/etc/docker is missing: dockerd would create /etc/docker/key.json on the host".into(),
        );
    }
    let dir = tempfile::Builder::new()
        .prefix("berth-docker-")
        .tempdir()
        .map_err(|e| format!("temp dir: {e}"))?;
    let d = dir.path();
    for sub in ["data", "exec", "client"] {
        std::fs::create_dir_all(d.join(sub)).map_err(|e| format!("mkdir: {e}"))?;
    }
    std::fs::write(d.join("daemon.json"), "{}\n").map_err(|e| e.to_string())?;
    let cgroup = CgroupParent::new();
    let mut cmd = Command::new(unshare);
    cmd.args(["--mount", "--propagation", "private", "--", "sh", "-c"])
        .arg("mount -t tmpfs -o size=1m,mode=0755 berth-test-etc-docker /etc/docker && exec \"$@\"")
        .arg("sh")
        .arg(dockerd)
        .args(dockerd_args(d, &runtime_bin(), &cgroup.path));
    let mut docker = Docker {
        client,
        daemon: None,
        cgroup,
        dir,
    };
    let log = docker.dir.path().join("dockerd.log");
    let daemon = Daemon::start("dockerd", &mut cmd, &log, docker.dir.path())
        .map_err(|e| format!("start dockerd: {e}"))?;
    let sock = docker.dir.path().join("docker.sock");
    docker.daemon = Some(daemon);
    let started = Instant::now();
    let d = docker.daemon.as_mut().expect("set above");
    // Installed but not startable here: say why (full log) and skip.
    d.wait_socket(&sock, Duration::from_secs(60))?;
    eprintln!(
        "dockerd listening after {:.1}s",
        started.elapsed().as_secs_f64()
    );
    Ok(docker)
}

#[test]
fn dockerd_runs_berth_containers() {
    let dk = skip_unless!(setup());
    let started = Instant::now();
    // `docker info` must name berth as the default runtime.
    let o = dk.run(
        "info",
        &["info", "--format", "{{.DefaultRuntime}} {{json .Runtimes}}"],
    );
    let info = ok("docker info", &o);
    assert!(
        info.starts_with("berth "),
        "berth must be the default runtime: {info}"
    );
    assert!(
        info.contains(&runtime_bin().display().to_string()),
        "{info}"
    );

    let image = format!("{}:test", unique("berth-busybox"));
    let rootfs = dk.dir.path().join("rootfs");
    busybox_rootfs(&rootfs);
    let tar = dk.dir.path().join("rootfs.tar");
    tar_dir(&rootfs, &tar);
    ok(
        "docker import",
        &dk.run("import", &["import", &tar.to_string_lossy(), &image]),
    );

    let o = dk.run(
        "run echo",
        &[
            "run",
            "--rm",
            "--runtime",
            "berth",
            "--network",
            "none",
            &image,
            "echo",
            "hi",
        ],
    );
    assert_eq!(ok("docker run echo", &o).trim(), "hi");
    let o = dk.run(
        "run exit 3",
        &[
            "run",
            "--rm",
            "--runtime",
            "berth",
            "--network",
            "none",
            &image,
            "sh",
            "-c",
            "exit 3",
        ],
    );
    assert_eq!(
        o.status.code(),
        Some(3),
        "docker run must return the container's exit code"
    );

    // Detached, exec, graceful stop, logs, rm.
    let name = unique("berth-d");
    let script = "trap 'echo got-term; exit 0' TERM; echo started; while :; do sleep 0.2; done";
    let o = dk.run(
        "run -d",
        &[
            "run",
            "-d",
            "--runtime",
            "berth",
            "--network",
            "none",
            "--name",
            &name,
            &image,
            "sh",
            "-c",
            script,
        ],
    );
    let id = ok("docker run -d", &o).trim().to_string();
    let o = dk.run(
        "inspect",
        &["inspect", "--format", "{{.HostConfig.Runtime}}", &name],
    );
    assert_eq!(ok("docker inspect", &o).trim(), "berth");
    let in_berth = dk.berth_roots().iter().any(|r| r.join(&id).exists());
    assert!(
        in_berth,
        "berth must hold state of {id} under {:?}",
        dk.berth_roots()
    );
    let o = dk.run("exec", &["exec", &name, "sh", "-c", "echo in-exec; exit 6"]);
    assert_eq!(
        o.status.code(),
        Some(6),
        "docker exec must return the process's exit code"
    );
    assert!(String::from_utf8_lossy(&o.stdout).contains("in-exec"));
    let o = dk.run("exec -t", &["exec", "-t", &name, "tty"]);
    assert!(
        ok("docker exec -t", &o).contains("/dev/pts/"),
        "exec -t needs a pty"
    );
    let o = dk.run("top", &["top", &name]);
    assert!(
        ok("docker top", &o).contains("sleep") || stdout_has(&o, "sh -c"),
        "docker top runs `ps` via the runtime"
    );
    // pause/unpause (freezer) and a live update (`update --resources -`).
    ok("docker pause", &dk.run("pause", &["pause", &name]));
    let o = dk.run(
        "inspect paused",
        &["inspect", "--format", "{{.State.Status}}", &name],
    );
    assert_eq!(ok("docker inspect", &o).trim(), "paused");
    ok("docker unpause", &dk.run("unpause", &["unpause", &name]));
    let o = dk.run(
        "update",
        &["update", "--memory", "64m", "--memory-swap", "128m", &name],
    );
    ok("docker update", &o);
    let limit = dk
        .cgroup
        .read(&id, "memory", "memory.limit_in_bytes", "memory.max");
    assert_eq!(
        limit.as_deref(),
        Some("67108864"),
        "docker update must reach the container's cgroup"
    );
    ok("docker stop", &dk.run("stop", &["stop", "-t", "20", &name]));
    let o = dk.run(
        "inspect exit",
        &["inspect", "--format", "{{.State.ExitCode}}", &name],
    );
    assert_eq!(
        ok("docker inspect", &o).trim(),
        "0",
        "SIGTERM must reach the trap (graceful stop)"
    );
    let o = dk.run("logs", &["logs", &name]);
    assert!(ok("docker logs", &o).contains("got-term"));
    ok("docker rm", &dk.run("rm", &["rm", &name]));
    let left: Vec<_> = dk
        .berth_roots()
        .iter()
        .map(|r| r.join(&id))
        .filter(|p| p.exists())
        .collect();
    assert!(
        left.is_empty(),
        "docker rm must have deleted berth's state: {left:?}"
    );

    // Terminal through the shim's console socket.
    let o = dk.run(
        "run -t",
        &[
            "run",
            "--rm",
            "-t",
            "--runtime",
            "berth",
            "--network",
            "none",
            &image,
            "sh",
            "-c",
            "tty; exit 4",
        ],
    );
    assert_eq!(o.status.code(), Some(4));
    assert!(
        String::from_utf8_lossy(&o.stdout).contains("/dev/pts/"),
        "run -t needs a pty"
    );

    // An error inside berth reaches the docker user (log.json, runc style).
    let o = dk.run(
        "run missing",
        &[
            "run",
            "--rm",
            "--runtime",
            "berth",
            "--network",
            "none",
            &image,
            "/no/such/binary",
        ],
    );
    assert!(!o.status.success());
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(
        err.contains("/no/such/binary"),
        "berth's error must reach docker's user: {err}"
    );

    let o = dk.run("ps -a", &["ps", "-aq"]);
    assert_eq!(
        ok("docker ps", &o).trim(),
        "",
        "all --rm containers must be gone"
    );
    assert!(
        dk.cgroup.procs().is_empty(),
        "processes left in {}: {:?}",
        dk.cgroup.path,
        dk.cgroup.procs()
    );
    eprintln!(
        "docker smoke test took {:.1}s",
        started.elapsed().as_secs_f64()
    );
}

fn stdout_has(o: &std::process::Output, s: &str) -> bool {
    String::from_utf8_lossy(&o.stdout).contains(s)
}

#[test]
fn dockerd_is_isolated_from_the_host() {
    let a = dockerd_args(
        Path::new("/t"),
        Path::new("/bin/berth-runtime"),
        "/berth-test-x",
    );
    for want in [
        "--data-root=/t/data",
        "--exec-root=/t/exec",
        "--pidfile=/t/docker.pid",
        "--host=unix:///t/docker.sock",
        "--bridge=none",
        "--iptables=false",
        "--ip6tables=false",
        "--exec-opt=native.cgroupdriver=cgroupfs",
        "--cgroup-parent=/berth-test-x",
        "--add-runtime=berth=/bin/berth-runtime",
    ] {
        assert!(a.iter().any(|x| x == want), "missing {want}: {a:?}");
    }
}
