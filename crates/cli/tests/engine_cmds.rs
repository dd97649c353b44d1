//! The commands Docker and podman users type besides the lifecycle, as
//! root: pause/unpause (freezer seen from the host), update (cgroup files
//! from the host), commit (a new image with whiteouts, run and saved),
//! diff/export/exists (differential against podman), events, top with ps
//! options, logs of several containers, search against a registry
//! without a search API.

mod common;
use common::podman::Podman;
use common::*;

use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

fn id_of(env: &EngineEnv, name: &str) -> String {
    env.inspect(name)["Id"].as_str().expect("Id").to_string()
}

fn cgroup_file(env: &EngineEnv, id: &str, controller: &str, file: &str) -> String {
    let p = Path::new("/sys/fs/cgroup")
        .join(controller)
        .join(env.cgroup_parent.trim_start_matches('/'))
        .join(id)
        .join(file);
    std::fs::read_to_string(&p)
        .unwrap_or_else(|e| panic!("read {}: {e}", p.display()))
        .trim()
        .to_string()
}

fn fails_with(o: &std::process::Output, needle: &str) {
    assert!(!o.status.success(), "expected a failure");
    let e = stderr(o);
    assert!(e.contains(needle), "stderr lacks {needle:?}: {e}");
}

#[test]
fn pause_freezes_the_container_and_unpause_thaws_it() {
    require_root_v1!();
    let env = EngineEnv::new();
    let img = env.busybox_image();
    env.ok(&["run", "-d", "--name", "p", &img, "sleep", "100"]);
    let id = id_of(&env, "p");
    env.ok(&["pause", "p"]);
    assert_eq!(cgroup_file(&env, &id, "freezer", "freezer.state"), "FROZEN");
    let v = env.inspect("p");
    assert_eq!(v["State"]["Status"], "paused");
    assert_eq!(v["State"]["Paused"], true);
    assert_eq!(v["State"]["Running"], true);
    let ps = env.ok(&["ps"]);
    assert!(ps.contains("(Paused)"), "{ps}");
    let js: serde_json::Value = serde_json::from_str(&env.ok(&["ps", "--format", "json"])).unwrap();
    assert_eq!(js[0]["State"], "paused");
    assert!(env
        .ok(&["ps", "-q", "--filter", "status=paused"])
        .contains(&id[..12]));
    // exec into frozen processes is refused with the reason.
    fails_with(&env.berth(&["exec", "p", "true"]), "paused");
    fails_with(&env.berth(&["pause", "p"]), "already paused");
    env.ok(&["unpause", "p"]);
    assert_eq!(cgroup_file(&env, &id, "freezer", "freezer.state"), "THAWED");
    assert_eq!(env.inspect("p")["State"]["Status"], "running");
    env.ok(&["exec", "p", "true"]);
    fails_with(&env.berth(&["unpause", "p"]), "not paused");
    // A paused container stops (thawed after the signal) and is removed.
    env.ok(&["pause", "p"]);
    let t = Instant::now();
    env.ok(&["stop", "-t", "1", "p"]);
    assert!(
        t.elapsed() < Duration::from_secs(8),
        "stop of a paused container hung"
    );
    assert_eq!(env.inspect("p")["State"]["Status"], "exited");
    env.ok(&["run", "-d", "--name", "q", &img, "sleep", "100"]);
    env.ok(&["pause", "q"]);
    env.ok(&["rm", "-f", "q"]);
    assert!(env.inspect("q").is_null());
    fails_with(&env.berth(&["pause", "p"]), "only a running container");
}

