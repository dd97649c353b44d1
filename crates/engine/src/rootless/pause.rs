//! The rootless namespace and the pause process holding it.
//!
//! The first berth command of a user starts `berth <PAUSE_ARG> RUNDIR`: it
//! makes a user namespace and a mount namespace (`unshare`), berth maps
//! the user's uid to 0 and the subordinate range to 1..N with
//! `newuidmap`/`newgidmap`, and the pause process sleeps holding both.
//! Every berth command of the user then joins them with `setns` first
//! thing in `main` (while single-threaded), under `RUNDIR/pause.lock`,
//! so all of them see the same ids and the same storage mounts; monitors
//! and containers they start are in them too.
//!
//! The pause process ends once nothing needs it: no other process in its
//! user namespace (commands, monitors, containers) and no storage mount
//! berth made in its mount namespace. It checks every second, under the
//! same lock, so a command never joins a namespace about to end. The next
//! command makes a new one with the same mapping (files in storage keep
//! their owners).

use std::collections::HashSet;
use std::fs::File;
use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use nix::sched::CloneFlags;
use rustix::fs::FlockOperation;

use super::{ensure_private_dir, run_base, user_ranges, RootlessError, UID_ENV};

/// The argument that makes `berth` the pause process.
pub const PAUSE_ARG: &str = "__berth-rootless-pause";

fn ns_err(what: impl Into<String>) -> RootlessError {
    RootlessError::Namespace(what.into())
}

fn lock_file(base: &Path) -> Result<File, RootlessError> {
    let p = base.join("pause.lock");
    std::fs::OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(&p)
        .map_err(|source| RootlessError::Io {
            op: "open",
            path: p,
            source,
        })
}

fn read_pid(p: &Path) -> Option<i32> {
    std::fs::read_to_string(p).ok()?.trim().parse().ok()
}

/// Whether `pid` is a pause process of host uid `uid`.
fn is_pause(pid: i32, uid: u32) -> bool {
    let cmdline = std::fs::read(format!("/proc/{pid}/cmdline")).unwrap_or_default();
    if !cmdline
        .split(|b| *b == 0)
        .any(|a| a == PAUSE_ARG.as_bytes())
    {
        return false;
    }
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    status.lines().any(|l| {
        l.strip_prefix("Uid:")
            .and_then(|v| v.split_whitespace().next())
            .is_some_and(|v| v == uid.to_string())
    })
}

/// Joins the user's rootless namespace, starting its pause process first
/// when there is none. Called by an unprivileged `berth` before anything
/// else (`setns` into a user namespace needs a single-threaded process).
/// Afterwards the process is root in the namespace, in the same working
/// directory, with [`UID_ENV`] set for the commands it starts.
pub fn enter() -> Result<(), RootlessError> {
    let uid = nix::unistd::geteuid().as_raw();
    let gid = nix::unistd::getegid().as_raw();
    let base = run_base(uid);
    ensure_private_dir(&base, uid)?;
    let lock = lock_file(&base)?;
    rustix::fs::flock(&lock, FlockOperation::LockExclusive).map_err(|e| RootlessError::Io {
        op: "lock",
        path: base.join("pause.lock"),
        source: e.into(),
    })?;
    let pid_file = base.join("pause.pid");
    let pid = match read_pid(&pid_file).filter(|p| is_pause(*p, uid)) {
        Some(p) => p,
        None => {
            let p = start(uid, gid, &base)?;
            let tmp = base.join("pause.pid.tmp");
            std::fs::write(&tmp, format!("{p}\n"))
                .and_then(|_| std::fs::rename(&tmp, &pid_file))
                .map_err(|source| RootlessError::Io {
                    op: "write",
                    path: pid_file.clone(),
                    source,
                })?;
            p
        }
    };
    let cwd = std::env::current_dir().ok();
    let open = |kind: &str| {
        File::open(format!("/proc/{pid}/ns/{kind}")).map_err(|e| {
            ns_err(format!(
                "open the {kind} namespace of berth's pause process {pid}: {e}"
            ))
        })
    };
    let (user, mnt) = (open("user")?, open("mnt")?);
    nix::sched::setns(&user, CloneFlags::CLONE_NEWUSER).map_err(|e| {
        ns_err(format!(
            "join the rootless user namespace (pause process {pid}): {e}"
        ))
    })?;
    nix::sched::setns(&mnt, CloneFlags::CLONE_NEWNS).map_err(|e| {
        ns_err(format!(
            "join the rootless mount namespace (pause process {pid}): {e}"
        ))
    })?;
    drop(lock);
    if let Some(c) = cwd {
        let _ = std::env::set_current_dir(c);
    }
    std::env::set_var(UID_ENV, uid.to_string());
    Ok(())
}

fn user_name(uid: u32) -> String {
    nix::unistd::User::from_uid(nix::unistd::Uid::from_raw(uid))
        .ok()
        .flatten()
        .map(|u| u.name)
        .or_else(|| std::env::var("USER").ok())
        .unwrap_or_else(|| uid.to_string())
}

fn map_ids(tool: &str, pid: u32, id: u32, range: super::Range) -> Result<(), RootlessError> {
    let out = Command::new(tool)
        .arg(pid.to_string())
        .args(["0", &id.to_string(), "1"])
        .args(["1", &range.0.to_string(), &range.1.to_string()])
        .stdin(Stdio::null())
        .output()
        .map_err(|e| {
            ns_err(format!(
                "run {tool} (install the uidmap package: apt-get install uidmap): {e}"
            ))
        })?;
    if !out.status.success() {
        return Err(ns_err(format!(
            "{tool} {pid} 0 {id} 1 1 {} {} failed: {}",
            range.0,
            range.1,
            String::from_utf8_lossy(&out.stderr).trim()
        )));
    }
    Ok(())
}

