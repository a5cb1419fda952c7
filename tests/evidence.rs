//! How evidence becomes incidents, through the built binary as a sysadmin
//! meets it: rule files with groups, evidence kinds and `follows`, a config
//! that replaces or disables shipped rules and trusts a reverse proxy, and
//! log variants (RFC 5424 files, virtual hosts, access lines through
//! syslog) that must not read as silence.

mod common;

use std::ffi::OsStr;
use std::path::{Path, PathBuf};

use serde_json::Value;

use common::cli::{self, assert_cmd as canhgac};
use common::site::Site;

/// `scan --format json` with only the rules in `rules` (a file or directory).
fn scan_with(rules: &Path, files: &[&Path], extra: &[&str]) -> (Vec<Value>, String) {
    let mut args = vec![
        OsStr::new("--no-default-rules"),
        OsStr::new("--rules"),
        rules.as_os_str(),
    ];
    args.extend(extra.iter().map(OsStr::new));
    args.extend(files.iter().map(|f| f.as_os_str()));
    cli::scan(args)
}

const SSH_GROUP: &str = r#"groups:
  - id: ssh-bf
    title: SSH brute force
    description: d
    category: bruteforce
    severity: medium
    threshold: { count: 5, window: 10m }
    cooldown: 30m
    tags: [T1110]
rules:
  - id: ssh-pw
    title: t
    description: d
    group: ssh-bf
    evidence: password
    types: [syslog]
    patterns: ['sshd\[(?P<pid>\d+)\]: (?:message repeated (?P<attempts>\d+) times: \[ )?Failed password for (?:invalid user )?.* from (?P<src_ip>[0-9A-Fa-f:.]+) port \d+ ssh2\]?$']
  - id: ssh-pam
    title: t
    description: d
    group: ssh-bf
    evidence: pam
    types: [syslog]
    patterns: ['sshd\[(?P<pid>\d+)\]: pam_unix\(sshd:auth\): authentication failure; .* rhost=(?P<src_ip>\S+)(?:  user=\S+)?$']
  - id: ssh-invalid
    title: t
    description: d
    group: ssh-bf
    evidence: user
    types: [syslog]
    patterns: ['sshd\[(?P<pid>\d+)\]: Invalid user .* from (?P<src_ip>[0-9A-Fa-f:.]+) port \d+$']
  - id: ssh-after
    title: Login after brute force
    description: d
    category: policy-violation
    severity: high
    follows: ssh-bf
    types: [syslog]
    patterns: ['sshd\[\d+\]: Accepted password for \S+ from (?P<src_ip>[0-9A-Fa-f:.]+) port \d+ ssh2$']
"#;

/// The incidents of `log`, sshd's lines of 2020, under [`SSH_GROUP`].
fn scan_ssh_group(log: &str) -> Vec<Value> {
    let d = Site::new();
    let rules = d.write("ssh.yaml", SSH_GROUP);
    let log = d.write("auth.log", log);
    scan_with(&rules, &[&log], &["--year", "2020"]).0
}

/// A config in `d`: its lines `head` (top-level keys) and `tail` (tables),
/// with one input so that it is a valid daemon config.
fn write_config(d: &Site, name: &str, head: &str, tail: &str) -> PathBuf {
    let log = d.path("input.log");
    d.write(
        name,
        format!(
            "agency = \"test-agency\"\nstate_dir = \"{}\"\n{head}\n{tail}\n[[input]]\nname = \"auth\"\npath = \"{}\"\ntype = \"syslog\"\n",
            d.path("state").display(),
            log.display()
        ),
    )
}

/// A config in `d` that trusts the reverse proxy `proxy` and loads no
/// shipped rules, for `scan --config`.
fn trusting_config(d: &Site, proxy: &str) -> String {
    let config = write_config(
        d,
        "c.toml",
        &format!("trusted_proxies = [\"{proxy}\"]"),
        "[rules]\nbuiltin = false\n",
    );
    config.to_str().expect("utf-8").to_owned()
}

fn by_rule<'a>(incidents: &'a [Value], rule: &str) -> Vec<&'a Value> {
    incidents.iter().filter(|i| i["rule"] == rule).collect()
}

