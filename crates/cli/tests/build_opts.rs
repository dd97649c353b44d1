//! `berth build` options that shape the result: `--timestamp` and
//! SOURCE_DATE_EPOCH (reproducible images), `--pull`, `--squash`,
//! `--layers=false`, `--format`; each checked on the image from outside
//! and, where buildah 1.28 has the same option, against `buildah bud`.

mod common;
use common::*;
mod build_support;
use build_support::*;
mod flags_support;

use std::os::unix::fs::MetadataExt;
use std::path::Path;

use serde_json::Value;

const T: i64 = 1_000_000_000;
const T_RFC3339: &str = "2001-09-09T01:46:40Z";

fn reproducible_context(env: &EngineEnv) -> std::path::PathBuf {
    scratch_context(
        env,
        "ctx",
        &[
            ("a.txt", "a\n"),
            (
                "Containerfile",
                "FROM scratch\n\
                 COPY rootfs/ /\n\
                 RUN echo hi > /f && mkdir -p /d && touch /d/x\n\
                 COPY a.txt /a.txt\n\
                 ENV A=1\n\
                 CMD [\"/bin/sh\"]\n",
            ),
        ],
    )
}

/// mtimes of the paths the build wrote.
fn mtimes(root: &Path) -> Vec<(String, i64)> {
    ["f", "d", "d/x", "a.txt", "bin/busybox", "etc/passwd"]
        .iter()
        .map(|p| {
            let m = std::fs::symlink_metadata(root.join(p)).expect(p);
            (p.to_string(), m.mtime())
        })
        .collect()
}

#[test]
fn timestamp_gives_the_same_image_in_fresh_stores_and_matches_buildah() {
    require_root!();
    let env = EngineEnv::new();
    let ctx = reproducible_context(&env);
    let ts = T.to_string();
    let first = build(&env, &["-t", "localhost/r:1", "--timestamp", &ts], &ctx);
    let id = built_id(&first);
    let layers = inspect(&env, "localhost/r:1")["RootFS"].clone();
    let cfg = raw_config(&env, "localhost/r:1");
    assert_eq!(cfg["created"], T_RFC3339, "{cfg}");
    for h in cfg["history"].as_array().unwrap() {
        assert_eq!(h["created"], T_RFC3339, "{cfg}");
    }
    let ours = with_rootfs(&env, "localhost/r:1", mtimes);
    for (p, t) in &ours {
        assert_eq!(*t, T, "mtime of {p}");
    }
    // Two fresh stores: SOURCE_DATE_EPOCH as a build arg and in the
    // environment give the same image.
    let b = OtherStore::new(&env, "second");
    let o = b.build(
        &[
            "-t",
            "localhost/r:1",
            "--build-arg",
            &format!("SOURCE_DATE_EPOCH={T}"),
        ],
        &ctx,
    );
    assert_eq!(built_id(&o), id);
    let c = OtherStore::new(&env, "third");
    let o = c
        .cmd()
        .env("SOURCE_DATE_EPOCH", &ts)
        .args(["build", "-t", "localhost/r:1", ctx.to_str().unwrap()])
        .output()
        .unwrap();
    assert_eq!(built_id(&o), id, "{}", stderr(&o));
    let v: Value = serde_json::from_str(&c.ok(&["image", "inspect", "localhost/r:1"])).unwrap();
    assert_eq!(v[0]["RootFS"], layers);
    // Without it, the files keep their times (the context's, the RUN's).
    let d = OtherStore::new(&env, "fourth");
    let o = d.build(&["-t", "localhost/r:1"], &ctx);
    assert_ne!(built_id(&o), id);
    let o = env.berth(&["build", "--timestamp", "x", ctx.to_str().unwrap()]);
    assert!(!o.status.success());

    // buildah bud --timestamp: the same created times and file mtimes.
    let Some(insp) = buildah_bud_inspect(&env, &["--timestamp", &ts], "localhost/r:1", &ctx) else {
        return;
    };
    let theirs_cfg = &insp["OCIv1"];
    assert_eq!(theirs_cfg["created"], cfg["created"], "{theirs_cfg}");
    let created = |c: &Value| -> Vec<Value> {
        c["history"]
            .as_array()
            .unwrap()
            .iter()
            .map(|h| h["created"].clone())
            .collect()
    };
    assert_eq!(created(theirs_cfg), created(&cfg));
    let ctr = ok(&buildah(&env, &["from", "localhost/r:1"]).unwrap())
        .trim()
        .to_string();
    let mnt = ok(&buildah(&env, &["mount", &ctr]).unwrap())
        .trim()
        .to_string();
    let theirs = mtimes(Path::new(&mnt));
    buildah(&env, &["umount", &ctr]);
    buildah(&env, &["rm", &ctr]);
    buildah(&env, &["rmi", "-a", "-f"]);
    assert_eq!(ours, theirs, "file mtimes differ from buildah's");
}

