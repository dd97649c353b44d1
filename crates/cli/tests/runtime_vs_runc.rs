//! berth-runtime against runc on the same bundles and call sequences
//! (tests/common/differential.rs): what callers read from the runtime's
//! stderr and log file, hooks' failures, exec's options, kill 0,
//! --preserve-fds and cgroup edge cases.
#[macro_use]
mod common;

use common::differential::{assert_same_codes, log_levels, Pair};

/// Errors are runc's log lines: `level=error` in text form on stderr,
/// JSON with `--log-format json`, and with `--log FILE` the line goes to
/// the file and the bare message to stderr.
#[test]
fn errors_are_logged_with_their_level_like_runc() {
    require_root!();
    let Some(pair) = Pair::new() else { return };
    let [runc, berth] = pair.each(|p| {
        let log_text = p.root.path().join("text.log");
        let log_json = p.root.path().join("json.log");
        let plain = p.out(&["state", "no-such-ctr"]);
        let json = p.out(&["--log-format", "json", "state", "no-such-ctr"]);
        let to_text = p.out(&["--log", log_text.to_str().unwrap(), "state", "no-such-ctr"]);
        let to_json = p.out(&[
            "--log",
            log_json.to_str().unwrap(),
            "--log-format",
            "json",
            "state",
            "no-such-ctr",
        ]);
        let text_file = std::fs::read_to_string(&log_text).unwrap_or_default();
        let json_file = std::fs::read_to_string(&log_json).unwrap_or_default();
        (vec![plain, json, to_text, to_json], text_file, json_file)
    });
    assert_same_codes("state of a missing container", &runc.0, &berth.0);
    for (name, side) in [("runc", &runc), ("berth", &berth)] {
        let (outs, text_file, json_file) = side;
        assert_eq!(log_levels(&outs[0].stderr), ["error"], "{name}: {outs:?}");
        assert!(outs[0].stderr.starts_with("time=\""), "{name}: {outs:?}");
        assert!(
            outs[0].stderr.contains("does not exist"),
            "{name}: {outs:?}"
        );
        let v: serde_json::Value = serde_json::from_str(outs[1].stderr.trim())
            .unwrap_or_else(|e| panic!("{name}: json stderr: {e}: {outs:?}"));
        assert_eq!(v["level"], "error", "{name}");
        assert!(v["msg"].as_str().unwrap().contains("does not exist"));
        assert!(v["time"].is_string());
        // With --log the line goes to the file, the bare message to stderr.
        for o in &outs[2..] {
            assert!(log_levels(&o.stderr).is_empty(), "{name}: {o:?}");
            assert!(o.stderr.contains("does not exist"), "{name}: {o:?}");
        }
        assert_eq!(log_levels(text_file), ["error"], "{name}: {text_file}");
        let v: serde_json::Value = serde_json::from_str(json_file.trim())
            .unwrap_or_else(|e| panic!("{name}: json log: {e}: {json_file}"));
        assert_eq!(v["level"], "error", "{name}");
    }
}

/// `--debug` writes `level=debug` lines (to `--log` when given) in the
/// chosen format, and a successful command writes no error.
#[test]
fn debug_lines_go_to_the_log_in_its_format() {
    require_root!();
    let Some(pair) = Pair::new() else { return };
    let [runc, berth] = pair.each(|p| {
        let b = p.bundle(&["true"]);
        let id = p.id("dbg");
        let log = p.root.path().join("debug.log");
        let log = log.to_str().unwrap().to_owned();
        let outs = p.run_seq(
            &b,
            &id,
            &[
                &[
                    "--debug",
                    "--log",
                    &log,
                    "--log-format",
                    "json",
                    "run",
                    "--bundle",
                    "{bundle}",
                    "{id}",
                ],
                &["delete", "{id}"],
            ],
        );
        (outs, std::fs::read_to_string(&log).unwrap_or_default())
    });
    assert_same_codes("run --debug", &runc.0, &berth.0);
    for (name, (outs, log)) in [("runc", &runc), ("berth", &berth)] {
        let levels = log_levels(log);
        assert!(
            levels.iter().any(|l| l == "debug"),
            "{name}: no debug line: {log}"
        );
        assert!(
            !levels.iter().any(|l| l == "error"),
            "{name}: error logged: {log}"
        );
        for l in log.lines() {
            let v: serde_json::Value =
                serde_json::from_str(l).unwrap_or_else(|e| panic!("{name}: not JSON: {l:?}: {e}"));
            assert!(v["msg"].is_string() && v["time"].is_string(), "{name}: {l}");
        }
        assert!(log_levels(&outs[0].stderr).is_empty(), "{name}: {outs:?}");
    }
}

