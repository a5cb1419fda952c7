//! `canhgac run` as systemd meets it: started with `NOTIFY_SOCKET` pointing
//! at a socket the test holds, ready when `READY=1` arrives, stopped with a
//! signal sent by kill(1) or killed with SIGKILL.

use std::ffi::OsStr;
use std::fs::{self, OpenOptions};
use std::io::{BufRead, BufReader, Write};
use std::os::unix::fs::MetadataExt;
use std::os::unix::net::UnixDatagram;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::mpsc::{self, Receiver};
use std::sync::{Arc, Mutex};
use std::thread::{self, JoinHandle};
use std::time::{Duration, Instant};

use super::http::{self, Reply};
use super::metrics;
use super::wait::{self, DEADLINE, POLL};

/// How a daemon is started; [`Launch::ready`] starts it.
pub struct Launch {
    cmd: Command,
    dir: PathBuf,
    log_file: Option<PathBuf>,
    http: Option<String>,
    notify: bool,
    watchdog: Option<Duration>,
    /// The account the daemon runs as, when not the test's own.
    user: Option<u32>,
}

/// The account an unprivileged daemon runs as.
const NOBODY: u32 = 65534;

impl Launch {
    /// `canhgac run --config FILE`, its notify socket beside the config.
    pub fn new(config: &Path) -> Launch {
        let mut cmd = super::cli::command();
        cmd.arg("run")
            .arg("--config")
            .arg(config)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped());
        Launch {
            cmd,
            dir: config.parent().expect("the config's directory").to_owned(),
            log_file: None,
            http: None,
            notify: true,
            watchdog: None,
            user: None,
        }
    }

    /// As the packaged service runs: not as root. When the tests run as
    /// root, the daemon runs as `nobody` and the site's directory is handed
    /// to that account, so that file modes mean what they say; for any
    /// other user this changes nothing.
    pub fn unprivileged(mut self) -> Launch {
        if running_as_root() {
            self.user = Some(NOBODY);
            self.cmd.uid(NOBODY).gid(NOBODY);
        }
        self
    }

    pub fn env(mut self, key: &str, value: impl AsRef<OsStr>) -> Launch {
        self.cmd.env(key, value);
        self
    }

    pub fn args<I, S>(mut self, args: I) -> Launch
    where
        I: IntoIterator<Item = S>,
        S: AsRef<OsStr>,
    {
        self.cmd.args(args);
        self
    }

    /// Each line the daemon logs is also appended to `path`, which so keeps
    /// the logs of every run.
    pub fn log_file(mut self, path: PathBuf) -> Launch {
        self.log_file = Some(path);
        self
    }

    /// Where the daemon serves HTTP, e.g. `http://127.0.0.1:9717`.
    pub fn http(mut self, base: String) -> Launch {
        self.http = Some(base);
        self
    }

    /// `WATCHDOG_USEC`: the daemon pings at a quarter of `interval`.
    pub fn watchdog(mut self, interval: Duration) -> Launch {
        self.watchdog = Some(interval);
        self
    }

    /// Without `NOTIFY_SOCKET`, as when started by hand.
    pub fn without_notify(mut self) -> Launch {
        self.notify = false;
        self
    }

    /// Starts the process and returns at once.
    pub fn spawn(mut self) -> Daemon {
        if let Some(user) = self.user {
            hand_over(&self.dir, user);
        }
        let notify = self.notify.then(|| NotifySocket::bind(&self.dir));
        if let Some(n) = &notify {
            self.cmd.env("NOTIFY_SOCKET", &n.path);
            if let Some(user) = self.user {
                std::os::unix::fs::chown(&n.path, Some(user), Some(user)).expect("chown");
            }
        }
        if let Some(w) = self.watchdog {
            self.cmd.env("WATCHDOG_USEC", w.as_micros().to_string());
        }
        let mut child = self.cmd.spawn().expect("start canhgac run");
        let stderr = child.stderr.take().expect("piped stderr");
        let log = Arc::new(Mutex::new(Vec::new()));
        let sink = Arc::clone(&log);
        let mut file = self.log_file.map(|p| {
            OpenOptions::new()
                .create(true)
                .append(true)
                .open(p)
                .expect("daemon log file")
        });
        let reader = thread::spawn(move || {
            let mut r = BufReader::new(stderr);
            let mut buf = Vec::new();
            while r.read_until(b'\n', &mut buf).is_ok_and(|n| n > 0) {
                if let Some(f) = &mut file {
                    let _ = f.write_all(&buf);
                }
                let line = String::from_utf8_lossy(&buf);
                let line = line.strip_suffix('\n').unwrap_or(&line).to_owned();
                sink.lock().unwrap_or_else(|e| e.into_inner()).push(line);
                buf.clear();
            }
        });
        Daemon {
            child: Mutex::new(child),
            status: Mutex::new(None),
            log,
            reader: Mutex::new(Some(reader)),
            notify,
            http: self.http,
            agent: http::agent(None),
        }
    }

    /// Starts the process and waits for `READY=1`.
    pub fn ready(self) -> Daemon {
        let d = self.spawn();
        d.wait_notify("READY=1");
        d
    }

    /// [`Launch::ready`], or `None` if the daemon exited at start saying
    /// `taken` (its port was taken between our probe and its bind).
    pub fn ready_unless(self, taken: &str) -> Option<Daemon> {
        let d = self.spawn();
        let ready = wait::wait_for(
            "READY=1 on NOTIFY_SOCKET",
            || {
                if d.notify().recv().is_some_and(|m| m.has("READY=1")) {
                    return Some(true);
                }
                let status = d.exited()?;
                d.join_reader();
                let log = d.log_text();
                assert!(
                    log.contains(taken),
                    "daemon exited ({status}) at start:\n{log}"
                );
                Some(false)
            },
            || d.log_text(),
        );
        ready.then_some(d)
    }
}

