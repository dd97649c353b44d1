//! `diff` and `commit` for a container of the vfs driver ([`crate::vfs`]):
//! its upper dir is a full copy of the image, not changes over it, so its
//! changes come from comparing the copy with the image's layers (what
//! containers/storage's "naive diff" does for podman's vfs). They are read
//! the way the overlay driver's upper dir reads ([`crate::layer_diff`]), so
//! both drivers give the same `diff` and the same layer for the same
//! changes: a path only in the copy is added; one in both is changed when
//! its type, mode, owner, size, mtime, device, link target or xattrs
//! differ, a dir also when anything below it changed (overlayfs copies
//! every parent up); one only in the image is deleted (a `.wh.NAME`
//! whiteout in the layer). A dir made anew where the image has one (born
//! after the copy was made: `rm -rf D; mkdir D`) replaces it, as the
//! overlay driver's opaque dir does: deleted in `diff`, with what it holds
//! added, and an opaque marker in the layer (image-spec layer.md).

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::ffi::OsString;
use std::fs;
use std::io::{self, Write};
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::{FileTypeExt, MetadataExt};
use std::path::{Path, PathBuf};

use crate::layer_diff::{
    append_entry, is_opaque, is_whiteout, owner, sorted_entries, Change, ChangeKind, OPAQUE_MARKER,
    WHITEOUT_PREFIX,
};

/// What happened to one path of the copy.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum What {
    Added,
    Changed,
    Deleted,
    /// A dir made anew over the image's (an opaque dir in overlay terms).
    Replaced,
}

/// One change, relative path; [`changes_in_copy`] gives them in tree
/// order (names sorted in each dir, a dir before what it holds).
#[derive(Debug, Clone)]
struct Item {
    rel: PathBuf,
    what: What,
}

/// A file's birth time (statx), where the filesystem records one.
fn birth(path: &Path) -> Option<(i64, u32)> {
    let st = rustix::fs::statx(
        rustix::fs::CWD,
        path,
        rustix::fs::AtFlags::SYMLINK_NOFOLLOW,
        rustix::fs::StatxFlags::BTIME,
    )
    .ok()?;
    (st.stx_mask & rustix::fs::StatxFlags::BTIME.bits() != 0)
        .then_some((st.stx_btime.tv_sec, st.stx_btime.tv_nsec))
}

/// The xattrs layers carry (overlayfs' own bookkeeping left out), sorted.
fn xattrs(path: &Path) -> Vec<(Vec<u8>, Vec<u8>)> {
    let mut names = vec![0u8; 65536];
    let Ok(n) = rustix::fs::llistxattr(path, &mut names) else {
        return Vec::new();
    };
    let mut out: Vec<(Vec<u8>, Vec<u8>)> = names[..n]
        .split(|b| *b == 0)
        .filter(|n| !n.is_empty())
        .filter(|n| !n.starts_with(b"trusted.overlay.") && !n.starts_with(b"user.overlay."))
        .filter_map(|name| {
            let mut val = vec![0u8; 65536];
            let len =
                rustix::fs::lgetxattr(path, std::ffi::OsStr::from_bytes(name), &mut val).ok()?;
            val.truncate(len);
            Some((name.to_vec(), val))
        })
        .collect();
    out.sort();
    out
}

/// Whether the copy's `c` (at `cp`) differs from the image's `l` (at
/// `lp`) in itself (not counting what a dir holds).
fn differs(cp: &Path, c: &fs::Metadata, lp: &Path, l: &fs::Metadata) -> bool {
    if c.file_type() != l.file_type()
        || c.mode() & 0o7777 != l.mode() & 0o7777
        || owner(c) != (l.uid(), l.gid())
        || c.mtime() != l.mtime()
        || c.mtime_nsec() != l.mtime_nsec()
    {
        return true;
    }
    let ft = c.file_type();
    if !ft.is_dir() && c.len() != l.len() {
        return true;
    }
    if ft.is_symlink() {
        return fs::read_link(cp).ok() != fs::read_link(lp).ok();
    }
    if c.rdev() != l.rdev() {
        return true;
    }
    xattrs(cp) != xattrs(lp)
}

