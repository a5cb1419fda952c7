//! Feed files: plain text, CSV and JSON, read whole into an [`IndicatorSet`].
//!
//! - **text**: one indicator a line; blank lines and lines starting with `#`
//!   are skipped; after the indicator a line may carry a comment (`#` or
//!   `;`) or tab-separated columns (`203.0.113.5  # C2`, `1.10.16.0/20 ;
//!   SBL256894`, `hash<TAB>family`), anything else is a bad line.
//!   Domain feeds also read hosts-file lines (`0.0.0.0 evil.example`), taking
//!   every name after the address.
//! - **CSV** (RFC 4180: quoted fields, `""` escapes, fields spanning lines;
//!   `#` comment lines): the indicator is in `column` (a header name or a
//!   1-based number); by default the column headed `indicator`, `value` or
//!   `ioc`, else the first. If a column is headed `type`, rows whose type
//!   is a MISP attribute type of another kind are skipped (MISP's CSV export
//!   is `uuid,event_id,category,type,value,comment,to_ids,...`), and rows
//!   with `to_ids` false are skipped too.
//! - **JSON**, one of:
//!   - an array of strings: `["evil.example", ...]`;
//!   - an array of objects, the indicator under `key` (default `indicator`,
//!     `value` or `ioc`), optionally with a `type`;
//!   - MISP exports: an event (`{"Event": {"Attribute": [...], "Object":
//!     [{"Attribute": [...]}]}}`), a list of events or attributes from
//!     restSearch (`{"response": ...}`), or `{"Attribute": [...]}`. An
//!     attribute's `value` is read when its `type` fits the feed's kind
//!     (`ip-src`, `ip-dst`, `domain`, `hostname`, `email-src`, `url`,
//!     `md5`, `sha1`, `sha256`, `sha512` and their `a|b` composites, whose
//!     fitting half is taken), it is not `deleted`, and `to_ids` is not
//!     false (MISP's flag for indicators meant for detection).

use std::io::Read;
use std::path::{Path, PathBuf};

use serde_json::Value;

use super::indicators::{FeedKind, IndicatorSet};

/// Larger files are refused: a feed of ten million URLs is well under it.
pub const MAX_FEED_BYTES: u64 = 2 << 30;

/// Bad lines reported per file; the rest are counted.
pub const MAX_REPORTED: usize = 20;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Format {
    Text,
    Csv,
    Json,
}

impl Format {
    pub fn id(self) -> &'static str {
        match self {
            Format::Text => "text",
            Format::Csv => "csv",
            Format::Json => "json",
        }
    }

    pub fn parse(s: &str) -> Result<Format, String> {
        match s {
            "text" => Ok(Format::Text),
            "csv" => Ok(Format::Csv),
            "json" => Ok(Format::Json),
            _ => Err(format!(
                "unknown feed format `{s}`; expected text, csv or json"
            )),
        }
    }

    /// `.csv` and `.json` (also compressed-looking names are not guessed);
    /// anything else is text.
    pub fn from_path(path: &Path) -> Format {
        match path.extension().and_then(|e| e.to_str()) {
            Some(e) if e.eq_ignore_ascii_case("csv") => Format::Csv,
            Some(e) if e.eq_ignore_ascii_case("json") => Format::Json,
            _ => Format::Text,
        }
    }
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Column {
    Name(String),
    /// 1-based.
    Number(usize),
}

/// Where a feed file is and how to read it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FileSpec {
    pub path: PathBuf,
    pub format: Format,
    /// CSV: the indicator's column.
    pub column: Option<Column>,
    /// CSV: whether the first row names the columns.
    pub header: bool,
    /// JSON: the indicator's key in objects.
    pub key: Option<String>,
}

/// A line of a feed that is not an indicator (or a file that cannot be read at all, at line 0).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct BadLine {
    pub line: u64,
    pub column: u64,
    pub message: String,
}

/// What reading a feed file gave.
#[derive(Debug)]
pub struct Parsed {
    pub set: IndicatorSet,
    /// The first [`MAX_REPORTED`] bad lines.
    pub bad: Vec<BadLine>,
    pub bad_total: usize,
    /// Entries left out on purpose (MISP attributes of another kind, `to_ids` false).
    pub skipped: usize,
    /// The file ends with a newline (or is JSON, where the syntax says whether it is whole).
    pub terminated: bool,
}

