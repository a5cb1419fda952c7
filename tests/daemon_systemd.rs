//! `canhgac run` as systemd and a sysadmin meet it: the built binary, a
//! config and logs in a temporary directory, the sd_notify socket played by
//! the test, signals sent with kill(1), incidents read back through
//! `canhgac incidents` and SQLite.
//!
//! The machine running these tests may be loaded (two cores, other builds):
//! every wait polls for a condition with a generous deadline, nothing asserts
//! that something was fast, and a guard kills the daemon when a test fails.

mod common;

use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::PathBuf;
use std::process::Output;
use std::time::{Duration, Instant};

use regex::Regex;
use serde_json::Value;

use common::cli;
use common::config::Config;
use common::daemon::{Daemon, Launch, Message};
use common::logs::ssh_failures as attack;
use common::metrics;
use common::site::Site;

/// The watchdog interval given to the daemon (`WATCHDOG_USEC`).
const WATCHDOG: Duration = Duration::from_secs(1);

struct Fixture {
    site: Site,
}

impl Fixture {
    /// A config with one syslog input `auth.log` (read from its start), the
    /// state in `state/`, builtin rules, plus `extra` TOML after the head;
    /// tests run in parallel: any free port.
    fn new(extra: &str) -> Self {
        let site = Site::with_auth_log(Config::new("test-agency").any_port().top(extra));
        Fixture { site }
    }

    fn path(&self, name: &str) -> PathBuf {
        self.site.path(name)
    }

    fn config(&self) -> PathBuf {
        self.site.config()
    }

    fn db(&self) -> PathBuf {
        self.path("state/canhgac.db")
    }

    fn write(&self, name: &str, text: &str) {
        self.site.write(name, text);
    }

    fn append(&self, name: &str, text: &str) {
        self.site.append(name, text);
    }

    /// `canhgac run --config FILE` as started by hand: no `NOTIFY_SOCKET`.
    fn by_hand(&self) -> Launch {
        self.site.daemon().without_notify()
    }

    /// Stored incidents, through `canhgac incidents --format json`; none
    /// while there is no database yet.
    fn incidents(&self) -> Vec<Value> {
        if !self.db().exists() {
            return Vec::new();
        }
        cli::try_incidents(&self.config())
            .unwrap_or_else(|e| panic!("canhgac incidents failed: {e}"))
    }

    /// Stored incidents of `rule` with `key`.
    fn incidents_of(&self, rule: &str, key: &str) -> Vec<Value> {
        self.incidents()
            .into_iter()
            .filter(|i| i["rule"] == rule && i["key"] == key)
            .collect()
    }

    /// Waits until the store holds an incident of `rule` with `key` and
    /// `events` events; returns it.
    fn wait_incident(&self, daemon: &Daemon, rule: &str, key: &str, events: u64) -> Value {
        daemon.wait(
            &format!("incident {rule} {key} with {events} events"),
            || {
                self.incidents_of(rule, key)
                    .into_iter()
                    .find(|i| i["events"] == events)
            },
        )
    }

    fn check(&self) -> Output {
        cli::check(&self.config())
    }

    /// Waits for `daemon`, asked to stop, to exit cleanly; the store then
    /// holds one ssh-bruteforce incident of `attacker`, with `events` events.
    fn expect_stored_on_exit(&self, daemon: &Daemon, attacker: &str, events: u64) {
        let status = daemon.wait_exit();
        assert!(
            status.success(),
            "exit status {status}\n{}",
            daemon.log_text()
        );
        let stored = self.incidents_of("ssh-bruteforce", attacker);
        assert_eq!(stored.len(), 1, "{stored:#?}\n{}", daemon.log_text());
        assert_eq!(stored[0]["events"], events, "{:#}", stored[0]);
    }

    /// Replaces the config with one that does not parse and sends SIGHUP;
    /// returns once `daemon` has refused it.
    fn refuse_a_broken_reload(&self, daemon: &Daemon) {
        let from = daemon.log_len();
        self.site
            .write_config("agency = \"test-agency\"\n[[input]\n");
        daemon.signal("HUP");
        daemon.wait_log(from, "reload refused");
    }
}

