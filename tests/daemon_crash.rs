//! The durability guarantee, tested as it would fail in production: the
//! daemon is killed with SIGKILL at random moments while a writer appends
//! real attack logs (with a rotation in the middle), restarted each time,
//! and at the end the incidents in the store must be exactly those that
//! `canhgac scan` finds in the same lines: nothing lost, nothing twice.

mod common;

use std::fs;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use jiff::Timestamp;

use common::cli;
use common::config::Config;
use common::daemon::Daemon;
use common::logs::{append, corpus_lines as corpus};
use common::site::Site;
use common::wait;
use common::Rng;

fn start(site: &Site) -> Daemon {
    site.daemon().env("CANHGAC_LOG", "info").ready()
}

/// (rule, key, first seen in µs, events), sorted: a multiset, so a
/// duplicate incident shows.
type Facts = Vec<(String, String, i64, u64)>;

fn stored(db: &Path) -> Facts {
    let conn =
        rusqlite::Connection::open_with_flags(db, rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY)
            .expect("db opens");
    let mut stmt = conn
        .prepare("SELECT rule, key, first_seen_us, events FROM incidents")
        .expect("query");
    let mut facts: Facts = stmt
        .query_map([], |r| {
            let events: i64 = r.get(3)?;
            Ok((r.get(0)?, r.get(1)?, r.get(2)?, events as u64))
        })
        .expect("rows")
        .collect::<Result<_, _>>()
        .expect("row values");
    facts.sort();
    facts
}

fn scanned(files: &[PathBuf]) -> Facts {
    let mut facts: Facts = cli::scan(files)
        .0
        .iter()
        .map(|i| {
            let first: Timestamp = i["first_seen"]
                .as_str()
                .and_then(|s| s.parse().ok())
                .expect("first_seen is RFC 3339");
            (
                i["rule"].as_str().unwrap_or_default().to_owned(),
                i["key"].as_str().unwrap_or_default().to_owned(),
                first.as_microsecond(),
                i["events"].as_u64().unwrap_or_default(),
            )
        })
        .collect();
    facts.sort();
    facts
}

/// Sum of checkpoint offsets per path, as the daemon last committed them.
fn committed_offsets(db: &Path) -> Vec<(String, i64)> {
    let Ok(conn) =
        rusqlite::Connection::open_with_flags(db, rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY)
    else {
        return Vec::new();
    };
    let Ok(mut stmt) = conn.prepare("SELECT path, byte_offset FROM checkpoints ORDER BY path")
    else {
        return Vec::new();
    };
    stmt.query_map([], |r| Ok((r.get(0)?, r.get(1)?)))
        .map(|rows| rows.filter_map(Result::ok).collect())
        .unwrap_or_default()
}

/// Waits until the daemon of `site` has committed each of `files` up to
/// its end.
fn wait_committed(site: &Site, files: &[impl AsRef<Path>]) {
    let db = site.path("state/canhgac.db");
    let size = |p: &Path| fs::metadata(p).map_or(0, |m| m.len() as i64);
    wait::poll_every(
        // Generous: a debug daemon restarted on a loaded machine.
        Duration::from_secs(120),
        Duration::from_millis(20),
        "the daemon to commit the files to their ends",
        || {
            let offsets = committed_offsets(&db);
            let at = |f: &Path| {
                offsets
                    .iter()
                    .find(|(p, _)| Path::new(p) == f)
                    .map_or(0, |(_, o)| *o)
            };
            files
                .iter()
                .all(|f| at(f.as_ref()) == size(f.as_ref()))
                .then_some(())
        },
        || {
            format!(
                "committed: {:?}\ndaemon log:\n{}",
                committed_offsets(&db),
                site.log()
            )
        },
    );
}

#[test]
fn kill_9_at_random_moments_loses_nothing_and_counts_nothing_twice() {
    let _serial = SERIAL.lock();
    kill_9_run(0, Duration::from_millis(30));
}

/// The tests of this file one at a time: each needs the machine's CPUs for
/// its daemon to keep pace with its writer.
static SERIAL: std::sync::Mutex<()> = std::sync::Mutex::new(());

/// The same with a large detector state: tens of thousands of addresses
/// that failed once, each a live key below its threshold, which every
/// restart must bring back exactly from the rows of the keys that changed.
#[test]
fn kill_9_with_fifty_thousand_live_keys() {
    let _serial = SERIAL.lock();
    // Each start restores the keys: the writer takes its time.
    let keys = kill_9_run(50_000, Duration::from_millis(120));
    assert!(keys >= 50_000, "only {keys} live keys stored");
}

