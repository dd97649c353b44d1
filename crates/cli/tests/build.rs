//! `berth build`: each instruction checked on the resulting image from
//! outside (`image inspect`, files through `image mount`, `run`), the
//! instruction cache across builds (which steps ran), and bad inputs that
//! must fail naming the line and leave no image, mount, container or
//! cgroup behind.

mod common;
use common::*;
mod build_support;
use build_support::*;

use std::os::unix::fs::MetadataExt;
use std::path::Path;

#[test]
fn instructions_shape_the_config_and_the_files() {
    require_root!();
    let env = EngineEnv::new();
    let bb = env.busybox_image();
    let ctx = context(
        &env,
        "ctx",
        &[
            ("a.txt", "hello\n"),
            ("b.txt", "b\n"),
            ("skip.md", "no\n"),
            ("dir/sub/f", "deep\n"),
            (
                "Containerfile",
                "# escape=`\n\
                 ARG BASE=localhost/bb:1\n\
                 FROM $BASE AS first\n\
                 ARG GREET=hi\n\
                 ENV A=1 B=\"two words\"\n\
                 # a comment\n\
                 RUN echo \"$GREET $A ${B}\" > /greet && `\n\
                 \x20   rm /bin/touch\n\
                 WORKDIR /app\n\
                 COPY *.txt ./\n\
                 COPY --chown=nobody:nobody --chmod=640 dir /data/\n\
                 COPY dir /data2\n\
                 ADD b.txt /added\n\
                 RUN [\"/bin/sh\", \"-c\", \"id -u > /uid; cat /data/sub/f > /seen; echo $HOME > /home\"]\n\
                 USER nobody\n\
                 EXPOSE 80 53/udp\n\
                 LABEL x=${A:-none} y=${NOPE:+alt} z=${NOPE:-dflt}\n\
                 VOLUME /vol\n\
                 STOPSIGNAL SIGINT\n\
                 CMD [\"serve\"]\n\
                 ENTRYPOINT [\"/bin/echo\", \"ep\"]\n\
                 SHELL [\"/bin/sh\", \"-ec\"]\n\
                 FROM first\n\
                 USER root\n\
                 RUN echo $GREET > /greet2\n\
                 FROM scratch\n\
                 COPY --from=first /greet /copied\n",
            ),
        ],
    );
    assert_eq!(bb, "localhost/bb:1");
    let o = build(
        &env,
        &[
            "-t",
            "localhost/built:1",
            "--build-arg",
            "GREET=hey",
            "--label",
            "extra=1",
        ],
        &ctx,
    );
    let out = ok(&o);
    assert!(
        out.contains("[1/3] STEP 1/18: FROM $BASE AS first"),
        "{out}"
    );
    // The middle stage is not needed by the last one: not built.
    assert!(!out.contains("/greet2"), "{out}");
    let id = out.lines().last().expect("id").to_string();
    assert_eq!(id.len(), 64, "the image ID is printed last: {out}");
    // The last stage: only what COPY --from took.
    let cfg = config(&env, "localhost/built:1");
    assert_eq!(cfg["Labels"]["extra"], "1");
    with_rootfs(&env, "localhost/built:1", |r| {
        let names: Vec<String> = std::fs::read_dir(r)
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into())
            .collect();
        assert_eq!(names, vec!["copied"]);
        assert_eq!(
            std::fs::read_to_string(r.join("copied")).unwrap(),
            "hey 1 two words\n"
        );
    });
    // The first stage (--target), rebuilt from the cache under a name of
    // its own; the later stages are not built.
    let o = build(
        &env,
        &[
            "--target",
            "first",
            "-t",
            "localhost/first:1",
            "--build-arg",
            "GREET=hey",
        ],
        &ctx,
    );
    let out = ok(&o);
    assert!(
        !out.lines()
            .any(|l| l.starts_with("--> ") && !l.starts_with("--> Using cache")),
        "every step of the first stage comes from the cache: {out}"
    );
    assert!(out.contains("[1/3] STEP 18/18: SHELL"), "{out}");
    assert!(!out.contains("/greet2"), "{out}");
    let o = build(&env, &["--target", "nope"], &ctx);
    assert!(stderr(&o).contains("--target nope: no stage has that name"));
    let cfg = config(&env, "localhost/first:1");
    assert!(cfg["Env"]
        .as_array()
        .unwrap()
        .iter()
        .any(|e| e == "B=two words"));
    assert_eq!(cfg["WorkingDir"], "/app");
    assert_eq!(cfg["User"], "nobody");
    assert!(cfg["ExposedPorts"]["80/tcp"].is_object());
    assert!(cfg["ExposedPorts"]["53/udp"].is_object());
    assert_eq!(cfg["Labels"]["x"], "1");
    assert_eq!(cfg["Labels"]["y"], "");
    assert_eq!(cfg["Labels"]["z"], "dflt");
    assert!(cfg["Volumes"]["/vol"].is_object());
    assert_eq!(cfg["StopSignal"], "SIGINT");
    // CMD set in this stage survives the later ENTRYPOINT (Docker).
    assert_eq!(cfg["Cmd"], serde_json::json!(["serve"]));
    assert_eq!(cfg["Entrypoint"], serde_json::json!(["/bin/echo", "ep"]));
    with_rootfs(&env, "localhost/first:1", |r| {
        assert!(
            !r.join("bin/touch").exists(),
            "RUN's deletion is a whiteout"
        );
        assert!(r.join("bin/sh").exists());
        assert_eq!(
            std::fs::read_to_string(r.join("app/a.txt")).unwrap(),
            "hello\n"
        );
        assert!(r.join("app/b.txt").exists());
        assert!(!r.join("app/skip.md").exists());
        let m = std::fs::metadata(r.join("data/sub/f")).unwrap();
        assert_eq!((m.uid(), m.gid(), m.mode() & 0o777), (65534, 65534, 0o640));
        let m = std::fs::metadata(r.join("app/a.txt")).unwrap();
        assert_eq!((m.uid(), m.gid()), (0, 0));
        assert_eq!(std::fs::read_to_string(r.join("uid")).unwrap(), "0\n");
        assert_eq!(std::fs::read_to_string(r.join("seen")).unwrap(), "deep\n");
        assert_eq!(std::fs::read_to_string(r.join("home")).unwrap(), "/root\n");
        assert_eq!(
            std::fs::read_to_string(r.join("data2/sub/f")).unwrap(),
            "deep\n"
        );
        assert_eq!(std::fs::read_to_string(r.join("added")).unwrap(), "b\n");
        // /tmp keeps its mode under the layers COPY wrote.
    });
    // ENTRYPOINT and CMD as `run` uses them.
    let o = env.berth(&["run", "--rm", "localhost/first:1"]);
    assert_eq!(ok(&o).trim(), "ep serve");
}

