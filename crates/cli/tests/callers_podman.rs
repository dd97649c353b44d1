//! podman (through conmon) drives berth-runtime: `podman --runtime <berth>`
//! with an isolated store (private --root/--runroot/--tmpdir, vfs, cgroupfs,
//! file events, file locks) and a busybox image made by `podman import`,
//! so no network is needed. Shows each command's output and exit code.

mod callers_support;
use callers_support::*;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

const T: Duration = Duration::from_secs(60);

/// containers.conf for the isolated store. `default_ulimits` stay at or
/// under what podman itself may set: this machine's hard limits (a
/// container cannot raise them without CAP_SYS_RESOURCE) and the 32768
/// RLIMIT_NPROC podman puts on conmon.
fn containers_conf(dir: &Path, nofile_hard: u64, nproc_hard: u64) -> String {
    let nofile_soft = nofile_hard.min(1024);
    let nproc = nproc_hard.min(32768);
    format!(
        "[containers]\n\
         default_ulimits = [\"nofile={nofile_soft}:{nofile_hard}\", \"nproc={nproc}:{nproc}\"]\n\
         netns = \"none\"\n\
         [engine]\n\
         cgroup_manager = \"cgroupfs\"\n\
         events_logger = \"file\"\n\
         events_logfile_path = \"{d}/events.log\"\n\
         lock_type = \"file\"\n\
         tmp_dir = \"{d}/tmp\"\n\
         volume_path = \"{d}/volumes\"\n\
         [network]\n\
         network_config_dir = \"{d}/net\"\n",
        d = dir.display()
    )
}

/// storage.conf: the same store the flags name, so nothing reads the
/// machine's /etc/containers/storage.conf.
fn storage_conf(dir: &Path) -> String {
    format!(
        "[storage]\ndriver = \"vfs\"\nrunroot = \"{d}/runroot\"\ngraphroot = \"{d}/root\"\n",
        d = dir.display()
    )
}

struct Podman {
    bin: PathBuf,
    dir: tempfile::TempDir,
    cgroup: CgroupParent,
}

impl Podman {
    fn cmd(&self) -> Command {
        let mut c = isolated_podman(&self.bin, self.dir.path());
        // The cargo-built binary, by its real path: conmon execs it
        // for every create/start/exec/kill/delete.
        c.arg("--runtime").arg(runtime_bin());
        c
    }

    fn run(&self, label: &str, args: &[&str]) -> std::process::Output {
        run(label, self.cmd().args(args), T)
    }

    /// `podman run --rm --network none --cgroup-parent <ours> ARGS`.
    fn run_ctr(&self, label: &str, args: &[&str]) -> std::process::Output {
        let mut c = self.cmd();
        c.args([
            "run",
            "--network",
            "none",
            "--cgroup-parent",
            &self.cgroup.path,
        ]);
        run(label, c.args(args), T)
    }
}

impl Drop for Podman {
    fn drop(&mut self) {
        // Every container podman still knows, then berth's view of them
        // (podman's `--rm` cleanup uses berth's default --root).
        let ids = self.run("cleanup: ps", &["ps", "-aq", "--no-trunc"]);
        let _ = self.run("cleanup: rm", &["rm", "-af", "-t", "0"]);
        for id in String::from_utf8_lossy(&ids.stdout).split_whitespace() {
            let _ = Command::new(runtime_bin())
                .args(["delete", "--force", id])
                .output();
        }
        // conmon processes of this store that are still around.
        for p in pids_mentioning(self.dir.path()) {
            eprintln!("cleanup: killing leftover pid {p}");
            let _ =
                nix::sys::signal::kill(nix::unistd::Pid::from_raw(p), nix::sys::signal::SIGKILL);
        }
        let left = unmount_under(self.dir.path());
        if !left.is_empty() {
            eprintln!("cleanup: still mounted: {left:?}");
        }
    }
}

fn setup() -> Result<Podman, String> {
    check_root_and_busybox()?;
    let bin = find_tool("podman", &["/usr/bin/podman"])
        .ok_or("podman is not installed (apt-get install podman)")?;
    find_tool("conmon", &["/usr/bin/conmon", "/usr/libexec/podman/conmon"])
        .ok_or("conmon is not installed (apt-get install conmon)")?;
    let dir = tempfile::Builder::new()
        .prefix("berth-podman-")
        .tempdir()
        .map_err(|e| format!("temp dir: {e}"))?;
    let (_, nofile) = nix::sys::resource::getrlimit(nix::sys::resource::Resource::RLIMIT_NOFILE)
        .map_err(|e| format!("getrlimit: {e}"))?;
    let (_, nproc) = nix::sys::resource::getrlimit(nix::sys::resource::Resource::RLIMIT_NPROC)
        .map_err(|e| format!("getrlimit: {e}"))?;
    let d = dir.path();
    for sub in ["root", "runroot", "tmp", "net", "volumes"] {
        std::fs::create_dir_all(d.join(sub)).map_err(|e| format!("mkdir: {e}"))?;
    }
    std::fs::write(d.join("containers.conf"), containers_conf(d, nofile, nproc))
        .map_err(|e| e.to_string())?;
    std::fs::write(d.join("storage.conf"), storage_conf(d)).map_err(|e| e.to_string())?;
    std::fs::write(
        d.join("registries.conf"),
        "unqualified-search-registries = []\n",
    )
    .map_err(|e| e.to_string())?;
    Ok(Podman {
        bin,
        dir,
        cgroup: CgroupParent::new(),
    })
}

fn code(o: &std::process::Output) -> Option<i32> {
    o.status.code()
}

