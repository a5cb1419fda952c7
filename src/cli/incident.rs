//! `incidents` and `incident`: what an analyst does with the incidents in
//! the store. List them newest first with filters; show one with its
//! evidence and history; set its status (acknowledged, handled, false
//! positive, back to new) and record that it was reported to the national
//! coordinator. Listing only reads; the changes write the store beside a
//! running daemon (SQLite serialises the writers), each in one transaction
//! with its history entry.

use std::io::{self, BufWriter, Write};
use std::process::ExitCode;

use jiff::civil::{Date, DateTime};
use jiff::tz::TimeZone;
use jiff::{Timestamp, ToSpan};

use canhgac::output::{self, IncidentView};
use canhgac::store::{Change, IncidentOrder, IncidentQuery, Status, Store};
use canhgac::timestamp;

use super::{fail, load_config, written_or_exit};
use crate::{
    FormFormat, Format, IncidentChange, IncidentCommand, IncidentReportArgs, IncidentTarget,
    IncidentsArgs, IncidentsFormat, LangArg,
};

/// Days the national coordinator allows between detecting a serious
/// incident and reporting it (Circular 20/2017/TT-BTTTT).
pub(crate) const DEFAULT_REPORT_WITHIN_DAYS: i64 = 5;

/// A `--since` / `--until` as written: a whole day, a local time, or an
/// instant. Days and local times are placed in the zone once it is known.
#[derive(Clone, Debug)]
pub(crate) enum Bound {
    Day(Date),
    Local(DateTime),
    Instant(Timestamp),
}

pub(crate) fn parse_bound(text: &str) -> Result<Bound, String> {
    if let Ok(t) = text.parse::<Timestamp>() {
        return Ok(Bound::Instant(t));
    }
    // A date alone is ten characters; jiff's date parser also takes a
    // date-time and drops its time, which would widen 09:00 to the day.
    if text.len() == 10 {
        if let Ok(d) = text.parse::<Date>() {
            return Ok(Bound::Day(d));
        }
    } else if let Ok(dt) = text.parse::<DateTime>() {
        return Ok(Bound::Local(dt));
    }
    Err(format!(
        "{text:?}: expected a date (2022-01-31), a local time (2022-01-31T08:00) or RFC 3339 (2022-01-31T08:00:00+07:00)"
    ))
}

impl Bound {
    /// The instant this bound starts at in `tz`; an `until` of a whole day
    /// ends after it.
    fn instant(&self, tz: &TimeZone, until: bool) -> Result<Timestamp, String> {
        let at = |dt: DateTime| {
            dt.to_zoned(tz.clone())
                .map(|z| z.timestamp())
                .map_err(|e| format!("{dt}: {e}"))
        };
        match self {
            Bound::Instant(t) => Ok(*t),
            Bound::Local(dt) => at(*dt),
            Bound::Day(d) => {
                let day = if until {
                    d.checked_add(1.day()).map_err(|e| format!("{d}: {e}"))?
                } else {
                    *d
                };
                at(day.to_datetime(jiff::civil::Time::midnight()))
            }
        }
    }
}

