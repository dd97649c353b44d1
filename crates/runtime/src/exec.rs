//! runc's `exec`: a new process inside a running container, in every one
//! of its namespaces and its cgroup, with the container's seccomp filter.

use crate::config::{NsKind, ProcessConfig};
use crate::container::{
    cgroup_of, live_status, receive_console, terminal_sockets, write_pid_file, Spawned,
};
use crate::error::{sys, Error, Result};
use crate::init::{self, ChildArgs};
use crate::seccomp_agent;
use crate::state::{StateRoot, Status};
use crate::sync::{Channel, Msg};
use berth_sys::process::Forked;
use std::os::fd::OwnedFd;
use std::os::unix::fs::MetadataExt;
use std::path::PathBuf;

/// Options of `exec`.
#[derive(Debug, Clone, Default)]
pub struct ExecOptions {
    pub id: String,
    pub pid_file: Option<PathBuf>,
    pub console_socket: Option<PathBuf>,
    pub preserve_fds: u32,
    /// Keep the pty master in the runtime (foreground `exec -t`).
    pub internal_console: bool,
    /// runc's `--ignore-paused`: exec into a paused container (the process
    /// stays frozen, and `exec` waits, until it is resumed).
    pub ignore_paused: bool,
    /// runc's `--cgroup [CONTROLLERS:]PATH`: existing sub-cgroups of the
    /// container's to put the process in.
    pub sub_cgroups: Vec<SubCgroup>,
}

/// One `exec --cgroup [CONTROLLERS:]PATH` (runc 1.1): the process goes to
/// PATH below the container's cgroup, for the listed v1 controllers or,
/// without a list, for every hierarchy.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SubCgroup {
    /// v1 controllers (e.g. ["cpu", "cpuacct"]); empty means all.
    pub controllers: Vec<String>,
    /// Relative to the container's cgroup, never leaving it.
    pub path: PathBuf,
}

impl SubCgroup {
    pub fn parse(s: &str) -> std::result::Result<SubCgroup, String> {
        let (ctrls, path) = match s.split_once(':') {
            Some((c, p)) => (c.split(',').map(str::to_owned).collect(), p),
            None => (Vec::new(), s),
        };
        let rel = berth_cgroups::path::clean(path);
        if rel.as_os_str().is_empty() || path.split('/').any(|c| c == "..") {
            return Err(format!(
                "exec --cgroup {s:?}: want [CONTROLLER[,CONTROLLER]:]PATH with PATH inside the container's cgroup"
            ));
        }
        let rel = rel.strip_prefix("/").unwrap_or(&rel).to_path_buf();
        Ok(SubCgroup {
            controllers: ctrls,
            path: rel,
        })
    }
}

/// The container's process (from config.json) as the base of an exec'd
/// process; the CLI overrides fields from its flags.
pub fn base_process(root: &StateRoot, id: &str) -> Result<oci_spec::runtime::Process> {
    let dir = root.open(id)?;
    let r = dir.load()?;
    serde_json::from_value(r.process).map_err(|e| Error::Invalid {
        id: id.into(),
        message: format!("recorded process is unreadable: {e}"),
    })
}

