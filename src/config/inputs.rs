//! `[[input]]`: where lines come from (files, the journal, syslog
//! receivers) and which rules read them. Every key an input's type does not
//! read is refused, and two inputs may share neither a name nor a listen
//! address.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::ops::Range;
use std::path::PathBuf;

use serde::Deserialize;
use toml::Spanned;

use super::validator::{position, Section, Validator};
use crate::input::syslog::Transport;
use crate::position::At;
use crate::rules::INPUT_TYPES;
use crate::tls::TlsPaths;

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct InputConfig {
    pub name: String,
    /// The line format, i.e. which rules read the input's lines: as written
    /// for files, `syslog` for the journal and the syslog receivers (their
    /// lines are written in syslog's format).
    pub input_type: String,
    pub source: SourceConfig,
    /// Read only while this file does not exist: a journal input for the
    /// lines that rsyslog writes to that file when it is installed.
    pub unless_exists: Option<PathBuf>,
    /// Where its source is written: `path`, `listen`, or `type` for the
    /// journal.
    pub at: At,
}

/// Where an input's lines come from.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum SourceConfig {
    Files {
        /// An absolute path or glob.
        path: String,
        /// Where to start in a file present when the input first starts with
        /// no checkpoint. Files that appear later are always read from their
        /// start.
        start_at_end: bool,
    },
    Journal {
        /// Read the journal files in this directory (`journalctl
        /// --directory`) instead of the system journal.
        directory: Option<PathBuf>,
        /// `journalctl` matches (`FIELD=value`, or `+` between groups).
        matches: Vec<String>,
        /// On the input's very first start: only entries from now on.
        start_at_end: bool,
    },
    Syslog {
        transport: Transport,
        listen: SocketAddr,
        /// Longer messages are counted and dropped.
        max_message: usize,
        /// Bytes received and not yet committed to the store, at most.
        queue_bytes: usize,
        /// UDP: the kernel receive buffer asked for (`SO_RCVBUF`) on a
        /// socket the daemon binds itself.
        receive_buffer: usize,
        /// TCP and RELP: TLS (RFC 5425) with this certificate and key.
        tls: Option<TlsPaths>,
    },
}

impl SourceConfig {
    /// Starts at the end on a first start only: an input that has committed
    /// before starts where it left off, or at the beginning.
    pub fn not_first_start(&mut self) {
        match self {
            SourceConfig::Files { start_at_end, .. }
            | SourceConfig::Journal { start_at_end, .. } => *start_at_end = false,
            SourceConfig::Syslog { .. } => {}
        }
    }
}

/// Input `type`s that are not a line format of files but a source of
/// syslog-format lines.
pub const SOURCE_TYPES: &[&str] = &["journal", "syslog-udp", "syslog-tcp", "syslog-relp"];

/// Default of `queue_bytes` for syslog receivers.
pub const DEFAULT_QUEUE_BYTES: usize = 4 << 20;

/// Default of `receive_buffer_bytes` for UDP receivers: what
/// canhgac-syslog.socket sets (`ReceiveBuffer=8M`). The kernel's default
/// (`net.core.rmem_default`, 208 KiB) holds a few hundred datagrams, a few
/// milliseconds of a busy sender: any pause of the receiving thread that
/// long loses messages. The kernel charges only what actually waits.
pub const DEFAULT_RECEIVE_BUFFER: usize = 8 << 20;

/// Default of `max_message_bytes` for syslog receivers: RFC 5425's 8192
/// with room for the long lines of web appliances.
pub const DEFAULT_MAX_MESSAGE: usize = 16 * 1024;

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawInput {
    pub(super) name: Spanned<String>,
    pub(super) path: Option<Spanned<String>>,
    #[serde(rename = "type")]
    pub(super) input_type: Spanned<String>,
    pub(super) start: Option<Spanned<String>>,
    /// Journal: a directory of journal files.
    pub(super) directory: Option<Spanned<String>>,
    /// Journal: `FIELD=value` matches.
    #[serde(rename = "match")]
    pub(super) matches: Option<Spanned<Vec<Spanned<String>>>>,
    /// Syslog receivers.
    pub(super) listen: Option<Spanned<String>>,
    pub(super) max_message_bytes: Option<Spanned<u64>>,
    pub(super) queue_bytes: Option<Spanned<u64>>,
    /// UDP receivers: the socket's kernel receive buffer.
    pub(super) receive_buffer_bytes: Option<Spanned<u64>>,
    /// TCP and RELP receivers: TLS.
    pub(super) tls_cert: Option<Spanned<String>>,
    pub(super) tls_key: Option<Spanned<String>>,
    /// Journal: left out while this file exists.
    pub(super) unless_exists: Option<Spanned<String>>,
}

