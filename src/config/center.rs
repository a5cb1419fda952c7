//! The national center's config (`canhgac center --config center.toml`):
//! its own file, since the center watches no logs.
//!
//! ```toml
//! center = "ncsc"                     # the center's id (its store's agency)
//! name = "Trung tâm Giám sát an toàn không gian mạng quốc gia"
//! state_dir = "/var/lib/canhgac-center"
//! time_zone = "Asia/Ho_Chi_Minh"
//! listen = "127.0.0.1:9718"           # /metrics and /healthz
//! silent_after = "15m"                # an agency with no heartbeat for this long is silent
//!
//! [nats]                              # as [forward.nats]
//! servers = ["nats://127.0.0.1:4222"]
//!
//! [stream]
//! name = "CANHGAC"                   # incident changes, kept max_age
//! heartbeat_stream = "CANHGAC_HEARTBEATS"   # each agency's last heartbeat only
//! incidents_subject = "canhgac.incidents"
//! heartbeat_subject = "canhgac.heartbeat"
//! duplicate_window = "24h"
//! max_age = "7d"                      # retention of the stream itself (a center outage it rides out)
//! consumer = "canhgac-center"         # the durable pull consumer
//! ```

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use jiff::tz::TimeZone;
use serde::Deserialize;
use toml::Spanned;

use super::forward::{DEFAULT_HEARTBEAT_SUBJECT, DEFAULT_SUBJECT};
use super::nats::{NatsConfig, RawNats};
use super::validator::{valid_name, Validator};
use super::{validated, ConfigError, ConfigErrors, Needs, Problems};
use crate::position::Position;