#[test]
fn failures_of_every_kind_from_one_attacker_reach_one_threshold() {
    // Nine lines in eleven seconds, four kinds, four processes: five
    // attempts (a PAM line and its sshd line are one), which no kind
    // reaches alone.
    let incidents = scan_ssh_group(
        "Oct 31 23:30:00 web01 sshd[101]: Invalid user oracle from 203.0.113.5 port 40001\n\
         Oct 31 23:30:01 web01 sshd[101]: pam_unix(sshd:auth): authentication failure; logname= uid=0 euid=0 tty=ssh ruser= rhost=203.0.113.5\n\
         Oct 31 23:30:02 web01 sshd[101]: Failed password for invalid user oracle from 203.0.113.5 port 40001 ssh2\n\
         Oct 31 23:30:04 web01 sshd[102]: pam_unix(sshd:auth): authentication failure; logname= uid=0 euid=0 tty=ssh ruser= rhost=203.0.113.5  user=root\n\
         Oct 31 23:30:05 web01 sshd[102]: Failed password for root from 203.0.113.5 port 40002 ssh2\n\
         Oct 31 23:30:07 web01 sshd[103]: Failed password for root from 203.0.113.5 port 40003 ssh2\n\
         Oct 31 23:30:08 web01 sshd[104]: Invalid user test from 203.0.113.5 port 40004\n\
         Oct 31 23:30:10 web01 sshd[105]: pam_unix(sshd:auth): authentication failure; logname= uid=0 euid=0 tty=ssh ruser= rhost=203.0.113.5  user=root\n\
         Oct 31 23:30:11 web01 sshd[105]: Failed password for root from 203.0.113.5 port 40005 ssh2\n",
    );
    let bf = by_rule(&incidents, "ssh-bf");
    assert_eq!(bf.len(), 1, "{incidents:#?}");
    assert_eq!(bf[0]["key"], "203.0.113.5");
    assert_eq!(bf[0]["category"], "bruteforce");
    assert_eq!(bf[0]["events"], 5, "attempts, not lines");

    // A legitimate user mistyping twice (each try a PAM line and an sshd
    // line) stays below the threshold: four lines, two attempts.
    let incidents = scan_ssh_group(
        "Oct 31 08:00:00 web01 sshd[201]: pam_unix(sshd:auth): authentication failure; logname= uid=0 euid=0 tty=ssh ruser= rhost=192.0.2.10  user=alice\n\
         Oct 31 08:00:02 web01 sshd[201]: Failed password for alice from 192.0.2.10 port 50000 ssh2\n\
         Oct 31 08:00:05 web01 sshd[201]: pam_unix(sshd:auth): authentication failure; logname= uid=0 euid=0 tty=ssh ruser= rhost=192.0.2.10  user=alice\n\
         Oct 31 08:00:07 web01 sshd[201]: Failed password for alice from 192.0.2.10 port 50000 ssh2\n\
         Oct 31 08:00:09 web01 sshd[201]: Accepted password for alice from 192.0.2.10 port 50000 ssh2\n",
    );
    assert!(incidents.is_empty(), "{incidents:#?}");
}

#[test]
fn repeated_lines_count_their_attempts_and_a_login_after_the_attack_is_raised() {
    let incidents = scan_ssh_group(
        "Oct 31 23:30:00 web01 sshd[301]: Failed password for root from 198.51.100.7 port 41000 ssh2\n\
         Oct 31 23:30:06 web01 sshd[301]: message repeated 5 times: [ Failed password for root from 198.51.100.7 port 41000 ssh2]\n\
         Oct 31 23:31:00 web01 sshd[302]: Accepted password for root from 198.51.100.7 port 41002 ssh2\n\
         Oct 31 23:31:30 web01 sshd[303]: Accepted password for bob from 192.0.2.44 port 41003 ssh2\n",
    );
    let bf = by_rule(&incidents, "ssh-bf");
    assert_eq!(bf.len(), 1);
    assert_eq!(bf[0]["events"], 6);
    let after = by_rule(&incidents, "ssh-after");
    assert_eq!(
        after.len(),
        1,
        "only the login from the attacker: {incidents:#?}"
    );
    assert_eq!(after[0]["key"], "198.51.100.7");
    assert_eq!(after[0]["severity"], "high");
    let fields = &after[0]["fields"];
    assert_eq!(fields["follows"], "ssh-bf", "{fields}");
    assert_eq!(fields["follows_since"], "2020-10-31T23:30:00Z", "{fields}");
}

