//! The copying storage driver (podman's `vfs`): the last resort where
//! neither the kernel's overlayfs nor fuse-overlayfs can be mounted. A
//! container's rootfs is a full copy of its image's layers, merged into the
//! container's upper dir once (whiteouts and opaque dirs applied), and
//! bind-mounted where the overlay would be. Slow to create and large on
//! disk, as podman's vfs, but it needs nothing from the kernel but bind
//! mounts.

use std::ffi::OsStr;
use std::fs;
use std::io;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::{FileTypeExt, MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};

use rustix::fs::{AtFlags, Timespec, Timestamps, CWD};

/// The marker beside a container's upper dir saying it holds a full copy
/// of the image (made by this driver): later mounts bind it as it is,
/// whatever driver is chosen then.
pub fn marker(upper: &Path) -> PathBuf {
    let mut s = upper.as_os_str().to_owned();
    s.push(".vfs");
    PathBuf::from(s)
}

/// An overlayfs whiteout: a character device 0/0.
fn is_whiteout(m: &fs::Metadata) -> bool {
    m.file_type().is_char_device() && m.rdev() == 0
}

/// An overlayfs opaque dir (`trusted.` or `user.overlay.opaque` = "y").
fn is_opaque(path: &Path) -> bool {
    let mut buf = [0u8; 4];
    ["trusted.overlay.opaque", "user.overlay.opaque"]
        .iter()
        .any(|n| matches!(rustix::fs::lgetxattr(path, *n, &mut buf), Ok(1) if buf[0] == b'y'))
}

/// Overlay bookkeeping xattrs are not copied (the copy is no overlay).
fn copied_xattr(name: &[u8]) -> bool {
    !name.starts_with(b"trusted.overlay.") && !name.starts_with(b"user.overlay.")
}

fn remove_any(p: &Path) -> io::Result<()> {
    match fs::symlink_metadata(p) {
        Ok(m) if m.is_dir() => fs::remove_dir_all(p),
        Ok(_) => fs::remove_file(p),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(()),
        Err(e) => Err(e),
    }
}

/// Owner, mode, xattrs and times of `src` onto `dst` (not following
/// symlinks; a symlink's mode is left alone).
fn copy_meta(src: &Path, dst: &Path, m: &fs::Metadata) -> io::Result<()> {
    rustix::fs::chownat(
        CWD,
        dst,
        Some(rustix::fs::Uid::from_raw(m.uid())),
        Some(rustix::fs::Gid::from_raw(m.gid())),
        AtFlags::SYMLINK_NOFOLLOW,
    )?;
    if !m.file_type().is_symlink() {
        // After chown, which clears setuid/setgid bits.
        fs::set_permissions(dst, fs::Permissions::from_mode(m.mode() & 0o7777))?;
        let mut names = vec![0u8; 4096];
        if let Ok(n) = rustix::fs::llistxattr(src, &mut names) {
            for name in names[..n].split(|b| *b == 0).filter(|n| !n.is_empty()) {
                if !copied_xattr(name) {
                    continue;
                }
                let name = OsStr::from_bytes(name);
                let mut val = vec![0u8; 65536];
                if let Ok(len) = rustix::fs::lgetxattr(src, name, &mut val) {
                    // What the namespace may not set (trusted.*) is left out.
                    let _ = rustix::fs::lsetxattr(
                        dst,
                        name,
                        &val[..len],
                        rustix::fs::XattrFlags::empty(),
                    );
                }
            }
        }
    }
    let ts = |s: i64, ns: i64| Timespec {
        tv_sec: s,
        tv_nsec: ns as _,
    };
    let times = Timestamps {
        last_access: ts(m.atime(), m.atime_nsec()),
        last_modification: ts(m.mtime(), m.mtime_nsec()),
    };
    rustix::fs::utimensat(CWD, dst, &times, AtFlags::SYMLINK_NOFOLLOW)?;
    Ok(())
}