impl Parsed {
    fn new(kind: FeedKind) -> Self {
        Parsed {
            set: IndicatorSet::new(kind),
            bad: Vec::new(),
            bad_total: 0,
            skipped: 0,
            terminated: true,
        }
    }

    fn bad(&mut self, line: u64, column: u64, message: String) {
        self.bad_total += 1;
        if self.bad.len() < MAX_REPORTED {
            self.bad.push(BadLine {
                line,
                column,
                message,
            });
        }
    }

    fn add(&mut self, line: u64, column: u64, text: &str) {
        if let Err(message) = self.set.insert(text) {
            self.bad(line, column, message);
        }
    }
}

/// Reads the whole file; `Err` when it cannot be read at all.
pub fn read(path: &Path) -> Result<Vec<u8>, String> {
    let file = std::fs::File::open(path).map_err(|e| format!("cannot open: {e}"))?;
    let len = file
        .metadata()
        .map_err(|e| format!("cannot stat: {e}"))?
        .len();
    if len > MAX_FEED_BYTES {
        return Err(format!(
            "feed file is {len} bytes; the limit is {MAX_FEED_BYTES}"
        ));
    }
    let mut bytes = Vec::with_capacity(len as usize + 1);
    file.take(MAX_FEED_BYTES + 1)
        .read_to_end(&mut bytes)
        .map_err(|e| format!("cannot read: {e}"))?;
    if bytes.len() as u64 > MAX_FEED_BYTES {
        return Err(format!(
            "feed file grew past the limit of {MAX_FEED_BYTES} bytes"
        ));
    }
    Ok(bytes)
}

/// Parses a feed file's bytes. `Err` for a file that cannot be read as its
/// format at all (JSON syntax, a CSV without the named column).
pub fn parse(bytes: &[u8], kind: FeedKind, spec: &FileSpec) -> Result<Parsed, BadLine> {
    let mut parsed = match spec.format {
        Format::Text => Ok(parse_text(bytes, kind)),
        Format::Csv => parse_csv(bytes, kind, spec),
        Format::Json => parse_json(bytes, kind, spec),
    }?;
    if spec.format != Format::Json {
        parsed.terminated = bytes.is_empty() || bytes.ends_with(b"\n");
    }
    parsed.set.finish();
    Ok(parsed)
}

fn parse_text(bytes: &[u8], kind: FeedKind) -> Parsed {
    let mut out = Parsed::new(kind);
    for (i, raw) in bytes.split(|&b| b == b'\n').enumerate() {
        let line_no = i as u64 + 1;
        let raw = raw.strip_suffix(b"\r").unwrap_or(raw);
        let text = match std::str::from_utf8(raw) {
            Ok(t) => t,
            Err(e) => {
                out.bad(line_no, e.valid_up_to() as u64 + 1, "not UTF-8".into());
                continue;
            }
        };
        // A byte-order mark from Windows tools on the first line.
        let text = if i == 0 {
            text.trim_start_matches('\u{feff}')
        } else {
            text
        };
        let body = text.trim_start();
        if body.is_empty() || body.starts_with('#') {
            continue;
        }
        let column = (text.len() - body.len()) as u64 + 1;
        let mut tokens = body.split_whitespace();
        let first = tokens.next().unwrap_or(body);
        if kind == FeedKind::Domain && first.parse::<std::net::IpAddr>().is_ok() {
            // hosts-file form: the names after the address (up to a comment).
            let mut any = false;
            for name in tokens.take_while(|t| !t.starts_with('#')) {
                any = true;
                out.add(line_no, column, name);
            }
            if !any {
                out.bad(
                    line_no,
                    column,
                    format!("`{first}` is an address, not a domain name"),
                );
            }
            continue;
        }
        // After the indicator: nothing, a comment, or tab-separated columns.
        let after = &body[first.len()..];
        let rest = after.trim_start();
        let separated = after[..after.len() - rest.len()].contains('\t');
        if !(rest.is_empty() || rest.starts_with(['#', ';']) || separated) {
            out.bad(
                line_no,
                column,
                format!("unexpected text after the indicator `{first}`: `{rest}` (comments start with #)"),
            );
            continue;
        }
        out.add(line_no, column, first);
    }
    out
}

