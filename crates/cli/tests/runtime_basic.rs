//! First end-to-end checks of berth-runtime: a busybox container runs, sees
//! its own pid namespace and exits with its status.

mod common;
use common::*;

#[test]
fn run_prints_output_and_is_pid_1() {
    require_root!();
    let env = Env::new();
    let b = env.bundle(&["sh", "-c", "echo hello; echo pid=$$"]);
    let id = env.id("basic");
    let o = env.run(&b, &id);
    let out = ok(&o);
    assert!(out.contains("hello"), "{out}");
    assert!(
        out.contains("pid=1"),
        "the shell must be PID 1 of its namespace: {out}"
    );
    // Foreground run deletes the container after it exits.
    let st = env.rt_out(&["state", &id]);
    assert!(
        !st.status.success(),
        "state after run must say the container is gone"
    );
}

#[test]
fn run_exits_with_the_container_status() {
    require_root!();
    let env = Env::new();
    let b = env.bundle(&["sh", "-c", "exit 7"]);
    let o = env.run(&b, &env.id("exit"));
    assert_eq!(o.status.code(), Some(7), "{}", stderr(&o));
}

#[test]
fn create_start_state_delete_lifecycle() {
    require_root!();
    let env = Env::new();
    let b = env.bundle(&["sleep", "30"]);
    let id = env.id("life");
    let pidfile = b.path().join("pid");
    let o = env
        .rt()
        .args(["create", "--bundle"])
        .arg(b.path())
        .arg("--pid-file")
        .arg(&pidfile)
        .arg(&id)
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .status()
        .expect("create");
    assert!(o.success(), "create failed");
    let pid: i32 = std::fs::read_to_string(&pidfile)
        .expect("pid file")
        .trim()
        .parse()
        .expect("pid");
    let st = env.state(&id);
    assert_eq!(st["status"], "created");
    assert_eq!(st["pid"], pid);
    // Still blocked before the user's program: its comm is not sleep yet.
    let comm = std::fs::read_to_string(format!("/proc/{pid}/comm")).expect("comm");
    assert_ne!(comm.trim(), "sleep");
    ok(&env.rt_out(&["start", &id]));
    assert_eq!(env.state(&id)["status"], "running");
    let del = env.rt_out(&["delete", &id]);
    assert!(
        !del.status.success(),
        "delete of a running container must be refused"
    );
    ok(&env.rt_out(&["kill", &id, "KILL"]));
    for _ in 0..500 {
        if env.state(&id)["status"] == "stopped" {
            break;
        }
        std::thread::sleep(std::time::Duration::from_millis(10));
    }
    assert_eq!(env.state(&id)["status"], "stopped");
    let k = env.rt_out(&["kill", &id, "TERM"]);
    assert!(!k.status.success(), "kill of a stopped container must fail");
    ok(&env.rt_out(&["delete", &id]));
    assert!(
        !env.state.path().join(&id).exists(),
        "delete must remove the state directory"
    );
}
