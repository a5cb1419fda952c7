#!/usr/bin/env python3
"""How long reloading IoC feeds pauses the daemon's log pipeline, against the issue's bar: a
changed feed is loaded beside the running one and swapped in, on SIGHUP too; the longest pipeline
pause during a reload of two 1 M-indicator feeds is at most 50 ms while 20 k lines/s are tailed.

`canhgac run` tails one nginx access log (combined format) with two `ip` feeds of INDICATORS
entries each: web-ioc-client, bound to each feed, looks every line's client address up in both.
A writer thread appends RATE lines/s in 1 ms slices for the whole measurement; one line in 1000
comes from a range every version of both feeds lists, so that hits show the lookups at work.
A sampler polls /metrics over one kept-alive connection every POLL_MS and records
canhgac_input_lines_total{input="web"}, which the pipeline publishes after every read that got
lines: while the writer writes, the counter stands still only while the pipeline does.

Phases: baseline (no reload, PHASE_S); file (both feed files replaced by a copy and a rename;
the daemon's reloader looks every second and reads a file once it is a second old); sighup (both
replaced again, then SIGHUP: config, rules and changed feeds). A reload phase runs from the
replacement for PHASE_S, and on until a second after both loads are logged (60 s at most).

Per phase: the longest pause (the longest span over which polls saw the counter stand still: a
lower bound, blind to gaps in the polling itself), intervals between the polls that saw it rise
(the pause as the issue defines it, to within one poll), poll gaps, lines/s written and read,
the writer's own longest gap, IoC hits, the loads logged and the daemon's CPU time.

Python 3 standard library only. Usage: benches/feeds.sh (after feeds.py), or alone. Environment:
BIN (default target/release/canhgac), BENCH_DIR (default target/bench; feeds kept in
feeds-reload/ between runs), RELOAD_RATE (lines/s, default 20000), RELOAD_PHASE_S (default 5),
RELOAD_INDICATORS (per feed, default 1000000), RELOAD_POLL_MS (default 2), RELOAD_CLIENTS
(distinct client addresses, default 4096).
"""

import bisect
import ctypes
import datetime as dt
import http.client
import os
import random
import re
import shutil
import signal
import statistics
import subprocess
import sys
import threading
import time

import feeds
from benchlib import parse_metrics

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
BIN = os.environ.get("BIN", os.path.join(ROOT, "target/release/canhgac"))
WORK = os.path.join(os.environ.get("BENCH_DIR", os.path.join(ROOT, "target/bench")), "feeds-reload")
RATE = float(os.environ.get("RELOAD_RATE", "20000"))
PHASE_S = float(os.environ.get("RELOAD_PHASE_S", "5"))
N = int(os.environ.get("RELOAD_INDICATORS", "1000000"))
POLL_S = float(os.environ.get("RELOAD_POLL_MS", "2")) / 1000
BAR_MS = 50
LOAD_TIMEOUT_S = 60
FEEDS = ["bench-a", "bench-b"]
VERSIONS = 3  # at start, after the file phase, after the sighup phase
CANARY_RANGE = "203.0.113.0/28"
CANARY_EVERY = 1000
CLIENT_PREFIX = "198.18."
# Well under the detector's max_keys (20000): past it, every line from an untracked client walks
# every rate-counted client to forget idle ones, and that, not the feeds, would set the pauses.
CLIENTS = int(os.environ.get("RELOAD_CLIENTS", "4096"))
UA = "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/124.0 Safari/537.36"
PATHS = ["/", "/index.php", "/tin-tuc/thong-bao-2026.html", "/static/css/app.css", "/images/logo.png",
         "/van-ban/quyet-dinh-123.pdf", "/lien-he", "/favicon.ico"]
MONTHS = ["Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"]
RE_LOG = re.compile(r"^(\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d+)Z\s+(\w+) (.*)$")
RE_LOADED = re.compile(r'feed loaded feed="?([a-z0-9-]+)"? indicators=(\d+) skipped=(\d+) seconds=([0-9.e+-]+)')
RE_LINES = re.compile(rb'^canhgac_input_lines_total\{input="web"\} (\d+)', re.M)
# Log times are wall clock; everything measured here is monotonic.
WALL_MINUS_MONO = time.time() - time.monotonic()


