//! containers-registries.conf(5), version 2, as podman, buildah and CRI-O
//! read it: `unqualified-search-registries`, `[[registry]]` with `prefix`,
//! `location`, `insecure`, `blocked`, and `[[registry.mirror]]` with
//! `location` and `insecure`. The file is `CONTAINERS_REGISTRIES_CONF` when
//! set (berth's `--registries-conf` sets it), else
//! `/etc/containers/registries.conf`; a missing default file configures
//! nothing. Version 1 tables (`[registries.search]`, `[registries.insecure]`,
//! `[registries.block]`) are read too.
//!
//! Not read (as documented differences): `registries.conf.d` drop-ins,
//! `short-name-mode` and aliases (a short name tries the search registries
//! in order, without prompting), `mirror-by-digest-only`, `pull-from-mirror`.

use std::path::{Path, PathBuf};

use crate::reference::Reference;

/// The default file.
pub const DEFAULT_PATH: &str = "/etc/containers/registries.conf";
/// The environment variable that names another file.
pub const ENV: &str = "CONTAINERS_REGISTRIES_CONF";

/// Errors of registries.conf.
#[derive(Debug, Clone, thiserror::Error)]
pub enum ConfError {
    #[error("read registries configuration {path}: {reason}")]
    Read { path: PathBuf, reason: String },
    #[error("parse registries configuration {path}: {reason}")]
    Parse { path: PathBuf, reason: String },
    #[error("pull {image}: registry {prefix} is blocked in {path}")]
    Blocked {
        image: String,
        prefix: String,
        path: PathBuf,
    },
}

/// One `[[registry.mirror]]`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Mirror {
    pub location: String,
    pub insecure: bool,
}

/// One `[[registry]]`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Registry {
    /// What names it matches: `host[/path]` or `*.domain`.
    pub prefix: String,
    /// Where they are pulled from (the prefix when empty).
    pub location: String,
    pub insecure: bool,
    pub blocked: bool,
    pub mirrors: Vec<Mirror>,
}

/// Where to try pulling one image from, in order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Source {
    /// The image's name at that endpoint.
    pub reference: Reference,
    /// HTTP or unverified TLS allowed there.
    pub insecure: bool,
}

/// A parsed registries.conf.
#[derive(Debug, Clone, Default)]
pub struct RegistriesConf {
    /// The file read (None: none was there).
    pub path: Option<PathBuf>,
    pub unqualified_search: Vec<String>,
    pub registries: Vec<Registry>,
}

#[derive(serde::Deserialize, Default)]
#[serde(rename_all = "kebab-case")]
struct FileV2 {
    #[serde(default)]
    unqualified_search_registries: Vec<String>,
    #[serde(default)]
    registry: Vec<RegistryV2>,
    #[serde(default)]
    registries: Option<FileV1>,
}

#[derive(serde::Deserialize)]
struct RegistryV2 {
    #[serde(default)]
    prefix: String,
    #[serde(default)]
    location: String,
    #[serde(default)]
    insecure: bool,
    #[serde(default)]
    blocked: bool,
    #[serde(default)]
    mirror: Vec<MirrorV2>,
}

#[derive(serde::Deserialize)]
struct MirrorV2 {
    location: String,
    #[serde(default)]
    insecure: bool,
}

#[derive(serde::Deserialize, Default)]
struct FileV1 {
    #[serde(default)]
    search: Option<ListV1>,
    #[serde(default)]
    insecure: Option<ListV1>,
    #[serde(default)]
    block: Option<ListV1>,
}

#[derive(serde::Deserialize, Default)]
struct ListV1 {
    #[serde(default)]
    registries: Vec<String>,
}

impl RegistriesConf {
    /// The file `CONTAINERS_REGISTRIES_CONF` names (which must exist), or
    /// the default one if it exists.
    pub fn load() -> Result<Self, ConfError> {
        match std::env::var_os(ENV).filter(|v| !v.is_empty()) {
            Some(p) => Self::read(Path::new(&p)),
            None if Path::new(DEFAULT_PATH).exists() => Self::read(Path::new(DEFAULT_PATH)),
            None => Ok(Self::default()),
        }
    }

    /// Reads and parses `path`.
    pub fn read(path: &Path) -> Result<Self, ConfError> {
        let text = std::fs::read_to_string(path).map_err(|e| ConfError::Read {
            path: path.to_path_buf(),
            reason: e.to_string(),
        })?;
        let mut c = Self::parse(&text).map_err(|reason| ConfError::Parse {
            path: path.to_path_buf(),
            reason,
        })?;
        c.path = Some(path.to_path_buf());
        Ok(c)
    }

