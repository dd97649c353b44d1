//! `berth run --init`, as root: the host's static init (catatonit or
//! tini-static) is PID 1, the command its child; orphans are reaped,
//! `berth stop`'s SIGTERM reaches the command, the exit code passes
//! through; a dynamic or missing init is refused with a clear error.

mod common;
use common::*;
use std::path::Path;
use std::time::{Duration, Instant};

/// The static inits on this host that berth can use, by path.
fn static_inits() -> Vec<&'static str> {
    ["/usr/bin/catatonit", "/usr/bin/tini-static"]
        .into_iter()
        .filter(|p| Path::new(p).exists())
        .collect()
}

macro_rules! require_init {
    () => {{
        let inits = static_inits();
        if inits.is_empty() {
            eprintln!(
                "SKIP: no static init on this host (apt-get install tini catatonit; \
                 .ci/install.d/engine.sh)"
            );
            return;
        }
        inits
    }};
}

/// PID 1, the command's place and orphan reaping, seen from inside.
const PROBE: &str = r#"
echo "pid=$$ ppid=$PPID"
echo "init=$(tr '\0' ' ' < /proc/1/cmdline)"
(sleep 0.4 &)
sleep 0.1
for f in /proc/[0-9]*/stat; do
    read pid comm st ppid rest < "$f" 2>/dev/null || continue
    [ "$comm" = "(sleep)" ] && echo "orphan ppid=$ppid"
done
sleep 1.2
z=0
for f in /proc/[0-9]*/stat; do
    read pid comm st rest < "$f" 2>/dev/null || continue
    [ "$st" = Z ] && z=$((z+1))
done
echo "zombies=$z"
exit 7
"#;

#[test]
fn init_is_pid_1_reaps_orphans_and_passes_the_exit_code() {
    require_root!();
    let inits = require_init!();
    let env = EngineEnv::new();
    let img = env.busybox_image();
    for init in inits {
        let o = env.berth(&[
            "run",
            "--rm",
            "--init",
            "--init-path",
            init,
            &img,
            "sh",
            "-c",
            PROBE,
        ]);
        let out = stdout(&o);
        assert_eq!(o.status.code(), Some(7), "{init}: exit code passes: {out}");
        assert!(
            out.contains("init=/run/berth-init -- sh -c"),
            "{init}: PID 1 is the init, the command after `--`: {out}"
        );
        let pid_line = out.lines().find(|l| l.starts_with("pid=")).unwrap_or("");
        assert!(
            pid_line.ends_with(" ppid=1") && !pid_line.starts_with("pid=1 "),
            "{init}: the command is PID 1's child: {out}"
        );
        assert!(
            out.contains("orphan ppid=1"),
            "{init}: the orphan went to the init: {out}"
        );
        assert!(
            out.contains("zombies=0"),
            "{init}: the init reaped it: {out}"
        );
    }
    // A read-only rootfs without /run, or a tmpfs on /run, does not hide
    // or block the init's mountpoint.
    let cases: [&[&str]; 2] = [&["--read-only"], &["--tmpfs", "/run"]];
    for extra in cases {
        let mut args = vec!["run", "--rm", "--init"];
        args.extend_from_slice(extra);
        args.extend_from_slice(&[&img, "sh", "-c", "exit 3"]);
        assert_eq!(env.berth(&args).status.code(), Some(3), "{extra:?}");
    }
    // Without --init the command is PID 1 itself (the test can tell).
    let out = env.ok(&["run", "--rm", &img, "sh", "-c", "echo pid=$$"]);
    assert_eq!(out.trim(), "pid=1");
    // The image was not touched: the mountpoint lived in the container's
    // upper dir only, gone with it.
    let leftovers = find_named(&env.root(), "berth-init");
    assert!(leftovers.is_empty(), "{leftovers:?}");
    assert!(env.mounts().is_empty(), "{:?}", env.mounts());
}

