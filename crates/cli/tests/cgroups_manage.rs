//! Managing a live container's cgroup (issue 3): `pause`/`resume`, `update`,
//! `ps`, the cgroup namespace view from inside, and `delete` cleaning up
//! (runc's commands; config-linux.md "Control groups", "cgroup" namespace).

mod common;
use common::*;
use serde_json::{json, Value};
use std::time::Duration;

/// Host pids of the container, from `ps --format json`.
fn ps_pids(env: &Env, id: &str) -> Vec<i32> {
    let out = ok(&env.rt_out(&["ps", "--format", "json", id]));
    serde_json::from_str(&out).unwrap_or_else(|e| panic!("ps json ({e}): {out}"))
}

/// The one-letter state of a host process (R, S, D, ...).
fn proc_state(pid: i32) -> String {
    let s = read_or_empty(format!("/proc/{pid}/status"));
    s.lines()
        .find_map(|l| l.strip_prefix("State:"))
        .map(|v| v.trim().chars().take(1).collect())
        .unwrap_or_default()
}

fn counter(b: &Bundle) -> u64 {
    read_or_empty(b.rootfs().join("tmp/count"))
        .trim()
        .parse()
        .unwrap_or(0)
}

#[test]
fn pause_freezes_every_process_and_resume_thaws() {
    require_root_v1!();
    let env = Env::new();
    // A counter that advances ten times a second, in a child of init.
    let b = env.bundle(&[
        "sh",
        "-c",
        "sh -c 'i=0; while :; do i=$((i+1)); echo $i > /tmp/count; sleep 0.1; done' & sleep 600 & wait",
    ]);
    let id = env.id("pause");
    let init = env.create_and_start(&b, &id);
    let pids = wait_for("4 processes in the container", 60, || {
        let p = ps_pids(&env, &id);
        (p.len() >= 4).then_some(p)
    });
    assert!(pids.contains(&init), "ps lists init {init}: {pids:?}");
    wait_for("the counter to run", 60, || (counter(&b) > 0).then_some(()));

    ok(&env.rt_out(&["pause", &id]));
    assert_eq!(env.state(&id)["status"], "paused");
    assert_eq!(host_cgroup_read(&b, "freezer", "freezer.state"), "FROZEN");
    let pids = ps_pids(&env, &id);
    for &p in &pids {
        // A frozen task sleeps uninterruptibly in the freezer (State D).
        assert_eq!(proc_state(p), "D", "process {p} is frozen");
    }
    let frozen_at = counter(&b);
    std::thread::sleep(Duration::from_millis(700));
    assert_eq!(counter(&b), frozen_at, "nothing runs while paused");
    let again = env.rt_out(&["pause", &id]);
    assert!(!again.status.success(), "pausing a paused container fails");

    ok(&env.rt_out(&["resume", &id]));
    assert_eq!(env.state(&id)["status"], "running");
    assert_eq!(host_cgroup_read(&b, "freezer", "freezer.state"), "THAWED");
    wait_for("the counter to advance after resume", 60, || {
        (counter(&b) > frozen_at).then_some(())
    });
    for &p in &pids {
        assert_ne!(proc_state(p), "D", "process {p} is thawed");
    }
    let again = env.rt_out(&["resume", &id]);
    assert!(
        !again.status.success(),
        "resuming a running container fails"
    );
}

#[test]
fn update_changes_limits_live() {
    require_root_v1!();
    let env = Env::new();
    let mut b = env.bundle(&["sleep", "600"]);
    b.config["linux"]["resources"]["memory"] = json!({"limit": 64i64 << 20});
    b.config["linux"]["resources"]["pids"] = json!({"limit": 20});
    let id = env.id("update");
    env.create_and_start(&b, &id);
    assert_eq!(
        host_cgroup_read(&b, "memory", "memory.limit_in_bytes"),
        (64u64 << 20).to_string()
    );
    assert_eq!(host_cgroup_read(&b, "pids", "pids.max"), "20");

    ok(&env.rt_out(&["update", "--memory", "48m", &id]));
    assert_eq!(
        host_cgroup_read(&b, "memory", "memory.limit_in_bytes"),
        (48u64 << 20).to_string()
    );
    ok(&env.rt_out(&["update", "--pids-limit", "15", &id]));
    assert_eq!(host_cgroup_read(&b, "pids", "pids.max"), "15");

    let res = b.path().join("resources.json");
    std::fs::write(
        &res,
        json!({
            "memory": {"limit": 40i64 << 20},
            "pids": {"limit": 12},
            "cpu": {"shares": 512, "quota": 50000, "period": 100000}
        })
        .to_string(),
    )
    .expect("write resources.json");
    ok(&env.rt_out(&["update", "-r", res.to_str().expect("utf-8"), &id]));
    assert_eq!(
        host_cgroup_read(&b, "memory", "memory.limit_in_bytes"),
        (40u64 << 20).to_string()
    );
    assert_eq!(host_cgroup_read(&b, "pids", "pids.max"), "12");
    assert_eq!(host_cgroup_read(&b, "cpu", "cpu.shares"), "512");
    assert_eq!(host_cgroup_read(&b, "cpu", "cpu.cfs_quota_us"), "50000");

    // Paused containers can be updated too; the limit is visible inside.
    ok(&env.rt_out(&["pause", &id]));
    ok(&env.rt_out(&["update", "--pids-limit", "11", &id]));
    ok(&env.rt_out(&["resume", &id]));
    let o = env.rt_out(&["exec", &id, "cat", "/sys/fs/cgroup/pids/pids.max"]);
    assert_eq!(ok(&o).trim(), "11", "the container sees its new limit");

    let bad = env.rt_out(&["update", "--memory", "lots", &id]);
    assert!(!bad.status.success(), "an invalid size is refused");
    assert!(
        stderr(&bad).contains("lots"),
        "the error names the value: {}",
        stderr(&bad)
    );
}

