//! Published ports through berth's port proxy (docs/rootless.md "Published
//! ports"), as podman's `rootlessport`: for `--network slirp4netns`
//! (rootless or not; `port_handler=slirp4netns` keeps slirp4netns' own
//! forwarding) and, rootless, for bridge networks, whose bridges live in
//! the rootless network namespace where the host's addresses are not.
//!
//! One proxy process per container (`berth port-proxy`, berth-network's
//! `port_proxy`) listens on the published host addresses in the namespace
//! berth runs in and connects, inside the container's network namespace,
//! to the container's own address. It is started once the namespace is
//! plumbed, recorded (pid and start time) at
//! `<runroot>/portproxy/<short id>.json`, and ended with the container's
//! networking (stop, rm, crash cleanup); it also ends by itself when the
//! namespace pin it serves goes.

use super::*;
use berth_network::port_proxy::{self, ProxySpec};
use berth_network::usermode::{self as um, Forward, Helper};
use serde::{Deserialize, Serialize};

/// The hidden subcommand of the `berth` binary that runs a proxy
/// (`berth port-proxy --netns PIN --target IP --publish P,IP,H,C ...`).
pub const PROXY_SUBCOMMAND: &str = "port-proxy";

/// How long a proxy may take to bind its ports.
const READY_TIMEOUT: Duration = Duration::from_secs(10);

/// What is recorded of a running proxy.
#[derive(Debug, Clone, Serialize, Deserialize)]
struct Record {
    helper: Helper,
    /// The container address it connects to.
    target: IpAddr,
}

fn dir(engine: &Engine) -> PathBuf {
    engine.runroot.join("portproxy")
}

fn record_path(engine: &Engine, id: &str) -> PathBuf {
    dir(engine).join(format!("{}.json", crate::db::short(id)))
}

/// The proxy's log (its stderr): what it could not do.
pub fn log_path(engine: &Engine, id: &str) -> PathBuf {
    dir(engine).join(format!("{}.log", crate::db::short(id)))
}

fn record(engine: &Engine, id: &str) -> Option<Record> {
    let text = std::fs::read_to_string(record_path(engine, id)).ok()?;
    serde_json::from_str(&text).ok()
}

/// The pid of container `id`'s running proxy, if any.
pub fn proxy_pid(engine: &Engine, id: &str) -> Option<i32> {
    record(engine, id)
        .filter(|r| r.helper.alive())
        .map(|r| r.helper.pid)
}

/// The engine's published ports as the user-mode helpers' forwards.
pub(super) fn forwards(ports: &[PortMap]) -> Vec<Forward> {
    ports
        .iter()
        .map(|p| Forward {
            proto: match p.proto {
                Proto::Tcp => um::Proto::Tcp,
                Proto::Udp => um::Proto::Udp,
            },
            host_ip: p.host_ip,
            host_port: p.host_port,
            container_port: p.container_port,
        })
        .collect()
}

fn proxy_err(id: &str, why: String) -> NetworkError {
    NetworkError::PortProxy {
        container: crate::db::short(id).to_string(),
        why,
    }
}

/// Starts the proxy of container `id` for `ports` (none: nothing to do):
/// it listens in the namespace berth was started in and connects to
/// `target` inside the namespace pinned at `pin`. Returns once every port
/// is bound; on failure nothing is left running. Ends a proxy recorded
/// before (a restart).
pub(super) fn start(
    engine: &Engine,
    id: &str,
    pin: &Path,
    target: IpAddr,
    ports: &[PortMap],
) -> Result<()> {
    stop(engine, id);
    if ports.is_empty() {
        return Ok(());
    }
    let d = dir(engine);
    std::fs::create_dir_all(&d)
        .map_err(io_err("create", &d))
        .map_err(crate::EngineError::from)?;
    let log = log_path(engine, id);
    let err = File::create(&log)
        .map_err(io_err("create", &log))
        .map_err(crate::EngineError::from)?;
    let mut cmd = Command::new("/proc/self/exe");
    cmd.arg(PROXY_SUBCOMMAND)
        .arg("--netns")
        .arg(pin)
        .arg("--target")
        .arg(target.to_string());
    for f in forwards(ports) {
        cmd.arg("--publish").arg(port_proxy::publish_arg(&f));
    }
    cmd.stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::from(err))
        // Out of the caller's process group: a ^C at a terminal is not for it.
        .process_group(0);
    // Rootless, the calling thread may be in the rootless network
    // namespace (after a bridge lock); the proxy listens in berth's own.
    let mut child = super::rootless_netns::spawn_at_home(cmd)
        .map_err(|e| proxy_err(id, format!("could not be started: {e}")))?;
    let out = child.stdout.take().expect("piped stdout");
    let helper = Helper {
        pid: child.id() as i32,
        start: berth_runtime::state::process_start_time(child.id() as i32).unwrap_or(0),
    };
    if let Err(why) = wait_ready(out) {
        let _ = child.kill();
        let status = child.wait().map(|s| s.to_string()).unwrap_or_default();
        let text = std::fs::read_to_string(&log).unwrap_or_default();
        let last = text.lines().rev().find(|l| !l.trim().is_empty()).map(|l| {
            l.trim()
                .strip_prefix("berth: ")
                .unwrap_or(l.trim())
                .to_string()
        });
        let why = match last {
            Some(l) => format!("{why} ({status}): {l}"),
            None => format!("{why} ({status}); see {}", log.display()),
        };
        return Err(proxy_err(id, why).into());
    }
    let rec = record_path(engine, id);
    let tmp = rec.with_extension("tmp");
    let text = serde_json::to_string(&Record { helper, target }).expect("record serializes");
    if let Err(e) = std::fs::write(&tmp, text).and_then(|()| std::fs::rename(&tmp, &rec)) {
        helper.stop();
        return Err(crate::EngineError::from(io_err("write", &rec)(e)));
    }
    // It lives on detached; whoever stops it reaps it if it is theirs
    // (see [`Helper::stop`]); otherwise init does.
    drop(child);
    Ok(())
}

