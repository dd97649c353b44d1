//! From `LinuxResources` to the cgroup files to write: pure functions, one
//! module per resource (runtime-spec config-linux.md, "Control groups").
//!
//! The thin code in `apply.rs` probes a few host facts, calls [`plan`] and
//! writes the returned [`FileWrite`]s in order.

use oci_spec::runtime::LinuxResources;

use crate::devices::DeviceRule;
use crate::path::Driver;

pub mod blkio;
pub mod cpu;
pub mod hugetlb;
pub mod memory;
pub mod network;
pub mod pids;
pub mod unified;

/// Errors of computing cgroup file values from the spec.
#[derive(Debug, thiserror::Error)]
pub enum ResourceError {
    #[error("{resource} is not supported with the cgroup {driver} driver{hint}")]
    Unsupported {
        resource: &'static str,
        driver: &'static str,
        hint: &'static str,
    },
    #[error("invalid {resource} value {value}: {why}")]
    Invalid {
        resource: &'static str,
        value: String,
        why: &'static str,
    },
    #[error("memory limit {limit} is below the current usage {usage} (checkBeforeUpdate); raise the limit or free memory first")]
    BelowUsage { limit: i64, usage: u64 },
}

/// One write: `value` into `file` of the `controller`'s directory (v1), or of
/// the single cgroup directory (v2; `controller` then names what must be
/// enabled in the parents' cgroup.subtree_control).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FileWrite {
    pub controller: String,
    pub file: String,
    pub value: String,
}

impl FileWrite {
    pub fn new(controller: &str, file: impl Into<String>, value: impl Into<String>) -> Self {
        FileWrite {
            controller: controller.to_string(),
            file: file.into(),
            value: value.into(),
        }
    }
}

/// Host facts some values depend on, probed by the thin code.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct HostFacts {
    /// v1: memory.memsw.* exist (swap accounting on).
    pub memsw: bool,
    /// v1: current memory.limit_in_bytes (orders limit vs memsw writes).
    pub memory_limit: Option<u64>,
    /// current memory usage, for checkBeforeUpdate (update only).
    pub memory_usage: Option<u64>,
    /// v1: blkio.weight exists (CFQ); v2: io.weight exists.
    pub io_weight: bool,
    /// v1: blkio.bfq.weight exists; v2: io.bfq.weight exists.
    pub bfq_weight: bool,
    /// hugetlb reservation files (`hugetlb.<size>.rsvd.*`) exist.
    pub hugetlb_rsvd: bool,
}

impl Driver {
    pub fn name(self) -> &'static str {
        match self {
            Driver::V1 => "v1",
            Driver::V2 => "v2",
        }
    }
}

/// Everything to do for one `LinuxResources`.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Plan {
    pub writes: Vec<FileWrite>,
    /// Device rules, if the spec has any (v1: devices.allow/deny lines are
    /// already in `writes`; v2: the caller loads an eBPF program).
    pub devices: Option<Vec<DeviceRule>>,
}

/// Computes every write for `res` with `driver`. `update` enables
/// checkBeforeUpdate.
pub fn plan(
    res: &LinuxResources,
    driver: Driver,
    facts: &HostFacts,
    update: bool,
) -> Result<Plan, ResourceError> {
    let mut w = Vec::new();
    if let Some(cpu) = res.cpu() {
        w.extend(cpu::writes(cpu, driver)?);
    }
    if let Some(mem) = res.memory() {
        w.extend(memory::writes(mem, driver, facts, update)?);
    }
    if let Some(p) = res.pids() {
        w.extend(pids::writes(p.limit()));
    }
    if let Some(b) = res.block_io() {
        w.extend(blkio::writes(b, driver, facts)?);
    }
    if let Some(h) = res.hugepage_limits() {
        w.extend(hugetlb::writes(h, driver, facts)?);
    }
    if let Some(n) = res.network() {
        w.extend(network::writes(n, driver)?);
    }
    if res.rdma().as_ref().is_some_and(|r| !r.is_empty()) {
        return Err(ResourceError::Unsupported {
            resource: "rdma",
            driver: driver.name(),
            hint: "; remove linux.resources.rdma",
        });
    }
    if let Some(u) = res.unified() {
        w.extend(unified::writes(u, driver)?);
    }
    let mut devices = None;
    if let Some(d) = res.devices() {
        let rules = crate::devices::rules_from_spec(d)?;
        if driver == Driver::V1 {
            w.extend(crate::devices::v1_writes(&rules));
        }
        devices = Some(rules);
    }
    Ok(Plan { writes: w, devices })
}
