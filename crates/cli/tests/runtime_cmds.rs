//! The informational commands: `state` (runtime.md "State",
//! schema/state-schema.json), `list`, `spec` and `features`
//! (features.md, schema/features-schema.json).

mod common;
use common::*;
use serde_json::Value;

#[test]
fn state_has_the_schema_keys_and_types() {
    require_root!();
    let env = Env::new();
    let b = env.bundle(&["sleep", "60"]);
    let id = env.id("state");
    let pid = env.create_pid(&b, &id);
    let st = env.state(&id);
    let obj = st.as_object().expect("state is an object");
    // state-schema.json: required ociVersion, id, status, bundle; pid and
    // annotations optional; nothing else is defined.
    for k in ["ociVersion", "id", "status", "bundle", "pid"] {
        assert!(obj.contains_key(k), "state lacks {k}: {st}");
    }
    assert_eq!(st["id"], id.as_str());
    assert_eq!(st["pid"], pid);
    assert!(
        st["ociVersion"]
            .as_str()
            .is_some_and(|v| v.starts_with("1.")),
        "{st}"
    );
    let bundle = std::fs::canonicalize(b.path()).expect("canonical bundle");
    assert_eq!(
        st["bundle"],
        bundle.to_str().expect("utf-8"),
        "bundle is the absolute path"
    );
    assert_eq!(st["status"], "created");
    if let Some(a) = obj.get("annotations") {
        assert!(a.is_object() || a.is_null(), "{st}");
    }
    ok(&env.rt_out(&["start", &id]));
    assert_eq!(env.state(&id)["status"], "running");
    ok(&env.rt_out(&["kill", &id, "KILL"]));
    assert!(env.wait_status(&id, "stopped"));
    let o = env.rt_out(&["state", "no-such-container-berth"]);
    assert!(!o.status.success());
    assert!(
        stderr(&o).contains("no-such-container-berth"),
        "{}",
        stderr(&o)
    );
}

#[test]
fn list_table_json_and_quiet() {
    require_root!();
    let env = Env::new();
    let b1 = env.bundle(&["sleep", "60"]);
    let b2 = env.bundle(&["sleep", "60"]);
    let (id1, id2) = (env.id("lista"), env.id("listb"));
    let pid1 = env.create_pid(&b1, &id1);
    env.create_pid(&b2, &id2);
    ok(&env.rt_out(&["start", &id2]));
    let table = ok(&env.rt_out(&["list"]));
    let header = table.lines().next().expect("header");
    for col in ["ID", "PID", "STATUS", "BUNDLE", "CREATED", "OWNER"] {
        assert!(header.contains(col), "{header}");
    }
    let row1 = table
        .lines()
        .find(|l| l.starts_with(&id1))
        .expect("row for id1");
    assert!(
        row1.contains("created") && row1.contains(&pid1.to_string()),
        "{row1}"
    );
    let row2 = table
        .lines()
        .find(|l| l.starts_with(&id2))
        .expect("row for id2");
    assert!(row2.contains("running"), "{row2}");
    let js: Value =
        serde_json::from_str(&ok(&env.rt_out(&["list", "--format", "json"]))).expect("json list");
    let arr = js.as_array().expect("array");
    assert_eq!(arr.len(), 2, "{js}");
    let e1 = arr
        .iter()
        .find(|e| e["id"] == id1.as_str())
        .expect("entry 1");
    assert_eq!(e1["pid"], pid1);
    assert_eq!(e1["status"], "created");
    let mut quiet: Vec<String> = ok(&env.rt_out(&["list", "-q"]))
        .lines()
        .map(str::to_owned)
        .collect();
    quiet.sort();
    let mut want = vec![id1.clone(), id2.clone()];
    want.sort();
    assert_eq!(quiet, want);
    // Newest first: see the ignored test in runtime_lifecycle.rs about
    // deleting the container that created the shared parent cgroup.
    ok(&env.rt_out(&["delete", "--force", &id2]));
    ok(&env.rt_out(&["delete", "--force", &id1]));
    assert_eq!(ok(&env.rt_out(&["list", "-q"])), "");
}

#[test]
fn list_of_an_empty_root_is_empty() {
    require_root!();
    let env = Env::new();
    assert_eq!(ok(&env.rt_out(&["list", "-q"])), "");
    let js: Value =
        serde_json::from_str(&ok(&env.rt_out(&["list", "--format", "json"]))).expect("json");
    assert!(
        js.as_array().is_some_and(|a| a.is_empty()) || js.is_null(),
        "{js}"
    );
}

