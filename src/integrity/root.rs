//! One web root: what is known of its files (the accepted baseline and the
//! changes already raised), and reconciling that with the disk.
//!
//! For every file canhgac knows two things: its **baseline**, the last state
//! accepted as legitimate (recorded at the first scan, during deploys, or by
//! `canhgac integrity accept`), and, once a change outside a deploy has been
//! raised as an incident, its **flag**: the state that change left. A file
//! is compared with its flag when it has one, else with its baseline, so a
//! change is raised once (across restarts too, the flags being stored), and
//! a further change of a flagged file is raised again. What happens to a
//! change:
//!
//! * during a deploy, at the first scan of a root, to a file the selection
//!   did not watch before, or to a non-script file in an upload directory
//!   (without a defacement signature): it becomes the baseline, silently;
//! * when it restores the baseline's content: the flag goes, silently;
//! * otherwise it is raised, classified, and flagged until accepted.

use std::collections::BTreeMap;
use std::ffi::OsStr;
use std::fs::Metadata;
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use super::fsstate::{walk, FileState, ReadError, Reader};
use super::select::{Classifier, Selection};
use super::stored::IntegrityOp;
use super::{ChangeClass, ChangeKind, Flag};

/// What is known of one file.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Entry {
    pub baseline: Option<FileState>,
    pub flag: Option<Flag>,
}

impl Entry {
    /// The state the disk is compared with.
    fn observed(&self) -> Option<&FileState> {
        match &self.flag {
            Some(flag) => flag.state.as_ref(),
            None => self.baseline.as_ref(),
        }
    }
}

/// The settings stored with a baseline: a later start with other ones
/// knows which files it watches for the first time.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct StoredSettings {
    pub path: String,
    pub include: Vec<String>,
    pub exclude: Vec<String>,
}

/// A root's baseline as the store has it: its settings and entries.
pub type StoredRoot = (StoredSettings, Vec<(Vec<u8>, Entry)>);

/// One change raised as (part of) an incident.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Raised {
    pub path: Vec<u8>,
    pub kind: ChangeKind,
    pub class: ChangeClass,
    pub signature: Option<String>,
}

/// What a reconcile found and decided.
#[derive(Debug, Default)]
pub struct Outcome {
    /// For the store, in order.
    pub ops: Vec<IntegrityOp>,
    pub raised: Vec<Raised>,
    /// Changes taken into the baseline (deploy, upload, first scan, newly watched).
    pub expected: usize,
    /// Flagged files back to their baseline content.
    pub restored: usize,
    /// Files and directories that could not be read, with the reason.
    pub errors: Vec<String>,
    /// Files being written while read: to look at again.
    pub retry: Vec<Vec<u8>>,
    /// Files hashed (the cost of this reconcile).
    pub hashed: u64,
}

pub struct RootState {
    pub name: String,
    pub path: PathBuf,
    pub settings: StoredSettings,
    selection: Selection,
    classifier: Classifier,
    /// The selection of the stored baseline, while it differs from today's.
    previous: Option<Selection>,
    /// No stored baseline: the next full reconcile records one.
    first: bool,
    /// Files the first scan could not read (being written): baselined
    /// silently when next read.
    silent_next: std::collections::HashSet<Vec<u8>>,
    entries: BTreeMap<Vec<u8>, Entry>,
}

impl RootState {
    /// `stored`: the settings and entries from the store (`None` when this
    /// root has no baseline yet, or one of another path, which is reset).
    pub fn new(
        name: String,
        path: PathBuf,
        selection: Selection,
        classifier: Classifier,
        settings: StoredSettings,
        stored: Option<StoredRoot>,
    ) -> Result<(RootState, Vec<IntegrityOp>), String> {
        let mut ops = Vec::new();
        let (first, previous, entries) = match stored {
            Some((old, entries)) if old.path == settings.path => {
                let previous = if old == settings {
                    None
                } else {
                    Some(Selection::new(&old.include, &old.exclude)?)
                };
                (false, previous, entries.into_iter().collect())
            }
            Some(_) => {
                ops.push(IntegrityOp::Reset { root: name.clone() });
                (true, None, BTreeMap::new())
            }
            None => (true, None, BTreeMap::new()),
        };
        Ok((
            RootState {
                name,
                path,
                settings,
                selection,
                classifier,
                previous,
                first,
                silent_next: Default::default(),
                entries,
            },
            ops,
        ))
    }

    pub fn is_first(&self) -> bool {
        self.first
    }

    pub fn files(&self) -> usize {
        self.entries
            .values()
            .filter(|e| e.baseline.is_some())
            .count()
    }