#[test]
fn update_changes_the_live_cgroup_and_what_inspect_shows() {
    require_root_v1!();
    let env = EngineEnv::new();
    let img = env.busybox_image();
    env.ok(&["run", "-d", "--name", "u", &img, "sleep", "100"]);
    let id = id_of(&env, "u");
    env.ok(&[
        "update",
        "--memory",
        "64m",
        "--memory-swap",
        "128m",
        "--pids-limit",
        "50",
        "--cpu-shares",
        "512",
        "--cpus",
        "0.5",
        "--restart",
        "on-failure:3",
        "u",
    ]);
    assert_eq!(
        cgroup_file(&env, &id, "memory", "memory.limit_in_bytes"),
        (64u64 << 20).to_string()
    );
    assert_eq!(cgroup_file(&env, &id, "pids", "pids.max"), "50");
    assert_eq!(cgroup_file(&env, &id, "cpu", "cpu.shares"), "512");
    assert_eq!(cgroup_file(&env, &id, "cpu", "cpu.cfs_quota_us"), "50000");
    let v = env.inspect("u");
    assert_eq!(v["HostConfig"]["Memory"], 64u64 << 20);
    assert_eq!(v["HostConfig"]["PidsLimit"], 50);
    assert_eq!(v["HostConfig"]["RestartPolicy"]["Name"], "on-failure");
    assert_eq!(v["HostConfig"]["RestartPolicy"]["MaximumRetryCount"], 3);
    // Kept for the next start.
    env.ok(&["stop", "-t", "0", "u"]);
    env.ok(&["start", "u"]);
    assert_eq!(cgroup_file(&env, &id, "pids", "pids.max"), "50");
    // Bad values: clear errors, nothing changed.
    fails_with(&env.berth(&["update", "--memory", "lots", "u"]), "--memory");
    fails_with(
        &env.berth(&["update", "--blkio-weight", "5", "u"]),
        "--blkio-weight",
    );
    fails_with(
        &env.berth(&["update", "--pids-limit", "5", "nosuch"]),
        "nosuch",
    );
    assert_eq!(cgroup_file(&env, &id, "pids", "pids.max"), "50");
}

/// The layer tars inside a docker-archive (or any tar of tars): the entry
/// names of each.
fn inner_layers(archive: &[u8]) -> Vec<Vec<String>> {
    let mut out = Vec::new();
    let mut a = tar::Archive::new(archive);
    for e in a.entries().expect("archive entries") {
        let mut e = e.expect("entry");
        let mut data = Vec::new();
        e.read_to_end(&mut data).expect("read entry");
        let mut inner = tar::Archive::new(&data[..]);
        let Ok(entries) = inner.entries() else {
            continue;
        };
        let names: Vec<String> = entries
            .filter_map(|x| x.ok())
            .filter_map(|x| x.path().ok().map(|p| p.display().to_string()))
            .collect();
        if !names.is_empty() {
            out.push(names);
        }
    }
    out
}