pub const CENTER_DB_FILE: &str = "center.db";

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CenterConfig {
    pub file: PathBuf,
    pub center: String,
    pub name: Option<String>,
    pub state_dir: PathBuf,
    pub time_zone: TimeZone,
    pub time_zone_name: String,
    pub listen: SocketAddr,
    pub silent_after: Duration,
    pub nats: NatsConfig,
    pub stream: StreamConfig,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct StreamConfig {
    pub name: String,
    /// The stream of heartbeats: each agency's last one only.
    pub heartbeat_stream: String,
    pub incidents_subject: String,
    pub heartbeat_subject: String,
    pub duplicate_window: Duration,
    pub max_age: Duration,
    pub consumer: String,
}

impl CenterConfig {
    pub fn db_path(&self) -> PathBuf {
        self.state_dir.join(CENTER_DB_FILE)
    }

    pub fn load(path: &Path) -> Result<CenterConfig, ConfigErrors> {
        let text = std::fs::read_to_string(path).map_err(|e| {
            Problems(vec![ConfigError {
                pos: Position {
                    file: path.display().to_string(),
                    line: 1,
                    column: 1,
                },
                message: format!("cannot read config: {e}"),
            }])
        })?;
        CenterConfig::parse(path, &text)
    }

    pub fn parse(path: &Path, text: &str) -> Result<CenterConfig, ConfigErrors> {
        validated(path, text, Needs::Settings, |v, raw: RawCenter| {
            v.center(path, raw)
        })
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawCenter {
    center: Spanned<String>,
    name: Option<Spanned<String>>,
    state_dir: Option<Spanned<String>>,
    time_zone: Option<Spanned<String>>,
    listen: Option<Spanned<String>>,
    silent_after: Option<Spanned<String>>,
    nats: RawNats,
    #[serde(default)]
    stream: RawStream,
}

#[derive(Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawStream {
    name: Option<Spanned<String>>,
    heartbeat_stream: Option<Spanned<String>>,
    incidents_subject: Option<Spanned<String>>,
    heartbeat_subject: Option<Spanned<String>>,
    duplicate_window: Option<Spanned<String>>,
    max_age: Option<Spanned<String>>,
    consumer: Option<Spanned<String>>,
}

const DAY: Duration = Duration::from_secs(86_400);

impl Validator<'_> {
    fn center(&mut self, path: &Path, raw: RawCenter) -> CenterConfig {
        let center = raw.center.get_ref().clone();
        if !valid_name(&center, false) {
            self.error(
                &raw.center.span(),
                format!("center {center:?}: use lower-case letters, digits and '-' (at most 64), e.g. \"ncsc\""),
            );
        }
        let (time_zone, time_zone_name) = self.time_zone(&raw.time_zone);
        let listen = match &raw.listen {
            Some(l) => l.get_ref().parse().unwrap_or_else(|e| {
                self.error(
                    &l.span(),
                    format!("listen {:?}: {e} (expected IP:PORT)", l.get_ref()),
                );
                default_listen()
            }),
            None => default_listen(),
        };
        let mut stream_name = |v: &Option<Spanned<String>>, default: &str, key: &str| match v {
            Some(n) if !valid_stream_name(n.get_ref()) => {
                self.error(
                    &n.span(),
                    format!("[stream] {key}: letters, digits, '-' and '_' (at most 64)"),
                );
                default.to_owned()
            }
            Some(n) => n.get_ref().clone(),
            None => default.to_owned(),
        };
        let name = stream_name(&raw.stream.name, "CANHGAC", "name");
        let consumer = stream_name(&raw.stream.consumer, "canhgac-center", "consumer");
        let heartbeat_stream = stream_name(
            &raw.stream.heartbeat_stream,
            "CANHGAC_HEARTBEATS",
            "heartbeat_stream",
        );
        let stream = StreamConfig {
            name,
            heartbeat_stream,
            incidents_subject: self.subject(
                &raw.stream.incidents_subject,
                DEFAULT_SUBJECT,
                "[stream] incidents_subject",
            ),
            heartbeat_subject: self.subject(
                &raw.stream.heartbeat_subject,
                DEFAULT_HEARTBEAT_SUBJECT,
                "[stream] heartbeat_subject",
            ),
            duplicate_window: self.duration(
                &raw.stream.duplicate_window,
                DAY,
                7 * DAY,
                "[stream] duplicate_window",
            ),
            max_age: self.duration(&raw.stream.max_age, 7 * DAY, 366 * DAY, "[stream] max_age"),
            consumer,
        };
        if stream.duplicate_window > stream.max_age {
            self.error(
                &raw.center.span(),
                "[stream] duplicate_window is longer than max_age".into(),
            );
        }
        CenterConfig {
            file: path.to_path_buf(),
            center,
            name: raw.name.map(|n| n.into_inner()),
            state_dir: self
                .resolve_optional(&raw.state_dir)
                .unwrap_or_else(|| PathBuf::from("/var/lib/canhgac-center")),
            time_zone,
            time_zone_name,
            listen,
            silent_after: self.duration(
                &raw.silent_after,
                Duration::from_secs(15 * 60),
                366 * DAY,
                "silent_after",
            ),
            nats: self.nats(&raw.nats, "[nats]"),
            stream,
        }
    }
}

fn default_listen() -> SocketAddr {
    SocketAddr::from(([127, 0, 0, 1], 9718))
}

fn valid_stream_name(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= 64
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_and_errors_at_their_place() {
        let ok = CenterConfig::parse(
            Path::new("/etc/center.toml"),
            "center = \"ncsc\"\n[nats]\nservers = [\"nats://127.0.0.1:4222\"]\n",
        )
        .expect("valid");
        assert_eq!(ok.stream.name, "CANHGAC");
        assert_eq!(ok.stream.duplicate_window, DAY);
        assert_eq!(ok.db_path(), Path::new("/var/lib/canhgac-center/center.db"));
        let bad = CenterConfig::parse(
            Path::new("c.toml"),
            "center = \"NCSC\"\n[nats]\nservers = [\"http://x\"]\n[stream]\nduplicate_window = \"9d\"\n",
        )
        .expect_err("invalid")
        .to_string();
        assert!(bad.contains("c.toml:1:10: center \"NCSC\""), "{bad}");
        assert!(
            bad.contains("c.toml:3:12: [nats]: server \"http://x\""),
            "{bad}"
        );
        assert!(
            bad.contains("c.toml:5:20: [stream] duplicate_window: at most"),
            "{bad}"
        );
    }
}
