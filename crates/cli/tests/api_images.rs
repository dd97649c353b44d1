//! The image endpoints of `berth system service` with the real clients:
//! the docker CLI's classic builder (`DOCKER_BUILDKIT=0`), `push`/`pull`
//! to a registry the test starts in its network namespace, `history`,
//! `save | load`, `image prune`; the Docker SDK for Python's
//! `images.build(fileobj=...)`; Compose's `build:` through
//! `berth compose`. The same build on a private dockerd keeps the
//! expectations honest (config fields, history and layers added).

mod api_support;
mod callers_support;
mod common;
use api_support::{client, have_docker, image_archive, logged, out, ApiTest};
#[path = "api_support/dockerd.rs"]
mod dockerd;
use api_support::Service;
use common::*;
use dockerd::PrivateDockerd;

use std::path::Path;
use std::process::{Command, Output};

fn err(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).to_string()
}

/// The test's build context: a Dockerfile over `base` with a build arg,
/// an ENV, a RUN, a COPY, a LABEL, a WORKDIR and a CMD.
fn context(dir: &Path, base: &str) {
    std::fs::create_dir_all(dir).expect("mkdir context");
    std::fs::write(
        dir.join("Dockerfile"),
        format!(
            "FROM {base}\nARG GREETING=hi\nENV WHO=world\nRUN echo \"$GREETING $WHO\" > /greeting\nCOPY file.txt /file.txt\nLABEL stage=one\nWORKDIR /srv\nCMD [\"cat\", \"/greeting\"]\n"
        ),
    )
    .expect("write Dockerfile");
    std::fs::write(dir.join("file.txt"), "copied\n").expect("write file.txt");
}

/// `docker ARGS` on the socket `sock` with the classic builder, logged.
fn docker_at(sock: &Path, cfg: &Path, args: &[&str]) -> Output {
    logged(
        &format!("docker {args:?}"),
        client("docker", 300, sock, cfg)
            .args(args)
            .env("DOCKER_BUILDKIT", "0"),
    )
}

/// What the clients see of a built image: its config fields, and the
/// history entries and layers it adds to its base.
#[derive(Debug, PartialEq)]
struct Built {
    run: String,
    config: String,
    history_added: usize,
    layers_added: usize,
    created_by: Vec<String>,
}

fn observe(sock: &Path, cfg: &Path, base: &str, tag: &str) -> Built {
    let d = |args: &[&str]| {
        let o = docker_at(sock, cfg, args);
        assert!(o.status.success(), "docker {args:?}: {}", err(&o));
        out(&o)
    };
    let hist = |img: &str| d(&["history", "--no-trunc", "--format", "{{.CreatedBy}}", img]);
    let layers = |img: &str| {
        d(&["inspect", "--format", "{{len .RootFS.Layers}}", img])
            .parse::<usize>()
            .expect("a layer count")
    };
    let h = hist(tag);
    let hb = hist(base);
    Built {
        run: d(&["run", "--rm", "--network", "none", tag]),
        config: d(&[
            "inspect",
            "--format",
            "{{json .Config.Cmd}} {{json .Config.Labels}} {{.Config.WorkingDir}} {{range .Config.Env}}{{if eq . \"WHO=world\"}}{{.}}{{end}}{{end}} {{.Os}}",
            tag,
        ]),
        history_added: h.lines().count() - hb.lines().count(),
        layers_added: layers(tag) - layers(base),
        // The newest entries, the ones the build added (words only:
        // dockerd writes `/bin/sh -c #(nop) ` before metadata steps).
        created_by: h
            .lines()
            .take(h.lines().count() - hb.lines().count())
            .map(|l| match l.split_once("#(nop)") {
                Some((_, rest)) => rest.split_whitespace().next().unwrap_or("").to_string(),
                None => "RUN".to_string(),
            })
            .collect(),
    }
}

