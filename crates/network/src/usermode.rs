//! User-mode networking: a container's network namespace connected to
//! the outside by a helper process of the caller's, `slirp4netns` or
//! `pasta` (Debian's `passt`), instead of a bridge and nftables. Nothing
//! here needs root beyond what the caller has over the namespace: no
//! bridge, no veth in the host namespace, no nftables, so an unprivileged
//! engine (rootless) can use it as its default.
//!
//! The helper is started for a pinned namespace file, its pid and start
//! time are handed back for the caller to record, and [`Helper::stop`]
//! ends it (the caller does so at stop, rm and crash cleanup).
//! Published ports go through slirp4netns' API socket (`add_hostfwd`) or
//! pasta's `-t`/`-u`; the helper listens on the host side (the namespace
//! it runs in), so the host's 127.0.0.1 reaches them.

use std::io::Read;
use std::net::{IpAddr, Ipv4Addr};
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use ipnet::Ipv4Net;
use serde::{Deserialize, Serialize};

/// The container-side interface slirp4netns makes.
pub const SLIRP_IFNAME: &str = "tap0";
/// podman's default MTU for slirp4netns (and pasta's own default).
pub const DEFAULT_MTU: u32 = 65520;
/// How long a helper may take to come up.
const READY_TIMEOUT: Duration = Duration::from_secs(10);

/// Errors of user-mode networking.
#[derive(Debug, thiserror::Error)]
pub enum UsermodeError {
    #[error("invalid {mode} option {option:?}: {why}")]
    Option {
        mode: &'static str,
        option: String,
        why: String,
    },
    #[error("--network {0}: the {0} program is not installed (apt-get install {1})")]
    Missing(&'static str, &'static str),
    #[error("--network {mode}: could not start {program}: {source}")]
    Spawn {
        mode: &'static str,
        program: String,
        #[source]
        source: std::io::Error,
    },
    #[error("--network {mode}: the helper failed to set up the network namespace {netns}: {why}; see {log}")]
    Failed {
        mode: &'static str,
        netns: PathBuf,
        why: String,
        log: PathBuf,
    },
    #[error("--network {mode}: publish {what}: {why}")]
    Publish {
        mode: &'static str,
        what: String,
        why: String,
    },
    #[error("--network {mode}: {op} {path}: {source}")]
    Io {
        mode: &'static str,
        op: &'static str,
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
}

type Result<T, E = UsermodeError> = std::result::Result<T, E>;

/// `slirp4netns[:OPTIONS]` as podman 4.3 spells them (`man podman-run`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SlirpOptions {
    /// `allow_host_loopback=true`: the second address of the range
    /// (10.0.2.2) reaches the host's 127.0.0.1. Default false.
    pub allow_host_loopback: bool,
    /// `cidr=`: the range (default 10.0.2.0/24).
    pub cidr: Ipv4Net,
    /// `enable_ipv6=`: default true (podman 4.3's default).
    pub enable_ipv6: bool,
    /// `mtu=`: default 65520.
    pub mtu: u32,
    /// `outbound_addr=` (interface name or IPv4 address).
    pub outbound_addr: Option<String>,
    /// `outbound_addr6=` (interface name or IPv6 address).
    pub outbound_addr6: Option<String>,
    /// `port_handler=slirp4netns`: published ports go through
    /// slirp4netns' own forwarding (`add_hostfwd`), which passes the
    /// client's address on to the container. Default false
    /// (`port_handler=rootlesskit`, podman's default): the caller's port
    /// proxy ([`crate::port_proxy`]), much faster, connections from the
    /// container's own address.
    #[serde(default)]
    pub slirp_port_handler: bool,
}

impl Default for SlirpOptions {
    fn default() -> Self {
        SlirpOptions {
            allow_host_loopback: false,
            cidr: "10.0.2.0/24".parse().expect("valid cidr"),
            enable_ipv6: true,
            mtu: DEFAULT_MTU,
            outbound_addr: None,
            outbound_addr6: None,
            slirp_port_handler: false,
        }
    }
}

impl SlirpOptions {
    /// The n-th address of the range.
    fn nth(&self, n: u32) -> Ipv4Addr {
        Ipv4Addr::from(u32::from(self.cidr.network()) + n)
    }
    /// The container's address (`.100`).
    pub fn guest(&self) -> Ipv4Addr {
        self.nth(100)
    }
    /// The gateway, which is the host's loopback with
    /// `allow_host_loopback=true` (`.2`).
    pub fn gateway(&self) -> Ipv4Addr {
        self.nth(2)
    }
    /// slirp4netns' DNS forwarder (`.3`).
    pub fn dns(&self) -> Ipv4Addr {
        self.nth(3)
    }
}

