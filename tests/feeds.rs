//! IoC feeds with real parts: the built daemon tailing real files, feed
//! files replaced on disk while it runs (renamed over, written in place
//! half-way, replaced by garbage), its store read back with `canhgac
//! incidents` and its metrics over HTTP; `check` and `scan` on feeds with
//! bad lines. Waits are polls with generous deadlines, never sleeps that a
//! slow machine could outlast.

mod common;

use std::collections::BTreeSet;
use std::fs::{self, OpenOptions};
use std::io::Write;
use std::path::{Path, PathBuf};

use serde_json::Value;

use common::cli::{self, command};
use common::config::Config;
use common::daemon::Daemon;
use common::site::Site;

/// The head of every daemon's config here, with a fast sweep.
fn config() -> Config {
    Config::new("test-feeds").pipeline("sweep_interval = \"200ms\"")
}

/// The daemon on `config`; `files` are written into its directory first.
fn start(config: &Config, files: &[(&str, &[u8])]) -> (Site, Daemon) {
    let site = Site::new();
    for (name, data) in files {
        site.write(name, data);
    }
    site.configure(config);
    let d = site.daemon().ready();
    (site, d)
}

/// BIND's query log `query.log` as input `dns`, and the domain feed
/// `phish` read from `feed.txt`.
fn dns_and_phish() -> Config {
    config().input("dns", "query.log", "bind").body(
        r#"[[feed]]
name = "phish"
path = "feed.txt"
kind = "domain"
category = "phishing"
severity = "high"
"#,
    )
}

/// A captured field of a stored incident.
fn field<'a>(incident: &'a Value, name: &str) -> Option<&'a str> {
    incident["fields"][name].as_str()
}

fn sample(name: &str) -> Vec<u8> {
    fs::read(common::manifest("samples/feeds").join(name)).expect("sample feed")
}

fn bind_query(client: &str, name: &str) -> String {
    format!("31-Oct-2020 09:10:02.480 client @0x7f1b2c0a1b20 {client}#53215 ({name}): query: {name} IN A +E(0)K (10.20.0.53)")
}

