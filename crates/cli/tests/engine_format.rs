//! `--format` of the engine's commands, seen from outside: Go templates
//! (`{{.State.Pid}}`, `{{json .Config.Cmd}}`, `range`, `index`, `join`,
//! ...), `table` forms with Docker's headers and column alignment, `ps
//! -l/-n/-s` and its PORTS column, `stats` columns, `history`, and a
//! differential run of the same templates through podman.

mod common;
mod format_support;

use common::podman::Podman;
use common::{stderr, unique, EngineEnv};
use format_support::{column, header_columns, two_containers};
use serde_json::Value;

#[test]
fn ps_templates_tables_ports_and_limits() {
    require_root!();
    let env = EngineEnv::new();
    let img = env.busybox_image();
    let (web, ex) = two_containers(&env, &img);

    // A template, one line per running container.
    assert_eq!(
        env.ok(&[
            "ps",
            "--format",
            "{{.Names}}|{{.State}}|{{.Labels}}|{{.Image}}"
        ]),
        format!("{web}|running|a=1,b=2|{img}\n")
    );
    // `table`: Docker's header names, columns aligned as its tabwriter
    // (at least 10 wide, 3 spaces of padding).
    let t = env.ok(&[
        "ps",
        "-a",
        "--format",
        "table {{.ID}}\\t{{.Names}}\\t{{.State}}",
    ]);
    let lines: Vec<&str> = t.lines().collect();
    assert_eq!(lines.len(), 3, "{t}");
    assert!(lines[0].starts_with("CONTAINER ID   NAMES"), "{t}");
    let names_at = column(&t, "NAMES");
    let state_at = column(&t, "STATE");
    for l in &lines[1..] {
        assert_eq!(
            l.find(&web).or(l.find(&ex)),
            Some(names_at),
            "NAMES column aligned: {t}"
        );
        assert!(
            l[state_at..].starts_with("running") || l[state_at..].starts_with("exited"),
            "STATE column aligned: {t}"
        );
    }
    // Newest first; -l is the latest (of any state), -n N the N latest.
    assert_eq!(
        env.ok(&["ps", "-l", "--format", "{{.Names}}"]),
        format!("{ex}\n")
    );
    assert_eq!(
        env.ok(&["ps", "-n", "2", "--format", "{{.Names}}"]),
        format!("{ex}\n{web}\n")
    );
    assert_eq!(env.ok(&["ps", "-n", "1", "-q"]).lines().count(), 1);
    // The default table has Docker's columns, PORTS included.
    let def = env.ok(&["ps"]);
    assert!(
        def.starts_with("CONTAINER ID   IMAGE            COMMAND        CREATED")
            || def.lines().next().is_some_and(|h| {
                let cols = header_columns(h);
                cols == [
                    "CONTAINER ID",
                    "IMAGE",
                    "COMMAND",
                    "CREATED",
                    "STATUS",
                    "PORTS",
                    "NAMES",
                ]
            }),
        "{def}"
    );
    assert!(def.contains("0.0.0.0:18080->80/tcp"), "{def}");
    assert!(
        def.contains("\"sleep 1000\""),
        "Docker quotes COMMAND: {def}"
    );
    // -s: the writable layer's size and the virtual size with the image's.
    let sizes = env.ok(&["ps", "-a", "-s", "--format", "{{.Names}} {{.Size}}"]);
    assert!(
        sizes.contains(&format!("{ex} 3B (virtual ")),
        "the exited container wrote 3 bytes: {sizes}"
    );
    let header = env.ok(&["ps", "-s"]);
    assert!(
        header.lines().next().is_some_and(|h| h.ends_with("SIZE")),
        "{header}"
    );
    // Full IDs with --no-trunc, 12 digits without.
    let ids = env.ok(&["ps", "-a", "--no-trunc", "--format", "{{.ID}}"]);
    assert!(ids.lines().all(|l| l.len() == 64), "{ids}");
    let ids = env.ok(&["ps", "-a", "--format", "{{.ID}}"]);
    assert!(ids.lines().all(|l| l.len() == 12), "{ids}");
    // `--format json` keeps its podman-shaped schema, with Ports.
    let v: Value = serde_json::from_str(&env.ok(&["ps", "--format", "json"])).expect("json");
    assert_eq!(v[0]["Names"][0], web.as_str());
    assert_eq!(v[0]["Ports"][0]["host_port"], 18080, "{v}");
    assert_eq!(v[0]["Ports"][0]["container_port"], 80, "{v}");
    // .Mounts names the volumes (and bind sources), .Networks the networks.
    let m = unique("fmnt");
    let vol = unique("fvol");
    env.ok(&[
        "run",
        "-d",
        "--name",
        &m,
        "-v",
        &format!("{vol}:/data"),
        &img,
        "sleep",
        "1000",
    ]);
    assert_eq!(
        env.ok(&[
            "ps",
            "--filter",
            &format!("name={m}"),
            "--format",
            "{{.Mounts}} {{.LocalVolumes}} {{.Networks}}"
        ]),
        format!("{vol} 1 berth\n")
    );
}

