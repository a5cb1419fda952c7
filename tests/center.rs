//! The national center over a real `nats-server`: agencies' daemons forward
//! their incidents, `canhgac center` keeps them. Everything is killed with
//! SIGKILL at random moments (the daemons more than 20 times, the center
//! and the broker too) while the agencies' logs grow; at the end the center
//! store must equal the union of the agencies' stores, revision for
//! revision: nothing lost, nothing twice.

mod common;

use std::collections::BTreeMap;
use std::fs::{File, OpenOptions};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Duration;

use common::config::Config;
use common::daemon::Daemon;
use common::logs::ssh_failures;
use common::servers::{installed, Nats, Proc};
use common::site::Site;
use common::wait;
use common::Rng;

/// An incident as both sides hold it: first and last seen, events, open,
/// status, revision.
type Fact = (i64, i64, i64, i64, String, i64);

/// uid → fact, from an agency's store (its outbox revision) or the
/// center's (the revision it holds).
fn facts(db: &Path, center: bool) -> BTreeMap<String, Fact> {
    let conn =
        rusqlite::Connection::open_with_flags(db, rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY)
            .expect("db opens");
    let revision = if center {
        "JOIN center_incidents r ON r.incident = i.id"
    } else {
        "JOIN outbox r ON r.incident = i.id"
    };
    let sql = format!(
        "SELECT i.uid, i.first_seen_us, i.last_seen_us, i.events, i.open,
                COALESCE(s.status, 'new'), r.revision
         FROM incidents i {revision} LEFT JOIN incident_status s ON s.incident = i.id"
    );
    let mut stmt = conn.prepare(&sql).expect("query");
    let rows = stmt
        .query_map([], |r| {
            Ok((
                r.get::<_, String>(0)?,
                (
                    r.get(1)?,
                    r.get(2)?,
                    r.get(3)?,
                    r.get(4)?,
                    r.get(5)?,
                    r.get(6)?,
                ),
            ))
        })
        .expect("rows")
        .collect::<Result<BTreeMap<_, _>, _>>()
        .expect("row values");
    let all: i64 = conn
        .query_row("SELECT COUNT(*) FROM incidents", [], |r| r.get(0))
        .expect("count");
    assert_eq!(
        all as usize,
        rows.len(),
        "{}: an incident without its revision",
        db.display()
    );
    rows
}

fn pending(db: &Path) -> i64 {
    let conn =
        rusqlite::Connection::open_with_flags(db, rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY)
            .expect("db opens");
    conn.query_row("SELECT COUNT(*) FROM outbox WHERE pending = 1", [], |r| {
        r.get(0)
    })
    .expect("pending")
}

struct Center {
    dir: PathBuf,
    port: u16,
    proc: Option<Proc>,
}

impl Center {
    fn new(dir: &Path, nats: &Nats) -> Center {
        Center::with_nats(dir, nats, "")
    }

    /// `nats`: more lines of its `[nats]` (authentication, TLS).
    fn with_nats(dir: &Path, nats: &Nats, extra: &str) -> Center {
        std::fs::create_dir_all(dir).expect("center dir");
        let port = common::free_port();
        std::fs::write(
            dir.join("center.toml"),
            format!(
                "center = \"ncsc\"\nname = \"National center\"\nstate_dir = \"state\"\n\
                 time_zone = \"UTC\"\nlisten = \"127.0.0.1:{port}\"\nsilent_after = \"1m\"\n\
                 [nats]\nservers = [\"{}\"]\n{extra}",
                nats.url()
            ),
        )
        .expect("center.toml");
        Center {
            dir: dir.to_path_buf(),
            port,
            proc: None,
        }
    }

    fn start(&mut self) {
        let log = OpenOptions::new()
            .create(true)
            .append(true)
            .open(self.dir.join("center.log"))
            .expect("center log");
        let child = Command::new(common::BIN)
            .arg("center")
            .arg("--config")
            .arg(self.dir.join("center.toml"))
            .env("CANHGAC_LOG", "info")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .expect("canhgac center starts");
        self.proc = Some(Proc(child));
    }

