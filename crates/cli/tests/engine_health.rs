//! Logging flags and healthchecks end to end, as root: `--log-driver`,
//! `--log-opt` rotation, `--health-*` and the image's Healthcheck run by
//! the container's monitor, `berth healthcheck run` (compared with podman).

mod common;
mod flags_support;
use common::*;
use flags_support::*;

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

#[test]
fn log_driver_and_rotation() {
    require_root!();
    let env = EngineEnv::new();
    let img = env.busybox_image();
    let quiet = unique("lognone");
    env.ok(&[
        "run",
        "-d",
        "--network",
        "none",
        "--name",
        &quiet,
        "--log-driver",
        "none",
        &img,
        "echo",
        "unseen",
    ]);
    env.wait_inspect(&quiet, "exit", |v| v["State"]["Status"] == "exited");
    let o = env.berth(&["logs", &quiet]);
    assert_eq!(
        o.status.code(),
        Some(125),
        "no logs to read (Docker, podman)"
    );
    assert!(stderr(&o).contains("--log-driver none"), "{}", stderr(&o));
    assert!(!stdout(&o).contains("unseen"));
    let o = env.berth(&["run", "-d", "--log-driver", "passthrough", &img, "true"]);
    assert_eq!(o.status.code(), Some(125));
    let o = berth_run(
        &env,
        &["--log-driver", "passthrough", &img, "echo", "direct"],
    );
    assert_eq!(ok(&o), "direct\n");
    let o = berth_run(&env, &["--log-driver", "syslog", &img, "true"]);
    assert_eq!(o.status.code(), Some(125));

    let rot = unique("logrot");
    env.ok(&[
        "run",
        "-d",
        "--network",
        "none",
        "--name",
        &rot,
        "--log-opt",
        "max-size=2k",
        "--log-opt",
        "max-file=2",
        &img,
        "sh",
        "-c",
        "i=0; while [ $i -lt 200 ]; do echo line-$i; i=$((i+1)); done",
    ]);
    env.wait_inspect(&rot, "exit", |v| v["State"]["Status"] == "exited");
    let path = PathBuf::from(env.inspect(&rot)["LogPath"].as_str().expect("LogPath"));
    let cur = std::fs::metadata(&path).expect("log").len();
    let old = std::fs::metadata(format!("{}.1", path.display()))
        .expect("rotated log")
        .len();
    assert!(cur <= 2048 && old <= 2048, "{cur} {old}");
    assert!(!Path::new(&format!("{}.2", path.display())).exists());
    let logs = env.ok(&["logs", &rot]);
    assert!(logs.ends_with("line-199\n"), "{logs}");
    // `logs -f` follows the log into the files that replace it.
    let slow = unique("logfollow");
    env.ok(&[
        "run",
        "-d",
        "--network",
        "none",
        "--name",
        &slow,
        "--log-opt",
        "max-size=1k",
        "--log-opt",
        "max-file=3",
        &img,
        "sh",
        "-c",
        "sleep 1; i=0; while [ $i -lt 60 ]; do echo follow-$i; i=$((i+1)); sleep 0.02; done",
    ]);
    let followed = env.ok(&["logs", "-f", &slow]);
    assert!(followed.ends_with("follow-59\n"), "{followed}");
    assert!(!logs.contains("line-0\n"), "the oldest lines are gone");
}

