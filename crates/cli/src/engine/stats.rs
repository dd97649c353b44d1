//! `berth stats`: once (`--no-stream`) or streaming, a refresh every
//! second until interrupted or until none of the containers runs.
//! `--format json` prints one JSON document per refresh (a single line
//! when streaming).

use std::collections::HashMap;
use std::io::{IsTerminal, Write};
use std::time::{Duration, Instant};

use anyhow::Result;
use berth_engine::{db, lifecycle, ops, Engine, Status};

use super::containers::StatsArgs;
use super::format::{human_size, print_table};

/// One container's sample.
struct Sample {
    id: String,
    name: String,
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

fn limit_text(limit: u64) -> String {
    if limit == 0 || limit >= 1 << 60 {
        "unlimited".to_string()
    } else {
        human_size(limit)
    }
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
        let samples = sample(engine, &names, false)?;
        print_once(&samples, a.format == "json")?;
        return Ok(0);
    }
    stream(engine, a, &names)
}

fn print_once(samples: &[Sample], json: bool) -> Result<()> {
    if json {
        let docs: Vec<_> = samples
            .iter()
            .map(|s| serde_json::json!({"Id": s.id, "Name": s.name, "Stats": s.stats}))
            .collect();
        let _ = writeln!(
            std::io::stdout().lock(),
            "{}",
            serde_json::to_string_pretty(&docs)?
        );
        return Ok(());
    }
    let rows: Vec<Vec<String>> = samples
        .iter()
        .map(|s| {
            vec![
                db::short(&s.id).to_string(),
                s.name.clone(),
                format!("{:.3}s", s.stats.cpu.usage.total as f64 / 1e9),
                format!(
                    "{} / {}",
                    human_size(s.stats.memory.usage.usage),
                    limit_text(s.stats.memory.usage.limit)
                ),
                s.stats.pids.current.to_string(),
            ]
        })
        .collect();
    print_table(
        &["ID", "NAME", "CPU TIME", "MEM USAGE / LIMIT", "PIDS"],
        &rows,
    );
    Ok(())
}

/// Refreshes every second; returns 0 once none of the containers runs.
/// A closed stdout (`| head`) ends the command too.
fn stream(engine: &Engine, a: &StatsArgs, names: &[String]) -> Result<i32> {
    let json = a.format == "json";
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
            rows.push(vec![
                db::short(&s.id).to_string(),
                s.name.clone(),
                format!("{pct:.2}%"),
                format!(
                    "{} / {}",
                    human_size(s.stats.memory.usage.usage),
                    limit_text(s.stats.memory.usage.limit)
                ),
                s.stats.pids.current.to_string(),
            ]);
        }
        let written = if json {
            writeln!(
                std::io::stdout().lock(),
                "{}",
                serde_json::to_string(&docs)?
            )
        } else {
            if tty {
                // Clear the screen and go home, as `docker stats` does.
                print!("\x1b[2J\x1b[H");
            }
            print_table(&["ID", "NAME", "CPU %", "MEM USAGE / LIMIT", "PIDS"], &rows);
            writeln!(std::io::stdout().lock())
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

    #[test]
    fn unlimited_memory_is_named() {
        assert_eq!(limit_text(0), "unlimited");
        assert_eq!(limit_text(u64::MAX), "unlimited");
        assert_ne!(limit_text(1 << 20), "unlimited");
    }
}
