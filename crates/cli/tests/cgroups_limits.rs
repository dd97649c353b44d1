//! Resource limits enforced in real busybox containers (issue 3,
//! config-linux.md "Control groups": memory, pids, cpu, devices), observed
//! from inside the container and from the host's cgroup v1 files.
//! The cgroup v2 variants run in a qemu guest (cgroups_v2_qemu.rs).

mod common;
use common::*;
use serde_json::{json, Value};
use std::io::{BufRead, BufReader};
use std::process::Stdio;
use std::sync::mpsc;
use std::time::Duration;

/// `berth-runtime events ID` running in the background; its JSON lines
/// arrive on a channel. Killed (by pid) on drop if still running.
struct Events {
    child: std::process::Child,
    lines: mpsc::Receiver<String>,
}

impl Events {
    fn spawn(env: &Env, id: &str) -> Events {
        let mut child = env
            .rt()
            .args(["events", "--interval", "1s", id])
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("spawn berth-runtime events");
        let out = child.stdout.take().expect("piped stdout");
        let (tx, lines) = mpsc::channel();
        std::thread::spawn(move || {
            for l in BufReader::new(out).lines().map_while(Result::ok) {
                if tx.send(l).is_err() {
                    break;
                }
            }
        });
        Events { child, lines }
    }

    /// Wait for an event of `kind`; returns every line seen until then.
    fn wait_kind(&self, kind: &str, secs: u64) -> Result<Vec<String>, Vec<String>> {
        let end = std::time::Instant::now() + Duration::from_secs(secs);
        let mut seen = Vec::new();
        while let Some(left) = end.checked_duration_since(std::time::Instant::now()) {
            match self.lines.recv_timeout(left) {
                Ok(l) => {
                    let v: Value = serde_json::from_str(&l)
                        .unwrap_or_else(|e| panic!("events line is not JSON ({e}): {l}"));
                    seen.push(l);
                    if v["type"] == kind {
                        return Ok(seen);
                    }
                }
                Err(_) => break,
            }
        }
        Err(seen)
    }
}

impl Drop for Events {
    fn drop(&mut self) {
        if let Ok(None) = self.child.try_wait() {
            let _ = self.child.kill();
        }
        let _ = self.child.wait();
    }
}

fn add_caps(b: &mut Bundle, caps: &[&str]) {
    for set in ["bounding", "effective", "permitted"] {
        let list = b.config["process"]["capabilities"][set]
            .as_array_mut()
            .expect("capability list");
        for c in caps {
            list.push(json!(c));
        }
    }
}