/// A user-mode network mode: what `--network slirp4netns[:...]` or
/// `--network pasta[:...]` asks for.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum Mode {
    Slirp4netns(SlirpOptions),
    /// pasta with its options passed through (podman: `pasta:OPT,OPT`).
    Pasta(Vec<String>),
}

fn bool_opt(mode: &'static str, o: &str, v: &str) -> Result<bool> {
    match v {
        "true" => Ok(true),
        "false" => Ok(false),
        _ => Err(UsermodeError::Option {
            mode,
            option: o.into(),
            why: "the value must be true or false".into(),
        }),
    }
}

impl Mode {
    /// Parses a `--network` value; `None` when it is not a user-mode one.
    pub fn parse(value: &str) -> Option<Result<Mode>> {
        let (kind, opts) = match value.split_once(':') {
            Some((k, o)) => (k, Some(o)),
            None => (value, None),
        };
        let opts: Vec<&str> = opts
            .map(|o| o.split(',').filter(|s| !s.is_empty()).collect())
            .unwrap_or_default();
        match kind {
            "slirp4netns" => Some(Self::parse_slirp(&opts)),
            "pasta" => Some(Ok(Mode::Pasta(
                opts.iter().map(|s| s.to_string()).collect(),
            ))),
            _ => None,
        }
    }

    fn parse_slirp(opts: &[&str]) -> Result<Mode> {
        const M: &str = "slirp4netns";
        let mut s = SlirpOptions::default();
        for o in opts {
            let bad = |why: &str| UsermodeError::Option {
                mode: M,
                option: o.to_string(),
                why: why.into(),
            };
            let (k, v) = o
                .split_once('=')
                .ok_or_else(|| bad("options are KEY=VALUE"))?;
            match k {
                "allow_host_loopback" => s.allow_host_loopback = bool_opt(M, o, v)?,
                "enable_ipv6" => s.enable_ipv6 = bool_opt(M, o, v)?,
                "cidr" => {
                    let n: Ipv4Net = v.parse().map_err(|_| bad("not an IPv4 CIDR"))?;
                    if n.prefix_len() > 25 {
                        return Err(bad(
                            "the range must hold .100 for the container (prefix /25 or shorter)",
                        ));
                    }
                    s.cidr = n.trunc();
                }
                "mtu" => {
                    s.mtu = v
                        .parse()
                        .ok()
                        .filter(|m| (68..=65521).contains(m))
                        .ok_or_else(|| bad("the MTU must be a number from 68 to 65521"))?
                }
                "outbound_addr" => s.outbound_addr = Some(v.into()),
                "outbound_addr6" => s.outbound_addr6 = Some(v.into()),
                "port_handler" => match v {
                    "slirp4netns" => s.slirp_port_handler = true,
                    // podman's name for its proxy; berth's does the same.
                    "rootlesskit" => s.slirp_port_handler = false,
                    _ => return Err(bad("the port handler must be rootlesskit or slirp4netns")),
                },
                _ => {
                    return Err(bad(
                        "unknown option (allow_host_loopback, cidr, enable_ipv6, mtu, \
                         outbound_addr, outbound_addr6, port_handler)",
                    ))
                }
            }
        }
        Ok(Mode::Slirp4netns(s))
    }

    /// `slirp4netns` or `pasta`.
    pub fn name(&self) -> &'static str {
        match self {
            Mode::Slirp4netns(_) => "slirp4netns",
            Mode::Pasta(_) => "pasta",
        }
    }

    fn program(&self) -> &'static str {
        self.name()
    }

    fn package(&self) -> &'static str {
        match self {
            Mode::Slirp4netns(_) => "slirp4netns",
            Mode::Pasta(_) => "passt",
        }
    }

    /// The DNS server the container's resolv.conf names first, if the
    /// helper provides one (slirp4netns' forwarder).
    pub fn dns_server(&self) -> Option<IpAddr> {
        match self {
            Mode::Slirp4netns(s) => Some(IpAddr::V4(s.dns())),
            Mode::Pasta(_) => None,
        }
    }

    /// The container's own IPv4 address when it is known in advance.
    pub fn guest_addr(&self) -> Option<IpAddr> {
        match self {
            Mode::Slirp4netns(s) => Some(IpAddr::V4(s.guest())),
            Mode::Pasta(_) => None,
        }
    }

    /// The helper program is installed.
    pub fn available(&self) -> bool {
        find_program(self.program()).is_some()
    }
}

