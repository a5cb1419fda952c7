//! Which file is which: a file is its device and inode plus its first
//! bytes, never its name. Recognising, on each sweep, files renamed away
//! (rotated), deleted or truncated under us, and finding the copy a
//! copytruncate left of a truncated file's old content.

use std::collections::{HashMap, HashSet};
use std::fs::{self, File, Metadata};
use std::io;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::time::Instant;

use sha2::{Digest, Sha256};

use super::checkpoint::FINGERPRINT_BYTES;
use super::discovery::{parent_dir, Found};
use super::notice::{notice, Notice, NoticeKind};
use super::reading::{read_up_to, LineState, Start, Tracked};
use super::FileTail;

/// The fingerprinted start of a file, as a buffer length.
pub(super) const HEAD: usize = FINGERPRINT_BYTES as usize;

/// Device and inode: the file itself, whatever its name, for as long as
/// it exists (a freed inode number is reused: hence the fingerprint).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub(super) struct Ident {
    pub(super) dev: u64,
    pub(super) ino: u64,
}

impl Ident {
    pub(super) fn of(meta: &Metadata) -> Self {
        Ident {
            dev: meta.dev(),
            ino: meta.ino(),
        }
    }
}

/// Where a tracked file stands with respect to the pattern.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum Place {
    /// Under the pattern.
    Active,
    /// Renamed away from the pattern (rotated), or the copy of a truncated
    /// file: read to its end, then closed after the grace period.
    Moved,
    /// Unlinked while we hold it: as `Moved`.
    Deleted,
}

impl FileTail {
    /// Re-stats every tracked file, resetting those truncated.
    pub(super) fn refresh_files(&mut self, now: Instant, notices: &mut Vec<Notice>) {
        let mut truncated = Vec::new();
        for (i, f) in self.files.iter_mut().enumerate() {
            match f.refresh(now) {
                Ok(false) => f.failing = false,
                Ok(true) => truncated.push(i),
                Err(e) => {
                    self.counters.read_errors += 1;
                    if !f.failing {
                        f.failing = true;
                        notices.push(notice(
                            &f.path,
                            NoticeKind::ReadError,
                            format!("cannot inspect: {e}"),
                        ));
                    }
                }
            }
        }
        self.handle_truncations(&truncated, notices);
    }

    /// Follows tracked files that left the pattern's matches in `found`:
    /// renamed (rotated) or deleted; and those that came back under it.
    pub(super) fn follow_renames(
        &mut self,
        found: &[Found],
        now: Instant,
        notices: &mut Vec<Notice>,
    ) {
        let by_id: HashMap<Ident, &Path> = found.iter().map(|f| (f.id, f.path.as_path())).collect();
        for f in &mut self.files {
            if let Some(&path) = by_id.get(&f.id) {
                if f.path != path {
                    notices.push(notice(
                        &f.path,
                        NoticeKind::Rotated,
                        format!("renamed to {}, still under the pattern", path.display()),
                    ));
                    f.path = path.to_path_buf();
                }
                f.place = Place::Active;
                f.closing = false;
                f.unseen = false;
                continue;
            }
            // Not listed because its directory cannot be read (made
            // unreadable, say), not because it went: no rotation can be
            // told, so it stays where it was and is read on from the open
            // descriptor. Said and counted once.
            if f.place == Place::Active && looks_hidden(&f.path) {
                if !f.unseen {
                    f.unseen = true;
                    self.counters.read_errors += 1;
                    notices.push(notice(
                        &f.path,
                        NoticeKind::ReadError,
                        "cannot be looked at any more (its directory is not readable); read on from the open file".to_owned(),
                    ));
                }
                continue;
            }
            match f.place {
                Place::Active => {
                    self.counters.rotations += 1;
                    // The grace period runs from the rotation: the writer
                    // may not have written for a while before it.
                    f.last_growth = now;
                    if f.nlink == 0 {
                        f.place = Place::Deleted;
                        notices.push(notice(
                            &f.path,
                            NoticeKind::Deleted,
                            format!("deleted; reading its last {} bytes", f.unread()),
                        ));
                    } else {
                        f.place = Place::Moved;
                        let old = f.path.clone();
                        let whereto = match find_by_id(&parent_dir(&old), f.id) {
                            Some(p) => {
                                let s = format!("rotated to {}", p.display());
                                f.path = p;
                                s
                            }
                            None => "rotated away".to_string(),
                        };
                        notices.push(notice(
                            &old,
                            NoticeKind::Rotated,
                            format!("{whereto}; reading its last {} bytes", f.unread()),
                        ));
                    }
                }
                Place::Moved if f.nlink == 0 => f.place = Place::Deleted,
                _ => {}
            }
        }
    }

