//! The `canhgac` command line: parses arguments and calls into the library.

use std::io::{self, BufWriter, Write};
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Instant;

use clap::{Args, Parser, Subcommand, ValueEnum};

use canhgac::config::{Config, ConfigErrors};
use canhgac::input::lines::DEFAULT_MAX_LINE;
use canhgac::output::{self, IncidentView};
use canhgac::rules::{examples, matcher::Matcher, RuleSet, RuleSources, INPUT_TYPES};
use canhgac::scan::{self, EventRecord, ScanOptions, Scanner};
use canhgac::timestamp;

#[derive(Parser)]
#[command(
    name = "canhgac",
    version,
    about = "Log-based cyber incident monitor: matches attack patterns in system logs and records incidents",
    long_about = "canhgac (\"stand guard\") reads system and web server logs, matches them against a rule set of \
attack patterns, and turns matched lines into incidents by category (phishing, deface, malware, bruteforce, \
web-attack, recon, dos, privilege-escalation, policy-violation), as the national cyber security monitoring \
center counts them."
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run log files through the rules and detector and print the incidents found.
    ///
    /// Uses the same matcher and detector as the daemon, without a store. The
    /// last line on stderr gives lines, bytes, seconds and throughput.
    Scan(ScanArgs),
    /// Validate the config and the rules it names (or, without --config, rule
    /// files alone); errors are printed as FILE:LINE:COL: MESSAGE.
    Check {
        /// The daemon's config file; its rule directories are checked too.
        #[arg(long, value_name = "FILE")]
        config: Option<PathBuf>,
        #[command(flatten)]
        rules: RuleArgs,
    },
    /// Work with rule files.
    #[command(subcommand)]
    Rules(RulesCommand),
    /// Run the daemon: tail the configured inputs and record incidents in the store.
    ///
    /// Under systemd (Type=notify) it reports READY, STATUS and WATCHDOG.
    /// SIGHUP reloads config and rules (a broken set is refused and the
    /// running one stays); SIGTERM commits what was read and exits.
    Run {
        /// The config file.
        #[arg(long, value_name = "FILE", default_value = canhgac::config::DEFAULT_PATH)]
        config: PathBuf,
        /// Format of the daemon's own log on stderr.
        #[arg(long, value_enum, default_value = "text")]
        log_format: LogFormatArg,
    },
    /// List incidents recorded in the store, oldest first.
    Incidents(IncidentsArgs),
    /// The monthly report: incidents per category this month, last month and
    /// the same month last year, year to date against the same period last
    /// year, per severity, top rules and source addresses, per input, and
    /// the last 13 months.
    ///
    /// Months are calendar months in the configured time zone. `--format json`
    /// prints the document `GET /api/v1/summary` serves.
    Report(ReportArgs),
    /// Backfill: run historical log files (plain or gzip) through the rules
    /// and detector into the store, using the time written in each line.
    ///
    /// A file whose content was imported before (under any name, compressed
    /// or not) is skipped. The daemon may keep running meanwhile. Exits with
    /// status 1 if any file could not be imported; the others are stored.
    Import(ImportArgs),
    /// Web-root integrity: accept legitimate changes, list flagged files.
    #[command(subcommand)]
    Integrity(IntegrityCommand),
}

#[derive(Subcommand)]
enum IntegrityCommand {
    /// Make the current content of PATH the baseline after a legitimate
    /// change made outside a deploy, and clear its flags.
    ///
    /// PATH is a file or directory inside a configured [[webroot]] (or the
    /// root itself: everything in it). Reads the files and writes the store
    /// directly; a running daemon picks the change up within a second. Run it
    /// as the daemon's user (`sudo -u canhgac canhgac integrity accept ...`),
    /// who can read the web root and write the store.
    Accept {
        #[arg(long, value_name = "FILE", default_value = canhgac::config::DEFAULT_PATH)]
        config: PathBuf,
        #[arg(required = true, value_name = "PATH")]
        paths: Vec<PathBuf>,
    },
    /// List the files changed outside a deploy and not accepted yet: the
    /// change, its class and the incident that raised it.
    Status {
        #[arg(long, value_name = "FILE", default_value = canhgac::config::DEFAULT_PATH)]
        config: PathBuf,
        /// Only this web root.
        #[arg(long, value_name = "NAME")]
        root: Option<String>,
        #[arg(long, value_enum, default_value = "table")]
        format: Format,
    },
}

