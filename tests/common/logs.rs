//! Writing logs as the programs that write them do: whole lines appended,
//! rotated files compressed and dated.

use std::fs::{self, OpenOptions};
use std::io::Write;
use std::path::{Path, PathBuf};

use jiff::Timestamp;

/// Writes `content` to `path`, making its directories.
pub fn write(path: &Path, content: &[u8]) -> PathBuf {
    if let Some(dir) = path.parent() {
        fs::create_dir_all(dir).expect("mkdir");
    }
    fs::write(path, content).expect("write");
    path.to_owned()
}

/// Writes a secret (a token file, a TLS key) readable by its owner only,
/// as canhgac requires of secrets.
pub fn write_private(path: &Path, content: &[u8]) -> PathBuf {
    use std::os::unix::fs::PermissionsExt;
    write(path, content);
    fs::set_permissions(path, fs::Permissions::from_mode(0o600)).expect("chmod 600");
    path.to_owned()
}

/// Appends with one write(2), creating the file if need be.
pub fn append(path: &Path, content: &[u8]) {
    OpenOptions::new()
        .create(true)
        .append(true)
        .open(path)
        .and_then(|mut f| f.write_all(content))
        .unwrap_or_else(|e| panic!("append to {}: {e}", path.display()));
}

pub fn gzip(data: &[u8]) -> Vec<u8> {
    let mut enc = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    enc.write_all(data).expect("gzip");
    enc.finish().expect("gzip")
}

/// Sets the modification time, as logrotate leaves it on a rotated file.
pub fn set_mtime(path: &Path, t: Timestamp) {
    fs::File::options()
        .write(true)
        .open(path)
        .and_then(|f| f.set_modified(t.into()))
        .expect("mtime set");
}

/// logrotate's numbered shift: name.N -> name.N+1, ..., name -> name.1.
pub fn shift(log: &Path, keep: u32) -> std::io::Result<()> {
    let name = |n: u32| PathBuf::from(format!("{}.{n}", log.display()));
    let _ = fs::remove_file(name(keep));
    for n in (1..keep).rev() {
        if name(n).exists() {
            fs::rename(name(n), name(n + 1))?;
        }
    }
    fs::rename(log, name(1))
}

/// A corpus file's bytes, ending in a newline: a last line without one is
/// never complete for a tailer.
pub fn corpus_lines(name: &str) -> Vec<u8> {
    let path = super::corpus(name);
    let mut data = fs::read(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    if data.last() != Some(&b'\n') {
        data.push(b'\n');
    }
    data
}

/// `n` failed SSH passwords for root from `ip`, one second apart from
/// `Oct 31 23:30:<start>`: `ssh-bruteforce` opens an incident at the
/// fifth within ten minutes.
pub fn ssh_failures(ip: &str, n: usize, start: usize) -> String {
    (start..start + n)
        .map(|i| {
            format!(
                "Oct 31 23:{:02}:{:02} host sshd[123]: Failed password for root from {ip} port 22 ssh2\n",
                30 + i / 60,
                i % 60
            )
        })
        .collect()
}
