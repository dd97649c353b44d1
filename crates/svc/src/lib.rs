//! What berth's optional async services share: the Docker Engine API
//! service (`berth-service`, crate berth-api) and the CRI service
//! (`berth-cri`, crate berth-cri).
//!
//! Owns: starting a service's async runtime from its command line, the
//! `berth` command a service runs for every change (and how its error
//! reads), blocking engine reads off the async threads, and wake-ups on
//! the engine's changes (`changes`), and starting containers' monitors
//! from the service (`monitors`).
//! May call: berth-engine (the engine's dirs, starts), berth-runtime (the
//! read-only view of the binary monitors run from), tokio.
//! Must not: hold state, or be linked into `berth`, `berth-runtime` or
//! `berth-monitor` (they stay synchronous and small).

pub mod changes;
pub mod monitors;

use std::future::Future;
use std::path::Path;
use std::process::Stdio;

use berth_engine::Engine;

/// `berth create ARGS` done in a service's process by the `berth` CLI's
/// own code (the service binaries link it and hand it in): the new
/// container's ID, or the error as `berth create` prints it. Shared by
/// the Docker API service and the CRI service.
pub type CreateFn = dyn Fn(&Engine, &[String]) -> Result<String, String> + Send + Sync;

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

/// What a `berth` command printed and how it ended.
pub struct BerthOutput {
    pub code: i32,
    pub stdout: Vec<u8>,
    pub stderr: Vec<u8>,
}

impl BerthOutput {
    pub fn success(&self) -> bool {
        self.code == 0
    }

    /// Its error for a client: the last non-empty line of its stderr,
    /// without the `berth: ` prefix.
    pub fn error_line(&self) -> String {
        String::from_utf8_lossy(&self.stderr)
            .lines()
            .rev()
            .find(|l| !l.trim().is_empty())
            .unwrap_or("berth failed")
            .trim_start_matches("berth: ")
            .to_string()
    }
}

/// Runs `berth ARGS` (see [`berth_command`]) to its end; the error says
/// which binary could not run.
pub async fn run_berth(
    berth: &Path,
    engine: &Engine,
    args: &[String],
) -> Result<BerthOutput, String> {
    let o = berth_command(berth, engine)
        .args(args)
        .output()
        .await
        .map_err(|e| format!("run {}: {e}", berth.display()))?;
    Ok(BerthOutput {
        code: o.status.code().unwrap_or(128),
        stdout: o.stdout,
        stderr: o.stderr,
    })
}

/// Runs a blocking engine read off the async threads; the error is the
/// read's panic, as text.
pub async fn read<T: Send + 'static>(
    engine: &Engine,
    f: impl FnOnce(&Engine) -> T + Send + 'static,
) -> Result<T, String> {
    let engine = engine.clone();
    tokio::task::spawn_blocking(move || f(&engine))
        .await
        .map_err(|e| format!("engine read failed: {e}"))
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
