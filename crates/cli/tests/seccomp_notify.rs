//! SCMP_ACT_NOTIFY in a real container (issue 4, config-linux.md "Seccomp"
//! `listenerPath`, "The Container Process State"): the test is the seccomp
//! agent. It receives the state JSON and the notify fd over the unix socket
//! (SCM_RIGHTS), answers the notifications with the seccomp notify ioctls
//! (libseccomp) and the container sees those answers.

mod common;
use common::*;
use libseccomp::{ScmpNotifReq, ScmpNotifResp, ScmpNotifRespFlags};
use nix::sys::socket::{recvmsg, ControlMessageOwned, MsgFlags};
use serde_json::{json, Value};
use std::io::IoSliceMut;
use std::os::fd::{AsFd, AsRawFd, OwnedFd};
use std::os::unix::net::UnixListener;
use std::sync::mpsc;
use std::time::{Duration, Instant};

/// What the agent saw.
#[derive(Debug)]
struct AgentReport {
    state: Value,
    fd_count: usize,
    /// (syscall name, host pid) of each notification, in order.
    calls: Vec<(String, u32)>,
}

/// Receive the container process state and the notify fd.
fn receive_state(conn: &std::os::unix::net::UnixStream) -> (Value, Vec<OwnedFd>) {
    let mut buf = vec![0u8; 64 * 1024];
    let mut iov = [IoSliceMut::new(&mut buf)];
    let mut space = nix::cmsg_space!([std::os::fd::RawFd; 4]);
    let msg = recvmsg::<()>(
        conn.as_raw_fd(),
        &mut iov,
        Some(&mut space),
        MsgFlags::MSG_CMSG_CLOEXEC,
    )
    .expect("recvmsg from the runtime");
    let mut fds = Vec::new();
    for c in msg.cmsgs().expect("control messages") {
        if let ControlMessageOwned::ScmRights(raw) = c {
            fds.extend(raw.into_iter().map(berth_sys::fd::owned_from_scm_rights));
        }
    }
    let n = msg.bytes;
    let state = serde_json::from_slice(&buf[..n]).expect("the state is JSON");
    (state, fds)
}

/// Serves notifications on `fd` until the filter's last user exits
/// (POLLHUP) or `secs` pass: the n-th request (from 0) gets `pick(n, id)`.
/// The syscalls seen, with the caller's pid. `strict`: a response the
/// kernel refuses fails the test.
fn serve(
    fd: &OwnedFd,
    secs: u64,
    strict: bool,
    pick: impl Fn(usize, u64) -> ScmpNotifResp,
) -> Vec<(String, u32)> {
    use nix::poll::{poll, PollFd, PollFlags, PollTimeout};
    let end = Instant::now() + Duration::from_secs(secs);
    let mut calls = Vec::new();
    while Instant::now() < end {
        let mut pfd = [PollFd::new(fd.as_fd(), PollFlags::POLLIN)];
        match poll(&mut pfd, PollTimeout::from(200u16)) {
            Ok(0) | Err(nix::Error::EINTR) => continue,
            Ok(_) => {}
            Err(e) => panic!("poll notify fd: {e}"),
        }
        let revents = pfd[0].revents().unwrap_or(PollFlags::empty());
        if !revents.contains(PollFlags::POLLIN) {
            break; // POLLHUP: no process uses the filter any more
        }
        let Ok(req) = ScmpNotifReq::receive(fd.as_raw_fd()) else {
            continue; // the caller died meanwhile
        };
        let name = req.data.syscall.get_name().unwrap_or_else(|_| "?".into());
        let resp = pick(calls.len(), req.id);
        calls.push((name, req.pid));
        let r = resp.respond(fd.as_raw_fd());
        if strict {
            r.expect("respond to the notification");
        }
    }
    calls
}

/// Answer notifications: the 1st with fake success, the 2nd with ENOSPC,
/// the rest by letting the kernel run the syscall (CONTINUE).
fn answer(fd: &OwnedFd, secs: u64) -> Vec<(String, u32)> {
    serve(fd, secs, true, |n, id| match n {
        0 => ScmpNotifResp::new_val(id, 0, ScmpNotifRespFlags::empty()),
        1 => ScmpNotifResp::new_error(id, -libc::ENOSPC, ScmpNotifRespFlags::empty()),
        _ => ScmpNotifResp::new_continue(id, ScmpNotifRespFlags::empty()),
    })
}

