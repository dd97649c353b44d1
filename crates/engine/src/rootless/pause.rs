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
//! As podman's pause process, it stays: the user's next command joins at
//! once instead of making (and mapping) a new namespace. It ends at
//! `berth system migrate` ([`end`]), or when its `RUNDIR/pause.pid` is
//! removed or replaced (logind removes the user's `XDG_RUNTIME_DIR` when
//! the user's last session ends). The next command then makes a new one
//! with the same mapping (files in storage keep their owners).

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

/// `pause.lock` under `base`, opened and held exclusively (released when
/// the file is dropped).
fn lock_file(base: &Path) -> Result<File, RootlessError> {
    let p = base.join("pause.lock");
    let lock = std::fs::OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(&p)
        .map_err(|source| RootlessError::Io {
            op: "open",
            path: p.clone(),
            source,
        })?;
    rustix::fs::flock(&lock, FlockOperation::LockExclusive).map_err(|e| RootlessError::Io {
        op: "lock",
        path: p,
        source: e.into(),
    })?;
    Ok(lock)
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
    join(true).map(|_| ())
}

/// [`enter`] only when the user's pause process is there: whether it was
/// (`false`: nothing joined, no namespace made).
pub fn enter_existing() -> Result<bool, RootlessError> {
    join(false)
}

fn join(create: bool) -> Result<bool, RootlessError> {
    let uid = nix::unistd::geteuid().as_raw();
    let gid = nix::unistd::getegid().as_raw();
    let base = run_base(uid);
    ensure_private_dir(&base, uid)?;
    let lock = lock_file(&base)?;
    let pid_file = base.join("pause.pid");
    let pid = match read_pid(&pid_file).filter(|p| is_pause(*p, uid)) {
        Some(p) => p,
        None if !create => return Ok(false),
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
    Ok(true)
}

/// Ends the user's pause process (`berth system migrate`, as podman's
/// `stopPauseProcess`): under the lock, its pid file removed, SIGKILL. The
/// next command makes a new namespace (with the subordinate ranges
/// /etc/subuid and /etc/subgid give then). Its pid, `None` when there was
/// none. Works inside and outside the namespace (the lock and pid file are
/// the user's files; the pause process is the user's).
pub fn end(uid: u32) -> Result<Option<i32>, RootlessError> {
    let base = run_base(uid);
    let _lock = lock_file(&base)?;
    let pid_file = base.join("pause.pid");
    let Some(pid) = read_pid(&pid_file).filter(|p| is_pause(*p, uid)) else {
        let _ = std::fs::remove_file(&pid_file);
        return Ok(None);
    };
    match std::fs::remove_file(&pid_file) {
        Ok(()) => {}
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
        Err(source) => {
            return Err(RootlessError::Io {
                op: "remove",
                path: pid_file,
                source,
            })
        }
    }
    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(pid),
        nix::sys::signal::Signal::SIGKILL,
    )
    .map_err(|e| ns_err(format!("end berth's pause process {pid}: {e}")))?;
    Ok(Some(pid))
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

/// The pause process (`berth PAUSE_ARG RUNDIR`): makes the namespaces,
/// waits for the maps, holds them until its pid file goes. Its exit code.
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
    // Watched before saying ready: the pid file is written after that.
    let watch = watch_dir(base);
    say("R");
    let _ = nix::unistd::setsid();
    let _ = std::env::set_current_dir("/");
    let me = std::process::id() as i32;
    // The starting command writes the pid file once it has read "R".
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
    while read_pid(&base.join("pause.pid")) != Some(me) {
        if std::time::Instant::now() > deadline {
            return 1;
        }
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    hold(base, me, watch);
    0
}

/// Watches `base` for its entries going (removed, renamed over) and for
/// itself going.
fn watch_dir(base: &Path) -> Option<nix::sys::inotify::Inotify> {
    use nix::sys::inotify::{AddWatchFlags as W, InitFlags, Inotify};
    let ino = Inotify::init(InitFlags::IN_CLOEXEC).ok()?;
    ino.add_watch(
        base,
        W::IN_DELETE | W::IN_MOVED_TO | W::IN_MOVED_FROM | W::IN_DELETE_SELF | W::IN_MOVE_SELF,
    )
    .ok()?;
    Some(ino)
}

/// Sleeps while `base/pause.pid` names this process; returns once it no
/// longer does (removed by `system migrate` or with the run dir, or
/// replaced). Without inotify, it looks once a minute.
fn hold(base: &Path, me: i32, watch: Option<nix::sys::inotify::Inotify>) {
    let pid_file = base.join("pause.pid");
    loop {
        match &watch {
            Some(ino) => {
                // Blocks until something in the dir is removed or renamed.
                if ino.read_events().is_err() {
                    std::thread::sleep(std::time::Duration::from_secs(60));
                }
            }
            None => std::thread::sleep(std::time::Duration::from_secs(60)),
        }
        if read_pid(&pid_file) != Some(me) {
            return;
        }
    }
}
