//! Mẫu số 03: the initial report of one incident to the national
//! coordinator, filled from the incident, what analysts said of it, the
//! config's `[organisation]` and the form file's labels.
//!
//! The document is a list of sections of labelled rows ([`InitialReport`]),
//! the same in JSON (each row keeps a stable `key`) and in every rendering:
//! Markdown, an HTML page that prints on A4, and a `.docx` ([`super::docx`]).
//! Everything from logs (the evidence line, fields, keys) is shown with
//! control and invisible characters made visible, and escaped for the
//! format it lands in.

use std::io::{self, Write};

use jiff::tz::TimeZone;
use jiff::Timestamp;
use serde::Serialize;

use super::{label, FormSet, Organisation, PAGE_STYLE};
use crate::report::{escape_html as esc, escape_markdown as md, Lang};
use crate::store::{IncidentStatus, StoredIncident};
use crate::visible;

/// What the report is filled from, beside the incident itself.
pub struct Sources<'a> {
    pub forms: &'a FormSet,
    pub organisation: &'a Organisation,
    /// `agency_name`, else the agency id: the organisation when
    /// `[organisation] name` is not given.
    pub agency: &'a str,
    pub incident: &'a StoredIncident,
    pub status: &'a IncidentStatus,
    /// The rule's title and description.
    pub title: &'a str,
    pub description: &'a str,
    /// When canhgac recorded the incident: when it was detected.
    pub detected: Timestamp,
    pub now: Timestamp,
    pub tz: &'a TimeZone,
    pub lang: Lang,
}

#[derive(Clone, Debug, Serialize)]
pub struct InitialReport {
    pub form: String,
    pub circular: String,
    pub title: String,
    pub lang: &'static str,
    pub recipients: Vec<String>,
    pub subject: String,
    pub incident_id: String,
    pub sections: Vec<Section>,
    /// The incident's evidence: its sample line and captured fields.
    pub evidence: Vec<String>,
    pub signature: String,
}

#[derive(Clone, Debug, Serialize)]
pub struct Section {
    /// The section's key in the form file.
    pub key: &'static str,
    pub title: String,
    pub rows: Vec<Row>,
}

#[derive(Clone, Debug, Serialize)]
pub struct Row {
    /// The label's key in the form file: stable across languages.
    pub key: &'static str,
    pub label: String,
    /// `None`: not given in `[organisation]` (rendered as the form's "not
    /// given").
    pub value: Option<String>,
}

