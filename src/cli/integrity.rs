//! `integrity accept` and `integrity status`: the operator's side of
//! web-root integrity, run beside the daemon on the same store.

use std::io::{self, BufWriter, Write};
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use canhgac::output;

use super::{fail, load_config, written_or_exit};
use crate::Format;

pub(crate) fn accept(config: &Path, paths: &[PathBuf]) -> Result<ExitCode, ExitCode> {
    let config = load_config(config)?;
    let mut failed = false;
    for path in paths {
        match canhgac::integrity::accept::accept(
            &config.integrity,
            &config.db_path(),
            &config.agency,
            path,
        ) {
            Ok(a) => println!(
                "accepted {} (web root {}): {} file(s) in the baseline, {} gone file(s) forgotten, {} flag(s) cleared",
                a.path.display(),
                a.root,
                a.info.baselined,
                a.info.forgotten,
                a.info.unflagged
            ),
            Err(e) => {
                eprintln!("canhgac: {e}");
                failed = true;
            }
        }
    }
    Ok(if failed {
        ExitCode::FAILURE
    } else {
        ExitCode::SUCCESS
    })
}

pub(crate) fn status(
    config: &Path,
    root: Option<&str>,
    format: Format,
) -> Result<ExitCode, ExitCode> {
    let config = load_config(config)?;
    let flags = canhgac::integrity::accept::status(&config.db_path(), root).map_err(fail)?;
    let mut out = BufWriter::new(io::stdout().lock());
    let written = (|| -> io::Result<()> {
        match format {
            Format::Json => {
                for f in &flags {
                    let row = serde_json::json!({
                        "root": f.root,
                        "path": String::from_utf8_lossy(&f.path),
                        "change": f.flag.kind.id(),
                        "class": f.flag.class.id(),
                        "signature": f.flag.state.as_ref().and_then(|s| s.signature.clone()),
                        "incident": f.incident_uid,
                        "flagged_at": f.flagged_at.to_string(),
                    });
                    canhgac::visible::write_json(&mut out, &row, false)?;
                }
            }
            Format::Table => {
                writeln!(
                    out,
                    "{:<16} {:<10} {:<9} {:<21} {:<50} PATH",
                    "ROOT", "CLASS", "CHANGE", "FLAGGED", "INCIDENT"
                )?;
                for f in &flags {
                    let path = String::from_utf8_lossy(&f.path);
                    writeln!(
                        out,
                        "{:<16} {:<10} {:<9} {:<21} {:<50} {}",
                        f.root,
                        f.flag.class.id(),
                        f.flag.kind.id(),
                        f.flagged_at.strftime("%Y-%m-%dT%H:%M:%SZ"),
                        f.incident_uid.as_deref().unwrap_or("-"),
                        output::printable(&path, 4096)
                    )?;
                }
            }
        }
        out.flush()
    })();
    written_or_exit(written, "output")?;
    eprintln!("canhgac: {} flagged file(s)", flags.len());
    Ok(ExitCode::SUCCESS)
}
