//! The syslog receivers with real parts: the built daemon listening on
//! loopback, real `logger` (util-linux) sending RFC 5424 over TCP and RFC
//! 3164 over UDP, raw messages from many senders at once (each from its
//! own 127.0.0.x address), malformed and oversized ones, a rule restricted
//! to one sender, and a store held locked by another connection to see
//! TCP wait and UDP count its drops.

mod common;

use std::io::Write;
use std::net::{SocketAddr, TcpStream, UdpSocket};
use std::path::Path;
use std::process::Command;
use std::thread::sleep;
use std::time::Duration;

use serde_json::Value;

use canhgac::input::syslog::MAX_CONNECTIONS;
use common::config::Config;
use common::daemon::Daemon;
use common::site::Site;

/// A rule that reads only what 127.0.0.5 sends: firewall deny lines.
const FIREWALL_RULE: &str = r#"rules:
  - id: fw-deny-from-edge
    title: Edge firewall denied a connection
    description: Deny lines count only when the edge firewall itself sent them.
    category: recon
    severity: low
    types: [syslog]
    senders: [127.0.0.5/32]
    patterns:
      - 'FW DENY src=(?P<src_ip>[0-9.]+)'
    examples:
      match:
        - 'Oct 31 23:30:00 fw1 kernel: FW DENY src=198.51.100.77'
        - 'Oct 31 23:30:00 fw1 kernel: FW DENY src=198.51.100.78 dst=10.0.0.1'
      no_match:
        - 'Oct 31 23:30:00 fw1 kernel: FW ALLOW src=198.51.100.77'
        - 'Oct 31 23:30:00 fw1 kernel: FW DENY'
"#;

/// The daemon with its receivers on `port`, for UDP and TCP alike.
struct Receivers {
    site: Site,
    d: Daemon,
    port: u16,
}

fn start(extra: &str) -> Receivers {
    start_with("", extra)
}

/// `pipeline` goes into `[pipeline]`, `extra` into both inputs.
fn start_with(pipeline: &str, extra: &str) -> Receivers {
    let site = Site::new();
    site.write("rules.d/firewall.yaml", FIREWALL_RULE);
    let port = common::free_tcp_udp_port();
    site.configure(
        &Config::new("test-syslog")
            .top("\n[rules]\ndirs = [\"rules.d\"]\n")
            .pipeline(pipeline)
            .body(&format!(
                r#"[[input]]
name = "net-udp"
type = "syslog-udp"
listen = "127.0.0.1:{port}"
{extra}

[[input]]
name = "net-tcp"
type = "syslog-tcp"
listen = "127.0.0.1:{port}"
{extra}
"#
            )),
    );
    let d = site.daemon().env("CANHGAC_LOG", "info").ready();
    Receivers { site, d, port }
}

impl Receivers {
    fn incident(&self, key: &str) -> Option<Value> {
        self.site.incidents().into_iter().find(|i| i["key"] == key)
    }

    fn udp_addr(&self) -> SocketAddr {
        SocketAddr::from(([127, 0, 0, 1], self.port))
    }
}

fn logger(port: u16, transport: &str, format: &str, message: &str) {
    let status = Command::new("logger")
        .args(["--server", "127.0.0.1", "--port", &port.to_string()])
        .args([transport, format, "--tag", "sshd", "--id=4242"])
        .arg(message)
        .status()
        .expect("logger (util-linux) runs");
    assert!(status.success(), "logger failed");
}

fn failed(attacker: &str) -> String {
    format!("Failed password for root from {attacker} port 22 ssh2")
}