#[test]
fn commit_makes_an_image_from_the_changes_that_runs_and_saves() {
    require_root!();
    let env = EngineEnv::new();
    let img = env.busybox_image();
    env.ok(&[
        "run",
        "--name",
        "cm",
        "-e",
        "FROM_RUN=1",
        &img,
        "sh",
        "-c",
        "echo hi > /tmp/new; rm /etc/group; rm -rf /root; mkdir /root; touch /root/f",
    ]);
    let out = env.ok(&[
        "commit",
        "-a",
        "me <me@example.org>",
        "-m",
        "first",
        "-c",
        r#"CMD ["cat", "/tmp/new"]"#,
        "-c",
        "ENV GREETING=hello",
        "-c",
        "LABEL stage=one",
        "-c",
        "EXPOSE 8080",
        "-c",
        "WORKDIR /tmp",
        "cm",
        "localhost/committed:1",
    ]);
    assert!(out.trim().starts_with("sha256:"), "{out}");
    assert!(env.ok(&["images"]).contains("localhost/committed"));
    // The new image runs: its CMD, the added file, the deletion.
    assert_eq!(
        env.ok(&["run", "--rm", "localhost/committed:1"]).trim(),
        "hi"
    );
    let o = env.berth(&[
        "run",
        "--rm",
        "localhost/committed:1",
        "ls",
        "/etc",
        "/root",
    ]);
    let listing = stdout(&o);
    assert!(!listing.contains("group"), "{listing}");
    assert!(
        listing.contains("passwd") && listing.contains('f'),
        "{listing}"
    );
    let env_out = env.ok(&[
        "run",
        "--rm",
        "localhost/committed:1",
        "sh",
        "-c",
        "echo $GREETING $FROM_RUN; pwd",
    ]);
    assert_eq!(env_out.trim(), "hello 1\n/tmp");
    let doc: serde_json::Value =
        serde_json::from_str(&env.ok(&["image", "inspect", "localhost/committed:1"])).unwrap();
    let doc = if doc.is_array() { doc[0].clone() } else { doc };
    let text = doc.to_string();
    for needle in ["stage", "8080/tcp", "GREETING=hello"] {
        assert!(
            text.contains(needle),
            "image inspect lacks {needle}: {text}"
        );
    }
    // Saved to a pipe: the new layer holds the whiteouts podman and
    // Docker write (a deleted file; an opaque dir).
    let saved = env
        .cmd()
        .args(["save", "localhost/committed:1"])
        .stdout(Stdio::piped())
        .output()
        .expect("save");
    assert!(saved.status.success(), "save to stdout: {}", stderr(&saved));
    // The config (in the archive) has the author and the history entry.
    let all = String::from_utf8_lossy(&saved.stdout);
    assert!(
        all.contains(r#""author":"me <me@example.org>""#),
        "no author in the config"
    );
    assert!(
        all.contains(r#""comment":"first""#),
        "no history comment in the config"
    );
    let layers = inner_layers(&saved.stdout);
    let top = layers
        .iter()
        .find(|l| l.iter().any(|n| n.contains(".wh.")))
        .unwrap_or_else(|| panic!("no layer with whiteouts in {layers:?}"));
    assert!(top.contains(&"etc/.wh.group".to_string()), "{top:?}");
    assert!(top.contains(&"root/.wh..wh..opq".to_string()), "{top:?}");
    assert!(top.contains(&"tmp/new".to_string()), "{top:?}");
    assert!(
        !top.iter()
            .any(|n| n == "etc/hosts" || n == "etc/resolv.conf"),
        "engine mountpoints leaked into the layer: {top:?}"
    );
    // Bad input: clear errors, no image left.
    fails_with(
        &env.berth(&["commit", "-c", "RUN true", "cm", "localhost/bad:1"]),
        "RUN is not supported",
    );
    fails_with(
        &env.berth(&["commit", "nosuch", "localhost/bad:1"]),
        "nosuch",
    );
    assert!(!env.ok(&["images"]).contains("localhost/bad"));
}

/// A tar listing without what each engine adds itself (its mountpoint
/// files for hosts, hostname, resolv.conf, podman's /run/.containerenv
/// and /etc/mtab).
fn listing(tar_path: &Path) -> Vec<String> {
    let o = Command::new("tar")
        .arg("-tf")
        .arg(tar_path)
        .output()
        .expect("tar -t");
    assert!(o.status.success(), "tar -tf {}", tar_path.display());
    let mut v: Vec<String> = String::from_utf8_lossy(&o.stdout)
        .lines()
        .filter(|l| {
            !matches!(
                *l,
                "etc/hosts"
                    | "etc/hostname"
                    | "etc/resolv.conf"
                    | "etc/mtab"
                    | "run/"
                    | "run/.containerenv"
            )
        })
        .map(String::from)
        .collect();
    v.sort();
    v
}

/// The entry names (without each engine's own files, sorted) of the top
/// layer of an image in a docker-archive: the layer `commit` made.
fn top_layer(archive: &[u8]) -> Vec<String> {
    let layer = archive_top_layer(archive);
    let mut inner = tar::Archive::new(&layer[..]);
    let mut v: Vec<String> = inner
        .entries()
        .expect("layer entries")
        .map(|x| {
            x.expect("layer entry")
                .path()
                .expect("path")
                .display()
                .to_string()
        })
        .filter(|n| {
            !matches!(
                n.as_str(),
                "etc/hosts"
                    | "etc/hostname"
                    | "etc/resolv.conf"
                    | "etc/mtab"
                    | "run"
                    | "run/"
                    | "run/.containerenv"
            )
        })
        .collect();
    v.sort();
    v
}

#[test]
fn diff_export_and_exists_match_podman() {
    require_root!();
    let env = EngineEnv::new();
    let img = env.busybox_image();
    let script = "echo hi > /tmp/new; rm /etc/group; mkdir -p /var/x; rm -rf /root; mkdir /root; touch /root/f";
    env.ok(&["run", "--name", "diffbox", &img, "sh", "-c", script]);
    let berth_diff = env.ok(&["diff", "diffbox"]);
    let expected =
        "C /etc\nD /etc/group\nD /root\nA /root/f\nC /tmp\nA /tmp/new\nC /var\nA /var/x\n";
    assert_eq!(berth_diff, expected);
    let js: serde_json::Value =
        serde_json::from_str(&env.ok(&["diff", "--format", "json", "diffbox"])).unwrap();
    assert_eq!(js["deleted"], serde_json::json!(["/etc/group", "/root"]));
    let btar = env.dir.path().join("berth-export.tar");
    env.ok(&["export", "-o", btar.to_str().unwrap(), "diffbox"]);
    let blist = listing(&btar);
    assert!(blist.contains(&"tmp/new".to_string()) && blist.contains(&"var/x/".to_string()));
    assert!(!blist.contains(&"etc/group".to_string()), "{blist:?}");
    // export to a pipe: the same tar.
    let piped = env
        .cmd()
        .args(["export", "diffbox"])
        .stdout(Stdio::piped())
        .output()
        .expect("export");
    assert!(piped.status.success());
    assert_eq!(piped.stdout, std::fs::read(&btar).unwrap());
    fails_with(&env.berth(&["export", "nosuch"]), "nosuch");
    // exists: 0 / 1.
    let code = |args: &[&str]| env.berth(args).status.code();
    env.ok(&["volume", "create", "vol"]);
    let berth_codes = vec![
        code(&["container", "exists", "diffbox"]),
        code(&["container", "exists", "nosuch"]),
        code(&["image", "exists", &img]),
        code(&["image", "exists", "localhost/nosuch:1"]),
        code(&["volume", "exists", "vol"]),
        code(&["volume", "exists", "nosuch"]),
    ];
    assert_eq!(
        berth_codes,
        vec![Some(0), Some(1), Some(0), Some(1), Some(0), Some(1)]
    );
    assert_eq!(code(&["network", "exists", "nosuch"]), Some(1));
    // The layer commit makes (docker-archive through a pipe).
    env.ok(&["commit", "diffbox", "localhost/dc:1"]);
    let saved = env
        .cmd()
        .args(["save", "localhost/dc:1"])
        .stdout(Stdio::piped())
        .output()
        .expect("save");
    assert!(saved.status.success());
    let berth_layer = top_layer(&saved.stdout);
    assert!(
        berth_layer.contains(&"etc/.wh.group".to_string()),
        "{berth_layer:?}"
    );

    let Some(p) = Podman::with_driver("overlay") else {
        eprintln!("SKIP: podman or runc missing: no differential half");
        return;
    };
    let tar = env.dir.path().join("rootfs.tar");
    let imp = p.run(&["import", tar.to_str().unwrap(), &img]);
    assert!(imp.status.success(), "podman import");
    let r = p.run_container(&["--name", "diffbox", &img, "sh", "-c", script]);
    if !r.status.success() {
        eprintln!("SKIP: podman cannot run containers here: {}", stderr(&r));
        return;
    }
    let pd = p.run(&["diff", "diffbox"]);
    assert_eq!(stdout(&pd), berth_diff, "diff differs from podman's");
    let ptar = env.dir.path().join("podman-export.tar");
    assert!(p
        .run(&["export", "-o", ptar.to_str().unwrap(), "diffbox"])
        .status
        .success());
    assert_eq!(
        listing(&ptar),
        blist,
        "export listing differs from podman's"
    );
    p.run(&["volume", "create", "vol"]);
    let pcode = |args: &[&str]| p.run(args).status.code();
    let podman_codes = vec![
        pcode(&["container", "exists", "diffbox"]),
        pcode(&["container", "exists", "nosuch"]),
        pcode(&["image", "exists", &img]),
        pcode(&["image", "exists", "localhost/nosuch:1"]),
        pcode(&["volume", "exists", "vol"]),
        pcode(&["volume", "exists", "nosuch"]),
    ];
    assert_eq!(podman_codes, berth_codes);
    assert!(p
        .run(&["commit", "diffbox", "localhost/dc:1"])
        .status
        .success());
    let parch = env.dir.path().join("podman-save.tar");
    assert!(p
        .run(&["save", "-o", parch.to_str().unwrap(), "localhost/dc:1"])
        .status
        .success());
    let podman_layer = top_layer(&std::fs::read(&parch).unwrap());
    assert_eq!(
        podman_layer, berth_layer,
        "the committed layer differs from podman's"
    );
}

fn events_json(env: &EngineEnv, args: &[&str]) -> Vec<serde_json::Value> {
    env.ok(args)
        .lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("{l}: {e}")))
        .collect()
}

