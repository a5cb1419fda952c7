//! Access logs written as JSON, rewritten into the combined format the access-log rules read.
//!
//! Web servers and proxies log a request as a JSON object with keys of their own:
//! nginx's `log_format ... escape=json` (the keys are whatever the format names, usually its
//! variables: `remote_addr`, `time_iso8601` or `time_local`, `request` or `request_method` and
//! `request_uri`, `status`, `body_bytes_sent`, `http_referer`, `http_user_agent`,
//! `http_x_forwarded_for`), Traefik's access log (`ClientHost`, `StartUTC`, `RequestMethod`,
//! `RequestPath`, `RequestProtocol`, `DownstreamStatus`, `DownstreamContentSize`,
//! `request_User-Agent`, `request_Referer`) and Caddy's (`ts`, `request.client_ip`,
//! `request.method`, `request.uri`, `request.proto`, `request.headers.User-Agent`, `status`,
//! `size`). Each key names a field the combined line has, and the first key present in the
//! lists below gives it. A line that is not such an object, or lacks the client, time,
//! method, path or status, is left as it is.

use std::borrow::Cow;

use jiff::Timestamp;
use serde_json::Value;

use super::combined::{Request, MONTHS};

const CLIENT: &[&str] = &[
    "remote_addr",
    "ClientHost",
    "request.client_ip",
    "client_ip",
    "request.remote_ip",
    "remote_ip",
    "clientip",
];
/// Times in the combined format's own form (nginx's `$time_local`).
const TIME_CLF: &[&str] = &["time_local"];
/// Times in RFC 3339, with their offset.
const TIME_ISO: &[&str] = &[
    "time_iso8601",
    "StartUTC",
    "@timestamp",
    "timestamp",
    "time",
    "start_time",
];
/// Seconds since the epoch.
const TIME_EPOCH: &[&str] = &["ts", "msec"];
const REQUEST_LINE: &[&str] = &["request"];
const METHOD: &[&str] = &[
    "request_method",
    "RequestMethod",
    "request.method",
    "method",
];
const PATH: &[&str] = &["request_uri", "RequestPath", "request.uri", "uri", "path"];
const PROTOCOL: &[&str] = &[
    "server_protocol",
    "RequestProtocol",
    "request.proto",
    "protocol",
];
const STATUS: &[&str] = &["status", "DownstreamStatus", "response_code"];
const BYTES: &[&str] = &[
    "body_bytes_sent",
    "DownstreamContentSize",
    "bytes_sent",
    "size",
];
const USER: &[&str] = &[
    "remote_user",
    "ClientUsername",
    "request.user_id",
    "user_id",
];
const REFERER: &[&str] = &[
    "http_referer",
    "request_Referer",
    "request.headers.Referer",
    "referer",
];
const USER_AGENT: &[&str] = &[
    "http_user_agent",
    "request_User-Agent",
    "request.headers.User-Agent",
    "user_agent",
    "user-agent",
];
const FORWARDED_FOR: &[&str] = &[
    "http_x_forwarded_for",
    "request_X-Forwarded-For",
    "request.headers.X-Forwarded-For",
];

/// Appends the combined-format form of `line` (no `\n`) to `out`; false, with nothing
/// appended, when `line` is no JSON access-log object.
pub fn rewrite(line: &[u8], out: &mut Vec<u8>) -> bool {
    if line.first() != Some(&b'{') {
        return false;
    }
    match serde_json::from_slice::<Value>(line) {
        Ok(object) if object.is_object() => write(&object, out),
        _ => false,
    }
}

/// Whether `line` is a JSON access-log object (for recognising a file's type).
pub fn is_json_access(line: &[u8]) -> bool {
    rewrite(line, &mut Vec::new())
}

/// The first of `keys` present in `object`, as text.
fn first<'v>(object: &'v Value, keys: &[&str]) -> Option<Cow<'v, str>> {
    keys.iter().find_map(|k| text(lookup(object, k)?))
}

