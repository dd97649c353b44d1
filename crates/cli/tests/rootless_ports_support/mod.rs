//! What the rootless published-port tests share (engine_rootless_ports*.rs):
//! the test user with slirp4netns, podman's short tmp dir, the listening
//! sockets of a port, commands as berth or podman, and the after-rm check.
#![allow(dead_code)]
use std::process::Output;

use crate::common;
pub use crate::common::rootless_engine::have_podman;
use crate::common::rootless_engine::Rootless;

pub fn rootless() -> Option<Rootless> {
    Rootless::with_slirp4netns("rootless published ports")
}

/// Rootless podman's slirp4netns API socket lives in its tmp dir, by
/// default `$XDG_RUNTIME_DIR/libpod/tmp`: under the test user's long
/// runtime dir its path passes the 108 bytes of a socket address. The
/// user's containers.conf gives podman a shorter one (before podman's
/// first command, which records it in its database).
pub fn short_podman_tmpdir(r: &Rootless) {
    let t = r.u.base.join("t");
    std::fs::create_dir_all(&t).unwrap();
    r.chown_to_user(&t);
    let conf = r.u.home.join(".config/containers");
    std::fs::create_dir_all(&conf).unwrap();
    std::fs::write(
        conf.join("containers.conf"),
        format!("[engine]\ntmp_dir = \"{}\"\n", t.display()),
    )
    .unwrap();
    for d in [
        r.u.home.join(".config"),
        conf.clone(),
        conf.join("containers.conf"),
    ] {
        r.chown_to_user(&d);
    }
}

/// No process of the user is left but rootless podman's pause process
/// (`catatonit -P`, which podman keeps by design; the user's drop ends it)
/// once `berth system migrate` has ended berth's.
pub fn assert_no_berth_processes_left(r: &Rootless) {
    r.assert_nothing_left_but(common::rootless_engine::is_podman_pause);
}

/// The TCP (or UDP) sockets listening on `port` in the test's namespace,
/// as `ADDR:PORT` in /proc/net/{tcp,tcp6,udp,udp6} hex form.
pub fn listening(r: &Rootless, port: u16, udp: bool) -> Vec<String> {
    let files: &[&str] = if udp {
        &["udp", "udp6"]
    } else {
        &["tcp", "tcp6"]
    };
    berth_network::netns::run_in(&r.netns.path, || {
        let mut out = Vec::new();
        for f in files {
            let t =
                std::fs::read_to_string(format!("/proc/thread-self/net/{f}")).unwrap_or_default();
            for l in t.lines().skip(1) {
                let v: Vec<&str> = l.split_whitespace().collect();
                // TCP: state 0A is LISTEN; UDP: 07 is an unconnected socket.
                let want = if udp { "07" } else { "0A" };
                if v.len() > 3 && v[3] == want && v[1].ends_with(&format!(":{port:04X}")) {
                    out.push(v[1].to_string());
                }
            }
        }
        out
    })
    .unwrap()
}

pub fn run_as(r: &Rootless, tool: &str, args: &[&str]) -> Output {
    r.run_tool(tool, args)
}

/// The test user with slirp4netns, podman's short tmp dir, and busybox as
/// `localhost/bb:1` in both engines: `None` (after a SKIP line) without
/// podman or when its import fails.
pub fn rootless_with_podman() -> Option<Rootless> {
    if !have_podman() {
        return None;
    }
    let r = rootless()?;
    short_podman_tmpdir(&r);
    if !r.podman_import("localhost/bb:1") {
        return None;
    }
    r.import();
    Some(r)
}