/// A device node or socket of a layer: [`crate::vfs::populate`] leaves
/// them out of the copy.
fn never_copied(p: &Path) -> bool {
    fs::symlink_metadata(p).is_ok_and(|m| {
        let ft = m.file_type();
        ft.is_char_device() || ft.is_block_device() || ft.is_socket()
    })
}

/// The entries of a dir of the image seen through its layers `dirs` (the
/// dirs at that path that show, topmost first): name to the topmost
/// path holding it, whited-out names left out.
fn merged_children(dirs: &[PathBuf]) -> io::Result<BTreeMap<OsString, PathBuf>> {
    let mut seen: BTreeMap<OsString, Option<PathBuf>> = BTreeMap::new();
    for d in dirs {
        for e in fs::read_dir(d)? {
            let e = e?;
            let name = e.file_name();
            if seen.contains_key(&name) {
                continue;
            }
            let hidden = is_whiteout(&e.metadata()?);
            seen.insert(name, (!hidden).then(|| e.path()));
        }
    }
    Ok(seen
        .into_iter()
        .filter_map(|(n, p)| Some((n, p?)))
        .collect())
}

/// The layer dirs that show at `name` below `dirs` (topmost first): from
/// the topmost holding it down while they are dirs, to the first opaque
/// one.
fn child_dirs(dirs: &[PathBuf], name: &OsString) -> Vec<PathBuf> {
    let mut out = Vec::new();
    for d in dirs {
        let p = d.join(name);
        let Ok(m) = fs::symlink_metadata(&p) else {
            continue;
        };
        if !m.is_dir() {
            break;
        }
        let opaque = is_opaque(&p);
        out.push(p);
        if opaque {
            break;
        }
    }
    out
}

/// Compares the copy's dir `dir` (relative `rel`) with the image's dir
/// shown by `layers`; appends the changes to `out`; true when any.
fn walk(
    dir: &Path,
    rel: &Path,
    layers: &[PathBuf],
    copied_at: Option<(i64, u32)>,
    out: &mut Vec<Item>,
) -> io::Result<bool> {
    let copy: BTreeSet<OsString> = sorted_entries(dir)?
        .into_iter()
        .map(|e| e.file_name())
        .collect();
    let image = if layers.is_empty() {
        BTreeMap::new()
    } else {
        merged_children(layers)?
    };
    let mut names: Vec<&OsString> = copy.iter().chain(image.keys()).collect();
    names.sort();
    names.dedup();
    let mut any = false;
    for name in names {
        let rel = rel.join(name);
        let cp = dir.join(name);
        let push = |out: &mut Vec<Item>, what| {
            out.push(Item {
                rel: rel.clone(),
                what,
            })
        };
        match (copy.contains(name), image.get(name)) {
            (true, None) => {
                push(out, What::Added);
                if fs::symlink_metadata(&cp)?.is_dir() {
                    walk(&cp, &rel, &[], copied_at, out)?;
                }
                any = true;
            }
            // Device nodes and sockets the copy never got
            // ([`crate::vfs::populate`] skips them) are not deletions.
            (false, Some(lp)) if never_copied(lp) => {}
            (false, Some(_)) => {
                push(out, What::Deleted);
                any = true;
            }
            (true, Some(lp)) => {
                let c = fs::symlink_metadata(&cp)?;
                let l = fs::symlink_metadata(lp)?;
                let born_later = || match (copied_at, birth(&cp)) {
                    (Some(at), Some(b)) => b > at,
                    _ => false,
                };
                if c.is_dir() && (!l.is_dir() || born_later()) {
                    push(out, What::Replaced);
                    walk(&cp, &rel, &[], copied_at, out)?;
                    any = true;
                } else if c.is_dir() {
                    let at = out.len();
                    let own = differs(&cp, &c, lp, &l);
                    let below = walk(&cp, &rel, &child_dirs(layers, name), copied_at, out)?;
                    if own || below {
                        out.insert(
                            at,
                            Item {
                                rel: rel.clone(),
                                what: What::Changed,
                            },
                        );
                        any = true;
                    }
                } else if differs(&cp, &c, lp, &l) {
                    push(out, What::Changed);
                    any = true;
                }
            }
            (false, None) => {}
        }
    }
    Ok(any)
}

