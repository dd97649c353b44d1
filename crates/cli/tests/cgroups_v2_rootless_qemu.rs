//! berth-runtime run by an unprivileged user with a cgroup v2 subtree
//! delegated to it (issue 15): runs scripts/cgv2-rootless-test.sh, which
//! boots a qemu guest (/work/shared/tools/qemu-cgv2.sh) and checks there
//! that the user's container gets its memory and pids limits in the
//! delegated subtree, that delete removes its cgroup, and that a
//! cgroupsPath outside the delegation is a clear error.
//! Skips, saying why, without root, qemu, a kernel or the helper.
//! Takes a few minutes (TCG emulation, no KVM).

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

#[test]
fn rootless_runtime_limits_in_a_delegated_cgroup_v2_subtree() {
    let helper = PathBuf::from(std::env::var("QEMU_CGV2").unwrap_or_else(|_| {
        // The project's shared/ folder sits beside the repository.
        Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("../../../shared/tools/qemu-cgv2.sh")
            .to_string_lossy()
            .into_owned()
    }));
    if let Some(why) = skip_reason(&helper) {
        eprintln!("SKIP: rootless_runtime_limits_in_a_delegated_cgroup_v2_subtree: {why}");
        return;
    }
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../..");
    let start = std::time::Instant::now();
    let out = Command::new(root.join("scripts/cgv2-rootless-test.sh"))
        .env("QEMU_CGV2", &helper)
        .env("RUNTIME_BIN", env!("CARGO_BIN_EXE_berth-runtime"))
        .output()
        .expect("run scripts/cgv2-rootless-test.sh");
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
    let summary = stdout
        .lines()
        .find(|l| l.starts_with("cgv2-rootless: "))
        .unwrap_or_else(|| panic!("no summary line from the guest"));
    assert!(
        summary.ends_with(" 0 failed") && !summary.contains(": 0 passed"),
        "{summary}"
    );
}
