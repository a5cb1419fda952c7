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
    /// The line and column (counted in characters) of byte `offset` of
    /// `text`, the content of `file`: where a TOML parser's span points.
    pub fn of_offset(file: &str, text: &str, offset: usize) -> Self {
        let offset = offset.min(text.len());
        let before = text.get(..offset).unwrap_or(text);
        let line = before.matches('\n').count() as u64 + 1;
        let line_start = before.rfind('\n').map_or(0, |i| i + 1);
        let column = before[line_start..].chars().count() as u64 + 1;
        Position {
            file: file.to_owned(),
            line,
            column,
        }
    }

    pub fn at(file: &str, loc: Location) -> Self {
        Position {
            file: file.to_owned(),
            line: loc.line(),
            column: loc.column(),
        }
    }
}

/// Where a setting was written, kept beside it for messages (`check`
/// names it). Never part of what the setting is: two configs that differ
/// only in layout are equal, so a reload that moves lines restarts nothing.
#[derive(Clone, Debug)]
pub struct At(pub Position);

impl PartialEq for At {
    fn eq(&self, _: &At) -> bool {
        true
    }
}

impl Eq for At {}

impl fmt::Display for Position {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}:{}", self.file, self.line, self.column)
    }
}

/// One problem in a file, printed as `file:line:col: message`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Problem {
    pub pos: Position,
    pub message: String,
}

impl fmt::Display for Problem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.pos, self.message)
    }
}

/// Every problem a loader found, in file order, one a line: loaders collect
/// them all rather than stopping at the first.
#[derive(Debug)]
pub struct Problems(pub Vec<Problem>);

impl fmt::Display for Problems {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, e) in self.0.iter().enumerate() {
            if i > 0 {
                writeln!(f)?;
            }
            write!(f, "{e}")?;
        }
        Ok(())
    }
}

impl std::error::Error for Problems {}
