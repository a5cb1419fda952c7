//! Which files the pattern names: expanding the glob, the directories new
//! files can appear in, and starting to follow a file once it is found (or
//! remembering why it cannot be, to retry). Also the lineage of a rotated
//! name: which pattern path `auth.log.1` came from.

use std::collections::HashSet;
use std::fs::{self, File};
use std::io;
use std::path::{Component, Path, PathBuf};
use std::time::Instant;

use super::checkpoint::{checkpoint_holds, FileCheckpoint};
use super::identity::{Ident, Place};
use super::notice::{notice, Notice, NoticeKind};
use super::reading::{Start, Tracked};
use super::{FileTail, MAX_RETRY_FACTOR};

/// Invalid pattern given to [`FileTail::new`].
#[derive(Debug, thiserror::Error)]
#[error("invalid file pattern {pattern:?}: {source}")]
pub struct PatternError {
    pub pattern: String,
    #[source]
    pub source: glob::PatternError,
}

/// Checks a path or glob pattern the way [`FileTail::new`] will, for config
/// validation.
pub fn check_pattern(pattern: &str) -> Result<(), PatternError> {
    glob::Pattern::new(pattern)
        .map(drop)
        .map_err(|source| PatternError {
            pattern: pattern.to_string(),
            source,
        })
}

/// A regular file the pattern matches, as listed.
pub(super) struct Found {
    pub(super) path: PathBuf,
    pub(super) id: Ident,
}

/// A file under the pattern that cannot be opened; retried on every sweep.
pub(super) struct Unreadable {
    pub(super) id: Ident,
    pub(super) kind: io::ErrorKind,
    /// For a file present at the first start with `start_at_end`: its size
    /// then, where it starts once readable.
    pub(super) start_at: Option<u64>,
    /// Its checkpoint, for a file that was unreadable when we restarted:
    /// where it resumes once readable, if it is still that file.
    pub(super) resume: Option<FileCheckpoint>,
    /// Failed opens in a row, and when the next may be tried.
    pub(super) failures: u32,
    pub(super) retry_at: Instant,
}

impl FileTail {
    /// The pattern's regular files, with their identity.
    pub(super) fn expand(&mut self, notices: &mut Vec<Notice>) -> Vec<Found> {
        let mut found = Vec::new();
        let mut errors = HashSet::new();
        let paths = match glob::glob(&self.opts.pattern) {
            Ok(paths) => paths,
            // Checked in `new`.
            Err(_) => return found,
        };
        for entry in paths {
            match entry {
                Ok(path) => match fs::metadata(&path) {
                    Ok(meta) if meta.is_file() => found.push(Found {
                        id: Ident::of(&meta),
                        path,
                    }),
                    // Directories, FIFOs (opening one would block), sockets.
                    Ok(_) => {}
                    // Gone between listing and stat: the next sweep sees.
                    Err(e) if e.kind() == io::ErrorKind::NotFound => {}
                    Err(e) => {
                        if !self.glob_errors.contains(&path) {
                            notices.push(notice(
                                &path,
                                NoticeKind::Pattern,
                                format!("cannot stat: {e}"),
                            ));
                        }
                        errors.insert(path);
                    }
                },
                Err(e) => {
                    let path = e.path().to_path_buf();
                    if !self.glob_errors.contains(&path) {
                        notices.push(notice(
                            &path,
                            NoticeKind::Pattern,
                            format!("cannot list: {}", e.error()),
                        ));
                    }
                    errors.insert(path);
                }
            }
        }
        // A missing directory is said by the watcher; a file missing from an
        // existing one (auth.log on a host without rsyslog) only here.
        let nothing = found.is_empty() && errors.is_empty() && self.base_dir.is_dir();
        if nothing && !self.told_nothing_matched {
            notices.push(notice(
                Path::new(&self.opts.pattern),
                NoticeKind::NothingMatched,
                "no file matches yet: nothing is read until one appears",
            ));
        }
        self.told_nothing_matched = nothing;
        self.glob_errors = errors;
        found
    }

    pub(super) fn open(&self, path: &Path) -> io::Result<File> {
        #[cfg(test)]
        if self.deny_open.contains(path) {
            return Err(io::Error::from(io::ErrorKind::PermissionDenied));
        }
        File::open(path)
    }

