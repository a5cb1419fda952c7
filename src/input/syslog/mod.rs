//! Syslog receivers: `type = "syslog-udp"`, `"syslog-tcp"` and `"syslog-relp"`
//! inputs (RELP's answers after commit: [`relp`]).
//!
//! Each receiver runs its sockets on a thread of its own with a
//! single-threaded tokio runtime (one task per TCP connection, so hundreds
//! of senders cost tasks, not threads). Messages are split into frames
//! ([`frame`]), turned into syslog-format lines ([`message`]), grouped into
//! chunks of lines from one sender, and handed to the pipeline through a
//! channel that wakes it.
//!
//! # The queue, backpressure and drops
//!
//! The channel is bounded in bytes: a receiver takes `n` bytes of budget (a
//! semaphore of `queue_bytes` permits) for every `n` bytes it takes from a
//! socket, and the budget comes back as soon as the pipeline has *analysed*
//! the lines made of them, not when they are stored. What the store needs
//! of them after that (incidents, detector state) is in the pipeline's
//! pending batch, which the pipeline itself bounds (a commit is forced past
//! a few batches, and nothing is read while the store refuses commits). So
//! the rate a receiver takes never waits for a commit, however many
//! attackers the detector tracks (measured against rsyslog in
//! `benches/inputs.sh`), and what waits in memory stays bounded:
//!
//! - **TCP**: a connection whose next read finds no budget waits, so its
//!   socket buffer fills and TCP's flow control stops the sender. Nothing is
//!   dropped while the pipeline is behind or the store refuses commits;
//!   senders block (or spool, as rsyslog's action queues do).
//! - **UDP** cannot push back: a datagram that finds no budget is dropped
//!   and counted (`queue_full`), and so, as the kernel counts them for our
//!   socket in `/proc/self/net/udp` (read at every sweep), are datagrams the
//!   kernel dropped because we did not read fast enough (`socket_buffer`).
//!   A socket the daemon binds asks for `receive_buffer_bytes` (8 MiB) of
//!   kernel buffer, so that a pause of the receiving thread (or its 2 ms
//!   wait after a wakeup that found only a few datagrams) costs no burst;
//!   one from systemd keeps its unit's `ReceiveBuffer=`.
//! - Oversized (`max_message_bytes`) and malformed messages are counted and
//!   dropped, on both; the connection goes on with the next frame.
//!
//! # What a crash can lose
//!
//! Plain syslog has no acknowledgement of its own, and TCP acknowledges
//! bytes once they are in our kernel's receive buffer, before we have read
//! them. There is no position to resume from: the sender has forgotten what
//! it sent. After `kill -9` or a power cut these are lost: what the kernel
//! had acknowledged and we had not read (the connections' receive buffers),
//! what waited in the queue (`queue_bytes` at most), and what was analysed
//! and not yet committed (the pending batch: a batch interval's worth, at
//! most a few times `batch_lines`). Avoiding the loss altogether takes an
//! acknowledging protocol (RELP), where the sender keeps a message until
//! the receiver says it is stored: the `syslog-relp` input ([`relp`]). A
//! clean stop (SIGTERM) loses nothing that reached us: the receiver stops
//! accepting, reads what the kernel holds for each open connection (until
//! the sender closes it or is quiet for [`DRAIN_IDLE`]) and what the UDP
//! socket holds, and the pipeline commits it all before exiting (within
//! its drain timeout).

pub mod activation;
pub mod frame;
pub mod message;
pub mod relp;

use std::io;
use std::net::{IpAddr, SocketAddr};
use std::os::fd::AsRawFd;
use std::os::unix::fs::MetadataExt;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::mpsc::{self, Receiver, Sender, TryRecvError};
use std::sync::{Arc, RwLock};
use std::thread::JoinHandle;
use std::time::Duration;

use jiff::tz::TimeZone;
use jiff::Timestamp;
use tokio::io::AsyncReadExt;
use tokio::sync::Semaphore;

use super::source::{Drops, Note, Origin, Position, Source, SourceStats};
use super::watch::Waker;
use crate::admission::{Admission, Admitted, Connection, Heard};
use crate::tls::TlsPaths;
use frame::{Frame, Framer};

