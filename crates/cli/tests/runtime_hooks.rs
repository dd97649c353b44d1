//! Hooks (runtime-spec config.md "POSIX-platform Hooks", runtime.md
//! "Lifecycle"): each of the six kinds runs at its moment with the state on
//! stdin, its args and env; a slow hook is killed; a failing createRuntime
//! hook fails create and leaves nothing behind.

mod common;
use common::*;
use serde_json::{json, Value};
use std::path::Path;
use std::time::{Duration, Instant};

/// A hook running `/bin/sh -c SCRIPT NAME ARG` with HOOKVAR in its env.
fn sh_hook(script: &str, name: &str) -> Value {
    json!({"path": "/bin/sh", "args": ["sh", "-c", script, name, "first-arg"], "env": ["HOOKVAR=hook-env-ok"]})
}

/// Script: state on stdin to DIR/KIND.json, "$0 $1 $HOOKVAR" and the mount
/// namespace to DIR/KIND.info.
fn recorder(dir: &str, kind: &str) -> Value {
    sh_hook(
        &format!("cat > {dir}/{kind}.json; echo \"$0 $1 $HOOKVAR $(readlink /proc/self/ns/mnt)\" > {dir}/{kind}.info"),
        kind,
    )
}

/// The hook, after a 0.3 s sleep.
fn slow(mut hook: Value) -> Value {
    let script = format!("sleep 0.3; {}", hook["args"][2].as_str().expect("script"));
    hook["args"][2] = script.into();
    hook
}

fn read_json(p: &Path) -> Value {
    let text =
        std::fs::read_to_string(p).unwrap_or_else(|e| panic!("{} missing: {e}", p.display()));
    serde_json::from_str(&text)
        .unwrap_or_else(|e| panic!("{} is not JSON ({e}): {text}", p.display()))
}

#[test]
fn all_six_hooks_run_at_their_moment_with_state_args_and_env() {
    require_root!();
    let env = Env::new();
    let mut b = env.bundle(&["sleep", "60"]);
    let dir = b.path().to_str().expect("utf-8").to_owned();
    b.config["hooks"] = json!({
        "prestart": [recorder(&dir, "prestart")],
        "createRuntime": [recorder(&dir, "createRuntime")],
        "createContainer": [recorder(&dir, "createContainer")],
        // Runs inside the container: /bin/sh and / are the container's.
        // Slow on purpose: `start` returns only after it (and the exec).
        "startContainer": [slow(recorder("", "startContainer"))],
        "poststart": [recorder(&dir, "poststart")],
        "poststop": [recorder(&dir, "poststop")],
    });
    let id = env.id("hooks");
    let pid = env.create_pid(&b, &id);
    let bp = b.path();
    for kind in ["prestart", "createRuntime", "createContainer"] {
        let st = read_json(&bp.join(format!("{kind}.json")));
        assert_eq!(st["id"], id.as_str(), "{kind}: {st}");
        assert_eq!(st["status"], "creating", "{kind}: {st}");
        assert_eq!(st["pid"], pid, "{kind}: {st}");
        assert_eq!(st["ociVersion"], "1.2.0", "{kind}: {st}");
        let info = std::fs::read_to_string(bp.join(format!("{kind}.info"))).expect("info");
        assert!(
            info.starts_with(&format!("{kind} first-arg hook-env-ok ")),
            "args and env: {info}"
        );
    }
    let container_mnt = std::fs::read_link(format!("/proc/{pid}/ns/mnt"))
        .expect("ns")
        .to_string_lossy()
        .into_owned();
    let host_mnt = std::fs::read_link("/proc/self/ns/mnt")
        .expect("ns")
        .to_string_lossy()
        .into_owned();
    let mnt_of = |kind: &str| {
        std::fs::read_to_string(bp.join(format!("{kind}.info")))
            .expect("info")
            .trim()
            .rsplit(' ')
            .next()
            .expect("ns")
            .to_owned()
    };
    assert_eq!(
        mnt_of("createRuntime"),
        host_mnt,
        "createRuntime runs in the runtime namespace"
    );
    assert_eq!(
        mnt_of("createContainer"),
        container_mnt,
        "createContainer runs in the container namespace"
    );
    assert!(
        !bp.join("rootfs/startContainer.json").exists(),
        "startContainer must wait for start"
    );
    assert!(
        !bp.join("poststart.json").exists(),
        "poststart must wait for start"
    );
    ok(&env.rt_out(&["start", &id]));
    let st = read_json(&bp.join("rootfs/startContainer.json"));
    assert_eq!(st["id"], id.as_str());
    let info = std::fs::read_to_string(bp.join("rootfs/startContainer.info")).expect("info");
    assert!(
        info.contains(&container_mnt),
        "startContainer runs in the container: {info}"
    );
    // poststart runs before start returns (runtime.md "start" step 4).
    let st = read_json(&bp.join("poststart.json"));
    assert_eq!(st["status"], "running", "{st}");
    assert!(!bp.join("poststop.json").exists());
    ok(&env.rt_out(&["kill", &id, "KILL"]));
    assert!(env.wait_status(&id, "stopped"));
    ok(&env.rt_out(&["delete", &id]));
    let st = read_json(&bp.join("poststop.json"));
    assert_eq!(st["id"], id.as_str());
    assert_eq!(st["status"], "stopped", "{st}");
    let info = std::fs::read_to_string(bp.join("poststop.info")).expect("info");
    assert!(info.starts_with("poststop first-arg hook-env-ok"), "{info}");
}

