//! Named and anonymous volumes: the plain rules (names, `--opt`s, which
//! `-v`/`--mount` values are volumes, which image `Volumes` need an
//! anonymous one). The store (SQLite rows, `<root>/volumes/<name>/_data`)
//! is in [`crate::volume_store`], the copy-up in [`crate::volume_copy`].

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::opts::RunOptions;

/// Errors of volume operations.
#[derive(Debug, thiserror::Error)]
pub enum VolumeError {
    #[error("invalid volume name {0:?}: use [a-zA-Z0-9][a-zA-Z0-9_.-]* (at least 2 characters); a host directory must be an absolute path")]
    BadName(String),
    #[error("invalid volume option {opt:?}: {why}")]
    BadOpt { opt: String, why: String },
    #[error("invalid {flag} value {value:?}: {why}")]
    BadSpec {
        flag: &'static str,
        value: String,
        why: String,
    },
    #[error("volume {0} already exists")]
    Exists(String),
    #[error("no such volume: {0}")]
    NotFound(String),
    #[error("volume {name} is in use by container(s) {containers}; remove them first (or use volume rm -f)")]
    InUse { name: String, containers: String },
    #[error("volume {name} was removed while container {container} was being created; run the command again")]
    Vanished { name: String, container: String },
    #[error("volume database: {op}")]
    Query {
        op: String,
        #[source]
        source: rusqlite::Error,
    },
    #[error("volume database: the stored {field} of volume {name} is unreadable")]
    Corrupt {
        name: String,
        field: &'static str,
        #[source]
        source: serde_json::Error,
    },
    #[error("volume {name}: {op} {path}")]
    Io {
        name: String,
        op: &'static str,
        path: std::path::PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("volume {name}: copying the image content of {target} into it failed: {why}")]
    CopyUp {
        name: String,
        target: String,
        why: String,
    },
}

/// Docker's volume name rule: `[a-zA-Z0-9][a-zA-Z0-9_.-]+`.
pub fn check_name(name: &str) -> Result<(), VolumeError> {
    let mut chars = name.chars();
    let first_ok = chars.next().is_some_and(|c| c.is_ascii_alphanumeric());
    let rest_ok = chars.all(|c| c.is_ascii_alphanumeric() || "_.-".contains(c));
    if first_ok && rest_ok && name.len() >= 2 && name.len() <= 255 {
        Ok(())
    } else {
        Err(VolumeError::BadName(name.into()))
    }
}

/// How a volume's data is provided (the local driver's `--opt`s).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Default)]
pub struct VolumeOpts {
    /// `type=`: empty (a plain dir), `tmpfs` or `bind`.
    #[serde(default)]
    pub kind: String,
    /// `o=`: mount options, comma separated.
    #[serde(default)]
    pub o: String,
    /// `device=`: the bind source (`type=bind`).
    #[serde(default)]
    pub device: String,
}

/// `--opt type=tmpfs|bind --opt o=... --opt device=...`.
pub fn parse_opts(items: &[String]) -> Result<VolumeOpts, VolumeError> {
    let bad = |opt: &str, why: &str| VolumeError::BadOpt {
        opt: opt.into(),
        why: why.into(),
    };
    let mut v = VolumeOpts::default();
    for item in items {
        let (k, val) = item
            .split_once('=')
            .ok_or_else(|| bad(item, "use KEY=VALUE"))?;
        match k {
            "type" => v.kind = val.into(),
            "o" => v.o = val.into(),
            "device" => v.device = val.into(),
            _ => return Err(bad(item, "the local driver knows type, o and device")),
        }
    }
    match v.kind.as_str() {
        "" | "none" if v.device.is_empty() => {
            v.kind.clear();
            if !v.o.is_empty() {
                return Err(bad(&v.o, "o= needs type=tmpfs or type=bind"));
            }
        }
        "tmpfs" => {
            if !v.device.is_empty() && v.device != "tmpfs" {
                return Err(bad(&v.device, "a tmpfs volume takes no device"));
            }
        }
        "bind" | "none" => {
            v.kind = "bind".into();
            if !v.device.starts_with('/') {
                return Err(bad(
                    &format!("device={}", v.device),
                    "type=bind needs an absolute device= host path",
                ));
            }
            for o in v.o.split(',').filter(|o| !o.is_empty()) {
                if !matches!(o, "bind" | "rbind" | "ro" | "rw") {
                    return Err(bad(o, "a bind volume takes bind, rbind, ro or rw"));
                }
            }
        }
        other => {
            return Err(bad(
                &format!("type={other}"),
                "berth's local driver supports type=tmpfs and type=bind",
            ))
        }
    }
    Ok(v)
}

/// A volume a container asks for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VolumeRef {
    /// `None`: anonymous (a fresh volume is made).
    pub name: Option<String>,
    pub target: String,
    pub readonly: bool,
}

fn bad_spec(flag: &'static str, value: &str, why: &str) -> VolumeError {
    VolumeError::BadSpec {
        flag,
        value: value.into(),
        why: why.into(),
    }
}

