//! Where an input stands in one file: the file's identity and how far it has
//! been read. The store persists these in the same transaction as the
//! incidents they produced, so a restart resumes exactly after the last line
//! whose incidents are stored.
//!
//! Here too: resuming from checkpoints after a restart, each matched to its
//! file by identity wherever rotation took it while we were stopped. The
//! record and the resuming are one idea, so one room; the store and the
//! daemon name the record `crate::input::checkpoint`, a re-export of this.

use std::collections::{HashMap, HashSet};
use std::fs::{self, File};
use std::io;
use std::os::unix::fs::MetadataExt;
use std::path::PathBuf;
use std::time::Instant;

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use super::discovery::{is_compressed, parent_dir, Found, Unreadable};
use super::identity::{find_by_id, Ident, Place, HEAD};
use super::notice::{notice, Notice, NoticeKind};
use super::reading::{read_up_to, Start, Tracked};
use super::FileTail;

/// Bytes at the start of a file hashed into its fingerprint. A reused inode
/// (delete, then create) almost never starts with the same bytes as the file
/// that had it before.
pub const FINGERPRINT_BYTES: u64 = 1024;

/// Where an input stands in one file; see the module docs.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct FileCheckpoint {
    /// Name of the configured input the file belongs to.
    pub input: String,
    /// Last path the file was seen under (informational after a rotation:
    /// identity, not name, is what matches a file on restart).
    pub path: String,
    pub dev: u64,
    pub ino: u64,
    /// How many leading bytes `fingerprint` covers: fewer than
    /// [`FINGERPRINT_BYTES`] while the file is shorter than that.
    pub fingerprint_len: u64,
    /// SHA-256 of the first `fingerprint_len` bytes.
    pub fingerprint: [u8; 32],
    /// Byte offset just past the last complete line handed to the pipeline.
    pub offset: u64,
}

impl FileTail {
    /// One checkpoint per file still tracked, its offset just past the last
    /// complete line handed to `sink`.
    pub fn checkpoints(&self) -> Vec<FileCheckpoint> {
        self.files
            .iter()
            .map(|f| FileCheckpoint {
                input: self.opts.input.clone(),
                path: f.path.to_string_lossy().into_owned(),
                dev: f.id.dev,
                ino: f.id.ino,
                fingerprint_len: f.head.len() as u64,
                fingerprint: f.fingerprint,
                offset: f.offset,
            })
            .collect()
    }

