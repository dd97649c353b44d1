//! COPY and ADD planning: what a step takes (sources, destination,
//! ownership) and the digest of that content, decided before the cache
//! lookup.

use std::path::{Path, PathBuf};

use berth_image::Store;

use crate::build::BuildOptions;
use crate::copy::{self, Ownership, View};
use crate::ignore::Ignore;
use crate::parse::{Form, Instruction};
use crate::stage::{stored_image, Stage};
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
}

pub(crate) fn plan_copy(
    store: &Store,
    ins: &Instruction,
    st: &Stage,
    stages: &[Option<Stage>],
    esc: char,
    o: &BuildOptions,
    ignore: &Ignore,
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
    let (root, view) = match ins.flag("from") {
        Some(f) => {
            let stage = stages.iter().enumerate().find_map(|(i, s)| {
                let s = s.as_ref()?;
                (s.name.as_deref() == Some(&f.to_ascii_lowercase()) || f == i.to_string())
                    .then_some((i, s))
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
            keep_owner: view.is_some() || all_archives,
            chmod,
        },
        digest,
        from_context,
        _view: view,
        link: ins.flag("link").is_some(),
        _tmps: tmps,
    })
}