/// How a syslog input receives: the transport is part of the input's `type`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Transport {
    Udp,
    Tcp,
    /// RELP, over TCP.
    Relp,
}

impl Transport {
    pub fn name(self) -> &'static str {
        match self {
            Transport::Udp => "udp",
            Transport::Tcp => "tcp",
            Transport::Relp => "relp",
        }
    }

    /// The kind of socket it listens on: RELP and plain TCP cannot share
    /// a port, and take the same sockets from systemd.
    pub fn socket(self) -> Transport {
        match self {
            Transport::Relp => Transport::Tcp,
            other => other,
        }
    }
}

/// Lines from one sender are handed over in chunks of about this size.
const CHUNK_BYTES: usize = 64 * 1024;

/// Bytes asked of a TCP connection per read.
const TCP_READ: usize = 64 * 1024;

/// On a clean stop, a connection that has sent nothing for this long is
/// taken to have said all it had.
const DRAIN_IDLE: Duration = Duration::from_millis(200);

/// A TLS client that has not finished its handshake by then is dropped.
const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);

/// Connections open at once: bounds memory (one read buffer each) and file
/// descriptors against a flood. At the cap the sender quiet the longest is
/// closed for the new one (see [`crate::admission`]), and counted.
pub const MAX_CONNECTIONS: usize = 1024;

/// What the receiver needs to know.
#[derive(Clone, Debug)]
pub struct ReceiverOptions {
    pub input: String,
    pub transport: Transport,
    pub listen: SocketAddr,
    pub max_message: usize,
    pub queue_bytes: usize,
    /// Zone of the receipt time written into lines that carry no time.
    pub time_zone: TimeZone,
    /// TCP and RELP over TLS (RFC 5425).
    pub tls: Option<TlsPaths>,
}

/// The most a process without `CAP_NET_ADMIN` may ask for as a socket's
/// receive buffer (`net.core.rmem_max`); `None` if it cannot be read.
pub fn receive_buffer_cap() -> Option<usize> {
    std::fs::read_to_string("/proc/sys/net/core/rmem_max")
        .ok()?
        .trim()
        .parse()
        .ok()
}

/// What to do when the kernel caps a UDP socket's receive buffer below
/// the `asked` bytes: the daemon's log and `canhgac check` say it alike.
pub fn receive_buffer_advice(asked: usize) -> String {
    format!(
        "a burst that outlasts it is dropped and counted in canhgac_input_dropped_total{{reason=\"socket_buffer\"}}; raise the cap (sysctl net.core.rmem_max={asked}, and in /etc/sysctl.d/) or let canhgac-syslog.socket bind the port (ReceiveBuffer=)"
    )
}

/// A socket bound (or inherited from systemd) for a receiver.
pub enum Bound {
    Udp(std::net::UdpSocket),
    Tcp(std::net::TcpListener),
}

impl Bound {
    /// Binds `transport` on `addr`, non-blocking.
    pub fn bind(transport: Transport, addr: SocketAddr) -> io::Result<Bound> {
        let bound = match transport {
            Transport::Udp => Bound::Udp(std::net::UdpSocket::bind(addr)?),
            Transport::Tcp | Transport::Relp => Bound::Tcp(std::net::TcpListener::bind(addr)?),
        };
        bound.set_nonblocking()?;
        Ok(bound)
    }

    /// Asks the kernel for a receive buffer of `bytes` on a UDP socket
    /// (`SO_RCVBUF`, which the kernel caps at `net.core.rmem_max`); returns
    /// what it gave, in the same terms. A TCP socket is left as it is: flow
    /// control holds its senders back instead of dropping.
    pub fn ask_receive_buffer(&self, bytes: usize) -> io::Result<Option<usize>> {
        let Bound::Udp(s) = self else {
            return Ok(None);
        };
        let sock = socket2::SockRef::from(s);
        sock.set_recv_buffer_size(bytes)?;
        // Linux doubles the value for its own bookkeeping and reports that.
        Ok(Some(sock.recv_buffer_size()? / 2))
    }

