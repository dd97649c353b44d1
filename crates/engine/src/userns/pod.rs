//! Pods with a user namespace of their own: one range for the whole pod,
//! its user namespace pinned as a file (like the pod's other namespaces,
//! so an idle pod still costs no process), and the namespaces the pod
//! shares made inside it, so its containers can use them as they would
//! their own (config-linux.md "namespaces": a container joins the pod's
//! user namespace by path first, then the others, as runc orders them).

use std::fs::File;
use std::io::{Read, Write};
use std::os::fd::AsRawFd;
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};

use berth_sys::process::{clone_fork, exit_now, Forked};
use nix::mount::{mount, MsFlags};
use nix::sched::{setns, unshare, CloneFlags};

use super::*;

fn pin_err(pod: &str, op: impl Into<String>) -> impl FnOnce(std::io::Error) -> UsernsError {
    let (pod, op) = (crate::db::short(pod).to_string(), op.into());
    move |source| UsernsError::PodNamespace { pod, op, source }
}

/// Creates the empty file a namespace is pinned on (a stale one is
/// replaced).
fn pin_file(pod: &str, pin: &Path) -> Result<()> {
    let _ = berth_network::netns::remove(pin);
    File::options()
        .write(true)
        .create_new(true)
        .open(pin)
        .map(drop)
        .map_err(pin_err(
            pod,
            format!("create the pin file {}", pin.display()),
        ))
}

fn bind(pod: &str, from: &str, pin: &Path) -> Result<()> {
    mount(
        Some(from),
        pin,
        None::<&str>,
        MsFlags::MS_BIND,
        None::<&str>,
    )
    .map_err(|e| pin_err(pod, format!("pin the namespace on {}", pin.display()))(e.into()))
}

/// Makes a user namespace with mapping `m` for pod `pod` and pins it at
/// `pin`. Nothing is left behind on failure.
pub fn pin_pod_userns(pod: &str, m: &Mapping, pin: &Path) -> Result<()> {
    let fd = m.userns_fd(pod).map_err(|e| UsernsError::Runtime {
        id: crate::db::short(pod).into(),
        message: format!("create the pod's user namespace: {e}"),
    })?;
    pin_file(pod, pin)?;
    let r = bind(pod, &format!("/proc/self/fd/{}", fd.as_raw_fd()), pin);
    if r.is_err() {
        let _ = berth_network::netns::remove(pin);
    }
    r
}

/// Makes new namespaces of the given kinds (`net`, `ipc`, `uts`) inside
/// the user namespace pinned at `userns`, so that they belong to it, and
/// pins each at its path; the UTS one gets `hostname`. A short-lived child
/// process does it (a multi-threaded process cannot enter a user
/// namespace); it makes only system calls until it exits. Nothing is left
/// behind on failure.
pub fn pin_in_userns(
    pod: &str,
    userns: &Path,
    kinds: &[(&str, PathBuf)],
    hostname: Option<&str>,
) -> Result<()> {
    if kinds.is_empty() {
        return Ok(());
    }
    let mut flags = CloneFlags::empty();
    for (k, _) in kinds {
        flags |= match *k {
            "net" => CloneFlags::CLONE_NEWNET,
            "ipc" => CloneFlags::CLONE_NEWIPC,
            "uts" => CloneFlags::CLONE_NEWUTS,
            other => {
                return Err(pin_err(pod, format!("pin a {other} namespace"))(
                    std::io::Error::other("not a namespace a pod pins"),
                ))
            }
        };
    }
    let user = File::open(userns).map_err(pin_err(
        pod,
        format!("open the pod's user namespace {}", userns.display()),
    ))?;
    let (mut ours, theirs) = UnixStream::pair().map_err(pin_err(pod, "make a socket pair"))?;
    let hostname = hostname.filter(|_| flags.contains(CloneFlags::CLONE_NEWUTS));
    let forked = clone_fork(0).map_err(pin_err(pod, "fork a namespace maker"))?;
    let pid = match forked {
        Forked::Child => {
            // Only system calls from here: the parent may have threads.
            drop(ours);
            let step = if setns(&user, CloneFlags::CLONE_NEWUSER).is_err() {
                1u8
            } else if unshare(flags).is_err() {
                2
            } else if hostname.is_some_and(|h| nix::unistd::sethostname(h).is_err()) {
                3
            } else {
                0
            };
            let errno = nix::errno::Errno::last_raw();
            let mut msg = [0u8; 5];
            msg[0] = step;
            msg[1..].copy_from_slice(&errno.to_ne_bytes());
            let _ = (&theirs).write_all(&msg);
            let mut b = [0u8; 1];
            let _ = (&theirs).read(&mut b);
            exit_now(i32::from(step))
        }
        Forked::Parent(pid) => pid,
    };
    drop(theirs);
    let r = (|| -> Result<()> {
        let mut msg = [0u8; 5];
        ours.read_exact(&mut msg)
            .map_err(pin_err(pod, "wait for the namespace maker"))?;
        if msg[0] != 0 {
            let what = match msg[0] {
                1 => "enter the pod's user namespace",
                2 => "make namespaces in the pod's user namespace",
                _ => "set the pod's hostname",
            };
            let errno = i32::from_ne_bytes([msg[1], msg[2], msg[3], msg[4]]);
            return Err(pin_err(pod, what)(std::io::Error::from_raw_os_error(errno)));
        }
        for (k, pin) in kinds {
            pin_file(pod, pin)?;
            bind(pod, &format!("/proc/{pid}/ns/{k}"), pin)?;
        }
        Ok(())
    })();
    let _ = ours.write_all(b"x");
    drop(ours);
    let _ = nix::sys::wait::waitpid(nix::unistd::Pid::from_raw(pid), None);
    if r.is_err() {
        for (_, pin) in kinds {
            let _ = berth_network::netns::remove(pin);
        }
    }
    r
}
