//! COPY and ADD: files from the build context (or an earlier stage's
//! rootfs) become a layer written directly, without a container. Sources
//! must stay inside their root; a digest of exactly what is copied (paths,
//! bytes, modes, owners, link targets) feeds the instruction cache.

use std::fs::{self, File};
use std::io::{self, Read};
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Component, Path, PathBuf};

use berth_image::digest::Digest;
use berth_image::layer_diff::TreeKind;
use berth_image::mount::{mount_overlay, unmount_container_rootfs, OverlaySpec};
use berth_image::Store;
use sha2::{Digest as _, Sha256};

use crate::layer::store_tree;
use crate::BuildError;

fn io_err(what: &str, p: &Path, e: io::Error) -> BuildError {
    BuildError::Other(format!("{what} {}: {e}", p.display()))
}

/// `p` with `.` and `..` resolved lexically; `None` when `..` climbs
/// above the start.
fn normalize(p: &Path) -> Option<PathBuf> {
    let mut out = Vec::new();
    for c in p.components() {
        match c {
            Component::Normal(n) => out.push(n),
            Component::ParentDir => {
                out.pop()?;
            }
            _ => {}
        }
    }
    Some(out.iter().collect())
}

/// A read-only overlay view of some lowers (unmounted on drop).
pub struct View {
    pub path: PathBuf,
    mounted: bool,
    _tmp: tempfile::TempDir,
}

impl View {
    /// Mounts `lowers` (topmost first) read-only; an empty list is an
    /// empty dir.
    pub fn mount(store: &Store, lowers: &[PathBuf]) -> Result<View, BuildError> {
        let tmp = store.temp_dir("build-view-")?;
        let path = tmp.path().join("root");
        fs::create_dir(&path).map_err(|e| io_err("create", &path, e))?;
        if lowers.is_empty() {
            return Ok(View {
                path,
                mounted: false,
                _tmp: tmp,
            });
        }
        let mut l = lowers.to_vec();
        if l.len() < 2 {
            // overlayfs wants two lowers without an upper.
            let e = tmp.path().join("empty");
            fs::create_dir(&e).map_err(|er| io_err("create", &e, er))?;
            l.push(e);
        }
        mount_overlay(
            &OverlaySpec {
                lowers: &l,
                upper: None,
                readonly: true,
            },
            &path,
        )
        .map_err(|e| BuildError::Other(crate::chain(&e)))?;
        Ok(View {
            path,
            mounted: true,
            _tmp: tmp,
        })
    }
}

impl Drop for View {
    fn drop(&mut self) {
        if self.mounted {
            let _ = unmount_container_rootfs(&self.path);
        }
    }
}

/// The files one COPY/ADD takes from `root`: each pattern (globs allowed)
/// resolved inside `root`; anything outside is refused.
pub fn sources(
    root: &Path,
    patterns: &[String],
    what: &str,
    skip: &dyn Fn(&Path) -> bool,
) -> Result<Vec<PathBuf>, BuildError> {
    let canon_root =
        fs::canonicalize(root).map_err(|e| io_err("open the build context", root, e))?;
    let mut out = Vec::new();
    for p in patterns {
        let rel = normalize(Path::new(p)).ok_or_else(|| {
            BuildError::Other(format!("{what} source {p:?} is outside the build context"))
        })?;
        let full = canon_root.join(&rel);
        let matches: Vec<PathBuf> = if p.contains(['*', '?', '[']) {
            let pat = full.to_string_lossy().to_string();
            let mut m: Vec<PathBuf> = glob::glob(&pat)
                .map_err(|e| BuildError::Other(format!("{what} source {p:?}: {e}")))?
                .filter_map(Result::ok)
                .filter(|p| !skip(p))
                .collect();
            m.sort();
            if m.is_empty() {
                return Err(BuildError::Other(format!(
                    "{what} source {p:?}: no file matches"
                )));
            }
            m
        } else {
            vec![full]
        };
        for m in matches {
            // Symlinks in the path may not lead out of the root.
            let c = fs::canonicalize(&m).map_err(|e| {
                BuildError::Other(format!("{what} source {p:?}: {e} ({})", m.display()))
            })?;
            if !c.starts_with(&canon_root) {
                return Err(BuildError::Other(format!(
                    "{what} source {p:?} is outside the build context (it resolves to {})",
                    c.display()
                )));
            }
            if skip(&c) {
                return Err(BuildError::Other(format!(
                    "{what} source {p:?} is excluded by the context's .containerignore/.dockerignore"
                )));
            }
            out.push(c);
        }
    }
    Ok(out)
}

