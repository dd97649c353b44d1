//! `berth compose ARGS`: the installed Docker Compose (`docker-compose`,
//! or `$BERTH_COMPOSE_PROVIDER`) against berth's Docker API, as `podman
//! compose` does. The service already listening on `<runroot>/berth.sock`
//! is used; else one is started on a socket of this command's own for
//! the duration of the run (its containers keep running after it).

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use clap::Args;

/// `compose`.
#[derive(Debug, Args)]
pub struct ComposeArgs {
    /// Arguments for Compose (example: `berth compose -p web up -d`).
    #[arg(trailing_var_arg = true, allow_hyphen_values = true)]
    pub args: Vec<String>,
}

/// `name` on `$PATH`.
fn on_path(name: &str) -> Option<PathBuf> {
    if name.contains('/') {
        return Some(PathBuf::from(name)).filter(|p| p.is_file());
    }
    std::env::split_paths(&std::env::var_os("PATH")?)
        .map(|d| d.join(name))
        .find(|p| p.is_file())
}

/// Stops the service this command started (by its pid), on every way out.
struct Started {
    child: std::process::Child,
    sock: PathBuf,
}

impl Drop for Started {
    fn drop(&mut self) {
        // SIGTERM: the service removes its socket and exits.
        let pid = rustix::process::Pid::from_raw(self.child.id() as i32);
        if let Some(pid) = pid {
            let _ = rustix::process::kill_process(pid, rustix::process::Signal::TERM);
        }
        let end = Instant::now() + Duration::from_secs(10);
        loop {
            match self.child.try_wait() {
                Ok(Some(_)) | Err(_) => break,
                Ok(None) if Instant::now() >= end => {
                    let _ = self.child.kill();
                    let _ = self.child.wait();
                    break;
                }
                Ok(None) => std::thread::sleep(Duration::from_millis(20)),
            }
        }
        let _ = std::fs::remove_file(&self.sock);
    }
}

fn start_service(root: &Path, e: &super::run::EngineArgs, sock: &Path) -> Result<Started> {
    use std::os::unix::process::CommandExt;
    let mut c =
        super::system::service_command(root, e, 0, Some(format!("unix://{}", sock.display())))?;
    let child = c
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        // Its own process group: a ^C for Compose does not stop it first.
        .process_group(0)
        .spawn()
        .context("start berth's API service for compose")?;
    let mut s = Started {
        child,
        sock: sock.to_path_buf(),
    };
    let end = Instant::now() + Duration::from_secs(30);
    while std::os::unix::net::UnixStream::connect(sock).is_err() {
        if let Ok(Some(st)) = s.child.try_wait() {
            bail!(
                "berth's API service for compose exited ({st}) before listening on {}",
                sock.display()
            );
        }
        if Instant::now() >= end {
            bail!(
                "berth's API service for compose did not listen on {} within 30s",
                sock.display()
            );
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    Ok(s)
}

/// Runs Compose; its exit code.
pub fn compose(root: &Path, e: &super::run::EngineArgs, a: &ComposeArgs) -> Result<i32> {
    let provider =
        std::env::var("BERTH_COMPOSE_PROVIDER").unwrap_or_else(|_| "docker-compose".into());
    let Some(bin) = on_path(&provider) else {
        bail!(
            "{provider} is not installed: install Docker Compose (apt-get install docker-compose) or set BERTH_COMPOSE_PROVIDER to its path"
        );
    };
    e.engine(root)?;
    let default = e.runroot.join("berth.sock");
    let mut _started = None;
    let sock = if std::os::unix::net::UnixStream::connect(&default).is_ok() {
        default
    } else {
        let s = e
            .runroot
            .join(format!("compose-{}.sock", std::process::id()));
        _started = Some(start_service(root, e, &s)?);
        s
    };
    let st = std::process::Command::new(&bin)
        .args(&a.args)
        .env("DOCKER_HOST", format!("unix://{}", sock.display()))
        .status()
        .with_context(|| format!("run {}", bin.display()))?;
    use std::os::unix::process::ExitStatusExt;
    Ok(st.code().unwrap_or_else(|| 128 + st.signal().unwrap_or(0)))
}
