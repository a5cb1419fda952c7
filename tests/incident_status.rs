//! What an analyst does with incidents, through the built binary and the
//! daemon's API: list them with filters (newest first, CSV for Excel), set
//! a status with a note, take a false positive out of the figures, record
//! that one was reported, and change a status over HTTP with a write token
//! while a read token stays read-only.

mod common;

use std::fs;
use std::path::PathBuf;

use serde_json::Value;

use common::cli::run;
use common::daemon::Launch;

const READ_TOKEN: &str = "read-token-0123456789abcdef";
const WRITE_TOKEN: &str = "write-token-0123456789abcdef";

/// Brute force from `n` addresses in October 2026, one burst a day, each
/// six failed passwords a few seconds apart; every other address also in
/// November (a second incident).
fn auth_log(n: u32) -> String {
    let mut log = String::new();
    for month in [10, 11] {
        for i in 0..n {
            if month == 11 && i % 2 == 1 {
                continue;
            }
            let day = i % 28 + 1;
            for k in 0..6 {
                log.push_str(&format!(
                    "2026-{month:02}-{day:02}T10:00:{:02}+07:00 portal sshd[{}]: Failed password for root from 203.0.113.{} port {} ssh2\n",
                    k * 3,
                    4000 + k,
                    10 + i,
                    40000 + k
                ));
            }
        }
    }
    log
}

struct Setup {
    dir: tempfile::TempDir,
}

impl Setup {
    fn new() -> Setup {
        let dir = tempfile::tempdir().expect("tempdir");
        let root = dir.path();
        common::logs::write_private(
            &root.join("api.tokens"),
            format!("# dashboard\n{READ_TOKEN}\n").as_bytes(),
        );
        common::logs::write_private(
            &root.join("write.tokens"),
            format!("# soc-lead\n{WRITE_TOKEN}\n").as_bytes(),
        );
        let port = common::free_port();
        fs::write(root.join("live.log"), b"").expect("log");
        fs::write(
            root.join("canhgac.toml"),
            format!(
                r#"agency = "so-tttt-test"
agency_name = "Sở TT&TT Thử nghiệm"
time_zone = "Asia/Ho_Chi_Minh"
state_dir = "state"

[http]
listen = "127.0.0.1:{port}"
api_token_file = "api.tokens"
api_write_token_file = "write.tokens"

[[input]]
name = "auth"
path = "live.log"
type = "syslog"
start = "beginning"
"#
            ),
        )
        .expect("config");
        fs::write(root.join("auth.log"), auth_log(10)).expect("log");
        let s = Setup { dir };
        let (ok, out, err) = s.run(&["import", "--input", "auth", &s.path("auth.log")]);
        assert!(ok && err.contains("0 failed"), "{out}{err}");
        s
    }

    fn path(&self, name: &str) -> String {
        self.dir.path().join(name).display().to_string()
    }

    fn config(&self) -> PathBuf {
        self.dir.path().join("canhgac.toml")
    }

    /// `canhgac ARGS --config <this config>` (the config after the
    /// subcommand's own words).
    fn run(&self, args: &[&str]) -> (bool, String, String) {
        let config = self.path("canhgac.toml");
        let split = args
            .iter()
            .position(|a| a.starts_with('-') || a.contains('/'));
        let (words, rest) = args.split_at(split.unwrap_or(args.len()));
        let mut all: Vec<&str> = words.to_vec();
        all.extend(["--config", &config]);
        all.extend(rest);
        run(&all)
    }

    /// The daemon on this config, ready, its HTTP side on the config's
    /// `listen`.
    fn daemon(&self) -> common::daemon::Daemon {
        let text = fs::read_to_string(self.config()).expect("config");
        let listen = text
            .lines()
            .find_map(|l| l.strip_prefix("listen = \""))
            .and_then(|l| l.strip_suffix('"'))
            .expect("listen");
        Launch::new(&self.config())
            .log_file(self.dir.path().join("daemon.log"))
            .http(format!("http://{listen}"))
            .ready()
    }

    fn incidents_json(&self, args: &[&str]) -> Vec<Value> {
        let mut all = vec!["incidents", "--format", "json"];
        all.extend(args);
        let (ok, out, err) = self.run(&all);
        assert!(ok, "{err}");
        serde_json::from_str::<Value>(&out)
            .expect("json")
            .as_array()
            .expect("array")
            .clone()
    }