    /// Parses the text of a registries.conf.
    pub fn parse(text: &str) -> Result<Self, String> {
        let f: FileV2 = toml::from_str(text).map_err(|e| e.message().to_string())?;
        let mut registries = Vec::new();
        for r in f.registry {
            let prefix = if r.prefix.is_empty() {
                r.location.clone()
            } else {
                r.prefix
            };
            if prefix.is_empty() {
                return Err("a [[registry]] needs a prefix or a location".into());
            }
            if prefix.starts_with("*.") && !r.location.is_empty() {
                return Err(format!(
                    "[[registry]] prefix {prefix:?}: a wildcard prefix takes no location"
                ));
            }
            let location = if r.location.is_empty() {
                prefix.clone()
            } else {
                r.location
            };
            registries.push(Registry {
                prefix,
                location,
                insecure: r.insecure,
                blocked: r.blocked,
                mirrors: r
                    .mirror
                    .into_iter()
                    .map(|m| Mirror {
                        location: m.location,
                        insecure: m.insecure,
                    })
                    .collect(),
            });
        }
        let mut unqualified_search = f.unqualified_search_registries;
        if let Some(v1) = f.registries {
            if !registries.is_empty() {
                return Err("mixes version 1 [registries.*] tables and [[registry]]".into());
            }
            unqualified_search.extend(v1.search.unwrap_or_default().registries);
            let mut entry = |host: String, insecure: bool, blocked: bool| match registries
                .iter_mut()
                .find(|r: &&mut Registry| r.prefix == host)
            {
                Some(r) => {
                    r.insecure |= insecure;
                    r.blocked |= blocked;
                }
                None => registries.push(Registry {
                    prefix: host.clone(),
                    location: host,
                    insecure,
                    blocked,
                    mirrors: Vec::new(),
                }),
            };
            for h in v1.insecure.unwrap_or_default().registries {
                entry(h, true, false);
            }
            for h in v1.block.unwrap_or_default().registries {
                entry(h, false, true);
            }
        }
        Ok(Self {
            path: None,
            unqualified_search,
            registries,
        })
    }

    /// Every endpoint configured insecure (locations and mirrors).
    pub fn insecure_hosts(&self) -> Vec<String> {
        let mut out = Vec::new();
        for r in &self.registries {
            if r.insecure {
                out.push(host_of(&r.location).to_string());
            }
            for m in &r.mirrors {
                if m.insecure {
                    out.push(host_of(&m.location).to_string());
                }
            }
        }
        out
    }

    /// The `[[registry]]` for `reference`: the longest matching prefix
    /// (a `*.domain` prefix matches hosts under the domain and loses to
    /// any path prefix).
    pub fn find(&self, reference: &Reference) -> Option<&Registry> {
        let repo = reference.repository();
        self.registries
            .iter()
            .filter(|r| prefix_matches(&r.prefix, &reference.domain, &repo))
            .max_by_key(|r| {
                if r.prefix.starts_with("*.") {
                    0
                } else {
                    r.prefix.len() + 1
                }
            })
    }

    /// Where to pull `reference` from: its mirrors in order, then its
    /// location (the prefix replaced by it). A blocked registry is an error.
    pub fn sources(&self, reference: &Reference) -> Result<Vec<Source>, ConfError> {
        let Some(r) = self.find(reference) else {
            return Ok(vec![Source {
                reference: reference.clone(),
                insecure: false,
            }]);
        };
        if r.blocked {
            return Err(ConfError::Blocked {
                image: reference.to_string(),
                prefix: r.prefix.clone(),
                path: self.path.clone().unwrap_or_else(|| DEFAULT_PATH.into()),
            });
        }
        let repo = reference.repository();
        let rest = if r.prefix.starts_with("*.") {
            repo.as_str()
        } else {
            &repo[r.prefix.len()..]
        };
        let mut out = Vec::new();
        let mut push = |location: &str, insecure: bool| {
            let base = if r.prefix.starts_with("*.") {
                rest.to_string()
            } else {
                format!("{location}{rest}")
            };
            if let Some(reference) = rebase(reference, &base) {
                out.push(Source {
                    reference,
                    insecure,
                });
            } else {
                tracing::warn!("registries.conf: {base} is not a valid image name; skipped");
            }
        };
        for m in &r.mirrors {
            push(&m.location, m.insecure);
        }
        push(&r.location, r.insecure);
        Ok(out)
    }

