//! Web-root integrity against the built daemon: real web roots in a
//! temporary directory changed while the daemon runs, real inotify events,
//! incidents read back with `canhgac incidents`, flags with `canhgac
//! integrity status`.
//!
//! Nothing here asserts that something was fast: every wait polls a
//! condition (an incident in the store, a line in the daemon's log) with a
//! generous deadline. "Nothing was raised" is shown by a later sentinel
//! change whose incident must come alone, or by the log line the watcher
//! writes once a scan's results are on their way to the store.

mod common;

use std::fs;
use std::path::PathBuf;
use std::process::Command;

use serde_json::Value;

use common::cli;
use common::config::Config;
use common::daemon::Daemon;
use common::site::Site;
use common::wait;

struct Fixture {
    site: Site,
}

/// Waits for a log line containing `what` after the first `skip` lines;
/// returns the number of lines up to and including it.
fn seen(d: &Daemon, skip: usize, what: &str) -> usize {
    d.wait_log_at(skip, what).0 + 1
}

fn stop(d: Daemon) {
    let status = d.stop();
    assert!(status.success(), "daemon exited {status}");
}

impl Fixture {
    /// Two web roots: `www` (deploy marker `deploying` beside it) and
    /// `docs` (a deploy window open all day), plus an nginx access log.
    fn new() -> Fixture {
        let site = Site::new();
        site.write("www/index.html", "<h1>Sở TT&TT</h1>\n");
        site.write("www/about.html", "<p>about</p>\n");
        site.write("www/css/site.css", "body{}\n");
        site.write("www/uploads/photo.jpg", "JPEG");
        site.write("www/cache/page.html", "cached");
        site.write("docs/index.html", "docs\n");
        site.write("access.log", "");
        site.configure(&Config::new("test-agency").any_port().body(&format!(
            r#"[integrity]
debounce = "300ms"
rescan_interval = "1h"

[[input]]
name = "web"
path = "access.log"
type = "nginx"
start = "beginning"

[[webroot]]
name = "www"
path = "www"
exclude = ["cache/**"]
deploy_marker = "{}"

[[webroot]]
name = "docs"
path = "docs"
deploy_windows = ["daily 00:00-24:00"]
"#,
            site.path("deploying").display()
        )));
        Fixture { site }
    }

    fn path(&self, rel: &str) -> PathBuf {
        self.site.path(rel)
    }

    fn write(&self, rel: &str, text: &str) {
        self.site.write(rel, text);
    }

    /// A new site, its daemon running with both roots scanned.
    fn started() -> (Fixture, Daemon) {
        let f = Fixture::new();
        let d = f.start_scanned();
        (f, d)
    }

    /// Starts the daemon and waits for both roots' first scans.
    fn start_scanned(&self) -> Daemon {
        let d = self.site.daemon().ready();
        seen(&d, 0, "web root www: scanned");
        seen(&d, 0, "web root docs: scanned");
        d
    }

    fn incidents(&self) -> Vec<Value> {
        self.site.incidents()
    }

    fn of_rule(&self, rule: &str) -> Vec<Value> {
        self.incidents()
            .into_iter()
            .filter(|i| i["rule"] == rule)
            .collect()
    }

    /// Waits until `rule` has `n` incidents; returns them.
    fn wait_incidents(&self, rule: &str, n: usize) -> Vec<Value> {
        let found = wait::wait_for(
            &format!("{n} incidents of {rule}"),
            || Some(self.of_rule(rule)).filter(|found| found.len() >= n),
            || format!("{:#?}", self.incidents()),
        );
        assert_eq!(found.len(), n, "{found:#?}");
        found
    }

    /// `canhgac integrity VERB --config CONFIG`.
    fn integrity(&self, verb: &str) -> Command {
        let mut cmd = cli::command();
        cmd.args(["integrity", verb, "--config"])
            .arg(self.path("canhgac.toml"));
        cmd
    }

