//! Registry pull and push over the distribution-spec HTTP API, with
//! rustls TLS, per-registry CA dirs and the credentials file.

pub mod auth;
mod client;
pub mod conf;
mod pull;
mod push;
pub mod tls;

pub use client::{api_host, query_escape, Body, Client, RegistryError, RegistryOptions};
pub use pull::{pull, NoProgress, Progress, PullError};
pub use push::{push, push_manifest, PushError, PushOptions};

/// Errors of login/logout.
#[derive(Debug, thiserror::Error)]
pub enum LoginError {
    #[error("log in to {host}")]
    Registry {
        host: String,
        #[source]
        source: Box<RegistryError>,
    },
    #[error("log in to {host}: the registry rejected user {user:?} or its password")]
    Rejected { host: String, user: String },
    #[error("log in to {host}: save credentials")]
    Auth {
        host: String,
        #[source]
        source: auth::AuthError,
    },
}

/// Checks `user`/`password` against the registry, then stores them.
pub fn login(
    host: &str,
    user: &str,
    password: &str,
    opts: &RegistryOptions,
) -> Result<(), LoginError> {
    let mut o = opts.clone();
    o.creds = Some((user.to_string(), password.to_string()));
    let rerr = |source| LoginError::Registry {
        host: host.to_string(),
        source: Box::new(source),
    };
    match Client::connect(host, &o).and_then(|c| c.check_login()) {
        Ok(()) => {}
        Err(RegistryError::Unauthorized { .. }) => {
            return Err(LoginError::Rejected {
                host: host.to_string(),
                user: user.to_string(),
            })
        }
        Err(e) => return Err(rerr(e)),
    }
    auth::store_credentials(&opts.auth_file, host, user, password).map_err(|source| {
        LoginError::Auth {
            host: host.to_string(),
            source,
        }
    })
}

/// Forgets stored credentials; returns whether there were any.
pub fn logout(host: &str, opts: &RegistryOptions) -> Result<bool, auth::AuthError> {
    auth::remove_credentials(&opts.auth_file, host)
}
