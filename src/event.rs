//! What the matcher hands the detector: one matched line.

use std::sync::Arc;

use jiff::Timestamp;

/// One line that a rule matched.
#[derive(Clone, Debug)]
pub struct Event {
    /// Index of the rule in the loaded [`crate::rules::RuleSet`].
    pub rule: usize,
    /// Time written in the line, or the time of reading when the line has none.
    pub time: Timestamp,
    /// Named captures of the pattern that matched, in pattern order.
    pub fields: Vec<(Arc<str>, String)>,
    /// The line itself, invalid UTF-8 replaced, without its line terminator.
    pub line: String,
}

impl Event {
    pub fn field(&self, name: &str) -> Option<&str> {
        self.fields
            .iter()
            .find(|(n, _)| &**n == name)
            .map(|(_, v)| v.as_str())
    }
}
