//! containerd's `ctr` drives berth-runtime through the runc v2 shim
//! (`ctr run --runtime io.containerd.runc.v2 --runc-binary <berth>`). The
//! daemon is private to the test (root, state, sockets, opt dir in a temp
//! dir; CRI off); containers use a busybox rootfs directory (`--rootfs`),
//! a runc root and FIFO dir of the test's and cgroups under its parent.

mod callers_support;
use callers_support::*;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

const T: Duration = Duration::from_secs(60);

/// config.toml (version 2) for a containerd living in `dir`.
fn containerd_config(dir: &Path) -> String {
    format!(
        "version = 2\n\
         root = \"{d}/root\"\n\
         state = \"{d}/state\"\n\
         disabled_plugins = [\"io.containerd.grpc.v1.cri\", \"io.containerd.snapshotter.v1.aufs\", \
         \"io.containerd.snapshotter.v1.btrfs\", \"io.containerd.snapshotter.v1.zfs\", \
         \"io.containerd.snapshotter.v1.devmapper\", \"io.containerd.internal.v1.tracing\", \
         \"io.containerd.tracing.processor.v1.otlp\"]\n\
         [grpc]\n  address = \"{d}/containerd.sock\"\n\
         [ttrpc]\n  address = \"{d}/containerd.sock.ttrpc\"\n\
         [debug]\n  address = \"\"\n\
         [metrics]\n  address = \"\"\n\
         [plugins]\n  [plugins.\"io.containerd.internal.v1.opt\"]\n    path = \"{d}/opt\"\n",
        d = dir.display()
    )
}

struct Containerd {
    ctr: PathBuf,
    dir: tempfile::TempDir,
    namespace: String,
    daemon: Option<Daemon>,
    cgroup: CgroupParent,
}

impl Containerd {
    fn cmd(&self) -> Command {
        let mut c = Command::new(&self.ctr);
        c.arg("--address")
            .arg(self.dir.path().join("containerd.sock"))
            .arg("--namespace")
            .arg(&self.namespace);
        c
    }

    fn ctr(&self, label: &str, args: &[&str]) -> std::process::Output {
        run(label, self.cmd().args(args), T)
    }

    /// Where the shim tells berth to keep state (`--runc-root` + namespace).
    fn berth_root(&self) -> PathBuf {
        self.dir.path().join("runc").join(&self.namespace)
    }

    /// `ctr run [extra] --runc-binary <berth> ... --rootfs <dir> ID ARGS`.
    fn run_ctr(
        &self,
        label: &str,
        extra: &[&str],
        id: &str,
        args: &[&str],
    ) -> std::process::Output {
        let d = self.dir.path();
        let mut c = self.cmd();
        c.arg("run")
            .args(extra)
            .args([
                "--runtime",
                "io.containerd.runc.v2",
                "--env",
                "PATH=/bin:/usr/bin",
            ])
            .arg("--runc-binary")
            .arg(runtime_bin())
            .arg("--runc-root")
            .arg(d.join("runc"))
            .arg("--fifo-dir")
            .arg(d.join("fifo"))
            .arg("--cgroup")
            .arg(format!("{}/{id}", self.cgroup.path))
            .arg("--rootfs")
            .arg(d.join("rootfs"))
            .arg(id)
            .args(args);
        run(label, &mut c, T)
    }
}

impl Containerd {
    /// `ctr run --rm ... IMAGE ID ARGS` (rootfs from the snapshotter).
    fn run_image(&self, label: &str, id: &str, image: &str, args: &[&str]) -> std::process::Output {
        let d = self.dir.path();
        let mut c = self.cmd();
        c.args(["run", "--rm", "--runtime", "io.containerd.runc.v2"])
            .arg("--runc-binary")
            .arg(runtime_bin())
            .arg("--runc-root")
            .arg(d.join("runc"))
            .arg("--fifo-dir")
            .arg(d.join("fifo"))
            .arg("--cgroup")
            .arg(format!("{}/{id}", self.cgroup.path))
            .arg(image)
            .arg(id)
            .args(args);
        run(label, &mut c, T)
    }
}

impl Containerd {
    /// Wait until `ctr task ls` says the task is STOPPED.
    fn wait_stopped(&self, id: &str) {
        let end = Instant::now() + T;
        loop {
            let o = self.ctr("task ls", &["task", "ls"]);
            let out = ok("ctr task ls", &o);
            if out
                .lines()
                .any(|l| l.starts_with(id) && l.contains("STOPPED"))
            {
                return;
            }
            assert!(Instant::now() < end, "task {id} did not stop: {out}");
            std::thread::sleep(Duration::from_millis(200));
        }
    }
}

/// sha256 of a file, with sha256sum(1) (the test crate has no hasher).
fn sha256_file(p: &Path) -> String {
    let o = Command::new("sha256sum")
        .arg(p)
        .output()
        .expect("run sha256sum");
    assert!(o.status.success(), "sha256sum failed");
    String::from_utf8_lossy(&o.stdout)
        .split_whitespace()
        .next()
        .expect("sha256sum prints a digest")
        .to_string()
}