#[test]
fn ioc_matches_through_the_daemon_on_dns_firewall_and_mail_lines() {
    let phishing = sample("phishing-domains.txt");
    let c2 = sample("c2-addresses.csv");
    let malware = sample("malware-domains.json");
    let (s, d) = start(
        &config()
            .input("dns", "query.log", "bind")
            .input("dnsmasq", "dnsmasq.log", "syslog")
            .input("firewall", "kern.log", "syslog")
            .input("mail", "mail.log", "syslog")
            .body(
                r#"[[feed]]
name = "phishing-domains"
path = "phishing-domains.txt"
kind = "domain"
category = "phishing"
severity = "high"

[[feed]]
name = "malware-domains"
path = "malware-domains.json"
kind = "domain"
category = "malware"
severity = "high"

[[feed]]
name = "c2-addresses"
path = "c2-addresses.csv"
kind = "ip"
category = "malware"
severity = "critical"
"#,
            ),
        &[
            ("phishing-domains.txt", &phishing),
            ("malware-domains.json", &malware),
            ("c2-addresses.csv", &c2),
            ("query.log", b""),
            ("dnsmasq.log", b""),
            ("kern.log", b""),
            ("mail.log", b""),
        ],
    );
    // Loaded at start, before READY: the feed metrics say how many.
    assert_eq!(
        d.metric("canhgac_feed_indicators{feed=\"phishing-domains\"}"),
        5.0
    );
    assert_eq!(
        d.metric("canhgac_feed_indicators{feed=\"c2-addresses\"}"),
        3.0
    );

    s.append_lines(
        "query.log",
        &[
            &bind_query("10.20.0.30", "www.gov.vn"),
            &bind_query("10.20.0.31", "login.vcb-xacthuc.example"),
            &bind_query("10.20.0.32", "notvcb-xacthuc.example"),
            &bind_query("10.20.0.44", "c2.update-check.example"),
        ],
    );
    s.append_lines(
        "dnsmasq.log",
        &["Oct 31 09:10:03 dnsmasq[911]: query[A] portal.dichvucong-gov.example from 10.20.0.33"],
    );
    s.append_lines(
        "kern.log",
        &[
            "Oct 31 09:12:41 gw kernel: [81234.567890] [UFW ALLOW] IN=eth1 OUT=eth0 SRC=10.20.0.45 DST=198.51.100.66 LEN=60 TOS=0x00 PREC=0x00 TTL=63 ID=40111 DF PROTO=TCP SPT=49822 DPT=443 WINDOW=64240 RES=0x00 SYN URGP=0",
            "Oct 31 09:12:42 gw kernel: [81235.000000] [UFW ALLOW] IN=eth1 OUT=eth0 SRC=10.20.0.46 DST=198.51.100.67 LEN=60 TOS=0x00 PREC=0x00 TTL=63 ID=40112 DF PROTO=TCP SPT=49823 DPT=443 WINDOW=64240 RES=0x00 SYN URGP=0",
            "Oct 31 09:12:43 gw kernel: [UFW BLOCK] IN= OUT=eth0 SRC=10.20.0.47 DST=2001:0db8:0bad:0000:0000:0000:0000:0001 LEN=80 TC=0 HOPLIMIT=64 FLOWLBL=0 PROTO=TCP SPT=40000 DPT=443 WINDOW=64800 RES=0x00 SYN URGP=0",
        ],
    );
    s.append_lines(
        "mail.log",
        &[
            "Oct 31 09:30:01 mx1 postfix/qmgr[812]: 7A1B2C3D4E: from=<hr-notice@mail.example>, size=48211, nrcpt=25 (queue active)",
            "Oct 31 09:30:02 mx1 postfix/qmgr[812]: 7A1B2C3D4F: from=<other@mail.example>, size=48211, nrcpt=1 (queue active)",
            "Oct 31 09:31:10 mx1 postfix/qmgr[812]: 8B2C3D4E5F: from=<staff@agency.gov.vn>, size=2211, nrcpt=1 (queue active)",
        ],
    );

    let dns = s.wait_incident(&d, "dns-query-ioc-domain@phishing-domains", "10.20.0.31");
    assert_eq!(
        (dns["category"].as_str(), dns["severity"].as_str()),
        (Some("phishing"), Some("high"))
    );
    assert_eq!(field(&dns, "indicator"), Some("vcb-xacthuc.example"));
    assert_eq!(field(&dns, "feed"), Some("phishing-domains"));
    assert_eq!(field(&dns, "query"), Some("login.vcb-xacthuc.example"));
    let c2dns = s.wait_incident(&d, "dns-query-ioc-domain@malware-domains", "10.20.0.44");
    assert_eq!(c2dns["category"], "malware");
    let fw = s.wait_incident(&d, "firewall-ioc-destination@c2-addresses", "10.20.0.45");
    assert_eq!(
        (fw["category"].as_str(), fw["severity"].as_str()),
        (Some("malware"), Some("critical"))
    );
    assert_eq!(field(&fw, "dst_ip"), Some("198.51.100.66"));
    let v6 = s.wait_incident(&d, "firewall-ioc-destination@c2-addresses", "10.20.0.47");
    assert_eq!(field(&v6, "indicator"), Some("2001:db8:bad::/48"));
    let mail = s.wait_incident(
        &d,
        "mail-sender-ioc@phishing-domains",
        "hr-notice@mail.example",
    );
    assert_eq!(field(&mail, "sender"), Some("hr-notice@mail.example"));
    s.wait_incident(&d, "dns-query-ioc-domain@phishing-domains", "10.20.0.33");

    // Exactly these: benign names, a look-alike that is not a subdomain,
    // an unlisted address and unlisted senders raised nothing.
    let got: BTreeSet<(String, String)> = s
        .incidents()
        .iter()
        .map(|i| {
            (
                i["rule"].as_str().unwrap_or_default().to_owned(),
                i["key"].as_str().unwrap_or_default().to_owned(),
            )
        })
        .collect();
    let want: BTreeSet<(String, String)> = [
        ("dns-query-ioc-domain@phishing-domains", "10.20.0.31"),
        ("dns-query-ioc-domain@phishing-domains", "10.20.0.33"),
        ("dns-query-ioc-domain@malware-domains", "10.20.0.44"),
        ("firewall-ioc-destination@c2-addresses", "10.20.0.45"),
        ("firewall-ioc-destination@c2-addresses", "10.20.0.47"),
        ("mail-sender-ioc@phishing-domains", "hr-notice@mail.example"),
    ]
    .iter()
    .map(|(r, k)| (r.to_string(), k.to_string()))
    .collect();
    assert_eq!(got, want, "{}", d.log_text());
    let page = d.metrics().expect("metrics");
    assert!(
        page.contains(
            "canhgac_rule_events_total{rule=\"dns-query-ioc-domain@phishing-domains\"} 2"
        ),
        "{page}"
    );
}