/// The daemon with `NOTIFY_SOCKET` set to the test's socket and a 1 s
/// watchdog; returns once READY=1 arrived.
fn spawn_notified(f: &Fixture) -> (Daemon, Message) {
    let daemon = f.site.daemon().watchdog(WATCHDOG).spawn();
    let ready = daemon.wait_notify("READY=1");
    (daemon, ready)
}

#[test]
fn notify_ready_status_watchdog_and_stopping() {
    let f = Fixture::new("");
    let (daemon, ready) = spawn_notified(&f);

    // READY=1 comes once the inputs are open, with a STATUS= that says so.
    let status = ready.get("STATUS").expect("STATUS= with READY=1");
    assert!(status.contains("1 inputs, 1 files"), "{status:?}");
    assert!(f.db().exists(), "READY=1 before the store was opened");

    // Idle and healthy: pings keep coming, at a quarter of the interval.
    // Asking for three in ten seconds leaves room for a loaded machine.
    let pings = daemon.pings_during(Duration::from_secs(3));
    if pings.len() < 3 {
        let more = daemon.pings_during(Duration::from_secs(7));
        assert!(
            pings.len() + more.len() >= 3,
            "only {} WATCHDOG=1 in 10 s while idle",
            pings.len() + more.len()
        );
    }

    // The store refuses commits: someone else holds its write lock.
    let db = rusqlite::Connection::open(f.db()).expect("open the store");
    db.execute_batch("BEGIN EXCLUSIVE")
        .expect("take the write lock");
    f.append("auth.log", &attack("203.0.113.7", 5, 0));

    // The pipeline read the lines and cannot store them: it stops pinging,
    // so systemd would restart it. Wait for a silence of three intervals.
    let mut last_ping = Instant::now();
    let silent_since = daemon.wait("the watchdog pings to stop", || {
        while let Some(m) = daemon.notify().recv() {
            if m.has("WATCHDOG=1") {
                last_ping = m.at;
            }
        }
        (last_ping.elapsed() >= 3 * WATCHDOG).then_some(last_ping)
    });
    // Hold the lock past the store's busy timeout, so the commit fails and
    // waits for its retry: no ping then either, the health rule holds them
    // back (the pipeline thread is not blocked any more).
    let mut pings = 0;
    daemon.wait("a failed commit in the log", || {
        while let Some(m) = daemon.notify().recv() {
            pings += usize::from(m.has("WATCHDOG=1"));
        }
        daemon
            .log_since(0)
            .contains("commit failed, retrying")
            .then_some(())
    });
    pings += daemon.pings_during(Duration::from_secs(1)).len();
    assert_eq!(pings, 0, "WATCHDOG=1 while the store refused commits");
    assert!(
        f.incidents().is_empty(),
        "an incident was stored while the store was locked"
    );
    db.execute_batch("ROLLBACK").expect("release the lock");
    drop(db);
    let unlocked = Instant::now();
    eprintln!(
        "no WATCHDOG=1 for {:?} while the store was locked",
        unlocked - silent_since
    );

    // The commit goes through; healthy again, the pings resume.
    daemon.wait_notify("WATCHDOG=1");
    let inc = f.wait_incident(&daemon, "ssh-bruteforce", "203.0.113.7", 5);
    assert_eq!(inc["category"], "bruteforce");
    assert_eq!(inc["input"], "auth");

    // SIGTERM: STOPPING=1, then exit 0.
    daemon.signal("TERM");
    daemon.wait_notify("STOPPING=1");
    let status = daemon.wait_exit();
    assert!(status.success(), "exit status {status}");
}

#[test]
fn sigterm_stores_every_line_written_before_it() {
    let f = Fixture::new("");
    let (daemon, _) = spawn_notified(&f);
    let lines = 40;
    f.append("auth.log", &attack("203.0.113.7", lines, 0));
    daemon.signal("TERM");
    f.expect_stored_on_exit(&daemon, "203.0.113.7", lines as u64);

    // A restart neither reads those lines again nor loses the open incident.
    let (daemon, _) = spawn_notified(&f);
    f.append("auth.log", &attack("203.0.113.7", 2, lines));
    f.wait_incident(&daemon, "ssh-bruteforce", "203.0.113.7", lines as u64 + 2);
    assert!(daemon.stop().success());
    assert_eq!(f.incidents().len(), 1, "{:#?}", f.incidents());
}

