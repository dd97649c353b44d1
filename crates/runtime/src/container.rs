//! The container lifecycle seen from the runtime process (runtime.md
//! "Operations": create, start, state, kill, delete; runc's list).

use crate::config::{self, ContainerConfig, NsKind};
use crate::error::{sys, Error, Result};
use crate::hooks;
use crate::init::{self, ChildArgs};
use crate::seccomp_agent;
use crate::state::{self, OciState, Record, StateDir, StateRoot, Status};
use crate::sync::{Channel, Msg, SyncError};
use berth_cgroups::Cgroup;
use berth_sys::process::{clone_fork, Forked};
use std::os::fd::{AsFd, OwnedFd};
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

/// Options of `create` (and of `run`).
#[derive(Debug, Clone, Default)]
pub struct CreateOptions {
    pub id: String,
    pub bundle: PathBuf,
    pub pid_file: Option<PathBuf>,
    pub console_socket: Option<PathBuf>,
    pub no_pivot: bool,
    pub no_new_keyring: bool,
    pub preserve_fds: u32,
    /// `run` in the foreground with a terminal and no console socket: the
    /// runtime keeps the pty master itself.
    pub internal_console: bool,
    /// Created to be started at once by the same caller (`run`, the
    /// engine): no exec fifo; [`start_spawned`] releases the process over
    /// the setup channel (one file less to create and remove per container,
    /// and a creator that dies before starting takes the process with it).
    pub start_now: bool,
}

/// A container (or exec'd process) that has been set up.
#[derive(Debug)]
pub struct Spawned {
    /// Host pid of the process.
    pub pid: i32,
    /// The pty master, when the runtime kept it (`internal_console`).
    pub console: Option<OwnedFd>,
    /// `start_now`: the setup channel the process waits on for its start.
    pub release: Option<Channel>,
}

/// State JSON of a container for hooks and the seccomp listener.
pub fn oci_state(cfg: &ContainerConfig, id: &str, status: &str, pid: i32) -> Vec<u8> {
    let st = serde_json::json!({
        "ociVersion": cfg.oci_version,
        "id": id,
        "status": status,
        "pid": pid,
        "bundle": cfg.bundle,
        "annotations": cfg.annotations,
    });
    serde_json::to_vec(&st).expect("state always serializes")
}

/// The same state JSON with another status.
pub fn with_status(state_json: &str, status: &str) -> Vec<u8> {
    match serde_json::from_str::<serde_json::Value>(state_json) {
        Ok(mut v) => {
            v["status"] = serde_json::Value::String(status.into());
            serde_json::to_vec(&v).expect("state always serializes")
        }
        Err(_) => state_json.as_bytes().to_vec(),
    }
}

pub(crate) fn record_state(r: &Record, status: Status) -> Vec<u8> {
    serde_json::to_vec(&OciState {
        oci_version: r.oci_version.clone(),
        id: r.id.clone(),
        status,
        pid: (r.pid > 0).then_some(r.pid),
        bundle: r.bundle.clone(),
        annotations: r.annotations.clone(),
    })
    .expect("state always serializes")
}

/// Undoes a half-made container when create fails: kills what was
/// started, removes the cgroup and the state directory.
struct CreateGuard {
    id: String,
    dir: Option<StateDir>,
    pids: Vec<i32>,
    cgroup: Option<Cgroup>,
}

impl Drop for CreateGuard {
    fn drop(&mut self) {
        for &pid in &self.pids {
            let _ =
                nix::sys::signal::kill(nix::unistd::Pid::from_raw(pid), nix::sys::signal::SIGKILL);
            let _ = nix::sys::wait::waitpid(nix::unistd::Pid::from_raw(pid), None);
        }
        if let Some(cg) = self.cgroup.take() {
            if let Err(e) = cg.destroy() {
                tracing::warn!("container {:?}: cleanup of cgroup failed: {e}", self.id);
            }
        }
        if let Some(d) = self.dir.take() {
            if let Err(e) = d.remove() {
                tracing::warn!("container {:?}: cleanup of state failed: {e}", self.id);
            }
        }
    }
}

impl CreateGuard {
    fn disarm(mut self) {
        self.pids.clear();
        self.cgroup = None;
        self.dir = None;
    }
}

/// How the child reaches its namespaces.
struct NsPlan {
    clone_flags: libc::c_int,
    unshare_flags: libc::c_int,
    fork_for_pid: bool,
    ask_maps: bool,
    intermediate: bool,
}