    fn set_nonblocking(&self) -> io::Result<()> {
        match self {
            Bound::Udp(s) => s.set_nonblocking(true),
            Bound::Tcp(s) => s.set_nonblocking(true),
        }
    }

    /// Where it listens.
    pub fn local_addr(&self) -> io::Result<SocketAddr> {
        match self {
            Bound::Udp(s) => s.local_addr(),
            Bound::Tcp(s) => s.local_addr(),
        }
    }

    pub fn transport(&self) -> Transport {
        match self {
            Bound::Udp(_) => Transport::Udp,
            Bound::Tcp(_) => Transport::Tcp,
        }
    }

    pub fn try_clone(&self) -> io::Result<Bound> {
        Ok(match self {
            Bound::Udp(s) => Bound::Udp(s.try_clone()?),
            Bound::Tcp(s) => Bound::Tcp(s.try_clone()?),
        })
    }

    /// The socket's inode, by which the kernel's tables name it.
    fn inode(&self) -> Option<u64> {
        let fd = match self {
            Bound::Udp(s) => s.as_raw_fd(),
            Bound::Tcp(s) => s.as_raw_fd(),
        };
        std::fs::metadata(format!("/proc/self/fd/{fd}"))
            .ok()
            .map(|m| m.ino())
    }
}

/// Lines from one sender.
struct Chunk {
    sender: IpAddr,
    data: Vec<u8>,
    lines: u64,
    /// Budget taken for the bytes received; returned once analysed.
    permits: usize,
    /// Its place in the order chunks are handed over (from 1), which the
    /// pipeline's commits report as done (RELP answers wait for it).
    number: u64,
}

impl Chunk {
    fn new(sender: IpAddr, permits: usize) -> Self {
        Chunk {
            sender,
            data: Vec::new(),
            lines: 0,
            permits,
            number: 0,
        }
    }
}

/// Counters the receiver thread keeps for the pipeline.
#[derive(Default)]
struct Counters {
    oversized: AtomicU64,
    malformed: AtomicU64,
    queue_full: AtomicU64,
    read_errors: AtomicU64,
    connections: AtomicU64,
    /// Connections closed, at the cap, for a newer one.
    connections_shed: AtomicU64,
    /// RELP sessions still reading (a stop waits for these, then for the
    /// commit that lets the sessions answer and close).
    relp_reading: AtomicU64,
    /// Draining for a stop, the receiver has taken all there was.
    drained: AtomicBool,
}

struct Context {
    opts: ReceiverOptions,
    budget: Arc<Semaphore>,
    counters: Arc<Counters>,
    chunks: Sender<Chunk>,
    waker: Waker,
    /// Turns true when the pipeline stops: see [`Source::begin_drain`].
    draining: tokio::sync::watch::Receiver<bool>,
    /// Chunks numbered so far.
    numbered: AtomicU64,
    /// The number of the last chunk whose lines the store has committed.
    committed: tokio::sync::watch::Receiver<u64>,
    /// Certificate and key that new TLS connections get (a reload swaps
    /// them: see [`Source::reload`]).
    tls: Option<Arc<RwLock<Arc<rustls::ServerConfig>>>>,
    admission: Admission,
}

impl Context {
    /// Hands `chunk` over; returns its number, or with no lines in it (not
    /// handed over) the number of the last chunk before it, which is
    /// what must be committed before its messages count as stored.
    fn send(&self, mut chunk: Chunk) -> u64 {
        if chunk.lines == 0 {
            self.budget.add_permits(chunk.permits);
            return self.numbered.load(Ordering::Relaxed);
        }
        // Every task runs on the receiver's one thread, and nothing here
        // awaits: chunks are numbered in the order they enter the channel.
        let number = self.numbered.fetch_add(1, Ordering::Relaxed) + 1;
        chunk.number = number;
        // The pipeline gone means we are being stopped.
        if self.chunks.send(chunk).is_ok() {
            self.waker.wake();
        }
        number
    }

