//! `canhgac report` on the national center's own numbers.
//!
//! Logs are generated so that, once imported with `canhgac import`, the
//! store holds 582 incidents in October 2020, 524 in September 2020, 580 in
//! October 2019, 4,161 from January to October 2020 and 4,514 from January
//! to October 2019: the bulletin's +11.07%, +0.34% and −7.82%. Every
//! incident is an attack burst from its own address, hours from the next.
//! Each month's first burst is at 00:30 local time on the 1st (the previous
//! month in UTC) and its last at 23:30 local time on the last day, in
//! syslog lines that carry no offset: a report that counted in UTC, or an
//! import that read those lines in UTC, would move them across months and
//! get every figure wrong.
//!
//! Then: every format in both languages prints the figures; the JSON is the
//! document the daemon's API serves; the HTML page, rendered by headless
//! Chromium, shows a chart with one bar per month, of the right heights.

mod common;

use std::collections::BTreeMap;
use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::OnceLock;

use jiff::civil::{Date, DateTime};
use jiff::tz::TimeZone;
use jiff::{Timestamp, ToSpan};
use serde_json::Value;
use tempfile::TempDir;

use common::cli::run;
use common::daemon::Launch;
use common::logs::{gzip, set_mtime};

const ZONE: &str = "Asia/Ho_Chi_Minh";
const API_TOKEN: &str = "report-test-0123456789abcdef0123456789";

/// Incidents per month: January to September 2019 make 3,934 (4,514 with
/// October), January to August 2020 make 3,055 (4,161 with September and
/// October). November 2020 lies after every window of the October report.
const PLAN: &[((i16, i8), u32)] = &[
    ((2019, 1), 438),
    ((2019, 2), 437),
    ((2019, 3), 437),
    ((2019, 4), 437),
    ((2019, 5), 437),
    ((2019, 6), 437),
    ((2019, 7), 437),
    ((2019, 8), 437),
    ((2019, 9), 437),
    ((2019, 10), 580),
    ((2019, 11), 450),
    ((2019, 12), 470),
    ((2020, 1), 382),
    ((2020, 2), 382),
    ((2020, 3), 382),
    ((2020, 4), 382),
    ((2020, 5), 382),
    ((2020, 6), 382),
    ((2020, 7), 382),
    ((2020, 8), 381),
    ((2020, 9), 524),
    ((2020, 10), 582),
    ((2020, 11), 40),
];

const MONTHS_EN: [&str; 12] = [
    "Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec",
];

/// The kinds of burst, by the category the default rules give them.
const KINDS: [&str; 4] = ["bruteforce", "web-attack", "malware", "recon"];

