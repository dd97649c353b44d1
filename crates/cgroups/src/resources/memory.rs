//! Memory (runtime-spec config-linux.md, "Memory"), following runc's fs
//! (v1) and fs2 (v2) memory controllers.

use oci_spec::runtime::LinuxMemory;

use super::{FileWrite, HostFacts, ResourceError};
use crate::path::Driver;

const M: &str = "memory";

/// v2 value of a byte limit: -1 (or any negative) is "max".
fn v2_limit(v: i64) -> String {
    if v < 0 {
        "max".into()
    } else {
        v.to_string()
    }
}

/// runc's `ConvertMemorySwapToCgroupV2Value`: the spec's swap is memory+swap
/// (v1 memsw); v2's memory.swap.max is swap alone. 0 means unset.
pub fn swap_to_v2(swap: i64, memory: i64) -> Result<i64, ResourceError> {
    // Memory unlimited and swap unset: both unlimited (v1 compatibility).
    if memory == -1 && swap == 0 {
        return Ok(-1);
    }
    if swap == -1 || swap == 0 {
        return Ok(swap);
    }
    if memory == 0 || memory == -1 {
        return Err(ResourceError::Invalid {
            resource: "memory.swap",
            value: swap.to_string(),
            why: "a swap limit needs a memory limit",
        });
    }
    if memory < 0 || swap < memory {
        return Err(ResourceError::Invalid {
            resource: "memory.swap",
            value: swap.to_string(),
            why: "memory+swap must be >= the memory limit",
        });
    }
    Ok(swap - memory)
}

fn check_usage(mem: &LinuxMemory, facts: &HostFacts, update: bool) -> Result<(), ResourceError> {
    if let (true, Some(true), Some(limit), Some(usage)) = (
        update,
        mem.check_before_update(),
        mem.limit(),
        facts.memory_usage,
    ) {
        if limit > 0 && (limit as u64) < usage {
            return Err(ResourceError::BelowUsage { limit, usage });
        }
    }
    Ok(())
}

/// Writes for `mem`. `kernel` is ignored as runc does (kernel memory limits
/// are deprecated and unsupported since Linux 6.1's kmem removal in v2 and
/// ignored by runc >= 1.1 on v1 too).
pub fn writes(
    mem: &LinuxMemory,
    driver: Driver,
    facts: &HostFacts,
    update: bool,
) -> Result<Vec<FileWrite>, ResourceError> {
    check_usage(mem, facts, update)?;
    if let Some(s) = mem.swappiness() {
        if s > 100 {
            return Err(ResourceError::Invalid {
                resource: "memory.swappiness",
                value: s.to_string(),
                why: "must be 0..=100",
            });
        }
    }
    match driver {
        Driver::V1 => v1(mem, facts),
        Driver::V2 => v2(mem),
    }
}

fn v1(mem: &LinuxMemory, facts: &HostFacts) -> Result<Vec<FileWrite>, ResourceError> {
    let mut w = Vec::new();
    let limit = mem.limit().unwrap_or(0);
    let mut swap = mem.swap().unwrap_or(0);
    // runc: unlimited memory with unset swap means unlimited swap too.
    if limit == -1 && swap == 0 && facts.memsw {
        swap = -1;
    }
    if swap != 0 && !facts.memsw {
        return Err(ResourceError::Unsupported {
            resource: "memory.swap",
            driver: "v1",
            hint: " on this host: swap accounting is off (memory.memsw.* missing; boot with swapaccount=1)",
        });
    }
    let limit_w = FileWrite::new(M, "memory.limit_in_bytes", limit.to_string());
    let swap_w = FileWrite::new(M, "memory.memsw.limit_in_bytes", swap.to_string());
    // The kernel wants memory <= memsw at every step: when raising memsw
    // above the current limit (or to -1), write memsw first (runc setMemoryAndSwap).
    let swap_first = limit != 0
        && swap != 0
        && (swap == -1
            || facts
                .memory_limit
                .is_some_and(|cur| swap > 0 && cur < swap as u64));
    match (limit != 0, swap != 0, swap_first) {
        (true, true, true) => w.extend([swap_w, limit_w]),
        (true, true, false) => w.extend([limit_w, swap_w]),
        (true, false, _) => w.push(limit_w),
        (false, true, _) => w.push(swap_w),
        (false, false, _) => {}
    }
    if let Some(r) = mem.reservation() {
        w.push(FileWrite::new(
            M,
            "memory.soft_limit_in_bytes",
            r.to_string(),
        ));
    }
    if let Some(t) = mem.kernel_tcp() {
        w.push(FileWrite::new(
            M,
            "memory.kmem.tcp.limit_in_bytes",
            t.to_string(),
        ));
    }
    if let Some(s) = mem.swappiness() {
        w.push(FileWrite::new(M, "memory.swappiness", s.to_string()));
    }
    if mem.disable_oom_killer() == Some(true) {
        w.push(FileWrite::new(M, "memory.oom_control", "1"));
    }
    if let Some(h) = mem.use_hierarchy() {
        w.push(FileWrite::new(
            M,
            "memory.use_hierarchy",
            if h { "1" } else { "0" },
        ));
    }
    Ok(w)
}