/// The daemon stopped (SIGSTOP) while lines are written and SIGTERM is sent:
/// when it runs again, the stop request and the new lines arrive together.
/// The lines written before SIGTERM must still be stored.
#[test]
fn sigterm_racing_fresh_lines_still_stores_them() {
    let f = Fixture::new("");
    let (daemon, _) = spawn_notified(&f);
    daemon.signal("STOP");
    f.append("auth.log", &attack("198.51.100.9", 7, 0));
    daemon.signal("TERM");
    daemon.signal("CONT");
    f.expect_stored_on_exit(&daemon, "198.51.100.9", 7);
}

const CANARY_RULE: &str = r#"rules:
  - id: local-canary-login
    title: Canary account used
    description: Someone logged in with the canary account, which no person uses.
    category: policy-violation
    severity: high
    types: [syslog]
    patterns:
      - 'canary-login user=(?P<user>\w+) from (?P<src_ip>[0-9.]+)$'
    examples:
      match:
        - 'Oct 31 23:40:00 host app[7]: canary-login user=bob from 10.0.0.1'
      no_match:
        - 'Oct 31 23:40:00 host app[7]: login user=bob from 10.0.0.1'
"#;

/// A pattern with an unclosed group: line 9, after `      - '`.
const BROKEN_RULE: &str = r#"rules:
  - id: local-honeyfile
    title: Honey file read
    description: A file no one has reason to open was read.
    category: malware
    severity: high
    types: [syslog]
    patterns:
      - 'honeyfile-read (?P<path>\S+ from (?P<src_ip>[0-9.]+)$'
    examples:
      match:
        - 'Oct 31 23:40:00 host auditd[9]: honeyfile-read /srv/salary.xlsx from 10.0.0.3'
      no_match:
        - 'Oct 31 23:40:00 host auditd[9]: file-read /srv/menu.pdf from 10.0.0.3'
"#;

fn canary(ip: &str) -> String {
    format!("Oct 31 23:40:00 host app[7]: canary-login user=bob from {ip}\n")
}

#[test]
fn sighup_refuses_a_broken_rule_and_takes_a_fixed_one() {
    let f = Fixture::new("[rules]\ndirs = [\"rules.d\"]\n");
    f.write("rules.d/canary.yaml", CANARY_RULE);
    let (daemon, _) = spawn_notified(&f);
    f.append("auth.log", &canary("10.0.0.1"));
    f.wait_incident(&daemon, "local-canary-login", "10.0.0.1", 1);

    // (a) A broken rule file, then SIGHUP: refused with file:line:col, the
    // running rules stay, the daemon runs on.
    f.write("rules.d/honeyfile.yaml", BROKEN_RULE);
    let from = daemon.log_len();
    daemon.signal("HUP");
    let (reloading, _) = daemon.wait_notify_until("RELOADING=1", |m| m.has("RELOADING=1"));
    let usec = reloading
        .get("MONOTONIC_USEC")
        .expect("MONOTONIC_USEC= with RELOADING=1 (Type=notify-reload waits for it)");
    assert!(usec.parse::<u64>().is_ok_and(|u| u > 0), "{usec:?}");
    daemon.wait_notify("READY=1");
    daemon.wait_log(from, "reload refused");
    let position = Regex::new(r"rules\.d/honeyfile\.yaml:9:\d+: ").expect("regex");
    daemon.wait("the broken rule's file:line:col in the log", || {
        position.is_match(&daemon.log_since(from)).then_some(())
    });

    // `canhgac check` says the same, and fails.
    let check = f.check();
    let stderr = String::from_utf8_lossy(&check.stderr);
    assert!(!check.status.success(), "check passed a broken rule");
    assert!(position.is_match(&stderr), "{stderr}");

    f.append("auth.log", &canary("10.0.0.2"));
    f.wait_incident(&daemon, "local-canary-login", "10.0.0.2", 1);

    // (b) The rule fixed: the next SIGHUP takes it.
    f.write(
        "rules.d/honeyfile.yaml",
        &BROKEN_RULE.replace(r"(?P<path>\S+ from", r"(?P<path>\S+) from"),
    );
    assert!(f.check().status.success(), "check of the fixed rule");
    let from = daemon.log_len();
    daemon.signal("HUP");
    daemon.wait_notify("RELOADING=1");
    daemon.wait_notify("READY=1");
    daemon.wait_log(from, "reloaded");
    f.append(
        "auth.log",
        "Oct 31 23:41:00 host auditd[9]: honeyfile-read /srv/salary.xlsx from 10.0.0.3\n",
    );
    let inc = f.wait_incident(&daemon, "local-honeyfile", "10.0.0.3", 1);
    assert_eq!(inc["category"], "malware");
    assert_eq!(inc["fields"]["path"], "/srv/salary.xlsx");
    // The old rule still works beside it, and the builtin ones too.
    f.append("auth.log", &canary("10.0.0.4"));
    f.append("auth.log", &attack("203.0.113.8", 5, 0));
    f.wait_incident(&daemon, "local-canary-login", "10.0.0.4", 1);
    f.wait_incident(&daemon, "ssh-bruteforce", "203.0.113.8", 5);
    assert!(daemon.stop().success());
}

