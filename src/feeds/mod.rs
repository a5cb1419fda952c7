//! Indicator-of-compromise feeds: lists of known-bad addresses, domains,
//! URLs and file hashes that rules check captured fields against.
//!
//! # How a feed is used
//!
//! A feed is declared in the config (`[[feed]]`: name, path, kind, format,
//! category, severity). A rule names, in its `ioc:` list, which captured
//! field is checked against which feeds (every feed of a kind, or some by
//! name). The rule's patterns find the lines and capture the fields; the
//! feed decides whether the line is an event. A hit becomes an event of the
//! rule *as bound to that feed* (`rule@feed`, see [`crate::rules`]), whose
//! category and severity are the feed's, and whose fields gain `feed` and
//! `indicator` (the entry that matched, e.g. the `evil.example` that
//! `a.b.evil.example` fell under, or the CIDR range holding an address).
//!
//! Feeds are declared in the config, not in rule files, because they are
//! the site's data, not the rule set's: their paths are local, they are
//! refreshed from the national center or a MISP instance by the site's own
//! jobs, and the same shipped rules (compiled into the binary, unaware of
//! local paths) serve whatever feeds a site subscribes to. Adding a feed is
//! therefore one config block and no rule edit; `canhgac check` reads it.
//!
//! # Lookups
//!
//! [`IndicatorSet`] holds one feed's indicators for lookups that cost one
//! hash probe or so, however large the feed (see [`indicators`]); the
//! formats it is read from are described in [`file`].
//!
//! # Reloading
//!
//! A [`Feed`] holds its current set behind an `RwLock<Arc<_>>`: readers take
//! the lock only for the lookup, a reload builds the new set entirely aside
//! and swaps the `Arc` in one step, so a lookup sees the old set or the new
//! one, never a mix. [`Feed::refresh`] (called every second by
//! [`reload::Reloader`] in the daemon) reloads a file whose identity
//! (device, inode, size, times) changed, and never lets a bad file replace
//! a good one:
//!
//! - a file with any bad line, or that cannot be read as its format, is
//!   refused whole: the old set stays, the errors are reported (once per
//!   version of the file) with `file:line:col`;
//! - a file modified within the last second is not read yet (a writer is
//!   probably at work), and one that changes while being read is read again
//!   later;
//! - a file modified within the last [`STILL_WRITING`] that looks cut short
//!   (its last line has no newline, it is empty, or it holds less than half
//!   of the indicators loaded now) is taken as being written in place and
//!   waited for; once quiet that long it is judged as it is.
//!
//! Replacing a feed by writing a temporary file and renaming it over the old
//! one (`curl -o f.tmp URL && mv f.tmp f`) is atomic by itself; the checks
//! above make in-place writers (`curl -o f URL`) safe too, except for one
//! that stalls for longer than [`STILL_WRITING`] exactly at a line end.
//!
//! # Feeds filled by canhgac itself
//!
//! A feed need not come from a file. A declaration with
//! [`FeedSource::Memory`] makes a feed that rules name like any other and
//! that another part of canhgac fills: build an [`IndicatorSet`] of the
//! feed's kind (`IndicatorSet::new`, then `insert` each indicator as text:
//! paths such as `/uploads/shell.php` for a `url` feed), and hand it to
//! [`Feed::publish`] on the feed found with [`FeedSet::get_by_name`]. The
//! set is swapped in atomically as a file reload would be, and the very
//! next line checked sees it. The daemon declares such feeds next to the
//! config's (so that rules naming them always resolve, empty until filled).

pub mod file;
pub mod indicators;
pub mod reload;

use std::fmt;
use std::os::unix::fs::MetadataExt;
use std::sync::{Arc, Mutex, RwLock};
use std::time::{Duration, Instant, SystemTime};

use crate::category::{Category, Severity};
use crate::position::{Position, Problem};
pub use file::{BadLine, Column, FileSpec, Format};
pub use indicators::{FeedKind, IndicatorSet};

/// A file modified more recently than this is not read yet.
pub const SETTLE: Duration = Duration::from_secs(1);

/// A recently modified file that looks cut short is waited for this long.
pub const STILL_WRITING: Duration = Duration::from_secs(10);

/// One configured feed.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FeedDecl {
    /// `[a-z0-9-]`, at most 64: it appears in rule ids and metric labels.
    pub name: String,
    pub kind: FeedKind,
    /// What a hit is: the category and severity of its incidents.
    pub category: Category,
    pub severity: Severity,
    pub source: FeedSource,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum FeedSource {
    File(FileSpec),
    /// Filled through [`Feed::publish`] by another part of canhgac.
    Memory,
}