#[test]
fn inspect_templates_find_every_kind() {
    require_root!();
    let env = EngineEnv::new();
    let img = env.busybox_image();
    let (web, ex) = two_containers(&env, &img);
    let doc = env.inspect(&web);
    let pid = doc["State"]["Pid"].as_i64().expect("pid");
    assert!(pid > 0);
    let out = env.ok(&[
        "inspect",
        "-f",
        "{{.Name}}|{{.State.Pid}}|{{.State.Running}}|{{json .Config.Cmd}}|{{.Config.Cmd}}|{{range $k, $v := .Config.Labels}}{{$k}}={{$v}};{{end}}|{{index .Config.Labels \"a\"}}|{{len .Config.Labels}}",
        &web,
    ]);
    assert_eq!(
        out,
        format!("/{web}|{pid}|true|[\"sleep\",\"1000\"]|[sleep 1000]|a=1;b=2;|1|2\n")
    );
    // Several containers: one line each; if/else, printf, join, upper.
    let out = env.ok(&[
        "inspect",
        "--format",
        "{{if .State.Running}}up{{else}}{{printf \"down(%d)\" .State.ExitCode}}{{end}} {{upper .State.Status}} {{join .Config.Cmd \",\"}}",
        &web,
        &ex,
    ]);
    assert_eq!(
        out,
        "up RUNNING sleep,1000\ndown(3) EXITED sh,-c,echo hi > /tmp/f; exit 3\n"
    );
    let env_vars = env.ok(&["inspect", "-f", "{{.Config.Env}}", &web]);
    assert!(
        env_vars.starts_with('[') && env_vars.contains("PATH="),
        "{env_vars}"
    );
    assert_eq!(
        env.ok(&["inspect", "-f", "{{.NetworkSettings.IPAddress}}", &web])
            .trim(),
        doc["NetworkSettings"]["IPAddress"].as_str().expect("ip")
    );
    assert!(!doc["NetworkSettings"]["IPAddress"]
        .as_str()
        .unwrap()
        .is_empty());
    assert_eq!(
        env.ok(&[
            "inspect",
            "-f",
            "{{(index (index .HostConfig.PortBindings \"80/tcp\") 0).HostPort}}",
            &web
        ]),
        "18080\n"
    );
    // Docker's field names in the JSON.
    for (path, want) in [
        (&["State", "Status"][..], Value::from("running")),
        (&["State", "OOMKilled"][..], Value::from(false)),
        (&["Config", "Image"][..], Value::from(img.as_str())),
        (&["HostConfig", "NetworkMode"][..], Value::from("berth")),
        (&["Driver"][..], Value::from("overlay")),
    ] {
        let got = path.iter().fold(&doc, |v, k| &v[*k]);
        assert_eq!(got, &want, "{path:?} in {doc}");
    }
    assert!(
        doc["NetworkSettings"]["Networks"]["berth"].is_object(),
        "{doc}"
    );
    assert!(doc["Mounts"].is_array(), "{doc}");
    // No container by that name: the image, then a volume, a network.
    let vol = unique("fvol");
    env.ok(&["volume", "create", &vol]);
    assert_eq!(
        env.ok(&["inspect", "-f", "{{.Os}}/{{.Architecture}}", &img]),
        format!("linux/{}\n", go_arch())
    );
    assert_eq!(
        env.ok(&["inspect", "-f", "{{.Name}} {{.Driver}}", &vol]),
        format!("{vol} local\n")
    );
    assert_eq!(
        env.ok(&["inspect", "-f", "{{.Name}} {{.Driver}}", "berth"]),
        "berth bridge\n"
    );
    assert_eq!(
        env.ok(&[
            "inspect",
            "--type",
            "image",
            "-f",
            "{{len .RootFS.Layers}} {{.RootFS.Type}}",
            &img
        ]),
        "1 layers\n"
    );
    // --type container does not fall back; a missing name fails with 1.
    let o = env.berth(&["inspect", "--type", "container", &img]);
    assert_eq!(o.status.code(), Some(1));
    assert!(stderr(&o).contains("no such container"), "{}", stderr(&o));
    let o = env.berth(&["inspect", &web, "nosuch-object"]);
    assert_eq!(o.status.code(), Some(1));
    let v: Value = serde_json::from_slice(&o.stdout).expect("found ones still printed");
    assert_eq!(v.as_array().map(Vec::len), Some(1));
    // -s adds the sizes.
    let v: Value = serde_json::from_str(&env.ok(&["inspect", "-s", &ex])).expect("json");
    assert_eq!(v[0]["SizeRw"], 3, "{}", v[0]);
    assert!(v[0]["SizeRootFs"].as_u64().unwrap_or(0) > 3);
    // A template error names the field, and nothing is half printed.
    let o = env.berth(&["inspect", "-f", "{{.State.Nope}}", &web]);
    assert!(!o.status.success());
    assert!(
        stderr(&o).contains("can't evaluate field Nope"),
        "{}",
        stderr(&o)
    );
    let o = env.berth(&["ps", "--format", "{{.Names"]);
    assert!(!o.status.success());
    assert!(stderr(&o).contains("unclosed action"), "{}", stderr(&o));
}

