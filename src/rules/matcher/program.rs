//! Which syslog patterns name the program that writes their lines, so that a
//! line another program wrote cannot pass for that program's.
//!
//! Programs log what clients send them: Postfix writes a client's bytes into
//! `warning: non-SMTP command from unknown[203.0.113.5]: ...`, web servers
//! write URLs and user agents. A client that sends the text of another
//! program's line (`sshd[1]: Failed password for root from 198.51.100.9 port
//! 22 ssh2`) would have an unanchored pattern match inside that message and
//! blame an address of its choosing. A pattern that starts with a program's
//! name (`\bsshd(?:-session)?\[`, `kernel: `) therefore only counts when the
//! line's syslog tag (the program field after the host) is that program.
//!
//! Which patterns those are is read from the pattern and the rule's own
//! examples, so rule files need no new key: a pattern whose possible
//! beginnings are all names (its literal prefixes, up to `[`, `:` or `(`)
//! reads lines whose tag is one of them, or is the program its example
//! lines show writing them (Dovecot's `dovecot: imap-login: ...`, whose own
//! log file tags the line `imap-login:`). A pattern that begins with a
//! class, or has a branch anchored at the line start that may read
//! syslog-shaped lines of no program, is left as it was, as is a rule
//! without examples.

use regex_syntax::hir::literal::Extractor;
use regex_syntax::hir::{Class, Hir, HirKind, Look};

use crate::input::sniff::syslog_tag;
use crate::rules::Rule;

/// The program names a pattern's lines must carry as their tag.
pub(super) type Programs = Box<[Box<[u8]>]>;

/// The program names a syslog pattern starts with, when it is one that
/// must see them as its line's tag (see the module doc); `None` otherwise.
pub(super) fn program_names(hir: &Hir, rule: &Rule) -> Option<Programs> {
    let mut names: Vec<Box<[u8]>> = Vec::new();
    let mut anchored = false;
    for start in starts(hir) {
        let Some(start) = start else {
            // A branch anchored at the line start: no other program's
            // message can put it there.
            anchored = true;
            continue;
        };
        for literal in Extractor::new().extract(&start).literals()? {
            let name = program_name(literal.as_bytes())?;
            if !names.iter().any(|n| **n == *name) {
                names.push(name.into());
            }
        }
    }
    if names.is_empty() {
        return None;
    }
    let mut at_tag = false;
    let mut writers: Vec<Box<[u8]>> = Vec::new();
    for example in rule.examples.iter().filter(|e| e.must_match) {
        let line = example.line.as_bytes();
        let Some(tag) = syslog_tag(line) else {
            continue;
        };
        if names.iter().any(|n| tag.starts_with(n)) {
            at_tag = true;
        } else if anchored {
            // The line may be one its anchored branch reads (MySQL's error
            // log has a stamp of syslog's shape, and no program after it).
            return None;
        } else if names
            .iter()
            .any(|n| memchr::memmem::find(line, n).is_some())
        {
            // The pattern's words in the message of the program that writes
            // them (`dovecot: imap-login: ...`): that program's lines are
            // the pattern's too.
            let writer = program_name(tag)?;
            if !writers.iter().any(|w| **w == *writer) {
                writers.push(writer.into());
            }
            at_tag = true;
        }
    }
    names.extend(writers);
    at_tag.then_some(names.into_boxed_slice())
}

/// The ways `hir` can begin, each as a pattern whose literal prefixes are
/// where it can start (`None`: a branch anchored at the line start). A
/// leading alternation gives one per branch (`(?:^date |vsftpd\[\d+\]: )`),
/// and a leading host word (`(?P<host>\S+) sudo`) is passed over, as the tag
/// follows the host.
fn starts(hir: &Hir) -> Vec<Option<Hir>> {
    let parts: Vec<Hir> = match hir.kind() {
        HirKind::Concat(parts) => parts.clone(),
        _ => vec![hir.clone()],
    };
    let mut parts = &parts[..];
    while let Some((first, rest)) = parts.split_first() {
        if matches!(first.kind(), HirKind::Look(l) if is_word_boundary(*l)) {
            parts = rest;
        } else {
            break;
        }
    }
    let mut rest: Vec<Hir> = parts.to_vec();
    if let [host, after, ..] = parts {
        if let HirKind::Literal(lit) = after.kind() {
            if is_word(host.kind()) && lit.0.len() > 1 && lit.0[0] == b' ' {
                rest = std::iter::once(Hir::literal(lit.0[1..].to_vec()))
                    .chain(parts[2..].iter().cloned())
                    .collect();
            }
        }
    }
    let Some(first) = rest.first() else {
        return vec![Some(hir.clone())];
    };
    match unwrap_capture(first).kind() {
        HirKind::Alternation(branches) => branches
            .iter()
            .map(|b| {
                (!starts_at_line_start(b)).then(|| {
                    Hir::concat(
                        std::iter::once(b.clone())
                            .chain(rest[1..].iter().cloned())
                            .collect(),
                    )
                })
            })
            .collect(),
        _ if starts_at_line_start(first) => vec![None],
        _ => vec![Some(Hir::concat(rest))],
    }
}