/// A problem in a feed file, printed as `file:line:col: message`.
pub type FeedError = Problem;

/// What one look at a feed's file found.
#[derive(Debug)]
pub enum Outcome {
    /// A new set is in use.
    Loaded {
        indicators: usize,
        /// Entries left out on purpose (MISP attributes of another kind...).
        skipped: usize,
        elapsed: Duration,
    },
    /// The file has bad lines or is not its format: the old set stays.
    Invalid {
        errors: Vec<FeedError>,
        /// Bad lines in all (`errors` holds the first few).
        bad_lines: usize,
        kept: usize,
    },
    /// The file cannot be read: the old set stays.
    Unreadable { message: String, kept: usize },
    /// The file seems to be being written: waited for.
    Incomplete { reason: String, kept: usize },
}

impl Outcome {
    pub fn is_failure(&self) -> bool {
        matches!(self, Outcome::Invalid { .. } | Outcome::Unreadable { .. })
    }
}

/// Which version of a file was seen.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct Identity {
    dev: u64,
    ino: u64,
    len: u64,
    mtime_ns: i128,
    ctime_ns: i128,
}

impl Identity {
    fn of(meta: &std::fs::Metadata) -> Identity {
        Identity {
            dev: meta.dev(),
            ino: meta.ino(),
            len: meta.len(),
            mtime_ns: i128::from(meta.mtime()) * 1_000_000_000 + i128::from(meta.mtime_nsec()),
            ctime_ns: i128::from(meta.ctime()) * 1_000_000_000 + i128::from(meta.ctime_nsec()),
        }
    }
}

#[derive(Default)]
struct FileState {
    /// The version whose indicators are in use.
    loaded: Option<Identity>,
    /// A version already refused (or unreadable): not reported again.
    refused: Option<Identity>,
    unreadable: bool,
    /// A version taken as being written, and since when it is waited for.
    waiting: Option<Identity>,
}

/// A feed and its current indicators.
pub struct Feed {
    decl: FeedDecl,
    current: RwLock<Arc<IndicatorSet>>,
    file: Mutex<FileState>,
}

impl fmt::Debug for Feed {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Feed({}, {})", self.decl.name, self.len())
    }
}

impl Feed {
    pub fn new(decl: FeedDecl) -> Feed {
        Feed {
            current: RwLock::new(Arc::new(IndicatorSet::new(decl.kind))),
            decl,
            file: Mutex::new(FileState::default()),
        }
    }

    pub fn decl(&self) -> &FeedDecl {
        &self.decl
    }

    pub fn name(&self) -> &str {
        &self.decl.name
    }

    /// The set in use now.
    pub fn current(&self) -> Arc<IndicatorSet> {
        Arc::clone(&self.current.read().unwrap_or_else(|e| e.into_inner()))
    }

