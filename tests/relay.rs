//! The inputs for relays with real parts: the built daemon; a raw RELP
//! client that checks each answer comes only once the store holds what the
//! message did; a real `rsyslogd` relaying with `omrelp` and a
//! disk-assisted queue while the daemon is killed with SIGKILL mid-stream
//! and started again (what the store holds then is what `scan` finds in the
//! lines sent); and syslog over TLS (RFC 5425) from a rustls client, with
//! the certificate replaced and reloaded on SIGHUP.

use std::collections::BTreeMap;
use std::fs;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::thread::sleep;
use std::time::{Duration, Instant};

use serde_json::Value;
use tempfile::TempDir;

const BIN: &str = env!("CARGO_BIN_EXE_canhgac");
const DEADLINE: Duration = Duration::from_secs(90);

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("a free port")
        .port()
}

struct Daemon {
    dir: TempDir,
    child: Option<Child>,
    http: u16,
    port: u16,
}

impl Drop for Daemon {
    fn drop(&mut self) {
        if let Some(c) = &mut self.child {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

impl Daemon {
    fn new() -> Daemon {
        Daemon::with_inputs(|_, port| {
            format!(
                r#"[[input]]
name = "relay"
type = "syslog-relp"
listen = "127.0.0.1:{port}"
"#
            )
        })
    }

    /// A daemon whose inputs `inputs(dir, port)` writes.
    fn with_inputs(inputs: impl Fn(&Path, u16) -> String) -> Daemon {
        let dir = tempfile::tempdir().expect("tempdir");
        let http = free_port();
        let port = free_port();
        let inputs = inputs(dir.path(), port);
        let config = format!(
            r#"agency = "test-relp"
time_zone = "UTC"
state_dir = "state"

[http]
listen = "127.0.0.1:{http}"

{inputs}
"#
        );
        fs::write(dir.path().join("canhgac.toml"), config).expect("config");
        let mut d = Daemon {
            dir,
            child: None,
            http,
            port,
        };
        d.start();
        d
    }

    fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }

    fn start(&mut self) {
        let log = fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(self.path("daemon.log"))
            .expect("daemon log");
        let child = Command::new(BIN)
            .args(["run", "--config"])
            .arg(self.path("canhgac.toml"))
            .env("CANHGAC_LOG", "info")
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .expect("daemon starts");
        self.child = Some(child);
        let runs = self.log().matches("ready:").count();
        wait_for("the daemon to be ready", &self.log(), || {
            self.log().matches("ready:").count() > runs
        });
    }

    /// Sends `signal` (as `kill` spells it) to the running daemon.
    fn signal(&self, signal: &str) {
        let pid = self.child.as_ref().expect("running").id();
        let status = Command::new("kill")
            .args([signal, &pid.to_string()])
            .status()
            .expect("kill runs");
        assert!(status.success());
    }

    fn kill9(&mut self) {
        if let Some(mut c) = self.child.take() {
            c.kill().expect("SIGKILL");
            c.wait().expect("reaped");
        }
    }

    fn log(&self) -> String {
        fs::read_to_string(self.path("daemon.log")).unwrap_or_default()
    }

    fn metric(&self, series: &str) -> u64 {
        self.metric_if_up(series).expect("metrics served")
    }

    fn metric_if_up(&self, series: &str) -> Option<u64> {
        let mut s = TcpStream::connect(("127.0.0.1", self.http)).ok()?;
        write!(s, "GET /metrics HTTP/1.0\r\nHost: 127.0.0.1\r\n\r\n").expect("request");
        let mut body = String::new();
        s.read_to_string(&mut body).expect("response");
        Some(
            body.lines()
                .find_map(|l| l.strip_prefix(series)?.strip_prefix(' '))
                .and_then(|v| v.parse::<f64>().ok())
                .map_or(0, |v| v as u64),
        )
    }

    /// Events by rule and key (summed over a key's incidents), from the store.
    fn stored(&self) -> BTreeMap<String, u64> {
        let out = Command::new(BIN)
            .args(["incidents", "--format", "json", "--config"])
            .arg(self.path("canhgac.toml"))
            .output()
            .expect("incidents runs");
        events(&out.stdout)
    }

    /// Events by rule and key that `scan` finds in `lines`.
    fn scanned(&self, lines: &str) -> BTreeMap<String, u64> {
        fs::write(self.path("sent.log"), lines).expect("write");
        let out = Command::new(BIN)
            .args(["scan", "--format", "json", "--config"])
            .arg(self.path("canhgac.toml"))
            .arg(self.path("sent.log"))
            .output()
            .expect("scan runs");
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        events(&out.stdout)
    }
}

fn events(json: &[u8]) -> BTreeMap<String, u64> {
    let list = serde_json::from_slice::<Value>(json)
        .ok()
        .and_then(|v| v.as_array().cloned())
        .unwrap_or_default();
    let mut by_key = BTreeMap::new();
    for i in &list {
        *by_key
            .entry(format!("{} {}", i["rule"], i["key"]))
            .or_insert(0) += i["events"].as_u64().unwrap_or(0);
    }
    by_key
}

fn wait_for(what: &str, context: &str, mut done: impl FnMut() -> bool) {
    let start = Instant::now();
    while !done() {
        assert!(
            start.elapsed() < DEADLINE,
            "timed out waiting for {what}:\n{context}"
        );
        sleep(Duration::from_millis(100));
    }
}

/// An sshd failure as a relay forwards it (RFC 3164, year-less).
fn failure(i: usize, attackers: usize) -> String {
    format!(
        "<38>Oct 11 {:02}:{:02}:{:02} web{} sshd[{}]: Failed password for root from 198.51.100.{} port 22 ssh2",
        10 + i / 3600,
        (i / 60) % 60,
        i % 60,
        i % 3,
        i % 9000 + 1,
        i % attackers
    )
}

/// `lines` as `scan` reads them: without the priority.
fn as_logged(messages: &[String]) -> String {
    messages
        .iter()
        .map(|m| format!("{}\n", m.trim_start_matches("<38>")))
        .collect()
}

fn frame(txnr: u32, command: &str, data: &str) -> Vec<u8> {
    if data.is_empty() {
        format!("{txnr} {command} 0\n").into_bytes()
    } else {
        format!("{txnr} {command} {} {data}\n", data.len()).into_bytes()
    }
}

/// Reads one answer frame: (txnr, data).
fn answer(r: &mut BufReader<TcpStream>) -> (u32, String) {
    let mut head = Vec::new();
    // TXNR SP rsp SP LEN, then SP DATA LF or LF.
    let mut fields = Vec::new();
    while fields.len() < 3 {
        let mut byte = [0u8];
        r.read_exact(&mut byte).expect("an answer");
        if byte[0] == b' ' || byte[0] == b'\n' {
            fields.push(String::from_utf8(std::mem::take(&mut head)).expect("ascii"));
            if byte[0] == b'\n' {
                break;
            }
        } else {
            head.push(byte[0]);
        }
    }
    let txnr = fields[0].parse().expect("a transaction number");
    let len: usize = fields.get(2).and_then(|l| l.parse().ok()).unwrap_or(0);
    let mut data = vec![0u8; len];
    r.read_exact(&mut data).expect("data");
    if len > 0 {
        let mut lf = String::new();
        r.read_line(&mut lf).expect("trailer");
    }
    (txnr, String::from_utf8(data).expect("text"))
}

#[test]
fn each_message_is_answered_only_once_the_store_holds_it() {
    let d = Daemon::new();
    let stream = TcpStream::connect(("127.0.0.1", d.port)).expect("connect");
    stream
        .set_read_timeout(Some(Duration::from_secs(30)))
        .expect("timeout");
    let mut w = stream.try_clone().expect("clone");
    let mut r = BufReader::new(stream);
    w.write_all(&frame(
        1,
        "open",
        "relp_version=0\nrelp_software=test\ncommands=syslog",
    ))
    .expect("open");
    let (txnr, offers) = answer(&mut r);
    assert_eq!(txnr, 1);
    assert!(offers.starts_with("200 OK\n"), "{offers:?}");
    assert!(offers.contains("commands=syslog"), "{offers:?}");

    // One attacker's failures, one frame at a time: once the answer to the
    // one that makes the incident is in, the store has the incident.
    let messages: Vec<String> = (0..12).map(|i| failure(i, 1)).collect();
    for (i, m) in messages.iter().enumerate() {
        let txnr = i as u32 + 2;
        w.write_all(&frame(txnr, "syslog", m)).expect("syslog");
        assert_eq!(answer(&mut r), (txnr, "200 OK".to_owned()));
    }
    let expected = d.scanned(&as_logged(&messages));
    assert_eq!(expected.len(), 1, "{expected:?}");
    assert_eq!(d.stored(), expected, "answered, so stored");

    // A command the server does not speak is refused and the session goes
    // on; `close` is answered and the server hangs up.
    w.write_all(&frame(20, "starttls", "")).expect("unknown");
    let (txnr, refused) = answer(&mut r);
    assert_eq!(txnr, 20);
    assert!(refused.starts_with("500 "), "{refused:?}");
    w.write_all(&frame(21, "close", "")).expect("close");
    assert_eq!(answer(&mut r), (21, String::new()));
    let mut rest = Vec::new();
    r.read_to_end(&mut rest).expect("closed");
    assert!(rest.is_empty(), "{rest:?}");

    // Garbage breaks a session, counted as malformed.
    let mut bad = TcpStream::connect(("127.0.0.1", d.port)).expect("connect");
    bad.write_all(b"GET / HTTP/1.1\r\n\r\n").expect("garbage");
    bad.set_read_timeout(Some(Duration::from_secs(30)))
        .expect("timeout");
    let mut rest = Vec::new();
    let _ = bad.read_to_end(&mut rest);
    wait_for("the malformed count", &d.log(), || {
        d.metric(r#"canhgac_input_dropped_total{input="relay",reason="malformed"}"#) == 1
    });
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

struct Rsyslog(Child);

impl Drop for Rsyslog {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

#[test]
fn kill_9_during_an_rsyslog_relay_loses_nothing() {
    let (Some(rsyslogd), true) = (rsyslogd(), omrelp_installed()) else {
        panic!("rsyslogd with omrelp is needed: apt-get install rsyslog rsyslog-relp");
    };
    let mut d = Daemon::new();
    let relay_port = free_port();
    let work = d.path("rsyslog");
    fs::create_dir(&work).expect("rsyslog dir");
    // The relay as an agency would run it: omrelp with a disk-assisted
    // queue, retrying for ever, forwarding each message as received.
    let conf = format!(
        r#"global(workDirectory="{work}" net.enableDNS="off")
module(load="imtcp")
module(load="omrelp")
template(name="raw" type="string" string="%rawmsg%")
input(type="imtcp" address="127.0.0.1" port="{relay_port}" ruleset="relay")
ruleset(name="relay") {{
  action(type="omrelp" target="127.0.0.1" port="{port}" template="raw"
         queue.type="LinkedList" queue.filename="to-canhgac" queue.saveOnShutdown="on"
         action.resumeRetryCount="-1" action.resumeInterval="1")
}}
"#,
        work = work.display(),
        port = d.port
    );
    fs::write(work.join("rsyslog.conf"), conf).expect("rsyslog conf");
    let log = fs::File::create(work.join("rsyslogd.log")).expect("rsyslog log");
    let _relay = Rsyslog(
        Command::new(rsyslogd)
            .args(["-n", "-f"])
            .arg(work.join("rsyslog.conf"))
            .arg("-i")
            .arg(work.join("rsyslogd.pid"))
            .stdout(log.try_clone().expect("log"))
            .stderr(log)
            .spawn()
            .expect("rsyslogd starts"),
    );
    let rsyslog_log = || fs::read_to_string(work.join("rsyslogd.log")).unwrap_or_default();
    let mut sender = None;
    wait_for("rsyslogd to listen", &rsyslog_log(), || {
        sender = TcpStream::connect(("127.0.0.1", relay_port)).ok();
        sender.is_some()
    });
    let mut sender = sender.expect("connected");

    let attackers = 40;
    let messages: Vec<String> = (0..40_000).map(|i| failure(i, attackers)).collect();
    let lines = r#"canhgac_input_lines_total{input="relay"}"#;
    // rsyslog takes it all at once and relays it at the pace of our
    // answers: the kill lands mid-stream, with a window unanswered.
    let text: String = messages.iter().map(|m| format!("{m}\n")).collect();
    sender.write_all(text.as_bytes()).expect("send to rsyslog");
    wait_for("a quarter relayed", &d.log(), || {
        d.metric(lines) > messages.len() as u64 / 4
    });
    d.kill9();
    assert!(
        d.metric_if_up(lines).is_none(),
        "the daemon is down while the relay keeps sending"
    );
    sleep(Duration::from_millis(500));
    d.start();
    drop(sender);

    let expected = d.scanned(&as_logged(&messages));
    assert_eq!(expected.len(), attackers, "{expected:?}");
    let total: u64 = expected.values().sum();
    wait_for(
        "every message relayed after the kill",
        &format!("{}\n{}", d.log(), rsyslog_log()),
        || d.stored().values().sum::<u64>() >= total,
    );
    // Nothing lost: every incident, each with at least its events. A
    // message stored and killed before its answer left is sent again, so
    // a count may exceed by at most the sender's window (omrelp: 128).
    let stored = d.stored();
    assert_eq!(
        stored.keys().collect::<Vec<_>>(),
        expected.keys().collect::<Vec<_>>()
    );
    let mut extra = 0;
    for (key, n) in &expected {
        assert!(stored[key] >= *n, "{key}: {} < {n}", stored[key]);
        extra += stored[key] - n;
    }
    assert!(extra <= 128, "{extra} events counted twice");

    // A clean stop with the relay's session open: `serverclose`, and out.
    d.signal("-TERM");
    if let Some(mut c) = d.child.take() {
        let exit = c.wait().expect("daemon exits");
        assert!(exit.success(), "{exit}; log:\n{}", d.log());
    }
}

fn self_signed(dir: &Path, cert: &str, key: &str) -> Vec<u8> {
    let c = rcgen::generate_simple_self_signed(vec!["localhost".into()]).expect("cert");
    // Written beside and renamed, as a certificate renewal does.
    fs::write(dir.join("new.pem"), c.cert.pem()).expect("cert");
    fs::rename(dir.join("new.pem"), dir.join(cert)).expect("rename");
    fs::write(dir.join("new.pem"), c.key_pair.serialize_pem()).expect("key");
    fs::rename(dir.join("new.pem"), dir.join(key)).expect("rename");
    c.cert.der().to_vec()
}

/// A TLS session to the daemon's port that trusts only `root`.
fn tls_client(
    port: u16,
    root: &[u8],
) -> std::io::Result<rustls::StreamOwned<rustls::ClientConnection, TcpStream>> {
    let mut roots = rustls::RootCertStore::empty();
    roots
        .add(rustls::pki_types::CertificateDer::from(root.to_vec()))
        .expect("root");
    let provider = std::sync::Arc::new(rustls::crypto::ring::default_provider());
    let config = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .expect("versions")
        .with_root_certificates(roots)
        .with_no_client_auth();
    let name = rustls::pki_types::ServerName::try_from("localhost").expect("name");
    let conn = rustls::ClientConnection::new(std::sync::Arc::new(config), name)
        .map_err(std::io::Error::other)?;
    let tcp = TcpStream::connect(("127.0.0.1", port))?;
    tcp.set_read_timeout(Some(Duration::from_secs(30)))?;
    let mut tls = rustls::StreamOwned::new(conn, tcp);
    // The handshake, now: a refused certificate fails here.
    while tls.conn.is_handshaking() {
        tls.conn.complete_io(&mut tls.sock)?;
    }
    Ok(tls)
}

#[test]
fn syslog_over_tls_with_the_certificate_reloaded_on_sighup() {
    let d = Daemon::with_inputs(|dir, port| {
        let _ = self_signed(dir, "cert.pem", "key.pem");
        format!(
            r#"[[input]]
name = "tls"
type = "syslog-tcp"
listen = "127.0.0.1:{port}"
tls_cert = "cert.pem"
tls_key = "key.pem"
"#
        )
    });
    let first = fs::read(d.path("cert.pem")).expect("cert");
    let first = rustls::pki_types::CertificateDer::from_pem_slice(&first).expect("pem");
    use rustls::pki_types::pem::PemObject;

    // RFC 5425 frames: octet-counted.
    let messages: Vec<String> = (0..12).map(|i| failure(i, 2)).collect();
    let mut tls = tls_client(d.port, &first).expect("handshake with the first certificate");
    for m in &messages {
        write!(tls, "{} {m}", m.len()).expect("send");
    }
    tls.conn.send_close_notify();
    tls.flush().expect("flush");
    // Read to the server's end, as a TLS client closes: leaving its
    // session tickets unread would make our kernel reset the connection,
    // and a reset throws away what the server had not read yet.
    let _ = tls.read_to_end(&mut Vec::new());
    drop(tls);
    let expected = d.scanned(&as_logged(&messages));
    assert_eq!(expected.len(), 2, "{expected:?}");
    wait_for(
        "the TLS messages stored",
        &format!("{}\n{:?}", d.log(), d.stored()),
        || d.stored() == expected,
    );

    // Plain syslog on the TLS port is no handshake: counted, not read.
    let mut plain = TcpStream::connect(("127.0.0.1", d.port)).expect("connect");
    plain
        .write_all(b"<38>Oct 11 10:00:00 h sshd[1]: Failed password for root from 203.0.113.9 port 22 ssh2\n")
        .expect("send");
    plain
        .set_read_timeout(Some(Duration::from_secs(30)))
        .expect("timeout");
    let _ = plain.read_to_end(&mut Vec::new());
    wait_for("the failed handshake counted", &d.log(), || {
        d.metric(r#"canhgac_input_read_errors_total{input="tls"}"#) >= 1
    });

    // A renewed certificate, SIGHUP: new sessions get it.
    let second = self_signed(d.dir.path(), "cert.pem", "key.pem");
    let reloads = d.log().matches("reloaded").count();
    d.signal("-HUP");
    wait_for("the reload", &d.log(), || {
        d.log().matches("reloaded").count() > reloads
    });
    assert!(
        tls_client(d.port, &second).is_ok(),
        "the renewed certificate is served"
    );
    assert!(tls_client(d.port, &first).is_err(), "the old one is not");
    assert!(!d
        .stored()
        .contains_key("\"ssh-bruteforce\" \"203.0.113.9\""));
}

#[test]
fn a_reload_refused_for_a_busy_port_leaves_every_running_input_reading() {
    let d = Daemon::with_inputs(|dir, port| {
        fs::write(dir.join("auth.log"), "").expect("log");
        format!(
            r#"[[input]]
name = "auth"
path = "auth.log"
type = "syslog"

[[input]]
name = "relay"
type = "syslog-relp"
listen = "127.0.0.1:{port}"
"#
        )
    });
    // The relay input moves to a port another program holds, and a new
    // receiver wants it too: the reload must be refused as a whole.
    let busy = TcpListener::bind("127.0.0.1:0").expect("bind");
    let busy_port = busy.local_addr().expect("addr").port();
    let config = fs::read_to_string(d.path("canhgac.toml")).expect("config");
    let moved = config.replace(
        &format!("127.0.0.1:{}", d.port),
        &format!("127.0.0.1:{busy_port}"),
    );
    fs::write(d.path("canhgac.toml"), moved).expect("config");
    d.signal("-HUP");
    wait_for("the reload refused", &d.log(), || {
        d.log().contains("reload refused")
    });
    assert!(d.log().contains("Address already in use"), "{}", d.log());

    // Both running inputs still read: the file, and the RELP port.
    let messages: Vec<String> = (0..8).map(|i| failure(i, 1)).collect();
    let mut log = fs::OpenOptions::new()
        .append(true)
        .open(d.path("auth.log"))
        .expect("log");
    log.write_all(as_logged(&messages).as_bytes())
        .expect("append");
    let expected = d.scanned(&as_logged(&messages));
    assert_eq!(expected.len(), 1, "{expected:?}");
    wait_for("the file's attack stored", &d.log(), || {
        d.stored() == expected
    });
    let stream = TcpStream::connect(("127.0.0.1", d.port)).expect("the RELP port still listens");
    stream
        .set_read_timeout(Some(Duration::from_secs(30)))
        .expect("timeout");
    let mut w = stream.try_clone().expect("clone");
    let mut r = BufReader::new(stream);
    w.write_all(&frame(1, "open", "relp_version=0\ncommands=syslog"))
        .expect("open");
    assert_eq!(answer(&mut r).0, 1);
    drop(busy);
}
