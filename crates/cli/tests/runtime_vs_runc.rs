//! berth-runtime against runc on the same bundles and call sequences
//! (tests/common/differential.rs): what callers read from the runtime's
//! stderr and log file, hooks' failures, exec's options, kill 0,
//! --preserve-fds and cgroup edge cases.
#[macro_use]
mod common;

use common::differential::{assert_same_codes, log_levels, Pair};

/// Errors are runc's log lines: `level=error` in text form on stderr,
/// JSON with `--log-format json`, and with `--log FILE` the line goes to
/// the file and the bare message to stderr.
#[test]
fn errors_are_logged_with_their_level_like_runc() {
    require_root!();
    let Some(pair) = Pair::new() else { return };
    let [runc, berth] = pair.each(|p| {
        let log_text = p.root.path().join("text.log");
        let log_json = p.root.path().join("json.log");
        let plain = p.out(&["state", "no-such-ctr"]);
        let json = p.out(&["--log-format", "json", "state", "no-such-ctr"]);
        let to_text = p.out(&["--log", log_text.to_str().unwrap(), "state", "no-such-ctr"]);
        let to_json = p.out(&[
            "--log",
            log_json.to_str().unwrap(),
            "--log-format",
            "json",
            "state",
            "no-such-ctr",
        ]);
        let text_file = std::fs::read_to_string(&log_text).unwrap_or_default();
        let json_file = std::fs::read_to_string(&log_json).unwrap_or_default();
        (vec![plain, json, to_text, to_json], text_file, json_file)
    });
    assert_same_codes("state of a missing container", &runc.0, &berth.0);
    for (name, side) in [("runc", &runc), ("berth", &berth)] {
        let (outs, text_file, json_file) = side;
        assert_eq!(log_levels(&outs[0].stderr), ["error"], "{name}: {outs:?}");
        assert!(outs[0].stderr.starts_with("time=\""), "{name}: {outs:?}");
        assert!(
            outs[0].stderr.contains("does not exist"),
            "{name}: {outs:?}"
        );
        let v: serde_json::Value = serde_json::from_str(outs[1].stderr.trim())
            .unwrap_or_else(|e| panic!("{name}: json stderr: {e}: {outs:?}"));
        assert_eq!(v["level"], "error", "{name}");
        assert!(v["msg"].as_str().unwrap().contains("does not exist"));
        assert!(v["time"].is_string());
        // With --log the line goes to the file, the bare message to stderr.
        for o in &outs[2..] {
            assert!(log_levels(&o.stderr).is_empty(), "{name}: {o:?}");
            assert!(o.stderr.contains("does not exist"), "{name}: {o:?}");
        }
        assert_eq!(log_levels(text_file), ["error"], "{name}: {text_file}");
        let v: serde_json::Value = serde_json::from_str(json_file.trim())
            .unwrap_or_else(|e| panic!("{name}: json log: {e}: {json_file}"));
        assert_eq!(v["level"], "error", "{name}");
    }
}

/// `--debug` writes `level=debug` lines (to `--log` when given) in the
/// chosen format, and a successful command writes no error.
#[test]
fn debug_lines_go_to_the_log_in_its_format() {
    require_root!();
    let Some(pair) = Pair::new() else { return };
    let [runc, berth] = pair.each(|p| {
        let b = p.bundle(&["true"]);
        let id = p.id("dbg");
        let log = p.root.path().join("debug.log");
        let log = log.to_str().unwrap().to_owned();
        let outs = p.run_seq(
            &b,
            &id,
            &[
                &[
                    "--debug",
                    "--log",
                    &log,
                    "--log-format",
                    "json",
                    "run",
                    "--bundle",
                    "{bundle}",
                    "{id}",
                ],
                &["delete", "{id}"],
            ],
        );
        (outs, std::fs::read_to_string(&log).unwrap_or_default())
    });
    assert_same_codes("run --debug", &runc.0, &berth.0);
    for (name, (outs, log)) in [("runc", &runc), ("berth", &berth)] {
        let levels = log_levels(log);
        assert!(
            levels.iter().any(|l| l == "debug"),
            "{name}: no debug line: {log}"
        );
        assert!(
            !levels.iter().any(|l| l == "error"),
            "{name}: error logged: {log}"
        );
        for l in log.lines() {
            let v: serde_json::Value =
                serde_json::from_str(l).unwrap_or_else(|e| panic!("{name}: not JSON: {l:?}: {e}"));
            assert!(v["msg"].is_string() && v["time"].is_string(), "{name}: {l}");
        }
        assert!(log_levels(&outs[0].stderr).is_empty(), "{name}: {outs:?}");
    }
}