/// Kills the daemon at random moments while the corpus is written, after
/// `prefill` lines of distinct addresses; returns the live keys stored.
fn kill_9_run(prefill: u32, pause: Duration) -> u64 {
    let site = Site::with(
        &Config::new("test")
            .time_zone(None)
            .any_port()
            .pipeline("batch_interval = \"50ms\"\nbatch_lines = 500\nmax_keys = 400000")
            .input("auth", "logs/auth.log", "syslog")
            .input("web", "logs/access.log", "apache"),
    );
    let logs = site.path("logs");
    fs::create_dir(&logs).expect("logs dir");
    let db = site.path("state/canhgac.db");
    let auth_log = logs.join("auth.log");
    let access_log = logs.join("access.log");

    // Before the corpus's first line (Dec 10 06:55:46), one failure from
    // each address: the keys stay live while the corpus is read.
    let mut fill = Vec::new();
    for i in 0..prefill {
        let [_, a, b, c] = i.to_be_bytes();
        writeln!(
            fill,
            "Dec 10 06:50:00 LabSZ sshd[{}]: Failed password for root from 10.{a}.{b}.{c} port 22 ssh2",
            1000 + i % 30000
        )
        .expect("fill line");
    }
    append(&auth_log, &fill);
    let auth = corpus("openssh_2k.log");
    let access = corpus("apache_access_10k.log");
    let auth_lines: Vec<&[u8]> = auth.split_inclusive(|&b| b == b'\n').collect();
    let access_lines: Vec<&[u8]> = access.split_inclusive(|&b| b == b'\n').collect();

    let seed = Timestamp::now().as_nanosecond() as u64 | 1;
    println!("seed {seed}");
    let mut rng = Rng(seed);

    // The writer: a thread appending both logs in small steps over a few
    // seconds, rotating auth.log (rename, then a new file) half-way.
    let writer = {
        let (auth_log, access_log) = (auth_log.clone(), access_log.clone());
        let db_for_writer = db.clone();
        let auth_lines: Vec<Vec<u8>> = auth_lines.iter().map(|l| l.to_vec()).collect();
        let access_lines: Vec<Vec<u8>> = access_lines.iter().map(|l| l.to_vec()).collect();
        std::thread::spawn(move || {
            const STEPS: usize = 200;
            let auth_step = auth_lines.len().div_ceil(STEPS);
            let access_step = access_lines.len().div_ceil(STEPS);
            for step in 0..STEPS {
                if step == STEPS / 2 {
                    // logrotate runs long after the daemon first saw the
                    // file; a file rotated away before the daemon ever
                    // committed a checkpoint of it is unknown to it.
                    let until = Instant::now() + Duration::from_secs(120);
                    while !committed_offsets(&db_for_writer)
                        .iter()
                        .any(|(p, o)| p.ends_with("/auth.log") && *o > 0)
                    {
                        assert!(
                            Instant::now() < until,
                            "no checkpoint of auth.log within 120 s: cannot rotate it"
                        );
                        std::thread::sleep(Duration::from_millis(20));
                    }
                    fs::rename(&auth_log, auth_log.with_extension("log.1")).expect("rotate");
                }
                let chunk = |lines: &[Vec<u8>], n: usize| -> Vec<u8> {
                    lines
                        .iter()
                        .skip(step * n)
                        .take(n)
                        .flatten()
                        .copied()
                        .collect()
                };
                append(&auth_log, &chunk(&auth_lines, auth_step));
                append(&access_log, &chunk(&access_lines, access_step));
                std::thread::sleep(pause);
            }
        })
    };

    // The killer: SIGKILL at random moments until the writer is done
    // (bounded in count), then one last uninterrupted run.
    let mut kills = 0;
    while !writer.is_finished() && kills < 40 {
        // Random moments of the daemon's work, not of its start-up (slow in
        // a debug build): startup cannot commit anything anyway.
        let daemon = start(&site);
        // Until the first commit, let the daemon make it: on a loaded
        // machine a debug daemon killed within 300 ms of READY might never
        // commit, and the writer waits for a checkpoint before rotating.
        let first = Instant::now() + Duration::from_secs(120);
        while committed_offsets(&db).is_empty() && Instant::now() < first {
            std::thread::sleep(Duration::from_millis(10));
        }
        std::thread::sleep(Duration::from_millis(20 + rng.below(300)));
        daemon.kill9();
        kills += 1;
    }
    writer.join().expect("writer finished");
    assert!(kills >= 5, "only {kills} kills: the writer ran too briefly");

    let rotated = logs.join("auth.log.1");
    // SIGTERM before the daemon has its handlers would just kill it.
    let daemon = start(&site);
    wait_committed(&site, &[&auth_log, &access_log]);
    let status = daemon.stop();
    assert!(status.success(), "SIGTERM exit: {status}");

    let expected = scanned(&[rotated, auth_log, access_log]);
    let got = stored(&db);
    println!(
        "{kills} kills; {} incidents stored, {} expected",
        got.len(),
        expected.len()
    );
    assert!(expected.len() >= 15, "the corpus holds many incidents");
    let missing: Vec<_> = expected.iter().filter(|f| !got.contains(f)).collect();
    let extra: Vec<_> = got.iter().filter(|f| !expected.contains(f)).collect();
    assert!(
        missing.is_empty() && extra.is_empty() && got.len() == expected.len(),
        "seed {seed}: missing {missing:#?}\nextra {extra:#?}\ndaemon log:\n{}",
        site.log()
    );
    live_keys(&db)
}

