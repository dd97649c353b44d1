//! Executing a Containerfile: stages in order, each instruction a step
//! whose result (layers + config) is stored and recorded in the cache.

use std::collections::BTreeMap;
use std::fs;
use std::io::Write;
use std::path::PathBuf;

use berth_image::image::{commit, resolve, ResolvedImage};
use berth_image::manifest::OCI_MANIFEST;
use berth_image::{Reference, Store};
use serde_json::{json, Value};
use sha2::{Digest as _, Sha256};

use crate::cache::{cached, remember};
use crate::ignore::Ignore;
use crate::parse::{parse, Form, Instruction};
use crate::plan::plan_copy;
use crate::run::Runner;
use crate::stage::{arg_pairs, from, img_id, predefined, Stage};
use crate::step::{step, step_err};
use crate::BuildError;

/// Docker's default PATH for build steps when the image sets none.
pub(crate) const DEFAULT_PATH: &str =
    "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";

/// What `berth build` was asked.
#[derive(Debug, Clone)]
pub struct BuildOptions {
    /// The context directory.
    pub context: PathBuf,
    /// `-f`: the Containerfile (else `Containerfile`, then `Dockerfile`
    /// in the context).
    pub file: Option<PathBuf>,
    /// `-t` names.
    pub tags: Vec<Reference>,
    /// `--build-arg K=V`.
    pub build_args: BTreeMap<String, String>,
    /// `--label K=V` for the final image.
    pub labels: Vec<(String, String)>,
    /// `--target`: the stage to build (and the ones it follows); the
    /// last stage when `None`.
    pub target: Option<String>,
    /// `--no-cache`.
    pub no_cache: bool,
    /// `-q`: no step progress.
    pub quiet: bool,
    /// How RUN containers start.
    pub runner: Runner,
    /// Whether the user asked to stop (Ctrl-C): checked before each step,
    /// so an interrupted build cleans up like a failed one.
    pub interrupted: fn() -> bool,
}

/// The Containerfile of a context: `-f`, else `Containerfile`, else
/// `Dockerfile`.
fn containerfile(o: &BuildOptions) -> Result<PathBuf, BuildError> {
    if let Some(f) = &o.file {
        return Ok(if f.is_absolute() || f.exists() {
            f.clone()
        } else {
            o.context.join(f)
        });
    }
    for n in ["Containerfile", "Dockerfile"] {
        let p = o.context.join(n);
        if p.is_file() {
            return Ok(p);
        }
    }
    Err(BuildError::Other(format!(
        "no Containerfile or Dockerfile in {} (name one with -f)",
        o.context.display()
    )))
}