/// Waits for the proxy's `ready` line (`Err`: why not).
fn wait_ready(out: std::process::ChildStdout) -> std::result::Result<(), String> {
    use rustix::event::{poll, PollFd, PollFlags, Timespec};
    use std::io::Read;
    let deadline = Instant::now() + READY_TIMEOUT;
    let mut got = Vec::new();
    let mut out = out;
    loop {
        if got.ends_with(b"\n") {
            return if got == b"ready\n" {
                Ok(())
            } else {
                Err("answered no ready".into())
            };
        }
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            return Err(format!(
                "did not bind its ports within {} s",
                READY_TIMEOUT.as_secs()
            ));
        }
        let mut fds = [PollFd::new(&out, PollFlags::IN)];
        let ts = Timespec {
            tv_sec: left.as_secs() as _,
            tv_nsec: left.subsec_nanos() as _,
        };
        if poll(&mut fds, Some(&ts)).unwrap_or(0) == 0 {
            continue;
        }
        let mut b = [0u8; 16];
        match out.read(&mut b) {
            Ok(0) => return Err("exited".into()),
            Ok(n) => got.extend_from_slice(&b[..n]),
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(e) => return Err(format!("could not be read from: {e}")),
        }
    }
}

/// Ends container `id`'s proxy, if one was started; removes its record
/// and log. Idempotent and cheap when there is none.
pub(super) fn stop(engine: &Engine, id: &str) {
    let rec = record_path(engine, id);
    if let Some(r) = record(engine, id) {
        r.helper.stop();
    }
    let _ = std::fs::remove_file(&rec);
    let _ = std::fs::remove_file(log_path(engine, id));
}

/// Rootless bridge networks: the proxy of a running container (or pod)
/// `id` with published ports, to its first network's address. The
/// proxy listens in berth's own namespace whichever one the calling
/// thread is in ([`start`] spawns it through
/// `rootless_netns::spawn_at_home`).
pub(super) fn start_for_bridge(engine: &Engine, id: &str) -> Result<()> {
    let (ports, eps) = {
        let mut db = engine.db()?;
        let c = store::conn(&mut db)?;
        (store::ports_of(c, id)?, store::endpoints_of(c, id)?)
    };
    let Some(ep) = eps.first() else {
        stop(engine, id);
        return Ok(());
    };
    start(engine, id, &netns_path(engine, id), ep.ip, &ports)
}

/// After `network connect`/`disconnect` of a running rootless container:
/// the proxy follows the container's first network (started, moved to its
/// new address, or ended).
pub(super) fn follow_first_network(engine: &Engine, id: &str) -> Result<()> {
    if !crate::rootless::is_rootless() || !netns::is_pinned(&netns_path(engine, id)) {
        return Ok(());
    }
    let first = {
        let mut db = engine.db()?;
        store::endpoints_of(store::conn(&mut db)?, id)?
            .first()
            .map(|e| e.ip)
    };
    let running = record(engine, id).filter(|r| r.helper.alive());
    if running.as_ref().map(|r| r.target) == first && first.is_some() {
        return Ok(());
    }
    start_for_bridge(engine, id)
}

/// `berth port-proxy`: binds the published ports, says `ready` on
/// stdout, serves until signalled or until the namespace pin goes.
pub fn proxy_main(netns: &Path, target: &str, publish: &[String]) -> Result<()> {
    let bad = |what: &'static str, value: &str, why: String| NetworkError::Invalid {
        what,
        value: value.to_string(),
        why,
    };
    let target: IpAddr = target
        .parse()
        .map_err(|_| bad("--target", target, "not an IP address".into()))?;
    let ports = publish
        .iter()
        .map(|p| port_proxy::parse_publish(p).map_err(|e| bad("--publish", p, e.to_string())))
        .collect::<std::result::Result<Vec<_>, _>>()?;
    let spec = ProxySpec {
        netns: netns.to_path_buf(),
        target,
        ports,
    };
    port_proxy::run(&spec, std::io::stdout()).map_err(NetworkError::from)?;
    Ok(())
}
