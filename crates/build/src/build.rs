//! Executing a Containerfile: stages in order, each instruction a step
//! whose result (layers + config) is stored and recorded in the cache.

use std::collections::{BTreeMap, VecDeque};
use std::fs;
use std::io::Write;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Mutex;

use berth_image::image::{commit, resolve, ResolvedImage};
use berth_image::manifest::{DOCKER_MANIFEST, OCI_MANIFEST};
use berth_image::{Reference, Store};
use serde_json::{json, Value};
use sha2::{Digest as _, Sha256};

use crate::cache::{cached_or_imported, remember};
use crate::graph::{self, StageDef};
use crate::ignore::Ignore;
use crate::mounts::Sources;
use crate::parse::{parse, Form, Instruction};
use crate::plan::plan_copy;
use crate::remote_cache;
use crate::run::Runner;
use crate::stage::{arg_pairs, from, img_id, predefined, Pulled, Stage};
use crate::step::{run_mounts, step, step_err};
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
    /// `--secret id=ID,src=FILE`: the files `RUN --mount=type=secret`
    /// sees, by id.
    pub secrets: BTreeMap<String, PathBuf>,
    /// `--network=host`: RUN steps share the host's network namespace
    /// (else each has an empty one of its own).
    pub host_network: bool,
    /// Whether the user asked to stop (Ctrl-C): checked before each step,
    /// so an interrupted build cleans up like a failed one.
    pub interrupted: fn() -> bool,
    /// `--cache-from`: registry caches imported before the build.
    pub cache_from: Vec<Reference>,
    /// `--cache-to`: where the build's steps are exported after it.
    pub cache_to: Vec<remote_cache::CacheTo>,
    /// `--timestamp` / SOURCE_DATE_EPOCH: seconds since the epoch written
    /// as every new layer entry's mtime and as the created time of the
    /// config and of its new history entries (buildah's `--timestamp`),
    /// so the same input gives the same image.
    pub timestamp: Option<i64>,
    /// `--pull`: when FROM images are fetched from their registry.
    pub pull: PullPolicy,
    /// `--layers` (default): steps are looked up in and stored to the
    /// instruction cache; `--layers=false` neither (buildah's meaning).
    pub layers: bool,
    /// `--squash`: the layers the build added become one (the base
    /// image's stay); `--squash-all`: all layers become one.
    pub squash: bool,
    pub squash_all: bool,
    /// `--format docker`: Docker schema2 media types and the
    /// `container_config` podman and buildah write (else OCI).
    pub docker_format: bool,
    /// How to reach registries (`--pull`, `--cache-from`/`--cache-to`).
    pub registry: Option<berth_image::registry::RegistryOptions>,
}

/// `--pull`: podman's policies for the images FROM names.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PullPolicy {
    /// Pull each base image, even when stored (`always`, `true`, bare
    /// `--pull`; also `newer`: a pull of an unchanged image fetches only
    /// its manifest).
    Always,
    /// Pull a base image only when the store lacks it (the default).
    Missing,
    /// Never pull: a missing base image fails the build.
    Never,
}

