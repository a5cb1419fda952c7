//! The national coordinator's forms from the built binary: Mẫu số 03 for one
//! incident in Markdown, HTML (A4), JSON and .docx (opened by LibreOffice),
//! and Mẫu số 05 for a half-year or a year in the form's classes, with the
//! config's category map and statuses counted in their columns.

mod common;

use std::fs;
use std::process::Command;

use serde_json::Value;

use common::cli::run;

const ORGANISATION: &str = r#"
[organisation]
name = "Sở Thông tin và Truyền thông tỉnh Thử Nghiệm"
address = "<b>Số 1</b> Trần Phú"
contact_name = "Nguyễn Văn An"
contact_role = "Trưởng phòng CNTT"
contact_phone = "0243 123 4567"
contact_email = "attt@stttt.thunghiem.gov.vn"

[organisation.system]
name = "Cổng thông tin điện tử tỉnh"
governing_body = "UBND tỉnh Thử Nghiệm"
domains = ["thunghiem.gov.vn"]
addresses = ["203.0.113.10"]
security_level = 3
notified = ["UBND tỉnh Thử Nghiệm"]
"#;

struct Setup {
    dir: tempfile::TempDir,
}

impl Setup {
    /// A store with brute force from 6 addresses (4 in August 2026, 2 in
    /// March 2026) and a web scan from one, imported; `extra` appended to
    /// the config.
    fn new(extra: &str) -> Setup {
        let dir = tempfile::tempdir().expect("tempdir");
        let root = dir.path();
        fs::write(root.join("live.log"), b"").expect("log");
        fs::write(
            root.join("canhgac.toml"),
            format!(
                "agency = \"so-tttt-forms\"\ntime_zone = \"Asia/Ho_Chi_Minh\"\nstate_dir = \"state\"\n\n\
                 [[input]]\nname = \"auth\"\npath = \"live.log\"\ntype = \"syslog\"\n{ORGANISATION}{extra}"
            ),
        )
        .expect("config");
        let mut auth = String::new();
        for (i, month) in [8, 8, 8, 8, 3, 3].iter().enumerate() {
            for k in 0..6 {
                auth.push_str(&format!(
                    "2026-{month:02}-{:02}T10:00:{:02}+07:00 portal sshd[{}]: Failed password for root from 198.51.100.{} port {} ssh2\n",
                    i + 1,
                    k * 2,
                    100 + k,
                    20 + i,
                    50000 + k
                ));
            }
        }
        fs::write(root.join("auth.log"), auth).expect("log");
        let s = Setup { dir };
        let (ok, out, err) = run([
            "import",
            "--config",
            &s.config(),
            "--input",
            "auth",
            &s.path("auth.log"),
        ]);
        assert!(ok && err.contains("0 failed"), "{out}{err}");
        s
    }

    fn path(&self, name: &str) -> String {
        self.dir.path().join(name).display().to_string()
    }

    fn config(&self) -> String {
        self.path("canhgac.toml")
    }

    fn ids(&self) -> Vec<String> {
        let (ok, out, err) = run(["incidents", "--config", &self.config(), "--format", "json"]);
        assert!(ok, "{err}");
        serde_json::from_str::<Vec<Value>>(&out)
            .expect("json")
            .iter()
            .map(|i| i["uid"].as_str().expect("uid").to_owned())
            .collect()
    }

    fn form03(&self, id: &str, format: &str, lang: &str) -> String {
        let (ok, out, err) = run([
            "incident",
            "report",
            id,
            "--config",
            &self.config(),
            "--format",
            format,
            "--lang",
            lang,
        ]);
        assert!(ok, "{err}");
        out
    }

    fn form05(&self, span: &[&str], format: &str) -> String {
        let config = self.config();
        let mut args = vec![
            "report", "--config", &config, "--form", "05", "--format", format,
        ];
        args.extend(span);
        let (ok, out, err) = run(&args);
        assert!(ok, "{err}");
        out
    }
}

