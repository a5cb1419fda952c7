//! Who the client of a matched line is: the address an incident blames.
//!
//! Patterns capture `src_ip` from wherever a log writes the client, but the
//! capture is text, and the analyst acts on it (blocks it, reports it to
//! the national center). So every event's `src_ip` is made a real IP
//! address before the detector sees it:
//! - an address is written canonically, IPv4-mapped IPv6 as IPv4, so
//!   `::ffff:203.0.113.5` and `203.0.113.5` are one attacker;
//! - a host name (PAM's `rhost=`, some FTP daemons) moves to `src_host`, which
//!   keys the event instead and says that the log named no address;
//! - anything else (a client-written `<script>`, control characters) is no
//!   client at all: the event is rejected and counted.
//!
//! Behind a reverse proxy every access-log line names the proxy. For lines
//! whose client is one of the configured `trusted_proxies`, the client is
//! taken from the `X-Forwarded-For` field that the log format appends after
//! the user agent (nginx's stock `main` format; Apache's
//! `"%{X-Forwarded-For}i"`): its rightmost address that is not itself a
//! trusted proxy, since everything left of that was written by the client.

use std::fmt::Write as _;
use std::net::IpAddr;
use std::sync::Arc;

use crate::event::Fields;
use crate::event::{DEFAULT_KEY_FIELD, HOST_KEY_FIELD};
use crate::network::Network;

/// Longest host name DNS allows.
const MAX_HOST_NAME: usize = 253;

/// What became of an event's client.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Verdict {
    /// `src_ip` was an address (perhaps rewritten), or a host name now in
    /// `src_host`, or there was none.
    Kept,
    /// `src_ip` was neither: the event must not be blamed on anyone.
    Rejected,
}

/// Settles the client fields of one event, in place.
pub struct ClientCheck {
    proxies: Vec<Network>,
    src_ip: Arc<str>,
    src_host: Arc<str>,
    proxy: Arc<str>,
    /// Scratch for rewritten values.
    text: String,
}

impl Default for ClientCheck {
    fn default() -> Self {
        ClientCheck::new(Vec::new())
    }
}

impl ClientCheck {
    pub fn new(proxies: Vec<Network>) -> Self {
        ClientCheck {
            proxies,
            src_ip: Arc::from(DEFAULT_KEY_FIELD),
            src_host: Arc::from(HOST_KEY_FIELD),
            proxy: Arc::from(PROXY_FIELD),
            text: String::new(),
        }
    }

    /// `line` is the whole log line; `access_log` says whether it is an
    /// access-log line, whose trailing `X-Forwarded-For` field may name the
    /// client behind a trusted proxy.
    pub fn settle(&mut self, fields: &mut Fields, line: &[u8], access_log: bool) -> Verdict {
        let Some(value) = fields.get(DEFAULT_KEY_FIELD) else {
            return Verdict::Kept;
        };
        let addr = match parse_addr(value) {
            Some(addr) => addr,
            None if is_host_name(value) => {
                self.text.clear();
                self.text.push_str(value);
                fields.rewrite(DEFAULT_KEY_FIELD, &self.src_host, &self.text);
                return Verdict::Kept;
            }
            None => return Verdict::Rejected,
        };
        let mut client = addr;
        let mut via_proxy = false;
        if access_log && self.proxies.iter().any(|n| n.contains(addr)) {
            if let Some(forwarded) = forwarded_client(line, &self.proxies) {
                client = forwarded;
                via_proxy = true;
            }
        }
        if !via_proxy && is_plain_ipv4(value) {
            // Already as written below: sshd floods pass here once a line.
            return Verdict::Kept;
        }
        self.text.clear();
        let _ = write!(self.text, "{client}");
        if via_proxy {
            fields.rewrite(DEFAULT_KEY_FIELD, &self.src_ip, &self.text);
            self.text.clear();
            let _ = write!(self.text, "{addr}");
            fields.push(&self.proxy, self.text.as_bytes());
        } else if self.text != value {
            fields.rewrite(DEFAULT_KEY_FIELD, &self.src_ip, &self.text);
        }
        Verdict::Kept
    }
}

