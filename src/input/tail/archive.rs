//! Where a file rotated away while we were stopped may have gone, so that
//! its unread tail is read at restart rather than lost.
//!
//! logrotate may move it to another directory (`olddir`, usually below the
//! log's directory or beside it), and may compress it at once (`compress`
//! without `delaycompress`): then the file we were reading no longer exists
//! under any name, but its content does, in the `.gz`. So a checkpointed
//! file not found by identity in its own directory is looked for:
//!
//! 1. by identity (device and inode) in the candidate directories: the
//!    log's directory, its subdirectories and its siblings;
//! 2. compressed: a `.gz` there whose decompressed start has the
//!    checkpoint's fingerprint and which is at least as long as the
//!    checkpoint's offset. It is decompressed into an anonymous temporary
//!    file and read from the offset like any rotated file. Its checkpoints
//!    keep the fingerprint, so a restart while reading it finds it again.
//!
//! A file found neither way is lost: said, and counted in `position_lost`.
//! Only files of the input's own lineage are looked for (their name starts
//! as the pattern's does): after the input's `path` changed, the old file
//! is no longer the input's and is not chased.

use std::fs::{self, File, OpenOptions};
use std::io::{self, Read};
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};

use sha2::{Digest, Sha256};

use super::checkpoint::{checkpoint_holds, FileCheckpoint, FINGERPRINT_BYTES};
use super::discovery::{parent_dir, stems};
use super::identity::{find_by_id, Ident, Place};
use super::reading::{Start, Tracked};
use super::FileTail;

/// Directories looked at, at most: a restart must not crawl a big tree.
const MAX_DIRS: usize = 64;

impl FileTail {
    /// The checkpointed file `cp`, found in another directory or compressed,
    /// opened at its offset; `None` when it is nowhere to be found.
    pub(super) fn find_archived(&mut self, cp: &FileCheckpoint, origin: &Path) -> Option<Tracked> {
        let id = Ident {
            dev: cp.dev,
            ino: cp.ino,
        };
        let dirs = candidate_dirs(&parent_dir(Path::new(&cp.path)));
        let max_line = self.opts.max_line.max(1);
        for dir in &dirs {
            let Some(path) = find_by_id(dir, id) else {
                continue;
            };
            let Ok(file) = self.open(&path) else { continue };
            if checkpoint_holds(&file, cp).unwrap_or(false) {
                let seq = self.take_seq();
                let start = Start::At(cp.offset);
                if let Ok(Some(t)) =
                    Tracked::open(file, &path, origin, start, Place::Moved, seq, max_line)
                {
                    return Some(t);
                }
            }
        }
        let (path, file) = dirs.iter().find_map(|dir| decompressed_copy(dir, cp))?;
        let seq = self.take_seq();
        let start = Start::At(cp.offset);
        Tracked::open(file, &path, origin, start, Place::Moved, seq, max_line)
            .ok()
            .flatten()
    }

    /// Whether `path` is of the input's lineage: its name, or a start of it
    /// cut before `.`, `-` or `_` (`auth.log.1.gz` → `auth.log`), matches the
    /// name in the input's pattern.
    pub(super) fn of_lineage(&self, path: &Path) -> bool {
        let pattern_name = Path::new(&self.opts.pattern)
            .file_name()
            .and_then(|n| n.to_str())
            .and_then(|n| glob::Pattern::new(n).ok());
        let (Some(pattern), Some(name)) = (pattern_name, path.file_name().and_then(|n| n.to_str()))
        else {
            return false;
        };
        pattern.matches(name) || stems(name).any(|stem| pattern.matches(stem))
    }
}

/// The log's directory, then its subdirectories, then its siblings (at most
/// [`MAX_DIRS`] in all).
fn candidate_dirs(dir: &Path) -> Vec<PathBuf> {
    let mut dirs = vec![dir.to_path_buf()];
    let subdirs = |of: &Path| -> Vec<PathBuf> {
        let Ok(entries) = fs::read_dir(of) else {
            return Vec::new();
        };
        let mut found: Vec<PathBuf> = entries
            .flatten()
            .filter(|e| e.file_type().is_ok_and(|t| t.is_dir()))
            .map(|e| e.path())
            .collect();
        found.sort();
        found
    };
    dirs.extend(subdirs(dir));
    if let Some(parent) = dir.parent() {
        dirs.extend(subdirs(parent).into_iter().filter(|d| d != dir));
    }
    dirs.truncate(MAX_DIRS);
    dirs
}

/// A `.gz` in `dir` holding `cp`'s file: its decompressed start has the
/// fingerprint, and it is at least `cp.offset` long. Decompressed into an
/// anonymous temporary file (gone once closed); the newest such `.gz` wins.
fn decompressed_copy(dir: &Path, cp: &FileCheckpoint) -> Option<(PathBuf, File)> {
    if cp.fingerprint_len == 0 || cp.fingerprint_len > FINGERPRINT_BYTES {
        return None;
    }
    let mut candidates: Vec<(std::time::SystemTime, PathBuf)> = fs::read_dir(dir)
        .ok()?
        .flatten()
        .filter(|e| e.path().extension().is_some_and(|x| x == "gz"))
        .filter_map(|e| {
            let meta = e.metadata().ok()?;
            let modified = meta.modified().ok()?;
            meta.is_file().then(|| (modified, e.path()))
        })
        .collect();
    candidates.sort_by_key(|c| std::cmp::Reverse(c.0));
    for (_, path) in candidates {
        let Ok(gz) = File::open(&path) else { continue };
        let mut head = vec![0u8; cp.fingerprint_len as usize];
        let mut decoder = flate2::read::MultiGzDecoder::new(gz);
        if decoder.read_exact(&mut head).is_err()
            || Sha256::digest(&head).as_slice() != cp.fingerprint
        {
            continue;
        }
        let Ok(copy) = decompress(&path, &head, decoder) else {
            continue;
        };
        if copy.metadata().is_ok_and(|m| m.len() >= cp.offset) {
            return Some((path, copy));
        }
    }
    None
}

/// `head` and the rest of `decoder` in an anonymous file in the temporary
/// directory (`O_TMPFILE`: no name, freed when closed), read from its start.
fn decompress(of: &Path, head: &[u8], mut decoder: impl Read) -> io::Result<File> {
    let mut copy = OpenOptions::new()
        .read(true)
        .write(true)
        .mode(0o600)
        .custom_flags(libc::O_TMPFILE)
        .open(std::env::temp_dir())?;
    io::Write::write_all(&mut copy, head)?;
    io::copy(&mut decoder, &mut copy)
        .map_err(|e| io::Error::new(e.kind(), format!("{}: {e}", of.display())))?;
    Ok(copy)
}