/// Detector keys the store holds (their latest rows, the gone ones not).
fn live_keys(db: &Path) -> u64 {
    let conn =
        rusqlite::Connection::open_with_flags(db, rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY)
            .expect("db opens");
    conn.query_row(
        // SQLite takes a bare column from the row holding the MAX().
        "SELECT COUNT(*) FROM (SELECT state, MAX(seq) FROM detector_keys
             WHERE kind = 0 GROUP BY rule, key) WHERE state IS NOT NULL",
        [],
        |r| r.get::<_, i64>(0),
    )
    .map_or(0, |n| n as u64)
}

/// One attacker in two logs, a failure every two minutes between them:
/// five within ten minutes only when both logs are read together.
fn two_logs(base: Timestamp) -> (Vec<u8>, Vec<u8>, Vec<(u32, bool)>) {
    let (mut a, mut b, mut order) = (Vec::new(), Vec::new(), Vec::new());
    for minute in (0..=20u32).step_by(2) {
        let at = base + jiff::SignedDuration::from_secs(i64::from(minute) * 60);
        let stamp = at
            .to_zoned(jiff::tz::TimeZone::UTC)
            .strftime("%b %e %H:%M:%S");
        let line = format!(
            "{stamp} web sshd[{}]: Failed password for root from 203.0.113.50 port {} ssh2\n",
            4000 + minute,
            50000 + minute
        );
        let in_a = minute % 4 == 0;
        if in_a { &mut a } else { &mut b }.extend_from_slice(line.as_bytes());
        order.push((minute, in_a));
    }
    (a, b, order)
}

/// Runs a daemon over two syslog files until it has read `sizes` bytes of
/// each, feeding them live with `feed` (or finding them whole at start),
/// then stops it; returns what it stored.
fn two_inputs_run(live: bool, base: Timestamp) -> Facts {
    let site = Site::with(
        &Config::new("test")
            .any_port()
            .input("a", "logs/a.log", "syslog")
            .input("b", "logs/b.log", "syslog"),
    );
    let logs = site.path("logs");
    fs::create_dir(&logs).expect("logs dir");
    let db = site.path("state/canhgac.db");
    let (a_log, b_log) = (logs.join("a.log"), logs.join("b.log"));
    let (a, b, order) = two_logs(base);
    if !live {
        append(&a_log, &a);
        append(&b_log, &b);
    }
    let daemon = start(&site);
    if live {
        let lines = |data: &[u8]| -> Vec<Vec<u8>> {
            data.split_inclusive(|&c| c == b'\n')
                .map(<[u8]>::to_vec)
                .collect()
        };
        let (mut a_lines, mut b_lines) = (lines(&a).into_iter(), lines(&b).into_iter());
        for (_, in_a) in order {
            let (path, line) = if in_a {
                (&a_log, a_lines.next())
            } else {
                (&b_log, b_lines.next())
            };
            append(path, &line.expect("a line of that log"));
            // Each line read before the next is written, as when tailing.
            wait_committed(&site, &[path]);
        }
    }
    wait_committed(&site, &[&a_log, &b_log]);
    assert!(daemon.stop().success());
    stored(&db)
}

#[test]
fn a_backlog_in_two_inputs_makes_the_incidents_of_reading_them_live() {
    let _serial = SERIAL.lock();
    let base = Timestamp::now() - jiff::SignedDuration::from_hours(3);
    let live = two_inputs_run(true, base);
    assert!(
        live.iter()
            .any(|(rule, key, _, events)| rule == "ssh-bruteforce"
                && key == "203.0.113.50"
                && *events == 11),
        "{live:#?}"
    );
    let backlog = two_inputs_run(false, base);
    assert_eq!(backlog, live);
}