#[test]
fn docker_build_push_pull_history_save_load_prune() {
    if !have_docker() {
        return;
    }
    let env = EngineEnv::new();
    let base = env.busybox_image();
    let Some(reg) = Registry::start_in(&env) else {
        eprintln!("SKIP: docker-registry is not installed (apt-get install docker-registry)");
        return;
    };
    let svc = Service::start(&env);
    let cfg = svc.client_cfg.path().to_path_buf();
    let d = |args: &[&str]| docker_at(&svc.sock, &cfg, args);
    let ctx = env.dir.path().join("ctx");
    context(&ctx, &base);
    let ctx_s = ctx.to_str().expect("utf-8");
    let name = format!("localhost:{}/app:1", reg.port);

    let o = d(&[
        "build",
        "-t",
        &name,
        "--build-arg",
        "GREETING=there",
        "--label",
        "via=api",
        ctx_s,
    ]);
    assert!(o.status.success(), "docker build: {}", err(&o));
    let text = out(&o);
    assert!(text.contains("Step 4/8 : RUN echo"), "{text}");
    assert!(text.contains("Successfully built "), "{text}");
    assert!(
        text.contains(&format!("Successfully tagged {name}")),
        "{text}"
    );
    let id = out(&d(&["inspect", "--format", "{{.Id}}", &name]));
    let built = text
        .lines()
        .find_map(|l| l.strip_prefix("Successfully built "))
        .expect("an ID");
    assert!(id.starts_with(&format!("sha256:{built}")), "{id} {built}");
    assert_eq!(out(&d(&["run", "--rm", &name])), "there world");
    assert_eq!(
        out(&d(&[
            "inspect",
            "--format",
            "{{index .Config.Labels \"via\"}}",
            &name
        ])),
        "api"
    );
    // berth sees the image the service built.
    assert!(env.ok(&["images", "-q"]).contains(&id[7..19]));
    assert_eq!(
        env.berth(&["image", "exists", &name]).status.code(),
        Some(0)
    );
    // `-q`: the ID alone; --iidfile through `aux`.
    let iid = env.dir.path().join("iid");
    let o = d(&[
        "build",
        "-q",
        "--iidfile",
        iid.to_str().expect("utf-8"),
        "--build-arg",
        "GREETING=there",
        "--label",
        "via=api",
        ctx_s,
    ]);
    assert!(o.status.success(), "{}", err(&o));
    assert_eq!(out(&o), id, "the same steps hit the cache");
    // (with -q the CLI writes the ID as streamed, newline included)
    assert_eq!(std::fs::read_to_string(&iid).expect("iidfile").trim(), id);

    // History: the build's steps after FROM but ARG (docs/cli.md) on
    // the base's entry.
    let h = out(&d(&[
        "history",
        "--format",
        "{{.ID}} {{.CreatedBy}}",
        &name,
    ]));
    assert!(
        h.lines().next().expect("entries").starts_with(&built[..12]),
        "{h}"
    );
    assert!(h.lines().skip(1).all(|l| l.starts_with("<missing>")), "{h}");
    let base_entries = out(&d(&["history", "-q", &base])).lines().count();
    assert_eq!(h.lines().count(), base_entries + 6, "{h}");
    let (code, body) = svc.raw("GET", "/v1.41/images/nope/history", "");
    assert_eq!(code, 404, "{body}");

    // Push to the registry, remove, pull back.
    let o = d(&["push", &name]);
    assert!(o.status.success(), "docker push: {}", err(&o));
    let text = out(&o);
    assert!(
        text.contains(&format!(
            "The push refers to repository [localhost:{}/app]",
            reg.port
        )),
        "{text}"
    );
    assert!(text.contains("1: digest: sha256:"), "{text}");
    let o = d(&["push", &name]);
    assert!(
        out(&o).contains("Layer already exists"),
        "a second push uploads nothing"
    );
    assert!(d(&["rmi", &name]).status.success());
    assert_eq!(
        env.berth(&["image", "exists", &name]).status.code(),
        Some(1)
    );
    let o = d(&["pull", &name]);
    assert!(o.status.success(), "docker pull: {}", err(&o));
    assert_eq!(out(&d(&["inspect", "--format", "{{.Id}}", &name])), id);
    assert_eq!(out(&d(&["run", "--rm", &name])), "there world");
    // `build --pull`: the FROM image comes from the registry.
    assert!(d(&["rmi", &name]).status.success());
    let ctx2 = env.dir.path().join("ctx2");
    std::fs::create_dir_all(&ctx2).expect("mkdir");
    std::fs::write(
        ctx2.join("Dockerfile"),
        format!("FROM {name}\nRUN cat /greeting\n"),
    )
    .expect("write");
    let o = d(&[
        "build",
        "--pull",
        "-t",
        "localhost/pulled:1",
        ctx2.to_str().expect("utf-8"),
    ]);
    assert!(o.status.success(), "{}", err(&o));
    assert!(
        out(&o).contains("there world"),
        "RUN output streamed: {}",
        out(&o)
    );
    assert_eq!(out(&d(&["inspect", "--format", "{{.Id}}", &name])), id);
    // A push of an image that does not exist: Docker's error.
    let o = d(&["push", &format!("localhost:{}/nope:1", reg.port)]);
    assert!(!o.status.success());
    assert!(err(&o).contains("does not exist locally"), "{}", err(&o));

    // save | load, by name, through a file and through a pipe.
    let tar = env.dir.path().join("app.tar");
    let tar_s = tar.to_str().expect("utf-8");
    assert!(d(&["save", "-o", tar_s, &name]).status.success());
    assert!(d(&["rmi", &name]).status.success());
    let o = d(&["load", "-i", tar_s]);
    assert!(o.status.success(), "{}", err(&o));
    assert_eq!(out(&o), format!("Loaded image: {name}"));
    assert_eq!(out(&d(&["inspect", "--format", "{{.Id}}", &name])), id);
    let pipe = Command::new("sh")
        .arg("-c")
        .arg(format!(
            "docker save {name} {base} | docker load && docker images --format '{{{{.Repository}}}}:{{{{.Tag}}}}'"
        ))
        .env("DOCKER_HOST", format!("unix://{}", svc.sock.display()))
        .env("DOCKER_CONFIG", &cfg)
        .output()
        .expect("sh");
    assert!(pipe.status.success(), "{}", err(&pipe));
    let text = out(&pipe);
    assert!(text.contains(&format!("Loaded image: {name}")), "{text}");
    let o = d(&["save", "-o", tar_s, "nope:1"]);
    assert!(!o.status.success());
    assert!(err(&o).contains("No such image"), "{}", err(&o));
    let (code, body) = svc.raw("POST", "/v1.41/images/load", "not a tar");
    assert_eq!(code, 400, "{body}");

    // Prune: a rebuild under the same name leaves the old image
    // dangling; `image prune -f` removes it, and only it.
    let o = d(&["build", "-t", &name, "--build-arg", "GREETING=again", ctx_s]);
    assert!(o.status.success(), "{}", err(&o));
    let new_id = out(&d(&["inspect", "--format", "{{.Id}}", &name]));
    assert_ne!(new_id, id);
    let o = d(&["image", "prune", "-f"]);
    assert!(o.status.success(), "{}", err(&o));
    assert!(out(&o).contains(&format!("deleted: {id}")), "{}", out(&o));
    let left = env.ok(&["images", "-q"]);
    assert!(!left.contains(&id[7..19]), "{left}");
    assert!(left.contains(&new_id[7..19]), "{left}");
    let (code, body) = svc.raw(
        "POST",
        "/v1.41/images/prune?filters=%7B%22until%22%3A%5B%2210m%22%5D%7D",
        "",
    );
    assert_eq!(code, 400, "{body}");

    // Bad builds: BuildKit, a Dockerfile outside the context, a failing
    // RUN (its error in the stream, no image).
    // (Debian's docker CLI refuses DOCKER_BUILDKIT=1 itself without
    // buildx: BuildKit's requests are checked raw.)
    let (code, body) = svc.raw("POST", "/v1.41/session", "");
    assert_eq!(code, 400, "{body}");
    assert!(body.contains("DOCKER_BUILDKIT=0"), "{body}");
    let (code, body) = svc.raw("POST", "/v1.41/build?version=2", "");
    assert_eq!(code, 400, "{body}");
    assert!(body.contains("DOCKER_BUILDKIT=0"), "{body}");
    let (code, body) = svc.raw("POST", "/v1.41/build?dockerfile=/etc/shadow", "");
    assert_eq!(code, 400, "{body}");
    let bad = env.dir.path().join("bad");
    std::fs::create_dir_all(&bad).expect("mkdir");
    std::fs::write(bad.join("Dockerfile"), format!("FROM {base}\nRUN exit 7\n")).expect("write");
    let o = d(&["build", "-t", "bad:1", bad.to_str().expect("utf-8")]);
    assert!(!o.status.success());
    assert!(err(&o).contains("RUN"), "{}", err(&o));
    assert_eq!(
        env.berth(&["image", "exists", "bad:1"]).status.code(),
        Some(1)
    );

    // Search: the registry has no /v1/search; the error says so.
    let (code, body) = svc.raw(
        "GET",
        &format!("/v1.41/images/search?term=localhost:{}/app", reg.port),
        "",
    );
    assert_eq!(code, 500, "{body}");
    assert!(body.contains("no search API"), "{body}");
    assert_eq!(
        env.ok(&["ps", "-aq"]).trim(),
        "",
        "builds leave no containers"
    );
}