#[test]
fn healthchecks_run_from_the_monitor() {
    require_root!();
    let env = EngineEnv::new();
    let img = env.busybox_image();
    let name = unique("hc");
    env.ok(&[
        "run",
        "-d",
        "--network",
        "none",
        "--name",
        &name,
        "--health-cmd",
        "test -f /tmp/ok && echo fine",
        "--health-interval",
        "1s",
        "--health-retries",
        "2",
        &img,
        "sleep",
        "120",
    ]);
    let ps = env.ok(&["ps"]);
    assert!(ps.contains("(health: starting)"), "{ps}");
    let c = &env.inspect(&name)["Config"]["Healthcheck"];
    assert_eq!(
        c["Test"],
        serde_json::json!(["CMD-SHELL", "test -f /tmp/ok && echo fine"])
    );
    assert_eq!(
        (&c["Interval"], &c["Retries"]),
        (&1_000_000_000u64.into(), &2.into())
    );
    // Nobody runs the check by hand: the idle small monitor does, every
    // second.
    let monitor = env.inspect(&name)["State"]["ConmonPid"]
        .as_i64()
        .expect("State.ConmonPid");
    wait_for("the monitor to become berth-monitor", 60, || {
        let cmd = std::fs::read(format!("/proc/{monitor}/cmdline")).ok()?;
        let argv0 = cmd.split(|&b| b == 0).next()?;
        String::from_utf8_lossy(argv0)
            .ends_with("/berth-monitor")
            .then_some(())
    });
    let v = env.wait_inspect(&name, "unhealthy", |v| {
        v["State"]["Health"]["Status"] == "unhealthy"
    });
    assert!(
        v["State"]["Health"]["FailingStreak"].as_u64() >= Some(2),
        "{v}"
    );
    assert!(env.ok(&["ps"]).contains("(unhealthy)"));
    let o = env.berth(&["healthcheck", "run", &name]);
    assert_eq!(o.status.code(), Some(1));
    assert_eq!(stdout(&o), "unhealthy\n");
    env.ok(&["exec", &name, "touch", "/tmp/ok"]);
    // The monitor's next check passes...
    env.wait_inspect(&name, "healthy", |v| {
        v["State"]["Health"]["Status"] == "healthy"
    });
    // ... and so does one by hand.
    let o = env.berth(&["healthcheck", "run", &name]);
    assert_eq!(o.status.code(), Some(0));
    let v = env.inspect(&name);
    assert_eq!(v["State"]["Health"]["Status"], "healthy");
    assert_eq!(v["State"]["Health"]["FailingStreak"], 0);
    let log = v["State"]["Health"]["Log"].as_array().expect("log");
    assert_eq!(log.last().expect("last")["Output"], "fine\n");
    assert!(env.ok(&["ps"]).contains("(healthy)"));

    // A check past its timeout fails; --no-healthcheck and no check.
    let slow = unique("hcslow");
    env.ok(&[
        "run",
        "-d",
        "--network",
        "none",
        "--name",
        &slow,
        "--health-cmd",
        "sleep 5",
        "--health-timeout",
        "300ms",
        "--health-interval",
        "1h",
        &img,
        "sleep",
        "60",
    ]);
    let t = Instant::now();
    let o = env.berth(&["healthcheck", "run", &slow]);
    assert_eq!(o.status.code(), Some(1));
    assert!(t.elapsed() < Duration::from_secs(4));
    let v = env.inspect(&slow);
    assert_eq!(v["State"]["Health"]["Log"][0]["ExitCode"], -1);
    let o = env.berth(&["healthcheck", "run", &quiet_container(&env, &img)]);
    assert_eq!(o.status.code(), Some(125));
    assert!(stderr(&o).contains("no healthcheck"), "{}", stderr(&o));
    let o = berth_run(
        &env,
        &["--no-healthcheck", "--health-cmd", "true", &img, "true"],
    );
    assert_eq!(o.status.code(), Some(125));
}

fn quiet_container(env: &EngineEnv, img: &str) -> String {
    let name = unique("nohc");
    env.ok(&[
        "run",
        "-d",
        "--network",
        "none",
        "--name",
        &name,
        img,
        "sleep",
        "60",
    ]);
    name
}