fn ns_plan(ns: &config::Namespaces) -> NsPlan {
    let deferred = libc::CLONE_NEWCGROUP | libc::CLONE_NEWTIME;
    let joins_user_or_pid = ns
        .join
        .iter()
        .any(|(k, _)| matches!(k, NsKind::User | NsKind::Pid));
    // Joining anything while creating a user namespace must happen before
    // the new user namespace exists (we would lack the rights after).
    let intermediate = joins_user_or_pid || (!ns.join.is_empty() && ns.creates(NsKind::User));
    if intermediate {
        NsPlan {
            clone_flags: 0,
            unshare_flags: ns.new_flags() & !deferred,
            fork_for_pid: ns.has(NsKind::Pid),
            ask_maps: ns.creates(NsKind::User),
            intermediate,
        }
    } else {
        NsPlan {
            clone_flags: ns.new_flags() & !deferred,
            unshare_flags: 0,
            fork_for_pid: false,
            ask_maps: false,
            intermediate,
        }
    }
}

fn open_ns(id: &str, kind: NsKind, path: &Path) -> Result<OwnedFd> {
    std::fs::File::open(path).map(OwnedFd::from).map_err(sys(
        id,
        format!("open {} namespace {}", kind.proc_name(), path.display()),
    ))
}

fn write_id_maps(id: &str, pid: i32, cfg: &ContainerConfig) -> Result<()> {
    std::fs::write(
        format!("/proc/{pid}/uid_map"),
        config::id_map_text(&cfg.uid_mappings),
    )
    .map_err(sys(id, "write uid_map"))?;
    std::fs::write(
        format!("/proc/{pid}/gid_map"),
        config::id_map_text(&cfg.gid_mappings),
    )
    .map_err(sys(id, "write gid_map"))?;
    Ok(())
}

fn child_error(id: &str, pid: i32, e: SyncError) -> Error {
    let status = nix::sys::wait::waitpid(
        nix::unistd::Pid::from_raw(pid),
        Some(nix::sys::wait::WaitPidFlag::WNOHANG),
    );
    use nix::sys::wait::WaitStatus;
    // Words, never a debug print: a user reads this (e.g. the kernel's
    // OOM killer under too small a memory limit shows as SIGKILL).
    let how = match status {
        Ok(WaitStatus::Exited(_, code)) => {
            format!("the container process exited with status {code}")
        }
        Ok(WaitStatus::Signaled(_, sig, _)) => {
            let hint = if sig == nix::sys::signal::Signal::SIGKILL {
                " (out of memory under the memory limit?)"
            } else {
                ""
            };
            format!("the container process was killed by {}{hint}", sig.as_str())
        }
        _ => "the container process stopped answering".to_string(),
    };
    Error::Setup {
        id: id.into(),
        message: format!("{e}; {how}"),
    }
}