#[test]
fn docker_build_matches_a_private_dockerd() {
    if !have_docker() {
        return;
    }
    let Some(dockerd) = PrivateDockerd::start_or_skip("") else {
        return;
    };
    let env = EngineEnv::new();
    let base = env.busybox_image();
    let tar = image_archive(&env, &base);
    let ctx = env.dir.path().join("ctx");
    context(&ctx, &base);
    let ctx_s = ctx.to_str().expect("utf-8");
    let build = |sock: &Path, cfg: &Path| {
        let o = docker_at(
            sock,
            cfg,
            &[
                "build",
                "--network",
                "none",
                "-t",
                "localhost/app:1",
                "--build-arg",
                "GREETING=there",
                "--label",
                "via=api",
                ctx_s,
            ],
        );
        assert!(o.status.success(), "docker build: {}", err(&o));
        let text = out(&o);
        assert!(
            text.contains("Successfully tagged localhost/app:1"),
            "{text}"
        );
    };

    let dcfg = tempfile::tempdir().expect("tempdir");
    assert!(docker_at(
        &dockerd.sock(),
        dcfg.path(),
        &["load", "-i", tar.to_str().expect("utf-8")]
    )
    .status
    .success());
    build(&dockerd.sock(), dcfg.path());
    let theirs = observe(&dockerd.sock(), dcfg.path(), &base, "localhost/app:1");

    let svc = Service::start(&env);
    build(&svc.sock, svc.client_cfg.path());
    let ours = observe(&svc.sock, svc.client_cfg.path(), &base, "localhost/app:1");
    // Known differences of berth's builder (docs/cli.md): ARG and the
    // `--label` flags make no history entry (dockerd's adds
    // `ARG GREETING=hi` and a last `LABEL via=api` step), and WORKDIR
    // makes no layer (the directory is made when a container starts).
    let mut expected = theirs;
    assert_eq!(
        expected.created_by.first().map(String::as_str),
        Some("LABEL")
    );
    expected.created_by.remove(0);
    expected.created_by.retain(|c| c != "ARG");
    expected.history_added -= 2;
    expected.layers_added -= 1;
    assert_eq!(ours, expected, "berth's build differs from dockerd's");

    // berth's image runs on dockerd: `docker save` from berth's service,
    // `docker load` into dockerd.
    let app = env.dir.path().join("app.tar");
    let app_s = app.to_str().expect("utf-8");
    assert!(docker_at(
        &svc.sock,
        svc.client_cfg.path(),
        &["save", "-o", app_s, "localhost/app:1"]
    )
    .status
    .success());
    assert!(
        docker_at(&dockerd.sock(), dcfg.path(), &["rmi", "localhost/app:1"])
            .status
            .success()
    );
    let o = docker_at(&dockerd.sock(), dcfg.path(), &["load", "-i", app_s]);
    assert!(o.status.success(), "{}", err(&o));
    let o = docker_at(
        &dockerd.sock(),
        dcfg.path(),
        &["run", "--rm", "--network", "none", "localhost/app:1"],
    );
    assert_eq!(out(&o), "there world", "{}", err(&o));
    for i in ["localhost/app:1", &base] {
        let _ = docker_at(&dockerd.sock(), dcfg.path(), &["rmi", i]);
    }
}