    /// Takes `n` bytes of budget for what a stream read; false once the
    /// receiver is stopping. Backpressure: no budget, no further reads; the
    /// socket buffer fills and TCP holds the sender.
    /// What a read from a stream connection gave; bytes only once the
    /// queue has room for them (TCP senders are held back meanwhile).
    pub(super) async fn admit(&self, read: io::Result<usize>, sender: IpAddr, what: &str) -> Read {
        match read {
            Ok(0) => Read::Closed,
            Ok(n) if self.take_budget(n).await => Read::Bytes(n),
            Ok(_) => Read::Stopping,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => Read::Again,
            Err(e) => {
                tracing::debug!(input = %self.opts.input, %sender, "{what} connection: {e}");
                Read::Failed
            }
        }
    }

    async fn take_budget(&self, n: usize) -> bool {
        match self.budget.acquire_many(n as u32).await {
            Ok(permit) => {
                permit.forget();
                true
            }
            Err(_) => false,
        }
    }

    /// The receipt time as written into lines without a time of their own.
    fn now_text(&self) -> String {
        Timestamp::now()
            .to_zoned(self.opts.time_zone.clone())
            .strftime("%Y-%m-%dT%H:%M:%S%.6f%:z")
            .to_string()
    }
}

/// A running receiver; dropping it closes its sockets and stops its thread.
pub struct SyslogSource {
    opts: ReceiverOptions,
    chunks: Receiver<Chunk>,
    budget: Arc<Semaphore>,
    counters: Arc<Counters>,
    lines: u64,
    bytes: u64,
    inode: Option<u64>,
    /// Kernel drops of the socket when we got it, and as last seen.
    kernel_drops: Option<(u64, u64)>,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    drain: tokio::sync::watch::Sender<bool>,
    /// The number of the last chunk analysed, and of the last committed.
    handed: u64,
    committed: tokio::sync::watch::Sender<u64>,
    tls: Option<Arc<RwLock<Arc<rustls::ServerConfig>>>>,
    thread: Option<JoinHandle<()>>,
}

/// The rustls config of a syslog receiver: the HTTP side's checks, without
/// its ALPN (syslog over TLS names no protocol).
fn tls_config(paths: &TlsPaths) -> io::Result<Arc<rustls::ServerConfig>> {
    let config = crate::tls::server_config(&paths.cert, &paths.key)
        .map_err(|e| io::Error::new(io::ErrorKind::InvalidData, e.message))?;
    let mut config = (*config).clone();
    config.alpn_protocols.clear();
    Ok(Arc::new(config))
}

impl SyslogSource {
    /// Starts receiving on `bound` (see [`Bound::bind`]).
    pub fn start(opts: ReceiverOptions, bound: Bound, waker: Waker) -> io::Result<SyslogSource> {
        bound.set_nonblocking()?;
        let inode = bound.inode();
        let (tx, rx) = mpsc::channel();
        let budget = Arc::new(Semaphore::new(opts.queue_bytes));
        let counters = Arc::new(Counters::default());
        let (drain, draining) = tokio::sync::watch::channel(false);
        let (committed, committed_rx) = tokio::sync::watch::channel(0);
        let tls = match &opts.tls {
            Some(paths) => Some(Arc::new(RwLock::new(tls_config(paths)?))),
            None => None,
        };
        let ctx = Arc::new(Context {
            opts: opts.clone(),
            budget: Arc::clone(&budget),
            counters: Arc::clone(&counters),
            chunks: tx,
            waker,
            draining,
            numbered: AtomicU64::new(0),
            committed: committed_rx,
            tls: tls.clone(),
            admission: Admission::new(crate::admission::within_file_limit(
                &format!("input {}: connections", opts.input),
                MAX_CONNECTIONS,
            )),
        });
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_io()
            .enable_time()
            .build()?;
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let thread = std::thread::Builder::new()
            .name(format!("syslog-{}", opts.transport.name()))
            .spawn(move || {
                runtime.block_on(async move {
                    let counters = Arc::clone(&ctx.counters);
                    let serve = async {
                        match bound {
                            Bound::Udp(s) => match tokio::net::UdpSocket::from_std(s) {
                                Ok(s) => udp(s, ctx).await,
                                Err(e) => tracing::error!("syslog receiver: {e}"),
                            },
                            Bound::Tcp(l) => match tokio::net::TcpListener::from_std(l) {
                                Ok(l) => tcp(l, ctx).await,
                                Err(e) => tracing::error!("syslog receiver: {e}"),
                            },
                        }
                        // Drained (or failed): nothing more will come. The
                        // runtime stays up until the stop.
                        counters.drained.store(true, Ordering::Release);
                        std::future::pending::<()>().await
                    };
                    tokio::select! {
                        _ = stopped => {}
                        () = serve => {}
                    }
                });
                // Dropping the runtime here drops every connection task and
                // closes the sockets before `Drop` returns.
            })?;
        let kernel_drops = inode
            .filter(|_| opts.transport == Transport::Udp)
            .and_then(udp_drops)
            .map(|d| (d, d));
        Ok(SyslogSource {
            opts,
            chunks: rx,
            budget,
            counters,
            lines: 0,
            bytes: 0,
            inode,
            kernel_drops,
            stop: Some(stop),
            drain,
            handed: 0,
            committed,
            tls,
            thread: Some(thread),
        })
    }