fn write(object: &Value, out: &mut Vec<u8>) -> bool {
    let field = |keys: &[&str]| first(object, keys);
    let (Some(client), Some(stamp), Some(status)) = (field(CLIENT), stamp(object), field(STATUS))
    else {
        return false;
    };
    let request_line = field(REQUEST_LINE);
    let mut parts = request_line.as_deref().map(|r| r.splitn(3, ' '));
    let (method, target, protocol) = match parts.as_mut() {
        Some(p) => (
            p.next().map(Cow::Borrowed),
            p.next().map(Cow::Borrowed),
            p.next().map(Cow::Borrowed),
        ),
        None => (field(METHOD), field(PATH), field(PROTOCOL)),
    };
    let (Some(method), Some(target)) = (method, target) else {
        return false;
    };
    let (protocol, user, bytes, referer, user_agent, forwarded_for) = (
        present(protocol),
        present(field(USER)),
        present(field(BYTES)),
        present(field(REFERER)),
        present(field(USER_AGENT)),
        present(field(FORWARDED_FOR)),
    );
    let request = Request {
        client: client.as_bytes(),
        user: user.as_deref().map(str::as_bytes),
        stamp: &stamp,
        method: method.as_bytes(),
        path: target.as_bytes(),
        query: None,
        protocol: protocol.as_deref().map(str::as_bytes),
        status: status.as_bytes(),
        bytes: bytes.as_deref().map(str::as_bytes),
        referer: referer.as_deref().map(str::as_bytes),
        user_agent: user_agent.as_deref().map(str::as_bytes),
        forwarded_for: forwarded_for.as_deref().map(str::as_bytes),
    };
    if !request.is_request()
        || !client
            .bytes()
            .all(|b| b.is_ascii_hexdigit() || b == b'.' || b == b':')
    {
        return false;
    }
    request.write(false, out);
    true
}

/// A field that holds a value: empty and `-` are none.
fn present(v: Option<Cow<'_, str>>) -> Option<Cow<'_, str>> {
    v.filter(|v| !v.is_empty() && v != "-")
}

/// The value at `path` (`request.headers.User-Agent`: keys through nested objects); a key
/// with a dot of its own (`request_User-Agent` has none, but some do) is tried whole first.
fn lookup<'v>(object: &'v Value, path: &str) -> Option<&'v Value> {
    if let Some(v) = object.get(path) {
        return Some(v);
    }
    let mut v = object;
    for key in path.split('.') {
        v = v.get(key)?;
    }
    Some(v)
}

/// A value as text: a string, a number, or the first of an array (Caddy's headers).
fn text(v: &Value) -> Option<Cow<'_, str>> {
    match v {
        Value::String(s) => Some(Cow::Borrowed(s)),
        Value::Number(n) => Some(Cow::Owned(n.to_string())),
        Value::Array(a) => a.first().and_then(text),
        _ => None,
    }
}