#[test]
fn the_blamed_client_is_an_address_or_a_named_host_never_text() {
    let d = Site::new();
    let rules = d.write(
        "pam.yaml",
        r#"rules:
  - id: pam-fail
    title: t
    description: d
    category: bruteforce
    severity: medium
    types: [syslog]
    patterns: ['pam_unix\(\w+:auth\): authentication failure; .* rhost=(?P<src_ip>.*?)(?:  user=\S+)?$']
    threshold: { count: 2, window: 10m }
"#,
    );
    let line = |rhost: &str, s: u32| {
        format!("Oct 31 23:30:0{s} web01 login[1]: pam_unix(login:auth): authentication failure; logname= uid=0 euid=0 tty=x ruser= rhost={rhost}  user=root\n")
    };
    let text = [
        line("::ffff:203.0.113.9", 0),
        line("203.0.113.9", 1),
        line("bad.example.net", 2),
        line("bad.example.net", 3),
        line("<script>alert(1)</script>", 4),
        line("<script>alert(1)</script>", 5),
        line("\x1b[31mred", 6),
        line("\x1b[31mred", 7),
    ]
    .concat();
    let log = d.write("auth.log", &text);
    let (incidents, _) = scan_with(&rules, &[&log], &["--year", "2020"]);
    let keys: Vec<&str> = incidents.iter().filter_map(|i| i["key"].as_str()).collect();
    assert_eq!(keys, ["203.0.113.9", "bad.example.net"], "{incidents:#?}");
    let named = &incidents[1]["fields"];
    assert_eq!(named["src_host"], "bad.example.net", "{named}");
    assert!(named.get("src_ip").is_none(), "{named}");
}

#[test]
fn a_copied_shipped_rule_replaces_it_and_disable_rules_takes_rules_out() {
    let d = Site::new();
    // What a sysadmin does: copy every shipped file into rules.d, edit one.
    let shipped = common::manifest("rules");
    let local = d.path("rules.d");
    std::fs::create_dir_all(&local).expect("dir");
    for entry in std::fs::read_dir(&shipped).expect("rules dir") {
        let path = entry.expect("entry").path();
        if path.extension().is_some_and(|e| e == "yaml") {
            let to = local.join(path.file_name().expect("name"));
            std::fs::copy(&path, to).expect("copy");
        }
    }
    let config = write_config(
        &d,
        "canhgac.toml",
        "disable_rules = [\"web-admin-panel-probe\"]",
        &format!("[rules]\ndirs = [\"{}\"]\n", local.display()),
    );
    canhgac()
        .args(["check", "--config"])
        .arg(&config)
        .assert()
        .success();
    let out = canhgac()
        .args(["rules", "list", "--config"])
        .arg(&config)
        .output()
        .expect("runs");
    assert!(out.status.success());
    let list = String::from_utf8_lossy(&out.stdout);
    assert!(
        !list.contains("<builtin>"),
        "every shipped rule replaced:\n{list}"
    );
    assert!(list.contains("rules.d/openssh.yaml"), "{list}");
    assert!(!list.contains("web-admin-panel-probe"), "disabled:\n{list}");
    // The real access log's only incidents came from the disabled rule.
    let incidents = cli::scan_with_config(&config, &[&common::corpus("apache_access_10k.log")]);
    assert!(
        incidents
            .iter()
            .all(|i| i["rule"] != "web-admin-panel-probe"),
        "{incidents:#?}"
    );
    // An id that names nothing is refused with its place.
    let typo = write_config(&d, "typo.toml", "disable_rules = [\"no-such-rule\"]", "");
    let out = cli::check(&typo);
    assert!(!out.status.success());
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("disable_rules names `no-such-rule`"),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

const PROBE: &str = r#"rules:
  - id: env-probe
    title: t
    description: d
    category: recon
    severity: low
    types: [nginx, apache]
    patterns: ['^(?P<src_ip>[0-9A-Fa-f:.]+) \S+ \S+ \[[^\]]*\] "GET /\.env HTTP/[0-9.]+" (?P<status>[0-9]{3})']
"#;

/// An access-log line of `client` looking for `/.env`, as [`PROBE`]
/// matches it, up to the user agent.
fn env_probe(client: &str) -> String {
    format!(
        "{client} - - [31/Oct/2020:23:30:00 +0700] \"GET /.env HTTP/1.1\" 404 0 \"-\" \"curl/8\""
    )
}

#[test]
fn behind_a_trusted_proxy_the_client_comes_from_x_forwarded_for() {
    let d = Site::new();
    let rules = d.write("probe.yaml", PROBE);
    let line = |client: &str, xff: &str| format!("{} \"{xff}\"\n", env_probe(client));
    let log = d.write(
        "access.log",
        [
            line("127.0.0.1", "203.0.113.5"),
            line("127.0.0.1", "6.6.6.6, 198.51.100.8"),
            line("192.0.2.77", "1.1.1.1"),
        ]
        .concat(),
    );
    // Without trusted proxies the proxy is the client, and loopback is not
    // skipped: a probe through a local proxy is still seen.
    let (incidents, _) = scan_with(&rules, &[&log], &[]);
    let keys: Vec<&str> = incidents.iter().filter_map(|i| i["key"].as_str()).collect();
    assert_eq!(keys, ["127.0.0.1", "192.0.2.77"]);
    let trusting = trusting_config(&d, "127.0.0.0/8");
    let (incidents, _) = scan_with(&rules, &[&log], &["--config", &trusting]);
    let mut keys: Vec<&str> = incidents.iter().filter_map(|i| i["key"].as_str()).collect();
    keys.sort_unstable();
    assert_eq!(
        keys,
        ["192.0.2.77", "198.51.100.8", "203.0.113.5"],
        "the rightmost untrusted hop; an untrusted client's header is ignored"
    );
    let via = incidents
        .iter()
        .find(|i| i["key"] == "203.0.113.5")
        .expect("found");
    assert_eq!(via["fields"]["proxy"], "127.0.0.1");
    let bad = write_config(&d, "bad.toml", "trusted_proxies = [\"localhost\"]", "");
    let out = cli::check(&bad);
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("bad trusted proxy"));
}

