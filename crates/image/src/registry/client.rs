//! The HTTP side of the distribution-spec: one client per registry host,
//! the `/v2/` probe ("Determining support"), and authentication: anonymous,
//! basic, or bearer tokens fetched from the challenge's realm per scope.

use std::collections::HashMap;
use std::io::{Read, Seek, SeekFrom};
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::time::Duration;

use super::auth::{basic_header, lookup_credentials, parse_challenge, AuthError, Challenge};
use super::tls::{client_config, transport_for, TlsError, DEFAULT_CERTS_DIR};

/// Options shared by pull, push and login.
#[derive(Debug, Clone)]
pub struct RegistryOptions {
    /// `--tls-verify`: `None` applies podman's defaults (loopback insecure).
    pub tls_verify: Option<bool>,
    /// Registries treated as insecure (HTTP or unverified TLS allowed).
    pub insecure: Vec<String>,
    /// Root of per-registry CA dirs.
    pub certs_dir: PathBuf,
    /// berth's credentials file.
    pub auth_file: PathBuf,
    /// Explicit credentials (`--creds user:password`), overriding the file.
    pub creds: Option<(String, String)>,
    /// Parallel blob transfers.
    pub jobs: usize,
    /// Attempts per blob transfer.
    pub attempts: u32,
    /// containers-registries.conf(5): where each name is pulled from.
    pub registries: super::conf::RegistriesConf,
    /// Why the registries configuration could not be read (pulls fail
    /// with it rather than ignore the file).
    pub registries_error: Option<super::conf::ConfError>,
}

impl RegistryOptions {
    /// Defaults with the credentials file under `root`; the registries
    /// configuration (and with it the insecure registries) comes from
    /// containers-registries.conf(5), see [`super::conf`].
    pub fn new(root: &Path) -> Self {
        let (registries, registries_error) = match super::conf::RegistriesConf::load() {
            Ok(c) => (c, None),
            Err(e) => (super::conf::RegistriesConf::default(), Some(e)),
        };
        let insecure = registries.insecure_hosts();
        Self {
            tls_verify: None,
            insecure,
            certs_dir: PathBuf::from(DEFAULT_CERTS_DIR),
            auth_file: root.join("auth.json"),
            creds: None,
            jobs: 3,
            attempts: 5,
            registries,
            registries_error,
        }
    }
}

/// Errors talking to a registry.
#[derive(Debug, thiserror::Error)]
pub enum RegistryError {
    #[error("connect to registry {host}")]
    Connect {
        host: String,
        #[source]
        source: Box<ureq::Transport>,
    },
    #[error("registry {host}: {op}: HTTP {status}: {message}")]
    Status {
        host: String,
        op: String,
        status: u16,
        message: String,
    },
    #[error("registry {host}: {op}: unauthorized; run `berth login {host}` or pass --creds")]
    Unauthorized { host: String, op: String },
    #[error("registry {host}: get token from {realm}: {reason}")]
    Token {
        host: String,
        realm: String,
        reason: String,
    },
    #[error("registry {host}: {op}")]
    Io {
        host: String,
        op: String,
        #[source]
        source: std::io::Error,
    },
    #[error(transparent)]
    Tls(#[from] TlsError),
    #[error(transparent)]
    Auth(#[from] AuthError),
}

#[derive(Debug, Clone)]
enum Scheme {
    Anonymous,
    Basic,
    Bearer {
        realm: String,
        service: Option<String>,
    },
}

/// A request body that can be sent again after an auth retry.
pub enum Body<'a> {
    Empty,
    Bytes(&'a [u8]),
    File {
        path: &'a Path,
        offset: u64,
        len: u64,
    },
}

/// A connected registry.
pub struct Client {
    agent: ureq::Agent,
    /// `https://host` or `http://host`.
    pub base: String,
    /// The host as named in references (`docker.io`, `localhost:5000`).
    pub host: String,
    creds: Option<(String, String)>,
    scheme: Mutex<Scheme>,
    tokens: Mutex<HashMap<String, String>>,
}

/// The API host of a reference domain (Docker Hub's differs).
pub fn api_host(domain: &str) -> &str {
    if domain == "docker.io" {
        "registry-1.docker.io"
    } else {
        domain
    }
}

/// Percent-encodes a query value.
pub fn query_escape(s: &str) -> String {
    let mut o = String::new();
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b'~') {
            o.push(b as char);
        } else {
            o.push_str(&format!("%{b:02X}"));
        }
    }
    o
}

