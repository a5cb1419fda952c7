//! The daemon's configuration: one TOML file, validated whole, every problem
//! reported as `file:line:col: message` so a sysadmin can go straight to it.
//!
//! Relative paths (state directory, rule directories, input paths) are taken
//! relative to the config file's directory, so a config and the logs and rules
//! beside it can move together (the bundled demo relies on it).
//!
//! Each section has its room: its settings type, its TOML shape (`Raw*`)
//! and its validation: `inputs`, `http` (listen address, TLS,
//! credentials), `pipeline`, `feeds`, `integrity` (web roots). The shared
//! tools of validation (positions, bounded numbers, durations, paths) are
//! in `validator`. This file holds [`Config`], loading and the errors.

mod center;
mod feeds;
mod forward;
mod http;
mod inputs;
mod integrity;
mod nats;
mod organisation;
mod pipeline;
mod reporting;
mod validator;

use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use jiff::tz::TimeZone;
use serde::Deserialize;
use toml::Spanned;

use crate::feeds::FeedDecl;
use crate::integrity::settings::IntegrityConfig;
use crate::position::{At, Position, Problem, Problems};
use crate::rules::RuleSources;

pub use http::{HttpConfig, HttpLimits, MetricsAuth, TokenFile};
pub use inputs::{
    InputConfig, SourceConfig, DEFAULT_MAX_MESSAGE, DEFAULT_QUEUE_BYTES, SOURCE_TYPES,
};
pub use pipeline::PipelineConfig;

pub use crate::forms::{Organisation, SystemInfo};
pub use center::CenterConfig;
use feeds::RawFeed;
pub use forward::ForwardConfig;
use forward::RawForward;
use http::RawHttp;
use inputs::RawInput;
use integrity::{RawIntegrity, RawWebRoot};
pub use nats::{NatsAuth, NatsConfig};
use organisation::RawOrganisation;
use pipeline::RawPipeline;
use reporting::RawReporting;
pub use reporting::Reporting;
use validator::{valid_name, Validator};

pub const DEFAULT_PATH: &str = "/etc/canhgac/canhgac.toml";
pub const DEFAULT_STATE_DIR: &str = "/var/lib/canhgac";
pub const DEFAULT_LISTEN: &str = "127.0.0.1:9717";
/// The store's file name inside the state directory.
pub const DB_FILE: &str = "canhgac.db";

#[derive(Clone, Debug)]
pub struct Config {
    pub file: PathBuf,
    pub agency: String,
    /// The agency's name as its reports and forms write it ("Sở Thông tin
    /// và Truyền thông tỉnh Bắc Ninh"): the subject of the bulletin.
    pub agency_name: Option<String>,
    pub time_zone: TimeZone,
    /// As written, for logs and the API; "system" when not configured.
    pub time_zone_name: String,
    pub state_dir: PathBuf,
    pub rules: RuleSources,
    /// Reverse proxies in front of the web servers: for an access-log line
    /// from one of them, the client is the one `X-Forwarded-For` names.
    pub trusted_proxies: Vec<crate::network::Network>,
    pub listen: SocketAddr,
    /// Where `listen` is written; `None` when it is the default.
    pub listen_at: Option<At>,
    /// TLS and credentials of the HTTP side (`[http]` besides `listen`).
    pub http: HttpConfig,
    pub pipeline: PipelineConfig,
    pub inputs: Vec<InputConfig>,
    /// Inputs left out because the file their `unless_exists` names exists
    /// (the same lines are read there): name and that file.
    pub inputs_left_out: Vec<(String, PathBuf)>,
    /// IoC feeds (`[[feed]]`), in order. Their files are read by the
    /// daemon and `check`, not here: loading a config must stay cheap.
    pub feeds: Vec<FeedDecl>,
    /// Web-root integrity: `[integrity]` and the `[[webroot]]`s.
    pub integrity: IntegrityConfig,
    /// Who reports, about which system (`[organisation]`): the static
    /// fields of the Circular 20 forms.
    pub organisation: Organisation,
    /// The forms and the category → class map (`[reporting]`).
    pub reporting: Reporting,
    /// Incidents to the national center over NATS (`[forward]`).
    pub forward: Option<ForwardConfig>,
}

impl Config {
    pub fn db_path(&self) -> PathBuf {
        self.state_dir.join(DB_FILE)
    }