/// runtime.md "create": set up the container and leave its process blocked
/// before the user's program until `start`.
pub fn create(root: &StateRoot, o: &CreateOptions) -> Result<Spawned> {
    state::validate_id(&o.id)?;
    let bundle = std::fs::canonicalize(&o.bundle).map_err(|source| {
        Error::Config(config::ConfigError::Bundle {
            path: o.bundle.clone(),
            source,
        })
    })?;
    let cfg = config::load(&bundle)?;
    let id = o.id.as_str();
    let seccomp = match &cfg.seccomp {
        Some(s) => Some(seccomp_agent::compile(id, s, &root.seccomp_cache())?),
        None => None,
    };
    let cg_err = |source| Error::Cgroup {
        id: id.into(),
        source,
    };
    let mut cg = Cgroup::new(cfg.cgroups_path.as_deref(), id).map_err(cg_err)?;
    // Rootless berth (a user namespace, no cgroupsPath, no resources): no
    // cgroup, as the user owns none (docs/rootless.md).
    let use_cg = !crate::userns_env::without_cgroup(&cfg);
    let dir = root.create(id)?;
    let mut guard = CreateGuard {
        id: id.into(),
        dir: None,
        pids: vec![],
        cgroup: None,
    };
    let mut rec = Record {
        id: id.into(),
        oci_version: cfg.oci_version.clone(),
        bundle: bundle.clone(),
        rootfs: cfg.rootfs.clone(),
        status: Status::Creating,
        pid: 0,
        start_time: 0,
        creator: {
            let me = std::process::id() as i32;
            (me, state::process_start_time(me).unwrap_or(0))
        },
        created: now_rfc3339(),
        owner: "root".into(),
        annotations: cfg.annotations.clone(),
        // Recorded before its directories exist: a create killed inside
        // cg.create() leaves dirs that delete must still find.
        cgroup: use_cg.then(|| serde_json::to_value(&cg).ok()).flatten(),
        poststart: cfg.hooks.poststart.clone(),
        poststop: cfg.hooks.poststop.clone(),
        namespaces: cfg.namespaces.new.clone(),
        process: cfg.process_json.clone(),
        seccomp: cfg
            .seccomp
            .as_ref()
            .and_then(|s| serde_json::to_value(s).ok()),
        memory_policy: cfg.memory_policy.clone(),
    };
    dir.save(&rec)?;
    let fifo = if o.start_now {
        None
    } else {
        let fifo_path = dir.fifo_path();
        nix::unistd::mkfifo(&fifo_path, nix::sys::stat::Mode::from_bits_truncate(0o622))
            .map_err(|e| sys(id, "create exec fifo")(e.into()))?;
        std::fs::set_permissions(&fifo_path, std::fs::Permissions::from_mode(0o622))
            .map_err(sys(id, "chmod exec fifo"))?;
        Some(
            rustix::fs::open(
                &fifo_path,
                rustix::fs::OFlags::PATH | rustix::fs::OFlags::CLOEXEC,
                rustix::fs::Mode::empty(),
            )
            .map_err(|e| sys(id, "open exec fifo")(e.into()))?,
        )
    };
    guard.dir = Some(dir);

    let (console_socket, console_keep) = console_sockets(id, &cfg, o)?;
    let notify_socket = seccomp_agent::connect(id, seccomp.as_ref(), cfg.seccomp.as_ref())?;

    if use_cg {
        cg.create().map_err(cg_err)?;
        check_cgroup_usable(id, &cg)?;
        guard.cgroup = Some(cg.clone());
        // Parent directories this create made are recorded at once, so a
        // delete after an interrupted create removes them too (the leaves it
        // finds from the record above either way).
        let leaves = cg.dirs();
        if cg.created().iter().any(|d| !leaves.contains(d)) {
            rec.cgroup = serde_json::to_value(&cg).ok();
            guard
                .dir
                .as_ref()
                .expect("state dir is set above")
                .save(&rec)?;
        }
        let resources = crate::devices::cgroup_device_rules(&cfg).or_else(|| cfg.resources.clone());
        if let Some(r) = &resources {
            cg.apply(r).map_err(cg_err)?;
        }
    }

    let idmaps = crate::idmap::prepare(id, &cfg)?;
    let plan = ns_plan(&cfg.namespaces);
    let mut joins = Vec::new();
    for (kind, path) in &cfg.namespaces.join {
        joins.push((*kind, open_ns(id, *kind, path)?));
    }
    let (mut chan, child_chan) = Channel::pair().map_err(sys(id, "create setup channel"))?;
    let forked = clone_fork(plan.clone_flags).map_err(sys(id, "clone the container process"))?;
    let first = match forked {
        Forked::Child => {
            drop(chan);
            // The runtime talks to the seccomp agent; the agent sees the
            // connection end when `create` is done.
            drop(notify_socket);
            let args = ChildArgs {
                chan: child_chan,
                joins,
                unshare_flags: plan.unshare_flags,
                fork_for_pid: plan.fork_for_pid,
                ask_maps: plan.ask_maps,
                console_socket,
                seccomp: seccomp.as_ref(),
                preserve_fds: o.preserve_fds,
                new_keyring: !o.no_new_keyring,
                state_json: String::new(),
                idmaps,
            };
            init::container_init(&cfg, args, fifo, o.no_pivot)
        }
        Forked::Parent(pid) => pid,
    };
    drop(child_chan);
    drop(console_socket);
    drop(joins);
    drop(idmaps);
    guard.pids.push(first);
    if use_cg {
        cg.add_process(first).map_err(cg_err)?;
    }
    if !plan.intermediate && cfg.namespaces.creates(NsKind::User) {
        write_id_maps(id, first, &cfg)?;
    }
    let mut pid = first;
    let state_of = |pid: i32, status: &str| {
        String::from_utf8(oci_state(&cfg, id, status, pid)).unwrap_or_default()
    };
    chan.send(&Msg::Go(state_of(pid, "creating")))
        .map_err(|e| child_error(id, first, e))?;
    loop {
        match chan.recv().map_err(|e| child_error(id, first, e))? {
            Msg::MapsNeeded => {
                write_id_maps(id, first, &cfg)?;
                chan.send(&Msg::Go(state_of(pid, "creating")))
                    .map_err(|e| child_error(id, first, e))?;
            }
            Msg::Pid(n) => {
                pid = n;
                guard.pids.push(n);
                let _ = nix::sys::wait::waitpid(nix::unistd::Pid::from_raw(first), None);
                chan.send(&Msg::Go(state_of(pid, "creating")))
                    .map_err(|e| child_error(id, pid, e))?;
            }
            Msg::Hooks => {
                let st = oci_state(&cfg, id, "creating", pid);
                let hook_err = |source| Error::Hook {
                    id: id.into(),
                    source,
                };
                hooks::run_hooks("prestart", &cfg.hooks.prestart, &st).map_err(hook_err)?;
                hooks::run_hooks("createRuntime", &cfg.hooks.create_runtime, &st)
                    .map_err(hook_err)?;
                chan.send(&Msg::HooksDone)
                    .map_err(|e| child_error(id, pid, e))?;
            }
            Msg::Ready => break,
            // config-linux.md "Seccomp": the agent gets the notify
            // descriptor during create, before the container is started.
            Msg::SeccompReady(n) => {
                let Some(sock) = &notify_socket else {
                    return Err(Error::Setup {
                        id: id.into(),
                        message: "the container process loads a notify filter without an agent"
                            .into(),
                    });
                };
                let fd = seccomp_agent::fetch(id, pid, n, &mut chan)?;
                chan.send(&Msg::SeccompDone)
                    .map_err(|e| child_error(id, pid, e))?;
                let metadata = cfg
                    .seccomp
                    .as_ref()
                    .and_then(|s| s.listener_metadata().clone());
                seccomp_agent::hand_over(
                    id,
                    sock,
                    &fd,
                    pid,
                    metadata,
                    &oci_state(&cfg, id, "creating", pid),
                )?;
                break;
            }
            Msg::Error(message) => {
                return Err(Error::Setup {
                    id: id.into(),
                    message,
                })
            }
            m => {
                return Err(Error::Setup {
                    id: id.into(),
                    message: format!("unexpected setup message {m:?}"),
                })
            }
        }
    }
    rec.pid = pid;
    rec.start_time = state::process_start_time(pid).unwrap_or(0);
    rec.status = Status::Created;
    rec.cgroup = use_cg.then(|| serde_json::to_value(&cg).ok()).flatten();
    let dir = guard.dir.as_ref().expect("state dir is set above");
    dir.save(&rec)?;
    if let Some(pf) = &o.pid_file {
        write_pid_file(id, pf, pid)?;
    }
    let console = receive_console(id, console_keep)?;
    guard.disarm();
    Ok(Spawned {
        pid,
        console,
        release: o.start_now.then_some(chan),
    })
}

