//! Statistics, shaped as the `data` object of runc's `events --stats`
//! (runc types/events.go), read from v1 or v2 files.
//!
//! Parsing takes a file reader so fixtures can stand in for the kernel.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::cgroup::Cgroup;
use crate::error::Result;
use crate::fsio::parse_u64;
use crate::path::Driver;

fn is_zero(v: &u64) -> bool {
    *v == 0
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct CpuUsage {
    /// Nanoseconds.
    #[serde(default, skip_serializing_if = "is_zero")]
    pub total: u64,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub percpu: Vec<u64>,
    #[serde(default)]
    pub kernel: u64,
    #[serde(default)]
    pub user: u64,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Throttling {
    #[serde(default, skip_serializing_if = "is_zero")]
    pub periods: u64,
    #[serde(default, rename = "throttledPeriods", skip_serializing_if = "is_zero")]
    pub throttled_periods: u64,
    /// Nanoseconds.
    #[serde(default, rename = "throttledTime", skip_serializing_if = "is_zero")]
    pub throttled_time: u64,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Cpu {
    #[serde(default)]
    pub usage: CpuUsage,
    #[serde(default)]
    pub throttling: Throttling,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct MemoryEntry {
    #[serde(default)]
    pub limit: u64,
    #[serde(default, skip_serializing_if = "is_zero")]
    pub usage: u64,
    #[serde(default, skip_serializing_if = "is_zero")]
    pub max: u64,
    #[serde(default)]
    pub failcnt: u64,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Memory {
    #[serde(default, skip_serializing_if = "is_zero")]
    pub cache: u64,
    #[serde(default)]
    pub usage: MemoryEntry,
    #[serde(default)]
    pub swap: MemoryEntry,
    #[serde(default)]
    pub kernel: MemoryEntry,
    #[serde(default, rename = "kernelTCP")]
    pub kernel_tcp: MemoryEntry,
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub raw: BTreeMap<String, u64>,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Pids {
    #[serde(default, skip_serializing_if = "is_zero")]
    pub current: u64,
    /// 0 when unlimited ("max"), as runc.
    #[serde(default, skip_serializing_if = "is_zero")]
    pub limit: u64,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct BlkioEntry {
    #[serde(default, skip_serializing_if = "is_zero")]
    pub major: u64,
    #[serde(default, skip_serializing_if = "is_zero")]
    pub minor: u64,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub op: String,
    #[serde(default, skip_serializing_if = "is_zero")]
    pub value: u64,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Blkio {
    #[serde(
        default,
        rename = "ioServiceBytesRecursive",
        skip_serializing_if = "Vec::is_empty"
    )]
    pub io_service_bytes_recursive: Vec<BlkioEntry>,
    #[serde(
        default,
        rename = "ioServicedRecursive",
        skip_serializing_if = "Vec::is_empty"
    )]
    pub io_serviced_recursive: Vec<BlkioEntry>,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Hugetlb {
    #[serde(default, skip_serializing_if = "is_zero")]
    pub usage: u64,
    #[serde(default, skip_serializing_if = "is_zero")]
    pub max: u64,
    #[serde(default)]
    pub failcnt: u64,
}

/// The `data` object of `events --stats`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Stats {
    #[serde(default)]
    pub cpu: Cpu,
    #[serde(default)]
    pub memory: Memory,
    #[serde(default)]
    pub pids: Pids,
    #[serde(default)]
    pub blkio: Blkio,
    #[serde(default)]
    pub hugetlb: BTreeMap<String, Hugetlb>,
}

/// `key value` lines into a map (memory.stat, cpu.stat, ...).
pub fn parse_flat_keyed(s: &str) -> BTreeMap<String, u64> {
    s.lines()
        .filter_map(|l| {
            let (k, v) = l.split_once(' ')?;
            Some((k.to_string(), parse_u64(v)?))
        })
        .collect()
}

/// v1 blkio `MAJ:MIN Op value` lines ("Total" lines skipped).
pub fn parse_v1_blkio(s: &str) -> Vec<BlkioEntry> {
    s.lines()
        .filter_map(|l| {
            let f: Vec<&str> = l.split_whitespace().collect();
            if f.len() != 3 {
                return None;
            }
            let (maj, min) = f[0].split_once(':')?;
            Some(BlkioEntry {
                major: maj.parse().ok()?,
                minor: min.parse().ok()?,
                op: f[1].to_string(),
                value: f[2].parse().ok()?,
            })
        })
        .collect()
}

/// v2 io.stat (`MAJ:MIN rbytes=.. wbytes=.. rios=.. wios=..`) as runc maps
/// it: bytes and ios as Read/Write entries.
pub fn parse_v2_io_stat(s: &str) -> Blkio {
    let mut b = Blkio::default();
    for l in s.lines() {
        let mut it = l.split_whitespace();
        let Some((maj, min)) = it.next().and_then(|d| d.split_once(':')) else {
            continue;
        };
        let (Ok(major), Ok(minor)) = (maj.parse(), min.parse()) else {
            continue;
        };
        for kv in it {
            let Some((k, v)) = kv.split_once('=') else {
                continue;
            };
            let Ok(value) = v.parse() else { continue };
            let (list, op) = match k {
                "rbytes" => (&mut b.io_service_bytes_recursive, "Read"),
                "wbytes" => (&mut b.io_service_bytes_recursive, "Write"),
                "rios" => (&mut b.io_serviced_recursive, "Read"),
                "wios" => (&mut b.io_serviced_recursive, "Write"),
                _ => continue,
            };
            list.push(BlkioEntry {
                major,
                minor,
                op: op.into(),
                value,
            });
        }
    }
    b
}

/// `max` (u64::MAX) as runc's 0-means-unlimited where runc does so.
fn limit_or_zero(v: Option<u64>) -> u64 {
    match v {
        Some(u64::MAX) | None => 0,
        Some(v) => v,
    }
}

/// Reads v1 statistics. `read(controller, file)`.
pub fn v1_stats(read: &dyn Fn(&str, &str) -> Option<String>, hugepage_sizes: &[String]) -> Stats {
    let num = |c: &str, f: &str| read(c, f).as_deref().and_then(parse_u64).unwrap_or(0);
    let mut s = Stats::default();
    // cpuacct.stat counts USER_HZ ticks (100 per second on Linux).
    let ticks = read("cpuacct", "cpuacct.stat")
        .map(|t| parse_flat_keyed(&t))
        .unwrap_or_default();
    s.cpu.usage = CpuUsage {
        total: num("cpuacct", "cpuacct.usage"),
        percpu: read("cpuacct", "cpuacct.usage_percpu")
            .map(|t| {
                t.split_whitespace()
                    .filter_map(|v| v.parse().ok())
                    .collect()
            })
            .unwrap_or_default(),
        kernel: ticks.get("system").copied().unwrap_or(0) * 10_000_000,
        user: ticks.get("user").copied().unwrap_or(0) * 10_000_000,
    };
    let cs = read("cpu", "cpu.stat")
        .map(|t| parse_flat_keyed(&t))
        .unwrap_or_default();
    s.cpu.throttling = Throttling {
        periods: cs.get("nr_periods").copied().unwrap_or(0),
        throttled_periods: cs.get("nr_throttled").copied().unwrap_or(0),
        throttled_time: cs.get("throttled_time").copied().unwrap_or(0),
    };
    let entry = |prefix: &str| MemoryEntry {
        limit: num("memory", &format!("{prefix}limit_in_bytes")),
        usage: num("memory", &format!("{prefix}usage_in_bytes")),
        max: num("memory", &format!("{prefix}max_usage_in_bytes")),
        failcnt: num("memory", &format!("{prefix}failcnt")),
    };
    s.memory.usage = entry("memory.");
    s.memory.swap = entry("memory.memsw.");
    s.memory.kernel = entry("memory.kmem.");
    s.memory.kernel_tcp = entry("memory.kmem.tcp.");
    s.memory.raw = read("memory", "memory.stat")
        .map(|t| parse_flat_keyed(&t))
        .unwrap_or_default();
    s.memory.cache = s
        .memory
        .raw
        .get("total_cache")
        .or(s.memory.raw.get("cache"))
        .copied()
        .unwrap_or(0);
    s.pids = Pids {
        current: num("pids", "pids.current"),
        limit: limit_or_zero(read("pids", "pids.max").as_deref().and_then(parse_u64)),
    };
    let pick = |names: [&str; 2]| {
        names
            .iter()
            .map(|f| {
                read("blkio", f)
                    .map(|t| parse_v1_blkio(&t))
                    .unwrap_or_default()
            })
            .find(|v| !v.is_empty())
            .unwrap_or_default()
    };
    s.blkio = Blkio {
        io_service_bytes_recursive: pick([
            "blkio.io_service_bytes_recursive",
            "blkio.throttle.io_service_bytes_recursive",
        ]),
        io_serviced_recursive: pick([
            "blkio.io_serviced_recursive",
            "blkio.throttle.io_serviced_recursive",
        ]),
    };
    for size in hugepage_sizes {
        s.hugetlb.insert(
            size.clone(),
            Hugetlb {
                usage: num("hugetlb", &format!("hugetlb.{size}.usage_in_bytes")),
                max: num("hugetlb", &format!("hugetlb.{size}.max_usage_in_bytes")),
                failcnt: num("hugetlb", &format!("hugetlb.{size}.failcnt")),
            },
        );
    }
    s
}

/// Reads v2 statistics from the cgroup directory. `read(file)`.
pub fn v2_stats(read: &dyn Fn(&str) -> Option<String>, hugepage_sizes: &[String]) -> Stats {
    let num = |f: &str| read(f).as_deref().and_then(parse_u64);
    let keyed = |f: &str| read(f).map(|t| parse_flat_keyed(&t)).unwrap_or_default();
    let mut s = Stats::default();
    let cs = keyed("cpu.stat");
    let g = |k: &str| cs.get(k).copied().unwrap_or(0);
    s.cpu.usage = CpuUsage {
        total: g("usage_usec") * 1000,
        percpu: Vec::new(),
        kernel: g("system_usec") * 1000,
        user: g("user_usec") * 1000,
    };
    s.cpu.throttling = Throttling {
        periods: g("nr_periods"),
        throttled_periods: g("nr_throttled"),
        throttled_time: g("throttled_usec") * 1000,
    };
    let events = keyed("memory.events");
    let usage = num("memory.current").unwrap_or(0);
    let limit = num("memory.max").unwrap_or(u64::MAX);
    s.memory.usage = MemoryEntry {
        limit,
        usage,
        max: num("memory.peak").unwrap_or(0),
        failcnt: events.get("max").copied().unwrap_or(0),
    };
    // runc reports v2 swap as memory+swap, like v1 memsw.
    if let Some(swap) = num("memory.swap.current") {
        let swap_max = num("memory.swap.max").unwrap_or(u64::MAX);
        s.memory.swap = MemoryEntry {
            limit: limit.saturating_add(swap_max),
            usage: usage + swap,
            max: 0,
            failcnt: 0,
        };
    }
    s.memory.raw = keyed("memory.stat");
    s.memory.cache = s.memory.raw.get("file").copied().unwrap_or(0);
    s.memory.kernel.usage = s.memory.raw.get("kernel").copied().unwrap_or(0);
    s.pids = Pids {
        current: num("pids.current").unwrap_or(0),
        limit: limit_or_zero(num("pids.max")),
    };
    s.blkio = read("io.stat")
        .map(|t| parse_v2_io_stat(&t))
        .unwrap_or_default();
    for size in hugepage_sizes {
        let ev = keyed(&format!("hugetlb.{size}.events"));
        s.hugetlb.insert(
            size.clone(),
            Hugetlb {
                usage: num(&format!("hugetlb.{size}.current")).unwrap_or(0),
                max: 0,
                failcnt: ev.get("max").copied().unwrap_or(0),
            },
        );
    }
    s
}

/// Huge page sizes the kernel offers (/sys/kernel/mm/hugepages), as cgroup
/// file names spell them ("2MB", "1GB").
pub fn hugepage_sizes() -> Vec<String> {
    let Ok(rd) = std::fs::read_dir("/sys/kernel/mm/hugepages") else {
        return Vec::new();
    };
    let mut out: Vec<String> = rd
        .flatten()
        .filter_map(|e| {
            let name = e.file_name().to_string_lossy().into_owned();
            let kb: u64 = name
                .strip_prefix("hugepages-")?
                .strip_suffix("kB")?
                .parse()
                .ok()?;
            Some(page_size_name(kb))
        })
        .collect();
    out.sort();
    out
}

/// 2048 kB -> "2MB", 1048576 kB -> "1GB", 64 kB -> "64KB".
pub fn page_size_name(kb: u64) -> String {
    if kb >= 1 << 20 && kb.is_multiple_of(1 << 20) {
        format!("{}GB", kb >> 20)
    } else if kb >= 1 << 10 && kb.is_multiple_of(1 << 10) {
        format!("{}MB", kb >> 10)
    } else {
        format!("{kb}KB")
    }
}

impl Cgroup {
    /// Current statistics (missing files read as zero).
    pub fn stats(&self) -> Result<Stats> {
        let sizes = hugepage_sizes();
        Ok(match self.driver() {
            Driver::V2 => {
                let dir = self
                    .unified_path()
                    .map(|p| p.to_path_buf())
                    .unwrap_or_default();
                v2_stats(&|f| std::fs::read_to_string(dir.join(f)).ok(), &sizes)
            }
            Driver::V1 => v1_stats(
                &|c, f| {
                    self.v1_paths()
                        .get(c)
                        .and_then(|d| std::fs::read_to_string(d.join(f)).ok())
                },
                &sizes,
            ),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    #[test]
    fn v1_fixture() {
        let files: HashMap<(&str, &str), &str> = HashMap::from([
            (("cpuacct", "cpuacct.usage"), "123456789\n"),
            (("cpuacct", "cpuacct.usage_percpu"), "100 200 \n"),
            (("cpuacct", "cpuacct.stat"), "user 5\nsystem 2\n"),
            (
                ("cpu", "cpu.stat"),
                "nr_periods 10\nnr_throttled 4\nthrottled_time 999\n",
            ),
            (("memory", "memory.usage_in_bytes"), "4096\n"),
            (("memory", "memory.limit_in_bytes"), "9223372036854771712\n"),
            (("memory", "memory.failcnt"), "3\n"),
            (
                ("memory", "memory.stat"),
                "cache 8192\nrss 4096\ntotal_cache 8192\n",
            ),
            (("pids", "pids.current"), "2\n"),
            (("pids", "pids.max"), "max\n"),
            (
                ("blkio", "blkio.throttle.io_service_bytes_recursive"),
                "8:0 Read 512\n8:0 Write 0\nTotal 512\n",
            ),
            (("hugetlb", "hugetlb.2MB.usage_in_bytes"), "0\n"),
            (("hugetlb", "hugetlb.2MB.failcnt"), "1\n"),
        ]);
        let read = |c: &str, f: &str| files.get(&(c, f)).map(|s| s.to_string());
        let s = v1_stats(&read, &["2MB".to_string()]);
        assert_eq!(s.cpu.usage.total, 123_456_789);
        assert_eq!(s.cpu.usage.percpu, vec![100, 200]);
        assert_eq!(s.cpu.usage.user, 50_000_000);
        assert_eq!(s.cpu.throttling.throttled_periods, 4);
        assert_eq!(s.memory.usage.usage, 4096);
        assert_eq!(s.memory.usage.failcnt, 3);
        assert_eq!(s.memory.cache, 8192);
        assert_eq!(
            s.pids,
            Pids {
                current: 2,
                limit: 0
            }
        );
        assert_eq!(s.blkio.io_service_bytes_recursive.len(), 2);
        assert_eq!(s.blkio.io_service_bytes_recursive[0].value, 512);
        assert_eq!(s.hugetlb["2MB"].failcnt, 1);
        let json = serde_json::to_value(&s).expect("json");
        assert_eq!(json["cpu"]["throttling"]["throttledPeriods"], 4);
        assert_eq!(json["memory"]["raw"]["rss"], 4096);
        assert!(
            json["pids"].get("limit").is_none(),
            "unlimited pids omit limit like runc"
        );
        assert_eq!(json["memory"]["kernelTCP"]["failcnt"], 0);
    }

    #[test]
    fn v2_fixture() {
        let files: HashMap<&str, &str> = HashMap::from([
            ("cpu.stat", "usage_usec 1000\nuser_usec 600\nsystem_usec 400\nnr_periods 7\nnr_throttled 5\nthrottled_usec 20\n"),
            ("memory.current", "8192\n"),
            ("memory.max", "max\n"),
            ("memory.events", "low 0\nhigh 0\nmax 6\noom 1\noom_kill 1\n"),
            ("memory.swap.current", "0\n"),
            ("memory.swap.max", "max\n"),
            ("memory.stat", "anon 4096\nfile 4096\nkernel 100\n"),
            ("pids.current", "3\n"),
            ("pids.max", "10\n"),
            ("io.stat", "8:0 rbytes=1024 wbytes=2048 rios=1 wios=2 dbytes=0 dios=0\n"),
            ("hugetlb.2MB.current", "2097152\n"),
            ("hugetlb.2MB.events", "max 0\n"),
        ]);
        let read = |f: &str| files.get(f).map(|s| s.to_string());
        let s = v2_stats(&read, &["2MB".to_string()]);
        assert_eq!(s.cpu.usage.total, 1_000_000);
        assert_eq!(s.cpu.usage.kernel, 400_000);
        assert_eq!(s.cpu.throttling.periods, 7);
        assert_eq!(s.cpu.throttling.throttled_time, 20_000);
        assert_eq!(s.memory.usage.limit, u64::MAX);
        assert_eq!(s.memory.usage.failcnt, 6);
        assert_eq!(s.memory.swap.usage, 8192);
        assert_eq!(s.memory.cache, 4096);
        assert_eq!(
            s.pids,
            Pids {
                current: 3,
                limit: 10
            }
        );
        assert_eq!(s.blkio.io_service_bytes_recursive[1].op, "Write");
        assert_eq!(s.blkio.io_serviced_recursive[1].value, 2);
        assert_eq!(s.hugetlb["2MB"].usage, 2_097_152);
    }

    #[test]
    fn page_size_names() {
        assert_eq!(page_size_name(2048), "2MB");
        assert_eq!(page_size_name(1 << 20), "1GB");
        assert_eq!(page_size_name(64), "64KB");
    }
}
