//! `[pipeline]`: how lines are read, batched and committed, and how late or
//! early an event may be dated and still count.

use std::time::Duration;

use serde::Deserialize;
use toml::Spanned;

use super::validator::Validator;
use crate::input::lines::DEFAULT_MAX_LINE;

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PipelineConfig {
    pub max_line: usize,
    /// A batch is committed after this many lines...
    pub batch_lines: usize,
    /// ...or this long after its first line, whichever comes first (a
    /// trickle of little log waits longer: see `daemon::commit`).
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

#[derive(Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawPipeline {
    pub(super) max_line_bytes: Option<Spanned<u64>>,
    pub(super) batch_lines: Option<Spanned<u64>>,
    pub(super) batch_interval: Option<Spanned<String>>,
    pub(super) max_keys: Option<Spanned<u64>>,
    pub(super) sweep_interval: Option<Spanned<String>>,
    pub(super) max_lateness: Option<Spanned<String>>,
    pub(super) max_clock_skew: Option<Spanned<String>>,
    pub(super) rotated_grace: Option<Spanned<String>>,
}

impl Validator<'_> {
    pub(super) fn pipeline(&mut self, raw: &RawPipeline) -> PipelineConfig {
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
}
