//! The instruction cache of `berth build`: which steps rerun after a
//! change, `.dockerignore` hiding files from it, and `--cache-to` /
//! `--cache-from`: the cache exported
//! to a registry (Debian's docker-registry inside the test's network
//! namespace) and imported by another store, standing in for another
//! machine, which then runs no step and makes the same image.

mod common;
use common::*;
mod build_support;
use build_support::*;

#[test]
fn a_cache_in_a_registry_is_reused_by_another_store() {
    require_root!();
    let env = busybox_env();
    let Some((reg, base)) =
        registry_with_busybox(&env, "a_cache_in_a_registry_is_reused_by_another_store")
    else {
        return;
    };
    let ctx = context(
        &env,
        "ctx",
        &[
            ("a.txt", "one\n"),
            (
                "Containerfile",
                &format!(
                    "FROM {base} AS dep\n\
                     RUN echo RAN-DEP | tee /dep\n\
                     FROM {base}\n\
                     ARG V=1\n\
                     RUN echo RAN-ONE-$V | tee /one\n\
                     COPY a.txt /a.txt\n\
                     COPY --from=dep /dep /dep\n\
                     RUN echo RAN-TWO && cat /a.txt > /b.txt\n\
                     ENV X=1\n"
                ),
            ),
        ],
    );
    let cache = format!("127.0.0.1:{}/berth/cache", reg.port);
    let to = format!("type=registry,ref={cache}:main");
    let first = build(&env, &["-t", "localhost/app:1", "--cache-to", &to], &ctx);
    let out = ok(&first);
    for s in ["RAN-DEP", "RAN-ONE-1", "RAN-TWO"] {
        assert!(ran(&out, s), "{s}: {out}");
    }
    assert!(out.contains("Exported 6 cached steps"), "{out}");
    let id = built_id(&first);
    let layers = inspect(&env, "localhost/app:1")["RootFS"].clone();

    // Another store: the base pulled, the cache imported; no step runs.
    let other = OtherStore::new(&env, "second");
    other.ok(&["pull", "-q", &base]);
    let second = other.build(
        &["-t", "localhost/app:1", "--cache-from", &cache_ref(&cache)],
        &ctx,
    );
    let out = ok(&second);
    assert!(!ran(&out, "RAN-"), "a step ran: {out}");
    assert_eq!(out.matches("--> Using cache").count(), 6, "{out}");
    assert_eq!(built_id(&second), id, "the same image");
    let v: serde_json::Value =
        serde_json::from_str(&other.ok(&["image", "inspect", "localhost/app:1"])).unwrap();
    assert_eq!(v[0]["RootFS"], layers, "the same layers");
    let m = other.ok(&["image", "mount", "localhost/app:1"]);
    let r = std::path::Path::new(m.trim());
    assert_eq!(std::fs::read_to_string(r.join("b.txt")).unwrap(), "one\n");
    assert_eq!(std::fs::read_to_string(r.join("dep")).unwrap(), "RAN-DEP\n");
    other.ok(&["image", "unmount", "localhost/app:1"]);
    // It runs there.
    let o = other.berth(&["run", "--rm", "localhost/app:1", "cat", "/one"]);
    assert_eq!(stdout(&o), "RAN-ONE-1\n", "{}", stderr(&o));

    // A changed file in the second store reruns only from its COPY on.
    std::fs::write(ctx.join("a.txt"), "two\n").unwrap();
    let third = other.build(&["--cache-from", &cache], &ctx);
    let out = ok(&third);
    assert!(
        ran(&out, "RAN-TWO") && !ran(&out, "RAN-ONE") && !ran(&out, "RAN-DEP"),
        "{out}"
    );

    // A cache not pushed yet is a warning, not a failure (as BuildKit).
    let o = other.build(&["--cache-from", &format!("{cache}:nope")], &ctx);
    assert!(o.status.success(), "{}", stderr(&o));
    assert!(
        stderr(&o).contains("warning: import the build cache"),
        "{}",
        stderr(&o)
    );
    // An image that is no cache: named as such.
    let o = other.build(&["--cache-from", &base], &ctx);
    assert!(
        stderr(&o).contains("not a berth build cache"),
        "{}",
        stderr(&o)
    );
    // Unsupported cache types are refused up front.
    let o = other.build(&["--cache-to", "type=local,dest=/tmp/x"], &ctx);
    assert!(!o.status.success());
    assert!(
        stderr(&o).contains("type=local is not supported"),
        "{}",
        stderr(&o)
    );
}