#[test]
fn logger_and_raw_senders_over_tcp_and_udp() {
    let d = start("");
    let port = d.port;

    // Real logger: RFC 5424 over TCP, RFC 3164 over UDP.
    for _ in 0..6 {
        logger(port, "--tcp", "--rfc5424", &failed("203.0.113.10"));
        logger(port, "--udp", "--rfc3164", &failed("203.0.113.11"));
    }
    d.d.until("logger's incidents", || {
        ["203.0.113.10", "203.0.113.11"]
            .iter()
            .all(|k| d.incident(k).is_some_and(|i| i["events"] == 6))
    });
    let tcp = d.incident("203.0.113.10").expect("tcp incident");
    assert_eq!(tcp["input"], "net-tcp");
    assert_eq!(tcp["fields"]["sender"], "127.0.0.1");
    assert!(
        tcp["sample"]
            .as_str()
            .is_some_and(|s| s.contains(" sshd[4242]: Failed password for root from 203.0.113.10")),
        "{tcp}"
    );
    assert_eq!(d.incident("203.0.113.11").expect("udp")["input"], "net-udp");

    // Many senders at once (a UDP datagram each from its own address, std
    // cannot choose a TCP client's address), each TCP connection mixing octet-counted and newline-framed messages, RFC 3164 and 5424.
    let senders: Vec<u8> = (2..=21).collect();
    let threads: Vec<_> = senders
        .iter()
        .map(|&last| {
            std::thread::spawn(move || {
                let attacker = format!("198.51.100.{last}");
                let mut out = Vec::new();
                for i in 0..6 {
                    let msg = if i % 2 == 0 {
                        format!(
                            "<38>1 2026-11-23T01:00:0{i}Z web{last} sshd {i} - - {}",
                            failed(&attacker)
                        )
                    } else {
                        format!(
                            "<38>Nov 23 01:00:0{i} web{last} sshd[{i}]: {}",
                            failed(&attacker)
                        )
                    };
                    if i % 3 == 0 {
                        out.extend_from_slice(format!("{} {msg}", msg.len()).as_bytes());
                    } else {
                        out.extend_from_slice(msg.as_bytes());
                        out.push(b'\n');
                    }
                }
                let socket =
                    UdpSocket::bind(SocketAddr::from(([127, 0, 0, last], 0))).expect("udp bind");
                // Over UDP from the same address: a datagram per message.
                socket
                    .send_to(
                        format!("<38>Nov 23 01:00:09 web{last} sshd[9]: FW DENY src=198.51.100.77")
                            .as_bytes(),
                        ("127.0.0.1", port),
                    )
                    .expect("udp send");
                let mut s = TcpStream::connect(("127.0.0.1", port)).expect("connect");
                // Written in small pieces, so frames straddle reads.
                for piece in out.chunks(37) {
                    s.write_all(piece).expect("send");
                }
            })
        })
        .collect();
    for t in threads {
        t.join().expect("sender");
    }
    d.d.until("an incident per attacker", || {
        let incidents = d.site.incidents();
        senders.iter().all(|last| {
            incidents
                .iter()
                .any(|i| i["key"] == format!("198.51.100.{last}") && i["events"] == 6)
        })
    });
    // The sender-restricted rule: only 127.0.0.5's deny line counts.
    d.d.until("the edge firewall's incident", || {
        d.site
            .incidents()
            .iter()
            .any(|i| i["rule"] == "fw-deny-from-edge")
    });
    let fw: Vec<Value> = d
        .site
        .incidents()
        .into_iter()
        .filter(|i| i["rule"] == "fw-deny-from-edge")
        .collect();
    assert_eq!(fw.len(), 1, "{fw:?}");
    assert_eq!(fw[0]["events"], 1, "{fw:?}");
    assert_eq!(fw[0]["fields"]["sender"], "127.0.0.5");
    assert_eq!(
        d.d.count("canhgac_input_lines_total{input=\"net-udp\"}"),
        6 + 20
    );

    // Malformed and oversized: counted, dropped, and the connection goes on.
    let big = "x".repeat(20_000);
    let mut s = TcpStream::connect(("127.0.0.1", port)).expect("connect");
    s.write_all(b"<999>Oct 11 22:14:15 h a: bad priority\n")
        .expect("send");
    s.write_all(b"<13>1 yesterday h a - - - bad time\n")
        .expect("send");
    s.write_all(format!("<13>Oct 11 22:14:15 h a: {big}\n").as_bytes())
        .expect("send");
    // Octet-counted, over the limit: skipped by its count, exactly.
    s.write_all(format!("{} <13>{big}", big.len() + 4).as_bytes())
        .expect("send");
    // An endless line: skipped to its newline.
    s.write_all(&[b'y'; 20_000]).expect("send");
    s.write_all(
        format!(
            "\n<13>Oct 11 22:14:15 h sshd[1]: {}\n",
            failed("192.0.2.99")
        )
        .as_bytes(),
    )
    .expect("send");
    drop(s);
    let udp = UdpSocket::bind("127.0.0.1:0").expect("udp");
    udp.send_to(b"<13>", d.udp_addr()).expect("send");
    udp.send_to(
        format!("<13>Oct 11 22:14:15 h a: {big}").as_bytes(),
        d.udp_addr(),
    )
    .expect("send");
    d.d.until("drops counted", || {
        d.d.count("canhgac_input_dropped_total{input=\"net-tcp\",reason=\"malformed\"}") == 2
            && d.d
                .count("canhgac_input_dropped_total{input=\"net-tcp\",reason=\"oversized\"}")
                == 3
            && d.d
                .count("canhgac_input_dropped_total{input=\"net-udp\",reason=\"malformed\"}")
                == 1
            && d.d
                .count("canhgac_input_dropped_total{input=\"net-udp\",reason=\"oversized\"}")
                == 1
    });
    // The line after the junk arrived.
    let metrics = d.d.metrics().expect("metrics");
    let tcp_lines = 6 + 20 * 6 + 1;
    d.d.until("the message after the junk", || {
        d.d.count("canhgac_input_lines_total{input=\"net-tcp\"}") == tcp_lines
    });
    assert!(metrics.contains("canhgac_input_connections{input=\"net-tcp\"}"));
    // Sender addresses never become labels.
    assert!(!metrics.contains("127.0.0.5\""), "{metrics}");
}