#[test]
fn under_journald_lines_carry_priorities_and_no_time() {
    let f = Fixture::new("");
    let daemon = f.by_hand().env("JOURNAL_STREAM", "8:1234").spawn();
    daemon.wait_log(0, "ready");
    // A warning: a setting that needs a restart, changed by a reload.
    let from = daemon.log_len();
    f.site.write_config(
        &fs::read_to_string(f.config())
            .expect("config")
            .replace("test-agency", "other-agency"),
    );
    daemon.signal("HUP");
    daemon.wait_log(from, "reloaded");
    // An error: a reload of a config that does not parse.
    f.refuse_a_broken_reload(&daemon);
    assert!(daemon.stop().success());

    let log = daemon.log();
    let prefix = Regex::new(r"^<([0-7])>").expect("regex");
    let timestamp = Regex::new(r"\d{4}-\d\d-\d\dT\d\d:\d\d").expect("regex");
    for line in &log {
        assert!(
            prefix.is_match(line),
            "no <N> priority prefix on {line:?}; the whole log:\n{log:#?}"
        );
        assert!(!timestamp.is_match(line), "a timestamp in {line:?}");
        assert!(!line.contains('\x1b'), "an escape sequence in {line:?}");
    }
    let has = |p: &str, text: &str| log.iter().any(|l| l.starts_with(p) && l.contains(text));
    assert!(has("<6>", "ready"), "{log:#?}");
    assert!(has("<4>", "agency changed"), "{log:#?}");
    assert!(has("<3>", "reload refused"), "{log:#?}");
    // The config error itself is part of the error, not a line of its own
    // that journald would file at the default priority.
    assert!(has("<3>", "canhgac.toml:2:"), "{log:#?}");
}

#[test]
fn json_log_is_one_object_per_line() {
    let f = Fixture::new("");
    let daemon = f.by_hand().args(["--log-format", "json"]).spawn();
    daemon.wait_log(0, "ready");
    f.refuse_a_broken_reload(&daemon);
    assert!(daemon.stop().success());
    let log = daemon.log();
    let mut levels = Vec::new();
    for line in &log {
        let v: Value = serde_json::from_str(line)
            .unwrap_or_else(|e| panic!("not JSON ({e}): {line:?}; the whole log:\n{log:#?}"));
        let level = v["level"]
            .as_str()
            .unwrap_or_else(|| panic!("no level: {line}"));
        levels.push(level.to_owned());
    }
    assert!(levels.iter().any(|l| l == "INFO"), "{log:#?}");
    assert!(levels.iter().any(|l| l == "ERROR"), "{log:#?}");
}