#[test]
fn memory_limit_ooms_and_events_reports_it() {
    require_root_v1!();
    let env = Env::new();
    // Wait for the go file so `events` is watching before the allocation.
    // The pipeline asks to be the OOM killer's first choice, so the shell
    // that reports its status is never the one killed.
    let mut b = env.bundle(&[
        "sh",
        "-c",
        "while [ ! -e /go ]; do sleep 0.1; done; \
         (echo 1000 > /proc/self/oom_score_adj; head -c 200m /dev/zero | tail > /dev/null); \
         echo tail-status=$?; sleep 1; echo done",
    ]);
    let limit = 32i64 << 20;
    b.config["linux"]["resources"]["memory"] = json!({"limit": limit, "swap": limit});
    let id = env.id("oom");
    env.create_and_start(&b, &id);
    assert_eq!(
        host_cgroup_read(&b, "memory", "memory.limit_in_bytes"),
        limit.to_string(),
        "the host's memory cgroup carries the configured limit"
    );
    // runc's `events --stats`: one JSON object with memory usage and limit.
    let o = env.rt_out(&["events", "--stats", &id]);
    let v: Value = serde_json::from_str(&ok(&o)).expect("events --stats JSON");
    assert_eq!(v["type"], "stats", "{v}");
    assert_eq!(v["id"], id.as_str(), "{v}");
    let mem = &v["data"]["memory"]["usage"];
    assert_eq!(mem["limit"], limit, "memory limit in stats: {v}");
    assert!(
        mem["usage"].as_u64().unwrap_or(0) > 0,
        "memory usage in stats: {v}"
    );

    let events = Events::spawn(&env, &id);
    // Give `events` time to register its OOM watcher before the OOM.
    if let Err(seen) = events.wait_kind("stats", 60) {
        panic!("no stats event from `events`: {seen:?}");
    }
    std::fs::write(b.rootfs().join("go"), "").expect("go file");
    let seen = events
        .wait_kind("oom", 120)
        .unwrap_or_else(|seen| panic!("no oom event; saw {seen:?}; container: {}", b.log()));
    let oom: Value = serde_json::from_str(seen.last().expect("oom line")).expect("JSON");
    assert_eq!(oom["id"], id.as_str(), "{oom}");
    let log = b.wait_log("done", 120);
    assert!(
        log.contains("tail-status=137"),
        "tail must die of SIGKILL from the OOM killer: {log}"
    );
    let oom_control = host_cgroup_read(&b, "memory", "memory.oom_control");
    let kills: u64 = oom_control
        .lines()
        .find_map(|l| l.strip_prefix("oom_kill "))
        .and_then(|n| n.trim().parse().ok())
        .unwrap_or(0);
    assert!(
        kills > 0,
        "the memory cgroup counts the OOM kill: {oom_control}"
    );
}

#[test]
fn pids_limit_stops_a_fork_loop() {
    require_root_v1!();
    let env = Env::new();
    // A child shell forks sleeps until fork fails; the parent then reads the
    // limit through the container's own cgroup mount with shell builtins
    // only (no fork is possible while the cgroup is full).
    let mut b = env.bundle(&[
        "sh",
        "-c",
        "sh -c 'i=0; while [ $i -lt 40 ]; do sleep 60 & i=$((i+1)); done; echo forked-all' 2>/dev/null; \
         read max < /sys/fs/cgroup/pids/pids.max; read cur < /sys/fs/cgroup/pids/pids.current; \
         set -- /proc/[0-9]*; echo max=$max cur=$cur procs=$#; exec sleep 60",
    ]);
    b.config["linux"]["resources"]["pids"] = json!({"limit": 8});
    let id = env.id("pids");
    env.create_and_start(&b, &id);
    let log = b.wait_log("procs=", 60);
    assert!(
        !log.contains("forked-all"),
        "40 forks must not all succeed under pids.max=8: {log}"
    );
    assert!(
        log.contains("max=8 "),
        "pids.max inside the container: {log}"
    );
    let line = log
        .lines()
        .find(|l| l.starts_with("max="))
        .expect("max line");
    let field = |name: &str| -> u64 {
        line.split_whitespace()
            .find_map(|f| f.strip_prefix(name))
            .and_then(|v| v.parse().ok())
            .unwrap_or_else(|| panic!("{name} in {line:?}"))
    };
    let (cur, procs) = (field("cur="), field("procs="));
    assert!(
        (2..=8).contains(&cur),
        "pids.current {cur} is within the limit: {line}"
    );
    assert!(
        (2..=8).contains(&procs),
        "{procs} processes live in the container: {line}"
    );
    assert_eq!(host_cgroup_read(&b, "pids", "pids.max"), "8");
    let events = host_cgroup_read(&b, "pids", "pids.events");
    let max_hits: u64 = events
        .strip_prefix("max ")
        .and_then(|n| n.trim().parse().ok())
        .unwrap_or_else(|| panic!("pids.events: {events}"));
    assert!(
        max_hits > 0,
        "the kernel refused forks at the limit: {events}"
    );
}