/// Holds the store's write lock, as a long backup or a stuck disk would.
fn lock_store(db: &Path) -> rusqlite::Connection {
    let conn = rusqlite::Connection::open(db).expect("db opens");
    conn.execute_batch("BEGIN IMMEDIATE").expect("write lock");
    conn
}

#[test]
fn a_stalled_store_holds_tcp_senders_and_counts_udp_drops() {
    // The queue frees what the pipeline has analysed; what waits for the
    // store is the pending batch, committed past 4 batches of 100 lines.
    let d = start_with(
        "batch_lines = 100",
        "queue_bytes = 65536\nmax_message_bytes = 1024",
    );
    let port = d.port;
    d.d.until("the store", || d.site.path("state/canhgac.db").exists());
    let lock = lock_store(&d.site.path("state/canhgac.db"));

    // 20 MB over TCP: far more than the 64 KiB queue, the pending batches
    // and what loopback socket buffers hold (a few MB), so the receiver
    // must stop reading and let TCP hold the sender.
    let messages = 100_000u64;
    let sender = std::thread::spawn(move || {
        let mut s = TcpStream::connect(("127.0.0.1", port)).expect("connect");
        let mut sent = 0u64;
        for i in 0..messages {
            let line = format!(
                "<13>Nov 23 01:00:00 web sshd[{i}]: session opened for user u{i} by (uid=0) {}\n",
                "p".repeat(120)
            );
            s.write_all(line.as_bytes()).expect("send");
            sent += 1;
        }
        sent
    });
    // UDP meanwhile: 2,000 datagrams of about 200 bytes, six times the queue.
    let udp = UdpSocket::bind("127.0.0.1:0").expect("udp");
    let datagrams = 2_000u64;
    for i in 0..datagrams {
        let msg = format!("<13>Nov 23 01:00:00 web app[{i}]: {}", "d".repeat(170));
        udp.send_to(msg.as_bytes(), d.udp_addr()).expect("send");
        if i % 100 == 0 {
            sleep(Duration::from_millis(5));
        }
    }
    // While the store refuses commits, the TCP input cannot have read more
    // than the pipeline took before its commit failed (4 batches of 100
    // lines and one read budget's worth of chunks) and the queue holds
    // (plus one read).
    let read_while_locked = d.d.count("canhgac_input_bytes_total{input=\"net-tcp\"}");
    assert!(
        read_while_locked <= 4 * 100 * 250 + (1 << 20) + 65_536 + 65_536,
        "{read_while_locked} bytes taken while the store was locked"
    );
    assert!(!sender.is_finished(), "the sender was never held back");

    lock.execute_batch("ROLLBACK").expect("unlock");
    drop(lock);
    let sent = sender.join().expect("sender");
    assert_eq!(sent, messages);
    d.d.until("every TCP message", || {
        d.d.count("canhgac_input_lines_total{input=\"net-tcp\"}") == messages
    });
    assert_eq!(
        d.d.count("canhgac_input_dropped_total{input=\"net-tcp\",reason=\"queue_full\"}"),
        0
    );
    // Every datagram is either read or counted as dropped.
    d.d.until("UDP accounted for", || {
        let read = d.d.count("canhgac_input_lines_total{input=\"net-udp\"}");
        let queue =
            d.d.count("canhgac_input_dropped_total{input=\"net-udp\",reason=\"queue_full\"}");
        let kernel =
            d.d.count("canhgac_input_dropped_total{input=\"net-udp\",reason=\"socket_buffer\"}");
        read + queue + kernel == datagrams
    });
    assert!(
        d.d.count("canhgac_input_dropped_total{input=\"net-udp\",reason=\"queue_full\"}") > 0,
        "UDP beyond the queue must be dropped and counted"
    );
}