pub(crate) fn list(args: &IncidentsArgs) -> Result<ExitCode, ExitCode> {
    let (db, config) = super::store_of(args.db.as_deref(), &args.config)?;
    let store = Store::open_read(&db).map_err(fail)?;
    // Dates are days in the agency's zone, else the system's.
    let tz = super::agency_zone(config.as_ref(), &store)?
        .map_or_else(timestamp::system_time_zone, |(_, tz)| tz);
    let usage = |e: String| {
        eprintln!("canhgac: {e}");
        ExitCode::from(2)
    };
    let (mut since, mut until) = (None, None);
    if let Some(b) = &args.since {
        since = Some(b.instant(&tz, false).map_err(usage)?);
    }
    if let Some(b) = &args.until {
        until = Some(b.instant(&tz, true).map_err(usage)?);
    }
    if let Some(m) = args.month {
        let w = m.window(&tz);
        (since, until) = (Some(w.start), Some(w.end));
    }
    let within = config.as_ref().map_or(DEFAULT_REPORT_WITHIN_DAYS, |c| {
        i64::from(c.organisation.report_within_days)
    });
    let query = IncidentQuery {
        since,
        until,
        category: args.category.clone(),
        severity: args.severity.clone(),
        rule: args.rule.clone(),
        src_ip: args.src_ip.map(|ip| ip.to_string()),
        status: args
            .status
            .as_deref()
            .map(parse_status)
            .transpose()
            .map_err(usage)?,
        overdue_before: args
            .overdue
            .then(|| Timestamp::now().checked_sub((within * 24).hours()))
            .transpose()
            .map_err(|e| usage(e.to_string()))?,
        // One more than asked tells whether there is a next page.
        limit: args.limit.map(|n| n.saturating_add(1)),
        after: args.after.clone(),
        order: if args.oldest_first {
            IncidentOrder::FirstSeen
        } else {
            IncidentOrder::NewestFirst
        },
    };
    let mut incidents = store.incidents(&query).map_err(fail)?;
    let more = args.limit.is_some_and(|n| incidents.len() > n as usize);
    if let Some(n) = args.limit {
        incidents.truncate(n as usize);
    }
    let uids: Vec<&str> = incidents.iter().map(|i| i.uid.as_str()).collect();
    let statuses = store.statuses(&uids).map_err(fail)?;
    let views: Vec<IncidentView> = incidents
        .iter()
        .map(|i| {
            let mut v = IncidentView::stored(i);
            v.status = Some(statuses.get(&i.uid).map_or(Status::New, |s| s.status).id());
            v
        })
        .collect();
    let mut out = BufWriter::new(io::stdout().lock());
    let written = match args.format {
        IncidentsFormat::Table => output::write_stored_table(&mut out, &views, &tz),
        IncidentsFormat::Json => output::write_json(&mut out, &views),
        IncidentsFormat::Csv => output::write_csv(&mut out, &views, !args.no_bom),
    };
    written_or_exit(written.and_then(|()| out.flush()), "output")?;
    eprintln!("canhgac: {} incidents in {}", incidents.len(), db.display());
    if let (true, Some(last)) = (more, incidents.last()) {
        eprintln!("canhgac: more: add --after {}", last.uid);
    }
    Ok(ExitCode::SUCCESS)
}

fn parse_status(id: &str) -> Result<Status, String> {
    id.parse()
}

pub(crate) fn run(command: &IncidentCommand) -> Result<ExitCode, ExitCode> {
    let (target, change) = match command {
        IncidentCommand::Show(t) => return show(t),
        IncidentCommand::Report(r) => return form(r),
        IncidentCommand::Ack(c) => (c, Change::Status(Status::Acknowledged)),
        IncidentCommand::Handled(c) => (c, Change::Status(Status::Handled)),
        IncidentCommand::FalsePositive(c) => (c, Change::Status(Status::FalsePositive)),
        IncidentCommand::Reopen(c) => (c, Change::Status(Status::New)),
        IncidentCommand::Reported(c) => (c, Change::Reported),
    };
    set(target, change)
}

/// Who is changing the store from this terminal: the person behind sudo,
/// else the login name, else the uid.
fn local_user() -> String {
    let name = ["SUDO_USER", "LOGNAME", "USER"].iter().find_map(|v| {
        std::env::var(v)
            .ok()
            .filter(|n| !n.is_empty() && n != "root")
    });
    match name {
        Some(n) => format!("local:{n}"),
        None => format!("local:uid {}", canhgac::secret::current_uid()),
    }
}

