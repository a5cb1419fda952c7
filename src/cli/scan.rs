//! `scan`: log files through the rules and detector, incidents (or events)
//! on stdout, throughput on stderr.

use std::io::{self, BufWriter, Write};
use std::process::ExitCode;
use std::time::Instant;

use canhgac::config::Config;
use canhgac::rules::RuleSet;
use canhgac::scan::{self, EventRecord, ReadOptions, ScanOptions, Scanner};
use canhgac::timestamp;

use super::{config_or_exit, load_rules, rule_errors, written_or_exit, zone_arg};
use crate::{Format, ScanArgs};

pub(crate) fn run(args: ScanArgs) -> Result<ExitCode, ExitCode> {
    let (rules, trusted_proxies) = match &args.config {
        Some(path) => {
            let config = config_or_exit(Config::load_for_scan(path))?;
            let mut rules = load_rules(&args.rules.with_config(&config))?;
            bind_feeds(&mut rules, &config)?;
            (rules, config.trusted_proxies.clone())
        }
        None => (args.rules.load()?, Vec::new()),
    };
    let time_zone = match &args.tz {
        Some(name) => zone_arg(name)?,
        None => timestamp::system_time_zone(),
    };
    let started = Instant::now();
    let rules = std::sync::Arc::new(rules);
    let mut scanner = Scanner::new(
        std::sync::Arc::clone(&rules),
        ScanOptions {
            read: ReadOptions {
                input_type: args.input_type.clone(),
                time_zone: time_zone.clone(),
                year: args.year,
                max_line: args.max_line_bytes,
                max_keys: args.max_keys,
                trusted_proxies,
            },
            keep_incidents: !args.events,
        },
    );
    let stdout = io::stdout();
    let mut out = BufWriter::with_capacity(1 << 16, stdout.lock());
    let mut write_error: Option<io::Error> = None;
    let mut failed = false;
    for file in &args.files {
        let mut on_event = |file: &str, line: u64, ev: &canhgac::event::Event| {
            if args.events && write_error.is_none() {
                let record = EventRecord::new(&rules, file, line, ev);
                if let Err(e) = canhgac::visible::write_json(&mut out, &record, false) {
                    write_error = Some(e);
                }
            }
        };
        if let Err(e) = scanner.scan_path(file, &mut on_event) {
            eprintln!("canhgac: {}: {}", e.file.display(), e.message);
            failed = true;
        }
        for warning in scanner.take_warnings() {
            eprintln!("canhgac: warning: {warning}");
        }
    }
    let (mut incidents, stats, evicted) = scanner.finish();
    let written = match write_error {
        Some(e) => Err(e),
        None if args.events => Ok(()),
        None => match args.format {
            Format::Table => incidents.write_table(&mut out, &rules, &time_zone),
            Format::Json => incidents.write_json(&mut out, &rules),
        },
    };
    written_or_exit(written.and_then(|()| out.flush()), "output")?;
    eprintln!(
        "{}",
        scan::summary(&stats, incidents.len(), evicted, started)
    );
    Ok(if failed {
        ExitCode::FAILURE
    } else {
        ExitCode::SUCCESS
    })
}

/// Rules bound to the feeds of `config`, the feed files read (every bad
/// line printed as `file:line:col: message`; any makes it fail).
fn bind_feeds(rules: &mut RuleSet, config: &Config) -> Result<(), ExitCode> {
    let feeds = std::sync::Arc::new(canhgac::feeds::FeedSet::new(config.feeds.clone(), None));
    rules
        .bind_feeds(std::sync::Arc::clone(&feeds))
        .map_err(rule_errors)?;
    let mut failed = 0;
    for (i, outcome) in feeds.refresh(true) {
        use canhgac::feeds::Outcome;
        let name = feeds
            .get(i)
            .map(|f| f.name().to_owned())
            .unwrap_or_default();
        match outcome {
            Outcome::Loaded { .. } => {}
            Outcome::Invalid {
                errors, bad_lines, ..
            } => {
                for e in &errors {
                    eprintln!("{e}");
                }
                if bad_lines > errors.len() {
                    eprintln!(
                        "feed {name}: and {} more bad lines",
                        bad_lines - errors.len()
                    );
                }
                failed += 1;
            }
            Outcome::Unreadable { message, .. }
            | Outcome::Incomplete {
                reason: message, ..
            } => {
                eprintln!("feed {name}: {message}");
                failed += 1;
            }
        }
    }
    if failed > 0 {
        eprintln!("canhgac: {failed} feed(s) could not be loaded");
        return Err(ExitCode::FAILURE);
    }
    Ok(())
}
