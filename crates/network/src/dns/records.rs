//! The records file the engine writes and the resolver reads.

use std::collections::BTreeMap;
use std::io::{ErrorKind, Write};
use std::net::{IpAddr, SocketAddr};
use std::path::Path;
use std::sync::atomic::{AtomicUsize, Ordering};

use serde::{Deserialize, Serialize};

use super::DEFAULT_DOMAIN;
use crate::error::{NetError, Result};

/// The records file of one network, written by the engine, read by the
/// resolver: container names and aliases with their addresses, where to
/// forward other queries, and the network's domain.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Records {
    /// Names (container names, aliases, short ids) and their addresses.
    #[serde(default)]
    pub names: BTreeMap<String, Vec<IpAddr>>,
    /// Upstream resolvers for every other name, tried in order.
    #[serde(default)]
    pub upstreams: Vec<SocketAddr>,
    /// The network's domain (without dots around it): names are also
    /// answered as `<name>.<domain>`, unknown names under it get NXDOMAIN.
    /// Empty: no domain.
    #[serde(default = "default_domain")]
    pub domain: String,
    /// Names only the client with this source address sees, besides
    /// [`Records::names`]: a container on several networks asks the
    /// resolver of its first one, which answers for the others too (as
    /// Podman's aardvark-dns does).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub scoped: BTreeMap<IpAddr, BTreeMap<String, Vec<IpAddr>>>,
}

fn default_domain() -> String {
    DEFAULT_DOMAIN.to_string()
}

impl Default for Records {
    fn default() -> Self {
        Records {
            names: BTreeMap::new(),
            upstreams: Vec::new(),
            domain: default_domain(),
            scoped: BTreeMap::new(),
        }
    }
}

fn records_err<'a>(
    op: &'static str,
    path: &'a Path,
) -> impl FnOnce(std::io::Error) -> NetError + 'a {
    move |source| NetError::DnsRecords {
        op,
        path: path.to_path_buf(),
        source,
    }
}

/// Lowercase, without the trailing dot.
pub(super) fn normalize(name: &str) -> String {
    name.strip_suffix('.').unwrap_or(name).to_ascii_lowercase()
}

impl Records {
    /// Writes the records to `path` atomically: a temporary file in the
    /// same directory, synced, then renamed over `path`, so the resolver
    /// never reads half a file.
    pub fn write_atomic(&self, path: &Path) -> Result<()> {
        let json = serde_json::to_vec_pretty(self).map_err(|e| NetError::DnsRecordsFormat {
            path: path.to_path_buf(),
            source: e,
        })?;
        let name = path.file_name().ok_or_else(|| {
            records_err("write", path)(std::io::Error::new(
                ErrorKind::InvalidInput,
                "the path has no file name",
            ))
        })?;
        let mut tmp_name = std::ffi::OsString::from(".");
        tmp_name.push(name);
        static SEQ: AtomicUsize = AtomicUsize::new(0);
        let seq = SEQ.fetch_add(1, Ordering::Relaxed);
        tmp_name.push(format!(".tmp.{}.{seq}", std::process::id()));
        let tmp = path.with_file_name(tmp_name);
        let written = (|| -> Result<()> {
            let mut f = std::fs::File::create(&tmp)
                .map_err(records_err("create a temporary file", &tmp))?;
            f.write_all(&json).map_err(records_err("write", &tmp))?;
            f.sync_all().map_err(records_err("sync", &tmp))?;
            std::fs::rename(&tmp, path).map_err(records_err("rename the temporary file over", path))
        })();
        if written.is_err() {
            let _ = std::fs::remove_file(&tmp);
        }
        written
    }

    /// Reads a records file written by [`Records::write_atomic`].
    pub fn read(path: &Path) -> Result<Records> {
        let bytes = std::fs::read(path).map_err(records_err("read", path))?;
        serde_json::from_slice(&bytes).map_err(|source| NetError::DnsRecordsFormat {
            path: path.to_path_buf(),
            source,
        })
    }