/// Start `p` inside container `o.id`.
pub fn exec(root: &StateRoot, o: &ExecOptions, p: &ProcessConfig) -> Result<Spawned> {
    let id = o.id.as_str();
    // Known before the fork (the process checks it after entering the
    // container's user namespace).
    let _ = crate::rootless::euid_rootless();
    let dir = root.open(id)?;
    let r = dir.load()?;
    let status = live_status(&r, &dir.path);
    if status == Status::Paused && !o.ignore_paused {
        return Err(Error::WrongStatus {
            id: id.into(),
            status,
            what: "cannot exec in a paused container (use --ignore-paused to override)".into(),
        });
    }
    let paused_ok = status == Status::Paused && o.ignore_paused;
    if !paused_ok && !matches!(status, Status::Running | Status::Created) {
        return Err(Error::WrongStatus {
            id: id.into(),
            status,
            what: "exec needs a created or running container".into(),
        });
    }
    drop(dir);
    let seccomp_cfg: Option<oci_spec::runtime::LinuxSeccomp> = match &r.seccomp {
        Some(v) => Some(
            serde_json::from_value(v.clone()).map_err(|e| Error::Seccomp {
                id: id.into(),
                message: format!("recorded linux.seccomp is unreadable: {e}"),
            })?,
        ),
        None => None,
    };
    let seccomp = match &seccomp_cfg {
        Some(s) => Some(seccomp_agent::compile(id, s, &root.seccomp_cache())?),
        None => None,
    };
    // runc does the same for exec'd processes: the agent gets their
    // notify descriptor too.
    let notify_socket = seccomp_agent::connect(id, seccomp.as_ref(), seccomp_cfg.as_ref())?;
    // Join every namespace of the init that differs from ours, user first.
    let mut joins: Vec<(NsKind, OwnedFd)> = Vec::new();
    let mut userns = false;
    let mut pidns = false;
    for kind in NsKind::JOIN_ORDER {
        let theirs = format!("/proc/{}/ns/{}", r.pid, kind.proc_name());
        let ours = format!("/proc/self/ns/{}", kind.proc_name());
        let (Ok(t), Ok(o)) = (std::fs::metadata(&theirs), std::fs::metadata(&ours)) else {
            continue;
        };
        if t.ino() == o.ino() && t.dev() == o.dev() {
            continue;
        }
        let f = std::fs::File::open(&theirs).map_err(sys(id, format!("open {theirs}")))?;
        userns |= kind == NsKind::User;
        pidns |= kind == NsKind::Pid;
        joins.push((kind, f.into()));
    }
    // A namespace the container's user namespace does not own (the
    // engine's network namespace, owned by the host's) cannot be joined
    // from inside it. A root caller in the initial user namespace holds
    // every capability over all of them: it joins the user namespace last
    // (crun likewise joins such namespaces before the user namespace).
    if userns
        && nix::unistd::geteuid().is_root()
        && std::fs::read_to_string("/proc/self/uid_map")
            .is_ok_and(|m| m.split_whitespace().collect::<Vec<_>>() == ["0", "0", "4294967295"])
    {
        if let Some(i) = joins.iter().position(|(k, _)| *k == NsKind::User) {
            let u = joins.remove(i);
            joins.push(u);
        }
    }
    let (console_socket, console_keep) = terminal_sockets(
        id,
        p.terminal,
        o.console_socket.as_deref(),
        o.internal_console,
    )?;
    let linux32 = init::runs_linux32(r.pid);
    let (mut chan, child_chan) = Channel::pair().map_err(sys(id, "create setup channel"))?;
    let cg = cgroup_of(&r);
    let cg_err = |source| Error::Cgroup {
        id: id.into(),
        source,
    };
    // As create: the process starts in the container's cgroup (no pid
    // written to cgroup.procs: see Cgroup::open_self_join).
    let cgroup_join = match &cg {
        Some(cg) if o.sub_cgroups.is_empty() => cg.open_self_join().map_err(cg_err)?,
        _ => None,
    };
    let (forked, into_unified) =
        init::fork_child(0, cgroup_join.as_ref()).map_err(sys(id, "fork"))?;
    let first = match forked {
        Forked::Child => {
            drop(chan);
            drop(notify_socket);
            let args = ChildArgs {
                chan: child_chan,
                joins,
                unshare_flags: 0,
                fork_for_pid: pidns,
                ask_maps: false,
                console_socket,
                seccomp: seccomp.as_ref(),
                preserve_fds: o.preserve_fds,
                new_keyring: false,
                state_json: String::new(),
                idmaps: Vec::new(),
                recv_idmaps: false,
                cgroup_join,
            };
            init::exec_init(p, args, userns, linux32, r.memory_policy.as_ref())
        }
        Forked::Parent(pid) => pid,
    };
    drop(child_chan);
    drop(console_socket);
    let kill_first = |pid: i32| {
        let _ = nix::sys::signal::kill(nix::unistd::Pid::from_raw(pid), nix::sys::signal::SIGKILL);
        let _ = nix::sys::wait::waitpid(nix::unistd::Pid::from_raw(pid), None);
    };
    if let Some(cg) = cg {
        let joined = match cgroup_join {
            // The child joins the v1 hierarchies itself.
            Some(_) if into_unified => Ok(()),
            Some(j) => j.add_unified(first).map_err(cg_err),
            None if o.sub_cgroups.is_empty() => cg.add_process(first).map_err(cg_err),
            None => join_sub_cgroups(id, &cg, &o.sub_cgroups, first),
        };
        if let Err(e) = joined {
            kill_first(first);
            return Err(e);
        }
    } else if !o.sub_cgroups.is_empty() {
        kill_first(first);
        return Err(Error::Invalid {
            id: id.into(),
            message: "exec --cgroup: the container has no cgroup".into(),
        });
    }
    let mut pid = first;
    let res = (|| -> Result<()> {
        let setup = |e| Error::Setup {
            id: id.into(),
            message: format!("exec: {e}"),
        };
        chan.send(&Msg::Go(String::new())).map_err(setup)?;
        loop {
            match chan.recv().map_err(setup)? {
                Msg::Pid(n) => {
                    pid = n;
                    let _ = nix::sys::wait::waitpid(nix::unistd::Pid::from_raw(first), None);
                    chan.send(&Msg::Go(String::new())).map_err(setup)?;
                }
                Msg::Ready => return Ok(()),
                Msg::SeccompReady(n) => {
                    let Some(sock) = &notify_socket else {
                        return Err(setup(crate::sync::SyncError::Bad(
                            "a notify filter without an agent".into(),
                        )));
                    };
                    let fd = seccomp_agent::fetch(id, pid, n, &mut chan)?;
                    chan.send(&Msg::SeccompDone).map_err(setup)?;
                    let metadata = seccomp_cfg
                        .as_ref()
                        .and_then(|s| s.listener_metadata().clone());
                    // runc: the state of the container (running, its init's
                    // pid), with the exec'd process as `pid`.
                    let state = crate::container::record_state(&r, Status::Running);
                    seccomp_agent::hand_over(id, sock, &fd, pid, metadata, &state)?;
                    return Ok(());
                }
                Msg::Error(message) => {
                    return Err(Error::Setup {
                        id: id.into(),
                        message: format!("exec: {message}"),
                    })
                }
                m => {
                    return Err(Error::Setup {
                        id: id.into(),
                        message: format!("exec: unexpected setup message {m:?}"),
                    })
                }
            }
        }
    })();
    if let Err(e) = res {
        kill_first(first);
        if pid != first {
            let _ =
                nix::sys::signal::kill(nix::unistd::Pid::from_raw(pid), nix::sys::signal::SIGKILL);
        }
        return Err(e);
    }
    if let Some(pf) = &o.pid_file {
        if let Err(e) = write_pid_file(id, pf, pid) {
            // runc terminates a process whose exec failed after it started.
            let _ =
                nix::sys::signal::kill(nix::unistd::Pid::from_raw(pid), nix::sys::signal::SIGKILL);
            return Err(e);
        }
    }
    let console = receive_console(id, console_keep)?;
    Ok(Spawned {
        pid,
        console,
        release: None,
    })
}

