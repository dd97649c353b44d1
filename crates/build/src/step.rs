//! Executing one instruction (a cache miss) on a stage's image: RUN in a
//! container, COPY/ADD as a layer, the rest as config changes.

use std::path::Path;

use serde_json::{json, Value};

use berth_image::Store;

use crate::build::{BuildOptions, DEFAULT_PATH};
use crate::copy::{self, View};
use crate::ignore::Ignore;
use crate::mounts::{self, Held, MountOpt, Sources};
use crate::parse::{Form, Instruction};
use crate::plan::CopyPlan;
use crate::run::{RunFile, RunSpec};
use crate::stage::Stage;
use crate::subst::{expand, raw_words, words};
use crate::BuildError;

pub(crate) fn step_err(ins: &Instruction, msg: impl std::fmt::Display) -> BuildError {
    BuildError::Step {
        line: ins.line,
        instr: ins.keyword.clone(),
        msg: msg.to_string(),
    }
}

fn set_env(env: &mut Vec<String>, k: &str, v: &str) {
    let entry = format!("{k}={v}");
    match env
        .iter_mut()
        .find(|e| e.split_once('=').map(|p| p.0) == Some(k))
    {
        Some(e) => *e = entry,
        None => env.push(entry),
    }
}

/// `KEY=VALUE ...` (values expanded) or the legacy `KEY VALUE` form.
fn pairs(
    ins: &Instruction,
    env: &dyn Fn(&str) -> Option<String>,
    esc: char,
) -> Result<Vec<(String, String)>, BuildError> {
    let raw = raw_words(&ins.args, esc);
    let Some(first) = raw.first() else {
        return Err(step_err(ins, "needs at least one KEY=VALUE"));
    };
    if !first.contains('=') {
        if ins.keyword == "LABEL" {
            return Err(step_err(ins, "needs KEY=VALUE pairs"));
        }
        let rest = ins.args.trim()[first.len()..].trim();
        let v = expand(rest, env, esc).map_err(|e| step_err(ins, e))?;
        return Ok(vec![(first.clone(), v)]);
    }
    let mut out = Vec::new();
    for w in raw {
        let Some((k, v)) = w.split_once('=') else {
            return Err(step_err(ins, format!("{w:?} is not KEY=VALUE")));
        };
        let k = expand(k, env, esc).map_err(|e| step_err(ins, e))?;
        let v = expand(v, env, esc).map_err(|e| step_err(ins, e))?;
        out.push((k, v));
    }
    Ok(out)
}

/// What a shell-form RUN executes.
enum Script {
    /// Text for the stage's shell.
    Shell(String),
    /// `RUN <<EOF` whose body starts with `#!`: the body as an
    /// executable file (name, body), run by its interpreter.
    File(String, String),
}

/// The shell text of a shell-form RUN with its heredocs (BuildKit's
/// reading): `RUN <<EOF` alone runs the body as the script (as a file of
/// its own when it starts with a `#!` line); otherwise the shell gets the
/// line and the heredocs as written and handles them (so `RUN python3
/// <<EOF` feeds the body to python3's stdin).
fn run_script(ins: &Instruction, line: String) -> Script {
    let Some(first) = ins.heredocs.first() else {
        return Script::Shell(line);
    };
    let bare = ins.heredocs.len() == 1
        && line
            .trim()
            .trim_start_matches("<<")
            .trim_start_matches('-')
            .trim_matches(['"', '\''])
            == first.name;
    if bare {
        if first.body.starts_with("#!") {
            return Script::File(first.name.clone(), first.body.clone());
        }
        return Script::Shell(first.body.clone());
    }
    let mut text = line;
    for h in &ins.heredocs {
        text.push('\n');
        text.push_str(&h.body);
        text.push_str(&h.name);
    }
    Script::Shell(text)
}

/// `HEALTHCHECK NONE` or `HEALTHCHECK [--interval=D --timeout=D
/// --start-period=D --start-interval=D --retries=N] CMD command` as the
/// config's `Healthcheck` (Docker's form: durations in nanoseconds, Test
/// `["CMD", ...]` for exec form, `["CMD-SHELL", "..."]` for shell form).
fn healthcheck(ins: &Instruction) -> Result<Value, BuildError> {
    let args = ins.args.trim();
    let (word, rest) = args.split_once(char::is_whitespace).unwrap_or((args, ""));
    if word.eq_ignore_ascii_case("NONE") {
        if !ins.flags.is_empty() || !rest.trim().is_empty() {
            return Err(step_err(
                ins,
                "HEALTHCHECK NONE takes no options or arguments",
            ));
        }
        return Ok(json!({"Test": ["NONE"]}));
    }
    if !word.eq_ignore_ascii_case("CMD") || rest.trim().is_empty() {
        return Err(step_err(
            ins,
            "expected HEALTHCHECK [OPTIONS] CMD command, or HEALTHCHECK NONE",
        ));
    }
    ins.check_flags(&[
        "interval",
        "timeout",
        "start-period",
        "start-interval",
        "retries",
    ])?;
    let rest = rest.trim();
    let test = match serde_json::from_str::<Vec<String>>(rest) {
        Ok(v) if rest.starts_with('[') => {
            let mut t = vec!["CMD".to_string()];
            t.extend(v);
            t
        }
        _ => vec!["CMD-SHELL".to_string(), rest.to_string()],
    };
    let mut hc = json!({"Test": test});
    for (flag, key) in [
        ("interval", "Interval"),
        ("timeout", "Timeout"),
        ("start-period", "StartPeriod"),
        ("start-interval", "StartInterval"),
    ] {
        if let Some(v) = ins.flag(flag) {
            let ns = berth_engine::health::parse_duration("HEALTHCHECK", v)
                .map_err(|e| step_err(ins, format!("--{flag}={v}: {}", crate::chain(&e))))?;
            hc[key] = json!(ns);
        }
    }
    if let Some(v) = ins.flag("retries") {
        let n: u64 = v
            .parse()
            .map_err(|_| step_err(ins, format!("--retries={v}: not a number")))?;
        hc["Retries"] = json!(n);
    }
    Ok(hc)
}