fn read(env: &EngineEnv, image: &str, path: &str) -> String {
    with_rootfs(env, image, |r| {
        std::fs::read_to_string(r.join(path)).unwrap_or_else(|e| format!("<{e}>"))
    })
}

#[test]
fn pull_policies_fetch_the_base_as_asked() {
    require_root!();
    let env = busybox_env();
    let Some(reg) = registry(&env, "pull_policies_fetch_the_base_as_asked") else {
        return;
    };
    let remote = push_busybox(&env, &reg, "berth/base:1");
    let ctx = context(
        &env,
        "ctx",
        &[(
            "Containerfile",
            &format!("FROM {remote}\nRUN cat /v > /seen 2>/dev/null || echo none > /seen\n"),
        )],
    );
    let before = image_count(&env);
    let o = build(&env, &["--pull=never", "-t", "localhost/p:0"], &ctx);
    assert!(!o.status.success());
    assert!(
        stderr(&o).contains(&format!(
            "line 1: FROM: base image {remote} is not in the store"
        )),
        "{}",
        stderr(&o)
    );
    assert!(stderr(&o).contains("--pull=never"), "{}", stderr(&o));
    assert_eq!(image_count(&env), before, "nothing left behind");
    // The default (missing) pulls it.
    ok(&build(&env, &["-t", "localhost/p:1"], &ctx));
    assert_eq!(read(&env, "localhost/p:1", "seen"), "none\n");
    // A new image under the same name in the registry.
    let v2 = context(
        &env,
        "v2",
        &[("Containerfile", "FROM localhost/bb:1\nRUN echo v2 > /v\n")],
    );
    ok(&build(&env, &["-t", "localhost/v2:1"], &v2));
    env.ok(&["push", "-q", "localhost/v2:1", &remote]);
    // missing: the stored one; never: the stored one too.
    ok(&build(
        &env,
        &["--pull=missing", "-t", "localhost/p:2"],
        &ctx,
    ));
    assert_eq!(read(&env, "localhost/p:2", "seen"), "none\n");
    ok(&build(&env, &["--pull=never", "-t", "localhost/p:3"], &ctx));
    assert_eq!(read(&env, "localhost/p:3", "seen"), "none\n");
    // Bare --pull (always): the registry's.
    ok(&build(&env, &["--pull", "-t", "localhost/p:4"], &ctx));
    assert_eq!(read(&env, "localhost/p:4", "seen"), "v2\n");
    let o = build(&env, &["--pull=sometimes"], &ctx);
    assert!(stderr(&o).contains("--pull=sometimes: use always, missing or never"));
}

