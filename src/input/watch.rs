//! Waking the pipeline when a watched directory changes.
//!
//! A [`Wakeup`] watches a set of directories (not recursively) with the
//! platform's notification API and lets one thread sleep until something
//! changes in them or a timeout passes. It carries one bit of detail: whether
//! the set of files may have changed ([`Woken::Changed`]: a creation, a
//! rename, a deletion, an error or a queue overflow), which the caller answers
//! with a [`sweep`](super::tail::FileTail::sweep), or only their content
//! ([`Woken::Data`]: a write, or a [`Waker`] of a network or journal input),
//! which a read answers: a read also notices a truncation. Sweeping at every
//! write would stat every followed file, and read the kernel's drop counters,
//! at every datagram. A lost, merged or overflowed event costs nothing but
//! the latency until the periodic sweep. Watching directories rather than
//! files sees creations and renames, and a directory watch survives the
//! rotation of the files in it.

use std::collections::HashMap;
use std::fs;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Condvar, Mutex};
use std::time::Duration;

use notify::event::ModifyKind;
use notify::{EventKind, RecommendedWatcher, RecursiveMode, Watcher};

use super::tail::{Notice, NoticeKind};

/// Why [`Wakeup::wait`] returned.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Default)]
pub enum Woken {
    /// The timeout passed.
    #[default]
    TimedOut,
    /// New content: read.
    Data,
    /// The files in a watched directory may have changed: sweep, then read.
    Changed,
}

impl Woken {
    pub fn is_woken(self) -> bool {
        self != Woken::TimedOut
    }
}

#[derive(Default)]
struct Signal {
    /// The strongest reason since the last wait.
    woken: Mutex<Woken>,
    cv: Condvar,
}

impl Signal {
    fn wake(&self, why: Woken) {
        // A poisoned flag is still a flag.
        let mut woken = self.woken.lock().unwrap_or_else(|e| e.into_inner());
        *woken = (*woken).max(why);
        self.cv.notify_all();
    }
}

/// Wakes another thread out of [`Wakeup::wait`] (e.g. for shutdown or
/// reload).
#[derive(Clone)]
pub struct Waker(Arc<Signal>);

impl Waker {
    /// New data to read (not a change of files).
    pub fn wake(&self) {
        self.0.wake(Woken::Data);
    }
}

/// Directory watches plus a flag to sleep on. See the module docs.
pub struct Wakeup {
    /// `None` when the platform refused a watcher: polling only.
    watcher: Option<RecommendedWatcher>,
    signal: Arc<Signal>,
    /// Watched directories, with the identity they had when watched: a
    /// directory deleted and recreated needs a new watch.
    watched: HashMap<PathBuf, (u64, u64)>,
    /// Directories wanted but not watched, with the error last reported.
    missing: HashMap<PathBuf, String>,
    /// Why there is no watcher, reported once by `set_dirs`.
    startup_error: Option<String>,
}

impl Default for Wakeup {
    fn default() -> Self {
        Self::new()
    }
}

impl Wakeup {
    /// A wakeup with no directories yet. If the platform gives no watcher
    /// (e.g. inotify instances exhausted), waits only time out; the first
    /// [`set_dirs`](Self::set_dirs) reports it.
    pub fn new() -> Self {
        let signal = Arc::new(Signal::default());
        let s = Arc::clone(&signal);
        let handler = move |res: notify::Result<notify::Event>| match res {
            // Opens and closes, ours included (every sweep opens files):
            // waking on them would spin. Writes come as modifications.
            Ok(event) if matches!(event.kind, EventKind::Access(_)) => {}
            // Appended (or truncated): the open files have it.
            Ok(event) if matches!(event.kind, EventKind::Modify(ModifyKind::Data(_))) => {
                s.wake(Woken::Data)
            }
            // Anything else, errors and queue overflows included: look.
            _ => s.wake(Woken::Changed),
        };
        let (watcher, startup_error) = match notify::recommended_watcher(handler) {
            Ok(w) => (Some(w), None),
            Err(e) => (None, Some(e.to_string())),
        };
        Wakeup {
            watcher,
            signal,
            watched: HashMap::new(),
            missing: HashMap::new(),
            startup_error,
        }
    }

    /// Makes the watched set exactly `dirs`. Directories that do not exist
    /// (yet) or cannot be watched are retried on every call; each problem is
    /// reported once. Cheap when nothing changed: one stat per directory.
    pub fn set_dirs(&mut self, dirs: &[PathBuf]) -> Vec<Notice> {
        let mut notices = Vec::new();
        let Some(watcher) = self.watcher.as_mut() else {
            if let Some(e) = self.startup_error.take() {
                notices.push(Notice {
                    path: PathBuf::new(),
                    kind: NoticeKind::Watch,
                    message: format!("no file change notifications ({e}); polling only"),
                });
            }
            return notices;
        };
        self.watched.retain(|dir, id| {
            let keep = dirs.contains(dir) && dir_id(dir).ok() == Some(*id);
            if !keep {
                // Fails if the directory is gone: the watch went with it.
                let _ = watcher.unwatch(dir);
            }
            keep
        });
        self.missing.retain(|dir, _| dirs.contains(dir));
        for dir in dirs {
            if self.watched.contains_key(dir) {
                continue;
            }
            let result = dir_id(dir).and_then(|id| {
                watcher
                    .watch(dir, RecursiveMode::NonRecursive)
                    .map(|()| id)
                    .map_err(|e| std::io::Error::other(e.to_string()))
            });
            match result {
                Ok(id) => {
                    self.watched.insert(dir.clone(), id);
                    if self.missing.remove(dir).is_some() {
                        // Files may have appeared before the watch.
                        self.signal.wake(Woken::Changed);
                    }
                }
                Err(e) => {
                    let message = if e.kind() == std::io::ErrorKind::NotFound {
                        "directory does not exist (yet); watching for it on every sweep".to_string()
                    } else {
                        format!("cannot watch: {e}; relying on the periodic sweep")
                    };
                    if self.missing.get(dir) != Some(&message) {
                        notices.push(Notice {
                            path: dir.clone(),
                            kind: NoticeKind::Watch,
                            message: message.clone(),
                        });
                        self.missing.insert(dir.clone(), message);
                    }
                }
            }
        }
        notices
    }