fn error_message(resp: ureq::Response) -> String {
    let mut body = String::new();
    let _ = resp.into_reader().take(4096).read_to_string(&mut body);
    // distribution-spec "Error Codes": {"errors":[{"code","message"}]}
    if let Ok(v) = serde_json::from_str::<serde_json::Value>(&body) {
        if let Some(errs) = v["errors"].as_array() {
            let parts: Vec<String> = errs
                .iter()
                .map(|e| {
                    format!(
                        "{} {}",
                        e["code"].as_str().unwrap_or(""),
                        e["message"].as_str().unwrap_or("")
                    )
                })
                .collect();
            return parts.join("; ");
        }
    }
    body.trim().chars().take(300).collect()
}

impl Client {
    /// Connects to the registry of `domain`: picks the transport, probes
    /// `GET /v2/` and learns the auth scheme from its challenge.
    pub fn connect(domain: &str, opts: &RegistryOptions) -> Result<Self, RegistryError> {
        let host = api_host(domain).to_string();
        let transport = transport_for(domain, opts.tls_verify, &opts.insecure);
        let tls = client_config(&host, transport, &opts.certs_dir)?;
        let agent = ureq::AgentBuilder::new()
            .tls_config(tls)
            .timeout_connect(Duration::from_secs(30))
            .timeout_read(Duration::from_secs(120))
            .redirects(5)
            .build();
        let creds = match &opts.creds {
            Some(c) => Some(c.clone()),
            None => lookup_credentials(&opts.auth_file, domain)?,
        };
        let mut client = Self {
            agent,
            base: format!("https://{host}"),
            host: domain.to_string(),
            creds,
            scheme: Mutex::new(Scheme::Anonymous),
            tokens: Mutex::new(HashMap::new()),
        };
        let probe = match client.agent.get(&format!("{}/v2/", client.base)).call() {
            Err(ureq::Error::Transport(t)) if transport.allow_http => {
                tracing::debug!("https to {host} failed ({t}), trying http");
                client.base = format!("http://{host}");
                client.agent.get(&format!("{}/v2/", client.base)).call()
            }
            other => other,
        };
        match probe {
            Ok(_) => {}
            Err(ureq::Error::Status(401, resp)) => {
                let challenge = resp.header("www-authenticate").and_then(parse_challenge);
                *client.scheme.lock().expect("scheme lock") = match challenge {
                    Some(Challenge::Basic { .. }) => Scheme::Basic,
                    Some(Challenge::Bearer { realm, service, .. }) => {
                        Scheme::Bearer { realm, service }
                    }
                    None => Scheme::Basic,
                };
            }
            Err(ureq::Error::Status(status, resp)) => {
                return Err(RegistryError::Status {
                    host: client.host.clone(),
                    op: "probe /v2/".into(),
                    status,
                    message: error_message(resp),
                })
            }
            Err(ureq::Error::Transport(t)) => {
                return Err(RegistryError::Connect {
                    host: client.host.clone(),
                    source: Box::new(t),
                })
            }
        }
        Ok(client)
    }

    /// Checks that the credentials are accepted (for `berth login`).
    pub fn check_login(&self) -> Result<(), RegistryError> {
        let resp = self.request("GET", "/v2/", "", &[], Body::Empty, "log in")?;
        self.expect(resp, &[200], "log in").map(|_| ())
    }

    fn token(
        &self,
        realm: &str,
        service: Option<&str>,
        scope: &str,
    ) -> Result<String, RegistryError> {
        if let Some(t) = self.tokens.lock().expect("token lock").get(scope) {
            return Ok(t.clone());
        }
        let mut url = format!("{realm}{}", if realm.contains('?') { "&" } else { "?" });
        if let Some(s) = service {
            url.push_str(&format!("service={}&", query_escape(s)));
        }
        if !scope.is_empty() {
            url.push_str(&format!("scope={}", query_escape(scope)));
        }
        let mut req = self.agent.get(&url);
        if let Some((u, p)) = &self.creds {
            req = req.set("Authorization", &basic_header(u, p));
        }
        let terr = |reason: String| RegistryError::Token {
            host: self.host.clone(),
            realm: realm.to_string(),
            reason,
        };
        let resp = match req.call() {
            Ok(r) => r,
            Err(ureq::Error::Status(401, _)) => {
                return Err(RegistryError::Unauthorized {
                    host: self.host.clone(),
                    op: "get token".into(),
                })
            }
            Err(ureq::Error::Status(s, r)) => {
                return Err(terr(format!("HTTP {s}: {}", error_message(r))))
            }
            Err(ureq::Error::Transport(t)) => return Err(terr(t.to_string())),
        };
        let mut body = String::new();
        resp.into_reader()
            .take(1 << 20)
            .read_to_string(&mut body)
            .map_err(|e| terr(e.to_string()))?;
        let v: serde_json::Value =
            serde_json::from_str(&body).map_err(|e| terr(format!("bad token response: {e}")))?;
        let t = v["token"]
            .as_str()
            .or_else(|| v["access_token"].as_str())
            .ok_or_else(|| terr("response has no token".into()))?
            .to_string();
        self.tokens
            .lock()
            .expect("token lock")
            .insert(scope.to_string(), t.clone());
        Ok(t)
    }