    pub fn flagged(&self) -> impl Iterator<Item = (&Vec<u8>, &Flag)> {
        self.entries
            .iter()
            .filter_map(|(p, e)| e.flag.as_ref().map(|f| (p, f)))
    }

    pub fn classifier(&self) -> &Classifier {
        &self.classifier
    }

    /// Whether a path reported by a notification is worth looking at (it
    /// may be a directory: only excluded directories are refused).
    pub fn wants(&self, rel: &[u8]) -> bool {
        let rel = String::from_utf8_lossy(rel);
        let mut dir = rel.as_ref();
        loop {
            if self.selection.skips_dir(dir) {
                return false;
            }
            match dir.rsplit_once('/') {
                Some((parent, _)) => dir = parent,
                None => return true,
            }
        }
    }

    /// Replaces what is known under `prefix` (the whole root when empty)
    /// with `entries` from the store: after `integrity accept`.
    pub fn replace_under(&mut self, prefix: &[u8], entries: Vec<(Vec<u8>, Entry)>) {
        let keys: Vec<Vec<u8>> = self
            .entries
            .keys()
            .filter(|k| under(k, prefix))
            .cloned()
            .collect();
        for k in keys {
            self.entries.remove(&k);
        }
        self.entries.extend(entries);
    }

    /// Compares the disk under `prefix` (a file, a directory, or the whole
    /// root when empty) with what is known, and decides about every change;
    /// `deploy` says a deploy is under way.
    pub fn reconcile(
        &mut self,
        prefix: &[u8],
        deploy: bool,
        reader: &mut Reader,
        out: &mut Outcome,
    ) {
        let root = self.path.clone();
        let mut seen: Vec<Vec<u8>> = Vec::new();
        let mut current: Vec<(Vec<u8>, Metadata)> = Vec::new();
        let selection = &self.selection;
        let errors = walk(
            &root,
            prefix,
            &|rel| selection.skips_dir(&String::from_utf8_lossy(rel)),
            &mut |rel, meta| {
                seen.push(rel.to_vec());
                if selection.file(&String::from_utf8_lossy(rel)) {
                    current.push((rel.to_vec(), meta.clone()));
                }
            },
        );
        // Known files under a directory that could not be read are neither
        // there nor gone.
        let mut unreadable: Vec<Vec<u8>> = Vec::new();
        for e in errors {
            out.errors
                .push(format!("{}: {}", e.path.display(), e.error));
            if let Ok(rel) = e.path.strip_prefix(&root) {
                unreadable.push(rel.as_os_str().as_bytes().to_vec());
            }
        }
        for (rel, meta) in current {
            self.look_at(&root, rel, &meta, deploy, reader, out);
        }
        seen.sort_unstable();
        let gone: Vec<Vec<u8>> = self
            .entries
            .range(prefix.to_vec()..)
            .take_while(|(k, _)| k.starts_with(prefix))
            .filter(|(k, _)| under(k, prefix))
            .filter(|(k, _)| seen.binary_search(k).is_err())
            .filter(|(k, _)| !unreadable.iter().any(|u| under(k, u)))
            .map(|(k, _)| k.clone())
            .collect();
        for rel in gone {
            if !self.selection.file(&String::from_utf8_lossy(&rel)) {
                self.forget(rel, out);
                continue;
            }
            let observed_present = self
                .entries
                .get(&rel)
                .is_some_and(|e| e.observed().is_some());
            if observed_present {
                self.decide(rel, None, deploy, out);
            }
        }
        // Known files that the selection no longer watches.
        let deselected: Vec<Vec<u8>> = self
            .entries
            .range(prefix.to_vec()..)
            .take_while(|(k, _)| k.starts_with(prefix))
            .filter(|(k, _)| under(k, prefix))
            .filter(|(k, _)| !self.selection.file(&String::from_utf8_lossy(k)))
            .map(|(k, _)| k.clone())
            .collect();
        for rel in deselected {
            self.forget(rel, out);
        }
        if prefix.is_empty() && !reader.stopping() && (self.first || self.previous.is_some()) {
            out.ops.push(IntegrityOp::Root {
                root: self.name.clone(),
                settings: self.settings.clone(),
            });
            self.first = false;
            self.previous = None;
        }
    }

    fn forget(&mut self, rel: Vec<u8>, out: &mut Outcome) {
        self.entries.remove(&rel);
        out.ops.push(IntegrityOp::Forget {
            root: self.name.clone(),
            path: rel,
        });
    }

