//! What loading reports: errors that stop it and warnings that do not,
//! each at the place in a rule file it is about.

use std::fmt;

use crate::position::Position;

/// One problem in a rule file, printed as `file:line:col: message`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RuleError {
    pub pos: Position,
    pub message: String,
}

impl fmt::Display for RuleError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.pos, self.message)
    }
}

/// Every error found while loading, in file order.
#[derive(Debug)]
pub struct LoadErrors(pub Vec<RuleError>);

impl fmt::Display for LoadErrors {
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

impl std::error::Error for LoadErrors {}

/// Something worth telling that does not stop the load (a local rule that
/// replaces a shipped one, a rule without a key): said as an error is.
pub type Warning = RuleError;
