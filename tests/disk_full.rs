//! A full disk under the store: the commit fails, `/readyz` says so, the
//! lines wait (their checkpoint does not move), and once space is freed the
//! daemon stores them by itself, without a restart. The store lives on a
//! real 3 MB tmpfs, filled by a real file.

mod common;

use std::fs;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::Command;

use common::config::Config;
use common::logs::ssh_failures;
use common::site::Site;

/// A tmpfs mounted for the test's lifetime.
struct Tmpfs(PathBuf);

impl Tmpfs {
    /// `None` where this account may not mount (then the test says so and
    /// passes: CI runs it as root).
    fn mount(at: &Path, size: &str) -> Option<Tmpfs> {
        fs::create_dir_all(at).expect("mount point");
        let ok = Command::new("mount")
            .args(["-t", "tmpfs", "-o", &format!("size={size}"), "tmpfs"])
            .arg(at)
            .status()
            .is_ok_and(|s| s.success());
        ok.then(|| Tmpfs(at.to_owned()))
    }
}

impl Drop for Tmpfs {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg("-l").arg(&self.0).status();
    }
}

/// Writes zeros to `path` until the file system is full.
fn fill(path: &Path) {
    let mut f = fs::File::create(path).expect("filler");
    let block = vec![0u8; 64 * 1024];
    while f.write_all(&block).is_ok() {}
    let _ = f.sync_all();
}

#[test]
fn a_full_disk_holds_the_lines_and_the_store_recovers_once_space_is_freed() {
    let site = Site::with_auth_log(Config::new("test-full"));
    let Some(_tmpfs) = Tmpfs::mount(&site.path("state"), "3m") else {
        eprintln!("note: skipping the full-disk test: this account cannot mount a tmpfs");
        return;
    };
    let d = site.daemon().ready();
    site.append("auth.log", ssh_failures("203.0.113.1", 6, 0));
    site.wait_incident(&d, "ssh-bruteforce", "203.0.113.1");

    let filler = site.path("state/filler");
    fill(&filler);
    site.append("auth.log", ssh_failures("203.0.113.2", 6, 10));
    d.wait_log(0, "disk full");
    let not_ready = d.wait("/readyz to say the store is full", || {
        d.get("/readyz").filter(|r| r.status == 503)
    });
    assert!(
        not_ready.body.contains("store not writable"),
        "{}",
        not_ready.body
    );
    assert!(site.incident("ssh-bruteforce", "203.0.113.2").is_none());

    // Space freed: stored by the daemon's own retries, no restart.
    fs::remove_file(&filler).expect("free the space");
    site.wait_incident(&d, "ssh-bruteforce", "203.0.113.2");
    d.wait("/readyz to say ready", || {
        d.get("/readyz").filter(|r| r.status == 200)
    });
    // And it goes on as before.
    site.append("auth.log", ssh_failures("203.0.113.3", 6, 20));
    site.wait_incident(&d, "ssh-bruteforce", "203.0.113.3");
    assert!(d.stop().success());
}
