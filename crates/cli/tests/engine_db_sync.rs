//! The engine database's commits do not wait for the disk: WAL mode with
//! `synchronous=NORMAL` (crash-consistent: a killed berth loses nothing,
//! a power cut at most the last commits; SQLite's WAL docs), so `run --rm`
//! makes no fsync of `engine.db` or its WAL. Only `volume create` and
//! `volume rm` commit with `synchronous=FULL` (a volume's record is the
//! only way to its data), and that stays with them: the container writes
//! after them in the same command do not fsync. Seen from outside with
//! `strace -f -y` (every fsync with the path it was made on).
mod common;

use std::process::Command;

use common::EngineEnv;

/// Runs `berth ARGS` under strace; the fsync-like calls made on the
/// engine database's files.
fn db_syncs(env: &EngineEnv, args: &[&str]) -> Vec<String> {
    let log = env
        .dir
        .path()
        .join(format!("strace-{}.txt", common::unique("s")));
    let o = env
        .in_netns("strace")
        .args([
            "-f",
            "-y",
            "-qq",
            "-e",
            "trace=fsync,fdatasync,sync_file_range,msync",
        ])
        .arg("-o")
        .arg(&log)
        .arg(common::berth_bin())
        .arg("--root")
        .arg(env.root())
        .arg("--runroot")
        .arg(env.runroot())
        .arg("--cgroup-parent")
        .arg(&env.cgroup_parent)
        .args(args)
        .stdin(std::process::Stdio::null())
        .output()
        .expect("run strace");
    common::ok(&o);
    let text = std::fs::read_to_string(&log).unwrap_or_default();
    let all: Vec<String> = text.lines().map(String::from).collect();
    eprintln!(
        "berth {args:?} under strace: {} sync calls: {all:#?}",
        all.len()
    );
    all.into_iter()
        .filter(|l| l.contains("/engine.db"))
        .collect()
}

fn have_strace() -> bool {
    let ok = Command::new("strace")
        .arg("-V")
        .output()
        .is_ok_and(|o| o.status.success());
    if !ok {
        eprintln!("SKIP: counting fsyncs needs strace (apt-get install strace)");
    }
    ok
}

#[test]
fn run_rm_makes_no_fsync_of_the_engine_db_and_volume_commits_stay_durable() {
    require_root!();
    if !have_strace() {
        return;
    }
    let env = EngineEnv::new();
    let image = env.busybox_image();
    // The database and its WAL exist (the first open of a new one syncs
    // the dir it makes them in).
    env.ok(&["run", "--rm", "--network", "none", &image, "true"]);
    let syncs = db_syncs(&env, &["run", "--rm", "--network", "none", &image, "true"]);
    assert!(
        syncs.is_empty(),
        "run --rm synced the engine db: {syncs:#?}"
    );
    // A named volume made by `run`: its record's commit reaches the disk
    // (one WAL fsync), the container's rows after it in the same process
    // do not (it used to leave its connection at FULL: 6 fsyncs).
    let syncs = db_syncs(
        &env,
        &[
            "run",
            "--rm",
            "--network",
            "none",
            "-v",
            "dbsync-vol:/data",
            &image,
            "true",
        ],
    );
    assert!(
        (1..=2).contains(&syncs.len()) && syncs.iter().all(|l| l.contains("engine.db-wal")),
        "volume create then run: {syncs:#?}"
    );
    let vols = env.ok(&["volume", "ls", "--format", "{{.Name}}"]);
    assert!(vols.lines().any(|l| l == "dbsync-vol"), "{vols}");
    let syncs = db_syncs(&env, &["volume", "rm", "dbsync-vol"]);
    assert!(!syncs.is_empty(), "volume rm committed without an fsync");
    let syncs = db_syncs(&env, &["run", "--rm", "--network", "none", &image, "true"]);
    assert!(
        syncs.is_empty(),
        "run --rm synced the engine db: {syncs:#?}"
    );
}