impl PullPolicy {
    pub fn parse(v: &str) -> Option<PullPolicy> {
        match v {
            "always" | "true" | "newer" => Some(PullPolicy::Always),
            "missing" | "false" => Some(PullPolicy::Missing),
            "never" => Some(PullPolicy::Never),
            _ => None,
        }
    }
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

/// Writes one progress line (whole, so that parallel stages' lines do
/// not mix).
fn say(o: &BuildOptions, s: &str) {
    if !o.quiet {
        let mut out = std::io::stdout().lock();
        let _ = writeln!(out, "{s}");
        let _ = out.flush();
    }
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
    // Global ARGs, before the first FROM (the parser checks there are
    // only ARGs there).
    let first_from = instructions
        .iter()
        .position(|i| i.keyword == "FROM")
        .ok_or(BuildError::Parse(crate::parse::ParseError::NoFrom))?;
    let mut global: BTreeMap<String, String> = BTreeMap::new();
    for ins in instructions.drain(..first_from) {
        let lookup = |k: &str| global.get(k).cloned();
        for (k, v) in arg_pairs(&ins, &lookup, esc)? {
            let v = o.build_args.get(&k).cloned().or(v).unwrap_or_default();
            global.insert(k, v);
        }
    }
    let defs = graph::stages(instructions, &global, esc);
    let target = match &o.target {
        Some(t) => {
            let l = t.to_ascii_lowercase();
            defs.iter()
                .position(|d| d.name.as_deref() == Some(&l))
                .ok_or_else(|| {
                    BuildError::Other(format!(
                        "--target {t}: no stage has that name (FROM ... AS {t})"
                    ))
                })?
        }
        None => defs.len() - 1,
    };
    let order = graph::needed(&defs, target);
    if let Some(reg) = &o.registry {
        for r in &o.cache_from {
            // As BuildKit: a cache that cannot be read (not pushed yet,
            // say) is a warning; the build goes on without it.
            match remote_cache::import(store, r, reg) {
                Ok(n) => say(o, &format!("--> Imported {n} cached steps from {r}")),
                Err(e) => eprintln!("warning: {e}; building without it"),
            }
        }
    }
    let ctx = Ctx {
        store,
        o,
        ignore: &ignore,
        esc,
        global: &global,
        nstages: defs.len(),
        steps: Mutex::new(Vec::new()),
        pulled: Mutex::default(),
    };
    let mut done = graph::schedule(&defs, &order, &|i, earlier, abort| {
        ctx.stage(i, &defs[i], earlier, abort)
    })?;
    let mut last = done[target].take().expect("the target stage was built");
    if o.squash || o.squash_all {
        let keep = if o.squash_all { 0 } else { last.base_layers };
        crate::squash::squash(
            store,
            &mut last.img,
            keep,
            o.timestamp.map(|t| t.max(0) as u64),
        )?;
    }
    if !o.labels.is_empty() {
        let c = last.img.run_config();
        if !c["Labels"].is_object() {
            c["Labels"] = json!({});
        }
        for (k, v) in &o.labels {
            c["Labels"][k] = json!(v);
        }
    }
    if let Some(t) = o.timestamp {
        last.img.config["created"] = json!(berth_image::archive::rfc3339(t));
    }
    // The result's layers from `--cache-from` caches, when hits left
    // them there.
    remote_cache::fetch_missing(store, &last.img.layers)?;
    let (m, media_type) = if o.docker_format {
        (last.img.save_docker(store)?, DOCKER_MANIFEST)
    } else {
        (last.img.save(store)?, OCI_MANIFEST)
    };
    if let Some(t) = o.tags.first() {
        say(o, &format!("COMMIT {t}"));
    }
    let lock = store.lock()?;
    let img = commit(store, &lock, &m, Some(media_type), &o.tags)?;
    drop(lock);
    for t in &o.tags {
        say(o, &format!("Successfully tagged {t}"));
    }
    let img = resolve(store, &img.record)?;
    if let Some(reg) = &o.registry {
        let steps = ctx.steps.into_inner().expect("steps lock");
        // mode=min: the target stage and the stages it is FROM.
        let mut chain = vec![target];
        while let Some(p) = defs[*chain.last().expect("target")].parent {
            chain.push(p);
        }
        for c in &o.cache_to {
            let keys: Vec<_> = steps
                .iter()
                .filter(|(s, _, _)| !c.min || chain.contains(s))
                .map(|(_, k, m)| (k.clone(), m.clone()))
                .collect();
            let n = remote_cache::export(store, &keys, &c.dest, reg)?;
            say(o, &format!("--> Exported {n} cached steps to {}", c.dest));
        }
    }
    Ok(img)
}

/// A step done: its stage, cache key and `COPY --from` memo (name,
/// content digest).
type StepDone = (usize, String, Option<(String, String)>);

/// What every stage of one build sees.
struct Ctx<'a> {
    store: &'a Store,
    o: &'a BuildOptions,
    ignore: &'a Ignore,
    esc: char,
    global: &'a BTreeMap<String, String>,
    nstages: usize,
    /// Stage, cache key and `COPY --from` memo of the steps done (run
    /// or cached), for `--cache-to`.
    steps: Mutex<Vec<StepDone>>,
    /// Images pulled by this build (each once).
    pulled: Pulled,
}