    pub(super) fn restore(
        &mut self,
        checkpoints: Vec<FileCheckpoint>,
        found: &[Found],
        notices: &mut Vec<Notice>,
    ) {
        let max_line = self.opts.max_line.max(1);
        let by_id: HashMap<Ident, &Found> = found.iter().map(|f| (f.id, f)).collect();
        let mut claimed: HashSet<Ident> = HashSet::new();
        // Rotated files and copies first: they precede their successors.
        let mut before: Vec<Tracked> = Vec::new();
        let mut active: Vec<Tracked> = Vec::new();
        for cp in checkpoints {
            let cp_path = PathBuf::from(&cp.path);
            if cp.input != self.opts.input {
                notices.push(notice(
                    &cp_path,
                    NoticeKind::CheckpointDropped,
                    format!(
                        "checkpoint belongs to input {:?}, not {:?}",
                        cp.input, self.opts.input
                    ),
                ));
                continue;
            }
            let id = Ident {
                dev: cp.dev,
                ino: cp.ino,
            };
            if !claimed.insert(id) {
                continue;
            }
            if let Some(f) = by_id.get(&id) {
                let file = match self.open(&f.path) {
                    Ok(file) => file,
                    Err(e) => {
                        // Retried by the sweeps; resumes at the checkpoint.
                        self.counters.read_errors += 1;
                        notices.push(notice(
                            &f.path,
                            NoticeKind::Unreadable,
                            format!("cannot open to resume: {e}; retrying"),
                        ));
                        self.unreadable.insert(
                            f.path.clone(),
                            Unreadable {
                                id,
                                kind: e.kind(),
                                start_at: None,
                                resume: Some(cp),
                                failures: 1,
                                retry_at: Instant::now() + self.opts.retry_unreadable,
                            },
                        );
                        continue;
                    }
                };
                match checkpoint_holds(&file, &cp) {
                    Ok(true) => match Tracked::open(
                        file,
                        &f.path,
                        &f.path,
                        Start::At(cp.offset),
                        Place::Active,
                        0,
                        max_line,
                    ) {
                        Ok(Some(t)) if t.id == id => {
                            notices.push(notice(
                                &f.path,
                                NoticeKind::Resumed,
                                format!("resuming at offset {}", cp.offset),
                            ));
                            active.push(t);
                        }
                        _ => {
                            claimed.remove(&id);
                        }
                    },
                    Ok(false) => {
                        // Truncated or rewritten while we were stopped: its
                        // old content may survive in a copy.
                        self.counters.truncations += 1;
                        notices.push(notice(
                            &f.path,
                            NoticeKind::Truncated,
                            format!(
                                "truncated or replaced since offset {} was checkpointed",
                                cp.offset
                            ),
                        ));
                        let skip: HashSet<Ident> = found.iter().map(|f| f.id).collect();
                        if let Some(t) = self.open_copy(
                            &parent_dir(&f.path),
                            &skip,
                            cp.fingerprint_len,
                            &cp.fingerprint,
                            cp.offset,
                            &f.path,
                            notices,
                        ) {
                            before.push(t);
                        }
                        claimed.remove(&id);
                    }
                    Err(e) => {
                        self.counters.read_errors += 1;
                        claimed.remove(&id);
                        notices.push(notice(
                            &f.path,
                            NoticeKind::ReadError,
                            format!("cannot read its start: {e}"),
                        ));
                    }
                }
                continue;
            }
            // Not under the pattern any more: rotated while we were stopped?
            // Unless the input's path changed: then it is not ours any more.
            if !self.of_lineage(&cp_path) {
                notices.push(notice(
                    &cp_path,
                    NoticeKind::CheckpointDropped,
                    format!(
                        "no longer under the input's path {}: not read any more",
                        self.opts.pattern
                    ),
                ));
                continue;
            }
            let dir = parent_dir(&cp_path);
            let Some(path) = find_by_id(&dir, id) else {
                let origin = self
                    .lineage_origin(&cp_path)
                    .unwrap_or_else(|| cp_path.clone());
                if let Some(t) = self.find_archived(&cp, &origin) {
                    notices.push(notice(
                        &cp_path,
                        NoticeKind::Resumed,
                        format!(
                            "rotated to {} while stopped; resuming it at offset {}",
                            t.path.display(),
                            cp.offset
                        ),
                    ));
                    before.push(t);
                    continue;
                }
                self.counters.position_lost += 1;
                notices.push(notice(
                    &cp_path,
                    NoticeKind::CheckpointDropped,
                    format!(
                        "file gone (not under the pattern, nor moved or compressed in {} or the directories below and beside it); lines after offset {} are lost",
                        dir.display(),
                        cp.offset
                    ),
                ));
                continue;
            };
            let origin = self
                .lineage_origin(&path)
                .unwrap_or_else(|| cp_path.clone());
            let resumed = self.open(&path).and_then(|file| {
                if checkpoint_holds(&file, &cp)? {
                    Tracked::open(
                        file,
                        &path,
                        &origin,
                        Start::At(cp.offset),
                        Place::Moved,
                        0,
                        max_line,
                    )
                } else {
                    Ok(None)
                }
            });
            match resumed {
                Ok(Some(t)) if t.id == id => {
                    notices.push(notice(
                        &cp_path,
                        NoticeKind::Resumed,
                        format!(
                            "rotated to {} while stopped; resuming it at offset {}",
                            path.display(),
                            cp.offset
                        ),
                    ));
                    before.push(t);
                }
                Ok(_) => notices.push(notice(
                    &cp_path,
                    NoticeKind::CheckpointDropped,
                    format!(
                        "its inode now holds another file ({}); lines after offset {} are lost",
                        path.display(),
                        cp.offset
                    ),
                )),
                Err(e) => {
                    self.counters.read_errors += 1;
                    notices.push(notice(
                        &path,
                        NoticeKind::CheckpointDropped,
                        format!("rotated file cannot be read: {e}"),
                    ))
                }
            }
        }
        let mut known: HashSet<Ident> = claimed.clone();
        known.extend(found.iter().map(|f| f.id));
        known.extend(before.iter().chain(&active).map(|t| t.id));
        let between = self.rotated_while_stopped(&before, &known, notices);
        for mut t in before.into_iter().chain(between).chain(active) {
            t.seq = self.take_seq();
            self.files.push(t);
        }
        for f in found {
            if !claimed.contains(&f.id) {
                self.open_found(f, Start::Beginning, notices);
            }
        }
    }