/// berth's state directory of a container podman made (podman passes no
/// --root, so berth's default is used, as /run/runc would be for runc).
fn berth_state(id: &str) -> PathBuf {
    Path::new("/run/berth").join(id)
}

#[test]
fn podman_runs_berth_containers() {
    let p = skip_unless!(setup());
    let started = Instant::now();
    let image = format!("localhost/{}:test", unique("berth-busybox"));
    let rootfs = p.dir.path().join("rootfs");
    busybox_rootfs(&rootfs);
    let tar = p.dir.path().join("rootfs.tar");
    tar_dir(&rootfs, &tar);
    ok(
        "podman import",
        &p.run("podman import", &["import", &tar.to_string_lossy(), &image]),
    );

    // Foreground run: output and exit status come back through conmon.
    let o = p.run_ctr("run echo", &["--rm", &image, "echo", "hi"]);
    assert_eq!(ok("podman run echo", &o).trim(), "hi");
    let o = p.run_ctr("run exit 3", &["--rm", &image, "sh", "-c", "exit 3"]);
    assert_eq!(
        code(&o),
        Some(3),
        "podman run must return the container's exit code"
    );

    // Detached container, exec into it, graceful stop, rm.
    let name = unique("berth-d");
    let script = "trap 'echo got-term; exit 0' TERM; echo started; while :; do sleep 0.2; done";
    let o = p.run_ctr(
        "run -d",
        &["-d", "--name", &name, &image, "sh", "-c", script],
    );
    let id = ok("podman run -d", &o).trim().to_string();
    assert_eq!(
        id.len(),
        64,
        "podman run -d prints the container ID: {id:?}"
    );
    assert!(
        berth_state(&id).exists(),
        "berth must hold state for {id} under /run/berth"
    );
    let end = Instant::now() + T;
    loop {
        let logs = p.run("logs", &["logs", &name]);
        if String::from_utf8_lossy(&logs.stdout).contains("started") {
            break;
        }
        assert!(Instant::now() < end, "container never printed 'started'");
        std::thread::sleep(Duration::from_millis(200));
    }
    let o = p.run(
        "exec",
        &[
            "exec",
            &name,
            "sh",
            "-c",
            "echo in-exec; echo pid1=$(cat /proc/1/cmdline | tr '\\0' ' '); exit 5",
        ],
    );
    assert_eq!(
        code(&o),
        Some(5),
        "podman exec must return the process's exit code"
    );
    let out = String::from_utf8_lossy(&o.stdout);
    assert!(
        out.contains("in-exec") && out.contains("pid1=sh -c"),
        "exec must run inside the container: {out}"
    );
    let o = p.run("exec -t", &["exec", "-t", &name, "tty"]);
    assert!(
        ok("podman exec -t", &o).contains("/dev/pts/"),
        "exec -t needs a pty"
    );
    ok("podman pause", &p.run("pause", &["pause", &name]));
    let o = p.run(
        "inspect paused",
        &["inspect", "--format", "{{.State.Status}}", &name],
    );
    assert_eq!(ok("podman inspect", &o).trim(), "paused");
    ok("podman unpause", &p.run("unpause", &["unpause", &name]));
    ok("podman stop", &p.run("stop", &["stop", "-t", "20", &name]));
    let o = p.run(
        "inspect",
        &["inspect", "--format", "{{.State.ExitCode}}", &name],
    );
    assert_eq!(
        ok("podman inspect", &o).trim(),
        "0",
        "SIGTERM must reach the trap (graceful stop)"
    );
    let logs = p.run("logs", &["logs", &name]);
    assert!(String::from_utf8_lossy(&logs.stdout).contains("got-term"));
    ok("podman rm", &p.run("rm", &["rm", &name]));
    assert!(
        !berth_state(&id).exists(),
        "podman rm must have deleted berth's state of {id}"
    );

    // A terminal: conmon passes --console-socket and reads the pty master.
    let o = p.run_ctr("run -t", &["--rm", "-t", &image, "sh", "-c", "tty; exit 4"]);
    assert_eq!(code(&o), Some(4));
    assert!(
        String::from_utf8_lossy(&o.stdout).contains("/dev/pts/"),
        "run -t needs a pty"
    );

    // berth's error reaches the podman user (conmon relays the runtime's
    // stderr / --log file).
    let o = p.run_ctr("run missing", &["--rm", &image, "/no/such/binary"]);
    assert!(!o.status.success());
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(
        err.contains("/no/such/binary"),
        "berth's error must reach podman's user: {err}"
    );

    // Nothing of ours may remain: no container, no process in our cgroups.
    let o = p.run("ps -a", &["ps", "-aq"]);
    assert_eq!(
        ok("podman ps", &o).trim(),
        "",
        "all --rm containers must be gone"
    );
    assert!(
        p.cgroup.procs().is_empty(),
        "processes left in {}: {:?}",
        p.cgroup.path,
        p.cgroup.procs()
    );
    eprintln!(
        "podman smoke test took {:.1}s",
        started.elapsed().as_secs_f64()
    );
}

#[test]
fn podman_config_stays_under_hard_limits() {
    let c = containers_conf(Path::new("/x"), 20000, 96365);
    assert!(c.contains("\"nofile=1024:20000\""), "{c}");
    assert!(c.contains("\"nproc=32768:32768\""), "{c}");
    let c = containers_conf(Path::new("/x"), 512, 1000);
    assert!(
        c.contains("\"nofile=512:512\"") && c.contains("\"nproc=1000:1000\""),
        "{c}"
    );
    assert!(c.contains("cgroup_manager = \"cgroupfs\"") && c.contains("events_logger = \"file\""));
    assert!(storage_conf(Path::new("/x")).contains("graphroot = \"/x/root\""));
}
