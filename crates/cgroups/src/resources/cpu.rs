//! CPU and cpuset (runtime-spec config-linux.md, "CPU").

use oci_spec::runtime::LinuxCpu;

use super::{FileWrite, ResourceError};
use crate::path::Driver;

/// runc's (>= 1.3) and crun's shares -> cpu.weight conversion: a quadratic in
/// log2(shares) that maps the v1 range [2, 262144] onto [1, 10000] and the v1
/// default 1024 onto the v2 default 100. 0 means unset.
pub fn shares_to_weight(shares: u64) -> u64 {
    if shares == 0 {
        return 0;
    }
    if shares <= 2 {
        return 1;
    }
    if shares >= 262_144 {
        return 10_000;
    }
    let l = (shares as f64).log2();
    let exponent = (l * l + 125.0 * l) / 612.0 - 7.0 / 34.0;
    10f64.powf(exponent).ceil() as u64
}

/// v2 cpu.max value, or None when neither quota nor period is set (runc fs2).
pub fn cpu_max(quota: Option<i64>, period: Option<u64>) -> Option<String> {
    let (q, p) = (quota.unwrap_or(0), period.unwrap_or(0));
    if q == 0 && p == 0 {
        return None;
    }
    let mut s = if q > 0 {
        q.to_string()
    } else {
        "max".to_string()
    };
    if p != 0 {
        s.push_str(&format!(" {p}"));
    }
    Some(s)
}

fn validate(cpu: &LinuxCpu) -> Result<(), ResourceError> {
    if let (Some(q), Some(b)) = (cpu.quota(), cpu.burst()) {
        if q > 0 && b > q as u64 {
            return Err(ResourceError::Invalid {
                resource: "cpu.burst",
                value: b.to_string(),
                why: "must not exceed a positive cpu.quota",
            });
        }
    }
    if let Some(i) = cpu.idle() {
        if i != 0 && i != 1 {
            return Err(ResourceError::Invalid {
                resource: "cpu.idle",
                value: i.to_string(),
                why: "must be 0 or 1",
            });
        }
    }
    Ok(())
}

fn cpuset(cpu: &LinuxCpu, w: &mut Vec<FileWrite>) {
    if let Some(c) = cpu.cpus().as_deref().filter(|c| !c.is_empty()) {
        w.push(FileWrite::new("cpuset", "cpuset.cpus", c));
    }
    if let Some(m) = cpu.mems().as_deref().filter(|m| !m.is_empty()) {
        w.push(FileWrite::new("cpuset", "cpuset.mems", m));
    }
}

