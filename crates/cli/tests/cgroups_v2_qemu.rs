//! berth-runtime's resource control on a pure cgroup v2 kernel (issue 3):
//! runs scripts/cgv2-runtime-test.sh, which boots a qemu guest
//! (/work/shared/tools/qemu-cgv2.sh) and checks memory.max, pids.max,
//! cpu.weight/cpu.max, pause/resume, the device eBPF filter, update, ps, the
//! cgroup namespace and delete there with this build's berth-runtime.
//! Skips, saying why, without root, qemu, a kernel or the helper.
//! Takes about 3 minutes (TCG emulation, no KVM).

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
    let kernel = std::fs::read_dir("/boot")
        .map(|rd| {
            rd.flatten().any(|e| {
                let n = e.file_name().to_string_lossy().into_owned();
                n.starts_with("vmlinuz-") && n.ends_with("-amd64")
            })
        })
        .unwrap_or(false);
    if !kernel {
        return Some("no /boot/vmlinuz-*-amd64 (install linux-image-amd64)".into());
    }
    if !helper.exists() {
        return Some(format!("{} not found (set QEMU_CGV2)", helper.display()));
    }
    None
}

#[test]
fn runtime_resource_control_on_a_cgroup_v2_guest() {
    let helper = PathBuf::from(std::env::var("QEMU_CGV2").unwrap_or_else(|_| {
        // The project's shared/ folder sits beside the repository.
        Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("../../../shared/tools/qemu-cgv2.sh")
            .to_string_lossy()
            .into_owned()
    }));
    if let Some(why) = skip_reason(&helper) {
        eprintln!("SKIP: runtime_resource_control_on_a_cgroup_v2_guest: {why}");
        return;
    }
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../..");
    let start = std::time::Instant::now();
    let out = Command::new(root.join("scripts/cgv2-runtime-test.sh"))
        .env("QEMU_CGV2", &helper)
        .env("RUNTIME_BIN", env!("CARGO_BIN_EXE_berth-runtime"))
        .output()
        .expect("run scripts/cgv2-runtime-test.sh");
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
        .find(|l| l.starts_with("cgv2-runtime: "))
        .unwrap_or_else(|| panic!("no summary line from the guest"));
    assert!(
        summary.ends_with(" 0 failed") && !summary.contains(": 0 passed"),
        "{summary}"
    );
}
