//! The runtime's forked child on its way to becoming the container process
//! (runtime.md "Lifecycle" steps 2-4, config-linux.md "Namespaces").
//!
//! Everything here runs in a freshly forked, single-threaded process. Errors
//! are sent to the parent over the setup channel; the child then exits.

use crate::config::{ContainerConfig, NsKind, ProcessConfig};
use crate::sync::{Channel, Msg};
use crate::{console, devices, hooks, mounts, process};
use std::os::fd::{AsFd, AsRawFd, OwnedFd};
use std::path::PathBuf;

/// What the child needs besides the config.
pub struct ChildArgs<'a> {
    pub chan: Channel,
    /// Namespaces to join by path, user first.
    pub joins: Vec<(NsKind, OwnedFd)>,
    /// Namespaces to create by unshare in the child (intermediate path).
    pub unshare_flags: libc::c_int,
    /// Fork once more so the program runs in the joined/new pid namespace.
    pub fork_for_pid: bool,
    /// The intermediate path creates a user namespace: ask for id maps.
    pub ask_maps: bool,
    pub console_socket: Option<OwnedFd>,
    pub seccomp: Option<&'a berth_seccomp::Filter>,
    pub preserve_fds: u32,
    pub new_keyring: bool,
    /// The container state JSON the parent sent with the last `Go`.
    pub state_json: String,
    /// Per mount: the prepared tree of an idmapped mount.
    pub idmaps: Vec<Option<OwnedFd>>,
    /// The trees come over the channel before the first `Go` instead
    /// (`create` made them with this process's own user namespace).
    pub recv_idmaps: bool,
    /// The container's cgroup, whose v1 hierarchies the child joins itself
    /// first thing (`Cgroup::open_self_join`; cloned into its cgroup2
    /// directory); `None`: the parent placed it.
    pub cgroup_join: Option<berth_cgroups::SelfJoin>,
}

/// Forks the child with `flags` (`CLONE_NEW*`), into the cgroup2
/// directory of `join` when it has one (`CLONE_INTO_CGROUP`). The flag:
/// whether the child started there; otherwise the parent moves it
/// (`SelfJoin::add_unified`).
pub(crate) fn fork_child(
    flags: libc::c_int,
    join: Option<&berth_cgroups::SelfJoin>,
) -> std::io::Result<(berth_sys::process::Forked, bool)> {
    if let Some(dir) = join.and_then(|j| j.unified_dir()) {
        if let Some(f) = berth_sys::process::clone_fork_into_cgroup(flags, dir)? {
            return Ok((f, true));
        }
    }
    berth_sys::process::clone_fork(flags).map(|f| (f, false))
}

/// Why the child failed, as text for the parent.
type Res<T> = Result<T, String>;

fn err<E: std::error::Error>(ctx: &'static str) -> impl FnOnce(E) -> String {
    move |e| format!("{ctx}: {}", chain(&e))
}

/// An error with all its causes, on one line (for the parent to print).
pub(crate) fn chain(e: &dyn std::error::Error) -> String {
    let mut s = e.to_string();
    let mut cur = e.source();
    while let Some(c) = cur {
        let cs = c.to_string();
        if !s.contains(&cs) {
            s.push_str(": ");
            s.push_str(&cs);
        }
        cur = c.source();
    }
    s
}

/// Common first stage: join namespaces, unshare, fork into the pid
/// namespace. Returns in the process that goes on (the container process).
fn wait_go(a: &mut ChildArgs<'_>) -> Res<()> {
    match a.chan.recv().map_err(err("waiting for the runtime"))? {
        Msg::Go(state) => {
            a.state_json = state;
            Ok(())
        }
        m => Err(format!("unexpected setup message {m:?}")),
    }
}

