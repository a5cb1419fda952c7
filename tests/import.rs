//! `canhgac import` as an operator meets it: the real binary, real plain
//! and gzip files, a real store, and a real daemon writing to the same
//! store while an import runs.

use std::fs;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use jiff::tz::TimeZone;
use jiff::{Timestamp, ToSpan};
use serde_json::Value;
use tempfile::TempDir;

const BIN: &str = env!("CARGO_BIN_EXE_canhgac");
/// Generous: the machine may be busy compiling.
const DEADLINE: Duration = Duration::from_secs(90);

struct Site {
    dir: TempDir,
}

impl Site {
    /// A config in UTC with inputs `auth` (syslog) and `web` (nginx) on
    /// `live/`, as a daemon would tail them.
    fn new() -> Site {
        let dir = tempfile::tempdir().expect("tempdir");
        fs::create_dir_all(dir.path().join("live")).expect("live");
        fs::write(dir.path().join("live/auth.log"), b"").expect("live log");
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .expect("port")
            .port();
        fs::write(
            dir.path().join("canhgac.toml"),
            format!(
                r#"agency = "so-tttt-import"
time_zone = "UTC"
state_dir = "state"

[http]
listen = "127.0.0.1:{port}"

[pipeline]
batch_interval = "50ms"

[[input]]
name = "auth"
path = "live/auth.log"
type = "syslog"
start = "beginning"

[[input]]
name = "web"
path = "live/access.log*"
type = "nginx"
start = "beginning"
"#
            ),
        )
        .expect("config");
        Site { dir }
    }

    fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }

    fn config(&self) -> String {
        self.path("canhgac.toml").display().to_string()
    }

    /// `canhgac import --config C ARGS...`: (success, stdout, stderr).
    fn import(&self, args: &[&str]) -> (bool, String, String) {
        let out = Command::new(BIN)
            .args(["import", "--config", &self.config()])
            .args(args)
            .output()
            .expect("import runs");
        (
            out.status.success(),
            String::from_utf8_lossy(&out.stdout).into_owned(),
            String::from_utf8_lossy(&out.stderr).into_owned(),
        )
    }

    fn incidents(&self) -> Vec<Value> {
        self.try_incidents()
            .unwrap_or_else(|e| panic!("canhgac incidents: {e}"))
    }

    /// The stored incidents, or why they cannot be listed (no store yet).
    fn try_incidents(&self) -> Result<Vec<Value>, String> {
        let out = Command::new(BIN)
            .args(["incidents", "--config", &self.config(), "--format", "json"])
            .output()
            .expect("incidents runs");
        if !out.status.success() {
            return Err(String::from_utf8_lossy(&out.stderr).into_owned());
        }
        Ok(serde_json::from_slice::<Value>(&out.stdout)
            .expect("json")
            .as_array()
            .expect("array")
            .clone())
    }
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

fn gzip(data: &[u8]) -> Vec<u8> {
    let mut enc = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    enc.write_all(data).expect("gzip");
    enc.finish().expect("gzip")
}

fn set_mtime(path: &Path, t: Timestamp) {
    let when = std::time::SystemTime::from(t);
    fs::File::options()
        .write(true)
        .open(path)
        .and_then(|f| f.set_modified(when))
        .expect("mtime set");
}

fn ts(s: &str) -> Timestamp {
    s.parse().expect("timestamp")
}