    /// Resets truncated files to offset 0, reading first the copy of their
    /// old content when one is found.
    pub(super) fn handle_truncations(&mut self, indexes: &[usize], notices: &mut Vec<Notice>) {
        if indexes.is_empty() {
            return;
        }
        let skip: HashSet<Ident> = self.files.iter().map(|f| f.id).collect();
        let mut copies = Vec::new();
        for &i in indexes {
            self.counters.truncations += 1;
            let (dir, head_len, fp, offset, path, origin) = {
                let f = &self.files[i];
                notices.push(notice(
                    &f.path,
                    NoticeKind::Truncated,
                    format!(
                        "truncated (we were at offset {}); reading it from 0",
                        f.offset
                    ),
                ));
                (
                    parent_dir(&f.path),
                    f.head.len() as u64,
                    f.fingerprint,
                    f.offset,
                    f.path.clone(),
                    f.origin.clone(),
                )
            };
            // An empty head matches any file: no way to tell the copy.
            if head_len > 0 && offset > 0 {
                if let Some(mut copy) =
                    self.open_copy(&dir, &skip, head_len, &fp, offset, &path, notices)
                {
                    copy.origin = origin;
                    // The copy takes the file's place in the reading order.
                    copy.seq = self.files[i].seq;
                    copies.push(copy);
                    self.files[i].seq = self.take_seq();
                }
            }
            let f = &mut self.files[i];
            if let Err(e) = f.reset() {
                self.counters.read_errors += 1;
                notices.push(notice(
                    &f.path,
                    NoticeKind::ReadError,
                    format!("cannot read its start after truncation: {e}"),
                ));
            }
        }
        for c in copies {
            self.insert(c);
        }
        self.files.sort_by_key(|f| f.seq);
    }

    /// Finds and opens the copy of a truncated file (copytruncate): a
    /// regular file in `dir`, not one of `skip`, at least `offset` bytes
    /// long, whose first `fp_len` bytes hash to `fp`; the newest if several.
    #[allow(clippy::too_many_arguments)]
    pub(super) fn open_copy(
        &mut self,
        dir: &Path,
        skip: &HashSet<Ident>,
        fp_len: u64,
        fp: &[u8; 32],
        offset: u64,
        of: &Path,
        notices: &mut Vec<Notice>,
    ) -> Option<Tracked> {
        if fp_len == 0 || fp_len > FINGERPRINT_BYTES {
            return None;
        }
        let entries = fs::read_dir(dir).ok()?;
        let mut best: Option<(std::time::SystemTime, PathBuf, File)> = None;
        for entry in entries.flatten() {
            let Ok(meta) = entry.metadata() else { continue };
            if !meta.is_file()
                || skip.contains(&Ident::of(&meta))
                || meta.len() < offset.max(fp_len)
            {
                continue;
            }
            let path = entry.path();
            let Ok(file) = self.open(&path) else { continue };
            let mut head = [0u8; HEAD];
            let want = fp_len as usize;
            match read_up_to(&file, 0, &mut head[..want]) {
                Ok(n) if n == want && Sha256::digest(&head[..n]).as_slice() == fp => {}
                _ => continue,
            }
            let mtime = meta.modified().unwrap_or(std::time::UNIX_EPOCH);
            if best.as_ref().is_none_or(|(t, _, _)| mtime > *t) {
                best = Some((mtime, path, file));
            }
        }
        let (_, path, file) = best?;
        let seq = self.take_seq();
        match Tracked::open(
            file,
            &path,
            of,
            Start::At(offset),
            Place::Moved,
            seq,
            self.opts.max_line.max(1),
        ) {
            Ok(Some(t)) => {
                notices.push(notice(
                    &path,
                    NoticeKind::CopyFound,
                    format!(
                        "copy of truncated {}: reading it from offset {offset} ({} bytes)",
                        of.display(),
                        t.size.saturating_sub(offset)
                    ),
                ));
                Some(t)
            }
            _ => None,
        }
    }
}

impl Tracked {
    /// Re-stats the open file. `Ok(true)` if it was truncated.
    pub(super) fn refresh(&mut self, now: Instant) -> io::Result<bool> {
        let meta = self.file.metadata()?;
        self.nlink = meta.nlink();
        let size = meta.len();
        let mtime = (meta.mtime(), meta.mtime_nsec());
        if size < self.pos {
            return Ok(true);
        }
        if (size, mtime) != (self.size, self.mtime) && !self.check_head()? {
            return Ok(true);
        }
        if size > self.size {
            self.last_growth = now;
            self.closing = false;
        }
        self.size = size;
        self.mtime = mtime;
        Ok(false)
    }

    /// Whether the file still starts with `head`; extends `head` (and the
    /// fingerprint) while the file is shorter than `HEAD`.
    pub(super) fn check_head(&mut self) -> io::Result<bool> {
        let mut now = [0u8; HEAD];
        let n = read_up_to(&self.file, 0, &mut now)?;
        let known = self.head.len();
        if n < known || now[..known] != self.head[..] {
            return Ok(false);
        }
        if n > known {
            self.head.extend_from_slice(&now[known..n]);
            self.fingerprint = Sha256::digest(&self.head).into();
        }
        Ok(true)
    }

    /// Back to offset 0 after a truncation.
    pub(super) fn reset(&mut self) -> io::Result<()> {
        self.offset = 0;
        self.pos = 0;
        self.carry.clear();
        self.state = LineState::Normal;
        self.closing = false;
        self.head.clear();
        self.check_head()?;
        self.fingerprint = Sha256::digest(&self.head).into();
        let meta = self.file.metadata()?;
        self.size = meta.len();
        self.mtime = (meta.mtime(), meta.mtime_nsec());
        self.last_growth = Instant::now();
        Ok(())
    }
}

/// The regular file in `dir` with identity `id`, if any.
pub(super) fn find_by_id(dir: &Path, id: Ident) -> Option<PathBuf> {
    fs::read_dir(dir).ok()?.flatten().find_map(|e| {
        let meta = e.metadata().ok()?;
        (meta.is_file() && Ident::of(&meta) == id).then(|| e.path())
    })
}

/// Whether `path` cannot be looked at, as opposed to being gone: a stat
/// refused for another reason than its absence.
fn looks_hidden(path: &Path) -> bool {
    std::fs::metadata(path).is_err_and(|e| e.kind() != std::io::ErrorKind::NotFound)
}
