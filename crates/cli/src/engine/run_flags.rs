//! The `run`/`create` flags of `berth_engine::flags` and
//! `berth_engine::health` (flattened into `RunArgs`), plus `--cidfile`,
//! `-a/--attach` and relative `-v ./dir:/dst` binds.

use std::path::{Path, PathBuf};

use anyhow::{Context, Result};
use berth_engine::flags::ExtraOptions;
use berth_engine::health::HealthFlags;
use clap::Args;

/// Flags beyond the basic ones (Docker's and podman's spelling).
#[derive(Debug, Args, Default)]
pub struct FlagArgs {
    /// Resource limit NAME=SOFT[:HARD] (e.g. nofile=1024:2048; -1 = unlimited).
    #[arg(long)]
    pub ulimit: Vec<String>,
    /// Add a host device: HOST[:CONTAINER][:PERMISSIONS] (permissions r, w, m).
    #[arg(long)]
    pub device: Vec<String>,
    /// Allow devices in the device cgroup: 'TYPE MAJOR:MINOR PERMS' (e.g. 'c 1:3 rwm').
    #[arg(long)]
    pub device_cgroup_rule: Vec<String>,
    /// Size of /dev/shm (e.g. 128m).
    #[arg(long)]
    pub shm_size: Option<String>,
    /// Set a namespaced kernel parameter (e.g. net.ipv4.ip_forward=1).
    #[arg(long)]
    pub sysctl: Vec<String>,
    /// Add a supplementary group (name in the image or number).
    #[arg(long)]
    pub group_add: Vec<String>,
    /// Signal `stop` sends (default: the image's, else SIGTERM).
    #[arg(long)]
    pub stop_signal: Option<String>,
    /// Seconds `stop` waits before SIGKILL (default 10).
    #[arg(long)]
    pub stop_timeout: Option<u64>,
    /// IPC namespace: private (default), shareable, host, none or container:NAME.
    #[arg(long)]
    pub ipc: Option<String>,
    /// PID namespace: private (default), host or container:NAME.
    #[arg(long)]
    pub pid: Option<String>,
    /// UTS namespace: private (default) or host.
    #[arg(long)]
    pub uts: Option<String>,
    /// Publish every exposed port (the image's and --expose) on a free host port.
    #[arg(short = 'P', long)]
    pub publish_all: bool,
    /// Expose a port or range (PORT[-PORT][/PROTO]) for -P.
    #[arg(long)]
    pub expose: Vec<String>,
    /// Memory plus swap limit (-1: unlimited swap); needs --memory.
    #[arg(long, allow_negative_numbers = true)]
    pub memory_swap: Option<String>,
    /// Memory soft limit.
    #[arg(long)]
    pub memory_reservation: Option<String>,
    /// CPUs the container may use (e.g. 0-2,4).
    #[arg(long)]
    pub cpuset_cpus: Option<String>,
    /// Memory nodes the container may use.
    #[arg(long)]
    pub cpuset_mems: Option<String>,
    /// CFS period in microseconds.
    #[arg(long)]
    pub cpu_period: Option<u64>,
    /// CFS quota in microseconds (-1: none).
    #[arg(long, allow_negative_numbers = true)]
    pub cpu_quota: Option<i64>,
    /// Block IO weight (10 to 1000).
    #[arg(long)]
    pub blkio_weight: Option<u16>,
    /// Do not kill the container's processes when it runs out of memory.
    #[arg(long)]
    pub oom_kill_disable: bool,
    /// The processes' OOM score adjustment (-1000 to 1000).
    #[arg(long, allow_negative_numbers = true)]
    pub oom_score_adj: Option<i32>,
    /// Log driver: k8s-file (or json-file, the default), none, passthrough.
    #[arg(long)]
    pub log_driver: Option<String>,
    /// Log option: max-size=SIZE, max-file=N.
    #[arg(long)]
    pub log_opt: Vec<String>,
    /// Healthcheck command (a shell command, or a JSON array; none disables).
    #[arg(long)]
    pub health_cmd: Option<String>,
    /// Time between healthchecks (default 30s; disable: only `healthcheck run`).
    #[arg(long)]
    pub health_interval: Option<String>,
    /// Time a healthcheck may run (default 30s).
    #[arg(long)]
    pub health_timeout: Option<String>,
    /// Failures in a row that make the container unhealthy (default 3).
    #[arg(long)]
    pub health_retries: Option<u32>,
    /// Time after the start when failures do not count (default 0s).
    #[arg(long)]
    pub health_start_period: Option<String>,
    /// Disable the image's healthcheck.
    #[arg(long)]
    pub no_healthcheck: bool,
    /// Write the container's ID to this file (it must not exist).
    #[arg(long)]
    pub cidfile: Option<PathBuf>,
    /// Attach these streams in the foreground: stdin, stdout, stderr.
    #[arg(short = 'a', long)]
    pub attach: Vec<String>,
    /// Add an annotation to the container's OCI config (KEY=VALUE, repeatable).
    #[arg(long)]
    pub annotation: Vec<String>,
}