/// `kill ID 0` (and `kill --all ID 0`) checks the container has a live
/// process: exit 0 while it runs, an error once it stopped.
#[test]
fn kill_with_signal_zero_checks_the_container() {
    require_root!();
    let Some(pair) = Pair::new() else { return };
    let [runc, berth] = pair.each(|p| {
        let b = p.bundle(&["sleep", "100"]);
        let id = p.id("k0");
        let mut outs = p.run_seq(
            &b,
            &id,
            &[
                &["create", "--bundle", "{bundle}", "{id}"],
                &["kill", "{id}", "0"],
                &["start", "{id}"],
                &["kill", "{id}", "0"],
                &["kill", "--all", "{id}", "0"],
                &["kill", "{id}", "KILL"],
            ],
        );
        assert!(p.wait_status(&id, "stopped"), "{}: not stopped", p.name());
        outs.extend(p.run_seq(&b, &id, &[&["kill", "{id}", "0"], &["delete", "{id}"]]));
        outs
    });
    assert_same_codes("kill 0", &runc, &berth);
    assert_eq!(
        common::differential::codes(&berth)[..6],
        [0, 0, 0, 0, 0, 0],
        "{berth:#?}"
    );
    assert_ne!(berth[6].code, 0, "kill 0 of a stopped container");
}

/// `linux.resources.pids.limit` 0 is no limit (pids.max stays "max").
#[test]
fn pids_limit_zero_is_unlimited() {
    require_root_v1!();
    let Some(pair) = Pair::new() else { return };
    let [runc, berth] = pair.each(|p| {
        let mut b = p.bundle(&["sh", "-c", "/bin/true && echo forked"]);
        b.config["linux"]["resources"]["pids"] = serde_json::json!({"limit": 0});
        let id = p.id("pids0");
        let mut outs = p.run_seq(&b, &id, &[&["create", "--bundle", "{bundle}", "{id}"]]);
        let max =
            std::fs::read_to_string(p.cgroup_dir(&b, "pids").join("pids.max")).unwrap_or_default();
        outs.extend(p.run_seq(&b, &id, &[&["start", "{id}"]]));
        p.wait_status(&id, "stopped");
        outs.extend(p.run_seq(&b, &id, &[&["delete", "{id}"]]));
        (outs, max.trim().to_owned())
    });
    assert_same_codes("pids.limit 0", &runc.0, &berth.0);
    assert_eq!(runc.1, "max");
    assert_eq!(berth.1, runc.1);
}

/// `--preserve-fds N` with fewer than N extra descriptors open: runc goes
/// on; berth too, passing the ones that are open.
#[test]
fn preserve_fds_tolerates_missing_descriptors() {
    require_root!();
    let Some(pair) = Pair::new() else { return };
    let [runc, berth] = pair.each(|p| {
        let b = p.bundle(&["sh", "-c", "cat <&4"]);
        b.write();
        let data = b.path().join("fd4.txt");
        std::fs::write(&data, "through fd 4\n").unwrap();
        let id = p.id("pfd");
        // fd 4 open, 3 and 5 not.
        let mut c = std::process::Command::new("sh");
        c.arg("-c")
            .arg(format!("exec \"$@\" 4<{}", data.display()))
            .arg("sh")
            .arg(&p.bin)
            .arg("--root")
            .arg(p.root.path())
            .args(["run", "--preserve-fds", "3", "--bundle"])
            .arg(b.path())
            .arg(&id)
            .stdin(std::process::Stdio::null());
        let run = p.output(c);
        let del = p.out(&["delete", "--force", &id]);
        vec![run, del]
    });
    assert_same_codes("run --preserve-fds 3 with only fd 4", &runc, &berth);
    assert_eq!(berth[0].stdout, "through fd 4\n", "{berth:#?}");
    assert_eq!(berth[0].stdout, runc[0].stdout);
}

