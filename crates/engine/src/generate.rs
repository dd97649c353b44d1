//! Turning an image's config plus run options into the container's OCI
//! config.json (runtime-spec config.md, config-linux.md), with the
//! hardened defaults of berth-seccomp unless `--privileged`. Pure: every
//! input (image config, passwd/group texts, env files, host env) is given.

use std::path::Path;

use berth_image::manifest::RuntimeConfig;
use berth_seccomp::defaults::HardenOptions;
use serde_json::{json, Value};

use crate::opts::{self, OptsError, RunOptions};
use crate::user::{self, Identity, UserError};

/// Errors of generating a container config.
#[derive(Debug, thiserror::Error)]
pub enum GenerateError {
    #[error(transparent)]
    Opts(#[from] OptsError),
    #[error(transparent)]
    User(#[from] UserError),
    #[error("no command specified: the image has no Entrypoint or Cmd; give a command after the image name")]
    NoCommand,
    #[error("invalid stop signal {0:?} in the image config")]
    StopSignal(String),
    #[error("invalid capability {0:?} for --cap-add/--cap-drop")]
    Capability(String),
    #[error("the generated config is not a valid OCI spec")]
    Spec(#[source] serde_json::Error),
    #[error("invalid seccomp profile given with --security-opt seccomp=")]
    Seccomp(#[source] serde_json::Error),
    #[error("--init: no init binary was found for the container (see --init-path)")]
    NoInitBinary,
}

/// Inputs besides the options: what was read from the image and host.
pub struct Inputs<'a> {
    pub id: &'a str,
    pub image: &'a RuntimeConfig,
    pub passwd: &'a str,
    pub group: &'a str,
    /// Lines of the `--env-file`s, in order.
    pub env_file_lines: Vec<String>,
    /// The caller's environment (for `-e NAME`).
    pub host_env: &'a dyn Fn(&str) -> Option<String>,
    /// Absolute path of the container's rootfs mountpoint.
    pub rootfs: &'a Path,
    /// Text of a `--security-opt seccomp=FILE` profile.
    pub seccomp_profile: Option<String>,
    /// The host's name, for `--network host`.
    pub host_name: String,
    /// The pinned network namespace to join (bridge networks).
    pub netns_path: Option<std::path::PathBuf>,
    /// With `--init`: the host's static init binary (see [`crate::init`]).
    pub init_binary: Option<&'a Path>,
}

/// The generated config and the values the engine keeps about it.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct Generated {
    pub spec: Value,
    pub entrypoint: Vec<String>,
    pub cmd: Vec<String>,
    pub env: Vec<String>,
    pub workdir: String,
    pub user: String,
    pub identity: Identity,
    /// Signal name used by `stop`.
    pub stop_signal: String,
    pub hostname: String,
    pub cgroups_path: String,
}

const DEFAULT_PATH: &str = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";

/// Docker's rule: `--entrypoint` replaces the image's Entrypoint and drops
/// its Cmd; a command after the image replaces Cmd.
pub fn command(o: &RunOptions, img: &RuntimeConfig) -> (Vec<String>, Vec<String>) {
    match &o.entrypoint {
        Some(ep) => {
            let ep = if ep.is_empty() {
                vec![]
            } else {
                vec![ep.clone()]
            };
            (ep, o.cmd.clone())
        }
        None => {
            let ep = img.entrypoint.clone().unwrap_or_default();
            let cmd = if o.cmd.is_empty() {
                img.cmd.clone().unwrap_or_default()
            } else {
                o.cmd.clone()
            };
            (ep, cmd)
        }
    }
}

/// The process environment: image Env, PATH and HOSTNAME defaults, env
/// files, then `-e` (later wins), HOME from the user, TERM for a tty.
pub fn environment(o: &RunOptions, inp: &Inputs<'_>, hostname: &str, home: &str) -> Vec<String> {
    let mut env: Vec<String> = Vec::new();
    for e in inp.image.env.clone().unwrap_or_default() {
        match e.split_once('=') {
            Some((k, v)) => opts::set_env(&mut env, k, v),
            None => opts::set_env(&mut env, &e, ""),
        }
    }
    if !opts::has_env(&env, "PATH") {
        opts::set_env(&mut env, "PATH", DEFAULT_PATH);
    }
    opts::set_env(&mut env, "HOSTNAME", hostname);
    for e in inp.env_file_lines.iter().chain(o.env.iter()) {
        if let Some((k, v)) = opts::parse_env(e, inp.host_env) {
            opts::set_env(&mut env, &k, &v);
        }
    }
    if !opts::has_env(&env, "HOME") {
        opts::set_env(&mut env, "HOME", home);
    }
    if o.tty && !opts::has_env(&env, "TERM") {
        opts::set_env(&mut env, "TERM", "xterm");
    }
    env
}

/// Docker's rule (moby daemon/oci_linux.go): a shared bind mount needs a
/// shared root, a slave one at least a slave root, or the propagation the
/// mount asks for never reaches it (config-linux.md "rootfsPropagation").
fn rootfs_propagation(requests: &[opts::MountRequest]) -> Option<&'static str> {
    let has = |names: &[&str]| {
        requests
            .iter()
            .any(|m| m.options.iter().any(|o| names.contains(&o.as_str())))
    };
    if has(&["shared", "rshared"]) {
        Some("rshared")
    } else if has(&["slave", "rslave"]) {
        Some("rslave")
    } else {
        None
    }
}

fn mount_json(m: &opts::MountRequest) -> Value {
    let mut v = json!({
        "destination": m.target,
        "type": m.kind,
        "source": m.source.as_ref().map(|p| p.display().to_string()).unwrap_or_else(|| m.kind.clone()),
        "options": m.options,
    });
    if m.kind == "bind" {
        v["type"] = json!("bind");
    }
    v
}

/// The smallest `--memory` accepted (Docker's "Minimum memory limit
/// allowed is 6MB").
pub const MIN_MEMORY: i64 = 6 << 20;

fn resources(o: &RunOptions) -> Result<Value, OptsError> {
    let mut r = json!({"devices": [{"allow": false, "access": "rwm"}]});
    if let Some(m) = &o.memory {
        let limit = opts::parse_size("--memory", m)?;
        // Docker's floor: a smaller limit kills the runtime before the
        // container starts.
        if limit < MIN_MEMORY {
            return Err(OptsError::Invalid {
                flag: "--memory",
                value: m.clone(),
                why: "minimum memory limit allowed is 6MB".into(),
            });
        }
        r["memory"] = json!({ "limit": limit });
    }
    let mut cpu = serde_json::Map::new();
    if let Some(c) = &o.cpus {
        let (quota, period) = opts::parse_cpus(c)?;
        cpu.insert("quota".into(), json!(quota));
        cpu.insert("period".into(), json!(period));
    }
    if let Some(s) = o.cpu_shares {
        cpu.insert("shares".into(), json!(s));
    }
    if !cpu.is_empty() {
        r["cpu"] = Value::Object(cpu);
    }
    if let Some(p) = o.pids_limit {
        r["pids"] = json!({"limit": p});
    }
    if o.privileged {
        r["devices"] = json!([{"allow": true, "access": "rwm"}]);
    }
    Ok(r)
}

fn parse_caps(names: &[String]) -> Result<Vec<oci_spec::runtime::Capability>, GenerateError> {
    names
        .iter()
        .map(|n| {
            serde_json::from_value(json!(opts::cap_name(n)))
                .map_err(|_| GenerateError::Capability(n.clone()))
        })
        .collect()
}

/// Every capability we hold in our bounding set (for `--privileged`, as
/// podman: a capability the engine lacks cannot be granted).
fn all_caps() -> Vec<String> {
    let set = caps::read(None, caps::CapSet::Bounding).unwrap_or_else(|_| caps::all());
    let mut v: Vec<String> = set.iter().map(|c| c.to_string()).collect();
    v.sort();
    v
}

/// The read-only bind of the init binary at [`crate::init::INIT_DEST`]
/// (the runtime creates the mountpoint; the image's layers are untouched).
pub fn init_mount(binary: &Path) -> Value {
    json!({
        "destination": crate::init::INIT_DEST,
        "type": "bind",
        "source": binary,
        "options": ["bind", "ro", "nosuid", "nodev"],
    })
}

/// Moves the init's mount after every other mount, so that no volume or
/// bind on `/run` hides it (config.md "mounts": later entries win).
pub fn keep_init_mount_last(spec: &mut Value) {
    let Some(mounts) = spec["mounts"].as_array_mut() else {
        return;
    };
    if let Some(i) = mounts
        .iter()
        .position(|m| m["destination"] == crate::init::INIT_DEST && m["type"] == "bind")
    {
        let m = mounts.remove(i);
        mounts.push(m);
    }
}

/// Builds the config.json and the recorded values.
pub fn generate(o: &RunOptions, inp: &Inputs<'_>) -> Result<Generated, GenerateError> {
    let mode = opts::parse_network(o.network.as_deref())?;
    let own_netns = mode != opts::NetworkMode::Host;
    let (entrypoint, cmd) = command(o, inp.image);
    let args: Vec<String> = entrypoint.iter().chain(cmd.iter()).cloned().collect();
    if args.is_empty() {
        return Err(GenerateError::NoCommand);
    }
    let init_binary = match (o.init, inp.init_binary) {
        (false, _) => None,
        (true, Some(p)) => Some(p),
        (true, None) => return Err(GenerateError::NoInitBinary),
    };
    let user_spec = o
        .user
        .clone()
        .or_else(|| inp.image.user.clone())
        .unwrap_or_default();
    let identity = user::resolve(&user_spec, inp.passwd, inp.group)?;
    let hostname = match (&o.hostname, own_netns) {
        (Some(h), _) => h.clone(),
        (None, false) => inp.host_name.clone(),
        (None, true) => inp.id[..12.min(inp.id.len())].to_string(),
    };
    let env = environment(o, inp, &hostname, &identity.home);
    let workdir = o
        .workdir
        .clone()
        .or_else(|| inp.image.working_dir.clone().filter(|w| !w.is_empty()))
        .unwrap_or_else(|| "/".into());
    if !workdir.starts_with('/') {
        return Err(OptsError::Invalid {
            flag: "-w",
            value: workdir,
            why: "the working directory must be absolute".into(),
        }
        .into());
    }
    let stop_signal = inp
        .image
        .stop_signal
        .clone()
        .unwrap_or_else(|| "SIGTERM".into());
    if berth_runtime::container::parse_signal(&stop_signal).is_none() {
        return Err(GenerateError::StopSignal(stop_signal));
    }
    let mut requests = Vec::new();
    for v in &o.volumes {
        requests.push(opts::parse_volume(v)?);
    }
    for m in &o.mounts {
        requests.push(opts::parse_mount(m)?);
    }
    for t in &o.tmpfs {
        requests.push(opts::parse_tmpfs(t)?);
    }
    let security = opts::parse_security_opts(&o.security_opt)?;
    let cgroups_path = format!("{}/{}", o.cgroup_parent.trim_end_matches('/'), inp.id);

    let mut spec = berth_runtime::spec::default_spec(false);
    spec["process"]["terminal"] = json!(o.tty);
    spec["process"]["args"] = match init_binary {
        // tini and catatonit both end their options at `--`.
        Some(_) => json!([crate::init::INIT_DEST, "--"]
            .into_iter()
            .map(String::from)
            .chain(args)
            .collect::<Vec<_>>()),
        None => json!(args),
    };
    spec["process"]["env"] = json!(env);
    spec["process"]["cwd"] = json!(workdir);
    spec["process"]["user"] = json!({
        "uid": identity.uid, "gid": identity.gid,
        "additionalGids": identity.additional_gids,
    });
    spec["process"]["noNewPrivileges"] = json!(false);
    // Limits are inherited from the engine (Docker's default), not capped.
    spec["process"]
        .as_object_mut()
        .expect("process is an object")
        .remove("rlimits");
    spec["root"] = json!({"path": inp.rootfs, "readonly": o.read_only});
    spec["hostname"] = json!(hostname);
    let mounts = spec["mounts"]
        .as_array_mut()
        .expect("default spec has mounts");
    // config.md "mounts": later entries mount over earlier ones.
    mounts.extend(requests.iter().map(mount_json));
    if let Some(p) = init_binary {
        mounts.push(init_mount(p));
    }
    if let Some(p) = rootfs_propagation(&requests) {
        spec["linux"]["rootfsPropagation"] = json!(p);
    }
    {
        let ns = spec["linux"]["namespaces"]
            .as_array_mut()
            .expect("default spec has namespaces");
        match (&mode, &inp.netns_path) {
            // config-linux.md "namespaces": no network entry = the runtime's.
            (opts::NetworkMode::Host, _) => ns.retain(|n| n["type"] != "network"),
            // A path joins the namespace the engine pinned and plumbed.
            (opts::NetworkMode::Bridge(_) | opts::NetworkMode::UserMode(_), Some(p)) => {
                ns.retain(|n| n["type"] != "network");
                ns.push(json!({"type": "network", "path": p}));
            }
            _ => {}
        }
    }
    if crate::rootless::is_rootless() && crate::rootless::cgroup::delegation().is_none() {
        // Rootless without a delegated cgroup v2 subtree (cgroup v1, none
        // delegated): the runtime runs the container without a cgroup, and
        // the resource flags were refused by `create`.
        if let Some(l) = spec["linux"].as_object_mut() {
            l.remove("cgroupsPath");
            l.remove("resources");
        }
    } else {
        spec["linux"]["cgroupsPath"] = json!(cgroups_path);
        spec["linux"]["resources"] = resources(o)?;
    }
    spec["annotations"] = json!({"io.berth.container.id": inp.id});

    let mut oci: oci_spec::runtime::Spec =
        serde_json::from_value(spec).map_err(GenerateError::Spec)?;
    if o.privileged {
        let all = all_caps();
        let mut spec = serde_json::to_value(&oci).map_err(GenerateError::Spec)?;
        spec["process"]["capabilities"] = json!({
            "bounding": all, "effective": all, "permitted": all,
        });
        spec["process"]["noNewPrivileges"] = json!(security.no_new_privileges);
        let linux = spec["linux"].as_object_mut().expect("linux is an object");
        linux.remove("maskedPaths");
        linux.remove("readonlyPaths");
        linux.remove("seccomp");
        for m in spec["mounts"].as_array_mut().expect("mounts") {
            if m["type"] == "sysfs" || m["type"] == "cgroup" {
                if let Some(opts) = m["options"].as_array_mut() {
                    opts.retain(|o| o != "ro");
                }
            }
        }
        oci = serde_json::from_value(spec).map_err(GenerateError::Spec)?;
    } else {
        let (cap_add, cap_drop) = crate::flags::expand_caps(&o.cap_add, &o.cap_drop);
        let h = HardenOptions {
            no_new_privileges: security.no_new_privileges,
            cap_add: parse_caps(&cap_add)?,
            cap_drop: parse_caps(&cap_drop)?,
            seccomp_unconfined: security.seccomp_unconfined,
        };
        berth_seccomp::defaults::harden(&mut oci, &h);
        if let Some(text) = &inp.seccomp_profile {
            let profile = serde_json::from_str(text).map_err(GenerateError::Seccomp)?;
            let mut linux = oci.linux().clone().unwrap_or_default();
            linux.set_seccomp(Some(profile));
            oci.set_linux(Some(linux));
        }
        // config-linux.md "Masked Paths", "Readonly Paths": given lists
        // replace the defaults.
        if security.masked_paths.is_some() || security.readonly_paths.is_some() {
            let mut linux = oci.linux().clone().unwrap_or_default();
            if let Some(p) = &security.masked_paths {
                linux.set_masked_paths(Some(p.clone()));
            }
            if let Some(p) = &security.readonly_paths {
                linux.set_readonly_paths(Some(p.clone()));
            }
            oci.set_linux(Some(linux));
        }
    }
    Ok(Generated {
        spec: serde_json::to_value(&oci).map_err(GenerateError::Spec)?,
        entrypoint,
        cmd,
        env,
        workdir,
        user: user_spec,
        identity,
        stop_signal,
        hostname,
        cgroups_path,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn masked_and_readonly_paths_replace_the_defaults() {
        let s =
            opts::parse_security_opts(&["readonly-paths=/tmp:/x".into(), "masked-paths=".into()])
                .unwrap();
        assert_eq!(s.readonly_paths, Some(vec!["/tmp".into(), "/x".into()]));
        assert_eq!(s.masked_paths, Some(vec![]));
        assert!(opts::parse_security_opts(&["readonly-paths=tmp".into()]).is_err());
    }

    #[test]
    fn shared_or_slave_bind_mounts_set_the_root_propagation() {
        let v = |s: &str| opts::parse_volume(s).unwrap();
        assert_eq!(rootfs_propagation(&[v("/a:/a")]), None);
        assert_eq!(rootfs_propagation(&[v("/a:/a:rslave")]), Some("rslave"));
        assert_eq!(
            rootfs_propagation(&[v("/a:/a:rslave"), v("/b:/b:shared")]),
            Some("rshared")
        );
    }

    fn image() -> RuntimeConfig {
        RuntimeConfig {
            entrypoint: Some(vec!["/entry".into()]),
            cmd: Some(vec!["serve".into()]),
            env: Some(vec!["PATH=/opt/bin".into(), "A=image".into()]),
            working_dir: Some("/srv".into()),
            user: Some("www".into()),
            stop_signal: Some("SIGQUIT".into()),
            ..Default::default()
        }
    }

    fn opts() -> RunOptions {
        RunOptions {
            image: "img".into(),
            cgroup_parent: "/berth".into(),
            ..Default::default()
        }
    }

    fn gen(o: &RunOptions, img: &RuntimeConfig) -> Result<Generated, GenerateError> {
        let host = |k: &str| (k == "FROM_HOST").then(|| "h".to_string());
        let id = "ab".repeat(32);
        generate(
            o,
            &Inputs {
                id: &id,
                image: img,
                passwd: "root:x:0:0::/root:/bin/sh\nwww:x:33:33::/var/www:/bin/sh\n",
                group: "root:x:0:\nwww:x:33:\n",
                env_file_lines: vec!["F=file".into(), "A=file".into()],
                host_env: &host,
                rootfs: Path::new("/r/merged"),
                seccomp_profile: None,
                host_name: "hostbox".into(),
                netns_path: None,
                init_binary: Some(Path::new("/usr/bin/tini-static")),
            },
        )
    }

    #[test]
    fn image_defaults_are_honoured() {
        let g = gen(&opts(), &image()).expect("generate");
        assert_eq!(g.spec["process"]["args"], json!(["/entry", "serve"]));
        assert_eq!(g.spec["process"]["cwd"], "/srv");
        assert_eq!(g.spec["process"]["user"]["uid"], 33);
        assert_eq!(g.stop_signal, "SIGQUIT");
        assert_eq!(g.spec["root"]["path"], "/r/merged");
        assert_eq!(g.spec["root"]["readonly"], false);
        assert_eq!(
            g.spec["linux"]["cgroupsPath"],
            format!("/berth/{}", "ab".repeat(32))
        );
        assert_eq!(g.hostname, "abababababab");
        assert!(g.env.contains(&"PATH=/opt/bin".to_string()));
        assert!(g.env.contains(&"A=file".to_string()));
        assert!(g.env.contains(&"HOME=/var/www".to_string()));
        assert!(
            g.spec["linux"]["seccomp"].is_object(),
            "hardened by default"
        );
        assert!(g.spec["linux"]["maskedPaths"].is_array());
        let ns = g.spec["linux"]["namespaces"].to_string();
        assert!(ns.contains("network"), "own netns by default: {ns}");
        let caps = g.spec["process"]["capabilities"]["bounding"].to_string();
        assert!(!caps.contains("CAP_SYS_ADMIN"), "{caps}");
    }

    #[test]
    fn flags_override() {
        let mut o = opts();
        o.cmd = vec!["echo".into(), "hi".into()];
        o.env = vec!["A=flag".into(), "FROM_HOST".into(), "MISSING".into()];
        o.workdir = Some("/w".into());
        o.user = Some("1000:1000".into());
        o.tty = true;
        o.read_only = true;
        o.network = Some("host".into());
        o.memory = Some("64m".into());
        o.cpus = Some("0.5".into());
        o.pids_limit = Some(10);
        o.volumes = vec!["/tmp:/data:ro".into()];
        o.cap_add = vec!["sys_admin".into()];
        o.security_opt = vec!["seccomp=unconfined".into(), "no-new-privileges".into()];
        let g = gen(&o, &image()).expect("generate");
        assert_eq!(g.spec["process"]["args"], json!(["/entry", "echo", "hi"]));
        assert!(g.env.contains(&"A=flag".to_string()));
        assert!(g.env.contains(&"FROM_HOST=h".to_string()));
        assert!(!g.env.iter().any(|e| e.starts_with("MISSING")));
        assert!(g.env.contains(&"TERM=xterm".to_string()));
        assert_eq!(g.spec["process"]["cwd"], "/w");
        assert_eq!(g.spec["process"]["user"]["uid"], 1000);
        assert_eq!(g.spec["process"]["terminal"], true);
        assert_eq!(g.spec["process"]["noNewPrivileges"], true);
        assert_eq!(g.spec["root"]["readonly"], true);
        assert_eq!(g.hostname, "hostbox");
        assert!(!g.spec["linux"]["namespaces"]
            .to_string()
            .contains("network"));
        assert_eq!(g.spec["linux"]["resources"]["memory"]["limit"], 64 << 20);
        assert_eq!(g.spec["linux"]["resources"]["cpu"]["quota"], 50_000);
        assert_eq!(g.spec["linux"]["resources"]["pids"]["limit"], 10);
        assert!(g.spec["linux"].get("seccomp").is_none_or(|s| s.is_null()));
        assert!(g.spec["process"]["capabilities"]["bounding"]
            .to_string()
            .contains("CAP_SYS_ADMIN"));
        let mounts = g.spec["mounts"].to_string();
        assert!(
            mounts.contains("/data") && mounts.contains("\"ro\""),
            "{mounts}"
        );
    }

    #[test]
    fn init_wraps_the_command() {
        let g = gen(&opts(), &image()).expect("generate");
        assert!(!g.spec["mounts"].to_string().contains("berth-init"));
        let mut o = opts();
        o.init = true;
        o.cmd = vec!["sh".into(), "-c".into(), "exit 7".into()];
        let g = gen(&o, &image()).expect("generate");
        assert_eq!(
            g.spec["process"]["args"],
            json!(["/run/berth-init", "--", "/entry", "sh", "-c", "exit 7"])
        );
        // What inspect shows as the command stays the user's.
        assert_eq!(g.entrypoint, vec!["/entry".to_string()]);
        let mounts = g.spec["mounts"].as_array().expect("mounts");
        let m = mounts.last().expect("init mount");
        assert_eq!(m["destination"], "/run/berth-init");
        assert_eq!(m["source"], "/usr/bin/tini-static");
        assert_eq!(m["type"], "bind");
        assert!(m["options"].to_string().contains("\"ro\""), "{m}");
        let mut spec = g.spec.clone();
        spec["mounts"]
            .as_array_mut()
            .expect("mounts")
            .push(json!({"destination": "/run", "type": "tmpfs", "source": "tmpfs"}));
        keep_init_mount_last(&mut spec);
        let last = spec["mounts"].as_array().and_then(|a| a.last().cloned());
        assert_eq!(last.expect("last")["destination"], "/run/berth-init");
    }

    #[test]
    fn init_without_a_binary_is_an_error() {
        let mut o = opts();
        o.init = true;
        let host = |_: &str| None;
        let id = "cd".repeat(32);
        let img = image();
        let r = generate(
            &o,
            &Inputs {
                id: &id,
                image: &img,
                passwd: "www:x:33:33::/var/www:/bin/sh\n",
                group: "www:x:33:\n",
                env_file_lines: vec![],
                host_env: &host,
                rootfs: Path::new("/r/merged"),
                seccomp_profile: None,
                host_name: "h".into(),
                netns_path: None,
                init_binary: None,
            },
        );
        assert!(matches!(r, Err(GenerateError::NoInitBinary)));
    }

    #[test]
    fn entrypoint_override_drops_image_cmd() {
        let mut o = opts();
        o.entrypoint = Some("/bin/sh".into());
        let g = gen(&o, &image()).expect("generate");
        assert_eq!(g.spec["process"]["args"], json!(["/bin/sh"]));
        o.entrypoint = Some(String::new());
        assert!(matches!(gen(&o, &image()), Err(GenerateError::NoCommand)));
    }

    #[test]
    fn privileged_and_errors() {
        let mut o = opts();
        o.privileged = true;
        let g = gen(&o, &image()).expect("generate");
        assert!(g.spec["linux"].get("seccomp").is_none_or(|s| s.is_null()));
        assert!(g.spec["linux"]
            .get("maskedPaths")
            .is_none_or(|s| s.is_null()));
        assert!(g.spec["process"]["capabilities"]["bounding"]
            .to_string()
            .contains("CAP_SYS_ADMIN"));
        let mut o = opts();
        o.network = Some("ns:/proc/1/ns/net".into());
        assert!(gen(&o, &image())
            .unwrap_err()
            .to_string()
            .contains("not supported"));
        let mut o = opts();
        o.cap_add = vec!["bogus".into()];
        assert!(matches!(
            gen(&o, &image()),
            Err(GenerateError::Capability(_))
        ));
        let mut o = opts();
        o.user = Some("nobody".into());
        assert!(matches!(gen(&o, &image()), Err(GenerateError::User(_))));
        let mut img = image();
        img.stop_signal = Some("SIGNOPE".into());
        assert!(matches!(
            gen(&opts(), &img),
            Err(GenerateError::StopSignal(_))
        ));
    }
}
