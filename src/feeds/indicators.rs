//! One feed's indicators, held for lookups that cost about one hash probe
//! (or one per distinct CIDR prefix length) whatever the feed's size.
//!
//! - addresses and CIDR ranges: one hash set of network addresses per prefix
//!   length present in the feed, probed from the longest length down, so the
//!   most specific entry wins; a plain address is a /32 (/128). Feeds hold a
//!   handful of distinct lengths (32, 24, 16...), hence a handful of probes.
//! - domains: one set of names; a looked-up name is probed whole and then
//!   at every suffix that starts after a dot (`a.b.evil.example`,
//!   `b.evil.example`, `evil.example`, `example`), so an entry covers its
//!   subdomains. Entries holding an `@` are whole mail addresses, matched
//!   exactly before the domain part is walked.
//! - URLs: one set of normalised URLs; a looked-up URL is probed with and
//!   without its query string.
//! - file hashes: sorted arrays per digest length (MD5, SHA-1, SHA-256,
//!   SHA-512), binary-searched; the digests are random, so nothing beats
//!   keeping them as raw bytes.
//!
//! Strings live in one arena with a table of (start, end) pairs, so a
//! million domains cost their text plus eight bytes a slot, not a heap
//! allocation each.

use std::fmt;
use std::hash::BuildHasher;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use hashbrown::{DefaultHashBuilder, HashSet, HashTable};

use crate::ids::id_enum;

id_enum! {
    /// What a feed's indicators are.
    #[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
    pub enum FeedKind: "feed kind" {
        /// IPv4/IPv6 addresses and CIDR ranges.
        Ip => "ip",
        /// Domain names (covering their subdomains) and mail addresses.
        Domain => "domain",
        /// URLs, absolute (`http://host/path`) or as paths (`/path`).
        Url => "url",
        /// File digests: MD5, SHA-1, SHA-256 or SHA-512, in hex.
        Hash => "hash",
    }
}

/// The indicators of one feed. Filled entry by entry (from a file, or by
/// any other part of canhgac that has indicators to publish), then only read.
pub struct IndicatorSet {
    kind: FeedKind,
    len: usize,
    table: Table,
}

enum Table {
    Ip(IpTable),
    Domain { names: StrSet, addresses: StrSet },
    Url(StrSet),
    Hash(HashTables),
}

impl fmt::Debug for IndicatorSet {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "IndicatorSet({}, {} indicators)", self.kind, self.len)
    }
}

impl IndicatorSet {
    pub fn new(kind: FeedKind) -> Self {
        let table = match kind {
            FeedKind::Ip => Table::Ip(IpTable::default()),
            FeedKind::Domain => Table::Domain {
                names: StrSet::default(),
                addresses: StrSet::default(),
            },
            FeedKind::Url => Table::Url(StrSet::default()),
            FeedKind::Hash => Table::Hash(HashTables::default()),
        };
        IndicatorSet {
            kind,
            len: 0,
            table,
        }
    }

    pub fn kind(&self) -> FeedKind {
        self.kind
    }

