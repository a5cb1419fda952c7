//! A local account's flood of sockets: thousands of connections, idle or
//! slow, held open by a process of their own.

use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};

/// The attacker, a process of its own as a local account would run: opens
/// `n` connections to `port` and holds them for `seconds`, half idle, half
/// sending headers that never end, a byte a second. Prints how many it
/// opened once they are all open.
const ATTACKER: &str = r#"
import resource, socket, sys, time
n, port, seconds = int(sys.argv[1]), int(sys.argv[2]), float(sys.argv[3])
soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
resource.setrlimit(resource.RLIMIT_NOFILE, (min(hard, max(soft, n + 64)), hard))
held = []
for i in range(n):
    s = socket.socket()
    try:
        s.connect(("127.0.0.1", port))
        if i % 2:
            s.send(b"GET /metrics HTTP/1.1\r\nHost: canhgac\r\n")
    except OSError:
        continue
    held.append(s)
print(len(held), flush=True)
end = time.time() + seconds
while time.time() < end:
    for s in held[1::2]:
        try:
            s.send(b"X")
        except OSError:
            pass
    time.sleep(1)
"#;

pub struct Flood(Child);

impl Flood {
    /// Opens `sockets` connections to `port` on loopback, held for
    /// `seconds`; returns once every one is open, with how many opened.
    pub fn open(port: u16, sockets: usize, seconds: u32) -> (Flood, usize) {
        let mut child = Command::new("python3")
            .args(["-c", ATTACKER])
            .args([sockets.to_string(), port.to_string(), seconds.to_string()])
            .stdout(Stdio::piped())
            .spawn()
            .expect("python3 runs");
        let out = child.stdout.take().expect("stdout");
        let mut line = String::new();
        BufReader::new(out)
            .read_line(&mut line)
            .expect("attacker says");
        let opened = line.trim().parse().expect("a count");
        (Flood(child), opened)
    }
}

impl Drop for Flood {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// File descriptors the process `pid` holds.
pub fn open_fds(pid: u32) -> usize {
    std::fs::read_dir(format!("/proc/{pid}/fd"))
        .expect("the process's fds")
        .count()
}