#[test]
fn notify_listener_gets_the_fd_and_its_answers_reach_the_container() {
    require_root!();
    let env = Env::new();
    let mut b = env.bundle(&[
        "sh",
        "-c",
        "mkdir /tmp/a; echo first=$?; [ -d /tmp/a ] && echo a-exists || echo a-absent; \
         mkdir /tmp/b; echo second=$?; \
         mkdir /tmp/c; echo third=$?; [ -d /tmp/c ] && echo c-exists || echo c-absent",
    ]);
    let sock = b.path().join("agent.sock");
    b.config["linux"]["seccomp"] = json!({
        "defaultAction": "SCMP_ACT_ALLOW",
        "architectures": ["SCMP_ARCH_X86_64", "SCMP_ARCH_X86", "SCMP_ARCH_X32"],
        "listenerPath": sock,
        "listenerMetadata": "berth-test-metadata",
        "syscalls": [{"names": ["mkdir", "mkdirat"], "action": "SCMP_ACT_NOTIFY"}]
    });
    let listener = UnixListener::bind(&sock).expect("bind the agent socket");
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        let (conn, _) = listener.accept().expect("accept the runtime");
        let (state, fds) = receive_state(&conn);
        let fd_count = fds.len();
        let calls = fds.first().map(|fd| answer(fd, 120)).unwrap_or_default();
        let _ = tx.send(AgentReport {
            state,
            fd_count,
            calls,
        });
    });
    let id = env.id("notify");
    let o = env.run(&b, &id);
    let out = stdout(&o) + &stderr(&o);
    let report = rx
        .recv_timeout(Duration::from_secs(120))
        .unwrap_or_else(|_| panic!("the agent got nothing; container said: {out}"));
    assert!(o.status.success(), "{out}");

    // The container process state (config-linux.md).
    let st = &report.state;
    assert_eq!(report.fd_count, 1, "exactly one fd: {st}");
    assert_eq!(st["fds"], json!(["seccompFd"]), "{st}");
    assert_eq!(st["metadata"], "berth-test-metadata", "{st}");
    assert_eq!(st["state"]["id"], id.as_str(), "{st}");
    assert!(st["pid"].as_i64().unwrap_or(0) > 0, "{st}");
    assert!(st["ociVersion"].is_string(), "{st}");

    // Each answer reached the container.
    assert!(
        out.contains("first=0") && out.contains("a-absent"),
        "fake success: {out}"
    );
    assert!(
        out.contains("second=1") && out.contains("No space left on device"),
        "ENOSPC: {out}"
    );
    assert!(
        out.contains("third=0") && out.contains("c-exists"),
        "CONTINUE runs the real mkdir: {out}"
    );
    assert_eq!(report.calls.len(), 3, "{:?}", report.calls);
    for (name, pid) in &report.calls {
        assert!(name.starts_with("mkdir"), "{name}");
        assert!(*pid > 0);
    }
}

#[test]
fn notify_without_a_listener_fails_create_clearly() {
    require_root!();
    let env = Env::new();
    let mut b = env.bundle(&["true"]);
    let sock = b.path().join("nobody-listens.sock");
    b.config["linux"]["seccomp"] = json!({
        "defaultAction": "SCMP_ACT_ALLOW",
        "listenerPath": sock,
        "syscalls": [{"names": ["mkdir"], "action": "SCMP_ACT_NOTIFY"}]
    });
    let id = env.id("nolistener");
    let o = env.run(&b, &id);
    assert!(!o.status.success(), "create must fail without a listener");
    assert!(
        stderr(&o).contains("nobody-listens.sock") && stderr(&o).contains("seccomp agent"),
        "the error names the agent and its listener path: {}",
        stderr(&o)
    );
    assert!(
        !env.rt_out(&["state", &id]).status.success(),
        "nothing is left behind"
    );
}

/// An agent that answers every notification with CONTINUE (the kernel runs
/// the syscall).
fn continue_all(fd: &OwnedFd, secs: u64) -> Vec<(String, u32)> {
    serve(fd, secs, false, |_, id| {
        ScmpNotifResp::new_continue(id, ScmpNotifRespFlags::empty())
    })
}

fn notify_profile(sock: &std::path::Path, names: &[&str]) -> Value {
    json!({
        "defaultAction": "SCMP_ACT_ALLOW",
        "architectures": ["SCMP_ARCH_X86_64", "SCMP_ARCH_X86", "SCMP_ARCH_X32"],
        "listenerPath": sock,
        "syscalls": [{"names": names, "action": "SCMP_ACT_NOTIFY"}]
    })
}

#[test]
fn notify_on_the_syscalls_a_runtime_uses_is_accepted() {
    require_root!();
    let env = Env::new();
    // write, sendmsg, close...: all of them, with and without no_new_privs.
    for nnp in [true, false] {
        let mut b = env.bundle(&["sh", "-c", "echo notified-write-ok"]);
        let sock = b.path().join("agent.sock");
        b.config["process"]["noNewPrivileges"] = json!(nnp);
        b.config["linux"]["seccomp"] = notify_profile(
            &sock,
            &[
                "write",
                "sendmsg",
                "recvmsg",
                "close",
                "close_range",
                "fcntl",
                "rt_sigprocmask",
                "openat",
                "read",
            ],
        );
        let listener = UnixListener::bind(&sock).expect("bind the agent socket");
        let (tx, rx) = mpsc::channel();
        std::thread::spawn(move || {
            let (conn, _) = listener.accept().expect("accept the runtime");
            let (_state, fds) = receive_state(&conn);
            let calls = fds
                .first()
                .map(|fd| continue_all(fd, 120))
                .unwrap_or_default();
            let _ = tx.send(calls);
        });
        let o = env.run(&b, &env.id("notify-write"));
        let out = stdout(&o) + &stderr(&o);
        assert!(o.status.success(), "nnp {nnp}: {out}");
        assert_eq!(stdout(&o).trim(), "notified-write-ok", "nnp {nnp}: {out}");
        let calls = rx
            .recv_timeout(Duration::from_secs(120))
            .expect("the agent got the descriptor");
        assert!(
            calls.iter().any(|(n, _)| n == "write"),
            "the program's write went through the agent: {calls:?}"
        );
    }
}

