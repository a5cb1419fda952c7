//! The `canhgac` command line: its arguments and the dispatch to what each
//! command does, in [`cli`], which calls into the library.

mod cli;

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use clap::{Args, CommandFactory, Parser, Subcommand, ValueEnum};

use canhgac::config::Config;
use canhgac::input::lines::DEFAULT_MAX_LINE;
use canhgac::rules::{RuleSet, RuleSources, INPUT_TYPES};

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
        /// Check as this account (the service's, `canhgac`), with its groups:
        /// what it cannot read is what the daemon will not read. Needs root
        /// and `setpriv` (util-linux).
        #[arg(long, value_name = "USER")]
        as_user: Option<String>,
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
    /// Run the national center: consume every agency's incidents from NATS
    /// JetStream into the center store (`canhgac report --db` reads it).
    ///
    /// Creates or updates the stream, reads it with a durable pull consumer
    /// and acknowledges each batch only after committing it. Serves
    /// `/metrics` (national figures, agencies reporting and silent, lag).
    Center {
        /// The center's config file (docs/center.md).
        #[arg(long, value_name = "FILE", default_value = "/etc/canhgac/center.toml")]
        config: PathBuf,
        /// Format of the center's own log on stderr.
        #[arg(long, value_enum, default_value = "text")]
        log_format: LogFormatArg,
        /// Only check the config (`file:line:col: message` for each
        /// problem) and exit.
        #[arg(long)]
        check: bool,
    },
    /// List incidents recorded in the store, newest first, with filters.
    Incidents(IncidentsArgs),
    /// One incident: show it, set its status, record that it was reported.
    #[command(subcommand)]
    Incident(IncidentCommand),
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
    /// Man pages and shell completions, from these very arguments (for
    /// packagers).
    #[command(subcommand, hide = true)]
    Generate(GenerateCommand),
}

#[derive(Subcommand)]
enum GenerateCommand {
    /// canhgac.1 and one page per subcommand (canhgac-run.1, ...) into DIR.
    Man {
        #[arg(value_name = "DIR")]
        dir: PathBuf,
    },
    /// The completion script for SHELL, on stdout.
    Completions {
        #[arg(value_enum)]
        shell: clap_complete::Shell,
    },
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
    /// A form of the national coordinator instead of the monthly report:
    /// 05 is the six-monthly or yearly summary (Circular 20/2017, Mẫu số
    /// 05), for --half or --year.
    #[arg(long, value_name = "NUMBER", value_parser = ["05"], requires = "span")]
    form: Option<String>,
    /// With --form 05: the half-year, YYYY-H1 or YYYY-H2.
    #[arg(long, value_name = "YYYY-HN", group = "span", requires = "form", value_parser = canhgac::forms::summary::Period::parse_half, conflicts_with = "month")]
    half: Option<canhgac::forms::summary::Period>,
    /// With --form 05: the whole year.
    #[arg(long, value_name = "YYYY", group = "span", requires = "form", value_parser = clap::value_parser!(i16).range(1970..=9998), conflicts_with = "month")]
    year: Option<i16>,
    /// With --format csv: which table (columns named by id, stable across
    /// languages and months).
    #[arg(long, value_enum, default_value = "categories")]
    table: CsvTableArg,
    /// With --format csv: no UTF-8 byte order mark at the start (Excel on
    /// Windows needs it to read Vietnamese; some scripts do not want it).
    #[arg(long)]
    no_bom: bool,
    /// A national center's store (`canhgac center`): the report of this
    /// agency alone, from the center's copy of its incidents.
    #[arg(long, value_name = "ID")]
    agency: Option<String>,
    /// A national center's store: an agency with no heartbeat for this
    /// long is marked silent.
    #[arg(long, value_name = "DURATION", default_value = "15m", value_parser = parse_duration)]
    silent_after: std::time::Duration,
}

fn parse_duration(text: &str) -> Result<std::time::Duration, String> {
    canhgac::duration::parse(text).map(|d| d.unsigned_abs())
}