    /// The records as `client` sees them: its [`Records::scoped`] names
    /// added (the network's own names first).
    pub fn view_for(&self, client: IpAddr) -> std::borrow::Cow<'_, Records> {
        let Some(extra) = self.scoped.get(&client) else {
            return std::borrow::Cow::Borrowed(self);
        };
        let mut view = self.clone();
        view.scoped.clear();
        for (name, addrs) in extra {
            let e = view.names.entry(name.clone()).or_default();
            for a in addrs {
                if !e.contains(a) {
                    e.push(*a);
                }
            }
        }
        std::borrow::Cow::Owned(view)
    }

    /// The addresses of `qname`: case-insensitive, trailing dot ignored,
    /// `<name>.<domain>` also matches `<name>`. Empty if unknown.
    pub fn lookup(&self, qname: &str) -> Vec<IpAddr> {
        self.find(qname).unwrap_or_default()
    }

    /// Whether `qname` is one of the network's names (it may have no
    /// address), with the same matching as [`Records::lookup`].
    pub fn contains(&self, qname: &str) -> bool {
        self.find(qname).is_some()
    }

    /// The fully qualified names (no trailing dot, lowercase) that have
    /// `addr`, for reverse lookups: short names get the domain appended.
    pub fn names_for(&self, addr: IpAddr) -> Vec<String> {
        let mut out: Vec<String> = Vec::new();
        for (name, addrs) in &self.names {
            if !addrs.contains(&addr) {
                continue;
            }
            let name = normalize(name);
            if name.is_empty() {
                continue;
            }
            let fqdn = if self.domain.is_empty() || name.contains('.') {
                name
            } else {
                format!("{name}.{}", normalize(&self.domain))
            };
            if !out.contains(&fqdn) {
                out.push(fqdn);
            }
        }
        out
    }

    /// Whether `qname` lies under the network's domain (or is it).
    pub(super) fn in_domain(&self, qname: &str) -> bool {
        let domain = normalize(&self.domain);
        if domain.is_empty() {
            return false;
        }
        let q = normalize(qname);
        q == domain
            || q.strip_suffix(&domain)
                .is_some_and(|rest| rest.ends_with('.'))
    }

    fn get(&self, name: &str) -> Option<&Vec<IpAddr>> {
        self.names.get(name).or_else(|| {
            self.names
                .iter()
                .find(|(k, _)| normalize(k) == name)
                .map(|(_, v)| v)
        })
    }

    pub(super) fn find(&self, qname: &str) -> Option<Vec<IpAddr>> {
        let q = normalize(qname);
        if q.is_empty() {
            return None;
        }
        let exact = self.get(&q);
        let domain = normalize(&self.domain);
        let short = if domain.is_empty() {
            None
        } else {
            q.strip_suffix(&domain)
                .and_then(|rest| rest.strip_suffix('.'))
                .filter(|rest| !rest.is_empty())
                .and_then(|rest| self.get(rest))
        };
        if exact.is_none() && short.is_none() {
            return None;
        }
        let mut out: Vec<IpAddr> = Vec::new();
        for a in exact.into_iter().chain(short).flatten() {
            if !out.contains(a) {
                out.push(*a);
            }
        }
        Some(out)
    }
}

#[cfg(test)]
pub(super) mod tests {
    use super::*;

    pub(crate) fn recs() -> Records {
        let mut r = Records::default();
        r.names.insert(
            "web".into(),
            vec!["10.89.0.2".parse().unwrap(), "fd00::2".parse().unwrap()],
        );
        r.names
            .insert("Cache".into(), vec!["10.89.0.3".parse().unwrap()]);
        r.names
            .insert("db.internal".into(), vec!["10.89.0.4".parse().unwrap()]);
        r.names.insert("empty".into(), vec![]);
        r
    }

    #[test]
    fn lookup_matches_names_case_and_domain() {
        let r = recs();
        let web: Vec<IpAddr> = vec!["10.89.0.2".parse().unwrap(), "fd00::2".parse().unwrap()];
        assert_eq!(r.lookup("web"), web);
        assert_eq!(r.lookup("WEB."), web);
        assert_eq!(r.lookup("web.dns.berth"), web);
        assert_eq!(r.lookup("Web.DNS.Berth."), web);
        assert_eq!(
            r.lookup("cache"),
            vec!["10.89.0.3".parse::<IpAddr>().unwrap()]
        );
        assert_eq!(r.lookup("db.internal.dns.berth").len(), 1);
        assert!(r.lookup("web.example.com").is_empty());
        assert!(r.lookup("dns.berth").is_empty());
        assert!(r.lookup(".dns.berth").is_empty());
        assert!(r.lookup("").is_empty());
        assert!(r.lookup(".").is_empty());
        assert!(r.contains("empty") && r.lookup("empty").is_empty());
        assert!(!r.contains("nothere"));
    }

    #[test]
    fn lookup_merges_short_and_qualified_entries_without_duplicates() {
        let mut r = recs();
        r.names.insert(
            "web.dns.berth".into(),
            vec!["10.89.0.2".parse().unwrap(), "10.89.0.9".parse().unwrap()],
        );
        let got = r.lookup("web.dns.berth");
        assert_eq!(got.len(), 3, "{got:?}");
    }

    #[test]
    fn names_for_gives_fqdns() {
        let r = recs();
        assert_eq!(
            r.names_for("10.89.0.2".parse().unwrap()),
            vec!["web.dns.berth"]
        );
        assert_eq!(
            r.names_for("10.89.0.3".parse().unwrap()),
            vec!["cache.dns.berth"]
        );
        assert_eq!(
            r.names_for("10.89.0.4".parse().unwrap()),
            vec!["db.internal"]
        );
        assert!(r.names_for("10.89.0.99".parse().unwrap()).is_empty());
    }

    #[test]
    fn records_json_roundtrip_and_defaults() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("records.json");
        let mut r = recs();
        r.upstreams = vec!["192.168.1.1:53".parse().unwrap()];
        r.write_atomic(&p).unwrap();
        assert_eq!(Records::read(&p).unwrap(), r);
        // No temporary file is left behind.
        assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 1);
        std::fs::write(&p, r#"{"names": {"a": ["10.0.0.1"]}}"#).unwrap();
        let r = Records::read(&p).unwrap();
        assert_eq!(r.domain, DEFAULT_DOMAIN);
        assert!(r.upstreams.is_empty());
        std::fs::write(&p, "{not json").unwrap();
        assert!(matches!(
            Records::read(&p),
            Err(NetError::DnsRecordsFormat { .. })
        ));
        assert!(matches!(
            Records::read(&dir.path().join("missing")),
            Err(NetError::DnsRecords { .. })
        ));
    }
}
