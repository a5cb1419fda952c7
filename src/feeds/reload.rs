//! The daemon's feed reloader: a thread of its own, so that reading a feed
//! of a million lines (a second or so) never holds up the log pipeline,
//! which keeps checking lines against the set in use until the new one is
//! swapped in.

use std::sync::mpsc::{self, RecvTimeoutError};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::Duration;

use super::{Feed, FeedSet, Outcome};

pub struct Reloader {
    stop: mpsc::Sender<()>,
    thread: JoinHandle<()>,
}

impl Reloader {
    /// Looks at every feed file each `every`, and calls `report(feed,
    /// outcome)` for each change found.
    pub fn start(
        feeds: Arc<FeedSet>,
        every: Duration,
        report: impl Fn(&Feed, &Outcome) + Send + 'static,
    ) -> std::io::Result<Reloader> {
        let (stop, stopped) = mpsc::channel::<()>();
        let thread = std::thread::Builder::new()
            .name("feeds".into())
            .spawn(move || loop {
                match stopped.recv_timeout(every) {
                    Err(RecvTimeoutError::Timeout) => {}
                    _ => return,
                }
                for (i, outcome) in feeds.refresh(false) {
                    if let Some(feed) = feeds.get(i) {
                        report(feed, &outcome);
                    }
                }
            })?;
        Ok(Reloader { stop, thread })
    }

    /// Stops the thread, after the load in progress if any.
    pub fn stop(self) {
        let _ = self.stop.send(());
        let _ = self.thread.join();
    }
}