/// Takes out of `inputs` those whose `unless_exists` file exists, decided
/// each time the config is read (start, SIGHUP, `check`): on a host where
/// rsyslog writes auth.log, the journal input for the same lines would
/// count every attempt twice.
pub(super) fn left_out(inputs: &mut Vec<InputConfig>) -> Vec<(String, PathBuf)> {
    let mut out = Vec::new();
    inputs.retain(|input| match &input.unless_exists {
        Some(file) if file.exists() => {
            out.push((input.name.clone(), file.clone()));
            false
        }
        _ => true,
    });
    out
}

impl Validator<'_> {
    /// Every `[[input]]`, and the span of each input name (web roots may
    /// not reuse them).
    pub(super) fn inputs(
        &mut self,
        raw: &[Spanned<RawInput>],
    ) -> (Vec<InputConfig>, HashMap<String, Range<usize>>) {
        let mut inputs = Vec::new();
        let mut names: HashMap<String, Range<usize>> = HashMap::new();
        let mut listeners: HashMap<(Transport, SocketAddr), Range<usize>> = HashMap::new();
        for spanned in raw {
            let input = spanned.get_ref();
            let name = input.name.get_ref();
            self.name(Section::Input, &input.name, &mut names);
            let input_span = spanned.span();
            if let Some(source) = self.source(input, input_span.clone()) {
                if let SourceConfig::Syslog {
                    transport, listen, ..
                } = &source
                {
                    let address = (transport.socket(), *listen);
                    if let Some(first) =
                        self.earlier_use(&mut listeners, address, input_span.clone())
                    {
                        self.error(
                            &input_span,
                            format!(
                                "{} {listen} is already the listen address of another input (at {first})",
                                transport.name()
                            ),
                        );
                    }
                }
                let input_type = input.input_type.get_ref();
                let key = match &source {
                    SourceConfig::Files { .. } => input.path.as_ref(),
                    SourceConfig::Syslog { .. } => input.listen.as_ref(),
                    SourceConfig::Journal { .. } => None,
                };
                let span = key.map_or_else(|| input.input_type.span(), Spanned::span);
                let at = At(position(&self.file, self.text, span.start));
                inputs.push(InputConfig {
                    name: name.clone(),
                    unless_exists: self.resolve_optional(&input.unless_exists),
                    input_type: if SOURCE_TYPES.contains(&input_type.as_str()) {
                        "syslog".to_owned()
                    } else {
                        input_type.clone()
                    },
                    source,
                    at,
                });
            }
        }
        (inputs, names)
    }

    /// What an `[[input]]` reads, with every key that its type does not
    /// read refused (a `path` on a journal input is a mistake, not a no-op).
    fn source(&mut self, input: &RawInput, span: Range<usize>) -> Option<SourceConfig> {
        let input_type = input.input_type.get_ref().as_str();
        let stray = |v: Option<Range<usize>>, key: &str| v.map(|s| (s, key.to_owned()));
        let mut strays = Vec::new();
        let is_file = INPUT_TYPES.contains(&input_type);
        let is_journal = input_type == "journal";
        let is_syslog = matches!(input_type, "syslog-udp" | "syslog-tcp" | "syslog-relp");
        if !is_file && !is_journal && !is_syslog {
            self.error(
                &input.input_type.span(),
                format!(
                    "unknown input type {input_type:?}; expected one of {}, {}",
                    INPUT_TYPES.join(", "),
                    SOURCE_TYPES.join(", ")
                ),
            );
            return None;
        }
        if !is_file {
            strays.extend(stray(input.path.as_ref().map(Spanned::span), "path"));
        }
        if !is_journal {
            strays.extend(stray(
                input.directory.as_ref().map(Spanned::span),
                "directory",
            ));
            strays.extend(stray(input.matches.as_ref().map(Spanned::span), "match"));
            strays.extend(stray(
                input.unless_exists.as_ref().map(Spanned::span),
                "unless_exists",
            ));
        }
        if !is_syslog {
            strays.extend(stray(input.listen.as_ref().map(Spanned::span), "listen"));
            strays.extend(stray(
                input.max_message_bytes.as_ref().map(Spanned::span),
                "max_message_bytes",
            ));
            strays.extend(stray(
                input.queue_bytes.as_ref().map(Spanned::span),
                "queue_bytes",
            ));
        } else {
            strays.extend(stray(input.start.as_ref().map(Spanned::span), "start"));
        }
        if input_type != "syslog-udp" {
            strays.extend(stray(
                input.receive_buffer_bytes.as_ref().map(Spanned::span),
                "receive_buffer_bytes",
            ));
        }
        if !is_syslog || input_type == "syslog-udp" {
            strays.extend(stray(
                input.tls_cert.as_ref().map(Spanned::span),
                "tls_cert",
            ));
            strays.extend(stray(input.tls_key.as_ref().map(Spanned::span), "tls_key"));
        }
        for (s, key) in strays {
            self.error(
                &s,
                format!("{key} is not read by inputs of type {input_type:?}"),
            );
        }
        let start_at_end = match input.start.as_ref().map(|s| s.get_ref().as_str()) {
            None | Some("end") => true,
            Some("beginning") => false,
            Some(other) => {
                let span = input.start.as_ref().map(Spanned::span).unwrap_or(0..0);
                self.error(
                    &span,
                    format!("start {other:?}: expected \"end\" or \"beginning\""),
                );
                true
            }
        };
        if is_file {
            let Some(path) = &input.path else {
                self.error(&span, format!("input of type {input_type:?} needs a path"));
                return None;
            };
            let file_path = self.resolve(path.get_ref());
            let file_path = file_path.to_string_lossy().into_owned();
            if let Err(e) = glob::Pattern::new(&file_path) {
                self.error(&path.span(), format!("bad path pattern {file_path:?}: {e}"));
            }
            return Some(SourceConfig::Files {
                path: file_path,
                start_at_end,
            });
        }
        if is_journal {
            let directory = self.resolve_optional(&input.directory);
            let mut matches = Vec::new();
            for m in input.matches.iter().flat_map(|m| m.get_ref()) {
                let text = m.get_ref();
                if valid_journal_match(text) {
                    matches.push(text.clone());
                } else {
                    self.error(
                        &m.span(),
                        format!(
                            "journal match {text:?}: expected FIELD=value (FIELD in upper-case letters, digits and '_', not starting with a digit, e.g. \"_SYSTEMD_UNIT=ssh.service\") or \"+\""
                        ),
                    );
                }
            }
            return Some(SourceConfig::Journal {
                directory,
                matches,
                start_at_end,
            });
        }
        let transport = match input_type {
            "syslog-udp" => Transport::Udp,
            "syslog-relp" => Transport::Relp,
            _ => Transport::Tcp,
        };
        let Some(listen) = &input.listen else {
            self.error(
                &span,
                format!(
                    "input of type {input_type:?} needs listen = \"IP:PORT\" (e.g. \"0.0.0.0:514\")"
                ),
            );
            return None;
        };
        let listen = match listen.get_ref().parse::<SocketAddr>() {
            Ok(addr) if addr.port() != 0 => addr,
            Ok(_) => {
                self.error(
                    &listen.span(),
                    "listen: port 0 is not a port to give to senders".into(),
                );
                return None;
            }
            Err(e) => {
                self.error(
                    &listen.span(),
                    format!(
                        "listen address {:?}: {e} (expected IP:PORT, e.g. \"0.0.0.0:514\")",
                        listen.get_ref()
                    ),
                );
                return None;
            }
        };
        let max_message = self.count(
            &input.max_message_bytes,
            DEFAULT_MAX_MESSAGE,
            480,
            1 << 20,
            "max_message_bytes",
        );
        let queue_bytes = self.count(
            &input.queue_bytes,
            DEFAULT_QUEUE_BYTES,
            64 * 1024,
            1 << 30,
            "queue_bytes",
        );
        if queue_bytes < 2 * max_message {
            let span = input
                .queue_bytes
                .as_ref()
                .map_or(span.clone(), Spanned::span);
            self.error(
                &span,
                format!("queue_bytes {queue_bytes} must hold at least two messages of max_message_bytes ({max_message})"),
            );
        }
        let receive_buffer = self.count(
            &input.receive_buffer_bytes,
            DEFAULT_RECEIVE_BUFFER,
            64 * 1024,
            1 << 30,
            "receive_buffer_bytes",
        );
        let tls = self.tls(
            &input.tls_cert,
            &input.tls_key,
            "set both (TLS, RFC 5425) or neither (plain TCP)",
        );
        Some(SourceConfig::Syslog {
            transport,
            listen,
            max_message,
            queue_bytes,
            receive_buffer,
            tls,
        })
    }
}

/// A `journalctl` match: `FIELD=value` with a field name as journald
/// accepts it, or `+` (OR between groups). Nothing else reaches the command
/// line: no option can be smuggled in.
fn valid_journal_match(m: &str) -> bool {
    if m == "+" {
        return true;
    }
    let Some((field, _)) = m.split_once('=') else {
        return false;
    };
    !field.is_empty()
        && field.len() <= 64
        && !field.as_bytes()[0].is_ascii_digit()
        && field
            .bytes()
            .all(|b| b.is_ascii_uppercase() || b.is_ascii_digit() || b == b'_')
}