/// The console socket handed to the child, and the end the runtime keeps
/// when it proxies the terminal itself.
pub(crate) fn console_sockets(
    id: &str,
    cfg_or_process: &ContainerConfig,
    o: &CreateOptions,
) -> Result<(Option<OwnedFd>, Option<OwnedFd>)> {
    terminal_sockets(
        id,
        cfg_or_process.process.terminal,
        o.console_socket.as_deref(),
        o.internal_console,
    )
}

/// See [`console_sockets`].
pub(crate) fn terminal_sockets(
    id: &str,
    terminal: bool,
    console_socket: Option<&Path>,
    internal: bool,
) -> Result<(Option<OwnedFd>, Option<OwnedFd>)> {
    if !terminal {
        return Ok((None, None));
    }
    if let Some(p) = console_socket {
        let s = std::os::unix::net::UnixStream::connect(p).map_err(sys(
            id,
            format!("connect to console socket {}", p.display()),
        ))?;
        return Ok((Some(s.into()), None));
    }
    if internal {
        let (a, b) =
            std::os::unix::net::UnixStream::pair().map_err(sys(id, "create console socketpair"))?;
        return Ok((Some(a.into()), Some(b.into())));
    }
    Err(Error::Invalid {
        id: id.into(),
        message: "process.terminal is true but no --console-socket was given; pass one (or use `run` in the foreground)".into(),
    })
}

/// The pty master the container process sent, when the runtime keeps the
/// terminal itself (foreground `run`/`exec`).
pub(crate) fn receive_console(id: &str, sock: Option<OwnedFd>) -> Result<Option<OwnedFd>> {
    let Some(sock) = sock else {
        return Ok(None);
    };
    crate::console::recv_fd(sock.as_fd())
        .map(Some)
        .map_err(|e| Error::Setup {
            id: id.into(),
            message: e.to_string(),
        })
}

/// Write the pid file atomically (callers poll for it).
pub fn write_pid_file(id: &str, path: &Path, pid: i32) -> Result<()> {
    let dir = path.parent().unwrap_or(Path::new("."));
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let tmp = dir.join(format!(".{name}.berth-tmp"));
    state::write_atomic(&tmp, path, pid.to_string().as_bytes()).map_err(|e| Error::Invalid {
        id: id.into(),
        message: format!("cannot write pid file: {e}"),
    })
}

