//! One function per runc command; each turns flags into a library call.

use super::args::{Cli, Cmd, CreateArgs, ExecArgs, Global, RootDefault, UpdateArgs};
use anyhow::{anyhow, bail, Context, Result};
use berth_runtime::{container, foreground, manage, CreateOptions, StateRoot};
use std::io::Write;
use std::time::Duration;

pub fn dispatch(cli: Cli) -> Result<i32> {
    let g = &cli.global;
    if g.systemd_cgroup {
        bail!("--systemd-cgroup is not supported by berth yet: use the cgroupfs manager (podman: cgroup_manager = \"cgroupfs\")");
    }
    let rootless = match g.rootless.as_deref() {
        None | Some("auto") => None,
        Some("true") => Some(true),
        Some("false") => Some(false),
        Some(v) => bail!("invalid --rootless value {v:?}: use true, false or auto"),
    };
    if g.criu.is_some() {
        bail!("--criu is not supported: berth does not checkpoint/restore yet");
    }
    if !matches!(cli.cmd, Cmd::Spec { .. } | Cmd::Features) {
        prepare_root(g)?;
    }
    let root = StateRoot::new(&g.root);
    match cli.cmd {
        Cmd::Create(c) => {
            container::create(&root, &create_options(&c, false, rootless))?;
            Ok(0)
        }
        Cmd::Start { id } => {
            berth_runtime::start(&root, &id)?;
            Ok(0)
        }
        Cmd::State { id } => {
            let st = berth_runtime::state(&root, &id)?;
            print_out(&serde_json::to_string_pretty(&st)?);
            Ok(0)
        }
        Cmd::Kill { id, signal, all } => {
            // Signal 0 checks the container is running (runc, kill(2)).
            let zero = signal.parse::<i32>() == Ok(0);
            let sig = zero
                .then_some(0)
                .or_else(|| container::parse_signal(&signal));
            let sig = sig.ok_or_else(|| {
                anyhow!("invalid signal {signal:?}: use a name like SIGTERM or KILL, or a number")
            })?;
            berth_runtime::kill(&root, &id, sig, all)?;
            Ok(0)
        }
        Cmd::Delete { id, force } => {
            berth_runtime::delete(&root, &id, force)?;
            Ok(0)
        }
        Cmd::Run {
            create,
            detach,
            keep,
        } => run(&root, &create, detach, keep, rootless),
        Cmd::List { format, quiet } => list(&root, &format, quiet),
        Cmd::Spec {
            bundle,
            rootless,
            hardened,
        } => {
            let path = bundle.join("config.json");
            if path.exists() {
                bail!("{} exists: remove it first", path.display());
            }
            let mut spec = berth_runtime::spec::default_spec(rootless);
            if hardened {
                let mut s: oci_spec::runtime::Spec = serde_json::from_value(spec)?;
                let opts = berth_seccomp::defaults::HardenOptions {
                    no_new_privileges: true,
                    ..Default::default()
                };
                berth_seccomp::defaults::harden(&mut s, &opts);
                spec = serde_json::to_value(&s)?;
            }
            std::fs::write(&path, serde_json::to_string_pretty(&spec)? + "\n")
                .with_context(|| format!("cannot write {}", path.display()))?;
            Ok(0)
        }
        Cmd::Features => {
            print_out(&serde_json::to_string_pretty(
                &berth_runtime::features::features(),
            )?);
            Ok(0)
        }
        Cmd::Exec(e) => exec(&root, e),
        Cmd::Ps {
            id,
            format,
            ps_args,
        } => ps(&root, &id, &format, &ps_args),
        Cmd::Pause { id } => {
            manage::pause(&root, &id)?;
            Ok(0)
        }
        Cmd::Resume { id } => {
            manage::resume(&root, &id)?;
            Ok(0)
        }
        Cmd::Update(u) => {
            let res = update_resources(&u)?;
            manage::update(&root, &u.id, &res)?;
            Ok(0)
        }
        Cmd::Events {
            id,
            stats,
            interval,
        } => events(&root, &id, stats, &interval),
        Cmd::Checkpoint | Cmd::Restore => {
            bail!("checkpoint/restore is not supported by berth yet (no working criu integration)")
        }
    }
}

