//! The small monitor (`berth-monitor`): what a detached container's
//! monitor becomes while the container runs.
//!
//! Launching a container needs all of berth (SQLite, the runtime, images,
//! networks), but waiting for it needs little: the container's output
//! streams, the log file, the attach socket and the pid. So once the
//! container runs, the full monitor (`berth container-monitor ID`) execs
//! the small `berth-monitor` binary, handing it those descriptors on its
//! command line; an exec keeps the pid, so the container stays our child
//! and the monitor pid recorded in the database stays true. When the
//! container exits, the small monitor drains its output and execs the full
//! monitor back (through a descriptor of its binary it was handed) with the
//! exit status, which records it, applies the restart policy or removes
//! the container. Idle, a monitor then costs the pages of a small binary,
//! not the relocated data and heap of a large one.
//!
//! The small binary is exec'd from a read-only bind of itself, as the
//! runtime binary is (CVE-2019-5736). Without it (`BERTH_MONITOR` empty,
//! or no `berth-monitor` next to `berth`) the full monitor waits itself.

use std::ffi::{CString, OsString};
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, OwnedFd, RawFd};
use std::os::unix::ffi::{OsStrExt, OsStringExt};
use std::path::{Path, PathBuf};

use crate::attach::{Hub, HubFds};
use crate::logs::LogWriter;
use crate::monitor::{pump, Streams};
use crate::Engine;

/// The environment variable naming the small monitor binary (empty: none).
pub const ENV: &str = "BERTH_MONITOR";

/// Errors of the hand-off between the full and the small monitor.
#[derive(Debug, thiserror::Error)]
pub enum HandoffError {
    #[error("berth-monitor: {0} (it is started by `berth container-monitor`, not by hand)")]
    Usage(String),
    #[error("berth-monitor: descriptor {fd} ({what}) handed over")]
    Fd {
        fd: RawFd,
        what: &'static str,
        #[source]
        source: std::io::Error,
    },
    #[error("exec the small monitor {path} to wait for container {id}")]
    ExecSmall {
        id: String,
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("container {id}: exec back into the full monitor after the exit; the next `berth ps` records it")]
    ExecBack {
        id: String,
        #[source]
        source: std::io::Error,
    },
}

/// Where the small monitor is and how to come back.
#[derive(Debug, Clone)]
pub struct Small {
    /// The `berth-monitor` binary.
    pub exe: PathBuf,
    /// The command line of the full monitor of this container (`berth
    /// --root ... container-monitor ID`), without resume flags.
    pub back: Vec<OsString>,
}

/// The small monitor to use: `$BERTH_MONITOR` if set (empty: none), else
/// `berth-monitor` next to `berth` (`exe_dir`).
pub fn find_small(env: Option<OsString>, exe_dir: Option<&Path>) -> Option<PathBuf> {
    match env {
        Some(v) if v.is_empty() => None,
        Some(v) => Some(PathBuf::from(v)),
        None => exe_dir
            .map(|d| d.join("berth-monitor"))
            .filter(|p| p.is_file()),
    }
}

fn cstr(s: impl Into<OsString>) -> CString {
    CString::new(s.into().into_vec()).unwrap_or_default()
}

fn env() -> Vec<CString> {
    std::env::vars_os()
        .map(|(k, v)| {
            let mut kv = k.into_vec();
            kv.push(b'=');
            kv.extend_from_slice(v.as_bytes());
            CString::new(kv).unwrap_or_default()
        })
        .collect()
}

/// Lets `fds` survive the exec; on failure puts close-on-exec back, so
/// nothing leaks into a container launched later by this process.
fn exec_with(exe: BorrowedFd<'_>, args: &[CString], fds: &[BorrowedFd<'_>]) -> std::io::Error {
    let mut cleared = Vec::new();
    for fd in fds {
        if let Err(e) = berth_sys::process::clear_cloexec(fd.as_raw_fd()) {
            restore_cloexec(&cleared);
            return e;
        }
        cleared.push(*fd);
    }
    let err = match nix::unistd::fexecve(exe, args, &env()) {
        Err(errno) => errno.into(),
        Ok(never) => match never {},
    };
    restore_cloexec(&cleared);
    err
}