/// `exec --env K=V` replaces K of process.env; a failure before the
/// process runs (missing sub-cgroup, pid file in a missing directory,
/// paused container) exits 255; `--cgroup CONTROLLER:SUB` puts the process
/// in a sub-cgroup; `--ignore-paused` execs into a paused container (the
/// process runs once it is resumed).
#[test]
fn exec_env_cgroup_paused_and_early_failures() {
    require_root_v1!();
    let Some(pair) = Pair::new() else { return };
    let [runc, berth] = pair.each(|p| {
        let mut b = p.bundle(&["sleep", "100"]);
        b.config["process"]["env"] = serde_json::json!(["PATH=/bin", "FOO=config", "BAR=kept"]);
        let id = p.id("ex");
        let mut outs = p.run_seq(
            &b,
            &id,
            &[
                &["create", "--bundle", "{bundle}", "{id}"],
                &["start", "{id}"],
                &[
                    "exec",
                    "--env",
                    "FOO=exec",
                    "{id}",
                    "sh",
                    "-c",
                    "echo $FOO $BAR",
                ],
                &["exec", "--cgroup", "memory:no-such-sub", "{id}", "true"],
                &[
                    "exec",
                    "--pid-file",
                    "/no/such/dir/exec.pid",
                    "{id}",
                    "sh",
                    "-c",
                    "sleep 2; touch /tmp/survived",
                ],
            ],
        );
        // The process whose pid file could not be written was killed.
        std::thread::sleep(std::time::Duration::from_secs(3));
        let survived = b.rootfs().join("tmp/survived").exists();
        let sub = p.cgroup_dir(&b, "memory").join("sub");
        std::fs::create_dir(&sub).expect("mkdir sub-cgroup");
        let cg = p.out(&[
            "exec",
            "--cgroup",
            "memory:sub",
            &id,
            "cat",
            "/proc/self/cgroup",
        ]);
        let line = cg
            .stdout
            .lines()
            .find(|l| l.contains(":memory:"))
            .unwrap_or_default()
            .to_owned();
        outs.push(cg);
        outs.extend(p.run_seq(&b, &id, &[&["pause", "{id}"], &["exec", "{id}", "true"]]));
        // --ignore-paused: exec waits for the frozen process; resume frees it.
        let marker = b.rootfs().join("tmp/ran");
        let mut c = p.cmd();
        c.args(["exec", "--ignore-paused", &id, "touch", "/tmp/ran"]);
        let waiter = std::thread::spawn(move || c.output().expect("exec --ignore-paused"));
        std::thread::sleep(std::time::Duration::from_millis(1500));
        let ran_while_paused = marker.exists();
        outs.extend(p.run_seq(&b, &id, &[&["resume", "{id}"]]));
        let o = waiter.join().unwrap();
        outs.push(o.into());
        let ran = marker.exists();
        outs.extend(p.run_seq(&b, &id, &[&["kill", "{id}", "KILL"]]));
        p.wait_status(&id, "stopped");
        let _ = std::fs::remove_dir(&sub);
        outs.extend(p.run_seq(&b, &id, &[&["delete", "{id}"]]));
        (outs, line, ran_while_paused, ran, survived)
    });
    assert_same_codes("exec sequence", &runc.0, &berth.0);
    assert_eq!(
        common::differential::codes(&berth.0),
        [0, 0, 0, 255, 255, 0, 0, 255, 0, 0, 0, 0],
        "{:#?}",
        berth.0
    );
    assert_eq!(berth.0[2].stdout, "exec kept\n");
    assert_eq!(berth.0[2].stdout, runc.0[2].stdout);
    for (name, side) in [("runc", &runc), ("berth", &berth)] {
        assert!(
            side.1.ends_with("/sub"),
            "{name}: memory cgroup {:?}",
            side.1
        );
        assert!(!side.2, "{name}: the exec'd process ran while paused");
        assert!(
            side.3,
            "{name}: the exec'd process did not run after resume"
        );
        assert!(!side.4, "{name}: a process whose exec failed kept running");
    }
    assert_eq!(log_levels(&berth.0[3].stderr), ["error"]);
}

