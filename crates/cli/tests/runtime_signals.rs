//! Signals and descriptors: `kill` by name and number and with --all
//! (runtime.md "Kill"), `run` forwarding signals and reporting 128+N, and
//! `--preserve-fds` passing exactly the descriptors asked for.

mod common;
use common::*;
use std::path::Path;
use std::process::Stdio;
use std::time::Duration;

/// Wait until `p` exists (the container wrote it).
fn wait_file(p: &Path) -> bool {
    for _ in 0..1000 {
        if p.exists() {
            return true;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    false
}

/// Wait until the file holds at least `n` lines; returns its text.
fn wait_lines(p: &Path, n: usize) -> String {
    for _ in 0..1000 {
        let t = read_or_empty(p);
        if t.lines().count() >= n {
            return t;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    read_or_empty(p)
}

/// The container's cgroup.procs in the v1 pids hierarchy (or v2).
fn cgroup_procs(b: &Bundle) -> Vec<String> {
    let rel = b.cgroups_path();
    let rel = rel.trim_start_matches('/');
    let p1 = Path::new("/sys/fs/cgroup/pids")
        .join(rel)
        .join("cgroup.procs");
    let p2 = Path::new("/sys/fs/cgroup").join(rel).join("cgroup.procs");
    let text = std::fs::read_to_string(&p1)
        .or_else(|_| std::fs::read_to_string(&p2))
        .expect("cgroup.procs");
    text.lines().map(str::to_owned).collect()
}

const TRAPPER: &str = "trap 'echo USR1 >> /tmp/sig' USR1; trap 'echo USR2 >> /tmp/sig' USR2; trap 'echo HUP >> /tmp/sig' HUP; \
    trap 'echo TERM >> /tmp/sig; exit 0' TERM; touch /tmp/ready; while true; do sleep 0.05; done";

#[test]
fn kill_accepts_names_and_numbers() {
    require_root!();
    let env = Env::new();
    let b = env.bundle(&["sh", "-c", TRAPPER]);
    let id = env.id("kill");
    env.create_pid(&b, &id);
    ok(&env.rt_out(&["start", &id]));
    let sig = b.rootfs().join("tmp/sig");
    assert!(wait_file(&b.rootfs().join("tmp/ready")));
    ok(&env.rt_out(&["kill", &id, "USR1"]));
    wait_lines(&sig, 1);
    ok(&env.rt_out(&["kill", &id, "SIGUSR2"]));
    wait_lines(&sig, 2);
    ok(&env.rt_out(&["kill", &id, "1"]));
    wait_lines(&sig, 3);
    let bad = env.rt_out(&["kill", &id, "NOTASIGNAL"]);
    assert!(!bad.status.success());
    assert!(stderr(&bad).contains("NOTASIGNAL"), "{}", stderr(&bad));
    ok(&env.rt_out(&["kill", &id, "15"]));
    let text = wait_lines(&sig, 4);
    assert_eq!(text, "USR1\nUSR2\nHUP\nTERM\n");
    assert!(env.wait_status(&id, "stopped"));
}

#[test]
fn kill_all_signals_every_process() {
    require_root!();
    let env = Env::new();
    // init handles TERM (a handler, unlike SIG_IGN, is not inherited by
    // exec); its two children die of it.
    let b = env.bundle(&["sh", "-c", "trap 'echo TERM >> /tmp/sig' TERM; sleep 100 & sleep 100 & touch /tmp/ready; while true; do sleep 0.05; done"]);
    let id = env.id("killall");
    env.create_pid(&b, &id);
    ok(&env.rt_out(&["start", &id]));
    assert!(wait_file(&b.rootfs().join("tmp/ready")));
    let before = cgroup_procs(&b).len();
    assert!(before >= 3, "init and two sleeps: {before}");
    ok(&env.rt_out(&["kill", &id, "TERM"]));
    std::thread::sleep(Duration::from_millis(300));
    assert!(
        cgroup_procs(&b).len() >= 3,
        "without --all only init gets the signal (and handles it)"
    );
    assert_eq!(wait_lines(&b.rootfs().join("tmp/sig"), 1), "TERM\n");
    ok(&env.rt_out(&["kill", "--all", &id, "TERM"]));
    let mut left = before;
    for _ in 0..500 {
        // init's loop starts short-lived sleeps; the two long ones must go.
        let procs = cgroup_procs(&b);
        left = procs
            .iter()
            .filter(|p| read_or_empty(format!("/proc/{p}/cmdline")) == "sleep\u{0}100\u{0}")
            .count();
        if left == 0 {
            break;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    assert_eq!(left, 0, "kill --all reached the children");
    assert_eq!(env.state(&id)["status"], "running", "init ignored TERM");
    ok(&env.rt_out(&["kill", "--all", &id, "KILL"]));
    assert!(env.wait_status(&id, "stopped"));
}

/// Spawn `run` in the background with output to a file.
fn spawn_run(env: &Env, b: &Bundle, id: &str) -> std::process::Child {
    b.write();
    let log = std::fs::File::create(b.path().join("run.log")).expect("log");
    env.rt()
        .args(["run", "--bundle"])
        .arg(b.path())
        .arg(id)
        .stdout(log.try_clone().expect("dup"))
        .stderr(log)
        .spawn()
        .expect("spawn run")
}

#[test]
fn foreground_run_forwards_sigterm() {
    require_root!();
    let env = Env::new();
    let b = env.bundle(&[
        "sh",
        "-c",
        "trap 'exit 3' TERM; touch /tmp/ready; while true; do sleep 0.05; done",
    ]);
    let id = env.id("fwd");
    let mut child = spawn_run(&env, &b, &id);
    assert!(
        wait_file(&b.rootfs().join("tmp/ready")),
        "container did not start: {}",
        read_or_empty(b.path().join("run.log"))
    );
    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(child.id() as i32),
        nix::sys::signal::Signal::SIGTERM,
    )
    .expect("signal run");
    let st = child.wait().expect("wait run");
    assert_eq!(
        st.code(),
        Some(3),
        "{}",
        read_or_empty(b.path().join("run.log"))
    );
    assert!(
        !env.state.path().join(&id).exists(),
        "run deletes the container"
    );
}

#[test]
fn foreground_run_reports_137_when_the_container_is_sigkilled() {
    require_root!();
    let env = Env::new();
    let b = env.bundle(&["sh", "-c", "touch /tmp/ready; exec sleep 100"]);
    let id = env.id("k9");
    let mut child = spawn_run(&env, &b, &id);
    assert!(wait_file(&b.rootfs().join("tmp/ready")));
    let pid = env.state(&id)["pid"].as_i64().expect("pid") as i32;
    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(pid),
        nix::sys::signal::Signal::SIGKILL,
    )
    .expect("kill init");
    let st = child.wait().expect("wait run");
    assert_eq!(
        st.code(),
        Some(128 + 9),
        "{}",
        read_or_empty(b.path().join("run.log"))
    );
}

/// `run` through a shell that opens fd 3 on a file first.
fn run_with_fd3(env: &Env, b: &Bundle, id: &str, extra: &str) -> std::process::Output {
    b.write();
    let marker = b.path().join("fd3.txt");
    std::fs::write(&marker, "preserved-content\n").expect("marker");
    let cmd = format!(
        "exec 3<'{}'; exec '{}' --root '{}' run {extra} --bundle '{}' '{id}'",
        marker.display(),
        runtime_bin().display(),
        env.state.path().display(),
        b.path().display()
    );
    std::process::Command::new("/bin/sh")
        .args(["-c", &cmd])
        .stdin(Stdio::null())
        .output()
        .expect("sh")
}

/// The fd numbers `ls /proc/self/fd` printed (one per line).
fn fd_list(out: &str) -> Vec<u32> {
    out.lines()
        .take_while(|l| *l != "--")
        .filter_map(|l| l.trim().parse().ok())
        .collect()
}

#[test]
fn preserve_fds_passes_fd_3_and_nothing_else() {
    require_root!();
    let env = Env::new();
    let b = env.bundle(&["sh", "-c", "ls -1 /proc/self/fd; echo --; cat <&3"]);
    let id = env.id("pfd");
    let out = ok(&run_with_fd3(&env, &b, &id, "--preserve-fds 1"));
    let fds = fd_list(&out);
    // 0 1 2 3 and the directory ls itself opened.
    assert_eq!(fds.len(), 5, "{out}");
    assert_eq!(&fds[..4], &[0, 1, 2, 3], "{out}");
    assert!(out.contains("preserved-content"), "{out}");
}

#[test]
fn without_preserve_fds_no_descriptor_leaks_in() {
    require_root!();
    let env = Env::new();
    let b = env.bundle(&[
        "sh",
        "-c",
        "ls -1 /proc/self/fd; echo --; ls -l /proc/self/fd",
    ]);
    let id = env.id("nofd");
    let out = ok(&run_with_fd3(&env, &b, &id, ""));
    let fds = fd_list(&out);
    // 0 1 2 and the directory ls itself opened: fd 3 from the host is gone.
    assert_eq!(fds.len(), 4, "{out}");
    assert_eq!(&fds[..3], &[0, 1, 2], "{out}");
    assert!(!out.contains("fd3.txt"), "{out}");
}