    /// Distinct indicators held.
    pub fn len(&self) -> usize {
        self.len
    }

    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Adds one indicator as a feed writes it (defanged forms such as
    /// `evil[.]example` and `hxxp://` accepted). `Ok(false)` if it was
    /// already there; `Err` says why the text is not an indicator of this kind.
    pub fn insert(&mut self, text: &str) -> Result<bool, String> {
        let text = text.trim();
        if text.is_empty() {
            return Err("empty indicator".into());
        }
        let fresh = match &mut self.table {
            Table::Ip(t) => {
                let (addr, len) = parse_network(&refang(text))?;
                t.insert(addr, len)
            }
            Table::Domain { names, addresses } => {
                let entry = normalise_domain_entry(text)?;
                if entry.contains('@') {
                    addresses.insert(&entry)
                } else {
                    names.insert(&entry)
                }
            }
            Table::Url(set) => set.insert(&normalise_url_entry(text)?),
            Table::Hash(t) => t.insert(text)?,
        };
        if fresh {
            self.len += 1;
        }
        Ok(fresh)
    }

    /// The indicator `value` (a field captured from a log line) falls
    /// under, as the feed holds it (`203.0.113.0/24`, `evil.example`), or
    /// `None`.
    pub fn lookup(&self, value: &str) -> Option<String> {
        let value = value.trim();
        if value.is_empty() {
            return None;
        }
        match &self.table {
            Table::Ip(t) => t.lookup(value),
            Table::Domain { names, addresses } => lookup_domain(names, addresses, value),
            Table::Url(set) => lookup_url(set, value),
            Table::Hash(t) => t.lookup(value),
        }
    }
}

/// Undoes the usual defanging of shared indicators.
fn refang(text: &str) -> std::borrow::Cow<'_, str> {
    if !text.contains(['[', '(', '{']) && !text.starts_with("hxxp") && !text.starts_with("hXXp") {
        return std::borrow::Cow::Borrowed(text);
    }
    let mut s = text
        .replace("[.]", ".")
        .replace("(.)", ".")
        .replace("{.}", ".")
        .replace("[dot]", ".")
        .replace("[:]", ":")
        .replace("[://]", "://")
        .replace("[@]", "@");
    for (from, to) in [
        ("hxxps", "https"),
        ("hxxp", "http"),
        ("hXXps", "https"),
        ("hXXp", "http"),
    ] {
        if let Some(rest) = s.strip_prefix(from) {
            s = format!("{to}{rest}");
            break;
        }
    }
    std::borrow::Cow::Owned(s)
}

// ---------------------------------------------------------------- addresses

#[derive(Default)]
struct IpTable {
    /// (prefix length, networks of that length), longest first.
    v4: Vec<(u8, HashSet<u32, DefaultHashBuilder>)>,
    v6: Vec<(u8, HashSet<u128, DefaultHashBuilder>)>,
}

impl IpTable {
    fn insert(&mut self, addr: IpAddr, len: u8) -> bool {
        match addr {
            IpAddr::V4(a) => insert_net(&mut self.v4, mask4(u32::from(a), len), len),
            IpAddr::V6(a) => insert_net(&mut self.v6, mask6(u128::from(a), len), len),
        }
    }

    fn lookup(&self, value: &str) -> Option<String> {
        match parse_address(value)? {
            IpAddr::V4(a) => find_net(&self.v4, u32::from(a), mask4)
                .map(|(net, len)| show_net(IpAddr::V4(Ipv4Addr::from(net)), len, 32)),
            IpAddr::V6(a) => find_net(&self.v6, u128::from(a), mask6)
                .map(|(net, len)| show_net(IpAddr::V6(Ipv6Addr::from(net)), len, 128)),
        }
    }
}

/// The most specific network in `tables` that holds `addr`, with its prefix length.
fn find_net<T: std::hash::Hash + Eq + Copy>(
    tables: &[(u8, HashSet<T, DefaultHashBuilder>)],
    addr: T,
    mask: impl Fn(T, u8) -> T,
) -> Option<(T, u8)> {
    tables.iter().find_map(|(len, set)| {
        let net = mask(addr, *len);
        set.contains(&net).then_some((net, *len))
    })
}

fn insert_net<T: std::hash::Hash + Eq>(
    tables: &mut Vec<(u8, HashSet<T, DefaultHashBuilder>)>,
    net: T,
    len: u8,
) -> bool {
    let at = match tables.iter().position(|(l, _)| *l <= len) {
        Some(i) if tables[i].0 == len => i,
        Some(i) => {
            tables.insert(i, (len, HashSet::default()));
            i
        }
        None => {
            tables.push((len, HashSet::default()));
            tables.len() - 1
        }
    };
    tables[at].1.insert(net)
}

fn show_net(addr: IpAddr, len: u8, full: u8) -> String {
    if len == full {
        addr.to_string()
    } else {
        format!("{addr}/{len}")
    }
}

