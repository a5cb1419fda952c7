//! `canhgac import` as an operator meets it: the real binary, real plain
//! and gzip files, a real store, and a real daemon writing to the same
//! store while an import runs.

mod common;

use std::fs;
use std::process::{Command, Stdio};

use jiff::tz::TimeZone;
use jiff::{Timestamp, ToSpan};
use serde_json::Value;

use common::cli;
use common::config::Config;
use common::daemon::Daemon;
use common::logs::{gzip, set_mtime};
use common::site::Site;
use common::BIN;

/// A config in UTC with inputs `auth` (syslog) and `web` (nginx) on
/// `live/`, as a daemon would tail them.
fn new_site() -> Site {
    let site = Site::with(
        &Config::new("so-tttt-import")
            .pipeline("batch_interval = \"50ms\"")
            .input("auth", "live/auth.log", "syslog")
            .input("web", "live/access.log*", "nginx"),
    );
    site.write("live/auth.log", "");
    site
}

/// `canhgac import --config C ARGS...`: (success, stdout, stderr).
fn import(site: &Site, args: &[&str]) -> (bool, String, String) {
    let out = cli::command()
        .arg("import")
        .arg("--config")
        .arg(site.config())
        .args(args)
        .output()
        .expect("import runs");
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// How many different incident uids `all` holds.
fn distinct_uids(all: &[Value]) -> usize {
    let uids: std::collections::BTreeSet<&str> = all
        .iter()
        .map(|i| i["uid"].as_str().expect("uid"))
        .collect();
    uids.len()
}

fn incidents(site: &Site) -> Vec<Value> {
    cli::try_incidents(&site.config()).unwrap_or_else(|e| panic!("canhgac incidents: {e}"))
}

/// `n` SSH brute-force bursts (5 failures each, one incident each, from
/// addresses `10.B.x.y`) an hour apart from `start`, classic syslog stamps.
fn ssh_bursts(start: Timestamp, n: u32, block: u8) -> String {
    let mut out = String::new();
    for i in 0..n {
        let at = start + (i64::from(i) * 3600).seconds();
        for k in 0..5 {
            let t = (at + (k * 3).seconds()).to_zoned(TimeZone::UTC);
            out.push_str(&format!(
                "{} portal sshd[{}]: Failed password for root from 10.{block}.{}.{} port {} ssh2\n",
                t.strftime("%b %e %H:%M:%S"),
                1000 + i,
                i / 256,
                i % 256,
                40000 + k
            ));
        }
    }
    out
}

fn ts(s: &str) -> Timestamp {
    s.parse().expect("timestamp")
}

/// Writes `name` as logrotate leaves a rotated file: `content`, last
/// modified at `mtime`; its path, as `import` is given it.
fn rotated(site: &Site, name: &str, content: impl AsRef<[u8]>, mtime: &str) -> String {
    let path = site.path(name);
    fs::write(&path, content).expect("write");
    set_mtime(&path, ts(mtime));
    path.display().to_string()
}

#[test]
fn the_same_file_counts_once_under_any_name_compressed_or_not() {
    let site = new_site();
    let day1 = ssh_bursts(ts("2020-10-05T00:00:00Z"), 7, 1);
    let day2 = ssh_bursts(ts("2020-10-12T00:00:00Z"), 4, 2);
    let first = rotated(&site, "auth.log.1", &day1, "2020-10-06T06:25:00Z");
    let (ok, stdout, stderr) = import(&site, &[&first]);
    assert!(ok, "{stdout}{stderr}");
    assert!(stdout.contains("7 incidents"), "{stdout}");
    assert!(stdout.contains("input auth"), "{stdout}");
    assert_eq!(incidents(&site).len(), 7);

    // Again; a copy under another name; and, after the next rotation, the
    // same content compressed as auth.log.2.gz next to a new auth.log.1.
    fs::copy(site.path("auth.log.1"), site.path("copy-of-auth.log")).expect("copy");
    fs::write(site.path("auth.log.2.gz"), gzip(day1.as_bytes())).expect("gz");
    let second = rotated(&site, "auth.log.1", &day2, "2020-10-13T06:25:00Z");
    let (ok, stdout, stderr) = import(
        &site,
        &[
            &site.path("copy-of-auth.log").display().to_string(),
            &site.path("auth.log.2.gz").display().to_string(),
            &second,
        ],
    );
    assert!(ok, "{stdout}{stderr}");
    assert_eq!(stdout.matches("skipped ").count(), 2, "{stdout}");
    assert!(stdout.contains("already imported"), "{stdout}");
    assert!(
        stderr.contains("1 files imported, 2 already imported, 0 failed"),
        "{stderr}"
    );
    let all = incidents(&site);
    assert_eq!(all.len(), 11, "7 + 4, nothing twice");
    assert_eq!(distinct_uids(&all), 11);
    for i in &all {
        assert_eq!(i["open"], false, "imported incidents are closed");
        assert_eq!(i["input"], "auth");
        assert_eq!(i["events"], 5);
        assert!(i["uid"]
            .as_str()
            .is_some_and(|u| u.starts_with("so-tttt-import-")));
    }
    // Times come from the lines, years from the files' mtime.
    assert_eq!(all[0]["first_seen"], "2020-10-05T00:00:00Z");
    assert_eq!(all[10]["first_seen"], "2020-10-12T03:00:00Z");

    // Progress is drawn only on a terminal: here stderr is a pipe.
    assert!(!stderr.contains('\r'), "{stderr:?}");
}

#[test]
fn year_comes_from_the_files_age_or_from_the_flag() {
    let site = new_site();
    // December lines in a file rotated in January belong to the year before.
    let december = ssh_bursts(ts("2020-12-31T20:00:00Z"), 2, 3);
    let log = rotated(&site, "auth.log.1", &december, "2021-01-01T06:25:00Z");
    let (ok, out, err) = import(&site, &[&log]);
    assert!(ok, "{out}{err}");
    // The same kind of lines, told their year.
    let old = ssh_bursts(ts("2020-12-31T20:00:00Z"), 1, 4);
    fs::write(site.path("old-auth.log"), &old).expect("write");
    let (ok, out, err) = import(
        &site,
        &[
            "--year",
            "2017",
            "--input",
            "auth",
            &site.path("old-auth.log").display().to_string(),
        ],
    );
    assert!(ok, "{out}{err}");
    let firsts: Vec<String> = site
        .incidents()
        .iter()
        .map(|i| i["first_seen"].as_str().expect("time").to_owned())
        .collect();
    assert_eq!(
        firsts,
        [
            "2017-12-31T20:00:00Z",
            "2020-12-31T20:00:00Z",
            "2020-12-31T21:00:00Z"
        ]
    );
}

#[test]
fn bad_files_are_named_and_the_others_go_on() {
    let site = new_site();
    let good = ssh_bursts(ts("2020-10-05T00:00:00Z"), 3, 5);
    rotated(&site, "good.log", &good, "2020-10-06T00:00:00Z");
    let whole = gzip(ssh_bursts(ts("2020-10-07T00:00:00Z"), 400, 6).as_bytes());
    fs::write(
        site.path("truncated.log.2.gz"),
        &whole[..whole.len() * 2 / 3],
    )
    .expect("write");
    let mut corrupt = whole.clone();
    for b in corrupt.iter_mut().skip(20).step_by(7) {
        *b ^= 0x5a;
    }
    fs::write(site.path("corrupt.log.3.gz"), &corrupt).expect("write");
    let junk: Vec<u8> = (0..50_000u32)
        .map(|i| (i.wrapping_mul(2_654_435_761) >> 13) as u8)
        .collect();
    fs::write(site.path("junk.bin"), &junk).expect("write");
    fs::write(site.path("auth.log.4.xz"), b"\xfd7zXZ\x00rest").expect("write");
    fs::create_dir(site.path("a-directory")).expect("mkdir");

    let names = [
        "good.log",
        "truncated.log.2.gz",
        "corrupt.log.3.gz",
        "junk.bin",
        "auth.log.4.xz",
        "a-directory",
        "missing.log",
    ];
    let paths: Vec<String> = names
        .iter()
        .map(|n| site.path(n).display().to_string())
        .collect();
    let args: Vec<&str> = paths.iter().map(String::as_str).collect();
    let (ok, stdout, stderr) = import(&site, &args);
    assert!(!ok, "exit status says something failed");
    assert!(stdout.contains("imported "), "{stdout}");
    for (name, reason) in [
        ("truncated.log.2.gz", "gzip"),
        ("corrupt.log.3.gz", "gzip"),
        ("junk.bin", "binary"),
        ("auth.log.4.xz", "xz"),
        ("a-directory", "is a directory"),
        ("missing.log", "cannot open"),
    ] {
        let line = stderr
            .lines()
            .find(|l| l.contains(name))
            .unwrap_or_else(|| panic!("no error names {name}: {stderr}"));
        assert!(line.contains(reason), "{name}: {line}");
    }
    assert!(
        stderr.contains("1 files imported, 0 already imported, 6 failed"),
        "{stderr}"
    );
    // Only the good file's incidents: a file that failed half-way stored
    // nothing, and is not recorded as imported either.
    assert_eq!(incidents(&site).len(), 3);
    let truncated = rotated(&site, "truncated.log.2.gz", &whole, "2020-11-01T00:00:00Z");
    let (ok, stdout, stderr) = import(&site, &[&truncated]);
    assert!(ok, "{stdout}{stderr}");
    assert_eq!(incidents(&site).len(), 403);
}

#[test]
fn progress_bar_shows_on_a_terminal() {
    let site = new_site();
    fs::write(
        site.path("auth.log.1"),
        ssh_bursts(ts("2020-10-05T00:00:00Z"), 2, 7),
    )
    .expect("write");
    // script(1) runs the import with a pseudo-terminal as its output.
    let command = format!(
        "{BIN} import --config {} {}",
        site.config().display(),
        site.path("auth.log.1").display()
    );
    let out = Command::new("script")
        .args(["-q", "-e", "-c", &command, "/dev/null"])
        .output()
        .expect("script(1) from util-linux runs");
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{text}");
    assert!(text.contains("\r["), "no progress bar drawn: {text:?}");
    assert!(text.contains("100.0%"), "{text:?}");
}

/// Waits until the stored incidents satisfy `done`; returns them.
fn wait_for(
    site: &Site,
    daemon: &Daemon,
    what: &str,
    done: impl Fn(&[Value]) -> bool,
) -> Vec<Value> {
    daemon.wait(what, || {
        let all = site.incidents();
        done(&all).then_some(all)
    })
}

/// The daemon keeps tailing and committing while an import writes to the
/// same store: neither loses, overwrites or duplicates the other's
/// incidents, and a daemon restarted afterwards numbers its incidents
/// without colliding with imported ones.
#[test]
fn import_beside_a_running_daemon() {
    let site = new_site();
    let daemon = site.daemon().ready();
    let live = |block: u8, n: u32| {
        // Now-ish, so the daemon's year inference (from the wall clock) and
        // ours agree.
        let start = Timestamp::now() - 2.hours();
        site.append("live/auth.log", ssh_bursts(start, n, block));
    };
    live(20, 5);
    wait_for(&site, &daemon, "daemon stores the first live bursts", |a| {
        a.len() == 5
    });

    // A big import while the daemon goes on receiving attacks.
    let history = ssh_bursts(ts("2019-01-01T00:00:00Z"), 3000, 21);
    fs::write(site.path("auth.log.5.gz"), gzip(history.as_bytes())).expect("write");
    let import = cli::command()
        .arg("import")
        .arg("--config")
        .arg(site.config())
        .args(["--year", "2019"])
        .arg(site.path("auth.log.5.gz"))
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("import starts");
    live(22, 10);
    let out = {
        let out = import.wait_with_output().expect("import ends");
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        out
    };
    assert!(String::from_utf8_lossy(&out.stdout).contains("3000 incidents"));
    live(23, 5);
    let all = wait_for(&site, &daemon, "all live and imported incidents", |a| {
        a.len() == 5 + 3000 + 10 + 5
    });
    let imported = all
        .iter()
        .filter(|i| {
            i["first_seen"]
                .as_str()
                .is_some_and(|t| t.starts_with("2019-"))
        })
        .count();
    assert_eq!(imported, 3000);
    for i in all.iter().filter(|i| {
        !i["first_seen"]
            .as_str()
            .is_some_and(|t| t.starts_with("2019-"))
    }) {
        assert_eq!(i["input"], "auth");
        assert_eq!(i["events"], 5, "{i}");
    }

    // Restart: the daemon resumes and numbers new incidents past its own.
    drop(daemon);
    let daemon = site.daemon().ready();
    live(24, 3);
    let all = wait_for(&site, &daemon, "live incidents after a restart", |a| {
        a.len() == 3020 + 3
    });
    assert_eq!(distinct_uids(&all), 3023);
    let log = daemon.log_text();
    assert!(!log.contains("ERROR"), "{log}");
    assert!(!log.contains("detector id"), "{log}");
}

/// A classic year-less auth.log that spans a new year: the years follow
/// the file's own rollover, anchored at its last line (never after its
/// mtime), or start at `--year`; a wrong import is listed, forgotten and
/// done again.
#[test]
fn a_yearless_file_across_new_year_and_an_import_forgotten() {
    let site = new_site();
    let december = ssh_bursts(ts("2021-12-31T20:00:00Z"), 3, 1);
    let january = ssh_bursts(ts("2022-01-01T01:00:00Z"), 2, 2);
    // Rotated five weeks later, as a monthly rotation with a delay leaves it.
    let file = rotated(
        &site,
        "auth.log.1",
        format!("{december}{january}"),
        "2022-02-07T06:25:00Z",
    );
    let (ok, stdout, stderr) = import(&site, &[&file]);
    assert!(ok, "{stdout}{stderr}");
    let months = |site: &Site| -> Vec<String> {
        let mut m: Vec<String> = incidents(site)
            .iter()
            .map(|i| i["first_seen"].as_str().expect("time")[..7].to_owned())
            .collect();
        m.sort();
        m
    };
    assert_eq!(
        months(&site),
        ["2021-12", "2021-12", "2021-12", "2022-01", "2022-01"]
    );

    // --list names it; --forget removes it and its incidents at once.
    let (ok, listed, stderr) = import(&site, &["--list"]);
    assert!(ok, "{stderr}");
    let row = listed.lines().nth(1).expect("one import");
    assert!(row.contains("auth.log.1"), "{listed}");
    assert!(
        row.contains("2021-12-31") && row.contains("2022-01-01"),
        "{listed}"
    );
    let id = row.split_whitespace().next().expect("id");
    assert_eq!(id.len(), 16);
    let (ok, out, err) = import(&site, &["--forget", &id[..10]]);
    assert!(ok, "{out}{err}");
    assert!(out.contains("5 incidents removed"), "{out}");
    assert_eq!(incidents(&site).len(), 0);
    let (ok, _, err) = import(&site, &["--forget", id]);
    assert!(!ok && err.contains("no import has id"), "{err}");

    // --year names the first line's year and rolls over with the file:
    // January is 2019's January, not 2018's.
    let (ok, stdout, stderr) = import(&site, &["--year", "2018", &file]);
    assert!(ok, "{stdout}{stderr}");
    assert_eq!(
        months(&site),
        ["2018-12", "2018-12", "2018-12", "2019-01", "2019-01"]
    );

    // A file last written at 01:30 on 1 January 2022 cannot hold a line of
    // 02:00 that day: the last line is never placed after the mtime, so it
    // is 2021's, and the file's December 2020's.
    let (ok, out, err) = import(&site, &["--forget", id]);
    assert!(ok, "{out}{err}");
    set_mtime(&site.path("auth.log.1"), ts("2022-01-01T01:30:00Z"));
    let (ok, stdout, stderr) = import(&site, &[&file]);
    assert!(ok, "{stdout}{stderr}");
    assert_eq!(
        months(&site),
        ["2020-12", "2020-12", "2020-12", "2021-01", "2021-01"]
    );
}
