//! Detached containers end to end, as root: the monitor's logs, exec,
//! stop with signal and timeout, restart policy, and the truth after the
//! monitor or a foreground `berth` is killed.

mod common;
use common::*;

use std::time::{Duration, Instant};

fn pid_of(env: &EngineEnv, name: &str) -> i32 {
    env.inspect(name)["State"]["Pid"]
        .as_i64()
        .expect("State.Pid") as i32
}

/// The pid of the monitor process of container `id` (found by its command
/// line in /proc).
fn monitor_pid(id: &str) -> Option<i32> {
    for e in std::fs::read_dir("/proc").ok()?.flatten() {
        let Ok(pid) = e.file_name().to_string_lossy().parse::<i32>() else {
            continue;
        };
        let cmd = std::fs::read(format!("/proc/{pid}/cmdline")).unwrap_or_default();
        let cmd = String::from_utf8_lossy(&cmd).replace('\0', " ");
        if cmd.contains("container-monitor") && cmd.contains(id) {
            return Some(pid);
        }
    }
    None
}

fn alive(pid: i32) -> bool {
    std::fs::read_to_string(format!("/proc/{pid}/stat"))
        .map(|s| {
            !s.rsplit(')')
                .next()
                .unwrap_or("")
                .trim_start()
                .starts_with('Z')
        })
        .unwrap_or(false)
}

#[test]
fn detached_logs_follow_and_wait() {
    require_root!();
    let env = EngineEnv::new();
    let img = env.busybox_image();
    env.ok(&[
        "run",
        "-d",
        "--name",
        "writer",
        &img,
        "sh",
        "-c",
        "for i in 1 2 3 4 5; do echo out $i; echo err $i >&2; sleep 0.2; done; exit 4",
    ]);
    // Follow while it writes: returns once the container exits.
    let o = env.berth(&["logs", "-f", "writer"]);
    assert!(o.status.success());
    let out = stdout(&o);
    assert_eq!(
        out.lines().collect::<Vec<_>>(),
        vec!["out 1", "out 2", "out 3", "out 4", "out 5"],
        "{out}"
    );
    assert_eq!(stderr(&o).matches("err ").count(), 5, "{}", stderr(&o));
    assert_eq!(env.ok(&["wait", "writer"]).trim(), "4");
    // The two streams are read apart: their last entries may come in
    // either order, so look at both outputs.
    let o = env.berth(&["logs", "-t", "--tail", "2", "writer"]);
    let (out, err) = (stdout(&o), stderr(&o));
    assert!(out.ends_with(" out 5\n") && out.contains('T'), "{out}");
    assert!(err.ends_with(" err 5\n"), "{err}");
    assert_eq!(out.lines().count() + err.lines().count(), 2);
    let v = env.inspect("writer");
    assert_eq!(v["State"]["Status"], "exited");
    assert_eq!(v["State"]["ExitCode"], 4);
    // ps: default hides exited ones; filters and JSON.
    assert_eq!(env.ok(&["ps", "-q"]), "");
    let json: serde_json::Value =
        serde_json::from_str(&env.ok(&["ps", "-a", "--format", "json", "--filter", "name=writ"]))
            .expect("json");
    assert_eq!(json[0]["Names"][0], "writer");
    assert_eq!(json[0]["State"], "exited");
    assert_eq!(env.ok(&["ps", "-aq", "--filter", "status=running"]), "");
}

