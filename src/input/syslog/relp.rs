//! RELP, rsyslog's Reliable Event Logging Protocol (`omrelp` / `imrelp`):
//! the `syslog-relp` input, the lossless path for relays.
//!
//! A sender keeps every message until the receiver answers `rsp 200` to
//! its transaction number, and sends again what was not answered when a
//! session breaks. We answer a message only once the store transaction
//! holding what it did to the detector (incidents, counts) has committed:
//! the pipeline reports each commit ([`super::Source::committed`]) as the
//! number of the last chunk it had analysed, and a connection answers the
//! transactions of chunks up to it. So `kill -9` at any moment loses
//! nothing a relay sent: what was committed was answered or will be sent
//! again, what was not committed will be sent again. The price is that a
//! message committed and killed before its answer went out is analysed
//! twice (at most one sender window, `omrelp`'s `windowSize`).
//!
//! The protocol (librelp's, which rsyslog speaks): frames
//! `TXNR SP COMMAND SP DATALEN [SP DATA] LF`, the client opening with
//! `open` (its offers), then `syslog` frames, then `close`; each answered
//! by `TXNR rsp DATALEN [SP DATA] LF` whose data starts with a status code.
//! Answers go out in the order the frames came, which every client accepts.
//! A server about to go away says `0 serverclose 0` and closes.

use std::collections::VecDeque;
use std::io;
use std::net::IpAddr;
use std::sync::atomic::Ordering;
use std::sync::Arc;

use tokio::io::{AsyncReadExt, AsyncWriteExt};

use super::{take_message, Chunk, Context, Read, TCP_READ};

/// A transaction number or data length has at most 9 digits.
const MAX_DIGITS: usize = 9;

/// A command name is at most 32 letters.
const MAX_COMMAND: usize = 32;

/// Transactions received and not answered that make a connection stop
/// reading until some are answered: bounds the memory a client that
/// ignores its own window can make us hold (the queue budget bounds bytes,
/// not messages).
const MAX_UNANSWERED: usize = 65_536;

/// The answer to `open`: the offers we take (RELP version 0, `syslog`).
const OPEN_OK: &[u8] = b"200 OK\nrelp_version=0\nrelp_software=canhgac\ncommands=syslog";

/// What [`Parser::push`] finds.
#[derive(Debug, PartialEq, Eq)]
pub enum Frame<'a> {
    Open(u32),
    Syslog(u32, &'a [u8]),
    /// A syslog message longer than the limit: its bytes were skipped.
    Oversized(u32),
    Close(u32),
    /// A command this server does not know (its data skipped).
    Unknown(u32, String),
}

/// The byte stream broke the framing: the session cannot go on.
#[derive(Debug, PartialEq, Eq)]
pub struct Broken(pub String);

enum State {
    Txnr,
    Command,
    Length,
    Data,
    Trailer,
}

/// Frames from one connection's byte stream, never holding more than one
/// message of at most `max` bytes.
pub struct Parser {
    max: usize,
    state: State,
    txnr: u64,
    digits: usize,
    command: String,
    length: u64,
    data: Vec<u8>,
    /// Data bytes still to come of the current frame.
    remaining: u64,
}

impl Parser {
    pub fn new(max: usize) -> Self {
        Parser {
            max,
            state: State::Txnr,
            txnr: 0,
            digits: 0,
            command: String::new(),
            length: 0,
            data: Vec::new(),
            remaining: 0,
        }
    }

    /// Whether the stream is between frames (a close there loses nothing).
    pub fn between_frames(&self) -> bool {
        matches!(self.state, State::Txnr) && self.digits == 0
    }

