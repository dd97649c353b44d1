//! `rm -f` of many containers at once (issue 6: fast teardown): one command
//! removes running, exited and created containers side by side, reports a
//! reference it cannot remove without stopping the others, and leaves
//! nothing behind on the host: no rows, mounts, cgroups, monitors, runtime
//! state or container dirs.

mod common;
use common::*;

use std::path::Path;
use std::time::Instant;

const RUNNING: usize = 30;

/// The start time (field 22 of /proc/PID/stat) of a live, non-zombie
/// process; `None` when it is gone.
fn start_time(pid: i32) -> Option<String> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    let fields: Vec<&str> = stat.rsplit(')').next()?.split_whitespace().collect();
    // fields[0] is the state (field 3), so field 22 is fields[19].
    if matches!(fields.first(), Some(&"Z") | Some(&"X")) {
        return None;
    }
    fields.get(19).map(|s| s.to_string())
}

/// Leaf cgroup dirs (the containers') under this test's cgroup parent, in
/// every hierarchy.
fn leaf_cgroups(env: &EngineEnv) -> Vec<String> {
    let mut v = Vec::new();
    for p in env.cgroup_dirs() {
        if let Ok(rd) = std::fs::read_dir(&p) {
            for e in rd.flatten() {
                if e.path().is_dir() {
                    v.push(e.path().display().to_string());
                }
            }
        }
    }
    v
}

fn dirs_in(p: &Path) -> Vec<String> {
    std::fs::read_dir(p)
        .map(|rd| {
            rd.flatten()
                .filter(|e| e.path().is_dir())
                .map(|e| e.file_name().to_string_lossy().into_owned())
                .collect()
        })
        .unwrap_or_default()
}

#[test]
fn rm_f_of_many_containers_leaves_nothing_behind() {
    require_root!();
    let env = EngineEnv::new();
    let img = env.busybox_image();
    let mut ids = Vec::new();
    let mut monitors = Vec::new();
    for i in 0..RUNNING {
        let name = format!("many{i}");
        let id = env.ok(&[
            "run",
            "-d",
            "--network",
            "none",
            "--name",
            &name,
            &img,
            "sleep",
            "1000",
        ]);
        ids.push(id.trim().to_string());
        let pid = env.inspect(&name)["State"]["ConmonPid"]
            .as_i64()
            .expect("State.ConmonPid") as i32;
        let start = start_time(pid).expect("the monitor runs");
        monitors.push((pid, start));
    }
    // One on the default bridge network (veth, address, namespace pin),
    // one exited, one created: every kind goes in the same command.
    ids.push(
        env.ok(&["run", "-d", "--name", "bridged", &img, "sleep", "1000"])
            .trim()
            .into(),
    );
    ids.push(
        env.ok(&[
            "run",
            "-d",
            "--name",
            "done",
            "--network",
            "none",
            &img,
            "true",
        ])
        .trim()
        .into(),
    );
    env.wait_inspect("done", "the short container to exit", |v| {
        v["State"]["Status"] == "exited"
    });
    ids.push(
        env.ok(&[
            "create",
            "--name",
            "made",
            "--network",
            "none",
            &img,
            "true",
        ])
        .trim()
        .into(),
    );

    // The checks below can fail: before, everything is there.
    assert_eq!(env.ok(&["ps", "-aq"]).lines().count(), RUNNING + 3);
    assert!(
        env.mounts().len() > RUNNING,
        "rootfs mounts: {:?}",
        env.mounts()
    );
    assert!(leaf_cgroups(&env).len() >= RUNNING, "container cgroups");
    assert_eq!(dirs_in(&env.root().join("containers")).len(), RUNNING + 3);
    assert!(dirs_in(&env.runroot().join("runtime")).len() > RUNNING);

    let mut args: Vec<&str> = vec!["rm", "-f"];
    args.extend(ids.iter().map(String::as_str));
    args.push("no-such-container");
    let started = Instant::now();
    let o = env.berth(&args);
    eprintln!(
        "rm -f of {} containers took {:?}",
        ids.len(),
        started.elapsed()
    );
    // The unknown reference is reported by name, the rest removed anyway.
    assert!(!o.status.success(), "a failed reference makes rm fail");
    assert!(stderr(&o).contains("no-such-container"), "{}", stderr(&o));
    let printed = stdout(&o);
    for id in &ids {
        assert!(printed.lines().any(|l| l == id), "{id} reported removed");
    }

    assert_eq!(env.ok(&["ps", "-aq"]).trim(), "", "no container rows left");
    assert!(env.mounts().is_empty(), "mounts left: {:?}", env.mounts());
    assert!(
        leaf_cgroups(&env).is_empty(),
        "cgroups left: {:?}",
        leaf_cgroups(&env)
    );
    let live: Vec<i32> = monitors
        .iter()
        .filter(|(pid, start)| start_time(*pid).as_ref() == Some(start))
        .map(|(pid, _)| *pid)
        .collect();
    assert!(live.is_empty(), "monitors still running: {live:?}");
    assert_eq!(
        dirs_in(&env.root().join("containers")),
        Vec::<String>::new()
    );
    // The runtime's shared seccomp program cache (.seccomp-cache) stays.
    let state_dirs: Vec<String> = dirs_in(&env.runroot().join("runtime"))
        .into_iter()
        .filter(|d| !d.starts_with('.'))
        .collect();
    assert_eq!(state_dirs, Vec::<String>::new());
    let pins: Vec<_> = std::fs::read_dir(env.runroot().join("netns"))
        .map(|rd| rd.flatten().map(|e| e.file_name()).collect())
        .unwrap_or_default();
    assert!(pins.is_empty(), "namespace pins left: {pins:?}");
}
