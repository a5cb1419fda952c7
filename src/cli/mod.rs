//! What the commands of `canhgac` do, one module per family; `main.rs`
//! holds their arguments and the dispatch. Here: what several commands
//! share, loading config and rules and saying why they could not be.
//! These modules belong to the binary, not the library: they print, and
//! they turn failures into exit codes.

pub(crate) mod account;
pub(crate) mod check;
pub(crate) mod generate;
pub(crate) mod import;
pub(crate) mod incident;
pub(crate) mod integrity;
pub(crate) mod report;
pub(crate) mod rules;
pub(crate) mod scan;

use std::fmt::Display;
use std::io;
use std::path::Path;
use std::process::ExitCode;

use jiff::tz::TimeZone;

use canhgac::config::{Config, ConfigErrors};
use canhgac::rules::{LoadErrors, RuleSet, RuleSources};
use canhgac::timestamp;

/// The rules of `sources`, their warnings said on stderr.
pub(crate) fn load_rules(sources: &RuleSources) -> Result<RuleSet, ExitCode> {
    let rules = RuleSet::load(sources).map_err(rule_errors)?;
    for warning in &rules.warnings {
        eprintln!("canhgac: warning: {warning}");
    }
    Ok(rules)
}

/// The daemon's config at `path`.
pub(crate) fn load_config(path: &Path) -> Result<Config, ExitCode> {
    config_or_exit(Config::load(path))
}

/// The config, or its errors said on stderr.
pub(crate) fn config_or_exit(loaded: Result<Config, ConfigErrors>) -> Result<Config, ExitCode> {
    loaded.map_err(|errors| {
        eprintln!("{errors}");
        eprintln!("canhgac: {} error(s) in config", errors.0.len());
        ExitCode::FAILURE
    })
}

/// A failure said on stderr.
pub(crate) fn fail(e: impl Display) -> ExitCode {
    eprintln!("canhgac: {e}");
    ExitCode::FAILURE
}

/// Rule files that did not load: every error, then how many.
pub(crate) fn rule_errors(errors: LoadErrors) -> ExitCode {
    eprintln!("{errors}");
    eprintln!("canhgac: {} error(s) in rule files", errors.0.len());
    ExitCode::FAILURE
}

/// The store a reading command looks at: the database file `db` if given,
/// else the one of the config at `config` (returned with it).
pub(crate) fn store_of(
    db: Option<&Path>,
    config: &Path,
) -> Result<(std::path::PathBuf, Option<Config>), ExitCode> {
    match db {
        Some(db) => Ok((db.to_path_buf(), None)),
        None => {
            let config = load_config(config)?;
            Ok((config.db_path(), Some(config)))
        }
    }
}

/// The agency's zone and its name: its config's, else the one its store
/// recorded; `None` when neither says.
pub(crate) fn agency_zone(
    config: Option<&Config>,
    store: &canhgac::store::Store,
) -> Result<Option<(String, TimeZone)>, ExitCode> {
    if let Some(c) = config {
        let name = c.time_zone.iana_name().unwrap_or(&c.time_zone_name);
        return Ok(Some((name.to_owned(), c.time_zone.clone())));
    }
    match store.time_zone().map_err(fail)? {
        Some(name) => Ok(Some((name.clone(), zone_arg(&name)?))),
        None => Ok(None),
    }
}

/// The zone a `--tz` names; an unknown one is a usage error (status 2).
pub(crate) fn zone_arg(name: &str) -> Result<TimeZone, ExitCode> {
    timestamp::zone_by_name(name).map_err(|e| {
        eprintln!("canhgac: {e}");
        ExitCode::from(2)
    })
}

/// `what` written to the end, or why not said on stderr. A closed pipe
/// (`| head`) is the reader's choice, not an error worth a message.
pub(crate) fn written_or_exit(written: io::Result<()>, what: &str) -> Result<(), ExitCode> {
    written.map_err(|e| {
        if e.kind() != io::ErrorKind::BrokenPipe {
            eprintln!("canhgac: cannot write {what}: {e}");
        }
        ExitCode::FAILURE
    })
}