#[derive(Clone, Copy, ValueEnum)]
enum CsvTableArg {
    /// Every category and the total: the bulletin's figures.
    Categories,
    Severities,
    /// The rules with the most incidents this month.
    Rules,
    /// The source addresses with the most incidents this month.
    Sources,
    Inputs,
    /// The last 13 months, a column per category.
    Months,
    /// A national center's store: incidents per agency, and which are silent.
    Agencies,
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
    /// Year of the first syslog line that carries none; later lines follow
    /// the file's rollovers (December, then January: the next year)
    /// [default: the years that put the file's last such line at or before
    /// its modification time].
    #[arg(long, value_name = "YYYY", value_parser = clap::value_parser!(i16).range(1970..=9999))]
    year: Option<i16>,
    /// List the imports recorded in the store, with their ids.
    #[arg(long, conflicts_with_all = ["forget", "files", "year", "input", "input_type"])]
    list: bool,
    /// Remove an import and every incident it stored (its id from --list),
    /// so that a corrected import of the same file can follow.
    #[arg(long, value_name = "ID", conflicts_with_all = ["files", "year", "input", "input_type"])]
    forget: Option<String>,
    /// Log files, plain or gzip-compressed.
    #[arg(required_unless_present_any = ["list", "forget"], value_name = "FILE")]
    files: Vec<PathBuf>,
}

#[derive(Clone, Copy, ValueEnum)]
enum LogFormatArg {
    Text,
    Json,
}

#[derive(Args)]
struct IncidentsArgs {
    /// The daemon's config file (the store is in its state directory; dates
    /// are days in its time zone).
    #[arg(long, value_name = "FILE", default_value = canhgac::config::DEFAULT_PATH, conflicts_with = "db")]
    config: PathBuf,
    /// The store's database file itself, instead of --config.
    #[arg(long, value_name = "PATH")]
    db: Option<PathBuf>,
    /// Only incidents of this category.
    #[arg(long, value_name = "CATEGORY", value_parser = clap::builder::PossibleValuesParser::new(CATEGORY_IDS))]
    category: Option<String>,
    /// Only incidents of this severity.
    #[arg(long, value_name = "SEVERITY", value_parser = clap::builder::PossibleValuesParser::new(SEVERITY_IDS))]
    severity: Option<String>,
    /// Only incidents of this rule (its id, as `canhgac rules list` shows).
    #[arg(long, value_name = "RULE")]
    rule: Option<String>,
    /// Only incidents from this source address.
    #[arg(long = "src", value_name = "IP")]
    src_ip: Option<std::net::IpAddr>,
    /// Only incidents with this status.
    #[arg(long, value_name = "STATUS", value_parser = clap::builder::PossibleValuesParser::new(STATUS_IDS))]
    status: Option<String>,
    /// Only incidents first seen at or after this time: a date (the start of
    /// that day in the store's zone), YYYY-MM-DDTHH:MM[:SS] in that zone, or
    /// RFC 3339 with an offset.
    #[arg(long, value_name = "TIME", value_parser = cli::incident::parse_bound)]
    since: Option<cli::incident::Bound>,
    /// Only incidents first seen before this time; a date alone includes
    /// that whole day.
    #[arg(long, value_name = "TIME", value_parser = cli::incident::parse_bound)]
    until: Option<cli::incident::Bound>,
    /// Only incidents first seen in this calendar month (in the store's zone).
    #[arg(long, value_name = "YYYY-MM", value_parser = canhgac::months::Month::parse, conflicts_with_all = ["since", "until"])]
    month: Option<canhgac::months::Month>,
    /// Only high or critical incidents not reported to the national
    /// coordinator within `report_within_days` of detection ([organisation]).
    #[arg(long)]
    overdue: bool,
    /// At most this many incidents, newest first.
    #[arg(long, value_name = "N")]
    limit: Option<u32>,
    /// The next page: incidents older than the one with this id (the last
    /// of the previous page).
    #[arg(long, value_name = "ID")]
    after: Option<String>,
    /// Oldest first instead.
    #[arg(long)]
    oldest_first: bool,
    #[arg(long, value_enum, default_value = "table")]
    format: IncidentsFormat,
    /// With --format csv: no UTF-8 byte order mark.
    #[arg(long)]
    no_bom: bool,
}

#[derive(Clone, Copy, ValueEnum)]
enum IncidentsFormat {
    Table,
    Json,
    Csv,
}

