//! The HTTP side as a client sees it: the real daemon binary, a config in a
//! temporary directory, attack lines appended to a tailed log, and requests
//! over loopback. Covers authentication of `/metrics` (bearer and basic),
//! the open health endpoints, the JSON API (tokens, filters, pagination,
//! one incident, the monthly summary, rules, errors, token rotation on
//! SIGHUP) and HTTPS with a self-signed certificate made here.

mod common;

use std::collections::{BTreeMap, HashSet};
use std::path::Path;

use jiff::tz::TimeZone;
use jiff::{SignedDuration, Timestamp, ToSpan};
use serde_json::Value;

use common::cli;
use common::config::Config;
use common::daemon::{Daemon, Launch};
use common::http::{self, agent};
use common::site::Site;

const API_TOKEN: &str = "api-0123456789abcdef0123456789abcdef";
const API_TOKEN_2: &str = "api-rotated-fedcba9876543210fedcba98";
const METRICS_TOKEN: &str = "metrics-0123456789abcdef0123456789ab";

/// The daemon and a client of its HTTP side.
struct Api {
    site: Site,
    d: Daemon,
    base: String,
    agent: ureq::Agent,
}

/// Starts the daemon with these `[http]` lines (besides `listen`); `files`
/// are written into its directory first. `tls`: the certificate (DER) the
/// client trusts, for HTTPS.
fn start(http: &str, files: &[(&str, &[u8])], tls: Option<&[u8]>) -> Api {
    start_launched(http, files, tls, |launch| launch)
}

/// [`start`], the launch adjusted by `adjust` (an environment, say).
fn start_launched(
    http: &str,
    files: &[(&str, &[u8])],
    tls: Option<&[u8]>,
    adjust: impl FnOnce(Launch) -> Launch,
) -> Api {
    let site = Site::with_auth_log(Config::new("test-http").http(http));
    for (name, data) in files {
        site.write_private(name, data);
    }
    let d = adjust(site.daemon().env("CANHGAC_LOG", "info")).ready();
    let scheme = if tls.is_some() { "https" } else { "http" };
    Api {
        base: format!("{scheme}://127.0.0.1:{}", site.port()),
        agent: agent(tls),
        site,
        d,
    }
}

/// A response: status, WWW-Authenticate, body.
type Reply = (u16, Option<String>, String);

impl Api {
    fn log(&self) -> String {
        self.d.log_text()
    }

    fn get(&self, path: &str, authorization: Option<&str>) -> Result<Reply, ureq::Error> {
        let r = http::get(&self.agent, &format!("{}{path}", self.base), authorization)?;
        Ok((r.status, r.challenge, r.body))
    }

    fn fetch(&self, path: &str, authorization: Option<&str>) -> Reply {
        self.get(path, authorization)
            .unwrap_or_else(|e| panic!("GET {path}: {e}\n{}", self.log()))
    }

    /// GET with the API token; status and JSON body.
    fn api(&self, path: &str) -> (u16, Value) {
        self.api_with(path, API_TOKEN)
    }

    fn api_with(&self, path: &str, token: &str) -> (u16, Value) {
        let (status, _, body) = self.fetch(path, Some(&format!("Bearer {token}")));
        let json = serde_json::from_str(&body)
            .unwrap_or_else(|e| panic!("GET {path}: {status} not JSON ({e}): {body}"));
        (status, json)
    }

    fn wait_for(&self, what: &str, done: impl FnMut() -> bool) {
        self.d.until(what, done);
    }

    fn append(&self, text: &str) {
        self.site.append("auth.log", text);
    }
}

/// Five failed SSH passwords from each address (a bruteforce incident
/// each), stamped now in UTC.
fn attack_lines(addresses: &[String], failures: usize) -> String {
    attack_lines_at(addresses, failures, Timestamp::now())
}

