//! A temporary directory holding a config, its logs and its state, as a
//! sysadmin's `/etc/canhgac` and `/var/log` would.

use std::fs::{self, OpenOptions};
use std::io::Write;
use std::path::{Path, PathBuf};

use serde_json::Value;
use tempfile::TempDir;

use super::config::Config;
use super::daemon::{Daemon, Launch};

pub struct Site {
    dir: TempDir,
    port: u16,
}

impl Site {
    /// An empty directory, and a free port for the daemon's HTTP side.
    pub fn new() -> Site {
        Site {
            dir: TempDir::new().expect("tempdir"),
            port: super::free_port(),
        }
    }

    /// A site with `config` written.
    pub fn with(config: &Config) -> Site {
        let site = Site::new();
        site.configure(config);
        site
    }

    /// A site with an empty `auth.log`, which `config` reads from its start
    /// as the syslog input `auth`.
    pub fn with_auth_log(config: Config) -> Site {
        let site = Site::with(&config.input("auth", "auth.log", "syslog"));
        site.write("auth.log", "");
        site
    }

    pub fn dir(&self) -> &Path {
        self.dir.path()
    }

    pub fn path(&self, rel: &str) -> PathBuf {
        self.dir.path().join(rel)
    }

    pub fn port(&self) -> u16 {
        self.port
    }

    /// Writes `content` to `rel`, making its directories.
    pub fn write(&self, rel: &str, content: impl AsRef<[u8]>) -> PathBuf {
        super::logs::write(&self.path(rel), content.as_ref())
    }

    /// Writes a secret file, readable by its owner only.
    pub fn write_private(&self, rel: &str, content: impl AsRef<[u8]>) -> PathBuf {
        super::logs::write_private(&self.path(rel), content.as_ref())
    }

    /// Appends with one write(2), as a syslog daemon writes whole lines.
    pub fn append(&self, rel: &str, content: impl AsRef<[u8]>) {
        super::logs::append(&self.path(rel), content.as_ref());
    }

    /// Appends each of `lines` with its newline.
    pub fn append_lines(&self, rel: &str, lines: &[&str]) {
        let mut f = OpenOptions::new()
            .append(true)
            .open(self.path(rel))
            .expect("log opens");
        for l in lines {
            writeln!(f, "{l}").expect("line written");
        }
    }

    pub fn config(&self) -> PathBuf {
        self.path("canhgac.toml")
    }

    pub fn read_config(&self) -> String {
        fs::read_to_string(self.config()).expect("config")
    }

    /// Writes `config` on this site's port.
    pub fn configure(&self, config: &Config) {
        self.write_config(&config.render(self.port));
    }

    /// Replaces the config atomically, as an editor or a config manager
    /// would: a reload never sees it half-written.
    pub fn write_config(&self, text: &str) {
        let tmp = self.path("canhgac.toml.tmp");
        fs::write(&tmp, text).expect("write config");
        fs::rename(&tmp, self.config()).expect("rename config");
    }

    /// The daemon on this config, its log kept in `daemon.log`.
    pub fn daemon(&self) -> Launch {
        Launch::new(&self.config())
            .log_file(self.path("daemon.log"))
            .http(format!("http://127.0.0.1:{}", self.port))
    }

    /// Every daemon's log on this site so far.
    pub fn log(&self) -> String {
        fs::read_to_string(self.path("daemon.log")).unwrap_or_default()
    }

    /// The stored incidents; none while there is no store.
    pub fn incidents(&self) -> Vec<Value> {
        super::cli::incidents(&self.config())
    }

    /// The stored incidents of `rule` with `key`.
    pub fn incidents_of(&self, rule: &str, key: &str) -> Vec<Value> {
        self.incidents()
            .into_iter()
            .filter(|i| i["rule"] == rule && i["key"] == key)
            .collect()
    }

    pub fn incident(&self, rule: &str, key: &str) -> Option<Value> {
        self.incidents_of(rule, key).into_iter().next()
    }

    /// Waits until `daemon` has stored an incident of `rule` with `key`.
    pub fn wait_incident(&self, daemon: &Daemon, rule: &str, key: &str) -> Value {
        daemon.wait(&format!("incident {rule} {key}"), || {
            self.incident(rule, key)
        })
    }
}