    /// Starts following a file matched by the pattern, or records why it
    /// cannot be.
    pub(super) fn open_found(&mut self, found: &Found, start: Start, notices: &mut Vec<Notice>) {
        let path = &found.path;
        let file = match self.open(path) {
            Ok(file) => file,
            Err(e) => {
                self.counters.read_errors += 1;
                let start_at = match start {
                    Start::End(p) => Some(p),
                    _ => self
                        .unreadable
                        .get(path)
                        .filter(|u| u.id == found.id)
                        .and_then(|u| u.start_at),
                };
                let known = self
                    .unreadable
                    .get(path)
                    .is_some_and(|u| u.id == found.id && u.kind == e.kind());
                let resume = self
                    .unreadable
                    .get_mut(path)
                    .filter(|u| u.id == found.id)
                    .and_then(|u| u.resume.take());
                let failures = self
                    .unreadable
                    .get(path)
                    .filter(|u| u.id == found.id)
                    .map_or(1, |u| u.failures.saturating_add(1));
                let factor = 1u32 << (failures - 1).min(MAX_RETRY_FACTOR.trailing_zeros());
                let retry_at = Instant::now() + self.opts.retry_unreadable * factor;
                if !known {
                    notices.push(notice(
                        path,
                        NoticeKind::Unreadable,
                        format!("cannot open: {e}; retrying"),
                    ));
                }
                self.unreadable.insert(
                    path.clone(),
                    Unreadable {
                        id: found.id,
                        kind: e.kind(),
                        start_at,
                        resume,
                        failures,
                        retry_at,
                    },
                );
                return;
            }
        };
        let mut start = start;
        if let Some(u) = self.unreadable.remove(path) {
            if u.id == found.id {
                if let (Start::Beginning, Some(p)) = (start, u.start_at) {
                    start = Start::End(p);
                }
                if let Some(cp) = u.resume {
                    match checkpoint_holds(&file, &cp) {
                        Ok(true) => start = Start::At(cp.offset),
                        _ => notices.push(notice(
                            path,
                            NoticeKind::CheckpointDropped,
                            "changed while unreadable: its checkpoint no longer applies",
                        )),
                    }
                }
            }
            notices.push(notice(path, NoticeKind::Readable, "readable again"));
        }
        let seq = self.take_seq();
        match Tracked::open(
            file,
            path,
            path,
            start,
            Place::Active,
            seq,
            self.opts.max_line.max(1),
        ) {
            Ok(Some(t)) if t.id == found.id => {
                let from = match start {
                    Start::Beginning => "from the beginning".to_string(),
                    _ => format!("from offset {}", t.offset),
                };
                notices.push(notice(
                    path,
                    NoticeKind::Opened,
                    format!("following {from}"),
                ));
                self.insert(t);
            }
            // Replaced between the listing and the open: next sweep.
            Ok(_) => {}
            Err(e) => {
                self.counters.read_errors += 1;
                notices.push(notice(
                    path,
                    NoticeKind::ReadError,
                    format!("cannot read its start: {e}; retrying"),
                ));
            }
        }
    }

    /// The pattern path a rotated file came from: the longest start of its
    /// name, cut before a `.`, `-` or `_`, that the pattern matches
    /// (`auth.log.2` → `auth.log`, `site.access.log-20240101.1` →
    /// `site.access.log`).
    pub(super) fn lineage_origin(&self, path: &Path) -> Option<PathBuf> {
        let pattern = glob::Pattern::new(&self.opts.pattern).ok()?;
        let dir = path.parent()?;
        let name = path.file_name()?.to_str()?;
        stems(name)
            .map(|stem| dir.join(stem))
            .find(|p| pattern.matches_path(p))
    }
}

/// The starts of a rotated file's name cut before `.`, `-` or `_`, longest
/// first (`auth.log.1.gz`: `auth.log.1`, `auth.log`, `auth`): the names it
/// may have had under the pattern.
pub(super) fn stems(name: &str) -> impl Iterator<Item = &str> {
    name.char_indices()
        .rev()
        .filter(|&(i, c)| i > 0 && matches!(c, '.' | '-' | '_'))
        .map(move |(i, _)| &name[..i])
}

/// Whether a name says compressed: such rotated files are not text to us.
pub(super) fn is_compressed(path: &Path) -> bool {
    const SUFFIXES: [&str; 10] = [
        "gz", "bz2", "xz", "zst", "lz4", "lzma", "lz", "Z", "zip", "br",
    ];
    path.extension()
        .and_then(|e| e.to_str())
        .is_some_and(|e| SUFFIXES.contains(&e))
}

pub(super) fn parent_dir(path: &Path) -> PathBuf {
    match path.parent() {
        Some(p) if !p.as_os_str().is_empty() => p.to_path_buf(),
        _ => PathBuf::from("."),
    }
}

/// The deepest directory of a pattern without wildcards: new files can
/// only appear below it.
pub fn base_dir(pattern: &str) -> PathBuf {
    let path = Path::new(pattern);
    let mut base = PathBuf::new();
    let mut wild = false;
    for c in path.components() {
        let s = c.as_os_str().to_string_lossy();
        if matches!(c, Component::Normal(_)) && s.contains(['*', '?', '[']) {
            wild = true;
            break;
        }
        base.push(c);
    }
    if wild {
        if base.as_os_str().is_empty() {
            PathBuf::from(".")
        } else {
            base
        }
    } else {
        parent_dir(path)
    }
}
