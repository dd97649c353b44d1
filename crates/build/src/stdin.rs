//! A context given on stdin (`berth build -`): a tar archive of the
//! context, or a Containerfile alone (an empty context), as docker and
//! podman read it.

use std::path::Path;

use crate::BuildError;

/// Unpacks `data` into `dir`: a tar stream becomes the context; anything
/// else is taken as the Containerfile of an empty context.
pub fn context_from(data: &[u8], dir: &Path) -> Result<(), BuildError> {
    let is_tar = data.len() >= 262 && &data[257..262] == b"ustar";
    let compressed = data.starts_with(&[0x1f, 0x8b])
        || data.starts_with(b"BZh")
        || data.starts_with(&[0xfd, b'7', b'z', b'X', b'Z', 0])
        || data.starts_with(&[0x28, 0xb5, 0x2f, 0xfd]);
    if compressed {
        return Err(BuildError::Other(
            "a compressed context on stdin is not supported yet; pipe an uncompressed tar".into(),
        ));
    }
    if !is_tar {
        return std::fs::write(dir.join("Containerfile"), data)
            .map_err(|e| BuildError::Other(format!("write the Containerfile from stdin: {e}")));
    }
    let mut a = tar::Archive::new(data);
    a.set_preserve_permissions(true);
    a.set_preserve_ownerships(true);
    a.set_preserve_mtime(true);
    // `unpack` refuses entries that would land outside `dir`.
    a.unpack(dir).map_err(|e| {
        BuildError::Other(format!(
            "unpack the context tar from stdin: {}",
            crate::chain(&e)
        ))
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tar_or_containerfile() {
        let d = tempfile::tempdir().unwrap();
        context_from(b"FROM scratch\n", d.path()).unwrap();
        assert_eq!(
            std::fs::read_to_string(d.path().join("Containerfile")).unwrap(),
            "FROM scratch\n"
        );
        let mut b = tar::Builder::new(Vec::new());
        let mut h = tar::Header::new_ustar();
        h.set_size(2);
        h.set_mode(0o600);
        h.set_uid(0);
        h.set_gid(0);
        h.set_mtime(0);
        h.set_cksum();
        b.append_data(&mut h, "sub/f", &b"hi"[..]).unwrap();
        let data = b.into_inner().unwrap();
        let d = tempfile::tempdir().unwrap();
        context_from(&data, d.path()).unwrap();
        assert_eq!(
            std::fs::read_to_string(d.path().join("sub/f")).unwrap(),
            "hi"
        );
        assert!(context_from(&[0x1f, 0x8b, 0], d.path()).is_err());
    }
}