/// The default state root of a caller without root: runc makes
/// `$XDG_RUNTIME_DIR/runc` (0700 with the sticky bit, which keeps the XDG
/// cleanup away from it); without XDG_RUNTIME_DIR the system root is
/// refused here, naming the fix, instead of failing later on a state file.
fn prepare_root(g: &Global) -> Result<()> {
    use std::os::unix::fs::{DirBuilderExt, PermissionsExt};
    match g.root_default {
        RootDefault::Given => Ok(()),
        RootDefault::Xdg => {
            std::fs::DirBuilder::new()
                .recursive(true)
                .mode(0o700)
                .create(&g.root)
                .and_then(|()| {
                    std::fs::set_permissions(&g.root, std::fs::Permissions::from_mode(0o1700))
                })
                .with_context(|| {
                    format!(
                        "cannot make the state root {}: the path in $XDG_RUNTIME_DIR must be writable by the user (or pass --root DIR)",
                        g.root.display()
                    )
                })
        }
        RootDefault::System => {
            if !berth_runtime::rootless::euid_rootless() || writable_or_creatable(&g.root) {
                return Ok(());
            }
            let uid = rustix::process::geteuid().as_raw();
            bail!(
                "the state root {} is not writable by uid {uid}: set XDG_RUNTIME_DIR to a directory of the user's (e.g. /run/user/{uid}; the state goes to $XDG_RUNTIME_DIR/berth-runtime) or pass --root DIR",
                g.root.display()
            )
        }
    }
}

/// May this process write `dir`, or create it in its nearest existing
/// ancestor?
fn writable_or_creatable(dir: &std::path::Path) -> bool {
    let mut cur = Some(dir);
    while let Some(p) = cur {
        if p.exists() {
            return rustix::fs::access(p, rustix::fs::Access::WRITE_OK).is_ok();
        }
        cur = p.parent();
    }
    false
}

/// Print a line to stdout; a reader that went away (EPIPE) is not an error
/// worth a panic.
fn print_out(text: &str) {
    let mut out = std::io::stdout().lock();
    let _ = writeln!(out, "{text}");
}

/// CVE-2019-5736: run from a sealed copy of ourselves before touching a
/// container.
fn create_options(c: &CreateArgs, internal_console: bool, rootless: Option<bool>) -> CreateOptions {
    CreateOptions {
        rootless,
        id: c.id.clone(),
        bundle: c.bundle.clone(),
        pid_file: c.pid_file.clone(),
        console_socket: c.console_socket.clone(),
        no_pivot: c.no_pivot,
        no_new_keyring: c.no_new_keyring,
        preserve_fds: c.preserve_fds,
        internal_console,
        start_now: false,
        idmap_userns: None,
    }
}

fn run(
    root: &StateRoot,
    c: &CreateArgs,
    detach: bool,
    keep: bool,
    rootless: Option<bool>,
) -> Result<i32> {
    if !detach {
        foreground::block_signals()?;
    }
    let mut spawned = container::create(
        root,
        &CreateOptions {
            start_now: true,
            ..create_options(c, !detach && c.console_socket.is_none(), rootless)
        },
    )?;
    if let Err(e) = berth_runtime::start_spawned(root, &c.id, &mut spawned) {
        let _ = berth_runtime::delete(root, &c.id, true);
        return Err(e.into());
    }
    if detach {
        return Ok(0);
    }
    let code = foreground::wait(spawned.pid, spawned.console)?;
    if !keep {
        berth_runtime::delete(root, &c.id, true)?;
    }
    Ok(code)
}

