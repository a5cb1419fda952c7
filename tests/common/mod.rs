// Every test crate compiles its own copy of this module and uses only part of it.
#![allow(dead_code)]
//! What the integration tests share to meet canhgac as its users do: a
//! temporary site with a config ([`site`], [`config`]), the built daemon
//! started under a real `NOTIFY_SOCKET` and stopped with a signal
//! ([`daemon`]), the CLI ([`cli`]), HTTP and `/metrics` ([`http`],
//! [`metrics`]), the servers around it ([`servers`]), log writers
//! ([`logs`]) and bounded waits ([`wait`]). A test says only what differs.

pub mod cli;
pub mod config;
pub mod daemon;
pub mod flood;
pub mod http;
pub mod logs;
pub mod metrics;
pub mod servers;
pub mod site;
pub mod wait;

use std::io::Write;
use std::net::{TcpListener, UdpSocket};
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

pub const BIN: &str = env!("CARGO_BIN_EXE_canhgac");

/// xorshift: reproducible random moments (a test prints its seed).
pub struct Rng(pub u64);

impl Rng {
    pub fn below(&mut self, n: u64) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0 % n
    }
}

/// A file of the source tree (`rules/`, `samples/`, `contrib/`).
pub fn manifest(rel: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join(rel)
}

/// A log that a real machine wrote, from `../shared/corpus`.
pub fn corpus(name: &str) -> PathBuf {
    manifest("../shared/corpus").join(name)
}

/// A loopback TCP port nobody listened on a moment ago. Another process may
/// take it before our server binds it: [`on_free_port`] retries.
pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("a free port")
        .port()
}

/// A port free for both TCP and UDP, for receivers that share one number.
pub fn free_tcp_udp_port() -> u16 {
    loop {
        let tcp = TcpListener::bind("127.0.0.1:0").expect("a free port");
        let port = tcp.local_addr().expect("addr").port();
        if UdpSocket::bind(("127.0.0.1", port)).is_ok() {
            return port;
        }
    }
}

/// Port conflicts (another process taking the port between our probe and
/// the server's bind) are retried this many times.
pub const PORT_ATTEMPTS: usize = 5;

/// Starts a server with `start(port)` on free ports until one start does
/// not find its port taken (`None`).
pub fn on_free_port<T>(what: &str, mut start: impl FnMut(u16) -> Option<T>) -> T {
    for attempt in 1..=PORT_ATTEMPTS {
        let port = free_port();
        if let Some(started) = start(port) {
            return started;
        }
        eprintln!("{what}: port {port} taken (attempt {attempt}), retrying with another");
    }
    panic!("{what}: no free port after {PORT_ATTEMPTS} attempts");
}

/// Runs `cmd` with `input` on its stdin; what it printed, and how it ended.
pub fn fed(cmd: &mut Command, input: &[u8]) -> Output {
    let mut child = cmd
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("{:?} starts: {e}", cmd.get_program()));
    child
        .stdin
        .take()
        .expect("stdin")
        .write_all(input)
        .expect("input written");
    child
        .wait_with_output()
        .unwrap_or_else(|e| panic!("{:?} ends: {e}", cmd.get_program()))
}

/// The rules canhgac ships, as loaded with no config.
pub fn builtin_rules() -> canhgac::rules::RuleSet {
    canhgac::rules::RuleSet::load(&canhgac::rules::RuleSources {
        builtin: true,
        paths: vec![],
        disabled: Vec::new(),
    })
    .expect("built-in rules load")
}