#[test]
fn events_record_what_commands_did_and_filter_them() {
    require_root!();
    let env = EngineEnv::new();
    let img = env.busybox_image();
    assert_eq!(
        env.berth(&["run", "--name", "ev1", &img, "sh", "-c", "exit 3"])
            .status
            .code(),
        Some(3)
    );
    env.ok(&["volume", "create", "ev"]);
    env.ok(&["tag", &img, "localhost/evtag:1"]);
    env.ok(&["rm", "ev1"]);
    let all = events_json(
        &env,
        &[
            "events", "--since", "0", "--until", "0s", "--format", "json",
        ],
    );
    let actions: Vec<String> = all
        .iter()
        .map(|e| {
            format!(
                "{} {}",
                e["Type"].as_str().unwrap(),
                e["Action"].as_str().unwrap()
            )
        })
        .collect();
    for want in [
        "container create",
        "container start",
        "container die",
        "volume create",
        "image tag",
        "container destroy",
    ] {
        assert!(
            actions.iter().any(|a| a == want),
            "no {want} in {actions:?}"
        );
    }
    let die = events_json(
        &env,
        &[
            "events",
            "--since",
            "0",
            "--until",
            "0s",
            "--format",
            "json",
            "--filter",
            "event=die",
            "--filter",
            "container=ev1",
        ],
    );
    assert_eq!(die.len(), 1, "{die:?}");
    assert_eq!(die[0]["Actor"]["Attributes"]["exitCode"], "3");
    assert_eq!(die[0]["Actor"]["Attributes"]["name"], "ev1");
    let plain = env.ok(&[
        "events",
        "--since",
        "0",
        "--until",
        "0s",
        "--filter",
        "type=volume",
    ]);
    assert_eq!(plain.lines().count(), 1, "{plain}");
    assert!(plain.contains(" volume create ev"), "{plain}");
    // --until in the past: none of the later events.
    let none = env.ok(&["events", "--since", "0", "--until", "1"]);
    assert!(none.is_empty(), "{none}");
    fails_with(
        &env.berth(&["events", "--filter", "bogus=1", "--until", "0s"]),
        "bogus=1",
    );
    fails_with(&env.berth(&["events", "--since", "yesterday"]), "--since");

    // Without --until: a stream of new events while commands run.
    let mut follower = env
        .cmd()
        .args(["events", "--format", "json", "--filter", "event=start"])
        .stdout(Stdio::piped())
        .spawn()
        .expect("events");
    std::thread::sleep(Duration::from_millis(500));
    env.ok(&["run", "--rm", "--name", "ev2", &img, "true"]);
    let mut out = follower.stdout.take().expect("stdout");
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let mut buf = [0u8; 4096];
        let n = out.read(&mut buf).unwrap_or(0);
        let _ = tx.send(String::from_utf8_lossy(&buf[..n]).into_owned());
    });
    let got = rx.recv_timeout(Duration::from_secs(20));
    let _ = follower.kill();
    let _ = follower.wait();
    let got = got.expect("a streamed event");
    let ev: serde_json::Value = serde_json::from_str(got.lines().next().unwrap()).unwrap();
    assert_eq!(ev["Action"], "start");
    assert_eq!(ev["Actor"]["Attributes"]["name"], "ev2");
}

