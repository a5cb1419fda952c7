//! What the detector knows of one rule, and the key and weight of an event
//! under it.

use std::borrow::Cow;

use jiff::SignedDuration;
use serde::{Deserialize, Serialize};

use crate::event::{Event, Fields, DEFAULT_KEY_FIELD, HOST_KEY_FIELD};

/// A number in the line saying how many attempts it reports (`message
/// repeated 5 times`, `3 incorrect password attempts`): the event counts
/// that many. Absent, empty or not a number: one.
pub const ATTEMPTS_FIELD: &str = "attempts";
/// The process that wrote the line; with a rule's `evidence` kind it tells
/// which lines describe the same attempts.
pub const PID_FIELD: &str = "pid";
/// Most attempts one line may claim: the number is the log's word, and a
/// forged line must not make one event worth millions.
pub(super) const MAX_ATTEMPTS_PER_LINE: u64 = 1000;

/// When repeated events of one key become an incident.
///
/// `by` lives here, as in the rule format, which allows `by` only inside
/// `threshold`: a rule without a threshold is always keyed on `src_ip`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Threshold {
    /// Events (or distinct values) needed within `window`. 0 is read as 1.
    pub count: u32,
    /// How far back from a key's newest event the count looks. Events with
    /// time > newest - window count. A non-positive window is read as 1ns
    /// (only simultaneous events count together).
    pub window: SignedDuration,
    /// Fields whose values, together, are the key. Empty means `src_ip`,
    /// or `src_host` for an event whose log names the client only by name.
    pub by: Vec<String>,
    /// Count distinct values of this field instead of events.
    pub distinct: Option<String>,
}

/// What the detector needs to know of one rule.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Policy {
    pub threshold: Option<Threshold>,
    /// Quiet time (event time) after which a key's incident is over. A
    /// negative cooldown is read as zero.
    pub cooldown: SignedDuration,
    /// Merge class. Rules with the same `Some(class)` share incidents per
    /// key: a rule whose key reaches its threshold while another rule of the
    /// class has an incident open and live for that key joins it instead of
    /// opening its own. `None` never merges.
    #[serde(default)]
    pub merge: Option<u32>,
    /// The rule (a group) whose counter and incidents this rule's events go
    /// to, under that rule's policy; `None`: the rule's own.
    #[serde(default)]
    pub counts_toward: Option<usize>,
    /// The kind of evidence this rule's lines are (see [`ATTEMPTS_FIELD`]
    /// and [`PID_FIELD`]): within one process and key, the attempts counted
    /// are the most of any one kind, not the sum over kinds.
    #[serde(default)]
    pub evidence: Option<u8>,
    /// How severe the rule's incidents are (higher: worse). A rule joins
    /// another's open incident of its merge class only if it is no more
    /// severe: a critical finding never hides inside a lesser incident.
    #[serde(default)]
    pub rank: u8,
}

pub(super) fn normalise(mut p: Policy) -> Policy {
    if p.cooldown.is_negative() {
        p.cooldown = SignedDuration::ZERO;
    }
    if let Some(t) = &mut p.threshold {
        t.count = t.count.max(1);
        if t.window <= SignedDuration::ZERO {
            t.window = SignedDuration::from_nanos(1);
        }
    }
    p
}

/// The key of an event under `policy`: its `by` fields joined by a space
/// (the first field's value alone, borrowed, when there is one), or the
/// client's address, or its host name when the log gives only that.
pub(super) fn key_of<'e>(policy: &Policy, fields: &'e Fields) -> Cow<'e, str> {
    let by = policy.threshold.as_ref().map_or(&[][..], |t| &t.by[..]);
    match by {
        [] => Cow::Borrowed(client_key(fields)),
        [one] if one == DEFAULT_KEY_FIELD => Cow::Borrowed(client_key(fields)),
        [one] => Cow::Borrowed(fields.get(one).unwrap_or("")),
        many => {
            let values: Vec<&str> = many.iter().map(|f| fields.get(f).unwrap_or("")).collect();
            Cow::Owned(values.join(" "))
        }
    }
}

/// The client an event names: its address, or its host name when the log
/// names it only so.
fn client_key(fields: &Fields) -> &str {
    fields
        .get(DEFAULT_KEY_FIELD)
        .filter(|v| !v.is_empty())
        .or_else(|| fields.get(HOST_KEY_FIELD))
        .unwrap_or("")
}

/// How many attempts an event stands for: its `attempts` field, within
/// reason, or one.
pub(super) fn attempts_of(ev: &Event) -> u64 {
    ev.field(ATTEMPTS_FIELD)
        .and_then(|n| n.parse::<u64>().ok())
        .map_or(1, |n| n.clamp(1, MAX_ATTEMPTS_PER_LINE))
}