/// `--pull` applies to the images `COPY --from` and `RUN --mount=from=`
/// name as to FROM's (podman's policies); buildah 1.28 pulls a
/// `COPY --from` image the same way.
#[test]
fn pull_policies_apply_to_copy_from_and_mount_from_images() {
    require_root!();
    let env = busybox_env();
    // FROM names a registry's image too (--pull=always pulls it).
    let Some((reg, base)) = registry_with_busybox(
        &env,
        "pull_policies_apply_to_copy_from_and_mount_from_images",
    ) else {
        return;
    };
    // The image the steps read: /v is "v1" in the registry.
    let remote = format!("127.0.0.1:{}/berth/src:1", reg.port);
    let push_v = |v: &str| {
        let c = context(
            &env,
            &format!("src-{v}"),
            &[(
                "Containerfile",
                &format!("FROM localhost/bb:1\nRUN echo {v} > /v\n"),
            )],
        );
        ok(&build(&env, &["-t", &format!("localhost/src-{v}:1")], &c));
        env.ok(&["push", "-q", &format!("localhost/src-{v}:1"), &remote]);
    };
    push_v("v1");
    let ctx = context(
        &env,
        "ctx",
        &[(
            "Containerfile",
            &format!(
                "FROM {base}\n\
                 COPY --from={remote} /v /copied\n\
                 RUN --mount=type=bind,from={remote},source=/v,target=/m cat /m > /mounted\n"
            ),
        )],
    );
    let before = image_count(&env);
    let o = build(&env, &["--pull=never", "-t", "localhost/p:0"], &ctx);
    assert!(!o.status.success());
    let e = stderr(&o);
    assert!(
        e.contains(&format!(
            "line 2: COPY: --from={remote}: no earlier stage has that name or index, and image {remote} is not in the store"
        )) && e.contains("--pull=never"),
        "{e}"
    );
    assert_eq!(image_count(&env), before, "nothing left behind");
    assert_no_mounts(&env);
    // RUN --mount=from= alone: the same.
    let mctx = context(
        &env,
        "mctx",
        &[(
            "Containerfile",
            &format!(
                "FROM {base}\n\
                 RUN --mount=type=bind,from={remote},source=/v,target=/m cat /m > /mounted\n"
            ),
        )],
    );
    let o = build(&env, &["--pull=never"], &mctx);
    assert!(!o.status.success());
    let e = stderr(&o);
    assert!(
        e.contains(&format!(
            "line 2: RUN: from={remote}: no earlier stage has that name, and image {remote} is not in the store"
        )) && e.contains("--pull=never"),
        "{e}"
    );
    // The default (missing) pulls it, once for both lines.
    let o = build(&env, &["-t", "localhost/p:1"], &ctx);
    ok(&o);
    assert_eq!(
        stderr(&o).matches("Trying to pull").count(),
        1,
        "{}",
        stderr(&o)
    );
    assert_eq!(read(&env, "localhost/p:1", "copied"), "v1\n");
    assert_eq!(read(&env, "localhost/p:1", "mounted"), "v1\n");
    // v2 in the registry: missing and never keep the stored v1.
    push_v("v2");
    for p in ["--pull=missing", "--pull=never"] {
        ok(&build(&env, &[p, "-t", "localhost/p:2"], &ctx));
        assert_eq!(read(&env, "localhost/p:2", "copied"), "v1\n", "{p}");
        assert_eq!(read(&env, "localhost/p:2", "mounted"), "v1\n", "{p}");
    }
    // always: the registry's, for both.
    ok(&build(
        &env,
        &["--pull=always", "-t", "localhost/p:3"],
        &ctx,
    ));
    assert_eq!(read(&env, "localhost/p:3", "copied"), "v2\n");
    assert_eq!(read(&env, "localhost/p:3", "mounted"), "v2\n");

    // buildah bud: COPY --from of that image, never then always after
    // the registry changed.
    let cctx = context(
        &env,
        "cctx",
        &[(
            "Containerfile",
            &format!("FROM {base}\nCOPY --from={remote} /v /copied\n"),
        )],
    );
    let Some(o) = buildah(&env, &["--version"]) else {
        eprintln!("SKIP: buildah is not installed: no comparison");
        return;
    };
    ok(&o);
    let c = cctx.to_str().unwrap();
    let bud = |pull: &str, tag: &str| {
        buildah(
            &env,
            &[
                "bud",
                "--isolation",
                "chroot",
                "--tls-verify=false",
                pull,
                "-t",
                tag,
                c,
            ],
        )
        .unwrap()
    };
    // Their store has the base, not the source image.
    ok(&buildah(&env, &["pull", "--tls-verify=false", &base]).unwrap());
    let theirs_never = bud("--pull=never", "localhost/t:0");
    assert!(
        !theirs_never.status.success(),
        "buildah --pull=never pulled"
    );
    // Theirs gets the old v1, then always gives v2.
    let old = format!("127.0.0.1:{}/berth/old:1", reg.port);
    env.ok(&["push", "-q", "localhost/src-v1:1", &old]);
    ok(&buildah(&env, &["pull", "--tls-verify=false", &old]).unwrap());
    ok(&buildah(&env, &["tag", &old, &remote]).unwrap());
    ok(&bud("--pull=never", "localhost/t:1"));
    ok(&bud("--pull=always", "localhost/t:2"));
    let theirs = |tag: &str| {
        let ctr = ok(&buildah(&env, &["from", tag]).unwrap())
            .trim()
            .to_string();
        let mnt = ok(&buildah(&env, &["mount", &ctr]).unwrap())
            .trim()
            .to_string();
        let v = std::fs::read_to_string(Path::new(&mnt).join("copied")).unwrap();
        buildah(&env, &["umount", &ctr]);
        buildah(&env, &["rm", &ctr]);
        v
    };
    assert_eq!(theirs("localhost/t:1"), "v1\n", "buildah --pull=never");
    assert_eq!(theirs("localhost/t:2"), "v2\n", "buildah --pull=always");
    buildah(&env, &["rmi", "-a", "-f"]);
}