fn attack_lines_at(addresses: &[String], failures: usize, at: Timestamp) -> String {
    let stamp = at
        .to_zoned(TimeZone::UTC)
        .strftime("%b %e %H:%M:%S")
        .to_string();
    let mut out = String::new();
    for ip in addresses {
        for port in 0..failures {
            out.push_str(&format!(
                "{stamp} web01 sshd[4242]: Failed password for admin from {ip} port {} ssh2\n",
                40000 + port
            ));
        }
    }
    out
}

fn error_of(v: &Value) -> &str {
    v["error"]
        .as_str()
        .unwrap_or_else(|| panic!("no error in {v}"))
}

fn uids(page: &Value) -> Vec<String> {
    page["incidents"]
        .as_array()
        .expect("incidents array")
        .iter()
        .map(|i| i["uid"].as_str().expect("uid").to_owned())
        .collect()
}

/// [`start_launched`] with `/metrics` and the API behind bearer tokens:
/// [`METRICS_TOKEN`], and the API's token file `api_tokens`.
fn start_with_tokens(api_tokens: &str, adjust: impl FnOnce(Launch) -> Launch) -> Api {
    let http = "metrics_auth = \"bearer\"\nmetrics_token_file = \"metrics.tokens\"\napi_token_file = \"api.tokens\"\n";
    let metrics_tokens = format!("{METRICS_TOKEN}\n");
    start_launched(
        http,
        &[
            ("api.tokens", api_tokens.as_bytes()),
            ("metrics.tokens", metrics_tokens.as_bytes()),
        ],
        None,
        adjust,
    )
}