    fn report_json(&self, month: &str) -> Value {
        let (ok, out, err) = self.run(&["report", "--month", month, "--format", "json"]);
        assert!(ok, "{err}");
        serde_json::from_str(&out).expect("json")
    }
}

fn db(s: &Setup) -> PathBuf {
    s.dir.path().join("state/canhgac.db")
}

#[test]
fn listing_filters_newest_first_and_csv_for_excel() {
    let s = Setup::new();
    let all = s.incidents_json(&[]);
    assert_eq!(all.len(), 15, "10 in October, 5 in November");
    let firsts: Vec<&str> = all
        .iter()
        .map(|i| i["first_seen"].as_str().expect("time"))
        .collect();
    let mut sorted = firsts.clone();
    sorted.sort_unstable_by(|a, b| b.cmp(a));
    assert_eq!(firsts, sorted, "newest first");
    assert!(all.iter().all(|i| i["status"] == "new"));

    // A date alone is a day in the configured zone; --until includes it.
    let oct = s.incidents_json(&["--month", "2026-10"]);
    assert_eq!(oct.len(), 10);
    let days = s.incidents_json(&["--since", "2026-10-02", "--until", "2026-10-03"]);
    assert_eq!(days.len(), 2, "{days:?}");
    // A local time is that minute in the zone, not its whole day.
    let minute = s.incidents_json(&["--since", "2026-10-02T10:00", "--until", "2026-10-02T10:01"]);
    assert_eq!(minute.len(), 1, "{minute:?}");
    let before = s.incidents_json(&["--since", "2026-10-02T00:00", "--until", "2026-10-02T09:59"]);
    assert_eq!(before.len(), 0, "{before:?}");
    // No rows: the header still says what a listing holds.
    let (ok, empty, _) = s.run(&["incidents", "--rule", "no-such-rule"]);
    assert!(
        ok && empty.starts_with("ID ") && empty.contains("STATUS"),
        "{empty}"
    );
    let one = s.incidents_json(&["--src", "203.0.113.12", "--month", "2026-11"]);
    assert_eq!(one.len(), 1);
    assert_eq!(
        s.incidents_json(&["--rule", "no-such-rule"]).len(),
        0,
        "an unknown rule is a filter that matches nothing"
    );
    assert_eq!(s.incidents_json(&["--severity", "critical"]).len(), 0);

    // Paging: --limit, then --after the last id.
    let (ok, out, err) = s.run(&["incidents", "--limit", "4", "--format", "json"]);
    assert!(ok, "{err}");
    let page: Vec<Value> = serde_json::from_str(&out).expect("json");
    assert_eq!(page.len(), 4);
    let last = page[3]["uid"].as_str().expect("uid");
    assert!(err.contains(&format!("--after {last}")), "{err}");
    let next = s.incidents_json(&["--limit", "20", "--after", last]);
    assert_eq!(next.len(), 11);
    assert_eq!(next[0]["uid"], all[4]["uid"]);

    // A typo is an error naming the valid values.
    let (ok, _, err) = s.run(&["incidents", "--category", "brute"]);
    assert!(!ok);
    assert!(
        err.contains("bruteforce") && err.contains("web-attack"),
        "{err}"
    );

    // The table has an id column to copy into `canhgac incident`.
    let (ok, table, _) = s.run(&["incidents", "--limit", "1"]);
    assert!(ok);
    assert!(table.starts_with("ID "), "{table}");
    assert!(table.contains(all[0]["uid"].as_str().expect("uid")));

    // CSV: a byte order mark, stable columns, one row per incident.
    let (ok, csv, err) = s.run(&["incidents", "--format", "csv"]);
    assert!(ok, "{err}");
    assert!(csv.starts_with(
        "\u{feff}id,rule,category,severity,key,src_ip,input,first_seen,last_seen,events,status,sample\r\n"
    ));
    assert_eq!(csv.split("\r\n").filter(|l| !l.is_empty()).count(), 16);
    let (ok, csv, _) = s.run(&["incidents", "--format", "csv", "--no-bom"]);
    assert!(ok && csv.starts_with("id,"));
}