    fn kill(&mut self) {
        self.proc = None;
    }

    fn db(&self) -> PathBuf {
        self.dir.join("state/center.db")
    }

    /// Empty until the center has created its store.
    fn facts(&self) -> BTreeMap<String, Fact> {
        let ready = rusqlite::Connection::open_with_flags(
            self.db(),
            rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY,
        )
        .and_then(|c| {
            c.query_row("SELECT COUNT(*) FROM center_incidents", [], |r| {
                r.get::<_, i64>(0)
            })
        })
        .is_ok();
        if ready {
            facts(&self.db(), true)
        } else {
            BTreeMap::new()
        }
    }

    /// Its `/metrics` page, once it serves one.
    fn metrics(&self) -> String {
        let agent = common::http::agent(None);
        let url = format!("http://127.0.0.1:{}/metrics", self.port);
        wait::wait_for(
            "the center's /metrics",
            || common::http::get(&agent, &url, None).ok().map(|r| r.body),
            || self.log(),
        )
    }

    fn log(&self) -> String {
        std::fs::read_to_string(self.dir.join("center.log")).unwrap_or_default()
    }
}

fn agency(name: &str, nats: &Nats) -> Site {
    agency_with(name, nats, "")
}

/// `extra`: more lines of its `[forward.nats]`.
fn agency_with(name: &str, nats: &Nats, extra: &str) -> Site {
    Site::with_auth_log(Config::new(name).any_port().top(&format!(
        "[forward]\nheartbeat = \"1s\"\n[forward.nats]\nservers = [\"{}\"]\n{extra}",
        nats.url()
    )))
}

/// A directory for the broker and the center; `None` (the test skipped)
/// where nats-server is not installed.
fn scratch() -> Option<tempfile::TempDir> {
    if !installed("nats-server") {
        eprintln!("skipped: nats-server is not installed (.ci/run installs it)");
        return None;
    }
    Some(tempfile::TempDir::new().expect("tempdir"))
}

fn start(site: &Site) -> Daemon {
    site.daemon().env("CANHGAC_LOG", "info").ready()
}

/// Waits until every agency's outbox is empty and the center holds their
/// union; then checks it equals it exactly.
fn converge(agencies: &[&Site], center: &Center) {
    let union = || {
        let mut all = BTreeMap::new();
        for site in agencies {
            let db = site.path("state/canhgac.db");
            all.extend(facts(&db, false));
        }
        all
    };
    wait::wait_for(
        "the center to hold every agency's incidents",
        || {
            let empty = agencies
                .iter()
                .all(|s| pending(&s.path("state/canhgac.db")) == 0);
            let want = union();
            (empty && !want.is_empty() && center.facts() == want).then_some(())
        },
        || {
            let (want, have) = (union(), center.facts());
            let missing: Vec<_> = want
                .iter()
                .filter(|(k, v)| have.get(*k) != Some(v))
                .take(5)
                .collect();
            let extra: Vec<_> = have
                .keys()
                .filter(|k| !want.contains_key(*k))
                .take(5)
                .collect();
            format!(
                "agencies {} incidents, center {}; differing {missing:?}; extra {extra:?}\ncenter log:\n{}",
                want.len(),
                have.len(),
                center.log()
            )
        },
    );
}

/// Each round: new attackers and one that keeps growing, for both agencies.
fn attack(site: &Site, agency: u8, round: usize) {
    let mut lines = String::new();
    for k in 0..3 {
        lines.push_str(&ssh_failures(
            &format!("10.{agency}.{round}.{k}"),
            6,
            round * 6,
        ));
    }
    lines.push_str(&ssh_failures(&format!("198.51.100.{agency}"), 2, round * 6));
    site.append("auth.log", lines);
}

