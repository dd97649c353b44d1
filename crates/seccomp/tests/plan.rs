//! Validation of `linux.seccomp` input (no root needed).

use berth_seccomp::plan::{parse_json, plan, PlanError};
use berth_seccomp::{compile, FilterError};
use libseccomp::{ScmpAction, ScmpArch, ScmpCompareOp};

fn parse(json: &str) -> oci_spec::runtime::LinuxSeccomp {
    parse_json(json).unwrap_or_else(|e| panic!("{e}: {json}"))
}

#[test]
fn unknown_action_is_refused() {
    let err = parse_json(r#"{"defaultAction":"SCMP_ACT_EXPLODE"}"#).expect_err("must fail");
    assert!(matches!(err, PlanError::Json { .. }));
    assert!(err.to_string().contains("SCMP_ACT_EXPLODE"), "{err}");
    let err = parse_json(
        r#"{"defaultAction":"SCMP_ACT_ALLOW","syscalls":[{"names":["read"],"action":"SCMP_ACT_NOPE"}]}"#,
    )
    .expect_err("must fail");
    assert!(err.to_string().contains("SCMP_ACT_NOPE"), "{err}");
}

#[test]
fn unknown_operator_is_refused() {
    let err = parse_json(
        r#"{"defaultAction":"SCMP_ACT_ALLOW","syscalls":[{"names":["read"],"action":"SCMP_ACT_ERRNO",
            "args":[{"index":0,"value":1,"op":"SCMP_CMP_ALMOST"}]}]}"#,
    )
    .expect_err("must fail");
    assert!(err.to_string().contains("SCMP_CMP_ALMOST"), "{err}");
}

#[test]
fn unknown_arch_is_refused() {
    let err = parse_json(r#"{"defaultAction":"SCMP_ACT_ALLOW","architectures":["SCMP_ARCH_Z80"]}"#)
        .expect_err("must fail");
    assert!(err.to_string().contains("SCMP_ARCH_Z80"), "{err}");
}

#[test]
fn unknown_flag_is_refused() {
    let err =
        parse_json(r#"{"defaultAction":"SCMP_ACT_ALLOW","flags":["SECCOMP_FILTER_FLAG_FAST"]}"#)
            .expect_err("must fail");
    assert!(
        err.to_string().contains("SECCOMP_FILTER_FLAG_FAST"),
        "{err}"
    );
}

#[test]
fn bad_arg_index_is_refused() {
    let s = parse(
        r#"{"defaultAction":"SCMP_ACT_ALLOW","syscalls":[{"names":["read"],"action":"SCMP_ACT_ERRNO",
            "args":[{"index":6,"value":1,"op":"SCMP_CMP_EQ"}]}]}"#,
    );
    let err = plan(&s).expect_err("must fail");
    assert_eq!(
        err,
        PlanError::ArgIndex {
            names: vec!["read".into()],
            index: 6
        }
    );
    assert!(err.to_string().contains("read"));
}

#[test]
fn errno_ret_with_non_errno_action_is_refused() {
    let s = parse(
        r#"{"defaultAction":"SCMP_ACT_ALLOW","syscalls":[{"names":["read"],"action":"SCMP_ACT_KILL","errnoRet":5}]}"#,
    );
    let err = plan(&s).expect_err("must fail");
    assert!(
        matches!(err, PlanError::ErrnoWithoutErrnoAction { .. }),
        "{err}"
    );
    assert!(err.to_string().contains("SCMP_ACT_KILL"), "{err}");

    let s = parse(r#"{"defaultAction":"SCMP_ACT_ALLOW","defaultErrnoRet":5}"#);
    let err = plan(&s).expect_err("must fail");
    assert!(
        matches!(err, PlanError::DefaultErrnoWithoutErrnoAction { .. }),
        "{err}"
    );
    // compile() reports the same error, before any process exists.
    assert!(matches!(compile(&s), Err(FilterError::Plan(_))));
}

#[test]
fn errno_defaults_to_eperm_and_trace_takes_errno_ret() {
    let s = parse(
        r#"{"defaultAction":"SCMP_ACT_ERRNO","syscalls":[
            {"names":["read"],"action":"SCMP_ACT_ALLOW"},
            {"names":["write"],"action":"SCMP_ACT_TRACE","errnoRet":7}]}"#,
    );
    let p = plan(&s).expect("plan");
    assert_eq!(p.default_action, ScmpAction::Errno(libc::EPERM));
    assert_eq!(p.rules[1].action, ScmpAction::Trace(7));
    let s = parse(r#"{"defaultAction":"SCMP_ACT_ERRNO","defaultErrnoRet":38}"#);
    assert_eq!(
        plan(&s).expect("plan").default_action,
        ScmpAction::Errno(38)
    );
}