fn mask4(a: u32, len: u8) -> u32 {
    if len == 0 {
        0
    } else {
        a & (u32::MAX << (32 - u32::from(len)))
    }
}

fn mask6(a: u128, len: u8) -> u128 {
    if len == 0 {
        0
    } else {
        a & (u128::MAX << (128 - u32::from(len)))
    }
}

/// An address as logs write it: plain, in brackets, with an IPv6 zone, or
/// IPv4-mapped IPv6 (taken as the IPv4 address, as the kernel means it).
fn parse_address(text: &str) -> Option<IpAddr> {
    let text = text
        .strip_prefix('[')
        .and_then(|t| t.strip_suffix(']'))
        .unwrap_or(text);
    let text = text.split('%').next().unwrap_or(text);
    match text.parse::<IpAddr>().ok()? {
        IpAddr::V6(a) => Some(match a.to_ipv4_mapped() {
            Some(v4) => IpAddr::V4(v4),
            None => IpAddr::V6(a),
        }),
        v4 => Some(v4),
    }
}

/// `ADDR` or `ADDR/LEN`; host bits below the prefix are cleared, as feeds
/// often write `198.51.100.7/24` for the range around an address.
fn parse_network(text: &str) -> Result<(IpAddr, u8), String> {
    let (addr, len) = match text.split_once('/') {
        Some((a, l)) => (a, Some(l)),
        None => (text, None),
    };
    let addr = parse_address(addr)
        .ok_or_else(|| format!("`{text}` is not an IP address or CIDR range"))?;
    let full = if addr.is_ipv4() { 32 } else { 128 };
    let len = match len {
        None => full,
        Some(l) => {
            // A mapped IPv6 prefix (::ffff:a.b.c.d/120) is an IPv4 one.
            let l: u8 = l
                .parse()
                .map_err(|_| format!("`{text}`: bad prefix length `{l}`"))?;
            let l = if addr.is_ipv4() && text.contains(':') {
                l.checked_sub(96)
                    .ok_or_else(|| format!("`{text}`: prefix too short for an IPv4-mapped range"))?
            } else {
                l
            };
            if l > full {
                return Err(format!("`{text}`: prefix length {l} is over {full}"));
            }
            l
        }
    };
    Ok((addr, len))
}

// ------------------------------------------------------------------ domains

/// Lower case, no trailing dot, no `*.` (an entry covers its subdomains anyway).
fn normalise_domain_entry(text: &str) -> Result<String, String> {
    let text = refang(text);
    let mut name = text.trim().to_ascii_lowercase();
    if name.starts_with("mailto:") {
        name.drain(..7);
    }
    let name = name.trim_start_matches("*.").trim_start_matches('.');
    let name = name.strip_suffix('.').unwrap_or(name);
    if !name.is_ascii() {
        return Err(format!(
            "`{text}` is not ASCII: write internationalised names in their xn-- (punycode) form, as DNS logs show them"
        ));
    }
    if name.contains("://") || name.contains('/') {
        return Err(format!(
            "`{text}` looks like a URL, not a domain: put it in a url feed"
        ));
    }
    let domain = match name.rsplit_once('@') {
        Some((local, domain)) => {
            if local.is_empty() || local.contains(['<', '>', ' ']) {
                return Err(format!("`{text}` is not a mail address"));
            }
            domain
        }
        None => name,
    };
    if !valid_domain(domain) {
        return Err(format!("`{text}` is not a domain name"));
    }
    Ok(name.to_owned())
}

fn valid_domain(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= 253
        && name.split('.').all(|label| {
            !label.is_empty()
                && label.len() <= 63
                && label
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
        })
}

