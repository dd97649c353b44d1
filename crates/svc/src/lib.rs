//! What berth's optional async services share: the Docker Engine API
//! service (`berth-service`, crate berth-api) and the CRI service
//! (`berth-cri`, crate berth-cri).
//!
//! Owns: starting a service's async runtime from its command line, and
//! the `berth` command a service runs for every change.
//! May call: berth-engine (the engine's dirs), tokio.
//! Must not: hold state, or be linked into `berth`, `berth-runtime` or
//! `berth-monitor` (they stay synchronous and small).

use std::future::Future;
use std::path::Path;
use std::process::Stdio;

use berth_engine::Engine;

/// A `berth` command (the binary at `berth`) over the same root, runroot
/// and cgroup parent as `engine`, stdin closed, output captured, killed
/// when dropped (a client that goes away leaves nothing running).
pub fn berth_command(berth: &Path, engine: &Engine) -> tokio::process::Command {
    let mut c = tokio::process::Command::new(berth);
    c.arg("--root")
        .arg(&engine.root)
        .arg("--runroot")
        .arg(&engine.runroot)
        .arg("--cgroup-parent")
        .arg(&engine.cgroup_parent)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true);
    c
}

/// The entry point of service `name`: parses this process's arguments with
/// `parse`, then runs `serve` on a two-thread async runtime; the exit
/// code (125 with the error on stderr when either fails).
pub fn main<C, Fut>(
    name: &str,
    parse: impl FnOnce(&[String]) -> Result<C, String>,
    serve: impl FnOnce(C) -> Fut,
) -> i32
where
    Fut: Future<Output = Result<(), String>>,
{
    let args: Vec<String> = std::env::args().skip(1).collect();
    let cfg = match parse(&args) {
        Ok(c) => c,
        Err(e) => {
            eprintln!("{name}: {e}");
            return 125;
        }
    };
    let rt = match tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
    {
        Ok(r) => r,
        Err(e) => {
            eprintln!("{name}: start the async runtime: {e}");
            return 125;
        }
    };
    match rt.block_on(serve(cfg)) {
        Ok(()) => 0,
        Err(e) => {
            eprintln!("{name}: {e}");
            125
        }
    }
}