fn now_rfc3339() -> String {
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap_or_default();
    format_rfc3339(now.as_secs() as i64, now.subsec_nanos())
}

/// Format a UNIX time as RFC 3339 UTC.
pub fn format_rfc3339(secs: i64, nanos: u32) -> String {
    let days = secs.div_euclid(86_400);
    let rem = secs.rem_euclid(86_400);
    // Civil from days (Howard Hinnant's algorithm).
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let y = yoe + era * 400;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = if m <= 2 { y + 1 } else { y };
    format!(
        "{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}.{nanos:09}Z",
        rem / 3600,
        (rem % 3600) / 60,
        rem % 60
    )
}

/// The live status of a recorded container.
pub fn live_status(r: &Record, dir_path: &Path) -> Status {
    if r.status == Status::Creating {
        // Interrupted create: the creator died before finishing.
        return if state::init_alive(r.creator.0, r.creator.1) {
            Status::Creating
        } else {
            Status::Stopped
        };
    }
    if !state::init_alive(r.pid, r.start_time) {
        return Status::Stopped;
    }
    if dir_path.join(state::FIFO).exists() {
        return Status::Created;
    }
    if let Some(cg) = cgroup_of(r) {
        if matches!(cg.freezer_state(), Ok(berth_cgroups::FreezerState::Frozen)) {
            return Status::Paused;
        }
    }
    Status::Running
}

/// The container's cgroup, from its record.
pub fn cgroup_of(r: &Record) -> Option<Cgroup> {
    r.cgroup
        .clone()
        .and_then(|v| serde_json::from_value(v).ok())
}

/// runtime.md "state".
pub fn state(root: &StateRoot, id: &str) -> Result<OciState> {
    // Read without the lock, as `list` does: `create` holds the lock while
    // it runs (hooks included), and `state` must answer "creating" then
    // instead of waiting (runtime.md "State"). The record is written
    // atomically, so an unlocked read sees a whole one.
    state::validate_id(id)?;
    let path = root.path.join(id);
    let file = path.join(state::STATE_FILE);
    let text = match std::fs::read(&file) {
        Ok(t) => t,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            return Err(state::StateError::NotFound(id.into()).into())
        }
        Err(source) => {
            return Err(state::StateError::Io {
                op: "read state",
                path: file,
                source,
            }
            .into())
        }
    };
    let r: Record = serde_json::from_slice(&text).map_err(|e| state::StateError::Corrupt {
        id: id.into(),
        path: file.clone(),
        message: e.to_string(),
    })?;
    let status = live_status(&r, &path);
    Ok(OciState {
        oci_version: r.oci_version,
        id: r.id,
        status,
        pid: (status != Status::Stopped && r.pid > 0).then_some(r.pid),
        bundle: r.bundle,
        annotations: r.annotations,
    })
}

/// runtime.md "start": release the process blocked in create.
pub fn start(root: &StateRoot, id: &str) -> Result<()> {
    let dir = root.open(id)?;
    let r = dir.load()?;
    let status = live_status(&r, &dir.path);
    if status != Status::Created {
        return Err(Error::WrongStatus {
            id: id.into(),
            status,
            what: "only a created container can be started".into(),
        });
    }
    let fifo = dir.fifo_path();
    let f = std::fs::OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_NONBLOCK | libc::O_CLOEXEC)
        .open(&fifo)
        .map_err(sys(id, "open exec fifo"))?;
    // The container opens its end once ours exists; wait for its byte.
    let mut buf = [0u8; 1];
    loop {
        match nix::unistd::read(&f, &mut buf) {
            Ok(1) => break,
            Ok(_) | Err(nix::Error::EAGAIN) => {
                // A short-lived program may have written its byte and
                // exited between our read and this check: read once more.
                if !state::init_alive(r.pid, r.start_time) {
                    if matches!(nix::unistd::read(&f, &mut buf), Ok(1)) {
                        break;
                    }
                    return Err(Error::Setup {
                        id: id.into(),
                        message: "the container process died before it could start".into(),
                    });
                }
                let mut pfd = [nix::poll::PollFd::new(
                    f.as_fd(),
                    nix::poll::PollFlags::POLLIN,
                )];
                let _ = nix::poll::poll(&mut pfd, nix::poll::PollTimeout::from(50u16));
            }
            Err(e) => return Err(sys(id, "read exec fifo")(e.into())),
        }
    }
    // Released: record it as running while it runs its startContainer
    // hooks and executes the program.
    let r = save_running(&dir, r)?;
    // The process keeps its end open until it executes the program (or
    // exits): end of file means the startContainer hooks are done.
    loop {
        match nix::unistd::read(&f, &mut buf) {
            Ok(0) => break,
            Ok(_) | Err(nix::Error::EINTR) => {}
            Err(nix::Error::EAGAIN) => {
                let mut pfd = [nix::poll::PollFd::new(
                    f.as_fd(),
                    nix::poll::PollFlags::POLLIN,
                )];
                let _ = nix::poll::poll(&mut pfd, nix::poll::PollTimeout::NONE);
            }
            Err(e) => return Err(sys(id, "read exec fifo")(e.into())),
        }
    }
    let _ = std::fs::remove_file(&fifo);
    drop(dir);
    poststart(root, id, &r)
}

