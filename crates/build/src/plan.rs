//! COPY and ADD planning: what a step takes (sources, destination,
//! ownership) and the digest of that content, decided before the cache
//! lookup.

use std::path::{Path, PathBuf};

use berth_image::Store;
use sha2::{Digest as _, Sha256};

use crate::build::BuildOptions;
use crate::copy::{self, Ownership, View};
use crate::ignore::Ignore;
use crate::image::Img;
use crate::parse::{Form, Instruction};
use crate::stage::{pulled_image, Pulled, Stage};
use crate::step::step_err;
use crate::subst::{expand, expand_vars, words};
use crate::{add, BuildError};

/// What a COPY/ADD will take, decided before the cache lookup.
pub(crate) struct CopyPlan {
    pub srcs: Vec<PathBuf>,
    pub dest: String,
    pub own: Ownership,
    pub digest: String,
    /// Sources are in the context (so the ignore file applies).
    pub from_context: bool,
    /// Keeps the `--from` stage's view mounted while copying.
    _view: Option<View>,
    /// `--link`: the layer does not look at the image below (parents
    /// made fresh, 0755 root).
    pub link: bool,
    /// Holds heredoc files, extracted archives and downloads.
    _tmps: Vec<tempfile::TempDir>,
    /// `COPY --from=STAGE|IMAGE`: the image and the source patterns,
    /// resolved (mounted, globbed) only when the step runs; its key is
    /// the image's layers and the patterns, which fix what they match.
    deferred: Option<(Img, Vec<String>, String)>,
    /// `--from`: the name under which the sources' content digest is
    /// remembered, and that digest (exported with the step by
    /// `--cache-to`, so that another store need not fetch the image to
    /// know it).
    pub memo: Option<(String, String)>,
}

impl CopyPlan {
    /// Mounts a deferred `--from` image and finds the sources in it
    /// (a cache miss: the step runs).
    pub fn resolve(&mut self, store: &Store) -> Result<(), BuildError> {
        let Some((img, list, what)) = self.deferred.take() else {
            return Ok(());
        };
        let v = View::mount(store, &img.lowers(store)?)?;
        self.srcs = copy::sources(&v.path, &list, &what, &|_| false)?;
        self._view = Some(v);
        Ok(())
    }
}

