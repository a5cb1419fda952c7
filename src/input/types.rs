//! The input types: the line formats canhgac reads, one row each.
//!
//! A rule names the input types it reads, `scan` recognises a file's type from its first
//! lines, a follower counts the lines that are not of its input's type, and the time of a
//! line is read by one of the time-stamp formats of [`crate::timestamp`]. Keeping a type's
//! name, shape, formats and examples in one row makes adding an input type adding a row
//! (and, if it has a shape of its own, a test in [`super::sniff`]); the unit tests read
//! every example against the rest of its row.

use super::sniff;
use crate::timestamp::{Found, STAMP_FORMATS};

/// One input type: a row of [`ALL`].
pub struct InputType {
    /// The name rules, configs and `--type` use.
    pub name: &'static str,
    /// Whether a line is written as an input of this type reads it.
    pub shape: fn(&[u8]) -> bool,
    pub sniffed: Sniffed,
    /// Rows of [`crate::timestamp::STAMP_FORMATS`] its lines are dated by.
    pub stamps: &'static [&'static str],
    /// Lines of this type, each of which sniffing names as [`InputType::sniffed`] says.
    pub examples: &'static [&'static str],
}

impl InputType {
    /// Whether its lines carry their stamp inside them, where [`TimeParser::read_inside`]
    /// looks: it names a format found there.
    ///
    /// [`TimeParser::read_inside`]: crate::timestamp::TimeParser::read_inside
    pub fn reads_inside(&self) -> bool {
        self.stamps.iter().any(|name| {
            STAMP_FORMATS
                .iter()
                .any(|f| f.name == *name && matches!(f.found, Found::Inside | Found::Keyed))
        })
    }
}

