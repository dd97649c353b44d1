//! Lifecycle edges (runtime.md "Lifecycle", "Operations", "Errors"):
//! hostile input refused with nothing left behind, concurrent creates,
//! deletes after the container died, and the CVE-2019-5736 defence.

mod common;
use common::*;
use serde_json::json;
use std::path::Path;
use std::process::Stdio;
use std::time::Duration;

/// Nothing of a failed create may remain: no state entry, no cgroup, no
/// mounts of the bundle on the host.
fn assert_nothing_left(env: &Env, b: &Bundle, what: &str) {
    let entries: Vec<_> = std::fs::read_dir(env.state.path())
        .expect("state root")
        .flatten()
        .map(|e| e.file_name())
        // The shared seccomp program cache is not a container's state.
        .filter(|n| n != ".seccomp-cache")
        .collect();
    assert!(entries.is_empty(), "{what}: state left: {entries:?}");
    assert!(
        env.cgroup_leftovers(&b.cgroups_path()).is_empty(),
        "{what}: cgroup left"
    );
    assert!(
        host_mounts_under(b.path()).is_empty(),
        "{what}: mounts left"
    );
}

/// `create` that must fail; returns its message.
fn create_fails(env: &Env, b: &Bundle, id: &str, what: &str) -> String {
    let st = env.create(b, id, &[]);
    let log = read_or_empty(b.path().join("create.log"));
    assert!(!st.success(), "{what}: create must fail");
    assert!(
        log.starts_with("berth-runtime") || log.contains("error"),
        "{what}: a clear message: {log}"
    );
    assert_nothing_left(env, b, what);
    log
}

#[test]
fn hostile_ids_are_refused() {
    require_root!();
    let env = Env::new();
    let b = env.bundle(&["true"]);
    let long = "a".repeat(1025);
    for id in [
        "a/b",
        "..",
        ".",
        "../escape",
        "bad\nid",
        "tab\tid",
        long.as_str(),
        "",
    ] {
        let log = create_fails(&env, &b, id, &format!("id {id:?}"));
        assert!(
            log.to_lowercase().contains("id"),
            "the message is about the ID: {log}"
        );
    }
    // Nothing was created next to the state root either.
    let parent = env.state.path().parent().expect("parent");
    assert!(!parent.join("escape").exists());
}

/// A change that breaks a config.
type ConfigEdit = Box<dyn Fn(&mut Bundle)>;

#[test]
fn broken_configs_are_refused_with_a_clear_message() {
    require_root!();
    let env = Env::new();
    let cases: Vec<(&str, ConfigEdit, &str)> = vec![
        (
            "ociVersion 2.0.0",
            Box::new(|b| b.config["ociVersion"] = json!("2.0.0")),
            "2.0.0",
        ),
        (
            "missing root path",
            Box::new(|b| b.config["root"]["path"] = json!("no-such-rootfs")),
            "no-such-rootfs",
        ),
        (
            "duplicate namespaces",
            Box::new(|b| {
                b.config["linux"]["namespaces"]
                    .as_array_mut()
                    .expect("ns")
                    .push(json!({"type": "pid"}))
            }),
            "more than once",
        ),
        (
            "empty args",
            Box::new(|b| b.config["process"]["args"] = json!([])),
            "args",
        ),
        (
            "relative mount destination",
            Box::new(|b| {
                b.config["mounts"]
                    .as_array_mut()
                    .expect("m")
                    .push(json!({"destination": "rel", "type": "tmpfs", "source": "tmpfs"}))
            }),
            "rel",
        ),
    ];
    for (what, edit, needle) in cases {
        let mut b = env.bundle(&["true"]);
        edit(&mut b);
        let log = create_fails(&env, &b, &env.id("cfg"), what);
        assert!(
            log.contains(needle),
            "{what}: message names {needle:?}: {log}"
        );
    }
}

#[test]
fn missing_or_invalid_config_json_is_refused() {
    require_root!();
    let env = Env::new();
    let b = env.bundle(&["true"]);
    let id = env.id("nocfg");
    let run = |b: &Bundle| {
        env.rt()
            .args(["create", "--bundle"])
            .arg(b.path())
            .arg(&id)
            .stdout(Stdio::null())
            .output()
            .expect("create")
    };
    std::fs::remove_file(b.path().join("config.json")).expect("rm config");
    let o = run(&b);
    assert!(!o.status.success());
    assert!(stderr(&o).contains("config.json"), "{}", stderr(&o));
    assert_nothing_left(&env, &b, "missing config.json");
    std::fs::write(b.path().join("config.json"), "{ not json").expect("write");
    let o = run(&b);
    assert!(!o.status.success());
    assert!(stderr(&o).contains("config.json"), "{}", stderr(&o));
    assert_nothing_left(&env, &b, "invalid JSON");
}