#[test]
fn notify_descriptor_reaches_the_agent_during_create() {
    require_root!();
    let env = Env::new();
    let mut b = env.bundle(&["sh", "-c", "mkdir /tmp/x; echo mkdir=$?"]);
    let sock = b.path().join("agent.sock");
    b.config["linux"]["seccomp"] = notify_profile(&sock, &["mkdir", "mkdirat"]);
    let listener = UnixListener::bind(&sock).expect("bind the agent socket");
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        let (conn, _) = listener.accept().expect("accept the runtime");
        let (state, fds) = receive_state(&conn);
        let fd = fds.into_iter().next();
        // One state per connection: the runtime closes it afterwards.
        conn.set_read_timeout(Some(Duration::from_secs(10)))
            .expect("read timeout");
        let eof = matches!(std::io::Read::read(&mut &conn, &mut [0u8; 1]), Ok(0));
        let _ = tx.send((state, eof));
        if let Some(fd) = fd {
            continue_all(&fd, 60);
        }
    });
    let id = env.id("notify-create");
    let st = env.create(&b, &id, &[]);
    assert!(
        st.success(),
        "create: {}",
        read_or_empty(b.path().join("create.log"))
    );
    // Before `start`: the agent has the descriptor and the state.
    let (state, eof) = rx
        .recv_timeout(Duration::from_secs(15))
        .expect("the agent gets the descriptor before start");
    assert!(eof, "the connection to the agent is closed after the state");
    assert_eq!(env.state(&id)["status"], "created");
    assert_eq!(state["state"]["status"], "creating", "{state}");
    assert_eq!(state["state"]["id"], id.as_str(), "{state}");
    assert_eq!(state["pid"], env.state(&id)["pid"], "{state}");
    let o = env.rt_out(&["start", &id]);
    assert!(o.status.success(), "start: {}", stderr(&o));
    assert!(
        env.wait_status(&id, "stopped"),
        "the container runs to its end"
    );
    let log = read_or_empty(b.path().join("create.log"));
    assert!(log.contains("mkdir=0"), "{log}");
}

#[test]
fn notify_works_for_exec_processes() {
    require_root!();
    let env = Env::new();
    let mut b = env.bundle(&["sleep", "60"]);
    let sock = b.path().join("agent.sock");
    b.config["linux"]["seccomp"] = notify_profile(&sock, &["mkdir", "mkdirat"]);
    b.config["linux"]["seccomp"]["listenerMetadata"] = json!("exec-meta");
    let listener = UnixListener::bind(&sock).expect("bind the agent socket");
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        // One connection per process: the init's, then the exec'd one's.
        for _ in 0..2 {
            let Ok((conn, _)) = listener.accept() else {
                return;
            };
            let (state, fds) = receive_state(&conn);
            let fd = fds.into_iter().next();
            let tx = tx.clone();
            std::thread::spawn(move || {
                // The exec'd process's mkdir gets ENOSPC from this agent.
                let calls = fd.map(|fd| answer_enospc(&fd, 60)).unwrap_or_default();
                let _ = tx.send((state, calls));
            });
        }
    });
    let id = env.id("notify-exec");
    let pid = env.create_and_start(&b, &id);
    let o = env.rt_out(&[
        "exec",
        &id,
        "sh",
        "-c",
        "mkdir /tmp/from-exec; echo mkdir=$?",
    ]);
    let out = stdout(&o) + &stderr(&o);
    assert!(out.contains("mkdir=1"), "the agent answered ENOSPC: {out}");
    assert!(out.contains("No space left on device"), "{out}");
    let _ = env.rt_out(&["kill", &id, "KILL"]);
    let mut states = Vec::new();
    while let Ok((st, _)) = rx.recv_timeout(Duration::from_secs(20)) {
        states.push(st);
        if states.len() == 2 {
            break;
        }
    }
    let exec_state = states
        .iter()
        .find(|s| s["pid"] != json!(pid))
        .unwrap_or_else(|| panic!("no state for the exec'd process: {states:?}"));
    assert_eq!(exec_state["state"]["pid"], json!(pid), "{exec_state}");
    assert_eq!(exec_state["state"]["status"], "running", "{exec_state}");
    assert_eq!(exec_state["metadata"], "exec-meta", "{exec_state}");
}

/// Answer every notification with ENOSPC.
fn answer_enospc(fd: &OwnedFd, secs: u64) -> Vec<(String, u32)> {
    serve(fd, secs, false, |_, id| {
        ScmpNotifResp::new_error(id, -libc::ENOSPC, ScmpNotifRespFlags::empty())
    })
}