/// Whether a RUN printed a line starting with `s` (not the step line).
fn ran(out: &str, s: &str) -> bool {
    out.lines().any(|l| l.starts_with(s))
}

fn cache_ref(cache: &str) -> String {
    format!("type=registry,ref={cache}:main")
}

#[test]
fn the_cache_reruns_only_what_changed() {
    require_root!();
    let env = busybox_env();
    let ctx = context(
        &env,
        "ctx",
        &[
            ("a.txt", "one\n"),
            (
                "Containerfile",
                "FROM localhost/bb:1\n\
                 ARG V=1\n\
                 RUN X=RAN; echo $X-FIRST-$V\n\
                 COPY a.txt /a.txt\n\
                 RUN X=RAN; echo $X-SECOND && cat /a.txt > /b.txt\n",
            ),
        ],
    );
    let first = ok(&build(&env, &["-t", "localhost/c:1"], &ctx));
    assert!(
        first.contains("RAN-FIRST-1") && first.contains("RAN-SECOND"),
        "{first}"
    );
    let id1 = first.lines().last().unwrap().to_string();
    // Unchanged: nothing runs, same image.
    let again = ok(&build(&env, &["-t", "localhost/c:1"], &ctx));
    assert!(!again.contains("RAN-"), "{again}");
    assert_eq!(again.matches("--> Using cache").count(), 3, "{again}");
    assert_eq!(again.lines().last().unwrap(), id1);
    // One copied file changes: the COPY and what follows rerun.
    std::fs::write(ctx.join("a.txt"), "two\n").unwrap();
    let changed = ok(&build(&env, &["-t", "localhost/c:2"], &ctx));
    assert!(!changed.contains("RAN-FIRST"), "{changed}");
    assert!(changed.contains("RAN-SECOND"), "{changed}");
    with_rootfs(&env, "localhost/c:2", |r| {
        assert_eq!(std::fs::read_to_string(r.join("b.txt")).unwrap(), "two\n");
    });
    // Only the mode changes: that is content too.
    let p = ctx.join("a.txt");
    let mut perm = std::fs::metadata(&p).unwrap().permissions();
    std::os::unix::fs::PermissionsExt::set_mode(&mut perm, 0o600);
    std::fs::set_permissions(&p, perm).unwrap();
    let moded = ok(&build(&env, &[], &ctx));
    assert!(
        moded.contains("RAN-SECOND") && !moded.contains("RAN-FIRST"),
        "{moded}"
    );
    // A build arg it sees: everything from the RUN on reruns.
    let arg = ok(&build(&env, &["--build-arg", "V=2"], &ctx));
    assert!(
        arg.contains("RAN-FIRST-2") && arg.contains("RAN-SECOND"),
        "{arg}"
    );
    // --no-cache: all of it.
    let all = ok(&build(&env, &["--no-cache", "-q"], &ctx));
    assert!(
        all.contains("RAN-FIRST-1") && all.contains("RAN-SECOND"),
        "{all}"
    );
    assert!(!all.contains("STEP"), "-q prints no progress: {all}");
}

#[test]
fn dockerignore_hides_context_files_from_copy_and_the_cache() {
    require_root!();
    let env = busybox_env();
    let ctx = context(
        &env,
        "ctx",
        &[
            (
                ".dockerignore",
                "# docs\n*.md\n!keep.md\n/build\n**/*.tmp\n",
            ),
            ("a.md", "ignored\n"),
            ("keep.md", "kept\n"),
            ("build/out", "ignored\n"),
            ("src/y", "y\n"),
            ("src/deep/z.tmp", "ignored\n"),
            ("Containerfile", "FROM localhost/bb:1\nCOPY . /c/\n"),
        ],
    );
    ok(&build(&env, &["-t", "localhost/ig:1"], &ctx));
    let files = with_rootfs(&env, "localhost/ig:1", |r| {
        let mut v: Vec<String> = listing(&r.join("c"))
            .into_iter()
            .map(|l| l.split(' ').next().unwrap().to_string())
            .collect();
        v.sort();
        v
    });
    assert_eq!(
        files,
        vec![
            ".dockerignore",
            "Containerfile",
            "keep.md",
            "src",
            "src/deep",
            "src/y"
        ]
    );
    // A change to an ignored file does not invalidate the COPY.
    std::fs::write(ctx.join("a.md"), "changed\n").unwrap();
    let again = ok(&build(&env, &[], &ctx));
    assert!(again.contains("--> Using cache"), "{again}");
    std::fs::write(
        ctx.join("Containerfile"),
        "FROM localhost/bb:1\nCOPY a.md /\n",
    )
    .unwrap();
    let o = build(&env, &[], &ctx);
    assert!(
        stderr(&o).contains("line 2: COPY: COPY source \"a.md\" is excluded by the context's .containerignore/.dockerignore"),
        "{}",
        stderr(&o)
    );
}

