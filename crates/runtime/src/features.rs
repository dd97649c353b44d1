//! runc's `features` (runtime-spec features.md, features-linux.md): what
//! this berth build really supports on this host.

use serde_json::{json, Value};

/// Every mount option berth understands.
pub const MOUNT_OPTIONS: &[&str] = &[
    "async",
    "atime",
    "bind",
    "defaults",
    "dev",
    "diratime",
    "dirsync",
    "exec",
    "idmap",
    "mand",
    "noatime",
    "nodev",
    "nodiratime",
    "noexec",
    "nomand",
    "norelatime",
    "nostrictatime",
    "nosuid",
    "nosymfollow",
    "private",
    "ratime",
    "rbind",
    "rdev",
    "rdiratime",
    "relatime",
    "remount",
    "rexec",
    "ridmap",
    "rnoatime",
    "rnodev",
    "rnodiratime",
    "rnoexec",
    "rnorelatime",
    "rnostrictatime",
    "rnosuid",
    "rnosymfollow",
    "ro",
    "rprivate",
    "rrelatime",
    "rro",
    "rrw",
    "rshared",
    "rslave",
    "rstrictatime",
    "rsuid",
    "rsymfollow",
    "runbindable",
    "rw",
    "shared",
    "slave",
    "strictatime",
    "suid",
    "symfollow",
    "sync",
    "tmpcopyup",
    "unbindable",
];

/// The features document.
pub fn features() -> Value {
    let mut caps: Vec<String> = caps::all().iter().map(|c| c.to_string()).collect();
    caps.sort();
    let cgroup = match berth_cgroups::Layout::detect() {
        Ok(l) => serde_json::to_value(berth_cgroups::features(&l)).unwrap_or(Value::Null),
        Err(_) => {
            json!({"v1": false, "v2": false, "systemd": false, "systemdUser": false, "rdma": false})
        }
    };
    let seccomp = serde_json::to_value(berth_seccomp::features()).unwrap_or(Value::Null);
    let mount_options = MOUNT_OPTIONS;
    json!({
        "ociVersionMin": "1.0.0",
        "ociVersionMax": "1.2.0",
        "hooks": ["prestart", "createRuntime", "createContainer", "startContainer", "poststart", "poststop"],
        "mountOptions": mount_options,
        "linux": {
            "namespaces": ["cgroup", "ipc", "mount", "network", "pid", "time", "user", "uts"],
            "capabilities": caps,
            "cgroup": cgroup,
            "seccomp": seccomp,
            "apparmor": {"enabled": crate::process::apparmor_enabled()},
            "selinux": {"enabled": std::path::Path::new("/sys/fs/selinux/enforce").exists()},
            "intelRdt": {"enabled": false},
            "memoryPolicy": {
                "modes": ["MPOL_DEFAULT", "MPOL_BIND", "MPOL_INTERLEAVE", "MPOL_WEIGHTED_INTERLEAVE",
                          "MPOL_PREFERRED", "MPOL_PREFERRED_MANY", "MPOL_LOCAL"],
                "flags": ["MPOL_F_NUMA_BALANCING", "MPOL_F_RELATIVE_NODES", "MPOL_F_STATIC_NODES"]
            },
            "mountExtensions": {"idmap": {"enabled": true}}
        },
        "annotations": {
            "org.berth.version": env!("CARGO_PKG_VERSION"),
            "io.github.seccomp.libseccomp.version": seccomp_version()
        }
    })
}

fn seccomp_version() -> String {
    berth_seccomp::support::api_support().version
}
