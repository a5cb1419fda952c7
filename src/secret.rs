//! Files that hold secrets (API and metrics tokens, TLS private keys) must be
//! private to the account that reads them.
//!
//! A token file left at 0644 lets every local account read the token and, with
//! it, every incident of the agency through the API; a TLS key at 0644 lets any
//! of them impersonate the monitor to the center. `ssh` refuses a private key
//! readable by others for the same reason, and so does canhgac: at `check`, at
//! start and on reload, with the command that fixes it.
//!
//! Private means: no permission bit for group or others, and owned by root,
//! by the account checking (the daemon's, or whoever runs `check`), or by the
//! service account `canhgac`. Group-readable is refused too, though `0640
//! root:canhgac` is common for keys: any account later added to that group
//! would read the secret, and nothing would say so.

use std::os::unix::fs::MetadataExt;
use std::path::Path;

/// The service account the packaged unit runs as.
pub const SERVICE_USER: &str = "canhgac";

/// What is wrong with the secret file at `path` (already read, so it exists),
/// as a sentence ending in the command that fixes it; `None` when it is
/// private.
pub fn loose(path: &Path) -> Option<String> {
    let meta = std::fs::metadata(path).ok()?;
    let shown = path.display();
    let mode = meta.mode() & 0o777;
    let owner = meta.uid();
    let trusted = owner == 0 || owner == current_uid() || Some(owner) == service_uid();
    if !trusted {
        return Some(format!(
            "{shown} holds a secret and is owned by uid {owner}, neither root, the account \
             reading it nor {SERVICE_USER}: run `chown {SERVICE_USER}: {shown}`"
        ));
    }
    if mode & 0o077 != 0 {
        return Some(format!(
            "{shown} holds a secret and is readable by {} (mode {mode:04o}): run `chmod 600 {shown}`",
            if mode & 0o007 != 0 { "others" } else { "its group" }
        ));
    }
    None
}

/// The process's effective uid.
pub fn current_uid() -> u32 {
    // SAFETY: geteuid has no preconditions, cannot fail and touches no memory
    // of ours (POSIX: "shall always be successful").
    unsafe { libc::geteuid() }
}

/// The uid of the service account; `None` where it does not exist.
fn service_uid() -> Option<u32> {
    account(SERVICE_USER).map(|(uid, _)| uid)
}

/// The uid and primary gid of the account `name`, read from `/etc/passwd`
/// (the service account is created by systemd-sysusers from
/// `systemd/canhgac.sysusers`, a plain passwd entry).
pub fn account(name: &str) -> Option<(u32, u32)> {
    passwd_entries()
        .into_iter()
        .find_map(|(user, uid, gid)| (user == name).then_some((uid, gid)))
}

/// The name of the account with `uid`, from `/etc/passwd`.
pub fn account_name(uid: u32) -> Option<String> {
    passwd_entries()
        .into_iter()
        .find_map(|(user, id, _)| (id == uid).then_some(user))
}

/// Name, uid and primary gid of every well-formed `/etc/passwd` line (none
/// when it cannot be read).
fn passwd_entries() -> Vec<(String, u32, u32)> {
    let passwd = std::fs::read_to_string("/etc/passwd").unwrap_or_default();
    passwd
        .lines()
        .filter_map(|line| {
            let mut fields = line.split(':');
            let name = fields.next()?.to_owned();
            let uid = fields.nth(1)?.parse().ok()?;
            let gid = fields.next()?.parse().ok()?;
            Some((name, uid, gid))
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use std::fs;
    use std::os::unix::fs::PermissionsExt;

    use super::*;

    fn with_mode(dir: &Path, mode: u32) -> std::path::PathBuf {
        let path = dir.join(format!("secret-{mode:o}"));
        fs::write(&path, "x").expect("write");
        fs::set_permissions(&path, fs::Permissions::from_mode(mode)).expect("chmod");
        path
    }

    #[test]
    fn private_files_pass_and_loose_ones_say_the_fix() {
        let dir = tempfile::tempdir().expect("tempdir");
        assert_eq!(loose(&with_mode(dir.path(), 0o600)), None);
        assert_eq!(loose(&with_mode(dir.path(), 0o400)), None);
        let others = with_mode(dir.path(), 0o644);
        let message = loose(&others).expect("0644 is loose");
        assert!(
            message.contains("readable by others (mode 0644)"),
            "{message}"
        );
        assert!(
            message.ends_with(&format!("run `chmod 600 {}`", others.display())),
            "{message}"
        );
        let group = loose(&with_mode(dir.path(), 0o640)).expect("0640 is loose");
        assert!(
            group.contains("readable by its group (mode 0640)"),
            "{group}"
        );
        assert!(loose(&with_mode(dir.path(), 0o606)).is_some());
    }

    #[test]
    fn the_service_account_is_read_from_passwd_fields() {
        // Whatever this machine has: a uid only when the entry exists.
        let passwd = fs::read_to_string("/etc/passwd").unwrap_or_default();
        let listed = passwd.lines().any(|l| l.starts_with("canhgac:"));
        assert_eq!(service_uid().is_some(), listed);
    }
}