fn restore_cloexec(fds: &[BorrowedFd<'_>]) {
    for fd in fds {
        let _ = rustix::io::fcntl_setfd(fd, rustix::io::FdFlags::CLOEXEC);
    }
}

/// Execs the small monitor for container `id` (process `pid`), handing it
/// the container's streams, the attach socket and its clients, and a
/// descriptor of our binary to come back. Returns only on failure; the
/// caller then waits in this process.
#[allow(clippy::too_many_arguments)]
pub fn exec_small(
    engine: &Engine,
    small: &Small,
    id: &str,
    pid: i32,
    streams: &Streams<'_>,
    hub: &Hub,
    restarts: u32,
    health_interval: Option<std::time::Duration>,
    limits: crate::logs::LogLimits,
    cri_log: Option<&Path>,
) -> HandoffError {
    let fail = |source: std::io::Error| HandoffError::ExecSmall {
        id: id.into(),
        path: small.exe.clone(),
        source,
    };
    let file = match std::fs::File::open(&small.exe) {
        Ok(f) => f,
        Err(e) => return fail(e),
    };
    let target = match berth_runtime::selfexe::protected_exe(&file) {
        Ok(t) => t,
        Err(e) => return fail(std::io::Error::other(e)),
    };
    drop(file);
    let back = match rustix::fs::open(
        "/proc/self/exe",
        rustix::fs::OFlags::PATH | rustix::fs::OFlags::CLOEXEC,
        rustix::fs::Mode::empty(),
    ) {
        Ok(fd) => fd,
        Err(e) => return fail(e.into()),
    };
    let mut fds: Vec<BorrowedFd<'_>> = vec![back.as_fd()];
    let mut args: Vec<CString> = vec![cstr(small.exe.as_os_str())];
    let mut arg = |flag: &str, value: String| {
        args.push(cstr(flag));
        args.push(cstr(value));
    };
    arg("--id", id.to_string());
    arg("--pid", pid.to_string());
    arg("--restarts", restarts.to_string());
    arg("--log", engine.log_path(id).display().to_string());
    arg("--exe-fd", back.as_raw_fd().to_string());
    if limits.off {
        arg("--log-off", "1".into());
    }
    if limits.max_size > 0 {
        arg("--log-max-size", limits.max_size.to_string());
        arg("--log-max-file", limits.max_file.to_string());
    }
    if let Some(p) = cri_log {
        arg("--cri-log", p.display().to_string());
    }
    if let Some(i) = health_interval {
        arg("--health-interval-ms", i.as_millis().max(1).to_string());
    }
    if streams.stdin_once {
        arg("--stdin-once", "1".into());
    }
    let raw = |fd: Option<BorrowedFd<'_>>| fd.map(|f| f.as_raw_fd());
    for (fd, stream) in &streams.sources {
        // A pty master is both the output and the input.
        let flag = if raw(streams.input) == Some(fd.as_raw_fd()) {
            "console".to_string()
        } else {
            stream.to_string()
        };
        arg(&format!("--{flag}"), fd.as_raw_fd().to_string());
        fds.push(*fd);
    }
    if let Some(fd) = streams.input {
        if !fds.iter().any(|f| f.as_raw_fd() == fd.as_raw_fd()) {
            arg("--input", fd.as_raw_fd().to_string());
            fds.push(fd);
        }
    }
    hub_args(hub, &mut args, &mut fds);
    args.push(cstr("--"));
    args.extend(small.back.iter().map(|a| cstr(a.clone())));
    fail(exec_with(target.as_fd(), &args, &fds))
}

/// Hands the hub's sockets over: `--listener`, `--client`,
/// `--ctl-listener` and `--ctl-client` (the same flags both ways).
fn hub_args<'a>(hub: &'a Hub, args: &mut Vec<CString>, fds: &mut Vec<BorrowedFd<'a>>) {
    let one = |flag: &str, fd: BorrowedFd<'a>, args: &mut Vec<CString>, fds: &mut Vec<_>| {
        args.push(cstr(flag));
        args.push(cstr(fd.as_raw_fd().to_string()));
        fds.push(fd);
    };
    if let Some(fd) = hub.listener_fd() {
        one("--listener", fd, args, fds);
    }
    for fd in hub.client_fds() {
        one("--client", fd, args, fds);
    }
    if let Some(fd) = hub.ctl_listener_fd() {
        one("--ctl-listener", fd, args, fds);
    }
    for fd in hub.ctl_client_fds() {
        one("--ctl-client", fd, args, fds);
    }
}