/// `-v NAME:/path[:ro|rw]` or `-v /path`: the volume, or `None` for a host
/// bind (`/host:/ctr`), which [`crate::opts::parse_volume`] handles.
pub fn parse_volume_flag(s: &str) -> Result<Option<VolumeRef>, VolumeError> {
    let parts: Vec<&str> = s.split(':').collect();
    let (name, target, opts) = match parts.as_slice() {
        [t] => (None, *t, ""),
        [src, t] if !src.starts_with('/') => (Some(*src), *t, ""),
        [src, t, o] if !src.starts_with('/') => (Some(*src), *t, *o),
        _ => return Ok(None),
    };
    if !target.starts_with('/') {
        return Err(bad_spec("-v", s, "the container path must be absolute"));
    }
    if let Some(n) = name {
        check_name(n)?;
    }
    let mut readonly = false;
    for o in opts.split(',').filter(|o| !o.is_empty()) {
        match o {
            "ro" => readonly = true,
            "rw" | "z" | "Z" | "nocopy" => {}
            other => return Err(bad_spec("-v", s, &format!("unknown option {other:?}"))),
        }
    }
    Ok(Some(VolumeRef {
        name: name.map(str::to_string),
        target: target.into(),
        readonly,
    }))
}

/// `--mount type=volume[,source=NAME],target=/path[,readonly]`; `None`
/// for other mount types.
pub fn parse_mount_flag(s: &str) -> Result<Option<VolumeRef>, VolumeError> {
    let kv: Vec<(&str, &str)> = s
        .split(',')
        .map(|kv| kv.split_once('=').unwrap_or((kv, "")))
        .collect();
    if !kv.iter().any(|(k, v)| *k == "type" && *v == "volume") {
        return Ok(None);
    }
    let mut r = VolumeRef {
        name: None,
        target: String::new(),
        readonly: false,
    };
    for (k, v) in kv {
        match k {
            "type" => {}
            "source" | "src" if !v.is_empty() => {
                check_name(v)?;
                r.name = Some(v.into());
            }
            "target" | "destination" | "dst" => r.target = v.into(),
            "readonly" | "ro" => r.readonly = v.is_empty() || v == "true" || v == "1",
            "volume-nocopy" => {}
            other => {
                return Err(bad_spec(
                    "--mount",
                    s,
                    &format!("unknown key {other:?} for type=volume"),
                ))
            }
        }
    }
    if !r.target.starts_with('/') {
        return Err(bad_spec("--mount", s, "target= must be an absolute path"));
    }
    Ok(Some(r))
}

/// The volumes of a container and the options left for the generic mount
/// code (host binds, tmpfs): user volumes first, then an anonymous volume
/// for each image `Volumes` path no user mount covers (Docker's rule).
pub fn plan(
    o: &RunOptions,
    image_volumes: &[String],
) -> Result<(Vec<VolumeRef>, RunOptions), VolumeError> {
    let mut refs = Vec::new();
    let mut rest = o.clone();
    rest.volumes.clear();
    rest.mounts.clear();
    for v in &o.volumes {
        match parse_volume_flag(v)? {
            Some(r) => refs.push(r),
            None => rest.volumes.push(v.clone()),
        }
    }
    for m in &o.mounts {
        match parse_mount_flag(m)? {
            Some(r) => refs.push(r),
            None => rest.mounts.push(m.clone()),
        }
    }
    let covered = |t: &str| {
        let t = t.trim_end_matches('/');
        refs.iter().any(|r| r.target.trim_end_matches('/') == t)
            || rest
                .volumes
                .iter()
                .chain(rest.mounts.iter())
                .chain(rest.tmpfs.iter())
                .any(|s| s.contains(&format!(":{t}")) || s.contains(&format!("={t}")))
            || rest.tmpfs.iter().any(|s| s.split(':').next() == Some(t))
    };
    let mut anon = Vec::new();
    for t in image_volumes {
        if t.starts_with('/') && !covered(t) {
            anon.push(VolumeRef {
                name: None,
                target: t.clone(),
                readonly: false,
            });
        }
    }
    refs.extend(anon);
    Ok((refs, rest))
}

/// `--volumes-from CONTAINER[:ro|rw]`: the container reference and
/// whether its volumes are forced read-only.
pub fn parse_volumes_from(s: &str) -> Result<(String, Option<bool>), VolumeError> {
    match s.rsplit_once(':') {
        Some((c, "ro")) => Ok((c.into(), Some(true))),
        Some((c, "rw")) => Ok((c.into(), Some(false))),
        Some(_) => Err(bad_spec("--volumes-from", s, "use CONTAINER[:ro|rw]")),
        None => Ok((s.into(), None)),
    }
}

/// Adds the volumes taken from other containers: a user mount at the same
/// target wins, an image anonymous volume there is replaced.
pub fn merge_from(refs: &mut Vec<VolumeRef>, image_anonymous: &[String], from: Vec<VolumeRef>) {
    for f in from {
        let same = |r: &VolumeRef| r.target.trim_end_matches('/') == f.target.trim_end_matches('/');
        match refs.iter().position(same) {
            Some(i) if refs[i].name.is_none() && image_anonymous.contains(&refs[i].target) => {
                refs[i] = f
            }
            Some(_) => {}
            None => refs.push(f),
        }
    }
}

