//! The process the container runs (runtime-spec config.md "Process",
//! "Hostname", "Domainname"; config-linux.md "Sysctl" aside): identity,
//! environment, capabilities, limits and flags, observed from inside.

mod common;
use common::*;
use serde_json::json;

/// A `Name:\tvalue` line of /proc/self/status output.
fn status_field<'a>(out: &'a str, name: &str) -> &'a str {
    out.lines()
        .find_map(|l| l.strip_prefix(&format!("{name}:")))
        .unwrap_or_else(|| panic!("no {name} in {out}"))
        .trim()
}

/// Capability bit mask of the given names (Linux capability numbers).
fn cap_mask(names: &[&str]) -> u64 {
    names
        .iter()
        .map(|n| match *n {
            "CAP_CHOWN" => 0,
            "CAP_DAC_OVERRIDE" => 1,
            "CAP_KILL" => 5,
            "CAP_SETGID" => 6,
            "CAP_SETUID" => 7,
            "CAP_NET_BIND_SERVICE" => 10,
            "CAP_NET_RAW" => 13,
            "CAP_SYS_CHROOT" => 18,
            "CAP_AUDIT_WRITE" => 29,
            other => panic!("add {other} to cap_mask"),
        })
        .fold(0, |m, bit| m | (1u64 << bit))
}

fn hex(out: &str, name: &str) -> u64 {
    u64::from_str_radix(status_field(out, name), 16).expect("hex caps")
}

#[test]
fn hostname_and_domainname() {
    require_root!();
    let env = Env::new();
    let out = run_ok(
        &env,
        &["sh", "-c", "hostname; cat /proc/sys/kernel/domainname"],
        |b| {
            b.config["hostname"] = json!("berth-box");
            b.config["domainname"] = json!("example.test");
        },
    );
    assert_eq!(out, "berth-box\nexample.test\n");
    let host = std::fs::read_to_string("/proc/sys/kernel/hostname").expect("host hostname");
    assert_ne!(
        host.trim(),
        "berth-box",
        "the host's hostname must not change"
    );
}

#[test]
fn environment_is_exactly_the_configs() {
    require_root!();
    let env = Env::new();
    let out = run_ok(&env, &["env"], |b| {
        b.config["process"]["env"] = json!(["PATH=/bin:/usr/bin", "FOO=bar baz", "EMPTY="]);
    });
    let mut lines: Vec<&str> = out
        .lines()
        .filter(|l| !l.starts_with("PWD=") && !l.starts_with("SHLVL="))
        .collect();
    lines.sort_unstable();
    assert!(lines.contains(&"FOO=bar baz"), "{out}");
    assert!(lines.contains(&"EMPTY="), "{out}");
    assert!(lines.contains(&"PATH=/bin:/usr/bin"), "{out}");
    // runc adds HOME when missing; nothing from the host leaks in.
    for l in &lines {
        let key = l.split('=').next().expect("key");
        assert!(
            ["PATH", "FOO", "EMPTY", "HOME", "TERM"].contains(&key),
            "unexpected variable {l} in {out}"
        );
    }
}

#[test]
fn cwd_is_set_and_created() {
    require_root!();
    let env = Env::new();
    let out = run_ok(&env, &["pwd"], |b| {
        b.config["process"]["cwd"] = json!("/var/work/dir")
    });
    assert_eq!(out.trim(), "/var/work/dir");
}

#[test]
fn cwd_through_absolute_symlink_resolves_inside_the_root() {
    require_root!();
    let env = Env::new();
    let out = run_ok(&env, &["sh", "-c", "ls; pwd -P"], |b| {
        std::fs::create_dir_all(b.rootfs().join("opt/app")).expect("mkdir");
        std::fs::write(b.rootfs().join("opt/app/inside-marker"), "x").expect("marker");
        // Absolute target: the host's /opt/app must not be used.
        std::os::unix::fs::symlink("/opt/app", b.rootfs().join("applink")).expect("symlink");
        b.config["process"]["cwd"] = json!("/applink");
    });
    assert!(
        out.contains("inside-marker"),
        "cwd must be the rootfs's /opt/app: {out}"
    );
    assert_eq!(out.lines().last(), Some("/opt/app"), "{out}");
}

#[test]
fn user_groups_and_umask() {
    require_root!();
    let env = Env::new();
    let out = run_ok(
        &env,
        &[
            "sh",
            "-c",
            "id -u; id -g; grep Groups /proc/self/status; umask; touch /tmp/f; stat -c %a /tmp/f",
        ],
        |b| {
            b.config["process"]["user"] =
                json!({"uid": 1000, "gid": 1001, "additionalGids": [10, 20], "umask": 23});
            use std::os::unix::fs::PermissionsExt;
            std::fs::set_permissions(
                b.rootfs().join("tmp"),
                std::fs::Permissions::from_mode(0o1777),
            )
            .expect("chmod /tmp");
        },
    );
    let lines: Vec<&str> = out.lines().collect();
    assert_eq!(lines[0], "1000", "{out}");
    assert_eq!(lines[1], "1001", "{out}");
    let mut groups: Vec<&str> = lines[2]
        .trim_start_matches("Groups:")
        .split_whitespace()
        .collect();
    groups.sort_unstable();
    assert_eq!(groups, vec!["10", "20"], "{out}");
    assert_eq!(lines[3], "0027", "umask 23 (decimal) is 0o027: {out}");
    assert_eq!(lines[4], "640", "{out}");
}

