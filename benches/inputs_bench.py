#!/usr/bin/env python3
"""Inputs benchmark: canhgac's inputs, and its syslog receivers side by side with rsyslog's.

In one run, measures how fast `canhgac run` takes lines in (until
canhgac_input_lines_total reaches the count, so matched, detected and committed batches
included), and what each message costs it in CPU time:

  file     LINES lines of real auth.log (../shared/corpus, repeated) appended at once to a
           tailed file, and LINES synthetic sshd lines (the same ones the receivers get, per
           number of attackers): the references the other rows are set against ("vs file")
  tcp      LINES sshd failures over 1 and 4 connections (CONNS), RFC 3164 and RFC 5424,
           newline framing, sent unthrottled
  udp      sshd failures paced at 10k, 50k and 100k msg/s (UDP_RATES) for UDP_SECS seconds;
           sent, received and lost
  journal  the LINES corpus lines as entries of a journal file built beforehand by
           systemd-journal-remote: with the line's fields only (7), and with the 25 that
           journald stores for a message from sshd

The sshd failures ("Failed password for invalid user X from A.B.C.D port P ssh2") cycle
through ATTACKERS distinct source addresses (1,000 and 20,000), so canhgac's detector tracks
that many keys. Every tcp and udp row is run against canhgac and then against a private
rsyslogd given the same messages, each receiver started afresh for the row (an empty detector,
an empty queue). CPU time is utime + stime of the receiver's process (all threads) from
/proc/<pid>/stat over the row, per message received.

Prints one table and the issue's bars. Needs BIN (default target/release/canhgac; inputs.sh
builds it), rsyslogd, journalctl and systemd-journal-remote; gcc for the UDP sender (without
it a Python sender is used, which may fall short of 100k msg/s: the achieved rate is printed).
Every process it starts is killed on exit.
"""
import os, shutil, socket, subprocess, sys, tempfile, threading, time, urllib.request

from benchlib import LineCounter, write_rsyslog_conf

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
BIN = os.environ.get("BIN", os.path.join(ROOT, "target/release/canhgac"))
N = int(os.environ.get("LINES", "200000"))
CONNS = [int(c) for c in os.environ.get("CONNS", "1,4").split(",")]
ATTACKERS = [int(a) for a in os.environ.get("ATTACKERS", "1000,20000").split(",")]
UDP_RATES = [int(r) for r in os.environ.get("UDP_RATES", "10000,50000,100000").split(",")]
UDP_SECS = float(os.environ.get("UDP_SECS", "3"))
CORPUS = os.environ.get("CORPUS", os.path.join(ROOT, "../shared/corpus/openssh_2k.log"))
# A UDP row ends when the receiver's count has not moved for this long after the last send.
UDP_QUIET = 1.0
TICK = os.sysconf("SC_CLK_TCK")
# rsyslog's output goes to tmpfs so that the figure is its receiving and formatting, not a disk.
SCRATCH = "/dev/shm" if os.path.isdir("/dev/shm") else None
INSTALL_RSYSLOG = ("rsyslogd not found: install it with `apt-get install rsyslog` (the bench starts "
                   "a private rsyslogd of its own; the system service may stay stopped)")


def rsyslogd():
    path = os.environ.get("RSYSLOGD") or shutil.which("rsyslogd") or shutil.which(
        "rsyslogd", path="/usr/sbin:/sbin")
    if not path:
        raise SystemExit(INSTALL_RSYSLOG)
    return path


def free_port(kind=socket.SOCK_STREAM):
    with socket.socket(socket.AF_INET, kind) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def cpu_secs(pid):
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / TICK


def corpus_lines():
    src = [l for l in open(CORPUS, "rb").read().split(b"\n") if l.strip()]
    out = []
    while len(out) < N:
        out.extend(src)
    return out[:N]