    fn status(&self) -> Vec<Value> {
        let json = cli::succeed(self.integrity("status").args(["--format", "json"]));
        cli::json_lines(json.as_bytes())
    }

    /// `integrity accept` of `rel`, which must succeed; what it said.
    fn accept(&self, rel: &str) -> String {
        cli::succeed(self.integrity("accept").arg(self.path(rel)))
    }
}

fn files_of(incident: &Value) -> Vec<String> {
    incident["fields"]["files"]
        .as_str()
        .expect("files field")
        .lines()
        .map(str::to_owned)
        .collect()
}

fn flagged_paths(status: &[Value]) -> Vec<String> {
    let mut v: Vec<String> = status
        .iter()
        .map(|s| {
            format!(
                "{}:{}",
                s["root"].as_str().unwrap_or(""),
                s["path"].as_str().unwrap_or("")
            )
        })
        .collect();
    v.sort();
    v
}

#[test]
fn a_burst_is_one_incident_and_a_restart_does_not_raise_it_again() {
    let (f, d) = Fixture::started();
    assert!(
        f.of_rule("integrity-deface").is_empty(),
        "the first scan is the baseline"
    );

    // One burst: three changes in quick succession, one excluded.
    f.write("www/index.html", "<h1>changed</h1>\n");
    f.write("www/news/new.html", "<p>new page</p>\n");
    fs::remove_file(f.path("www/about.html")).expect("rm");
    f.write("www/cache/page.html", "excluded: never reported");
    let inc = f.wait_incidents("integrity-deface", 1).remove(0);
    assert_eq!(inc["category"], "deface");
    assert_eq!(inc["severity"], "high", "an index page changed");
    assert_eq!(inc["key"], "www");
    assert_eq!(inc["events"], 3);
    assert_eq!(
        files_of(&inc),
        [
            // Worst first, then by path.
            "index modified index.html",
            "content removed about.html",
            "content new news/new.html",
        ]
    );
    assert!(f.of_rule("integrity-webshell").is_empty());

    // A later change is a burst of its own, listing only itself.
    f.write("www/css/site.css", "body{color:red}\n");
    let both = f.wait_incidents("integrity-deface", 2);
    assert_eq!(files_of(&both[1]), ["content modified css/site.css"]);
    assert_eq!(
        flagged_paths(&f.status()),
        [
            "www:about.html",
            "www:css/site.css",
            "www:index.html",
            "www:news/new.html"
        ]
    );
    stop(d);

    // A restart compares the disk with the flags: nothing new.
    let d = f.start_scanned();
    assert_eq!(f.of_rule("integrity-deface").len(), 2);
    // Restoring the baseline's content clears the flag silently.
    f.write("www/css/site.css", "body{}\n");
    let at = d.log_len();
    f.write("www/index.html", "<h1>changed again</h1>\n");
    let all = f.wait_incidents("integrity-deface", 3);
    assert_eq!(files_of(&all[2]), ["index modified index.html"]);
    seen(&d, at, "back to their baseline content");
    assert_eq!(
        flagged_paths(&f.status()),
        ["www:about.html", "www:index.html", "www:news/new.html"]
    );
    stop(d);
}

#[test]
fn changes_during_a_deploy_become_the_baseline() {
    let (f, d) = Fixture::started();
    // Marker: a whole deploy, including a new script and an index page.
    f.write("deploying", "");
    f.write("www/index.html", "<h1>release 2</h1>\n");
    f.write("www/app/new.php", "<?php echo 1;");
    let at = seen(&d, 0, "web root www: 2 change(s) taken into the baseline");
    fs::remove_file(f.path("deploying")).expect("rm marker");
    seen(&d, at, "web root www: deploy over");
    // Window: docs is always in its deploy window.
    f.write("docs/index.html", "docs v2\n");
    seen(&d, 0, "web root docs: 1 change(s) taken into the baseline");

    // After the deploy, a change is raised, and only it is listed.
    f.write("www/about.html", "<p>defaced?</p>\n");
    let inc = f.wait_incidents("integrity-deface", 1).remove(0);
    assert_eq!(files_of(&inc), ["content modified about.html"]);
    assert_eq!(flagged_paths(&f.status()), ["www:about.html"]);
    stop(d);
    // The deploy's state is the stored baseline: a restart raises nothing.
    let d = f.start_scanned();
    assert_eq!(f.of_rule("integrity-deface").len(), 1);
    stop(d);
}

