//! What the installed libseccomp and the running kernel support, from
//! libseccomp's API level (seccomp_api_get(3)), which libseccomp computes by
//! probing the kernel once per process.

use libseccomp::ScmpVersion;

/// Support matrix derived from the libseccomp API level and version.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ApiSupport {
    /// `seccomp_api_get()`; 0 when libseccomp cannot tell.
    pub level: u32,
    /// libseccomp version as `major.minor.micro`.
    pub version: String,
    pub tsync: bool,
    pub log: bool,
    pub spec_allow: bool,
    pub wait_killable_recv: bool,
    pub kill_process: bool,
    pub log_action: bool,
    pub notify: bool,
}

/// Support matrix for API level `level` of libseccomp version `version`
/// (levels from seccomp_api_get(3)): 2 TSYNC, 3 LOG flag + LOG and
/// KILL_PROCESS actions, 4 SPEC_ALLOW, 5/6 NOTIFY (the Rust binding wants 6),
/// 7 WAIT_KILLABLE_RECV (libseccomp >= 2.6).
pub fn support_for(level: u32, version: ScmpVersion) -> ApiSupport {
    let at_least = |major: u32, minor: u32| (version.major, version.minor) >= (major, minor);
    ApiSupport {
        level,
        version: format!("{}.{}.{}", version.major, version.minor, version.micro),
        tsync: level >= 2,
        log: level >= 3,
        spec_allow: level >= 4,
        wait_killable_recv: level >= 7 && at_least(2, 6),
        kill_process: level >= 3,
        log_action: level >= 3,
        notify: level >= 6 && at_least(2, 5),
    }
}

/// Support of this process's libseccomp on this kernel. The first call probes
/// the kernel (libseccomp caches the answer, also across fork).
pub fn api_support() -> ApiSupport {
    let version = ScmpVersion::current().unwrap_or(ScmpVersion::from((0, 0, 0)));
    support_for(libseccomp::get_api(), version)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn levels_map_to_features() {
        let s = support_for(1, ScmpVersion::from((2, 5, 4)));
        assert!(!s.tsync && !s.log && !s.kill_process && !s.notify);
        let s = support_for(6, ScmpVersion::from((2, 5, 4)));
        assert!(s.tsync && s.log && s.spec_allow && s.kill_process && s.notify);
        assert!(!s.wait_killable_recv, "2.5 has no WAIT_KILLABLE_RECV");
        assert_eq!(s.version, "2.5.4");
        let s = support_for(7, ScmpVersion::from((2, 6, 0)));
        assert!(s.wait_killable_recv);
    }

    #[test]
    fn this_machine_reports_a_level() {
        let s = api_support();
        assert!(
            s.level >= 1,
            "libseccomp API level {} on this machine",
            s.level
        );
        assert!(s.version.starts_with("2."), "libseccomp {}", s.version);
    }
}