/// Starts the pause process and maps its namespace; its pid.
fn start(uid: u32, gid: u32, base: &Path) -> Result<i32, RootlessError> {
    let user = user_name(uid);
    let (ur, gr) = user_ranges(&user, uid)?;
    let exe = std::env::current_exe().unwrap_or_else(|_| PathBuf::from("/proc/self/exe"));
    let mut child = Command::new(exe)
        .arg(PAUSE_ARG)
        .arg(base)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .current_dir("/")
        .spawn()
        .map_err(|e| ns_err(format!("start berth's pause process: {e}")))?;
    let pid = child.id();
    let res = (|| {
        let mut out = BufReader::new(child.stdout.take().expect("piped stdout"));
        let mut line = String::new();
        let mut expect = |want: &str, line: &mut String| {
            line.clear();
            let _ = out.read_line(line);
            if line.trim() == want {
                Ok(())
            } else {
                Err(ns_err(format!(
                    "berth's pause process could not make the rootless namespace: {}",
                    line.trim().trim_start_matches("E ")
                )))
            }
        };
        expect("U", &mut line)?;
        map_ids("newuidmap", pid, uid, ur)?;
        map_ids("newgidmap", pid, gid, gr)?;
        let mut input = child.stdin.take().expect("piped stdin");
        input
            .write_all(b"M\n")
            .map_err(|e| ns_err(format!("talk to berth's pause process: {e}")))?;
        expect("R", &mut line)
    })();
    if let Err(e) = res {
        let _ = child.kill();
        let _ = child.wait();
        return Err(e);
    }
    // The pause process outlives this command; nothing waits for it
    // (when the command ends first, init reaps it).
    Ok(pid as i32)
}

/// Mount ids and whether each is a storage mount berth makes (a native
/// overlay with `userxattr`, or fuse-overlayfs).
fn mounts() -> Vec<(String, bool)> {
    let text = std::fs::read_to_string("/proc/self/mountinfo").unwrap_or_default();
    text.lines()
        .filter_map(|l| {
            let id = l.split(' ').next()?.to_string();
            let (_, tail) = l.split_once(" - ")?;
            let mut f = tail.split(' ');
            let (fstype, _src, opts) = (f.next()?, f.next()?, f.next().unwrap_or(""));
            let ours = (fstype == "overlay" && opts.split(',').any(|o| o == "userxattr"))
                || fstype.starts_with("fuse.fuse-overlayfs")
                || fstype == "fuse-overlayfs";
            Some((id, ours))
        })
        .collect()
}

fn ns_link(pid: &str) -> Option<PathBuf> {
    std::fs::read_link(format!("/proc/{pid}/ns/user")).ok()
}

/// Nothing needs the namespace any more (checked under the lock, which
/// the caller keeps until it exits when this says so).
fn idle(me: &str, own: &Path, initial: &HashSet<String>) -> bool {
    if mounts()
        .iter()
        .any(|(id, ours)| *ours && !initial.contains(id))
    {
        return false;
    }
    let Ok(rd) = std::fs::read_dir("/proc") else {
        return false;
    };
    for e in rd.flatten() {
        let name = e.file_name();
        let Some(pid) = name.to_str() else { continue };
        if pid == me || !pid.bytes().all(|b| b.is_ascii_digit()) {
            continue;
        }
        if ns_link(pid).is_some_and(|l| l == own) {
            return false;
        }
    }
    true
}

/// The pause process (`berth PAUSE_ARG RUNDIR`): makes the namespaces,
/// waits for the maps, holds them until idle. Its exit code.
pub fn pause_main(base: &Path) -> i32 {
    let say = |s: &str| {
        let mut o = std::io::stdout().lock();
        let _ = o.write_all(format!("{s}\n").as_bytes());
        let _ = o.flush();
    };
    if let Err(e) = nix::sched::unshare(CloneFlags::CLONE_NEWUSER | CloneFlags::CLONE_NEWNS) {
        say(&format!("E unshare a user and mount namespace: {e} (are unprivileged user namespaces enabled? sysctl kernel.unprivileged_userns_clone=1, user.max_user_namespaces)"));
        return 1;
    }
    say("U");
    let mut line = String::new();
    let _ = std::io::stdin().lock().read_line(&mut line);
    if line.trim() != "M" {
        return 1;
    }
    // Host mounts made later still show inside; nothing berth mounts here
    // reaches the host.
    if let Err(e) = nix::mount::mount(
        None::<&str>,
        "/",
        None::<&str>,
        nix::mount::MsFlags::MS_REC | nix::mount::MsFlags::MS_SLAVE,
        None::<&str>,
    ) {
        say(&format!("E make / a slave mount: {e}"));
        return 1;
    }
    let initial: HashSet<String> = mounts().into_iter().map(|(id, _)| id).collect();
    let own = ns_link("self").unwrap_or_default();
    let me = std::process::id().to_string();
    say("R");
    let _ = nix::unistd::setsid();
    let _ = std::env::set_current_dir("/");
    loop {
        std::thread::sleep(std::time::Duration::from_secs(1));
        let Ok(lock) = lock_file(base) else { continue };
        if rustix::fs::flock(&lock, FlockOperation::NonBlockingLockExclusive).is_err() {
            continue;
        }
        if idle(&me, &own, &initial) {
            let pf = base.join("pause.pid");
            if read_pid(&pf).is_some_and(|p| p.to_string() == me) {
                let _ = std::fs::remove_file(&pf);
            }
            // The lock goes with the process.
            std::process::exit(0);
        }
    }
}
