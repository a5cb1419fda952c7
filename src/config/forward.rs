//! `[forward]`: sending this agency's incidents to the national center over
//! NATS JetStream (see `crate::forward`).
//!
//! ```toml
//! [forward]
//! subject = "canhgac.incidents"       # the agency id is appended
//! heartbeat_subject = "canhgac.heartbeat"
//! heartbeat = "60s"
//! max_age = "7d"                      # pending changes older than this are dropped, counted
//! max_pending = 100000                # and the oldest beyond this many incidents
//! backfill = "30d"                    # when first enabled: incidents changed in the last 30 days
//!
//! [forward.nats]
//! servers = ["tls://center.example.vn:4222"]
//! credentials = "/etc/canhgac/center.creds"
//! tls_ca = "/etc/canhgac/center-ca.pem"
//! ```

use std::time::Duration;

use serde::Deserialize;
use toml::Spanned;

use super::nats::{NatsConfig, RawNats};
use super::validator::Validator;

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ForwardConfig {
    pub nats: NatsConfig,
    /// Incidents go to `<subject>.<agency>`.
    pub subject: String,
    /// Heartbeats go to `<heartbeat_subject>.<agency>`.
    pub heartbeat_subject: String,
    pub heartbeat: Duration,
    pub max_age: Duration,
    pub max_pending: u64,
    pub backfill: Duration,
}

pub const DEFAULT_SUBJECT: &str = "canhgac.incidents";
pub const DEFAULT_HEARTBEAT_SUBJECT: &str = "canhgac.heartbeat";

#[derive(Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawForward {
    nats: Option<RawNats>,
    subject: Option<Spanned<String>>,
    heartbeat_subject: Option<Spanned<String>>,
    heartbeat: Option<Spanned<String>>,
    max_age: Option<Spanned<String>>,
    max_pending: Option<Spanned<u64>>,
    backfill: Option<Spanned<String>>,
}

const DAY: u64 = 86_400;
const YEAR: Duration = Duration::from_secs(366 * DAY);

impl Validator<'_> {
    pub(super) fn forward(&mut self, raw: &Option<Spanned<RawForward>>) -> Option<ForwardConfig> {
        let spanned = raw.as_ref()?;
        let raw = spanned.get_ref();
        let nats = match &raw.nats {
            Some(n) => self.nats(n, "[forward.nats]"),
            None => {
                self.error(
                    &spanned.span(),
                    "[forward] needs [forward.nats] with the center's servers".to_owned(),
                );
                return None;
            }
        };
        let subject = self.subject(&raw.subject, DEFAULT_SUBJECT, "[forward] subject");
        let heartbeat_subject = self.subject(
            &raw.heartbeat_subject,
            DEFAULT_HEARTBEAT_SUBJECT,
            "[forward] heartbeat_subject",
        );
        Some(ForwardConfig {
            nats,
            subject,
            heartbeat_subject,
            heartbeat: self.duration(
                &raw.heartbeat,
                Duration::from_secs(60),
                Duration::from_secs(3600),
                "[forward] heartbeat",
            ),
            max_age: self.duration(
                &raw.max_age,
                Duration::from_secs(7 * DAY),
                YEAR,
                "[forward] max_age",
            ),
            max_pending: self.count(
                &raw.max_pending,
                100_000,
                1,
                100_000_000,
                "[forward] max_pending",
            ) as u64,
            backfill: self.duration(
                &raw.backfill,
                Duration::from_secs(30 * DAY),
                YEAR,
                "[forward] backfill",
            ),
        })
    }

    /// A NATS subject prefix: dot-separated tokens of letters, digits, `-`
    /// and `_` (no wildcards: the agency id is appended).
    pub(super) fn subject(
        &mut self,
        v: &Option<Spanned<String>>,
        default: &str,
        what: &str,
    ) -> String {
        let Some(v) = v else {
            return default.to_owned();
        };
        if valid_subject(v.get_ref()) {
            v.get_ref().clone()
        } else {
            self.error(
                &v.span(),
                format!("{what} {:?}: dot-separated words of letters, digits, '-' and '_' (e.g. \"{default}\")", v.get_ref()),
            );
            default.to_owned()
        }
    }
}

pub(super) fn valid_subject(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= 128
        && s.split('.').all(|t| {
            !t.is_empty()
                && t.bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
        })
}