    pub fn len(&self) -> usize {
        self.current.read().unwrap_or_else(|e| e.into_inner()).len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The indicator of this feed that `value` falls under.
    pub fn lookup(&self, value: &str) -> Option<String> {
        self.current
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .lookup(value)
    }

    /// Replaces the feed's indicators with `set` in one step. `set` must be
    /// of the feed's kind (else it is refused and the old set stays).
    pub fn publish(&self, mut set: IndicatorSet) -> Result<(), String> {
        if set.kind() != self.decl.kind {
            return Err(format!(
                "feed {} holds {} indicators, not {}",
                self.decl.name,
                self.decl.kind,
                set.kind()
            ));
        }
        set.finish();
        self.swap(set);
        Ok(())
    }

    /// Puts `set` in use. The old set is dropped after the lock is released
    /// (and by the caller's thread): freeing a million indicators takes tens
    /// of milliseconds, which lookups must not wait for.
    fn swap(&self, set: IndicatorSet) {
        let old = {
            let mut current = self.current.write().unwrap_or_else(|e| e.into_inner());
            std::mem::replace(&mut *current, Arc::new(set))
        };
        drop(old);
    }

    /// Loads the feed's file if it changed since the last look, following
    /// the rules in the module docs. `first`: the daemon's first load (a
    /// file is read even if just modified). `None` when nothing changed or
    /// the file is left for a later look without anything to report.
    pub fn refresh(&self, first: bool) -> Option<Outcome> {
        let FeedSource::File(spec) = &self.decl.source else {
            return None;
        };
        let mut state = self.file.lock().unwrap_or_else(|e| e.into_inner());
        let kept = self.len();
        let meta = match std::fs::metadata(&spec.path) {
            Ok(m) => m,
            Err(e) => {
                if state.unreadable {
                    return None;
                }
                state.unreadable = true;
                return Some(Outcome::Unreadable {
                    message: format!("{}: cannot read feed file: {e}", spec.path.display()),
                    kept,
                });
            }
        };
        state.unreadable = false;
        let id = Identity::of(&meta);
        if state.loaded == Some(id) || state.refused == Some(id) {
            return None;
        }
        let age = meta
            .modified()
            .ok()
            .and_then(|m| SystemTime::now().duration_since(m).ok())
            .unwrap_or(Duration::ZERO);
        if !first && age < SETTLE {
            return None;
        }
        let started = Instant::now();
        let bytes = match file::read(&spec.path) {
            Ok(b) => b,
            Err(message) => {
                state.refused = Some(id);
                return Some(Outcome::Unreadable {
                    message: format!("{}: {message}", spec.path.display()),
                    kept,
                });
            }
        };
        match std::fs::metadata(&spec.path) {
            Ok(after) if Identity::of(&after) == id => {}
            // Changed while being read: look again next time.
            _ => return None,
        }
        let parsed = match file::parse(&bytes, self.decl.kind, spec) {
            Ok(p) => p,
            Err(bad) => {
                state.refused = Some(id);
                return Some(Outcome::Invalid {
                    errors: vec![self.error(spec, bad)],
                    bad_lines: 1,
                    kept,
                });
            }
        };
        let young = age < STILL_WRITING;
        let cut_short = if bytes.is_empty() {
            Some("the file is empty".to_owned())
        } else if !parsed.terminated {
            Some("its last line has no newline".to_owned())
        } else if parsed.bad_total == 0 && parsed.set.len() < kept / 2 {
            Some(format!(
                "it holds {} indicators, less than half of the {kept} loaded",
                parsed.set.len()
            ))
        } else {
            None
        };
        if let (true, Some(reason)) = (young, cut_short) {
            if state.waiting == Some(id) {
                return None;
            }
            state.waiting = Some(id);
            return Some(Outcome::Incomplete {
                reason: format!(
                    "{}: being written? {reason}; checked again once it has been quiet for {} s",
                    spec.path.display(),
                    STILL_WRITING.as_secs()
                ),
                kept,
            });
        }
        state.waiting = None;
        if parsed.bad_total > 0 {
            state.refused = Some(id);
            let errors = parsed
                .bad
                .into_iter()
                .map(|b| self.error(spec, b))
                .collect();
            return Some(Outcome::Invalid {
                errors,
                bad_lines: parsed.bad_total,
                kept,
            });
        }
        let indicators = parsed.set.len();
        self.swap(parsed.set);
        state.loaded = Some(id);
        state.refused = None;
        Some(Outcome::Loaded {
            indicators,
            skipped: parsed.skipped,
            elapsed: started.elapsed(),
        })
    }

    fn error(&self, spec: &FileSpec, bad: BadLine) -> FeedError {
        FeedError {
            pos: Position {
                file: spec.path.display().to_string(),
                line: bad.line,
                column: bad.column,
            },
            message: format!("feed {}: {}", self.decl.name, bad.message),
        }
    }
}

/// Every declared feed, in declaration order (rules refer to them by index).
#[derive(Debug, Default)]
pub struct FeedSet {
    feeds: Vec<Arc<Feed>>,
}

impl FeedSet {
    /// Feeds for `decls`. A feed declared exactly as in `previous` is taken
    /// over with its indicators, so a config reload does not read every
    /// feed again.
    pub fn new(decls: Vec<FeedDecl>, previous: Option<&FeedSet>) -> FeedSet {
        let feeds = decls
            .into_iter()
            .map(|decl| {
                previous
                    .and_then(|p| p.feeds.iter().find(|f| f.decl == decl))
                    .map(Arc::clone)
                    .unwrap_or_else(|| Arc::new(Feed::new(decl)))
            })
            .collect();
        FeedSet { feeds }
    }

    pub fn feeds(&self) -> &[Arc<Feed>] {
        &self.feeds
    }

    pub fn get(&self, idx: usize) -> Option<&Feed> {
        self.feeds.get(idx).map(|f| &**f)
    }

    pub fn get_by_name(&self, name: &str) -> Option<&Arc<Feed>> {
        self.feeds.iter().find(|f| f.decl.name == name)
    }

    pub fn is_empty(&self) -> bool {
        self.feeds.is_empty()
    }

