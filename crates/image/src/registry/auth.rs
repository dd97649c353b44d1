//! Registry authentication: `WWW-Authenticate` challenge parsing
//! (RFC 7235; the Docker token flow the distribution-spec's registries use)
//! and the credentials file (`berth login`), in Docker's `config.json`
//! format (`{"auths": {"host": {"auth": base64(user:password)}}}`), with
//! Docker's own `~/.docker/config.json` read as a fallback.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use base64::Engine as _;
use serde::{Deserialize, Serialize};

/// A parsed authentication challenge.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Challenge {
    Basic {
        realm: Option<String>,
    },
    Bearer {
        realm: String,
        service: Option<String>,
        scope: Option<String>,
    },
}

/// Parses a `WWW-Authenticate` value such as
/// `Bearer realm="https://auth/token",service="reg",scope="repository:a:pull,push"`.
/// Returns `None` for unknown schemes or a Bearer challenge without realm.
pub fn parse_challenge(header: &str) -> Option<Challenge> {
    let header = header.trim();
    let (scheme, rest) = header
        .split_once(char::is_whitespace)
        .unwrap_or((header, ""));
    let params = parse_params(rest);
    match scheme.to_ascii_lowercase().as_str() {
        "basic" => Some(Challenge::Basic {
            realm: params.get("realm").cloned(),
        }),
        "bearer" => Some(Challenge::Bearer {
            realm: params.get("realm")?.clone(),
            service: params.get("service").cloned(),
            scope: params.get("scope").cloned(),
        }),
        _ => None,
    }
}

fn parse_params(s: &str) -> BTreeMap<String, String> {
    let mut out = BTreeMap::new();
    let b = s.as_bytes();
    let mut i = 0;
    while i < b.len() {
        while i < b.len() && (b[i] == b',' || b[i].is_ascii_whitespace()) {
            i += 1;
        }
        let ks = i;
        while i < b.len() && b[i] != b'=' && b[i] != b',' {
            i += 1;
        }
        let key = s[ks..i].trim().to_ascii_lowercase();
        if i >= b.len() || b[i] != b'=' {
            continue;
        }
        i += 1;
        let mut val = String::new();
        if i < b.len() && b[i] == b'"' {
            i += 1;
            while i < b.len() && b[i] != b'"' {
                if b[i] == b'\\' && i + 1 < b.len() {
                    i += 1;
                }
                let ch_len = s[i..].chars().next().map_or(1, char::len_utf8);
                val.push_str(&s[i..i + ch_len]);
                i += ch_len;
            }
            i += 1;
        } else {
            let vs = i;
            while i < b.len() && b[i] != b',' {
                i += 1;
            }
            val = s[vs..i].trim().to_string();
        }
        if !key.is_empty() {
            out.insert(key, val);
        }
    }
    out
}

/// Errors of the credentials file.
#[derive(Debug, thiserror::Error)]
pub enum AuthError {
    #[error("read credentials file {path}")]
    Read {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("parse credentials file {path}")]
    Parse {
        path: PathBuf,
        #[source]
        source: serde_json::Error,
    },
    #[error("write credentials file {path}")]
    Write {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("credentials for {host} in {path} are not base64(user:password)")]
    BadEntry { host: String, path: PathBuf },
}

#[derive(Debug, Default, Serialize, Deserialize)]
struct AuthConfig {
    #[serde(default)]
    auths: BTreeMap<String, AuthEntry>,
    #[serde(flatten)]
    other: BTreeMap<String, serde_json::Value>,
}

#[derive(Debug, Default, Serialize, Deserialize)]
struct AuthEntry {
    #[serde(default, skip_serializing_if = "String::is_empty")]
    auth: String,
    #[serde(flatten)]
    other: BTreeMap<String, serde_json::Value>,
}

/// Keys a host may appear under in auth files (Docker Hub's legacy URL).
fn keys_for(host: &str) -> Vec<String> {
    let mut v = vec![
        host.to_string(),
        format!("https://{host}"),
        format!("http://{host}"),
    ];
    if host == "docker.io" || host == "registry-1.docker.io" {
        v.push("https://index.docker.io/v1/".to_string());
        v.push("docker.io".to_string());
    }
    v
}

fn read_config(path: &Path) -> Result<AuthConfig, AuthError> {
    match std::fs::read(path) {
        Ok(d) if d.iter().all(u8::is_ascii_whitespace) => Ok(AuthConfig::default()),
        Ok(d) => serde_json::from_slice(&d).map_err(|source| AuthError::Parse {
            path: path.to_path_buf(),
            source,
        }),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(AuthConfig::default()),
        Err(source) => Err(AuthError::Read {
            path: path.to_path_buf(),
            source,
        }),
    }
}

/// Credentials for `host`: from `auth_file`, then `~/.docker/config.json`.
pub fn lookup_credentials(
    auth_file: &Path,
    host: &str,
) -> Result<Option<(String, String)>, AuthError> {
    let mut files = vec![auth_file.to_path_buf()];
    if let Some(home) = std::env::var_os("HOME") {
        files.push(Path::new(&home).join(".docker/config.json"));
    }
    lookup_in(&files, host)
}