impl InitialReport {
    pub fn fill(s: &Sources<'_>) -> InitialReport {
        let f = &s.forms.initial;
        let lang = s.lang;
        let l = |key: &str| label(&f.labels, key, lang).to_owned();
        let r = &s.incident.record;
        let org = s.organisation;
        let sys = &org.system;
        let row = |key: &'static str, value: Option<String>| Row {
            key,
            label: l(key),
            value: value.filter(|v| !v.trim().is_empty()),
        };
        let list = |v: &[String]| (!v.is_empty()).then(|| v.join(", "));
        let time = |t: Timestamp| lang.time(t, s.tz);
        let organisation = org.name.clone().unwrap_or_else(|| s.agency.to_owned());
        let contact = match (&org.contact_name, &org.contact_role) {
            (Some(n), Some(r)) => Some(format!("{n} ({r})")),
            (Some(n), None) => Some(n.clone()),
            _ => None,
        };
        let method_key = if r.rule.starts_with("integrity-") {
            "integrity"
        } else if r.rule.contains('@') {
            "ioc"
        } else {
            "log_review"
        };
        let mut status = label(&f.statuses, s.status.status.id(), lang).to_owned();
        if let Some(note) = &s.status.note {
            status.push_str(&format!(" \u{2013} {}", visible::show(note)));
        }
        let mut notified: Vec<String> = sys.notified.clone();
        if let Some(at) = s.status.reported_at {
            let coordinator = f.recipients.first().map_or("", |t| t.get(lang));
            notified.push(format!("{coordinator} ({})", time(at)));
        }
        // Said in the report's language from the incident itself; the
        // rule's own words (English) follow in parentheses.
        let key = visible::show(&r.key);
        let events = lang.count(r.events);
        let (first, last) = (time(r.first_seen), time(r.last_seen));
        let category = lang.category(&r.category);
        let rule = visible::show(&r.rule);
        let description = match lang {
            Lang::Vi => format!(
                "{category}: {events} sự kiện từ {key}, từ {first} đến {last} (luật {rule}: {}).",
                s.title
            ),
            Lang::En => {
                let mut d = format!(
                    "{category}: {events} events from {key} between {first} and {last} (rule {rule}: {}).",
                    s.title
                );
                if !s.description.trim().is_empty() {
                    d.push(' ');
                    d.push_str(s.description.trim());
                }
                d
            }
        };
        let sections = vec![
            Section {
                key: "reporter",
                title: label(&f.sections, "reporter", lang).to_owned(),
                rows: vec![
                    row("organisation", Some(organisation.clone())),
                    row("address", org.address.clone()),
                    row("contact", contact),
                    row("phone", org.contact_phone.clone()),
                    row("email", org.contact_email.clone()),
                ],
            },
            Section {
                key: "system",
                title: label(&f.sections, "system", lang).to_owned(),
                rows: vec![
                    row("system_name", sys.name.clone()),
                    row("operator", sys.operator.clone()),
                    row("governing_body", sys.governing_body.clone()),
                    row("security_level", sys.security_level.map(|n| n.to_string())),
                    row("security_provider", sys.security_provider.clone()),
                    row("isp", sys.isp.clone()),
                    row("domains", list(&sys.domains)),
                    row("addresses", list(&sys.addresses)),
                    row("operating_systems", list(&sys.operating_systems)),
                    row("services", list(&sys.services)),
                    row("protections", list(&sys.protections)),
                ],
            },
            Section {
                key: "incident",
                title: label(&f.sections, "incident", lang).to_owned(),
                rows: vec![
                    row("incident_id", Some(s.incident.uid.clone())),
                    row("description", Some(description)),
                    row("category", Some(lang.category(&r.category))),
                    row("severity", Some(lang.severity(&r.severity))),
                    row(
                        "source",
                        r.src_ip.as_deref().map(|ip| visible::show(ip).into_owned()),
                    ),
                    row("key", Some(visible::show(&r.key).into_owned())),
                    row("events", Some(lang.count(r.events))),
                    row("first_seen", Some(time(r.first_seen))),
                    row("last_seen", Some(time(r.last_seen))),
                    row("detected", Some(time(s.detected))),
                    row(
                        "method",
                        Some(label(&f.methods, method_key, lang).to_owned()),
                    ),
                    row("status", Some(status)),
                    row("notified", list(&notified)),
                ],
            },
            Section {
                key: "closing",
                title: label(&f.sections, "closing", lang).to_owned(),
                rows: vec![
                    row("confidential", Some(l("yes"))),
                    row("report_time", Some(time(s.now))),
                ],
            },
        ];
        let mut evidence = vec![visible::show(&r.sample).into_owned()];
        evidence.extend(
            r.fields
                .iter()
                .map(|(k, v)| format!("{}: {}", visible::show(k), visible::show(v))),
        );
        InitialReport {
            form: f.form_label.get(lang).to_owned(),
            circular: s.forms.name.get(lang).to_owned(),
            title: f.title.get(lang).to_owned(),
            lang: lang.code(),
            recipients: f
                .recipients
                .iter()
                .map(|t| t.get(lang).to_owned())
                .collect(),
            subject: format!(
                "{} {organisation} \u{2013} {} \u{2013} {}",
                f.subject_prefix, s.title, s.incident.uid
            ),
            incident_id: s.incident.uid.clone(),
            sections,
            evidence,
            signature: l("signature"),
        }
    }

    /// A row's value as printed: the form's "not given" where empty.
    fn value<'a>(&'a self, row: &'a Row, forms: &'a FormSet, lang: Lang) -> &'a str {
        row.value
            .as_deref()
            .unwrap_or_else(|| label(&forms.initial.labels, "not_given", lang))
    }

    pub fn markdown(&self, out: &mut dyn Write, forms: &FormSet, lang: Lang) -> io::Result<()> {
        let l = |key: &str| label(&forms.initial.labels, key, lang);
        writeln!(out, "_{} \u{2013} {}_", md(&self.form), md(&self.circular))?;
        writeln!(out)?;
        writeln!(out, "# {}", md(&self.title))?;
        writeln!(out)?;
        writeln!(
            out,
            "**{}:** {}  ",
            md(l("recipient")),
            md(&self.recipients.join("; "))
        )?;
        writeln!(out, "**{}:** {}", md(l("subject")), md(&self.subject))?;
        for section in &self.sections {
            if section.key == "closing" {
                self.markdown_evidence(out, forms, lang)?;
            }
            writeln!(out)?;
            writeln!(out, "## {}", md(&section.title))?;
            writeln!(out)?;
            writeln!(out, "| | |")?;
            writeln!(out, "|:---|:---|")?;
            for row in &section.rows {
                writeln!(
                    out,
                    "| {} | {} |",
                    md(&row.label),
                    md(self.value(row, forms, lang))
                )?;
            }
        }
        writeln!(out)?;
        writeln!(out, "_{}_", md(&self.signature))?;
        Ok(())
    }

    fn markdown_evidence(
        &self,
        out: &mut dyn Write,
        forms: &FormSet,
        lang: Lang,
    ) -> io::Result<()> {
        writeln!(out)?;
        writeln!(
            out,
            "## {}",
            md(label(&forms.initial.sections, "evidence", lang))
        )?;
        writeln!(out)?;
        // An indented block: no line of a log can close it.
        for line in &self.evidence {
            writeln!(out, "    {line}")?;
        }
        Ok(())
    }

    pub fn html(&self, out: &mut dyn Write, forms: &FormSet, lang: Lang) -> io::Result<()> {
        let l = |key: &str| label(&forms.initial.labels, key, lang);
        let mut h = String::with_capacity(16 * 1024);
        h.push_str(&format!(
            "<!DOCTYPE html>\n<html lang=\"{}\">\n<head>\n<meta charset=\"utf-8\">\n<title>{}</title>\n<style>{PAGE_STYLE}{STYLE}</style>\n</head>\n<body>\n",
            self.lang,
            esc(&self.subject)
        ));
        h.push_str(&format!(
            "<p class=\"form\">{} \u{2013} {}</p>\n<h1>{}</h1>\n",
            esc(&self.form),
            esc(&self.circular),
            esc(&self.title)
        ));
        h.push_str(&format!(
            "<p><b>{}:</b> {}</p>\n<p><b>{}:</b> {}</p>\n",
            esc(l("recipient")),
            esc(&self.recipients.join("; ")),
            esc(l("subject")),
            esc(&self.subject)
        ));
        for section in &self.sections {
            if section.key == "closing" {
                h.push_str(&format!(
                    "<h2>{}</h2>\n<pre>",
                    esc(label(&forms.initial.sections, "evidence", lang))
                ));
                for line in &self.evidence {
                    h.push_str(&esc(line));
                    h.push('\n');
                }
                h.push_str("</pre>\n");
            }
            h.push_str(&format!("<h2>{}</h2>\n<table>\n", esc(&section.title)));
            for row in &section.rows {
                let class = if row.value.is_none() {
                    " class=\"none\""
                } else {
                    ""
                };
                h.push_str(&format!(
                    "<tr><th>{}</th><td{class}>{}</td></tr>\n",
                    esc(&row.label),
                    esc(self.value(row, forms, lang))
                ));
            }
            h.push_str("</table>\n");
        }
        h.push_str(&format!(
            "<p class=\"signature\">{}</p>\n</body>\n</html>\n",
            esc(&self.signature)
        ));
        out.write_all(h.as_bytes())
    }
}

const STYLE: &str = "
p.form { margin: 0; }
h1 { font-size: 14pt; text-align: center; margin: 6mm 0; }
h2 { font-size: 12pt; margin: 5mm 0 2mm; break-after: avoid; page-break-after: avoid; }
table { width: 100%; border-collapse: collapse; break-inside: auto; }
tr { break-inside: avoid; page-break-inside: avoid; }
th, td { border: 1px solid #000; padding: 1.5mm 2mm; vertical-align: top; text-align: left; }
th { width: 40%; font-weight: normal; }
td.none { color: #666; font-style: italic; }
pre { font-family: 'DejaVu Sans Mono', monospace; font-size: 9pt; white-space: pre-wrap; word-break: break-all; border: 1px solid #000; padding: 2mm; }
p.signature { text-align: right; margin-top: 15mm; font-style: italic; }
";