#[test]
fn the_center_equals_the_union_of_the_agencies_through_kill_9() {
    let Some(tmp) = scratch() else { return };
    let mut nats = Nats::start(tmp.path());
    let mut center = Center::new(&tmp.path().join("center"), &nats);
    center.start();
    let sites = [agency("so-a", &nats), agency("so-b", &nats)];
    let seed = std::process::id() as u64 | 1;
    eprintln!("seed {seed}");
    let mut rng = Rng(seed);
    let mut daemons: [Option<Daemon>; 2] = [None, None];
    let mut kills = 0;
    for round in 0..24 {
        for (i, site) in sites.iter().enumerate() {
            attack(site, i as u8 + 1, round);
            if daemons[i].is_none() {
                daemons[i] = Some(start(site));
            }
        }
        if round == 12 {
            // A status set while everything runs travels as a revision.
            let uid = wait::wait_for(
                "an incident of so-a",
                || {
                    facts(&sites[0].path("state/canhgac.db"), false)
                        .keys()
                        .next()
                        .cloned()
                },
                String::new,
            );
            let out = Command::new(common::BIN)
                .args(["incident", "false-positive", &uid, "--config"])
                .arg(sites[0].config())
                .output()
                .expect("canhgac incident");
            assert!(
                out.status.success(),
                "{}",
                String::from_utf8_lossy(&out.stderr)
            );
        }
        std::thread::sleep(Duration::from_millis(100 + rng.below(500)));
        // One daemon each round, both every third.
        for (i, slot) in daemons.iter_mut().enumerate() {
            if round % 3 == 0 || round % 2 == i {
                if let Some(d) = slot.take() {
                    d.kill9();
                    kills += 1;
                }
            }
        }
        match round % 6 {
            1 => center.kill(),
            2 => center.start(),
            _ => {}
        }
        if round == 9 {
            nats.restart();
        }
        if round == 15 {
            // The center down for a while: what the agencies send waits
            // in the stream.
            center.kill();
        }
        if round == 20 {
            center.start();
        }
    }
    assert!(kills >= 20, "{kills} kills");
    if center.proc.is_none() {
        center.start();
    }
    for (i, site) in sites.iter().enumerate() {
        if daemons[i].is_none() {
            daemons[i] = Some(start(site));
        }
    }
    converge(&[&sites[0], &sites[1]], &center);
    let all = center.facts();
    assert!(
        all.len() >= 2 * 24 * 3,
        "{} incidents at the center",
        all.len()
    );
    assert!(
        all.values().any(|f| f.4 == "false-positive"),
        "the status set at so-a reached the center"
    );
    assert!(
        all.values().any(|f| f.5 > 1),
        "incidents that grew reached the center at a later revision"
    );
    reports_agree(&sites, &center);
}

/// The figures of `args` (a month's report as JSON) without what differs
/// between two stores of the same incidents (when, whose).
fn figures(args: &[&str], store: (&str, &Path)) -> serde_json::Value {
    let out = Command::new(common::BIN)
        .arg("report")
        .args(args)
        .arg(store.0)
        .arg(store.1)
        .args(["--format", "json", "--tz", "UTC"])
        .output()
        .expect("canhgac report");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let mut v: serde_json::Value = serde_json::from_slice(&out.stdout).expect("report JSON");
    let map = v.as_object_mut().expect("report object");
    for volatile in [
        "as_of",
        "agency",
        "agency_name",
        "agencies",
        "complete",
        "agency_time_zone",
    ] {
        map.remove(volatile);
    }
    v
}

