//! `rules test`, `rules patterns` and `rules list`: the rule files seen
//! from the outside, for their authors.

use std::io::{self, BufWriter, Write};
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use canhgac::rules::{examples, RuleSources};

use super::{fail, load_config, load_rules};
use crate::RuleArgs;

pub(crate) fn test(dirs: Vec<PathBuf>) -> Result<ExitCode, ExitCode> {
    let rules = load_rules(&RuleSources {
        builtin: dirs.is_empty(),
        paths: dirs,
        disabled: Vec::new(),
    })?;
    let report = examples::check(&rules).map_err(fail)?;
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

pub(crate) fn patterns(args: &RuleArgs, input_type: Option<&str>) -> Result<ExitCode, ExitCode> {
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

pub(crate) fn show(file: &str) -> Result<ExitCode, ExitCode> {
    let name = file.strip_prefix("<builtin>/").unwrap_or(file);
    let Some((_, text)) = canhgac::rules::builtin::BUILTIN_RULES
        .iter()
        .find(|(n, _)| *n == name)
    else {
        let names: Vec<&str> = canhgac::rules::builtin::BUILTIN_RULES
            .iter()
            .map(|(n, _)| *n)
            .collect();
        eprintln!(
            "canhgac: no built-in rule file {name:?}; there are: {}",
            names.join(", ")
        );
        return Err(ExitCode::FAILURE);
    };
    io::stdout().write_all(text.as_bytes()).map_err(fail)?;
    Ok(ExitCode::SUCCESS)
}

pub(crate) fn list(args: &RuleArgs, config: Option<&Path>) -> Result<ExitCode, ExitCode> {
    let rules = match config {
        Some(path) => {
            let config = load_config(path)?;
            load_rules(&args.with_config(&config))?
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
