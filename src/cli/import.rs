//! `import`: historical log files into the store, with a progress bar while
//! a terminal watches.

use std::io;
use std::process::ExitCode;
use std::time::Instant;

use canhgac::output;

use super::{fail, load_config, load_rules};
use crate::ImportArgs;

/// `import --list`: every import, oldest first.
fn list(store: &canhgac::store::Store, tz: &jiff::tz::TimeZone) -> Result<ExitCode, ExitCode> {
    let imports = store.imports().map_err(fail)?;
    let day = |t: Option<jiff::Timestamp>| {
        t.map_or_else(
            || "-".to_owned(),
            |t| t.to_zoned(tz.clone()).strftime("%Y-%m-%d").to_string(),
        )
    };
    println!(
        "ID                IMPORTED          INCIDENTS  FIRST       LAST        LINES  INPUT  FILE"
    );
    for i in &imports {
        let r = &i.record;
        println!(
            "{}  {}  {:>9}  {}  {}  {:>5}  {}  {}",
            i.id,
            r.imported_at
                .to_zoned(tz.clone())
                .strftime("%Y-%m-%d %H:%M"),
            r.incidents,
            day(i.first_seen),
            day(i.last_seen),
            r.lines,
            canhgac::output::printable(r.input.as_deref().unwrap_or("-"), 40),
            canhgac::output::printable(&r.path, 200),
        );
    }
    eprintln!("canhgac: {} imports", imports.len());
    Ok(ExitCode::SUCCESS)
}

pub(crate) fn run(args: &ImportArgs) -> Result<ExitCode, ExitCode> {
    use canhgac::import::{FileOutcome, ImportOptions, Importer};
    use canhgac::scan::ReadOptions;
    use std::io::IsTerminal;
    let config = load_config(&args.config)?;
    let rules = std::sync::Arc::new(load_rules(&config.rules)?);
    let db = config.db_path();
    let mut store = canhgac::store::Store::open(&db, &config.agency).map_err(|e| {
        eprintln!("canhgac: cannot open the store {}: {e}", db.display());
        ExitCode::FAILURE
    })?;
    store
        .record_identity(config.time_zone.iana_name(), config.agency_name.as_deref())
        .map_err(fail)?;
    if args.list {
        return list(&store, &config.time_zone);
    }
    if let Some(id) = &args.forget {
        return match store.forget_import(id).map_err(fail)? {
            Some((record, removed)) => {
                println!(
                    "canhgac: forgot the import of {} ({} lines): {removed} incidents removed",
                    canhgac::output::printable(&record.path, 200),
                    record.lines
                );
                Ok(ExitCode::SUCCESS)
            }
            None => {
                eprintln!("canhgac: no import has id {id:?} (canhgac import --list shows them)");
                Err(ExitCode::FAILURE)
            }
        };
    }
    let mut importer = Importer::new(
        store,
        rules,
        config.inputs.clone(),
        ImportOptions {
            read: ReadOptions {
                input_type: args.input_type.clone(),
                time_zone: config.time_zone.clone(),
                year: args.year,
                max_line: config.pipeline.max_line,
                // An import holds one file's keys; the daemon's cap is about
                // the daemon's steady memory, not a one-off run.
                max_keys: config.pipeline.max_keys.max(100_000),
                trusted_proxies: config.trusted_proxies.clone(),
            },
            input: args.input.clone(),
        },
    )
    .map_err(fail)?;
    let started = Instant::now();
    let terminal = io::stderr().is_terminal();
    let (mut imported, mut skipped, mut failed) = (0u64, 0u64, 0u64);
    let (mut lines, mut bytes, mut incidents) = (0u64, 0u64, 0u64);
    for file in &args.files {
        let name = file.display().to_string();
        let mut bar = ProgressBar::new(terminal, &name);
        let result = importer.import_path(file, &mut |read, total| bar.update(read, total));
        bar.clear();
        match result {
            Ok(FileOutcome::Imported(s)) => {
                imported += 1;
                lines += s.lines;
                bytes += s.bytes;
                incidents += s.incidents as u64;
                println!(
                    "imported {name}: {} lines ({}, input {}), {} events, {} incidents",
                    s.lines,
                    s.input_type,
                    s.input.as_deref().unwrap_or("-"),
                    s.events,
                    s.incidents
                );
            }
            Ok(FileOutcome::AlreadyImported(earlier)) => {
                skipped += 1;
                println!(
                    "skipped {name}: already imported (as {}, {} lines, {} incidents, at {})",
                    output::printable(&earlier.path, 200),
                    earlier.lines,
                    earlier.incidents,
                    earlier.imported_at
                );
            }
            Err(e) => {
                failed += 1;
                eprintln!("canhgac: {e}");
            }
        }
    }
    let secs = started.elapsed().as_secs_f64().max(1e-9);
    eprintln!(
        "canhgac: {imported} files imported, {skipped} already imported, {failed} failed; \
         {lines} lines, {bytes} bytes in {secs:.3} s ({:.1} MB/s, {:.0} lines/s); {incidents} incidents stored",
        bytes as f64 / 1e6 / secs,
        lines as f64 / secs
    );
    Ok(if failed > 0 {
        ExitCode::FAILURE
    } else {
        ExitCode::SUCCESS
    })
}

/// A one-line progress bar on stderr, drawn only when stderr is a terminal
/// and at most ten times a second.
struct ProgressBar<'a> {
    enabled: bool,
    name: &'a str,
    last: Option<Instant>,
    drawn: bool,
}

impl<'a> ProgressBar<'a> {
    fn new(enabled: bool, name: &'a str) -> Self {
        ProgressBar {
            enabled,
            name,
            last: None,
            drawn: false,
        }
    }

    fn update(&mut self, read: u64, total: u64) {
        if !self.enabled || self.last.is_some_and(|t| t.elapsed().as_millis() < 100) {
            return;
        }
        self.last = Some(Instant::now());
        let share = if total == 0 {
            1.0
        } else {
            (read as f64 / total as f64).min(1.0)
        };
        const WIDTH: usize = 30;
        let done = (share * WIDTH as f64) as usize;
        let name: String = output::printable(self.name, 40);
        eprint!(
            "\r[{}{}] {:>5.1}% {name} ({:.1}/{:.1} MB)",
            "#".repeat(done),
            ".".repeat(WIDTH - done),
            share * 100.0,
            read as f64 / 1e6,
            total as f64 / 1e6
        );
        self.drawn = true;
    }

    fn clear(&mut self) {
        if self.drawn {
            // Back to the line's start and erase it, for the next message.
            eprint!("\r\x1b[2K");
        }
    }
}
