//! A pod's shared PID namespace (`--share pid`; a CRI sandbox whose PID
//! mode is POD), held by a tiny process as podman's infra container
//! (catatonit) and containerd's pause container hold it: a namespace file
//! cannot be pinned before the namespace has a PID 1 (the kernel offers
//! `pid_for_children` only then), and the namespace dies with its PID 1.
//!
//! The holder is the small `berth-monitor` binary run as
//! `berth-monitor pod-pid-holder POD`: it enters the pod's user
//! namespace (when the pod has one, so that the PID namespace is owned by
//! it and its containers can mount their /proc), forks into a new PID
//! namespace, prints its child's pid and exits. The child is the pod's
//! PID 1: in its own session, with /dev/null for stdio, it reaps the
//! orphans of the pod's containers (a PID namespace's init inherits
//! them) and exits at SIGTERM or SIGINT; every other signal is ignored.
//! It is no child of the engine or of `berth cri`, so it outlives them as
//! the containers' monitors do.
//!
//! It is recorded as `<runroot>/pods/<id>/pid-holder` ("PID START_TIME"),
//! started at `pod create`, `pod start` and each start of one of the
//! pod's containers when none runs (a reboot or `pod stop` ended it), and
//! ended at `pod stop`, `pod rm` and the CRI's StopPodSandbox. Its exit
//! makes the kernel kill whatever still runs in the namespace.

use std::ffi::OsString;
use std::os::fd::AsRawFd;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use nix::sys::signal::{kill, SigSet, Signal};
use nix::sys::wait::{waitpid, WaitPidFlag, WaitStatus};
use nix::unistd::Pid;

use super::ns::run_dir;
use super::{PodError, PodRow};
use crate::db::short;
use crate::{Engine, Result};

/// `berth-monitor`'s first argument that makes it a pod's PID 1.
pub const HOLDER_ARG: &str = "pod-pid-holder";

/// The pinned user namespace the holder enters first, if any.
const USERNS_ENV: &str = "BERTH_POD_USERNS";

fn record_path(engine: &Engine, id: &str) -> PathBuf {
    run_dir(engine, id).join("pid-holder")
}

fn holder_err(pod: &str, op: &'static str, path: &Path, source: std::io::Error) -> PodError {
    PodError::Pin {
        pod: short(pod).to_string(),
        op,
        path: path.to_path_buf(),
        source,
    }
}

/// The pid (in this PID namespace) of pod `id`'s running holder, if any.
pub fn holder(engine: &Engine, id: &str) -> Option<i32> {
    let text = std::fs::read_to_string(record_path(engine, id)).ok()?;
    let (pid, start) = text.trim().split_once(' ')?;
    let (pid, start) = (pid.parse().ok()?, start.parse().ok()?);
    berth_runtime::state::init_alive(pid, start).then_some(pid)
}

/// The `berth-monitor` binary: `$BERTH_MONITOR` when set and not empty,
/// else the one next to this program (the holder needs one even where
/// an empty `$BERTH_MONITOR` turns the small monitor off).
fn holder_exe() -> Option<PathBuf> {
    let env = std::env::var_os(crate::handoff::ENV).filter(|v| !v.is_empty());
    let exe = std::env::current_exe().ok();
    crate::handoff::find_small(env, exe.as_deref().and_then(Path::parent))
}

