//! The daemon's configuration: one TOML file, validated whole, every problem
//! reported as `file:line:col: message` so a sysadmin can go straight to it.
//!
//! Relative paths (state directory, rule directories, input paths) are taken
//! relative to the config file's directory, so a config and the logs and rules
//! beside it can move together (the bundled demo relies on it).

use std::collections::HashMap;
use std::fmt;
use std::net::SocketAddr;
use std::ops::Range;
use std::path::{Path, PathBuf};
use std::time::Duration;

use jiff::tz::TimeZone;
use serde::Deserialize;
use toml::Spanned;

use crate::auth::{PasswordHash, Tokens};
use crate::category::{Category, Severity};
use crate::feeds::{Column, FeedDecl, FeedKind, FeedSource, FileSpec, Format};
use crate::input::lines::DEFAULT_MAX_LINE;
use crate::input::syslog::Transport;
use crate::integrity::settings::{IntegrityConfig, WebRootConfig};
use crate::position::Position;
use crate::rules::{RuleSources, INPUT_TYPES};
use crate::tls::TlsPaths;
use crate::{duration, timestamp};

pub const DEFAULT_PATH: &str = "/etc/canhgac/canhgac.toml";
pub const DEFAULT_STATE_DIR: &str = "/var/lib/canhgac";
pub const DEFAULT_LISTEN: &str = "127.0.0.1:9717";
/// The store's file name inside the state directory.
pub const DB_FILE: &str = "canhgac.db";

#[derive(Clone, Debug)]
pub struct Config {
    pub file: PathBuf,
    pub agency: String,
    pub time_zone: TimeZone,
    /// As written, for logs and the API; "system" when not configured.
    pub time_zone_name: String,
    pub state_dir: PathBuf,
    pub rules: RuleSources,
    /// Reverse proxies in front of the web servers: for an access-log line
    /// from one of them, the client is the one `X-Forwarded-For` names.
    pub trusted_proxies: Vec<crate::network::Network>,
    pub listen: SocketAddr,
    /// TLS and credentials of the HTTP side (`[http]` besides `listen`).
    pub http: HttpConfig,
    pub pipeline: PipelineConfig,
    pub inputs: Vec<InputConfig>,
    /// IoC feeds (`[[feed]]`), in order. Their files are read by the
    /// daemon and `check`, not here: loading a config must stay cheap.
    pub feeds: Vec<FeedDecl>,
    /// Web-root integrity: `[integrity]` and the `[[webroot]]`s.
    pub integrity: IntegrityConfig,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct InputConfig {
    pub name: String,
    /// The line format, i.e. which rules read the input's lines: as written
    /// for files, `syslog` for the journal and the syslog receivers (their
    /// lines are written in syslog's format).
    pub input_type: String,
    pub source: SourceConfig,
}

/// Where an input's lines come from.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum SourceConfig {
    Files {
        /// An absolute path or glob.
        path: String,
        /// Where to start in a file present when the input first starts with
        /// no checkpoint. Files that appear later are always read from their
        /// start.
        start_at_end: bool,
    },
    Journal {
        /// Read the journal files in this directory (`journalctl
        /// --directory`) instead of the system journal.
        directory: Option<PathBuf>,
        /// `journalctl` matches (`FIELD=value`, or `+` between groups).
        matches: Vec<String>,
        /// On the input's very first start: only entries from now on.
        start_at_end: bool,
    },
    Syslog {
        transport: Transport,
        listen: SocketAddr,
        /// Longer messages are counted and dropped.
        max_message: usize,
        /// Bytes received and not yet committed to the store, at most.
        queue_bytes: usize,
        /// TCP and RELP: TLS (RFC 5425) with this certificate and key.
        tls: Option<TlsPaths>,
    },
}

impl SourceConfig {
    /// Starts at the end on a first start only: an input that has committed
    /// before starts where it left off, or at the beginning.
    pub fn not_first_start(&mut self) {
        match self {
            SourceConfig::Files { start_at_end, .. }
            | SourceConfig::Journal { start_at_end, .. } => *start_at_end = false,
            SourceConfig::Syslog { .. } => {}
        }
    }
}

/// Input `type`s that are not a line format of files but a source of
/// syslog-format lines.
pub const SOURCE_TYPES: &[&str] = &["journal", "syslog-udp", "syslog-tcp", "syslog-relp"];

/// Default of `queue_bytes` for syslog receivers.
pub const DEFAULT_QUEUE_BYTES: usize = 4 << 20;

/// Default of `max_message_bytes` for syslog receivers: RFC 5425's 8192
/// with room for the long lines of web appliances.
pub const DEFAULT_MAX_MESSAGE: usize = 16 * 1024;

/// TLS and authentication of `/metrics` and the API. Secrets are held only
/// as digests or hashes, and `Debug` prints none of them.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct HttpConfig {
    /// Serve HTTPS with this certificate chain and key (both PEM).
    pub tls: Option<TlsPaths>,
    pub metrics_auth: MetricsAuth,
    /// Tokens of the JSON API; `None` turns the API off.
    pub api_tokens: Option<TokenFile>,
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

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PipelineConfig {
    pub max_line: usize,
    /// A batch is committed after this many lines...
    pub batch_lines: usize,
    /// ...or this long after its first line, whichever comes first.
    pub batch_interval: Duration,
    pub max_keys: usize,
    /// Stat sweep of every input: the safety net under inotify.
    pub sweep_interval: Duration,
    /// How long a rotated-away file that stopped growing is kept open for
    /// writers that have not reopened yet.
    pub rotated_grace: Duration,
    /// How far behind its attacker's newest event an event may arrive and
    /// still count (see [`crate::detect::Detector::set_lateness`]).
    pub max_lateness: Duration,
    /// How far ahead of the clock a line may be dated: a later date is
    /// taken as the time the line was read, so that a forged or mis-set
    /// date cannot move an attacker's clock into the future.
    pub max_clock_skew: Duration,
}