/// Copies one layer dir `src` over `dst` as overlayfs would show it on
/// top: a whiteout removes, an opaque dir replaces, anything else
/// replaces the entry below it (a dir merges into a dir below).
fn apply_layer(src: &Path, dst: &Path) -> io::Result<()> {
    for e in fs::read_dir(src)? {
        let e = e?;
        let (s, d) = (e.path(), dst.join(e.file_name()));
        let m = fs::symlink_metadata(&s)?;
        if is_whiteout(&m) {
            remove_any(&d)?;
            continue;
        }
        let below = fs::symlink_metadata(&d).ok();
        if m.is_dir() {
            match below {
                Some(b) if b.is_dir() && !is_opaque(&s) => {}
                Some(_) => {
                    remove_any(&d)?;
                    fs::create_dir(&d)?;
                }
                None => fs::create_dir(&d)?,
            }
            apply_layer(&s, &d)?;
            copy_meta(&s, &d, &m)?;
            continue;
        }
        if below.is_some() {
            remove_any(&d)?;
        }
        let ft = m.file_type();
        if ft.is_symlink() {
            std::os::unix::fs::symlink(fs::read_link(&s)?, &d)?;
        } else if ft.is_file() {
            fs::copy(&s, &d)?;
        } else if ft.is_fifo() {
            rustix::fs::mknodat(
                CWD,
                &d,
                rustix::fs::FileType::Fifo,
                rustix::fs::Mode::from_raw_mode(m.mode() & 0o7777),
                0,
            )?;
        } else {
            // Device nodes and sockets: unpacking already skipped devices
            // rootless; a socket in a layer is meaningless.
            tracing::debug!(
                "vfs: {} skipped (not a file, dir, symlink or fifo)",
                s.display()
            );
            continue;
        }
        copy_meta(&s, &d, &m)?;
    }
    Ok(())
}

/// Merges `lowers` (topmost first, as overlayfs takes them) into `dst`,
/// an existing empty dir.
pub fn populate(lowers: &[PathBuf], dst: &Path) -> io::Result<()> {
    for l in lowers.iter().rev() {
        apply_layer(l, dst)?;
    }
    if let Some(top) = lowers.first() {
        let m = fs::symlink_metadata(top)?;
        copy_meta(top, dst, &m)?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn merges_layers_with_whiteouts_and_opaque_dirs() {
        let t = tempfile::tempdir().unwrap();
        let (l1, l2, d) = (t.path().join("l1"), t.path().join("l2"), t.path().join("d"));
        for p in [&l1, &l2, &d] {
            fs::create_dir(p).unwrap();
        }
        fs::create_dir_all(l1.join("etc/sub")).unwrap();
        fs::write(l1.join("etc/a"), "a1").unwrap();
        fs::write(l1.join("etc/sub/x"), "x").unwrap();
        fs::write(l1.join("gone"), "g").unwrap();
        fs::create_dir(l1.join("opq")).unwrap();
        fs::write(l1.join("opq/old"), "o").unwrap();
        fs::create_dir_all(l2.join("etc")).unwrap();
        fs::write(l2.join("etc/a"), "a2").unwrap();
        fs::create_dir(l2.join("opq")).unwrap();
        fs::write(l2.join("opq/new"), "n").unwrap();
        std::os::unix::fs::symlink("etc/a", l2.join("link")).unwrap();
        // Whiteouts need mknod 0/0 (root, or a user namespace on 5.8+) and
        // opaque dirs an overlay xattr: set where this test may.
        let wh = rustix::fs::mknodat(
            CWD,
            l2.join("gone"),
            rustix::fs::FileType::CharacterDevice,
            rustix::fs::Mode::from_raw_mode(0),
            0,
        )
        .is_ok();
        let opq = ["trusted.overlay.opaque", "user.overlay.opaque"]
            .iter()
            .any(|n| {
                rustix::fs::lsetxattr(l2.join("opq"), *n, b"y", rustix::fs::XattrFlags::empty())
                    .is_ok()
            });
        populate(&[l2.clone(), l1.clone()], &d).unwrap();
        assert_eq!(fs::read_to_string(d.join("etc/a")).unwrap(), "a2");
        assert_eq!(fs::read_to_string(d.join("etc/sub/x")).unwrap(), "x");
        assert_eq!(fs::read_link(d.join("link")).unwrap(), Path::new("etc/a"));
        assert_eq!(fs::read_to_string(d.join("opq/new")).unwrap(), "n");
        if wh {
            assert!(!d.join("gone").exists());
        }
        if opq {
            assert!(!d.join("opq/old").exists());
        }
    }
}
