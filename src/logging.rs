//! The daemon's own log, through tracing-subscriber.
//!
//! Under systemd (`JOURNAL_STREAM` set) journald adds the time itself, and
//! reads a `<N>` syslog priority prefix on each line to keep levels, so lines
//! go out without timestamps and with that prefix. `--log-format json` is for
//! log shippers. `RUST_LOG` (or `CANHGAC_LOG`) filters, default `info`.

use std::fmt;
use std::io::IsTerminal;

use tracing::{Level, Subscriber};
use tracing_subscriber::fmt::format::{self, FormatEvent, FormatFields};
use tracing_subscriber::fmt::FmtContext;
use tracing_subscriber::registry::LookupSpan;
use tracing_subscriber::EnvFilter;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum LogFormat {
    /// Journald-aware text: priority prefixes under systemd, timestamps otherwise.
    Text,
    Json,
}

/// Installs the global subscriber; a second call (tests) is ignored.
pub fn init(format: LogFormat) {
    let filter = std::env::var("CANHGAC_LOG")
        .ok()
        .and_then(|v| EnvFilter::try_new(v).ok())
        .or_else(|| EnvFilter::try_from_default_env().ok())
        .unwrap_or_else(|| EnvFilter::new("info"));
    let under_journald = std::env::var_os("JOURNAL_STREAM").is_some();
    // Colours only for a person at a terminal: journald, files and pipes
    // would keep the escape sequences as text.
    let ansi = !under_journald && std::io::stderr().is_terminal();
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_ansi(ansi)
        .with_writer(std::io::stderr);
    let _ = match (format, under_journald) {
        (LogFormat::Json, _) => builder.json().flatten_event(true).try_init(),
        (LogFormat::Text, true) => builder.event_format(Journald).try_init(),
        (LogFormat::Text, false) => builder.with_target(false).try_init(),
    };
}

/// `<3>message key=value`: sd-daemon(3) priority prefixes, no timestamp,
/// no colours.
struct Journald;

impl<S, N> FormatEvent<S, N> for Journald
where
    S: Subscriber + for<'a> LookupSpan<'a>,
    N: for<'a> FormatFields<'a> + 'static,
{
    fn format_event(
        &self,
        ctx: &FmtContext<'_, S, N>,
        mut writer: format::Writer<'_>,
        event: &tracing::Event<'_>,
    ) -> fmt::Result {
        let priority = match *event.metadata().level() {
            Level::ERROR => 3,
            Level::WARN => 4,
            Level::INFO => 6,
            Level::DEBUG | Level::TRACE => 7,
        };
        // journald makes each line a record of its own: a message of
        // several lines (a reload refused with its config errors) carries
        // the prefix on every line, or its details would be filed as info.
        let mut text = String::new();
        ctx.field_format()
            .format_fields(format::Writer::new(&mut text), event)?;
        for line in text.trim_end_matches('\n').split('\n') {
            writeln!(writer, "<{priority}>{line}")?;
        }
        Ok(())
    }
}
