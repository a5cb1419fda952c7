//! `[organisation]` and `[organisation.system]`: who reports, and about
//! which system, in the national coordinator's forms ([`crate::forms`]).
//! What canhgac cannot know from logs is written here once; every field is
//! text a person typed, checked for length and for being one line (or a
//! list of lines), never interpreted.

use serde::Deserialize;
use toml::Spanned;

use super::validator::Validator;
use crate::forms::{Organisation, SystemInfo};

/// Longest text of one field.
const MAX_FIELD_CHARS: usize = 300;
/// Most entries of a list field.
const MAX_LIST: usize = 64;

#[derive(Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawOrganisation {
    name: Option<Spanned<String>>,
    address: Option<Spanned<String>>,
    contact_name: Option<Spanned<String>>,
    contact_role: Option<Spanned<String>>,
    contact_phone: Option<Spanned<String>>,
    contact_email: Option<Spanned<String>>,
    #[serde(default)]
    recipients: Vec<Spanned<String>>,
    report_within_days: Option<Spanned<u64>>,
    #[serde(default)]
    system: RawSystem,
}

#[derive(Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawSystem {
    name: Option<Spanned<String>>,
    operator: Option<Spanned<String>>,
    governing_body: Option<Spanned<String>>,
    #[serde(default)]
    domains: Vec<Spanned<String>>,
    #[serde(default)]
    addresses: Vec<Spanned<String>>,
    security_level: Option<Spanned<u64>>,
    security_provider: Option<Spanned<String>>,
    isp: Option<Spanned<String>>,
    #[serde(default)]
    operating_systems: Vec<Spanned<String>>,
    #[serde(default)]
    services: Vec<Spanned<String>>,
    #[serde(default)]
    protections: Vec<Spanned<String>>,
    #[serde(default)]
    notified: Vec<Spanned<String>>,
}

impl RawOrganisation {
    /// Whether the config sets the reporting deadline itself (else the
    /// forms' own applies).
    pub(super) fn sets_deadline(&self) -> bool {
        self.report_within_days.is_some()
    }
}

impl Validator<'_> {
    pub(super) fn organisation(&mut self, raw: &RawOrganisation) -> Organisation {
        let s = &raw.system;
        let system = SystemInfo {
            name: self.text(&s.name, "system.name"),
            operator: self.text(&s.operator, "system.operator"),
            governing_body: self.text(&s.governing_body, "system.governing_body"),
            domains: self.list(&s.domains, "system.domains"),
            addresses: self.addresses(&s.addresses),
            security_level: s.security_level.as_ref().and_then(|level| {
                match u8::try_from(*level.get_ref()) {
                    Ok(l @ 1..=5) => Some(l),
                    _ => {
                        self.error(
                            &level.span(),
                            "system.security_level: the level under Decree 85/2016/NĐ-CP, 1 to 5"
                                .into(),
                        );
                        None
                    }
                }
            }),
            security_provider: self.text(&s.security_provider, "system.security_provider"),
            isp: self.text(&s.isp, "system.isp"),
            operating_systems: self.list(&s.operating_systems, "system.operating_systems"),
            services: self.list(&s.services, "system.services"),
            protections: self.list(&s.protections, "system.protections"),
            notified: self.list(&s.notified, "system.notified"),
        };
        let contact_email = self.text(&raw.contact_email, "contact_email");
        if let (Some(email), Some(span)) = (&contact_email, &raw.contact_email) {
            let ok = email
                .split_once('@')
                .is_some_and(|(user, host)| !user.is_empty() && host.contains('.'));
            if !ok || email.contains(char::is_whitespace) {
                self.error(
                    &span.span(),
                    format!("contact_email {email:?}: expected an address such as attt@stttt.hanoi.gov.vn"),
                );
            }
        }
        Organisation {
            name: self.text(&raw.name, "name"),
            address: self.text(&raw.address, "address"),
            contact_name: self.text(&raw.contact_name, "contact_name"),
            contact_role: self.text(&raw.contact_role, "contact_role"),
            contact_phone: self.text(&raw.contact_phone, "contact_phone"),
            contact_email,
            recipients: self.list(&raw.recipients, "recipients"),
            report_within_days: u32::try_from(self.count(
                &raw.report_within_days,
                5,
                1,
                90,
                "report_within_days",
            ))
            .unwrap_or(5),
            system,
        }
    }

    /// One line of text a person typed: trimmed, not empty, not too long.
    fn text(&mut self, v: &Option<Spanned<String>>, key: &str) -> Option<String> {
        let v = v.as_ref()?;
        let text = v.get_ref().trim();
        if text.is_empty()
            || text.chars().count() > MAX_FIELD_CHARS
            || text.chars().any(char::is_control)
        {
            self.error(
                &v.span(),
                format!("[organisation] {key}: 1 to {MAX_FIELD_CHARS} characters on one line"),
            );
            return None;
        }
        Some(text.to_owned())
    }

    fn list(&mut self, v: &[Spanned<String>], key: &str) -> Vec<String> {
        if let Some(extra) = v.get(MAX_LIST) {
            self.error(
                &extra.span(),
                format!("[organisation] {key}: at most {MAX_LIST} entries"),
            );
        }
        v.iter()
            .take(MAX_LIST)
            .filter_map(|item| self.text(&Some(item.clone()), key))
            .collect()
    }

    /// The system's addresses: IP addresses or networks.
    fn addresses(&mut self, v: &[Spanned<String>]) -> Vec<String> {
        let list = self.list(v, "system.addresses");
        for (item, text) in v.iter().zip(&list) {
            if text.parse::<crate::network::Network>().is_err() {
                self.error(
                    &item.span(),
                    format!("[organisation] system.addresses: {text:?} is not an IP address or network (203.0.113.10, 203.0.113.0/24)"),
                );
            }
        }
        list
    }
}
