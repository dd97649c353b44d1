//! Scheduling settings of the container process: `process.scheduler`
//! (config.md "Scheduler", sched_setattr(2)), `process.ioPriority`
//! (config.md "IO Priority", ioprio_set(2)) and `linux.memoryPolicy`
//! (config-linux.md "Memory policy", set_mempolicy(2)). Checked here when
//! the config is loaded; applied by the container process before it drops
//! its privileges (runc's order).

use crate::config::ConfigError;
use berth_sys::sched::SchedAttr;
use oci_spec::runtime::{
    IOPriorityClass, LinuxIOPriority, LinuxMemoryPolicy, LinuxSchedulerFlag, LinuxSchedulerPolicy,
    MemoryPolicyFlagType, MemoryPolicyModeType, Scheduler,
};

/// A checked `linux.memoryPolicy`: mode with flags, and the node mask
/// (kept in the state record for exec'd processes).
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct MemPolicy {
    pub mode: i32,
    pub nodes: Vec<u64>,
    /// The config's text, for error messages.
    pub text: String,
}

/// A checked `process.ioPriority`: class and level.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct IoPriority {
    pub class: u32,
    pub level: u32,
}

fn bad(what: &str, why: impl std::fmt::Display) -> ConfigError {
    ConfigError::Setting(format!("{what}: {why}"))
}

/// `process.scheduler` as a sched_attr.
pub fn scheduler(s: &Scheduler) -> Result<SchedAttr, ConfigError> {
    use LinuxSchedulerPolicy as P;
    let policy: u32 = match s.policy() {
        P::SchedOther => 0,
        P::SchedFifo => 1,
        P::SchedRr => 2,
        P::SchedBatch => 3,
        P::SchedIso => 4,
        P::SchedIdle => 5,
        P::SchedDeadline => 6,
    };
    let mut flags = 0u64;
    for f in s.flags().iter().flatten() {
        flags |= match f {
            LinuxSchedulerFlag::SchedResetOnFork => 0x01,
            LinuxSchedulerFlag::SchedFlagReclaim => 0x02,
            LinuxSchedulerFlag::SchedFlagDLOverrun => 0x04,
            LinuxSchedulerFlag::SchedFlagKeepPolicy => 0x08,
            LinuxSchedulerFlag::SchedFlagKeepParams => 0x10,
            LinuxSchedulerFlag::SchedFlagUtilClampMin => 0x20,
            LinuxSchedulerFlag::SchedFlagUtilClampMax => 0x40,
        };
    }
    let nice = s.nice().unwrap_or(0);
    if !(-20..=19).contains(&nice) {
        return Err(bad(
            "process.scheduler.nice",
            format!("{nice} is outside -20..19"),
        ));
    }
    let priority = s.priority().unwrap_or(0);
    let rt = matches!(s.policy(), P::SchedFifo | P::SchedRr);
    if rt && !(1..=99).contains(&priority) {
        return Err(bad(
            "process.scheduler.priority",
            format!("{priority} must be 1..99 for SCHED_FIFO and SCHED_RR"),
        ));
    }
    if !rt && priority != 0 {
        return Err(bad(
            "process.scheduler.priority",
            "only SCHED_FIFO and SCHED_RR take a priority (use nice)",
        ));
    }
    let deadline = matches!(s.policy(), P::SchedDeadline);
    let (runtime, dl, period) = (
        s.runtime().unwrap_or(0),
        s.deadline().unwrap_or(0),
        s.period().unwrap_or(0),
    );
    if !deadline && (runtime != 0 || dl != 0 || period != 0) {
        return Err(bad(
            "process.scheduler",
            "runtime, deadline and period apply to SCHED_DEADLINE only",
        ));
    }
    Ok(SchedAttr {
        size: 0,
        sched_policy: policy,
        sched_flags: flags,
        sched_nice: nice,
        sched_priority: priority as u32,
        sched_runtime: runtime,
        sched_deadline: dl,
        sched_period: period,
    })
}

/// `process.ioPriority`: the class and a level 0..7 (ioprio_set(2)).
pub fn io_priority(p: &LinuxIOPriority) -> Result<IoPriority, ConfigError> {
    let class = match p.class() {
        IOPriorityClass::IoprioClassRt => 1,
        IOPriorityClass::IoprioClassBe => 2,
        IOPriorityClass::IoprioClassIdle => 3,
    };
    let level = p.priority();
    if !(0..=7).contains(&level) {
        return Err(bad(
            "process.ioPriority.priority",
            format!("{level} is outside 0..7"),
        ));
    }
    Ok(IoPriority {
        class,
        level: level as u32,
    })
}

