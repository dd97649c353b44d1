//! `--squash` (podman build's: the layers the build added become one
//! layer on top of the base image's, which stay as they are) and
//! `--squash-all` (every layer, the base's too, becomes one).
//!
//! The layers' snapshots are overlay lower dirs (whiteouts as char 0/0,
//! opaque dirs by xattr); they are merged bottom to top into one tree of
//! the same form (a whiteout or an opaque dir of a higher layer removes
//! what lower ones of the squashed range put there and stays, for the
//! layers below the range), written as one layer (layer.md).

use std::fs;
use std::io;
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::Path;

use berth_image::layer_diff::{with_mtime, write_tree, TreeKind};
use berth_image::Store;
use serde_json::json;

use crate::image::Img;
use crate::BuildError;

fn io_err(what: &str, p: &Path, e: io::Error) -> BuildError {
    BuildError::Other(format!("squash: {what} {}: {e}", p.display()))
}

fn is_opaque(path: &Path) -> bool {
    let mut buf = [0u8; 4];
    ["trusted.overlay.opaque", "user.overlay.opaque"]
        .iter()
        .any(|n| matches!(rustix::fs::lgetxattr(path, *n, &mut buf), Ok(1) if buf[0] == b'y'))
}

fn remove(p: &Path) -> io::Result<()> {
    match fs::symlink_metadata(p) {
        Ok(m) if m.is_dir() => fs::remove_dir_all(p),
        Ok(_) => fs::remove_file(p),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(()),
        Err(e) => Err(e),
    }
}

/// Puts the non-directory `src` at `dst`: a hard link to the snapshot's
/// (immutable) file, a copy across file systems.
fn place(src: &Path, dst: &Path, m: &fs::Metadata) -> io::Result<()> {
    if fs::hard_link(src, dst).is_ok() {
        return Ok(());
    }
    if m.file_type().is_symlink() {
        std::os::unix::fs::symlink(fs::read_link(src)?, dst)?;
    } else if m.is_file() {
        fs::copy(src, dst)?;
    } else {
        return Err(io::Error::other("cannot link a special file"));
    }
    std::os::unix::fs::lchown(dst, Some(m.uid()), Some(m.gid()))
}

/// Merges the snapshot dir `src` onto `dst`.
fn merge(src: &Path, dst: &Path) -> Result<(), BuildError> {
    let rd = fs::read_dir(src).map_err(|e| io_err("read", src, e))?;
    for e in rd {
        let e = e.map_err(|e| io_err("read", src, e))?;
        let s = e.path();
        let d = dst.join(e.file_name());
        let m = fs::symlink_metadata(&s).map_err(|e| io_err("stat", &s, e))?;
        if !m.is_dir() {
            remove(&d).map_err(|e| io_err("replace", &d, e))?;
            place(&s, &d, &m).map_err(|e| io_err("place", &d, e))?;
            continue;
        }
        let opaque = is_opaque(&s);
        let is_dir = fs::symlink_metadata(&d)
            .map(|m| m.is_dir())
            .unwrap_or(false);
        if opaque || !is_dir {
            remove(&d).map_err(|e| io_err("replace", &d, e))?;
            fs::create_dir(&d).map_err(|e| io_err("create", &d, e))?;
        }
        if opaque {
            let name = berth_image::mount::overlay_xattr("opaque");
            rustix::fs::lsetxattr(&d, name.as_str(), b"y", rustix::fs::XattrFlags::empty())
                .map_err(|e| io_err("mark opaque", &d, e.into()))?;
        }
        std::os::unix::fs::lchown(&d, Some(m.uid()), Some(m.gid()))
            .map_err(|e| io_err("chown", &d, e))?;
        fs::set_permissions(&d, fs::Permissions::from_mode(m.mode() & 0o7777))
            .map_err(|e| io_err("chmod", &d, e))?;
        merge(&s, &d)?;
        if let Ok(t) = m.modified() {
            let _ = fs::File::open(&d).and_then(|f| f.set_modified(t));
        }
    }
    Ok(())
}

/// Replaces the layers of `img` from index `keep` on with one layer of
/// them all (nothing to do for fewer than two); history entries of the
/// squashed layers but the last become empty-layer entries, so the
/// history still lists one entry per layer (config.md).
pub(crate) fn squash(
    store: &Store,
    img: &mut Img,
    keep: usize,
    mtime: Option<u64>,
) -> Result<(), BuildError> {
    let n = img.layers.len().saturating_sub(keep);
    if n < 2 {
        return Ok(());
    }
    // Topmost first: the squashed ones are the first `n`.
    let lowers = img.lowers(store)?;
    let tmp = store.temp_dir("build-squash-")?;
    let tree = tmp.path().join("tree");
    fs::create_dir(&tree).map_err(|e| io_err("create", &tree, e))?;
    for snap in lowers[..n].iter().rev() {
        merge(snap, &tree)?;
    }
    let layer = tmp.path().join("layer.tar");
    let f = fs::File::create(&layer).map_err(|e| io_err("create", &layer, e))?;
    with_mtime(mtime, || {
        write_tree(
            &tree,
            TreeKind::OverlayUpper,
            &|_| false,
            io::BufWriter::new(f),
        )
    })
    .map_err(|e| io_err("write the layer of", &tree, e))?;
    let f = fs::File::open(&layer).map_err(|e| io_err("open", &layer, e))?;
    let (digest, size) = store.put_blob(f, None)?;
    img.layers.truncate(keep);
    let mut ids = img.config["rootfs"]["diff_ids"]
        .as_array()
        .cloned()
        .unwrap_or_default();
    ids.truncate(keep);
    img.config["rootfs"] = json!({"type": "layers", "diff_ids": ids});
    img.push_layer(digest, size);
    if let Some(h) = img.config["history"].as_array_mut() {
        // The last `n` entries with a layer are the squashed layers'.
        let with_layer: Vec<usize> = (0..h.len())
            .filter(|i| h[*i]["empty_layer"].as_bool() != Some(true))
            .collect();
        if with_layer.len() >= n {
            let from = with_layer.len() - n;
            for &i in &with_layer[from..with_layer.len() - 1] {
                h[i]["empty_layer"] = json!(true);
            }
        }
    }
    Ok(())
}