fn lookup_in(files: &[PathBuf], host: &str) -> Result<Option<(String, String)>, AuthError> {
    for f in files {
        let cfg = read_config(f)?;
        for k in keys_for(host) {
            if let Some(e) = cfg.auths.get(&k).filter(|e| !e.auth.is_empty()) {
                let bad = || AuthError::BadEntry {
                    host: host.to_string(),
                    path: f.to_path_buf(),
                };
                let raw = base64::engine::general_purpose::STANDARD
                    .decode(e.auth.trim())
                    .map_err(|_| bad())?;
                let s = String::from_utf8(raw).map_err(|_| bad())?;
                let (u, p) = s.split_once(':').ok_or_else(bad)?;
                return Ok(Some((u.to_string(), p.to_string())));
            }
        }
    }
    Ok(None)
}

/// Stores credentials for `host` (mode 0600, atomic replace).
pub fn store_credentials(
    auth_file: &Path,
    host: &str,
    user: &str,
    password: &str,
) -> Result<(), AuthError> {
    let mut cfg = read_config(auth_file)?;
    let auth = base64::engine::general_purpose::STANDARD.encode(format!("{user}:{password}"));
    cfg.auths.insert(
        host.to_string(),
        AuthEntry {
            auth,
            other: BTreeMap::new(),
        },
    );
    write_config(auth_file, &cfg)
}

/// Removes credentials for `host`; returns whether there were any.
pub fn remove_credentials(auth_file: &Path, host: &str) -> Result<bool, AuthError> {
    let mut cfg = read_config(auth_file)?;
    let mut found = false;
    for k in keys_for(host) {
        found |= cfg.auths.remove(&k).is_some();
    }
    if found {
        write_config(auth_file, &cfg)?;
    }
    Ok(found)
}

fn write_config(path: &Path, cfg: &AuthConfig) -> Result<(), AuthError> {
    use std::io::Write;
    use std::os::unix::fs::PermissionsExt;
    let werr = |source| AuthError::Write {
        path: path.to_path_buf(),
        source,
    };
    let dir = path
        .parent()
        .filter(|p| !p.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    std::fs::create_dir_all(dir).map_err(werr)?;
    let mut tmp = tempfile::Builder::new()
        .prefix(".auth-")
        .tempfile_in(dir)
        .map_err(werr)?;
    tmp.as_file()
        .set_permissions(std::fs::Permissions::from_mode(0o600))
        .map_err(werr)?;
    tmp.write_all(&serde_json::to_vec_pretty(cfg).expect("auth config serialises"))
        .map_err(werr)?;
    tmp.as_file().sync_all().map_err(werr)?;
    tmp.persist(path).map_err(|e| werr(e.error))?;
    Ok(())
}

/// The `Authorization` value for basic auth.
pub fn basic_header(user: &str, password: &str) -> String {
    format!(
        "Basic {}",
        base64::engine::general_purpose::STANDARD.encode(format!("{user}:{password}"))
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_bearer_with_commas_in_quotes() {
        let c = parse_challenge(
            r#"Bearer realm="https://auth.example.com/token",service="registry.example.com",scope="repository:samalba/my-app:pull,push""#,
        );
        assert_eq!(
            c,
            Some(Challenge::Bearer {
                realm: "https://auth.example.com/token".into(),
                service: Some("registry.example.com".into()),
                scope: Some("repository:samalba/my-app:pull,push".into()),
            })
        );
    }

    #[test]
    fn parses_basic_and_odd_spacing() {
        assert_eq!(
            parse_challenge(r#"Basic realm="Registry Realm""#),
            Some(Challenge::Basic {
                realm: Some("Registry Realm".into())
            })
        );
        assert_eq!(
            parse_challenge("bearer   realm=https://a/t , service=x"),
            Some(Challenge::Bearer {
                realm: "https://a/t".into(),
                service: Some("x".into()),
                scope: None
            })
        );
        assert_eq!(
            parse_challenge(r#"Bearer realm="a\"b""#),
            Some(Challenge::Bearer {
                realm: "a\"b".into(),
                service: None,
                scope: None
            })
        );
        assert_eq!(parse_challenge("Bearer service=x"), None);
        assert_eq!(parse_challenge("Negotiate abc"), None);
    }

    #[test]
    fn credentials_round_trip() {
        let dir = tempfile::tempdir().unwrap();
        let f = dir.path().join("auth.json");
        let docker = dir.path().join(".docker/config.json");
        let files = [f.clone(), docker.clone()];
        assert_eq!(lookup_in(&files, "localhost:5000").unwrap(), None);
        store_credentials(&f, "localhost:5000", "user", "p:w").unwrap();
        assert_eq!(
            lookup_in(&files, "localhost:5000").unwrap(),
            Some(("user".into(), "p:w".into()))
        );
        use std::os::unix::fs::PermissionsExt;
        assert_eq!(
            std::fs::metadata(&f).unwrap().permissions().mode() & 0o777,
            0o600
        );
        assert!(remove_credentials(&f, "localhost:5000").unwrap());
        assert_eq!(lookup_in(&files, "localhost:5000").unwrap(), None);
        // Docker's file as fallback.
        std::fs::create_dir_all(dir.path().join(".docker")).unwrap();
        std::fs::write(
            &docker,
            r#"{"auths":{"https://index.docker.io/v1/":{"auth":"ZDpw"}}}"#,
        )
        .unwrap();
        assert_eq!(
            lookup_in(&files, "docker.io").unwrap(),
            Some(("d".into(), "p".into()))
        );
    }
}