/// The user-mode network an engine without root should use by default:
/// slirp4netns when installed (podman 4.3's rootless default, and it
/// works without any host interface), else pasta; `None` when neither is.
pub fn default_mode() -> Option<Mode> {
    [
        Mode::Slirp4netns(SlirpOptions::default()),
        Mode::Pasta(Vec::new()),
    ]
    .into_iter()
    .find(Mode::available)
}

fn find_program(name: &str) -> Option<PathBuf> {
    let path = std::env::var_os("PATH").unwrap_or_else(|| "/usr/local/bin:/usr/bin:/bin".into());
    std::env::split_paths(&path)
        .chain([PathBuf::from("/usr/bin"), PathBuf::from("/usr/sbin")])
        .map(|d| d.join(name))
        .find(|p| p.is_file())
}

/// A transport protocol of a published port.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Proto {
    Tcp,
    Udp,
}

impl Proto {
    pub fn as_str(self) -> &'static str {
        match self {
            Proto::Tcp => "tcp",
            Proto::Udp => "udp",
        }
    }
}

/// A published port: the helper listens on `host_ip:host_port` (all
/// addresses when `None`) and forwards to the container's port.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Forward {
    pub proto: Proto,
    pub host_ip: Option<IpAddr>,
    pub host_port: u16,
    pub container_port: u16,
}

/// What [`start`] needs.
#[derive(Debug, Clone)]
pub struct Spec<'a> {
    pub mode: &'a Mode,
    /// The pinned network namespace file.
    pub netns: &'a Path,
    /// The user namespace owning `netns`, when the caller runs outside
    /// it (rootless: the engine's user namespace).
    pub userns: Option<&'a Path>,
    /// A directory of the caller's for the helper's files (API socket,
    /// pid file, log); it must exist.
    pub dir: &'a Path,
    pub ports: &'a [Forward],
}

/// A running helper process: what the caller records to end it later.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Helper {
    pub pid: i32,
    /// Its start time (`/proc/PID/stat` field 22), so a recycled pid is
    /// never signalled.
    pub start: u64,
}

/// The log file of the helper in `dir`.
pub fn log_path(dir: &Path) -> PathBuf {
    dir.join("helper.log")
}

/// slirp4netns' API socket in the helper's `dir`.
pub fn api_socket(dir: &Path) -> PathBuf {
    dir.join("slirp4netns.sock")
}

/// Starts the helper for `spec.netns` and publishes `spec.ports`; returns
/// once the namespace's interface is configured. On failure nothing is
/// left running.
pub fn start(spec: &Spec<'_>) -> Result<Helper> {
    let mode = spec.mode.name();
    let program = find_program(spec.mode.program())
        .ok_or(UsermodeError::Missing(mode, spec.mode.package()))?;
    let log = log_path(spec.dir);
    let logf = std::fs::File::create(&log).map_err(|source| UsermodeError::Io {
        mode,
        op: "create",
        path: log.clone(),
        source,
    })?;
    match spec.mode {
        Mode::Slirp4netns(o) => start_slirp(spec, o, &program, logf),
        Mode::Pasta(opts) => start_pasta(spec, opts, &program, logf),
    }
}

fn failed(spec: &Spec<'_>, why: String) -> UsermodeError {
    let log = log_path(spec.dir);
    let tail = std::fs::read_to_string(&log).unwrap_or_default();
    let last: Vec<&str> = tail
        .lines()
        .filter(|l| !l.trim().is_empty() && !l.contains("syslog"))
        .collect();
    let why = match last.last() {
        Some(l) => format!("{why} ({})", l.trim()),
        None => why,
    };
    UsermodeError::Failed {
        mode: spec.mode.name(),
        netns: spec.netns.to_path_buf(),
        why,
        log,
    }
}

