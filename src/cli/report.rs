//! `report`: what the store holds, summed up by month. It reads the store
//! of a config, or a database file given by itself, and never writes it.

use std::io::{self, Write};
use std::process::ExitCode;

use jiff::tz::TimeZone;

use canhgac::timestamp;

use super::{fail, written_or_exit, zone_arg};
use crate::{CsvTableArg, LangArg, ReportArgs, ReportFormat};

pub(crate) fn monthly(args: &ReportArgs) -> Result<ExitCode, ExitCode> {
    use canhgac::report::{self, CsvTable, Format as F, Lang};
    let (db, config) = super::store_of(args.db.as_deref(), &args.config)?;
    let mut store = canhgac::store::Store::open_read(&db).map_err(fail)?;
    let mut copy = None;
    if let Some(agency) = &args.agency {
        let scratch = ScratchStore::new()?;
        match store.extract_agency(agency, &scratch.0).map_err(fail)? {
            Some((one, _)) => store = one,
            None => {
                eprintln!(
                    "canhgac: {}: no agency {agency:?} in this store (--agency reads a national center's store; its report lists the agencies)",
                    db.display()
                );
                return Err(ExitCode::FAILURE);
            }
        }
        copy = Some(scratch);
    }
    let agency_zone = super::agency_zone(config.as_ref(), &store)?;
    let tz = match (&args.tz, &agency_zone) {
        (Some(name), _) => zone_arg(name)?,
        (None, Some((_, tz))) => tz.clone(),
        (None, None) => timestamp::system_time_zone(),
    };
    if args.form.is_some() {
        return summary_form(args, &store, config.as_ref(), &tz, &db);
    }
    let month = args.month.unwrap_or_else(|| {
        canhgac::months::Month::containing(jiff::Timestamp::now(), &tz).previous()
    });
    let mut summary = canhgac::summary::monthly(&store, month, &tz).map_err(fail)?;
    summary.mark_silent(args.silent_after);
    summary.agency = match &config {
        Some(c) => Some(c.agency.clone()),
        None => store.recorded_agency().map_err(fail)?,
    };
    summary.agency_name = match &config {
        Some(c) => c.agency_name.clone(),
        None => store.agency_name().map_err(fail)?,
    };
    if let Some((name, _)) = &agency_zone {
        if tz.iana_name() != Some(name.as_str()) {
            summary.agency_time_zone = Some(name.clone());
            eprintln!(
                "canhgac: months counted in {} (--tz), not in the agency's zone {name}: the figures differ from the agency's own reports",
                summary.time_zone
            );
        }
    }
    let format = match args.format {
        ReportFormat::Table => F::Table,
        ReportFormat::Json => F::Json,
        ReportFormat::Csv => F::Csv {
            table: match args.table {
                CsvTableArg::Categories => CsvTable::Categories,
                CsvTableArg::Severities => CsvTable::Severities,
                CsvTableArg::Rules => CsvTable::Rules,
                CsvTableArg::Sources => CsvTable::Sources,
                CsvTableArg::Inputs => CsvTable::Inputs,
                CsvTableArg::Months => CsvTable::Months,
                CsvTableArg::Agencies => CsvTable::Agencies,
            },
            bom: !args.no_bom,
        },
        ReportFormat::Markdown => F::Markdown,
        ReportFormat::Html => F::Html,
    };
    let lang = match args.lang {
        LangArg::En => Lang::En,
        LangArg::Vi => Lang::Vi,
    };
    let mut buf = Vec::with_capacity(64 * 1024);
    report::render(&mut buf, &summary, format, lang).map_err(fail)?;
    drop(store);
    drop(copy);
    write_out(args.output.as_deref(), &buf, "the report")
}

/// A store file of our own in the temporary directory, removed (with its
/// WAL files) when dropped.
struct ScratchStore(std::path::PathBuf);

impl ScratchStore {
    fn new() -> Result<ScratchStore, ExitCode> {
        let dir = std::env::temp_dir().join(format!(
            "canhgac-report-{}-{}",
            std::process::id(),
            jiff::Timestamp::now().as_nanosecond()
        ));
        std::fs::create_dir(&dir).map_err(|e| fail(format!("{}: {e}", dir.display())))?;
        Ok(ScratchStore(dir.join("agency.db")))
    }
}

impl Drop for ScratchStore {
    fn drop(&mut self) {
        if let Some(dir) = self.0.parent() {
            let _ = std::fs::remove_dir_all(dir);
        }
    }
}

/// `report --form 05`: the six-monthly or yearly summary in the national
/// coordinator's classes.
fn summary_form(
    args: &ReportArgs,
    store: &canhgac::store::Store,
    config: Option<&canhgac::config::Config>,
    tz: &TimeZone,
    db: &std::path::Path,
) -> Result<ExitCode, ExitCode> {
    use canhgac::forms::summary::{Period, Sources, SummaryReport};
    let period = match (args.half, args.year) {
        (Some(half), _) => half,
        (None, Some(year)) => Period::Year(year),
        (None, None) => {
            eprintln!("canhgac: --form 05 needs --half YYYY-HN or --year YYYY");
            return Err(ExitCode::from(2));
        }
    };
    let reporting = config.map(|c| c.reporting.clone()).unwrap_or_default();
    let agency = match config {
        Some(c) => c
            .organisation
            .name
            .clone()
            .or_else(|| c.agency_name.clone())
            .unwrap_or_else(|| c.agency.clone()),
        None => match store.agency_name().map_err(fail)? {
            Some(name) => name,
            None => store
                .recorded_agency()
                .map_err(fail)?
                .unwrap_or_else(|| db.display().to_string()),
        },
    };
    let lang = match args.lang {
        LangArg::En => canhgac::report::Lang::En,
        LangArg::Vi => canhgac::report::Lang::Vi,
    };
    let report = SummaryReport::count(
        store,
        period,
        &Sources {
            forms: &reporting.forms,
            classes: &reporting.classes,
            organisation: &agency,
            tz,
            now: jiff::Timestamp::now(),
            lang,
        },
    )
    .map_err(fail)?;
    let forms = &reporting.forms;
    let mut buf = Vec::with_capacity(16 * 1024);
    let rendered = match args.format {
        ReportFormat::Table => report.table(&mut buf, forms, lang),
        ReportFormat::Json => canhgac::visible::write_json(&mut buf, &report, true),
        ReportFormat::Csv => report.csv(&mut buf, forms, lang, !args.no_bom),
        ReportFormat::Markdown => report.markdown(&mut buf, forms, lang),
        ReportFormat::Html => report.html(&mut buf, forms, lang),
    };
    rendered.map_err(fail)?;
    write_out(args.output.as_deref(), &buf, "the form")
}

/// `bytes` to `path`, or to standard output.
pub(crate) fn write_out(
    path: Option<&std::path::Path>,
    bytes: &[u8],
    what: &str,
) -> Result<ExitCode, ExitCode> {
    let written = match path {
        Some(path) => std::fs::write(path, bytes)
            .map_err(|e| io::Error::new(e.kind(), format!("{}: {e}", path.display()))),
        None => {
            let mut out = io::stdout().lock();
            out.write_all(bytes).and_then(|()| out.flush())
        }
    };
    written_or_exit(written, what)?;
    Ok(ExitCode::SUCCESS)
}
