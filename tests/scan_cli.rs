//! `canhgac scan`, `check` and `rules test` as a user meets them: the built
//! binary, real files, rule directories written for the test.

mod common;

use std::fs;
use std::path::PathBuf;
use std::time::{Duration, SystemTime};

use assert_cmd::assert::Assert;
use assert_cmd::Command;
use predicates::prelude::*;
use serde_json::Value;
use tempfile::TempDir;

use common::cli::{self, assert_cmd as canhgac};
use common::site::Site;

const RULES: &str = r#"rules:
  - id: test-ssh-fail
    title: SSH failure
    description: test rule
    category: bruteforce
    severity: medium
    types: [syslog]
    patterns:
      - 'sshd\[\d+\]: Failed password for (?:invalid user )?(?P<user>\S+) from (?P<src_ip>[0-9a-fA-F:.]+)'
    threshold: { count: 3, window: 10m }
    cooldown: 30m
    examples:
      match:
        - line: 'Oct 31 23:30:00 h sshd[1]: Failed password for root from 10.0.0.1 port 22 ssh2'
          fields: { user: root, src_ip: 10.0.0.1 }
        - 'Oct 31 23:30:00 h sshd[1]: Failed password for invalid user x from ::1 port 22 ssh2'
      no_match:
        - 'Oct 31 23:30:00 h sshd[1]: Accepted password for root from 10.0.0.1 port 22 ssh2'
        - 'Oct 31 23:30:00 h sshd[1]: Failed none for root'
  - id: test-evil
    title: evil word
    description: test rule without threshold
    category: malware
    severity: high
    types: [syslog, apache, app]
    patterns: ['evil (?P<what>\w+)']
    examples:
      match: ['evil thing', 'an evil plan']
      no_match: ['good thing', 'evilthing']
"#;

struct Fixture {
    dir: TempDir,
}

impl Fixture {
    fn new() -> Self {
        let dir = TempDir::new().expect("tempdir");
        fs::create_dir(dir.path().join("rules")).expect("mkdir");
        fs::write(dir.path().join("rules/test.yaml"), RULES).expect("write rules");
        Fixture { dir }
    }

    fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }

    fn write(&self, name: &str, content: &[u8]) -> PathBuf {
        let p = self.path(name);
        fs::write(&p, content).expect("write log");
        p
    }

    /// `canhgac ARGS RULES`, `RULES` the fixture's rule directory.
    fn on_rules(&self, args: &[&str]) -> Command {
        let mut cmd = canhgac();
        cmd.args(args).arg(self.path("rules"));
        cmd
    }

    /// [`Fixture::on_rules`], which must succeed.
    fn succeeds_on_rules(&self, args: &[&str]) -> Assert {
        self.on_rules(args).assert().success()
    }

    /// `scan` with only the fixture's rules.
    fn scan(&self) -> Command {
        self.on_rules(&["scan", "--no-default-rules", "--rules"])
    }

    /// `scan ARGS LOG` of a log `name` holding `content`; the scan must
    /// succeed.
    fn scan_log(&self, args: &[&str], name: &str, content: &[u8]) -> Assert {
        let path = self.write(name, content);
        self.scan().args(args).arg(path).assert().success()
    }

    /// The incidents of `scan --format json` of an `auth.log` holding
    /// `log`.
    fn incidents_in(&self, log: &str) -> Vec<Value> {
        let out = self.scan_log(&["--format", "json"], "auth.log", log.as_bytes());
        let incidents = json(&out.get_output().stdout);
        incidents.as_array().expect("array").clone()
    }
}

fn failures(n: usize, ip: &str, start_min: u32) -> String {
    (0..n)
        .map(|i| {
            format!(
                "Oct 31 10:{:02}:{:02} host sshd[{}]: Failed password for root from {ip} port {} ssh2\n",
                start_min + (i as u32) / 60,
                i % 60,
                100 + i,
                40000 + i
            )
        })
        .collect()
}

fn json(stdout: &[u8]) -> Value {
    serde_json::from_slice(stdout).expect("valid JSON")
}