#[test]
fn top_runs_the_hosts_ps_on_the_containers_processes() {
    require_root!();
    let env = EngineEnv::new();
    let img = env.busybox_image();
    env.ok(&["run", "-d", "--name", "t", &img, "sleep", "101"]);
    let pid = env.inspect("t")["State"]["Pid"]
        .as_i64()
        .unwrap()
        .to_string();
    let out = env.ok(&["top", "t", "-eo", "pid,comm"]);
    let lines: Vec<&str> = out.lines().collect();
    assert_eq!(
        lines[0].split_whitespace().collect::<Vec<_>>(),
        ["PID", "COMMAND"]
    );
    assert_eq!(lines.len(), 2, "only the container's process: {out}");
    assert_eq!(
        lines[1].split_whitespace().collect::<Vec<_>>(),
        [pid.as_str(), "sleep"]
    );
    let aux = env.ok(&["top", "t", "aux"]);
    assert!(aux.lines().next().unwrap().contains("%CPU"), "{aux}");
    assert_eq!(aux.lines().count(), 2, "{aux}");
    assert!(aux.contains("sleep 101"), "{aux}");
    // The default stays PID and command.
    assert!(env.ok(&["top", "t"]).contains("sleep 101"));
    fails_with(&env.berth(&["top", "t", "-eo", "comm"]), "no PID column");
}