#[test]
fn ps_lists_the_containers_processes() {
    require_root_v1!();
    let env = Env::new();
    let b = env.bundle(&["sh", "-c", "sleep 600 & sleep 600 & wait"]);
    let id = env.id("ps");
    let init = env.create_and_start(&b, &id);
    let pids = wait_for("3 processes", 60, || {
        let p = ps_pids(&env, &id);
        (p.len() == 3).then_some(p)
    });
    let mut procs: Vec<i32> = host_cgroup_read(&b, "pids", "cgroup.procs")
        .lines()
        .map(|l| l.parse().expect("pid"))
        .collect();
    procs.sort_unstable();
    let mut sorted = pids.clone();
    sorted.sort_unstable();
    assert_eq!(
        sorted, procs,
        "ps --format json lists exactly the cgroup's processes"
    );
    assert!(pids.contains(&init));

    let table = env.rt_out(&["ps", &id]);
    if !table.status.success() && stderr(&table).contains("cannot run ps(1)") {
        eprintln!("SKIP: ps table output: no ps(1) on this host (apt-get install procps)");
        return;
    }
    let table = ok(&table);
    let mut lines = table.lines();
    let header = lines.next().expect("ps header");
    assert!(header.contains("PID") && header.contains("CMD"), "{table}");
    let rows: Vec<&str> = lines.collect();
    assert_eq!(rows.len(), 3, "one row per process: {table}");
    assert_eq!(
        rows.iter()
            .filter(|r| r.trim_end().ends_with(" sleep 600"))
            .count(),
        2,
        "{table}"
    );
    let rows = ok(&env.rt_out(&["ps", &id, "--", "-o", "pid,comm"]));
    assert!(
        rows.lines().next().unwrap_or_default().contains("COMMAND"),
        "ps args pass through: {rows}"
    );
    assert!(rows.contains(&init.to_string()), "{rows}");
}

#[test]
fn cgroup_namespace_shows_only_the_containers_subtree() {
    require_root_v1!();
    let env = Env::new();
    let mut b = env.bundle(&[
        "sh",
        "-c",
        "cat /proc/self/cgroup; echo ---; \
         for c in memory pids cpu,cpuacct cpu devices freezer blkio; do \
           [ -d /sys/fs/cgroup/$c ] && find /sys/fs/cgroup/$c/ -mindepth 1 -type d; done; \
         echo ---; cat /sys/fs/cgroup/memory/memory.limit_in_bytes; \
         mkdir /sys/fs/cgroup/memory/x 2>&1; echo mkdir-status=$?",
    ]);
    b.config["linux"]["resources"]["memory"] = json!({"limit": 96i64 << 20});
    let o = env.run(&b, &env.id("cgns"));
    let out = ok(&o);
    let mut parts = out.split("---\n");
    let (own, dirs, rest) = (
        parts.next().unwrap_or_default(),
        parts.next().unwrap_or_default(),
        parts.next().unwrap_or_default(),
    );
    let controllers = ["memory", "pids", "cpu", "devices", "freezer", "blkio"];
    for line in own.lines() {
        let mut f = line.splitn(3, ':');
        let (_, ctrl, path) = (
            f.next(),
            f.next().unwrap_or_default(),
            f.next().unwrap_or_default(),
        );
        if ctrl.split(',').any(|c| controllers.contains(&c)) {
            assert_eq!(
                path, "/",
                "the container's own cgroup is its root: {line}\n{out}"
            );
        }
    }
    assert!(own.lines().any(|l| l.contains(":memory:/")), "{out}");
    assert!(
        dirs.trim().is_empty(),
        "no other cgroups are visible inside: {dirs}"
    );
    assert!(
        rest.contains(&(96u64 << 20).to_string()),
        "the memory files are the container's own: {out}"
    );
    assert!(
        !rest.contains("mkdir-status=0"),
        "the cgroup mount is read-only: {out}"
    );
}

