//! `/metrics` as the national monitoring center sees it: scraped by a real
//! Prometheus server and queried through its HTTP API, linted by
//! `promtool check metrics`, and kept to a bounded number of series however
//! many attackers write to the logs. Also `/healthz` and `/readyz`.
//!
//! Each test runs the built daemon on its own free loopback port, with its
//! state and logs in a temporary directory, and kills it (and Prometheus)
//! when it ends, even half-way. Waits are polls with generous deadlines; no
//! assertion depends on how fast the machine is. The tests that need
//! Prometheus's tools skip with a note when they are not installed (CI
//! installs Debian's `prometheus` package, see `.ci/run`).

mod common;

use std::collections::{BTreeSet, HashSet};
use std::fs::{self, OpenOptions};
use std::io::{BufWriter, Write};
use std::path::PathBuf;
use std::process::Command;
use std::time::{Duration, Instant};

use jiff::tz::TimeZone;
use jiff::{Timestamp, ToSpan, Zoned};
use serde_json::Value;

use common::config::Config;
use common::daemon::Launch;
use common::http::urlencode;
use common::metrics::{samples, sum, Sample};
use common::servers::{installed, Prometheus};
use common::site::Site;
use common::wait::{poll, wait_for, DEADLINE};

/// What the repository ships for the monitoring center, under `contrib/`.
const ALERTS: &str = "prometheus/alerts.yml";
const ALERTS_TEST: &str = "prometheus/alerts_test.yml";
const NATIONAL: &str = "prometheus/national.yml";
const NATIONAL_TEST: &str = "prometheus/national_test.yml";
const CENTER: &str = "prometheus/center.yml";
const CENTER_TEST: &str = "prometheus/center_test.yml";
const DASHBOARD: &str = "grafana/canhgac.json";

fn contrib(file: &str) -> PathBuf {
    common::manifest("contrib").join(file)
}

/// The same for reading and recording the 200,000-line flood (about 5 s of
/// CPU; 20 s here while two compilers share the two cores).
const FLOOD_DEADLINE: Duration = Duration::from_secs(180);

// ---------------------------------------------------------------------------
// The daemon

struct Input {
    name: &'static str,
    kind: &'static str,
    file: &'static str,
}

const AUTH: Input = Input {
    name: "auth",
    kind: "syslog",
    file: "auth.log",
};
const WEB: Input = Input {
    name: "web",
    kind: "nginx",
    file: "access.log",
};

/// The daemon on a free port, its state and logs in `site`.
struct Daemon {
    d: common::daemon::Daemon,
    site: Site,
    port: u16,
}

impl Daemon {
    /// Starts `canhgac run` on a free port with `inputs` (empty files in a
    /// fresh directory, read from the beginning) and waits until it is
    /// ready.
    fn start(inputs: &[Input]) -> Daemon {
        Daemon::start_with(inputs, &[], "")
    }

    /// [`Daemon::start`] with `files` (relative path, content) written into
    /// its directory first and `extra` appended to its config.
    fn start_with(inputs: &[Input], files: &[(&str, &str)], extra: &str) -> Daemon {
        let site = Site::new();
        for (path, content) in files {
            site.write(path, content);
        }
        let mut config = Config::new("test").body(extra);
        for i in inputs {
            site.write(i.file, "");
            config = config.input(i.name, i.file, i.kind);
        }
        let (d, port) = common::on_free_port("daemon", |port| {
            site.write_config(&config.render(port));
            Launch::new(&site.config())
                .log_file(site.path("daemon.log"))
                .http(format!("http://127.0.0.1:{port}"))
                .env("CANHGAC_LOG", "warn")
                .ready_unless("cannot listen")
                .map(|d| (d, port))
        });
        Daemon { d, site, port }
    }

    fn path(&self, input: &Input) -> PathBuf {
        self.site.path(input.file)
    }

    fn append(&self, input: &Input, lines: &[String]) {
        let file = OpenOptions::new()
            .append(true)
            .open(self.path(input))
            .expect("input opens");
        let mut w = BufWriter::with_capacity(1 << 20, file);
        for l in lines {
            w.write_all(l.as_bytes()).expect("line written");
            w.write_all(b"\n").expect("line written");
        }
        w.flush().expect("input flushed");
    }