/// What the small monitor was handed.
struct Handed {
    id: String,
    pid: i32,
    restarts: u32,
    log: PathBuf,
    exe: OwnedFd,
    sources: Vec<(OwnedFd, &'static str)>,
    input: Option<OwnedFd>,
    /// The only source is a pty master, which takes the input too.
    console: bool,
    /// Close the input once an attach client leaves (Docker's StdinOnce).
    stdin_once: bool,
    hub: HubFds,
    back: Vec<OsString>,
    /// Milliseconds between healthchecks (a container with a check).
    health_interval_ms: Option<u64>,
    limits: crate::logs::LogLimits,
    /// `--log-opt path=`: the CRI log (see [`LogWriter::with_cri_path`]).
    cri_log: Option<PathBuf>,
}

fn parse(args: Vec<OsString>) -> Result<Handed, HandoffError> {
    let usage = |m: String| HandoffError::Usage(m);
    let mut it = args.into_iter().skip(1);
    let mut seen: Vec<RawFd> = Vec::new();
    let mut take_fd =
        |v: &str, what: &'static str| -> Result<OwnedFd, HandoffError> {
            let fd: RawFd = v
                .parse()
                .map_err(|_| usage(format!("{what}: {v:?} is not a descriptor number")))?;
            if seen.contains(&fd) {
                return Err(usage(format!("descriptor {fd} handed over twice")));
            }
            seen.push(fd);
            let owned = berth_sys::fd::owned_from_inherited(fd)
                .map_err(|source| HandoffError::Fd { fd, what, source })?;
            // Ours alone: nothing passes them on unless asked to.
            rustix::io::fcntl_setfd(&owned, rustix::io::FdFlags::CLOEXEC).map_err(|e| {
                HandoffError::Fd {
                    fd,
                    what,
                    source: e.into(),
                }
            })?;
            Ok(owned)
        };
    let (mut id, mut pid, mut restarts, mut log, mut exe) = (None, None, 0u32, None, None);
    let (mut sources, mut input, mut hub) = (Vec::new(), None, HubFds::default());
    let mut console = false;
    let mut stdin_once = false;
    let mut health_interval_ms = None;
    let mut limits = crate::logs::LogLimits::default();
    let mut cri_log = None;
    loop {
        let Some(flag) = it.next() else {
            return Err(usage(
                "no `--` before the full monitor's command line".into(),
            ));
        };
        if flag == "--" {
            break;
        }
        let flag = flag.to_string_lossy().into_owned();
        let value = it
            .next()
            .ok_or_else(|| usage(format!("{flag} needs a value")))?;
        let v = value.to_string_lossy().into_owned();
        match flag.as_str() {
            "--id" => id = Some(v),
            "--pid" => {
                pid = Some(v.parse().map_err(|_| usage(format!("--pid {v:?}")))?);
            }
            "--restarts" => {
                restarts = v.parse().map_err(|_| usage(format!("--restarts {v:?}")))?;
            }
            "--log" => log = Some(PathBuf::from(value)),
            "--cri-log" => cri_log = Some(PathBuf::from(value)),
            "--log-off" => limits.off = v == "1",
            "--stdin-once" => stdin_once = v == "1",
            "--log-max-size" => {
                limits.max_size = v
                    .parse()
                    .map_err(|_| usage(format!("--log-max-size {v:?}")))?;
            }
            "--log-max-file" => {
                limits.max_file = v
                    .parse()
                    .map_err(|_| usage(format!("--log-max-file {v:?}")))?;
            }
            "--health-interval-ms" => {
                health_interval_ms = Some(
                    v.parse()
                        .map_err(|_| usage(format!("--health-interval-ms {v:?}")))?,
                );
            }
            "--exe-fd" => exe = Some(take_fd(&v, "the full monitor's binary")?),
            "--stdout" => sources.push((take_fd(&v, "stdout")?, "stdout")),
            "--console" => {
                sources.push((take_fd(&v, "pty master")?, "stdout"));
                console = true;
            }
            "--stderr" => sources.push((take_fd(&v, "stderr")?, "stderr")),
            "--input" => input = Some(take_fd(&v, "stdin")?),
            "--listener" => hub.listener = Some(take_fd(&v, "attach socket")?),
            "--client" => hub.clients.push(take_fd(&v, "attach client")?),
            "--ctl-listener" => hub.ctl_listener = Some(take_fd(&v, "control socket")?),
            "--ctl-client" => hub.ctl_clients.push(take_fd(&v, "control client")?),
            other => return Err(usage(format!("unknown option {other}"))),
        }
    }
    if console && (input.is_some() || sources.len() != 1) {
        return Err(usage(
            "--console goes alone, without --stdout, --stderr or --input".into(),
        ));
    }
    let back: Vec<OsString> = it.collect();
    let missing = |what: &str| usage(format!("{what} is missing"));
    if back.is_empty() {
        return Err(missing("the full monitor's command line"));
    }
    Ok(Handed {
        id: id.ok_or_else(|| missing("--id"))?,
        pid: pid.ok_or_else(|| missing("--pid"))?,
        restarts,
        log: log.ok_or_else(|| missing("--log"))?,
        exe: exe.ok_or_else(|| missing("--exe-fd"))?,
        sources,
        input,
        console,
        stdin_once,
        hub,
        back,
        health_interval_ms,
        limits,
        cri_log,
    })
}

