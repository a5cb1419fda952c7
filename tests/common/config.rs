//! The daemon's config as the tests write it: a head every test shares,
//! then only what differs.

use std::fmt::Write as _;

/// Where the HTTP server listens.
#[derive(Clone, Copy)]
enum Listen {
    /// The site's port, picked free when the site was made.
    SitePort,
    /// Whatever port the kernel gives: for daemons whose HTTP side no test
    /// talks to, so that parallel tests never meet on a port.
    AnyPort,
}

/// `agency`, `time_zone` and `state_dir = "state"`, then `top` (keys and
/// whole tables), then `[http]` with its `listen` and `http` lines, then
/// `body` (inputs, feeds, web roots, more tables). The head keeps its lines
/// in place, so positions in a config error are the same in every test.
#[derive(Clone)]
pub struct Config {
    agency: String,
    time_zone: Option<String>,
    top: String,
    listen: Listen,
    http: String,
    body: String,
}

impl Config {
    pub fn new(agency: &str) -> Config {
        Config {
            agency: agency.to_owned(),
            time_zone: Some("UTC".to_owned()),
            top: String::new(),
            listen: Listen::SitePort,
            http: String::new(),
            body: String::new(),
        }
    }

    /// `None`: the config names no zone and the daemon takes `TZ`.
    pub fn time_zone(mut self, zone: Option<&str>) -> Config {
        self.time_zone = zone.map(str::to_owned);
        self
    }

    /// Lines right after the head: top-level keys, or whole tables.
    pub fn top(mut self, toml: &str) -> Config {
        self.top.push_str(toml);
        self
    }

    pub fn any_port(mut self) -> Config {
        self.listen = Listen::AnyPort;
        self
    }

    /// Lines of `[http]` besides `listen`.
    pub fn http(mut self, lines: &str) -> Config {
        self.http.push_str(lines);
        self
    }

    /// A `[pipeline]` table.
    pub fn pipeline(self, lines: &str) -> Config {
        self.body(&format!("[pipeline]\n{lines}\n"))
    }

    /// A file input read from its beginning.
    pub fn input(self, name: &str, path: &str, kind: &str) -> Config {
        self.body(&format!(
            "[[input]]\nname = \"{name}\"\npath = \"{path}\"\ntype = \"{kind}\"\nstart = \"beginning\"\n"
        ))
    }

    /// Anything after `[http]`, verbatim.
    pub fn body(mut self, toml: &str) -> Config {
        if !self.body.is_empty() && !self.body.ends_with("\n\n") {
            self.body.push('\n');
        }
        self.body.push_str(toml);
        self
    }

    /// The text, listening on `port` unless the kernel is to choose.
    pub fn render(&self, port: u16) -> String {
        let mut text = format!("agency = \"{}\"\n", self.agency);
        if let Some(zone) = &self.time_zone {
            let _ = writeln!(text, "time_zone = \"{zone}\"");
        }
        text.push_str("state_dir = \"state\"\n");
        text.push_str(&self.top);
        let port = match self.listen {
            Listen::SitePort => port,
            Listen::AnyPort => 0,
        };
        let _ = write!(
            text,
            "\n[http]\nlisten = \"127.0.0.1:{port}\"\n{}\n{}",
            self.http, self.body
        );
        text
    }
}