def sshd_messages(count, attackers, form):
    """count sshd failures from attackers addresses in turn, as RFC 3164 or 5424 messages, or
    (form "file") as the auth.log lines rsyslog writes for them."""
    now = time.gmtime()
    stamp3164 = time.strftime("%b %e %H:%M:%S", now).encode()
    stamp5424 = time.strftime("%Y-%m-%dT%H:%M:%S.000000+00:00", now).encode()
    out = []
    for i in range(count):
        a = i % attackers + 1
        pid = 1000 + i % 30000
        text = b"Failed password for invalid user u%d from 10.%d.%d.%d port %d ssh2" % (
            i % 5000, a >> 16 & 255, a >> 8 & 255, a & 255, 1024 + i % 60000)
        if form == "5424":
            out.append(b"<38>1 %s bench sshd %d - - %s" % (stamp5424, pid, text))
        else:
            line = b"%s bench sshd[%d]: %s" % (stamp3164, pid, text)
            out.append(line if form == "file" else b"<38>" + line)
    return out


def wait_for(recv, n, start, timeout=600, quiet=None):
    """(seconds from start until recv has n messages, its count); with quiet, stops when the
    count has not moved for that long (UDP: what was lost never comes)."""
    last, last_change = -1, time.time()
    while True:
        got = recv.received()
        now = time.time()
        if got >= n:
            return now - start, got
        if got != last:
            last, last_change = got, now
        if quiet and now - last_change > quiet:
            return last_change - start, got
        if now - start > timeout:
            raise SystemExit(f"{recv.label}: {got} of {n} messages after {timeout}s")
        time.sleep(recv.poll)


class Daemon:
    """`canhgac run` with one input."""
    label = "canhgac"
    # Every poll is a scrape that costs the daemon CPU time; 20 ms is 2 % of a 1 s row.
    poll = 0.02

    def __init__(self, name, input_toml):
        self.name = name
        self.dir = tempfile.mkdtemp(prefix="canhgac-inputs-")
        self.http = free_port()
        cfg = (f'agency = "bench"\ntime_zone = "UTC"\nstate_dir = "state"\n[http]\n'
               f'listen = "127.0.0.1:{self.http}"\n[[input]]\nname = "{name}"\n' + input_toml)
        open(os.path.join(self.dir, "c.toml"), "w").write(cfg)
        self.log = open(os.path.join(self.dir, "d.log"), "w")
        self.proc = subprocess.Popen([BIN, "run", "--config", os.path.join(self.dir, "c.toml")],
                                     stdout=subprocess.DEVNULL, stderr=self.log)
        self.pid = self.proc.pid
        deadline = time.time() + 60
        while time.time() < deadline:
            if "ready:" in open(os.path.join(self.dir, "d.log")).read():
                return
            time.sleep(0.05)
        self.stop()
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

    def received(self):
        return int(self.metric(f'canhgac_input_lines_total{{input="{self.name}"}}'))

    def drops(self):
        return {r: int(self.metric(f'canhgac_input_dropped_total{{input="{self.name}",reason="{r}"}}'))
                for r in ("queue_full", "socket_buffer")}

    def stop(self):
        self.proc.kill()
        self.proc.wait()
        self.log.close()
        shutil.rmtree(self.dir, ignore_errors=True)


def listening(proto, port):
    """Whether something is bound to 127.0.0.1:port (TCP: listening)."""
    local = "0100007F:%04X" % port
    with open(f"/proc/net/{proto}") as f:
        for line in f.readlines()[1:]:
            fields = line.split()
            if fields[1] == local and (proto == "udp" or fields[3] == "0A"):
                return True
    return False