/// Which `|`-separated half of a MISP value fits `kind`, if the type is
/// one of ours at all: `Some(Some(i))` fits, `Some(None)` is a MISP type of
/// another kind, `None` an unknown type.
fn misp_part(kind: FeedKind, ty: &str) -> Option<Option<usize>> {
    let kind_of = |part: &str| match part {
        "ip-src" | "ip-dst" | "ip" => Some(FeedKind::Ip),
        "domain" | "hostname" | "email-src" | "email" | "email-reply-to" => Some(FeedKind::Domain),
        "url" | "uri" => Some(FeedKind::Url),
        "md5" | "sha1" | "sha256" | "sha512" => Some(FeedKind::Hash),
        _ => None,
    };
    let ty = ty.trim();
    if ty == "malware-sample" {
        return Some((kind == FeedKind::Hash).then_some(1));
    }
    let mut known = false;
    for (i, part) in ty.split('|').enumerate() {
        match kind_of(part) {
            Some(k) if k == kind => return Some(Some(i)),
            Some(_) => known = true,
            None => {}
        }
    }
    known.then_some(None)
}

/// The indicator of `kind` in `value`, given its MISP type if it has one:
/// the fitting half of a `|`-separated pair, or the whole value where the
/// type is missing or unknown; `None` where the type is of another kind.
fn misp_value<'v>(kind: FeedKind, ty: Option<&str>, value: &'v str) -> Option<&'v str> {
    match ty.and_then(|ty| misp_part(kind, ty)) {
        Some(Some(i)) => Some(value.split('|').nth(i).unwrap_or(value)),
        Some(None) => None,
        None => Some(value),
    }
}

fn falsy(s: &str) -> bool {
    matches!(s.trim().to_ascii_lowercase().as_str(), "0" | "false" | "no")
}

fn parse_csv(bytes: &[u8], kind: FeedKind, spec: &FileSpec) -> Result<Parsed, BadLine> {
    let mut out = Parsed::new(kind);
    let mut reader = csv::ReaderBuilder::new()
        .has_headers(spec.header)
        .flexible(true)
        .comment(Some(b'#'))
        .trim(csv::Trim::All)
        .from_reader(bytes);
    let whole = |message: String| BadLine {
        line: 1,
        column: 1,
        message,
    };
    let headers: Vec<String> = if spec.header {
        reader
            .headers()
            .map_err(|e| whole(format!("cannot read the CSV header: {e}")))?
            .iter()
            .map(|h| h.trim_start_matches('\u{feff}').to_ascii_lowercase())
            .collect()
    } else {
        Vec::new()
    };
    let named = |name: &str| headers.iter().position(|h| h == name);
    let column = match &spec.column {
        Some(Column::Number(n)) => n.saturating_sub(1),
        Some(Column::Name(name)) => named(&name.to_ascii_lowercase()).ok_or_else(|| {
            whole(format!(
                "no column named `{name}` in the header ({})",
                headers.join(",")
            ))
        })?,
        None => ["indicator", "value", "ioc"]
            .iter()
            .find_map(|n| named(n))
            .unwrap_or(0),
    };
    let type_col = named("type");
    let to_ids_col = named("to_ids");
    let mut record = csv::ByteRecord::new();
    loop {
        let line = reader.position().line();
        match reader.read_byte_record(&mut record) {
            Ok(false) => break,
            Ok(true) => {}
            Err(e) => {
                let line = e.position().map_or(line, |p| p.line());
                out.bad(line, 1, format!("bad CSV: {e}"));
                continue;
            }
        }
        let line = record.position().map_or(line, |p| p.line());
        let field = |i: usize| -> Result<&str, String> {
            std::str::from_utf8(record.get(i).unwrap_or_default())
                .map_err(|_| format!("column {} is not UTF-8", i + 1))
        };
        if record.iter().all(|f| f.is_empty()) {
            continue;
        }
        let value = match field(column) {
            Ok(v) => v,
            Err(message) => {
                out.bad(line, 1, message);
                continue;
            }
        };
        if to_ids_col.and_then(|c| field(c).ok()).is_some_and(falsy) {
            out.skipped += 1;
            continue;
        }
        let Some(value) = misp_value(kind, type_col.and_then(|c| field(c).ok()), value) else {
            out.skipped += 1;
            continue;
        };
        if value.is_empty() {
            out.bad(line, 1, format!("column {} is empty", column + 1));
            continue;
        }
        out.add(line, 1, value);
    }
    Ok(out)
}