#[test]
fn threshold_and_cooldown_make_one_incident_per_attacker() {
    let f = Fixture::new();
    let mut log = failures(2, "10.0.0.9", 0); // below the threshold: no incident
    log.push_str(&failures(500, "203.0.113.5", 1));
    log.push_str(&failures(4, "2001:db8::7", 20));
    let list = f.incidents_in(&log);
    assert_eq!(list.len(), 2, "{list:#?}");
    assert_eq!(list[0]["key"], "203.0.113.5");
    assert_eq!(list[0]["events"], 500);
    assert_eq!(list[0]["rule"], "test-ssh-fail");
    assert_eq!(list[0]["category"], "bruteforce");
    assert_eq!(list[1]["key"], "2001:db8::7");
    assert_eq!(list[1]["events"], 4);
    assert_eq!(list[1]["fields"]["user"], "root");
}

#[test]
fn events_are_one_json_object_per_matched_line() {
    let f = Fixture::new();
    let out = f
        .scan_log(
            &["--events", "--year", "2020", "--tz", "Asia/Ho_Chi_Minh"],
            "auth.log",
            b"Oct 31 23:30:00 h sshd[1]: Failed password for root from 10.0.0.1 port 22 ssh2\n\
              Oct 31 23:30:01 h cron[2]: nothing to see\n\
              Oct 31 23:30:02 h app[3]: evil thing\n",
        )
        .stderr(
            predicate::str::contains("1 files, 3 lines,").and(predicate::str::contains("2 events")),
        );
    let lines = cli::json_lines(&out.get_output().stdout);
    assert_eq!(lines.len(), 2);
    let first = lines[0].as_object().expect("object");
    let mut keys: Vec<&str> = first.keys().map(String::as_str).collect();
    keys.sort_unstable();
    assert_eq!(
        keys,
        ["category", "fields", "file", "line", "rule", "severity", "time"]
    );
    assert_eq!(first["file"], f.path("auth.log").display().to_string());
    assert_eq!(first["line"], 1);
    assert_eq!(first["rule"], "test-ssh-fail");
    assert_eq!(first["severity"], "medium");
    // 23:30 on 31 October in Ho Chi Minh City is 16:30 UTC.
    assert_eq!(first["time"], "2020-10-31T16:30:00Z");
    assert_eq!(first["fields"]["src_ip"], "10.0.0.1");
    assert_eq!(first["fields"]["user"], "root");
    assert_eq!(lines[1]["line"], 3);
    assert_eq!(lines[1]["rule"], "test-evil");
    assert_eq!(lines[1]["fields"]["what"], "thing");
}

#[test]
fn year_comes_from_the_file_modification_time() {
    let f = Fixture::new();
    let path = f.write("auth.log", b"Dec 31 23:59:00 h app[3]: evil thing\n");
    // Written on 2 January 2021: the December line belongs to 2020.
    let jan_2_2021 = SystemTime::UNIX_EPOCH + Duration::from_secs(1_609_545_600);
    fs::File::options()
        .write(true)
        .open(&path)
        .and_then(|file| file.set_modified(jan_2_2021))
        .expect("set mtime");
    let out = f.scan().arg("--events").arg(&path).assert().success();
    let ev = json(&out.get_output().stdout);
    assert_eq!(ev["time"], "2020-12-31T23:59:00Z");
}

#[test]
fn bad_bytes_long_lines_and_missing_files_do_not_stop_the_scan() {
    let f = Fixture::new();
    let mut data = b"Oct 31 10:00:00 h app[1]: \xff\xfe evil \0thing\n".to_vec();
    data.extend(b"Oct 31 10:00:01 h app[1]: ");
    data.extend(std::iter::repeat_n(b'A', 3 << 20));
    data.extend(b" evil hidden-past-the-cap\n");
    data.extend(b"Oct 31 10:00:02 h app[1]: evil after\n");
    let path = f.write("odd.log", &data);
    let missing = f.path("does-not-exist.log");
    let out = f
        .scan()
        .args(["--events", "--type", "syslog", "--max-line-bytes", "4096"])
        .arg(&missing)
        .arg(&path)
        .assert()
        .failure()
        .stderr(
            predicate::str::contains(format!("{}: cannot open", missing.display()))
                .and(predicate::str::contains("1 over-long lines cut"))
                .and(predicate::str::contains("3 lines")),
        );
    let events = cli::json_lines(&out.get_output().stdout);
    // Line 1 has a NUL right after "evil ", so `evil \w+` cannot match it;
    // line 2's match lies past the cap and is cut away with its tail.
    assert_eq!(events.len(), 1, "{events:#?}");
    assert_eq!(events[0]["line"], 3);
    assert_eq!(events[0]["fields"]["what"], "after");
}