#[test]
fn unknown_syscalls_are_skipped() {
    let s = parse(
        r#"{"defaultAction":"SCMP_ACT_ALLOW","syscalls":[{"names":["no_such_syscall_xyz","getcwd"],"action":"SCMP_ACT_ERRNO"}]}"#,
    );
    let p = plan(&s).expect("plan");
    assert_eq!(p.skipped_unknown, vec!["no_such_syscall_xyz".to_string()]);
    assert_eq!(p.rules.len(), 1);
    assert_eq!(p.rules[0].name, "getcwd");
    compile(&s).expect("compiles with the unknown name skipped");
}

#[test]
fn rules_with_the_default_action_are_skipped() {
    let s = parse(
        r#"{"defaultAction":"SCMP_ACT_ERRNO","defaultErrnoRet":1,"syscalls":[
            {"names":["getcwd"],"action":"SCMP_ACT_ERRNO"},
            {"names":["chmod"],"action":"SCMP_ACT_ERRNO","errnoRet":38}]}"#,
    );
    let p = plan(&s).expect("plan");
    let names: Vec<_> = p.rules.iter().map(|r| r.name.as_str()).collect();
    assert_eq!(
        names,
        ["chmod"],
        "ERRNO(EPERM) equals the default, ERRNO(ENOSYS) does not"
    );
    compile(&s).expect("libseccomp accepts the rest");
}

#[test]
fn masked_eq_uses_value_as_mask_and_value_two_as_datum() {
    let s = parse(
        r#"{"defaultAction":"SCMP_ACT_ALLOW","syscalls":[{"names":["unshare"],"action":"SCMP_ACT_ERRNO",
            "args":[{"index":0,"value":268435456,"valueTwo":268435456,"op":"SCMP_CMP_MASKED_EQ"}]}]}"#,
    );
    let p = plan(&s).expect("plan");
    assert_eq!(
        p.rules[0].conditions,
        vec![(0, ScmpCompareOp::MaskedEqual(0x1000_0000), 0x1000_0000)]
    );
}

#[test]
fn same_arg_twice_becomes_separate_rules_like_runc() {
    let s = parse(
        r#"{"defaultAction":"SCMP_ACT_ALLOW","syscalls":[{"names":["personality"],"action":"SCMP_ACT_ERRNO",
            "args":[{"index":0,"value":1,"op":"SCMP_CMP_EQ"},{"index":0,"value":2,"op":"SCMP_CMP_EQ"}]}]}"#,
    );
    let p = plan(&s).expect("plan");
    assert_eq!(p.rules.len(), 2);
    compile(&s).expect("compiles");
    let s = parse(
        r#"{"defaultAction":"SCMP_ACT_ALLOW","syscalls":[{"names":["socket"],"action":"SCMP_ACT_ERRNO",
            "args":[{"index":0,"value":16,"op":"SCMP_CMP_EQ"},{"index":2,"value":9,"op":"SCMP_CMP_EQ"}]}]}"#,
    );
    let p = plan(&s).expect("plan");
    assert_eq!(p.rules.len(), 1, "different args are ANDed in one rule");
    assert_eq!(p.rules[0].conditions.len(), 2);
}