#[test]
fn entrypoint_resets_the_base_cmd_and_shell_forms_use_shell() {
    require_root!();
    let env = busybox_env();
    let ctx = context(
        &env,
        "ctx",
        &[(
            "Dockerfile",
            "FROM localhost/bb:1\n\
             SHELL [\"/bin/sh\", \"-xc\"]\n\
             RUN echo shell-form > /f\n\
             ENTRYPOINT echo from-entrypoint\n\
             RUN <<EOF\n\
             echo from-heredoc > /h1\n\
             echo \"$HOME\" >> /h1\n\
             EOF\n\
             RUN cat <<-'A' > /h2 && cat <<B >> /h2\n\
             \t$literal\n\
             \tA\n\
             expanded $HOME\n\
             B\n\
             HEALTHCHECK --interval=30s --timeout=1m30s --retries=2 CMD [\"true\"]\n",
        )],
    );
    let out = ok(&build(&env, &["-t", "localhost/e:1"], &ctx));
    assert!(out.contains("STEP 3/7: RUN echo shell-form"), "{out}");
    with_rootfs(&env, "localhost/e:1", |r| {
        assert_eq!(
            std::fs::read_to_string(r.join("h1")).unwrap(),
            "from-heredoc\n/root\n"
        );
        assert_eq!(
            std::fs::read_to_string(r.join("h2")).unwrap(),
            "$literal\nexpanded /root\n"
        );
    });
    let cfg = config(&env, "localhost/e:1");
    // The base image's Cmd ["/bin/sh"] is gone.
    assert!(cfg["Cmd"].is_null(), "{cfg}");
    assert_eq!(
        cfg["Entrypoint"],
        serde_json::json!(["/bin/sh", "-xc", "echo from-entrypoint"])
    );
    assert_eq!(
        cfg["Healthcheck"],
        serde_json::json!({"Test": ["CMD", "true"], "Interval": 30_000_000_000u64,
            "Timeout": 90_000_000_000u64, "Retries": 2})
    );
    let hist = env.ok(&["history", "--no-trunc", "localhost/e:1"]);
    assert!(hist.contains("/bin/sh -xc echo shell-form"), "{hist}");
    let o = env.berth(&["run", "--rm", "localhost/e:1"]);
    assert!(ok(&o).contains("from-entrypoint"));
}