fn v2(mem: &LinuxMemory) -> Result<Vec<FileWrite>, ResourceError> {
    if mem.swappiness().is_some() {
        return Err(ResourceError::Unsupported {
            resource: "memory.swappiness",
            driver: "v2",
            hint: " (cgroup v2 has no per-cgroup swappiness); remove it",
        });
    }
    if mem.disable_oom_killer() == Some(true) {
        return Err(ResourceError::Unsupported {
            resource: "memory.disableOOMKiller",
            driver: "v2",
            hint: " (cgroup v2 cannot disable the OOM killer); remove it",
        });
    }
    if mem.use_hierarchy() == Some(false) {
        return Err(ResourceError::Unsupported {
            resource: "memory.useHierarchy=false",
            driver: "v2",
            hint: " (v2 accounting is always hierarchical)",
        });
    }
    let mut w = Vec::new();
    let limit = mem.limit().unwrap_or(0);
    let swap = swap_to_v2(mem.swap().unwrap_or(0), limit)?;
    // Swap before max, as runc does, so that lowering both never trips.
    if swap != 0 {
        w.push(FileWrite::new(M, "memory.swap.max", v2_limit(swap)));
    }
    if limit != 0 {
        w.push(FileWrite::new(M, "memory.max", v2_limit(limit)));
    }
    if let Some(r) = mem.reservation() {
        if r != 0 {
            w.push(FileWrite::new(M, "memory.low", v2_limit(r)));
        }
    }
    // kernelTCP: ignored on v2, as runc does (no such interface).
    Ok(w)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn mem(json: &str) -> LinuxMemory {
        serde_json::from_str(json).expect("memory json")
    }

    fn files(w: &[FileWrite]) -> Vec<(String, String)> {
        w.iter()
            .map(|w| (w.file.clone(), w.value.clone()))
            .collect()
    }

    fn pairs(p: &[(&str, &str)]) -> Vec<(String, String)> {
        p.iter()
            .map(|(a, b)| (a.to_string(), b.to_string()))
            .collect()
    }

    #[test]
    fn swap_conversion_as_runc() {
        assert_eq!(swap_to_v2(0, -1).expect("ok"), -1);
        assert_eq!(swap_to_v2(-1, 100).expect("ok"), -1);
        assert_eq!(swap_to_v2(0, 100).expect("ok"), 0);
        assert_eq!(swap_to_v2(300, 100).expect("ok"), 200);
        assert!(swap_to_v2(50, 100).is_err());
        assert!(swap_to_v2(50, 0).is_err());
    }

    #[test]
    fn v1_limit_swap_order() {
        let m = mem(
            r#"{"limit": 100, "swap": 200, "reservation": 50, "swappiness": 10, "disableOOMKiller": true}"#,
        );
        let facts = HostFacts {
            memsw: true,
            memory_limit: Some(1000),
            ..Default::default()
        };
        let w = writes(&m, Driver::V1, &facts, false).expect("plan");
        assert_eq!(
            files(&w),
            pairs(&[
                ("memory.limit_in_bytes", "100"),
                ("memory.memsw.limit_in_bytes", "200"),
                ("memory.soft_limit_in_bytes", "50"),
                ("memory.swappiness", "10"),
                ("memory.oom_control", "1"),
            ])
        );
        // Raising above the current limit: memsw first.
        let facts = HostFacts {
            memsw: true,
            memory_limit: Some(100),
            ..Default::default()
        };
        let m = mem(r#"{"limit": 300, "swap": 600}"#);
        let w = writes(&m, Driver::V1, &facts, false).expect("plan");
        assert_eq!(w[0].file, "memory.memsw.limit_in_bytes");
        let m = mem(r#"{"limit": -1}"#);
        let w = writes(&m, Driver::V1, &facts, false).expect("plan");
        assert_eq!(
            files(&w),
            pairs(&[
                ("memory.memsw.limit_in_bytes", "-1"),
                ("memory.limit_in_bytes", "-1")
            ])
        );
    }

    #[test]
    fn v1_swap_without_accounting_is_an_error() {
        let m = mem(r#"{"limit": 100, "swap": 200}"#);
        let err = writes(&m, Driver::V1, &HostFacts::default(), false).expect_err("no memsw");
        assert!(err.to_string().contains("swapaccount"), "{err}");
    }

    #[test]
    fn v2_values() {
        let m =
            mem(r#"{"limit": 100, "swap": 300, "reservation": 50, "kernel": 10, "kernelTCP": 5}"#);
        let w = writes(&m, Driver::V2, &HostFacts::default(), false).expect("plan");
        assert_eq!(
            files(&w),
            pairs(&[
                ("memory.swap.max", "200"),
                ("memory.max", "100"),
                ("memory.low", "50")
            ])
        );
        let w = writes(
            &mem(r#"{"limit": -1}"#),
            Driver::V2,
            &HostFacts::default(),
            false,
        )
        .expect("plan");
        assert_eq!(
            files(&w),
            pairs(&[("memory.swap.max", "max"), ("memory.max", "max")])
        );
        assert!(writes(
            &mem(r#"{"swappiness": 5}"#),
            Driver::V2,
            &HostFacts::default(),
            false
        )
        .is_err());
        assert!(writes(
            &mem(r#"{"swappiness": 101}"#),
            Driver::V1,
            &HostFacts::default(),
            false
        )
        .is_err());
        assert!(writes(
            &mem(r#"{"disableOOMKiller": true}"#),
            Driver::V2,
            &HostFacts::default(),
            false
        )
        .is_err());
    }

    #[test]
    fn check_before_update() {
        let m = mem(r#"{"limit": 100, "checkBeforeUpdate": true}"#);
        let facts = HostFacts {
            memory_usage: Some(500),
            ..Default::default()
        };
        assert!(matches!(
            writes(&m, Driver::V2, &facts, true),
            Err(ResourceError::BelowUsage {
                limit: 100,
                usage: 500
            })
        ));
        assert!(writes(&m, Driver::V2, &facts, false).is_ok());
        let facts = HostFacts {
            memory_usage: Some(50),
            ..Default::default()
        };
        assert!(writes(&m, Driver::V2, &facts, true).is_ok());
    }
}