#[test]
fn exec_into_a_running_container() {
    require_root!();
    let env = EngineEnv::new();
    let img = env.busybox_image();
    env.ok(&[
        "run", "-d", "--name", "box", "-e", "BASE=1", &img, "sleep", "1000",
    ]);
    let out = env.ok(&["exec", "-e", "X=2", "box", "sh", "-c", "echo $BASE$X; pwd"]);
    assert_eq!(out, "12\n/\n");
    assert_eq!(
        env.ok(&[
            "exec",
            "-u",
            "nobody",
            "-w",
            "/tmp",
            "box",
            "sh",
            "-c",
            "id -u; pwd"
        ]),
        "65534\n/tmp\n"
    );
    let o = env.berth(&["exec", "box", "sh", "-c", "exit 5"]);
    assert_eq!(o.status.code(), Some(5));
    let top = env.ok(&["top", "box"]);
    assert!(top.contains("sleep 1000"), "{top}");
    let stats = env.ok(&["stats", "--no-stream", "box"]);
    assert!(stats.contains("box"), "{stats}");
    // rm without -f refuses a running container; -f removes it.
    let o = env.berth(&["rm", "box"]);
    assert!(!o.status.success());
    assert!(stderr(&o).contains("rm -f"), "{}", stderr(&o));
    env.ok(&["rm", "-f", "box"]);
    assert!(env.inspect("box").is_null());
    assert!(env.mounts().is_empty(), "{:?}", env.mounts());
}

#[test]
fn stop_uses_the_stop_signal_then_sigkill() {
    require_root!();
    let env = EngineEnv::new();
    let img = env.busybox_image();
    // Handles SIGTERM: stops at once with its own status.
    env.ok(&[
        "run",
        "-d",
        "--name",
        "polite",
        &img,
        "sh",
        "-c",
        "trap 'echo bye; exit 7' TERM; while true; do sleep 0.1; done",
    ]);
    env.wait_inspect("polite", "running", |v| v["State"]["Running"] == true);
    let t = Instant::now();
    env.ok(&["stop", "-t", "30", "polite"]);
    assert!(
        t.elapsed() < Duration::from_secs(20),
        "did not wait for the timeout"
    );
    let v = env.inspect("polite");
    assert_eq!(v["State"]["ExitCode"], 7);
    assert!(env.ok(&["logs", "polite"]).contains("bye"));
    // Ignores SIGTERM: killed after the timeout.
    env.ok(&[
        "run",
        "-d",
        "--name",
        "stubborn",
        &img,
        "sh",
        "-c",
        "trap '' TERM; while true; do sleep 0.1; done",
    ]);
    env.wait_inspect("stubborn", "running", |v| v["State"]["Running"] == true);
    let t = Instant::now();
    env.ok(&["stop", "-t", "1", "stubborn"]);
    assert!(t.elapsed() >= Duration::from_secs(1), "waited the timeout");
    assert_eq!(env.inspect("stubborn")["State"]["ExitCode"], 137);
    // A stopped container starts again; restart works; kill sends a signal.
    env.ok(&["start", "stubborn"]);
    env.wait_inspect("stubborn", "running again", |v| {
        v["State"]["Running"] == true
    });
    env.ok(&["kill", "-s", "KILL", "stubborn"]);
    env.wait_inspect("stubborn", "killed", |v| v["State"]["Status"] == "exited");
    assert_eq!(env.inspect("stubborn")["State"]["ExitCode"], 137);
    env.ok(&["rename", "stubborn", "renamed"]);
    assert!(!env.inspect("renamed").is_null());
    let pruned = env.ok(&["container", "prune"]);
    assert_eq!(pruned.lines().count(), 2, "{pruned}");
    assert_eq!(env.ok(&["ps", "-aq"]), "");
}

#[test]
fn restart_policy_on_failure() {
    require_root!();
    let env = EngineEnv::new();
    let img = env.busybox_image();
    env.ok(&[
        "run",
        "-d",
        "--name",
        "flaky",
        "--restart",
        "on-failure:2",
        &img,
        "sh",
        "-c",
        "echo try; exit 1",
    ]);
    let v = env.wait_inspect("flaky", "two restarts then exited", |v| {
        v["State"]["RestartCount"] == 2 && v["State"]["Status"] == "exited"
    });
    assert_eq!(v["State"]["ExitCode"], 1);
    assert_eq!(env.ok(&["wait", "flaky"]).trim(), "1");
    assert_eq!(env.ok(&["logs", "flaky"]).matches("try").count(), 3);
}

