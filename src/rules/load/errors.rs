//! What loading reports: errors that stop it and warnings that do not,
//! each at the place in a rule file it is about.

use crate::position::{Problem, Problems};

/// One problem in a rule file.
pub type RuleError = Problem;
/// Every error found while loading, in file order.
pub type LoadErrors = Problems;

/// Something worth telling that does not stop the load (a local rule that
/// replaces a shipped one, a rule without a key): said as an error is.
pub type Warning = RuleError;
