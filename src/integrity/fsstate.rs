//! A file's state as the baseline records it, read from the disk: size,
//! modification time, SHA-256 of the content, and the change hints (inode,
//! status-change time) that let a re-scan skip hashing unchanged files.
//!
//! Cost: a re-scan is one `lstat` per file; a file is read and hashed only
//! when its size, mtime, ctime or inode differ from what is known. ctime
//! cannot be set from user space, so a change disguised by restoring the
//! mtime (`touch -r`) is still seen. Files larger than the configured cap
//! are never read: their changes are judged on those stat fields alone.

use std::fs::{self, File, Metadata};
use std::io::{self, Read};
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::{MetadataExt, OpenOptionsExt};
use std::path::{Path, PathBuf};

use sha2::{Digest, Sha256};

use super::select::Signatures;

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FileState {
    /// A symbolic link: its "content" is its target, never followed.
    pub link: bool,
    pub size: u64,
    pub mtime_ns: i64,
    pub ctime_ns: i64,
    pub ino: u64,
    /// `None` for a file larger than the size cap.
    pub sha256: Option<[u8; 32]>,
    /// The first defacement signature in the content (text files only).
    pub signature: Option<String>,
}

impl FileState {
    /// Nothing the stat shows has changed: the content is taken as the same
    /// without reading it.
    pub fn same_stat(&self, meta: &Metadata) -> bool {
        self.link == meta.file_type().is_symlink()
            && self.size == meta.len()
            && self.mtime_ns == mtime_ns(meta)
            && self.ctime_ns == ctime_ns(meta)
            && self.ino == meta.ino()
    }

    /// The same content (for files not hashed: the same stat).
    pub fn same_content(&self, other: &FileState) -> bool {
        self.link == other.link
            && self.size == other.size
            && match (&self.sha256, &other.sha256) {
                (Some(a), Some(b)) => a == b,
                _ => {
                    self.mtime_ns == other.mtime_ns
                        && self.ctime_ns == other.ctime_ns
                        && self.ino == other.ino
                }
            }
    }
}

pub fn mtime_ns(meta: &Metadata) -> i64 {
    meta.mtime()
        .saturating_mul(1_000_000_000)
        .saturating_add(meta.mtime_nsec())
}

pub fn ctime_ns(meta: &Metadata) -> i64 {
    meta.ctime()
        .saturating_mul(1_000_000_000)
        .saturating_add(meta.ctime_nsec())
}

/// Why a file's state could not be read this time.
#[derive(Debug)]
pub enum ReadError {
    /// Gone, or replaced, between the walk and the read.
    Vanished,
    /// Written to while it was read: read it again once it settles.
    Unstable,
    /// The daemon is stopping: not read.
    Stopped,
    Io(io::Error),
}

/// How a file is read.
pub struct Reader<'a> {
    /// Files above this many bytes are not read.
    pub max_bytes: u64,
    pub signatures: &'a Signatures,
    buf: Vec<u8>,
    /// Set when the daemon stops: reads end at once, so a long first scan
    /// does not hold up the shutdown.
    stop: Option<std::sync::Arc<std::sync::atomic::AtomicBool>>,
}

const CHUNK: usize = 256 * 1024;

impl<'a> Reader<'a> {
    pub fn new(max_bytes: u64, signatures: &'a Signatures) -> Self {
        Reader {
            max_bytes,
            signatures,
            buf: Vec::new(),
            stop: None,
        }
    }

    pub fn with_stop(mut self, stop: std::sync::Arc<std::sync::atomic::AtomicBool>) -> Self {
        self.stop = Some(stop);
        self
    }

    pub fn stopping(&self) -> bool {
        self.stop
            .as_ref()
            .is_some_and(|s| s.load(std::sync::atomic::Ordering::Relaxed))
    }

