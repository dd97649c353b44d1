//! Healthchecks without a daemon (Docker's and podman's HEALTHCHECK).
//!
//! The check's configuration comes from `--health-*` flags over the
//! image's `Healthcheck`. The container's monitor (the small
//! `berth-monitor` while it idles) wakes every interval and spawns `berth
//! healthcheck run ID`, which execs the check in the container through the
//! runtime's exec path, records the result in `<dir>/health.json` and
//! exits 0 (healthy) or 1 (unhealthy), as podman's command does.

use std::ffi::OsString;
use std::io::{Read, Seek, Write};
use std::path::PathBuf;
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::create::ContainerConfig;
use crate::db::{ContainerRow, Status};
use crate::error::{io, rt, sys, EngineError, Result};
use crate::opts::OptsError;
use crate::Engine;

/// The `--health-*` flags as given.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct HealthFlags {
    /// `--health-cmd` (a shell command, or a JSON array run directly;
    /// `none` disables the image's check).
    pub cmd: Option<String>,
    pub interval: Option<String>,
    pub timeout: Option<String>,
    pub retries: Option<u32>,
    pub start_period: Option<String>,
    /// `--no-healthcheck`.
    pub disable: bool,
}

/// A container's check, resolved at create (Docker's HealthConfig; times
/// in nanoseconds as Docker records them).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct HealthConfig {
    /// `["CMD", args...]` or `["CMD-SHELL", command]`.
    pub test: Vec<String>,
    /// 0: the monitor does not schedule checks (`--health-interval disable`).
    pub interval: u64,
    pub timeout: u64,
    pub retries: u32,
    pub start_period: u64,
}

const SECOND: u64 = 1_000_000_000;
const DEFAULT_INTERVAL: u64 = 30 * SECOND;
const DEFAULT_TIMEOUT: u64 = 30 * SECOND;
const DEFAULT_RETRIES: u32 = 3;
/// Results kept in the log (Docker keeps 5).
const LOG_KEEP: usize = 5;
/// Output kept per result (Docker's 4 KiB).
const OUTPUT_KEEP: usize = 4096;

fn invalid(flag: &'static str, value: &str, why: &str) -> OptsError {
    OptsError::Invalid {
        flag,
        value: value.into(),
        why: why.into(),
    }
}

/// A Go duration (`30s`, `1m30s`, `500ms`, `1h`) in nanoseconds.
pub fn parse_duration(flag: &'static str, s: &str) -> std::result::Result<u64, OptsError> {
    let bad = || invalid(flag, s, "use a duration such as 30s, 1m30s or 500ms");
    let mut total: f64 = 0.0;
    let mut rest = s.trim();
    if rest.is_empty() {
        return Err(bad());
    }
    if rest == "0" {
        return Ok(0);
    }
    while !rest.is_empty() {
        let n = rest
            .find(|c: char| !(c.is_ascii_digit() || c == '.'))
            .ok_or_else(bad)?;
        let (num, tail) = rest.split_at(n);
        let v: f64 = num.parse().map_err(|_| bad())?;
        let u = tail
            .find(|c: char| c.is_ascii_digit() || c == '.')
            .unwrap_or(tail.len());
        let (unit, tail) = tail.split_at(u);
        let mult = match unit {
            "ns" => 1.0,
            "us" | "µs" => 1e3,
            "ms" => 1e6,
            "s" => 1e9,
            "m" => 60e9,
            "h" => 3600e9,
            _ => return Err(bad()),
        };
        total += v * mult;
        rest = tail;
    }
    Ok(total as u64)
}

fn test_of_cmd(cmd: &str) -> Vec<String> {
    let t = cmd.trim();
    if t.eq_ignore_ascii_case("none") {
        return vec!["NONE".into()];
    }
    if t.starts_with('[') {
        if let Ok(v) = serde_json::from_str::<Vec<String>>(t) {
            return std::iter::once("CMD".to_string()).chain(v).collect();
        }
    }
    vec!["CMD-SHELL".into(), cmd.into()]
}

fn ns_field(v: &Value, key: &str) -> Option<u64> {
    v.get(key).and_then(Value::as_u64).filter(|n| *n > 0)
}