def log(msg):
    print(f"feeds_reload: {msg}", file=sys.stderr, flush=True)


def write_versions():
    """The feed files of every version, written once per INDICATORS and kept: generating them
    takes longer than the measurement, and must not compete with the daemon for the CPUs."""
    gen = os.path.join(WORK, f"gen-{N}")
    marker = os.path.join(gen, "done-v1")
    if os.path.exists(marker):
        return gen
    log(f"writing {len(FEEDS)} x {VERSIONS} ip feeds of {N:,} indicators into {gen} (kept between runs)")
    os.makedirs(gen, exist_ok=True)
    for f_i, name in enumerate(FEEDS):
        for v in range(VERSIONS):
            rng = random.Random(1000 + 10 * f_i + v)
            with open(os.path.join(gen, f"{name}-{v}.txt"), "w") as f:
                f.write(f"# {name} version {v}\n{CANARY_RANGE}\n")
                written, i = 1, 0
                while written < N:
                    entry = feeds.feed_ip(rng, i)
                    i += 1
                    # Listed benign clients would open incidents, as many as the version happens
                    # to cover: commits that differ between phases for no reason of the reload.
                    if not entry.startswith(CLIENT_PREFIX):
                        f.write(entry + "\n")
                        written += 1
    open(marker, "w").close()
    return gen


def install(gen, live, version):
    """Replaces every live feed file as a fetch job would: a new file, renamed over the old."""
    for name in FEEDS:
        tmp = os.path.join(live, f".{name}.tmp")
        shutil.copyfile(os.path.join(gen, f"{name}-{version}.txt"), tmp)
        os.rename(tmp, os.path.join(live, f"{name}.txt"))


def write_config(live, weblog):
    path = os.path.join(WORK, "canhgac.toml")
    with open(path, "w") as f:
        f.write(f'agency = "bench"\ntime_zone = "UTC"\nstate_dir = "{os.path.join(WORK, "state")}"\n\n'
                f'[http]\nlisten = "127.0.0.1:0"\n\n'
                f'[[input]]\nname = "web"\npath = "{weblog}"\ntype = "nginx"\nstart = "beginning"\n')
        for name in FEEDS:
            f.write(f'\n[[feed]]\nname = "{name}"\npath = "{os.path.join(live, name + ".txt")}"\nkind = "ip"\n'
                    f'category = "malware"\nseverity = "high"\n')
    return path


def die_with_parent():
    # Should this script be killed outright, the kernel stops the daemon too (Linux).
    ctypes.CDLL(None, use_errno=True).prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG


class Daemon:
    def __init__(self, config):
        self.err_path = os.path.join(WORK, "daemon.err")
        self.err = open(self.err_path, "wb")
        env = dict(os.environ, CANHGAC_LOG="info")
        for k in ("NOTIFY_SOCKET", "WATCHDOG_USEC", "WATCHDOG_PID", "JOURNAL_STREAM"):
            env.pop(k, None)
        self.proc = subprocess.Popen([BIN, "run", "--config", config], stdin=subprocess.DEVNULL,
                                     stdout=self.err, stderr=self.err, env=env, preexec_fn=die_with_parent)
        self.port = None

    def log_lines(self):
        """[(monotonic time, level, message)] of the daemon's log so far."""
        with open(self.err_path, encoding="utf-8", errors="replace") as f:
            out = []
            for line in f:
                m = RE_LOG.match(line)
                if m:
                    wall = dt.datetime.strptime(m[1][:26], "%Y-%m-%dT%H:%M:%S.%f").replace(
                        tzinfo=dt.timezone.utc).timestamp()
                    out.append((wall - WALL_MINUS_MONO, m[2], m[3]))
            return out

    def wait_ready(self, timeout=120):
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                sys.exit(f"feeds_reload: canhgac run exited ({self.proc.returncode}); see {self.err_path}")
            msgs = [m for _, _, m in self.log_lines()]
            port = next((re.search(r"on http://127\.0\.0\.1:(\d+)", m) for m in msgs if m.startswith("serving ")), None)
            if port and any(m.startswith("ready:") for m in msgs):
                self.port = int(port[1])
                return
            time.sleep(0.05)
        sys.exit(f"feeds_reload: no 'ready:' from canhgac run within {timeout} s; see {self.err_path}")

    def cpu(self):
        """CPU seconds (user + system) of the whole process and of its pipeline thread."""
        def of(stat):
            with open(stat) as f:
                fields = f.read().rsplit(")", 1)[1].split()
            return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
        tasks = f"/proc/{self.proc.pid}/task"
        pipeline = 0.0
        for tid in os.listdir(tasks):
            with open(f"{tasks}/{tid}/comm") as f:
                if f.read().strip() == "pipeline":
                    pipeline = of(f"{tasks}/{tid}/stat")
        return of(f"/proc/{self.proc.pid}/stat"), pipeline

    def metrics(self):
        """{'name{labels}': value} of one scrape, on a connection of its own."""
        conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=10)
        try:
            conn.request("GET", "/metrics")
            body = conn.getresponse().read().decode()
        finally:
            conn.close()
        return parse_metrics(body)

    def stop(self):
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(15)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.err.close()