impl ClientCheck {
    /// The client of an access-log line whose first word is `first`, for
    /// counting its requests: `None` for no address, and for a loopback or
    /// trusted-proxy client whose line names no client behind it (a local
    /// reverse proxy or monitor is not a flood; configure `trusted_proxies`
    /// to see through it).
    /// Whether a line's client may depend on more than its first word.
    pub fn has_proxies(&self) -> bool {
        !self.proxies.is_empty()
    }

    pub fn request_client(&self, first: &str, line: &[u8]) -> Option<IpAddr> {
        let addr = parse_addr(first)?;
        if self.proxies.iter().any(|n| n.contains(addr)) {
            return forwarded_client(line, &self.proxies);
        }
        (!addr.is_loopback()).then_some(addr)
    }
}

/// The field that names the trusted proxy a client came through.
pub const PROXY_FIELD: &str = "proxy";

/// An address as logs write it, IPv4-mapped IPv6 made IPv4. IPv6 may come
/// in brackets (`[2001:db8::1]`), as some daemons write it.
fn parse_addr(text: &str) -> Option<IpAddr> {
    let text = text
        .strip_prefix('[')
        .and_then(|t| t.strip_suffix(']'))
        .unwrap_or(text);
    text.parse::<IpAddr>().ok().map(|a| a.to_canonical())
}

/// Text that parsed as an address and is dotted decimal alone: an IPv4
/// address, which the parser takes only in its one written form (no
/// leading zeros), so it prints back as it is.
fn is_plain_ipv4(text: &str) -> bool {
    text.bytes().all(|b| b.is_ascii_digit() || b == b'.')
}

/// A DNS name (letters, digits, `-`, `_`, dots), with at least one letter,
/// so that a mangled address is not taken for a name.
fn is_host_name(text: &str) -> bool {
    !text.is_empty()
        && text.len() <= MAX_HOST_NAME
        && text
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_'))
        && text.bytes().any(|b| b.is_ascii_alphabetic())
        && !text.starts_with(['.', '-'])
}

/// The client an access-log line's `X-Forwarded-For` field names: the
/// fourth quoted field (after request, referer and user agent), its
/// rightmost address that is not a trusted proxy.
fn forwarded_client(line: &[u8], proxies: &[Network]) -> Option<IpAddr> {
    let field = quoted_fields(line).nth(3)?;
    let text = std::str::from_utf8(field).ok()?;
    for hop in text.rsplit(',') {
        let hop = hop.trim();
        // A port may follow (`203.0.113.5:4711`, `[2001:db8::1]:4711`).
        let addr = parse_addr(hop).or_else(|| {
            let (host, port) = hop.rsplit_once(':')?;
            port.bytes().all(|b| b.is_ascii_digit()).then_some(())?;
            parse_addr(host)
        })?;
        if !proxies.iter().any(|n| n.contains(addr)) {
            return Some(addr);
        }
    }
    None
}