/// The pid of pod `p`'s PID 1, started first when none runs; None when
/// the pod does not share its PID namespace.
pub fn ensure_holder(engine: &Engine, p: &PodRow) -> Result<Option<i32>> {
    if !p.shares("pid") {
        return Ok(None);
    }
    let dir = run_dir(engine, &p.id);
    std::fs::create_dir_all(&dir).map_err(|e| holder_err(&p.id, "create", &dir, e))?;
    // One holder per pod, even when two of its containers start at once.
    let lock_path = dir.join("pid-holder.lock");
    let lock = std::fs::File::create(&lock_path)
        .map_err(|e| holder_err(&p.id, "open the lock", &lock_path, e))?;
    rustix::fs::flock(&lock, rustix::fs::FlockOperation::LockExclusive)
        .map_err(|e| holder_err(&p.id, "lock", &lock_path, e.into()))?;
    if let Some(pid) = holder(engine, &p.id) {
        return Ok(Some(pid));
    }
    let not_found = || {
        holder_err(
            &p.id,
            "start the PID namespace holder: no berth-monitor binary next to berth or in \
             $BERTH_MONITOR for",
            &dir,
            std::io::Error::from(std::io::ErrorKind::NotFound),
        )
    };
    let exe = holder_exe().ok_or_else(not_found)?;
    let start_err =
        |e: std::io::Error| holder_err(&p.id, "start the PID namespace holder", &exe, e);
    // Run from a read-only view of the binary, as the monitors are: the
    // pod's containers see it as their PID 1 (CVE-2019-5736).
    let file = std::fs::File::open(&exe).map_err(start_err)?;
    let view = berth_runtime::selfexe::protected_exe(&file)
        .map_err(|e| start_err(std::io::Error::other(e)))?;
    drop(file);
    let mut cmd = Command::new(format!("/proc/self/fd/{}", view.as_raw_fd()));
    cmd.arg0("berth-monitor")
        .arg(HOLDER_ARG)
        .arg(&p.id)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    // By the environment: the containers read their PID 1's command
    // line (`ps`), not its environment (it is not dumpable).
    match super::userns_pin(engine, p) {
        Some(user) => cmd.env(USERNS_ENV, user),
        None => cmd.env_remove(USERNS_ENV),
    };
    let out = cmd.output().map_err(start_err)?;
    drop(view);
    let text = String::from_utf8_lossy(&out.stdout);
    let pid: i32 = match (out.status.success(), text.trim().parse()) {
        (true, Ok(pid)) => pid,
        _ => {
            return Err(start_err(std::io::Error::other(format!(
                "it failed ({}): {}",
                out.status,
                String::from_utf8_lossy(&out.stderr).trim()
            )))
            .into())
        }
    };
    let start = berth_runtime::state::process_start_time(pid).unwrap_or(0);
    let rec = record_path(engine, &p.id);
    let tmp = dir.join("pid-holder.tmp");
    let written =
        std::fs::write(&tmp, format!("{pid} {start}\n")).and_then(|()| std::fs::rename(&tmp, &rec));
    if let Err(e) = written {
        let _ = kill(Pid::from_raw(pid), Signal::SIGKILL);
        return Err(holder_err(&p.id, "record the PID namespace holder in", &rec, e).into());
    }
    Ok(Some(pid))
}

/// Ends pod `id`'s holder (SIGTERM, SIGKILL after 2 s): the kernel then
/// kills whatever still runs in the pod's PID namespace. Idempotent.
pub fn stop_holder(engine: &Engine, id: &str) {
    if let Some(pid) = holder(engine, id) {
        let _ = kill(Pid::from_raw(pid), Signal::SIGTERM);
        let end = Instant::now() + Duration::from_secs(2);
        while holder(engine, id).is_some() {
            if Instant::now() > end {
                let _ = kill(Pid::from_raw(pid), Signal::SIGKILL);
                break;
            }
            std::thread::sleep(Duration::from_millis(5));
        }
    }
    let _ = std::fs::remove_file(record_path(engine, id));
}

