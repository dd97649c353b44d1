//! `--format` of the engine's commands, continued from engine_format.rs:
//! `ps` filters (labels, status, addresses of stopped containers) and the
//! templates of `events`, `diff`, `search` and `system df`.

mod common;
mod format_support;

use common::{stderr, unique, EngineEnv};
use format_support::two_containers;
use serde_json::Value;

/// `ps` filters as Docker's: values of one key are alternatives, labels
/// must all match, `status=` lists stopped containers without `-a`;
/// `{{.Label "k"}}` in rows; Docker's `Up Less than a second`; no address
/// in `inspect` once a container stopped.
#[test]
fn ps_filters_label_method_and_stopped_addresses() {
    require_root!();
    let env = EngineEnv::new();
    let img = env.busybox_image();
    let (web, ex) = two_containers(&env, &img);
    let vv = unique("fvv");
    let vol = unique("fvol");
    env.ok(&[
        "create",
        "--name",
        &vv,
        "-v",
        &format!("{vol}:/data"),
        &img,
        "true",
    ]);
    let names = |filters: &[&str]| -> Vec<String> {
        let mut args = vec!["ps", "--format", "{{.Names}}"];
        for f in filters {
            if f.starts_with('-') {
                args.push(f);
            } else {
                args.extend(["--filter", f]);
            }
        }
        let mut v: Vec<String> = env.ok(&args).lines().map(str::to_string).collect();
        v.sort();
        v
    };
    let sorted = |mut v: Vec<&String>| -> Vec<String> {
        v.sort();
        v.into_iter().cloned().collect()
    };
    // A status implies -a (Docker); two statuses are alternatives.
    assert_eq!(names(&["status=exited"]), vec![ex.clone()]);
    assert_eq!(
        names(&["status=exited", "status=running"]),
        sorted(vec![&web, &ex])
    );
    assert_eq!(names(&["status=created"]), vec![vv.clone()]);
    assert_eq!(names(&["-a", "exited=3"]), vec![ex.clone()]);
    assert!(names(&["-a", "exited=0"]).is_empty());
    // Labels must all match.
    assert_eq!(names(&["label=a=1", "label=b=2"]), vec![web.clone()]);
    assert!(names(&["label=a=1", "label=b=3"]).is_empty());
    // Creation order: web, ex, vv.
    assert_eq!(names(&["-a", &format!("before={ex}")]), vec![web.clone()]);
    assert_eq!(
        names(&["-a", &format!("since={web}")]),
        sorted(vec![&ex, &vv])
    );
    // name= is a regular expression, with or without Docker's slash.
    assert_eq!(names(&["-a", "name=^fex"]), vec![ex.clone()]);
    assert_eq!(names(&["-a", "name=^/fex"]), vec![ex.clone()]);
    assert_eq!(names(&["-a", &format!("volume={vol}")]), vec![vv.clone()]);
    assert_eq!(names(&["-a", "volume=/data"]), vec![vv.clone()]);
    assert_eq!(names(&["network=berth"]), vec![web.clone()]);
    assert!(names(&["-a", "network=nope"]).is_empty());
    assert_eq!(names(&["-a", "health=none"]).len(), 3);
    assert!(names(&["-a", "health=healthy"]).is_empty());
    assert_eq!(
        names(&["-a", &format!("ancestor={img}"), "id=nope"]),
        Vec::<String>::new()
    );
    for bad in [
        "bogus=1",
        "status=sleeping",
        "exited=x",
        "name=(",
        "before=nope",
    ] {
        let o = env.berth(&["ps", "--filter", bad]);
        assert!(!o.status.success(), "{bad} refused");
        assert!(stderr(&o).contains(bad), "{bad}: {}", stderr(&o));
    }
    // Docker's method with an argument.
    assert_eq!(
        env.ok(&[
            "ps",
            "--format",
            "{{.Names}} {{.Label \"a\"}}{{.Label \"b\"}}{{.Label \"zz\"}}"
        ]),
        format!("{web} 12\n")
    );
    // Docker's HumanDuration: a capital L, and "Up N seconds" after.
    let fresh = unique("ffresh");
    env.ok(&["run", "-d", "--name", &fresh, &img, "sleep", "1000"]);
    let st = env.ok(&[
        "ps",
        "--filter",
        &format!("name={fresh}"),
        "--format",
        "{{.Status}}|{{.RunningFor}}",
    ]);
    assert!(
        st.starts_with("Up Less than a second|")
            || st.starts_with("Up 1 second|")
            || st.starts_with("Up 2 seconds|"),
        "{st}"
    );
    assert!(!st.contains("less than"), "{st}");
    // Stopped: no address, no published ports (Docker clears them).
    assert_eq!(
        env.ok(&["inspect", "-f", "{{.NetworkSettings.IPAddress}}|{{range $n, $e := .NetworkSettings.Networks}}{{$n}}={{$e.IPAddress}}{{end}}|{{len .NetworkSettings.Ports}}", &ex]),
        "|berth=|0\n"
    );
    let up = env.ok(&["inspect", "-f", "{{.NetworkSettings.IPAddress}}", &web]);
    assert!(up.trim().contains('.'), "{up}");
    env.ok(&["stop", "-t", "0", &web]);
    assert_eq!(
        env.ok(&[
            "inspect",
            "-f",
            "{{.NetworkSettings.IPAddress}}|{{len .NetworkSettings.Ports}}",
            &web
        ]),
        "|0\n"
    );
}

