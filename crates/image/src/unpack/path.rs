//! Path-safety decisions for layer entries, free of I/O so they are unit
//! tested: an entry's name becomes a list of plain components (no `..`, no
//! absolute paths, no NUL) and its final component is classified as a
//! regular name, a whiteout or an opaque marker (image-spec layer.md,
//! "Whiteouts" and "Opaque Whiteout").

use std::ffi::OsString;
use std::os::unix::ffi::{OsStrExt, OsStringExt};

/// The prefix marking a whiteout file.
pub const WHITEOUT_PREFIX: &[u8] = b".wh.";
/// The name of the opaque-directory marker.
pub const OPAQUE_MARKER: &[u8] = b".wh..wh..opq";
/// The prefix of aufs metadata entries (`.wh..wh.plnk`, ...), ignored.
const AUFS_META_PREFIX: &[u8] = b".wh..wh.";

/// Why an entry path is refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PathProblem {
    #[error("absolute path (layer entries must be relative to the rootfs)")]
    Absolute,
    #[error("'..' component would leave the rootfs")]
    DotDot,
    #[error("NUL byte in name")]
    Nul,
    #[error("component longer than 255 bytes")]
    TooLong,
    #[error("whiteout names no file")]
    EmptyWhiteout,
}

/// A checked entry path: plain components relative to the rootfs; empty
/// means the rootfs itself.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EntryPath {
    pub components: Vec<OsString>,
}

/// What the final component of an entry means.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum EntryKind {
    /// An ordinary file, directory, link or node.
    Plain,
    /// `.wh.<name>`: hide `<name>` of lower layers.
    Whiteout(OsString),
    /// `.wh..wh..opq`: hide all lower children of the parent directory.
    Opaque,
    /// aufs bookkeeping (`.wh..wh.plnk/...`): skipped.
    Ignored,
}

impl EntryPath {
    /// Checks a raw tar path. `.` components and repeated or trailing
    /// slashes are dropped; `..` and leading `/` are refused outright
    /// rather than clamped, since no well-formed layer contains them.
    pub fn parse(raw: &[u8]) -> Result<Self, PathProblem> {
        if raw.contains(&0) {
            return Err(PathProblem::Nul);
        }
        if raw.first() == Some(&b'/') {
            return Err(PathProblem::Absolute);
        }
        let mut components = Vec::new();
        for c in raw.split(|b| *b == b'/') {
            match c {
                b"" | b"." => continue,
                b".." => return Err(PathProblem::DotDot),
                c if c.len() > 255 => return Err(PathProblem::TooLong),
                c => components.push(OsString::from_vec(c.to_vec())),
            }
        }
        Ok(Self { components })
    }

    /// Parent components and final name; `None` for the rootfs itself.
    pub fn split_last(&self) -> Option<(&[OsString], &OsString)> {
        self.components.split_last().map(|(l, p)| (p, l))
    }

    /// Classifies the final component.
    pub fn kind(&self) -> Result<EntryKind, PathProblem> {
        let Some(last) = self.components.last() else {
            return Ok(EntryKind::Plain);
        };
        let parents = &self.components[..self.components.len() - 1];
        if parents
            .iter()
            .any(|c| c.as_bytes().starts_with(AUFS_META_PREFIX))
        {
            return Ok(EntryKind::Ignored);
        }
        let b = last.as_bytes();
        if b == OPAQUE_MARKER {
            return Ok(EntryKind::Opaque);
        }
        if b.starts_with(AUFS_META_PREFIX) {
            return Ok(EntryKind::Ignored);
        }
        if let Some(target) = b.strip_prefix(WHITEOUT_PREFIX) {
            return match target {
                b"" | b"." | b".." => Err(PathProblem::EmptyWhiteout),
                t => Ok(EntryKind::Whiteout(OsString::from_vec(t.to_vec()))),
            };
        }
        Ok(EntryKind::Plain)
    }

    /// For messages: the path as `a/b/c`.
    pub fn display(&self) -> String {
        let parts: Vec<String> = self
            .components
            .iter()
            .map(|c| c.to_string_lossy().into_owned())
            .collect();
        if parts.is_empty() {
            ".".to_string()
        } else {
            parts.join("/")
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn comps(raw: &str) -> Vec<String> {
        EntryPath::parse(raw.as_bytes())
            .unwrap()
            .components
            .iter()
            .map(|c| c.to_string_lossy().into_owned())
            .collect()
    }

    #[test]
    fn normalises_harmless_forms() {
        assert_eq!(comps("./etc/passwd"), ["etc", "passwd"]);
        assert_eq!(comps("etc//x/./y/"), ["etc", "x", "y"]);
        assert!(comps("./").is_empty());
        assert_eq!(comps("ünïcödé/файл"), ["ünïcödé", "файл"]);
        assert_eq!(comps("a/..b/c.."), ["a", "..b", "c.."]);
    }

    #[test]
    fn refuses_escapes() {
        assert_eq!(EntryPath::parse(b"/etc/passwd"), Err(PathProblem::Absolute));
        assert_eq!(EntryPath::parse(b"../x"), Err(PathProblem::DotDot));
        assert_eq!(EntryPath::parse(b"a/../../x"), Err(PathProblem::DotDot));
        assert_eq!(EntryPath::parse(b"a/.."), Err(PathProblem::DotDot));
        assert_eq!(EntryPath::parse(b"a\0b"), Err(PathProblem::Nul));
        let long = format!("a/{}", "x".repeat(256));
        assert_eq!(EntryPath::parse(long.as_bytes()), Err(PathProblem::TooLong));
    }

    #[test]
    fn classifies_whiteouts() {
        let k = |s: &str| EntryPath::parse(s.as_bytes()).unwrap().kind();
        assert_eq!(k("etc/passwd"), Ok(EntryKind::Plain));
        assert_eq!(
            k("etc/.wh.passwd"),
            Ok(EntryKind::Whiteout("passwd".into()))
        );
        assert_eq!(k("etc/.wh..wh..opq"), Ok(EntryKind::Opaque));
        assert_eq!(k(".wh..wh.plnk/123.4"), Ok(EntryKind::Ignored));
        assert_eq!(k(".wh..wh.plnk"), Ok(EntryKind::Ignored));
        assert_eq!(k("a/.wh."), Err(PathProblem::EmptyWhiteout));
        assert_eq!(k("a/.wh..."), Err(PathProblem::EmptyWhiteout));
        assert_eq!(k("a/.whx"), Ok(EntryKind::Plain));
    }
}