class Rsyslog:
    """A private rsyslogd with one imtcp or imudp input on 127.0.0.1:port, writing every
    message as Debian writes auth.log (RSYSLOG_TraditionalFileFormat: the conversion canhgac
    makes too) to a file on tmpfs. rsyslog writes one line per message (it escapes control
    characters), so counting newlines is exact, and reading only what was appended since the
    last poll keeps the counting cheap; none of it runs in rsyslogd. Its queues and threads
    are left at their defaults: rsyslog as it is deployed."""
    label = "rsyslog"
    # Polling costs rsyslogd nothing, and it takes a tcp row in a few tenths of a second.
    poll = 0.002

    def __init__(self, proto, port):
        self.dir = tempfile.mkdtemp(prefix="canhgac-rsyslog-", dir=SCRATCH)
        module = {"tcp": "imtcp", "udp": "imudp"}[proto]
        conf, out = write_rsyslog_conf(self.dir, module, port)
        self.log = open(os.path.join(self.dir, "rsyslogd.log"), "w")
        self.proc = subprocess.Popen(
            [rsyslogd(), "-n", "-f", conf, "-i", os.path.join(self.dir, "rsyslogd.pid")],
            stdout=self.log, stderr=subprocess.STDOUT)
        self.pid = self.proc.pid
        self.out = LineCounter(out)
        deadline = time.time() + 30
        while not listening(proto, port):
            if self.proc.poll() is not None or time.time() > deadline:
                self.stop()
                raise SystemExit("rsyslogd did not start: " + open(self.log.name).read())
            time.sleep(0.02)

    def received(self):
        return self.out.count()

    def stop(self):
        self.proc.kill()
        self.proc.wait()
        self.out.close()
        self.log.close()
        shutil.rmtree(self.dir, ignore_errors=True)


class Run:
    """One receiver's figures in one row."""

    def __init__(self, got, secs, cpu, sent=None, send_secs=None, drops=None):
        self.got, self.secs, self.cpu = got, secs, cpu
        self.sent, self.send_secs, self.drops = sent, send_secs, drops

    @property
    def rate(self):
        return self.got / self.secs if self.secs else 0

    @property
    def us_per_msg(self):
        return 1e6 * self.cpu / self.got if self.got else float("inf")

    @property
    def lost(self):
        return 100 * (self.sent - self.got) / self.sent if self.sent else None


def bench_file(data, name):
    d = Daemon(name, 'type = "syslog"\npath = "auth.log"\nstart = "beginning"\n')
    try:
        cpu0, start = cpu_secs(d.pid), time.time()
        with open(os.path.join(d.dir, "auth.log"), "ab") as f:
            f.write(b"\n".join(data) + b"\n")
        secs, got = wait_for(d, len(data), start)
        return Run(got, secs, cpu_secs(d.pid) - cpu0)
    finally:
        d.stop()


def run_tcp(recv, port, msgs, conns):
    parts = [b"".join(m + b"\n" for m in msgs[i::conns]) for i in range(conns)]

    def send(p):
        with socket.create_connection(("127.0.0.1", port)) as s:
            s.sendall(p)
    threads = [threading.Thread(target=send, args=(p,)) for p in parts]
    cpu0, start = cpu_secs(recv.pid), time.time()
    for t in threads:
        t.start()
    secs, got = wait_for(recv, len(msgs), start)
    cpu = cpu_secs(recv.pid) - cpu0
    for t in threads:
        t.join()
    return Run(got, secs, cpu)


def bench_tcp(msgs, conns, receiver):
    port = free_port()
    if receiver == "canhgac":
        recv = Daemon("tcp", f'type = "syslog-tcp"\nlisten = "127.0.0.1:{port}"\n')
    else:
        recv = Rsyslog("tcp", port)
    try:
        return run_tcp(recv, port, msgs, conns)
    finally:
        recv.stop()


# Sends the lines of FILE as datagrams to 127.0.0.1:PORT at RATE/s: every millisecond it tops
# up to the number due by then, in sendmmsg batches, so the pace holds at 100k/s with little CPU
# taken from the receivers on a small machine. Prints "sent seconds".
UDP_SENDER_C = r"""
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>

static double now(void) {
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return t.tv_sec + t.tv_nsec / 1e9;
}

int main(int argc, char **argv) {
    if (argc != 4) { fprintf(stderr, "usage: udpsend PORT RATE FILE\n"); return 2; }
    double rate = atof(argv[2]);
    FILE *f = fopen(argv[3], "rb");
    if (!f) { perror(argv[3]); return 1; }
    fseek(f, 0, SEEK_END);
    long size = ftell(f);
    rewind(f);
    char *buf = malloc(size);
    if (fread(buf, 1, size, f) != (size_t)size) { perror("fread"); return 1; }
    long count = 0;
    for (long i = 0; i < size; i++) count += buf[i] == '\n';
    struct iovec *iov = malloc(count * sizeof *iov);
    char *p = buf;
    for (long i = 0; i < count; i++) {
        char *e = memchr(p, '\n', buf + size - p);
        iov[i].iov_base = p;
        iov[i].iov_len = e - p;
        p = e + 1;
    }
    int s = socket(AF_INET, SOCK_DGRAM, 0);
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons(atoi(argv[1]))};
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    if (connect(s, (struct sockaddr *)&a, sizeof a)) { perror("connect"); return 1; }
    struct mmsghdr m[64];
    long sent = 0;
    double start = now();
    while (sent < count) {
        long due = (long)((now() - start) * rate);
        if (due > count) due = count;
        while (sent < due) {
            int k = due - sent > 64 ? 64 : due - sent;
            memset(m, 0, sizeof m);
            for (int j = 0; j < k; j++) {
                m[j].msg_hdr.msg_iov = &iov[sent + j];
                m[j].msg_hdr.msg_iovlen = 1;
            }
            int r = sendmmsg(s, m, k, 0);
            if (r < 0) { perror("sendmmsg"); return 1; }
            sent += r;
        }
        struct timespec ms = {0, 1000000};
        nanosleep(&ms, NULL);
    }
    printf("%ld %.6f\n", sent, now() - start);
    return 0;
}
"""


