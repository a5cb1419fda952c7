//! Opening the configured inputs (files, journal, syslog receivers) where they left off: the
//! stored checkpoints and cursors at start, the running positions across a reload.

use std::collections::HashMap;
use std::time::Instant;

use jiff::Timestamp;
use tracing::warn;

use crate::analyze::{Analyzer, LineSource};
use crate::config::{Config, InputConfig, SourceConfig};
use crate::input::checkpoint::FileCheckpoint;
use crate::input::journal::{JournalOptions, JournalSource};
use crate::input::source::{Position, Source, SourceStats};
use crate::input::syslog::{Bound, ReceiverOptions, SyslogSource};
use crate::input::tail::{FileTail, TailOptions};
use crate::input::watch::Waker;
use crate::timestamp::TimeParser;

pub(super) struct Input {
    pub(super) config: InputConfig,
    /// Where its lines come from.
    pub(super) reader: Box<dyn Source>,
    /// Where the analyzer keeps its state for them.
    pub(super) source: LineSource,
    /// Counters already added to the metrics.
    pub(super) published: SourceStats,
    /// Lines not of the input's type already added to the metrics.
    pub(super) unrecognised_published: u64,
    /// Whether the first such line has been logged.
    pub(super) unrecognised_warned: bool,
    /// The newest event time of its lines, and when it was read.
    pub(super) clock: Option<(Timestamp, Instant)>,
}

/// Where an input resumes: the stored (or, across a reload, the running)
/// position.
#[derive(Default)]
pub(super) struct Resume {
    pub(super) checkpoints: Vec<FileCheckpoint>,
    pub(super) cursor: Option<String>,
}

impl Resume {
    pub(super) fn stored(recovery: &crate::store::Recovery, input: &str) -> Resume {
        Resume {
            checkpoints: checkpoints_of(&recovery.checkpoints, input),
            cursor: recovery
                .cursors
                .iter()
                .find(|(i, _)| i == input)
                .map(|(_, c)| c.clone()),
        }
    }

    pub(super) fn from_position(p: Position) -> Resume {
        match p {
            Position::Files(checkpoints) => Resume {
                checkpoints,
                cursor: None,
            },
            Position::Cursor(cursor) => Resume {
                checkpoints: Vec::new(),
                cursor,
            },
            Position::Unresumable => Resume::default(),
        }
    }
}

/// What opening an input needs besides its config.
pub(super) struct Opener<'a> {
    pub(super) config: &'a Config,
    pub(super) waker: Waker,
    /// Sockets systemd passed us (socket activation).
    pub(super) inherited: &'a [Bound],
}

/// A reload's inputs, opened before the running ones are given up.
#[derive(Default)]
pub(super) struct NewInputs {
    pub(super) opened: HashMap<String, Input>,
    /// Line sources under the new rules for the inputs kept running.
    pub(super) sources: HashMap<String, LineSource>,
}

pub(super) fn checkpoints_of(all: &[FileCheckpoint], input: &str) -> Vec<FileCheckpoint> {
    all.iter().filter(|c| c.input == input).cloned().collect()
}

impl Opener<'_> {
    pub(super) fn open(
        &self,
        analyzer: &mut Analyzer,
        input: &InputConfig,
        resume: Resume,
    ) -> Result<Input, String> {
        let config = self.config;
        let name = &input.name;
        let reader: Box<dyn Source> = match &input.source {
            SourceConfig::Files { path, start_at_end } => {
                let opts = TailOptions {
                    start_at_end: *start_at_end,
                    max_line: config.pipeline.max_line,
                    rotated_grace: config.pipeline.rotated_grace,
                    ..TailOptions::new(name.clone(), path.clone())
                };
                Box::new(
                    FileTail::new(opts, resume.checkpoints)
                        .map_err(|e| format!("input {name}: {e}"))?,
                )
            }
            SourceConfig::Journal {
                directory,
                matches,
                start_at_end,
            } => {
                let opts = JournalOptions {
                    directory: directory.clone(),
                    matches: matches.clone(),
                    start_at_end: *start_at_end,
                    max_line: config.pipeline.max_line,
                    time_zone: config.time_zone.clone(),
                    ..JournalOptions::new(name.clone())
                };
                Box::new(
                    JournalSource::start(opts, resume.cursor, self.waker.clone())
                        .map_err(|e| format!("input {name}: cannot follow the journal: {e}"))?,
                )
            }
            SourceConfig::Syslog {
                transport,
                listen,
                max_message,
                queue_bytes,
                receive_buffer,
                tls,
            } => {
                let inherited = self.inherited.iter().find(|b| {
                    b.transport() == transport.socket() && b.local_addr().ok() == Some(*listen)
                });
                // A socket from systemd keeps the buffer its unit gave it
                // (`ReceiveBuffer=` may exceed what the daemon may ask for).
                let bound = match inherited {
                    Some(b) => b.try_clone(),
                    None => Bound::bind(*transport, *listen).inspect(|b| {
                        ask_receive_buffer(name, b, *receive_buffer);
                    }),
                }
                .map_err(|e| {
                    let hint = if listen.port() < 1024 && e.kind() == std::io::ErrorKind::PermissionDenied {
                        " (ports below 1024 need CAP_NET_BIND_SERVICE or systemd socket activation: see docs/install.md)"
                    } else {
                        ""
                    };
                    format!(
                        "input {name}: cannot listen on {} {listen}: {e}{hint}",
                        transport.name()
                    )
                })?;
                let opts = ReceiverOptions {
                    input: name.clone(),
                    transport: *transport,
                    listen: *listen,
                    max_message: *max_message,
                    queue_bytes: *queue_bytes,
                    time_zone: config.time_zone.clone(),
                    tls: tls.clone(),
                };
                Box::new(
                    SyslogSource::start(opts, bound, self.waker.clone())
                        .map_err(|e| format!("input {name}: cannot start the receiver: {e}"))?,
                )
            }
        };
        let source = analyzer.source(
            &input.input_type,
            TimeParser::new(config.time_zone.clone(), Timestamp::now()),
        )?;
        Ok(Input {
            config: input.clone(),
            reader,
            source,
            published: SourceStats::default(),
            unrecognised_published: 0,
            unrecognised_warned: false,
            clock: None,
        })
    }
}

/// Gives a UDP socket the daemon bound the receive buffer its input asks
/// for, and says so when the kernel gives less: a burst longer than the
/// buffer is lost, and only the drop counter would tell.
fn ask_receive_buffer(input: &str, bound: &Bound, asked: usize) {
    match bound.ask_receive_buffer(asked) {
        Ok(Some(got)) if got < asked => warn!(
            "input {input}: the kernel gave its UDP socket a receive buffer of {got} bytes, not the {asked} asked for (net.core.rmem_max caps it): {}",
            crate::input::syslog::receive_buffer_advice(asked)
        ),
        Ok(_) => {}
        Err(e) => warn!("input {input}: cannot set the UDP receive buffer: {e}"),
    }
}