#[test]
fn logs_of_several_containers_are_prefixed_and_until_limits() {
    require_root!();
    let env = EngineEnv::new();
    let img = env.busybox_image();
    // Detached: the monitor keeps the log.
    env.ok(&["run", "-d", "--name", "l1", &img, "echo", "from-one"]);
    env.ok(&["run", "-d", "--name", "l2", &img, "echo", "from-two"]);
    env.ok(&["wait", "l1", "l2"]);
    let (id1, id2) = (id_of(&env, "l1"), id_of(&env, "l2"));
    let out = env.ok(&["logs", "l1", "l2"]);
    assert_eq!(
        out,
        format!("{} from-one\n{} from-two\n", &id1[..12], &id2[..12])
    );
    let named = env.ok(&["logs", "--names", "l1", "l2"]);
    assert_eq!(named, "l1 from-one\nl2 from-two\n");
    // One container: no prefix, as before.
    assert_eq!(env.ok(&["logs", "l1"]), "from-one\n");
    assert_eq!(env.ok(&["logs", "--until", "1", "l1"]), "");
    assert_eq!(env.ok(&["logs", "--until", "0s", "l1"]), "from-one\n");
    fails_with(&env.berth(&["logs", "--until", "never", "l1"]), "--until");
}

#[test]
fn search_says_when_a_registry_has_no_search_api() {
    require_root!();
    let env = EngineEnv::new();
    let Some(reg) = Registry::start_in(&env) else {
        eprintln!("SKIP: docker-registry is not installed");
        return;
    };
    let term = format!("127.0.0.1:{}/busybox", reg.port);
    let o = env.berth(&["search", &term]);
    fails_with(&o, "has no search API");
    assert!(stdout(&o).is_empty());
}