/// `--label K=V` of `volume create`.
pub fn labels(items: &[String]) -> BTreeMap<String, String> {
    crate::opts::parse_labels(items)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_follow_docker() {
        for ok in ["ab", "data", "a.b-c_d", "0x"] {
            check_name(ok).expect(ok);
        }
        for bad in ["", "a", "-a", ".a", "a/b", "a b", "_x", "é1"] {
            assert!(check_name(bad).is_err(), "{bad}");
        }
        let msg = check_name("/x").unwrap_err().to_string();
        assert!(msg.contains("invalid volume name"), "{msg}");
    }

    #[test]
    fn opts_are_validated() {
        assert_eq!(parse_opts(&[]).expect("none"), VolumeOpts::default());
        let t = parse_opts(&["type=tmpfs".into(), "o=size=1m".into()]).expect("tmpfs");
        assert_eq!((t.kind.as_str(), t.o.as_str()), ("tmpfs", "size=1m"));
        let b = parse_opts(&["type=bind".into(), "device=/srv".into()]).expect("bind");
        assert_eq!(b.device, "/srv");
        assert!(parse_opts(&["type=bind".into()]).is_err());
        assert!(parse_opts(&["type=nfs".into()]).is_err());
        assert!(parse_opts(&["colour=red".into()]).is_err());
        assert!(parse_opts(&["noequals".into()]).is_err());
        assert!(parse_opts(&["o=size=1m".into()]).is_err());
    }

    #[test]
    fn volume_flags() {
        assert_eq!(parse_volume_flag("/h:/c").expect("bind"), None);
        assert_eq!(parse_volume_flag("/h:/c:ro").expect("bind"), None);
        let r = parse_volume_flag("data:/d:ro")
            .expect("named")
            .expect("some");
        assert_eq!(
            (r.name.as_deref(), r.target.as_str(), r.readonly),
            (Some("data"), "/d", true)
        );
        let a = parse_volume_flag("/anon").expect("anon").expect("some");
        assert_eq!((a.name, a.readonly), (None, false));
        assert!(parse_volume_flag("bad/name:/d").is_err());
        assert!(parse_volume_flag("data:rel").is_err());
        assert!(parse_volume_flag("data:/d:bogus").is_err());
        assert!(parse_volume_flag("rel").is_err());
    }

    #[test]
    fn mount_flags() {
        assert_eq!(
            parse_mount_flag("type=bind,source=/a,target=/b").expect("bind"),
            None
        );
        let r = parse_mount_flag("type=volume,source=v1,target=/v,readonly")
            .expect("vol")
            .expect("some");
        assert_eq!((r.name.as_deref(), r.readonly), (Some("v1"), true));
        let a = parse_mount_flag("type=volume,target=/v")
            .expect("anon")
            .expect("some");
        assert_eq!(a.name, None);
        assert!(parse_mount_flag("type=volume,source=v1").is_err());
        assert!(parse_mount_flag("type=volume,target=/v,colour=red").is_err());
    }

    #[test]
    fn volumes_from_parse_and_merge() {
        assert_eq!(
            parse_volumes_from("c1").expect("plain"),
            ("c1".into(), None)
        );
        assert_eq!(
            parse_volumes_from("c1:ro").expect("ro"),
            ("c1".into(), Some(true))
        );
        assert!(parse_volumes_from("c1:bogus").is_err());
        let r = |n: Option<&str>, t: &str| VolumeRef {
            name: n.map(str::to_string),
            target: t.into(),
            readonly: false,
        };
        let mut refs = vec![r(Some("mine"), "/a"), r(None, "/img")];
        merge_from(
            &mut refs,
            &["/img".to_string()],
            vec![
                r(Some("x"), "/a"),
                r(Some("y"), "/img"),
                r(Some("z"), "/new"),
            ],
        );
        assert_eq!(
            refs,
            vec![
                r(Some("mine"), "/a"),
                r(Some("y"), "/img"),
                r(Some("z"), "/new")
            ]
        );
    }

    #[test]
    fn plan_splits_and_adds_image_volumes() {
        let o = RunOptions {
            volumes: vec!["/h:/host".into(), "v1:/data".into()],
            mounts: vec![
                "type=volume,target=/m".into(),
                "type=tmpfs,target=/t".into(),
            ],
            ..Default::default()
        };
        let img = vec!["/data".to_string(), "/cache".to_string(), "/t".to_string()];
        let (refs, rest) = plan(&o, &img).expect("plan");
        assert_eq!(rest.volumes, vec!["/h:/host".to_string()]);
        assert_eq!(rest.mounts, vec!["type=tmpfs,target=/t".to_string()]);
        let targets: Vec<_> = refs
            .iter()
            .map(|r| (r.name.clone(), r.target.as_str()))
            .collect();
        assert_eq!(
            targets,
            vec![
                (Some("v1".to_string()), "/data"),
                (None, "/m"),
                (None, "/cache"),
            ]
        );
    }
}