#[test]
fn missing_program_fails_create_with_its_name() {
    require_root!();
    let env = Env::new();
    let b = env.bundle(&["/no/such/program"]);
    let log = create_fails(&env, &b, &env.id("noprog"), "missing program");
    assert!(log.contains("/no/such/program"), "{log}");
    let b = env.bundle(&["no-such-program-in-path"]);
    let log = create_fails(&env, &b, &env.id("noprog"), "program not in PATH");
    assert!(log.contains("no-such-program-in-path"), "{log}");
}

#[test]
fn mount_destination_symlink_to_a_host_path_stays_inside_the_rootfs() {
    require_root!();
    let env = Env::new();
    let canary = tempfile::Builder::new()
        .prefix("berth-canary-")
        .tempdir()
        .expect("canary");
    let canary_s = canary.path().to_str().expect("utf-8").to_owned();
    let mut b = env.bundle(&["sleep", "60"]);
    std::os::unix::fs::symlink(&canary_s, b.rootfs().join("evil-abs")).expect("symlink");
    std::os::unix::fs::symlink(
        format!("../../../../../../../..{canary_s}"),
        b.rootfs().join("evil-rel"),
    )
    .expect("symlink");
    for dest in ["/evil-abs", "/evil-rel"] {
        b.config["mounts"].as_array_mut().expect("m").push(json!({"destination": dest, "type": "tmpfs", "source": "tmpfs", "options": ["size=1m"]}));
    }
    let id = env.id("symlinkmnt");
    let pid = env.create_pid(&b, &id);
    assert!(
        host_mounts_under(canary.path()).is_empty(),
        "the host canary must not be mounted on"
    );
    assert_eq!(
        std::fs::read_dir(canary.path()).expect("canary").count(),
        0,
        "the canary dir stays empty"
    );
    // The tmpfs landed inside the rootfs at the symlink's target.
    // /proc/PID/mountinfo shows mount points relative to the container's
    // root: the tmpfs is at the symlink target inside it.
    let info = std::fs::read_to_string(format!("/proc/{pid}/mountinfo")).expect("mountinfo");
    assert!(
        info.lines()
            .any(|l| l.split(' ').nth(4) == Some(canary_s.as_str()) && l.contains(" - tmpfs ")),
        "{info}"
    );
    assert!(
        b.rootfs().join(canary_s.trim_start_matches('/')).is_dir(),
        "the target was made inside the rootfs"
    );
    ok(&env.rt_out(&["delete", "--force", &id]));
    assert!(host_mounts_under(canary.path()).is_empty());
}

#[test]
fn cwd_symlink_escaping_the_rootfs_stays_inside() {
    require_root!();
    let env = Env::new();
    let canary = tempfile::Builder::new()
        .prefix("berth-canary-")
        .tempdir()
        .expect("canary");
    let canary_s = canary.path().to_str().expect("utf-8").to_owned();
    let o = run_with(&env, &["sh", "-c", "touch written-here; pwd -P"], |b| {
        std::os::unix::fs::symlink(
            format!("../../../../../../..{canary_s}"),
            b.rootfs().join("esc"),
        )
        .expect("symlink");
        b.config["process"]["cwd"] = json!("/esc");
    });
    assert_eq!(
        std::fs::read_dir(canary.path()).expect("canary").count(),
        0,
        "nothing written to the host: {}",
        stderr(&o)
    );
    if o.status.success() {
        assert_eq!(
            stdout(&o).trim(),
            canary_s,
            "the cwd is the rootfs's own {canary_s}"
        );
    }
}

