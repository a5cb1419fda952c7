//! Credentials of the HTTP side: bearer tokens read from files, and the basic
//! auth user with a bcrypt password hash (as Prometheus's exporter-toolkit
//! `web.yml` has it).
//!
//! Tokens are kept only as SHA-256 digests. A presented token is hashed and
//! compared with every configured digest by [`ct_eq`], a fold of XORs over
//! all 32 bytes with no early exit, and the loop over the tokens never
//! stops at a match either: how long a check takes says nothing about how
//! much of a token was right, nor which token matched. (Hashing first also
//! makes the comparison independent of the presented token's length.)

use std::collections::VecDeque;
use std::fmt;
use std::str::FromStr;
use std::sync::Mutex;

use base64::Engine as _;
use sha2::{Digest, Sha256};

/// Shortest token accepted in a token file (64 bits as hex, 96 as base64:
/// far beyond guessing over HTTP; `openssl rand -hex 32` gives 64 characters).
pub const MIN_TOKEN_LEN: usize = 16;
/// Longest token accepted (and longest Authorization value looked at).
pub const MAX_TOKEN_LEN: usize = 4096;

/// SHA-256 of `data`.
pub fn digest(data: &[u8]) -> [u8; 32] {
    Sha256::digest(data).into()
}

/// Equality of two digests in constant time: every byte is looked at,
/// whatever the first difference.
pub fn ct_eq(a: &[u8; 32], b: &[u8; 32]) -> bool {
    let diff = a
        .iter()
        .zip(b.iter())
        .fold(0u8, |acc, (x, y)| acc | (x ^ y));
    // Keeps the optimiser from turning the fold back into an early exit.
    std::hint::black_box(diff) == 0
}

/// The tokens of a token file, as digests, each with its name for the
/// audit trail: the comment line just above it (`# national center`), or
/// `line N`. `Debug` shows only how many.
#[derive(Clone, Default, PartialEq, Eq)]
pub struct Tokens(Vec<([u8; 32], String)>);

/// Longest token name kept from its comment line.
const MAX_NAME_LEN: usize = 64;

impl fmt::Debug for Tokens {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Tokens({} redacted)", self.0.len())
    }
}

/// A line of a token file that is not a token.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TokenLineError {
    /// 1-based.
    pub line: u64,
    pub column: u64,
    pub message: String,
}

impl Tokens {
    /// Parses a token file: one token per line; blank lines and lines whose
    /// first non-blank character is `#` are ignored; leading and trailing
    /// white space is trimmed. A token is at least [`MIN_TOKEN_LEN`] visible
    /// ASCII characters with no space (so `TOKEN # note` is refused rather
    /// than taken as a token with a space in it). At least one is required.
    pub fn parse(text: &str) -> Result<Tokens, Vec<TokenLineError>> {
        let mut tokens = Vec::new();
        let mut errors = Vec::new();
        let mut comment: Option<String> = None;
        for (n, raw) in (1u64..).zip(text.lines()) {
            let token = raw.trim();
            if let Some(note) = token.strip_prefix('#') {
                let note: String = note
                    .trim()
                    .chars()
                    .filter(|c| !c.is_control())
                    .take(MAX_NAME_LEN)
                    .collect();
                comment = (!note.is_empty()).then_some(note);
                continue;
            }
            if token.is_empty() {
                continue;
            }
            let name = comment.take().unwrap_or_else(|| format!("line {n}"));
            let column = (raw.len() - raw.trim_start().len()) as u64 + 1;
            let mut error = |message: String| {
                errors.push(TokenLineError {
                    line: n,
                    column,
                    message,
                })
            };
            if let Some(bad) = token.chars().find(|c| !c.is_ascii_graphic()) {
                error(if bad.is_whitespace() {
                    "a token cannot contain white space (a comment goes on a line of its own, starting with #)".to_owned()
                } else {
                    format!("a token is visible ASCII only, found {bad:?}")
                });
            } else if token.len() < MIN_TOKEN_LEN {
                error(format!(
                    "token too short ({} characters): use at least {MIN_TOKEN_LEN}, e.g. the output of `openssl rand -hex 32`",
                    token.len()
                ));
            } else if token.len() > MAX_TOKEN_LEN {
                error(format!(
                    "token too long: at most {MAX_TOKEN_LEN} characters"
                ));
            } else {
                tokens.push((digest(token.as_bytes()), name));
            }
        }
        if tokens.is_empty() && errors.is_empty() {
            errors.push(TokenLineError {
                line: 1,
                column: 1,
                message: "no token in the file (one per line; # starts a comment line)".into(),
            });
        }
        if errors.is_empty() {
            Ok(Tokens(tokens))
        } else {
            Err(errors)
        }
    }

