//! The default rules against logs that real machines wrote (`../shared/corpus`):
//! the built binary must find exactly the attackers an analyst finds by reading
//! the lines, and raise nothing on traffic an analyst calls benign.

mod common;

use std::collections::{BTreeMap, BTreeSet};

use serde_json::Value;

use common::corpus;

/// Incidents of `scan --format json` over one corpus file.
fn scan(name: &str) -> Vec<Value> {
    common::cli::scan([corpus(name)]).0
}

fn keys_of(incidents: &[Value], category: &str) -> BTreeSet<String> {
    incidents
        .iter()
        .filter(|i| i["category"] == category)
        .map(|i| i["key"].as_str().expect("key is a string").to_owned())
        .collect()
}

/// Asserts that the keys of the incidents of `category` are exactly `want`.
fn assert_keys(incidents: &[Value], category: &str, want: &[&str]) {
    let want: BTreeSet<String> = want.iter().map(|s| s.to_string()).collect();
    assert_eq!(keys_of(incidents, category), want, "{category}");
}

#[test]
fn openssh_brute_force_sources_are_exactly_the_attackers() {
    let incidents = scan("openssh_2k.log");
    // Read off the file: every address with at least five failed logins
    // (passwords, PAM, invalid users) close together, or slow guessing of
    // non-existent accounts over hours. 5.36.59.76 and 106.5.5.195 each
    // tried six root passwords in half a minute on one connection, logged
    // as one `Failed password` and `message repeated 5 times`.
    assert_keys(
        &incidents,
        "bruteforce",
        &[
            "183.62.140.253",
            "187.141.143.180",
            "103.99.0.122",
            "112.95.230.3",
            "5.188.10.180",
            "185.190.58.151",
            "123.235.32.19",
            "119.4.203.64",
            "60.2.12.12",
            "52.80.34.196",
            "5.36.59.76",
            "106.5.5.195",
            // Three default accounts each (support, uucp, admin) in ten
            // seconds: a bot's list, not a person mistyping.
            "103.207.39.16",
            "103.207.39.212",
        ],
    );
    let top = incidents
        .iter()
        .filter(|i| i["key"] == "183.62.140.253")
        .map(|i| i["events"].as_u64().unwrap_or(0))
        .sum::<u64>();
    // Each of its attempts is a PAM line and a `Failed password` line of
    // one process: attempts, not lines, so as many as sshd's own lines.
    let text = std::fs::read_to_string(corpus("openssh_2k.log")).expect("corpus readable");
    let attempts = text
        .lines()
        .filter(|l| l.contains("Failed password") && l.contains("from 183.62.140.253 "))
        .count() as u64;
    assert!(attempts >= 250, "the corpus has hundreds: {attempts}");
    // Its incident is one of the merged bruteforce groups (the account
    // spray reached three accounts first); the attempt group's own count
    // before it joined adds at most its threshold again.
    assert!(
        (attempts..=attempts + 10).contains(&top),
        "183.62.140.253: {top} events for {attempts} attempts"
    );
    // One attacker seen by several sshd rules is one incident per burst, not one per rule.
    let per_key: BTreeMap<&str, usize> = incidents
        .iter()
        .filter(|i| i["category"] == "bruteforce")
        .fold(BTreeMap::new(), |mut m, i| {
            *m.entry(i["key"].as_str().unwrap_or("")).or_insert(0) += 1;
            m
        });
    assert!(
        per_key.values().all(|&n| n <= 2),
        "duplicate incidents per attacker: {per_key:?}"
    );
}

/// Month and day in a classic syslog stamp to an ordinal, for windows.
fn syslog_seconds(line: &str) -> Option<i64> {
    const MONTHS: [&str; 12] = [
        "Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec",
    ];
    let month = MONTHS.iter().position(|m| line.starts_with(m))? as i64;
    let mut parts = line.get(4..15)?.split([' ', ':']).filter(|p| !p.is_empty());
    let mut next = || parts.next()?.parse::<i64>().ok();
    let (day, h, m, s) = (next()?, next()?, next()?, next()?);
    Some((((month * 31 + day) * 24 + h) * 60 + m) * 60 + s)
}

#[test]
fn linux_syslog_brute_force_sources_match_an_independent_count() {
    let incidents = scan("linux_syslog_2k.log");
    // Independently of the rules: sources with five PAM authentication
    // failures within ten minutes.
    let text = std::fs::read(corpus("linux_syslog_2k.log")).expect("corpus readable");
    let mut times: BTreeMap<String, Vec<i64>> = BTreeMap::new();
    for line in String::from_utf8_lossy(&text).lines() {
        if !line.contains("authentication failure;") {
            continue;
        }
        let Some(rhost) = line
            .split_whitespace()
            .find_map(|w| w.strip_prefix("rhost="))
            .filter(|h| !h.is_empty())
        else {
            continue;
        };
        if let Some(t) = syslog_seconds(line) {
            times.entry(rhost.to_owned()).or_default().push(t);
        }
    }
    let expected: BTreeSet<String> = times
        .into_iter()
        .filter(|(_, ts)| ts.windows(5).any(|w| w[4] - w[0] < 600))
        .map(|(host, _)| host)
        .collect();
    assert!(expected.len() >= 30, "the corpus has dozens of attackers");
    assert_eq!(keys_of(&incidents, "bruteforce"), expected);
    let events_of = |key: &str| -> u64 {
        incidents
            .iter()
            .filter(|i| i["key"] == key && i["category"] == "bruteforce")
            .map(|i| i["events"].as_u64().unwrap_or(0))
            .sum()
    };
    assert_eq!(events_of("150.183.249.110"), 80);
}

#[test]
fn apache_access_raises_only_the_admin_panel_probes() {
    let incidents = scan("apache_access_10k.log");
    // Reviewed by hand: each of these requested several admin pages
    // (/admin.php, /wp-login.php, /phpmyadmin/...) within minutes; the rest
    // of the file is crawlers and readers.
    assert_keys(
        &incidents,
        "recon",
        &[
            "195.250.34.144",
            "95.78.54.93",
            "198.245.61.43",
            "188.165.243.45",
            "91.236.75.25",
        ],
    );
    assert_eq!(incidents.len(), 5, "no other incidents: {incidents:#?}");
    assert!(incidents
        .iter()
        .all(|i| i["rule"] == "web-admin-panel-probe"));
}

#[test]
fn apache_error_log_of_a_healthy_server_raises_nothing() {
    let incidents = scan("apache_error_2k.log");
    assert!(incidents.is_empty(), "false positives: {incidents:#?}");
}

#[test]
fn every_shipped_rule_documents_itself_with_examples() {
    let rules = common::builtin_rules();
    assert!(rules.rules.len() >= 30);
    for rule in &rules.rules {
        if rule.role == canhgac::rules::Role::Group || rule.rate.is_some() {
            // Matches no lines: its members carry the examples (a request
            // rate counts every line; tests/evidence.rs shows it).
            assert!(!rule.tags.is_empty(), "{}: no ATT&CK tag", rule.id);
            continue;
        }
        let matching = rule.examples.iter().filter(|e| e.must_match).count();
        let not_matching = rule.examples.len() - matching;
        assert!(
            matching >= 2 && not_matching >= 2,
            "{}: needs at least two match and two no_match examples ({matching}/{not_matching})",
            rule.id
        );
        assert!(
            rule.examples.iter().any(|e| e.fields.is_some()),
            "{}: no example says which fields it yields",
            rule.id
        );
        assert!(!rule.tags.is_empty(), "{}: no ATT&CK tag", rule.id);
    }
}
