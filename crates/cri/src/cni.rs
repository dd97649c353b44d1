//! Pod networking through CNI plugins (containernetworking-plugins), as
//! containerd's and CRI-O's CRI do: when the CNI configuration dir holds
//! a network configuration (`*.conflist`, or a single-plugin `*.conf` /
//! `*.json`; the first by name), RunPodSandbox makes the pod's network
//! namespace empty (`berth pod create --network none`) and runs the
//! list's plugins on it with `ADD` (CNI spec "Execution protocol":
//! `CNI_COMMAND`, `CNI_CONTAINERID`, `CNI_NETNS`, `CNI_IFNAME`,
//! `CNI_ARGS`, `CNI_PATH`, the configuration on stdin with `name`,
//! `cniVersion`, `prevResult` and the `runtimeConfig` of the capabilities
//! a plugin declares: `portMappings`); Stop/RemovePodSandbox run `DEL` in
//! reverse order. The last plugin's result is kept under the engine's
//! runroot (`cri/cni/<pod>.json`): it gives PodSandboxStatus its IP and
//! DEL its `prevResult`. Without a configuration, berth's own bridge
//! driver serves as before.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use berth_engine::Engine;
use serde_json::{json, Value};

/// Where CNI lives (`--cni-conf-dir`, `--cni-bin-dir`).
#[derive(Debug, Clone)]
pub struct CniDirs {
    pub conf_dir: PathBuf,
    /// Plugin dirs, searched in order (`--cni-bin-dir A:B`).
    pub bin_dirs: Vec<PathBuf>,
}

/// A pod's identity as CNI_ARGS passes it (the kubelet's K8S_POD_*).
pub struct PodRef<'a> {
    pub id: &'a str,
    pub name: &'a str,
    pub namespace: &'a str,
    pub uid: &'a str,
}

/// A CRI port mapping as portmap's `runtimeConfig.portMappings` entry.
#[derive(Debug, Clone)]
pub struct PortMapping {
    pub host_port: i32,
    pub container_port: i32,
    pub protocol: &'static str,
    pub host_ip: String,
}

/// The network configuration list in effect, if any.
pub fn config(dirs: &CniDirs) -> Result<Option<(PathBuf, Value)>, String> {
    let rd = match std::fs::read_dir(&dirs.conf_dir) {
        Ok(r) => r,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => {
            return Err(format!(
                "read CNI conf dir {}: {e}",
                dirs.conf_dir.display()
            ))
        }
    };
    let mut files: Vec<PathBuf> = rd
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| {
            matches!(
                p.extension().and_then(|e| e.to_str()),
                Some("conflist" | "conf" | "json")
            )
        })
        .collect();
    files.sort();
    let Some(f) = files.into_iter().next() else {
        return Ok(None);
    };
    let text = std::fs::read_to_string(&f).map_err(|e| format!("read {}: {e}", f.display()))?;
    let v: Value = serde_json::from_str(&text)
        .map_err(|e| format!("{} is not valid JSON: {e}", f.display()))?;
    let list = if v.get("plugins").is_some() {
        v
    } else {
        // A single plugin's configuration is a list of one.
        json!({
            "cniVersion": v["cniVersion"],
            "name": v["name"],
            "plugins": [v],
        })
    };
    if list["name"].as_str().unwrap_or("").is_empty()
        || list["plugins"].as_array().is_none_or(|p| p.is_empty())
    {
        return Err(format!(
            "{}: a network configuration needs a name and at least one plugin",
            f.display()
        ));
    }
    Ok(Some((f, list)))
}

fn result_path(engine: &Engine, pod: &str) -> PathBuf {
    engine
        .runroot
        .join("cri")
        .join("cni")
        .join(format!("{pod}.json"))
}

/// What ADD kept for `pod` (`result`, `list`, `ports`; None: the pod is
/// not on a CNI network).
pub fn kept(engine: &Engine, pod: &str) -> Option<Value> {
    let text = std::fs::read_to_string(result_path(engine, pod)).ok()?;
    serde_json::from_str(&text).ok()
}