/// runc's checks of a cgroup that may have existed before `create`: a
/// frozen one is refused at once (the process would hang in it); one with
/// processes in it gets runc's warning. On refusal the directories this
/// create made are removed, and nothing in a pre-existing cgroup is touched.
fn check_cgroup_usable(id: &str, cg: &Cgroup) -> Result<()> {
    let existed = cg
        .main_dir()
        .is_some_and(|d| !cg.created().iter().any(|c| c == d));
    if existed {
        let n = cg.pids().map(|p| p.len()).unwrap_or(0);
        if n != 0 {
            tracing::warn!("container's cgroup is not empty: {n} process(es) found");
        }
    }
    if matches!(cg.freezer_state(), Ok(berth_cgroups::FreezerState::Frozen)) {
        let mut made = cg.created().to_vec();
        made.sort_by_key(|p| std::cmp::Reverse(p.components().count()));
        for d in made {
            let _ = std::fs::remove_dir(d);
        }
        let where_ = cg
            .dir_for("freezer", "freezer state")
            .map(|d| d.display().to_string())
            .unwrap_or_default();
        return Err(Error::Invalid {
            id: id.into(),
            message: format!(
                "container's cgroup unexpectedly frozen ({where_}): thaw it or use another cgroupsPath"
            ),
        });
    }
    Ok(())
}

/// Records a released container as running.
fn save_running(dir: &state::StateDir, mut r: Record) -> Result<Record> {
    r.status = Status::Running;
    dir.save(&r)?;
    Ok(r)
}

/// Runs the poststart hooks of a started container, after the program
/// started. runtime.md "Lifecycle" step 9: a failing hook is an error, the
/// container is stopped and destroyed (steps 12-13, poststop hooks
/// included), as runc does; `start` then fails with the hook's message.
fn poststart(root: &StateRoot, id: &str, r: &Record) -> Result<()> {
    let state = record_state(r, Status::Running);
    let Err(source) = hooks::run_hooks("poststart", &r.poststart, &state) else {
        return Ok(());
    };
    if let Err(e) = delete(root, id, true) {
        tracing::error!("{e}");
    }
    Err(Error::Hook {
        id: id.into(),
        source,
    })
}

/// runtime.md "start" for a container created with `start_now` by this
/// same caller: release the process over its setup channel. A container
/// created without `start_now` is started through its fifo ([`start`]).
pub fn start_spawned(root: &StateRoot, id: &str, spawned: &mut Spawned) -> Result<()> {
    let Some(mut chan) = spawned.release.take() else {
        return start(root, id);
    };
    let dir = root.open(id)?;
    let r = dir.load()?;
    chan.send(&Msg::Start)
        .map_err(|e| child_error(id, spawned.pid, e))?;
    let r = save_running(&dir, r)?;
    // As in [`start`]: the channel closes when the program is executing;
    // a failed startContainer hook reports here.
    match chan.recv() {
        Ok(Msg::Error(message)) => {
            return Err(Error::Setup {
                id: id.into(),
                message,
            })
        }
        Ok(m) => {
            return Err(Error::Setup {
                id: id.into(),
                message: format!("unexpected setup message {m:?} after start"),
            })
        }
        Err(_) => {}
    }
    drop(dir);
    poststart(root, id, &r)
}

use std::os::unix::fs::OpenOptionsExt;