class Writer(threading.Thread):
    """Appends RATE lines/s, due lines every millisecond, and keeps (time, lines written) per write."""

    def __init__(self, path):
        super().__init__(daemon=True)
        self.fd = os.open(path, os.O_WRONLY | os.O_APPEND)
        self.stop_flag = threading.Event()
        self.writes = []

    def run(self):
        start = time.monotonic()
        written = 0
        stamp_second, stamp = None, ""
        while not self.stop_flag.is_set():
            now = time.monotonic()
            due = int((now - start) * RATE)
            if due > written:
                second = int(now + WALL_MINUS_MONO)
                if second != stamp_second:
                    d = dt.datetime.fromtimestamp(second, dt.timezone.utc)
                    stamp_second = second
                    stamp = f"{d.day:02}/{MONTHS[d.month - 1]}/{d.year}:{d:%H:%M:%S} +0000"
                lines = []
                for i in range(written, due):
                    if i % CANARY_EVERY == 0:
                        ip = f"203.0.113.{i // CANARY_EVERY % 14 + 1}"
                    else:
                        j = i * 7919 % CLIENTS
                        ip = f"{CLIENT_PREFIX}{j >> 8}.{j & 255}"
                    lines.append(f'{ip} - - [{stamp}] "GET {PATHS[i % len(PATHS)]} HTTP/1.1" 200 '
                                 f'{512 + i % 4096} "-" "{UA}"\n')
                os.write(self.fd, "".join(lines).encode())
                written = due
                self.writes.append((time.monotonic(), written))
            time.sleep(max(0.0, start + (int((now - start) * 1000) + 1) / 1000 - time.monotonic()))
        os.close(self.fd)


class Sampler(threading.Thread):
    """Polls the lines counter every POLL_S; keeps (time, value), the time halfway through the
    request (the daemon read the counter somewhere within it)."""

    def __init__(self, port):
        super().__init__(daemon=True)
        self.port = port
        self.stop_flag = threading.Event()
        self.samples = []

    def run(self):
        conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=10)
        next_at = time.monotonic()
        while not self.stop_flag.is_set():
            t0 = time.monotonic()
            conn.request("GET", "/metrics")
            body = conn.getresponse().read()
            t1 = time.monotonic()
            self.samples.append(((t0 + t1) / 2, int(RE_LINES.search(body)[1])))
            next_at = max(next_at + POLL_S, t1)
            time.sleep(max(0.0, next_at - time.monotonic()))
        conn.close()


def pct(values, p):
    s = sorted(values)
    return s[min(len(s) - 1, max(0, int(round(p / 100 * len(s) + 0.5)) - 1))]