/// The pod's first IP (and the others) from a CNI result.
pub fn ips(result: &Value) -> Vec<String> {
    result["ips"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|ip| ip["address"].as_str())
        .map(|a| a.split('/').next().unwrap_or(a).to_string())
        .collect()
}

fn plugin_conf(list: &Value, plugin: &Value, prev: Option<&Value>, ports: &[PortMapping]) -> Value {
    let mut c = plugin.clone();
    c["name"] = list["name"].clone();
    c["cniVersion"] = list["cniVersion"].clone();
    if let Some(p) = prev {
        c["prevResult"] = p.clone();
    }
    if plugin["capabilities"]["portMappings"].as_bool() == Some(true) {
        let m: Vec<Value> = ports
            .iter()
            .map(|p| {
                json!({"hostPort": p.host_port, "containerPort": p.container_port,
                       "protocol": p.protocol, "hostIP": p.host_ip})
            })
            .collect();
        c["runtimeConfig"] = json!({ "portMappings": m });
    }
    c
}

fn find_plugin(dirs: &CniDirs, kind: &str) -> Result<PathBuf, String> {
    if kind.is_empty() || kind.contains('/') {
        return Err(format!("CNI plugin type {kind:?} is not a plugin name"));
    }
    dirs.bin_dirs
        .iter()
        .map(|d| d.join(kind))
        .find(|p| p.is_file())
        .ok_or_else(|| {
            format!(
                "CNI plugin {kind} not found in {} (install containernetworking-plugins or set --cni-bin-dir)",
                dirs.bin_dirs
                    .iter()
                    .map(|d| d.display().to_string())
                    .collect::<Vec<_>>()
                    .join(":")
            )
        })
}

/// Runs one plugin; its stdout as JSON (empty output: null).
fn exec(
    dirs: &CniDirs,
    command: &str,
    conf: &Value,
    pod: &PodRef,
    netns: &Path,
) -> Result<Value, String> {
    let t0 = std::time::Instant::now();
    let kind = conf["type"].as_str().unwrap_or("");
    let bin = find_plugin(dirs, kind)?;
    if let Some(r) = loopback_in_process(command, kind, conf, netns) {
        crate::inproc::trace(&format!("cni {command} {kind} (in process)"), t0);
        return r;
    }
    if let Some(r) = portmap_without_mappings(command, kind, conf) {
        crate::inproc::trace(&format!("cni {command} {kind} (no mappings)"), t0);
        return Ok(r);
    }
    let path = std::env::join_paths(&dirs.bin_dirs).map_err(|e| e.to_string())?;
    let mut child = Command::new(&bin)
        .env("CNI_COMMAND", command)
        .env("CNI_CONTAINERID", pod.id)
        .env("CNI_NETNS", netns)
        .env("CNI_IFNAME", "eth0")
        .env(
            "CNI_ARGS",
            format!(
                "IgnoreUnknown=1;K8S_POD_NAMESPACE={};K8S_POD_NAME={};K8S_POD_INFRA_CONTAINER_ID={};K8S_POD_UID={}",
                pod.namespace, pod.name, pod.id, pod.uid
            ),
        )
        .env("CNI_PATH", path)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|e| format!("run CNI plugin {}: {e}", bin.display()))?;
    let input = conf.to_string();
    if let Some(mut i) = child.stdin.take() {
        let _ = i.write_all(input.as_bytes());
    }
    let o = child
        .wait_with_output()
        .map_err(|e| format!("run CNI plugin {}: {e}", bin.display()))?;
    crate::inproc::trace(&format!("cni {command} {kind}"), t0);
    let out: Value = if o.stdout.iter().all(u8::is_ascii_whitespace) {
        Value::Null
    } else {
        serde_json::from_slice(&o.stdout)
            .map_err(|e| format!("CNI plugin {kind} {command}: output is not JSON ({e})"))?
    };
    if !o.status.success() {
        // CNI spec "Error": {code, msg, details} on stdout.
        let msg = out["msg"]
            .as_str()
            .map(|m| match out["details"].as_str() {
                Some(d) if !d.is_empty() => format!("{m}: {d}"),
                _ => m.to_string(),
            })
            .unwrap_or_else(|| String::from_utf8_lossy(&o.stderr).trim().to_string());
        return Err(format!("CNI plugin {kind} {command} failed: {msg}"));
    }
    Ok(out)
}