#[test]
fn log_variants_are_read_as_what_they_are_and_wrong_types_are_said() {
    let d = Site::new();
    let rules = d.write("rules/probe.yaml", PROBE);
    d.write(
        "rules/ssh.yaml",
        r#"rules:
  - id: ssh-pw
    title: t
    description: d
    category: bruteforce
    severity: medium
    types: [syslog]
    patterns: ['sshd\[\d+\]: Failed password for \S+ from (?P<src_ip>[0-9A-Fa-f:.]+) port']
"#,
    );
    let rules = rules.parent().expect("dir").to_path_buf();
    let access = |prefix: &str, ip: &str| format!("{prefix}{}\n", env_probe(ip));
    let vhost = d.write(
        "vhost.log",
        [
            access("www.example.gov:443 ", "203.0.113.1"),
            access("www.example.gov ", "203.0.113.2"),
        ]
        .concat(),
    );
    let wrapped = d.write(
        "wrapped.log",
        access("Oct 31 23:30:00 web01 nginx: ", "203.0.113.3"),
    );
    let mixed = d.write(
        "syslog.log",
        [
            "Oct 31 23:29:00 web01 sshd[1]: Accepted publickey for a from 192.0.2.1 port 1 ssh2\n"
                .to_string(),
            access("Oct 31 23:30:00 web01 nginx[2]: ", "203.0.113.4"),
        ]
        .concat(),
    );
    let rfc5424 = d.write(
        "5424.log",
        "<38>1 2020-10-31T23:30:00Z web01 sshd 4242 - - Failed password for root from 203.0.113.5 port 22 ssh2\n",
    );
    let mut keys = Vec::new();
    for (file, ty) in [
        (&vhost, "nginx"),
        (&wrapped, "nginx"),
        (&mixed, "syslog"),
        (&rfc5424, "syslog"),
    ] {
        let (incidents, stderr) = scan_with(&rules, &[file], &["--type", ty, "--year", "2020"]);
        assert!(!stderr.contains("warning"), "{stderr}");
        keys.extend(
            incidents
                .iter()
                .filter_map(|i| i["key"].as_str().map(str::to_owned)),
        );
    }
    assert_eq!(
        keys,
        [
            "203.0.113.1",
            "203.0.113.2",
            "203.0.113.3",
            "203.0.113.4",
            "203.0.113.5"
        ]
    );

    // A syslog file configured as an access log: its lines are read as
    // what they are.
    let (incidents, stderr) =
        scan_with(&rules, &[&rfc5424], &["--type", "nginx", "--year", "2020"]);
    assert_eq!(incidents.len(), 1, "{stderr}");
    assert!(!stderr.contains("warning"), "{stderr}");
    // An error log configured as an access log: zero events, and said so.
    let errors = d.write(
        "error.log",
        "2020/10/31 23:30:00 [error] 12#12: *1 open() \"/srv/www/.env\" failed (2: No such file or directory), client: 203.0.113.6\n",
    );
    let (incidents, stderr) = scan_with(&rules, &[&errors], &["--type", "nginx"]);
    assert!(incidents.is_empty());
    let file = errors.display().to_string();
    assert!(
        stderr.contains(&format!("{file}:1:1: not a nginx line")),
        "{stderr}"
    );
    // `check` reads the configured files and says the same.
    let config = d.write(
        "c.toml",
        format!(
            "agency = \"test-agency\"\nstate_dir = \"{}\"\n\n[[input]]\nname = \"web\"\npath = \"{file}\"\ntype = \"nginx\"\n",
            d.path("state").display()
        ),
    );
    let out = cli::check(&config);
    assert!(out.status.success(), "a warning, not an error");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains(&format!("input web: {file}:1:1: not a nginx line")),
        "{stderr}"
    );
}