    /// Appends `ssh` to the auth log and `web` to the access log, the
    /// first lines of both, and waits until the daemon has read them and
    /// `/metrics` counts `bruteforce` and `web_attacks` incidents; that page.
    fn record(
        &self,
        what: &str,
        ssh: &[String],
        web: &[String],
        bruteforce: f64,
        web_attacks: f64,
    ) -> String {
        self.append(&AUTH, ssh);
        self.append(&WEB, web);
        self.wait_read(what, &[(&AUTH, ssh.len()), (&WEB, web.len())], |page| {
            incidents(page, "bruteforce") == bruteforce
                && incidents(page, "web-attack") == web_attacks
        })
    }

    /// What to print when a wait fails.
    fn context(&self) -> String {
        format!(
            "daemon log:\n{}\n/metrics:\n{}",
            self.d.log_text(),
            self.d.metrics().unwrap_or_else(|| "(unavailable)".into())
        )
    }

    /// Waits until the daemon has read `lines` lines of each input, nothing
    /// is left behind in the files, and `done` holds on the page; returns
    /// that page.
    fn wait_read(
        &self,
        what: &str,
        lines: &[(&Input, usize)],
        done: impl Fn(&str) -> bool,
    ) -> String {
        self.wait_read_within(DEADLINE, what, lines, done)
    }

    fn wait_read_within(
        &self,
        limit: Duration,
        what: &str,
        lines: &[(&Input, usize)],
        done: impl Fn(&str) -> bool,
    ) -> String {
        poll(
            limit,
            what,
            || {
                let page = self.d.metrics()?;
                lines
                    .iter()
                    .all(|(input, n)| {
                        let want = [("input", input.name)];
                        sum(&page, "canhgac_input_lines_total", &want) == *n as f64
                            && sum(&page, "canhgac_input_behind_bytes", &want) == 0.0
                    })
                    .then_some(())?;
                done(&page).then_some(page)
            },
            || self.context(),
        )
    }
}

// ---------------------------------------------------------------------------
// Log lines, stamped now

fn now_utc() -> Zoned {
    Timestamp::now().to_zoned(TimeZone::UTC)
}

/// Classic syslog, as sshd writes to auth.log: `Nov 23 12:00:00 host sshd[123]: ...`.
fn syslog(at: &Zoned, pid: u32, message: &str) -> String {
    format!(
        "{} gov-web01 sshd[{pid}]: {message}",
        at.strftime("%b %e %H:%M:%S")
    )
}

/// nginx's combined format.
fn nginx(at: &Zoned, ip: &str, url: &str, agent: &str) -> String {
    format!(
        "{ip} - - [{}] \"GET {url} HTTP/1.1\" 200 512 \"-\" \"{agent}\"",
        at.strftime("%d/%b/%Y:%H:%M:%S %z")
    )
}

/// `per` failed root passwords from each of `ips`, interleaved as bots do.
fn ssh_bruteforce(at: &Zoned, ips: &[&str], per: usize) -> Vec<String> {
    let mut lines = Vec::new();
    for round in 0..per {
        for (k, ip) in ips.iter().enumerate() {
            let port = 40000 + round * 10 + k;
            lines.push(syslog(
                at,
                1000 + (round * ips.len() + k) as u32,
                &format!("Failed password for root from {ip} port {port} ssh2"),
            ));
        }
    }
    lines
}

/// A quote-tautology SQL injection: the `web-sql-injection` rule, which
/// opens an incident at its first event.
fn sql_injection(at: &Zoned, ip: &str, tag: &str) -> String {
    nginx(
        at,
        ip,
        &format!("/news.php?id=1%27%20OR%20%271%27%3D%271&ref={tag}"),
        &format!("Mozilla/5.0 (X11; Linux x86_64) {tag}"),
    )
}

/// `canhgac_incidents_total` of one category, all severities.
fn incidents(page: &str, category: &str) -> f64 {
    sum(page, "canhgac_incidents_total", &[("category", category)])
}

