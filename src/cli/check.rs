//! `check`: the config, its rules and feed files validated, and what would
//! run summed up, before the daemon is (re)started with them.

use std::path::Path;
use std::process::ExitCode;

use canhgac::config::Config;
use canhgac::rules::{matcher::Matcher, INPUT_TYPES};

use super::{fail, load_config, load_rules, rule_errors};
use crate::RuleArgs;

pub(crate) fn run(config: Option<&Path>, args: &RuleArgs) -> Result<ExitCode, ExitCode> {
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
        rules.bind_feeds(feeds).map_err(rule_errors)?;
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
        Matcher::new(&rules, t).map_err(fail)?;
    }
    if let Some(c) = &config {
        // The daemon's own refusal, before systemd starts (and restarts) it
        // on a store it cannot open: after a downgrade, say.
        canhgac::store::check_file(&c.db_path()).map_err(|e| {
            eprintln!("canhgac: {e}");
            ExitCode::FAILURE
        })?;
        println!(
            "ok: config {}: agency {}, {} input(s), state in {}",
            c.file.display(),
            c.agency,
            c.inputs.len(),
            c.state_dir.display()
        );
        println!("ok: {}", http_summary(c));
        println!("ok: {}", forms_summary(c));
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
            check_input_files(c, input);
        }
        for (name, file) in &c.inputs_left_out {
            println!(
                "ok: input {name} not read: {} exists, and the same lines are read there",
                file.display()
            );
        }
        check_exposure(c);
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

/// What the daemon would meet reading an input's files, as this account
/// (the service's, when the unit runs `check`): a directory that does not
/// exist, no file matched yet, a file it cannot open, at the input's `path`
/// in the config. And, of the files it can read, lines that are not of the
/// input's type: an input whose every line is read and none can ever match
/// is worse than an error. For a journal input, a machine that cannot read
/// the journal at all (no libsystemd). Warnings all: the daemon starts and
/// retries.
fn check_input_files(config: &Config, input: &canhgac::config::InputConfig) {
    use canhgac::config::SourceConfig;
    use canhgac::input::shape::{Shaper, FULL_CHECK_BYTES};
    use std::io::Read;
    let warn = |message: String| {
        eprintln!(
            "canhgac: warning: {}: input {}: {message}",
            input.at.0, input.name
        );
    };
    if let SourceConfig::Journal { .. } = &input.source {
        if let Err(why) = canhgac::input::journal::readable() {
            warn(why);
        }
        return;
    }
    if let SourceConfig::Syslog {
        transport: canhgac::input::syslog::Transport::Udp,
        receive_buffer,
        ..
    } = &input.source
    {
        let cap = canhgac::input::syslog::receive_buffer_cap();
        if let Some(cap) = cap.filter(|&cap| cap < *receive_buffer) {
            warn(format!(
                "net.core.rmem_max is {cap}: a UDP socket the daemon binds gets a receive buffer of {cap} bytes, not the {receive_buffer} asked for: {}",
                canhgac::input::syslog::receive_buffer_advice(*receive_buffer)
            ));
        }
        return;
    }
    let SourceConfig::Files { path, .. } = &input.source else {
        return;
    };
    let dir = canhgac::input::tail::base_dir(path);
    if let Err(e) = std::fs::read_dir(&dir) {
        warn(if e.kind() == std::io::ErrorKind::NotFound {
            format!(
                "directory {} does not exist: nothing is read until it does",
                dir.display()
            )
        } else {
            format!("cannot list {}: {e}{}", dir.display(), as_whom())
        });
        return;
    }
    let Ok(found) = glob::glob(path) else {
        return;
    };
    let files: Vec<_> = found.flatten().filter(|p| p.is_file()).collect();
    if files.is_empty() {
        match config.stands_in_for(path) {
            Some(other) => println!(
                "ok: input {}: {path} does not exist; input {} reads the same lines",
                input.name, other.name
            ),
            None => warn(format!("no file matches {path} yet")),
        }
    }
    for file in files {
        let f = match std::fs::File::open(&file) {
            Ok(f) => f,
            Err(e) => {
                warn(format!("cannot open {}: {e}{}", file.display(), as_whom()));
                continue;
            }
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

/// ` (as uid N)`: who could not read it, as permissions depend on it.
fn as_whom() -> String {
    use std::os::unix::fs::MetadataExt;
    std::fs::metadata("/proc/self").map_or_else(
        |_| String::new(),
        |m| {
            format!(
                " (as uid {}; the service runs as {})",
                m.uid(),
                canhgac::secret::SERVICE_USER
            )
        },
    )
}

/// Listening beyond loopback without TLS, or with `/metrics` open to
/// anyone who reaches it, at `listen` in `[http]`.
fn check_exposure(c: &Config) {
    use canhgac::config::MetricsAuth;
    let open = matches!(c.http.metrics_auth, MetricsAuth::None);
    let Some(warning) = canhgac::http::exposure(c.listen, c.http.tls.is_some(), open) else {
        return;
    };
    let at = c
        .listen_at
        .as_ref()
        .map_or_else(|| c.file.display().to_string(), |a| a.0.to_string());
    eprintln!("canhgac: warning: {at}: {warning}");
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
    let mut api = match &c.http.api_tokens {
        Some(f) => format!("on, {}", tokens(f.tokens.len())),
        None if c.http.api_write_tokens.is_some() => "on".to_owned(),
        None => "off".to_owned(),
    };
    if let Some(f) = &c.http.api_write_tokens {
        api.push_str(&format!(
            ", {} that may change statuses",
            tokens(f.tokens.len())
        ));
    }
    format!(
        "http {scheme}://{}: /metrics {metrics}; API {api}",
        c.listen
    )
}

/// The forms in use, and the `[organisation]` fields the initial report
/// will say are not given.
fn forms_summary(c: &Config) -> String {
    let o = &c.organisation;
    let s = &o.system;
    let missing: Vec<&str> = [
        ("name", o.name.is_some() || c.agency_name.is_some()),
        ("address", o.address.is_some()),
        ("contact_name", o.contact_name.is_some()),
        ("contact_phone", o.contact_phone.is_some()),
        ("contact_email", o.contact_email.is_some()),
        ("system.name", s.name.is_some()),
        ("system.governing_body", s.governing_body.is_some()),
        ("system.security_level", s.security_level.is_some()),
    ]
    .into_iter()
    .filter(|(_, given)| !given)
    .map(|(key, _)| key)
    .collect();
    let forms = &c.reporting.forms;
    let mut line = format!(
        "forms {} (Mẫu {} and {}), report within {} days",
        forms.id, forms.initial.number, forms.summary.number, o.report_within_days
    );
    if !missing.is_empty() {
        line.push_str(&format!(
            "; [organisation] does not give {}: the initial report will say so",
            missing.join(", ")
        ));
    }
    line
}