#[test]
fn slow_hook_is_killed_after_its_timeout_and_create_fails() {
    require_root!();
    let env = Env::new();
    let mut b = env.bundle(&["true"]);
    let marker = b.path().join("slow-finished");
    b.config["hooks"] = json!({"createRuntime": [{
        "path": "/bin/sh", "args": ["sh", "-c", format!("sleep 30; touch {}", marker.display())], "timeout": 1
    }]});
    let id = env.id("slowhook");
    let t = Instant::now();
    let st = env.create(&b, &id, &[]);
    let took = t.elapsed();
    let log = read_or_empty(b.path().join("create.log"));
    assert!(!st.success(), "create must fail: {log}");
    assert!(
        took < Duration::from_secs(25),
        "the hook must be killed, took {took:?}"
    );
    assert!(log.contains("timed out"), "{log}");
    assert!(!marker.exists());
    assert!(!env.state.path().join(&id).exists(), "no state left");
    assert!(
        env.cgroup_leftovers(&b.cgroups_path()).is_empty(),
        "no cgroup left"
    );
}

#[test]
fn failing_create_runtime_hook_fails_create_and_leaves_nothing() {
    require_root!();
    let env = Env::new();
    let mut b = env.bundle(&["sleep", "60"]);
    let dir = b.path().to_str().expect("utf-8").to_owned();
    b.config["hooks"] = json!({"createRuntime": [sh_hook(&format!("cat > {dir}/st.json; echo hook-says-no >&2; exit 3"), "failing")]});
    let id = env.id("failhook");
    let mounts_before: Vec<String> = host_mounts_under(b.path());
    let st = env.create(&b, &id, &[]);
    let log = read_or_empty(b.path().join("create.log"));
    assert!(!st.success(), "create must fail");
    assert!(
        log.contains("createRuntime") && log.contains("hook-says-no"),
        "the error names the hook and shows its stderr: {log}"
    );
    assert!(!env.state.path().join(&id).exists(), "no state left");
    assert!(
        env.cgroup_leftovers(&b.cgroups_path()).is_empty(),
        "no cgroup left"
    );
    assert_eq!(host_mounts_under(b.path()), mounts_before, "no mounts left");
    let pid = read_json(&b.path().join("st.json"))["pid"]
        .as_i64()
        .expect("pid in state");
    for _ in 0..200 {
        if !Path::new(&format!("/proc/{pid}")).exists()
            || read_or_empty(format!("/proc/{pid}/stat")).contains(") Z")
        {
            break;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    let alive = Path::new(&format!("/proc/{pid}")).exists()
        && !read_or_empty(format!("/proc/{pid}/stat")).contains(") Z");
    assert!(!alive, "the container process {pid} must be gone");
    let s = env.rt_out(&["state", &id]);
    assert!(!s.status.success());
}

#[test]
fn failing_poststart_hook_fails_start_and_destroys_the_container() {
    require_root!();
    let env = Env::new();
    let mut b = env.bundle(&["sleep", "60"]);
    b.config["hooks"] =
        json!({"poststart": [sh_hook("echo poststart-says-no >&2; exit 1", "poststart")]});
    let id = env.id("poststartfail");
    env.create_pid(&b, &id);
    let o = env.rt_out(&["start", &id]);
    // runtime.md "Lifecycle" step 9 (and runc): an error, the container
    // is stopped and destroyed.
    assert!(!o.status.success(), "start must fail");
    assert!(stderr(&o).contains("poststart-says-no"), "{}", stderr(&o));
    assert!(!env.rt_out(&["state", &id]).status.success());
}

#[test]
fn run_waits_for_start_container_hooks_and_reports_their_failure() {
    require_root!();
    let env = Env::new();
    // A slow hook that succeeds: its file exists before the program runs.
    let mut b = env.bundle(&["sh", "-c", "cat /hooked"]);
    b.config["hooks"] = json!({"startContainer": [sh_hook("sleep 0.3; echo hook-ran > /hooked", "startContainer")]});
    let id = env.id("runhook");
    let o = env.run(&b, &id);
    assert!(o.status.success(), "run: {}", stderr(&o));
    assert_eq!(String::from_utf8_lossy(&o.stdout).trim(), "hook-ran");
    // A failing one: run fails naming the hook and leaves no state.
    let mut b = env.bundle(&["true"]);
    b.config["hooks"] = json!({"startContainer": [sh_hook("echo start-hook-says-no >&2; exit 4", "startContainer")]});
    let id = env.id("runhookfail");
    let o = env.run(&b, &id);
    let err = stderr(&o);
    assert!(!o.status.success(), "run must fail");
    assert!(
        err.contains("startContainer") && err.contains("start-hook-says-no"),
        "{err}"
    );
    assert!(!env.state.path().join(&id).exists(), "no state left");
}
