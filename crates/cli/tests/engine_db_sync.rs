//! The engine database's commits do not wait for the disk: WAL mode with
//! `synchronous=NORMAL` (crash-consistent: a killed berth loses nothing,
//! a power cut at most the last commits; SQLite's WAL docs), so `run --rm`
//! makes no fsync of `engine.db` or its WAL. Only the writes of volume
//! records (create, rm, and the rows of containers using a volume) commit
//! with `synchronous=FULL` (a volume's record is the only way to its
//! data), and that does not stick to the process's connection. Seen from outside with
//! `strace -f -y` (every fsync with the path it was made on).
mod common;

use common::EngineEnv;

/// Runs `berth ARGS` under strace; the fsync-like calls made on the
/// engine database's files.
fn db_syncs(env: &EngineEnv, args: &[&str]) -> Vec<String> {
    let log = env
        .dir
        .path()
        .join(format!("strace-{}.txt", common::unique("s")));
    let o = env
        .cmd_under(&[
            "strace".as_ref(),
            "-f".as_ref(),
            "-y".as_ref(),
            "-qq".as_ref(),
            "-e".as_ref(),
            "trace=fsync,fdatasync,sync_file_range,msync".as_ref(),
            "-o".as_ref(),
            log.as_os_str(),
        ])
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

#[test]
fn run_rm_makes_no_fsync_of_the_engine_db_and_volume_commits_stay_durable() {
    require_root!();
    if !common::have_strace() {
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
    // A named volume made by `run`: its record, and the container rows
    // that use it, reach the disk (WAL fsyncs; volume_store.rs), nothing
    // else is synced.
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
        !syncs.is_empty() && syncs.iter().all(|l| l.contains("engine.db-wal")),
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