def build_udp_sender(workdir):
    """Path of the compiled C sender, or None without gcc (the Python sender is used then)."""
    if not shutil.which("gcc"):
        return None
    src, exe = os.path.join(workdir, "udpsend.c"), os.path.join(workdir, "udpsend")
    open(src, "w").write(UDP_SENDER_C)
    subprocess.run(["gcc", "-O2", "-o", exe, src], check=True)
    return exe


def udp_send(sender, port, rate, msgs, path):
    """(sent, seconds): msgs as datagrams at rate/s, by the C sender reading path, or by Python."""
    if sender:
        out = subprocess.run([sender, str(port), str(rate), path], check=True,
                             capture_output=True, text=True).stdout.split()
        return int(out[0]), float(out[1])
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sent, start = 0, time.monotonic()
    while sent < len(msgs):
        due = min(len(msgs), int((time.monotonic() - start) * rate))
        while sent < due:
            s.sendto(msgs[sent], ("127.0.0.1", port))
            sent += 1
        time.sleep(0.001)
    return sent, time.monotonic() - start


def bench_udp(msgs, path, rate, sender, receiver):
    port = free_port(socket.SOCK_DGRAM)
    if receiver == "canhgac":
        recv = Daemon("udp", f'type = "syslog-udp"\nlisten = "127.0.0.1:{port}"\n')
    else:
        recv = Rsyslog("udp", port)
    try:
        cpu0, start = cpu_secs(recv.pid), time.time()
        sent, send_secs = udp_send(sender, port, rate, msgs, path)
        secs, got = wait_for(recv, sent, start, quiet=UDP_QUIET)
        cpu = cpu_secs(recv.pid) - cpu0
        drops = recv.drops() if receiver == "canhgac" else None
        return Run(got, max(secs, send_secs), cpu, sent, send_secs, drops)
    finally:
        recv.stop()


def journal_remote():
    for p in ("/usr/lib/systemd/systemd-journal-remote", "/lib/systemd/systemd-journal-remote"):
        if os.path.exists(p):
            return p
    raise SystemExit("systemd-journal-remote not found (apt-get install systemd-journal-remote)")


# What journald stores besides the line's fields for a message sshd sends to /dev/log (as
# `journalctl -o export` shows one on Debian 12): the "journal, journald's fields" row reads
# entries of that size, beside the row of the line's fields only.
JOURNALD_FIELDS = (b"_TRANSPORT=syslog\nPRIORITY=6\nSYSLOG_FACILITY=4\n_UID=0\n_GID=0\n"
                   b"_COMM=sshd\n_EXE=/usr/sbin/sshd\n_CMDLINE=sshd: root [priv]\n"
                   b"_CAP_EFFECTIVE=1ffffffffff\n_SELINUX_CONTEXT=unconfined\n"
                   b"_SYSTEMD_CGROUP=/system.slice/ssh.service\n_SYSTEMD_UNIT=ssh.service\n"
                   b"_SYSTEMD_SLICE=system.slice\n"
                   b"_SYSTEMD_INVOCATION_ID=5f4dcc3b5aa765d61d8327deb882cf99\n"
                   b"_MACHINE_ID=3f1b6a4c2d8e4f0a9b7c6d5e4f3a2b1c\n_RUNTIME_SCOPE=system\n")