fn go_arch() -> &'static str {
    match std::env::consts::ARCH {
        "x86_64" => "amd64",
        "aarch64" => "arm64",
        a => a,
    }
}

#[test]
fn images_history_version_info_formats() {
    require_root!();
    let env = EngineEnv::new();
    let img = env.busybox_image();
    assert_eq!(
        env.ok(&["images", "--format", "{{.Repository}}:{{.Tag}}"]),
        format!("{img}\n")
    );
    let t = env.ok(&[
        "images",
        "--format",
        "table {{.Repository}}\\t{{.Tag}}\\t{{.Size}}",
    ]);
    assert!(t.starts_with("REPOSITORY     TAG       SIZE\n"), "{t}");
    let def = env.ok(&["images"]);
    let cols = header_columns(&def);
    assert_eq!(
        cols,
        ["REPOSITORY", "TAG", "IMAGE ID", "CREATED", "SIZE"],
        "{def}"
    );
    let id = env.ok(&["images", "-q"]).trim().to_string();
    assert_eq!(
        env.ok(&["images", "--no-trunc", "--format", "{{.ID}}"])
            .trim()
            .len(),
        "sha256:".len() + 64
    );
    assert_eq!(
        env.ok(&[
            "image",
            "inspect",
            "-f",
            "{{.RepoTags}} {{json .Config.Cmd}} {{.Os}}",
            &img
        ]),
        format!("[{img}] [\"/bin/sh\"] linux\n")
    );

    // history: the import's one layer, as a table, a template, -q.
    let h = env.ok(&["history", &img]);
    let cols = header_columns(&h);
    assert_eq!(
        cols,
        ["IMAGE", "CREATED", "CREATED BY", "SIZE", "COMMENT"],
        "{h}"
    );
    assert_eq!(h.lines().count(), 2, "{h}");
    assert_eq!(env.ok(&["history", "-q", &img]), format!("{id}\n"));
    let by = env.ok(&["image", "history", "--format", "{{.ID}}|{{.Size}}", &img]);
    let (hid, size) = by.trim().split_once('|').expect("two fields");
    assert_eq!(hid, id);
    assert!(size.ends_with("MB") || size.ends_with("kB"), "{by}");
    assert!(env
        .ok(&["history", "--no-trunc", "--format", "{{.ID}}", &img])
        .starts_with("sha256:"));

    // version and info: Docker's and podman's field names.
    assert_eq!(
        env.ok(&["version", "--format", "{{.Client.Version}} {{.Client.Os}}"]),
        format!("{} linux\n", env!("CARGO_PKG_VERSION"))
    );
    let kernel = std::fs::read_to_string("/proc/sys/kernel/osrelease").expect("osrelease");
    assert_eq!(
        env.ok(&[
            "info",
            "--format",
            "{{.Host.Kernel}}|{{.KernelVersion}}|{{.Images}}|{{.Containers}}"
        ]),
        format!("{k}|{k}|1|0\n", k = kernel.trim())
    );
    let v: Value = serde_json::from_str(&env.ok(&["version", "--format", "json"])).expect("json");
    assert_eq!(v["Client"]["Version"], env!("CARGO_PKG_VERSION"));
}

