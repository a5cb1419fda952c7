//! `incidents` and `report`: what the store holds, listed or summed up by
//! month. Both read the store of a config, or a database file given by
//! itself, and never write it.

use std::io::{self, BufWriter, Write};
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use jiff::tz::TimeZone;

use canhgac::output::{self, IncidentView};
use canhgac::timestamp;

use super::{fail, load_config, written_or_exit, zone_arg};
use crate::{Format, IncidentsArgs, LangArg, ReportArgs, ReportFormat};

pub(crate) fn incidents(args: &IncidentsArgs) -> Result<ExitCode, ExitCode> {
    let (db, config_tz) = store_and_zone(args.db.as_deref(), &args.config)?;
    let tz = config_tz.unwrap_or_else(timestamp::system_time_zone);
    let store = canhgac::store::Store::open_read(&db).map_err(fail)?;
    let incidents = store
        .incidents(&canhgac::store::IncidentQuery {
            category: args.category.clone(),
            since: args.since,
            limit: args.limit,
            ..Default::default()
        })
        .map_err(fail)?;
    let mut out = BufWriter::new(io::stdout().lock());
    let views: Vec<IncidentView> = incidents.iter().map(IncidentView::stored).collect();
    let written = match args.format {
        Format::Table => output::write_table(&mut out, &views, &tz),
        Format::Json => output::write_json(&mut out, &views),
    };
    written_or_exit(written.and_then(|()| out.flush()), "output")?;
    eprintln!("canhgac: {} incidents in {}", incidents.len(), db.display());
    Ok(ExitCode::SUCCESS)
}

pub(crate) fn monthly(args: &ReportArgs) -> Result<ExitCode, ExitCode> {
    use canhgac::report::{self, Format as F, Lang};
    let (db, config_tz) = store_and_zone(args.db.as_deref(), &args.config)?;
    let tz = match &args.tz {
        Some(name) => zone_arg(name)?,
        None => config_tz.unwrap_or_else(timestamp::system_time_zone),
    };
    let month = args.month.unwrap_or_else(|| {
        canhgac::months::Month::containing(jiff::Timestamp::now(), &tz).previous()
    });
    let store = canhgac::store::Store::open_read(&db).map_err(fail)?;
    let summary = canhgac::summary::monthly(&store, month, &tz).map_err(fail)?;
    let format = match args.format {
        ReportFormat::Table => F::Table,
        ReportFormat::Json => F::Json,
        ReportFormat::Csv => F::Csv,
        ReportFormat::Markdown => F::Markdown,
        ReportFormat::Html => F::Html,
    };
    let lang = match args.lang {
        LangArg::En => Lang::En,
        LangArg::Vi => Lang::Vi,
    };
    let mut buf = Vec::with_capacity(64 * 1024);
    report::render(&mut buf, &summary, format, lang).map_err(fail)?;
    let written = match &args.output {
        Some(path) => std::fs::write(path, &buf)
            .map_err(|e| io::Error::new(e.kind(), format!("{}: {e}", path.display()))),
        None => {
            let mut out = io::stdout().lock();
            out.write_all(&buf).and_then(|()| out.flush())
        }
    };
    written_or_exit(written, "the report")?;
    Ok(ExitCode::SUCCESS)
}

/// The store's database file: `db` if given, else the one of the config at
/// `config`, with that config's time zone.
fn store_and_zone(
    db: Option<&Path>,
    config: &Path,
) -> Result<(PathBuf, Option<TimeZone>), ExitCode> {
    match db {
        Some(db) => Ok((db.to_path_buf(), None)),
        None => {
            let config = load_config(config)?;
            Ok((config.db_path(), Some(config.time_zone)))
        }
    }
}
