//! The cgroup resource flags of `run`/`create` (`--memory-swap`,
//! `--memory-reservation`, `--oom-kill-disable`, `--cpu-period`,
//! `--cpu-quota`, `--cpuset-cpus`, `--cpuset-mems`, `--blkio-weight`) into
//! `linux.resources` (runtime-spec config-linux.md "memory", "cpu",
//! "blockIO").

use serde_json::{json, Value};

use crate::flags::ExtraOptions;
use crate::opts::{self, OptsError, RunOptions};

fn invalid(flag: &'static str, value: &str, why: impl Into<String>) -> OptsError {
    OptsError::Invalid {
        flag,
        value: value.into(),
        why: why.into(),
    }
}

fn size(flag: &'static str, s: &str) -> Result<i64, OptsError> {
    opts::parse_size(flag, s)
}

/// The cgroup resource flags into `linux.resources` (config-linux.md
/// "memory", "cpu", "blockIO").
pub fn apply(r: &mut Value, o: &RunOptions, x: &ExtraOptions) -> Result<(), OptsError> {
    let obj = r.as_object_mut().expect("resources is an object");
    let mem = obj
        .entry("memory")
        .or_insert_with(|| json!({}))
        .as_object_mut()
        .expect("memory is an object");
    if let Some(s) = &x.memory_swap {
        let limit = o
            .memory
            .as_deref()
            .ok_or_else(|| invalid("--memory-swap", s, "needs --memory as well"))?;
        let limit = size("--memory", limit)?;
        let swap = if s.trim() == "-1" {
            -1
        } else {
            let v = size("--memory-swap", s)?;
            if v < limit {
                return Err(invalid(
                    "--memory-swap",
                    s,
                    "is memory plus swap: it cannot be below --memory",
                ));
            }
            v
        };
        mem.insert("swap".into(), json!(swap));
    }
    if let Some(s) = &x.memory_reservation {
        mem.insert(
            "reservation".into(),
            json!(size("--memory-reservation", s)?),
        );
    }
    if x.oom_kill_disable {
        mem.insert("disableOOMKiller".into(), json!(true));
    }
    if mem.is_empty() {
        obj.remove("memory");
    }
    let cpu = obj
        .entry("cpu")
        .or_insert_with(|| json!({}))
        .as_object_mut()
        .expect("cpu is an object");
    if x.cpu_period.is_some() || x.cpu_quota.is_some() {
        if let Some(c) = &o.cpus {
            return Err(invalid(
                "--cpus",
                c,
                "conflicts with --cpu-period/--cpu-quota; give one or the other",
            ));
        }
    }
    if let Some(p) = x.cpu_period {
        if !(1000..=1_000_000).contains(&p) {
            return Err(invalid(
                "--cpu-period",
                &p.to_string(),
                "must be between 1000 and 1000000 microseconds",
            ));
        }
        cpu.insert("period".into(), json!(p));
    }
    if let Some(q) = x.cpu_quota {
        if q != -1 && q < 1000 {
            return Err(invalid(
                "--cpu-quota",
                &q.to_string(),
                "must be at least 1000 microseconds (or -1)",
            ));
        }
        cpu.insert("quota".into(), json!(q));
    }
    for (flag, v, key) in [
        ("--cpuset-cpus", &x.cpuset_cpus, "cpus"),
        ("--cpuset-mems", &x.cpuset_mems, "mems"),
    ] {
        if let Some(v) = v {
            let ok = !v.is_empty()
                && v.split(',').all(|part| {
                    let mut it = part.splitn(2, '-');
                    it.all(|n| !n.is_empty() && n.bytes().all(|b| b.is_ascii_digit()))
                });
            if !ok {
                return Err(invalid(flag, v, "use a list such as 0-2,4"));
            }
            cpu.insert(key.into(), json!(v));
        }
    }
    if cpu.is_empty() {
        obj.remove("cpu");
    }
    if let Some(w) = x.blkio_weight {
        if !(10..=1000).contains(&w) {
            return Err(invalid(
                "--blkio-weight",
                &w.to_string(),
                "must be between 10 and 1000",
            ));
        }
        obj.insert("blockIO".into(), json!({"weight": w}));
    }
    Ok(())
}
