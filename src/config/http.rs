//! `[http]`: where `/metrics` and the API listen, over TLS or not, and who
//! may read them. Token and certificate files are read when the config is
//! loaded, so that a broken one fails `check` and a reload, not a request.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use serde::Deserialize;
use toml::Spanned;

use super::validator::Validator;
use super::ConfigError;
use crate::auth::{PasswordHash, Tokens};
use crate::position::Position;
use crate::tls::TlsPaths;

/// TLS and authentication of `/metrics` and the API. Secrets are held only
/// as digests or hashes, and `Debug` prints none of them.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct HttpConfig {
    /// Serve HTTPS with this certificate chain and key (both PEM).
    pub tls: Option<TlsPaths>,
    pub metrics_auth: MetricsAuth,
    /// Tokens of the JSON API; `None` turns the API off.
    pub api_tokens: Option<TokenFile>,
    /// Tokens that may also change an incident's status through the API
    /// (they read as well); `None`: the API stays read-only.
    pub api_write_tokens: Option<TokenFile>,
    pub limits: HttpLimits,
}

/// Bounds on the listener's connections, so that no client can starve the
/// daemon of file descriptors (see `http::serve`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct HttpLimits {
    /// Connections open at once; at the cap the longest-idle one is closed
    /// for a new one.
    pub max_connections: usize,
    /// Time to send a request's headers, and to finish a TLS handshake.
    pub header_timeout: Duration,
    /// A connection with no request in flight is closed after this.
    pub idle_timeout: Duration,
}

impl Default for HttpLimits {
    fn default() -> Self {
        HttpLimits {
            // Prometheus, the center's scraper and a few analysts' tools
            // need a handful; LimitNOFILE=16384 leaves the rest to inputs.
            max_connections: 256,
            header_timeout: Duration::from_secs(10),
            // Longer than Prometheus's default scrape interval (1m), so
            // its keep-alive connection survives between scrapes.
            idle_timeout: Duration::from_secs(90),
        }
    }
}

/// Who may read `/metrics` (`/healthz` and `/readyz` are always open).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub enum MetricsAuth {
    #[default]
    None,
    Bearer(TokenFile),
    Basic {
        user: String,
        password_hash: PasswordHash,
    },
}

impl MetricsAuth {
    pub fn name(&self) -> &'static str {
        match self {
            MetricsAuth::None => "none",
            MetricsAuth::Bearer(_) => "bearer",
            MetricsAuth::Basic { .. } => "basic",
        }
    }
}

/// A token file and the tokens read from it when the config was loaded.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TokenFile {
    pub path: PathBuf,
    pub tokens: Tokens,
}

#[derive(Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawHttp {
    pub(super) listen: Option<Spanned<String>>,
    pub(super) tls_cert: Option<Spanned<String>>,
    pub(super) tls_key: Option<Spanned<String>>,
    pub(super) metrics_auth: Option<Spanned<String>>,
    pub(super) metrics_token_file: Option<Spanned<String>>,
    pub(super) metrics_user: Option<Spanned<String>>,
    pub(super) metrics_password_hash: Option<Spanned<String>>,
    pub(super) api_token_file: Option<Spanned<String>>,
    pub(super) api_write_token_file: Option<Spanned<String>>,
    pub(super) max_connections: Option<Spanned<u64>>,
    pub(super) header_timeout: Option<Spanned<String>>,
    pub(super) idle_timeout: Option<Spanned<String>>,
}