#[derive(Args)]
struct ReportArgs {
    /// The daemon's config file (the store is in its state directory; months
    /// are in its time zone).
    #[arg(long, value_name = "FILE", default_value = canhgac::config::DEFAULT_PATH, conflicts_with = "db")]
    config: PathBuf,
    /// The store's database file itself, instead of --config.
    #[arg(long, value_name = "PATH")]
    db: Option<PathBuf>,
    /// IANA time zone of the calendar months [default: the config's; with --db, the system's].
    #[arg(long, value_name = "ZONE")]
    tz: Option<String>,
    /// The month, YYYY-MM [default: the last complete month].
    #[arg(long, value_name = "YYYY-MM", value_parser = canhgac::months::Month::parse)]
    month: Option<canhgac::months::Month>,
    #[arg(long, value_enum, default_value = "table")]
    format: ReportFormat,
    /// Language of labels, numbers and the summary sentence.
    #[arg(long, value_enum, default_value = "en")]
    lang: LangArg,
    /// Write the report to this file instead of standard output.
    #[arg(long, short = 'o', value_name = "FILE")]
    output: Option<PathBuf>,
}

#[derive(Clone, Copy, ValueEnum)]
enum ReportFormat {
    Table,
    Json,
    Csv,
    Markdown,
    Html,
}

#[derive(Clone, Copy, ValueEnum)]
enum LangArg {
    En,
    Vi,
}

#[derive(Args)]
struct ImportArgs {
    /// The daemon's config file: store, agency, time zone, rules and inputs.
    #[arg(long, value_name = "FILE", default_value = canhgac::config::DEFAULT_PATH)]
    config: PathBuf,
    /// Input type of every FILE [default: that of the configured input whose
    /// path matches the file, else recognised from its first lines].
    #[arg(long = "type", value_name = "TYPE", value_parser = clap::builder::PossibleValuesParser::new(INPUT_TYPES))]
    input_type: Option<String>,
    /// Input name recorded with the incidents [default: the configured input
    /// whose path matches the file, rotation suffixes such as .1 or .2.gz removed].
    #[arg(long, value_name = "NAME")]
    input: Option<String>,
    /// Year of syslog lines that carry none [default: inferred from each file's modification time].
    #[arg(long, value_name = "YYYY", value_parser = clap::value_parser!(i16).range(1970..=9999))]
    year: Option<i16>,
    /// Log files, plain or gzip-compressed.
    #[arg(required = true, value_name = "FILE")]
    files: Vec<PathBuf>,
}

#[derive(Clone, Copy, ValueEnum)]
enum LogFormatArg {
    Text,
    Json,
}

#[derive(Args)]
struct IncidentsArgs {
    /// The daemon's config file (the store is in its state directory).
    #[arg(long, value_name = "FILE", default_value = canhgac::config::DEFAULT_PATH, conflicts_with = "db")]
    config: PathBuf,
    /// The store's database file itself, instead of --config.
    #[arg(long, value_name = "PATH")]
    db: Option<PathBuf>,
    /// Only incidents of this category.
    #[arg(long)]
    category: Option<String>,
    /// Only incidents first seen at or after this time (RFC 3339, e.g. 2020-10-01T00:00:00+07:00).
    #[arg(long, value_name = "TIME")]
    since: Option<jiff::Timestamp>,
    /// At most this many incidents (the newest are dropped).
    #[arg(long, value_name = "N")]
    limit: Option<u32>,
    #[arg(long, value_enum, default_value = "table")]
    format: Format,
}

#[derive(Args)]
struct RuleArgs {
    /// A directory of *.yaml rule files (or one file), in addition to the
    /// built-in rules. May be repeated.
    #[arg(long = "rules", value_name = "DIR")]
    paths: Vec<PathBuf>,
    /// Do not load the rule set built into canhgac.
    #[arg(long)]
    no_default_rules: bool,
}