/// The running daemon. Dropping it kills the process if it still runs, so
/// a failed assertion never leaves a daemon behind; a failing test also
/// prints what the daemon logged. Its methods take `&self`, so that a wait
/// can look at the daemon itself.
pub struct Daemon {
    child: Mutex<Child>,
    status: Mutex<Option<ExitStatus>>,
    log: Arc<Mutex<Vec<String>>>,
    reader: Mutex<Option<JoinHandle<()>>>,
    notify: Option<NotifySocket>,
    http: Option<String>,
    agent: ureq::Agent,
}

fn locked<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

impl Daemon {
    pub fn pid(&self) -> u32 {
        locked(&self.child).id()
    }

    /// Sends a signal with kill(1), as `systemctl kill` or ExecReload would.
    pub fn signal(&self, sig: &str) {
        let status = Command::new("kill")
            .arg(format!("-{sig}"))
            .arg(self.pid().to_string())
            .status()
            .expect("run kill");
        assert!(status.success(), "kill -{sig} {} failed", self.pid());
    }

    /// SIGKILL, as a crash or the OOM killer; returns once it is reaped.
    pub fn kill9(&self) {
        if self.exited().is_none() {
            let mut child = locked(&self.child);
            child.kill().expect("SIGKILL");
            *locked(&self.status) = Some(child.wait().expect("reaped"));
        }
        self.join_reader();
    }

    /// SIGTERM, then the exit status.
    pub fn stop(&self) -> ExitStatus {
        self.signal("TERM");
        self.wait_exit()
    }

    /// Waits for the process to end; its exit status.
    pub fn wait_exit(&self) -> ExitStatus {
        let end = Instant::now() + DEADLINE;
        let status = loop {
            if let Some(s) = self.exited() {
                break s;
            }
            assert!(
                Instant::now() < end,
                "the daemon did not exit within {DEADLINE:?}; its log:\n{}",
                self.log_text()
            );
            thread::sleep(POLL / 2);
        };
        self.join_reader();
        status
    }

    /// The exit status if the process has ended.
    pub fn exited(&self) -> Option<ExitStatus> {
        let mut status = locked(&self.status);
        if status.is_none() {
            *status = locked(&self.child).try_wait().expect("try_wait");
        }
        *status
    }