/// The image config of a one-layer busybox image (image-spec config.md).
fn image_config(diff_id: &str) -> String {
    format!(
        "{{\"architecture\":\"amd64\",\"os\":\"linux\",\
         \"config\":{{\"Env\":[\"PATH=/bin:/usr/bin\"],\"Cmd\":[\"sh\"]}},\
         \"rootfs\":{{\"type\":\"layers\",\"diff_ids\":[\"sha256:{diff_id}\"]}}}}"
    )
}

/// A `docker save` style archive (manifest.json, config, one layer tar)
/// of `rootfs`, tagged `tag`, written to `out`.
fn docker_archive(rootfs: &Path, tag: &str, out: &Path) {
    let dir = out.with_extension("d");
    std::fs::create_dir_all(&dir).expect("archive dir");
    tar_dir(rootfs, &dir.join("layer.tar"));
    let config = image_config(&sha256_file(&dir.join("layer.tar")));
    std::fs::write(dir.join("config.json"), &config).expect("config");
    let config_name = format!("{}.json", sha256_file(&dir.join("config.json")));
    std::fs::rename(dir.join("config.json"), dir.join(&config_name)).expect("rename config");
    let manifest =
        serde_json::json!([{"Config": config_name, "RepoTags": [tag], "Layers": ["layer.tar"]}]);
    std::fs::write(dir.join("manifest.json"), manifest.to_string()).expect("manifest");
    tar_dir(&dir, out);
}

impl Drop for Containerd {
    fn drop(&mut self) {
        if self.daemon.is_some() {
            let tasks = self.ctr("cleanup: tasks", &["task", "ls", "-q"]);
            for t in String::from_utf8_lossy(&tasks.stdout).split_whitespace() {
                let _ = self.ctr("cleanup: kill", &["task", "kill", "-s", "SIGKILL", t]);
                let _ = self.ctr("cleanup: task rm", &["task", "delete", "-f", t]);
            }
            let cs = self.ctr("cleanup: containers", &["container", "ls", "-q"]);
            for c in String::from_utf8_lossy(&cs.stdout).split_whitespace() {
                let _ = self.ctr("cleanup: container rm", &["container", "delete", c]);
            }
        }
        if let Some(mut d) = self.daemon.take() {
            d.stop();
        }
        if let Ok(rd) = std::fs::read_dir(self.berth_root()) {
            for e in rd.flatten() {
                let _ = Command::new(runtime_bin())
                    .arg("--root")
                    .arg(self.berth_root())
                    .args(["delete", "--force"])
                    .arg(e.file_name())
                    .output();
            }
        }
        let left = unmount_under(self.dir.path());
        if !left.is_empty() {
            eprintln!("cleanup: still mounted: {left:?}");
        }
    }
}

fn setup() -> Result<Containerd, String> {
    check_root_and_busybox()?;
    let containerd = find_tool("containerd", &["/usr/bin/containerd"])
        .ok_or("containerd is not installed (apt-get install containerd)")?;
    let ctr = find_tool("ctr", &["/usr/bin/ctr"])
        .ok_or("ctr is not installed (apt-get install containerd)")?;
    find_tool(
        "containerd-shim-runc-v2",
        &["/usr/bin/containerd-shim-runc-v2"],
    )
    .ok_or("containerd-shim-runc-v2 is not installed (apt-get install containerd)")?;
    let dir = tempfile::Builder::new()
        .prefix("berth-containerd-")
        .tempdir()
        .map_err(|e| format!("temp dir: {e}"))?;
    let d = dir.path();
    for sub in ["root", "state", "opt", "runc", "fifo"] {
        std::fs::create_dir_all(d.join(sub)).map_err(|e| format!("mkdir: {e}"))?;
    }
    busybox_rootfs(&d.join("rootfs"));
    std::fs::write(d.join("config.toml"), containerd_config(d)).map_err(|e| e.to_string())?;
    let mut cmd = Command::new(containerd);
    cmd.arg("--config").arg(d.join("config.toml"));
    let daemon = Daemon::start("containerd", &mut cmd, &d.join("containerd.log"), d)
        .map_err(|e| format!("start containerd: {e}"))?;
    let mut c = Containerd {
        ctr,
        namespace: unique("berth"),
        daemon: Some(daemon),
        cgroup: CgroupParent::new(),
        dir,
    };
    let sock = c.dir.path().join("containerd.sock");
    c.daemon
        .as_mut()
        .expect("set above")
        .wait_socket(&sock, Duration::from_secs(60))?;
    Ok(c)
}