#[test]
fn the_image_healthcheck_applies_unless_disabled() {
    require_root!();
    let env = EngineEnv::new();
    let base = env.busybox_image();
    let img = image_with_healthcheck(
        &env,
        &base,
        serde_json::json!({"Test": ["CMD-SHELL", "exit 3"], "Interval": 1_000_000_000u64, "Retries": 1}),
    );
    let name = unique("imghc");
    env.ok(&[
        "run",
        "-d",
        "--network",
        "none",
        "--name",
        &name,
        &img,
        "sleep",
        "60",
    ]);
    let v = env.wait_inspect(&name, "unhealthy from the image's check", |v| {
        v["State"]["Health"]["Status"] == "unhealthy"
    });
    assert_eq!(v["State"]["Health"]["Log"][0]["ExitCode"], 3);
    // --health-cmd replaces the image's test, keeping its other values.
    let ok_name = unique("imghc-ok");
    env.ok(&[
        "run",
        "-d",
        "--network",
        "none",
        "--name",
        &ok_name,
        "--health-cmd",
        "true",
        &img,
        "sleep",
        "60",
    ]);
    env.wait_inspect(&ok_name, "healthy", |v| {
        v["State"]["Health"]["Status"] == "healthy"
    });
    let off = unique("imghc-off");
    env.ok(&[
        "run",
        "-d",
        "--network",
        "none",
        "--name",
        &off,
        "--no-healthcheck",
        &img,
        "sleep",
        "60",
    ]);
    assert!(env.inspect(&off)["State"]["Health"].is_null());
    assert!(!env
        .ok(&["ps"])
        .lines()
        .any(|l| l.contains(&off) && l.contains("health")));
}

/// `healthcheck run` as podman: each run's own result decides the exit
/// code and prints `unhealthy` on failure, retries or not.
#[test]
fn healthcheck_run_matches_podman() {
    require_root!();
    let env = EngineEnv::new();
    let img = env.busybox_image();
    let flags = [
        "--health-cmd",
        "test -f /tmp/ok",
        "--health-interval",
        "disable",
        "--health-retries",
        "2",
    ];
    // (exit code, stdout) of: run, run, touch, run.
    let sequence = |run: &dyn Fn(&[&str]) -> std::process::Output, name: &str| {
        let mut seen = Vec::new();
        let mut args = vec!["-d", "--name", name];
        args.extend(flags);
        args.extend([img.as_str(), "sleep", "60"]);
        assert!(run(&args).status.success());
        for step in 0..3 {
            if step == 2 {
                assert!(run(&["exec", name, "touch", "/tmp/ok"]).status.success());
            }
            let o = run(&["healthcheck", "run", name]);
            seen.push((o.status.code(), stdout(&o)));
        }
        seen
    };
    let name = unique("hcp");
    let ours = sequence(
        &|a: &[&str]| {
            if a[0] == "-d" {
                let mut v = vec!["run", "--network", "none"];
                v.extend(a);
                env.berth(&v)
            } else {
                env.berth(a)
            }
        },
        &name,
    );
    assert_eq!(
        ours,
        vec![
            (Some(1), "unhealthy\n".to_string()),
            (Some(1), "unhealthy\n".to_string()),
            (Some(0), String::new()),
        ]
    );
    let Some(p) = Podman::with_busybox(&env) else {
        return;
    };
    let theirs = sequence(
        &|a: &[&str]| {
            if a[0] == "-d" {
                p.run_rm(a)
            } else {
                p.run(a)
            }
        },
        &name,
    );
    assert_eq!(ours, theirs);
}

/// Failures in `--health-start-period` do not count: the container stays
/// `starting`, its streak at 0, while the checks are logged.
#[test]
fn failures_in_the_start_period_do_not_count() {
    require_root!();
    let env = EngineEnv::new();
    let img = env.busybox_image();
    let name = unique("hcstart");
    env.ok(&[
        "run",
        "-d",
        "--network",
        "none",
        "--name",
        &name,
        "--health-cmd",
        "false",
        "--health-interval",
        "500ms",
        "--health-retries",
        "1",
        "--health-start-period",
        "1h",
        &img,
        "sleep",
        "60",
    ]);
    let v = env.wait_inspect(&name, "three checks logged", |v| {
        v["State"]["Health"]["Log"]
            .as_array()
            .is_some_and(|l| l.len() >= 3)
    });
    assert_eq!(v["State"]["Health"]["Status"], "starting", "{v}");
    assert_eq!(v["State"]["Health"]["FailingStreak"], 0);
    assert!(env.ok(&["ps"]).contains("(health: starting)"));
}