fn enter_namespaces(a: &mut ChildArgs<'_>, cfg: Option<&ContainerConfig>) -> Res<()> {
    // Into the cgroup before anything else (and before the fork into the
    // pid namespace, whose child inherits it), while single-threaded.
    if let Some(j) = a.cgroup_join.take() {
        j.join_v1()
            .map_err(|(path, e)| format!("cannot join the cgroup ({}): {e}", path.display()))?;
    }
    if let (true, Some(cfg)) = (a.recv_idmaps, cfg) {
        // Nothing was read from the channel yet: the first bytes are these.
        a.idmaps = crate::idmap::recv_trees(cfg, a.chan.as_fd())?;
    }
    wait_go(a)?;
    for (kind, fd) in &a.joins {
        let flag = nix::sched::CloneFlags::from_bits_retain(kind.clone_flag());
        nix::sched::setns(fd, flag)
            .map_err(|e| format!("cannot join the {} namespace: {e}", kind.proc_name()))?;
    }
    if a.unshare_flags != 0 {
        nix::sched::unshare(nix::sched::CloneFlags::from_bits_retain(a.unshare_flags))
            .map_err(err("cannot create namespaces"))?;
    }
    if a.ask_maps {
        a.chan
            .send(&Msg::MapsNeeded)
            .map_err(err("setup channel"))?;
        wait_go(a)?;
    }
    if a.fork_for_pid {
        match berth_sys::process::fork().map_err(err("fork into the pid namespace"))? {
            berth_sys::process::Forked::Parent(child) => {
                let _ = a.chan.send(&Msg::Pid(child));
                berth_sys::process::exit_now(0);
            }
            // The parent answers our pid with the final state.
            berth_sys::process::Forked::Child => wait_go(a)?,
        }
    }
    Ok(())
}

/// The child of `create`: never returns.
pub fn container_init(
    cfg: &ContainerConfig,
    mut a: ChildArgs<'_>,
    fifo: Option<OwnedFd>,
    no_pivot: bool,
) -> ! {
    let res = init_steps(cfg, &mut a, fifo, no_pivot);
    fail(&mut a.chan, res)
}

/// The child of `exec`: never returns. `linux32`: the container runs
/// with personality LINUX32, so the exec'd process does too (as in runc).
/// `mem`: the container's `linux.memoryPolicy`, which the exec'd process
/// gets as well (config-linux.md "Memory policy" sets it for the container).
pub fn exec_init(
    p: &ProcessConfig,
    mut a: ChildArgs<'_>,
    userns: bool,
    linux32: bool,
    mem: Option<&crate::sched::MemPolicy>,
) -> ! {
    let res = (|| {
        if linux32 {
            set_linux32()?;
        }
        enter_namespaces(&mut a, None)?;
        if userns {
            // As runc's nsexec: having joined the container's user
            // namespace, become its root (when 0 is mapped there), so what
            // the setup makes, the pty first, belongs to an id the
            // container knows and may chown (the host's root is unmapped).
            let _ = nix::unistd::setresgid(0.into(), 0.into(), 0.into());
            let _ = nix::unistd::setresuid(0.into(), 0.into(), 0.into());
        }
        finish_process(p, &mut a, userns, None, mem)
    })();
    fail(&mut a.chan, res)
}

fn fail(chan: &mut Channel, res: Res<std::convert::Infallible>) -> ! {
    let Err(e) = res;
    let _ = chan.send(&Msg::Error(e));
    berth_sys::process::exit_now(1)
}