    fn join_reader(&self) {
        // stderr is closed with the process: the reader has seen every line.
        if let Some(r) = locked(&self.reader).take() {
            let _ = r.join();
        }
    }

    /// What this run logged so far, a line each.
    pub fn log(&self) -> Vec<String> {
        locked(&self.log).clone()
    }

    pub fn log_text(&self) -> String {
        self.log().join("\n")
    }

    /// The log from line `from` on.
    pub fn log_since(&self, from: usize) -> String {
        let log = locked(&self.log);
        log.iter()
            .skip(from)
            .cloned()
            .collect::<Vec<_>>()
            .join("\n")
    }

    /// Lines logged so far; for `wait_log` to look only at what comes next.
    pub fn log_len(&self) -> usize {
        locked(&self.log).len()
    }

    /// Polls `f` until it returns something; panics (with the daemon's log)
    /// at the deadline or if the daemon exits meanwhile.
    pub fn wait<T>(&self, what: &str, f: impl FnMut() -> Option<T>) -> T {
        self.wait_within(DEADLINE, what, f)
    }

    pub fn wait_within<T>(
        &self,
        limit: Duration,
        what: &str,
        mut f: impl FnMut() -> Option<T>,
    ) -> T {
        let end = Instant::now() + limit;
        loop {
            if let Some(v) = f() {
                return v;
            }
            if let Some(status) = self.exited() {
                panic!(
                    "the daemon exited ({status}) while waiting for {what}; its log:\n{}",
                    self.log_text()
                );
            }
            assert!(
                Instant::now() < end,
                "timed out after {limit:?} waiting for {what}; daemon log:\n{}",
                self.log_text()
            );
            thread::sleep(POLL / 2);
        }
    }

    /// Waits until `done` holds.
    pub fn until(&self, what: &str, mut done: impl FnMut() -> bool) {
        self.wait(what, || done().then_some(()))
    }

    /// Waits for a log line after the first `from` lines that contains
    /// `needle`; returns its index and the line.
    pub fn wait_log_at(&self, from: usize, needle: &str) -> (usize, String) {
        self.wait(&format!("{needle:?} in the daemon's log"), || {
            let log = locked(&self.log);
            log.iter()
                .enumerate()
                .skip(from)
                .find(|(_, l)| l.contains(needle))
                .map(|(i, l)| (i, l.clone()))
        })
    }

    /// [`Daemon::wait_log_at`], the line only.
    pub fn wait_log(&self, from: usize, needle: &str) -> String {
        self.wait_log_at(from, needle).1
    }

    /// The service manager's end of `NOTIFY_SOCKET`.
    pub fn notify(&self) -> &NotifySocket {
        self.notify.as_ref().expect("started with NOTIFY_SOCKET")
    }

    /// Receives until a datagram satisfies `f`; returns it and everything
    /// received before it.
    pub fn wait_notify_until(
        &self,
        what: &str,
        f: impl Fn(&Message) -> bool,
    ) -> (Message, Vec<Message>) {
        let mut before = Vec::new();
        let found = self.wait(what, || {
            while let Some(m) = self.notify().recv() {
                if f(&m) {
                    return Some(m);
                }
                before.push(m);
            }
            None
        });
        (found, before)
    }

    /// Waits for a datagram with the line `assignment` (`READY=1`).
    pub fn wait_notify(&self, assignment: &str) -> Message {
        self.wait_notify_until(&format!("{assignment} on NOTIFY_SOCKET"), |m| {
            m.has(assignment)
        })
        .0
    }

    /// `WATCHDOG=1` pings received from now on, for `span`; panics if the
    /// daemon exits.
    pub fn pings_during(&self, span: Duration) -> Vec<Instant> {
        let end = Instant::now() + span;
        let mut pings = Vec::new();
        while Instant::now() < end {
            if let Some(m) = self.notify().recv() {
                if m.has("WATCHDOG=1") {
                    pings.push(m.at);
                }
            }
            if let Some(status) = self.exited() {
                panic!("the daemon exited ({status}); log:\n{}", self.log_text());
            }
        }
        pings
    }

    /// Where the daemon serves HTTP.
    pub fn base(&self) -> &str {
        self.http.as_deref().expect("the daemon's HTTP address")
    }