/// A failing poststart hook: `run` fails with the hook's message and the
/// container is gone (runtime.md "Lifecycle" step 9). A failing poststop
/// hook: the state is removed all the same (step 13: the lifecycle goes on)
/// and `delete` exits non-zero with the hook's message, as runc does since
/// opencontainers/runc#2905; the installed runc 1.1 still exits 0 there, so
/// that one step is compared with berth's expected code instead.
#[test]
fn failing_poststart_and_poststop_hooks_fail_the_command() {
    require_root!();
    let Some(pair) = Pair::new() else { return };
    let hook = |msg: &str, code: i32| serde_json::json!({"path": "/bin/sh", "args": ["sh", "-c", format!("echo {msg} >&2; exit {code}")]});
    let [runc, berth] = pair.each(|p| {
        let mut b = p.bundle(&["sleep", "100"]);
        b.config["hooks"] = serde_json::json!({"poststart": [hook("poststart-broke", 3)]});
        let id = p.id("hps");
        let mut outs = p.run_seq(
            &b,
            &id,
            &[
                &["run", "-d", "--bundle", "{bundle}", "{id}"],
                &["state", "{id}"],
            ],
        );
        let mut b = p.bundle(&["sleep", "100"]);
        b.config["hooks"] = serde_json::json!({"poststop": [hook("poststop-broke", 4)]});
        let id = p.id("hpo");
        outs.extend(p.run_seq(
            &b,
            &id,
            &[
                &["run", "-d", "--bundle", "{bundle}", "{id}"],
                &["kill", "{id}", "KILL"],
            ],
        ));
        p.wait_status(&id, "stopped");
        outs.extend(p.run_seq(&b, &id, &[&["delete", "{id}"], &["state", "{id}"]]));
        outs
    });
    let (mut runc_codes, berth_codes) = (
        common::differential::codes(&runc),
        common::differential::codes(&berth),
    );
    if runc_codes[4] == 0 {
        // runc 1.1 (before #2905's fix) exits 0 for a failing poststop hook.
        runc_codes[4] = 1;
    }
    assert_eq!(runc_codes, berth_codes, "runc {runc:#?}\nberth {berth:#?}");
    assert_eq!(berth_codes, [1, 1, 0, 0, 1, 1]);
    assert!(berth[0].stderr.contains("poststart-broke"), "{berth:#?}");
    assert!(berth[4].stderr.contains("poststop-broke"), "{berth:#?}");
    assert_eq!(
        log_levels(&berth[4].stderr).last().map(String::as_str),
        Some("error")
    );
}

