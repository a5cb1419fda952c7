//! The tools every section validates with: errors at the position of the
//! value they are about, numbers and durations within bounds, paths taken
//! relative to the config file, names fit for labels and file names, and
//! TLS certificate and key pairs, read now so that `check` and a reload
//! refuse what could not be served.

use std::collections::hash_map::{Entry, HashMap};
use std::hash::Hash;
use std::ops::Range;
use std::path::{Path, PathBuf};
use std::str::FromStr;
use std::time::Duration;

use jiff::tz::TimeZone;
use toml::Spanned;

use super::{ConfigError, Needs};
use crate::duration;
use crate::position::Position;
use crate::tls::TlsPaths;

/// A config file's text being validated, and the errors found so far.
pub(super) struct Validator<'t> {
    pub(super) file: String,
    pub(super) text: &'t str,
    pub(super) base: PathBuf,
    pub(super) errors: Vec<ConfigError>,
    pub(super) needs: Needs,
}

impl Validator<'_> {
    pub(super) fn error(&mut self, span: &Range<usize>, message: String) {
        let pos = position(&self.file, self.text, span.start);
        self.errors.push(ConfigError { pos, message });
    }

    /// A count in `[min, max]`, `default` when absent or out of range (the
    /// error recorded).
    pub(super) fn count(
        &mut self,
        v: &Option<Spanned<u64>>,
        default: usize,
        min: u64,
        max: u64,
        what: &str,
    ) -> usize {
        let Some(v) = v else { return default };
        let n = *v.get_ref();
        if (min..=max).contains(&n) {
            n as usize
        } else {
            self.error(
                &v.span(),
                format!("{what} {n}: must be between {min} and {max}"),
            );
            default
        }
    }

    /// A duration of at most `max`, `default` when absent or invalid (the
    /// error recorded).
    pub(super) fn duration(
        &mut self,
        v: &Option<Spanned<String>>,
        default: Duration,
        max: Duration,
        what: &str,
    ) -> Duration {
        let Some(v) = v else { return default };
        match duration::parse(v.get_ref()) {
            Ok(t) if t.unsigned_abs() <= max => t.unsigned_abs(),
            Ok(_) => {
                self.error(&v.span(), format!("{what}: at most {}s", max.as_secs()));
                default
            }
            Err(e) => {
                self.error(&v.span(), format!("{what}: {e}"));
                default
            }
        }
    }

    /// `v` parsed, or `None` with the parse error recorded at `v`.
    pub(super) fn parsed<T: FromStr<Err = String>>(&mut self, v: &Spanned<String>) -> Option<T> {
        v.get_ref()
            .parse()
            .map_err(|e| self.error(&v.span(), e))
            .ok()
    }

    /// Where `key` was first used, if it was; else this use (at `span`) is
    /// recorded as the first.
    pub(super) fn earlier_use<K: Eq + Hash>(
        &self,
        uses: &mut HashMap<K, Range<usize>>,
        key: K,
        span: Range<usize>,
    ) -> Option<Position> {
        match uses.entry(key) {
            Entry::Occupied(first) => Some(position(&self.file, self.text, first.get().start)),
            Entry::Vacant(slot) => {
                slot.insert(span);
                None
            }
        }
    }

    /// Checks the name of an entry of `section`: that it fits [`valid_name`], and that `names`
    /// (the names taken before it, which it joins) does not hold it already.
    pub(super) fn name(
        &mut self,
        section: Section,
        name: &Spanned<String>,
        names: &mut HashMap<String, Range<usize>>,
    ) {
        let text = name.get_ref();
        let what = match section {
            Section::Feed => "feed",
            Section::Input => "input",
            Section::WebRoot => "web root",
        };
        // Feed names go into rule ids (`RULE@FEED`).
        let (allow_upper_and_dots, rule) = match section {
            Section::Feed => (false, "lower-case letters, digits and '-' (at most 64); it appears in rule ids and metric labels"),
            Section::Input | Section::WebRoot => (true, "letters, digits, '-', '_' and '.' (at most 64)"),
        };
        if !valid_name(text, allow_upper_and_dots) {
            self.error(&name.span(), format!("{what} name {text:?}: use {rule}"));
        }
        if let Some(first) = self.earlier_use(names, text.clone(), name.span()) {
            let message = match section {
                Section::WebRoot => format!("web root name {text:?} already used (first at {first}); web roots and inputs need distinct names"),
                Section::Feed | Section::Input => format!("{what} name {text:?} used twice (first at {first})"),
            };
            self.error(&name.span(), message);
        }
    }

    /// A certificate and key, read and checked now (so `check` and a
    /// reload refuse what could not be served); both or neither.
    pub(super) fn tls(
        &mut self,
        cert: &Option<Spanned<String>>,
        key: &Option<Spanned<String>>,
        both_or_neither: &str,
    ) -> Option<TlsPaths> {
        match (cert, key) {
            (Some(cert), Some(key)) => {
                let paths = TlsPaths {
                    cert: self.resolve(cert.get_ref()),
                    key: self.resolve(key.get_ref()),
                };
                match crate::tls::server_config(&paths.cert, &paths.key) {
                    Ok(_) => self
                        .private(&key.span(), "tls_key", &paths.key)
                        .then_some(paths),
                    Err(e) => {
                        let span = match e.file {
                            crate::tls::TlsFile::Cert => cert.span(),
                            crate::tls::TlsFile::Key => key.span(),
                        };
                        self.error(&span, format!("TLS: {e}"));
                        None
                    }
                }
            }
            (Some(one), None) | (None, Some(one)) => {
                self.error(
                    &one.span(),
                    format!("tls_cert and tls_key go together: {both_or_neither}"),
                );
                None
            }
            (None, None) => None,
        }
    }

    /// Whether the secret file at `path`, named by the config key `key` at
    /// `span`, is private; the fix recorded as an error when it is not (see
    /// [`crate::secret`]).
    pub(super) fn private(&mut self, span: &Range<usize>, key: &str, path: &Path) -> bool {
        match crate::secret::loose(path) {
            Some(problem) => {
                self.error(span, format!("{key}: {problem}"));
                false
            }
            None => true,
        }
    }

    /// `time_zone`: the zone and its name as written; the system's zone
    /// (named "system") when absent; UTC with the error recorded when
    /// unknown.
    pub(super) fn time_zone(&mut self, v: &Option<Spanned<String>>) -> (TimeZone, String) {
        match v {
            Some(name) => match crate::timestamp::zone_by_name(name.get_ref()) {
                Ok(tz) => (tz, name.get_ref().clone()),
                Err(e) => {
                    self.error(&name.span(), e);
                    (TimeZone::UTC, name.get_ref().clone())
                }
            },
            None => (crate::timestamp::system_time_zone(), "system".to_owned()),
        }
    }

    /// An optional path setting, resolved as [`Validator::resolve`] does.
    pub(super) fn resolve_optional(&self, path: &Option<Spanned<String>>) -> Option<PathBuf> {
        path.as_ref().map(|p| self.resolve(p.get_ref()))
    }

    pub(super) fn resolve(&self, path: &str) -> PathBuf {
        let p = Path::new(path);
        if p.is_absolute() {
            p.to_path_buf()
        } else {
            self.base.join(p)
        }
    }
}

/// The sections whose entries are named, for the errors of [`Validator::name`].
#[derive(Clone, Copy)]
pub(super) enum Section {
    Feed,
    Input,
    WebRoot,
}

/// Names that end up in metric labels and file names: short and plain.
pub(super) fn valid_name(name: &str, allow_upper_and_dots: bool) -> bool {
    !name.is_empty()
        && name.len() <= 64
        && name.bytes().all(|b| {
            b.is_ascii_lowercase()
                || b.is_ascii_digit()
                || b == b'-'
                || (allow_upper_and_dots && (b.is_ascii_uppercase() || b == b'_' || b == b'.'))
        })
}

/// 1-based line and column (in characters) of a byte offset.
pub(super) fn position(file: &str, text: &str, offset: usize) -> Position {
    Position::of_offset(file, text, offset)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn positions_count_characters() {
        let p = position("f", "a = 1\nbé = \"x\"\n", 11);
        assert_eq!((p.line, p.column), (2, 5));
    }
}