impl RuleArgs {
    fn load(&self) -> Result<RuleSet, ExitCode> {
        load_rules(&RuleSources {
            builtin: !self.no_default_rules,
            paths: self.paths.clone(),
            disabled: Vec::new(),
        })
    }
}

#[derive(Clone, Copy, ValueEnum)]
enum Format {
    Table,
    Json,
}

#[derive(Args)]
struct ScanArgs {
    #[command(flatten)]
    rules: RuleArgs,
    /// Take the rule directories and the IoC feeds ([[feed]]) of this
    /// daemon config too; the feed files are read before the scan.
    #[arg(long, value_name = "FILE")]
    config: Option<PathBuf>,
    /// Input type of every FILE. Without it, each file's type is recognised from its first lines.
    #[arg(long = "type", value_name = "TYPE", value_parser = clap::builder::PossibleValuesParser::new(INPUT_TYPES))]
    input_type: Option<String>,
    /// Print one JSON object per matched line instead of incidents:
    /// {"file","line","rule","category","severity","time","fields"}.
    #[arg(long)]
    events: bool,
    /// How to print incidents.
    #[arg(long, value_enum, default_value = "table")]
    format: Format,
    /// IANA time zone of log times written without an offset [default: the system's].
    #[arg(long, value_name = "ZONE")]
    tz: Option<String>,
    /// Year of syslog lines that carry none [default: inferred from each file's modification time].
    #[arg(long, value_name = "YYYY", value_parser = clap::value_parser!(i16).range(1970..=9999))]
    year: Option<i16>,
    /// Lines longer than this are cut to it (and counted).
    #[arg(long, value_name = "BYTES", default_value_t = DEFAULT_MAX_LINE)]
    max_line_bytes: usize,
    /// Most (rule, key) pairs the detector tracks at once; the least recently active are evicted.
    #[arg(long, value_name = "N", default_value_t = 100_000)]
    max_keys: usize,
    /// Log files to scan; `-` reads standard input.
    #[arg(required = true, value_name = "FILE")]
    files: Vec<PathBuf>,
}

#[derive(Subcommand)]
enum RulesCommand {
    /// Check every rule's match and no_match examples.
    ///
    /// With DIRs, tests the rule files there; without, the built-in rules.
    Test {
        /// Directories of *.yaml rule files (or single files).
        #[arg(value_name = "DIR")]
        dirs: Vec<PathBuf>,
    },
    /// Print every pattern, one per line (for `rg -f`, `grep -E -f` and the like).
    Patterns {
        /// Only the patterns of rules reading this input type.
        #[arg(long = "type", value_name = "TYPE", value_parser = clap::builder::PossibleValuesParser::new(INPUT_TYPES))]
        input_type: Option<String>,
        #[command(flatten)]
        rules: RuleArgs,
    },
    /// List the loaded rules and groups, with the file each comes from.
    ///
    /// A group member's line names its group (`-> GROUP`), whose threshold
    /// its events count toward.
    List {
        #[command(flatten)]
        rules: RuleArgs,
        /// The rule directories and `disable_rules` of this daemon config too.
        #[arg(long, value_name = "FILE")]
        config: Option<PathBuf>,
    },
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Scan(args) => run_scan(args),
        Command::Check { config, rules } => run_check(config.as_deref(), &rules),
        Command::Rules(RulesCommand::Test { dirs }) => run_rules_test(dirs),
        Command::Rules(RulesCommand::Patterns { input_type, rules }) => {
            run_patterns(&rules, input_type.as_deref())
        }
        Command::Rules(RulesCommand::List { rules, config }) => run_list(&rules, config.as_deref()),
        Command::Run { config, log_format } => run_daemon(&config, log_format),
        Command::Incidents(args) => run_incidents(&args),
        Command::Integrity(IntegrityCommand::Accept { config, paths }) => {
            run_accept(&config, &paths)
        }
        Command::Integrity(IntegrityCommand::Status {
            config,
            root,
            format,
        }) => run_integrity_status(&config, root.as_deref(), format),
        Command::Report(args) => run_report(&args),
        Command::Import(args) => run_import(&args),
    };
    result.unwrap_or_else(|code| code)
}

