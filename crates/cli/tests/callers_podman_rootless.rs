//! podman run by an unprivileged user (rootless podman: its own user
//! namespace with the user's subordinate range, storage under HOME, state
//! under XDG_RUNTIME_DIR) drives berth-runtime with `--runtime <berth>`,
//! compared with the same commands through `--runtime runc`: run --rm,
//! run -d, exec, stop, rm, with `--network none` and with slirp4netns. The
//! image is a busybox tarball the user `podman import`s (no network).
#[macro_use]
mod common;
mod callers_support;

use common::rootless::RootlessUser;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::time::Duration;

const T: Duration = Duration::from_secs(120);

fn text(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

/// `podman --runtime RT ...` as the user, without systemd (cgroupfs, file
/// events): everything else is rootless podman's defaults for the user.
fn podman(user: &RootlessUser, podman: &Path, runtime: &Path) -> Command {
    let mut c = user.cmd(podman);
    c.arg("--runtime").arg(runtime).args([
        "--cgroup-manager",
        "cgroupfs",
        "--events-backend",
        "file",
    ]);
    c
}

/// What one runtime did.
#[derive(Debug)]
struct Seen {
    run_rm: Output,
    /// `--memory`/`--pids-limit`: podman drops them on cgroup v1 rootless
    /// (with a warning); where it passes them, the runtime applies them.
    limits: Output,
    slirp: Option<Output>,
    run_d: Output,
    runtime_used: String,
    exec: Output,
    stop: Output,
    rm: Output,
    ps_after: String,
}

fn drive(user: &RootlessUser, bin: &Path, rt: &Path, image: &str, slirp: bool) -> Seen {
    let p = |label: &str, args: &[&str]| {
        callers_support::run(label, podman(user, bin, rt).args(args), T)
    };
    let run_rm = p(
        "run --rm",
        &["run", "--rm", "--network", "none", image, "echo", "hi"],
    );
    let limits = p(
        "run --rm --memory --pids-limit",
        &[
            "run",
            "--rm",
            "--network",
            "none",
            "--memory",
            "100m",
            "--pids-limit",
            "50",
            image,
            "echo",
            "hi",
        ],
    );
    let slirp = slirp.then(|| {
        p(
            "run --rm slirp4netns",
            &[
                "run",
                "--rm",
                "--network",
                "slirp4netns",
                image,
                "sh",
                "-c",
                "cat /proc/self/uid_map; ip -o -4 addr show tap0 | awk '{print $4}'",
            ],
        )
    });
    let run_d = p(
        "run -d",
        &["run", "-d", "--network", "none", image, "sleep", "300"],
    );
    let id = text(&run_d).trim().to_owned();
    let runtime_used = text(&p(
        "inspect",
        &["inspect", "--format", "{{.OCIRuntime}}", &id],
    ))
    .trim()
    .to_owned();
    let exec = p(
        "exec",
        &[
            "exec",
            &id,
            "sh",
            "-c",
            "id -u; cat /proc/self/uid_map /proc/self/gid_map",
        ],
    );
    let stop = p("stop", &["stop", "-t", "1", &id]);
    let rm = p("rm", &["rm", &id]);
    let ps_after = text(&p(
        "ps -a",
        &["ps", "-a", "--no-trunc", "--format", "{{.ID}}"],
    ));
    Seen {
        run_rm,
        limits,
        slirp,
        run_d,
        runtime_used,
        exec,
        stop,
        rm,
        ps_after,
    }
}

#[test]
fn rootless_podman_runs_berth_runtime_like_runc() {
    require_root!();
    let Some(podman_bin) = callers_support::find_tool("podman", &["/usr/bin/podman"]) else {
        eprintln!("SKIP: podman is not installed");
        return;
    };
    let Some(runc) = common::differential::runc_bin() else {
        eprintln!("SKIP: runc is not installed (apt-get install runc)");
        return;
    };
    let Some(user) = RootlessUser::create(true) else {
        return;
    };
    let slirp = Path::new("/usr/bin/slirp4netns").exists() && common::rootless::ensure_tun_usable();
    if !slirp {
        eprintln!(
            "SKIP (part): slirp4netns or a usable /dev/net/tun is missing; --network none only"
        );
    }
    // berth-runtime where the user can execute it.
    let berth = {
        let b = common::runtime_bin();
        let ok = user
            .cmd("test")
            .arg("-x")
            .arg(&b)
            .status()
            .is_ok_and(|s| s.success());
        if ok {
            b
        } else {
            let copy = user.base.join("berth-runtime");
            std::fs::copy(&b, &copy).expect("copy berth-runtime");
            copy
        }
    };
    // The image: a busybox rootfs tarball the user imports.
    let tmp = tempfile::tempdir().unwrap();
    let rootfs = tmp.path().join("rootfs");
    callers_support::busybox_rootfs(&rootfs);
    let tar = user.home.join("busybox.tar");
    callers_support::tar_dir(&rootfs, &tar);
    nix::unistd::chown(
        &tar,
        Some(nix::unistd::Uid::from_raw(user.uid)),
        Some(nix::unistd::Gid::from_raw(user.gid)),
    )
    .unwrap();
    let image = format!("localhost/{}:1", callers_support::unique("bb"));
    callers_support::ok(
        "podman import",
        &callers_support::run(
            "podman import",
            podman(&user, &podman_bin, &runc).args(["import", tar.to_str().unwrap(), &image]),
            T,
        ),
    );
    let seen: Vec<(PathBuf, Seen)> = [runc, berth]
        .into_iter()
        .map(|rt| {
            let s = drive(&user, &podman_bin, &rt, &image, slirp);
            (rt, s)
        })
        .collect();
    let subid = user.subid_start.expect("a subordinate range");
    let maps = format!(
        "{:>10} {:>10} {:>10}\n{:>10} {:>10} {:>10}\n",
        0, user.uid, 1, 1, subid, 65536
    );
    let (r, b) = (&seen[0].1, &seen[1].1);
    assert_eq!(
        (r.limits.status.code(), text(&r.limits)),
        (b.limits.status.code(), text(&b.limits)),
        "resource flags: runc {:?}, berth {:?}",
        r.limits,
        b.limits
    );
    for (rt, s) in &seen {
        let name = rt.display();
        assert!(s.run_rm.status.success(), "{name}: {s:#?}");
        assert_eq!(text(&s.run_rm), "hi\n", "{name} run --rm");
        if let Some(o) = &s.slirp {
            assert!(o.status.success(), "{name}: {o:?}");
            assert_eq!(
                text(o),
                format!("{maps}10.0.2.100/24\n"),
                "{name} slirp4netns"
            );
        }
        assert!(s.run_d.status.success(), "{name}: {s:#?}");
        assert_eq!(
            s.runtime_used,
            rt.to_str().unwrap(),
            "{name}: podman's runtime"
        );
        assert!(s.exec.status.success(), "{name}: {s:#?}");
        assert_eq!(text(&s.exec), format!("0\n{maps}{maps}"), "{name} exec");
        assert!(s.stop.status.success(), "{name}: {s:#?}");
        assert!(s.rm.status.success(), "{name}: {s:#?}");
        let id = text(&s.run_d).trim().to_owned();
        assert!(!s.ps_after.contains(&id), "{name}: left {}", s.ps_after);
    }
}