/// Writes for `cpu`.
pub fn writes(cpu: &LinuxCpu, driver: Driver) -> Result<Vec<FileWrite>, ResourceError> {
    validate(cpu)?;
    let mut w = Vec::new();
    match driver {
        Driver::V1 => {
            if let Some(s) = cpu.shares().filter(|s| *s != 0) {
                w.push(FileWrite::new("cpu", "cpu.shares", s.to_string()));
            }
            // Period before quota (runc), so a new quota is checked against
            // the new period.
            if let Some(p) = cpu.period().filter(|p| *p != 0) {
                w.push(FileWrite::new("cpu", "cpu.cfs_period_us", p.to_string()));
            }
            if let Some(q) = cpu.quota().filter(|q| *q != 0) {
                w.push(FileWrite::new("cpu", "cpu.cfs_quota_us", q.to_string()));
            }
            if let Some(b) = cpu.burst() {
                w.push(FileWrite::new("cpu", "cpu.cfs_burst_us", b.to_string()));
            }
            if let Some(p) = cpu.realtime_period().filter(|p| *p != 0) {
                w.push(FileWrite::new("cpu", "cpu.rt_period_us", p.to_string()));
            }
            if let Some(r) = cpu.realtime_runtime().filter(|r| *r != 0) {
                w.push(FileWrite::new("cpu", "cpu.rt_runtime_us", r.to_string()));
            }
            if let Some(i) = cpu.idle() {
                w.push(FileWrite::new("cpu", "cpu.idle", i.to_string()));
            }
        }
        Driver::V2 => {
            if cpu.realtime_period().unwrap_or(0) != 0 || cpu.realtime_runtime().unwrap_or(0) != 0 {
                return Err(ResourceError::Unsupported {
                    resource: "cpu.realtimePeriod/realtimeRuntime",
                    driver: "v2",
                    hint: " (the v2 cpu controller has no realtime group scheduling); remove them",
                });
            }
            if let Some(i) = cpu.idle() {
                w.push(FileWrite::new("cpu", "cpu.idle", i.to_string()));
            }
            let weight = shares_to_weight(cpu.shares().unwrap_or(0));
            if weight != 0 {
                w.push(FileWrite::new("cpu", "cpu.weight", weight.to_string()));
            }
            if let Some(v) = cpu_max(cpu.quota(), cpu.period()) {
                w.push(FileWrite::new("cpu", "cpu.max", v));
            }
            if let Some(b) = cpu.burst() {
                w.push(FileWrite::new("cpu", "cpu.max.burst", b.to_string()));
            }
        }
    }
    cpuset(cpu, &mut w);
    Ok(w)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cpu(json: &str) -> LinuxCpu {
        serde_json::from_str(json).expect("cpu json")
    }

    #[test]
    fn shares_to_weight_fixed_points() {
        assert_eq!(shares_to_weight(0), 0);
        assert_eq!(shares_to_weight(2), 1);
        assert_eq!(shares_to_weight(1024), 100);
        assert_eq!(shares_to_weight(262_144), 10_000);
        assert_eq!(shares_to_weight(1_000_000), 10_000);
        // Monotonic over the range.
        let mut prev = 0;
        for s in (2..262_144).step_by(97) {
            let w = shares_to_weight(s);
            assert!(w >= prev && (1..=10_000).contains(&w), "shares {s} -> {w}");
            prev = w;
        }
        assert_eq!(shares_to_weight(512), 59);
        assert_eq!(shares_to_weight(2048), 174);
    }

    #[test]
    fn cpu_max_values() {
        assert_eq!(cpu_max(None, None), None);
        assert_eq!(
            cpu_max(Some(50_000), Some(100_000)).as_deref(),
            Some("50000 100000")
        );
        assert_eq!(cpu_max(Some(-1), None).as_deref(), Some("max"));
        assert_eq!(cpu_max(None, Some(20_000)).as_deref(), Some("max 20000"));
    }

    #[test]
    fn v1_writes() {
        let c = cpu(
            r#"{"shares": 512, "quota": 10000, "period": 100000, "burst": 5000,
                        "realtimeRuntime": 950, "realtimePeriod": 1000, "cpus": "0", "mems": "0", "idle": 0}"#,
        );
        let w = writes(&c, Driver::V1).expect("plan");
        let got: Vec<(&str, &str)> = w
            .iter()
            .map(|w| (w.file.as_str(), w.value.as_str()))
            .collect();
        assert_eq!(
            got,
            vec![
                ("cpu.shares", "512"),
                ("cpu.cfs_period_us", "100000"),
                ("cpu.cfs_quota_us", "10000"),
                ("cpu.cfs_burst_us", "5000"),
                ("cpu.rt_period_us", "1000"),
                ("cpu.rt_runtime_us", "950"),
                ("cpu.idle", "0"),
                ("cpuset.cpus", "0"),
                ("cpuset.mems", "0"),
            ]
        );
        assert_eq!(w[7].controller, "cpuset");
    }

    #[test]
    fn v2_writes_and_errors() {
        let c = cpu(r#"{"shares": 1024, "quota": 20000, "period": 100000, "idle": 1}"#);
        let w = writes(&c, Driver::V2).expect("plan");
        let got: Vec<(&str, &str)> = w
            .iter()
            .map(|w| (w.file.as_str(), w.value.as_str()))
            .collect();
        assert_eq!(
            got,
            vec![
                ("cpu.idle", "1"),
                ("cpu.weight", "100"),
                ("cpu.max", "20000 100000")
            ]
        );
        assert!(writes(&cpu(r#"{"realtimeRuntime": 5}"#), Driver::V2).is_err());
        assert!(writes(&cpu(r#"{"quota": 100, "burst": 200}"#), Driver::V1).is_err());
        assert!(writes(&cpu(r#"{"idle": 3}"#), Driver::V2).is_err());
    }
}