#[test]
fn a_config_error_stops_the_start_with_its_position() {
    let f = Fixture::new("[pipeline]\nbatch_lines = 0\n");
    let daemon = f.by_hand().spawn();
    let status = daemon.wait_exit();
    assert!(!status.success(), "started with a broken config");
    let log = daemon.log_text();
    let position = Regex::new(r"canhgac\.toml:5:15: batch_lines 0").expect("regex");
    assert!(position.is_match(&log), "{log}");
    // stderr is a pipe here, as under most supervisors: no colours.
    assert!(!log.contains('\x1b'), "escape sequences in {log:?}");
    assert!(!f.db().exists(), "a store was created for a broken config");
}

#[test]
fn a_state_dir_that_cannot_be_created_stops_the_start() {
    let f = Fixture::new("");
    f.write("not-a-dir", "a file\n");
    f.site.write_config(
        &fs::read_to_string(f.config())
            .expect("config")
            .replace("state_dir = \"state\"", "state_dir = \"not-a-dir/state\""),
    );
    let daemon = f.by_hand().spawn();
    let status = daemon.wait_exit();
    assert!(!status.success(), "started without a state directory");
    let log = daemon.log_text();
    assert!(log.contains("cannot open the store"), "{log}");
    assert!(log.contains("not-a-dir/state"), "{log}");
    assert!(log.contains("Not a directory"), "{log}");
}

/// Run unprivileged, as the service is (as `nobody` when the tests run as
/// root, who could read the file whatever its mode).
#[test]
fn an_unreadable_input_is_reported_backed_off_and_read_once_readable() {
    let site = Site::with_auth_log(Config::new("test-agency"));
    let log_path = site.path("auth.log");
    fs::set_permissions(&log_path, fs::Permissions::from_mode(0o000)).expect("chmod");
    let daemon = site.daemon().unprivileged().ready();
    let line = daemon.wait_log(0, "Permission denied");
    assert!(line.contains("auth.log"), "{line}");
    assert!(line.contains("WARN"), "{line}");

    // /readyz says which input and why.
    let not_ready = daemon.wait("/readyz to name the input", || {
        daemon.get("/readyz").filter(|r| r.status == 503)
    });
    assert!(
        not_ready
            .body
            .contains("input auth: 1 file(s) cannot be opened (see the log)"),
        "{}",
        not_ready.body
    );
    // Tried again less and less often, not at every wakeup.
    let errors = "canhgac_input_read_errors_total{input=\"auth\"}";
    let before = daemon.metric(errors);
    site.append("other.log", "x\n".repeat(100));
    std::thread::sleep(Duration::from_secs(3));
    let tries = daemon.metric(errors) - before;
    assert!(tries <= 3.0, "{tries} attempts in 3 s");

    // Written while unreadable, read once readable (from its start: the
    // file was unreadable from the first start).
    fs::set_permissions(&log_path, fs::Permissions::from_mode(0o200)).expect("chmod");
    site.append("auth.log", attack("203.0.113.7", 5, 0));
    fs::set_permissions(&log_path, fs::Permissions::from_mode(0o644)).expect("chmod");
    site.wait_incident(&daemon, "ssh-bruteforce", "203.0.113.7");
    daemon.wait("/readyz to say ready", || {
        daemon.get("/readyz").filter(|r| r.status == 200)
    });
    assert!(daemon.stop().success());
}

/// A log directory made unreadable is not a rotation: the open file is
/// read on (past the grace a rotated file gets), and nothing is read twice
/// once the directory is readable again.
#[test]
fn a_log_directory_made_unreadable_is_not_taken_for_a_rotation() {
    let site = Site::new();
    site.write("logs/auth.log", "");
    site.configure(
        &Config::new("test-agency")
            .top("[pipeline]\nrotated_grace = \"1s\"\n")
            .input("auth", "logs/auth.log", "syslog"),
    );
    let daemon = site.daemon().unprivileged().ready();
    site.append("logs/auth.log", attack("203.0.113.1", 5, 0));
    site.wait_incident(&daemon, "ssh-bruteforce", "203.0.113.1");

    let logs = site.path("logs");
    fs::set_permissions(&logs, fs::Permissions::from_mode(0o000)).expect("chmod");
    daemon.wait_log(0, "cannot be looked at any more");
    // Longer than a rotated file's grace: it would have been closed.
    std::thread::sleep(Duration::from_secs(3));
    site.append("logs/auth.log", attack("203.0.113.2", 5, 10));
    site.wait_incident(&daemon, "ssh-bruteforce", "203.0.113.2");

    fs::set_permissions(&logs, fs::Permissions::from_mode(0o755)).expect("chmod");
    site.append("logs/auth.log", attack("203.0.113.3", 5, 20));
    site.wait_incident(&daemon, "ssh-bruteforce", "203.0.113.3");
    let first = site.incidents_of("ssh-bruteforce", "203.0.113.1");
    assert_eq!(first.len(), 1, "{first:?}");
    assert_eq!(first[0]["events"], 5, "read once: {first:?}");
    assert!(daemon.stop().success());
}

