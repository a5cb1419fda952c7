//! What a message from the stream is: an incident, a heartbeat, or
//! something the center refuses, and why. Pure, so every refusal is
//! tested without a broker.
//!
//! The agency is the last token of the subject, which the broker's
//! permissions tie to the agency's credentials; a message whose body names
//! another agency is refused, so no agency can write another's figures.

use crate::broker::Heartbeat;
use crate::category::{Category, Severity};
use crate::store::{HeartbeatRecord, IncidentMessage};

/// Longest uid, rule id or key accepted (an agency's are far shorter).
const MAX_ID: usize = 256;

#[derive(Debug, PartialEq)]
pub enum Inbound {
    Incident(Box<IncidentMessage>),
    Heartbeat(HeartbeatRecord),
    Refused(Refusal),
}

/// Why a message was refused: the `reason` label of
/// `canhgac_center_refused_total`, a fixed set.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Refusal {
    /// Not `<incidents or heartbeat subject>.<agency id>`.
    Subject,
    /// Not the JSON of an incident or heartbeat.
    Malformed,
    /// The body names another agency than the subject.
    AgencyMismatch,
    /// A category, severity, status or id outside what canhgac writes.
    Invalid,
}

impl Refusal {
    pub const ALL: [Refusal; 4] = [
        Refusal::Subject,
        Refusal::Malformed,
        Refusal::AgencyMismatch,
        Refusal::Invalid,
    ];

    pub fn label(self) -> &'static str {
        match self {
            Refusal::Subject => "subject",
            Refusal::Malformed => "malformed",
            Refusal::AgencyMismatch => "agency_mismatch",
            Refusal::Invalid => "invalid",
        }
    }
}

/// The subjects the center reads, without their agency token.
pub struct Subjects<'a> {
    pub incidents: &'a str,
    pub heartbeat: &'a str,
}

/// Reads one message. `published_us`: when the broker stored it.
pub fn classify(
    subjects: &Subjects<'_>,
    subject: &str,
    payload: &[u8],
    published_us: i64,
) -> Inbound {
    let agency_of = |prefix: &str| {
        subject
            .strip_prefix(prefix)
            .and_then(|rest| rest.strip_prefix('.'))
            .filter(|a| valid_agency(a))
    };
    if let Some(agency) = agency_of(subjects.incidents) {
        let Ok(m) = serde_json::from_slice::<IncidentMessage>(payload) else {
            return Inbound::Refused(Refusal::Malformed);
        };
        if m.agency != agency {
            return Inbound::Refused(Refusal::AgencyMismatch);
        }
        if !valid_incident(&m) {
            return Inbound::Refused(Refusal::Invalid);
        }
        return Inbound::Incident(Box::new(m));
    }
    if let Some(agency) = agency_of(subjects.heartbeat) {
        let Ok(json) = serde_json::from_slice::<serde_json::Value>(payload) else {
            return Inbound::Refused(Refusal::Malformed);
        };
        let Ok(beat) = serde_json::from_value::<Heartbeat>(json.clone()) else {
            return Inbound::Refused(Refusal::Malformed);
        };
        if beat.agency != agency {
            return Inbound::Refused(Refusal::AgencyMismatch);
        }
        let name = beat
            .name
            .filter(|n| n.chars().count() <= 200 && !n.chars().any(char::is_control));
        return Inbound::Heartbeat(HeartbeatRecord {
            agency: agency.to_owned(),
            name,
            at_us: published_us,
            json,
        });
    }
    Inbound::Refused(Refusal::Subject)
}

/// An agency id as canhgac's config accepts it.
fn valid_agency(a: &str) -> bool {
    !a.is_empty()
        && a.len() <= 64
        && a.bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
}

fn valid_incident(m: &IncidentMessage) -> bool {
    let short = |s: &str| !s.is_empty() && s.len() <= MAX_ID;
    short(&m.uid)
        && short(&m.rule)
        && m.key.len() <= MAX_ID
        && m.revision > 0
        && m.events > 0
        && i64::try_from(m.events).is_ok()
        && i64::try_from(m.revision).is_ok()
        && m.first_seen_us <= m.last_seen_us
        && m.category.parse::<Category>().is_ok()
        && m.severity.parse::<Severity>().is_ok()
        && ["new", "acknowledged", "handled", "false-positive"].contains(&m.status.as_str())
        && m.fields.is_object()
}