/// A digest of what copying `srcs` takes: relative paths, types, modes,
/// owners, sizes, bytes and link targets.
pub fn content_digest(
    srcs: &[PathBuf],
    skip: &dyn Fn(&Path) -> bool,
) -> Result<String, BuildError> {
    let mut h = Sha256::new();
    for s in srcs {
        h.update(s.file_name().map(|n| n.as_encoded_bytes()).unwrap_or(b"/"));
        hash_tree(s, &mut h, skip)?;
    }
    Ok(hex::encode(h.finalize()))
}

fn hash_tree(p: &Path, h: &mut Sha256, skip: &dyn Fn(&Path) -> bool) -> Result<(), BuildError> {
    let m = fs::symlink_metadata(p).map_err(|e| io_err("read", p, e))?;
    h.update(format!(
        "\0{}:{}:{}:{}\0",
        m.mode(),
        m.uid(),
        m.gid(),
        m.len()
    ));
    if m.file_type().is_symlink() {
        let t = fs::read_link(p).map_err(|e| io_err("read", p, e))?;
        h.update(t.as_os_str().as_encoded_bytes());
    } else if m.is_file() {
        let mut f = File::open(p).map_err(|e| io_err("read", p, e))?;
        let mut buf = vec![0u8; 1 << 16];
        loop {
            let n = f.read(&mut buf).map_err(|e| io_err("read", p, e))?;
            if n == 0 {
                break;
            }
            h.update(&buf[..n]);
        }
    } else if m.is_dir() {
        let mut names: Vec<_> = fs::read_dir(p)
            .map_err(|e| io_err("read", p, e))?
            .filter_map(Result::ok)
            .map(|e| e.file_name())
            .collect();
        names.sort();
        for n in names {
            if skip(&p.join(&n)) {
                continue;
            }
            h.update(n.as_encoded_bytes());
            hash_tree(&p.join(&n), h, skip)?;
        }
    }
    Ok(())
}

/// Whether a file starts like a tar archive or a compressed stream (what
/// ADD would extract).
pub fn looks_like_archive(p: &Path) -> bool {
    let mut head = [0u8; 262];
    let n = File::open(p)
        .and_then(|mut f| f.read(&mut head))
        .unwrap_or(0);
    let h = &head[..n];
    h.starts_with(&[0x1f, 0x8b])
        || h.starts_with(b"BZh")
        || h.starts_with(&[0xfd, b'7', b'z', b'X', b'Z', 0])
        || h.starts_with(&[0x28, 0xb5, 0x2f, 0xfd])
        || (n >= 262 && &h[257..262] == b"ustar")
}

/// How copied files are owned and moded.
pub struct Ownership {
    /// `--chown` (else root, or the source's owner for `--from`).
    pub chown: Option<(u32, u32)>,
    /// Keep the source's owner when no `--chown` (COPY --from).
    pub keep_owner: bool,
    /// `--chmod`.
    pub chmod: Option<u32>,
}

