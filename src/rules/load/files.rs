//! Where rule text comes from: the files built into the binary, a rule
//! file, or a directory of them.

use std::path::{Path, PathBuf};

use super::{Loader, RuleError};
use crate::position::Position;

/// Rule files are small; anything bigger is not a rule file.
const MAX_RULE_FILE_BYTES: u64 = 8 << 20;

impl Loader {
    /// The rule files compiled into the binary, shown as `<builtin>/NAME`.
    pub fn add_builtin(&mut self) {
        for (name, text) in crate::rules::builtin::BUILTIN_RULES {
            self.add_source(&format!("<builtin>/{name}"), text);
        }
    }

    /// Every `*.yaml` / `*.yml` file directly in `dir`, in name order, or a single file.
    pub fn add_path(&mut self, path: &Path) {
        let files = match rule_files(path) {
            Ok(files) => files,
            Err(message) => return self.file_error(path.display().to_string(), message),
        };
        for file in files {
            let name = file.display().to_string();
            match read_rule_file(&file) {
                Ok(text) => self.add_source(&name, &text),
                Err(message) => self.file_error(name, message),
            }
        }
    }

    /// An error about `file` as a whole (line and column 0).
    fn file_error(&mut self, file: String, message: String) {
        self.errors.push(RuleError {
            pos: Position {
                file,
                line: 0,
                column: 0,
            },
            message,
        });
    }
}

fn rule_files(path: &Path) -> Result<Vec<PathBuf>, String> {
    let meta = std::fs::metadata(path).map_err(|e| format!("cannot read rules: {e}"))?;
    if meta.is_file() {
        return Ok(vec![path.to_owned()]);
    }
    let mut files = Vec::new();
    for entry in std::fs::read_dir(path).map_err(|e| format!("cannot list rule directory: {e}"))? {
        let entry = entry.map_err(|e| format!("cannot list rule directory: {e}"))?;
        let p = entry.path();
        let is_yaml = matches!(p.extension().and_then(|e| e.to_str()), Some("yaml" | "yml"));
        if is_yaml && p.is_file() {
            files.push(p);
        }
    }
    files.sort();
    Ok(files)
}

fn read_rule_file(path: &Path) -> Result<String, String> {
    let meta = std::fs::metadata(path).map_err(|e| format!("cannot read rule file: {e}"))?;
    if meta.len() > MAX_RULE_FILE_BYTES {
        return Err(format!(
            "rule file is {} bytes; the limit is {MAX_RULE_FILE_BYTES}",
            meta.len()
        ));
    }
    let bytes = std::fs::read(path).map_err(|e| format!("cannot read rule file: {e}"))?;
    String::from_utf8(bytes).map_err(|e| {
        format!(
            "rule file is not UTF-8 (first bad byte at offset {})",
            e.utf8_error().valid_up_to()
        )
    })
}