fn set(c: &IncidentChange, change: Change<'_>) -> Result<ExitCode, ExitCode> {
    let config = load_config(&c.config)?;
    let mut store = Store::open(&config.db_path(), &config.agency).map_err(fail)?;
    let by = local_user();
    let after = store
        .change_status(&c.id, change, &by, c.note.as_deref(), Timestamp::now())
        .map_err(fail)?;
    let Some(after) = after else {
        return Err(no_such_incident(&c.id));
    };
    match change {
        Change::Reported => println!("{}: reported, recorded by {by}", c.id),
        _ => println!("{}: {} (by {by})", c.id, after.status),
    }
    Ok(ExitCode::SUCCESS)
}

fn no_such_incident(id: &str) -> ExitCode {
    eprintln!("canhgac: no incident has id {id:?} (canhgac incidents lists them)");
    ExitCode::FAILURE
}

/// The incident `id` names, or why not said.
fn stored(store: &Store, id: &str) -> Result<canhgac::store::StoredIncident, ExitCode> {
    store
        .incident(id)
        .map_err(fail)?
        .ok_or_else(|| no_such_incident(id))
}

fn show(t: &IncidentTarget) -> Result<ExitCode, ExitCode> {
    let config = load_config(&t.config)?;
    let store = Store::open_read(&config.db_path()).map_err(fail)?;
    let incident = stored(&store, &t.id)?;
    let status = store.status_of(&t.id).map_err(fail)?.unwrap_or_default();
    let history = store.history(&t.id).map_err(fail)?;
    let mut out = BufWriter::new(io::stdout().lock());
    let written = match t.format {
        Format::Json => {
            let mut view = IncidentView::stored(&incident);
            view.status = Some(status.status.id());
            canhgac::visible::write_json(
                &mut out,
                &serde_json::json!({
                    "incident": view,
                    "status": status,
                    "history": history,
                }),
                true,
            )
        }
        Format::Table => write_show(&mut out, &incident, &status, &history, &config.time_zone),
    };
    written_or_exit(written.and_then(|()| out.flush()), "output")?;
    Ok(ExitCode::SUCCESS)
}

fn write_show(
    out: &mut dyn Write,
    i: &canhgac::store::StoredIncident,
    status: &canhgac::store::IncidentStatus,
    history: &[canhgac::store::HistoryEntry],
    tz: &TimeZone,
) -> io::Result<()> {
    let r = &i.record;
    let time = |t: Timestamp| {
        t.to_zoned(tz.clone())
            .strftime("%Y-%m-%d %H:%M:%S %:z")
            .to_string()
    };
    let show = |s: &str| output::printable(s, 200);
    writeln!(out, "id:         {}", i.uid)?;
    writeln!(
        out,
        "rule:       {} ({}, {})",
        show(&r.rule),
        r.category,
        r.severity
    )?;
    writeln!(out, "key:        {}", show(&r.key))?;
    if let Some(ip) = &r.src_ip {
        writeln!(out, "source:     {}", show(ip))?;
    }
    if let Some(input) = &r.input {
        writeln!(out, "input:      {}", show(input))?;
    }
    writeln!(out, "first seen: {}", time(r.first_seen))?;
    writeln!(out, "last seen:  {}", time(r.last_seen))?;
    writeln!(
        out,
        "events:     {}{}",
        r.events,
        if r.open { " (still open)" } else { "" }
    )?;
    for (k, v) in &r.fields {
        writeln!(out, "  {}: {}", show(k), show(v))?;
    }
    writeln!(out, "evidence:   {}", show(&r.sample))?;
    write!(out, "status:     {}", status.status)?;
    if let (Some(by), Some(at)) = (&status.changed_by, status.changed_at) {
        write!(out, " (by {}, {})", show(by), time(at))?;
    }
    writeln!(out)?;
    if let Some(note) = &status.note {
        writeln!(out, "note:       {}", show(note))?;
    }
    match (&status.reported_at, &status.reported_by) {
        (Some(at), Some(by)) => writeln!(out, "reported:   {} by {}", time(*at), show(by))?,
        _ => writeln!(out, "reported:   not yet")?,
    }
    if !history.is_empty() {
        writeln!(out, "history:")?;
        for h in history {
            write!(out, "  {}  {}  {}", time(h.at), h.action, show(&h.by))?;
            if let Some(note) = &h.note {
                write!(out, "  \u{201c}{}\u{201d}", show(note))?;
            }
            writeln!(out)?;
        }
    }
    Ok(())
}

