//! Rootless berth, more of it: the copying storage driver (vfs), the API
//! service's rootless socket driven by the docker CLI, and the everyday
//! commands against a local registry; all run by a test user of its own
//! and checked from the host (common::rootless_engine).
mod common;

use std::os::unix::fs::MetadataExt;
use std::process::Command;

use common::rootless_engine::{have_podman, owned_under, uids, Rootless};

/// The storage driver probe runs once: its verdict is kept in the user's
/// run dir (`storage-driver`, with the kernel release and the store's
/// filesystem it holds for) and later commands use it without probing;
/// a verdict for another kernel is ignored, and without the file the next
/// command probes again.
#[test]
fn rootless_storage_driver_probe_is_kept_for_later_commands() {
    require_root!();
    let Some(r) = Rootless::new(true) else {
        return;
    };
    let driver = || {
        let info: serde_json::Value = serde_json::from_str(&r.ok(&["info"])).unwrap();
        info["store"]["graphDriverName"]
            .as_str()
            .unwrap_or_default()
            .to_string()
    };
    let found = driver();
    let kept = r.u.runtime_dir.join("berth").join("storage-driver");
    let text = common::wait_for("the kept verdict", 10, || {
        std::fs::read_to_string(&kept).ok()
    });
    let release = common::stdout(&Command::new("uname").arg("-r").output().unwrap());
    let release = release.trim();
    let fields: Vec<&str> = text.split_whitespace().collect();
    assert_eq!(fields.len(), 3, "{text}");
    assert_eq!(fields[0], release, "{text}");
    assert_eq!(fields[2], found, "{text}");
    let other = if found == "vfs" { "overlay" } else { "vfs" };
    let plant = |content: String| {
        std::fs::write(&kept, content).unwrap();
        r.chown_to_user(&kept);
    };
    // A kept verdict is used as it is (no probe would find `other`).
    plant(format!("{} {} {other}\n", fields[0], fields[1]));
    assert_eq!(driver(), other);
    // One found on another kernel is not.
    plant(format!("0.0.0-other {} {other}\n", fields[1]));
    assert_eq!(driver(), found);
    // Without the file the next command probes and keeps it again.
    std::fs::remove_file(&kept).unwrap();
    assert_eq!(driver(), found);
    assert!(kept.exists());
}