#[test]
fn a_request_flood_is_one_dos_incident_of_its_source() {
    let d = Site::new();
    let line = |ip: &str, s: u32, xff: &str| {
        format!(
            "{ip} - - [31/Oct/2020:23:{:02}:{:02} +0700] \"GET /search?q={s} HTTP/1.1\" 200 512 \"-\" \"Mozilla/5.0\" \"{xff}\"\n",
            30 + s / 60,
            s % 60
        )
    };
    let mut text = String::new();
    // 400 requests in 20 s from one address, among readers at a page a
    // second; and the same flood through a local reverse proxy.
    for i in 0..400u32 {
        text.push_str(&line("203.0.113.66", i / 20, "-"));
        text.push_str(&line("127.0.0.1", i / 20, "198.51.100.99"));
        if i % 20 == 0 {
            text.push_str(&line("192.0.2.10", i / 20, "-"));
            text.push_str(&line("192.0.2.11", i / 20, "-"));
        }
    }
    let log = d.write("access.log", &text);
    let rules = common::manifest("rules/dos.yaml");
    let (incidents, _) = scan_with(&rules, &[&log], &["--type", "nginx"]);
    let floods: Vec<(&str, u64)> = incidents
        .iter()
        .filter(|i| i["rule"] == "web-request-flood")
        .map(|i| {
            (
                i["key"].as_str().unwrap_or(""),
                i["events"].as_u64().unwrap_or(0),
            )
        })
        .collect();
    // Loopback is a local proxy, not a flooder; the readers are far below.
    // The incident counts requests by the rate: 300 at its crossing (the
    // last 100 of the 400 did not make another 300).
    assert_eq!(floods, [("203.0.113.66", 300)], "{incidents:#?}");
    let dos = &incidents
        .iter()
        .find(|i| i["rule"] == "web-request-flood")
        .expect("one")["category"];
    assert_eq!(dos, "dos");
    // Behind the trusted proxy, its client is the flooder.
    let trusting = trusting_config(&d, "127.0.0.1");
    let (incidents, _) = scan_with(&rules, &[&log], &["--type", "nginx", "--config", &trusting]);
    let mut keys: Vec<&str> = incidents
        .iter()
        .filter(|i| i["rule"] == "web-request-flood")
        .filter_map(|i| i["key"].as_str())
        .collect();
    keys.sort_unstable();
    assert_eq!(keys, ["198.51.100.99", "203.0.113.66"]);
}