    /// Feeds the next bytes; complete frames go to `out`.
    pub fn push(&mut self, mut bytes: &[u8], out: &mut dyn FnMut(Frame<'_>)) -> Result<(), Broken> {
        while let Some((&b, rest)) = bytes.split_first() {
            if let State::Data = self.state {
                // Whole runs of data at once, not byte by byte.
                let take = usize::try_from(self.remaining)
                    .unwrap_or(usize::MAX)
                    .min(bytes.len());
                if self.keeps_data() {
                    self.data.extend_from_slice(&bytes[..take]);
                }
                self.remaining -= take as u64;
                bytes = &bytes[take..];
                if self.remaining == 0 {
                    self.state = State::Trailer;
                }
                continue;
            }
            bytes = rest;
            match self.state {
                State::Txnr => match b {
                    b'0'..=b'9' if self.digits < MAX_DIGITS => {
                        self.txnr = self.txnr * 10 + u64::from(b - b'0');
                        self.digits += 1;
                    }
                    // Stray line ends between frames are harmless.
                    b'\n' | b'\r' if self.digits == 0 => {}
                    b' ' if self.digits > 0 => {
                        self.digits = 0;
                        self.state = State::Command;
                    }
                    _ => return Err(self.broken(b, "a transaction number")),
                },
                State::Command => match b {
                    b'a'..=b'z' | b'A'..=b'Z' if self.command.len() < MAX_COMMAND => {
                        self.command.push(char::from(b));
                    }
                    b' ' if !self.command.is_empty() => self.state = State::Length,
                    _ => return Err(self.broken(b, "a command name")),
                },
                State::Length => match b {
                    b'0'..=b'9' if self.digits < MAX_DIGITS => {
                        self.length = self.length * 10 + u64::from(b - b'0');
                        self.digits += 1;
                    }
                    b'\n' if self.digits > 0 && self.length == 0 => {
                        self.digits = 0;
                        self.emit(out);
                    }
                    // `0 SP LF`: some clients put the space anyway.
                    b' ' if self.digits > 0 && self.length == 0 => {
                        self.digits = 0;
                        self.state = State::Trailer;
                    }
                    b' ' if self.digits > 0 => {
                        self.digits = 0;
                        self.remaining = self.length;
                        self.state = State::Data;
                    }
                    _ => return Err(self.broken(b, "a data length")),
                },
                State::Data => unreachable!("data is taken in runs above"),
                State::Trailer => {
                    if b != b'\n' {
                        return Err(self.broken(b, "the frame's end (LF) after its data"));
                    }
                    self.emit(out);
                }
            }
        }
        Ok(())
    }

    /// Data is kept for messages within the limit and for `open` (its
    /// offers are small); other commands' data is skipped.
    fn keeps_data(&self) -> bool {
        let limit = if self.command == "syslog" {
            self.max
        } else {
            4096
        };
        self.length <= limit as u64 && matches!(self.command.as_str(), "syslog" | "open")
    }

    fn emit(&mut self, out: &mut dyn FnMut(Frame<'_>)) {
        // Transaction numbers are at most 999,999,999: they fit.
        let txnr = u32::try_from(self.txnr).unwrap_or(u32::MAX);
        match self.command.as_str() {
            "open" => out(Frame::Open(txnr)),
            "close" => out(Frame::Close(txnr)),
            "syslog" if self.keeps_data() => out(Frame::Syslog(txnr, &self.data)),
            "syslog" => out(Frame::Oversized(txnr)),
            other => out(Frame::Unknown(txnr, other.to_owned())),
        }
        self.txnr = 0;
        self.command.clear();
        self.length = 0;
        self.data.clear();
        self.state = State::Txnr;
    }

    fn broken(&self, b: u8, expected: &str) -> Broken {
        Broken(format!(
            "byte {:?} where {expected} was expected",
            char::from(b).escape_default().to_string()
        ))
    }
}

enum Event {
    Read(io::Result<usize>),
    /// A commit was reported (false: the receiver is gone).
    Committed(bool),
    Stop,
}

/// One answer owed, in the order the frames came.
struct Owed {
    txnr: u32,
    answer: Answer,
    /// The chunk that must be committed first (0: none).
    chunk: u64,
}

enum Answer {
    Ok,
    Open,
    Closed,
    Refused(String),
}

fn write_answer(out: &mut Vec<u8>, txnr: u32, answer: &Answer) {
    let data: &[u8] = match answer {
        Answer::Ok => b"200 OK",
        Answer::Open => OPEN_OK,
        Answer::Closed => b"",
        Answer::Refused(text) => text.as_bytes(),
    };
    out.extend_from_slice(format!("{txnr} rsp {}", data.len()).as_bytes());
    if !data.is_empty() {
        out.push(b' ');
        out.extend_from_slice(data);
    }
    out.push(b'\n');
}

/// Serves one RELP session until the client closes it, the stream breaks,
/// or the receiver stops (then every answer owed is sent once committed,
/// and `serverclose`).
pub(super) async fn connection<S>(stream: S, sender: IpAddr, ctx: Arc<Context>, reading: Reading)
where
    S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin,
{
    let sender_text = sender.to_string();
    let (mut rd, mut wr) = tokio::io::split(stream);
    let mut parser = Parser::new(ctx.opts.max_message);
    let mut buf = vec![0u8; TCP_READ];
    let mut owed: VecDeque<Owed> = VecDeque::new();
    let mut committed = ctx.committed.clone();
    let mut draining = ctx.draining.clone();
    let mut reading = Some(reading);
    let mut closing = false;
    let mut answers = Vec::new();
    loop {
        let can_read = reading.is_some() && owed.len() < MAX_UNANSWERED;
        // The branch outputs are only turned into an event here: a
        // `watch` borrow held across an await would make the task !Send.
        let event = tokio::select! {
            read = rd.read(&mut buf), if can_read => Event::Read(read),
            changed = committed.changed() => Event::Committed(changed.is_ok()),
            // Stopping: what the socket holds is left unread; the client
            // sends it again, with all that goes unanswered, after
            // `serverclose`.
            _ = draining.wait_for(|d| *d), if reading.is_some() => Event::Stop,
        };
        match event {
            Event::Committed(false) => return,
            Event::Committed(true) => {}
            Event::Stop => reading = None,
            Event::Read(read) => {
                let n = match ctx.admit(read, sender, "RELP").await {
                    Read::Bytes(n) => n,
                    Read::Again => continue,
                    Read::Closed => {
                        if !parser.between_frames() {
                            ctx.counters.malformed.fetch_add(1, Ordering::Relaxed);
                        }
                        // The client went away: nothing owed can reach it.
                        return;
                    }
                    Read::Failed | Read::Stopping => return,
                };
                let now = ctx.now_text();
                let mut chunk = Chunk::new(sender, n);
                let mut frames = Vec::new();
                let parsed = parser.push(&buf[..n], &mut |frame| match frame {
                    Frame::Syslog(txnr, msg) => {
                        take_message(&ctx, msg, &sender_text, &now, &mut chunk);
                        frames.push((txnr, Answer::Ok));
                    }
                    Frame::Oversized(txnr) => {
                        ctx.counters.oversized.fetch_add(1, Ordering::Relaxed);
                        frames.push((txnr, Answer::Ok));
                    }
                    Frame::Open(txnr) => frames.push((txnr, Answer::Open)),
                    Frame::Close(txnr) => {
                        closing = true;
                        frames.push((txnr, Answer::Closed));
                    }
                    Frame::Unknown(txnr, command) => frames.push((
                        txnr,
                        Answer::Refused(format!("500 command {command} not supported")),
                    )),
                });
                // Answered once this chunk (or, with no lines in it, all
                // before it) is committed.
                let chunk_no = ctx.send(chunk);
                owed.extend(frames.into_iter().map(|(txnr, answer)| Owed {
                    txnr,
                    answer,
                    chunk: chunk_no,
                }));
                if let Err(Broken(why)) = parsed {
                    ctx.counters.malformed.fetch_add(1, Ordering::Relaxed);
                    tracing::warn!(input = %ctx.opts.input, %sender, "RELP session broken: {why}");
                    return;
                }
                if closing {
                    reading = None;
                }
            }
        }
        let done = *committed.borrow_and_update();
        answers.clear();
        while owed.front().is_some_and(|o| o.chunk <= done) {
            if let Some(o) = owed.pop_front() {
                write_answer(&mut answers, o.txnr, &o.answer);
            }
        }
        if reading.is_none() && owed.is_empty() && !closing {
            answers.extend_from_slice(b"0 serverclose 0\n");
        }
        if !answers.is_empty() && wr.write_all(&answers).await.is_err() {
            return;
        }
        if reading.is_none() && owed.is_empty() {
            let _ = wr.shutdown().await;
            return;
        }
    }
}

/// Counts a connection that still reads, so that a stop knows when every
/// session has handed over all it will take.
pub(super) struct Reading(Arc<Context>);

impl Reading {
    pub(super) fn new(ctx: Arc<Context>) -> Self {
        ctx.counters.relp_reading.fetch_add(1, Ordering::Relaxed);
        Reading(ctx)
    }
}

impl Drop for Reading {
    fn drop(&mut self) {
        self.0.counters.relp_reading.fetch_sub(1, Ordering::Relaxed);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn frames(parser: &mut Parser, bytes: &[u8]) -> Result<Vec<String>, Broken> {
        let mut got = Vec::new();
        parser.push(bytes, &mut |f| got.push(format!("{f:?}")))?;
        Ok(got)
    }

    #[test]
    fn a_session_as_rsyslog_sends_it() {
        let mut p = Parser::new(100);
        let open = b"relp_version=0\nrelp_software=librelp,1.11.0,https://librelp.adiscon.com\ncommands=syslog";
        let mut stream = format!("1 open {} ", open.len()).into_bytes();
        stream.extend_from_slice(open);
        stream.extend_from_slice(b"\n2 syslog 11 <13>a b c d\n3 close 0\n");
        let got = frames(&mut p, &stream).expect("valid");
        assert_eq!(
            got,
            [
                "Open(1)",
                "Syslog(2, [60, 49, 51, 62, 97, 32, 98, 32, 99, 32, 100])",
                "Close(3)"
            ]
        );
        assert!(p.between_frames());
    }

    #[test]
    fn frames_split_anywhere_come_out_whole() {
        let stream = b"7 syslog 5 hello\n8 syslog 3 a\nb\n9 close 0 \n";
        for cut in 0..stream.len() {
            let mut p = Parser::new(100);
            let mut got = frames(&mut p, &stream[..cut]).expect("valid");
            got.extend(frames(&mut p, &stream[cut..]).expect("valid"));
            assert_eq!(
                got,
                [
                    "Syslog(7, [104, 101, 108, 108, 111])",
                    "Syslog(8, [97, 10, 98])",
                    "Close(9)"
                ],
                "cut at {cut}"
            );
        }
    }

    #[test]
    fn a_message_over_the_limit_is_skipped_not_held() {
        let mut p = Parser::new(4);
        let got = frames(&mut p, b"1 syslog 10 0123456789\n2 syslog 4 abcd\n").expect("valid");
        assert_eq!(got, ["Oversized(1)", "Syslog(2, [97, 98, 99, 100])"]);
        assert!(p.data.capacity() < 10);
    }

    #[test]
    fn unknown_commands_are_reported_and_skipped() {
        let mut p = Parser::new(100);
        let got = frames(&mut p, b"4 starttls 0\n5 syslog 1 x\n").expect("valid");
        assert_eq!(got, ["Unknown(4, \"starttls\")", "Syslog(5, [120])"]);
    }

    #[test]
    fn garbage_breaks_the_session_with_a_reason() {
        for bad in [
            &b"GET / HTTP/1.1\r\n"[..],
            b"1 syslog x\n",
            b"1 syslog 3 abcX",
            b"1234567890 syslog 1 a\n",
            b"1 syslog 0 a\n",
        ] {
            let mut p = Parser::new(100);
            let err = frames(&mut p, bad).expect_err("broken");
            assert!(err.0.contains("expected"), "{bad:?}: {err:?}");
        }
    }

    #[test]
    fn answers_are_framed_with_their_length() {
        let mut out = Vec::new();
        write_answer(&mut out, 2, &Answer::Ok);
        write_answer(&mut out, 3, &Answer::Closed);
        write_answer(&mut out, 1, &Answer::Open);
        let text = String::from_utf8(out).expect("ascii");
        assert!(text.starts_with("2 rsp 6 200 OK\n3 rsp 0\n1 rsp 59 200 OK\nrelp_version=0"));
        assert_eq!(OPEN_OK.len(), 59);
    }
}