    pub fn len(&self) -> usize {
        self.0.len()
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// Whether `presented` is one of the tokens, in time independent of
    /// which token (if any) it matches and of how much of one it matches.
    pub fn verify(&self, presented: &[u8]) -> bool {
        self.name_of(presented).is_some()
    }

    /// The name of the token `presented` is, if it is one; in the same
    /// constant time as [`Tokens::verify`].
    pub fn name_of(&self, presented: &[u8]) -> Option<&str> {
        let d = digest(presented);
        // Every token is compared, and no comparison ends the loop.
        self.0.iter().fold(None, |found, (t, name)| {
            let hit = ct_eq(t, &d);
            if hit {
                Some(name.as_str())
            } else {
                found
            }
        })
    }
}

/// The token of an `Authorization: Bearer TOKEN` header value.
pub fn bearer(header: &[u8]) -> Option<&[u8]> {
    let (scheme, rest) = split_scheme(header)?;
    scheme.eq_ignore_ascii_case(b"bearer").then_some(rest)
}

/// User and password of an `Authorization: Basic BASE64` header value.
pub fn basic(header: &[u8]) -> Option<(String, String)> {
    let (scheme, rest) = split_scheme(header)?;
    if !scheme.eq_ignore_ascii_case(b"basic") {
        return None;
    }
    let decoded = base64::engine::general_purpose::STANDARD
        .decode(rest)
        .ok()?;
    let text = String::from_utf8(decoded).ok()?;
    let (user, password) = text.split_once(':')?;
    Some((user.to_owned(), password.to_owned()))
}

fn split_scheme(header: &[u8]) -> Option<(&[u8], &[u8])> {
    if header.len() > MAX_TOKEN_LEN + 16 {
        return None;
    }
    let space = header.iter().position(|&b| b == b' ')?;
    let (scheme, rest) = header.split_at(space);
    let rest = rest.trim_ascii();
    (!rest.is_empty()).then_some((scheme, rest))
}

/// A bcrypt hash, checked when the config is read. `Debug` hides it.
#[derive(Clone, PartialEq, Eq)]
pub struct PasswordHash(String);

impl fmt::Debug for PasswordHash {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("PasswordHash(redacted)")
    }
}

impl FromStr for PasswordHash {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, String> {
        let s = s.trim();
        let version_ok = ["$2a$", "$2b$", "$2y$"].iter().any(|v| s.starts_with(v));
        match bcrypt::HashParts::from_str(s) {
            Ok(parts) if version_ok && s.len() == 60 => {
                if parts.get_cost() < 4 {
                    return Err(format!("bcrypt cost {} is below 4", parts.get_cost()));
                }
                Ok(PasswordHash(s.to_owned()))
            }
            _ => Err("not a bcrypt hash: expected 60 characters like \"$2y$10$...\" (make one with `htpasswd -nbBC 10 USER PASSWORD`, the part after the colon)".into()),
        }
    }
}

impl PasswordHash {
    pub fn cost(&self) -> u32 {
        bcrypt::HashParts::from_str(&self.0).map_or(0, |p| p.get_cost())
    }
}

/// Basic auth against one user and bcrypt hash. bcrypt is slow on
/// purpose (tens of milliseconds at cost 10): like exporter-toolkit, the
/// digests of credentials that passed are remembered (a few, the most
/// recent), so a scrape every 15 s costs one SHA-256, not one bcrypt.
pub struct BasicAuth {
    user: [u8; 32],
    hash: PasswordHash,
    /// SHA-256 of "user\0password" of recent successes.
    passed: Mutex<VecDeque<[u8; 32]>>,
}

const PASSED_CACHE: usize = 8;

impl BasicAuth {
    pub fn new(user: &str, hash: PasswordHash) -> BasicAuth {
        BasicAuth {
            user: digest(user.as_bytes()),
            hash,
            passed: Mutex::new(VecDeque::new()),
        }
    }

