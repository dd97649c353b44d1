//! Transport security per registry, as podman decides it: HTTPS with
//! verification against the system roots plus `/etc/containers/certs.d/
//! <host>/*.crt` (client certs from `*.cert`/`*.key` there); plain HTTP or
//! unverified TLS only for insecure registries: loopback hosts (unless
//! `--tls-verify=true`), hosts marked insecure in registries.conf, or
//! `--tls-verify=false`.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName, UnixTime};
use rustls::{ClientConfig, DigitallySignedStruct, RootCertStore, SignatureScheme};

/// Default per-registry certificate directory root.
pub const DEFAULT_CERTS_DIR: &str = "/etc/containers/certs.d";

/// Errors of TLS setup.
#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    #[error("load certificate {path} for registry {host}")]
    Cert {
        host: String,
        path: PathBuf,
        #[source]
        source: rustls::pki_types::pem::Error,
    },
    #[error("add CA {path} for registry {host}")]
    Root {
        host: String,
        path: PathBuf,
        #[source]
        source: rustls::Error,
    },
    #[error("client certificate {path} for registry {host} needs a matching .key file")]
    MissingKey { host: String, path: PathBuf },
    #[error("TLS setup for registry {host}")]
    Config {
        host: String,
        #[source]
        source: rustls::Error,
    },
}

/// How to reach a registry.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Transport {
    /// Verify the server certificate.
    pub verify: bool,
    /// Fall back to plain HTTP when HTTPS does not connect.
    pub allow_http: bool,
}

/// Whether a registry host (with optional port) is on the loopback.
pub fn is_loopback(host: &str) -> bool {
    let name = if let Some(rest) = host.strip_prefix('[') {
        rest.split(']').next().unwrap_or("")
    } else {
        host.rsplit_once(':').map_or(host, |(h, p)| {
            if p.bytes().all(|b| b.is_ascii_digit()) {
                h
            } else {
                host
            }
        })
    };
    name == "localhost" || name == "::1" || name.starts_with("127.")
}

/// The transport decision (podman's rules): `tls_verify` from the command
/// line wins; otherwise loopback and listed-insecure hosts are insecure.
pub fn transport_for(host: &str, tls_verify: Option<bool>, insecure: &[String]) -> Transport {
    let insecure = match tls_verify {
        Some(v) => !v,
        None => is_loopback(host) || insecure.iter().any(|h| h == host),
    };
    Transport {
        verify: !insecure,
        allow_http: insecure,
    }
}

#[derive(Debug)]
struct NoVerify(Arc<rustls::crypto::CryptoProvider>);

impl ServerCertVerifier for NoVerify {
    fn verify_server_cert(
        &self,
        _end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp: &[u8],
        _now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        Ok(ServerCertVerified::assertion())
    }
    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }
    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }
    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.0.signature_verification_algorithms.supported_schemes()
    }
}

fn files_with(dir: &Path, ext: &str) -> Vec<PathBuf> {
    let mut v: Vec<PathBuf> = std::fs::read_dir(dir)
        .map(|rd| {
            rd.flatten()
                .map(|e| e.path())
                .filter(|p| p.extension().is_some_and(|e| e == ext))
                .collect()
        })
        .unwrap_or_default();
    v.sort();
    v
}

/// The rustls client config for `host`.
pub fn client_config(
    host: &str,
    transport: Transport,
    certs_dir: &Path,
) -> Result<Arc<ClientConfig>, TlsError> {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let builder = ClientConfig::builder_with_provider(provider.clone())
        .with_safe_default_protocol_versions()
        .map_err(|source| TlsError::Config {
            host: host.to_string(),
            source,
        })?;
    let host_dir = certs_dir.join(host);
    let builder = if transport.verify {
        let mut roots = RootCertStore::empty();
        for cert in rustls_native_certs::load_native_certs().certs {
            // A system root rustls cannot parse is skipped, as curl does.
            let _ = roots.add(cert);
        }
        for path in files_with(&host_dir, "crt") {
            let cert = CertificateDer::from_pem_file(&path).map_err(|source| TlsError::Cert {
                host: host.to_string(),
                path: path.clone(),
                source,
            })?;
            roots.add(cert).map_err(|source| TlsError::Root {
                host: host.to_string(),
                path,
                source,
            })?;
        }
        builder.with_root_certificates(roots)
    } else {
        builder
            .dangerous()
            .with_custom_certificate_verifier(Arc::new(NoVerify(provider)))
    };
    let client_cert = files_with(&host_dir, "cert").into_iter().next();
    let config = match client_cert {
        Some(cert_path) => {
            let key_path = cert_path.with_extension("key");
            if !key_path.is_file() {
                return Err(TlsError::MissingKey {
                    host: host.to_string(),
                    path: cert_path,
                });
            }
            let certs = CertificateDer::pem_file_iter(&cert_path)
                .and_then(|it| it.collect::<Result<Vec<_>, _>>())
                .map_err(|source| TlsError::Cert {
                    host: host.to_string(),
                    path: cert_path.clone(),
                    source,
                })?;
            let key = PrivateKeyDer::from_pem_file(&key_path).map_err(|source| TlsError::Cert {
                host: host.to_string(),
                path: key_path,
                source,
            })?;
            builder
                .with_client_auth_cert(certs, key)
                .map_err(|source| TlsError::Config {
                    host: host.to_string(),
                    source,
                })?
        }
        None => builder.with_no_client_auth(),
    };
    Ok(Arc::new(config))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn loopback_hosts() {
        for h in [
            "localhost",
            "localhost:5000",
            "127.0.0.1:5000",
            "127.1.2.3",
            "[::1]:5000",
        ] {
            assert!(is_loopback(h), "{h}");
        }
        for h in [
            "docker.io",
            "quay.io:443",
            "10.0.0.1:5000",
            "localhost.example.com",
        ] {
            assert!(!is_loopback(h), "{h}");
        }
    }

    #[test]
    fn transport_rules() {
        let secure = Transport {
            verify: true,
            allow_http: false,
        };
        let insecure = Transport {
            verify: false,
            allow_http: true,
        };
        assert_eq!(transport_for("quay.io", None, &[]), secure);
        assert_eq!(transport_for("localhost:5000", None, &[]), insecure);
        assert_eq!(transport_for("localhost:5000", Some(true), &[]), secure);
        assert_eq!(transport_for("quay.io", Some(false), &[]), insecure);
        assert_eq!(
            transport_for("reg:5000", None, &["reg:5000".to_string()]),
            insecure
        );
    }
}
