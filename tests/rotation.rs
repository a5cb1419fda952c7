//! Rotation while the daemon was down, by the real `logrotate`: the unread
//! tail of the rotated file is read at restart wherever logrotate put it,
//! moved to `olddir`, compressed at once, or both; a file truly gone is
//! said and counted. And an input whose `path` changes on SIGHUP follows
//! the new path and leaves the old file.

mod common;

use std::fs;
use std::process::Command;

use common::config::Config;
use common::logs::ssh_failures;
use common::site::Site;

const LOST: &str = "canhgac_input_position_lost_total{input=\"auth\"}";

/// Reads an attack, stops, lets more of it be written and `logrotate` run
/// with `directives` while down, then starts again and writes on. Returns
/// the site and the restarted daemon, once it is ready.
fn rotated_while_down(directives: &str) -> (Site, common::daemon::Daemon) {
    let site = Site::new();
    site.write("logs/auth.log", "");
    fs::create_dir(site.path("logs/old")).expect("olddir");
    site.configure(&Config::new("test-rotation").input("auth", "logs/auth.log", "syslog"));
    let d = site.daemon().ready();
    site.append("logs/auth.log", ssh_failures("203.0.113.1", 5, 0));
    site.wait_incident(&d, "ssh-bruteforce", "203.0.113.1");
    assert!(d.stop().success());

    // Written while the daemon is down: the unread tail.
    site.append("logs/auth.log", ssh_failures("203.0.113.2", 6, 10));
    let conf = site.write(
        "logrotate.conf",
        format!(
            "{} {{\n    rotate 3\n    missingok\n    create 0644 root root\n{directives}\n}}\n",
            site.path("logs/auth.log").display()
        ),
    );
    let status = Command::new("logrotate")
        .arg("-f")
        .arg("-s")
        .arg(site.path("logrotate.state"))
        .arg(&conf)
        .status()
        .expect("logrotate runs (Debian package logrotate; .ci/run installs it)");
    assert!(status.success(), "logrotate failed");
    site.append("logs/auth.log", ssh_failures("203.0.113.3", 6, 20));
    let d = site.daemon().ready();
    (site, d)
}

fn assert_all_read(site: &Site, d: &common::daemon::Daemon) {
    site.wait_incident(d, "ssh-bruteforce", "203.0.113.2");
    site.wait_incident(d, "ssh-bruteforce", "203.0.113.3");
    let first = site.incidents_of("ssh-bruteforce", "203.0.113.1");
    assert_eq!(first.len(), 1, "nothing read twice: {first:?}");
    assert_eq!(first[0]["events"], 5, "nothing read twice: {first:?}");
    assert_eq!(d.metric(LOST), 0.0);
}

#[test]
fn the_unread_tail_is_read_from_olddir_and_compressed() {
    let (site, d) = rotated_while_down("    olddir old\n    compress");
    assert!(site.path("logs/old/auth.log.1.gz").exists());
    assert_all_read(&site, &d);
    assert!(
        d.log_text().contains("old/auth.log.1.gz while stopped"),
        "{}",
        d.log_text()
    );
}

#[test]
fn the_unread_tail_is_read_compressed_in_place() {
    let (site, d) = rotated_while_down("    compress");
    assert!(site.path("logs/auth.log.1.gz").exists());
    assert_all_read(&site, &d);
}

#[test]
fn the_unread_tail_is_read_from_olddir() {
    let (site, d) = rotated_while_down("    olddir old");
    assert!(site.path("logs/old/auth.log.1").exists());
    assert_all_read(&site, &d);
}

#[test]
fn a_file_gone_for_good_is_said_and_counted() {
    let (site, d) = rotated_while_down("    rotate 0");
    site.wait_incident(&d, "ssh-bruteforce", "203.0.113.3");
    d.wait_metric(LOST, 1.0);
    assert!(site.incident("ssh-bruteforce", "203.0.113.2").is_none());
    assert!(d.log_text().contains("are lost"), "{}", d.log_text());
}

#[test]
fn a_path_changed_on_sighup_is_followed_and_the_old_file_left() {
    let site = Site::new();
    site.write("logs/a.log", "");
    site.write("logs/b.log", "");
    site.configure(&Config::new("test-rotation").input("auth", "logs/a.log", "syslog"));
    let d = site.daemon().ready();
    site.append("logs/a.log", ssh_failures("203.0.113.1", 5, 0));
    site.wait_incident(&d, "ssh-bruteforce", "203.0.113.1");

    site.configure(&Config::new("test-rotation").input("auth", "logs/b.log", "syslog"));
    let from = d.log_len();
    d.signal("HUP");
    d.wait_log(from, "reloaded");
    site.append("logs/a.log", ssh_failures("203.0.113.2", 6, 10));
    site.append("logs/b.log", ssh_failures("203.0.113.3", 6, 20));
    site.wait_incident(&d, "ssh-bruteforce", "203.0.113.3");
    // The old file is no longer the input's: what it gets is not read.
    std::thread::sleep(std::time::Duration::from_secs(2));
    assert!(site.incident("ssh-bruteforce", "203.0.113.2").is_none());
    assert!(d.stop().success());
}
