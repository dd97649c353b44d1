//! Unit tests for `config.rs` (kept apart so that file holds only the checks).

use super::*;

fn spec_json(extra_linux: &str) -> String {
    format!(
        r#"{{"ociVersion":"1.2.0","root":{{"path":"rootfs"}},
        "process":{{"args":["/bin/sh"],"cwd":"/","user":{{"uid":0,"gid":0}}}},
        "linux":{{"namespaces":[{{"type":"pid"}},{{"type":"mount"}}]{extra_linux}}}}}"#
    )
}

fn check(json: &str) -> Result<ContainerConfig, ConfigError> {
    let dir = tempfile::tempdir().expect("tempdir");
    std::fs::create_dir(dir.path().join("rootfs")).expect("mkdir");
    std::fs::write(dir.path().join("config.json"), json).expect("write");
    load(dir.path())
}

#[test]
fn minimal_config_is_accepted() {
    let c = check(&spec_json("")).expect("valid");
    assert_eq!(c.process.args, vec!["/bin/sh"]);
    assert!(c.namespaces.creates(NsKind::Pid));
    assert_eq!(
        c.namespaces.new_flags(),
        libc::CLONE_NEWPID | libc::CLONE_NEWNS
    );
}

#[test]
fn unknown_major_version_is_refused() {
    let j = spec_json("").replace("1.2.0", "2.0.0");
    assert!(matches!(check(&j), Err(ConfigError::Version(_))));
}

