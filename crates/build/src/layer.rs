//! A step's layer from a directory tree: the tar is hashed while it is
//! written into the store (no second pass to copy and hash it), and the
//! tree itself becomes the layer's snapshot when it holds exactly what
//! unpacking the tar would make (so the next step does not unpack again
//! the thousands of files a step may have made).

use std::fs::{self, File};
use std::io::{self, BufWriter, Write};
use std::os::unix::fs::PermissionsExt;
use std::path::Path;

use berth_image::digest::{Digest, HashingWriter};
use berth_image::layer_diff::{write_tree, TreeKind};
use berth_image::Store;

use crate::BuildError;

/// Writes `root` as a layer tar (`write_tree`'s rules) into the store's
/// blobs; returns its digest (the diff ID: it is uncompressed) and size.
/// `tmp` is a temp dir of the store (same filesystem as the blobs).
pub(crate) fn store_tree(
    store: &Store,
    tmp: &Path,
    root: &Path,
    kind: TreeKind,
    skip: &dyn Fn(&Path) -> bool,
) -> Result<(Digest, u64), BuildError> {
    store_layer(store, tmp, root, &|w| write_tree(root, kind, skip, w))
}

/// [`store_tree`] with the tar written by `write` (the layer of the tree
/// `root`, named in errors): a vfs copy's changes
/// ([`berth_image::vfs_diff::write_copy_layer`]).
pub(crate) fn store_layer(
    store: &Store,
    tmp: &Path,
    root: &Path,
    write: &dyn Fn(&mut dyn Write) -> io::Result<()>,
) -> Result<(Digest, u64), BuildError> {
    let path = tmp.join("layer.tar");
    let err = |what: &str, e: io::Error| {
        BuildError::Other(format!("{what} the layer of {}: {e}", root.display()))
    };
    let f = File::create(&path).map_err(|e| err("create", e))?;
    let mut w = HashingWriter::new(BufWriter::with_capacity(1 << 20, f));
    write(&mut w).map_err(|e| err("write", e))?;
    let (buf, digest, size) = w.finish();
    let f = buf.into_inner().map_err(|e| err("write", e.into_error()))?;
    // As Store::put_blob: on disk before it is named.
    f.sync_all().map_err(|e| err("sync", e))?;
    drop(f);
    let dest = store.blob_path(&digest);
    if !berth_image::store::rename_new(&path, &dest).map_err(|e| err("store", e))? {
        let _ = fs::remove_file(&path);
    }
    Ok((digest, size))
}

/// Whether a tree this machine's build writes (an overlayfs upper dir,
/// or a COPY's staged files) is in the snapshots' own format: the
/// kernel's overlay as root (whiteouts char 0/0, opaque
/// `trusted.overlay.opaque`), without redirects or metacopy (which keep
/// data in xattrs a tar does not carry; overlayfs.rst "Redirect dir",
/// "Metadata only copy up"), and the layer's mtimes not rewritten
/// (`--timestamp`). Not for fuse-overlayfs, vfs or a user namespace.
pub(crate) fn tree_is_snapshot(fixed_mtime: bool) -> bool {
    use berth_image::mount::{driver, in_user_namespace, Driver};
    let off = |p: &str| {
        fs::read_to_string(format!("/sys/module/overlay/parameters/{p}"))
            .is_ok_and(|v| v.trim() == "N")
    };
    !fixed_mtime
        && !in_user_namespace()
        && !berth_engine::rootless::is_rootless()
        && driver(Path::new("/tmp")) == Driver::Overlay
        && off("redirect_dir")
        && off("metacopy")
}

/// Makes `tree` (in a temp dir of the store) the snapshot of layer
/// `diff_id`, a rename instead of unpacking the tar just written. Its
/// root gets the mode and owner an unpacked snapshot's root has (the tar
/// has no entry for it); synced to disk first, as an unpacked one.
pub(crate) fn adopt_snapshot(
    store: &Store,
    tree: &Path,
    diff_id: &Digest,
) -> Result<(), BuildError> {
    let dest = store.snapshot_path(diff_id);
    if dest.is_dir() {
        return Ok(());
    }
    let err = |what: &str, e: io::Error| {
        BuildError::Other(format!("{what} {} as a snapshot: {e}", tree.display()))
    };
    fs::set_permissions(tree, fs::Permissions::from_mode(0o755))
        .and_then(|()| std::os::unix::fs::chown(tree, Some(0), Some(0)))
        .map_err(|e| err("set the root of", e))?;
    let dir = File::open(tree).map_err(|e| err("open", e))?;
    rustix::fs::syncfs(&dir).map_err(|e| err("sync", e.into()))?;
    let _lock = store.lock()?;
    berth_image::store::rename_new(tree, &dest).map_err(|e| err("move", e))?;
    Ok(())
}