/// An exec'd process is in every cgroup of the container (all v1
/// hierarchies, name=systemd and the cgroup2 membership on hybrid hosts),
/// the devices rules hold for it (also a deny set by `update`), a process
/// file can come through a pipe (`-p /dev/fd/N`), and `exec --user` leaves
/// /dev/null owned by root.
#[test]
fn exec_joins_every_cgroup_and_obeys_device_rules() {
    require_root_v1!();
    let Some(pair) = Pair::new() else { return };
    let [runc, berth] = pair.each(|p| {
        let b = p.bundle(&["sleep", "100"]);
        let id = p.id("exc");
        let mut outs = p.run_seq(
            &b,
            &id,
            &[
                &["run", "-d", "--bundle", "{bundle}", "{id}"],
                &["exec", "-d", "--pid-file", "{bundle}/e.pid", "{id}", "sleep", "30"],
                &["exec", "{id}", "sh", "-c", "head -c1 /dev/zero | wc -c"],
                &["exec", "--user", "65534:65534", "{id}", "sh", "-c", "stat -c %u:%g /dev/null"],
            ],
        );
        let res = b.path().join("deny.json");
        std::fs::write(
            &res,
            r#"{"devices": [{"allow": false, "type": "c", "major": 1, "minor": 5, "access": "rwm"}]}"#,
        )
        .unwrap();
        outs.push(p.out(&["update", "-r", res.to_str().unwrap(), &id]));
        outs.push(p.out(&["exec", &id, "sh", "-c", "head -c1 /dev/zero | wc -c"]));
        // process.json through a pipe on fd 5.
        let proc_json = serde_json::json!({
            "args": ["echo", "from-a-pipe"], "cwd": "/", "env": ["PATH=/bin"],
            "user": {"uid": 0, "gid": 0}
        });
        let pj = b.path().join("p.json");
        std::fs::write(&pj, proc_json.to_string()).unwrap();
        let mut c = std::process::Command::new("sh");
        c.arg("-c")
            .arg(format!("cat {} | \"$@\" 5<&0 </dev/null", pj.display()))
            .arg("sh")
            .arg(&p.bin)
            .arg("--root")
            .arg(p.root.path())
            .args(["exec", "-p", "/dev/fd/5", &id]);
        outs.push(p.output(c));
        let init_pid = p.state(&id).map(|_| ()).and_then(|_| {
            let o = p.out(&["state", &id]);
            serde_json::from_str::<serde_json::Value>(&o.stdout).ok()?["pid"].as_i64()
        });
        let init_cg = std::fs::read_to_string(format!("/proc/{}/cgroup", init_pid.unwrap_or(0)))
            .unwrap_or_default();
        let epid = std::fs::read_to_string(b.path().join("e.pid")).unwrap_or_default();
        let exec_cg = std::fs::read_to_string(format!("/proc/{}/cgroup", epid.trim()))
            .unwrap_or_default();
        outs.extend(p.run_seq(&b, &id, &[&["delete", "--force", "{id}"]]));
        (outs, init_cg, exec_cg)
    });
    assert_same_codes("exec cgroups/devices", &runc.0, &berth.0);
    // runc 1.1's `update -r` ignores `devices`; berth applies them, and
    // the deny holds for processes exec'd afterwards.
    assert_eq!(
        berth.0[5].stdout.trim(),
        "0",
        "/dev/zero denied: {:#?}",
        berth.0
    );
    for (name, (outs, init_cg, exec_cg)) in [("runc", &runc), ("berth", &berth)] {
        // Same membership as the init, hierarchy by hierarchy (host view).
        assert!(
            init_cg.contains("name=systemd:/berth-test-"),
            "{name}: {init_cg}"
        );
        let mut a: Vec<&str> = exec_cg.lines().collect();
        let mut b: Vec<&str> = init_cg.lines().collect();
        a.sort();
        b.sort();
        assert_eq!(a, b, "{name}: exec'd process vs init cgroups");
        assert_eq!(outs[2].stdout.trim(), "1", "{name}: {outs:#?}");
        assert_eq!(outs[3].stdout.trim(), "0:0", "{name}: {outs:#?}");
        assert_eq!(outs[6].stdout.trim(), "from-a-pipe", "{name}: {outs:#?}");
    }
}