    /// Directories currently watched.
    pub fn watched(&self) -> Vec<PathBuf> {
        let mut dirs: Vec<PathBuf> = self.watched.keys().cloned().collect();
        dirs.sort();
        dirs
    }

    /// Sleeps until a change in a watched directory, a [`Waker::wake`], or
    /// `timeout`, and says which. Wakeups that came while not waiting are
    /// kept, merged into the strongest.
    pub fn wait(&self, timeout: Duration) -> Woken {
        let woken = self.signal.woken.lock().unwrap_or_else(|e| e.into_inner());
        let (mut woken, _) = self
            .signal
            .cv
            .wait_timeout_while(woken, timeout, |w| !w.is_woken())
            .unwrap_or_else(|e| e.into_inner());
        std::mem::take(&mut *woken)
    }

    pub fn waker(&self) -> Waker {
        Waker(Arc::clone(&self.signal))
    }
}

fn dir_id(dir: &Path) -> std::io::Result<(u64, u64)> {
    let meta = fs::metadata(dir)?;
    if !meta.is_dir() {
        return Err(std::io::Error::new(
            std::io::ErrorKind::NotFound,
            "not a directory",
        ));
    }
    Ok((meta.dev(), meta.ino()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Instant;

    /// Waits until no event came for `quiet`, bounded.
    fn settle(w: &Wakeup, quiet: Duration) {
        let deadline = Instant::now() + Duration::from_secs(10);
        while w.wait(quiet).is_woken() && Instant::now() < deadline {}
    }

    #[test]
    fn wakes_on_writes_and_new_directories_not_on_reads() {
        let tmp = tempfile::tempdir().expect("tempdir");
        let dir = tmp.path().join("later");
        let mut w = Wakeup::new();
        let notices = w.set_dirs(std::slice::from_ref(&dir));
        assert_eq!(notices.len(), 1, "{notices:?}");
        assert!(w.watched().is_empty());
        // Reported once, not on every call.
        assert!(w.set_dirs(std::slice::from_ref(&dir)).is_empty());

        fs::create_dir(&dir).expect("mkdir");
        assert!(w.set_dirs(std::slice::from_ref(&dir)).is_empty());
        assert_eq!(w.watched(), vec![dir.clone()]);
        // Appearing directory: woken once to look at what it holds.
        assert_eq!(w.wait(Duration::from_secs(5)), Woken::Changed);

        let file = dir.join("a.log");
        fs::write(&file, b"one\n").expect("write");
        assert_eq!(
            w.wait(Duration::from_secs(10)),
            Woken::Changed,
            "a new file is a change"
        );
        settle(&w, Duration::from_millis(200));

        // Appending is content only: no sweep needed.
        let mut f = fs::OpenOptions::new()
            .append(true)
            .open(&file)
            .expect("open");
        std::io::Write::write_all(&mut f, b"more\n").expect("append");
        assert_eq!(w.wait(Duration::from_secs(10)), Woken::Data);
        drop(f);
        settle(&w, Duration::from_millis(200));

        // Our own opening and reading must not wake us, or we would spin.
        let content = fs::read(&file).expect("read");
        assert_eq!(content, b"one\nmore\n");
        assert_eq!(
            w.wait(Duration::from_millis(300)),
            Woken::TimedOut,
            "woken by a read"
        );

        // Deleted and recreated: a new watch on the new directory.
        fs::remove_file(&file).expect("rm");
        fs::remove_dir(&dir).expect("rmdir");
        settle(&w, Duration::from_millis(100));
        w.set_dirs(std::slice::from_ref(&dir));
        assert!(w.watched().is_empty());
        fs::create_dir(&dir).expect("mkdir again");
        w.set_dirs(std::slice::from_ref(&dir));
        assert_eq!(w.watched(), vec![dir.clone()]);
        settle(&w, Duration::from_millis(100));
        fs::write(dir.join("b.log"), b"two\n").expect("write");
        assert_eq!(
            w.wait(Duration::from_secs(10)),
            Woken::Changed,
            "no wakeup in recreated dir"
        );
    }

    #[test]
    fn waker_wakes_and_timeouts_time_out() {
        let w = Wakeup::new();
        assert_eq!(w.wait(Duration::from_millis(10)), Woken::TimedOut);
        let waker = w.waker();
        let t = std::thread::spawn(move || waker.wake());
        assert_eq!(w.wait(Duration::from_secs(10)), Woken::Data);
        t.join().expect("waker thread");
        assert_eq!(w.wait(Duration::from_millis(10)), Woken::TimedOut);
    }
}