#[test]
fn killed_monitor_then_ps_tells_the_truth_and_rm_cleans() {
    require_root!();
    let env = EngineEnv::new();
    let img = env.busybox_image();
    let id = env.ok(&["run", "-d", "--name", "orphan", &img, "sleep", "1000"]);
    let id = id.trim();
    let mon = wait_for("the monitor", 30, || monitor_pid(id));
    nix::sys::signal::kill(nix::unistd::Pid::from_raw(mon), nix::sys::signal::SIGKILL)
        .expect("kill monitor");
    wait_for("the monitor to die", 30, || (!alive(mon)).then_some(()));
    // The container still runs: ps says so.
    assert_eq!(env.inspect("orphan")["State"]["Status"], "running");
    let pid = pid_of(&env, "orphan");
    nix::sys::signal::kill(nix::unistd::Pid::from_raw(pid), nix::sys::signal::SIGKILL)
        .expect("kill container");
    env.wait_inspect("orphan", "exited after both died", |v| {
        v["State"]["Status"] == "exited"
    });
    assert!(
        env.mounts().is_empty(),
        "reconcile unmounted: {:?}",
        env.mounts()
    );
    env.ok(&["rm", "orphan"]);
    assert!(env.inspect("orphan").is_null());
    assert!(!env.root().join("containers").join(id).exists());
}

#[test]
fn killed_foreground_berth_then_rm_cleans() {
    require_root!();
    let env = EngineEnv::new();
    let img = env.busybox_image();
    let mut child = env
        .cmd()
        .args(["run", "--name", "fg", &img, "sleep", "1000"])
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .expect("spawn berth run");
    env.wait_inspect("fg", "running", |v| v["State"]["Running"] == true);
    child.kill().expect("kill berth");
    child.wait().expect("reap berth");
    let v = env.inspect("fg");
    assert_eq!(
        v["State"]["Status"], "running",
        "the container outlives berth"
    );
    env.ok(&["rm", "-f", "fg"]);
    assert!(env.inspect("fg").is_null());
    assert!(env.mounts().is_empty(), "{:?}", env.mounts());
    assert_eq!(env.ok(&["ps", "-aq"]), "");
}

/// A docker-archive of the busybox rootfs whose config sets `StopSignal`
/// (made with tar and sha256sum, no network); loaded as
/// `localhost/stopsig:1`.
fn load_stop_signal_image(env: &EngineEnv) -> String {
    env.busybox_image();
    let dir = env.dir.path().join("stopsig");
    std::fs::create_dir_all(&dir).expect("mkdir");
    std::fs::copy(env.dir.path().join("rootfs.tar"), dir.join("layer.tar")).expect("layer");
    let sum = std::process::Command::new("sha256sum")
        .arg(dir.join("layer.tar"))
        .output()
        .expect("sha256sum");
    let hex = stdout(&sum)
        .split_whitespace()
        .next()
        .expect("digest")
        .to_string();
    let config = serde_json::json!({
        "architecture": "amd64", "os": "linux",
        "config": {
            "Cmd": ["sh", "-c", "trap 'echo got usr1; exit 9' USR1; while true; do sleep 0.1; done"],
            "StopSignal": "SIGUSR1",
        },
        "rootfs": {"type": "layers", "diff_ids": [format!("sha256:{hex}")]},
    });
    std::fs::write(dir.join("config.json"), config.to_string()).expect("config");
    std::fs::write(
        dir.join("manifest.json"),
        r#"[{"Config":"config.json","RepoTags":["localhost/stopsig:1"],"Layers":["layer.tar"]}]"#,
    )
    .expect("manifest");
    let archive = env.dir.path().join("stopsig.tar");
    let st = std::process::Command::new("tar")
        .arg("-C")
        .arg(&dir)
        .arg("-cf")
        .arg(&archive)
        .args(["manifest.json", "config.json", "layer.tar"])
        .status()
        .expect("tar");
    assert!(st.success());
    env.ok(&["load", "-i", archive.to_str().expect("utf-8")]);
    "localhost/stopsig:1".into()
}