#[test]
fn the_same_file_counts_once_under_any_name_compressed_or_not() {
    let site = Site::new();
    let day1 = ssh_bursts(ts("2020-10-05T00:00:00Z"), 7, 1);
    let day2 = ssh_bursts(ts("2020-10-12T00:00:00Z"), 4, 2);
    fs::write(site.path("auth.log.1"), &day1).expect("write");
    set_mtime(&site.path("auth.log.1"), ts("2020-10-06T06:25:00Z"));
    let (ok, stdout, stderr) = site.import(&[&site.path("auth.log.1").display().to_string()]);
    assert!(ok, "{stdout}{stderr}");
    assert!(stdout.contains("7 incidents"), "{stdout}");
    assert!(stdout.contains("input auth"), "{stdout}");
    assert_eq!(site.incidents().len(), 7);

    // Again; a copy under another name; and, after the next rotation, the
    // same content compressed as auth.log.2.gz next to a new auth.log.1.
    fs::copy(site.path("auth.log.1"), site.path("copy-of-auth.log")).expect("copy");
    fs::write(site.path("auth.log.2.gz"), gzip(day1.as_bytes())).expect("gz");
    fs::write(site.path("auth.log.1"), &day2).expect("write");
    set_mtime(&site.path("auth.log.1"), ts("2020-10-13T06:25:00Z"));
    let (ok, stdout, stderr) = site.import(&[
        &site.path("copy-of-auth.log").display().to_string(),
        &site.path("auth.log.2.gz").display().to_string(),
        &site.path("auth.log.1").display().to_string(),
    ]);
    assert!(ok, "{stdout}{stderr}");
    assert_eq!(stdout.matches("skipped ").count(), 2, "{stdout}");
    assert!(stdout.contains("already imported"), "{stdout}");
    assert!(
        stderr.contains("1 files imported, 2 already imported, 0 failed"),
        "{stderr}"
    );
    let all = site.incidents();
    assert_eq!(all.len(), 11, "7 + 4, nothing twice");
    let mut uids: Vec<&str> = all
        .iter()
        .map(|i| i["uid"].as_str().expect("uid"))
        .collect();
    uids.sort_unstable();
    uids.dedup();
    assert_eq!(uids.len(), 11);
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
    let site = Site::new();
    // December lines in a file rotated in January belong to the year before.
    let december = ssh_bursts(ts("2020-12-31T20:00:00Z"), 2, 3);
    fs::write(site.path("auth.log.1"), &december).expect("write");
    set_mtime(&site.path("auth.log.1"), ts("2021-01-01T06:25:00Z"));
    let (ok, out, err) = site.import(&[&site.path("auth.log.1").display().to_string()]);
    assert!(ok, "{out}{err}");
    // The same kind of lines, told their year.
    let old = ssh_bursts(ts("2020-12-31T20:00:00Z"), 1, 4);
    fs::write(site.path("old-auth.log"), &old).expect("write");
    let (ok, out, err) = site.import(&[
        "--year",
        "2017",
        "--input",
        "auth",
        &site.path("old-auth.log").display().to_string(),
    ]);
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
    let site = Site::new();
    let good = ssh_bursts(ts("2020-10-05T00:00:00Z"), 3, 5);
    fs::write(site.path("good.log"), &good).expect("write");
    set_mtime(&site.path("good.log"), ts("2020-10-06T00:00:00Z"));
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
    let (ok, stdout, stderr) = site.import(&args);
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
    assert_eq!(site.incidents().len(), 3);
    fs::write(site.path("truncated.log.2.gz"), &whole).expect("write");
    set_mtime(&site.path("truncated.log.2.gz"), ts("2020-11-01T00:00:00Z"));
    let (ok, stdout, stderr) = site.import(&[&paths[1]]);
    assert!(ok, "{stdout}{stderr}");
    assert_eq!(site.incidents().len(), 403);
}

#[test]
fn progress_bar_shows_on_a_terminal() {
    let site = Site::new();
    fs::write(
        site.path("auth.log.1"),
        ssh_bursts(ts("2020-10-05T00:00:00Z"), 2, 7),
    )
    .expect("write");
    // script(1) runs the import with a pseudo-terminal as its output.
    let command = format!(
        "{BIN} import --config {} {}",
        site.config(),
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

struct Daemon(Child);

impl Drop for Daemon {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn start_daemon(site: &Site, log: &str) -> Daemon {
    let log = fs::File::create(site.path(log)).expect("log");
    Daemon(
        Command::new(BIN)
            .args(["run", "--config", &site.config()])
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .expect("daemon starts"),
    )
}

fn wait_for(site: &Site, what: &str, mut done: impl FnMut(&[Value]) -> bool) -> Vec<Value> {
    let started = Instant::now();
    loop {
        let all = site.try_incidents().unwrap_or_default();
        if done(&all) {
            return all;
        }
        assert!(
            started.elapsed() < DEADLINE,
            "{what}: {} incidents; daemon log:\n{}",
            all.len(),
            fs::read_to_string(site.path("daemon.log")).unwrap_or_default()
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// The daemon keeps tailing and committing while an import writes to the
/// same store: neither loses, overwrites or duplicates the other's
/// incidents, and a daemon restarted afterwards numbers its incidents
/// without colliding with imported ones.
#[test]
fn import_beside_a_running_daemon() {
    let site = Site::new();
    let daemon = start_daemon(&site, "daemon.log");
    let live = |block: u8, n: u32| {
        // Now-ish, so the daemon's year inference (from the wall clock) and
        // ours agree.
        let start = Timestamp::now() - 2.hours();
        let mut f = fs::OpenOptions::new()
            .append(true)
            .open(site.path("live/auth.log"))
            .expect("open live log");
        f.write_all(ssh_bursts(start, n, block).as_bytes())
            .expect("append");
    };
    live(20, 5);
    wait_for(&site, "daemon stores the first live bursts", |a| {
        a.len() == 5
    });

    // A big import while the daemon goes on receiving attacks.
    let history = ssh_bursts(ts("2019-01-01T00:00:00Z"), 3000, 21);
    fs::write(site.path("auth.log.5.gz"), gzip(history.as_bytes())).expect("write");
    let import = Command::new(BIN)
        .args(["import", "--config", &site.config(), "--year", "2019"])
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
    let all = wait_for(&site, "all live and imported incidents", |a| {
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
    let _daemon = start_daemon(&site, "daemon.log");
    live(24, 3);
    let all = wait_for(&site, "live incidents after a restart", |a| {
        a.len() == 3020 + 3
    });
    let mut uids: Vec<&str> = all
        .iter()
        .map(|i| i["uid"].as_str().expect("uid"))
        .collect();
    uids.sort_unstable();
    uids.dedup();
    assert_eq!(uids.len(), 3023);
    let log = fs::read_to_string(site.path("daemon.log")).unwrap_or_default();
    assert!(!log.contains("ERROR"), "{log}");
    assert!(!log.contains("detector id"), "{log}");
}
