//! Admission of connections at a cap, by shedding the one idle the longest.
//!
//! A listener that any local account can reach (the HTTP port, a syslog
//! port on loopback) must not be made to hold connections until the daemon
//! runs out of file descriptors, nor be filled with idle sockets so that a
//! real client is refused. So connections are capped, and when a new one
//! arrives at the cap, the connection idle the longest is told to close to
//! admit it: a flood of idle or slow sockets churns among itself while a
//! client that talks gets in. Only when every connection is busy is the new
//! one refused. What "busy" and "idle" mean is the caller's: an HTTP request
//! being answered, a syslog sender's last message.

use std::pin::Pin;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::Instant;

use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::sync::Notify;
use tracing::warn;

/// `configured` (the cap of the listener named `what`), kept within a
/// quarter of the process's limit on open files: the HTTP port and each
/// syslog TCP or RELP port may take a quarter, and what is left stays for
/// log files and the store, so that the daemon refuses a connection before
/// it refuses to open a log. With the unit's LimitNOFILE=16384 nothing is
/// lowered; a daemon started by hand under a soft limit of 1024 gets 256.
pub fn within_file_limit(what: &str, configured: usize) -> usize {
    cap(what, configured, open_files_limit())
}

fn cap(what: &str, configured: usize, open_files: Option<u64>) -> usize {
    let Some(limit) = open_files else {
        return configured.max(1);
    };
    let quarter = usize::try_from(limit / 4).unwrap_or(usize::MAX).max(1);
    if configured > quarter {
        warn!(
            "{what} {configured} lowered to {quarter}: the process may open {limit} files \
             (LimitNOFILE, ulimit -n); a quarter each for the listeners, the rest for logs and \
             the store"
        );
    }
    configured.clamp(1, quarter)
}

/// The soft limit on open files, from `/proc/self/limits`.
fn open_files_limit() -> Option<u64> {
    let limits = std::fs::read_to_string("/proc/self/limits").ok()?;
    let line = limits.lines().find(|l| l.starts_with("Max open files"))?;
    line["Max open files".len()..]
        .split_whitespace()
        .next()?
        .parse()
        .ok()
}

/// One open connection, as admission sees it.
pub struct Connection {
    busy: AtomicBool,
    born: Instant,
    /// Since when nothing has been in flight or received, in nanoseconds
    /// after `born`: an atomic, as a syslog sender marks it at every read.
    idle_since: AtomicU64,
    close: Notify,
}

impl Connection {
    fn new() -> Connection {
        Connection {
            busy: AtomicBool::new(false),
            born: Instant::now(),
            idle_since: AtomicU64::new(0),
            close: Notify::new(),
        }
    }

    /// `None` while busy.
    pub fn idle_since(&self) -> Option<Instant> {
        if self.busy.load(Ordering::Acquire) {
            return None;
        }
        let nanos = self.idle_since.load(Ordering::Acquire);
        Some(self.born + std::time::Duration::from_nanos(nanos))
    }

    /// Something is in flight: not to be shed.
    pub fn begin(&self) {
        self.busy.store(true, Ordering::Release);
    }

    /// Nothing in flight any more, or a sign of life: idle from now.
    pub fn end(&self) {
        let nanos = u64::try_from(self.born.elapsed().as_nanos()).unwrap_or(u64::MAX);
        self.idle_since.store(nanos, Ordering::Release);
        self.busy.store(false, Ordering::Release);
    }

    /// Completes once the connection is shed.
    pub async fn shed(&self) {
        self.close.notified().await;
    }
}

/// What [`Admission::admit`] decided.
pub enum Admitted {
    /// In, after shedding another (`shed`) or not.
    In { conn: Arc<Connection>, shed: bool },
    /// At the cap with every connection busy.
    Refused,
}

/// The open connections of one listener.
pub struct Admission {
    open: Mutex<Vec<Arc<Connection>>>,
    max: usize,
}