#[test]
fn stop_sends_the_images_stop_signal() {
    require_root!();
    if std::env::consts::ARCH != "x86_64" {
        eprintln!("SKIP: stop_sends_the_images_stop_signal builds an amd64 image config");
        return;
    }
    let env = EngineEnv::new();
    let img = load_stop_signal_image(&env);
    env.ok(&["run", "-d", "--name", "usr1", &img]);
    env.wait_inspect("usr1", "running", |v| v["State"]["Running"] == true);
    assert_eq!(env.inspect("usr1")["Config"]["StopSignal"], "SIGUSR1");
    let t = Instant::now();
    env.ok(&["stop", "-t", "30", "usr1"]);
    assert!(
        t.elapsed() < Duration::from_secs(20),
        "SIGUSR1 stopped it, not the timeout"
    );
    assert_eq!(env.inspect("usr1")["State"]["ExitCode"], 9);
    assert!(env.ok(&["logs", "usr1"]).contains("got usr1"));
}

#[test]
fn cp_in_and_out_of_running_and_stopped_containers() {
    require_root!();
    let env = EngineEnv::new();
    let img = env.busybox_image();
    let host = env.dir.path().join("payload");
    std::fs::create_dir_all(host.join("sub")).expect("mkdir");
    std::fs::write(host.join("sub/file"), "payload data").expect("write");
    env.ok(&["run", "-d", "--name", "cpbox", &img, "sleep", "1000"]);
    env.ok(&["cp", host.to_str().expect("utf-8"), "cpbox:/tmp"]);
    assert_eq!(
        env.ok(&["exec", "cpbox", "cat", "/tmp/payload/sub/file"]),
        "payload data"
    );
    env.ok(&[
        "exec",
        "cpbox",
        "sh",
        "-c",
        "echo made inside > /made; ln -s / /tmp/up",
    ]);
    env.ok(&["stop", "-t", "1", "cpbox"]);
    // Stopped: cp mounts the rootfs for the copy and unmounts it after.
    let out = env.dir.path().join("made");
    env.ok(&["cp", "cpbox:/made", out.to_str().expect("utf-8")]);
    assert_eq!(
        std::fs::read_to_string(&out).expect("copied out"),
        "made inside\n"
    );
    assert!(env.mounts().is_empty(), "{:?}", env.mounts());
    // A symlink to / inside the container stays inside.
    let o = env.berth(&[
        "cp",
        "cpbox:/tmp/up/etc/passwd",
        env.dir.path().join("pw").to_str().expect("utf-8"),
    ]);
    assert!(o.status.success());
    assert!(
        read_or_empty(env.dir.path().join("pw")).contains("nobody:/home/nobody"),
        "the image's passwd, not the host's"
    );
    let o = env.berth(&["cp", "/etc/hostname", "/tmp/x"]);
    assert!(stderr(&o).contains("CONTAINER:PATH"), "{}", stderr(&o));
}

#[test]
fn stop_ends_an_always_restarting_container() {
    require_root!();
    let env = EngineEnv::new();
    let img = env.busybox_image();
    env.ok(&[
        "run",
        "-d",
        "--name",
        "loop",
        "--restart",
        "always",
        &img,
        "sh",
        "-c",
        "sleep 0.2; exit 1",
    ]);
    env.wait_inspect("loop", "a restart", |v| {
        v["State"]["RestartCount"].as_i64() >= Some(1)
    });
    env.ok(&["stop", "-t", "2", "loop"]);
    let v = env.wait_inspect("loop", "exited", |v| v["State"]["Status"] == "exited");
    let count = v["State"]["RestartCount"].clone();
    std::thread::sleep(Duration::from_secs(2));
    let v = env.inspect("loop");
    assert_eq!(v["State"]["Status"], "exited", "not restarted after stop");
    assert_eq!(v["State"]["RestartCount"], count);
    // And it can be started again by hand.
    env.ok(&["start", "loop"]);
    env.ok(&["rm", "-f", "loop"]);
    assert!(env.mounts().is_empty(), "{:?}", env.mounts());
}

