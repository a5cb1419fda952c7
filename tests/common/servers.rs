//! The programs around canhgac in production, run for real: Prometheus
//! scraping it, rsyslogd relaying to it.

use std::fs::{self, File};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};

use serde_json::Value;

use super::http::{self, urlencode};
use super::wait;

/// Kills the child when a test ends, passed or failed.
pub struct Proc(pub Child);

impl Drop for Proc {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

impl Proc {
    pub fn exited(&mut self) -> Option<ExitStatus> {
        self.0.try_wait().ok().flatten()
    }
}

/// Whether `program` can be run (for skipping when a tool is missing).
pub fn installed(program: &str) -> bool {
    Command::new(program)
        .arg("--version")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok()
}

fn read_log(path: &Path) -> String {
    fs::read_to_string(path).unwrap_or_default()
}

/// Waits until `ready()` or the process exits; whether it exited because
/// its port was taken (`taken` in its log).
fn started_unless_taken(
    proc: &mut Proc,
    log: &Path,
    taken: &str,
    what: &str,
    ready: impl Fn() -> bool,
) -> bool {
    wait::wait_for(
        what,
        || {
            if let Some(status) = proc.exited() {
                let text = read_log(log);
                assert!(text.contains(taken), "exited ({status}) at start:\n{text}");
                return Some(false);
            }
            ready().then_some(true)
        },
        || read_log(log),
    )
}

pub struct Prometheus {
    pub port: u16,
    pub log: PathBuf,
    agent: ureq::Agent,
    _proc: Proc,
}

impl Prometheus {
    /// Starts a Prometheus server scraping `target` every second and
    /// evaluating the rule files `rules`, with its config, TSDB and log in
    /// `dir`, and waits until it is ready.
    pub fn start(dir: &Path, target: u16, rules: &[&Path]) -> Prometheus {
        let rules: String = rules
            .iter()
            .map(|r| format!("  - {}\n", r.display()))
            .collect();
        Prometheus::start_with(
            dir,
            "prometheus",
            &format!(
                "global:\n  scrape_interval: 1s\n  scrape_timeout: 1s\n  evaluation_interval: 1s\n\
                 rule_files:\n{rules}\
                 scrape_configs:\n  - job_name: canhgac\n    static_configs:\n      \
                 - targets: ['127.0.0.1:{target}']\n"
            ),
            &[],
        )
    }

    /// Starts Prometheus with the config `yaml` and the flags `args`, its
    /// config, data and logs in `dir` under `name`, and waits until it is
    /// ready.
    pub fn start_with(dir: &Path, name: &str, yaml: &str, args: &[&str]) -> Prometheus {
        let config = dir.join(format!("{name}.yml"));
        fs::write(&config, yaml).expect("prometheus config written");
        let agent = http::agent(None);
        let mut attempt = 0;
        super::on_free_port("prometheus", |port| {
            attempt += 1;
            let log = dir.join(format!("{name}-{attempt}.log"));
            let agent_mode = args.contains(&"--enable-feature=agent");
            let storage = if agent_mode {
                format!(
                    "--storage.agent.path={}",
                    dir.join(format!("{name}-data")).display()
                )
            } else {
                format!(
                    "--storage.tsdb.path={}",
                    dir.join(format!("{name}-data")).display()
                )
            };
            let child = Command::new("prometheus")
                .arg(format!("--config.file={}", config.display()))
                .arg(storage)
                .arg(format!("--web.listen-address=127.0.0.1:{port}"))
                .arg("--log.level=warn")
                .args(args)
                .stdout(Stdio::null())
                .stderr(File::create(&log).expect("prometheus log"))
                .spawn()
                .expect("prometheus starts");
            let mut proc = Proc(child);
            let url = format!("http://127.0.0.1:{port}/-/ready");
            let started = started_unless_taken(
                &mut proc,
                &log,
                "address already in use",
                "prometheus to be ready",
                || http::get(&agent, &url, None).is_ok_and(|r| r.status == 200),
            );
            started.then(|| Prometheus {
                port,
                log: log.clone(),
                agent: agent.clone(),
                _proc: proc,
            })
        })
    }

    /// GET `path` of Prometheus's HTTP API.
    pub fn get(&self, path: &str) -> Option<http::Reply> {
        http::get(
            &self.agent,
            &format!("http://127.0.0.1:{}{path}", self.port),
            None,
        )
        .ok()
    }

    /// An instant query: each result's labels and value, or None while
    /// Prometheus cannot answer.
    pub fn query(&self, promql: &str) -> Option<Vec<(Value, f64)>> {
        let r = self.get(&format!("/api/v1/query?query={}", urlencode(promql)))?;
        if r.status != 200 {
            return None;
        }
        let v: Value = serde_json::from_str(&r.body).ok()?;
        if v["status"] != "success" {
            return None;
        }
        v["data"]["result"]
            .as_array()?
            .iter()
            .map(|s| {
                let value = s["value"][1].as_str()?.parse().ok()?;
                Some((s["metric"].clone(), value))
            })
            .collect()
    }