impl Default for PipelineConfig {
    fn default() -> Self {
        PipelineConfig {
            max_line: DEFAULT_MAX_LINE,
            batch_lines: 20_000,
            batch_interval: Duration::from_secs(1),
            max_keys: 20_000,
            sweep_interval: Duration::from_secs(1),
            rotated_grace: Duration::from_secs(30),
            max_lateness: crate::detect::DEFAULT_LATENESS.unsigned_abs(),
            max_clock_skew: crate::analyze::DEFAULT_CLOCK_SKEW.unsigned_abs(),
        }
    }
}

impl Config {
    pub fn db_path(&self) -> PathBuf {
        self.state_dir.join(DB_FILE)
    }

    /// A config for the daemon: it must watch something.
    pub fn load(path: &Path) -> Result<Config, ConfigErrors> {
        Config::read(path, Needs::Inputs)
    }

    /// A config whose rules, feeds and settings `scan` uses on the files
    /// it is given: it may have no inputs.
    pub fn load_for_scan(path: &Path) -> Result<Config, ConfigErrors> {
        Config::read(path, Needs::Settings)
    }

    fn read(path: &Path, needs: Needs) -> Result<Config, ConfigErrors> {
        let name = path.display().to_string();
        let text = std::fs::read_to_string(path).map_err(|e| {
            ConfigErrors(vec![ConfigError {
                pos: Position {
                    file: name.clone(),
                    line: 1,
                    column: 1,
                },
                message: format!("cannot read config: {e}"),
            }])
        })?;
        Config::parse_for(path, &text, needs)
    }

    /// `path` names the file in errors and anchors relative paths.
    pub fn parse(path: &Path, text: &str) -> Result<Config, ConfigErrors> {
        Config::parse_for(path, text, Needs::Inputs)
    }

    fn parse_for(path: &Path, text: &str, needs: Needs) -> Result<Config, ConfigErrors> {
        let mut v = Validator {
            needs,
            file: path.display().to_string(),
            text,
            base: path
                .parent()
                .filter(|p| !p.as_os_str().is_empty())
                .unwrap_or(Path::new("."))
                .to_path_buf(),
            errors: Vec::new(),
        };
        let raw: RawConfig = match toml::from_str(text) {
            Ok(raw) => raw,
            Err(e) => {
                let span = e.span().unwrap_or(0..0);
                v.error(&span, e.message().trim_end().to_owned());
                return Err(ConfigErrors(v.errors));
            }
        };
        let config = v.validate(path, raw);
        if v.errors.is_empty() {
            Ok(config)
        } else {
            Err(ConfigErrors(v.errors))
        }
    }
}

/// What a config is loaded for.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Needs {
    /// The daemon: a config that watches nothing is an error.
    Inputs,
    /// `scan`: rules, feeds and settings only.
    Settings,
}

/// One problem in a config file.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ConfigError {
    pub pos: Position,
    pub message: String,
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.pos, self.message)
    }
}

#[derive(Debug)]
pub struct ConfigErrors(pub Vec<ConfigError>);

impl fmt::Display for ConfigErrors {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, e) in self.0.iter().enumerate() {
            if i > 0 {
                writeln!(f)?;
            }
            write!(f, "{e}")?;
        }
        Ok(())
    }
}

impl std::error::Error for ConfigErrors {}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawConfig {
    agency: Spanned<String>,
    time_zone: Option<Spanned<String>>,
    state_dir: Option<Spanned<String>>,
    /// Rule or group ids to leave out (also accepted inside `[rules]`).
    #[serde(default)]
    disable_rules: Vec<Spanned<String>>,
    /// Proxies whose `X-Forwarded-For` names the real client.
    #[serde(default)]
    trusted_proxies: Vec<Spanned<String>>,
    #[serde(default)]
    rules: RawRules,
    #[serde(default)]
    http: RawHttp,
    #[serde(default)]
    pipeline: RawPipeline,
    #[serde(default, rename = "input")]
    inputs: Vec<Spanned<RawInput>>,
    #[serde(default, rename = "feed")]
    feeds: Vec<Spanned<RawFeed>>,
    #[serde(default)]
    integrity: RawIntegrity,
    #[serde(default, rename = "webroot")]
    webroots: Vec<Spanned<RawWebRoot>>,
}

#[derive(Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawIntegrity {
    debounce: Option<Spanned<String>>,
    max_burst: Option<Spanned<String>>,
    rescan_interval: Option<Spanned<String>>,
    max_file_bytes: Option<Spanned<u64>>,
    #[serde(default)]
    signatures: Vec<Spanned<String>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawWebRoot {
    name: Spanned<String>,
    path: Spanned<String>,
    include: Option<Spanned<Vec<String>>>,
    exclude: Option<Spanned<Vec<String>>>,
    upload_dirs: Option<Spanned<Vec<String>>>,
    index_names: Option<Vec<String>>,
    script_extensions: Option<Vec<String>>,
    url_prefix: Option<Spanned<String>>,
    deploy_marker: Option<Spanned<String>>,
    #[serde(default)]
    deploy_windows: Vec<Spanned<String>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawFeed {
    name: Spanned<String>,
    path: Spanned<String>,
    kind: Spanned<String>,
    category: Spanned<String>,
    severity: Spanned<String>,
    format: Option<Spanned<String>>,
    column: Option<Spanned<RawColumn>>,
    header: Option<Spanned<bool>>,
    key: Option<Spanned<String>>,
}

#[derive(Deserialize)]
#[serde(untagged)]
enum RawColumn {
    Number(u64),
    Name(String),
}

#[derive(Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawRules {
    builtin: Option<bool>,
    #[serde(default)]
    dirs: Vec<Spanned<String>>,
    #[serde(default)]
    disable_rules: Vec<Spanned<String>>,
}

