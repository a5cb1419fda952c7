//! What the configuration says about web roots. The types live with the watcher that reads
//! them; `config` parses `[integrity]` and `[[webroot]]` into them.

use std::path::PathBuf;
use std::time::Duration;

use super::deploy::Deploy;

/// `[integrity]`: settings shared by every web root.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct IntegrityConfig {
    /// A burst of changes ends when a root has been quiet this long...
    pub debounce: Duration,
    /// ...or has lasted this long.
    pub max_burst: Duration,
    /// Full re-scan (one `lstat` a file), the safety net under `notify`.
    pub rescan_interval: Duration,
    /// Files larger than this are not read: compared by size and times.
    pub max_file_bytes: u64,
    /// Extra defacement signatures (regexes), besides the built-in ones.
    pub signatures: Vec<String>,
    pub roots: Vec<WebRootConfig>,
}

impl Default for IntegrityConfig {
    fn default() -> Self {
        IntegrityConfig {
            debounce: Duration::from_secs(2),
            max_burst: Duration::from_secs(60),
            rescan_interval: Duration::from_secs(600),
            max_file_bytes: 64 << 20,
            signatures: Vec::new(),
            roots: Vec::new(),
        }
    }
}

/// One `[[webroot]]`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct WebRootConfig {
    pub name: String,
    pub path: PathBuf,
    /// Globs of the files watched, relative to the root; empty watches every file.
    pub include: Vec<String>,
    /// Globs of the files and directories left out, relative to the root.
    pub exclude: Vec<String>,
    /// Globs of the directories uploads land in: a script new or changed there is a likely
    /// webshell.
    pub upload_dirs: Vec<String>,
    /// File names of index pages (any case), whose changes are graded high.
    pub index_names: Vec<String>,
    /// Extensions a web server may execute; any dot-separated part of a name counts.
    pub script_extensions: Vec<String>,
    /// Where the root is served in URLs, for the flagged-script rule.
    pub url_prefix: String,
    pub deploy: Deploy,
}