/// The copying storage driver (podman's vfs), forced with
/// `--storage-driver vfs` as the rootless user: `info` reports it, the
/// container's rootfs is a copy of the image in its own dir (no overlay or
/// fuse mount, the image's owners kept), files it writes land there,
/// diff/commit give what it changed (as a container on the probed driver
/// does), and `rm` leaves nothing.
#[test]
fn rootless_vfs_storage_driver() {
    require_root!();
    let Some(r) = Rootless::new(true) else {
        return;
    };
    let sub = r.subid();
    let image = r.import();
    let vfs = |args: &[&str]| {
        let mut a = vec!["--storage-driver", "vfs"];
        a.extend_from_slice(args);
        r.berth(&a)
    };
    let info: serde_json::Value = serde_json::from_str(&common::ok(&vfs(&["info"]))).unwrap();
    assert_eq!(info["store"]["graphDriverName"], "vfs", "{info}");
    // The environment variable does the same (podman's STORAGE_DRIVER).
    let info = r
        .berth_cmd(&["info"])
        .env("BERTH_STORAGE_DRIVER", "vfs")
        .output()
        .unwrap();
    let info: serde_json::Value = serde_json::from_str(&common::ok(&info)).unwrap();
    assert_eq!(info["store"]["graphDriverName"], "vfs", "{info}");
    let bad = r.berth(&["--storage-driver", "btrfs", "info"]);
    assert!(!bad.status.success());
    assert!(
        common::stderr(&bad).contains("vfs"),
        "{}",
        common::stderr(&bad)
    );

    let name = "rlvfs";
    common::ok(&vfs(&[
        "run",
        "-d",
        "--name",
        name,
        image,
        "sh",
        "-c",
        "echo hello > /home/u/new; rm /home/u/f; sleep 1000",
    ]));
    let id = r
        .ok(&["inspect", "--format", "{{.Id}}", name])
        .trim()
        .to_string();
    let upper =
        r.u.home
            .join(".local/share/berth/containers")
            .join(&id)
            .join("upper");
    // The copy holds the image (owners as in the layer) and the writes.
    let new = common::wait_for("the file the container wrote", 20, || {
        std::fs::read_to_string(upper.join("home/u/new")).ok()
    });
    assert_eq!(new, "hello\n");
    common::wait_for("the deleted file gone from the copy", 20, || {
        (!upper.join("home/u/f").exists()).then_some(())
    });
    let md = std::fs::metadata(upper.join("home/u")).unwrap();
    assert_eq!((md.uid(), md.gid()), (sub + 999, sub + 999));
    assert_eq!(md.mode() & 0o7777, 0o750);
    assert!(upper.join("bin/busybox").is_file());
    // No overlay or fuse mount for it, in the user's mount namespace.
    let pid: i32 = r
        .ok(&["inspect", "--format", "{{.State.Pid}}", name])
        .trim()
        .parse()
        .unwrap();
    let mi = std::fs::read_to_string(format!("/proc/{pid}/mountinfo")).unwrap();
    let root_line = mi
        .lines()
        .find(|l| l.split_whitespace().nth(4) == Some("/"))
        .unwrap();
    assert!(
        !root_line.contains(" - overlay ") && !root_line.contains("fuse"),
        "{root_line}"
    );
    // exec, and a later command without the flag, keep working on the copy.
    assert_eq!(r.ok(&["exec", name, "cat", "/home/u/new"]), "hello\n");
    r.ok(&["stop", "-t", "1", name]);
    r.ok(&["start", name]);
    assert_eq!(r.ok(&["exec", name, "cat", "/home/u/new"]), "hello\n");
    // diff and commit: what the container changed in its copy, the same
    // as a container on the driver the probe chose (overlay here) gives.
    r.ok(&["stop", "-t", "1", name]);
    let diff = r.ok(&["diff", name]);
    assert_eq!(diff, "C /home\nC /home/u\nD /home/u/f\nA /home/u/new\n");
    r.ok(&[
        "run",
        "--name",
        "rlov",
        image,
        "sh",
        "-c",
        "echo hello > /home/u/new; rm /home/u/f",
    ]);
    assert_eq!(
        r.ok(&["diff", "rlov"]),
        diff,
        "vfs against the probed driver"
    );
    r.ok(&["commit", name, "localhost/rlvfs:1"]);
    let seen = r.ok(&[
        "run",
        "--rm",
        "localhost/rlvfs:1",
        "sh",
        "-c",
        "cat /home/u/new; ls /home/u",
    ]);
    assert_eq!(seen, "hello\nnew\n");
    r.ok(&["rm", "rlov"]);
    r.ok(&["rmi", "localhost/rlvfs:1"]);
    r.ok(&["rm", "-f", name]);
    assert!(!upper.exists(), "rm left {}", upper.display());
    let dir = r.u.home.join(".local/share/berth/containers");
    let left: Vec<_> = std::fs::read_dir(&dir)
        .map(|d| d.flatten().map(|e| e.path()).collect())
        .unwrap_or_default();
    assert!(left.is_empty(), "rm left {left:?}");
    r.assert_no_processes_left();
    assert!(r.u.mounts().is_empty(), "{:?}", r.u.mounts());

    // Rootless podman on its vfs driver: the same diff lines.
    if !have_podman() {
        return;
    }
    let podman = |args: &[&str]| {
        let o = r
            .podman()
            .args(["--storage-driver", "vfs"])
            .args(args)
            .output()
            .unwrap();
        common::log_output(&format!("podman {args:?}"), &o);
        o
    };
    let imp = podman(&["import", r.tar.to_str().unwrap(), image]);
    if !imp.status.success() {
        eprintln!(
            "SKIP: rootless podman (vfs) cannot import here: {}",
            common::stderr(&imp)
        );
        return;
    }
    let run = podman(&[
        "run",
        "--name",
        "pvfs",
        "--network",
        "none",
        image,
        "sh",
        "-c",
        "echo hello > /home/u/new; rm /home/u/f",
    ]);
    if !run.status.success() {
        eprintln!(
            "SKIP: rootless podman (vfs) cannot run here: {}",
            common::stderr(&run)
        );
        return;
    }
    // (podman prints them in its walk's order, and `C /etc` for the
    // hosts and resolv.conf files it writes there: docs/cli.md.)
    let mut pd: Vec<String> = common::stdout(&podman(&["diff", "pvfs"]))
        .lines()
        .filter(|l| *l != "C /etc")
        .map(String::from)
        .collect();
    pd.sort_by(|a, b| a.get(2..).cmp(&b.get(2..)));
    let pd: String = pd.iter().map(|l| format!("{l}\n")).collect();
    assert_eq!(pd, diff, "rootless podman's vfs diff");
    podman(&["rm", "pvfs"]);
}