/// How [`sniff::sniff`] names a file of this type.
pub enum Sniffed {
    /// By this type's name when its shape fits; when several fit, the lowest rank wins, so
    /// a narrow shape goes before a broad one that may hold its lines (syslog, whose
    /// messages may be any program's lines, is last).
    Rank(u8),
    /// As another type whose lines look the same.
    As(&'static str),
}

/// Every input type, in the order they are listed to users.
pub const ALL: &[InputType] = &[
    InputType {
        name: "syslog",
        shape: sniff::is_syslog,
        sniffed: Sniffed::Rank(9),
        stamps: &[
            "bsd",
            "bsd-with-year",
            "rfc3339",
            "iso-space",
            "iso-offset-after-space",
        ],
        examples: &[
            "Dec 10 06:55:46 LabSZ sshd[24200]: Invalid user webmaster from 173.234.31.186",
            "<166>Oct 31 2020 23:30:00 fw01 : %ASA-4-106023: Deny tcp src outside:203.0.113.5/4455 dst inside:10.0.0.5/22 by access-group \"outside_in\" [0x0, 0x0]",
            "Jun  9 06:06:20 combo kernel: Linux version",
            "2020-10-31T23:30:00.123456+07:00 host sshd[1]: x",
            "<34>Oct 11 22:14:15 mymachine su: 'su root' failed",
            "<165>1 2003-10-11T22:14:15.003Z mymachine evntslog - ID47 - msg",
        ],
    },
    InputType {
        // nginx writes the combined log format as Apache does, and access-log rules read both.
        name: "nginx",
        shape: sniff::is_access,
        sniffed: Sniffed::As("apache"),
        stamps: &["clf"],
        examples: &[
            r#"192.0.2.7 - - [31/Oct/2020:23:30:00 +0700] "GET /wp-login.php HTTP/1.1" 404 153 "-" "curl/7.68.0""#,
        ],
    },
    InputType {
        name: "apache",
        shape: sniff::is_access,
        sniffed: Sniffed::Rank(8),
        stamps: &["clf"],
        examples: &[
            r#"83.149.9.216 - - [17/May/2015:10:05:03 +0000] "GET / HTTP/1.1" 200 203 "-" "UA""#,
        ],
    },
    InputType {
        name: "nginx-error",
        shape: sniff::is_nginx_error,
        sniffed: Sniffed::Rank(1),
        stamps: &["nginx-error"],
        examples: &["2020/10/31 23:30:00 [error] 123#0: *1 open() failed"],
    },
    InputType {
        name: "apache-error",
        shape: sniff::is_apache_error,
        sniffed: Sniffed::Rank(0),
        stamps: &["apache-error"],
        examples: &[
            "[Sun Dec 04 04:47:44 2005] [error] mod_jk child workerEnv in error state 6",
            "[Wed Oct 11 14:32:52.123456 2000] [core:error] [pid 35708] [client 1.2.3.4:1] AH0",
        ],
    },
    InputType {
        name: "clamav",
        shape: sniff::is_clamav,
        sniffed: Sniffed::Rank(2),
        stamps: &["ctime"],
        examples: &["Sun Dec  4 04:47:44 2005 -> /tmp/eicar.com: Eicar-Signature FOUND"],
    },
    InputType {
        // Suricata's fast.log and Snort's alert_fast file; their syslog alerts are `syslog`.
        name: "suricata",
        shape: sniff::is_ids_fast,
        sniffed: Sniffed::Rank(10),
        stamps: &["ids-fast", "ids-fast-no-year"],
        examples: &[
            "10/31/2020-23:30:00.307554  [**] [1:2200074:1] SURICATA TCPv4 invalid checksum [**] [Classification: (null)] [Priority: 3] {TCP} 192.168.11.11:42336 -> 192.168.12.12:80",
            "10/31/2020-23:30:00.307554  [Drop] [**] [1:2024217:3] ET MALWARE x [**] [Classification: A Network Trojan was detected] [Priority: 1] {TCP} 10.0.0.5:1 -> 203.0.113.9:80",
            "10/31-23:30:00.307554  [**] [1:1000001:1] x [**] [Classification: Web Application Attack] [Priority: 1] {TCP} 198.51.100.7:1 -> 10.0.0.20:80",
        ],
    },
    InputType {
        // Asterisk's own log files; its syslog lines (`asterisk[pid]: NOTICE[...]`) are `syslog`.
        name: "asterisk",
        shape: sniff::is_asterisk,
        sniffed: Sniffed::Rank(11),
        stamps: &["asterisk", "asterisk-no-year"],
        examples: &[
            "[2020-10-31 23:30:00] NOTICE[1638] chan_sip.c: Registration from '<sip:301@example.com>' failed for '203.0.113.5:5060' - Wrong password",
            "[Oct 31 23:30:00] NOTICE[12049]: res_pjsip_session.c:2337 new_invite: Call from 'anonymous' (UDP:203.0.113.5:5060) to extension '900442037690237' rejected because extension not found in context 'default'.",
            "[2020-10-31 23:30:00] SECURITY[1204] res_security_log.c: SecurityEvent=\"InvalidPassword\",EventTV=\"1604161800-500975\",Severity=\"Error\",Service=\"SIP\"",
            "[2020-10-31 23:30:00] NOTICE [22382] manager.c: 203.0.113.5 failed to authenticate as 'admin'",
        ],
    },
    InputType {
        // BIND's query log in a file of its own; through syslog it is `syslog`.
        name: "bind",
        shape: sniff::is_bind,
        sniffed: Sniffed::Rank(6),
        stamps: &["bind"],
        examples: &[
            "31-Oct-2020 23:30:00.123 client @0x7f1b2c0a1b20 192.0.2.10#53214 (evil.example): query: evil.example IN A +E(0) (192.0.2.53)",
        ],
    },
    InputType {
        // Unbound's log in a file of its own; through syslog it is `syslog`.
        name: "unbound",
        shape: sniff::is_unbound,
        sniffed: Sniffed::Rank(7),
        stamps: &["epoch"],
        examples: &["[1604161800] unbound[1234:0] info: 192.0.2.10 evil.example. A IN"],
    },
    InputType {
        name: "vsftpd",
        shape: sniff::is_vsftpd,
        sniffed: Sniffed::Rank(3),
        stamps: &["ctime"],
        examples: &[
            r#"Sat Oct 31 23:30:00 2020 [pid 1234] [admin] FAIL LOGIN: Client "203.0.113.5""#,
            // Some builds write the day unpadded.
            r#"Mon Jun 8 12:08:53 2020 [pid 1234] [admin] FAIL LOGIN: Client "203.0.113.5""#,
        ],
    },
    InputType {
        // The MySQL and MariaDB error log.
        name: "mysql",
        shape: sniff::is_mysql,
        sniffed: Sniffed::Rank(4),
        stamps: &[
            "mysql",
            "mysql-padded-hour",
            "rfc3339",
            "iso-space",
            "iso-space-padded-hour",
        ],
        examples: &[
            "201031  1:45:18 [Warning] Access denied for user 'root'@'203.0.113.5' (using password: YES)",
            "2020-10-31T01:45:18.920566Z 2 [Note] Access denied for user 'root'@'203.0.113.5'",
            "2015-10-07 06:09:42 5907 [Warning] Access denied for user 'root'@'203.0.113.5'",
            "2015-10-07  8:25:38 139845 [Warning] Access denied for user 'root'@'203.0.113.5'",
        ],
    },
    InputType {
        // Roundcube's own logs, stamped as PHP's error log is.
        name: "roundcube",
        shape: sniff::is_roundcube,
        sniffed: Sniffed::Rank(5),
        stamps: &["php"],
        examples: &[
            "[31-Oct-2020 23:30:00 +0200]: IMAP Error: Login failed for admin from 203.0.113.5.",
        ],
    },
    InputType {
        // IIS's W3C extended log (and Exchange's, SharePoint's: they run on IIS), rewritten
        // into the combined format for the access-log rules (see [`super::w3c`]).
        name: "iis",
        shape: sniff::is_iis,
        sniffed: Sniffed::Rank(12),
        stamps: &["iso-space", "clf"],
        // Its directives (`#Fields: ...`) carry no stamp: they are told apart in [`super::w3c`].
        examples: &[
            "2020-10-31 16:30:00 10.0.0.5 GET /default.aspx id=1 443 - 203.0.113.5 Mozilla/5.0+(Windows+NT+10.0) - 200 0 0 15",
            "2020-10-31 16:30:00 203.0.113.5 POST /owa/auth.owa 302",
        ],
    },
    InputType {
        // Applications' own log files (Gitea, Grafana, Keycloak, Vaultwarden, MongoDB, Webmin,
        // FortiGate, ...): any line that carries a dated stamp where such logs write one, at
        // its start, in brackets or under a time key. Sniffed when no narrower type fits.
        name: "app",
        shape: sniff::is_app,
        sniffed: Sniffed::Rank(13),
        stamps: &[
            "rfc3339",
            "iso-space",
            "iso-offset-after-space",
            "nginx-error",
            "asterisk",
            "fortigate",
            "python-http",
            "epoch-key",
        ],
        examples: &[
            "2020/10/31 23:30:00 ...ers/web/auth/auth.go:200:SignInPost() [I] Failed authentication attempt for admin from 203.0.113.5:39522: user does not exist",
            r#"logger=context userId=0 orgId=0 uname=admin t=2020-10-31T23:30:00.366875297+07:00 level=error msg="Invalid username or password" remote_addr=203.0.113.5"#,
            r#"{"t":{"$date":"2020-10-31T23:30:00.903+07:00"},"s":"I","c":"ACCESS","id":20249,"ctx":"conn1","msg":"Authentication failed","attr":{"remote":"203.0.113.5:4071"}}"#,
            "[2020-10-31 23:30:00.219][vaultwarden::api::identity][ERROR] Username or password is incorrect. Try again. IP: 203.0.113.5. Username: admin.",
            "2020-10-31 23:30:00,357 WARN  [org.keycloak.events] (executor-thread-1) type=LOGIN_ERROR, realmId=master, ipAddress=203.0.113.5, error=invalid_user_credentials",
            r#"1604161800.2161960.0 [31/Oct/2020 23:30:00] admin - 203.0.113.5 global miniserv.pl "failed" "-" "wrongpass""#,
            r#"date=2020-10-31 time=23:30:00 devname="fw01" logdesc="SSL VPN login fail" remip=203.0.113.5 user="admin""#,
        ],
    },
];

/// The names of [`ALL`], in its order: what a rule, a configured input or `--type` may name.
pub const INPUT_TYPES: &[&str] = &NAMES;

const NAMES: [&str; ALL.len()] = {
    let mut names = [""; ALL.len()];
    let mut i = 0;
    while i < ALL.len() {
        names[i] = ALL[i].name;
        i += 1;
    }
    names
};

/// Whether inputs of the type called `name` are web servers' access logs, one request a line
/// in the combined format (as written, or as [`super::shape`] rewrites them): the client is
/// the first word, and request-rate rules count their lines.
pub fn is_access_log(name: &str) -> bool {
    matches!(name, "nginx" | "apache" | "iis")
}

/// The input type called `name`, if there is one.
pub fn named(name: &str) -> Option<&'static InputType> {
    ALL.iter().find(|t| t.name == name)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::timestamp::stamp_format_of;