#[test]
fn lines_of_another_type_are_said_once_and_counted() {
    let f = Fixture::new("");
    let (daemon, _) = spawn_notified(&f);
    let serving = daemon.wait_log(0, "serving /metrics");
    let base = serving
        .rsplit(" on ")
        .next()
        .map(str::trim)
        .expect("the address it serves on")
        .to_owned();
    // Error-log lines in an input configured as syslog: read, and no
    // syslog rule can ever match them. (Access lines would be read as
    // access lines: a file may mix the two.)
    let access = "2020/10/31 23:30:00 [error] 12#12: *1 open() \"/srv/www/.env\" failed (2: No such file or directory), client: 203.0.113.5\n";
    f.append("auth.log", &access.repeat(3));
    let warning = daemon.wait_log(0, "is not a syslog line");
    assert!(warning.contains("input auth"), "{warning}");
    assert!(
        warning.contains("/srv/www/.env"),
        "names the line: {warning}"
    );
    let agent = common::http::agent(None);
    let unrecognised = |n: f64| {
        common::http::get(&agent, &format!("{base}/metrics"), None)
            .ok()
            .and_then(|r| {
                metrics::value(
                    &r.body,
                    "canhgac_input_lines_unrecognised_total{input=\"auth\"}",
                )
            })
            .filter(|&v| v == n)
    };
    let counted = daemon.wait("the unrecognised lines on /metrics", || unrecognised(3.0));
    assert_eq!(counted, 3.0);
    // Said once: more such lines are counted, not logged again.
    f.append("auth.log", access);
    daemon.wait("the fourth line counted", || unrecognised(4.0));
    let said = daemon
        .log()
        .iter()
        .filter(|l| l.contains("is not a syslog line"))
        .count();
    assert_eq!(said, 1, "{}", daemon.log_text());
}

/// A configured file that does not exist is said with its config line; an
/// auth.log that the journal stands in for is not a problem, and once it
/// exists the journal input is left out on reload, so that no attempt is
/// read twice.
#[test]
fn a_missing_log_is_said_with_its_config_line_unless_the_journal_stands_in() {
    let site = Site::new();
    fs::create_dir(site.path("journal")).expect("journal dir");
    let auth = site.path("auth.log");
    site.configure(
        &Config::new("test-agency")
            .input("auth", &auth.display().to_string(), "syslog")
            .input("web", &site.path("access.log").display().to_string(), "nginx")
            .body(&format!(
                "[[input]]\nname = \"auth-journal\"\ntype = \"journal\"\ndirectory = \"journal\"\nunless_exists = \"{}\"\n",
                auth.display()
            )),
    );
    let config_text = site.read_config();
    let web_line = 1 + config_text
        .lines()
        .position(|l| l.contains("access.log"))
        .expect("web input path");
    let daemon = site.daemon().ready();
    let warning = daemon.wait_log(0, "input=web");
    assert!(
        warning.contains("no file matches yet")
            && warning.contains(&format!("canhgac.toml:{web_line}:")),
        "{warning}"
    );
    let stand_in = daemon.wait_log(0, "input auth-journal reads the same lines");
    assert!(stand_in.contains("INFO"), "{stand_in}");

    site.write("auth.log", "");
    let from = daemon.log_len();
    daemon.signal("HUP");
    daemon.wait_log(from, "reloaded");
    let left_out = daemon.log_since(from);
    assert!(
        left_out.contains("input=auth-journal")
            && left_out.contains("exists, and the same lines are read there"),
        "{left_out}"
    );
    assert!(daemon.stop().success(), "{}", daemon.log_text());
}