def analyse(phase, samples, writes):
    """Figures of the samples and writes between phase['start'] and phase['end']."""
    start, end = phase["start"], phase["end"]
    times = [t for t, _ in samples]
    lo, hi = bisect.bisect_left(times, start), bisect.bisect_right(times, end)
    rises = [i for i in range(max(lo, 1), hi) if samples[i][1] > samples[i - 1][1]]
    intervals = [(samples[b][0] - samples[a][0], a, b) for a, b in zip(rises, rises[1:])]
    # Between two rises seen at a and b, polls a..b-1 saw one value: the pipeline published
    # nothing for at least t[b-1] - t[a], whatever the polling did meanwhile.
    stood = max(((samples[b - 1][0] - samples[a][0], a, b) for _, a, b in intervals), default=(0.0, lo, lo))
    polls = [t2 - t1 for t1, t2 in zip(times[lo:hi], times[lo + 1:hi])]
    wt = [t for t, _ in writes]
    w_lo, w_hi = bisect.bisect_left(wt, start), bisect.bisect_right(wt, end)
    wrote = writes[w_hi - 1][1] - writes[w_lo - 1][1] if w_lo > 0 else writes[w_hi - 1][1]
    longest = max(intervals, default=(0.0, lo, lo))
    return {
        "pause": stood[0] * 1000,
        "pause_at": samples[stood[1]][0] - start,
        "pause_window": (samples[stood[1]][0], samples[stood[2] - 1][0]),
        "pause_hi": (samples[stood[2]][0] - samples[stood[1] - 1][0]) * 1000,
        "p50": pct([i[0] for i in intervals], 50) * 1000,
        "p99": pct([i[0] for i in intervals], 99) * 1000,
        "max": longest[0] * 1000,
        "max_poll_gap": max((samples[i + 1][0] - samples[i][0] for i in range(longest[1], longest[2])),
                            default=0.0) * 1000,
        "poll_p50": statistics.median(polls) * 1000,
        "poll_max": max(polls) * 1000,
        "written": wrote / (end - start),
        "read": (samples[hi - 1][1] - samples[lo][1]) / (samples[hi - 1][0] - samples[lo][0]),
        "writer_gap": max(b - a for a, b in zip(wt[w_lo:w_hi], wt[w_lo + 1:w_hi])) * 1000,
    }


def verdict(r):
    if r["max"] <= BAR_MS:
        return "met"
    if r["pause"] > BAR_MS:
        return "MISSED"
    # The longest interval is the polls' doing when they saw no pause as long.
    return f"unclear: a {r['max_poll_gap']:.0f} ms poll gap"


def loads_since(daemon, since):
    """{feed: (end time, indicators, seconds)} of the loads logged after `since`."""
    out = {}
    for t, _, msg in daemon.log_lines():
        m = RE_LOADED.match(msg)
        if t >= since and m:
            out[m[1]] = (t, int(m[2]), float(m[4]))
    return out


def run_phase(name, daemon, trigger=None):
    """One phase: `trigger()` (a reload) at its start, then PHASE_S, longer until the loads
    it causes are logged."""
    m0, cpu0, py0 = daemon.metrics(), daemon.cpu(), sum(os.times()[:2])
    start = time.monotonic()
    fired = trigger() if trigger else None
    end, deadline = start + PHASE_S, start + max(PHASE_S, LOAD_TIMEOUT_S)
    while time.monotonic() < end or (trigger and len(loads_since(daemon, start)) < len(FEEDS)):
        if daemon.proc.poll() is not None:
            sys.exit(f"feeds_reload: canhgac run died ({daemon.proc.returncode}); see {daemon.err_path}")
        if time.monotonic() > deadline:
            log(f"{name}: feeds not all reloaded within {LOAD_TIMEOUT_S} s; see {daemon.err_path}")
            break
        time.sleep(0.05)
    loads = loads_since(daemon, start)
    if trigger and loads:
        end = max(end, max(t for t, _, _ in loads.values()) + 1.0)
        time.sleep(max(0.0, end - time.monotonic()))
    end = time.monotonic()
    m1, cpu1, py1 = daemon.metrics(), daemon.cpu(), sum(os.times()[:2])
    delta = lambda key: m1.get(key, 0) - m0.get(key, 0)
    return {
        "name": name, "start": start, "end": end, "fired": fired, "loads": loads,
        "successes": {f: delta(f'canhgac_feed_loads_total{{feed="{f}",result="success"}}') for f in FEEDS},
        "refusals": sum(delta(f'canhgac_feed_loads_total{{feed="{f}",result="{r}"}}')
                        for f in FEEDS for r in ("failure", "incomplete")),
        "indicators": {f: m1.get(f'canhgac_feed_indicators{{feed="{f}"}}', 0) for f in FEEDS},
        "hits": sum(delta(f'canhgac_rule_events_total{{rule="web-ioc-client@{f}"}}') for f in FEEDS),
        "reloads": delta('canhgac_reloads_total{result="success"}'),
        "cpu": cpu1[0] - cpu0[0], "pipeline_cpu": cpu1[1] - cpu0[1], "py_cpu": py1 - py0,
    }


