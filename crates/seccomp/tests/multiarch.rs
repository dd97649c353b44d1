//! i386 syscalls (`int 0x80`) on x86_64: a filter without SCMP_ARCH_X86 kills
//! them (bad-arch action), a filter with it applies the same named rules to
//! the 32-bit table, and the default profile covers it. The 32-bit program is
//! built at test time with `gcc -m32 -nostdlib` (no 32-bit libc needed).

mod common;

use std::os::unix::process::ExitStatusExt;
use std::path::{Path, PathBuf};
use std::process::Command;

use berth_seccomp::compile;
use berth_seccomp::defaults::default_profile;
use common::{child_exit, child_prepare, describe, field, is_child, parse, report, run_child};

/// Freestanding i386 program: prints `name=value` for getpid (1 = worked),
/// getcwd and keyctl(KEYCTL_GET_KEYRING_ID, session) (1 = worked, else -errno).
const PROGRAM: &str = r#"
static long sys3(long nr, long a, long b, long c) {
    long r;
    __asm__ volatile("int $0x80" : "=a"(r) : "a"(nr), "b"(a), "c"(b), "d"(c) : "memory");
    return r;
}
static void put(const char *name, long v) {
    char buf[64]; int n = 0;
    buf[n++] = '\n';
    while (*name) buf[n++] = *name++;
    buf[n++] = '=';
    if (v < 0) { buf[n++] = '-'; v = -v; }
    char tmp[24]; int t = 0;
    do { tmp[t++] = (char)('0' + v % 10); v /= 10; } while (v);
    while (t) buf[n++] = tmp[--t];
    buf[n++] = '\n';
    sys3(4, 1, (long)buf, n);
}
static long ok_or(long r) { return r >= 0 ? 1 : r; }
void _start(void) {
    char cwd[256];
    put("getpid32", ok_or(sys3(20, 0, 0, 0)));
    put("getcwd32", ok_or(sys3(183, (long)cwd, sizeof cwd, 0)));
    put("keyctl32", ok_or(sys3(288, 0, -3, 0)));
    sys3(1, 0, 0, 0);
    for (;;) {}
}
"#;

/// Builds the i386 program in `dir`; Err(reason) when this
/// machine cannot build or run it.
fn build_program(dir: &Path) -> Result<PathBuf, String> {
    let src = dir.join("p32.c");
    let bin = dir.join("p32");
    std::fs::write(&src, PROGRAM).map_err(|e| format!("write source: {e}"))?;
    let out = Command::new("gcc")
        .args([
            "-m32",
            "-static",
            "-nostdlib",
            "-ffreestanding",
            "-fno-stack-protector",
            "-fno-pic",
            "-no-pie",
            "-O1",
            "-o",
        ])
        .arg(&bin)
        .arg(&src)
        .output()
        .map_err(|e| format!("run gcc: {e}"))?;
    if !out.status.success() {
        return Err(format!(
            "gcc -m32 failed: {}",
            String::from_utf8_lossy(&out.stderr)
        ));
    }
    let run = Command::new(&bin)
        .output()
        .map_err(|e| format!("kernel cannot run i386 binaries: {e}"))?;
    if !String::from_utf8_lossy(&run.stdout).contains("getpid32=1") {
        return Err(format!("i386 program misbehaves unfiltered: {run:?}"));
    }
    Ok(bin)
}

fn child_run(mode: &str, bin: &str) -> ! {
    let profile = match mode {
        "native" => parse(
            r#"{"defaultAction":"SCMP_ACT_ALLOW","architectures":["SCMP_ARCH_X86_64"],
                "syscalls":[{"names":["getcwd"],"action":"SCMP_ACT_ERRNO","errnoRet":18}]}"#,
        ),
        "both" => parse(
            r#"{"defaultAction":"SCMP_ACT_ALLOW","architectures":["SCMP_ARCH_X86_64","SCMP_ARCH_X86"],
                "syscalls":[{"names":["getcwd"],"action":"SCMP_ACT_ERRNO","errnoRet":18}]}"#,
        ),
        _ => default_profile(),
    };
    let filter = compile(&profile).expect("compile");
    child_prepare();
    filter.load().expect("load");
    match Command::new(bin).output() {
        Ok(o) => {
            for line in String::from_utf8_lossy(&o.stdout).lines() {
                if let Some((k, v)) = line.split_once('=') {
                    report(k, v);
                }
            }
            report("signal", format!("{:?}", o.status.signal()));
        }
        Err(e) => report("spawn", e),
    }
    child_exit()
}

#[test]
fn i386_syscalls_follow_the_filter_architectures() {
    if is_child() {
        child_run(
            &std::env::var("MODE").expect("MODE"),
            &std::env::var("BIN").expect("BIN"),
        );
    }
    if !cfg!(target_arch = "x86_64") {
        eprintln!("SKIP: i386_syscalls_follow_the_filter_architectures: x86_64 only");
        return;
    }
    let dir = tempfile::tempdir().expect("tempdir");
    let bin = match build_program(dir.path()) {
        Ok(b) => b,
        Err(why) => {
            eprintln!("SKIP: i386_syscalls_follow_the_filter_architectures: {why}");
            return;
        }
    };
    let bin = bin.to_str().expect("utf-8 path").to_owned();
    let name = "i386_syscalls_follow_the_filter_architectures";

    // Native arch only: the first i386 syscall hits the bad-arch action.
    let out = run_child(name, &[("MODE", "native"), ("BIN", &bin)]);
    assert!(out.status.success(), "{}", describe(&out));
    assert_eq!(
        field(&out, "signal").as_deref(),
        Some("Some(31)"),
        "{}",
        describe(&out)
    );
    assert_eq!(field(&out, "getpid32"), None, "{}", describe(&out));

    // x86 in the filter: the getcwd rule applies to the 32-bit table too.
    let out = run_child(name, &[("MODE", "both"), ("BIN", &bin)]);
    assert_eq!(
        field(&out, "signal").as_deref(),
        Some("None"),
        "{}",
        describe(&out)
    );
    assert_eq!(
        field(&out, "getpid32").as_deref(),
        Some("1"),
        "{}",
        describe(&out)
    );
    assert_eq!(
        field(&out, "getcwd32").as_deref(),
        Some("-18"),
        "{}",
        describe(&out)
    );
    assert_eq!(
        field(&out, "keyctl32").as_deref(),
        Some("1"),
        "{}",
        describe(&out)
    );

    // The default profile covers i386: keyctl is EPERM there as well.
    let out = run_child(name, &[("MODE", "default"), ("BIN", &bin)]);
    assert_eq!(
        field(&out, "signal").as_deref(),
        Some("None"),
        "{}",
        describe(&out)
    );
    assert_eq!(
        field(&out, "getpid32").as_deref(),
        Some("1"),
        "{}",
        describe(&out)
    );
    assert_eq!(
        field(&out, "getcwd32").as_deref(),
        Some("1"),
        "{}",
        describe(&out)
    );
    assert_eq!(
        field(&out, "keyctl32").as_deref(),
        Some("-1"),
        "{}",
        describe(&out)
    );
}