fn find_named(dir: &Path, name: &str) -> Vec<std::path::PathBuf> {
    let mut found = Vec::new();
    let Ok(rd) = std::fs::read_dir(dir) else {
        return found;
    };
    for e in rd.flatten() {
        let p = e.path();
        if e.file_name() == name {
            found.push(p.clone());
        }
        if e.file_type().is_ok_and(|t| t.is_dir()) {
            found.extend(find_named(&p, name));
        }
    }
    found
}

#[test]
fn stop_reaches_the_command_through_the_init() {
    require_root!();
    require_init!();
    let env = EngineEnv::new();
    let img = env.busybox_image();
    // The default search finds the init; inspect records --init.
    env.ok(&[
        "run", "-d", "--init", "--name", "sleeper", &img, "sleep", "1000",
    ]);
    let v = env.wait_inspect("sleeper", "running", |v| v["State"]["Status"] == "running");
    assert_eq!(v["HostConfig"]["Init"], true);
    assert_eq!(v["Path"], "sleep", "inspect shows the user's command");
    let mounts = v["Mounts"].to_string();
    assert!(!mounts.contains("berth-init"), "{mounts}");
    let cmdline = env.ok(&["exec", "sleeper", "cat", "/proc/1/cmdline"]);
    assert!(
        cmdline.starts_with("/run/berth-init\0--\0sleep\0"),
        "{cmdline:?}"
    );
    // As PID 1, sleep would ignore SIGTERM and be killed after the
    // timeout (137); the init forwards it to sleep, which dies (143).
    let t = Instant::now();
    env.ok(&["stop", "-t", "20", "sleeper"]);
    let took = t.elapsed();
    let v = env.inspect("sleeper");
    assert_eq!(v["State"]["Status"], "exited");
    assert_eq!(v["State"]["ExitCode"], 143, "SIGTERM ended the command");
    assert!(took < Duration::from_secs(10), "stop took {took:?}");
    env.ok(&["rm", "sleeper"]);
    assert!(env.mounts().is_empty(), "{:?}", env.mounts());
}

#[test]
fn unusable_inits_are_refused_clearly() {
    require_root!();
    let env = EngineEnv::new();
    let img = env.busybox_image();
    let script = env.dir.path().join("init.sh");
    std::fs::write(&script, "#!/bin/sh\nexec \"$@\"\n").expect("write script");
    std::fs::set_permissions(&script, std::os::unix::fs::PermissionsExt::from_mode(0o755))
        .expect("chmod");
    let script = script.to_str().expect("utf-8");
    // berth's binaries (and this test) are static; the host's coreutils
    // are dynamically linked.
    let dynamic = "/bin/ls";
    let cases: [(&[&str], &[&str]); 4] = [
        (
            &["--init", "--init-path", dynamic],
            &["--init-path", "dynamically linked", "tini-static"],
        ),
        (&["--init", "--init-path", script], &["not an executable"]),
        (
            &["--init", "--init-path", "/nonexistent/init"],
            &["/nonexistent/init", "--init-path"],
        ),
        (&["--init-path", "/usr/bin/tini-static"], &["--init"]),
    ];
    for (flags, wanted) in cases {
        let mut args = vec!["run", "--rm"];
        args.extend_from_slice(flags);
        args.extend_from_slice(&[&img, "true"]);
        let o = env.berth(&args);
        assert!(!o.status.success(), "{flags:?} must fail");
        for w in wanted {
            assert!(stderr(&o).contains(w), "{flags:?}: {w:?} in {}", stderr(&o));
        }
    }
    // $BERTH_INIT_PATH is honoured (and checked) when no flag is given.
    let o = env
        .cmd()
        .env("BERTH_INIT_PATH", dynamic)
        .args(["run", "--rm", "--init", &img, "true"])
        .output()
        .expect("run berth");
    assert!(!o.status.success());
    assert!(
        stderr(&o).contains("BERTH_INIT_PATH") && stderr(&o).contains("dynamically linked"),
        "{}",
        stderr(&o)
    );
    assert_eq!(env.ok(&["ps", "-aq"]), "", "nothing was created");
}