#[test]
fn containerd_runs_berth_containers() {
    let c = skip_unless!(setup());
    let started = Instant::now();

    let o = c.run_ctr("run echo", &["--rm"], &unique("echo"), &["echo", "hi"]);
    assert_eq!(ok("ctr run echo", &o).trim(), "hi");
    let o = c.run_ctr(
        "run exit 3",
        &["--rm"],
        &unique("exit"),
        &["sh", "-c", "exit 3"],
    );
    assert_eq!(
        o.status.code(),
        Some(3),
        "ctr run must return the container's exit code"
    );

    // berth's error (log.json, --log-format json) reaches ctr's user.
    let o = c.run_ctr(
        "run missing",
        &["--rm"],
        &unique("missing"),
        &["/no/such/binary"],
    );
    assert!(!o.status.success());
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(
        err.contains("/no/such/binary"),
        "berth's error must reach ctr's user: {err}"
    );

    // Detached task, exec, ps, SIGTERM, delete.
    let id = unique("task");
    let script = "trap 'exit 0' TERM; while :; do sleep 0.2; done";
    ok(
        "ctr run -d",
        &c.run_ctr("run -d", &["-d"], &id, &["sh", "-c", script]),
    );
    assert!(
        c.berth_root().join(&id).exists(),
        "berth must hold state under {:?}",
        c.berth_root()
    );
    let exec_args = ["task", "exec", "--exec-id", "e1", "--fifo-dir"];
    let fifo = c.dir.path().join("fifo");
    let mut args: Vec<&str> = exec_args.to_vec();
    let fifo_s = fifo.to_string_lossy().into_owned();
    args.extend([fifo_s.as_str(), &id, "sh", "-c", "echo in-exec; exit 7"]);
    let o = c.ctr("task exec", &args);
    assert_eq!(
        o.status.code(),
        Some(7),
        "ctr task exec must return the process's exit code"
    );
    assert!(String::from_utf8_lossy(&o.stdout).contains("in-exec"));
    // `ctr task ps` is `berth-runtime ps --format json` through the shim.
    let o = c.ctr("task ps", &["task", "ps", &id]);
    let pids = ok("ctr task ps", &o).lines().skip(1).count();
    assert!(pids >= 1, "task ps must list the container's processes");
    ok("ctr task kill", &c.ctr("task kill", &["task", "kill", &id]));
    c.wait_stopped(&id);
    let o = c.ctr("task delete", &["task", "delete", &id]);
    ok("ctr task delete", &o);
    ok(
        "ctr container delete",
        &c.ctr("container delete", &["container", "delete", &id]),
    );
    assert!(
        !c.berth_root().join(&id).exists(),
        "task delete must have deleted berth's state"
    );

    // SIGKILL, then a forced delete: the shim kills again and must take
    // berth's "container not running" as "already finished" (runc's text).
    let id = unique("killed");
    ok(
        "ctr run -d",
        &c.run_ctr("run -d", &["-d"], &id, &["sleep", "300"]),
    );
    ok(
        "ctr task kill -9",
        &c.ctr("task kill", &["task", "kill", "-s", "SIGKILL", &id]),
    );
    c.wait_stopped(&id);
    ok(
        "ctr task delete -f",
        &c.ctr("task delete -f", &["task", "delete", "-f", &id]),
    );
    ok(
        "ctr container delete",
        &c.ctr("container delete", &["container", "delete", &id]),
    );

    // An image: `ctr images import` of a docker-archive made here, run
    // from a snapshot (the shim mounts it as the bundle's rootfs).
    let archive = c.dir.path().join("image.tar");
    let image = format!("docker.io/library/{}:test", unique("berth-busybox"));
    docker_archive(&c.dir.path().join("rootfs"), &image, &archive);
    let o = c.ctr(
        "images import",
        &["images", "import", &archive.to_string_lossy()],
    );
    ok("ctr images import", &o);
    let o = c.run_image(
        "run image",
        &unique("img"),
        &image,
        &["sh", "-c", "echo from-image; exit 9"],
    );
    assert_eq!(
        o.status.code(),
        Some(9),
        "ctr run IMAGE must return the exit code"
    );
    assert!(String::from_utf8_lossy(&o.stdout).contains("from-image"));

    let o = c.ctr("containers", &["container", "ls", "-q"]);
    assert_eq!(
        ok("ctr container ls", &o).trim(),
        "",
        "all --rm containers must be gone"
    );
    assert!(
        c.cgroup.procs().is_empty(),
        "processes left in {}: {:?}",
        c.cgroup.path,
        c.cgroup.procs()
    );
    eprintln!(
        "containerd smoke test took {:.1}s",
        started.elapsed().as_secs_f64()
    );
}

#[test]
fn containerd_config_is_private() {
    let t = containerd_config(Path::new("/t"));
    for want in [
        "root = \"/t/root\"",
        "state = \"/t/state\"",
        "address = \"/t/containerd.sock\"",
        "path = \"/t/opt\"",
        "io.containerd.grpc.v1.cri",
    ] {
        assert!(t.contains(want), "missing {want}: {t}");
    }
    let c: serde_json::Value = serde_json::from_str(&image_config("ab")).expect("config is JSON");
    assert_eq!(c["rootfs"]["diff_ids"][0], "sha256:ab");
    assert_eq!(c["config"]["Env"][0], "PATH=/bin:/usr/bin");
}