#[test]
fn status_changes_and_a_false_positive_leaves_the_figures() {
    let s = Setup::new();
    let oct = s.incidents_json(&["--month", "2026-10"]);
    let fp = oct[0]["uid"].as_str().expect("uid").to_owned();
    let acked = oct[1]["uid"].as_str().expect("uid").to_owned();
    let before = s.report_json("2026-10");
    assert_eq!(before["total"]["this_month"], 10);
    assert_eq!(before["false_positives"], 0);

    let (ok, out, err) = s.run(&["incident", "ack", &acked, "--note", "looking at it"]);
    assert!(ok, "{err}");
    assert!(out.contains("acknowledged"), "{out}");
    let (ok, _, err) = s.run(&[
        "incident",
        "false-positive",
        &fp,
        "--note",
        "our own scanner",
    ]);
    assert!(ok, "{err}");

    // Out of every figure, and said so.
    let after = s.report_json("2026-10");
    assert_eq!(after["total"]["this_month"], 9);
    assert_eq!(after["false_positives"], 1);
    let bruteforce = after["categories"]
        .as_array()
        .expect("categories")
        .iter()
        .find(|c| c["category"] == "bruteforce")
        .expect("bruteforce")
        .clone();
    assert_eq!(bruteforce["this_month"], 9);
    let (ok, table, _) = s.run(&["report", "--month", "2026-10"]);
    assert!(ok);
    assert!(
        table.contains("1 incident marked false positive is left out"),
        "{table}"
    );
    let (ok, table, _) = s.run(&["report", "--month", "2026-10", "--lang", "vi"]);
    assert!(ok);
    assert!(
        table.contains("đã loại 1 sự cố được xác định là cảnh báo nhầm"),
        "{table}"
    );
    // November compares with October without it.
    let nov = s.report_json("2026-11");
    assert_eq!(nov["total"]["last_month"], 9);

    // Listed with its status, and by status.
    let fps = s.incidents_json(&["--status", "false-positive"]);
    assert_eq!(fps.len(), 1);
    assert_eq!(fps[0]["uid"], fp.as_str());
    assert_eq!(s.incidents_json(&["--status", "acknowledged"]).len(), 1);
    assert_eq!(s.incidents_json(&["--status", "new"]).len(), 13);

    // show: status, who, the note, the history.
    let (ok, shown, err) = s.run(&["incident", "show", &fp, "--format", "json"]);
    assert!(ok, "{err}");
    let v: Value = serde_json::from_str(&shown).expect("json");
    assert_eq!(v["status"]["status"], "false-positive");
    assert_eq!(v["status"]["note"], "our own scanner");
    assert!(v["status"]["changed_by"]
        .as_str()
        .expect("who")
        .starts_with("local:"));
    assert_eq!(v["history"][0]["action"], "false-positive");

    // Back into the figures when reopened; reported is recorded apart.
    let (ok, _, _) = s.run(&["incident", "reopen", &fp]);
    assert!(ok);
    assert_eq!(s.report_json("2026-10")["total"]["this_month"], 10);
    let (ok, _, _) = s.run(&["incident", "reported", &acked]);
    assert!(ok);
    let (ok, shown, _) = s.run(&["incident", "show", &acked]);
    assert!(ok);
    assert!(shown.contains("status:     acknowledged"), "{shown}");
    assert!(shown.contains("reported:   2"), "{shown}");
    let (ok, _, err) = s.run(&["incident", "ack", "so-tttt-test-nope"]);
    assert!(!ok);
    assert!(err.contains("no incident has id"), "{err}");

    // Imported history is never overdue: no deadline ran for it.
    assert_eq!(s.incidents_json(&["--overdue"]).len(), 0);
}

#[test]
fn the_store_keeps_its_zone_for_reports_of_the_bare_file() {
    let s = Setup::new();
    let db = db(&s);
    let db = db.to_str().expect("path");
    // The tests run with TZ=UTC: the store's zone is used, not the system's.
    let (ok, out, err) = run([
        "report", "--db", db, "--month", "2026-10", "--format", "json",
    ]);
    assert!(ok, "{err}");
    let v: Value = serde_json::from_str(&out).expect("json");
    assert_eq!(v["time_zone"], "Asia/Ho_Chi_Minh");
    assert_eq!(v["total"]["this_month"], 10);
    // ...and names the agency as its own reports do.
    assert_eq!(v["agency"], "so-tttt-test");
    assert_eq!(v["agency_name"], "Sở TT&TT Thử nghiệm");
    assert!(v.get("agency_time_zone").is_none());
    // Another zone on purpose is said, on stderr and in the report.
    let (ok, out, err) = run(["report", "--db", db, "--month", "2026-10", "--tz", "UTC"]);
    assert!(ok, "{err}");
    assert!(
        err.contains("not in the agency's zone Asia/Ho_Chi_Minh"),
        "{err}"
    );
    assert!(
        out.contains("not the agency's zone, Asia/Ho_Chi_Minh"),
        "{out}"
    );
}