#[test]
fn bad_inputs_fail_naming_the_line_and_leave_nothing_behind() {
    require_root!();
    let env = busybox_env();
    let images = image_count(&env);
    let cases: &[(&str, &str)] = &[
        (
            "FROM localhost/bb:1\nRUN true\nFROB x\n",
            "line 3: unknown instruction \"FROB\"",
        ),
        (
            "FROM localhost/bb:1\nCOPY ../outside /\n",
            "line 2: COPY: COPY source \"../outside\" is outside the build context",
        ),
        (
            "FROM localhost/bb:1\nCOPY link/passwd /\n",
            "is outside the build context",
        ),
        (
            "FROM localhost/missing:1\nRUN true\n",
            "line 1: FROM: base image localhost/missing:1 is not in the store",
        ),
        (
            "FROM localhost/bb:1\nRUN touch /x && exit 3\n",
            "line 2: RUN: the command returned a non-zero code: 3",
        ),
        (
            "FROM localhost/bb:1\nONBUILD FROM x\n",
            "line 2: ONBUILD \"FROM\": the trigger must be",
        ),
        (
            "FROM localhost/bb:1\nRUN --mount=type=cache,tgt=/c true\n",
            "line 2: RUN: --mount=type=cache,tgt=/c: option tgt is not supported for type=cache",
        ),
        (
            "FROM localhost/bb:1\nCOPY --from=nostage /a /\n",
            "--from=nostage: no earlier stage",
        ),
    ];
    for (i, (file, want)) in cases.iter().enumerate() {
        let ctx = context(&env, &format!("bad{i}"), &[("Containerfile", file)]);
        std::os::unix::fs::symlink("/etc", ctx.join("link")).unwrap();
        let o = build(&env, &["-t", "localhost/bad:1"], &ctx);
        assert!(!o.status.success(), "{file} built");
        let e = stderr(&o);
        assert!(e.contains(want), "{file}: stderr lacks {want:?}: {e}");
        assert_eq!(image_count(&env), images, "{file} left an image");
        assert!(
            env.mounts().is_empty(),
            "{file} left mounts: {:?}",
            env.mounts()
        );
        assert_eq!(env.ok(&["ps", "-aq"]).trim(), "", "{file} left a container");
        let tmp = env.root().join("images/tmp");
        let left: Vec<_> = std::fs::read_dir(&tmp)
            .map(|r| r.flatten().map(|e| e.file_name()).collect())
            .unwrap_or_default();
        assert!(left.is_empty(), "{file} left temp files: {left:?}");
        for cg in env.cgroup_dirs() {
            let kids: Vec<_> = std::fs::read_dir(&cg)
                .unwrap()
                .flatten()
                .filter(|e| e.path().is_dir())
                .map(|e| e.file_name())
                .collect();
            assert!(
                kids.is_empty(),
                "{file} left cgroups {kids:?} in {}",
                cg.display()
            );
        }
    }
    let missing = env.berth(&["build", env.dir.path().join("nope").to_str().unwrap()]);
    assert!(stderr(&missing).contains("is not a directory"));
}