fn start_slirp(
    spec: &Spec<'_>,
    o: &SlirpOptions,
    program: &Path,
    logf: std::fs::File,
) -> Result<Helper> {
    const M: &str = "slirp4netns";
    for f in spec.ports {
        if matches!(f.host_ip, Some(IpAddr::V6(_))) {
            return Err(UsermodeError::Publish {
                mode: M,
                what: format!("[{}]:{}", f.host_ip.expect("v6"), f.host_port),
                why: "slirp4netns publishes on IPv4 host addresses only".into(),
            });
        }
    }
    let sock = api_socket(spec.dir);
    let _ = std::fs::remove_file(&sock);
    // slirp4netns writes "1" to the ready fd once tap0 is configured.
    let (ready_r, ready_w) =
        rustix::pipe::pipe_with(rustix::pipe::PipeFlags::CLOEXEC).map_err(|e| {
            UsermodeError::Spawn {
                mode: M,
                program: program.display().to_string(),
                source: e.into(),
            }
        })?;
    // Inherited by the child under the same number (no dup needed).
    rustix::io::fcntl_setfd(&ready_w, rustix::io::FdFlags::empty()).map_err(|e| {
        UsermodeError::Spawn {
            mode: M,
            program: program.display().to_string(),
            source: e.into(),
        }
    })?;
    let wfd = std::os::fd::AsRawFd::as_raw_fd(&ready_w);
    let mut cmd = Command::new(program);
    cmd.arg("--configure")
        .arg(format!("--mtu={}", o.mtu))
        .arg(format!("--ready-fd={wfd}"))
        .arg(format!("--api-socket={}", sock.display()))
        .arg(format!("--cidr={}", o.cidr));
    if !o.allow_host_loopback {
        cmd.arg("--disable-host-loopback");
    }
    if o.enable_ipv6 {
        cmd.arg("--enable-ipv6");
    }
    if let Some(a) = &o.outbound_addr {
        cmd.arg(format!("--outbound-addr={a}"));
    }
    if let Some(a) = &o.outbound_addr6 {
        cmd.arg(format!("--outbound-addr6={a}"));
    }
    cmd.arg("--netns-type=path");
    if let Some(u) = spec.userns {
        cmd.arg(format!("--userns-path={}", u.display()));
    }
    cmd.arg(spec.netns).arg(SLIRP_IFNAME);
    let mut child = spawn(cmd, logf, M, program)?;
    drop(ready_w);
    let helper = Helper {
        pid: child.id() as i32,
        start: start_time(child.id() as i32).unwrap_or(0),
    };
    let up = wait_ready(&mut child, ready_r, spec).and_then(|()| {
        for f in spec.ports {
            crate::slirp_api::add_hostfwd(&sock, o.guest(), f)?;
        }
        Ok(())
    });
    if let Err(e) = up {
        let _ = child.kill();
        let _ = child.wait();
        let _ = std::fs::remove_file(&sock);
        return Err(e);
    }
    // The child lives on detached; whoever ends it reaps it if it is
    // theirs (see [`Helper::stop`]); otherwise init does.
    drop(child);
    Ok(helper)
}

fn spawn(
    mut cmd: Command,
    logf: std::fs::File,
    mode: &'static str,
    program: &Path,
) -> Result<std::process::Child> {
    let err = logf.try_clone().map_err(|source| UsermodeError::Spawn {
        mode,
        program: program.display().to_string(),
        source,
    })?;
    cmd.stdin(Stdio::null())
        .stdout(Stdio::from(logf))
        .stderr(Stdio::from(err))
        // Out of the caller's process group: a ^C at a terminal is not for it.
        .process_group(0);
    cmd.spawn().map_err(|source| UsermodeError::Spawn {
        mode,
        program: program.display().to_string(),
        source,
    })
}

fn wait_ready(
    child: &mut std::process::Child,
    ready: std::os::fd::OwnedFd,
    spec: &Spec<'_>,
) -> Result<()> {
    use rustix::event::{poll, PollFd, PollFlags};
    let deadline = Instant::now() + READY_TIMEOUT;
    let mut f = std::fs::File::from(ready);
    loop {
        if let Ok(Some(status)) = child.try_wait() {
            return Err(failed(spec, format!("it exited ({status})")));
        }
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            return Err(failed(
                spec,
                format!("it was not ready within {} s", READY_TIMEOUT.as_secs()),
            ));
        }
        let mut fds = [PollFd::new(&f, PollFlags::IN)];
        let ts = rustix::event::Timespec {
            tv_sec: 0,
            tv_nsec: left.as_nanos().min(100_000_000) as _,
        };
        if poll(&mut fds, Some(&ts)).unwrap_or(0) > 0 {
            let mut b = [0u8; 1];
            match f.read(&mut b) {
                Ok(1) if b[0] == b'1' => return Ok(()),
                Ok(0) => {
                    let _ = child.wait();
                    return Err(failed(spec, "it exited before it was ready".into()));
                }
                _ => {}
            }
        }
    }
}