#[test]
fn invalid_utf8_is_replaced_not_fatal() {
    let f = Fixture::new();
    let out = f.scan_log(
        &["--events", "--type", "syslog"],
        "u.log",
        b"Oct 31 10:00:00 h app[1]: \xc3\x28 evil th\xffng\n",
    );
    let ev = json(&out.get_output().stdout);
    assert_eq!(ev["fields"]["what"], "th");
}

/// Applications' own files (logfmt, JSON) are recognised without `--type`, and each line is
/// dated by the stamp under its time key, not by the file's modification time.
#[test]
fn an_application_log_is_recognised_and_dated_where_it_writes_its_stamp() {
    let f = Fixture::new();
    let log = concat!(
        "logger=context uname=2099-01-01T00:00:00Z t=2024-08-31T02:11:21.5+02:00 level=error msg=\"evil plan\"\n",
        "{\"t\":{\"$date\":\"2024-08-31T02:12:00Z\"},\"s\":\"I\",\"msg\":\"evil deed\"}\n",
        "[2024-08-31 02:13:00.250][app::api][ERROR] evil twin\n",
    );
    let out = f.scan_log(&["--events", "--tz", "UTC"], "app.log", log.as_bytes());
    let times: Vec<String> = String::from_utf8_lossy(&out.get_output().stdout)
        .lines()
        .map(|l| {
            json(l.as_bytes())["time"]
                .as_str()
                .expect("time")
                .to_owned()
        })
        .collect();
    assert_eq!(
        times,
        [
            "2024-08-31T00:11:21.5Z",
            "2024-08-31T02:12:00Z",
            "2024-08-31T02:13:00.25Z"
        ]
    );
}

/// An IIS log (W3C extended, its own `#Fields:` order) is recognised and read by the shipped
/// web rules, with IIS's UTC times.
#[test]
fn an_iis_log_is_read_by_the_web_rules() {
    let f = Fixture::new();
    let path = f.write(
        "u_ex240101.log",
        concat!(
            "#Software: Microsoft Internet Information Services 10.0\r\n",
            "#Version: 1.0\r\n",
            "#Fields: date time s-ip cs-method cs-uri-stem cs-uri-query s-port cs-username c-ip cs(User-Agent) cs(Referer) sc-status sc-substatus sc-win32-status time-taken\r\n",
            "2024-01-01 10:00:00 10.0.0.5 GET /default.aspx id=1'+union+select+1,2,3-- 443 - 203.0.113.5 Mozilla/5.0+(Windows+NT+10.0) - 200 0 0 15\r\n",
            "#Fields: date time c-ip cs-method cs-uri-stem sc-status cs(User-Agent)\r\n",
            "2024-01-01 10:00:01 203.0.113.6 GET /../../../../etc/passwd 404 curl/8.0\r\n",
        )
        .as_bytes(),
    );
    let out = canhgac()
        .args(["scan", "--format", "json", "--tz", "Asia/Ho_Chi_Minh"])
        .arg(&path)
        .assert()
        .success();
    let incidents = json(&out.get_output().stdout);
    let found: Vec<(&str, &str, &str)> = incidents
        .as_array()
        .expect("array")
        .iter()
        .map(|i| {
            (
                i["rule"].as_str().expect("rule"),
                i["key"].as_str().expect("key"),
                i["first_seen"].as_str().expect("first_seen"),
            )
        })
        .collect();
    assert_eq!(
        found,
        [
            ("web-sql-injection", "203.0.113.5", "2024-01-01T10:00:00Z"),
            ("web-path-traversal", "203.0.113.6", "2024-01-01T10:00:01Z"),
        ]
    );
}