    /// The fully qualified names a name given by the user stands for: a
    /// short name (no registry host) tries each unqualified-search registry
    /// in order; with none configured (or a qualified name) it is the
    /// usual normalisation (`busybox` -> `docker.io/library/busybox`).
    pub fn candidates(
        &self,
        name: &str,
    ) -> Result<Vec<Reference>, crate::reference::ReferenceError> {
        let r = Reference::parse(name)?;
        if !is_short_name(name) || self.unqualified_search.is_empty() {
            return Ok(vec![r]);
        }
        let mut out = Vec::new();
        for reg in &self.unqualified_search {
            if let Ok(c) = Reference::parse(&format!("{reg}/{name}")) {
                out.push(c);
            }
        }
        if out.is_empty() {
            out.push(r);
        }
        Ok(out)
    }
}

/// Whether `name` names no registry host (`busybox`, `library/busybox`).
pub fn is_short_name(name: &str) -> bool {
    match name.split_once('/') {
        Some((first, _)) => !(first.contains('.') || first.contains(':') || first == "localhost"),
        None => true,
    }
}

fn host_of(location: &str) -> &str {
    location.split('/').next().unwrap_or(location)
}

fn prefix_matches(prefix: &str, domain: &str, repo: &str) -> bool {
    if let Some(suffix) = prefix.strip_prefix("*.") {
        let host = domain.rsplit_once(':').map_or(domain, |(h, _)| h);
        return host.ends_with(&format!(".{suffix}"));
    }
    repo == prefix || repo.starts_with(&format!("{prefix}/"))
}

/// `reference` with its repository replaced by `repo` (`host/path`).
fn rebase(reference: &Reference, repo: &str) -> Option<Reference> {
    let (domain, path) = repo.split_once('/')?;
    let mut s = format!("{domain}/{path}");
    if let Some(t) = &reference.tag {
        s.push(':');
        s.push_str(t);
    }
    if let Some(d) = &reference.digest {
        s.push('@');
        s.push_str(&d.to_string());
    }
    let r = Reference::parse(&s).ok()?;
    // `Reference::parse` adds `library/` only for docker.io; keep the path
    // exactly as configured otherwise.
    Some(r)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn r(s: &str) -> Reference {
        Reference::parse(s).unwrap()
    }

    #[test]
    fn prefix_location_and_mirrors() {
        let c = RegistriesConf::parse(
            r#"
unqualified-search-registries = ["localhost:5000", "docker.io"]
[[registry]]
prefix = "registry.k8s.io"
location = "localhost:5000/k8s"
[[registry.mirror]]
location = "mirror.local:6000/k8s"
insecure = true
[[registry]]
location = "quay.io"
blocked = true
[[registry]]
prefix = "*.example.com"
insecure = true
"#,
        )
        .unwrap();
        let s = c.sources(&r("registry.k8s.io/pause:3.9")).unwrap();
        assert_eq!(s.len(), 2);
        assert_eq!(
            s[0].reference.to_string(),
            "mirror.local:6000/k8s/pause:3.9"
        );
        assert!(s[0].insecure);
        assert_eq!(s[1].reference.to_string(), "localhost:5000/k8s/pause:3.9");
        assert!(matches!(
            c.sources(&r("quay.io/a/b")),
            Err(ConfError::Blocked { .. })
        ));
        let s = c.sources(&r("a.example.com/x:1")).unwrap();
        assert_eq!(s[0].reference.to_string(), "a.example.com/x:1");
        assert!(s[0].insecure);
        let s = c.sources(&r("gcr.io/x:1")).unwrap();
        assert_eq!(s[0].reference.to_string(), "gcr.io/x:1");
        // `registry.k8s.io.evil` does not match the prefix.
        assert_eq!(c.find(&r("registry.k8s.iox/p")), None);
        let cand = c.candidates("busybox").unwrap();
        assert_eq!(cand[0].to_string(), "localhost:5000/busybox:latest");
        assert_eq!(cand[1].to_string(), "docker.io/library/busybox:latest");
        assert_eq!(c.candidates("quay.io/x").unwrap().len(), 1);
    }

    #[test]
    fn version_one_and_errors() {
        let c = RegistriesConf::parse(
            "[registries.search]\nregistries = ['a:1']\n[registries.insecure]\nregistries = ['a:1']\n[registries.block]\nregistries = ['b.io']\n",
        )
        .unwrap();
        assert_eq!(c.unqualified_search, ["a:1"]);
        assert_eq!(c.insecure_hosts(), ["a:1"]);
        assert!(c.sources(&r("b.io/x")).is_err());
        assert!(RegistriesConf::parse("not [toml").is_err());
        assert!(RegistriesConf::parse("[[registry]]\ninsecure = true\n").is_err());
    }
}