#[test]
fn volume_network_and_stats_formats() {
    require_root!();
    let env = EngineEnv::new();
    let img = env.busybox_image();
    let vol = unique("fvol");
    env.ok(&["volume", "create", "--label", "x=y", &vol]);
    assert_eq!(
        env.ok(&[
            "volume",
            "ls",
            "--format",
            "{{.Name}}:{{.Driver}}:{{.Labels}}"
        ]),
        format!("{vol}:local:x=y\n")
    );
    let t = env.ok(&["volume", "ls", "--format", "table {{.Name}}\\t{{.Driver}}"]);
    assert!(t.starts_with("VOLUME NAME"), "{t}");
    assert_eq!(
        env.ok(&[
            "volume",
            "inspect",
            "-f",
            "{{.Scope}} {{.Labels}} {{index .Labels \"x\"}}",
            &vol
        ]),
        "local map[x:y] y\n"
    );
    let net = unique("fnet");
    env.ok(&["network", "create", "--subnet", "10.97.0.0/24", &net]);
    assert_eq!(
        env.ok(&[
            "network",
            "inspect",
            "-f",
            "{{range .IPAM.Config}}{{.Subnet}} {{.Gateway}}{{end}} {{.Scope}}",
            &net
        ]),
        "10.97.0.0/24 10.97.0.1 local\n"
    );
    let t = env.ok(&["network", "ls", "--format", "table {{.Name}}\\t{{.Driver}}"]);
    assert!(t.starts_with("NAME"), "{t}");
    assert!(t.contains(&format!("{net} ")), "{t}");

    let name = unique("fst");
    env.ok(&["run", "-d", "--name", &name, &img, "sleep", "1000"]);
    let s = env.ok(&["stats", "--no-stream"]);
    let cols = header_columns(&s);
    assert_eq!(
        cols,
        [
            "CONTAINER ID",
            "NAME",
            "CPU %",
            "MEM USAGE / LIMIT",
            "MEM %",
            "NET I/O",
            "BLOCK I/O",
            "PIDS"
        ],
        "{s}"
    );
    let row = env.ok(&[
        "stats",
        "--no-stream",
        "--format",
        "{{.Name}}|{{.PIDs}}|{{.CPUPerc}}|{{.MemUsage}}",
        &name,
    ]);
    let f: Vec<&str> = row.trim().split('|').collect();
    assert_eq!(f[..2], [name.as_str(), "1"], "{row}");
    assert!(f[2].ends_with('%'), "{row}");
    assert!(f[3].contains(" / ") && f[3].contains("iB"), "{row}");
}