    #[test]
    fn every_example_is_sniffed_recognised_and_dated_as_its_row_says() {
        for t in ALL {
            assert!(!t.examples.is_empty(), "{} has no example", t.name);
            let sniffed_as = match t.sniffed {
                Sniffed::Rank(_) => t.name,
                Sniffed::As(other) => other,
            };
            for line in t.examples {
                let b = line.as_bytes();
                assert!(sniff::recognised(t.name, b), "{}: {line}", t.name);
                assert_eq!(sniff::sniff(b), Some(sniffed_as), "{}: {line}", t.name);
                let format = stamp_format_of(b);
                assert!(
                    format.is_some_and(|f| t.stamps.contains(&f)),
                    "{}: {line} is dated by {format:?}, not one of {:?}",
                    t.name,
                    t.stamps
                );
            }
        }
    }

    #[test]
    fn names_ranks_and_formats_refer_to_rows_that_exist() {
        crate::ids::assert_distinct("input type", ALL.iter().map(|t| t.name));
        for (i, t) in ALL.iter().enumerate() {
            assert_eq!(INPUT_TYPES[i], t.name);
            match t.sniffed {
                Sniffed::Rank(rank) => assert!(
                    ALL[..i]
                        .iter()
                        .all(|u| !matches!(u.sniffed, Sniffed::Rank(r) if r == rank)),
                    "{}: rank {rank} taken",
                    t.name
                ),
                Sniffed::As(other) => assert!(
                    named(other).is_some_and(|u| matches!(u.sniffed, Sniffed::Rank(_))),
                    "{} is sniffed as {other}, which sniffing never names",
                    t.name
                ),
            }
            for stamp in t.stamps {
                assert!(
                    STAMP_FORMATS.iter().any(|f| f.name == *stamp),
                    "{}: no time-stamp format {stamp}",
                    t.name
                );
            }
        }
    }
}