/// The contents of the `"..."` fields of a line, in order; `\"` inside
/// one is an escaped quote (Apache and nginx escape them so).
fn quoted_fields(line: &[u8]) -> impl Iterator<Item = &[u8]> {
    let mut at = 0;
    std::iter::from_fn(move || {
        let open = at + memchr::memchr(b'"', line.get(at..)?)?;
        let mut i = open + 1;
        while i < line.len() {
            match line[i] {
                b'\\' => i += 2,
                b'"' => {
                    at = i + 1;
                    return Some(&line[open + 1..i]);
                }
                _ => i += 1,
            }
        }
        None
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fields(pairs: &[(&str, &str)]) -> Fields {
        pairs.iter().copied().collect()
    }

    #[test]
    fn a_plain_ipv4_address_that_parses_prints_back_as_written() {
        for text in [
            "10.0.0.1",
            "0.0.0.0",
            "255.255.255.255",
            "010.0.0.1",
            "1.02.3.4",
            "1.2.3.00",
            "1.2.3",
            "1.2.3.4.5",
            "256.1.1.1",
        ] {
            assert!(is_plain_ipv4(text));
            if let Some(addr) = parse_addr(text) {
                assert_eq!(addr.to_string(), text, "{text} is kept as written");
            }
        }
        assert!(!is_plain_ipv4("::ffff:10.0.0.1"));
        assert!(!is_plain_ipv4("[10.0.0.1]"));
    }

    fn settle(check: &mut ClientCheck, pairs: &[(&str, &str)], line: &str) -> (Verdict, Fields) {
        let mut f = fields(pairs);
        let v = check.settle(&mut f, line.as_bytes(), true);
        (v, f)
    }

    #[test]
    fn addresses_are_canonical_and_mapped_ipv4_is_ipv4() {
        let mut c = ClientCheck::default();
        let (v, f) = settle(
            &mut c,
            &[("src_ip", "::ffff:203.0.113.5"), ("user", "x")],
            "",
        );
        assert_eq!(v, Verdict::Kept);
        assert_eq!(f.get("src_ip"), Some("203.0.113.5"));
        assert_eq!(f.get("user"), Some("x"), "other fields stay, in order");
        let (_, f) = settle(&mut c, &[("src_ip", "2001:DB8:0:0::1")], "");
        assert_eq!(f.get("src_ip"), Some("2001:db8::1"));
        let (_, f) = settle(&mut c, &[("src_ip", "[2001:db8::2]")], "");
        assert_eq!(f.get("src_ip"), Some("2001:db8::2"));
        let (_, f) = settle(&mut c, &[("src_ip", "198.51.100.7")], "");
        assert_eq!(f.get("src_ip"), Some("198.51.100.7"));
    }

    #[test]
    fn host_names_move_to_src_host_and_junk_is_rejected() {
        let mut c = ClientCheck::default();
        let (v, f) = settle(
            &mut c,
            &[("src_ip", "220-135-151-1.hinet-ip.hinet.net")],
            "",
        );
        assert_eq!(v, Verdict::Kept);
        assert_eq!(f.get("src_ip"), None);
        assert_eq!(f.get("src_host"), Some("220-135-151-1.hinet-ip.hinet.net"));
        for junk in [
            "<script>alert(1)</script>",
            "a\x1b[31mb",
            "1.2.3.4 port 22",
            "",
            "999.1.1.1",
        ] {
            let (v, _) = settle(&mut c, &[("src_ip", junk)], "");
            assert_eq!(v, Verdict::Rejected, "{junk:?}");
        }
        let (v, _) = settle(&mut c, &[("user", "root")], "");
        assert_eq!(v, Verdict::Kept, "no client field: nothing to settle");
    }

    #[test]
    fn forwarded_for_is_believed_only_from_trusted_proxies() {
        let proxies = vec![
            "127.0.0.1".parse().expect("net"),
            "10.0.0.0/8".parse().expect("net"),
        ];
        let mut c = ClientCheck::new(proxies);
        let line = r#"127.0.0.1 - - [31/Oct/2020:23:30:00 +0700] "GET /.env HTTP/1.1" 404 0 "-" "curl/8 \"x\"" "198.51.100.9, 203.0.113.5, 10.1.2.3""#;
        let (_, f) = settle(&mut c, &[("src_ip", "127.0.0.1")], line);
        assert_eq!(
            f.get("src_ip"),
            Some("203.0.113.5"),
            "rightmost untrusted hop"
        );
        assert_eq!(f.get("proxy"), Some("127.0.0.1"));
        // The same line from an untrusted client: its own header is not believed.
        let (_, f) = settle(&mut c, &[("src_ip", "192.0.2.1")], line);
        assert_eq!(f.get("src_ip"), Some("192.0.2.1"));
        assert_eq!(f.get("proxy"), None);
        // No X-Forwarded-For field, or "-": the proxy stays the client.
        let plain =
            r#"127.0.0.1 - - [31/Oct/2020:23:30:00 +0700] "GET / HTTP/1.1" 200 5 "-" "curl/8""#;
        let (_, f) = settle(&mut c, &[("src_ip", "127.0.0.1")], plain);
        assert_eq!(f.get("src_ip"), Some("127.0.0.1"));
        let dash = format!("{plain} \"-\"");
        let (_, f) = settle(&mut c, &[("src_ip", "127.0.0.1")], &dash);
        assert_eq!(f.get("src_ip"), Some("127.0.0.1"));
        let port = format!("{plain} \"203.0.113.8:4711\"");
        let (_, f) = settle(&mut c, &[("src_ip", "127.0.0.1")], &port);
        assert_eq!(f.get("src_ip"), Some("203.0.113.8"));
    }
}