fn init_steps(
    cfg: &ContainerConfig,
    a: &mut ChildArgs<'_>,
    fifo: Option<OwnedFd>,
    no_pivot: bool,
) -> Res<std::convert::Infallible> {
    enter_namespaces(a, Some(cfg))?;
    let userns = cfg.namespaces.has(NsKind::User);
    if cfg.namespaces.creates(NsKind::User) {
        nix::unistd::setresgid(0.into(), 0.into(), 0.into())
            .map_err(err("setgid 0 in the user namespace"))?;
        nix::unistd::setresuid(0.into(), 0.into(), 0.into())
            .map_err(err("setuid 0 in the user namespace"))?;
    } else if userns {
        // A joined user namespace (a pod's): its root, where it maps one,
        // as in a new one, so that what the setup creates in the rootfs has
        // an owner there (an unmapped caller gets EOVERFLOW). Without a
        // root in the namespace the ids stay as they are.
        if nix::unistd::setresgid(0.into(), 0.into(), 0.into()).is_ok() {
            let _ = nix::unistd::setresuid(0.into(), 0.into(), 0.into());
        }
    }
    // We are in the cgroup (joined above or placed by the parent); only
    // now may the cgroup namespace be created, rooted there.
    if cfg.namespaces.creates(NsKind::Cgroup) {
        crate::cgroup_mount::remember_own_cgroups();
        nix::sched::unshare(nix::sched::CloneFlags::CLONE_NEWCGROUP)
            .map_err(err("cannot create the cgroup namespace"))?;
    }
    if cfg.namespaces.creates(NsKind::Time) {
        nix::sched::unshare(nix::sched::CloneFlags::from_bits_retain(
            libc::CLONE_NEWTIME,
        ))
        .map_err(err("cannot create the time namespace"))?;
        let text: String = cfg
            .time_offsets
            .iter()
            .map(|(c, s, n)| format!("{c} {s} {n}\n"))
            .collect();
        if !text.is_empty() {
            // After the switch to root of a new user namespace the process
            // is not dumpable, so its /proc files belong to the host's root
            // and the write is refused: be dumpable just for it (runc's
            // nsexec does the same for its id maps).
            let was = nix::sys::prctl::get_dumpable().unwrap_or(true);
            if !was {
                nix::sys::prctl::set_dumpable(true).map_err(err("set dumpable"))?;
            }
            let res = std::fs::write("/proc/self/timens_offsets", text)
                .map_err(err("cannot write time offsets"));
            if !was {
                nix::sys::prctl::set_dumpable(false).map_err(err("clear dumpable"))?;
            }
            res?;
        }
    }
    if a.new_keyring {
        // A fresh session keyring, so the container cannot see the host's
        // keys; EPERM/ENOSYS (keyctl filtered) is not fatal, as in runc.
        let _ = berth_sys::process::join_session_keyring();
    }
    if let Some(h) = &cfg.hostname {
        nix::unistd::sethostname(h).map_err(err("cannot set hostname"))?;
    }
    if let Some(d) = &cfg.domainname {
        rustix::system::setdomainname(d.as_bytes()).map_err(err("cannot set domainname"))?;
    }
    let rootfs = mounts::prepare_rootfs(cfg).map_err(|e| chain(&e))?;
    mounts::mount_all(cfg, rootfs.as_fd(), &a.idmaps).map_err(|e| chain(&e))?;
    a.idmaps.clear();
    devices::create_devices(cfg, rootfs.as_fd()).map_err(|e| chain(&e))?;
    mounts::remount_dev_readonly(cfg, rootfs.as_fd()).map_err(|e| chain(&e))?;
    // As runc does, create a missing process.cwd inside the rootfs (before
    // the user switch); a failure shows up as the chdir error later.
    let _ = crate::rootfs_path::mkdir_all(rootfs.as_fd(), &cfg.process.cwd, 0o755);
    if !cfg.hooks.prestart.is_empty() || !cfg.hooks.create_runtime.is_empty() {
        a.chan.send(&Msg::Hooks).map_err(err("setup channel"))?;
        match a.chan.recv().map_err(err("waiting for hooks"))? {
            Msg::HooksDone => {}
            m => return Err(format!("unexpected setup message {m:?}")),
        }
    }
    if !cfg.hooks.create_container.is_empty() {
        let state = a.state_json.as_bytes().to_vec();
        hooks::run_container_hooks(
            "createContainer",
            &cfg.hooks.create_container,
            &state,
            &cfg.process.env,
            Some(&cfg.rootfs),
        )
        .map_err(|e| chain(&e))?;
    }
    drop(rootfs);
    if no_pivot {
        mounts::move_root(&cfg.rootfs).map_err(|e| chain(&e))?;
    } else if !cfg.namespaces.has(NsKind::Mount) {
        // pivot_root would move the root of every process sharing the
        // caller's mount namespace: chroot instead (runc does the same).
        mounts::chroot_root(&cfg.rootfs).map_err(|e| chain(&e))?;
    } else {
        mounts::pivot_root(&cfg.rootfs).map_err(|e| chain(&e))?;
    }
    for (k, v) in &cfg.sysctl {
        let path = PathBuf::from("/proc/sys").join(k.replace('.', "/"));
        std::fs::write(&path, v).map_err(|e| format!("cannot set sysctl {k}={v}: {e}"))?;
    }
    mounts::mask_and_protect(cfg).map_err(|e| chain(&e))?;
    mounts::finish_root(cfg).map_err(|e| chain(&e))?;
    if cfg.personality_linux32 {
        set_linux32()?;
    }
    finish_process(
        &cfg.process,
        a,
        userns,
        Some((fifo, cfg)),
        cfg.memory_policy.as_ref(),
    )
}