#[derive(Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawHttp {
    listen: Option<Spanned<String>>,
    tls_cert: Option<Spanned<String>>,
    tls_key: Option<Spanned<String>>,
    metrics_auth: Option<Spanned<String>>,
    metrics_token_file: Option<Spanned<String>>,
    metrics_user: Option<Spanned<String>>,
    metrics_password_hash: Option<Spanned<String>>,
    api_token_file: Option<Spanned<String>>,
}

#[derive(Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawPipeline {
    max_line_bytes: Option<Spanned<u64>>,
    batch_lines: Option<Spanned<u64>>,
    batch_interval: Option<Spanned<String>>,
    max_keys: Option<Spanned<u64>>,
    sweep_interval: Option<Spanned<String>>,
    max_lateness: Option<Spanned<String>>,
    max_clock_skew: Option<Spanned<String>>,
    rotated_grace: Option<Spanned<String>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawInput {
    name: Spanned<String>,
    path: Option<Spanned<String>>,
    #[serde(rename = "type")]
    input_type: Spanned<String>,
    start: Option<Spanned<String>>,
    /// Journal: a directory of journal files.
    directory: Option<Spanned<String>>,
    /// Journal: `FIELD=value` matches.
    #[serde(rename = "match")]
    matches: Option<Spanned<Vec<Spanned<String>>>>,
    /// Syslog receivers.
    listen: Option<Spanned<String>>,
    max_message_bytes: Option<Spanned<u64>>,
    queue_bytes: Option<Spanned<u64>>,
    /// TCP and RELP receivers: TLS.
    tls_cert: Option<Spanned<String>>,
    tls_key: Option<Spanned<String>>,
}

struct Validator<'t> {
    file: String,
    text: &'t str,
    base: PathBuf,
    errors: Vec<ConfigError>,
    needs: Needs,
}