#[test]
fn layers_false_neither_uses_nor_fills_the_cache() {
    require_root!();
    let env = busybox_env();
    let ctx = context(
        &env,
        "ctx",
        &[(
            "Containerfile",
            "FROM localhost/bb:1\nRUN X=RAN; echo $X-L | tee /l\nENV A=1\n",
        )],
    );
    for _ in 0..2 {
        let out = ok(&build(&env, &["--layers=false"], &ctx));
        assert!(out.contains("RAN-L"), "{out}");
        assert!(!out.contains("Using cache"), "{out}");
    }
    // Nothing was stored: a cached build runs it once, then reuses it.
    let out = ok(&build(&env, &[], &ctx));
    assert!(out.contains("RAN-L"), "{out}");
    let out = ok(&build(&env, &["--layers"], &ctx));
    assert!(!out.contains("RAN-L"), "{out}");
    assert_eq!(out.matches("--> Using cache").count(), 2, "{out}");
    // And a cached step is not used by --layers=false.
    let out = ok(&build(
        &env,
        &["--layers=false", "-t", "localhost/l:1"],
        &ctx,
    ));
    assert!(out.contains("RAN-L"), "{out}");
    assert_eq!(read(&env, "localhost/l:1", "l"), "RAN-L\n");
}

fn manifest(env: &EngineEnv, image: &str) -> Value {
    let d = inspect(env, image)["Digest"].as_str().unwrap().to_string();
    blob_json(&env.root(), &d)
}

#[test]
fn format_docker_writes_docker_media_types_as_buildah() {
    require_root!();
    let env = EngineEnv::new();
    let ctx = reproducible_context(&env);
    ok(&build(
        &env,
        &["--format", "docker", "-t", "localhost/fd:1"],
        &ctx,
    ));
    let m = manifest(&env, "localhost/fd:1");
    let cfg = raw_config(&env, "localhost/fd:1");
    assert_eq!(cfg["container_config"], cfg["config"], "{cfg}");
    let o = env.berth(&["run", "--rm", "localhost/fd:1", "cat", "/f"]);
    assert_eq!(stdout(&o), "hi\n", "{}", stderr(&o));
    // The default stays OCI.
    ok(&build(&env, &["-t", "localhost/fo:1"], &ctx));
    let oci = manifest(&env, "localhost/fo:1");
    assert_eq!(
        oci["mediaType"],
        "application/vnd.oci.image.manifest.v1+json"
    );
    assert_eq!(
        oci["config"]["mediaType"],
        "application/vnd.oci.image.config.v1+json"
    );
    let o = build(&env, &["--format", "v1"], &ctx);
    assert!(stderr(&o).contains("--format v1: use oci or docker"));

    let types = |m: &Value| {
        (
            m["mediaType"].clone(),
            m["config"]["mediaType"].clone(),
            m["layers"]
                .as_array()
                .unwrap()
                .iter()
                .map(|l| l["mediaType"].clone())
                .collect::<Vec<_>>(),
        )
    };
    assert_eq!(
        types(&m).0,
        "application/vnd.docker.distribution.manifest.v2+json"
    );
    let Some(insp) = buildah_bud_inspect(&env, &["--format", "docker"], "localhost/fd:1", &ctx)
    else {
        return;
    };
    buildah(&env, &["rmi", "-a", "-f"]);
    let theirs: Value = serde_json::from_str(insp["Manifest"].as_str().unwrap()).unwrap();
    assert_eq!(
        types(&m),
        types(&theirs),
        "media types differ from buildah's"
    );
    let d = &insp["Docker"];
    assert_eq!(d["container_config"]["Env"], cfg["container_config"]["Env"]);
    assert_eq!(d["container_config"]["Cmd"], cfg["container_config"]["Cmd"]);
}

