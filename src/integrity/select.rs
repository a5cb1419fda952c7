//! Which files of a web root are watched, and what a change to one means:
//! an index page, a script (in an upload directory: a likely webshell),
//! text where defacement signatures are looked for.
//!
//! Paths here are relative to the web root, `/`-separated, without a
//! leading `/`. Globs are matched with `*` staying within one path
//! component and `**` spanning any number of them (`**/x` also matches a
//! top-level `x`).

use std::collections::HashSet;

use glob::{MatchOptions, Pattern};

const OPTIONS: MatchOptions = MatchOptions {
    case_sensitive: true,
    require_literal_separator: true,
    require_literal_leading_dot: false,
};

/// Names of index pages, compared case-insensitively with a file's name.
pub const DEFAULT_INDEX_NAMES: &[&str] = &[
    "index.html",
    "index.htm",
    "index.shtml",
    "index.xhtml",
    "index.php",
    "index.asp",
    "index.aspx",
    "index.jsp",
    "default.htm",
    "default.html",
    "default.asp",
    "default.aspx",
    "home.html",
    "home.htm",
];

/// Extensions that a web server may execute. Any dot-separated part of a
/// file name counts (`shell.php.jpg` is a script): Apache's `AddHandler`
/// runs such double extensions.
pub const DEFAULT_SCRIPT_EXTENSIONS: &[&str] = &[
    "php", "php3", "php4", "php5", "php7", "php8", "phtml", "pht", "phar", "phps", "inc", "jsp",
    "jspx", "jspf", "asp", "aspx", "ashx", "asmx", "ascx", "cshtml", "cfm", "cgi", "pl", "py",
    "sh", "shtml",
];

/// File names that change what a server executes; in an upload directory
/// they are how a webshell disguised as an image is made to run.
const SERVER_CONFIG_NAMES: &[&str] = &[".htaccess", ".user.ini", "web.config"];

/// Upload directories when none are configured: where users' files land
/// in the usual CMSs. Non-script changes there are expected.
pub const DEFAULT_UPLOAD_DIRS: &[&str] = &[
    "**/upload",
    "**/uploads",
    "**/userfiles",
    "**/media",
    "**/files",
    "**/attachments",
];

/// Where defacement signatures are looked for, besides scripts.
const TEXT_EXTENSIONS: &[&str] = &["html", "htm", "shtml", "xhtml", "xht", "txt", "svg"];

/// Include and exclude globs.
#[derive(Clone, Debug)]
pub struct Selection {
    include: Vec<Pattern>,
    exclude: Vec<Pattern>,
}

pub fn compile(globs: &[String], what: &str) -> Result<Vec<Pattern>, String> {
    globs
        .iter()
        .map(|g| {
            let g = g.trim_start_matches("./").trim_start_matches('/');
            Pattern::new(g).map_err(|e| format!("{what} glob {g:?}: {e}"))
        })
        .collect()
}

fn any(patterns: &[Pattern], path: &str) -> bool {
    patterns.iter().any(|p| {
        p.matches_with(path, OPTIONS)
            // `**/x` must also match a top-level `x`.
            || p.as_str()
                .strip_prefix("**/")
                .is_some_and(|rest| Pattern::new(rest).is_ok_and(|q| q.matches_with(path, OPTIONS)))
    })
}

impl Selection {
    /// An empty `include` means everything.
    pub fn new(include: &[String], exclude: &[String]) -> Result<Selection, String> {
        let include = if include.is_empty() {
            vec![Pattern::new("**").map_err(|e| e.to_string())?]
        } else {
            compile(include, "include")?
        };
        Ok(Selection {
            include,
            exclude: compile(exclude, "exclude")?,
        })
    }

    /// Whether the file at `rel` is watched.
    pub fn file(&self, rel: &str) -> bool {
        any(&self.include, rel) && !any(&self.exclude, rel)
    }

    /// Whether the walk skips the directory at `rel` whole: an exclude glob
    /// names it (`cache`, `**/node_modules`), or excludes everything in it
    /// (`cache/**`).
    pub fn skips_dir(&self, rel: &str) -> bool {
        any(&self.exclude, rel)
            || self
                .exclude
                .iter()
                .any(|p| p.as_str().strip_suffix("/**") == Some(rel))
    }
}