fn lookup_domain(names: &StrSet, addresses: &StrSet, value: &str) -> Option<String> {
    let value = value.strip_suffix('.').unwrap_or(value);
    let mut buf = [0u8; 320];
    let lowered: &str = if value.len() <= buf.len() {
        let b = &mut buf[..value.len()];
        b.copy_from_slice(value.as_bytes());
        b.make_ascii_lowercase();
        std::str::from_utf8(b).ok()?
    } else {
        return None;
    };
    let domain = match lowered.rsplit_once('@') {
        Some((_, domain)) => {
            if addresses.contains(lowered) {
                return Some(lowered.to_owned());
            }
            domain
        }
        None => lowered,
    };
    if names.is_empty() {
        return None;
    }
    let mut rest = domain;
    loop {
        if names.contains(rest) {
            return Some(rest.to_owned());
        }
        match rest.split_once('.') {
            Some((_, tail)) if !tail.is_empty() => rest = tail,
            _ => return None,
        }
    }
}

// --------------------------------------------------------------------- URLs

/// `scheme://Host:port/path?query#frag` -> `host[:port]/path?query`, with
/// the scheme's default port dropped; a path (`/x.php`) stays as it is.
fn normalise_url(text: &str) -> Option<String> {
    let text = text.split('#').next().unwrap_or(text);
    if text.starts_with('/') {
        return Some(text.to_owned());
    }
    let (scheme, rest) = match text.split_once("://") {
        Some((s, r)) => (Some(s.to_ascii_lowercase()), r),
        None => (None, text),
    };
    let (authority, path) = match rest.find(['/', '?']) {
        Some(i) => (&rest[..i], &rest[i..]),
        None => (rest, "/"),
    };
    let authority = authority
        .rsplit_once('@')
        .map_or(authority, |(_, host)| host);
    if authority.is_empty() || authority.contains(char::is_whitespace) {
        return None;
    }
    let mut host = authority.to_ascii_lowercase();
    let default_port = match scheme.as_deref() {
        Some("http") => Some(":80"),
        Some("https") => Some(":443"),
        Some("ftp") => Some(":21"),
        _ => None,
    };
    if let Some(port) = default_port {
        if let Some(h) = host.strip_suffix(port) {
            host = h.to_owned();
        }
    }
    let path = if path.starts_with('?') {
        format!("/{path}")
    } else {
        path.to_owned()
    };
    Some(format!("{host}{path}"))
}

fn normalise_url_entry(text: &str) -> Result<String, String> {
    let text = refang(text);
    let looks_like_url = text.starts_with('/') || text.contains("://");
    match normalise_url(&text) {
        Some(u) if looks_like_url => Ok(u),
        _ => Err(format!(
            "`{text}` is not a URL: write it with its scheme (http://host/path) or as a path (/path)"
        )),
    }
}

fn lookup_url(set: &StrSet, value: &str) -> Option<String> {
    let url = normalise_url(value)?;
    if set.contains(&url) {
        return Some(url);
    }
    let (without_query, _) = url.split_once('?')?;
    set.contains(without_query)
        .then(|| without_query.to_owned())
}

// ------------------------------------------------------------------- hashes

#[derive(Default)]
struct HashTables {
    md5: Vec<[u8; 16]>,
    sha1: Vec<[u8; 20]>,
    sha256: Vec<[u8; 32]>,
    sha512: Vec<[u8; 64]>,
}

impl HashTables {
    fn insert(&mut self, text: &str) -> Result<bool, String> {
        let text = text.trim();
        let bad = || format!("`{text}` is not an MD5, SHA-1, SHA-256 or SHA-512 digest in hex");
        match text.len() {
            32 => self.md5.push(decode(text).ok_or_else(bad)?),
            40 => self.sha1.push(decode(text).ok_or_else(bad)?),
            64 => self.sha256.push(decode(text).ok_or_else(bad)?),
            128 => self.sha512.push(decode(text).ok_or_else(bad)?),
            _ => return Err(bad()),
        }
        // Duplicates are found (and dropped) in `finish`.
        Ok(true)
    }

    fn finish(&mut self) -> usize {
        fn sort<const N: usize>(v: &mut Vec<[u8; N]>) -> usize {
            let before = v.len();
            v.sort_unstable();
            v.dedup();
            v.shrink_to_fit();
            before - v.len()
        }
        sort(&mut self.md5) + sort(&mut self.sha1) + sort(&mut self.sha256) + sort(&mut self.sha512)
    }

