//! Support for the `run`/`create` flag tests (engine_flags.rs,
//! engine_health.rs): podman 4.3 with a store of its own for differential
//! checks, and images with an edited config.
#![allow(dead_code)]

use std::path::Path;
use std::process::Command;

use crate::common::*;

/// podman 4.3 with a store of its own (tests/common/podman.rs).
pub use crate::common::podman::Podman;

/// `berth run --rm --network none ARGS`.
pub fn berth_run(env: &EngineEnv, args: &[&str]) -> std::process::Output {
    let mut v = vec!["run", "--rm", "--network", "none"];
    v.extend_from_slice(args);
    env.berth(&v)
}

/// The host cgroup dir of a berth container in `controller` (v1).
pub fn cgroup_file(env: &EngineEnv, id: &str, controller: &str, file: &str) -> String {
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

/// A copy of `base` whose image config has a Docker `Healthcheck`
/// (`berth save`, the config edited and renamed to its new digest, `berth
/// load`); returns its name.
pub fn image_with_healthcheck(env: &EngineEnv, base: &str, check: serde_json::Value) -> String {
    image_with_config(env, base, "localhost/hc:1", "Healthcheck", check)
}

/// A copy of `base` named `name` whose image config has `key` set.
pub fn image_with_config(
    env: &EngineEnv,
    base: &str,
    name: &str,
    key: &str,
    value: serde_json::Value,
) -> String {
    edit_image(env, base, name, |cfg| cfg["config"][key] = value)
}

/// A copy of `base` named `name` with its image config (the whole
/// document: architecture, config, ...) edited by `edit`.
pub fn edit_image(
    env: &EngineEnv,
    base: &str,
    name: &str,
    edit: impl FnOnce(&mut serde_json::Value),
) -> String {
    let d = env.dir.path().join(unique("cfgimg"));
    std::fs::create_dir_all(&d).expect("mkdir");
    let saved = d.join("saved.tar");
    env.ok(&["save", "-o", saved.to_str().expect("utf-8"), base]);
    let x = d.join("x");
    std::fs::create_dir_all(&x).expect("mkdir");
    let st = Command::new("tar")
        .arg("-xf")
        .arg(&saved)
        .arg("-C")
        .arg(&x)
        .status()
        .expect("tar");
    assert!(st.success());
    let mpath = x.join("manifest.json");
    let mut manifest: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&mpath).expect("manifest")).expect("json");
    let old = manifest[0]["Config"].as_str().expect("Config").to_string();
    let mut cfg: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(x.join(&old)).expect("config"))
            .expect("json");
    edit(&mut cfg);
    let text = serde_json::to_vec(&cfg).expect("serialize");
    std::fs::write(d.join("cfg"), &text).expect("write");
    let sum = Command::new("sha256sum")
        .arg(d.join("cfg"))
        .output()
        .expect("sha256sum");
    let hex = String::from_utf8_lossy(&sum.stdout)
        .split_whitespace()
        .next()
        .expect("digest")
        .to_string();
    std::fs::remove_file(x.join(&old)).expect("rm old config");
    let new = format!("{hex}.json");
    std::fs::write(x.join(&new), &text).expect("write config");
    manifest[0]["Config"] = new.into();
    manifest[0]["RepoTags"] = serde_json::json!([name]);
    std::fs::write(&mpath, serde_json::to_vec(&manifest).expect("json")).expect("manifest");
    let out = d.join("hc.tar");
    let st = Command::new("tar")
        .arg("-cf")
        .arg(&out)
        .arg("-C")
        .arg(&x)
        .arg(".")
        .status()
        .expect("tar");
    assert!(st.success());
    env.ok(&["load", "-i", out.to_str().expect("utf-8")]);
    name.to_string()
}