#[test]
fn form_03_is_filled_in_every_format() {
    let s = Setup::new("");
    let id = s.ids()[0].clone();
    let (ok, _, err) = run(["incident", "reported", &id, "--config", &s.config()]);
    assert!(ok, "{err}");

    let md = s.form03(&id, "markdown", "vi");
    for want in [
        "Mẫu số 03",
        "BÁO CÁO BAN ĐẦU SỰ CỐ AN TOÀN THÔNG TIN MẠNG",
        "\\[TBSC\\] Sở Thông tin và Truyền thông tỉnh Thử Nghiệm – SSH brute force – so-tttt-forms-",
        "| Cấp độ an toàn hệ thống thông tin (Nghị định 85/2016/NĐ-CP) | 3 |",
        "| Nhà cung cấp dịch vụ kết nối Internet | (chưa khai báo) |",
        "| Địa chỉ nguồn tấn công | 198.51.100.",
        "| Mô tả sơ bộ về sự cố | Dò quét mật khẩu: 6 sự kiện từ 198.51.100.",
        "(luật ssh-bruteforce: SSH brute force).",
        "| Cách thức phát hiện | Kiểm tra nhật ký hệ thống (log file)",
        "| Đề nghị giữ bí mật thông tin sự cố | Có |",
        "    2026-",
    ] {
        assert!(md.contains(want), "{want:?} in\n{md}");
    }
    // Notified: the configured ones, and the coordinator once reported.
    let notified = md
        .lines()
        .find(|l| l.starts_with("| Đã thông báo sự cố cho |"))
        .expect("notified row");
    assert!(
        notified.contains("UBND tỉnh Thử Nghiệm") && notified.contains("VNCERT"),
        "{notified}"
    );
    // Evidence (section 4) comes before the closing section (5).
    let evidence = md.find("## 4.").expect("section 4");
    let closing = md.find("## 5.").expect("section 5");
    assert!(evidence < closing);

    // A second report keeps the time of the first.
    let first = s.form03(&id, "json", "en");
    let (ok, _, err) = run(["incident", "reported", &id, "--config", &s.config()]);
    assert!(ok, "{err}");
    assert_eq!(
        serde_json::from_str::<Value>(&first).expect("json")["sections"][2],
        serde_json::from_str::<Value>(&s.form03(&id, "json", "en")).expect("json")["sections"][2]
    );

    let en = s.form03(&id, "markdown", "en");
    assert!(
        en.contains("INITIAL REPORT") && en.contains("| Internet service provider | (not given) |"),
        "{en}"
    );

    let html = s.form03(&id, "html", "vi");
    assert!(html.contains("VNCERT"), "the form's recipient by default");
    assert!(html.contains("@page { size: A4"));
    assert!(
        html.contains("&lt;b&gt;Số 1&lt;/b&gt; Trần Phú"),
        "config text escaped"
    );
    assert!(!html.contains("<b>Số 1"));

    let json: Value = serde_json::from_str(&s.form03(&id, "json", "en")).expect("json");
    assert!(json["subject"]
        .as_str()
        .expect("subject")
        .starts_with("[TBSC] "));
    assert_eq!(json["incident_id"], id.as_str());
    let rows: Vec<&Value> = json["sections"]
        .as_array()
        .expect("sections")
        .iter()
        .flat_map(|s| s["rows"].as_array().expect("rows"))
        .collect();
    let value = |key: &str| {
        rows.iter()
            .find(|r| r["key"] == key)
            .map(|r| r["value"].clone())
    };
    assert_eq!(value("security_level"), Some(Value::from("3")));
    assert_eq!(value("isp"), Some(Value::Null));
    assert_eq!(value("status"), Some(Value::from("Not yet handled")));
}

