//! Whose rights a command runs with. The store must stay writable by the
//! service account: a command run as root that creates the database, its
//! WAL or a backup would leave files the daemon can no longer write
//! ("attempt to write a readonly database"). So commands that open the
//! store, run as root, run again as the store's owner.

use std::ffi::OsString;
use std::os::unix::fs::MetadataExt;
use std::os::unix::process::CommandExt;
use std::path::Path;
use std::process::ExitCode;

use canhgac::config::Config;
use canhgac::secret;

/// Replaces this process with the same command as `uid`:`gid` and the
/// account's groups (`setpriv --init-groups`: `adm` and `systemd-journal`
/// for the service account, which read logs and the journal). Returns only
/// on failure, with the message `refusal` completes.
fn exec_as(uid: u32, gid: u32, args: Vec<OsString>, refusal: &str) -> ExitCode {
    let exe = match std::env::current_exe() {
        Ok(exe) => exe,
        Err(e) => {
            eprintln!("canhgac: cannot find its own executable: {e}; {refusal}");
            return ExitCode::FAILURE;
        }
    };
    let err = std::process::Command::new("setpriv")
        .args(["--reuid", &uid.to_string(), "--regid", &gid.to_string()])
        .args(["--init-groups", "--"])
        .arg(exe)
        .args(args)
        .exec();
    eprintln!("canhgac: cannot change user with setpriv (util-linux): {err}; {refusal}");
    ExitCode::FAILURE
}

/// The command line as given, without `--as-user USER`.
fn args_without_as_user() -> Vec<OsString> {
    let mut args = Vec::new();
    let mut given = std::env::args_os().skip(1);
    while let Some(arg) = given.next() {
        if arg == "--as-user" {
            given.next();
        } else if !arg.to_string_lossy().starts_with("--as-user=") {
            args.push(arg);
        }
    }
    args
}

/// `check --as-user USER`: the same check, run again as `USER` with its
/// groups, so that what it cannot read is what the daemon will not.
pub(crate) fn check_as(user: &str) -> Result<ExitCode, ExitCode> {
    let Some((uid, gid)) = secret::account(user) else {
        eprintln!("canhgac: no account {user} in /etc/passwd");
        return Err(ExitCode::FAILURE);
    };
    Err(exec_as(
        uid,
        gid,
        args_without_as_user(),
        &format!("run it as that account instead: sudo -u {user} canhgac check ..."),
    ))
}

/// For a command that opens the store: when run as root and the state
/// directory belongs to another account (the service's), runs the command
/// again as that account, or refuses with the command to use. Returns to
/// go on in this process.
pub(crate) fn as_store_owner(config: &Path, db: Option<&Path>) -> Result<(), ExitCode> {
    if secret::current_uid() != 0 {
        return Ok(());
    }
    let dir = match db {
        Some(db) => db.parent().map(Path::to_path_buf),
        // A config that does not load is said by the command itself.
        None => Config::load(config).ok().map(|c| c.state_dir),
    };
    let Some(dir) = dir else { return Ok(()) };
    let dir = if dir.as_os_str().is_empty() {
        Path::new(".").to_path_buf()
    } else {
        dir
    };
    let Ok(meta) = std::fs::metadata(&dir) else {
        return Ok(());
    };
    if meta.uid() == 0 {
        return Ok(());
    }
    let owner = secret::account_name(meta.uid()).unwrap_or_else(|| meta.uid().to_string());
    let refusal = format!(
        "{} belongs to {owner}: run the command as that account, e.g. sudo -u {owner} canhgac ...",
        dir.display()
    );
    Err(exec_as(
        meta.uid(),
        meta.gid(),
        std::env::args_os().skip(1).collect(),
        &refusal,
    ))
}