/// The reference `loopback` plugin's ADD in a chain, done here: it sets
/// `lo` up in `netns` and, called with a `prevResult`, prints that
/// result unchanged (containernetworking-plugins'
/// `plugins/main/loopback`: "loopback should pass it transparently");
/// an exec of it costs about 2 ms of a pod's start. None (the plugin is
/// run) for DEL and for a loopback plugin first in its chain (its own
/// result then lists `lo` and its addresses). containerd execs it.
fn loopback_in_process(
    command: &str,
    kind: &str,
    conf: &Value,
    netns: &Path,
) -> Option<Result<Value, String>> {
    if kind != "loopback" || command != "ADD" {
        return None;
    }
    let prev = conf.get("prevResult")?;
    Some(
        berth_network::link::loopback_up(netns)
            .map(|()| prev.clone())
            .map_err(|e| format!("CNI plugin loopback ADD failed: {e}")),
    )
}

/// The reference `portmap` plugin's ADD with no port mappings, done
/// here: containernetworking-plugins' `plugins/meta/portmap` then
/// prints its `prevResult` unchanged and touches nothing ("if
/// len(netConf.RuntimeConfig.PortMaps) == 0"), so the exec (about 2 ms
/// of a pod's start) is skipped. None (the plugin is run) for DEL, with
/// mappings, or without a `prevResult` (the plugin then fails: it must
/// be chained). containerd execs it.
fn portmap_without_mappings(command: &str, kind: &str, conf: &Value) -> Option<Value> {
    if kind != "portmap" || command != "ADD" {
        return None;
    }
    let prev = conf.get("prevResult")?;
    let mappings = &conf["runtimeConfig"]["portMappings"];
    mappings
        .as_array()
        .is_none_or(|m| m.is_empty())
        .then(|| prev.clone())
}

/// ADD: the plugins of `list` in order on `netns`; keeps and returns the
/// result. A failure runs DEL on what was added and keeps nothing.
pub fn add(
    engine: &Engine,
    dirs: &CniDirs,
    list: &Value,
    pod: &PodRef,
    netns: &Path,
    ports: &[PortMapping],
) -> Result<Value, String> {
    let plugins = list["plugins"].as_array().cloned().unwrap_or_default();
    let mut prev: Option<Value> = None;
    for p in &plugins {
        let conf = plugin_conf(list, p, prev.as_ref(), ports);
        match exec(dirs, "ADD", &conf, pod, netns) {
            Ok(r) => prev = Some(r),
            Err(e) => {
                let _ = del_plugins(dirs, list, &plugins, prev.as_ref(), pod, netns, ports);
                return Err(e);
            }
        }
    }
    let result = prev.unwrap_or(Value::Null);
    // The list and ports DEL needs later go with the result.
    let kept = json!({"list": list, "result": result, "ports": ports.iter().map(|p| json!({
        "hostPort": p.host_port, "containerPort": p.container_port,
        "protocol": p.protocol, "hostIP": p.host_ip})).collect::<Vec<_>>()});
    let path = result_path(engine, pod.id);
    let write = || -> std::io::Result<()> {
        if let Some(d) = path.parent() {
            std::fs::create_dir_all(d)?;
        }
        std::fs::write(&path, kept.to_string())
    };
    if let Err(e) = write() {
        let _ = del_plugins(dirs, list, &plugins, Some(&result), pod, netns, ports);
        return Err(format!("keep the CNI result at {}: {e}", path.display()));
    }
    Ok(result)
}