    /// Whether `user` and `password` are right. Runs bcrypt unless the pair
    /// passed recently: call it off the async threads.
    pub fn verify(&self, user: &str, password: &str) -> bool {
        let mut key = Sha256::new();
        key.update(user.as_bytes());
        key.update([0]);
        key.update(password.as_bytes());
        let key: [u8; 32] = key.finalize().into();
        {
            let passed = self.passed.lock().unwrap_or_else(|e| e.into_inner());
            if passed.iter().fold(false, |found, p| found | ct_eq(p, &key)) {
                return true;
            }
        }
        // bcrypt runs whether or not the user is right, so the time does not
        // tell a wrong user from a wrong password.
        let user_ok = ct_eq(&self.user, &digest(user.as_bytes()));
        let password_ok = bcrypt::verify(password, &self.hash.0).unwrap_or(false);
        let ok = user_ok & password_ok;
        if ok {
            let mut passed = self.passed.lock().unwrap_or_else(|e| e.into_inner());
            if passed.len() >= PASSED_CACHE {
                passed.pop_front();
            }
            passed.push_back(key);
        }
        ok
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const T1: &str = "0123456789abcdef0123456789abcdef";
    const T2: &str = "fedcba9876543210fedcba9876543210-second";

    #[test]
    fn ct_eq_compares_whole_digests() {
        let a = digest(b"a");
        let mut b = a;
        assert!(ct_eq(&a, &b));
        for i in [0, 15, 31] {
            b = a;
            b[i] ^= 0x80;
            assert!(!ct_eq(&a, &b), "byte {i}");
            b[i] ^= 0x81;
            assert!(!ct_eq(&a, &b), "byte {i}");
        }
        assert!(!ct_eq(&[0; 32], &[0xff; 32]));
        assert!(ct_eq(&[0; 32], &[0; 32]));
    }

    #[test]
    fn token_file_with_comments_and_blank_lines() {
        let text =
            format!("# tokens for the national center\n\n  {T1}  \n\t# rotated 2025-01\n{T2}\r\n");
        let tokens = Tokens::parse(&text).expect("valid");
        assert_eq!(tokens.len(), 2);
        assert!(tokens.verify(T1.as_bytes()));
        assert!(tokens.verify(T2.as_bytes()));
        assert!(!tokens.verify(b""));
        assert!(!tokens.verify(&T1.as_bytes()[..31]));
        assert!(!tokens.verify(format!("{T1}x").as_bytes()));
        assert!(!tokens.verify(b"# tokens for the national center"));
        assert_eq!(format!("{tokens:?}"), "Tokens(2 redacted)");
        assert_eq!(
            tokens.name_of(T1.as_bytes()),
            Some("tokens for the national center")
        );
        assert_eq!(tokens.name_of(T2.as_bytes()), Some("rotated 2025-01"));
        assert_eq!(tokens.name_of(b"not a token at all"), None);
        let unnamed = Tokens::parse(&format!("\n{T1}\n")).expect("valid");
        assert_eq!(unnamed.name_of(T1.as_bytes()), Some("line 2"));
    }

    #[test]
    fn token_file_errors_name_line_and_column() {
        let text = format!("# c\nshort-token\n  {T1} # note\n{T2}\n");
        let errors = Tokens::parse(&text).expect_err("invalid");
        assert_eq!(errors.len(), 2, "{errors:?}");
        assert_eq!((errors[0].line, errors[0].column), (2, 1));
        assert!(errors[0].message.contains("too short"), "{errors:?}");
        assert_eq!((errors[1].line, errors[1].column), (3, 3));
        assert!(errors[1].message.contains("white space"), "{errors:?}");
        let errors = Tokens::parse("# only comments\n\n").expect_err("empty");
        assert!(errors[0].message.contains("no token"), "{errors:?}");
        let errors = Tokens::parse(&format!("{T1}é\n")).expect_err("non-ASCII");
        assert!(errors[0].message.contains("visible ASCII"), "{errors:?}");
    }

    #[test]
    fn authorization_headers() {
        assert_eq!(
            bearer(format!("Bearer {T1}").as_bytes()),
            Some(T1.as_bytes())
        );
        assert_eq!(bearer(b"bearer  abc "), Some(&b"abc"[..]));
        assert_eq!(bearer(b"Bearer "), None);
        assert_eq!(bearer(b"Basic abc"), None);
        assert_eq!(bearer(b"Bearerabc"), None);
        // "prom:s3cr:et"
        assert_eq!(
            basic(b"Basic cHJvbTpzM2NyOmV0"),
            Some(("prom".into(), "s3cr:et".into()))
        );
        assert_eq!(basic(b"Basic !!!"), None);
        assert_eq!(basic(b"Bearer cHJvbTpzM2NyOmV0"), None);
        // No colon.
        assert_eq!(basic(b"Basic cHJvbQ=="), None);
    }

    #[test]
    fn basic_auth_with_bcrypt() {
        let hash = bcrypt::hash("s3cret", 4).expect("hash");
        let auth = BasicAuth::new("prom", hash.parse().expect("bcrypt"));
        assert!(auth.verify("prom", "s3cret"));
        // Again, from the cache.
        assert!(auth.verify("prom", "s3cret"));
        assert!(!auth.verify("prom", "s3cre"));
        assert!(!auth.verify("root", "s3cret"));
        assert!(!auth.verify("", ""));
    }

    #[test]
    fn password_hashes_are_checked() {
        let ok = bcrypt::hash("s3cret", 5)
            .expect("hash")
            .replace("$2b$", "$2y$");
        let ok = ok.as_str();
        let h: PasswordHash = ok.parse().expect("valid");
        assert_eq!(h.cost(), 5);
        assert_eq!(format!("{h:?}"), "PasswordHash(redacted)");
        for bad in ["s3cret", "$2y$10$short", "$1$abc$def", &ok[..59]] {
            assert!(bad.parse::<PasswordHash>().is_err(), "{bad}");
        }
    }
}
