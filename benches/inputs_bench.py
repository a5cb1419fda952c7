#!/usr/bin/env python3
"""Inputs benchmark: the same lines through each kind of input of one daemon build.

For N lines of real auth.log (from ../shared/corpus, repeated), measures in one run how fast
`canhgac run` takes them in (until canhgac_input_lines_total reaches N, so matched, detected
and committed batches included):

  file     appended at once to a tailed file (the reference)
  tcp      sent as RFC 3164 messages over CONNS TCP connections (newline framing)
  udp      sent as datagrams as fast as Python can; reports the loss rate too
  journal  entries of a journal file built beforehand by systemd-journal-remote

Prints one table. Needs target/release/canhgac (inputs.sh builds it), journalctl and
systemd-journal-remote. Every daemon it starts is killed on exit.
"""
import json, os, shutil, socket, subprocess, sys, tempfile, threading, time, urllib.request

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
BIN = os.path.join(ROOT, "target/release/canhgac")
N = int(os.environ.get("LINES", "200000"))
CONNS = int(os.environ.get("CONNS", "4"))
CORPUS = os.environ.get("CORPUS", os.path.join(ROOT, "../shared/corpus/openssh_2k.log"))


def free_port():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    p = s.getsockname()[1]
    s.close()
    return p


def lines():
    src = [l for l in open(CORPUS, "rb").read().split(b"\n") if l.strip()]
    out = []
    while len(out) < N:
        out.extend(src)
    return out[:N]


class Daemon:
    def __init__(self, inputs):
        self.dir = tempfile.mkdtemp(prefix="canhgac-inputs-")
        self.http = free_port()
        cfg = f'agency = "bench"\ntime_zone = "UTC"\nstate_dir = "state"\n[http]\nlisten = "127.0.0.1:{self.http}"\n' + inputs
        open(os.path.join(self.dir, "c.toml"), "w").write(cfg)
        self.log = open(os.path.join(self.dir, "d.log"), "w")
        self.proc = subprocess.Popen([BIN, "run", "--config", os.path.join(self.dir, "c.toml")],
                                     stdout=subprocess.DEVNULL, stderr=self.log)
        deadline = time.time() + 60
        while time.time() < deadline:
            if "ready:" in open(os.path.join(self.dir, "d.log")).read():
                return
            time.sleep(0.05)
        raise SystemExit("daemon not ready: " + open(os.path.join(self.dir, "d.log")).read())

    def metric(self, series):
        try:
            body = urllib.request.urlopen(f"http://127.0.0.1:{self.http}/metrics", timeout=10).read().decode()
        except OSError:
            return 0
        for l in body.splitlines():
            if l.startswith(series + " "):
                return float(l.split()[-1])
        return 0

    def wait_lines(self, name, n, timeout=600, quiet=None):
        """Seconds until the input has read n lines; with quiet, stops when the count has not
        moved for that long (UDP: what was lost never comes)."""
        start = time.time()
        last, last_change = -1, time.time()
        while True:
            got = self.metric(f'canhgac_input_lines_total{{input="{name}"}}')
            now = time.time()
            if got >= n:
                return now - start, got
            if got != last:
                last, last_change = got, now
            if quiet and now - last_change > quiet:
                return last_change - start, got
            if now - start > timeout:
                raise SystemExit(f"{name}: {got} of {n} lines after {timeout}s")
            time.sleep(0.02)

    def stop(self):
        self.proc.kill()
        self.proc.wait()
        shutil.rmtree(self.dir, ignore_errors=True)


def bench_file(data):
    d = Daemon('[[input]]\nname = "file"\ntype = "syslog"\npath = "auth.log"\nstart = "beginning"\n')
    try:
        path = os.path.join(d.dir, "auth.log")
        with open(path, "ab") as f:
            f.write(b"\n".join(data) + b"\n")
        secs, got = d.wait_lines("file", N)
        return secs, got, None
    finally:
        d.stop()