/// The center's report of one agency is that agency's own report; the
/// national report counts every agency's incidents, per agency.
fn reports_agree(sites: &[Site], center: &Center) {
    let month = ["--month", "2026-10"];
    let db = center.db();
    let national = {
        let out = Command::new(common::BIN)
            .args(["report", "--db"])
            .arg(&db)
            .args(["--format", "json", "--tz", "UTC", "--month", "2026-10"])
            .output()
            .expect("canhgac report");
        serde_json::from_slice::<serde_json::Value>(&out.stdout).expect("report JSON")
    };
    let mut sum = 0;
    for (site, id) in sites.iter().zip(["so-a", "so-b"]) {
        let own = figures(&month, ("--config", &site.config()));
        let copy = figures(&[month[0], month[1], "--agency", id], ("--db", &db));
        assert_eq!(own, copy, "{id}: the center's report of it is its own");
        let listed = national["agencies"]
            .as_array()
            .and_then(|a| a.iter().find(|x| x["agency"] == id))
            .unwrap_or_else(|| panic!("{id} in {national}"));
        assert_eq!(listed["this_month"], own["total"]["this_month"], "{id}");
        assert_eq!(listed["silent"], false, "{id} sends heartbeats");
        sum += own["total"]["this_month"].as_u64().expect("count");
    }
    assert!(sum >= 2 * 24 * 3, "{sum} incidents in October 2026");
    assert_eq!(national["total"]["this_month"].as_u64(), Some(sum));
}

#[test]
fn monitoring_goes_on_without_the_center_and_everything_arrives_later() {
    let Some(tmp) = scratch() else { return };
    let mut nats = Nats::start(tmp.path());
    nats.kill();
    let site = agency("so-c", &nats);
    let daemon = start(&site);
    attack(&site, 3, 0);
    site.wait_incident(&daemon, "ssh-bruteforce", "10.3.0.2");
    let db = site.path("state/canhgac.db");
    wait::wait_for(
        "the outbox to hold what the center has not acknowledged",
        || (pending(&db) == 3).then_some(()),
        || daemon.log_text(),
    );
    assert!(
        daemon.log_text().contains("local monitoring goes on"),
        "{}",
        daemon.log_text()
    );
    nats.restart();
    let mut center = Center::new(&tmp.path().join("center"), &nats);
    center.start();
    attack(&site, 3, 1);
    converge(&[&site], &center);
    assert_eq!(center.facts().len(), 6);
    metrics_serve_the_shipped_rules_and_dashboard(&center);
    let _ = File::open(center.db()).expect("center store");
    daemon.stop();
}