/// The .docx opens in LibreOffice: converted to PDF and to text, it holds
/// the form's words and the incident's.
#[test]
fn form_03_docx_opens_in_libreoffice() {
    let s = Setup::new("");
    let id = s.ids()[0].clone();
    let docx = s.path("mau-03.docx");
    let (ok, _, err) = run([
        "incident",
        "report",
        &id,
        "--config",
        &s.config(),
        "--format",
        "docx",
        "-o",
        &docx,
    ]);
    assert!(ok, "{err}");
    let bytes = fs::read(&docx).expect("docx");
    assert!(bytes.starts_with(b"PK\x03\x04"), "a zip package");
    let office = ["libreoffice", "soffice"]
        .into_iter()
        .find(|c| Command::new(c).arg("--version").output().is_ok_and(|o| o.status.success()))
        .expect("LibreOffice is installed (Debian package libreoffice-writer-nogui; .ci/run installs it)");
    let profile = tempfile::tempdir().expect("profile");
    for target in ["pdf", "txt:Text"] {
        let out = Command::new(office)
            .arg(format!(
                "-env:UserInstallation=file://{}",
                profile.path().display()
            ))
            .args(["--headless", "--convert-to", target, "--outdir"])
            .arg(s.dir.path())
            .arg(&docx)
            .output()
            .expect("libreoffice runs");
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    let pdf = fs::read(s.path("mau-03.pdf")).expect("LibreOffice wrote a PDF");
    assert!(pdf.starts_with(b"%PDF"), "a PDF");
    let text = fs::read_to_string(s.path("mau-03.txt")).expect("LibreOffice wrote text");
    for want in [
        "BÁO CÁO BAN ĐẦU SỰ CỐ AN TOÀN THÔNG TIN MẠNG",
        "Sở Thông tin và Truyền thông tỉnh Thử Nghiệm",
        &id,
        "Failed password for root from 198.51.100.",
        "(chưa khai báo)",
    ] {
        assert!(text.contains(want), "{want:?} in\n{text}");
    }
}

/// The row of class `id` in Mẫu 05 as JSON.
fn class(v: &Value, id: &str) -> Value {
    v["classes"]
        .as_array()
        .expect("classes")
        .iter()
        .find(|c| c["id"] == id)
        .expect("class")
        .clone()
}

#[test]
fn form_05_counts_classes_and_columns() {
    let s = Setup::new("");
    let ids = s.ids();
    assert_eq!(ids.len(), 6);
    // Newest first: the four of August, then March.
    for (id, change) in [
        (&ids[0], "handled"),
        (&ids[1], "handled"),
        (&ids[1], "reported"),
        (&ids[2], "false-positive"),
    ] {
        let (ok, _, err) = run(["incident", change, id.as_str(), "--config", &s.config()]);
        assert!(ok, "{err}");
    }
    let year: Value = serde_json::from_str(&s.form05(&["--year", "2026"], "json")).expect("json");
    assert_eq!(year["classes"].as_array().map(Vec::len), Some(10));
    let access = class(&year, "unauthorised-access");
    assert_eq!(
        [
            &access["total"],
            &access["handled"],
            &access["self_handled"],
            &access["escalated"]
        ],
        [5, 2, 1, 1]
    );
    assert_eq!(year["total"]["total"], 5);
    assert_eq!(year["false_positives"], 1);
    let h2: Value = serde_json::from_str(&s.form05(&["--half", "2026-H2"], "json")).expect("json");
    assert_eq!(
        h2["total"]["total"], 3,
        "August's four less the false positive"
    );
    let h1: Value = serde_json::from_str(&s.form05(&["--half", "2026-H1"], "json")).expect("json");
    assert_eq!(h1["total"]["total"], 2);
    assert_eq!(h1["complete"], true);

    let table = s.form05(&["--year", "2026"], "table");
    assert!(
        table.contains("Mẫu số 05") || table.contains("Form 05"),
        "{table}"
    );
    let csv = s.form05(&["--half", "2026-H2"], "csv");
    assert!(
        csv.starts_with("\u{feff}class,total,handled,self_handled,escalated,label\r\n"),
        "{csv}"
    );
    assert!(csv.contains("\r\nunauthorised-access,3,2,1,1,"), "{csv}");
    let vi = s.form05(&["--year", "2026", "--lang", "vi"], "table");
    assert!(
        vi.contains("Truy cập trái phép, chiếm quyền điều khiển"),
        "{vi}"
    );
    assert!(
        vi.contains("Không tính 1 sự cố được xác định là cảnh báo nhầm."),
        "{vi}"
    );
    let en = s.form05(&["--year", "2026", "--lang", "en"], "table");
    assert!(
        en.contains("1 incident marked false positive is not counted."),
        "{en}"
    );

    // --form 05 needs a span; a span needs the form.
    let (ok, _, _) = run(["report", "--config", &s.config(), "--form", "05"]);
    assert!(!ok);
    let (ok, _, _) = run(["report", "--config", &s.config(), "--year", "2026"]);
    assert!(!ok);
}

#[test]
fn the_config_moves_categories_between_classes_and_check_names_bad_ones() {
    let s = Setup::new("\n[reporting]\nclasses = { bruteforce = \"combined\" }\n");
    let year: Value = serde_json::from_str(&s.form05(&["--year", "2026"], "json")).expect("json");
    let combined = class(&year, "combined");
    assert_eq!(combined["total"], 6);

    // Mistakes are positioned in the config; a forms file of another
    // circular is data, its mistakes positioned in it.
    let bad = s.path("bad.toml");
    fs::write(
        &bad,
                    "agency = \"x\"\n[[input]]\nname = \"a\"\npath = \"/var/log/auth.log\"\ntype = \"syslog\"\n\
             [organisation.system]\nsecurity_level = 7\n\
             [reporting]\nclasses = { brute = \"other\", recon = \"nowhere\" }\n"
        ,    )
    .expect("config");
    let (ok, _, err) = run(["check", "--config", &bad]);
    assert!(!ok);
    assert!(
        err.contains("bad.toml:7:18: system.security_level"),
        "{err}"
    );
    assert!(
        err.contains("bad.toml:9:13: [reporting] classes: unknown category `brute`"),
        "{err}"
    );
    assert!(err.contains("no class \"nowhere\""), "{err}");

    let forms = s.path("forms.toml");
    fs::write(&forms, "id = \"tt-2026\"\nname = { vi = \"x\" }\n").expect("forms");
    fs::write(
        &bad,
        format!(
            "agency = \"x\"\n[[input]]\nname = \"a\"\npath = \"/var/log/auth.log\"\ntype = \"syslog\"\n\
             [reporting]\nforms = \"{forms}\"\n"
        ),
    )
    .expect("config");
    let (ok, _, err) = run(["check", "--config", &bad]);
    assert!(!ok);
    assert!(err.contains(&format!("{forms}:2:")), "{err}");
}