struct Fixture {
    dir: TempDir,
    /// (year, month, category) -> incidents generated.
    expected: BTreeMap<(i16, i8, &'static str), u64>,
}

impl Fixture {
    fn config(&self) -> PathBuf {
        self.dir.path().join("canhgac.toml")
    }
}

fn tz() -> TimeZone {
    TimeZone::get(ZONE).expect("zone")
}

fn local(y: i16, m: i8, d: i8, h: i8, min: i8, s: i8) -> Timestamp {
    DateTime::new(y, m, d, h, min, s, 0)
        .expect("date")
        .to_zoned(tz())
        .expect("zoned")
        .timestamp()
}

fn days_in(y: i16, m: i8) -> i8 {
    Date::new(y, m, 1).expect("date").days_in_month()
}

fn syslog_stamp(t: Timestamp) -> String {
    let z = t.to_zoned(tz());
    format!(
        "{} {:>2} {:02}:{:02}:{:02}",
        MONTHS_EN[(z.month() - 1) as usize],
        z.day(),
        z.hour(),
        z.minute(),
        z.second()
    )
}

fn clf_stamp(t: Timestamp) -> String {
    t.to_zoned(tz())
        .strftime("%d/%b/%Y:%H:%M:%S %z")
        .to_string()
}

/// Writes `data` (gzip-compressed if `gz`) with modification time `mtime`.
fn write_log(path: &Path, data: &[u8], gz: bool, mtime: Option<Timestamp>) {
    let bytes = if gz { gzip(data) } else { data.to_vec() };
    fs::write(path, bytes).expect("log written");
    if let Some(t) = mtime {
        set_mtime(path, t);
    }
}

/// Generates the logs, imports them, and keeps the store for every test
/// of this file.
fn fixture() -> &'static Fixture {
    static FIXTURE: OnceLock<Fixture> = OnceLock::new();
    FIXTURE.get_or_init(|| {
        let dir = tempfile::tempdir().expect("tempdir");
        let root = dir.path();
        fs::create_dir_all(root.join("live")).expect("live dir");
        fs::create_dir_all(root.join("y2019")).expect("2019 dir");
        fs::create_dir_all(root.join("y2020")).expect("2020 dir");
        fs::write(root.join("live/auth.log"), b"").expect("live log");
        common::logs::write_private(&root.join("api.tokens"), format!("{API_TOKEN}\n").as_bytes());
        let port = common::free_port();
        fs::write(
            root.join("canhgac.toml"),
            format!(
                r#"agency = "so-tttt-golden"
agency_name = "Sở TT&TT Golden"
time_zone = "{ZONE}"
state_dir = "state"

[http]
listen = "127.0.0.1:{port}"
api_token_file = "api.tokens"

[[input]]
name = "auth"
path = "live/auth.log"
type = "syslog"
start = "beginning"

[[input]]
name = "web"
path = "live/access.log"
type = "nginx"
start = "beginning"
"#
            ),
        )
        .expect("config");

        let mut expected = BTreeMap::new();
        let mut address = 0u32;
        let count = PLAN.len();
        for (index, &((y, m), n)) in PLAN.iter().enumerate() {
            let mut auth = String::new();
            let mut access = String::new();
            let first = local(y, m, 1, 0, 30, 0);
            let last = local(y, m, days_in(y, m), 23, 30, 0);
            let step = (last.as_second() - first.as_second()) / i64::from(n - 1);
            for i in 0..n {
                let at = if i + 1 == n {
                    last
                } else {
                    first + (step * i64::from(i)).seconds()
                };
                // First and last of the month: syslog, whose stamps carry
                // no offset and are read in the configured zone.
                let kind = if i == 0 || i + 1 == n {
                    0
                } else {
                    (i % 4) as usize
                };
                address += 1;
                let ip = format!("10.{}.{}.{}", address >> 16, (address >> 8) & 255, address & 255);
                let ua = "Mozilla/5.0 (Windows NT 10.0; Win64; x64)";
                match kind {
                    0 => {
                        for k in 0..5 {
                            let t = at + (k * 2).seconds();
                            auth.push_str(&format!(
                                "{} portal sshd[{}]: Failed password for root from {ip} port {} ssh2\n",
                                syslog_stamp(t),
                                2000 + i,
                                40000 + k
                            ));
                        }
                        // A line no rule matches, between bursts.
                        auth.push_str(&format!(
                            "{} portal CRON[99]: pam_unix(cron:session): session opened for user root\n",
                            syslog_stamp(at + 60.seconds())
                        ));
                    }
                    1 => access.push_str(&format!(
                        "{ip} - - [{}] \"GET /product.php?id=1%27%20UNION%20SELECT%20username,password%20FROM%20users-- HTTP/1.1\" 200 512 \"-\" \"{ua}\"\n",
                        clf_stamp(at)
                    )),
                    2 => access.push_str(&format!(
                        "{ip} - - [{}] \"GET /uploads/wso.php HTTP/1.1\" 200 512 \"-\" \"{ua}\"\n",
                        clf_stamp(at)
                    )),
                    _ => access.push_str(&format!(
                        "{ip} - - [{}] \"GET / HTTP/1.1\" 200 512 \"-\" \"Mozilla/5.00 (Nikto/2.1.6) (Evasions:None) (Test:000003)\"\n",
                        clf_stamp(at)
                    )),
                }
                access.push_str(&format!(
                    "192.0.2.1 - - [{}] \"GET /index.html HTTP/1.1\" 200 5120 \"-\" \"{ua}\"\n",
                    clf_stamp(at + 30.seconds())
                ));
                *expected.entry((y, m, KINDS[kind])).or_insert(0) += 1;
            }
            // Named as logrotate leaves monthly rotations: the oldest has the
            // highest number; every other one compressed.
            let rotation = count - index;
            let gz = rotation % 2 == 0;
            let suffix = if gz { ".gz" } else { "" };
            let dir = root.join(format!("y{y}"));
            // 2020's files keep the time of their rotation, which tells the
            // year of their syslog lines; 2019's are imported with --year.
            let mtime = (y == 2020).then(|| {
                let (ny, nm) = if m == 12 { (y + 1, 1) } else { (y, m + 1) };
                local(ny, nm, 1, 6, 25, 0)
            });
            write_log(
                &dir.join(format!("auth.log.{rotation}{suffix}")),
                auth.as_bytes(),
                gz,
                mtime,
            );
            write_log(
                &dir.join(format!("access.log.{rotation}{suffix}")),
                access.as_bytes(),
                !gz,
                mtime,
            );
        }

        let config = root.join("canhgac.toml");
        let config = config.to_str().expect("utf-8 path");
        for (year, extra) in [("2019", vec!["--year", "2019"]), ("2020", vec![])] {
            let mut args = vec!["import", "--config", config];
            args.extend(extra);
            let files: Vec<String> = fs::read_dir(root.join(format!("y{year}")))
                .expect("read dir")
                .map(|e| e.expect("entry").path().display().to_string())
                .collect();
            args.extend(files.iter().map(String::as_str));
            let (ok, stdout, stderr) = run(&args);
            assert!(ok, "import {year} failed:\n{stdout}\n{stderr}");
            assert!(stderr.contains("0 failed"), "{stderr}");
        }
        Fixture { dir, expected }
    })
}