    pub fn options(&self) -> &ReceiverOptions {
        &self.opts
    }
}

/// How long a stopping RELP receiver gives its sessions to send the
/// answers the last commit allowed, and `serverclose`.
const RELP_LINGER: std::time::Duration = Duration::from_secs(2);

impl Drop for SyslogSource {
    fn drop(&mut self) {
        if self.opts.transport == Transport::Relp && *self.drain.borrow() {
            let until = std::time::Instant::now() + RELP_LINGER;
            while self.counters.connections.load(Ordering::Relaxed) > 0
                && std::time::Instant::now() < until
            {
                std::thread::sleep(Duration::from_millis(5));
            }
        }
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

impl Source for SyslogSource {
    fn sweep(&mut self) -> Vec<Note> {
        if let (Some((base, _)), Some(inode)) = (self.kernel_drops, self.inode) {
            if let Some(now) = udp_drops(inode) {
                self.kernel_drops = Some((base, now));
            }
        }
        Vec::new()
    }

    fn read(&mut self, max_bytes: usize, sink: &mut dyn FnMut(&Origin, &[u8])) -> usize {
        let mut total = 0;
        while total < max_bytes {
            match self.chunks.try_recv() {
                Ok(chunk) => {
                    let origin = Origin {
                        sender: Some(chunk.sender),
                    };
                    sink(&origin, &chunk.data);
                    // Analysed: what the store needs of these lines is in
                    // the pipeline's pending batch now.
                    self.budget.add_permits(chunk.permits);
                    self.handed = chunk.number;
                    total += chunk.data.len();
                    self.lines += chunk.lines;
                    self.bytes += chunk.permits as u64;
                }
                Err(TryRecvError::Empty | TryRecvError::Disconnected) => break,
            }
        }
        total
    }

    fn position(&self) -> Position {
        Position::Unresumable
    }

    fn commit_mark(&self) -> u64 {
        self.handed
    }

    fn committed(&mut self, mark: u64) {
        if *self.committed.borrow() < mark {
            self.committed.send_replace(mark);
        }
    }

    fn reload(&mut self) -> Result<(), String> {
        if let (Some(shared), Some(paths)) = (&self.tls, &self.opts.tls) {
            let config =
                tls_config(paths).map_err(|e| format!("input {}: TLS: {e}", self.opts.input))?;
            // A poisoned lock only means a panic elsewhere mid-swap; the
            // value is a whole Arc either way.
            *shared.write().unwrap_or_else(|p| p.into_inner()) = config;
        }
        Ok(())
    }

    fn awaiting_commit(&self) -> bool {
        // Only RELP senders wait for it; for the others a commit is paced
        // as the batch settings say.
        self.opts.transport == Transport::Relp && *self.committed.borrow() != self.handed
    }

    fn begin_drain(&mut self) {
        self.drain.send_replace(true);
    }

    fn drained(&self) -> bool {
        // Chunks sent before the flag was set are in the channel: the
        // pipeline reads until a read finds nothing after this is true.
        self.counters.drained.load(Ordering::Acquire)
    }

    fn stats(&self) -> SourceStats {
        let c = &self.counters;
        SourceStats {
            lines: self.lines,
            bytes: self.bytes,
            read_errors: c.read_errors.load(Ordering::Relaxed),
            dropped: Drops {
                oversized: c.oversized.load(Ordering::Relaxed),
                malformed: c.malformed.load(Ordering::Relaxed),
                queue_full: c.queue_full.load(Ordering::Relaxed),
                socket_buffer: self
                    .kernel_drops
                    .map_or(0, |(base, now)| now.saturating_sub(base)),
            },
            connections: c.connections.load(Ordering::Relaxed),
            connections_shed: c.connections_shed.load(Ordering::Relaxed),
            ..SourceStats::default()
        }
    }
}

/// Grows a chunk for one sender, handing it over when full or when the
/// sender changes.
struct Batcher {
    chunk: Option<Chunk>,
    sender_text: String,
}

impl Batcher {
    fn new() -> Self {
        Batcher {
            chunk: None,
            sender_text: String::new(),
        }
    }

    /// Adds one message from `sender`, which took `permits` of budget.
    fn take(&mut self, ctx: &Context, sender: IpAddr, msg: &[u8], permits: usize, now: &str) {
        if self.chunk.as_ref().is_some_and(|c| c.sender != sender) {
            self.flush(ctx);
        }
        let Batcher { chunk, sender_text } = self;
        let chunk = chunk.get_or_insert_with(|| {
            *sender_text = sender.to_string();
            let mut c = Chunk::new(sender, 0);
            c.data.reserve(CHUNK_BYTES + 1024);
            c
        });
        chunk.permits += permits;
        take_message(ctx, msg, sender_text, now, chunk);
        if chunk.data.len() >= CHUNK_BYTES {
            self.flush(ctx);
        }
    }

    fn flush(&mut self, ctx: &Context) {
        if let Some(chunk) = self.chunk.take() {
            ctx.send(chunk);
        }
    }
}

/// Turns one message into a line of `chunk`, counting what is refused.
fn take_message(ctx: &Context, msg: &[u8], sender: &str, now: &str, chunk: &mut Chunk) {
    match message::to_line(msg, sender, now, &mut chunk.data) {
        Ok(()) => chunk.lines += 1,
        Err(_) => {
            ctx.counters.malformed.fetch_add(1, Ordering::Relaxed);
        }
    }
}

/// How long a UDP receiver that found only a few datagrams waits before it
/// reads again: the most a datagram waits beyond its analysis, so that a
/// trickle of 10 k datagrams/s wakes this thread and the pipeline ~500
/// times a second rather than ~3,000. The socket's receive buffer (8 MiB
/// asked) holds far more than arrives meanwhile.
const UDP_GATHER: Duration = Duration::from_millis(2);

/// Datagrams a wakeup reads below which the receiver waits [`UDP_GATHER`].
const UDP_GATHER_BELOW: usize = 32;

async fn udp(socket: tokio::net::UdpSocket, ctx: Arc<Context>) {
    let max = ctx.opts.max_message;
    // One byte more than allowed: a datagram that fills it is too long.
    let mut buf = vec![0u8; max + 1];
    let mut batch = Batcher::new();
    let mut draining = ctx.draining.clone();
    loop {
        let stopping = tokio::select! {
            ready = socket.readable() => match ready {
                Ok(()) => false,
                Err(e) => {
                    ctx.counters.read_errors.fetch_add(1, Ordering::Relaxed);
                    tracing::warn!(input = %ctx.opts.input, "syslog UDP socket: {e}");
                    tokio::time::sleep(Duration::from_millis(100)).await;
                    continue;
                }
            },
            // A last pass over what the socket holds, then done.
            _ = draining.wait_for(|d| *d) => true,
        };
        let now = ctx.now_text();
        let mut read = 0usize;
        loop {
            let (n, peer) = match socket.try_recv_from(&mut buf) {
                Ok(got) => got,
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => {
                    ctx.counters.read_errors.fetch_add(1, Ordering::Relaxed);
                    tracing::debug!(input = %ctx.opts.input, "syslog UDP receive: {e}");
                    break;
                }
            };
            if n > max {
                ctx.counters.oversized.fetch_add(1, Ordering::Relaxed);
                continue;
            }
            // No budget: the store is behind and UDP cannot wait.
            match ctx.budget.try_acquire_many(n.max(1) as u32) {
                Ok(permit) => permit.forget(),
                Err(_) => {
                    ctx.counters.queue_full.fetch_add(1, Ordering::Relaxed);
                    continue;
                }
            }
            batch.take(&ctx, peer.ip().to_canonical(), &buf[..n], n.max(1), &now);
            read += 1;
        }
        batch.flush(&ctx);
        if stopping {
            return;
        }
        // A trickle lets the next datagrams gather in the socket buffer for
        // a moment, so that one wakeup of this thread and of the pipeline
        // takes several: per datagram, they cost more than analysing it.
        // The thread sleeps outside the runtime: parked in the runtime, it
        // would be woken by every datagram that arrives meanwhile. This
        // runtime serves this one socket, and a stop waits at most the
        // moment.
        if read < UDP_GATHER_BELOW {
            std::thread::sleep(UDP_GATHER);
        }
    }
}

async fn tcp(listener: tokio::net::TcpListener, ctx: Arc<Context>) {
    let mut shed_logged = false;
    let mut draining = ctx.draining.clone();
    loop {
        let accepted = tokio::select! {
            accepted = listener.accept() => accepted,
            _ = draining.wait_for(|d| *d) => break,
        };
        let (stream, peer) = match accepted {
            Ok(accepted) => accepted,
            Err(e) => {
                // Out of descriptors and the like: pause rather than spin.
                ctx.counters.read_errors.fetch_add(1, Ordering::Relaxed);
                tracing::warn!(input = %ctx.opts.input, "syslog TCP accept: {e}");
                tokio::time::sleep(Duration::from_millis(100)).await;
                continue;
            }
        };
        let conn = match ctx.admission.admit() {
            Admitted::In { conn, shed } => {
                if shed {
                    ctx.counters
                        .connections_shed
                        .fetch_add(1, Ordering::Relaxed);
                    if !shed_logged {
                        tracing::warn!(
                            input = %ctx.opts.input,
                            "syslog TCP: at the connection cap; the quietest senders are closed for new ones (canhgac_input_connections_shed_total)"
                        );
                        shed_logged = true;
                    }
                }
                conn
            }
            // Never: a sender is never busy. Kept for the type's sake.
            Admitted::Refused => {
                drop(stream);
                continue;
            }
        };
        ctx.counters.connections.fetch_add(1, Ordering::Relaxed);
        let sender = peer.ip().to_canonical();
        let ctx = Arc::clone(&ctx);
        let reading =
            (ctx.opts.transport == Transport::Relp).then(|| relp::Reading::new(Arc::clone(&ctx)));
        let open = Open(Arc::clone(&ctx), Arc::clone(&conn));
        let stream = Heard::new(stream, Arc::clone(&conn));
        let tls = ctx.tls.as_ref().map(|t| {
            // New connections take the certificate of the last reload.
            Arc::clone(&t.read().unwrap_or_else(|p| p.into_inner()))
        });
        match tls {
            None => {
                tokio::spawn(serve(stream, sender, ctx, reading, open));
            }
            Some(tls) => {
                let acceptor = tokio_rustls::TlsAcceptor::from(tls);
                tokio::spawn(async move {
                    let handshake =
                        tokio::time::timeout(HANDSHAKE_TIMEOUT, acceptor.accept(stream))
                            .await
                            .unwrap_or_else(|_| Err(io::ErrorKind::TimedOut.into()));
                    match handshake {
                        Ok(tls) => serve(tls, sender, Arc::clone(&ctx), reading, open).await,
                        Err(e) => {
                            ctx.counters.read_errors.fetch_add(1, Ordering::Relaxed);
                            tracing::debug!(input = %ctx.opts.input, %sender, "TLS handshake: {e}");
                        }
                    }
                });
            }
        }
    }
    // Stopping: no new senders; the open connections finish their reads
    // (RELP sessions then wait for the commit to answer, after this).
    drop(listener);
    let reading = if ctx.opts.transport == Transport::Relp {
        &ctx.counters.relp_reading
    } else {
        &ctx.counters.connections
    };
    while reading.load(Ordering::Relaxed) > 0 {
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

/// One session, plain or over TLS, of the input's protocol.
async fn serve<S>(
    stream: S,
    sender: IpAddr,
    ctx: Arc<Context>,
    reading: Option<relp::Reading>,
    open: Open,
) where
    S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin,
{
    let conn = Arc::clone(&open.1);
    let session = async {
        match reading {
            Some(reading) => relp::connection(stream, sender, ctx, reading).await,
            None => connection(stream, sender, ctx).await,
        }
    };
    // Shed for a newer connection: closed here, its socket with it.
    tokio::select! {
        () = session => {}
        () = conn.shed() => {}
    }
    drop(open);
}

/// Counts a connection down when its task ends, however it ends.
struct Open(Arc<Context>, Arc<Connection>);

impl Drop for Open {
    fn drop(&mut self) {
        self.0.counters.connections.fetch_sub(1, Ordering::Relaxed);
        self.0.admission.remove(&self.1);
    }
}

async fn connection<S>(mut stream: S, sender: IpAddr, ctx: Arc<Context>)
where
    S: tokio::io::AsyncRead + Unpin,
{
    let sender_text = sender.to_string();
    let mut framer = Framer::new(ctx.opts.max_message);
    let mut buf = vec![0u8; TCP_READ];
    let mut draining = ctx.draining.clone();
    loop {
        let read = if *draining.borrow() {
            match tokio::time::timeout(DRAIN_IDLE, stream.read(&mut buf)).await {
                Ok(read) => read,
                Err(_) => break,
            }
        } else {
            // `read` is cancel-safe: a stop that wins loses no bytes.
            tokio::select! {
                read = stream.read(&mut buf) => read,
                _ = draining.wait_for(|d| *d) => continue,
            }
        };
        let n = match ctx.admit(read, sender, "syslog TCP").await {
            Read::Bytes(n) => n,
            Read::Again => continue,
            Read::Closed | Read::Failed => break,
            Read::Stopping => return,
        };
        let now = ctx.now_text();
        let mut chunk = Chunk::new(sender, n);
        framer.push(&buf[..n], &mut |frame| {
            frame_into(&ctx, frame, &sender_text, &now, &mut chunk)
        });
        ctx.send(chunk);
    }
    let now = ctx.now_text();
    let mut chunk = Chunk::new(sender, 0);
    framer.finish(&mut |frame| frame_into(&ctx, frame, &sender_text, &now, &mut chunk));
    ctx.send(chunk);
}

fn frame_into(ctx: &Context, frame: Frame<'_>, sender: &str, now: &str, chunk: &mut Chunk) {
    match frame {
        Frame::Message(msg) => take_message(ctx, msg, sender, now, chunk),
        Frame::Oversized => {
            ctx.counters.oversized.fetch_add(1, Ordering::Relaxed);
        }
        Frame::Truncated => {
            ctx.counters.malformed.fetch_add(1, Ordering::Relaxed);
        }
    }
}

/// See [`Context::admit`].
pub(super) enum Read {
    Bytes(usize),
    /// Interrupted: read again.
    Again,
    /// The peer closed the connection.
    Closed,
    Failed,
    /// The queue is closed: the daemon is stopping.
    Stopping,
}

/// Datagrams the kernel dropped for the UDP socket with this inode (the
/// last column of `/proc/net/udp` and `udp6`).
fn udp_drops(inode: u64) -> Option<u64> {
    let inode = inode.to_string();
    for table in ["/proc/self/net/udp", "/proc/self/net/udp6"] {
        let Ok(text) = std::fs::read_to_string(table) else {
            continue;
        };
        for line in text.lines().skip(1) {
            let cols: Vec<&str> = line.split_whitespace().collect();
            if cols.get(9) == Some(&inode.as_str()) {
                return cols.last().and_then(|d| d.parse().ok());
            }
        }
    }
    None
}
