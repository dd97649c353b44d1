//! Bridge networks for a rootless engine (docs/rootless.md), as podman
//! does: one network namespace of the engine's own, owned by the user's
//! rootless user namespace (the pause process's), holds what a rootful
//! engine puts in the host's namespace: the bridges, the host ends of
//! the containers' veths, berth's nftables table and the DNS resolvers.
//! The rootful code does all of it unchanged: under [`BridgeLock`] the
//! calling thread is in this namespace (processes it spawns, `nft` and
//! the resolvers, are too).
//!
//! slirp4netns connects the namespace to the outside (outbound traffic,
//! its `tap0` with 10.0.2.100, the default route). Published ports do
//! not go through it: each container's port proxy (`port_proxy`, as
//! podman's rootlessport) listens on the host side and connects inside
//! the container's namespace.
//!
//! Pinned at `<runroot>/rootless-netns/ns` (a bind mount in the rootless
//! mount namespace) with the helper's record, API socket and log beside
//! it; one per run root (the default run root is the user's run dir).
//! Made on first need (`network create`, a container started on a
//! bridge network); kept while a network other than the default one
//! exists or any container holds an address on one; torn down (helper
//! ended, pin removed) by the command that removes the last of them, so
//! a user without networks has no process left but the pause process;
//! `system migrate` ends it whatever networks exist ([`end`]).

use super::*;
use berth_network::usermode::{self as um, Helper, Mode, SlirpOptions};
use nix::sched::CloneFlags;

/// `<runroot>/rootless-netns`.
pub fn dir(engine: &Engine) -> PathBuf {
    engine.runroot.join("rootless-netns")
}

/// The pin of the rootless network namespace.
pub fn pin(engine: &Engine) -> PathBuf {
    dir(engine).join("ns")
}

fn record_path(engine: &Engine) -> PathBuf {
    dir(engine).join("helper.json")
}

fn helper(engine: &Engine) -> Option<Helper> {
    let text = std::fs::read_to_string(record_path(engine)).ok()?;
    serde_json::from_str(&text).ok()
}

/// The helper's options: podman's defaults for its rootless namespace
/// (10.0.2.0/24, the namespace's address 10.0.2.100, no way to the
/// host's loopback).
fn options() -> SlirpOptions {
    SlirpOptions::default()
}

/// The range of the namespace's own interface (no bridge network may
/// overlap it).
pub fn range() -> ipnet::Ipv4Net {
    options().cidr
}

fn mode_err(e: um::UsermodeError) -> NetworkError {
    NetworkError::Rootless {
        why: "the rootless network namespace".into(),
        source: Box::new(e),
    }
}

/// The rootless network namespace exists, pinned, with its helper
/// running; made when it does not. Caller holds the lock and is in the
/// namespace berth was started in (the helper must run there).
fn ensure(engine: &Engine) -> std::result::Result<(), NetworkError> {
    let p = pin(engine);
    let h = helper(engine);
    if netns::is_pinned(&p) && h.is_some_and(|h| h.alive()) {
        return Ok(());
    }
    // A helper whose namespace went (the pause process ended while it
    // was kept), or a pin whose helper died: start over.
    if let Some(h) = h {
        h.stop();
    }
    if !Mode::Slirp4netns(options()).available() {
        return Err(mode_err(um::UsermodeError::Missing(
            "slirp4netns",
            "slirp4netns",
        )));
    }
    let d = dir(engine);
    std::fs::create_dir_all(&d).map_err(io_err("create", &d))?;
    netns::remove(&p).map_err(host_err("*", "remove a stale rootless namespace pin"))?;
    netns::create(&p).map_err(host_err("*", "create the rootless network namespace"))?;
    // berth's table and the resolvers of the old namespace are gone.
    let _ = std::fs::remove_file(applied_path(engine));
    let r = (|| {
        link::loopback_up(&p).map_err(host_err("*", "bring up lo in the rootless namespace"))?;
        let helper = um::start(&um::Spec {
            mode: &Mode::Slirp4netns(options()),
            netns: &p,
            userns: None,
            dir: &d,
            ports: &[],
        })
        .map_err(mode_err)?;
        let rec = record_path(engine);
        let tmp = rec.with_extension("tmp");
        let text = serde_json::to_string(&helper).expect("helper serializes");
        if let Err(e) = std::fs::write(&tmp, text).and_then(|()| std::fs::rename(&tmp, &rec)) {
            helper.stop();
            return Err(io_err("write", &rec)(e));
        }
        Ok(())
    })();
    if r.is_err() {
        let _ = netns::remove(&p);
    }
    r
}

/// The calling thread inside the rootless network namespace, until
/// dropped (then back in the namespace it was in). Not `Send`: a
/// namespace is per thread.
pub(super) struct Entered {
    orig: File,
    _thread: std::marker::PhantomData<*const ()>,
}