/// What a path is, for classifying its changes.
#[derive(Clone, Debug)]
pub struct Classifier {
    upload: Vec<Pattern>,
    index_names: HashSet<String>,
    script_extensions: HashSet<String>,
}

impl Classifier {
    pub fn new(
        upload_dirs: &[String],
        index_names: &[String],
        script_extensions: &[String],
    ) -> Result<Classifier, String> {
        Ok(Classifier {
            upload: compile(upload_dirs, "upload_dirs")?,
            index_names: index_names.iter().map(|n| n.to_ascii_lowercase()).collect(),
            script_extensions: script_extensions
                .iter()
                .map(|e| e.trim_start_matches('.').to_ascii_lowercase())
                .collect(),
        })
    }

    /// Whether some directory above `rel` is an upload directory.
    pub fn in_upload_dir(&self, rel: &str) -> bool {
        let mut dir = rel;
        while let Some((parent, _)) = dir.rsplit_once('/') {
            if any(&self.upload, parent) {
                return true;
            }
            dir = parent;
        }
        false
    }

    pub fn is_index(&self, rel: &str) -> bool {
        self.index_names
            .contains(&file_name(rel).to_ascii_lowercase())
    }

    /// A file the server may execute, or one that changes what it executes.
    pub fn is_script(&self, rel: &str) -> bool {
        let name = file_name(rel).to_ascii_lowercase();
        if SERVER_CONFIG_NAMES.contains(&name.as_str()) {
            return true;
        }
        // Every part after the first dot: `a.php.jpg` has `php` and `jpg`;
        // a leading dot (`.env`) does not start an extension.
        name.trim_start_matches('.')
            .split('.')
            .skip(1)
            .any(|ext| self.script_extensions.contains(ext))
    }

    /// Whether defacement signatures are looked for in the file.
    pub fn is_text(&self, rel: &str) -> bool {
        let name = file_name(rel).to_ascii_lowercase();
        let ext = name.rsplit_once('.').map_or("", |(_, e)| e);
        TEXT_EXTENSIONS.contains(&ext) || self.is_script(rel) || self.is_index(rel)
    }
}

fn file_name(rel: &str) -> &str {
    rel.rsplit_once('/').map_or(rel, |(_, name)| name)
}

/// Known defacement signatures, case-insensitive, plus configured ones.
#[derive(Clone, Debug)]
pub struct Signatures {
    regex: regex::bytes::Regex,
}

/// Phrases defacers leave on the pages they replace. Kept specific: a news
/// article saying "was hacked" must not match, "hacked by <team>" does.
pub const DEFAULT_SIGNATURES: &[&str] = &[
    r"h[a4]ck[e3]d\s+by\b",
    r"d[e3]f[a4]c[e3]d\s+by\b",
    r"[o0]wn[e3]d\s+by\s+\S+\s+(?:team|crew|cyber|h[a4]ck)",
    r"pwn[e3]d\s+by\b",
    r"\bgr[e3][e3]tz\b",
    r"your\s+(?:site|website|web|system|server|security)\s+(?:is|has\s+been|was)\s+(?:hacked|defaced|pwned|owned)",
    r"your\s+security\s+is\s+(?:low|weak|poor|zero|down|shit|very\s+low)",
    r"security\s+is\s+(?:just\s+)?an\s+illusion",
    r"\bh[a4]ck[e3]r\s+was\s+here\b",
];

/// Longest signature text kept for a report.
const MAX_SIGNATURE_TEXT: usize = 80;

impl Signatures {
    pub fn new(extra: &[String]) -> Result<Signatures, String> {
        for s in extra {
            regex::bytes::Regex::new(s).map_err(|e| format!("signature {s:?}: {e}"))?;
        }
        let all: Vec<String> = DEFAULT_SIGNATURES
            .iter()
            .map(|s| (*s).to_owned())
            .chain(extra.iter().cloned())
            .map(|s| format!("(?:{s})"))
            .collect();
        let regex = regex::bytes::RegexBuilder::new(&all.join("|"))
            .case_insensitive(true)
            .size_limit(16 << 20)
            .build()
            .map_err(|e| format!("signatures: {e}"))?;
        Ok(Signatures { regex })
    }

