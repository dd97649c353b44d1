//! `create`: the container process set up and left blocked before the
//! user's program (runtime.md "create"), and the console and pid-file
//! helpers `exec` shares.

use super::{now_rfc3339, oci_state, CreateOptions, Spawned};
use crate::config::{self, ContainerConfig, NsKind};
use crate::error::{sys, Error, Result};
use crate::hooks;
use crate::idmap::GivenUserns;
use crate::init::{self, ChildArgs};
use crate::seccomp_agent;
use crate::state::{self, Record, StateDir, StateRoot, Status};
use crate::sync::{Channel, Msg, SyncError};
use berth_cgroups::Cgroup;
use berth_sys::process::Forked;
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::os::unix::fs::PermissionsExt;
use std::path::Path;

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
    crate::rootless::write_id_maps(id, pid, &cfg.uid_mappings, &cfg.gid_mappings)
}

/// runc's rootless cgroup manager (libcontainer/cgroups/fs `Apply`): the
/// hierarchies the caller cannot use are left out, without an error, when
/// the config names no cgroupsPath; a cgroupsPath it cannot use is an
/// error.
fn rootless_cgroup(id: &str, cg: &mut Cgroup, path: Option<&str>) -> Result<()> {
    let dropped = cg.drop_unusable();
    if dropped.is_empty() {
        return Ok(());
    }
    if let Some(p) = path {
        return Err(Error::Invalid {
            id: id.into(),
            message: format!(
                "rootless: cannot create or join the cgroup {p} ({}): the user may not write there; remove linux.cgroupsPath to run without a cgroup, or use a cgroup v2 subtree delegated to the user",
                dropped.join(", ")
            ),
        });
    }
    tracing::debug!(
        "container {id:?}: rootless, no cgroup in: {}",
        dropped.join(", ")
    );
    Ok(())
}

/// Resources of a rootless container (runc's fs manager `Set` with
/// `Rootless`): device rules are applied where the devices cgroup is usable
/// and otherwise ignored (the user namespace already keeps the container
/// from device nodes it may not open); any other resource needing a
/// hierarchy that was left out is an error.
fn apply_rootless(id: &str, cg: &Cgroup, res: &oci_spec::runtime::LinuxResources) -> Result<()> {
    let mut rest = res.clone();
    if let Some(rules) = rest.devices().clone() {
        rest.set_devices(None);
        let mut only = oci_spec::runtime::LinuxResources::default();
        only.set_devices(Some(rules));
        if let Err(e) = cg.apply(&only) {
            tracing::debug!("container {id:?}: rootless, device rules not applied: {e}");
        }
    }
    cg.apply(&rest).map_err(|source| match source {
        berth_cgroups::Error::ControllerMissing { controller, what } => Error::Invalid {
            id: id.into(),
            message: format!(
                "cannot set {what}: a rootless container could not join or create a {controller} cgroup (the user owns no cgroup it may write; remove the limit, or use a cgroup v2 subtree delegated to the user)"
            ),
        },
        source => Error::Cgroup {
            id: id.into(),
            source,
        },
    })
}