fn list(root: &StateRoot, format: &str, quiet: bool) -> Result<i32> {
    let entries = berth_runtime::list(root)?;
    let mut out = std::io::stdout().lock();
    if quiet {
        for e in &entries {
            writeln!(out, "{}", e.id)?;
        }
    } else if format == "json" {
        writeln!(out, "{}", serde_json::to_string(&entries)?)?;
    } else {
        writeln!(
            out,
            "{:<20} {:<8} {:<10} {:<40} {:<31} OWNER",
            "ID", "PID", "STATUS", "BUNDLE", "CREATED"
        )?;
        for e in &entries {
            writeln!(
                out,
                "{:<20} {:<8} {:<10} {:<40} {:<31} {}",
                e.id,
                e.pid,
                e.status,
                e.bundle.display(),
                e.created,
                e.owner
            )?;
        }
    }
    Ok(0)
}

fn exec(root: &StateRoot, e: ExecArgs) -> Result<i32> {
    let sub_cgroups = e
        .cgroup
        .iter()
        .map(|c| berth_runtime::exec::SubCgroup::parse(c))
        .collect::<std::result::Result<Vec<_>, _>>()
        .map_err(anyhow::Error::msg)?;
    let process = match &e.process {
        Some(path) => {
            let text = std::fs::read_to_string(path)
                .with_context(|| format!("cannot read {}", path.display()))?;
            let p: oci_spec::runtime::Process = berth_runtime::config::parse_process(&text)
                .with_context(|| format!("invalid process file {}", path.display()))?;
            p
        }
        None => exec_process_from_flags(root, &e)?,
    };
    let p = berth_runtime::config::process_config(&process)
        .with_context(|| format!("invalid process for exec in container {:?}", e.id))?;
    if !e.detach {
        foreground::block_signals()?;
    }
    let opts = berth_runtime::ExecOptions {
        id: e.id.clone(),
        pid_file: e.pid_file.clone(),
        console_socket: e.console_socket.clone(),
        preserve_fds: e.preserve_fds,
        internal_console: !e.detach && e.console_socket.is_none(),
        ignore_paused: e.ignore_paused,
        sub_cgroups,
    };
    let spawned = berth_runtime::exec(root, &opts, &p)?;
    if e.detach {
        return Ok(0);
    }
    Ok(foreground::wait(spawned.pid, spawned.console)?)
}

/// The container's own process with exec's flags applied (runc's rules:
/// env is added to, caps are added to, user/cwd/terminal replace).
fn exec_process_from_flags(root: &StateRoot, e: &ExecArgs) -> Result<oci_spec::runtime::Process> {
    if e.command.is_empty() {
        bail!("exec needs a command (or --process FILE)");
    }
    let mut p = berth_runtime::exec::base_process(root, &e.id)?;
    p.set_args(Some(e.command.clone()));
    p.set_terminal(Some(e.tty));
    p.set_console_size(None);
    // runc: --env K=V replaces K of process.env (the last one wins).
    let mut env = p.env().clone().unwrap_or_default();
    for kv in &e.env {
        let key = kv.split_once('=').map_or(kv.as_str(), |(k, _)| k);
        env.retain(|old| old.split_once('=').map_or(old.as_str(), |(k, _)| k) != key);
        env.push(kv.clone());
    }
    p.set_env(Some(env));
    if let Some(cwd) = &e.cwd {
        p.set_cwd(cwd.clone());
    }
    if let Some(u) = &e.user {
        let (uid, gid) = match u.split_once(':') {
            Some((a, b)) => (a, Some(b)),
            None => (u.as_str(), None),
        };
        let mut user = p.user().clone();
        user.set_uid(
            uid.parse()
                .with_context(|| format!("--user {u:?}: uid must be a number"))?,
        );
        if let Some(g) = gid {
            user.set_gid(
                g.parse()
                    .with_context(|| format!("--user {u:?}: gid must be a number"))?,
            );
        }
        p.set_user(user);
    }
    if !e.additional_gids.is_empty() {
        let mut user = p.user().clone();
        user.set_additional_gids(Some(e.additional_gids.clone()));
        p.set_user(user);
    }
    if !e.cap.is_empty() {
        let mut caps = p.capabilities().clone().unwrap_or_default();
        for c in &e.cap {
            let cap: oci_spec::runtime::Capability = c
                .trim_start_matches("CAP_")
                .parse()
                .map_err(|_| anyhow!("unknown capability {c:?}"))?;
            let add = |s: &Option<oci_spec::runtime::Capabilities>| {
                let mut s = s.clone().unwrap_or_default();
                s.insert(cap);
                Some(s)
            };
            caps.set_bounding(add(caps.bounding()));
            caps.set_effective(add(caps.effective()));
            caps.set_permitted(add(caps.permitted()));
        }
        p.set_capabilities(Some(caps));
    }
    if e.no_new_privs {
        p.set_no_new_privileges(Some(true));
    }
    if let Some(a) = &e.apparmor {
        p.set_apparmor_profile(Some(a.clone()));
    }
    if let Some(l) = &e.process_label {
        p.set_selinux_label(Some(l.clone()));
    }
    Ok(p)
}

