//! `exec` (runc's exec; runtime-spec config.md "Process" for --process):
//! the new process joins every namespace and the cgroup of the container.

mod common;
use common::*;
use serde_json::json;

/// A started `sleep` container; returns (id, init pid).
fn running(env: &Env, b: &Bundle) -> (String, i32) {
    let id = env.id("exec");
    let pid = env.create_pid(b, &id);
    ok(&env.rt_out(&["start", &id]));
    (id, pid)
}

fn ns_link(pid: i32, kind: &str) -> String {
    std::fs::read_link(format!("/proc/{pid}/ns/{kind}"))
        .unwrap_or_else(|e| panic!("ns {kind} of {pid}: {e}"))
        .to_string_lossy()
        .into_owned()
}

#[test]
fn exec_joins_the_same_namespaces_and_cgroup() {
    require_root!();
    let env = Env::new();
    let b = env.bundle(&["sleep", "60"]);
    let (id, init) = running(&env, &b);
    let pidfile = b.path().join("exec.pid");
    // The detached process inherits stdio: no pipes, or we would wait for it.
    let st = env
        .rt()
        .args([
            "exec",
            "--detach",
            "--pid-file",
            pidfile.to_str().expect("utf-8"),
            &id,
            "sleep",
            "30",
        ])
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .status()
        .expect("exec --detach");
    assert!(st.success());
    let pid: i32 = std::fs::read_to_string(&pidfile)
        .expect("exec pid file")
        .trim()
        .parse()
        .expect("pid");
    assert_ne!(pid, init);
    for kind in ["pid", "mnt", "uts", "ipc", "net", "cgroup"] {
        assert_eq!(
            ns_link(pid, kind),
            ns_link(init, kind),
            "{kind} namespace of the exec'd process"
        );
    }
    assert_eq!(
        read_or_empty(format!("/proc/{pid}/cgroup")),
        read_or_empty(format!("/proc/{init}/cgroup")),
        "same cgroups"
    );
    // Inside, the exec'd process is not PID 1 and sees init.
    let out = ok(&env.rt_out(&["exec", &id, "sh", "-c", "echo $$; cat /proc/1/comm"]));
    assert_ne!(out.lines().next(), Some("1"), "{out}");
    assert_eq!(out.lines().nth(1), Some("sleep"), "{out}");
}

#[test]
fn exec_returns_the_exit_code() {
    require_root!();
    let env = Env::new();
    let b = env.bundle(&["sleep", "60"]);
    let (id, _) = running(&env, &b);
    let o = env.rt_out(&["exec", &id, "sh", "-c", "exit 42"]);
    assert_eq!(o.status.code(), Some(42), "{}", stderr(&o));
    let o = env.rt_out(&["exec", &id, "/no/such/program"]);
    assert!(!o.status.success());
    assert!(stderr(&o).contains("/no/such/program"), "{}", stderr(&o));
}

#[test]
fn exec_env_cwd_and_user() {
    require_root!();
    let env = Env::new();
    let b = env.bundle(&["sleep", "60"]);
    let (id, _) = running(&env, &b);
    let out = ok(&env.rt_out(&[
        "exec",
        "--env",
        "FOO=from-exec",
        "--cwd",
        "/tmp",
        "--user",
        "1000:1001",
        &id,
        "sh",
        "-c",
        "echo $FOO; pwd; id -u; id -g",
    ]));
    assert_eq!(out, "from-exec\n/tmp\n1000\n1001\n");
}

#[test]
fn exec_process_file() {
    require_root!();
    let env = Env::new();
    let b = env.bundle(&["sleep", "60"]);
    let (id, _) = running(&env, &b);
    let proc_json = json!({
        "terminal": false,
        "user": {"uid": 1234, "gid": 4321},
        "args": ["sh", "-c", "echo $BAR; pwd; id -u; id -g; grep NoNewPrivs /proc/self/status"],
        "env": ["PATH=/bin", "BAR=from-process-file"],
        "cwd": "/etc",
        "noNewPrivileges": true
    });
    let pf = b.path().join("process.json");
    std::fs::write(&pf, serde_json::to_vec(&proc_json).expect("json")).expect("write process.json");
    let out = ok(&env.rt_out(&["exec", "--process", pf.to_str().expect("utf-8"), &id]));
    let lines: Vec<&str> = out.lines().collect();
    assert_eq!(
        &lines[..4],
        &["from-process-file", "/etc", "1234", "4321"],
        "{out}"
    );
    assert!(lines[4].ends_with('1'), "{out}");
}

#[test]
fn exec_into_a_stopped_or_missing_container_fails_clearly() {
    require_root!();
    let env = Env::new();
    let b = env.bundle(&["sh", "-c", "exit 0"]);
    let (id, _) = running(&env, &b);
    assert!(env.wait_status(&id, "stopped"));
    let o = env.rt_out(&["exec", &id, "true"]);
    assert!(!o.status.success());
    assert!(stderr(&o).contains("stopped"), "{}", stderr(&o));
    let o = env.rt_out(&["exec", "berth-no-such-container", "true"]);
    assert!(!o.status.success());
    assert!(
        stderr(&o).contains("berth-no-such-container"),
        "{}",
        stderr(&o)
    );
}