fn load_rules(sources: &RuleSources) -> Result<RuleSet, ExitCode> {
    let rules = RuleSet::load(sources).map_err(|errors| {
        eprintln!("{errors}");
        eprintln!("canhgac: {} error(s) in rule files", errors.0.len());
        ExitCode::FAILURE
    })?;
    for warning in &rules.warnings {
        eprintln!("canhgac: warning: {warning}");
    }
    Ok(rules)
}

/// Rules bound to the feeds of `config`, the feed files read (every bad
/// line printed as `file:line:col: message`; any makes it fail).
fn bind_feeds(rules: &mut RuleSet, config: &Config) -> Result<(), ExitCode> {
    let feeds = std::sync::Arc::new(canhgac::feeds::FeedSet::new(config.feeds.clone(), None));
    rules
        .bind_feeds(std::sync::Arc::clone(&feeds))
        .map_err(|errors| {
            eprintln!("{errors}");
            eprintln!("canhgac: {} error(s) in rule files", errors.0.len());
            ExitCode::FAILURE
        })?;
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

fn run_scan(args: ScanArgs) -> Result<ExitCode, ExitCode> {
    let (rules, trusted_proxies) = match &args.config {
        Some(path) => {
            let config = config_or_exit(Config::load_for_scan(path))?;
            let mut sources = config.rules.clone();
            sources.builtin &= !args.rules.no_default_rules;
            sources.paths.extend(args.rules.paths.iter().cloned());
            let mut rules = load_rules(&sources)?;
            bind_feeds(&mut rules, &config)?;
            (rules, config.trusted_proxies.clone())
        }
        None => (args.rules.load()?, Vec::new()),
    };
    let time_zone = match &args.tz {
        Some(name) => timestamp::zone_by_name(name).map_err(|e| {
            eprintln!("canhgac: {e}");
            ExitCode::from(2)
        })?,
        None => timestamp::system_time_zone(),
    };
    let started = Instant::now();
    let rules = std::sync::Arc::new(rules);
    let mut scanner = Scanner::new(
        std::sync::Arc::clone(&rules),
        ScanOptions {
            input_type: args.input_type.clone(),
            time_zone: time_zone.clone(),
            year: args.year,
            max_line: args.max_line_bytes,
            max_keys: args.max_keys,
            trusted_proxies,
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
                if let Err(e) = serde_json::to_writer(&mut out, &record)
                    .map_err(io::Error::from)
                    .and_then(|()| out.write_all(b"\n"))
                {
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
    if let Err(e) = written.and_then(|()| out.flush()) {
        // A closed pipe (`| head`) is the reader's choice, not an error worth a message.
        if e.kind() != io::ErrorKind::BrokenPipe {
            eprintln!("canhgac: cannot write output: {e}");
        }
        return Err(ExitCode::FAILURE);
    }
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

fn load_config(path: &std::path::Path) -> Result<Config, ExitCode> {
    config_or_exit(Config::load(path))
}

/// The config, or its errors said on stderr.
fn config_or_exit(loaded: Result<Config, ConfigErrors>) -> Result<Config, ExitCode> {
    loaded.map_err(|errors| {
        eprintln!("{errors}");
        eprintln!("canhgac: {} error(s) in config", errors.0.len());
        ExitCode::FAILURE
    })
}

fn run_check(config: Option<&std::path::Path>, args: &RuleArgs) -> Result<ExitCode, ExitCode> {
    let config = config.map(load_config).transpose()?;
    let mut rules = match &config {
        Some(c) => {
            let mut sources = c.rules.clone();
            sources.paths.extend(args.paths.iter().cloned());
            load_rules(&sources)?
        }
        None => args.load()?,
    };
    let mut feed_lines = Vec::new();
    if let Some(c) = &config {
        let feeds = std::sync::Arc::new(canhgac::feeds::FeedSet::new(c.feeds.clone(), None));
        rules.bind_feeds(feeds).map_err(|errors| {
            eprintln!("{errors}");
            eprintln!("canhgac: {} error(s) in rule files", errors.0.len());
            ExitCode::FAILURE
        })?;
        let mut bad = 0;
        let mut lines = Vec::new();
        for decl in &c.feeds {
            match canhgac::feeds::check_file(decl) {
                Ok((n, skipped)) => lines.push(format!(
                    "ok: feed {} ({} -> {}, {}): {n} indicators{}",
                    decl.name,
                    decl.kind,
                    decl.category.id(),
                    decl.severity.id(),
                    if skipped > 0 {
                        format!(", {skipped} entries of other kinds skipped")
                    } else {
                        String::new()
                    }
                )),
                Err(errors) => {
                    for e in &errors {
                        eprintln!("{e}");
                    }
                    bad += 1;
                }
            }
        }
        if bad > 0 {
            eprintln!("canhgac: {bad} feed file(s) with errors");
            return Err(ExitCode::FAILURE);
        }
        feed_lines = lines;
    }
    for t in INPUT_TYPES {
        Matcher::new(&rules, t).map_err(|e| {
            eprintln!("canhgac: {e}");
            ExitCode::FAILURE
        })?;
    }
    if let Some(c) = &config {
        println!(
            "ok: config {}: agency {}, {} input(s), state in {}",
            c.file.display(),
            c.agency,
            c.inputs.len(),
            c.state_dir.display()
        );
        println!("ok: {}", http_summary(c));
        for r in &c.integrity.roots {
            let state = match std::fs::metadata(&r.path) {
                Ok(m) if m.is_dir() => "readable".to_owned(),
                Ok(_) => "not a directory".to_owned(),
                Err(e) => e.to_string(),
            };
            println!(
                "ok: web root {} at {} ({state}), {} deploy window(s), deploy marker {}",
                r.name,
                r.path.display(),
                r.deploy.windows.len(),
                r.deploy
                    .marker
                    .as_ref()
                    .map_or("none".to_owned(), |m| m.display().to_string())
            );
        }
        for l in &feed_lines {
            println!("{l}");
        }
        for input in &c.inputs {
            check_input_files(input);
        }
    }
    let checking = rules.rules.iter().filter(|r| !r.ioc.is_empty());
    let (active, inactive): (Vec<_>, Vec<_>) = checking.partition(|r| r.is_active());
    if config.is_some() && !(active.is_empty() && inactive.is_empty()) {
        let names = |v: &[&canhgac::rules::Rule]| {
            v.iter()
                .map(|r| r.id.as_str())
                .collect::<Vec<_>>()
                .join(", ")
        };
        println!(
            "ok: {} rule(s) check feeds{}{}",
            active.len(),
            if active.is_empty() {
                String::new()
            } else {
                format!(" ({})", names(&active))
            },
            if inactive.is_empty() {
                String::new()
            } else {
                format!(
                    "; inactive without a feed of their kind: {}",
                    names(&inactive)
                )
            }
        );
    }
    println!("ok: {} rules, digest {}", rules.rules.len(), rules.digest());
    Ok(ExitCode::SUCCESS)
}

/// Reads the start of every file an input names (those it can read) and
/// warns about lines that are not of the input's type: an input whose
/// every line is read and none can ever match is worse than an error.
fn check_input_files(input: &canhgac::config::InputConfig) {
    use canhgac::config::SourceConfig;
    use canhgac::input::shape::{Shaper, FULL_CHECK_BYTES};
    use std::io::Read;
    let SourceConfig::Files { path, .. } = &input.source else {
        return;
    };
    let Ok(found) = glob::glob(path) else {
        return;
    };
    for file in found.flatten() {
        let Ok(f) = std::fs::File::open(&file) else {
            continue;
        };
        let mut head = Vec::new();
        if f.take(FULL_CHECK_BYTES).read_to_end(&mut head).is_err() {
            continue;
        }
        // Whole lines only: a cut last line is no evidence.
        if head.len() as u64 == FULL_CHECK_BYTES {
            let end = head.iter().rposition(|&b| b == b'\n').map_or(0, |i| i + 1);
            head.truncate(end);
        }
        let mut shaper = Shaper::new(&input.input_type);
        shaper.reshape(&head, 0);
        if let Some(bad) = shaper.first_bad() {
            eprintln!(
                "canhgac: warning: input {}: {}",
                input.name,
                canhgac::scan::unrecognised_warning(
                    &file.display().to_string(),
                    &input.input_type,
                    shaper.unrecognised(),
                    bad
                )
            );
        }
    }
}

/// What `check` says of `[http]`: scheme, address and credentials.
fn http_summary(c: &Config) -> String {
    use canhgac::config::MetricsAuth;
    let scheme = if c.http.tls.is_some() {
        "https"
    } else {
        "http"
    };
    let tokens = |n: usize| format!("{n} token{}", if n == 1 { "" } else { "s" });
    let metrics = match &c.http.metrics_auth {
        MetricsAuth::None => "open".to_owned(),
        MetricsAuth::Bearer(f) => format!("bearer, {}", tokens(f.tokens.len())),
        MetricsAuth::Basic { user, .. } => format!("basic, user {user}"),
    };
    let api = match &c.http.api_tokens {
        Some(f) => format!("on, {}", tokens(f.tokens.len())),
        None => "off".to_owned(),
    };
    format!(
        "http {scheme}://{}: /metrics {metrics}; API {api}",
        c.listen
    )
}

fn run_rules_test(dirs: Vec<PathBuf>) -> Result<ExitCode, ExitCode> {
    let rules = load_rules(&RuleSources {
        builtin: dirs.is_empty(),
        paths: dirs,
        disabled: Vec::new(),
    })?;
    let report = examples::check(&rules).map_err(|e| {
        eprintln!("canhgac: {e}");
        ExitCode::FAILURE
    })?;
    for f in &report.failures {
        println!("{f}");
    }
    println!(
        "{} rules, {} examples: {} passed, {} failed",
        rules.rules.len(),
        report.checked,
        report.checked - report.failed,
        report.failed
    );
    Ok(if report.failures.is_empty() {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    })
}

fn run_patterns(args: &RuleArgs, input_type: Option<&str>) -> Result<ExitCode, ExitCode> {
    let rules = args.load()?;
    let mut out = BufWriter::new(io::stdout().lock());
    for rule in &rules.rules {
        // A rule with feed checks matches through its feeds, which `-f`
        // readers do not have: its patterns alone would match every line
        // of a kind (every DNS query, every access).
        if input_type.is_some_and(|t| !rule.types.iter().any(|rt| rt == t)) || !rule.ioc.is_empty()
        {
            continue;
        }
        for p in &rule.patterns {
            // One pattern per line, without group names that would clash
            // once joined, is what `-f` readers expect.
            if writeln!(out, "{}", p.without_names().replace('\n', " ")).is_err() {
                return Err(ExitCode::FAILURE);
            }
        }
    }
    out.flush().map_err(|_| ExitCode::FAILURE)?;
    Ok(ExitCode::SUCCESS)
}

fn run_list(args: &RuleArgs, config: Option<&std::path::Path>) -> Result<ExitCode, ExitCode> {
    let rules = match config {
        Some(path) => {
            let config = load_config(path)?;
            let mut sources = config.rules.clone();
            sources.builtin &= !args.no_default_rules;
            sources.paths.extend(args.paths.iter().cloned());
            load_rules(&sources)?
        }
        None => args.load()?,
    };
    let mut out = BufWriter::new(io::stdout().lock());
    for r in &rules.rules {
        let threshold = match &r.policy.threshold {
            Some(t) => format!(
                "{}{} in {}",
                t.count,
                t.distinct
                    .as_ref()
                    .map(|d| format!(" distinct {d}"))
                    .unwrap_or_default(),
                canhgac::duration::format(t.window)
            ),
            None => "first event".into(),
        };
        let threshold = if r.ioc.is_empty() {
            threshold
        } else {
            let checks: Vec<String> = r
                .ioc
                .iter()
                .map(|c| format!("{} in {} feeds", c.field, c.kind))
                .collect();
            format!("{threshold}; {}", checks.join(", "))
        };
        let threshold = match r.role {
            canhgac::rules::Role::Member(group) => format!("-> {}", rules.rule(group).id),
            canhgac::rules::Role::Group => format!("group: {threshold}"),
            canhgac::rules::Role::Rule => threshold,
        };
        let threshold = match r.follows {
            Some(target) => format!("{threshold}; while {} is open", rules.rule(target).id),
            None => threshold,
        };
        let line = format!(
            "{:<40} {:<20} {:<8} {:<28} {:<36} {}",
            r.id,
            r.category.id(),
            r.severity.id(),
            r.types.join(","),
            threshold,
            r.pos.file
        );
        if writeln!(out, "{}", line.trim_end()).is_err() {
            return Err(ExitCode::FAILURE);
        }
    }
    out.flush().map_err(|_| ExitCode::FAILURE)?;
    Ok(ExitCode::SUCCESS)
}

fn run_daemon(config: &std::path::Path, log_format: LogFormatArg) -> Result<ExitCode, ExitCode> {
    canhgac::logging::init(match log_format {
        LogFormatArg::Text => canhgac::logging::LogFormat::Text,
        LogFormatArg::Json => canhgac::logging::LogFormat::Json,
    });
    match canhgac::daemon::run(config) {
        Ok(()) => Ok(ExitCode::SUCCESS),
        Err(e) => {
            tracing::error!("{e}");
            Err(ExitCode::FAILURE)
        }
    }
}

fn run_incidents(args: &IncidentsArgs) -> Result<ExitCode, ExitCode> {
    let (db, tz) = match &args.db {
        Some(db) => (db.clone(), timestamp::system_time_zone()),
        None => {
            let config = load_config(&args.config)?;
            (config.db_path(), config.time_zone)
        }
    };
    let store = canhgac::store::Store::open_read(&db).map_err(|e| {
        eprintln!("canhgac: {e}");
        ExitCode::FAILURE
    })?;
    let incidents = store
        .incidents(&canhgac::store::IncidentQuery {
            category: args.category.clone(),
            since: args.since,
            limit: args.limit,
            ..Default::default()
        })
        .map_err(|e| {
            eprintln!("canhgac: {e}");
            ExitCode::FAILURE
        })?;
    let mut out = BufWriter::new(io::stdout().lock());
    let views: Vec<IncidentView> = incidents.iter().map(IncidentView::stored).collect();
    let written = match args.format {
        Format::Table => output::write_table(&mut out, &views, &tz),
        Format::Json => output::write_json(&mut out, &views),
    };
    if let Err(e) = written.and_then(|()| out.flush()) {
        if e.kind() != io::ErrorKind::BrokenPipe {
            eprintln!("canhgac: cannot write output: {e}");
        }
        return Err(ExitCode::FAILURE);
    }
    eprintln!("canhgac: {} incidents in {}", incidents.len(), db.display());
    Ok(ExitCode::SUCCESS)
}

fn run_accept(config: &std::path::Path, paths: &[PathBuf]) -> Result<ExitCode, ExitCode> {
    let config = load_config(config)?;
    let mut failed = false;
    for path in paths {
        match canhgac::integrity::accept::accept(
            &config.integrity,
            &config.db_path(),
            &config.agency,
            path,
        ) {
            Ok(a) => println!(
                "accepted {} (web root {}): {} file(s) in the baseline, {} gone file(s) forgotten, {} flag(s) cleared",
                a.path.display(),
                a.root,
                a.info.baselined,
                a.info.forgotten,
                a.info.unflagged
            ),
            Err(e) => {
                eprintln!("canhgac: {e}");
                failed = true;
            }
        }
    }
    Ok(if failed {
        ExitCode::FAILURE
    } else {
        ExitCode::SUCCESS
    })
}

fn run_report(args: &ReportArgs) -> Result<ExitCode, ExitCode> {
    use canhgac::report::{self, Format as F, Lang};
    let fail = |e: &dyn std::fmt::Display| {
        eprintln!("canhgac: {e}");
        ExitCode::FAILURE
    };
    let (db, config_tz) = match &args.db {
        Some(db) => (db.clone(), None),
        None => {
            let config = load_config(&args.config)?;
            (config.db_path(), Some(config.time_zone))
        }
    };
    let tz = match &args.tz {
        Some(name) => timestamp::zone_by_name(name).map_err(|e| {
            eprintln!("canhgac: {e}");
            ExitCode::from(2)
        })?,
        None => config_tz.unwrap_or_else(timestamp::system_time_zone),
    };
    let month = args.month.unwrap_or_else(|| {
        canhgac::months::Month::containing(jiff::Timestamp::now(), &tz).previous()
    });
    let store = canhgac::store::Store::open_read(&db).map_err(|e| fail(&e))?;
    let summary = canhgac::summary::monthly(&store, month, &tz).map_err(|e| fail(&e))?;
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
    report::render(&mut buf, &summary, format, lang).map_err(|e| fail(&e))?;
    let written = match &args.output {
        Some(path) => std::fs::write(path, &buf)
            .map_err(|e| io::Error::new(e.kind(), format!("{}: {e}", path.display()))),
        None => {
            let mut out = io::stdout().lock();
            out.write_all(&buf).and_then(|()| out.flush())
        }
    };
    if let Err(e) = written {
        if e.kind() != io::ErrorKind::BrokenPipe {
            eprintln!("canhgac: cannot write the report: {e}");
        }
        return Err(ExitCode::FAILURE);
    }
    Ok(ExitCode::SUCCESS)
}

fn run_import(args: &ImportArgs) -> Result<ExitCode, ExitCode> {
    use canhgac::import::{FileOutcome, ImportOptions, Importer};
    use std::io::IsTerminal;
    let config = load_config(&args.config)?;
    let rules = std::sync::Arc::new(load_rules(&config.rules)?);
    let db = config.db_path();
    let store = canhgac::store::Store::open(&db, &config.agency).map_err(|e| {
        eprintln!("canhgac: cannot open the store {}: {e}", db.display());
        ExitCode::FAILURE
    })?;
    let mut importer = Importer::new(
        store,
        rules,
        config.inputs.clone(),
        ImportOptions {
            input_type: args.input_type.clone(),
            input: args.input.clone(),
            time_zone: config.time_zone.clone(),
            year: args.year,
            max_line: config.pipeline.max_line,
            // An import holds one file's keys; the daemon's cap is about the
            // daemon's steady memory, not a one-off run.
            max_keys: config.pipeline.max_keys.max(100_000),
            trusted_proxies: config.trusted_proxies.clone(),
        },
    )
    .map_err(|e| {
        eprintln!("canhgac: {e}");
        ExitCode::FAILURE
    })?;
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

fn run_integrity_status(
    config: &std::path::Path,
    root: Option<&str>,
    format: Format,
) -> Result<ExitCode, ExitCode> {
    let config = load_config(config)?;
    let flags = canhgac::integrity::accept::status(&config.db_path(), root).map_err(|e| {
        eprintln!("canhgac: {e}");
        ExitCode::FAILURE
    })?;
    let mut out = BufWriter::new(io::stdout().lock());
    let written = (|| -> io::Result<()> {
        match format {
            Format::Json => {
                for f in &flags {
                    let row = serde_json::json!({
                        "root": f.root,
                        "path": String::from_utf8_lossy(&f.path),
                        "change": f.flag.kind.id(),
                        "class": f.flag.class.id(),
                        "signature": f.flag.state.as_ref().and_then(|s| s.signature.clone()),
                        "incident": f.incident_uid,
                        "flagged_at": f.flagged_at.to_string(),
                    });
                    serde_json::to_writer(&mut out, &row)?;
                    writeln!(out)?;
                }
            }
            Format::Table => {
                writeln!(
                    out,
                    "{:<16} {:<10} {:<9} {:<21} {:<50} PATH",
                    "ROOT", "CLASS", "CHANGE", "FLAGGED", "INCIDENT"
                )?;
                for f in &flags {
                    let path = String::from_utf8_lossy(&f.path);
                    writeln!(
                        out,
                        "{:<16} {:<10} {:<9} {:<21} {:<50} {}",
                        f.root,
                        f.flag.class.id(),
                        f.flag.kind.id(),
                        f.flagged_at.strftime("%Y-%m-%dT%H:%M:%SZ"),
                        f.incident_uid.as_deref().unwrap_or("-"),
                        output::printable(&path, 4096)
                    )?;
                }
            }
        }
        out.flush()
    })();
    if let Err(e) = written {
        if e.kind() != io::ErrorKind::BrokenPipe {
            eprintln!("canhgac: cannot write output: {e}");
        }
        return Err(ExitCode::FAILURE);
    }
    eprintln!("canhgac: {} flagged file(s)", flags.len());
    Ok(ExitCode::SUCCESS)
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