/// `events`, `diff`, `search` and `system df` take Go templates.
#[test]
fn events_diff_search_and_df_templates() {
    require_root!();
    let env = EngineEnv::new();
    let img = env.busybox_image();
    let name = unique("fev");
    env.ok(&[
        "run",
        "--name",
        &name,
        &img,
        "sh",
        "-c",
        "mkdir /new; echo x > /new/f; rm /bin/ls",
    ]);
    // Docker's event message fields.
    let ev = env.ok(&[
        "events",
        "--since",
        "0",
        "--until",
        "0s",
        "--filter",
        &format!("container={name}"),
        "--format",
        "{{.Type}} {{.Action}} {{.Actor.Attributes.name}} {{.Status}} {{.From}} {{if eq .ID .Actor.ID}}same{{end}} {{len .Actor.ID}}",
    ]);
    let lines: Vec<&str> = ev.lines().collect();
    assert!(lines.len() >= 3, "{ev}");
    assert_eq!(
        lines[0],
        format!("container create {name} create {img} same 64")
    );
    assert!(
        lines.contains(&format!("container start {name} start {img} same 64").as_str()),
        "{ev}"
    );
    assert!(
        lines.iter().any(|l| l.starts_with("container die ")),
        "{ev}"
    );
    // .Time is seconds, .TimeNano nanoseconds; `{{json .}}` is the JSON.
    let t = env.ok(&[
        "events",
        "--since",
        "0",
        "--until",
        "0s",
        "--filter",
        "event=create",
        "--format",
        "{{.Time}} {{.TimeNano}} {{.Scope}}",
    ]);
    let w: Vec<&str> = t.lines().next().expect("an event").split(' ').collect();
    let (s, ns): (i64, i64) = (w[0].parse().unwrap(), w[1].parse().unwrap());
    assert_eq!(s, ns / 1_000_000_000, "{t}");
    assert_eq!(w[2], "local");
    let j = env.ok(&[
        "events",
        "--since",
        "0",
        "--until",
        "0s",
        "--filter",
        "event=create",
        "--format",
        "{{json .}}",
    ]);
    let v: Value = serde_json::from_str(j.lines().next().unwrap()).expect("json");
    assert_eq!(v["Action"], "create");
    // A field events do not have, and a broken template, fail clearly.
    let o = env.berth(&[
        "events",
        "--since",
        "0",
        "--until",
        "0s",
        "--format",
        "{{.Nope}}",
    ]);
    assert!(!o.status.success());
    assert!(
        stderr(&o).contains("can't evaluate field Nope"),
        "{}",
        stderr(&o)
    );
    let o = env.berth(&[
        "events", "--since", "0", "--until", "0s", "--format", "{{.Type",
    ]);
    assert!(!o.status.success());
    assert!(
        stderr(&o).contains("invalid --format template"),
        "{}",
        stderr(&o)
    );

    // diff: .Kind and .Path, and a table with headers.
    let d = env.ok(&["diff", "--format", "{{.Kind}}:{{.Path}}", &name]);
    for want in ["A:/new", "A:/new/f", "C:/bin", "D:/bin/ls"] {
        assert!(d.lines().any(|l| l == want), "{want} in {d}");
    }
    let t = env.ok(&["diff", "--format", "table {{.Kind}}\\t{{.Path}}", &name]);
    assert!(t.starts_with("CHANGE TYPE   PATH\n"), "{t}");
    assert!(t.contains("\nA             /new\n"), "{t}");

    // system df: Docker's row fields.
    assert_eq!(
        env.ok(&["system", "df", "--format", "{{.Type}} {{.TotalCount}}"]),
        "Images 1\n"
    );

    // search, against a registry that has Docker Hub's /v1/search.
    let listener =
        berth_network::netns::run_in(&env.netns, || std::net::TcpListener::bind("127.0.0.1:0"))
            .expect("enter the test's namespace")
            .expect("listen");
    let port = listener.local_addr().unwrap().port();
    std::thread::spawn(move || fake_search_registry(listener));
    let term = format!("127.0.0.1:{port}/busy");
    assert_eq!(
        env.ok(&[
            "search",
            "--format",
            "{{.Name}}|{{.StarCount}}|{{.IsOfficial}}|{{.IsAutomated}}|{{.Description}}",
            &term
        ]),
        format!(
            "127.0.0.1:{port}/busybox|42|[OK]||Busybox base image.\n\
             127.0.0.1:{port}/other/busy|0|||{}…\n",
            "x".repeat(44)
        )
    );
    let t = env.ok(&[
        "search",
        "--format",
        "table {{.Name}}\\t{{.StarCount}}",
        &term,
    ]);
    assert!(t.starts_with("NAME "), "{t}");
    assert!(t.lines().next().unwrap().ends_with("STARS"), "{t}");
    let full = env.ok(&[
        "search",
        "--no-trunc",
        "--format",
        "{{.Description}}",
        &term,
    ]);
    assert!(full.contains(&"x".repeat(60)), "{full}");
}

