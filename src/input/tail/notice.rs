//! What the tail tells its caller about files: opened, rotated, truncated,
//! unreadable... The caller logs them; [`NoticeKind::is_problem`] says at
//! which level.

use std::fmt;
use std::path::{Path, PathBuf};

/// What kind of thing a [`Notice`] reports.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum NoticeKind {
    /// A file is now followed.
    Opened,
    /// A file was found again from its checkpoint after a restart.
    Resumed,
    /// A followed file was renamed away from its path.
    Rotated,
    /// A followed file was deleted (it is still read to its end).
    Deleted,
    /// A followed file was truncated.
    Truncated,
    /// The copy of a truncated file was found and is read from our offset.
    CopyFound,
    /// A rotated or deleted file was read to its end and closed.
    Closed,
    /// A file cannot be opened; it is retried on every sweep.
    Unreadable,
    /// A file that could not be opened now can.
    Readable,
    /// Reading or inspecting an open file failed; retried.
    ReadError,
    /// A checkpoint matched no file and was dropped.
    CheckpointDropped,
    /// The pattern matches no file (said once, until one appears).
    NothingMatched,
    /// Expanding the pattern hit an error (e.g. an unreadable directory).
    Pattern,
    /// Watching a directory for changes failed; the periodic sweep covers it.
    Watch,
}

impl NoticeKind {
    /// Whether the notice reports something an operator may have to fix or
    /// may have lost lines over (log it as a warning), as opposed to normal
    /// life of log files.
    pub fn is_problem(self) -> bool {
        matches!(
            self,
            NoticeKind::Unreadable
                | NoticeKind::ReadError
                | NoticeKind::CheckpointDropped
                | NoticeKind::Pattern
                | NoticeKind::NothingMatched
                | NoticeKind::Watch
        )
    }
}

/// Something that happened to a file, for the caller to log.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Notice {
    pub path: PathBuf,
    pub kind: NoticeKind,
    pub message: String,
}

impl fmt::Display for Notice {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.path.display(), self.message)
    }
}

pub(super) fn notice(path: &Path, kind: NoticeKind, message: impl Into<String>) -> Notice {
    Notice {
        path: path.to_path_buf(),
        kind,
        message: message.into(),
    }
}