/// The same through buildah 1.28 (`bud --layers --cache-to/--cache-from`,
/// which pushes one image per step): in both, a second store builds the
/// same image without running a RUN step.
#[test]
fn a_second_store_reuses_the_registry_cache_as_with_buildah() {
    require_root!();
    let env = EngineEnv::new();
    let Some(reg) = registry(
        &env,
        "a_second_store_reuses_the_registry_cache_as_with_buildah",
    ) else {
        return;
    };
    if buildah(&env, &["--version"]).is_none() {
        eprintln!("SKIP: a_second_store_reuses_the_registry_cache_as_with_buildah: buildah is not installed");
        return;
    }
    let ctx = scratch_context(
        &env,
        "ctx",
        &[(
            "Containerfile",
            "FROM scratch\n\
             COPY rootfs/ /\n\
             RUN echo RAN-ONE | tee /one\n\
             RUN echo RAN-TWO | tee /two\n",
        )],
    );
    let c = ctx.to_str().unwrap();
    let theirs_cache = format!("127.0.0.1:{}/buildah/cache", reg.port);
    let bud = |store: &str, flag: &str| {
        let o = buildah_in(
            &env,
            store,
            &[
                "bud",
                "--layers",
                "--isolation",
                "chroot",
                "--tls-verify=false",
                flag,
                &theirs_cache,
                "-t",
                "localhost/x:1",
                c,
            ],
        )
        .unwrap();
        let out = ok(&o);
        let id = out.lines().last().unwrap().trim().to_string();
        (out, id)
    };
    let (t1, tid1) = bud("buildah-a", "--cache-to");
    let (t2, tid2) = bud("buildah-b", "--cache-from");
    buildah_in(&env, "buildah-a", &["rmi", "-a", "-f"]);
    buildah_in(&env, "buildah-b", &["rmi", "-a", "-f"]);

    let ours_cache = format!("127.0.0.1:{}/berth/cache:1", reg.port);
    let first = build(
        &env,
        &["-t", "localhost/x:1", "--cache-to", &ours_cache],
        &ctx,
    );
    let o1 = ok(&first);
    let other = OtherStore::new(&env, "second");
    let second = other.build(&["-t", "localhost/x:1", "--cache-from", &ours_cache], &ctx);
    let o2 = ok(&second);
    // The first builds run both steps, the second ones none, and make
    // the first one's image.
    for (what, first, second) in [("buildah", &t1, &t2), ("berth", &o1, &o2)] {
        assert!(
            ran(first, "RAN-ONE") && ran(first, "RAN-TWO"),
            "{what}: {first}"
        );
        assert!(!ran(second, "RAN-"), "{what} ran a step: {second}");
        assert!(
            second.matches("Using cache").count() >= 2,
            "{what}: {second}"
        );
    }
    assert_eq!(tid1, tid2, "buildah: the same image");
    assert_eq!(built_id(&first), built_id(&second), "berth: the same image");
}

