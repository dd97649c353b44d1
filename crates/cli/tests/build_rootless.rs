//! `berth build` run by an unprivileged user (common::rootless, inside a
//! network namespace the test made): RUN, COPY and USER work in the
//! user's rootless store, and the files of the image have the owners the
//! Containerfile gave them as the container sees them.

mod common;
use common::rootless::RootlessUser;
use common::*;

use std::path::Path;
use std::process::Command;

/// Writes `files` under `dir` (made), all owned by the user.
fn user_files(u: &RootlessUser, dir: &Path, files: &[(&str, &str)]) {
    let own = |p: &Path| {
        nix::unistd::chown(
            p,
            Some(nix::unistd::Uid::from_raw(u.uid)),
            Some(nix::unistd::Gid::from_raw(u.gid)),
        )
        .unwrap()
    };
    std::fs::create_dir_all(dir).unwrap();
    own(dir);
    for (p, c) in files {
        std::fs::write(dir.join(p), c).unwrap();
        own(&dir.join(p));
    }
}

/// A busybox rootfs tarball readable by the user.
fn busybox_tar(base: &Path) -> std::path::PathBuf {
    let src = base.join("rootfs-src");
    for d in ["bin", "etc", "proc", "sys", "dev", "tmp", "root"] {
        std::fs::create_dir_all(src.join(d)).unwrap();
    }
    std::fs::copy("/bin/busybox", src.join("bin/busybox")).unwrap();
    let list = Command::new("/bin/busybox").arg("--list").output().unwrap();
    for app in String::from_utf8_lossy(&list.stdout).lines() {
        let link = src.join("bin").join(app);
        if !link.exists() {
            std::os::unix::fs::symlink("busybox", link).unwrap();
        }
    }
    std::fs::write(
        src.join("etc/passwd"),
        "root:x:0:0:root:/root:/bin/sh\nnobody:x:65534:65534:nobody:/tmp:/bin/sh\n",
    )
    .unwrap();
    std::fs::write(src.join("etc/group"), "root:x:0:\nnobody:x:65534:\n").unwrap();
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(src.join("tmp"), std::fs::Permissions::from_mode(0o1777)).unwrap();
    let tar = base.join("rootfs.tar");
    let st = Command::new("tar")
        .arg("-C")
        .arg(&src)
        .args(["--numeric-owner", "-cf"])
        .arg(&tar)
        .arg(".")
        .status()
        .unwrap();
    assert!(st.success());
    tar
}

#[test]
fn rootless_build_runs_copies_and_keeps_container_owners() {
    require_root!();
    let Some(u) = RootlessUser::create(true) else {
        return;
    };
    // Only for its network namespace.
    let env = EngineEnv::new();
    let berth = |args: &[&str]| {
        let o = u
            .cmd_in_netns(&env.netns, berth_bin())
            .args(args)
            .output()
            .expect("berth as the user");
        eprintln!(
            "berth (rootless) {args:?} -> {}\nstdout: {}\nstderr: {}",
            o.status,
            String::from_utf8_lossy(&o.stdout),
            String::from_utf8_lossy(&o.stderr)
        );
        o
    };
    let tar = busybox_tar(&u.base);
    ok(&berth(&[
        "import",
        tar.to_str().unwrap(),
        "localhost/bb:1",
        "--cmd",
        r#"["/bin/sh"]"#,
    ]));
    let ctx = u.home.join("ctx");
    user_files(
        &u,
        &ctx,
        &[
            ("a.txt", "a\n"),
            ("b.txt", "b\n"),
            (
                "Containerfile",
                "FROM localhost/bb:1\n\
                 RUN echo hi > /f && mkdir /owned && chown 1000:1000 /owned && id -u > /uid\n\
                 COPY --chown=2000:3000 a.txt /a.txt\n\
                 COPY b.txt /b.txt\n\
                 USER nobody\n\
                 RUN id -u > /tmp/nobody-uid && touch /tmp/by-nobody\n\
                 USER root\n",
            ),
        ],
    );
    let out = ok(&berth(&[
        "build",
        "-t",
        "localhost/rb:1",
        ctx.to_str().unwrap(),
    ]));
    assert!(out.contains("STEP 7/7"), "{out}");
    let o = berth(&[
        "run",
        "--rm",
        "localhost/rb:1",
        "sh",
        "-c",
        "stat -c %u:%g /owned /a.txt /b.txt /f /tmp/by-nobody; cat /uid /tmp/nobody-uid",
    ]);
    assert_eq!(
        stdout(&o),
        "1000:1000\n2000:3000\n0:0\n0:0\n65534:65534\n0\n65534\n",
        "{}",
        stderr(&o)
    );
    // The store is the user's: nothing of it in root's default store.
    let again = ok(&berth(&[
        "build",
        "-t",
        "localhost/rb:1",
        ctx.to_str().unwrap(),
    ]));
    assert_eq!(again.matches("--> Using cache").count(), 6, "{again}");
}
