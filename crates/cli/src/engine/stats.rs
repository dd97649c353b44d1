//! `berth stats`: once (`--no-stream`) or streaming, a refresh every
//! second until interrupted or until none of the containers runs.
//! `--format json` prints one JSON document per refresh (a single line
//! when streaming).

use std::collections::HashMap;
use std::io::{IsTerminal, Write};
use std::time::{Duration, Instant};

use anyhow::Result;
use berth_engine::{db, lifecycle, ops, Engine, Status};

use serde_json::Value;

use super::containers::StatsArgs;
use super::template::Format;
use super::views::{binary_size, si_size, STATS_HEADERS};

/// One container's sample.
struct Sample {
    id: String,
    name: String,
    pid: Option<i32>,
    stats: berth_cgroups::Stats,
}

/// CPU use in percent of one CPU between two samples of total CPU time
/// (nanoseconds) taken `elapsed` apart.
pub fn cpu_percent(prev_ns: u64, now_ns: u64, elapsed: Duration) -> f64 {
    let e = elapsed.as_nanos() as f64;
    if e <= 0.0 || now_ns < prev_ns {
        return 0.0;
    }
    (now_ns - prev_ns) as f64 / e * 100.0
}

/// The containers to sample: those named, or every running one.
fn targets(engine: &Engine, a: &StatsArgs) -> Result<Vec<String>> {
    if !a.containers.is_empty() {
        return Ok(a.containers.clone());
    }
    Ok(engine
        .db()?
        .list()?
        .into_iter()
        .filter(|r| r.status == Status::Running)
        .map(|r| r.id)
        .collect())
}

/// Samples every target; with `skip_stopped`, a container that is not
/// running (any more) is left out instead of failing the command.
fn sample(engine: &Engine, names: &[String], skip_stopped: bool) -> Result<Vec<Sample>> {
    let mut out = Vec::new();
    for c in names {
        match ops::stats(engine, c) {
            Ok((row, stats)) => out.push(Sample {
                id: row.id,
                name: row.name,
                pid: row.pid,
                stats,
            }),
            Err(e) if skip_stopped && !still_running(engine, c) => {
                tracing::debug!("stats: {c} stopped: {e}");
            }
            Err(e) => return Err(e.into()),
        }
    }
    Ok(out)
}

/// Whether the container still runs (it may stop between the database
/// read and the cgroup read).
fn still_running(engine: &Engine, reference: &str) -> bool {
    lifecycle::find(engine, reference)
        .is_ok_and(|r| r.status == Status::Running && lifecycle::process_running(engine, &r.id))
}

/// `stats`.
pub fn stats(engine: &Engine, a: &StatsArgs) -> Result<i32> {
    let names = targets(engine, a)?;
    if a.no_stream {
        let format = Format::parse(&a.format);
        // Two samples a moment apart give the CPU %, as Docker's one-shot
        // stats carry the previous sample.
        let first = sample(engine, &names, false)?;
        let t0 = Instant::now();
        std::thread::sleep(Duration::from_millis(250));
        let samples = sample(engine, &names, true)?;
        let elapsed = t0.elapsed();
        if format == Format::Json {
            let docs: Vec<_> = samples
                .iter()
                .map(|s| serde_json::json!({"Id": s.id, "Name": s.name, "Stats": s.stats}))
                .collect();
            let _ = writeln!(
                std::io::stdout().lock(),
                "{}",
                serde_json::to_string_pretty(&docs)?
            );
            return Ok(0);
        }
        let rows: Vec<Value> = samples
            .iter()
            .map(|s| {
                let prev = first
                    .iter()
                    .find(|p| p.id == s.id)
                    .map_or(s.stats.cpu.usage.total, |p| p.stats.cpu.usage.total);
                row(s, cpu_percent(prev, s.stats.cpu.usage.total, elapsed))
            })
            .collect();
        print!("{}", format.rows(DEFAULT, STATS_HEADERS, &rows)?);
        return Ok(0);
    }
    stream(engine, a, &names)
}

/// Docker's default `stats` columns.
const DEFAULT: &str = "{{.ID}}\t{{.Name}}\t{{.CPUPerc}}\t{{.MemUsage}}\t{{.MemPerc}}\t{{.NetIO}}\t{{.BlockIO}}\t{{.PIDs}}";

/// Received and sent bytes of the container's interfaces (not `lo`).
fn net_io(pid: Option<i32>) -> (u64, u64) {
    let Some(pid) = pid else { return (0, 0) };
    let text = std::fs::read_to_string(format!("/proc/{pid}/net/dev")).unwrap_or_default();
    let mut rx = 0;
    let mut tx = 0;
    for line in text.lines().skip(2) {
        let Some((name, rest)) = line.split_once(':') else {
            continue;
        };
        if name.trim() == "lo" {
            continue;
        }
        let f: Vec<u64> = rest
            .split_whitespace()
            .filter_map(|x| x.parse().ok())
            .collect();
        rx += f.first().copied().unwrap_or(0);
        tx += f.get(8).copied().unwrap_or(0);
    }
    (rx, tx)
}