/// pasta's `-t`/`-u` spec for the published ports of one protocol:
/// `[ADDR/]HOST:CONTAINER` items, comma separated.
fn pasta_ports(ports: &[Forward], proto: Proto) -> Option<String> {
    let items: Vec<String> = ports
        .iter()
        .filter(|f| f.proto == proto)
        .map(|f| {
            let addr = f.host_ip.map(|i| format!("{i}/")).unwrap_or_default();
            format!("{addr}{}:{}", f.host_port, f.container_port)
        })
        .collect();
    (!items.is_empty()).then(|| items.join(","))
}

fn start_pasta(
    spec: &Spec<'_>,
    opts: &[String],
    program: &Path,
    logf: std::fs::File,
) -> Result<Helper> {
    const M: &str = "pasta";
    let pidfile = spec.dir.join("pasta.pid");
    let _ = std::fs::remove_file(&pidfile);
    let given = |flags: &[&str]| {
        opts.iter().any(|o| {
            flags
                .iter()
                .any(|f| o == f || o.starts_with(&format!("{f}=")))
        })
    };
    let mut cmd = Command::new(program);
    // Debian's 2023-03 pasta drops to "nobody" when started as root and
    // then cannot enter the namespace: as root it keeps root.
    if rustix::process::geteuid().is_root() && !given(&["--runas"]) {
        cmd.args(["--runas", "0"]);
    }
    cmd.arg("--config-net")
        .arg("--netns")
        .arg(spec.netns)
        .arg("--pid")
        .arg(&pidfile);
    match spec.userns {
        Some(u) => {
            cmd.arg("--userns").arg(u);
        }
        None => {
            cmd.arg("--netns-only");
        }
    }
    // Published ports only (pasta's own default forwards every bound
    // port, both ways); as podman does, the gateway is not the host.
    for (flag, long, proto) in [
        ("-t", "--tcp-ports", Some(Proto::Tcp)),
        ("-u", "--udp-ports", Some(Proto::Udp)),
        ("-T", "--tcp-ns", None),
        ("-U", "--udp-ns", None),
    ] {
        let ours = proto.and_then(|p| pasta_ports(spec.ports, p));
        match ours {
            Some(p) => {
                cmd.arg(flag).arg(p);
            }
            None if !given(&[flag, long]) => {
                cmd.arg(flag).arg("none");
            }
            None => {}
        }
    }
    if !given(&["--map-gw", "--no-map-gw"]) {
        cmd.arg("--no-map-gw");
    }
    cmd.args(opts.iter().filter(|o| o.as_str() != "--map-gw"));
    // pasta forks to the background once the namespace is set up; the
    // parent's exit status says whether it was.
    let mut child = spawn(cmd, logf, M, program)?;
    let deadline = Instant::now() + READY_TIMEOUT;
    let status = loop {
        match child.try_wait() {
            Ok(Some(s)) => break s,
            Ok(None) if Instant::now() < deadline => std::thread::sleep(Duration::from_millis(10)),
            _ => {
                let _ = child.kill();
                let _ = child.wait();
                return Err(failed(
                    spec,
                    format!("it was not ready within {} s", READY_TIMEOUT.as_secs()),
                ));
            }
        }
    };
    if !status.success() {
        return Err(failed(spec, format!("it exited ({status})")));
    }
    let pid: i32 = std::fs::read_to_string(&pidfile)
        .ok()
        .and_then(|t| t.trim().parse().ok())
        .ok_or_else(|| failed(spec, format!("it wrote no pid to {}", pidfile.display())))?;
    Ok(Helper {
        pid,
        start: start_time(pid).unwrap_or(0),
    })
}

/// Field 22 of `/proc/PID/stat` (start time in clock ticks).
fn start_time(pid: i32) -> Option<u64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    let rest = &stat[stat.rfind(')')? + 2..];
    rest.split_whitespace().nth(19)?.parse().ok()
}

/// Whether the process is there and not a zombie.
fn running(pid: i32) -> bool {
    let Ok(stat) = std::fs::read_to_string(format!("/proc/{pid}/stat")) else {
        return false;
    };
    let state = stat
        .rfind(')')
        .and_then(|i| stat[i + 1..].split_whitespace().next());
    !matches!(state, Some("Z") | Some("X") | None)
}