#[test]
fn unknown_format_asks_for_type_and_stdin_works() {
    let f = Fixture::new();
    let path = f.write("mystery.log", b"hello\nworld\n");
    f.scan().arg(&path).assert().failure().stderr(
        predicate::str::contains("cannot tell the log format")
            .and(predicate::str::contains("--type")),
    );
    f.scan()
        .args(["--events", "--type", "syslog", "-"])
        .write_stdin("Oct 31 10:00:00 h app[1]: evil stdin\n")
        .assert()
        .success()
        .stdout(predicate::str::contains(r#""what":"stdin""#));
}

#[test]
fn table_output_has_no_escape_sequences_from_logs() {
    let f = Fixture::new();
    let out = f.scan_log(
        &["--type", "syslog"],
        "esc.log",
        b"Oct 31 10:00:00 h app[1]: evil x\x1b[2Jx \x1b]0;pwned\x07\n",
    );
    let stdout = &out.get_output().stdout;
    assert!(!stdout.contains(&0x1b), "escape byte reached the terminal");
    let text = String::from_utf8_lossy(stdout);
    assert!(text.starts_with("RULE"), "{text}");
    assert!(text.contains("test-evil"), "{text}");
}

#[test]
fn check_reports_every_error_with_file_line_and_column() {
    let f = Fixture::new();
    let broken = RULES
        .replace("category: bruteforce", "category: brute")
        .replace("window: 10m", "window: ten minutes")
        .replace(r"'evil (?P<what>\w+)'", r"'evil (?P<what>\w+'");
    let bad = f.path("bad");
    fs::create_dir(&bad).expect("mkdir");
    fs::write(bad.join("broken.yaml"), broken).expect("write");
    fs::write(bad.join("dup.yaml"), RULES).expect("write");
    let file = bad.join("broken.yaml").display().to_string();
    // `check` of the rule files in `bad`, which fails; what it said.
    let refused = || {
        let out = canhgac()
            .args(["check", "--no-default-rules", "--rules"])
            .arg(&bad)
            .assert()
            .failure();
        String::from_utf8_lossy(&out.get_output().stderr).into_owned()
    };
    let stderr = refused();
    assert!(
        stderr.contains(&format!("{file}:5:15: unknown variant `brute`")),
        "{stderr}"
    );
    // serde stops at the first error in a file, so the others in broken.yaml
    // surface once it is fixed; errors in other files are all reported.
    let fixed = RULES
        .replace("window: 10m", "window: ten minutes")
        .replace(r"'evil (?P<what>\w+)'", r"'evil (?P<what>\w+'");
    fs::write(bad.join("broken.yaml"), fixed).expect("write");
    let stderr = refused();
    assert!(
        stderr.contains(&format!("{file}:10:36: bad duration `ten minutes`")),
        "{stderr}"
    );
    assert!(
        stderr.contains(&format!("{file}:26:16: pattern does not compile")),
        "{stderr}"
    );
    let dup = bad.join("dup.yaml").display().to_string();
    assert!(
        stderr.contains(&format!(
            "{dup}:2:9: duplicate rule id `test-ssh-fail` (first defined at {file}:2:9)"
        )),
        "{stderr}"
    );
}

#[test]
fn check_accepts_good_rules_and_the_builtin_set() {
    let f = Fixture::new();
    f.succeeds_on_rules(&["check", "--rules"])
        .stdout(predicate::str::starts_with("ok: ").and(predicate::str::contains("digest")));
}

#[test]
fn rules_test_reports_failing_examples_with_position() {
    let f = Fixture::new();
    f.succeeds_on_rules(&["rules", "test"])
        .stdout(predicate::str::contains(
            "2 rules, 8 examples: 8 passed, 0 failed",
        ));

    let wrong = RULES
        .replace(
            "fields: { user: root, src_ip: 10.0.0.1 }",
            "fields: { user: admin, src_ip: 10.0.0.1 }",
        )
        .replace(
            "no_match: ['good thing', 'evilthing']",
            "no_match: ['good thing', 'evil thing']",
        );
    let dir = f.path("wrong");
    fs::create_dir(&dir).expect("mkdir");
    let file = dir.join("w.yaml");
    fs::write(&file, wrong).expect("write");
    let out = canhgac()
        .args(["rules", "test"])
        .arg(&dir)
        .assert()
        .failure();
    let stdout = String::from_utf8_lossy(&out.get_output().stdout).into_owned();
    let file = file.display().to_string();
    assert!(
        stdout.contains(&format!(
            "{file}:14:11: rule `test-ssh-fail`: field `user` is `root`, expected `admin`"
        )),
        "{stdout}"
    );
    assert!(
        stdout.contains(&format!(
            "{file}:29:32: rule `test-evil`: no_match example matches (input type syslog)"
        )),
        "{stdout}"
    );
    assert!(
        stdout.contains("8 examples: 6 passed, 2 failed"),
        "{stdout}"
    );
}

#[test]
fn builtin_rules_pass_their_own_examples() {
    canhgac()
        .args(["rules", "test"])
        .assert()
        .success()
        .stdout(predicate::str::contains(" 0 failed"));
}

#[test]
fn patterns_export_is_one_uncaptured_pattern_per_line() {
    let f = Fixture::new();
    let out = f.succeeds_on_rules(&[
        "rules",
        "patterns",
        "--no-default-rules",
        "--type",
        "apache",
        "--rules",
    ]);
    assert_eq!(
        String::from_utf8_lossy(&out.get_output().stdout),
        "evil (?:\\w+)\n"
    );
}

#[test]
fn a_line_dated_ahead_of_its_neighbours_does_not_hide_the_failures_after_it() {
    let f = Fixture::new();
    // Eleven minutes ahead: more than the rule's window of ten.
    let mut log = failures(1, "203.0.113.77", 11);
    log.push_str(&failures(20, "203.0.113.77", 0));
    let list = f.incidents_in(&log);
    assert_eq!(list.len(), 1, "{list:#?}");
    assert_eq!(list[0]["key"], "203.0.113.77");
    assert_eq!(list[0]["events"], 21);
}

/// The incidents of `scan --format json` over `files`, as (rule, key,
/// events), sorted.
fn scanned(files: &[PathBuf]) -> Vec<(String, String, u64)> {
    let mut found: Vec<_> = common::cli::scan(files)
        .0
        .iter()
        .map(|i| {
            (
                i["rule"].as_str().unwrap_or_default().to_owned(),
                i["key"].as_str().unwrap_or_default().to_owned(),
                i["events"].as_u64().unwrap_or_default(),
            )
        })
        .collect();
    found.sort();
    found
}

#[test]
fn a_file_mixing_access_and_syslog_lines_is_read_as_what_each_line_is() {
    let f = Fixture::new();
    let read = |name: &str| fs::read_to_string(common::corpus(name)).expect("corpus log");
    let (ssh, web) = (read("openssh_2k.log"), read("apache_access_10k.log"));
    // As /var/log/messages can hold them: one program's lines between
    // another's, whichever comes first.
    for (first, second) in [(&ssh, &web), (&web, &ssh)] {
        let mut mixed = String::new();
        let mut b = second.lines();
        for a in first.lines() {
            mixed.push_str(a);
            mixed.push('\n');
            for line in b.by_ref().take(3) {
                mixed.push_str(line);
                mixed.push('\n');
            }
        }
        for line in b {
            mixed.push_str(line);
            mixed.push('\n');
        }
        let apart = [
            f.write("auth.log", ssh.as_bytes()),
            f.write("access.log", web.as_bytes()),
        ];
        let want = scanned(&apart);
        assert!(want.len() >= 15, "{want:?}");
        assert_eq!(scanned(&[f.write("messages", mixed.as_bytes())]), want);
    }
}

#[test]
fn scan_takes_the_rules_of_a_config_that_has_no_inputs() {
    let f = Fixture::new();
    let log = f.write("auth.log", failures(5, "198.51.100.4", 0).as_bytes());
    let config = f.write(
        "canhgac.toml",
        format!(
            "agency = \"test\"\ntime_zone = \"UTC\"\nstate_dir = {:?}\n\
             [rules]\nbuiltin = false\ndirs = [{:?}]\n",
            f.path("state"),
            f.path("rules")
        )
        .as_bytes(),
    );
    let list = cli::scan_with_config(&config, &[&log]);
    assert_eq!(list.len(), 1, "{list:#?}");
    assert_eq!(list[0]["rule"], "test-ssh-fail");
    assert_eq!(list[0]["key"], "198.51.100.4");
    // The daemon still refuses it: it would watch nothing.
    let out = cli::check(&config);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "{stderr}");
    assert!(stderr.contains("would watch nothing"), "{stderr}");
}

/// `check` run as the service runs (`--as-user nobody` when the tests run
/// as root): what the daemon would meet, each at its place in the config.
#[test]
fn check_reports_what_the_daemon_would_meet_where_it_is_configured() {
    use std::os::unix::fs::PermissionsExt;

    let site = Site::new();
    fs::set_permissions(site.dir(), fs::Permissions::from_mode(0o755)).expect("chmod");
    let secret = site.write("secret.log", "Oct 31 23:30:00 h sshd[1]: x\n");
    fs::set_permissions(&secret, fs::Permissions::from_mode(0o000)).expect("chmod");
    fs::create_dir(site.path("logs")).expect("mkdir");
    let config = site.config();
    site.write_config(
        r#"agency = "test-check"
state_dir = "state"

[http]
listen = "0.0.0.0:9717"

[[input]]
name = "gone"
path = "/nonexistent-canhgac-dir/app.log"
type = "syslog"

[[input]]
name = "empty"
path = "logs/*.log"
type = "nginx"

[[input]]
name = "secret"
path = "secret.log"
type = "syslog"
"#,
    );
    let mut check = common::cli::command();
    check.arg("check").arg("--config").arg(&config);
    if common::daemon::running_as_root() {
        check.args(["--as-user", "nobody"]);
    }
    let out = check.output().expect("check runs");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        out.status.success(),
        "warnings do not stop a start: {stderr}"
    );
    let at = |line: u32, col: u32| format!("{}:{line}:{col}: ", config.display());
    for want in [
        format!(
            "{}input gone: directory /nonexistent-canhgac-dir does not exist",
            at(9, 8)
        ),
        format!(
            "{}input empty: no file matches {}/logs/*.log yet",
            at(14, 8),
            site.dir().display()
        ),
        format!(
            "{}input secret: cannot open {}: Permission denied",
            at(19, 8),
            secret.display()
        ),
        format!(
            "{}listening on 0.0.0.0:9717, beyond loopback, with neither TLS nor authentication",
            at(5, 10)
        ),
    ] {
        assert!(stderr.contains(&want), "missing {want:?} in:\n{stderr}");
    }
}