    fn lookup(&self, value: &str) -> Option<String> {
        fn find<const N: usize>(v: &[[u8; N]], value: &str) -> bool {
            decode::<N>(value).is_some_and(|d| v.binary_search(&d).is_ok())
        }
        let hit = match value.len() {
            32 => find(&self.md5, value),
            40 => find(&self.sha1, value),
            64 => find(&self.sha256, value),
            128 => find(&self.sha512, value),
            _ => false,
        };
        hit.then(|| value.to_ascii_lowercase())
    }
}

fn decode<const N: usize>(hex: &str) -> Option<[u8; N]> {
    let hex = hex.as_bytes();
    if hex.len() != 2 * N {
        return None;
    }
    let nibble = |c: u8| match c {
        b'0'..=b'9' => Some(c - b'0'),
        b'a'..=b'f' => Some(c - b'a' + 10),
        b'A'..=b'F' => Some(c - b'A' + 10),
        _ => None,
    };
    let mut out = [0u8; N];
    for (i, o) in out.iter_mut().enumerate() {
        *o = nibble(hex[2 * i])? << 4 | nibble(hex[2 * i + 1])?;
    }
    Some(out)
}

// ------------------------------------------------------------------ strings

/// A set of strings kept in one arena.
#[derive(Default)]
struct StrSet {
    arena: String,
    table: HashTable<(u32, u32)>,
    hasher: DefaultHashBuilder,
}

impl StrSet {
    fn is_empty(&self) -> bool {
        self.table.is_empty()
    }

    fn contains(&self, s: &str) -> bool {
        let h = self.hasher.hash_one(s);
        let arena = &self.arena;
        self.table
            .find(h, |&(a, b)| &arena[a as usize..b as usize] == s)
            .is_some()
    }

    fn insert(&mut self, s: &str) -> bool {
        let StrSet {
            arena,
            table,
            hasher,
        } = self;
        let h = hasher.hash_one(s);
        if table
            .find(h, |&(a, b)| &arena[a as usize..b as usize] == s)
            .is_some()
        {
            return false;
        }
        // Past 4 GiB of text the offsets would wrap; no feed comes close,
        // and the file size cap keeps it so.
        let start = arena.len() as u32;
        arena.push_str(s);
        let end = arena.len() as u32;
        table.insert_unique(h, (start, end), |&(a, b)| {
            hasher.hash_one(&arena[a as usize..b as usize])
        });
        true
    }
}