/// The check of a new container: the flags over the image's
/// `Healthcheck` (`None`: no check).
pub fn resolve(
    f: &HealthFlags,
    image: Option<&Value>,
) -> std::result::Result<Option<HealthConfig>, OptsError> {
    let image = image.filter(|v| v.is_object());
    let flags_given = f.cmd.is_some()
        || f.interval.is_some()
        || f.timeout.is_some()
        || f.retries.is_some()
        || f.start_period.is_some();
    if f.disable {
        if flags_given {
            return Err(invalid(
                "--no-healthcheck",
                "true",
                "conflicts with the --health-* flags",
            ));
        }
        return Ok(None);
    }
    let image_test: Option<Vec<String>> = image
        .and_then(|v| v.get("Test"))
        .and_then(|t| serde_json::from_value(t.clone()).ok());
    let test = match (&f.cmd, image_test) {
        (Some(c), _) => test_of_cmd(c),
        (None, Some(t)) if !t.is_empty() => t,
        (None, _) => {
            if flags_given {
                return Err(invalid(
                    "--health-interval",
                    f.interval.as_deref().unwrap_or(""),
                    "the --health-* options need --health-cmd (the image has no healthcheck)",
                ));
            }
            return Ok(None);
        }
    };
    if test.first().map(String::as_str) == Some("NONE") {
        return Ok(None);
    }
    if !matches!(test.first().map(String::as_str), Some("CMD" | "CMD-SHELL")) || test.len() < 2 {
        return Err(invalid(
            "--health-cmd",
            &test.join(" "),
            "the healthcheck test must be CMD or CMD-SHELL with a command",
        ));
    }
    // podman's `--health-interval disable`: only `healthcheck run` checks.
    let disabled_interval = f.interval.as_deref() == Some("disable");
    let dur = |flag: &'static str,
               v: &Option<String>,
               key: &str,
               default: u64|
     -> std::result::Result<u64, OptsError> {
        match v {
            Some(s) => {
                let d = parse_duration(flag, s)?;
                if d != 0 && d < 1_000_000 {
                    return Err(invalid(flag, s, "must be at least 1ms"));
                }
                Ok(if d == 0 { default } else { d })
            }
            None => Ok(image.and_then(|i| ns_field(i, key)).unwrap_or(default)),
        }
    };
    Ok(Some(HealthConfig {
        test,
        interval: if disabled_interval {
            0
        } else {
            dur(
                "--health-interval",
                &f.interval,
                "Interval",
                DEFAULT_INTERVAL,
            )?
        },
        timeout: dur("--health-timeout", &f.timeout, "Timeout", DEFAULT_TIMEOUT)?,
        retries: f
            .retries
            .or_else(|| {
                image
                    .and_then(|i| i.get("Retries"))
                    .and_then(Value::as_u64)
                    .map(|n| n as u32)
            })
            .filter(|n| *n > 0)
            .unwrap_or(DEFAULT_RETRIES),
        start_period: dur("--health-start-period", &f.start_period, "StartPeriod", 0)?,
    }))
}

/// One check's result (Docker's shape).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct CheckResult {
    pub start: String,
    pub end: String,
    pub exit_code: i32,
    pub output: String,
}

/// A container's health (inspect's `State.Health`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct HealthState {
    /// `starting`, `healthy` or `unhealthy`.
    pub status: String,
    pub failing_streak: u32,
    pub log: Vec<CheckResult>,
}

impl HealthState {
    fn starting() -> HealthState {
        HealthState {
            status: "starting".into(),
            failing_streak: 0,
            log: vec![],
        }
    }

    /// Docker's rules: a pass is healthy at once; a failure counts
    /// unless it came in the start period, and `retries` failures in a
    /// row make the container unhealthy.
    pub fn record(&mut self, r: CheckResult, cfg: &HealthConfig, in_start_period: bool) {
        if r.exit_code == 0 {
            self.status = "healthy".into();
            self.failing_streak = 0;
        } else if !in_start_period || self.status != "starting" {
            self.failing_streak += 1;
            if self.failing_streak >= cfg.retries {
                self.status = "unhealthy".into();
            }
        }
        self.log.push(r);
        let extra = self.log.len().saturating_sub(LOG_KEEP);
        self.log.drain(..extra);
    }
}