    fn look_at(
        &mut self,
        root: &Path,
        rel: Vec<u8>,
        meta: &Metadata,
        deploy: bool,
        reader: &mut Reader,
        out: &mut Outcome,
    ) {
        let entry = self.entries.get(&rel);
        let observed = entry.and_then(Entry::observed);
        if observed.is_some_and(|o| o.same_stat(meta)) {
            return;
        }
        let text = self.classifier.is_text(&String::from_utf8_lossy(&rel));
        let abs = root.join(OsStr::from_bytes(&rel));
        out.hashed += 1;
        let state = match reader.read(&abs, meta, text) {
            Ok(state) => state,
            Err(ReadError::Vanished | ReadError::Unstable | ReadError::Stopped) => {
                // Gone or written to since the walk: looked at again later.
                if self.first {
                    self.silent_next.insert(rel.clone());
                }
                out.retry.push(rel);
                return;
            }
            Err(ReadError::Io(e)) => {
                out.errors.push(format!("{}: {e}", abs.display()));
                return;
            }
        };
        match entry.and_then(Entry::observed) {
            Some(o) if o.same_content(&state) => {
                // Touched, copied back, permissions changed: the same
                // content. Record the new stat so the next scan skips it.
                self.refresh(rel, state, out);
            }
            _ => self.decide(rel, Some(state), deploy, out),
        }
    }

    /// Stores a new stat of unchanged content.
    fn refresh(&mut self, rel: Vec<u8>, state: FileState, out: &mut Outcome) {
        let Some(entry) = self.entries.get_mut(&rel) else {
            return;
        };
        match &mut entry.flag {
            Some(flag) => {
                flag.state = Some(state);
                out.ops.push(IntegrityOp::Flag {
                    root: self.name.clone(),
                    path: rel,
                    flag: flag.clone(),
                    incident: None,
                });
            }
            None => {
                entry.baseline = Some(state.clone());
                out.ops.push(IntegrityOp::Baseline {
                    root: self.name.clone(),
                    path: rel,
                    state,
                });
            }
        }
    }

    /// A changed file (`after` `None`: removed).
    fn decide(&mut self, rel: Vec<u8>, after: Option<FileState>, deploy: bool, out: &mut Outcome) {
        let name = String::from_utf8_lossy(&rel).into_owned();
        let entry = self.entries.entry(rel.clone()).or_default();
        let baseline = entry.baseline.clone();
        let restores = match (&baseline, &after) {
            (Some(b), Some(a)) => b.same_content(a),
            (None, None) => true,
            _ => false,
        };
        let script = self.classifier.is_script(&name);
        let upload = self.classifier.in_upload_dir(&name);
        let new_signature = after
            .as_ref()
            .and_then(|a| a.signature.clone())
            .filter(|_| baseline.as_ref().is_none_or(|b| b.signature.is_none()));
        let newly_watched = baseline.is_none()
            && entry.flag.is_none()
            && self.previous.as_ref().is_some_and(|prev| !prev.file(&name));
        let expected = self.first
            || self.silent_next.remove(&rel)
            || deploy
            || newly_watched
            || (upload && !script && new_signature.is_none());
        if restores || expected {
            if restores && entry.flag.is_some() {
                out.restored += 1;
            } else if !restores {
                out.expected += 1;
            }
            entry.flag = None;
            entry.baseline = after.clone();
            match after {
                Some(state) => out.ops.push(IntegrityOp::Baseline {
                    root: self.name.clone(),
                    path: rel,
                    state,
                }),
                None => {
                    self.entries.remove(&rel);
                    out.ops.push(IntegrityOp::Forget {
                        root: self.name.clone(),
                        path: rel,
                    });
                }
            }
            return;
        }
        let kind = match (&baseline, &after) {
            (None, _) => ChangeKind::New,
            (Some(_), None) => ChangeKind::Removed,
            (Some(_), Some(_)) => ChangeKind::Modified,
        };
        let class = if new_signature.is_some() {
            ChangeClass::Signature
        } else if script && upload && kind != ChangeKind::Removed {
            ChangeClass::Webshell
        } else if self.classifier.is_index(&name) {
            ChangeClass::Index
        } else if script && kind != ChangeKind::Removed {
            ChangeClass::Script
        } else {
            ChangeClass::Content
        };
        let flag = Flag {
            kind,
            class,
            state: after,
        };
        out.raised.push(Raised {
            path: rel.clone(),
            kind,
            class,
            signature: new_signature,
        });
        entry.flag = Some(flag.clone());
        // Index 0 of the burst's incidents: its `deface` incident (see
        // `Finding::number`).
        out.ops.push(IntegrityOp::Flag {
            root: self.name.clone(),
            path: rel,
            flag,
            incident: Some(0),
        });
    }
}

/// `path` is `prefix` or lies below it (an empty prefix holds everything).
pub fn under(path: &[u8], prefix: &[u8]) -> bool {
    prefix.is_empty()
        || (path.starts_with(prefix) && (path.len() == prefix.len() || path[prefix.len()] == b'/'))
}