/// `linux.memoryPolicy`: mode, flags and node list.
pub fn memory_policy(m: &LinuxMemoryPolicy) -> Result<MemPolicy, ConfigError> {
    use MemoryPolicyModeType as M;
    let mode = match m.mode() {
        M::MpolDefault => 0,
        M::MpolPreferred => 1,
        M::MpolBind => 2,
        M::MpolInterleave => 3,
        M::MpolLocal => 4,
        M::MpolPreferredMany => 5,
        M::MpolWeightedInterleave => 6,
    };
    let mut flags = 0;
    for f in m.flags().iter().flatten() {
        flags |= match f {
            MemoryPolicyFlagType::MpolFStaticNodes => 1 << 15,
            MemoryPolicyFlagType::MpolFRelativeNodes => 1 << 14,
            MemoryPolicyFlagType::MpolFNumaBalancing => 1 << 13,
        };
    }
    let text = m.nodes().clone().unwrap_or_default();
    let nodes = parse_nodes(&text).map_err(|why| bad("linux.memoryPolicy.nodes", why))?;
    let no_nodes = nodes.iter().all(|w| *w == 0);
    match m.mode() {
        M::MpolDefault | M::MpolLocal if !no_nodes => {
            return Err(bad(
                "linux.memoryPolicy",
                format!("mode {} takes no nodes", m.mode()),
            ))
        }
        M::MpolBind | M::MpolInterleave | M::MpolWeightedInterleave | M::MpolPreferredMany
            if no_nodes =>
        {
            return Err(bad(
                "linux.memoryPolicy",
                format!("mode {} needs at least one node", m.mode()),
            ))
        }
        _ => {}
    }
    Ok(MemPolicy {
        mode: mode | flags,
        nodes,
        text,
    })
}

/// "0-3,7" to a bit mask, one bit per node.
pub fn parse_nodes(s: &str) -> Result<Vec<u64>, String> {
    const MAX_NODE: usize = 4096;
    let mut mask = Vec::new();
    for part in s.split(',').map(str::trim).filter(|p| !p.is_empty()) {
        let num = |x: &str| {
            x.trim()
                .parse::<usize>()
                .ok()
                .filter(|n| *n < MAX_NODE)
                .ok_or_else(|| format!("{x:?} in {s:?} is not a node number"))
        };
        let (lo, hi) = match part.split_once('-') {
            Some((a, b)) => (num(a)?, num(b)?),
            None => (num(part)?, num(part)?),
        };
        if lo > hi {
            return Err(format!("range {part:?} in {s:?} goes backwards"));
        }
        for n in lo..=hi {
            if mask.len() <= n / 64 {
                mask.resize(n / 64 + 1, 0u64);
            }
            mask[n / 64] |= 1 << (n % 64);
        }
    }
    Ok(mask)
}

/// Spell the scheduler flags of a spec JSON value the way oci-spec 0.10
/// parses them: it expects `SCHED_RESET_ON_FORK` and
/// `SCHED_FLAG_D_L_OVERRUN` where config.md says `SCHED_FLAG_RESET_ON_FORK`
/// and `SCHED_FLAG_DL_OVERRUN`. `process` is a process object.
pub fn normalize_process_json(process: &mut serde_json::Value) {
    let Some(flags) = process
        .get_mut("scheduler")
        .and_then(|s| s.get_mut("flags"))
        .and_then(|f| f.as_array_mut())
    else {
        return;
    };
    for f in flags {
        let new = match f.as_str() {
            Some("SCHED_FLAG_RESET_ON_FORK") => "SCHED_RESET_ON_FORK",
            Some("SCHED_FLAG_DL_OVERRUN") => "SCHED_FLAG_D_L_OVERRUN",
            _ => continue,
        };
        *f = serde_json::Value::String(new.into());
    }
}

/// Apply what the config asks for, in the container process.
pub fn apply(
    sched: Option<&SchedAttr>,
    io: Option<&IoPriority>,
    mem: Option<&MemPolicy>,
) -> Result<(), String> {
    if let Some(m) = mem {
        match berth_sys::sched::set_mempolicy(m.mode, &m.nodes) {
            // A kernel without NUMA has only the default policy.
            Err(e) if m.mode == 0 && e.raw_os_error() == Some(libc::ENOSYS) => Ok(()),
            r => r,
        }
        .map_err(|e| {
            format!(
                "cannot set the memory policy (linux.memoryPolicy, nodes {:?}): {e}; check the nodes exist (/sys/devices/system/node/online)",
                m.text
            )
        })?;
    }
    if let Some(a) = sched {
        berth_sys::sched::sched_setattr(a)
            .map_err(|e| format!("cannot set process.scheduler (sched_setattr): {e}"))?;
    }
    if let Some(p) = io {
        berth_sys::sched::ioprio_set_self(p.class, p.level)
            .map_err(|e| format!("cannot set process.ioPriority (ioprio_set): {e}"))?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn node_lists() {
        assert_eq!(parse_nodes("").unwrap(), Vec::<u64>::new());
        assert_eq!(parse_nodes("0-3,7").unwrap(), vec![0b1000_1111]);
        assert_eq!(parse_nodes("64").unwrap(), vec![0, 1]);
        assert!(parse_nodes("3-1").is_err());
        assert!(parse_nodes("x").is_err());
    }

    #[test]
    fn spec_flag_names_are_accepted() {
        let mut v = serde_json::json!({"scheduler": {"policy": "SCHED_OTHER",
            "flags": ["SCHED_FLAG_RESET_ON_FORK", "SCHED_FLAG_DL_OVERRUN"]}});
        normalize_process_json(&mut v);
        let s: Scheduler = serde_json::from_value(v["scheduler"].clone()).expect("parses");
        assert_eq!(scheduler(&s).expect("valid").sched_flags, 0x05);
    }
}
