//! What the matcher hands the detector: one matched line.

use std::borrow::Cow;
use std::sync::Arc;

use jiff::Timestamp;

// The names of fields that several layers give meaning to: the analyzer adds them, rules
// name them in `by:` and thresholds, the detector keys on them. They live here, with the
// event that carries them, so that no layer imports another's vocabulary.

/// The field that keys a rule without an explicit `by`.
pub const DEFAULT_KEY_FIELD: &str = "src_ip";
/// The key of a rule without an explicit `by` when the line names its
/// client only by a host name.
pub const HOST_KEY_FIELD: &str = "src_host";
/// The field that carries the address a network input received a line
/// from, added after the captures of every event from such a line.
pub const SENDER_FIELD: &str = "sender";
/// Fields a feed hit adds to an event: the feed's name and the indicator
/// that matched. Thresholds and examples of rules with `ioc` may name them.
pub const IOC_FIELDS: [&str; 2] = ["feed", "indicator"];
/// Fields of an event of a `follows` rule: the rule whose incident it
/// follows, and when that incident began (with the key, it names it).
pub const FOLLOWS_FIELDS: [&str; 2] = ["follows", "follows_since"];

/// One line that a rule matched.
///
/// It borrows the line and its captures from the analyzer's buffers, so
/// that matching a line allocates nothing: the detector copies what it
/// keeps, which is little (the key, and a sample when an incident opens).
#[derive(Clone, Debug)]
pub struct Event<'a> {
    /// Index of the rule in the loaded [`crate::rules::RuleSet`].
    pub rule: usize,
    /// Time written in the line, or the time of reading when the line has none.
    pub time: Timestamp,
    /// Named captures of the pattern that matched, in pattern order.
    pub fields: Cow<'a, Fields>,
    /// The line itself, invalid UTF-8 replaced, without its line terminator.
    pub line: Cow<'a, str>,
}

impl Event<'_> {
    pub fn field(&self, name: &str) -> Option<&str> {
        self.fields.get(name)
    }
}

/// Named captured values, in order: a buffer reused from match to match.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Fields {
    /// The values, one after another.
    text: String,
    /// Each value's name and where it ends in `text` (it starts where the
    /// previous one ends).
    ends: Vec<(Arc<str>, usize)>,
}

impl Fields {
    pub fn clear(&mut self) {
        self.text.clear();
        self.ends.clear();
    }

    /// Keeps the first `len` values.
    pub fn truncate(&mut self, len: usize) {
        if len < self.ends.len() {
            let end = if len == 0 { 0 } else { self.ends[len - 1].1 };
            self.ends.truncate(len);
            self.text.truncate(end);
        }
    }

    /// Appends a value, invalid UTF-8 replaced.
    pub fn push(&mut self, name: &Arc<str>, value: &[u8]) {
        self.text.push_str(&lossy(value));
        self.ends.push((Arc::clone(name), self.text.len()));
    }

    /// Replaces the first value named `name` by `value`, named `new_name`,
    /// in its place. Rebuilds the buffer: meant for the rare event whose
    /// capture needs correcting, not for every event.
    pub fn rewrite(&mut self, name: &str, new_name: &Arc<str>, value: &str) {
        let Some(at) = self.ends.iter().position(|(n, _)| &**n == name) else {
            return;
        };
        let start = if at == 0 { 0 } else { self.ends[at - 1].1 };
        let end = self.ends[at].1;
        self.text.replace_range(start..end, value);
        let shift = value.len() as isize - (end - start) as isize;
        self.ends[at].0 = Arc::clone(new_name);
        for e in &mut self.ends[at..] {
            e.1 = (e.1 as isize + shift) as usize;
        }
    }

    /// The first value named `name`.
    pub fn get(&self, name: &str) -> Option<&str> {
        self.iter().find(|(n, _)| *n == name).map(|(_, v)| v)
    }

    /// (name, value) in order.
    pub fn iter(&self) -> impl Iterator<Item = (&str, &str)> {
        let starts = std::iter::once(0).chain(self.ends.iter().map(|(_, end)| *end));
        self.ends
            .iter()
            .zip(starts)
            .map(|((name, end), start)| (&**name, &self.text[start..*end]))
    }

    pub fn len(&self) -> usize {
        self.ends.len()
    }

    pub fn is_empty(&self) -> bool {
        self.ends.is_empty()
    }
}

impl<'s> FromIterator<(&'s str, &'s str)> for Fields {
    fn from_iter<I: IntoIterator<Item = (&'s str, &'s str)>>(iter: I) -> Self {
        let mut fields = Fields::default();
        for (name, value) in iter {
            fields.push(&Arc::from(name), value.as_bytes());
        }
        fields
    }
}

/// `String::from_utf8_lossy`, but several times faster on valid UTF-8
/// (its decoder goes chunk by chunk; `from_utf8` checks ASCII a word at a
/// time), which nearly every log line is.
pub fn lossy(bytes: &[u8]) -> Cow<'_, str> {
    match std::str::from_utf8(bytes) {
        Ok(text) => Cow::Borrowed(text),
        Err(_) => String::from_utf8_lossy(bytes),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fields_keep_order_names_and_values() {
        let mut f: Fields = [("src_ip", "10.0.0.1"), ("user", ""), ("user", "bob")]
            .into_iter()
            .collect();
        assert_eq!(f.len(), 3);
        assert_eq!(f.get("src_ip"), Some("10.0.0.1"));
        assert_eq!(f.get("user"), Some(""), "the first of a name");
        assert_eq!(f.get("port"), None);
        assert_eq!(
            f.iter().collect::<Vec<_>>(),
            vec![("src_ip", "10.0.0.1"), ("user", ""), ("user", "bob")]
        );
        f.truncate(1);
        assert_eq!(f.iter().collect::<Vec<_>>(), vec![("src_ip", "10.0.0.1")]);
        f.push(&Arc::from("feed"), b"x");
        assert_eq!(f.get("feed"), Some("x"));
        f.clear();
        assert!(f.is_empty());
        f.push(&Arc::from("x"), b"a\xffb");
        assert_eq!(f.get("x"), Some("a\u{fffd}b"));
    }
}
