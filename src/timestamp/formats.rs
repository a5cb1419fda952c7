//! The time-stamp formats canhgac reads, as data: one row a format, each with the lines that
//! show what it reads (the unit tests read every example). The parser that walks them is
//! [`super`].

use super::{layout, Found, StampFormat};

/// Every time-stamp format canhgac reads. [`TimeParser`] tries the rows found in the same
/// place in order, and the first that fits the line dates it, so a row must come before any
/// later row that would also fit its lines. Adding a format is adding a row with its examples; the unit
/// tests read every example.
pub const STAMP_FORMATS: &[StampFormat] = &[
    StampFormat {
        name: "rfc3339",
        found: Found::Head,
        // Python's logging writes a comma before the milliseconds.
        layout: layout("YYYY-MM-DDThh:mm:ss.,fZ~"),
        claims: None,
        examples: &[
            (
                "2020-10-31T23:30:00.123456+07:00 host x",
                Some("2020-10-31T16:30:00.123456Z"),
            ),
            (
                "2020-10-31T23:30:00.123456Z host x",
                Some("2020-10-31T23:30:00.123456Z"),
            ),
            ("2020-10-31T23:30:00Z host x", Some("2020-10-31T23:30:00Z")),
            ("2020-10-31T23:30:00+0700 host x", Some("2020-10-31T16:30:00Z")),
            ("2020-10-31T23:30:00-05:30 host x", Some("2020-11-01T05:00:00Z")),
            ("2020-10-31T23:30:00+07 host x", Some("2020-10-31T16:30:00Z")),
            ("2020-10-31t23:30:00z host x", Some("2020-10-31T23:30:00Z")),
            // Digits past nanoseconds are below jiff's precision.
            (
                "2020-10-31T23:30:00.123456789123Z x",
                Some("2020-10-31T23:30:00.123456789Z"),
            ),
            ("2020-10-31T23:30:00 host x", Some("2020-10-31T23:30:00+07:00")),
            ("2020-10-31T23:30:00.5", Some("2020-10-31T23:30:00.5+07:00")),
            ("2020-10-31T23:30:00,5 x", Some("2020-10-31T23:30:00.5+07:00")),
            // MySQL 8.0's error log.
            (
                "2020-10-31T01:45:18.920566Z 2 [Note] Access denied for user 'root'@'203.0.113.5'",
                Some("2020-10-31T01:45:18.920566Z"),
            ),
            ("2020-02-29T12:00:00Z leap day", Some("2020-02-29T12:00:00Z")),
            // A leap second has no civil representation in jiff; it is at most a second off.
            ("2016-12-31T23:59:60Z x", Some("2016-12-31T23:59:59Z")),
            // The offset after a space belongs to space-separated stamps only.
            ("2020-10-31T23:30:00 +0100 x", Some("2020-10-31T23:30:00+07:00")),
            // A sign right after the time is an offset; a malformed one is refused rather
            // than guessed, which would silently shift the time.
            ("2020-10-31T23:30:00+07:6 host", None),
            ("2020-10-31T23:30:00+99:00", None),
            ("2020-10-31T23:30:00Q", None),
            ("2020-10-31X23:30:00Z", None),
            ("2020-10-31T25:00:00Z", None),
            ("2020-02-30T00:00:00Z", None),
            ("2020-10-31T23:30", None),
        ],
    },
    StampFormat {
        name: "iso-offset-after-space",
        found: Found::Head,
        layout: layout("YYYY-MM-DD hh:mm:ss.,f ±hh:mm~"),
        claims: None,
        examples: &[
            ("2020-10-31 23:30:00 +0000 host x", Some("2020-10-31T23:30:00Z")),
            ("2020-10-31 23:30:00 -01:00 host x", Some("2020-11-01T00:30:00Z")),
            ("2020-10-31 23:30:00.5 +01", Some("2020-10-31T22:30:00.5Z")),
        ],
    },
    StampFormat {
        name: "iso-space",
        found: Found::Head,
        layout: layout("YYYY-MM-DD hh:mm:ss.,fZ~"),
        claims: None,
        examples: &[
            ("2020-10-31 23:30:00 host x", Some("2020-10-31T16:30:00Z")),
            ("2020-10-31 23:30:00.250 host x", Some("2020-10-31T16:30:00.25Z")),
            (
                "2020-10-31 23:30:00,250 fail2ban.actions",
                Some("2020-10-31T16:30:00.25Z"),
            ),
            ("2020-10-31 23:30:00+00:00 host x", Some("2020-10-31T23:30:00Z")),
            ("2020-10-31 23:30:00.1Z host x", Some("2020-10-31T23:30:00.1Z")),
            // A dash that is not an offset leaves the configured zone in charge.
            ("2020-10-31 23:30:00 - msg", Some("2020-10-31T16:30:00Z")),
            ("2020-10-31 23:30:00 -", Some("2020-10-31T16:30:00Z")),
            ("2020-10-31 23:30:00 +0100x", Some("2020-10-31T16:30:00Z")),
            ("2020-10-31 23:30:00+7 host", None),
            ("2021-02-29 00:00:00", None),
            ("2020-13-01 00:00:00", None),
            ("2020-10-31 23:30:001", None),
        ],
    },
    StampFormat {
        // MariaDB pads a one-digit hour with a space.
        name: "iso-space-padded-hour",
        found: Found::Head,
        layout: layout("YYYY-MM-DD _h:mm:ss~"),
        claims: None,
        examples: &[
            (
                "2020-10-31  8:25:38 139845 [Warning] Access denied for user 'root'@'203.0.113.5'",
                Some("2020-10-31T01:25:38Z"),
            ),
            ("2020-10-31  8:25:3x", None),
        ],
    },
    StampFormat {
        name: "nginx-error",
        found: Found::Head,
        layout: layout("YYYY/MM/DD hh:mm:ss.f~"),
        claims: None,
        examples: &[
            (
                "2020/10/31 23:30:00 [error] 123#0: *1 open() failed",
                Some("2020-10-31T16:30:00Z"),
            ),
            (
                "2020/10/31 23:30:00.75 [error] 1#0: x",
                Some("2020-10-31T16:30:00.75Z"),
            ),
            ("2020/10/31T23:30:00 [error]", None),
            ("2020/13/31 23:30:00 [error]", None),
        ],
    },
    StampFormat {
        // Suricata's fast.log (and Snort's alert_fast with `-y`): the local time, no offset.
        name: "ids-fast",
        found: Found::Head,
        layout: layout("MM/DD/YYYY-hh:mm:ss.f~"),
        claims: None,
        examples: &[
            (
                "10/31/2020-23:30:00.307554  [**] [1:2200074:1] SURICATA TCPv4 invalid checksum [**]",
                Some("2020-10-31T16:30:00.307554Z"),
            ),
            ("02/29/2020-12:00:00 [**]", Some("2020-02-29T12:00:00+07:00")),
            ("13/31/2020-23:30:00.1 [**]", None),
            ("10/31/20-23:30:00.1 [**]", None),
        ],
    },
    StampFormat {
        // Snort's alert_fast: the year left out.
        name: "ids-fast-no-year",
        found: Found::Head,
        layout: layout("MM/DD-hh:mm:ss.f~"),
        claims: None,
        examples: &[
            (
                "10/31-23:30:00.307554  [**] [1:1000001:1] x [**]",
                Some("2020-10-31T16:30:00.307554Z"),
            ),
            ("10/32-23:30:00.307554  [**]", None),
        ],
    },
    StampFormat {
        // Asterisk's own log files (`messages`, `full`): the local time, no offset.
        name: "asterisk",
        found: Found::Head,
        layout: layout("[YYYY-MM-DD hh:mm:ss.f]"),
        claims: None,
        examples: &[
            (
                "[2020-10-31 23:30:00] NOTICE[1638] chan_sip.c: Registration from '<sip:301@x>' failed",
                Some("2020-10-31T16:30:00Z"),
            ),
            ("[2020-10-31 23:30:00.123] NOTICE[1]", Some("2020-10-31T16:30:00.123Z")),
            ("[2020-10-31 23:30:00 NOTICE[1]", None),
            ("[2020-02-30 23:30:00] NOTICE[1]", None),
        ],
    },
    StampFormat {
        // Asterisk's files as older releases stamp them: the year left out.
        name: "asterisk-no-year",
        found: Found::Head,
        layout: layout("[Mmm _d hh:mm:ss.f]"),
        claims: None,
        examples: &[
            (
                "[Oct 31 23:30:00] NOTICE[12049]: res_pjsip_session.c:2337 new_invite: Call from",
                Some("2020-10-31T16:30:00Z"),
            ),
            ("[Jun  9 06:06:20] NOTICE[1]", Some("2020-06-08T23:06:20Z")),
            ("[Oct 32 23:30:00] NOTICE[1]", None),
        ],
    },
    StampFormat {
        // BIND's own log files (`print-time yes`).
        name: "bind",
        found: Found::Head,
        layout: layout("dd-Mmm-YYYY hh:mm:ss.f~"),
        claims: None,
        examples: &[
            (
                "31-Oct-2020 23:30:00.123 client @0x7f1b2c0a1b20 192.0.2.10#53214 (evil.example): query: evil.example IN A +E(0) (192.0.2.53)",
                Some("2020-10-31T16:30:00.123Z"),
            ),
            (
                "01-Nov-2020 00:00:01.000 queries: info: client 192.0.2.10#1 (x): query: x IN A +",
                Some("2020-10-31T17:00:01Z"),
            ),
            ("29-Feb-2020 12:00:00 x", Some("2020-02-29T12:00:00+07:00")),
            ("31-Oct-20 23:30:00 x", None),
            // A day the calendar lacks is a stamp without a time, not a cue to look further.
            ("32-Oct-2020 23:30:00 [31/Oct/2020:23:30:00 +0000] \"GET /\"", None),
        ],
    },
    StampFormat {
        // MySQL 5.x and MariaDB error logs.
        name: "mysql",
        found: Found::Head,
        layout: layout("YYMMDD hh:mm:ss~"),
        claims: None,
        examples: &[
            ("201031 23:30:00 [Note] x", Some("2020-10-31T16:30:00Z")),
            // No fraction is read, but a dot still ends the stamp.
            ("201031 23:30:00.5 [Note] x", Some("2020-10-31T16:30:00Z")),
            ("201331 23:30:00 [Note] x", None),
        ],
    },
    StampFormat {
        name: "mysql-padded-hour",
        found: Found::Head,
        layout: layout("YYMMDD _h:mm:ss~"),
        claims: None,
        examples: &[
            (
                "201031  1:45:18 [Warning] Access denied for user 'root'@'203.0.113.5' (using password: YES)",
                Some("2020-10-30T18:45:18Z"),
            ),
            ("201331  1:45:18 [Note] x", None),
            ("201031 1:45:18 x", None),
        ],
    },
    StampFormat {
        // PHP's error log and the applications that copy it (Roundcube). The zone is an
        // offset, UTC, or a zone name, read as the configured zone: the usual case, PHP's
        // `date.timezone` being the host's.
        name: "php",
        found: Found::Head,
        layout: layout("[dd-Mmm-YYYY hh:mm:ss.f ZONE]"),
        claims: Some(layout("[#?-")),
        examples: &[
            (
                "[31-Oct-2020 23:30:00 +0200]: IMAP Error: Login failed for admin from 203.0.113.5.",
                Some("2020-10-31T21:30:00Z"),
            ),
            (
                "[31-Oct-2020 23:30:00 UTC] PHP Warning: x",
                Some("2020-10-31T23:30:00Z"),
            ),
            (
                "[31-Oct-2020 23:30:00 Asia/Ho_Chi_Minh] PHP Warning: x",
                Some("2020-10-31T16:30:00Z"),
            ),
            ("[31-Oct-2020 23:30:00.5 GMT] x", Some("2020-10-31T23:30:00.5Z")),
            ("[31-Oct-2020 23:30:00 <b>] x", None),
            ("[31-Oct-2020 23:30:00 +0200 x", None),
            ("[31-Oct-2020 23:30:00 +02:00x] x", None),
            // Claimed by this format, so not read as seconds since the epoch.
            ("[7]-x", None),
        ],
    },
    StampFormat {
        // Unbound's own log file: seconds since the epoch.
        name: "epoch",
        found: Found::Head,
        layout: layout("[EPOCH]"),
        claims: None,
        examples: &[
            (
                "[1604161800] unbound[1234:0] info: 192.0.2.10 evil.example. A IN",
                Some("2020-10-31T16:30:00Z"),
            ),
            ("[7] x", Some("1970-01-01T00:00:07Z")),
            ("[12x] unbound", None),
            ("[123456789012] unbound", None),
        ],
    },
    StampFormat {
        // Apache's error log.
        name: "apache-error",
        found: Found::Head,
        layout: layout("[Www Mmm _D hh:mm:ss.f YYYY]"),
        claims: None,
        examples: &[
            (
                "[Sun Dec 04 04:47:44 2005] [error] [client 1.2.3.4] Directory index forbidden",
                Some("2005-12-03T21:47:44Z"),
            ),
            (
                "[Sun Dec 04 04:47:44.123456 2005] [core:error] [pid 1] AH00126: x",
                Some("2005-12-03T21:47:44.123456Z"),
            ),
            (
                "[Sun Dec  4 04:47:44 2005] [error] x",
                Some("2005-12-03T21:47:44Z"),
            ),
            ("[Sun Dec 04 04:47:44 2005 [error] x", None),
            ("[Sux Dec 04 04:47:44 2005] [error] x", None),
            ("[Sun Dec 04 24:47:44 2005] [error]", None),
        ],
    },
    StampFormat {
        // Classic BSD syslog as some senders write it, with the year.
        name: "bsd-with-year",
        found: Found::Head,
        // Huawei's firewalls add the offset: `Oct 31 2020 23:30:00+07:00`.
        layout: layout("Mmm _d YYYY hh:mm:ss.fZ~"),
        claims: None,
        examples: &[
            ("Oct 31 2020 23:30:00 host x", Some("2020-10-31T16:30:00Z")),
            ("Oct 31 2020 23:30:00+08:00 usg %%01IPS/4/DETECT(l)", Some("2020-10-31T15:30:00Z")),
            // The reference would have inferred 2020.
            ("Jun  9 2019 06:06:20 host x", Some("2019-06-09T06:06:20+07:00")),
            ("Oct 31 2020 23:30:00.25 host x", Some("2020-10-31T16:30:00.25Z")),
            ("Oct 31 202x 23:30:00 host x", None),
        ],
    },
    StampFormat {
        // Classic BSD syslog: no year, which is inferred from the reference.
        name: "bsd",
        found: Found::Head,
        layout: layout("Mmm _d hh:mm:ss.f~"),
        claims: None,
        examples: &[
            ("Oct 31 23:30:00 host prog[1]: msg", Some("2020-10-31T16:30:00Z")),
            ("Jun  9 06:06:20 host sshd[22]: x", Some("2020-06-09T06:06:20+07:00")),
            ("Jun 09 06:06:20 host sshd[22]: x", Some("2020-06-09T06:06:20+07:00")),
            // Some senders do not pad the day at all.
            ("Jun 9 06:06:20 host sshd[22]: x", Some("2020-06-09T06:06:20+07:00")),
            ("Oct 31 23:30:00", Some("2020-10-31T23:30:00+07:00")),
            ("Oct 31 23:30:00.123 host x", Some("2020-10-31T23:30:00.123+07:00")),
            (
                "Oct 31 23:30:00.000001 host x",
                Some("2020-10-31T23:30:00.000001+07:00"),
            ),
            ("Oct 31 23:30:00.5", Some("2020-10-31T23:30:00.5+07:00")),
            ("oCT 31 23:30:00 x", Some("2020-10-31T23:30:00+07:00")),
            // Up to a week ahead of the reference is this year, beyond it last year.
            ("Nov 22 00:00:00 host x", Some("2020-11-22T00:00:00+07:00")),
            ("Dec 31 23:30:00 host x", Some("2019-12-31T23:30:00+07:00")),
            ("Feb 29 12:00:00 host x", Some("2020-02-29T12:00:00+07:00")),
            ("Feb 30 12:00:00 host x", None),
            ("Oct 32 23:30:00 host x", None),
            ("Oct 00 23:30:00 host x", None),
            // A day the calendar lacks is a stamp without a time, not a cue to look further.
            ("Oct 00 23:30:00 [31/Oct/2020:23:30:00 +0000] \"GET /\"", None),
            ("Oct 31 25:30:00 host x", None),
            ("Oct 31 23:60:00 host x", None),
            ("Oct 31 23:30:61 host x", None),
            // A stamp must not run into a word or number.
            ("Oct 31 23:30:001 host x", None),
            ("Oct 31 23:30:00. host x", None),
            ("Oct 31 23:30", None),
            ("Oct 31 23:30:0", None),
        ],
    },
    StampFormat {
        // asctime, as ClamAV and vsftpd write it.
        name: "ctime",
        found: Found::Head,
        layout: layout("Www Mmm _D hh:mm:ss.f YYYY~"),
        claims: None,
        examples: &[
            (
                "Sun Dec  4 04:47:44 2005 -> /tmp/eicar.com: Eicar-Signature FOUND",
                Some("2005-12-03T21:47:44Z"),
            ),
            (
                "Sun Dec 14 04:47:44 2005 -> /x: OK",
                Some("2005-12-13T21:47:44Z"),
            ),
            ("sun dec 14 04:47:44 2005", Some("2005-12-13T21:47:44Z")),
            (
                "Sat Oct 31 23:30:00 2020 [pid 1234] [admin] FAIL LOGIN: Client \"203.0.113.5\"",
                Some("2020-10-31T16:30:00Z"),
            ),
            (
                "Sat Oct 3 23:30:00 2020 [pid 1234] [admin] FAIL LOGIN: Client \"203.0.113.5\"",
                Some("2020-10-03T16:30:00Z"),
            ),
            ("Sun Dec 14 04:47:44 20051 -> x", None),
            ("Sun Dec 04 04:47:44", None),
        ],
    },
    StampFormat {
        // FortiGate and FortiOS devices write the date and the time as two keys, and
        // through syslog without a header: `date=2024-10-14 time=13:46:40 devname=...`.
        name: "fortigate",
        found: Found::Keyed,
        layout: layout("YYYY-MM-DD time=hh:mm:ss~"),
        claims: None,
        examples: &[
            (
                r#"date=2020-10-31 time=23:30:00 devname="fw01" logdesc="SSL VPN login fail""#,
                Some("2020-10-31T16:30:00Z"),
            ),
            (
                r#"<189>date=2020-10-31 time=23:30:00 devname="fw01" type="event""#,
                Some("2020-10-31T16:30:00Z"),
            ),
            ("date=2020-10-31 devname=fw01", None),
        ],
    },
    StampFormat {
        // Python's http.server (and Webmin's miniserv) bracket day/month/year and the time.
        name: "python-http",
        found: Found::Inside,
        layout: layout("_D/Mmm/YYYY hh:mm:ss.,f~"),
        claims: None,
        examples: &[
            (
                r#"1604161800.2161960.0 [31/Oct/2020 23:30:00] admin - 203.0.113.5 global miniserv.pl "failed""#,
                Some("2020-10-31T16:30:00Z"),
            ),
            (
                r#"203.0.113.5 - - [31/Oct/2020 23:30:00] "GET / HTTP/1.1" 200 -"#,
                Some("2020-10-31T16:30:00Z"),
            ),
        ],
    },
    StampFormat {
        // Seconds since the epoch under a time key, as Caddy and zap loggers write them.
        name: "epoch-key",
        found: Found::Keyed,
        layout: layout("EPOCH10.f~"),
        claims: None,
        examples: &[
            (
                r#"{"level":"error","ts":1604187000.9626286,"logger":"http.log.access"}"#,
                Some("2020-10-31T23:30:00.9626286Z"),
            ),
            (r#"{"level":"error","pid":1604187000}"#, None),
        ],
    },
    StampFormat {
        // The common and combined log formats of access logs.
        name: "clf",
        found: Found::Bracketed,
        layout: layout("[_D/Mmm/YYYY:hh:mm:ss.f ±hh:mm]"),
        claims: None,
        examples: &[
            (
                r#"1.2.3.4 - - [31/Oct/2020:23:30:00 +0700] "GET / HTTP/1.1" 200 12 "-" "curl""#,
                Some("2020-10-31T16:30:00Z"),
            ),
            (
                r#"::1 - frank [10/oct/2000:13:55:36 -0700] "GET /a.gif HTTP/1.0" 200 2326"#,
                Some("2000-10-10T20:55:36Z"),
            ),
            (
                r#"vhost:443 1.2.3.4 - - [31/Oct/2020:23:30:00.123 +0000] "GET / HTTP/1.1""#,
                Some("2020-10-31T23:30:00.123Z"),
            ),
            // An earlier bracket that is not a stamp is skipped.
            (
                r#"1.2.3.4 - [weird user] [01/Nov/2020:00:00:01 +0000] "GET /[31/Oct/2020:00:00:00 +0000]""#,
                Some("2020-11-01T00:00:01Z"),
            ),
            ("1.2.3.4 - - [ 1/Nov/2020:00:00:01 +00:00] x", Some("2020-11-01T00:00:01Z")),
            ("1.2.3.4 - - [29/Feb/2020:00:00:01 +0000] x", Some("2020-02-29T00:00:01Z")),
            ("1.2.3.4 - - [31/Oct/2020:23:30:00 +0700", None),
            ("1.2.3.4 - - [31/Oct/2020:23:30:00]", None),
            ("1.2.3.4 - - [31/Foo/2020:23:30:00 +0700]", None),
            ("1.2.3.4 - - [31/Oct/2020:24:30:00 +0700] \"GET /\"", None),
            ("1.2.3.4 - - [32/Oct/2020:23:30:00 +0700] \"GET /\"", None),
            // A day out of range makes a line not ctime's, so its access-log stamp counts.
            (
                "Sun Oct 0 23:30:00 2020 [31/Oct/2020:23:30:00 +0000] \"GET /\"",
                Some("2020-10-31T23:30:00Z"),
            ),
            // A calendar-less date ends the search: it is the line's stamp, unreadable.
            (
                "1.2.3.4 - - [30/Feb/2020:23:30:00 +0700] [31/Oct/2020:23:30:00 +0700]",
                None,
            ),
        ],
    },
];