def main():
    if not os.path.exists(BIN):
        sys.exit(f"feeds_reload: no binary at {BIN} (run benches/feeds.sh)")
    gen = write_versions()
    live = os.path.join(WORK, "live")
    shutil.rmtree(live, ignore_errors=True)
    shutil.rmtree(os.path.join(WORK, "state"), ignore_errors=True)
    os.makedirs(live)
    install(gen, live, 0)
    weblog = os.path.join(WORK, "access.log")
    open(weblog, "w").close()
    config = write_config(live, weblog)

    version = subprocess.run([BIN, "--version"], capture_output=True, text=True).stdout.strip()
    built = dt.datetime.fromtimestamp(os.path.getmtime(BIN), dt.timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
    print(f"\n3. Feed reload while tailing: pipeline pauses (`canhgac run`, {len(FEEDS)} ip feeds of "
          f"{N:,} indicators, {RATE:,.0f} lines/s)")
    print(f"  binary: {BIN} ({version}, built {built}); {os.cpu_count()} CPUs, "
          f"load average {' '.join(open('/proc/loadavg').read().split()[:3])}")
    print(f"  polls of /metrics every {POLL_S * 1000:g} ms; phases of {PHASE_S:g} s; work in {WORK}", flush=True)

    daemon = Daemon(config)
    writer = sampler = None
    try:
        t0 = time.monotonic()
        daemon.wait_ready()
        print(f"  daemon ready in {time.monotonic() - t0:.1f} s (both feeds read before READY)", flush=True)
        writer, sampler = Writer(weblog), Sampler(daemon.port)
        writer.start()
        sampler.start()
        time.sleep(1.0)  # first lines, first incidents (the canaries) and their commit
        phases = [run_phase("baseline", daemon)]

        def replace():
            install(gen, live, 1)
            return time.monotonic()
        phases.append(run_phase("file", daemon, replace))

        def sighup():
            install(gen, live, 2)
            daemon.proc.send_signal(signal.SIGHUP)
            return time.monotonic()
        phases.append(run_phase("sighup", daemon, sighup))
        writer.stop_flag.set()
        sampler.stop_flag.set()
        writer.join()
        sampler.join()
        report(daemon, phases, sampler.samples, writer.writes)
    finally:
        for t in (writer, sampler):
            if t is not None:
                t.stop_flag.set()
        daemon.stop()


def report(daemon, phases, samples, writes):
    titles = {"baseline": "baseline", "file": "file replaced", "sighup": "replaced + SIGHUP"}
    results = [analyse(p, samples, writes) for p in phases]
    logged = daemon.log_lines()
    for p, r in zip(phases, results):
        at = lambda t: f"+{t - p['start']:.2f}"
        print(f"\n  {titles[p['name']]}: {p['end'] - p['start']:.1f} s"
              + (f"; files renamed{' and SIGHUP sent' if p['name'] == 'sighup' else ''} at {at(p['fired'])} s"
                 if p["fired"] else ""))
        # What ran while the pipeline stood still: a feed's load, or the SIGHUP handling.
        busy = []
        for f in FEEDS:
            if f in p["loads"]:
                t, n, secs = p["loads"][f]
                busy.append((f"load of {f}", t - secs, t))
                print(f"    {f}: {n:,} indicators loaded in {secs:.2f} s, {at(t - secs)} to {at(t)} s")
        if p["name"] == "sighup":
            done = [t for t, _, msg in logged if msg.startswith("reloaded ") and t >= p["start"]]
            if done:
                busy.append(("SIGHUP handling", p["fired"], done[0]))
            print("    SIGHUP: " + (f"'reloaded' logged at {at(done[0])} s" if done else "no 'reloaded' logged"))
        w0, w1 = r["pause_window"]
        during = [what for what, b0, b1 in busy if b0 < w1 and w0 < b1]
        print(f"    longest pause {r['pause']:.1f} ms (<= {r['pause_hi']:.1f}) at {at(w0)} s, during "
              f"{', '.join(during) if during else 'no reload'}; intervals between rises "
              f"p50 {r['p50']:.1f}, p99 {r['p99']:.1f}, max {r['max']:.1f} ms")
    print()
    rows = [
        ("longest pause, ms (lower bound)", lambda p, r: f"{r['pause']:.1f}"),
        ("  upper bound, ms", lambda p, r: f"{r['pause_hi']:.1f}"),
        ("  at, s after start", lambda p, r: f"+{r['pause_at']:.2f}"),
        ("interval p50 / p99 / max, ms", lambda p, r: f"{r['p50']:.1f} / {r['p99']:.1f} / {r['max']:.1f}"),
        ("poll gap p50 / max, ms", lambda p, r: f"{r['poll_p50']:.1f} / {r['poll_max']:.1f}"),
        ("writer's longest gap, ms", lambda p, r: f"{r['writer_gap']:.1f}"),
        ("lines/s written / read", lambda p, r: f"{r['written']:,.0f} / {r['read']:,.0f}"),
        ("IoC hits (web-ioc-client@*)", lambda p, r: f"{p['hits']:,.0f}"),
        ("feed loads (success)", lambda p, r: " + ".join(f"{p['successes'][f]:.0f}" for f in FEEDS)
         + (f", {p['refusals']:.0f} refused" if p["refusals"] else "")),
        ("indicators in use", lambda p, r: " + ".join(f"{p['indicators'][f]:,.0f}" for f in FEEDS)),
        ("config reloads", lambda p, r: f"{p['reloads']:.0f}"),
        ("CPU s: daemon (pipeline) / this", lambda p, r: f"{p['cpu']:.2f} ({p['pipeline_cpu']:.2f}) / {p['py_cpu']:.2f}"),
        (f"bar: pause <= {BAR_MS} ms", lambda p, r: "-" if p["name"] == "baseline" else verdict(r)),
    ]
    width = max(24, *(len(f(p, r)) + 2 for _, f in rows for p, r in zip(phases, results)))
    print(f"  {'':32}" + "".join(f"{titles[p['name']]:>{width}}" for p in phases))
    for label, f in rows:
        print(f"  {label:32}" + "".join(f"{f(p, r):>{width}}" for p, r in zip(phases, results)))
    problems = [msg for t, level, msg in logged if level in ("WARN", "ERROR") and t >= phases[0]["start"]]
    for msg in problems[:5]:
        print(f"  daemon: {msg}")
    verdicts = [verdict(r) for p, r in zip(phases, results) if p["name"] != "baseline"]
    overall = ("met" if all(v == "met" for v in verdicts) else "MISSED" if "MISSED" in verdicts
               else "unclear (poll gaps: run again)")
    reloaded = all(len(p["loads"]) == len(FEEDS) for p in phases if p["name"] != "baseline")
    print(f"\n  Bar (longest pipeline pause <= {BAR_MS} ms while {len(FEEDS)} feeds of {N:,} indicators "
          f"reload, {RATE:,.0f} lines/s): {overall}"
          + ("" if reloaded else " (not every feed was reloaded: see above)"), flush=True)


def on_signal(signum, _frame):
    sys.exit(128 + signum)


if __name__ == "__main__":
    for s in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP):
        signal.signal(s, on_signal)
    main()