impl Validator<'_> {
    /// `listen` of `[http]`.
    pub(super) fn listen(&mut self, raw: &RawHttp) -> SocketAddr {
        match &raw.listen {
            Some(addr) => addr.get_ref().parse().unwrap_or_else(|e| {
                self.error(
                    &addr.span(),
                    format!(
                        "listen address {:?}: {e} (expected IP:PORT, e.g. \"127.0.0.1:9717\")",
                        addr.get_ref()
                    ),
                );
                fallback_listen()
            }),
            None => fallback_listen(),
        }
    }

    /// `[http]` besides `listen`. Files are read now, so `check` reports a
    /// missing certificate or a broken token file, and a reload with one is
    /// refused.
    pub(super) fn http(&mut self, raw: &RawHttp) -> HttpConfig {
        let tls = self.tls(
            &raw.tls_cert,
            &raw.tls_key,
            "set both (HTTPS) or neither (plain HTTP)",
        );
        let mode = raw.metrics_auth.as_ref().map(|m| m.get_ref().as_str());
        // Settings that only a mode reads are refused under another mode,
        // rather than leaving /metrics open while its owner thinks it closed.
        let stray = |key: &Option<Spanned<String>>, name: &str, wanted: &str| {
            key.as_ref().map(|k| {
                (
                    k.span(),
                    format!("{name} is only read with metrics_auth = \"{wanted}\""),
                )
            })
        };
        let mut strays = Vec::new();
        if mode != Some("bearer") {
            strays.extend(stray(
                &raw.metrics_token_file,
                "metrics_token_file",
                "bearer",
            ));
        }
        if mode != Some("basic") {
            strays.extend(stray(&raw.metrics_user, "metrics_user", "basic"));
            strays.extend(stray(
                &raw.metrics_password_hash,
                "metrics_password_hash",
                "basic",
            ));
        }
        for (span, message) in strays {
            self.error(&span, message);
        }
        let mode_span = raw.metrics_auth.as_ref().map_or(0..0, Spanned::span);
        let metrics_auth = match mode {
            None | Some("none") => MetricsAuth::None,
            Some("bearer") => match &raw.metrics_token_file {
                Some(file) => self
                    .token_file(file, "metrics_token_file")
                    .map_or(MetricsAuth::None, MetricsAuth::Bearer),
                None => {
                    self.error(
                        &mode_span,
                        "metrics_auth = \"bearer\" needs metrics_token_file (one token per line)"
                            .into(),
                    );
                    MetricsAuth::None
                }
            },
            Some("basic") => {
                let user = match &raw.metrics_user {
                    Some(u) if u.get_ref().is_empty() || u.get_ref().contains(':') => {
                        self.error(
                            &u.span(),
                            "metrics_user: must not be empty nor contain ':'".into(),
                        );
                        None
                    }
                    Some(u) => Some(u.get_ref().clone()),
                    None => {
                        self.error(
                            &mode_span,
                            "metrics_auth = \"basic\" needs metrics_user".into(),
                        );
                        None
                    }
                };
                let hash = match &raw.metrics_password_hash {
                    Some(h) => match h.get_ref().parse::<PasswordHash>() {
                        Ok(hash) => Some(hash),
                        Err(e) => {
                            self.error(&h.span(), format!("metrics_password_hash: {e}"));
                            None
                        }
                    },
                    None => {
                        self.error(
                            &mode_span,
                            "metrics_auth = \"basic\" needs metrics_password_hash (bcrypt)".into(),
                        );
                        None
                    }
                };
                match (user, hash) {
                    (Some(user), Some(password_hash)) => MetricsAuth::Basic {
                        user,
                        password_hash,
                    },
                    _ => MetricsAuth::None,
                }
            }
            Some(other) => {
                self.error(
                    &mode_span,
                    format!("metrics_auth {other:?}: expected \"none\", \"bearer\" or \"basic\""),
                );
                MetricsAuth::None
            }
        };
        let api_tokens = raw
            .api_token_file
            .as_ref()
            .and_then(|file| self.token_file(file, "api_token_file"));
        let api_write_tokens = raw
            .api_write_token_file
            .as_ref()
            .and_then(|file| self.token_file(file, "api_write_token_file"));
        HttpConfig {
            tls,
            metrics_auth,
            api_tokens,
            api_write_tokens,
            limits: self.http_limits(raw),
        }
    }

    fn http_limits(&mut self, raw: &RawHttp) -> HttpLimits {
        let d = HttpLimits::default();
        let second = Duration::from_secs(1);
        let hour = Duration::from_secs(3600);
        HttpLimits {
            max_connections: self.count(
                &raw.max_connections,
                d.max_connections,
                1,
                4096,
                "max_connections",
            ),
            // Below a second a slow network would fail honest clients.
            header_timeout: self
                .duration(
                    &raw.header_timeout,
                    d.header_timeout,
                    hour,
                    "header_timeout",
                )
                .max(second),
            idle_timeout: self
                .duration(&raw.idle_timeout, d.idle_timeout, hour, "idle_timeout")
                .max(second),
        }
    }

    /// Reads a token file; its problems are positioned in the token file
    /// itself (a missing file at the config key naming it).
    pub(super) fn token_file(&mut self, file: &Spanned<String>, key: &str) -> Option<TokenFile> {
        let path = self.resolve(file.get_ref());
        let text = match std::fs::read_to_string(&path) {
            Ok(text) => text,
            Err(e) => {
                self.error(
                    &file.span(),
                    format!("{key}: cannot read {}: {e}", path.display()),
                );
                return None;
            }
        };
        let private = self.private(&file.span(), key, &path);
        match Tokens::parse(&text) {
            Ok(tokens) => private.then_some(TokenFile { path, tokens }),
            Err(errors) => {
                for e in errors {
                    self.errors.push(ConfigError {
                        pos: Position {
                            file: path.display().to_string(),
                            line: e.line,
                            column: e.column,
                        },
                        message: format!("{} (read for {key})", e.message),
                    });
                }
                None
            }
        }
    }
}