impl FlagArgs {
    /// The engine's view of these flags.
    pub fn extra(&self) -> ExtraOptions {
        ExtraOptions {
            ulimits: self.ulimit.clone(),
            devices: self.device.clone(),
            device_cgroup_rules: self.device_cgroup_rule.clone(),
            shm_size: self.shm_size.clone(),
            sysctls: self.sysctl.clone(),
            group_add: self.group_add.clone(),
            stop_signal: self.stop_signal.clone(),
            stop_timeout: self.stop_timeout,
            ipc: self.ipc.clone(),
            pid: self.pid.clone(),
            uts: self.uts.clone(),
            publish_all: self.publish_all,
            expose: self.expose.clone(),
            memory_swap: self.memory_swap.clone(),
            memory_reservation: self.memory_reservation.clone(),
            cpuset_cpus: self.cpuset_cpus.clone(),
            cpuset_mems: self.cpuset_mems.clone(),
            cpu_period: self.cpu_period,
            cpu_quota: self.cpu_quota,
            blkio_weight: self.blkio_weight,
            oom_kill_disable: self.oom_kill_disable,
            oom_score_adj: self.oom_score_adj,
            log_driver: self.log_driver.clone(),
            log_opts: self.log_opt.clone(),
            annotations: self.annotation.clone(),
            health: HealthFlags {
                cmd: self.health_cmd.clone(),
                interval: self.health_interval.clone(),
                timeout: self.health_timeout.clone(),
                retries: self.health_retries,
                start_period: self.health_start_period.clone(),
                disable: self.no_healthcheck,
            },
        }
    }

    /// The streams `-a` names (all three when none is named).
    pub fn attached(&self) -> Result<Streams> {
        if self.attach.is_empty() {
            return Ok(Streams {
                stdin: true,
                stdout: true,
                stderr: true,
            });
        }
        let mut s = Streams::default();
        for a in &self.attach {
            match a.to_ascii_lowercase().as_str() {
                "stdin" => s.stdin = true,
                "stdout" => s.stdout = true,
                "stderr" => s.stderr = true,
                other => anyhow::bail!("-a/--attach {other:?}: use stdin, stdout or stderr"),
            }
        }
        Ok(s)
    }

    /// Claims the `--cidfile` before the container exists (Docker refuses
    /// an existing file); the ID is written by [`write_cidfile`].
    pub fn claim_cidfile(&self) -> Result<Option<std::fs::File>> {
        let Some(p) = &self.cidfile else {
            return Ok(None);
        };
        let f = std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .open(p)
            .map_err(|e| {
                if e.kind() == std::io::ErrorKind::AlreadyExists {
                    anyhow::anyhow!(
                        "--cidfile {}: the file exists; remove it (another container may use it)",
                        p.display()
                    )
                } else {
                    anyhow::Error::new(e).context(format!("--cidfile {}", p.display()))
                }
            })?;
        Ok(Some(f))
    }

    /// Removes a claimed `--cidfile` after a failed create.
    pub fn release_cidfile(&self) {
        if let Some(p) = &self.cidfile {
            let _ = std::fs::remove_file(p);
        }
    }
}

/// Writes the container's ID into the claimed `--cidfile`.
pub fn write_cidfile(f: Option<std::fs::File>, id: &str, path: Option<&Path>) -> Result<()> {
    use std::io::Write;
    if let (Some(mut f), Some(p)) = (f, path) {
        f.write_all(id.as_bytes())
            .with_context(|| format!("write --cidfile {}", p.display()))?;
    }
    Ok(())
}

/// Which streams `-a` attaches.
#[derive(Debug, Default, Clone, Copy)]
pub struct Streams {
    pub stdin: bool,
    pub stdout: bool,
    pub stderr: bool,
}

impl Streams {
    /// Points the streams not attached at /dev/null (the container
    /// inherits ours in the foreground).
    pub fn detach_others(&self) -> Result<()> {
        let null = std::fs::OpenOptions::new()
            .read(true)
            .write(true)
            .open("/dev/null")
            .context("open /dev/null")?;
        if !self.stdout {
            rustix::stdio::dup2_stdout(&null).context("redirect stdout")?;
        }
        if !self.stderr {
            rustix::stdio::dup2_stderr(&null).context("redirect stderr")?;
        }
        Ok(())
    }
}

/// `-v ./dir:/dst` (or `../dir`, `.`): Docker and podman take a host path
/// starting with `.` relative to the current directory.
pub fn absolute_volume(v: &str) -> Result<String> {
    let Some((src, rest)) = v.split_once(':') else {
        return Ok(v.to_string());
    };
    if src == "." || src == ".." || src.starts_with("./") || src.starts_with("../") {
        let cwd = std::env::current_dir().context("-v: the current directory")?;
        let abs = normalize(&cwd.join(src));
        return Ok(format!("{}:{rest}", abs.display()));
    }
    Ok(v.to_string())
}

/// `a/./b/../c` as `a/c`, without touching the file system.
fn normalize(p: &Path) -> PathBuf {
    use std::path::Component;
    let mut out = PathBuf::new();
    for c in p.components() {
        match c {
            Component::CurDir => {}
            Component::ParentDir => {
                out.pop();
            }
            other => out.push(other),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn relative_volumes() {
        let cwd = std::env::current_dir().unwrap();
        assert_eq!(
            absolute_volume("./d:/x:ro").unwrap(),
            format!("{}:/x:ro", cwd.join("d").display())
        );
        assert_eq!(absolute_volume("/a:/b").unwrap(), "/a:/b");
        assert_eq!(absolute_volume("name:/b").unwrap(), "name:/b");
        assert_eq!(normalize(Path::new("/a/./b/../c")), PathBuf::from("/a/c"));
    }
}