#[test]
fn docker_sdk_for_python_builds_from_a_fileobj() {
    let Some(ApiTest {
        env,
        img: base,
        svc,
    }) = ApiTest::start_with_docker_py()
    else {
        return;
    };
    let py = "/usr/bin/python3";
    let script = env.dir.path().join("build.py");
    std::fs::write(
        &script,
        r#"import io, sys, docker
c = docker.DockerClient(base_url="unix://" + sys.argv[1], version="1.41")
df = io.BytesIO(("FROM %s\nARG X=1\nRUN echo built-$X > /out\nCMD [\"cat\", \"/out\"]\n" % sys.argv[2]).encode())
img, logs = c.images.build(fileobj=df, tag="localhost/py:1", buildargs={"X": "py"}, rm=True)
print("tags:", img.tags)
print("steps:", sum(1 for l in logs if l.get("stream", "").startswith("Step ")))
print("run:", c.containers.run("localhost/py:1", remove=True).decode().strip())
try:
    c.images.build(fileobj=io.BytesIO(b"FROM localhost/bb:1\nRUN exit 3\n"), tag="localhost/py:bad")
except docker.errors.BuildError as e:
    print("error:", "RUN" in str(e))
"#,
    )
    .expect("write the script");
    let o = Command::new("timeout")
        .args(["240", py])
        .arg(&script)
        .arg(&svc.sock)
        .arg(&base)
        .output()
        .expect("python3");
    eprintln!("{o:?}");
    assert!(o.status.success(), "{}", err(&o));
    assert_eq!(
        String::from_utf8_lossy(&o.stdout),
        "tags: ['localhost/py:1']\nsteps: 4\nrun: built-py\nerror: True\n"
    );
}

