//! Executing a Containerfile: stages in order, each instruction a step
//! whose result (layers + config) is stored and recorded in the cache.

use std::collections::BTreeMap;
use std::fs;
use std::io::Write;
use std::path::{Path, PathBuf};

use berth_image::digest::Digest;
use berth_image::image::{commit, resolve, ResolvedImage};
use berth_image::manifest::OCI_MANIFEST;
use berth_image::{Reference, Store};
use serde_json::{json, Value};
use sha2::{Digest as _, Sha256};

use crate::copy::{self, Ownership, View};
use crate::ignore::Ignore;
use crate::image::Img;
use crate::parse::{parse, Form, Instruction};
use crate::run::{RunSpec, Runner};
use crate::subst::{expand, raw_words, words};
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

/// One stage being built.
struct Stage {
    name: Option<String>,
    img: Img,
    /// Cache key of the current step.
    key: String,
    shell: Vec<String>,
    /// ARGs declared in this stage and their values.
    args: BTreeMap<String, String>,
    /// Whether this stage set CMD (then ENTRYPOINT keeps it, as Docker).
    cmd_set: bool,
}

impl Stage {
    /// What substitution sees: ENV over ARG.
    fn lookup(&self) -> impl Fn(&str) -> Option<String> + '_ {
        move |k: &str| {
            for e in self.img.env() {
                if let Some((ek, v)) = e.split_once('=') {
                    if ek == k {
                        return Some(v.to_string());
                    }
                }
            }
            self.args.get(k).cloned()
        }
    }
}