#[test]
fn a_datagram_dated_far_ahead_cannot_hide_the_attempts_after_it() {
    let d = start("");
    let socket = UdpSocket::bind(("127.0.0.1", 0)).expect("udp bind");
    let send = |stamp: &str| {
        let msg = format!("<38>1 {stamp} web sshd 77 - - {}", failed("198.51.100.99"));
        socket
            .send_to(msg.as_bytes(), d.udp_addr())
            .expect("udp send");
    };
    // One spoofed datagram dated 2099 naming the address, then twenty real
    // failures from it: the forged date must not move the address's count
    // past the real ones.
    send("2099-01-01T00:00:00Z");
    sleep(Duration::from_millis(200));
    for _ in 0..20 {
        send(&jiff::Timestamp::now().to_string());
    }
    d.d.until("the incident of the real failures", || {
        d.incident("198.51.100.99")
            .is_some_and(|i| i["events"].as_u64().is_some_and(|n| n >= 20))
    });
    let inc = d.incident("198.51.100.99").expect("incident");
    let first: jiff::Timestamp = inc["first_seen"]
        .as_str()
        .and_then(|s| s.parse().ok())
        .expect("first_seen");
    let last: jiff::Timestamp = inc["last_seen"]
        .as_str()
        .and_then(|s| s.parse().ok())
        .expect("last_seen");
    let now = jiff::Timestamp::now();
    assert!(
        last <= now && now.duration_since(first) < jiff::SignedDuration::from_secs(300),
        "the incident lies where the attempts were made: {inc}"
    );
    assert_eq!(d.d.count("canhgac_lines_future_dated_total"), 1);
}

#[test]
fn sigterm_stores_what_open_tcp_connections_had_sent() {
    // A queue of 256 KiB: most of the 2.7 MB sent is still in the kernel's
    // socket buffers when the stop comes, the sender having written it all
    // as fast as it could and left the connection open.
    let d = start("queue_bytes = 262144");
    let messages = 30_000usize;
    let text: String = (0..messages)
        .map(|i| {
            format!(
                "<38>Oct 11 22:14:15 h sshd[{}]: {}\n",
                i % 9000 + 1,
                failed(&format!("198.51.100.{}", i % 50))
            )
        })
        .collect();
    let mut s = TcpStream::connect(("127.0.0.1", d.port)).expect("connect");
    s.write_all(text.as_bytes()).expect("send");
    let exit = d.d.stop();
    assert!(exit.success(), "{exit}; log:\n{}", d.d.log_text());
    drop(s);

    // What the store holds is what scan finds in the same lines.
    let lines: String = text
        .lines()
        .map(|l| format!("{}\n", l.trim_start_matches("<38>")))
        .collect();
    let sent = d.site.write("sent.log", lines);
    let (incidents, _) = common::cli::scan([
        "--config".as_ref(),
        d.site.config().as_os_str(),
        sent.as_os_str(),
    ]);
    let events = |list: Vec<Value>| {
        let mut by_key: Vec<(String, u64)> = list
            .iter()
            .map(|i| {
                (
                    format!("{} {}", i["rule"], i["key"]),
                    i["events"].as_u64().unwrap_or(0),
                )
            })
            .collect();
        by_key.sort();
        by_key
    };
    let scanned = events(incidents);
    assert_eq!(scanned.len(), 50, "{scanned:?}");
    assert_eq!(events(d.site.incidents()), scanned);
}

