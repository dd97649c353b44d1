//! Host bind mounts before a container is recorded: the source must exist
//! (a missing one is an error naming it, not silently created, unless
//! `--mount ...,bind-create-src` asked for it), and podman's `:U` chowns
//! the source, recursively, to the user the container runs as.

use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};

use crate::opts::{self, MountRequest, RunOptions};
use crate::user::Identity;

/// Errors of preparing host bind mounts.
#[derive(Debug, thiserror::Error)]
pub enum BindError {
    #[error("bind mount source {path} (for {target}) does not exist: create it first, or use --mount type=bind,...,bind-create-src")]
    Missing { path: PathBuf, target: String },
    #[error("bind mount source {path} (for {target}): {op}")]
    Io {
        path: PathBuf,
        target: String,
        op: &'static str,
        #[source]
        source: std::io::Error,
    },
}

/// The host binds among the container's `-v` and `--mount` values (the
/// ones [`crate::volumes::plan`] left for the generic mount code).
pub fn requests(o: &RunOptions) -> Result<Vec<MountRequest>, opts::OptsError> {
    let mut out = Vec::new();
    for v in &o.volumes {
        out.push(opts::parse_volume(v)?);
    }
    for m in &o.mounts {
        out.push(opts::parse_mount(m)?);
    }
    out.retain(|m| m.kind == "bind");
    Ok(out)
}

/// Checks (or creates) each bind source and applies `:U`.
pub fn prepare(binds: &[MountRequest], identity: &Identity) -> Result<(), BindError> {
    for m in binds {
        let Some(src) = &m.source else { continue };
        let err = |op| {
            let (path, target) = (src.clone(), m.target.clone());
            move |source| BindError::Io {
                path,
                target,
                op,
                source,
            }
        };
        match std::fs::symlink_metadata(src) {
            Ok(_) => {}
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                if !m.create_source {
                    return Err(BindError::Missing {
                        path: src.clone(),
                        target: m.target.clone(),
                    });
                }
                std::fs::create_dir_all(src).map_err(err("create"))?;
            }
            Err(e) => return Err(err("stat")(e)),
        }
        if m.chown {
            chown_tree(src, identity.uid, identity.gid).map_err(err("chown (:U)"))?;
        }
    }
    Ok(())
}

/// `chown -R -P uid:gid path`: symlinks themselves, never their targets;
/// entries already owned right are left alone (no ctime churn).
fn chown_tree(path: &Path, uid: u32, gid: u32) -> std::io::Result<()> {
    let meta = std::fs::symlink_metadata(path)?;
    if meta.uid() != uid || meta.gid() != gid {
        std::os::unix::fs::lchown(path, Some(uid), Some(gid))?;
    }
    if meta.is_dir() {
        for entry in std::fs::read_dir(path)? {
            chown_tree(&entry?.path(), uid, gid)?;
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn bind(src: &Path, create: bool) -> MountRequest {
        MountRequest {
            kind: "bind".into(),
            source: Some(src.to_path_buf()),
            target: "/t".into(),
            options: vec![],
            chown: false,
            create_source: create,
        }
    }

    #[test]
    fn missing_source_is_an_error_unless_asked() {
        let dir = tempfile::tempdir().expect("tempdir");
        let gone = dir.path().join("nope");
        let e = prepare(&[bind(&gone, false)], &Identity::default()).unwrap_err();
        let msg = e.to_string();
        assert!(msg.contains(&gone.display().to_string()), "{msg}");
        assert!(msg.contains("bind-create-src"), "{msg}");
        assert!(!gone.exists());
        prepare(&[bind(&gone, true)], &Identity::default()).expect("created");
        assert!(gone.is_dir());
    }

    #[test]
    fn requests_keep_binds_only() {
        let o = RunOptions {
            volumes: vec!["/a:/b:ro".into()],
            mounts: vec![
                "type=tmpfs,target=/t".into(),
                "type=bind,src=/c,dst=/d,U".into(),
            ],
            ..Default::default()
        };
        let r = requests(&o).expect("requests");
        assert_eq!(r.len(), 2);
        assert!(r[1].chown && !r[0].chown);
    }
}
