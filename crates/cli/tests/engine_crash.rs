//! Crash safety of the engine (issue 8), bounded for CI: `berth` commands
//! (`run -d` with a named volume, `rm -f` of three containers, `volume
//! create`/`rm`, `run --rm`) are SIGKILLed at a pseudo-random moment; the
//! next normal command must reconcile. Checked after every kill: the database passes
//! `PRAGMA integrity_check`, every listed container has its directory,
//! markers written by completed runs survive; at the end, after `rm -f` of
//! everything and `volume prune`, no mount and no cgroup of the test remain,
//! and no veth, published port or address of a container.
//!
//! `pull` from a local registry (Debian's docker-registry in the test's
//! network namespace) is killed the same way; after each kill `images`
//! works, every blob in the store hashes to its name (no half-written blob
//! is visible) and a retried pull succeeds and runs.

mod common;
use common::*;

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;

const ITERATIONS: u64 = 20;
/// Upper bound of the kill delay.
const MAX_DELAY_US: u64 = 150_000;
const BASE_SEED: u64 = 0x5eed_8c4a_11d0_0008;

/// splitmix64: small, deterministic, good enough to spread kill delays.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }
}

/// Starts `berth ARGS`, SIGKILLs it (by its pid) after `delay_us` unless it
/// finished by then; returns how long it ran if it was not killed.
fn kill_after(env: &EngineEnv, args: &[&str], delay_us: u64) -> Option<u64> {
    let start = std::time::Instant::now();
    let mut child = env
        .cmd()
        .args(args)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("spawn berth");
    std::thread::sleep(Duration::from_micros(delay_us));
    // The child is not reaped yet, so its pid cannot have been reused.
    let killed = matches!(child.try_wait(), Ok(None));
    if killed {
        let pid = nix::unistd::Pid::from_raw(child.id() as i32);
        let _ = nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGKILL);
    }
    let st = child.wait().expect("wait berth");
    eprintln!("berth {args:?} after {delay_us} us: killed={killed} status={st}");
    (!killed).then(|| start.elapsed().as_micros() as u64)
}

/// The database opens and SQLite finds it consistent.
fn check_db(root: &Path) {
    let path = root.join("engine.db");
    let c = rusqlite::Connection::open(&path)
        .unwrap_or_else(|e| panic!("open {}: {e}", path.display()));
    let res: String = c
        .query_row("PRAGMA integrity_check", [], |r| r.get(0))
        .unwrap_or_else(|e| panic!("integrity_check on {}: {e}", path.display()));
    assert_eq!(res, "ok", "integrity_check of {}", path.display());
}

/// Every container `ps -a` lists has its directory; returns their ids.
fn check_listed(env: &EngineEnv) -> Vec<String> {
    let out = env.ok(&["ps", "-a", "--format", "json"]);
    let v: serde_json::Value = serde_json::from_str(&out).expect("ps JSON");
    let mut ids = Vec::new();
    for c in v.as_array().expect("ps JSON array") {
        let id = c["Id"].as_str().expect("Id").to_string();
        let dir = env.root().join("containers").join(&id);
        assert!(
            dir.is_dir(),
            "listed container {id} has no {}",
            dir.display()
        );
        ids.push(id);
    }
    ids
}

fn volume_dir(env: &EngineEnv, name: &str) -> PathBuf {
    let v: serde_json::Value =
        serde_json::from_str(&env.ok(&["volume", "inspect", name])).expect("inspect JSON");
    PathBuf::from(v[0]["Mountpoint"].as_str().expect("Mountpoint"))
}

fn check_markers(env: &EngineEnv, vol: &str, done: &[u64]) {
    let ls = env.ok(&["volume", "ls", "-q"]);
    assert!(ls.lines().any(|l| l == vol), "volume {vol} still listed");
    let dir = volume_dir(env, vol);
    for i in done {
        let f = dir.join(format!("m-{i}"));
        assert_eq!(
            read_or_empty(&f),
            format!("{i}\n"),
            "marker of completed run {i} in {}",
            f.display()
        );
    }
}

/// Mounts under the test's dir besides its network namespace pin.
fn leftover_mounts(env: &EngineEnv) -> Vec<String> {
    let pin = env.netns.display().to_string();
    env.mounts()
        .into_iter()
        .filter(|l| l.split(' ').nth(4) != Some(pin.as_str()))
        .collect()
}

/// Cgroup dirs left below the test's parent in any hierarchy.
fn cgroup_children(env: &EngineEnv) -> Vec<PathBuf> {
    let mut v = Vec::new();
    for p in env.cgroup_dirs() {
        if let Ok(rd) = std::fs::read_dir(&p) {
            v.extend(rd.flatten().map(|e| e.path()).filter(|p| p.is_dir()));
        }
    }
    v
}