/// Writes the layer of one COPY: `srcs` placed at `dest` (absolute)
/// over the image seen in `view`. Returns the stored blob and its size.
#[allow(clippy::too_many_arguments)]
pub fn copy_layer(
    store: &Store,
    view: &Path,
    srcs: &[PathBuf],
    dest: &str,
    own: &Ownership,
    what: &str,
    skip: &dyn Fn(&Path) -> bool,
    fixed_mtime: bool,
) -> Result<(Digest, u64), BuildError> {
    let tmp = store.temp_dir("build-copy-")?;
    let stage = tmp.path().join("layer");
    fs::create_dir(&stage).map_err(|e| io_err("create", &stage, e))?;
    let rel_dest = normalize(Path::new(dest)).unwrap_or_default();
    let dest_is_dir = dest.ends_with('/')
        || view.join(&rel_dest).is_dir() && !rel_dest.as_os_str().is_empty()
        || rel_dest.as_os_str().is_empty();
    if !dest_is_dir && srcs.len() > 1 {
        return Err(BuildError::Other(format!(
            "{what}: with more than one source, the destination {dest:?} must be a directory (end it with /)"
        )));
    }
    for s in srcs {
        let target = if s.is_dir() {
            rel_dest.clone()
        } else if dest_is_dir {
            rel_dest.join(s.file_name().unwrap_or_default())
        } else {
            rel_dest.clone()
        };
        if let Some(parent) = target.parent() {
            make_parents(&stage, view, parent)?;
        }
        let m = fs::metadata(s).map_err(|e| io_err("read", s, e))?;
        if m.is_dir() {
            if !target.as_os_str().is_empty() && !stage.join(&target).exists() {
                fs::create_dir(stage.join(&target))
                    .map_err(|e| io_err("create", &stage.join(&target), e))?;
            }
            copy_dir_contents(s, &stage.join(&target), own, skip)?;
            if !target.as_os_str().is_empty() {
                apply_meta(&stage.join(&target), &m, own, false)?;
            }
        } else {
            copy_one(s, &stage.join(&target), own, true, skip)?;
        }
    }
    let (digest, size) = store_tree(store, tmp.path(), &stage, TreeKind::Plain, &|_| false)?;
    // The staged files are the layer's (no xattrs, devices or sockets
    // are copied, and the tar has exactly their metadata).
    if crate::layer::tree_is_snapshot(fixed_mtime) {
        crate::layer::adopt_snapshot(store, &stage, &digest)?;
    }
    Ok((digest, size))
}

/// Creates the dirs above a destination in the layer, with the mode,
/// owner and time they have in the image (0755 root when new).
fn make_parents(stage: &Path, view: &Path, rel: &Path) -> Result<(), BuildError> {
    let mut cur = PathBuf::new();
    for c in rel.components() {
        cur.push(c);
        let p = stage.join(&cur);
        if p.exists() {
            continue;
        }
        fs::create_dir(&p).map_err(|e| io_err("create", &p, e))?;
        let (mode, uid, gid, mtime) = match fs::metadata(view.join(&cur)) {
            Ok(m) if m.is_dir() => (m.mode() & 0o7777, m.uid(), m.gid(), m.modified().ok()),
            Ok(_) => {
                return Err(BuildError::Other(format!(
                    "/{} is not a directory in the image",
                    cur.display()
                )))
            }
            Err(_) => (0o755, 0, 0, None),
        };
        std::os::unix::fs::lchown(&p, Some(uid), Some(gid)).map_err(|e| io_err("chown", &p, e))?;
        fs::set_permissions(&p, fs::Permissions::from_mode(mode))
            .map_err(|e| io_err("chmod", &p, e))?;
        if let Some(t) = mtime {
            let _ = File::open(&p).and_then(|f| f.set_modified(t));
        }
    }
    Ok(())
}

fn copy_dir_contents(
    src: &Path,
    dst: &Path,
    own: &Ownership,
    skip: &dyn Fn(&Path) -> bool,
) -> Result<(), BuildError> {
    let mut entries: Vec<_> = fs::read_dir(src)
        .map_err(|e| io_err("read", src, e))?
        .filter_map(Result::ok)
        .collect();
    entries.sort_by_key(|e| e.file_name());
    for e in entries {
        if skip(&e.path()) {
            continue;
        }
        copy_one(&e.path(), &dst.join(e.file_name()), own, false, skip)?;
    }
    Ok(())
}