/// Puts `pid` in the container's cgroup on every hierarchy, below it where
/// an `exec --cgroup` names that hierarchy (runc's addIntoCgroup).
fn join_sub_cgroups(
    id: &str,
    cg: &berth_cgroups::Cgroup,
    subs: &[SubCgroup],
    pid: i32,
) -> Result<()> {
    let for_key = |key: &str| {
        subs.iter()
            .find(|s| s.controllers.iter().any(|c| c == key))
            .or_else(|| subs.iter().find(|s| s.controllers.is_empty()))
    };
    let mut targets: Vec<PathBuf> = Vec::new();
    if let Some(u) = cg.unified_path() {
        if let Some(s) = subs.iter().find(|s| !s.controllers.is_empty()) {
            return Err(Error::Invalid {
                id: id.into(),
                message: format!(
                    "exec --cgroup {}: naming controllers needs cgroup v1; on cgroup v2 give only a path",
                    s.controllers.join(",")
                ),
            });
        }
        targets.push(match for_key("") {
            Some(s) => u.join(&s.path),
            None => u.to_path_buf(),
        });
    }
    for known in subs.iter().flat_map(|s| s.controllers.iter()) {
        if !cg.v1_paths().contains_key(known) {
            return Err(Error::Invalid {
                id: id.into(),
                message: format!(
                    "exec --cgroup: controller {known:?} is not one of the container's cgroups"
                ),
            });
        }
    }
    // Co-mounted controllers share a directory: a sub-cgroup named for
    // any of them applies to the directory.
    let mut v1: Vec<(PathBuf, PathBuf, bool)> = Vec::new();
    for (key, dir) in cg.v1_paths() {
        let specific = subs.iter().find(|s| s.controllers.iter().any(|c| c == key));
        let (t, is_specific) = match specific.or_else(|| for_key("")) {
            Some(s) => (dir.join(&s.path), specific.is_some()),
            None => (dir.clone(), false),
        };
        match v1.iter_mut().find(|(d, _, _)| d == dir) {
            Some(e) if is_specific && !e.2 => *e = (dir.clone(), t, true),
            Some(_) => {}
            None => v1.push((dir.clone(), t, is_specific)),
        }
    }
    targets.extend(v1.into_iter().map(|(_, t, _)| t));
    for t in targets {
        let procs = t.join("cgroup.procs");
        std::fs::write(&procs, pid.to_string()).map_err(|e| Error::Invalid {
            id: id.into(),
            message: format!(
                "exec --cgroup: cannot join {}: {e} (the sub-cgroup must exist)",
                t.display()
            ),
        })?;
    }
    Ok(())
}
