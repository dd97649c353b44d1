//! `--console-socket` (runtime-spec config.md "terminal", "consoleSize";
//! runc's console socket protocol): the pty master arrives over SCM_RIGHTS
//! and the container's stdio is the slave.

mod common;
use common::*;
use serde_json::json;
use std::io::{IoSliceMut, Read};
use std::os::fd::OwnedFd;
use std::os::unix::net::UnixListener;

/// Accept one connection and receive one descriptor from it.
fn receive_fd(listener: &UnixListener) -> OwnedFd {
    use nix::sys::socket::{recvmsg, ControlMessageOwned, MsgFlags};
    use std::os::fd::AsRawFd;
    let (conn, _) = listener.accept().expect("accept console connection");
    let mut buf = [0u8; 256];
    let mut iov = [IoSliceMut::new(&mut buf)];
    let mut space = nix::cmsg_space!([std::os::fd::RawFd; 1]);
    let msg = recvmsg::<()>(
        conn.as_raw_fd(),
        &mut iov,
        Some(&mut space),
        MsgFlags::empty(),
    )
    .expect("recvmsg");
    for c in msg.cmsgs().expect("cmsgs") {
        if let ControlMessageOwned::ScmRights(fds) = c {
            let fd = *fds.first().expect("one fd");
            return berth_sys::fd::owned_from_scm_rights(fd);
        }
    }
    panic!("no SCM_RIGHTS message on the console socket");
}

/// Read until the slave side is closed (EIO) or EOF.
fn read_all(master: OwnedFd) -> String {
    let mut f = std::fs::File::from(master);
    let mut out = Vec::new();
    let mut buf = [0u8; 4096];
    loop {
        match f.read(&mut buf) {
            Ok(0) | Err(_) => break,
            Ok(n) => out.extend_from_slice(&buf[..n]),
        }
    }
    String::from_utf8_lossy(&out).replace('\r', "")
}

#[test]
fn console_socket_receives_the_pty_master() {
    require_root!();
    let env = Env::new();
    let mut b = env.bundle(&[
        "sh",
        "-c",
        "tty; [ -t 0 ] && echo stdin-is-tty; [ -t 1 ] && echo stdout-is-tty; stty size; echo done",
    ]);
    b.config["process"]["terminal"] = json!(true);
    b.config["process"]["consoleSize"] = json!({"height": 33, "width": 111});
    let sock = b.path().join("console.sock");
    let listener = UnixListener::bind(&sock).expect("bind console socket");
    let id = env.id("console");
    let sock_s = sock.to_str().expect("utf-8").to_owned();
    let create = {
        b.write();
        env.rt()
            .args(["create", "--bundle"])
            .arg(b.path())
            .args(["--console-socket", &sock_s])
            .arg(&id)
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .expect("spawn create")
    };
    let master = receive_fd(&listener);
    let o = create.wait_with_output().expect("create");
    assert!(o.status.success(), "create: {}", stderr(&o));
    let link = std::fs::read_link(format!(
        "/proc/self/fd/{}",
        std::os::fd::AsRawFd::as_raw_fd(&master)
    ))
    .expect("fd link");
    assert!(
        link.to_string_lossy().ends_with("ptmx"),
        "we got a pty master: {}",
        link.display()
    );
    ok(&env.rt_out(&["start", &id]));
    let out = read_all(master);
    let mut lines = out.lines();
    let tty = lines.next().expect("tty line");
    assert!(
        tty.starts_with("/dev/pts/") && tty["/dev/pts/".len()..].parse::<u32>().is_ok(),
        "{out}"
    );
    assert!(
        out.contains("stdin-is-tty") && out.contains("stdout-is-tty"),
        "{out}"
    );
    assert!(out.contains("33 111"), "consoleSize applied: {out}");
    assert!(out.contains("done"), "{out}");
}

#[test]
fn terminal_without_console_socket_is_refused_for_create() {
    require_root!();
    let env = Env::new();
    let mut b = env.bundle(&["true"]);
    b.config["process"]["terminal"] = json!(true);
    let id = env.id("noconsole");
    let st = env.create(&b, &id, &[]);
    let log = read_or_empty(b.path().join("create.log"));
    assert!(
        !st.success(),
        "runc refuses terminal=true without --console-socket on create"
    );
    assert!(log.contains("console"), "{log}");
    assert!(!env.state.path().join(&id).exists());
}
