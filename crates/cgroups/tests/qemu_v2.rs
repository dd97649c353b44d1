//! Runs the live tests (tests/live.rs) on a pure cgroup v2 kernel through
//! scripts/cgv2-test.sh (a qemu guest), so the v2 driver is tested for real
//! on v1/hybrid hosts too. Skips, saying why, without qemu or a kernel.

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

/// The live test binary cargo built next to this one, if it is not older
/// than this binary (else the script builds a fresh one).
fn sibling_live_binary() -> Option<PathBuf> {
    let me = std::env::current_exe().ok()?;
    let my_time = me.metadata().ok()?.modified().ok()?;
    let dir = me.parent()?;
    std::fs::read_dir(dir)
        .ok()?
        .flatten()
        .filter(|e| {
            let n = e.file_name().to_string_lossy().into_owned();
            n.starts_with("live-") && !n.contains('.')
        })
        .filter_map(|e| Some((e.metadata().ok()?.modified().ok()?, e.path())))
        .filter(|(t, _)| *t >= my_time)
        .max()
        .map(|(_, p)| p)
}

#[test]
fn live_tests_pass_on_a_cgroup_v2_guest() {
    let helper = PathBuf::from(std::env::var("QEMU_CGV2").unwrap_or_else(|_| {
        // The project's shared/ folder sits beside the repository.
        Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("../../../shared/tools/qemu-cgv2.sh")
            .to_string_lossy()
            .into_owned()
    }));
    if let Some(why) = skip_reason(&helper) {
        eprintln!("SKIP: live_tests_pass_on_a_cgroup_v2_guest: {why}");
        return;
    }
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../..");
    let mut cmd = Command::new(root.join("scripts/cgv2-test.sh"));
    cmd.env("QEMU_CGV2", &helper);
    match sibling_live_binary() {
        Some(bin) => {
            cmd.env("LIVE_BIN", bin);
        }
        None => {
            // This cargo run holds its target dir's lock: build elsewhere.
            let me = std::env::current_exe().expect("current exe");
            let target = me
                .ancestors()
                .nth(3)
                .expect("target dir")
                .join("cgv2-nested");
            cmd.env("CARGO_TARGET_DIR", target);
        }
    }
    let start = std::time::Instant::now();
    let out = cmd.output().expect("run scripts/cgv2-test.sh");
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    eprintln!(
        "{stdout}\n{stderr}\ncgv2 guest run took {:?}",
        start.elapsed()
    );
    assert!(
        out.status.success(),
        "cgroup v2 guest tests failed: {}",
        out.status
    );
    assert!(
        stdout.contains("test result: ok"),
        "guest printed a passing test result"
    );
}