const CATEGORY_IDS: [&str; 9] = canhgac::category::Category::ALL_IDS;
const SEVERITY_IDS: [&str; 5] = canhgac::category::Severity::ALL_IDS;
const STATUS_IDS: [&str; 4] = canhgac::store::Status::ALL_IDS;

#[derive(Subcommand)]
enum IncidentCommand {
    /// One incident: its figures, evidence, status and history.
    Show(IncidentTarget),
    /// Mark it acknowledged: someone is looking at it.
    Ack(IncidentChange),
    /// Mark it handled: dealt with.
    Handled(IncidentChange),
    /// Mark it a false positive: it leaves the reports, the monthly
    /// metrics and the counts (the reports say how many were left out).
    FalsePositive(IncidentChange),
    /// Set it back to new.
    Reopen(IncidentChange),
    /// Record that it was reported to the national coordinator (Circular
    /// 20/2017: within 5 days of detection).
    Reported(IncidentChange),
    /// The initial report of the incident to the national coordinator
    /// (Circular 20/2017/TT-BTTTT, Mẫu số 03), filled from the incident and
    /// the config's [organisation].
    Report(IncidentReportArgs),
}

#[derive(Args)]
struct IncidentReportArgs {
    /// The daemon's config file (the store, [organisation], [reporting]).
    #[arg(long, value_name = "FILE", default_value = canhgac::config::DEFAULT_PATH)]
    config: PathBuf,
    /// The incident's id, as `canhgac incidents` lists it.
    #[arg(value_name = "ID")]
    id: String,
    /// html prints on A4; docx opens in Word and LibreOffice (needs -o, or
    /// standard output that is not a terminal).
    #[arg(long, value_enum, default_value = "markdown")]
    format: FormFormat,
    #[arg(long, value_enum, default_value = "vi")]
    lang: LangArg,
    /// Write the form to this file instead of standard output.
    #[arg(long, short = 'o', value_name = "FILE")]
    output: Option<PathBuf>,
}

#[derive(Clone, Copy, PartialEq, Eq, ValueEnum)]
enum FormFormat {
    Html,
    Markdown,
    Docx,
    Json,
}

#[derive(Args)]
struct IncidentTarget {
    /// The daemon's config file (the store is in its state directory).
    #[arg(long, value_name = "FILE", default_value = canhgac::config::DEFAULT_PATH)]
    config: PathBuf,
    /// The incident's id, as `canhgac incidents` lists it.
    #[arg(value_name = "ID")]
    id: String,
    #[arg(long, value_enum, default_value = "table")]
    format: Format,
}

#[derive(Args)]
struct IncidentChange {
    /// The daemon's config file (the store is in its state directory).
    #[arg(long, value_name = "FILE", default_value = canhgac::config::DEFAULT_PATH)]
    config: PathBuf,
    /// The incident's id, as `canhgac incidents` lists it.
    #[arg(value_name = "ID")]
    id: String,
    /// Why, in a sentence: kept with the change and shown in its history.
    #[arg(long, value_name = "TEXT")]
    note: Option<String>,
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
    /// The rules these arguments name.
    fn load(&self) -> Result<RuleSet, ExitCode> {
        cli::load_rules(&RuleSources {
            builtin: !self.no_default_rules,
            paths: self.paths.clone(),
            disabled: Vec::new(),
        })
    }

