//! `canhgac integrity accept` and `canhgac integrity status`: what a
//! sysadmin does after a legitimate change made outside a deploy, and how an
//! analyst sees what is still flagged.
//!
//! Accept reads the files itself and writes the store directly (a second
//! writer next to the daemon, which SQLite's locking and the busy timeout
//! make safe), so it works whether the daemon runs or not; a running daemon
//! learns of it from the accept log within a second.

use std::path::{Path, PathBuf};

use super::settings::IntegrityConfig;
use super::stored::{self, AcceptInfo, FlagRow};
use super::watch::{current_states, locate};
use crate::store::Store;

/// What one accept did, for the command's output.
#[derive(Debug)]
pub struct Accepted {
    pub root: String,
    pub path: PathBuf,
    pub info: AcceptInfo,
}

/// Makes the current content under `path` (a file or a directory of a
/// configured web root, or the root itself) the baseline, and drops the
/// flags there.
/// `db` and `agency` name the daemon's store.
pub fn accept(
    config: &IntegrityConfig,
    db: &Path,
    agency: &str,
    path: &Path,
) -> Result<Accepted, String> {
    let absolute = std::path::absolute(path).map_err(|e| format!("{}: {e}", path.display()))?;
    let found = locate(config, &absolute).or_else(|| {
        // The root may be configured through a symbolic link, or the path
        // given through one.
        let real = std::fs::canonicalize(&absolute).ok()?;
        config.roots.iter().find_map(|rc| {
            let root = std::fs::canonicalize(&rc.path).ok()?;
            let rel = real.strip_prefix(&root).ok()?;
            Some((
                rc,
                std::os::unix::ffi::OsStrExt::as_bytes(rel.as_os_str()).to_vec(),
            ))
        })
    });
    let Some((rc, rel)) = found else {
        let roots: Vec<String> = config
            .roots
            .iter()
            .map(|r| format!("{} ({})", r.name, r.path.display()))
            .collect();
        return Err(format!(
            "{}: not inside a configured web root (configured: {})",
            absolute.display(),
            if roots.is_empty() {
                "none".to_owned()
            } else {
                roots.join(", ")
            }
        ));
    };
    let mut store = Store::open(db, agency)
        .map_err(|e| format!("cannot open the store {}: {e}", db.display()))?;
    if stored::settings(&store, &rc.name)
        .map_err(|e| e.to_string())?
        .is_none()
    {
        return Err(format!(
            "web root {} has no baseline yet: the daemon records one when it first runs with it",
            rc.name
        ));
    }
    let states = current_states(rc, config, &rel)
        .map_err(|errors| format!("nothing accepted: cannot read\n  {}", errors.join("\n  ")))?;
    let info = stored::accept(&mut store, &rc.name, &rel, &states)
        .map_err(|e| format!("cannot write the store {}: {e}", db.display()))?;
    Ok(Accepted {
        root: rc.name.clone(),
        path: absolute,
        info,
    })
}

/// The flags of every web root (of one, with `root`).
pub fn status(db: &Path, root: Option<&str>) -> Result<Vec<FlagRow>, String> {
    let store = Store::open_read(db).map_err(|e| e.to_string())?;
    stored::flags(&store, root).map_err(|e| e.to_string())
}