/// `incident report ID`: Mẫu số 03 for the incident.
fn form(a: &IncidentReportArgs) -> Result<ExitCode, ExitCode> {
    use canhgac::forms::initial::{InitialReport, Sources};
    use canhgac::report::Lang;
    use std::io::IsTerminal;
    let config = load_config(&a.config)?;
    let store = Store::open_read(&config.db_path()).map_err(fail)?;
    let incident = stored(&store, &a.id)?;
    let status = store.status_of(&a.id).map_err(fail)?.unwrap_or_default();
    let detected = store
        .recorded_at(&a.id)
        .map_err(fail)?
        .unwrap_or(incident.record.first_seen);
    // The rule's words; a rule no longer loaded (renamed, disabled) keeps
    // its id as its title.
    let rules = super::load_rules(&config.rules)?;
    let (title, description) = match rules.by_id(&incident.record.rule) {
        Some(i) => {
            let rule = rules.rule(i);
            (rule.title.clone(), rule.description.clone())
        }
        None => (
            canhgac::integrity::rule_title(&incident.record.rule)
                .unwrap_or(&incident.record.rule)
                .to_owned(),
            String::new(),
        ),
    };
    let lang = match a.lang {
        LangArg::En => Lang::En,
        LangArg::Vi => Lang::Vi,
    };
    let agency = config
        .agency_name
        .clone()
        .unwrap_or_else(|| config.agency.clone());
    let forms = &config.reporting.forms;
    let report = InitialReport::fill(&Sources {
        forms,
        organisation: &config.organisation,
        agency: &agency,
        incident: &incident,
        status: &status,
        title: &title,
        description: &description,
        detected,
        now: Timestamp::now(),
        tz: &config.time_zone,
        lang,
    });
    if a.format == FormFormat::Docx && a.output.is_none() && io::stdout().is_terminal() {
        eprintln!("canhgac: a .docx is not for a terminal: add -o FILE.docx");
        return Err(ExitCode::from(2));
    }
    let mut buf = Vec::with_capacity(16 * 1024);
    match a.format {
        FormFormat::Markdown => report.markdown(&mut buf, forms, lang).map_err(fail)?,
        FormFormat::Html => report.html(&mut buf, forms, lang).map_err(fail)?,
        FormFormat::Json => canhgac::visible::write_json(&mut buf, &report, true).map_err(fail)?,
        FormFormat::Docx => {
            buf = canhgac::forms::docx::write(&report, forms, lang).map_err(fail)?
        }
    }
    super::report::write_out(a.output.as_deref(), &buf, "the form")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bounds_are_days_local_times_or_instants() {
        let hcm = TimeZone::get("Asia/Ho_Chi_Minh").expect("zone");
        let at = |text: &str, until: bool| {
            parse_bound(text)
                .and_then(|b| b.instant(&hcm, until))
                .map(|t| t.to_string())
        };
        assert_eq!(at("2022-01-31", false), Ok("2022-01-30T17:00:00Z".into()));
        assert_eq!(at("2022-01-31", true), Ok("2022-01-31T17:00:00Z".into()));
        assert_eq!(
            at("2022-01-31T09:00", false),
            Ok("2022-01-31T02:00:00Z".into())
        );
        assert_eq!(
            at("2022-01-31T09:00", true),
            Ok("2022-01-31T02:00:00Z".into())
        );
        assert_eq!(
            at("2022-01-31T09:00:00+07:00", true),
            Ok("2022-01-31T02:00:00Z".into())
        );
        assert!(parse_bound("31/01/2022").is_err());
        assert!(parse_bound("2022-01-31T25:00").is_err());
    }
}