#[test]
fn compose_builds_a_service_through_berth_compose() {
    if !have_docker() {
        return;
    }
    if Command::new("docker-compose")
        .arg("version")
        .output()
        .is_err()
    {
        eprintln!("SKIP: docker-compose is not installed");
        return;
    }
    let env = EngineEnv::new();
    let base = env.busybox_image();
    let dir = tempfile::tempdir().expect("tempdir");
    std::fs::create_dir(dir.path().join("app")).expect("mkdir");
    std::fs::write(
        dir.path().join("app/Dockerfile"),
        format!("FROM {base}\nARG GREETING=hi\nRUN echo $GREETING > /greeting\nCMD [\"sh\", \"-c\", \"cat /greeting; exec sleep 100000\"]\n"),
    )
    .expect("write Dockerfile");
    let file = dir.path().join("docker-compose.yml");
    std::fs::write(
        &file,
        "version: \"2.4\"\nservices:\n  app:\n    build:\n      context: ./app\n      args:\n        GREETING: composed\n    image: localhost/composed:1\n",
    )
    .expect("write docker-compose.yml");
    let file = file.to_str().expect("utf-8");
    let project = unique("cb").replace('-', "_");
    let compose = |extra_env: &[(&str, &str)], args: &[&str]| {
        let mut a = vec!["compose", "--ansi", "never", "-p", &project, "-f", file];
        a.extend_from_slice(args);
        let mut c = env.cmd();
        c.args(&a).env("DOCKER_BUILDKIT", "0");
        for (k, v) in extra_env {
            c.env(k, v);
        }
        let o = c.output().expect("berth compose");
        eprintln!("berth {a:?} -> {o:?}");
        o
    };
    // Compose 1.29 builds with the docker CLI by default, with docker-py
    // when COMPOSE_DOCKER_CLI_BUILD=0: both.
    let o = compose(&[("COMPOSE_DOCKER_CLI_BUILD", "0")], &["build"]);
    assert!(o.status.success(), "{}", err(&o));
    assert_eq!(
        env.berth(&["image", "exists", "localhost/composed:1"])
            .status
            .code(),
        Some(0)
    );
    let o = compose(&[], &["build", "--no-cache"]);
    assert!(o.status.success(), "{}", err(&o));
    let o = compose(&[], &["up", "-d"]);
    assert!(o.status.success(), "{}", err(&o));
    let name = format!("{project}_app_1");
    wait_for("the service's output", 60, || {
        let l = env.berth(&["logs", &name]);
        (String::from_utf8_lossy(&l.stdout).trim() == "composed").then_some(())
    });
    assert!(compose(&[], &["down", "-t", "1"]).status.success());
    assert_eq!(env.ok(&["ps", "-aq"]).trim(), "");
}