/// Parse a signal given as a name (`KILL`, `SIGKILL`) or a number.
pub fn parse_signal(s: &str) -> Option<i32> {
    if let Ok(n) = s.parse::<i32>() {
        return (1..=64).contains(&n).then_some(n);
    }
    let up = s.to_ascii_uppercase();
    let name = if up.starts_with("SIG") {
        up
    } else {
        format!("SIG{up}")
    };
    if let Some(rest) = name.strip_prefix("SIGRTMIN") {
        let base = libc::SIGRTMIN();
        return match rest {
            "" => Some(base),
            r => r
                .strip_prefix('+')
                .and_then(|n| n.parse::<i32>().ok())
                .map(|n| base + n),
        };
    }
    if let Some(rest) = name.strip_prefix("SIGRTMAX") {
        let base = libc::SIGRTMAX();
        return match rest {
            "" => Some(base),
            r => r
                .strip_prefix('-')
                .and_then(|n| n.parse::<i32>().ok())
                .map(|n| base - n),
        };
    }
    name.parse::<nix::sys::signal::Signal>()
        .ok()
        .map(|s| s as i32)
}

fn send_signal(id: &str, r: &Record, sig: i32) -> Result<()> {
    let pidfd = rustix::process::pidfd_open(
        rustix::process::Pid::from_raw(r.pid).ok_or_else(|| Error::Invalid {
            id: id.into(),
            message: "no process recorded".into(),
        })?,
        rustix::process::PidfdFlags::empty(),
    )
    .map_err(|e| sys(id, "open the container process")(e.into()))?;
    // The pidfd pins the process: check it is still the container's init.
    if !state::init_alive(r.pid, r.start_time) {
        return Err(Error::WrongStatus {
            id: id.into(),
            status: Status::Stopped,
            // runc's wording, which containerd's shim (checkKillError)
            // maps to "process already finished" instead of a failure.
            what: "container not running: there is no process to signal".into(),
        });
    }
    if sig == 0 {
        // Signal 0 only checks that the process exists (kill(2)); the
        // pinned, still-alive init is that check.
        return Ok(());
    }
    let signal = rustix::process::Signal::from_named_raw(sig).ok_or_else(|| Error::Invalid {
        id: id.into(),
        message: format!("invalid signal {sig}"),
    })?;
    rustix::process::pidfd_send_signal(&pidfd, signal)
        .map_err(|e| sys(id, format!("send signal {sig}"))(e.into()))
}

/// runtime.md "kill" (and runc's `--all`); signal 0 only checks that the
/// container has a live process, as kill(2) and runc do.
pub fn kill(root: &StateRoot, id: &str, sig: i32, all: bool) -> Result<()> {
    let dir = root.open(id)?;
    let r = dir.load()?;
    let status = live_status(&r, &dir.path);
    if matches!(status, Status::Stopped | Status::Creating) {
        return Err(Error::WrongStatus {
            id: id.into(),
            status,
            // runc's wording, which containerd's shim (checkKillError)
            // maps to "process already finished" instead of a failure.
            what: "container not running: there is no process to signal".into(),
        });
    }
    if all {
        let cg = cgroup_of(&r).ok_or_else(|| Error::Invalid {
            id: id.into(),
            message: "no cgroup recorded; cannot signal all processes".into(),
        })?;
        if sig == 0 {
            // Existence check only (runc signals every process with 0).
            return Ok(());
        }
        let signal = nix::sys::signal::Signal::try_from(sig)
            .map_err(|e| sys(id, "parse signal")(e.into()))?;
        return cg.kill_all(signal).map_err(|source| Error::Cgroup {
            id: id.into(),
            source,
        });
    }
    send_signal(id, &r, sig)
}

fn wait_gone(r: &Record, timeout: Duration) -> bool {
    let end = Instant::now() + timeout;
    while Instant::now() < end {
        if !state::init_alive(r.pid, r.start_time) {
            return true;
        }
        std::thread::sleep(Duration::from_millis(2));
    }
    !state::init_alive(r.pid, r.start_time)
}