/// Queries `missed` and then `hit` (client, name): the feed in force must
/// flag only `hit` (`why` says what it would mean otherwise).
fn expect_only(s: &Site, d: &Daemon, missed: (&str, &str), hit: (&str, &str), why: &str) {
    let rule = "dns-query-ioc-domain@phish";
    s.append_lines(
        "query.log",
        &[&bind_query(missed.0, missed.1), &bind_query(hit.0, hit.1)],
    );
    s.wait_incident(d, rule, hit.0);
    assert!(s.incident(rule, missed.0).is_none(), "{why}");
}

#[test]
fn a_feed_replaced_on_disk_is_reloaded_atomically() {
    let (s, d) = start(
        &dns_and_phish(),
        &[("feed.txt", b"a.example\n"), ("query.log", b"")],
    );
    let rule = "dns-query-ioc-domain@phish";
    let loads =
        |result: &str| format!("canhgac_feed_loads_total{{feed=\"phish\",result=\"{result}\"}}");
    d.wait_metric(&loads("success"), 1.0);
    s.append_lines("query.log", &[&bind_query("10.0.0.1", "www.a.example")]);
    s.wait_incident(&d, rule, "10.0.0.1");

    // Renamed over: the new list replaces the old one whole.
    fs::write(s.path("feed.tmp"), "b.example\n").expect("write");
    fs::rename(s.path("feed.tmp"), s.path("feed.txt")).expect("rename");
    d.wait_metric(&loads("success"), 2.0);
    expect_only(
        &s,
        &d,
        ("10.0.0.2", "a.example"),
        ("10.0.0.3", "b.example"),
        "a.example left the feed",
    );

    // Written in place, half-way (the last line cut): not used; the
    // previous list stays in force.
    fs::write(s.path("feed.txt"), "c.example\nd.exa").expect("write");
    d.wait_metric(&loads("incomplete"), 1.0);
    expect_only(
        &s,
        &d,
        ("10.0.0.4", "c.example"),
        ("10.0.0.5", "b.example"),
        "the half-written list was used",
    );
    assert_eq!(d.metric("canhgac_feed_indicators{feed=\"phish\"}"), 1.0);

    // The writer finishes: the whole new list is loaded.
    let mut f = OpenOptions::new()
        .append(true)
        .open(s.path("feed.txt"))
        .expect("feed opens");
    f.write_all(b"mple\n").expect("rest written");
    drop(f);
    d.wait_metric(&loads("success"), 3.0);
    s.append_lines(
        "query.log",
        &[
            &bind_query("10.0.0.6", "d.example"),
            &bind_query("10.0.0.7", "x.c.example"),
        ],
    );
    s.wait_incident(&d, rule, "10.0.0.6");
    s.wait_incident(&d, rule, "10.0.0.7");

    // Garbage renamed over: refused, reported with file:line, counted; the
    // list in force stays.
    fs::write(s.path("feed.tmp"), "e.example\nnot a domain\n").expect("write");
    fs::rename(s.path("feed.tmp"), s.path("feed.txt")).expect("rename");
    d.wait_metric(&loads("failure"), 1.0);
    let feed = s.path("feed.txt").display().to_string();
    assert!(
        d.log_text().contains(&format!(
            "{feed}:2:1: feed phish: unexpected text after the indicator `not`"
        )),
        "{}",
        d.log_text()
    );
    expect_only(
        &s,
        &d,
        ("10.0.0.8", "e.example"),
        ("10.0.0.9", "d.example"),
        "the refused list was used",
    );
    assert_eq!(d.metric("canhgac_feed_indicators{feed=\"phish\"}"), 2.0);
    assert_eq!(d.metric(&loads("success")), 3.0);
}

/// SIGHUP with a feed added to the config: it is loaded beside the running
/// pipeline (on the reloader's thread) and used once loaded; the feed kept
/// from before keeps its indicators throughout.
#[test]
fn sighup_loads_a_new_feed_beside_the_running_one() {
    let (s, d) = start(
        &dns_and_phish(),
        &[
            ("feed.txt", b"a.example\n"),
            ("more.txt", b"m.example\n"),
            ("query.log", b""),
        ],
    );
    let loads = |feed: &str, result: &str| {
        format!("canhgac_feed_loads_total{{feed=\"{feed}\",result=\"{result}\"}}")
    };
    d.wait_metric(&loads("phish", "success"), 1.0);
    let config = fs::read_to_string(s.path("canhgac.toml")).expect("config");
    fs::write(
        s.path("canhgac.toml"),
        format!(
            "{config}\n[[feed]]\nname = \"more\"\npath = \"more.txt\"\nkind = \"domain\"\ncategory = \"phishing\"\nseverity = \"high\"\n"
        ),
    )
    .expect("config rewritten");
    d.signal("HUP");
    d.wait_metric(&loads("more", "success"), 1.0);
    s.append_lines(
        "query.log",
        &[
            &bind_query("10.0.1.1", "a.example"),
            &bind_query("10.0.1.2", "m.example"),
        ],
    );
    s.wait_incident(&d, "dns-query-ioc-domain@phish", "10.0.1.1");
    s.wait_incident(&d, "dns-query-ioc-domain@more", "10.0.1.2");
    // Loaded once each: the kept feed was not read again by the reload.
    assert_eq!(d.metric(&loads("phish", "success")), 1.0);
}