impl IndicatorSet {
    /// Ends filling: sorts what is binary-searched and drops the duplicate
    /// digests that `insert` counted. Lookups before it may miss digests.
    pub fn finish(&mut self) {
        if let Table::Hash(t) = &mut self.table {
            let dropped = t.finish();
            self.len -= dropped;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn set(kind: FeedKind, entries: &[&str]) -> IndicatorSet {
        let mut s = IndicatorSet::new(kind);
        for e in entries {
            s.insert(e).unwrap_or_else(|err| panic!("{e}: {err}"));
        }
        s.finish();
        s
    }

    /// Each value looked up and the entry it falls under.
    fn assert_found(s: &IndicatorSet, cases: &[(&str, &str)]) {
        for &(value, entry) in cases {
            assert_eq!(s.lookup(value).as_deref(), Some(entry), "{value}");
        }
    }

    /// Values that fall under no entry.
    fn assert_not_found(s: &IndicatorSet, values: &[&str]) {
        for value in values {
            assert_eq!(s.lookup(value), None, "{value}");
        }
    }

    /// Texts that are not indicators of `kind`.
    fn assert_refused(kind: FeedKind, texts: &[&str]) {
        let mut s = IndicatorSet::new(kind);
        for text in texts {
            assert!(s.insert(text).is_err(), "{text}");
        }
    }

    #[test]
    fn addresses_and_ranges_most_specific_first() {
        let s = set(
            FeedKind::Ip,
            &[
                "203.0.113.5",
                "198.51.100.0/24",
                "10.0.0.0/8",
                "10.1.0.0/16",
                "2001:db8::/32",
                "2001:db8:1::7",
                "192.0.2[.]9",
            ],
        );
        assert_eq!(s.len(), 7);
        assert_found(
            &s,
            &[
                ("203.0.113.5", "203.0.113.5"),
                ("198.51.100.77", "198.51.100.0/24"),
                ("10.1.2.3", "10.1.0.0/16"),
                ("10.2.2.3", "10.0.0.0/8"),
                ("2001:db8:1::7", "2001:db8:1::7"),
                ("[2001:db8:ffff::1]", "2001:db8::/32"),
                ("::ffff:203.0.113.5", "203.0.113.5"),
                ("192.0.2.9", "192.0.2.9"),
            ],
        );
        assert_not_found(&s, &["203.0.113.6", "fe80::1%eth0", "not-an-ip"]);
        assert_refused(FeedKind::Ip, &["300.1.1.1", "10.0.0.0/33", "evil.example"]);
        let mut ranges = IndicatorSet::new(FeedKind::Ip);
        assert_eq!(ranges.insert("203.0.113.9/24"), Ok(true));
        assert_eq!(
            ranges.insert("203.0.113.0/24"),
            Ok(false),
            "host bits are cleared"
        );
    }

    #[test]
    fn domains_cover_subdomains_and_addresses_are_exact() {
        let s = set(
            FeedKind::Domain,
            &[
                "Evil.Example.",
                "*.phish.test",
                "login-microsoftonline[.]example",
                "boss@mail.example",
            ],
        );
        assert_found(
            &s,
            &[
                ("evil.example", "evil.example"),
                ("A.B.EVIL.example.", "evil.example"),
                ("phish.test", "phish.test"),
                (
                    "x.login-microsoftonline.example",
                    "login-microsoftonline.example",
                ),
                ("someone@evil.example", "evil.example"),
                ("Boss@Mail.example", "boss@mail.example"),
            ],
        );
        assert_not_found(&s, &["notevil.example", "other@mail.example", "example"]);
        assert_refused(
            FeedKind::Domain,
            &["http://evil.example/x", "ví-dụ.vn", "a..b", "bad domain"],
        );
    }

    #[test]
    fn urls_normalise_scheme_host_port_and_query() {
        let s = set(
            FeedKind::Url,
            &[
                "hxxp://Evil.example:80/kit/login.php",
                "https://x.test/a?b=1",
                "/uploads/shell.php",
            ],
        );
        assert_found(
            &s,
            &[
                (
                    "http://evil.example/kit/login.php?u=1",
                    "evil.example/kit/login.php",
                ),
                (
                    "https://EVIL.example/kit/login.php#top",
                    "evil.example/kit/login.php",
                ),
                ("https://x.test/a?b=1", "x.test/a?b=1"),
                ("/uploads/shell.php?cmd=id", "/uploads/shell.php"),
            ],
        );
        assert_not_found(&s, &["https://x.test/a?b=2", "/uploads/other.php"]);
        assert_refused(FeedKind::Url, &["evil.example"]);
    }

    #[test]
    fn hashes_by_length_case_insensitive_and_deduplicated() {
        let md5 = "44d88612fea8a8f36de82e1278abb02f";
        let sha256 = "275A021BBFB6489E54D471899F7DB9D1663FC695EC2FE2A2C4538AABF651FD0F";
        let s = set(FeedKind::Hash, &[md5, sha256, &md5.to_uppercase()]);
        assert_eq!(s.len(), 2);
        assert_found(
            &s,
            &[
                (&md5.to_uppercase(), md5),
                (&sha256.to_lowercase(), &sha256.to_lowercase()),
            ],
        );
        assert_not_found(&s, &["00000000000000000000000000000000"]);
        assert_refused(FeedKind::Hash, &["xyz", &"g".repeat(32)]);
    }
}