#[allow(clippy::too_many_arguments)]
pub(crate) fn plan_copy(
    store: &Store,
    ins: &Instruction,
    st: &Stage,
    stages: &[Option<Stage>],
    esc: char,
    o: &BuildOptions,
    ignore: &Ignore,
    pulled: &Pulled,
) -> Result<CopyPlan, BuildError> {
    let is_copy = ins.keyword == "COPY";
    ins.check_flags(if is_copy {
        &["chown", "chmod", "from", "link"]
    } else {
        &["chown", "chmod", "checksum", "link"]
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
    // Heredoc sources (`COPY <<EOF /path`, BuildKit): files named after
    // their delimiter, mode 0644, the body's variables expanded unless
    // the delimiter is quoted.
    let mut heredoc_srcs = Vec::new();
    let mut tmps = Vec::new();
    if !ins.heredocs.is_empty() {
        let dir = store.temp_dir("build-heredoc-")?;
        list.retain(|w| {
            let Some(r) = w.strip_prefix("<<") else {
                return true;
            };
            let n = r.trim_start_matches('-').trim_matches(['"', '\'']);
            !ins.heredocs.iter().any(|h| h.name == n)
        });
        for h in &ins.heredocs {
            let body = if h.quoted {
                h.body.clone()
            } else {
                expand_vars(&h.body, &lookup, esc).map_err(|e| step_err(ins, e))?
            };
            let f = dir.path().join(&h.name);
            std::fs::write(&f, body)
                .and_then(|()| {
                    std::fs::set_permissions(
                        &f,
                        std::os::unix::fs::PermissionsExt::from_mode(0o644),
                    )
                })
                .map_err(|e| step_err(ins, format!("write heredoc {}: {e}", h.name)))?;
            heredoc_srcs.push(f);
        }
        tmps.push(dir);
    }
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
    let mut memo_to_write = None;
    let (root, view) = match ins.flag("from") {
        Some(f) => {
            let stage = stages.iter().enumerate().find_map(|(i, s)| {
                let s = s.as_ref()?;
                (s.name.as_deref() == Some(&f.to_ascii_lowercase()) || f == i.to_string())
                    .then_some((i, s))
            });
            let img = match stage {
                Some((_, s)) => s.img.clone(),
                // Not a stage: an image in the store (Docker's
                // `COPY --from=IMAGE`).
                None => {
                    let (img, _) = pulled_image(store, f, o, pulled, "").map_err(|e| {
                        step_err(
                            ins,
                            format!("--from={f}: no earlier stage has that name or index, and {e}"),
                        )
                    })?;
                    img
                }
            };
            // What the sources hold is fixed by the image's layers (by
            // digest) and the patterns: its digest is remembered under
            // those, so a rebuild neither mounts the image nor hashes it.
            // The key has the content, not the stage (BuildKit's
            // reading): a stage rebuilt with the same files still hits.
            let memo = from_memo(&img, &list);
            if heredoc_srcs.is_empty() {
                if let Some(d) = memo.as_ref().and_then(|m| read_memo(store, m)) {
                    digest.push_str(&d);
                    let memo = memo.map(|m| (m, d));
                    let what = format!("{} --from", ins.keyword);
                    let (chown, chmod) = own_flags(store, ins, st, &lookup, esc, &mut digest)?;
                    return Ok(CopyPlan {
                        srcs: Vec::new(),
                        dest,
                        own: Ownership {
                            chown,
                            keep_owner: true,
                            chmod,
                        },
                        digest,
                        from_context: false,
                        _view: None,
                        link: ins.flag("link").is_some(),
                        _tmps: tmps,
                        deferred: Some((img, list, what)),
                        memo,
                    });
                }
            }
            memo_to_write = memo.filter(|_| heredoc_srcs.is_empty());
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
    // ADD's URLs: downloaded, never extracted.
    let mut urls = Vec::new();
    if !is_copy {
        for w in &list {
            if w.starts_with("http://") || w.starts_with("https://") {
                urls.push(w.clone());
            } else if w.contains("://") {
                return Err(step_err(
                    ins,
                    format!("{w}: ADD takes http:// and https:// URLs only"),
                ));
            }
        }
        list.retain(|w| !urls.contains(w));
        if ins.flag("checksum").is_some() && urls.is_empty() {
            return Err(step_err(ins, "--checksum needs an http(s):// source"));
        }
    }
    let skip = |p: &Path| from_context && ignore.excluded(p);
    let mut srcs = if list.is_empty() {
        Vec::new()
    } else {
        copy::sources(&root, &list, &what, &skip).map_err(|e| match e {
            BuildError::Other(m) => step_err(ins, m),
            e => e,
        })?
    };
    let mut archives = 0;
    if !is_copy && !srcs.is_empty() {
        // Local tar archives are extracted (their files, owners and modes).
        let dir = store.temp_dir("build-add-")?;
        for s in &mut srcs {
            if s.is_file() {
                if let Some(x) = add::extract(s, dir.path()).map_err(|e| step_err(ins, e))? {
                    *s = x;
                    archives += 1;
                }
            }
        }
        tmps.push(dir);
    }
    let all_archives = archives > 0 && archives == srcs.len();
    srcs.extend(heredoc_srcs);
    if !urls.is_empty() {
        let dir = store.temp_dir("build-fetch-")?;
        for u in &urls {
            srcs.push(
                add::fetch(u, dir.path(), ins.flag("checksum")).map_err(|e| step_err(ins, e))?,
            );
        }
        tmps.push(dir);
    }
    let content = copy::content_digest(&srcs, &skip)?;
    let memo = memo_to_write.map(|m| {
        write_memo(store, &m, &content);
        (m, content.clone())
    });
    digest.push_str(&content);
    let (chown, chmod) = own_flags(store, ins, st, &lookup, esc, &mut digest)?;
    Ok(CopyPlan {
        srcs,
        dest,
        own: Ownership {
            chown,
            keep_owner: view.is_some() || all_archives,
            chmod,
        },
        digest,
        from_context,
        _view: view,
        link: ins.flag("link").is_some(),
        _tmps: tmps,
        deferred: None,
        memo,
    })
}

/// `--chown` (resolved in the stage's passwd and group, added to the
/// key) and `--chmod`.
#[allow(clippy::type_complexity)]
fn own_flags(
    store: &Store,
    ins: &Instruction,
    st: &Stage,
    lookup: &dyn Fn(&str) -> Option<String>,
    esc: char,
    digest: &mut String,
) -> Result<(Option<(u32, u32)>, Option<u32>), BuildError> {
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
            let c = expand(c, lookup, esc).map_err(|e| step_err(ins, e))?;
            let id = berth_engine::user::resolve(&c, &passwd, &group)
                .map_err(|e| step_err(ins, format!("--chown={c}: {}", crate::chain(&e))))?;
            digest.push_str(&format!(":{}:{}", id.uid, id.gid));
            Some((id.uid, id.gid))
        }
        None => None,
    };
    Ok((chown, chmod))
}

/// The name under which the content digest of `patterns` in the image
/// `img` is remembered (a hash of its layers and the patterns; the file
/// `<store>/build-cache/from/NAME`); `None` for an image without layers.
fn from_memo(img: &Img, patterns: &[String]) -> Option<String> {
    if img.layers.is_empty() {
        return None;
    }
    let mut h = Sha256::new();
    for l in &img.layers {
        h.update(l.digest.to_string().as_bytes());
        h.update(b"\n");
    }
    for p in patterns {
        h.update(p.as_bytes());
        h.update(b"\0");
    }
    Some(hex::encode(h.finalize()))
}

fn memo_path(store: &Store, name: &str) -> PathBuf {
    store.dir().join("build-cache/from").join(name)
}

/// The remembered digest: the store's, else an imported cache's.
fn read_memo(store: &Store, name: &str) -> Option<String> {
    let d = match std::fs::read_to_string(memo_path(store, name)) {
        Ok(d) => d,
        Err(_) => {
            let d = crate::remote_cache::memo(name)?;
            write_memo(store, name, &d);
            d
        }
    };
    (d.len() == 64 && d.bytes().all(|b| b.is_ascii_hexdigit())).then_some(d)
}

/// Best effort (a memo not written is computed again next time); written
/// whole or not at all.
fn write_memo(store: &Store, name: &str, digest: &str) {
    let p = memo_path(store, name);
    let Some(dir) = p.parent() else { return };
    if std::fs::create_dir_all(dir).is_err() {
        return;
    }
    if let Ok(mut f) = tempfile::NamedTempFile::new_in(dir) {
        use std::io::Write as _;
        if f.write_all(digest.as_bytes()).is_ok() {
            let _ = f.persist(p);
        }
    }
}