/// Every metric the shipped alerts and dashboard of the center use is on
/// its page, with the national figures; `promtool check metrics` passes it.
fn metrics_serve_the_shipped_rules_and_dashboard(center: &Center) {
    let page = center.metrics();
    let value = |series: &str| common::metrics::value(&page, series);
    assert_eq!(value("canhgac_center_connected"), Some(1.0), "{page}");
    assert_eq!(
        value(r#"canhgac_center_incident_changes_total{outcome="inserted"}"#),
        Some(6.0),
        "{page}"
    );
    assert_eq!(
        value(r#"canhgac_incidents_period{category="bruteforce",period="year_to_date"}"#),
        Some(6.0),
        "the national period counts: {page}"
    );
    for file in ["prometheus/center.yml", "grafana/canhgac-center.json"] {
        let text =
            std::fs::read_to_string(common::manifest("contrib").join(file)).expect("contrib file");
        let mut names: Vec<&str> = text
            .match_indices("canhgac_")
            .map(|(at, _)| {
                let rest = &text[at..];
                let end = rest
                    .find(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
                    .unwrap_or(rest.len());
                &rest[..end]
            })
            .filter(|n| !n.ends_with('_'))
            // A ratio has no sample while both its months are empty, as
            // they are here (the attacks are of October).
            .filter(|&n| n != "canhgac_incidents_change_ratio")
            .collect();
        names.push("process_resident_memory_bytes");
        for name in names {
            assert!(
                page.lines()
                    .any(|l| l.strip_prefix(name).is_some_and(|rest| {
                        // A histogram is served as its _bucket, _sum and _count.
                        let rest = rest.strip_prefix("_bucket").unwrap_or(rest);
                        rest.starts_with(['{', ' '])
                    })),
                "{file} uses {name}, which the center does not serve:\n{page}"
            );
        }
    }
    if installed("promtool") {
        let out = common::fed(
            Command::new("promtool").args(["check", "metrics"]),
            page.as_bytes(),
        );
        assert!(
            out.status.success(),
            "promtool check metrics: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
}

/// Agencies and the center reach a broker that wants TLS and a password:
/// `tls_ca` and `user` with `password_file`, as docs/center.md writes them.
#[test]
fn forwarding_over_tls_with_a_password() {
    let Some(tmp) = scratch() else { return };
    let cert = rcgen::generate_simple_self_signed(vec!["127.0.0.1".into(), "localhost".into()])
        .expect("certificate");
    let (cert_pem, key_pem) = (tmp.path().join("cert.pem"), tmp.path().join("key.pem"));
    std::fs::write(&cert_pem, cert.cert.pem()).expect("cert");
    common::logs::write_private(&key_pem, cert.key_pair.serialize_pem().as_bytes());
    let nats = Nats::start_with(
        tmp.path(),
        &[
            "--tls",
            "--tlscert",
            &cert_pem.to_string_lossy(),
            "--tlskey",
            &key_pem.to_string_lossy(),
            "--user",
            "canhgac",
            "--pass",
            "s3cret-pass",
        ],
    );
    let secret = tmp.path().join("nats.password");
    common::logs::write_private(&secret, b"s3cret-pass\n");
    let auth = format!(
        "user = \"canhgac\"\npassword_file = \"{}\"\ntls_ca = \"{}\"\n",
        secret.display(),
        cert_pem.display()
    );
    let site = agency_with("so-t", &nats, &auth);
    let daemon = start(&site);
    attack(&site, 4, 0);
    site.wait_incident(&daemon, "ssh-bruteforce", "10.4.0.2");
    let mut center = Center::with_nats(&tmp.path().join("center"), &nats, &auth);
    center.start();
    converge(&[&site], &center);
    assert_eq!(center.facts().len(), 3);
    // Without the CA the broker's certificate is not trusted: the daemon
    // keeps monitoring and counts the failed connections.
    let untrusted = agency_with(
        "so-u",
        &nats,
        &format!(
            "user = \"canhgac\"\npassword_file = \"{}\"\n",
            secret.display()
        ),
    );
    let other = start(&untrusted);
    attack(&untrusted, 5, 0);
    untrusted.wait_incident(&other, "ssh-bruteforce", "10.5.0.2");
    assert_eq!(
        pending(&untrusted.path("state/canhgac.db")),
        3,
        "{}",
        other.log_text()
    );
    daemon.stop();
    other.stop();
}

/// While the center is out of reach the outbox is bounded: past
/// `max_pending` the oldest changes are dropped, logged and counted on
/// `/metrics`, and monitoring goes on.
#[test]
fn the_outbox_bound_drops_the_oldest_and_says_so() {
    let Some(tmp) = scratch() else { return };
    let mut nats = Nats::start(tmp.path());
    nats.kill();
    let site = Site::with_auth_log(Config::new("so-b").top(&format!(
        "[forward]\nmax_pending = 2\n[forward.nats]\nservers = [\"{}\"]\n",
        nats.url()
    )));
    let daemon = start(&site);
    attack(&site, 6, 0);
    site.wait_incident(&daemon, "ssh-bruteforce", "10.6.0.2");
    daemon.wait_metric(
        r#"canhgac_forward_dropped_total{reason="max_pending"}"#,
        1.0,
    );
    assert_eq!(
        daemon.metric(r#"canhgac_forward_dropped_total{reason="max_pending"}"#),
        1.0
    );
    assert_eq!(daemon.metric("canhgac_forward_pending"), 2.0);
    assert!(daemon.metric(r#"canhgac_forward_failures_total{stage="connect"}"#) >= 1.0);
    assert_eq!(pending(&site.path("state/canhgac.db")), 2);
    let log = daemon.log_text();
    assert!(log.contains("they are dropped"), "{log}");
    assert_eq!(
        site.incidents().len(),
        3,
        "every incident stays in the store"
    );
    daemon.stop();
}
