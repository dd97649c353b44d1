//! Live tests (root): a real cgroup under a unique `berth-test-*` parent on
//! whatever this host has: the v1 driver on v1/hybrid hosts, the v2 driver
//! on pure cgroup v2 (scripts/cgv2-test.sh runs this binary in a qemu guest).
//! Each test observes the effect on a real busybox child.

mod common;

use std::path::Path;
use std::time::Duration;

use berth_cgroups::{Cgroup, Driver, FreezerState, OomEvent};
use common::*;

#[test]
fn create_add_process_and_destroy() {
    if skip("create_add_process_and_destroy") {
        return;
    }
    let mut g = Guard::new("lifecycle");
    for d in g.cg.dirs() {
        assert!(d.is_dir(), "{} created", d.display());
    }
    let i = g.spawn_in("exec /bin/busybox sleep 600");
    let pid = g.pid(i);
    assert!(
        eventually(10, || g.cg.pids().unwrap_or_default() == vec![pid]),
        "pids() lists the child"
    );
    let own = std::fs::read_to_string(format!("/proc/{pid}/cgroup")).expect("proc cgroup");
    assert!(own.contains("/ctr"), "child is in the cgroup: {own}");
    // Reopen from the state file form, as a later berth-runtime would.
    let json = serde_json::to_string(&g.cg).expect("serialize");
    let reopened: Cgroup = serde_json::from_str(&json).expect("deserialize");
    assert_eq!(reopened.pids().expect("pids"), vec![pid]);
    reopened.destroy().expect("destroy");
    for d in reopened.created() {
        assert!(!d.exists(), "{} removed", d.display());
    }
    let (sig, _, _, _) = g.wait(i);
    assert_eq!(sig, Some(9), "destroy killed the child");
    assert!(
        std::fs::metadata(format!("/proc/{pid}")).is_err(),
        "no process left"
    );
}

#[test]
fn memory_limit_oom_is_reported() {
    if skip("memory_limit_oom_is_reported") {
        return;
    }
    let mut g = Guard::new("oom");
    g.cg.apply(&resources(
        r#"{"memory": {"limit": 33554432, "swap": 33554432}}"#,
    ))
    .expect("apply memory");
    let mut watcher = g.cg.oom_watcher().expect("oom watcher");
    assert_eq!(
        watcher.wait(Some(Duration::from_millis(10))).expect("wait"),
        OomEvent::Timeout
    );
    // dd fills a 128 MiB buffer from /dev/zero: far above the 32 MiB limit.
    let i = g.spawn_in("exec /bin/busybox dd if=/dev/zero of=/dev/null bs=128M count=1");
    let ev = watcher.wait(Some(Duration::from_secs(60))).expect("wait");
    assert!(matches!(ev, OomEvent::Oom(_)), "OOM reported, got {ev:?}");
    let (sig, _, _, err) = g.wait(i);
    assert_eq!(sig, Some(9), "dd OOM-killed (stderr: {err})");
    let stats = g.cg.stats().expect("stats");
    assert_eq!(stats.memory.usage.limit, 33_554_432);
    // v2 counts limit hits in memory.events; v1 shows the peak at the limit.
    let hit = stats.memory.usage.failcnt > 0 || stats.memory.usage.max + (1 << 20) >= 33_554_432;
    assert!(hit, "the limit was reached: {stats:?}");
}