/// `berth system service` run by the rootless user: the default socket is
/// `$XDG_RUNTIME_DIR/berth/berth.sock`, mode 0660, the user's; the docker
/// CLI run by the user drives rootless containers through it.
#[test]
fn rootless_system_service_default_socket() {
    require_root!();
    if Command::new("docker").arg("--version").output().is_err() {
        eprintln!("SKIP: the docker CLI (docker.io) is not installed");
        return;
    }
    let Some(r) = Rootless::new(true) else {
        return;
    };
    let image = r.import();
    let mut svc = r
        .berth_cmd(&["system", "service", "--time", "0"])
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::inherit())
        .spawn()
        .unwrap();
    struct Stop<'a>(&'a mut std::process::Child);
    impl Drop for Stop<'_> {
        fn drop(&mut self) {
            let _ = nix::sys::signal::kill(
                nix::unistd::Pid::from_raw(self.0.id() as i32),
                nix::sys::signal::Signal::SIGTERM,
            );
            let _ = self.0.wait();
        }
    }
    let stop = Stop(&mut svc);
    let sock = r.u.runtime_dir.join("berth/berth.sock");
    common::wait_for("the service's default socket", 30, || {
        std::os::unix::net::UnixStream::connect(&sock).ok()
    });
    let md = std::fs::metadata(&sock).unwrap();
    assert_eq!(md.mode() & 0o777, 0o660);
    assert_eq!((md.uid(), md.gid()), (r.u.uid, r.u.gid));
    let host = format!("unix://{}", sock.display());
    let docker = |args: &[&str]| {
        let mut c = r.in_netns("docker");
        c.arg("-H").arg(&host).args(args);
        c.output().unwrap()
    };
    let o = docker(&["run", "--rm", image, "echo", "hi"]);
    assert_eq!(common::ok(&o).trim(), "hi");
    let o = docker(&["run", "-d", "--name", "svc1", image, "sleep", "1000"]);
    common::ok(&o);
    let names = common::ok(&docker(&["ps", "--format", "{{.Names}}"]));
    assert!(names.lines().any(|l| l == "svc1"), "{names}");
    // The same container, seen by berth itself: rootless, the user's.
    let pid: i32 = r
        .ok(&["inspect", "--format", "{{.State.Pid}}", "svc1"])
        .trim()
        .parse()
        .unwrap();
    assert_eq!(uids(pid), Some((r.u.uid, r.u.uid)));
    common::ok(&docker(&["rm", "-f", "svc1"]));
    drop(stop);
    r.assert_no_processes_left();
}