fn unwrap_capture(hir: &Hir) -> &Hir {
    match hir.kind() {
        HirKind::Capture(c) => unwrap_capture(&c.sub),
        _ => hir,
    }
}

/// `\S+` or `[^ ]+`, captured or not: a host name's word.
fn is_word(hir: &HirKind) -> bool {
    let sub = match hir {
        HirKind::Capture(c) => c.sub.kind(),
        other => other,
    };
    match sub {
        HirKind::Repetition(r) => {
            r.min >= 1
                && r.max.is_none()
                && match r.sub.kind() {
                    HirKind::Class(Class::Bytes(c)) => {
                        !c.iter().any(|r| r.start() <= b' ' && b' ' <= r.end())
                    }
                    HirKind::Class(Class::Unicode(c)) => {
                        !c.iter().any(|r| r.start() <= ' ' && ' ' <= r.end())
                    }
                    _ => false,
                }
        }
        _ => false,
    }
}

fn is_word_boundary(look: Look) -> bool {
    matches!(
        look,
        Look::WordAscii | Look::WordUnicode | Look::WordStartAscii | Look::WordStartUnicode
    )
}

fn starts_at_line_start(hir: &Hir) -> bool {
    match hir.kind() {
        HirKind::Look(Look::Start | Look::StartLF | Look::StartCRLF) => true,
        HirKind::Concat(parts) => parts.first().is_some_and(starts_at_line_start),
        HirKind::Capture(c) => starts_at_line_start(&c.sub),
        _ => false,
    }
}

/// The program name a literal prefix starts with: a run of name bytes
/// that is the whole prefix or ends at `[`, `:` or `(` (`sshd[`, `kernel: `,
/// `sshd(pam_unix)[`), or in brackets as some systems tag (`[sshd]`, kept
/// with its `[`); `None` if the prefix is no program name.
fn program_name(prefix: &[u8]) -> Option<&[u8]> {
    let bracketed = prefix.first() == Some(&b'[');
    let from = usize::from(bracketed);
    let run = prefix[from..]
        .iter()
        .take_while(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'-' | b'.' | b'/'))
        .count();
    let ends_well = match prefix.get(from + run) {
        None => true,
        Some(b']') => bracketed,
        Some(b) => !bracketed && matches!(b, b'[' | b':' | b'('),
    };
    let starts_well = prefix.get(from).is_some_and(u8::is_ascii_alphanumeric);
    (run >= 2 && starts_well && ends_well).then(|| &prefix[..from + run])
}

/// The program a syslog line names in its tag: the tag as written, and
/// from the program's name on when the tag holds its path
/// (`/usr/sbin/sshd[1]: `, as some systems log). Found once per line.
pub(super) struct Writer<'l> {
    tag: &'l [u8],
    program: &'l [u8],
}

