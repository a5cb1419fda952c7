//! Text from logs, made safe to show to a person.
//!
//! A log line is attacker-written. Shown as it is, a control character can
//! drive the analyst's terminal (ANSI escapes), and an invisible format
//! character can make text read as something else: a right-to-left override
//! (U+202E) reverses what follows ("Trojan Source", CVE-2021-42574), a
//! zero-width space splits a word an analyst would search for, a tag
//! character hides text altogether. Every output for people (tables,
//! Markdown, CSV, HTML) shows such a character as `<U+202E>`; JSON, which
//! machines read too, keeps the exact text but writes such a character as a
//! `\u` escape, so that it is visible wherever the JSON is printed.

use std::borrow::Cow;
use std::fmt::Write as _;
use std::io::{self, Write};

use serde::Serialize;

/// Whether `c` would act on a terminal or a page, or not show at all: C0
/// and C1 controls, DEL, bidirectional controls, zero-width and other
/// invisible format characters, line and paragraph separators, fillers that
/// render as blank, variation selectors and tag characters.
pub fn is_hidden(c: char) -> bool {
    c.is_control()
        || matches!(
            c,
            '\u{00AD}'
                | '\u{061C}'
                | '\u{115F}'
                | '\u{1160}'
                | '\u{17B4}'
                | '\u{17B5}'
                | '\u{180B}'..='\u{180F}'
                | '\u{200B}'..='\u{200F}'
                | '\u{2028}'..='\u{202E}'
                | '\u{2060}'..='\u{2064}'
                | '\u{2066}'..='\u{206F}'
                | '\u{3164}'
                | '\u{FE00}'..='\u{FE0F}'
                | '\u{FEFF}'
                | '\u{FFA0}'
                | '\u{FFF9}'..='\u{FFFB}'
                | '\u{1D173}'..='\u{1D17A}'
                | '\u{E0000}'..='\u{E007F}'
                | '\u{E0100}'..='\u{E01EF}'
        )
}

/// `s` with every hidden character (see [`is_hidden`]) shown as `<U+XXXX>`.
pub fn show(s: &str) -> Cow<'_, str> {
    if !s.chars().any(is_hidden) {
        return Cow::Borrowed(s);
    }
    let mut out = String::with_capacity(s.len() + 16);
    for c in s.chars() {
        push_shown(&mut out, c);
    }
    Cow::Owned(out)
}

/// The first `limit` characters of [`show`]`(s)`, without showing the rest
/// of `s` (a table cell of a line that may be kilobytes of tabs).
pub fn show_prefix(s: &str, limit: usize) -> String {
    let mut out = String::with_capacity(limit.min(s.len()) + 16);
    let mut shown = 0;
    for c in s.chars() {
        if shown >= limit {
            break;
        }
        if is_hidden(c) {
            let start = out.len();
            push_shown(&mut out, c);
            // An escape is ASCII: its bytes are its characters.
            let kept = (out.len() - start).min(limit - shown);
            out.truncate(start + kept);
            shown += kept;
        } else {
            out.push(c);
            shown += 1;
        }
    }
    out
}

/// Pushes `c`, or `<U+XXXX>` if it is hidden.
fn push_shown(out: &mut String, c: char) {
    if is_hidden(c) {
        // Writing to a String cannot fail.
        let _ = write!(out, "<U+{:04X}>", u32::from(c));
    } else {
        out.push(c);
    }
}

/// Serialised JSON with every hidden character that is still raw (the
/// serialiser escapes controls, not format characters) written as a `\u`
/// escape: the same JSON value, visible when printed. Such characters can
/// stand only inside strings, so replacing them anywhere is exact.
pub fn json(serialised: String) -> String {
    if !serialised.chars().any(is_hidden) {
        return serialised;
    }
    let mut out = String::with_capacity(serialised.len() + 16);
    for c in serialised.chars() {
        if is_hidden(c) && !c.is_ascii() {
            let mut units = [0u16; 2];
            for unit in c.encode_utf16(&mut units) {
                // Writing to a String cannot fail.
                let _ = write!(out, "\\u{unit:04x}");
            }
        } else {
            out.push(c);
        }
    }
    out
}

/// Writes `value` as JSON (indented when `pretty`), hidden characters
/// escaped (see [`json`]), and a newline.
pub fn write_json(out: &mut dyn Write, value: &impl Serialize, pretty: bool) -> io::Result<()> {
    let text = if pretty {
        serde_json::to_string_pretty(value)
    } else {
        serde_json::to_string(value)
    }?;
    out.write_all(json(text).as_bytes())?;
    out.write_all(b"\n")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn controls_and_invisible_characters_are_shown() {
        assert_eq!(show("plain text"), "plain text");
        assert_eq!(show("a\x1b[31mb\tc"), "a<U+001B>[31mb<U+0009>c");
        // Trojan Source: what reads as `admin` is not.
        assert_eq!(
            show("user \u{202E}nimda\u{202C} ok"),
            "user <U+202E>nimda<U+202C> ok"
        );
        assert_eq!(show("ad\u{200B}min"), "ad<U+200B>min");
        assert_eq!(show("x\u{E0041}y"), "x<U+E0041>y");
        assert_eq!(show("a\u{2028}b"), "a<U+2028>b");
    }

    #[test]
    fn a_prefix_is_the_start_of_the_whole_shown_text() {
        for text in ["a\tb\u{202E}c", "\t\t\t\t", "plain", "", "Tấn\u{200B}công"] {
            let whole = show(text);
            for limit in 0..30 {
                let expected: String = whole.chars().take(limit).collect();
                assert_eq!(show_prefix(text, limit), expected, "{text:?} {limit}");
            }
        }
    }

    #[test]
    fn vietnamese_and_other_scripts_are_left_alone() {
        for text in [
            "Tấn công dò mật khẩu SSH",
            "Nguyễn Thị Hồng Nhung",
            "Tie\u{0301}ng Vie\u{0323}t",
            "مرحبا",
            "日本語",
        ] {
            assert_eq!(show(text), text);
        }
    }

    #[test]
    fn json_keeps_the_value_and_escapes_hidden_characters() {
        let value =
            serde_json::json!({ "user": "\u{202E}nimda", "tag": "x\u{E0041}", "ok": "Việt" });
        let text = json(serde_json::to_string(&value).expect("json"));
        assert!(text.is_ascii() || !text.chars().any(is_hidden), "{text}");
        assert!(text.contains("\\u202e"), "{text}");
        assert!(text.contains("\\udb40\\udc41"), "{text}");
        assert!(text.contains("Việt"), "{text}");
        let back: serde_json::Value = serde_json::from_str(&text).expect("still JSON");
        assert_eq!(back, value);
    }
}
