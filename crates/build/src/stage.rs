//! Stages: the state of one stage being built, its FROM, its ARGs and the
//! platform ARGs BuildKit predefines.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Mutex;

use berth_image::digest::Digest;
use berth_image::image::resolve;
use berth_image::Store;

use berth_image::manifest::Platform;
use berth_image::registry::NoProgress;

use crate::build::{BuildOptions, PullPolicy};
use crate::image::Img;
use crate::parse::Instruction;
use crate::step::step_err;
use crate::subst::{expand, raw_words, words};
use crate::BuildError;

/// One stage being built.
#[derive(Clone)]
pub(crate) struct Stage {
    pub name: Option<String>,
    pub img: Img,
    /// Cache key of the current step.
    pub key: String,
    pub shell: Vec<String>,
    /// ARGs declared in this stage and their values.
    pub args: BTreeMap<String, String>,
    /// Whether this stage set CMD (then ENTRYPOINT keeps it, as Docker).
    pub cmd_set: bool,
    /// Layers of the image the stage started from (that of an earlier
    /// stage's base when FROM names a stage): `--squash` keeps them.
    pub base_layers: usize,
}

impl Stage {
    /// What substitution sees: ENV over ARG.
    pub fn lookup(&self) -> impl Fn(&str) -> Option<String> + '_ {
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

pub(crate) fn img_id(img: &Img) -> String {
    Digest::of_bytes(&serde_json::to_vec(&img.config).expect("config serialises"))
        .hex()
        .to_string()
}

/// `ARG NAME[=default] ...`.
pub(crate) fn arg_pairs(
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

pub(crate) fn from(
    store: &Store,
    ins: &Instruction,
    global: &BTreeMap<String, String>,
    stages: &[Option<Stage>],
    esc: char,
    o: &BuildOptions,
    pulled: &Pulled,
) -> Result<Stage, BuildError> {
    ins.check_flags(&["platform"])?;
    let lookup = |k: &str| global.get(k).cloned().or_else(|| predefined(k));
    if let Some(p) = ins.flag("platform") {
        let p = expand(p, &lookup, esc).map_err(|e| step_err(ins, e))?;
        check_platform(&p).map_err(|e| step_err(ins, format!("--platform={e}")))?;
    }
    let w = words(&ins.args, &lookup, esc).map_err(|e| step_err(ins, e))?;
    let (base, name) = match w.as_slice() {
        [b] => (b.clone(), None),
        [b, as_, n] if as_.eq_ignore_ascii_case("as") => (b.clone(), Some(n.to_ascii_lowercase())),
        _ => return Err(step_err(ins, "expected FROM IMAGE [AS NAME]")),
    };
    let mut base_layers = None;
    let (img, key) = if base == "scratch" {
        (Img::scratch(), "scratch".to_string())
    } else if let Some(s) = stages
        .iter()
        .flatten()
        .find(|s| s.name.as_deref() == Some(&base.to_ascii_lowercase()))
    {
        base_layers = Some(s.base_layers);
        (s.img.clone(), s.key.clone())
    } else {
        pulled_image(store, &base, o, pulled, "base ").map_err(|e| step_err(ins, e))?
    };
    let base_layers = base_layers.unwrap_or(img.layers.len());
    Ok(Stage {
        name,
        img,
        key,
        shell: vec!["/bin/sh".into(), "-c".into()],
        args: BTreeMap::new(),
        cmd_set: false,
        base_layers,
    })
}

/// Accepts this machine's platform (`linux/ARCH`, `ARCH`'s variant
/// optional); anything else needs emulation, which berth build has not.
pub fn check_platform(p: &str) -> Result<(), String> {
    let host = predefined("TARGETPLATFORM").unwrap_or_default();
    let mut w = p.split('/');
    let (os, arch) = (w.next().unwrap_or(""), w.next().unwrap_or(""));
    if format!("{os}/{arch}") == host || (arch.is_empty() && os == "linux") {
        return Ok(());
    }
    Err(format!(
        "{p}: berth build runs steps natively, for {host} only (building for another platform needs emulation, which it does not do)"
    ))
}

/// The platform ARGs BuildKit predefines (Dockerfile reference,
/// "Automatic platform ARGs in the global scope"): usable in FROM lines,
/// and in a stage once declared with `ARG NAME`.
pub(crate) fn predefined(k: &str) -> Option<String> {
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

/// Names of the images this build pulled already: each is pulled at
/// most once per build, however many FROM, `COPY --from` and
/// `RUN --mount=from=` lines name it.
pub(crate) type Pulled = Mutex<BTreeSet<String>>;

/// An image FROM, `COPY --from` or `RUN --mount=from=` names, pulled as
/// `--pull` says (podman applies its pull policy to all three); `what`
/// starts the message when it is missing ("base ").
pub(crate) fn pulled_image(
    store: &Store,
    base: &str,
    o: &BuildOptions,
    pulled: &Pulled,
    what: &str,
) -> Result<(Img, String), String> {
    // Held while pulling: two stages naming one image pull it once.
    let mut done = pulled.lock().expect("pulled lock");
    if done.contains(base) {
        return stored_image(store, base).map_err(|e| format!("{what}{e}"));
    }
    let r = policy_image(store, base, o, what);
    if r.is_ok() {
        done.insert(base.to_string());
    }
    r
}

fn policy_image(
    store: &Store,
    base: &str,
    o: &BuildOptions,
    what: &str,
) -> Result<(Img, String), String> {
    let pull = |why: &str| -> Result<(), String> {
        let Some(reg) = &o.registry else {
            return Err(format!("{why}; pull it first: berth pull {base}"));
        };
        if !o.quiet {
            eprintln!("Trying to pull {base}...");
        }
        let cands = reg
            .registries
            .candidates(base)
            .map_err(|e| crate::chain(&e))?;
        let mut last = String::new();
        for r in cands {
            match berth_image::registry::pull(store, &r, &Platform::host(), reg, &NoProgress) {
                Ok(_) => return Ok(()),
                Err(e) => last = crate::chain(&e),
            }
        }
        Err(format!("{why}; pulling it failed: {last}"))
    };
    match o.pull {
        PullPolicy::Never => {
            stored_image(store, base).map_err(|e| format!("{what}{e} and --pull=never"))
        }
        PullPolicy::Missing => match stored_image(store, base) {
            Ok(x) => Ok(x),
            Err(e) => {
                pull(&format!("{what}{e}"))?;
                stored_image(store, base).map_err(|e| format!("{what}{e}"))
            }
        },
        PullPolicy::Always => {
            pull(&format!("{what}image {base} (--pull=always)"))?;
            stored_image(store, base).map_err(|e| format!("{what}{e}"))
        }
    }
}

/// An image of the store and its cache key (`image:<id>`).
pub(crate) fn stored_image(store: &Store, name: &str) -> Result<(Img, String), String> {
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