impl<'l> Writer<'l> {
    /// `None` for a line with no syslog header.
    pub(super) fn of(line: &'l [u8]) -> Option<Writer<'l>> {
        let tag = syslog_tag(line)?;
        let program = if tag.first() == Some(&b'/') {
            let token = tag
                .iter()
                .position(|b| matches!(b, b'[' | b':' | b' '))
                .unwrap_or(tag.len());
            let slash = tag[..token].iter().rposition(|&b| b == b'/').unwrap_or(0);
            &tag[slash + 1..]
        } else {
            tag
        };
        Some(Writer { tag, program })
    }
}

/// Whether a line whose tag names `writer` may be one of the lines `names`
/// (from [`program_names`]) belong to: its tag starts with one of them, or
/// it has no syslog header to tell.
pub(super) fn written_by(names: &[Box<[u8]>], writer: Option<&Writer>) -> bool {
    writer.is_none_or(|w| {
        names
            .iter()
            .any(|n| w.tag.starts_with(n) || w.program.starts_with(n))
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_program_name_is_a_run_of_name_bytes_up_to_its_punctuation() {
        assert_eq!(program_name(b"sshd["), Some(&b"sshd"[..]));
        assert_eq!(program_name(b"sshd"), Some(&b"sshd"[..]));
        assert_eq!(program_name(b"kernel: "), Some(&b"kernel"[..]));
        assert_eq!(program_name(b"postfix/smtpd["), Some(&b"postfix/smtpd"[..]));
        assert_eq!(program_name(b"sshd(pam_unix)["), Some(&b"sshd"[..]));
        assert_eq!(program_name(b"Failed password for "), None);
        assert_eq!(program_name(b"client "), None);
        assert_eq!(program_name(b"[sshd]:"), Some(&b"[sshd"[..]));
        assert_eq!(program_name(b"[sshd["), None);
        assert_eq!(program_name(b"["), None);
        assert_eq!(program_name(b"x["), None);
    }

    #[test]
    fn a_line_is_written_by_the_program_its_tag_names() {
        let names: Vec<Box<[u8]>> = vec![b"sshd".to_vec().into()];
        let ok = |l: &str| written_by(&names, Writer::of(l.as_bytes()).as_ref());
        assert!(ok(
            "Oct 31 23:30:00 srv sshd[1]: Failed password for root from 192.0.2.1 port 22 ssh2"
        ));
        assert!(ok("Oct 31 23:30:00 srv sshd-session[1]: Failed password"));
        assert!(ok("2020-10-31T23:30:00+07:00 srv sshd[1]: Failed password"));
        assert!(ok("<34>Oct 31 23:30:00 srv sshd[1]: Failed password"));
        // No host: the tag follows the stamp.
        assert!(ok(
            "Oct 31 23:30:00 sshd[1]: error: PAM: Authentication failure"
        ));
        assert!(ok("Oct 31 23:30:00 srv /usr/sbin/sshd[1]: Failed password"));
        assert!(!ok(
            "Oct 31 23:30:00 srv /usr/sbin/httpd[1]: sshd[1]: Failed password"
        ));
        // A tag in brackets, no host.
        let bracketed: Vec<Box<[u8]>> = vec![b"[sshd".to_vec().into()];
        assert!(written_by(
            &bracketed,
            Writer::of(b"Jun 25 23:53:34 [sshd] User root from 192.0.2.34 not allowed").as_ref()
        ));
        // No syslog header at all: nothing to tell by.
        assert!(ok("sshd[1]: Failed password"));
        assert!(!ok("Oct 31 23:30:00 mx1 postfix/smtpd[1]: warning: non-SMTP command from unknown[203.0.113.5]: sshd[1]: Failed password for root from 198.51.100.9 port 22 ssh2"));
        assert!(!ok(
            "Oct 31 23:30:00 srv nginx: 203.0.113.5 - - sshd[1]: Failed password"
        ));
    }
}

#[cfg(test)]
mod shipped {
    use crate::input::sniff::syslog_tag;
    use crate::rules::matcher::Matcher;
    use crate::rules::RuleSet;

    /// Every shipped syslog example line, its message replayed by a client
    /// into Postfix's `non-SMTP command` warning: the lines of rules whose
    /// patterns name their program no longer hit; the rest are counted.
    #[test]
    fn a_client_cannot_replay_another_programs_line_through_postfix() {
        let rs = RuleSet::shipped();
        let m = Matcher::new(&rs, "syslog").expect("compiles");
        let mut scratch = m.scratch();
        let (mut replayed, mut fooled, mut rules) = (0, 0, Vec::new());
        for rule in rs.for_type("syslog") {
            let r = rs.rule(rule);
            if r.id.starts_with("postfix-") || r.id.starts_with("smtp-") {
                continue;
            }
            for e in r.examples.iter().filter(|e| e.must_match) {
                let Some(tag) = syslog_tag(e.line.as_bytes()) else {
                    continue;
                };
                let fake = format!(
                    "Oct 31 23:30:00 mx1 postfix/smtpd[9]: warning: non-SMTP command from unknown[203.0.113.250]: {}",
                    String::from_utf8_lossy(tag)
                );
                replayed += 1;
                let hits = m.match_line(&mut scratch, fake.as_bytes());
                if hits.iter().any(|h| h.rule == rule) {
                    fooled += 1;
                    if !rules.contains(&r.id) {
                        rules.push(r.id.clone());
                    }
                }
            }
        }
        // Patterns that start with a class or a message word no program
        // writes first (`msg="Invalid username or password"`) are left to
        // their own anchoring.
        eprintln!("{fooled} of {replayed} example lines still hit when replayed, rules {rules:?}");
        assert!(replayed > 300);
        assert!(fooled * 6 < replayed, "{fooled} of {replayed}");
        for id in [
            "ssh-failed-password",
            "ssh-invalid-user",
            "vsftpd-fail-login",
            "sudo-incorrect-password",
            "firewall-port-scan",
            "proftpd-login-failure",
            "dovecot-login-failure",
            "cyrus-login-failure",
        ] {
            assert!(!rules.iter().any(|r| r == id), "{id} is fooled");
        }
    }
}