fn state_path(engine: &Engine, id: &str) -> PathBuf {
    engine.dir(id).join("health.json")
}

/// The recorded health of a container with a check.
pub fn state(engine: &Engine, id: &str) -> Option<HealthState> {
    let text = std::fs::read_to_string(state_path(engine, id)).ok()?;
    serde_json::from_str(&text).ok()
}

/// At each start: the health is `starting` again.
pub fn reset(engine: &Engine, id: &str, cfg: &ContainerConfig) -> Result<()> {
    if cfg.health.is_none() {
        return Ok(());
    }
    let p = state_path(engine, id);
    let text = serde_json::to_vec(&HealthState::starting()).expect("state serializes");
    std::fs::write(&p, text).map_err(io("write health state", &p))
}

/// ` (healthy)`, ` (unhealthy)` or ` (health: starting)` after `ps`'s
/// "Up ..." of a running container with a check; empty otherwise.
pub fn ps_suffix(engine: &Engine, row: &ContainerRow) -> String {
    if row.status != Status::Running {
        return String::new();
    }
    let has_check = ContainerConfig::of(row).is_ok_and(|c| c.health.is_some());
    if !has_check {
        return String::new();
    }
    match state(engine, &row.id).map(|s| s.status) {
        Some(s) if s == "starting" => " (health: starting)".into(),
        Some(s) => format!(" ({s})"),
        None => " (health: starting)".into(),
    }
}

/// inspect's `State.Health` (`None` without a check).
pub fn inspect_json(engine: &Engine, row: &ContainerRow) -> Option<Value> {
    let cfg = ContainerConfig::of(row).ok()?;
    cfg.health.as_ref()?;
    let st = state(engine, &row.id).unwrap_or_else(HealthState::starting);
    serde_json::to_value(st).ok()
}

/// The schedule the monitor keeps: when the next check is due.
#[derive(Debug, Clone)]
pub struct Schedule {
    /// `berth ... healthcheck run ID`.
    pub command: Vec<OsString>,
    pub interval: Duration,
    next: Instant,
}

impl Schedule {
    /// The first check comes one interval after the start (Docker).
    pub fn new(command: Vec<OsString>, interval: Duration) -> Schedule {
        Schedule {
            command,
            interval,
            next: Instant::now() + interval,
        }
    }

    /// Milliseconds until the next check (for poll).
    pub fn wait_ms(&self) -> u64 {
        self.next
            .saturating_duration_since(Instant::now())
            .as_millis() as u64
    }

    /// Spawns the check when due (the monitor's SIGCHLD reaping collects
    /// it); its output goes nowhere, the result is in health.json.
    pub fn tick(&mut self) {
        let now = Instant::now();
        if now < self.next {
            return;
        }
        self.next = now + self.interval;
        let Some((prog, args)) = self.command.split_first() else {
            return;
        };
        let spawned = std::process::Command::new(prog)
            .args(args)
            .stdin(std::process::Stdio::null())
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn();
        if let Err(e) = spawned {
            eprintln!("berth monitor: healthcheck: cannot spawn {prog:?}: {e}");
        }
    }
}

/// The healthcheck command line from the full monitor's (`PROG --root R
/// ... container-monitor ID`): the same engine flags, `healthcheck run ID`.
pub fn command_from_monitor(program: OsString, monitor: &[OsString]) -> Option<Vec<OsString>> {
    let at = monitor.iter().position(|a| a == "container-monitor")?;
    let id = monitor.get(at + 1)?.clone();
    let mut v = vec![program];
    v.extend(monitor[1..at].iter().cloned());
    v.extend([
        OsString::from("healthcheck"),
        OsString::from("run"),
        OsString::from("--from-monitor"),
        id,
    ]);
    Some(v)
}

/// Serializes the checks of one container (flock on `health.lock`).
fn lock(engine: &Engine, id: &str) -> Result<std::fs::File> {
    let p = engine.dir(id).join("health.lock");
    let f = std::fs::File::create(&p).map_err(io("create", &p))?;
    rustix::fs::flock(&f, rustix::fs::FlockOperation::LockExclusive)
        .map_err(|e| io("lock", &p)(e.into()))?;
    Ok(f)
}

fn now_rfc3339() -> String {
    crate::rfc3339_ms(crate::now_ms())
}