impl Validator<'_> {
    fn error(&mut self, span: &Range<usize>, message: String) {
        let pos = position(&self.file, self.text, span.start);
        self.errors.push(ConfigError { pos, message });
    }

    /// A count in `[min, max]`, `default` when absent or out of range (the
    /// error recorded).
    fn count(
        &mut self,
        v: &Option<Spanned<u64>>,
        default: usize,
        min: u64,
        max: u64,
        what: &str,
    ) -> usize {
        let Some(v) = v else { return default };
        let n = *v.get_ref();
        if (min..=max).contains(&n) {
            n as usize
        } else {
            self.error(
                &v.span(),
                format!("{what} {n}: must be between {min} and {max}"),
            );
            default
        }
    }

    /// A duration of at most `max`, `default` when absent or invalid (the
    /// error recorded).
    fn duration(
        &mut self,
        v: &Option<Spanned<String>>,
        default: Duration,
        max: Duration,
        what: &str,
    ) -> Duration {
        let Some(v) = v else { return default };
        match duration::parse(v.get_ref()) {
            Ok(t) if t.unsigned_abs() <= max => t.unsigned_abs(),
            Ok(_) => {
                self.error(&v.span(), format!("{what}: at most {}s", max.as_secs()));
                default
            }
            Err(e) => {
                self.error(&v.span(), format!("{what}: {e}"));
                default
            }
        }
    }

    fn validate(&mut self, path: &Path, raw: RawConfig) -> Config {
        let agency = raw.agency.get_ref().clone();
        if !valid_name(&agency, false) {
            self.error(
                &raw.agency.span(),
                format!("agency id {agency:?}: use lower-case letters, digits and '-' (at most 64), e.g. \"so-tttt-hanoi\""),
            );
        }
        let (time_zone, time_zone_name) = match &raw.time_zone {
            Some(name) => match timestamp::zone_by_name(name.get_ref()) {
                Ok(tz) => (tz, name.get_ref().clone()),
                Err(e) => {
                    self.error(&name.span(), e);
                    (TimeZone::UTC, name.get_ref().clone())
                }
            },
            None => (timestamp::system_time_zone(), "system".to_owned()),
        };
        let state_dir = raw
            .state_dir
            .as_ref()
            .map_or(PathBuf::from(DEFAULT_STATE_DIR), |d| {
                self.resolve(d.get_ref())
            });
        let rules = RuleSources {
            builtin: raw.rules.builtin.unwrap_or(true),
            paths: raw
                .rules
                .dirs
                .iter()
                .map(|d| self.resolve(d.get_ref()))
                .collect(),
            disabled: raw
                .disable_rules
                .iter()
                .chain(&raw.rules.disable_rules)
                .map(|id| id.get_ref().clone())
                .collect(),
        };
        let mut trusted_proxies = Vec::new();
        for net in &raw.trusted_proxies {
            match net.get_ref().parse::<crate::network::Network>() {
                Ok(n) => trusted_proxies.push(n),
                Err(e) => self.error(&net.span(), format!("bad trusted proxy: {e}")),
            }
        }
        let listen = match &raw.http.listen {
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
        };
        let http = self.http(&raw.http);
        let pipeline = self.pipeline(&raw.pipeline);
        let mut inputs = Vec::new();
        let mut names: HashMap<String, Range<usize>> = HashMap::new();
        let mut listeners: HashMap<(Transport, SocketAddr), Range<usize>> = HashMap::new();
        for spanned in &raw.inputs {
            let input = spanned.get_ref();
            let name = input.name.get_ref();
            if !valid_name(name, true) {
                self.error(
                    &input.name.span(),
                    format!(
                        "input name {name:?}: use letters, digits, '-', '_' and '.' (at most 64)"
                    ),
                );
            }
            if let Some(first) = names.get(name) {
                let first = position(&self.file, self.text, first.start);
                self.error(
                    &input.name.span(),
                    format!("input name {name:?} used twice (first at {first})"),
                );
            } else {
                names.insert(name.clone(), input.name.span());
            }
            let input_span = spanned.span();
            if let Some(source) = self.source(input, input_span.clone()) {
                if let SourceConfig::Syslog {
                    transport, listen, ..
                } = &source
                {
                    if let Some(first) = listeners.get(&(transport.socket(), *listen)) {
                        let first = position(&self.file, self.text, first.start);
                        self.error(
                            &input_span,
                            format!(
                                "{} {listen} is already the listen address of another input (at {first})",
                                transport.name()
                            ),
                        );
                    } else {
                        listeners.insert((transport.socket(), *listen), input_span.clone());
                    }
                }
                let input_type = input.input_type.get_ref();
                inputs.push(InputConfig {
                    name: name.clone(),
                    input_type: if SOURCE_TYPES.contains(&input_type.as_str()) {
                        "syslog".to_owned()
                    } else {
                        input_type.clone()
                    },
                    source,
                });
            }
        }
        let integrity = self.integrity(&raw, &names);
        if self.needs == Needs::Inputs && raw.inputs.is_empty() && raw.webroots.is_empty() {
            self.error(
                &raw.agency.span(),
                "no [[input]] nor [[webroot]] configured: canhgac would watch nothing".to_owned(),
            );
        }
        let feeds = self.feeds(&raw.feeds);
        Config {
            file: path.to_path_buf(),
            agency,
            time_zone,
            time_zone_name,
            state_dir,
            rules,
            trusted_proxies,
            listen,
            http,
            pipeline,
            inputs,
            feeds,
            integrity,
        }
    }

    /// `[integrity]` and `[[webroot]]`. Web root names share the namespace
    /// of input names: incidents name either in their `input`.
    fn integrity(
        &mut self,
        raw: &RawConfig,
        input_names: &HashMap<String, Range<usize>>,
    ) -> IntegrityConfig {
        use crate::integrity::deploy::{Deploy, DeployWindow};
        use crate::integrity::select::{self, Classifier, Selection, Signatures};
        let d = IntegrityConfig::default();
        let r = &raw.integrity;
        let debounce = self.duration(&r.debounce, d.debounce, Duration::from_secs(60), "debounce");
        let max_burst = self.duration(
            &r.max_burst,
            d.max_burst,
            Duration::from_secs(3600),
            "max_burst",
        );
        let rescan_interval = self.duration(
            &r.rescan_interval,
            d.rescan_interval,
            Duration::from_secs(7 * 86_400),
            "rescan_interval",
        );
        let max_file_bytes = match &r.max_file_bytes {
            Some(v) if *v.get_ref() == 0 => {
                self.error(&v.span(), "max_file_bytes: must be at least 1".into());
                d.max_file_bytes
            }
            Some(v) => *v.get_ref(),
            None => d.max_file_bytes,
        };
        let mut signatures = Vec::new();
        for sig in &r.signatures {
            match Signatures::new(std::slice::from_ref(sig.get_ref())) {
                Ok(_) => signatures.push(sig.get_ref().clone()),
                Err(e) => self.error(&sig.span(), e),
            }
        }
        let strings = |v: &[&str]| v.iter().map(|s| (*s).to_owned()).collect::<Vec<_>>();
        let mut roots = Vec::new();
        let mut names: HashMap<String, Range<usize>> = HashMap::new();
        for root in &raw.webroots {
            let root = root.get_ref();
            let name = root.name.get_ref();
            if !valid_name(name, true) {
                self.error(
                    &root.name.span(),
                    format!("web root name {name:?}: use letters, digits, '-', '_' and '.' (at most 64)"),
                );
            }
            if let Some(first) = names.get(name).or_else(|| input_names.get(name)) {
                let first = position(&self.file, self.text, first.start);
                self.error(
                    &root.name.span(),
                    format!("web root name {name:?} already used (first at {first}); web roots and inputs need distinct names"),
                );
            } else {
                names.insert(name.clone(), root.name.span());
            }
            let path = self.resolve(root.path.get_ref());
            let include = root
                .include
                .as_ref()
                .map_or_else(Vec::new, |v| v.get_ref().clone());
            let exclude = root
                .exclude
                .as_ref()
                .map_or_else(Vec::new, |v| v.get_ref().clone());
            if let Err(e) = Selection::new(&include, &exclude) {
                let which = if e.starts_with("include") {
                    &root.include
                } else {
                    &root.exclude
                };
                let span = which.as_ref().map_or(root.name.span(), Spanned::span);
                self.error(&span, e);
            }
            let upload_dirs = root.upload_dirs.as_ref().map_or_else(
                || strings(select::DEFAULT_UPLOAD_DIRS),
                |u| u.get_ref().clone(),
            );
            let index_names = root
                .index_names
                .clone()
                .unwrap_or_else(|| strings(select::DEFAULT_INDEX_NAMES));
            let script_extensions = root
                .script_extensions
                .clone()
                .unwrap_or_else(|| strings(select::DEFAULT_SCRIPT_EXTENSIONS));
            if let Err(e) = Classifier::new(&upload_dirs, &index_names, &script_extensions) {
                let span = root
                    .upload_dirs
                    .as_ref()
                    .map_or(root.name.span(), Spanned::span);
                self.error(&span, e);
            }
            let url_prefix = match &root.url_prefix {
                Some(u) if !u.get_ref().starts_with('/') => {
                    self.error(
                        &u.span(),
                        format!("url_prefix {:?}: must start with '/'", u.get_ref()),
                    );
                    "/".to_owned()
                }
                Some(u) => u.get_ref().clone(),
                None => "/".to_owned(),
            };
            let mut windows = Vec::new();
            for w in &root.deploy_windows {
                match DeployWindow::parse(w.get_ref()) {
                    Ok(w) => windows.push(w),
                    Err(e) => self.error(&w.span(), e),
                }
            }
            let marker = root
                .deploy_marker
                .as_ref()
                .map(|m| self.resolve(m.get_ref()));
            roots.push(WebRootConfig {
                name: name.clone(),
                path,
                include,
                exclude,
                upload_dirs,
                index_names,
                script_extensions,
                url_prefix,
                deploy: Deploy { windows, marker },
            });
        }
        IntegrityConfig {
            debounce,
            max_burst,
            rescan_interval,
            max_file_bytes,
            signatures,
            roots,
        }
    }

    fn feeds(&mut self, raw: &[Spanned<RawFeed>]) -> Vec<FeedDecl> {
        let mut feeds = Vec::new();
        let mut names: HashMap<String, Range<usize>> = HashMap::new();
        for feed in raw {
            let feed = feed.get_ref();
            let name = feed.name.get_ref();
            if !valid_name(name, false) {
                self.error(
                    &feed.name.span(),
                    format!("feed name {name:?}: use lower-case letters, digits and '-' (at most 64); it appears in rule ids and metric labels"),
                );
            }
            if let Some(first) = names.get(name) {
                let first = position(&self.file, self.text, first.start);
                self.error(
                    &feed.name.span(),
                    format!("feed name {name:?} used twice (first at {first})"),
                );
            } else {
                names.insert(name.clone(), feed.name.span());
            }
            let kind = feed
                .kind
                .get_ref()
                .parse::<FeedKind>()
                .map_err(|e| self.error(&feed.kind.span(), e))
                .ok();
            let category = feed
                .category
                .get_ref()
                .parse::<Category>()
                .map_err(|e| self.error(&feed.category.span(), e))
                .ok();
            let severity = feed
                .severity
                .get_ref()
                .parse::<Severity>()
                .map_err(|e| self.error(&feed.severity.span(), e))
                .ok();
            let file_path = self.resolve(feed.path.get_ref());
            let format = match &feed.format {
                Some(f) => Format::parse(f.get_ref())
                    .map_err(|e| self.error(&f.span(), e))
                    .ok(),
                None => Some(Format::from_path(&file_path)),
            };
            let column = feed.column.as_ref().and_then(|c| match c.get_ref() {
                RawColumn::Number(0) => {
                    self.error(&c.span(), "column numbers start at 1".into());
                    None
                }
                RawColumn::Number(n) => Some(Column::Number(*n as usize)),
                RawColumn::Name(n) => Some(Column::Name(n.clone())),
            });
            if format != Some(Format::Csv) {
                if let Some(c) = &feed.column {
                    self.error(&c.span(), "column is only read for format \"csv\"".into());
                }
                if let Some(h) = &feed.header {
                    self.error(&h.span(), "header is only read for format \"csv\"".into());
                }
            }
            if format != Some(Format::Json) {
                if let Some(k) = &feed.key {
                    self.error(&k.span(), "key is only read for format \"json\"".into());
                }
            }
            if let (Some(kind), Some(category), Some(severity), Some(format)) =
                (kind, category, severity, format)
            {
                feeds.push(FeedDecl {
                    name: name.clone(),
                    kind,
                    category,
                    severity,
                    source: FeedSource::File(FileSpec {
                        path: file_path,
                        format,
                        column,
                        header: feed.header.as_ref().is_none_or(|h| *h.get_ref()),
                        key: feed.key.as_ref().map(|k| k.get_ref().clone()),
                    }),
                });
            }
        }
        feeds
    }

    /// A certificate and key, read and checked now (so `check` and a
    /// reload refuse what could not be served); both or neither.
    fn tls(
        &mut self,
        cert: &Option<Spanned<String>>,
        key: &Option<Spanned<String>>,
        both_or_neither: &str,
    ) -> Option<TlsPaths> {
        match (cert, key) {
            (Some(cert), Some(key)) => {
                let paths = TlsPaths {
                    cert: self.resolve(cert.get_ref()),
                    key: self.resolve(key.get_ref()),
                };
                match crate::tls::server_config(&paths.cert, &paths.key) {
                    Ok(_) => Some(paths),
                    Err(e) => {
                        let span = match e.file {
                            crate::tls::TlsFile::Cert => cert.span(),
                            crate::tls::TlsFile::Key => key.span(),
                        };
                        self.error(&span, format!("TLS: {e}"));
                        None
                    }
                }
            }
            (Some(one), None) | (None, Some(one)) => {
                self.error(
                    &one.span(),
                    format!("tls_cert and tls_key go together: {both_or_neither}"),
                );
                None
            }
            (None, None) => None,
        }
    }

    /// `[http]` besides `listen`. Files are read now, so `check` reports a
    /// missing certificate or a broken token file, and a reload with one is
    /// refused.
    fn http(&mut self, raw: &RawHttp) -> HttpConfig {
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
        HttpConfig {
            tls,
            metrics_auth,
            api_tokens,
        }
    }

    /// Reads a token file; its problems are positioned in the token file
    /// itself (a missing file at the config key naming it).
    fn token_file(&mut self, file: &Spanned<String>, key: &str) -> Option<TokenFile> {
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
        match Tokens::parse(&text) {
            Ok(tokens) => Some(TokenFile { path, tokens }),
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

    /// What an `[[input]]` reads, with every key that its type does not
    /// read refused (a `path` on a journal input is a mistake, not a no-op).
    fn source(&mut self, input: &RawInput, span: Range<usize>) -> Option<SourceConfig> {
        let input_type = input.input_type.get_ref().as_str();
        let stray = |v: Option<Range<usize>>, key: &str| v.map(|s| (s, key.to_owned()));
        let mut strays = Vec::new();
        let is_file = INPUT_TYPES.contains(&input_type);
        let is_journal = input_type == "journal";
        let is_syslog = matches!(input_type, "syslog-udp" | "syslog-tcp" | "syslog-relp");
        if !is_file && !is_journal && !is_syslog {
            self.error(
                &input.input_type.span(),
                format!(
                    "unknown input type {input_type:?}; expected one of {}, {}",
                    INPUT_TYPES.join(", "),
                    SOURCE_TYPES.join(", ")
                ),
            );
            return None;
        }
        if !is_file {
            strays.extend(stray(input.path.as_ref().map(Spanned::span), "path"));
        }
        if !is_journal {
            strays.extend(stray(
                input.directory.as_ref().map(Spanned::span),
                "directory",
            ));
            strays.extend(stray(input.matches.as_ref().map(Spanned::span), "match"));
        }
        if !is_syslog {
            strays.extend(stray(input.listen.as_ref().map(Spanned::span), "listen"));
            strays.extend(stray(
                input.max_message_bytes.as_ref().map(Spanned::span),
                "max_message_bytes",
            ));
            strays.extend(stray(
                input.queue_bytes.as_ref().map(Spanned::span),
                "queue_bytes",
            ));
        } else {
            strays.extend(stray(input.start.as_ref().map(Spanned::span), "start"));
        }
        if !is_syslog || input_type == "syslog-udp" {
            strays.extend(stray(
                input.tls_cert.as_ref().map(Spanned::span),
                "tls_cert",
            ));
            strays.extend(stray(input.tls_key.as_ref().map(Spanned::span), "tls_key"));
        }
        for (s, key) in strays {
            self.error(
                &s,
                format!("{key} is not read by inputs of type {input_type:?}"),
            );
        }
        let start_at_end = match input.start.as_ref().map(|s| s.get_ref().as_str()) {
            None | Some("end") => true,
            Some("beginning") => false,
            Some(other) => {
                let span = input.start.as_ref().map(Spanned::span).unwrap_or(0..0);
                self.error(
                    &span,
                    format!("start {other:?}: expected \"end\" or \"beginning\""),
                );
                true
            }
        };
        if is_file {
            let Some(path) = &input.path else {
                self.error(&span, format!("input of type {input_type:?} needs a path"));
                return None;
            };
            let file_path = self.resolve(path.get_ref());
            let file_path = file_path.to_string_lossy().into_owned();
            if let Err(e) = glob::Pattern::new(&file_path) {
                self.error(&path.span(), format!("bad path pattern {file_path:?}: {e}"));
            }
            return Some(SourceConfig::Files {
                path: file_path,
                start_at_end,
            });
        }
        if is_journal {
            let directory = input.directory.as_ref().map(|d| self.resolve(d.get_ref()));
            let mut matches = Vec::new();
            for m in input.matches.iter().flat_map(|m| m.get_ref()) {
                let text = m.get_ref();
                if valid_journal_match(text) {
                    matches.push(text.clone());
                } else {
                    self.error(
                        &m.span(),
                        format!(
                            "journal match {text:?}: expected FIELD=value (FIELD in upper-case letters, digits and '_', not starting with a digit, e.g. \"_SYSTEMD_UNIT=ssh.service\") or \"+\""
                        ),
                    );
                }
            }
            return Some(SourceConfig::Journal {
                directory,
                matches,
                start_at_end,
            });
        }
        let transport = match input_type {
            "syslog-udp" => Transport::Udp,
            "syslog-relp" => Transport::Relp,
            _ => Transport::Tcp,
        };
        let Some(listen) = &input.listen else {
            self.error(
                &span,
                format!(
                    "input of type {input_type:?} needs listen = \"IP:PORT\" (e.g. \"0.0.0.0:514\")"
                ),
            );
            return None;
        };
        let listen = match listen.get_ref().parse::<SocketAddr>() {
            Ok(addr) if addr.port() != 0 => addr,
            Ok(_) => {
                self.error(
                    &listen.span(),
                    "listen: port 0 is not a port to give to senders".into(),
                );
                return None;
            }
            Err(e) => {
                self.error(
                    &listen.span(),
                    format!(
                        "listen address {:?}: {e} (expected IP:PORT, e.g. \"0.0.0.0:514\")",
                        listen.get_ref()
                    ),
                );
                return None;
            }
        };
        let max_message = self.count(
            &input.max_message_bytes,
            DEFAULT_MAX_MESSAGE,
            480,
            1 << 20,
            "max_message_bytes",
        );
        let queue_bytes = self.count(
            &input.queue_bytes,
            DEFAULT_QUEUE_BYTES,
            64 * 1024,
            1 << 30,
            "queue_bytes",
        );
        if queue_bytes < 2 * max_message {
            let span = input
                .queue_bytes
                .as_ref()
                .map_or(span.clone(), Spanned::span);
            self.error(
                &span,
                format!("queue_bytes {queue_bytes} must hold at least two messages of max_message_bytes ({max_message})"),
            );
        }
        let tls = self.tls(
            &input.tls_cert,
            &input.tls_key,
            "set both (TLS, RFC 5425) or neither (plain TCP)",
        );
        Some(SourceConfig::Syslog {
            transport,
            listen,
            max_message,
            queue_bytes,
            tls,
        })
    }

    fn pipeline(&mut self, raw: &RawPipeline) -> PipelineConfig {
        let d = PipelineConfig::default();
        let max_line = self.count(
            &raw.max_line_bytes,
            d.max_line,
            256,
            16 << 20,
            "max_line_bytes",
        );
        let batch_lines = self.count(&raw.batch_lines, d.batch_lines, 1, 1_000_000, "batch_lines");
        let max_keys = self.count(&raw.max_keys, d.max_keys, 1, 100_000_000, "max_keys");
        PipelineConfig {
            max_line,
            batch_lines,
            max_keys,
            // A new incident is committed as soon as the inputs are caught
            // up, whatever this says: it paces what only counts (and so what
            // is written to disk per line of a spread-out attack).
            batch_interval: self.duration(
                &raw.batch_interval,
                d.batch_interval,
                Duration::from_secs(10),
                "batch_interval",
            ),
            sweep_interval: self.duration(
                &raw.sweep_interval,
                d.sweep_interval,
                Duration::from_secs(60),
                "sweep_interval",
            ),
            rotated_grace: self.duration(
                &raw.rotated_grace,
                d.rotated_grace,
                Duration::from_secs(3600),
                "rotated_grace",
            ),
            max_lateness: self.duration(
                &raw.max_lateness,
                d.max_lateness,
                Duration::from_secs(24 * 3600),
                "max_lateness",
            ),
            max_clock_skew: self.duration(
                &raw.max_clock_skew,
                d.max_clock_skew,
                Duration::from_secs(24 * 3600),
                "max_clock_skew",
            ),
        }
    }

    fn resolve(&self, path: &str) -> PathBuf {
        let p = Path::new(path);
        if p.is_absolute() {
            p.to_path_buf()
        } else {
            self.base.join(p)
        }
    }
}

fn fallback_listen() -> SocketAddr {
    SocketAddr::from(([127, 0, 0, 1], 9717))
}

/// Names that end up in metric labels and file names: short and plain.
fn valid_name(name: &str, allow_upper_and_dots: bool) -> bool {
    !name.is_empty()
        && name.len() <= 64
        && name.bytes().all(|b| {
            b.is_ascii_lowercase()
                || b.is_ascii_digit()
                || b == b'-'
                || (allow_upper_and_dots && (b.is_ascii_uppercase() || b == b'_' || b == b'.'))
        })
}

/// A `journalctl` match: `FIELD=value` with a field name as journald
/// accepts it, or `+` (OR between groups). Nothing else reaches the command
/// line: no option can be smuggled in.
fn valid_journal_match(m: &str) -> bool {
    if m == "+" {
        return true;
    }
    let Some((field, _)) = m.split_once('=') else {
        return false;
    };
    !field.is_empty()
        && field.len() <= 64
        && !field.as_bytes()[0].is_ascii_digit()
        && field
            .bytes()
            .all(|b| b.is_ascii_uppercase() || b.is_ascii_digit() || b == b'_')
}

/// 1-based line and column (in characters) of a byte offset.
fn position(file: &str, text: &str, offset: usize) -> Position {
    let offset = offset.min(text.len());
    let before = text.get(..offset).unwrap_or(text);
    let line = before.matches('\n').count() as u64 + 1;
    let line_start = before.rfind('\n').map_or(0, |i| i + 1);
    let column = before[line_start..].chars().count() as u64 + 1;
    Position {
        file: file.to_owned(),
        line,
        column,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(text: &str) -> Result<Config, Vec<String>> {
        Config::parse(Path::new("/etc/canhgac/canhgac.toml"), text)
            .map_err(|e| e.0.iter().map(ToString::to_string).collect())
    }

    const MINIMAL: &str = r#"agency = "so-tttt-hanoi"

[[input]]
name = "auth"
path = "/var/log/auth.log"
type = "syslog"
"#;

    #[test]
    fn minimal_config_takes_defaults() {
        let c = parse(MINIMAL).expect("valid");
        assert_eq!(c.agency, "so-tttt-hanoi");
        assert_eq!(c.state_dir, PathBuf::from(DEFAULT_STATE_DIR));
        assert_eq!(c.listen.to_string(), DEFAULT_LISTEN);
        assert!(c.rules.builtin);
        assert_eq!(c.pipeline, PipelineConfig::default());
        assert_eq!(
            c.inputs,
            vec![InputConfig {
                name: "auth".into(),
                input_type: "syslog".into(),
                source: SourceConfig::Files {
                    path: "/var/log/auth.log".into(),
                    start_at_end: true,
                },
            }]
        );
        assert_eq!(c.db_path(), PathBuf::from("/var/lib/canhgac/canhgac.db"));
    }

    #[test]
    fn relative_paths_are_anchored_at_the_config_file() {
        let c = Config::parse(
            Path::new("demo/canhgac.toml"),
            &format!("{MINIMAL}\n[rules]\ndirs = [\"rules.d\"]\n")
                .replace("/var/log/auth.log", "logs/*.log")
                .replace("agency", "state_dir = \"state\"\nagency"),
        )
        .expect("valid");
        assert_eq!(c.state_dir, PathBuf::from("demo/state"));
        assert_eq!(c.rules.paths, vec![PathBuf::from("demo/rules.d")]);
        assert_eq!(
            c.inputs[0].source,
            SourceConfig::Files {
                path: "demo/logs/*.log".into(),
                start_at_end: true
            }
        );
    }

    #[test]
    fn every_error_names_file_line_column() {
        let text = r#"agency = "Bộ TT"
time_zone = "Asia/Hanoi_City"

[http]
listen = "localhost"

[pipeline]
batch_interval = "50s"
max_keys = 0

[[input]]
name = "auth"
path = "/var/log/auth.log"
type = "syslog"
start = "middle"

[[input]]
name = "auth"
path = "/var/log/nginx/*.log"
type = "iis"
"#;
        let errors = parse(text).expect_err("invalid");
        let expected = [
            "/etc/canhgac/canhgac.toml:1:10: agency id",
            "/etc/canhgac/canhgac.toml:2:13: unknown time zone",
            "/etc/canhgac/canhgac.toml:5:10: listen address",
            "/etc/canhgac/canhgac.toml:9:12: max_keys 0",
            "/etc/canhgac/canhgac.toml:8:18: batch_interval: at most 10s",
            "/etc/canhgac/canhgac.toml:15:9: start \"middle\"",
            "/etc/canhgac/canhgac.toml:18:8: input name \"auth\" used twice (first at /etc/canhgac/canhgac.toml:12:8)",
            "/etc/canhgac/canhgac.toml:20:8: unknown input type \"iis\"",
        ];
        assert_eq!(errors.len(), expected.len(), "{errors:#?}");
        for want in expected {
            assert!(
                errors.iter().any(|e| e.starts_with(want)),
                "missing {want:?} in {errors:#?}"
            );
        }
    }

    #[test]
    fn unknown_keys_and_syntax_errors_are_positioned() {
        let errors = parse(&format!("{MINIMAL}colour = \"red\"\n")).expect_err("unknown key");
        assert_eq!(errors.len(), 1);
        assert!(
            errors[0].starts_with("/etc/canhgac/canhgac.toml:7:1: unknown field `colour`"),
            "{errors:?}"
        );
        let errors = parse("agency = \"x\"\n[[input]\n").expect_err("syntax");
        assert!(
            errors[0].starts_with("/etc/canhgac/canhgac.toml:2:"),
            "{errors:?}"
        );
        let errors = parse("agency = \"x\"\n").expect_err("no inputs");
        assert!(errors[0].contains("no [[input]]"), "{errors:?}");
    }

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
        let write = |name: &str, text: &str| {
            std::fs::write(dir.path().join(name), text).expect("write");
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
        Config::parse(&dir.join("canhgac.toml"), &text)
            .map_err(|e| e.0.iter().map(ToString::to_string).collect())
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
    fn web_roots_and_their_errors() {
        let c = parse(&format!(
            "{MINIMAL}\n[integrity]\ndebounce = \"500ms\"\n\n[[webroot]]\nname = \"portal\"\npath = \"/var/www/portal\"\nexclude = [\"cache/**\"]\ndeploy_marker = \"/var/www/.deploying\"\ndeploy_windows = [\"Sat 22:00-02:00\"]\n"
        ))
        .expect("valid");
        assert_eq!(c.integrity.debounce, Duration::from_millis(500));
        let r = &c.integrity.roots[0];
        assert_eq!(r.path, PathBuf::from("/var/www/portal"));
        assert_eq!(r.exclude, ["cache/**"]);
        assert_eq!(r.url_prefix, "/");
        assert!(r.upload_dirs.iter().any(|u| u == "**/uploads"), "defaults");
        assert_eq!(r.deploy.windows.len(), 1);
        // A web root alone is enough to run.
        let only = "agency = \"a\"\n[[webroot]]\nname = \"w\"\npath = \"/srv/www\"\n";
        assert!(parse(only).is_ok());
        let errors = parse(&format!(
            "{MINIMAL}\n[[webroot]]\nname = \"auth\"\npath = \"/w\"\nexclude = [\"a/***\"]\nurl_prefix = \"x\"\ndeploy_windows = [\"Funday 01:00-02:00\"]\n[integrity]\nsignatures = [\"(unclosed\"]\n"
        ))
        .expect_err("invalid");
        for want in [
            ":9:8: web root name \"auth\" already used",
            ":11:11: exclude glob",
            ":12:14: url_prefix \"x\"",
            ":13:19: deploy window \"Funday",
            ":15:15: signature",
        ] {
            assert!(
                errors.iter().any(|e| e.contains(want)),
                "missing {want:?} in {errors:#?}"
            );
        }
    }

    #[test]
    fn feeds_are_declared_and_their_errors_positioned() {
        let c = parse(&format!(
            "{MINIMAL}\n[[feed]]\nname = \"c2\"\npath = \"feeds/c2.csv\"\nkind = \"ip\"\ncategory = \"malware\"\nseverity = \"critical\"\ncolumn = \"value\"\n"
        ))
        .expect("valid");
        let f = &c.feeds[0];
        assert_eq!(
            (f.name.as_str(), f.kind, f.category, f.severity),
            ("c2", FeedKind::Ip, Category::Malware, Severity::Critical)
        );
        let FeedSource::File(spec) = &f.source else {
            panic!("a file feed: {f:?}");
        };
        assert_eq!(spec.path, PathBuf::from("/etc/canhgac/feeds/c2.csv"));
        assert_eq!(
            (spec.format, spec.column.clone(), spec.header),
            (Format::Csv, Some(Column::Name("value".into())), true)
        );

        let text = format!(
            "{MINIMAL}\n[[feed]]\nname = \"Bad Name\"\npath = \"x.txt\"\nkind = \"ipv4\"\ncategory = \"spam\"\nseverity = \"high\"\nkey = \"ioc\"\n\n[[feed]]\nname = \"a\"\npath = \"a.json\"\nkind = \"url\"\ncategory = \"phishing\"\nseverity = \"low\"\ncolumn = 0\n"
        );
        let errors = parse(&text).expect_err("invalid");
        let expected = [
            "/etc/canhgac/canhgac.toml:9:8: feed name \"Bad Name\"",
            "/etc/canhgac/canhgac.toml:11:8: unknown feed kind `ipv4`",
            "/etc/canhgac/canhgac.toml:12:12: unknown category `spam`",
            "/etc/canhgac/canhgac.toml:14:7: key is only read for format \"json\"",
            "/etc/canhgac/canhgac.toml:22:10: column numbers start at 1",
            "/etc/canhgac/canhgac.toml:22:10: column is only read for format \"csv\"",
        ];
        assert_eq!(errors.len(), expected.len(), "{errors:#?}");
        for want in expected {
            assert!(
                errors.iter().any(|e| e.starts_with(want)),
                "missing {want:?} in {errors:#?}"
            );
        }
    }

    #[test]
    fn positions_count_characters() {
        let p = position("f", "a = 1\nbé = \"x\"\n", 11);
        assert_eq!((p.line, p.column), (2, 5));
    }
}