    /// Files written and rotated away entirely while we were stopped (two
    /// or more rotations during the downtime): no checkpoint names them and
    /// the pattern no longer matches them. Found, for each lineage resumed
    /// from a rotated file, as the other uncompressed rotated files of that
    /// lineage last written after it; read from the beginning, oldest
    /// first, after it and before the current file.
    pub(super) fn rotated_while_stopped(
        &mut self,
        resumed: &[Tracked],
        known: &HashSet<Ident>,
        notices: &mut Vec<Notice>,
    ) -> Vec<Tracked> {
        let Ok(pattern) = glob::Pattern::new(&self.opts.pattern) else {
            return Vec::new();
        };
        // Newest resumed rotated file of each lineage.
        let mut newest: HashMap<PathBuf, (i64, i64)> = HashMap::new();
        for t in resumed.iter().filter(|t| t.place == Place::Moved) {
            if self.lineage_origin(&t.path).as_ref() != Some(&t.origin) {
                continue;
            }
            let m = newest.entry(t.origin.clone()).or_insert(t.mtime);
            *m = (*m).max(t.mtime);
        }
        let mut out = Vec::new();
        for (origin, after) in newest {
            let Ok(entries) = fs::read_dir(parent_dir(&origin)) else {
                continue;
            };
            let mut between: Vec<((i64, i64), PathBuf)> = entries
                .flatten()
                .filter_map(|e| {
                    let meta = e.metadata().ok()?;
                    let path = e.path();
                    let mtime = (meta.mtime(), meta.mtime_nsec());
                    (meta.is_file()
                        && mtime > after
                        && !known.contains(&Ident::of(&meta))
                        && !pattern.matches_path(&path)
                        && !is_compressed(&path)
                        && self.lineage_origin(&path).as_ref() == Some(&origin))
                    .then_some((mtime, path))
                })
                .collect();
            between.sort();
            for (_, path) in between {
                let Ok(file) = self.open(&path) else { continue };
                if let Ok(Some(t)) = Tracked::open(
                    file,
                    &path,
                    &origin,
                    Start::Beginning,
                    Place::Moved,
                    0,
                    self.opts.max_line.max(1),
                ) {
                    notices.push(notice(
                        &path,
                        NoticeKind::Resumed,
                        format!(
                            "written and rotated away from {} while stopped; reading it from the beginning",
                            origin.display()
                        ),
                    ));
                    out.push(t);
                }
            }
        }
        out
    }
}

/// Whether an open file is still the one a checkpoint describes and holds
/// at least its offset.
pub(super) fn checkpoint_holds(file: &File, cp: &FileCheckpoint) -> io::Result<bool> {
    if cp.fingerprint_len > FINGERPRINT_BYTES {
        return Ok(false);
    }
    let mut head = [0u8; HEAD];
    let want = cp.fingerprint_len as usize;
    let n = read_up_to(file, 0, &mut head[..want])?;
    let size = file.metadata()?.len();
    Ok(n == want && Sha256::digest(&head[..n]).as_slice() == cp.fingerprint && size >= cp.offset)
}