#[cfg(test)]
mod tests {
    use super::*;

    const SUBJECTS: Subjects<'static> = Subjects {
        incidents: "canhgac.incidents",
        heartbeat: "canhgac.heartbeat",
    };

    fn incident(agency: &str) -> IncidentMessage {
        IncidentMessage {
            schema: 1,
            agency: agency.into(),
            uid: format!("{agency}-0190"),
            revision: 1,
            rule: "ssh-brute-force".into(),
            category: "bruteforce".into(),
            severity: "medium".into(),
            key: "203.0.113.7".into(),
            src_ip: Some("203.0.113.7".into()),
            input: Some("auth".into()),
            first_seen_us: 1,
            last_seen_us: 2,
            events: 5,
            open: true,
            status: "new".into(),
            status_changed_us: None,
            reported_us: None,
            sample: "Failed password".into(),
            fields: serde_json::json!({"src_ip": "203.0.113.7"}),
            created_us: 3,
            committed_us: 4,
        }
    }

    fn classify_incident(subject: &str, m: &IncidentMessage) -> Inbound {
        classify(&SUBJECTS, subject, &serde_json::to_vec(m).expect("json"), 0)
    }

    #[test]
    fn incidents_of_the_subjects_agency_are_taken() {
        let m = incident("so-a");
        assert_eq!(
            classify_incident("canhgac.incidents.so-a", &m),
            Inbound::Incident(Box::new(m))
        );
    }

    #[test]
    fn refusals_have_their_reason() {
        let m = incident("so-a");
        let refused = |subject: &str, m: &IncidentMessage| match classify_incident(subject, m) {
            Inbound::Refused(r) => Some(r),
            _ => None,
        };
        assert_eq!(
            refused("canhgac.incidents.so-b", &m),
            Some(Refusal::AgencyMismatch)
        );
        assert_eq!(refused("canhgac.incidents", &m), Some(Refusal::Subject));
        assert_eq!(
            refused("canhgac.incidents.SO-A", &m),
            Some(Refusal::Subject)
        );
        assert_eq!(
            refused("canhgac.incidents.so-a.x", &m),
            Some(Refusal::Subject)
        );
        assert_eq!(refused("other.so-a", &m), Some(Refusal::Subject));
        for broken in [
            IncidentMessage {
                category: "made-up".into(),
                ..m.clone()
            },
            IncidentMessage {
                severity: "huge".into(),
                ..m.clone()
            },
            IncidentMessage {
                status: "closed".into(),
                ..m.clone()
            },
            IncidentMessage {
                revision: 0,
                ..m.clone()
            },
            IncidentMessage {
                events: u64::MAX,
                ..m.clone()
            },
            IncidentMessage {
                first_seen_us: 9,
                ..m.clone()
            },
            IncidentMessage {
                uid: String::new(),
                ..m.clone()
            },
            IncidentMessage {
                fields: serde_json::json!([1]),
                ..m.clone()
            },
        ] {
            assert_eq!(
                refused("canhgac.incidents.so-a", &broken),
                Some(Refusal::Invalid),
                "{broken:?}"
            );
        }
        assert_eq!(
            classify(&SUBJECTS, "canhgac.incidents.so-a", b"{not json", 0),
            Inbound::Refused(Refusal::Malformed)
        );
    }

    #[test]
    fn heartbeats_take_the_brokers_time() {
        let beat = Heartbeat {
            schema: 1,
            agency: "so-a".into(),
            name: Some("Sở A".into()),
            version: "0.1.0".into(),
            rules_digest: "abc".into(),
            inputs_behind_bytes: 0,
            outbox_pending: 3,
            outbox_oldest_us: None,
            outbox_dropped: 0,
            sent_us: 99,
        };
        let payload = serde_json::to_vec(&beat).expect("json");
        match classify(&SUBJECTS, "canhgac.heartbeat.so-a", &payload, 1234) {
            Inbound::Heartbeat(h) => {
                assert_eq!((h.agency.as_str(), h.at_us), ("so-a", 1234));
                assert_eq!(h.name.as_deref(), Some("Sở A"));
            }
            other => panic!("{other:?}"),
        }
        assert_eq!(
            classify(&SUBJECTS, "canhgac.heartbeat.so-b", &payload, 0),
            Inbound::Refused(Refusal::AgencyMismatch)
        );
    }
}