/// Answers `GET /v2/` and `GET /v1/search` (Docker Hub's search API) over
/// plain HTTP; a TLS hello is dropped so the client falls back to HTTP.
fn fake_search_registry(l: std::net::TcpListener) {
    use std::io::{Read, Write};
    for conn in l.incoming() {
        let Ok(mut c) = conn else { return };
        let mut buf = Vec::new();
        let mut chunk = [0u8; 4096];
        while !buf.windows(4).any(|w| w == b"\r\n\r\n") {
            match c.read(&mut chunk) {
                Ok(0) | Err(_) => break,
                Ok(n) => buf.extend_from_slice(&chunk[..n]),
            }
            if buf.first() == Some(&0x16) {
                break;
            }
        }
        if buf.first() != Some(&b'G') {
            continue;
        }
        let req = String::from_utf8_lossy(&buf);
        let body = if req.starts_with("GET /v1/search") {
            serde_json::json!({"num_results": 2, "results": [
                {"name": "busybox", "description": "Busybox base image.", "star_count": 42, "is_official": true, "is_automated": false},
                {"name": "other/busy", "description": "x".repeat(60), "star_count": 0, "is_official": false, "is_automated": false},
            ]})
            .to_string()
        } else {
            "{}".to_string()
        };
        let _ = write!(
            c,
            "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
            body.len()
        );
    }
}