/// `<runtime> --root <state> ARGS` on a pty of its own (runc's foreground
/// terminal needs one), through script(1).
fn under_pty(p: &common::differential::Peer, args: &[&str]) -> common::differential::Outcome {
    let q = |a: &str| format!("'{}'", a.replace('\'', "'\\''"));
    let mut line = format!(
        "{} --root {}",
        q(p.bin.to_str().unwrap()),
        q(p.root.path().to_str().unwrap())
    );
    for a in args {
        line.push(' ');
        line.push_str(&q(a));
    }
    let mut c = std::process::Command::new("script");
    c.args(["-qec", &line, "/dev/null"]);
    p.output(c)
}

/// The terminal of a run or exec'd process belongs to the process's user;
/// its group stays devpts' tty group (runc's fixStdioPermissions).
#[test]
fn terminal_is_owned_by_the_process_user() {
    require_root!();
    let Some(pair) = Pair::new() else { return };
    let [runc, berth] = pair.each(|p| {
        let mut b = p.bundle(&["sh", "-c", "stat -c %u:%g $(tty)"]);
        b.config["process"]["terminal"] = serde_json::json!(true);
        b.config["process"]["user"] = serde_json::json!({"uid": 65534, "gid": 65534});
        b.write();
        let id = p.id("tty");
        let bundle = b.path().to_str().unwrap().to_owned();
        let mut outs = vec![under_pty(p, &["run", "--bundle", &bundle, &id])];
        b.config["process"]["terminal"] = serde_json::json!(false);
        b.config["process"]["user"] = serde_json::json!({"uid": 0, "gid": 0});
        b.config["process"]["args"] = serde_json::json!(["sleep", "100"]);
        let id = p.id("ttyx");
        outs.extend(p.run_seq(&b, &id, &[&["run", "-d", "--bundle", "{bundle}", "{id}"]]));
        outs.push(under_pty(
            p,
            &[
                "exec",
                "-t",
                "--user",
                "1000:1001",
                &id,
                "sh",
                "-c",
                "stat -c %u:%g $(tty)",
            ],
        ));
        outs.extend(p.run_seq(&b, &id, &[&["delete", "--force", "{id}"]]));
        outs
    });
    assert_same_codes("terminal ownership", &runc, &berth);
    // script(1) echoes ^@ for the end of its (empty) input.
    let owner = |o: &common::differential::Outcome| o.stdout.replace("^@", "").trim().to_owned();
    assert_eq!(owner(&berth[0]), "65534:5", "{berth:#?}");
    assert_eq!(owner(&berth[2]), "1000:5", "{berth:#?}");
    assert_eq!(owner(&berth[0]), owner(&runc[0]));
    assert_eq!(owner(&berth[2]), owner(&runc[2]));
}

/// Makes the bundle's cgroup in every v1 hierarchy (and the cgroup2 one)
/// before `create`, as a caller that prepares it would.
fn precreate_cgroup(b: &common::Bundle) -> Vec<std::path::PathBuf> {
    let rel = b.cgroups_path().trim_start_matches('/').to_owned();
    let mut dirs = Vec::new();
    for e in std::fs::read_dir("/sys/fs/cgroup").unwrap().flatten() {
        let d = e.path().join(&rel);
        if e.path().join("cgroup.procs").exists() && std::fs::create_dir_all(&d).is_ok() {
            dirs.push(d);
        }
    }
    let cpuset = std::path::Path::new("/sys/fs/cgroup/cpuset");
    if cpuset.exists() {
        // Empty cpuset.cpus/mems refuse tasks: copy the root's down.
        let mut cur = cpuset.to_path_buf();
        for part in rel.split('/') {
            cur = cur.join(part);
            for f in ["cpuset.cpus", "cpuset.mems"] {
                let v = std::fs::read_to_string(cpuset.join(f)).unwrap();
                let _ = std::fs::write(cur.join(f), v.trim());
            }
        }
    }
    dirs
}