fn fallback_listen() -> SocketAddr {
    SocketAddr::from(([127, 0, 0, 1], 9717))
}

#[cfg(test)]
mod tests {
    use std::path::Path;

    use super::*;
    use crate::config::tests::{messages, parse, MINIMAL};
    use std::os::unix::fs::PermissionsExt;

    use crate::config::Config;

    #[test]
    fn http_defaults_to_plain_open_metrics_and_no_api() {
        let c = parse(MINIMAL).expect("valid");
        assert_eq!(c.http, HttpConfig::default());
        assert_eq!(c.http.metrics_auth.name(), "none");
    }

    const TOKEN: &str = "0123456789abcdef0123456789abcdef";

    /// A config directory with a self-signed certificate and token files.
    fn http_dir() -> tempfile::TempDir {
        let dir = tempfile::tempdir().expect("tempdir");
        let cert = rcgen::generate_simple_self_signed(vec!["localhost".into()]).expect("cert");
        // Private, as secrets must be (see `crate::secret`).
        let write = |name: &str, text: &str| {
            let path = dir.path().join(name);
            std::fs::write(&path, text).expect("write");
            std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600)).expect("chmod");
        };
        write("cert.pem", &cert.cert.pem());
        write("key.pem", &cert.key_pair.serialize_pem());
        write("api.tokens", &format!("# analysts\n{TOKEN}\n"));
        write("metrics.tokens", &format!("{TOKEN}-prometheus\n"));
        write("bad.tokens", "# c\n\ntoo-short\n");
        dir
    }

    fn parse_in(dir: &Path, http: &str) -> Result<Config, Vec<String>> {
        let text = format!("{MINIMAL}\n[http]\n{http}");
        messages(Config::parse(&dir.join("canhgac.toml"), &text))
    }

    #[test]
    fn http_tls_bearer_and_api_tokens() {
        let dir = http_dir();
        let c = parse_in(
            dir.path(),
            "tls_cert = \"cert.pem\"\ntls_key = \"key.pem\"\nmetrics_auth = \"bearer\"\nmetrics_token_file = \"metrics.tokens\"\napi_token_file = \"api.tokens\"\n",
        )
        .expect("valid");
        let tls = c.http.tls.as_ref().expect("tls");
        assert_eq!(tls.cert, dir.path().join("cert.pem"));
        assert_eq!(tls.key, dir.path().join("key.pem"));
        let MetricsAuth::Bearer(metrics) = &c.http.metrics_auth else {
            panic!("bearer: {:?}", c.http.metrics_auth);
        };
        assert!(metrics
            .tokens
            .verify(format!("{TOKEN}-prometheus").as_bytes()));
        assert!(!metrics.tokens.verify(TOKEN.as_bytes()));
        let api = c.http.api_tokens.as_ref().expect("api tokens");
        assert_eq!(api.path, dir.path().join("api.tokens"));
        assert!(api.tokens.verify(TOKEN.as_bytes()));
        // No secret in the debug output.
        assert!(!format!("{c:?}").contains(TOKEN));
    }

    #[test]
    fn http_basic_auth() {
        let dir = http_dir();
        let hash = bcrypt::hash("s3cret", 4).expect("hash");
        let c = parse_in(
            dir.path(),
            &format!("metrics_auth = \"basic\"\nmetrics_user = \"prometheus\"\nmetrics_password_hash = \"{hash}\"\n"),
        )
        .expect("valid");
        let MetricsAuth::Basic { user, .. } = &c.http.metrics_auth else {
            panic!("basic: {:?}", c.http.metrics_auth);
        };
        assert_eq!(user, "prometheus");
        assert!(!format!("{c:?}").contains(&hash));
    }

    #[test]
    fn http_errors_are_positioned() {
        let dir = http_dir();
        let file = dir.path().join("canhgac.toml").display().to_string();
        let tokens = dir.path().join("bad.tokens").display().to_string();
        let cases: &[(&str, &str)] = &[
            ("tls_cert = \"cert.pem\"\n", ":9:12: tls_cert and tls_key go together"),
            ("tls_key = \"key.pem\"\n", ":9:11: tls_cert and tls_key go together"),
            (
                "tls_cert = \"missing.pem\"\ntls_key = \"key.pem\"\n",
                ":9:12: TLS: cannot read",
            ),
            (
                "tls_cert = \"cert.pem\"\ntls_key = \"api.tokens\"\n",
                ":10:11: TLS: ",
            ),
            ("metrics_auth = \"bearer\"\n", ":9:16: metrics_auth = \"bearer\" needs metrics_token_file"),
            ("metrics_auth = \"digest\"\n", ":9:16: metrics_auth \"digest\": expected"),
            (
                "metrics_token_file = \"metrics.tokens\"\n",
                ":9:22: metrics_token_file is only read with metrics_auth = \"bearer\"",
            ),
            (
                "metrics_auth = \"basic\"\nmetrics_user = \"prom\"\nmetrics_password_hash = \"s3cret\"\n",
                ":11:25: metrics_password_hash: not a bcrypt hash",
            ),
            (
                "metrics_auth = \"basic\"\nmetrics_password_hash = \"s3cret\"\n",
                ":9:16: metrics_auth = \"basic\" needs metrics_user",
            ),
            (
                "metrics_auth = \"bearer\"\nmetrics_token_file = \"nope.tokens\"\n",
                ":10:22: metrics_token_file: cannot read",
            ),
        ];
        for (http, want) in cases {
            let errors = parse_in(dir.path(), http).expect_err(http);
            let want = format!("{file}{want}");
            assert!(
                errors.iter().any(|e| e.starts_with(&want)),
                "{http}: missing {want:?} in {errors:#?}"
            );
        }
        // A bad token file is positioned in the token file itself.
        let errors = parse_in(dir.path(), "api_token_file = \"bad.tokens\"\n").expect_err("bad");
        assert_eq!(errors.len(), 1, "{errors:?}");
        assert!(
            errors[0].starts_with(&format!("{tokens}:3:1: token too short")),
            "{errors:?}"
        );
        assert!(
            errors[0].ends_with("(read for api_token_file)"),
            "{errors:?}"
        );
    }

    #[test]
    fn secret_files_readable_by_others_are_refused_with_the_fix() {
        let dir = http_dir();
        for name in ["api.tokens", "key.pem"] {
            let path = dir.path().join(name);
            std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o644)).expect("chmod");
        }
        let errors = parse_in(
            dir.path(),
            "tls_cert = \"cert.pem\"\ntls_key = \"key.pem\"\napi_token_file = \"api.tokens\"\n",
        )
        .expect_err("loose secrets");
        assert_eq!(errors.len(), 2, "{errors:#?}");
        for (error, key, file) in [
            (&errors[0], ":10:11: tls_key: ", "key.pem"),
            (&errors[1], ":11:18: api_token_file: ", "api.tokens"),
        ] {
            let path = dir.path().join(file);
            assert!(error.contains(key), "{error}");
            assert!(error.contains("readable by others (mode 0644)"), "{error}");
            assert!(
                error.ends_with(&format!("run `chmod 600 {}`", path.display())),
                "{error}"
            );
        }
    }

    #[test]
    fn connection_limits_default_and_bounded() {
        let dir = http_dir();
        let c = parse_in(dir.path(), "").expect("valid");
        assert_eq!(c.http.limits, HttpLimits::default());
        let c = parse_in(
            dir.path(),
            "max_connections = 32\nheader_timeout = \"500ms\"\nidle_timeout = \"2m\"\n",
        )
        .expect("valid");
        assert_eq!(c.http.limits.max_connections, 32);
        assert_eq!(c.http.limits.header_timeout, Duration::from_secs(1));
        assert_eq!(c.http.limits.idle_timeout, Duration::from_secs(120));
        let errors = parse_in(dir.path(), "max_connections = 0\n").expect_err("zero");
        assert!(
            errors[0].ends_with(":9:19: max_connections 0: must be between 1 and 4096"),
            "{errors:?}"
        );
    }
}