/// The same Containerfile through `buildah bud` (Debian's buildah, its
/// own storage in a temp dir) and `berth build`: same rootfs, same config.
/// buildah leaves the mountpoints and empty files its RUN containers
/// needed (/dev, /proc, /sys, /run, /etc/hosts, /etc/hostname,
/// /etc/resolv.conf) in the image; berth, like BuildKit, does not
/// (docs/cli.md), so those are left out of buildah's side.
#[test]
fn same_rootfs_and_config_as_buildah() {
    require_root!();
    if std::process::Command::new("buildah")
        .arg("--version")
        .output()
        .is_err()
    {
        eprintln!("SKIP: buildah is not installed (.ci/install.d/build.sh)");
        return;
    }
    let env = EngineEnv::new();
    let ctx = env.dir.path().join("ctx");
    let rootfs = ctx.join("rootfs");
    for d in ["bin", "etc", "tmp"] {
        std::fs::create_dir_all(rootfs.join(d)).unwrap();
    }
    std::fs::copy("/bin/busybox", rootfs.join("bin/busybox")).unwrap();
    for app in ["sh", "mkdir", "echo", "ln", "chmod", "rm", "touch"] {
        std::os::unix::fs::symlink("busybox", rootfs.join("bin").join(app)).unwrap();
    }
    std::fs::write(rootfs.join("etc/passwd"), "root:x:0:0:root:/root:/bin/sh\n").unwrap();
    let mut perm = std::fs::metadata(rootfs.join("tmp")).unwrap().permissions();
    std::os::unix::fs::PermissionsExt::set_mode(&mut perm, 0o1777);
    std::fs::set_permissions(rootfs.join("tmp"), perm).unwrap();
    std::fs::write(ctx.join("a.txt"), "a\n").unwrap();
    std::fs::write(ctx.join("b.txt"), "bb\n").unwrap();
    std::fs::write(
        ctx.join("Containerfile"),
        "FROM scratch\n\
         COPY rootfs/ /\n\
         ENV A=1 B=\"x y\"\n\
         RUN mkdir -p /out/d && echo hi > /out/f && ln -s f /out/l && chmod 700 /out && rm /bin/touch\n\
         COPY --chown=1:2 a.txt /out/\n\
         COPY --chmod=600 b.txt /out/b\n\
         USER 1\n\
         EXPOSE 80 53/udp\n\
         LABEL k=v\n\
         ENTRYPOINT [\"/bin/sh\", \"-c\"]\n\
         CMD [\"echo hi\"]\n",
    )
    .unwrap();
    let Some(insp) = buildah_bud_inspect(&env, &[], "localhost/d:1", &ctx) else {
        return;
    };
    let buildah = |args: &[&str]| ok(&buildah(&env, args).expect("buildah"));
    let mut theirs_cfg = insp["OCIv1"]["config"].clone();
    theirs_cfg["Labels"]
        .as_object_mut()
        .unwrap()
        .remove("io.buildah.version");
    let ctr = buildah(&["from", "localhost/d:1"]).trim().to_string();
    let mnt = buildah(&["mount", &ctr]).trim().to_string();
    let artifacts = [
        "dev",
        "proc",
        "sys",
        "run",
        "etc/hosts",
        "etc/hostname",
        "etc/resolv.conf",
    ];
    let theirs: Vec<String> = listing(Path::new(&mnt))
        .into_iter()
        .filter(|l| !artifacts.contains(&l.split(' ').next().unwrap()))
        .collect();
    buildah(&["umount", &ctr]);
    buildah(&["rm", &ctr]);
    buildah(&["rmi", "-a", "-f"]);
    ok(&build(&env, &["-t", "localhost/d:1"], &ctx));
    let ours_cfg = config(&env, "localhost/d:1");
    let ours = with_rootfs(&env, "localhost/d:1", listing);
    assert_eq!(ours, theirs, "rootfs differs from buildah's");
    for k in [
        "Env",
        "User",
        "ExposedPorts",
        "Labels",
        "Entrypoint",
        "Cmd",
        "WorkingDir",
    ] {
        assert_eq!(
            ours_cfg[k], theirs_cfg[k],
            "config {k} differs from buildah's"
        );
    }
}