def bench_tcp(data):
    port = free_port()
    d = Daemon(f'[[input]]\nname = "tcp"\ntype = "syslog-tcp"\nlisten = "127.0.0.1:{port}"\n')
    try:
        msgs = [b"<38>" + l + b"\n" for l in data]
        parts = [b"".join(msgs[i::CONNS]) for i in range(CONNS)]
        def send(p):
            s = socket.create_connection(("127.0.0.1", port))
            s.sendall(p)
            s.close()
        threads = [threading.Thread(target=send, args=(p,)) for p in parts]
        for t in threads:
            t.start()
        secs, got = d.wait_lines("tcp", N)
        for t in threads:
            t.join()
        return secs, got, None
    finally:
        d.stop()


def bench_udp(data):
    port = free_port()
    d = Daemon(f'[[input]]\nname = "udp"\ntype = "syslog-udp"\nlisten = "127.0.0.1:{port}"\n')
    try:
        msgs = [b"<38>" + l for l in data]
        s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        t0 = time.time()
        for m in msgs:
            s.sendto(m, ("127.0.0.1", port))
        send_secs = time.time() - t0
        secs, got = d.wait_lines("udp", N, quiet=2.0)
        secs = max(secs, send_secs)
        drops = {r: d.metric(f'canhgac_input_dropped_total{{input="udp",reason="{r}"}}')
                 for r in ("queue_full", "socket_buffer")}
        return secs, got, (send_secs, drops)
    finally:
        d.stop()


def journal_remote():
    for p in ("/usr/lib/systemd/systemd-journal-remote", "/lib/systemd/systemd-journal-remote"):
        if os.path.exists(p):
            return p
    raise SystemExit("systemd-journal-remote not found (apt-get install systemd-journal-remote)")


def bench_journal(data):
    jdir = tempfile.mkdtemp(prefix="canhgac-journal-")
    export = bytearray()
    for i, l in enumerate(data):
        # auth.log line: "Mmm dd hh:mm:ss host prog[pid]: msg" -> identifier, pid, message
        parts = l.split(b" ", 4)
        rest = parts[4] if len(parts) > 4 else l
        ident, _, msg = rest.partition(b": ")
        name, _, pid = ident.partition(b"[")
        export += b"__REALTIME_TIMESTAMP=%d\n__MONOTONIC_TIMESTAMP=%d\n_BOOT_ID=0123456789abcdef0123456789abcdef\n_HOSTNAME=bench\nSYSLOG_IDENTIFIER=%s\n_PID=%s\nMESSAGE=%s\n\n" % (
            1700000000000000 + i, 1000 + i, name, pid.rstrip(b"]") or b"1", msg)
    subprocess.run([journal_remote(), f"--output={jdir}/bench.journal", "-"], input=bytes(export),
                   check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    d = Daemon(f'[[input]]\nname = "journal"\ntype = "journal"\ndirectory = "{jdir}"\nstart = "beginning"\n')
    try:
        secs, got = d.wait_lines("journal", N)
        return secs, got, None
    finally:
        d.stop()
        shutil.rmtree(jdir, ignore_errors=True)


def main():
    data = lines()
    mb = sum(len(l) + 1 for l in data) / 1e6
    print(f"inputs benchmark: {N} lines ({mb:.1f} MB) of {os.path.basename(CORPUS)}, "
          f"release build, {os.cpu_count()} CPUs, load {os.getloadavg()[0]:.1f}")
    rows = []
    for name, fn in (("file (tail)", bench_file), (f"syslog tcp ({CONNS} conns)", bench_tcp),
                     ("syslog udp", bench_udp), ("journal", bench_journal)):
        secs, got, extra = fn(data)
        rows.append((name, secs, got, extra))
    ref = rows[0][1] and N / rows[0][1]
    print(f"{'input':<24}{'lines':>10}{'seconds':>10}{'lines/s':>12}{'vs file':>9}  notes")
    for name, secs, got, extra in rows:
        rate = got / secs if secs else 0
        note = ""
        if extra:
            send_secs, drops = extra
            lost = N - got
            note = (f"sent at {N / send_secs:,.0f}/s; received {int(got)}, lost {lost} "
                    f"({100 * lost / N:.2f}%: queue_full {int(drops['queue_full'])}, "
                    f"socket_buffer {int(drops['socket_buffer'])})")
        print(f"{name:<24}{int(got):>10}{secs:>10.2f}{rate:>12,.0f}{rate / ref if ref else 0:>8.2f}x  {note}")


if __name__ == "__main__":
    main()