/// `berth-monitor`'s main: waits for the container, then execs the full
/// monitor back with its exit status. Returns (an exit status) only on
/// failure.
pub fn small_main() -> i32 {
    let args: Vec<OsString> = std::env::args_os().collect();
    // The same small binary is a pod's PID 1 (see `pods::holder_main`).
    if args.get(1).is_some_and(|a| a == crate::pods::HOLDER_ARG) {
        return crate::pods::holder_main(&args);
    }
    match small(args) {
        Ok(never) => match never {},
        Err(e) => {
            eprintln!("{}", crate::error::error_chain(&e));
            1
        }
    }
}

fn small(args: Vec<OsString>) -> Result<std::convert::Infallible, HandoffError> {
    let h = parse(args)?;
    let id = h.id.as_str();
    let to_io = |e: crate::EngineError| std::io::Error::other(e.to_string());
    let mut log = LogWriter::open_with(&h.log, h.limits)
        .map_err(|e| HandoffError::ExecBack {
            id: id.into(),
            source: to_io(e),
        })?
        .with_cri_path(h.cri_log.clone());
    let mut hub = Hub::from_fds(h.hub, None);
    let streams = Streams {
        sources: h.sources.iter().map(|(fd, s)| (fd.as_fd(), *s)).collect(),
        input: match (&h.input, h.console) {
            (Some(fd), _) => Some(fd.as_fd()),
            (None, true) => h.sources.first().map(|(fd, _)| fd.as_fd()),
            (None, false) => None,
        },
        console: if h.console {
            h.sources.first().map(|(fd, _)| fd.as_fd())
        } else {
            None
        },
        stdin_once: h.stdin_once,
    };
    // The check runs the full binary (the descriptor we come back by).
    let mut schedule = h.health_interval_ms.and_then(|ms| {
        let prog = OsString::from(format!("/proc/self/fd/{}", h.exe.as_raw_fd()));
        crate::health::command_from_monitor(prog, &h.back)
            .map(|cmd| crate::health::Schedule::new(cmd, std::time::Duration::from_millis(ms)))
    });
    let code = pump(id, h.pid, &streams, &mut log, &mut hub, schedule.as_mut()).map_err(|e| {
        HandoffError::ExecBack {
            id: id.into(),
            source: to_io(e),
        }
    })?;
    drop(streams);
    drop(log);
    let mut args: Vec<CString> = h.back.iter().map(|a| cstr(a.clone())).collect();
    let mut arg = |flag: &str, value: String| {
        args.push(cstr(flag));
        args.push(cstr(value));
    };
    arg("--exited", code.to_string());
    arg("--restarts", h.restarts.to_string());
    let mut fds = Vec::new();
    hub_args(&hub, &mut args, &mut fds);
    Err(HandoffError::ExecBack {
        id: id.into(),
        source: exec_with(h.exe.as_fd(), &args, &fds),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn small_monitor_is_found_next_to_berth_unless_the_environment_says() {
        let dir = tempfile::tempdir().expect("tempdir");
        assert_eq!(find_small(None, Some(dir.path())), None);
        std::fs::write(dir.path().join("berth-monitor"), b"").expect("write");
        assert_eq!(
            find_small(None, Some(dir.path())),
            Some(dir.path().join("berth-monitor"))
        );
        assert_eq!(find_small(Some("".into()), Some(dir.path())), None);
        assert_eq!(
            find_small(Some("/x/m".into()), Some(dir.path())),
            Some(PathBuf::from("/x/m"))
        );
        assert_eq!(find_small(None, None), None);
    }

    #[test]
    fn handed_over_command_lines_are_checked() {
        let args = |v: &[&str]| v.iter().map(OsString::from).collect::<Vec<_>>();
        let err = |v: &[&str]| match parse(args(v)) {
            Err(e) => match std::error::Error::source(&e) {
                Some(cause) => format!("{e}: {cause}"),
                None => e.to_string(),
            },
            Ok(_) => panic!("accepted {v:?}"),
        };
        assert!(err(&["m", "--id", "c"]).contains("no `--`"));
        assert!(err(&["m", "--bogus", "1", "--", "berth"]).contains("unknown option --bogus"));
        assert!(err(&["m", "--pid"]).contains("--pid needs a value"));
        assert!(err(&["m", "--stdout", "x", "--", "b"]).contains("not a descriptor number"));
        assert!(err(&["m", "--stdout", "1", "--", "b"]).contains("standard stream"));
        assert!(err(&["m", "--id", "c", "--pid", "1", "--"]).contains("command line is missing"));
        assert!(err(&["m", "--id", "c", "--", "b"]).contains("--pid is missing"));
        // An fd number that is not open is refused (never owned).
        assert!(err(&["m", "--stdout", "999999", "--", "b"]).contains("descriptor 999999"));
        assert!(err(&["m", "--console", "x", "--", "b"]).contains("not a descriptor number"));
    }
}
