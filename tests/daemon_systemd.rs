//! `canhgac run` as systemd and a sysadmin meet it: the built binary, a
//! config and logs in a temporary directory, the sd_notify socket played by
//! the test, signals sent with kill(1), incidents read back through
//! `canhgac incidents` and SQLite.
//!
//! The machine running these tests may be loaded (two cores, other builds):
//! every wait polls for a condition with a generous deadline, nothing asserts
//! that something was fast, and a guard kills the daemon when a test fails.

use std::fs;
use std::io::{BufRead, BufReader, Write};
use std::os::unix::fs::PermissionsExt;
use std::os::unix::net::UnixDatagram;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Output, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::{self, Receiver};
use std::sync::{Arc, Mutex};
use std::thread::{self, JoinHandle};
use std::time::{Duration, Instant};

use regex::Regex;
use serde_json::Value;
use tempfile::TempDir;

const BIN: &str = env!("CARGO_BIN_EXE_canhgac");

/// How long any condition may take to come true. Generous: a loaded
/// machine is slow, a broken daemon is never fast enough anyway.
const DEADLINE: Duration = Duration::from_secs(20);

const POLL: Duration = Duration::from_millis(50);

/// The watchdog interval given to the daemon (`WATCHDOG_USEC`).
const WATCHDOG: Duration = Duration::from_secs(1);

/// Variables of the environment running the tests (a CI job may itself run
/// under systemd) that would change what the daemon does.
const SYSTEMD_ENV: [&str; 6] = [
    "NOTIFY_SOCKET",
    "WATCHDOG_USEC",
    "WATCHDOG_PID",
    "JOURNAL_STREAM",
    "RUST_LOG",
    "CANHGAC_LOG",
];

/// `n` failed SSH passwords for root from `ip`, one second apart from
/// `Oct 31 23:30:<start>`: `ssh-bruteforce` opens an incident at the
/// fifth within ten minutes.
fn attack(ip: &str, n: usize, start: usize) -> String {
    (start..start + n)
        .map(|i| {
            format!(
                "Oct 31 23:{:02}:{:02} host sshd[123]: Failed password for root from {ip} port 22 ssh2\n",
                30 + i / 60,
                i % 60
            )
        })
        .collect()
}

struct Fixture {
    dir: TempDir,
}

impl Fixture {
    /// A config with one syslog input `auth.log` (read from its start), the
    /// state in `state/`, builtin rules, plus `extra` TOML appended.
    fn new(extra: &str) -> Self {
        let dir = TempDir::new().expect("tempdir");
        let f = Fixture { dir };
        f.write_config(extra);
        f.write("auth.log", "");
        f
    }

    fn write_config(&self, extra: &str) {
        self.write_config_text(&format!(
            r#"agency = "test-agency"
time_zone = "UTC"
state_dir = "state"
{extra}

[[input]]
name = "auth"
path = "auth.log"
type = "syslog"
start = "beginning"

# Tests run in parallel: any free port.
[http]
listen = "127.0.0.1:0"
"#
        ));
    }

    /// Replaces the config atomically, as an editor or a config manager
    /// would: a reload never sees it half-written.
    fn write_config_text(&self, text: &str) {
        let tmp = self.path("canhgac.toml.tmp");
        fs::write(&tmp, text).expect("write config");
        fs::rename(&tmp, self.config()).expect("rename config");
    }

    fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }

    fn config(&self) -> PathBuf {
        self.path("canhgac.toml")
    }

    fn db(&self) -> PathBuf {
        self.path("state/canhgac.db")
    }

    fn write(&self, name: &str, text: &str) {
        let p = self.path(name);
        if let Some(dir) = p.parent() {
            fs::create_dir_all(dir).expect("mkdir");
        }
        fs::write(p, text).expect("write");
    }

    /// Appends with one write(2), as a syslog daemon writes whole lines.
    fn append(&self, name: &str, text: &str) {
        let mut f = fs::OpenOptions::new()
            .append(true)
            .open(self.path(name))
            .expect("open for append");
        f.write_all(text.as_bytes()).expect("append");
    }

    /// Appends to a file whose mode forbids it, by lifting the mode for the
    /// write only.
    fn append_unreadable(&self, text: &str) {
        let p = self.path("auth.log");
        fs::set_permissions(&p, fs::Permissions::from_mode(0o200)).expect("chmod");
        self.append("auth.log", text);
        fs::set_permissions(&p, fs::Permissions::from_mode(0o000)).expect("chmod");
    }

    fn command(&self) -> Command {
        let mut cmd = Command::new(BIN);
        for var in SYSTEMD_ENV {
            cmd.env_remove(var);
        }
        cmd.env("TZ", "UTC").env_remove("NO_COLOR");
        cmd
    }

    /// `canhgac run --config FILE` with stderr captured.
    fn spawn(&self, setup: impl FnOnce(&mut Command)) -> Daemon {
        let mut cmd = self.command();
        cmd.arg("run")
            .arg("--config")
            .arg(self.config())
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped());
        setup(&mut cmd);
        Daemon::spawn(cmd)
    }

    /// Stored incidents, through `canhgac incidents --format json`; none
    /// while there is no database yet.
    fn incidents(&self) -> Vec<Value> {
        if !self.db().exists() {
            return Vec::new();
        }
        let out = self
            .command()
            .args(["incidents", "--format", "json", "--config"])
            .arg(self.config())
            .output()
            .expect("run canhgac incidents");
        assert!(
            out.status.success(),
            "canhgac incidents failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        let v: Value = serde_json::from_slice(&out.stdout).expect("incidents JSON");
        v.as_array().expect("an array").clone()
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
    fn wait_incident(&self, daemon: &mut Daemon, rule: &str, key: &str, events: u64) -> Value {
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
        self.command()
            .arg("check")
            .arg("--config")
            .arg(self.config())
            .output()
            .expect("run canhgac check")
    }
}

/// The running daemon. Dropping it kills the process if it still runs, so
/// a failed assertion never leaves a daemon behind; a failing test also
/// prints what the daemon logged.
struct Daemon {
    child: Child,
    log: Arc<Mutex<Vec<String>>>,
    reader: Option<JoinHandle<()>>,
    status: Option<ExitStatus>,
}

impl Daemon {
    fn spawn(mut cmd: Command) -> Daemon {
        let mut child = cmd.spawn().expect("start canhgac run");
        let stderr = child.stderr.take().expect("piped stderr");
        let log = Arc::new(Mutex::new(Vec::new()));
        let sink = Arc::clone(&log);
        let reader = thread::spawn(move || {
            let mut r = BufReader::new(stderr);
            let mut buf = Vec::new();
            while r.read_until(b'\n', &mut buf).is_ok_and(|n| n > 0) {
                let line = String::from_utf8_lossy(&buf);
                let line = line.strip_suffix('\n').unwrap_or(&line).to_owned();
                sink.lock().unwrap_or_else(|e| e.into_inner()).push(line);
                buf.clear();
            }
        });
        Daemon {
            child,
            log,
            reader: Some(reader),
            status: None,
        }
    }

    fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Sends a signal with kill(1), as `systemctl kill` or ExecReload would.
    fn signal(&self, sig: &str) {
        let status = Command::new("kill")
            .arg(format!("-{sig}"))
            .arg(self.pid().to_string())
            .status()
            .expect("run kill");
        assert!(status.success(), "kill -{sig} {} failed", self.pid());
    }

    fn log(&self) -> Vec<String> {
        self.log.lock().unwrap_or_else(|e| e.into_inner()).clone()
    }

    fn log_text(&self) -> String {
        self.log().join("\n")
    }

    /// Lines logged so far; for `wait_log` to look only at what comes next.
    fn log_len(&self) -> usize {
        self.log.lock().unwrap_or_else(|e| e.into_inner()).len()
    }

    /// Polls `f` until it returns something; panics (with the daemon's log)
    /// at the deadline or if the daemon exits meanwhile.
    fn wait<T>(&mut self, what: &str, mut f: impl FnMut() -> Option<T>) -> T {
        let end = Instant::now() + DEADLINE;
        loop {
            if let Some(v) = f() {
                return v;
            }
            if let Some(status) = self.child.try_wait().expect("try_wait") {
                self.status = Some(status);
                panic!(
                    "the daemon exited ({status}) while waiting for {what}; its log:\n{}",
                    self.log_text()
                );
            }
            assert!(
                Instant::now() < end,
                "timed out after {DEADLINE:?} waiting for {what}; daemon log:\n{}",
                self.log_text()
            );
            thread::sleep(POLL);
        }
    }

    /// Waits for a log line after the first `from` lines that contains `needle`.
    fn wait_log(&mut self, from: usize, needle: &str) -> String {
        let log = Arc::clone(&self.log);
        self.wait(&format!("{needle:?} in the daemon's log"), || {
            let log = log.lock().unwrap_or_else(|e| e.into_inner());
            log.iter().skip(from).find(|l| l.contains(needle)).cloned()
        })
    }

    /// Waits for the process to end; its exit status.
    fn wait_exit(&mut self) -> ExitStatus {
        let end = Instant::now() + DEADLINE;
        let status = loop {
            if let Some(s) = self.child.try_wait().expect("try_wait") {
                break s;
            }
            assert!(
                Instant::now() < end,
                "the daemon did not exit within {DEADLINE:?}; its log:\n{}",
                self.log_text()
            );
            thread::sleep(POLL);
        };
        self.status = Some(status);
        // stderr is closed with the process: the reader has seen every line.
        if let Some(r) = self.reader.take() {
            let _ = r.join();
        }
        status
    }

    /// SIGTERM, then the exit status.
    fn stop(&mut self) -> ExitStatus {
        self.signal("TERM");
        self.wait_exit()
    }
}

impl Drop for Daemon {
    fn drop(&mut self) {
        if self.status.is_none() {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
        if let Some(r) = self.reader.take() {
            let _ = r.join();
        }
        if thread::panicking() {
            eprintln!("--- daemon log ---\n{}\n---", self.log_text());
        }
    }
}

/// The service manager's end of `NOTIFY_SOCKET`.
///
/// A thread receives the datagrams as they come, as systemd does: the
/// daemon's sends block once the socket's queue is full (ten datagrams on
/// Linux, 2.5 s of watchdog pings), which would freeze its pipeline whenever
/// a test looks elsewhere for a while.
struct NotifySocket {
    path: PathBuf,
    received: Receiver<Message>,
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
}

/// One datagram, as received, with the time it was received.
struct Message {
    at: Instant,
    text: String,
}

impl Message {
    fn has(&self, assignment: &str) -> bool {
        self.text.lines().any(|l| l == assignment)
    }

    fn get(&self, var: &str) -> Option<&str> {
        self.text
            .lines()
            .find_map(|l| l.strip_prefix(var)?.strip_prefix('='))
    }
}

impl NotifySocket {
    fn bind(dir: &Path) -> NotifySocket {
        let path = dir.join("notify.sock");
        // The socket of an earlier daemon of the same test.
        let _ = fs::remove_file(&path);
        let sock = UnixDatagram::bind(&path).expect("bind the notify socket");
        sock.set_read_timeout(Some(Duration::from_millis(100)))
            .expect("read timeout");
        let (tx, received) = mpsc::channel();
        let stop = Arc::new(AtomicBool::new(false));
        let stopped = Arc::clone(&stop);
        let thread = thread::spawn(move || {
            let mut buf = vec![0; 64 * 1024];
            while !stopped.load(Ordering::Relaxed) {
                match sock.recv(&mut buf) {
                    Ok(n) => {
                        let m = Message {
                            at: Instant::now(),
                            text: String::from_utf8_lossy(&buf[..n]).into_owned(),
                        };
                        if tx.send(m).is_err() {
                            return;
                        }
                    }
                    Err(e)
                        if matches!(
                            e.kind(),
                            std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
                        ) => {}
                    Err(e) => panic!("notify socket: {e}"),
                }
            }
        });
        NotifySocket {
            path,
            received,
            stop,
            thread: Some(thread),
        }
    }

    /// The next datagram, if one arrives within 100 ms.
    fn recv(&self) -> Option<Message> {
        self.received.recv_timeout(Duration::from_millis(100)).ok()
    }

    /// Receives until a datagram satisfies `f`; returns it and everything
    /// received before it.
    fn wait_until(
        &self,
        daemon: &mut Daemon,
        what: &str,
        f: impl Fn(&Message) -> bool,
    ) -> (Message, Vec<Message>) {
        let mut before = Vec::new();
        let found = daemon.wait(what, || {
            while let Some(m) = self.recv() {
                if f(&m) {
                    return Some(m);
                }
                before.push(m);
            }
            None
        });
        (found, before)
    }

    fn wait_for(&self, daemon: &mut Daemon, assignment: &str) -> Message {
        self.wait_until(daemon, &format!("{assignment} on NOTIFY_SOCKET"), |m| {
            m.has(assignment)
        })
        .0
    }
}

impl Drop for NotifySocket {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

/// The daemon with `NOTIFY_SOCKET` set to the test's socket and a 1 s
/// watchdog; returns once READY=1 arrived.
fn spawn_notified(f: &Fixture) -> (Daemon, NotifySocket, Message) {
    let notify = NotifySocket::bind(f.dir.path());
    let mut daemon = f.spawn(|cmd| {
        cmd.env("NOTIFY_SOCKET", &notify.path)
            .env("WATCHDOG_USEC", WATCHDOG.as_micros().to_string());
    });
    let ready = notify.wait_for(&mut daemon, "READY=1");
    (daemon, notify, ready)
}

/// Pings received from now on, for `span`; panics if the daemon exits.
fn pings_during(daemon: &mut Daemon, notify: &NotifySocket, span: Duration) -> Vec<Instant> {
    let end = Instant::now() + span;
    let mut pings = Vec::new();
    while Instant::now() < end {
        if let Some(m) = notify.recv() {
            if m.has("WATCHDOG=1") {
                pings.push(m.at);
            }
        }
        if let Some(status) = daemon.child.try_wait().expect("try_wait") {
            daemon.status = Some(status);
            panic!("the daemon exited ({status}); log:\n{}", daemon.log_text());
        }
    }
    pings
}

#[test]
fn notify_ready_status_watchdog_and_stopping() {
    let f = Fixture::new("");
    let (mut daemon, notify, ready) = spawn_notified(&f);

    // READY=1 comes once the inputs are open, with a STATUS= that says so.
    let status = ready.get("STATUS").expect("STATUS= with READY=1");
    assert!(status.contains("1 inputs, 1 files"), "{status:?}");
    assert!(f.db().exists(), "READY=1 before the store was opened");

    // Idle and healthy: pings keep coming, at a quarter of the interval.
    // Asking for three in ten seconds leaves room for a loaded machine.
    let pings = pings_during(&mut daemon, &notify, Duration::from_secs(3));
    if pings.len() < 3 {
        let more = pings_during(&mut daemon, &notify, Duration::from_secs(7));
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
    let log = Arc::clone(&daemon.log);
    let mut last_ping = Instant::now();
    let silent_since = daemon.wait("the watchdog pings to stop", || {
        while let Some(m) = notify.recv() {
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
        while let Some(m) = notify.recv() {
            pings += usize::from(m.has("WATCHDOG=1"));
        }
        daemon_log_since(&log, 0)
            .contains("commit failed, retrying")
            .then_some(())
    });
    pings += pings_during(&mut daemon, &notify, Duration::from_secs(1)).len();
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
    notify.wait_for(&mut daemon, "WATCHDOG=1");
    let inc = f.wait_incident(&mut daemon, "ssh-bruteforce", "203.0.113.7", 5);
    assert_eq!(inc["category"], "bruteforce");
    assert_eq!(inc["input"], "auth");

    // SIGTERM: STOPPING=1, then exit 0.
    daemon.signal("TERM");
    notify.wait_for(&mut daemon, "STOPPING=1");
    let status = daemon.wait_exit();
    assert!(status.success(), "exit status {status}");
}

#[test]
fn sigterm_stores_every_line_written_before_it() {
    let f = Fixture::new("");
    let (mut daemon, _notify, _) = spawn_notified(&f);
    let lines = 40;
    f.append("auth.log", &attack("203.0.113.7", lines, 0));
    daemon.signal("TERM");
    let status = daemon.wait_exit();
    assert!(
        status.success(),
        "exit status {status}\n{}",
        daemon.log_text()
    );
    let stored = f.incidents_of("ssh-bruteforce", "203.0.113.7");
    assert_eq!(stored.len(), 1, "{stored:#?}\n{}", daemon.log_text());
    assert_eq!(stored[0]["events"], lines as u64, "{:#}", stored[0]);

    // A restart neither reads those lines again nor loses the open incident.
    let (mut daemon, _notify, _) = spawn_notified(&f);
    f.append("auth.log", &attack("203.0.113.7", 2, lines));
    f.wait_incident(
        &mut daemon,
        "ssh-bruteforce",
        "203.0.113.7",
        lines as u64 + 2,
    );
    assert!(daemon.stop().success());
    assert_eq!(f.incidents().len(), 1, "{:#?}", f.incidents());
}

/// The daemon stopped (SIGSTOP) while lines are written and SIGTERM is sent:
/// when it runs again, the stop request and the new lines arrive together.
/// The lines written before SIGTERM must still be stored.
#[test]
fn sigterm_racing_fresh_lines_still_stores_them() {
    let f = Fixture::new("");
    let (mut daemon, _notify, _) = spawn_notified(&f);
    daemon.signal("STOP");
    f.append("auth.log", &attack("198.51.100.9", 7, 0));
    daemon.signal("TERM");
    daemon.signal("CONT");
    let status = daemon.wait_exit();
    assert!(
        status.success(),
        "exit status {status}\n{}",
        daemon.log_text()
    );
    let stored = f.incidents_of("ssh-bruteforce", "198.51.100.9");
    assert_eq!(stored.len(), 1, "{stored:#?}\n{}", daemon.log_text());
    assert_eq!(stored[0]["events"], 7);
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
    let (mut daemon, notify, _) = spawn_notified(&f);
    f.append("auth.log", &canary("10.0.0.1"));
    f.wait_incident(&mut daemon, "local-canary-login", "10.0.0.1", 1);

    // (a) A broken rule file, then SIGHUP: refused with file:line:col, the
    // running rules stay, the daemon runs on.
    f.write("rules.d/honeyfile.yaml", BROKEN_RULE);
    let from = daemon.log_len();
    daemon.signal("HUP");
    let (reloading, _) = notify.wait_until(&mut daemon, "RELOADING=1", |m| m.has("RELOADING=1"));
    let usec = reloading
        .get("MONOTONIC_USEC")
        .expect("MONOTONIC_USEC= with RELOADING=1 (Type=notify-reload waits for it)");
    assert!(usec.parse::<u64>().is_ok_and(|u| u > 0), "{usec:?}");
    notify.wait_for(&mut daemon, "READY=1");
    daemon.wait_log(from, "reload refused");
    let position = Regex::new(r"rules\.d/honeyfile\.yaml:9:\d+: ").expect("regex");
    let log = Arc::clone(&daemon.log);
    daemon.wait("the broken rule's file:line:col in the log", || {
        position
            .is_match(&daemon_log_since(&log, from))
            .then_some(())
    });

    // `canhgac check` says the same, and fails.
    let check = f.check();
    let stderr = String::from_utf8_lossy(&check.stderr);
    assert!(!check.status.success(), "check passed a broken rule");
    assert!(position.is_match(&stderr), "{stderr}");

    f.append("auth.log", &canary("10.0.0.2"));
    f.wait_incident(&mut daemon, "local-canary-login", "10.0.0.2", 1);

    // (b) The rule fixed: the next SIGHUP takes it.
    f.write(
        "rules.d/honeyfile.yaml",
        &BROKEN_RULE.replace(r"(?P<path>\S+ from", r"(?P<path>\S+) from"),
    );
    assert!(f.check().status.success(), "check of the fixed rule");
    let from = daemon.log_len();
    daemon.signal("HUP");
    notify.wait_for(&mut daemon, "RELOADING=1");
    notify.wait_for(&mut daemon, "READY=1");
    daemon.wait_log(from, "reloaded");
    f.append(
        "auth.log",
        "Oct 31 23:41:00 host auditd[9]: honeyfile-read /srv/salary.xlsx from 10.0.0.3\n",
    );
    let inc = f.wait_incident(&mut daemon, "local-honeyfile", "10.0.0.3", 1);
    assert_eq!(inc["category"], "malware");
    assert_eq!(inc["fields"]["path"], "/srv/salary.xlsx");
    // The old rule still works beside it, and the builtin ones too.
    f.append("auth.log", &canary("10.0.0.4"));
    f.append("auth.log", &attack("203.0.113.8", 5, 0));
    f.wait_incident(&mut daemon, "local-canary-login", "10.0.0.4", 1);
    f.wait_incident(&mut daemon, "ssh-bruteforce", "203.0.113.8", 5);
    assert!(daemon.stop().success());
}

fn daemon_log_since(log: &Mutex<Vec<String>>, from: usize) -> String {
    let log = log.lock().unwrap_or_else(|e| e.into_inner());
    log.iter()
        .skip(from)
        .cloned()
        .collect::<Vec<_>>()
        .join("\n")
}

#[test]
fn under_journald_lines_carry_priorities_and_no_time() {
    let f = Fixture::new("");
    let mut daemon = f.spawn(|cmd| {
        cmd.env("JOURNAL_STREAM", "8:1234");
    });
    daemon.wait_log(0, "ready");
    // A warning: a setting that needs a restart, changed by a reload.
    let from = daemon.log_len();
    f.write_config_text(
        &fs::read_to_string(f.config())
            .expect("config")
            .replace("test-agency", "other-agency"),
    );
    daemon.signal("HUP");
    daemon.wait_log(from, "reloaded");
    // An error: a reload of a config that does not parse.
    let from = daemon.log_len();
    f.write_config_text("agency = \"test-agency\"\n[[input]\n");
    daemon.signal("HUP");
    daemon.wait_log(from, "reload refused");
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
    let mut daemon = f.spawn(|cmd| {
        cmd.args(["--log-format", "json"]);
    });
    daemon.wait_log(0, "ready");
    let from = daemon.log_len();
    f.write_config_text("agency = \"test-agency\"\n[[input]\n");
    daemon.signal("HUP");
    daemon.wait_log(from, "reload refused");
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
    let mut daemon = f.spawn(|_| {});
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
    f.write_config_text(
        &fs::read_to_string(f.config())
            .expect("config")
            .replace("state_dir = \"state\"", "state_dir = \"not-a-dir/state\""),
    );
    let mut daemon = f.spawn(|_| {});
    let status = daemon.wait_exit();
    assert!(!status.success(), "started without a state directory");
    let log = daemon.log_text();
    assert!(log.contains("cannot open the store"), "{log}");
    assert!(log.contains("not-a-dir/state"), "{log}");
    assert!(log.contains("Not a directory"), "{log}");
}

#[test]
fn an_unreadable_input_is_reported_and_read_once_readable() {
    let f = Fixture::new("");
    let log_path = f.path("auth.log");
    fs::set_permissions(&log_path, fs::Permissions::from_mode(0o000)).expect("chmod");
    if fs::File::open(&log_path).is_ok() {
        eprintln!(
            "note: skipping the unreadable-input test: this user (root?) reads files whatever their mode"
        );
        return;
    }
    let (mut daemon, _notify, _) = spawn_notified(&f);
    daemon.wait_log(0, "Permission denied");
    let line = daemon
        .log()
        .into_iter()
        .find(|l| l.contains("Permission denied"))
        .expect("logged");
    assert!(line.contains("auth.log"), "{line}");
    assert!(line.contains("WARN"), "{line}");

    f.append_unreadable(&attack("203.0.113.7", 5, 0));
    fs::set_permissions(&log_path, fs::Permissions::from_mode(0o644)).expect("chmod");
    f.wait_incident(&mut daemon, "ssh-bruteforce", "203.0.113.7", 5);
    assert!(daemon.stop().success());
}

#[test]
fn lines_of_another_type_are_said_once_and_counted() {
    let f = Fixture::new("");
    let (mut daemon, _notify, _) = spawn_notified(&f);
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
    let counted = daemon.wait("the unrecognised lines on /metrics", || {
        let body = ureq::get(&format!("{base}/metrics"))
            .call()
            .ok()?
            .body_mut()
            .read_to_string()
            .ok()?;
        body.lines()
            .find(|l| l.starts_with("canhgac_input_lines_unrecognised_total{input=\"auth\"}"))
            .and_then(|l| l.rsplit(' ').next()?.parse::<u64>().ok())
            .filter(|&n| n == 3)
    });
    assert_eq!(counted, 3);
    // Said once: more such lines are counted, not logged again.
    f.append("auth.log", access);
    daemon.wait("the fourth line counted", || {
        let body = ureq::get(&format!("{base}/metrics"))
            .call()
            .ok()?
            .body_mut()
            .read_to_string()
            .ok()?;
        body.contains("canhgac_input_lines_unrecognised_total{input=\"auth\"} 4")
            .then_some(())
    });
    let said = daemon
        .log()
        .iter()
        .filter(|l| l.contains("is not a syslog line"))
        .count();
    assert_eq!(said, 1, "{}", daemon.log_text());
}