#[test]
fn delete_kills_leftovers_and_removes_every_cgroup_dir() {
    require_root_v1!();
    let env = Env::new();
    // Without a pid namespace, children survive their init's death.
    let mut b = env.bundle(&[
        "sh",
        "-c",
        "sleep 600 & echo $! > /tmp/child; exec sleep 600",
    ]);
    let ns = b.config["linux"]["namespaces"]
        .as_array_mut()
        .expect("namespaces");
    ns.retain(|n| n["type"] != "pid");
    let id = env.id("del");
    let init = env.create_and_start(&b, &id);
    let child: i32 = wait_for("the child pid file", 60, || {
        read_or_empty(b.rootfs().join("tmp/child"))
            .trim()
            .parse()
            .ok()
    });
    let record: Value = serde_json::from_slice(
        &std::fs::read(env.state.path().join(&id).join("state.json")).expect("state.json"),
    )
    .expect("state JSON");
    let dirs: Vec<String> = record["cgroup"]["v1"]
        .as_object()
        .expect("v1 cgroup paths in the record")
        .values()
        .map(|v| v.as_str().expect("path").to_owned())
        .collect();
    assert!(dirs.len() >= 5, "one directory per controller: {dirs:?}");
    for d in &dirs {
        assert!(std::path::Path::new(d).exists(), "{d} exists while running");
    }
    ok(&env.rt_out(&["kill", &id, "KILL"]));
    assert!(env.wait_status(&id, "stopped"), "init died");
    assert!(
        std::path::Path::new(&format!("/proc/{child}")).exists(),
        "the child {child} outlives init {init} (no pid namespace)"
    );
    ok(&env.rt_out(&["delete", &id]));
    wait_for("the leftover process to die", 60, || {
        let st = proc_state(child);
        (st.is_empty() || st == "Z").then_some(())
    });
    for d in &dirs {
        assert!(!std::path::Path::new(d).exists(), "delete removed {d}");
    }
    assert!(
        env.cgroup_leftovers(&b.cgroups_path()).is_empty(),
        "no hierarchy keeps the container's cgroup"
    );
}

/// The container process starts in its cgroup on every hierarchy (each v1
/// controller, name=systemd and the unified cgroup2, as runc puts it), and
/// nobody writes its pid to a `cgroup.procs`: moving another process
/// takes the kernel's global threadgroup lock, whose write side waits for
/// an RCU grace period at every start. The child is cloned into the
/// cgroup2 directory (clone3 CLONE_INTO_CGROUP) and moves itself into the
/// v1 hierarchies through `tasks` (crates/cgroups `open_self_join`).
#[test]
fn container_starts_in_every_hierarchy_without_a_pid_written_to_cgroup_procs() {
    require_root_v1!();
    if !have_strace() {
        return;
    }
    let env = Env::new();
    let mut b = env.bundle(&["cat", "/proc/self/cgroup"]);
    // No cgroup namespace: the host's paths show.
    if let Some(ns) = b.config["linux"]["namespaces"].as_array_mut() {
        ns.retain(|n| n["type"] != "cgroup");
    }
    b.write();
    let path = b.cgroups_path();
    let trace = b.path().join("strace.out");
    let o = std::process::Command::new("strace")
        .args(["-f", "-qq", "-y", "-e", "trace=write,clone,clone3", "-o"])
        .arg(&trace)
        .arg(runtime_bin())
        .arg("--root")
        .arg(env.state.path())
        .args(["run", "--bundle"])
        .arg(b.path())
        .arg(env.id("selfjoin"))
        .stdin(std::process::Stdio::null())
        .output()
        .expect("run strace");
    let out = ok(&o);
    // Every hierarchy the host mounts shows the container's cgroup.
    let lines: Vec<&str> = out.lines().filter(|l| !l.is_empty()).collect();
    let host: Vec<String> = std::fs::read_to_string("/proc/self/cgroup")
        .expect("own cgroups")
        .lines()
        .map(|l| l.split(':').take(2).collect::<Vec<_>>().join(":"))
        .collect();
    assert_eq!(lines.len(), host.len(), "one line per hierarchy: {out}");
    for l in &lines {
        assert!(l.ends_with(&format!(":{path}")), "{l} is in {path}: {out}");
    }
    let t = std::fs::read_to_string(&trace).expect("strace output");
    let pid_writes: Vec<&str> = t
        .lines()
        .filter(|l| l.contains("cgroup.procs>") && l.contains(" write("))
        .collect();
    assert!(
        pid_writes.is_empty(),
        "no pid written to cgroup.procs: {pid_writes:#?}"
    );
    assert!(
        t.lines()
            .any(|l| l.contains("clone3(") && l.contains("CLONE_INTO_CGROUP")),
        "cloned into the cgroup2 directory:\n{t}"
    );
}