#[test]
fn duplicate_namespace_is_refused() {
    let j = spec_json("").replace(r#"{"type":"mount"}"#, r#"{"type":"pid"}"#);
    assert!(matches!(check(&j), Err(ConfigError::DuplicateNamespace(_))));
}

#[test]
fn missing_rootfs_is_refused() {
    let dir = tempfile::tempdir().expect("tempdir");
    std::fs::write(dir.path().join("config.json"), spec_json("")).expect("write");
    assert!(matches!(load(dir.path()), Err(ConfigError::Rootfs { .. })));
}

#[test]
fn missing_config_is_a_read_error() {
    let dir = tempfile::tempdir().expect("tempdir");
    assert!(matches!(load(dir.path()), Err(ConfigError::Read { .. })));
}

#[test]
fn garbage_config_is_a_parse_error() {
    assert!(matches!(check("{not json"), Err(ConfigError::Parse { .. })));
}

#[test]
fn relative_mount_destination_is_refused() {
    let j = spec_json("").replace(
        r#""linux""#,
        r#""mounts":[{"destination":"tmp","type":"tmpfs","source":"tmpfs"}],"linux""#,
    );
    assert!(matches!(check(&j), Err(ConfigError::MountDestination(_))));
}

#[test]
fn relative_bind_source_and_masked_paths() {
    let j = spec_json(r#","maskedPaths":["proc/kcore"],"readonlyPaths":["sys"]"#).replace(
        r#""linux""#,
        r#""mounts":[{"destination":"/d","type":"bind","source":"data","options":["rbind"]}],"linux""#,
    );
    let c = check(&j).expect("valid");
    assert_eq!(c.mounts[0].source, Some(c.bundle.join("data")));
    assert_eq!(c.masked_paths, vec![PathBuf::from("/proc/kcore")]);
    assert_eq!(c.readonly_paths, vec![PathBuf::from("/sys")]);
}

#[test]
fn scheduler_io_priority_and_memory_policy_are_checked() {
    let proc_with = |extra: &str| {
        spec_json("").replace(
            r#""user":{"uid":0,"gid":0}"#,
            &format!(r#""user":{{"uid":0,"gid":0}},{extra}"#),
        )
    };
    let c = check(&proc_with(
        r#""scheduler":{"policy":"SCHED_BATCH","nice":3,"flags":["SCHED_FLAG_RESET_ON_FORK"]},
           "ioPriority":{"class":"IOPRIO_CLASS_IDLE","priority":0}"#,
    ))
    .expect("valid");
    let s = c.process.scheduler.expect("scheduler");
    assert_eq!((s.sched_policy, s.sched_nice, s.sched_flags), (3, 3, 1));
    assert_eq!(c.process.io_priority.map(|p| p.class), Some(3));
    assert!(check(&proc_with(
        r#""scheduler":{"policy":"SCHED_OTHER","nice":40}"#
    ))
    .is_err());
    assert!(check(&proc_with(r#""scheduler":{"policy":"SCHED_RR"}"#)).is_err());
    let c = check(&spec_json(
        r#","memoryPolicy":{"mode":"MPOL_BIND","nodes":"0-1","flags":["MPOL_F_STATIC_NODES"]}"#,
    ))
    .expect("valid");
    let m = c.memory_policy.expect("policy");
    assert_eq!((m.mode, m.nodes), (2 | 1 << 15, vec![0b11]));
    assert!(check(&spec_json(
        r#","memoryPolicy":{"mode":"MPOL_LOCAL","nodes":"0"}"#
    ))
    .is_err());
}

#[test]
fn userns_needs_mappings() {
    let j = spec_json("").replace(r#"{"type":"pid"}"#, r#"{"type":"pid"},{"type":"user"}"#);
    assert!(matches!(check(&j), Err(ConfigError::UsernsWithoutMappings)));
}

#[test]
fn sysctl_rules() {
    let ns = Namespaces {
        new: vec![NsKind::Ipc],
        join: vec![],
    };
    assert!(check_sysctl("kernel.shmmax", &ns).is_ok());
    assert!(check_sysctl("fs.mqueue.msg_max", &ns).is_ok());
    assert!(check_sysctl("net.ipv4.ip_forward", &ns).is_err());
    assert!(check_sysctl("vm.swappiness", &ns).is_err());
    assert!(check_sysctl("kernel.hostname", &ns).is_err());
}

#[test]
fn hostname_without_uts_is_refused() {
    let j = spec_json("").replace(r#""linux""#, r#""hostname":"x","linux""#);
    assert!(matches!(check(&j), Err(ConfigError::HostnameWithoutUts)));
}

#[test]
fn rlimit_names_map() {
    assert_eq!(
        rlimit_resource("RLIMIT_NOFILE"),
        Some(libc::RLIMIT_NOFILE as i32)
    );
    assert_eq!(rlimit_resource("RLIMIT_BOGUS"), None);
}

#[test]
fn id_map_text_format() {
    let t = id_map_text(&[IdMap {
        container: 0,
        host: 100000,
        size: 65536,
    }]);
    assert_eq!(t, "0 100000 65536\n");
}

#[test]
fn joined_namespaces_are_ordered_user_first_mount_last() {
    let list: Vec<oci_spec::runtime::LinuxNamespace> = serde_json::from_str(
        r#"[{"type":"mount","path":"/proc/1/ns/mnt"},{"type":"network","path":"/proc/1/ns/net"},{"type":"user","path":"/proc/1/ns/user"}]"#,
    )
    .expect("json");
    let ns = namespaces(&list).expect("valid");
    let kinds: Vec<NsKind> = ns.join.iter().map(|(k, _)| *k).collect();
    assert_eq!(kinds, vec![NsKind::User, NsKind::Network, NsKind::Mount]);
}

#[test]
fn zero_blkio_weight_is_unset_as_in_runc() {
    let r: LinuxResources =
        serde_json::from_str(r#"{"blockIO":{"weight":0,"leafWeight":0},"cpu":{"shares":0}}"#)
            .expect("json");
    let r = zero_weights_unset(Some(r)).expect("some");
    let b = r.block_io().clone().expect("blockIO kept");
    assert_eq!(b.weight(), None);
    assert_eq!(b.leaf_weight(), None);
    let r: LinuxResources = serde_json::from_str(r#"{"blockIO":{"weight":500}}"#).expect("json");
    let r = zero_weights_unset(Some(r)).expect("some");
    assert_eq!(r.block_io().clone().and_then(|b| b.weight()), Some(500));
    assert!(zero_weights_unset(None).is_none());
}