#[test]
fn copy_from_an_image_and_the_platform_args() {
    require_root!();
    let env = busybox_env();
    let ctx = context(
        &env,
        "ctx",
        &[(
            "Containerfile",
            "FROM scratch\n\
             ARG TARGETARCH\n\
             COPY --from=localhost/bb:1 /etc/passwd /passwd-$TARGETARCH\n",
        )],
    );
    ok(&build(
        &env,
        &["-t", "localhost/p:1", "--iidfile", "/dev/null"],
        &ctx,
    ));
    let arch = match std::env::consts::ARCH {
        "x86_64" => "amd64",
        "aarch64" => "arm64",
        other => other,
    };
    with_rootfs(&env, "localhost/p:1", |r| {
        let p = std::fs::read_to_string(r.join(format!("passwd-{arch}"))).unwrap();
        assert!(p.starts_with("root:x:0:0:"), "{p}");
    });
    let iid = env.dir.path().join("iid");
    let out = ok(&build(
        &env,
        &["-q", "--iidfile", iid.to_str().unwrap()],
        &ctx,
    ));
    assert_eq!(
        std::fs::read_to_string(&iid).unwrap(),
        format!("sha256:{}", out.trim())
    );
}

#[test]
fn an_interrupted_build_stops_between_steps_and_cleans_up() {
    require_root!();
    let env = busybox_env();
    let images = image_count(&env);
    let ctx = context(
        &env,
        "ctx",
        &[(
            "Containerfile",
            "FROM localhost/bb:1\nRUN sleep 2\nRUN X=NOT; echo $X-REACHED\n",
        )],
    );
    // nsenter joins only a network namespace, so it execs berth itself:
    // the child's pid is berth's.
    let child = env
        .cmd()
        .args(["build", "-t", "localhost/i:1", ctx.to_str().unwrap()])
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("spawn berth build");
    std::thread::sleep(std::time::Duration::from_millis(1000));
    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(child.id() as i32),
        nix::sys::signal::Signal::SIGINT,
    )
    .expect("SIGINT berth");
    let o = child.wait_with_output().expect("wait");
    assert!(!o.status.success());
    assert!(
        stderr(&o).contains("interrupted before step 3/3 (line 3)"),
        "{}",
        stderr(&o)
    );
    assert!(!stdout(&o).contains("NOT-REACHED"));
    assert_eq!(image_count(&env), images);
    assert!(env.mounts().is_empty(), "mounts left: {:?}", env.mounts());
}

#[test]
fn a_context_or_a_containerfile_on_stdin() {
    require_root!();
    let env = busybox_env();
    let ctx = context(
        &env,
        "ctx",
        &[
            ("f.txt", "from-tar\n"),
            ("Containerfile", "FROM localhost/bb:1\nCOPY f.txt /\n"),
        ],
    );
    let tar = env.dir.path().join("ctx.tar");
    let st = std::process::Command::new("tar")
        .arg("-C")
        .arg(&ctx)
        .arg("-cf")
        .arg(&tar)
        .arg(".")
        .status()
        .unwrap();
    assert!(st.success());
    let o = env
        .cmd()
        .args(["build", "-t", "localhost/s:1", "-"])
        .stdin(std::fs::File::open(&tar).unwrap())
        .output()
        .unwrap();
    ok(&o);
    with_rootfs(&env, "localhost/s:1", |r| {
        assert_eq!(
            std::fs::read_to_string(r.join("f.txt")).unwrap(),
            "from-tar\n"
        );
    });
    let cf = env.dir.path().join("Only");
    std::fs::write(&cf, "FROM localhost/bb:1\nLABEL only=yes\n").unwrap();
    let o = env
        .cmd()
        .args(["build", "-t", "localhost/s:2", "-"])
        .stdin(std::fs::File::open(&cf).unwrap())
        .output()
        .unwrap();
    ok(&o);
    assert_eq!(config(&env, "localhost/s:2")["Labels"]["only"], "yes");
    let tmp = env.root().join("images/tmp");
    let left: Vec<_> = std::fs::read_dir(&tmp)
        .map(|r| r.flatten().map(|e| e.file_name()).collect())
        .unwrap_or_default();
    assert!(left.is_empty(), "temp context left: {left:?}");
}