#[test]
fn pids_limit_stops_fork_loop() {
    if skip("pids_limit_stops_fork_loop") {
        return;
    }
    let mut g = Guard::new("pids");
    g.cg.apply(&resources(r#"{"pids": {"limit": 5}}"#))
        .expect("apply pids");
    assert_eq!(read(&g.cg, "pids", "pids.max").trim(), "5");
    // A bounded loop: 12 background sleeps, far above the limit.
    let i = g.spawn_in(
        "n=0; while [ $n -lt 12 ]; do /bin/busybox sleep 600 & n=$((n+1)); done 2>/dev/null; echo started; exec /bin/busybox sleep 600",
    );
    assert!(
        eventually(20, || read(&g.cg, "pids", "pids.events").contains("max ")
            && !read(&g.cg, "pids", "pids.events").contains("max 0")),
        "pids.events counts refused forks: {}",
        read(&g.cg, "pids", "pids.events")
    );
    let current: u64 = read(&g.cg, "pids", "pids.current")
        .trim()
        .parse()
        .expect("pids.current");
    assert!(current <= 5, "pids.current {current} <= 5");
    let stats = g.cg.stats().expect("stats");
    assert_eq!(stats.pids.limit, 5);
    assert!(stats.pids.current > 0 && stats.pids.current <= 5);
    let _ = i;
    g.cg.destroy().expect("destroy kills the forks");
    assert!(g.cg.created().iter().all(|d| !d.exists()));
}

#[test]
fn cpu_quota_throttles() {
    if skip("cpu_quota_throttles") {
        return;
    }
    let mut g = Guard::new("cpu");
    g.cg.apply(&resources(
        r#"{"cpu": {"shares": 512, "quota": 10000, "period": 100000}}"#,
    ))
    .expect("apply cpu");
    if g.cg.driver() == Driver::V2 {
        assert_eq!(
            read(&g.cg, "cpu", "cpu.weight").trim(),
            "59",
            "runc's shares->weight"
        );
        assert_eq!(read(&g.cg, "cpu", "cpu.max").trim(), "10000 100000");
    } else {
        assert_eq!(read(&g.cg, "cpu", "cpu.shares").trim(), "512");
        assert_eq!(read(&g.cg, "cpu", "cpu.cfs_quota_us").trim(), "10000");
    }
    g.spawn_in("while :; do :; done");
    assert!(
        eventually(30, || g
            .cg
            .stats()
            .map(|s| s.cpu.throttling.throttled_periods > 0)
            .unwrap_or(false)),
        "nr_throttled grows under a 10% quota: {:?}",
        g.cg.stats().map(|s| s.cpu)
    );
    let s = g.cg.stats().expect("stats");
    assert!(
        s.cpu.usage.total > 0 && s.cpu.throttling.periods > 0,
        "{:?}",
        s.cpu
    );
}

#[test]
fn freeze_and_thaw() {
    if skip("freeze_and_thaw") {
        return;
    }
    let mut g = Guard::new("freezer");
    let i = g.spawn_in("exec /bin/busybox sleep 600");
    let pid = g.pid(i);
    assert_eq!(g.cg.freezer_state().expect("state"), FreezerState::Thawed);
    g.cg.freeze().expect("freeze");
    assert_eq!(g.cg.freezer_state().expect("state"), FreezerState::Frozen);
    if g.cg.driver() == Driver::V2 {
        assert_eq!(read(&g.cg, "freezer", "cgroup.freeze").trim(), "1");
        assert!(read(&g.cg, "freezer", "cgroup.events").contains("frozen 1"));
    } else {
        assert_eq!(read(&g.cg, "freezer", "freezer.state").trim(), "FROZEN");
        // v1 frozen tasks sleep uninterruptibly in the refrigerator.
        let st = proc_state(pid);
        assert!(st.contains("D"), "frozen task state: {st}");
    }
    g.cg.thaw().expect("thaw");
    assert_eq!(g.cg.freezer_state().expect("state"), FreezerState::Thawed);
    assert!(
        eventually(10, || proc_state(pid).contains("S")),
        "thawed: {}",
        proc_state(pid)
    );
}

#[test]
fn update_changes_files_live() {
    if skip("update_changes_files_live") {
        return;
    }
    let mut g = Guard::new("update");
    g.cg.apply(&resources(
        r#"{"pids": {"limit": 10}, "memory": {"limit": 67108864}}"#,
    ))
    .expect("apply");
    // The shell keeps ~4 MB in a variable, so the cgroup has real usage.
    g.spawn_in("x=$(/bin/busybox head -c 4000000 /dev/zero | /bin/busybox tr '\\000' a); echo ready; /bin/busybox sleep 600");
    let usage = || g.cg.stats().map(|s| s.memory.usage.usage).unwrap_or(0);
    // (v1 usage accounting is batched per CPU; ask only for a few pages.)
    assert!(
        eventually(20, || usage() > 65_536),
        "usage grows: {}",
        usage()
    );
    g.cg.update(&resources(r#"{"pids": {"limit": 20}, "memory": {"limit": 134217728, "swap": 268435456}, "cpu": {"shares": 2048}}"#))
        .expect("update");
    assert_eq!(read(&g.cg, "pids", "pids.max").trim(), "20");
    if g.cg.driver() == Driver::V2 {
        assert_eq!(read(&g.cg, "memory", "memory.max").trim(), "134217728");
        assert_eq!(read(&g.cg, "memory", "memory.swap.max").trim(), "134217728");
        assert_eq!(read(&g.cg, "cpu", "cpu.weight").trim(), "174");
    } else {
        assert_eq!(
            read(&g.cg, "memory", "memory.limit_in_bytes").trim(),
            "134217728"
        );
        assert_eq!(
            read(&g.cg, "memory", "memory.memsw.limit_in_bytes").trim(),
            "268435456"
        );
        assert_eq!(read(&g.cg, "cpu", "cpu.shares").trim(), "2048");
    }
    // checkBeforeUpdate refuses a limit below the current usage.
    let err =
        g.cg.update(&resources(
            r#"{"memory": {"limit": 4096, "swap": 4096, "checkBeforeUpdate": true}}"#,
        ))
        .expect_err("below usage");
    assert!(err.to_string().contains("checkBeforeUpdate"), "{err}");
}

#[test]
fn devices_deny_blocks_access() {
    if skip("devices_deny_blocks_access") {
        return;
    }
    let mut g = Guard::new("devices");
    // Deny all, then allow /dev/null (1:3) only.
    g.cg.apply(&resources(
        r#"{"devices": [{"allow": false, "access": "rwm"},
                        {"allow": true, "type": "c", "major": 1, "minor": 3, "access": "rw"}]}"#,
    ))
    .expect("apply devices");
    if g.cg.driver() == Driver::V1 {
        assert_eq!(read(&g.cg, "devices", "devices.list").trim(), "c 1:3 rw");
    }
    let i = g.spawn_in(
        "/bin/busybox head -c1 /dev/null && echo null-ok; /bin/busybox head -c1 /dev/zero >/dev/null && echo zero-ok; echo end",
    );
    let (_, code, out, err) = g.wait(i);
    assert_eq!(code, Some(0), "stderr: {err}");
    assert!(out.contains("null-ok"), "/dev/null allowed: {out} {err}");
    assert!(!out.contains("zero-ok"), "/dev/zero denied: {out}");
    assert!(err.contains("not permitted"), "EPERM on /dev/zero: {err}");
    // Replacing the rules (update) opens /dev/zero.
    g.cg.update(&resources(
        r#"{"devices": [{"allow": true, "access": "rwm"}]}"#,
    ))
    .expect("update devices");
    let i = g.spawn_in("/bin/busybox head -c1 /dev/zero >/dev/null && echo zero-ok");
    let (_, _, out, err) = g.wait(i);
    assert!(
        out.contains("zero-ok"),
        "/dev/zero allowed after update: {err}"
    );
}

#[test]
fn unsupported_resource_is_a_clear_error() {
    if skip("unsupported_resource_is_a_clear_error") {
        return;
    }
    let g = Guard::new("unsupported");
    let res = if g.cg.driver() == Driver::V2 {
        resources(r#"{"cpu": {"realtimeRuntime": 1000}}"#)
    } else {
        resources(r#"{"unified": {"memory.high": "1000000"}}"#)
    };
    let err = g.cg.apply(&res).expect_err("unsupported");
    assert!(err.to_string().contains("not supported"), "{err}");
    // net_cls: a v1 controller (not mounted on the dev host) / absent on v2
    let err =
        g.cg.apply(&resources(r#"{"network": {"classID": 1048577}}"#))
            .expect_err("net_cls");
    assert!(err.to_string().contains("net_cls"), "{err}");
    // hugepage limits for a size no kernel has
    let err =
        g.cg.apply(&resources(
            r#"{"hugepageLimits": [{"pageSize": "3MB", "limit": 1}]}"#,
        ))
        .expect_err("3MB pages");
    let msg = err.to_string();
    assert!(msg.contains("hugetlb"), "{msg}");
    assert!(Path::new(&g.cg.dirs()[0]).exists());
}