/// Idle and slow sockets from a local account cannot keep a sender out of
/// the TCP receiver, nor make the daemon run out of file descriptors: at
/// the cap the quietest connection goes for the new one.
#[test]
fn a_flood_of_idle_connections_cannot_keep_a_sender_out() {
    use common::flood::{open_fds, Flood};

    let d = start("");
    let (_flood, opened) = Flood::open(d.port, 3000, 120);
    assert!(opened >= 1500, "the flood opened only {opened}");
    let mut s = TcpStream::connect(("127.0.0.1", d.port)).expect("connect");
    for i in 0..6 {
        let line = format!(
            "<38>Oct 11 22:14:{:02} h sshd[1]: {}\n",
            10 + i,
            failed("192.0.2.50")
        );
        s.write_all(line.as_bytes()).expect("send");
    }
    d.d.wait("the sender's attack", || d.incident("192.0.2.50"));
    let shed =
        d.d.metric("canhgac_input_connections_shed_total{input=\"net-tcp\"}");
    let open = d.d.metric("canhgac_input_connections{input=\"net-tcp\"}");
    let fds = open_fds(d.d.pid());
    eprintln!("syslog flood: {opened} opened, {shed} shed, {open} open, {fds} fds");
    assert!(shed > 0.0, "{shed} shed");
    assert!(open <= MAX_CONNECTIONS as f64, "{open} open");
    assert!(fds <= MAX_CONNECTIONS + 64, "{fds} file descriptors");
}

/// A burst that arrives while the daemon cannot read (here: stopped) waits
/// in the UDP socket's kernel buffer, which the daemon asks to be 8 MiB
/// instead of the kernel's 208 KiB default (a few hundred datagrams). Where
/// `net.core.rmem_max` caps the buffer below what the burst needs, the
/// daemon's log says so with the fix; either way every datagram is read or
/// counted.
#[test]
fn a_burst_while_the_daemon_cannot_read_waits_in_the_receive_buffer_it_asked_for() {
    let site = Site::new();
    let port = common::free_tcp_udp_port();
    site.configure(&Config::new("test-syslog").body(&format!(
        "[[input]]\nname = \"net-udp\"\ntype = \"syslog-udp\"\nlisten = \"127.0.0.1:{port}\"\n"
    )));
    let d = site.daemon().ready();
    let to = SocketAddr::from(([127, 0, 0, 1], port));
    let udp = UdpSocket::bind("127.0.0.1:0").expect("udp");
    let datagrams = 3_000u64;
    d.signal("STOP");
    for i in 0..datagrams {
        let msg = format!("<13>Nov 23 01:00:00 web app[{i}]: {}", "b".repeat(150));
        udp.send_to(msg.as_bytes(), to).expect("send");
    }
    d.signal("CONT");
    let read = || d.count("canhgac_input_lines_total{input=\"net-udp\"}");
    let kernel =
        || d.count("canhgac_input_dropped_total{input=\"net-udp\",reason=\"socket_buffer\"}");
    d.until("every datagram read or counted", || {
        read() + kernel() == datagrams
    });
    // About 1 KiB of kernel memory a datagram this size on loopback: 3,000
    // need ~3 MiB, which the buffer holds once the cap allows 2 MiB (the
    // kernel doubles what is granted for its bookkeeping).
    let cap = canhgac::input::syslog::receive_buffer_cap().expect("net.core.rmem_max");
    if cap >= 2 << 20 {
        assert_eq!(
            (read(), kernel()),
            (datagrams, 0),
            "a burst of {datagrams} datagrams while stopped, net.core.rmem_max {cap}"
        );
    } else {
        assert!(
            d.log_text().contains("net.core.rmem_max caps it"),
            "the capped buffer is not said: {}",
            d.log_text()
        );
    }
    // Next to 8 MiB, the cap is what the daemon is told.
    assert_eq!(
        d.log_text().contains("net.core.rmem_max caps it"),
        cap < 8 << 20,
        "net.core.rmem_max {cap}: {}",
        d.log_text()
    );
}