#[test]
fn the_api_changes_a_status_only_with_a_write_token() {
    let s = Setup::new();
    let id = s.incidents_json(&["--month", "2026-10"])[0]["uid"]
        .as_str()
        .expect("uid")
        .to_owned();
    let daemon = s.daemon();
    let read = format!("Bearer {READ_TOKEN}");
    let write = format!("Bearer {WRITE_TOKEN}");
    let path = format!("/api/v1/incidents/{id}/status");
    let body = r#"{"status": "handled", "note": "blocked at the firewall"}"#;

    let refused = daemon.post_with(&path, Some(&read), body).expect("answer");
    assert_eq!(refused.status, 403, "{}", refused.body);
    let nobody = daemon.post_with(&path, None, body).expect("answer");
    assert_eq!(nobody.status, 401);
    let bad = daemon
        .post_with(&path, Some(&write), r#"{"status": "done"}"#)
        .expect("answer");
    assert_eq!(bad.status, 400);
    assert!(bad.body.contains("false-positive"), "{}", bad.body);

    let done = daemon.post_with(&path, Some(&write), body).expect("answer");
    assert_eq!(done.status, 200, "{}", done.body);
    let v: Value = serde_json::from_str(&done.body).expect("json");
    assert_eq!(v["status"], "handled");
    assert_eq!(v["changed_by"], "api:soc-lead");

    // Both tokens read it back, with its history.
    for token in [&read, &write] {
        let got = daemon
            .get_with(&format!("/api/v1/incidents/{id}"), Some(token))
            .expect("answer");
        assert_eq!(got.status, 200);
        let v: Value = serde_json::from_str(&got.body).expect("json");
        assert_eq!(v["status"], "handled");
        assert_eq!(v["status_detail"]["note"], "blocked at the firewall");
        assert_eq!(v["history"][0]["by"], "api:soc-lead");
    }
    let reported = daemon
        .post_with(
            &format!("/api/v1/incidents/{id}/reported"),
            Some(&write),
            "",
        )
        .expect("answer");
    assert_eq!(reported.status, 200, "{}", reported.body);
    let missing = daemon
        .post_with(
            "/api/v1/incidents/so-tttt-test-nope/status",
            Some(&write),
            body,
        )
        .expect("answer");
    assert_eq!(missing.status, 404);

    // The change is in the daemon's log with the token's name, and the
    // audit trail names the write token too.
    daemon.wait_log(0, "token=soc-lead");
    assert!(
        !daemon.log_text().contains("token invalid: 200"),
        "{}",
        daemon.log_text()
    );
    daemon.stop();
    let (ok, shown, _) = s.run(&["incident", "show", &id]);
    assert!(ok);
    assert!(shown.contains("handled"), "{shown}");
    assert!(shown.contains("api:soc-lead"), "{shown}");
}

/// A false positive set from the command line leaves `/metrics` at the
/// next scrape, not when the figures' cache would have expired.
#[test]
fn a_false_positive_leaves_the_metrics_at_the_next_scrape() {
    let s = Setup::new();
    let daemon = s.daemon();
    // A brute force now, from a fresh address.
    let now = jiff::Zoned::now().with_time_zone(jiff::tz::TimeZone::UTC);
    let mut lines = String::new();
    for k in 0..6 {
        lines.push_str(&format!(
            "{} portal sshd[77{k}]: Failed password for root from 192.0.2.77 port 5100{k} ssh2\n",
            now.strftime("%Y-%m-%dT%H:%M:%S%:z")
        ));
    }
    common::logs::append(&s.dir.path().join("live.log"), lines.as_bytes());
    let series = "canhgac_incidents_period{category=\"bruteforce\",period=\"this_month\"}";
    let this_month = |page: &str| -> Option<f64> {
        page.lines()
            .find_map(|l| l.strip_prefix(series))
            .and_then(|v| v.trim().parse().ok())
    };
    let before = daemon.wait("the live incident in this month's figure", || {
        let page = daemon.metrics()?;
        this_month(&page).filter(|n| *n >= 1.0)
    });
    let live = s
        .incidents_json(&["--src", "192.0.2.77"])
        .first()
        .and_then(|i| i["uid"].as_str().map(str::to_owned))
        .expect("the live incident");
    let (ok, _, err) = s.run(&["incident", "false-positive", &live]);
    assert!(ok, "{err}");
    let page = daemon.metrics().expect("a scrape");
    assert_eq!(this_month(&page), Some(before - 1.0), "{page}");
    daemon.stop();
}