// ---------------------------------------------------------------------------
// The tests

/// The national center's view: Prometheus scrapes the daemon, and its query
/// API returns the incidents the daemon recorded, including the
/// calendar-month figure.
#[test]
fn prometheus_scrapes_incident_counts() {
    if !installed("prometheus") {
        println!("SKIPPED: `prometheus` is not installed (apt-get install prometheus)");
        return;
    }
    let daemon = Daemon::start(&[AUTH]);
    let prom = Prometheus::start(daemon.site.dir(), daemon.port, &[&contrib(ALERTS)]);
    let context = || format!("{}\nprometheus log:\n{}", daemon.context(), prom.log_text());
    // The target is up and its (still zero) incident counters are stored.
    wait_for(
        "Prometheus to scrape the daemon",
        || {
            (prom.value("up{job=\"canhgac\"}")? == 1.0
                && prom.value("sum(canhgac_incidents_total{category=\"bruteforce\"})")? == 0.0)
                .then_some(())
        },
        context,
    );

    // Three addresses, six failed root passwords each: three brute forces.
    let at = now_utc();
    let ips = ["203.0.113.7", "203.0.113.8", "203.0.113.9"];
    daemon.append(&AUTH, &ssh_bruteforce(&at, &ips, 6));

    let (total, month) = wait_for(
        "Prometheus to report 3 brute-force incidents",
        || {
            let total = prom.value("sum(canhgac_incidents_total{category=\"bruteforce\"})")?;
            // The lines are "this month" unless the month turned since.
            let period = if now_utc().month() == at.month() {
                "this_month"
            } else {
                "last_month"
            };
            let month = prom.value(&format!(
                "canhgac_incidents_period{{category=\"bruteforce\",period=\"{period}\"}}"
            ))?;
            (total == 3.0 && month == 3.0).then_some((total, month))
        },
        context,
    );
    assert_eq!((total, month), (3.0, 3.0));

    // The labels Prometheus stored are the daemon's bounded ones plus the
    // scrape's own (job, instance), never an address from the logs.
    let series = prom
        .query("{job=\"canhgac\"}")
        .expect("query of every series");
    assert!(!series.is_empty());
    for (labels, _) in &series {
        let text = labels.to_string();
        for ip in ips {
            assert!(!text.contains(ip), "address {ip} in labels {text}");
        }
    }
    println!(
        "Prometheus on port {} stored {} series of the daemon on port {}",
        prom.port,
        series.len(),
        daemon.port
    );
}

/// Two brute forces now, and web attacks a year ago, a month ago and now (in
/// time order), so that every family carries data, the month-over-month and
/// year-over-year changes included. Returns the page once all are recorded.
fn record_attacks(daemon: &Daemon) -> String {
    let at = now_utc();
    let ssh = ssh_bruteforce(&at, &["198.51.100.20", "198.51.100.21"], 6);
    let year_ago = at.checked_sub(1.year()).expect("a year ago");
    let month_ago = at.checked_sub(1.month()).expect("a month ago");
    let mut web = vec![
        sql_injection(&year_ago, "192.0.2.1", "probe"),
        sql_injection(&month_ago, "192.0.2.2", "probe"),
    ];
    web.extend((3..=5).map(|i| sql_injection(&at, &format!("192.0.2.{i}"), "probe")));
    let page = daemon.record("incidents recorded", &ssh, &web, 2.0, 5.0);
    let changes = samples(&page)
        .iter()
        .filter(|s| s.name == "canhgac_incidents_change_ratio")
        .count();
    assert!(changes >= 2, "change ratios missing from the page:\n{page}");
    page
}

/// Every name a `/metrics` page serves, as PromQL sees them (a histogram
/// `h` is queried as `h_bucket`, `h_sum` and `h_count`).
fn served_names(page: &str) -> BTreeSet<String> {
    let mut names = BTreeSet::new();
    for line in page.lines() {
        let Some(rest) = line.strip_prefix("# TYPE ") else {
            continue;
        };
        let mut words = rest.split_whitespace();
        let (Some(name), Some(kind)) = (words.next(), words.next()) else {
            panic!("unreadable TYPE line {line:?}");
        };
        let suffixes: &[&str] = match kind {
            "histogram" => &["_bucket", "_sum", "_count"],
            "summary" => &["", "_sum", "_count"],
            _ => &[""],
        };
        names.extend(suffixes.iter().map(|s| format!("{name}{s}")));
    }
    names
}

