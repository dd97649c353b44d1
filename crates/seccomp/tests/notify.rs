//! SCMP_ACT_NOTIFY end to end: the child loads a filter that notifies
//! `getppid` and `getcwd`, hands the notify fd to a listener thread in this
//! test over a unix socket with `send_to_listener`, and sees exactly the
//! answers the listener gives (no root needed).

mod common;

use std::io::IoSliceMut;
use std::mem::MaybeUninit;
use std::os::fd::{AsFd, AsRawFd, OwnedFd};
use std::os::unix::net::UnixListener;
use std::sync::mpsc;
use std::time::Duration;

use berth_seccomp::{compile, connect_listener, send_to_listener, ContainerProcessState};
use common::{child_exit, child_prepare, describe, field, is_child, parse, report, run_child};
use libseccomp::{ScmpNotifReq, ScmpNotifResp, ScmpNotifRespFlags, ScmpSyscall};
use rustix::net::{RecvAncillaryBuffer, RecvAncillaryMessage, RecvFlags};

const ANSWER_PPID: i64 = 4242;
const ANSWER_ERRNO: i32 = libc::EXDEV;

fn profile(path: &str) -> String {
    format!(
        r#"{{"defaultAction":"SCMP_ACT_ALLOW","listenerPath":"{path}","listenerMetadata":"meta-1",
            "syscalls":[{{"names":["getppid","getcwd"],"action":"SCMP_ACT_NOTIFY"}}]}}"#
    )
}

fn child(path: &str) -> ! {
    let filter = compile(&parse(&profile(path))).expect("compile");
    assert!(filter.uses_notify());
    let sock = connect_listener(std::path::Path::new(path)).expect("connect listener");
    child_prepare();
    let notify_fd = filter.load().expect("load").expect("notify fd");
    let mut state = oci_spec::runtime::State::default();
    state.set_id("notify-test".into());
    state.set_status(oci_spec::runtime::ContainerState::Creating);
    let pid = nix::unistd::getpid().as_raw();
    state.set_pid(Some(pid));
    let st = ContainerProcessState::new(pid, Some("meta-1".into()), state);
    send_to_listener(sock.as_fd(), notify_fd.as_fd(), &st).expect("send to listener");
    drop(sock);
    drop(notify_fd);
    report("getppid", nix::unistd::getppid());
    let cwd = std::env::current_dir();
    report(
        "getcwd",
        cwd.map_or_else(
            |e| e.raw_os_error().unwrap_or(-1).to_string(),
            |_| "ok".into(),
        ),
    );
    child_exit()
}

/// What the listener saw.
struct Seen {
    state: serde_json::Value,
    handled: Vec<String>,
}

/// Receives the state JSON + fd, then answers two notifications.
fn listen(listener: UnixListener) -> Result<Seen, String> {
    let (stream, _) = listener.accept().map_err(|e| format!("accept: {e}"))?;
    let stream = OwnedFd::from(stream);
    let mut payload = Vec::new();
    let mut notify_fd: Option<OwnedFd> = None;
    loop {
        let mut buf = [0u8; 4096];
        let mut space = [MaybeUninit::uninit(); rustix::cmsg_space!(ScmRights(1))];
        let mut control = RecvAncillaryBuffer::new(&mut space);
        let msg = rustix::net::recvmsg(
            &stream,
            &mut [IoSliceMut::new(&mut buf)],
            &mut control,
            RecvFlags::CMSG_CLOEXEC,
        )
        .map_err(|e| format!("recvmsg: {e}"))?;
        for m in control.drain() {
            if let RecvAncillaryMessage::ScmRights(mut fds) = m {
                if notify_fd.is_some() {
                    return Err("fds sent more than once".into());
                }
                notify_fd = fds.next();
            }
        }
        if msg.bytes == 0 {
            break; // the runtime closes after one state
        }
        payload.extend_from_slice(&buf[..msg.bytes]);
    }
    let state: serde_json::Value =
        serde_json::from_slice(&payload).map_err(|e| format!("state json: {e}"))?;
    let fd = notify_fd.ok_or("no fd in SCM_RIGHTS")?;
    let getppid = ScmpSyscall::from_name("getppid").map_err(|e| e.to_string())?;
    let mut handled = Vec::new();
    while handled.len() < 2 {
        let req = ScmpNotifReq::receive(fd.as_raw_fd()).map_err(|e| format!("receive: {e}"))?;
        let resp = if req.data.syscall == getppid {
            handled.push("getppid".to_string());
            ScmpNotifResp::new_val(req.id, ANSWER_PPID, ScmpNotifRespFlags::empty())
        } else {
            handled.push(format!("{:?}", req.data.syscall.get_name()));
            ScmpNotifResp::new_error(req.id, -ANSWER_ERRNO, ScmpNotifRespFlags::empty())
        };
        resp.respond(fd.as_raw_fd())
            .map_err(|e| format!("respond: {e}"))?;
    }
    Ok(Seen { state, handled })
}

#[test]
fn notify_fd_reaches_listener_and_answers_reach_the_process() {
    if is_child() {
        child(&std::env::var("SOCK").expect("SOCK"));
    }
    let f = berth_seccomp::features();
    if !f.actions.contains(&"SCMP_ACT_NOTIFY".to_string()) {
        eprintln!("SKIP: notify test: libseccomp/kernel lack SCMP_ACT_NOTIFY");
        return;
    }
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("agent.sock");
    let listener = UnixListener::bind(&path).expect("bind");
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        let _ = tx.send(listen(listener));
    });
    let out = run_child(
        "notify_fd_reaches_listener_and_answers_reach_the_process",
        &[("SOCK", path.to_str().expect("utf-8 temp path"))],
    );
    assert!(out.status.success(), "{}", describe(&out));
    let seen = rx
        .recv_timeout(Duration::from_secs(60))
        .unwrap_or_else(|_| panic!("listener did not finish: {}", describe(&out)))
        .unwrap_or_else(|e| panic!("listener: {e}\n{}", describe(&out)));
    assert_eq!(
        field(&out, "getppid").as_deref(),
        Some("4242"),
        "{}",
        describe(&out)
    );
    assert_eq!(
        field(&out, "getcwd"),
        Some(ANSWER_ERRNO.to_string()),
        "{}",
        describe(&out)
    );
    assert_eq!(seen.handled.len(), 2);
    let st = &seen.state;
    assert_eq!(st["fds"], serde_json::json!(["seccompFd"]), "{st}");
    assert_eq!(st["metadata"], "meta-1", "{st}");
    assert!(st["pid"].as_i64().is_some_and(|p| p > 1), "{st}");
    assert_eq!(st["state"]["id"], "notify-test", "{st}");
    assert_eq!(st["state"]["status"], "creating", "{st}");
    assert!(st["ociVersion"].is_string(), "{st}");
}