def bench_journal(data, journald_fields=False):
    jdir = tempfile.mkdtemp(prefix="canhgac-journal-")
    export = bytearray()
    for i, l in enumerate(data):
        # auth.log line: "Mmm dd hh:mm:ss host prog[pid]: msg" -> identifier, pid, message
        parts = l.split(b" ", 4)
        rest = parts[4] if len(parts) > 4 else l
        ident, _, msg = rest.partition(b": ")
        name, _, pid = ident.partition(b"[")
        pid = pid.rstrip(b"]") or b"1"
        t = 1700000000000000 + i
        export += b"__REALTIME_TIMESTAMP=%d\n__MONOTONIC_TIMESTAMP=%d\n_BOOT_ID=0123456789abcdef0123456789abcdef\n_HOSTNAME=bench\nSYSLOG_IDENTIFIER=%s\n_PID=%s\n" % (
            t, 1000 + i, name, pid)
        if journald_fields:
            export += JOURNALD_FIELDS + b"SYSLOG_PID=%s\nSYSLOG_TIMESTAMP=%s \n_SOURCE_REALTIME_TIMESTAMP=%d\n" % (
                pid, b" ".join(parts[:3]), t - 7)
        export += b"MESSAGE=%s\n\n" % msg
    subprocess.run([journal_remote(), f"--output={jdir}/bench.journal", "-"], input=bytes(export),
                   check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        d = Daemon("journal", f'type = "journal"\ndirectory = "{jdir}"\nstart = "beginning"\n')
        try:
            cpu0, start = cpu_secs(d.pid), time.time()
            secs, got = wait_for(d, len(data), start)
            return Run(got, secs, cpu_secs(d.pid) - cpu0)
        finally:
            d.stop()
    finally:
        shutil.rmtree(jdir, ignore_errors=True)


def k(n):
    return f"{n // 1000}k" if n % 1000 == 0 else str(n)


def main():
    rsyslog = rsyslogd()
    version = " ".join(subprocess.run([rsyslog, "-v"], capture_output=True, text=True)
                       .stdout.split(" compiled")[0].split())
    work = tempfile.mkdtemp(prefix="canhgac-inputs-bench-")
    try:
        sender = build_udp_sender(work)
        corpus = corpus_lines()
        mb = sum(len(l) + 1 for l in corpus) / 1e6
        print(f"inputs benchmark: {N} lines ({mb:.1f} MB) of {os.path.basename(CORPUS)}; tcp {N} "
              f"sshd failures; udp {UDP_SECS:g} s per rate; attackers {', '.join(map(str, ATTACKERS))}")
        print(f"canhgac {BIN}; {version}; udp sender {'C (gcc)' if sender else 'Python'}; "
              f"{os.cpu_count()} CPUs, load {os.getloadavg()[0]:.1f}", flush=True)
        rows = []  # (label, canhgac Run, rsyslog Run or None, reference Run or None, kind)
        ref_corpus = bench_file(corpus, "file")
        rows.append(("file, auth.log corpus", ref_corpus, None, None, "file"))
        refs = {}
        for att in ATTACKERS:
            refs[att] = bench_file(sshd_messages(N, att, "file"), "file")
            rows.append((f"file, sshd {k(att)} att", refs[att], None, None, "file"))
        for att in ATTACKERS:
            for form in ("3164", "5424"):
                msgs = sshd_messages(N, att, form)
                for conns in CONNS:
                    c = bench_tcp(msgs, conns, "canhgac")
                    r = bench_tcp(msgs, conns, "rsyslog")
                    rows.append((f"tcp {form} x{conns} {k(att)} att", c, r, refs[att], "tcp"))
                    print(f"  done: {rows[-1][0]}", file=sys.stderr, flush=True)
        for att in ATTACKERS:
            for rate in UDP_RATES:
                msgs = sshd_messages(int(rate * UDP_SECS), att, "3164")
                path = os.path.join(work, "udp.msgs")
                with open(path, "wb") as f:
                    f.write(b"".join(m + b"\n" for m in msgs))
                c = bench_udp(msgs, path, rate, sender, "canhgac")
                r = bench_udp(msgs, path, rate, sender, "rsyslog")
                rows.append((f"udp {k(rate)}/s {k(att)} att", c, r, None, "udp"))
                print(f"  done: {rows[-1][0]}", file=sys.stderr, flush=True)
        rows.append(("journal, line's fields", bench_journal(corpus), None, ref_corpus, "journal"))
        rows.append(("journal, journald's", bench_journal(corpus, journald_fields=True), None,
                      ref_corpus, "journal"))
    finally:
        shutil.rmtree(work, ignore_errors=True)
    report(rows)


def report(rows):
    def block(run):
        if run is None:
            return f"{'':>9}{'':>10}{'':>7}{'':>7}"
        lost = f"{run.lost:.2f}" if run.lost is not None else "-"
        return f"{run.got:>9}{run.rate:>10,.0f}{lost:>7}{run.us_per_msg:>7.2f}"

    print()
    print(f"{'':<24} | {'canhgac':<33} | {'rsyslog':<33} | canhgac vs rsyslog")
    print(f"{'row':<24} | {'recv':>9}{'msg/s':>10}{'lost%':>7}{'us/msg':>7} | "
          f"{'recv':>9}{'msg/s':>10}{'lost%':>7}{'us/msg':>7} | "
          f"{'rate':>6}{'lost pp':>8}{'cpu':>6}  {'missed':<9} notes")
    bars = {"rate": "tcp rate >= 0.8x rsyslog's", "loss": "udp loss <= rsyslog's",
            "cpu": "cpu/msg <= 1.5x rsyslog's", "journal": "journal >= 0.5x file"}
    results = {bar: [] for bar in bars}  # bar -> [(row, figure, met)]
    for label, c, r, ref, kind in rows:
        notes, ratios, missed = [], f"{'':>20}", []
        if ref:
            notes.append(f"canhgac {c.rate / ref.rate:.2f}x file")
            if kind == "journal":
                met = c.rate / ref.rate >= 0.5
                results["journal"].append((label, f"{c.rate / ref.rate:.2f}x", met))
                if not met:
                    missed.append("journal")
        if r:
            rate_x = c.rate / r.rate
            cpu_x = c.us_per_msg / r.us_per_msg if r.cpu else float("inf")
            if kind == "tcp":
                checks = [("rate", f"{rate_x:.2f}x", rate_x >= 0.8)]
                lost = "-"
            else:
                lost_pp = c.lost - r.lost
                checks = [("loss", f"{lost_pp:+.2f} pp", lost_pp <= 0)]
                lost = f"{lost_pp:+.2f}"
                notes.append(f"sent {c.sent} at {c.sent / c.send_secs:,.0f}/s | {r.sent} at "
                             f"{r.sent / r.send_secs:,.0f}/s; canhgac drops queue_full "
                             f"{c.drops['queue_full']}, socket_buffer {c.drops['socket_buffer']}")
            ratios = f"{rate_x:>6.2f}{lost:>8}{cpu_x:>6.2f}"
            checks.append(("cpu", f"{cpu_x:.2f}x", cpu_x <= 1.5))
            for bar, figure, met in checks:
                results[bar].append((label, figure, met))
                if not met:
                    missed.append(bar)
        print(f"{label:<24} | {block(c)} | {block(r)} | {ratios}  {','.join(missed):<9} "
              f"{'; '.join(notes)}".rstrip())
    print()
    print("msg/s: messages received per second until the last one came; lost pp: canhgac's loss"
          " minus rsyslog's, in percentage points; cpu: canhgac's us/msg over rsyslog's.")
    for bar, name in bars.items():
        misses = [f"{label} {figure}" for label, figure, met in results[bar] if not met]
        print(f"bar {name + ':':<28} met in {len(results[bar]) - len(misses)} of "
              f"{len(results[bar])} rows" + (f"; missed: {', '.join(misses)}" if misses else ""))


if __name__ == "__main__":
    main()