    /// Reads the state of the file at `path`, whose `lstat` was `meta`;
    /// `text` asks for a signature search.
    pub fn read(
        &mut self,
        path: &Path,
        meta: &Metadata,
        text: bool,
    ) -> Result<FileState, ReadError> {
        if self.stopping() {
            return Err(ReadError::Stopped);
        }
        let mut state = FileState {
            link: meta.file_type().is_symlink(),
            size: meta.len(),
            mtime_ns: mtime_ns(meta),
            ctime_ns: ctime_ns(meta),
            ino: meta.ino(),
            sha256: None,
            signature: None,
        };
        if state.link {
            let target = fs::read_link(path).map_err(io_error)?;
            let target = target.as_os_str().as_bytes();
            state.sha256 = Some(Sha256::digest(target).into());
            return Ok(state);
        }
        if state.size > self.max_bytes {
            return Ok(state);
        }
        // O_NOFOLLOW: a file swapped for a link since the walk is not
        // followed out of the web root; O_NONBLOCK: nor does a FIFO swapped
        // in block the watcher.
        let mut file = fs::OpenOptions::new()
            .read(true)
            .custom_flags(libc::O_NOFOLLOW | libc::O_NONBLOCK)
            .open(path)
            .map_err(io_error)?;
        let opened = file.metadata().map_err(ReadError::Io)?;
        if !opened.is_file() || opened.ino() != meta.ino() || opened.dev() != meta.dev() {
            return Err(ReadError::Vanished);
        }
        let (sha, signature) = self.hash(&mut file, text)?;
        let after = file.metadata().map_err(ReadError::Io)?;
        if after.len() != meta.len()
            || mtime_ns(&after) != state.mtime_ns
            || ctime_ns(&after) != state.ctime_ns
        {
            return Err(ReadError::Unstable);
        }
        state.sha256 = Some(sha);
        state.signature = signature;
        Ok(state)
    }

    /// SHA-256 of the whole file and, for text, the first signature. Chunks
    /// overlap by [`Signatures::CARRY`] bytes for the search, so a signature
    /// across a chunk boundary is found.
    fn hash(
        &mut self,
        file: &mut File,
        text: bool,
    ) -> Result<([u8; 32], Option<String>), ReadError> {
        let mut hasher = Sha256::new();
        let mut signature = None;
        self.buf.clear();
        self.buf.resize(Signatures::CARRY + CHUNK, 0);
        let mut carried = 0;
        loop {
            let n = match file.read(&mut self.buf[carried..carried + CHUNK]) {
                Ok(0) => break,
                Ok(n) => n,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => return Err(ReadError::Io(e)),
            };
            hasher.update(&self.buf[carried..carried + n]);
            let end = carried + n;
            if text && signature.is_none() {
                signature = self.signatures.find(&self.buf[..end]);
            }
            let keep = end.min(Signatures::CARRY);
            self.buf.copy_within(end - keep..end, 0);
            carried = keep;
        }
        Ok((hasher.finalize().into(), signature))
    }
}

impl std::fmt::Display for ReadError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            ReadError::Vanished => f.write_str("removed or replaced while read"),
            ReadError::Unstable => f.write_str("still being written"),
            ReadError::Stopped => f.write_str("not read: stopping"),
            ReadError::Io(e) => write!(f, "{e}"),
        }
    }
}

fn io_error(e: io::Error) -> ReadError {
    if e.kind() == io::ErrorKind::NotFound || e.raw_os_error() == Some(libc::ELOOP) {
        ReadError::Vanished
    } else {
        ReadError::Io(e)
    }
}

/// A directory the walk could not read: what is known under it is neither
/// present nor removed.
#[derive(Debug)]
pub struct WalkError {
    pub path: PathBuf,
    pub error: io::Error,
}