/// The request's time as the combined format writes it (`31/Oct/2020:16:30:00 +0000`).
fn stamp(object: &Value) -> Option<Vec<u8>> {
    if let Some(clf) = first(object, TIME_CLF) {
        return Some(clf.into_owned().into_bytes());
    }
    let at = if let Some(iso) = first(object, TIME_ISO) {
        iso.parse::<Timestamp>().ok()?
    } else {
        let secs: f64 = first(object, TIME_EPOCH)?.parse().ok()?;
        Timestamp::from_duration(jiff::SignedDuration::try_from_secs_f64(secs).ok()?).ok()?
    };
    let utc = jiff::tz::TimeZone::UTC.to_datetime(at);
    let month = MONTHS.get(usize::try_from(utc.month()).ok()?.checked_sub(1)?)?;
    Some(
        format!(
            "{:02}/{}/{:04}:{:02}:{:02}:{:02} +0000",
            utc.day(),
            std::str::from_utf8(*month).ok()?,
            utc.year(),
            utc.hour(),
            utc.minute(),
            utc.second()
        )
        .into_bytes(),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rewritten(line: &str) -> Option<String> {
        let mut out = Vec::new();
        rewrite(line.as_bytes(), &mut out).then(|| String::from_utf8(out).expect("UTF-8"))
    }

    #[test]
    fn nginx_traefik_and_caddy_requests_become_combined_lines() {
        assert_eq!(
            rewritten(
                r#"{"time_local":"31/Oct/2020:23:30:00 +0700","remote_addr":"203.0.113.5","remote_user":"","request":"GET /index.php?id=1%27%20or%201=1 HTTP/1.1","status":"200","body_bytes_sent":"612","http_referer":"","http_user_agent":"sqlmap/1.7","http_x_forwarded_for":"198.51.100.9"}"#
            )
            .as_deref(),
            Some(r#"203.0.113.5 - - [31/Oct/2020:23:30:00 +0700] "GET /index.php?id=1%27%20or%201=1 HTTP/1.1" 200 612 "-" "sqlmap/1.7" "198.51.100.9""#)
        );
        assert_eq!(
            rewritten(
                r#"{"ClientAddr":"172.17.0.1:39490","ClientHost":"172.17.0.1","DownstreamContentSize":356,"DownstreamStatus":404,"RequestMethod":"GET","RequestPath":"/.env","RequestProtocol":"HTTP/1.1","StartUTC":"2020-10-31T16:30:00.123456789Z","request_User-Agent":"Mozilla/5.0 \"x\""}"#
            )
            .as_deref(),
            Some(r#"172.17.0.1 - - [31/Oct/2020:16:30:00 +0000] "GET /.env HTTP/1.1" 404 356 "-" "Mozilla/5.0 \"x\"""#)
        );
        assert_eq!(
            rewritten(
                r#"{"level":"error","ts":1604161800.96,"logger":"http.log.access","msg":"handled request","request":{"remote_ip":"127.0.0.1","client_ip":"2001:db8::7","proto":"HTTP/2.0","method":"POST","uri":"/wp-login.php","headers":{"User-Agent":["curl/8.0"]}},"size":0,"status":401}"#
            )
            .as_deref(),
            Some(r#"2001:db8::7 - - [31/Oct/2020:16:30:00 +0000] "POST /wp-login.php HTTP/2.0" 401 0 "-" "curl/8.0""#)
        );
    }

    #[test]
    fn other_json_and_other_lines_stay_as_they_are() {
        for line in [
            r#"{"level":"info","ts":1604161800.96,"msg":"server started"}"#,
            r#"{"remote_addr":"203.0.113.5","request":"GET / HTTP/1.1","status":"200"}"#,
            r#"{"remote_addr":"<script>","time_local":"31/Oct/2020:23:30:00 +0700","request":"GET / HTTP/1.1","status":"200"}"#,
            r#"{"remote_addr":"203.0.113.5","time_local":"31/Oct/2020:23:30:00 +0700","request":"GET / HTTP/1.1","status":"2000"}"#,
            r#"["not", "an", "object"]"#,
            "{broken json",
            r#"203.0.113.5 - - [31/Oct/2020:23:30:00 +0700] "GET / HTTP/1.1" 200 1 "-" "-""#,
        ] {
            assert_eq!(rewritten(line), None, "{line}");
        }
    }

    #[test]
    fn quotes_and_control_bytes_in_client_text_cannot_end_a_field() {
        let line = rewritten(
            r#"{"remote_addr":"203.0.113.5","time_local":"31/Oct/2020:23:30:00 +0700","request":"GET /a\" 200 1 \"-\" \"x HTTP/1.1","status":"404","http_user_agent":"a\nb"}"#,
        )
        .expect("rewritten");
        assert_eq!(
            line,
            r#"203.0.113.5 - - [31/Oct/2020:23:30:00 +0700] "GET /a\" 200 1 \"-\" \"x HTTP/1.1" 404 - "-" "a\x0ab""#
        );
    }
}