    pub fn agent(&self) -> &ureq::Agent {
        &self.agent
    }

    /// GET `path` with `authorization`, if given.
    pub fn get_with(&self, path: &str, authorization: Option<&str>) -> Result<Reply, ureq::Error> {
        http::get(
            &self.agent,
            &format!("{}{path}", self.base()),
            authorization,
        )
    }

    /// POST a JSON `body` to `path` with an `Authorization` header.
    pub fn post_with(
        &self,
        path: &str,
        authorization: Option<&str>,
        body: &str,
    ) -> Result<Reply, ureq::Error> {
        http::post(
            &self.agent,
            &format!("{}{path}", self.base()),
            authorization,
            body,
        )
    }

    /// GET `path` without credentials; `None` while nothing answers.
    pub fn get(&self, path: &str) -> Option<Reply> {
        self.get_with(path, None).ok()
    }

    /// The `/metrics` page, or `None` while it cannot be fetched.
    pub fn metrics(&self) -> Option<String> {
        self.get("/metrics")
            .filter(|r| r.status == 200)
            .map(|r| r.body)
    }

    /// The value of one series (`name{labels}`) on `/metrics`; `None` while
    /// the page cannot be fetched, 0 if the series is absent.
    pub fn try_metric(&self, series: &str) -> Option<f64> {
        self.metrics()
            .map(|page| metrics::value(&page, series).unwrap_or(0.0))
    }

    /// [`Daemon::try_metric`], 0 while the page cannot be fetched.
    pub fn metric(&self, series: &str) -> f64 {
        self.try_metric(series).unwrap_or(0.0)
    }

    /// [`Daemon::metric`] of a count.
    pub fn count(&self, series: &str) -> u64 {
        self.metric(series) as u64
    }

    /// Waits until `series` is at least `at_least`.
    pub fn wait_metric(&self, series: &str, at_least: f64) {
        self.until(&format!("{series} >= {at_least}"), || {
            self.metric(series) >= at_least
        });
    }
}

impl Drop for Daemon {
    fn drop(&mut self) {
        if self.exited().is_none() {
            let mut child = locked(&self.child);
            let _ = child.kill();
            let _ = child.wait();
        }
        self.join_reader();
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
pub struct NotifySocket {
    path: PathBuf,
    received: Receiver<Message>,
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
}

/// One datagram, as received, with the time it was received.
pub struct Message {
    pub at: Instant,
    pub text: String,
}

impl Message {
    pub fn has(&self, assignment: &str) -> bool {
        self.text.lines().any(|l| l == assignment)
    }

    pub fn get(&self, var: &str) -> Option<&str> {
        self.text
            .lines()
            .find_map(|l| l.strip_prefix(var)?.strip_prefix('='))
    }
}

impl NotifySocket {
    fn bind(dir: &Path) -> NotifySocket {
        // One socket per daemon, even for daemons of one test side by side.
        static NEXT: AtomicUsize = AtomicUsize::new(0);
        let path = dir.join(format!(
            "notify-{}.sock",
            NEXT.fetch_add(1, Ordering::Relaxed)
        ));
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
    pub fn recv(&self) -> Option<Message> {
        self.received.recv_timeout(Duration::from_millis(100)).ok()
    }
}

impl Drop for NotifySocket {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
        let _ = fs::remove_file(&self.path);
    }
}

/// Whether the tests run as root (`/proc/self` belongs to the effective uid).
pub fn running_as_root() -> bool {
    fs::metadata("/proc/self").is_ok_and(|m| m.uid() == 0)
}

/// Gives `dir` and everything in it to `user`.
fn hand_over(dir: &Path, user: u32) {
    std::os::unix::fs::lchown(dir, Some(user), Some(user)).expect("chown");
    for entry in fs::read_dir(dir).expect("list the site").flatten() {
        let path = entry.path();
        if entry.file_type().is_ok_and(|t| t.is_dir()) {
            hand_over(&path, user);
        } else {
            std::os::unix::fs::lchown(&path, Some(user), Some(user)).expect("chown");
        }
    }
}