impl Ctx<'_> {
    /// Builds stage `index` of the file; `stages` holds the earlier
    /// stages it needs, finished.
    fn stage(
        &self,
        index: usize,
        def: &StageDef,
        stages: &[Option<Stage>],
        abort: &AtomicBool,
    ) -> Result<Stage, BuildError> {
        let (store, o, esc, ignore) = (self.store, self.o, self.esc, self.ignore);
        // podman's progress: `[2/3] STEP 1/4: ...` when there are stages.
        let prefix = if self.nstages > 1 {
            format!("[{}/{}] ", index + 1, self.nstages)
        } else {
            String::new()
        };
        let mut total = def.body.len() + 1;
        let mut queue: VecDeque<Instruction> = def.body.iter().cloned().collect();
        let ins = &def.from;
        self.check(abort, 1, total, ins)?;
        say(o, &format!("{prefix}STEP 1/{total}: {}", ins.text()));
        let mut st = from(store, ins, self.global, stages, esc, o, &self.pulled)?;
        // The base's ONBUILD triggers run first, at this line (and are
        // not inherited further).
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
        // Steps done so far (the next one is `n + 1`).
        let mut n = 1;
        while let Some(ins) = queue.pop_front() {
            let ins = &ins;
            self.check(abort, n + 1, total, ins)?;
            say(
                o,
                &format!("{prefix}STEP {}/{total}: {}", n + 1, ins.text()),
            );
            n += 1;
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
                            .or_else(|| self.global.get(&k).cloned())
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
            if ins.keyword == "RUN" {
                let ms = run_mounts(ins)?;
                let src = self.sources(stages);
                h.update(src.key(&ms).map_err(|e| step_err(ins, e))?.as_bytes());
            }
            if let Some(t) = o.timestamp {
                h.update(format!("\ntimestamp {t}").as_bytes());
            }
            let mut copy_plan = None;
            let mut memo = None;
            if matches!(ins.keyword.as_str(), "COPY" | "ADD") {
                let plan = plan_copy(store, ins, &st, stages, esc, o, ignore, &self.pulled)?;
                h.update(plan.digest.as_bytes());
                memo = plan.memo.clone();
                copy_plan = Some(plan);
            }
            let key = hex::encode(h.finalize());
            if !o.no_cache && o.layers {
                if let Some(img) = cached_or_imported(store, &key) {
                    let id = img_id(&img);
                    say(o, &format!("--> Using cache {id}"));
                    st.img = img;
                    self.steps
                        .lock()
                        .expect("steps lock")
                        .push((index, key.clone(), memo.clone()));
                    st.key = key;
                    continue;
                }
            }
            let mtime = o.timestamp.map(|t| t.max(0) as u64);
            berth_image::layer_diff::with_mtime(mtime, || {
                step(
                    store,
                    ins,
                    &mut st,
                    copy_plan,
                    esc,
                    o,
                    ignore,
                    &self.sources(stages),
                )
            })
            .map_err(|e| match e {
                BuildError::Other(m) => step_err(ins, m),
                e => e,
            })?;
            if let Some(t) = o.timestamp {
                st.img.set_created(t);
            }
            if o.layers {
                let m = st.img.save(store)?;
                remember(store, &key, &m)?;
            }
            self.steps
                .lock()
                .expect("steps lock")
                .push((index, key.clone(), memo.clone()));
            st.key = key;
            let id = img_id(&st.img);
            say(o, &format!("--> {}", &id[..12.min(id.len())]));
        }
        Ok(st)
    }

    fn sources<'s>(&'s self, stages: &'s [Option<Stage>]) -> Sources<'s> {
        Sources {
            store: self.store,
            context: &self.o.context,
            stages,
            secrets: &self.o.secrets,
            o: self.o,
            pulled: &self.pulled,
        }
    }

    /// Stops before step `n` when the user interrupted or another stage
    /// failed.
    fn check(
        &self,
        abort: &AtomicBool,
        n: usize,
        total: usize,
        ins: &Instruction,
    ) -> Result<(), BuildError> {
        if abort.load(Ordering::SeqCst) {
            return Err(BuildError::Stopped);
        }
        if (self.o.interrupted)() {
            abort.store(true, Ordering::SeqCst);
            return Err(BuildError::Other(format!(
                "interrupted before step {n}/{total} (line {})",
                ins.line
            )));
        }
        Ok(())
    }
}