/// Builds the image; returns it stored under the `-t` names.
pub fn build(store: &Store, o: &BuildOptions) -> Result<ResolvedImage, BuildError> {
    if !o.context.is_dir() {
        return Err(BuildError::Other(format!(
            "build context {} is not a directory",
            o.context.display()
        )));
    }
    let ignore = Ignore::load(&o.context)?;
    let path = containerfile(o)?;
    let text = fs::read_to_string(&path)
        .map_err(|e| BuildError::Other(format!("read {}: {e}", path.display())))?;
    let file = parse(&text)?;
    let esc = file.escape;
    let mut instructions = file.instructions;
    if let Some(t) = &o.target {
        // The stage named `t` ends where the next FROM begins.
        let named = |i: &Instruction| {
            let w: Vec<&str> = i.args.split_whitespace().collect();
            i.keyword == "FROM"
                && w.len() == 3
                && w[1].eq_ignore_ascii_case("as")
                && w[2].eq_ignore_ascii_case(t)
        };
        let start = instructions.iter().position(named).ok_or_else(|| {
            BuildError::Other(format!(
                "--target {t}: no stage has that name (FROM ... AS {t})"
            ))
        })?;
        if let Some(next) = instructions[start + 1..]
            .iter()
            .position(|i| i.keyword == "FROM")
        {
            instructions.truncate(start + 1 + next);
        }
    }
    let total = instructions.len();
    let mut out = std::io::stdout();
    let mut say = |s: String| {
        if !o.quiet {
            let _ = writeln!(out, "{s}");
            let _ = out.flush();
        }
    };
    let mut global: BTreeMap<String, String> = BTreeMap::new();
    let mut stages: Vec<Stage> = Vec::new();
    let mut cur: Option<Stage> = None;
    let mut total = total;
    let mut queue: std::collections::VecDeque<Instruction> = instructions.into();
    // Steps done so far (the next one is `n + 1`).
    let mut n = 0;
    while let Some(ins) = queue.pop_front() {
        let ins = &ins;
        if (o.interrupted)() {
            return Err(BuildError::Other(format!(
                "interrupted before step {}/{total} (line {})",
                n + 1,
                ins.line
            )));
        }
        say(format!("STEP {}/{total}: {}", n + 1, ins.text()));
        n += 1;
        if ins.keyword == "FROM" {
            if let Some(s) = cur.take() {
                stages.push(s);
            }
            let mut st = from(store, ins, &global, &stages, esc, o)?;
            // The base's ONBUILD triggers run first, at this line (and
            // are not inherited further).
            let triggers: Vec<String> = st.img.config["config"]["OnBuild"]
                .as_array()
                .map(|a| {
                    a.iter()
                        .filter_map(|v| v.as_str().map(String::from))
                        .collect()
                })
                .unwrap_or_default();
            if !triggers.is_empty() {
                st.img.run_config()["OnBuild"] = Value::Null;
                for t in triggers.iter().rev() {
                    let f = parse(&format!("FROM scratch\n{t}\n")).map_err(|e| {
                        step_err(ins, format!("ONBUILD trigger {t:?} of the base image: {e}"))
                    })?;
                    let mut tr = f.instructions[1].clone();
                    tr.line = ins.line;
                    queue.push_front(tr);
                    total += 1;
                }
            }
            cur = Some(st);
            continue;
        }
        let Some(st) = cur.as_mut() else {
            // Before the first FROM only ARG is allowed (the parser checks).
            let lookup = |k: &str| global.get(k).cloned();
            for (k, v) in arg_pairs(ins, &lookup, esc)? {
                let v = o.build_args.get(&k).cloned().or(v).unwrap_or_default();
                global.insert(k, v);
            }
            continue;
        };
        match ins.keyword.as_str() {
            "ARG" => {
                let decl = {
                    let l = st.lookup();
                    arg_pairs(ins, &l, esc)?
                };
                for (k, v) in decl {
                    let v = o
                        .build_args
                        .get(&k)
                        .cloned()
                        .or(v)
                        .or_else(|| global.get(&k).cloned())
                        .or_else(|| predefined(&k))
                        .unwrap_or_default();
                    st.args.insert(k, v);
                }
                continue;
            }
            "SHELL" => match ins.form() {
                Form::Exec(v) if !v.is_empty() => {
                    st.shell = v;
                    continue;
                }
                _ => {
                    return Err(step_err(
                        ins,
                        "needs a JSON array, e.g. [\"/bin/sh\", \"-c\"]",
                    ))
                }
            },
            _ => {}
        }
        // The step's key: parent key, instruction, what it sees.
        let mut h = Sha256::new();
        h.update(st.key.as_bytes());
        h.update(b"\n");
        h.update(ins.text().as_bytes());
        h.update(b"\n");
        h.update(serde_json::to_vec(&st.args).expect("args serialise"));
        h.update(serde_json::to_vec(&st.shell).expect("shell serialises"));
        h.update([u8::from(st.cmd_set)]);
        if ins.keyword == "CMD" {
            st.cmd_set = true;
        }
        let mut copy_plan = None;
        if matches!(ins.keyword.as_str(), "COPY" | "ADD") {
            let plan = plan_copy(store, ins, st, &stages, esc, o, &ignore)?;
            h.update(plan.digest.as_bytes());
            copy_plan = Some(plan);
        }
        let key = hex::encode(h.finalize());
        if !o.no_cache {
            if let Some(img) = cached(store, &key) {
                let id = img_id(&img);
                say(format!("--> Using cache {id}"));
                st.img = img;
                st.key = key;
                continue;
            }
        }
        step(store, ins, st, copy_plan, esc, o, &ignore).map_err(|e| match e {
            BuildError::Other(m) => step_err(ins, m),
            e => e,
        })?;
        let m = st.img.save(store)?;
        remember(store, &key, &m)?;
        st.key = key;
        let id = img_id(&st.img);
        say(format!("--> {}", &id[..12.min(id.len())]));
    }
    let mut last = cur.ok_or(BuildError::Parse(crate::parse::ParseError::NoFrom))?;
    if !o.labels.is_empty() {
        let c = last.img.run_config();
        if !c["Labels"].is_object() {
            c["Labels"] = json!({});
        }
        for (k, v) in &o.labels {
            c["Labels"][k] = json!(v);
        }
    }
    let m = last.img.save(store)?;
    if let Some(t) = o.tags.first() {
        say(format!("COMMIT {t}"));
    }
    let lock = store.lock()?;
    let img = commit(store, &lock, &m, Some(OCI_MANIFEST), &o.tags)?;
    drop(lock);
    for t in &o.tags {
        say(format!("Successfully tagged {t}"));
    }
    let img = resolve(store, &img.record)?;
    Ok(img)
}
