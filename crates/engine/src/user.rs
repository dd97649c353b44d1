//! `-u user[:group]` and an image's `User`, resolved through the image's
//! `/etc/passwd` and `/etc/group` as Docker does (image-spec config.md
//! "User": names are looked up in the container's files).

use std::path::{Path, PathBuf};

/// Errors of resolving a user.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum UserError {
    #[error("unable to find user {0}: no matching entries in the image's /etc/passwd")]
    NoUser(String),
    #[error("unable to find group {0}: no matching entries in the image's /etc/group")]
    NoGroup(String),
}

/// A resolved process identity.
#[derive(Debug, Clone, PartialEq, Eq, Default, serde::Serialize, serde::Deserialize)]
pub struct Identity {
    pub uid: u32,
    pub gid: u32,
    pub additional_gids: Vec<u32>,
    /// From the passwd entry; `/` when there is none (Docker's default).
    pub home: String,
}

struct Passwd<'a> {
    name: &'a str,
    uid: u32,
    gid: u32,
    home: &'a str,
}

fn passwd_entries(text: &str) -> impl Iterator<Item = Passwd<'_>> {
    text.lines().filter_map(|l| {
        let f: Vec<&str> = l.split(':').collect();
        (f.len() >= 6).then(|| {
            Some(Passwd {
                name: f[0],
                uid: f[2].parse().ok()?,
                gid: f[3].parse().ok()?,
                home: f[5],
            })
        })?
    })
}

struct Group<'a> {
    name: &'a str,
    gid: u32,
    members: Vec<&'a str>,
}

fn group_entries(text: &str) -> impl Iterator<Item = Group<'_>> {
    text.lines().filter_map(|l| {
        let f: Vec<&str> = l.split(':').collect();
        (f.len() >= 3).then(|| {
            Some(Group {
                name: f[0],
                gid: f[2].parse().ok()?,
                members: f
                    .get(3)
                    .map(|m| m.split(',').filter(|s| !s.is_empty()).collect())
                    .unwrap_or_default(),
            })
        })?
    })
}

/// Resolves `spec` (`user`, `uid`, `user:group`, `uid:gid`; empty = root)
/// against the texts of the image's passwd and group files.
pub fn resolve(spec: &str, passwd: &str, group: &str) -> Result<Identity, UserError> {
    let (u, g) = match spec.split_once(':') {
        Some((u, g)) => (u, Some(g)),
        None => (spec, None),
    };
    let u = if u.is_empty() { "0" } else { u };
    let entry = passwd_entries(passwd).find(|p| p.name == u || u.parse() == Ok(p.uid));
    let (uid, mut gid, name, home) = match (&entry, u.parse::<u32>()) {
        (Some(p), _) => (p.uid, p.gid, Some(p.name), p.home.to_string()),
        (None, Ok(n)) => (n, 0, None, "/".to_string()),
        (None, Err(_)) => return Err(UserError::NoUser(u.into())),
    };
    if let Some(g) = g.filter(|g| !g.is_empty()) {
        gid = match group_entries(group).find(|e| e.name == g || g.parse() == Ok(e.gid)) {
            Some(e) => e.gid,
            None => g.parse().map_err(|_| UserError::NoGroup(g.into()))?,
        };
    }
    let mut additional_gids: Vec<u32> = match name {
        // Supplementary groups only when no group was forced (as Docker).
        Some(n) if g.is_none() => group_entries(group)
            .filter(|e| e.members.contains(&n) && e.gid != gid)
            .map(|e| e.gid)
            .collect(),
        _ => vec![],
    };
    additional_gids.dedup();
    Ok(Identity {
        uid,
        gid,
        additional_gids,
        home: if home.is_empty() { "/".into() } else { home },
    })
}

/// Reads `rel` (e.g. `etc/passwd`) from the first of `layers` (topmost
/// first) that has it, without following symlinks out of the layer;
/// empty when none has it.
pub fn read_from_layers(layers: &[PathBuf], rel: &str) -> String {
    for l in layers {
        let p: &Path = l.as_path();
        let f = p.join(rel);
        if let Ok(m) = std::fs::symlink_metadata(&f) {
            if m.is_file() {
                return std::fs::read_to_string(&f).unwrap_or_default();
            }
            return String::new();
        }
    }
    String::new()
}

#[cfg(test)]
mod tests {
    use super::*;

    const PASSWD: &str = "root:x:0:0:root:/root:/bin/sh\n\
        daemon:x:1:1:daemon:/usr/sbin:/bin/false\n\
        www:x:33:33:www:/var/www:/bin/sh\nbroken\n";
    const GROUP: &str = "root:x:0:\ndaemon:x:1:\nwww:x:33:\nstaff:x:50:www,daemon\nadm:x:4:www\n";

    #[test]
    fn names_and_numbers() {
        assert_eq!(
            resolve("", PASSWD, GROUP),
            Ok(Identity {
                uid: 0,
                gid: 0,
                additional_gids: vec![],
                home: "/root".into()
            })
        );
        let www = resolve("www", PASSWD, GROUP).expect("www");
        assert_eq!((www.uid, www.gid, www.home.as_str()), (33, 33, "/var/www"));
        assert_eq!(www.additional_gids, vec![50, 4]);
        let n = resolve("1000", PASSWD, GROUP).expect("numeric");
        assert_eq!((n.uid, n.gid, n.home.as_str()), (1000, 0, "/"));
        let g = resolve("www:staff", PASSWD, GROUP).expect("with group");
        assert_eq!((g.uid, g.gid), (33, 50));
        assert!(g.additional_gids.is_empty());
        assert_eq!(resolve("33:7", PASSWD, GROUP).expect("numbers").gid, 7);
        assert_eq!(
            resolve("nobody", PASSWD, GROUP),
            Err(UserError::NoUser("nobody".into()))
        );
        assert_eq!(
            resolve("www:nogroup", PASSWD, GROUP),
            Err(UserError::NoGroup("nogroup".into()))
        );
    }

    #[test]
    fn reads_topmost_layer_first() {
        let d = tempfile::tempdir().expect("tempdir");
        let (top, low) = (d.path().join("top"), d.path().join("low"));
        std::fs::create_dir_all(low.join("etc")).expect("mkdir");
        std::fs::create_dir_all(top.join("etc")).expect("mkdir");
        std::fs::write(low.join("etc/passwd"), "low").expect("write");
        std::fs::write(low.join("etc/group"), "lowgroup").expect("write");
        std::fs::write(top.join("etc/passwd"), "top").expect("write");
        let layers = vec![top, low];
        assert_eq!(read_from_layers(&layers, "etc/passwd"), "top");
        assert_eq!(read_from_layers(&layers, "etc/group"), "lowgroup");
        assert_eq!(read_from_layers(&layers, "etc/shadow"), "");
    }
}