/// A pre-existing frozen cgroup is refused at once (no hang); one with a
/// process in it gets runc's warning and the container runs.
#[test]
fn preexisting_frozen_or_busy_cgroup() {
    require_root_v1!();
    let Some(pair) = Pair::new() else { return };
    let [runc, berth] = pair.each(|p| {
        // Frozen.
        let b = p.bundle(&["true"]);
        let dirs = precreate_cgroup(&b);
        let freezer = p.cgroup_dir(&b, "freezer");
        std::fs::write(freezer.join("freezer.state"), "FROZEN").unwrap();
        b.write();
        let id = p.id("frozen");
        let mut c = std::process::Command::new("timeout");
        c.arg("60")
            .arg(&p.bin)
            .arg("--root")
            .arg(p.root.path())
            .args(["run", "-d", "--bundle"])
            .arg(b.path())
            .arg(&id)
            .stdin(std::process::Stdio::null());
        let frozen = p.output(c);
        let _ = std::fs::write(freezer.join("freezer.state"), "THAWED");
        let _ = p.out(&["delete", "--force", &id]);
        for d in dirs.iter().rev() {
            let _ = std::fs::remove_dir(d);
        }
        // Busy: a process of the test's own is in it.
        let b = p.bundle(&["sleep", "100"]);
        let dirs = precreate_cgroup(&b);
        let mut sleeper = std::process::Command::new("sleep")
            .arg("100")
            .spawn()
            .unwrap();
        for d in &dirs {
            let _ = std::fs::write(d.join("cgroup.procs"), sleeper.id().to_string());
        }
        let id = p.id("busy");
        let busy = p.run_seq(
            &b,
            &id,
            &[
                &["run", "-d", "--bundle", "{bundle}", "{id}"],
                &["state", "{id}"],
            ],
        );
        let _ = sleeper.kill();
        let _ = sleeper.wait();
        let _ = p.out(&["delete", "--force", &id]);
        for d in dirs.iter().rev() {
            let _ = std::fs::remove_dir(d);
        }
        (frozen, busy)
    });
    assert_eq!(runc.0.code, berth.0.code, "frozen: {runc:#?}\n{berth:#?}");
    assert_eq!(berth.0.code, 1, "frozen cgroup: {:#?}", berth.0);
    assert!(berth.0.stderr.contains("frozen"), "{:#?}", berth.0);
    assert_same_codes("busy cgroup", &runc.1, &berth.1);
    for (name, side) in [("runc", &runc), ("berth", &berth)] {
        let w = &side.1[0].stderr;
        assert!(
            log_levels(w).iter().any(|l| l == "warning") && w.contains("cgroup is not empty"),
            "{name}: {w}"
        );
    }
}

/// `update --cpu-period/--cpu-quota` under a parent that limits CPU: the
/// kernel refuses the smaller period while the old quota stands, so the
/// quota goes first (runc's order) and both values land.
#[test]
fn update_cpu_period_below_a_limiting_parent() {
    require_root_v1!();
    let Some(pair) = Pair::new() else { return };
    let cpu_root = std::path::Path::new("/sys/fs/cgroup/cpu");
    if !cpu_root.join("cpu.cfs_period_us").exists() {
        eprintln!("SKIP: no v1 cpu hierarchy with CFS bandwidth");
        return;
    }
    let [runc, berth] = pair.each(|p| {
        let parent = cpu_root.join(p.cgroup_parent.trim_start_matches('/'));
        std::fs::create_dir_all(&parent).unwrap();
        std::fs::write(parent.join("cpu.cfs_period_us"), "100000").unwrap();
        std::fs::write(parent.join("cpu.cfs_quota_us"), "50000").unwrap();
        let mut b = p.bundle(&["sleep", "100"]);
        b.config["linux"]["resources"]["cpu"] =
            serde_json::json!({"period": 100000, "quota": 50000});
        let id = p.id("cpu");
        let outs = p.run_seq(
            &b,
            &id,
            &[
                &["run", "-d", "--bundle", "{bundle}", "{id}"],
                &[
                    "update",
                    "--cpu-period",
                    "50000",
                    "--cpu-quota",
                    "25000",
                    "{id}",
                ],
            ],
        );
        let dir = p.cgroup_dir(&b, "cpu");
        let read = |f: &str| {
            std::fs::read_to_string(dir.join(f))
                .unwrap_or_default()
                .trim()
                .to_owned()
        };
        let vals = (read("cpu.cfs_period_us"), read("cpu.cfs_quota_us"));
        let _ = p.out(&["delete", "--force", &id]);
        (outs, vals)
    });
    assert_same_codes("update cpu period/quota", &runc.0, &berth.0);
    assert_eq!(
        common::differential::codes(&berth.0),
        [0, 0],
        "{:#?}",
        berth.0
    );
    assert_eq!(berth.1, ("50000".to_owned(), "25000".to_owned()));
    assert_eq!(berth.1, runc.1);
}