    /// [`Feed::refresh`] on every feed; `(feed index, outcome)` of those with news.
    pub fn refresh(&self, first: bool) -> Vec<(usize, Outcome)> {
        self.feeds
            .iter()
            .enumerate()
            .filter_map(|(i, f)| f.refresh(first).map(|o| (i, o)))
            .collect()
    }
}

/// Reads a feed file as `canhgac check` does: every problem, positioned.
/// `Ok((indicators, skipped))`.
pub fn check_file(decl: &FeedDecl) -> Result<(usize, usize), Vec<FeedError>> {
    let FeedSource::File(spec) = &decl.source else {
        return Ok((0, 0));
    };
    let feed = Feed::new(decl.clone());
    let at = |line, message: String| FeedError {
        pos: Position {
            file: spec.path.display().to_string(),
            line,
            column: 1,
        },
        message: format!("feed {}: {message}", decl.name),
    };
    let bytes = file::read(&spec.path).map_err(|m| vec![at(0, m)])?;
    let parsed = file::parse(&bytes, decl.kind, spec).map_err(|b| vec![feed.error(spec, b)])?;
    if parsed.bad_total > 0 {
        let mut errors: Vec<FeedError> = parsed
            .bad
            .into_iter()
            .map(|b| feed.error(spec, b))
            .collect();
        let more = parsed.bad_total - errors.len();
        if more > 0 {
            errors.push(at(0, format!("and {more} more bad lines")));
        }
        return Err(errors);
    }
    Ok((parsed.set.len(), parsed.skipped))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::path::Path;

    fn decl(path: &Path) -> FeedDecl {
        FeedDecl {
            name: "t".into(),
            kind: FeedKind::Domain,
            category: Category::Phishing,
            severity: Severity::High,
            source: FeedSource::File(FileSpec {
                path: path.to_owned(),
                format: Format::Text,
                column: None,
                header: true,
                key: None,
            }),
        }
    }

    #[test]
    fn bad_and_cut_short_files_never_replace_a_good_set() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("f.txt");
        std::fs::write(&path, "a.example\nb.example\nc.example\n").expect("write");
        let feed = Feed::new(decl(&path));
        assert!(matches!(
            feed.refresh(true),
            Some(Outcome::Loaded { indicators: 3, .. })
        ));
        assert_eq!(
            feed.refresh(false).map(|o| format!("{o:?}")),
            None,
            "unchanged"
        );

        // Garbage: refused, reported once, the old set stays.
        std::fs::write(&path, "a.example\nnot a domain\n").expect("write");
        match feed.refresh(true) {
            Some(Outcome::Invalid {
                errors, kept: 3, ..
            }) => {
                assert!(errors[0].to_string().ends_with(":2:1: feed t: unexpected text after the indicator `not`: `a domain` (comments start with #)"), "{errors:?}");
            }
            other => panic!("{other:?}"),
        }
        assert!(feed.refresh(true).is_none(), "reported once");
        assert!(feed.lookup("c.example").is_some());

        // Half written (no final newline, just modified): waited for.
        std::fs::write(&path, "x.example\ny.exa").expect("write");
        assert!(matches!(
            feed.refresh(true),
            Some(Outcome::Incomplete { kept: 3, .. })
        ));
        assert!(feed.refresh(true).is_none());
        assert!(feed.lookup("c.example").is_some());

        // Empty: the same.
        std::fs::write(&path, "").expect("write");
        assert!(matches!(
            feed.refresh(true),
            Some(Outcome::Incomplete { .. })
        ));

        // Finished: loaded.
        std::fs::write(&path, "x.example\ny.example\n").expect("write");
        assert!(matches!(
            feed.refresh(true),
            Some(Outcome::Loaded { indicators: 2, .. })
        ));
        assert!(feed.lookup("c.example").is_none());
        assert!(feed.lookup("www.y.example").is_some());

        std::fs::remove_file(&path).expect("rm");
        assert!(matches!(
            feed.refresh(true),
            Some(Outcome::Unreadable { kept: 2, .. })
        ));
        assert!(feed.refresh(true).is_none(), "reported once");
        assert!(feed.lookup("x.example").is_some());
    }

    #[test]
    fn memory_feeds_are_published_whole() {
        let feed = Feed::new(FeedDecl {
            name: "new-scripts".into(),
            kind: FeedKind::Url,
            category: Category::Malware,
            severity: Severity::Critical,
            source: FeedSource::Memory,
        });
        assert!(feed.refresh(true).is_none());
        let mut set = IndicatorSet::new(FeedKind::Url);
        set.insert("/uploads/x.php").expect("path");
        feed.publish(set).expect("same kind");
        assert_eq!(
            feed.lookup("/uploads/x.php?cmd=id").as_deref(),
            Some("/uploads/x.php")
        );
        assert!(feed.publish(IndicatorSet::new(FeedKind::Ip)).is_err());
        assert_eq!(feed.len(), 1);
    }
}