fn step_err(ins: &Instruction, msg: impl std::fmt::Display) -> BuildError {
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

fn cache_path(store: &Store, key: &str) -> PathBuf {
    store.dir().join("build-cache").join(key)
}

/// The step result cached under `key`, when usable.
fn cached(store: &Store, key: &str) -> Option<Img> {
    let d = fs::read_to_string(cache_path(store, key)).ok()?;
    let d = Digest::parse(d.trim()).ok()?;
    Img::load(store, &d).ok()
}

fn remember(store: &Store, key: &str, manifest: &Digest) -> Result<(), BuildError> {
    let p = cache_path(store, key);
    let dir = p.parent().expect("cache dir");
    fs::create_dir_all(dir).map_err(|e| BuildError::Other(format!("{}: {e}", dir.display())))?;
    let tmp = dir.join(format!(".{key}.tmp"));
    fs::write(&tmp, manifest.to_string())
        .and_then(|()| fs::rename(&tmp, &p))
        .map_err(|e| BuildError::Other(format!("{}: {e}", p.display())))
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

fn img_id(img: &Img) -> String {
    Digest::of_bytes(&serde_json::to_vec(&img.config).expect("config serialises"))
        .hex()
        .to_string()
}

/// `ARG NAME[=default] ...`.
fn arg_pairs(
    ins: &Instruction,
    env: &dyn Fn(&str) -> Option<String>,
    esc: char,
) -> Result<Vec<(String, Option<String>)>, BuildError> {
    let raw = raw_words(&ins.args, esc);
    if raw.is_empty() {
        return Err(step_err(ins, "needs a name"));
    }
    let mut out = Vec::new();
    for w in raw {
        match w.split_once('=') {
            Some((k, v)) => out.push((
                k.to_string(),
                Some(expand(v, env, esc).map_err(|e| step_err(ins, e))?),
            )),
            None => out.push((w, None)),
        }
    }
    Ok(out)
}

fn from(
    store: &Store,
    ins: &Instruction,
    global: &BTreeMap<String, String>,
    stages: &[Stage],
    esc: char,
    o: &BuildOptions,
) -> Result<Stage, BuildError> {
    ins.check_flags(&[])?;
    let lookup = |k: &str| global.get(k).cloned().or_else(|| predefined(k));
    let w = words(&ins.args, &lookup, esc).map_err(|e| step_err(ins, e))?;
    let (base, name) = match w.as_slice() {
        [b] => (b.clone(), None),
        [b, as_, n] if as_.eq_ignore_ascii_case("as") => (b.clone(), Some(n.to_ascii_lowercase())),
        _ => return Err(step_err(ins, "expected FROM IMAGE [AS NAME]")),
    };
    let (img, key) = if base == "scratch" {
        (Img::scratch(), "scratch".to_string())
    } else if let Some(s) = stages
        .iter()
        .find(|s| s.name.as_deref() == Some(&base.to_ascii_lowercase()))
    {
        (s.img.clone(), s.key.clone())
    } else {
        stored_image(store, &base)
            .map_err(|e| step_err(ins, format!("base {e}; pull it first: berth pull {base}")))?
    };
    let _ = o;
    Ok(Stage {
        name,
        img,
        key,
        shell: vec!["/bin/sh".into(), "-c".into()],
        args: BTreeMap::new(),
        cmd_set: false,
    })
}

/// The shell text of a shell-form RUN with its heredocs (BuildKit's
/// reading): `RUN <<EOF` alone runs the body as the script; otherwise the
/// shell gets the line and the heredocs as written and handles them.
fn run_script(ins: &Instruction, line: String) -> Result<String, BuildError> {
    let Some(first) = ins.heredocs.first() else {
        return Ok(line);
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
            return Err(step_err(
                ins,
                "a heredoc script with a #! interpreter line is not supported yet",
            ));
        }
        return Ok(first.body.clone());
    }
    let mut text = line;
    for h in &ins.heredocs {
        text.push('\n');
        text.push_str(&h.body);
        text.push_str(&h.name);
    }
    Ok(text)
}

/// The platform ARGs BuildKit predefines (Dockerfile reference,
/// "Automatic platform ARGs in the global scope"): usable in FROM lines,
/// and in a stage once declared with `ARG NAME`.
fn predefined(k: &str) -> Option<String> {
    let arch = match std::env::consts::ARCH {
        "x86_64" => "amd64",
        "aarch64" => "arm64",
        other => other,
    };
    match k {
        "TARGETPLATFORM" | "BUILDPLATFORM" => Some(format!("linux/{arch}")),
        "TARGETOS" | "BUILDOS" => Some("linux".into()),
        "TARGETARCH" | "BUILDARCH" => Some(arch.into()),
        "TARGETVARIANT" | "BUILDVARIANT" => Some(String::new()),
        _ => None,
    }
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

/// An image of the store and its cache key (`image:<id>`).
fn stored_image(store: &Store, name: &str) -> Result<(Img, String), String> {
    let rec = {
        let _l = store.lock_shared().map_err(|e| crate::chain(&e))?;
        store
            .lookup(name)
            .map_err(|e| format!("image {name} is not in the store ({})", crate::chain(&e)))?
    };
    let r = resolve(store, &rec).map_err(|e| crate::chain(&e))?;
    let config = store
        .read_blob(&r.manifest.config.digest, false)
        .map_err(|e| crate::chain(&e))
        .and_then(|b| serde_json::from_slice(&b).map_err(|e| format!("config of {name}: {e}")))?;
    Ok((
        Img {
            layers: r.manifest.layers.clone(),
            config,
        },
        format!("image:{}", r.record.id),
    ))
}

/// What a COPY/ADD will take, decided before the cache lookup.
struct CopyPlan {
    srcs: Vec<PathBuf>,
    dest: String,
    own: Ownership,
    digest: String,
    /// Sources are in the context (so the ignore file applies).
    from_context: bool,
    /// Keeps the `--from` stage's view mounted while copying.
    _view: Option<View>,
}

fn plan_copy(
    store: &Store,
    ins: &Instruction,
    st: &Stage,
    stages: &[Stage],
    esc: char,
    o: &BuildOptions,
    ignore: &Ignore,
) -> Result<CopyPlan, BuildError> {
    let is_copy = ins.keyword == "COPY";
    ins.check_flags(if is_copy {
        &["chown", "chmod", "from"]
    } else {
        &["chown", "chmod"]
    })?;
    let lookup = st.lookup();
    let mut list = match ins.form() {
        Form::Exec(v) => v
            .iter()
            .map(|w| expand(w, &lookup, esc))
            .collect::<Result<Vec<_>, _>>(),
        Form::Shell(s) => words(&s, &lookup, esc),
    }
    .map_err(|e| step_err(ins, e))?;
    if list.len() < 2 {
        return Err(step_err(ins, "needs at least one source and a destination"));
    }
    let dest = list.pop().expect("two or more");
    let workdir = st.img.field("WorkingDir");
    let dest = if dest.starts_with('/') {
        dest
    } else {
        let base = if workdir.is_empty() { "/" } else { &workdir };
        let mut d = format!("{}/{dest}", base.trim_end_matches('/'));
        if dest == "." || dest.ends_with('/') {
            d.push('/');
        }
        d
    };
    let mut digest = String::new();
    let (root, view) = match ins.flag("from") {
        Some(f) => {
            let stage = stages.iter().enumerate().find(|(i, s)| {
                s.name.as_deref() == Some(&f.to_ascii_lowercase()) || f == i.to_string()
            });
            let img = match stage {
                Some((_, s)) => {
                    digest.push_str(&s.key);
                    s.img.clone()
                }
                // Not a stage: an image in the store (Docker's
                // `COPY --from=IMAGE`).
                None => {
                    let (img, key) = stored_image(store, f).map_err(|e| {
                        step_err(
                            ins,
                            format!("--from={f}: no earlier stage has that name or index, and {e}"),
                        )
                    })?;
                    digest.push_str(&key);
                    img
                }
            };
            let v = View::mount(store, &img.lowers(store)?)?;
            (v.path.clone(), Some(v))
        }
        None => (o.context.clone(), None),
    };
    let what = if view.is_some() {
        format!("{} --from", ins.keyword)
    } else {
        ins.keyword.clone()
    };
    let from_context = view.is_none();
    let skip = |p: &Path| from_context && ignore.excluded(p);
    let srcs = copy::sources(&root, &list, &what, &skip).map_err(|e| match e {
        BuildError::Other(m) => step_err(ins, m),
        e => e,
    })?;
    if !is_copy {
        for (s, p) in srcs.iter().zip(&list) {
            if p.contains("://") {
                return Err(step_err(
                    ins,
                    format!("{p}: ADD from a URL is not supported yet"),
                ));
            }
            if s.is_file() && copy::looks_like_archive(s) {
                return Err(step_err(
                    ins,
                    format!("{p}: ADD of a local archive (auto-extraction) is not supported yet; use COPY and RUN tar"),
                ));
            }
        }
    }
    digest.push_str(&copy::content_digest(&srcs, &skip)?);
    let chmod = match ins.flag("chmod") {
        Some(m) => Some(
            u32::from_str_radix(m, 8)
                .map_err(|_| step_err(ins, format!("--chmod={m}: not an octal mode")))?,
        ),
        None => None,
    };
    let chown = match ins.flag("chown") {
        Some(c) => {
            let lowers = st.img.lowers(store)?;
            let passwd = berth_engine::user::read_from_layers(&lowers, "etc/passwd");
            let group = berth_engine::user::read_from_layers(&lowers, "etc/group");
            let c = expand(c, &lookup, esc).map_err(|e| step_err(ins, e))?;
            let id = berth_engine::user::resolve(&c, &passwd, &group)
                .map_err(|e| step_err(ins, format!("--chown={c}: {}", crate::chain(&e))))?;
            digest.push_str(&format!(":{}:{}", id.uid, id.gid));
            Some((id.uid, id.gid))
        }
        None => None,
    };
    Ok(CopyPlan {
        srcs,
        dest,
        own: Ownership {
            chown,
            keep_owner: view.is_some(),
            chmod,
        },
        digest,
        from_context,
        _view: view,
    })
}

/// Runs one step (a cache miss) on the stage's image.
fn step(
    store: &Store,
    ins: &Instruction,
    st: &mut Stage,
    plan: Option<CopyPlan>,
    esc: char,
    o: &BuildOptions,
    ignore: &Ignore,
) -> Result<(), BuildError> {
    let kw = ins.keyword.as_str();
    if !matches!(kw, "RUN" | "HEALTHCHECK") && plan.is_none() {
        ins.check_flags(&[])?;
    }
    let created_by = format!("/bin/sh -c #(nop) {}", ins.text());
    match kw {
        "RUN" => {
            ins.check_flags(&[])?;
            let argv = match ins.form() {
                Form::Exec(v) => v,
                Form::Shell(s) => {
                    let mut a = st.shell.clone();
                    a.push(run_script(ins, s)?);
                    a
                }
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
            let plan = plan.expect("planned before the cache lookup");
            let view = View::mount(store, &st.img.lowers(store)?)?;
            let (d, size) = copy::copy_layer(
                store,
                &view.path,
                &plan.srcs,
                &plan.dest,
                &plan.own,
                &ins.keyword,
                &|p: &Path| plan.from_context && ignore.excluded(p),
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