/// Device rules: an access string with letters besides r, w, m ("rwa", as
/// in runc's own tests) keeps r, w, m; `update` of the rules never denies,
/// even for a moment, a device that stays allowed (runc's minimal
/// transition; runc 1.1's `update -r` leaves devices as they are, so it
/// trivially never denies /dev/null either).
#[test]
fn device_rules_odd_access_and_updates_without_gaps() {
    require_root_v1!();
    let Some(pair) = Pair::new() else { return };
    let [runc, berth] = pair.each(|p| {
        let mut b = p.bundle(&[
            "sh",
            "-c",
            "n=0; touch /tmp/go; while [ ! -e /tmp/stop ]; do : </dev/null || n=$((n+1)); done 2>/dev/null; echo $n > /tmp/fails; sleep 100",
        ]);
        let devs = b.config["linux"]["resources"]["devices"].as_array().cloned().unwrap_or_default();
        let mut devs = devs;
        devs.push(serde_json::json!({"allow": true, "type": "c", "major": 4, "minor": 1, "access": "rwa"}));
        b.config["linux"]["resources"]["devices"] = serde_json::json!(devs);
        let id = p.id("dev");
        let mut outs = p.run_seq(&b, &id, &[&["run", "-d", "--bundle", "{bundle}", "{id}"]]);
        let list = std::fs::read_to_string(p.cgroup_dir(&b, "devices").join("devices.list"))
            .unwrap_or_default();
        common::wait_for("the loop to start", 30, || b.rootfs().join("tmp/go").exists().then_some(()));
        let base = r#"{"allow": false, "access": "rwm"}, {"allow": true, "type": "c", "major": 1, "minor": 3, "access": "rwm"}"#;
        let with = b.path().join("with.json");
        let without = b.path().join("without.json");
        std::fs::write(&with, format!(r#"{{"devices": [{base}, {{"allow": true, "type": "c", "major": 1, "minor": 5, "access": "rwm"}}]}}"#)).unwrap();
        std::fs::write(&without, format!(r#"{{"devices": [{base}]}}"#)).unwrap();
        let mut failed_updates = 0;
        for i in 0..60 {
            let f = if i % 2 == 0 { &without } else { &with };
            if !p.out(&["update", "-r", f.to_str().unwrap(), &id]).ok() {
                failed_updates += 1;
            }
        }
        std::fs::write(b.rootfs().join("tmp/stop"), "").unwrap();
        let fails = common::wait_for("the loop's count", 30, || {
            std::fs::read_to_string(b.rootfs().join("tmp/fails")).ok().filter(|s| !s.is_empty())
        });
        outs.extend(p.run_seq(&b, &id, &[&["delete", "--force", "{id}"]]));
        (outs, list, failed_updates, fails.trim().to_owned())
    });
    assert_same_codes("devices", &runc.0, &berth.0);
    for (name, side) in [("runc", &runc), ("berth", &berth)] {
        assert!(
            side.1.lines().any(|l| l == "c 4:1 rw"),
            "{name}: {}",
            side.1
        );
        assert_eq!(side.2, 0, "{name}: updates failed");
        assert_eq!(side.3, "0", "{name}: /dev/null was denied during updates");
    }
}