pub(super) fn child_error(id: &str, pid: i32, e: SyncError) -> Error {
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

/// What [`create_hooked`] calls once, to mount what needs the container's
/// user namespace (the engine's idmapped rootfs layers): with the
/// container's own user namespace, its maps written, after the container
/// process was cloned and before it copies the mount namespace (so the
/// mounts made here are in its copy); or with None, before the clone, where
/// create cannot make the namespace first (joined namespaces, no mount
/// namespace of its own): the hook then makes one itself and may return it
/// for the idmapped bind mounts. An error is shown as the setup's error.
pub type UsernsHook<'a> =
    dyn FnMut(Option<BorrowedFd<'_>>) -> std::result::Result<Option<GivenUserns>, String> + 'a;

/// runtime.md "create": set up the container and leave its process blocked
/// before the user's program until `start`.
pub fn create(root: &StateRoot, o: &CreateOptions) -> Result<Spawned> {
    create_inner(root, o, None)
}

/// [`create`] with a [`UsernsHook`]: no process and no user namespace
/// besides the container's are made to idmap its mounts.
pub fn create_hooked(
    root: &StateRoot,
    o: &CreateOptions,
    hook: &mut UsernsHook<'_>,
) -> Result<Spawned> {
    create_inner(root, o, Some(hook))
}

fn create_inner(
    root: &StateRoot,
    o: &CreateOptions,
    mut hook: Option<&mut UsernsHook<'_>>,
) -> Result<Spawned> {
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
    let rootless_cg = o.rootless.unwrap_or_else(crate::rootless::auto_detect);
    // (Also known to the container process, forked below.)
    if crate::rootless::euid_rootless() {
        crate::rootless::check_config(
            id,
            cfg.namespaces.creates(NsKind::User),
            cfg.namespaces.join.iter().any(|(k, _)| *k == NsKind::User),
            &cfg.uid_mappings,
            &cfg.gid_mappings,
        )?;
    }
    let mut cg = Cgroup::new(cfg.cgroups_path.as_deref(), id).map_err(cg_err)?;
    if rootless_cg {
        rootless_cgroup(id, &mut cg, cfg.cgroups_path.as_deref())?;
    }
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
        owner: crate::rootless::user_name(rustix::process::geteuid().as_raw()),
        annotations: cfg.annotations.clone(),
        // Recorded before its directories exist: a create killed inside
        // cg.create() leaves dirs that delete must still find.
        cgroup: serde_json::to_value(&cg).ok(),
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
        if rootless_cg {
            apply_rootless(id, &cg, r)?;
        } else {
            cg.apply(r).map_err(cg_err)?;
        }
    }

    let mut plan = ns_plan(&cfg.namespaces);
    let setup_err = |message: String| Error::Setup {
        id: id.into(),
        message,
    };
    // The container's user namespace serves the hook and the idmapped
    // mounts (those with its maps) itself when the clone makes it (the
    // runtime's own `create` of a config with idmapped mounts too, with no
    // helper process then): the mount namespace is then
    // made by the child after the hook (unshare), and the trees go over
    // the setup channel.
    let direct = (hook.is_some() || cfg.mounts.iter().any(crate::idmap::wanted))
        && !plan.intermediate
        && cfg.namespaces.creates(NsKind::User)
        && cfg.namespaces.creates(NsKind::Mount);
    let mut given = o.idmap_userns.clone();
    if !direct {
        if let Some(h) = hook.as_mut() {
            if let Some(g) = h(None).map_err(setup_err)? {
                given = Some(g);
            }
        }
    }
    if direct {
        plan.clone_flags &= !libc::CLONE_NEWNS;
        plan.unshare_flags |= libc::CLONE_NEWNS;
    }
    let idmaps = if direct {
        Vec::new()
    } else {
        crate::idmap::prepare(id, &cfg, given.as_ref())?
    };
    let mut joins = Vec::new();
    for (kind, path) in &cfg.namespaces.join {
        joins.push((*kind, open_ns(id, *kind, path)?));
    }
    let cgroup_join = cg.open_self_join().map_err(cg_err)?;
    let (mut chan, child_chan) = Channel::pair().map_err(sys(id, "create setup channel"))?;
    // Started in its cgroup2 directory where there is one (no pid written
    // to cgroup.procs afterwards: see Cgroup::open_self_join).
    let (forked, into_unified) = init::fork_child(plan.clone_flags, cgroup_join.as_ref())
        .map_err(sys(id, "clone the container process"))?;
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
                recv_idmaps: direct,
                cgroup_join,
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
    match cgroup_join {
        // The child joins the v1 hierarchies itself (its first step; an
        // error comes back over the channel).
        Some(j) if into_unified => drop(j),
        Some(j) => j.add_unified(first).map_err(cg_err)?,
        None => cg.add_process(first).map_err(cg_err)?,
    }
    if !plan.intermediate && cfg.namespaces.creates(NsKind::User) {
        write_id_maps(id, first, &cfg)?;
    }
    if direct {
        let own = open_ns(
            id,
            NsKind::User,
            Path::new(&format!("/proc/{first}/ns/user")),
        )?;
        if let Some(h) = hook.as_mut() {
            h(Some(own.as_fd())).map_err(setup_err)?;
        }
        let trees = crate::idmap::prepare_with(
            id,
            &cfg,
            Some((own.as_fd(), &cfg.uid_mappings, &cfg.gid_mappings)),
        )?;
        crate::idmap::send_trees(id, chan.as_fd(), &trees)?;
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
    rec.cgroup = serde_json::to_value(&cg).ok();
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

#[cfg(test)]
mod tests {
    use super::*;

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