#[test]
fn spec_writes_a_valid_config_and_refuses_to_overwrite() {
    let dir = tempfile::tempdir().expect("dir");
    let o = std::process::Command::new(runtime_bin())
        .args(["spec", "--bundle"])
        .arg(dir.path())
        .output()
        .expect("spec");
    ok(&o);
    let text = std::fs::read_to_string(dir.path().join("config.json")).expect("config.json");
    let v: Value = serde_json::from_str(&text).expect("valid JSON");
    for k in ["ociVersion", "process", "root", "mounts", "linux"] {
        assert!(v.get(k).is_some(), "spec lacks {k}");
    }
    assert!(v["process"]["args"]
        .as_array()
        .is_some_and(|a| !a.is_empty()));
    let parsed: Result<oci_spec::runtime::Spec, _> = serde_json::from_str(&text);
    assert!(parsed.is_ok(), "oci-spec parses it: {parsed:?}");
    std::fs::write(dir.path().join("config.json"), "{\"mine\": true}").expect("overwrite");
    let o = std::process::Command::new(runtime_bin())
        .args(["spec", "--bundle"])
        .arg(dir.path())
        .output()
        .expect("spec");
    assert!(!o.status.success(), "spec must refuse to overwrite");
    assert!(stderr(&o).contains("config.json"), "{}", stderr(&o));
    assert_eq!(
        std::fs::read_to_string(dir.path().join("config.json")).expect("read"),
        "{\"mine\": true}"
    );
}

#[test]
fn features_prints_the_schema_sections() {
    let o = std::process::Command::new(runtime_bin())
        .arg("features")
        .output()
        .expect("features");
    let v: Value = serde_json::from_str(&ok(&o)).expect("features JSON");
    // features-schema.json: required ociVersionMin/Max; known sections.
    let allowed = [
        "ociVersionMin",
        "ociVersionMax",
        "hooks",
        "mountOptions",
        "annotations",
        "potentiallyUnsafeConfigAnnotations",
        "linux",
    ];
    for k in v.as_object().expect("object").keys() {
        assert!(allowed.contains(&k.as_str()), "unknown top-level key {k}");
    }
    assert!(v["ociVersionMin"]
        .as_str()
        .is_some_and(|s| s.starts_with("1.")));
    assert!(v["ociVersionMax"]
        .as_str()
        .is_some_and(|s| s.starts_with("1.")));
    let hooks: Vec<&str> = v["hooks"]
        .as_array()
        .expect("hooks")
        .iter()
        .filter_map(Value::as_str)
        .collect();
    for h in [
        "prestart",
        "createRuntime",
        "createContainer",
        "startContainer",
        "poststart",
        "poststop",
    ] {
        assert!(hooks.contains(&h), "{hooks:?}");
    }
    let opts: Vec<&str> = v["mountOptions"]
        .as_array()
        .expect("mountOptions")
        .iter()
        .filter_map(Value::as_str)
        .collect();
    for m in ["ro", "rbind", "rro", "nosuid", "tmpcopyup"] {
        assert!(opts.contains(&m), "mountOptions lacks {m}");
    }
    let linux = v["linux"].as_object().expect("linux");
    let allowed = [
        "namespaces",
        "capabilities",
        "cgroup",
        "seccomp",
        "apparmor",
        "selinux",
        "intelRdt",
        "mountExtensions",
        "netDevices",
        "memoryPolicy",
    ];
    for k in linux.keys() {
        assert!(allowed.contains(&k.as_str()), "unknown linux key {k}");
    }
    let ns: Vec<&str> = linux["namespaces"]
        .as_array()
        .expect("ns")
        .iter()
        .filter_map(Value::as_str)
        .collect();
    for n in [
        "cgroup", "ipc", "mount", "network", "pid", "user", "uts", "time",
    ] {
        assert!(ns.contains(&n), "{ns:?}");
    }
    for c in linux["capabilities"].as_array().expect("caps") {
        assert!(c.as_str().is_some_and(|s| s.starts_with("CAP_")), "{c}");
    }
    assert!(linux["cgroup"]["v1"].is_boolean() && linux["cgroup"]["v2"].is_boolean());
    assert!(linux["seccomp"]["enabled"].is_boolean());
}