#[test]
fn squash_makes_one_layer_of_the_new_ones_and_squash_all_of_all() {
    require_root!();
    let env = busybox_env();
    let ctx = context(
        &env,
        "ctx",
        &[
            ("a.txt", "a\n"),
            (
                "Containerfile",
                "FROM localhost/bb:1\n\
                 RUN echo one > /one && rm /bin/touch\n\
                 RUN echo two > /two && rm /one\n\
                 COPY a.txt /a.txt\n\
                 RUN mkdir -p /d && echo x > /d/x\n\
                 RUN rm -rf /d && mkdir /d && echo y > /d/y\n\
                 CMD [\"/bin/sh\"]\n",
            ),
        ],
    );
    let layers = |image: &str| {
        inspect(&env, image)["RootFS"]["Layers"]
            .as_array()
            .unwrap()
            .len()
    };
    let base = layers("localhost/bb:1");
    ok(&build(&env, &["-t", "localhost/s:0"], &ctx));
    assert_eq!(layers("localhost/s:0"), base + 5);
    ok(&build(&env, &["--squash", "-t", "localhost/s:1"], &ctx));
    assert_eq!(layers("localhost/s:1"), base + 1);
    ok(&build(&env, &["--squash-all", "-t", "localhost/s:2"], &ctx));
    assert_eq!(layers("localhost/s:2"), 1);
    let present = |r: &Path| {
        ["one", "two", "a.txt", "d/x", "d/y", "bin/touch", "bin/sh"]
            .iter()
            .map(|p| (p.to_string(), std::fs::symlink_metadata(r.join(p)).is_ok()))
            .collect::<Vec<_>>()
    };
    let files = |image: &str| with_rootfs(&env, image, present);
    let want = files("localhost/s:0");
    assert_eq!(
        want,
        vec![
            ("one".to_string(), false),
            ("two".to_string(), true),
            ("a.txt".to_string(), true),
            ("d/x".to_string(), false),
            ("d/y".to_string(), true),
            ("bin/touch".to_string(), false),
            ("bin/sh".to_string(), true),
        ]
    );
    assert_eq!(files("localhost/s:1"), want);
    assert_eq!(files("localhost/s:2"), want);
    // History keeps its entries; four fewer of them have a layer.
    let with_layer = |img: &str| {
        let cfg = raw_config(&env, img);
        cfg["history"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|h| h["empty_layer"].as_bool() != Some(true))
            .count()
    };
    assert_eq!(with_layer("localhost/s:1"), with_layer("localhost/s:0") - 4);
    let o = env.berth(&["run", "--rm", "localhost/s:1", "cat", "/d/y", "/two"]);
    assert_eq!(stdout(&o), "y\ntwo\n", "{}", stderr(&o));

    // podman build (the same busybox base imported): the same layer
    // counts and files.
    let Some(p) = flags_support::Podman::with_busybox(&env) else {
        return;
    };
    for (flag, ours) in [
        ("--squash", "localhost/s:1"),
        ("--squash-all", "localhost/s:2"),
    ] {
        let o = p
            .cmd()
            .args([
                "build",
                "--isolation",
                "chroot",
                flag,
                "-t",
                "localhost/p:1",
            ])
            .arg(&ctx)
            .output()
            .unwrap();
        assert!(
            o.status.success(),
            "podman build {flag}: {}",
            String::from_utf8_lossy(&o.stderr)
        );
        let insp = p
            .cmd()
            .args(["image", "inspect", "localhost/p:1"])
            .output()
            .unwrap();
        let v: Value = serde_json::from_slice(&insp.stdout).unwrap();
        let theirs = v[0]["RootFS"]["Layers"].as_array().unwrap().len();
        assert_eq!(
            layers(ours),
            theirs,
            "{flag}: layer count differs from podman's"
        );
        let m = p
            .cmd()
            .args(["image", "mount", "localhost/p:1"])
            .output()
            .unwrap();
        let mnt = String::from_utf8_lossy(&m.stdout).trim().to_string();
        let got = present(Path::new(&mnt));
        let _ = p.cmd().args(["image", "unmount", "localhost/p:1"]).output();
        assert_eq!(got, want, "{flag}: files differ from podman's");
        let _ = p.cmd().args(["rmi", "-f", "localhost/p:1"]).output();
    }
}