/// Copies one entry (recursively for dirs); a top-level symlink source
/// is followed, symlinks inside dirs are copied as links.
fn copy_one(
    src: &Path,
    dst: &Path,
    own: &Ownership,
    top: bool,
    skip: &dyn Fn(&Path) -> bool,
) -> Result<(), BuildError> {
    let m = if top {
        fs::metadata(src)
    } else {
        fs::symlink_metadata(src)
    }
    .map_err(|e| io_err("read", src, e))?;
    let ft = m.file_type();
    if dst.symlink_metadata().is_ok() && !(ft.is_dir() && dst.is_dir()) {
        let _ = fs::remove_file(dst);
    }
    if ft.is_symlink() {
        let t = fs::read_link(src).map_err(|e| io_err("read", src, e))?;
        std::os::unix::fs::symlink(&t, dst).map_err(|e| io_err("create", dst, e))?;
        let (u, g) = owner(&m, own);
        std::os::unix::fs::lchown(dst, Some(u), Some(g)).map_err(|e| io_err("chown", dst, e))?;
        return Ok(());
    }
    if ft.is_dir() {
        if !dst.is_dir() {
            fs::create_dir(dst).map_err(|e| io_err("create", dst, e))?;
        }
        copy_dir_contents(src, dst, own, skip)?;
        return apply_meta(dst, &m, own, false);
    }
    if ft.is_file() {
        fs::copy(src, dst).map_err(|e| io_err("copy to", dst, e))?;
        return apply_meta(dst, &m, own, true);
    }
    // Devices, fifos and sockets are not copied (BuildKit skips sockets;
    // a context rarely holds the others).
    Ok(())
}

fn owner(m: &fs::Metadata, own: &Ownership) -> (u32, u32) {
    match own.chown {
        Some(o) => o,
        None if own.keep_owner => (m.uid(), m.gid()),
        None => (0, 0),
    }
}

fn apply_meta(dst: &Path, m: &fs::Metadata, own: &Ownership, file: bool) -> Result<(), BuildError> {
    let (u, g) = owner(m, own);
    std::os::unix::fs::lchown(dst, Some(u), Some(g)).map_err(|e| io_err("chown", dst, e))?;
    // After chown, which clears set-id bits.
    let mode = own.chmod.unwrap_or(m.mode() & 0o7777);
    fs::set_permissions(dst, fs::Permissions::from_mode(mode))
        .map_err(|e| io_err("chmod", dst, e))?;
    if let Ok(t) = m.modified() {
        let f = if file {
            fs::OpenOptions::new().write(true).open(dst)
        } else {
            File::open(dst)
        };
        let _ = f.and_then(|f| f.set_modified(t));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sources_stay_inside() {
        let d = tempfile::tempdir().unwrap();
        fs::write(d.path().join("a.txt"), "a").unwrap();
        fs::write(d.path().join("b.txt"), "b").unwrap();
        std::os::unix::fs::symlink("/etc", d.path().join("out")).unwrap();
        let none = |_: &Path| false;
        let s = sources(d.path(), &["*.txt".into()], "COPY", &none).unwrap();
        assert_eq!(s.len(), 2);
        assert!(sources(d.path(), &["../x".into()], "COPY", &none)
            .unwrap_err()
            .to_string()
            .contains("outside the build context"));
        assert!(sources(d.path(), &["out/passwd".into()], "COPY", &none)
            .unwrap_err()
            .to_string()
            .contains("outside the build context"));
        assert!(sources(d.path(), &["nope*".into()], "COPY", &none).is_err());
        let a = content_digest(&s, &none).unwrap();
        fs::write(d.path().join("b.txt"), "B").unwrap();
        assert_ne!(a, content_digest(&s, &none).unwrap());
    }
}