    /// The input that reads the same lines elsewhere while the file at
    /// `path` does not exist (its `unless_exists`): a missing auth.log is
    /// then expected, not a problem.
    pub fn stands_in_for(&self, path: &str) -> Option<&InputConfig> {
        self.inputs
            .iter()
            .find(|i| i.unless_exists.as_deref() == Some(Path::new(path)))
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
            Problems(vec![ConfigError {
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
        validated(path, text, needs, |v, raw: RawConfig| v.validate(path, raw))
    }
}

/// Reads `text` as the TOML shape `R` and validates it with `validate`:
/// every problem reported at its place in `path`.
fn validated<R: serde::de::DeserializeOwned, T>(
    path: &Path,
    text: &str,
    needs: Needs,
    validate: impl FnOnce(&mut Validator<'_>, R) -> T,
) -> Result<T, ConfigErrors> {
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
    let raw: R = match toml::from_str(text) {
        Ok(raw) => raw,
        Err(e) => {
            let span = e.span().unwrap_or(0..0);
            v.error(&span, e.message().trim_end().to_owned());
            return Err(Problems(v.errors));
        }
    };
    let config = validate(&mut v, raw);
    if v.errors.is_empty() {
        Ok(config)
    } else {
        Err(Problems(v.errors))
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
pub type ConfigError = Problem;
/// Every problem found in a config file.
pub type ConfigErrors = Problems;

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawConfig {
    agency: Spanned<String>,
    agency_name: Option<Spanned<String>>,
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
    #[serde(default)]
    organisation: RawOrganisation,
    #[serde(default)]
    reporting: RawReporting,
    forward: Option<Spanned<RawForward>>,
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

impl Validator<'_> {
    /// Every section, in the order their errors are reported.
    fn validate(&mut self, path: &Path, raw: RawConfig) -> Config {
        let agency = raw.agency.get_ref().clone();
        if agency.is_empty() {
            // The shipped config leaves it empty on purpose: incident ids
            // carry it for ever, so nothing is recorded under a placeholder.
            self.error(
                &raw.agency.span(),
                "agency is not set: write your agency's id as agreed with the national monitoring center (lower-case letters, digits and '-', e.g. \"so-tttt-hanoi\"), then start canhgac".into(),
            );
        } else if !valid_name(&agency, false) {
            self.error(
                &raw.agency.span(),
                format!("agency id {agency:?}: use lower-case letters, digits and '-' (at most 64), e.g. \"so-tttt-hanoi\""),
            );
        }
        let agency_name = raw.agency_name.as_ref().and_then(|name| {
            let text = name.get_ref().trim();
            if text.is_empty() || text.chars().count() > 200 || text.chars().any(char::is_control) {
                self.error(
                    &name.span(),
                    "agency_name: the agency's name as its reports write it, 1 to 200 characters on one line (e.g. \"Sở Thông tin và Truyền thông tỉnh Bắc Ninh\")".into(),
                );
                None
            } else {
                Some(text.to_owned())
            }
        });
        let (time_zone, time_zone_name) = self.time_zone(&raw.time_zone);
        let state_dir = self
            .resolve_optional(&raw.state_dir)
            .unwrap_or_else(|| PathBuf::from(DEFAULT_STATE_DIR));
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
        let listen = self.listen(&raw.http);
        let listen_at = raw
            .http
            .listen
            .as_ref()
            .map(|l| At(validator::position(&self.file, self.text, l.span().start)));
        let http = self.http(&raw.http);
        let pipeline = self.pipeline(&raw.pipeline);
        let (mut inputs, names) = self.inputs(&raw.inputs);
        let inputs_left_out = inputs::left_out(&mut inputs);
        let integrity = self.integrity(&raw, &names);
        if self.needs == Needs::Inputs && raw.inputs.is_empty() && raw.webroots.is_empty() {
            self.error(
                &raw.agency.span(),
                "no [[input]] nor [[webroot]] configured: canhgac would watch nothing".to_owned(),
            );
        }
        let feeds = self.feeds(&raw.feeds);
        let mut organisation = self.organisation(&raw.organisation);
        let reporting = self.reporting(&raw.reporting);
        let forward = self.forward(&raw.forward);
        if !raw.organisation.sets_deadline() {
            organisation.report_within_days = reporting.forms.initial.deadline_days;
        }
        Config {
            file: path.to_path_buf(),
            agency,
            agency_name,
            time_zone,
            time_zone_name,
            state_dir,
            rules,
            trusted_proxies,
            listen,
            listen_at,
            http,
            pipeline,
            inputs,
            inputs_left_out,
            feeds,
            integrity,
            organisation,
            reporting,
            forward,
        }
    }
}

#[cfg(test)]
mod tests;