/// Bytes read and written by the container's processes (blkio).
fn block_io(s: &berth_cgroups::Stats) -> (u64, u64) {
    let mut r = 0;
    let mut w = 0;
    for e in &s.blkio.io_service_bytes_recursive {
        match e.op.to_ascii_lowercase().as_str() {
            "read" | "rbytes" => r += e.value,
            "write" | "wbytes" => w += e.value,
            _ => {}
        }
    }
    (r, w)
}

/// Memory in use as Docker counts it: without the inactive page cache.
fn mem_used(m: &berth_cgroups::stats::Memory) -> u64 {
    let inactive = m
        .raw
        .get("total_inactive_file")
        .or_else(|| m.raw.get("inactive_file"))
        .copied()
        .unwrap_or(0);
    m.usage.usage.saturating_sub(inactive)
}

/// The memory limit, or the host's memory when there is none.
fn mem_limit(limit: u64) -> u64 {
    if limit == 0 || limit >= 1 << 60 {
        std::fs::read_to_string("/proc/meminfo")
            .ok()
            .and_then(|t| {
                t.lines()
                    .find_map(|l| l.strip_prefix("MemTotal:"))
                    .and_then(|v| v.split_whitespace().next()?.parse::<u64>().ok())
            })
            .map_or(limit, |kb| kb * 1024)
    } else {
        limit
    }
}

/// A `stats` row for templates: Docker's fields.
fn row(s: &Sample, cpu: f64) -> Value {
    let used = mem_used(&s.stats.memory);
    let limit = mem_limit(s.stats.memory.usage.limit);
    let mem_pct = if limit > 0 {
        used as f64 / limit as f64 * 100.0
    } else {
        0.0
    };
    let (rx, tx) = net_io(s.pid);
    let (r, w) = block_io(&s.stats);
    serde_json::json!({
        "Container": s.name,
        "ID": db::short(&s.id),
        "Name": s.name,
        "CPUPerc": format!("{cpu:.2}%"),
        "MemUsage": format!("{} / {}", binary_size(used), binary_size(limit)),
        "MemPerc": format!("{mem_pct:.2}%"),
        "NetIO": format!("{} / {}", si_size(rx), si_size(tx)),
        "BlockIO": format!("{} / {}", si_size(r), si_size(w)),
        "PIDs": s.stats.pids.current,
    })
}

/// Refreshes every second; returns 0 once none of the containers runs.
/// A closed stdout (`| head`) ends the command too.
fn stream(engine: &Engine, a: &StatsArgs, names: &[String]) -> Result<i32> {
    let format = Format::parse(&a.format);
    let json = format == Format::Json;
    let tty = std::io::stdout().is_terminal();
    // `berth stats | head`: end quietly when the reader goes, as Unix
    // tools do (Rust ignores SIGPIPE, and printing would panic).
    berth_sys::process::reset_signal_to_default(nix::sys::signal::Signal::SIGPIPE);
    let mut prev: HashMap<String, (u64, Instant)> = HashMap::new();
    loop {
        // With no names given, containers started meanwhile join in.
        let current = if a.containers.is_empty() {
            targets(engine, a)?
        } else {
            names.to_vec()
        };
        let samples = sample(engine, &current, true)?;
        if samples.is_empty() {
            return Ok(0);
        }
        let now = Instant::now();
        let mut docs = Vec::new();
        let mut rows = Vec::new();
        for s in &samples {
            let total = s.stats.cpu.usage.total;
            let pct = prev
                .get(&s.id)
                .map_or(0.0, |(p, t)| cpu_percent(*p, total, now - *t));
            prev.insert(s.id.clone(), (total, now));
            docs.push(serde_json::json!({
                "Id": s.id, "Name": s.name, "CPUPercent": pct, "Stats": s.stats,
            }));
            rows.push(row(s, pct));
        }
        let written = if json {
            writeln!(
                std::io::stdout().lock(),
                "{}",
                serde_json::to_string(&docs)?
            )
        } else {
            let text = format.rows(DEFAULT, STATS_HEADERS, &rows)?;
            if tty {
                // Clear the screen and go home, as `docker stats` does.
                print!("\x1b[2J\x1b[H");
            }
            write!(std::io::stdout().lock(), "{text}")
                .and_then(|()| writeln!(std::io::stdout().lock()))
        };
        if written.and_then(|()| std::io::stdout().flush()).is_err() {
            return Ok(0);
        }
        std::thread::sleep(Duration::from_secs(1));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cpu_percent_of_half_a_cpu() {
        let p = cpu_percent(1_000_000_000, 1_500_000_000, Duration::from_secs(1));
        assert!((p - 50.0).abs() < 1e-9, "{p}");
    }

    #[test]
    fn cpu_percent_guards_odd_samples() {
        assert_eq!(cpu_percent(5, 3, Duration::from_secs(1)), 0.0);
        assert_eq!(cpu_percent(0, 3, Duration::ZERO), 0.0);
    }
}