#[test]
fn two_concurrent_creates_of_one_id_exactly_one_wins() {
    require_root!();
    let env = Env::new();
    let b1 = env.bundle(&["sleep", "60"]);
    let b2 = env.bundle(&["sleep", "60"]);
    b1.write();
    b2.write();
    let id = env.id("race");
    // Output to files: the winner's container inherits it (a pipe would
    // keep us waiting for the container).
    let spawn = |b: &Bundle| {
        let log = std::fs::File::create(b.path().join("create.log")).expect("log");
        env.rt()
            .args(["create", "--bundle"])
            .arg(b.path())
            .arg(&id)
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .expect("spawn create")
    };
    let (mut c1, mut c2) = (spawn(&b1), spawn(&b2));
    let (s1, s2) = (c1.wait().expect("wait"), c2.wait().expect("wait"));
    let (e1, e2) = (
        read_or_empty(b1.path().join("create.log")),
        read_or_empty(b2.path().join("create.log")),
    );
    let wins = [s1.success(), s2.success()];
    assert_eq!(
        wins.iter().filter(|w| **w).count(),
        1,
        "exactly one create wins: {e1} / {e2}"
    );
    let loser = if wins[0] { &e2 } else { &e1 };
    assert!(loser.contains(&id), "the loser names the ID: {loser}");
    let (winner_b, loser_b) = if wins[0] { (&b1, &b2) } else { (&b2, &b1) };
    let st = env.state(&id);
    assert_eq!(st["status"], "created");
    assert_eq!(
        st["bundle"],
        std::fs::canonicalize(winner_b.path())
            .expect("canon")
            .to_str()
            .expect("utf-8")
    );
    assert!(
        env.cgroup_leftovers(&loser_b.cgroups_path()).is_empty(),
        "the loser left no cgroup"
    );
}