impl Drop for Entered {
    fn drop(&mut self) {
        let _ = nix::sched::setns(&self.orig, CloneFlags::CLONE_NEWNET);
    }
}

/// A request to the home thread: a process to start, and where its
/// [`Command::spawn`] result goes.
type SpawnJob = (
    Command,
    std::sync::mpsc::SyncSender<std::io::Result<std::process::Child>>,
);

/// The home thread: made by the first [`enter`] of the process, before
/// it joins the rootless namespace, so it stays in the namespace berth
/// was started in. A thread cannot go back there once it has left (the
/// namespace belongs to a user namespace above the rootless one, where
/// berth has no `CAP_SYS_ADMIN`: `setns` fails with EPERM), so what must
/// run there (the port proxies, which listen on the host's addresses) is
/// started by this thread. `None`: it could not be made.
static HOME: std::sync::OnceLock<Option<std::sync::mpsc::Sender<SpawnJob>>> =
    std::sync::OnceLock::new();

fn home() -> Option<&'static std::sync::mpsc::Sender<SpawnJob>> {
    HOME.get_or_init(|| {
        let (tx, rx) = std::sync::mpsc::channel::<SpawnJob>();
        std::thread::Builder::new()
            .name("home-netns".into())
            .stack_size(256 << 10)
            .spawn(move || {
                for (mut cmd, back) in rx {
                    let _ = back.send(cmd.spawn());
                }
            })
            .ok()
            .map(|_| tx)
    })
    .as_ref()
}

/// Spawns `cmd` in the network namespace berth was started in, whatever
/// namespace the calling thread is in (see [`HOME`]). Without an
/// [`enter`] before in this process, the calling thread is still there
/// and spawns it itself.
pub(super) fn spawn_at_home(mut cmd: Command) -> std::io::Result<std::process::Child> {
    let Some(tx) = HOME.get() else {
        return cmd.spawn();
    };
    let Some(tx) = tx.as_ref() else {
        return Err(std::io::Error::other(
            "no thread is left in the namespace berth was started in",
        ));
    };
    let (back, rx) = std::sync::mpsc::sync_channel(1);
    tx.send((cmd, back))
        .map_err(|_| std::io::Error::other("the spawning thread ended"))?;
    rx.recv()
        .map_err(|_| std::io::Error::other("the spawning thread ended"))?
}

/// [`ensure`]s the namespace and moves the calling thread into it.
pub(super) fn enter(engine: &Engine) -> std::result::Result<Entered, NetworkError> {
    ensure(engine)?;
    // Before the first move of any thread of this process.
    let _ = home();
    let here = Path::new("/proc/thread-self/ns/net");
    let orig = File::open(here).map_err(io_err("open", here))?;
    let p = pin(engine);
    let ns = File::open(&p).map_err(io_err("open", &p))?;
    nix::sched::setns(&ns, CloneFlags::CLONE_NEWNET)
        .map_err(|e| io_err("join the rootless network namespace", &p)(std::io::Error::from(e)))?;
    Ok(Entered {
        orig,
        _thread: std::marker::PhantomData,
    })
}

/// Whether something still needs the namespace: a network other than
/// the default one, or an address held on any network.
fn needed(engine: &Engine) -> std::result::Result<bool, NetworkError> {
    let mut db = db(engine)?;
    let c = store::conn(&mut db)?;
    let nets = store::list(c)?;
    if nets.iter().any(|n| n.name != DEFAULT_NETWORK) {
        return Ok(true);
    }
    Ok(!store::all_endpoints(c)?.is_empty())
}

/// Ends the helper and unpins the namespace when nothing needs it any
/// more. Caller holds the lock, outside the namespace.
pub(super) fn teardown_if_unused(engine: &Engine) {
    if needed(engine).unwrap_or(true) {
        return;
    }
    if let Some(h) = helper(engine) {
        h.stop();
    }
    let _ = netns::remove(&pin(engine));
    let _ = std::fs::remove_file(applied_path(engine));
    let _ = std::fs::remove_dir_all(dir(engine));
}

/// Ends the helper and unpins the namespace, whatever still needs it
/// (`system migrate`, once every container has stopped, before the pause
/// process goes: the namespace belongs to its user namespace). The
/// networks stay recorded; the next command that needs the namespace
/// makes a new one and their bridges in it.
pub fn end(engine: &Engine) -> std::result::Result<(), NetworkError> {
    let _l = super::lock(engine)?;
    if let Some(h) = helper(engine) {
        h.stop();
    }
    let _ = netns::remove(&pin(engine));
    let _ = std::fs::remove_file(applied_path(engine));
    let _ = std::fs::remove_dir_all(dir(engine));
    Ok(())
}

/// The upstream DNS server of resolvers in the namespace: slirp4netns'
/// forwarder (the host's own servers may be on its loopback).
pub(super) fn upstream_resolv() -> String {
    format!("nameserver {}\n", options().dns())
}