/// Walks `root/start` (a file or directory; `start` empty for the whole
/// root) without following symbolic links, calling `visit(rel, meta)` for
/// each regular file and symbolic link; `skip_dir(rel)` prunes a directory.
/// A missing `start` visits nothing. Directories that cannot be read are
/// returned; the walk goes on.
pub fn walk(
    root: &Path,
    start: &[u8],
    skip_dir: &dyn Fn(&[u8]) -> bool,
    visit: &mut dyn FnMut(&[u8], &Metadata),
) -> Vec<WalkError> {
    let mut errors = Vec::new();
    let mut stack: Vec<Vec<u8>> = Vec::new();
    let abs = |rel: &[u8]| -> PathBuf {
        if rel.is_empty() {
            root.to_path_buf()
        } else {
            root.join(std::ffi::OsStr::from_bytes(rel))
        }
    };
    match fs::symlink_metadata(abs(start)) {
        Ok(meta) if meta.is_dir() => stack.push(start.to_vec()),
        Ok(meta) if meta.is_file() || meta.file_type().is_symlink() => {
            if !start.is_empty() {
                visit(start, &meta);
            }
        }
        Ok(_) => {}
        Err(e) if e.kind() == io::ErrorKind::NotFound => {}
        Err(error) => errors.push(WalkError {
            path: abs(start),
            error,
        }),
    }
    while let Some(dir) = stack.pop() {
        let path = abs(&dir);
        let entries = match fs::read_dir(&path) {
            Ok(entries) => entries,
            Err(e) if e.kind() == io::ErrorKind::NotFound => continue,
            Err(error) => {
                errors.push(WalkError { path, error });
                continue;
            }
        };
        for entry in entries {
            let entry = match entry {
                Ok(entry) => entry,
                Err(error) => {
                    errors.push(WalkError {
                        path: path.clone(),
                        error,
                    });
                    break;
                }
            };
            let mut rel = dir.clone();
            if !rel.is_empty() {
                rel.push(b'/');
            }
            rel.extend_from_slice(entry.file_name().as_bytes());
            // DirEntry::metadata is an lstat (no link followed).
            let meta = match entry.metadata() {
                Ok(meta) => meta,
                Err(e) if e.kind() == io::ErrorKind::NotFound => continue,
                Err(error) => {
                    errors.push(WalkError {
                        path: entry.path(),
                        error,
                    });
                    continue;
                }
            };
            if meta.is_dir() {
                if !skip_dir(&rel) {
                    stack.push(rel);
                }
            } else if meta.is_file() || meta.file_type().is_symlink() {
                visit(&rel, &meta);
            }
        }
    }
    errors
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hashes_links_caps_and_finds_signatures_across_chunks() {
        let dir = tempfile::tempdir().expect("tempdir");
        let sigs = Signatures::new(&[]).expect("signatures");
        let mut reader = Reader::new(1 << 20, &sigs);
        let page = dir.path().join("index.html");
        // A signature straddling the 256 KiB chunk boundary.
        let mut content = vec![b'x'; CHUNK - 4];
        content.extend_from_slice(b"Hacked by someone");
        fs::write(&page, &content).expect("write");
        let meta = fs::symlink_metadata(&page).expect("lstat");
        let state = reader.read(&page, &meta, true).expect("read");
        assert_eq!(state.sha256, Some(Sha256::digest(&content).into()));
        assert_eq!(state.signature.as_deref(), Some("Hacked by"));
        assert!(state.same_stat(&meta));
        let not_text = reader.read(&page, &meta, false).expect("read");
        assert_eq!(not_text.signature, None);

        let link = dir.path().join("link");
        std::os::unix::fs::symlink("/etc/passwd", &link).expect("symlink");
        let meta = fs::symlink_metadata(&link).expect("lstat");
        let state = reader.read(&link, &meta, true).expect("read link");
        assert!(state.link);
        assert_eq!(state.sha256, Some(Sha256::digest(b"/etc/passwd").into()));

        let mut small = Reader::new(10, &sigs);
        let meta = fs::symlink_metadata(&page).expect("lstat");
        let state = small.read(&page, &meta, true).expect("read big");
        assert_eq!(state.sha256, None, "over the cap: not hashed");
        assert!(state.same_content(&state.clone()));
    }

    #[test]
    fn walk_prunes_and_reports_what_it_cannot_read() {
        let dir = tempfile::tempdir().expect("tempdir");
        let root = dir.path();
        for f in ["a.html", "sub/b.html", "cache/c.html", "sub/deep/d.php"] {
            let p = root.join(f);
            fs::create_dir_all(p.parent().expect("parent")).expect("mkdir");
            fs::write(&p, f).expect("write");
        }
        let mut seen = Vec::new();
        let errors = walk(root, b"", &|rel| rel == b"cache", &mut |rel, _| {
            seen.push(String::from_utf8_lossy(rel).into_owned())
        });
        assert!(errors.is_empty(), "{errors:?}");
        seen.sort();
        assert_eq!(seen, ["a.html", "sub/b.html", "sub/deep/d.php"]);
        let mut seen = Vec::new();
        walk(root, b"sub/deep", &|_| false, &mut |rel, _| {
            seen.push(rel.to_vec())
        });
        assert_eq!(seen, [b"sub/deep/d.php".to_vec()]);
        let mut seen = Vec::new();
        walk(root, b"a.html", &|_| false, &mut |rel, _| {
            seen.push(rel.to_vec())
        });
        assert_eq!(seen, [b"a.html".to_vec()]);
        walk(root, b"missing", &|_| false, &mut |_, _| {
            panic!("nothing to visit")
        });
    }
}
