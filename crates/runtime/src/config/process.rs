//! Checks of a `process` object (config.md "Process"): config.json's, or
//! exec's process.json.

use super::{CapSets, ConfigError, ProcessConfig, Rlimit};
use oci_spec::runtime::{Capability, Process};
use std::collections::HashSet;

/// Validate a `process` object (config.json's, or exec's process.json).
pub fn process_config(p: &Process) -> Result<ProcessConfig, ConfigError> {
    let args = p.args().clone().unwrap_or_default();
    if args.is_empty() {
        return Err(ConfigError::NoArgs);
    }
    if p.command_line().is_some() {
        return Err(ConfigError::Unsupported(
            "process.commandLine (Windows only)".into(),
        ));
    }
    let cwd = p.cwd().clone();
    if !cwd.is_absolute() {
        return Err(ConfigError::Cwd(cwd));
    }
    let env = p.env().clone().unwrap_or_default();
    for e in &env {
        if !e.contains('=') {
            return Err(ConfigError::Env(e.clone()));
        }
    }
    let user = p.user();
    let caps = p.capabilities().as_ref().map(|c| CapSets {
        bounding: cap_list(c.bounding().as_ref()),
        effective: cap_list(c.effective().as_ref()),
        inheritable: cap_list(c.inheritable().as_ref()),
        permitted: cap_list(c.permitted().as_ref()),
        ambient: cap_list(c.ambient().as_ref()),
    });
    let mut rlimits = Vec::new();
    for r in p.rlimits().iter().flatten() {
        let name = r.typ().to_string();
        let resource = rlimit_resource(&name).ok_or_else(|| ConfigError::Rlimit(name.clone()))?;
        if r.soft() > r.hard() {
            return Err(ConfigError::RlimitOrder {
                name,
                soft: r.soft(),
                hard: r.hard(),
            });
        }
        rlimits.push(Rlimit {
            resource,
            soft: r.soft(),
            hard: r.hard(),
        });
    }
    let io_priority = p
        .io_priority()
        .as_ref()
        .map(crate::sched::io_priority)
        .transpose()?;
    let scheduler = p
        .scheduler()
        .as_ref()
        .map(crate::sched::scheduler)
        .transpose()?;
    Ok(ProcessConfig {
        args,
        env,
        cwd,
        uid: user.uid(),
        gid: user.gid(),
        additional_gids: user.additional_gids().clone().unwrap_or_default(),
        umask: user.umask(),
        terminal: p.terminal().unwrap_or(false),
        console_size: p
            .console_size()
            .as_ref()
            .map(|b| (b.height() as u16, b.width() as u16)),
        caps,
        rlimits,
        no_new_privileges: p.no_new_privileges().unwrap_or(false),
        oom_score_adj: p.oom_score_adj(),
        apparmor_profile: p.apparmor_profile().clone().filter(|s| !s.is_empty()),
        selinux_label: p.selinux_label().clone().filter(|s| !s.is_empty()),
        scheduler,
        io_priority,
    })
}

fn cap_list(set: Option<&HashSet<Capability>>) -> Vec<caps::Capability> {
    let mut out: Vec<caps::Capability> = set
        .into_iter()
        .flatten()
        .filter_map(|c| oci_cap_to_caps(*c))
        .collect();
    out.sort_by_key(|c| c.index());
    out
}

/// oci-spec's capability to the `caps` crate's, through the kernel name.
/// A capability this kernel/crate does not know is skipped, as runc does.
pub fn oci_cap_to_caps(c: Capability) -> Option<caps::Capability> {
    let name = format!("CAP_{}", c.to_string().trim_start_matches("CAP_"));
    let parsed = name.parse::<caps::Capability>().ok();
    if parsed.is_none() {
        tracing::debug!("skipping capability {name} unknown to this kernel");
    }
    parsed
}

/// RLIMIT_* name to its resource number.
pub fn rlimit_resource(name: &str) -> Option<i32> {
    Some(match name {
        "RLIMIT_AS" => libc::RLIMIT_AS as i32,
        "RLIMIT_CORE" => libc::RLIMIT_CORE as i32,
        "RLIMIT_CPU" => libc::RLIMIT_CPU as i32,
        "RLIMIT_DATA" => libc::RLIMIT_DATA as i32,
        "RLIMIT_FSIZE" => libc::RLIMIT_FSIZE as i32,
        "RLIMIT_LOCKS" => libc::RLIMIT_LOCKS as i32,
        "RLIMIT_MEMLOCK" => libc::RLIMIT_MEMLOCK as i32,
        "RLIMIT_MSGQUEUE" => libc::RLIMIT_MSGQUEUE as i32,
        "RLIMIT_NICE" => libc::RLIMIT_NICE as i32,
        "RLIMIT_NOFILE" => libc::RLIMIT_NOFILE as i32,
        "RLIMIT_NPROC" => libc::RLIMIT_NPROC as i32,
        "RLIMIT_RSS" => libc::RLIMIT_RSS as i32,
        "RLIMIT_RTPRIO" => libc::RLIMIT_RTPRIO as i32,
        "RLIMIT_RTTIME" => libc::RLIMIT_RTTIME as i32,
        "RLIMIT_SIGPENDING" => libc::RLIMIT_SIGPENDING as i32,
        "RLIMIT_STACK" => libc::RLIMIT_STACK as i32,
        _ => return None,
    })
}