impl Admission {
    pub fn new(max: usize) -> Admission {
        Admission {
            open: Mutex::new(Vec::new()),
            max: max.max(1),
        }
    }

    pub fn admit(&self) -> Admitted {
        let mut open = self.open.lock().unwrap_or_else(|e| e.into_inner());
        let mut shed = false;
        if open.len() >= self.max {
            let oldest = open
                .iter()
                .enumerate()
                .filter_map(|(i, c)| Some((c.idle_since()?, i)))
                .min()
                .map(|(_, i)| i);
            let Some(oldest) = oldest else {
                return Admitted::Refused;
            };
            // Stored if its task is not waiting yet: it closes at its first look.
            open.swap_remove(oldest).close.notify_one();
            shed = true;
        }
        let conn = Arc::new(Connection::new());
        open.push(Arc::clone(&conn));
        Admitted::In { conn, shed }
    }

    /// Forgets a connection that ended; how many are open.
    pub fn remove(&self, conn: &Arc<Connection>) -> usize {
        let mut open = self.open.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(i) = open.iter().position(|c| Arc::ptr_eq(c, conn)) {
            open.swap_remove(i);
        }
        open.len()
    }

    pub fn len(&self) -> usize {
        self.open.lock().unwrap_or_else(|e| e.into_inner()).len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// A stream whose connection is idle since the last byte received: for
/// listeners whose clients only send (syslog), a quiet sender is the idle
/// one, and a sending one is never the one shed while another idles.
pub struct Heard<S> {
    inner: S,
    conn: Arc<Connection>,
}

impl<S> Heard<S> {
    pub fn new(inner: S, conn: Arc<Connection>) -> Heard<S> {
        Heard { inner, conn }
    }
}

impl<S: AsyncRead + Unpin> AsyncRead for Heard<S> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<std::io::Result<()>> {
        let before = buf.filled().len();
        let polled = Pin::new(&mut self.inner).poll_read(cx, buf);
        if matches!(polled, Poll::Ready(Ok(()))) && buf.filled().len() > before {
            self.conn.end();
        }
        polled
    }
}

impl<S: AsyncWrite + Unpin> AsyncWrite for Heard<S> {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<std::io::Result<usize>> {
        Pin::new(&mut self.inner).poll_write(cx, buf)
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.inner).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn admitted(a: &Admission) -> (Arc<Connection>, bool) {
        match a.admit() {
            Admitted::In { conn, shed } => (conn, shed),
            Admitted::Refused => panic!("refused"),
        }
    }

    #[test]
    fn caps_keep_three_quarters_of_the_file_limit_for_the_rest() {
        assert_eq!(cap("x", 256, Some(16384)), 256);
        assert_eq!(cap("x", 1024, Some(16384)), 1024);
        assert_eq!(cap("x", 1024, Some(1024)), 256);
        assert_eq!(cap("x", 0, Some(16384)), 1);
        assert_eq!(cap("x", 256, None), 256);
        assert!(open_files_limit().is_some_and(|n| n > 0));
    }

    #[test]
    fn the_longest_idle_goes_and_busy_ones_stay() {
        let a = Admission::new(2);
        let (first, shed) = admitted(&a);
        assert!(!shed);
        let (second, _) = admitted(&a);
        second.begin();
        // Full: the idle first one is shed for the third.
        let (third, shed) = admitted(&a);
        assert!(shed);
        assert_eq!(a.len(), 2);
        // Its task learns it at its next look, even if not waiting yet.
        futures_shed(&first);
        third.begin();
        assert!(matches!(a.admit(), Admitted::Refused), "all busy");
        third.end();
        let (_, shed) = admitted(&a);
        assert!(shed);
        assert_eq!(a.remove(&second), 1);
    }

    fn futures_shed(conn: &Connection) {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_time()
            .build()
            .expect("runtime");
        rt.block_on(async {
            tokio::time::timeout(std::time::Duration::from_secs(1), conn.shed())
                .await
                .expect("told to close");
        });
    }
}
