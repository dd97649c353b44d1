//! What the runtime does after it loads the container's seccomp filter
//! (issue 13): profiles from the wild allow what the program needs, not
//! what a runtime needs, so berth makes no syscall but execve under the
//! filter, with `noNewPrivileges` true or false. Each case runs the same
//! bundle through runc too: where runc runs it, berth gives the same exit
//! code and output; where runc fails, berth must still run it.
//!
//! Also: syscalls newer than the profile get ENOSYS, as under runc.

mod common;
use common::differential::{assert_same_output, runc_bin, runc_run, Outcome};
use common::*;
use serde_json::{json, Value};
use std::path::Path;
use std::process::Output;

/// dockerd 20.10's default profile and containerd 1.6's (`ctr run
/// --seccomp`), as those daemons wrote them into config.json (see
/// crates/seccomp/tests/profiles/README.md).
const DOCKER: &str = include_str!("../../seccomp/tests/profiles/docker-20.10.json");
const CONTAINERD: &str = include_str!("../../seccomp/tests/profiles/containerd-1.6.json");

const ARCHS: [&str; 3] = ["SCMP_ARCH_X86_64", "SCMP_ARCH_X86", "SCMP_ARCH_X32"];

/// An allow-list of what `sh -c 'echo ...'` of busybox makes (strace), and
/// execve: nothing a runtime needs (no close_range, rt_sigprocmask, fcntl,
/// openat, sendmsg, capset, setuid...).
fn minimal_allow_list() -> Value {
    json!({
        "defaultAction": "SCMP_ACT_ERRNO",
        "architectures": ARCHS,
        "syscalls": [{
            "names": ["execve", "arch_prctl", "brk", "exit", "exit_group", "getpid", "getppid",
                      "getrandom", "getuid", "mmap", "munmap", "mprotect", "newfstatat", "prctl",
                      "prlimit64", "readlink", "rseq", "rt_sigaction", "rt_sigreturn",
                      "set_robust_list", "set_tid_address", "uname", "write"],
            "action": "SCMP_ACT_ALLOW"
        }]
    })
}

/// Allows everything but syscalls a runtime typically makes late.
fn denies_runtime_syscalls() -> Value {
    json!({
        "defaultAction": "SCMP_ACT_ALLOW",
        "architectures": ARCHS,
        "syscalls": [{
            "names": ["close_range", "clone3", "openat2", "rt_sigprocmask", "sendmsg"],
            "action": "SCMP_ACT_ERRNO",
            "errnoRet": libc::EPERM
        }]
    })
}

fn profile(json: &str) -> Value {
    serde_json::from_str(json).expect("profile fixture is JSON")
}

/// `p` without syscall `name` (Docker's profiles before 20.10 had no
/// close_range).
fn without(mut p: Value, name: &str) -> Value {
    for rule in p["syscalls"].as_array_mut().expect("syscalls") {
        if let Some(names) = rule["names"].as_array_mut() {
            names.retain(|n| n != name);
        }
    }
    p
}

/// `runc run` of a bundle made like berth's, with its own state root.
fn runc_side(env: &Env, args: &[&str], edit: &dyn Fn(&mut Bundle)) -> Option<Outcome> {
    runc_bin()?;
    let mut b = env.bundle(args);
    edit(&mut b);
    runc_run(&[], &[], &b)
}

fn berth_run(env: &Env, args: &[&str], edit: &dyn Fn(&mut Bundle)) -> Output {
    let mut b = env.bundle(args);
    edit(&mut b);
    env.run(&b, &env.id("pf"))
}

fn show(o: &Output) -> String {
    format!(
        "exit {:?}, stdout {:?}, stderr {:?}",
        o.status.code(),
        stdout(o),
        stderr(o)
    )
}

/// Runs through berth (which must succeed) and runc; when runc succeeds
/// too, both must agree. Returns berth's stdout.
fn differential(label: &str, env: &Env, args: &[&str], edit: &dyn Fn(&mut Bundle)) -> String {
    let ours = berth_run(env, args, edit);
    assert!(ours.status.success(), "{label}: berth: {}", show(&ours));
    match runc_side(env, args, edit) {
        Some(theirs) if theirs.ok() => {
            assert_same_output(label, &theirs, &ours.clone().into());
            eprintln!("{label}: same as runc");
        }
        Some(theirs) => eprintln!("{label}: runc fails here, berth runs: {theirs:?}"),
        None => eprintln!("{label}: runc is not installed; berth only"),
    }
    stdout(&ours)
}

