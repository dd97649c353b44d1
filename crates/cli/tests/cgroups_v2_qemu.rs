//! berth-runtime on a pure cgroup v2 kernel, in a qemu guest
//! (/work/shared/tools/qemu-cgv2.sh) booted by a script of scripts/:
//! - cgv2-runtime-test.sh (issue 3): memory.max, pids.max,
//!   cpu.weight/cpu.max, pause/resume, the device eBPF filter, update, ps,
//!   the cgroup namespace and delete with this build's berth-runtime;
//! - cgv2-rootless-test.sh (issue 15): berth-runtime run by an unprivileged
//!   user with a cgroup v2 subtree delegated to it gets its memory and pids
//!   limits there, delete removes its cgroup, and a cgroupsPath outside the
//!   delegation is a clear error;
//! - cgv2-rootless-engine-test.sh (issue 15): the berth engine run by such
//!   a user applies `--memory`, `--cpus` and `--pids-limit` in a cgroup
//!   below the delegation (checked from the guest's root), `rm` removes
//!   it, and a user without a delegation gets the refusal.
//!
//! Skips, saying why, without root, qemu, a kernel or the helper.
//! Each takes a few minutes (TCG emulation, no KVM).

use std::path::{Path, PathBuf};
use std::process::Command;

fn skip_reason(helper: &Path) -> Option<String> {
    if !nix::unistd::geteuid().is_root() {
        return Some("needs root".into());
    }
    let on_path = std::env::var_os("PATH")
        .map(|p| std::env::split_paths(&p).any(|d| d.join("qemu-system-x86_64").exists()))
        .unwrap_or(false);
    if !on_path {
        return Some(
            "qemu-system-x86_64 not installed (.ci/install.d/cgroups.sh installs qemu-system-x86)"
                .into(),
        );
    }
    let kernel = std::fs::read_dir("/boot").is_ok_and(|rd| {
        rd.flatten().any(|e| {
            let n = e.file_name().to_string_lossy().into_owned();
            n.starts_with("vmlinuz-") && n.ends_with("-amd64")
        })
    });
    if !kernel {
        return Some("no /boot/vmlinuz-*-amd64 (install linux-image-amd64)".into());
    }
    if !helper.exists() {
        return Some(format!("{} not found (set QEMU_CGV2)", helper.display()));
    }
    None
}

/// Runs `scripts/SCRIPT` against the guest and asserts that its checks all
/// passed (no `FAIL: ` line, a `SUMMARY: N passed, 0 failed` line, N > 0).
fn run_guest_checks(test: &str, script: &str, summary: &str) {
    // One guest at a time: two emulated guests on two cores starve each
    // other (and the helper's scratch files are its own).
    static ONE_GUEST: std::sync::Mutex<()> = std::sync::Mutex::new(());
    let _one = ONE_GUEST.lock().unwrap_or_else(|e| e.into_inner());
    let helper = PathBuf::from(std::env::var("QEMU_CGV2").unwrap_or_else(|_| {
        // The project's shared/ folder sits beside the repository.
        Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("../../../shared/tools/qemu-cgv2.sh")
            .to_string_lossy()
            .into_owned()
    }));
    if let Some(why) = skip_reason(&helper) {
        eprintln!("SKIP: {test}: {why}");
        return;
    }
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../..");
    let start = std::time::Instant::now();
    let out = Command::new(root.join("scripts").join(script))
        .env("QEMU_CGV2", &helper)
        .env("RUNTIME_BIN", env!("CARGO_BIN_EXE_berth-runtime"))
        .env("BERTH_BIN", env!("CARGO_BIN_EXE_berth"))
        .output()
        .unwrap_or_else(|e| panic!("run scripts/{script}: {e}"));
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    eprintln!(
        "{stdout}\n{stderr}\ncgroup v2 guest run took {:?}",
        start.elapsed()
    );
    let fails: Vec<&str> = stdout.lines().filter(|l| l.starts_with("FAIL: ")).collect();
    assert!(
        fails.is_empty(),
        "checks failed in the cgroup v2 guest: {fails:#?}"
    );
    assert!(
        out.status.success(),
        "cgroup v2 guest run failed: {}",
        out.status
    );
    let line = stdout
        .lines()
        .find(|l| l.starts_with(&format!("{summary}: ")))
        .unwrap_or_else(|| panic!("no summary line from the guest"));
    assert!(
        line.ends_with(" 0 failed") && !line.contains(": 0 passed"),
        "{line}"
    );
}

#[test]
fn runtime_resource_control_on_a_cgroup_v2_guest() {
    run_guest_checks(
        "runtime_resource_control_on_a_cgroup_v2_guest",
        "cgv2-runtime-test.sh",
        "cgv2-runtime",
    );
}

#[test]
fn rootless_runtime_limits_in_a_delegated_cgroup_v2_subtree() {
    run_guest_checks(
        "rootless_runtime_limits_in_a_delegated_cgroup_v2_subtree",
        "cgv2-rootless-test.sh",
        "cgv2-rootless",
    );
}

#[test]
fn rootless_engine_limits_in_a_delegated_cgroup_v2_subtree() {
    run_guest_checks(
        "rootless_engine_limits_in_a_delegated_cgroup_v2_subtree",
        "cgv2-rootless-engine-test.sh",
        "cgv2-rootless-engine",
    );
}