    /// The first signature in `text`, as written there (shortened).
    pub fn find(&self, text: &[u8]) -> Option<String> {
        self.regex.find(text).map(|m| {
            let s = String::from_utf8_lossy(m.as_bytes());
            let s = s.split_whitespace().collect::<Vec<_>>().join(" ");
            s.chars().take(MAX_SIGNATURE_TEXT).collect()
        })
    }

    /// How far back a match can start from the end of a chunk and still be
    /// found when the next chunk is scanned with this much carried over.
    pub const CARRY: usize = 256;
}

#[cfg(test)]
mod tests {
    use super::*;

    fn strings(v: &[&str]) -> Vec<String> {
        v.iter().map(|s| (*s).to_owned()).collect()
    }

    #[test]
    fn include_exclude_and_pruning() {
        let s = Selection::new(&[], &strings(&["cache/**", "**/*.log", "tmp"])).expect("valid");
        assert!(s.file("index.html"));
        assert!(s.file("a/b/c.php"));
        assert!(!s.file("cache/x.html"));
        assert!(!s.file("a/b/debug.log"));
        assert!(!s.file("debug.log"), "**/ matches zero directories");
        assert!(s.skips_dir("cache"));
        assert!(s.skips_dir("tmp"));
        assert!(!s.skips_dir("a"));
        let s = Selection::new(&strings(&["**/*.html", "*.php"]), &[]).expect("valid");
        assert!(s.file("index.html"));
        assert!(s.file("a/b.html"));
        assert!(s.file("x.php"));
        assert!(!s.file("a/x.php"), "* stays within a component");
        assert!(Selection::new(&strings(&["a/***"]), &[]).is_err());
    }

    #[test]
    fn classes_of_paths() {
        let c = Classifier::new(
            &strings(DEFAULT_UPLOAD_DIRS),
            &strings(DEFAULT_INDEX_NAMES),
            &strings(DEFAULT_SCRIPT_EXTENSIONS),
        )
        .expect("valid");
        assert!(c.in_upload_dir("uploads/a.jpg"));
        assert!(c.in_upload_dir("wp-content/uploads/2024/05/a.jpg"));
        assert!(!c.in_upload_dir("uploads"));
        assert!(!c.in_upload_dir("index.php"));
        assert!(c.is_index("INDEX.HTML"));
        assert!(c.is_index("news/index.php"));
        assert!(!c.is_index("news/indexes.php"));
        for script in [
            "a.php",
            "x/shell.PHP",
            "a.php.jpg",
            "up/.htaccess",
            "b.aspx",
        ] {
            assert!(c.is_script(script), "{script}");
        }
        for other in ["a.jpg", "jquery.min.js", ".env", "php", "style.css"] {
            assert!(!c.is_script(other), "{other}");
        }
        assert!(c.is_text("a.html"));
        assert!(c.is_text("a.php"));
        assert!(!c.is_text("a.png"));
    }

    #[test]
    fn signatures_are_specific() {
        let s = Signatures::new(&strings(&["(?i)tiger\\s+team\\s+vn"])).expect("valid");
        assert_eq!(
            s.find(b"<h1>Hacked   By\n GhostSec</h1>").as_deref(),
            Some("Hacked By")
        );
        assert!(s.find(b"<title>h4cked by x</title>").is_some());
        assert!(s.find(b"<p>Your security is low</p>").is_some());
        assert!(s.find(b"owned by Tiger Team VN").is_some(), "configured");
        for clean in [
            &b"<p>The ministry's site was hacked last year, police said.</p>"[..],
            b"<p>Owned by the People's Committee of Hanoi</p>",
            b"<p>Greetings to all citizens</p>",
        ] {
            assert_eq!(s.find(clean), None, "{}", String::from_utf8_lossy(clean));
        }
        assert!(Signatures::new(&strings(&["(unclosed"])).is_err());
    }
}