fn ps(root: &StateRoot, id: &str, format: &str, ps_args: &[String]) -> Result<i32> {
    let pids = manage::pids(root, id)?;
    if format == "json" {
        print_out(&serde_json::to_string(&pids)?);
        return Ok(0);
    }
    let args: Vec<String> = if ps_args.is_empty() {
        vec!["-ef".into()]
    } else {
        ps_args.to_vec()
    };
    let out = std::process::Command::new("ps")
        .args(&args)
        .output()
        .context("cannot run ps(1)")?;
    if !out.status.success() {
        bail!(
            "ps {} failed: {}",
            args.join(" "),
            String::from_utf8_lossy(&out.stderr).trim()
        );
    }
    let text = String::from_utf8_lossy(&out.stdout);
    let mut lines = text.lines();
    let header = lines.next().unwrap_or_default();
    let pid_col = header
        .split_whitespace()
        .position(|c| c == "PID")
        .ok_or_else(|| anyhow!("ps output has no PID column"))?;
    print_out(header);
    for l in lines {
        if let Some(p) = l
            .split_whitespace()
            .nth(pid_col)
            .and_then(|p| p.parse::<i32>().ok())
        {
            if pids.contains(&p) {
                print_out(l);
            }
        }
    }
    Ok(0)
}

/// A size like 512, 64k, 128m or 1g (bytes); -1 for unlimited (runc's
/// `update` vocabulary).
pub fn parse_size(s: &str) -> Result<i64> {
    if s.trim() == "-1" {
        return Ok(-1);
    }
    Ok(berth_engine::opts::parse_size("size", s)?)
}