    /// The single value of a query returning one series; None when it
    /// returns none (not scraped yet) or cannot be run.
    pub fn value(&self, promql: &str) -> Option<f64> {
        match self.query(promql)?.as_slice() {
            [(_, v)] => Some(*v),
            [] => None,
            more => panic!("{promql}: expected one series, got {more:?}"),
        }
    }

    pub fn log_text(&self) -> String {
        read_log(&self.log)
    }
}

fn rsyslogd() -> Option<PathBuf> {
    ["/usr/sbin/rsyslogd", "/sbin/rsyslogd"]
        .iter()
        .map(PathBuf::from)
        .find(|p| p.exists())
}

fn omrelp_installed() -> bool {
    ["/usr/lib/x86_64-linux-gnu/rsyslog", "/usr/lib/rsyslog"]
        .iter()
        .any(|d| Path::new(d).join("omrelp.so").exists())
}

/// A real rsyslogd, killed when dropped.
pub struct Rsyslog {
    pub log: PathBuf,
    _proc: Proc,
}

impl Rsyslog {
    /// rsyslogd in the foreground with `conf` (its work directory `work`).
    pub fn start(work: &Path, conf: &str) -> Rsyslog {
        let rsyslogd = rsyslogd().expect("rsyslogd is needed: apt-get install rsyslog");
        fs::write(work.join("rsyslog.conf"), conf).expect("rsyslog conf");
        let log = work.join("rsyslogd.log");
        let out = File::create(&log).expect("rsyslog log");
        let child = Command::new(rsyslogd)
            .args(["-n", "-f"])
            .arg(work.join("rsyslog.conf"))
            .arg("-i")
            .arg(work.join("rsyslogd.pid"))
            .stdout(out.try_clone().expect("log"))
            .stderr(out)
            .spawn()
            .expect("rsyslogd starts");
        Rsyslog {
            log,
            _proc: Proc(child),
        }
    }

    /// A relay as an agency would run it: TCP in on `listen`, out with
    /// omrelp to `target` through a disk-assisted queue, retrying for ever,
    /// forwarding each message as received.
    pub fn relp_relay(work: &Path, listen: u16, target: u16) -> Rsyslog {
        assert!(
            rsyslogd().is_some() && omrelp_installed(),
            "rsyslogd with omrelp is needed: apt-get install rsyslog rsyslog-relp"
        );
        let conf = format!(
            r#"global(workDirectory="{work}" net.enableDNS="off")
module(load="imtcp")
module(load="omrelp")
template(name="raw" type="string" string="%rawmsg%")
input(type="imtcp" address="127.0.0.1" port="{listen}" ruleset="relay")
ruleset(name="relay") {{
  action(type="omrelp" target="127.0.0.1" port="{target}" template="raw"
         queue.type="LinkedList" queue.filename="to-canhgac" queue.saveOnShutdown="on"
         action.resumeRetryCount="-1" action.resumeInterval="1")
}}
"#,
            work = work.display(),
        );
        Rsyslog::start(work, &conf)
    }

    pub fn log_text(&self) -> String {
        read_log(&self.log)
    }
}

/// A real `nats-server` with JetStream, its store in a directory of the
/// test, on a loopback port that stays its own across restarts.
pub struct Nats {
    pub port: u16,
    dir: PathBuf,
    /// More of nats-server's options (TLS, authentication).
    args: Vec<String>,
    runs: u32,
    proc: Option<Proc>,
}

impl Nats {
    pub fn start(dir: &Path) -> Nats {
        Nats::start_with(dir, &[])
    }

    pub fn start_with(dir: &Path, args: &[&str]) -> Nats {
        let mut nats = Nats {
            port: 0,
            dir: dir.to_path_buf(),
            args: args.iter().map(|a| a.to_string()).collect(),
            runs: 0,
            proc: None,
        };
        let port = super::on_free_port("nats-server", |port| {
            nats.port = port;
            nats.launch().then_some(port)
        });
        nats.port = port;
        nats
    }

    pub fn url(&self) -> String {
        format!("nats://127.0.0.1:{}", self.port)
    }

    /// Starts it on its port; false when the port was taken.
    fn launch(&mut self) -> bool {
        self.runs += 1;
        let log = self.dir.join(format!("nats-{}.log", self.runs));
        let child = Command::new("nats-server")
            .args([
                "-js",
                "-a",
                "127.0.0.1",
                "-p",
                &self.port.to_string(),
                "-sd",
            ])
            .arg(self.dir.join("jetstream"))
            .args(&self.args)
            .stdout(Stdio::null())
            .stderr(File::create(&log).expect("nats log"))
            .spawn()
            .expect("nats-server starts");
        let mut proc = Proc(child);
        let started = started_unless_taken(
            &mut proc,
            &log,
            "address already in use",
            "nats-server to listen",
            || read_log(&log).contains("Server is ready"),
        );
        if started {
            self.proc = Some(proc);
        }
        started
    }

    /// SIGKILL, as a crash would.
    pub fn kill(&mut self) {
        self.proc = None;
    }

    /// Starts it again on the same port and store.
    pub fn restart(&mut self) {
        self.proc = None;
        assert!(self.launch(), "nats-server could not take its port back");
    }
}