/// runtime.md "delete".
pub fn delete(root: &StateRoot, id: &str, force: bool) -> Result<()> {
    let dir = match root.open(id) {
        Ok(d) => d,
        Err(crate::state::StateError::NotFound(_)) if force => return Ok(()),
        Err(e) => return Err(e.into()),
    };
    let r = match dir.load() {
        Ok(r) => r,
        Err(_) if force => return dir.remove().map_err(Into::into),
        Err(e) => return Err(e.into()),
    };
    let status = live_status(&r, &dir.path);
    match status {
        Status::Stopped => {}
        Status::Created | Status::Creating => {
            let _ = send_signal(id, &r, libc::SIGKILL);
        }
        Status::Running | Status::Paused if force => {
            if let Some(cg) = cgroup_of(&r) {
                let _ = cg.kill_all(nix::sys::signal::SIGKILL);
                let _ = cg.thaw();
            }
            let _ = send_signal(id, &r, libc::SIGKILL);
        }
        Status::Running | Status::Paused => {
            return Err(Error::WrongStatus {
                id: id.into(),
                status,
                what: "stop it first or use delete --force".into(),
            })
        }
    }
    if status != Status::Stopped && !wait_gone(&r, Duration::from_secs(10)) {
        return Err(Error::Invalid {
            id: id.into(),
            message: "the container process did not die after SIGKILL".into(),
        });
    }
    let mut errors = Vec::new();
    if let Some(cg) = cgroup_of(&r) {
        if let Err(e) = cg.destroy() {
            errors.push(format!("cgroup: {e}"));
        }
        if r.status == Status::Creating {
            // Interrupted create: the record may predate cg.create(), so
            // `created` can miss the container's own (empty) leaf dirs.
            for d in cg.dirs() {
                let _ = std::fs::remove_dir(&d);
            }
        }
    }
    // runtime.md "Lifecycle" step 13: every poststop hook runs and a
    // failure does not stop the lifecycle: the state is removed all the
    // same. `delete` then reports the first failure (exit non-zero), as runc
    // does since it fixed opencontainers/runc#2905 (runc 1.1 exited 0), so
    // callers learn that a cleanup hook failed.
    let mut hook_failure = None;
    for h in &r.poststop {
        let one = std::slice::from_ref(h);
        if let Err(e) = hooks::run_hooks("poststop", one, &record_state(&r, Status::Stopped)) {
            hook_failure.get_or_insert(e);
        }
    }
    if let Err(e) = dir.remove() {
        errors.push(e.to_string());
    }
    if !errors.is_empty() {
        return Err(Error::Invalid {
            id: id.into(),
            message: format!("delete left things behind: {}", errors.join("; ")),
        });
    }
    match hook_failure {
        Some(source) => Err(Error::Hook {
            id: id.into(),
            source,
        }),
        None => Ok(()),
    }
}

/// One row of `list`.
#[derive(Debug, Clone, serde::Serialize)]
pub struct ListEntry {
    #[serde(rename = "ociVersion")]
    pub oci_version: String,
    pub id: String,
    pub pid: i32,
    pub status: Status,
    pub bundle: PathBuf,
    pub rootfs: PathBuf,
    pub created: String,
    pub owner: String,
    #[serde(skip_serializing_if = "std::collections::BTreeMap::is_empty")]
    pub annotations: std::collections::BTreeMap<String, String>,
}

/// runc's `list`: every container under the root (read without locking,
/// so a container being created does not block the listing).
pub fn list(root: &StateRoot) -> Result<Vec<ListEntry>> {
    let mut out = Vec::new();
    for id in root.list()? {
        let dir = root.path.join(&id);
        let Ok(text) = std::fs::read(dir.join(state::STATE_FILE)) else {
            continue;
        };
        let Ok(r) = serde_json::from_slice::<Record>(&text) else {
            continue;
        };
        let status = live_status(&r, &dir);
        out.push(ListEntry {
            oci_version: r.oci_version,
            id: r.id,
            pid: if status == Status::Stopped { 0 } else { r.pid },
            status,
            bundle: r.bundle,
            rootfs: r.rootfs,
            created: r.created,
            owner: r.owner,
            annotations: r.annotations,
        });
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn signals_parse() {
        assert_eq!(parse_signal("KILL"), Some(9));
        assert_eq!(parse_signal("SIGTERM"), Some(15));
        assert_eq!(parse_signal("term"), Some(15));
        assert_eq!(parse_signal("9"), Some(9));
        assert_eq!(parse_signal("0"), None);
        assert_eq!(parse_signal("BOGUS"), None);
        assert_eq!(parse_signal("SIGRTMIN+1"), Some(libc::SIGRTMIN() + 1));
    }

    #[test]
    fn rfc3339() {
        assert_eq!(format_rfc3339(0, 0), "1970-01-01T00:00:00.000000000Z");
        assert_eq!(
            format_rfc3339(1_700_000_000, 5),
            "2023-11-14T22:13:20.000000005Z"
        );
    }

    #[test]
    fn plan_fast_path_and_intermediate() {
        let ns = config::Namespaces {
            new: vec![NsKind::Pid, NsKind::Mount, NsKind::Cgroup],
            join: vec![],
        };
        let p = ns_plan(&ns);
        assert!(!p.intermediate);
        assert_eq!(p.clone_flags, libc::CLONE_NEWPID | libc::CLONE_NEWNS);
        let ns = config::Namespaces {
            new: vec![NsKind::Mount],
            join: vec![(NsKind::Pid, "/proc/1/ns/pid".into())],
        };
        let p = ns_plan(&ns);
        assert!(p.intermediate && p.fork_for_pid && p.clone_flags == 0);
    }
}