/// A config with feeds holding garbage lines, in each format.
fn garbage_config(dir: &Path) -> PathBuf {
    fs::write(dir.join("auth.log"), "").expect("log");
    fs::write(
        dir.join("bad.txt"),
        "# a comment\nevil.example\nhttp://evil.example/login\n\nok.example\nbad_ domain!\n",
    )
    .expect("feed");
    fs::write(
        dir.join("bad.csv"),
        "indicator,first_seen\n203.0.113.5,2020-10-01\n203.0.113.300,2020-10-02\n198.51.100.0/24,2020-10-03\n",
    )
    .expect("feed");
    fs::write(
        dir.join("bad.json"),
        "[\n  \"44d88612fea8a8f36de82e1278abb02f\",\n  \"not-a-hash\"\n]\n",
    )
    .expect("feed");
    let config = dir.join("canhgac.toml");
    fs::write(
        &config,
        r#"agency = "test-feeds"
state_dir = "state"

[[input]]
name = "auth"
path = "auth.log"
type = "syslog"

[[feed]]
name = "bad-text"
path = "bad.txt"
kind = "domain"
category = "phishing"
severity = "high"

[[feed]]
name = "bad-csv"
path = "bad.csv"
kind = "ip"
category = "malware"
severity = "critical"

[[feed]]
name = "bad-json"
path = "bad.json"
kind = "hash"
category = "malware"
severity = "high"
"#,
    )
    .expect("config");
    config
}

#[test]
fn check_names_file_and_line_of_every_bad_feed_line() {
    let dir = tempfile::tempdir().expect("tempdir");
    let config = garbage_config(dir.path());
    let out = cli::check(&config);
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    let at = |file: &str| dir.path().join(file).display().to_string();
    for want in [
        format!("{}:3:1: feed bad-text: `http://evil.example/login` looks like a URL, not a domain: put it in a url feed", at("bad.txt")),
        format!("{}:6:1: feed bad-text: unexpected text after the indicator `bad_`", at("bad.txt")),
        format!("{}:3:1: feed bad-csv: `203.0.113.300` is not an IP address or CIDR range", at("bad.csv")),
        format!("{}:3:3: feed bad-json: `not-a-hash` is not an MD5, SHA-1, SHA-256 or SHA-512 digest in hex", at("bad.json")),
    ] {
        assert!(err.contains(&want), "missing {want:?} in:\n{err}");
    }
    assert!(err.contains("3 feed file(s) with errors"), "{err}");

    // A good feed reads as ok, with its count.
    fs::write(dir.path().join("bad.txt"), "evil.example\nok.example\n").expect("fixed");
    fs::write(dir.path().join("bad.csv"), "indicator\n203.0.113.5\n").expect("fixed");
    fs::write(
        dir.path().join("bad.json"),
        "[\"44d88612fea8a8f36de82e1278abb02f\"]",
    )
    .expect("fixed");
    let stdout = cli::check_passes(&config);
    assert!(
        stdout.contains("ok: feed bad-text (domain -> phishing, high): 2 indicators"),
        "{stdout}"
    );
}

#[test]
fn the_daemon_starts_with_a_bad_feed_and_takes_the_fixed_file() {
    let s = Site::new();
    let config = garbage_config(s.dir());
    let text = fs::read_to_string(&config).expect("config");
    let port = s.port();
    fs::write(
        &config,
        text.replace(
            "state_dir = \"state\"\n",
            &format!("state_dir = \"state\"\n[http]\nlisten = \"127.0.0.1:{port}\"\n[pipeline]\nsweep_interval = \"200ms\"\n"),
        ),
    )
    .expect("config");
    let d = s.daemon().ready();
    assert_eq!(
        d.metric("canhgac_feed_loads_total{feed=\"bad-text\",result=\"failure\"}"),
        1.0
    );
    assert_eq!(d.metric("canhgac_feed_indicators{feed=\"bad-text\"}"), 0.0);
    assert!(
        d.log_text().contains("bad.txt:3:1: feed bad-text:"),
        "{}",
        d.log_text()
    );
    fs::write(s.path("bad.tmp"), "evil.example\n").expect("fixed");
    fs::rename(s.path("bad.tmp"), s.path("bad.txt")).expect("renamed");
    d.wait_metric("canhgac_feed_indicators{feed=\"bad-text\"}", 1.0);
}