/// The changes of the vfs copy `copy` (a container's upper dir holding
/// its [`crate::vfs::marker`]) over the image's `lowers` (topmost first),
/// in tree order. Owners are compared through the id shift of
/// [`crate::layer_diff::with_id_shift`] (a copy made through idmapped
/// layers is owned by the container's range).
fn changes_in_copy(copy: &Path, lowers: &[PathBuf]) -> io::Result<Vec<Item>> {
    // The copy was complete when its marker was written: a dir born later
    // was made by the container.
    let copied_at = birth(&crate::vfs::marker(copy));
    let mut out = Vec::new();
    walk(copy, Path::new(""), lowers, copied_at, &mut out)?;
    Ok(out)
}

/// The change list `diff` prints for a vfs copy, as
/// [`crate::layer_diff::upper_changes`] gives one for an overlay upper
/// dir: a replaced dir is a deletion and what it holds additions. Sorted
/// by path.
pub fn copy_changes(copy: &Path, lowers: &[PathBuf]) -> io::Result<Vec<Change>> {
    let mut out: Vec<Change> = changes_in_copy(copy, lowers)?
        .into_iter()
        .map(|i| Change {
            path: format!("/{}", i.rel.display()),
            kind: match i.what {
                What::Added => ChangeKind::Added,
                What::Changed => ChangeKind::Changed,
                What::Deleted | What::Replaced => ChangeKind::Deleted,
            },
        })
        .collect();
    out.sort();
    Ok(out)
}

/// An empty marker file `name` (a whiteout or an opaque marker): mode
/// 0644, owner root, the mtime of `time_of`.
fn append_mark<W: Write>(b: &mut tar::Builder<W>, name: &Path, time_of: &Path) -> io::Result<()> {
    let mut h = tar::Header::new_gnu();
    h.set_entry_type(tar::EntryType::Regular);
    h.set_mode(0o644);
    h.set_uid(0);
    h.set_gid(0);
    h.set_size(0);
    h.set_mtime(fs::symlink_metadata(time_of).map_or(0, |m| m.mtime().max(0) as u64));
    b.append_data(&mut h, name, io::empty())
}