fn report(format: &str, lang: &str) -> String {
    let f = fixture();
    let config = f.config();
    let (ok, stdout, stderr) = run([
        "report",
        "--config",
        config.to_str().expect("path"),
        "--month",
        "2020-10",
        "--format",
        format,
        "--lang",
        lang,
    ]);
    assert!(ok, "report {format} {lang}: {stderr}");
    stdout
}

const SENTENCE_EN: &str = "In October 2020, Sở TT&TT Golden recorded 582 incidents, up 11.07% on \
the previous month and up 0.34% on the same month last year; 4,161 in the first ten months, down \
7.82% on the same period of 2019.";

const SENTENCE_VI: &str =
    "Trong tháng 10/2020, Sở TT&TT Golden ghi nhận 582 sự cố, tăng 11,07% so \
với tháng trước và tăng 0,34% so với cùng kỳ năm 2019; tính chung 10 tháng đầu năm 2020 ghi nhận \
4.161 sự cố, giảm 7,82% so với cùng kỳ năm 2019.";

/// The table report in `lang`: it holds `sentence`, and its total row, the
/// line starting with `label`, reads `total` word by word.
fn table_report(lang: &str, sentence: &str, label: &str, total: &[&str]) -> String {
    let table = report("table", lang);
    assert!(table.contains(sentence), "{table}");
    let row = table
        .lines()
        .find(|l| l.starts_with(label))
        .unwrap_or_else(|| panic!("no total row in {table}"));
    assert_eq!(row.split_whitespace().collect::<Vec<_>>(), total, "{table}");
    table
}

