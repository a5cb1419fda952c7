//! `[[feed]]`: IoC feeds, declared here and read by the daemon and `check`
//! (loading a config stays cheap). Keys a feed's format does not read are
//! refused.

use std::collections::HashMap;
use std::ops::Range;

use serde::Deserialize;
use toml::Spanned;

use super::validator::{Section, Validator};
use crate::category::{Category, Severity};
use crate::feeds::{Column, FeedDecl, FeedKind, FeedSource, FileSpec, Format};

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawFeed {
    name: Spanned<String>,
    path: Spanned<String>,
    kind: Spanned<String>,
    category: Spanned<String>,
    severity: Spanned<String>,
    format: Option<Spanned<String>>,
    column: Option<Spanned<RawColumn>>,
    header: Option<Spanned<bool>>,
    key: Option<Spanned<String>>,
}

#[derive(Deserialize)]
#[serde(untagged)]
pub(super) enum RawColumn {
    Number(u64),
    Name(String),
}

impl Validator<'_> {
    /// Every `[[feed]]`, in order.
    pub(super) fn feeds(&mut self, raw: &[Spanned<RawFeed>]) -> Vec<FeedDecl> {
        let mut feeds = Vec::new();
        let mut names: HashMap<String, Range<usize>> = HashMap::new();
        for feed in raw {
            let feed = feed.get_ref();
            let name = feed.name.get_ref();
            self.name(Section::Feed, &feed.name, &mut names);
            let kind: Option<FeedKind> = self.parsed(&feed.kind);
            let category: Option<Category> = self.parsed(&feed.category);
            let severity: Option<Severity> = self.parsed(&feed.severity);
            let file_path = self.resolve(feed.path.get_ref());
            let format = match &feed.format {
                Some(f) => Format::parse(f.get_ref())
                    .map_err(|e| self.error(&f.span(), e))
                    .ok(),
                None => Some(Format::from_path(&file_path)),
            };
            let column = feed.column.as_ref().and_then(|c| match c.get_ref() {
                RawColumn::Number(0) => {
                    self.error(&c.span(), "column numbers start at 1".into());
                    None
                }
                RawColumn::Number(n) => Some(Column::Number(*n as usize)),
                RawColumn::Name(n) => Some(Column::Name(n.clone())),
            });
            if format != Some(Format::Csv) {
                if let Some(c) = &feed.column {
                    self.error(&c.span(), "column is only read for format \"csv\"".into());
                }
                if let Some(h) = &feed.header {
                    self.error(&h.span(), "header is only read for format \"csv\"".into());
                }
            }
            if format != Some(Format::Json) {
                if let Some(k) = &feed.key {
                    self.error(&k.span(), "key is only read for format \"json\"".into());
                }
            }
            if let (Some(kind), Some(category), Some(severity), Some(format)) =
                (kind, category, severity, format)
            {
                feeds.push(FeedDecl {
                    name: name.clone(),
                    kind,
                    category,
                    severity,
                    source: FeedSource::File(FileSpec {
                        path: file_path,
                        format,
                        column,
                        header: feed.header.as_ref().is_none_or(|h| *h.get_ref()),
                        key: feed.key.as_ref().map(|k| k.get_ref().clone()),
                    }),
                });
            }
        }
        feeds
    }
}

#[cfg(test)]
mod tests {
    use std::path::PathBuf;

    use super::*;
    use crate::config::tests::{assert_errors, parse, MINIMAL};

    #[test]
    fn feeds_are_declared_and_their_errors_positioned() {
        let c = parse(&format!(
            "{MINIMAL}\n[[feed]]\nname = \"c2\"\npath = \"feeds/c2.csv\"\nkind = \"ip\"\ncategory = \"malware\"\nseverity = \"critical\"\ncolumn = \"value\"\n"
        ))
        .expect("valid");
        let f = &c.feeds[0];
        assert_eq!(
            (f.name.as_str(), f.kind, f.category, f.severity),
            ("c2", FeedKind::Ip, Category::Malware, Severity::Critical)
        );
        let FeedSource::File(spec) = &f.source else {
            panic!("a file feed: {f:?}");
        };
        assert_eq!(spec.path, PathBuf::from("/etc/canhgac/feeds/c2.csv"));
        assert_eq!(
            (spec.format, spec.column.clone(), spec.header),
            (Format::Csv, Some(Column::Name("value".into())), true)
        );

        let text = format!(
            "{MINIMAL}\n[[feed]]\nname = \"Bad Name\"\npath = \"x.txt\"\nkind = \"ipv4\"\ncategory = \"spam\"\nseverity = \"high\"\nkey = \"ioc\"\n\n[[feed]]\nname = \"a\"\npath = \"a.json\"\nkind = \"url\"\ncategory = \"phishing\"\nseverity = \"low\"\ncolumn = 0\n"
        );
        let errors = parse(&text).expect_err("invalid");
        let expected = [
            "/etc/canhgac/canhgac.toml:9:8: feed name \"Bad Name\"",
            "/etc/canhgac/canhgac.toml:11:8: unknown feed kind `ipv4`",
            "/etc/canhgac/canhgac.toml:12:12: unknown category `spam`",
            "/etc/canhgac/canhgac.toml:14:7: key is only read for format \"json\"",
            "/etc/canhgac/canhgac.toml:22:10: column numbers start at 1",
            "/etc/canhgac/canhgac.toml:22:10: column is only read for format \"csv\"",
        ];
        assert_errors(&errors, &expected);
    }
}