/// Runs the check of a running container now; records and returns the
/// resulting health. Single-threaded callers only (it execs into the
/// container).
pub fn run_check(engine: &Engine, reference: &str) -> Result<HealthState> {
    let row = crate::lifecycle::find(engine, reference)?;
    let cfg = ContainerConfig::of(&row)?;
    let Some(hc) = cfg.health.clone() else {
        return Err(EngineError::WrongState {
            name: row.name,
            status: row.status.to_string(),
            what: "it has no healthcheck (see --health-cmd)".into(),
        });
    };
    if row.status != Status::Running {
        return Err(EngineError::WrongState {
            name: row.name,
            status: row.status.to_string(),
            what: "healthchecks run in running containers only".into(),
        });
    }
    let id = row.id.clone();
    let _l = lock(engine, &id)?;
    let start = now_rfc3339();
    let (exit_code, output) = exec_check(engine, &id, &hc)?;
    let in_start_period =
        crate::now_ms() - row.started.unwrap_or(0) < (hc.start_period / 1_000_000) as i64;
    let mut st = state(engine, &id).unwrap_or_else(HealthState::starting);
    st.record(
        CheckResult {
            start,
            end: now_rfc3339(),
            exit_code,
            output,
        },
        &hc,
        in_start_period,
    );
    let p = state_path(engine, &id);
    let tmp = p.with_extension("json.tmp");
    std::fs::write(&tmp, serde_json::to_vec(&st).expect("state serializes"))
        .map_err(io("write health state", &tmp))?;
    std::fs::rename(&tmp, &p).map_err(io("write health state", &p))?;
    Ok(st)
}

/// Execs the test in the container, its output to a temporary file; a
/// check running past the timeout is killed (exit code -1, as Docker).
fn exec_check(engine: &Engine, id: &str, hc: &HealthConfig) -> Result<(i32, String)> {
    let root = engine.state_root();
    let mut p = berth_runtime::exec::base_process(&root, id).map_err(rt(id, "healthcheck"))?;
    let args = match hc.test[0].as_str() {
        "CMD-SHELL" => vec!["/bin/sh".to_string(), "-c".into(), hc.test[1..].join(" ")],
        _ => hc.test[1..].to_vec(),
    };
    p.set_args(Some(args));
    p.set_terminal(Some(false));
    let pc = berth_runtime::config::process_config(&p)
        .map_err(|e| rt(id, "healthcheck")(berth_runtime::Error::Config(e)))?;
    berth_runtime::foreground::block_signals().map_err(|source| EngineError::Wait {
        id: id.into(),
        source,
    })?;
    let mut out = tempfile_in(engine, id)?;
    let saved_out = rustix::io::fcntl_dupfd_cloexec(std::io::stdout(), 3).ok();
    let saved_err = rustix::io::fcntl_dupfd_cloexec(std::io::stderr(), 3).ok();
    let null = std::fs::File::open("/dev/null").map_err(io("open", "/dev/null"))?;
    rustix::stdio::dup2_stdin(&null).map_err(sys(id, "redirect stdin"))?;
    rustix::stdio::dup2_stdout(&out).map_err(sys(id, "redirect stdout"))?;
    rustix::stdio::dup2_stderr(&out).map_err(sys(id, "redirect stderr"))?;
    let spawned = berth_runtime::exec(
        &root,
        &berth_runtime::ExecOptions {
            id: id.into(),
            ..Default::default()
        },
        &pc,
    );
    if let Some(fd) = &saved_out {
        let _ = rustix::stdio::dup2_stdout(fd);
    }
    if let Some(fd) = &saved_err {
        let _ = rustix::stdio::dup2_stderr(fd);
    }
    let code = match spawned {
        Ok(s) => wait_with_timeout(s.pid, Duration::from_nanos(hc.timeout)),
        Err(e) => {
            let _ = writeln!(out, "{}", crate::error::error_chain(&e));
            126
        }
    };
    let mut text = String::new();
    let _ = out.rewind();
    let _ = Read::by_ref(&mut out)
        .take(OUTPUT_KEEP as u64)
        .read_to_string(&mut text);
    if code == -1 {
        text.push_str(&format!(
            "healthcheck timed out after {:?}",
            Duration::from_nanos(hc.timeout)
        ));
    }
    Ok((code, text))
}