impl Helper {
    /// The same process is still running (not a recycled pid).
    pub fn alive(&self) -> bool {
        running(self.pid) && start_time(self.pid) == Some(self.start)
    }

    /// Ends the helper: SIGTERM, SIGKILL after a second; reaps it when it
    /// is our child; returns once it is gone (at most ~3 s). Idempotent.
    pub fn stop(&self) {
        use nix::sys::signal::{kill, Signal};
        use nix::sys::wait::{waitpid, WaitPidFlag};
        use nix::unistd::Pid;
        if !self.alive() {
            let _ = waitpid(Pid::from_raw(self.pid), Some(WaitPidFlag::WNOHANG));
            return;
        }
        let pid = Pid::from_raw(self.pid);
        let _ = kill(pid, Signal::SIGTERM);
        let start = Instant::now();
        let mut killed = false;
        loop {
            let _ = waitpid(pid, Some(WaitPidFlag::WNOHANG));
            if !running(self.pid) {
                let _ = waitpid(pid, Some(WaitPidFlag::WNOHANG));
                return;
            }
            let t = start.elapsed();
            if !killed && t > Duration::from_secs(1) {
                let _ = kill(pid, Signal::SIGKILL);
                killed = true;
            }
            if t > Duration::from_secs(3) {
                return;
            }
            std::thread::sleep(Duration::from_millis(10));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn slirp_options_parse_as_podman_spells_them() {
        let m = Mode::parse("slirp4netns").unwrap().unwrap();
        assert_eq!(m, Mode::Slirp4netns(SlirpOptions::default()));
        let Mode::Slirp4netns(o) = Mode::parse(
            "slirp4netns:allow_host_loopback=true,cidr=10.5.0.0/16,enable_ipv6=false,mtu=1500,port_handler=slirp4netns",
        )
        .unwrap()
        .unwrap() else {
            panic!("slirp");
        };
        assert!(o.allow_host_loopback && !o.enable_ipv6);
        assert_eq!(o.mtu, 1500);
        assert_eq!(o.guest(), Ipv4Addr::new(10, 5, 0, 100));
        assert_eq!(o.gateway(), Ipv4Addr::new(10, 5, 0, 2));
        assert_eq!(o.dns(), Ipv4Addr::new(10, 5, 0, 3));
        assert!(o.slirp_port_handler);
        let Some(Ok(Mode::Slirp4netns(o))) = Mode::parse("slirp4netns:port_handler=rootlesskit")
        else {
            panic!("slirp");
        };
        assert!(!o.slirp_port_handler);
        for bad in [
            "slirp4netns:mtu=10",
            "slirp4netns:allow_host_loopback=yes",
            "slirp4netns:port_handler=socat",
            "slirp4netns:nope=1",
            "slirp4netns:cidr=10.0.0.0/30",
            "slirp4netns:mtu",
        ] {
            assert!(Mode::parse(bad).unwrap().is_err(), "{bad}");
        }
        assert!(Mode::parse("berth").is_none());
        assert_eq!(
            Mode::parse("pasta:-T,8080").unwrap().unwrap(),
            Mode::Pasta(vec!["-T".into(), "8080".into()])
        );
    }

    #[test]
    fn pasta_port_specs() {
        let f = |proto, host_ip: Option<&str>, h, c| Forward {
            proto,
            host_ip: host_ip.map(|i| i.parse().unwrap()),
            host_port: h,
            container_port: c,
        };
        let ports = [
            f(Proto::Tcp, None, 8080, 80),
            f(Proto::Tcp, Some("127.0.0.1"), 8443, 443),
            f(Proto::Udp, None, 5353, 53),
        ];
        assert_eq!(
            pasta_ports(&ports, Proto::Tcp).as_deref(),
            Some("8080:80,127.0.0.1/8443:443")
        );
        assert_eq!(pasta_ports(&ports, Proto::Udp).as_deref(), Some("5353:53"));
        assert_eq!(pasta_ports(&ports[..2], Proto::Udp), None);
    }

    #[test]
    fn own_start_time_is_read() {
        let me = std::process::id() as i32;
        assert!(start_time(me).is_some());
        assert!(Helper {
            pid: me,
            start: start_time(me).unwrap()
        }
        .alive());
    }
}