/// Writes the changes of the vfs copy `copy` over `lowers` as a layer tar
/// on `w`, as [`crate::layer_diff::write_tree`] writes an overlay upper
/// dir: added and changed paths as they are in the copy (a changed dir
/// by its header alone), deletions as `.wh.NAME` (owner root, the time
/// of the dir holding them), a replaced dir followed by `.wh..wh..opq`.
/// Paths for which `skip` returns true (relative) are left out.
pub fn write_copy_layer(
    copy: &Path,
    lowers: &[PathBuf],
    skip: &dyn Fn(&Path) -> bool,
    w: impl Write,
) -> io::Result<()> {
    let items = changes_in_copy(copy, lowers)?;
    let mut b = tar::Builder::new(w);
    b.follow_symlinks(false);
    let mut links = HashMap::new();
    for it in items.iter().filter(|i| !skip(&i.rel)) {
        let path = copy.join(&it.rel);
        match it.what {
            What::Added | What::Changed => append_entry(
                &mut b,
                &path,
                &it.rel,
                &fs::symlink_metadata(&path)?,
                &mut links,
            )?,
            What::Replaced => {
                append_entry(
                    &mut b,
                    &path,
                    &it.rel,
                    &fs::symlink_metadata(&path)?,
                    &mut links,
                )?;
                append_mark(&mut b, &it.rel.join(OPAQUE_MARKER), &path)?;
            }
            What::Deleted => {
                let mut name = OsString::from(WHITEOUT_PREFIX);
                name.push(it.rel.file_name().unwrap_or_default());
                let parent = path.parent().unwrap_or(copy);
                append_mark(&mut b, &it.rel.with_file_name(name), parent)?;
            }
        }
    }
    b.into_inner()?.flush()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn letters(ch: &[Change]) -> Vec<String> {
        ch.iter()
            .map(|c| format!("{} {}", c.kind.letter(), c.path))
            .collect()
    }

    #[test]
    fn copy_compared_with_its_layers() {
        let t = tempfile::tempdir().unwrap();
        let (l1, l2, copy) = (t.path().join("l1"), t.path().join("l2"), t.path().join("c"));
        for p in [&l1, &l2, &copy] {
            fs::create_dir(p).unwrap();
        }
        fs::create_dir_all(l1.join("etc")).unwrap();
        fs::write(l1.join("etc/a"), "a").unwrap();
        fs::write(l1.join("etc/b"), "b").unwrap();
        fs::create_dir_all(l1.join("d/sub")).unwrap();
        fs::write(l1.join("d/sub/x"), "x").unwrap();
        fs::create_dir(l1.join("r")).unwrap();
        fs::write(l1.join("r/old"), "o").unwrap();
        fs::create_dir(l2.join("etc")).unwrap();
        fs::write(l2.join("etc/c"), "c").unwrap();
        // A device node (where this test may make one): never copied,
        // never a deletion.
        let _ = rustix::fs::mknodat(
            rustix::fs::CWD,
            l1.join("etc/null"),
            rustix::fs::FileType::CharacterDevice,
            rustix::fs::Mode::from_raw_mode(0o666),
            rustix::fs::makedev(1, 3),
        );
        crate::vfs::populate(&[l2.clone(), l1.clone()], &copy).unwrap();
        fs::write(crate::vfs::marker(&copy), "").unwrap();
        assert!(copy_changes(&copy, &[l2.clone(), l1.clone()])
            .unwrap()
            .is_empty());
        // Let the births after the marker be later on coarse clocks too.
        std::thread::sleep(std::time::Duration::from_millis(20));
        fs::write(copy.join("etc/a"), "changed").unwrap();
        fs::remove_file(copy.join("etc/c")).unwrap();
        fs::write(copy.join("new"), "n").unwrap();
        fs::remove_dir_all(copy.join("d")).unwrap();
        fs::remove_dir_all(copy.join("r")).unwrap();
        fs::create_dir(copy.join("r")).unwrap();
        fs::write(copy.join("r/f"), "f").unwrap();
        let lowers = [l2, l1];
        let got = letters(&copy_changes(&copy, &lowers).unwrap());
        let replaced = birth(&copy.join("r")).is_some();
        let mut want = vec!["D /d", "C /etc", "C /etc/a", "D /etc/c", "A /new"];
        if replaced {
            want.extend(["D /r", "A /r/f"]);
        } else {
            want.extend(["C /r", "A /r/f", "D /r/old"]);
        }
        assert_eq!(got, want);
        let mut tar_bytes = Vec::new();
        write_copy_layer(&copy, &lowers, &|_| false, &mut tar_bytes).unwrap();
        let names: Vec<String> = tar::Archive::new(&tar_bytes[..])
            .entries()
            .unwrap()
            .map(|e| e.unwrap().path().unwrap().display().to_string())
            .collect();
        let mut want = vec![".wh.d", "etc/", "etc/a", "etc/.wh.c", "new"];
        if replaced {
            want.extend(["r/", "r/.wh..wh..opq", "r/f"]);
        } else {
            want.extend(["r/", "r/f", "r/.wh.old"]);
        }
        assert_eq!(names, want);
    }
}
