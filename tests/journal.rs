//! The journal input with real parts: journal files built for the test by
//! `systemd-journal-remote` from export format (no journald runs in CI),
//! read by the daemon through libsystemd's `sd-journal`; `kill -9` and
//! restart resume after the stored cursor (nothing lost, nothing twice, the
//! cursor the one `journalctl` gives), also when killed in the middle of a
//! stream; a vacuumed cursor resumes at the oldest entry with a warning and
//! a metric; matches and `start = "end"` read what `journalctl` would.

mod common;

use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;

use serde_json::Value;

use common::config::Config;
use common::daemon::Daemon;
use common::site::Site;

fn journal_remote() -> PathBuf {
    [
        "/usr/lib/systemd/systemd-journal-remote",
        "/lib/systemd/systemd-journal-remote",
    ]
    .iter()
    .map(PathBuf::from)
    .find(|p| p.exists())
    .expect("systemd-journal-remote (Debian package systemd-journal-remote; .ci/run installs it)")
}

/// Appends entries `(seq, identifier, message)` to `dir/test.journal`;
/// `seq` numbers them (time and monotonic clock grow with it).
fn write_entries(dir: &Path, entries: &[(u64, &str, Vec<u8>)]) {
    let mut export = Vec::new();
    for (seq, ident, message) in entries {
        let t = 1_700_000_000_000_000u64 + seq * 1_000_000;
        export.extend_from_slice(
            format!(
                "__REALTIME_TIMESTAMP={t}\n__MONOTONIC_TIMESTAMP={}\n_BOOT_ID=0123456789abcdef0123456789abcdef\n_HOSTNAME=web01\nSYSLOG_IDENTIFIER={ident}\n_PID={seq}\n",
                1000 + seq
            )
            .as_bytes(),
        );
        if message.iter().all(|b| (0x20..0x7f).contains(b)) {
            export.extend_from_slice(b"MESSAGE=");
            export.extend_from_slice(message);
        } else {
            // Binary-safe field: name, newline, little-endian length, bytes.
            export.extend_from_slice(b"MESSAGE\n");
            export.extend_from_slice(&(message.len() as u64).to_le_bytes());
            export.extend_from_slice(message);
        }
        export.extend_from_slice(b"\n\n");
    }
    let out = common::fed(
        Command::new(journal_remote())
            .arg(format!("--output={}", dir.join("test.journal").display()))
            .arg("-"),
        &export,
    );
    assert!(
        out.status.success(),
        "journal-remote: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

fn failed(attacker: &str) -> Vec<u8> {
    format!("Failed password for root from {attacker} port 22 ssh2").into_bytes()
}

/// A site whose one input reads sshd's entries of `journal/`.
struct Setup {
    site: Site,
}

impl Setup {
    fn new() -> Setup {
        Setup::with(
            r#"match = ["SYSLOG_IDENTIFIER=sshd"]
start = "beginning"
"#,
        )
    }

    /// The input `journal` on `journal/`, with `options` added.
    fn with(options: &str) -> Setup {
        let site = Site::with(&Config::new("test-journal").body(&format!(
            "[[input]]\nname = \"journal\"\ntype = \"journal\"\ndirectory = \"journal\"\n{options}"
        )));
        fs::create_dir(site.path("journal")).expect("journal dir");
        Setup { site }
    }

    fn path(&self, name: &str) -> PathBuf {
        self.site.path(name)
    }

    fn start(&self) -> Daemon {
        self.site.daemon().env("CANHGAC_LOG", "info").ready()
    }

    /// Whether an incident of `key` has `events` events.
    fn has(&self, key: &str, events: u64) -> bool {
        self.events().iter().any(|(k, n)| k == key && *n == events)
    }

    /// Events per incident key.
    fn events(&self) -> Vec<(String, u64)> {
        let mut got: Vec<(String, u64)> = self
            .site
            .incidents()
            .iter()
            .map(|i| {
                (
                    i["key"].as_str().unwrap_or("").to_owned(),
                    i["events"].as_u64().unwrap_or(0),
                )
            })
            .collect();
        got.sort();
        got
    }

    fn stored_cursor(&self) -> Option<String> {
        let conn = rusqlite::Connection::open(self.path("state/canhgac.db")).ok()?;
        conn.query_row(
            "SELECT cursor FROM input_cursors WHERE input = 'journal'",
            [],
            |r| r.get(0),
        )
        .ok()
    }

    /// The cursor of the newest sshd entry, as journalctl reads the files.
    fn last_cursor(&self) -> String {
        let out = Command::new("journalctl")
            .args(["--output=json", "--no-pager", "--lines=1", "--directory"])
            .arg(self.path("journal"))
            .arg("SYSLOG_IDENTIFIER=sshd")
            .output()
            .expect("journalctl");
        let entry: Value = serde_json::from_slice(&out.stdout).expect("entry");
        entry["__CURSOR"].as_str().expect("cursor").to_owned()
    }
}

fn pairs(p: &[(&str, u64)]) -> Vec<(String, u64)> {
    p.iter().map(|(k, n)| ((*k).to_owned(), *n)).collect()
}

#[test]
fn kill_9_resumes_after_the_stored_cursor_and_a_vacuumed_cursor_restarts_at_the_oldest() {
    let s = Setup::new();
    let journal = s.path("journal");
    let a = "203.0.113.1";
    let b = "203.0.113.2";
    let mut seq = 0u64;
    let mut next = || {
        seq += 1;
        seq
    };
    let mut entries: Vec<(u64, &str, Vec<u8>)> = Vec::new();
    for _ in 0..7 {
        entries.push((next(), "sshd", failed(a)));
    }
    // Not sshd: filtered out by the input's match.
    entries.push((next(), "cron", failed(b)));
    // A message journald stores as bytes (not UTF-8, a newline inside).
    entries.push((next(), "sshd", b"bin\xff\nary".to_vec()));
    write_entries(&journal, &entries);

    let daemon = s.start();
    daemon.until("A's incident", || s.events() == pairs(&[(a, 7)]));
    daemon.until("the cursor stored", || {
        s.stored_cursor() == Some(s.last_cursor())
    });
    assert_eq!(
        daemon.count("canhgac_input_lines_total{input=\"journal\"}"),
        8
    );
    drop(daemon); // SIGKILL

    // While it is down: more from A and a new attacker B.
    let mut more = Vec::new();
    for _ in 0..3 {
        more.push((next(), "sshd", failed(a)));
    }
    for _ in 0..6 {
        more.push((next(), "sshd", failed(b)));
    }
    write_entries(&journal, &more);
    let daemon = s.start();
    daemon.until("B's incident", || s.has(b, 6));
    daemon.until("the cursor stored", || {
        s.stored_cursor() == Some(s.last_cursor())
    });
    // Exactly: A's 7 + 3, not 17.
    assert_eq!(s.events(), pairs(&[(a, 10), (b, 6)]));
    // Entries appended while it runs are followed.
    let c = "203.0.113.3";
    let live: Vec<(u64, &str, Vec<u8>)> = (0..5).map(|_| (next(), "sshd", failed(c))).collect();
    write_entries(&journal, &live);
    daemon.until("C's incident, live", || s.has(c, 5));
    drop(daemon);

    // Vacuumed: the journal is replaced by a new one (new sequence id) that
    // no longer holds the stored cursor.
    fs::remove_file(journal.join("test.journal")).expect("vacuum");
    let d = "203.0.113.4";
    let fresh: Vec<(u64, &str, Vec<u8>)> = (0..5).map(|_| (next(), "sshd", failed(d))).collect();
    write_entries(&journal, &fresh);
    let daemon = s.start();
    daemon.until("D's incident from the oldest entry", || s.has(d, 5));
    daemon.until("the lost cursor counted", || {
        daemon.count("canhgac_input_position_lost_total{input=\"journal\"}") == 1
    });
    assert!(
        daemon.log_text().contains("is no longer in the journal"),
        "{}",
        daemon.log_text()
    );
    assert_eq!(
        daemon.count("canhgac_input_restarts_total{input=\"journal\"}"),
        0
    );
    daemon.until("the new cursor stored", || {
        s.stored_cursor() == Some(s.last_cursor())
    });
}

/// `kill -9` at any moment of a stream of entries, restart, and the store
/// holds exactly the incidents of a run that was never interrupted: every
/// chunk's cursor moved with the incidents of its lines. Each batch is
/// appended with the daemon running and killed a little later each time,
/// so the kills land before, inside and after the reading of a batch
/// (where one lands changes what is exercised, never the result).
#[test]
fn kill_9_in_the_middle_of_a_stream_gives_the_incidents_of_an_uninterrupted_run() {
    let killed = Setup::new();
    let reference = Setup::new();
    let mut seq = 0u64;
    for batch in 0..4u64 {
        let entries: Vec<(u64, &str, Vec<u8>)> = (0..20_000u64)
            .map(|i| {
                seq += 1;
                // 500 attackers taking turns, and a line in 50 not sshd's.
                let ident = if i % 50 == 0 { "cron" } else { "sshd" };
                (seq, ident, failed(&format!("10.0.{}.{}", i % 5, i % 100)))
            })
            .collect();
        write_entries(&reference.path("journal"), &entries);
        let daemon = killed.start();
        write_entries(&killed.path("journal"), &entries);
        std::thread::sleep(std::time::Duration::from_millis(20 * batch));
        drop(daemon); // SIGKILL
    }
    let daemon = killed.start();
    daemon.until("every entry read after the kills", || {
        killed.stored_cursor() == Some(killed.last_cursor())
    });
    let uninterrupted = reference.start();
    uninterrupted.until("every entry read", || {
        reference.stored_cursor() == Some(reference.last_cursor())
    });
    // Stopped, so that every incident row holds its count (a running
    // daemon writes many grown incidents once a minute: the counts are in
    // the detector's rows meanwhile).
    assert!(daemon.stop().success());
    assert!(uninterrupted.stop().success());
    let want = reference.events();
    assert!(
        want.iter().map(|(_, n)| n).sum::<u64>() > 10_000,
        "{want:?}"
    );
    assert_eq!(killed.events(), want);
}

/// `start = "end"` at the first start skips what the journal held, and
/// `+` between matches reads either group, as `journalctl` does.
#[test]
fn start_at_end_reads_only_new_entries_and_plus_joins_alternatives() {
    let s = Setup::with(
        r#"match = ["SYSLOG_IDENTIFIER=sshd", "+", "SYSLOG_IDENTIFIER=sshd-session"]
start = "end"
"#,
    );
    let journal = s.path("journal");
    let (old, new, other, neither) = ("203.0.113.1", "203.0.113.2", "203.0.113.3", "203.0.113.4");
    let before: Vec<(u64, &str, Vec<u8>)> = (1..=6).map(|i| (i, "sshd", failed(old))).collect();
    write_entries(&journal, &before);
    let daemon = s.start();
    let mut after: Vec<(u64, &str, Vec<u8>)> = Vec::new();
    for i in 0..6 {
        after.push((10 + 3 * i, "sshd", failed(new)));
        after.push((11 + 3 * i, "sshd-session", failed(other)));
        after.push((12 + 3 * i, "cron", failed(neither)));
    }
    write_entries(&journal, &after);
    daemon.until("both alternatives read", || {
        s.has(new, 6) && s.has(other, 6)
    });
    daemon.until("the cursor stored", || s.stored_cursor().is_some());
    assert_eq!(s.events(), pairs(&[(new, 6), (other, 6)]));
    assert_eq!(
        daemon.count("canhgac_input_lines_total{input=\"journal\"}"),
        12
    );
}

/// A journal directory that is not there yet (a disk not mounted, a
/// relay's first files not come): said in the log, retried with backoff and
/// counted, and read once it appears.
#[test]
fn a_journal_directory_made_later_is_read_once_it_exists() {
    let s = Setup::new();
    let journal = s.path("journal");
    fs::remove_dir(&journal).expect("no journal dir yet");
    let daemon = s.start();
    daemon.wait_log(0, "opening it again in");
    fs::create_dir(&journal).expect("journal dir");
    let a = "203.0.113.9";
    let entries: Vec<(u64, &str, Vec<u8>)> = (1..=6).map(|i| (i, "sshd", failed(a))).collect();
    write_entries(&journal, &entries);
    daemon.until("the entries read once the directory exists", || s.has(a, 6));
    assert!(daemon.count("canhgac_input_restarts_total{input=\"journal\"}") >= 1);
    assert!(daemon.count("canhgac_input_read_errors_total{input=\"journal\"}") >= 1);
}