fn del_plugins(
    dirs: &CniDirs,
    list: &Value,
    plugins: &[Value],
    prev: Option<&Value>,
    pod: &PodRef,
    netns: &Path,
    ports: &[PortMapping],
) -> Result<(), String> {
    let mut first_err = None;
    for p in plugins.iter().rev() {
        let conf = plugin_conf(list, p, prev, ports);
        if let Err(e) = exec(dirs, "DEL", &conf, pod, netns) {
            first_err.get_or_insert(e);
        }
    }
    first_err.map_or(Ok(()), Err)
}

/// DEL for a pod on a CNI network (nothing when it is not); forgets the
/// kept result once every plugin succeeded.
pub fn del(engine: &Engine, dirs: &CniDirs, pod: &PodRef, netns: &Path) -> Result<(), String> {
    let Some(kept) = kept(engine, pod.id) else {
        return Ok(());
    };
    let list = &kept["list"];
    let plugins = list["plugins"].as_array().cloned().unwrap_or_default();
    let ports: Vec<PortMapping> = kept["ports"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|p| PortMapping {
            host_port: p["hostPort"].as_i64().unwrap_or(0) as i32,
            container_port: p["containerPort"].as_i64().unwrap_or(0) as i32,
            protocol: if p["protocol"] == "udp" { "udp" } else { "tcp" },
            host_ip: p["hostIP"].as_str().unwrap_or("").to_string(),
        })
        .collect();
    del_plugins(
        dirs,
        list,
        &plugins,
        Some(&kept["result"]),
        pod,
        netns,
        &ports,
    )?;
    let _ = std::fs::remove_file(result_path(engine, pod.id));
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn plugin_conf_gets_name_version_prev_result_and_port_mappings() {
        let list = json!({"cniVersion": "1.0.0", "name": "pods", "plugins": []});
        let pm = json!({"type": "portmap", "capabilities": {"portMappings": true}});
        let ports = [PortMapping {
            host_port: 8080,
            container_port: 80,
            protocol: "tcp",
            host_ip: String::new(),
        }];
        let prev = json!({"ips": [{"address": "10.1.0.2/24"}]});
        let c = plugin_conf(&list, &pm, Some(&prev), &ports);
        assert_eq!(c["name"], "pods");
        assert_eq!(c["cniVersion"], "1.0.0");
        assert_eq!(c["prevResult"], prev);
        assert_eq!(c["runtimeConfig"]["portMappings"][0]["hostPort"], 8080);
        let br = json!({"type": "bridge"});
        assert!(plugin_conf(&list, &br, None, &ports)
            .get("runtimeConfig")
            .is_none());
        assert_eq!(ips(&prev), vec!["10.1.0.2".to_string()]);
    }

    #[test]
    fn the_first_configuration_by_name_is_used_and_a_single_plugin_is_a_list() {
        let d = tempfile::tempdir().unwrap();
        let dirs = CniDirs {
            conf_dir: d.path().to_path_buf(),
            bin_dirs: vec![],
        };
        assert!(config(&dirs).unwrap().is_none());
        std::fs::write(
            d.path().join("20-b.conflist"),
            r#"{"cniVersion":"1.0.0","name":"b","plugins":[{"type":"bridge"}]}"#,
        )
        .unwrap();
        std::fs::write(
            d.path().join("10-a.conf"),
            r#"{"cniVersion":"0.4.0","name":"a","type":"loopback"}"#,
        )
        .unwrap();
        std::fs::write(d.path().join("README"), "not a config").unwrap();
        let (f, l) = config(&dirs).unwrap().unwrap();
        assert!(f.ends_with("10-a.conf"));
        assert_eq!(l["name"], "a");
        assert_eq!(l["plugins"][0]["type"], "loopback");
        std::fs::write(d.path().join("05-bad.conflist"), "{").unwrap();
        assert!(config(&dirs).unwrap_err().contains("not valid JSON"));
        let missing = CniDirs {
            conf_dir: d.path().join("nope"),
            bin_dirs: vec![],
        };
        assert!(config(&missing).unwrap().is_none());
    }
}
