//! Starting a container detached from the service itself, instead of
//! through a `berth start` process: the service spawns the container's
//! monitor (`berth ... container-monitor ID`) and waits for its report, as
//! `berth start` does ([`berth_engine::lifecycle::start_detached`]).
//!
//! What stays as with `berth start`:
//! - The monitor is a fresh single-threaded process (this one is not): the
//!   runtime runs in it, never here.
//! - It runs from a read-only view of the `berth` binary (CVE-2019-5736,
//!   see `berth_runtime::selfexe`), made once and kept: it is exec'd as
//!   `/proc/self/fd/N`, so it needs no re-exec of its own.
//! - It is detached (its own session) and holds the container: stopping
//!   the service leaves it running. Until it exits it is this process's
//!   child; one task reaps the monitors that exited at every SIGCHLD (no
//!   zombie, no thread per container; the other children, `berth`
//!   commands, are left to tokio, which waits for each by pid).

use std::ffi::OsString;
use std::os::fd::{AsRawFd, OwnedFd};
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command};
use std::sync::{Arc, Mutex, Once};

use berth_engine::{handoff, lifecycle, ContainerRow, Engine};

/// How monitors are spawned: the `berth` binary's read-only view and the
/// small monitor next to it.
pub struct Monitors {
    berth: PathBuf,
    /// `None`: no read-only view could be made; starts go through `berth
    /// start` (which makes its own).
    exe: Option<OwnedFd>,
    /// `$BERTH_MONITOR` for the monitors (empty: none).
    small: OsString,
    /// Monitors spawned here, not reaped yet.
    children: Mutex<Vec<Child>>,
    reaper: Once,
}

impl Monitors {
    /// For the `berth` binary at `berth`.
    pub fn new(berth: &Path) -> Monitors {
        let exe = std::fs::File::open(berth)
            .map_err(|e| e.to_string())
            .and_then(|f| berth_runtime::selfexe::protected_exe(&f).map_err(|e| e.to_string()));
        let exe = match exe {
            Ok(fd) => Some(fd),
            Err(e) => {
                eprintln!(
                    "berth: containers start through `berth start` (no read-only view of {}: {e})",
                    berth.display()
                );
                None
            }
        };
        let small = handoff::find_small(std::env::var_os(handoff::ENV), berth.parent())
            .map(PathBuf::into_os_string)
            .unwrap_or_default();
        Monitors {
            berth: berth.to_path_buf(),
            exe,
            small,
            children: Mutex::new(Vec::new()),
            reaper: Once::new(),
        }
    }

    /// Keeps `child` to reap it once it exits.
    fn adopt(self: &Arc<Self>, child: Child) {
        self.lock().push(child);
        self.reaper.call_once(|| {
            use tokio::signal::unix::{signal, SignalKind};
            match signal(SignalKind::child()) {
                Ok(mut sigchld) => {
                    let me = self.clone();
                    tokio::spawn(async move {
                        while sigchld.recv().await.is_some() {
                            me.reap();
                        }
                    });
                }
                Err(e) => eprintln!(
                    "berth: exited monitors are reaped at the next start only (SIGCHLD: {e})"
                ),
            }
        });
        // It may have exited before it was kept.
        self.reap();
    }

    /// Reaps the monitors that exited (by pid: nobody else's children).
    fn reap(&self) {
        self.lock().retain_mut(|c| matches!(c.try_wait(), Ok(None)));
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Vec<Child>> {
        self.children.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Whether starts can run here (else: `berth start`).
    pub fn available(&self) -> bool {
        self.exe.is_some()
    }

    /// The monitor command of container `id` (as `berth start` builds it).
    fn command(&self, engine: &Engine, id: &str) -> Option<Command> {
        let exe = self.exe.as_ref()?;
        let mut c = Command::new(format!("/proc/self/fd/{}", exe.as_raw_fd()));
        c.arg0(&self.berth)
            .arg("--root")
            .arg(&engine.root)
            .arg("--runroot")
            .arg(&engine.runroot)
            .arg("--cgroup-parent")
            .arg(&engine.cgroup_parent)
            .arg("container-monitor")
            .arg(id)
            .env(handoff::ENV, &self.small);
        Some(c)
    }
}

/// Starts `row` detached (the container must not be running): spawns its
/// monitor and waits for its report; the error (as `berth start` prints
/// it) when it failed. Call only when [`Monitors::available`].
pub async fn start_detached(
    monitors: &Arc<Monitors>,
    engine: &Engine,
    row: ContainerRow,
) -> Result<(), String> {
    let Some(cmd) = monitors.command(engine, &row.id) else {
        return Err("no read-only view of the berth binary to start a monitor from".into());
    };
    let child = crate::read(engine, move |e| {
        lifecycle::start_detached_child(e, &row, cmd)
            .map_err(|err| berth_engine::error::error_chain(&err))
    })
    .await??;
    monitors.adopt(child);
    Ok(())
}