/// Sends `sig` to pod `id`'s holder, as podman's `pod kill` signals its
/// infra container (catatonit) before the pod's other containers. The
/// holder ends at SIGTERM, SIGINT and SIGKILL (the kernel then kills
/// whatever runs in the pod's PID namespace: the containers exit with
/// 137, as under podman) and ignores the rest. Returns whether it ended;
/// a signal that ends it is waited for (up to 2 s), so that the pod's
/// containers are gone when this returns true.
pub fn kill_holder(engine: &Engine, id: &str, sig: Signal) -> bool {
    let Some(pid) = holder(engine, id) else {
        return false;
    };
    if kill(Pid::from_raw(pid), sig).is_err()
        || !matches!(sig, Signal::SIGTERM | Signal::SIGINT | Signal::SIGKILL)
    {
        return false;
    }
    let end = Instant::now() + Duration::from_secs(2);
    while holder(engine, id).is_some() {
        if Instant::now() > end {
            return false;
        }
        std::thread::sleep(Duration::from_millis(5));
    }
    true
}

/// `berth-monitor pod-pid-holder POD` (`$BERTH_POD_USERNS`: the pod's
/// pinned user namespace, if any): see the module's doc.
/// Returns (an exit status) in the first process only.
pub fn holder_main(args: &[OsString]) -> i32 {
    let pod = args.get(2).map(|a| a.to_string_lossy().into_owned());
    let Some(pod) = pod else {
        eprintln!(
            "berth-monitor: {HOLDER_ARG} needs a pod ID (it is started by berth, not by hand)"
        );
        return 2;
    };
    if let Some(user) = std::env::var_os(USERNS_ENV).filter(|u| !u.is_empty()) {
        // The PID namespace is then owned by the pod's user namespace.
        let entered = std::fs::File::open(&user).and_then(|f| {
            nix::sched::setns(&f, nix::sched::CloneFlags::CLONE_NEWUSER).map_err(Into::into)
        });
        if let Err(e) = entered {
            eprintln!(
                "berth-monitor: pod {}: enter the pod's user namespace {}: {e}",
                short(&pod),
                Path::new(&user).display()
            );
            return 1;
        }
    }
    // Blocked before the fork: none is lost between it and the wait.
    let all = SigSet::all();
    if let Err(e) = all.thread_block() {
        eprintln!("berth-monitor: pod {}: block signals: {e}", short(&pod));
        return 1;
    }
    match berth_sys::process::clone_fork(libc::CLONE_NEWPID) {
        Err(e) => {
            eprintln!(
                "berth-monitor: pod {}: make the pod's PID namespace: {e}",
                short(&pod)
            );
            1
        }
        Ok(berth_sys::process::Forked::Parent(pid)) => {
            println!("{pid}");
            0
        }
        Ok(berth_sys::process::Forked::Child) => hold(&all),
    }
}

/// The pod's PID 1: reaps orphans until SIGTERM or SIGINT.
fn hold(all: &SigSet) -> ! {
    // Exec'd as /proc/self/fd/N, its name would be "N" in `ps`.
    let _ = nix::sys::prctl::set_name(c"berth-monitor");
    // The pod's containers see it: not dumpable, so none of them reaches
    // its root, cwd or descriptors through /proc/1 (ptrace access mode)
    // without CAP_SYS_PTRACE, whatever their capabilities.
    let _ = nix::sys::prctl::set_dumpable(false);
    let _ = nix::unistd::setsid();
    let _ = std::env::set_current_dir("/");
    // Let go of the starter's pipes (it reads our parent's output to EOF).
    if let Ok(null) = std::fs::File::options()
        .read(true)
        .write(true)
        .open("/dev/null")
    {
        let _ = rustix::stdio::dup2_stdin(&null);
        let _ = rustix::stdio::dup2_stdout(&null);
        let _ = rustix::stdio::dup2_stderr(&null);
    }
    loop {
        match all.wait() {
            Ok(Signal::SIGTERM) | Ok(Signal::SIGINT) => berth_sys::process::exit_now(0),
            Ok(Signal::SIGCHLD) => reap_all(),
            _ => {}
        }
    }
}

fn reap_all() {
    loop {
        match waitpid(None, Some(WaitPidFlag::WNOHANG)) {
            Ok(WaitStatus::StillAlive) | Err(_) => return,
            Ok(_) => {}
        }
    }
}
