//! Web-root integrity: defacement and webshells seen in the files a web
//! server serves, rather than in its logs.
//!
//! Config names web roots (`[[webroot]]`). For each, a baseline of every
//! watched file (path, size, mtime, SHA-256, plus change hints) is kept in
//! the store. A watcher thread ([`watch`]) follows the roots with `notify`
//! (recursive inotify), re-scans them periodically as the safety net, and
//! reconciles what changed ([`root`]): changes during a deploy become the
//! baseline; changes outside one are raised as incidents, one per web root
//! and burst of changes (the changes that arrive until the root has been
//! quiet for `debounce`), listing the files:
//!
//! * `integrity-deface` (`deface`): every change outside a deploy, graded by
//!   the worst file: a defacement signature appearing in a page
//!   (critical), a script new or changed in an upload directory (critical),
//!   an index page changed, new or removed (high), another script new or
//!   changed (high), any other watched content (medium);
//! * `integrity-webshell` (`malware`, critical): besides, for scripts new or
//!   changed in an upload directory, the likely webshells.
//!
//! The watcher never writes the store: it hands [`Finding`]s (incidents and
//! baseline changes) to the pipeline, which commits them in its own
//! transactions, through the same path as incidents from logs. A crash
//! before that commit loses nothing: the baseline still has the old state,
//! and the next start finds the change again.

pub mod accept;
pub mod deploy;
pub mod flagged;
pub mod fsstate;
pub mod root;
pub mod select;
pub mod settings;
pub mod stored;
pub mod watch;

use jiff::Timestamp;

use crate::category::{Category, Severity};
use crate::ids::id_enum;
use crate::store::IncidentRecord;
use fsstate::FileState;
use root::Raised;
use stored::IntegrityOp;

pub const RULE_DEFACE: &str = "integrity-deface";
pub const RULE_WEBSHELL: &str = "integrity-webshell";

/// Titles of the integrity checks, for incident views (they are not rules
/// from rule files).
pub fn rule_title(rule: &str) -> Option<&'static str> {
    match rule {
        RULE_DEFACE => Some("Web content changed outside a deploy"),
        RULE_WEBSHELL => {
            Some("Script file new or changed in an upload directory (likely webshell)")
        }
        _ => None,
    }
}

/// Files listed in an incident's `files` field; the rest are counted (and
/// all of them are in `canhgac integrity status`).
const MAX_LISTED: usize = 100;

id_enum! {
    #[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
    pub enum ChangeKind: "change kind" {
        New => "new",
        Modified => "modified",
        Removed => "removed",
    }
}

id_enum! {
    /// What a change means, in increasing gravity.
    #[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
    pub enum ChangeClass: "change class" {
        Content => "content",
        Script => "script",
        Index => "index",
        Webshell => "webshell",
        Signature => "signature",
    }
}

impl ChangeClass {
    pub fn severity(self) -> Severity {
        match self {
            ChangeClass::Content => Severity::Medium,
            ChangeClass::Script | ChangeClass::Index => Severity::High,
            ChangeClass::Webshell | ChangeClass::Signature => Severity::Critical,
        }
    }
}

/// A change raised and not yet accepted: the state it left (`None`:
/// the file was removed).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Flag {
    pub kind: ChangeKind,
    pub class: ChangeClass,
    pub state: Option<FileState>,
}

/// What the watcher hands the pipeline: store operations and the incidents
/// they belong with, committed together.
#[derive(Debug, Default)]
pub struct Finding {
    pub ops: Vec<IntegrityOp>,
    /// `detector_id` is 0 until [`Finding::number`]; a `Flag` op's
    /// `incident` is an index into this list until then.
    pub incidents: Vec<IncidentRecord>,
}