#[test]
fn metrics_bearer_and_the_json_api() {
    let d = start_with_tokens(&format!("# analysts\n{API_TOKEN}\n"), |launch| launch);

    // Health needs no credentials.
    assert_eq!(d.fetch("/healthz", None).0, 200);
    d.wait_for("/readyz", || d.fetch("/readyz", None).0 == 200);

    // /metrics: bearer token only.
    let (status, challenge, _) = d.fetch("/metrics", None);
    assert_eq!(status, 401);
    assert_eq!(challenge.as_deref(), Some("Bearer realm=\"canhgac\""));
    assert_eq!(d.fetch("/metrics", Some("Bearer wrong-token")).0, 401);
    assert_eq!(
        d.fetch("/metrics", Some(&format!("Bearer {API_TOKEN}"))).0,
        401
    );
    assert_eq!(d.fetch("/metrics", Some("Basic bWV0cmljczp4")).0, 401);
    let (status, _, body) = d.fetch("/metrics", Some(&format!("Bearer {METRICS_TOKEN}")));
    assert_eq!(status, 200);
    assert!(body.contains("canhgac_incidents_total"), "{body}");

    // The API: a token of its own.
    let (status, challenge, body) = d.fetch("/api/v1/incidents", None);
    assert_eq!(status, 401, "{body}");
    assert!(challenge.is_some_and(|c| c.starts_with("Bearer")));
    assert!(body.contains("\"error\""), "{body}");
    let (status, v) = d.api_with("/api/v1/incidents", "wrong-token-0123456789");
    assert_eq!(status, 401);
    assert_eq!(error_of(&v), "wrong token");
    assert_eq!(d.api_with("/api/v1/rules", METRICS_TOKEN).0, 401);
    // Authentication comes before parameters.
    assert_eq!(d.fetch("/api/v1/incidents?limit=0", None).0, 401);

    // Seven bruteforce incidents; an eighth address stays below the threshold.
    let attackers: Vec<String> = (1..=7).map(|i| format!("203.0.113.{i}")).collect();
    d.append(&attack_lines(&attackers, 5));
    d.append(&attack_lines(&["198.51.100.99".to_owned()], 4));
    let mut all = Value::Null;
    d.wait_for("7 incidents through the API", || {
        let (status, v) = d.api("/api/v1/incidents?rule=ssh-bruteforce&limit=1000");
        assert_eq!(status, 200, "{v}");
        all = v;
        all["incidents"].as_array().map_or(0, Vec::len) == 7
    });
    assert!(all["next"].is_null());
    let first = &all["incidents"][0];
    assert_eq!(first["rule"], "ssh-bruteforce");
    assert_eq!(first["title"], "SSH brute force");
    assert_eq!(first["category"], "bruteforce");
    assert!(first["uid"]
        .as_str()
        .is_some_and(|u| u.starts_with("test-http-")));
    let keys: HashSet<&str> = all["incidents"]
        .as_array()
        .expect("array")
        .iter()
        .map(|i| i["key"].as_str().expect("key"))
        .collect();
    let want: HashSet<&str> = attackers.iter().map(String::as_str).collect();
    assert_eq!(keys, want);

    // Every incident, any rule, in one page, then in pages of three.
    let (status, everything) = d.api("/api/v1/incidents?limit=1000");
    assert_eq!(status, 200);
    let everything = uids(&everything);
    assert!(everything.len() >= 7);
    let mut paged = Vec::new();
    let mut path = "/api/v1/incidents?limit=3".to_owned();
    let mut pages = 0;
    loop {
        let (status, page) = d.api(&path);
        assert_eq!(status, 200, "{page}");
        let got = uids(&page);
        assert!(got.len() <= 3);
        paged.extend(got);
        pages += 1;
        match page["next"].as_str() {
            Some(next) => {
                assert_eq!(page["incidents"].as_array().map(Vec::len), Some(3));
                path = format!("/api/v1/incidents?limit=3&after={next}");
            }
            None => break,
        }
        assert!(pages < 100, "pagination does not end");
    }
    assert_eq!(paged, everything, "pages repeat or skip");
    assert_eq!(pages, everything.len().div_ceil(3));

    // An incident recorded while clients page, whose first event is two
    // days old: a client paging in recording order gets it on a later page;
    // one paging by first event has passed its place and does not.
    let next_of = |path: &str| -> String {
        let (status, page) = d.api(path);
        assert_eq!(status, 200, "{page}");
        page["next"].as_str().expect("a next page").to_owned()
    };
    let by_first_seen = next_of("/api/v1/incidents?limit=2");
    let by_recording = next_of("/api/v1/incidents?limit=2&order=recorded");
    let late = "192.0.2.200".to_owned();
    d.append(&attack_lines_at(
        std::slice::from_ref(&late),
        5,
        Timestamp::now() - SignedDuration::from_hours(48),
    ));
    d.wait_for("the late incident", || {
        uids(&d.api("/api/v1/incidents?limit=1000").1).len() == everything.len() + 1
    });
    let rest = |order: &str, mut after: String| -> Vec<Value> {
        let mut out = Vec::new();
        loop {
            let (status, page) = d.api(&format!(
                "/api/v1/incidents?limit=2&order={order}&after={after}"
            ));
            assert_eq!(status, 200, "{page}");
            out.extend(page["incidents"].as_array().expect("array").iter().cloned());
            match page["next"].as_str() {
                Some(next) => after = next.to_owned(),
                None => return out,
            }
        }
    };
    let recorded = rest("recorded", by_recording);
    assert_eq!(recorded.len(), everything.len() - 2 + 1);
    assert_eq!(
        recorded.last().map(|i| &i["key"]),
        Some(&Value::from(late.clone()))
    );
    let chronological = rest("first_seen", by_first_seen);
    assert_eq!(chronological.len(), everything.len() - 2);
    assert!(chronological.iter().all(|i| i["key"] != late.as_str()));
    // The default page size.
    assert_eq!(
        uids(&d.api("/api/v1/incidents").1).len(),
        (everything.len() + 1).min(100)
    );

    // Filters.
    let (_, v) = d.api("/api/v1/incidents?src_ip=203.0.113.3");
    let found = v["incidents"].as_array().expect("array");
    assert!(!found.is_empty());
    assert!(found.iter().all(|i| i["fields"]["src_ip"] == "203.0.113.3"));
    assert!(found.iter().any(|i| i["key"] == "203.0.113.3"));
    assert_eq!(
        uids(&d.api("/api/v1/incidents?category=web-attack").1).len(),
        0
    );
    let (_, v) = d.api("/api/v1/incidents?category=bruteforce&severity=medium&limit=1000");
    assert!(uids(&v).len() >= 7);
    assert_eq!(
        uids(
            &d.api("/api/v1/incidents?severity=critical&rule=ssh-bruteforce")
                .1
        )
        .len(),
        0
    );
    let hour_ago = Timestamp::now() - 1.hour();
    let in_an_hour = Timestamp::now() + 1.hour();
    let (_, v) = d.api(&format!(
        "/api/v1/incidents?rule=ssh-bruteforce&since={hour_ago}&until={in_an_hour}"
    ));
    assert_eq!(uids(&v).len(), 7);
    assert_eq!(
        uids(&d.api(&format!("/api/v1/incidents?since={in_an_hour}")).1).len(),
        0
    );
    // An offset, its '+' escaped.
    let local = in_an_hour
        .to_zoned(TimeZone::fixed(jiff::tz::offset(7)))
        .strftime("%Y-%m-%dT%H:%M:%S%:z")
        .to_string()
        .replace('+', "%2B");
    assert_eq!(
        uids(
            &d.api(&format!(
                "/api/v1/incidents?until={local}&rule=ssh-bruteforce"
            ))
            .1
        )
        .len(),
        8,
        "the seven of the last hour and the late one"
    );

    // Bad parameters: 400, naming the parameter.
    for (query, name) in [
        ("since=yesterday", "since"),
        // An unescaped '+' arrives as a space: the message says so.
        ("until=2020-10-31T23:30:00+07:00", "%2B"),
        ("limit=0", "limit"),
        ("limit=1001", "limit"),
        ("limit=ten", "limit"),
        ("category=hacking", "category"),
        ("severity=urgent", "severity"),
        ("src_ip=attacker", "src_ip"),
        ("after=no-such-incident", "after"),
        ("colour=red", "colour"),
        ("limit=5&limit=6", "limit"),
        ("order=newest", "order"),
    ] {
        let (status, v) = d.api(&format!("/api/v1/incidents?{query}"));
        assert_eq!(status, 400, "{query}: {v}");
        assert!(error_of(&v).contains(name), "{query}: {v}");
    }

    // One incident.
    let uid = first["uid"].as_str().expect("uid");
    let (status, one) = d.api(&format!("/api/v1/incidents/{uid}"));
    assert_eq!(status, 200, "{one}");
    assert_eq!(one["uid"], uid);
    assert_eq!(one["events"], 5);
    assert!(
        one["sample"]
            .as_str()
            .is_some_and(|s| s.contains("Failed password for admin from 203.0.113.")),
        "{one}"
    );
    assert_eq!(one["fields"]["user"], "admin");
    assert_eq!(one["fields"]["src_ip"], one["key"]);
    assert!(one["first_seen"].as_str().is_some_and(|t| t.ends_with('Z')));
    let (status, v) = d.api("/api/v1/incidents/test-http-00000000-0000-0000-0000-000000000000");
    assert_eq!(status, 404);
    assert!(error_of(&v).contains("no incident"), "{v}");

    // The summary of this month counts what the list holds.
    let mut by_category: BTreeMap<String, u64> = BTreeMap::new();
    let (_, listed) = d.api("/api/v1/incidents?limit=1000");
    for i in listed["incidents"].as_array().expect("array") {
        *by_category
            .entry(i["category"].as_str().expect("category").to_owned())
            .or_default() += 1;
    }
    let month = Timestamp::now()
        .to_zoned(TimeZone::UTC)
        .strftime("%Y-%m")
        .to_string();
    for path in [
        format!("/api/v1/summary?month={month}"),
        "/api/v1/summary".to_owned(),
    ] {
        let (status, s) = d.api(&path);
        assert_eq!(status, 200, "{s}");
        assert_eq!(s["month"], month.as_str());
        assert_eq!(s["time_zone"], "UTC");
        assert_eq!(s["complete"], false);
        let categories = s["categories"].as_array().expect("categories");
        assert_eq!(categories.len(), 9);
        for c in categories {
            let id = c["category"].as_str().expect("id");
            let want = by_category.get(id).copied().unwrap_or(0);
            assert_eq!(c["this_month"], want, "{id}: {s}");
            assert_eq!(c["year_to_date"], want, "{id}: {s}");
            assert!(c["change"]["year_to_date"].is_null());
        }
        let total: u64 = by_category.values().sum();
        assert_eq!(s["total"]["this_month"], total);
        assert!(s["total"]["this_month"].as_u64() >= Some(7));
    }
    for (query, status) in [
        ("month=2020-13", 400),
        ("month=9998-12", 400),
        ("mois=2020-10", 400),
    ] {
        let (got, v) = d.api(&format!("/api/v1/summary?{query}"));
        assert_eq!(got, status, "{query}: {v}");
        assert!(
            error_of(&v).contains(&query[..query.find('=').unwrap_or(0)]),
            "{v}"
        );
    }
    let (status, old) = d.api("/api/v1/summary?month=2020-10");
    assert_eq!(status, 200);
    assert_eq!(old["complete"], true);
    assert_eq!(old["total"]["this_month"], 0);

    // Rules.
    let (status, rules) = d.api("/api/v1/rules");
    assert_eq!(status, 200);
    let digest = rules["digest"].as_str().expect("digest");
    assert!(!digest.is_empty());
    let list = rules["rules"].as_array().expect("rules");
    assert_eq!(rules["count"].as_u64(), Some(list.len() as u64));
    let listed = |id: &str| {
        list.iter()
            .find(|r| r["id"] == id)
            .unwrap_or_else(|| panic!("{id} not listed"))
    };
    let ssh = listed("ssh-bruteforce");
    assert_eq!(ssh["category"], "bruteforce");
    assert_eq!(ssh["severity"], "medium");
    assert_eq!(ssh["kind"], "group");
    assert_eq!(
        ssh["types"],
        serde_json::json!([]),
        "a group reads no lines"
    );
    assert_eq!(ssh["title"], "SSH brute force");
    let member = listed("ssh-failed-password");
    assert_eq!(member["kind"], "member");
    assert_eq!(member["group"], "ssh-bruteforce");
    assert_eq!(member["category"], "bruteforce", "the group's");
    assert_eq!(member["types"], serde_json::json!(["syslog"]));

    // Unknown paths and methods under /api: JSON.
    let (status, v) = d.api("/api/v1/nothing");
    assert_eq!(status, 404);
    assert!(error_of(&v).contains("no such API endpoint"));
    assert_eq!(d.api("/api/v2/incidents").0, 404);
    let mut response = d
        .agent
        .post(format!("{}/api/v1/incidents", d.base))
        .header("Authorization", format!("Bearer {API_TOKEN}"))
        .send("")
        .expect("POST answered");
    assert_eq!(response.status().as_u16(), 405);
    let body = response.body_mut().read_to_string().expect("body");
    assert!(body.contains("use GET"), "{body}");

    // Refusals are counted.
    let (_, _, body) = d.fetch("/metrics", Some(&format!("Bearer {METRICS_TOKEN}")));
    for endpoint in ["metrics", "api"] {
        let line = body
            .lines()
            .find(|l| {
                l.starts_with(&format!(
                    "canhgac_http_auth_failures_total{{endpoint=\"{endpoint}\"}}"
                ))
            })
            .unwrap_or_else(|| panic!("no failures line for {endpoint}"));
        let n: f64 = line
            .rsplit(' ')
            .next()
            .and_then(|n| n.parse().ok())
            .expect("a number");
        assert!(n >= 3.0, "{line}");
    }

    // Token rotation: SIGHUP reads the token file again.
    d.site
        .write_private("api.tokens", format!("{API_TOKEN_2}\n"));
    d.d.signal("HUP");
    d.wait_for("the rotated token", || {
        d.api_with("/api/v1/rules", API_TOKEN_2).0 == 200
    });
    assert_eq!(d.api_with("/api/v1/rules", API_TOKEN).0, 401);
}