fn parse_json(bytes: &[u8], kind: FeedKind, spec: &FileSpec) -> Result<Parsed, BadLine> {
    let root: Value = serde_json::from_slice(bytes).map_err(|e| BadLine {
        line: e.line() as u64,
        column: e.column() as u64,
        message: format!("bad JSON: {e}"),
    })?;
    let mut out = Parsed::new(kind);
    let mut walk = JsonWalk {
        kind,
        key: spec.key.as_deref(),
        bytes,
        out: &mut out,
    };
    if !walk.document(&root) {
        return Err(BadLine {
            line: 1,
            column: 1,
            message: "unrecognised JSON shape: expected an array of indicators, an array of objects with an indicator key, or a MISP event/attribute export".into(),
        });
    }
    Ok(out)
}

struct JsonWalk<'a> {
    kind: FeedKind,
    key: Option<&'a str>,
    bytes: &'a [u8],
    out: &'a mut Parsed,
}

impl JsonWalk<'_> {
    /// False when the shape is none of the documented ones.
    fn document(&mut self, v: &Value) -> bool {
        match v {
            Value::Array(items) => {
                for item in items {
                    match item {
                        Value::String(s) => self.add(s),
                        Value::Object(o) if o.contains_key("Event") => {
                            self.document(item);
                        }
                        Value::Object(_) => self.object(item),
                        other => self.bad_value(&other.to_string(), "not a string or object"),
                    }
                }
                true
            }
            Value::Object(o) => {
                if let Some(r) = o.get("response") {
                    return self.document(r);
                }
                if let Some(e) = o.get("Event") {
                    self.event(e);
                    return true;
                }
                if let Some(Value::Array(attrs)) = o.get("Attribute") {
                    for a in attrs {
                        self.object(a);
                    }
                    return true;
                }
                false
            }
            _ => false,
        }
    }

    fn event(&mut self, e: &Value) {
        if let Some(Value::Array(attrs)) = e.get("Attribute") {
            for a in attrs {
                self.object(a);
            }
        }
        if let Some(Value::Array(objects)) = e.get("Object") {
            for obj in objects {
                if let Some(Value::Array(attrs)) = obj.get("Attribute") {
                    for a in attrs {
                        self.object(a);
                    }
                }
            }
        }
    }

    /// A MISP attribute or an object with an indicator key.
    fn object(&mut self, o: &Value) {
        let flag = |name: &str| match o.get(name) {
            Some(Value::Bool(b)) => Some(*b),
            Some(Value::String(s)) => Some(!falsy(s)),
            Some(Value::Number(n)) => Some(n.as_u64() != Some(0)),
            _ => None,
        };
        if flag("to_ids") == Some(false) || flag("deleted") == Some(true) {
            self.out.skipped += 1;
            return;
        }
        let keys: &[&str] = match self.key {
            Some(k) => &[k][..],
            None => &["indicator", "value", "ioc"],
        };
        let Some(value) = keys.iter().find_map(|k| o.get(*k)) else {
            self.bad_value(
                &o.to_string(),
                &format!("object without `{}`", keys.join("`, `")),
            );
            return;
        };
        let Some(value) = value.as_str() else {
            self.bad_value(&value.to_string(), "indicator is not a string");
            return;
        };
        let Some(value) = misp_value(self.kind, o.get("type").and_then(Value::as_str), value)
        else {
            self.out.skipped += 1;
            return;
        };
        self.add(value);
    }

    fn add(&mut self, value: &str) {
        if let Err(message) = self.out.set.insert(value) {
            self.bad_value(&serde_json::to_string(value).unwrap_or_default(), &message);
        }
    }

    /// Positions a bad value at its first appearance in the text: only
    /// bad values pay for the search.
    fn bad_value(&mut self, json_text: &str, message: &str) {
        let (line, column) = match memchr::memmem::find(self.bytes, json_text.as_bytes()) {
            Some(at) => {
                let before = &self.bytes[..at];
                let line = memchr::memchr_iter(b'\n', before).count() as u64 + 1;
                let start = memchr::memrchr(b'\n', before).map_or(0, |i| i + 1);
                (line, (at - start) as u64 + 1)
            }
            None => (1, 1),
        };
        self.out.bad(line, column, message.to_owned());
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec(format: Format) -> FileSpec {
        FileSpec {
            path: PathBuf::from("f"),
            format,
            column: None,
            header: true,
            key: None,
        }
    }

    #[test]
    fn text_comments_trailing_text_hosts_form_and_bad_lines() {
        let text = "# phishing domains\n\nevil.example\n  phish.test   # since May\n0.0.0.0 a.example b.example\nbad domain!\n\u{feff}x\n";
        let p = parse(text.as_bytes(), FeedKind::Domain, &spec(Format::Text)).expect("parsed");
        assert_eq!(p.set.len(), 4);
        assert!(p.set.lookup("b.example").is_some());
        assert_eq!(p.bad_total, 2, "{:?}", p.bad);
        assert_eq!((p.bad[0].line, p.bad[0].column), (6, 1));
        assert!(p.terminated);
        let p = parse(
            b"evil.example\nhalf.exa",
            FeedKind::Domain,
            &spec(Format::Text),
        )
        .expect("parsed");
        assert!(!p.terminated);
        let p = parse(b"1.2.3.4\n\xff\xfe\n", FeedKind::Ip, &spec(Format::Text)).expect("parsed");
        assert_eq!((p.bad_total, p.bad[0].line), (1, 2));
    }

    #[test]
    fn csv_picks_the_column_and_follows_misp_types() {
        let misp = "uuid,event_id,category,type,value,comment,to_ids,date\n\
            a,1,Network activity,ip-dst,203.0.113.5,\"C2, seen\nin May\",1,1600000000\n\
            b,1,Network activity,domain,evil.example,,1,1600000000\n\
            c,1,Network activity,ip-dst|port,198.51.100.7|443,,1,1600000000\n\
            d,1,Network activity,ip-dst,192.0.2.1,,0,1600000000\n\
            e,1,Network activity,ip-dst,not-an-ip,,1,1600000000\n";
        let p = parse(misp.as_bytes(), FeedKind::Ip, &spec(Format::Csv)).expect("parsed");
        assert_eq!(p.set.len(), 2);
        assert!(p.set.lookup("198.51.100.7").is_some());
        assert_eq!(p.skipped, 2, "the domain row and the to_ids=0 row");
        assert_eq!(p.bad_total, 1);
        assert_eq!(p.bad[0].line, 7, "lines count the quoted newline");
        let mut s = spec(Format::Csv);
        s.column = Some(Column::Name("address".into()));
        let p = parse(
            b"first_seen,address\n2020-10-01,203.0.113.9\n",
            FeedKind::Ip,
            &s,
        )
        .expect("parsed");
        assert!(p.set.lookup("203.0.113.9").is_some());
        let err = parse(b"a,b\n1,2\n", FeedKind::Ip, &s).expect_err("no such column");
        assert!(err.message.contains("no column named `address`"), "{err:?}");
        s.column = Some(Column::Number(2));
        s.header = false;
        let p = parse(b"x,203.0.113.1\ny,203.0.113.2\n", FeedKind::Ip, &s).expect("parsed");
        assert_eq!(p.set.len(), 2);
    }

    #[test]
    fn json_shapes() {
        let s = spec(Format::Json);
        let p = parse(br#"["evil.example", "phish.test"]"#, FeedKind::Domain, &s).expect("array");
        assert_eq!(p.set.len(), 2);
        let p = parse(
            br#"[{"indicator": "evil.example", "type": "domain"}, {"value": "x.test"}]"#,
            FeedKind::Domain,
            &s,
        )
        .expect("objects");
        assert_eq!(p.set.len(), 2);
        let misp = br#"{"response": [{"Event": {"info": "campaign",
            "Attribute": [
              {"type": "domain|ip", "value": "evil.example|203.0.113.5", "to_ids": true},
              {"type": "ip-src", "value": "198.51.100.1", "to_ids": false},
              {"type": "sha256", "value": "ab", "to_ids": true}],
            "Object": [{"Attribute": [{"type": "ip-dst", "value": "192.0.2.77", "to_ids": true},
                                      {"type": "ip-dst", "value": "nope", "to_ids": true}]}]}}]}"#;
        let p = parse(misp, FeedKind::Ip, &s).expect("misp");
        assert_eq!(p.set.len(), 2);
        assert!(p.set.lookup("203.0.113.5").is_some());
        assert!(p.set.lookup("192.0.2.77").is_some());
        assert_eq!(p.skipped, 2);
        assert_eq!(p.bad_total, 1);
        assert_eq!(p.bad[0].line, 7, "{:?}", p.bad);
        let err = parse(b"{\"a\": [1,", FeedKind::Ip, &s).expect_err("truncated");
        assert!(err.message.starts_with("bad JSON"), "{err:?}");
        let err = parse(b"{\"a\": 1}", FeedKind::Ip, &s).expect_err("shape");
        assert!(err.message.contains("unrecognised JSON shape"), "{err:?}");
    }
}