#[test]
fn notify_needs_listener_and_not_as_default() {
    let s = parse(r#"{"defaultAction":"SCMP_ACT_NOTIFY"}"#);
    assert_eq!(plan(&s).expect_err("must fail"), PlanError::NotifyAsDefault);
    let s = parse(
        r#"{"defaultAction":"SCMP_ACT_ALLOW","syscalls":[{"names":["getppid"],"action":"SCMP_ACT_NOTIFY"}]}"#,
    );
    assert_eq!(
        plan(&s).expect_err("must fail"),
        PlanError::NotifyWithoutListener
    );
    // Any syscall may notify, also those a runtime makes (runc refuses
    // `write`; berth hands the descriptor over without a syscall under the
    // filter).
    for name in ["write", "sendmsg", "recvmsg", "close", "execve"] {
        let s = parse(&format!(
            r#"{{"defaultAction":"SCMP_ACT_ALLOW","listenerPath":"/run/agent.sock",
                "syscalls":[{{"names":["{name}"],"action":"SCMP_ACT_NOTIFY"}}]}}"#
        ));
        assert!(plan(&s).expect(name).uses_notify, "{name}");
    }
    let s = parse(r#"{"defaultAction":"SCMP_ACT_ALLOW","listenerMetadata":"x"}"#);
    assert_eq!(
        plan(&s).expect_err("must fail"),
        PlanError::MetadataWithoutListener
    );
    let s = parse(
        r#"{"defaultAction":"SCMP_ACT_ALLOW","listenerPath":"/run/agent.sock",
            "syscalls":[{"names":["getppid"],"action":"SCMP_ACT_NOTIFY"}]}"#,
    );
    let p = plan(&s).expect("plan");
    assert!(p.uses_notify);
}

#[test]
fn architectures_and_flags_are_mapped() {
    let s = parse(
        r#"{"defaultAction":"SCMP_ACT_ALLOW","architectures":["SCMP_ARCH_X86_64","SCMP_ARCH_X86","SCMP_ARCH_X32","SCMP_ARCH_X86"],
            "flags":["SECCOMP_FILTER_FLAG_TSYNC","SECCOMP_FILTER_FLAG_LOG","SECCOMP_FILTER_FLAG_SPEC_ALLOW"]}"#,
    );
    let p = plan(&s).expect("plan");
    assert_eq!(p.archs, vec![ScmpArch::X8664, ScmpArch::X86, ScmpArch::X32]);
    assert!(p.flags.tsync && p.flags.log && p.flags.spec_allow && !p.flags.wait_killable_recv);
    compile(&s).expect("compiles on this machine");
}

#[test]
fn wait_killable_recv_is_an_error_or_works() {
    let s = parse(
        r#"{"defaultAction":"SCMP_ACT_ALLOW","flags":["SECCOMP_FILTER_FLAG_WAIT_KILLABLE_RECV"]}"#,
    );
    let supported = berth_seccomp::features()
        .supported_flags
        .contains(&"SECCOMP_FILTER_FLAG_WAIT_KILLABLE_RECV".to_string());
    match compile(&s) {
        Ok(_) => assert!(supported, "compiled but features() says unsupported"),
        Err(e) => {
            assert!(!supported, "features() says supported but: {e}");
            assert!(e.to_string().contains("WAIT_KILLABLE_RECV"), "{e}");
        }
    }
}

#[test]
fn every_action_compiles() {
    for action in [
        "SCMP_ACT_KILL",
        "SCMP_ACT_KILL_THREAD",
        "SCMP_ACT_KILL_PROCESS",
        "SCMP_ACT_TRAP",
        "SCMP_ACT_ERRNO",
        "SCMP_ACT_TRACE",
        "SCMP_ACT_LOG",
        "SCMP_ACT_NOTIFY",
    ] {
        let json = format!(
            r#"{{"defaultAction":"SCMP_ACT_ALLOW","listenerPath":"/x","syscalls":[{{"names":["getcwd"],"action":"{action}"}}]}}"#
        );
        compile(&parse(&json)).unwrap_or_else(|e| panic!("{action}: {e}"));
    }
}

#[test]
fn errno_out_of_range_is_refused() {
    let s = parse(
        r#"{"defaultAction":"SCMP_ACT_ALLOW","syscalls":[{"names":["read"],"action":"SCMP_ACT_ERRNO","errnoRet":70000}]}"#,
    );
    let err = plan(&s).expect_err("must fail");
    assert!(
        matches!(err, PlanError::ErrnoOutOfRange { value: 70000, .. }),
        "{err}"
    );
    assert!(err.to_string().contains("read"), "{err}");
}
