//! How canhgac reaches a NATS server: the agency's `[forward.nats]` and the
//! center's `[nats]`, one shape for both.
//!
//! ```toml
//! [forward.nats]
//! servers = ["tls://center.example.vn:4222"]
//! credentials = "/etc/canhgac/center.creds"   # or nkey_seed, user + password_file, token_file
//! tls_ca = "/etc/canhgac/center-ca.pem"
//! ```
//!
//! At most one way to authenticate; secret files must be private (as the
//! HTTP token files). Files are checked when the config loads, so `check`
//! names a missing one, not the first connection attempt.

use std::path::PathBuf;

use serde::Deserialize;
use toml::Spanned;

use super::validator::Validator;

/// One NATS server set and how to authenticate to it. `Debug` shows paths
/// and the user name, never a secret (they stay in their files).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NatsConfig {
    /// `nats://host:port` or `tls://host:port`, tried in turn.
    pub servers: Vec<String>,
    pub auth: NatsAuth,
    /// CA certificates (PEM) the server's certificate must chain to; also
    /// makes TLS required.
    pub tls_ca: Option<PathBuf>,
    /// A client certificate and key, for servers that verify clients.
    pub tls_client: Option<(PathBuf, PathBuf)>,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum NatsAuth {
    None,
    /// A `.creds` file (JWT and NKey seed), as `nsc` writes it.
    Credentials(PathBuf),
    /// A file holding an NKey user seed (`SU…`).
    NkeySeed(PathBuf),
    UserPassword {
        user: String,
        password_file: PathBuf,
    },
    Token(PathBuf),
}

#[derive(Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawNats {
    #[serde(default)]
    servers: Vec<Spanned<String>>,
    credentials: Option<Spanned<String>>,
    nkey_seed: Option<Spanned<String>>,
    user: Option<Spanned<String>>,
    password_file: Option<Spanned<String>>,
    token_file: Option<Spanned<String>>,
    tls_ca: Option<Spanned<String>>,
    tls_cert: Option<Spanned<String>>,
    tls_key: Option<Spanned<String>>,
}

impl RawNats {
    /// Where the section starts, for errors about it as a whole.
    fn first_span(&self) -> std::ops::Range<usize> {
        self.servers.first().map(|s| s.span()).unwrap_or(0..0)
    }
}

impl Validator<'_> {
    /// `section` names the table in messages (`[forward.nats]`, `[nats]`).
    pub(super) fn nats(&mut self, raw: &RawNats, section: &str) -> NatsConfig {
        if raw.servers.is_empty() {
            self.error(
                &raw.first_span(),
                format!("{section}: servers is empty: list the NATS servers, e.g. servers = [\"tls://center.example.vn:4222\"]"),
            );
        }
        let mut servers = Vec::new();
        for s in &raw.servers {
            let text = s.get_ref().trim();
            let ok = ["nats://", "tls://"].iter().any(|p| {
                text.strip_prefix(p)
                    .is_some_and(|rest| !rest.is_empty() && !rest.contains(char::is_whitespace))
            });
            if ok {
                servers.push(text.to_owned());
            } else {
                self.error(
                    &s.span(),
                    format!(
                        "{section}: server {text:?}: write nats://HOST:PORT or tls://HOST:PORT"
                    ),
                );
            }
        }
        let ways = [
            raw.credentials.as_ref(),
            raw.nkey_seed.as_ref(),
            raw.user.as_ref(),
            raw.token_file.as_ref(),
        ];
        let given: Vec<_> = ways.iter().flatten().collect();
        if given.len() > 1 {
            self.error(
                &given[1].span(),
                format!("{section}: one way to authenticate: credentials, nkey_seed, user (with password_file) or token_file"),
            );
        }
        let auth = if let Some(p) = &raw.credentials {
            self.secret_file(p, section, "credentials")
                .map_or(NatsAuth::None, NatsAuth::Credentials)
        } else if let Some(p) = &raw.nkey_seed {
            self.secret_file(p, section, "nkey_seed")
                .map_or(NatsAuth::None, NatsAuth::NkeySeed)
        } else if let Some(user) = &raw.user {
            match &raw.password_file {
                Some(p) => self.secret_file(p, section, "password_file").map_or(
                    NatsAuth::None,
                    |password_file| NatsAuth::UserPassword {
                        user: user.get_ref().clone(),
                        password_file,
                    },
                ),
                None => {
                    self.error(
                        &user.span(),
                        format!("{section}: user needs password_file (a private file holding the password)"),
                    );
                    NatsAuth::None
                }
            }
        } else if let Some(p) = &raw.token_file {
            self.secret_file(p, section, "token_file")
                .map_or(NatsAuth::None, NatsAuth::Token)
        } else {
            if let Some(p) = &raw.password_file {
                self.error(
                    &p.span(),
                    format!("{section}: password_file goes with user"),
                );
            }
            NatsAuth::None
        };
        let tls_ca = raw
            .tls_ca
            .as_ref()
            .and_then(|p| self.readable(p, section, "tls_ca"));
        let tls_client = match (&raw.tls_cert, &raw.tls_key) {
            (Some(cert), Some(key)) => {
                let cert = self.readable(cert, section, "tls_cert");
                let key = self.secret_file(key, section, "tls_key");
                cert.zip(key)
            }
            (Some(one), None) | (None, Some(one)) => {
                self.error(
                    &one.span(),
                    format!("{section}: tls_cert and tls_key go together"),
                );
                None
            }
            (None, None) => None,
        };
        NatsConfig {
            servers,
            auth,
            tls_ca,
            tls_client,
        }
    }

    /// A file that must exist and be readable now.
    fn readable(&mut self, p: &Spanned<String>, section: &str, key: &str) -> Option<PathBuf> {
        let path = self.resolve(p.get_ref());
        match std::fs::File::open(&path) {
            Ok(_) => Some(path),
            Err(e) => {
                self.error(
                    &p.span(),
                    format!("{section} {key}: cannot read {}: {e}", path.display()),
                );
                None
            }
        }
    }

    /// A readable file that only its owner may read.
    fn secret_file(&mut self, p: &Spanned<String>, section: &str, key: &str) -> Option<PathBuf> {
        let path = self.readable(p, section, key)?;
        self.private(&p.span(), key, &path).then_some(path)
    }
}