#[test]
fn a_script_in_an_upload_dir_is_deface_and_malware_and_its_use_is_caught() {
    let (f, d) = Fixture::started();
    // An image upload is expected; a PHP file beside it is a webshell.
    f.write("www/uploads/cat.png", "PNG");
    f.write("www/uploads/x.php", "<?php system($_GET['c']); ?>");
    let deface = f.wait_incidents("integrity-deface", 1).remove(0);
    let shell = f.wait_incidents("integrity-webshell", 1).remove(0);
    assert_eq!(deface["severity"], "critical");
    assert_eq!(files_of(&deface), ["webshell new uploads/x.php"]);
    assert_eq!(shell["category"], "malware");
    assert_eq!(shell["severity"], "critical");
    assert_eq!(files_of(&shell), ["webshell new uploads/x.php"]);

    // Successful requests: to an unflagged script nothing, to the flagged
    // one an incident (written in that order, so the first was read first).
    let line = |ip: &str, url: &str| {
        format!("{ip} - - [31/Oct/2020:23:30:00 +0700] \"GET {url} HTTP/1.1\" 200 12 \"-\" \"curl/8\"\n")
    };
    let mut log = String::new();
    log.push_str(&line("203.0.113.7", "/uploads/other.php?c=id"));
    log.push_str(&line("203.0.113.8", "/uploads/%78.php?c=id"));
    fs::write(f.path("access.log"), log).expect("append");
    let hit = f.wait_incidents("web-flagged-script-access", 1).remove(0);
    assert_eq!(hit["key"], "203.0.113.8");

    // A "hacked by" page: critical, with the signature.
    f.write(
        "www/about.html",
        "<html><h1>Hacked By Ghost Team</h1></html>",
    );
    let pages = f.wait_incidents("integrity-deface", 2);
    assert_eq!(pages[1]["severity"], "critical");
    assert_eq!(pages[1]["fields"]["signature"], "Hacked By");
    assert_eq!(files_of(&pages[1]), ["signature modified about.html"]);
    stop(d);
}

#[test]
fn accept_rebaselines_while_the_daemon_runs_and_while_it_does_not() {
    let (f, d) = Fixture::started();
    f.write("www/index.html", "<h1>new design</h1>\n");
    f.wait_incidents("integrity-deface", 1);
    assert_eq!(flagged_paths(&f.status()), ["www:index.html"]);

    let said = f.accept("www/index.html");
    assert!(said.contains("1 flag(s) cleared"), "{said}");
    assert!(f.status().is_empty());
    seen(&d, 0, "accepted \"index.html\" as the new baseline");
    // The daemon knows: touching the accepted file (same content) flags
    // nothing, and a later change lists only itself.
    f.write("www/index.html", "<h1>new design</h1>\n");
    f.write("www/about.html", "<p>sentinel</p>\n");
    let two = f.wait_incidents("integrity-deface", 2);
    assert_eq!(files_of(&two[1]), ["content modified about.html"]);
    assert_eq!(flagged_paths(&f.status()), ["www:about.html"]);
    stop(d);

    // Daemon down: a legitimate change, accepted before it starts again.
    f.write("www/index.html", "<h1>newer design</h1>\n");
    f.accept("www");
    assert!(f.status().is_empty(), "accepting the root clears all");
    let d = f.start_scanned();
    assert_eq!(f.of_rule("integrity-deface").len(), 2, "nothing raised");
    stop(d);

    // Outside every web root: refused, naming the roots.
    let out = f
        .integrity("accept")
        .arg("/etc/passwd")
        .output()
        .expect("accept");
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("not inside a configured web root"));
}