#[test]
fn save_and_export_refuse_a_terminal() {
    require_root!();
    let env = EngineEnv::new();
    let img = env.busybox_image();
    // `script` gives berth a pty as standard output.
    if Command::new("script").arg("--version").output().is_err() {
        eprintln!("SKIP: script(1) missing");
        return;
    }
    let mut line = format!("{} ", berth_bin().display());
    for a in [
        "--root".to_string(),
        env.root().display().to_string(),
        "--runroot".into(),
        env.runroot().display().to_string(),
        "--cgroup-parent".into(),
        env.cgroup_parent.clone(),
        "save".into(),
        img.clone(),
    ] {
        line.push_str(&format!("'{a}' "));
    }
    let typescript: PathBuf = env.dir.path().join("typescript");
    let o = Command::new("script")
        .args(["-qec", &line])
        .arg(&typescript)
        .stdin(Stdio::null())
        .output()
        .expect("script");
    let text = String::from_utf8_lossy(&o.stdout).into_owned();
    assert!(!o.status.success(), "save to a terminal succeeded: {text}");
    assert!(
        text.contains("refusing to write an archive to a terminal"),
        "{text}"
    );
}

/// Runs `cmd` with stdout and stderr piped and says how long it took until
/// both pipes closed (every holder of their write ends gone), or `None`
/// past `limit`.
fn pipes_close_within(mut cmd: Command, limit: Duration) -> Option<Duration> {
    let t0 = Instant::now();
    let mut child = cmd
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn");
    let (tx, rx) = std::sync::mpsc::channel();
    for mut pipe in [
        Box::new(child.stdout.take().unwrap()) as Box<dyn Read + Send>,
        Box::new(child.stderr.take().unwrap()),
    ] {
        let tx = tx.clone();
        std::thread::spawn(move || {
            let mut text = Vec::new();
            let _ = pipe.read_to_end(&mut text);
            let _ = tx.send(String::from_utf8_lossy(&text).into_owned());
        });
    }
    let mut closed = Vec::new();
    while closed.len() < 2 {
        match rx.recv_timeout(limit.saturating_sub(t0.elapsed())) {
            Ok(text) => closed.push(text),
            Err(_) => break,
        }
    }
    let status = child.wait().expect("wait");
    eprintln!("{cmd:?} -> {status}, output {closed:?}");
    (closed.len() == 2).then(|| t0.elapsed())
}

#[test]
fn exec_detach_does_not_hold_the_callers_pipes() {
    require_root!();
    let env = EngineEnv::new();
    let img = env.busybox_image();
    env.ok(&["run", "-d", "--name", "xd", &img, "sleep", "1000"]);
    // `berth exec -d xd sleep 1000 | cat` must end at once, as with podman;
    // the bound is generous for a loaded machine, the child sleeps longer.
    let limit = Duration::from_secs(60);
    let mut cmd = env.cmd();
    cmd.args(["exec", "-d", "xd", "sleep", "1000"]);
    let took = pipes_close_within(cmd, limit);
    assert!(
        took.is_some(),
        "berth exec -d kept the caller's stdout/stderr open past {limit:?}"
    );
    // The detached process still runs.
    let top = env.ok(&["top", "xd"]);
    assert_eq!(top.matches("sleep 1000").count(), 2, "{top}");

    let Some(p) = Podman::with_driver("overlay") else {
        eprintln!("SKIP: podman or runc missing: no differential half");
        return;
    };
    let tar = env.dir.path().join("rootfs-xd.tar");
    env.ok(&["export", "-o", tar.to_str().unwrap(), "xd"]);
    assert!(p
        .run(&["import", tar.to_str().unwrap(), &img])
        .status
        .success());
    let in_ns = |args: &[&str]| {
        let mut cmd = p.cmd_without_cgroup2();
        cmd.args(args);
        cmd
    };
    let r = p.run_container(&["-d", "--name", "xd", &img, "sleep", "1000"]);
    if !r.status.success() {
        eprintln!("SKIP: podman cannot run containers here: {}", stderr(&r));
        return;
    }
    let podman_took = pipes_close_within(in_ns(&["exec", "-d", "xd", "sleep", "1000"]), limit);
    assert!(
        podman_took.is_some(),
        "podman exec -d is expected to close the pipes at once"
    );
    let top = in_ns(&["top", "xd", "args"]).output().expect("podman top");
    let top = String::from_utf8_lossy(&top.stdout);
    assert_eq!(top.matches("sleep 1000").count(), 2, "podman: {top}");
}
