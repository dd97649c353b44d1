//! `commit`: a container's changes (its overlayfs upper dir, or what its
//! vfs copy changed from its image) become one more layer on top of its image; the new config is the container's run
//! configuration with `--change` instructions applied (as `docker commit`).

use std::path::Path;

use anyhow::{bail, Context, Result};
use berth_engine::create::ContainerConfig;
use berth_engine::{lifecycle, manage, Status};
use berth_image::layer_diff::{commit_layer, commit_upper, CommitSpec};
use berth_image::vfs_diff::write_copy_layer;
use berth_image::Reference;
use serde_json::{json, Value};

use super::manage_cmds::CommitArgs;
use super::run::EngineArgs;

/// The instructions `--change` takes (Docker's list).
const CHANGES: &[&str] = &[
    "CMD",
    "ENTRYPOINT",
    "ENV",
    "EXPOSE",
    "LABEL",
    "USER",
    "WORKDIR",
    "VOLUME",
    "STOPSIGNAL",
    "ONBUILD",
];

/// A JSON array (exec form) or a shell command (`/bin/sh -c ...`).
fn command_form(args: &str) -> Vec<String> {
    let t = args.trim();
    if t.starts_with('[') {
        if let Ok(v) = serde_json::from_str::<Vec<String>>(t) {
            return v;
        }
    }
    vec!["/bin/sh".into(), "-c".into(), t.into()]
}

/// Splits `k=v k2="v 2"` pairs (quotes removed); the legacy `KEY value`
/// form when there is no `=` in the first word.
fn pairs(args: &str) -> Vec<(String, String)> {
    let t = args.trim();
    let first = t.split_whitespace().next().unwrap_or_default();
    if !first.contains('=') {
        let (k, v) = t.split_once(char::is_whitespace).unwrap_or((t, ""));
        return vec![(k.to_string(), v.trim().to_string())];
    }
    let mut out = Vec::new();
    let mut cur = String::new();
    let mut quote: Option<char> = None;
    let mut words = Vec::new();
    let mut escaped = false;
    for ch in t.chars() {
        match (ch, quote) {
            _ if escaped => {
                cur.push(ch);
                escaped = false;
            }
            ('\\', _) => escaped = true,
            ('"' | '\'', None) => quote = Some(ch),
            (c, Some(q)) if c == q => quote = None,
            (c, None) if c.is_whitespace() => {
                if !cur.is_empty() {
                    words.push(std::mem::take(&mut cur));
                }
            }
            (c, _) => cur.push(c),
        }
    }
    if !cur.is_empty() {
        words.push(cur);
    }
    for w in words {
        let (k, v) = w.split_once('=').unwrap_or((&w, ""));
        out.push((k.to_string(), v.to_string()));
    }
    out
}

/// Applies one `--change` line to a config's `config` object.
pub fn apply_change(config: &mut Value, change: &str) -> Result<()> {
    let t = change.trim();
    let (instr, args) = t.split_once(char::is_whitespace).unwrap_or((t, ""));
    let instr = instr.to_ascii_uppercase();
    let args = args.trim();
    if !CHANGES.contains(&instr.as_str()) {
        bail!(
            "commit --change {change:?}: {instr} is not supported (use one of {})",
            CHANGES.join(", ")
        );
    }
    if args.is_empty() {
        bail!("commit --change {change:?}: {instr} needs an argument");
    }
    match instr.as_str() {
        "CMD" => config["Cmd"] = json!(command_form(args)),
        "ENTRYPOINT" => config["Entrypoint"] = json!(command_form(args)),
        "ENV" => {
            let mut env: Vec<String> = config["Env"]
                .as_array()
                .map(|a| {
                    a.iter()
                        .filter_map(|v| v.as_str().map(String::from))
                        .collect()
                })
                .unwrap_or_default();
            for (k, v) in pairs(args) {
                berth_engine::opts::set_env(&mut env, &k, &v);
            }
            config["Env"] = json!(env);
        }
        "LABEL" => {
            if !config["Labels"].is_object() {
                config["Labels"] = json!({});
            }
            for (k, v) in pairs(args) {
                config["Labels"][k] = json!(v);
            }
        }
        "EXPOSE" => {
            if !config["ExposedPorts"].is_object() {
                config["ExposedPorts"] = json!({});
            }
            for p in args.split_whitespace() {
                let p = if p.contains('/') {
                    p.to_string()
                } else {
                    format!("{p}/tcp")
                };
                let (port, proto) = p.split_once('/').unwrap_or_default();
                if port.parse::<u16>().is_err() || !matches!(proto, "tcp" | "udp" | "sctp") {
                    bail!("commit --change {change:?}: {p:?} is not PORT[/tcp|udp|sctp]");
                }
                config["ExposedPorts"][p] = json!({});
            }
        }
        "VOLUME" => {
            if !config["Volumes"].is_object() {
                config["Volumes"] = json!({});
            }
            let list = if args.starts_with('[') {
                serde_json::from_str::<Vec<String>>(args)
                    .with_context(|| format!("commit --change {change:?}: bad JSON array"))?
            } else {
                args.split_whitespace().map(String::from).collect()
            };
            for v in list {
                config["Volumes"][v] = json!({});
            }
        }
        "USER" => config["User"] = json!(args),
        "WORKDIR" => config["WorkingDir"] = json!(args),
        "STOPSIGNAL" => {
            if berth_runtime::container::parse_signal(args).is_none() {
                bail!("commit --change {change:?}: {args:?} is not a signal");
            }
            config["StopSignal"] = json!(args);
        }
        "ONBUILD" => {
            let mut list = config["OnBuild"].as_array().cloned().unwrap_or_default();
            list.push(json!(args));
            config["OnBuild"] = Value::Array(list);
        }
        _ => unreachable!("checked against CHANGES"),
    }
    Ok(())
}

