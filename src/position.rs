//! Where something was written in a configuration, rule or feed file: every message about
//! bad input starts with `FILE:LINE:COL`. The loaders of all three share this one type, so it
//! lives below them.

use std::fmt;

use serde_saphyr::Location;

/// Where something was written: `file:line:col`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Position {
    pub file: String,
    pub line: u64,
    pub column: u64,
}

impl Position {
    pub fn at(file: &str, loc: Location) -> Self {
        Position {
            file: file.to_owned(),
            line: loc.line(),
            column: loc.column(),
        }
    }
}

impl fmt::Display for Position {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}:{}", self.file, self.line, self.column)
    }
}