/// Everything else as the rootless user, against a local registry (Debian's
/// docker-registry in the test's network namespace): push, pull, save,
/// load, run -d, exec, logs, cp out, a restart policy, stop, rm; from the
/// host: the store's files belong to the user or its subordinate range,
/// nothing is written under /var/lib/berth or /run/berth, and no process
/// of the user is left after rm.
#[test]
fn rootless_registry_and_everyday_commands() {
    require_root!();
    let Some(r) = Rootless::new(true) else {
        return;
    };
    let Some(reg) = common::Registry::start_in_netns(&r.netns.path) else {
        eprintln!(
            "SKIP: rootless_registry_and_everyday_commands: docker-registry is not installed"
        );
        return;
    };
    let (uid, sub) = (r.u.uid, r.subid());
    let image = r.import();
    let remote = format!("127.0.0.1:{}/rootless/bb:1", reg.port);
    r.ok(&["push", "-q", image, &remote]);
    r.ok(&["rmi", image]);
    assert!(r.ok(&["images", "-q"]).trim().is_empty());
    r.ok(&["pull", "-q", &remote]);
    let saved = r.user_dir("out").join("bb.tar");
    r.ok(&["save", "-o", saved.to_str().unwrap(), &remote]);
    assert_eq!(std::fs::metadata(&saved).unwrap().uid(), uid);
    r.ok(&["rmi", &remote]);
    r.ok(&["load", "-i", saved.to_str().unwrap()]);
    let images = r.ok(&["images", "--format", "{{.Repository}}:{{.Tag}}"]);
    assert!(images.lines().any(|l| l == remote), "{images}");

    r.ok(&[
        "run",
        "-d",
        "--name",
        "web",
        &remote,
        "sh",
        "-c",
        "echo started; echo data > /tmp/out; sleep 1000",
    ]);
    common::wait_for("the container's log line", 20, || {
        r.ok(&["logs", "web"]).contains("started").then_some(())
    });
    assert_eq!(r.ok(&["exec", "web", "cat", "/tmp/out"]), "data\n");
    let dest = r.user_dir("cp");
    r.ok(&["cp", "web:/tmp/out", dest.to_str().unwrap()]);
    let md = std::fs::metadata(dest.join("out")).unwrap();
    assert_eq!((md.uid(), md.gid()), (uid, r.u.gid));
    assert_eq!(std::fs::read_to_string(dest.join("out")).unwrap(), "data\n");
    r.ok(&["stop", "-t", "1", "web"]);
    let st = r.ok(&["inspect", "--format", "{{.State.Status}}", "web"]);
    assert_eq!(st.trim(), "exited");

    // A restart policy: the monitor (the user's) restarts it twice.
    r.ok(&[
        "run",
        "-d",
        "--name",
        "flaky",
        "--restart",
        "on-failure:2",
        &remote,
        "sh",
        "-c",
        "echo try; exit 1",
    ]);
    common::wait_for("two restarts, then exited", 60, || {
        let v: serde_json::Value = serde_json::from_str(&r.ok(&["inspect", "flaky"])).ok()?;
        let v = if v.is_array() { v[0].clone() } else { v };
        (v["State"]["RestartCount"] == 2 && v["State"]["Status"] == "exited").then_some(())
    });
    // Each of the three runs logged its line.
    common::wait_for("three runs in the log", 20, || {
        (r.ok(&["logs", "flaky"]).matches("try").count() == 3).then_some(())
    });
    r.ok(&["rm", "-f", "web", "flaky"]);
    assert!(r.ok(&["ps", "-a", "-q"]).trim().is_empty());

    // The store: every file the user's or its range's.
    let root = r.u.home.join(".local/share/berth");
    let foreign = owned_under(&root, |o| o != uid && !(sub..sub + 65536).contains(&o));
    assert!(
        foreign.is_empty(),
        "files of other owners in {}: {foreign:?}",
        root.display()
    );
    r.assert_nothing_left();
}