/// `--cache-to ...,mode=min` exports only the steps whose layers make
/// the result (the target stage's and those of the stage it is FROM), as
/// BuildKit; the default (max) every step built. `--cache-from` is lazy,
/// as BuildKit's import: a layer is fetched only when read, so the layer
/// of a stage that only a cached `COPY --from` used stays in the registry.
#[test]
fn cache_mode_min_exports_the_result_stages_and_import_fetches_lazily() {
    require_root!();
    let env = busybox_env();
    let Some((reg, base)) = registry_with_busybox(
        &env,
        "cache_mode_min_exports_the_result_stages_and_import_fetches_lazily",
    ) else {
        return;
    };
    let ctx = context(
        &env,
        "ctx",
        &[(
            "Containerfile",
            &format!(
                "FROM {base} AS dep\n\
                 RUN echo RAN-DEP && echo dep > /dep && head -c 300000 /dev/urandom > /big\n\
                 FROM {base} AS mid\n\
                 RUN echo RAN-MID | tee /mid\n\
                 FROM mid\n\
                 COPY --from=dep /dep /dep\n\
                 RUN echo RAN-FINAL | tee /final\n"
            ),
        )],
    );
    let cache = format!("127.0.0.1:{}/berth/cache", reg.port);
    let max = format!("type=registry,ref={cache}:max");
    let min = format!("type=registry,ref={cache}:min,mode=min");
    let first = build(
        &env,
        &[
            "-t",
            "localhost/app:1",
            "--cache-to",
            &max,
            "--cache-to",
            &min,
        ],
        &ctx,
    );
    let out = ok(&first);
    let exported = |n: usize, tag: &str| {
        out.lines().any(|l| {
            l.starts_with(&format!("--> Exported {n} cached steps to ")) && l.ends_with(tag)
        })
    };
    assert!(exported(4, ":max") && exported(3, ":min"), "{out}");
    let id = built_id(&first);
    // The layer only `COPY --from=dep` read.
    let dep = built_id(&build(
        &env,
        &["--target", "dep", "-t", "localhost/dep:1"],
        &ctx,
    ));
    let dep_layers = inspect(&env, "localhost/dep:1")["RootFS"]["Layers"].clone();
    let dep_layer = dep_layers
        .as_array()
        .unwrap()
        .last()
        .unwrap()
        .as_str()
        .unwrap()
        .to_string();
    assert!(!dep.is_empty());
    let app_layers = inspect(&env, "localhost/app:1")["RootFS"]["Layers"].clone();
    assert!(!app_layers
        .as_array()
        .unwrap()
        .contains(&serde_json::json!(dep_layer)));
    let blob = |o: &OtherStore, d: &str| {
        o.root
            .join("root/images/blobs/sha256")
            .join(d.strip_prefix("sha256:").unwrap())
    };

    // min: the dep stage is not in the cache and runs; the result's
    // stages come from the cache (the copied file is the same), giving
    // the same image.
    let second = OtherStore::new(&env, "second");
    second.ok(&["pull", "-q", &base]);
    let o = second.build(&["-t", "localhost/app:1", "--cache-from", &min], &ctx);
    let out = ok(&o);
    assert!(ran(&out, "RAN-DEP"), "{out}");
    assert!(!ran(&out, "RAN-MID") && !ran(&out, "RAN-FINAL"), "{out}");
    assert_eq!(built_id(&o), id, "the same image from the min cache");

    // max: nothing runs, and the dep layer is never fetched.
    let third = OtherStore::new(&env, "third");
    third.ok(&["pull", "-q", &base]);
    let o = third.build(&["-t", "localhost/app:1", "--cache-from", &max], &ctx);
    let out = ok(&o);
    assert!(!ran(&out, "RAN-"), "a step ran: {out}");
    assert_eq!(built_id(&o), id);
    assert!(
        !blob(&third, &dep_layer).exists(),
        "the dep stage's layer was fetched though nothing read it"
    );
    for l in app_layers.as_array().unwrap() {
        assert!(blob(&third, l.as_str().unwrap()).exists(), "{l} missing");
    }
    let o = third.berth(&[
        "run",
        "--rm",
        "localhost/app:1",
        "cat",
        "/dep",
        "/final",
        "/mid",
    ]);
    assert_eq!(stdout(&o), "dep\nRAN-FINAL\nRAN-MID\n", "{}", stderr(&o));
    // A step that runs on a cached one fetches what it reads: the dep
    // stage as a target.
    let o = third.build(&["--target", "dep", "--cache-from", &max], &ctx);
    assert_eq!(built_id(&o), dep);
    assert!(blob(&third, &dep_layer).exists());

    // mode is checked.
    let o = build(
        &env,
        &[
            "--cache-to",
            &format!("type=registry,ref={cache}:x,mode=most"),
        ],
        &ctx,
    );
    assert!(!o.status.success());
    assert!(
        stderr(&o).contains("mode=most: use min or max"),
        "{}",
        stderr(&o)
    );
}