/// `commit`.
pub fn commit(root: &Path, e: &EngineArgs, a: &CommitArgs) -> Result<i32> {
    let engine = e.engine(root)?;
    let row = lifecycle::find(&engine, &a.container)?;
    let cfg = ContainerConfig::of(&row)?;
    let names = match &a.image {
        Some(n) => {
            let r = Reference::parse(n)
                .with_context(|| format!("commit: {n:?} is not an image name"))?;
            if r.digest.is_some() {
                bail!("commit: the new name {n} cannot contain a digest");
            }
            vec![r]
        }
        None => Vec::new(),
    };
    // The run configuration of the container, as Docker records it.
    let g = &cfg.generated;
    let mut run_config = json!({});
    // Checked before anything is paused or written.
    for c in &a.changes {
        apply_change(&mut run_config, c)?;
    }
    let env: Vec<&String> = g
        .env
        .iter()
        .filter(|v| !v.starts_with("HOSTNAME="))
        .collect();
    let changes = a.changes.clone();
    let author = a.author.clone();
    let labels = row.labels.clone();
    let edit = move |doc: &mut Value| {
        let c = &mut doc["config"];
        if !c.is_object() {
            *c = json!({});
        }
        c["Cmd"] = if g.cmd.is_empty() {
            Value::Null
        } else {
            json!(g.cmd)
        };
        c["Entrypoint"] = if g.entrypoint.is_empty() {
            Value::Null
        } else {
            json!(g.entrypoint)
        };
        c["Env"] = json!(env);
        if !g.workdir.is_empty() && g.workdir != "/" {
            c["WorkingDir"] = json!(g.workdir);
        }
        if !g.user.is_empty() {
            c["User"] = json!(g.user);
        }
        if !labels.is_empty() {
            if !c["Labels"].is_object() {
                c["Labels"] = json!({});
            }
            for (k, v) in &labels {
                c["Labels"][k] = json!(v);
            }
        }
        for ch in &changes {
            // Validated above.
            let _ = apply_change(c, ch);
        }
        if let Some(a) = &author {
            doc["author"] = json!(a);
        }
    };
    let mut history = json!({
        "created_by": berth_engine::inspect::command_text(&row),
    });
    if let Some(a) = &a.author {
        history["author"] = json!(a);
    }
    if let Some(m) = &a.message {
        history["comment"] = json!(m);
    }
    let store = super::images::open(root)?;
    let paused = a.pause && row.status == Status::Running && !manage::is_paused(&engine, &row);
    if paused {
        manage::pause(&engine, &row.id)?;
    }
    let upper = manage::upper_dir(&engine, &row.id);
    let shift = berth_engine::userns::id_shift(cfg.idmap.as_ref());
    let spec = CommitSpec {
        edit: &edit,
        history,
        names: &names,
        skip: &manage::is_engine_path,
    };
    let made = berth_image::layer_diff::with_id_shift(shift, || {
        if manage::is_vfs_copy(&engine, &row.id) {
            commit_layer(
                &store,
                &row.image_id,
                &upper,
                &|w| write_copy_layer(&upper, &cfg.lowers, &manage::is_engine_path, w),
                &spec,
            )
        } else {
            commit_upper(&store, &row.image_id, &upper, &spec)
        }
    });
    if paused {
        manage::unpause(&engine, &row.id)?;
    }
    let img = made.with_context(|| format!("commit container {}", row.name))?;
    let id = img.record.id.to_string();
    let mut attrs = vec![("container", row.id.as_str())];
    let name = names.first().map(|n| n.to_string());
    if let Some(n) = &name {
        attrs.push(("name", n.as_str()));
    }
    berth_engine::events::record(
        root,
        &berth_engine::events::Event::new("container", "commit", &row.id, &attrs),
    );
    // Docker prints `sha256:ID`; `-q` is podman's flag, and podman prints
    // the bare ID.
    if a.quiet {
        println!("{}", id.strip_prefix("sha256:").unwrap_or(&id));
    } else {
        println!("{id}");
    }
    Ok(0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn changes_as_docker_reads_them() {
        let mut c = json!({"Env": ["A=1"]});
        apply_change(&mut c, r#"CMD ["sh", "-c", "echo hi"]"#).unwrap();
        apply_change(&mut c, "ENTRYPOINT echo x").unwrap();
        apply_change(&mut c, "ENV A=2 B=\"two words\"").unwrap();
        apply_change(&mut c, "ENV C three").unwrap();
        apply_change(&mut c, "EXPOSE 80 53/udp").unwrap();
        apply_change(&mut c, "LABEL a=b").unwrap();
        apply_change(&mut c, "VOLUME /data").unwrap();
        apply_change(&mut c, "workdir /w").unwrap();
        apply_change(&mut c, "ONBUILD RUN true").unwrap();
        assert_eq!(c["Cmd"], json!(["sh", "-c", "echo hi"]));
        assert_eq!(c["Entrypoint"], json!(["/bin/sh", "-c", "echo x"]));
        assert_eq!(c["Env"], json!(["A=2", "B=two words", "C=three"]));
        assert!(c["ExposedPorts"]["53/udp"].is_object());
        assert!(c["ExposedPorts"]["80/tcp"].is_object());
        assert_eq!(c["Labels"]["a"], "b");
        assert!(c["Volumes"]["/data"].is_object());
        assert_eq!(c["WorkingDir"], "/w");
        assert_eq!(c["OnBuild"], json!(["RUN true"]));
        assert!(apply_change(&mut c, "RUN true").is_err());
        assert!(apply_change(&mut c, "STOPSIGNAL NOPE").is_err());
        assert!(apply_change(&mut c, "EXPOSE abc").is_err());
    }
}