fn update_resources(u: &UpdateArgs) -> Result<oci_spec::runtime::LinuxResources> {
    use oci_spec::runtime::*;
    let mut res: LinuxResources = match &u.resources {
        Some(p) if p.as_os_str() == "-" => {
            serde_json::from_reader(std::io::stdin()).context("invalid resources JSON on stdin")?
        }
        Some(p) => {
            let text = std::fs::read_to_string(p)
                .with_context(|| format!("cannot read {}", p.display()))?;
            serde_json::from_str(&text)
                .with_context(|| format!("invalid resources JSON in {}", p.display()))?
        }
        None => LinuxResources::default(),
    };
    if u.memory.is_some() || u.memory_reservation.is_some() || u.memory_swap.is_some() {
        let mut m = (*res.memory()).unwrap_or_default();
        if let Some(v) = &u.memory {
            m.set_limit(Some(parse_size(v)?));
        }
        if let Some(v) = &u.memory_reservation {
            m.set_reservation(Some(parse_size(v)?));
        }
        if let Some(v) = &u.memory_swap {
            m.set_swap(Some(parse_size(v)?));
        }
        res.set_memory(Some(m));
    }
    if u.cpu_period.is_some()
        || u.cpu_quota.is_some()
        || u.cpu_share.is_some()
        || u.cpu_rt_period.is_some()
        || u.cpu_rt_runtime.is_some()
        || u.cpuset_cpus.is_some()
        || u.cpuset_mems.is_some()
    {
        let mut c = res.cpu().clone().unwrap_or_default();
        if let Some(v) = u.cpu_period {
            c.set_period(Some(v));
        }
        if let Some(v) = u.cpu_quota {
            c.set_quota(Some(v));
        }
        if let Some(v) = u.cpu_share {
            c.set_shares(Some(v));
        }
        if let Some(v) = u.cpu_rt_period {
            c.set_realtime_period(Some(v));
        }
        if let Some(v) = u.cpu_rt_runtime {
            c.set_realtime_runtime(Some(v));
        }
        if let Some(v) = &u.cpuset_cpus {
            c.set_cpus(Some(v.clone()));
        }
        if let Some(v) = &u.cpuset_mems {
            c.set_mems(Some(v.clone()));
        }
        res.set_cpu(Some(c));
    }
    if let Some(v) = u.pids_limit {
        let mut p = LinuxPids::default();
        p.set_limit(v);
        res.set_pids(Some(p));
    }
    if let Some(w) = u.blkio_weight {
        let mut b = res.block_io().clone().unwrap_or_default();
        b.set_weight(Some(w));
        res.set_block_io(Some(b));
    }
    Ok(res)
}

/// Parse a Go-style duration like 5s, 500ms, 1m.
pub fn parse_duration(s: &str) -> Result<Duration> {
    let t = s.trim();
    let (num, unit) = t.split_at(t.find(|c: char| c.is_ascii_alphabetic()).unwrap_or(t.len()));
    let n: f64 = num
        .parse()
        .map_err(|_| anyhow!("invalid duration {s:?}: use e.g. 5s or 500ms"))?;
    let secs = match unit {
        "ms" => n / 1000.0,
        "s" | "" => n,
        "m" => n * 60.0,
        "h" => n * 3600.0,
        _ => bail!("invalid duration unit in {s:?}: use ms, s, m or h"),
    };
    if secs.is_nan() || secs <= 0.0 {
        bail!("duration {s:?} must be positive");
    }
    Ok(Duration::from_secs_f64(secs))
}

fn events(root: &StateRoot, id: &str, stats: bool, interval: &str) -> Result<i32> {
    if stats {
        let s = manage::stats(root, id)?;
        let ev = manage::Event {
            kind: "stats",
            id: id.into(),
            data: Some(s),
        };
        print_out(&serde_json::to_string(&ev)?);
        return Ok(0);
    }
    let interval = parse_duration(interval)?;
    manage::events(root, id, interval, |ev| {
        if let Ok(line) = serde_json::to_string(ev) {
            let mut out = std::io::stdout().lock();
            let _ = writeln!(out, "{line}");
            let _ = out.flush();
        }
    })?;
    Ok(0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes() {
        assert_eq!(parse_size("512").expect("n"), 512);
        assert_eq!(parse_size("64k").expect("k"), 65536);
        assert_eq!(parse_size("128M").expect("m"), 128 << 20);
        assert_eq!(parse_size("1g").expect("g"), 1 << 30);
        assert_eq!(parse_size("-1").expect("unlimited"), -1);
        assert!(parse_size("lots").is_err());
    }

    #[test]
    fn durations() {
        assert_eq!(parse_duration("5s").expect("s"), Duration::from_secs(5));
        assert_eq!(
            parse_duration("500ms").expect("ms"),
            Duration::from_millis(500)
        );
        assert!(parse_duration("0s").is_err());
        assert!(parse_duration("5x").is_err());
    }
}