#[test]
fn scan_checks_file_hashes_with_a_local_rule() {
    let dir = tempfile::tempdir().expect("tempdir");
    let p = |name: &str| dir.path().join(name);
    fs::create_dir(p("rules.d")).expect("dir");
    fs::write(
        p("rules.d/uploads.yaml"),
        r#"rules:
  - id: upload-known-malware
    title: Upload of a file with a known malware digest
    description: The upload scanner logged a digest that a hash feed lists.
    category: malware
    severity: high
    types: [syslog]
    patterns:
      - 'uploadscan\[[0-9]+\]: file=(?P<path>[^ ]+) sha256=(?P<sha256>[0-9a-fA-F]{64}) client=(?P<src_ip>[0-9A-Fa-f:.]+)'
    ioc:
      - { field: sha256, kind: hash }
    tags: [T1105]
    examples:
      indicators:
        hash: [275a021bbfb6489e54d471899f7db9d1663fc695ec2fe2a2c4538aabf651fd0f]
      match:
        - line: 'Oct 31 23:30:00 web1 uploadscan[42]: file=/srv/up/a.com sha256=275a021bbfb6489e54d471899f7db9d1663fc695ec2fe2a2c4538aabf651fd0f client=203.0.113.5'
          fields: { path: /srv/up/a.com, indicator: 275a021bbfb6489e54d471899f7db9d1663fc695ec2fe2a2c4538aabf651fd0f }
      no_match:
        - 'Oct 31 23:30:00 web1 uploadscan[42]: file=/srv/up/b.pdf sha256=0000000000000000000000000000000000000000000000000000000000000000 client=203.0.113.5'
"#,
    )
    .expect("rule");
    fs::copy(
        common::manifest("samples/feeds/malware-hashes.txt"),
        p("hashes.txt"),
    )
    .expect("feed");
    fs::write(
        p("uploads.log"),
        "Oct 31 23:30:00 web1 uploadscan[42]: file=/srv/up/a.com sha256=275A021BBFB6489E54D471899F7DB9D1663FC695EC2FE2A2C4538AABF651FD0F client=203.0.113.5\n\
         Oct 31 23:30:01 web1 uploadscan[42]: file=/srv/up/b.pdf sha256=1111111111111111111111111111111111111111111111111111111111111111 client=203.0.113.6\n",
    )
    .expect("log");
    fs::write(
        p("canhgac.toml"),
        r#"agency = "test-feeds"
[rules]
dirs = ["rules.d"]
[[input]]
name = "uploads"
path = "uploads.log"
type = "syslog"
[[feed]]
name = "malware-hashes"
path = "hashes.txt"
kind = "hash"
category = "malware"
severity = "critical"
"#,
    )
    .expect("config");
    cli::succeed(command().args(["rules", "test"]).arg(p("rules.d")));
    let printed = cli::succeed(
        command()
            .args([
                "scan", "--events", "--year", "2020", "--tz", "UTC", "--config",
            ])
            .arg(p("canhgac.toml"))
            .arg(p("uploads.log")),
    );
    let events = cli::json_lines(printed.as_bytes());
    assert_eq!(events.len(), 1, "{events:?}");
    let e = &events[0];
    assert_eq!(e["rule"], "upload-known-malware@malware-hashes");
    assert_eq!(
        (e["category"].as_str(), e["severity"].as_str()),
        (Some("malware"), Some("critical"))
    );
    assert_eq!(e["line"], 1);
    assert_eq!(
        e["fields"]["indicator"],
        "275a021bbfb6489e54d471899f7db9d1663fc695ec2fe2a2c4538aabf651fd0f"
    );
    assert_eq!(e["fields"]["feed"], "malware-hashes");

    // Without the config (no feeds), the rule is inactive and scan finds nothing.
    let events = cli::succeed(
        command()
            .args(["scan", "--events", "--rules"])
            .arg(p("rules.d"))
            .arg(p("uploads.log")),
    );
    assert!(events.is_empty(), "{events}");
}