#[test]
fn unless_stopped_restarts_until_the_user_stops_it() {
    require_root!();
    let env = EngineEnv::new();
    let img = env.busybox_image();
    env.ok(&[
        "run",
        "-d",
        "--name",
        "us",
        "--restart",
        "unless-stopped",
        &img,
        "sh",
        "-c",
        "echo run; sleep 0.3; exit 1",
    ]);
    let v = env.wait_inspect("us", "two restarts", |v| {
        v["State"]["RestartCount"].as_i64() >= Some(2)
    });
    assert_eq!(v["HostConfig"]["RestartPolicy"]["Name"], "unless-stopped");
    env.ok(&["stop", "-t", "2", "us"]);
    let v = env.wait_inspect("us", "exited", |v| v["State"]["Status"] == "exited");
    let count = v["State"]["RestartCount"].clone();
    std::thread::sleep(Duration::from_secs(2));
    let v = env.inspect("us");
    assert_eq!(v["State"]["Status"], "exited", "not restarted after stop");
    assert_eq!(v["State"]["RestartCount"], count);
    // Started by hand it restarts again; `kill` is a user's stop too.
    env.ok(&["start", "us"]);
    env.wait_inspect("us", "running again", |v| v["State"]["Status"] == "running");
    env.ok(&["kill", "us"]);
    let v = env.wait_inspect("us", "exited after kill", |v| {
        v["State"]["Status"] == "exited"
    });
    let count = v["State"]["RestartCount"].clone();
    std::thread::sleep(Duration::from_secs(2));
    let v = env.inspect("us");
    assert_eq!(v["State"]["Status"], "exited", "not restarted after kill");
    assert_eq!(v["State"]["RestartCount"], count);
    env.ok(&["rm", "us"]);
    assert!(env.mounts().is_empty(), "{:?}", env.mounts());
}

/// Private dirty memory (kB) of a process: heap, stack, relocated data,
/// what it alone holds and the kernel cannot drop.
fn private_dirty_kb(pid: i32) -> u64 {
    let rollup = std::fs::read_to_string(format!("/proc/{pid}/smaps_rollup")).unwrap_or_default();
    rollup
        .lines()
        .filter(|l| l.starts_with("Private_Dirty:"))
        .filter_map(|l| l.split_whitespace().nth(1)?.parse::<u64>().ok())
        .sum()
}

/// Idle, a detached container's monitor is the small `berth-monitor` (the
/// same process, exec'd: the recorded monitor pid stays true) and holds
/// little memory of its own; it still logs, and the exit status reaches
/// the database through the full monitor it execs back into.
#[test]
fn idle_monitor_is_the_small_binary_and_still_records_the_exit() {
    require_root!();
    let env = EngineEnv::new();
    let img = env.busybox_image();
    let name = unique("small");
    let script = "echo up; while :; do sleep 1; done";
    env.ok(&["run", "-d", "--name", &name, &img, "sh", "-c", script]);
    let monitor = env.inspect(&name)["State"]["ConmonPid"]
        .as_i64()
        .expect("State.ConmonPid") as i32;
    assert!(monitor > 0, "a monitor pid is recorded");
    wait_for("the monitor to become berth-monitor", 60, || {
        let cmd = std::fs::read(format!("/proc/{monitor}/cmdline")).ok()?;
        let argv0 = cmd.split(|&b| b == 0).next()?;
        String::from_utf8_lossy(argv0)
            .ends_with("/berth-monitor")
            .then_some(())
    });
    let logs = wait_for("the first line in the log", 60, || {
        let l = env.ok(&["logs", &name]);
        l.contains("up").then_some(l)
    });
    assert_eq!(logs.trim(), "up");
    // The full monitor holds 2 MB and more of its own (heap, relocated
    // data); the small one a few hundred kB even unoptimised.
    let private = private_dirty_kb(monitor);
    eprintln!("idle monitor {monitor}: {private} kB private dirty");
    assert!(private < 1024, "idle monitor holds {private} kB of its own");
    env.ok(&["kill", "-s", "KILL", &name]);
    let v = env.wait_inspect(&name, "the exit recorded", |v| {
        v["State"]["Status"] == "exited"
    });
    // Recorded by the monitor (137 = killed by SIGKILL); a monitor that
    // died would leave -1 (unknown) after `ps` found it gone.
    assert_eq!(v["State"]["ExitCode"], 137, "{v}");
    wait_for("the monitor to exit", 60, || {
        (!alive(monitor)).then_some(())
    });
    env.ok(&["rm", &name]);
}