#[test]
fn killed_commands_leave_a_consistent_engine() {
    require_root!();
    let env = EngineEnv::new();
    let img = env.busybox_image();
    let vol = "crashdata";
    let spec = format!("{vol}:/data");
    env.ok(&["volume", "create", vol]);
    let mut done: Vec<u64> = Vec::new();
    // How long each kind of command took when it was not killed: the delay
    // is drawn below that (and below MAX_DELAY_US) so that kills land
    // inside the command rather than after it.
    let mut took = [MAX_DELAY_US; 5];

    for i in 0..ITERATIONS {
        let seed = BASE_SEED ^ i;
        let mut rng = Rng(seed);
        let op = (i % 5) as usize;
        let delay = rng.next() % (took[op].min(MAX_DELAY_US) + 1);
        eprintln!("iteration {i}: seed {seed:#x}, delay {delay} us");
        let name = format!("crash{i}");
        let scratch = format!("scratch{i}");
        let ran = match op {
            0 => {
                let cmd = format!("echo {i} > /data/d-{i}; exec sleep 30");
                kill_after(
                    &env,
                    &[
                        "run", "-d", "--name", &name, "-p", "80", "-v", &spec, &img, "sh", "-c",
                        &cmd,
                    ],
                    delay,
                )
            }
            1 => {
                // Victims that surely exist, then the killed `rm -f` of
                // them all (removed side by side, see ops::rm_all).
                let others = [format!("{name}b"), format!("{name}c")];
                env.ok(&[
                    "run", "-d", "--name", &name, "-v", &spec, &img, "sleep", "30",
                ]);
                for o in &others {
                    env.ok(&["run", "-d", "--name", o, &img, "sleep", "30"]);
                }
                kill_after(&env, &["rm", "-f", &name, &others[0], &others[1]], delay)
            }
            2 => kill_after(&env, &["volume", "create", &scratch], delay),
            3 => {
                env.ok(&["volume", "create", &scratch]);
                kill_after(&env, &["volume", "rm", &scratch], delay)
            }
            _ => kill_after(&env, &["run", "--rm", "-v", &spec, &img, "true"], delay),
        };
        if let Some(us) = ran {
            took[op] = us;
        }
        // The next normal commands reconcile; then the checks.
        let ids = check_listed(&env);
        env.ok(&["volume", "ls"]);
        check_db(&env.root());
        eprintln!("iteration {i}: {} containers listed", ids.len());
        // A completed run writing its marker, then all markers so far.
        let cmd = format!("echo {i} > /data/m-{i}");
        env.ok(&["run", "--rm", "-v", &spec, &img, "sh", "-c", &cmd]);
        done.push(i);
        check_markers(&env, vol, &done);
    }

    // Remove everything; nothing of the test may remain.
    for id in check_listed(&env) {
        env.ok(&["rm", "-f", &id]);
    }
    assert!(
        check_listed(&env).is_empty(),
        "rm -f removed every container"
    );
    check_markers(&env, vol, &done);
    env.ok(&["volume", "prune"]);
    check_db(&env.root());
    let mounts = leftover_mounts(&env);
    assert!(
        mounts.is_empty(),
        "mounts left under the test root: {mounts:#?}"
    );
    let left = cgroup_children(&env);
    assert!(
        left.is_empty(),
        "cgroups left under {}: {left:#?}",
        env.cgroup_parent
    );
    // Networking: no container veth, no published port, no address held.
    let links = env
        .in_netns("ip")
        .args(["-o", "link"])
        .output()
        .expect("ip link");
    let links = String::from_utf8_lossy(&links.stdout).to_string();
    assert!(!links.contains(": vb"), "container veths left: {links}");
    let table = env.nft_berth();
    assert!(!table.contains(" dport "), "published ports left: {table}");
    let net: serde_json::Value =
        serde_json::from_str(&env.ok(&["network", "inspect", "berth"])).expect("network JSON");
    assert_eq!(
        net[0]["Containers"].as_object().map(|m| m.len()),
        Some(0),
        "addresses still held: {net}"
    );
}

/// Every blob under the image store hashes to its file name; their count.
fn check_blobs(root: &Path) -> usize {
    let dir = root.join("images/blobs/sha256");
    let mut n = 0;
    for e in std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("read {}: {e}", dir.display()))
        .flatten()
    {
        let path = e.path();
        let name = e.file_name().to_string_lossy().to_string();
        let out = std::process::Command::new("sha256sum")
            .arg(&path)
            .output()
            .expect("run sha256sum");
        let sum = String::from_utf8_lossy(&out.stdout);
        assert_eq!(
            sum.split_whitespace().next(),
            Some(name.as_str()),
            "blob {} does not match its digest (half-written?)",
            path.display()
        );
        n += 1;
    }
    n
}

const PULL_ITERATIONS: u64 = 8;

#[test]
fn killed_pulls_leave_a_consistent_store() {
    require_root!();
    let env = EngineEnv::new();
    let Some(reg) = Registry::start_in(&env) else {
        eprintln!("SKIP: killed_pulls_leave_a_consistent_store: docker-registry is not installed");
        return;
    };
    let img = env.busybox_image();
    let remote = format!("127.0.0.1:{}/berth/crash:1", reg.port);
    env.ok(&["push", "-q", &img, &remote]);
    env.ok(&["rmi", &img]);
    let mut took = MAX_DELAY_US;
    for i in 0..PULL_ITERATIONS {
        let seed = BASE_SEED ^ (0x9011 + i);
        let mut rng = Rng(seed);
        let delay = rng.next() % (took.min(MAX_DELAY_US) + 1);
        eprintln!("pull iteration {i}: seed {seed:#x}, delay {delay} us");
        if let Some(us) = kill_after(&env, &["pull", "-q", &remote], delay) {
            took = us;
        }
        // The store reads, and holds no blob that is not what it claims.
        env.ok(&["images"]);
        let blobs = check_blobs(&env.root());
        eprintln!("pull iteration {i}: {blobs} blobs verified");
        // A retry completes the image, and it runs.
        env.ok(&["pull", "-q", &remote]);
        check_blobs(&env.root());
        assert_eq!(
            env.ok(&["run", "--rm", &remote, "echo", "pulled"]),
            "pulled\n"
        );
        env.ok(&["rmi", &remote]);
    }
    assert_eq!(check_blobs(&env.root()), 0, "rmi collected every blob");
    let mounts = leftover_mounts(&env);
    assert!(
        mounts.is_empty(),
        "mounts left under the test root: {mounts:#?}"
    );
}