#[test]
fn cpu_quota_throttles_a_busy_loop() {
    require_root_v1!();
    let env = Env::new();
    let mut b = env.bundle(&["sh", "-c", "while :; do :; done"]);
    // 10% of one CPU.
    b.config["linux"]["resources"]["cpu"] = json!({"quota": 10000, "period": 100000});
    let id = env.id("cpu");
    env.create_and_start(&b, &id);
    assert_eq!(host_cgroup_read(&b, "cpu", "cpu.cfs_quota_us"), "10000");
    assert_eq!(host_cgroup_read(&b, "cpu", "cpu.cfs_period_us"), "100000");
    let stat = wait_for("nr_throttled > 0 in cpu.stat", 60, || {
        let s = host_cgroup_read(&b, "cpu", "cpu.stat");
        let n: u64 = s
            .lines()
            .find_map(|l| l.strip_prefix("nr_throttled "))
            .and_then(|v| v.trim().parse().ok())
            .unwrap_or(0);
        (n > 0).then_some(s)
    });
    assert!(stat.contains("throttled_time"), "{stat}");
    // The same counters through `events --stats`.
    let v: Value =
        serde_json::from_str(&ok(&env.rt_out(&["events", "--stats", &id]))).expect("JSON");
    let t = &v["data"]["cpu"]["throttling"];
    assert!(
        t["throttledPeriods"].as_u64().unwrap_or(0) > 0,
        "throttling in stats: {v}"
    );
    assert!(
        t["periods"].as_u64().unwrap_or(0) >= t["throttledPeriods"].as_u64().unwrap_or(0),
        "{v}"
    );
}

#[test]
fn device_not_allowed_cannot_be_opened_even_after_mknod() {
    require_root_v1!();
    let env = Env::new();
    // /dev/mem (c 1:1) and a disk (b 8:0) are not in the allow list; the
    // default devices are. CAP_MKNOD lets the container create the nodes.
    let mut b = env.bundle(&[
        "sh",
        "-c",
        "mknod /tmp/mem c 1 1 && echo mknod-mem-ok; mknod /tmp/sda b 8 0 && echo mknod-sda-ok; \
         head -c 1 /tmp/mem > /dev/null; echo mem-status=$?; \
         head -c 1 /tmp/sda > /dev/null; echo sda-status=$?; \
         mknod /tmp/null c 1 3 && head -c 1 /tmp/null > /dev/null; echo null-status=$?; \
         echo x > /dev/null; echo devnull-status=$?",
    ]);
    add_caps(&mut b, &["CAP_MKNOD"]);
    let id = env.id("dev");
    let o = env.run(&b, &id);
    let out = stdout(&o) + &stderr(&o);
    assert!(
        out.contains("mknod-mem-ok") && out.contains("mknod-sda-ok"),
        "mknod is allowed (rule 'c *:* m'): {out}"
    );
    assert!(
        out.contains("mem-status=1") && out.contains("sda-status=1"),
        "opening denied devices fails: {out}"
    );
    assert!(
        out.matches("Operation not permitted").count() >= 2,
        "the device cgroup answers EPERM: {out}"
    );
    assert!(
        out.contains("null-status=0"),
        "an allowed device works through a new node: {out}"
    );
    assert!(out.contains("devnull-status=0"), "{out}");
}

#[test]
fn device_list_in_the_host_cgroup() {
    require_root_v1!();
    let env = Env::new();
    let b = env.bundle(&["sleep", "60"]);
    let id = env.id("devlist");
    env.create_and_start(&b, &id);
    let list = host_cgroup_read(&b, "devices", "devices.list");
    for want in [
        "c 1:3 rwm",
        "c 1:5 rwm",
        "c 136:* rwm",
        "c *:* m",
        "b *:* m",
    ] {
        assert!(list.lines().any(|l| l == want), "{want:?} allowed: {list}");
    }
    assert!(
        !list.contains("a *:* rwm"),
        "everything else is denied: {list}"
    );
    assert!(
        !list.lines().any(|l| l.starts_with("c 1:1 ")),
        "/dev/mem not allowed: {list}"
    );
}
