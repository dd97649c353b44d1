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

/// Answer notifications: the 1st with fake success, the 2nd with ENOSPC,
/// the rest by letting the kernel run the syscall (CONTINUE). Stops when
/// the filter's last user exits (POLLHUP) or after `secs`.
fn answer(fd: &OwnedFd, secs: u64) -> Vec<(String, u32)> {
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
        let req = match ScmpNotifReq::receive(fd.as_raw_fd()) {
            Ok(r) => r,
            Err(_) => continue, // the caller died meanwhile
        };
        let name = req.data.syscall.get_name().unwrap_or_else(|_| "?".into());
        let resp = match calls.len() {
            0 => ScmpNotifResp::new_val(req.id, 0, ScmpNotifRespFlags::empty()),
            1 => ScmpNotifResp::new_error(req.id, -libc::ENOSPC, ScmpNotifRespFlags::empty()),
            _ => ScmpNotifResp::new_continue(req.id, ScmpNotifRespFlags::empty()),
        };
        calls.push((name, req.pid));
        resp.respond(fd.as_raw_fd())
            .expect("respond to the notification");
    }
    calls
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
        stderr(&o).contains("nobody-listens.sock"),
        "the error names the listener path: {}",
        stderr(&o)
    );
    assert!(
        !env.rt_out(&["state", &id]).status.success(),
        "nothing is left behind"
    );
}
