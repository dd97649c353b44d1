//! The `linux.seccomp` object of `berth features` (runtime-spec
//! features-linux.md, "Seccomp").

use serde::{Deserialize, Serialize};

use crate::support::{api_support, ApiSupport};

/// features-linux.md `seccomp` object.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct SeccompFeatures {
    pub enabled: bool,
    pub actions: Vec<String>,
    pub operators: Vec<String>,
    pub archs: Vec<String>,
    pub known_flags: Vec<String>,
    pub supported_flags: Vec<String>,
}

/// Every operator the runtime recognises (all of them map to libseccomp).
const OPERATORS: &[&str] = &[
    "SCMP_CMP_EQ",
    "SCMP_CMP_GE",
    "SCMP_CMP_GT",
    "SCMP_CMP_LE",
    "SCMP_CMP_LT",
    "SCMP_CMP_MASKED_EQ",
    "SCMP_CMP_NE",
];

/// Architectures libseccomp 2.5+ knows and the runtime maps.
const ARCHS: &[&str] = &[
    "SCMP_ARCH_AARCH64",
    "SCMP_ARCH_ARM",
    "SCMP_ARCH_LOONGARCH64",
    "SCMP_ARCH_M68K",
    "SCMP_ARCH_MIPS",
    "SCMP_ARCH_MIPS64",
    "SCMP_ARCH_MIPS64N32",
    "SCMP_ARCH_MIPSEL",
    "SCMP_ARCH_MIPSEL64",
    "SCMP_ARCH_MIPSEL64N32",
    "SCMP_ARCH_PARISC",
    "SCMP_ARCH_PARISC64",
    "SCMP_ARCH_PPC",
    "SCMP_ARCH_PPC64",
    "SCMP_ARCH_PPC64LE",
    "SCMP_ARCH_RISCV64",
    "SCMP_ARCH_S390",
    "SCMP_ARCH_S390X",
    "SCMP_ARCH_SH",
    "SCMP_ARCH_SHEB",
    "SCMP_ARCH_X32",
    "SCMP_ARCH_X86",
    "SCMP_ARCH_X86_64",
];

/// Flags the runtime parses from config.json.
const KNOWN_FLAGS: &[&str] = &[
    "SECCOMP_FILTER_FLAG_LOG",
    "SECCOMP_FILTER_FLAG_SPEC_ALLOW",
    "SECCOMP_FILTER_FLAG_TSYNC",
    "SECCOMP_FILTER_FLAG_WAIT_KILLABLE_RECV",
];

fn strings(list: &[&str]) -> Vec<String> {
    list.iter().map(|s| (*s).to_owned()).collect()
}

/// The features object for a given support matrix and the architectures
/// libseccomp accepted (pure, unit tested).
pub fn features_for(api: &ApiSupport, archs: &[&str]) -> SeccompFeatures {
    let mut actions = vec!["SCMP_ACT_ALLOW", "SCMP_ACT_ERRNO", "SCMP_ACT_KILL"];
    if api.kill_process {
        actions.push("SCMP_ACT_KILL_PROCESS");
    }
    actions.push("SCMP_ACT_KILL_THREAD");
    if api.log_action {
        actions.push("SCMP_ACT_LOG");
    }
    if api.notify {
        actions.push("SCMP_ACT_NOTIFY");
    }
    actions.extend(["SCMP_ACT_TRACE", "SCMP_ACT_TRAP"]);

    let mut supported = Vec::new();
    if api.log {
        supported.push("SECCOMP_FILTER_FLAG_LOG");
    }
    if api.spec_allow {
        supported.push("SECCOMP_FILTER_FLAG_SPEC_ALLOW");
    }
    if api.tsync {
        supported.push("SECCOMP_FILTER_FLAG_TSYNC");
    }
    if api.wait_killable_recv {
        supported.push("SECCOMP_FILTER_FLAG_WAIT_KILLABLE_RECV");
    }
    SeccompFeatures {
        enabled: api.level >= 1,
        actions: strings(&actions),
        operators: strings(OPERATORS),
        archs: strings(archs),
        known_flags: strings(KNOWN_FLAGS),
        supported_flags: strings(&supported),
    }
}

/// What this runtime supports with the installed libseccomp on this kernel.
pub fn features() -> SeccompFeatures {
    let archs: Vec<&str> = ARCHS.iter().copied().filter(|a| arch_works(a)).collect();
    features_for(&api_support(), &archs)
}

/// Whether libseccomp accepts `arch` in a filter (libseccomp 2.5 lacks some
/// of the architectures the spec lists).
fn arch_works(arch: &str) -> bool {
    let Ok(parsed) = serde_json::from_value::<oci_spec::runtime::Arch>(arch.into()) else {
        return false;
    };
    let Ok(mut ctx) = libseccomp::ScmpFilterContext::new(libseccomp::ScmpAction::Allow) else {
        return false;
    };
    ctx.add_arch(crate::plan::to_arch(parsed)).is_ok()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::support::support_for;
    use libseccomp::ScmpVersion;

    #[test]
    fn features_follow_api_level() {
        let old = features_for(&support_for(2, ScmpVersion::from((2, 4, 0))), ARCHS);
        assert!(!old.actions.contains(&"SCMP_ACT_NOTIFY".to_string()));
        assert!(!old.actions.contains(&"SCMP_ACT_KILL_PROCESS".to_string()));
        assert_eq!(old.supported_flags, vec!["SECCOMP_FILTER_FLAG_TSYNC"]);
        let new = features_for(&support_for(7, ScmpVersion::from((2, 6, 0))), ARCHS);
        assert!(new.actions.contains(&"SCMP_ACT_NOTIFY".to_string()));
        assert_eq!(new.supported_flags.len(), 4);
        assert_eq!(new.known_flags.len(), 4);
    }

    #[test]
    fn every_listed_name_parses_as_oci() {
        // The strings we advertise must be the ones config.json may carry.
        let f = features_for(&support_for(7, ScmpVersion::from((2, 6, 0))), ARCHS);
        for a in &f.actions {
            serde_json::from_value::<oci_spec::runtime::LinuxSeccompAction>(a.as_str().into())
                .unwrap_or_else(|e| panic!("action {a}: {e}"));
        }
        for o in &f.operators {
            serde_json::from_value::<oci_spec::runtime::LinuxSeccompOperator>(o.as_str().into())
                .unwrap_or_else(|e| panic!("op {o}: {e}"));
        }
        for a in &f.archs {
            serde_json::from_value::<oci_spec::runtime::Arch>(a.as_str().into())
                .unwrap_or_else(|e| panic!("arch {a}: {e}"));
        }
        for fl in &f.known_flags {
            serde_json::from_value::<oci_spec::runtime::LinuxSeccompFilterFlag>(fl.as_str().into())
                .unwrap_or_else(|e| panic!("flag {fl}: {e}"));
        }
    }

    #[test]
    fn features_on_this_machine_serialize_camel_case() {
        let f = features();
        eprintln!("{}", serde_json::to_string(&f).unwrap_or_default());
        assert!(f.enabled);
        let native = if cfg!(target_arch = "aarch64") {
            "SCMP_ARCH_AARCH64"
        } else {
            "SCMP_ARCH_X86_64"
        };
        assert!(f.archs.contains(&native.to_string()), "{:?}", f.archs);
        let v = serde_json::to_value(&f).expect("serialize");
        assert!(v.get("knownFlags").is_some() && v.get("supportedFlags").is_some());
        for flag in &f.supported_flags {
            assert!(f.known_flags.contains(flag));
        }
    }
}