#[test]
fn golden_figures_in_every_format_and_language() {
    let f = fixture();

    // JSON: the document, whatever the language.
    for lang in ["en", "vi"] {
        let v: Value = serde_json::from_str(&report("json", lang)).expect("json");
        let t = &v["total"];
        assert_eq!(v["month"], "2020-10");
        assert_eq!(v["time_zone"], ZONE);
        assert_eq!(v["complete"], true);
        assert_eq!(
            [
                &t["this_month"],
                &t["last_month"],
                &t["same_month_last_year"],
                &t["year_to_date"],
                &t["same_period_last_year"]
            ],
            [582, 524, 580, 4161, 4514]
        );
        let pct = |v: &Value| format!("{:.2}", v.as_f64().expect("ratio") * 100.0);
        assert_eq!(pct(&t["change"]["month_over_month"]), "11.07");
        assert_eq!(pct(&t["change"]["year_over_year"]), "0.34");
        assert_eq!(pct(&t["change"]["year_to_date"]), "-7.82");
        // Per category, as generated.
        let sum = |y: i16, months: std::ops::RangeInclusive<i8>, cat: &str| -> u64 {
            months
                .map(|m| f.expected.get(&(y, m, cat)).copied().unwrap_or(0))
                .sum()
        };
        for c in v["categories"].as_array().expect("categories") {
            let id = c["category"].as_str().expect("id");
            assert_eq!(c["this_month"], sum(2020, 10..=10, id), "{id}");
            assert_eq!(c["last_month"], sum(2020, 9..=9, id), "{id}");
            assert_eq!(c["same_month_last_year"], sum(2019, 10..=10, id), "{id}");
            assert_eq!(c["year_to_date"], sum(2020, 1..=10, id), "{id}");
            assert_eq!(c["same_period_last_year"], sum(2019, 1..=10, id), "{id}");
        }
        // The 13 months, October 2019 to October 2020.
        let months = v["months"].as_array().expect("months");
        let want: Vec<u64> = PLAN[9..22].iter().map(|(_, n)| u64::from(*n)).collect();
        let got: Vec<u64> = months
            .iter()
            .map(|m| m["total"].as_u64().expect("total"))
            .collect();
        assert_eq!(got, want);
        // Severities add up to the total; every input is attributed.
        let by_severity: u64 = v["severities"]
            .as_array()
            .expect("severities")
            .iter()
            .map(|s| s["this_month"].as_u64().expect("count"))
            .sum();
        assert_eq!(by_severity, 582);
        let inputs: BTreeMap<String, u64> = v["inputs"]
            .as_array()
            .expect("inputs")
            .iter()
            .map(|i| {
                (
                    i["input"].as_str().expect("named input").to_owned(),
                    i["this_month"].as_u64().expect("count"),
                )
            })
            .collect();
        let web = sum(2020, 10..=10, "web-attack")
            + sum(2020, 10..=10, "malware")
            + sum(2020, 10..=10, "recon");
        assert_eq!(
            inputs,
            BTreeMap::from([
                ("auth".to_owned(), sum(2020, 10..=10, "bruteforce")),
                ("web".to_owned(), web)
            ])
        );
        // Every burst came from its own address: one incident each.
        let top = &v["top_sources"].as_array().expect("sources")[0];
        assert_eq!(top["this_month"], 1);
        assert_eq!(v["top_rules"][0]["rule"], "ssh-bruteforce");
    }

    let table_en = table_report(
        "en",
        SENTENCE_EN,
        "Total ",
        &[
            "Total",
            "582",
            "524",
            "+11.07%",
            "580",
            "+0.34%",
            "4,161",
            "4,514",
            "\u{2212}7.82%",
        ],
    );
    assert!(table_en.contains("Jan\u{2013}Oct 2020"), "{table_en}");
    assert!(!table_en.contains('\u{1b}'));

    let table_vi = table_report(
        "vi",
        SENTENCE_VI,
        "Tổng số ",
        &[
            "Tổng",
            "số",
            "582",
            "524",
            "+11,07%",
            "580",
            "+0,34%",
            "4.161",
            "4.514",
            "\u{2212}7,82%",
        ],
    );
    assert!(table_vi.contains("Dò quét mật khẩu"), "{table_vi}");
    assert!(table_vi.contains("T1\u{2013}T10/2020"), "{table_vi}");

    for (lang, sentence, total) in [
        (
            "en",
            SENTENCE_EN,
            "| **Total** | **582** | **524** | **+11.07%** | **580** | **+0.34%** | **4,161** | **4,514** | **\u{2212}7.82%** |",
        ),
        (
            "vi",
            SENTENCE_VI,
            "| **Tổng số** | **582** | **524** | **+11,07%** | **580** | **+0,34%** | **4.161** | **4.514** | **\u{2212}7,82%** |",
        ),
    ] {
        let md = report("markdown", lang);
        // Markdown escapes the `&` of the agency's name.
        assert!(md.contains(&sentence.replace('&', "\\&")), "{lang}: {md}");
        assert!(md.contains(total), "{lang}: {md}");
    }

    let html_en = report("html", "en");
    assert!(
        html_en.contains(&SENTENCE_EN.replace('&', "&amp;")),
        "{html_en}"
    );
    assert!(html_en.contains(
        "<tr class=\"total\"><td>Total</td><td class=\"r\">582</td><td class=\"r\">524</td>\
         <td class=\"r\">+11.07%</td><td class=\"r\">580</td><td class=\"r\">+0.34%</td>\
         <td class=\"r\">4,161</td><td class=\"r\">4,514</td><td class=\"r\">\u{2212}7.82%</td></tr>"
    ));
    assert!(html_en.starts_with("<!DOCTYPE html>\n<html lang=\"en\">"));
    let html_vi = report("html", "vi");
    assert!(
        html_vi.contains(&SENTENCE_VI.replace('&', "&amp;")),
        "{html_vi}"
    );
    assert!(html_vi.contains(
        "<tr class=\"total\"><td>Tổng số</td><td class=\"r\">582</td><td class=\"r\">524</td>\
         <td class=\"r\">+11,07%</td><td class=\"r\">580</td><td class=\"r\">+0,34%</td>\
         <td class=\"r\">4.161</td><td class=\"r\">4.514</td><td class=\"r\">\u{2212}7,82%</td></tr>"
    ));
    // Self-contained: nothing fetched from anywhere.
    for html in [&html_en, &html_vi] {
        for external in ["src=", "href=", "@import", "url("] {
            assert!(!html.contains(external), "{external} in the page");
        }
        assert_eq!(html.matches("<svg").count(), 1);
        assert!(html.contains("@page { size: A4"));
    }

    // CSV: counts as numbers, changes as percentages in the locale, under
    // column names that do not change with the language or the month, and
    // a byte order mark for Excel.
    let csv_en = report("csv", "en");
    let csv_vi = report("csv", "vi");
    let header = "\u{feff}category,this_month,last_month,change_month,same_month_last_year,\
                  change_year,year_to_date,same_period_last_year,change_year_to_date,label";
    for csv in [&csv_en, &csv_vi] {
        assert!(csv.starts_with(&format!("{header}\r\n")), "{csv}");
        assert!(csv.ends_with("\r\n"));
        // Every category, then the total.
        assert_eq!(
            csv.split("\r\n").filter(|l| !l.is_empty()).count(),
            1 + 9 + 1
        );
    }
    assert!(
        csv_en
            .split("\r\n")
            .any(|l| l == "total,582,524,11.07,580,0.34,4161,4514,-7.82,Total"),
        "{csv_en}"
    );
    assert!(
        csv_vi
            .split("\r\n")
            .any(|l| l == "total,582,524,\"11,07\",580,\"0,34\",4161,4514,\"-7,82\",Tổng số"),
        "{csv_vi}"
    );
    // A category with nothing a year ago has an empty change, never a word.
    for line in csv_en.split("\r\n").skip(1).filter(|l| !l.is_empty()) {
        let cells: Vec<&str> = line.split(',').collect();
        for (change, base) in [(3, 2), (5, 4), (8, 7)] {
            if cells[base] == "0" {
                assert_eq!(cells[change], "", "{line}");
            } else {
                assert!(cells[change].parse::<f64>().is_ok(), "{line}");
            }
        }
    }
    // The 13 months, a column per category, in both languages alike.
    let months = |lang: &str| {
        let (ok, stdout, stderr) = run([
            "report",
            "--config",
            f.config().to_str().expect("path"),
            "--month",
            "2020-10",
            "--format",
            "csv",
            "--table",
            "months",
            "--no-bom",
            "--lang",
            lang,
        ]);
        assert!(ok, "{stderr}");
        stdout
    };
    let series = months("en");
    assert_eq!(series, months("vi"));
    let lines: Vec<&str> = series.split("\r\n").filter(|l| !l.is_empty()).collect();
    assert_eq!(
        lines[0],
        "month,start,end,total,phishing,deface,malware,bruteforce,web-attack,recon,dos,privilege-escalation,policy-violation"
    );
    assert_eq!(lines.len(), 1 + 13);
    let want: Vec<u64> = PLAN[9..22].iter().map(|(_, n)| u64::from(*n)).collect();
    for (line, want) in lines[1..].iter().zip(&want) {
        let cells: Vec<&str> = line.split(',').collect();
        let total: u64 = cells[3].parse().expect("total");
        let per_category: u64 = cells[4..]
            .iter()
            .map(|c| c.parse::<u64>().expect("count"))
            .sum();
        assert_eq!((total, per_category), (*want, *want), "{line}");
    }
    assert!(lines[13].starts_with("2020-10,2020-09-30T17:00:00Z,2020-10-31T17:00:00Z,582,"));
}

