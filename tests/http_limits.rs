//! Nobody can blind the monitor through its HTTP port: thousands of idle and
//! slowloris sockets, opened by an unprivileged local process, while an
//! attack is appended to a tailed file that is then rotated. The incidents
//! are recorded, `/metrics` answers, and the daemon's file descriptors stay
//! within its connection cap.

mod common;

use common::config::Config;
use common::flood::{open_fds, Flood};
use common::logs::{shift, ssh_failures};
use common::site::Site;

/// The cap the test gives the daemon: small, so that the flood is many
/// times over it.
const MAX_CONNECTIONS: usize = 64;

/// Sockets the attacker opens: half idle, half sending headers that never
/// end, a byte every second.
const SOCKETS: usize = 3000;

#[test]
fn idle_and_slowloris_sockets_cannot_blind_the_daemon() {
    let site = Site::with_auth_log(Config::new("test-limits").http(&format!(
        "max_connections = {MAX_CONNECTIONS}\nheader_timeout = \"5s\"\n"
    )));
    let d = site.daemon().ready();
    let before = open_fds(d.pid());

    let (_attacker, opened) = Flood::open(site.port(), SOCKETS, 120);
    assert!(opened >= SOCKETS / 2, "the attacker opened only {opened}");

    // An attack, a rotation, and the attack going on in the new file.
    site.append("auth.log", ssh_failures("203.0.113.7", 6, 0));
    shift(&site.path("auth.log"), 1).expect("rotate");
    site.write("auth.log", "");
    site.append("auth.log", ssh_failures("203.0.113.8", 6, 10));
    site.wait_incident(&d, "ssh-bruteforce", "203.0.113.7");
    site.wait_incident(&d, "ssh-bruteforce", "203.0.113.8");

    // A scrape gets in past the flood.
    let page = d.metrics().expect("/metrics answers under the flood");
    assert!(page.contains("canhgac_http_connections "), "{page}");
    let open = d.metric("canhgac_http_connections");
    assert!(open <= MAX_CONNECTIONS as f64, "{open} connections open");
    let shed = d.metric("canhgac_http_connections_closed_total{reason=\"shed\"}");
    assert!(
        shed >= (opened - MAX_CONNECTIONS) as f64,
        "{shed} shed of {opened}"
    );
    let fds = open_fds(d.pid());
    eprintln!(
        "flood: {opened} sockets opened, {shed} shed, {open} open at the scrape, \
         {fds} fds (before: {before})"
    );
    assert!(
        fds <= before + MAX_CONNECTIONS + 16,
        "{fds} file descriptors open (before the flood: {before})"
    );
}

#[test]
fn a_connection_that_never_finishes_its_headers_is_closed() {
    use std::io::{Read, Write};
    use std::time::{Duration, Instant};

    let site = Site::with_auth_log(
        Config::new("test-limits").http("header_timeout = \"1s\"\nidle_timeout = \"3s\"\n"),
    );
    let d = site.daemon().ready();
    let connect = || {
        let s = std::net::TcpStream::connect(("127.0.0.1", site.port())).expect("connect");
        s.set_read_timeout(Some(Duration::from_secs(30)))
            .expect("timeout");
        s
    };
    // Waits until the daemon closes the socket; how long that took.
    let closed_after = |mut s: std::net::TcpStream| {
        let start = Instant::now();
        let mut buf = [0u8; 4096];
        while s.read(&mut buf).is_ok_and(|n| n > 0) {}
        start.elapsed()
    };

    let mut slow = connect();
    slow.write_all(b"GET /metrics HTTP/1.1\r\nHost: x\r\n")
        .expect("half a request");
    let waited = closed_after(slow);
    assert!(waited < Duration::from_secs(10), "held {waited:?}");
    d.wait_metric(
        "canhgac_http_connections_closed_total{reason=\"header_timeout\"}",
        1.0,
    );

    // Keep-alive, then silence: closed as idle (or, when hyper times the
    // wait for the next request's headers too, by the header timeout).
    let mut idle = connect();
    idle.write_all(b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
        .expect("a request");
    let waited = closed_after(idle);
    assert!(waited < Duration::from_secs(10), "held {waited:?}");

    // HTTP/2 prior knowledge is not spoken on the plain port.
    let mut h2 = connect();
    h2.write_all(b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n")
        .expect("preface");
    let mut reply = Vec::new();
    let _ = h2.read_to_end(&mut reply);
    let reply = String::from_utf8_lossy(&reply);
    assert!(!reply.contains("HTTP/2"), "{reply}");

    d.until("both silent connections counted", || {
        let closed = |reason: &str| {
            d.try_metric(&format!(
                "canhgac_http_connections_closed_total{{reason=\"{reason}\"}}"
            ))
            .unwrap_or(0.0)
        };
        closed("header_timeout") + closed("idle") >= 2.0
    });
}