#[test]
fn all_five_capability_sets_match_the_config_as_root() {
    require_root!();
    let env = Env::new();
    let big = [
        "CAP_CHOWN",
        "CAP_KILL",
        "CAP_NET_BIND_SERVICE",
        "CAP_SETUID",
        "CAP_SETGID",
    ];
    let small = ["CAP_KILL", "CAP_NET_BIND_SERVICE"];
    let out = run_ok(&env, &["cat", "/proc/self/status"], |b| {
        b.config["process"]["capabilities"] = json!({
            "bounding": big, "permitted": big, "effective": big,
            "inheritable": small, "ambient": small
        });
    });
    assert_eq!(hex(&out, "CapBnd"), cap_mask(&big), "{out}");
    assert_eq!(hex(&out, "CapPrm"), cap_mask(&big));
    assert_eq!(hex(&out, "CapEff"), cap_mask(&big));
    assert_eq!(hex(&out, "CapInh"), cap_mask(&small));
    assert_eq!(hex(&out, "CapAmb"), cap_mask(&small));
}

#[test]
fn ambient_capabilities_survive_for_a_non_root_user() {
    require_root!();
    let env = Env::new();
    let bnd = ["CAP_CHOWN", "CAP_KILL", "CAP_NET_BIND_SERVICE"];
    let amb = ["CAP_NET_BIND_SERVICE"];
    let out = run_ok(&env, &["cat", "/proc/self/status"], |b| {
        b.config["process"]["user"] = json!({"uid": 1000, "gid": 1000});
        b.config["process"]["capabilities"] = json!({
            "bounding": bnd, "permitted": bnd, "effective": bnd,
            "inheritable": amb, "ambient": amb
        });
    });
    // execve as non-root without file caps: permitted = effective = ambient.
    assert_eq!(hex(&out, "CapBnd"), cap_mask(&bnd), "{out}");
    assert_eq!(hex(&out, "CapAmb"), cap_mask(&amb));
    assert_eq!(hex(&out, "CapEff"), cap_mask(&amb));
    assert_eq!(hex(&out, "CapPrm"), cap_mask(&amb));
    assert_eq!(hex(&out, "CapInh"), cap_mask(&amb));
}

#[test]
fn no_capabilities_means_empty_sets() {
    require_root!();
    let env = Env::new();
    let out = run_ok(&env, &["cat", "/proc/self/status"], |b| {
        b.config["process"]["capabilities"] = json!({});
    });
    for set in ["CapBnd", "CapPrm", "CapEff", "CapInh", "CapAmb"] {
        assert_eq!(hex(&out, set), 0, "{set} in {out}");
    }
}

#[test]
fn rlimits_are_applied() {
    require_root!();
    let env = Env::new();
    let out = run_ok(&env, &["cat", "/proc/self/limits"], |b| {
        b.config["process"]["rlimits"] = json!([
            {"type": "RLIMIT_NOFILE", "soft": 1234, "hard": 5678},
            {"type": "RLIMIT_NPROC", "soft": 300, "hard": 400}
        ]);
    });
    let line = out
        .lines()
        .find(|l| l.starts_with("Max open files"))
        .expect("nofile line");
    let nums: Vec<&str> = line.split_whitespace().skip(3).take(2).collect();
    assert_eq!(nums, vec!["1234", "5678"], "{line}");
    let line = out
        .lines()
        .find(|l| l.starts_with("Max processes"))
        .expect("nproc line");
    let nums: Vec<&str> = line.split_whitespace().skip(2).take(2).collect();
    assert_eq!(nums, vec!["300", "400"], "{line}");
}

#[test]
fn rlimit_soft_above_hard_is_refused() {
    require_root!();
    let env = Env::new();
    let o = run_with(&env, &["true"], |b| {
        b.config["process"]["rlimits"] =
            json!([{"type": "RLIMIT_NOFILE", "soft": 2000, "hard": 1000}]);
    });
    assert!(!o.status.success());
    assert!(stderr(&o).contains("RLIMIT_NOFILE"), "{}", stderr(&o));
}

#[test]
fn no_new_privileges_flag() {
    require_root!();
    let env = Env::new();
    let on = run_ok(&env, &["cat", "/proc/self/status"], |b| {
        b.config["process"]["noNewPrivileges"] = json!(true)
    });
    assert_eq!(status_field(&on, "NoNewPrivs"), "1");
    let off = run_ok(&env, &["cat", "/proc/self/status"], |b| {
        b.config["process"]["noNewPrivileges"] = json!(false)
    });
    assert_eq!(status_field(&off, "NoNewPrivs"), "0");
}

#[test]
fn oom_score_adj_is_raised() {
    require_root!();
    let env = Env::new();
    let out = run_ok(&env, &["cat", "/proc/self/oom_score_adj"], |b| {
        b.config["process"]["oomScoreAdj"] = json!(432)
    });
    assert_eq!(out.trim(), "432");
}
