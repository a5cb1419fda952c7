//! The detector's state as the store keeps it: a header and one row per key, so that a
//! commit writes only the keys that changed (see the `daemon` module docs on cost), and a
//! restart or reload under another rule set renumbers what was stored.

use std::sync::Arc;

use serde::{Deserialize, Serialize};

use super::signed;
use crate::analyze::{Analyzer, Matchers};
use crate::config::Config;
use crate::config::PipelineConfig;
use crate::detect::{Changes, Detector, RateCount, SavedKey, Snapshot};
use crate::integrity::flagged::FlaggedScripts;
use crate::rules::RuleSet;
use crate::store::{StateRow, StoreError};

/// The detector as stored: with the rule ids its indices refer to, so a
/// restart or reload with another rule set can renumber it.
#[derive(Serialize, Deserialize)]
pub(super) struct DetectorState {
    pub(super) rules: Vec<String>,
    pub(super) snapshot: Snapshot,
    /// The keys are in the store's key rows, not in `snapshot` (which then
    /// holds everything else). A state from before key rows holds them all.
    #[serde(default)]
    pub(super) keyed: bool,
}

/// The stored rows hold more than this many times the live keys (plus
/// [`COMPACT_SLACK`]) before a commit rewrites them from the live keys:
/// each rewrite is paid for by as many changed keys as it writes.
pub(super) const COMPACT_FACTOR: u64 = 2;

pub(super) const COMPACT_SLACK: u64 = 10_000;

/// A key row's state: the key's place in the eviction order and its state.
pub(super) type KeyRow = (u64, crate::detect::KeyState);

/// A stored detector: the header and its key rows, taken together. Rows
/// that cannot be read are left out (and counted).
pub(super) fn stored_snapshot(
    header: &[u8],
    rows: &[StateRow],
) -> Result<(DetectorState, usize), String> {
    let mut state: DetectorState = serde_json::from_slice(header).map_err(|e| e.to_string())?;
    let mut unreadable = 0;
    if state.keyed {
        for row in rows {
            let Some(blob) = &row.state else { continue };
            let rule = row.rule as usize;
            let read = match row.kind {
                0 => serde_json::from_slice::<KeyRow>(blob).map(|(generation, s)| {
                    state.snapshot.keys.push(SavedKey {
                        rule,
                        key: row.key.clone(),
                        state: s,
                        generation,
                    })
                }),
                _ => serde_json::from_slice::<RateCount>(blob)
                    .map(|c| state.snapshot.rates.push((rule, row.key.clone(), c))),
            };
            if read.is_err() {
                unreadable += 1;
            }
        }
    }
    Ok((state, unreadable))
}

/// Rows for `changes`: each key or client with its state, or none to say
/// it is gone. (Open incidents among them lose their sample and fields:
/// see below.)
pub(super) fn state_rows(changes: &mut Changes) -> Result<Vec<StateRow>, StoreError> {
    let mut rows = Vec::with_capacity(changes.keys.len() + changes.rates.len());
    let rule_no = |rule: usize| {
        u32::try_from(rule).map_err(|_| StoreError::Invalid(format!("rule index {rule}")))
    };
    let json =
        |e: serde_json::Error| StoreError::Invalid(format!("cannot serialise detector state: {e}"));
    for (rule, key, saved) in &mut changes.keys {
        let state = match saved {
            Some(k) => {
                // Stored with the incident's row, written when it opened:
                // a key row of an open incident stays as small as a count's.
                if let Some(inc) = k.state.open_incident_mut() {
                    inc.sample = String::new();
                    inc.fields = Vec::new();
                }
                Some(serde_json::to_vec(&(k.generation, &k.state)).map_err(json)?)
            }
            None => None,
        };
        rows.push(StateRow {
            kind: 0,
            rule: rule_no(*rule)?,
            key: key.clone(),
            state,
        });
    }
    for (rule, client, count) in &mut changes.rates {
        let state = match count {
            Some(c) => Some(serde_json::to_vec(c).map_err(json)?),
            None => None,
        };
        rows.push(StateRow {
            kind: 1,
            rule: rule_no(*rule)?,
            key: client.clone(),
            state,
        });
    }
    Ok(rows)
}

/// Every key of a snapshot, as the changes whose rows replace all stored
/// ones.
pub(super) fn all_changes(snapshot: Snapshot) -> Changes {
    Changes {
        keys: snapshot
            .keys
            .into_iter()
            .map(|k| (k.rule, k.key.clone(), Some(k)))
            .collect(),
        rates: snapshot
            .rates
            .into_iter()
            .map(|(rule, client, c)| (rule, client, Some(c)))
            .collect(),
    }
}

/// A detector for `rules` from a stored or live snapshot taken under the
/// rule ids `old_ids`, never numbering incidents at or below `floor`.
pub(super) fn rebuild_detector(
    rules: &RuleSet,
    pipeline: &PipelineConfig,
    old_ids: &[String],
    mut snapshot: Snapshot,
    floor: u64,
) -> Detector {
    snapshot.renumber(|old| old_ids.get(old).and_then(|id| rules.by_id(id)));
    snapshot.next_id = snapshot.next_id.max(floor + 1);
    let mut d = Detector::restore(rules.policies(), pipeline.max_keys, snapshot);
    d.set_lateness(signed(pipeline.max_lateness));
    d.track_changes();
    d
}

/// The analyzer of the daemon, as `config` sets it up.
pub(super) fn new_analyzer(
    config: &Config,
    rules: Arc<RuleSet>,
    matchers: Matchers,
    detector: Detector,
    flagged: &FlaggedScripts,
) -> Analyzer {
    let mut analyzer = Analyzer::new(rules, detector);
    analyzer.set_matchers(matchers);
    analyzer.set_trusted_proxies(config.trusted_proxies.clone());
    analyzer.set_flagged_scripts(flagged.clone());
    analyzer.set_clock_skew(signed(config.pipeline.max_clock_skew));
    analyzer
}