    /// The rules of `config`, with these arguments' directories added and
    /// the built-in rules left out if they say so.
    fn with_config(&self, config: &Config) -> RuleSources {
        let mut sources = config.rules.clone();
        sources.builtin &= !self.no_default_rules;
        sources.paths.extend(self.paths.iter().cloned());
        sources
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
    /// Print a built-in rule file, as shipped: the start of an override.
    ///
    /// `rules list` names each rule's file (`<builtin>/auth.yaml`). Copy the
    /// file into a rules directory of the config (`canhgac rules show
    /// auth.yaml > /etc/canhgac/rules.d/auth.yaml`), keep the rules to
    /// change and edit them: a local rule with a shipped rule's id replaces it.
    Show {
        /// The file's name, as `rules list` shows it (with or without
        /// `<builtin>/`).
        #[arg(value_name = "FILE")]
        file: String,
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
    if let Some((config, db)) = cli.command.store() {
        if let Err(code) = cli::account::as_store_owner(config, db) {
            return code;
        }
    }
    let result = match cli.command {
        Command::Scan(args) => cli::scan::run(args),
        Command::Check {
            as_user: Some(user),
            ..
        } => cli::account::check_as(&user),
        Command::Check { config, rules, .. } => cli::check::run(config.as_deref(), &rules),
        Command::Rules(RulesCommand::Test { dirs }) => cli::rules::test(dirs),
        Command::Rules(RulesCommand::Patterns { input_type, rules }) => {
            cli::rules::patterns(&rules, input_type.as_deref())
        }
        Command::Rules(RulesCommand::Show { file }) => cli::rules::show(&file),
        Command::Rules(RulesCommand::List { rules, config }) => {
            cli::rules::list(&rules, config.as_deref())
        }
        Command::Run { config, log_format } => run_daemon(&config, log_format),
        Command::Center {
            config,
            log_format,
            check,
        } => run_center(&config, log_format, check),
        Command::Incidents(args) => cli::incident::list(&args),
        Command::Incident(command) => cli::incident::run(&command),
        Command::Integrity(IntegrityCommand::Accept { config, paths }) => {
            cli::integrity::accept(&config, &paths)
        }
        Command::Integrity(IntegrityCommand::Status {
            config,
            root,
            format,
        }) => cli::integrity::status(&config, root.as_deref(), format),
        Command::Report(args) => cli::report::monthly(&args),
        Command::Import(args) => cli::import::run(&args),
        Command::Generate(GenerateCommand::Man { dir }) => {
            cli::generate::man_pages(Cli::command(), &dir)
        }
        Command::Generate(GenerateCommand::Completions { shell }) => {
            cli::generate::completions(Cli::command(), shell)
        }
    };
    result.unwrap_or_else(|code| code)
}

impl Command {
    /// For commands that open the store: their config, and `--db` if given.
    fn store(&self) -> Option<(&Path, Option<&Path>)> {
        match self {
            Command::Run { config, .. }
            | Command::Integrity(
                IntegrityCommand::Accept { config, .. } | IntegrityCommand::Status { config, .. },
            ) => Some((config, None)),
            Command::Import(args) => Some((&args.config, None)),
            Command::Report(args) => Some((&args.config, args.db.as_deref())),
            Command::Incidents(args) => Some((&args.config, args.db.as_deref())),
            Command::Incident(
                IncidentCommand::Show(IncidentTarget { config, .. })
                | IncidentCommand::Ack(IncidentChange { config, .. })
                | IncidentCommand::Handled(IncidentChange { config, .. })
                | IncidentCommand::FalsePositive(IncidentChange { config, .. })
                | IncidentCommand::Reopen(IncidentChange { config, .. })
                | IncidentCommand::Reported(IncidentChange { config, .. })
                | IncidentCommand::Report(IncidentReportArgs { config, .. }),
            ) => Some((config, None)),
            _ => None,
        }
    }
}

fn init_logging(log_format: LogFormatArg) {
    canhgac::logging::init(match log_format {
        LogFormatArg::Text => canhgac::logging::LogFormat::Text,
        LogFormatArg::Json => canhgac::logging::LogFormat::Json,
    });
}

fn run_center(path: &Path, log_format: LogFormatArg, check: bool) -> Result<ExitCode, ExitCode> {
    init_logging(log_format);
    let config = canhgac::config::CenterConfig::load(path).map_err(|e| {
        eprintln!("{e}");
        ExitCode::FAILURE
    })?;
    if check {
        println!(
            "{}: OK (center {}, store {}, stream {} on {})",
            path.display(),
            config.center,
            config.db_path().display(),
            config.stream.name,
            config.nats.servers.join(", ")
        );
        return Ok(ExitCode::SUCCESS);
    }
    match canhgac::center::run(config) {
        Ok(()) => Ok(ExitCode::SUCCESS),
        Err(e) => {
            tracing::error!("{e}");
            Err(ExitCode::FAILURE)
        }
    }
}

fn run_daemon(config: &Path, log_format: LogFormatArg) -> Result<ExitCode, ExitCode> {
    init_logging(log_format);
    match canhgac::daemon::run(config) {
        Ok(()) => Ok(ExitCode::SUCCESS),
        Err(e) => {
            tracing::error!("{e}");
            Err(ExitCode::FAILURE)
        }
    }
}