fn tempfile_in(engine: &Engine, id: &str) -> Result<std::fs::File> {
    let p = engine.dir(id).join("health.out");
    let f = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(true)
        .open(&p)
        .map_err(io("create", &p))?;
    let _ = std::fs::remove_file(&p);
    Ok(f)
}

/// The exit status of `pid` (128+N by signal), or -1 after killing it at
/// the timeout. We are a child subreaper: the runtime's intermediate
/// processes exit and `pid` becomes our child; every child is reaped.
fn wait_with_timeout(pid: i32, timeout: Duration) -> i32 {
    use nix::sys::wait::{waitpid, WaitPidFlag, WaitStatus};
    let p = nix::unistd::Pid::from_raw(pid);
    let end = Instant::now() + timeout;
    let mut killed = false;
    loop {
        loop {
            match waitpid(None, Some(WaitPidFlag::WNOHANG)) {
                Ok(WaitStatus::Exited(q, c)) if q == p => return if killed { -1 } else { c },
                Ok(WaitStatus::Signaled(q, s, _)) if q == p => {
                    return if killed { -1 } else { 128 + s as i32 }
                }
                Ok(WaitStatus::StillAlive) => break,
                Err(nix::Error::EINTR) => {}
                Err(_) => return -1,
                Ok(_) => {}
            }
        }
        if !killed && Instant::now() >= end {
            let _ = nix::sys::signal::kill(p, nix::sys::signal::Signal::SIGKILL);
            killed = true;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn durations() {
        assert_eq!(parse_duration("x", "30s"), Ok(30 * SECOND));
        assert_eq!(parse_duration("x", "1m30s"), Ok(90 * SECOND));
        assert_eq!(parse_duration("x", "500ms"), Ok(SECOND / 2));
        assert!(parse_duration("x", "5").is_err());
        assert!(parse_duration("x", "s").is_err());
    }

    #[test]
    fn resolution_and_rules() {
        let f = HealthFlags {
            cmd: Some("true".into()),
            interval: Some("2s".into()),
            ..Default::default()
        };
        let c = resolve(&f, None).unwrap().unwrap();
        assert_eq!(c.test, vec!["CMD-SHELL", "true"]);
        assert_eq!((c.interval, c.retries), (2 * SECOND, 3));
        let img = json!({"Test": ["CMD", "/ok"], "Interval": 5_000_000_000u64, "Retries": 2});
        let c = resolve(&HealthFlags::default(), Some(&img))
            .unwrap()
            .unwrap();
        assert_eq!((c.test.len(), c.interval, c.retries), (2, 5 * SECOND, 2));
        let off = HealthFlags {
            disable: true,
            ..Default::default()
        };
        assert_eq!(resolve(&off, Some(&img)), Ok(None));
        let none = HealthFlags {
            cmd: Some("NONE".into()),
            ..Default::default()
        };
        assert_eq!(resolve(&none, Some(&img)), Ok(None));
        let lone = HealthFlags {
            interval: Some("1s".into()),
            ..Default::default()
        };
        assert!(resolve(&lone, None).is_err());
        let mut st = HealthState::starting();
        let r = |code| CheckResult {
            start: String::new(),
            end: String::new(),
            exit_code: code,
            output: String::new(),
        };
        st.record(r(1), &c, true);
        assert_eq!((st.status.as_str(), st.failing_streak), ("starting", 0));
        st.record(r(1), &c, false);
        st.record(r(1), &c, false);
        assert_eq!((st.status.as_str(), st.failing_streak), ("unhealthy", 2));
        st.record(r(0), &c, false);
        assert_eq!((st.status.as_str(), st.failing_streak), ("healthy", 0));
        for _ in 0..10 {
            st.record(r(0), &c, false);
        }
        assert_eq!(st.log.len(), LOG_KEEP);
        let cmd = command_from_monitor(
            "/x/berth".into(),
            &["/proc/self/exe", "--root", "/r", "container-monitor", "abc"].map(OsString::from),
        )
        .unwrap();
        assert_eq!(
            cmd,
            [
                "/x/berth",
                "--root",
                "/r",
                "healthcheck",
                "run",
                "--from-monitor",
                "abc"
            ]
            .map(OsString::from)
        );
    }
}
