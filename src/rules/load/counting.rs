//! The parts of a rule that say how its events are counted: thresholds,
//! request rates, cooldowns, and the durations they are written in.

use jiff::SignedDuration;
use serde_saphyr::Spanned;

use super::Loader;
use crate::detect::Threshold;
use crate::event::DEFAULT_KEY_FIELD;
use crate::rules::spec::{RateSpec, RuleSpec, ThresholdSpec};
use crate::rules::Rate;

const DEFAULT_COOLDOWN: SignedDuration = SignedDuration::from_secs(600);
impl Loader {
    /// A request-rate rule: no patterns and no threshold of its own (every
    /// line counts), access-log types only (the client is the line's first
    /// word).
    pub(super) fn rate(
        &mut self,
        file: &str,
        r: &Spanned<RateSpec>,
        spec: &RuleSpec,
        id: &str,
    ) -> Option<Rate> {
        let at = r.referenced;
        if !spec.patterns.value.is_empty() {
            self.error(
                file,
                at,
                format!("rule `{id}` has `rate`: every line counts, so it has no patterns"),
            );
        }
        if spec.threshold.is_some() || spec.group.is_some() {
            self.error(
                file,
                at,
                format!(
                    "rule `{id}` has `rate`, which is its threshold: no `threshold` or `group`"
                ),
            );
        }
        if let Some(t) = spec
            .types
            .value
            .iter()
            .find(|t| !crate::input::types::is_access_log(&t.value))
        {
            self.error(
                file,
                t.referenced,
                format!(
                    "rule `{id}` has `rate`, which counts access-log lines: type `{}` has none",
                    t.value
                ),
            );
        }
        if r.value.count.value == 0 {
            self.error(
                file,
                r.value.count.referenced,
                "rate count must be at least 1".into(),
            );
        }
        let window = self.duration(file, &r.value.window)?;
        if window <= SignedDuration::ZERO {
            self.error(
                file,
                r.value.window.referenced,
                "rate window must be positive".into(),
            );
            return None;
        }
        Some(Rate {
            count: r.value.count.value,
            window,
        })
    }

    pub(super) fn cooldown(
        &mut self,
        file: &str,
        text: Option<&Spanned<String>>,
    ) -> SignedDuration {
        match text {
            Some(c) => self.duration(file, c).unwrap_or(DEFAULT_COOLDOWN),
            None => DEFAULT_COOLDOWN,
        }
    }

    /// A threshold, its fields checked by `captured` (every pattern of the
    /// rule captures the name).
    pub(super) fn threshold(
        &mut self,
        file: &str,
        t: &ThresholdSpec,
        id: &str,
        captured: &dyn Fn(&str) -> bool,
    ) -> Option<Threshold> {
        let count = t.count.value;
        if count == 0 {
            self.error(
                file,
                t.count.referenced,
                "threshold count must be at least 1".into(),
            );
        }
        let window = self.duration(file, &t.window);
        let mut by = Vec::new();
        if let Some(fields) = &t.by {
            if fields.value.0.is_empty() {
                self.error(
                    file,
                    fields.referenced,
                    format!("threshold `by` of `{id}` names no field"),
                );
            }
            for f in &fields.value.0 {
                // `src_ip` may be `src_host` in some patterns: checked,
                // pattern by pattern, with the other keys in `resolve`.
                if f != DEFAULT_KEY_FIELD && !captured(f) {
                    self.error(
                        file,
                        fields.referenced,
                        format!("threshold `by: {f}` names a field that not every pattern of rule `{id}` captures"),
                    );
                }
                by.push(f.clone());
            }
        }
        let distinct = t.distinct.as_ref().map(|f| {
            if !captured(&f.value) {
                self.error(
                    file,
                    f.referenced,
                    format!(
                        "threshold `distinct: {}` names a field that not every pattern of rule `{id}` captures",
                        f.value
                    ),
                );
            }
            f.value.clone()
        });
        Some(Threshold {
            count,
            window: window?,
            by,
            distinct,
        })
    }

    pub(super) fn duration(
        &mut self,
        file: &str,
        text: &Spanned<String>,
    ) -> Option<SignedDuration> {
        match crate::duration::parse(&text.value) {
            Ok(d) => Some(d),
            Err(message) => {
                self.error(file, text.referenced, message);
                None
            }
        }
    }
}