/// config-linux.md "Personality": domain LINUX32.
fn set_linux32() -> Res<()> {
    nix::sys::personality::set(nix::sys::personality::Persona::empty())
        .and_then(|_| nix::sys::personality::set(linux32()))
        .map(|_| ())
        .map_err(err("cannot set personality LINUX32"))
}

/// Does process `pid` run with personality LINUX32?
pub fn runs_linux32(pid: i32) -> bool {
    std::fs::read_to_string(format!("/proc/{pid}/personality"))
        .ok()
        .and_then(|s| u64::from_str_radix(s.trim(), 16).ok())
        .is_some_and(|v| v & 0xff == linux32().bits() as u64)
}

fn linux32() -> nix::sys::personality::Persona {
    // PER_LINUX32 is 0x0008.
    nix::sys::personality::Persona::from_bits_retain(0x0008)
}

/// The steps shared by init and exec: terminal, limits, privileges, then
/// (for init) wait for `start`, and exec.
///
/// The seccomp filter comes last, so that a profile that allows only what
/// the program needs is enough: a filter without a notify listener is
/// loaded right before execve, which is the only syscall made under it.
/// A filter with a listener is loaded before `create` returns, so that the
/// agent has its descriptor by then (runc's order); the parent copies the
/// descriptor itself, and what follows under the filter is reading its
/// go-ahead and what waiting for `start` takes (the exec fifo,
/// startContainer hooks), which the agent answers. Without no_new_privs,
/// loading needs CAP_SYS_ADMIN: the identity switch keeps it in the
/// permitted set only, and execve drops it.
fn finish_process(
    p: &ProcessConfig,
    a: &mut ChildArgs<'_>,
    userns: bool,
    init: Option<(Option<OwnedFd>, &ContainerConfig)>,
    mem: Option<&crate::sched::MemPolicy>,
) -> Res<std::convert::Infallible> {
    if p.terminal {
        let sock = a
            .console_socket
            .take()
            .ok_or("process.terminal is set but there is no console socket")?;
        console::setup_terminal(sock.as_fd(), p.console_size, p.uid).map_err(|e| chain(&e))?;
    }
    process::apply_rlimits(p).map_err(|e| chain(&e))?;
    // Before the identity switch: a real-time policy or class needs
    // CAP_SYS_NICE / CAP_SYS_ADMIN (runc's order).
    crate::sched::apply(p.scheduler.as_ref(), p.io_priority.as_ref(), mem)?;
    if let Some(v) = p.oom_score_adj {
        process::set_oom_score_adj(v).map_err(|e| chain(&e))?;
    }
    process::set_lsm_labels(p).map_err(|e| chain(&e))?;
    if p.no_new_privileges {
        process::set_no_new_privs().map_err(|e| chain(&e))?;
    }
    let needs_admin = a.seccomp.is_some() && !p.no_new_privileges;
    // runc (setupUser): a rootless runtime sets no supplementary groups
    // (the process keeps what the user's were, as mapped) and refuses to
    // be asked for some.
    let rootless = crate::rootless::euid_rootless();
    if rootless && !p.additional_gids.is_empty() {
        return Err(
            "cannot set process.user.additionalGids in a rootless container: an unprivileged \
                    user may not set supplementary groups; remove them"
                .into(),
        );
    }
    let setgroups_allowed = !rootless && (!userns || setgroups_allowed());
    let cwd_done = process::enter_cwd_early(p).map_err(|e| chain(&e))?;
    process::finalize_identity(p, setgroups_allowed, needs_admin).map_err(|e| chain(&e))?;
    if needs_admin && !process::has_admin() {
        return Err(
            "loading the seccomp filter without process.noNewPrivileges needs \
                    CAP_SYS_ADMIN, which the runtime does not have here; set \
                    process.noNewPrivileges to true"
                .into(),
        );
    }
    let exec = process::prepare_exec(p, !cwd_done).map_err(|e| chain(&e))?;
    // Nothing but stdio and the preserved descriptors reaches the program.
    let keep = 3 + a.preserve_fds;
    berth_sys::process::cloexec_from(keep).map_err(err("mark descriptors close-on-exec"))?;
    for fd in 3..keep {
        berth_sys::process::clear_cloexec(fd as i32).map_err(err("preserve-fds"))?;
    }
    // The runtime may have blocked signals (foreground run) and Rust
    // ignores SIGPIPE: give the program the defaults it expects.
    nix::sys::signal::sigprocmask(
        nix::sys::signal::SigmaskHow::SIG_SETMASK,
        Some(&nix::sys::signal::SigSet::empty()),
        None,
    )
    .map_err(err("reset signal mask"))?;
    reset_sigpipe();
    let notify_filter = a.seccomp.filter(|f| f.uses_notify());
    // Held (close-on-exec) until the program replaces us.
    let mut _notify_fd = None;
    match notify_filter {
        Some(f) => {
            // seccomp(2) puts the listener on the lowest free descriptor.
            let next = rustix::io::fcntl_dupfd_cloexec(a.chan.as_fd(), 0)
                .map_err(|e| format!("find a free descriptor: {e}"))?;
            let n = next.as_raw_fd();
            drop(next);
            a.chan
                .send(&Msg::SeccompReady(n))
                .map_err(err("setup channel"))?;
            let raised = needs_admin && process::raise_admin().map_err(|e| chain(&e))?;
            _notify_fd = f.load().map_err(|e| chain(&e))?;
            // Our copy must stay open until the parent has its own: an exec
            // would close it, and with no listener left the notified
            // syscalls fail with ENOSYS.
            match a.chan.recv() {
                Ok(Msg::SeccompDone) => {}
                Ok(m) => return Err(format!("unexpected setup message {m:?}")),
                Err(e) => return Err(format!("waiting for the runtime: {e}")),
            }
            if raised {
                // Under the filter now: a profile may deny capset; execve
                // drops the capability either way.
                process::lower_admin();
            }
        }
        None => a.chan.send(&Msg::Ready).map_err(err("setup channel"))?,
    }
    // The fifo's write end stays open (close-on-exec) until the program
    // replaces us: `start` reads to end of file, so it returns once the
    // startContainer hooks ran and the program is executing, and its
    // poststart hooks follow that (runtime.md "start" steps 3-4).
    let mut _open_until_exec = None;
    if let Some((fifo, cfg)) = init {
        match fifo {
            // runtime.md "start": block here until `start` opens the fifo.
            Some(fifo) => {
                let path = format!("/proc/self/fd/{}", fifo.as_raw_fd());
                let mut w = std::fs::OpenOptions::new()
                    .write(true)
                    .open(&path)
                    .map_err(err("cannot open the exec fifo"))?;
                use std::io::Write;
                w.write_all(b"0")
                    .map_err(err("cannot write the exec fifo"))?;
                _open_until_exec = Some(w);
                drop(fifo);
            }
            // `run`: the runtime that created us starts us at once, over
            // the setup channel; if it dies first the channel closes and
            // we exit instead of waiting forever.
            None => match a.chan.recv() {
                Ok(Msg::Start) => {}
                Ok(m) => return Err(format!("unexpected setup message {m:?} (wanted Start)")),
                Err(e) => return Err(format!("waiting for start: {e}")),
            },
        }
        if !cfg.hooks.start_container.is_empty() {
            let state = crate::container::with_status(&a.state_json, "running");
            hooks::run_container_hooks(
                "startContainer",
                &cfg.hooks.start_container,
                &state,
                &cfg.process.env,
                None,
            )
            .map_err(|e| chain(&e))?;
        }
    }
    if notify_filter.is_none() {
        if let Some(f) = a.seccomp {
            if needs_admin {
                process::raise_admin().map_err(|e| chain(&e))?;
            }
            f.load().map_err(|e| chain(&e))?;
        }
    }
    Err(process::exec(&exec).to_string())
}

fn setgroups_allowed() -> bool {
    std::fs::read_to_string("/proc/self/setgroups")
        .map(|s| s.trim() != "deny")
        .unwrap_or(true)
}

fn reset_sigpipe() {
    berth_sys::process::reset_signal_to_default(nix::sys::signal::Signal::SIGPIPE);
}