#[test]
fn api_is_off_without_a_token_file() {
    let d = start("", &[], None);
    let (status, _, body) = d.fetch("/api/v1/incidents", Some(&format!("Bearer {API_TOKEN}")));
    assert_eq!(status, 404, "{body}");
    let v: Value = serde_json::from_str(&body).expect("JSON");
    assert!(error_of(&v).contains("the API is off"), "{v}");
    assert_eq!(d.fetch("/api/v1/summary", None).0, 404);
    // /metrics open by default, on loopback.
    let (status, _, body) = d.fetch("/metrics", None);
    assert_eq!(status, 200);
    assert!(body.contains("canhgac_build_info"));
    let log = d.log();
    assert!(
        log.contains("serving /metrics (auth: none)") && log.contains("off (no api_token_file)"),
        "{log}"
    );
    assert!(!log.contains("beyond loopback"), "{log}");
}

#[test]
fn https_with_basic_auth() {
    let cert = rcgen::generate_simple_self_signed(vec!["127.0.0.1".into(), "localhost".into()])
        .expect("certificate");
    let cert_pem = cert.cert.pem();
    let key_pem = cert.key_pair.serialize_pem();
    let der = cert.cert.der().to_vec();
    let hash = bcrypt::hash("s3cret pass", 6).expect("bcrypt");
    let http = format!(
        "tls_cert = \"cert.pem\"\ntls_key = \"key.pem\"\nmetrics_auth = \"basic\"\nmetrics_user = \"prometheus\"\nmetrics_password_hash = \"{hash}\"\n"
    );
    let d = start(
        &http,
        &[
            ("cert.pem", cert_pem.as_bytes()),
            ("key.pem", key_pem.as_bytes()),
        ],
        Some(&der),
    );
    let basic = |user: &str, password: &str| {
        use base64::Engine as _;
        format!(
            "Basic {}",
            base64::engine::general_purpose::STANDARD.encode(format!("{user}:{password}"))
        )
    };
    assert_eq!(d.fetch("/healthz", None).0, 200);
    let (status, challenge, _) = d.fetch("/metrics", None);
    assert_eq!(status, 401);
    assert!(
        challenge.is_some_and(|c| c.starts_with("Basic realm=\"canhgac\"")),
        "basic challenge"
    );
    assert_eq!(
        d.fetch("/metrics", Some(&basic("prometheus", "wrong"))).0,
        401
    );
    assert_eq!(
        d.fetch("/metrics", Some(&basic("root", "s3cret pass"))).0,
        401
    );
    assert_eq!(
        d.fetch("/metrics", Some("Bearer s3cret-pass-0123456789")).0,
        401
    );
    for _ in 0..2 {
        let (status, _, body) = d.fetch("/metrics", Some(&basic("prometheus", "s3cret pass")));
        assert_eq!(status, 200);
        assert!(body.contains("canhgac_incidents_total"));
    }
    // The API is off here: no token file.
    assert_eq!(d.fetch("/api/v1/rules", None).0, 404);

    // A client that does not trust the certificate gets nowhere, and
    // neither does plain HTTP.
    let stranger = agent(None);
    assert!(stranger.get(format!("{}/healthz", d.base)).call().is_err());
    let plain = d.base.replace("https://", "http://");
    let answered = stranger
        .get(format!("{plain}/healthz"))
        .call()
        .is_ok_and(|r| r.status().as_u16() == 200);
    assert!(!answered, "plain HTTP answered on the TLS port");
    let log = d.log();
    assert!(log.contains("auth: basic auth"), "{log}");
    assert!(log.contains("on https://127.0.0.1:"), "{log}");
}