#[test]
fn real_world_profiles_run_with_and_without_no_new_privileges() {
    require_root!();
    let env = Env::new();
    let profiles = [
        ("minimal allow-list", minimal_allow_list()),
        ("docker 20.10", profile(DOCKER)),
        (
            "docker 20.10 without close_range",
            without(profile(DOCKER), "close_range"),
        ),
        ("containerd 1.6", profile(CONTAINERD)),
        (
            "denies close_range clone3 openat2 rt_sigprocmask sendmsg",
            denies_runtime_syscalls(),
        ),
    ];
    for (name, p) in profiles {
        for nnp in [true, false] {
            let label = format!("{name}, noNewPrivileges {nnp}");
            let edit = |b: &mut Bundle| {
                b.config["linux"]["seccomp"] = p.clone();
                b.config["process"]["noNewPrivileges"] = json!(nnp);
            };
            let out = differential(&label, &env, &["sh", "-c", "echo post-filter-ok"], &edit);
            assert_eq!(out.trim(), "post-filter-ok", "{label}");
        }
    }
}

#[test]
fn capabilities_after_a_filter_loaded_without_nnp_match_runc() {
    require_root!();
    let env = Env::new();
    let script = "grep -E '^(Cap|NoNewPrivs|Seccomp)' /proc/self/status";
    // Loading without no_new_privs needs CAP_SYS_ADMIN, which the default
    // set lacks: it must not survive into the program.
    let users = [
        ("root", json!({"uid": 0, "gid": 0})),
        ("nobody", json!({"uid": 65534, "gid": 65534})),
        ("nobody with ambient", json!({"uid": 65534, "gid": 65534})),
    ];
    for (label, user) in users {
        let edit = |b: &mut Bundle| {
            b.config["linux"]["seccomp"] = without(profile(DOCKER), "close_range");
            b.config["process"]["noNewPrivileges"] = json!(false);
            b.config["process"]["user"] = user.clone();
            if label.contains("ambient") {
                let caps = &mut b.config["process"]["capabilities"];
                for set in ["ambient", "inheritable"] {
                    caps[set] = json!(["CAP_NET_BIND_SERVICE"]);
                }
            }
        };
        let out = differential(label, &env, &["sh", "-c", script], &edit);
        assert!(out.contains("NoNewPrivs:\t0"), "{label}: {out}");
        assert!(out.contains("Seccomp:\t2"), "{label}: {out}");
        if label == "nobody" {
            assert!(out.contains("CapPrm:\t0000000000000000"), "{label}: {out}");
            assert!(out.contains("CapEff:\t0000000000000000"), "{label}: {out}");
        }
        if label == "nobody with ambient" {
            // CAP_NET_BIND_SERVICE is bit 10, and nothing else.
            assert!(out.contains("CapPrm:\t0000000000000400"), "{label}: {out}");
            assert!(out.contains("CapAmb:\t0000000000000400"), "{label}: {out}");
        }
    }
}

/// Bind the host's /usr (python3 and its libraries) into the rootfs,
/// read-only, with the merged-/usr links.
fn with_host_python(b: &mut Bundle) {
    let rootfs = b.rootfs();
    for l in ["lib", "lib64"] {
        if Path::new("/").join(l).is_symlink() && !rootfs.join(l).exists() {
            std::os::unix::fs::symlink(format!("usr/{l}"), rootfs.join(l)).expect("lib link");
        }
    }
    b.config["mounts"]
        .as_array_mut()
        .expect("mounts")
        .push(json!({
            "destination": "/usr",
            "type": "bind",
            "source": "/usr",
            "options": ["rbind", "ro", "nosuid"]
        }));
}

#[test]
fn syscalls_newer_than_the_profile_get_enosys_inside_the_container() {
    require_root!();
    if !Path::new("/usr/bin/python3").exists() || !Path::new("/lib").is_symlink() {
        eprintln!("SKIP: needs python3 on a merged-/usr host");
        return;
    }
    let env = Env::new();
    // 1000: newer than any profile; acct: known to Docker's profile and
    // not allowed (the default errno, EPERM).
    let script = "import ctypes\n\
                  l = ctypes.CDLL(None, use_errno=True)\n\
                  for name, nr in (('new', 1000), ('acct', 163)):\n\
                  \x20   r = l.syscall(nr, 0)\n\
                  \x20   print('%s=%d/%d' % (name, r, ctypes.get_errno()))\n";
    for nnp in [true, false] {
        let label = format!("docker 20.10, noNewPrivileges {nnp}");
        let edit = |b: &mut Bundle| {
            with_host_python(b);
            b.config["linux"]["seccomp"] = profile(DOCKER);
            b.config["process"]["noNewPrivileges"] = json!(nnp);
        };
        let out = differential(&label, &env, &["/usr/bin/python3", "-c", script], &edit);
        assert!(
            out.contains(&format!("new=-1/{}", libc::ENOSYS)),
            "{label}: {out}"
        );
        assert!(
            out.contains(&format!("acct=-1/{}", libc::EPERM)),
            "{label}: {out}"
        );
    }
}