/// The words of each line (tables are aligned differently: podman pads
/// with 2 spaces, Docker with 3 and a minimum width).
fn words(s: &str) -> Vec<Vec<String>> {
    s.lines()
        .map(|l| l.split_whitespace().map(String::from).collect())
        .collect()
}

fn sorted_lines(s: &str) -> Vec<String> {
    let mut v: Vec<String> = s.lines().map(String::from).collect();
    v.sort();
    v
}

/// The same `--format` commands through podman 4.3 and berth, on the same
/// busybox image and the same containers, where podman and Docker agree.
#[test]
fn templates_match_podman() {
    require_root!();
    let Some(p) = Podman::new() else {
        return;
    };
    let env = EngineEnv::new();
    let img = env.busybox_image();
    let tar = env.dir.path().join("rootfs.tar");
    assert!(tar.exists(), "busybox_image leaves {}", tar.display());
    let o = p.run(&[
        "import",
        "--change",
        "CMD [\"/bin/sh\"]",
        &tar.to_string_lossy(),
        &img,
    ]);
    assert!(o.status.success(), "podman import: {}", stderr(&o));

    // The same containers on both sides (no network: podman's has none).
    let web = unique("dweb");
    let ex = unique("dex");
    let cg = p.cgroup_parent.clone();
    let podman_run = |args: &[&str]| {
        let mut a = vec!["run", "--network", "none", "--cgroup-parent", cg.as_str()];
        a.extend_from_slice(args);
        p.run(&a)
    };
    let run_both = |args: &[&str]| {
        let po = podman_run(args);
        let mut a = vec!["run", "--network", "none"];
        a.extend_from_slice(args);
        let bo = env.berth(&a);
        assert_eq!(
            po.status.code(),
            bo.status.code(),
            "exit codes of run {args:?}"
        );
    };
    run_both(&[
        "-d", "--name", &web, "--label", "b=2", "--label", "a=1", &img, "sleep", "1000",
    ]);
    run_both(&["--name", &ex, &img, "sh", "-c", "echo hi > /tmp/f; exit 3"]);
    let vol = unique("dvol");
    for args in [
        &["volume", "create", "--label", "x=y", &vol][..],
        &["network", "create", "--subnet", "10.96.0.0/24", "dnet"][..],
    ] {
        assert!(p.run(args).status.success(), "podman {args:?}");
        env.ok(args);
    }

    // (args, how to compare)
    // Exact; the same lines in any order (podman lists containers
    // oldest first, Docker newest first); the same words on each line
    // (podman pads columns less); a table's header, then its rows in any
    // order.
    enum Cmp {
        Exact,
        Lines,
        Words,
        Table,
    }
    let f_inspect = "{{.State.Status}}|{{.State.Running}}|{{.State.ExitCode}}|{{.Path}}|{{.Args}}|{{.Config.Cmd}}|{{json .Config.Cmd}}|{{.Config.Image}}|{{index .Config.Labels \"a\"}}|{{len .Config.Labels}}|{{range $k, $v := .Config.Labels}}{{$k}}={{$v}};{{end}}|{{.NetworkSettings.IPAddress}}|{{.Config.Tty}}|{{.HostConfig.AutoRemove}}|{{if .State.Running}}up{{else}}down{{end}}|{{upper .State.Status}}|{{printf \"%s/%d\" .State.Status .State.ExitCode}}|{{join .Config.Cmd \"+\"}}|{{.Config.Labels}}|{{.HostConfig.PortBindings}}|{{printf \"%v\" .Config.Cmd}}";
    let cases: Vec<(Vec<&str>, Cmp)> = vec![
        (vec!["inspect", "--format", f_inspect, &web, &ex], Cmp::Exact),
        (vec!["container", "inspect", "-f", "{{.State.Status}} {{len .Config.Cmd}}", &ex], Cmp::Exact),
        // Without labels, podman's map is nil (`null`), Docker's empty (`{}`).
        (vec!["inspect", "-f", "{{json .Config.Labels}}", &web], Cmp::Exact),
        (vec!["ps", "-a", "--format", "{{.Names}} {{.Image}}"], Cmp::Lines),
        (vec!["ps", "--format", "{{.Names}}"], Cmp::Exact),
        (vec!["ps", "-l", "--format", "{{.Names}} {{.Image}}"], Cmp::Exact),
        (vec!["ps", "-a", "-n", "2", "--format", "{{.Names}}"], Cmp::Lines),
        (vec!["ps", "-a", "--format", "table {{.Names}}\\t{{.Image}}"], Cmp::Table),
        (vec!["images", "--format", "{{.Repository}}:{{.Tag}}"], Cmp::Exact),
        (vec!["images", "--format", "table {{.Repository}}\\t{{.Tag}}"], Cmp::Words),
        (vec!["image", "inspect", "--format", "{{.Os}} {{.Architecture}} {{.RepoTags}} {{json .Config.Cmd}} {{len .RootFS.Layers}} {{.RootFS.Type}}", &img], Cmp::Exact),
        (vec!["inspect", "--type", "image", "--format", "{{.Os}}", &img], Cmp::Exact),
        (vec!["volume", "ls", "--format", "{{.Name}} {{.Driver}}"], Cmp::Exact),
        (vec!["volume", "inspect", "--format", "{{.Name}} {{.Driver}} {{.Scope}} {{.Labels}} {{index .Labels \"x\"}}", &vol], Cmp::Exact),
        (vec!["inspect", "--format", "{{.Name}}", &vol], Cmp::Exact),
        (vec!["network", "inspect", "--format", "{{.Name}} {{.Driver}} {{.Internal}}", "dnet"], Cmp::Exact),
        (vec!["version", "--format", "{{.Client.Os}} {{.Client.OsArch}}"], Cmp::Exact),
        (vec!["info", "--format", "{{.Host.Kernel}} {{.Host.OS}} {{.Host.Arch}}"], Cmp::Exact),
        (vec!["stats", "--no-stream", "--format", "{{.Name}} {{.PIDs}}", &web], Cmp::Exact),
    ];
    let mut diffs = Vec::new();
    for (args, how) in &cases {
        let po = p.run(args);
        let bo = env.berth(args);
        let (ps, bs) = (
            String::from_utf8_lossy(&po.stdout).into_owned(),
            String::from_utf8_lossy(&bo.stdout).into_owned(),
        );
        let same = po.status.code() == bo.status.code()
            && match how {
                Cmp::Exact => ps == bs,
                Cmp::Lines => sorted_lines(&ps) == sorted_lines(&bs),
                Cmp::Words => words(&ps) == words(&bs),
                Cmp::Table => {
                    let (mut pw, mut bw) = (words(&ps), words(&bs));
                    for rows in [pw.get_mut(1..), bw.get_mut(1..)].into_iter().flatten() {
                        rows.sort();
                    }
                    pw == bw
                }
            };
        if !same {
            diffs.push(format!(
                "{args:?}:\n  podman ({:?}): {ps:?} {}\n  berth  ({:?}): {bs:?} {}",
                po.status.code(),
                stderr(&po).trim(),
                bo.status.code(),
                stderr(&bo).trim()
            ));
        }
    }
    assert!(
        diffs.is_empty(),
        "berth differs from podman:\n{}",
        diffs.join("\n")
    );
}