impl Finding {
    /// Gives every incident its detector id (from the detector's own
    /// sequence, so ids never collide with log incidents) and points the
    /// flags at them.
    pub fn number(&mut self, mut next_id: impl FnMut() -> u64) {
        let ids: Vec<u64> = self.incidents.iter().map(|_| next_id()).collect();
        for (inc, id) in self.incidents.iter_mut().zip(&ids) {
            inc.detector_id = *id;
        }
        for op in &mut self.ops {
            if let IntegrityOp::Flag { incident, .. } = op {
                *incident = incident.and_then(|i| ids.get(i as usize).copied());
            }
        }
    }
}

/// The incidents of one burst of raised changes in one web root: a
/// `deface` incident listing every file, and a `malware` one listing the
/// likely webshells. The deface incident comes first: flags point at it.
pub fn incidents(
    root: &str,
    root_path: &str,
    raised: &[Raised],
    first_seen: Timestamp,
    last_seen: Timestamp,
) -> Vec<IncidentRecord> {
    if raised.is_empty() {
        return Vec::new();
    }
    let mut sorted: Vec<&Raised> = raised.iter().collect();
    // Worst first, then by path: the sample and list lead with what matters.
    sorted.sort_by(|a, b| b.class.cmp(&a.class).then_with(|| a.path.cmp(&b.path)));
    let worst = sorted[0].class;
    let mut out = vec![record(
        RULE_DEFACE,
        Category::Deface,
        worst.severity(),
        root,
        root_path,
        &sorted,
        first_seen,
        last_seen,
        "changed outside a deploy",
    )];
    let shells: Vec<&Raised> = sorted
        .iter()
        .copied()
        .filter(|r| r.class == ChangeClass::Webshell)
        .collect();
    if !shells.is_empty() {
        out.push(record(
            RULE_WEBSHELL,
            Category::Malware,
            Severity::Critical,
            root,
            root_path,
            &shells,
            first_seen,
            last_seen,
            "script new or changed in an upload directory (likely webshell)",
        ));
    }
    out
}

#[allow(clippy::too_many_arguments)]
fn record(
    rule: &str,
    category: Category,
    severity: Severity,
    root: &str,
    root_path: &str,
    files: &[&Raised],
    first_seen: Timestamp,
    last_seen: Timestamp,
    what: &str,
) -> IncidentRecord {
    let line = |r: &Raised| {
        format!(
            "{} {} {}",
            r.class,
            r.kind.id(),
            String::from_utf8_lossy(&r.path)
        )
    };
    let mut list: Vec<String> = files.iter().take(MAX_LISTED).map(|r| line(r)).collect();
    if files.len() > MAX_LISTED {
        list.push(format!(
            "... and {} more (canhgac integrity status)",
            files.len() - MAX_LISTED
        ));
    }
    let noun = if files.len() == 1 { "file" } else { "files" };
    let mut sample = format!(
        "{} {noun} {what} in web root {root} ({root_path}): {}",
        files.len(),
        files
            .iter()
            .take(5)
            .map(|r| line(r))
            .collect::<Vec<_>>()
            .join(", ")
    );
    if files.len() > 5 {
        sample.push_str(", ...");
    }
    let mut fields = vec![
        ("root".to_owned(), root.to_owned()),
        ("dir".to_owned(), root_path.to_owned()),
        (
            "path".to_owned(),
            String::from_utf8_lossy(&files[0].path).into_owned(),
        ),
        ("changes".to_owned(), files.len().to_string()),
        ("files".to_owned(), list.join("\n")),
    ];
    if let Some(sig) = files.iter().find_map(|r| r.signature.as_ref()) {
        fields.push(("signature".to_owned(), sig.clone()));
    }
    IncidentRecord {
        detector_id: 0,
        rule: rule.to_owned(),
        category: category.id().to_owned(),
        severity: severity.id().to_owned(),
        key: root.to_owned(),
        src_ip: None,
        input: Some(root.to_owned()),
        first_seen,
        last_seen,
        events: files.len() as u64,
        open: false,
        sample,
        fields,
    }
}