/// The `canhgac_...` metric names a query or rule file mentions, leaving
/// out recording rules' names (`national:canhgac_...:sum`), which
/// Prometheus makes, not the daemon.
fn canhgac_names(text: &str) -> BTreeSet<&str> {
    let mut names = BTreeSet::new();
    let mut rest = text;
    while let Some(at) = rest.find("canhgac_") {
        let recorded = rest[..at].ends_with(':');
        let tail = &rest[at..];
        let len = tail
            .find(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
            .unwrap_or(tail.len());
        if !recorded {
            names.insert(&tail[..len]);
        }
        rest = &tail[len..];
    }
    names
}

/// Every query of a Grafana dashboard: panel targets' `expr` and template
/// variables' `definition`.
fn dashboard_queries(v: &Value, out: &mut Vec<String>) {
    match v {
        Value::Object(map) => {
            for (k, v) in map {
                match (k.as_str(), v) {
                    ("expr" | "definition", Value::String(q)) => out.push(q.clone()),
                    _ => dashboard_queries(v, out),
                }
            }
        }
        Value::Array(items) => items.iter().for_each(|v| dashboard_queries(v, out)),
        _ => {}
    }
}

/// A dashboard query as Grafana sends it with every agency and category
/// selected, over a one-hour range.
fn as_grafana_sends(query: &str) -> String {
    query
        .replace("$job", "canhgac")
        .replace("$instance", ".*")
        .replace("$category", ".*")
        .replace("$__rate_interval", "1m")
        .replace("$__range", "1h")
}

/// `promtool check metrics` on a live page with incidents recorded: no
/// errors, no lint warnings.
#[test]
fn promtool_check_metrics_passes() {
    if !installed("promtool") {
        println!("SKIPPED: `promtool` is not installed (apt-get install prometheus)");
        return;
    }
    let daemon = Daemon::start(&[AUTH, WEB]);
    let page = record_attacks(&daemon);

    let out = common::fed(
        Command::new("promtool").args(["check", "metrics"]),
        page.as_bytes(),
    );
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    println!(
        "promtool check metrics: {} on {} lines; stdout {:?}, stderr {:?}",
        out.status,
        page.lines().count(),
        stdout,
        stderr
    );
    // Lint problems come out as text (with exit code 3 in current versions,
    // 0 in some older ones): any output at all is a failure.
    assert!(
        out.status.success() && stdout.trim().is_empty() && stderr.trim().is_empty(),
        "promtool check metrics: {}\nstdout:\n{stdout}\nstderr:\n{stderr}\npage:\n{page}",
        out.status
    );
}

/// Addresses and user names come from attackers: 100,000 of each must not
/// add series (or label values) to `/metrics`.
#[test]
fn series_do_not_grow_with_attackers() {
    const FLOOD: u32 = 100_000;
    let daemon = Daemon::start(&[AUTH, WEB]);

    // Warm-up: a few attackers, so the series that appear with the first
    // events are already there.
    let at = now_utc();
    let warm_ssh = ssh_bruteforce(&at, &["198.51.100.30", "198.51.100.31", "198.51.100.32"], 6);
    let warm_web: Vec<String> = (1..=3)
        .map(|i| sql_injection(&at, &format!("192.0.2.{}", 10 + i), "warmup"))
        .collect();
    let before = daemon.record(
        "the warm-up read and recorded",
        &warm_ssh,
        &warm_web,
        3.0,
        3.0,
    );

    // The flood: 100,000 addresses guessing 100,000 user names over SSH,
    // and 100,000 other addresses sending SQL injection (each its own
    // incident) with distinct URLs and user agents.
    let ssh_ip = |i: u32| format!("10.{}.{}.{}", (i >> 16) & 255, (i >> 8) & 255, i & 255);
    let web_ip = |i: u32| {
        format!(
            "100.{}.{}.{}",
            64 + ((i >> 16) & 63),
            (i >> 8) & 255,
            i & 255
        )
    };
    let user = |i: u32| format!("floodusr{i:06}");
    let at = now_utc();
    let flood_ssh: Vec<String> = (1..=FLOOD)
        .map(|i| {
            syslog(
                &at,
                20_000 + i,
                &format!(
                    "Failed password for invalid user {} from {} port 22 ssh2",
                    user(i),
                    ssh_ip(i)
                ),
            )
        })
        .collect();
    let flood_web: Vec<String> = (1..=FLOOD)
        .map(|i| sql_injection(&at, &web_ip(i), &format!("floodweb{i:06}")))
        .collect();
    let started = Instant::now();
    daemon.append(&AUTH, &flood_ssh);
    daemon.append(&WEB, &flood_web);
    let after = daemon.wait_read_within(
        FLOOD_DEADLINE,
        "the flood read and recorded",
        &[
            (&AUTH, warm_ssh.len() + flood_ssh.len()),
            (&WEB, warm_web.len() + flood_web.len()),
        ],
        |page| incidents(page, "web-attack") == 3.0 + f64::from(FLOOD),
    );

    let series =
        |page: &str| -> BTreeSet<String> { samples(page).iter().map(Sample::series).collect() };
    let (before_set, after_set) = (series(&before), series(&after));
    let added: Vec<&String> = after_set.difference(&before_set).collect();
    let removed: Vec<&String> = before_set.difference(&after_set).collect();
    let rules = sum(&after, "canhgac_rules_loaded", &[]) as usize;
    println!(
        "flood of {} lines read and recorded in {:.1} s: {} incidents, {} detector keys, \
         {} keys evicted",
        flood_ssh.len() + flood_web.len(),
        started.elapsed().as_secs_f64(),
        sum(&after, "canhgac_incidents_total", &[]),
        sum(&after, "canhgac_detector_keys", &[]),
        sum(&after, "canhgac_detector_keys_evicted_total", &[]),
    );
    println!(
        "series before the flood: {}, after: {} (added {added:?}, removed {removed:?}); \
         {rules} rules loaded",
        before_set.len(),
        after_set.len()
    );
    // Series are fixed by the config and rule set: at most a rule's first
    // event may add its series, never an attacker.
    assert!(
        added.len() <= rules && removed.len() <= rules,
        "series changed with the flood: added {added:#?}\nremoved {removed:#?}"
    );

    // Labels come from bounded sets only...
    let allowed = [
        "category",
        "severity",
        "rule",
        "input",
        "result",
        "period",
        "comparison",
        "version",
        "rules_digest",
        "le",
        // canhgac_http_auth_failures_total: "metrics" or "api".
        "endpoint",
        // canhgac_http_connections_closed_total: one of five reasons.
        "reason",
    ];
    for s in samples(&after) {
        for k in s.labels.keys() {
            assert!(
                allowed.contains(&k.as_str()),
                "unexpected label {k} in {s:?}"
            );
        }
    }
    // ...and nothing from the flood appears anywhere on the page: no user
    // name, URL or agent text, and no address as a dotted-quad token.
    for marker in ["floodusr", "floodweb", "warmup"] {
        assert!(!after.contains(marker), "{marker}… on the /metrics page");
    }
    let flood_ips: HashSet<String> = (1..=FLOOD).flat_map(|i| [ssh_ip(i), web_ip(i)]).collect();
    for token in after.split(|c: char| !(c.is_ascii_digit() || c == '.')) {
        assert!(
            !flood_ips.contains(token),
            "address {token} on the /metrics page"
        );
    }
    for ip in ["198.51.100.30", "192.0.2.11"] {
        assert!(
            !after.contains(ip),
            "warm-up address {ip} on the /metrics page"
        );
    }
}

/// `/healthz` answers as soon as the process serves; `/readyz` once the
/// inputs are open and the store accepts commits.
#[test]
fn healthz_and_readyz() {
    let daemon = Daemon::start(&[AUTH]);
    let r = daemon.d.get("/healthz").expect("GET /healthz");
    assert_eq!((r.status, r.body.as_str()), (200, "ok\n"));
    let ready = wait_for(
        "/readyz to say ready",
        || daemon.d.get("/readyz").filter(|r| r.status == 200),
        || daemon.context(),
    );
    assert_eq!(ready.body.trim(), "ready");
    // Still healthy and ready after some work.
    daemon.append(&AUTH, &ssh_bruteforce(&now_utc(), &["203.0.113.50"], 6));
    daemon.wait_read("the lines read", &[(&AUTH, 6)], |page| {
        incidents(page, "bruteforce") == 1.0
    });
    for path in ["/healthz", "/readyz"] {
        let r = daemon.d.get(path).expect("GET");
        assert_eq!(r.status, 200, "{path}: {}", r.body);
    }
    let r = daemon.d.get("/nonexistent").expect("GET /nonexistent");
    assert_eq!(r.status, 404);
}

/// The alerting and recording rules shipped for the monitoring center are
/// valid and pass their unit tests (each alert fires where it should, and
/// look-alike situations stay quiet; the national figures are sums first,
/// then ratios).
#[test]
fn shipped_alert_rules_pass_promtool() {
    if !installed("promtool") {
        println!("SKIPPED: `promtool` is not installed (apt-get install prometheus)");
        return;
    }
    for (verb, file) in [
        ("check", ALERTS),
        ("test", ALERTS_TEST),
        ("check", NATIONAL),
        ("test", NATIONAL_TEST),
        ("check", CENTER),
        ("test", CENTER_TEST),
    ] {
        let out = Command::new("promtool")
            .args([verb, "rules"])
            .arg(contrib(file))
            .output()
            .expect("promtool runs");
        let text = format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        println!("promtool {verb} rules {file}: {}\n{text}", out.status);
        assert!(
            out.status.success(),
            "promtool {verb} rules {file}:\n{text}"
        );
        assert!(
            text.contains("SUCCESS"),
            "promtool {verb} rules {file}:\n{text}"
        );
    }
}

/// The alerting rules, the national recording rules and the Grafana
/// dashboard against a real Prometheus scraping a real daemon: every metric
/// name they use is one the daemon serves, every rule evaluates without
/// error, the national sums equal the daemon's own counts, and every
/// dashboard query runs and returns data.
#[test]
fn shipped_alerts_and_dashboard_work_on_real_data() {
    if !installed("prometheus") {
        println!("SKIPPED: `prometheus` is not installed (apt-get install prometheus)");
        return;
    }
    let alerts = fs::read_to_string(contrib(ALERTS)).expect("alerts.yml");
    let national = fs::read_to_string(contrib(NATIONAL)).expect("national.yml");
    let dashboard: Value =
        serde_json::from_str(&fs::read_to_string(contrib(DASHBOARD)).expect("dashboard"))
            .expect("the dashboard is JSON");
    let mut queries = Vec::new();
    dashboard_queries(&dashboard, &mut queries);
    assert!(queries.len() >= 20, "dashboard queries: {queries:?}");

    // Every kind of part the rules watch: files, a syslog receiver, a feed
    // and a web root, so that their families are on the page.
    let udp = std::net::UdpSocket::bind("127.0.0.1:0")
        .and_then(|s| s.local_addr())
        .expect("a free UDP port")
        .port();
    let daemon = Daemon::start_with(
        &[AUTH, WEB],
        &[
            ("feeds/c2.txt", "# test feed\n192.0.2.250\n"),
            ("www/index.html", "<h1>portal</h1>\n"),
        ],
        &format!(
            "\n[[input]]\nname = \"devices\"\ntype = \"syslog-udp\"\nlisten = \"127.0.0.1:{udp}\"\n\
         \n[[feed]]\nname = \"c2\"\npath = \"feeds/c2.txt\"\nkind = \"ip\"\n\
         category = \"malware\"\nseverity = \"critical\"\n\
         \n[[webroot]]\nname = \"www\"\npath = \"www\"\n"
        ),
    );
    let page = record_attacks(&daemon);
    let served = served_names(&page);
    for text in queries.iter().chain([&alerts, &national]) {
        for name in canhgac_names(text) {
            assert!(
                served.contains(name),
                "{name} (in {text:?}) is not served; the daemon serves {served:?}"
            );
        }
    }

    // national.yml as shipped, but evaluated every second rather than every
    // minute, so that its first evaluation comes within the test's deadline.
    let national_fast = daemon.site.dir().join("national.yml");
    assert!(
        national.contains("\n    interval: 1m\n"),
        "national.yml's interval"
    );
    fs::write(
        &national_fast,
        national.replace("\n    interval: 1m\n", "\n    interval: 1s\n"),
    )
    .expect("national.yml copied");
    let prom = Prometheus::start(
        daemon.site.dir(),
        daemon.port,
        &[&contrib(ALERTS), &national_fast],
    );
    let context = || format!("{}\nprometheus log:\n{}", daemon.context(), prom.log_text());
    wait_for(
        "Prometheus to store the incidents",
        || {
            (prom.value("sum(canhgac_incidents_total{category=\"web-attack\"})")? == 5.0)
                .then_some(())
        },
        context,
    );

    let expected_rules = alerts.matches("- alert:").count() + national.matches("- record:").count();
    let evaluated = wait_for(
        "every alerting rule evaluated without error",
        || {
            let r = prom.get("/api/v1/rules")?;
            let v: Value = serde_json::from_str(&r.body).ok()?;
            let rules: Vec<&Value> = v["data"]["groups"]
                .as_array()?
                .iter()
                .flat_map(|g| g["rules"].as_array().into_iter().flatten())
                .collect();
            for rule in &rules {
                assert_ne!(rule["health"], "err", "rule failed on real data: {rule}");
            }
            let done = rules.len() == expected_rules
                && rules.iter().all(|r| {
                    r["health"] == "ok"
                        && !r["lastEvaluation"]
                            .as_str()
                            .unwrap_or("0001")
                            .starts_with("0001")
                });
            done.then_some(rules.len())
        },
        context,
    );
    assert_eq!(evaluated, expected_rules);

    // One agency: the national figures are its own, summed over categories
    // for the totals, and it is the one agency reporting.
    wait_for(
        "the national records to match the agency's counts",
        || {
            let this_month =
                prom.value("sum(canhgac_incidents_period{job=\"canhgac\",period=\"this_month\"})")?;
            let total =
                prom.value("national:canhgac_incidents_period:sum_all{period=\"this_month\"}")?;
            let web = prom.value(
                "national:canhgac_incidents_period:sum{category=\"web-attack\",period=\"this_month\"}",
            )?;
            let reporting = prom.value("national:canhgac_agencies_reporting:count")?;
            (total == this_month && web == 3.0 && reporting == 1.0).then_some(())
        },
        context,
    );

    for query in &queries {
        if let Some(args) = query
            .strip_prefix("label_values(")
            .and_then(|q| q.strip_suffix(')'))
        {
            // A template variable: the label's values among the series.
            let (selector, label) = args.rsplit_once(", ").expect("label_values(m, l)");
            let selector = as_grafana_sends(selector);
            let values = wait_for(
                &format!("values of variable query {query}"),
                || {
                    let r = prom.get(&format!(
                        "/api/v1/label/{label}/values?match[]={}",
                        urlencode(&selector)
                    ))?;
                    let v: Value = serde_json::from_str(&r.body).ok()?;
                    let values = v["data"].as_array()?.clone();
                    (!values.is_empty()).then_some(values)
                },
                context,
            );
            println!("variable {query}: {values:?}");
            continue;
        }
        let sent = as_grafana_sends(query);
        let result = wait_for(
            &format!("dashboard query {sent} to return data"),
            || prom.query(&sent).filter(|r| !r.is_empty()),
            context,
        );
        println!("{} series: {sent}", result.len());
    }
}

/// An agency the center cannot scrape (docs/center.md): a Prometheus in
/// agent mode scrapes the daemon and remote-writes canhgac's series and
/// `up`, under the agency's own `instance`, to the center's Prometheus,
/// which receives them with `--web.enable-remote-write-receiver` and
/// answers queries on them as on scraped series.
#[test]
fn agent_mode_remote_writes_an_agency_to_the_center() {
    if !installed("prometheus") {
        println!("SKIPPED: `prometheus` is not installed (apt-get install prometheus)");
        return;
    }
    let daemon = Daemon::start(&[AUTH]);
    let dir = daemon.site.dir();
    let center = Prometheus::start_with(
        dir,
        "center",
        "global:\n  evaluation_interval: 1s\n",
        &["--web.enable-remote-write-receiver"],
    );
    let agent = Prometheus::start_with(
        dir,
        "agent",
        &format!(
            "global:\n  scrape_interval: 1s\n  scrape_timeout: 1s\n\
             scrape_configs:\n  - job_name: canhgac\n    static_configs:\n      \
             - targets: ['127.0.0.1:{}']\n    relabel_configs:\n      \
             - target_label: instance\n        replacement: sotttt.hue.gov.vn\n\
             remote_write:\n  - url: http://127.0.0.1:{}/api/v1/write\n    \
             write_relabel_configs:\n      - source_labels: [__name__]\n        \
             regex: 'canhgac_.*|up'\n        action: keep\n",
            daemon.port, center.port
        ),
        &["--enable-feature=agent"],
    );
    let context = || {
        format!(
            "{}\ncenter log:\n{}\nagent log:\n{}",
            daemon.context(),
            center.log_text(),
            agent.log_text()
        )
    };
    let at = now_utc();
    daemon.append(
        &AUTH,
        &ssh_bruteforce(&at, &["203.0.113.70", "203.0.113.71"], 6),
    );
    let selector = r#"job="canhgac",instance="sotttt.hue.gov.vn""#;
    wait_for(
        "the center to receive the agency's incidents through remote-write",
        || {
            let up = center.value(&format!("up{{{selector}}}"))?;
            let total = center.value(&format!(
                "sum(canhgac_incidents_total{{{selector},category=\"bruteforce\"}})"
            ))?;
            (up == 1.0 && total == 2.0).then_some(())
        },
        context,
    );
    // Only canhgac's series and up travel, not the agent's own.
    let others = center
        .query(&format!(
            "count({{{selector},__name__!~\"canhgac_.*|up\"}})"
        ))
        .expect("query");
    assert!(others.is_empty(), "series other than canhgac's: {others:?}");
}

/// More attackers trying at once than the key table holds: each try comes
/// after its key was evicted. /metrics counts the keys that came back, and
/// the log says once that the table is too small.
#[test]
fn a_key_table_too_small_for_the_attackers_is_counted_and_said_once() {
    let d = Daemon::start_with(&[AUTH], &[], "[pipeline]\nmax_keys = 60\n");
    let ips: Vec<String> = (0..100).map(|i| format!("198.51.100.{i}")).collect();
    let ips: Vec<&str> = ips.iter().map(String::as_str).collect();
    let lines = ssh_bruteforce(&now_utc(), &ips, 3);
    d.append(&AUTH, &lines);
    let page = d.wait_read(
        "the attackers' tries, taking turns",
        &[(&AUTH, lines.len())],
        |page| sum(page, "canhgac_detector_keys_returned_total", &[]) > 0.0,
    );
    assert!(sum(&page, "canhgac_detector_keys_evicted_total", &[]) > 0.0);
    let said = || d.d.log_text().matches("the key table is too small").count();
    common::wait::until("the log to say so", || said() > 0, || d.context());
    // More returns after the first warning are counted, not said again.
    let more = ssh_bruteforce(&now_utc(), &ips, 2);
    d.append(&AUTH, &more);
    d.wait_read("more tries", &[(&AUTH, lines.len() + more.len())], |p| {
        sum(p, "canhgac_detector_keys_returned_total", &[])
            > sum(&page, "canhgac_detector_keys_returned_total", &[])
    });
    assert_eq!(said(), 1, "{}", d.context());
}