/// The `--mount`s of a RUN, parsed.
pub(crate) fn run_mounts(ins: &Instruction) -> Result<Vec<MountOpt>, BuildError> {
    ins.flags
        .iter()
        .filter(|(k, _)| k == "mount")
        .map(|(_, v)| mounts::parse(v).map_err(|e| step_err(ins, e)))
        .collect()
}

/// Runs one step (a cache miss) on the stage's image.
#[allow(clippy::too_many_arguments)]
pub(crate) fn step(
    store: &Store,
    ins: &Instruction,
    st: &mut Stage,
    plan: Option<CopyPlan>,
    esc: char,
    o: &BuildOptions,
    ignore: &Ignore,
    sources: &Sources<'_>,
) -> Result<(), BuildError> {
    let kw = ins.keyword.as_str();
    if !matches!(kw, "RUN" | "HEALTHCHECK") && plan.is_none() {
        ins.check_flags(&[])?;
    }
    let created_by = format!("/bin/sh -c #(nop) {}", ins.text());
    match kw {
        "RUN" => {
            ins.check_flags(&["mount", "network"])?;
            let host_network = match ins.flag("network") {
                None | Some("default") => o.host_network,
                Some("none") => false,
                Some("host") => true,
                Some(n) => {
                    return Err(step_err(
                        ins,
                        format!("--network={n}: expected none, host or default"),
                    ))
                }
            };
            let ms = run_mounts(ins)?;
            let mut held = Held::default();
            let extra = sources
                .prepare(&ms, &mut held)
                .map_err(|e| step_err(ins, e))?;
            let mut files = Vec::new();
            let argv = match ins.form() {
                Form::Exec(v) => v,
                Form::Shell(s) => match run_script(ins, s) {
                    Script::Shell(text) => {
                        let mut a = st.shell.clone();
                        a.push(text);
                        a
                    }
                    Script::File(name, body) => {
                        // BuildKit's place for heredoc files; /dev is the
                        // container's tmpfs, so it is not in the layer.
                        let dest = format!("/dev/pipes/{name}");
                        files.push(RunFile {
                            dest: dest.clone(),
                            data: body.into_bytes(),
                            mode: 0o755,
                        });
                        vec![dest]
                    }
                },
            };
            if argv.is_empty() {
                return Err(step_err(ins, "needs a command"));
            }
            let mut env = st.img.env();
            if !env.iter().any(|e| e.starts_with("PATH=")) {
                env.insert(0, format!("PATH={DEFAULT_PATH}"));
            }
            // Build args are in RUN's environment, below ENV.
            for (k, v) in &st.args {
                if !env
                    .iter()
                    .any(|e| e.split_once('=').map(|p| p.0) == Some(k))
                {
                    env.push(format!("{k}={v}"));
                }
            }
            let wd = st.img.field("WorkingDir");
            let user = st.img.field("User");
            let lowers = st.img.lowers(store)?;
            let (d, size) = o.runner.run(
                store,
                &lowers,
                &RunSpec {
                    argv: argv.clone(),
                    env,
                    cwd: if wd.is_empty() { "/".into() } else { wd },
                    user: if user.is_empty() { "0" } else { &user },
                    files,
                    mounts: extra,
                    host_network,
                    fixed_mtime: o.timestamp.is_some(),
                },
            )?;
            st.img.push_layer(d, size);
            let by = match ins.form() {
                Form::Exec(_) => serde_json::to_string(&argv).expect("argv serialises"),
                Form::Shell(s) => format!("{} {s}", st.shell.join(" ")),
            };
            st.img.history(&by, false);
        }
        "COPY" | "ADD" => {
            let mut plan = plan.expect("planned before the cache lookup");
            plan.resolve(store)?;
            let lowers = if plan.link {
                Vec::new()
            } else {
                st.img.lowers(store)?
            };
            let view = View::mount(store, &lowers)?;
            let (d, size) = copy::copy_layer(
                store,
                &view.path,
                &plan.srcs,
                &plan.dest,
                &plan.own,
                &ins.keyword,
                &|p: &Path| plan.from_context && ignore.excluded(p),
                o.timestamp.is_some(),
            )?;
            drop(view);
            st.img.push_layer(d, size);
            st.img
                .history(&format!("/bin/sh -c #(nop) {}", ins.text()), false);
        }
        "ENV" => {
            let ps = {
                let l = st.lookup();
                pairs(ins, &l, esc)?
            };
            let mut env = st.img.env();
            for (k, v) in ps {
                set_env(&mut env, &k, &v);
            }
            st.img.run_config()["Env"] = json!(env);
            st.img.history(&created_by, true);
        }
        "LABEL" => {
            let ps = {
                let l = st.lookup();
                pairs(ins, &l, esc)?
            };
            let c = st.img.run_config();
            if !c["Labels"].is_object() {
                c["Labels"] = json!({});
            }
            for (k, v) in ps {
                c["Labels"][k] = json!(v);
            }
            st.img.history(&created_by, true);
        }
        "HEALTHCHECK" => {
            let hc = healthcheck(ins)?;
            st.img.run_config()["Healthcheck"] = hc;
            st.img.history(&created_by, true);
        }
        "ONBUILD" => {
            let c = st.img.run_config();
            let mut list = c["OnBuild"].as_array().cloned().unwrap_or_default();
            list.push(json!(ins.args.trim()));
            c["OnBuild"] = Value::Array(list);
            st.img.history(&created_by, true);
        }
        "MAINTAINER" => {
            st.img.config["author"] = json!(ins.args.trim());
            st.img.history(&created_by, true);
        }
        "EXPOSE" => {
            let ws = {
                let l = st.lookup();
                words(&ins.args, &l, esc).map_err(|e| step_err(ins, e))?
            };
            let c = st.img.run_config();
            if !c["ExposedPorts"].is_object() {
                c["ExposedPorts"] = json!({});
            }
            for p in ws {
                let p = if p.contains('/') {
                    p
                } else {
                    format!("{p}/tcp")
                };
                let (port, proto) = p.split_once('/').unwrap_or_default();
                let ok_port = match port.split_once('-') {
                    Some((a, b)) => a.parse::<u16>().is_ok() && b.parse::<u16>().is_ok(),
                    None => port.parse::<u16>().is_ok(),
                };
                if !ok_port || !matches!(proto, "tcp" | "udp" | "sctp") {
                    return Err(step_err(ins, format!("{p:?} is not PORT[/tcp|udp|sctp]")));
                }
                c["ExposedPorts"][p] = json!({});
            }
            st.img.history(&created_by, true);
        }
        "VOLUME" => {
            let list = match ins.form() {
                Form::Exec(v) => v,
                Form::Shell(s) => {
                    let l = st.lookup();
                    words(&s, &l, esc).map_err(|e| step_err(ins, e))?
                }
            };
            if list.is_empty() {
                return Err(step_err(ins, "needs a path"));
            }
            let c = st.img.run_config();
            if !c["Volumes"].is_object() {
                c["Volumes"] = json!({});
            }
            for v in list {
                c["Volumes"][v] = json!({});
            }
            st.img.history(&created_by, true);
        }
        "USER" | "WORKDIR" | "STOPSIGNAL" => {
            let v = {
                let l = st.lookup();
                expand(ins.args.trim(), &l, esc).map_err(|e| step_err(ins, e))?
            };
            if v.is_empty() {
                return Err(step_err(ins, "needs an argument"));
            }
            let (field, v) = match kw {
                "USER" => ("User", v),
                "WORKDIR" => {
                    let cur = st.img.field("WorkingDir");
                    let v = if v.starts_with('/') {
                        v
                    } else {
                        format!(
                            "{}/{v}",
                            if cur.is_empty() {
                                ""
                            } else {
                                cur.trim_end_matches('/')
                            }
                        )
                    };
                    ("WorkingDir", v)
                }
                _ => {
                    let ok = berth_runtime::container::parse_signal(&v).is_some();
                    if !ok {
                        return Err(step_err(ins, format!("{v:?} is not a signal")));
                    }
                    ("StopSignal", v)
                }
            };
            st.img.run_config()[field] = json!(v);
            st.img.history(&created_by, true);
        }
        "CMD" | "ENTRYPOINT" => {
            let v = match ins.form() {
                Form::Exec(v) => v,
                Form::Shell(s) => {
                    let mut a = st.shell.clone();
                    a.push(s);
                    a
                }
            };
            let c = st.img.run_config();
            if kw == "CMD" {
                c["Cmd"] = json!(v);
            } else {
                c["Entrypoint"] = json!(v);
                // Docker: an ENTRYPOINT resets a CMD the base image set
                // (one set earlier in this stage stays).
                if !st.cmd_set {
                    c["Cmd"] = Value::Null;
                }
            }
            st.img.history(&created_by, true);
        }
        other => {
            return Err(step_err(
                ins,
                format!("{other} is not supported yet by berth build"),
            ))
        }
    }
    Ok(())
}