/// Attackers one after another, five failed passwords each, the shipped
/// rules: each leaves a key of the day-long slow rule behind, and those fill
/// a small key table. Every attacker still reaches the brute-force
/// threshold, as with a table that never fills (a segmented LRU without a
/// cap on its protected list found 200 of the 1,500).
#[test]
fn a_table_full_of_slow_brute_force_keys_still_catches_each_new_attacker() {
    let dir = TempDir::new().expect("temp dir");
    let path = dir.path().join("auth.log");
    let attackers = 1500;
    let log: String = (0..attackers)
        .flat_map(|a| {
            (0..5).map(move |t| {
                let s = a * 6 + t;
                format!(
                    "Nov  3 {:02}:{:02}:{:02} web01 sshd[{}]: Failed password for root from 198.18.{}.{} port {} ssh2\n",
                    s / 3600,
                    s / 60 % 60,
                    s % 60,
                    1000 + s,
                    a / 256,
                    a % 256,
                    30000 + t
                )
            })
        })
        .collect();
    fs::write(&path, log).expect("write auth.log");
    let brute_force = |max_keys: &str| -> Vec<String> {
        let (incidents, _) = cli::scan([
            "--type".as_ref(),
            "syslog".as_ref(),
            "--year".as_ref(),
            "2026".as_ref(),
            "--max-keys".as_ref(),
            max_keys.as_ref(),
            path.as_os_str(),
        ]);
        let mut keys: Vec<String> = incidents
            .iter()
            .filter(|i| i["rule"] == "ssh-bruteforce")
            .filter_map(|i| i["key"].as_str().map(str::to_owned))
            .collect();
        keys.sort();
        keys
    };
    let unbounded = brute_force("1000000");
    assert_eq!(unbounded.len(), attackers);
    assert_eq!(brute_force("600"), unbounded);
}
