//! The combined log format line the access-log rules read, written from the fields of a
//! request another format logged (IIS's W3C log, JSON access logs):
//! `CLIENT - USER [31/Oct/2020:16:30:00 +0000] "METHOD PATH?QUERY PROTOCOL" STATUS BYTES
//! "REFERER" "USER-AGENT"`, with a `"X-FORWARDED-FOR"` field after when the request had one,
//! as nginx's stock `main` format writes it.

/// One request, its fields as the other format wrote them (`None`: not logged).
pub struct Request<'a> {
    pub client: &'a [u8],
    pub user: Option<&'a [u8]>,
    /// `31/Oct/2020:16:30:00 +0000`, without brackets.
    pub stamp: &'a [u8],
    pub method: &'a [u8],
    pub path: &'a [u8],
    pub query: Option<&'a [u8]>,
    pub protocol: Option<&'a [u8]>,
    pub status: &'a [u8],
    pub bytes: Option<&'a [u8]>,
    pub referer: Option<&'a [u8]>,
    pub user_agent: Option<&'a [u8]>,
    pub forwarded_for: Option<&'a [u8]>,
}

impl Request<'_> {
    /// Whether the fields the access-log rules rely on have the shape a request's have: a
    /// method of letters and a three-digit status. A client address is checked later, as
    /// every `src_ip` is.
    pub fn is_request(&self) -> bool {
        !self.client.is_empty()
            && !self.method.is_empty()
            && self.method.iter().all(u8::is_ascii_alphabetic)
            && self.status.len() == 3
            && self.status.iter().all(u8::is_ascii_digit)
    }

    /// Appends the combined line (no `\n`) to `out`. `plus_is_space`: the user agent writes a
    /// space as `+` (W3C).
    pub fn write(&self, plus_is_space: bool, out: &mut Vec<u8>) {
        out.extend_from_slice(self.client);
        out.extend_from_slice(b" - ");
        out.extend_from_slice(self.user.unwrap_or(b"-"));
        out.extend_from_slice(b" [");
        out.extend_from_slice(self.stamp);
        out.extend_from_slice(b"] \"");
        out.extend_from_slice(self.method);
        out.push(b' ');
        quoted(self.path, false, out);
        if let Some(query) = self.query {
            out.push(b'?');
            quoted(query, false, out);
        }
        out.push(b' ');
        quoted(self.protocol.unwrap_or(b"HTTP/1.1"), false, out);
        out.extend_from_slice(b"\" ");
        out.extend_from_slice(self.status);
        out.push(b' ');
        out.extend_from_slice(self.bytes.unwrap_or(b"-"));
        out.extend_from_slice(b" \"");
        quoted(self.referer.unwrap_or(b"-"), false, out);
        out.extend_from_slice(b"\" \"");
        quoted(self.user_agent.unwrap_or(b"-"), plus_is_space, out);
        out.push(b'"');
        if let Some(xff) = self.forwarded_for {
            out.extend_from_slice(b" \"");
            quoted(xff, false, out);
            out.push(b'"');
        }
    }
}

/// The months as the combined format names them.
pub const MONTHS: [&[u8; 3]; 12] = [
    b"Jan", b"Feb", b"Mar", b"Apr", b"May", b"Jun", b"Jul", b"Aug", b"Sep", b"Oct", b"Nov", b"Dec",
];

/// A field inside the combined line's quotes: `"` and `\` escaped as Apache does (so the
/// field cannot end early and forge the fields after it), and, when `plus_is_space`, `+`
/// turned back into a space. Control bytes are written as `\xHH`, as Apache and nginx do.
fn quoted(value: &[u8], plus_is_space: bool, out: &mut Vec<u8>) {
    for &b in value {
        match b {
            b'"' | b'\\' => out.extend_from_slice(&[b'\\', b]),
            b'+' if plus_is_space => out.push(b' '),
            0..=0x1f | 0x7f => {
                const HEX: &[u8; 16] = b"0123456789abcdef";
                out.extend_from_slice(&[
                    b'\\',
                    b'x',
                    HEX[usize::from(b >> 4)],
                    HEX[usize::from(b & 15)],
                ]);
            }
            _ => out.push(b),
        }
    }
}
