//! The daemon's feed reloader: a thread of its own, so that reading a feed
//! of a million lines (a second or so) never holds up the log pipeline,
//! which keeps checking lines against the set in use until the new one is
//! swapped in. On SIGHUP too: the new configuration's reloader loads what
//! changed (and new feeds) on its own thread, and the old one is told to
//! stop without being waited for.

use std::sync::mpsc::{self, RecvTimeoutError};
use std::sync::Arc;
use std::time::Duration;

use super::{Feed, FeedSet, Outcome};

/// The reloader's thread is never joined (see [`Reloader::stop`]); it ends
/// by itself once told to, or with the process.
pub struct Reloader {
    stop: mpsc::Sender<()>,
}

impl Reloader {
    /// Looks at every feed file each `every`, and calls `report(feed,
    /// outcome)` for each change found. `at_once`: first look now, reading
    /// even files just modified (a reload: the operator asked for them).
    pub fn start(
        feeds: Arc<FeedSet>,
        every: Duration,
        at_once: bool,
        report: impl Fn(&Feed, &Outcome) + Send + 'static,
    ) -> std::io::Result<Reloader> {
        let (stop, stopped) = mpsc::channel::<()>();
        std::thread::Builder::new()
            .name("feeds".into())
            .spawn(move || {
                let mut first = at_once;
                loop {
                    if !first {
                        match stopped.recv_timeout(every) {
                            Err(RecvTimeoutError::Timeout) => {}
                            _ => return,
                        }
                    }
                    for (i, outcome) in feeds.refresh(first) {
                        if let Some(feed) = feeds.get(i) {
                            report(feed, &outcome);
                        }
                    }
                    first = false;
                }
            })?;
        Ok(Reloader { stop })
    }

    /// Tells the thread to stop once the load in progress, if any, is done,
    /// without waiting for it: the caller is the pipeline. A feed shared
    /// with a newer reloader is kept from being loaded twice at once by the
    /// feed's own lock.
    pub fn stop(self) {
        let _ = self.stop.send(());
    }
}