#[test]
fn onbuild_triggers_run_in_the_child_build() {
    require_root!();
    let env = busybox_env();
    let base = context(
        &env,
        "base",
        &[(
            "Containerfile",
            "FROM localhost/bb:1\nONBUILD RUN echo trig > /trig\nONBUILD COPY f.txt /f\n",
        )],
    );
    ok(&build(&env, &["-t", "localhost/base:1"], &base));
    assert_eq!(
        raw_config(&env, "localhost/base:1")["config"]["OnBuild"],
        serde_json::json!(["RUN echo trig > /trig", "COPY f.txt /f"])
    );
    let child = context(
        &env,
        "child",
        &[
            ("f.txt", "child-file\n"),
            ("Containerfile", "FROM localhost/base:1\nLABEL c=1\n"),
        ],
    );
    let out = ok(&build(&env, &["-t", "localhost/child:1"], &child));
    assert!(out.contains("STEP 2/4: RUN echo trig > /trig"), "{out}");
    assert!(raw_config(&env, "localhost/child:1")["config"]["OnBuild"].is_null());
    with_rootfs(&env, "localhost/child:1", |r| {
        assert_eq!(std::fs::read_to_string(r.join("trig")).unwrap(), "trig\n");
        assert_eq!(
            std::fs::read_to_string(r.join("f")).unwrap(),
            "child-file\n"
        );
    });
}

#[test]
fn independent_stages_build_at_the_same_time_and_unused_ones_not_at_all() {
    require_root!();
    let env = busybox_env();
    let ctx = context(
        &env,
        "ctx",
        &[(
            "Containerfile",
            "FROM localhost/bb:1 AS a\n\
             RUN sleep 3 && echo a > /a\n\
             FROM localhost/bb:1 AS broken\n\
             RUN echo UNUSED-RAN; exit 1\n\
             FROM localhost/bb:1 AS b\n\
             RUN sleep 3 && echo b > /b\n\
             FROM scratch\n\
             COPY --from=a /a /a\n\
             COPY --from=b /b /b\n",
        )],
    );
    let t = std::time::Instant::now();
    let out = ok(&build(&env, &["-t", "localhost/par:1"], &ctx));
    let took = t.elapsed();
    // One after the other: 6 s of sleep alone.
    assert!(
        took < std::time::Duration::from_millis(5500),
        "two 3 s stages took {took:?}: {out}"
    );
    assert!(
        !out.contains("UNUSED-RAN") && !out.contains("[2/4]"),
        "{out}"
    );
    with_rootfs(&env, "localhost/par:1", |r| {
        assert_eq!(std::fs::read_to_string(r.join("a")).unwrap(), "a\n");
        assert_eq!(std::fs::read_to_string(r.join("b")).unwrap(), "b\n");
    });
    // --target names the broken stage: now it is built, and fails.
    let o = build(&env, &["--target", "broken"], &ctx);
    assert!(!o.status.success());
    assert!(stderr(&o).contains("line 4: RUN"), "{}", stderr(&o));
    // A failing stage stops the build even while another one runs.
    let ctx2 = context(
        &env,
        "ctx2",
        &[(
            "Containerfile",
            "FROM localhost/bb:1 AS slow\n\
             RUN sleep 4\n\
             RUN X=SLOW; echo $X-SECOND-STEP\n\
             FROM localhost/bb:1 AS bad\n\
             RUN exit 7\n\
             FROM scratch\n\
             COPY --from=slow /bin/sh /sh\n\
             COPY --from=bad /bin/sh /sh2\n",
        )],
    );
    let o = build(&env, &["-t", "localhost/par:2"], &ctx2);
    assert!(!o.status.success());
    let err = stderr(&o);
    assert!(err.contains("line 5: RUN") && err.contains("7"), "{err}");
    assert!(!stdout(&o).contains("SLOW-SECOND-STEP"), "{}", stdout(&o));
    assert!(!env
        .berth(&["image", "inspect", "localhost/par:2"])
        .status
        .success());
}