    fn auth_header(&self, scope: &str) -> Result<Option<String>, RegistryError> {
        let scheme = self.scheme.lock().expect("scheme lock").clone();
        Ok(match scheme {
            Scheme::Anonymous => None,
            Scheme::Basic => self.creds.as_ref().map(|(u, p)| basic_header(u, p)),
            Scheme::Bearer { realm, service } => Some(format!(
                "Bearer {}",
                self.token(&realm, service.as_deref(), scope)?
            )),
        })
    }

    /// The full URL of an API path or a `Location` header value.
    pub fn url(&self, path_or_url: &str) -> String {
        if path_or_url.starts_with("http://") || path_or_url.starts_with("https://") {
            path_or_url.to_string()
        } else {
            format!("{}{}", self.base, path_or_url)
        }
    }

    /// Sends a request with authentication, retrying once after a 401 with
    /// a fresh challenge. Every HTTP status is returned as `Ok`.
    pub fn request(
        &self,
        method: &str,
        path: &str,
        scope: &str,
        headers: &[(&str, String)],
        body: Body<'_>,
        op: &str,
    ) -> Result<ureq::Response, RegistryError> {
        for attempt in 0..2 {
            let mut req = self.agent.request(method, &self.url(path));
            for (k, v) in headers {
                req = req.set(k, v);
            }
            if let Some(a) = self.auth_header(scope)? {
                req = req.set("Authorization", &a);
            }
            let ioerr = |source| RegistryError::Io {
                host: self.host.clone(),
                op: op.to_string(),
                source,
            };
            let res = match &body {
                Body::Empty => req.call(),
                Body::Bytes(b) => req.send_bytes(b),
                Body::File { path, offset, len } => {
                    let mut f = std::fs::File::open(path).map_err(ioerr)?;
                    f.seek(SeekFrom::Start(*offset)).map_err(ioerr)?;
                    req.set("Content-Length", &len.to_string())
                        .send(f.take(*len))
                }
            };
            let resp = match res {
                Ok(r) => r,
                Err(ureq::Error::Status(401, r)) if attempt == 0 => {
                    let challenge = r.header("www-authenticate").and_then(parse_challenge);
                    let mut scheme = self.scheme.lock().expect("scheme lock");
                    match challenge {
                        Some(Challenge::Bearer { realm, service, .. }) => {
                            *scheme = Scheme::Bearer { realm, service };
                            self.tokens.lock().expect("token lock").remove(scope);
                        }
                        _ if self.creds.is_some() && !matches!(*scheme, Scheme::Basic) => {
                            *scheme = Scheme::Basic
                        }
                        _ => {
                            return Err(RegistryError::Unauthorized {
                                host: self.host.clone(),
                                op: op.to_string(),
                            })
                        }
                    }
                    continue;
                }
                Err(ureq::Error::Status(401, _)) => {
                    return Err(RegistryError::Unauthorized {
                        host: self.host.clone(),
                        op: op.to_string(),
                    })
                }
                Err(ureq::Error::Status(_, r)) => r,
                Err(ureq::Error::Transport(t)) => {
                    return Err(RegistryError::Connect {
                        host: self.host.clone(),
                        source: Box::new(t),
                    })
                }
            };
            return Ok(resp);
        }
        Err(RegistryError::Unauthorized {
            host: self.host.clone(),
            op: op.to_string(),
        })
    }

    /// Turns an unexpected status into an error naming `op`.
    pub fn expect(
        &self,
        resp: ureq::Response,
        ok: &[u16],
        op: &str,
    ) -> Result<ureq::Response, RegistryError> {
        if ok.contains(&resp.status()) {
            Ok(resp)
        } else {
            Err(RegistryError::Status {
                host: self.host.clone(),
                op: op.to_string(),
                status: resp.status(),
                message: error_message(resp),
            })
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn escapes_scopes() {
        assert_eq!(
            query_escape("repository:a/b:pull,push"),
            "repository%3Aa%2Fb%3Apull%2Cpush"
        );
        assert_eq!(api_host("docker.io"), "registry-1.docker.io");
        assert_eq!(api_host("localhost:5000"), "localhost:5000");
    }
}