#[test]
fn state_while_creating_says_creating() {
    require_root!();
    let env = Env::new();
    let mut b = env.bundle(&["sleep", "60"]);
    let flag = b.path().join("in-hook");
    let release = b.path().join("release");
    b.config["hooks"] = json!({"createRuntime": [{"path": "/bin/sh", "args": ["sh", "-c",
        format!("touch {}; while [ ! -e {} ]; do sleep 0.05; done", flag.display(), release.display())], "timeout": 60}]});
    b.write();
    let id = env.id("creating");
    let mut child = env
        .rt()
        .args(["create", "--bundle"])
        .arg(b.path())
        .arg(&id)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("create");
    for _ in 0..1000 {
        if flag.exists() {
            break;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    let st = env.rt_out(&["state", &id]);
    std::fs::write(&release, "").expect("release the hook");
    let done = child.wait().expect("wait create");
    assert!(done.success());
    let v: serde_json::Value = serde_json::from_slice(&st.stdout).unwrap_or_default();
    assert_eq!(
        v["status"],
        "creating",
        "state during the createRuntime hook: {v} {}",
        stderr(&st)
    );
    let s = env.rt_out(&["start", &id]);
    assert!(
        s.status.success() || env.state(&id)["status"] == "created",
        "{}",
        stderr(&s)
    );
}

#[test]
fn delete_after_the_container_was_sigkilled_from_the_host() {
    require_root!();
    let env = Env::new();
    let b = env.bundle(&["sh", "-c", "sleep 100 & sleep 100"]);
    let id = env.id("killed");
    let pid = env.create_pid(&b, &id);
    ok(&env.rt_out(&["start", &id]));
    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(pid),
        nix::sys::signal::Signal::SIGKILL,
    )
    .expect("kill");
    assert!(env.wait_status(&id, "stopped"));
    ok(&env.rt_out(&["delete", &id]));
    assert!(!env.state.path().join(&id).exists(), "state removed");
    assert!(
        env.cgroup_leftovers(&b.cgroups_path()).is_empty(),
        "cgroup removed"
    );
    assert!(!env.rt_out(&["state", &id]).status.success());
}

#[test]
fn delete_force_of_a_running_container() {
    require_root!();
    let env = Env::new();
    let b = env.bundle(&["sh", "-c", "trap '' TERM; sleep 100 & sleep 100"]);
    let id = env.id("force");
    let pid = env.create_pid(&b, &id);
    ok(&env.rt_out(&["start", &id]));
    ok(&env.rt_out(&["delete", "--force", &id]));
    let alive = Path::new(&format!("/proc/{pid}")).exists()
        && !read_or_empty(format!("/proc/{pid}/stat")).contains(") Z");
    assert!(!alive, "init {pid} is gone");
    assert!(!env.state.path().join(&id).exists(), "state removed");
    assert!(
        env.cgroup_leftovers(&b.cgroups_path()).is_empty(),
        "cgroup removed"
    );
    // Deleting again: not found, and --force makes that a success.
    assert!(!env.rt_out(&["delete", &id]).status.success());
    ok(&env.rt_out(&["delete", "--force", &id]));
}

#[test]

fn deleting_the_first_of_two_sibling_containers_is_quick() {
    require_root!();
    let env = Env::new();
    let (b1, b2) = (env.bundle(&["sleep", "60"]), env.bundle(&["sleep", "60"]));
    let (id1, id2) = (env.id("sib"), env.id("sib"));
    env.create_pid(&b1, &id1);
    env.create_pid(&b2, &id2);
    let t = std::time::Instant::now();
    let o = env.rt_out(&["delete", "--force", &id1]);
    assert!(o.status.success(), "{}", stderr(&o));
    assert!(
        t.elapsed() < Duration::from_secs(5),
        "delete took {:?}",
        t.elapsed()
    );
    assert!(env.cgroup_leftovers(&b1.cgroups_path()).is_empty());
    assert!(
        !env.cgroup_leftovers(&b2.cgroups_path()).is_empty(),
        "the sibling's cgroup stays"
    );
}

#[test]
fn init_runs_from_a_protected_copy_and_the_binary_cannot_be_overwritten() {
    require_root!();
    let env = Env::new();
    // A private copy, so a broken defence cannot corrupt the shared binary.
    let bin_dir = tempfile::tempdir().expect("bin dir");
    let bin = bin_dir.path().join("berth-runtime");
    std::fs::copy(runtime_bin(), &bin).expect("copy runtime");
    let before = std::fs::read(&bin).expect("read binary");
    let mtime = std::fs::metadata(&bin)
        .expect("stat")
        .modified()
        .expect("mtime");
    // Output to a file: the container inherits create's stdio.
    let log_path = bin_dir.path().join("rt.log");
    let rt = |args: &[&str]| {
        let log = std::fs::File::create(&log_path).expect("log");
        let st = std::process::Command::new(&bin)
            .arg("--root")
            .arg(env.state.path())
            .args(args)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(log)
            .status()
            .expect("run copy");
        (st, read_or_empty(&log_path))
    };
    // The container keeps trying to write every /proc/PID/exe it can see.
    let b = env.bundle(&["sh", "-c", "while true; do for p in /proc/[0-9]*; do echo x > $p/exe 2>/dev/null; done; sleep 0.01; done"]);
    b.write();
    let id = env.id("cve");
    let pidfile = b.path().join("pid");
    let (st, log) = rt(&[
        "create",
        "--bundle",
        b.path().to_str().expect("utf-8"),
        "--pid-file",
        pidfile.to_str().expect("utf-8"),
        &id,
    ]);
    assert!(st.success(), "{log}");
    let pid: i32 = std::fs::read_to_string(&pidfile)
        .expect("pid")
        .trim()
        .parse()
        .expect("pid");
    // selfexe.rs: a read-only detached bind mount of the binary (its link
    // reads "/") or, failing that, a sealed memfd copy.
    let exe = std::fs::read_link(format!("/proc/{pid}/exe")).expect("exe link");
    let exe_s = exe.to_string_lossy();
    assert!(
        exe_s.starts_with("/memfd:berth-runtime") || exe_s == "/",
        "init before start runs from a protected copy, not {exe_s}"
    );
    assert_ne!(exe.as_path(), bin.as_path());
    // Writing through the link from the host fails and never reaches the binary.
    let wrote = std::fs::OpenOptions::new()
        .write(true)
        .open(format!("/proc/{pid}/exe"))
        .and_then(|mut f| std::io::Write::write_all(&mut f, b"x"));
    assert!(wrote.is_err(), "writing the init's executable must fail");
    let (st, log) = rt(&["start", &id]);
    assert!(st.success(), "{log}");
    for _ in 0..5 {
        let (st, log) = rt(&["exec", &id, "true"]);
        assert!(st.success(), "{log}");
    }
    let (st, log) = rt(&["delete", "--force", &id]);
    assert!(st.success(), "{log}");
    assert_eq!(
        std::fs::metadata(&bin)
            .expect("stat")
            .modified()
            .expect("mtime"),
        mtime,
        "binary mtime unchanged"
    );
    assert!(
        std::fs::read(&bin).expect("read binary") == before,
        "binary content unchanged"
    );
}