/// The daemon's `GET /api/v1/summary` serves the document `report --format
/// json` prints (only `as_of`, the moment each was made, differs).
#[test]
fn json_report_is_the_api_document() {
    let f = fixture();
    let text = fs::read_to_string(f.config()).expect("config");
    let listen = text
        .lines()
        .find_map(|l| l.strip_prefix("listen = \""))
        .and_then(|l| l.strip_suffix('"'))
        .expect("listen");
    let daemon = Launch::new(&f.config())
        .log_file(f.dir.path().join("daemon.log"))
        .http(format!("http://{listen}"))
        .ready();
    let api: Value = daemon.wait("the API to answer", || {
        let reply = daemon
            .get_with(
                "/api/v1/summary?month=2020-10",
                Some(&format!("Bearer {API_TOKEN}")),
            )
            .ok()?;
        (reply.status == 200).then(|| serde_json::from_str(&reply.body).expect("json"))
    });
    let mut printed: Value = serde_json::from_str(&report("json", "en")).expect("json");
    let mut api = api;
    for v in [&mut printed, &mut api] {
        v.as_object_mut().expect("object").remove("as_of");
    }
    assert_eq!(printed, api);
    assert_eq!(api["total"]["this_month"], 582);
}

/// Renders the HTML report in headless Chromium and looks at the picture:
/// the chart's axis is there, above it stand 13 bars, one per month, and
/// their heights are in proportion to the months' totals.
#[test]
fn html_report_renders_in_chromium_with_one_bar_per_month() {
    let f = fixture();
    let chromium = ["chromium", "chromium-browser", "google-chrome"]
        .into_iter()
        .find(|c| {
            Command::new(c)
                .arg("--version")
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .status()
                .is_ok_and(|s| s.success())
        })
        .expect("chromium is installed (Debian package `chromium`; .ci/run installs it)");
    let want: Vec<u64> = PLAN[9..22].iter().map(|(_, n)| u64::from(*n)).collect();
    for lang in ["en", "vi"] {
        let html = f.dir.path().join(format!("report-{lang}.html"));
        fs::write(&html, report("html", lang)).expect("html written");
        let png = f.dir.path().join(format!("report-{lang}.png"));
        let profile = tempfile::tempdir().expect("profile dir");
        let out = headless(chromium, profile.path())
            .args([
                "--hide-scrollbars",
                "--force-device-scale-factor=1",
                "--window-size=1000,1300",
            ])
            .arg(format!("--screenshot={}", png.display()))
            .arg(format!("file://{}", html.display()))
            .output()
            .expect("chromium runs");
        assert!(
            png.exists(),
            "no screenshot: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        // Kept for a person to look at with CANHGAC_KEEP_SCREENSHOT=DIR.
        if let Some(keep) = std::env::var_os("CANHGAC_KEEP_SCREENSHOT") {
            fs::copy(&png, Path::new(&keep).join(format!("report-{lang}.png")))
                .expect("screenshot kept");
        }
        let bars = bars_in_screenshot(&png);
        assert_eq!(bars.len(), 13, "{lang}: bars found: {bars:?}");
        // Heights in proportion to the totals, to within rounding.
        let scale = bars[12] as f64 / want[12] as f64;
        for (i, (&h, &n)) in bars.iter().zip(&want).enumerate() {
            let expect = n as f64 * scale;
            assert!(
                (h as f64 - expect).abs() <= 3.0,
                "{lang}: bar {i} is {h} px, expected about {expect:.0} ({bars:?})"
            );
        }
        // October 2020 against September 2020: +11.07%.
        let ratio = bars[12] as f64 / bars[11] as f64;
        assert!((ratio - 582.0 / 524.0).abs() < 0.03, "{ratio}");

        // And it prints on A4, chart and tables on a couple of pages.
        let pdf = f.dir.path().join(format!("report-{lang}.pdf"));
        let profile = tempfile::tempdir().expect("profile dir");
        headless(chromium, profile.path())
            .arg("--no-pdf-header-footer")
            .arg(format!("--print-to-pdf={}", pdf.display()))
            .arg(format!("file://{}", html.display()))
            .output()
            .expect("chromium runs");
        let bytes = fs::read(&pdf).expect("pdf written");
        assert!(bytes.starts_with(b"%PDF"));
        let text = String::from_utf8_lossy(&bytes);
        let pages = text.matches("/Type /Page\n").count()
            + text.matches("/Type /Page ").count()
            + text.matches("/Type /Page/").count()
            + text.matches("/Type /Page>").count();
        assert!((1..=3).contains(&pages), "{lang}: {pages} pages");
        // A4 is 595 x 842 points.
        assert!(
            text.contains("/MediaBox [0 0 595") || text.contains("/MediaBox [0 0 594.9"),
            "{lang}: not A4"
        );
    }
}

/// Headless Chromium with a profile of its own in `profile`, quiet.
fn headless(chromium: &str, profile: &Path) -> Command {
    let mut cmd = Command::new(chromium);
    cmd.args([
        "--headless",
        "--no-sandbox",
        "--disable-gpu",
        "--no-first-run",
        "--disable-background-networking",
    ])
    .arg(format!("--user-data-dir={}", profile.display()));
    cmd
}

/// Heights of the bars standing on the chart's axis, left to right. The
/// axis is the one line drawn in the chart's axis colour (#112233).
fn bars_in_screenshot(path: &Path) -> Vec<u32> {
    let decoder = png::Decoder::new(std::io::BufReader::new(
        fs::File::open(path).expect("png opens"),
    ));
    let mut reader = decoder.read_info().expect("png header");
    let mut buf = vec![0; reader.output_buffer_size().expect("size")];
    let info = reader.next_frame(&mut buf).expect("png frame");
    let channels = info.color_type.samples();
    let (w, h) = (info.width as usize, info.height as usize);
    let px = |x: usize, y: usize| -> (u8, u8, u8) {
        let i = (y * w + x) * channels;
        (buf[i], buf[i + 1], buf[i + 2])
    };
    let is_axis = |(r, g, b): (u8, u8, u8)| {
        r.abs_diff(0x11) <= 3 && g.abs_diff(0x22) <= 3 && b.abs_diff(0x33) <= 3
    };
    // Bars are drawn in dark colours; background and grid lines are light.
    let is_ink = |(r, g, b): (u8, u8, u8)| r.min(g).min(b) < 200;
    let (axis_y, axis_len) = (0..h)
        .map(|y| (y, (0..w).filter(|&x| is_axis(px(x, y))).count()))
        .max_by_key(|&(_, n)| n)
        .expect("rows");
    assert!(
        axis_len > 300,
        "no chart axis in the screenshot ({axis_len} px)"
    );
    // The topmost row of the axis, and its extent.
    let axis_y = (0..=axis_y)
        .rev()
        .take_while(|&y| (0..w).filter(|&x| is_axis(px(x, y))).count() > axis_len / 2)
        .last()
        .unwrap_or(axis_y);
    let xs: Vec<usize> = (0..w).filter(|&x| is_axis(px(x, axis_y))).collect();
    let (x0, x1) = (xs[0], xs[xs.len() - 1]);
    let row = axis_y - 1;
    let mut bars = Vec::new();
    let mut x = x0;
    while x <= x1 {
        if is_ink(px(x, row)) {
            let start = x;
            while x <= x1 && is_ink(px(x, row)) {
                x += 1;
            }
            let mid = (start + x) / 2;
            let height = (0..=row).rev().take_while(|&y| is_ink(px(mid, y))).count();
            bars.push(height as u32);
        }
        x += 1;
    }
    bars
}

/// Text from outside (here an input name given to `import --input`, as a
/// user rule id or a configured input name could be) is made harmless in
/// every format: no escape sequence reaches a terminal, no markup an HTML
/// page or Markdown, no formula a spreadsheet.
#[test]
fn hostile_text_is_neutralised_in_every_format() {
    let dir = tempfile::tempdir().expect("tempdir");
    fs::write(
        dir.path().join("canhgac.toml"),
        format!(
            "agency = \"hostile\"\ntime_zone = \"{ZONE}\"\nstate_dir = \"state\"\n\
             [[input]]\nname = \"web\"\npath = \"/var/log/nginx/access.log\"\ntype = \"nginx\"\n"
        ),
    )
    .expect("config");
    let log = dir.path().join("access.log");
    fs::write(
        &log,
        "203.0.113.9 - - [15/Oct/2020:10:00:00 +0700] \"GET /uploads/wso.php HTTP/1.1\" 200 512 \"-\" \"Mozilla/5.0\"\n",
    )
    .expect("log");
    // A formula, markup, Markdown, a terminal escape and a right-to-left
    // override (which would show `evil` as `live`).
    let hostile = "=HYPERLINK(\"http://evil\")|*x*<script>alert(1)</script>\u{1b}[31m\u{202E}live";
    let config = dir.path().join("canhgac.toml");
    let config = config.to_str().expect("path");
    let (ok, out, err) = run([
        "import",
        "--config",
        config,
        "--type",
        "nginx",
        "--input",
        hostile,
        log.to_str().expect("path"),
    ]);
    assert!(ok, "{out}{err}");
    let render = |format: &str| {
        let (ok, out, err) = run([
            "report", "--config", config, "--month", "2020-10", "--format", format,
        ]);
        assert!(ok, "{err}");
        out
    };
    let table = render("table");
    assert!(!table.contains(['\u{1b}', '\u{202E}']), "{table:?}");
    assert!(
        table.contains("=HYPERLINK"),
        "the name is still shown: {table}"
    );
    let html = render("html");
    assert!(!html.contains("<script>"), "{html}");
    assert!(
        html.contains("&lt;script&gt;alert(1)&lt;/script&gt;"),
        "{html}"
    );
    assert!(!html.contains(['\u{1b}', '\u{202E}']));
    // Cut to the cell's width after the escape is shown as `<U+001B>`.
    assert!(html.contains("&lt;/script&gt;&lt;U+00…"), "{html}");
    let md = render("markdown");
    assert!(md.contains("\\<script\\>"), "{md}");
    assert!(md.contains("\\|\\*x\\*"), "{md}");
    assert!(!md.contains('\u{1b}'));
    let (ok, csv, err) = run([
        "report", "--config", config, "--month", "2020-10", "--format", "csv", "--table", "inputs",
    ]);
    assert!(ok, "{err}");
    let row = csv.split("\r\n").nth(1).expect("input row");
    assert!(
        row.starts_with("\"'=HYPERLINK(\"\"http://evil\"\")|*x*<script>"),
        "{row}"
    );
    assert!(row.contains("<U+001B>[31m<U+202E>live"), "{row}");
    assert!(!csv.contains(['\u{1b}', '\u{202E}']), "{csv:?}");
    // JSON keeps the exact text, the hidden characters escaped.
    let raw = render("json");
    assert!(!raw.contains(['\u{1b}', '\u{202E}']), "{raw:?}");
    assert!(raw.contains("\\u202e"), "{raw}");
    let json: Value = serde_json::from_str(&raw).expect("json");
    assert_eq!(json["inputs"][0]["input"], hostile);
}