#[test]
fn check_reports_http_problems_positioned() {
    let site = Site::new();
    let config = site.config();
    let tokens = site.write("short.tokens", "# c\ntoo-short\n");
    site.write_config(
        r#"agency = "test-http"
state_dir = "state"

[http]
tls_cert = "missing.pem"
tls_key = "missing-key.pem"
api_token_file = "short.tokens"

[[input]]
name = "auth"
path = "auth.log"
type = "syslog"
"#,
    );
    let out = cli::check(&config);
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    let at = |p: &Path, line: u32, col: u32| format!("{}:{line}:{col}: ", p.display());
    assert!(
        stderr.contains(&format!("{}TLS: cannot read", at(&config, 5, 12))),
        "{stderr}"
    );
    assert!(
        stderr.contains(&format!("{}token too short", at(&tokens, 2, 1))),
        "{stderr}"
    );
    // Written with the usual umask: readable by every local account.
    assert!(
        stderr.contains(&format!(
            "{}api_token_file: {} holds a secret and is readable by others (mode 0644): run `chmod 600 {}`",
            at(&config, 7, 18),
            tokens.display(),
            tokens.display()
        )),
        "{stderr}"
    );

    // Fixed, `check` says what will be served.
    let cert = rcgen::generate_simple_self_signed(vec!["localhost".into()]).expect("cert");
    site.write("missing.pem", cert.cert.pem());
    site.write_private("missing-key.pem", cert.key_pair.serialize_pem());
    site.write_private("short.tokens", format!("{API_TOKEN}\n"));
    let stdout = cli::check_passes(&config);
    assert!(
        stdout.contains("ok: http https://127.0.0.1:9717: /metrics open; API on, 1 token"),
        "{stdout}"
    );
}

/// The journal's side of its native protocol: one datagram an entry,
/// `KEY=value` lines (or `KEY\n`, a 64-bit little-endian length, the value).
fn journal_fields(datagram: &[u8]) -> BTreeMap<String, String> {
    let mut fields = BTreeMap::new();
    let mut rest = datagram;
    while let Some(end) = rest.iter().position(|&b| b == b'\n' || b == b'=') {
        let key = String::from_utf8_lossy(&rest[..end]).into_owned();
        let value;
        if rest[end] == b'=' {
            let stop = rest[end..]
                .iter()
                .position(|&b| b == b'\n')
                .expect("line end")
                + end;
            value = String::from_utf8_lossy(&rest[end + 1..stop]).into_owned();
            rest = &rest[stop + 1..];
        } else {
            let len_at = end + 1;
            let len = u64::from_le_bytes(rest[len_at..len_at + 8].try_into().expect("length"));
            let start = len_at + 8;
            let stop = start + len as usize;
            value = String::from_utf8_lossy(&rest[start..stop]).into_owned();
            rest = &rest[stop + 1..];
        }
        fields.insert(key, value);
    }
    fields
}

#[test]
fn api_requests_and_refused_credentials_are_audited_in_the_journal_never_the_token() {
    use std::os::unix::net::UnixDatagram;

    let dir = tempfile::tempdir().expect("tempdir");
    let socket_path = dir.path().join("journal.socket");
    let journal = UnixDatagram::bind(&socket_path).expect("journal socket");
    journal
        .set_read_timeout(Some(std::time::Duration::from_secs(10)))
        .expect("timeout");
    let d = start_with_tokens(
        &format!("# analysts of the agency\n{API_TOKEN}\n"),
        |launch| launch.env("CANHGAC_JOURNAL_SOCKET", &socket_path),
    );
    let next = || {
        let mut buf = vec![0u8; 65536];
        let n = journal.recv(&mut buf).expect("an audit entry");
        journal_fields(&buf[..n])
    };

    let (status, _) = d.api("/api/v1/incidents?limit=1");
    assert_eq!(status, 200);
    let e = next();
    assert_eq!(e["CANHGAC_AUDIT"], "1");
    assert_eq!(e["CANHGAC_ENDPOINT"], "api");
    assert_eq!(e["CANHGAC_TOKEN"], "analysts of the agency");
    assert!(e["CANHGAC_PEER"].starts_with("127.0.0.1:"), "{e:?}");
    assert_eq!(e["CANHGAC_METHOD"], "GET");
    assert_eq!(e["CANHGAC_PATH"], "/api/v1/incidents");
    assert_eq!(e["CANHGAC_STATUS"], "200");
    assert_eq!(e["PRIORITY"], "6");

    let (status, _) = d.api_with("/api/v1/rules", "not-the-token-0123456789");
    assert_eq!(status, 401);
    let e = next();
    assert_eq!(
        (e["CANHGAC_TOKEN"].as_str(), e["CANHGAC_STATUS"].as_str()),
        ("invalid", "401")
    );
    assert_eq!(e["PRIORITY"], "4");
    let (status, _, _) = d.fetch("/metrics", Some("Bearer wrong-metrics-token-000000"));
    assert_eq!(status, 401);
    let e = next();
    assert_eq!(
        (e["CANHGAC_ENDPOINT"].as_str(), e["CANHGAC_TOKEN"].as_str()),
        ("metrics", "invalid")
    );
    // A good scrape is not audited; /healthz never is.
    let (status, _, _) = d.fetch("/metrics", Some(&format!("Bearer {METRICS_TOKEN}")));
    assert_eq!(status, 200);
    d.fetch("/healthz", None);
    let (status, _) = d.api("/api/v1/summary");
    assert_eq!(status, 200);
    assert_eq!(next()["CANHGAC_PATH"], "/api/v1/summary");

    // A flood of refused requests cannot flood the trail: the excess is
    // counted, and the next record says how many went.
    for _ in 0..400 {
        d.get("/api/v1/rules", Some("Bearer flood-0123456789abcdef"))
            .ok();
    }
    let mut written = 0;
    journal
        .set_read_timeout(Some(std::time::Duration::from_millis(500)))
        .expect("timeout");
    let mut buf = vec![0u8; 65536];
    let mut entries = Vec::new();
    while let Ok(n) = journal.recv(&mut buf) {
        written += 1;
        entries.push(journal_fields(&buf[..n]));
    }
    assert!(written < 400, "{written} records for 400 requests");
    let (_, _, page) = d.fetch("/metrics", Some(&format!("Bearer {METRICS_TOKEN}")));
    let dropped = common::metrics::value(&page, "canhgac_audit_records_dropped_total")
        .expect("the dropped records' counter");
    assert!(
        dropped > 0.0 && written as f64 + dropped >= 400.0,
        "{written} + {dropped}"
    );
    std::thread::sleep(std::time::Duration::from_millis(200));
    let (status, _) = d.api("/api/v1/rules");
    assert_eq!(status, 200);
    journal
        .set_read_timeout(Some(std::time::Duration::from_secs(10)))
        .expect("timeout");
    let e = next();
    assert_eq!(e["CANHGAC_TOKEN"], "analysts of the agency");
    assert_ne!(e["CANHGAC_DROPPED_BEFORE"], "0", "{e:?}");

    // Never the token itself, anywhere in the trail.
    for e in entries {
        for value in e.values() {
            assert!(!value.contains("flood-0123"), "{e:?}");
            assert!(!value.contains(API_TOKEN), "{e:?}");
        }
    }
}
